#include "berth/registry.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/hash.h"

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
};

struct net {
    char *name;
    struct reg_subnet *subnets;
    size_t n;
};

/* ---- the index: lower-case name -> addresses ---- */

/* Which reading of a name an entry holds; a lower rank wins a clash. */
enum rank { R_NAME, R_SHORT_ID, R_SERVICE, R_REPLICA, R_NETWORK, R_PARENT };

struct entry {
    struct entry *next;
    enum rank rank;
    struct in_addr *v4;
    struct in6_addr *v6;
    size_t n4, n6, cap4, cap6;
    char key[];
};

struct ptr_entry {
    struct ptr_entry *next;
    struct addr ip;
    const char *name; /* borrowed from the container */
};

struct registry {
    struct ctr *ctrs;
    size_t n, cap;
    struct net *nets;
    size_t nnets;
    uint64_t version;
    bool dirty; /* index out of date */
    struct entry **buckets;
    struct ptr_entry **pbuckets;
    size_t nbuckets;
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

static void index_free(struct registry *r)
{
    for (size_t i = 0; i < r->nbuckets; i++) {
        for (struct entry *e = r->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e->v4);
            free(e->v6);
            free(e);
        }
        for (struct ptr_entry *p = r->pbuckets[i], *next; p; p = next) {
            next = p->next;
            free(p);
        }
    }
    free(r->buckets);
    free(r->pbuckets);
    r->buckets = NULL;
    r->pbuckets = NULL;
    r->nbuckets = 0;
}

struct registry *registry_new(void)
{
    struct registry *r = calloc(1, sizeof *r);
    if (r)
        r->dirty = true;
    return r;
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
    r->version++;
}

void registry_clear(struct registry *r)
{
    for (size_t i = 0; i < r->n; i++)
        ctr_clear(&r->ctrs[i]);
    r->n = 0;
    registry_clear_networks(r);
    r->dirty = true;
}

void registry_free(struct registry *r)
{
    if (!r)
        return;
    registry_clear(r);
    free(r->ctrs);
    index_free(r);
    free(r);
}

static struct ctr *find_ctr(struct registry *r, const char *id)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->ctrs[i].id, id) == 0)
            return &r->ctrs[i];
    return NULL;
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
    if (copy_ctr(&fresh, c) < 0) {
        ctr_clear(&fresh);
        errno = ENOMEM;
        return -1;
    }
    struct ctr *old = find_ctr(r, c->id);
    if (old) {
        ctr_clear(old);
        *old = fresh;
    } else {
        if (r->n == r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 16;
            struct ctr *v = realloc(r->ctrs, cap * sizeof *v);
            if (!v) {
                ctr_clear(&fresh);
                errno = ENOMEM;
                return -1;
            }
            r->ctrs = v;
            r->cap = cap;
        }
        r->ctrs[r->n++] = fresh;
    }
    r->version++;
    r->dirty = true;
    return 0;
}

void registry_drop(struct registry *r, const char *id)
{
    struct ctr *c = find_ctr(r, id);
    if (!c)
        return;
    ctr_clear(c);
    *c = r->ctrs[--r->n];
    r->version++;
    r->dirty = true;
}

int registry_put_network(struct registry *r, const char *name,
                         const struct reg_subnet *subnets, size_t n)
{
    struct reg_subnet *copy = n ? malloc(n * sizeof *copy) : NULL;
    if (n && !copy)
        return -1;
    if (n)
        memcpy(copy, subnets, n * sizeof *copy);
    for (size_t i = 0; i < r->nnets; i++) {
        if (strcmp(r->nets[i].name, name) == 0) {
            free(r->nets[i].subnets);
            r->nets[i].subnets = copy;
            r->nets[i].n = n;
            r->version++;
            return 0;
        }
    }
    struct net *v = realloc(r->nets, (r->nnets + 1) * sizeof *v);
    char *nm = strdup(name);
    if (!v || !nm) {
        if (v)
            r->nets = v;
        free(nm);
        free(copy);
        errno = ENOMEM;
        return -1;
    }
    r->nets = v;
    r->nets[r->nnets++] = (struct net){nm, copy, n};
    r->version++;
    return 0;
}

void registry_drop_network(struct registry *r, const char *name)
{
    for (size_t i = 0; i < r->nnets; i++) {
        if (strcmp(r->nets[i].name, name) == 0) {
            free(r->nets[i].name);
            free(r->nets[i].subnets);
            r->nets[i] = r->nets[--r->nnets];
            r->version++;
            return;
        }
    }
}

/* ---- building the index ---- */

