/* DNS helpers for the Check suites: queries built and replies decoded by
 * code written apart from dns_wire.c, so the two check each other. */
#ifndef BERTH_DNSTEST_H
#define BERTH_DNSTEST_H

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_RR_MAX 1024

struct t_rr {
    char name[300]; /* dotted, as written (case kept), no trailing dot */
    uint16_t type, cls;
    uint32_t ttl;
    uint16_t rdlen;
    size_t rdoff; /* offset of the rdata in the message */
    int section;  /* 0 answer, 1 authority, 2 additional */
};

struct t_reply {
    uint16_t id, flags;
    unsigned rcode; /* header rcode (low 4 bits) */
    uint16_t qd, an, ns, ar;
    char qname[300];
    uint16_t qtype, qclass;
    bool has_opt;
    uint16_t opt_size;
    uint32_t opt_ttl;
    size_t nrr;
    struct t_rr rr[T_RR_MAX];
    const uint8_t *msg;
    size_t len;
};

static inline uint16_t t_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void t_put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* A query: name as text (case kept), edns < 0 for none. */
static inline size_t t_query(uint8_t *buf, uint16_t id, const char *name,
                             uint16_t type, int edns, bool dnssec_ok, uint8_t version)
{
    memset(buf, 0, 12);
    t_put16(buf, id);
    t_put16(buf + 2, 0x0100); /* RD */
    t_put16(buf + 4, 1);
    t_put16(buf + 10, edns >= 0 ? 1 : 0);
    size_t n = 12;
    const char *s = name;
    while (*s) {
        const char *dot = strchr(s, '.');
        size_t l = dot ? (size_t)(dot - s) : strlen(s);
        buf[n++] = (uint8_t)l;
        memcpy(buf + n, s, l);
        n += l;
        s += l + (dot ? 1 : 0);
    }
    buf[n++] = 0;
    t_put16(buf + n, type);
    t_put16(buf + n + 2, 1);
    n += 4;
    if (edns >= 0) {
        buf[n] = 0;
        t_put16(buf + n + 1, 41);
        t_put16(buf + n + 3, (unsigned)edns);
        buf[n + 5] = 0;
        buf[n + 6] = version;
        t_put16(buf + n + 7, dnssec_ok ? 0x8000 : 0);
        t_put16(buf + n + 9, 0);
        n += 11;
    }
    return n;
}

/* Reads a (possibly compressed) name at *off into out; -1 if malformed. */
static inline int t_name(const uint8_t *p, size_t len, size_t *off, char *out,
                         size_t cap)
{
    size_t o = *off, n = 0;
    bool jumped = false;
    int hops = 0;
    out[0] = '\0';
    for (;;) {
        if (o >= len)
            return -1;
        uint8_t l = p[o];
        if (l == 0) {
            if (!jumped)
                *off = o + 1;
            break;
        }
        if ((l & 0xc0) == 0xc0) {
            if (o + 2 > len || ++hops > 64)
                return -1;
            if (!jumped)
                *off = o + 2;
            jumped = true;
            o = t_get16(p + o) & 0x3fff;
            continue;
        }
        if (l > 63 || o + 1 + l > len || n + l + 2 > cap)
            return -1;
        if (n)
            out[n++] = '.';
        memcpy(out + n, p + o + 1, l);
        n += l;
        out[n] = '\0';
        o += 1 + (size_t)l;
    }
    return 0;
}

/* Decodes a whole reply; fails the test if it is malformed. */
static inline struct t_reply *t_decode(const uint8_t *p, size_t len)
{
    struct t_reply *r = calloc(1, sizeof *r);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(len >= 12, "reply of %zu bytes", len);
    r->msg = p;
    r->len = len;
    r->id = t_get16(p);
    r->flags = t_get16(p + 2);
    r->rcode = r->flags & 0xf;
    r->qd = t_get16(p + 4);
    r->an = t_get16(p + 6);
    r->ns = t_get16(p + 8);
    r->ar = t_get16(p + 10);
    size_t off = 12;
    if (r->qd) {
        ck_assert_int_eq(r->qd, 1);
        ck_assert_int_eq(t_name(p, len, &off, r->qname, sizeof r->qname), 0);
        ck_assert_uint_le(off + 4, len);
        r->qtype = t_get16(p + off);
        r->qclass = t_get16(p + off + 2);
        off += 4;
    }
    size_t total = (size_t)r->an + r->ns + r->ar;
    ck_assert_uint_le(total, T_RR_MAX);
    for (size_t i = 0; i < total; i++) {
        struct t_rr *rr = &r->rr[i];
        ck_assert_int_eq(t_name(p, len, &off, rr->name, sizeof rr->name), 0);
        ck_assert_uint_le(off + 10, len);
        rr->type = t_get16(p + off);
        rr->cls = t_get16(p + off + 2);
        rr->ttl = (uint32_t)t_get16(p + off + 4) << 16 | t_get16(p + off + 6);
        rr->rdlen = t_get16(p + off + 8);
        rr->rdoff = off + 10;
        rr->section = i < r->an ? 0 : i < (size_t)r->an + r->ns ? 1 : 2;
        off += 10 + rr->rdlen;
        ck_assert_uint_le(off, len);
        if (rr->type == 41) {
            ck_assert_int_eq(rr->section, 2);
            r->has_opt = true;
            r->opt_size = rr->cls;
            r->opt_ttl = rr->ttl;
        }
    }
    ck_assert_msg(off == len, "%zu bytes after the last record", len - off);
    r->nrr = total;
    return r;
}

/* The i-th record of section sec with type (0: any), or NULL. */
static inline const struct t_rr *t_find(const struct t_reply *r, int sec,
                                        uint16_t type, size_t i)
{
    for (size_t k = 0; k < r->nrr; k++)
        if (r->rr[k].section == sec && (!type || r->rr[k].type == type) && i-- == 0)
            return &r->rr[k];
    return NULL;
}

/* An A record's address as text. */
static inline const char *t_a(const struct t_reply *r, const struct t_rr *rr,
                              char *buf, size_t cap)
{
    const uint8_t *d = r->msg + rr->rdoff;
    ck_assert_int_eq(rr->rdlen, 4);
    snprintf(buf, cap, "%u.%u.%u.%u", d[0], d[1], d[2], d[3]);
    return buf;
}

#endif
