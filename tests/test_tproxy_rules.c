/* Which marks packets of transparent sockets get, read from real `nft -j
 * list ruleset` output (tests/fixtures/tproxy/, captured from nftables
 * 1.0.6 in a scratch network namespace: the kernel doc's rules,
 * berth-tproxy's, iptables-nft ones, chains reached by jump, goto and
 * verdict maps, a nat chain, rules that take replies before they are
 * marked), and odd input survived. iptables-save: test_tproxy_ipt.c. */
#include "check_run.h"
#include <check.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "berth/tproxy_rules.h"
#include "tproxyfx.h"

START_TEST(test_nft_berth_tproxy)
{
    struct tproxy_marks m = {.n = 0};
    ck_assert_int_eq(tproxy_marks_nft(slurp("nft_berth.json"), &m), 0);
    ck_assert_uint_eq(m.n, 1);
    /* `meta mark set meta mark | 0x2000000` in an inet table, tcp and udp. */
    ck_assert_uint_eq(covers(&m, 0x2000000), TPROXY_ALL);
    ck_assert(!m.xt);
}
END_TEST

START_TEST(test_nft_kernel_doc)
{
    struct tproxy_marks m = {.n = 0};
    ck_assert_int_eq(tproxy_marks_nft(slurp("nft_kerneldoc.json"), &m), 0);
    ck_assert_uint_eq(m.n, 1);
    /* table ip, meta l4proto tcp: IPv4 TCP only. */
    ck_assert_uint_eq(covers(&m, 1), TPROXY_TCP4);
}
END_TEST

START_TEST(test_nft_jump_and_masks)
{
    struct tproxy_marks m = {.n = 0};
    ck_assert_int_eq(tproxy_marks_nft(slurp("nft_jump.json"), &m), 0);
    /* `ip protocol udp jump sub`, then `socket wildcard 0 meta mark set
     * meta mark & 0xffff00ff ^ 0x300` (nft shows it as (mark & a) | b). */
    ck_assert_uint_eq(m.n, 1);
    ck_assert_uint_eq(covers(&m, 0x300), TPROXY_UDP4);
}
END_TEST

START_TEST(test_nft_mixed)
{
    struct tproxy_marks m = {.n = 0};
    ck_assert_int_eq(tproxy_marks_nft(slurp("nft_mixed.json"), &m), 0);
    ck_assert_uint_eq(covers(&m, 0x77), 0); /* a nat chain: replies never pass */
    ck_assert_uint_eq(covers(&m, 0x99), 0); /* socket transparent 0 */
    ck_assert_uint_eq(covers(&m, 0x88), 0); /* a chain nothing jumps to */
    /* nfproto ipv6, vmap { tcp : jump six, udp : goto six }, mark ^ 0x400. */
    ck_assert_uint_eq(covers(&m, 0x400), TPROXY_V6);
    ck_assert_uint_eq(m.n, 1);
}
END_TEST

START_TEST(test_nft_iptables_nft_rules)
{
    struct tproxy_marks m = {.n = 0};
    ck_assert_int_eq(tproxy_marks_nft(slurp("nft_xt.json"), &m), 0);
    /* iptables-nft's rules show as xt expressions without values. */
    ck_assert_uint_eq(m.n, 0);
    ck_assert(m.xt);
    struct tproxy_marks e = {.n = 0};
    ck_assert_int_eq(tproxy_marks_nft(slurp("nft_empty.json"), &e), 0);
    ck_assert_uint_eq(e.n, 0);
    ck_assert(!e.xt);
}
END_TEST

