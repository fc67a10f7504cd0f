/* The transparent-mode host check: what each mapping needs, and, as root,
 * the whole check and the kernel's routing answer inside a network
 * namespace of the test's own (unshare in a forked child: nothing touches
 * the machine's own namespace). The rule parsers are test_tproxy_rules'. */
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

#include "berth/tproxy_check.h"
#include "berth/tproxy_rules.h"

START_TEST(test_need)
{
    /* The target's family, not the listener's: [::]:8080 to 172.17.0.2
     * needs IPv4 only. */
    struct mapping m = {.proto = PROTO_UDP, .transparent = true};
    ck_assert_int_eq(addr_from_ip(&m.listen, "::", 80), 0);
    ck_assert_int_eq(addr_from_ip(&m.target, "2001:db8::5", 80), 0);
    ck_assert_uint_eq(tproxy_need(&m), TPROXY_UDP6);
    m.proto = PROTO_TCP;
    ck_assert_int_eq(addr_from_ip(&m.target, "172.17.0.2", 80), 0);
    ck_assert_uint_eq(tproxy_need(&m), TPROXY_TCP4);
    /* A name resolves to IPv4 first. */
    memset(&m.target, 0, sizeof m.target);
    snprintf(m.target_name, sizeof m.target_name, "web");
    ck_assert_uint_eq(tproxy_need(&m), TPROXY_TCP4);
}
END_TEST

/* Runs sh commands and the check inside a fresh network namespace, in a
 * child: 77 when this cannot be (not root, no unshare). */
