/* A fixed number of same-sized slots made up front, for work in flight
 * whose count must stay bounded (DNS queries waiting for an upstream): a
 * flood costs no memory, and taking or giving back a slot is O(1).
 * Errors: slot_pool_new returns NULL. */
#ifndef BERTH_SLOT_POOL_H
#define BERTH_SLOT_POOL_H

#include <stdbool.h>
#include <stddef.h>

struct slot_pool;

struct slot_pool *slot_pool_new(size_t count, size_t size);
void slot_pool_free(struct slot_pool *p);

/* A free slot, zeroed; NULL when every slot is taken. */
void *slot_get(struct slot_pool *p);
/* Gives a slot back: its contents are dead from here on. */
void slot_put(struct slot_pool *p, void *slot);

size_t slot_pool_used(const struct slot_pool *p);
size_t slot_pool_count(const struct slot_pool *p);
/* Slot i (0 <= i < count) when taken, NULL when free: for visiting every
 * piece of work in flight. */
void *slot_pool_at(const struct slot_pool *p, size_t i);

#endif
