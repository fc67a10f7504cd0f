/* Transparent mode's decision, per case, over made-up interface tables:
 * the client's address is taken, or the connection falls back and says
 * why (loopback, this host's address, the target on this host, one shared
 * network, mixed families; an IPv4-mapped client counts as IPv4). Then,
 * as root only, real binds: IP_TRANSPARENT lets a socket take an address
 * the host does not have, and transparent_bind takes the client's address
 * and port, or leaves the socket alone when the host is not set up or the
 * client is local. */
#include "check_run.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "berth/relay.h"
#include "berth/transparent.h"
#include "looptest.h"

/* The host of tests/e2e/test_transparent.py, with loopback. */
static struct transparent_net nets[8];
static size_t nnets;

static void add_net(const char *ip, unsigned prefix)
{
    ck_assert_uint_lt(nnets, sizeof nets / sizeof nets[0]);
    nets[nnets].addr = t_addr(ip, 0);
    nets[nnets].prefix = prefix;
    nnets++;
}

static void host_table(void)
{
    nnets = 0;
    add_net("127.0.0.1", 8);
    add_net("::1", 128);
    add_net("10.251.1.1", 24);
    add_net("10.251.2.1", 24);
    add_net("fd00:251:1::1", 64);
    add_net("fd00:251:2::1", 64);
    add_net("10.9.0.1", 25);
}

static enum transparent_why decide(const char *client_ip, uint16_t cport,
                                   const char *target_ip, struct addr *src,
                                   const struct transparent_net **net)
{
    struct addr c = t_addr(client_ip, cport), t = t_addr(target_ip, 80);
    return transparent_decide(nets, nnets, &c, &t, src, net);
}

START_TEST(client_elsewhere_is_taken)
{
    host_table();
    struct addr src;
    ck_assert_int_eq(decide("10.251.1.2", 5555, "10.251.2.2", &src, NULL),
                     TRANSPARENT_OK);
    struct addr want = t_addr("10.251.1.2", 5555);
    ck_assert(addr_equal(&src, &want));
    ck_assert_int_eq(src.len, sizeof(struct sockaddr_in));
    ck_assert_int_eq(decide("fd00:251:1::2", 6000, "fd00:251:2::2", &src, NULL),
                     TRANSPARENT_OK);
    want = t_addr("fd00:251:1::2", 6000);
    ck_assert(addr_equal(&src, &want));
    /* A client from far away (routed to the host) to a container. */
    ck_assert_int_eq(decide("203.0.113.9", 40000, "10.251.2.2", &src, NULL),
                     TRANSPARENT_OK);
    /* With no table at all, only the address tests remain. */
    struct addr c = t_addr("10.251.2.3", 1), t = t_addr("10.251.2.2", 80);
    ck_assert_int_eq(transparent_decide(NULL, 0, &c, &t, &src, NULL), TRANSPARENT_OK);
}
END_TEST

START_TEST(mapped_client_is_ipv4)
{
    host_table();
    struct addr src;
    ck_assert_int_eq(decide("::ffff:10.251.1.2", 5555, "10.251.2.2", &src, NULL),
                     TRANSPARENT_OK);
    ck_assert_int_eq(src.ss.ss_family, AF_INET);
    struct addr want = t_addr("10.251.1.2", 5555);
    ck_assert(addr_equal(&src, &want));
    ck_assert_int_eq(src.len, sizeof(struct sockaddr_in));
    /* Mapped to an IPv6 target: an IPv4 client there. */
    ck_assert_int_eq(decide("::ffff:10.251.1.2", 5555, "fd00:251:2::2", &src, NULL),
                     TRANSPARENT_FAMILY);
    ck_assert_int_eq(decide("::ffff:127.0.0.1", 5555, "10.251.2.2", &src, NULL),
                     TRANSPARENT_LOOPBACK);
    ck_assert_int_eq(decide("::ffff:10.251.2.1", 5555, "10.251.2.2", &src, NULL),
                     TRANSPARENT_HOST);
}
END_TEST

START_TEST(families_must_match)
{
    host_table();
    struct addr src;
    ck_assert_int_eq(decide("fd00:251:1::2", 1, "10.251.2.2", &src, NULL),
                     TRANSPARENT_FAMILY);
    ck_assert_int_eq(decide("10.251.1.2", 1, "fd00:251:2::2", &src, NULL),
                     TRANSPARENT_FAMILY);
}
END_TEST

