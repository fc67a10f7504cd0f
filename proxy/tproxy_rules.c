#include "berth/tproxy_rules.h"

#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* Chains visited per walk and jump depth: loops and huge rulesets end. */
#define WALK_BUDGET 1024
#define WALK_DEPTH 16

static void marks_add(struct tproxy_marks *out, uint32_t mark, unsigned covers)
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

/* ---- nft -j list ruleset ---- */

struct nft_walk {
    const cJSON *items; /* the "nftables" array */
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

/* A mark expression's value for a packet that had mark 0. */
static bool nft_value(const cJSON *v, int depth, uint32_t *out)
{
    static const char ops[][2] = {"|", "&", "^"};
    if (depth > WALK_DEPTH)
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

/* TPROXY_TCP/UDP bits a protocol value names (others: 0); -1 unknown. */
static int nft_protos(const cJSON *r)
{
    uint32_t n;
    if (cJSON_IsString(r))
        return streq(r->valuestring, "tcp")   ? TPROXY_TCP
               : streq(r->valuestring, "udp") ? TPROXY_UDP
                                              : 0;
    if (u32(r, &n))
        return n == IPPROTO_TCP ? TPROXY_TCP : n == IPPROTO_UDP ? TPROXY_UDP : 0;
    const cJSON *set = get(r, "set"), *e;
    if (!cJSON_IsArray(set))
        return -1;
    int bits = 0;
    cJSON_ArrayForEach(e, set) {
        int b = nft_protos(cJSON_IsArray(e) ? NULL : e);
        if (b < 0)
            return -1;
        bits |= b;
    }
    return bits;
}

/* Narrows *covers by one match; false when a transparent socket's packet
 * cannot match it. Matches it does not know may match (left alone). */
static bool nft_match(const cJSON *m, unsigned *covers, bool *sock)
{
    const char *op = str(get(m, "op"));
    bool eq = !op || streq(op, "==") || streq(op, "in");
    if (!eq && !streq(op, "!="))
        return true;
    const cJSON *left = get(m, "left"), *right = get(m, "right"), *k;
    if ((k = get(left, "socket"))) {
        const char *key = str(get(k, "key"));
        uint32_t v;
        if (!u32(right, &v) || !(streq(key, "transparent") || streq(key, "wildcard")))
            return true; /* socket mark, cgroup: say nothing of transparency */
        /* berth's sockets are transparent (1) and bound to one address
         * (wildcard 0). */
        bool holds = (v == (streq(key, "transparent") ? 1u : 0u)) == eq;
        *sock = *sock || holds;
        return holds;
    }
    unsigned fam = TPROXY_ALL;
    int bits = -1;
    const char *key = str(get(get(left, "meta"), "key"));
    const char *pl = str(get(get(left, "payload"), "protocol"));
    const char *field = str(get(get(left, "payload"), "field"));
    if (streq(key, "nfproto") || streq(key, "protocol")) {
        const char *v = str(right);
        bits = streq(v, "ipv4") || streq(v, "ip")    ? TPROXY_V4
               : streq(v, "ipv6") || streq(v, "ip6") ? TPROXY_V6
                                                     : 0;
    } else if (streq(key, "l4proto")) {
        bits = nft_protos(right);
    } else if ((streq(pl, "ip") && streq(field, "protocol")) ||
               (streq(pl, "ip6") && streq(field, "nexthdr"))) {
        fam = streq(pl, "ip") ? TPROXY_V4 : TPROXY_V6;
        bits = nft_protos(right);
    }
    if (bits >= 0)
        *covers &= fam & (eq ? (unsigned)bits : ~(unsigned)bits);
    return *covers != 0;
}

static void nft_chain(struct nft_walk *w, const char *family, const char *table,
                      const char *chain, unsigned covers, bool sock, int depth);

static void nft_follow(struct nft_walk *w, const cJSON *rule, const cJSON *verdict,
                       unsigned covers, bool sock, int depth)
{
    const cJSON *j = get(verdict, "jump");
    if (!j)
        j = get(verdict, "goto");
    const char *target = str(get(j, "target"));
    if (target)
        nft_chain(w, str(get(rule, "family")), str(get(rule, "table")), target, covers,
                  sock, depth + 1);
}

static void nft_rule(struct nft_walk *w, const cJSON *rule, unsigned covers, bool sock,
                     int depth)
{
    static const char *const ends[] = {"accept", "drop",  "reject",
                                       "return", "queue", "goto"};
    const cJSON *e, *x;
    cJSON_ArrayForEach(e, get(rule, "expr")) {
        if ((x = get(e, "match")) && !nft_match(x, &covers, &sock))
            return;
        uint32_t v;
        if ((x = get(e, "mangle")) &&
            streq(str(get(get(get(x, "key"), "meta"), "key")), "mark") && sock &&
            nft_value(get(x, "value"), 0, &v))
            marks_add(w->out, v, covers);
        if (get(e, "jump") || get(e, "goto"))
            nft_follow(w, rule, e, covers, sock, depth);
        /* A verdict map: any of its chains may be the one. */
        const cJSON *d;
        cJSON_ArrayForEach(d, get(get(get(e, "vmap"), "data"), "set"))
            nft_follow(w, rule, cJSON_GetArrayItem(d, 1), covers, sock, depth);
        if (get(e, "xt"))
            w->out->xt = true;
        for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++)
            if (get(e, ends[i]))
                return;
    }
}

static void nft_chain(struct nft_walk *w, const char *family, const char *table,
                      const char *chain, unsigned covers, bool sock, int depth)
{
    if (depth > WALK_DEPTH || w->budget == 0)
        return;
    w->budget--;
    const cJSON *item, *r;
    cJSON_ArrayForEach(item, w->items) {
        if ((r = get(item, "rule")) && streq(str(get(r, "family")), family) &&
            streq(str(get(r, "table")), table) && streq(str(get(r, "chain")), chain))
            nft_rule(w, r, covers, sock, depth);
    }
}

int tproxy_marks_nft(const char *json, struct tproxy_marks *out)
{
    cJSON *root = cJSON_Parse(json);
    const cJSON *items = get(root, "nftables"), *item, *c;
    if (!cJSON_IsArray(items)) {
        cJSON_Delete(root);
        return -1;
    }
    struct nft_walk w = {.items = items, .out = out, .budget = WALK_BUDGET};
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
        if (covers && str(get(c, "table")) && str(get(c, "name")))
            nft_chain(&w, fam, str(get(c, "table")), str(get(c, "name")), covers,
                      false, 0);
    }
    cJSON_Delete(root);
    return 0;
}

