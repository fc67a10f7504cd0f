#include "berth/check.h"

#include <stdlib.h>
#include <string.h>

#include "berth/clock.h"
#include "berth/dns_forward.h"
#include "berth/docker.h"
#include "berth/log.h"
#include "berth/registry.h"

#define RESOLV_CONF "/etc/resolv.conf"
/* Name targets shown one by one; a plan rarely has more distinct ones. */
#define NAMES_SHOWN 64
/* Replicas shown per name. */
#define REPLICAS_SHOWN 8
/* How often the wait for the engine looks whether it is done. */
#define TICK_MS 20

static bool seen_ip(const struct addr *v, size_t n, const struct addr *a)
{
    for (size_t i = 0; i < n; i++)
        if (addr_equal(&v[i], a))
            return true;
    return false;
}

/* One more distinct address to ask about, unless known or out is full. */
static void consider(const struct addr *listen, struct addr *seen, size_t *nseen,
                     size_t seen_max, struct addr *out, size_t *n, size_t max)
{
    struct addr ip = *listen;
    addr_set_port(&ip, 0);
    if (*nseen >= seen_max || seen_ip(seen, *nseen, &ip))
        return;
    seen[(*nseen)++] = ip;
    if (*n < max && !sock_addr_configured(&ip))
        out[(*n)++] = ip;
}

size_t check_unconfigured(const struct config *c, const struct plan *p,
                          struct addr *out, size_t max)
{
    /* A 65535-port range has one address: ask the interfaces once per
     * distinct address, not once per mapping. */
    enum { SEEN_MAX = 64 };
    struct addr seen[SEEN_MAX];
    size_t nseen = 0, n = 0;
    for (size_t i = 0; i < p->n; i++)
        consider(&p->maps[i].listen, seen, &nseen, SEEN_MAX, out, &n, max);
    for (size_t i = 0; i < c->dns.n; i++) {
        struct addr a;
        if (addr_parse_hostport(&a, c->dns.v[i], 0) == 0)
            consider(&a, seen, &nseen, SEEN_MAX, out, &n, max);
    }
    return n;
}

static void print_dns(const struct config *c, FILE *out)
{
    if (!c->dns.n) {
        fprintf(out, "dns: off\n");
        return;
    }
    fprintf(out, "dns: zone %s, ttl %us, on", c->domain, c->ttl);
    for (size_t i = 0; i < c->dns.n; i++) {
        struct addr a;
        char s[ADDR_STRLEN];
        if (addr_parse_hostport(&a, c->dns.v[i], 0) == 0)
            fprintf(out, " %s", addr_format(&a, s, sizeof s));
    }
    fprintf(out, " (udp+tcp)\n");
    struct addr up[DNS_UPSTREAMS_MAX];
    int n = 0;
    const char *from = "--upstream";
    if (c->upstream.n) {
        for (size_t i = 0; i < c->upstream.n && n < DNS_UPSTREAMS_MAX; i++)
            if (addr_parse_hostport(&up[n], c->upstream.v[i], 53) == 0)
                n++;
    } else {
        from = RESOLV_CONF;
        n = dns_resolv_conf(RESOLV_CONF, up, DNS_UPSTREAMS_MAX);
    }
    if (n <= 0) {
        fprintf(out,
                "dns upstreams: none (%s %s); names outside the zone get SERVFAIL\n",
                n < 0 ? "cannot read" : "none in", from);
        return;
    }
    fprintf(out, "dns upstreams:");
    for (int i = 0; i < n; i++) {
        char s[ADDR_STRLEN];
        fprintf(out, " %s", addr_format(&up[i], s, sizeof s));
    }
    fprintf(out, " (from %s)\n", from);
}

struct wait {
    struct event_base *base;
    struct docker *docker;
    struct registry *reg;
    uint64_t deadline;
    struct event *tick;
};

/* Done when the engine synced, when it failed (its reason is in the
 * registry), or at the deadline. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct wait *w = arg;
    (void)fd;
    (void)what;
    if (docker_synced(w->docker) || *registry_engine_why(w->reg) ||
        clock_ms() >= w->deadline) {
        event_base_loopbreak(w->base);
        return;
    }
    struct timeval tv = clock_tv(TICK_MS);
    evtimer_add(w->tick, &tv);
}

/* The replicas behind one name target, as a relay would find them now:
 * IPv4 when there are any, else IPv6. */
