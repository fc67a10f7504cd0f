#include "berth/dns_forward.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "berth/clock.h"
#include "berth/dns_tcp.h"
#include "berth/invariant.h"
#include "berth/log.h"
#include "berth/slot_pool.h"

#define IDS_PER_DRAW 64

/* One query in flight, in a slot of f->slots. Its UDP socket (or TCP
 * connection) is its own, so the kernel already drops datagrams from
 * anyone but the upstream. */
struct fwd_slot {
    struct dns_forwarder *f;
    int fd;                  /* UDP try, -1 otherwise */
    struct event *ev;        /* fd readable, or the try timed out */
    struct bufferevent *bev; /* TCP try */
    size_t up;               /* upstream of this try */
    unsigned tries;
    uint64_t deadline_ms; /* of this try */
    uint16_t client_id;
    size_t qname_len;
    uint8_t query[DNS_QUERY_MAX]; /* as sent; the question as the client asked */
    size_t qlen;
    dns_forward_done_fn *done;
    void *arg;
};

struct dns_forwarder {
    struct event_base *base;
    struct addr ups[DNS_UPSTREAMS_MAX];
    size_t nups;
    size_t preferred; /* the upstream that answered last */
    unsigned timeout_ms;
    struct slot_pool *slots;    /* of struct fwd_slot: queries in flight */
    uint16_t ids[IDS_PER_DRAW]; /* random IDs, drawn in bulk */
    size_t nids;
    uint8_t *answer; /* DNS_MSG_MAX: where answers are read */
};

/* IDs must be unpredictable (RFC 5452): from the kernel's CSPRNG. */
static uint16_t next_id(struct dns_forwarder *f)
{
    if (f->nids == 0) {
        if (getrandom(f->ids, sizeof f->ids, 0) != (ssize_t)sizeof f->ids) {
            /* Never expected on Linux >= 3.17; the source port still
             * varies, so degrade rather than stop answering. */
            log_warn("dns: getrandom: %s", strerror(errno));
            uint64_t t = clock_ms() ^ (uint64_t)(uintptr_t)f;
            for (size_t i = 0; i < IDS_PER_DRAW; i++)
                f->ids[i] =
                    (uint16_t)((t = t * 6364136223846793005u + 1442695040888963407u) >>
                               48);
        }
        f->nids = IDS_PER_DRAW;
    }
    return f->ids[--f->nids];
}

/* Every try asks with a fresh ID and has a deadline of its own. */
static void new_try(struct fwd_slot *s)
{
    dns_put16(s->query, next_id(s->f));
    s->deadline_ms = clock_ms() + s->f->timeout_ms;
}

static struct timeval remaining(const struct fwd_slot *s)
{
    uint64_t now = clock_ms();
    return clock_tv(s->deadline_ms > now ? s->deadline_ms - now : 0);
}

static void close_try(struct fwd_slot *s)
{
    if (s->ev)
        event_free(s->ev);
    s->ev = NULL;
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    if (s->bev)
        bufferevent_free(s->bev);
    s->bev = NULL;
}

/* Gives the slot back, then tells the caller: done may forward again. */
static void finish(struct fwd_slot *s, const uint8_t *ans, size_t len)
{
    struct dns_forwarder *f = s->f;
    dns_forward_done_fn *done = s->done;
    void *arg = s->arg;
    uint8_t *a = NULL;
    if (ans) {
        /* Same length and letters but for case (dns_match_answer). */
        a = f->answer;
        if (a != ans)
            memmove(a, ans, len);
        dns_put16(a, s->client_id);
        memcpy(a + DNS_HDR, s->query + DNS_HDR, s->qname_len);
        f->preferred = s->up;
    }
    close_try(s);
    slot_put(f->slots, s);
    done(arg, a, a ? len : 0);
}

static void on_udp(evutil_socket_t fd, short what, void *arg);
static int start_tcp(struct fwd_slot *s);

/* One UDP try at the current upstream. Returns -1 if it could not even be
 * sent. */
static int start_udp(struct fwd_slot *s)
{
    struct dns_forwarder *f = s->f;
    const struct addr *up = &f->ups[s->up];
    new_try(s);
    /* A fresh socket, connected: the kernel picks a random port for it and
     * delivers only the upstream's datagrams. */
    s->fd = socket(up->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0 || connect(s->fd, (const struct sockaddr *)&up->ss, up->len) < 0 ||
        send(s->fd, s->query, s->qlen, 0) != (ssize_t)s->qlen ||
        !(s->ev = event_new(f->base, s->fd, EV_READ, on_udp, s))) {
        char a[ADDR_STRLEN];
        log_debug("dns: upstream %s: %s", addr_format(up, a, sizeof a),
                  strerror(errno));
        close_try(s);
        return -1;
    }
    struct timeval tv = remaining(s);
    event_add(s->ev, &tv);
    return 0;
}

/* The next upstream not tried yet, over UDP. Returns -1 when none is
 * left. */
