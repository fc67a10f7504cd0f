#include "berth/registry.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/compose_keys.h"
#include "berth/idmap.h"
#include "berth/name_index.h"

/* ---- stored containers and networks ---- */

struct ep {
    char *network;
    bool has_v4, has_v6;
    struct in_addr v4;
    struct in6_addr v6;
    char **aliases;
    size_t naliases;
    struct ck_member *keyed; /* its names under its network's key */
};

struct ctr {
    char *id, *name, *project, *service, *publish;
    char *transparent, *proxy_protocol;
    int number;
    bool oneoff;
    bool swarm;
    struct ep *eps;
    size_t neps;
    size_t slot;            /* where it is in registry.ctrs */
    struct name_ref *names; /* what it claimed in the index */
    uint64_t kept;          /* the last sweep it was current in */
};

struct net {
    char *name;
    struct reg_subnet *subnets;
    size_t n;
};

struct registry {
    /* Pointers, so the id index below (keyed by each ctr's own id) and a
     * reordering for the name index never move a container. */
    struct ctr **ctrs;
    size_t n, cap;
    size_t nswarm;      /* of them, Swarm entries */
    struct idmap *byid; /* id -> ctr: a host may run 100,000 */
    struct name_index *index;
    struct net *nets;
    size_t nnets;
    struct compose_keys *keys; /* names read through Compose keys */
    uint64_t version;
    uint64_t sweep; /* the sweep under way (or the last one) */
    bool stale;     /* see registry_set_stale */
    /* See registry_set_engine. */
    bool known;
    char engine_why[REG_WHY_MAX];
};

static void ctr_clear(struct ctr *c)
{
    free(c->id);
    free(c->name);
    free(c->project);
    free(c->service);
    free(c->publish);
    free(c->transparent);
    free(c->proxy_protocol);
    for (size_t i = 0; i < c->neps; i++) {
        free(c->eps[i].network);
        for (size_t k = 0; k < c->eps[i].naliases; k++)
            free(c->eps[i].aliases[k]);
        free(c->eps[i].aliases);
    }
    free(c->eps);
    memset(c, 0, sizeof *c);
}

struct registry *registry_new(void)
{
    struct registry *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    if (!(r->byid = idmap_new()) || !(r->index = name_index_new()) ||
        !(r->keys = compose_keys_new())) {
        idmap_free(r->byid);
        name_index_free(r->index);
        free(r);
        return NULL;
    }
    return r;
}

/* ---- networks ---- */

/* The first n endpoints of c leave their networks' keys. */
static void unkey(struct registry *r, struct ctr *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        compose_keys_leave(r->keys, c->eps[i].keyed);
        c->eps[i].keyed = NULL;
    }
}

/* c's endpoints join their networks' keys (c->name and aliases borrowed:
 * they live as long as c). */
static int key_all(struct registry *r, struct ctr *c)
{
    for (size_t i = 0; i < c->neps; i++) {
        struct ep *e = &c->eps[i];
        if (!(e->keyed = compose_keys_join(r->keys, e->network, c->name, e->aliases,
                                           e->naliases))) {
            unkey(r, c, i);
            return -1;
        }
    }
    return 0;
}

void registry_clear_networks(struct registry *r)
{
    for (size_t i = 0; i < r->nnets; i++) {
        free(r->nets[i].name);
        free(r->nets[i].subnets);
    }
    free(r->nets);
    r->nets = NULL;
    r->nnets = 0;
    /* Lazily: the networks put again with the same key keep it, so the
     * full list every network event loads re-keys only what changed. */
    compose_keys_forget_all(r->keys);
    r->version++;
}

void registry_clear(struct registry *r)
{
    idmap_clear(r->byid);
    for (size_t i = 0; i < r->n; i++) {
        name_index_remove(r->index, r->ctrs[i]->names);
        unkey(r, r->ctrs[i], r->ctrs[i]->neps);
        ctr_clear(r->ctrs[i]);
        free(r->ctrs[i]);
    }
    r->n = r->nswarm = 0;
    registry_clear_networks(r);
}

void registry_free(struct registry *r)
{
    if (!r)
        return;
    registry_clear(r);
    free(r->ctrs);
    idmap_free(r->byid);
    name_index_free(r->index);
    compose_keys_free(r->keys);
    free(r);
}

