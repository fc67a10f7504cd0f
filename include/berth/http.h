/* HTTP/1.1 GETs on the event loop: libcurl's multi-socket interface driven
 * by libevent, so a slow or stuck Docker daemon never blocks forwarding.
 * Over a unix socket, TCP, TLS with client certificates, or ssh.
 *
 * Callbacks run from the loop, never from inside another call of this
 * module; a request is freed right after its done callback returns. */
#ifndef BERTH_HTTP_H
#define BERTH_HTTP_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

#include "berth/ssh_dial.h"

struct http;
struct http_req;

/* Where requests go; strings are copied per request. */
struct http_target {
    const char *unix_path;       /* non-NULL: talk HTTP over this unix socket */
    const char *base_url;        /* "http://localhost" or "https://host:2376" */
    const char *ca, *cert, *key; /* TLS files, or NULL */
    bool verify;                 /* verify the server's certificate */
    /* ssh.host non-NULL: every connection is its own `ssh ... docker system
     * dial-stdio` (ssh_dial.h), HTTP over its stdio; base_url is ignored
     * ("http://docker"). One http object serves one ssh destination:
     * libcurl reuses a connection by the URL's host, the same for all. */
    struct ssh_dest ssh;
};

/* Why a request got no HTTP answer, for callers that explain failures
 * (docker_fault.h): libcurl's result and the OS error behind it tell a
 * missing socket from a refused one or a TLS failure; text is libcurl's
 * own message (or berth's, when berth ended the request). */
struct http_error {
    int code;         /* a CURLcode; 0 when berth ended the request, or
                         over ssh (text then names the ssh:// URL and says
                         what ssh or berth's start of it reported) */
    int os_errno;     /* CURLINFO_OS_ERRNO: the last connect's errno, or 0 */
    const char *text; /* never NULL */
};

struct http_callbacks {
    /* Headers complete: status code and the header block ("Name: v\r\n"...).
     * Optional. */
    void (*headers)(void *arg, long status, const char *headers);
    /* A piece of a successful answer's body. When NULL, the body is
     * collected and passed to done. */
    void (*data)(void *arg, const char *data, size_t len);
    /* Finished: status 0 and error set when no HTTP answer came. */
    void (*done)(void *arg, long status, const char *body, size_t len,
                 const struct http_error *error);
    void *arg;
};

/* Loads libcurl on first use; NULL with a reason in err if it cannot. */
struct http *http_new(struct event_base *base, char *err, size_t errlen);
/* Cancels every request still running (without callbacks). */
void http_free(struct http *h);

/* Starts GET base_url + path. timeout_ms 0 = none (for streams).
 * body_max bounds what is held of a successful (2xx) answer: the whole
 * body when collected for done, else what waits for one data callback;
 * past it the request fails ("answer larger than ..."). Returns NULL on
 * failure (no callback then).
 *
 * Whatever the peer sends, memory stays bounded: an answer that is not a
 * success never reaches the data callback; done gets its first 4 KiB as
 * the body (the rest is not read), or what came within 2 s of its headers.
 * Header blocks over 64 KiB fail the request. */
struct http_req *http_get(struct http *h, const struct http_target *t,
                          const char *path, long timeout_ms, size_t body_max,
                          const struct http_callbacks *cb);
/* Stops a request: none of its callbacks runs after this. Allowed from
 * any callback of this module, the request's own included. */
void http_cancel(struct http_req *r);

/* Finds a header's value in a header block (case-insensitive name) and
 * copies it into out. Returns 0, or -1 if absent. */
int http_header_value(const char *headers, const char *name, char *out, size_t len);

#endif
