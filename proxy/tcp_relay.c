#include "berth/tcp_relay.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "berth/guard.h"
#include "berth/invariant.h"
#include "berth/log.h"
#include "berth/proxy_header.h"
#include "berth/tcp_connect.h"
#include "berth/tcp_pump.h"

/* Bytes moved per wake-up before yielding to other sessions, so one bulk
 * transfer cannot starve the loop. */
#define ROUNDS_PER_WAKEUP 8

/* Connections in a row that skip reading the client right after the
 * connect once such a read found nothing (a protocol where the server
 * speaks first); then one tries again. */
#define EAGER_SKIP 8

/* The target's socket gets its keepalive once the session is this old:
 * most sessions end sooner and never need the three setsockopt calls, and
 * a long one has its first probe at most this much later than set. */
#define KEEPALIVE_AFTER_MS 1000

/* Where a session is in its life; set_phase is the only place it changes. */
enum tcp_phase {
    /* s->conn connects to the target; nothing is read from the client
     * yet, so a refusal can move on or reset it cleanly. */
    TCP_CONNECTING,
    /* Connected: each direction moves bytes until it is shut. */
    TCP_RELAYING,
    /* Over: freed as soon as no callback of it is running. */
    TCP_ENDED,
};

/* Where one direction is; half_set_state is the only place it changes. */
enum half_state {
    HALF_OPEN, /* src may still send */
    HALF_EOF,  /* src sent FIN; pending bytes still go first */
    HALF_SHUT, /* FIN passed on to dst: this direction is done */
};

/* One direction: bytes flow from src to dst through its pump (tcp_pump.h);
 * this is where it is in its life and which events drive it. */
struct half {
    struct tcp_session *s;
    int *src, *dst;    /* point at the session's fds */
    struct event *rd;  /* src readable */
    struct event *wr;  /* dst writable: armed only while dst is full */
    uint64_t *bytes;   /* the port's count of this direction, or NULL */
    struct event *hup; /* while reading is paused: a slow poll of src
                              * for a reset; made on the first pause */
    struct tcp_pump pump;
    enum half_state state;
    bool src_fin; /* src's FIN arrived (EV_CLOSED): all it sent is queued */
    bool got;     /* some read brought bytes */
    /* The target's socket is watched edge-triggered, registered once for
     * the session's life (taken over from the connect): its events are
     * never deleted or re-added, so a read of it must go on until it is
     * drained, and readiness is remembered here between wake-ups. */
    bool src_et, dst_et;
    bool src_ready; /* src may have bytes: an edge not yet drained */
    bool blocked;   /* dst was full: only its writable event goes on */
};

struct tcp_session {
    struct relay_ctx *ctx;
    struct tcp_session_list *list;
    struct tcp_session *prev, *next;
    const struct mapping *m;
    int cfd; /* client */
    int tfd; /* target */
    enum tcp_phase phase;
    struct guard guard; /* callbacks running now; see guard.h */
    struct half up;     /* client -> target */
    struct half down;   /* target -> client */
    struct addr client;
    struct tcp_connect *conn;    /* while connecting */
    struct lru_timer_node idle;  /* relaying: since the last wake-up */
    struct lru_timer_node young; /* relaying, no keepalive yet: since start */
    tcp_session_end_fn *on_end;
    void *arg;
    uint64_t started_ns; /* with stats: for the connect's duration */
};

void tcp_session_free(struct tcp_session *s)
{
    if (!s)
        return;
    lru_timer_leave(&s->list->idle, &s->idle);
    lru_timer_leave(&s->list->young, &s->young);
    struct half *halves[2] = {&s->up, &s->down};
    for (int i = 0; i < 2; i++) {
        if (halves[i]->rd)
            event_free(halves[i]->rd);
        if (halves[i]->wr)
            event_free(halves[i]->wr);
        if (halves[i]->hup)
            event_free(halves[i]->hup);
        /* A pipe still holding bytes is closed, never pooled. */
        tcp_pump_release(&halves[i]->pump, s->ctx);
    }
    if (s->cfd >= 0)
        close(s->cfd);
    if (s->tfd >= 0)
        close(s->tfd);
    tcp_connect_free(s->conn);
    if (s->prev)
        s->prev->next = s->next;
    else
        s->list->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->list->count--;
    if (s->list->stats)
        s->list->stats->conns_active--;
    free(s);
}

