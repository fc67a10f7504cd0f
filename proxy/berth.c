#include "berth/berth.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "berth/drain.h"
#include "berth/invariant.h"
#include "berth/listener.h"
#include "berth/log.h"
#include "berth/metrics.h"
#include "berth/tproxy_watch.h"
#include "berth/udp_relay.h"

/* One published port. Ports live in one list, the plan's first and in its
 * order, so every count and collision check sees all of them. */
struct berth_port {
    const struct mapping *m; /* own, or the publisher's */
    /* A plan's port keeps a copy of its mapping: the plan that made it
     * may be freed by a reload that keeps the port. NULL: published. */
    struct mapping *own;
    struct tcp_listener *tcp; /* exactly one of the two */
    struct udp_listener *udp;
    struct map_stats *stats; /* its counters (NULL: no metrics), freed with it */
    struct berth_port *prev, *next;
};

struct berth {
    struct event_base *base;
    const struct plan *plan;
    struct relay_ctx *ctx;
    struct metrics *metrics;     /* NULL: ports count nothing */
    struct berth_port *ports;    /* every port */
    struct berth_port *last;     /* the tail of ports: appending is O(1) */
    size_t nlabel;               /* ports of labels (no copy of their own) */
    struct berth_port **planned; /* the plan's, by mapping index */
    /* Ports a reload removed, no longer accepting, until their last
     * session or flow ends (looked at every DRAIN_CHECK_MS, drain.h). */
    struct drain *draining;
    berth_reload_fn *reload;
    void *reload_arg;
    /* SIGINT, SIGTERM: stop; SIGHUP, SIGUSR1, SIGUSR2, SIGALRM: see
     * on_other_signal. None of them may end berth by default action. */
    struct event *sig[6];
    /* Transparent mode's host check, run when a transparent mapping
     * needs packets it did not cover yet. */
    struct tproxy_watch *tproxy;
};

static const int caught[6] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM};

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

