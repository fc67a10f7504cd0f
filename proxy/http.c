#include "berth/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "berth/clock.h"
#include "berth/curl_api.h"
#include "berth/guard.h"
#include "berth/invariant.h"
#include "berth/log.h"

/* What is kept of an answer that is not a success, whatever its length
 * or framing (chunked, a huge Content-Length, endless): enough for the
 * daemon's error message. The rest is not read: the transfer ends there. */
#define ERROR_BODY_MAX 4096
/* How long such a body may take after its headers: a stream that answers
 * 500 and then trickles or stalls must not hold up the caller's retry. */
#define ERROR_BODY_WAIT_MS 2000
/* ssh processes (connections) at once over ssh: sshd drops unauthenticated
 * connections past its MaxStartups (10 by default), and a sync asks for
 * 16 inspects at once; libcurl queues the rest and reuses connections. */
#define SSH_CONNECTIONS_MAX 8L
/* Kept of one answer's header block, for the headers callback. */
#define HEADERS_MAX 16384
/* Every header line of one answer, interim blocks (1xx) included: past
 * this the answer is refused (libcurl keeps them too). */
#define HEADER_BYTES_MAX (64u << 10)

struct http_req {
    struct http *h;
    struct http_req *prev, *next;
    CURL *easy;
    struct http_callbacks cb;
    /* Callers cancel requests from callbacks, this one's own included:
     * cancelled, it gets no more callbacks and is freed once they return. */
    struct guard guard;
    char *body; /* collected for done, or waiting for the data callback */
    size_t len, cap;
    size_t body_max;
    char headers[HEADERS_MAX];
    size_t hlen;
    size_t hbytes; /* every header byte so far */
    bool headers_done;
    bool headers_pending; /* complete, not yet given to the caller */
    long status;
    bool too_big, headers_too_big;
    bool cut; /* an error answer, ended after its first ERROR_BODY_MAX bytes */
    struct event *error_wait; /* ends an error answer's slow body */
    char error[CURL_ERROR_SIZE];
    char where[300]; /* for messages: the socket path or URL */
    /* Over ssh: the destination (copied: libcurl opens connections later,
     * from inside its own calls), what starting ssh failed with, and the
     * message done gets. */
    bool ssh;
    struct ssh_dest dest;
    char ssh_user[128], ssh_host[256], ssh_path[256];
    char ssh_error[200];
    char ssh_message[600];
    struct curl_slist *resolve;
};

struct http {
    const struct curl_api *curl;
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    struct http_req *reqs;
    /* Outlives the multi handle: libcurl closes cached connections, ssh
     * ones included, in multi_cleanup. */
    struct ssh_dial *ssh;
};

/* Per-socket watcher that libcurl asks for through the socket callback. */
struct watch {
    struct http *h;
    struct event *ev;
};

static void check_done(struct http *h);
static void dispatch(struct http *h);
static void finish(struct http_req *r, long status, const struct http_error *error);

static bool success(long status) { return status >= 200 && status < 300; }

