/* A published TCP port: the listening socket (accepting through the
 * socket toolkit's acceptor), name targets resolved per connection, and the
 * --max-conns limit. Errors: NULL with a one-line reason in err. */
#ifndef BERTH_LISTENER_H
#define BERTH_LISTENER_H

#include <stddef.h>

#include "berth/mapping.h"
#include "berth/relay.h"

struct tcp_listener;

/* Takes fd, a listening socket (closed on failure). m must outlive the
 * listener. */
struct tcp_listener *tcp_listener_new(struct relay_ctx *ctx, const struct mapping *m,
                                      int fd, char *err, size_t errlen);
/* Closes the listening socket and every session it accepted. */
void tcp_listener_free(struct tcp_listener *l);
size_t tcp_listener_sessions(const struct tcp_listener *l);
int tcp_listener_fd(const struct tcp_listener *l);

#endif
