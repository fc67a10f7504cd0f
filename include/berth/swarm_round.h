/* One round of following Swarm, as data: the overlay networks (and which
 * of them berth is attached to), services, ready nodes, running tasks,
 * docker_gwbridge's members and this node's task containers, as
 * docker_swarm read them; then applied to the registry as entries
 * (registry.h's Swarm names) at the addresses berth can reach:
 *   - a task's overlay addresses on the networks berth is attached to;
 *   - else, for a task of this node, its docker_gwbridge address;
 *   - else none: the task is out of reach and left out.
 * A vip service whose VIP is on an attached network gets an entry for its
 * name with the VIP (for DNS; relays go to "tasks.<name>"); otherwise its
 * tasks answer its name. Tasks on nodes that are not ready are left out.
 *
 * What earlier rounds put in the registry is tracked (struct swarm_held):
 * an entry whose content is the same is not put again, and one not seen
 * in a round is dropped. Pure: no I/O, only the registry and log lines
 * ("swarm: lab_web: 3 -> 5 tasks").
 * Return convention: 0, or -1 (errno ENOMEM, or E2BIG past the bounds). */
#ifndef BERTH_SWARM_ROUND_H
#define BERTH_SWARM_ROUND_H

#include <stdbool.h>
#include <stddef.h>

#include "berth/registry.h"
#include "berth/swarm_parse.h"

/* Bounds per round: past them a round fails (and keeps the last one). */
#define SWARM_TASKS_MAX 20000
#define SWARM_SERVICES_MAX 5000
#define SWARM_NETWORKS_MAX 512

struct swarm_round;
struct swarm_held;

struct swarm_round *swarm_round_new(void);
void swarm_round_free(struct swarm_round *r);
/* Empties it for the next round (the memory stays). */
void swarm_round_reset(struct swarm_round *r);

int swarm_round_add_network(struct swarm_round *r, const struct swarm_network *n,
                            bool attached);
int swarm_round_add_service(struct swarm_round *r, const struct swarm_service *s);
/* Once any node is added, only tasks on ready nodes count. */
int swarm_round_add_node(struct swarm_round *r, const char *id, bool ready);
int swarm_round_add_task(struct swarm_round *r, const struct swarm_task *t);
int swarm_round_add_gateway(struct swarm_round *r, const char *container_id,
                            const struct swarm_ip *ip);
/* A task container of this node (swarm_parse_local_task). */
int swarm_round_add_local(struct swarm_round *r, const struct swarm_task *t,
                          const struct swarm_service *s);

size_t swarm_round_networks(const struct swarm_round *r);
const struct swarm_network *swarm_round_network(const struct swarm_round *r, size_t i,
                                                bool *attached);

struct swarm_held *swarm_held_new(void);
/* Takes every entry it holds out of reg (NULL: only frees). */
void swarm_held_free(struct swarm_held *h, struct registry *reg);
/* Takes every entry out of reg; h stays usable. Returns how many. */
size_t swarm_held_clear(struct swarm_held *h, struct registry *reg);
size_t swarm_held_count(const struct swarm_held *h);

struct swarm_outcome {
    size_t services; /* with at least one reachable task */
    size_t tasks;    /* reachable */
    size_t put, dropped;
    /* Some replicated service runs fewer tasks than it wants: being
     * created, scaled or updated; worth looking again soon. */
    bool converging;
};

/* Puts r's entries into reg, drops what earlier rounds put and r has not.
 * On failure (out of memory) reg keeps a mix of both rounds: the next
 * round puts it right. */
int swarm_round_apply(struct swarm_round *r, struct swarm_held *h,
                      struct registry *reg, struct swarm_outcome *out);

#endif
