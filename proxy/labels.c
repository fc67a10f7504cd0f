#include "berth/labels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/berth.h"
#include "berth/config.h"
#include "berth/log.h"
#include "berth/plan.h"
#include "berth/spec.h"

/* One port a label asks for; active when berth published it. */
struct entry {
    struct mapping m;         /* target_name = the container's short id */
    char owner[REG_NAME_MAX]; /* container name, for messages */
    struct berth_port *port;
    bool wanted; /* seen in this sync */
};

struct labels {
    struct berth *b;
    struct registry *reg;
    bool ipv6; /* an entry without HOST_IP listens on [::] too */
    uint64_t seen_version;
    struct entry **active;
    size_t nactive;
    char **refused; /* "owner label" texts already warned about */
    size_t nrefused;
};

int labels_to_spec(const char *label, const char *target, char *out, size_t outlen,
                   char *err, size_t errlen)
{
    size_t len = strcspn(label, "/");
    /* The container port is the last ':' field before any /proto. */
    const char *colon = NULL;
    int depth = 0;
    for (size_t i = 0; i < len; i++) {
        depth += label[i] == '[';
        depth -= label[i] == ']';
        if (label[i] == ':' && depth == 0)
            colon = label + i;
    }
    if (!colon) {
        snprintf(err, errlen,
                 "want [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp|/sctp]");
        return -1;
    }
    int n = snprintf(out, outlen, "%.*s:%s%s", (int)(colon - label), label, target,
                     colon);
    if (n < 0 || (size_t)n >= outlen) {
        snprintf(err, errlen, "too long");
        return -1;
    }
    return 0;
}

struct labels *labels_new(struct berth *b, struct registry *reg, bool ipv6)
{
    struct labels *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->b = b;
    l->reg = reg;
    l->ipv6 = ipv6;
    l->seen_version = (uint64_t)-1;
    return l;
}

static void entry_free(struct labels *l, struct entry *e)
{
    berth_unpublish(l->b, e->port);
    free(e);
}

void labels_free(struct labels *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->nactive; i++)
        entry_free(l, l->active[i]);
    free(l->active);
    for (size_t i = 0; i < l->nrefused; i++)
        free(l->refused[i]);
    free(l->refused);
    free(l);
}

/* Warns once per (container, reason), not on every registry change: msg
 * is said when neither the last sync (l->refused) nor this one (*now) had
 * it. */
static void refuse(struct labels *l, char ***now, size_t *nnow, const char *msg)
{
    for (size_t i = 0; i < *nnow; i++)
        if (strcmp((*now)[i], msg) == 0)
            return;
    bool known = false;
    for (size_t i = 0; i < l->nrefused && !known; i++)
        known = strcmp(l->refused[i], msg) == 0;
    if (!known)
        log_warn("%s", msg);
    char **v = realloc(*now, (*nnow + 1) * sizeof *v);
    if (!v)
        return;
    *now = v;
    if ((v[*nnow] = strdup(msg)))
        (*nnow)++;
}

struct pass {
    struct labels *l;
    bool create; /* second pass: publish new claims */
    char **refused;
    size_t nrefused;
};

static struct entry *find_active(struct labels *l, const struct mapping *m)
{
    for (size_t i = 0; i < l->nactive; i++) {
        const struct mapping *a = &l->active[i]->m;
        if (a->proto == m->proto && addr_equal(&a->listen, &m->listen) &&
            a->target_port == m->target_port &&
            strcmp(a->target_name, m->target_name) == 0)
            return l->active[i];
    }
    return NULL;
}

/* Publishes m for c unless it is published already. Returns false with
 * why set when it cannot be (another claim or berth refused it). */
static bool publish(struct pass *p, const struct reg_container *c, struct mapping *m,
                    char *why, size_t whylen)
{
    struct labels *l = p->l;
    struct entry *e = find_active(l, m);
    if (e) {
        e->wanted = true;
        return true;
    }
    if (!p->create)
        return true;
    for (size_t i = 0; i < l->nactive; i++) {
        if (mapping_collides(&l->active[i]->m, m)) {
            char a[ADDR_STRLEN];
            snprintf(why, whylen,
                     "labels: %s/%s is claimed by '%s' and by '%s'; keeping '%s'",
                     addr_format(&m->listen, a, sizeof a), proto_name(m->proto),
                     l->active[i]->owner, c->name, l->active[i]->owner);
            return false;
        }
    }
    struct entry **v = realloc(l->active, (l->nactive + 1) * sizeof *v);
    if (!v || !(e = calloc(1, sizeof *e))) {
        if (v)
            l->active = v;
        return true; /* out of memory: tried again on the next change */
    }
    l->active = v;
    e->m = *m;
    snprintf(e->owner, sizeof e->owner, "%s", c->name);
    e->m.origin = MAPPING_LABEL;
    e->m.owner = e->owner; /* e lives as long as its port */
    char err[300];
    /* berth refuses a port its plan (or anyone else) already publishes. */
    if (!(e->port = berth_publish(l->b, &e->m, err, sizeof err))) {
        snprintf(why, whylen, "labels: '%s': %s", c->name, err);
        free(e);
        return false;
    }
    e->wanted = true;
    l->active[l->nactive++] = e;
    char pp[32] = "";
    if (e->m.proxy_proto)
        snprintf(pp, sizeof pp, " (proxy-protocol %s)",
                 proxy_proto_name(e->m.proxy_proto));
    log_info("labels: published %s for '%s'%s%s", e->m.label, c->name,
             e->m.transparent ? " (transparent)" : "", pp);
    return true;
}

