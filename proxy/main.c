/* berth: publishes TCP and UDP ports from one process, or stands in for
 * dockerd's docker-proxy. main() wires argv to a plan, starts the relays,
 * runs the loop until SIGINT/SIGTERM and stops in reverse. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "berth/admin.h"
#include "berth/berth.h"
#include "berth/check.h"
#include "berth/compat.h"
#include "berth/config.h"
#include "berth/dns_server.h"
#include "berth/docker.h"
#include "berth/docker_endpoint.h"
#include "berth/labels.h"
#include "berth/listen_fds.h"
#include "berth/registry.h"
#include "berth/log.h"
#include "berth/metrics.h"
#include "berth/plan.h"
#include "berth/sd_notify.h"
#include "berth/status.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* dockerd may start us with 0-2 closed or on /dev/null; keep them taken so
 * no socket lands on a stdio number and gets written to by accident. */
static void keep_stdio_taken(void)
{
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) == -1 && open("/dev/null", O_RDWR) < 0)
            return;
}

/* The registry changed: label publishing follows it (the relays resolve
 * names per connection and need no telling). */
static void on_registry_change(void *arg)
{
    if (arg)
        labels_sync(arg);
}

/* The DNS responder on every --dns address, answering from reg. */
static struct dns_server *start_dns(struct event_base *base, struct registry *reg,
                                    const struct config *c, struct metrics *metrics,
                                    char *err, size_t errlen)
{
    struct addr *listen = calloc(c->dns.n, sizeof *listen);
    struct addr *up = calloc(c->upstream.n + 1, sizeof *up);
    struct dns_server *s = NULL;
    if (!listen || !up) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    /* Both lists were validated with the same parser. */
    for (size_t i = 0; i < c->dns.n; i++)
        addr_parse_hostport(&listen[i], c->dns.v[i], 0);
    for (size_t i = 0; i < c->upstream.n; i++)
        addr_parse_hostport(&up[i], c->upstream.v[i], 53);
    struct dns_options o = {.listen = listen,
                            .nlisten = c->dns.n,
                            .upstreams = up,
                            .nupstreams = c->upstream.n,
                            .domain = c->domain,
                            .ttl = c->ttl,
                            .metrics = metrics};
    s = dns_server_new(base, reg, &o, err, errlen);
out:
    free(listen);
    free(up);
    return s;
}

/* Addresses bound before they exist (a Docker bridge's gateway at boot)
 * are said once each: a typo'd address binds too, and would otherwise
 * serve nothing without a word. */
static void log_unconfigured(const struct config *c, const struct plan *p)
{
    struct addr missing[16];
    size_t n = check_unconfigured(c, p, missing, 16);
    for (size_t i = 0; i < n; i++) {
        char ip[ADDR_STRLEN];
        log_info("%s is not configured on this host yet: listening on it anyway "
                 "(IP_FREEBIND), served once it appears",
                 addr_format_ip(&missing[i], ip, sizeof ip));
    }
}

/* READY=1 for a Type=notify unit, sent once every listener of the plan
 * and every DNS address is bound: a unit ordered After=berth.service
 * finds the ports answering. Ports from labels come and go later and are
 * not waited for (Docker may be down for minutes). */
static void notify_ready(struct sd_notifier *n, const struct config *c,
                         const struct plan *p)
{
    char status[160];
    int k = snprintf(status, sizeof status, "serving %zu port%s", p->n,
                     p->n == 1 ? "" : "s");
    if (k > 0 && (size_t)k < sizeof status && c->dns.n)
        k += snprintf(status + k, sizeof status - (size_t)k, ", DNS on %zu address%s",
                      c->dns.n, c->dns.n == 1 ? "" : "es");
    if (k > 0 && (size_t)k < sizeof status && c->labels)
        snprintf(status + k, sizeof status - (size_t)k, ", publishing Docker labels");
    sd_notify_ready(n, status);
}

/* What SIGHUP re-reads and where it puts the result: the config and plan
 * are main's (c and plan there), replaced only by a reload that worked. */
struct reload {
    int argc;
    char **argv;
    struct config **c;
    struct plan **plan;
    struct berth *b;
    struct labels *labels;
    struct sd_notifier *notify;
    struct metrics *metrics; /* NULL without --admin */
};

