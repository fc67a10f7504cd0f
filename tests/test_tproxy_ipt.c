/* Which marks packets of transparent sockets get, read from real
 * iptables-save output (tests/fixtures/tproxy/, captured from iptables
 * 1.8.9 in a scratch network namespace: the kernel doc's rules,
 * iptables-legacy and iptables-nft ones, rules that take replies before
 * they are marked), and odd input survived. */
#include "check_run.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/tproxy_ipt.h"
#include "tproxyfx.h"

START_TEST(test_iptables_shadow)
{
    struct tproxy_marks m = {.n = 0};
    tproxy_marks_iptables(slurp("ipt_shadow.txt"), TPROXY_V4, &m);
    ck_assert_uint_eq(m.n, 0);
    ck_assert_msg(strstr(m.shadow[0], "rule '-A PREROUTING -m conntrack --ctstate "
                                      "RELATED,ESTABLISHED -j ACCEPT' in chain "
                                      "PREROUTING accepts replies before they are "
                                      "marked"),
                  "%s", m.shadow[0]);
    /* `-m conntrack --ctstate INVALID -j DROP` and `-p tcp -m tcp --dport 22
     * -j ACCEPT` spare replies: the shadow named is the established one. */
    struct tproxy_marks k = {.n = 0};
    tproxy_marks_iptables("*mangle\n-A PREROUTING -m conntrack --ctstate INVALID -j "
                          "DROP\n-A PREROUTING -p tcp -m tcp --dport 22 -j ACCEPT\n-A "
                          "PREROUTING -m socket -j MARK --set-mark 3\nCOMMIT\n",
                          TPROXY_V4, &k);
    ck_assert_uint_eq(covers(&k, 3), TPROXY_V4);
    ck_assert_str_eq(k.shadow[0], "");
    /* A chain jumped to that accepts: the caller's later rules are shadowed
     * too; -p udp narrows. */
    struct tproxy_marks j = {.n = 0};
    tproxy_marks_iptables("*mangle\n-A PREROUTING -p udp -j EARLY\n-A EARLY -j "
                          "ACCEPT\n-A PREROUTING -m socket -j MARK --set-mark 4\n"
                          "COMMIT\n",
                          TPROXY_V4, &j);
    ck_assert_uint_eq(covers(&j, 4), TPROXY_TCP4);
    ck_assert(strstr(j.shadow[1], "'-A EARLY -j ACCEPT' in chain EARLY accepts"));
}
END_TEST

START_TEST(test_iptables_kernel_doc)
{
    const char *save = slurp("legacy_kerneldoc.txt");
    struct tproxy_marks m = {.n = 0};
    /* -p tcp -m socket -j DIVERT; DIVERT: MARK --set-xmark 0x1/0xffffffff. */
    tproxy_marks_iptables(save, TPROXY_V4, &m);
    ck_assert_uint_eq(m.n, 1);
    ck_assert_uint_eq(covers(&m, 1), TPROXY_TCP4);
    tproxy_marks_iptables(save, TPROXY_V6, &m);
    ck_assert_uint_eq(covers(&m, 1), TPROXY_TCP);
}
END_TEST

START_TEST(test_iptables_nft_save)
{
    struct tproxy_marks m = {.n = 0};
    tproxy_marks_iptables(slurp("nft_iptables_save.txt"), TPROXY_V4, &m);
    ck_assert_uint_eq(covers(&m, 0x5), TPROXY_V4);    /* --set-mark 0x5 */
    ck_assert_uint_eq(covers(&m, 0x40), TPROXY_UDP4); /* -p udp --or-mark 0x40 */
    ck_assert_uint_eq(covers(&m, 0x10), TPROXY_V4);   /* --set-xmark 0x10/0xff */
    ck_assert_uint_eq(covers(&m, 0x9), 0);            /* -m mark --mark 0x9 */
    ck_assert_uint_eq(m.n, 3);
}
END_TEST

START_TEST(test_iptables_odd_input)
{
    static const char *const odd[] = {
        "",
        "*mangle",
        "*filter\n-A PREROUTING -m socket -j MARK --set-mark 1\nCOMMIT\n",
        "*mangle\n-A PREROUTING -m socket -j MARK --set-xmark zz/0x1\nCOMMIT\n",
        "*mangle\n-A PREROUTING -m socket -j MARK --set-xmark 0x1ffffffff\nCOMMIT\n",
        "*mangle\n-A PREROUTING -m socket -j\n-A PREROUTING -m\n-A PREROUTING -p\n",
        "*mangle\n-A PREROUTING -m comment --comment \"unterminated -j MARK --set-mark 1\n",
        "*mangle\n-A PREROUTING ! -p tcp ! -p udp -m socket -j MARK --set-mark 1\nCOMMIT\n",
        /* Chains that jump to each other forever. */
        "*mangle\n-A PREROUTING -m socket -j A\n-A A -j B\n-A B -j A\nCOMMIT\n",
        /* A mark after COMMIT is another table's. */
        "*mangle\nCOMMIT\n-A PREROUTING -m socket -j MARK --set-mark 1\n",
        /* No socket match on the way: every packet's mark, not ours. */
        "*mangle\n-A PREROUTING -j D\n-A D -j MARK --set-mark 1\nCOMMIT\n",
    };
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        struct tproxy_marks m = {.n = 0};
        tproxy_marks_iptables(odd[i], TPROXY_V4, &m);
        ck_assert_msg(m.n == 0, "input %zu gave %zu marks", i, m.n);
    }
    /* A comment's quoted words are one word. */
    struct tproxy_marks m = {.n = 0};
    tproxy_marks_iptables(
        "*mangle\n-A PREROUTING -m comment --comment \"a -j ACCEPT\" -m "
        "socket --transparent -j MARK --set-xmark 0x8/0x8\nCOMMIT\n",
        TPROXY_V4, &m);
    ck_assert_uint_eq(covers(&m, 0x8), TPROXY_V4);
}
END_TEST

/* Jumps are followed TPROXY_WALK_DEPTH deep and no deeper: a socket match
 * in PREROUTING, then a chain of jumps ending in MARK. */
START_TEST(test_iptables_depth)
{
    char save[4096];
    for (int depth = TPROXY_WALK_DEPTH; depth <= TPROXY_WALK_DEPTH + 1; depth++) {
        int n = snprintf(save, sizeof save,
                         "*mangle\n-A PREROUTING -m socket -j C1\n");
        for (int i = 1; i < depth; i++)
            n += snprintf(save + n, sizeof save - (size_t)n, "-A C%d -j C%d\n", i,
                          i + 1);
        n += snprintf(save + n, sizeof save - (size_t)n,
                      "-A C%d -j MARK --set-mark 7\nCOMMIT\n", depth);
        ck_assert_int_lt(n, (int)sizeof save);
        struct tproxy_marks m = {.n = 0};
        tproxy_marks_iptables(save, TPROXY_V6, &m);
        ck_assert_uint_eq(covers(&m, 7), depth <= TPROXY_WALK_DEPTH ? TPROXY_V6 : 0);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tproxy_ipt");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_iptables_shadow);
    tcase_add_test(tc, test_iptables_kernel_doc);
    tcase_add_test(tc, test_iptables_nft_save);
    tcase_add_test(tc, test_iptables_odd_input);
    tcase_add_test(tc, test_iptables_depth);
    suite_add_tcase(s, tc);
    return check_run(s);
}