static size_t count_ports(const struct berth *b)
{
    size_t n = 0;
    for (const struct berth_port *p = b->ports; p; p = p->next)
        n++;
    return n;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct berth *b = arg;
    (void)what;
    switch (sig) {
    case SIGINT:
    case SIGTERM:
        log_info("%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
        event_base_loopbreak(b->base);
        break;
    case SIGHUP:
        /* What service managers send for a reload, and what a closing
         * terminal sends: neither may stop the ports. */
        if (b->reload) {
            log_info("SIGHUP: reloading");
            b->reload(b->reload_arg);
        } else
            log_info("SIGHUP: nothing to reload; carrying on");
        break;
    case SIGUSR1:
        log_info("status: %zu port%s, %zu TCP session%s, %zu UDP flow%s",
                 count_ports(b), count_ports(b) == 1 ? "" : "s", berth_tcp_sessions(b),
                 berth_tcp_sessions(b) == 1 ? "" : "s", berth_udp_flows(b),
                 berth_udp_flows(b) == 1 ? "" : "s");
        break;
    default: /* SIGUSR2, SIGALRM: no meaning for berth */
        log_debug("signal %d ignored", (int)sig);
        break;
    }
}

/* Takes p out of b's ports. */
static void port_unlink(struct berth *b, struct berth_port *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        b->ports = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        b->last = p->prev;
    if (!p->own)
        b->nlabel--;
    p->prev = p->next = NULL;
}

static void port_free(struct berth_port *p)
{
    tcp_listener_free(p->tcp);
    udp_listener_free(p->udp);
    /* After the listeners, which count into it to the end. */
    metrics_port_free(p->stats);
    free(p->own);
    free(p);
}

/* Sessions (a TCP port) or flows open on p: drain's question too. */
static size_t port_active(const void *p) { return berth_port_active(p); }

static void port_drained(void *p, bool idle)
{
    if (idle)
        log_info("%s: removed by the reload, its last client is gone",
                 ((struct berth_port *)p)->m->label);
    port_free(p);
}

static void port_close(struct berth *b, struct berth_port *p)
{
    port_unlink(b, p);
    port_free(p);
}

static void close_all(struct berth *b)
{
    while (b->ports)
        port_close(b, b->ports);
    if (b->planned)
        memset(b->planned, 0, (b->plan->n ? b->plan->n : 1) * sizeof *b->planned);
}

struct berth *berth_new(struct event_base *base, const struct plan *plan,
                        struct registry *reg)
{
    struct berth *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->base = base;
    b->plan = plan;
    if (!(b->ctx = relay_ctx_new(base, reg)) ||
        !(b->planned = calloc(plan->n ? plan->n : 1, sizeof *b->planned)) ||
        !(b->draining = drain_new(base, DRAIN_CHECK_MS, port_active, port_drained)) ||
        !(b->tproxy = tproxy_watch_new(base, b->ctx, TPROXY_WATCH_RECHECK_MS, NULL,
                                       NULL))) {
        berth_free(b);
        return NULL;
    }
    for (size_t i = 0; i < sizeof caught / sizeof caught[0]; i++) {
        if (!(b->sig[i] = evsignal_new(base, caught[i], on_signal, b)) ||
            evsignal_add(b->sig[i], NULL) < 0) {
            berth_free(b);
            return NULL;
        }
    }
    b->ctx->udp_timeout = plan->udp_timeout;
    b->ctx->max_conns = plan->max_conns;
    b->ctx->tcp_keepalive = plan->tcp_keepalive;
    b->ctx->idle_timeout_ms = (uint64_t)plan->idle_timeout * 1000;
    return b;
}

void berth_free(struct berth *b)
{
    if (!b)
        return;
    close_all(b);
    drain_free(b->draining);
    free(b->planned);
    for (size_t i = 0; i < sizeof caught / sizeof caught[0]; i++)
        if (b->sig[i])
            event_free(b->sig[i]);
    tproxy_watch_free(b->tproxy);
    relay_ctx_free(b->ctx);
    free(b);
}

struct relay_ctx *berth_ctx(struct berth *b) { return b->ctx; }

void berth_set_metrics(struct berth *b, struct metrics *m) { b->metrics = m; }

void berth_set_docker_proxy(struct berth *b)
{
    tproxy_watch_set_once(b->tproxy, true);
}

/* Binds m (fd >= 0: takes over that socket instead) and appends the port
 * to the list; a plan's mapping (copy) is copied into the port. */
static struct berth_port *port_open(struct berth *b, const struct mapping *m, int fd,
                                    bool freebind, bool copy, char *err, size_t errlen)
{
    /* Bound (or taken over) here, for both kinds of listener. */
    fd = sock_listener(&m->listen, proto_sock_type(m->proto), proto_ipproto(m->proto),
                       fd, freebind, err, errlen);
    if (fd < 0)
        return NULL;
    struct berth_port *p = calloc(1, sizeof *p);
    if (!p || (copy && !(p->own = malloc(sizeof *p->own)))) {
        snprintf(err, errlen, "%s: out of memory", m->label);
        free(p);
        close(fd);
        return NULL;
    }
    if (copy) {
        *p->own = *m;
        m = p->own;
    }
    p->m = m;
    if (proto_is_stream(m->proto))
        p->tcp = tcp_listener_new(b->ctx, m, fd, err, errlen);
    else
        p->udp = udp_listener_new(b->ctx, m, fd, err, errlen);
    if (!p->tcp && !p->udp) {
        free(p->own);
        free(p);
        return NULL;
    }
    if (b->metrics) {
        /* Labelled with the port really bound (a 0 in m: the kernel's). */
        struct addr bound = m->listen;
        if (addr_port(&bound) == 0) {
            bound.len = sizeof bound.ss;
            if (getsockname(fd, (struct sockaddr *)&bound.ss, &bound.len) < 0)
                bound = m->listen;
        }
        /* Out of memory: the port works, uncounted. */
        p->stats = metrics_port_new(b->metrics, m, &bound);
        if (p->tcp)
            tcp_listener_set_stats(p->tcp, p->stats);
        else
            udp_listener_set_stats(p->udp, p->stats);
    }
    /* Appended: the plan's ports stay first and in order. */
    p->prev = b->last;
    if (b->last)
        b->last->next = p;
    else
        b->ports = p;
    b->last = p;
    if (!p->own)
        b->nlabel++;
    return p;
}

/* One line per --publish entry, naming every listener it made (a spec
 * without HOST_IP makes an IPv4 and an IPv6 one); long ranges are cut. */
static void log_plan(const struct plan *p)
{
    enum { SHOWN = 4 };
    for (size_t i = 0, end; i < p->n; i = end) {
        char line[SHOWN * MAPPING_LABEL_MAX + 64];
        size_t len = 0;
        for (end = i; end < p->n && p->maps[end].source == p->maps[i].source; end++) {
            if (end - i >= SHOWN)
                continue;
            int k = snprintf(line + len, sizeof line - len, "%s%s",
                             end > i ? ", " : "", p->maps[end].label);
            if (k > 0 && (size_t)k < sizeof line - len)
                len += (size_t)k;
        }
        if (end - i > SHOWN)
            log_info("listening: %s and %zu more", line, end - i - SHOWN);
        else
            log_info("listening: %s", len ? line : "?");
    }
}

int berth_start(struct berth *b, const int *fds, char *err, size_t errlen)
{
    INVARIANT(b->ports == NULL);
    unsigned need = 0;
    for (size_t i = 0; i < b->plan->n; i++)
        need |= tproxy_watch_note(b->tproxy, &b->plan->maps[i]);
    tproxy_watch_add(b->tproxy, need);
    for (size_t i = 0; i < b->plan->n; i++) {
        int fd = fds ? fds[i] : -1;
        if (!(b->planned[i] = port_open(b, &b->plan->maps[i], fd, b->plan->freebind,
                                        true, err, errlen))) {
            close_all(b);
            for (size_t j = i + 1; fds && j < b->plan->n; j++)
                if (fds[j] >= 0)
                    close(fds[j]);
            return -1;
        }
    }
    log_info("forwarding %zu port%s", b->plan->n, b->plan->n == 1 ? "" : "s");
    log_plan(b->plan);
    return 0;
}

/* p's mapping as bound: a port 0 in it reads back as the port the kernel
 * chose, so collisions are checked against what is really taken. */
static const struct mapping *port_bound(const struct berth_port *p,
                                        struct mapping *tmp)
{
    if (addr_port(&p->m->listen) != 0)
        return p->m;
    struct addr bound;
    bound.len = sizeof bound.ss;
    int fd = p->tcp ? tcp_listener_fd(p->tcp) : udp_listener_fd(p->udp);
    if (getsockname(fd, (struct sockaddr *)&bound.ss, &bound.len) < 0)
        return p->m;
    *tmp = *p->m;
    addr_set_port(&tmp->listen, addr_port(&bound));
    mapping_label(tmp);
    return tmp;
}

struct berth_port *berth_publish(struct berth *b, const struct mapping *m, char *err,
                                 size_t errlen)
{
    for (const struct berth_port *p = b->ports; p; p = p->next) {
        struct mapping tmp;
        const struct mapping *held = port_bound(p, &tmp);
        if (mapping_collides(held, m)) {
            char a[ADDR_STRLEN];
            snprintf(err, errlen, "%s/%s is already published (%s)",
                     addr_format(&m->listen, a, sizeof a), proto_name(m->proto),
                     held->label);
            return NULL;
        }
    }
    tproxy_watch_add(b->tproxy, tproxy_watch_note(b->tproxy, m));
    return port_open(b, m, -1, b->plan->freebind, false, err, errlen);
}

void berth_unpublish(struct berth *b, struct berth_port *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < b->plan->n; i++)
        INVARIANT(b->planned[i] != p);
    port_close(b, p);
}