/* ---- iptables-save -t mangle ---- */

/* The next word of a rule line into buf (quotes of --comment kept whole);
 * false at the end of the line. */
static bool ipt_word(const char **p, char *buf, size_t len)
{
    const char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s || *s == '\n')
        return false;
    size_t n = 0;
    bool quoted = false;
    for (; *s && *s != '\n' && (quoted || (*s != ' ' && *s != '\t')); s++) {
        if (*s == '\\' && quoted && s[1] && s[1] != '\n')
            s++;
        else if (*s == '"') {
            quoted = !quoted;
            continue;
        }
        if (n + 1 < len)
            buf[n++] = *s;
    }
    buf[n] = '\0';
    *p = s;
    return true;
}

struct ipt_walk {
    const char *mangle; /* the *mangle section's first line */
    struct tproxy_marks *out;
    unsigned budget;
};

static void ipt_chain(struct ipt_walk *w, const char *chain, unsigned covers,
                      bool sock, int depth);

static void ipt_rule(struct ipt_walk *w, const char *p, unsigned covers, bool sock,
                     int depth)
{
    char word[128], arg[128];
    bool neg = false;
    while (ipt_word(&p, word, sizeof word)) {
        if (streq(word, "!")) {
            neg = true;
            continue;
        }
        if ((streq(word, "-p") || streq(word, "--protocol")) &&
            ipt_word(&p, arg, sizeof arg)) {
            unsigned bits = streq(arg, "tcp") || streq(arg, "6")    ? TPROXY_TCP
                            : streq(arg, "udp") || streq(arg, "17") ? TPROXY_UDP
                            : streq(arg, "all") || streq(arg, "0")  ? TPROXY_ALL
                                                                    : 0;
            covers &= neg ? ~bits : bits;
        } else if (streq(word, "-m") && ipt_word(&p, arg, sizeof arg) &&
                   streq(arg, "socket")) {
            sock = true; /* with or without --transparent: berth's socket matches */
        } else if ((streq(word, "-j") || streq(word, "-g")) &&
                   ipt_word(&p, arg, sizeof arg)) {
            if (!streq(arg, "MARK")) {
                ipt_chain(w, arg, covers, sock, depth + 1);
                return;
            }
            while (sock && covers && ipt_word(&p, word, sizeof word)) {
                /* --set-xmark v/m is (mark & ~m) ^ v; --or-mark and
                 * --xor-mark v give v too, --and-mark 0, from mark 0. */
                if (ipt_word(&p, arg, sizeof arg) &&
                    (streq(word, "--set-xmark") || streq(word, "--set-mark") ||
                     streq(word, "--or-mark") || streq(word, "--xor-mark"))) {
                    char *end;
                    unsigned long v = strtoul(arg, &end, 0);
                    if (end != arg && (*end == '\0' || *end == '/') &&
                        v <= 0xffffffffUL)
                        marks_add(w->out, (uint32_t)v, covers);
                }
            }
            return;
        }
        neg = false;
    }
}

static void ipt_chain(struct ipt_walk *w, const char *chain, unsigned covers,
                      bool sock, int depth)
{
    if (depth > WALK_DEPTH || w->budget == 0 || !covers)
        return;
    w->budget--;
    size_t clen = strlen(chain);
    for (const char *l = w->mangle; l && *l && strncmp(l, "COMMIT", 6) != 0;) {
        if (strncmp(l, "-A ", 3) == 0 && strncmp(l + 3, chain, clen) == 0 &&
            l[3 + clen] == ' ')
            ipt_rule(w, l + 4 + clen, covers, sock, depth);
        l = strchr(l, '\n');
        l = l ? l + 1 : NULL;
    }
}

void tproxy_marks_iptables(const char *save, unsigned family, struct tproxy_marks *out)
{
    const char *m = save;
    while (m && strncmp(m, "*mangle\n", 8) != 0) {
        m = strchr(m, '\n');
        m = m ? m + 1 : NULL;
    }
    struct ipt_walk w = {.mangle = m, .out = out, .budget = WALK_BUDGET};
    if (m)
        ipt_chain(&w, "PREROUTING", family & TPROXY_ALL, false, 0);
}