static void set_phase(struct tcp_session *s, enum tcp_phase p)
{
    /* Forward only: connecting, relaying, ended; or straight to ended. */
    INVARIANT(p > s->phase);
    s->phase = p;
}

static void half_set_state(struct half *h, enum half_state st)
{
    INVARIANT(st > h->state);
    h->state = st;
}

/* Frees the session, then tells the owner (which may start accepting
 * again). */
static void session_destroy(struct tcp_session *s)
{
    tcp_session_end_fn *fn = s->on_end;
    void *arg = s->arg;
    tcp_session_free(s);
    if (fn)
        fn(arg);
}

/* The session is over: it is freed now, or, from inside one of its
 * callbacks, when that returns. Callers return right after either way. */
static void session_end(struct tcp_session *s)
{
    set_phase(s, TCP_ENDED);
    if (guard_end(&s->guard))
        session_destroy(s);
}

/* Every event callback of a session runs inside its guard. */
static void session_enter(struct tcp_session *s) { guard_enter(&s->guard); }

static void session_leave(struct tcp_session *s)
{
    if (guard_leave(&s->guard))
        session_destroy(s);
}

/* A peer reset or failed: pass the reset on to the other peer rather than a
 * clean FIN, so neither side mistakes a broken stream for a complete one. */
static void session_reset(struct tcp_session *s, const char *what, int err)
{
    relay_log(LOG_DEBUG, s->m, &s->client, "%s: %s; resetting both sides", what,
              strerror(err));
    if (s->cfd >= 0)
        sock_set_reset_on_close(s->cfd);
    if (s->tfd >= 0)
        sock_set_reset_on_close(s->tfd);
    session_end(s);
}

/* ---- timers ---- */

/* Silent both ways for the idle timeout, half-closed ones included: reset
 * both sides. A FIN would let a peer take the cut stream for a finished
 * one, and a socket that already sent its FIN would linger in the kernel
 * as an orphan in FIN-WAIT-2 (tcp_fin_timeout) towards a peer that has
 * gone quiet: what the timeout is there to end. */
static void on_idle(struct lru_timer_node *n, void *arg)
{
    (void)arg;
    session_reset(LRU_ENTRY(n, struct tcp_session, idle), "idle timeout", ETIMEDOUT);
}

/* Relaying for KEEPALIVE_AFTER_MS: keepalive on the target's socket. A
 * failure leaves a working socket without probes (the settings were
 * checked when the listener took them). */
static void on_grown(struct lru_timer_node *n, void *arg)
{
    struct tcp_session *s = LRU_ENTRY(n, struct tcp_session, young);
    (void)arg;
    sock_set_keepalive_fresh(s->tfd, &s->ctx->tcp_keepalive,
                             &s->ctx->tcp_keepalive_kernel);
}

int tcp_session_list_init(struct tcp_session_list *list, struct relay_ctx *ctx)
{
    *list = (struct tcp_session_list){0};
    uint64_t keepalive_after = ctx->tcp_keepalive.idle ? KEEPALIVE_AFTER_MS : 0;
    if (lru_timer_init(&list->idle, ctx->base, ctx->idle_timeout_ms, on_idle, NULL) ||
        lru_timer_init(&list->young, ctx->base, keepalive_after, on_grown, NULL)) {
        tcp_session_list_clear(list);
        return -1;
    }
    return 0;
}

void tcp_session_list_clear(struct tcp_session_list *list)
{
    while (list->head)
        tcp_session_free(list->head);
    lru_timer_clear(&list->idle);
    lru_timer_clear(&list->young);
}

/* ---- moving bytes ---- */

static void on_hup(evutil_socket_t fd, short what, void *arg);

static void finish_if_done(struct tcp_session *s)
{
    if (s->up.state == HALF_SHUT && s->down.state == HALF_SHUT) {
        relay_log(LOG_DEBUG, s->m, &s->client, "closed");
        session_end(s);
    }
}

