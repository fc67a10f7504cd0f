/* A published TCP or SCTP port: the listening socket (accepting through the
 * socket toolkit's acceptor), name targets resolved per connection, and the
 * --max-conns limit. Errors: NULL with a one-line reason in err. */
#ifndef BERTH_LISTENER_H
#define BERTH_LISTENER_H

#include <stddef.h>

#include "berth/mapping.h"
#include "berth/metrics.h"
#include "berth/relay.h"

struct tcp_listener;

/* Takes fd, a listening socket (closed on failure). m must outlive the
 * listener. */
struct tcp_listener *tcp_listener_new(struct relay_ctx *ctx, const struct mapping *m,
                                      int fd, char *err, size_t errlen);
/* Closes the listening socket and every session it accepted. */
void tcp_listener_free(struct tcp_listener *l);
/* Stops accepting (a reload removed the port): the listening socket
 * closes now, so new clients are refused; the sessions go on until they
 * end. Free it once tcp_listener_sessions reads 0. */
void tcp_listener_stop(struct tcp_listener *l);
size_t tcp_listener_sessions(const struct tcp_listener *l);
/* Counts the port's connections, bytes and connects in stats (NULL: no
 * more); set before the first client, kept until the listener is freed. */
void tcp_listener_set_stats(struct tcp_listener *l, struct map_stats *stats);
/* -1 once stopped. */
int tcp_listener_fd(const struct tcp_listener *l);

#endif
