#include "berth/plan.h"

#include <stdlib.h>
#include <string.h>

void mapping_label(struct mapping *m)
{
    char l[ADDR_STRLEN], t[ADDR_STRLEN];
    if (m->target_name[0])
        snprintf(t, sizeof t, "%.40s:%u", m->target_name, m->target_port);
    else
        addr_format(&m->target, t, sizeof t);
    snprintf(m->label, sizeof m->label, "%s->%s/%s",
             addr_format(&m->listen, l, sizeof l), t, proto_name(m->proto));
}

int plan_add(struct plan *p, enum proto proto, const struct addr *listen,
             const struct addr *target)
{
    if ((p->n & (p->n - 1)) == 0) { /* grow at powers of two */
        size_t cap = p->n ? p->n * 2 : 4;
        struct mapping *m = realloc(p->maps, cap * sizeof *m);
        if (!m)
            return -1;
        p->maps = m;
    }
    struct mapping *m = &p->maps[p->n++];
    memset(m, 0, sizeof *m);
    m->proto = proto;
    m->listen = *listen;
    if (target)
        m->target = *target;
    mapping_label(m);
    return 0;
}

int plan_add_named(struct plan *p, enum proto proto, const struct addr *listen,
                   const char *name, uint16_t port)
{
    if (plan_add(p, proto, listen, NULL) < 0)
        return -1;
    struct mapping *m = &p->maps[p->n - 1];
    snprintf(m->target_name, sizeof m->target_name, "%s", name);
    m->target_port = port;
    mapping_label(m);
    p->names = true;
    return 0;
}

/* Two mappings collide when the kernel would refuse the second bind: same
 * protocol and port, and the same address or a wildcard of that family. */
bool mapping_collides(const struct mapping *a, const struct mapping *b)
{
    if (a->proto != b->proto || addr_port(&a->listen) != addr_port(&b->listen) ||
        a->listen.ss.ss_family != b->listen.ss.ss_family)
        return false;
    return addr_is_any(&a->listen) || addr_is_any(&b->listen) ||
           addr_equal(&a->listen, &b->listen);
}

static int by_port(const void *x, const void *y)
{
    const struct mapping *a = *(const struct mapping *const *)x;
    const struct mapping *b = *(const struct mapping *const *)y;
    int ka = (int)addr_port(&a->listen) * 4 + (int)a->proto * 2 +
             (a->listen.ss.ss_family == AF_INET6);
    int kb = (int)addr_port(&b->listen) * 4 + (int)b->proto * 2 +
             (b->listen.ss.ss_family == AF_INET6);
    if (ka != kb)
        return ka < kb ? -1 : 1;
    return a < b ? -1 : a > b; /* keep publish order inside a group */
}

bool mapping_same(const struct mapping *a, const struct mapping *b)
{
    /* addr_equal compares family, address and port. */
    return a->proto == b->proto && addr_equal(&a->listen, &b->listen) &&
           strcmp(a->target_name, b->target_name) == 0 &&
           (a->target_name[0] ? a->target_port == b->target_port
                              : addr_equal(&a->target, &b->target)) &&
           a->transparent == b->transparent && a->proxy_proto == b->proxy_proto;
}

/* by_port's key without the tie-break: equal for every mapping that can be
 * the same as another. */
static int port_key(const struct mapping *m)
{
    return (int)addr_port(&m->listen) * 4 + (int)m->proto * 2 +
           (m->listen.ss.ss_family == AF_INET6);
}

static const struct mapping **sorted(const struct plan *p)
{
    const struct mapping **v = malloc((p->n ? p->n : 1) * sizeof *v);
    if (!v)
        return NULL;
    for (size_t i = 0; i < p->n; i++)
        v[i] = &p->maps[i];
    qsort(v, p->n, sizeof *v, by_port);
    return v;
}

