#include "berth/dns_server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "berth/dgram.h"
#include "berth/dns_answer.h"
#include "berth/dns_forward.h"
#include "berth/dns_tcp.h"
#include "berth/invariant.h"
#include "berth/log.h"
#include "berth/metrics.h"
#include "berth/slot_pool.h"

#define BATCH 32
/* A query larger than the largest reply is nonsense; it is dropped. */
#define QUERY_MAX DNS_UDP_MAX
#define RCVBUF (4 << 20)
#define PORT_TRIES 32

/* recvmmsg/sendmmsg buffers, made once per server. */
struct dns_batch {
    struct mmsghdr in[BATCH], out[BATCH];
    struct iovec in_iov[BATCH], out_iov[BATCH];
    struct addr peer[BATCH];
    char in_ctrl[BATCH][DGRAM_CTRL_LEN], out_ctrl[BATCH][DGRAM_CTRL_LEN];
    uint8_t query[BATCH][QUERY_MAX];
    uint8_t reply[BATCH][DNS_UDP_MAX];
};

struct dns_udp {
    struct dns_server *s;
    int fd;
    bool pktinfo; /* bound to a wildcard: track reply_src */
    struct event *ev;
};

/* A forwarded query waiting for its answer, in a slot of s->pend. */
struct pending {
    struct dns_server *s;
    bool tcp;
    struct dns_query q; /* q.qname points at qname below */
    uint8_t qname[DNS_NAME_MAX];
    struct dns_udp *u; /* UDP client */
    struct addr client;
    struct reply_src src;
    struct dns_tcp_conn *conn; /* TCP client; NULL once it is gone */
    uint64_t sent_ns;          /* with metrics: when it went upstream */
};

struct dns_server {
    struct event_base *base;
    struct registry *reg;
    bool open_resolver;
    struct metrics *metrics; /* NULL: nothing counted */
    struct dns_responder *resp;
    struct dns_forwarder *fwd;
    struct dns_udp *udp;
    struct dns_tcp **tcp;
    struct addr *bound;
    size_t n;               /* listen addresses */
    struct slot_pool *pend; /* of struct pending */
    struct dns_batch *b;
    uint8_t *msg; /* DNS_MSG_MAX: TCP and forwarded replies */
};

static bool may_forward(struct dns_server *s, const struct addr *client)
{
    return s->open_resolver || addr_is_loopback(client) ||
           registry_knows_client(s->reg, client);
}

/* ---- forwarding ---- */

static void on_forwarded(void *arg, const uint8_t *ans, size_t len)
{
    struct pending *p = arg;
    struct dns_server *s = p->s;
    size_t limit = dns_reply_limit(&p->q, p->tcp);
    const uint8_t *out = ans;
    if (!ans) {
        out = s->msg;
        len = dns_reply_empty(&p->q, DNS_RA, DNS_SERVFAIL, s->msg, limit);
    } else if (len > limit) {
        /* Too large for this UDP client: it asks again over TCP. */
        out = s->msg;
        len = dns_reply_empty(&p->q, DNS_RA | DNS_TC, ans[3] & DNS_RCODE_MASK, s->msg,
                              limit);
    }
    if (s->metrics) {
        metrics_dns_forward_time(s->metrics, metrics_now_ns() - p->sent_ns);
        if (len >= 4)
            metrics_dns_answer(s->metrics, out[3] & DNS_RCODE_MASK, true);
    }
    /* The slot goes back before replying: a reply may start new queries. */
    struct pending c = *p;
    slot_put(s->pend, p);
    /* Each pending query is one query in the forwarder, which has already
     * let go of this one's. */
    INVARIANT(slot_pool_used(s->pend) == dns_forwarder_inflight(s->fwd));
    if (c.tcp) {
        if (c.conn)
            dns_tcp_reply(c.conn, out, len);
        return;
    }
    if (!len)
        return;
    struct iovec iov = {(void *)out, len};
    char ctrl[DGRAM_CTRL_LEN];
    struct mmsghdr m = {.msg_hdr = {.msg_name = &c.client.ss,
                                    .msg_namelen = c.client.len,
                                    .msg_iov = &iov,
                                    .msg_iovlen = 1}};
    reply_src_write(&c.src, c.client.ss.ss_family, &m.msg_hdr, ctrl);
    /* A batch of one: a refused reply is dropped like any other. */
    dgram_send_batch(c.u->fd, &m, 1, "dns");
}

