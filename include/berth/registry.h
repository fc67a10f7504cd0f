/* The registry: what berth knows about running containers, as names to
 * addresses. Pure data, no I/O: docker.c fills it from the Engine API (or a
 * test fills it by hand); the relays and the DNS server read it.
 *
 * Names are relative to the DNS zone (no ".docker", no trailing dot) and
 * case-insensitive:
 *   <container-name>              every address of the container
 *   <short-id> (12 hex digits)    the same
 *   <service>.<project>           every running replica of a Compose service
 *                                 (one-off containers excluded), by number
 *   <number>.<service>.<project>  one replica
 *   <alias>.<network>             the address on that network
 *   <container-name>.<network>    the same
 *   <alias>.<key>                 the same, the network named by its Compose
 *                                 key (label com.docker.compose.network,
 *                                 with com.docker.compose.project): "backend"
 *                                 for docker-compose's "lab_backend"
 * Swarm (docker_swarm.c) adds entries that are not this node's containers:
 *   <service>.<stack>             a service's VIP, or its running tasks
 *   tasks.<service>.<stack>       every running task of a service
 *   <slot>.<service>.<stack>      one task
 *   (a service outside stacks: <service>, tasks.<service>, <slot>.<service>)
 * When one name could mean several of these, the earlier row wins: a
 * network's Docker name always before a Compose key. A key that networks
 * of several projects share names the network, among them, under which
 * the name exists; under more than one it is ambiguous: it resolves to
 * nothing, and one warning (per name and set of networks) names the full
 * names to use.
 * Project and network names exist too, with no address (so DNS answers them
 * NOERROR, not NXDOMAIN, and resolvers keep looking below them).
 *
 * Lookups are hash lookups on an index that each update changes only where
 * that container's names are (name_index.h), and names read through a
 * Compose key one more per key they could end in, however many projects
 * share it (compose_keys.h); updates find the container by
 * a hash of its id. So a change costs the same on a host of 100,000
 * containers as on one of 10, and a full sync of N containers O(N).
 * Return convention: 0 / -1 (errno ENOMEM) for updates; lookups as stated. */
#ifndef BERTH_REGISTRY_H
#define BERTH_REGISTRY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/sockaddr.h"

#define REG_NAME_MAX 256
#define REG_ID_MAX 65

/* One container's presence on one network. */
struct reg_endpoint {
    const char *network;
    bool has_v4, has_v6;
    struct in_addr v4;
    struct in6_addr v6;
    const char *const *aliases; /* from inspect; may include the name */
    size_t naliases;
};

/* A name of a Swarm entry: up to three labels joined by dots ("tasks",
 * "web", "lab"; unused ones NULL). replica: one task's name (ranked as
 * <number>.<service>.<project>), else a service's (every holder's
 * addresses together). */
struct reg_name {
    const char *part[3];
    bool replica;
};

/* A running container as docker.c sees it. Strings are borrowed for the
 * call; the registry copies what it keeps. */
struct reg_container {
    const char *id;      /* full 64-hex id */
    const char *name;    /* without the leading '/' */
    const char *project; /* com.docker.compose.project, or NULL */
    const char *service; /* com.docker.compose.service, or NULL */
    int number;          /* com.docker.compose.container-number */
    bool oneoff;         /* com.docker.compose.oneoff=True */
    const char *publish; /* berth.publish label, or NULL */
    const struct reg_endpoint *eps;
    size_t neps;
    /* berth.transparent and berth.proxy-protocol labels, or NULL: what
     * the ports of berth.publish switch on. */
    const char *transparent, *proxy_protocol;
    /* A Swarm task or service VIP (docker_swarm owns it; a resync's sweep
     * of containers keeps it): it claims names[] instead of a short id
     * and Compose names, and its name (with its endpoints' names and PTR)
     * only when not empty. project: its stack, as a parent name. */
    bool swarm;
    const struct reg_name *names;
    size_t nnames;
};

struct reg_subnet {
    struct addr net; /* port unused */
    unsigned prefix;
};

