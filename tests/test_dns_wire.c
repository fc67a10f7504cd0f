/* The DNS codec alone: query parsing and its rejections, replies (pointers,
 * SOA, OPT, truncation), upstream answer checks, names and reverse names. */
#include "check_run.h"
#include <arpa/inet.h>

#include "berth/dns_msg.h"
#include "berth/dns_wire.h"
#include "dnstest.h"

static struct dns_query q;

static int parse(const uint8_t *p, size_t len) { return dns_parse_query(p, len, &q); }

START_TEST(test_parse_plain)
{
    uint8_t b[512];
    size_t n = t_query(b, 0x1234, "WeB.Docker", DNS_T_A, -1, false, 0);
    ck_assert_int_eq(parse(b, n), 0);
    ck_assert_uint_eq(q.id, 0x1234);
    ck_assert_uint_eq(q.flags, DNS_RD);
    ck_assert_uint_eq(q.qtype, DNS_T_A);
    ck_assert_uint_eq(q.qclass, DNS_C_IN);
    ck_assert_uint_eq(q.nlabels, 2);
    ck_assert_uint_eq(q.qname_len, 12);
    ck_assert(memcmp(q.qname, "\3WeB\6Docker", 12) == 0);
    ck_assert_uint_eq(q.label[0], 0);
    ck_assert_uint_eq(q.label[1], 4);
    ck_assert_uint_eq(q.end, n);
    ck_assert(!q.edns);
    ck_assert_uint_eq(dns_reply_limit(&q, false), 512);
    ck_assert_uint_eq(dns_reply_limit(&q, true), 65535);
    char text[64];
    ck_assert_int_eq(dns_qname_text(&q, 2, text, sizeof text), 10);
    ck_assert_str_eq(text, "WeB.Docker");
    ck_assert_int_eq(dns_qname_text(&q, 1, text, sizeof text), 3);
    ck_assert_str_eq(text, "WeB");
    ck_assert_int_eq(dns_qname_text(&q, 2, text, 10), -1); /* no room for NUL */
}
END_TEST

START_TEST(test_parse_edns)
{
    uint8_t b[512];
    size_t n = t_query(b, 7, "a.b", DNS_T_AAAA, 1232, true, 0);
    ck_assert_int_eq(parse(b, n), 0);
    ck_assert(q.edns);
    ck_assert_uint_eq(q.udp_size, 1232);
    ck_assert(q.dnssec_ok);
    ck_assert_uint_eq(q.edns_version, 0);
    ck_assert_uint_eq(q.end, n - DNS_OPT_LEN);
    ck_assert_uint_eq(dns_reply_limit(&q, false), 1232);
    n = t_query(b, 7, "a.b", DNS_T_A, 100, false, 3);
    ck_assert_int_eq(parse(b, n), 0);
    ck_assert_uint_eq(q.edns_version, 3);
    ck_assert_uint_eq(dns_reply_limit(&q, false), 512);
    n = t_query(b, 7, "a.b", DNS_T_A, 65000, false, 0);
    ck_assert_int_eq(parse(b, n), 0);
    ck_assert_uint_eq(dns_reply_limit(&q, false), 4096);
    /* Options inside OPT are skipped (here a 4-byte cookie-like one). */
    n = t_query(b, 7, "a.b", DNS_T_A, 1232, false, 0);
    t_put16(b + n - 2, 8);
    memcpy(b + n, "\0\12\0\4abcd", 8);
    ck_assert_int_eq(parse(b, n + 8), 0);
    ck_assert(q.edns);
    /* The root name, "." */
    n = t_query(b, 9, "", DNS_T_NS, -1, false, 0);
    ck_assert_int_eq(parse(b, n), 0);
    ck_assert_uint_eq(q.nlabels, 0);
    ck_assert_uint_eq(q.qname_len, 1);
}
END_TEST