static void req_free(struct http_req *r)
{
    struct http *h = r->h;
    if (r->error_wait)
        event_free(r->error_wait);
    h->curl->multi_remove_handle(h->multi, r->easy);
    h->curl->easy_cleanup(r->easy);
    if (r->resolve)
        h->curl->slist_free_all(r->resolve);
    if (r->prev)
        r->prev->next = r->next;
    else
        h->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    free(r->body);
    free(r);
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct http *h = arg;
    int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) |
                (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;
    h->curl->multi_socket_action(h->multi, fd, flags, &running);
    dispatch(h);
    check_done(h);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct http *h = arg;
    (void)fd;
    (void)what;
    int running;
    h->curl->multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    dispatch(h);
    check_done(h);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct http *h = userp;
    struct watch *w = socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (w) {
            if (w->ev)
                event_free(w->ev);
            free(w);
            h->curl->multi_assign(h->multi, s, NULL);
        }
        return 0;
    }
    short events = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
                   (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (!w) {
        if (!(w = calloc(1, sizeof *w)))
            return -1;
        w->h = h;
        h->curl->multi_assign(h->multi, s, w);
    } else if (w->ev) {
        event_free(w->ev);
    }
    w->ev = event_new(h->base, s, events, on_socket_event, h);
    return w->ev ? event_add(w->ev, NULL) : -1;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct http *h = userp;
    (void)multi;
    if (timeout_ms < 0) {
        evtimer_del(h->timer);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    return evtimer_add(h->timer, &tv);
}

static void on_error_wait(evutil_socket_t fd, short what, void *arg)
{
    struct http_req *r = arg;
    (void)fd;
    (void)what;
    finish(r, r->status, NULL);
}

/* libcurl forbids calling back into it from its callbacks, and callers
 * start and cancel requests from theirs. So curl's callbacks only record;
 * dispatch() hands headers and streamed data over once curl returned. */
static void deliver_headers(struct http_req *r)
{
    if (r->headers_done)
        return;
    r->headers_done = true;
    r->headers_pending = true;
    r->h->curl->easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
    if (success(r->status) || !r->status) /* a success, or no answer at all */
        return;
    /* Without the timer the answer simply gets its own timeout, if any. */
    struct timeval tv = clock_tv(ERROR_BODY_WAIT_MS);
    if ((r->error_wait = evtimer_new(r->h->base, on_error_wait, r)))
        evtimer_add(r->error_wait, &tv);
}

/* Hands r's pending headers or a piece of its body to the caller. Returns
 * whether a callback ran: it may have cancelled any request. */
static bool dispatch_req(struct http_req *r)
{
    bool ran = false;
    guard_enter(&r->guard);
    if (r->headers_pending) {
        r->headers_pending = false;
        if (r->cb.headers) {
            r->cb.headers(r->cb.arg, r->status, r->headers);
            ran = true;
        }
    }
    /* An error answer's body is not the stream: it goes to done. */
    if (!ran && r->cb.data && r->len && success(r->status)) {
        char *b = r->body;
        size_t n = r->len;
        r->body = NULL;
        r->len = r->cap = 0;
        r->cb.data(r->cb.arg, b, n);
        free(b);
        ran = true;
    }
    if (guard_leave(&r->guard))
        req_free(r);
    return ran;
}

static bool dispatch_one(struct http *h)
{
    for (struct http_req *r = h->reqs; r; r = r->next)
        if (!guard_ending(&r->guard) && dispatch_req(r))
            return true; /* the list may have changed: rescan */
    return false;
}

static void dispatch(struct http *h)
{
    while (dispatch_one(h))
        ;
}

static size_t header_cb(char *data, size_t size, size_t n, void *arg)
{
    struct http_req *r = arg;
    size_t len = size * n;
    if ((r->hbytes += len) > HEADER_BYTES_MAX) {
        r->headers_too_big = true;
        return 0; /* makes libcurl abort the transfer */
    }
    /* A new status line (after a 100 or a redirect) restarts the block. */
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0)
        r->hlen = 0;
    if (len == 2 && data[0] == '\r') {
        long status = 0;
        r->h->curl->easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200)
            deliver_headers(r);
        return len;
    }
    if (r->hlen + len < sizeof r->headers) {
        memcpy(r->headers + r->hlen, data, len);
        r->hlen += len;
        r->headers[r->hlen] = '\0';
    }
    return len;
}

/* Appends to the body; false when out of memory. */
static bool keep(struct http_req *r, const char *data, size_t len)
{
    if (r->len + len + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + len + 1)
            cap *= 2;
        char *b = realloc(r->body, cap);
        if (!b)
            return false;
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, len);
    r->len += len;
    r->body[r->len] = '\0';
    return true;
}

static size_t write_cb(char *data, size_t size, size_t n, void *arg)
{
    struct http_req *r = arg;
    size_t len = size * n;
    deliver_headers(r);
    if (!success(r->status)) {
        size_t room = ERROR_BODY_MAX - r->len;
        if (len <= room)
            return keep(r, data, len) ? len : 0;
        keep(r, data, room);
        r->cut = true;
        return 0; /* makes libcurl abort the transfer */
    }
    /* A collected body, or what waits for the data callback (a streamed
     * one is handed over after every read, so this bounds a piece). */
    if (r->len + len > r->body_max) {
        r->too_big = true;
        return 0;
    }
    return keep(r, data, len) ? len : 0;
}

/* The request ended (error NULL: with an HTTP answer): headers and data
 * not yet handed over, then done, then it is freed. */
static void finish(struct http_req *r, long status, const struct http_error *error)
{
    guard_enter(&r->guard);
    deliver_headers(r);
    dispatch(r->h);                             /* headers and data before done */
    if (!guard_ending(&r->guard) && r->cb.done) /* unless they cancelled r */
        r->cb.done(r->cb.arg, error ? 0 : status, r->body ? r->body : "", r->len,
                   error);
    guard_end(&r->guard); /* finished: freed right after done */
    if (guard_leave(&r->guard))
        req_free(r);
}

/* libcurl's socket hooks for ssh: instead of the placeholder address the
 * URL's host resolved to, libcurl connects the socket ssh_dial made to
 * the address ssh_dial listens on (ssh_dial.h says why not a socketpair),
 * and closes it through ssh_dial so the ssh process ends with it. */
