#include "berth/udp_relay.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "berth/log.h"
#include "berth/lru.h"
#include "berth/registry.h"

#define BATCH 32
/* Largest UDP payload over IPv6 without jumbograms; IPv4's is 65507. */
#define DGRAM_MAX 65536
#define CTRL_LEN CMSG_SPACE(sizeof(struct in6_pktinfo))
#define BUCKETS_MIN 16

struct udp_batch {
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    struct addr peer[BATCH];
    struct udp_flow *flow[BATCH];
    char ctrl[BATCH][CTRL_LEN];
    char data[BATCH][DGRAM_MAX];
};

struct udp_flow {
    struct udp_listener *l;
    struct udp_flow *hnext;          /* hash chain */
    struct lru_node idle;            /* in l->idle, oldest first */
    struct addr client;
    /* The address the client wrote to, for replies (wildcard binds only). */
    struct in6_pktinfo local6;
    struct in_pktinfo local4;
    bool has_local;
    int fd;                          /* connected to the target */
    struct addr target;              /* the replica this flow sticks to */
    uint64_t seen;                   /* registry version it was checked at */
    struct event *ev;
    uint64_t last_ms;                /* last datagram either way */
};

struct udp_listener {
    struct relay_ctx *ctx;
    const struct mapping *m;
    int fd;
    bool pktinfo;                    /* bound to a wildcard: track local addr */
    struct event *ev;
    struct event *expire;
    struct udp_flow **buckets;
    size_t nbuckets, nflows;
    struct lru idle;                 /* flows by last traffic */
    unsigned rr;                     /* replica for the next new flow */
    bool said_full;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct udp_batch *udp_batch_new(void) { return malloc(sizeof(struct udp_batch)); }

void udp_batch_free(struct udp_batch *b) { free(b); }

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
    struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000 + 1000};
    evtimer_add(l->expire, &tv);
}

static void on_expire(evutil_socket_t fd, short what, void *arg)
{
    struct udp_listener *l = arg;
    (void)fd;
    (void)what;
    uint64_t now = now_ms(), idle = (uint64_t)l->ctx->udp_timeout * 1000;
    while (oldest(l) && oldest(l)->last_ms + idle <= now) {
        char c[ADDR_STRLEN];
        log_debug("%s client %s: idle for %us, flow closed", l->m->label,
                  addr_format(&oldest(l)->client, c, sizeof c),
                  l->ctx->udp_timeout);
        flow_free(oldest(l));
    }
    arm_expiry(l, now);
}

/* ---- replies: target -> client ---- */

static void set_reply_source(struct udp_flow *f, struct msghdr *h, char *ctrl)
{
    if (!f->has_local) {
        h->msg_control = NULL;
        h->msg_controllen = 0;
        return;
    }
    memset(ctrl, 0, CTRL_LEN);
    h->msg_control = ctrl;
    struct cmsghdr *cm = (struct cmsghdr *)ctrl;
    if (f->l->m->listen.ss.ss_family == AF_INET) {
        h->msg_controllen = CMSG_SPACE(sizeof f->local4);
        cm->cmsg_level = IPPROTO_IP;
        cm->cmsg_type = IP_PKTINFO;
        cm->cmsg_len = CMSG_LEN(sizeof f->local4);
        memcpy(CMSG_DATA(cm), &f->local4, sizeof f->local4);
    } else {
        h->msg_controllen = CMSG_SPACE(sizeof f->local6);
        cm->cmsg_level = IPPROTO_IPV6;
        cm->cmsg_type = IPV6_PKTINFO;
        cm->cmsg_len = CMSG_LEN(sizeof f->local6);
        memcpy(CMSG_DATA(cm), &f->local6, sizeof f->local6);
    }
}

/* Sends msgs[0..n) on fd, dropping (and logging) what the kernel refuses:
 * UDP may lose datagrams, the relay must not stall on one. */
static void send_all(int fd, struct mmsghdr *msgs, int n, const char *label)
{
    int done = 0;
    while (done < n) {
        int r = sendmmsg(fd, msgs + done, (unsigned)(n - done), 0);
        if (r > 0) {
            done += r;
            continue;
        }
        log_debug("%s: send: %s; datagram dropped", label, strerror(errno));
        done++;
    }
}

