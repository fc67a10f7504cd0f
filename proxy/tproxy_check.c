#include "berth/tproxy_check.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "berth/clock.h"
#include "berth/sockaddr.h"
#include "berth/tproxy_ipt.h"

extern char **environ;

/* A kube-proxy host's ruleset runs to a few MiB; more is not a ruleset. */
#define TOOL_OUTPUT_MAX (64u << 20)
/* All the tools of one check together: a hung nft must not hold the loop
 * (nor, in docker-proxy mode, dockerd waiting on the fd 3 report). */
#define TOOL_DEADLINE_MS 2000

unsigned tproxy_need(const struct mapping *m)
{
    /* The socket towards the target takes the client's address: the
     * target's family. A name resolves to IPv4 first (relay_resolve), so
     * IPv4; an IPv6-only container behind a name goes unchecked. */
    unsigned fam = !m->target_name[0] && m->target.ss.ss_family == AF_INET6
                       ? TPROXY_V6
                       : TPROXY_V4;
    return fam & (m->proto == PROTO_TCP ? TPROXY_TCP : TPROXY_UDP);
}

const char *tproxy_what(unsigned bits, char *buf, size_t len)
{
    bool tcp = bits & TPROXY_TCP, udp = bits & TPROXY_UDP;
    bool v4 = bits & TPROXY_V4, v6 = bits & TPROXY_V6;
    snprintf(buf, len, "%s%s%s packets (%s%s%s)", tcp ? "TCP" : "",
             tcp && udp ? " and " : "", udp ? "UDP" : "", v4 ? "IPv4" : "",
             v4 && v6 ? " and " : "", v6 ? "IPv6" : "");
    return buf;
}

/* ---- the kernel's routing decision ---- */

/* One RTM_GETROUTE (nothing is sent): the route's type (RTN_*), its
 * output interface in *oif (when not NULL); -errno when refused, -ETIME
 * when there is no answer. src, iif (an input lookup) and mark optional. */
static int rt_get(const struct addr *dst, const struct addr *src, int iif,
                  const uint32_t *mark, int *oif)
{
    struct {
        struct nlmsghdr nh;
        struct rtmsg rt;
        char attrs[128];
    } req;
    memset(&req, 0, sizeof req);
    int family = dst->ss.ss_family;
    size_t alen = family == AF_INET6 ? 16 : 4;
    const void *d =
        family == AF_INET6
            ? (const void *)&((const struct sockaddr_in6 *)&dst->ss)->sin6_addr
            : (const void *)&((const struct sockaddr_in *)&dst->ss)->sin_addr;
    const void *sp =
        !src ? NULL
        : family == AF_INET6
            ? (const void *)&((const struct sockaddr_in6 *)&src->ss)->sin6_addr
            : (const void *)&((const struct sockaddr_in *)&src->ss)->sin_addr;
    uint32_t ifi = (uint32_t)iif;
    req.nh.nlmsg_len = NLMSG_LENGTH(sizeof req.rt);
    req.nh.nlmsg_type = RTM_GETROUTE;
    req.nh.nlmsg_flags = NLM_F_REQUEST;
    req.nh.nlmsg_seq = 1;
    req.rt.rtm_family = (unsigned char)family;
    req.rt.rtm_dst_len = (unsigned char)(alen * 8);
    req.rt.rtm_src_len = (unsigned char)(src ? alen * 8 : 0);
    const struct {
        unsigned short type;
        const void *data;
        size_t len;
    } attrs[] = {{RTA_DST, d, alen},
                 {RTA_SRC, sp, alen},
                 {RTA_IIF, iif ? &ifi : NULL, 4},
                 {RTA_MARK, mark, 4}};
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        if (!attrs[i].data)
            continue;
        struct rtattr *a = (struct rtattr *)((char *)&req +
                                             NLMSG_ALIGN(req.nh.nlmsg_len));
        a->rta_type = attrs[i].type;
        a->rta_len = (unsigned short)RTA_LENGTH(attrs[i].len);
        memcpy(RTA_DATA(a), attrs[i].data, attrs[i].len);
        req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(a->rta_len);
    }
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -errno;
    struct timeval tv = {.tv_sec = 2};
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int result = -ETIME;
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
        unsigned int left = (unsigned int)n;
        for (struct nlmsghdr *h = &ans.nh; NLMSG_OK(h, left);
             h = NLMSG_NEXT(h, left)) {
            if (h->nlmsg_seq != 1)
                continue;
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);
                result = h->nlmsg_len >= NLMSG_LENGTH(sizeof *e) && e->error < 0
                             ? e->error
                             : -EPROTO;
                goto out;
            }
            if (h->nlmsg_type == RTM_NEWROUTE &&
                h->nlmsg_len >= NLMSG_LENGTH(sizeof req.rt)) {
                const struct rtmsg *rt = NLMSG_DATA(h);
                int alen_left = (int)RTM_PAYLOAD(h);
                for (const struct rtattr *a = RTM_RTA(rt); oif && RTA_OK(a, alen_left);
                     a = RTA_NEXT(a, alen_left))
                    if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) >= 4)
                        memcpy(oif, RTA_DATA(a), sizeof *oif);
                result = rt->rtm_type;
                goto out;
            }
        }
    }
