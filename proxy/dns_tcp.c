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

#include "berth/log.h"
#include "berth/lru.h"

#define ACCEPT_BATCH 64
#define BACKOFF_MS 100
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
    struct lru_node order;                /* in t->order: activity */
    struct bufferevent *bev;
    struct addr peer;
    unsigned owed;                        /* queries not yet replied to */
    bool eof;                             /* the client is done sending */
    bool busy;                            /* inside process(): no free */
    bool dead;                            /* to be freed when not busy */
};

struct dns_tcp {
    struct event_base *base;
    struct dns_tcp_options o;
    int fd;
    struct addr bound;
    struct event *ev;
    struct event *backoff;
    struct lru order;                     /* connections, idle first */
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
    c->dead = true;
    if (!c->busy)
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
    c->busy = true;
    bool full = false;
    while (!c->dead) {
        if (c->owed >= OWED_MAX || out_len(c) >= OUT_MAX) {
            full = true;
            break;
        }
        uint8_t hdr[2];
        if (evbuffer_copyout(in, hdr, 2) < 2)
            break;
        size_t n = (size_t)hdr[0] << 8 | hdr[1];
        if (evbuffer_get_length(in) < 2 + n)
            break;
        const uint8_t *msg = evbuffer_pullup(in, (ssize_t)(2 + n));
        if (!msg) {
            c->dead = true;
            break;
        }
        lru_touch(&t->order, &c->order);
        c->owed++;
        t->o.query(t->o.arg, c, &c->peer, msg + 2, n);
        evbuffer_drain(in, 2 + n);
    }
    c->busy = false;
    if (!c->dead && !c->eof) {
        if (full)
            bufferevent_disable(c->bev, EV_READ);
        else
            bufferevent_enable(c->bev, EV_READ);
    }
    /* After EOF nothing more comes: close once every reply is written. */
    if (c->dead || (c->eof && !full && c->owed == 0 && out_len(c) == 0))
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
    process(arg);    /* output drained: may resume, or finish after EOF */
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
    c->owed--;
    if (len && !c->dead) {
        uint8_t hdr[2] = {(uint8_t)(len >> 8), (uint8_t)len};
        struct evbuffer *out = bufferevent_get_output(c->bev);
        if (evbuffer_add(out, hdr, 2) < 0 || evbuffer_add(out, msg, len) < 0)
            c->dead = true;
    }
    if (!c->busy)
        process(c);
}

static void conn_new(struct dns_tcp *t, int fd, const struct addr *peer)
{
    if (t->nconns >= t->o.max_conns && oldest_conn(t)) {
        char p[ADDR_STRLEN];
        log_debug("dns tcp: %zu connections, closing the least active (%s)",
                  t->nconns, addr_format(&oldest_conn(t)->peer, p, sizeof p));
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
    struct timeval idle = {(time_t)(t->o.idle_ms / 1000),
                           (suseconds_t)(t->o.idle_ms % 1000) * 1000};
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    /* Input holds at most one largest message plus its length. */
    bufferevent_setwatermark(c->bev, EV_READ, 0, 2 + 65535);
    bufferevent_set_timeouts(c->bev, &idle, &idle);
    bufferevent_enable(c->bev, EV_READ);
    lru_push(&t->order, &c->order);
    t->nconns++;
}

static void on_backoff(evutil_socket_t fd, short what, void *arg)
{
    struct dns_tcp *t = arg;
    (void)fd;
    (void)what;
    event_add(t->ev, NULL);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct dns_tcp *t = arg;
    (void)what;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct addr peer;
        peer.len = sizeof peer.ss;
        int c = accept4(fd, (struct sockaddr *)&peer.ss, &peer.len,
                        SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c >= 0) {
            sock_set_nodelay(c);
            conn_new(t, c, &peer);
            continue;
        }
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* The listener stays readable: pause rather than spin. */
            log_warn("dns tcp: accept: %s; pausing %d ms", strerror(errno), BACKOFF_MS);
            event_del(t->ev);
            struct timeval tv = {0, BACKOFF_MS * 1000};
            evtimer_add(t->backoff, &tv);
        }
        return;   /* EAGAIN, or an aborted connection: next event */
    }
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
    if (!(t->ev = event_new(base, t->fd, EV_READ | EV_PERSIST, on_accept, t)) ||
        !(t->backoff = evtimer_new(base, on_backoff, t)) || event_add(t->ev, NULL) < 0) {
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
    if (t->ev)
        event_free(t->ev);
    if (t->backoff)
        event_free(t->backoff);
    if (t->fd >= 0)
        close(t->fd);
    free(t);
}

size_t dns_tcp_conns(const struct dns_tcp *t) { return t->nconns; }

int dns_tcp_local_addr(const struct dns_tcp *t, struct addr *out)
{
    *out = t->bound;
    return 0;
}