START_TEST(test_nft_odd_input)
{
    static const char *const odd[] = {
        "",
        "not json",
        "{\"nftables\": 5}",
        "[1,2,3]",
        "{\"nftables\": [null, 1, \"x\", {\"chain\": 3}, {\"rule\": []}]}",
        /* A base chain whose rules are malformed in every way. */
        "{\"nftables\": [{\"chain\": {\"family\": \"ip\", \"table\": \"t\", \"name\": "
        "\"c\", \"type\": \"filter\", \"hook\": \"prerouting\"}},"
        "{\"rule\": {\"family\": \"ip\", \"table\": \"t\", \"chain\": \"c\", \"expr\": 7}},"
        "{\"rule\": {\"family\": \"ip\", \"table\": \"t\", \"chain\": \"c\", \"expr\": "
        "[{\"match\": 1}, {\"match\": {\"left\": {\"socket\": 1}, \"right\": -1}},"
        "{\"match\": {\"op\": \"==\", \"left\": {\"socket\": {\"key\": \"transparent\"}},"
        "\"right\": 1}},"
        "{\"mangle\": {\"key\": {\"meta\": {\"key\": \"mark\"}}, \"value\": 1e20}},"
        "{\"mangle\": {\"key\": {\"meta\": {\"key\": \"mark\"}}, \"value\": -1}},"
        "{\"mangle\": {\"key\": {\"meta\": {\"key\": \"mark\"}}, \"value\": 1.5}},"
        "{\"mangle\": {\"key\": {\"meta\": {\"key\": \"mark\"}}, \"value\": {\"|\": [1]}}},"
        "{\"mangle\": {\"key\": {\"meta\": {\"key\": \"mark\"}}, \"value\": {\"ct\": 1}}},"
        "{\"vmap\": {\"data\": {\"set\": [1, [2], [\"tcp\", 3]]}}},"
        "{\"jump\": {\"target\": 5}}, {\"goto\": null}]}},"
        /* A chain that jumps to itself. */
        "{\"rule\": {\"family\": \"ip\", \"table\": \"t\", \"chain\": \"c\", \"expr\": "
        "[{\"jump\": {\"target\": \"c\"}}]}}]}",
    };
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        struct tproxy_marks m = {.n = 0};
        int r = tproxy_marks_nft(odd[i], &m);
        ck_assert_msg(i < 4 ? r == -1 : r == 0, "input %zu: %d", i, r);
        ck_assert_uint_eq(m.n, 0);
    }
}
END_TEST

START_TEST(test_nft_deep_expression)
{
    /* A mark expression nested past any bound is refused, not recursed. */
    char json[8192];
    size_t n = (size_t)snprintf(
        json, sizeof json,
        "{\"nftables\": [{\"chain\": {\"family\": \"ip\", \"table\": \"t\", \"name\": \"c\", "
        "\"type\": \"filter\", \"hook\": \"prerouting\"}}, {\"rule\": {\"family\": \"ip\", "
        "\"table\": \"t\", \"chain\": \"c\", \"expr\": [{\"match\": {\"op\": \"==\", \"left\": "
        "{\"socket\": {\"key\": \"transparent\"}}, \"right\": 1}}, {\"mangle\": {\"key\": "
        "{\"meta\": {\"key\": \"mark\"}}, \"value\": ");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(json + n, sizeof json - n, "{\"|\": [1, ");
    n += (size_t)snprintf(json + n, sizeof json - n, "2");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(json + n, sizeof json - n, "]}");
    snprintf(json + n, sizeof json - n, "}}]}}]}");
    struct tproxy_marks m = {.n = 0};
    ck_assert_int_eq(tproxy_marks_nft(json, &m), 0);
    ck_assert_uint_eq(m.n, 0);
}
END_TEST

