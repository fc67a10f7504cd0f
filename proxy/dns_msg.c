#include "berth/dns_msg.h"

#include <netinet/in.h>
#include <string.h>

static bool room(const struct dns_msg *m, size_t n)
{
    return m->len + n + m->reserve <= m->cap;
}

int dns_msg_start(struct dns_msg *m, uint8_t *buf, size_t cap,
                  const struct dns_query *q, uint16_t flags, unsigned rcode)
{
    m->buf = buf;
    m->cap = cap;
    m->len = 0;
    m->reserve = q->edns ? DNS_OPT_LEN : 0;
    m->rcode = rcode;
    m->zone = NULL;
    m->zone_len = 0;
    m->zone_off = 0;
    memset(m->count, 0, sizeof m->count);
    if (!room(m, DNS_HDR + q->qname_len + 4))
        return -1;
    dns_put16(buf, q->id);
    unsigned f = DNS_QR | (q->flags & (DNS_OPCODE_MASK | DNS_RD | DNS_CD)) | flags;
    dns_put16(buf + 2, (f & ~DNS_RCODE_MASK) | (rcode & DNS_RCODE_MASK));
    dns_put16(buf + 4, 1);
    memset(buf + 6, 0, 6);
    memcpy(buf + DNS_HDR, q->qname, q->qname_len);
    m->len = DNS_HDR + q->qname_len;
    dns_put16(buf + m->len, q->qtype);
    dns_put16(buf + m->len + 2, q->qclass);
    m->len += 4;
    m->question_end = m->len;
    return 0;
}

/* Owner (a pointer), type, class IN, TTL and RDLENGTH. */
static void rr_head(struct dns_msg *m, uint16_t owner, unsigned type, uint32_t ttl,
                    size_t rdlen)
{
    uint8_t *p = m->buf + m->len;
    dns_put16(p, 0xc000u | owner);
    dns_put16(p + 2, type);
    dns_put16(p + 4, DNS_C_IN);
    dns_put32(p + 6, ttl);
    dns_put16(p + 10, (unsigned)rdlen);
    m->len += 12;
}

int dns_msg_add_addr(struct dns_msg *m, enum dns_section s, uint16_t owner,
                     uint32_t ttl, const struct addr *ip)
{
    const void *src;
    size_t n;
    if (ip->ss.ss_family == AF_INET) {
        src = &((const struct sockaddr_in *)&ip->ss)->sin_addr;
        n = 4;
    } else if (ip->ss.ss_family == AF_INET6) {
        src = &((const struct sockaddr_in6 *)&ip->ss)->sin6_addr;
        n = 16;
    } else {
        return -1;
    }
    if (!room(m, 12 + n))
        return -1;
    rr_head(m, owner, n == 4 ? DNS_T_A : DNS_T_AAAA, ttl, n);
    memcpy(m->buf + m->len, src, n);
    m->len += n;
    m->count[s]++;
    return 0;
}

int dns_msg_add_ptr(struct dns_msg *m, uint16_t owner, uint32_t ttl, const char *name,
                    const uint8_t *zone, size_t zone_len)
{
    uint8_t wire[DNS_NAME_MAX];
    int n = dns_name_wire(name, wire, sizeof wire);
    /* Drop the root byte of name and append the zone. */
    if (n < 2 || (size_t)n - 1 + zone_len > DNS_NAME_MAX)
        return -1;
    size_t rdlen = (size_t)n - 1 + zone_len;
    if (!room(m, 12 + rdlen))
        return -1;
    rr_head(m, owner, DNS_T_PTR, ttl, rdlen);
    memcpy(m->buf + m->len, wire, (size_t)n - 1);
    memcpy(m->buf + m->len + (size_t)n - 1, zone, zone_len);
    if (m->zone == zone && !m->zone_off && m->len + (size_t)n - 1 < 0x4000)
        m->zone_off = (uint16_t)(m->len + (size_t)n - 1);
    m->len += rdlen;
    m->count[DNS_ANSWER]++;
    return 0;
}

void dns_msg_set_zone(struct dns_msg *m, const uint8_t *zone, size_t zone_len,
                      uint16_t off)
{
    m->zone = zone;
    m->zone_len = zone_len;
    m->zone_off = off;
}

/* Bytes "<label>.<zone>" takes where the zone is next written: a pointer
 * once the zone is in the message (and reachable by one), else in full. */
static size_t under_zone_len(const struct dns_msg *m, size_t label_len)
{
    return label_len + (m->zone_off ? 2 : m->zone_len);
}

