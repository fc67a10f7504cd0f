/* The containers side of following the Docker daemon, for docker.c: the
 * full list (GET /containers/json) and the inspects that the list and the
 * event stream ask for, applied to the registry.
 *
 * Built for hosts with 100,000 containers without holding the event loop
 * (and so every relay) for long: the list is parsed as it streams in and
 * never held whole; what it lacks is swept after marking what it has, a
 * slice per loop turn; its ids are inspected from a cursor, 16 at a time,
 * never queued all at once; an inspect asked for again while one waits or
 * runs costs a hash lookup. Memory is bounded whatever the daemon sends: at most
 * 262,144 containers listed, 16,384 inspects waiting (more means a resync),
 * 2 MiB per inspect answer.
 *
 * It reports through hooks and never calls into docker.c otherwise. A
 * failed hook means the daemon must be listened to from scratch: the
 * caller stops everything (docker_sync_stop) and reconnects. */
#ifndef BERTH_DOCKER_SYNC_H
#define BERTH_DOCKER_SYNC_H

#include <event2/event.h>
#include <stdbool.h>

#include "berth/http.h"
#include "berth/registry.h"

struct docker_sync;

struct docker_sync_hooks {
    void (*changed)(void *arg); /* the registry changed */
    /* The list was applied: what it lacked is gone, what it has is being
     * inspected. */
    void (*listed)(void *arg);
    /* The last inspect waiting or running finished. */
    void (*idle)(void *arg);
    /* what failed and why: the caller should resync. */
    void (*failed)(void *arg, const char *what, const char *why);
    void *arg;
};

/* Requests go through http to target (both must outlive it). NULL when
 * out of memory. */
struct docker_sync *docker_sync_new(struct event_base *base, struct http *http,
                                    const struct http_target *target,
                                    struct registry *reg,
                                    const struct docker_sync_hooks *hooks);
void docker_sync_free(struct docker_sync *s);

/* Starts GET /v<version>/containers/json. Returns 0, or -1 when the
 * request cannot start (no hook then). */
int docker_sync_list(struct docker_sync *s, const char *version);
/* The event stream named this container: inspect it (again). */
void docker_sync_inspect(struct docker_sync *s, const char *id);
/* Cancels the list and every inspect; no hook runs after this. */
void docker_sync_stop(struct docker_sync *s);

/* Swarm is followed (docker_swarm.h): its task containers are left out of
 * the registry, whose Swarm entries name them at an address berth can
 * reach (their overlay address may not be). */
void docker_sync_leave_tasks(struct docker_sync *s, bool leave);
/* The list was applied and no inspect waits or runs. */
bool docker_sync_idle(const struct docker_sync *s);

#endif
