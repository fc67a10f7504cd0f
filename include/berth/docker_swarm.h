/* Following Docker Swarm beside the engine's containers: the services
 * and tasks of the swarm the engine is a node of, put into the registry
 * under their names (registry.h) at addresses berth can reach, re-read
 * every poll interval (Swarm has no task events) and soon after a service
 * or node event.
 *
 * Each round asks /_ping which role the node has (its Swarm header), then
 * the overlay networks (/networks) and whether berth has an address in
 * each (it runs in a container attached to it). Where it has, the tasks'
 * overlay addresses: a manager's /services, /nodes (tasks on nodes that
 * are down are left out) and /tasks, or on a worker each such network's
 * verbose view. Where it has not (berth on a host, outside the overlay),
 * only the tasks of this node, at their docker_gwbridge addresses (the
 * local task containers, /networks/docker_gwbridge): said once per
 * network, and no overlay address is ever handed out. A round that fails
 * keeps what the last one found; entries whose content did not change are
 * not put again, so a steady swarm costs the registry nothing.
 *
 * Ownership: made and freed by docker.c, which starts it when the engine
 * is synced and stops it (requests cancelled, entries kept) when it is
 * lost. Every request is bounded in size and time. */
#ifndef BERTH_DOCKER_SWARM_H
#define BERTH_DOCKER_SWARM_H

#include <event2/event.h>

#include "berth/http.h"
#include "berth/registry.h"

struct docker_swarm;

/* The registry changed. */
typedef void docker_swarm_changed_fn(void *arg);

/* NULL: out of memory. http and target must outlive it. */
struct docker_swarm *docker_swarm_new(struct event_base *base, struct http *http,
                                      const struct http_target *target,
                                      struct registry *reg,
                                      docker_swarm_changed_fn *changed, void *arg);
/* Stops, and takes its entries out of the registry. */
void docker_swarm_free(struct docker_swarm *s);

/* Seconds between rounds; 0: Swarm is not followed (what is in the
 * registry is taken out at the next start). */
void docker_swarm_set_poll(struct docker_swarm *s, unsigned seconds);
/* The engine is followed (API version): a round now, then every poll. */
void docker_swarm_start(struct docker_swarm *s, const char *version);
/* The engine is lost: no more requests; the entries stay. */
void docker_swarm_stop(struct docker_swarm *s);
/* A service or node changed (an event): a round soon. */
void docker_swarm_poke(struct docker_swarm *s);

/* "manager", "worker", or "" while the engine is no swarm node. */
const char *docker_swarm_role(const struct docker_swarm *s);

#endif
