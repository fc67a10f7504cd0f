#include "berth/tcp_pump.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Splice or copy, per read ("splice-auto"): a small exchange costs two
 * calls either way (recv + send, or splice in + splice out) but the copy
 * needs no pipe and, with the peer's FIN already seen, shows the end of
 * the stream without another call; bulk is cheaper spliced (no copy). So
 * each direction starts copying, and the next read splices after a read
 * that brought at least this much, copies after one that brought less. */
#define SPLICE_MIN (16 * 1024)

void tcp_pump_init(struct tcp_pump *p)
{
    *p = (struct tcp_pump){.pipe = {-1, -1, 0, false}};
}

void tcp_pump_release(struct tcp_pump *p, struct relay_ctx *ctx)
{
    pipe_pool_put(ctx->pipes, &p->pipe, p->pending == 0);
    free(p->buf);
    p->buf = NULL;
    p->off = 0;
}

int tcp_pump_flush(struct tcp_pump *p, struct relay_ctx *ctx, int dst)
{
    while (p->pending > 0) {
        ssize_t n;
        if (p->buf)
            n = send(dst, p->buf + p->off, p->pending, MSG_NOSIGNAL);
        else
            n = splice(p->pipe.rd, NULL, dst, NULL, p->pending,
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        p->pending -= (size_t)n;
        p->off += (size_t)n;
    }
    tcp_pump_release(p, ctx);
    return 1;
}

/* Buffered path: read into the shared scratch buffer, send at once, keep
 * only what dst refused. */
static ssize_t fill_buffered(struct tcp_pump *p, struct relay_ctx *ctx, int src,
                             int dst)
{
    p->asked = ctx->scratch_len;
    ssize_t n = recv(src, ctx->scratch, ctx->scratch_len, 0);
    if (n <= 0)
        return n;
    ssize_t sent = send(dst, ctx->scratch, (size_t)n, MSG_NOSIGNAL);
    if (sent < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -2;
        sent = 0;
    }
    if (sent < n) {
        p->pending = (size_t)(n - sent);
        if (!(p->buf = malloc(p->pending))) {
            errno = ENOMEM;
            return -2;
        }
        memcpy(p->buf, ctx->scratch + sent, p->pending);
        p->off = 0;
    }
    return n;
}

ssize_t tcp_pump_fill(struct tcp_pump *p, struct relay_ctx *ctx, int src, int dst)
{
    p->copied = true;
    if (p->buffered || ctx->no_splice)
        return fill_buffered(p, ctx, src, dst);
    if (!p->splicing) {
        ssize_t n = fill_buffered(p, ctx, src, dst);
        /* Much at once: a bulk transfer, cheaper through a pipe. */
        if (n >= SPLICE_MIN)
            p->splicing = true;
        return n;
    }
    if (p->pipe.rd < 0 && pipe_pool_get(ctx->pipes, &p->pipe) < 0) {
        /* Out of fds for a pipe: this round goes through memory. */
        p->pipe.rd = p->pipe.wr = -1;
        return fill_buffered(p, ctx, src, dst);
    }
    p->copied = false;
    p->asked = p->pipe.cap;
    ssize_t n = splice(src, NULL, p->pipe.wr, NULL, p->pipe.cap,
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    /* A full pipe means a bulk transfer: a bigger pipe moves the same
     * bytes with fewer calls from now on. */
    if (n > 0 && (size_t)n == p->pipe.cap)
        pipe_grow(&p->pipe);
    if (n < 0 && errno == EINVAL) {
        p->buffered = true;
        tcp_pump_release(p, ctx);
        return fill_buffered(p, ctx, src, dst);
    }
    if (n > 0)
        p->pending = (size_t)n;
    else
        tcp_pump_release(p, ctx);
    if (n > 0 && (size_t)n < SPLICE_MIN)
        p->splicing = false;
    return n;
}

enum tcp_pump_after tcp_pump_after_read(const struct tcp_pump *p, size_t n,
                                        bool src_et, bool src_fin)
{
    if (n >= p->asked)
        return TCP_PUMP_MORE;
    /* Edge-triggered, a short read proves nothing: libevent reports a
     * reset (EPOLLERR|EPOLLHUP) as a plain read event, without EV_CLOSED,
     * so bytes the peer sent just before resetting may be all the one edge
     * brings, and only reading on finds the reset. (A short splice may
     * also have stopped at the pipe's slots.) */
    if (src_et)
        return TCP_PUMP_MORE;
    /* After src's FIN a short recv is not proof of the end either: it
     * stops at the TCP urgent mark with bytes queued behind it. Read on
     * until 0. Level-triggered, anything left is reported again. */
    return src_fin ? TCP_PUMP_MORE : TCP_PUMP_DRAINED;
}
