/* The PROXY protocol header byte for byte against headers written out by
 * hand from HAProxy's doc/proxy-protocol.txt (never produced by the
 * encoder): v1 and v2 for IPv4, IPv6, IPv4-mapped, mixed families and an
 * unsupported family, v2 LOCAL, and buffers one byte too small. */
#include "check_run.h"
#include <check.h>
#include <string.h>
#include <sys/un.h>

#include "berth/proxy_header.h"

#define SIG 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a

static struct addr ip(const char *text, uint16_t port)
{
    struct addr a;
    ck_assert_int_eq(addr_from_ip(&a, text, port), 0);
    return a;
}

static void expect_bytes(enum proxy_proto v, const struct addr *src,
                         const struct addr *dst, const uint8_t *want, size_t want_len)
{
    uint8_t out[PROXY_HEADER_MAX + 8];
    memset(out, 0xee, sizeof out);
    size_t n = proxy_header_encode(v, src, dst, out, sizeof out);
    ck_assert_uint_eq(n, want_len);
    ck_assert_mem_eq(out, want, want_len);
    /* Exactly as long as it must be: one byte less does not fit. */
    memset(out, 0xee, sizeof out);
    ck_assert_uint_eq(proxy_header_encode(v, src, dst, out, want_len), want_len);
    ck_assert_mem_eq(out, want, want_len);
    ck_assert_uint_eq(out[want_len], 0xee); /* nothing past it */
    ck_assert_uint_eq(proxy_header_encode(v, src, dst, out, want_len - 1), 0);
    ck_assert_uint_eq(proxy_header_encode(v, src, dst, out, 0), 0);
}

static void expect_line(const struct addr *src, const struct addr *dst,
                        const char *line)
{
    expect_bytes(PROXY_PROTO_V1, src, dst, (const uint8_t *)line, strlen(line));
}

START_TEST(test_v2_ipv4)
{
    struct addr s = ip("192.168.0.1", 56324), d = ip("192.168.0.11", 443);
    static const uint8_t want[] = {SIG,  0x21, 0x11, 0x00, 0x0c, 0xc0,
                                   0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00,
                                   0x0b, 0xdc, 0x04, 0x01, 0xbb};
    expect_bytes(PROXY_PROTO_V2, &s, &d, want, sizeof want);
    ck_assert_uint_eq(sizeof want, 28);
}
END_TEST

START_TEST(test_v2_ipv6)
{
    struct addr s = ip("2001:db8::1", 1234), d = ip("fd00::abcd", 8443);
    static const uint8_t want[] = {SIG,  0x21, 0x21, 0x00, 0x24, /* */
                                   0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x00,             /* src */
                                   0x00, 0x00, 0x00, 0x00, 0x00, 0x01, /* */
                                   0xfd, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x00,             /* dst */
                                   0x00, 0x00, 0x00, 0x00, 0xab, 0xcd, /* */
                                   0x04, 0xd2, 0x20, 0xfb};
    expect_bytes(PROXY_PROTO_V2, &s, &d, want, sizeof want);
    ck_assert_uint_eq(sizeof want, 52);
}
END_TEST

START_TEST(test_v2_mapped_is_ipv4)
{
    /* A dual-stack listener's IPv4 client and the address it reached. */
    struct addr s = ip("::ffff:10.1.2.3", 40000), d = ip("::ffff:127.0.0.1", 8080);
    static const uint8_t want[] = {SIG,  0x21, 0x11, 0x00, 0x0c, 0x0a,
                                   0x01, 0x02, 0x03, 0x7f, 0x00, 0x00,
                                   0x01, 0x9c, 0x40, 0x1f, 0x90};
    expect_bytes(PROXY_PROTO_V2, &s, &d, want, sizeof want);
    /* One mapped, one plain IPv4: both IPv4 after unmapping. */
    struct addr d4 = ip("127.0.0.1", 8080);
    expect_bytes(PROXY_PROTO_V2, &s, &d4, want, sizeof want);
}
END_TEST

START_TEST(test_v2_mixed_families)
{
    struct addr s = ip("10.1.2.3", 40000), d = ip("::1", 8080);
    static const uint8_t want[] = {SIG,  0x21, 0x21, 0x00, 0x24, /* */
                                   0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x00,             /* src */
                                   0xff, 0xff, 0x0a, 0x01, 0x02, 0x03, /* */
                                   0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x00,             /* dst */
                                   0x00, 0x00, 0x00, 0x00, 0x00, 0x01, /* */
                                   0x9c, 0x40, 0x1f, 0x90};
    expect_bytes(PROXY_PROTO_V2, &s, &d, want, sizeof want);
}
END_TEST

static struct addr unix_addr(void)
{
    struct addr a = {0};
    struct sockaddr_un *un = (struct sockaddr_un *)&a.ss;
    un->sun_family = AF_UNIX;
    strcpy(un->sun_path, "/run/x.sock");
    a.len = sizeof *un;
    return a;
}

