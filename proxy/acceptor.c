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
    unsigned singles; /* wake-ups in a row limited to one accept */
    bool burst;       /* the last full batch took more than one */
    bool watching;    /* ev added */
    bool paused;      /* by the owner */
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

/* Sequential clients find one connection per wake-up: a second accept4
 * would only meet EAGAIN, and the level-triggered listener wakes the loop
 * again anyway if more wait. So a wake-up takes one, except in a burst
 * (the last full batch took more than one) and every PROBE_EVERY-th
 * wake-up, which tries the full batch to find out whether one began. */
#define PROBE_EVERY 16

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct acceptor *a = arg;
    (void)what;
    bool full = a->burst || ++a->singles >= PROBE_EVERY;
    int limit = full ? ACCEPT_BATCH : 1, taken = 0;
    if (full)
        a->singles = 0;
    for (int i = 0; i < ACCEPT_BATCH && taken < limit && !a->paused; i++) {
        struct addr peer;
        peer.len = sizeof peer.ss;
        int c = accept4(fd, (struct sockaddr *)&peer.ss, &peer.len,
                        SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c >= 0) {
            backoff_reset(&a->backoff);
            taken++;
            a->fn(a->arg, c, &peer);
            continue;
        }
        if (sock_err_is_resource(errno, NULL)) {
            start_backoff(a, errno);
            break;
        }
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            log_error("%s: accept: %s", a->label, strerror(errno));
        break;
    }
    if (full)
        a->burst = taken > 1;
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