/* Every mapping of one parsed entry: a port range, and without HOST_IP
 * both families. One warning for the entry, however many of its mappings
 * are refused: the first reason, and how many more. */
static void publish_entry(struct pass *p, const struct reg_container *c,
                          const struct spec *sp, const char *shortid, const char *text,
                          const struct publish_defaults *sw)
{
    struct addr hosts[2] = {sp->host};
    size_t nhosts = 1;
    if (sp->host_default && p->l->ipv6)
        addr_from_ip(&hosts[nhosts++], "::", 0);
    char first[600] = "", why[600];
    unsigned refused = 0;
    for (unsigned k = 0; k <= (unsigned)(sp->host_hi - sp->host_lo); k++) {
        for (size_t h = 0; h < nhosts; h++) {
            struct mapping m = {.proto = sp->proto,
                                .listen = hosts[h],
                                .target_port = (uint16_t)(sp->target_lo + k),
                                .transparent = sp->proto != PROTO_SCTP &&
                                               sw->transparent,
                                .proxy_proto = sp->proto == PROTO_TCP
                                                   ? sw->proxy_proto
                                                   : PROXY_PROTO_NONE};
            addr_set_port(&m.listen, (uint16_t)(sp->host_lo + k));
            snprintf(m.target_name, sizeof m.target_name, "%s", shortid);
            mapping_label(&m);
            if (!publish(p, c, &m, why, sizeof why) && refused++ == 0)
                snprintf(first, sizeof first, "%s", why);
        }
    }
    if (!refused)
        return;
    char msg[900];
    if (refused > 1)
        snprintf(msg, sizeof msg, "%s (and %u more of berth.publish '%s')", first,
                 refused - 1, text);
    else
        snprintf(msg, sizeof msg, "%s", first);
    refuse(p->l, &p->refused, &p->nrefused, msg);
}

/* The switches of c's berth.publish ports: berth.transparent and
 * berth.proxy-protocol. A bad value is warned once (as a bad entry is) and
 * switches nothing on: the ports still publish, as they would without it. */
static struct publish_defaults label_switches(struct pass *p,
                                              const struct reg_container *c)
{
    struct publish_defaults sw = {0};
    char msg[600];
    if (c->transparent && spec_parse_switch(c->transparent, &sw.transparent) < 0 &&
        p->create) {
        snprintf(msg, sizeof msg,
                 "labels: '%s': berth.transparent '%s': want true or false", c->name,
                 c->transparent);
        refuse(p->l, &p->refused, &p->nrefused, msg);
    }
    if (c->proxy_protocol &&
        spec_parse_proxy_proto(c->proxy_protocol, &sw.proxy_proto) < 0 && p->create) {
        snprintf(msg, sizeof msg,
                 "labels: '%s': berth.proxy-protocol '%s': want v1, v2 or off",
                 c->name, c->proxy_protocol);
        refuse(p->l, &p->refused, &p->nrefused, msg);
    }
    return sw;
}

static void visit(const struct reg_container *c, void *arg)
{
    struct pass *p = arg;
    if (!c->publish)
        return;
    struct publish_defaults sw = label_switches(p, c);
    char *copy = strdup(c->publish), *save = NULL;
    char shortid[13];
    snprintf(shortid, sizeof shortid, "%s", c->id);
    for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t;
         t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        char text[400], why[300], msg[800];
        struct spec sp;
        if (labels_to_spec(t, shortid, text, sizeof text, why, sizeof why) < 0 ||
            spec_parse(text, &sp, why, sizeof why) < 0) {
            /* Said in the publishing pass only, which is the one whose
             * refusals are remembered: once per bad entry, not per sync
             * (nor per copy of it in one label). */
            if (p->create) {
                snprintf(msg, sizeof msg, "labels: '%s': berth.publish '%s': %s",
                         c->name, t, why);
                refuse(p->l, &p->refused, &p->nrefused, msg);
            }
            continue;
        }
        publish_entry(p, c, &sp, shortid, t, &sw);
    }
    free(copy);
}

void labels_sync(struct labels *l)
{
    if (registry_version(l->reg) == l->seen_version)
        return;
    l->seen_version = registry_version(l->reg);
    for (size_t i = 0; i < l->nactive; i++)
        l->active[i]->wanted = false;
    /* First mark what is still claimed and drop the rest, then publish new
     * claims: an older claim keeps its port, a freed port is free. */
    struct pass p = {.l = l};
    registry_foreach(l->reg, visit, &p);
    size_t kept = 0;
    for (size_t i = 0; i < l->nactive; i++) {
        struct entry *e = l->active[i];
        if (e->wanted) {
            l->active[kept++] = e;
        } else {
            log_info("labels: unpublished %s ('%s' stopped)", e->m.label, e->owner);
            entry_free(l, e);
        }
    }
    l->nactive = kept;
    for (size_t i = 0; i < p.nrefused; i++)
        free(p.refused[i]);
    free(p.refused);
    p = (struct pass){.l = l, .create = true};
    registry_foreach(l->reg, visit, &p);
    for (size_t i = 0; i < l->nrefused; i++)
        free(l->refused[i]);
    free(l->refused);
    l->refused = p.refused;
    l->nrefused = p.nrefused;
}
