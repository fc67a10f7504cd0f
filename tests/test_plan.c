/* Plans: ranges expand to one mapping per port, collisions the kernel would
 * refuse are caught before anything binds, and --check prints the plan. */
#include "check_run.h"
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "berth/plan.h"

/* The plan of specs on a host with IPv6 (ipv6) or without. */
static struct plan *plan_on(bool ipv6, const char *const *specs, char *err,
                            size_t errlen)
{
    struct config *c = config_new();
    c->host_ipv6 = ipv6;
    for (; *specs; specs++) {
        char *argv[] = {(char *)"berth", (char *)"-p", (char *)*specs, NULL};
        ck_assert_int_eq(config_parse_args(c, 3, argv, err, errlen), 0);
    }
    struct plan *p = plan_new(c, err, errlen);
    config_free(c);
    return p;
}

static struct plan *plan_of(const char *const *specs, char *err, size_t errlen)
{
    return plan_on(false, specs, err, errlen);
}

START_TEST(test_range_expands)
{
    char err[512];
    const char *specs[] = {"127.0.0.1:20000-20002:10.0.0.5:30000-30002/udp", NULL};
    struct plan *p = plan_of(specs, err, sizeof err);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(p->n, 3);
    for (unsigned i = 0; i < 3; i++) {
        ck_assert_uint_eq(addr_port(&p->maps[i].listen), 20000 + i);
        ck_assert_uint_eq(addr_port(&p->maps[i].target), 30000 + i);
        ck_assert_int_eq(p->maps[i].proto, PROTO_UDP);
    }
    ck_assert_str_eq(p->maps[1].label, "127.0.0.1:20001->10.0.0.5:30001/udp");
    plan_free(p);
}
END_TEST

START_TEST(test_full_range_is_fast)
{
    char err[512];
    const char *specs[] = {"1-65535:10.0.0.5:1-65535", "1-65535:10.0.0.5:1-65535/udp",
                           NULL};
    struct plan *p = plan_of(specs, err, sizeof err);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(p->n, 2 * 65535);
    plan_free(p);
}
END_TEST

struct clash {
    const char *a, *b, *error;
    bool ipv6; /* the host has IPv6: a spec without HOST_IP holds [::] too */
};

static const struct clash clashes[] = {
    {"8080:1.1.1.1:80", "8080:1.1.1.2:81",
     "--publish '8080:1.1.1.2:81': 0.0.0.0:8080/tcp is already published by "
     "'8080:1.1.1.1:80' (0.0.0.0:8080->1.1.1.1:80/tcp)",
     false},
    {"8080:1.1.1.1:80", "127.0.0.1:8080:1.1.1.2:81",
     "--publish '127.0.0.1:8080:1.1.1.2:81': 127.0.0.1:8080/tcp is already "
     "published by '8080:1.1.1.1:80' (0.0.0.0:8080->1.1.1.1:80/tcp)",
     false},
    {"8000-8010:1.1.1.1:8000-8010", "[::1]:8005:1.1.1.1:1", NULL,
     false},                                                 /* other family */
    {"8080:1.1.1.1:80", "8080:1.1.1.1:80/udp", NULL, false}, /* other protocol */
    {"127.0.0.1:8080:1.1.1.1:80", "127.0.0.2:8080:1.1.1.1:80", NULL,
     false}, /* other address */
    {"[::]:53:1.1.1.1:53/udp", "[::1]:50-60:1.1.1.1:50-60/udp",
     "--publish '[::1]:50-60:1.1.1.1:50-60/udp': [::1]:53/udp is already "
     "published by '[::]:53:1.1.1.1:53/udp' ([::]:53->1.1.1.1:53/udp)",
     false},
    /* With IPv6, a spec without HOST_IP holds [::] as well as 0.0.0.0. */
    {"8080:a:80", "[::]:8080:b:80",
     "--publish '[::]:8080:b:80': [::]:8080/tcp is already published by "
     "'8080:a:80' ([::]:8080->a:80/tcp)",
     true},
    {"[::1]:8080:b:80", "8080:a:80",
     "--publish '8080:a:80': [::]:8080/tcp is already published by "
     "'[::1]:8080:b:80' ([::1]:8080->b:80/tcp)",
     true},
    {"8000-8010:1.1.1.1:8000-8010", "[::1]:8005:1.1.1.1:1",
     "--publish '[::1]:8005:1.1.1.1:1': [::1]:8005/tcp is already published by "
     "'8000-8010:1.1.1.1:8000-8010' ([::]:8005->1.1.1.1:8005/tcp)",
     true},
    {"8080:a:80", "0.0.0.0:8080:b:80",
     "--publish '0.0.0.0:8080:b:80': 0.0.0.0:8080/tcp is already published by "
     "'8080:a:80' (0.0.0.0:8080->a:80/tcp)",
     true},
    /* Explicit wildcards are one family each, as in docker run -p. */
    {"0.0.0.0:8080:a:80", "[::]:8080:b:80", NULL, true},
    {"8080:a:80", "8080:b:80/udp", NULL, true},
    /* Without IPv6 a spec without HOST_IP leaves [::] free. */
    {"8080:a:80", "[::]:8080:b:80", NULL, false},
};