START_TEST(local_clients_fall_back)
{
    host_table();
    struct addr src;
    ck_assert_int_eq(decide("127.0.0.1", 1, "10.251.2.2", &src, NULL),
                     TRANSPARENT_LOOPBACK);
    ck_assert_int_eq(decide("127.3.4.5", 1, "10.251.2.2", &src, NULL),
                     TRANSPARENT_LOOPBACK);
    ck_assert_int_eq(decide("::1", 1, "fd00:251:2::2", &src, NULL),
                     TRANSPARENT_LOOPBACK);
    /* ::1 to an IPv4 target: loopback is the reason that helps. */
    ck_assert_int_eq(decide("::1", 1, "10.251.2.2", &src, NULL), TRANSPARENT_LOOPBACK);
    /* The host's own addresses, on either side of it. */
    ck_assert_int_eq(decide("10.251.1.1", 1, "10.251.2.2", &src, NULL),
                     TRANSPARENT_HOST);
    ck_assert_int_eq(decide("10.251.2.1", 1, "10.251.2.2", &src, NULL),
                     TRANSPARENT_HOST);
    ck_assert_int_eq(decide("fd00:251:2::1", 1, "fd00:251:2::2", &src, NULL),
                     TRANSPARENT_HOST);
}
END_TEST

START_TEST(target_on_host_falls_back)
{
    host_table();
    struct addr src;
    ck_assert_int_eq(decide("10.251.1.2", 1, "127.0.0.1", &src, NULL),
                     TRANSPARENT_TARGET_HOST);
    ck_assert_int_eq(decide("10.251.1.2", 1, "10.251.2.1", &src, NULL),
                     TRANSPARENT_TARGET_HOST);
    ck_assert_int_eq(decide("fd00:251:1::2", 1, "::1", &src, NULL),
                     TRANSPARENT_TARGET_HOST);
}
END_TEST

START_TEST(same_network_falls_back)
{
    host_table();
    struct addr src;
    const struct transparent_net *net = NULL;
    ck_assert_int_eq(decide("10.251.2.3", 1, "10.251.2.2", &src, &net),
                     TRANSPARENT_SAME_NET);
    ck_assert_ptr_eq(net, &nets[3]);
    ck_assert_int_eq(decide("fd00:251:2::3", 1, "fd00:251:2::2", &src, &net),
                     TRANSPARENT_SAME_NET);
    ck_assert_ptr_eq(net, &nets[5]);
    /* A /25: the bit past the byte boundary decides. */
    ck_assert_int_eq(decide("10.9.0.126", 1, "10.9.0.2", &src, NULL),
                     TRANSPARENT_SAME_NET);
    ck_assert_int_eq(decide("10.9.0.130", 1, "10.9.0.2", &src, NULL), TRANSPARENT_OK);
    /* A client of the other network of the host is fine. */
    ck_assert_int_eq(decide("10.251.1.200", 1, "10.251.2.2", &src, NULL),
                     TRANSPARENT_OK);
    /* A /0 entry is ignored, not a network holding everything. */
    add_net("0.0.0.0", 0);
    ck_assert_int_eq(decide("10.251.1.2", 1, "10.251.2.2", &src, NULL),
                     TRANSPARENT_OK);
}
END_TEST

/* ---- real sockets (root) ---- */

static struct addr bound_of(int fd)
{
    struct addr a;
    a.len = sizeof a.ss;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a.ss, &a.len), 0);
    return a;
}

START_TEST(ip_transparent_binds_a_foreign_address)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_transparent: not root: real binds skipped\n");
        return;
    }
    /* 192.0.2.0/24 (TEST-NET-1) is nobody's: a plain bind is refused. */
    struct addr a = t_addr("192.0.2.77", 4242);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a.ss, a.len), -1);
    ck_assert_int_eq(errno, EADDRNOTAVAIL);
    close(fd);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(sock_set_transparent(fd, AF_INET), 0);
    ck_assert_msg(bind(fd, (struct sockaddr *)&a.ss, a.len) == 0, "bind: %s",
                  strerror(errno));
    struct addr got = bound_of(fd);
    ck_assert(addr_equal(&got, &a));
    close(fd);
}
END_TEST

