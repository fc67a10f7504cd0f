#include "berth/name_index.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/hash.h"
#include "berth/invariant.h"

/* Which reading of a name a claim is; a lower rank wins a clash. R_PTR
 * claims live under address keys, apart from every name. */
enum rank { R_NAME, R_SHORT_ID, R_SERVICE, R_REPLICA, R_NETWORK, R_PARENT, R_PTR };

/* Keys: a namespace byte, then the lower-case name or the address. */
#define KEY_NAME 'n'
#define KEY_ADDR 'a'
#define KEY_MAX (1 + 3 * REG_NAME_MAX)

/* Sizes matter here: a host of 100,000 containers holds half a million
 * claims and entries. */
struct claim {
    struct name_ref *ref;
    const char *name; /* R_PTR: the container's */
    struct in6_addr v6;
    struct in_addr v4;
    int number;
    uint32_t k; /* its place in ref->held: also its order within the ref */
    unsigned char rank;
    bool has_v4, has_v6;
};

/* A name's answer, worked out on its first lookup after a change. */
struct answer {
    size_t n4, n6;
    struct in_addr *v4; /* both point into this allocation */
    struct in6_addr *v6;
};

struct entry {
    struct entry *next;   /* in its bucket */
    struct claim *claims; /* &one until a second claim comes */
    uint32_t n, cap;
    uint32_t parents; /* R_PARENT claims: counted, they have no address */
    uint32_t klen;
    struct answer *ans; /* NULL: not worked out since the last change */
    struct claim one;   /* most names have one claim: no allocation */
    char key[];
};

/* One claim of a ref: on which entry, and where there (unless a parent). */
struct held {
    struct entry *e;
    uint32_t idx;
    bool parent;
};

struct name_ref {
    uint64_t seq; /* order among equal container numbers: older first */
    uint32_t n, cap;
    struct held held[]; /* sized for every claim of the container */
};

struct name_index {
    struct entry **buckets;
    size_t nbuckets, n;
    uint64_t seq;
};

struct name_index *name_index_new(void)
{
    struct name_index *x = calloc(1, sizeof *x);
    if (x && !(x->buckets = calloc(x->nbuckets = 64, sizeof *x->buckets))) {
        free(x);
        return NULL;
    }
    return x;
}

static void changed(struct entry *e)
{
    free(e->ans);
    e->ans = NULL;
}

static void entry_free(struct entry *e)
{
    if (e->claims != &e->one)
        free(e->claims);
    free(e->ans);
    free(e);
}

void name_index_free(struct name_index *x)
{
    if (!x)
        return;
    /* Refs are reachable through their claims only: free each once, from
     * its first claim; parent-only refs cannot exist (every container
     * claims its name). */
    for (size_t i = 0; i < x->nbuckets; i++) {
        for (struct entry *e = x->buckets[i], *next; e; e = next) {
            next = e->next;
            for (size_t k = 0; k < e->n; k++) {
                if (e->claims[k].k == 0)
                    free(e->claims[k].ref);
            }
            entry_free(e);
        }
    }
    free(x->buckets);
    free(x);
}

/* ---- the table ---- */

static struct entry **bucket(struct name_index *x, const char *key, size_t klen)
{
    return &x->buckets[hash_bytes(HASH_INIT, key, klen) & (x->nbuckets - 1)];
}

static void grow(struct name_index *x)
{
    size_t n = x->nbuckets * 2;
    struct entry **b = calloc(n, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < x->nbuckets; i++) {
        for (struct entry *e = x->buckets[i], *next; e; e = next) {
            next = e->next;
            struct entry **to = &b[hash_bytes(HASH_INIT, e->key, e->klen) & (n - 1)];
            e->next = *to;
            *to = e;
        }
    }
    free(x->buckets);
    x->buckets = b;
    x->nbuckets = n;
}

static struct entry *find(struct name_index *x, const char *key, size_t klen)
{
    for (struct entry *e = *bucket(x, key, klen); e; e = e->next)
        if (e->klen == klen && memcmp(e->key, key, klen) == 0)
            return e;
    return NULL;
}