/* Sends q upstream for a client. Returns 0, or -1 when it cannot go (the
 * caller replies SERVFAIL). */
static int forward(struct dns_server *s, const struct dns_query *q, struct dns_udp *u,
                   const struct addr *client, const struct reply_src *src,
                   struct dns_tcp_conn *conn)
{
    struct pending *p = slot_get(s->pend);
    if (!p)
        return -1;
    p->s = s;
    p->q = *q;
    memcpy(p->qname, q->qname, q->qname_len);
    p->q.qname = p->qname;
    p->tcp = conn != NULL;
    p->conn = conn;
    p->u = u;
    if (client)
        p->client = *client;
    if (src)
        p->src = *src;
    if (s->metrics)
        p->sent_ns = metrics_now_ns();
    if (dns_forward(s->fwd, &p->q, p->tcp, on_forwarded, p) < 0) {
        slot_put(s->pend, p);
        return -1;
    }
    return 0;
}

/* What a query that is not the zone's gets: an upstream's answer later
 * (returns 0), or a reply now in out (returns its length). */
static size_t not_ours(struct dns_server *s, const struct dns_query *q, bool tcp,
                       struct dns_udp *u, const struct addr *client,
                       const struct reply_src *src, struct dns_tcp_conn *conn,
                       uint8_t *out, size_t cap)
{
    size_t limit = dns_reply_limit(q, tcp);
    if (limit > cap)
        limit = cap;
    if (!may_forward(s, client)) {
        char a[ADDR_STRLEN];
        log_debug("dns: client %s may not use berth as a resolver; REFUSED",
                  addr_format(client, a, sizeof a));
        return dns_reply_empty(q, 0, DNS_REFUSED, out, limit);
    }
    if (forward(s, q, u, client, src, conn) == 0)
        return 0;
    log_debug("dns: cannot forward (%s); SERVFAIL",
              slot_pool_used(s->pend) < slot_pool_count(s->pend)
                  ? "no upstream"
                  : "too many queries in flight");
    return dns_reply_empty(q, DNS_RA, DNS_SERVFAIL, out, limit);
}

/* ---- UDP ---- */

/* The address a datagram arrived on: the socket's, or from its pktinfo
 * when the socket is a wildcard's. */
static void udp_local(const struct dns_server *s, const struct dns_udp *u,
                      const struct reply_src *src, struct addr *out)
{
    *out = s->bound[u - s->udp];
    if (!src->set)
        return;
    memset(out, 0, sizeof *out);
    if (src->v4.ipi_spec_dst.s_addr != 0) {
        struct sockaddr_in *a = (struct sockaddr_in *)&out->ss;
        a->sin_family = AF_INET;
        a->sin_addr = src->v4.ipi_spec_dst;
        out->len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&out->ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = src->v6.ipi6_addr;
        out->len = sizeof *a;
    }
}

static void on_udp(evutil_socket_t fd, short what, void *arg)
{
    struct dns_udp *u = arg;
    struct dns_server *s = u->s;
    struct dns_batch *b = s->b;
    (void)what;
    struct dgram_recv r = {b->in,      b->in_iov,        b->peer,
                           b->in_ctrl, (char *)b->query, QUERY_MAX};
    int n = dgram_recv_batch(fd, &r, BATCH, u->pktinfo, "dns");
    int nout = 0;
    for (int i = 0; i < n; i++) {
        struct msghdr *h = &b->in[i].msg_hdr;
        if (h->msg_flags & (MSG_TRUNC | MSG_CTRUNC))
            continue;
        struct reply_src src = {.set = false};
        if (u->pktinfo)
            reply_src_read(h, &src);
        struct dns_query q;
        struct addr local;
        size_t len = 0;
        udp_local(s, u, &src, &local);
        enum dns_action act = dns_respond(s->resp, b->query[i], b->in[i].msg_len,
                                          false, &local, &q, b->reply[nout],
                                          DNS_UDP_MAX, &len);
        if (act == DNS_FORWARD)
            len = not_ours(s, &q, false, u, &b->peer[i], &src, NULL, b->reply[nout],
                           DNS_UDP_MAX);
        else if (act == DNS_DROP)
            len = 0;
        if (!len)
            continue;
        /* Forwarded ones are counted when the upstream answers. */
        if (len >= 4)
            metrics_dns_answer(s->metrics, b->reply[nout][3] & DNS_RCODE_MASK, false);
        b->out_iov[nout] = (struct iovec){b->reply[nout], len};
        b->out[nout].msg_hdr = (struct msghdr){.msg_name = &b->peer[i].ss,
                                               .msg_namelen = b->peer[i].len,
                                               .msg_iov = &b->out_iov[nout],
                                               .msg_iovlen = 1};
        reply_src_write(&src, b->peer[i].ss.ss_family, &b->out[nout].msg_hdr,
                        b->out_ctrl[nout]);
        nout++;
    }
    dgram_send_batch(fd, b->out, nout, "dns");
}