/* ---- reload ---- */

/* A removed port stops taking clients now: TCP closes its listening
 * socket (new clients are refused), UDP drops datagrams of new clients
 * (its socket carries the flows' replies); sessions and flows go on. A
 * port with none is closed at once, and so is a UDP port a new mapping
 * needs (now: its flows end with it). */
static void port_retire(struct berth *b, struct berth_port *p, bool now)
{
    port_unlink(b, p);
    metrics_port_draining(p->stats); /* its series now say state="draining" */
    if (p->tcp)
        tcp_listener_stop(p->tcp);
    else
        udp_listener_drain(p->udp);
    if (now || port_active(p) == 0 || drain_add(b->draining, p) < 0) {
        port_free(p);
        return;
    }
    log_info("%s: removed by the reload: %zu %s left to finish", p->m->label,
             port_active(p), p->tcp ? "session(s)" : "flow(s)");
}

int berth_reload(struct berth *b, const struct plan *nw, char *err, size_t errlen)
{
    const struct plan *old = b->plan;
    size_t *keep = malloc((nw->n ? nw->n : 1) * sizeof *keep);
    struct berth_port **planned = calloc(nw->n ? nw->n : 1, sizeof *planned);
    bool *gone = malloc((old->n ? old->n : 1) * sizeof *gone);
    /* New mappings that wait for removed ones (same port): bound last. */
    bool *later = calloc(nw->n ? nw->n : 1, sizeof *later);
    bool *fresh = calloc(nw->n ? nw->n : 1, sizeof *fresh);
    bool *now = calloc(old->n ? old->n : 1, sizeof *now);
    int rc = -1;
    if (!keep || !planned || !gone || !later || !fresh || !now ||
        plan_diff(old, nw, keep) < 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < old->n; i++)
        gone[i] = b->planned[i] != NULL;
    for (size_t j = 0; j < nw->n; j++)
        if (keep[j] != PLAN_NONE && b->planned[keep[j]]) {
            planned[j] = b->planned[keep[j]];
            gone[keep[j]] = false;
        }
    /* A new mapping may not take a port a label published. */
    for (size_t j = 0; b->nlabel && j < nw->n; j++) {
        if (planned[j])
            continue;
        for (const struct berth_port *p = b->ports; p; p = p->next) {
            struct mapping tmp;
            const struct mapping *held = port_bound(p, &tmp);
            if (!p->own && mapping_collides(held, &nw->maps[j])) {
                snprintf(err, errlen, "%s: its port is already published (%s)",
                         nw->maps[j].label, held->label);
                goto out;
            }
        }
    }
    size_t ngone = 0;
    for (size_t i = 0; i < old->n; i++)
        ngone += gone[i];
    unsigned need = 0;
    for (size_t j = 0; j < nw->n; j++)
        if (!planned[j])
            need |= tproxy_watch_note(b->tproxy, &nw->maps[j]);
    tproxy_watch_add(b->tproxy, need);
    /* A UDP port removed by an earlier reload and still draining holds its
     * socket: a new mapping on that address takes it over, its flows end
     * (as a removed UDP port a new mapping needs, below). A TCP one has
     * closed its listener already. */
    for (size_t j = 0; j < nw->n; j++)
        for (size_t i = drain_count(b->draining); !planned[j] && i-- > 0;) {
            const struct berth_port *p = drain_item(b->draining, i);
            if (p->udp && mapping_collides(p->m, &nw->maps[j]))
                drain_release(b->draining, i);
        }
    /* A new mapping a removed one holds the port of (gone[i]) binds only
     * after that one closes: later. Found by port, not pair by pair. */
    for (size_t j = 0; j < nw->n; j++)
        fresh[j] = !planned[j];
    if (ngone && plan_collide(old, gone, nw, fresh, NULL, later) < 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    /* Everything new binds before anything changes: a bind that fails
     * leaves the running ports as they were. */
    for (size_t j = 0; j < nw->n; j++) {
        if (planned[j] || later[j])
            continue;
        if (!(planned[j] = port_open(b, &nw->maps[j], -1, nw->freebind, true, err,
                                     errlen))) {
            for (size_t k = 0; k < j; k++)
                if (planned[k] && (keep[k] == PLAN_NONE || !b->planned[keep[k]]))
                    port_close(b, planned[k]);
            goto out;
        }
    }
    /* Committed from here on. A removed UDP port a later mapping needs
     * closes now (its flows end with it); out of memory, every removed
     * port does, which frees every address the later ones need. */
    for (size_t j = 0; j < nw->n; j++)
        fresh[j] = later[j] && nw->maps[j].proto == PROTO_UDP;
    bool all_now = ngone && plan_collide(old, gone, nw, fresh, now, NULL) < 0;
    for (size_t i = 0; i < old->n; i++)
        if (gone[i])
            port_retire(b, b->planned[i], all_now || now[i]);
    for (size_t j = 0; j < nw->n; j++)
        if (later[j] && !(planned[j] = port_open(b, &nw->maps[j], -1, nw->freebind,
                                                 true, err, errlen)))
            /* Its port was free a moment ago: something else took it. */
            log_error("reload: %s", err);
    free(b->planned);
    b->planned = planned;
    planned = NULL;
    b->plan = nw;
    /* Every flow follows the new UDP timeout; the idle timeout reaches
     * ports bound from now on (a port's session list keeps the timer it
     * was made with); keepalive and --max-conns stay: see berth.h. */
    b->ctx->udp_timeout = nw->udp_timeout;
    b->ctx->idle_timeout_ms = (uint64_t)nw->idle_timeout * 1000;
    size_t added = 0, kept = 0, removed = ngone;
    for (size_t j = 0; j < nw->n; j++) {
        if (keep[j] != PLAN_NONE)
            kept++;
        else
            added++;
    }
    log_info("reload: %zu port%s kept, %zu added, %zu removed", kept,
             kept == 1 ? "" : "s", added, removed);
    rc = 0;
out:
    free(keep);
    free(planned);
    free(gone);
    free(later);
    free(fresh);
    free(now);
    return rc;
}

void berth_on_reload(struct berth *b, berth_reload_fn *fn, void *arg)
{
    b->reload = fn;
    b->reload_arg = arg;
}

int berth_run(struct berth *b)
{
    /* A signal caught during start-up is delivered by the first pass of
     * the loop, which then stops it. */
    return event_base_dispatch(b->base) < 0 ? -1 : 0;
}

/* Sessions (tcp) or flows open on every port, those a reload removed
 * too: their clients are served. */
static size_t count_active(const struct berth *b, bool tcp)
{
    size_t n = 0;
    for (const struct berth_port *p = b->ports; p; p = p->next)
        if (!p->tcp == !tcp)
            n += port_active(p);
    for (size_t i = 0; i < drain_count(b->draining); i++) {
        const struct berth_port *p = drain_item(b->draining, i);
        if (!p->tcp == !tcp)
            n += port_active(p);
    }
    return n;
}

size_t berth_tcp_sessions(const struct berth *b) { return count_active(b, true); }

size_t berth_udp_flows(const struct berth *b) { return count_active(b, false); }

int berth_local_addr(const struct berth *b, size_t i, struct addr *out)
{
    if (i >= b->plan->n || !b->planned[i]) {
        errno = EINVAL;
        return -1;
    }
    const struct berth_port *p = b->planned[i];
    int fd = p->tcp ? tcp_listener_fd(p->tcp) : udp_listener_fd(p->udp);
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

/* /status */

const struct berth_port *berth_port_next(const struct berth *b,
                                         const struct berth_port *p)
{
    return p ? p->next : b->ports;
}

const struct mapping *berth_port_mapping(const struct berth_port *p) { return p->m; }

int berth_port_addr(const struct berth_port *p, struct addr *out)
{
    int fd = p->tcp ? tcp_listener_fd(p->tcp) : udp_listener_fd(p->udp);
    out->len = sizeof out->ss;
    return getsockname(fd, (struct sockaddr *)&out->ss, &out->len);
}

size_t berth_port_active(const struct berth_port *p)
{
    return p->tcp ? tcp_listener_sessions(p->tcp) : udp_listener_flows(p->udp);
}
