/* berth as the authority of its zone (issue 14, points 2 and 7): empty
 * non-terminals, the apex's NS and ns.<zone>, every type of a container's
 * reverse name, AA for class IN only, other classes refused and never
 * forwarded, OPT on errors to EDNS queries, and answers too large for the
 * client cut to the records that fit, rotating through every replica. The
 * upstream is a closed port: a query that went upstream would come back
 * SERVFAIL, so every rcode checked here is berth's own. */
#include "check_run.h"
#include <check.h>
#include <stdlib.h>

#include "berth/clock.h"
#include "dnsfx.h"

static uint8_t buf[65536];

#define ID_WEB "aaaaaaaaaaaa0000000000000000000000000000000000000000000000000001"
#define ID_DOT "bbbbbbbbbbbb0000000000000000000000000000000000000000000000000002"

static void start(struct dns_fx *f)
{
    struct dns_options o = {.ttl = 5};
    dns_fx_start(f, &o);
    t_put(f->reg, ID_WEB, "web", NULL, NULL, 0, "mynet", "172.17.0.2", "fd00::2",
          "db.internal");
    t_put(f->reg, ID_DOT, "dot.name", NULL, NULL, 0, "bridge", "172.17.0.3", NULL,
          NULL);
}

/* A query of any class over UDP, optionally with an OPT. */
static struct t_reply *ask_class(struct dns_fx *f, const char *name, uint16_t type,
                                 uint16_t cls, int edns)
{
    uint8_t q[600];
    size_t n = t_query(q, 4711, name, type, edns, false, 0);
    t_put16(q + DNS_HDR + strlen(name) + 2 + 2, cls);
    int fd = t_udp_client(&f->front);
    ssize_t len = t_ask_udp(f->base, fd, &f->front, q, n, buf, sizeof buf, 5000);
    close(fd);
    ck_assert_int_gt(len, 0);
    return t_decode(buf, (size_t)len);
}

static void expect_nodata(struct t_reply *r, const char *soa_owner)
{
    ck_assert_msg(r->rcode == DNS_NOERROR, "%s: rcode %u", r->qname, r->rcode);
    ck_assert_uint_eq(r->an, 0);
    const struct t_rr *soa = t_find(r, 1, DNS_T_SOA, 0);
    ck_assert_msg(soa != NULL, "%s: no SOA", r->qname);
    ck_assert_str_eq(soa->name, soa_owner);
}

static void expect_name(const struct t_reply *r, const struct t_rr *rr,
                        const char *want)
{
    char name[300];
    size_t off = rr->rdoff;
    ck_assert_int_eq(t_name(r->msg, r->len, &off, name, sizeof name), 0);
    ck_assert_str_eq(name, want);
}

START_TEST(test_empty_non_terminals)
{
    struct dns_fx f;
    start(&f);
    /* Every suffix of a name in the zone exists; other names do not. */
    const char *ents[] = {"internal.mynet.docker", "INTERNAL.mynet.docker",
                          "name.docker", "mynet.docker", "bridge.docker"};
    for (size_t i = 0; i < sizeof ents / sizeof *ents; i++) {
        struct t_reply *r = t_ask(&f, ents[i], DNS_T_A, -1, buf, sizeof buf);
        expect_nodata(r, "docker");
        ck_assert(r->flags & DNS_AA);
        free(r);
    }
    struct t_reply *r = t_ask(&f, "db.internal.mynet.docker", DNS_T_A, -1, buf,
                              sizeof buf);
    ck_assert_uint_eq(r->an, 1);
    free(r);
    const char *none[] = {"other.mynet.docker", "x.internal.mynet.docker",
                          "nametoo.docker", "ame.docker"};
    for (size_t i = 0; i < sizeof none / sizeof *none; i++) {
        r = t_ask(&f, none[i], DNS_T_A, -1, buf, sizeof buf);
        ck_assert_msg(r->rcode == DNS_NXDOMAIN, "%s: rcode %u", none[i], r->rcode);
        free(r);
    }
    /* The suffixes go with the last name that held them. */
    registry_drop(f.reg, ID_DOT);
    r = t_ask(&f, "name.docker", DNS_T_A, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->rcode, DNS_NXDOMAIN);
    free(r);
    registry_drop(f.reg, ID_WEB);
    r = t_ask(&f, "internal.mynet.docker", DNS_T_A, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->rcode, DNS_NXDOMAIN);
    free(r);
    dns_fx_stop(&f);
}
END_TEST