static int below_add(struct name_index *x, const char *key, size_t klen);
static void below_drop(struct name_index *x, const char *key, size_t klen);

static struct entry *find_or_make(struct name_index *x, const char *key, size_t klen)
{
    struct entry *e = find(x, key, klen);
    if (e)
        return e;
    if (x->n >= x->nbuckets)
        grow(x);
    if (key[0] == KEY_NAME && below_add(x, key, klen) < 0)
        return NULL;
    if (!(e = calloc(1, sizeof *e + klen))) {
        if (key[0] == KEY_NAME)
            below_drop(x, key, klen);
        return NULL;
    }
    memcpy(e->key, key, klen);
    e->klen = (uint32_t)klen;
    e->claims = &e->one;
    e->cap = 1;
    struct entry **b = bucket(x, key, klen);
    e->next = *b;
    *b = e;
    x->n++;
    return e;
}

static void unlink_entry(struct name_index *x, struct entry *e)
{
    for (struct entry **p = bucket(x, e->key, e->klen); *p; p = &(*p)->next) {
        if (*p == e) {
            *p = e->next;
            x->n--;
            if (e->key[0] == KEY_NAME)
                below_drop(x, e->key, e->klen);
            entry_free(e);
            return;
        }
    }
}

/* ---- claims ---- */

static size_t name_key(char *key, const char *a, const char *b, const char *c)
{
    const char *parts[3] = {a, b, c};
    size_t n = 0;
    key[n++] = KEY_NAME;
    for (int i = 0; i < 3 && parts[i]; i++) {
        if (i && n < KEY_MAX)
            key[n++] = '.';
        for (const char *p = parts[i]; *p && n < KEY_MAX; p++)
            key[n++] = (char)tolower((unsigned char)*p);
    }
    return n;
}

static size_t addr_key(char *key, int family, const void *ip)
{
    size_t len = family == AF_INET ? 4 : 16;
    key[0] = KEY_ADDR;
    key[1] = (char)family;
    memcpy(key + 2, ip, len);
    return 2 + len;
}

/* Records cl (cl->rank R_PARENT: counted) under key for ref. */
static int claim(struct name_index *x, struct name_ref *ref, const char *key,
                 size_t klen, struct claim cl)
{
    INVARIANT(ref->n < ref->cap); /* name_index_add counted them all */
    struct entry *e = find_or_make(x, key, klen);
    if (!e)
        return -1;
    bool parent = cl.rank == R_PARENT;
    if (!parent && e->n == e->cap) {
        uint32_t cap = e->cap * 2;
        struct claim *v = malloc(cap * sizeof *v);
        if (!v) {
            if (!e->n && !e->parents)
                unlink_entry(x, e);
            return -1;
        }
        memcpy(v, e->claims, e->n * sizeof *v);
        if (e->claims != &e->one)
            free(e->claims);
        e->claims = v;
        e->cap = cap;
    }
    cl.ref = ref;
    cl.k = ref->n;
    ref->held[ref->n++] = (struct held){e, e->n, parent};
    if (parent)
        e->parents++;
    else
        e->claims[e->n++] = cl;
    changed(e);
    return 0;
}

/* One claim per endpoint (or one without address when there is none). */
static int claim_all(struct name_index *x, struct name_ref *ref, const char *key,
                     size_t klen, enum rank rank, const struct reg_container *c)
{
    struct claim cl = {.number = c->number, .rank = (unsigned char)rank};
    if (!c->neps)
        return claim(x, ref, key, klen, cl);
    for (size_t i = 0; i < c->neps; i++) {
        const struct reg_endpoint *ep = &c->eps[i];
        cl.has_v4 = ep->has_v4;
        cl.has_v6 = ep->has_v6;
        cl.v4 = ep->v4;
        cl.v6 = ep->v6;
        if (claim(x, ref, key, klen, cl) < 0)
            return -1;
    }
    return 0;
}

