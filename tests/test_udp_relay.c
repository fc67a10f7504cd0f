/* The UDP relay in process: flows, boundaries, sizes, reply source address,
 * eviction and idle expiry, all on loopback. */
#include "check_run.h"
#include <arpa/inet.h>

#include "berth/registry.h"
#include "berth/udp_relay.h"
#include "testnet.h"

static int udp_client(const char *ip)
{
    struct addr a;
    return t_bind(ip, SOCK_DGRAM, &a);
}

static void send_to(int fd, const struct addr *to, const void *buf, size_t len)
{
    ck_assert_int_eq(sendto(fd, buf, len, 0, (const struct sockaddr *)&to->ss,
                            to->len),
                     (ssize_t)len);
}

/* The backend: answers every pending datagram with its own bytes. */
static int echo_all(int backend)
{
    static char buf[65536];
    int n = 0;
    struct addr from;
    for (;;) {
        from.len = sizeof from.ss;
        ssize_t r = recvfrom(backend, buf, sizeof buf, MSG_DONTWAIT,
                             (struct sockaddr *)&from.ss, &from.len);
        if (r < 0)
            return n;
        sendto(backend, buf, (size_t)r, 0, (struct sockaddr *)&from.ss, from.len);
        n++;
    }
}

static ssize_t echo_one(struct relay_fx *f, int client, int backend,
                        const struct addr *to, const char *msg, size_t len,
                        char *reply, size_t cap)
{
    send_to(client, to, msg, len);
    ssize_t r = -1;
    PUMP_UNTIL(f->base, 3000,
               (echo_all(backend), r = recv(client, reply, cap, MSG_DONTWAIT)) >= 0);
    return r;
}

