#include "berth/tproxy_watch.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "berth/log.h"

struct tproxy_watch {
    struct event_base *base;
    struct relay_ctx *ctx; /* its transparent_broken: the verdicts */
    tproxy_check_fn *check;
    void *check_arg;
    struct timeval recheck_tv;
    /* The packets (TPROXY_* bits) the checks cover, an IP target per
     * family (where replies come in), and while one fails, the timer that
     * checks again (made on the first check that may need it). */
    unsigned need;
    struct addr target[2];
    struct event *recheck;
    bool once;
};

static void check_host(void *arg, unsigned need, const struct addr *const targets[2],
                       struct tproxy_report *rep)
{
    (void)arg;
    tproxy_check_each(need, targets, rep);
}

struct tproxy_watch *tproxy_watch_new(struct event_base *base, struct relay_ctx *ctx,
                                      unsigned recheck_ms, tproxy_check_fn *check,
                                      void *arg)
{
    struct tproxy_watch *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->base = base;
    w->ctx = ctx;
    w->check = check ? check : check_host;
    w->check_arg = arg;
    w->recheck_tv.tv_sec = recheck_ms / 1000;
    w->recheck_tv.tv_usec = (recheck_ms % 1000) * 1000;
    return w;
}

void tproxy_watch_free(struct tproxy_watch *w)
{
    if (!w)
        return;
    if (w->recheck)
        event_free(w->recheck);
    free(w);
}

void tproxy_watch_set_once(struct tproxy_watch *w, bool once) { w->once = once; }

/* One log line for the kinds in bits (TPROXY_*) that share a finding,
 * named after it: "TCP/IPv4, UDP/IPv4" (the protocol, the target's
 * family). was: the kinds' verdict before this check. */
static void watch_log(unsigned bits, enum tproxy_result r, const char *why,
                      const char *was)
{
    static const char *const names[4] = {"TCP/IPv4", "UDP/IPv4", "TCP/IPv6",
                                         "UDP/IPv6"};
    char kinds[48] = "";
    size_t n = 0;
    for (unsigned i = 0; i < 4; i++)
        if (bits & 1u << i) {
            int k = snprintf(kinds + n, sizeof kinds - n, "%s%s", n ? ", " : "",
                             names[i]);
            if (k > 0 && (size_t)k < sizeof kinds - n)
                n += (size_t)k;
        }
    /* Said once per reason, not every re-check. */
    if (r == TPROXY_BROKEN && strcmp(why, was) != 0)
        log_warn(
            "transparent mode cannot work: %s; transparent mappings of %s connect "
            "normally (the target sees berth's address) until it is fixed",
            why, kinds);
    else if (r == TPROXY_UNKNOWN)
        log_warn("transparent mode: %s; for %s", why, kinds);
    else if (r == TPROXY_WORKS)
        log_info("transparent mode%s: %s, for %s", was[0] ? " works now" : "", why,
                 kinds);
}

static void watch_run(struct tproxy_watch *w)
{
    struct tproxy_report rep;
    const struct addr *targets[2];
    for (int v6 = 0; v6 < 2; v6++)
        targets[v6] = w->target[v6].len ? &w->target[v6] : NULL;
    w->check(w->check_arg, w->need, targets, &rep);
    bool broken = false;
    unsigned said = 0;
    for (unsigned i = 0; i < 4; i++) {
        char *slot = w->ctx->transparent_broken[i >> 1][i & 1]; /* [v6][udp] */
        if (!(w->need & 1u << i) || (said & 1u << i))
            continue;
        unsigned bits = 0; /* the kinds with the same finding: one line */
        for (unsigned j = i; j < 4; j++)
            if ((w->need & 1u << j) && rep.result[j] == rep.result[i] &&
                strcmp(rep.why[j], rep.why[i]) == 0 &&
                strcmp(w->ctx->transparent_broken[j >> 1][j & 1], slot) == 0)
                bits |= 1u << j;
        said |= bits;
        watch_log(bits, rep.result[i], rep.why[i], slot);
    }
    for (unsigned i = 0; i < 4; i++) {
        if (!(w->need & 1u << i))
            continue;
        snprintf(w->ctx->transparent_broken[i >> 1][i & 1],
                 sizeof w->ctx->transparent_broken[0][0], "%s",
                 rep.result[i] == TPROXY_BROKEN ? rep.why[i] : "");
        broken = broken || rep.result[i] == TPROXY_BROKEN;
    }
    if (broken && w->recheck && !w->once)
        evtimer_add(w->recheck, &w->recheck_tv);
}

static void on_recheck(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    watch_run(arg);
}

unsigned tproxy_watch_note(struct tproxy_watch *w, const struct mapping *m)
{
    if (!m->transparent)
        return 0;
    unsigned need = tproxy_need(m);
    int v6 = m->target.ss.ss_family == AF_INET6;
    if (!m->target_name[0] && !w->target[v6].len)
        w->target[v6] = m->target;
    return need & ~w->need;
}

void tproxy_watch_add(struct tproxy_watch *w, unsigned need)
{
    if ((need & ~w->need) == 0)
        return;
    w->need |= need;
    /* A parent that ignores SIGCHLD (some service managers, a shell's
     * `trap '' CHLD`) leaves it ignored here: the check's children would
     * then be reaped by the kernel and waitpid fail with ECHILD. */
    signal(SIGCHLD, SIG_DFL);
    if (!w->once && !w->recheck && !(w->recheck = evtimer_new(w->base, on_recheck, w)))
        log_warn("transparent mode: out of memory for the re-check timer");
    watch_run(w);
}

unsigned tproxy_watch_covered(const struct tproxy_watch *w) { return w->need; }

bool tproxy_watch_rechecking(const struct tproxy_watch *w)
{
    return w->recheck && evtimer_pending(w->recheck, NULL);
}
