/* One TCP session: a client connection accepted by a listener, a
 * non-blocking connect to the target (to the replicas of a name in turn,
 * within one connect budget), then bytes moved both ways, each direction
 * by a tcp_pump (tcp_pump.h: small exchanges copied through the loop's
 * scratch buffer, bulk with splice(2) through pooled pipes, or copied where
 * splice cannot work), the target's socket registered once,
 * edge-triggered, from its connect to its close,
 * half-closes and resets propagated, and with an idle timeout a session
 * silent both ways that long reset. The target's socket gets the keepalive
 * settings once the session has relayed for a second (the client's has
 * them from the listener).
 *
 * Ownership: the session owns both sockets and everything it allocates.
 * It frees itself when it ends and then calls the end callback, always
 * from the loop (never inside tcp_session_new: even a target refused at
 * once is reported by tcp_connect from the loop); the owner may also free
 * it early with tcp_session_free (no callback then). */
#ifndef BERTH_TCP_RELAY_H
#define BERTH_TCP_RELAY_H

#include <stddef.h>

#include "berth/lru_timer.h"
#include "berth/mapping.h"
#include "berth/metrics.h"
#include "berth/relay.h"
#include "berth/sockaddr.h"

struct tcp_session;

/* The sessions of one listener, so it can count and free them, and, with
 * an idle timeout, expire them: the relaying ones in order of last
 * traffic, under one timer for the oldest (lru_timer.h). */
struct tcp_session_list {
    struct tcp_session *head;
    size_t count;
    struct lru_timer idle;   /* off without an idle timeout */
    struct lru_timer young;  /* relaying, keepalive not yet on the target's
                             * socket, in order of start; off without
                             * keepalive */
    unsigned eager_skip;     /* sessions left that wait for the client's first
                             * bytes instead of reading them at the connect */
    struct map_stats *stats; /* the port's counters; NULL: none kept */
};

/* An empty list for sessions on ctx (ctx->idle_timeout_ms as it is now).
 * Returns 0, or -1 when out of memory. */
int tcp_session_list_init(struct tcp_session_list *list, struct relay_ctx *ctx);
/* Frees every session of the list (without end callbacks) and its timers. */
void tcp_session_list_clear(struct tcp_session_list *list);

typedef void tcp_session_end_fn(void *arg);

/* Takes client_fd (non-blocking) in all cases: on failure (out of memory)
 * it is closed and NULL returned; a target that cannot be reached ends the
 * session later, from the loop. m must outlive the session. targets: NULL
 * to connect to m->target, else the replicas to try in order (copied),
 * each one refusing or silent passing the client on to the next, all
 * within one ctx->connect_timeout (see tcp_connect.h). */
struct tcp_session *tcp_session_new(struct relay_ctx *ctx,
                                    struct tcp_session_list *list,
                                    const struct mapping *m, int client_fd,
                                    const struct addr *client,
                                    const struct addr *targets, size_t ntargets,
                                    tcp_session_end_fn *on_end, void *arg);
void tcp_session_free(struct tcp_session *s);

#endif
