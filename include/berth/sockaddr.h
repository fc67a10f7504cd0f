/* Stateless address and socket helpers (the anet.c of berth).
 * Return convention: 0 on success, -1 with errno set. */
#ifndef BERTH_SOCKADDR_H
#define BERTH_SOCKADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* An address plus its length: what bind/connect/sendto need. */
struct addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* "1.2.3.4" or "::1" (no brackets) plus a port. -1 if not an IP literal. */
int addr_from_ip(struct addr *a, const char *ip, uint16_t port);
uint16_t addr_port(const struct addr *a);
void addr_set_port(struct addr *a, uint16_t port);
bool addr_is_any(const struct addr *a);
/* 127.0.0.0/8 or ::1. */
bool addr_is_loopback(const struct addr *a);
/* True when ip is inside net/prefix (same family; the ports ignored). */
bool addr_in_subnet(const struct addr *ip, const struct addr *net, unsigned prefix);
/* True when one of this host's interfaces has an address inside
 * net/prefix (getifaddrs, read per call). */
bool sock_host_in_subnet(const struct addr *net, unsigned prefix);
bool addr_equal(const struct addr *a, const struct addr *b);
uint32_t addr_hash(const struct addr *a);

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it
 * stands for, port kept; any other address copied as it is. */
void addr_unmap(const struct addr *a, struct addr *out);
/* True when a and b agree on their first prefix bits (same family; ports
 * ignored): a lies in the network b/prefix. */
bool addr_in_prefix(const struct addr *a, const struct addr *b, unsigned prefix);

/* "IP:PORT", "[IPv6]:PORT", and when default_port is non-zero also "IP",
 * "[IPv6]" and a bare IPv6 address. -1 (errno EINVAL) if malformed. */
int addr_parse_hostport(struct addr *a, const char *s, uint16_t default_port);

/* "1.2.3.4:80" or "[::1]:80" into buf; always NUL-terminated. */
#define ADDR_STRLEN 64
const char *addr_format(const struct addr *a, char *buf, size_t len);
/* The IP alone ("1.2.3.4", "::1"). */
const char *addr_format_ip(const struct addr *a, char *buf, size_t len);

int sock_set_nonblock(int fd);
int sock_set_nodelay(int fd);
/* Makes the next close() send a RST instead of a FIN. */
int sock_set_reset_on_close(int fd);
/* IP_TRANSPARENT (IPV6_TRANSPARENT for family AF_INET6): the socket may
 * bind an address that is not this host's. Needs CAP_NET_ADMIN (EPERM). */
int sock_set_transparent(int fd, int family);
/* Reads SO_ERROR: returns the pending error (0 if none), -1 on failure. */
int sock_pending_error(int fd);

/* TCP keepalive: the first probe after idle seconds without a segment from
 * the peer, then one every interval seconds; count probes unanswered end
 * the connection. idle 0: off. */
struct sock_keepalive {
    unsigned idle, interval, count;
};
/* The largest values Linux takes (TCP_KEEPIDLE/TCP_KEEPINTVL, TCP_KEEPCNT). */
#define SOCK_KEEPALIVE_TIME_MAX 32767
#define SOCK_KEEPALIVE_COUNT_MAX 127
/* Sets SO_KEEPALIVE on or off, and when on TCP_KEEPIDLE, TCP_KEEPINTVL and
 * TCP_KEEPCNT. On a listening socket Linux copies all four to every socket
 * accept() returns, so one call per listener covers its clients. */
int sock_set_keepalive(int fd, const struct sock_keepalive *k);
/* The values a new socket starts with (this network namespace's
 * net.ipv4.tcp_keepalive_time/_intvl/_probes), read from /proc; a value
 * that cannot be read is 0, which no setting equals. */
void sock_keepalive_kernel(struct sock_keepalive *out);
/* sock_set_keepalive for a socket fresh from socket(): turns keepalive on
 * and sets only the values that differ from kernel's (the defaults it
 * already has), one call fewer per value the same. k->idle 0: nothing to
 * do, a new socket has keepalive off. */
int sock_set_keepalive_fresh(int fd, const struct sock_keepalive *k,
                             const struct sock_keepalive *kernel);

/* True for the errors of socket() and connect() that are the process's or
 * the host's own shortage (fds, memory, buffers, local ports), not the
 * peer's doing; why says which ("out of file descriptors"). */
bool sock_err_is_resource(int err, const char **why);

/* A non-blocking, close-on-exec socket bound to a (TCP: and listening).
 * IPv6 sockets are IPv6-only: [::]:80 must not take 0.0.0.0:80 as well,
 * since dockerd and users publish the two families separately. A specific
 * address is bound with IP_FREEBIND/IPV6_FREEBIND: one that no interface
 * has yet (a Docker bridge's gateway before dockerd made the bridge) is
 * taken, and served from the moment it appears. */
int sock_bind(const struct addr *a, int type);
/* The same, with freebind false binding only addresses the host has now
 * (EADDRNOTAVAIL otherwise), as docker-proxy does; protocol as socket(2)
 * takes it (0: TCP or UDP by type; IPPROTO_SCTP: SCTP one-to-one style). */
int sock_bind_opt(const struct addr *a, int type, int protocol, bool freebind);

/* A listener's socket: fd when one was handed over (made non-blocking), or
 * a new one bound to a (protocol and freebind as for sock_bind_opt). On
 * failure fd is closed too, and err says "listen tcp 1.2.3.4:80: Address
 * already in use", or, for SCTP on a kernel without it, says that. */
int sock_listener(const struct addr *a, int type, int protocol, int fd, bool freebind,
                  char *err, size_t errlen);

/* True when a is a wildcard, loopback, or an address of one of this
 * host's interfaces now (also when the interfaces cannot be read). */
bool sock_addr_configured(const struct addr *a);

/* True when the host has IPv6: /proc/net/if_inet6 lists an address (::1
 * counts), or without /proc, an IPv6 socket can be made. Specs without a
 * host address then listen on [::] as well as 0.0.0.0, as Docker does. */
bool sock_host_has_ipv6(void);

#endif
