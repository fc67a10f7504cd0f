/* Bytes moved one direction of a TCP session, from a src socket to a dst
 * socket: small exchanges copied through the loop's scratch buffer, bulk
 * with splice(2) through a pipe borrowed from the pool while bytes are in
 * flight ("splice-auto", per read), or copied where splice cannot work.
 * Only bytes dst could not take yet are held. The pump knows nothing of
 * events, phases or half-closes: tcp_relay drives it.
 *
 * SCTP sessions pump in message mode (sctp_sock.h): a message read whole
 * in one piece goes on from the scratch buffer; one that comes in pieces
 * is put together in the pump's message buffer, and only a whole one is
 * sent, with its stream, PPID and unordered flag. No splice.
 *
 * Ownership: a pump is embedded in its owner (nothing allocated to make
 * one); it holds a pipe or a buffer only while bytes are pending, and
 * tcp_pump_release gives them back. The message buffer is the exception:
 * made for the first message that needs it, 64 KiB of it is kept until
 * the release at the session's end, so messages cost no allocation; one
 * grown for a larger message is freed once that message is sent. */
#ifndef BERTH_TCP_PUMP_H
#define BERTH_TCP_PUMP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "berth/pipe_pool.h"
#include "berth/relay.h"
#include "berth/sctp_sock.h"

struct tcp_pump {
    struct pipe pipe; /* borrowed from the pool while pending > 0 */
    size_t pending;   /* bytes taken from src, not yet given to dst */
    size_t asked;     /* how much the last read asked for */
    char *buf;        /* buffered path: the pending bytes */
    size_t off;
    bool buffered; /* splice refused this pair: copy instead */
    bool splicing; /* the next read splices (splice-auto, SPLICE_MIN) */
    bool copied;   /* the last read was a recv into the scratch buffer */
    /* Message mode: msg holds msg_len bytes of the message being put
     * together, or, with pending == msg_len, a whole one dst refused. */
    bool message;
    char *msg;
    size_t msg_len, msg_cap;
    size_t msg_max; /* dst's send buffer, the largest message it takes;
                     * read when the buffer first grows */
    struct sctp_msg_info info;
};

/* An empty pump: no pipe, nothing pending; it starts copying, or with
 * message true, moves SCTP messages. */
void tcp_pump_init(struct tcp_pump *p, bool message);

/* Gives back the pipe and the buffer. A pipe still holding bytes is
 * closed, never pooled: the next session must not receive them. */
void tcp_pump_release(struct tcp_pump *p, struct relay_ctx *ctx);

/* Gives dst what the pump holds. Returns 1 when all is delivered (the pipe
 * or buffer then released), 0 when dst is full, -1 on error (errno). */
int tcp_pump_flush(struct tcp_pump *p, struct relay_ctx *ctx, int dst);

/* Takes bytes from src and gives dst what it takes at once; the rest is
 * pending. Returns the count, 0 at EOF, -1 on a read error (errno; EAGAIN
 * when drained) and -2 on a write error (errno). In message mode a message
 * still incomplete is held without being pending; one larger than dst's
 * send buffer fails the write (EMSGSIZE), one cut by EOF the read
 * (ECONNABORTED). */
ssize_t tcp_pump_fill(struct tcp_pump *p, struct relay_ctx *ctx, int src, int dst);

/* What a fill that brought n > 0 bytes says about src. */
enum tcp_pump_after {
    TCP_PUMP_MORE,    /* src may hold more: read again */
    TCP_PUMP_DRAINED, /* a short read: nothing more for now */
};

/* A short read from a level-triggered src means it is drained for now, so
 * the caller may wait for more instead of spending a call on EAGAIN (what
 * is left, a reset included, is reported again); with src's FIN already
 * seen (src_fin) the caller reads on until 0. An edge-triggered src
 * (src_et) is read until EAGAIN: its reset may hide behind the last edge. */
enum tcp_pump_after tcp_pump_after_read(const struct tcp_pump *p, size_t n,
                                        bool src_et, bool src_fin);

#endif
