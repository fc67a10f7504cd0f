#include "berth/tproxy_rules.h"

#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Chains visited per walk: huge rulesets end. The walk visits a chain at
 * most once per way in (32), so this bound only stops what no real ruleset
 * reaches. */
#define NFT_BUDGET (1u << 20)

void tproxy_marks_add(struct tproxy_marks *out, uint32_t mark, unsigned covers)
{
    for (size_t i = 0; i < out->n; i++)
        if (out->mark[i] == mark) {
            out->covers[i] |= covers;
            return;
        }
    if (out->n < TPROXY_MARKS_MAX) {
        out->mark[out->n] = mark;
        out->covers[out->n++] = covers;
    }
}

/* Notes rule (its text) as ending the packets in bits before they are
 * marked, for each kind not noted yet. */
void tproxy_shadow_add(struct tproxy_marks *out, unsigned bits, const char *rule,
                       const char *verb, const char *chain)
{
    for (unsigned i = 0; i < 4; i++)
        if ((bits & 1u << i) && !out->shadow[i][0])
            snprintf(out->shadow[i], sizeof out->shadow[i],
                     "rule '%.96s' in chain %.40s %s replies before they are marked",
                     rule, chain, verb);
}

/* ---- nft -j list ruleset ---- */

/* One chain of the ruleset, its rules in order, and what walking it gave
 * per way in (TPROXY_* bits, and whether a socket match came before). */
struct nft_chain {
    const char *family, *table, *name;
    const cJSON **rules;
    size_t n;
    uint8_t state[32]; /* 0 not walked, 1 being walked, 2 walked */
    uint8_t ended[32]; /* bits its verdicts end, per way in */
};

struct nft_walk {
    struct nft_chain *chains; /* sorted by family, table, name */
    size_t n;
    struct tproxy_marks *out;
    unsigned budget;
};

static const cJSON *get(const cJSON *o, const char *key)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static const char *str(const cJSON *o)
{
    return cJSON_IsString(o) ? o->valuestring : NULL;
}

static bool streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static bool u32(const cJSON *o, uint32_t *v)
{
    if (!cJSON_IsNumber(o) || o->valuedouble < 0 || o->valuedouble > 4294967295.0 ||
        o->valuedouble != (double)(uint32_t)o->valuedouble)
        return false;
    *v = (uint32_t)o->valuedouble;
    return true;
}

static int chain_cmp3(const char *f, const char *t, const char *n,
                      const struct nft_chain *c)
{
    int d = strcmp(f, c->family);
    if (!d)
        d = strcmp(t, c->table);
    return d ? d : strcmp(n, c->name);
}

static int chain_cmp(const void *a, const void *b)
{
    const struct nft_chain *x = a;
    return chain_cmp3(x->family, x->table, x->name, b);
}

