#include "berth/listener.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/acceptor.h"
#include "berth/log.h"
#include "berth/sctp_sock.h"
#include "berth/tcp_relay.h"

struct tcp_listener {
    struct relay_ctx *ctx;
    const struct mapping *m;
    int fd;
    struct acceptor *acc;
    unsigned rr; /* round-robin over a service's replicas */
    struct tcp_session_list sessions;
};

static bool at_limit(const struct tcp_listener *l)
{
    return l->ctx->max_conns && l->sessions.count >= l->ctx->max_conns;
}

static void on_session_end(void *arg)
{
    struct tcp_listener *l = arg;
    if (l->acc && !at_limit(l))
        acceptor_resume(l->acc);
}

static void on_client(void *arg, int c, const struct addr *peer)
{
    struct tcp_listener *l = arg;
    if (l->sessions.stats)
        l->sessions.stats->conns++;
    if (!l->m->target_name[0]) {
        tcp_session_new(l->ctx, &l->sessions, l->m, c, peer, NULL, 0, on_session_end,
                        l);
    } else {
        struct addr replicas[8];
        size_t n = relay_resolve(l->ctx, l->m, &l->rr, replicas, 8);
        if (n == 0) {
            /* Nothing runs by that name now: close at once rather than
             * hold the client; the port comes alive with the container.
             * Said with why (the engine may be what is missing), once per
             * reason and 10 s: a client may retry hundreds of times. */
            relay_log_unresolved(l->ctx, l->m, peer, "");
            if (l->sessions.stats)
                l->sessions.stats->connect_errors[METRICS_NO_TARGET]++;
            sock_set_reset_on_close(c);
            close(c);
            return;
        }
        tcp_session_new(l->ctx, &l->sessions, l->m, c, peer, replicas, n,
                        on_session_end, l);
    }
    /* Past --max-conns new clients wait in the kernel backlog. */
    if (at_limit(l))
        acceptor_pause(l->acc);
}

struct tcp_listener *tcp_listener_new(struct relay_ctx *ctx, const struct mapping *m,
                                      int fd, char *err, size_t errlen)
{
    struct tcp_listener *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        close(fd);
        return NULL;
    }
    l->ctx = ctx;
    l->m = m;
    l->fd = fd;
    if (tcp_session_list_init(&l->sessions, ctx) < 0) {
        snprintf(err, errlen, "%s: out of memory", m->label);
        tcp_listener_free(l);
        return NULL;
    }
    /* Accepted sockets inherit TCP_NODELAY and the keepalive settings
     * (SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT): calls here
     * instead of per connection. Keepalive is set off explicitly too, in
     * case a socket handed over by dockerd came with it on. SCTP's
     * sockets inherit SCTP_NODELAY and SCTP_RECVRCVINFO the same way. */
    bool sctp = m->proto == PROTO_SCTP;
    if (!sctp)
        sock_set_nodelay(l->fd);
    if (sctp ? sctp_sock_setup(l->fd) < 0 ||
                   sctp_sock_init_streams(l->fd, SCTP_LISTEN_STREAMS,
                                          SCTP_LISTEN_STREAMS) < 0
             : sock_set_keepalive(l->fd, &ctx->tcp_keepalive) < 0) {
        snprintf(err, errlen, "%s: %s: %s", m->label,
                 sctp ? "SCTP socket options" : "TCP keepalive", strerror(errno));
        tcp_listener_free(l);
        return NULL;
    }
    if (!(l->acc = acceptor_new(ctx->base, l->fd, m->label, on_client, l))) {
        snprintf(err, errlen, "%s: cannot watch listener", m->label);
        tcp_listener_free(l);
        return NULL;
    }
    log_debug("%s: listening", m->label);
    return l;
}

void tcp_listener_free(struct tcp_listener *l)
{
    if (!l)
        return;
    tcp_session_list_clear(&l->sessions);
    if (l->ctx)
        relay_forget(l->ctx, l->m);
    acceptor_free(l->acc);
    if (l->fd >= 0)
        close(l->fd);
    free(l);
}

void tcp_listener_stop(struct tcp_listener *l)
{
    acceptor_free(l->acc);
    l->acc = NULL;
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
}

int tcp_listener_fd(const struct tcp_listener *l) { return l->fd; }

void tcp_listener_set_stats(struct tcp_listener *l, struct map_stats *stats)
{
    l->sessions.stats = stats;
}

size_t tcp_listener_sessions(const struct tcp_listener *l)
{
    return l->sessions.count;
}
