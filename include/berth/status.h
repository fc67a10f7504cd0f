/* The admin server's /status and / (registered by main through
 * admin_route): every published port (from the command line, the config
 * file, containers' labels) with what it resolves to now, its sessions or
 * flows and switches; the Docker engine's state; berth's version and
 * uptime. /status is JSON; / one self-contained HTML page (inline CSS and
 * script, nothing fetched but /status) rendered by the server and then
 * refreshed by its script every 2 s. Read-only: nothing here changes berth.
 * Errors: status_new NULL (out of memory); status_json/status_page -1
 * (out of memory). */
#ifndef BERTH_STATUS_H
#define BERTH_STATUS_H

#include <event2/buffer.h>

struct berth;
struct docker;
struct status;
struct evhttp_request;

/* b (and its registry) and docker (NULL: berth follows no engine) must
 * outlive s. Uptime counts from here: made once berth serves. */
struct status *status_new(struct berth *b, const struct docker *docker);
void status_free(struct status *s);

/* The /status document (JSON, README "Admin endpoint") appended to out. */
int status_json(struct status *s, struct evbuffer *out);
/* The / page appended to out, its table filled from the same document. */
int status_page(struct status *s, struct evbuffer *out);

/* admin_handler_fn handlers for "/status" and "/"; arg is the status. */
void status_serve_json(struct evhttp_request *req, void *arg);
void status_serve_page(struct evhttp_request *req, void *arg);

#endif
