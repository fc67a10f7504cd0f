#include "berth/transparent.h"

#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "berth/clock.h"
#include "berth/relay.h"

/* How old the interface table may be: an address added to the host (a
 * Docker bridge that appeared) counts within this. */
#define REFRESH_MS 1000
#define SUFFIX "; connecting from this host's address"

struct transparent {
    struct transparent_net *nets;
    size_t n, cap;
    uint64_t loaded_ms;
    bool loaded; /* nets was read at least once */
    bool no_cap; /* setsockopt said EPERM: capabilities do not come back */
};

struct transparent *transparent_new(void)
{
    return calloc(1, sizeof(struct transparent));
}

void transparent_free(struct transparent *t)
{
    if (!t)
        return;
    free(t->nets);
    free(t);
}

/* ---- the decision ---- */

static bool same_ip(const struct addr *a, const struct addr *b)
{
    return addr_in_prefix(a, b, 128); /* the whole address, either family */
}

enum transparent_why transparent_decide(const struct transparent_net *nets, size_t n,
                                        const struct addr *client,
                                        const struct addr *target, struct addr *src,
                                        const struct transparent_net **net)
{
    /* A mapped client reached a dual-stack listener over IPv4: it is an
     * IPv4 client, and an IPv4 target's socket can take its address. */
    addr_unmap(client, src);
    if (addr_is_loopback(src))
        return TRANSPARENT_LOOPBACK;
    if (addr_is_loopback(target) || addr_is_any(target))
        return TRANSPARENT_TARGET_HOST;
    if (src->ss.ss_family != target->ss.ss_family)
        return TRANSPARENT_FAMILY;
    for (size_t i = 0; i < n; i++)
        if (same_ip(src, &nets[i].addr))
            return TRANSPARENT_HOST;
    for (size_t i = 0; i < n; i++)
        if (same_ip(target, &nets[i].addr))
            return TRANSPARENT_TARGET_HOST;
    /* The target would answer the client on their shared network, never
     * through this host: the client would drop a reply it did not ask
     * for. A /0 network (none in practice) would take in everything. */
    for (size_t i = 0; i < n; i++) {
        unsigned p = nets[i].prefix;
        if (p && addr_in_prefix(src, &nets[i].addr, p) &&
            addr_in_prefix(target, &nets[i].addr, p)) {
            if (net)
                *net = &nets[i];
            return TRANSPARENT_SAME_NET;
        }
    }
    return TRANSPARENT_OK;
}

/* ---- this host's addresses ---- */

static unsigned mask_bits(const struct sockaddr *mask, int family)
{
    size_t len = family == AF_INET ? 4 : 16;
    if (!mask || mask->sa_family != family)
        return (unsigned)len * 8; /* no mask: the address alone */
    const unsigned char *p =
        family == AF_INET
            ? (const unsigned char *)&((const struct sockaddr_in *)mask)->sin_addr
            : ((const struct sockaddr_in6 *)mask)->sin6_addr.s6_addr;
    unsigned bits = 0;
    for (size_t i = 0; i < len; i++) {
        for (unsigned char b = p[i]; b & 0x80; b = (unsigned char)(b << 1))
            bits++;
        if (p[i] != 0xff)
            break;
    }
    return bits;
}

/* Reads the table again. -1 with errno: the old one (if any) is kept. */
static int load(struct transparent *t)
{
    struct ifaddrs *all;
    if (getifaddrs(&all) < 0)
        return -1;
    size_t n = 0;
    for (const struct ifaddrs *i = all; i; i = i->ifa_next)
        if (i->ifa_addr &&
            (i->ifa_addr->sa_family == AF_INET || i->ifa_addr->sa_family == AF_INET6))
            n++;
    if (n > t->cap) {
        struct transparent_net *v = realloc(t->nets, n * sizeof *v);
        if (!v) {
            freeifaddrs(all);
            errno = ENOMEM;
            return -1;
        }
        t->nets = v;
        t->cap = n;
    }
    t->n = 0;
    for (const struct ifaddrs *i = all; i; i = i->ifa_next) {
        if (!i->ifa_addr)
            continue;
        int family = i->ifa_addr->sa_family;
        if (family != AF_INET && family != AF_INET6)
            continue;
        struct transparent_net *e = &t->nets[t->n++];
        memset(e, 0, sizeof *e);
        e->addr.len = family == AF_INET ? sizeof(struct sockaddr_in)
                                        : sizeof(struct sockaddr_in6);
        memcpy(&e->addr.ss, i->ifa_addr, e->addr.len);
        addr_set_port(&e->addr, 0);
        e->prefix = mask_bits(i->ifa_netmask, family);
    }
    freeifaddrs(all);
    return 0;
}

