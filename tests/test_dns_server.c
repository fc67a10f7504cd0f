/* The DNS server in process, answering from a registry filled by hand:
 * names, replicas, aliases, short ids, PTR, NXDOMAIN vs empty NOERROR with
 * SOA, EDNS0, truncation, rotation, malformed input, TCP framing,
 * pipelining, idle timeout and connection limits, IPv6 and wildcard
 * listeners. Forwarding has its own suite (test_dns_forward.c). */
#include "check_run.h"
#include "dnsfx.h"

#define ID_WEB "aaaaaaaaaaaa0000000000000000000000000000000000000000000000000001"
#define ID_DB "bbbbbbbbbbbb0000000000000000000000000000000000000000000000000002"

static uint8_t buf[65536];

static void fill(struct registry *r)
{
    t_put(r, ID_WEB, "web", NULL, NULL, 0, "bridge", "172.17.0.2", "fd00::2", NULL);
    t_put(r, ID_DB, "db", NULL, NULL, 0, "backend", "172.18.0.3", NULL, "database");
    t_put(r, "c000000000010000000000000000000000000000000000000000000000000003",
          "v6only", NULL, NULL, 0, "v6net", NULL, "fd00::9", NULL);
    /* Replicas put out of order: answers come by number. */
    const char *ids[] = {"d3", "d1", "d2"};
    const int nums[] = {3, 1, 2};
    for (int i = 0; i < 3; i++) {
        char id[65], name[32], ip[32];
        snprintf(id, sizeof id,
                 "%s00000000000000000000000000000000000000000000000000000000000000",
                 ids[i]);
        snprintf(name, sizeof name, "lab_api_%d", nums[i]);
        snprintf(ip, sizeof ip, "172.19.0.1%d", nums[i]);
        t_put(r, id, name, "lab", "api", nums[i], "lab_default", ip, NULL, "api");
    }
}

static void start(struct dns_fx *f, struct dns_options *o)
{
    dns_fx_start(f, o);
    fill(f->reg);
}

static void expect_a(const struct t_reply *r, size_t i, const char *ip)
{
    char got[32];
    const struct t_rr *rr = t_find(r, 0, DNS_T_A, i);
    ck_assert_msg(rr != NULL, "no A record %zu", i);
    ck_assert_str_eq(t_a(r, rr, got, sizeof got), ip);
}

/* NOERROR with no answer, or NXDOMAIN: either way the zone's SOA. */
static void expect_negative(const struct t_reply *r, unsigned rcode, const char *zone,
                            uint32_t ttl)
{
    ck_assert_uint_eq(r->rcode, rcode);
    ck_assert_uint_eq(r->an, 0);
    ck_assert_uint_eq(r->ns, 1);
    const struct t_rr *soa = t_find(r, 1, DNS_T_SOA, 0);
    ck_assert_ptr_nonnull(soa);
    ck_assert_str_eq(soa->name, zone);
    ck_assert_uint_eq(soa->ttl, ttl);
    ck_assert_uint_eq(t_get16(r->msg + soa->rdoff + soa->rdlen - 2),
                      ttl); /* minimum */
    ck_assert(r->flags & DNS_AA);
}

