#include "berth/sockaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "berth/hash.h"

int addr_from_ip(struct addr *a, const char *ip, uint16_t port)
{
    memset(a, 0, sizeof *a);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        a->len = sizeof *s4;
        return 0;
    }
    if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        a->len = sizeof *s6;
        return 0;
    }
    errno = EINVAL;
    return -1;
}

static int parse_port_text(const char *p, uint16_t *out)
{
    unsigned v = 0;
    if (!*p)
        return -1;
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || (v = v * 10 + (unsigned)(*p - '0')) > 65535)
            return -1;
    }
    if (v == 0)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

int addr_parse_hostport(struct addr *a, const char *s, uint16_t default_port)
{
    char ip[64];
    const char *port = NULL;
    uint16_t p = default_port;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || (size_t)(end - s - 1) >= sizeof ip)
            goto bad;
        snprintf(ip, sizeof ip, "%.*s", (int)(end - s - 1), s + 1);
        if (end[1] == ':')
            port = end + 2;
        else if (end[1] != '\0')
            goto bad;
        if (addr_from_ip(a, ip, 0) < 0 || a->ss.ss_family != AF_INET6)
            goto bad;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon && strchr(s, ':') != colon) {
            /* Several colons and no brackets: a bare IPv6, no port. */
            if (!default_port || addr_from_ip(a, s, 0) < 0)
                goto bad;
            addr_set_port(a, default_port);
            return 0;
        }
        size_t iplen = colon ? (size_t)(colon - s) : strlen(s);
        if (iplen >= sizeof ip)
            goto bad;
        snprintf(ip, sizeof ip, "%.*s", (int)iplen, s);
        if (addr_from_ip(a, ip, 0) < 0)
            goto bad;
        port = colon ? colon + 1 : NULL;
    }
    if ((!port && !default_port) || (port && parse_port_text(port, &p) < 0))
        goto bad;
    addr_set_port(a, p);
    return 0;
bad:
    errno = EINVAL;
    return -1;
}

uint16_t addr_port(const struct addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    if (a->ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
    return 0;
}

void addr_set_port(struct addr *a, uint16_t port)
{
    if (a->ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&a->ss)->sin_port = htons(port);
    else if (a->ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(port);
}

bool addr_is_any(const struct addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr ==
               htonl(INADDR_ANY);
    if (a->ss.ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(
            &((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
    return false;
}

bool addr_equal(const struct addr *a, const struct addr *b)
{
    if (a->ss.ss_family != b->ss.ss_family)
        return false;
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)&a->ss, *y = (const void *)&b->ss;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)&a->ss, *y = (const void *)&b->ss;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return false;
}

/* Over the bytes that addr_equal compares. */
uint32_t addr_hash(const struct addr *a)
{
    uint32_t h = HASH_INIT;
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)&a->ss;
        h = hash_bytes(h, &x->sin_addr, sizeof x->sin_addr);
        return hash_bytes(h, &x->sin_port, sizeof x->sin_port);
    }
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)&a->ss;
        h = hash_bytes(h, &x->sin6_addr, sizeof x->sin6_addr);
        return hash_bytes(h, &x->sin6_port, sizeof x->sin6_port);
    }
    return h;
}

bool addr_is_loopback(const struct addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr) >> 24) ==
               127;
    return a->ss.ss_family == AF_INET6 &&
           IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
}

void addr_unmap(const struct addr *a, struct addr *out)
{
    const struct sockaddr_in6 *x = (const void *)&a->ss;
    if (a->ss.ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&x->sin6_addr)) {
        *out = *a;
        return;
    }
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = x->sin6_port};
    memcpy(&v4.sin_addr, &x->sin6_addr.s6_addr[12], sizeof v4.sin_addr);
    memset(out, 0, sizeof *out);
    memcpy(&out->ss, &v4, sizeof v4);
    out->len = sizeof v4;
}

bool addr_in_prefix(const struct addr *a, const struct addr *b, unsigned prefix)
{
    const unsigned char *x, *y;
    unsigned bits;
    if (a->ss.ss_family != b->ss.ss_family)
        return false;
    if (a->ss.ss_family == AF_INET) {
        x = (const void *)&((const struct sockaddr_in *)&a->ss)->sin_addr;
        y = (const void *)&((const struct sockaddr_in *)&b->ss)->sin_addr;
        bits = 32;
    } else if (a->ss.ss_family == AF_INET6) {
        x = ((const struct sockaddr_in6 *)&a->ss)->sin6_addr.s6_addr;
        y = ((const struct sockaddr_in6 *)&b->ss)->sin6_addr.s6_addr;
        bits = 128;
    } else {
        return false;
    }
    if (prefix > bits)
        prefix = bits;
    if (memcmp(x, y, prefix / 8) != 0)
        return false;
    unsigned rest = prefix % 8;
    if (!rest)
        return true;
    unsigned mask = (0xffu << (8 - rest)) & 0xffu;
    return ((x[prefix / 8] ^ y[prefix / 8]) & mask) == 0;
}