START_TEST(test_parse_rejects)
{
    uint8_t b[1024];
    size_t n = t_query(b, 1, "x.docker", DNS_T_A, -1, false, 0);
    ck_assert_int_eq(parse(b, 0), -1);
    ck_assert_int_eq(parse(b, 11), -1);
    /* A response is never answered. */
    b[2] |= 0x80;
    ck_assert_int_eq(parse(b, n), -1);
    b[2] &= 0x7f;
    /* Opcodes other than QUERY. */
    b[2] |= 2 << 3;
    ck_assert_int_eq(parse(b, n), DNS_NOTIMP);
    ck_assert_uint_eq(q.id, 1);
    b[2] &= (uint8_t) ~(0xf << 3);
    /* Question counts. */
    t_put16(b + 4, 0);
    ck_assert_int_eq(parse(b, n), DNS_FORMERR);
    t_put16(b + 4, 2);
    ck_assert_int_eq(parse(b, n), DNS_FORMERR);
    t_put16(b + 4, 1);
    /* Truncated anywhere inside the question. */
    for (size_t k = 12; k < n; k++)
        ck_assert_int_eq(parse(b, k), DNS_FORMERR);
    /* Trailing bytes. */
    ck_assert_int_eq(parse(b, n + 1), DNS_FORMERR);
    /* A compressed question name. */
    uint8_t c[] = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1};
    ck_assert_int_eq(parse(c, sizeof c), DNS_FORMERR);
    /* Label types 01 and 10. */
    uint8_t d[] = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, 'a', 0, 0, 1, 0, 1};
    ck_assert_int_eq(parse(d, sizeof d), DNS_FORMERR);
    /* 63-byte labels: four make a 257-byte name, three and a shorter one fit. */
    char name[300];
    memset(name, 'a', sizeof name);
    for (int i = 1; i < 4; i++)
        name[i * 64 - 1] = '.';
    name[255] = '\0';
    n = t_query(b, 1, name, DNS_T_A, -1, false, 0);
    ck_assert_int_eq(parse(b, n), DNS_FORMERR);
    name[253] = '\0'; /* 254 bytes on the wire + root */
    n = t_query(b, 1, name, DNS_T_A, -1, false, 0);
    ck_assert_int_eq(parse(b, n), 0);
    ck_assert_uint_eq(q.qname_len, 255);
    /* Two OPT records; an OPT not owned by the root. */
    n = t_query(b, 1, "x", DNS_T_A, 1232, false, 0);
    memcpy(b + n, b + n - DNS_OPT_LEN, DNS_OPT_LEN);
    t_put16(b + 10, 2);
    ck_assert_int_eq(parse(b, n + DNS_OPT_LEN), DNS_FORMERR);
    n = t_query(b, 1, "x", DNS_T_A, -1, false, 0);
    memcpy(b + n, "\1x\0\0\51\4\0\0\0\0\0\0\0", 13);
    t_put16(b + 10, 1);
    ck_assert_int_eq(parse(b, n + 13), DNS_FORMERR);
    /* An additional record whose length runs past the end. */
    n = t_query(b, 1, "x", DNS_T_A, 1232, false, 0);
    t_put16(b + n - 2, 5);
    ck_assert_int_eq(parse(b, n), DNS_FORMERR);
    /* Answer counts that claim more than is there. */
    n = t_query(b, 1, "x", DNS_T_A, -1, false, 0);
    t_put16(b + 6, 65535);
    ck_assert_int_eq(parse(b, n), DNS_FORMERR);
}
END_TEST

