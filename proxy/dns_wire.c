#include "berth/dns_wire.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* Longest pointer chain accepted in one name: a name has at most 127 labels,
 * so a well-formed message never needs more hops than that. */
#define PTR_HOPS_MAX DNS_LABELS_MAX

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void dns_put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

void dns_put32(uint8_t *p, uint32_t v)
{
    dns_put16(p, v >> 16);
    dns_put16(p + 2, v & 0xffff);
}

static uint8_t lower(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* Case-insensitive, as DNS compares names (RFC 4343: ASCII letters only). */
static bool same_bytes(const uint8_t *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower(a[i]) != lower(b[i]))
            return false;
    return true;
}

/* ---- parsing ---- */

/* A question name: labels only (a pointer could only aim at the header).
 * Returns the offset after it, or 0. */
static size_t parse_qname(const uint8_t *p, size_t len, size_t off,
                          struct dns_query *q)
{
    size_t start = off;
    q->nlabels = 0;
    for (;;) {
        if (off >= len)
            return 0;
        uint8_t l = p[off];
        if (l == 0)
            break;
        if (l > 63 || off - start + 1 + l + 1 > DNS_NAME_MAX)
            return 0;
        q->label[q->nlabels++] = (uint8_t)(off - start);
        off += 1 + (size_t)l;
    }
    q->qname = p + start;
    q->qname_len = off + 1 - start;
    return off + 1;
}

/* Skips a possibly compressed name without following pointers. */
static size_t skip_name(const uint8_t *p, size_t len, size_t off)
{
    for (size_t n = 0;;) {
        if (off >= len)
            return 0;
        uint8_t l = p[off];
        if (l == 0)
            return off + 1;
        if ((l & 0xc0) == 0xc0)
            return off + 2 <= len ? off + 2 : 0;
        if (l > 63 || (n += 1 + (size_t)l) > DNS_NAME_MAX - 1)
            return 0;
        off += 1 + (size_t)l;
    }
}

static int parse_body(const uint8_t *p, size_t len, struct dns_query *q);

int dns_parse_query(const uint8_t *p, size_t len, struct dns_query *q)
{
    q->qname = NULL;
    q->qname_len = 0;
    q->nlabels = 0;
    q->edns = false;
    q->udp_size = 0;
    q->edns_version = 0;
    q->dnssec_ok = false;
    q->end = 0;
    if (len < DNS_HDR)
        return -1;
    q->id = get16(p);
    q->flags = get16(p + 2);
    if (q->flags & DNS_QR)
        return -1;
    /* Other opcodes are read like a query too, for their OPT: an error to
     * an EDNS message carries OPT (RFC 6891 section 7). */
    int rc = parse_body(p, len, q);
    return q->flags & DNS_OPCODE_MASK ? DNS_NOTIMP : rc;
}

/* The question and the records after the header: 0 or DNS_FORMERR, with
 * q->edns and its fields set once an OPT was read, whatever comes later. */
static int parse_body(const uint8_t *p, size_t len, struct dns_query *q)
{
    unsigned qd = get16(p + 4);
    unsigned others = (unsigned)get16(p + 6) + get16(p + 8);
    unsigned nadd = get16(p + 10);
    /* A question berth cannot answer (none, several, compressed) is still
     * walked past, to find an OPT. */
    int rc = qd == 1 ? 0 : DNS_FORMERR;
    size_t off = DNS_HDR;
    for (unsigned i = 0; i < qd; i++) {
        size_t next = i == 0 ? parse_qname(p, len, off, q) : 0;
        if (!next) {
            rc = DNS_FORMERR;
            next = skip_name(p, len, off);
        }
        if (!next || next + 4 > len)
            return DNS_FORMERR;
        if (i == 0) {
            q->qtype = get16(p + next);
            q->qclass = get16(p + next + 2);
        }
        off = next + 4;
    }
    q->end = off;
    /* Each record takes at least 11 bytes, so the loops end with the packet
     * whatever the counts claim. */
    for (unsigned i = 0; i < others + nadd; i++) {
        size_t owner = off;
        if (!(off = skip_name(p, len, off)) || off + 10 > len)
            return DNS_FORMERR;
        size_t rdlen = get16(p + off + 8);
        if (i >= others && get16(p + off) == DNS_T_OPT) {
            if (q->edns || p[owner] != 0)
                return DNS_FORMERR;
            uint32_t ttl = get32(p + off + 4);
            q->edns = true;
            q->udp_size = get16(p + off + 2);
            q->edns_version = (uint8_t)(ttl >> 16);
            q->dnssec_ok = (ttl & 0x8000) != 0;
        }
        off += 10 + rdlen;
        if (off > len)
            return DNS_FORMERR;
    }
    return off == len ? rc : DNS_FORMERR;
}