static int next_upstream(struct fwd_slot *s)
{
    close_try(s);
    /* dns_forward takes no slot without an upstream: the modulo is safe. */
    INVARIANT(s->f->nups > 0);
    while (s->tries < s->f->nups) {
        s->up = (s->up + (s->tries ? 1 : 0)) % s->f->nups;
        s->tries++;
        if (start_udp(s) == 0)
            return 0;
    }
    return -1;
}

static void fail_try(struct fwd_slot *s, const char *why)
{
    char a[ADDR_STRLEN];
    log_debug("dns: upstream %s: %s", addr_format(&s->f->ups[s->up], a, sizeof a),
              why);
    if (next_upstream(s) < 0)
        finish(s, NULL, 0);
}

/* An answer that matched: take it, or go on when it says this upstream
 * cannot help and another might. */
static void got_answer(struct fwd_slot *s, uint8_t *ans, size_t len, bool tcp)
{
    unsigned rcode = ans[3] & DNS_RCODE_MASK;
    if (!tcp && (ans[2] << 8 & DNS_TC)) {
        close_try(s);
        if (start_tcp(s) < 0)
            fail_try(s, "cannot retry over TCP");
        return;
    }
    if ((rcode == DNS_SERVFAIL || rcode == DNS_REFUSED) && s->tries < s->f->nups) {
        fail_try(s, rcode == DNS_SERVFAIL ? "SERVFAIL" : "REFUSED");
        return;
    }
    finish(s, ans, len);
}

static void on_udp(evutil_socket_t fd, short what, void *arg)
{
    struct fwd_slot *s = arg;
    struct dns_forwarder *f = s->f;
    if (what & EV_TIMEOUT) {
        fail_try(s, "timed out");
        return;
    }
    /* Bounded: a flood of forged datagrams must not keep the loop here. */
    for (int i = 0; i < 16; i++) {
        ssize_t r = recv(fd, f->answer, DNS_MSG_MAX, 0);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            fail_try(s, strerror(errno));
            return;
        }
        if (dns_match_answer(f->answer, (size_t)r, s->query, s->qlen) == 0) {
            got_answer(s, f->answer, (size_t)r, false);
            return;
        }
        log_debug("dns: upstream answer does not match its query; ignored");
    }
    if (clock_ms() >= s->deadline_ms) {
        fail_try(s, "timed out");
        return;
    }
    struct timeval tv = remaining(s);
    event_add(s->ev, &tv);
}

static void on_tcp_read(struct bufferevent *bev, void *arg)
{
    struct fwd_slot *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n;
    if (!dns_tcp_frame_ready(in, &n))
        return;
    evbuffer_drain(in, 2);
    evbuffer_remove(in, s->f->answer, n);
    if (dns_match_answer(s->f->answer, n, s->query, s->qlen) < 0) {
        fail_try(s, "TCP answer does not match its query");
        return;
    }
    got_answer(s, s->f->answer, n, true);
}

static void on_tcp_event(struct bufferevent *bev, short what, void *arg)
{
    struct fwd_slot *s = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED)
        return;
    fail_try(s, what & BEV_EVENT_TIMEOUT ? "TCP timed out"
                : what & BEV_EVENT_EOF   ? "TCP closed before answering"
                                         : "TCP failed");
}

/* The same question again over TCP (RFC 7766), to the same upstream, with a
 * new ID and a fresh timeout. */
static int start_tcp(struct fwd_slot *s)
{
    struct dns_forwarder *f = s->f;
    const struct addr *up = &f->ups[s->up];
    new_try(s);
    struct timeval tv = remaining(s);
    if (!(s->bev = bufferevent_socket_new(f->base, -1, BEV_OPT_CLOSE_ON_FREE)))
        return -1;
    bufferevent_setcb(s->bev, on_tcp_read, NULL, on_tcp_event, s);
    bufferevent_setwatermark(s->bev, EV_READ, 2, 2 + DNS_MSG_MAX);
    bufferevent_set_timeouts(s->bev, &tv, &tv);
    if (dns_tcp_frame_add(bufferevent_get_output(s->bev), s->query, s->qlen) < 0 ||
        bufferevent_enable(s->bev, EV_READ | EV_WRITE) < 0 ||
        bufferevent_socket_connect(s->bev, (const struct sockaddr *)&up->ss,
                                   (int)up->len) < 0) {
        close_try(s);
        return -1;
    }
    return 0;
}

