/* Connecting a TCP session to its target: a non-blocking connect to the
 * mapping's address, or to the replicas of a name in turn, all within one
 * connect budget (ctx->connect_timeout), each try an even share of what is
 * left of it. A replica that refuses, is unreachable or stays silent is
 * passed over by later connections (relay_pass_over) and the next one is
 * tried; berth's own shortage (fds, memory) blames no replica and ends the
 * attempt at once.
 *
 * Ownership: the connect owns its socket and its copy of the targets; the
 * connected socket passes to the caller through the callback. The creator
 * frees the connect, also from inside that callback. */
#ifndef BERTH_TCP_CONNECT_H
#define BERTH_TCP_CONNECT_H

#include <stddef.h>

#include "berth/mapping.h"
#include "berth/relay.h"
#include "berth/sctp_sock.h"
#include "berth/sockaddr.h"

struct tcp_connect;

/* The outcome, reported once, from the loop (never from inside
 * tcp_connect_new): fd >= 0 is the connected socket, now the caller's;
 * fd -1 means every try failed, logged already, err the last error. */
typedef void tcp_connect_fn(void *arg, int fd, int err);

/* Starts connecting for the client at *client (read for log lines; it and
 * m must outlive the connect). targets: NULL for m->target, else the n
 * replicas of m's name to try in order (copied). streams: for SCTP, the
 * client association's stream counts, which the target's is asked to
 * match (copied; NULL: the kernel's defaults). NULL: out of memory,
 * nothing started. */
struct tcp_connect *tcp_connect_new(struct relay_ctx *ctx, const struct mapping *m,
                                    const struct addr *client,
                                    const struct sctp_streams *streams,
                                    const struct addr *targets, size_t n,
                                    tcp_connect_fn *done, void *arg);
/* How the connect watches its socket: edge-triggered, readable, writable
 * and the peer's FIN. A caller that keeps watching the connected socket
 * with events that together ask for exactly these, added before it frees
 * the connect, costs no epoll_ctl at the handover. */
#define TCP_CONNECT_EVENTS (EV_READ | EV_WRITE | EV_CLOSED | EV_ET)

/* After a success: the events the completion reported (EV_READ,
 * EV_CLOSED: the target already sent, or shut; edge-triggered, they are
 * not reported again). */
short tcp_connect_seen(const struct tcp_connect *c);

/* Stops a connect under way (its socket closed, no callback) or frees one
 * that reported. */
void tcp_connect_free(struct tcp_connect *c);

#endif