START_TEST(test_clash)
{
    char err[512] = "";
    const char *specs[] = {clashes[_i].a, clashes[_i].b, NULL};
    struct plan *p = plan_on(clashes[_i].ipv6, specs, err, sizeof err);
    if (clashes[_i].error) {
        ck_assert_ptr_null(p);
        ck_assert_str_eq(err, clashes[_i].error);
    } else {
        ck_assert_msg(p != NULL, "%s", err);
        plan_free(p);
    }
}
END_TEST

/* docker run -p's defaults: no HOST_IP is 0.0.0.0 and [::] when the host
 * has IPv6, an IPv4 and an IPv6 mapping per port from the same entry. */
START_TEST(test_dual_stack)
{
    char err[512];
    const char *specs[] = {"8080-8081:web:80-81", "0.0.0.0:9000:10.0.0.2:90",
                           "[::]:9001:10.0.0.2:91/udp", NULL};
    struct plan *p = plan_on(true, specs, err, sizeof err);
    ck_assert_msg(p != NULL, "%s", err);
    static const char *const want[] = {
        "0.0.0.0:8080->web:80/tcp",      "[::]:8080->web:80/tcp",
        "0.0.0.0:8081->web:81/tcp",      "[::]:8081->web:81/tcp",
        "0.0.0.0:9000->10.0.0.2:90/tcp", "[::]:9001->10.0.0.2:91/udp",
    };
    static const size_t source[] = {0, 0, 0, 0, 1, 2};
    ck_assert_uint_eq(p->n, 6);
    for (size_t i = 0; i < 6; i++) {
        ck_assert_str_eq(p->maps[i].label, want[i]);
        ck_assert_uint_eq(p->maps[i].source, source[i]);
    }
    plan_free(p);
    p = plan_on(false, specs, err, sizeof err);
    ck_assert_msg(p != NULL, "%s", err);
    ck_assert_uint_eq(p->n, 4);
    ck_assert_str_eq(p->maps[1].label, "0.0.0.0:8081->web:81/tcp");
    plan_free(p);
}
END_TEST

/* Plans from a config bind addresses the host lacks yet; a plan built by
 * hand (docker-proxy mode) does not, as docker-proxy does not. */
START_TEST(test_freebind)
{
    char err[512];
    const char *specs[] = {"10.250.10.1:53:10.0.0.2:53/udp", NULL};
    struct plan *p = plan_of(specs, err, sizeof err);
    ck_assert_ptr_nonnull(p);
    ck_assert(p->freebind);
    plan_free(p);
    struct plan by_hand = PLAN_INIT;
    ck_assert(!by_hand.freebind);
}
END_TEST

START_TEST(test_name_targets)
{
    char err[512];
    const char *specs[] = {"8080-8081:api.lab:80-81/udp", NULL};
    struct plan *p = plan_of(specs, err, sizeof err);
    ck_assert_ptr_nonnull(p);
    ck_assert(p->names);
    ck_assert_uint_eq(p->n, 2);
    ck_assert_str_eq(p->maps[1].target_name, "api.lab");
    ck_assert_uint_eq(p->maps[1].target_port, 81);
    ck_assert_str_eq(p->maps[1].label, "0.0.0.0:8081->api.lab:81/udp");
    plan_free(p);

    /* --no-docker forbids what would need Docker. */
    struct config *c = config_new();
    char *argv[] = {"berth", "--no-docker", "-p", "8080:web:80", NULL};
    ck_assert_int_eq(config_parse_args(c, 4, argv, err, sizeof err), 0);
    ck_assert_ptr_null(plan_new(c, err, sizeof err));
    ck_assert_str_eq(err,
                     "--publish '8080:web:80': target 'web' is a container name, "
                     "which needs the Docker API (drop --no-docker or use an IP)");
    config_free(c);
    c = config_new();
    char *argv2[] = {"berth", "--no-docker", "--labels", NULL};
    ck_assert_int_eq(config_parse_args(c, 3, argv2, err, sizeof err), 0);
    ck_assert_ptr_null(plan_new(c, err, sizeof err));
    ck_assert_str_eq(
        err, "--labels: reading labels needs the Docker API (drop --no-docker)");
    config_free(c);
}
END_TEST