size_t dns_reply_limit(const struct dns_query *q, bool tcp)
{
    if (tcp)
        return DNS_MSG_MAX;
    if (!q->edns || q->udp_size < DNS_UDP_PLAIN)
        return DNS_UDP_PLAIN;
    return q->udp_size > DNS_UDP_MAX ? DNS_UDP_MAX : q->udp_size;
}

int dns_zone_suffix(const struct dns_query *q, const uint8_t *zone, size_t zone_len)
{
    if (zone_len > q->qname_len)
        return -1;
    size_t off = q->qname_len - zone_len;
    if (!same_bytes(q->qname + off, zone, zone_len))
        return -1;
    if (off == q->qname_len - 1)
        return q->nlabels;
    for (unsigned k = 0; k < q->nlabels; k++)
        if (q->label[k] == off)
            return (int)k;
    return -1;
}

int dns_qname_text(const struct dns_query *q, unsigned n, char *out, size_t cap)
{
    size_t len = 0;
    if (n > q->nlabels)
        return -1;
    for (unsigned k = 0; k < n; k++) {
        const uint8_t *l = q->qname + q->label[k];
        if (len + (k > 0) + l[0] + 1 > cap)
            return -1;
        if (memchr(l + 1, '.', l[0]) || memchr(l + 1, '\0', l[0]))
            return -1;
        if (k > 0)
            out[len++] = '.';
        memcpy(out + len, l + 1, l[0]);
        len += l[0];
    }
    if (len >= cap)
        return -1;
    out[len] = '\0';
    return (int)len;
}

/* ---- forwarding ---- */

size_t dns_build_query(uint8_t *out, size_t cap, const struct dns_query *q,
                       uint16_t id, uint16_t udp_size)
{
    size_t len = DNS_HDR + q->qname_len + 4 + (udp_size ? DNS_OPT_LEN : 0);
    if (len > cap)
        return 0;
    memset(out, 0, DNS_HDR);
    dns_put16(out, id);
    dns_put16(out + 2, q->flags & (DNS_RD | DNS_CD | DNS_AD));
    dns_put16(out + 4, 1);
    dns_put16(out + 10, udp_size ? 1 : 0);
    uint8_t *p = out + DNS_HDR;
    memcpy(p, q->qname, q->qname_len);
    p += q->qname_len;
    dns_put16(p, q->qtype);
    dns_put16(p + 2, q->qclass);
    if (udp_size) {
        p += 4;
        p[0] = 0;
        dns_put16(p + 1, DNS_T_OPT);
        dns_put16(p + 3, udp_size);
        dns_put32(p + 5, q->dnssec_ok ? 0x8000u : 0);
        dns_put16(p + 9, 0);
    }
    return len;
}

int dns_match_answer(const uint8_t *a, size_t len, const uint8_t *query, size_t qlen)
{
    struct dns_query asked, got;
    if (len < DNS_HDR || qlen < DNS_HDR || dns_parse_query(query, qlen, &asked) != 0)
        return -1;
    unsigned flags = get16(a + 2);
    if (!(flags & DNS_QR) || get16(a) != asked.id ||
        (flags & DNS_OPCODE_MASK) != (asked.flags & DNS_OPCODE_MASK) ||
        get16(a + 4) != 1)
        return -1;
    size_t off = parse_qname(a, len, DNS_HDR, &got);
    if (!off || off + 4 > len || got.qname_len != asked.qname_len ||
        !same_bytes(got.qname, asked.qname, asked.qname_len) ||
        get16(a + off) != asked.qtype || get16(a + off + 2) != asked.qclass)
        return -1;
    return dns_msg_check(a, len) < 0 ? -1 : 0;
}

/* A name anywhere in a message, following pointers. Each pointer must aim
 * before itself, which with the hop bound keeps the walk finite and short.
 * Returns the offset after the name where it is written, or 0. */
static size_t check_name(const uint8_t *p, size_t len, size_t off)
{
    size_t end = 0, total = 0;
    for (unsigned hops = 0;;) {
        if (off >= len)
            return 0;
        uint8_t l = p[off];
        if (l == 0)
            return end ? end : off + 1;
        if ((l & 0xc0) == 0xc0) {
            if (off + 2 > len || ++hops > PTR_HOPS_MAX)
                return 0;
            size_t to = get16(p + off) & 0x3fffu;
            if (to >= off)
                return 0;
            if (!end)
                end = off + 2;
            off = to;
            continue;
        }
        if (l > 63 || (total += 1 + (size_t)l) > DNS_NAME_MAX - 1)
            return 0;
        off += 1 + (size_t)l;
    }
}

long dns_msg_check(const uint8_t *p, size_t len)
{
    if (len < DNS_HDR)
        return -1;
    unsigned qd = get16(p + 4);
    unsigned rrs = (unsigned)get16(p + 6) + get16(p + 8) + get16(p + 10);
    size_t off = DNS_HDR;
    for (unsigned i = 0; i < qd; i++)
        if (!(off = check_name(p, len, off)) || (off += 4) > len)
            return -1;
    for (unsigned i = 0; i < rrs; i++) {
        if (!(off = check_name(p, len, off)) || off + 10 > len)
            return -1;
        off += 10 + (size_t)get16(p + off + 8);
        if (off > len)
            return -1;
    }
    return (long)off;
}

