#include "berth/tcp_connect.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "berth/clock.h"
#include "berth/invariant.h"
#include "berth/log.h"
#include "berth/sctp_sock.h"
#include "berth/transparent.h"

struct tcp_connect {
    struct relay_ctx *ctx;
    const struct mapping *m;
    const struct addr *client;
    struct sctp_streams streams; /* SCTP: to ask for; 0: the kernel's */
    tcp_connect_fn *done;
    void *arg;
    /* One event for the connect's life, pointed at each try's socket in
     * turn (nothing allocated per try): the try's wait, until its socket
     * is writable or its share of the budget is spent. */
    struct event *ev;
    short seen;           /* connected: what the completion reported */
    int fd;               /* the try's socket */
    int err;              /* over: the last error */
    bool over;            /* failed before the loop ran: report from it */
    bool replicas;        /* the targets are a name's: pass failures over */
    uint64_t deadline_ms; /* replicas: the end of the budget */
    unsigned n, cur;      /* cands[cur] is being tried */
    struct addr cands[];
};

static void on_event(evutil_socket_t fd, short what, void *arg);

/* This try's share of the budget: what is left of it split evenly over the
 * replicas still to try, so one silent replica cannot spend it all; the
 * last try gets the rest. An IP target has the whole budget. */
static struct timeval try_timeout(const struct tcp_connect *c)
{
    if (!c->replicas)
        return c->ctx->connect_timeout;
    uint64_t now = clock_ms();
    uint64_t left = c->deadline_ms > now ? c->deadline_ms - now : 0;
    return clock_tv(left / (c->n - c->cur));
}

/* Opens a socket to t, from the client's address when transparent (and
 * that can work, transparent.h), and starts a non-blocking connect. Returns
 * 0 when it is under way (or done: the event reports it), -1 with errno
 * when this target failed at once. */
static int start(struct tcp_connect *c, const struct addr *t, bool transparent)
{
    bool sctp = c->m->proto == PROTO_SCTP;
    c->fd = socket(t->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   sctp ? IPPROTO_SCTP : 0);
    if (c->fd < 0)
        return -1;
    /* Before the connect: the target's first message may come with the
     * association, and must be read with its stream and PPID. */
    if (sctp && (sctp_sock_setup(c->fd) < 0 ||
                 ((c->streams.in || c->streams.out) &&
                  sctp_sock_init_streams(c->fd, c->streams.in, c->streams.out) < 0)))
        return -1;
    bool from_client = transparent &&
                       transparent_bind(c->ctx, c->m, c->client, t, c->fd);
    /* Readable too: a failed connect is reported as both (libevent maps
     * EPOLLERR and EPOLLHUP to read and write), a success as writable
     * alone, so only the ambiguous case needs SO_ERROR read. Registered
     * the way the session watches the socket once connected
     * (TCP_CONNECT_EVENTS): it takes the registration over as it is, no
     * epoll_ctl between connecting and relaying. */
    int r = event_assign(c->ev, c->ctx->base, c->fd, TCP_CONNECT_EVENTS | EV_PERSIST,
                         on_event, c);
    INVARIANT(r == 0);
    if (connect(c->fd, (const struct sockaddr *)&t->ss, t->len) == 0) {
        event_active(c->ev, EV_WRITE, 1);
        return 0;
    }
    if (errno != EINPROGRESS) {
        /* The client's address and port towards this target are still
         * taken (the last session's TIME_WAIT): this one goes normally. */
        if (from_client && transparent_connect_err(errno)) {
            transparent_connect_failed(c->ctx, c->m, c->client, errno);
            close(c->fd);
            return start(c, t, false);
        }
        return -1;
    }
    struct timeval tv = try_timeout(c);
    event_add(c->ev, &tv);
    return 0;
}

/* Starts the try at cands[cur]: start's outcome. */
static int try_one(struct tcp_connect *c)
{
    /* Persistent: still watching the last try's socket. */
    event_del(c->ev);
    if (c->fd >= 0)
        close(c->fd);
    return start(c, &c->cands[c->cur], c->m->transparent);
}

/* The try at cands[cur] failed with err. The target refused, timed out or
 * is unreachable: a replica is passed over by later connections, and while
 * replicas and budget are left the next is tried (the client has sent
 * nothing that was read, so it never notices). berth's own shortage blames
 * no replica and ends the attempt: the next try would meet it too. Returns
 * true when no try is under way any more: c->err says why. */
