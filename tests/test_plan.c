/* Plans: ranges expand to one mapping per port, collisions the kernel would
 * refuse are caught before anything binds, and --check prints the plan. */
#include "check_run.h"
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "berth/plan.h"

static struct plan *plan_of(const char *const *specs, char *err, size_t errlen)
{
    struct config *c = config_new();
    for (; *specs; specs++) {
        char *argv[] = {(char *)"berth", (char *)"-p", (char *)*specs, NULL};
        ck_assert_int_eq(config_parse_args(c, 3, argv, err, errlen), 0);
    }
    struct plan *p = plan_new(c, err, errlen);
    config_free(c);
    return p;
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
};

static const struct clash clashes[] = {
    {"8080:1.1.1.1:80", "8080:1.1.1.2:81",
     "--publish '8080:1.1.1.2:81': 0.0.0.0:8080/tcp is already published (0.0.0.0:8080->1.1.1.1:80/tcp)"},
    {"8080:1.1.1.1:80", "127.0.0.1:8080:1.1.1.2:81",
     "--publish '127.0.0.1:8080:1.1.1.2:81': 127.0.0.1:8080/tcp is already published (0.0.0.0:8080->1.1.1.1:80/tcp)"},
    {"8000-8010:1.1.1.1:8000-8010", "[::1]:8005:1.1.1.1:1", NULL}, /* other family */
    {"8080:1.1.1.1:80", "8080:1.1.1.1:80/udp", NULL},              /* other protocol */
    {"127.0.0.1:8080:1.1.1.1:80", "127.0.0.2:8080:1.1.1.1:80",
     NULL}, /* other address */
    {"[::]:53:1.1.1.1:53/udp", "[::1]:50-60:1.1.1.1:50-60/udp",
     "--publish '[::1]:50-60:1.1.1.1:50-60/udp': [::1]:53/udp is already published ([::]:53->1.1.1.1:53/udp)"},
};

START_TEST(test_clash)
{
    char err[512] = "";
    const char *specs[] = {clashes[_i].a, clashes[_i].b, NULL};
    struct plan *p = plan_of(specs, err, sizeof err);
    if (clashes[_i].error) {
        ck_assert_ptr_null(p);
        ck_assert_str_eq(err, clashes[_i].error);
    } else {
        ck_assert_msg(p != NULL, "%s", err);
        plan_free(p);
    }
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
    struct plan *p = plan_of(specs, err, sizeof err);
    FILE *f = open_memstream(&out, &len);
    plan_print(p, f);
    fclose(f);
    ck_assert_str_eq(out, "berth plan: 2 mappings\n"
                          "  udp [::1]:53 -> 10.0.0.2:53\n"
                          "  tcp 0.0.0.0:8080 -> 10.0.0.3:80\n"
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

int main(void)
{
    Suite *s = suite_create("plan");
    TCase *tc = tcase_create("plan");
    tcase_add_test(tc, test_range_expands);
    tcase_add_test(tc, test_full_range_is_fast);
    tcase_add_loop_test(tc, test_clash, 0, sizeof clashes / sizeof clashes[0]);
    tcase_add_test(tc, test_name_targets);
    tcase_add_test(tc, test_print);
    tcase_add_test(tc, test_tcp_settings);
    suite_add_tcase(s, tc);
    return check_run(s);
}
