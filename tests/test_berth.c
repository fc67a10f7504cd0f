/* berth as the owner of every published port: ports published after start
 * (what labels and a reload ask for) are checked against the plan's and
 * each other's, counted with them, and closed with their sessions. */
#include "check_run.h"

#include "testnet.h"

/* A TCP mapping listen -> target, labelled as berth labels it. */
static struct mapping tcp_mapping(const struct addr *listen, const struct addr *target)
{
    struct mapping m = {.proto = PROTO_TCP, .listen = *listen, .target = *target};
    mapping_label(&m);
    return m;
}

struct pub {
    struct relay_fx f;
    int backend_listener;
    struct addr target;
};

static void pub_start(struct pub *p)
{
    p->backend_listener = t_bind("127.0.0.1", SOCK_STREAM, &p->target);
    relay_fx_start(&p->f, PROTO_TCP, "127.0.0.1", &p->target, NULL);
}

static void pub_stop(struct pub *p)
{
    relay_fx_stop(&p->f);
    close(p->backend_listener);
}

/* The port the kernel gives a fresh socket on ip, then frees again. */
static struct addr free_port(const char *ip)
{
    struct addr a;
    close(t_bind(ip, SOCK_STREAM, &a));
    return a;
}

/* Nothing listens at a: a blocking connect is refused. */
static bool refused(const struct addr *a)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    int r = connect(fd, (const struct sockaddr *)&a->ss, a->len);
    int e = errno;
    close(fd);
    return r < 0 && e == ECONNREFUSED;
}

START_TEST(test_publish_refuses_a_planned_port)
{
    struct pub p;
    pub_start(&p);
    char err[256] = "";
    /* The plan's own address, and the wildcard that covers it. */
    struct mapping same = tcp_mapping(&p.f.front, &p.target);
    ck_assert_ptr_null(berth_publish(p.f.b, &same, err, sizeof err));
    /* The error names the port that holds it, with the port it got. */
    char want[ADDR_STRLEN + 40];
    snprintf(want, sizeof want, "is already published (%s->",
             addr_format(&p.f.front, (char[ADDR_STRLEN]){0}, ADDR_STRLEN));
    ck_assert_msg(strstr(err, want), "%s", err);
    struct addr any = t_addr("0.0.0.0", addr_port(&p.f.front));
    struct mapping wild = tcp_mapping(&any, &p.target);
    ck_assert_ptr_null(berth_publish(p.f.b, &wild, err, sizeof err));
    pub_stop(&p);
}
END_TEST

START_TEST(test_publish_refuses_a_published_port)
{
    struct pub p;
    pub_start(&p);
    char err[256] = "";
    struct addr l = free_port("127.0.0.1");
    struct mapping m = tcp_mapping(&l, &p.target);
    struct berth_port *first = berth_publish(p.f.b, &m, err, sizeof err);
    ck_assert_msg(first != NULL, "%s", err);
    ck_assert_ptr_null(berth_publish(p.f.b, &m, err, sizeof err));
    ck_assert_msg(strstr(err, m.label), "%s", err);
    /* Once it is gone, the port is free to take again. */
    berth_unpublish(p.f.b, first);
    struct berth_port *again = berth_publish(p.f.b, &m, err, sizeof err);
    ck_assert_msg(again != NULL, "%s", err);
    berth_unpublish(p.f.b, again);
    pub_stop(&p);
}
END_TEST

START_TEST(test_published_port_relays_counts_and_closes)
{
    struct pub p;
    pub_start(&p);
    char err[256] = "";
    struct addr l = free_port("127.0.0.1");
    struct mapping m = tcp_mapping(&l, &p.target);
    struct berth_port *port = berth_publish(p.f.b, &m, err, sizeof err);
    ck_assert_msg(port != NULL, "%s", err);

    int client = t_connect(&l);
    int backend = t_accept(p.f.base, p.backend_listener);
    ck_assert_int_ge(backend, 0);
    t_transfer(p.f.base, client, backend, 100000);
    t_transfer(p.f.base, backend, client, 100000);
    ck_assert_uint_eq(berth_tcp_sessions(p.f.b), 1);

    /* Unpublishing closes the session with the port. */
    berth_unpublish(p.f.b, port);
    ck_assert_uint_eq(berth_tcp_sessions(p.f.b), 0);
    char buf[16];
    ck_assert(PUMP_UNTIL(p.f.base, 3000, recv(backend, buf, sizeof buf, 0) == 0));
    ck_assert(refused(&l));
    close(client);
    close(backend);
    pub_stop(&p);
}
END_TEST

