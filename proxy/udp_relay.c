#include "berth/udp_relay.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "berth/clock.h"
#include "berth/dgram.h"
#include "berth/log.h"
#include "berth/lru.h"
#include "berth/transparent.h"

#define BUCKETS_MIN 16

struct udp_flow {
    struct udp_listener *l;
    struct udp_flow *hnext; /* hash chain */
    struct lru_node idle;   /* in l->idle, oldest first */
    struct addr client;
    struct reply_src src; /* wildcard binds: the client's destination */
    int fd;               /* connected to the target */
    struct addr target;   /* the replica this flow sticks to */
    uint64_t seen;        /* registry version it was checked at */
    struct event *ev;
    uint64_t last_ms; /* last datagram either way */
    unsigned run;     /* 1 + its run in the batch on_request sends; 0: none */
};

struct udp_listener {
    struct relay_ctx *ctx;
    const struct mapping *m;
    int fd;
    bool pktinfo; /* bound to a wildcard: track local addr */
    struct event *ev;
    struct event *expire;
    struct event *flush; /* sends the loop's queued replies */
    struct udp_flow **buckets;
    size_t nbuckets, nflows;
    struct lru idle; /* flows by last traffic */
    unsigned rr;     /* replica for the next new flow */
    bool said_full;
    bool draining;           /* no new flows: udp_listener_drain */
    struct map_stats *stats; /* the port's counters; NULL: none kept */
};

/* ---- idle order ---- */

static struct udp_flow *oldest(struct udp_listener *l)
{
    return l->idle.oldest ? LRU_ENTRY(l->idle.oldest, struct udp_flow, idle) : NULL;
}

static void touch(struct udp_flow *f, uint64_t now)
{
    f->last_ms = now;
    lru_touch(&f->l->idle, &f->idle);
}

/* ---- table ---- */

static struct udp_flow **bucket_of(struct udp_listener *l, const struct addr *a)
{
    return &l->buckets[addr_hash(a) & (l->nbuckets - 1)];
}

static struct udp_flow *flow_find(struct udp_listener *l, const struct addr *a)
{
    for (struct udp_flow *f = *bucket_of(l, a); f; f = f->hnext)
        if (addr_equal(&f->client, a))
            return f;
    return NULL;
}

static void flow_free(struct udp_flow *f)
{
    struct udp_listener *l = f->l;
    for (struct udp_flow **p = bucket_of(l, &f->client); *p; p = &(*p)->hnext) {
        if (*p == f) {
            *p = f->hnext;
            break;
        }
    }
    lru_unlink(&l->idle, &f->idle);
    l->nflows--;
    if (l->stats)
        l->stats->flows_active--;
    if (f->ev)
        event_free(f->ev);
    if (f->fd >= 0)
        close(f->fd);
    free(f);
}

static int grow(struct udp_listener *l)
{
    size_t n = l->nbuckets ? l->nbuckets * 2 : BUCKETS_MIN;
    struct udp_flow **b = calloc(n, sizeof *b);
    if (!b)
        return -1;
    for (size_t i = 0; i < l->nbuckets; i++) {
        struct udp_flow *f = l->buckets[i], *next;
        for (; f; f = next) {
            next = f->hnext;
            size_t k = addr_hash(&f->client) & (n - 1);
            f->hnext = b[k];
            b[k] = f;
        }
    }
    free(l->buckets);
    l->buckets = b;
    l->nbuckets = n;
    return 0;
}

static void arm_expiry(struct udp_listener *l, uint64_t now)
{
    if (!oldest(l) || evtimer_pending(l->expire, NULL))
        return;
    uint64_t due = oldest(l)->last_ms + (uint64_t)l->ctx->udp_timeout * 1000;
    uint64_t wait = due > now ? due - now : 0;
    /* One ms late rather than early: the flow is then surely idle enough. */
    struct timeval tv = clock_tv(wait + 1);
    evtimer_add(l->expire, &tv);
}

static void on_expire(evutil_socket_t fd, short what, void *arg)
{
    struct udp_listener *l = arg;
    (void)fd;
    (void)what;
    uint64_t now = clock_ms(), idle = (uint64_t)l->ctx->udp_timeout * 1000;
    while (oldest(l) && oldest(l)->last_ms + idle <= now) {
        char c[ADDR_STRLEN];
        log_debug("%s client %s: idle for %us, flow closed", l->m->label,
                  addr_format(&oldest(l)->client, c, sizeof c), l->ctx->udp_timeout);
        flow_free(oldest(l));
    }
    arm_expiry(l, now);
}

