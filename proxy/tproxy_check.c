#include "berth/tproxy_check.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "berth/sockaddr.h"

extern char **environ;

/* A kube-proxy host's ruleset runs to a few MiB; more is not a ruleset. */
#define TOOL_OUTPUT_MAX (64u << 20)

unsigned tproxy_need(const struct mapping *m)
{
    unsigned fam = m->listen.ss.ss_family == AF_INET6 ? TPROXY_V6 : TPROXY_V4;
    return fam & (m->proto == PROTO_TCP ? TPROXY_TCP : TPROXY_UDP);
}

/* ---- the kernel's routing decision ---- */

int tproxy_route_local(int family, uint32_t mark)
{
    struct {
        struct nlmsghdr nh;
        struct rtmsg rt;
        char attrs[64];
    } req;
    memset(&req, 0, sizeof req);
    static const uint8_t dst4[4] = {192, 0, 2, 1}; /* TEST-NET-1 */
    static const uint8_t dst6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
    size_t dlen = family == AF_INET6 ? 16 : 4;
    req.nh.nlmsg_len = NLMSG_LENGTH(sizeof req.rt);
    req.nh.nlmsg_type = RTM_GETROUTE;
    req.nh.nlmsg_flags = NLM_F_REQUEST;
    req.nh.nlmsg_seq = 1;
    req.rt.rtm_family = (unsigned char)family;
    req.rt.rtm_dst_len = (unsigned char)(dlen * 8);
    const struct {
        unsigned short type;
        const void *data;
        size_t len;
    } attrs[] = {{RTA_DST, family == AF_INET6 ? dst6 : dst4, dlen},
                 {RTA_MARK, &mark, 4}};
    for (size_t i = 0; i < 2; i++) {
        struct rtattr *a = (struct rtattr *)((char *)&req +
                                             NLMSG_ALIGN(req.nh.nlmsg_len));
        a->rta_type = attrs[i].type;
        a->rta_len = (unsigned short)RTA_LENGTH(attrs[i].len);
        memcpy(RTA_DATA(a), attrs[i].data, attrs[i].len);
        req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(a->rta_len);
    }
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 2};
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int result = -1;
    union {
        struct nlmsghdr nh;
        char buf[8192];
    } ans;
    if (sendto(fd, &req, req.nh.nlmsg_len, 0, (struct sockaddr *)&kernel,
               sizeof kernel) < 0)
        goto out;
    for (;;) {
        ssize_t n = recv(fd, &ans, sizeof ans, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto out;
        int left = (int)n;
        for (struct nlmsghdr *h = &ans.nh; NLMSG_OK(h, left);
             h = NLMSG_NEXT(h, left)) {
            if (h->nlmsg_seq != 1)
                continue;
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);
                /* No route at all (ENETUNREACH) is an answer: not local. */
                result = h->nlmsg_len >= NLMSG_LENGTH(sizeof *e) &&
                                 e->error != -EPERM && e->error != -EAFNOSUPPORT
                             ? 0
                             : -1;
                goto out;
            }
            if (h->nlmsg_type == RTM_NEWROUTE &&
                h->nlmsg_len >= NLMSG_LENGTH(sizeof req.rt)) {
                const struct rtmsg *rt = NLMSG_DATA(h);
                result = rt->rtm_type == RTN_LOCAL;
                goto out;
            }
        }
    }
out:
    close(fd);
    return result;
}

/* ---- the check ---- */

/* Runs the first of paths that exists, args after it; its standard output
 * into *out (NUL-terminated, free()d by the caller). 1 read, 0 no such
 * tool, -1 it failed (exit status, too much output). */