START_TEST(test_names_and_families)
{
    struct dns_fx f;
    struct dns_options o = {.ttl = 5};
    start(&f, &o);
    struct t_reply *r = t_ask(&f, "WeB.DocKer", DNS_T_A, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->rcode, DNS_NOERROR);
    ck_assert_uint_eq(r->flags & (DNS_QR | DNS_AA | DNS_RD | DNS_TC),
                      DNS_QR | DNS_AA | DNS_RD);
    ck_assert_str_eq(r->qname, "WeB.DocKer"); /* 0x20: as asked */
    ck_assert_uint_eq(r->an, 1);
    expect_a(r, 0, "172.17.0.2");
    ck_assert_str_eq(r->rr[0].name, "WeB.DocKer");
    ck_assert_uint_eq(r->rr[0].ttl, 5);
    ck_assert(!r->has_opt);
    free(r);
    r = t_ask(&f, "web.docker", DNS_T_AAAA, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->an, 1);
    ck_assert_uint_eq(r->rr[0].rdlen, 16);
    ck_assert(memcmp(r->msg + r->rr[0].rdoff, "\xfd\0\0\0\0\0\0\0\0\0\0\0\0\0\0\2",
                     16) == 0);
    free(r);
    /* A name with no address of the family: NOERROR, empty, SOA. */
    r = t_ask(&f, "db.docker", DNS_T_AAAA, -1, buf, sizeof buf);
    expect_negative(r, DNS_NOERROR, "docker", 5);
    free(r);
    r = t_ask(&f, "v6only.docker", DNS_T_A, -1, buf, sizeof buf);
    expect_negative(r, DNS_NOERROR, "docker", 5);
    free(r);
    /* Other types of an existing name: empty NOERROR too. */
    r = t_ask(&f, "web.docker", 16 /* TXT */, -1, buf, sizeof buf);
    expect_negative(r, DNS_NOERROR, "docker", 5);
    free(r);
    /* Unknown in the zone: NXDOMAIN with SOA, whatever the type. */
    r = t_ask(&f, "nope.DOCKER", DNS_T_A, -1, buf, sizeof buf);
    expect_negative(r, DNS_NXDOMAIN, "DOCKER", 5);
    ck_assert_str_eq(r->qname, "nope.DOCKER");
    free(r);
    r = t_ask(&f, "a.b.c.nope.docker", 15 /* MX */, -1, buf, sizeof buf);
    expect_negative(r, DNS_NXDOMAIN, "docker", 5);
    free(r);
    /* ANY: both families. */
    r = t_ask(&f, "web.docker", DNS_T_ANY, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->an, 2);
    ck_assert_ptr_nonnull(t_find(r, 0, DNS_T_A, 0));
    ck_assert_ptr_nonnull(t_find(r, 0, DNS_T_AAAA, 0));
    free(r);
    dns_fx_stop(&f);
}
END_TEST

START_TEST(test_compose_alias_and_id)
{
    struct dns_fx f;
    struct dns_options o = {.ttl = 5};
    start(&f, &o);
    struct t_reply *r = t_ask(&f, "2.api.lab.docker", DNS_T_A, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->an, 1);
    expect_a(r, 0, "172.19.0.12");
    free(r);
    r = t_ask(&f, "api.lab_default.docker", DNS_T_A, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->an, 3);
    free(r);
    r = t_ask(&f, "database.backend.docker", DNS_T_A, -1, buf, sizeof buf);
    expect_a(r, 0, "172.18.0.3");
    free(r);
    r = t_ask(&f, "db.backend.docker", DNS_T_A, -1, buf, sizeof buf);
    expect_a(r, 0, "172.18.0.3");
    free(r);
    r = t_ask(&f, "AAAAAAAAAAAA.docker", DNS_T_A, -1, buf, sizeof buf);
    expect_a(r, 0, "172.17.0.2");
    free(r);
    r = t_ask(&f, "lab_api_3.docker", DNS_T_A, -1, buf, sizeof buf);
    expect_a(r, 0, "172.19.0.13");
    free(r);
    /* The apex: SOA for SOA, empty NOERROR for the rest. */
    r = t_ask(&f, "docker", DNS_T_SOA, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->an, 1);
    ck_assert_uint_eq(r->rr[0].type, DNS_T_SOA);
    free(r);
    r = t_ask(&f, "docker", DNS_T_A, -1, buf, sizeof buf);
    expect_negative(r, DNS_NOERROR, "docker", 5);
    free(r);
    /* No zone transfers. */
    r = t_ask(&f, "docker", DNS_T_AXFR, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->rcode, DNS_REFUSED);
    free(r);
    /* The registry is read live. */
    registry_drop(f.reg, ID_DB);
    r = t_ask(&f, "db.docker", DNS_T_A, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->rcode, DNS_NXDOMAIN);
    free(r);
    dns_fx_stop(&f);
}
END_TEST