START_TEST(test_zone_suffix)
{
    uint8_t b[512];
    const uint8_t zone[] = "\6docker"; /* with its NUL: the root */
    size_t zl = sizeof zone;
    size_t n = t_query(b, 1, "Api.Lab.DOCKER", DNS_T_A, -1, false, 0);
    ck_assert_int_eq(parse(b, n), 0);
    ck_assert_int_eq(dns_zone_suffix(&q, zone, zl), 2);
    n = t_query(b, 1, "docker", DNS_T_SOA, -1, false, 0);
    ck_assert_int_eq(parse(b, n), 0);
    ck_assert_int_eq(dns_zone_suffix(&q, zone, zl), 0);
    n = t_query(b, 1, "xdocker", DNS_T_A, -1, false, 0);
    ck_assert_int_eq(parse(b, n), 0);
    ck_assert_int_eq(dns_zone_suffix(&q, zone, zl), -1);
    n = t_query(b, 1, "docker.com", DNS_T_A, -1, false, 0);
    ck_assert_int_eq(parse(b, n), 0);
    ck_assert_int_eq(dns_zone_suffix(&q, zone, zl), -1);
    /* The zone's bytes inside a label are not the zone. */
    uint8_t c[64] = {0,   1, 1,   0,   0,   1,   0,   0,   0, 0, 0, 0, 8,
                     'x', 6, 'd', 'o', 'c', 'k', 'e', 'r', 0, 0, 1, 0, 1};
    ck_assert_int_eq(parse(c, 26), 0);
    ck_assert_int_eq(dns_zone_suffix(&q, zone, zl), -1);
    /* A label with a dot cannot be a registry name. */
    uint8_t d[64] = {0,   1,   1, 0,   0,   1,   0,   0,   0,   0, 0, 0, 3, 'a',
                     '.', 'b', 6, 'd', 'o', 'c', 'k', 'e', 'r', 0, 0, 1, 0, 1};
    ck_assert_int_eq(parse(d, 28), 0);
    ck_assert_int_eq(dns_zone_suffix(&q, zone, zl), 1);
    char text[64];
    ck_assert_int_eq(dns_qname_text(&q, 1, text, sizeof text), -1);
}
END_TEST

START_TEST(test_build_reply)
{
    uint8_t b[512], out[512];
    size_t n = t_query(b, 0xbeef, "Web.Docker", DNS_T_A, 1232, true, 0);
    ck_assert_int_eq(parse(b, n), 0);
    struct dns_msg m;
    ck_assert_int_eq(dns_msg_start(&m, out, sizeof out, &q, DNS_AA | DNS_RA, 0), 0);
    struct addr a1, a2, a6;
    addr_from_ip(&a1, "10.0.0.1", 0);
    addr_from_ip(&a2, "10.0.0.2", 0);
    addr_from_ip(&a6, "fd00::1", 0);
    ck_assert_int_eq(dns_msg_add_addr(&m, DNS_ANSWER, DNS_QNAME_OFF, 5, &a1), 0);
    ck_assert_int_eq(dns_msg_add_addr(&m, DNS_ANSWER, DNS_QNAME_OFF, 5, &a2), 0);
    ck_assert_int_eq(dns_msg_add_addr(&m, DNS_ANSWER, DNS_QNAME_OFF, 5, &a6), 0);
    ck_assert_int_eq(dns_msg_add_soa(&m, DNS_AUTHORITY, DNS_QNAME_OFF + 4, 5, 77, 5),
                     0);
    size_t len = dns_msg_finish(&m, &q);
    ck_assert_int_eq(dns_msg_check(out, len), (long)len);
    struct t_reply *r = t_decode(out, len);
    ck_assert_uint_eq(r->id, 0xbeef);
    ck_assert_uint_eq(r->flags, DNS_QR | DNS_AA | DNS_RA | DNS_RD);
    ck_assert_str_eq(r->qname, "Web.Docker");
    ck_assert_uint_eq(r->an, 3);
    ck_assert_uint_eq(r->ns, 1);
    ck_assert_uint_eq(r->ar, 1);
    char ip[32];
    ck_assert_str_eq(t_a(r, t_find(r, 0, DNS_T_A, 0), ip, sizeof ip), "10.0.0.1");
    ck_assert_str_eq(t_find(r, 0, DNS_T_A, 1)->name, "Web.Docker");
    ck_assert_uint_eq(t_find(r, 0, DNS_T_AAAA, 0)->rdlen, 16);
    ck_assert_uint_eq(t_find(r, 0, DNS_T_A, 0)->ttl, 5);
    /* Every owner is a pointer to the question: 16 bytes per A record. */
    ck_assert_uint_eq(t_find(r, 0, DNS_T_A, 1)->rdoff -
                          t_find(r, 0, DNS_T_A, 0)->rdoff,
                      16);
    const struct t_rr *soa = t_find(r, 1, DNS_T_SOA, 0);
    ck_assert_str_eq(soa->name, "Docker");
    size_t off = soa->rdoff;
    char mname[300], rname[300];
    ck_assert_int_eq(t_name(out, len, &off, mname, sizeof mname), 0);
    ck_assert_int_eq(t_name(out, len, &off, rname, sizeof rname), 0);
    ck_assert_str_eq(mname, "ns.Docker");
    ck_assert_str_eq(rname, "hostmaster.Docker");
    ck_assert_uint_eq(t_get16(out + off + 2), 77); /* serial */
    ck_assert_uint_eq(t_get16(out + off + 18), 5); /* minimum */
    ck_assert(r->has_opt);
    ck_assert_uint_eq(r->opt_size, DNS_EDNS_SIZE);
    ck_assert_uint_eq(r->opt_ttl, 0x8000); /* DO echoed */
    free(r);
    /* An extended rcode goes into OPT. */
    ck_assert_int_eq(dns_msg_start(&m, out, sizeof out, &q, 0, DNS_BADVERS), 0);
    len = dns_msg_finish(&m, &q);
    r = t_decode(out, len);
    ck_assert_uint_eq(r->rcode, 0);
    ck_assert_uint_eq(r->opt_ttl >> 24, 1);
    free(r);
}
END_TEST

