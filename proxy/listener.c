#include "berth/listener.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/log.h"
#include "berth/tcp_relay.h"

/* Connections taken per readable event: enough to drain a burst with few
 * wake-ups, few enough that relaying is not starved by a connect flood. */
#define ACCEPT_BATCH 64
#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 1000

struct tcp_listener {
    struct relay_ctx *ctx;
    const struct mapping *m;
    int fd;
    struct event *ev;
    struct event *backoff;       /* re-arms accepting after EMFILE */
    unsigned backoff_ms;
    bool paused;                 /* ev removed: at --max-conns or backing off */
    unsigned rr;                 /* round-robin over a service's replicas */
    struct tcp_session_list sessions;
};

static void pause_accepting(struct tcp_listener *l)
{
    if (!l->paused) {
        event_del(l->ev);
        l->paused = true;
    }
}

static void resume_accepting(struct tcp_listener *l)
{
    if (l->paused && !evtimer_pending(l->backoff, NULL)) {
        event_add(l->ev, NULL);
        l->paused = false;
    }
}

static bool at_limit(const struct tcp_listener *l)
{
    return l->ctx->max_conns && l->sessions.count >= l->ctx->max_conns;
}

static void on_session_end(void *arg)
{
    struct tcp_listener *l = arg;
    if (!at_limit(l))
        resume_accepting(l);
}

/* Out of fds: stop accepting for a while instead of spinning on a listener
 * that stays readable. Pending clients wait in the kernel backlog. */
static void start_backoff(struct tcp_listener *l, int err)
{
    l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (l->backoff_ms > BACKOFF_MAX_MS)
        l->backoff_ms = BACKOFF_MAX_MS;
    if (l->backoff_ms == BACKOFF_MIN_MS)
        log_warn("%s: accept: %s; pausing accepts (%zu sessions open)",
                 l->m->label, strerror(err), l->sessions.count);
    pause_accepting(l);
    struct timeval tv = {l->backoff_ms / 1000, (l->backoff_ms % 1000) * 1000};
    evtimer_add(l->backoff, &tv);
}

static void on_backoff(evutil_socket_t fd, short what, void *arg)
{
    struct tcp_listener *l = arg;
    (void)fd;
    (void)what;
    if (!at_limit(l))
        resume_accepting(l);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct tcp_listener *l = arg;
    (void)what;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        if (at_limit(l)) {
            pause_accepting(l);
            return;
        }
        struct addr peer;
        peer.len = sizeof peer.ss;
        int c = accept4(fd, (struct sockaddr *)&peer.ss, &peer.len,
                        SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            switch (errno) {
            case EAGAIN:
#if EAGAIN != EWOULDBLOCK
            case EWOULDBLOCK:
#endif
                return;
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
                continue;
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                start_backoff(l, errno);
                return;
            default:
                log_error("%s: accept: %s", l->m->label, strerror(errno));
                return;
            }
        }
        l->backoff_ms = 0;
        if (!l->m->target_name[0]) {
            tcp_session_new(l->ctx, &l->sessions, l->m, c, &peer, NULL, 0,
                            on_session_end, l);
            continue;
        }
        struct addr replicas[8];
        size_t n = relay_resolve(l->ctx, l->m, &l->rr, replicas, 8);
        if (n == 0) {
            /* Nothing runs by that name now: close at once rather than
             * hold the client; the port comes alive with the container. */
            char p[ADDR_STRLEN];
            log_info("%s client %s: no running container '%s'", l->m->label,
                     addr_format(&peer, p, sizeof p), l->m->target_name);
            sock_set_reset_on_close(c);
            close(c);
            continue;
        }
        tcp_session_new(l->ctx, &l->sessions, l->m, c, &peer, replicas, n,
                        on_session_end, l);
    }
}

struct tcp_listener *tcp_listener_new(struct relay_ctx *ctx,
                                      const struct mapping *m, int fd,
                                      char *err, size_t errlen)
{
    if ((fd = sock_listener(&m->listen, SOCK_STREAM, fd, err, errlen)) < 0)
        return NULL;
    struct tcp_listener *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        close(fd);
        return NULL;
    }
    l->ctx = ctx;
    l->m = m;
    l->fd = fd;
    /* Accepted sockets inherit TCP_NODELAY: one call here instead of one
     * per connection. */
    sock_set_nodelay(l->fd);
    l->ev = event_new(ctx->base, l->fd, EV_READ | EV_PERSIST, on_accept, l);
    l->backoff = evtimer_new(ctx->base, on_backoff, l);
    if (!l->ev || !l->backoff || event_add(l->ev, NULL) < 0) {
        snprintf(err, errlen, "%s: cannot watch listener", m->label);
        tcp_listener_free(l);
        return NULL;
    }
    log_debug("%s: listening", m->label);
    return l;
}

void tcp_listener_free(struct tcp_listener *l)
{
    if (!l)
        return;
    while (l->sessions.head)
        tcp_session_free(l->sessions.head);
    if (l->ev)
        event_free(l->ev);
    if (l->backoff)
        event_free(l->backoff);
    if (l->fd >= 0)
        close(l->fd);
    free(l);
}

int tcp_listener_fd(const struct tcp_listener *l) { return l->fd; }

size_t tcp_listener_sessions(const struct tcp_listener *l)
{
    return l->sessions.count;
}