/* ---- TCP ---- */

static void on_tcp_query(void *arg, struct dns_tcp_conn *c, const struct addr *peer,
                         const uint8_t *msg, size_t len)
{
    struct dns_server *s = arg;
    struct dns_query q;
    struct addr local;
    size_t out = 0;
    bool known = dns_tcp_conn_local(c, &local) == 0;
    enum dns_action act = dns_respond(s->resp, msg, len, true, known ? &local : NULL,
                                      &q, s->msg, DNS_MSG_MAX, &out);
    if (act == DNS_FORWARD)
        out = not_ours(s, &q, true, NULL, peer, NULL, c, s->msg, DNS_MSG_MAX);
    else if (act == DNS_DROP)
        out = 0;
    if (out >= 4)
        metrics_dns_answer(s->metrics, s->msg[3] & DNS_RCODE_MASK, false);
    if (act != DNS_FORWARD || out)
        dns_tcp_reply(c, s->msg, out);
}

static void on_tcp_gone(void *arg, struct dns_tcp_conn *c)
{
    struct dns_server *s = arg;
    for (size_t i = 0; i < slot_pool_count(s->pend); i++) {
        struct pending *p = slot_pool_at(s->pend, i);
        if (p && p->conn == c)
            p->conn = NULL;
    }
}

/* ---- set-up ---- */

