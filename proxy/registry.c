#include "berth/registry.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/hash.h"
#include "berth/idmap.h"
#include "berth/log.h"
#include "berth/name_index.h"

/* ---- stored containers and networks ---- */

struct ep {
    char *network;
    bool has_v4, has_v6;
    struct in_addr v4;
    struct in6_addr v6;
    char **aliases;
    size_t naliases;
};

struct ctr {
    char *id, *name, *project, *service, *publish;
    int number;
    bool oneoff;
    struct ep *eps;
    size_t neps;
    size_t slot;            /* where it is in registry.ctrs */
    struct name_ref *names; /* what it claimed in the index */
    uint64_t kept;          /* the last sweep it was current in */
};

struct net {
    char *name;
    char *project, *key; /* Compose's labels, or NULL */
    struct reg_subnet *subnets;
    size_t n;
};

/* The networks one Compose key names (several projects may use it). */
struct keyed_net {
    char *name, *project;
};
struct keyed {
    char *key; /* lower case: the idmap's key */
    size_t n;
    struct keyed_net *nets;
};

/* Ambiguous names already warned about, with a hash of their networks. */
#define SAID_MAX 8

struct registry {
    /* Pointers, so the id index below (keyed by each ctr's own id) and a
     * reordering for the name index never move a container. */
    struct ctr **ctrs;
    size_t n, cap;
    struct idmap *byid; /* id -> ctr: a host may run 100,000 */
    struct name_index *index;
    struct net *nets;
    size_t nnets;
    struct idmap *bykey; /* lower-case Compose key -> struct keyed */
    size_t nkeyed;
    struct {
        char name[REG_NAME_MAX];
        uint32_t nets;
    } said[SAID_MAX];
    unsigned nsaid; /* said[] is a ring */
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
        !(r->bykey = idmap_new())) {
        idmap_free(r->byid);
        name_index_free(r->index);
        free(r);
        return NULL;
    }
    return r;
}

/* ---- Compose network keys ---- */