START_TEST(test_truncation)
{
    uint8_t b[512], out[4096];
    struct addr a;
    addr_from_ip(&a, "10.0.0.1", 0);
    for (int edns = 0; edns < 2; edns++) {
        size_t n = t_query(b, 1, "many.docker", DNS_T_A, edns ? 600 : -1, false, 0);
        ck_assert_int_eq(parse(b, n), 0);
        struct dns_msg m;
        size_t limit = dns_reply_limit(&q, false);
        ck_assert_int_eq(dns_msg_start(&m, out, limit, &q, DNS_AA, 0), 0);
        int added = 0;
        while (dns_msg_add_addr(&m, DNS_ANSWER, DNS_QNAME_OFF, 5, &a) == 0)
            added++;
        /* header 12 + question 17 + 16 per record (+ OPT 11) <= limit */
        ck_assert_int_eq(added, (int)((limit - 29 - (edns ? 11 : 0)) / 16));
        size_t full = dns_msg_finish(&m, &q);
        ck_assert_uint_le(full, limit);
        ck_assert_int_eq(dns_msg_start(&m, out, limit, &q, DNS_AA, 0), 0);
        dns_msg_add_addr(&m, DNS_ANSWER, DNS_QNAME_OFF, 5, &a);
        dns_msg_truncate(&m);
        size_t len = dns_msg_finish(&m, &q);
        struct t_reply *r = t_decode(out, len);
        ck_assert(r->flags & DNS_TC);
        ck_assert_uint_eq(r->an, 0);
        ck_assert_uint_eq(r->ar, edns ? 1 : 0);
        free(r);
    }
    /* No room even for the question. */
    size_t n = t_query(b, 1, "many.docker", DNS_T_A, -1, false, 0);
    ck_assert_int_eq(parse(b, n), 0);
    struct dns_msg m;
    ck_assert_int_eq(dns_msg_start(&m, out, 20, &q, 0, 0), -1);
    ck_assert_uint_eq(dns_build_error(out, 11, &q, DNS_FORMERR), 0);
    ck_assert_uint_eq(dns_build_error(out, 12, &q, DNS_FORMERR), 12);
    ck_assert_uint_eq(t_get16(out + 2), DNS_QR | DNS_RD | DNS_FORMERR);
}
END_TEST

