/* Ports a reload removed, kept until their last client is gone: every
 * period each is asked how many sessions or flows it still has, and
 * released at 0. The items are the caller's (berth's ports): the list only
 * holds them, asks through active and hands them back through release. */
#ifndef BERTH_DRAIN_H
#define BERTH_DRAIN_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

/* berth's period: a port is freed within a second of its last client. */
#define DRAIN_CHECK_MS 1000

struct drain;

/* How many clients item still serves; 0: it may go. */
typedef size_t drain_active_fn(const void *item);
/* Takes item back (to free it): idle when its last client has gone, not
 * when drain_free ends it with clients left. */
typedef void drain_release_fn(void *item, bool idle);

/* NULL: out of memory. */
struct drain *drain_new(struct event_base *base, unsigned period_ms,
                        drain_active_fn *active, drain_release_fn *release);
/* Releases every item still held (idle false). */
void drain_free(struct drain *d);

/* Holds item until it is idle, the first look one period from now (every
 * item's next look moves there too). -1: out of memory, item not held. */
int drain_add(struct drain *d, void *item);

/* Hands item i (as drain_item counts) back now, clients or not (idle
 * false): what it holds is needed. */
void drain_release(struct drain *d, size_t i);

/* The items held now, newest first: [0, drain_count). */
size_t drain_count(const struct drain *d);
void *drain_item(const struct drain *d, size_t i);

#endif