/* The check is a hash lookup: 100,000 dotted names cost a lookup no more
 * than two. */
START_TEST(test_non_terminals_at_scale)
{
    struct registry *reg = registry_new();
    ck_assert_ptr_nonnull(reg);
    for (int i = 0; i < 100000; i++) {
        char id[65], name[40];
        snprintf(id, sizeof id, "%064d", i);
        snprintf(name, sizeof name, "c%d.part%d", i, i % 1000);
        t_put(reg, id, name, NULL, NULL, 0, "big", NULL, NULL, NULL);
    }
    uint64_t t0 = clock_ms();
    int found = 0;
    for (int i = 0; i < 100000; i++) {
        char name[40];
        int n = snprintf(name, sizeof name, "part%d", i % 2000);
        found += registry_has_below(reg, name, (size_t)n);
    }
    uint64_t ms = clock_ms() - t0;
    ck_assert_int_eq(found, 50000);
    /* A scan of the names would take minutes here; lookups take ms. */
    ck_assert_msg(ms < 2000, "100,000 lookups took %llu ms", (unsigned long long)ms);
    for (int i = 0; i < 100000; i++) {
        char id[65];
        snprintf(id, sizeof id, "%064d", i);
        registry_drop(reg, id);
    }
    ck_assert(!registry_has_below(reg, "part1", 5));
    registry_free(reg);
}
END_TEST

START_TEST(test_apex_ns_and_self)
{
    struct dns_fx f;
    start(&f);
    struct t_reply *r = t_ask(&f, "docker", DNS_T_NS, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->rcode, DNS_NOERROR);
    ck_assert_uint_eq(r->an, 1);
    const struct t_rr *ns = t_find(r, 0, DNS_T_NS, 0);
    ck_assert_ptr_nonnull(ns);
    expect_name(r, ns, "ns.docker");
    /* With its address (the one the query came to) as additional data. */
    const struct t_rr *glue = t_find(r, 2, DNS_T_A, 0);
    ck_assert_ptr_nonnull(glue);
    ck_assert_str_eq(glue->name, "ns.docker");
    char ip[64];
    ck_assert_str_eq(t_a(r, glue, ip, sizeof ip), "127.0.0.1");
    free(r);
    /* The SOA's MNAME is that name, and it resolves. */
    r = t_ask(&f, "docker", DNS_T_SOA, -1, buf, sizeof buf);
    expect_name(r, t_find(r, 0, DNS_T_SOA, 0), "ns.docker");
    free(r);
    r = t_ask(&f, "NS.docker", DNS_T_A, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->an, 1);
    ck_assert(r->flags & DNS_AA);
    ck_assert_str_eq(t_a(r, &r->rr[0], ip, sizeof ip), "127.0.0.1");
    ck_assert_str_eq(r->rr[0].name, "NS.docker");
    free(r);
    r = t_ask(&f, "ns.docker", DNS_T_AAAA, -1, buf, sizeof buf);
    expect_nodata(r, "docker");
    free(r);
    /* ANY at the apex: SOA and NS. */
    r = t_ask(&f, "docker", DNS_T_ANY, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->an, 2);
    ck_assert_ptr_nonnull(t_find(r, 0, DNS_T_SOA, 0));
    ck_assert_ptr_nonnull(t_find(r, 0, DNS_T_NS, 0));
    free(r);
    /* ns is berth's even while the table is stale. */
    registry_set_stale(f.reg, true);
    r = t_ask(&f, "ns.docker", DNS_T_A, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->an, 1);
    free(r);
    dns_fx_stop(&f);
}
END_TEST