out:
    close(fd);
    return result;
}

static void doc_addr(int family, bool dst, struct addr *a)
{
    /* TEST-NET-1 and TEST-NET-2, 2001:db8::1 and ::2: never local. */
    addr_from_ip(a,
                 family == AF_INET6 ? (dst ? "2001:db8::1" : "2001:db8::2")
                 : dst              ? "192.0.2.1"
                                    : "198.51.100.1",
                 0);
}

int tproxy_route_local(int family, uint32_t mark, int iif, const struct addr *src)
{
    struct addr dst, doc;
    doc_addr(family, true, &dst);
    if (iif && (!src || src->ss.ss_family != family))
        doc_addr(family, false, &doc), src = &doc;
    int r = rt_get(&dst, iif ? src : NULL, iif, &mark, NULL);
    if (r >= 0)
        return r == RTN_LOCAL;
    /* The input lookup's own checks refused the made-up packet (source
     * validation: rp_filter; the interface vanished): ask as output. */
    if (iif && (r == -EXDEV || r == -EINVAL || r == -ENODEV || r == -ENETDOWN))
        return tproxy_route_local(family, mark, 0, NULL);
    /* No route at all (ENETUNREACH, EHOSTUNREACH) is an answer: not local. */
    return r == -EPERM || r == -EAFNOSUPPORT || r == -ETIME || r == -EPROTO ||
                   r == -ENOBUFS || r == -EAGAIN
               ? -1
               : 0;
}

static bool if_usable(int fd, const char *name)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    return ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP) &&
           !(ifr.ifr_flags & IFF_LOOPBACK);
}

int tproxy_reply_iif(int family, const struct addr *target, char *name)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int oif = 0, found = 0;
    /* The target's replies come in where packets to it go out. */
    if (target && target->ss.ss_family == family &&
        rt_get(target, NULL, 0, NULL, &oif) >= 0 && oif > 0 &&
        if_indextoname((unsigned)oif, name) && if_usable(fd, name))
        found = oif;
    struct if_nameindex *all = found ? NULL : if_nameindex();
    for (struct if_nameindex *i = all; i && i->if_index && !found; i++)
        if (if_usable(fd, i->if_name)) {
            snprintf(name, IF_NAMESIZE, "%s", i->if_name);
            found = (int)i->if_index;
        }
    if (all)
        if_freenameindex(all);
    close(fd);
    return found;
}

/* ---- the check ---- */

/* Runs the first of paths that exists, args after it; its standard output
 * into *out (NUL-terminated, free()d by the caller). 1 read, 0 no such
 * tool, -1 it failed (exit status, too much output), -2 no answer by
 * deadline (clock_ms): then killed. *used: the path run. */