START_TEST(test_rotation)
{
    struct dns_fx f;
    start(&f, NULL);
    char firsts[3] = {0};
    for (int i = 0; i < 3; i++) {
        struct t_reply *r = t_ask(&f, "api.lab.docker", DNS_T_A, -1, buf, sizeof buf);
        ck_assert_uint_eq(r->an, 3);
        /* Every answer holds all three, in a rotation of 1, 2, 3. */
        char ip[32];
        int first = t_a(r, &r->rr[0], ip, sizeof ip)[10] - '0';
        for (int k = 0; k < 3; k++) {
            char want[32];
            snprintf(want, sizeof want, "172.19.0.1%d", (first - 1 + k) % 3 + 1);
            expect_a(r, (size_t)k, want);
        }
        firsts[i] = (char)first;
        free(r);
    }
    ck_assert(firsts[0] != firsts[1] && firsts[1] != firsts[2] &&
              firsts[0] != firsts[2]);
    dns_fx_stop(&f);
}
END_TEST

START_TEST(test_ptr)
{
    struct dns_fx f;
    struct dns_options o = {.domain = "Berth.Test.", .ttl = 42};
    start(&f, &o);
    struct t_reply *r = t_ask(&f, "2.0.17.172.in-addr.ARPA", DNS_T_PTR, -1, buf,
                              sizeof buf);
    ck_assert_uint_eq(r->an, 1);
    ck_assert_uint_eq(r->rr[0].type, DNS_T_PTR);
    ck_assert_uint_eq(r->rr[0].ttl, 42);
    size_t off = r->rr[0].rdoff;
    char name[300];
    ck_assert_int_eq(t_name(r->msg, r->len, &off, name, sizeof name), 0);
    ck_assert_str_eq(name, "web.berth.test");
    free(r);
    r = t_ask(
        &f, "9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa",
        DNS_T_PTR, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->an, 1);
    off = r->rr[0].rdoff;
    ck_assert_int_eq(t_name(r->msg, r->len, &off, name, sizeof name), 0);
    ck_assert_str_eq(name, "v6only.berth.test");
    free(r);
    /* The custom zone answers; "docker" is now just another name. */
    r = t_ask(&f, "web.BERTH.test", DNS_T_A, -1, buf, sizeof buf);
    expect_a(r, 0, "172.17.0.2");
    ck_assert_uint_eq(r->rr[0].ttl, 42);
    free(r);
    r = t_ask(&f, "nope.berth.test", DNS_T_A, -1, buf, sizeof buf);
    expect_negative(r, DNS_NXDOMAIN, "berth.test", 42);
    free(r);
    dns_fx_stop(&f);
}
END_TEST

START_TEST(test_edns)
{
    struct dns_fx f;
    start(&f, NULL);
    uint8_t q[512];
    int fd = t_udp_client(&f.front);
    size_t n = t_query(q, 99, "web.docker", DNS_T_A, 1232, true, 0);
    ssize_t len = t_ask_udp(f.base, fd, &f.front, q, n, buf, sizeof buf, 5000);
    struct t_reply *r = t_decode(buf, (size_t)len);
    ck_assert(r->has_opt);
    ck_assert_uint_eq(r->opt_ttl, 0x8000);
    ck_assert_uint_eq(r->an, 1);
    free(r);
    /* An unknown EDNS version: BADVERS (extended rcode 16). */
    n = t_query(q, 98, "web.docker", DNS_T_A, 1232, false, 1);
    len = t_ask_udp(f.base, fd, &f.front, q, n, buf, sizeof buf, 5000);
    r = t_decode(buf, (size_t)len);
    ck_assert(r->has_opt);
    ck_assert_uint_eq(r->opt_ttl >> 24, 1);
    ck_assert_uint_eq(r->rcode, 0);
    ck_assert_uint_eq(r->an, 0);
    free(r);
    close(fd);
    dns_fx_stop(&f);
}
END_TEST