START_TEST(test_sizes_and_boundaries)
{
    struct addr target;
    int backend = t_bind("127.0.0.1", SOCK_DGRAM, &target);
    int rcv = 1 << 20;
    setsockopt(backend, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    struct relay_fx f;
    relay_fx_start(&f, PROTO_UDP, "127.0.0.1", &target, NULL);
    int c = udp_client("127.0.0.1");
    setsockopt(c, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    static char msg[65507], reply[65536];
    const size_t sizes[] = {0, 1, 100, 1472, 9000, 32768, 65507};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        for (size_t i = 0; i < sizes[k]; i++)
            msg[i] = (char)t_pattern(i + k);
        ssize_t r = echo_one(&f, c, backend, &f.front, msg, sizes[k], reply,
                             sizeof reply);
        ck_assert_int_eq(r, (ssize_t)sizes[k]);
        ck_assert(memcmp(msg, reply, sizes[k]) == 0);
    }
    /* Several datagrams in a row keep their boundaries. */
    for (int i = 0; i < 10; i++) {
        char m[32];
        int n = snprintf(m, sizeof m, "datagram %d", i);
        send_to(c, &f.front, m, (size_t)n);
    }
    for (int i = 0; i < 10; i++) {
        char want[32];
        int n = snprintf(want, sizeof want, "datagram %d", i);
        ssize_t r = -1;
        PUMP_UNTIL(f.base, 3000,
                   (echo_all(backend),
                    r = recv(c, reply, sizeof reply, MSG_DONTWAIT)) >= 0);
        ck_assert_int_eq(r, n);
        ck_assert(memcmp(reply, want, (size_t)n) == 0);
    }
    ck_assert_uint_eq(berth_udp_flows(f.b), 1);
    close(c);
    close(backend);
    relay_fx_stop(&f);
}
END_TEST

START_TEST(test_fifty_clients)
{
    struct addr target;
    int backend = t_bind("127.0.0.1", SOCK_DGRAM, &target);
    struct relay_fx f;
    relay_fx_start(&f, PROTO_UDP, "127.0.0.1", &target, NULL);
    enum { N = 50, EACH = 3 };
    int c[N];
    for (int i = 0; i < N; i++)
        c[i] = udp_client("127.0.0.1");
    for (int k = 0; k < EACH; k++)
        for (int i = 0; i < N; i++) {
            char m[32];
            int n = snprintf(m, sizeof m, "client %d message %d", i, k);
            send_to(c[i], &f.front, m, (size_t)n);
        }
    int got = 0, next[N] = {0};
    PUMP_UNTIL(f.base, 5000, ({
                   echo_all(backend);
                   for (int i = 0; i < N; i++) {
                       char r[64], want[32];
                       ssize_t n = recv(c[i], r, sizeof r, MSG_DONTWAIT);
                       if (n < 0)
                           continue;
                       int wn = snprintf(want, sizeof want, "client %d message %d", i,
                                         next[i]++);
                       ck_assert_int_eq(n, wn);
                       ck_assert(memcmp(r, want, (size_t)wn) == 0);
                       got++;
                   }
                   got == N *EACH;
               }));
    ck_assert_int_eq(got, N * EACH);
    ck_assert_uint_eq(berth_udp_flows(f.b), N);
    for (int i = 0; i < N; i++)
        close(c[i]);
    close(backend);
    relay_fx_stop(&f);
}
END_TEST

/* A wildcard listener must answer from the address each client wrote to. */
START_TEST(test_reply_from_the_address_asked)
{
    struct addr target;
    int backend = t_bind("127.0.0.1", SOCK_DGRAM, &target);
    struct relay_fx f;
    relay_fx_start(&f, PROTO_UDP, "0.0.0.0", &target, NULL);
    const char *dests[] = {"127.0.0.1", "127.0.0.2", "127.0.0.3"};
    for (int i = 0; i < 3; i++) {
        int c = udp_client("127.0.0.1");
        struct addr to = t_addr(dests[i], addr_port(&f.front)), from;
        send_to(c, &to, "ping", 4);
        char buf[8];
        ssize_t r = -1;
        PUMP_UNTIL(f.base, 3000,
                   (echo_all(backend), from.len = sizeof from.ss,
                    r = recvfrom(c, buf, sizeof buf, MSG_DONTWAIT,
                                 (struct sockaddr *)&from.ss, &from.len)) >= 0);
        ck_assert_int_eq(r, 4);
        ck_assert_msg(addr_equal(&from, &to),
                      "reply to a query sent to %s came from elsewhere", dests[i]);
        close(c);
    }
    close(backend);
    relay_fx_stop(&f);
}
END_TEST

static void four_flows(struct relay_ctx *ctx) { ctx->udp_max_flows = 4; }

START_TEST(test_table_evicts_longest_idle)
{
    struct addr target;
    int backend = t_bind("127.0.0.1", SOCK_DGRAM, &target);
    struct relay_fx f;
    relay_fx_start(&f, PROTO_UDP, "127.0.0.1", &target, four_flows);
    int c[6];
    char buf[16];
    for (int i = 0; i < 6; i++) {
        c[i] = udp_client("127.0.0.1");
        ck_assert_int_eq(echo_one(&f, c[i], backend, &f.front, "x", 1, buf,
                                  sizeof buf),
                         1);
        if (i == 3) /* client 0 becomes the most recent again */
            ck_assert_int_eq(echo_one(&f, c[0], backend, &f.front, "y", 1, buf,
                                      sizeof buf),
                             1);
        ck_assert_uint_le(berth_udp_flows(f.b), 4);
    }
    ck_assert_uint_eq(berth_udp_flows(f.b), 4);
    /* Clients 1 and 2 were evicted; 0 survived. All still get answers. */
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(echo_one(&f, c[i], backend, &f.front, "z", 1, buf,
                                  sizeof buf),
                         1);
    for (int i = 0; i < 6; i++)
        close(c[i]);
    close(backend);
    relay_fx_stop(&f);
}
END_TEST

/* Six clients' datagrams interleaved in one batch, a table of four: each
 * new flow evicts one, yet every datagram reaches the target once, each
 * client's in its order (what waits in the batch leaves before an
 * eviction can close its flow). */
START_TEST(test_batch_interleaved_past_the_table)
{
    struct addr target;
    int backend = t_bind("127.0.0.1", SOCK_DGRAM, &target);
    struct relay_fx f;
    relay_fx_start(&f, PROTO_UDP, "127.0.0.1", &target, four_flows);
    enum { N = 6, EACH = 3 };
    int c[N];
    for (int i = 0; i < N; i++)
        c[i] = udp_client("127.0.0.1");
    for (int k = 0; k < EACH; k++)
        for (int i = 0; i < N; i++) {
            char m[8];
            int n = snprintf(m, sizeof m, "%d:%d", i, k);
            send_to(c[i], &f.front, m, (size_t)n);
        }
    int got = 0, next[N] = {0};
    char buf[16];
    PUMP_UNTIL(f.base, 3000, ({
                   ssize_t n;
                   while ((n = recv(backend, buf, sizeof buf - 1, MSG_DONTWAIT)) >=
                          0) {
                       buf[n] = 0;
                       int i = buf[0] - '0', k = buf[2] - '0';
                       ck_assert_int_eq(n, 3);
                       ck_assert_int_lt(i, N);
                       ck_assert_int_eq(k, next[i]++);
                       got++;
                   }
                   got == N *EACH;
               }));
    ck_assert_int_eq(got, N * EACH);
    ck_assert_uint_le(berth_udp_flows(f.b), 4);
    for (int i = 0; i < N; i++)
        close(c[i]);
    close(backend);
    relay_fx_stop(&f);
}
END_TEST

/* Replies of several flows ready at once leave together, each from the
 * address its client wrote to. */
START_TEST(test_replies_together_each_from_its_address)
{
    struct addr target;
    int backend = t_bind("127.0.0.1", SOCK_DGRAM, &target);
    struct relay_fx f;
    relay_fx_start(&f, PROTO_UDP, "0.0.0.0", &target, NULL);
    const char *dests[] = {"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"};
    enum { N = 4 };
    int c[N];
    struct addr to[N];
    for (int i = 0; i < N; i++) {
        c[i] = udp_client("127.0.0.1");
        to[i] = t_addr(dests[i], addr_port(&f.front));
        send_to(c[i], &to[i], dests[i], strlen(dests[i]));
    }
    /* All four reach the target before it answers any. */
    char buf[64];
    struct addr flow[N];
    for (int i = 0; i < N; i++)
        ck_assert_int_ge(t_recvfrom(f.base, backend, buf, sizeof buf, &flow[i], 3000),
                         0);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(sendto(backend, "pong", 4, 0, (struct sockaddr *)&flow[i].ss,
                                flow[i].len),
                         4);
    int got = 0;
    bool seen[N] = {false};
    PUMP_UNTIL(f.base, 3000, ({
                   for (int i = 0; i < N; i++) {
                       struct addr from;
                       from.len = sizeof from.ss;
                       if (recvfrom(c[i], buf, sizeof buf, MSG_DONTWAIT,
                                    (struct sockaddr *)&from.ss, &from.len) < 0)
                           continue;
                       ck_assert_msg(addr_equal(&from, &to[i]),
                                     "reply to %s came from elsewhere", dests[i]);
                       ck_assert(!seen[i]);
                       seen[i] = true;
                       got++;
                   }
                   got == N;
               }));
    ck_assert_int_eq(got, N);
    for (int i = 0; i < N; i++)
        close(c[i]);
    close(backend);
    relay_fx_stop(&f);
}
END_TEST

static void one_second(struct relay_ctx *ctx) { ctx->udp_timeout = 1; }

START_TEST(test_idle_expiry_and_refresh)
{
    struct addr target;
    int backend = t_bind("127.0.0.1", SOCK_DGRAM, &target);
    struct relay_fx f;
    relay_fx_start(&f, PROTO_UDP, "127.0.0.1", &target, one_second);
    int c = udp_client("127.0.0.1");
    char buf[16];
    int fds_before = t_count_fds();
    ck_assert_int_eq(echo_one(&f, c, backend, &f.front, "a", 1, buf, sizeof buf), 1);
    ck_assert_int_eq(t_count_fds(), fds_before + 1);

    /* Replies alone keep the flow: the backend writes every 300 ms. */
    struct addr flow_addr;
    send_to(c, &f.front, "b", 1);
    ck_assert_int_eq(t_recvfrom(f.base, backend, buf, sizeof buf, &flow_addr, 3000),
                     1);
    for (int i = 0; i < 6; i++) {
        send_to(backend, &flow_addr, "p", 1);
        ck_assert_int_eq(t_recv(f.base, c, buf, sizeof buf, 3000), 1);
        t_pump_for(f.base, 300); /* the pace, not patience */
        ck_assert_uint_eq(berth_udp_flows(f.b), 1);
    }
    /* Silence: gone after the timeout, its socket closed. */
    ck_assert(PUMP_UNTIL(f.base, 2500, berth_udp_flows(f.b) == 0));
    ck_assert_int_eq(t_count_fds(), fds_before);
    ck_assert_int_eq(echo_one(&f, c, backend, &f.front, "c", 1, buf, sizeof buf), 1);
    close(c);
    close(backend);
    relay_fx_stop(&f);
}
END_TEST

/* A flow to a named target follows the name: once the replica it sticks to
 * moves, the client's next datagram goes to where the name points now. */
START_TEST(test_named_flow_follows_the_name)
{
    struct addr a_addr;
    int a = t_bind("127.0.0.2", SOCK_DGRAM, &a_addr);
    struct addr b_addr = t_addr("127.0.0.3", addr_port(&a_addr));
    int b = sock_bind(&b_addr, SOCK_DGRAM);
    ck_assert_int_ge(b, 0);
    struct registry *reg = registry_new();
    struct reg_endpoint ep = {.network = "bridge", .has_v4 = true};
    inet_pton(AF_INET, "127.0.0.2", &ep.v4);
    struct reg_container c = {.id = "0123456789abcdef",
                              .name = "echo",
                              .eps = &ep,
                              .neps = 1};
    ck_assert_int_eq(registry_put(reg, &c), 0);

    struct relay_fx f;
    memset(&f, 0, sizeof f);
    f.base = berth_event_base_new();
    struct addr l = t_addr("127.0.0.1", 0);
    ck_assert_int_eq(plan_add_named(&f.plan, PROTO_UDP, &l, "echo",
                                    addr_port(&a_addr)),
                     0);
    f.plan.udp_timeout = 90;
    f.b = berth_new(f.base, &f.plan, reg);
    char err[200];
    ck_assert_int_eq(berth_start(f.b, NULL, err, sizeof err), 0);
    ck_assert_int_eq(berth_local_addr(f.b, 0, &f.front), 0);

    int cl = udp_client("127.0.0.1");
    char buf[16];
    ck_assert_int_eq(echo_one(&f, cl, a, &f.front, "one", 3, buf, sizeof buf), 3);
    inet_pton(AF_INET, "127.0.0.3", &ep.v4); /* restarted elsewhere */
    ck_assert_int_eq(registry_put(reg, &c), 0);
    ck_assert_int_eq(echo_one(&f, cl, b, &f.front, "two", 3, buf, sizeof buf), 3);
    ck_assert_int_eq(recv(a, buf, sizeof buf, MSG_DONTWAIT), -1); /* none to a */
    close(cl);
    close(a);
    close(b);
    relay_fx_stop(&f);
    registry_free(reg);
}
END_TEST

START_TEST(test_ipv6_listener_ipv4_backend)
{
    if (!t_have_ipv6())
        return;
    struct addr target;
    int backend = t_bind("127.0.0.1", SOCK_DGRAM, &target);
    struct relay_fx f;
    relay_fx_start(&f, PROTO_UDP, "::", &target, NULL);
    int c = udp_client("::1");
    struct addr to = t_addr("::1", addr_port(&f.front)), from;
    char buf[16];
    send_to(c, &to, "six", 3);
    ssize_t r = -1;
    PUMP_UNTIL(f.base, 3000,
               (echo_all(backend), from.len = sizeof from.ss,
                r = recvfrom(c, buf, sizeof buf, MSG_DONTWAIT,
                             (struct sockaddr *)&from.ss, &from.len)) >= 0);
    ck_assert_int_eq(r, 3);
    ck_assert(addr_equal(&from, &to));
    close(c);
    close(backend);
    relay_fx_stop(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("udp_relay");
    TCase *tc = tcase_create("udp_relay");
    t_tcase_timeout(tc, 60);
    tcase_add_test(tc, test_sizes_and_boundaries);
    tcase_add_test(tc, test_fifty_clients);
    tcase_add_test(tc, test_reply_from_the_address_asked);
    tcase_add_test(tc, test_table_evicts_longest_idle);
    tcase_add_test(tc, test_batch_interleaved_past_the_table);
    tcase_add_test(tc, test_replies_together_each_from_its_address);
    tcase_add_test(tc, test_idle_expiry_and_refresh);
    tcase_add_test(tc, test_named_flow_follows_the_name);
    tcase_add_test(tc, test_ipv6_listener_ipv4_backend);
    suite_add_tcase(s, tc);
    return check_run(s);
}
