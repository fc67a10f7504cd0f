/* Forwarding in process, against upstream stubs on loopback that this test
 * drives by hand: new IDs and source ports, the client's ID and letter case
 * restored, EDNS sizes passed on, forged and mismatched answers ignored,
 * TC retried over TCP, timeouts and failover, SERVFAIL, the in-flight
 * bound, TCP clients, and berth never using itself as upstream. */
#include "check_run.h"
#include <net/if.h>

#include "berth/dns_forward.h"
#include "dnsfx.h"

static uint8_t buf[65536];

/* An upstream: UDP and a TCP listener on one loopback port. */
struct stub {
    int udp, tcp;
    struct addr a;
};

static void stub_open(struct stub *st)
{
    for (int i = 0; i < 50; i++) {
        st->udp = t_bind("127.0.0.1", SOCK_DGRAM, &st->a);
        struct addr t = st->a;
        st->tcp = sock_bind(&t, SOCK_STREAM);
        if (st->tcp >= 0)
            return;
        close(st->udp);
    }
    ck_abort_msg("no port free for UDP and TCP");
}

static void stub_close(struct stub *st)
{
    close(st->udp);
    if (st->tcp >= 0)
        close(st->tcp);
}

/* An answer to q: its header and question (case lowered, as some servers
 * do), flags added, n A records 192.0.2.(base+i). */
static size_t stub_answer(const uint8_t *q, uint8_t *out, unsigned flags, int n,
                          int base)
{
    size_t off = 12;
    char name[300];
    ck_assert_int_eq(t_name(q, 600, &off, name, sizeof name), 0);
    off += 4;
    memcpy(out, q, off);
    for (size_t i = 13; i < off - 4; i++)
        if (out[i] >= 'A' && out[i] <= 'Z')
            out[i] = (uint8_t)(out[i] + 32);
    t_put16(out + 2, 0x8000u | 0x0080u | (t_get16(q + 2) & 0x0100u) | flags);
    t_put16(out + 6, (unsigned)n);
    t_put16(out + 8, 0);
    t_put16(out + 10, 0);
    for (int i = 0; i < n; i++) {
        memcpy(out + off, "\xc0\x0c\0\1\0\1\0\0\0\x3c\0\4\xc0\0\2", 15);
        out[off + 15] = (uint8_t)(base + i);
        off += 16;
    }
    return off;
}

static void stub_send(struct stub *st, const struct addr *to, const uint8_t *m,
                      size_t len)
{
    ck_assert_int_eq(sendto(st->udp, m, len, 0, (const struct sockaddr *)&to->ss,
                            to->len),
                     (ssize_t)len);
}

static void start(struct dns_fx *f, struct stub *st, size_t nst, struct dns_options *o)
{
    static struct addr ups[4];
    for (size_t i = 0; i < nst; i++)
        ups[i] = st[i].a;
    o->upstreams = ups;
    o->nupstreams = nst;
    dns_fx_start(f, o);
}

START_TEST(test_new_id_port_and_case)
{
    struct stub st;
    stub_open(&st);
    struct dns_fx f;
    struct dns_options o = {0};
    start(&f, &st, 1, &o);
    uint16_t ids[8], ports[8];
    for (int i = 0; i < 8; i++) {
        uint8_t q[128], got[600], ans[600];
        size_t n = t_query(q, 0x4242, "ExAmPle.TEST", DNS_T_A, -1, false, 0);
        int fd = t_udp_client(&f.front);
        sendto(fd, q, n, 0, (const struct sockaddr *)&f.front.ss, f.front.len);
        struct addr from;
        ssize_t r = t_recvfrom(f.base, st.udp, got, sizeof got, &from, 5000);
        ck_assert_int_eq(r, (ssize_t)n);               /* no OPT added */
        ck_assert(memcmp(got + 2, q + 2, n - 2) == 0); /* question as asked, RD */
        ids[i] = t_get16(got);
        ports[i] = addr_port(&from);
        stub_send(&st, &from, ans, stub_answer(got, ans, 0, 1, 10));
        ssize_t len = t_recv(f.base, fd, buf, sizeof buf, 5000);
        ck_assert_int_gt(len, 0);
        struct t_reply *rep = t_decode(buf, (size_t)len);
        ck_assert_uint_eq(rep->id, 0x4242);
        ck_assert_str_eq(rep->qname, "ExAmPle.TEST");
        ck_assert_uint_eq(rep->an, 1);
        ck_assert_uint_eq(buf[rep->rr[0].rdoff + 3], 10);
        free(rep);
        close(fd);
    }
    int same_id = 0, same_port = 0;
    for (int i = 1; i < 8; i++) {
        same_id += ids[i] == ids[0];
        same_port += ports[i] == ports[0];
    }
    ck_assert_int_lt(same_id, 7);
    ck_assert_int_lt(same_port, 7);
    ck_assert(PUMP_UNTIL(f.base, 1000, dns_server_inflight(f.s) == 0));
    dns_fx_stop(&f);
    stub_close(&st);
}
END_TEST

