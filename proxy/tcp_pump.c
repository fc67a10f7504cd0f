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

/* Message mode: the buffer kept for messages that arrive in pieces or wait
 * for dst; a larger one is freed once its message is sent. */
#define MSG_KEEP (64 * 1024)

void tcp_pump_init(struct tcp_pump *p, bool message)
{
    *p = (struct tcp_pump){.pipe = {-1, -1, 0, false}, .message = message};
}

void tcp_pump_release(struct tcp_pump *p, struct relay_ctx *ctx)
{
    pipe_pool_put(ctx->pipes, &p->pipe, p->pending == 0);
    free(p->buf);
    p->buf = NULL;
    p->off = 0;
    if (p->message) {
        free(p->msg);
        p->msg = NULL;
        p->msg_len = p->msg_cap = p->pending = 0;
    }
}

/* ---- message mode (SCTP) ---- */

/* Room for need bytes in the message buffer, doubling it, up to what dst
 * could take as one message. Returns 0, or -1 (errno). */
static int msg_grow(struct tcp_pump *p, int dst, size_t need)
{
    if (need <= p->msg_cap)
        return 0;
    if (p->msg_max == 0) {
        int sndbuf = 0;
        socklen_t len = sizeof sndbuf;
        if (getsockopt(dst, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) < 0)
            return -1;
        p->msg_max = sndbuf > 0 ? (size_t)sndbuf : 1;
    }
    if (need > p->msg_max) {
        errno = EMSGSIZE;
        return -1;
    }
    size_t cap = p->msg_cap ? p->msg_cap * 2 : MSG_KEEP;
    while (cap < need)
        cap *= 2;
    if (cap > p->msg_max)
        cap = p->msg_max;
    char *m = realloc(p->msg, cap);
    if (!m) {
        errno = ENOMEM;
        return -1;
    }
    p->msg = m;
    p->msg_cap = cap;
    return 0;
}

/* Appends n bytes to the message being put together. */
static int msg_append(struct tcp_pump *p, int dst, const char *b, size_t n)
{
    if (msg_grow(p, dst, p->msg_len + n) < 0)
        return -1;
    memcpy(p->msg + p->msg_len, b, n);
    p->msg_len += n;
    return 0;
}

/* A whole message in msg: sent, or left pending when dst has no room. */
static int msg_send(struct tcp_pump *p, int dst)
{
    ssize_t n = sctp_sock_send(dst, p->msg, p->msg_len, &p->info);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        p->pending = p->msg_len;
        return 0;
    }
    /* All or nothing for one message (sctp_sock.h). */
    if ((size_t)n != p->msg_len) {
        errno = EMSGSIZE;
        return -1;
    }
    p->msg_len = p->pending = 0;
    /* A buffer grown for a large message is not kept while the session
     * idles (up to dst's send buffer, some 200 KiB, per direction). */
    if (p->msg_cap > MSG_KEEP) {
        free(p->msg);
        p->msg = NULL;
        p->msg_cap = 0;
    }
    return 1;
}

static ssize_t fill_message(struct tcp_pump *p, struct relay_ctx *ctx, int src,
                            int dst)
{
    bool eor = false;
    ssize_t n;
    if (p->msg_len == 0) {
        /* A new message: most come whole into the scratch buffer and go
         * on from there, copied nowhere else. */
        p->asked = ctx->scratch_len;
        if ((n = sctp_sock_recv(src, ctx->scratch, ctx->scratch_len, &p->info,
                                &eor)) <= 0)
            return n;
        if (eor) {
            ssize_t sent = sctp_sock_send(dst, ctx->scratch, (size_t)n, &p->info);
            if (sent == n)
                return n;
            if (sent >= 0)
                errno = EMSGSIZE;
            if (sent >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
                return -2;
        }
        if (msg_append(p, dst, ctx->scratch, (size_t)n) < 0)
            return -2;
        if (eor)
            p->pending = p->msg_len;
        return n;
    }
    /* The rest of one that came in pieces, straight into the buffer. */
    if (msg_grow(p, dst, p->msg_len + 1) < 0)
        return -2;
    struct sctp_msg_info ignored;
    p->asked = p->msg_cap - p->msg_len;
    n = sctp_sock_recv(src, p->msg + p->msg_len, p->asked, &ignored, &eor);
    if (n == 0)
        errno = ECONNABORTED; /* a shutdown cannot cut a message */
    if (n <= 0)
        return -1;
    p->msg_len += (size_t)n;
    if (eor && msg_send(p, dst) < 0)
        return -2;
    return n;
}

int tcp_pump_flush(struct tcp_pump *p, struct relay_ctx *ctx, int dst)
{
    if (p->message) {
        if (p->pending == 0)
            return 1;
        return msg_send(p, dst);
    }
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
    if (p->message)
        return fill_message(p, ctx, src, dst);
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
    /* One message per read: a short one says nothing of what follows. */
    if (n >= p->asked || p->message)
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