START_TEST(test_print)
{
    char err[512], *out = NULL;
    size_t len = 0;
    const char *specs[] = {"[::1]:53:10.0.0.2:53/udp", "8080:10.0.0.3:80", NULL};
    struct plan *p = plan_on(true, specs, err, sizeof err);
    FILE *f = open_memstream(&out, &len);
    plan_print(p, f);
    fclose(f);
    ck_assert_str_eq(out, "berth plan: 3 mappings\n"
                          "  udp [::1]:53 -> 10.0.0.2:53\n"
                          "  tcp 0.0.0.0:8080 -> 10.0.0.3:80\n"
                          "  tcp [::]:8080 -> 10.0.0.3:80\n"
                          "udp-timeout 90s, max-conns per port unlimited\n"
                          "tcp-keepalive 15:15:9, idle-timeout never\n");
    free(out);
    plan_free(p);
}
END_TEST

/* The TCP settings reach the plan; a plan built by hand (docker-proxy
 * mode) gets the same defaults as one from a config. */
START_TEST(test_tcp_settings)
{
    char err[512], *out = NULL;
    size_t len = 0;
    struct config *c = config_new();
    char *argv[] = {"berth", "--tcp-keepalive=0", "--idle-timeout=600",
                    "-p8080:10.0.0.3:80", NULL};
    ck_assert_int_eq(config_parse_args(c, 4, argv, err, sizeof err), 0);
    struct plan *p = plan_new(c, err, sizeof err);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(p->tcp_keepalive.idle, 0);
    ck_assert_uint_eq(p->idle_timeout, 600);
    FILE *f = open_memstream(&out, &len);
    plan_print(p, f);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(out, "tcp-keepalive off, idle-timeout 600s\n"));
    free(out);
    plan_free(p);
    config_free(c);

    struct plan by_hand = PLAN_INIT;
    c = config_new();
    ck_assert_uint_eq(by_hand.udp_timeout, c->udp_timeout);
    ck_assert_uint_eq(by_hand.tcp_keepalive.idle, c->tcp_keepalive.idle);
    ck_assert_uint_eq(by_hand.tcp_keepalive.interval, c->tcp_keepalive.interval);
    ck_assert_uint_eq(by_hand.tcp_keepalive.count, c->tcp_keepalive.count);
    ck_assert_uint_eq(by_hand.idle_timeout, c->idle_timeout);
    ck_assert_uint_eq(by_hand.tcp_keepalive.idle, 15);
    config_free(c);
}
END_TEST

/* A reload keeps what is the same, in whatever order, and nothing else:
 * a changed target, protocol, address or switch is a new mapping. */