const char *addr_format_ip(const struct addr *a, char *buf, size_t len)
{
    const void *src = NULL;
    if (a->ss.ss_family == AF_INET)
        src = &((const struct sockaddr_in *)&a->ss)->sin_addr;
    else if (a->ss.ss_family == AF_INET6)
        src = &((const struct sockaddr_in6 *)&a->ss)->sin6_addr;
    if (!src || !inet_ntop(a->ss.ss_family, src, buf, (socklen_t)len))
        snprintf(buf, len, "?");
    return buf;
}

const char *addr_format(const struct addr *a, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    addr_format_ip(a, ip, sizeof ip);
    if (a->ss.ss_family == AF_INET6)
        snprintf(buf, len, "[%s]:%u", ip, addr_port(a));
    else
        snprintf(buf, len, "%s:%u", ip, addr_port(a));
    return buf;
}

int sock_set_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -1;
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int sock_set_nodelay(int fd)
{
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int sock_set_reset_on_close(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    return setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

int sock_set_transparent(int fd, int family)
{
    int one = 1;
    if (family == AF_INET6)
        return setsockopt(fd, IPPROTO_IPV6, IPV6_TRANSPARENT, &one, sizeof one);
    return setsockopt(fd, IPPROTO_IP, IP_TRANSPARENT, &one, sizeof one);
}

int sock_pending_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -1;
    return err;
}

int sock_set_keepalive(int fd, const struct sock_keepalive *k)
{
    int on = k->idle > 0;
    if (on) {
        int idle = (int)k->idle, intvl = (int)k->interval, cnt = (int)k->count;
        if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) < 0 ||
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl) < 0 ||
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt) < 0)
            return -1;
    }
    return setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
}

static unsigned read_sysctl(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    unsigned v;
    if (fscanf(f, "%u", &v) != 1)
        v = 0;
    fclose(f);
    return v;
}

void sock_keepalive_kernel(struct sock_keepalive *out)
{
    out->idle = read_sysctl("/proc/sys/net/ipv4/tcp_keepalive_time");
    out->interval = read_sysctl("/proc/sys/net/ipv4/tcp_keepalive_intvl");
    out->count = read_sysctl("/proc/sys/net/ipv4/tcp_keepalive_probes");
}

int sock_set_keepalive_fresh(int fd, const struct sock_keepalive *k,
                             const struct sock_keepalive *kernel)
{
    if (!k->idle)
        return 0;
    int idle = (int)k->idle, intvl = (int)k->interval, cnt = (int)k->count, on = 1;
    if ((k->idle != kernel->idle &&
         setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) < 0) ||
        (k->interval != kernel->interval &&
         setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl) < 0) ||
        (k->count != kernel->count &&
         setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt) < 0))
        return -1;
    return setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
}

bool sock_err_is_resource(int err, const char **why)
{
    const char *w;
    switch (err) {
    case EMFILE:
    case ENFILE:
        w = "out of file descriptors";
        break;
    case ENOMEM:
    case ENOBUFS:
        w = "out of memory";
        break;
    case EADDRNOTAVAIL: /* connect(): every local port to that peer in use */
        w = "out of local ports";
        break;
    default:
        return false;
    }
    if (why)
        *why = w;
    return true;
}

int sock_listener(const struct addr *a, int type, int protocol, int fd, bool freebind,
                  char *err, size_t errlen)
{
    const char *proto = protocol == IPPROTO_SCTP ? "sctp"
                        : type == SOCK_STREAM    ? "tcp"
                                                 : "udp";
    char where[ADDR_STRLEN];
    if (fd >= 0) {
        if (sock_set_nonblock(fd) == 0)
            return fd;
        snprintf(err, errlen, "listen %s fd %d: %s", proto, fd, strerror(errno));
        close(fd);
        return -1;
    }
    if ((fd = sock_bind_opt(a, type, protocol, freebind)) >= 0)
        return fd;
    addr_format(a, where, sizeof where);
    /* Most kernels build SCTP as a module (sctp.ko), some leave it out. */
    if (protocol == IPPROTO_SCTP &&
        (errno == EPROTONOSUPPORT || errno == ESOCKTNOSUPPORT ||
         errno == EAFNOSUPPORT))
        snprintf(err, errlen,
                 "listen sctp %s: this kernel has no SCTP (%s): load its module "
                 "(modprobe sctp)",
                 where, strerror(errno));
    else
        snprintf(err, errlen, "listen %s %s: %s", proto, where, strerror(errno));
    return -1;
}

