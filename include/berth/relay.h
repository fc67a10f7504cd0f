/* What every relay of one berth instance shares: the loop, the pipe pool,
 * scratch buffers and the tunables. Owned by struct berth (berth.c); the
 * relays only borrow it. Single-threaded: one relay_ctx per event loop. */
#ifndef BERTH_RELAY_H
#define BERTH_RELAY_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

struct pipe_pool;
struct registry;
struct udp_batch;

struct relay_ctx {
    struct event_base *base;
    struct pipe_pool *pipes;
    struct udp_batch *udp;      /* recvmmsg/sendmmsg buffers, made on demand */
    char *scratch;              /* read buffer of the buffered TCP path */
    size_t scratch_len;
    struct registry *reg;       /* resolves name targets; NULL without Docker */
    struct timeval connect_timeout;
    unsigned udp_timeout;       /* seconds */
    unsigned udp_max_flows;     /* per UDP port; the longest idle is evicted */
    unsigned max_conns;         /* per TCP port; 0 = unlimited */
    bool no_splice;             /* force the buffered TCP path */
};

struct relay_ctx *relay_ctx_new(struct event_base *base);
void relay_ctx_free(struct relay_ctx *ctx);

struct mapping;
struct addr;

/* The addresses a named mapping forwards to now, rotated to start at
 * *rr (which advances): IPv4 when the target has any, else IPv6, with the
 * mapping's port. Returns how many (0: nothing running by that name). */
size_t relay_resolve(struct relay_ctx *ctx, const struct mapping *m,
                     unsigned *rr, struct addr *out, size_t max);

#endif