/* Moves bytes from src to dst until src is drained, dst is full or the
 * round budget is spent. May end the session: callers return right after. */
static void half_pump(struct half *h)
{
    struct tcp_session *s = h->s;
    bool drained = false;
    for (int round = 0;; round++) {
        if (h->pump.pending) {
            int r = tcp_pump_flush(&h->pump, s->ctx, *h->dst);
            if (r < 0) {
                session_reset(s, "send", errno);
                return;
            }
            if (r == 0) {
                h->blocked = true;
                /* dst is full: stop reading until it drains, but look at
                 * src now and then, so a peer that resets meanwhile ends
                 * the session instead of leaving it stuck behind a stalled
                 * dst. (epoll reports a reset as EPOLLERR, which libevent
                 * hands only to read and write events, and neither can
                 * stay armed here without spinning.) */
                if (!h->src_et)
                    event_del(h->rd);
                if (!h->dst_et)
                    event_add(h->wr, NULL);
                if (!h->hup)
                    h->hup = event_new(s->ctx->base, -1, EV_PERSIST, on_hup, h);
                if (h->hup) {
                    struct timeval second = {1, 0};
                    event_add(h->hup, &second);
                }
                return;
            }
            if (!h->dst_et)
                event_del(h->wr);
            if (h->hup)
                event_del(h->hup);
            if (h->state == HALF_OPEN && !h->src_et)
                event_add(h->rd, NULL);
        }
        if (h->state != HALF_OPEN) {
            struct half *other = h == &s->up ? &s->down : &s->up;
            if (h->state == HALF_EOF) {
                half_set_state(h, HALF_SHUT);
                /* Edge-triggered: left registered, edges are ignored. */
                if (!h->src_et)
                    event_del(h->rd);
                /* The last FIN: both sockets were read to their end, so
                 * close() sends it without a reset; skip the extra call. */
                if (other->state != HALF_SHUT && shutdown(*h->dst, SHUT_WR) < 0 &&
                    errno != ENOTCONN) {
                    session_reset(s, "shutdown", errno);
                    return;
                }
            }
            finish_if_done(s);
            return;
        }
        /* Checked after the flush, so a yield never strands bytes. */
        if (drained || !h->src_ready)
            return;
        if (round == ROUNDS_PER_WAKEUP) {
            /* No edge will come for what is left: a turn of the loop
             * later, without a syscall. */
            if (h->src_et)
                event_active(h->rd, EV_READ, 1);
            return;
        }
        ssize_t n = tcp_pump_fill(&h->pump, s->ctx, *h->src, *h->dst);
        if (n == 0) {
            half_set_state(h, HALF_EOF);
            continue;
        }
        if (n > 0) {
            h->got = true;
            if (h->bytes)
                *h->bytes += (uint64_t)n;
        }
        if (n == -2) {
            session_reset(s, "send", errno);
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                h->src_ready = false;
                return;
            }
            session_reset(s, "recv", errno);
            return;
        }
        /* A short read from a level-triggered src: the loop calls again
         * when more arrives, which saves the EAGAIN call (tcp_pump.h). */
        drained = tcp_pump_after_read(&h->pump, (size_t)n, h->src_et, h->src_fin) ==
                  TCP_PUMP_DRAINED;
        if (drained)
            h->src_ready = false;
    }
}

/* Reading src is paused: a reset from its peer ends the session; a FIN
 * waits for the read that follows once dst drains. */
static void on_hup(evutil_socket_t fd, short what, void *arg)
{
    struct half *h = arg;
    struct tcp_session *s = h->s;
    (void)fd;
    (void)what;
    session_enter(s);
    int err = sock_pending_error(*h->src);
    if (err > 0)
        session_reset(s, "peer", err);
    session_leave(s);
}

/* src readable or dst writable: either way the direction moves on. One
 * callback for both, as the direction is the argument. */
