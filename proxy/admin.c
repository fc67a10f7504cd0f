#include "berth/admin.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "berth/log.h"
#include "berth/metrics.h"

/* A scraper or a browser sends a few hundred bytes of headers and no body;
 * anything much larger is not one of them. */
#define ADMIN_MAX_HEADERS 8192
#define ADMIN_MAX_BODY 1024
/* Also what bounds connections: libevent 2.1 has no cap on their number,
 * so an idle or slow one is closed after this long (see admin.h). */
#define ADMIN_TIMEOUT_S 10
#define ADMIN_MAX_ROUTES 16

struct route {
    struct admin *a;
    admin_handler_fn *fn;
    void *arg;
};

struct admin {
    struct evhttp *http;
    struct route routes[ADMIN_MAX_ROUTES];
    size_t nroutes;
};

static bool method_ok(struct evhttp_request *req)
{
    enum evhttp_cmd_type t = evhttp_request_get_command(req);
    if (t == EVHTTP_REQ_GET || t == EVHTTP_REQ_HEAD)
        return true;
    /* evhttp_send_error would drop the Allow header RFC 9110 asks for. */
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *body = evbuffer_new();
    evhttp_add_header(h, "Allow", "GET, HEAD");
    evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
    evhttp_add_header(h, "Connection", "close");
    if (body)
        evbuffer_add_printf(body, "405 method not allowed: GET or HEAD only\n");
    evhttp_send_reply(req, 405, "Method Not Allowed", body);
    if (body)
        evbuffer_free(body);
    return false;
}

static void on_route(struct evhttp_request *req, void *arg)
{
    struct route *r = arg;
    if (method_ok(req))
        r->fn(req, r->arg);
}

static void on_other(struct evhttp_request *req, void *arg)
{
    (void)arg;
    if (method_ok(req)) /* a HEAD's 404 without evhttp's error page */
        metrics_http_reply(req, HTTP_NOTFOUND, "Not Found", NULL, NULL);
}

struct admin *admin_new(struct event_base *base, const struct addr *addr, char *err,
                        size_t errlen)
{
    char where[ADDR_STRLEN];
    addr_format(addr, where, sizeof where);
    struct admin *a = calloc(1, sizeof *a);
    if (!a || !(a->http = evhttp_new(base))) {
        snprintf(err, errlen, "admin %s: out of memory", where);
        free(a);
        return NULL;
    }
    /* Bound here rather than by evhttp_bind_socket, so a failure says why
     * (in use, not an address of this host) as --dns and ports do. */
    int fd = sock_bind_opt(addr, SOCK_STREAM, 0, false);
    if (fd < 0) {
        snprintf(err, errlen, "admin: listen tcp %s: %s", where, strerror(errno));
        admin_free(a);
        return NULL;
    }
    if (!evhttp_accept_socket_with_handle(a->http, fd)) {
        snprintf(err, errlen, "admin %s: cannot watch listener", where);
        close(fd);
        admin_free(a);
        return NULL;
    }
    evhttp_set_max_headers_size(a->http, ADMIN_MAX_HEADERS);
    evhttp_set_max_body_size(a->http, ADMIN_MAX_BODY);
    evhttp_set_timeout(a->http, ADMIN_TIMEOUT_S);
    /* Every method evhttp knows reaches on_route/on_other, which answer
     * anything but GET and HEAD with 405 (evhttp itself would say 501). */
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                            EVHTTP_REQ_PATCH | EVHTTP_REQ_TRACE);
    evhttp_set_gencb(a->http, on_other, a);
    log_info("admin: serving HTTP on %s", where);
    return a;
}

void admin_free(struct admin *a)
{
    if (!a)
        return;
    /* Closes the listener and every connection. */
    if (a->http)
        evhttp_free(a->http);
    free(a);
}

int admin_route(struct admin *a, const char *path, admin_handler_fn *fn, void *arg)
{
    if (!a || a->nroutes == ADMIN_MAX_ROUTES)
        return -1;
    struct route *r = &a->routes[a->nroutes];
    *r = (struct route){a, fn, arg};
    if (evhttp_set_cb(a->http, path, on_route, r) != 0)
        return -1;
    a->nroutes++;
    return 0;
}