static int tool_run(const char *const paths[2], const char *args, char **out)
{
    const char *path = NULL;
    for (int i = 0; i < 2 && !path; i++)
        if (access(paths[i], X_OK) == 0)
            path = paths[i];
    if (!path)
        return 0;
    char copy[64], *argv[8] = {(char *)path}, *save = NULL;
    snprintf(copy, sizeof copy, "%s", args);
    for (int i = 1; i < 7 && (argv[i] = strtok_r(i == 1 ? copy : NULL, " ", &save));
         i++)
        ;
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, pipe;
    sigemptyset(&none);
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &pipe);
    pid_t pid;
    int err = posix_spawn(&pid, path, &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(pfd[1]);
    if (err) {
        close(pfd[0]);
        return -1;
    }
    size_t len = 0, cap = 0;
    char *buf = NULL;
    bool ok = true;
    for (;;) {
        if (cap - len < 65536) {
            char *b = cap + 65536 <= TOOL_OUTPUT_MAX ? realloc(buf, cap + 65537)
                                                     : NULL;
            if (!b) {
                ok = false;
                kill(pid, SIGKILL); /* ours, and bounded: stop it */
                break;
            }
            buf = b;
            cap += 65536;
        }
        ssize_t n = read(pfd[0], buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(pfd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) {
            st = -1;
            break;
        }
    if (!ok || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || !buf) {
        free(buf);
        return -1;
    }
    buf[len] = '\0';
    *out = buf;
    return 1;
}

/* Whether the kernel holds a legacy (x_tables) mangle table: reading one
 * that is not there would make it. */
static bool legacy_mangle(bool v6)
{
    FILE *f = fopen(v6 ? "/proc/net/ip6_tables_names" : "/proc/net/ip_tables_names",
                    "r");
    char line[64];
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f))
        found = strcmp(line, "mangle\n") == 0;
    if (f)
        fclose(f);
    return found;
}

/* Reads iptables rules of one family through the first tool that exists:
 * 1 read, 0 none, -1 failed. */
static int ipt_read(const char *const tools[2][2], unsigned fam,
                    struct tproxy_marks *marks)
{
    char *text = NULL;
    int r = tool_run(tools[0], "-t mangle", &text);
    if (r == 0)
        r = tool_run(tools[1], "-t mangle", &text);
    if (r == 1)
        tproxy_marks_iptables(text, fam, marks);
    free(text);
    return r;
}

static const char *what(unsigned bits, char *buf, size_t len)
{
    bool tcp = bits & TPROXY_TCP, udp = bits & TPROXY_UDP;
    bool v4 = bits & TPROXY_V4, v6 = bits & TPROXY_V6;
    snprintf(buf, len, "%s%s%s packets (%s%s%s)", tcp ? "TCP" : "",
             tcp && udp ? " and " : "", udp ? "UDP" : "", v4 ? "IPv4" : "",
             v4 && v6 ? " and " : "", v6 ? "IPv6" : "");
    return buf;
}

enum tproxy_result tproxy_check(unsigned need, char *why, size_t len)
{
    static const char *const nft[2] = {"/usr/sbin/nft", "/sbin/nft"};
    static const char *const legacy[2][2][2] = {
        {{"/usr/sbin/iptables-legacy-save", "/sbin/iptables-legacy-save"},
         {"/usr/sbin/iptables-save", "/sbin/iptables-save"}},
        {{"/usr/sbin/ip6tables-legacy-save", "/sbin/ip6tables-legacy-save"},
         {"/usr/sbin/ip6tables-save", "/sbin/ip6tables-save"}}};
    static const char *const nftsave[2][2][2] = {
        {{"/usr/sbin/iptables-nft-save", "/sbin/iptables-nft-save"},
         {"/usr/sbin/iptables-save", "/sbin/iptables-save"}},
        {{"/usr/sbin/ip6tables-nft-save", "/sbin/ip6tables-nft-save"},
         {"/usr/sbin/ip6tables-save", "/sbin/ip6tables-save"}}};
    char buf[96];
    need &= TPROXY_ALL;
    snprintf(why, len, "no transparent mapping");
    if (!need)
        return TPROXY_WORKS;
    for (int v6 = 0; v6 < 2; v6++) {
        if (!(need & (v6 ? TPROXY_V6 : TPROXY_V4)))
            continue;
        int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        int err = fd < 0 || sock_set_transparent(fd, v6 ? AF_INET6 : AF_INET) < 0
                      ? errno
                      : 0;
        if (fd >= 0)
            close(fd);
        if (err == EPERM || err == EACCES) {
            snprintf(why, len,
                     "no CAP_NET_ADMIN: %s refused (run berth as root or with "
                     "CAP_NET_ADMIN)",
                     v6 ? "IPV6_TRANSPARENT" : "IP_TRANSPARENT");
            return TPROXY_BROKEN;
        }
        if (err) {
            snprintf(why, len, "%s on a scratch socket failed: %s",
                     v6 ? "IPV6_TRANSPARENT" : "IP_TRANSPARENT", strerror(err));
            return TPROXY_BROKEN;
        }
    }

