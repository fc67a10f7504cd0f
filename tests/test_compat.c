/* docker-proxy's command line, parsed as Go's flag package would. The fd 3 /
 * fd 4 protocol itself is tested end to end against the binary. */
#include "check_run.h"
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "berth/compat.h"

static int parse(const char *const *args, struct compat_args *a, char *err,
                 size_t errlen)
{
    char *argv[16];
    int argc = 0;
    argv[argc++] = (char *)"docker-proxy";
    while (args[argc - 1]) {
        argv[argc] = (char *)args[argc - 1];
        argc++;
    }
    return compat_parse(argc, argv, a, err, errlen);
}

START_TEST(test_dockerd_forms)
{
    struct compat_args a;
    char err[256], buf[ADDR_STRLEN];
    const char *tcp[] = {
        "-proto", "tcp",           "-host-ip",   "0.0.0.0",         "-host-port",
        "8080",   "-container-ip", "172.17.0.2", "-container-port", "80",
        NULL};
    ck_assert_int_eq(parse(tcp, &a, err, sizeof err), 0);
    ck_assert_int_eq(a.proto, PROTO_TCP);
    ck_assert_str_eq(addr_format(&a.host, buf, sizeof buf), "0.0.0.0:8080");
    ck_assert_str_eq(addr_format(&a.container, buf, sizeof buf), "172.17.0.2:80");
    ck_assert(!a.use_listen_fd);

    const char *udp6[] = {"-proto",          "udp",  "-host-ip",       "::",
                          "-host-port",      "53",   "-container-ip",  "172.17.0.2",
                          "-container-port", "5353", "-use-listen-fd", NULL};
    ck_assert_int_eq(parse(udp6, &a, err, sizeof err), 0);
    ck_assert_int_eq(a.proto, PROTO_UDP);
    ck_assert_str_eq(addr_format(&a.host, buf, sizeof buf), "[::]:53");
    ck_assert(a.use_listen_fd);

    /* dockerd's SCTP proxies: -proto sctp (docker-proxy takes sctp4 and
     * sctp6 as well). */
    const char *sctp_names[] = {"sctp", "sctp4", "sctp6"};
    for (size_t i = 0; i < 3; i++) {
        const char *sctp[] = {"-proto",        sctp_names[i], "-host-ip",
                              "127.0.0.1",     "-host-port",  "3868",
                              "-container-ip", "172.17.0.3",  "-container-port",
                              "3868",          NULL};
        ck_assert_int_eq(parse(sctp, &a, err, sizeof err), 0);
        ck_assert_int_eq(a.proto, PROTO_SCTP);
        ck_assert_str_eq(addr_format(&a.container, buf, sizeof buf),
                         "172.17.0.3:3868");
    }

    const char *eq[] = {"--proto=udp",          "-host-port=1",
                        "-container-ip=::1",    "-container-port=2",
                        "-use-listen-fd=false", NULL};
    ck_assert_int_eq(parse(eq, &a, err, sizeof err), 0);
    ck_assert_str_eq(addr_format(&a.host, buf, sizeof buf), "0.0.0.0:1");
    ck_assert_str_eq(addr_format(&a.container, buf, sizeof buf), "[::1]:2");
    ck_assert(!a.use_listen_fd);

    /* Every spelling of a boolean that Go's flag package takes. */
    const char *yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    const char *no[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        char on[64], off[64];
        snprintf(on, sizeof on, "-use-listen-fd=%s", yes[i]);
        snprintf(off, sizeof off, "-use-listen-fd=%s", no[i]);
        const char *args_on[] = {"-host-port=1", "-container-port=2", on, NULL};
        const char *args_off[] = {"-host-port=1", "-container-port=2", off, NULL};
        ck_assert_int_eq(parse(args_on, &a, err, sizeof err), 0);
        ck_assert_msg(a.use_listen_fd, "%s", on);
        ck_assert_int_eq(parse(args_off, &a, err, sizeof err), 0);
        ck_assert_msg(!a.use_listen_fd, "%s", off);
    }
}
END_TEST

START_TEST(test_version)
{
    struct compat_args a;
    char err[256];
    const char *v[] = {"-v", NULL}, *version[] = {"-version", NULL};
    ck_assert_int_eq(parse(v, &a, err, sizeof err), 0);
    ck_assert(a.version);
    ck_assert_int_eq(parse(version, &a, err, sizeof err), 0);
    ck_assert(a.version);
}
END_TEST

struct bad {
    const char *args[8];
    const char *error;
};

