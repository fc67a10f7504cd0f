/* Publish spec grammar: a table of good inputs and their parse, and of bad
 * inputs with the exact reason users will read. */
#include "check_run.h"
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "berth/spec.h"

struct good {
    const char *text;
    const char *host_ip;
    unsigned host_lo, host_hi;
    const char *target; /* IP as formatted, or the name */
    int is_ip;
    unsigned target_lo, target_hi;
    enum proto proto;
};

static const struct good goods[] = {
    {"8080:172.17.0.2:80", "0.0.0.0", 8080, 8080, "172.17.0.2", 1, 80, 80, PROTO_TCP},
    {"127.0.0.1:8080:10.0.0.1:80/tcp", "127.0.0.1", 8080, 8080, "10.0.0.1", 1, 80, 80,
     PROTO_TCP},
    {"[::1]:5353:10.0.0.2:53/udp", "::1", 5353, 5353, "10.0.0.2", 1, 53, 53,
     PROTO_UDP},
    {"[::]:80:[fd00::2]:8080", "::", 80, 80, "fd00::2", 1, 8080, 8080, PROTO_TCP},
    {"20000-20099:10.1.1.1:30000-30099", "0.0.0.0", 20000, 20099, "10.1.1.1", 1, 30000,
     30099, PROTO_TCP},
    {"1:1.2.3.4:65535/udp", "0.0.0.0", 1, 1, "1.2.3.4", 1, 65535, 65535, PROTO_UDP},
    {"3868:10.0.0.3:3868/sctp", "0.0.0.0", 3868, 3868, "10.0.0.3", 1, 3868, 3868,
     PROTO_SCTP},
    {"[::1]:2905-2906:sigtran:2905-2906/sctp", "::1", 2905, 2906, "sigtran", 0, 2905,
     2906, PROTO_SCTP},
    {"127.0.0.1:8080:web:80", "127.0.0.1", 8080, 8080, "web", 0, 80, 80, PROTO_TCP},
    {"9000-9009:api.lab:9000-9009", "0.0.0.0", 9000, 9009, "api.lab", 0, 9000, 9009,
     PROTO_TCP},
    {"8080:2.api.lab:80", "0.0.0.0", 8080, 8080, "2.api.lab", 0, 80, 80, PROTO_TCP},
    {"8080:3f2a9c1b0d4e:80", "0.0.0.0", 8080, 8080, "3f2a9c1b0d4e", 0, 80, 80,
     PROTO_TCP},
    {"8080:my_db-1:5432", "0.0.0.0", 8080, 8080, "my_db-1", 0, 5432, 5432, PROTO_TCP},
};

struct bad {
    const char *text;
    const char *reason;
};

static const struct bad bads[] = {
    {"", "empty spec"},
    {"8080", "missing target and target port"},
    {"8080:web", "missing target port"},
    {"8080:80", "missing target (want HOST_PORT:TARGET:TARGET_PORT)"},
    {"127.0.0.1:8080:80",
     "missing target (want [HOST_IP:]HOST_PORT:TARGET:TARGET_PORT)"},
    {"8080:web:", "missing target port"},
    {"8080::80", "missing target"},
    {":1.2.3.4:80", "missing host port"},
    {"0:1.2.3.4:80", "host port '0' is not a port or range in 1-65535"},
    {"65536:1.2.3.4:80", "host port '65536' is not a port or range in 1-65535"},
    {"80x:1.2.3.4:80", "host port '80x' is not a port or range in 1-65535"},
    {"8080:1.2.3.4:http", "target port 'http' is not a port or range in 1-65535"},
    {"8081-8080:1.2.3.4:80-81", "host port range '8081-8080' ends before it starts"},
    {"8080-8081:1.2.3.4:80",
     "host ports 8080-8081 and target ports 80-80 differ in length"},
    {"8080:1.2.3.4:80-82",
     "host ports 8080-8080 and target ports 80-82 differ in length"},
    {"8080:1.2.3.4:80/dccp", "unknown protocol 'dccp' (want tcp, udp or sctp)"},
    {"8080:1.2.3.4:80/", "unknown protocol '' (want tcp, udp or sctp)"},
    {"::1:8080:1.2.3.4:80",
     "too many ':' (write IPv6 addresses in brackets, e.g. [::1])"},
    {"8080:fd00::1:80", "too many ':' (write IPv6 addresses in brackets, e.g. [::1])"},
    {"[::1:8080:1.2.3.4:80", "unclosed '[' in address"},
    {"[1.2.3.4]:8080:1.2.3.4:80", "host IP '[1.2.3.4]' is not an IPv6 address"},
    {"localhost:8080:1.2.3.4:80", "host IP 'localhost' is not an IP address"},
    {"8080:[zz::1]:80", "target '[zz::1]' is not an IPv6 address"},
    {"8080:we b:80", "target 'we b' is neither an IP address nor a container name"},
    {"8080:-web:80", "target '-web' is neither an IP address nor a container name"},
    {"8080:api..lab:80",
     "target 'api..lab' is neither an IP address nor a container name"},
    {"8080:999.0.0.1:80", "target '999.0.0.1' is not a valid IPv4 address"},
};

