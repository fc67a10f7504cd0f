/* Options on the command line: defaults and the exact one-line error for
 * each kind of mistake (--config files: test_config_file.c). */
#include "check_run.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/config.h"

#define MAXARGS 24

static int parse(const char *const *args, struct config **out, char *err,
                 size_t errlen)
{
    char *argv[MAXARGS + 1];
    int argc = 0;
    argv[argc++] = (char *)"berth";
    for (; args[argc - 1]; argc++) {
        ck_assert_int_lt(argc, MAXARGS);
        argv[argc] = (char *)args[argc - 1];
    }
    argv[argc] = NULL;
    *out = config_new();
    ck_assert_ptr_nonnull(*out);
    return config_parse_args(*out, argc, argv, err, errlen);
}

START_TEST(test_defaults)
{
    struct config *c;
    char err[512];
    const char *args[] = {NULL};
    ck_assert_int_eq(parse(args, &c, err, sizeof err), 0);
    ck_assert_uint_eq(c->udp_timeout, 90);
    ck_assert_uint_eq(c->ttl, 5);
    ck_assert_uint_eq(c->max_conns, 0);
    /* docker-proxy 28's keepalive; no idle timeout, as docker-proxy. */
    ck_assert_uint_eq(c->tcp_keepalive.idle, 15);
    ck_assert_uint_eq(c->tcp_keepalive.interval, 15);
    ck_assert_uint_eq(c->tcp_keepalive.count, 9);
    ck_assert_uint_eq(c->idle_timeout, 0);
    ck_assert_uint_eq(c->stale_after, 60);
    ck_assert_uint_eq(c->check_wait, 3);
    ck_assert(!c->host_ipv6); /* main asks the host, not the command line */
    ck_assert_str_eq(c->domain, "docker");
    ck_assert_int_eq(c->log_level, LOG_INFO);
    ck_assert_uint_eq(c->publish.n, 0);
    config_free(c);
}
END_TEST

START_TEST(test_all_options)
{
    struct config *c;
    char err[512];
    const char *args[] = {"-p",
                          "8080:1.2.3.4:80",
                          "--publish=9090:1.2.3.4:90/udp",
                          "-p9000:[::1]:9",
                          "--udp-timeout",
                          "30",
                          "--max-conns=7",
                          "--log-level",
                          "debug",
                          "--check",
                          "--no-docker",
                          "--ttl",
                          "0",
                          "--upstream",
                          "127.0.0.1:5300",
                          "--check-wait=0",
                          NULL};
    ck_assert_int_eq(parse(args, &c, err, sizeof err), 0);
    ck_assert_uint_eq(c->publish.n, 3);
    ck_assert_str_eq(c->publish.v[1], "9090:1.2.3.4:90/udp");
    ck_assert_str_eq(c->publish.v[2], "9000:[::1]:9");
    ck_assert_uint_eq(c->udp_timeout, 30);
    ck_assert_uint_eq(c->max_conns, 7);
    ck_assert_int_eq(c->log_level, LOG_DEBUG);
    ck_assert(c->check && c->no_docker);
    ck_assert_uint_eq(c->ttl, 0);
    ck_assert_str_eq(c->upstream.v[0], "127.0.0.1:5300");
    ck_assert_uint_eq(c->check_wait, 0);
    config_free(c);
}
END_TEST

struct keepalive_case {
    const char *text;
    unsigned idle, interval, count;
};

/* IDLE alone keeps the default interval and count, as Go's KeepAlive. */
static const struct keepalive_case keepalives[] = {
    {"0", 0, 0, 0},
    {"30", 30, 15, 9},
    {"1:1:1", 1, 1, 1},
    {"60:10:5", 60, 10, 5},
    {"32767:32767:127", 32767, 32767, 127},
};

START_TEST(test_keepalive)
{
    const struct keepalive_case *k = &keepalives[_i];
    const char *args[] = {"--tcp-keepalive", k->text, "--idle-timeout", "3600", NULL};
    struct config *c;
    char err[512];
    ck_assert_int_eq(parse(args, &c, err, sizeof err), 0);
    ck_assert_uint_eq(c->tcp_keepalive.idle, k->idle);
    ck_assert_uint_eq(c->tcp_keepalive.interval, k->interval);
    ck_assert_uint_eq(c->tcp_keepalive.count, k->count);
    ck_assert_uint_eq(c->idle_timeout, 3600);
    config_free(c);
}
END_TEST

struct bad {
    const char *args[4];
    const char *error;
};

#define KEEPALIVE_WANT                                                                \
    "': want IDLE[:INTERVAL:COUNT] (IDLE and INTERVAL 1-32767 seconds, COUNT "        \
    "1-127), or 0 for off"