static const struct bad bads[] = {
    {{"-proto", "icmp", "-host-port", "1", "-container-port", "2"},
     "-proto 'icmp': berth forwards tcp, udp and sctp"},
    {{"-host-port", "0", "-container-port", "2"},
     "-host-port '0': want a port in 1-65535"},
    {{"-host-port", "1"}, "-container-port is required"},
    {{"-host-ip", "example", "-host-port", "1", "-container-port", "2"},
     "-host-ip 'example': not an IP address"},
    {{"-host-port", "1", "-container-port", "2", "-bogus"},
     "docker-proxy mode: unknown flag '-bogus'"},
    {{"-host-port"}, "flag '-host-port' needs a value"},
    {{"-use-listen-fd=maybe"}, "-use-listen-fd 'maybe': want true or false"},
    {{"-use-listen-fd=yes"}, "-use-listen-fd 'yes': want true or false"},
    {{"-v=tRUE"}, "-v 'tRUE': want true or false"},
};

START_TEST(test_bad)
{
    struct compat_args a;
    char err[256] = "";
    ck_assert_int_eq(parse(bads[_i].args, &a, err, sizeof err), -1);
    ck_assert_str_eq(err, bads[_i].error);
}
END_TEST

START_TEST(test_wanted)
{
    char *dp[] = {"berth", "-proto", "tcp", NULL};
    char *dp2[] = {"berth", "-host-ip", "::", NULL};
    char *native[] = {"berth", "-p", "8080:1.1.1.1:80", "--check", NULL};
    char *native2[] = {"berth", "--help", NULL};
    ck_assert(compat_wanted(3, dp));
    ck_assert(compat_wanted(3, dp2));
    ck_assert(!compat_wanted(4, native));
    ck_assert(!compat_wanted(2, native2));
    /* docker-proxy's version flags alone; with berth's own options they
     * are not docker-proxy's. */
    char *v[] = {"berth", "-v", NULL}, *version[] = {"berth", "-version", NULL};
    char *native_version[] = {"berth", "--version", NULL};
    char *mixed[] = {"berth", "-p", "1:1.1.1.1:1", "-v", NULL};
    ck_assert(compat_wanted(2, v));
    ck_assert(compat_wanted(2, version));
    ck_assert(!compat_wanted(2, native_version));
    ck_assert(!compat_wanted(4, mixed));
}
END_TEST

/* dockerd's environment switches transparent mode and the PROXY protocol
 * on for the one mapping; a bad value is one line naming the variable. */
START_TEST(test_env_switches)
{
    struct plan plan = PLAN_INIT;
    struct publish_defaults sw;
    char err[256] = "";
    unsetenv("BERTH_TRANSPARENT");
    unsetenv("BERTH_PROXY_PROTOCOL");
    ck_assert_int_eq(compat_env(&plan, &sw, err, sizeof err), 0);
    ck_assert(!sw.transparent);
    ck_assert_int_eq(sw.proxy_proto, PROXY_PROTO_NONE);
    setenv("BERTH_TRANSPARENT", "1", 1);
    setenv("BERTH_PROXY_PROTOCOL", "v2", 1);
    ck_assert_int_eq(compat_env(&plan, &sw, err, sizeof err), 0);
    ck_assert(sw.transparent);
    ck_assert_int_eq(sw.proxy_proto, PROXY_PROTO_V2);
    setenv("BERTH_TRANSPARENT", "True", 1);
    ck_assert_int_eq(compat_env(&plan, &sw, err, sizeof err), 0);
    ck_assert(sw.transparent);
    setenv("BERTH_TRANSPARENT", "maybe", 1);
    ck_assert_int_eq(compat_env(&plan, &sw, err, sizeof err), -1);
    ck_assert_str_eq(err, "BERTH_TRANSPARENT 'maybe': want 1 or 0 (true, false)");
    setenv("BERTH_TRANSPARENT", "0", 1);
    setenv("BERTH_PROXY_PROTOCOL", "v9", 1);
    ck_assert_int_eq(compat_env(&plan, &sw, err, sizeof err), -1);
    ck_assert_str_eq(
        err, "BERTH_PROXY_PROTOCOL: --proxy-protocol 'v9': want v1, v2 or off");
    unsetenv("BERTH_TRANSPARENT");
    unsetenv("BERTH_PROXY_PROTOCOL");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("compat");
    TCase *tc = tcase_create("compat");
    tcase_add_test(tc, test_dockerd_forms);
    tcase_add_test(tc, test_version);
    tcase_add_loop_test(tc, test_bad, 0, sizeof bads / sizeof bads[0]);
    tcase_add_test(tc, test_wanted);
    tcase_add_test(tc, test_env_switches);
    suite_add_tcase(s, tc);
    return check_run(s);
}