int plan_diff(const struct plan *old, const struct plan *nw, size_t *keep)
{
    for (size_t j = 0; j < nw->n; j++)
        keep[j] = PLAN_NONE;
    const struct mapping **o = sorted(old), **n = sorted(nw);
    bool *used = calloc(old->n ? old->n : 1, sizeof *used);
    int rc = -1;
    if (!o || !n || !used)
        goto out;
    /* A merge walk over both, key group by key group; a group holds the
     * few mappings of one port (a wildcard and some addresses). */
    for (size_t i = 0, j = 0; i < old->n && j < nw->n;) {
        int ko = port_key(o[i]), kn = port_key(n[j]);
        if (ko != kn) {
            if (ko < kn)
                i++;
            else
                j++;
            continue;
        }
        size_t ie = i, je = j;
        while (ie < old->n && port_key(o[ie]) == ko)
            ie++;
        while (je < nw->n && port_key(n[je]) == kn)
            je++;
        for (size_t y = j; y < je; y++)
            for (size_t x = i; x < ie; x++) {
                size_t oi = (size_t)(o[x] - old->maps);
                if (!used[oi] && mapping_same(o[x], n[y])) {
                    used[oi] = true;
                    keep[n[y] - nw->maps] = oi;
                    break;
                }
            }
        i = ie;
        j = je;
    }
    rc = 0;
out:
    free(o);
    free(n);
    free(used);
    return rc;
}

int plan_collide(const struct plan *a, const bool *pa, const struct plan *b,
                 const bool *pb, bool *a_hit, bool *b_hit)
{
    const struct mapping **x = sorted(a), **y = sorted(b);
    int rc = -1;
    if (!x || !y)
        goto out;
    /* The merge walk of plan_diff: only mappings of one key group (one
     * port, protocol and family) can collide. */
    for (size_t i = 0, k = 0; i < a->n && k < b->n;) {
        int ka = port_key(x[i]), kb = port_key(y[k]);
        if (ka != kb) {
            if (ka < kb)
                i++;
            else
                k++;
            continue;
        }
        size_t ie = i, ke = k;
        while (ie < a->n && port_key(x[ie]) == ka)
            ie++;
        while (ke < b->n && port_key(y[ke]) == kb)
            ke++;
        for (size_t u = i; u < ie; u++)
            for (size_t v = k; v < ke; v++) {
                size_t ai = (size_t)(x[u] - a->maps), bi = (size_t)(y[v] - b->maps);
                if (pa[ai] && pb[bi] && mapping_collides(x[u], y[v])) {
                    if (a_hit)
                        a_hit[ai] = true;
                    if (b_hit)
                        b_hit[bi] = true;
                }
            }
        i = ie;
        k = ke;
    }
    rc = 0;
out:
    free(x);
    free(y);
    return rc;
}

/* Sorting by port keeps this O(n log n) for 65535-port ranges. */
static int check_collisions(const struct plan *p, const struct config *c, char *err,
                            size_t errlen)
{
    const struct mapping **v = malloc((p->n ? p->n : 1) * sizeof *v);
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < p->n; i++)
        v[i] = &p->maps[i];
    qsort(v, p->n, sizeof *v, by_port);
    int rc = 0;
    for (size_t i = 0; i < p->n && rc == 0; i++) {
        for (size_t j = i + 1;
             j < p->n && addr_port(&v[j]->listen) == addr_port(&v[i]->listen); j++) {
            if (!mapping_collides(v[i], v[j]))
                continue;
            char a[ADDR_STRLEN], by[300] = "";
            /* Name the other spec too: "8080:a:80" holds [::]:8080 as well,
             * which its text does not show. */
            if (v[i]->source != v[j]->source)
                snprintf(by, sizeof by, " by '%.200s'", c->publish.v[v[i]->source]);
            snprintf(err, errlen, "--publish '%s': %s/%s is already published%s (%s)",
                     c->publish.v[v[j]->source],
                     addr_format(&v[j]->listen, a, sizeof a), proto_name(v[j]->proto),
                     by, v[i]->label);
            rc = -1;
            break;
        }
    }
    free(v);
    return rc;
}

