/* The relay layer: what every relay of one berth instance shares (the
 * loop, the pipe pool, scratch and batch buffers, the tunables) and how a
 * named target becomes addresses (registry lookup, rotation over
 * replicas, replicas that just failed passed over). Relays (listener.c,
 * tcp_connect.c, tcp_relay.c, udp_relay.c) use this and nothing above it.
 * Single-threaded: one relay_ctx per event loop.
 * Errors: relay_ctx_new returns NULL (out of memory). */
#ifndef BERTH_RELAY_H
#define BERTH_RELAY_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/log.h"
#include "berth/mapping.h"

struct pipe_pool;
struct registry;
struct dgram_batch;
struct dgram_out;
struct relay_passed;
struct log_limit;
struct transparent;

struct relay_ctx {
    struct event_base *base;
    struct pipe_pool *pipes;
    struct dgram_batch *udp; /* recvmmsg/sendmmsg buffers, made on demand */
    char *scratch;           /* read buffer of the buffered TCP path */
    size_t scratch_len;
    struct registry *reg;        /* set at creation; NULL without Docker */
    struct relay_passed *passed; /* replicas passed over; made on first use */
    struct log_limit *said;      /* lines said per connection, rate-limited */
    struct event *said_timer;    /* their summaries, when due */
    /* UDP replies of one loop turn waiting to leave, made on demand. */
    struct dgram_out *udp_out;
    /* Tunables, adjustable until the first listener starts. */
    struct timeval connect_timeout; /* one budget for every try of a connection */
    unsigned udp_timeout;           /* seconds */
    unsigned udp_max_flows;         /* per UDP port; the longest idle is evicted */
    unsigned max_conns;             /* per TCP port; 0 = unlimited */
    struct sock_keepalive tcp_keepalive; /* both sockets of a session; idle 0: off */
    /* What a new socket starts with, read once: settings equal to these
     * are not set again on each target socket. */
    struct sock_keepalive tcp_keepalive_kernel;
    uint64_t idle_timeout_ms; /* TCP session without a byte either way; 0 = never */
    unsigned pass_over_ms;    /* how long a replica that failed goes last */
    bool no_splice;           /* force the buffered TCP path */
    /* Why transparent mappings cannot work on this host, per target
     * family and protocol ([IPv6 target][UDP]), in the start-up check's
     * words (tproxy_check.h), or "" when they can (or were not checked):
     * with a reason, each such connection connects normally. */
    char transparent_broken[2][2][256];
    /* Transparent mode's interface table and what it learnt (no
     * capability), made by the first transparent connection (transparent.h). */
    struct transparent *transparent;
};

/* reg (may be NULL: IP targets only) must outlive the context. */
struct relay_ctx *relay_ctx_new(struct event_base *base, struct registry *reg);
void relay_ctx_free(struct relay_ctx *ctx);

/* The loop's datagram batch, made on first use. NULL: out of memory. */
struct dgram_batch *relay_dgram_batch(struct relay_ctx *ctx);

/* The loop's queue of outgoing datagrams, made on first use. NULL: out of
 * memory. */
struct dgram_out *relay_dgram_out(struct relay_ctx *ctx);

/* The addresses a named mapping forwards to now, rotated to start at
 * *rr (which advances): IPv4 when the target has any, else IPv6, with the
 * mapping's port. For TCP, replicas passed over come after the others (in
 * the same rotation): tried only when the rest fail, and first again when
 * every one is passed over. Returns how many (0: nothing running by that
 * name). */
size_t relay_resolve(struct relay_ctx *ctx, const struct mapping *m, unsigned *rr,
                     struct addr *out, size_t max);

/* A TCP connect to a, a replica of a name target, was refused or timed
 * out: relay_resolve passes it over for ctx->pass_over_ms. Not for berth's
 * own shortages (sock_err_is_resource): the replica is not to blame. */
void relay_pass_over(struct relay_ctx *ctx, const struct addr *a);

/* Why relay_resolve found nothing for m's name, for its client's line:
 * "no running container 'web'" once the engine was synced; otherwise what
 * is known of the engine, e.g. "'web': nothing known yet: berth cannot
 * follow the Docker engine: cannot connect to /x: no such socket (...)". */
void relay_unresolved(const struct relay_ctx *ctx, const struct mapping *m, char *out,
                      size_t outlen);

/* Which reason relay_unresolved would give now, without formatting it: a
 * number that differs with the reason and the engine's why (a key for
 * relay_log_limited). */
uint64_t relay_unresolved_key(const struct relay_ctx *ctx);

/* Changes whenever a name may resolve differently (0 without Docker):
 * a relay that remembered an answer re-checks it when this moved. */
uint64_t relay_names_version(const struct relay_ctx *ctx);

/* One line about one client of a mapping, as every relay says it:
 * "127.0.0.1:8080->web:80/tcp client 10.0.0.9:51234: <message>". Formats
 * nothing when level is filtered out (it sits on per-connection paths). */
void relay_log(enum log_level level, const struct mapping *m,
               const struct addr *client, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* What repeats per connection, flow or datagram: relay_log_limited's key
 * is one of these mixed with what tells two of a kind apart (relay_key). */
enum relay_said {
    RELAY_SAID_UNRESOLVED = 1, /* a name resolves to nothing */
    RELAY_SAID_CONNECT,        /* the target (the last replica) failed */
    RELAY_SAID_NEXT,           /* a replica failed, the next is tried */
    RELAY_SAID_BUDGET,         /* the connect budget ran out */
    RELAY_SAID_SHORTAGE,       /* berth's own: out of fds, of memory */
    RELAY_SAID_FLOW,           /* a UDP flow could not be opened */
    RELAY_SAID_TRANSPARENT,    /* a transparent mapping's connection fell back */
};

/* kind, an errno (or 0) and an address (or NULL) as one key. */
uint64_t relay_key(enum relay_said kind, int err, const struct addr *a);

/* relay_log for a line that may repeat once per client: said the first
 * time (scope: the port, m; and key), then only counted for 10 s, and
 * summarised without the client if it repeated:
 *   "127.0.0.1:8080->10.0.0.5:80/tcp: connect 10.0.0.5:80: Connection
 *    refused (300 times in the last 10 s)"
 * once per 10 s while it goes on. Nothing is formatted for a line not
 * said. */
void relay_log_limited(struct relay_ctx *ctx, enum log_level level,
                       const struct mapping *m, const struct addr *client,
                       uint64_t key, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* A client of m finds nothing by its name: relay_log_limited at
 * LOG_INFO of relay_unresolved's text followed by suffix (e.g. "" or
 * "; datagram dropped"), keyed by relay_unresolved_key. The text is
 * formatted only when the line is said: this runs per refused client or
 * dropped datagram. */
void relay_log_unresolved(struct relay_ctx *ctx, const struct mapping *m,
                          const struct addr *client, const char *suffix);

/* m's port goes away: the summaries of its lines are said now. */
void relay_forget(struct relay_ctx *ctx, const struct mapping *m);

/* /status: whether relay_resolve passes a over now (a TCP replica that
 * failed within the last ctx->pass_over_ms). */
bool relay_passed_over(const struct relay_ctx *ctx, const struct addr *a);

#endif