static struct nft_chain *chain_find(const struct nft_walk *w, const char *family,
                                    const char *table, const char *name)
{
    if (!family || !table || !name)
        return NULL;
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = chain_cmp3(family, table, name, &w->chains[mid]);
        if (!d)
            return &w->chains[mid];
        if (d < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* Indexes items' chains and their rules: 0, or -1 out of memory. */
static int nft_index(struct nft_walk *w, const cJSON *items)
{
    const cJSON *item, *c;
    size_t n = 0, nrules = 0;
    cJSON_ArrayForEach(item, items) {
        n += (c = get(item, "chain")) && str(get(c, "family")) &&
             str(get(c, "table")) && str(get(c, "name"));
        nrules += get(item, "rule") != NULL;
    }
    w->chains = calloc(n ? n : 1, sizeof *w->chains);
    const cJSON **rules = calloc(nrules ? nrules : 1, sizeof *rules);
    if (!w->chains || !rules) {
        free(rules);
        return -1;
    }
    cJSON_ArrayForEach(item, items) {
        if ((c = get(item, "chain")) && str(get(c, "family")) &&
            str(get(c, "table")) && str(get(c, "name")))
            w->chains[w->n++] = (struct nft_chain){.family = str(get(c, "family")),
                                                   .table = str(get(c, "table")),
                                                   .name = str(get(c, "name"))};
    }
    qsort(w->chains, w->n, sizeof *w->chains, chain_cmp);
    struct nft_chain *ch;
    cJSON_ArrayForEach(item, items) {
        if ((c = get(item, "rule")) &&
            (ch = chain_find(w, str(get(c, "family")), str(get(c, "table")),
                             str(get(c, "chain")))))
            ch->n++;
    }
    /* Each chain's rules one slice of one array, in the ruleset's order. */
    size_t at = 0;
    for (size_t i = 0; i < w->n; i++) {
        w->chains[i].rules = rules + at;
        at += w->chains[i].n;
        w->chains[i].n = 0;
    }
    if (!w->n)
        free(rules);
    cJSON_ArrayForEach(item, items) {
        if ((c = get(item, "rule")) &&
            (ch = chain_find(w, str(get(c, "family")), str(get(c, "table")),
                             str(get(c, "chain")))))
            ch->rules[ch->n++] = c;
    }
    return 0;
}

/* A mark expression's value for a packet that had mark 0. */
static bool nft_value(const cJSON *v, int depth, uint32_t *out)
{
    static const char ops[][2] = {"|", "&", "^"};
    if (depth > TPROXY_WALK_DEPTH)
        return false;
    if (u32(v, out))
        return true;
    if (streq(str(get(get(v, "meta"), "key")), "mark")) {
        *out = 0;
        return true;
    }
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        const cJSON *a = get(v, ops[i]);
        uint32_t x, y;
        if (!a)
            continue;
        if (cJSON_GetArraySize(a) != 2 ||
            !nft_value(cJSON_GetArrayItem(a, 0), depth + 1, &x) ||
            !nft_value(cJSON_GetArrayItem(a, 1), depth + 1, &y))
            return false;
        *out = i == 0 ? x | y : i == 1 ? x & y : x ^ y;
        return true;
    }
    return false;
}

/* TPROXY_* bits a protocol (l4: true) or family value names, a set or a
 * list of them the union (others: 0); -1 unknown. */
static int nft_bits(const cJSON *r, bool l4)
{
    uint32_t n;
    const char *s = str(r);
    if (s && l4)
        return streq(s, "tcp") ? TPROXY_TCP : streq(s, "udp") ? TPROXY_UDP : 0;
    if (s)
        return streq(s, "ipv4") || streq(s, "ip")    ? TPROXY_V4
               : streq(s, "ipv6") || streq(s, "ip6") ? TPROXY_V6
                                                     : 0;
    if (u32(r, &n) && l4)
        return n == IPPROTO_TCP ? TPROXY_TCP : n == IPPROTO_UDP ? TPROXY_UDP : 0;
    if (u32(r, &n)) /* NFPROTO_IPV4, NFPROTO_IPV6 */
        return n == 2 ? TPROXY_V4 : n == 10 ? TPROXY_V6 : 0;
    const cJSON *set = cJSON_IsArray(r) ? r : get(r, "set"), *e;
    if (!cJSON_IsArray(set))
        return -1;
    int bits = 0;
    cJSON_ArrayForEach(e, set) {
        int b = nft_bits(cJSON_IsArray(e) ? NULL : e, l4);
        if (b < 0)
            return -1;
        bits |= b;
    }
    return bits;
}

/* Whether a ct state value names established (a reply's state). */
static bool nft_established(const cJSON *r)
{
    const cJSON *set = cJSON_IsArray(r) ? r : get(r, "set"), *e;
    if (!cJSON_IsArray(set))
        return streq(str(r), "established");
    cJSON_ArrayForEach(e, set) {
        if (streq(str(e), "established"))
            return true;
    }
    return false;
}

/* Narrows *covers by one match; false when a transparent socket's packet
 * cannot match it. Matches it does not know may match (left alone) and
 * clear *plain, as a socket match does. */
static bool nft_match(const cJSON *m, unsigned *covers, bool *sock, bool *plain)
{
    const char *op = str(get(m, "op"));
    bool eq = !op || streq(op, "==") || streq(op, "in");
    if (!eq && !streq(op, "!=")) {
        *plain = false;
        return true;
    }
    const cJSON *left = get(m, "left"), *right = get(m, "right"), *k;
    if ((k = get(left, "socket"))) {
        const char *key = str(get(k, "key"));
        uint32_t v;
        *plain = false;
        if (!u32(right, &v) || !(streq(key, "transparent") || streq(key, "wildcard")))
            return true; /* socket mark, cgroup: say nothing of transparency */
        /* berth's sockets are transparent (1) and bound to one address
         * (wildcard 0). */
        bool holds = (v == (streq(key, "transparent") ? 1u : 0u)) == eq;
        *sock = *sock || holds;
        return holds;
    }
    if (streq(str(get(get(left, "ct"), "key")), "state"))
        return nft_established(right) == eq; /* a reply is established */
    unsigned fam = TPROXY_ALL;
    int bits = -1;
    const char *key = str(get(get(left, "meta"), "key"));
    const char *pl = str(get(get(left, "payload"), "protocol"));
    const char *field = str(get(get(left, "payload"), "field"));
    if (streq(key, "nfproto") || streq(key, "protocol")) {
        bits = nft_bits(right, false);
    } else if (streq(key, "l4proto")) {
        bits = nft_bits(right, true);
    } else if ((streq(pl, "ip") && streq(field, "protocol")) ||
               (streq(pl, "ip6") && streq(field, "nexthdr"))) {
        fam = streq(pl, "ip") ? TPROXY_V4 : TPROXY_V6;
        bits = nft_bits(right, true);
    } else if (!streq(key, "mark") && !streq(key, "iif") && !streq(key, "iifname")) {
        *plain = false;
    }
    if (bits >= 0)
        *covers &= fam & (eq ? (unsigned)bits : ~(unsigned)bits);
    return *covers != 0;
}

/* A value as nft prints it, roughly: "established,related", "tcp". */
static void nft_say(const cJSON *v, char *buf, size_t len)
{
    const cJSON *set = cJSON_IsArray(v) ? v : get(v, "set"), *e;
    size_t n = 0;
    buf[0] = '\0';
    if (!cJSON_IsArray(set)) {
        if (str(v))
            snprintf(buf, len, "%s", str(v));
        else if (cJSON_IsNumber(v))
            snprintf(buf, len, "%.0f", v->valuedouble);
        else
            snprintf(buf, len, "...");
        return;
    }
    cJSON_ArrayForEach(e, set) {
        char one[64];
        nft_say(e, one, sizeof one);
        int k = snprintf(buf + n, len - n, "%s%s", n ? "," : "", one);
        if (k < 0 || (size_t)k >= len - n)
            return;
        n += (size_t)k;
    }
}

/* A rule of plain matches and a verdict as nft prints it, roughly. */
static void nft_text(const cJSON *rule, char *buf, size_t len)
{
    const cJSON *e, *m;
    size_t n = 0;
    buf[0] = '\0';
    cJSON_ArrayForEach(e, get(rule, "expr")) {
        char l[64] = "", r[96] = "";
        const cJSON *left = get((m = get(e, "match")), "left");
        if (m && get(left, "ct"))
            snprintf(l, sizeof l, "ct %s", str(get(get(left, "ct"), "key")));
        else if (m && get(left, "meta"))
            snprintf(l, sizeof l, "meta %s", str(get(get(left, "meta"), "key")));
        else if (m)
            snprintf(l, sizeof l, "%s %s", str(get(get(left, "payload"), "protocol")),
                     str(get(get(left, "payload"), "field")));
        if (m)
            nft_say(get(m, "right"), r, sizeof r);
        const char *verb = e->child ? e->child->string : NULL;
        int k = m ? snprintf(buf + n, len - n, "%s%s%s %s", n ? " " : "", l,
                             streq(str(get(m, "op")), "!=") ? " !=" : "", r)
                  : snprintf(buf + n, len - n, "%s%s", n ? " " : "",
                             verb ? verb : "?");
        if (k < 0 || (size_t)k >= len - n)
            return;
        n += (size_t)k;
    }
}

static unsigned nft_chain(struct nft_walk *w, struct nft_chain *c, unsigned covers,
                          bool sock, int depth);

static unsigned nft_follow(struct nft_walk *w, const cJSON *rule, const cJSON *verdict,
                           unsigned covers, bool sock, int depth)
{
    const cJSON *j = get(verdict, "jump");
    if (!j)
        j = get(verdict, "goto");
    struct nft_chain *c = chain_find(w, str(get(rule, "family")),
                                     str(get(rule, "table")), str(get(j, "target")));
    return c ? nft_chain(w, c, covers, sock, depth + 1) : 0;
}

/* Walks one rule; returns the bits it ends before any marking of a later
 * rule (see tproxy_marks.shadow). */
static unsigned nft_rule(struct nft_walk *w, const cJSON *rule, unsigned covers,
                         bool sock, int depth)
{
    static const char *const ends[] = {"accept", "drop", "reject"};
    static const char *const others[] = {"return", "queue"};
    const cJSON *e, *x;
    bool plain = true;
    cJSON_ArrayForEach(e, get(rule, "expr")) {
        if ((x = get(e, "match"))) {
            if (!nft_match(x, &covers, &sock, &plain))
                return 0;
            continue;
        }
        uint32_t v;
        if ((x = get(e, "mangle")) &&
            streq(str(get(get(get(x, "key"), "meta"), "key")), "mark") && sock &&
            nft_value(get(x, "value"), 0, &v))
            tproxy_marks_add(w->out, v, covers);
        if (get(e, "jump") || get(e, "goto")) {
            unsigned ended = nft_follow(w, rule, e, covers, sock, depth);
            return plain ? ended : 0;
        }
        /* A verdict map: any of its chains may be the one. */
        const cJSON *d;
        cJSON_ArrayForEach(d, get(get(get(e, "vmap"), "data"), "set"))
            nft_follow(w, rule, cJSON_GetArrayItem(d, 1), covers, sock, depth);
        if (get(e, "vmap"))
            return 0;
        if (get(e, "xt"))
            w->out->xt = true;
        for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
            if (!get(e, ends[i]))
                continue;
            if (plain && !sock && covers) {
                char text[128], where[64];
                nft_text(rule, text, sizeof text);
                snprintf(where, sizeof where, "%s %s %s", str(get(rule, "family")),
                         str(get(rule, "table")), str(get(rule, "chain")));
                tproxy_shadow_add(w->out, covers, text,
                                  i == 0   ? "accepts"
                                  : i == 1 ? "drops"
                                           : "rejects",
                                  where);
                return covers;
            }
            return 0;
        }
        for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
            if (get(e, others[i]))
                return 0;
        /* A statement that may stop a packet (limit, quota, ...). */
        if (!get(e, "counter") && !get(e, "log") && !get(e, "mangle"))
            plain = false;
    }
    return 0;
}

