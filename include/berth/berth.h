/* One berth instance: the event loop, the relay layer, and every published
 * port, whoever asked for it (the plan from the command line and config,
 * labels, a reload). All state hangs off struct berth, so tests can run
 * several in one process.
 * Errors: -1/NULL with a one-line reason in err. */
#ifndef BERTH_BERTH_H
#define BERTH_BERTH_H

#include <event2/event.h>
#include <stddef.h>

#include "berth/mapping.h"
#include "berth/plan.h"
#include "berth/relay.h"
#include "berth/sockaddr.h"

struct berth;
struct berth_port;
struct metrics;
struct registry;

/* An event_base tuned for berth: one thread, no locks, epoll changes
 * batched into the next epoll_wait. */
struct event_base *berth_event_base_new(void);

/* The plan stays the caller's and must live until berth_free or until a
 * berth_reload replaces it (the plan's ports copy their mappings: the
 * caller frees a replaced plan at once). reg (NULL: IP targets only) must
 * outlive the instance.
 * Signals are caught from here on: SIGINT and SIGTERM end berth_run (one
 * that arrives while starting up still means a clean stop); SIGHUP calls
 * the berth_on_reload function (none: logged, nothing else), SIGUSR1
 * logs a status line (ports, sessions, flows), SIGUSR2 and SIGALRM are
 * ignored. */
struct berth *berth_new(struct event_base *base, const struct plan *plan,
                        struct registry *reg);
/* Closes every port and every session and flow on them. */
void berth_free(struct berth *b);

/* The shared relay settings, adjustable before berth_start. */
struct relay_ctx *berth_ctx(struct berth *b);

/* Ports opened from now on count into m (metrics.h), each its own block
 * from publishing to closing; m must outlive them (NULL: none). */
void berth_set_metrics(struct berth *b, struct metrics *m);

/* docker-proxy mode: one process per port, so transparent mode's host
 * check runs once, never again every 30 s (tproxy_watch_set_once). */
void berth_set_docker_proxy(struct berth *b);

/* Binds every mapping of the plan, in order; nothing stays bound on
 * failure (the fds given are closed too). fds, when not NULL, gives per
 * mapping an already bound socket to adopt (or -1): docker-proxy mode's
 * fd 4, systemd's passed sockets (listen_fds.h). Comes before any
 * berth_publish: the plan's ports are the first. */
int berth_start(struct berth *b, const int *fds, char *err, size_t errlen);

/* Publishes one more port: refused when it collides with a port already
 * published, by the plan or by an earlier call, or when it cannot be
 * bound. m must stay until berth_unpublish (a port costs no copy of it:
 * a host may publish thousands). */
struct berth_port *berth_publish(struct berth *b, const struct mapping *m, char *err,
                                 size_t errlen);
/* Closes a port published by berth_publish, with its sessions and flows. */
void berth_unpublish(struct berth *b, struct berth_port *p);

/* What SIGHUP does: the front end re-reads its settings and calls
 * berth_reload. */
typedef void berth_reload_fn(void *arg);
void berth_on_reload(struct berth *b, berth_reload_fn *fn, void *arg);

/* Serves plan nw instead of the running one (after berth_start): mappings
 * the same in both (mapping_same) keep their sockets, sessions and flows;
 * new ones bind; removed ones stop taking clients (a TCP port's listening
 * socket closes at once) and close once their last session or flow ends
 * (UDP flows on --udp-timeout). -1 with the reason in err when a new
 * mapping cannot bind or takes a port a label holds: then nothing has
 * changed. A new mapping on the port of a removed one binds after it
 * closes (a removed UDP port then closes with its flows); a bind that
 * still fails then is logged and that mapping left out. --udp-timeout
 * follows nw on every port (flows open now too); --idle-timeout only on
 * ports the reload binds (each port's session list was made with its
 * timer); --tcp-keepalive and --max-conns do not change (set on the
 * listening sockets). nw: as for berth_new; the old plan may be freed
 * once this returned 0. */
int berth_reload(struct berth *b, const struct plan *nw, char *err, size_t errlen);

/* Runs the loop until SIGINT or SIGTERM (also one caught before the call).
 * Returns 0, or -1 if the loop failed. */
int berth_run(struct berth *b);

/* Sessions and flows open now, summed over every port. */
size_t berth_tcp_sessions(const struct berth *b);
size_t berth_udp_flows(const struct berth *b);

/* The address plan mapping i is bound to (port 0 in the plan reads back
 * the port the kernel chose). */
int berth_local_addr(const struct berth *b, size_t i, struct addr *out);

/* Raises the soft RLIMIT_NOFILE to the hard limit. */
void berth_raise_fd_limit(void);

/* /status: every published port, read-only. */
/* The port after p (NULL: the first), the plan's first and in order, then
 * those published later; NULL after the last. */
const struct berth_port *berth_port_next(const struct berth *b,
                                         const struct berth_port *p);
const struct mapping *berth_port_mapping(const struct berth_port *p);
/* The address p is bound to (a port 0 reads back as the kernel's choice). */
int berth_port_addr(const struct berth_port *p, struct addr *out);
/* Sessions (a TCP port) or flows (a UDP port) open on p now. */
size_t berth_port_active(const struct berth_port *p);

#endif