int dns_forward(struct dns_forwarder *f, const struct dns_query *q, bool tcp_client,
                dns_forward_done_fn *done, void *arg)
{
    struct fwd_slot *s = f->nups ? slot_get(f->slots) : NULL;
    if (!s) {
        errno = f->nups ? EBUSY : ENOENT;
        return -1;
    }
    /* The pool hands slots zeroed, and fd 0 is a real fd: say "none". */
    s->f = f;
    s->fd = -1;
    uint16_t size = !q->edns     ? 0
                    : tcp_client ? DNS_UDP_MAX
                                 : (uint16_t)dns_reply_limit(q, false);
    if (!(s->qlen = dns_build_query(s->query, sizeof s->query, q, 0, size))) {
        slot_put(f->slots, s);
        errno = EINVAL;
        return -1;
    }
    s->client_id = q->id;
    s->qname_len = q->qname_len;
    s->done = done;
    s->arg = arg;
    s->tries = 0;
    s->up = f->preferred;
    if (next_upstream(s) < 0) {
        slot_put(f->slots, s);
        errno = ENETUNREACH;
        return -1;
    }
    return 0;
}

/* ---- upstream list ---- */

static bool same_ip(const struct addr *a, const struct sockaddr *sa)
{
    if (!sa || sa->sa_family != a->ss.ss_family)
        return false;
    if (sa->sa_family == AF_INET)
        return ((const struct sockaddr_in *)sa)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr,
                  &((const struct sockaddr_in6 *)&a->ss)->sin6_addr,
                  sizeof(struct in6_addr)) == 0;
}

/* Whether up would reach berth itself: one of its --dns addresses, or the
 * port of a wildcard one on any address of this host. */
static bool is_self(const struct addr *up, const struct dns_forward_options *o,
                    struct ifaddrs *ifs)
{
    for (size_t i = 0; i < o->nself; i++) {
        const struct addr *me = &o->self[i];
        if (addr_equal(up, me))
            return true;
        if (!addr_is_any(me) || me->ss.ss_family != up->ss.ss_family ||
            addr_port(me) != addr_port(up))
            continue;
        if (addr_is_loopback(up))
            return true;
        for (struct ifaddrs *i2 = ifs; i2; i2 = i2->ifa_next)
            if (same_ip(up, i2->ifa_addr))
                return true;
    }
    return false;
}

struct dns_forwarder *dns_forwarder_new(struct event_base *base,
                                        const struct dns_forward_options *o, char *err,
                                        size_t errlen)
{
    struct dns_forwarder *f = calloc(1, sizeof *f);
    size_t n = o->max_inflight ? o->max_inflight : DNS_FORWARD_INFLIGHT;
    if (!f || !(f->slots = slot_pool_new(n, sizeof(struct fwd_slot))) ||
        !(f->answer = malloc(DNS_MSG_MAX))) {
        snprintf(err, errlen, "out of memory");
        dns_forwarder_free(f);
        return NULL;
    }
    f->base = base;
    f->timeout_ms = o->timeout_ms ? o->timeout_ms : DNS_FORWARD_TIMEOUT_MS;
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) < 0)
        ifs = NULL;
    for (size_t i = 0; i < o->nupstreams; i++) {
        char a[ADDR_STRLEN];
        addr_format(&o->upstreams[i], a, sizeof a);
        if (is_self(&o->upstreams[i], o, ifs))
            log_info("dns: upstream %s is berth itself; not used", a);
        else if (f->nups == DNS_UPSTREAMS_MAX)
            log_warn("dns: upstream %s: more than %d upstreams; not used", a,
                     DNS_UPSTREAMS_MAX);
        else
            f->ups[f->nups++] = o->upstreams[i];
    }
    freeifaddrs(ifs);
    if (f->nups == 0)
        log_warn("dns: no upstream resolver: names outside the zone get SERVFAIL");
    return f;
}

void dns_forwarder_free(struct dns_forwarder *f)
{
    if (!f)
        return;
    /* Queries still in flight end without their done: the caller is
     * going away too. */
    for (size_t i = 0; f->slots && i < slot_pool_count(f->slots); i++) {
        struct fwd_slot *s = slot_pool_at(f->slots, i);
        if (s)
            close_try(s);
    }
    slot_pool_free(f->slots);
    free(f->answer);
    free(f);
}

size_t dns_forwarder_upstreams(const struct dns_forwarder *f) { return f->nups; }

size_t dns_forwarder_inflight(const struct dns_forwarder *f)
{
    return slot_pool_used(f->slots);
}

int dns_resolv_conf(const char *path, struct addr *out, size_t max)
{
    FILE *fp = fopen(path, "re");
    if (!fp)
        return -1;
    char line[512];
    size_t n = 0;
    while (n < max && fgets(line, sizeof line, fp)) {
        char ip[256], *scope;
        if (sscanf(line, " nameserver %255s", ip) != 1)
            continue;
        /* "fe80::1%eth0": the zone names the interface. */
        if ((scope = strchr(ip, '%')))
            *scope++ = '\0';
        if (addr_from_ip(&out[n], ip, 53) < 0)
            continue;
        if (scope && out[n].ss.ss_family == AF_INET6) {
            unsigned idx = if_nametoindex(scope);
            ((struct sockaddr_in6 *)&out[n].ss)->sin6_scope_id =
                idx ? idx : (unsigned)strtoul(scope, NULL, 10);
        }
        n++;
    }
    fclose(fp);
    return (int)n;
}