START_TEST(test_edns_passed_on)
{
    struct stub st;
    stub_open(&st);
    struct dns_fx f;
    struct dns_options o = {0};
    start(&f, &st, 1, &o);
    uint8_t q[128], got[600], ans[600], frame[200];
    struct addr from;
    size_t n = t_query(q, 1, "example.test", DNS_T_A, 1400, true, 0);
    int fd = t_udp_client(&f.front);
    sendto(fd, q, n, 0, (const struct sockaddr *)&f.front.ss, f.front.len);
    ck_assert_int_eq(t_recvfrom(f.base, st.udp, got, sizeof got, &from, 5000),
                     (ssize_t)n);
    ck_assert_uint_eq(t_get16(got + n - 8), 1400);
    ck_assert_uint_eq(t_get16(got + n - 4), 0x8000);
    stub_send(&st, &from, ans, stub_answer(got, ans, 0, 1, 1));
    ck_assert_int_gt(t_recv(f.base, fd, buf, sizeof buf, 5000), 0);
    close(fd);
    /* A TCP client takes up to 4096 over UDP from the upstream. */
    fd = t_connect(&f.front);
    t_send_all(f.base, fd, frame, t_frame(frame, q, n));
    ck_assert_int_eq(t_recvfrom(f.base, st.udp, got, sizeof got, &from, 5000),
                     (ssize_t)n);
    ck_assert_uint_eq(t_get16(got + n - 8), 4096);
    stub_send(&st, &from, ans, stub_answer(got, ans, 0, 1, 1));
    ck_assert_int_gt(t_tcp_read(f.base, fd, buf, sizeof buf, 5000), 0);
    close(fd);
    dns_fx_stop(&f);
    stub_close(&st);
}
END_TEST

START_TEST(test_forged_and_mismatched_ignored)
{
    struct stub st;
    stub_open(&st);
    struct dns_fx f;
    struct dns_options o = {0};
    start(&f, &st, 1, &o);
    uint8_t q[128], got[600], ans[600];
    struct addr from;
    size_t n = t_query(q, 7, "example.test", DNS_T_A, -1, false, 0);
    int fd = t_udp_client(&f.front);
    sendto(fd, q, n, 0, (const struct sockaddr *)&f.front.ss, f.front.len);
    ck_assert_int_gt(t_recvfrom(f.base, st.udp, got, sizeof got, &from, 5000), 0);
    /* Wrong ID; right ID but another question; right everything but from
     * another port; a non-response. None may reach the client. */
    size_t al = stub_answer(got, ans, 0, 1, 66);
    ans[1] ^= 0x55;
    stub_send(&st, &from, ans, al);
    ans[1] ^= 0x55;
    ans[13] = 'x';
    stub_send(&st, &from, ans, al);
    ans[13] = 'e';
    struct addr other;
    int spoof = t_bind("127.0.0.1", SOCK_DGRAM, &other);
    sendto(spoof, ans, al, 0, (const struct sockaddr *)&from.ss, from.len);
    close(spoof);
    ans[2] &= 0x7f;
    stub_send(&st, &from, ans, al);
    ans[2] |= 0x80;
    stub_send(&st, &from, ans, al - 1); /* a record cut short */
    PUMP_UNTIL(f.base, 300, false);
    ck_assert_int_lt(recv(fd, buf, sizeof buf, MSG_DONTWAIT), 0);
    /* Then the real answer. */
    stub_send(&st, &from, ans, stub_answer(got, ans, 0, 1, 77));
    ssize_t len = t_recv(f.base, fd, buf, sizeof buf, 5000);
    ck_assert_int_gt(len, 0);
    struct t_reply *r = t_decode(buf, (size_t)len);
    ck_assert_uint_eq(r->id, 7);
    ck_assert_uint_eq(buf[r->rr[0].rdoff + 3], 77);
    free(r);
    PUMP_UNTIL(f.base, 200, false);
    ck_assert_int_lt(recv(fd, buf, sizeof buf, MSG_DONTWAIT), 0); /* only one */
    close(fd);
    dns_fx_stop(&f);
    stub_close(&st);
}
END_TEST