static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    struct half *h = arg;
    struct tcp_session *s = h->s;
    (void)fd;
    if (what & EV_CLOSED)
        h->src_fin = true;
    if (what & (EV_READ | EV_CLOSED))
        h->src_ready = true;
    if (what & EV_WRITE)
        h->blocked = false;
    /* An edge of src while dst is full: remembered, nothing to try. */
    if (h->blocked)
        return;
    session_enter(s);
    if (s->phase == TCP_RELAYING) {
        lru_timer_touch(&s->list->idle, &s->idle);
        half_pump(h);
    }
    session_leave(s);
}

/* A PROXY protocol mapping: the header (client's address, and the one it
 * reached, from getsockname: the only syscall besides the send, for these
 * mappings only) goes to the target before any byte of the client's, in
 * one send, as the spec asks. The target's send buffer is empty right
 * after the connect, so all of it (at most PROXY_HEADER_MAX bytes) is
 * taken at once; should only part be (the host short of TCP memory), the
 * rest could not go ahead of the client's bytes without holding them, so
 * the session is reset, said why, rather than the stream corrupted.
 * Returns false when it ended the session. */
static bool send_proxy_header(struct tcp_session *s)
{
    struct addr local = {.len = sizeof local.ss};
    if (getsockname(s->cfd, (struct sockaddr *)&local.ss, &local.len) < 0) {
        session_reset(s, "PROXY header: getsockname", errno);
        return false;
    }
    uint8_t hdr[PROXY_HEADER_MAX];
    size_t len = proxy_header_encode(s->m->proxy_proto, &s->client, &local, hdr,
                                     sizeof hdr);
    INVARIANT(len > 0);
    ssize_t n = send(s->tfd, hdr, len, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        session_reset(s, "PROXY header: send", errno); /* the target's doing */
        return false;
    }
    if (n != (ssize_t)len) {
        relay_log_limited(s->ctx, LOG_WARN, s->m, &s->client,
                          relay_key(RELAY_SAID_SHORTAGE, ENOBUFS, NULL),
                          "PROXY header: %zd of %zu bytes sent; resetting",
                          n < 0 ? (ssize_t)0 : n, len);
        session_reset(s, "PROXY header", ENOBUFS);
        return false;
    }
    return true;
}

/* Connected: the target's events, then both directions move. They are
 * added before the connect's event goes (on_connected), edge-triggered and
 * asking together for what it asked (TCP_CONNECT_EVENTS): libevent sees
 * the socket stay registered as it was and tells epoll nothing. */
static void start_relaying(struct tcp_session *s, short seen)
{
    /* A backend without edge triggering (poll, select: EVENT_NOEPOLL)
     * gets the level-triggered way, write event armed only when needed. */
    bool et = event_base_get_features(s->ctx->base) & EV_FEATURE_ET;
    short trig = et ? EV_ET : 0;
    s->up.wr = event_new(s->ctx->base, s->tfd, EV_WRITE | trig | EV_PERSIST, on_ready,
                         &s->up);
    s->down.rd = event_new(s->ctx->base, s->tfd,
                           EV_READ | EV_CLOSED | trig | EV_PERSIST, on_ready,
                           &s->down);
    if (!s->up.wr || !s->down.rd) {
        session_reset(s, "cannot relay", ENOMEM);
        return;
    }
    set_phase(s, TCP_RELAYING);
    /* SCTP's counterparts were set before the connect (tcp_connect). */
    bool tcp = s->m->proto == PROTO_TCP;
    if (tcp)
        sock_set_nodelay(s->tfd);
    /* Before anything can read the client: its events go on below. */
    if (s->m->proxy_proto != PROXY_PROTO_NONE && !send_proxy_header(s))
        return;
    s->up.dst_et = s->down.src_et = et;
    /* The connect's edges are spent: what they said is remembered. */
    s->down.src_ready = seen & (EV_READ | EV_CLOSED);
    s->down.src_fin = seen & EV_CLOSED;
    event_add(s->up.rd, NULL);
    if (et)
        event_add(s->up.wr, NULL);
    event_add(s->down.rd, NULL);
    lru_timer_join(&s->list->idle, &s->idle);
    /* SCTP probes idle paths itself (HEARTBEAT). */
    if (tcp)
        lru_timer_join(&s->list->young, &s->young);
    /* Most clients have sent by now (the request waited in the kernel
     * through the connect): read it at once rather than after another
     * wait. Skipped for a while after such a read found nothing. */
    struct tcp_session_list *list = s->list;
    if (s->down.src_ready)
        half_pump(&s->down);
    if (list->eager_skip) {
        list->eager_skip--;
        return;
    }
    if (s->phase != TCP_RELAYING)
        return;
    s->up.src_ready = true;
    half_pump(&s->up);
    if (s->phase == TCP_RELAYING && s->up.state == HALF_OPEN && !s->up.got)
        list->eager_skip = EAGER_SKIP;
}