static void print_name(struct registry *reg, const char *name, FILE *out)
{
    struct addr a[REPLICAS_SHOWN];
    size_t len = strlen(name);
    int n = registry_resolve(reg, name, len, AF_INET, a, REPLICAS_SHOWN);
    if (n == 0)
        n = registry_resolve(reg, name, len, AF_INET6, a, REPLICAS_SHOWN);
    if (n <= 0) {
        fprintf(out, "warning: name target '%s': %s\n", name,
                n < 0 ? "nothing running by that name now"
                      : "running, but without an address");
        return;
    }
    fprintf(out, "  %s ->", name);
    for (int i = 0; i < n && i < REPLICAS_SHOWN; i++) {
        char who[REG_NAME_MAX], ip[ADDR_STRLEN];
        if (registry_ptr(reg, &a[i], who, sizeof who) < 0)
            snprintf(who, sizeof who, "?");
        fprintf(out, "%s %s %s", i ? "," : "", who,
                addr_format_ip(&a[i], ip, sizeof ip));
    }
    if (n > REPLICAS_SHOWN)
        fprintf(out, " and %d more", n - REPLICAS_SHOWN);
    fprintf(out, "\n");
}

static void print_label(const struct reg_container *c, void *arg)
{
    if (c->publish)
        fprintf(arg, "  label of '%s': berth.publish=%s\n", c->name, c->publish);
}

static void print_running(const struct config *c, const struct plan *p,
                          struct registry *reg, FILE *out)
{
    fprintf(out, "running now (%zu container%s):\n", registry_count(reg),
            registry_count(reg) == 1 ? "" : "s");
    const char *names[NAMES_SHOWN];
    size_t n = 0, more = 0;
    for (size_t i = 0; i < p->n; i++) {
        const char *t = p->maps[i].target_name;
        bool known = !t[0];
        for (size_t k = 0; k < n && !known; k++)
            known = strcmp(names[k], t) == 0;
        if (known)
            continue;
        if (n == NAMES_SHOWN) {
            more++;
            continue;
        }
        names[n++] = t;
        print_name(reg, t, out);
    }
    if (more)
        fprintf(out, "  (%zu more name target%s not shown)\n", more,
                more == 1 ? "" : "s");
    if (c->labels)
        registry_foreach(reg, print_label, out);
}

/* Runs the real Docker client on a loop of its own until it synced, failed
 * or the wait ran out, then says what it found. */
static int print_docker(const struct config *c, const struct plan *p,
                        const char *where, FILE *out)
{
    int rc = -1;
    char err[512];
    struct wait w = {0};
    enum log_level level = log_get_level();
    /* Its progress and failure lines are for a running berth: what it
     * found is said below (--log-level debug still shows them). */
    if (level < LOG_DEBUG)
        log_set_level(LOG_ERROR);
    if (!(w.base = event_base_new()) || !(w.reg = registry_new()) ||
        !(w.tick = evtimer_new(w.base, on_tick, &w)))
        goto out;
    rc = 0;
    if (!(w.docker = docker_new(w.base, w.reg, c->docker, NULL, NULL, err,
                                sizeof err))) {
        fprintf(out, "warning: names not checked: %s\n", err);
        goto out;
    }
    w.deadline = clock_ms() + (uint64_t)c->check_wait * 1000;
    struct timeval tv = clock_tv(TICK_MS);
    evtimer_add(w.tick, &tv);
    event_base_dispatch(w.base);
    if (docker_synced(w.docker))
        print_running(c, p, w.reg, out);
    else if (*registry_engine_why(w.reg))
        fprintf(out, "warning: names not checked: %s\n", registry_engine_why(w.reg));
    else
        fprintf(out, "warning: names not checked: %s did not sync within %us\n", where,
                c->check_wait);
out:
    if (rc < 0)
        fprintf(out, "warning: names not checked: out of memory\n");
    docker_free(w.docker);
    registry_free(w.reg);
    if (w.tick)
        event_free(w.tick);
    if (w.base)
        event_base_free(w.base);
    log_set_level(level);
    return rc;
}

int check_print(const struct config *c, const struct plan *p,
                const struct docker_endpoint *ep, FILE *out)
{
    plan_print(p, out);
    struct addr missing[16];
    size_t n = check_unconfigured(c, p, missing, 16);
    for (size_t i = 0; i < n; i++) {
        char ip[ADDR_STRLEN];
        fprintf(out,
                "note: %s is not configured on this host yet: bound anyway "
                "(IP_FREEBIND), served once it appears\n",
                addr_format_ip(&missing[i], ip, sizeof ip));
    }
    print_dns(c, out);
    fprintf(out, "labels: %s\n",
            c->labels ? "on (berth.publish of running containers)" : "off");
    if (!ep) {
        fprintf(out, "docker: %s\n",
                c->no_docker ? "off (--no-docker)" : "not needed (IP targets only)");
        return 0;
    }
    char where[sizeof ep->url + sizeof ep->source + 64];
    docker_endpoint_describe(ep, where, sizeof where);
    fprintf(out, "names from the Docker API at %s\n", where);
    if (*ep->warning)
        fprintf(out, "warning: %s\n", ep->warning);
    if (!p->names && !c->labels)
        return 0;
    if (!c->check_wait) {
        fprintf(out, "names not checked (--check-wait 0)\n");
        return 0;
    }
    return print_docker(c, p, ep->url, out);
}