static const struct bad bads[] = {
    {{"--frobnicate"}, "unknown option '--frobnicate' (see berth --help)"},
    {{"-x"}, "unknown option '-x' (see berth --help)"},
    {{"stray"}, "unexpected argument 'stray' (see berth --help)"},
    {{"-p"}, "option '-p' needs a value"},
    {{"--publish"}, "option '--publish' needs a value"},
    {{"--check=yes"}, "option '--check' takes no value"},
    {{"-p", "8080:web"}, "--publish '8080:web': missing target port"},
    {{"--udp-timeout", "0"}, "--udp-timeout '0': want a whole number in 1-2147483647"},
    {{"--udp-timeout", "ten"},
     "--udp-timeout 'ten': want a whole number in 1-2147483647"},
    {{"--max-conns", "-1"}, "--max-conns '-1': want a whole number in 0-1000000"},
    {{"--tcp-keepalive", ""}, "--tcp-keepalive '" KEEPALIVE_WANT},
    {{"--tcp-keepalive", "off"}, "--tcp-keepalive 'off" KEEPALIVE_WANT},
    {{"--tcp-keepalive", "15:15"}, "--tcp-keepalive '15:15" KEEPALIVE_WANT},
    {{"--tcp-keepalive", "15:15:9:1"}, "--tcp-keepalive '15:15:9:1" KEEPALIVE_WANT},
    {{"--tcp-keepalive", "15::9"}, "--tcp-keepalive '15::9" KEEPALIVE_WANT},
    {{"--tcp-keepalive", "15:15:"}, "--tcp-keepalive '15:15:" KEEPALIVE_WANT},
    {{"--tcp-keepalive", "-1"}, "--tcp-keepalive '-1" KEEPALIVE_WANT},
    {{"--tcp-keepalive", "0:15:9"}, "--tcp-keepalive '0:15:9" KEEPALIVE_WANT},
    {{"--tcp-keepalive", "15:0:9"}, "--tcp-keepalive '15:0:9" KEEPALIVE_WANT},
    {{"--tcp-keepalive", "15:15:0"}, "--tcp-keepalive '15:15:0" KEEPALIVE_WANT},
    {{"--tcp-keepalive", "32768"}, "--tcp-keepalive '32768" KEEPALIVE_WANT},
    {{"--tcp-keepalive", "15:15:128"}, "--tcp-keepalive '15:15:128" KEEPALIVE_WANT},
    {{"--tcp-keepalive", "99999999999999999999999"},
     "--tcp-keepalive '99999999999999999999999" KEEPALIVE_WANT},
    {{"--tcp-keepalive", " 15"}, "--tcp-keepalive ' 15" KEEPALIVE_WANT},
    {{"--idle-timeout", "-5"},
     "--idle-timeout '-5': want a whole number in 0-2147483647"},
    {{"--idle-timeout", "1m"},
     "--idle-timeout '1m': want a whole number in 0-2147483647"},
    {{"--stale-after", "1m"},
     "--stale-after '1m': want a whole number in 0-2147483647"},
    {{"--check-wait", "61"}, "--check-wait '61': want a whole number in 0-60"},
    {{"--ttl", "99999999999"},
     "--ttl '99999999999': want a whole number in 0-2147483647"},
    {{"--log-level", "loud"}, "--log-level 'loud': want error, warn, info or debug"},
    {{"--docker", ""},
     "--docker: want unix:///path, tcp://host[:port] or ssh://[user@]host[:port]"},
    {{"--dns", "127.0.0.1"},
     "--dns '127.0.0.1': want ADDR:PORT with an IP address ([::1]:5353 for IPv6)"},
    {{"--dns", "::1:53"},
     "--dns '::1:53': want ADDR:PORT with an IP address ([::1]:5353 for IPv6)"},
    {{"--upstream", "dns.example"},
     "--upstream 'dns.example': want an IP address with an optional :PORT"},
    {{"--domain", "a..b"}, "--domain 'a..b': not a valid DNS domain"},
    {{"--proxy-protocol", "v3"}, "--proxy-protocol 'v3': want v1, v2 or off"},
    {{"--proxy-protocol"}, "option '--proxy-protocol' needs a value"},
    {{"--transparent=1"}, "option '--transparent' takes no value"},
    {{"--config", "/nonexistent/berth.json"},
     "config '/nonexistent/berth.json': cannot read: No such file or directory"},
};

START_TEST(test_bad)
{
    struct config *c;
    char err[512] = "";
    ck_assert_int_eq(parse(bads[_i].args, &c, err, sizeof err), -1);
    ck_assert_str_eq(err, bads[_i].error);
    config_free(c);
}
END_TEST

START_TEST(test_good_hostports)
{
    const char *ok[] = {"--dns",      "[::1]:5353", "--dns",      "127.0.0.1:53",
                        "--upstream", "::1",        "--upstream", "[::1]:53",
                        "--upstream", "10.0.0.1",   NULL};
    struct config *c;
    char err[512];
    ck_assert_int_eq(parse(ok, &c, err, sizeof err), 0);
    ck_assert_uint_eq(c->dns.n, 2);
    ck_assert_uint_eq(c->upstream.n, 3);
    config_free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_all_options);
    tcase_add_loop_test(tc, test_keepalive, 0,
                        sizeof keepalives / sizeof keepalives[0]);
    tcase_add_loop_test(tc, test_bad, 0, sizeof bads / sizeof bads[0]);
    tcase_add_test(tc, test_good_hostports);
    suite_add_tcase(s, tc);
    return check_run(s);
}