/* Walks chain c for the packets in covers; returns the bits its verdicts
 * end. Walked once per way in: a ruleset of many chains jumping to the
 * same ones (kube-proxy's) costs its size, not its paths. */
static unsigned nft_chain(struct nft_walk *w, struct nft_chain *c, unsigned covers,
                          bool sock, int depth)
{
    unsigned k = (covers & TPROXY_ALL) | (sock ? 16u : 0u);
    if (!covers || depth > TPROXY_WALK_DEPTH)
        return 0;
    if (c->state[k] == 2)
        return c->ended[k];
    if (c->state[k] == 1 || w->budget == 0)
        return 0; /* a loop (nft refuses them) or too many chains */
    w->budget--;
    c->state[k] = 1;
    unsigned live = covers;
    for (size_t i = 0; i < c->n && live; i++)
        live &= ~nft_rule(w, c->rules[i], live, sock, depth);
    c->ended[k] = (uint8_t)(covers & ~live);
    c->state[k] = 2;
    return c->ended[k];
}

int tproxy_marks_nft(const char *json, struct tproxy_marks *out)
{
    cJSON *root = cJSON_Parse(json);
    const cJSON *items = get(root, "nftables"), *item, *c;
    struct nft_walk w = {.out = out, .budget = NFT_BUDGET};
    if (!cJSON_IsArray(items) || nft_index(&w, items) < 0) {
        free(w.chains);
        cJSON_Delete(root);
        return -1;
    }
    cJSON_ArrayForEach(item, items) {
        /* A reply belongs to a connection berth's socket began: nat chains
         * see first packets only. Every prerouting chain comes before the
         * routing decision, whatever its priority. */
        if (!(c = get(item, "chain")) || !streq(str(get(c, "hook")), "prerouting") ||
            !streq(str(get(c, "type")), "filter"))
            continue;
        const char *fam = str(get(c, "family"));
        unsigned covers = streq(fam, "ip")     ? TPROXY_V4
                          : streq(fam, "ip6")  ? TPROXY_V6
                          : streq(fam, "inet") ? TPROXY_ALL
                                               : 0;
        struct nft_chain *ch = chain_find(&w, fam, str(get(c, "table")),
                                          str(get(c, "name")));
        if (covers && ch)
            nft_chain(&w, ch, covers, false, 0);
    }
    if (w.n)
        free(w.chains[0].rules);
    free(w.chains);
    cJSON_Delete(root);
    return 0;
}
