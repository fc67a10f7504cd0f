/* DNS over TCP (RFC 7766) on one address: 2-byte length framing, pipelined
 * queries answered as each completes (so possibly out of order), bounded
 * buffers per connection, an idle timeout, and a bounded number of
 * connections (the least recently active one makes room for a new one).
 * It knows nothing of DNS itself: messages go to the query callback.
 * Errors: dns_tcp_new returns NULL with errno kept and a reason in err;
 * dns_tcp_frame_add returns 0 / -1. */
#ifndef BERTH_DNS_TCP_H
#define BERTH_DNS_TCP_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/sockaddr.h"

#define DNS_TCP_IDLE_MS 10000
#define DNS_TCP_MAX_CONNS 1024

struct dns_tcp;
struct dns_tcp_conn;

/* One message from a client. The callee owes exactly one dns_tcp_reply for
 * it, now or later. msg is valid during the call only. */
typedef void dns_tcp_query_fn(void *arg, struct dns_tcp_conn *c,
                              const struct addr *peer, const uint8_t *msg, size_t len);
/* c is closing with replies still owed: they must not be sent. */
typedef void dns_tcp_gone_fn(void *arg, struct dns_tcp_conn *c);

struct dns_tcp_options {
    unsigned idle_ms;   /* 0: DNS_TCP_IDLE_MS */
    unsigned max_conns; /* 0: DNS_TCP_MAX_CONNS */
    dns_tcp_query_fn *query;
    dns_tcp_gone_fn *gone;
    void *arg;
};

/* Binds and listens on a (with its port). */
struct dns_tcp *dns_tcp_new(struct event_base *base, const struct addr *a,
                            const struct dns_tcp_options *o, char *err, size_t errlen);
/* Closes the listener and every connection (gone runs for those owed). */
void dns_tcp_free(struct dns_tcp *t);

/* The reply to one query of c; len 0 means it gets none (dropped). */
void dns_tcp_reply(struct dns_tcp_conn *c, const uint8_t *msg, size_t len);

size_t dns_tcp_conns(const struct dns_tcp *t);
int dns_tcp_local_addr(const struct dns_tcp *t, struct addr *out);
/* The address c's client connected to (the listener's, or when that is a
 * wildcard the kernel's answer). Returns 0 or -1. */
int dns_tcp_conn_local(const struct dns_tcp_conn *c, struct addr *out);

/* The framing, for both ends of DNS over TCP (these connections and the
 * forwarder's retries upstream). Whether in starts with a whole message;
 * then *len is its length, not counting the 2-byte prefix. */
bool dns_tcp_frame_ready(struct evbuffer *in, size_t *len);
/* Appends msg with its length prefix to out. */
int dns_tcp_frame_add(struct evbuffer *out, const uint8_t *msg, size_t len);

#endif
