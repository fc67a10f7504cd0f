#include "berth/compose_keys.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/idmap.h"
#include "berth/invariant.h"
#include "berth/log.h"
#include "berth/registry.h"

/* <label>.<key> in its key's table. */
struct label {
    uint32_t nets;   /* networks of the key that hold the label */
    uint32_t below;  /* labels that end in ".<this one>" (any, for "") */
    uintptr_t which; /* XOR of those networks: the one when nets == 1 */
    bool said;       /* warned about as ambiguous, for these networks */
    char name[];     /* lower case: the table's key */
};

/* How many of a network's endpoints hold one label there. */
struct held {
    uint32_t n;
    char name[];
};

/* The networks one key names (several projects may use it). */
struct group {
    char *key; /* lower case: bykey's key */
    struct cknet **nets;
    size_t n;
    struct idmap *labels; /* label -> struct label */
};

struct cknet {
    char *name, *project;
    size_t slot;         /* in compose_keys.all */
    uint64_t gen;        /* the network list it was last set in */
    struct group *group; /* NULL: no key (yet) */
    size_t gslot;        /* in group->nets */
    struct idmap *held;  /* while keyed: label -> struct held */
    struct ck_member **members;
    size_t n, cap;
};

struct ck_member {
    struct cknet *net;
    size_t slot; /* in net->members */
    const char *name;
    char *const *aliases;
    size_t naliases;
};

struct compose_keys {
    struct idmap *bynet; /* Docker network name -> struct cknet */
    struct idmap *bykey; /* lower-case key -> struct group */
    struct cknet **all;  /* to free them, and settle */
    size_t n, cap;
    uint64_t gen; /* the network list being loaded */
    bool pending; /* networks not set again since forget_all lose keys */
};

struct compose_keys *compose_keys_new(void)
{
    struct compose_keys *k = calloc(1, sizeof *k);
    if (k && (!(k->bynet = idmap_new()) || !(k->bykey = idmap_new()))) {
        idmap_free(k->bynet);
        free(k);
        return NULL;
    }
    return k;
}

/* s lowered into lc (REG_NAME_MAX bytes); false when too long to be read
 * in a name. */
static bool lower(char *lc, const char *s, size_t len)
{
    if (len >= REG_NAME_MAX || memchr(s, '\0', len))
        return false;
    for (size_t i = 0; i < len; i++)
        lc[i] = (char)tolower((unsigned char)s[i]);
    lc[len] = '\0';
    return true;
}

/* ---- counting one label of one network ---- */

static struct label *label_get(struct group *g, const char *s, bool make)
{
    struct label *l = idmap_get(g->labels, s);
    if (l || !make)
        return l;
    size_t len = strlen(s);
    if (!(l = calloc(1, sizeof *l + len + 1)))
        return NULL;
    memcpy(l->name, s, len + 1);
    if (idmap_put(g->labels, l->name, l) < 0) {
        free(l);
        return NULL;
    }
    return l;
}

static void label_prune(struct group *g, struct label *l)
{
    if (l && !l->nets && !l->below) {
        idmap_del(g->labels, l->name);
        free(l);
    }
}

/* The labels a label counts below, in turn: what follows each of its dots,
 * then "" (the key itself). Start with next_suffix(lc) for a non-empty lc;
 * NULL after the last. */
static const char *next_suffix(const char *s)
{
    const char *dot = strchr(s, '.');
    return dot ? dot + 1 : s[0] ? "" : NULL;
}

static void label_unprune(struct group *g, struct held *h, const char *lc)
{
    label_prune(g, label_get(g, lc, false));
    for (const char *s = lc[0] ? next_suffix(lc) : NULL; s; s = next_suffix(s))
        label_prune(g, label_get(g, s, false));
    if (h && !h->n)
        free(h);
}

/* Counts lc (lower case) once more on net, of group g. Every entry is made
 * before any count changes, so a failure leaves nothing counted. */