START_TEST(test_good)
{
    const struct good *g = &goods[_i];
    struct spec s;
    char err[256] = "";
    ck_assert_msg(spec_parse(g->text, &s, err, sizeof err) == 0, "%s: %s", g->text,
                  err);
    char ip[64];
    ck_assert_str_eq(addr_format_ip(&s.host, ip, sizeof ip), g->host_ip);
    ck_assert_uint_eq(s.host_lo, g->host_lo);
    ck_assert_uint_eq(s.host_hi, g->host_hi);
    ck_assert_int_eq(s.target_is_ip, g->is_ip);
    if (g->is_ip)
        ck_assert_str_eq(addr_format_ip(&s.target, ip, sizeof ip), g->target);
    else
        ck_assert_str_eq(s.target_name, g->target);
    ck_assert_uint_eq(s.target_lo, g->target_lo);
    ck_assert_uint_eq(s.target_hi, g->target_hi);
    ck_assert_int_eq(s.proto, g->proto);
}
END_TEST

START_TEST(test_bad)
{
    const struct bad *b = &bads[_i];
    struct spec s;
    char err[256] = "";
    ck_assert_msg(spec_parse(b->text, &s, err, sizeof err) == -1, "'%s' parsed",
                  b->text);
    ck_assert_str_eq(err, b->reason);
}
END_TEST

/* Only a spec without HOST_IP means every address of both families. */
START_TEST(test_host_default)
{
    static const struct {
        const char *text;
        bool is_default;
        const char *ip;
    } cases[] = {
        {"8080:web:80", true, "0.0.0.0"},
        {"8080-8081:10.0.0.2:80-81/udp", true, "0.0.0.0"},
        {"0.0.0.0:8080:web:80", false, "0.0.0.0"},
        {"[::]:8080:web:80", false, "::"},
        {"127.0.0.1:8080:web:80", false, "127.0.0.1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct spec s;
        char err[256] = "", ip[64];
        ck_assert_msg(spec_parse(cases[i].text, &s, err, sizeof err) == 0, "%s", err);
        ck_assert_msg(s.host_default == cases[i].is_default, "%s", cases[i].text);
        ck_assert_str_eq(addr_format_ip(&s.host, ip, sizeof ip), cases[i].ip);
    }
}
END_TEST

START_TEST(test_long_name_rejected)
{
    char text[400], err[600];
    struct spec s;
    memset(text, 'a', sizeof text);
    memcpy(text, "80:", 3);
    memcpy(text + 300, ":80", 4);
    ck_assert_int_eq(spec_parse(text, &s, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "neither an IP address nor a container name"));
}
END_TEST

START_TEST(test_switches)
{
    enum proxy_proto pp = PROXY_PROTO_NONE;
    ck_assert_int_eq(spec_parse_proxy_proto("v1", &pp), 0);
    ck_assert_int_eq(pp, PROXY_PROTO_V1);
    ck_assert_int_eq(spec_parse_proxy_proto("v2", &pp), 0);
    ck_assert_int_eq(pp, PROXY_PROTO_V2);
    ck_assert_str_eq(proxy_proto_name(pp), "v2");
    ck_assert_int_eq(spec_parse_proxy_proto("off", &pp), 0);
    ck_assert_int_eq(pp, PROXY_PROTO_NONE);
    ck_assert_int_eq(spec_parse_proxy_proto("V2", &pp), -1);
    ck_assert_int_eq(spec_parse_proxy_proto("", &pp), -1);
    bool on = false;
    const char *yes[] = {"true", "TRUE", "1", "yes", "on"},
               *no[] = {"false", "0", "No", "off"};
    for (size_t i = 0; i < 5; i++) {
        on = false;
        ck_assert_int_eq(spec_parse_switch(yes[i], &on), 0);
        ck_assert(on);
    }
    for (size_t i = 0; i < 4; i++) {
        on = true;
        ck_assert_int_eq(spec_parse_switch(no[i], &on), 0);
        ck_assert(!on);
    }
    ck_assert_int_eq(spec_parse_switch("2", &on), -1);
    ck_assert_int_eq(spec_parse_switch("", &on), -1);
}
END_TEST

/* What each protocol is made of, as the listeners and docker-proxy mode's
 * fd check ask socket(2) and SO_PROTOCOL for it. */
START_TEST(test_protocols)
{
    ck_assert_str_eq(proto_name(PROTO_TCP), "tcp");
    ck_assert_str_eq(proto_name(PROTO_UDP), "udp");
    ck_assert_str_eq(proto_name(PROTO_SCTP), "sctp");
    ck_assert(proto_is_stream(PROTO_TCP));
    ck_assert(!proto_is_stream(PROTO_UDP));
    ck_assert(proto_is_stream(PROTO_SCTP));
    ck_assert_int_eq(proto_sock_type(PROTO_SCTP), SOCK_STREAM);
    ck_assert_int_eq(proto_sock_type(PROTO_UDP), SOCK_DGRAM);
    ck_assert_int_eq(proto_ipproto(PROTO_TCP), IPPROTO_TCP);
    ck_assert_int_eq(proto_ipproto(PROTO_UDP), IPPROTO_UDP);
    ck_assert_int_eq(proto_ipproto(PROTO_SCTP), IPPROTO_SCTP);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("spec");
    TCase *tc = tcase_create("parse");
    tcase_add_loop_test(tc, test_good, 0, sizeof goods / sizeof goods[0]);
    tcase_add_loop_test(tc, test_bad, 0, sizeof bads / sizeof bads[0]);
    tcase_add_test(tc, test_long_name_rejected);
    tcase_add_test(tc, test_switches);
    tcase_add_test(tc, test_protocols);
    tcase_add_test(tc, test_host_default);
    suite_add_tcase(s, tc);
    return check_run(s);
}
