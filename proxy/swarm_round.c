#include "berth/swarm_round.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/hash.h"
#include "berth/idmap.h"
#include "berth/log.h"

struct rnet {
    struct swarm_network n;
    bool attached;
};

struct gateway {
    char cid[SWARM_ID_MAX];
    struct swarm_ip ip;
};

/* A task container of this node, with its service as the labels say. */
struct local {
    struct swarm_task t;
    struct swarm_service s;
};

struct swarm_round {
    struct rnet *nets;
    size_t nnets, capnets;
    struct swarm_service *svcs;
    size_t nsvcs, capsvcs;
    struct swarm_task *tasks;
    size_t ntasks, captasks;
    struct local *locals;
    size_t nlocals, caplocals;
    char (*nodes)[SWARM_ID_MAX]; /* the ready ones */
    size_t nnodes, capnodes;
    bool nodes_known;
    struct gateway *gws;
    size_t ngws, capgws;
};

/* One registry entry put by some round. */
struct entry {
    char id[REG_ID_MAX];
    uint32_t fp;   /* of what it was put with */
    uint64_t seen; /* the last round that had it */
};

/* A service's count of reachable tasks, for the lines that say a change. */
struct count {
    char name[SWARM_NAME_MAX];
    size_t n, now; /* the last round's, and this one's so far */
    uint64_t seen; /* the last round that had a task of it */
};

struct swarm_held {
    struct entry **v;
    size_t n, cap;
    struct idmap *byid;
    struct count **counts;
    size_t ncounts, capcounts;
    struct idmap *byname;
    uint64_t round;
};

/* Room for one more of size bytes in *v (holding n of cap), up to max. */
static int room(void *v, size_t *cap, size_t n, size_t size, size_t max)
{
    if (n >= max) {
        errno = E2BIG;
        return -1;
    }
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 16;
    void *p = realloc(*(void **)v, c * size);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    *(void **)v = p;
    *cap = c;
    return 0;
}

struct swarm_round *swarm_round_new(void)
{
    return calloc(1, sizeof(struct swarm_round));
}

void swarm_round_free(struct swarm_round *r)
{
    if (!r)
        return;
    free(r->nets);
    free(r->svcs);
    free(r->tasks);
    free(r->locals);
    free(r->nodes);
    free(r->gws);
    free(r);
}

void swarm_round_reset(struct swarm_round *r)
{
    r->nnets = r->nsvcs = r->ntasks = r->nlocals = r->nnodes = r->ngws = 0;
    r->nodes_known = false;
}

int swarm_round_add_network(struct swarm_round *r, const struct swarm_network *n,
                            bool attached)
{
    if (room(&r->nets, &r->capnets, r->nnets, sizeof *r->nets, SWARM_NETWORKS_MAX) < 0)
        return -1;
    r->nets[r->nnets++] = (struct rnet){*n, attached};
    return 0;
}

int swarm_round_add_service(struct swarm_round *r, const struct swarm_service *s)
{
    if (room(&r->svcs, &r->capsvcs, r->nsvcs, sizeof *r->svcs, SWARM_SERVICES_MAX) < 0)
        return -1;
    r->svcs[r->nsvcs++] = *s;
    return 0;
}

int swarm_round_add_node(struct swarm_round *r, const char *id, bool ready)
{
    r->nodes_known = true;
    if (!ready)
        return 0;
    if (room(&r->nodes, &r->capnodes, r->nnodes, sizeof *r->nodes, SWARM_TASKS_MAX) <
        0)
        return -1;
    snprintf(r->nodes[r->nnodes++], SWARM_ID_MAX, "%s", id);
    return 0;
}

int swarm_round_add_task(struct swarm_round *r, const struct swarm_task *t)
{
    if (room(&r->tasks, &r->captasks, r->ntasks, sizeof *r->tasks, SWARM_TASKS_MAX) <
        0)
        return -1;
    r->tasks[r->ntasks++] = *t;
    return 0;
}

int swarm_round_add_gateway(struct swarm_round *r, const char *container_id,
                            const struct swarm_ip *ip)
{
    if (room(&r->gws, &r->capgws, r->ngws, sizeof *r->gws, SWARM_TASKS_MAX) < 0)
        return -1;
    struct gateway *g = &r->gws[r->ngws++];
    snprintf(g->cid, sizeof g->cid, "%s", container_id);
    g->ip = *ip;
    return 0;
}

int swarm_round_add_local(struct swarm_round *r, const struct swarm_task *t,
                          const struct swarm_service *s)
{
    if (room(&r->locals, &r->caplocals, r->nlocals, sizeof *r->locals,
             SWARM_TASKS_MAX) < 0)
        return -1;
    r->locals[r->nlocals++] = (struct local){*t, *s};
    return 0;
}