static int label_add(struct group *g, struct cknet *net, const char *lc)
{
    struct held *h = idmap_get(net->held, lc), *fresh = NULL;
    if (!h) {
        size_t len = strlen(lc);
        if (!(fresh = h = calloc(1, sizeof *h + len + 1)))
            return -1;
        memcpy(h->name, lc, len + 1);
    }
    bool ok = label_get(g, lc, true) != NULL;
    for (const char *s = lc[0] ? next_suffix(lc) : NULL; ok && s; s = next_suffix(s))
        ok = label_get(g, s, true) != NULL;
    if (!ok || (fresh && idmap_put(net->held, fresh->name, fresh) < 0)) {
        label_unprune(g, fresh, lc);
        return -1;
    }
    if (h->n++ == 0) {
        struct label *l = label_get(g, lc, false);
        l->nets++;
        l->which ^= (uintptr_t)net;
        l->said = false; /* another set of networks: worth a new warning */
    }
    for (const char *s = lc[0] ? next_suffix(lc) : NULL; s; s = next_suffix(s))
        label_get(g, s, false)->below++;
    return 0;
}

static void label_remove(struct group *g, struct cknet *net, const char *lc)
{
    struct held *h = idmap_get(net->held, lc);
    INVARIANT(h && h->n > 0); /* counted by label_add */
    if (--h->n == 0) {
        struct label *l = label_get(g, lc, false);
        l->nets--;
        l->which ^= (uintptr_t)net;
        l->said = false;
        idmap_del(net->held, lc);
    }
    for (const char *s = lc[0] ? next_suffix(lc) : NULL; s; s = next_suffix(s))
        label_get(g, s, false)->below--;
    label_unprune(g, h, lc);
}

/* ---- endpoints ---- */

/* Label i of m, lowered into lc: "" (the network itself), the container's
 * name, its aliases. False for one that cannot be in a name. */
static bool member_label(const struct ck_member *m, size_t i, char *lc)
{
    const char *s = i == 0 ? "" : i == 1 ? m->name : m->aliases[i - 2];
    return s && (i == 0 || s[0]) && lower(lc, s, strlen(s));
}

static void member_uncount(struct cknet *net, const struct ck_member *m, size_t upto)
{
    char lc[REG_NAME_MAX];
    for (size_t i = 0; i < upto; i++)
        if (member_label(m, i, lc))
            label_remove(net->group, net, lc);
}

static int member_count(struct cknet *net, const struct ck_member *m)
{
    char lc[REG_NAME_MAX];
    for (size_t i = 0; i < 2 + m->naliases; i++) {
        if (member_label(m, i, lc) && label_add(net->group, net, lc) < 0) {
            member_uncount(net, m, i);
            return -1;
        }
    }
    return 0;
}

/* ---- networks and keys ---- */

/* Takes net out of its key's group, its endpoints' labels with it. */
static void net_unkey(struct compose_keys *k, struct cknet *net)
{
    struct group *g = net->group;
    if (!g)
        return;
    for (size_t i = 0; i < net->n; i++)
        member_uncount(net, net->members[i], 2 + net->members[i]->naliases);
    INVARIANT(idmap_count(net->held) == 0);
    idmap_free(net->held);
    net->held = NULL;
    g->nets[net->gslot] = g->nets[--g->n];
    g->nets[net->gslot]->gslot = net->gslot;
    net->group = NULL;
    if (g->n)
        return;
    INVARIANT(idmap_count(g->labels) == 0);
    idmap_del(k->bykey, g->key);
    idmap_free(g->labels);
    free(g->key);
    free(g->nets);
    free(g);
}

