/* Accepting on a listening TCP socket, for every TCP listener berth has
 * (published ports, DNS over TCP): one connection per wake-up while they
 * come one at a time, in batches once a burst is found,
 * and when the process runs out of fds (or the kernel of memory) a growing
 * pause instead of a spin on a socket that stays readable; waiting clients
 * stay in the kernel backlog meanwhile. The owner can also pause accepting
 * (a connection limit) and resume it.
 * Errors: acceptor_new returns NULL (errno ENOMEM). */
#ifndef BERTH_ACCEPTOR_H
#define BERTH_ACCEPTOR_H

#include <event2/event.h>
#include <stdbool.h>

#include "berth/sockaddr.h"

struct acceptor;

/* A new connection: fd is non-blocking and close-on-exec, and the callee
 * owns it. The callee may pause the acceptor; it may not free it. */
typedef void acceptor_fn(void *arg, int fd, const struct addr *peer);

/* Watches fd (which the caller keeps owning) and starts accepting. label
 * names the listener in log lines and must outlive the acceptor. */
struct acceptor *acceptor_new(struct event_base *base, int fd, const char *label,
                              acceptor_fn *fn, void *arg);
void acceptor_free(struct acceptor *a);

/* Stops taking connections until acceptor_resume. */
void acceptor_pause(struct acceptor *a);
/* Takes connections again, unless a backoff is running (it resumes by
 * itself when it ends, if not paused again meanwhile). */
void acceptor_resume(struct acceptor *a);

#endif