static size_t lower_key(char *dst, size_t cap, const char *a, const char *b,
                        const char *c)
{
    const char *parts[3] = {a, b, c};
    size_t n = 0;
    for (int i = 0; i < 3 && parts[i]; i++) {
        if (i && n < cap)
            dst[n++] = '.';
        for (const char *p = parts[i]; *p && n < cap; p++)
            dst[n++] = (char)tolower((unsigned char)*p);
    }
    return n;
}

static struct entry *entry_get(struct registry *r, const char *key, size_t len,
                               enum rank rank)
{
    struct entry **b =
        &r->buckets[hash_bytes(HASH_INIT, key, len) & (r->nbuckets - 1)];
    for (struct entry *e = *b; e; e = e->next) {
        if (strlen(e->key) == len && memcmp(e->key, key, len) == 0) {
            if (e->rank < rank)
                return NULL; /* a stronger reading holds it */
            if (e->rank > rank) {
                e->rank = rank;
                e->n4 = e->n6 = 0;
            }
            return e;
        }
    }
    struct entry *e = calloc(1, sizeof *e + len + 1);
    if (!e)
        return NULL;
    memcpy(e->key, key, len);
    e->rank = rank;
    e->next = *b;
    *b = e;
    return e;
}

static int entry_add(struct entry *e, const struct ep *ep)
{
    if (ep->has_v4) {
        for (size_t i = 0; i < e->n4; i++)
            if (e->v4[i].s_addr == ep->v4.s_addr)
                goto six;
        if (e->n4 == e->cap4) {
            size_t cap = e->cap4 ? e->cap4 * 2 : 2;
            struct in_addr *v = realloc(e->v4, cap * sizeof *v);
            if (!v)
                return -1;
            e->v4 = v;
            e->cap4 = cap;
        }
        e->v4[e->n4++] = ep->v4;
    }
six:
    if (ep->has_v6) {
        for (size_t i = 0; i < e->n6; i++)
            if (memcmp(&e->v6[i], &ep->v6, sizeof ep->v6) == 0)
                return 0;
        if (e->n6 == e->cap6) {
            size_t cap = e->cap6 ? e->cap6 * 2 : 2;
            struct in6_addr *v = realloc(e->v6, cap * sizeof *v);
            if (!v)
                return -1;
            e->v6 = v;
            e->cap6 = cap;
        }
        e->v6[e->n6++] = ep->v6;
    }
    return 0;
}

static int add_name(struct registry *r, enum rank rank, const char *a, const char *b,
                    const char *c, const struct ep *eps, size_t neps)
{
    char key[3 * REG_NAME_MAX];
    size_t len = lower_key(key, sizeof key, a, b, c);
    struct entry *e = entry_get(r, key, len, rank);
    if (!e)
        return 0; /* outranked (or no memory: skip) */
    for (size_t i = 0; i < neps; i++)
        if (entry_add(e, &eps[i]) < 0)
            return -1;
    return 0;
}

static int add_ptr(struct registry *r, struct addr *ip, const char *name)
{
    uint32_t h = addr_hash(ip) & (uint32_t)(r->nbuckets - 1);
    for (struct ptr_entry *p = r->pbuckets[h]; p; p = p->next)
        if (addr_equal(&p->ip, ip))
            return 0;
    struct ptr_entry *p = malloc(sizeof *p);
    if (!p)
        return -1;
    p->ip = *ip;
    p->name = name;
    p->next = r->pbuckets[h];
    r->pbuckets[h] = p;
    return 0;
}

static void make_addr4(struct addr *a, struct in_addr v4)
{
    memset(a, 0, sizeof *a);
    struct sockaddr_in *s = (struct sockaddr_in *)&a->ss;
    s->sin_family = AF_INET;
    s->sin_addr = v4;
    a->len = sizeof *s;
}

static void make_addr6(struct addr *a, const struct in6_addr *v6)
{
    memset(a, 0, sizeof *a);
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&a->ss;
    s->sin6_family = AF_INET6;
    s->sin6_addr = *v6;
    a->len = sizeof *s;
}

static int by_number(const void *x, const void *y)
{
    const struct ctr *a = x, *b = y;
    return (a->number > b->number) - (a->number < b->number);
}