/* Writes "<label>.<zone>" at the end of the message (room checked). */
static void put_under_zone(struct dns_msg *m, const uint8_t *label, size_t label_len)
{
    memcpy(m->buf + m->len, label, label_len);
    m->len += label_len;
    if (m->zone_off) {
        dns_put16(m->buf + m->len, 0xc000u | m->zone_off);
        m->len += 2;
        return;
    }
    memcpy(m->buf + m->len, m->zone, m->zone_len);
    if (m->len < 0x4000)
        m->zone_off = (uint16_t)m->len;
    m->len += m->zone_len;
}

static const uint8_t ns_label[] = "\2ns", hostmaster_label[] = "\12hostmaster";

int dns_msg_add_soa(struct dns_msg *m, enum dns_section s, uint16_t owner,
                    uint32_t ttl, uint32_t serial, uint32_t minimum)
{
    if (!m->zone) /* the owner is the zone */
        m->zone_off = owner;
    size_t rdlen = under_zone_len(m, sizeof ns_label - 1) +
                   under_zone_len(m, sizeof hostmaster_label - 1) + 20;
    /* The second name may point at the first: never longer than counted. */
    if (!room(m, 12 + rdlen))
        return -1;
    size_t start = m->len;
    rr_head(m, owner, DNS_T_SOA, ttl, 0);
    put_under_zone(m, ns_label, sizeof ns_label - 1);
    put_under_zone(m, hostmaster_label, sizeof hostmaster_label - 1);
    uint8_t *p = m->buf + m->len;
    /* serial, refresh, retry, expire, minimum (the negative-answer TTL) */
    dns_put32(p, serial);
    dns_put32(p + 4, 3600);
    dns_put32(p + 8, 600);
    dns_put32(p + 12, 86400);
    dns_put32(p + 16, minimum);
    m->len += 20;
    dns_put16(m->buf + start + 10, (unsigned)(m->len - start - 12));
    m->count[s]++;
    return 0;
}

int dns_msg_add_ns(struct dns_msg *m, enum dns_section s, uint16_t owner, uint32_t ttl)
{
    if (!m->zone)
        m->zone_off = owner;
    size_t rdlen = under_zone_len(m, sizeof ns_label - 1);
    if (!room(m, 12 + rdlen))
        return -1;
    rr_head(m, owner, DNS_T_NS, ttl, rdlen);
    size_t target = m->len;
    put_under_zone(m, ns_label, sizeof ns_label - 1);
    m->count[s]++;
    return target < 0x4000 ? (int)target : 0;
}

void dns_msg_set_rcode(struct dns_msg *m, unsigned rcode)
{
    m->rcode = rcode;
    m->buf[3] = (uint8_t)((m->buf[3] & ~DNS_RCODE_MASK) | (rcode & DNS_RCODE_MASK));
}

void dns_msg_set_tc(struct dns_msg *m) { m->buf[2] |= DNS_TC >> 8; }

void dns_msg_truncate(struct dns_msg *m)
{
    m->len = m->question_end;
    memset(m->count, 0, sizeof m->count);
    m->buf[2] |= DNS_TC >> 8;
}

size_t dns_msg_finish(struct dns_msg *m, const struct dns_query *q)
{
    if (q->edns) {
        /* Reserved since dns_msg_start, so it always fits. */
        uint8_t *p = m->buf + m->len;
        p[0] = 0;
        dns_put16(p + 1, DNS_T_OPT);
        dns_put16(p + 3, DNS_EDNS_SIZE);
        dns_put32(p + 5,
                  (uint32_t)(m->rcode >> 4) << 24 | (q->dnssec_ok ? 0x8000u : 0));
        dns_put16(p + 9, 0);
        m->len += DNS_OPT_LEN;
        m->reserve = 0;
        m->count[DNS_ADDITIONAL]++;
    }
    dns_put16(m->buf + 6, m->count[0]);
    dns_put16(m->buf + 8, m->count[1]);
    dns_put16(m->buf + 10, m->count[2]);
    return m->len;
}

size_t dns_build_error(uint8_t *out, size_t cap, const struct dns_query *q,
                       unsigned rcode)
{
    size_t len = DNS_HDR + (q->edns ? DNS_OPT_LEN : 0);
    if (cap < len)
        return 0;
    memset(out, 0, DNS_HDR);
    dns_put16(out, q->id);
    dns_put16(out + 2, DNS_QR | (q->flags & (DNS_OPCODE_MASK | DNS_RD)) |
                           (rcode & DNS_RCODE_MASK));
    if (q->edns) {
        /* RFC 6891 section 7: an error to an EDNS message carries OPT. */
        uint8_t *p = out + DNS_HDR;
        p[0] = 0;
        dns_put16(p + 1, DNS_T_OPT);
        dns_put16(p + 3, DNS_EDNS_SIZE);
        dns_put32(p + 5, q->dnssec_ok ? 0x8000u : 0);
        dns_put16(p + 9, 0);
        dns_put16(out + 10, 1);
    }
    return len;
}