struct plan *plan_new(const struct config *c, char *err, size_t errlen)
{
    if (c->labels && c->no_docker) {
        snprintf(err, errlen,
                 "--labels: reading labels needs the Docker API "
                 "(drop --no-docker)");
        return NULL;
    }
    struct plan *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->udp_timeout = c->udp_timeout;
    p->max_conns = c->max_conns;
    p->tcp_keepalive = c->tcp_keepalive;
    p->idle_timeout = c->idle_timeout;
    p->freebind = true;
    for (size_t i = 0; i < c->publish.n; i++) {
        const char *text = c->publish.v[i];
        struct spec sp;
        char why[200];
        if (spec_parse(text, &sp, why, sizeof why) < 0) {
            snprintf(err, errlen, "--publish '%s': %s", text, why);
            goto fail;
        }
        if (!sp.target_is_ip && c->no_docker) {
            snprintf(err, errlen,
                     "--publish '%s': target '%s' is a container name, which "
                     "needs the Docker API (drop --no-docker or use an IP)",
                     text, sp.target_name);
            goto fail;
        }
        struct addr hosts[2] = {sp.host};
        size_t nhosts = 1;
        if (sp.host_default && c->host_ipv6)
            addr_from_ip(&hosts[nhosts++], "::", 0);
        for (unsigned k = 0; k <= (unsigned)(sp.host_hi - sp.host_lo); k++) {
            for (size_t h = 0; h < nhosts; h++) {
                struct addr l = hosts[h], t = sp.target;
                addr_set_port(&l, (uint16_t)(sp.host_lo + k));
                addr_set_port(&t, (uint16_t)(sp.target_lo + k));
                int r = sp.target_is_ip
                            ? plan_add(p, sp.proto, &l, &t)
                            : plan_add_named(p, sp.proto, &l, sp.target_name,
                                             (uint16_t)(sp.target_lo + k));
                if (r < 0) {
                    snprintf(err, errlen, "out of memory");
                    goto fail;
                }
                struct mapping *m = &p->maps[p->n - 1];
                m->source = i;
                m->transparent = c->publish_opts[i].transparent;
                m->proxy_proto = c->publish_opts[i].proxy_proto;
                m->origin = c->publish_opts[i].from_file ? MAPPING_CONFIG
                                                         : MAPPING_CLI;
            }
        }
    }
    if (check_collisions(p, c, err, errlen) < 0)
        goto fail;
    return p;
fail:
    plan_free(p);
    return NULL;
}

void plan_free(struct plan *p)
{
    if (!p)
        return;
    free(p->maps);
    free(p);
}

void plan_print(const struct plan *p, FILE *out)
{
    fprintf(out, "berth plan: %zu mapping%s\n", p->n, p->n == 1 ? "" : "s");
    for (size_t i = 0; i < p->n; i++) {
        char l[ADDR_STRLEN], t[ADDR_STRLEN];
        const struct mapping *m = &p->maps[i];
        if (m->target_name[0])
            snprintf(t, sizeof t, "%.40s:%u", m->target_name, m->target_port);
        else
            addr_format(&m->target, t, sizeof t);
        char pp[32] = "";
        if (m->proxy_proto)
            snprintf(pp, sizeof pp, " (proxy-protocol %s)",
                     proxy_proto_name(m->proxy_proto));
        fprintf(out, "  %s %s -> %s%s%s\n", proto_name(m->proto),
                addr_format(&m->listen, l, sizeof l), t,
                m->transparent ? " (transparent)" : "", pp);
    }
    fprintf(out, "udp-timeout %us, max-conns per port ", p->udp_timeout);
    if (p->max_conns)
        fprintf(out, "%u\n", p->max_conns);
    else
        fprintf(out, "unlimited\n");
    const struct sock_keepalive *k = &p->tcp_keepalive;
    if (k->idle)
        fprintf(out, "tcp-keepalive %u:%u:%u", k->idle, k->interval, k->count);
    else
        fprintf(out, "tcp-keepalive off");
    if (p->idle_timeout)
        fprintf(out, ", idle-timeout %us\n", p->idle_timeout);
    else
        fprintf(out, ", idle-timeout never\n");
}