static int claim_ep(struct name_index *x, struct name_ref *ref,
                    const struct reg_container *c, const char *name,
                    const struct reg_endpoint *ep)
{
    char key[KEY_MAX];
    struct claim cl = {.number = c->number, .rank = R_PARENT};
    if (claim(x, ref, key, name_key(key, ep->network, NULL, NULL), cl) < 0)
        return -1;
    cl = (struct claim){.number = c->number,
                        .rank = R_NETWORK,
                        .has_v4 = ep->has_v4,
                        .has_v6 = ep->has_v6,
                        .v4 = ep->v4,
                        .v6 = ep->v6};
    if (claim(x, ref, key, name_key(key, name, ep->network, NULL), cl) < 0)
        return -1;
    for (size_t k = 0; k < ep->naliases; k++)
        if (claim(x, ref, key, name_key(key, ep->aliases[k], ep->network, NULL), cl) <
            0)
            return -1;
    cl = (struct claim){.number = c->number, .rank = R_PTR, .name = name};
    if (ep->has_v4 && claim(x, ref, key, addr_key(key, AF_INET, &ep->v4), cl) < 0)
        return -1;
    if (ep->has_v6 && claim(x, ref, key, addr_key(key, AF_INET6, &ep->v6), cl) < 0)
        return -1;
    return 0;
}

/* How many claims c makes (name_index_add's, one for one). */
static size_t count_claims(const struct reg_container *c)
{
    size_t all = c->neps ? c->neps : 1; /* a claim_all */
    size_t n = 2 * all + (c->project != NULL) + c->nnames * all;
    if (c->service && c->project && !c->oneoff && !c->swarm)
        n += 2 * all;
    for (size_t i = 0; i < c->neps; i++)
        n += 2 + c->eps[i].naliases + c->eps[i].has_v4 + c->eps[i].has_v6;
    return n;
}

struct name_ref *name_index_add(struct name_index *x, const struct reg_container *c)
{
    size_t n = count_claims(c);
    struct name_ref *ref = calloc(1, sizeof *ref + n * sizeof ref->held[0]);
    if (!ref)
        goto nomem;
    ref->cap = (uint32_t)n;
    ref->seq = x->seq++;
    char key[KEY_MAX], shortid[13];
    snprintf(shortid, sizeof shortid, "%s", c->id);
    const char *name = c->name ? c->name : "";
    /* A Swarm entry: its own names, no short id; a VIP has no name. */
    bool named = !c->swarm || name[0];
    if ((named &&
         claim_all(x, ref, key, name_key(key, name, NULL, NULL), R_NAME, c) < 0) ||
        (!c->swarm && claim_all(x, ref, key, name_key(key, shortid, NULL, NULL),
                                R_SHORT_ID, c) < 0))
        goto undo;
    for (size_t i = 0; i < c->nnames; i++) {
        const char *const *p = c->names[i].part;
        if (claim_all(x, ref, key, name_key(key, p[0], p[1], p[2]),
                      c->names[i].replica ? R_REPLICA : R_SERVICE, c) < 0)
            goto undo;
    }
    /* Projects and networks hold names below them: they exist, with no
     * address of their own, so resolvers do not take "lab" as NXDOMAIN
     * and give up on "api.lab". */
    struct claim parent = {.rank = R_PARENT};
    if (c->project &&
        claim(x, ref, key, name_key(key, c->project, NULL, NULL), parent) < 0)
        goto undo;
    if (c->service && c->project && !c->oneoff && !c->swarm) {
        char num[16];
        snprintf(num, sizeof num, "%d", c->number);
        if (claim_all(x, ref, key, name_key(key, c->service, c->project, NULL),
                      R_SERVICE, c) < 0 ||
            claim_all(x, ref, key, name_key(key, num, c->service, c->project),
                      R_REPLICA, c) < 0)
            goto undo;
    }
    for (size_t i = 0; i < c->neps && named; i++)
        if (claim_ep(x, ref, c, name, &c->eps[i]) < 0)
            goto undo;
    return ref;
undo:
    name_index_remove(x, ref);
nomem:
    errno = ENOMEM;
    return NULL;
}

