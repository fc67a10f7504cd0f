/* The plan: what berth will bind and where each port forwards, expanded from
 * a validated config (ranges become one mapping per port). Pure, no I/O
 * besides plan_print. Errors: -1/NULL with a one-line message in err. */
#ifndef BERTH_PLAN_H
#define BERTH_PLAN_H

#include <stdio.h>

#include "berth/config.h"
#include "berth/mapping.h"
#include "berth/sockaddr.h"
#include "berth/spec.h"

struct plan {
    struct mapping *maps;
    size_t n;
    unsigned udp_timeout;
    unsigned max_conns;
    struct sock_keepalive tcp_keepalive; /* idle 0: off */
    unsigned idle_timeout;               /* TCP, seconds; 0 = never */
    bool names;                          /* some mapping needs the Docker API */
    /* Bind addresses the host lacks yet (IP_FREEBIND, sockaddr.h): on for
     * plans from a config; off in PLAN_INIT, so docker-proxy mode fails on
     * them as docker-proxy does (dockerd 20.10 reports that bind error to
     * `docker run`). */
    bool freebind;
};

/* An empty plan with config.h's defaults, for a front that builds its plan
 * by hand (docker-proxy mode): struct plan p = PLAN_INIT; */
#define PLAN_INIT                                                                     \
    {                                                                                 \
        .udp_timeout = CONFIG_UDP_TIMEOUT, .tcp_keepalive = CONFIG_TCP_KEEPALIVE      \
    }

/* A spec without HOST_IP becomes a 0.0.0.0 mapping and, when
 * c->host_ipv6, a [::] one after it (same source). */
struct plan *plan_new(const struct config *c, char *err, size_t errlen);
void plan_free(struct plan *p);
/* Appends one mapping (used by the docker-proxy front end too). */
int plan_add(struct plan *p, enum proto proto, const struct addr *listen,
             const struct addr *target);
/* The same with a Docker name as the target. */
int plan_add_named(struct plan *p, enum proto proto, const struct addr *listen,
                   const char *name, uint16_t port);
/* True when binding both would fail: same protocol and port, and the same
 * address or a wildcard of that family. */
bool mapping_collides(const struct mapping *a, const struct mapping *b);

/* The same port doing the same thing: protocol, listen address, target
 * (IP, or name and port) and switches (transparent, PROXY protocol).
 * Where a mapping came from (source, label) does not count. */
bool mapping_same(const struct mapping *a, const struct mapping *b);

/* No mapping of the old plan: see plan_diff. */
#define PLAN_NONE ((size_t)-1)
/* What a reload keeps: keep[j] is the index in old of a mapping the same
 * as nw's mapping j (mapping_same), or PLAN_NONE when j is new. Each old
 * mapping is kept at most once; one no keep[] names is removed. O(n log n)
 * (ranges of 65535 ports). 0, or -1 when out of memory. */
int plan_diff(const struct plan *old, const struct plan *nw, size_t *keep);

/* Which picked mappings of a (pa[i]) collide with picked ones of b (pb[j])
 * (mapping_collides): a_hit[i] and b_hit[j] are set true for those (either
 * may be NULL; entries not hit are left as they were). O(n log n) for
 * plans of different ports. Returns 0, or -1 when out of memory. */
int plan_collide(const struct plan *a, const bool *pa, const struct plan *b,
                 const bool *pb, bool *a_hit, bool *b_hit);

/* Fills m's label from its fields. */
void mapping_label(struct mapping *m);
void plan_print(const struct plan *p, FILE *out);

#endif
