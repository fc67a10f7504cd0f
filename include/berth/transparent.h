/* Transparent mode's relay side: the socket berth opens towards the target
 * of a transparent mapping (a TCP session's connect socket, a UDP flow's
 * socket) is bound to the client's address and port with IP_TRANSPARENT /
 * IPV6_TRANSPARENT before it connects, so the target's getpeername and
 * recvfrom show the client. The target's replies, addressed to the client,
 * come back to berth through the host's tproxy routing (a fwmark rule to a
 * table with a local default route, and a rule marking packets of
 * transparent sockets: tproxy_check.h says whether it is there).
 *
 * Where that cannot work the connection connects normally, from this
 * host's address, and says why once per reason and mapping (then counted,
 * relay_log_limited): the host is not set up for the target's family and
 * the mapping's protocol (ctx->transparent_broken);
 * the client is on loopback or is one of this host's addresses (its own
 * address would be taken); the target is on this host (the reply is never
 * routed back to berth); the client and the target are in one network of
 * one of this host's interfaces (the target would answer the client
 * directly, bypassing berth); an IPv6 client towards an IPv4 target or the
 * reverse (an IPv4-mapped IPv6 client counts as IPv4); berth lacks
 * CAP_NET_ADMIN (EPERM); the client's address and port cannot be bound
 * (a session with the same addresses still in TIME_WAIT).
 *
 * This host's addresses are read with getifaddrs by the first transparent
 * connection and again at most once a second, on demand: nothing per
 * connection beyond setsockopt and bind, nothing at all for a mapping that
 * is not transparent. */
#ifndef BERTH_TRANSPARENT_H
#define BERTH_TRANSPARENT_H

#include <stdbool.h>
#include <stddef.h>

#include "berth/mapping.h"
#include "berth/sockaddr.h"

struct relay_ctx;

/* What transparent_decide found: OK, or why this connection connects
 * normally. */
enum transparent_why {
    TRANSPARENT_OK,          /* bind to the client's address */
    TRANSPARENT_BROKEN,      /* the host is not set up (ctx->transparent_broken) */
    TRANSPARENT_LOOPBACK,    /* the client is on loopback */
    TRANSPARENT_HOST,        /* the client is one of this host's addresses */
    TRANSPARENT_TARGET_HOST, /* the target is this host (loopback, own address) */
    TRANSPARENT_SAME_NET,    /* client and target in one of this host's networks */
    TRANSPARENT_FAMILY,      /* IPv6 client to an IPv4 target, or the reverse */
    TRANSPARENT_PERM,        /* no CAP_NET_ADMIN: setsockopt said EPERM */
    TRANSPARENT_BIND,        /* setsockopt or bind to the client's address failed */
    TRANSPARENT_CONNECT,     /* connect from the client's address failed at once */
    TRANSPARENT_IFADDRS,     /* this host's addresses could not be read */
};

/* One address of one of this host's interfaces and its prefix length. */
struct transparent_net {
    struct addr addr; /* port 0 */
    unsigned prefix;
};

/* Whether a connection from client to target can leave from the client's
 * address, given this host's interface addresses nets[0..n): pure. On
 * TRANSPARENT_OK *src is what to bind: the client's address and port
 * (an IPv4-mapped client as IPv4). On TRANSPARENT_SAME_NET *net (when not
 * NULL) is the network's entry. */
enum transparent_why transparent_decide(const struct transparent_net *nets, size_t n,
                                        const struct addr *client,
                                        const struct addr *target, struct addr *src,
                                        const struct transparent_net **net);

/* The per-relay-context state (ctx->transparent): the interface table and
 * whether setsockopt was refused. Made on demand by transparent_bind. */
struct transparent *transparent_new(void);
void transparent_free(struct transparent *t);

/* For a transparent mapping m (call only when m->transparent): fd is a
 * fresh socket (TCP or UDP) of target's family for client's connection. Binds it to the client's address and port
 * (SO_REUSEADDR, IP_TRANSPARENT, bind) and returns true; or, when that
 * cannot work or fails, logs why (once per reason and mapping, see above)
 * and returns false: fd is then to connect as it is, normally. */
bool transparent_bind(struct relay_ctx *ctx, const struct mapping *m,
                      const struct addr *client, const struct addr *target, int fd);

/* A socket transparent_bind bound failed to connect with err before the
 * target was reached (EADDRNOTAVAIL: that client address and port towards
 * that target is still taken): logged like transparent_bind's fallbacks;
 * the caller connects again from a fresh socket, normally. */
void transparent_connect_failed(struct relay_ctx *ctx, const struct mapping *m,
                                const struct addr *client, int err);

/* True for connect's errors that transparent_connect_failed stands for. */
bool transparent_connect_err(int err);

#endif
