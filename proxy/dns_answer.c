#include "berth/dns_answer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Most addresses one name answers with: a full 64 KiB TCP reply holds about
 * 4,000 A records, a 4 KiB UDP one about 250; no Compose service comes
 * close to this many replicas. */
#define ADDRS_MAX 2048

struct dns_responder {
    struct registry *reg;
    uint8_t zone[DNS_NAME_MAX]; /* wire form, lower case */
    size_t zone_len;
    uint32_t ttl;
    uint32_t rotation;  /* advances once per multi-address reply */
    struct addr *addrs; /* ADDRS_MAX, scratch for lookups */
};

struct dns_responder *dns_responder_new(struct registry *reg, const char *domain,
                                        unsigned ttl, char *err, size_t errlen)
{
    struct dns_responder *r = calloc(1, sizeof *r);
    if (!r || !(r->addrs = calloc(ADDRS_MAX, sizeof *r->addrs))) {
        snprintf(err, errlen, "out of memory");
        dns_responder_free(r);
        return NULL;
    }
    int n = dns_name_wire(domain, r->zone, sizeof r->zone);
    if (n <= 1) {
        snprintf(err, errlen, "--domain '%s': not a DNS name", domain);
        dns_responder_free(r);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (r->zone[i] >= 'A' && r->zone[i] <= 'Z')
            r->zone[i] = (uint8_t)(r->zone[i] + 32);
    r->zone_len = (size_t)n;
    r->reg = reg;
    r->ttl = ttl;
    return r;
}

void dns_responder_free(struct dns_responder *r)
{
    if (!r)
        return;
    free(r->addrs);
    free(r);
}

size_t dns_reply_empty(const struct dns_query *q, uint16_t flags, unsigned rcode,
                       uint8_t *out, size_t cap)
{
    struct dns_msg m;
    if (dns_msg_start(&m, out, cap, q, flags, rcode) < 0)
        return 0;
    return dns_msg_finish(&m, q);
}

/* Appends n addresses starting at the rotation point. Returns -1 (the
 * message untouched but for what fit) when they do not all fit. */
static int add_rotated(struct dns_msg *m, uint32_t ttl, const struct addr *a, size_t n,
                       size_t first)
{
    for (size_t i = 0; i < n; i++)
        if (dns_msg_add_addr(m, DNS_ANSWER, DNS_QNAME_OFF, ttl, &a[(first + i) % n]) <
            0)
            return -1;
    return 0;
}

static size_t clamp(int n)
{
    return n < 0 ? 0 : n > ADDRS_MAX ? ADDRS_MAX : (size_t)n;
}

/* A name below the zone's apex: the first k labels are the name the
 * registry knows. */
static void answer_name(struct dns_responder *r, struct dns_msg *m,
                        const struct dns_query *q, unsigned k, uint16_t zone_off)
{
    char name[DNS_NAME_MAX + 1];
    int n4 = -1, n6 = -1;
    int len = dns_qname_text(q, k, name, sizeof name);
    if (len > 0) {
        /* Only the families asked for are looked up; any lookup tells
         * whether the name exists at all. */
        bool any = q->qtype == DNS_T_ANY;
        bool want4 = any || q->qtype == DNS_T_A, want6 = any || q->qtype == DNS_T_AAAA;
        size_t got4 = 0, got6 = 0;
        if (want4 || !want6)
            n4 = registry_resolve(r->reg, name, (size_t)len, AF_INET, r->addrs,
                                  want4 ? ADDRS_MAX : 0);
        if (want4)
            got4 = clamp(n4);
        if (want6) {
            n6 = registry_resolve(r->reg, name, (size_t)len, AF_INET6, r->addrs + got4,
                                  ADDRS_MAX - got4);
            got6 = clamp(n6);
            if (got6 > ADDRS_MAX - got4)
                got6 = ADDRS_MAX - got4;
        }
        if (got4 + got6 > 1)
            r->rotation++;
        if (add_rotated(m, r->ttl, r->addrs, got4, got4 ? r->rotation % got4 : 0) <
                0 ||
            add_rotated(m, r->ttl, r->addrs + got4, got6,
                        got6 ? r->rotation % got6 : 0) < 0) {
            dns_msg_truncate(m);
            return;
        }
    }
    if (n4 < 0 && n6 < 0)
        dns_msg_set_rcode(m, DNS_NXDOMAIN);
    if (m->count[DNS_ANSWER] == 0)
        dns_msg_add_soa(m, DNS_AUTHORITY, zone_off, r->ttl,
                        (uint32_t)registry_version(r->reg), r->ttl);
}

/* PTR of a container address, outside the zone. Returns -1 when the name
 * is no such thing (it goes upstream). */
static int answer_ptr(struct dns_responder *r, const struct dns_query *q, uint8_t *out,
                      size_t limit, size_t *outlen)
{
    struct addr ip;
    char name[DNS_NAME_MAX + 1];
    uint8_t wire[DNS_NAME_MAX];
    int n;
    if (q->qtype != DNS_T_PTR || (q->qclass != DNS_C_IN && q->qclass != DNS_C_ANY) ||
        dns_ptr_parse(q, &ip) < 0 ||
        registry_ptr(r->reg, &ip, name, sizeof name) < 0 ||
        (n = dns_name_wire(name, wire, sizeof wire)) < 2 ||
        (size_t)n - 1 + r->zone_len > DNS_NAME_MAX)
        return -1;
    struct dns_msg m;
    if (dns_msg_start(&m, out, limit, q, DNS_AA | DNS_RA, DNS_NOERROR) < 0)
        return -1;
    if (dns_msg_add_ptr(&m, DNS_QNAME_OFF, r->ttl, name, r->zone, r->zone_len) < 0)
        dns_msg_truncate(&m);
    *outlen = dns_msg_finish(&m, q);
    return 0;
}

enum dns_action dns_respond(struct dns_responder *r, const uint8_t *pkt, size_t len,
                            bool tcp, struct dns_query *q, uint8_t *out, size_t cap,
                            size_t *outlen)
{
    int rc = dns_parse_query(pkt, len, q);
    if (rc < 0)
        return DNS_DROP;
    if (rc > 0) {
        *outlen = dns_build_error(out, cap, q, (unsigned)rc);
        return *outlen ? DNS_REPLY : DNS_DROP;
    }
    size_t limit = dns_reply_limit(q, tcp);
    if (limit > cap)
        limit = cap;
    struct dns_msg m;
    if (q->edns && q->edns_version != 0) {
        *outlen = dns_reply_empty(q, DNS_RA, DNS_BADVERS, out, limit);
        return *outlen ? DNS_REPLY : DNS_DROP;
    }
    int k = dns_zone_suffix(q, r->zone, r->zone_len);
    bool in_class = q->qclass == DNS_C_IN || q->qclass == DNS_C_ANY;
    /* A stale table (registry_set_stale) answers nothing from itself:
     * container names fail rather than give addresses that may be someone
     * else's now (SERVFAIL: resolvers retry; NXDOMAIN would be cached as
     * "no such name"), and PTRs go upstream like any other. */
    bool stale = registry_stale(r->reg);
    if (k < 0)
        return stale || answer_ptr(r, q, out, limit, outlen) < 0 ? DNS_FORWARD
                                                                 : DNS_REPLY;
    /* Ours from here on: authoritative, whatever the answer. Zone transfers
     * are not offered. */
    bool refuse = !in_class || q->qtype == DNS_T_AXFR || q->qtype == DNS_T_IXFR;
    if (stale && k > 0 && !refuse) {
        *outlen = dns_reply_empty(q, DNS_RA, DNS_SERVFAIL, out, limit);
        return *outlen ? DNS_REPLY : DNS_DROP;
    }
    if (dns_msg_start(&m, out, limit, q, DNS_AA | DNS_RA,
                      refuse ? DNS_REFUSED : DNS_NOERROR) < 0)
        return DNS_DROP;
    uint16_t zone_off = (uint16_t)(DNS_QNAME_OFF + q->label[k]);
    uint32_t serial = (uint32_t)registry_version(r->reg);
    if (refuse)
        ; /* no records */
    else if (k > 0)
        answer_name(r, &m, q, (unsigned)k, zone_off);
    else
        dns_msg_add_soa(&m,
                        q->qtype == DNS_T_SOA || q->qtype == DNS_T_ANY ? DNS_ANSWER
                                                                       : DNS_AUTHORITY,
                        zone_off, r->ttl, serial, r->ttl);
    *outlen = dns_msg_finish(&m, q);
    return DNS_REPLY;
}