/* The stub's TCP side: accept, read one framed query, answer with n A. */
static void stub_tcp_answer(struct dns_fx *f, struct stub *st, int n)
{
    int c = t_accept(f->base, st->tcp);
    uint8_t q[600], ans[4096], frame[4200];
    ssize_t len = t_tcp_read(f->base, c, q, sizeof q, 5000);
    ck_assert_int_gt(len, 0);
    size_t al = stub_answer(q, ans, 0, n, 1);
    t_send_all(f->base, c, frame, t_frame(frame, ans, al));
    close(c);
}

START_TEST(test_truncated_retried_over_tcp)
{
    struct stub st;
    stub_open(&st);
    struct dns_fx f;
    struct dns_options o = {0};
    start(&f, &st, 1, &o);
    for (int edns = 1; edns >= 0; edns--) {
        uint8_t q[128], got[600], ans[600];
        struct addr from;
        size_t n = t_query(q, 9, "big.example.test", DNS_T_A, edns ? 4096 : -1, false,
                           0);
        int fd = t_udp_client(&f.front);
        sendto(fd, q, n, 0, (const struct sockaddr *)&f.front.ss, f.front.len);
        ck_assert_int_gt(t_recvfrom(f.base, st.udp, got, sizeof got, &from, 5000), 0);
        stub_send(&st, &from, ans, stub_answer(got, ans, 0x0200 /* TC */, 0, 0));
        stub_tcp_answer(&f, &st, 40); /* 40 * 16 > 512 */
        ssize_t len = t_recv(f.base, fd, buf, sizeof buf, 5000);
        ck_assert_int_gt(len, 0);
        struct t_reply *r = t_decode(buf, (size_t)len);
        ck_assert_uint_eq(r->id, 9);
        if (edns) { /* fits 4096: all of it */
            ck_assert(!(r->flags & DNS_TC));
            ck_assert_uint_eq(r->an, 40);
        } else { /* the client retries on TCP */
            ck_assert(r->flags & DNS_TC);
            ck_assert_uint_eq(r->an, 0);
            ck_assert_uint_le(r->len, 512);
            ck_assert_str_eq(r->qname, "big.example.test");
        }
        free(r);
        close(fd);
    }
    /* TC, and then no TCP at the upstream: SERVFAIL, at once. */
    close(st.tcp);
    st.tcp = -1;
    uint8_t q[128], got[600], ans[600];
    struct addr from;
    size_t n = t_query(q, 10, "big.example.test", DNS_T_A, -1, false, 0);
    int fd = t_udp_client(&f.front);
    sendto(fd, q, n, 0, (const struct sockaddr *)&f.front.ss, f.front.len);
    ck_assert_int_gt(t_recvfrom(f.base, st.udp, got, sizeof got, &from, 5000), 0);
    stub_send(&st, &from, ans, stub_answer(got, ans, 0x0200, 0, 0));
    ssize_t len = t_recv(f.base, fd, buf, sizeof buf, 5000);
    ck_assert_int_eq(len, (ssize_t)n); /* header and question */
    ck_assert_uint_eq(t_get16(buf + 2) & 0xf, DNS_SERVFAIL);
    close(fd);
    dns_fx_stop(&f);
    stub_close(&st);
}
END_TEST

static struct t_reply *ask_and_wait(struct dns_fx *f, const char *name, int ms,
                                    uint64_t *took)
{
    uint8_t q[128];
    size_t n = t_query(q, 3, name, DNS_T_A, -1, false, 0);
    int fd = t_udp_client(&f->front);
    uint64_t t0 = t_now_ms();
    ssize_t len = t_ask_udp(f->base, fd, &f->front, q, n, buf, sizeof buf, ms);
    *took = t_now_ms() - t0;
    close(fd);
    ck_assert_msg(len > 0, "no reply within %llu ms",
                  (unsigned long long)t_patience((uint64_t)ms));
    return t_decode(buf, (size_t)len);
}