static bool strlist_equal(const struct strlist *a, const struct strlist *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i]) != 0)
            return false;
    return true;
}

/* Settings a running berth keeps: they are read once, at start. */
static void log_kept(const struct config *was, const struct config *now)
{
    const char *kept[8];
    size_t n = 0;
    if ((was->docker == NULL) != (now->docker == NULL) ||
        (was->docker && strcmp(was->docker, now->docker) != 0))
        kept[n++] = "docker";
    if (was->no_docker != now->no_docker)
        kept[n++] = "no-docker";
    if (was->labels != now->labels)
        kept[n++] = "labels";
    if (!strlist_equal(&was->dns, &now->dns) ||
        !strlist_equal(&was->upstream, &now->upstream) ||
        strcmp(was->domain ? was->domain : "", now->domain ? now->domain : "") != 0 ||
        was->ttl != now->ttl)
        kept[n++] = "dns, upstream, domain, ttl";
    if (was->stale_after != now->stale_after)
        kept[n++] = "stale-after";
    if (was->swarm_poll != now->swarm_poll)
        kept[n++] = "swarm-poll";
    if (was->max_conns != now->max_conns)
        kept[n++] = "max-conns";
    if (memcmp(&was->tcp_keepalive, &now->tcp_keepalive, sizeof was->tcp_keepalive))
        kept[n++] = "tcp-keepalive";
    if ((was->admin == NULL) != (now->admin == NULL) ||
        (was->admin && strcmp(was->admin, now->admin) != 0))
        kept[n++] = "admin";
    for (size_t i = 0; i < n; i++)
        log_warn("reload: %s changed: takes effect at the next restart", kept[i]);
}

/* SIGHUP: the config file and command line read again (the command line
 * still wins), the plan they make served instead (berth_reload), labels
 * synced again (a port the old plan held may be free for one now). A
 * config that does not parse, or a port that cannot bind, changes
 * nothing: one error line says why. */
static void on_reload(void *arg)
{
    struct reload *r = arg;
    sd_notify_reloading(r->notify);
    char err[512];
    struct config *c = config_new();
    struct plan *p = NULL;
    if (!c)
        snprintf(err, sizeof err, "out of memory");
    else if (config_parse_args(c, r->argc, r->argv, err, sizeof err) == 0) {
        c->host_ipv6 = (*r->c)->host_ipv6;
        /* A name target needs the Docker connection made at start. */
        if ((p = plan_new(c, err, sizeof err)) && p->names && !(*r->plan)->names &&
            !r->labels && !(*r->c)->dns.n) {
            snprintf(err, sizeof err,
                     "a container name target needs the Docker API, which berth "
                     "did not connect to at start: restart berth");
            plan_free(p);
            p = NULL;
        }
    }
    if (!p || berth_reload(r->b, p, err, sizeof err) < 0) {
        log_error("reload refused, serving as before: %s", err);
        plan_free(p);
        config_free(c);
        metrics_reload(r->metrics, false);
    } else {
        log_kept(*r->c, c);
        plan_free(*r->plan);
        config_free(*r->c);
        *r->plan = p;
        *r->c = c;
        log_set_level(c->log_level);
        log_set_format(c->log_format);
        if (r->labels)
            labels_sync(r->labels);
        metrics_reload(r->metrics, true);
    }
    notify_ready(r->notify, *r->c, *r->plan);
}

/* The sockets systemd passed (listen_fds.h), each to the plan's mapping
 * listening on exactly its address with its protocol: *out is berth_start's
 * fds (NULL: none passed). -1 with err when a passed socket matches no
 * mapping (the fds are closed then). */