static void on_reply(evutil_socket_t fd, short what, void *arg)
{
    struct udp_flow *f = arg;
    struct udp_listener *l = f->l;
    struct udp_batch *b = l->ctx->udp;
    (void)what;
    for (int i = 0; i < BATCH; i++) {
        b->iov[i] = (struct iovec){b->data[i], DGRAM_MAX};
        b->msgs[i].msg_hdr = (struct msghdr){.msg_iov = &b->iov[i], .msg_iovlen = 1};
    }
    int n = recvmmsg(fd, b->msgs, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) {
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            char c[ADDR_STRLEN];
            log_debug("%s client %s: recv from target: %s", l->m->label,
                      addr_format(&f->client, c, sizeof c), strerror(errno));
            /* A named target that refuses may have moved: close the flow so
             * the client's next datagram resolves the name again. */
            if (l->m->target_name[0] &&
                (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH))
                flow_free(f);
        }
        return;
    }
    for (int i = 0; i < n; i++) {
        struct msghdr *h = &b->msgs[i].msg_hdr;
        b->iov[i].iov_len = b->msgs[i].msg_len;
        h->msg_name = &f->client.ss;
        h->msg_namelen = f->client.len;
        set_reply_source(f, h, b->ctrl[i]);
    }
    send_all(l->fd, b->msgs, n, l->m->label);
    touch(f, now_ms());
}

/* ---- requests: client -> target ---- */

static void read_local(struct udp_flow *f, struct msghdr *h)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(h); cm; cm = CMSG_NXTHDR(h, cm)) {
        if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(cm), sizeof pi);
            f->local4 = (struct in_pktinfo){.ipi_spec_dst = pi.ipi_addr};
            f->has_local = true;
        } else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
            memcpy(&f->local6, CMSG_DATA(cm), sizeof f->local6);
            f->has_local = true;
        }
    }
}