/* The connect reported: relay, or reset the client (the connect logged
 * why) rather than leave it hanging. */
static void on_connected(void *arg, int fd, int err)
{
    struct tcp_session *s = arg;
    session_enter(s);
    s->tfd = fd;
    if (s->list->stats)
        metrics_connect_done(s->list->stats, fd >= 0 ? 0 : err,
                             metrics_now_ns() - s->started_ns);
    if (fd >= 0) {
        /* Before the connect goes: its event keeps the socket registered
         * until the session's are added. */
        start_relaying(s, tcp_connect_seen(s->conn));
        tcp_connect_free(s->conn);
        s->conn = NULL;
    } else {
        tcp_connect_free(s->conn);
        s->conn = NULL;
        sock_set_reset_on_close(s->cfd);
        session_end(s);
    }
    session_leave(s);
}

struct tcp_session *tcp_session_new(struct relay_ctx *ctx,
                                    struct tcp_session_list *list,
                                    const struct mapping *m, int client_fd,
                                    const struct addr *client,
                                    const struct addr *targets, size_t ntargets,
                                    tcp_session_end_fn *on_end, void *arg)
{
    struct tcp_session *s = calloc(1, sizeof *s);
    if (!s) {
        close(client_fd);
        return NULL;
    }
    s->ctx = ctx;
    s->list = list;
    s->m = m;
    s->cfd = client_fd;
    s->tfd = -1;
    s->client = *client;
    s->on_end = on_end;
    s->arg = arg;
    s->next = list->head;
    if (list->head)
        list->head->prev = s;
    list->head = s;
    list->count++;
    s->up = (struct half){.s = s, .src = &s->cfd, .dst = &s->tfd};
    s->down = (struct half){.s = s, .src = &s->tfd, .dst = &s->cfd};
    if (list->stats) {
        list->stats->conns_active++;
        s->up.bytes = &list->stats->bytes[METRICS_IN];
        s->down.bytes = &list->stats->bytes[METRICS_OUT];
        s->started_ns = metrics_now_ns();
    }
    tcp_pump_init(&s->up.pump, m->proto == PROTO_SCTP);
    tcp_pump_init(&s->down.pump, m->proto == PROTO_SCTP);
    s->up.rd = event_new(ctx->base, s->cfd, EV_READ | EV_CLOSED | EV_PERSIST, on_ready,
                         &s->up);
    s->down.wr = event_new(ctx->base, s->cfd, EV_WRITE | EV_PERSIST, on_ready,
                           &s->down);
    /* SCTP: the target's association gets as many streams as the
     * client's, so any message of one has its stream in the other. */
    struct sctp_streams streams;
    bool sctp = m->proto == PROTO_SCTP && sctp_sock_streams(client_fd, &streams) == 0;
    /* Nothing is read from the client until the target accepts: its bytes
     * wait in the kernel, and a refusal can still reset it cleanly. */
    if (!s->up.rd || !s->down.wr ||
        !(s->conn = tcp_connect_new(ctx, m, &s->client, sctp ? &streams : NULL,
                                    targets, ntargets, on_connected, s))) {
        relay_log_limited(ctx, LOG_WARN, s->m, &s->client,
                          relay_key(RELAY_SAID_SHORTAGE, ENOMEM, NULL),
                          "cannot start session: out of memory");
        sock_set_reset_on_close(s->cfd);
        tcp_session_free(s);
        return NULL;
    }
    return s;
}