static int adopt_passed(const struct plan *plan, struct listen_fds *lf, int **out,
                        char *err, size_t errlen)
{
    *out = NULL;
    if (!lf || lf->n == 0)
        return 0;
    int *fds = malloc((plan->n ? plan->n : 1) * sizeof *fds);
    if (!fds) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < plan->n; i++) {
        const struct mapping *m = &plan->maps[i];
        fds[i] = listen_fds_take(lf, &m->listen, proto_ipproto(m->proto));
    }
    const struct listen_fd *f = listen_fds_untaken(lf);
    if (f) {
        char d[LISTEN_FD_NAME_MAX + ADDR_STRLEN + 32];
        snprintf(err, errlen,
                 "LISTEN_FDS: %s matches no mapping (a --publish or config entry "
                 "listening on that address with that protocol)",
                 listen_fd_describe(f, d, sizeof d));
        for (size_t i = 0; i < plan->n; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        free(fds);
        return -1;
    }
    for (size_t i = 0; i < plan->n; i++)
        if (fds[i] >= 0)
            log_info("%s: on fd %d, passed by the service manager",
                     plan->maps[i].label, fds[i]);
    *out = fds;
    return 0;
}

int main(int argc, char **argv)
{
    /* open() takes the lowest free number, so this never lands on the
     * status pipe (fd 3) or the listen socket (fd 4) dockerd passes. */
    keep_stdio_taken();
    signal(SIGPIPE, SIG_IGN);
    /* Until berth_new catches them: none of these may end a proxy that
     * dockerd or a service manager started, even while it starts up. */
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    signal(SIGALRM, SIG_IGN);
    if (compat_wanted(argc, argv))
        return compat_main(argc, argv);

    char err[512];
    struct config *c = config_new();
    if (!c) {
        fprintf(stderr, "berth: out of memory\n");
        return EXIT_RUNTIME;
    }
    if (config_parse_args(c, argc, argv, err, sizeof err) < 0) {
        fprintf(stderr, "berth: %s\n", err);
        config_free(c);
        return EXIT_USAGE;
    }
    if (c->help || c->version) {
        if (c->help)
            config_usage("berth", stdout);
        else
            printf("berth %s\n", BERTH_VERSION);
        config_free(c);
        return EXIT_OK;
    }
    log_set_level(c->log_level);
    log_set_format(c->log_format);
    /* Asked once: specs and labels without HOST_IP listen on [::] too. */
    c->host_ipv6 = sock_host_has_ipv6();

    struct plan *plan = plan_new(c, err, sizeof err);
    if (!plan) {
        fprintf(stderr, "berth: %s\n", err);
        config_free(c);
        return EXIT_USAGE;
    }
    if (plan->n == 0 && !c->labels && !c->dns.n) {
        fprintf(stderr, "berth: nothing to do: give --publish, --labels or --dns "
                        "(see berth --help)\n");
        plan_free(plan);
        config_free(c);
        return EXIT_USAGE;
    }
    /* The endpoint is found and checked before anything binds: a bad
     * DOCKER_HOST or context is a usage error, not a retry loop. docker_new
     * finds the same one again. */
    bool need_docker = !c->no_docker && (plan->names || c->labels || c->dns.n);
    /* A --docker given is checked even when nothing needs it now. */
    bool check_docker = need_docker || (c->docker && !c->no_docker);
    struct docker_endpoint *ep = check_docker ? malloc(sizeof *ep) : NULL;
    if (check_docker &&
        (!ep || docker_endpoint_resolve(ep, c->docker, err, sizeof err) < 0)) {
        int bad = ep ? EXIT_USAGE : EXIT_RUNTIME;
        fprintf(stderr, "berth: %s\n", ep ? err : "out of memory");
        free(ep);
        plan_free(plan);
        config_free(c);
        return bad;
    }
    if (ep && !need_docker) {
        free(ep);
        ep = NULL;
    }
    if (c->check) {
        int ok = check_print(c, plan, ep, stdout);
        free(ep);
        plan_free(plan);
        config_free(c);
        return ok == 0 ? EXIT_OK : EXIT_RUNTIME;
    }
    if (ep && *ep->warning)
        log_warn("docker: %s", ep->warning);
    free(ep);
    /* Read (and unset) before anything could spawn a child. */
    int *passed = NULL;
    struct listen_fds *lf = listen_fds_from_env(err, sizeof err);
    if (!lf || adopt_passed(plan, lf, &passed, err, sizeof err) < 0) {
        fprintf(stderr, "berth: %s\n", err);
        listen_fds_free(lf);
        plan_free(plan);
        config_free(c);
        return EXIT_RUNTIME;
    }
    listen_fds_free(lf); /* every fd was taken */
    berth_raise_fd_limit();
    log_unconfigured(c, plan);

    int rc = EXIT_RUNTIME;
    struct event_base *base = berth_event_base_new();
    struct berth *b = NULL;
    struct registry *reg = NULL;
    struct docker *docker = NULL;
    struct labels *labels = NULL;
    struct dns_server *dns = NULL;
    struct sd_notifier *notify = NULL;
    /* Counted only when someone can read them (--admin). */
    struct metrics *metrics = NULL;
    struct admin *admin = NULL;
    struct status *status = NULL;
    if (!base || ((need_docker || c->dns.n) && !(reg = registry_new())) ||
        !(b = berth_new(base, plan, reg)) ||
        (c->admin && !(metrics = metrics_new()))) {
        log_error("out of memory");
        goto out;
    }
    berth_set_metrics(b, metrics);
    int start = berth_start(b, passed, err, sizeof err);
    free(passed);
    passed = NULL; /* adopted, or closed by berth_start */
    if (start < 0) {
        log_error("%s", err);
        goto out;
    }
    /* Ports are bound before Docker answers: a name with nothing running
     * behind it yet closes clients at once, then comes alive. */
    if (c->dns.n && !(dns = start_dns(base, reg, c, metrics, err, sizeof err))) {
        log_error("%s", err);
        goto out;
    }
    if (c->admin) {
        struct addr at;
        addr_parse_hostport(&at, c->admin, 0); /* validated by config */
        if (!(admin = admin_new(base, &at, err, sizeof err)) ||
            admin_route(admin, "/metrics", metrics_http, metrics) < 0) {
            log_error("%s", admin ? "admin: out of memory" : err);
            goto out;
        }
    }
    if (c->labels && !(labels = labels_new(b, reg, c->host_ipv6))) {
        log_error("out of memory");
        goto out;
    }
    if (need_docker && !(docker = docker_new(base, reg, c->docker, on_registry_change,
                                             labels, err, sizeof err))) {
        log_error("%s", err);
        goto out;
    }
    if (docker) {
        docker_set_stale_after(docker, c->stale_after);
        docker_set_swarm_poll(docker, c->swarm_poll);
        docker_set_metrics(docker, metrics);
    }
    /* /status and / read the ports and the engine afresh per request. */
    if (admin && (!(status = status_new(b, docker)) ||
                  admin_route(admin, "/status", status_serve_json, status) < 0 ||
                  admin_route(admin, "/", status_serve_page, status) < 0)) {
        log_error("admin: out of memory");
        goto out;
    }
    /* Native mode only: compat_main never gets here. dockerd, itself a
     * Type=notify unit, passes its NOTIFY_SOCKET on to every docker-proxy
     * it spawns; one that said READY=1 or STOPPING=1 would be refused
     * (NotifyAccess=main) or, worse, taken for dockerd. */
    notify = sd_notify_new();
    sd_notify_watchdog_start(notify, base);
    notify_ready(notify, c, plan);
    struct reload reload = {.argc = argc,
                            .argv = argv,
                            .c = &c,
                            .plan = &plan,
                            .b = b,
                            .labels = labels,
                            .notify = notify,
                            .metrics = metrics};
    berth_on_reload(b, on_reload, &reload);
    if (berth_run(b) == 0)
        rc = EXIT_OK;
    /* The loop ends on SIGTERM/SIGINT (or its failure): closing every
     * session below may take a moment, which systemd should know of. */
    sd_notify_stopping(notify);
out:
    /* Not handed to berth_start (out of memory before it). */
    for (size_t i = 0; passed && i < plan->n; i++)
        if (passed[i] >= 0)
            close(passed[i]);
    free(passed);
    sd_notify_free(notify);
    admin_free(admin);
    status_free(status);
    docker_free(docker);
    dns_server_free(dns);
    labels_free(labels);
    berth_free(b);
    metrics_free(metrics);
    registry_free(reg);
    if (base)
        event_base_free(base);
    plan_free(plan);
    config_free(c);
    return rc;
}