START_TEST(test_timeout_failover_servfail)
{
    struct stub st[2];
    stub_open(&st[0]); /* never answers */
    stub_open(&st[1]);
    struct dns_fx f;
    struct dns_options o = {.upstream_timeout_ms = 300};
    start(&f, st, 2, &o);
    uint8_t q[128], got[600], ans[600];
    struct addr from;
    size_t n = t_query(q, 5, "example.test", DNS_T_A, -1, false, 0);
    int fd = t_udp_client(&f.front);
    sendto(fd, q, n, 0, (const struct sockaddr *)&f.front.ss, f.front.len);
    ck_assert_int_gt(t_recvfrom(f.base, st[0].udp, got, sizeof got, &from, 5000), 0);
    ck_assert_int_gt(t_recvfrom(f.base, st[1].udp, got, sizeof got, &from, 5000), 0);
    stub_send(&st[1], &from, ans, stub_answer(got, ans, 0, 1, 2));
    ck_assert_int_gt(t_recv(f.base, fd, buf, sizeof buf, 5000), 0);
    /* The one that answered is asked first from now on. */
    sendto(fd, q, n, 0, (const struct sockaddr *)&f.front.ss, f.front.len);
    ck_assert_int_gt(t_recvfrom(f.base, st[1].udp, got, sizeof got, &from, 5000), 0);
    ck_assert_int_lt(recv(st[0].udp, buf, sizeof buf, MSG_DONTWAIT), 0);
    /* SERVFAIL from it makes berth try the other; both silent: SERVFAIL. */
    stub_send(&st[1], &from, ans, stub_answer(got, ans, DNS_SERVFAIL, 0, 0));
    ck_assert_int_gt(t_recvfrom(f.base, st[0].udp, got, sizeof got, &from, 5000), 0);
    uint64_t t0 = t_now_ms();
    ssize_t len = t_recv(f.base, fd, buf, sizeof buf, 5000);
    ck_assert_int_gt(len, 0);
    ck_assert_uint_eq(t_get16(buf + 2) & 0xf, DNS_SERVFAIL);
    ck_assert_uint_ge(t_now_ms() - t0, 200);
    close(fd);
    uint64_t took;
    struct t_reply *r = ask_and_wait(&f, "example.test", 5000, &took);
    ck_assert_uint_eq(r->rcode, DNS_SERVFAIL);
    ck_assert(r->flags & DNS_RA);
    ck_assert_uint_ge(took, 500); /* 2 x 300 ms, some slack */
    ck_assert_uint_lt(took, 4000);
    free(r);
    dns_fx_stop(&f);
    stub_close(&st[0]);
    stub_close(&st[1]);
}
END_TEST

START_TEST(test_refused_upstream_fails_fast)
{
    struct stub st;
    stub_open(&st);
    stub_close(&st); /* nothing listens now */
    struct dns_fx f;
    struct dns_options o = {.upstream_timeout_ms = 5000};
    start(&f, &st, 1, &o);
    uint64_t took;
    struct t_reply *r = ask_and_wait(&f, "example.test", 4000, &took);
    ck_assert_uint_eq(r->rcode, DNS_SERVFAIL);
    ck_assert_uint_lt(took, 2500);
    free(r);
    dns_fx_stop(&f);
}
END_TEST

START_TEST(test_inflight_bound)
{
    struct stub st;
    stub_open(&st); /* a black hole */
    struct dns_fx f;
    struct dns_options o = {.upstream_timeout_ms = 1000, .max_inflight = 8};
    start(&f, &st, 1, &o);
    enum { N = 50 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        uint8_t q[128];
        size_t n = t_query(q, (uint16_t)i, "example.test", DNS_T_A, -1, false, 0);
        fds[i] = t_udp_client(&f.front);
        sendto(fds[i], q, n, 0, (const struct sockaddr *)&f.front.ss, f.front.len);
    }
    int got = 0;
    bool seen[N] = {false};
    size_t peak = 0;
    PUMP_UNTIL(f.base, 10000, ({
                   size_t now = dns_server_inflight(f.s);
                   peak = now > peak ? now : peak;
                   for (int i = 0; i < N; i++) {
                       if (!seen[i] &&
                           recv(fds[i], buf, sizeof buf, MSG_DONTWAIT) > 0) {
                           ck_assert_uint_eq(t_get16(buf), i);
                           ck_assert_uint_eq(t_get16(buf + 2) & 0xf, DNS_SERVFAIL);
                           seen[i] = true;
                           got++;
                       }
                   }
                   got == N;
               }));
    ck_assert_int_eq(got, N);
    ck_assert_uint_eq(peak, 8);
    ck_assert_uint_eq(dns_server_inflight(f.s), 0);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    dns_fx_stop(&f);
    stub_close(&st);
}
END_TEST