START_TEST(test_reverse_name_every_type)
{
    struct dns_fx f;
    start(&f);
    const char *rev = "2.0.17.172.in-addr.arpa";
    struct t_reply *r = t_ask(&f, rev, DNS_T_TXT, -1, buf, sizeof buf);
    expect_nodata(r, rev); /* the name is a zone of its own */
    ck_assert(r->flags & DNS_AA);
    expect_name(r, t_find(r, 1, DNS_T_SOA, 0), "ns.docker");
    free(r);
    r = t_ask(&f, rev, DNS_T_A, 1232, buf, sizeof buf);
    expect_nodata(r, rev);
    ck_assert(r->has_opt);
    free(r);
    r = t_ask(&f, rev, DNS_T_ANY, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->rcode, DNS_NOERROR);
    const struct t_rr *ptr = t_find(r, 0, DNS_T_PTR, 0);
    ck_assert_ptr_nonnull(ptr);
    expect_name(r, ptr, "web.docker");
    ck_assert_ptr_nonnull(t_find(r, 0, DNS_T_SOA, 0));
    ck_assert_ptr_nonnull(t_find(r, 0, DNS_T_NS, 0));
    free(r);
    r = t_ask(&f, rev, DNS_T_SOA, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->an, 1);
    ck_assert_str_eq(r->rr[0].name, rev);
    free(r);
    r = t_ask(
        &f, "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa",
        DNS_T_AAAA, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->rcode, DNS_NOERROR);
    ck_assert_uint_eq(r->an, 0);
    free(r);
    /* An address no container has still goes upstream (here: SERVFAIL). */
    r = t_ask(&f, "9.0.17.172.in-addr.arpa", DNS_T_PTR, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->rcode, DNS_SERVFAIL);
    free(r);
    dns_fx_stop(&f);
}
END_TEST

START_TEST(test_classes)
{
    struct dns_fx f;
    start(&f);
    /* CHAOS, anywhere: refused by berth, without AA. */
    struct t_reply *r = ask_class(&f, "version.bind", DNS_T_TXT, DNS_C_CH, -1);
    ck_assert_uint_eq(r->rcode, DNS_REFUSED);
    ck_assert(!(r->flags & DNS_AA));
    ck_assert_uint_eq(r->qclass, DNS_C_CH);
    free(r);
    r = ask_class(&f, "web.docker", DNS_T_A, DNS_C_CH, 1232);
    ck_assert_uint_eq(r->rcode, DNS_REFUSED);
    ck_assert(!(r->flags & DNS_AA));
    ck_assert(r->has_opt);
    free(r);
    r = ask_class(&f, "example.org", DNS_T_A, 4 /* HS */, -1);
    ck_assert_uint_eq(r->rcode, DNS_REFUSED);
    free(r);
    /* Class ANY: the answer, but not authoritative. */
    r = ask_class(&f, "web.docker", DNS_T_A, DNS_C_ANY, -1);
    ck_assert_uint_eq(r->an, 1);
    ck_assert(!(r->flags & DNS_AA));
    free(r);
    r = ask_class(&f, "web.docker", DNS_T_A, DNS_C_IN, -1);
    ck_assert(r->flags & DNS_AA);
    free(r);
    dns_fx_stop(&f);
}
END_TEST

START_TEST(test_errors_carry_opt)
{
    struct dns_fx f;
    start(&f);
    int fd = t_udp_client(&f.front);
    uint8_t q[600];
    /* Two questions claimed, one there, then OPT: FORMERR with OPT. */
    size_t n = t_query(q, 31, "web.docker", DNS_T_A, 1232, true, 0);
    t_put16(q + 4, 2);
    ssize_t len = t_ask_udp(f.base, fd, &f.front, q, n, buf, sizeof buf, 5000);
    ck_assert_int_eq(len, DNS_HDR); /* no second question: OPT not reached */
    /* A trailing byte after the OPT. */
    n = t_query(q, 32, "web.docker", DNS_T_A, 1232, true, 0);
    q[n++] = 0;
    len = t_ask_udp(f.base, fd, &f.front, q, n, buf, sizeof buf, 5000);
    ck_assert_int_eq(len, DNS_HDR + DNS_OPT_LEN);
    struct t_reply *r = t_decode(buf, (size_t)len);
    ck_assert_uint_eq(r->rcode, DNS_FORMERR);
    ck_assert(r->has_opt);
    ck_assert_uint_eq(r->opt_ttl, 0x8000); /* DO echoed */
    free(r);
    /* Opcode STATUS with OPT: NOTIMP with OPT. */
    n = t_query(q, 33, "web.docker", DNS_T_A, 1232, false, 0);
    q[2] |= 2 << 3;
    len = t_ask_udp(f.base, fd, &f.front, q, n, buf, sizeof buf, 5000);
    r = t_decode(buf, (size_t)len);
    ck_assert_uint_eq(r->rcode, DNS_NOTIMP);
    ck_assert(r->has_opt);
    free(r);
    close(fd);
    dns_fx_stop(&f);
}
END_TEST

/* 100 replicas, no EDNS: 30 A (or 17 AAAA) records fit 512 bytes. Each
 * reply holds as many as fit, with TC, and successive replies cover all. */
