/* The Docker Engine API client: keeps a registry in step with the daemon.
 *
 * Subscribes to /events first, then lists and inspects, so no change is
 * missed; applies events idempotently (they may repeat); when the daemon
 * goes away keeps the last table, reconnects with backoff and resyncs.
 * Never blocks: all I/O is libcurl on the event loop. */
#ifndef BERTH_DOCKER_H
#define BERTH_DOCKER_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

#include "berth/registry.h"

struct docker;
struct metrics;

/* Called soon after the client changed the registry: at once (from the
 * loop) when synced, at most every 200 ms while a sync runs (it changes
 * the registry with every inspect), and once as the sync ends. Several
 * changes may be told as one. */
typedef void docker_changed_fn(void *arg);

/* url: "unix:///path" or "tcp://host:port" (TLS per DOCKER_TLS_VERIFY and
 * DOCKER_CERT_PATH, as the docker CLI). NULL: $DOCKER_HOST, else
 * unix:///var/run/docker.sock. Returns NULL with err set. */
struct docker *docker_new(struct event_base *base, struct registry *reg,
                          const char *url, docker_changed_fn *changed, void *arg,
                          char *err, size_t errlen);
void docker_free(struct docker *d);

/* Bounded staleness: after this many seconds without a sync (from the
 * start, or from the failure that began an outage), the registry is
 * marked stale (registry_set_stale) until the engine is synced again.
 * 0: never. The default is CONFIG_STALE_AFTER. */
void docker_set_stale_after(struct docker *d, unsigned seconds);

/* Seconds between reads of a swarm's tasks (docker_swarm.h); 0: Swarm is
 * not followed. The default is CONFIG_SWARM_POLL. */
void docker_set_swarm_poll(struct docker *d, unsigned seconds);

/* True once the first full sync finished (and after each resync). */
bool docker_synced(const struct docker *d);

/* Counts events read and whether the engine is followed (synced) in m
 * (metrics.h; NULL: none). */
void docker_set_metrics(struct docker *d, struct metrics *m);

/* /status: what the client is doing now, one word ("connecting",
 * "listing", "syncing", "synced", "waiting" after a failure, "idle"). */
const char *docker_phase_name(const struct docker *d);
/* The engine followed, as docker_endpoint_describe says it:
 * "unix:///var/run/docker.sock (default)". */
void docker_describe(const struct docker *d, char *out, size_t len);

#endif
