#include "berth/berth.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "berth/invariant.h"
#include "berth/listener.h"
#include "berth/log.h"
#include "berth/metrics.h"
#include "berth/tproxy_check.h"
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
    struct berth_port **planned; /* the plan's, by mapping index */
    /* Ports a reload removed, no longer accepting, until their last
     * session or flow ends (checked every DRAIN_CHECK_S by drain_timer). */
    struct berth_port *draining;
    struct event *drain_timer;
    berth_reload_fn *reload;
    void *reload_arg;
    /* SIGINT, SIGTERM: stop; SIGHUP, SIGUSR1, SIGUSR2, SIGALRM: see
     * on_other_signal. None of them may end berth by default action. */
    struct event *sig[6];
    /* Transparent mode: the packets (TPROXY_* bits) its check covered, an
     * IP target per family (where replies come in), and while it fails,
     * the timer that checks again; tproxy_once: no re-check (docker-proxy
     * mode: one process per port, each would spawn nft every 30 s). */
    unsigned tproxy_need;
    struct addr tproxy_target[2];
    struct event *tproxy_recheck;
    bool tproxy_once;
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

struct berth *berth_new(struct event_base *base, const struct plan *plan,
                        struct registry *reg)
{
    struct berth *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->base = base;
    b->plan = plan;
    if (!(b->ctx = relay_ctx_new(base, reg)) ||
        !(b->planned = calloc(plan->n ? plan->n : 1, sizeof *b->planned))) {
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

/* Takes p out of the list whose head is *head. */
static void port_unlink(struct berth_port **head, struct berth_port *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        *head = p->next;
    if (p->next)
        p->next->prev = p->prev;
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

static void port_close(struct berth *b, struct berth_port *p)
{
    port_unlink(&b->ports, p);
    port_free(p);
}

static void close_all(struct berth *b)
{
    while (b->ports)
        port_close(b, b->ports);
    if (b->planned)
        memset(b->planned, 0, (b->plan->n ? b->plan->n : 1) * sizeof *b->planned);
}

void berth_free(struct berth *b)
{
    if (!b)
        return;
    close_all(b);
    while (b->draining) {
        struct berth_port *p = b->draining;
        port_unlink(&b->draining, p);
        port_free(p);
    }
    if (b->drain_timer)
        event_free(b->drain_timer);
    free(b->planned);
    for (size_t i = 0; i < sizeof caught / sizeof caught[0]; i++)
        if (b->sig[i])
            event_free(b->sig[i]);
    if (b->tproxy_recheck)
        event_free(b->tproxy_recheck);
    relay_ctx_free(b->ctx);
    free(b);
}

struct relay_ctx *berth_ctx(struct berth *b) { return b->ctx; }

void berth_set_metrics(struct berth *b, struct metrics *m) { b->metrics = m; }

/* While the host is not set up, checked again every 30 s: an operator who
 * reads the warning and runs `berth-tproxy up` sees transparent mode start
 * without restarting berth. A check spawns nft (and iptables-save where
 * its rules are) and blocks the loop meanwhile (2-3 ms measured, more on a
 * host with a large ruleset), so it runs only while broken; once it works
 * it is not repeated (a later teardown is not watched). Nor in docker-proxy
 * mode (tproxy_once). Each kind of packet (TCP, UDP; the target's IPv4,
 * IPv6) has its own verdict: IPv6 lacking leaves IPv4 targets transparent. */
#define TPROXY_RECHECK_S 30

/* One log line for the kinds in bits (TPROXY_*) that share a finding,
 * named after it: "TCP/IPv4, UDP/IPv4" (the protocol, the target's
 * family). */
static void tproxy_log(unsigned bits, enum tproxy_result r, const char *why,
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

static void tproxy_run(struct berth *b)
{
    struct tproxy_report rep;
    const struct addr *targets[2];
    for (int v6 = 0; v6 < 2; v6++)
        targets[v6] = b->tproxy_target[v6].len ? &b->tproxy_target[v6] : NULL;
    tproxy_check_each(b->tproxy_need, targets, &rep);
    bool broken = false;
    unsigned said = 0;
    for (unsigned i = 0; i < 4; i++) {
        char *slot = b->ctx->transparent_broken[i >> 1][i & 1]; /* [v6][udp] */
        if (!(b->tproxy_need & 1u << i) || (said & 1u << i))
            continue;
        unsigned bits = 0; /* the kinds with the same finding: one line */
        for (unsigned j = i; j < 4; j++)
            if ((b->tproxy_need & 1u << j) && rep.result[j] == rep.result[i] &&
                strcmp(rep.why[j], rep.why[i]) == 0 &&
                strcmp(b->ctx->transparent_broken[j >> 1][j & 1], slot) == 0)
                bits |= 1u << j;
        said |= bits;
        tproxy_log(bits, rep.result[i], rep.why[i], slot);
    }
    for (unsigned i = 0; i < 4; i++) {
        if (!(b->tproxy_need & 1u << i))
            continue;
        snprintf(b->ctx->transparent_broken[i >> 1][i & 1],
                 sizeof b->ctx->transparent_broken[0][0], "%s",
                 rep.result[i] == TPROXY_BROKEN ? rep.why[i] : "");
        broken = broken || rep.result[i] == TPROXY_BROKEN;
    }
    if (broken && b->tproxy_recheck && !b->tproxy_once) {
        struct timeval tv = {.tv_sec = TPROXY_RECHECK_S};
        evtimer_add(b->tproxy_recheck, &tv);
    }
}

static void on_tproxy_recheck(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    tproxy_run(arg);
}

/* Notes what transparent mapping m needs (its target, where replies come
 * in); the bits the last check did not cover. */
static unsigned tproxy_note(struct berth *b, const struct mapping *m)
{
    if (!m->transparent)
        return 0;
    unsigned need = tproxy_need(m);
    int v6 = m->target.ss.ss_family == AF_INET6;
    if (!m->target_name[0] && !b->tproxy_target[v6].len)
        b->tproxy_target[v6] = m->target;
    return need & ~b->tproxy_need;
}

/* Checks the host when transparent mappings need packets (TPROXY_* bits)
 * the last check did not cover (a label's UDP port after the plan's TCP). */
static void tproxy_add(struct berth *b, unsigned need)
{
    if ((need & ~b->tproxy_need) == 0)
        return;
    b->tproxy_need |= need;
    /* A parent that ignores SIGCHLD (some service managers, a shell's
     * `trap '' CHLD`) leaves it ignored here: the check's children would
     * then be reaped by the kernel and waitpid fail with ECHILD. */
    signal(SIGCHLD, SIG_DFL);
    if (!b->tproxy_once && !b->tproxy_recheck &&
        !(b->tproxy_recheck = evtimer_new(b->base, on_tproxy_recheck, b)))
        log_warn("transparent mode: out of memory for the re-check timer");
    tproxy_run(b);
}

/* Binds m (fd >= 0: takes over that socket instead) and appends the port
 * to the list; a plan's mapping (copy) is copied into the port. */
static struct berth_port *port_open(struct berth *b, const struct mapping *m, int fd,
                                    bool freebind, bool copy, char *err, size_t errlen)
{
    /* Bound (or taken over) here, for both kinds of listener. */
    fd = sock_listener(&m->listen, m->proto == PROTO_TCP ? SOCK_STREAM : SOCK_DGRAM,
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
    if (m->proto == PROTO_TCP)
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
    struct berth_port **tail = &b->ports, *prev = NULL;
    while (*tail) {
        prev = *tail;
        tail = &(*tail)->next;
    }
    p->prev = prev;
    *tail = p;
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
    /* Ports handed over (docker-proxy mode): checked once, see tproxy_once. */
    b->tproxy_once = fds != NULL;
    for (size_t i = 0; i < b->plan->n; i++)
        need |= tproxy_note(b, &b->plan->maps[i]);
    tproxy_add(b, need);
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
    tproxy_add(b, tproxy_note(b, m));
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

/* How often ports a reload removed are looked at: each is freed once its
 * last session or flow has ended. */
#define DRAIN_CHECK_S 1

static size_t port_active(const struct berth_port *p)
{
    return p->tcp ? tcp_listener_sessions(p->tcp) : udp_listener_flows(p->udp);
}

static void on_drain_check(evutil_socket_t fd, short what, void *arg)
{
    struct berth *b = arg;
    (void)fd;
    (void)what;
    for (struct berth_port *p = b->draining, *next; p; p = next) {
        next = p->next;
        if (port_active(p) == 0) {
            log_info("%s: removed by the reload, its last client is gone",
                     p->m->label);
            port_unlink(&b->draining, p);
            port_free(p);
        }
    }
    if (b->draining) {
        struct timeval tv = {.tv_sec = DRAIN_CHECK_S};
        evtimer_add(b->drain_timer, &tv);
    }
}

/* A removed port stops taking clients now: TCP closes its listening
 * socket (new clients are refused), UDP drops datagrams of new clients
 * (its socket carries the flows' replies); sessions and flows go on. A
 * port with none is closed at once, and so is a UDP port a new mapping
 * needs (now: its flows end with it). */
static void port_retire(struct berth *b, struct berth_port *p, bool now)
{
    port_unlink(&b->ports, p);
    if (p->tcp)
        tcp_listener_stop(p->tcp);
    else
        udp_listener_drain(p->udp);
    if (now || port_active(p) == 0 ||
        (!b->drain_timer &&
         !(b->drain_timer = evtimer_new(b->base, on_drain_check, b)))) {
        port_free(p);
        return;
    }
    log_info("%s: removed by the reload: %zu %s left to finish", p->m->label,
             port_active(p), p->tcp ? "session(s)" : "flow(s)");
    p->next = b->draining;
    if (b->draining)
        b->draining->prev = p;
    b->draining = p;
    struct timeval tv = {.tv_sec = DRAIN_CHECK_S};
    evtimer_add(b->drain_timer, &tv);
}

/* Whether some removed mapping of the old plan (gone[i]) holds what new
 * mapping m needs: m binds only after those close. */
static bool needs_removed(const struct plan *old, const bool *gone, size_t ngone,
                          const struct mapping *m)
{
    for (size_t i = 0; ngone && i < old->n; i++)
        if (gone[i] && mapping_collides(&old->maps[i], m))
            return true;
    return false;
}

int berth_reload(struct berth *b, const struct plan *nw, char *err, size_t errlen)
{
    const struct plan *old = b->plan;
    size_t *keep = malloc((nw->n ? nw->n : 1) * sizeof *keep);
    struct berth_port **planned = calloc(nw->n ? nw->n : 1, sizeof *planned);
    bool *gone = malloc((old->n ? old->n : 1) * sizeof *gone);
    /* New mappings that wait for removed ones (same port): bound last. */
    bool *later = calloc(nw->n ? nw->n : 1, sizeof *later);
    int rc = -1;
    if (!keep || !planned || !gone || !later || plan_diff(old, nw, keep) < 0) {
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
    for (size_t j = 0; j < nw->n; j++) {
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
            need |= tproxy_note(b, &nw->maps[j]);
    tproxy_add(b, need);
    /* Everything new binds before anything changes: a bind that fails
     * leaves the running ports as they were. */
    for (size_t j = 0; j < nw->n; j++) {
        if (planned[j] || (later[j] = needs_removed(old, gone, ngone, &nw->maps[j])))
            continue;
        if (!(planned[j] = port_open(b, &nw->maps[j], -1, nw->freebind, true, err,
                                     errlen))) {
            for (size_t k = 0; k < j; k++)
                if (planned[k] && (keep[k] == PLAN_NONE || !b->planned[keep[k]]))
                    port_close(b, planned[k]);
            goto out;
        }
    }
    /* Committed from here on. */
    for (size_t i = 0; i < old->n; i++) {
        if (!gone[i])
            continue;
        bool now = false;
        for (size_t j = 0; j < nw->n && !now; j++)
            now = later[j] && nw->maps[j].proto == PROTO_UDP &&
                  mapping_collides(&old->maps[i], &nw->maps[j]);
        port_retire(b, b->planned[i], now);
    }
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

/* Both count the ports a reload removed too: their clients are served. */
size_t berth_tcp_sessions(const struct berth *b)
{
    size_t n = 0;
    for (const struct berth_port *p = b->ports; p; p = p->next)
        if (p->tcp)
            n += tcp_listener_sessions(p->tcp);
    for (const struct berth_port *p = b->draining; p; p = p->next)
        if (p->tcp)
            n += tcp_listener_sessions(p->tcp);
    return n;
}

size_t berth_udp_flows(const struct berth *b)
{
    size_t n = 0;
    for (const struct berth_port *p = b->ports; p; p = p->next)
        if (p->udp)
            n += udp_listener_flows(p->udp);
    for (const struct berth_port *p = b->draining; p; p = p->next)
        if (p->udp)
            n += udp_listener_flows(p->udp);
    return n;
}

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
