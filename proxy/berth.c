#include "berth/berth.h"

#include <signal.h>
#include <string.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "berth/listener.h"
#include "berth/log.h"
#include "berth/pipe_pool.h"
#include "berth/registry.h"
#include "berth/udp_relay.h"

/* Idle pipes kept for reuse: enough for the bursts of a busy port, small
 * next to the fd limit. */
#define PIPES_KEPT 256
#define CONNECT_TIMEOUT_S 10
#define UDP_MAX_FLOWS 4096

struct berth {
    struct event_base *base;
    const struct plan *plan;
    struct relay_ctx *ctx;
    struct tcp_listener **tcp;   /* per mapping; NULL for UDP ones */
    struct udp_listener **udp;
    struct event *sigint, *sigterm;
};

struct relay_ctx *relay_ctx_new(struct event_base *base)
{
    struct relay_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    ctx->base = base;
    ctx->scratch_len = pipe_pool_capacity();
    ctx->connect_timeout.tv_sec = CONNECT_TIMEOUT_S;
    ctx->udp_timeout = 90;
    ctx->udp_max_flows = UDP_MAX_FLOWS;
    if (!(ctx->pipes = pipe_pool_new(PIPES_KEPT)) ||
        !(ctx->scratch = malloc(ctx->scratch_len))) {
        relay_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

size_t relay_resolve(struct relay_ctx *ctx, const struct mapping *m,
                     unsigned *rr, struct addr *out, size_t max)
{
    if (!ctx->reg || max == 0)
        return 0;
    struct addr found[16];
    size_t len = strlen(m->target_name), cap = max < 16 ? max : 16;
    int n = registry_resolve(ctx->reg, m->target_name, len, AF_INET, found, cap);
    if (n <= 0)
        n = registry_resolve(ctx->reg, m->target_name, len, AF_INET6, found, cap);
    if (n <= 0)
        return 0;
    size_t k = (size_t)n < cap ? (size_t)n : cap;
    size_t first = (*rr)++ % k;
    for (size_t i = 0; i < k; i++) {
        out[i] = found[(first + i) % k];
        addr_set_port(&out[i], m->target_port);
    }
    return k;
}

void relay_ctx_free(struct relay_ctx *ctx)
{
    if (!ctx)
        return;
    pipe_pool_free(ctx->pipes);
    udp_batch_free(ctx->udp);
    free(ctx->scratch);
    free(ctx);
}

struct event_base *berth_event_base_new(void)
{
    struct event_config *cfg = event_config_new();
    if (!cfg)
        return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK |
                                   EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct berth *b = arg;
    (void)what;
    log_info("%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    event_base_loopbreak(b->base);
}

struct berth *berth_new(struct event_base *base, const struct plan *plan)
{
    struct berth *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->base = base;
    b->plan = plan;
    size_t n = plan->n ? plan->n : 1;
    if (!(b->ctx = relay_ctx_new(base)) || !(b->tcp = calloc(n, sizeof *b->tcp)) ||
        !(b->udp = calloc(n, sizeof *b->udp)) ||
        !(b->sigint = evsignal_new(base, SIGINT, on_signal, b)) ||
        !(b->sigterm = evsignal_new(base, SIGTERM, on_signal, b)) ||
        evsignal_add(b->sigint, NULL) < 0 || evsignal_add(b->sigterm, NULL) < 0) {
        berth_free(b);
        return NULL;
    }
    b->ctx->udp_timeout = plan->udp_timeout;
    b->ctx->max_conns = plan->max_conns;
    return b;
}

static void stop_all(struct berth *b)
{
    for (size_t i = 0; i < b->plan->n; i++) {
        tcp_listener_free(b->tcp[i]);
        b->tcp[i] = NULL;
        udp_listener_free(b->udp[i]);
        b->udp[i] = NULL;
    }
}

void berth_free(struct berth *b)
{
    if (!b)
        return;
    if (b->tcp && b->udp)
        stop_all(b);
    free(b->tcp);
    free(b->udp);
    if (b->sigint)
        event_free(b->sigint);
    if (b->sigterm)
        event_free(b->sigterm);
    relay_ctx_free(b->ctx);
    free(b);
}

struct relay_ctx *berth_ctx(struct berth *b) { return b->ctx; }

int berth_start(struct berth *b, const int *fds, char *err, size_t errlen)
{
    for (size_t i = 0; i < b->plan->n; i++) {
        const struct mapping *m = &b->plan->maps[i];
        int fd = fds ? fds[i] : -1;
        if (m->proto == PROTO_TCP)
            b->tcp[i] = tcp_listener_new(b->ctx, m, fd, err, errlen);
        else
            b->udp[i] = udp_listener_new(b->ctx, m, fd, err, errlen);
        if (!b->tcp[i] && !b->udp[i]) {
            stop_all(b);
            return -1;
        }
    }
    log_info("forwarding %zu port%s", b->plan->n, b->plan->n == 1 ? "" : "s");
    return 0;
}

int berth_run(struct berth *b)
{
    /* A signal caught during start-up is delivered by the first pass of
     * the loop, which then stops it. */
    return event_base_dispatch(b->base) < 0 ? -1 : 0;
}

size_t berth_tcp_sessions(const struct berth *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->plan->n; i++)
        if (b->tcp[i])
            n += tcp_listener_sessions(b->tcp[i]);
    return n;
}

size_t berth_udp_flows(const struct berth *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->plan->n; i++)
        if (b->udp[i])
            n += udp_listener_flows(b->udp[i]);
    return n;
}

int berth_local_addr(const struct berth *b, size_t i, struct addr *out)
{
    if (i >= b->plan->n || (!b->tcp[i] && !b->udp[i]))
        return -1;
    int fd = b->tcp[i] ? tcp_listener_fd(b->tcp[i]) : udp_listener_fd(b->udp[i]);
    out->len = sizeof out->ss;
    return getsockname(fd, (struct sockaddr *)&out->ss, &out->len);
}

void berth_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_warn("cannot raise the fd limit to %llu",
                     (unsigned long long)rl.rlim_max);
    }
}