/* The table no older than REFRESH_MS. -1 with errno: none could be read. */
static int refresh(struct transparent *t)
{
    uint64_t now = clock_ms();
    if (t->loaded && now - t->loaded_ms < REFRESH_MS)
        return 0;
    if (load(t) < 0)
        return t->loaded ? 0 : -1; /* a table a second old beats none */
    t->loaded = true;
    t->loaded_ms = now;
    return 0;
}

/* ---- what a fallback says ---- */

/* Why the host is not set up for m's protocol towards target's family. */
static const char *broken(const struct relay_ctx *ctx, const struct mapping *m,
                          const struct addr *target)
{
    return ctx
        ->transparent_broken[target->ss.ss_family == AF_INET6][m->proto == PROTO_UDP];
}

static uint64_t key(enum transparent_why why, int err)
{
    return relay_key(RELAY_SAID_TRANSPARENT, (int)why << 16 | (err & 0xffff), NULL);
}

/* a's network: the bits past prefix cleared ("10.0.0.0" of 10.0.0.1/24). */
static struct addr network_of(const struct addr *a, unsigned prefix)
{
    struct addr n = *a;
    unsigned char *p;
    unsigned bits;
    if (n.ss.ss_family == AF_INET) {
        p = (unsigned char *)&((struct sockaddr_in *)&n.ss)->sin_addr;
        bits = 32;
    } else {
        p = ((struct sockaddr_in6 *)&n.ss)->sin6_addr.s6_addr;
        bits = 128;
    }
    for (unsigned i = 0; i < bits / 8; i++) {
        unsigned keep = prefix >= 8 * (i + 1) ? 8
                        : prefix > 8 * i      ? prefix - 8 * i
                                              : 0;
        p[i] &= (unsigned char)(0xff00u >> keep);
    }
    return n;
}

/* Each reason is said once per mapping, then counted (relay_log_limited):
 * formatted only when said. */
static void say(struct relay_ctx *ctx, const struct mapping *m,
                const struct addr *client, const struct addr *target,
                enum transparent_why why, int err, const struct transparent_net *net,
                const struct addr *src)
{
    char t[ADDR_STRLEN], s[ADDR_STRLEN];
    uint64_t k = key(why, err);
    struct addr netaddr;
    switch (why) {
    case TRANSPARENT_OK:
        return;
    case TRANSPARENT_BROKEN:
        relay_log_limited(ctx, LOG_WARN, m, client, k,
                          "transparent: the host is not set up for %s %s targets: "
                          "%s" SUFFIX,
                          target->ss.ss_family == AF_INET6 ? "IPv6" : "IPv4",
                          m->proto == PROTO_UDP ? "UDP" : "TCP",
                          broken(ctx, m, target));
        return;
    case TRANSPARENT_LOOPBACK:
        relay_log_limited(ctx, LOG_INFO, m, client, k,
                          "transparent: the client is on loopback" SUFFIX);
        return;
    case TRANSPARENT_HOST:
        relay_log_limited(ctx, LOG_INFO, m, client, k,
                          "transparent: the client is an address of this host" SUFFIX);
        return;
    case TRANSPARENT_TARGET_HOST:
        relay_log_limited(ctx, LOG_INFO, m, client, k,
                          "transparent: the target %s is this host: its replies to "
                          "the client would not come back to berth" SUFFIX,
                          addr_format_ip(target, t, sizeof t));
        return;
    case TRANSPARENT_SAME_NET:
        if (net)
            netaddr = network_of(&net->addr, net->prefix);
        relay_log_limited(ctx, LOG_INFO, m, client, k,
                          "transparent: the client and the target %s are both in "
                          "%s/%u, a network of this host: the target would answer "
                          "the client directly" SUFFIX,
                          addr_format_ip(target, t, sizeof t),
                          net ? addr_format_ip(&netaddr, s, sizeof s) : "?",
                          net ? net->prefix : 0);
        return;
    case TRANSPARENT_FAMILY:
        relay_log_limited(ctx, LOG_INFO, m, client, k,
                          "transparent: an %s client cannot be the source towards the "
                          "%s target %s" SUFFIX,
                          target->ss.ss_family == AF_INET ? "IPv6" : "IPv4",
                          target->ss.ss_family == AF_INET ? "IPv4" : "IPv6",
                          addr_format_ip(target, t, sizeof t));
        return;
    case TRANSPARENT_PERM:
        relay_log_limited(ctx, LOG_WARN, m, client, k,
                          "transparent: IP_TRANSPARENT: %s (berth needs "
                          "CAP_NET_ADMIN)" SUFFIX,
                          strerror(EPERM));
        return;
    case TRANSPARENT_BIND:
        relay_log_limited(ctx, LOG_WARN, m, client, k,
                          "transparent: bind %s: %s" SUFFIX,
                          src ? addr_format(src, s, sizeof s) : "IP_TRANSPARENT",
                          strerror(err));
        return;
    case TRANSPARENT_CONNECT:
        relay_log_limited(ctx, LOG_INFO, m, client, k,
                          "transparent: connect from the client's address: %s" SUFFIX,
                          strerror(err));
        return;
    case TRANSPARENT_IFADDRS:
        relay_log_limited(
            ctx, LOG_WARN, m, client, k,
            "transparent: this host's addresses cannot be read: %s" SUFFIX,
            strerror(err));
        return;
    }
}