/* Many replicas: past 512 bytes without EDNS, past the advertised size
 * with it, TC and the records that fit; over TCP, everything. */
START_TEST(test_truncation_and_tcp)
{
    struct dns_fx f;
    start(&f, NULL);
    for (int i = 1; i <= 300; i++) {
        char id[65], name[32], ip[32];
        snprintf(id, sizeof id, "e%063d", i);
        snprintf(name, sizeof name, "big_svc_%d", i);
        snprintf(ip, sizeof ip, "10.%d.%d.%d", i / 65536, i / 256 % 256, i % 256);
        t_put(f.reg, id, name, "big", "svc", i, "big_default", ip, NULL, NULL);
    }
    /* As many whole records as fit (12 + 20 + 30 * 16 = 512), with TC. */
    struct t_reply *r = t_ask(&f, "svc.big.docker", DNS_T_A, -1, buf, sizeof buf);
    ck_assert(r->flags & DNS_TC);
    ck_assert_uint_eq(r->an, 30);
    ck_assert_uint_eq(r->ns, 0);
    ck_assert_uint_le(r->len, 512);
    free(r);
    r = t_ask(&f, "svc.big.docker", DNS_T_A, 4096, buf, sizeof buf);
    ck_assert(r->flags & DNS_TC); /* 300 * 16 > 4096 */
    ck_assert(r->has_opt);
    ck_assert_uint_eq(r->an, (4096 - 12 - 20 - 11) / 16);
    free(r);
    /* 30 replicas fit 512: 12 + 20 + 30 * 16 = 512. */
    for (int i = 31; i <= 300; i++) {
        char id[65];
        snprintf(id, sizeof id, "e%063d", i);
        registry_drop(f.reg, id);
    }
    r = t_ask(&f, "svc.big.docker", DNS_T_A, -1, buf, sizeof buf);
    ck_assert(!(r->flags & DNS_TC));
    ck_assert_uint_eq(r->an, 30);
    ck_assert_uint_eq(r->len, 512);
    free(r);
    for (int i = 31; i <= 300; i++) {
        char id[65], name[32], ip[32];
        snprintf(id, sizeof id, "e%063d", i);
        snprintf(name, sizeof name, "big_svc_%d", i);
        snprintf(ip, sizeof ip, "10.%d.%d.%d", i / 65536, i / 256 % 256, i % 256);
        t_put(f.reg, id, name, "big", "svc", i, "big_default", ip, NULL, NULL);
    }
    int fd = t_connect(&f.front);
    uint8_t q[512], frame[600];
    size_t n = t_query(q, 4242, "svc.big.docker", DNS_T_A, -1, false, 0);
    t_send_all(f.base, fd, frame, t_frame(frame, q, n));
    ssize_t len = t_tcp_read(f.base, fd, buf, sizeof buf, 5000);
    ck_assert_int_gt(len, 0);
    r = t_decode(buf, (size_t)len);
    ck_assert(!(r->flags & DNS_TC));
    ck_assert_uint_eq(r->an, 300);
    ck_assert_uint_eq(r->id, 4242);
    free(r);
    close(fd);
    dns_fx_stop(&f);
}
END_TEST