START_TEST(test_tcp_client_out_of_order_and_gone)
{
    int fds0 = t_count_fds();
    struct stub st;
    stub_open(&st);
    struct dns_fx f;
    struct dns_options o = {0};
    start(&f, &st, 1, &o);
    t_put(f.reg, "aaaaaaaaaaaa0000000000000000000000000000000000000000000000000001",
          "web", NULL, NULL, 0, "bridge", "172.17.0.2", NULL, NULL);
    uint8_t stream[400], q[128], got[3][600], ans[600];
    struct addr from[3];
    size_t slen = 0;
    const char *names[] = {"a.example.test", "b.example.test", "c.example.test",
                           "web.docker"};
    for (int i = 0; i < 4; i++) {
        size_t n = t_query(q, (uint16_t)(100 + i), names[i], DNS_T_A, -1, false, 0);
        slen += t_frame(stream + slen, q, n);
    }
    int fd = t_connect(&f.front);
    t_send_all(f.base, fd, stream, slen);
    /* The local answer does not wait for the forwarded ones. */
    ck_assert_int_gt(t_tcp_read(f.base, fd, buf, sizeof buf, 5000), 0);
    ck_assert_uint_eq(t_get16(buf), 103);
    for (int i = 0; i < 3; i++)
        ck_assert_int_gt(t_recvfrom(f.base, st.udp, got[i], sizeof got[i], &from[i],
                                    5000),
                         0);
    for (int i = 2; i >= 0; i--)
        stub_send(&st, &from[i], ans, stub_answer(got[i], ans, 0, 1, 20 + i));
    bool seen[3] = {false};
    for (int i = 0; i < 3; i++) {
        ssize_t len = t_tcp_read(f.base, fd, buf, sizeof buf, 5000);
        ck_assert_int_gt(len, 0);
        struct t_reply *r = t_decode(buf, (size_t)len);
        ck_assert_uint_ge(r->id, 100);
        ck_assert_uint_le(r->id, 102);
        ck_assert_uint_eq(buf[r->rr[0].rdoff + 3], 20 + r->id - 100);
        seen[r->id - 100] = true;
        free(r);
    }
    ck_assert(seen[0] && seen[1] && seen[2]);
    /* A client that leaves with a query upstream: the late answer is
     * dropped, nothing else happens. */
    size_t n = t_query(q, 200, "late.example.test", DNS_T_A, -1, false, 0);
    t_send_all(f.base, fd, stream, t_frame(stream, q, n));
    ck_assert_int_gt(t_recvfrom(f.base, st.udp, got[0], sizeof got[0], &from[0], 5000),
                     0);
    close(fd);
    ck_assert(PUMP_UNTIL(f.base, 3000, dns_server_tcp_conns(f.s) == 0));
    stub_send(&st, &from[0], ans, stub_answer(got[0], ans, 0, 1, 1));
    ck_assert(PUMP_UNTIL(f.base, 3000, dns_server_inflight(f.s) == 0));
    dns_fx_stop(&f);
    stub_close(&st);
    ck_assert_int_eq(t_count_fds(), fds0);
}
END_TEST

/* An IPv6 upstream, for an IPv4 client. */
START_TEST(test_ipv6_upstream)
{
    struct addr a6 = t_addr("::1", 0);
    struct stub st = {.udp = sock_bind(&a6, SOCK_DGRAM), .tcp = -1};
    if (st.udp < 0)
        return; /* no IPv6 loopback here */
    st.a.len = sizeof st.a.ss;
    getsockname(st.udp, (struct sockaddr *)&st.a.ss, &st.a.len);
    struct dns_fx f;
    struct dns_options o = {0};
    start(&f, &st, 1, &o);
    uint8_t q[128], got[600], ans[600];
    struct addr from;
    size_t n = t_query(q, 11, "example.test", DNS_T_AAAA, -1, false, 0);
    int fd = t_udp_client(&f.front);
    sendto(fd, q, n, 0, (const struct sockaddr *)&f.front.ss, f.front.len);
    ck_assert_int_gt(t_recvfrom(f.base, st.udp, got, sizeof got, &from, 5000), 0);
    ck_assert_int_eq(from.ss.ss_family, AF_INET6);
    stub_send(&st, &from, ans, stub_answer(got, ans, 0, 1, 3));
    ssize_t len = t_recv(f.base, fd, buf, sizeof buf, 5000);
    ck_assert_int_gt(len, 12);
    ck_assert_uint_eq(t_get16(buf), 11);
    close(fd);
    dns_fx_stop(&f);
    stub_close(&st);
}
END_TEST

