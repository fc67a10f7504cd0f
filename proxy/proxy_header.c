#include "berth/proxy_header.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

/* An address reduced to what the header carries: family, 16 bytes (IPv4
 * in the first 4) and port, in network byte order as on the wire. */
struct pp_addr {
    int family; /* AF_INET, AF_INET6, or 0: nothing the header can carry */
    uint8_t ip[16];
    uint8_t port[2];
};

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static struct pp_addr pp_addr_of(const struct addr *a)
{
    struct pp_addr p = {0};
    if (!a)
        return p;
    if (a->ss.ss_family == AF_INET && a->len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
        p.family = AF_INET;
        memcpy(p.ip, &sin->sin_addr, 4);
        memcpy(p.port, &sin->sin_port, 2);
    } else if (a->ss.ss_family == AF_INET6 && a->len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
        memcpy(p.port, &sin6->sin6_port, 2);
        if (!memcmp(&sin6->sin6_addr, v4_mapped_prefix, 12)) {
            /* A dual-stack socket's IPv4 client: it is an IPv4 address. */
            p.family = AF_INET;
            memcpy(p.ip, (const uint8_t *)&sin6->sin6_addr + 12, 4);
        } else {
            p.family = AF_INET6;
            memcpy(p.ip, &sin6->sin6_addr, 16);
        }
    }
    return p;
}

/* Beside an IPv6 address: the IPv4 one as ::ffff:a.b.c.d. */
static void pp_addr_map(struct pp_addr *p)
{
    if (p->family != AF_INET)
        return;
    memmove(p->ip + 12, p->ip, 4);
    memcpy(p->ip, v4_mapped_prefix, 12);
    p->family = AF_INET6;
}

/* ---- version 1: one line of text ---- */

/* A bounded writer: once full, stays full and the result is 0. */
struct text {
    uint8_t *out;
    size_t cap, len;
    bool full;
};

static void put(struct text *t, const char *s, size_t n)
{
    if (t->full || n > t->cap - t->len) {
        t->full = true;
        return;
    }
    memcpy(t->out + t->len, s, n);
    t->len += n;
}

static void put_str(struct text *t, const char *s) { put(t, s, strlen(s)); }

/* Decimal without leading zeroes, as the spec demands. */
static void put_dec(struct text *t, unsigned v)
{
    char d[10];
    size_t n = sizeof d;
    do {
        d[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n);
    put(t, d + n, sizeof d - n);
}

static void put_hex(struct text *t, unsigned v)
{
    static const char digits[] = "0123456789abcdef";
    char d[4];
    size_t n = sizeof d;
    do {
        d[--n] = digits[v & 0xf];
        v >>= 4;
    } while (v && n);
    put(t, d + n, sizeof d - n);
}

static void put_ipv4(struct text *t, const uint8_t ip[4])
{
    for (int i = 0; i < 4; i++) {
        if (i)
            put(t, ".", 1);
        put_dec(t, ip[i]);
    }
}

/* RFC 5952: lower-case groups without leading zeroes, the longest run of
 * two or more zero groups (the first of equals) as "::". */
static void put_ipv6(struct text *t, const uint8_t ip[16])
{
    unsigned g[8];
    for (int i = 0; i < 8; i++)
        g[i] = (unsigned)ip[2 * i] << 8 | ip[2 * i + 1];
    int best = -1, best_len = 1;
    for (int i = 0; i < 8;) {
        int j = i;
        while (j < 8 && g[j] == 0)
            j++;
        if (j - i > best_len) {
            best = i;
            best_len = j - i;
        }
        i = j > i ? j : i + 1;
    }
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            put(t, "::", 2);
            i += best_len - 1;
            continue;
        }
        if (i && i != best + best_len)
            put(t, ":", 1);
        put_hex(t, g[i]);
    }
}

static size_t encode_v1(const struct pp_addr *s, const struct pp_addr *d, uint8_t *out,
                        size_t cap)
{
    struct text t = {.out = out, .cap = cap};
    if (!s->family) {
        put_str(&t, "PROXY UNKNOWN\r\n");
        return t.full ? 0 : t.len;
    }
    bool v4 = s->family == AF_INET;
    put_str(&t, v4 ? "PROXY TCP4 " : "PROXY TCP6 ");
    const struct pp_addr *both[2] = {s, d};
    for (int i = 0; i < 2; i++) {
        if (v4)
            put_ipv4(&t, both[i]->ip);
        else
            put_ipv6(&t, both[i]->ip);
        put(&t, " ", 1);
    }
    put_dec(&t, (unsigned)s->port[0] << 8 | s->port[1]);
    put(&t, " ", 1);
    put_dec(&t, (unsigned)d->port[0] << 8 | d->port[1]);
    put(&t, "\r\n", 2);
    return t.full ? 0 : t.len;
}

/* ---- version 2: binary ---- */

#define V2_FIXED 16 /* signature, version and command, family, length */
#define V2_CMD_LOCAL 0x20
#define V2_CMD_PROXY 0x21
#define V2_UNSPEC 0x00
#define V2_TCP4 0x11
#define V2_TCP6 0x21

static size_t encode_v2(uint8_t cmd, const struct pp_addr *s, const struct pp_addr *d,
                        uint8_t *out, size_t cap)
{
    size_t alen = 0;
    uint8_t fam = V2_UNSPEC;
    if (s && s->family) {
        alen = s->family == AF_INET ? 4 : 16;
        fam = s->family == AF_INET ? V2_TCP4 : V2_TCP6;
    }
    /* Two addresses and two ports when there are addresses. */
    size_t body = alen ? 2 * alen + 4 : 0;
    if (cap < V2_FIXED || body > cap - V2_FIXED)
        return 0;
    memcpy(out, PROXY_V2_SIG, PROXY_V2_SIG_LEN);
    out[12] = cmd;
    out[13] = fam;
    out[14] = (uint8_t)(body >> 8);
    out[15] = (uint8_t)body;
    if (body) {
        uint8_t *p = out + V2_FIXED;
        memcpy(p, s->ip, alen);
        memcpy(p + alen, d->ip, alen);
        memcpy(p + 2 * alen, s->port, 2);
        memcpy(p + 2 * alen + 2, d->port, 2);
    }
    return V2_FIXED + body;
}

size_t proxy_header_encode(enum proxy_proto v, const struct addr *src,
                           const struct addr *dst, uint8_t *out, size_t cap)
{
    struct pp_addr s = pp_addr_of(src), d = pp_addr_of(dst);
    if (!s.family || !d.family) {
        s.family = d.family = 0;
    } else if (s.family != d.family) {
        pp_addr_map(&s);
        pp_addr_map(&d);
    }
    switch (v) {
    case PROXY_PROTO_V1:
        return encode_v1(&s, &d, out, cap);
    case PROXY_PROTO_V2:
        return encode_v2(V2_CMD_PROXY, &s, &d, out, cap);
    case PROXY_PROTO_NONE:
        break;
    }
    return 0;
}

size_t proxy_header_encode_local(uint8_t *out, size_t cap)
{
    return encode_v2(V2_CMD_LOCAL, NULL, NULL, out, cap);
}