/* ---- replies: target -> client ---- */

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct udp_listener *l = arg;
    (void)fd;
    (void)what;
    dgram_out_flush(l->ctx->udp_out);
}

/* Replies are received straight into free slots of the loop's outgoing
 * queue and leave when the turn's ready events have all run: replies of
 * many flows (of every port) go out in one sendmmsg per listener instead
 * of one per flow. */
static void on_reply(evutil_socket_t fd, short what, void *arg)
{
    struct udp_flow *f = arg;
    struct udp_listener *l = f->l;
    struct dgram_out *o = l->ctx->udp_out;
    struct dgram_batch *b = &o->b;
    (void)what;
    if (o->n == DGRAM_BATCH)
        dgram_out_flush(o); /* full: what it holds leaves now */
    int first = o->n;
    for (int i = first; i < DGRAM_BATCH; i++) {
        b->iov[i] = (struct iovec){b->data[i], DGRAM_MAX};
        b->msgs[i].msg_hdr = (struct msghdr){.msg_iov = &b->iov[i], .msg_iovlen = 1};
    }
    int n = recvmmsg(fd, b->msgs + first, (unsigned)(DGRAM_BATCH - first),
                     MSG_DONTWAIT, NULL);
    if (n <= 0) {
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            char c[ADDR_STRLEN];
            log_debug("%s client %s: recv from target: %s", l->m->label,
                      addr_format(&f->client, c, sizeof c), strerror(errno));
            /* A named target that refuses may have moved: close the flow so
             * the client's next datagram resolves the name again. */
            if (l->m->target_name[0] &&
                (errno == ECONNREFUSED || errno == EHOSTUNREACH ||
                 errno == ENETUNREACH))
                flow_free(f);
        }
        return;
    }
    /* Each slot carries its own destination and source: the flow may be
     * evicted before the queue is sent. */
    for (int i = first; i < first + n; i++) {
        struct msghdr *h = &b->msgs[i].msg_hdr;
        b->iov[i].iov_len = b->msgs[i].msg_len;
        b->peer[i] = f->client;
        h->msg_name = &b->peer[i].ss;
        h->msg_namelen = f->client.len;
        reply_src_write(&f->src, l->m->listen.ss.ss_family, h, b->ctrl[i]);
    }
    if (l->stats) {
        l->stats->datagrams[METRICS_OUT] += (uint64_t)n;
        for (int i = first; i < first + n; i++)
            l->stats->bytes[METRICS_OUT] += b->msgs[i].msg_len;
    }
    dgram_out_queued(o, n, l->fd, l->m->label);
    /* libevent runs an event made active now after those already active
     * (all one priority): the flush comes once this turn's replies are in. */
    event_active(l->flush, EV_TIMEOUT, 1);
    touch(f, clock_ms());
}

/* ---- requests: client -> target ---- */