int sock_bind(const struct addr *a, int type)
{
    return sock_bind_opt(a, type, 0, true);
}

/* IP_FREEBIND (IPV6_FREEBIND for IPv6, Linux 4.15+): bind() takes an
 * address no interface has yet, and the socket receives as soon as one
 * does. A kernel without the option binds as before, failing for such an
 * address with EADDRNOTAVAIL. */
static void set_freebind(int fd, int family)
{
    int one = 1;
    if (family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof one) == 0)
        return;
    (void)setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof one);
}

int sock_bind_opt(const struct addr *a, int type, int protocol, bool freebind)
{
    int fd = socket(a->ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd < 0)
        return -1;
    int one = 1;
    if (type == SOCK_STREAM &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        goto fail;
    if (a->ss.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
        goto fail;
    if (freebind && !addr_is_any(a))
        set_freebind(fd, a->ss.ss_family);
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0)
        goto fail;
    if (type == SOCK_STREAM && listen(fd, 4096) < 0)
        goto fail;
    return fd;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

bool addr_in_subnet(const struct addr *ip, const struct addr *net, unsigned prefix)
{
    if (net->ss.ss_family != ip->ss.ss_family)
        return false;
    const unsigned char *a, *b;
    size_t bytes;
    if (ip->ss.ss_family == AF_INET) {
        a = (const void *)&((const struct sockaddr_in *)&ip->ss)->sin_addr;
        b = (const void *)&((const struct sockaddr_in *)&net->ss)->sin_addr;
        bytes = 4;
    } else {
        a = (const void *)&((const struct sockaddr_in6 *)&ip->ss)->sin6_addr;
        b = (const void *)&((const struct sockaddr_in6 *)&net->ss)->sin6_addr;
        bytes = 16;
    }
    unsigned bits = prefix > bytes * 8 ? (unsigned)bytes * 8 : prefix;
    for (unsigned i = 0; i < bits; i++) {
        unsigned char m = (unsigned char)(0x80 >> (i % 8));
        if ((a[i / 8] & m) != (b[i / 8] & m))
            return false;
    }
    return true;
}

bool sock_host_in_subnet(const struct addr *net, unsigned prefix)
{
    struct ifaddrs *all;
    if (getifaddrs(&all) < 0)
        return false;
    bool found = false;
    for (const struct ifaddrs *i = all; i && !found; i = i->ifa_next) {
        int f = i->ifa_addr ? i->ifa_addr->sa_family : AF_UNSPEC;
        if (f != AF_INET && f != AF_INET6)
            continue;
        struct addr a = {.len = f == AF_INET ? sizeof(struct sockaddr_in)
                                             : sizeof(struct sockaddr_in6)};
        memcpy(&a.ss, i->ifa_addr, a.len);
        found = addr_in_subnet(&a, net, prefix);
    }
    freeifaddrs(all);
    return found;
}

bool sock_addr_configured(const struct addr *a)
{
    if (addr_is_any(a) || addr_is_loopback(a))
        return true;
    struct ifaddrs *all;
    if (getifaddrs(&all) < 0)
        return true; /* cannot tell: say nothing */
    bool found = false;
    for (const struct ifaddrs *i = all; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != a->ss.ss_family)
            continue;
        if (a->ss.ss_family == AF_INET)
            found = ((const struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr ==
                    ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr;
        else
            found = memcmp(&((const struct sockaddr_in6 *)i->ifa_addr)->sin6_addr,
                           &((const struct sockaddr_in6 *)&a->ss)->sin6_addr,
                           sizeof(struct in6_addr)) == 0;
    }
    freeifaddrs(all);
    return found;
}

bool sock_host_has_ipv6(void)
{
    /* One line per IPv6 address of any interface (::1 included); the file
     * is missing when the kernel has IPv6 off (ipv6.disable=1), empty when
     * every interface has it disabled (disable_ipv6). Without /proc, ask
     * the kernel for a socket instead. */
    FILE *f = fopen("/proc/net/if_inet6", "re");
    if (f) {
        bool any = fgetc(f) != EOF;
        fclose(f);
        return any;
    }
    if (errno == ENOENT && access("/proc/net", F_OK) == 0)
        return false;
    int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}