/* ---- per connection ---- */

bool transparent_bind(struct relay_ctx *ctx, const struct mapping *m,
                      const struct addr *client, const struct addr *target, int fd)
{
    /* By the target's family: an IPv6 client to an IPv4 target is
     * TRANSPARENT_FAMILY below whatever IPv6's rules are. */
    if (broken(ctx, m, target)[0]) {
        say(ctx, m, client, target, TRANSPARENT_BROKEN,
            target->ss.ss_family == AF_INET6, NULL, NULL);
        return false;
    }
    struct transparent *t = ctx->transparent;
    if (!t && !(t = ctx->transparent = transparent_new())) {
        say(ctx, m, client, target, TRANSPARENT_IFADDRS, ENOMEM, NULL, NULL);
        return false;
    }
    if (t->no_cap) {
        say(ctx, m, client, target, TRANSPARENT_PERM, EPERM, NULL, NULL);
        return false;
    }
    if (refresh(t) < 0) {
        say(ctx, m, client, target, TRANSPARENT_IFADDRS, errno, NULL, NULL);
        return false;
    }
    struct addr src;
    const struct transparent_net *net = NULL;
    enum transparent_why why = transparent_decide(t->nets, t->n, client, target, &src,
                                                  &net);
    if (why != TRANSPARENT_OK) {
        say(ctx, m, client, target, why, 0, net, NULL);
        return false;
    }
    if (sock_set_transparent(fd, target->ss.ss_family) < 0) {
        if (errno == EPERM)
            t->no_cap = true;
        say(ctx, m, client, target,
            errno == EPERM ? TRANSPARENT_PERM : TRANSPARENT_BIND, errno, NULL, NULL);
        return false;
    }
    /* A session of the same client port to the same target that ended
     * lingers in TIME_WAIT; UDP: the same client port may have flows to
     * two ports of berth, both bound to it (connected, told apart by
     * their targets). */
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (const struct sockaddr *)&src.ss, src.len) < 0) {
        say(ctx, m, client, target, TRANSPARENT_BIND, errno, NULL, &src);
        return false;
    }
    return true;
}

bool transparent_connect_err(int err)
{
    return err == EADDRNOTAVAIL || err == EADDRINUSE;
}

void transparent_connect_failed(struct relay_ctx *ctx, const struct mapping *m,
                                const struct addr *client, int err)
{
    say(ctx, m, client, &m->target, TRANSPARENT_CONNECT, err, NULL, NULL);
}