START_TEST(test_nft_shadow)
{
    struct tproxy_marks m = {.n = 0};
    ck_assert_int_eq(tproxy_marks_nft(slurp("nft_shadow.json"), &m), 0);
    /* inet t: `ct state invalid drop` spares replies; `ct state
     * established,related accept` ends them before `socket transparent 1
     * meta mark set 0x1`. */
    ck_assert_uint_eq(covers(&m, 0x1), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(strstr(m.shadow[i], "rule 'ct state established,related "
                                          "accept' in chain inet t prerouting "
                                          "accepts replies before they are marked"),
                      "shadow %d: %s", i, m.shadow[i]);
    /* ip u: `iifname "eth0" meta l4proto udp accept` ends UDP only. */
    ck_assert_uint_eq(covers(&m, 0x2), TPROXY_TCP4);
    ck_assert_uint_eq(m.n, 1);
}
END_TEST

START_TEST(test_nft_nfproto_set)
{
    struct tproxy_marks m = {.n = 0};
    ck_assert_int_eq(tproxy_marks_nft(slurp("nft_nfproto_set.json"), &m), 0);
    ck_assert_uint_eq(covers(&m, 0x1), TPROXY_ALL); /* meta nfproto { ipv4, ipv6 } */
    ck_assert_uint_eq(covers(&m, 0x2), 0);          /* != { ipv4, ipv6 } */
    ck_assert_uint_eq(m.n, 1);
    for (int i = 0; i < 4; i++)
        ck_assert_str_eq(m.shadow[i], "");
}
END_TEST

START_TEST(test_nft_many_chains)
{
    /* kube-proxy's shape: a base chain jumping to thousands of service
     * chains, each jumping to the same shared one; the marking rule behind
     * the last. Every chain is walked (no cap of ~1000 visits misses it),
     * the shared one once per way in, not once per path. */
    enum { CHAINS = 3000 };
    size_t cap = (size_t)CHAINS * 800 + 4096, n = 0;
    char *json = malloc(cap);
    ck_assert_ptr_nonnull(json);
    n +=
        (size_t)snprintf(json + n, cap - n,
                         "{\"nftables\": [{\"chain\": {\"family\": \"ip\", \"table\": "
                         "\"t\", \"name\": \"base\", \"type\": \"filter\", \"hook\": "
                         "\"prerouting\"}}");
#define RULE(chain, expr)                                                             \
    n += (size_t)snprintf(json + n, cap - n,                                          \
                          ",{\"rule\": {\"family\": \"ip\", \"table\": \"t\", "       \
                          "\"chain\": \"%s\", \"expr\": [%s]}}",                      \
                          chain, expr)
    for (int i = 0; i < CHAINS; i++) {
        char name[16], jump[160];
        snprintf(name, sizeof name, "s%d", i);
        snprintf(
            jump, sizeof jump,
            "{\"match\": {\"op\": \"==\", \"left\": {\"meta\": {\"key\": "
            "\"l4proto\"}}, \"right\": \"tcp\"}}, {\"jump\": {\"target\": \"%s\"}}",
            name);
        n += (size_t)snprintf(json + n, cap - n,
                              ",{\"chain\": {\"family\": \"ip\", \"table\": \"t\", "
                              "\"name\": \"%s\"}}",
                              name);
        RULE("base", jump);
        RULE(name, "{\"jump\": {\"target\": \"shared\"}}");
        RULE(name, "{\"jump\": {\"target\": \"shared\"}}");
    }
    n += (size_t)snprintf(json + n, cap - n,
                          ",{\"chain\": {\"family\": \"ip\", \"table\": \"t\", "
                          "\"name\": \"shared\"}},{\"chain\": {\"family\": \"ip\", "
                          "\"table\": \"t\", \"name\": \"m\"}}");
    RULE("shared", "{\"counter\": null}");
    RULE("s2999", "{\"jump\": {\"target\": \"m\"}}");
    RULE("m", "{\"match\": {\"op\": \"==\", \"left\": {\"socket\": {\"key\": "
              "\"transparent\"}}, \"right\": 1}}, {\"mangle\": {\"key\": {\"meta\": "
              "{\"key\": \"mark\"}}, \"value\": 7}}");
#undef RULE
    n += (size_t)snprintf(json + n, cap - n, "]}");
    ck_assert_uint_lt(n, cap);
    struct tproxy_marks m = {.n = 0};
    ck_assert_int_eq(tproxy_marks_nft(json, &m), 0);
    ck_assert_uint_eq(covers(&m, 7), TPROXY_TCP4);
    free(json);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tproxy_rules");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_nft_berth_tproxy);
    tcase_add_test(tc, test_nft_kernel_doc);
    tcase_add_test(tc, test_nft_jump_and_masks);
    tcase_add_test(tc, test_nft_mixed);
    tcase_add_test(tc, test_nft_iptables_nft_rules);
    tcase_add_test(tc, test_nft_odd_input);
    tcase_add_test(tc, test_nft_deep_expression);
    tcase_add_test(tc, test_nft_shadow);
    tcase_add_test(tc, test_nft_nfproto_set);
    tcase_add_test(tc, test_nft_many_chains);
    suite_add_tcase(s, tc);
    return check_run(s);
}