void name_index_remove(struct name_index *x, struct name_ref *ref)
{
    if (!ref)
        return;
    for (size_t i = 0; i < ref->n; i++) {
        struct held *h = &ref->held[i];
        struct entry *e = h->e;
        changed(e);
        if (h->parent) {
            e->parents--;
        } else {
            /* The last claim fills the hole; its ref learns where it went. */
            struct claim *last = &e->claims[--e->n];
            if (h->idx != e->n) {
                e->claims[h->idx] = *last;
                last->ref->held[last->k].idx = h->idx;
            }
        }
        if (!e->n && !e->parents)
            unlink_entry(x, e);
    }
    free(ref);
}

/* ---- answers ---- */

static int by_order(const void *pa, const void *pb)
{
    const struct claim *a = *(struct claim *const *)pa,
                       *b = *(struct claim *const *)pb;
    if (a->number != b->number)
        return a->number < b->number ? -1 : 1;
    if (a->ref->seq != b->ref->seq)
        return a->ref->seq < b->ref->seq ? -1 : 1;
    return (a->k > b->k) - (a->k < b->k);
}

/* Drops later repeats from v (n addresses of len bytes each), keeping the
 * order; returns how many are left. A hash of positions: a service with
 * thousands of replicas costs no more than it has. */
static size_t unique(void *v, size_t n, size_t len)
{
    if (n < 2)
        return n;
    size_t cap = 8;
    while (cap < 2 * n)
        cap *= 2;
    size_t *slots = calloc(cap, sizeof *slots); /* position + 1, 0: empty */
    if (!slots)
        return n; /* repeats are harmless, a failed lookup is not */
    unsigned char *b = v;
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *ip = b + i * len;
        size_t h = hash_bytes(HASH_INIT, ip, len) & (cap - 1);
        while (slots[h] && memcmp(b + (slots[h] - 1) * len, ip, len) != 0)
            h = (h + 1) & (cap - 1);
        if (slots[h])
            continue;
        memmove(b + out * len, ip, len);
        slots[h] = ++out;
    }
    free(slots);
    return out;
}

/* Works out e's answer from its claims: the best rank's addresses, by
 * container number, each once. */
static struct answer *answer(struct entry *e)
{
    if (e->ans)
        return e->ans;
    unsigned char best = R_PARENT;
    for (size_t i = 0; i < e->n; i++)
        if (e->claims[i].rank < best)
            best = e->claims[i].rank;
    size_t n = 0;
    for (size_t i = 0; i < e->n; i++)
        n += e->claims[i].rank == best;
    struct answer *a = malloc(sizeof *a + n * (sizeof *a->v6 + sizeof *a->v4));
    struct claim **order = malloc((n ? n : 1) * sizeof *order);
    if (!a || !order) {
        free(a);
        free(order);
        return NULL;
    }
    a->v6 = (struct in6_addr *)(a + 1);
    a->v4 = (struct in_addr *)(a->v6 + n);
    a->n4 = a->n6 = 0;
    n = 0;
    for (size_t i = 0; i < e->n; i++)
        if (e->claims[i].rank == best)
            order[n++] = &e->claims[i];
    qsort(order, n, sizeof *order, by_order);
    for (size_t i = 0; i < n; i++) {
        if (order[i]->has_v4)
            a->v4[a->n4++] = order[i]->v4;
        if (order[i]->has_v6)
            a->v6[a->n6++] = order[i]->v6;
    }
    free(order);
    a->n4 = unique(a->v4, a->n4, sizeof *a->v4);
    a->n6 = unique(a->v6, a->n6, sizeof *a->v6);
    return e->ans = a;
}

static void make_addr(struct addr *a, int family, const void *ip)
{
    memset(a, 0, sizeof *a);
    if (family == AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)&a->ss;
        s->sin_family = AF_INET;
        memcpy(&s->sin_addr, ip, sizeof s->sin_addr);
        a->len = sizeof *s;
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&a->ss;
        s->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, ip, sizeof s->sin6_addr);
        a->len = sizeof *s;
    }
}