START_TEST(test_forward_query_and_match)
{
    uint8_t b[512], fq[DNS_QUERY_MAX], ans[512];
    size_t n = t_query(b, 0x1111, "ExAmple.Test", DNS_T_A, 4096, true, 0);
    ck_assert_int_eq(parse(b, n), 0);
    size_t ql = dns_build_query(fq, sizeof fq, &q, 0x2222, 1232);
    ck_assert_uint_eq(ql, n);
    ck_assert_uint_eq(t_get16(fq), 0x2222);
    ck_assert_uint_eq(t_get16(fq + 2), DNS_RD);
    ck_assert(memcmp(fq + 4, b + 4, 8) == 0);
    ck_assert(memcmp(fq + 12, b + 12, n - 12 - DNS_OPT_LEN) == 0);
    ck_assert_uint_eq(t_get16(fq + n - 8), 1232);
    ck_assert_uint_eq(t_get16(fq + n - 4), 0x8000);
    ck_assert_uint_eq(dns_build_query(fq, sizeof fq, &q, 0x2222, 0), n - DNS_OPT_LEN);
    ck_assert_uint_eq(dns_build_query(fq, 20, &q, 0x2222, 0), 0);
    ql = dns_build_query(fq, sizeof fq, &q, 0x2222, 0);
    /* An upstream answer: lower-cased question, one A record. */
    size_t al = t_query(ans, 0x2222, "example.test", DNS_T_A, -1, false, 0);
    t_put16(ans + 2, DNS_QR | DNS_RD | DNS_RA);
    t_put16(ans + 6, 1);
    memcpy(ans + al, "\xc0\x0c\0\1\0\1\0\0\0\x3c\0\4\xc0\0\2\x0a", 16);
    al += 16;
    ck_assert_int_eq(dns_match_answer(ans, al, fq, ql), 0);
    ans[0] ^= 1; /* ID */
    ck_assert_int_eq(dns_match_answer(ans, al, fq, ql), -1);
    ans[0] ^= 1;
    ans[2] &= 0x7f; /* QR */
    ck_assert_int_eq(dns_match_answer(ans, al, fq, ql), -1);
    ans[2] |= 0x80;
    ans[14] = 'y'; /* name */
    ck_assert_int_eq(dns_match_answer(ans, al, fq, ql), -1);
    ans[14] = 'X'; /* case only */
    ck_assert_int_eq(dns_match_answer(ans, al, fq, ql), 0);
    ans[27] = 28; /* type */
    ck_assert_int_eq(dns_match_answer(ans, al, fq, ql), -1);
    ans[27] = 1;
    ck_assert_int_eq(dns_match_answer(ans, al - 1, fq, ql), -1); /* record cut */
    ck_assert_int_eq(dns_match_answer(ans, 11, fq, ql), -1);
    t_put16(ans + 4, 0); /* no question */
    ck_assert_int_eq(dns_match_answer(ans, al, fq, ql), -1);
}
END_TEST

START_TEST(test_msg_check_pointers)
{
    uint8_t m[64] = {0, 1, 0x80, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1};
    /* answer owner: a pointer to the question */
    memcpy(m + 19, "\xc0\x0c\0\1\0\1\0\0\0\0\0\0", 12);
    ck_assert_int_eq(dns_msg_check(m, 31), 31);
    m[20] = 19; /* to itself */
    ck_assert_int_eq(dns_msg_check(m, 31), -1);
    m[20] = 40; /* forward */
    ck_assert_int_eq(dns_msg_check(m, 31), -1);
    m[20] = 12;
    ck_assert_int_eq(dns_msg_check(m, 30), -1); /* rdata cut */
    ck_assert_int_eq(dns_msg_check(m, 20), -1); /* pointer cut */
    ck_assert_int_eq(dns_msg_check(m, 11), -1);
    /* Pointer chains, kept in a first record's rdata: the second record's
     * owner points at the chain's end. Only a bounded number of hops. */
    for (int hops = 100; hops <= 200; hops += 100) {
        uint8_t big[1024] = {0, 1, 0x80, 0, 0, 0, 0, 2, 0, 0, 0, 0};
        size_t n = 12;
        big[n++] = 0; /* owner: root */
        memcpy(big + n, "\0\1\0\1\0\0\0\0", 8);
        n += 8;
        size_t rdlen_at = n;
        n += 2;
        size_t rdata = n;
        memcpy(big + n, "\1a\0", 3);
        size_t prev = n;
        n += 3;
        for (int i = 0; i < hops; i++) {
            big[n] = (uint8_t)(0xc0 | prev >> 8);
            big[n + 1] = (uint8_t)prev;
            prev = n;
            n += 2;
        }
        t_put16(big + rdlen_at, (unsigned)(n - rdata));
        big[n] = (uint8_t)(0xc0 | prev >> 8);
        big[n + 1] = (uint8_t)prev;
        n += 2;
        memcpy(big + n, "\0\1\0\1\0\0\0\0\0\0", 10);
        n += 10;
        ck_assert_int_eq(dns_msg_check(big, n), hops < 127 ? (long)n : -1);
    }
}
END_TEST