START_TEST(test_unsupported_family)
{
    struct addr u = unix_addr(), d = ip("127.0.0.1", 80);
    /* v2: the PROXY command, AF_UNSPEC, no address block. */
    static const uint8_t want[] = {SIG, 0x21, 0x00, 0x00, 0x00};
    expect_bytes(PROXY_PROTO_V2, &u, &d, want, sizeof want);
    expect_bytes(PROXY_PROTO_V2, &d, &u, want, sizeof want);
    expect_line(&u, &d, "PROXY UNKNOWN\r\n");
    expect_line(&d, &u, "PROXY UNKNOWN\r\n");
    /* A missing address is no address. */
    expect_bytes(PROXY_PROTO_V2, NULL, &d, want, sizeof want);
    expect_line(&d, NULL, "PROXY UNKNOWN\r\n");
}
END_TEST

START_TEST(test_v2_local)
{
    static const uint8_t want[] = {SIG, 0x20, 0x00, 0x00, 0x00};
    uint8_t out[32];
    memset(out, 0xee, sizeof out);
    ck_assert_uint_eq(proxy_header_encode_local(out, sizeof out), 16);
    ck_assert_mem_eq(out, want, sizeof want);
    ck_assert_uint_eq(out[16], 0xee);
    ck_assert_uint_eq(proxy_header_encode_local(out, 16), 16);
    ck_assert_uint_eq(proxy_header_encode_local(out, 15), 0);
}
END_TEST

/* v1 lines from the spec's grammar, written out by hand. */
static const struct v1_case {
    const char *src;
    uint16_t sport;
    const char *dst;
    uint16_t dport;
    const char *line;
} v1_cases[] = {
    /* The spec's own example. */
    {"192.168.0.1", 56324, "192.168.0.11", 443,
     "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"},
    {"0.0.0.0", 0, "255.255.255.255", 65535,
     "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"},
    {"10.0.0.9", 7, "172.16.100.20", 80, "PROXY TCP4 10.0.0.9 172.16.100.20 7 80\r\n"},
    {"2001:db8::1", 1234, "fd00::abcd", 8443,
     "PROXY TCP6 2001:db8::1 fd00::abcd 1234 8443\r\n"},
    /* Zero runs: the longest of two or more (the first of equals) is "::";
     * a lone zero group stays; leading zeroes of a group go. */
    {"1:0:1:0:0:1:0:0", 1, "1:0:0:1:0:0:1:1", 2,
     "PROXY TCP6 1:0:1::1:0:0 1::1:0:0:1:1 1 2\r\n"},
    {"::", 0, "1::", 65535, "PROXY TCP6 :: 1:: 0 65535\r\n"},
    {"2001:db8:0:1:1:1:1:1", 3, "::1", 4,
     "PROXY TCP6 2001:db8:0:1:1:1:1:1 ::1 3 4\r\n"},
    /* An IPv4-compatible address is hexadecimal too, not inet_ntop's
     * dotted tail. */
    {"::102:304", 5, "::1", 4, "PROXY TCP6 ::102:304 ::1 5 4\r\n"},
    /* IPv4-mapped: TCP4 once both unmap; one of each family: TCP6 with the
     * IPv4 one mapped. */
    {"::ffff:10.1.2.3", 40000, "::ffff:127.0.0.1", 8080,
     "PROXY TCP4 10.1.2.3 127.0.0.1 40000 8080\r\n"},
    {"10.1.2.3", 40000, "::1", 8080, "PROXY TCP6 ::ffff:a01:203 ::1 40000 8080\r\n"},
    {"::1", 8080, "10.1.2.3", 40000, "PROXY TCP6 ::1 ::ffff:a01:203 8080 40000\r\n"},
};

START_TEST(test_v1)
{
    const struct v1_case *c = &v1_cases[_i];
    struct addr s = ip(c->src, c->sport), d = ip(c->dst, c->dport);
    expect_line(&s, &d, c->line);
}
END_TEST

START_TEST(test_v1_longest)
{
    /* The spec's longest TCP6 line: 104 bytes. */
    struct addr f = ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
    const char *longest = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                          "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    ck_assert_uint_eq(strlen(longest), 104);
    expect_line(&f, &f, longest);
}
END_TEST

START_TEST(test_none_and_small)
{
    struct addr s = ip("10.1.2.3", 1), d = ip("10.1.2.4", 2);
    uint8_t out[PROXY_HEADER_MAX];
    ck_assert_uint_eq(proxy_header_encode(PROXY_PROTO_NONE, &s, &d, out, sizeof out),
                      0);
    ck_assert_uint_eq(proxy_header_encode(PROXY_PROTO_V2, &s, &d, out, 15), 0);
    ck_assert_uint_eq(proxy_header_encode(PROXY_PROTO_V1, &s, &d, out, 5), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("proxy_header");
    TCase *tc = tcase_create("proxy_header");
    tcase_add_test(tc, test_v2_ipv4);
    tcase_add_test(tc, test_v2_ipv6);
    tcase_add_test(tc, test_v2_mapped_is_ipv4);
    tcase_add_test(tc, test_v2_mixed_families);
    tcase_add_test(tc, test_unsupported_family);
    tcase_add_test(tc, test_v2_local);
    tcase_add_loop_test(tc, test_v1, 0, sizeof v1_cases / sizeof v1_cases[0]);
    tcase_add_test(tc, test_v1_longest);
    tcase_add_test(tc, test_none_and_small);
    suite_add_tcase(s, tc);
    return check_run(s);
}
