/* Forwarding to upstream resolvers the queries berth does not answer
 * itself. Each try goes out over UDP from a fresh socket (so from a fresh
 * random source port) with a fresh random ID; only an answer from that
 * upstream with that ID and the same question is taken. A truncated answer
 * is asked again over TCP. An upstream that times out, refuses or fails
 * hands over to the next; when none answers, the caller hears so (and
 * replies SERVFAIL). At most max_inflight queries are out at once, each in
 * a slot made up front: a flood towards a dead upstream costs no memory.
 *
 * Return convention: 0 / -1 unless stated; dns_forwarder_new returns NULL
 * with a one-line reason in err. */
#ifndef BERTH_DNS_FORWARD_H
#define BERTH_DNS_FORWARD_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

#include "berth/dns_wire.h"
#include "berth/sockaddr.h"

#define DNS_UPSTREAMS_MAX 8
#define DNS_FORWARD_TIMEOUT_MS 2000
#define DNS_FORWARD_INFLIGHT 1024

struct dns_forward_options {
    const struct addr *upstreams; /* with port */
    size_t nupstreams;
    /* berth's own --dns addresses: never used as upstreams (a wildcard
     * address also rules out this host's addresses on its port). */
    const struct addr *self;
    size_t nself;
    unsigned timeout_ms;   /* per try; 0: DNS_FORWARD_TIMEOUT_MS */
    unsigned max_inflight; /* 0: DNS_FORWARD_INFLIGHT */
};

struct dns_forwarder;

struct dns_forwarder *dns_forwarder_new(struct event_base *base,
                                        const struct dns_forward_options *o, char *err,
                                        size_t errlen);
void dns_forwarder_free(struct dns_forwarder *f);

/* Upstreams left after dropping berth's own addresses. */
size_t dns_forwarder_upstreams(const struct dns_forwarder *f);
size_t dns_forwarder_inflight(const struct dns_forwarder *f);

/* The upstream's answer, with the client's ID and question letters put
 * back, valid during the call only; NULL when no upstream answered. */
typedef void dns_forward_done_fn(void *arg, const uint8_t *ans, size_t len);

/* Sends q (parsed from the client's packet) upstream. With EDNS0 the
 * upstream is told the client's size (4096 for a TCP client); without it,
 * none, so the answer needs no rewriting. done runs exactly once, always
 * from the event loop, never inside this call. Returns -1 (and done never
 * runs) when every slot is taken or no upstream can be tried. */
int dns_forward(struct dns_forwarder *f, const struct dns_query *q, bool tcp_client,
                dns_forward_done_fn *done, void *arg);

/* The nameservers of a resolv.conf, with port 53, into out. Returns how many
 * (at most max), or -1 if the file cannot be read. */
int dns_resolv_conf(const char *path, struct addr *out, size_t max);

#endif