size_t swarm_round_networks(const struct swarm_round *r) { return r->nnets; }

const struct swarm_network *swarm_round_network(const struct swarm_round *r, size_t i,
                                                bool *attached)
{
    *attached = r->nets[i].attached;
    return &r->nets[i].n;
}

/* ---- what earlier rounds put ---- */

struct swarm_held *swarm_held_new(void)
{
    struct swarm_held *h = calloc(1, sizeof *h);
    if (h && (!(h->byid = idmap_new()) || !(h->byname = idmap_new()))) {
        swarm_held_free(h, NULL);
        return NULL;
    }
    return h;
}

size_t swarm_held_clear(struct swarm_held *h, struct registry *reg)
{
    size_t n = h->n;
    for (size_t i = 0; i < h->n; i++) {
        if (reg)
            registry_drop(reg, h->v[i]->id);
        free(h->v[i]);
    }
    for (size_t i = 0; i < h->ncounts; i++)
        free(h->counts[i]);
    h->n = h->ncounts = 0;
    h->round = 0; /* the next round is a first one again: said as a whole */
    idmap_clear(h->byid);
    idmap_clear(h->byname);
    return n;
}

void swarm_held_free(struct swarm_held *h, struct registry *reg)
{
    if (!h)
        return;
    if (h->byid && h->byname)
        swarm_held_clear(h, reg);
    idmap_free(h->byid);
    idmap_free(h->byname);
    free(h->v);
    free(h->counts);
    free(h);
}

size_t swarm_held_count(const struct swarm_held *h) { return h->n; }

/* ---- applying a round ---- */

/* A round's lookups, made once per apply. */
struct maps {
    struct idmap *svcs, *nets, *nodes, *gws, *vips, *chosen;
};

static void maps_free(struct maps *m)
{
    idmap_free(m->svcs);
    idmap_free(m->nets);
    idmap_free(m->nodes);
    idmap_free(m->gws);
    idmap_free(m->vips);
    idmap_free(m->chosen);
}

/* src's attachments on networks dst has none on, appended to dst's. */
static void merge_attach(struct swarm_attach *dst, size_t *n,
                         const struct swarm_attach *src, size_t k)
{
    for (size_t i = 0; i < k && *n < SWARM_ATTACH_MAX; i++) {
        bool have = false;
        for (size_t j = 0; j < *n && !have; j++)
            have = strcmp(dst[j].net_id, src[i].net_id) == 0;
        if (!have)
            dst[(*n)++] = src[i];
    }
}

