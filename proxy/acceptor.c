#include "berth/acceptor.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "berth/backoff.h"
#include "berth/clock.h"
#include "berth/log.h"

/* Connections taken per readable event: enough to drain a burst with few
 * wake-ups, few enough that relaying is not starved by a connect flood. */
#define ACCEPT_BATCH 64
#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 1000

struct acceptor {
    const char *label;
    acceptor_fn *fn;
    void *arg;
    struct event *ev;
    struct event *timer; /* the backoff's end */
    struct backoff backoff;
    bool watching; /* ev added */
    bool paused;   /* by the owner */
};

static void watch(struct acceptor *a, bool on)
{
    if (on == a->watching)
        return;
    if (on)
        event_add(a->ev, NULL);
    else
        event_del(a->ev);
    a->watching = on;
}

static bool backing_off(const struct acceptor *a)
{
    return evtimer_pending(a->timer, NULL);
}

static void start_backoff(struct acceptor *a, int err)
{
    unsigned ms = backoff_next(&a->backoff);
    if (backoff_first(&a->backoff))
        log_warn("%s: accept: %s; pausing accepts, retrying for up to %u ms at a time",
                 a->label, strerror(err), BACKOFF_MAX_MS);
    else
        log_debug("%s: accept: %s; pausing %u ms", a->label, strerror(err), ms);
    watch(a, false);
    struct timeval tv = clock_tv(ms);
    evtimer_add(a->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct acceptor *a = arg;
    (void)fd;
    (void)what;
    if (!a->paused)
        watch(a, true);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct acceptor *a = arg;
    (void)what;
    for (int i = 0; i < ACCEPT_BATCH && !a->paused; i++) {
        struct addr peer;
        peer.len = sizeof peer.ss;
        int c = accept4(fd, (struct sockaddr *)&peer.ss, &peer.len,
                        SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c >= 0) {
            backoff_reset(&a->backoff);
            a->fn(a->arg, c, &peer);
            continue;
        }
        if (sock_err_is_resource(errno, NULL)) {
            start_backoff(a, errno);
            return;
        }
        switch (errno) {
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
            continue;
        case EAGAIN:
#if EAGAIN != EWOULDBLOCK
        case EWOULDBLOCK:
#endif
            return;
        default:
            log_error("%s: accept: %s", a->label, strerror(errno));
            return;
        }
    }
}

struct acceptor *acceptor_new(struct event_base *base, int fd, const char *label,
                              acceptor_fn *fn, void *arg)
{
    struct acceptor *a = calloc(1, sizeof *a);
    if (!a) {
        errno = ENOMEM;
        return NULL;
    }
    a->label = label;
    a->fn = fn;
    a->arg = arg;
    a->backoff = BACKOFF_INIT(BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    a->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_accept, a);
    a->timer = evtimer_new(base, on_timer, a);
    if (!a->ev || !a->timer || event_add(a->ev, NULL) < 0) {
        acceptor_free(a);
        errno = ENOMEM;
        return NULL;
    }
    a->watching = true;
    return a;
}

void acceptor_free(struct acceptor *a)
{
    if (!a)
        return;
    if (a->ev)
        event_free(a->ev);
    if (a->timer)
        event_free(a->timer);
    free(a);
}

void acceptor_pause(struct acceptor *a)
{
    a->paused = true;
    watch(a, false);
}

void acceptor_resume(struct acceptor *a)
{
    a->paused = false;
    if (!backing_off(a))
        watch(a, true);
}