static curl_socket_t ssh_open_cb(void *arg, curlsocktype purpose,
                                 struct curl_sockaddr *address)
{
    struct http_req *r = arg;
    struct sockaddr_un un;
    socklen_t len;
    (void)purpose;
    int fd = ssh_dial_open(r->h->ssh, &r->dest, &un, &len, r->ssh_error,
                           sizeof r->ssh_error);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    /* An abstract autobound name is 8 bytes: it fits where libcurl keeps
     * the address (a sockaddr_storage, of which addr is the start). */
    INVARIANT(len <= sizeof address->addr);
    address->family = AF_UNIX;
    address->socktype = SOCK_STREAM;
    address->protocol = 0;
    address->addrlen = len;
    memcpy(&address->addr, &un, len);
    return fd;
}

static int ssh_close_cb(void *arg, curl_socket_t fd)
{
    return ssh_dial_close(arg, fd);
}

/* A request over ssh that got no answer: what ssh said (or why it could
 * not start) tells more than libcurl's "Empty reply from server". */
static void ssh_failure(struct http_req *r, struct http_error *failure)
{
    const char *said = r->ssh_error[0] ? r->ssh_error : ssh_dial_last_error(r->h->ssh);
    snprintf(r->ssh_message, sizeof r->ssh_message, "%s: %s", r->where,
             *said ? said : failure->text);
    failure->code = 0;
    failure->os_errno = 0;
    failure->text = r->ssh_message;
}

static void check_done(struct http *h)
{
    CURLMsg *msg;
    int left;
    while ((msg = h->curl->multi_info_read(h->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct http_req *r = NULL;
        h->curl->easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        long status = 0, os_errno = 0;
        struct http_error failure = {.code = msg->data.result, .text = r->error};
        const struct http_error *error = &failure;
        if (r->cut) {
            status = r->status;
            error = NULL;
        } else if (r->too_big) {
            snprintf(r->error, sizeof r->error, "answer larger than %zu KiB",
                     r->body_max >> 10);
            failure.code = 0;
        } else if (r->headers_too_big) {
            snprintf(r->error, sizeof r->error, "headers larger than %u KiB",
                     HEADER_BYTES_MAX >> 10);
            failure.code = 0;
        } else if (msg->data.result == CURLE_COULDNT_CONNECT) {
            /* libcurl names a host and port even for unix sockets. */
            snprintf(r->error, sizeof r->error, "cannot connect to %.200s", r->where);
        } else if (msg->data.result != CURLE_OK) {
            if (!r->error[0])
                failure.text = h->curl->easy_strerror(msg->data.result);
        } else {
            h->curl->easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
            error = NULL;
        }
        /* What the OS said is what tells a missing socket from a refused
         * one: libcurl's own text says the same for both. */
        if (error && failure.code) {
            h->curl->easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &os_errno);
            failure.os_errno = (int)os_errno;
        }
        if (r->ssh && error && failure.code) /* not berth's own reasons */
            ssh_failure(r, &failure);
        else if (r->ssh)
            ssh_dial_forget(h->ssh);
        finish(r, status, error);
    }
}

struct http *http_new(struct event_base *base, char *err, size_t errlen)
{
    const struct curl_api *curl = curl_api_load(err, errlen);
    if (!curl)
        return NULL;
    struct http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->curl = curl;
    h->base = base;
    if (!(h->multi = h->curl->multi_init()) || !(h->ssh = ssh_dial_new(base)) ||
        !(h->timer = evtimer_new(base, on_timer, h))) {
        snprintf(err, errlen, "cannot set up libcurl");
        http_free(h);
        return NULL;
    }
    h->curl->multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    h->curl->multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    h->curl->multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    h->curl->multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    return h;
}

void http_free(struct http *h)
{
    if (!h)
        return;
    while (h->reqs)
        req_free(h->reqs);
    if (h->multi)
        h->curl->multi_cleanup(h->multi);
    ssh_dial_free(h->ssh);
    if (h->timer)
        event_free(h->timer);
    free(h);
}

/* Copies dest into r and points libcurl's socket hooks at ssh_dial. */
static int ssh_options(struct http_req *r, const struct ssh_dest *dest)
{
    const struct curl_api *curl = r->h->curl;
    const char *user = dest->user ? dest->user : "";
    const char *path = dest->path ? dest->path : "";
    if (strlen(user) >= sizeof r->ssh_user ||
        strlen(dest->host) >= sizeof r->ssh_host || strlen(path) >= sizeof r->ssh_path)
        return -1;
    r->ssh = true;
    strcpy(r->ssh_user, user);
    strcpy(r->ssh_host, dest->host);
    strcpy(r->ssh_path, path);
    r->dest = (struct ssh_dest){r->ssh_host, r->ssh_user, r->ssh_path, dest->port};
    ssh_dest_url(&r->dest, r->where, sizeof r->where);
    /* The URL's host is a placeholder no resolver may be asked about. */
    if (!(r->resolve = curl->slist_append(NULL, "docker:80:127.0.0.1")))
        return -1;
    CURL *e = r->easy;
    /* Per host, and the host is the same placeholder for every request
     * of this http object (one ssh destination), so this bounds them all. */
    curl->multi_setopt(r->h->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                       SSH_CONNECTIONS_MAX);
    curl->easy_setopt(e, CURLOPT_RESOLVE, r->resolve);
    curl->easy_setopt(e, CURLOPT_TCP_NODELAY, 0L); /* a unix socket has no TCP */
    curl->easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, ssh_open_cb);
    curl->easy_setopt(e, CURLOPT_OPENSOCKETDATA, r);
    /* libcurl keeps the close hook with the connection, which outlives r. */
    curl->easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, ssh_close_cb);
    curl->easy_setopt(e, CURLOPT_CLOSESOCKETDATA, r->h->ssh);
    return 0;
}