START_TEST(test_truncated_answers_rotate)
{
    struct dns_fx f;
    start(&f);
    for (int i = 1; i <= 100; i++) {
        char id[65], name[32], v4[32], v6[64];
        snprintf(id, sizeof id, "e%063d", i);
        snprintf(name, sizeof name, "big_svc_%d", i);
        snprintf(v4, sizeof v4, "10.1.%d.%d", i / 256, i % 256);
        snprintf(v6, sizeof v6, "fd00::1:%x", i);
        t_put(f.reg, id, name, "big", "svc", i, "big_default", v4, v6, NULL);
    }
    const uint16_t types[] = {DNS_T_A, DNS_T_AAAA};
    const unsigned fit[] = {30, 17};
    for (int t = 0; t < 2; t++) {
        bool seen[101] = {false};
        int nseen = 0;
        for (int k = 0; k < 8; k++) {
            struct t_reply *r = t_ask(&f, "svc.big.docker", types[t], -1, buf,
                                      sizeof buf);
            ck_assert(r->flags & DNS_TC);
            ck_assert_uint_eq(r->an, fit[t]);
            ck_assert_uint_le(r->len, 512);
            for (size_t i = 0; i < r->an; i++) {
                const uint8_t *d = r->msg + r->rr[i].rdoff;
                int v = types[t] == DNS_T_A ? d[2] * 256 + d[3] : d[14] * 256 + d[15];
                ck_assert(v >= 1 && v <= 100);
                nseen += !seen[v];
                seen[v] = true;
            }
            free(r);
        }
        /* 8 replies of 17 reach all 100 when each starts after the last. */
        ck_assert_int_eq(nseen, 100);
    }
    dns_fx_stop(&f);
}
END_TEST

/* ANY for a name with 10 A and 40 AAAA records, no EDNS: the 10 A records
 * and 11 AAAA fit 512 bytes. The next reply's AAAA records start after the
 * last AAAA sent, so ceil(40 / 11) = 4 replies cover all 40 (the A records
 * sent before them do not move the AAAA start). */
START_TEST(test_truncated_any_rotates_each_family)
{
    struct dns_fx f;
    start(&f);
    for (int i = 1; i <= 40; i++) {
        char id[65], name[32], v4[32], v6[64];
        snprintf(id, sizeof id, "f%063d", i);
        snprintf(name, sizeof name, "mix_svc_%d", i);
        snprintf(v4, sizeof v4, "10.2.0.%d", i);
        snprintf(v6, sizeof v6, "fd00::2:%x", i);
        t_put(f.reg, id, name, "mix", "svc", i, "mix_default", i <= 10 ? v4 : NULL, v6,
              NULL);
    }
    bool seen[41] = {false};
    int nseen = 0;
    for (int k = 0; k < 4; k++) {
        struct t_reply *r = t_ask(&f, "svc.mix.docker", DNS_T_ANY, -1, buf,
                                  sizeof buf);
        ck_assert(r->flags & DNS_TC);
        ck_assert_uint_le(r->len, 512);
        unsigned n4 = 0, n6 = 0;
        for (size_t i = 0; i < r->an; i++) {
            const uint8_t *d = r->msg + r->rr[i].rdoff;
            if (r->rr[i].type == DNS_T_A) {
                n4++;
                continue;
            }
            ck_assert_uint_eq(r->rr[i].type, DNS_T_AAAA);
            int v = d[14] * 256 + d[15];
            ck_assert(v >= 1 && v <= 40);
            n6++;
            nseen += !seen[v];
            seen[v] = true;
        }
        ck_assert_uint_eq(n4, 10);
        ck_assert_uint_eq(n6, 11);
        free(r);
    }
    ck_assert_int_eq(nseen, 40);
    dns_fx_stop(&f);
}
END_TEST

int main(void)
{
    log_set_level(LOG_ERROR);
    Suite *s = suite_create("dns_authority");
    TCase *tc = tcase_create("dns_authority");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_empty_non_terminals);
    tcase_add_test(tc, test_non_terminals_at_scale);
    tcase_add_test(tc, test_apex_ns_and_self);
    tcase_add_test(tc, test_reverse_name_every_type);
    tcase_add_test(tc, test_classes);
    tcase_add_test(tc, test_errors_carry_opt);
    tcase_add_test(tc, test_truncated_answers_rotate);
    tcase_add_test(tc, test_truncated_any_rotates_each_family);
    suite_add_tcase(s, tc);
    return check_run(s);
}