static void key_forget(struct registry *r, const struct net *net)
{
    char lc[REG_NAME_MAX];
    if (!net->key || snprintf(lc, sizeof lc, "%s", net->key) >= (int)sizeof lc)
        return;
    for (char *p = lc; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    struct keyed *k = idmap_get(r->bykey, lc);
    if (!k)
        return;
    for (size_t i = 0; i < k->n; i++) {
        if (strcmp(k->nets[i].name, net->name) == 0) {
            free(k->nets[i].name);
            free(k->nets[i].project);
            k->nets[i] = k->nets[--k->n];
            break;
        }
    }
    if (k->n)
        return;
    idmap_del(r->bykey, k->key);
    r->nkeyed--;
    free(k->key);
    free(k->nets);
    free(k);
}

/* Files net under its key. Keys longer than a name can be are not names:
 * skipped. */
static int key_learn(struct registry *r, const struct net *net)
{
    char lc[REG_NAME_MAX];
    if (!net->key || !net->key[0] ||
        snprintf(lc, sizeof lc, "%s", net->key) >= (int)sizeof lc)
        return 0;
    for (char *p = lc; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    struct keyed *k = idmap_get(r->bykey, lc);
    if (!k) {
        if (!(k = calloc(1, sizeof *k)) || !(k->key = strdup(lc)) ||
            idmap_put(r->bykey, k->key, k) < 0) {
            if (k)
                free(k->key);
            free(k);
            return -1;
        }
        r->nkeyed++;
    }
    struct keyed_net *v = realloc(k->nets, (k->n + 1) * sizeof *v);
    if (v)
        k->nets = v;
    if (!v || !(v[k->n].name = strdup(net->name)) ||
        !(v[k->n].project = strdup(net->project ? net->project : ""))) {
        if (v)
            free(v[k->n].name);
        return -1; /* k may stay empty: lookups skip it, forgetting frees it */
    }
    k->n++;
    return 0;
}

/* Warns once per name and set of networks; says whether it did. */
static bool say_ambiguous(struct registry *r, const char *name, uint32_t nets)
{
    for (unsigned i = 0; i < SAID_MAX; i++)
        if (r->said[i].nets == nets && strcmp(r->said[i].name, name) == 0)
            return false;
    unsigned i = r->nsaid++ % SAID_MAX;
    snprintf(r->said[i].name, sizeof r->said[i].name, "%s", name);
    r->said[i].nets = nets;
    return true;
}

/* <prefix>.<net> into full (just <net> when at is 0: the key alone), for
 * name lc read with a key starting at at. Its length if the index has it,
 * else -1. */
static int join(const char *lc, size_t at, const char *net, char *full, size_t size)
{
    int n = snprintf(full, size, "%.*s%s%s", (int)(at ? at - 1 : 0), lc, at ? "." : "",
                     net);
    return n < 0 || (size_t)n >= size ? -1 : n;
}

static int under(struct registry *r, const char *lc, size_t at, const char *net,
                 char *full, size_t size)
{
    int n = join(lc, at, net, full, size);
    if (n < 0 ||
        name_index_resolve(r->index, full, (size_t)n, AF_INET, 0, NULL, 0) < 0)
        return -1;
    return n;
}

/* name lowered into lc (REG_NAME_MAX bytes); false when no Compose key can
 * match it. */
static bool lower_keyed(const struct registry *r, const char *name, size_t len,
                        char *lc)
{
    if (!r->nkeyed || len == 0 || len >= REG_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        lc[i] = (char)tolower((unsigned char)name[i]);
    lc[len] = '\0';
    return true;
}

/* The first key at or after *at that the rest of lc is, trying the whole
 * name and then what follows each dot; *at is left at it. NULL when none. */
static const struct keyed *next_key(struct registry *r, const char *lc, size_t len,
                                    size_t *at)
{
    for (;;) {
        const struct keyed *k = idmap_get(r->bykey, lc + *at);
        if (k)
            return k;
        const char *dot = memchr(lc + *at, '.', len - *at);
        if (!dot)
            return NULL;
        *at = (size_t)(dot - lc) + 1;
    }
}

/* The position after the key found at at, for next_key's next round. */
static bool skip_key(const char *lc, size_t len, size_t *at)
{
    const char *dot = memchr(lc + *at, '.', len - *at);
    if (!dot)
        return false;
    *at = (size_t)(dot - lc) + 1;
    return true;
}

/* name (lc, len bytes) read as <prefix>.<key>, key starting at at (0: the
 * name is the key itself). Returns as name_index_resolve, or -2 when no
 * network of the key has the name. */
static int resolve_key(struct registry *r, const char *lc, size_t len, size_t at,
                       const struct keyed *k, int family, size_t first,
                       struct addr *out, size_t max)
{
    char full[2 * REG_NAME_MAX + 2];
    size_t hits = 0, hit = 0;
    uint32_t h = HASH_INIT;
    for (size_t i = 0; i < k->n; i++) {
        if (under(r, lc, at, k->nets[i].name, full, sizeof full) < 0)
            continue;
        h = hash_bytes(h, k->nets[i].name, strlen(k->nets[i].name) + 1);
        if (!hits++)
            hit = i;
    }
    if (!hits)
        return -2;
    if (hits == 1) {
        int n = under(r, lc, at, k->nets[hit].name, full, sizeof full);
        return name_index_resolve(r->index, full, (size_t)n, family, first, out, max);
    }
    if (!at) /* the key alone: networks, no address of their own */
        return 0;
    if (say_ambiguous(r, lc, h)) {
        char alts[512] = "";
        size_t w = 0;
        for (size_t i = 0; i < k->n && w < sizeof alts; i++) {
            if (under(r, lc, at, k->nets[i].name, full, sizeof full) < 0)
                continue;
            int m = snprintf(alts + w, sizeof alts - w, "%s%s (project %s)",
                             w ? ", " : "", full, k->nets[i].project);
            w = m < 0 ? sizeof alts : w + (size_t)m;
        }
        log_warn("names: '%.*s' is ambiguous (Compose network '%s', %zu projects): "
                 "it resolves to nothing; use %s",
                 (int)len, lc, k->key, hits, alts);
    }
    return -1;
}

/* A name the index does not know, read with a Compose key for a network:
 * the whole name as a key, then what follows each dot. */
static int resolve_keyed(struct registry *r, const char *name, size_t len, int family,
                         size_t first, struct addr *out, size_t max)
{
    char lc[REG_NAME_MAX];
    if (!lower_keyed(r, name, len, lc))
        return -1;
    const struct keyed *k;
    for (size_t at = 0; (k = next_key(r, lc, len, &at));) {
        int n = resolve_key(r, lc, len, at, k, family, first, out, max);
        if (n != -2)
            return n;
        if (!skip_key(lc, len, &at))
            break;
    }
    return -1;
}

/* ---- networks ---- */

void registry_clear_networks(struct registry *r)
{
    for (size_t i = 0; i < r->nnets; i++) {
        key_forget(r, &r->nets[i]);
        free(r->nets[i].name);
        free(r->nets[i].project);
        free(r->nets[i].key);
        free(r->nets[i].subnets);
    }
    free(r->nets);
    r->nets = NULL;
    r->nnets = 0;
    r->version++;
}

void registry_clear(struct registry *r)
{
    idmap_clear(r->byid);
    for (size_t i = 0; i < r->n; i++) {
        name_index_remove(r->index, r->ctrs[i]->names);
        ctr_clear(r->ctrs[i]);
        free(r->ctrs[i]);
    }
    r->n = 0;
    registry_clear_networks(r);
}

void registry_free(struct registry *r)
{
    if (!r)
        return;
    registry_clear(r);
    free(r->ctrs);
    idmap_free(r->byid);
    idmap_free(r->bykey);
    name_index_free(r->index);
    free(r);
}

static int copy_ctr(struct ctr *dst, const struct reg_container *src)
{
    memset(dst, 0, sizeof *dst);
    dst->number = src->number;
    dst->oneoff = src->oneoff;
    if (!(dst->id = strdup(src->id)) ||
        !(dst->name = strdup(src->name ? src->name : "")) ||
        (src->project && !(dst->project = strdup(src->project))) ||
        (src->service && !(dst->service = strdup(src->service))) ||
        (src->publish && !(dst->publish = strdup(src->publish))))
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
    fresh.kept = r->sweep;
    struct ctr *old = idmap_get(r->byid, c->id);
    if (old) {
        /* The key becomes the fresh copy of the id before the old one is
         * freed; a replacement cannot fail. */
        idmap_put(r->byid, fresh.id, old);
        name_index_remove(r->index, old->names);
        fresh.slot = old->slot;
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
    }
    r->version++;
    return 0;
unclaim:
    name_index_remove(r->index, fresh.names);
nomem:
    ctr_clear(&fresh);
    errno = ENOMEM;
    return -1;
}

static void drop(struct registry *r, struct ctr *c)
{
    idmap_del(r->byid, c->id);
    name_index_remove(r->index, c->names);
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
        if (r->ctrs[i]->kept == r->sweep) {
            i++;
        } else { /* the last one moves into slot i: look at it next */
            drop(r, r->ctrs[i]);
            gone++;
        }
    }
    return gone;
}

void registry_drop_network(struct registry *r, const char *name)
{
    for (size_t i = 0; i < r->nnets; i++) {
        if (strcmp(r->nets[i].name, name) == 0) {
            key_forget(r, &r->nets[i]);
            free(r->nets[i].name);
            free(r->nets[i].project);
            free(r->nets[i].key);
            free(r->nets[i].subnets);
            r->nets[i] = r->nets[--r->nnets];
            r->version++;
            return;
        }
    }
}

int registry_put_network(struct registry *r, const char *name, const char *project,
                         const char *key, const struct reg_subnet *subnets, size_t n)
{
    struct net fresh = {.n = n};
    if (!(fresh.name = strdup(name)) ||
        (n && !(fresh.subnets = malloc(n * sizeof *subnets))) ||
        (key && project &&
         (!(fresh.key = strdup(key)) || !(fresh.project = strdup(project)))))
        goto nomem;
    if (n)
        memcpy(fresh.subnets, subnets, n * sizeof *subnets);
    /* Replacing: the old one goes, keys and all. */
    registry_drop_network(r, name);
    struct net *v = realloc(r->nets, (r->nnets + 1) * sizeof *v);
    if (!v)
        goto nomem;
    r->nets = v;
    r->nets[r->nnets++] = fresh;
    r->version++;
    if (key_learn(r, &fresh) < 0) { /* the network stays, without its key */
        key_forget(r, &fresh);
        free(r->nets[r->nnets - 1].key);
        r->nets[r->nnets - 1].key = NULL;
        errno = ENOMEM;
        return -1;
    }
    return 0;
nomem:
    free(fresh.name);
    free(fresh.project);
    free(fresh.key);
    free(fresh.subnets);
    errno = ENOMEM;
    return -1;
}

/* ---- lookups ---- */

int registry_resolve_from(struct registry *r, const char *name, size_t len, int family,
                          size_t first, struct addr *out, size_t max)
{
    int n = name_index_resolve(r->index, name, len, family, first, out, max);
    return n >= 0 ? n : resolve_keyed(r, name, len, family, first, out, max);
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
    if (s->net.ss.ss_family != ip->ss.ss_family)
        return false;
    const unsigned char *a, *b;
    size_t bytes;
    if (ip->ss.ss_family == AF_INET) {
        a = (const void *)&((const struct sockaddr_in *)&ip->ss)->sin_addr;
        b = (const void *)&((const struct sockaddr_in *)&s->net.ss)->sin_addr;
        bytes = 4;
    } else {
        a = (const void *)&((const struct sockaddr_in6 *)&ip->ss)->sin6_addr;
        b = (const void *)&((const struct sockaddr_in6 *)&s->net.ss)->sin6_addr;
        bytes = 16;
    }
    unsigned bits = s->prefix > bytes * 8 ? (unsigned)bytes * 8 : s->prefix;
    for (unsigned i = 0; i < bits; i++) {
        unsigned char m = (unsigned char)(0x80 >> (i % 8));
        if ((a[i / 8] & m) != (b[i / 8] & m))
            return false;
    }
    return true;
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
        struct reg_container rc = {c->id,      c->name,   c->project,
                                   c->service, c->number, c->oneoff,
                                   c->publish, eps,       c->neps};
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
    if (name_index_has_below(r->index, name, len))
        return true;
    /* Through a Compose key, as registry_resolve reads one: names below
     * "internal.lab_backend" are below "internal.backend" too. */
    char lc[REG_NAME_MAX], full[2 * REG_NAME_MAX + 2];
    if (!lower_keyed(r, name, len, lc))
        return false;
    const struct keyed *k;
    for (size_t at = 0; (k = next_key(r, lc, len, &at));) {
        for (size_t i = 0; i < k->n; i++) {
            int n = join(lc, at, k->nets[i].name, full, sizeof full);
            if (n > 0 && name_index_has_below(r->index, full, (size_t)n))
                return true;
        }
        if (!skip_key(lc, len, &at))
            break;
    }
    return false;
}