struct http_req *http_get(struct http *h, const struct http_target *t,
                          const char *path, long timeout_ms, size_t body_max,
                          const struct http_callbacks *cb)
{
    struct http_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->h = h;
    r->cb = *cb;
    r->body_max = body_max;
    if (!(r->easy = h->curl->easy_init())) {
        free(r);
        return NULL;
    }
    char url[2048];
    snprintf(url, sizeof url, "%s%s", t->ssh.host ? "http://docker" : t->base_url,
             path);
    snprintf(r->where, sizeof r->where, "%s",
             t->unix_path ? t->unix_path : t->base_url);
    CURL *e = r->easy;
    if (t->ssh.host && ssh_options(r, &t->ssh) < 0) {
        h->curl->easy_cleanup(r->easy);
        free(r);
        return NULL;
    }
    h->curl->easy_setopt(e, CURLOPT_URL, url);
    h->curl->easy_setopt(e, CURLOPT_PRIVATE, r);
    h->curl->easy_setopt(e, CURLOPT_ERRORBUFFER, r->error);
    h->curl->easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    h->curl->easy_setopt(e, CURLOPT_WRITEDATA, r);
    h->curl->easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    h->curl->easy_setopt(e, CURLOPT_HEADERDATA, r);
    h->curl->easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    h->curl->easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    h->curl->easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    h->curl->easy_setopt(e, CURLOPT_USERAGENT, "berth/" BERTH_VERSION);
    h->curl->easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    /* The event stream waits forever by design; keepalives notice a daemon
     * that vanished without closing (a tcp:// host gone off the network).
     * Over ssh the socket is a unix one: ssh's own settings watch its TCP. */
    h->curl->easy_setopt(e, CURLOPT_TCP_KEEPALIVE, r->ssh ? 0L : 1L);
    h->curl->easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
    h->curl->easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 10L);
    if (t->unix_path)
        h->curl->easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, t->unix_path);
    if (t->ca)
        h->curl->easy_setopt(e, CURLOPT_CAINFO, t->ca);
    if (t->cert)
        h->curl->easy_setopt(e, CURLOPT_SSLCERT, t->cert);
    if (t->key)
        h->curl->easy_setopt(e, CURLOPT_SSLKEY, t->key);
    h->curl->easy_setopt(e, CURLOPT_SSL_VERIFYPEER, t->verify ? 1L : 0L);
    h->curl->easy_setopt(e, CURLOPT_SSL_VERIFYHOST, t->verify ? 2L : 0L);
    r->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = r;
    h->reqs = r;
    if (h->curl->multi_add_handle(h->multi, e) != CURLM_OK) {
        req_free(r);
        return NULL;
    }
    return r;
}

void http_cancel(struct http_req *r)
{
    if (r && guard_end(&r->guard))
        req_free(r);
}

int http_header_value(const char *headers, const char *name, char *out, size_t len)
{
    size_t nlen = strlen(name);
    for (const char *line = headers; line && *line;) {
        const char *end = strstr(line, "\r\n");
        size_t llen = end ? (size_t)(end - line) : strlen(line);
        if (llen > nlen && line[nlen] == ':' && strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vlen = llen - (size_t)(v - line);
            if (vlen >= len)
                vlen = len - 1;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return 0;
        }
        line = end ? end + 2 : NULL;
    }
    return -1;
}