static struct udp_flow *flow_new(struct udp_listener *l, const struct addr *client,
                                 struct msghdr *h, uint64_t now)
{
    char c[ADDR_STRLEN];
    addr_format(client, c, sizeof c);
    if (l->nflows >= l->nbuckets && grow(l) < 0)
        return NULL;
    /* A flow sticks to the replica it starts with. */
    struct addr target = l->m->target;
    if (l->m->target_name[0] && relay_resolve(l->ctx, l->m, &l->rr, &target, 1) == 0) {
        log_debug("%s client %s: no running container '%s'; datagram dropped",
                  l->m->label, c, l->m->target_name);
        return NULL;
    }
    if (l->nflows >= l->ctx->udp_max_flows && oldest(l)) {
        /* Once per listener: a flood of new sources must not flood logs. */
        if (!l->said_full)
            log_warn("%s: %zu flows, the most kept; each new client now closes "
                     "the flow idle longest", l->m->label, l->nflows);
        l->said_full = true;
        char o[ADDR_STRLEN];
        log_debug("%s client %s: flow evicted", l->m->label,
                  addr_format(&oldest(l)->client, o, sizeof o));
        flow_free(oldest(l));
    }
    struct udp_flow *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->l = l;
    f->client = *client;
    f->target = target;
    f->seen = l->ctx->reg ? registry_version(l->ctx->reg) : 0;
    f->fd = socket(target.ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (f->fd < 0 ||
        connect(f->fd, (const struct sockaddr *)&target.ss, target.len) < 0 ||
        !(f->ev = event_new(l->ctx->base, f->fd, EV_READ | EV_PERSIST, on_reply, f)) ||
        event_add(f->ev, NULL) < 0) {
        log_warn("%s client %s: cannot open flow: %s", l->m->label, c,
                 strerror(errno));
        if (f->ev)
            event_free(f->ev);
        if (f->fd >= 0)
            close(f->fd);
        free(f);
        return NULL;
    }
    if (l->pktinfo)
        read_local(f, h);
    struct udp_flow **b = bucket_of(l, client);
    f->hnext = *b;
    *b = f;
    l->nflows++;
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
    if (!f->l->m->target_name[0] || !ctx->reg || f->seen == registry_version(ctx->reg))
        return false;
    f->seen = registry_version(ctx->reg);
    struct addr now[16];
    unsigned rr = 0;
    size_t n = relay_resolve(ctx, f->l->m, &rr, now, 16);
    for (size_t i = 0; i < n; i++)
        if (addr_equal(&now[i], &f->target))
            return false;
    return true;
}

static void on_request(evutil_socket_t fd, short what, void *arg)
{
    struct udp_listener *l = arg;
    struct udp_batch *b = l->ctx->udp;
    (void)what;
    for (int i = 0; i < BATCH; i++) {
        b->iov[i] = (struct iovec){b->data[i], DGRAM_MAX};
        b->msgs[i].msg_hdr = (struct msghdr){
            .msg_name = &b->peer[i].ss, .msg_namelen = sizeof b->peer[i].ss,
            .msg_iov = &b->iov[i], .msg_iovlen = 1,
            .msg_control = l->pktinfo ? b->ctrl[i] : NULL,
            .msg_controllen = l->pktinfo ? CTRL_LEN : 0};
    }
    int n = recvmmsg(fd, b->msgs, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) {
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            log_debug("%s: recv: %s", l->m->label, strerror(errno));
        return;
    }
    /* Consecutive datagrams of one client go out in one sendmmsg. A run is
     * sent before the next flow is looked up or made, so an eviction can
     * never free a flow that still has datagrams waiting in the batch. */
    uint64_t now = now_ms();
    struct udp_flow *cur = NULL;
    int start = 0;
    for (int i = 0; i < n; i++) {
        struct msghdr *h = &b->msgs[i].msg_hdr;
        b->peer[i].len = h->msg_namelen;
        struct udp_flow *f = flow_find(l, &b->peer[i]);
        if (f && f != cur && stale(f)) {
            flow_free(f);                /* its replica is gone: pick anew */
            f = NULL;
        }
        if (!f || f != cur) {
            if (cur)
                send_all(cur->fd, b->msgs + start, i - start, l->m->label);
            start = i;
        }
        if (f)
            touch(f, now);
        else
            f = flow_new(l, &b->peer[i], h, now);
        cur = f;
        if (!f)
            start = i + 1;          /* no flow: this datagram is dropped */
        /* Reuse the header to send on the flow's connected socket. */
        b->iov[i].iov_len = b->msgs[i].msg_len;
        h->msg_name = NULL;
        h->msg_namelen = 0;
        h->msg_control = NULL;
        h->msg_controllen = 0;
    }
    if (cur && start < n)
        send_all(cur->fd, b->msgs + start, n - start, l->m->label);
}

struct udp_listener *udp_listener_new(struct relay_ctx *ctx,
                                      const struct mapping *m, int fd,
                                      char *err, size_t errlen)
{
    if ((fd = sock_listener(&m->listen, SOCK_DGRAM, fd, err, errlen)) < 0)
        return NULL;
    struct udp_listener *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        close(fd);
        return NULL;
    }
    l->ctx = ctx;
    l->m = m;
    l->fd = fd;
    int one = 1;
    struct addr bound;
    bound.len = sizeof bound.ss;
    if (getsockname(l->fd, (struct sockaddr *)&bound.ss, &bound.len) < 0) {
        snprintf(err, errlen, "%s: %s", m->label, strerror(errno));
        udp_listener_free(l);
        return NULL;
    }
    /* Only a wildcard bind can receive on several addresses; it must answer
     * from the one each client used, or multi-homed clients drop replies. */
    if (addr_is_any(&bound)) {
        int r = bound.ss.ss_family == AF_INET
                    ? setsockopt(l->fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one)
                    : setsockopt(l->fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
        if (r < 0) {
            snprintf(err, errlen, "%s: pktinfo: %s", m->label, strerror(errno));
            udp_listener_free(l);
            return NULL;
        }
        l->pktinfo = true;
    }
    if ((!ctx->udp && !(ctx->udp = udp_batch_new())) || grow(l) < 0 ||
        !(l->ev = event_new(ctx->base, l->fd, EV_READ | EV_PERSIST, on_request, l)) ||
        !(l->expire = evtimer_new(ctx->base, on_expire, l)) ||
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
    if (l->ev)
        event_free(l->ev);
    if (l->expire)
        event_free(l->expire);
    if (l->fd >= 0)
        close(l->fd);
    free(l->buckets);
    free(l);
}

size_t udp_listener_flows(const struct udp_listener *l) { return l->nflows; }

int udp_listener_fd(const struct udp_listener *l) { return l->fd; }
