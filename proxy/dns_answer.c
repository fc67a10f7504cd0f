#include "berth/dns_answer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "berth/dns_msg.h"

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

static void add_soa(struct dns_responder *r, struct dns_msg *m, enum dns_section s,
                    uint16_t owner)
{
    dns_msg_add_soa(m, s, owner, r->ttl, (uint32_t)registry_version(r->reg), r->ttl);
}

/* Appends addresses a[first], a[first + 1], ... (wrapping) while they fit.
 * Returns how many went in. */
static size_t add_rotated(struct dns_msg *m, uint32_t ttl, const struct addr *a,
                          size_t n, size_t first)
{
    for (size_t i = 0; i < n; i++)
        if (dns_msg_add_addr(m, DNS_ANSWER, DNS_QNAME_OFF, ttl, &a[(first + i) % n]) <
            0)
            return i;
    return n;
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
    bool below = false;
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
        size_t put4 = add_rotated(m, r->ttl, r->addrs, got4,
                                  got4 ? r->rotation % got4 : 0);
        size_t put6 = 0;
        if (put4 == got4)
            put6 = add_rotated(m, r->ttl, r->addrs + got4, got6,
                               got6 ? r->rotation % got6 : 0);
        if (put4 + put6 < got4 + got6) {
            /* As many whole records as the client takes, and TC (RFC 2181
             * section 9): a client that cannot retry over TCP (busybox,
             * musl before 1.2.4) still gets addresses. The next reply
             * starts after the last one sent, so successive ones reach
             * every replica. Each family starts at rotation % its count:
             * the advance is the records put of the family that was cut
             * (the other was sent whole, or not at all). */
            dns_msg_set_tc(m);
            size_t cut = put4 < got4 ? put4 : put6;
            if (cut > 1)
                r->rotation += (uint32_t)cut - 1;
            return;
        }
        below = n4 < 0 && n6 < 0 && registry_has_below(r->reg, name, (size_t)len);
    }
    /* A name with names below it exists (an empty non-terminal): NXDOMAIN
     * would make RFC 8020 resolvers drop the whole subtree. */
    if (n4 < 0 && n6 < 0 && !below)
        dns_msg_set_rcode(m, DNS_NXDOMAIN);
    if (m->count[DNS_ANSWER] == 0)
        add_soa(r, m, DNS_AUTHORITY, zone_off);
}

/* The address a query arrived on, as what ns.<zone> answers; false when
 * not known (a wildcard). v4-mapped addresses count as IPv4. */
static bool local_ip(const struct addr *local, struct addr *ip)
{
    if (!local || addr_is_any(local))
        return false;
    *ip = *local;
    addr_set_port(ip, 0);
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&local->ss;
    if (local->ss.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
        struct sockaddr_in s4 = {.sin_family = AF_INET};
        memcpy(&s4.sin_addr, s6->sin6_addr.s6_addr + 12, 4);
        memset(ip, 0, sizeof *ip);
        memcpy(&ip->ss, &s4, sizeof s4);
        ip->len = sizeof s4;
    }
    return local->ss.ss_family == AF_INET || local->ss.ss_family == AF_INET6;
}

/* Whether the query's type asks for records of type t. */
static bool asks(const struct dns_query *q, unsigned t)
{
    return q->qtype == t || q->qtype == DNS_T_ANY;
}

/* ns.<zone>, the apex's NS target: berth itself, at the address the query
 * arrived on. */
static void answer_ns_self(struct dns_responder *r, struct dns_msg *m,
                           const struct dns_query *q, const struct addr *local,
                           uint16_t zone_off)
{
    struct addr ip;
    if (local_ip(local, &ip) &&
        asks(q, ip.ss.ss_family == AF_INET ? DNS_T_A : DNS_T_AAAA) &&
        dns_msg_add_addr(m, DNS_ANSWER, DNS_QNAME_OFF, r->ttl, &ip) < 0)
        dns_msg_truncate(m);
    else if (m->count[DNS_ANSWER] == 0)
        add_soa(r, m, DNS_AUTHORITY, zone_off);
}

/* NS ns.<zone> for the name at owner, with its address when it fits
 * (additional data: leaving it out sets no TC). */
static int add_ns(struct dns_responder *r, struct dns_msg *m, uint16_t owner,
                  const struct addr *local)
{
    int target = dns_msg_add_ns(m, DNS_ANSWER, owner, r->ttl);
    struct addr ip;
    if (target > 0 && local_ip(local, &ip))
        dns_msg_add_addr(m, DNS_ADDITIONAL, (uint16_t)target, r->ttl, &ip);
    return target < 0 ? -1 : 0;
}

/* The zone's apex: SOA, NS. */
static void answer_apex(struct dns_responder *r, struct dns_msg *m,
                        const struct dns_query *q, const struct addr *local,
                        uint16_t zone_off)
{
    if (asks(q, DNS_T_SOA))
        add_soa(r, m, DNS_ANSWER, zone_off);
    if (asks(q, DNS_T_NS) && add_ns(r, m, zone_off, local) < 0)
        dns_msg_truncate(m);
    else if (m->count[DNS_ANSWER] == 0)
        add_soa(r, m, DNS_AUTHORITY, zone_off);
}