static struct mapping transparent_mapping(const char *target_ip)
{
    struct mapping m;
    memset(&m, 0, sizeof m);
    m.proto = PROTO_TCP;
    m.listen = t_addr("0.0.0.0", 8080);
    m.target = t_addr(target_ip, 80);
    m.transparent = true;
    snprintf(m.label, sizeof m.label, "0.0.0.0:8080->%s:80/tcp", target_ip);
    return m;
}

static int bind_for(struct relay_ctx *ctx, const struct mapping *m,
                    const char *client_ip, int type, struct addr *bound)
{
    struct addr client = t_addr(client_ip, 4343);
    int fd = socket(m->target.ss.ss_family, type | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    bool taken = transparent_bind(ctx, m, &client, &m->target, fd);
    *bound = bound_of(fd);
    close(fd);
    return taken;
}

START_TEST(transparent_bind_takes_the_client)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_transparent: not root: real binds skipped\n");
        return;
    }
    struct event_base *base = event_base_new();
    struct relay_ctx *ctx = relay_ctx_new(base, NULL);
    ck_assert_ptr_nonnull(ctx);
    /* TEST-NET-2 for the target: on no interface of this host. */
    struct mapping m = transparent_mapping("198.51.100.7");
    struct addr bound, want = t_addr("192.0.2.77", 4343);
    for (int i = 0; i < 2; i++) { /* TCP, then UDP */
        int type = i ? SOCK_DGRAM : SOCK_STREAM;
        ck_assert(bind_for(ctx, &m, "192.0.2.77", type, &bound));
        ck_assert(addr_equal(&bound, &want));
        /* Loopback: left unbound, connect picks the host's address. */
        ck_assert(!bind_for(ctx, &m, "127.0.0.1", type, &bound));
        ck_assert_uint_eq(addr_port(&bound), 0);
    }
    ck_assert_ptr_nonnull(ctx->transparent); /* made on demand */
    /* The same client port twice at once (two targets): SO_REUSEADDR. */
    struct addr client = t_addr("192.0.2.77", 4343);
    int a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert(transparent_bind(ctx, &m, &client, &m.target, a));
    ck_assert(transparent_bind(ctx, &m, &client, &m.target, b));
    close(a);
    close(b);
    /* The host not set up for IPv6, nor for UDP to IPv4 targets: TCP to
     * this IPv4 target is still transparent (the target's family and the
     * protocol decide, not the listener's). */
    snprintf(ctx->transparent_broken[1][0], sizeof ctx->transparent_broken[1][0],
             "no rule marks TCP packets (IPv6)");
    snprintf(ctx->transparent_broken[0][1], sizeof ctx->transparent_broken[0][1],
             "no rule marks UDP packets (IPv4)");
    ck_assert(bind_for(ctx, &m, "192.0.2.78", SOCK_STREAM, &bound));
    m.proto = PROTO_UDP;
    ck_assert(!bind_for(ctx, &m, "192.0.2.78", SOCK_DGRAM, &bound));
    ck_assert_uint_eq(addr_port(&bound), 0);
    m.proto = PROTO_TCP;
    /* Not set up for TCP to IPv4: nothing bound whoever the client is. */
    snprintf(ctx->transparent_broken[0][0], sizeof ctx->transparent_broken[0][0],
             "no ip rule for fwmark 1");
    ck_assert(!bind_for(ctx, &m, "192.0.2.77", SOCK_STREAM, &bound));
    ck_assert_uint_eq(addr_port(&bound), 0);
    relay_ctx_free(ctx);
    event_base_free(base);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("transparent");
    TCase *tc = tcase_create("decide");
    tcase_add_test(tc, client_elsewhere_is_taken);
    tcase_add_test(tc, mapped_client_is_ipv4);
    tcase_add_test(tc, families_must_match);
    tcase_add_test(tc, local_clients_fall_back);
    tcase_add_test(tc, target_on_host_falls_back);
    tcase_add_test(tc, same_network_falls_back);
    suite_add_tcase(s, tc);
    tc = tcase_create("bind");
    tcase_add_test(tc, ip_transparent_binds_a_foreign_address);
    tcase_add_test(tc, transparent_bind_takes_the_client);
    suite_add_tcase(s, tc);
    return check_run(s);
}
