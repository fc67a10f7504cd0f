/* Docker Swarm's answers, read into plain structs: the manager's
 * /services, /tasks and /nodes, the overlay networks (/networks, and one
 * network's verbose view, which any node has: every service's VIP and
 * tasks, cluster-wide, from gossip), docker_gwbridge's containers, and
 * the local containers of tasks. Pure parsing, no I/O; list answers come
 * element by element (json_split), so a manager of thousands of tasks is
 * never parsed whole.
 * Return convention: 0 (or as stated), or -1 with a reason in err. */
#ifndef BERTH_SWARM_PARSE_H
#define BERTH_SWARM_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/registry.h"

#define SWARM_ID_MAX 65 /* Swarm's ids are 25 characters; containers' 64 */
#define SWARM_NAME_MAX 128
#define SWARM_ATTACH_MAX 4 /* overlay networks per task kept */
#define SWARM_SUBNETS_MAX 4

/* An address on one network, compact (a manager may list thousands). */
struct swarm_ip {
    int family; /* AF_INET or AF_INET6; 0: none */
    uint8_t ip[16];
};

struct swarm_attach {
    char net_id[SWARM_ID_MAX];
    struct swarm_ip ip;
};

struct swarm_service {
    char id[SWARM_ID_MAX];
    char name[SWARM_NAME_MAX];  /* as Docker names it: "lab_web" */
    char stack[SWARM_NAME_MAX]; /* com.docker.stack.namespace, or "" */
    bool dnsrr;                 /* endpoint mode dnsrr: no VIP */
    int replicas;               /* a replicated service's desired count; -1:
                                 * global, or not known (a network's view) */
    size_t running;             /* swarm_round_apply: its running tasks seen */
    size_t reachable;           /* ... and of them, those berth can reach */
    struct swarm_attach vips[SWARM_ATTACH_MAX];
    size_t nvips;
};

struct swarm_task {
    char id[SWARM_ID_MAX];
    char service_id[SWARM_ID_MAX]; /* the network view: the service's name */
    char node_id[SWARM_ID_MAX];    /* "" when unknown */
    char container_id[SWARM_ID_MAX];
    int slot; /* 0 for a global service's task */
    struct swarm_attach addrs[SWARM_ATTACH_MAX];
    size_t naddrs;
};

struct swarm_network {
    char id[SWARM_ID_MAX];
    char name[SWARM_NAME_MAX];
    char stack[SWARM_NAME_MAX]; /* com.docker.stack.namespace, or "" */
    bool ingress;               /* the routing mesh's: never a task's name */
    struct reg_subnet subnets[SWARM_SUBNETS_MAX];
    size_t nsubnets;
};

/* The service name without its stack's prefix: "web" for "lab_web" of
 * stack "lab"; the whole name outside stacks. */
const char *swarm_short_name(const char *name, const char *stack);

/* "10.0.1.5/24" or "10.0.1.5" into *out. Returns 0, or -1. */
int swarm_parse_ip(const char *text, struct swarm_ip *out);

/* GET /info: the node's role in its swarm into role ("manager",
 * "worker", or "" when it is in none, or not active). For engines whose
 * /_ping has no Swarm header (before API 1.42). */
int swarm_parse_info(const char *body, size_t len, char role[8], char *err,
                     size_t errlen);

/* One element of GET /services. */
int swarm_parse_service(const char *elem, size_t len, struct swarm_service *out,
                        char *err, size_t errlen);
/* One element of GET /tasks: 1 when it runs (state and desired state
 * "running"), 0 when not (out then partly filled, to be skipped). */
int swarm_parse_task(const char *elem, size_t len, struct swarm_task *out, char *err,
                     size_t errlen);
/* One element of GET /nodes: its id, and whether it is ready. */
int swarm_parse_node(const char *elem, size_t len, char id[SWARM_ID_MAX], bool *ready,
                     char *err, size_t errlen);
/* One element of GET /networks (or a network's inspect). */
int swarm_parse_network(const char *elem, size_t len, struct swarm_network *out,
                        char *err, size_t errlen);

/* One service of a network's verbose view, with its tasks there: the
 * service's id is its name (the view has no ids), the tasks' ids, slots
 * and service come from their names ("lab_web.2.<task id>"). */
typedef int swarm_view_fn(void *arg, const struct swarm_service *s,
                          const struct swarm_task *tasks, size_t n);
/* GET /networks/{id}?verbose=true: fn for each of its services (stack:
 * the network's own com.docker.stack.namespace label, when the service's
 * name starts with "<stack>_"; else ""). At most
 * SWARM_VIEW_TASKS tasks per service are read. */
#define SWARM_VIEW_TASKS 4096
int swarm_parse_view(const char *body, size_t len, swarm_view_fn *fn, void *arg,
                     char *err, size_t errlen);

/* A network inspect's Containers: fn(container id, its address) each. */
typedef int swarm_member_fn(void *arg, const char *container_id,
                            const struct swarm_ip *ip);
int swarm_parse_members(const char *body, size_t len, swarm_member_fn *fn, void *arg,
                        char *err, size_t errlen);

/* One element of GET /containers/json of this node's task containers:
 * the task (id, container id, slot; no addresses) and its service's name
 * and stack. Returns 1, or 0 for a container that is no task's. */
int swarm_parse_local_task(const char *elem, size_t len, struct swarm_task *t,
                           struct swarm_service *s, char *err, size_t errlen);

#endif