START_TEST(test_never_forwards_to_itself)
{
    /* A port free now, for berth's own address and as "upstream". */
    struct stub probe_st;
    stub_open(&probe_st);
    stub_close(&probe_st);
    struct addr probe = probe_st.a;
    for (int wild = 0; wild < 2; wild++) {
        struct addr l = t_addr(wild ? "0.0.0.0" : "127.0.0.1", addr_port(&probe));
        struct addr up = t_addr(wild ? "127.0.0.5" : "127.0.0.1", addr_port(&probe));
        struct dns_options o = {.listen = &l,
                                .nlisten = 1,
                                .upstreams = &up,
                                .nupstreams = 1};
        struct dns_fx f;
        dns_fx_start(&f, &o);
        uint64_t took;
        struct t_reply *r = ask_and_wait(&f, "example.test", 5000, &took);
        ck_assert_uint_eq(r->rcode, DNS_SERVFAIL);
        ck_assert_uint_eq(dns_server_inflight(f.s), 0);
        free(r);
        dns_fx_stop(&f);
    }
}
END_TEST

START_TEST(test_resolv_conf)
{
    char path[] = "/tmp/berth-resolv-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char *text = "# comment\nsearch example\nnameserver 10.0.0.1\n"
                       "  nameserver\tfe80::1%lo  \nnameserver bogus\nnameserver ::1\n"
                       "options ndots:2\n";
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct addr a[8];
    ck_assert_int_eq(dns_resolv_conf(path, a, 8), 3);
    char s[ADDR_STRLEN];
    ck_assert_str_eq(addr_format(&a[0], s, sizeof s), "10.0.0.1:53");
    ck_assert_str_eq(addr_format(&a[1], s, sizeof s), "[fe80::1]:53");
    ck_assert_uint_eq(((struct sockaddr_in6 *)&a[1].ss)->sin6_scope_id,
                      if_nametoindex("lo"));
    ck_assert_str_eq(addr_format(&a[2], s, sizeof s), "[::1]:53");
    ck_assert_int_eq(dns_resolv_conf(path, a, 1), 1);
    /* The server takes them when given no upstreams (nothing is sent). */
    struct event_base *base = event_base_new();
    struct registry *reg = registry_new();
    struct addr l = t_addr("127.0.0.1", 0);
    struct dns_options o = {.listen = &l,
                            .nlisten = 1,
                            .domain = "docker",
                            .resolv_conf = path};
    char err[256];
    struct dns_server *srv = dns_server_new(base, reg, &o, err, sizeof err);
    ck_assert_msg(srv != NULL, "%s", err);
    dns_server_free(srv);
    registry_free(reg);
    event_base_free(base);
    unlink(path);
    ck_assert_int_eq(dns_resolv_conf(path, a, 8), -1);
}
END_TEST

int main(void)
{
    /* Warnings stay visible; per-server start-up lines would drown them. */
    log_set_level(LOG_WARN);
    Suite *s = suite_create("dns_forward");
    TCase *tc = tcase_create("dns_forward");
    t_tcase_timeout(tc, 60);
    tcase_add_test(tc, test_new_id_port_and_case);
    tcase_add_test(tc, test_edns_passed_on);
    tcase_add_test(tc, test_forged_and_mismatched_ignored);
    tcase_add_test(tc, test_truncated_retried_over_tcp);
    tcase_add_test(tc, test_timeout_failover_servfail);
    tcase_add_test(tc, test_refused_upstream_fails_fast);
    tcase_add_test(tc, test_inflight_bound);
    tcase_add_test(tc, test_tcp_client_out_of_order_and_gone);
    tcase_add_test(tc, test_ipv6_upstream);
    tcase_add_test(tc, test_never_forwards_to_itself);
    tcase_add_test(tc, test_resolv_conf);
    suite_add_tcase(s, tc);
    return check_run(s);
}