static int maps_make(struct maps *m, struct swarm_round *r)
{
    *m = (struct maps){idmap_new(), idmap_new(), idmap_new(),
                       idmap_new(), idmap_new(), idmap_new()};
    if (!m->svcs || !m->nets || !m->nodes || !m->gws || !m->vips || !m->chosen)
        return -1;
    /* A worker reads one view per network: a service or task on two
     * networks comes twice, each time with that network's address. One
     * entry each, with both (the repeat's id emptied: passed over). */
    for (size_t i = 0; i < r->nsvcs; i++) {
        struct swarm_service *s = &r->svcs[i], *first = idmap_get(m->svcs, s->id);
        if (first) {
            merge_attach(first->vips, &first->nvips, s->vips, s->nvips);
            s->id[0] = '\0';
        } else if (idmap_put(m->svcs, s->id, s) < 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < r->ntasks; i++) {
        struct swarm_task *t = &r->tasks[i], *first = idmap_get(m->chosen, t->id);
        if (first) {
            merge_attach(first->addrs, &first->naddrs, t->addrs, t->naddrs);
            t->id[0] = '\0';
        } else if (idmap_put(m->chosen, t->id, t) < 0) {
            return -1;
        }
    }
    idmap_clear(m->chosen);
    for (size_t i = 0; i < r->nnets; i++)
        if (idmap_put(m->nets, r->nets[i].n.id, &r->nets[i]) < 0)
            return -1;
    for (size_t i = 0; i < r->nnodes; i++)
        if (idmap_put(m->nodes, r->nodes[i], r->nodes[i]) < 0)
            return -1;
    for (size_t i = 0; i < r->ngws; i++)
        if (idmap_put(m->gws, r->gws[i].cid, &r->gws[i]) < 0)
            return -1;
    return 0;
}

static void to_endpoint(struct reg_endpoint *ep, const char *network,
                        const struct swarm_ip *ip)
{
    *ep = (struct reg_endpoint){.network = network};
    if (ip->family == AF_INET) {
        ep->has_v4 = true;
        memcpy(&ep->v4, ip->ip, 4);
    } else {
        ep->has_v6 = true;
        memcpy(&ep->v6, ip->ip, 16);
    }
}

/* What one entry is made of, hashed: the same content is not put again. */
static uint32_t fingerprint(const struct reg_container *c)
{
    uint32_t h = hash_bytes(HASH_INIT, c->name, strlen(c->name) + 1);
    h = hash_bytes(h, &c->number, sizeof c->number);
    for (size_t i = 0; i < c->nnames; i++)
        for (int k = 0; k < 3; k++)
            h = c->names[i].part[k] ? hash_bytes(h, c->names[i].part[k],
                                                 strlen(c->names[i].part[k]) + 1)
                                    : hash_bytes(h, "", 1);
    for (size_t i = 0; i < c->neps; i++) {
        const struct reg_endpoint *e = &c->eps[i];
        h = hash_bytes(h, e->network, strlen(e->network) + 1);
        h = e->has_v4 ? hash_bytes(h, &e->v4, 4) : hash_bytes(h, &e->v6, 16);
    }
    return h;
}

/* Puts c unless the last round put the same; marks it seen either way. */
static int put(struct swarm_held *h, struct registry *reg,
               const struct reg_container *c, struct swarm_outcome *out)
{
    uint32_t fp = fingerprint(c);
    struct entry *e = idmap_get(h->byid, c->id);
    if (e && e->fp == fp) {
        e->seen = h->round;
        return 0;
    }
    if (!e) {
        if (room(&h->v, &h->cap, h->n, sizeof *h->v, SIZE_MAX) < 0 ||
            !(e = calloc(1, sizeof *e)))
            return -1;
        snprintf(e->id, sizeof e->id, "%s", c->id);
        if (idmap_put(h->byid, e->id, e) < 0) {
            free(e);
            return -1;
        }
        h->v[h->n++] = e;
    }
    if (registry_put(reg, c) < 0)
        return -1;
    e->fp = fp;
    e->seen = h->round;
    out->put++;
    return 0;
}

/* An entry for a service's VIP or one of its tasks. */
struct item {
    const struct swarm_service *s;
    const struct swarm_task *t; /* NULL: the VIP */
    struct reg_endpoint eps[SWARM_ATTACH_MAX];
    size_t neps;
};

static int put_item(struct swarm_held *h, struct registry *reg, const struct maps *m,
                    const struct item *it, struct swarm_outcome *out)
{
    const struct swarm_service *s = it->s;
    const char *stack = s->stack[0] ? s->stack : NULL;
    const char *svc = swarm_short_name(s->name, s->stack);
    char id[REG_ID_MAX], name[3 * SWARM_NAME_MAX], slot[16];
    struct reg_name names[3];
    size_t n = 0;
    if (!it->t) {
        snprintf(id, sizeof id, "swarm-vip:%08x",
                 hash_bytes(HASH_INIT, s->id, strlen(s->id)));
        name[0] = '\0';
        names[n++] = (struct reg_name){{svc, stack, NULL}, false};
    } else {
        snprintf(id, sizeof id, "swarm:%.58s", it->t->id);
        snprintf(slot, sizeof slot, "%d", it->t->slot);
        /* Docker's own name for the task's container, for PTR. */
        snprintf(name, sizeof name, "%s.%s.%s", s->name,
                 it->t->slot         ? slot
                 : it->t->node_id[0] ? it->t->node_id
                                     : "0",
                 it->t->id);
        names[n++] = (struct reg_name){{"tasks", svc, stack}, false};
        if (it->t->slot)
            names[n++] = (struct reg_name){{slot, svc, stack}, true};
        if (!idmap_get(m->vips, s->name))
            names[n++] = (struct reg_name){{svc, stack, NULL}, false};
    }
    struct reg_container c = {.id = id,
                              .name = name,
                              .project = stack,
                              .number = it->t ? it->t->slot : 0,
                              .eps = it->eps,
                              .neps = it->neps,
                              .swarm = true,
                              .names = names,
                              .nnames = n};
    return put(h, reg, &c, out);
}

/* One more reachable task of service this round. */
static int count_task(struct swarm_held *h, const char *service)
{
    struct count *c = idmap_get(h->byname, service);
    if (!c) {
        if (room(&h->counts, &h->capcounts, h->ncounts, sizeof *h->counts, SIZE_MAX) <
                0 ||
            !(c = calloc(1, sizeof *c)))
            return -1;
        snprintf(c->name, sizeof c->name, "%s", service);
        if (idmap_put(h->byname, c->name, c) < 0) {
            free(c);
            return -1;
        }
        h->counts[h->ncounts++] = c;
    }
    if (c->seen != h->round) {
        c->seen = h->round;
        c->now = 0;
    }
    c->now++;
    return 0;
}

/* Says each service whose count changed (not on the first round: its
 * summary says it all), and forgets services with none left. */
static void say_counts(struct swarm_held *h, bool first)
{
    for (size_t i = 0; i < h->ncounts;) {
        struct count *c = h->counts[i];
        size_t now = c->seen == h->round ? c->now : 0;
        if (now != c->n && !first)
            log_info("swarm: %s: %zu -> %zu tasks", c->name, c->n, now);
        c->n = now;
        if (now) {
            i++;
            continue;
        }
        idmap_del(h->byname, c->name);
        free(c);
        h->counts[i] = h->counts[--h->ncounts];
    }
}

/* The task's addresses berth can reach: on attached networks; else, for a
 * task of this node, its docker_gwbridge address. */
static void reach(const struct maps *m, const struct swarm_task *t, struct item *it)
{
    it->neps = 0;
    for (size_t i = 0; i < t->naddrs; i++) {
        const struct rnet *n = idmap_get(m->nets, t->addrs[i].net_id);
        if (n && n->attached && t->addrs[i].ip.family)
            to_endpoint(&it->eps[it->neps++], n->n.name, &t->addrs[i].ip);
    }
    const struct gateway *g;
    if (!it->neps && t->container_id[0] && (g = idmap_get(m->gws, t->container_id)))
        to_endpoint(&it->eps[it->neps++], "docker_gwbridge", &g->ip);
}

/* Counts each service's running and reachable tasks (put false), or puts
 * the reachable ones (put true). The cluster's tasks first, then this
 * node's containers of tasks the cluster's did not reach. */
static int apply_tasks(struct swarm_round *r, struct swarm_held *h,
                       struct registry *reg, struct maps *m, bool put,
                       struct swarm_outcome *out)
{
    for (size_t i = 0; i < r->ntasks + r->nlocals; i++) {
        bool local = i >= r->ntasks;
        struct swarm_task *t = local ? &r->locals[i - r->ntasks].t : &r->tasks[i];
        struct swarm_service *s = local ? &r->locals[i - r->ntasks].s
                                        : idmap_get(m->svcs, t->service_id);
        if (!s || !t->id[0] || (put && idmap_get(m->chosen, t->id)) ||
            (!local && r->nodes_known && !idmap_get(m->nodes, t->node_id)))
            continue;
        struct item it = {.s = s, .t = t};
        reach(m, t, &it);
        if (!put) {
            s->running += !local;
            s->reachable += it.neps > 0;
            continue;
        }
        if (!it.neps)
            continue;
        if (idmap_put(m->chosen, t->id, t) < 0 || put_item(h, reg, m, &it, out) < 0 ||
            count_task(h, s->name) < 0)
            return -1;
        out->tasks++;
    }
    return 0;
}

int swarm_round_apply(struct swarm_round *r, struct swarm_held *h,
                      struct registry *reg, struct swarm_outcome *out)
{
    *out = (struct swarm_outcome){0};
    bool first = h->round == 0;
    h->round++;
    struct maps m;
    int rc = -1;
    if (maps_make(&m, r) < 0) {
        errno = ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < r->nsvcs; i++)
        r->svcs[i].running = r->svcs[i].reachable = 0;
    if (apply_tasks(r, h, reg, &m, false, out) < 0)
        goto done;
    /* VIPs on attached networks: the service's name is theirs in DNS, while
     * some task of it is reachable (relays go to "tasks.<name>", and with
     * none there must find nothing rather than the VIP). */
    for (size_t i = 0; i < r->nsvcs; i++) {
        const struct swarm_service *s = &r->svcs[i];
        struct item it = {.s = s};
        if (!s->id[0] || !s->reachable)
            continue;
        for (size_t k = 0; k < s->nvips && !s->dnsrr; k++) {
            const struct rnet *n = idmap_get(m.nets, s->vips[k].net_id);
            if (n && n->attached)
                to_endpoint(&it.eps[it.neps++], n->n.name, &s->vips[k].ip);
        }
        if (it.neps && (idmap_put(m.vips, s->name, (void *)s) < 0 ||
                        put_item(h, reg, &m, &it, out) < 0))
            goto done;
    }
    if (apply_tasks(r, h, reg, &m, true, out) < 0)
        goto done;
    for (size_t i = 0; i < r->nsvcs; i++)
        out->converging |= r->svcs[i].replicas > 0 &&
                           r->svcs[i].running < (size_t)r->svcs[i].replicas;
    /* What no longer is. */
    for (size_t i = 0; i < h->n;) {
        struct entry *e = h->v[i];
        if (e->seen == h->round) {
            i++;
            continue;
        }
        registry_drop(reg, e->id);
        idmap_del(h->byid, e->id);
        free(e);
        h->v[i] = h->v[--h->n];
        out->dropped++;
    }
    say_counts(h, first);
    out->services = h->ncounts;
    rc = 0;
done:
    maps_free(&m);
    return rc;
}