/* ---- names ---- */

int dns_name_wire(const char *text, uint8_t *out, size_t cap)
{
    size_t len = 0;
    const char *s = text;
    if (s[0] == '.' && s[1] == '\0')
        s++;
    while (*s) {
        const char *dot = strchr(s, '.');
        size_t l = dot ? (size_t)(dot - s) : strlen(s);
        if (l == 0 || l > 63 || len + 1 + l + 1 > DNS_NAME_MAX ||
            len + 1 + l + 1 > cap)
            return -1;
        out[len] = (uint8_t)l;
        memcpy(out + len + 1, s, l);
        len += 1 + l;
        s += l;
        if (*s == '.')
            s++;
    }
    if (len + 1 > cap)
        return -1;
    out[len++] = 0;
    return (int)len;
}

const char *dns_name_text(const uint8_t *w, size_t len, char *out, size_t cap)
{
    size_t n = 0, off = 0;
    if (!cap)
        return out;
    while (off < len && w[off] && w[off] <= 63 && off + 1 + w[off] <= len) {
        for (size_t i = 1; i <= w[off]; i++) {
            uint8_t c = w[off + i];
            char tmp[5];
            int k = c > ' ' && c < 127 && c != '.' && c != '\\'
                        ? snprintf(tmp, sizeof tmp, "%c", c)
                        : snprintf(tmp, sizeof tmp, "\\%03u", c);
            if (n + (size_t)k + 2 > cap)
                goto done;
            memcpy(out + n, tmp, (size_t)k);
            n += (size_t)k;
        }
        out[n++] = '.';
        off += 1 + (size_t)w[off];
    }
    if (n == 0 && cap > 1)
        out[n++] = '.';
done:
    out[n] = '\0';
    return out;
}

static bool label_is(const struct dns_query *q, unsigned k, const char *s)
{
    const uint8_t *l = q->qname + q->label[k];
    return l[0] == strlen(s) && same_bytes(l + 1, (const uint8_t *)s, l[0]);
}

static int hex_digit(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int dns_ptr_parse(const struct dns_query *q, struct addr *ip)
{
    memset(ip, 0, sizeof *ip);
    if (q->nlabels == 6 && label_is(q, 4, "in-addr") && label_is(q, 5, "arpa")) {
        struct sockaddr_in *s = (struct sockaddr_in *)&ip->ss;
        uint8_t *b = (uint8_t *)&s->sin_addr;
        for (unsigned k = 0; k < 4; k++) {
            const uint8_t *l = q->qname + q->label[k];
            unsigned v = 0;
            /* Canonical decimal only: "01" names no address. */
            if (l[0] < 1 || l[0] > 3 || (l[0] > 1 && l[1] == '0'))
                return -1;
            for (unsigned i = 1; i <= l[0]; i++) {
                if (l[i] < '0' || l[i] > '9')
                    return -1;
                v = v * 10 + (unsigned)(l[i] - '0');
            }
            if (v > 255)
                return -1;
            b[3 - k] = (uint8_t)v;
        }
        s->sin_family = AF_INET;
        ip->len = sizeof *s;
        return 0;
    }
    if (q->nlabels == 34 && label_is(q, 32, "ip6") && label_is(q, 33, "arpa")) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ip->ss;
        uint8_t *b = s->sin6_addr.s6_addr;
        for (unsigned k = 0; k < 32; k++) {
            const uint8_t *l = q->qname + q->label[k];
            int v = l[0] == 1 ? hex_digit(l[1]) : -1;
            if (v < 0)
                return -1;
            /* Label 0 is the last nibble of the address. */
            unsigned nib = 31 - k;
            b[nib / 2] |= (uint8_t)(nib % 2 ? v : v << 4);
        }
        s->sin6_family = AF_INET6;
        ip->len = sizeof *s;
        return 0;
    }
    return -1;
}

int dns_ptr_name(const struct addr *ip, char *out, size_t cap)
{
    int n;
    if (ip->ss.ss_family == AF_INET) {
        const uint8_t *b =
            (const uint8_t *)&((const struct sockaddr_in *)&ip->ss)->sin_addr;
        n = snprintf(out, cap, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);
    } else if (ip->ss.ss_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)&ip->ss)->sin6_addr.s6_addr;
        static const char hex[] = "0123456789abcdef";
        if (cap < 64 + 9)
            return -1;
        n = 0;
        for (int i = 15; i >= 0; i--) {
            out[n++] = hex[b[i] & 0xf];
            out[n++] = '.';
            out[n++] = hex[b[i] >> 4];
            out[n++] = '.';
        }
        memcpy(out + n, "ip6.arpa", 9);
        n += 8;
    } else {
        return -1;
    }
    return n < 0 || (size_t)n >= cap ? -1 : n;
}