static int copy_ctr(struct ctr *dst, const struct reg_container *src)
{
    memset(dst, 0, sizeof *dst);
    dst->number = src->number;
    dst->oneoff = src->oneoff;
    dst->swarm = src->swarm;
    if (!(dst->id = strdup(src->id)) ||
        !(dst->name = strdup(src->name ? src->name : "")) ||
        (src->project && !(dst->project = strdup(src->project))) ||
        (src->service && !(dst->service = strdup(src->service))) ||
        (src->publish && !(dst->publish = strdup(src->publish))) ||
        (src->transparent && !(dst->transparent = strdup(src->transparent))) ||
        (src->proxy_protocol && !(dst->proxy_protocol = strdup(src->proxy_protocol))))
        return -1;
    if (src->neps && !(dst->eps = calloc(src->neps, sizeof *dst->eps)))
        return -1;
    for (size_t i = 0; i < src->neps; i++) {
        const struct reg_endpoint *s = &src->eps[i];
        struct ep *d = &dst->eps[i];
        dst->neps++;
        d->has_v4 = s->has_v4;
        d->has_v6 = s->has_v6;
        d->v4 = s->v4;
        d->v6 = s->v6;
        if (!(d->network = strdup(s->network ? s->network : "")))
            return -1;
        if (s->naliases && !(d->aliases = calloc(s->naliases, sizeof *d->aliases)))
            return -1;
        for (size_t k = 0; k < s->naliases; k++, d->naliases++)
            if (!(d->aliases[k] = strdup(s->aliases[k])))
                return -1;
    }
    return 0;
}

int registry_put(struct registry *r, const struct reg_container *c)
{
    struct ctr fresh;
    if (copy_ctr(&fresh, c) < 0)
        goto nomem;
    /* PTR answers point at the name: the registry's copy, not c's. */
    struct reg_container view = *c;
    view.name = fresh.name;
    if (!(fresh.names = name_index_add(r->index, &view)))
        goto nomem;
    if (key_all(r, &fresh) < 0) {
        name_index_remove(r->index, fresh.names);
        goto nomem;
    }
    fresh.kept = r->sweep;
    struct ctr *old = idmap_get(r->byid, c->id);
    if (old) {
        /* The key becomes the fresh copy of the id before the old one is
         * freed; a replacement cannot fail. */
        idmap_put(r->byid, fresh.id, old);
        name_index_remove(r->index, old->names);
        unkey(r, old, old->neps);
        fresh.slot = old->slot;
        r->nswarm = r->nswarm - old->swarm + fresh.swarm;
        ctr_clear(old);
        *old = fresh;
    } else {
        struct ctr *n = NULL;
        if (r->n == r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 16;
            struct ctr **v = realloc(r->ctrs, cap * sizeof *v);
            if (!v)
                goto unclaim;
            r->ctrs = v;
            r->cap = cap;
        }
        if (!(n = malloc(sizeof *n)))
            goto unclaim;
        *n = fresh;
        if (idmap_put(r->byid, n->id, n) < 0) {
            free(n);
            goto unclaim;
        }
        n->slot = r->n;
        r->ctrs[r->n++] = n;
        r->nswarm += n->swarm;
    }
    r->version++;
    return 0;
unclaim:
    name_index_remove(r->index, fresh.names);
    unkey(r, &fresh, fresh.neps);
nomem:
    ctr_clear(&fresh);
    errno = ENOMEM;
    return -1;
}

static void drop(struct registry *r, struct ctr *c)
{
    r->nswarm -= c->swarm;
    idmap_del(r->byid, c->id);
    name_index_remove(r->index, c->names);
    unkey(r, c, c->neps);
    struct ctr *last = r->ctrs[--r->n];
    r->ctrs[c->slot] = last;
    last->slot = c->slot;
    ctr_clear(c);
    free(c);
    r->version++;
}

void registry_drop(struct registry *r, const char *id)
{
    struct ctr *c = idmap_get(r->byid, id);
    if (c)
        drop(r, c);
}

void registry_sweep_begin(struct registry *r) { r->sweep++; }

void registry_keep(struct registry *r, const char *id)
{
    struct ctr *c = idmap_get(r->byid, id);
    if (c)
        c->kept = r->sweep;
}

size_t registry_sweep(struct registry *r)
{
    size_t gone = 0;
    for (size_t i = 0; i < r->n;) {
        /* Swarm's entries are not in the container list: docker_swarm
         * sweeps them itself. */
        if (r->ctrs[i]->kept == r->sweep || r->ctrs[i]->swarm) {
            i++;
        } else { /* the last one moves into slot i: look at it next */
            drop(r, r->ctrs[i]);
            gone++;
        }
    }
    return gone;
}

/* Forgets r->nets[i]'s subnets (its key is compose_keys's). */
static void forget_net(struct registry *r, size_t i)
{
    free(r->nets[i].name);
    free(r->nets[i].subnets);
    r->nets[i] = r->nets[--r->nnets];
    r->version++;
}

void registry_drop_network(struct registry *r, const char *name)
{
    compose_keys_set(r->keys, name, NULL, NULL); /* cannot fail */
    for (size_t i = 0; i < r->nnets; i++) {
        if (strcmp(r->nets[i].name, name) == 0) {
            forget_net(r, i);
            return;
        }
    }
}