struct registry;

struct registry *registry_new(void);
void registry_free(struct registry *r);

/* Inserts or replaces (by id) a running container. */
int registry_put(struct registry *r, const struct reg_container *c);
/* Forgets a container by full id; unknown ids are fine (events repeat). */
void registry_drop(struct registry *r, const char *id);
/* Records a network's subnets and Compose project and key (NULL both for
 * a network that Compose did not make), replacing what was known of it. */
int registry_put_network(struct registry *r, const char *name, const char *project,
                         const char *key, const struct reg_subnet *subnets, size_t n);
void registry_drop_network(struct registry *r, const char *name);
/* A resync's sweep, spread over as many loop turns as the caller likes:
 * after registry_sweep_begin, a container is current once registry_keep
 * names it or registry_put stores it; registry_sweep then forgets every
 * other one (stopped while nobody listened) and says how many. Keeping is
 * a hash lookup, the sweep one pass without any. */
void registry_sweep_begin(struct registry *r);
void registry_keep(struct registry *r, const char *id);
size_t registry_sweep(struct registry *r);
/* Forgets every network (before loading a full network list). */
void registry_clear_networks(struct registry *r);
/* Forgets everything (before a full resynchronisation). */
void registry_clear(struct registry *r);

/* Resolves name (len bytes, not NUL-terminated) for family AF_INET or
 * AF_INET6. Returns -1 if the name does not exist; otherwise the number of
 * addresses of that family (0: the name exists with the other family only),
 * of which the first min(n, max) are written to out (port 0), in a stable
 * order (replicas by number). */
int registry_resolve(struct registry *r, const char *name, size_t len, int family,
                     struct addr *out, size_t max);
/* The same, starting from address number first (modulo their number) and
 * wrapping round: a rotation that reaches every replica of a service,
 * however many there are and however few fit in out. */
int registry_resolve_from(struct registry *r, const char *name, size_t len, int family,
                          size_t first, struct addr *out, size_t max);

/* The container name owning ip, into name. Returns 0, or -1 if none. */
int registry_ptr(struct registry *r, const struct addr *ip, char *name, size_t len);

/* True when ip is inside a subnet of a network berth knows. */
bool registry_knows_client(struct registry *r, const struct addr *ip);

/* Stale: the table may no longer match the engine (docker.c marks it after
 * a long outage, bounded staleness in the README). Its content is kept,
 * for when the engine answers again, but readers that hand addresses out
 * (relay_resolve, dns_answer) refuse to while it is set: a stopped
 * container's address may belong to another one by now. Not stale when
 * made. */
void registry_set_stale(struct registry *r, bool stale);
bool registry_stale(const struct registry *r);

/* The engine as docker.c last saw it, for readers that find nothing by a
 * name and must tell a client why: known once a sync has ever ended (the
 * table then means something, if maybe old); why: while the engine cannot
 * be followed, the failure as docker_fault words it, else "" (cut at
 * REG_WHY_MAX - 1 bytes). Not known, no failure, when made. */
#define REG_WHY_MAX 400
void registry_set_engine(struct registry *r, bool known, const char *why);
bool registry_known(const struct registry *r);
const char *registry_engine_why(const struct registry *r);

/* How many Swarm entries it holds: a name target then tries
 * "tasks.<name>" first, so a service's tasks are reached, never its VIP. */
size_t registry_swarm_count(const struct registry *r);

/* Changes every time the content does. */
uint64_t registry_version(const struct registry *r);
size_t registry_count(const struct registry *r);

/* Calls fn for every container, in no particular order; fn must not
 * change r. */
typedef void registry_visit_fn(const struct reg_container *c, void *arg);
void registry_foreach(struct registry *r, registry_visit_fn *fn, void *arg);

/* True when some name exists below name (len bytes, not NUL-terminated):
 * "internal.mynet" for the alias "db.internal" on network "mynet". A hash
 * lookup, for DNS's empty non-terminals. */
bool registry_has_below(struct registry *r, const char *name, size_t len);

#endif