/* A container address's reverse name: berth is the authority for exactly
 * that name, a zone of its own (SOA and NS at it, so a negative answer's
 * SOA is the name's own zone, RFC 2308 section 3), and answers every type
 * from itself: upstream may know nothing of the address, and its NXDOMAIN
 * would contradict the PTR. Returns -1 when the name is no such thing (it
 * goes upstream). */
static int answer_reverse(struct dns_responder *r, const struct dns_query *q,
                          const struct addr *local, uint8_t *out, size_t limit,
                          size_t *outlen)
{
    struct addr ip;
    char name[DNS_NAME_MAX + 1];
    uint8_t wire[DNS_NAME_MAX];
    int n;
    if (dns_ptr_parse(q, &ip) < 0 ||
        registry_ptr(r->reg, &ip, name, sizeof name) < 0 ||
        (n = dns_name_wire(name, wire, sizeof wire)) < 2 ||
        (size_t)n - 1 + r->zone_len > DNS_NAME_MAX)
        return -1;
    struct dns_msg m;
    if (dns_msg_start(&m, out, limit, q,
                      q->qclass == DNS_C_IN ? DNS_AA | DNS_RA : DNS_RA,
                      DNS_NOERROR) < 0)
        return -1;
    dns_msg_set_zone(&m, r->zone, r->zone_len, 0);
    if (asks(q, DNS_T_PTR) &&
        dns_msg_add_ptr(&m, DNS_QNAME_OFF, r->ttl, name, r->zone, r->zone_len) < 0)
        dns_msg_truncate(&m);
    else if (q->qtype == DNS_T_ANY || q->qtype == DNS_T_NS || q->qtype == DNS_T_SOA)
        answer_apex(r, &m, q, local, DNS_QNAME_OFF);
    else if (m.count[DNS_ANSWER] == 0)
        add_soa(r, &m, DNS_AUTHORITY, DNS_QNAME_OFF);
    *outlen = dns_msg_finish(&m, q);
    return 0;
}

/* Whether the first label of q's name is s (lower case). */
static bool first_label_is(const struct dns_query *q, const char *s)
{
    size_t n = strlen(s);
    if (q->nlabels == 0 || q->qname[0] != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = q->qname[1 + i];
        if ((c >= 'A' && c <= 'Z' ? c + 32 : c) != s[i])
            return false;
    }
    return true;
}

enum dns_action dns_respond(struct dns_responder *r, const uint8_t *pkt, size_t len,
                            bool tcp, const struct addr *local, struct dns_query *q,
                            uint8_t *out, size_t cap, size_t *outlen)
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
    /* berth knows class IN only. CHAOS (version.bind) and every other
     * class are refused here, never forwarded: an upstream's answer would
     * describe the upstream, and no answer of berth's is authoritative. */
    if (q->qclass != DNS_C_IN && q->qclass != DNS_C_ANY) {
        *outlen = dns_reply_empty(q, DNS_RA, DNS_REFUSED, out, limit);
        return *outlen ? DNS_REPLY : DNS_DROP;
    }
    int k = dns_zone_suffix(q, r->zone, r->zone_len);
    /* A stale table (registry_set_stale) answers nothing from itself:
     * container names fail rather than give addresses that may be someone
     * else's now (SERVFAIL: resolvers retry; NXDOMAIN would be cached as
     * "no such name"), and reverse names go upstream like any other. */
    bool stale = registry_stale(r->reg);
    if (k < 0)
        return stale || answer_reverse(r, q, local, out, limit, outlen) < 0
                   ? DNS_FORWARD
                   : DNS_REPLY;
    /* Ours from here on. Authoritative for class IN only: a class ANY
     * question asks about every class. Zone transfers are not offered. */
    uint16_t aa = q->qclass == DNS_C_IN ? DNS_AA : 0;
    if (q->qtype == DNS_T_AXFR || q->qtype == DNS_T_IXFR) {
        *outlen = dns_reply_empty(q, DNS_RA, DNS_REFUSED, out, limit);
        return *outlen ? DNS_REPLY : DNS_DROP;
    }
    /* ns.<zone> is berth's own, whatever the table says or whether it is
     * stale. */
    bool self = k == 1 && first_label_is(q, "ns");
    if (stale && k > 0 && !self) {
        *outlen = dns_reply_empty(q, DNS_RA, DNS_SERVFAIL, out, limit);
        return *outlen ? DNS_REPLY : DNS_DROP;
    }
    if (dns_msg_start(&m, out, limit, q, aa | DNS_RA, DNS_NOERROR) < 0)
        return DNS_DROP;
    uint16_t zone_off = (uint16_t)(DNS_QNAME_OFF + q->label[k]);
    dns_msg_set_zone(&m, r->zone, r->zone_len, zone_off);
    if (self)
        answer_ns_self(r, &m, q, local, zone_off);
    else if (k > 0)
        answer_name(r, &m, q, (unsigned)k, zone_off);
    else
        answer_apex(r, &m, q, local, zone_off);
    *outlen = dns_msg_finish(&m, q);
    return DNS_REPLY;
}