START_TEST(test_names)
{
    uint8_t w[300];
    char t[600];
    ck_assert_int_eq(dns_name_wire("a.bc", w, sizeof w), 6);
    ck_assert(memcmp(w, "\1a\2bc", 6) == 0);
    ck_assert_int_eq(dns_name_wire("a.bc.", w, sizeof w), 6);
    ck_assert_int_eq(dns_name_wire(".", w, sizeof w), 1);
    ck_assert_int_eq(dns_name_wire("", w, sizeof w), 1);
    ck_assert_int_eq(dns_name_wire("a..b", w, sizeof w), -1);
    ck_assert_int_eq(dns_name_wire(".a", w, sizeof w), -1);
    ck_assert_int_eq(dns_name_wire("a.bc", w, 5), -1);
    char l[70];
    memset(l, 'x', 64);
    l[64] = '\0';
    ck_assert_int_eq(dns_name_wire(l, w, sizeof w), -1);
    l[63] = '\0';
    ck_assert_int_eq(dns_name_wire(l, w, sizeof w), 65);
    l[63] = '.';
    l[64] = '\0';
    ck_assert_str_eq(dns_name_text(w, 65, t, sizeof t), l);
    ck_assert_str_eq(dns_name_text((const uint8_t *)"\3a.b\1\\\0", 8, t, sizeof t),
                     "a\\046b.\\092.");
    ck_assert_str_eq(dns_name_text((const uint8_t *)"", 1, t, sizeof t), ".");
    ck_assert_str_eq(dns_name_text((const uint8_t *)"\5abcde\0", 7, t, 4), "ab");
}
END_TEST

static void ptr_round_trip(const char *ip)
{
    struct addr a, back;
    char name[128];
    uint8_t b[512];
    ck_assert_int_eq(addr_from_ip(&a, ip, 0), 0);
    ck_assert_int_gt(dns_ptr_name(&a, name, sizeof name), 0);
    size_t n = t_query(b, 1, name, DNS_T_PTR, -1, false, 0);
    ck_assert_int_eq(parse(b, n), 0);
    ck_assert_int_eq(dns_ptr_parse(&q, &back), 0);
    ck_assert_msg(addr_equal(&a, &back), "%s -> %s", ip, name);
}

static int ptr_of(const char *name)
{
    uint8_t b[512];
    struct addr a;
    size_t n = t_query(b, 1, name, DNS_T_PTR, -1, false, 0);
    ck_assert_int_eq(parse(b, n), 0);
    return dns_ptr_parse(&q, &a);
}

START_TEST(test_ptr_names)
{
    char name[128];
    struct addr a;
    addr_from_ip(&a, "172.17.0.2", 0);
    dns_ptr_name(&a, name, sizeof name);
    ck_assert_str_eq(name, "2.0.17.172.in-addr.arpa");
    addr_from_ip(&a, "fd00::1:2", 0);
    dns_ptr_name(&a, name, sizeof name);
    ck_assert_str_eq(
        name,
        "2.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa");
    ck_assert_int_eq(dns_ptr_name(&a, name, 40), -1);
    ptr_round_trip("0.0.0.0");
    ptr_round_trip("255.255.255.255");
    ptr_round_trip("10.1.2.3");
    ptr_round_trip("::");
    ptr_round_trip("2001:db8:ffff::abcd:1");
    ck_assert_int_eq(ptr_of("2.0.17.172.IN-ADDR.Arpa"), 0);
    ck_assert_int_eq(ptr_of("256.0.17.172.in-addr.arpa"), -1);
    ck_assert_int_eq(ptr_of("02.0.17.172.in-addr.arpa"), -1);
    ck_assert_int_eq(ptr_of("1000.0.17.172.in-addr.arpa"), -1);
    ck_assert_int_eq(ptr_of("a.0.17.172.in-addr.arpa"), -1);
    ck_assert_int_eq(ptr_of("0.17.172.in-addr.arpa"), -1);
    ck_assert_int_eq(ptr_of("2.0.17.172.in-addr.arpa.com"), -1);
    ck_assert_int_eq(
        ptr_of(
            "x.2.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.ip6.arpa"),
        -1);
    ck_assert_int_eq(
        ptr_of(
            "22.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa"),
        -1);
    ck_assert_int_eq(
        ptr_of(
            "2.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.D.F.IP6.ARPA"),
        0);
}
END_TEST