static int udp_open(struct dns_server *s, struct dns_udp *u, const struct addr *a,
                    struct addr *bound, char *err, size_t errlen)
{
    char t[ADDR_STRLEN];
    u->s = s;
    bound->len = sizeof bound->ss;
    if ((u->fd = sock_bind(a, SOCK_DGRAM)) < 0 ||
        getsockname(u->fd, (struct sockaddr *)&bound->ss, &bound->len) < 0) {
        snprintf(err, errlen, "dns: listen udp %s: %s", addr_format(a, t, sizeof t),
                 strerror(errno));
        return -1;
    }
    /* Bursts (dnsperf, a container fleet starting) queue in the kernel
     * rather than drop; best effort, capped by net.core.rmem_max. */
    int rcv = RCVBUF;
    setsockopt(u->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    if (dgram_track_local(u->fd, bound, &u->pktinfo) < 0) {
        snprintf(err, errlen, "dns: udp %s: pktinfo: %s",
                 addr_format(bound, t, sizeof t), strerror(errno));
        return -1;
    }
    if (!(u->ev = event_new(s->base, u->fd, EV_READ | EV_PERSIST, on_udp, u)) ||
        event_add(u->ev, NULL) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static void udp_close(struct dns_udp *u)
{
    if (u->ev)
        event_free(u->ev);
    u->ev = NULL;
    if (u->fd >= 0)
        close(u->fd);
    u->fd = -1;
}

/* UDP and TCP on a, on one port: with port 0, the kernel's pick for UDP
 * is tried for TCP, and another pick if that one is taken. */
static int listen_on(struct dns_server *s, size_t i, const struct dns_options *o,
                     char *err, size_t errlen)
{
    const struct addr *a = &o->listen[i];
    struct dns_tcp_options to = {.idle_ms = o->tcp_idle_ms,
                                 .max_conns = o->tcp_max_conns,
                                 .query = on_tcp_query,
                                 .gone = on_tcp_gone,
                                 .arg = s};
    for (int tries = 0; tries < PORT_TRIES; tries++) {
        if (udp_open(s, &s->udp[i], a, &s->bound[i], err, errlen) < 0)
            return -1;
        if ((s->tcp[i] = dns_tcp_new(s->base, &s->bound[i], &to, err, errlen)))
            return 0;
        udp_close(&s->udp[i]);
        if (errno != EADDRINUSE || addr_port(a) != 0)
            return -1;
    }
    return -1;
}

/* The upstreams: as given, or resolv.conf's nameservers. */
static struct dns_forwarder *make_forwarder(struct dns_server *s,
                                            const struct dns_options *o, char *err,
                                            size_t errlen)
{
    struct addr conf[DNS_UPSTREAMS_MAX];
    struct dns_forward_options fo = {.upstreams = o->upstreams,
                                     .nupstreams = o->nupstreams,
                                     .self = s->bound,
                                     .nself = s->n,
                                     .timeout_ms = o->upstream_timeout_ms,
                                     .max_inflight = o->max_inflight};
    if (!o->nupstreams) {
        const char *path = o->resolv_conf ? o->resolv_conf : "/etc/resolv.conf";
        int n = dns_resolv_conf(path, conf, DNS_UPSTREAMS_MAX);
        if (n < 0)
            log_warn("dns: %s: %s", path, strerror(errno));
        fo.upstreams = conf;
        fo.nupstreams = n < 0 ? 0 : (size_t)n;
    }
    return dns_forwarder_new(s->base, &fo, err, errlen);
}

static void log_start(const struct dns_server *s, const struct dns_options *o)
{
    char line[512];
    size_t len = 0;
    for (size_t i = 0; i < s->n && len < sizeof line; i++) {
        char a[ADDR_STRLEN];
        int k = snprintf(line + len, sizeof line - len, "%s%s", i ? " " : "",
                         addr_format(&s->bound[i], a, sizeof a));
        len += k > 0 ? (size_t)k : 0;
    }
    log_info("dns: zone %s on %s (udp+tcp), %zu upstream%s%s", o->domain, line,
             dns_forwarder_upstreams(s->fwd),
             dns_forwarder_upstreams(s->fwd) == 1 ? "" : "s",
             o->open_resolver ? ", forwarding for any client" : "");
}

struct dns_server *dns_server_new(struct event_base *base, struct registry *reg,
                                  const struct dns_options *o, char *err,
                                  size_t errlen)
{
    struct dns_server *s = calloc(1, sizeof *s);
    size_t npend = o->max_inflight ? o->max_inflight : DNS_FORWARD_INFLIGHT;
    if (!s || !(s->udp = calloc(o->nlisten ? o->nlisten : 1, sizeof *s->udp)) ||
        !(s->tcp = calloc(o->nlisten ? o->nlisten : 1, sizeof *s->tcp)) ||
        !(s->bound = calloc(o->nlisten ? o->nlisten : 1, sizeof *s->bound)) ||
        !(s->pend = slot_pool_new(npend, sizeof(struct pending))) ||
        !(s->b = malloc(sizeof *s->b)) || !(s->msg = malloc(DNS_MSG_MAX))) {
        snprintf(err, errlen, "out of memory");
        dns_server_free(s);
        return NULL;
    }
    s->base = base;
    s->reg = reg;
    s->open_resolver = o->open_resolver;
    s->metrics = o->metrics;
    for (size_t i = 0; i < o->nlisten; i++)
        s->udp[i].fd = -1;
    s->n = o->nlisten;
    if (!(s->resp = dns_responder_new(reg, o->domain ? o->domain : "docker", o->ttl,
                                      err, errlen))) {
        dns_server_free(s);
        return NULL;
    }
    for (size_t i = 0; i < o->nlisten; i++) {
        if (listen_on(s, i, o, err, errlen) < 0) {
            dns_server_free(s);
            return NULL;
        }
    }
    if (!(s->fwd = make_forwarder(s, o, err, errlen))) {
        dns_server_free(s);
        return NULL;
    }
    log_start(s, o);
    return s;
}

void dns_server_free(struct dns_server *s)
{
    if (!s)
        return;
    /* Connections first: closing them looks at the pending table. */
    for (size_t i = 0; s->tcp && i < s->n; i++)
        dns_tcp_free(s->tcp[i]);
    for (size_t i = 0; s->udp && i < s->n; i++)
        udp_close(&s->udp[i]);
    dns_forwarder_free(s->fwd);
    dns_responder_free(s->resp);
    free(s->udp);
    free(s->tcp);
    free(s->bound);
    slot_pool_free(s->pend);
    free(s->b);
    free(s->msg);
    free(s);
}

int dns_server_local_addr(const struct dns_server *s, size_t i, struct addr *out)
{
    if (i >= s->n) {
        errno = EINVAL;
        return -1;
    }
    *out = s->bound[i];
    return 0;
}

size_t dns_server_inflight(const struct dns_server *s)
{
    return s->fwd ? dns_forwarder_inflight(s->fwd) : 0;
}

size_t dns_server_tcp_conns(const struct dns_server *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        n += s->tcp[i] ? dns_tcp_conns(s->tcp[i]) : 0;
    return n;
}
