/* One TCP session: a client connection accepted by a listener, a
 * non-blocking connect to the target, then bytes moved both ways with
 * splice(2) through pooled pipes (or a buffered copy where splice cannot
 * work), half-closes and resets propagated.
 *
 * Ownership: the session owns both sockets and everything it allocates.
 * It frees itself when it ends and then calls the end callback; the owner
 * may also free it early with tcp_session_free (no callback then). */
#ifndef BERTH_TCP_RELAY_H
#define BERTH_TCP_RELAY_H

#include <stddef.h>

#include "berth/mapping.h"
#include "berth/relay.h"
#include "berth/sockaddr.h"

struct tcp_session;

/* The sessions of one listener, so it can count and free them. */
struct tcp_session_list {
    struct tcp_session *head;
    size_t count;
};

typedef void tcp_session_end_fn(void *arg);

/* Takes client_fd (non-blocking) in all cases: on failure it is closed and
 * NULL returned. m must outlive the session. targets: NULL to connect to
 * m->target, else the replicas to try in order (copied), each one refusing
 * passing the client on to the next. */
struct tcp_session *tcp_session_new(struct relay_ctx *ctx,
                                    struct tcp_session_list *list,
                                    const struct mapping *m, int client_fd,
                                    const struct addr *client,
                                    const struct addr *targets, size_t ntargets,
                                    tcp_session_end_fn *on_end, void *arg);
void tcp_session_free(struct tcp_session *s);

#endif