    struct tproxy_marks marks = {.n = 0};
    char *text = NULL;
    int rn = tool_run(nft, "-j list ruleset", &text);
    if (rn == 1 && tproxy_marks_nft(text, &marks) < 0)
        rn = -1;
    free(text);
    const char *unread = rn == 0  ? "nft not found in /usr/sbin or /sbin"
                         : rn < 0 ? "`nft -j list ruleset` failed"
                                  : NULL;
    for (int v6 = 0; v6 < 2; v6++) {
        unsigned fam = v6 ? TPROXY_V6 : TPROXY_V4;
        if (!(need & fam))
            continue;
        /* Legacy rules are invisible to nft; iptables-nft's show in it
         * without their values. */
        if (legacy_mangle(v6) && ipt_read(legacy[v6], fam, &marks) != 1 && !unread)
            unread =
                "a legacy iptables mangle table is there but iptables-legacy-save "
                "cannot read it";
        if ((rn != 1 || marks.xt) && ipt_read(nftsave[v6], fam, &marks) != 1 &&
            !unread)
            unread =
                "iptables-nft rules are there but iptables-nft-save cannot read them";
    }

    unsigned marked = 0;
    for (size_t i = 0; i < marks.n; i++)
        marked |= marks.covers[i];
    if (need & ~marked) {
        if (unread) {
            snprintf(why, len,
                     "cannot see the packet-marking rules (%s): assuming the "
                     "host is set up for transparent mode (`berth-tproxy up`)",
                     unread);
            return TPROXY_UNKNOWN;
        }
        snprintf(why, len,
                 "no rule marks %s of transparent sockets (nft `socket transparent "
                 "1 ... meta mark set`, or iptables `-m socket --transparent -j "
                 "MARK`): run `berth-tproxy up`",
                 what(need & ~marked, buf, sizeof buf));
        return TPROXY_BROKEN;
    }
    uint32_t used[4];
    size_t nused = 0;
    for (unsigned bit = 1; bit <= TPROXY_UDP6; bit <<= 1) {
        if (!(need & bit))
            continue;
        bool v6 = bit & TPROXY_V6, local = false, asked = false;
        uint32_t first = 0;
        size_t i;
        for (i = 0; i < marks.n && !local; i++) {
            if (!(marks.covers[i] & bit))
                continue;
            int r = tproxy_route_local(v6 ? AF_INET6 : AF_INET, marks.mark[i]);
            if (r < 0) {
                snprintf(why, len,
                         "cannot ask the kernel where marked packets go "
                         "(RTM_GETROUTE failed): assuming they are delivered locally");
                return TPROXY_UNKNOWN;
            }
            first = asked ? first : marks.mark[i];
            asked = true;
            local = r == 1;
        }
        if (local) {
            size_t u = 0;
            while (u < nused && used[u] != marks.mark[i - 1])
                u++;
            if (u == nused)
                used[nused++] = marks.mark[i - 1];
        } else {
            snprintf(why, len,
                     "%s packets marked 0x%x are not delivered locally: no `ip%s "
                     "rule fwmark 0x%x lookup T` with `local %s dev lo` in table T: "
                     "run `berth-tproxy up`",
                     v6 ? "IPv6" : "IPv4", first, v6 ? " -6" : "", first,
                     v6 ? "::/0" : "0.0.0.0/0");
            return TPROXY_BROKEN;
        }
    }
    size_t n = (size_t)snprintf(why, len, "replies to transparent sockets are marked");
    for (size_t u = 0; u < nused && n < len; u++)
        n += (size_t)snprintf(why + n, len - n, "%s 0x%x", u ? " or" : "", used[u]);
    if (n < len)
        snprintf(why + n, len - n, " and delivered locally");
    return TPROXY_WORKS;
}
