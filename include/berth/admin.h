/* The --admin HTTP listener (evhttp): GET and HEAD of exact paths that
 * other modules register (/metrics, /status, /). Bounded: 8 KiB of
 * headers, 1 KiB of body, and 10 s: a connection idle, or slow to send a
 * request or read a reply, that long is closed. The number of connections
 * open at once has no cap of its own (libevent 2.1 offers none): only the
 * timeout and the process's file limit, shared with the ports, bound it,
 * which is why --admin belongs on loopback or a trusted network. An
 * unknown path gets 404, any other method 405. Not in docker-proxy mode:
 * one listener per port's process would make no sense. */
#ifndef BERTH_ADMIN_H
#define BERTH_ADMIN_H

#include <event2/event.h>
#include <stddef.h>

#include "berth/sockaddr.h"

struct admin;
struct evhttp_request;

typedef void admin_handler_fn(struct evhttp_request *req, void *arg);

/* Serves HTTP on addr (evhttp): request size/count limits set; GET/HEAD only. */
struct admin *admin_new(struct event_base *base, const struct addr *addr, char *err,
                        size_t errlen);
void admin_free(struct admin *a);

/* Registers a GET handler for an exact path ("/status", "/"). 0 or -1. */
int admin_route(struct admin *a, const char *path, admin_handler_fn *fn, void *arg);

#endif