static int tool_run(const char *const paths[2], const char *args, uint64_t deadline,
                    char **out, const char **used)
{
    const char *path = NULL;
    for (int i = 0; i < 2 && !path; i++)
        if (access(paths[i], X_OK) == 0)
            path = paths[i];
    if (used)
        *used = path;
    if (!path)
        return 0;
    if (clock_ms() >= deadline)
        return -2;
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
    int fail = 0;
    for (;;) {
        if (cap - len < 65536) {
            char *b = cap + 65536 <= TOOL_OUTPUT_MAX ? realloc(buf, cap + 65537)
                                                     : NULL;
            if (!b) {
                fail = -1;
                break;
            }
            buf = b;
            cap += 65536;
        }
        uint64_t now = clock_ms();
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        int ready = now < deadline ? poll(&p, 1, (int)(deadline - now)) : 0;
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready == 0) {
            fail = -2;
            break;
        }
        ssize_t n = ready < 0 ? -1 : read(pfd[0], buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    if (fail)
        kill(pid, SIGKILL); /* ours: stop it, then reap it */
    close(pfd[0]);
    int st = -1;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) {
            st = -1; /* ECHILD: SIGCHLD ignored, see berth.c */
            break;
        }
    if (fail || st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || !buf) {
        free(buf);
        return fail ? fail : -1;
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
 * 1 read, 0 none, -1 failed, -2 no answer in time (*used names it). The
 * plain tool (tools[1]) only when legacy is false or its --version says
 * "(legacy)": iptables-save of the nft backend cannot read legacy rules. */
static int ipt_read(const char *const tools[2][2], unsigned fam, bool legacy,
                    uint64_t deadline, struct tproxy_marks *marks, const char **used)
{
    char *text = NULL;
    int r = tool_run(tools[0], "-t mangle", deadline, &text, used);
    bool plain = r == 0;
    if (plain && legacy) {
        r = tool_run(tools[1], "--version", deadline, &text, used);
        plain = r == 1 && strstr(text, "(legacy)");
        free(text);
        text = NULL;
        r = r < 0 ? r : 0;
    }
    if (plain)
        r = tool_run(tools[1], "-t mangle", deadline, &text, used);
    if (r == 1)
        tproxy_marks_iptables(text, fam, marks);
    free(text);
    return r;
}

static void set_bits(struct tproxy_report *rep, unsigned bits, enum tproxy_result r,
                     const char *why)
{
    for (unsigned i = 0; i < 4; i++)
        if (bits & 1u << i) {
            rep->result[i] = r;
            snprintf(rep->why[i], sizeof rep->why[i], "%s", why);
        }
}

/* Which rules cannot be read, or NULL: the marks of those that can. */
static const char *read_marks(unsigned need, struct tproxy_marks *marks, char *buf,
                              size_t len)
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
    uint64_t deadline = clock_ms() + TOOL_DEADLINE_MS;
    const char *used = NULL, *unread = NULL;
    char *text = NULL;
    int rn = tool_run(nft, "-j list ruleset", deadline, &text, &used);
    if (rn == 1 && tproxy_marks_nft(text, marks) < 0)
        rn = -1;
    free(text);
    if (rn == -2) {
        snprintf(buf, len, "nft did not answer in %d s", TOOL_DEADLINE_MS / 1000);
        return buf;
    }
    unread = rn == 0  ? "nft not found in /usr/sbin or /sbin"
             : rn < 0 ? "`nft -j list ruleset` failed"
                      : NULL;
    for (int v6 = 0; v6 < 2; v6++) {
        unsigned fam = v6 ? TPROXY_V6 : TPROXY_V4;
        if (!(need & fam))
            continue;
        /* Legacy rules are invisible to nft; iptables-nft's show in it
         * without their values. */
        int r = legacy_mangle(v6)
                    ? ipt_read(legacy[v6], fam, true, deadline, marks, &used)
                    : 1;
        if (r != 1 && !unread)
            unread = "a legacy iptables mangle table is there but "
                     "iptables-legacy-save cannot read it";
        if (r != -2 && (rn != 1 || marks->xt) &&
            (r = ipt_read(nftsave[v6], fam, false, deadline, marks, &used)) != 1 &&
            !unread)
            unread = "iptables-nft rules are there but iptables-nft-save cannot read "
                     "them";
        if (r == -2) {
            const char *base = used ? strrchr(used, '/') : NULL;
            snprintf(buf, len, "%s did not answer in %d s",
                     base ? base + 1 : "iptables", TOOL_DEADLINE_MS / 1000);
            return buf;
        }
    }
    return unread;
}

/* Whether packets of kind bit (one TPROXY_* bit) marked by marks reach
 * berth; *mark the mark that works. */
static void check_route(const struct tproxy_marks *marks, unsigned bit, int iif,
                        const char *ifname, const struct addr *target,
                        struct tproxy_report *rep, unsigned i)
{
    bool v6 = bit & TPROXY_V6, asked = false;
    uint32_t first = 0;
    for (size_t k = 0; k < marks->n; k++) {
        if (!(marks->covers[k] & bit))
            continue;
        int r = tproxy_route_local(v6 ? AF_INET6 : AF_INET, marks->mark[k], iif,
                                   target);
        if (r < 0) {
            set_bits(rep, bit, TPROXY_UNKNOWN,
                     "cannot ask the kernel where marked packets go (RTM_GETROUTE "
                     "failed): assuming they are delivered locally");
            return;
        }
        first = asked ? first : marks->mark[k];
        asked = true;
        if (r == 1) {
            rep->mark[i] = marks->mark[k];
            snprintf(rep->why[i], sizeof rep->why[i],
                     "replies to transparent sockets are marked 0x%x and delivered "
                     "locally",
                     marks->mark[k]);
            return;
        }
    }
    char why[TPROXY_WHY_MAX];
    snprintf(why, sizeof why,
             "%s packets marked 0x%x%s%s are not delivered locally: no `ip%s rule "
             "fwmark 0x%x lookup T` with `local %s dev lo` in table T: run "
             "`berth-tproxy up`",
             v6 ? "IPv6" : "IPv4", first, iif ? " arriving on " : "",
             iif ? ifname : "", v6 ? " -6" : "", first, v6 ? "::/0" : "0.0.0.0/0");
    set_bits(rep, bit, TPROXY_BROKEN, why);
}

void tproxy_check_each(unsigned need, const struct addr *const targets[2],
                       struct tproxy_report *rep)
{
    memset(rep, 0, sizeof *rep);
    need &= TPROXY_ALL;
    for (int v6 = 0; v6 < 2; v6++) {
        unsigned fam = v6 ? TPROXY_V6 : TPROXY_V4;
        if (!(need & fam))
            continue;
        int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        int err = fd < 0 || sock_set_transparent(fd, v6 ? AF_INET6 : AF_INET) < 0
                      ? errno
                      : 0;
        if (fd >= 0)
            close(fd);
        char why[TPROXY_WHY_MAX];
        const char *opt = v6 ? "IPV6_TRANSPARENT" : "IP_TRANSPARENT";
        if (err == EPERM || err == EACCES)
            snprintf(why, sizeof why,
                     "no CAP_NET_ADMIN: %s refused (run berth as root or with "
                     "CAP_NET_ADMIN)",
                     opt);
        else if (err)
            snprintf(why, sizeof why, "%s on a scratch socket failed: %s", opt,
                     strerror(err));
        if (err) {
            set_bits(rep, need & fam, TPROXY_BROKEN, why);
            need &= ~fam;
        }
    }
    if (!need)
        return;
    struct tproxy_marks marks;
    memset(&marks, 0, sizeof marks);
    char ubuf[96], what[96], why[TPROXY_WHY_MAX];
    const char *unread = read_marks(need, &marks, ubuf, sizeof ubuf);
    int iif[2] = {-1, -1};
    char ifname[2][IF_NAMESIZE] = {"", ""};
    unsigned marked = 0, plain = need; /* plain: unmarked without a shadow */
    for (size_t k = 0; k < marks.n; k++)
        marked |= marks.covers[k];
    for (unsigned i = 0; i < 4; i++)
        if (marks.shadow[i][0])
            plain &= ~(1u << i);
    for (unsigned i = 0; i < 4; i++) {
        unsigned bit = 1u << i;
        bool v6 = bit & TPROXY_V6;
        if (!(need & bit))
            continue;
        if (marked & bit) {
            if (iif[v6] < 0) /* 0: no interface up but lo: an output lookup */
                iif[v6] = tproxy_reply_iif(v6 ? AF_INET6 : AF_INET,
                                           targets ? targets[v6] : NULL, ifname[v6]);
            check_route(&marks, bit, iif[v6], ifname[v6], targets ? targets[v6] : NULL,
                        rep, i);
        } else if (unread) {
            snprintf(why, sizeof why,
                     "cannot see the packet-marking rules (%s): assuming the host is "
                     "set up for transparent mode (`berth-tproxy up`)",
                     unread);
            set_bits(rep, bit, TPROXY_UNKNOWN, why);
        } else if (marks.shadow[i][0]) {
            snprintf(why, sizeof why, "%s are not marked: %.200s",
                     tproxy_what(bit, what, sizeof what), marks.shadow[i]);
            set_bits(rep, bit, TPROXY_BROKEN, why);
        } else { /* every kind unmarked named: one reason, one log line */
            snprintf(why, sizeof why,
                     "no rule marks %s of transparent sockets (nft `socket "
                     "transparent 1 ... meta mark set`, or iptables `-m socket "
                     "--transparent -j MARK`): run `berth-tproxy up`",
                     tproxy_what(plain & ~marked, what, sizeof what));
            set_bits(rep, bit, TPROXY_BROKEN, why);
        }
    }
}

enum tproxy_result tproxy_check(unsigned need, char *why, size_t len)
{
    struct tproxy_report rep;
    tproxy_check_each(need, NULL, &rep);
    snprintf(why, len, "no transparent mapping");
    need &= TPROXY_ALL;
    /* The worst kind's reason: broken, then unknown. */
    for (unsigned i = 0; i < 4; i++)
        if ((need & 1u << i) && rep.result[i] == TPROXY_BROKEN) {
            snprintf(why, len, "%s", rep.why[i]);
            return TPROXY_BROKEN;
        }
    for (unsigned i = 0; i < 4; i++)
        if ((need & 1u << i) && rep.result[i] == TPROXY_UNKNOWN) {
            snprintf(why, len, "%s", rep.why[i]);
            return TPROXY_UNKNOWN;
        }
    if (!need)
        return TPROXY_WORKS;
    size_t n = (size_t)snprintf(why, len, "replies to transparent sockets are marked");
    for (unsigned i = 0, u = 0; i < 4 && n < len; i++) {
        bool seen = false;
        for (unsigned j = 0; j < i; j++)
            seen = seen || ((need & 1u << j) && rep.mark[j] == rep.mark[i]);
        if ((need & 1u << i) && !seen)
            n += (size_t)snprintf(why + n, len - n, "%s 0x%x", u++ ? " or" : "",
                                  rep.mark[i]);
    }
    if (n < len)
        snprintf(why + n, len - n, " and delivered locally");
    return TPROXY_WORKS;
}