int name_index_resolve(struct name_index *x, const char *name, size_t len, int family,
                       size_t first, struct addr *out, size_t max)
{
    char key[KEY_MAX];
    if (len == 0 || len >= KEY_MAX)
        return -1;
    key[0] = KEY_NAME;
    for (size_t i = 0; i < len; i++)
        key[1 + i] = (char)tolower((unsigned char)name[i]);
    struct entry *e = find(x, key, len + 1);
    struct answer *a = e ? answer(e) : NULL;
    if (!a)
        return -1;
    size_t n = family == AF_INET ? a->n4 : family == AF_INET6 ? a->n6 : 0;
    for (size_t i = 0; i < n && i < max; i++) {
        size_t k = (first + i) % n;
        make_addr(&out[i], family,
                  family == AF_INET ? (const void *)&a->v4[k]
                                    : (const void *)&a->v6[k]);
    }
    return (int)n;
}

int name_index_ptr(struct name_index *x, const struct addr *ip, char *name, size_t len)
{
    char key[KEY_MAX];
    int family = ip->ss.ss_family;
    const void *a;
    if (family == AF_INET)
        a = &((const struct sockaddr_in *)&ip->ss)->sin_addr;
    else if (family == AF_INET6)
        a = &((const struct sockaddr_in6 *)&ip->ss)->sin6_addr;
    else
        return -1;
    struct entry *e = find(x, key, addr_key(key, family, a));
    if (!e || !e->n)
        return -1;
    /* The first container by number owns the address. */
    const struct claim *best = &e->claims[0];
    for (size_t i = 1; i < e->n; i++) {
        const struct claim *c = &e->claims[i];
        if (by_order(&c, &best) < 0)
            best = c;
    }
    snprintf(name, len, "%s", best->name);
    return 0;
}

/* ---- names below a name ---- */

/* Every proper suffix of a name ("internal.mynet" and "mynet" for
 * "db.internal.mynet") is counted under a KEY_BELOW key, as the names
 * that hold it: DNS answers such a name NOERROR (an empty non-terminal,
 * RFC 8020), and finding that out is one hash lookup, however many
 * containers there are. Counted when a name's entry is made and when it
 * goes, so a name with several claims counts once. */
#define KEY_BELOW 'b'

/* One suffix key of key: the part after its dot at i. */
static size_t below_key(char *b, const char *key, size_t klen, size_t i)
{
    b[0] = KEY_BELOW;
    memcpy(b + 1, key + i + 1, klen - i - 1);
    return klen - i;
}

/* Uncounts key's suffixes after its dots before upto. */
static void below_uncount(struct name_index *x, const char *key, size_t klen,
                          size_t upto)
{
    char b[KEY_MAX];
    for (size_t i = 1; i < upto; i++) {
        if (key[i] != '.')
            continue;
        struct entry *e = find(x, b, below_key(b, key, klen, i));
        INVARIANT(e && e->parents > 0); /* counted when the name was made */
        if (--e->parents == 0)
            unlink_entry(x, e);
    }
}

static int below_add(struct name_index *x, const char *key, size_t klen)
{
    char b[KEY_MAX];
    for (size_t i = 1; i < klen; i++) {
        if (key[i] != '.')
            continue;
        struct entry *e = find_or_make(x, b, below_key(b, key, klen, i));
        if (!e) {
            below_uncount(x, key, klen, i);
            return -1;
        }
        e->parents++;
    }
    return 0;
}

static void below_drop(struct name_index *x, const char *key, size_t klen)
{
    below_uncount(x, key, klen, klen);
}

bool name_index_has_below(struct name_index *x, const char *name, size_t len)
{
    char key[KEY_MAX];
    if (len == 0 || len >= KEY_MAX)
        return false;
    key[0] = KEY_BELOW;
    for (size_t i = 0; i < len; i++)
        key[1 + i] = (char)tolower((unsigned char)name[i]);
    return find(x, key, len + 1) != NULL;
}