static struct udp_flow *flow_new(struct udp_listener *l, const struct addr *client,
                                 struct msghdr *h, uint64_t now)
{
    char c[ADDR_STRLEN];
    addr_format(client, c, sizeof c);
    if (l->nflows >= l->nbuckets && grow(l) < 0) {
        if (l->stats)
            l->stats->udp_dropped[METRICS_DROP_FLOW]++;
        return NULL;
    }
    /* A flow sticks to the replica it starts with. */
    struct addr target = l->m->target;
    if (l->m->target_name[0] && relay_resolve(l->ctx, l->m, &l->rr, &target, 1) == 0) {
        /* Why, once per reason and 10 s: every datagram comes here. */
        relay_log_unresolved(l->ctx, l->m, client, "; datagram dropped");
        if (l->stats)
            l->stats->udp_dropped[METRICS_DROP_NO_TARGET]++;
        return NULL;
    }
    if (l->nflows >= l->ctx->udp_max_flows && oldest(l)) {
        /* Once per listener: a flood of new sources must not flood logs. */
        if (!l->said_full)
            log_warn("%s: %zu flows, the most kept; each new client now closes "
                     "the flow idle longest",
                     l->m->label, l->nflows);
        l->said_full = true;
        char o[ADDR_STRLEN];
        log_debug("%s client %s: flow evicted", l->m->label,
                  addr_format(&oldest(l)->client, o, sizeof o));
        flow_free(oldest(l));
    }
    struct udp_flow *f = calloc(1, sizeof *f);
    if (!f) {
        if (l->stats)
            l->stats->udp_dropped[METRICS_DROP_FLOW]++;
        return NULL;
    }
    f->l = l;
    f->client = *client;
    f->target = target;
    f->seen = relay_names_version(l->ctx);
    f->fd = socket(target.ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* Transparent: the target sees the client's address and port (or, where
     * that cannot work, the flow goes from this host's, said once). */
    if (f->fd >= 0 && l->m->transparent)
        (void)transparent_bind(l->ctx, l->m, client, &target, f->fd);
    if (f->fd < 0 ||
        connect(f->fd, (const struct sockaddr *)&target.ss, target.len) < 0 ||
        !(f->ev = event_new(l->ctx->base, f->fd, EV_READ | EV_PERSIST, on_reply, f)) ||
        event_add(f->ev, NULL) < 0) {
        relay_log_limited(l->ctx, LOG_WARN, l->m, client,
                          relay_key(RELAY_SAID_FLOW, errno, NULL),
                          "cannot open flow: %s", strerror(errno));
        if (f->ev)
            event_free(f->ev);
        if (f->fd >= 0)
            close(f->fd);
        free(f);
        if (l->stats)
            l->stats->udp_dropped[METRICS_DROP_FLOW]++;
        return NULL;
    }
    if (l->pktinfo)
        reply_src_read(h, &f->src);
    struct udp_flow **b = bucket_of(l, client);
    f->hnext = *b;
    *b = f;
    l->nflows++;
    if (l->stats)
        l->stats->flows_active++;
    f->last_ms = now;
    lru_push(&l->idle, &f->idle);
    arm_expiry(l, now);
    log_debug("%s client %s: new flow", l->m->label, c);
    return f;
}

/* A flow of a named target whose replica no longer answers to the name
 * (restarted elsewhere, scaled away). Checked once per registry change. */
static bool stale(struct udp_flow *f)
{
    struct relay_ctx *ctx = f->l->ctx;
    uint64_t version = relay_names_version(ctx);
    if (!f->l->m->target_name[0] || f->seen == version)
        return false;
    f->seen = version;
    struct addr now[16];
    unsigned rr = 0;
    size_t n = relay_resolve(ctx, f->l->m, &rr, now, 16);
    for (size_t i = 0; i < n; i++)
        if (addr_equal(&now[i], &f->target))
            return false;
    return true;
}

/* A batch's datagrams by flow, each flow's in arrival order: clients'
 * datagrams interleave, and each flow's leave in one sendmmsg. */
struct runs {
    struct udp_flow *flow[DGRAM_BATCH];
    int first[DGRAM_BATCH], last[DGRAM_BATCH]; /* datagram indexes */
    int next[DGRAM_BATCH];                     /* a run's next datagram, or -1 */
    int n;
};

static void runs_add(struct runs *r, struct udp_flow *f, int i)
{
    r->next[i] = -1;
    if (f->run) {
        int k = (int)f->run - 1;
        r->next[r->last[k]] = i;
        r->last[k] = i;
        return;
    }
    r->flow[r->n] = f;
    r->first[r->n] = r->last[r->n] = i;
    f->run = (unsigned)++r->n;
}

static void runs_send(struct udp_listener *l, struct runs *r,
                      const struct mmsghdr *msgs)
{
    struct mmsghdr out[DGRAM_BATCH];
    for (int k = 0; k < r->n; k++) {
        int len = 0;
        for (int i = r->first[k]; i >= 0; i = r->next[i]) {
            out[len] = msgs[i];
            /* sendmmsg writes what it sent of each datagram here and leaves
             * a refused one's 0: bytes[IN] counts what the kernel took. */
            out[len++].msg_len = 0;
        }
        int lost = dgram_send_batch(r->flow[k]->fd, out, len, l->m->label);
        if (l->stats) {
            l->stats->udp_dropped[METRICS_DROP_SEND] += (uint64_t)lost;
            for (int i = 0; i < len; i++)
                l->stats->bytes[METRICS_IN] += out[i].msg_len;
        }
        r->flow[k]->run = 0;
    }
    r->n = 0;
}

static void on_request(evutil_socket_t fd, short what, void *arg)
{
    struct udp_listener *l = arg;
    struct dgram_batch *b = l->ctx->udp;
    (void)what;
    struct dgram_recv r = {b->msgs, b->iov,          b->peer,
                           b->ctrl, (char *)b->data, DGRAM_MAX};
    int n = dgram_recv_batch(fd, &r, DGRAM_BATCH, l->pktinfo, l->m->label);
    if (n == 0)
        return;
    uint64_t now = clock_ms();
    struct runs runs;
    runs.n = 0;
    /* Each is then relayed (bytes[IN], in runs_send) or counted under one
     * reason of udp_dropped: metrics.h. */
    if (l->stats)
        l->stats->datagrams[METRICS_IN] += (uint64_t)n;
    for (int i = 0; i < n; i++) {
        struct msghdr *h = &b->msgs[i].msg_hdr;
        struct udp_flow *f = flow_find(l, &b->peer[i]);
        /* A flow in a run was checked at this version: never freed here. */
        if (f && !f->run && stale(f)) {
            flow_free(f); /* its replica is gone: pick anew */
            f = NULL;
        }
        if (f) {
            touch(f, now);
        } else if (l->draining) {
            /* A removed port: only its flows go on. */
            if (l->stats)
                l->stats->udp_dropped[METRICS_DROP_DRAINING]++;
            continue;
        } else {
            /* A new flow may evict the one idle longest: what waits in the
             * batch leaves first, so no run loses its flow. */
            if (l->nflows >= l->ctx->udp_max_flows)
                runs_send(l, &runs, b->msgs);
            f = flow_new(l, &b->peer[i], h, now);
        }
        if (!f)
            continue; /* no flow: this datagram is dropped */
        /* Reuse the header to send on the flow's connected socket. */
        b->iov[i].iov_len = b->msgs[i].msg_len;
        h->msg_name = NULL;
        h->msg_namelen = 0;
        h->msg_control = NULL;
        h->msg_controllen = 0;
        runs_add(&runs, f, i);
    }
    runs_send(l, &runs, b->msgs);
}

struct udp_listener *udp_listener_new(struct relay_ctx *ctx, const struct mapping *m,
                                      int fd, char *err, size_t errlen)
{
    struct udp_listener *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        close(fd);
        return NULL;
    }
    l->ctx = ctx;
    l->m = m;
    l->fd = fd;
    struct addr bound;
    bound.len = sizeof bound.ss;
    if (getsockname(l->fd, (struct sockaddr *)&bound.ss, &bound.len) < 0) {
        snprintf(err, errlen, "%s: %s", m->label, strerror(errno));
        udp_listener_free(l);
        return NULL;
    }
    /* Only a wildcard bind can receive on several addresses; it must answer
     * from the one each client used, or multi-homed clients drop replies. */
    if (dgram_track_local(l->fd, &bound, &l->pktinfo) < 0) {
        snprintf(err, errlen, "%s: pktinfo: %s", m->label, strerror(errno));
        udp_listener_free(l);
        return NULL;
    }
    if (!relay_dgram_batch(ctx) || !relay_dgram_out(ctx) || grow(l) < 0 ||
        !(l->ev = event_new(ctx->base, l->fd, EV_READ | EV_PERSIST, on_request, l)) ||
        !(l->expire = evtimer_new(ctx->base, on_expire, l)) ||
        !(l->flush = event_new(ctx->base, -1, 0, on_flush, l)) ||
        event_add(l->ev, NULL) < 0) {
        snprintf(err, errlen, "%s: out of memory", m->label);
        udp_listener_free(l);
        return NULL;
    }
    log_debug("%s: listening", m->label);
    return l;
}

void udp_listener_free(struct udp_listener *l)
{
    if (!l)
        return;
    while (oldest(l))
        flow_free(oldest(l));
    relay_forget(l->ctx, l->m);
    if (l->ev)
        event_free(l->ev);
    if (l->expire)
        event_free(l->expire);
    if (l->flush)
        event_free(l->flush);
    if (l->fd >= 0) {
        /* Replies still queued would leave on whatever takes the number. */
        if (l->ctx->udp_out)
            dgram_out_forget(l->ctx->udp_out, l->fd);
        close(l->fd);
    }
    free(l->buckets);
    free(l);
}

void udp_listener_drain(struct udp_listener *l) { l->draining = true; }

size_t udp_listener_flows(const struct udp_listener *l) { return l->nflows; }

void udp_listener_set_stats(struct udp_listener *l, struct map_stats *stats)
{
    l->stats = stats;
}

int udp_listener_fd(const struct udp_listener *l) { return l->fd; }