START_TEST(test_malformed_never_stop_it)
{
    struct dns_fx f;
    start(&f, NULL);
    int fd = t_udp_client(&f.front);
    uint8_t junk[700];
    unsigned seed = 12345;
    int replies = 0;
    for (int i = 0; i < 3000; i++) {
        size_t n = (size_t)(rand_r(&seed) % (int)sizeof junk);
        for (size_t k = 0; k < n; k++)
            junk[k] = (uint8_t)rand_r(&seed);
        if (i % 3 == 0 && n > 12) { /* plausible headers */
            junk[2] &= 0x07;
            t_put16(junk + 4, 1);
        }
        sendto(fd, junk, n, 0, (const struct sockaddr *)&f.front.ss, f.front.len);
        if (i % 64 == 0)
            t_pump(f.base);
        ssize_t len;
        while ((len = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
            free(t_decode(buf, (size_t)len)); /* every reply well-formed */
            replies++;
        }
    }
    PUMP_UNTIL(f.base, 200, false);
    while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
        replies++;
    ck_assert_int_gt(replies, 0);
    /* FORMERR for a readable header with a bad question. */
    uint8_t q[512];
    size_t n = t_query(q, 77, "web.docker", DNS_T_A, -1, false, 0);
    t_put16(q + 4, 2);
    ssize_t len = t_ask_udp(f.base, fd, &f.front, q, n, buf, sizeof buf, 5000);
    ck_assert_int_eq(len, 12);
    ck_assert_uint_eq(t_get16(buf), 77);
    ck_assert_uint_eq(t_get16(buf + 2) & 0xf, DNS_FORMERR);
    /* Responses and runts get nothing; then a real query is answered. */
    t_put16(q + 4, 1);
    q[2] |= 0x80;
    sendto(fd, q, n, 0, (const struct sockaddr *)&f.front.ss, f.front.len);
    sendto(fd, q, 5, 0, (const struct sockaddr *)&f.front.ss, f.front.len);
    sendto(fd, q, 0, 0, (const struct sockaddr *)&f.front.ss, f.front.len);
    q[2] &= 0x7f;
    len = t_ask_udp(f.base, fd, &f.front, q, n, buf, sizeof buf, 5000);
    ck_assert_int_gt(len, 12);
    struct t_reply *r = t_decode(buf, (size_t)len);
    ck_assert_uint_eq(r->id, 77);
    expect_a(r, 0, "172.17.0.2");
    free(r);
    close(fd);
    dns_fx_stop(&f);
}
END_TEST

START_TEST(test_tcp_pipelined_and_split)
{
    struct dns_fx f;
    start(&f, NULL);
    enum { N = 200 };
    static uint8_t stream[N * 64];
    size_t slen = 0, three = 0;
    for (int i = 0; i < N; i++) {
        if (i == 3)
            three = slen;
        uint8_t q[64];
        size_t n = t_query(q, (uint16_t)(1000 + i),
                           i % 2 ? "web.docker" : "nope.docker", DNS_T_A, -1, false,
                           0);
        slen += t_frame(stream + slen, q, n);
    }
    int fd = t_connect(&f.front);
    t_send_all(f.base, fd, stream, slen); /* all at once */
    for (int i = 0; i < N; i++) {
        ssize_t len = t_tcp_read(f.base, fd, buf, sizeof buf, 5000);
        ck_assert_int_gt(len, 0);
        struct t_reply *r = t_decode(buf, (size_t)len);
        ck_assert_uint_eq(r->id, 1000 + i); /* local answers keep order */
        ck_assert_uint_eq(r->rcode, i % 2 ? DNS_NOERROR : DNS_NXDOMAIN);
        free(r);
    }
    /* One byte at a time. */
    for (size_t k = 0; k < three; k++) {
        t_send_all(f.base, fd, stream + k, 1);
        usleep(200);
    }
    for (int i = 0; i < 3; i++) {
        ssize_t len = t_tcp_read(f.base, fd, buf, sizeof buf, 5000);
        ck_assert_int_gt(len, 0);
        ck_assert_uint_eq(t_get16(buf), 1000 + i);
    }
    /* Half-close after the queries: the answers still come, then EOF. */
    t_send_all(f.base, fd, stream, slen);
    shutdown(fd, SHUT_WR);
    for (int i = 0; i < N; i++)
        ck_assert_int_gt(t_tcp_read(f.base, fd, buf, sizeof buf, 5000), 0);
    ck_assert_int_eq(t_tcp_read(f.base, fd, buf, sizeof buf, 5000), 0);
    close(fd);
    ck_assert(PUMP_UNTIL(f.base, 3000, dns_server_tcp_conns(f.s) == 0));
    dns_fx_stop(&f);
}
END_TEST

START_TEST(test_tcp_idle_and_limit)
{
    struct dns_fx f;
    struct dns_options o = {.tcp_idle_ms = 1000, .tcp_max_conns = 4};
    start(&f, &o);
    int fds[6];
    for (int i = 0; i < 6; i++) {
        fds[i] = t_connect(&f.front);
        size_t want = (size_t)(i < 4 ? i + 1 : 4);
        ck_assert(PUMP_UNTIL(f.base, 3000, dns_server_tcp_conns(f.s) == want));
        usleep(20000);
        t_pump(f.base);
    }
    /* The two least active went to make room. */
    ck_assert_int_eq(t_tcp_read(f.base, fds[0], buf, sizeof buf, 2000), 0);
    ck_assert_int_eq(t_tcp_read(f.base, fds[1], buf, sizeof buf, 2000), 0);
    /* Idle ones close after a second; a busy one lives on. */
    uint8_t q[64], frame[80];
    size_t n = t_query(q, 5, "web.docker", DNS_T_A, -1, false, 0);
    size_t fl = t_frame(frame, q, n);
    uint64_t start_ms = t_now_ms();
    while (t_now_ms() - start_ms < 2500) {
        t_send_all(f.base, fds[5], frame, fl);
        ck_assert_int_gt(t_tcp_read(f.base, fds[5], buf, sizeof buf, 2000), 0);
        t_pump_for(f.base, 50); /* the pace, not patience */
    }
    for (int i = 2; i < 5; i++)
        ck_assert_int_eq(t_tcp_read(f.base, fds[i], buf, sizeof buf, 1000), 0);
    ck_assert_uint_eq(dns_server_tcp_conns(f.s), 1);
    for (int i = 0; i < 6; i++)
        close(fds[i]);
    dns_fx_stop(&f);
}
END_TEST

START_TEST(test_ipv6_and_wildcard)
{
    struct dns_fx f;
    struct addr l[2] = {t_addr("0.0.0.0", 0), t_addr("::1", 0)};
    bool v6 = t_have_ipv6();
    struct dns_options o = {.listen = l, .nlisten = v6 ? 2 : 1};
    start(&f, &o);
    /* Replies leave from the address the client wrote to. */
    const char *dests[] = {"127.0.0.1", "127.0.0.2", "127.0.0.3"};
    for (int i = 0; i < 3; i++) {
        struct addr to = t_addr(dests[i], addr_port(&f.front)), from;
        int fd = t_udp_client(&to);
        uint8_t q[64];
        size_t n = t_query(q, 1, "web.docker", DNS_T_A, -1, false, 0);
        sendto(fd, q, n, 0, (const struct sockaddr *)&to.ss, to.len);
        ck_assert_int_gt(t_recvfrom(f.base, fd, buf, sizeof buf, &from, 5000), 12);
        ck_assert_msg(addr_equal(&from, &to), "reply to %s came from elsewhere",
                      dests[i]);
        close(fd);
    }
    if (v6) {
        struct addr a6;
        ck_assert_int_eq(dns_server_local_addr(f.s, 1, &a6), 0);
        ck_assert_uint_gt(addr_port(&a6), 0);
        int fd = t_udp_client(&a6);
        uint8_t q[64], frame[80];
        size_t n = t_query(q, 61, "web.docker", DNS_T_AAAA, -1, false, 0);
        ck_assert_int_gt(t_ask_udp(f.base, fd, &a6, q, n, buf, sizeof buf, 5000), 12);
        close(fd);
        fd = t_connect(&a6);
        t_send_all(f.base, fd, frame, t_frame(frame, q, n));
        ssize_t len = t_tcp_read(f.base, fd, buf, sizeof buf, 5000);
        ck_assert_int_gt(len, 0);
        struct t_reply *r = t_decode(buf, (size_t)len);
        ck_assert_uint_eq(r->an, 1);
        free(r);
        close(fd);
    }
    dns_fx_stop(&f);
}
END_TEST

START_TEST(test_many_clients)
{
    struct dns_fx f;
    start(&f, NULL);
    enum { N = 200 };
    int fds[N];
    uint8_t q[64];
    for (int i = 0; i < N; i++) {
        fds[i] = t_udp_client(&f.front);
        size_t n = t_query(q, (uint16_t)i, i % 3 ? "api.lab.docker" : "db.docker",
                           DNS_T_A, -1, false, 0);
        sendto(fds[i], q, n, 0, (const struct sockaddr *)&f.front.ss, f.front.len);
    }
    int got = 0;
    bool seen[N] = {false};
    PUMP_UNTIL(f.base, 10000, ({
                   for (int i = 0; i < N; i++) {
                       if (seen[i])
                           continue;
                       ssize_t r = recv(fds[i], buf, sizeof buf, MSG_DONTWAIT);
                       if (r > 0) {
                           ck_assert_uint_eq(t_get16(buf), i);
                           ck_assert_uint_eq(t_get16(buf + 6), i % 3 ? 3 : 1);
                           seen[i] = true;
                           got++;
                       }
                   }
                   got == N;
               }));
    ck_assert_int_eq(got, N);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    dns_fx_stop(&f);
}
END_TEST

/* What --no-docker serves: the zone with nothing in it. */
START_TEST(test_empty_registry)
{
    struct dns_fx f;
    struct dns_options o = {.ttl = 5};
    dns_fx_start(&f, &o);
    struct t_reply *r = t_ask(&f, "nope.docker", DNS_T_A, -1, buf, sizeof buf);
    expect_negative(r, DNS_NXDOMAIN, "docker", 5);
    free(r);
    r = t_ask(&f, "docker", DNS_T_SOA, 1232, buf, sizeof buf);
    ck_assert_uint_eq(r->an, 1);
    free(r);
    dns_fx_stop(&f);
}
END_TEST

START_TEST(test_bad_options)
{
    struct event_base *base = event_base_new();
    struct registry *reg = registry_new();
    char err[256];
    struct addr l = t_addr("127.0.0.1", 0), up = t_addr("127.0.0.1", 9);
    struct dns_options o = {.listen = &l,
                            .nlisten = 1,
                            .upstreams = &up,
                            .nupstreams = 1,
                            .domain = "bad..domain"};
    ck_assert_ptr_null(dns_server_new(base, reg, &o, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "bad..domain"));
    /* A port in use: a one-line reason, nothing left bound. */
    struct addr taken;
    int fd = t_bind("127.0.0.1", SOCK_DGRAM, &taken);
    o.domain = "docker";
    o.listen = &taken;
    ck_assert_ptr_null(dns_server_new(base, reg, &o, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "listen udp 127.0.0.1:"));
    close(fd);
    dns_server_free(NULL);
    registry_free(reg);
    event_base_free(base);
}
END_TEST

int main(void)
{
    /* Warnings stay visible; per-server start-up lines would drown them. */
    log_set_level(LOG_WARN);
    Suite *s = suite_create("dns_server");
    TCase *tc = tcase_create("dns_server");
    t_tcase_timeout(tc, 60);
    tcase_add_test(tc, test_names_and_families);
    tcase_add_test(tc, test_compose_alias_and_id);
    tcase_add_test(tc, test_rotation);
    tcase_add_test(tc, test_ptr);
    tcase_add_test(tc, test_edns);
    tcase_add_test(tc, test_truncation_and_tcp);
    tcase_add_test(tc, test_malformed_never_stop_it);
    tcase_add_test(tc, test_tcp_pipelined_and_split);
    tcase_add_test(tc, test_tcp_idle_and_limit);
    tcase_add_test(tc, test_ipv6_and_wildcard);
    tcase_add_test(tc, test_many_clients);
    tcase_add_test(tc, test_empty_registry);
    tcase_add_test(tc, test_bad_options);
    suite_add_tcase(s, tc);
    return check_run(s);
}