/* Files net under key lc, counting its endpoints' labels there. */
static int net_key(struct compose_keys *k, struct cknet *net, const char *lc)
{
    struct group *g = idmap_get(k->bykey, lc);
    if (!g) {
        if (!(g = calloc(1, sizeof *g)) || !(g->key = strdup(lc)) ||
            !(g->labels = idmap_new()) || idmap_put(k->bykey, g->key, g) < 0) {
            if (g) {
                idmap_free(g->labels);
                free(g->key);
            }
            free(g);
            return -1;
        }
    }
    struct cknet **v = realloc(g->nets, (g->n + 1) * sizeof *v);
    if (v)
        g->nets = v;
    if (!v || !(net->held = idmap_new())) {
        if (!g->n) { /* made just now: nothing else refers to it */
            idmap_del(k->bykey, g->key);
            idmap_free(g->labels);
            free(g->key);
            free(g->nets);
            free(g);
        }
        return -1;
    }
    net->gslot = g->n;
    g->nets[g->n++] = net;
    net->group = g;
    for (size_t i = 0; i < net->n; i++) {
        if (member_count(net, net->members[i]) < 0) {
            /* Only the first i are counted: take them out, then the rest. */
            size_t all = net->n;
            net->n = i;
            net_unkey(k, net);
            net->n = all;
            return -1;
        }
    }
    return 0;
}

static struct cknet *net_get(struct compose_keys *k, const char *name)
{
    struct cknet *net = idmap_get(k->bynet, name);
    if (net)
        return net;
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 16;
        struct cknet **v = realloc(k->all, cap * sizeof *v);
        if (!v)
            return NULL;
        k->all = v;
        k->cap = cap;
    }
    if (!(net = calloc(1, sizeof *net)) || !(net->name = strdup(name)) ||
        idmap_put(k->bynet, net->name, net) < 0) {
        if (net)
            free(net->name);
        free(net);
        return NULL;
    }
    net->slot = k->n;
    k->all[k->n++] = net;
    return net;
}

/* Forgets net once nothing is on it and it has no key. */
static void net_release(struct compose_keys *k, struct cknet *net)
{
    if (net->n || net->group)
        return;
    idmap_del(k->bynet, net->name);
    k->all[net->slot] = k->all[--k->n];
    k->all[net->slot]->slot = net->slot;
    free(net->name);
    free(net->project);
    free(net->members);
    free(net);
}

void compose_keys_free(struct compose_keys *k)
{
    if (!k)
        return;
    while (k->n) {
        struct cknet *net = k->all[k->n - 1];
        net_unkey(k, net);
        size_t left = net->n;
        if (!left)
            net_release(k, net);
        /* The last to leave releases it: net is not read after that. */
        while (left--)
            compose_keys_leave(k, net->members[left]);
    }
    idmap_free(k->bynet);
    idmap_free(k->bykey);
    free(k->all);
    free(k);
}

int compose_keys_set(struct compose_keys *k, const char *name, const char *project,
                     const char *key)
{
    char lc[REG_NAME_MAX];
    bool keyed = key && key[0] && project && lower(lc, key, strlen(key));
    struct cknet *net = idmap_get(k->bynet, name);
    if (!net && !keyed)
        return 0;
    if (net)
        net->gen = k->gen;
    if (net && net->group && keyed && strcmp(net->group->key, lc) == 0 &&
        net->project && strcmp(net->project, project) == 0)
        return 0; /* the same again: nothing to re-key */
    if (!net && !(net = net_get(k, name)))
        goto nomem;
    net->gen = k->gen;
    net_unkey(k, net);
    free(net->project);
    net->project = NULL;
    if (keyed && (!(net->project = strdup(project)) || net_key(k, net, lc) < 0)) {
        net_release(k, net);
        goto nomem;
    }
    net_release(k, net);
    return 0;
nomem:
    errno = ENOMEM;
    return -1;
}

struct ck_member *compose_keys_join(struct compose_keys *k, const char *name,
                                    const char *cname, char *const *aliases,
                                    size_t naliases)
{
    struct cknet *net = net_get(k, name);
    struct ck_member *m = NULL;
    if (!net)
        goto nomem;
    if (net->n == net->cap) {
        size_t cap = net->cap ? 2 * net->cap : 4;
        struct ck_member **v = realloc(net->members, cap * sizeof *v);
        if (!v)
            goto release;
        net->members = v;
        net->cap = cap;
    }
    if (!(m = malloc(sizeof *m)))
        goto release;
    *m = (struct ck_member){net, net->n, cname, aliases, naliases};
    if (net->group && member_count(net, m) < 0)
        goto release;
    net->members[net->n++] = m;
    return m;
release:
    free(m);
    net_release(k, net);
nomem:
    errno = ENOMEM;
    return NULL;
}

