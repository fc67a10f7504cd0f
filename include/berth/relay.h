/* The relay layer: what every relay of one berth instance shares (the
 * loop, the pipe pool, scratch and batch buffers, the tunables) and how a
 * named target becomes addresses (registry lookup, rotation over
 * replicas). Relays (listener.c, tcp_relay.c, udp_relay.c) use this and
 * nothing above it. Single-threaded: one relay_ctx per event loop.
 * Errors: relay_ctx_new returns NULL (out of memory). */
#ifndef BERTH_RELAY_H
#define BERTH_RELAY_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/mapping.h"

struct pipe_pool;
struct registry;
struct dgram_batch;

struct relay_ctx {
    struct event_base *base;
    struct pipe_pool *pipes;
    struct dgram_batch *udp; /* recvmmsg/sendmmsg buffers, made on demand */
    char *scratch;           /* read buffer of the buffered TCP path */
    size_t scratch_len;
    struct registry *reg; /* set at creation; NULL without Docker */
    /* Tunables, adjustable until the first listener starts. */
    struct timeval connect_timeout;
    unsigned udp_timeout;   /* seconds */
    unsigned udp_max_flows; /* per UDP port; the longest idle is evicted */
    unsigned max_conns;     /* per TCP port; 0 = unlimited */
    bool no_splice;         /* force the buffered TCP path */
};

/* reg (may be NULL: IP targets only) must outlive the context. */
struct relay_ctx *relay_ctx_new(struct event_base *base, struct registry *reg);
void relay_ctx_free(struct relay_ctx *ctx);

/* The loop's datagram batch, made on first use. NULL: out of memory. */
struct dgram_batch *relay_dgram_batch(struct relay_ctx *ctx);

/* The addresses a named mapping forwards to now, rotated to start at
 * *rr (which advances): IPv4 when the target has any, else IPv6, with the
 * mapping's port. Returns how many (0: nothing running by that name). */
size_t relay_resolve(struct relay_ctx *ctx, const struct mapping *m, unsigned *rr,
                     struct addr *out, size_t max);

/* Changes whenever a name may resolve differently (0 without Docker):
 * a relay that remembered an answer re-checks it when this moved. */
uint64_t relay_names_version(const struct relay_ctx *ctx);

#endif
