#include "berth/listen_fds.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A decimal number, nothing else (no sign, no spaces, no overflow past
 * max). */
static bool parse_num(const char *s, unsigned long max, unsigned long *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    unsigned long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (max - (unsigned long)(*s - '0')) / 10)
            return false;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    *out = v;
    return true;
}

struct listen_fds *listen_fds_parse(const char *pid, const char *fds,
                                    const char *names, pid_t self, char *err,
                                    size_t errlen)
{
    struct listen_fds *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    unsigned long p, n;
    if (!pid)
        return t;
    if (!parse_num(pid, (unsigned long)INT32_MAX, &p) || p == 0) {
        snprintf(err, errlen, "LISTEN_PID=%.64s: not a process id", pid);
        goto fail;
    }
    /* Meant for another process (a parent that did not unset them). */
    if ((pid_t)p != self || !fds)
        return t;
    if (!parse_num(fds, LISTEN_FDS_MAX, &n)) {
        snprintf(err, errlen, "LISTEN_FDS=%.64s: not a number of fds up to %d", fds,
                 LISTEN_FDS_MAX);
        goto fail;
    }
    if (n == 0)
        return t;
    if (!(t->fds = calloc(n, sizeof *t->fds))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    t->n = n;
    for (size_t i = 0; i < n; i++)
        t->fds[i].fd = LISTEN_FDS_START + (int)i;
    for (size_t i = 0; names && i < n; i++) {
        const char *end = strchr(names, ':');
        size_t len = end ? (size_t)(end - names) : strlen(names);
        if (len >= LISTEN_FD_NAME_MAX) {
            snprintf(err, errlen, "LISTEN_FDNAMES: name %zu longer than %d bytes",
                     i + 1, LISTEN_FD_NAME_MAX - 1);
            goto fail;
        }
        memcpy(t->fds[i].name, names, len);
        names = end ? end + 1 : NULL;
    }
    return t;
fail:
    /* Nothing is ours yet: the fds stay open, as the caller found them. */
    t->n = 0;
    listen_fds_free(t);
    return NULL;
}

void listen_fds_free(struct listen_fds *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        if (!t->fds[i].taken)
            close(t->fds[i].fd);
    free(t->fds);
    free(t);
}

const char *listen_fd_describe(const struct listen_fd *f, char *buf, size_t len)
{
    char a[ADDR_STRLEN] = "?";
    if (f->addr.len)
        addr_format(&f->addr, a, sizeof a);
    int k = snprintf(buf, len, "fd %d%s%s%s %s/%s", f->fd, *f->name ? " (" : "",
                     f->name, *f->name ? ")" : "", a,
                     f->protocol == IPPROTO_SCTP ? "sctp"
                     : f->type == SOCK_DGRAM     ? "udp"
                                                 : "tcp");
    if (k < 0 && len)
        *buf = '\0';
    return buf;
}

/* One fd read back; -1 with why in err. */
static int inspect_one(struct listen_fd *f, char *err, size_t errlen)
{
    char me[LISTEN_FD_NAME_MAX + ADDR_STRLEN + 32];
    snprintf(me, sizeof me, "fd %d%s%s%s", f->fd, *f->name ? " (" : "", f->name,
             *f->name ? ")" : "");
    int flags = fcntl(f->fd, F_GETFD);
    if (flags < 0 || fcntl(f->fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
        snprintf(err, errlen, "LISTEN_FDS: %s: %s", me, strerror(errno));
        return -1;
    }
    int type = 0, proto = 0, acc = 0;
    socklen_t l1 = sizeof type, l2 = sizeof proto, l3 = sizeof acc;
    f->addr.len = sizeof f->addr.ss;
    if (getsockopt(f->fd, SOL_SOCKET, SO_TYPE, &type, &l1) < 0 ||
        getsockopt(f->fd, SOL_SOCKET, SO_PROTOCOL, &proto, &l2) < 0 ||
        getsockopt(f->fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l3) < 0 ||
        getsockname(f->fd, (struct sockaddr *)&f->addr.ss, &f->addr.len) < 0) {
        snprintf(err, errlen, "LISTEN_FDS: %s: %s", me,
                 errno == ENOTSOCK ? "not a socket" : strerror(errno));
        f->addr.len = 0;
        return -1;
    }
    int family = f->addr.ss.ss_family;
    if (family != AF_INET && family != AF_INET6) {
        snprintf(err, errlen, "LISTEN_FDS: %s: not an IPv4 or IPv6 socket (family %d)",
                 me, family);
        f->addr.len = 0;
        return -1;
    }
    if (!(type == SOCK_STREAM && (proto == IPPROTO_TCP || proto == IPPROTO_SCTP)) &&
        !(type == SOCK_DGRAM && proto == IPPROTO_UDP)) {
        snprintf(err, errlen,
                 "LISTEN_FDS: %s: neither TCP, UDP nor SCTP (type %d, protocol %d)",
                 me, type, proto);
        f->addr.len = 0;
        return -1;
    }
    f->type = type;
    f->protocol = proto;
    char d[sizeof me + ADDR_STRLEN + 8];
    listen_fd_describe(f, d, sizeof d);
    if (type == SOCK_STREAM && !acc) {
        snprintf(err, errlen, "LISTEN_FDS: %s: not listening", d);
        return -1;
    }
    if (addr_port(&f->addr) == 0) {
        snprintf(err, errlen, "LISTEN_FDS: %s: not bound", d);
        return -1;
    }
    int v6only = 1;
    socklen_t l4 = sizeof v6only;
    if (family == AF_INET6 && addr_is_any(&f->addr) &&
        (getsockopt(f->fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &l4) < 0 || !v6only)) {
        snprintf(
            err, errlen,
            "LISTEN_FDS: %s: takes IPv4 too (IPV6_V6ONLY off); berth listens on [::] "
            "and 0.0.0.0 apart: set BindIPv6Only=ipv6-only",
            d);
        return -1;
    }
    return 0;
}

int listen_fds_inspect(struct listen_fds *t, char *err, size_t errlen)
{
    for (size_t i = 0; i < t->n; i++)
        if (inspect_one(&t->fds[i], err, errlen) < 0)
            return -1;
    return 0;
}

struct listen_fds *listen_fds_from_env(char *err, size_t errlen)
{
    struct listen_fds *t = listen_fds_parse(getenv("LISTEN_PID"), getenv("LISTEN_FDS"),
                                            getenv("LISTEN_FDNAMES"), getpid(), err,
                                            errlen);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (t && listen_fds_inspect(t, err, errlen) < 0) {
        listen_fds_free(t);
        return NULL;
    }
    return t;
}

int listen_fds_take(struct listen_fds *t, const struct addr *a, int protocol)
{
    for (size_t i = 0; t && i < t->n; i++) {
        struct listen_fd *f = &t->fds[i];
        if (!f->taken && f->protocol == protocol && addr_equal(&f->addr, a)) {
            f->taken = true;
            return f->fd;
        }
    }
    return -1;
}

const struct listen_fd *listen_fds_untaken(const struct listen_fds *t)
{
    for (size_t i = 0; t && i < t->n; i++)
        if (!t->fds[i].taken)
            return &t->fds[i];
    return NULL;
}
