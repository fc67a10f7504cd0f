/* berth's DNS server: UDP and TCP on every --dns address, answering the
 * zone <domain> and container PTRs from the registry (dns_answer.c), and
 * forwarding every other query upstream (dns_forward.c).
 *
 * Forwarding is for clients on loopback and in the Docker networks the
 * registry knows, unless open_resolver; others get REFUSED for names
 * outside the zone (the zone itself answers anyone), so berth bound to a
 * public address is not an open resolver.
 *
 * UDP moves in recvmmsg/sendmmsg batches; local answers allocate nothing.
 * Errors: dns_server_new returns NULL with a one-line reason in err and
 * nothing left bound. */
#ifndef BERTH_DNS_SERVER_H
#define BERTH_DNS_SERVER_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

#include "berth/registry.h"
#include "berth/sockaddr.h"

struct metrics;

struct dns_options {
    const struct addr *listen; /* --dns addresses (with port) */
    size_t nlisten;
    const struct addr *upstreams; /* with port */
    size_t nupstreams;            /* 0: the nameservers of resolv_conf */
    const char *domain;           /* "docker" */
    unsigned ttl;                 /* --ttl */
    bool open_resolver;           /* forward for any client */
    struct metrics *metrics;      /* replies and upstream times; NULL: none */
    /* Tunables; 0 takes the default. */
    const char *resolv_conf;      /* "/etc/resolv.conf" */
    unsigned upstream_timeout_ms; /* per upstream try: 2000 */
    unsigned max_inflight;        /* forwarded queries at once: 1024 */
    unsigned tcp_idle_ms;         /* 10000 */
    unsigned tcp_max_conns;       /* per address: 1024 */
};

struct dns_server;

/* reg must outlive the server; o and what it points to are read during
 * the call only. A listen port of 0 takes one port the kernel picks, the
 * same for UDP and TCP. */
struct dns_server *dns_server_new(struct event_base *base, struct registry *reg,
                                  const struct dns_options *o, char *err,
                                  size_t errlen);
void dns_server_free(struct dns_server *s);

/* Where listen address i ended up (UDP and TCP share it). */
int dns_server_local_addr(const struct dns_server *s, size_t i, struct addr *out);

/* For tests: forwarded queries waiting for upstreams, TCP clients. */
size_t dns_server_inflight(const struct dns_server *s);
size_t dns_server_tcp_conns(const struct dns_server *s);

#endif