void compose_keys_leave(struct compose_keys *k, struct ck_member *m)
{
    if (!m)
        return;
    struct cknet *net = m->net;
    if (net->group)
        member_uncount(net, m, 2 + m->naliases);
    net->members[m->slot] = net->members[--net->n];
    net->members[m->slot]->slot = m->slot;
    free(m);
    net_release(k, net);
}

void compose_keys_forget_all(struct compose_keys *k)
{
    k->gen++;
    k->pending = true;
}

/* Ends a network list: what it did not set again loses its key. Once per
 * list, O(networks), before the first lookup after it. */
static void settle(struct compose_keys *k)
{
    if (!k->pending)
        return;
    k->pending = false;
    for (size_t i = 0; i < k->n;) {
        struct cknet *net = k->all[i];
        if (!net->group || net->gen == k->gen) {
            i++;
            continue;
        }
        net_unkey(k, net);
        size_t n = k->n;
        net_release(k, net);
        i += n == k->n; /* released: the last one moved into slot i */
    }
}

/* ---- lookups ---- */

/* The first key at or after *at that the rest of lc is, trying the whole
 * name and then what follows each dot; *at is left at it. NULL when none. */
static struct group *next_key(struct compose_keys *k, const char *lc, size_t len,
                              size_t *at)
{
    for (;;) {
        struct group *g = idmap_get(k->bykey, lc + *at);
        if (g)
            return g;
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

/* What comes before the key at at, as g counts it: one hash lookup. */
static struct label *label_before(struct group *g, char *lc, size_t at)
{
    if (!at)
        return idmap_get(g->labels, "");
    lc[at - 1] = '\0';
    struct label *l = idmap_get(g->labels, lc);
    lc[at - 1] = '.';
    return l;
}

static void say_ambiguous(const struct group *g, const struct label *l)
{
    char alts[512] = "";
    size_t w = 0;
    for (size_t i = 0; i < g->n && w < sizeof alts; i++) {
        const struct cknet *net = g->nets[i];
        if (!idmap_get(net->held, l->name))
            continue;
        int m = snprintf(alts + w, sizeof alts - w, "%s%s.%s (project %s)",
                         w ? ", " : "", l->name, net->name, net->project);
        w = m < 0 ? sizeof alts : w + (size_t)m;
    }
    log_warn("names: '%s.%s' is ambiguous (Compose network '%s', %u projects): "
             "it resolves to nothing; use %s",
             l->name, g->key, g->key, l->nets, alts);
}

int compose_keys_resolve(struct compose_keys *k, const char *name, size_t len,
                         char *full, size_t size)
{
    char lc[REG_NAME_MAX];
    settle(k);
    if (!idmap_count(k->bykey) || !len || !lower(lc, name, len))
        return -1;
    struct group *g;
    for (size_t at = 0; (g = next_key(k, lc, len, &at));) {
        struct label *l = label_before(g, lc, at);
        if (l && l->nets == 1) {
            const struct cknet *net = (const struct cknet *)l->which;
            int n = snprintf(full, size, "%s%s%s", l->name, at ? "." : "", net->name);
            return n < 0 || (size_t)n >= size ? -1 : 1;
        }
        if (l && l->nets > 1) {
            if (!at) /* the key alone: networks, no address of their own */
                return 0;
            if (!l->said)
                say_ambiguous(g, l);
            l->said = true;
            return -1;
        }
        if (!skip_key(lc, len, &at))
            break;
    }
    return -1;
}

bool compose_keys_has_below(struct compose_keys *k, const char *name, size_t len)
{
    char lc[REG_NAME_MAX];
    settle(k);
    if (!idmap_count(k->bykey) || !len || !lower(lc, name, len))
        return false;
    struct group *g;
    for (size_t at = 0; (g = next_key(k, lc, len, &at));) {
        struct label *l = label_before(g, lc, at);
        if (l && l->below)
            return true;
        if (!skip_key(lc, len, &at))
            break;
    }
    return false;
}