/* Records under a zone that is not in the message (a reverse name's SOA):
 * the first writes ns.<zone> in full, the next point at it; a partial
 * answer keeps its records with TC; errors to EDNS queries carry OPT. */
START_TEST(test_zone_names_partial_and_error_opt)
{
    static const uint8_t zone[] = "\6docker";
    uint8_t b[512], out[512];
    size_t n = t_query(b, 9, "2.0.17.172.in-addr.arpa", DNS_T_ANY, -1, false, 0);
    ck_assert_int_eq(parse(b, n), 0);
    struct dns_msg m;
    ck_assert_int_eq(dns_msg_start(&m, out, sizeof out, &q, DNS_AA, 0), 0);
    dns_msg_set_zone(&m, zone, sizeof zone, 0);
    ck_assert_int_eq(dns_msg_add_soa(&m, DNS_ANSWER, DNS_QNAME_OFF, 5, 7, 5), 0);
    int target = dns_msg_add_ns(&m, DNS_ANSWER, DNS_QNAME_OFF, 5);
    ck_assert_int_gt(target, 0);
    struct addr a;
    addr_from_ip(&a, "127.0.0.1", 0);
    ck_assert_int_eq(dns_msg_add_addr(&m, DNS_ADDITIONAL, (uint16_t)target, 5, &a), 0);
    dns_msg_set_tc(&m);
    size_t len = dns_msg_finish(&m, &q);
    ck_assert_int_eq(dns_msg_check(out, len), (long)len);
    struct t_reply *r = t_decode(out, len);
    ck_assert(r->flags & DNS_TC);
    ck_assert_uint_eq(r->an, 2);
    char name[300];
    size_t off = t_find(r, 0, DNS_T_SOA, 0)->rdoff;
    ck_assert_int_eq(t_name(out, len, &off, name, sizeof name), 0);
    ck_assert_str_eq(name, "ns.docker");
    ck_assert_int_eq(t_name(out, len, &off, name, sizeof name), 0);
    ck_assert_str_eq(name, "hostmaster.docker");
    off = t_find(r, 0, DNS_T_NS, 0)->rdoff;
    ck_assert_uint_eq(t_find(r, 0, DNS_T_NS, 0)->rdlen, 5); /* "ns" + pointer */
    ck_assert_int_eq(t_name(out, len, &off, name, sizeof name), 0);
    ck_assert_str_eq(name, "ns.docker");
    ck_assert_str_eq(t_find(r, 2, DNS_T_A, 0)->name, "ns.docker");
    free(r);
    /* FORMERR (a trailing byte) to an EDNS query: header and OPT. */
    n = t_query(b, 10, "a.docker", DNS_T_A, 1232, true, 0);
    b[n++] = 0;
    ck_assert_int_eq(parse(b, n), DNS_FORMERR);
    ck_assert(q.edns);
    ck_assert_uint_eq(dns_build_error(out, DNS_HDR + DNS_OPT_LEN - 1, &q, DNS_FORMERR),
                      0);
    len = dns_build_error(out, sizeof out, &q, DNS_FORMERR);
    ck_assert_uint_eq(len, DNS_HDR + DNS_OPT_LEN);
    r = t_decode(out, len);
    ck_assert(r->has_opt);
    ck_assert_uint_eq(r->opt_ttl, 0x8000);
    ck_assert_uint_eq(r->rcode, DNS_FORMERR);
    free(r);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dns_wire");
    TCase *t = tcase_create("wire");
    tcase_add_test(t, test_parse_plain);
    tcase_add_test(t, test_parse_edns);
    tcase_add_test(t, test_parse_rejects);
    tcase_add_test(t, test_zone_suffix);
    tcase_add_test(t, test_build_reply);
    tcase_add_test(t, test_truncation);
    tcase_add_test(t, test_forward_query_and_match);
    tcase_add_test(t, test_msg_check_pointers);
    tcase_add_test(t, test_names);
    tcase_add_test(t, test_ptr_names);
    tcase_add_test(t, test_zone_names_partial_and_error_opt);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return check_run(suite()); }