static int in_netns(const char *setup, unsigned need, enum tproxy_result want,
                    const char *want_text)
{
    pid_t pid = fork();
    if (pid == 0) {
        /* A mount namespace too: a test may put a fake nft in place. */
        if (geteuid() != 0 || unshare(CLONE_NEWNET | CLONE_NEWNS) < 0 ||
            system("mount --make-rprivate / 2>/dev/null") != 0)
            _exit(77);
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "PATH=/usr/sbin:/sbin:$PATH; ip link set lo up && %s", setup);
        if (system(cmd) != 0)
            _exit(3);
        char why[256];
        time_t t0 = time(NULL);
        enum tproxy_result r = tproxy_check(need, why, sizeof why);
        if (time(NULL) - t0 > 5) {
            fprintf(stderr, "check took %ld s\n", (long)(time(NULL) - t0));
            _exit(1);
        }
        if (r != want || !strstr(why, want_text)) {
            fprintf(stderr, "check gave %d: \"%s\", want %d \"%s\"\n", (int)r, why,
                    (int)want, want_text);
            _exit(1);
        }
        _exit(0);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

#define IN_NETNS(setup, need, want, text)                                             \
    do {                                                                              \
        int rc_ = in_netns(setup, need, want, text);                                  \
        if (rc_ == 77)                                                                \
            return; /* not root: the e2e test covers this as root */                  \
        ck_assert_msg(rc_ == 0, "setup \"%s\": child exit %d", setup, rc_);           \
    } while (0)

START_TEST(test_check_in_netns)
{
    if (access("/usr/sbin/nft", X_OK) != 0 && access("/sbin/nft", X_OK) != 0)
        return; /* the check itself would say unknown: nothing to compare */
    IN_NETNS("true", TPROXY_TCP4, TPROXY_BROKEN, "no rule marks TCP packets (IPv4)");
    const char *rule =
        "nft 'add table ip t; add chain ip t c { type filter hook prerouting "
        "priority -150; }; add rule ip t c socket transparent 1 meta mark set "
        "meta mark | 0x10'";
    char both[700];
    snprintf(both, sizeof both,
             "%s && ip rule add fwmark 0x10/0x10 lookup 77 && "
             "ip route add local 0.0.0.0/0 dev lo table 77",
             rule);
    IN_NETNS(rule, TPROXY_TCP4, TPROXY_BROKEN,
             "IPv4 packets marked 0x10 are not delivered locally");
    IN_NETNS(both, TPROXY_V4, TPROXY_WORKS,
             "replies to transparent sockets are marked 0x10 and delivered locally");
    /* IPv6 packets: the ip table marks none. */
    IN_NETNS(both, TPROXY_TCP6, TPROXY_BROKEN, "no rule marks TCP packets (IPv6)");
    /* The rule only for packets from lo: a real reply comes in on an
     * interface (d0 here), and the check asks as the kernel routes it. */
    const char *dummy =
        "ip link add v1 type veth peer name d0 && ip link set d0 up && ";
    char iif[900];
    snprintf(iif, sizeof iif,
             "%s%s && ip rule add fwmark 0x10 iif lo lookup 77 && "
             "ip route add local 0.0.0.0/0 dev lo table 77",
             dummy, rule);
    IN_NETNS(iif, TPROXY_TCP4, TPROXY_BROKEN,
             "IPv4 packets marked 0x10 arriving on d0 are not delivered locally");
    snprintf(iif, sizeof iif, "%s%s", dummy, both);
    IN_NETNS(iif, TPROXY_TCP4, TPROXY_WORKS, "marked 0x10 and delivered locally");
    /* Replies accepted before they are marked. */
    snprintf(
        iif, sizeof iif,
        "nft 'add table inet t; add chain inet t pre { type filter hook "
        "prerouting priority -150; }; add rule inet t pre ct state "
        "established,related accept; add rule inet t pre socket transparent 1 "
        "meta mark set 0x10' && ip rule add fwmark 0x10 lookup 77 && ip route add "
        "local 0.0.0.0/0 dev lo table 77");
    IN_NETNS(iif, TPROXY_TCP4, TPROXY_BROKEN,
             "TCP packets (IPv4) are not marked: rule 'ct state established,related "
             "accept' in chain inet t pre accepts replies before they are marked");
    /* An nft that never answers: killed after 2 s, not waited for. */
    IN_NETNS("f=$(mktemp) && printf '#!/bin/sh\\nexec sleep 60\\n' >$f && chmod +x $f "
             "&& mount --bind $f /usr/sbin/nft && { ! [ -e /sbin/nft ] || "
             "[ /sbin/nft -ef /usr/sbin/nft ] || mount --bind $f /sbin/nft; }",
             TPROXY_TCP4, TPROXY_UNKNOWN, "nft did not answer in 2 s");
    /* A rule in a nat chain never sees a reply. */
    IN_NETNS(
        "nft 'add table ip n; add chain ip n c { type nat hook prerouting priority "
        "-100; }; add rule ip n c socket transparent 1 meta mark set 0x10' && ip rule "
        "add fwmark 0x10 lookup 77 && ip route add local 0.0.0.0/0 dev lo table 77",
        TPROXY_TCP4, TPROXY_BROKEN, "no rule marks TCP packets (IPv4)");
}
END_TEST

START_TEST(test_route_local)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (geteuid() != 0 || unshare(CLONE_NEWNET) < 0)
            _exit(77);
        if (system(
                "PATH=/usr/sbin:/sbin:$PATH; ip link set lo up && ip rule add fwmark "
                "0x5 lookup 77 && ip route add local 0.0.0.0/0 dev lo table 77 && ip -6 "
                "rule add fwmark 0x5/0x5 lookup 77 && ip -6 route add local ::/0 dev lo "
                "table 77") != 0)
            _exit(3);
        int d = 0;
        char name[IF_NAMESIZE];
        if (system(
                "PATH=/usr/sbin:/sbin:$PATH; ip link add v1 type veth peer name d0 && ip link "
                "set d0 up && ip rule add fwmark 0x6 iif lo lookup 77") != 0 ||
            (d = tproxy_reply_iif(AF_INET, NULL, name)) <= 0 ||
            strcmp(name, "d0") != 0)
            _exit(4);
        /* Output lookups (iif 0), and input ones as for a reply on d0: the
         * `iif lo` rule holds for the first kind only. */
        _exit(tproxy_route_local(AF_INET, 5, 0, NULL) == 1 &&
                      tproxy_route_local(AF_INET, 4, 0, NULL) == 0 &&
                      tproxy_route_local(AF_INET6, 0xd, 0, NULL) == 1 &&
                      tproxy_route_local(AF_INET6, 0x8, 0, NULL) == 0 &&
                      tproxy_route_local(AF_INET, 5, d, NULL) == 1 &&
                      tproxy_route_local(AF_INET, 4, d, NULL) == 0 &&
                      tproxy_route_local(AF_INET6, 0xd, d, NULL) == 1 &&
                      tproxy_route_local(AF_INET, 6, 0, NULL) == 1 &&
                      tproxy_route_local(AF_INET, 6, d, NULL) == 0
                  ? 0
                  : 1);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st));
    ck_assert_msg(WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 77, "exit %d",
                  WEXITSTATUS(st));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tproxy_check");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_need);
    tcase_add_test(tc, test_check_in_netns);
    tcase_add_test(tc, test_route_local);
    suite_add_tcase(s, tc);
    return check_run(s);
}