START_TEST(test_berth_free_closes_published_ports)
{
    struct pub p;
    pub_start(&p);
    char err[256] = "";
    struct addr l = free_port("127.0.0.1");
    struct mapping m = tcp_mapping(&l, &p.target);
    ck_assert_ptr_nonnull(berth_publish(p.f.b, &m, err, sizeof err));
    ck_assert(!refused(&l));
    berth_free(p.f.b);
    p.f.b = NULL;
    /* Both ports are closed: the plan's and the published one. */
    ck_assert(refused(&l));
    ck_assert(refused(&p.f.front));
    free(p.f.plan.maps);
    event_base_free(p.f.base);
    close(p.backend_listener);
}
END_TEST

/* Binds the plan's one mapping (ip, a free port) with freebind on or off;
 * returns berth_start's result, err its reason. */
static int start_on(const char *ip, enum proto proto, bool freebind, char *err,
                    size_t errlen)
{
    struct event_base *base = berth_event_base_new();
    struct plan plan = PLAN_INIT;
    struct addr l = free_port(ip[0] == '2' ? "::1" : "127.0.0.1");
    struct addr at = t_addr(ip, addr_port(&l)), target = t_addr("127.0.0.1", 9);
    ck_assert_int_eq(plan_add(&plan, proto, &at, &target), 0);
    plan.freebind = freebind;
    struct berth *b = berth_new(base, &plan, NULL);
    ck_assert_ptr_nonnull(b);
    int rc = berth_start(b, NULL, err, errlen);
    struct addr bound;
    if (rc == 0) { /* bound where asked, though no interface has it */
        ck_assert_int_eq(berth_local_addr(b, 0, &bound), 0);
        ck_assert(addr_equal(&bound, &at));
    }
    berth_free(b);
    free(plan.maps);
    event_base_free(base);
    return rc;
}

/* An address the host lacks (a bridge's gateway before dockerd made the
 * bridge): bound with IP_FREEBIND, refused without it, TCP and UDP, IPv4
 * and IPv6 (documentation prefixes, never configured here). */
START_TEST(test_freebind_takes_a_missing_address)
{
    static const char *const ips[] = {"192.0.2.1", "2001:db8::1"};
    for (size_t i = 0; i < 2; i++) {
        struct addr a = t_addr(ips[i], 0);
        if (i == 1 && !sock_host_has_ipv6())
            continue;
        ck_assert_msg(!sock_addr_configured(&a), "%s is configured here", ips[i]);
        for (int proto = PROTO_TCP; proto <= PROTO_UDP; proto++) {
            char err[256] = "";
            ck_assert_msg(start_on(ips[i], proto, true, err, sizeof err) == 0, "%s",
                          err);
            ck_assert_int_eq(start_on(ips[i], proto, false, err, sizeof err), -1);
            ck_assert_msg(strstr(err, "Cannot assign requested address") &&
                              strstr(err, ips[i]),
                          "%s", err);
        }
    }
    struct addr any = t_addr("0.0.0.0", 0), lo = t_addr("127.0.0.2", 0),
                six = t_addr("::", 0);
    ck_assert(sock_addr_configured(&any) && sock_addr_configured(&lo) &&
              sock_addr_configured(&six));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("berth");
    TCase *tc = tcase_create("ports");
    t_tcase_timeout(tc, 60);
    tcase_add_test(tc, test_publish_refuses_a_planned_port);
    tcase_add_test(tc, test_publish_refuses_a_published_port);
    tcase_add_test(tc, test_published_port_relays_counts_and_closes);
    tcase_add_test(tc, test_berth_free_closes_published_ports);
    tcase_add_test(tc, test_freebind_takes_a_missing_address);
    suite_add_tcase(s, tc);
    return check_run(s);
}
