#include "berth/dns_tcp.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "berth/acceptor.h"
#include "berth/clock.h"
#include "berth/guard.h"
#include "berth/invariant.h"
#include "berth/log.h"
#include "berth/lru.h"

/* Queries of one connection waiting for upstreams at once: one client
 * cannot take every forwarding slot. Past it, reading pauses. */
#define OWED_MAX 64
/* Replies buffered for a client that is slow to read; past it, reading
 * pauses until they drain. With the input bound (one largest message) and
 * the server's global cap on forwarded queries, memory per connection stays
 * bounded; a client that never drains it meets the write timeout. */
#define OUT_MAX (128 * 1024)

struct dns_tcp_conn {
    struct dns_tcp *t;
    struct lru_node order; /* in t->order: activity */
    struct bufferevent *bev;
    struct addr peer;
    unsigned owed; /* queries not yet replied to */
    bool eof;      /* the client is done sending */
    /* process() may end c (a failed buffer, the last reply after EOF)
     * while it is inside; ending also stops new queries and replies. */
    struct guard guard;
};

struct dns_tcp {
    struct event_base *base;
    struct dns_tcp_options o;
    int fd;
    struct addr bound;
    char label[ADDR_STRLEN + 8]; /* "dns tcp <bound>", for logs */
    struct acceptor *acc;
    struct lru order; /* connections, idle first */
    size_t nconns;
};

static struct dns_tcp_conn *oldest_conn(struct dns_tcp *t)
{
    return t->order.oldest ? LRU_ENTRY(t->order.oldest, struct dns_tcp_conn, order)
                           : NULL;
}

static void conn_free(struct dns_tcp_conn *c)
{
    struct dns_tcp *t = c->t;
    if (c->owed)
        t->o.gone(t->o.arg, c);
    lru_unlink(&t->order, &c->order);
    t->nconns--;
    bufferevent_free(c->bev);
    free(c);
}

/* Frees c now, or when the callback that is using it returns. */
static void conn_close(struct dns_tcp_conn *c)
{
    if (guard_end(&c->guard))
        conn_free(c);
}

static size_t out_len(const struct dns_tcp_conn *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev));
}

/* Hands every complete message to the server while the limits allow, then
 * reads on only if they still do. Ends by freeing c if it is finished. */
static void process(struct dns_tcp_conn *c)
{
    struct dns_tcp *t = c->t;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    guard_enter(&c->guard);
    bool full = false;
    while (!guard_ending(&c->guard)) {
        if (c->owed >= OWED_MAX || out_len(c) >= OUT_MAX) {
            full = true;
            break;
        }
        size_t n;
        if (!dns_tcp_frame_ready(in, &n))
            break;
        const uint8_t *msg = evbuffer_pullup(in, (ssize_t)(2 + n));
        if (!msg) {
            guard_end_inside(&c->guard);
            break;
        }
        lru_touch(&t->order, &c->order);
        c->owed++;
        t->o.query(t->o.arg, c, &c->peer, msg + 2, n);
        evbuffer_drain(in, 2 + n);
    }
    if (!guard_ending(&c->guard) && !c->eof) {
        if (full)
            bufferevent_disable(c->bev, EV_READ);
        else
            bufferevent_enable(c->bev, EV_READ);
    }
    /* After EOF nothing more comes: close once every reply is written. */
    if (c->eof && !full && c->owed == 0 && out_len(c) == 0)
        guard_end_inside(&c->guard);
    if (guard_leave(&c->guard))
        conn_free(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    process(arg);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    process(arg); /* output drained: may resume, or finish after EOF */
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct dns_tcp_conn *c = arg;
    (void)bev;
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) &&
        (c->owed || out_len(c))) {
        /* Not idle: answers are on their way. Keep listening. */
        bufferevent_enable(c->bev, EV_READ);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        c->eof = true;
        process(c);
        return;
    }
    char p[ADDR_STRLEN];
    log_debug("dns tcp client %s: %s", addr_format(&c->peer, p, sizeof p),
              what & BEV_EVENT_TIMEOUT ? "idle, closed" : "connection error");
    conn_close(c);
}