START_TEST(test_diff)
{
    char err[512];
    const char *was[] = {"127.0.0.1:8001:10.0.0.1:80",         /* 0 kept */
                         "127.0.0.1:8002:10.0.0.1:80",         /* 1 target changes */
                         "127.0.0.1:8003:10.0.0.1:80/udp",     /* 2 removed */
                         "127.0.0.1:8004-8005:10.0.0.1:90-91", /* 3, 4 kept */
                         "127.0.0.1:8006:web:80",              /* 5 kept (name) */
                         NULL};
    const char *now[] = {"127.0.0.1:8004-8005:10.0.0.1:90-91", /* 0, 1 */
                         "127.0.0.1:8002:10.0.0.1:81",         /* 2 new */
                         "127.0.0.1:8001:10.0.0.1:80",         /* 3 */
                         "127.0.0.1:8003:10.0.0.1:80",         /* 4 new: TCP now */
                         "127.0.0.1:8006:web:80",              /* 5 */
                         "127.0.0.1:8007:web:80",              /* 6 new */
                         "127.0.0.2:8001:10.0.0.1:80",         /* 7 new address */
                         NULL};
    struct plan *a = plan_of(was, err, sizeof err);
    struct plan *b = plan_of(now, err, sizeof err);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(a->n, 6);
    ck_assert_uint_eq(b->n, 8);
    size_t keep[8];
    ck_assert_int_eq(plan_diff(a, b, keep), 0);
    const size_t want[8] = {3, 4, PLAN_NONE, 0, PLAN_NONE, 5, PLAN_NONE, PLAN_NONE};
    for (size_t j = 0; j < 8; j++)
        ck_assert_uint_eq(keep[j], want[j]);

    /* A switch makes it another mapping; the same plan keeps everything. */
    struct mapping m = a->maps[0];
    ck_assert(mapping_same(&m, &a->maps[0]));
    m.proxy_proto = PROXY_PROTO_V1;
    ck_assert(!mapping_same(&m, &a->maps[0]));
    m = a->maps[0];
    m.transparent = true;
    ck_assert(!mapping_same(&m, &a->maps[0]));
    m = a->maps[5];
    m.target_port = 81;
    ck_assert(!mapping_same(&m, &a->maps[5]));
    ck_assert_int_eq(plan_diff(a, a, keep), 0);
    for (size_t j = 0; j < a->n; j++)
        ck_assert_uint_eq(keep[j], j);
    /* To and from an empty plan. */
    struct plan empty = PLAN_INIT;
    ck_assert_int_eq(plan_diff(&empty, a, keep), 0);
    for (size_t j = 0; j < a->n; j++)
        ck_assert_uint_eq(keep[j], PLAN_NONE);
    ck_assert_int_eq(plan_diff(a, &empty, keep), 0);
    plan_free(a);
    plan_free(b);
}
END_TEST

/* Which removed mappings hold the port of which new ones: a wildcard
 * collides with an address of its port and family, other ports, protocols
 * and families never, and only picked entries count. */
START_TEST(test_collide)
{
    char err[512];
    const char *was[] = {"0.0.0.0:9001:10.0.0.1:80",       /* 0 picked */
                         "127.0.0.1:9002:10.0.0.1:80",     /* 1 picked */
                         "127.0.0.1:9003:10.0.0.1:80/udp", /* 2 picked */
                         "127.0.0.1:9004:10.0.0.1:80",     /* 3 not picked */
                         NULL};
    const char *now[] = {"127.0.0.5:9001:10.0.0.2:80", /* 0 hits 0 */
                         "127.0.0.1:9002:10.0.0.2:80", /* 1 hits 1 */
                         "127.0.0.1:9003:10.0.0.2:80", /* 2 TCP: no */
                         "127.0.0.1:9004:10.0.0.2:80", /* 3 old 3 not picked */
                         "[::1]:9001:10.0.0.2:80",     /* 4 IPv6: no */
                         "127.0.0.1:9005:10.0.0.2:80", /* 5 another port */
                         NULL};
    struct plan *a = plan_of(was, err, sizeof err);
    struct plan *b = plan_of(now, err, sizeof err);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    bool pa[4] = {true, true, true, false},
         pb[6] = {true, true, true, true, true, true};
    bool ha[4] = {false}, hb[6] = {false};
    ck_assert_int_eq(plan_collide(a, pa, b, pb, ha, hb), 0);
    const bool wa[4] = {true, true, false, false},
               wb[6] = {true, true, false, false, false, false};
    for (size_t i = 0; i < 4; i++)
        ck_assert_msg(ha[i] == wa[i], "old %zu", i);
    for (size_t j = 0; j < 6; j++)
        ck_assert_msg(hb[j] == wb[j], "new %zu", j);
    /* Unpicked on the other side: nothing hit. */
    bool none[6] = {false}, hc[4] = {false};
    ck_assert_int_eq(plan_collide(a, pa, b, none, hc, NULL), 0);
    for (size_t i = 0; i < 4; i++)
        ck_assert(!hc[i]);
    plan_free(a);
    plan_free(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("plan");
    TCase *tc = tcase_create("plan");
    tcase_add_test(tc, test_range_expands);
    tcase_add_test(tc, test_full_range_is_fast);
    tcase_add_loop_test(tc, test_clash, 0, sizeof clashes / sizeof clashes[0]);
    tcase_add_test(tc, test_name_targets);
    tcase_add_test(tc, test_dual_stack);
    tcase_add_test(tc, test_freebind);
    tcase_add_test(tc, test_print);
    tcase_add_test(tc, test_tcp_settings);
    tcase_add_test(tc, test_diff);
    tcase_add_test(tc, test_collide);
    suite_add_tcase(s, tc);
    return check_run(s);
}
