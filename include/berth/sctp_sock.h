/* SCTP's messages on one-to-one style sockets (SOCK_STREAM, IPPROTO_SCTP;
 * RFC 6458): each recvmsg returns at most one message, in pieces when it
 * is larger than the buffer (MSG_EOR on the last), with the stream, PPID
 * and unordered flag it came with (SCTP_RCVINFO, once SCTP_RECVRCVINFO is
 * on); each sendmsg sends one whole message, with those as SCTP_SNDINFO.
 * The kernel takes a message whole or not at all (EAGAIN), and refuses one
 * larger than the socket's send buffer (EMSGSIZE).
 *
 * No libsctp: the structures come from the kernel's <linux/sctp.h>. */
#ifndef BERTH_SCTP_SOCK_H
#define BERTH_SCTP_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* What a message carries besides its bytes, passed on unchanged. */
struct sctp_msg_info {
    uint16_t stream;
    uint16_t flags; /* SCTP_UNORDERED or 0 */
    uint32_t ppid;  /* network byte order, as on the wire: opaque here */
};

/* A socket of berth's (listening, accepted or connecting): SCTP_NODELAY
 * (a message goes at once, as TCP_NODELAY does for TCP), SCTP_RECVRCVINFO
 * (each message's stream and PPID) and the association's changes as
 * notifications: SCTP has no half-close, so once berth passed one side's
 * shutdown on, the other side's association ends with a SHUTDOWN-ACK that
 * no read reports as an end of stream; only SCTP_SHUTDOWN_COMP says it.
 * Accepted sockets inherit all three from their listener. Returns 0, or
 * -1 (errno). */
int sctp_sock_setup(int fd);

/* What a notification says about the association. */
enum sctp_notice {
    SCTP_NOTICE_NONE,  /* nothing that ends it (started, restarted, ...) */
    SCTP_NOTICE_ENDED, /* its shutdown completed: the end of the stream */
    SCTP_NOTICE_LOST,  /* it broke, or never started: as a reset */
};
/* Reads a whole notification of n bytes. Pure (for tests). */
enum sctp_notice sctp_sock_notice(const void *buf, size_t n);

/* How many streams an association has each way. */
struct sctp_streams {
    uint16_t in, out;
};

/* The stream counts of fd's association (SCTP_STATUS). Returns 0, or -1
 * (errno). */
int sctp_sock_streams(int fd, struct sctp_streams *out);

/* For the associations fd will make or accept (SCTP_INITMSG): out streams
 * asked for, and at most in_max granted to the peer (0: the kernel's,
 * 65535). The peer may grant fewer out; the kernel's default is 10.
 * Returns 0, or -1 (errno). */
int sctp_sock_init_streams(int fd, uint16_t out, uint16_t in_max);

/* The streams a listener offers each client, and grants it at most, each
 * way: the kernel's 10 out would cut off a client that expects answers on
 * stream 10 or above; each stream costs the kernel some 24 bytes per
 * association (and berth asks the target for as many), so not 65535. */
#define SCTP_LISTEN_STREAMS 1024

/* One piece of one message into buf: its length, 0 at the peer's shutdown
 * (or when the association's shutdown completed), -1 on error (errno;
 * EAGAIN when none is queued; ECONNRESET when the association was lost).
 * *eor says whether it was the message's last piece; *info is set from the
 * piece's SCTP_RCVINFO (left alone when the piece came without it). Other
 * notifications are read and dropped. */
ssize_t sctp_sock_recv(int fd, void *buf, size_t len, struct sctp_msg_info *info,
                       bool *eor);

/* Sends buf as one whole message with info: len, or -1 (errno: EAGAIN when
 * the send buffer has no room for it now, EMSGSIZE when it never will). */
ssize_t sctp_sock_send(int fd, const void *buf, size_t len,
                       const struct sctp_msg_info *info);

/* The SCTP_RCVINFO of a received msghdr's control data into *info: true
 * if it had one. Pure (for tests). */
bool sctp_sock_read_info(const struct msghdr *mh, struct sctp_msg_info *info);

#endif