int registry_put_network(struct registry *r, const char *name, const char *project,
                         const char *key, const struct reg_subnet *subnets, size_t n)
{
    struct net fresh = {.n = n};
    if (!(fresh.name = strdup(name)) ||
        (n && !(fresh.subnets = malloc(n * sizeof *subnets))))
        goto nomem;
    if (n)
        memcpy(fresh.subnets, subnets, n * sizeof *subnets);
    /* Replacing: the old subnets go; the key is replaced below (kept as it
     * is when it is the same). */
    for (size_t i = 0; i < r->nnets; i++) {
        if (strcmp(r->nets[i].name, name) == 0) {
            forget_net(r, i);
            break;
        }
    }
    struct net *v = realloc(r->nets, (r->nnets + 1) * sizeof *v);
    if (!v)
        goto nomem;
    r->nets = v;
    r->nets[r->nnets++] = fresh;
    r->version++;
    /* A failure leaves the network there, without its key. */
    return compose_keys_set(r->keys, name, project, key);
nomem:
    free(fresh.name);
    free(fresh.subnets);
    errno = ENOMEM;
    return -1;
}

/* ---- lookups ---- */

int registry_resolve_from(struct registry *r, const char *name, size_t len, int family,
                          size_t first, struct addr *out, size_t max)
{
    int n = name_index_resolve(r->index, name, len, family, first, out, max);
    if (n >= 0)
        return n;
    /* A Compose key read in the name stands for one network's full name:
     * resolved as that, so rotation and families are the same. */
    char full[2 * REG_NAME_MAX + 2];
    int keyed = compose_keys_resolve(r->keys, name, len, full, sizeof full);
    if (keyed <= 0)
        return keyed;
    return name_index_resolve(r->index, full, strlen(full), family, first, out, max);
}

int registry_resolve(struct registry *r, const char *name, size_t len, int family,
                     struct addr *out, size_t max)
{
    return registry_resolve_from(r, name, len, family, 0, out, max);
}

int registry_ptr(struct registry *r, const struct addr *ip, char *name, size_t len)
{
    return name_index_ptr(r->index, ip, name, len);
}

static bool in_subnet(const struct reg_subnet *s, const struct addr *ip)
{
    return addr_in_subnet(ip, &s->net, s->prefix);
}

bool registry_knows_client(struct registry *r, const struct addr *ip)
{
    for (size_t i = 0; i < r->nnets; i++)
        for (size_t k = 0; k < r->nets[i].n; k++)
            if (in_subnet(&r->nets[i].subnets[k], ip))
                return true;
    return false;
}

uint64_t registry_version(const struct registry *r) { return r->version; }

size_t registry_count(const struct registry *r) { return r->n; }

size_t registry_swarm_count(const struct registry *r) { return r->nswarm; }

void registry_foreach(struct registry *r, registry_visit_fn *fn, void *arg)
{
    /* One endpoint array for every visit: a sweep over 100,000 containers
     * should not cost 100,000 allocations. */
    size_t most = 1;
    for (size_t i = 0; i < r->n; i++)
        if (r->ctrs[i]->neps > most)
            most = r->ctrs[i]->neps;
    struct reg_endpoint *eps = calloc(most, sizeof *eps);
    if (!eps)
        return;
    for (size_t i = 0; i < r->n; i++) {
        const struct ctr *c = r->ctrs[i];
        for (size_t k = 0; k < c->neps; k++)
            eps[k] = (struct reg_endpoint){c->eps[k].network,
                                           c->eps[k].has_v4,
                                           c->eps[k].has_v6,
                                           c->eps[k].v4,
                                           c->eps[k].v6,
                                           (const char *const *)c->eps[k].aliases,
                                           c->eps[k].naliases};
        struct reg_container rc = {c->id,
                                   c->name,
                                   c->project,
                                   c->service,
                                   c->number,
                                   c->oneoff,
                                   c->publish,
                                   eps,
                                   c->neps,
                                   c->transparent,
                                   c->proxy_protocol,
                                   c->swarm,
                                   NULL,
                                   0};
        fn(&rc, arg);
    }
    free(eps);
}

void registry_set_stale(struct registry *r, bool stale) { r->stale = stale; }

bool registry_stale(const struct registry *r) { return r->stale; }

void registry_set_engine(struct registry *r, bool known, const char *why)
{
    r->known = known;
    /* A longer reason is cut: it still says which. */
    snprintf(r->engine_why, sizeof r->engine_why, "%s", why ? why : "");
}

bool registry_known(const struct registry *r) { return r->known; }

const char *registry_engine_why(const struct registry *r) { return r->engine_why; }

bool registry_has_below(struct registry *r, const char *name, size_t len)
{
    /* Through a Compose key too, as registry_resolve reads one: names below
     * "internal.lab_backend" are below "internal.backend" too. */
    return name_index_has_below(r->index, name, len) ||
           compose_keys_has_below(r->keys, name, len);
}