static bool failed(struct tcp_connect *c, int err)
{
    for (;;) {
        char t[ADDR_STRLEN];
        const char *why;
        addr_format(&c->cands[c->cur], t, sizeof t);
        /* Each of these may happen to every client: said once, then
         * counted per port, reason and target (relay_log_limited). */
        const struct addr *at = &c->cands[c->cur];
        if (sock_err_is_resource(err, &why)) {
            relay_log_limited(c->ctx, LOG_WARN, c->m, c->client,
                              relay_key(RELAY_SAID_SHORTAGE, err, NULL),
                              "connect %s: berth is %s (%s); resetting the client", t,
                              why, strerror(err));
            break;
        }
        if (c->replicas)
            relay_pass_over(c->ctx, at);
        if (c->cur + 1 >= c->n) {
            relay_log_limited(c->ctx, LOG_WARN, c->m, c->client,
                              relay_key(RELAY_SAID_CONNECT, err, at), "connect %s: %s",
                              t, strerror(err));
            break;
        }
        if (clock_ms() >= c->deadline_ms) {
            unsigned left = c->n - c->cur - 1;
            relay_log_limited(c->ctx, LOG_WARN, c->m, c->client,
                              relay_key(RELAY_SAID_BUDGET, err, at),
                              "connect %s: %s; connect budget spent, %u replica%s "
                              "untried",
                              t, strerror(err), left, left == 1 ? "" : "s");
            break;
        }
        relay_log_limited(c->ctx, LOG_INFO, c->m, c->client,
                          relay_key(RELAY_SAID_NEXT, err, at),
                          "connect %s: %s; trying the next replica", t, strerror(err));
        c->cur++;
        if (try_one(c) == 0)
            return false;
        err = errno;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->err = err;
    return true;
}

/* The try's socket became writable (connected or failed), its time ran
 * out, or a failure found before the loop ran is reported. */
static void on_event(evutil_socket_t fd, short what, void *arg)
{
    struct tcp_connect *c = arg;
    (void)fd;
    if (!c->over) {
        /* Writable and not readable: connected (see try_one). Readable
         * too: failed, or the target spoke at once; SO_ERROR tells. */
        int err = ETIMEDOUT;
        if ((what & (EV_READ | EV_WRITE)) == EV_WRITE)
            err = 0;
        else if (!(what & EV_TIMEOUT) && (err = sock_pending_error(c->fd)) < 0)
            err = errno;
        if (err == 0) {
            if (log_get_level() >= LOG_DEBUG)
                relay_log(LOG_DEBUG, c->m, c->client, "connected to %s",
                          addr_format(&c->cands[c->cur], (char[ADDR_STRLEN]){0},
                                      ADDR_STRLEN));
            int connected = c->fd;
            c->fd = -1;
            c->seen = what;
            c->done(c->arg, connected, 0); /* the last use of c: it may be freed */
            return;
        }
        if (!failed(c, err))
            return;
    }
    c->done(c->arg, -1, c->err);
}

struct tcp_connect *tcp_connect_new(struct relay_ctx *ctx, const struct mapping *m,
                                    const struct addr *client,
                                    const struct sctp_streams *streams,
                                    const struct addr *targets, size_t n,
                                    tcp_connect_fn *done, void *arg)
{
    size_t count = targets ? n : 1;
    struct tcp_connect *c = calloc(1, sizeof *c + count * sizeof c->cands[0]);
    if (!c)
        return NULL;
    c->ctx = ctx;
    c->m = m;
    c->client = client;
    if (streams)
        c->streams = *streams;
    c->done = done;
    c->arg = arg;
    c->fd = -1;
    c->n = (unsigned)count;
    if (targets) {
        memcpy(c->cands, targets, count * sizeof c->cands[0]);
        c->replicas = true;
        const struct timeval *b = &ctx->connect_timeout;
        c->deadline_ms = clock_ms() + (uint64_t)b->tv_sec * 1000 +
                         (uint64_t)b->tv_usec / 1000;
    } else {
        c->cands[0] = m->target;
    }
    if (!(c->ev = event_new(ctx->base, -1, 0, on_event, c))) {
        free(c);
        return NULL;
    }
    /* A failure now is reported from the loop, like every other outcome,
     * so the caller never hears of it before it has the connect. */
    if (try_one(c) < 0 && failed(c, errno)) {
        c->over = true;
        event_active(c->ev, 0, 1);
    }
    return c;
}

short tcp_connect_seen(const struct tcp_connect *c) { return c->seen; }

void tcp_connect_free(struct tcp_connect *c)
{
    if (!c)
        return;
    event_free(c->ev);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}