void dns_tcp_reply(struct dns_tcp_conn *c, const uint8_t *msg, size_t len)
{
    /* One reply per query handed over (the header's contract). */
    INVARIANT(c->owed > 0);
    c->owed--;
    if (len && !guard_ending(&c->guard) &&
        dns_tcp_frame_add(bufferevent_get_output(c->bev), msg, len) < 0) {
        conn_close(c); /* freed already unless process() is running */
        return;
    }
    /* From inside process() (an answer made at once), process() goes on by
     * itself; a later one may let reading resume, or finish after EOF. */
    if (!guard_inside(&c->guard))
        process(c);
}

static void conn_new(struct dns_tcp *t, int fd, const struct addr *peer)
{
    if (t->nconns >= t->o.max_conns && oldest_conn(t)) {
        char p[ADDR_STRLEN];
        log_debug("dns tcp: %zu connections, closing the least active (%s)", t->nconns,
                  addr_format(&oldest_conn(t)->peer, p, sizeof p));
        conn_close(oldest_conn(t));
    }
    struct dns_tcp_conn *c = calloc(1, sizeof *c);
    if (!c || !(c->bev = bufferevent_socket_new(t->base, fd, BEV_OPT_CLOSE_ON_FREE))) {
        free(c);
        close(fd);
        return;
    }
    c->t = t;
    c->peer = *peer;
    struct timeval idle = clock_tv(t->o.idle_ms);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    /* Input holds at most one largest message plus its length. */
    bufferevent_setwatermark(c->bev, EV_READ, 0, 2 + 65535);
    bufferevent_set_timeouts(c->bev, &idle, &idle);
    bufferevent_enable(c->bev, EV_READ);
    lru_push(&t->order, &c->order);
    t->nconns++;
}

static void on_accept(void *arg, int fd, const struct addr *peer)
{
    sock_set_nodelay(fd);
    conn_new(arg, fd, peer);
}

struct dns_tcp *dns_tcp_new(struct event_base *base, const struct addr *a,
                            const struct dns_tcp_options *o, char *err, size_t errlen)
{
    char s[ADDR_STRLEN];
    struct dns_tcp *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->base = base;
    t->o = *o;
    if (!t->o.idle_ms)
        t->o.idle_ms = DNS_TCP_IDLE_MS;
    if (!t->o.max_conns)
        t->o.max_conns = DNS_TCP_MAX_CONNS;
    t->bound.len = sizeof t->bound.ss;
    if ((t->fd = sock_bind(a, SOCK_STREAM)) < 0 ||
        getsockname(t->fd, (struct sockaddr *)&t->bound.ss, &t->bound.len) < 0) {
        int e = errno;
        snprintf(err, errlen, "dns: listen tcp %s: %s", addr_format(a, s, sizeof s),
                 strerror(e));
        dns_tcp_free(t);
        errno = e;
        return NULL;
    }
    snprintf(t->label, sizeof t->label, "dns tcp %s",
             addr_format(&t->bound, s, sizeof s));
    if (!(t->acc = acceptor_new(base, t->fd, t->label, on_accept, t))) {
        snprintf(err, errlen, "out of memory");
        dns_tcp_free(t);
        errno = ENOMEM;
        return NULL;
    }
    return t;
}

void dns_tcp_free(struct dns_tcp *t)
{
    if (!t)
        return;
    while (oldest_conn(t))
        conn_free(oldest_conn(t));
    acceptor_free(t->acc);
    if (t->fd >= 0)
        close(t->fd);
    free(t);
}

size_t dns_tcp_conns(const struct dns_tcp *t) { return t->nconns; }

bool dns_tcp_frame_ready(struct evbuffer *in, size_t *len)
{
    uint8_t hdr[2];
    if (evbuffer_copyout(in, hdr, 2) < 2)
        return false;
    *len = (size_t)hdr[0] << 8 | hdr[1];
    return evbuffer_get_length(in) >= 2 + *len;
}

int dns_tcp_frame_add(struct evbuffer *out, const uint8_t *msg, size_t len)
{
    uint8_t hdr[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    return evbuffer_add(out, hdr, 2) < 0 || evbuffer_add(out, msg, len) < 0 ? -1 : 0;
}

int dns_tcp_local_addr(const struct dns_tcp *t, struct addr *out)
{
    *out = t->bound;
    return 0;
}

int dns_tcp_conn_local(const struct dns_tcp_conn *c, struct addr *out)
{
    if (!addr_is_any(&c->t->bound)) {
        *out = c->t->bound;
        return 0;
    }
    out->len = sizeof out->ss;
    return getsockname(bufferevent_getfd(c->bev), (struct sockaddr *)&out->ss,
                       &out->len);
}