static int index_container(struct registry *r, const struct ctr *c)
{
    char shortid[13];
    snprintf(shortid, sizeof shortid, "%s", c->id);
    if (add_name(r, R_NAME, c->name, NULL, NULL, c->eps, c->neps) < 0 ||
        add_name(r, R_SHORT_ID, shortid, NULL, NULL, c->eps, c->neps) < 0)
        return -1;
    /* Projects and networks hold names below them: they exist, with no
     * address of their own, so resolvers do not take "lab" as NXDOMAIN
     * and give up on "api.lab". */
    if (c->project && add_name(r, R_PARENT, c->project, NULL, NULL, NULL, 0) < 0)
        return -1;
    if (c->service && c->project && !c->oneoff) {
        char num[16];
        snprintf(num, sizeof num, "%d", c->number);
        if (add_name(r, R_SERVICE, c->service, c->project, NULL, c->eps, c->neps) <
                0 ||
            add_name(r, R_REPLICA, num, c->service, c->project, c->eps, c->neps) < 0)
            return -1;
    }
    for (size_t i = 0; i < c->neps; i++) {
        const struct ep *ep = &c->eps[i];
        if (add_name(r, R_PARENT, ep->network, NULL, NULL, NULL, 0) < 0 ||
            add_name(r, R_NETWORK, c->name, ep->network, NULL, ep, 1) < 0)
            return -1;
        for (size_t k = 0; k < ep->naliases; k++)
            if (add_name(r, R_NETWORK, ep->aliases[k], ep->network, NULL, ep, 1) < 0)
                return -1;
        struct addr a;
        if (ep->has_v4) {
            make_addr4(&a, ep->v4);
            if (add_ptr(r, &a, c->name) < 0)
                return -1;
        }
        if (ep->has_v6) {
            make_addr6(&a, &ep->v6);
            if (add_ptr(r, &a, c->name) < 0)
                return -1;
        }
    }
    return 0;
}

/* Rebuilds the whole index: O(containers), done only after a change. */
static int reindex(struct registry *r)
{
    if (!r->dirty)
        return 0;
    index_free(r);
    size_t n = 64;
    while (n < r->n * 8)
        n *= 2;
    r->buckets = calloc(n, sizeof *r->buckets);
    r->pbuckets = calloc(n, sizeof *r->pbuckets);
    if (!r->buckets || !r->pbuckets) {
        free(r->buckets);
        free(r->pbuckets);
        r->buckets = NULL;
        r->pbuckets = NULL;
        return -1;
    }
    r->nbuckets = n;
    /* Replicas answer in container-number order. */
    if (r->n > 1)
        qsort(r->ctrs, r->n, sizeof *r->ctrs, by_number);
    for (size_t i = 0; i < r->n; i++)
        if (index_container(r, &r->ctrs[i]) < 0)
            return -1;
    r->dirty = false;
    return 0;
}

/* ---- lookups ---- */

int registry_resolve(struct registry *r, const char *name, size_t len, int family,
                     struct addr *out, size_t max)
{
    char key[3 * REG_NAME_MAX];
    if (len == 0 || len >= sizeof key || reindex(r) < 0 || !r->nbuckets)
        return -1;
    for (size_t i = 0; i < len; i++)
        key[i] = (char)tolower((unsigned char)name[i]);
    for (struct entry *e =
             r->buckets[hash_bytes(HASH_INIT, key, len) & (r->nbuckets - 1)];
         e; e = e->next) {
        if (strlen(e->key) != len || memcmp(e->key, key, len) != 0)
            continue;
        size_t n = family == AF_INET ? e->n4 : family == AF_INET6 ? e->n6 : 0;
        for (size_t i = 0; i < n && i < max; i++) {
            if (family == AF_INET)
                make_addr4(&out[i], e->v4[i]);
            else
                make_addr6(&out[i], &e->v6[i]);
        }
        return (int)n;
    }
    return -1;
}

int registry_ptr(struct registry *r, const struct addr *ip, char *name, size_t len)
{
    if (reindex(r) < 0 || !r->nbuckets)
        return -1;
    struct addr key;
    if (ip->ss.ss_family == AF_INET)
        make_addr4(&key, ((const struct sockaddr_in *)&ip->ss)->sin_addr);
    else
        make_addr6(&key, &((const struct sockaddr_in6 *)&ip->ss)->sin6_addr);
    for (struct ptr_entry *p = r->pbuckets[addr_hash(&key) & (r->nbuckets - 1)]; p;
         p = p->next) {
        if (addr_equal(&p->ip, &key)) {
            snprintf(name, len, "%s", p->name);
            return 0;
        }
    }
    return -1;
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
    for (size_t i = 0; i < r->n; i++) {
        const struct ctr *c = &r->ctrs[i];
        struct reg_endpoint *eps = calloc(c->neps ? c->neps : 1, sizeof *eps);
        if (!eps)
            return;
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
        free(eps);
    }
}
