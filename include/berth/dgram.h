/* Datagram socket techniques shared by every UDP listener (published UDP
 * ports, DNS): answering from the address the client wrote to, and sending
 * a batch while dropping what the kernel refuses.
 * Return convention: as each function says (dgram_track_local: 0, or -1
 * with errno). */
#ifndef BERTH_DGRAM_H
#define BERTH_DGRAM_H

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "berth/sockaddr.h"

/* Control buffer room for one pktinfo, either family. */
#define DGRAM_CTRL_LEN CMSG_SPACE(sizeof(struct in6_pktinfo))

/* Where a reply leaves from: the local address a datagram arrived on. Only
 * a socket bound to a wildcard needs it, to answer multi-homed clients from
 * the address they used. */
struct reply_src {
    bool set;
    struct in_pktinfo v4;
    struct in6_pktinfo v6;
};

/* For fd bound to bound: when that is a wildcard, asks the kernel for each
 * datagram's local address and sets *track. */
int dgram_track_local(int fd, const struct addr *bound, bool *track);

/* The local address of a datagram received with a DGRAM_CTRL_LEN control
 * buffer on a tracking socket (src->set false when it carries none). */
void reply_src_read(const struct msghdr *h, struct reply_src *src);

/* Points h's control data at ctrl (DGRAM_CTRL_LEN bytes) saying src, or at
 * nothing when src is unset. family: the replying socket's. */
void reply_src_write(const struct reply_src *src, int family, struct msghdr *h,
                     char *ctrl);

/* Datagrams per recvmmsg/sendmmsg call. */
#define DGRAM_BATCH 32
/* Largest UDP payload over IPv6 without jumbograms; IPv4's is 65507. */
#define DGRAM_MAX 65536

/* Buffers for one batch of whole datagrams with their peers and control
 * data: 2 MiB, shared by every relay of a loop, its pages touched only as
 * datagrams need them. */
struct dgram_batch {
    struct mmsghdr msgs[DGRAM_BATCH];
    struct iovec iov[DGRAM_BATCH];
    struct addr peer[DGRAM_BATCH];
    char ctrl[DGRAM_BATCH][DGRAM_CTRL_LEN];
    char data[DGRAM_BATCH][DGRAM_MAX];
};

struct dgram_batch *dgram_batch_new(void);
void dgram_batch_free(struct dgram_batch *b);

/* Where one batch is received: n slots of each array, wherever they live
 * (a relay's dgram_batch, the DNS server's own). */
struct dgram_recv {
    struct mmsghdr *msgs;
    struct iovec *iov;
    struct addr *peer;            /* len set for each datagram received */
    char (*ctrl)[DGRAM_CTRL_LEN]; /* used when the socket tracks local */
    char *data;                   /* n buffers of cap bytes */
    size_t cap;
};

/* Receives up to n datagrams on fd with recvmmsg, each with its peer and,
 * when track, its local address (for reply_src_read). Returns how many;
 * 0 when none waits or on an error, which is logged at debug level under
 * label (a relay goes on with the next wake-up). */
int dgram_recv_batch(int fd, const struct dgram_recv *r, int n, bool track,
                     const char *label);

/* Sends msgs[0..n) on fd with sendmmsg. What the kernel refuses is dropped,
 * one datagram per refusal, and logged at debug level under label: UDP may
 * lose datagrams, a relay must not stall on one. Returns how many were
 * dropped. */
int dgram_send_batch(int fd, struct mmsghdr *msgs, int n, const char *label);

/* Datagrams waiting to leave on several sockets, each with its own
 * destination and control data: the replies of many flows that were ready
 * in one loop turn leave in one sendmmsg per socket, not one per flow.
 * Slots [n, DGRAM_BATCH) are free: a caller receives straight into them,
 * then dgram_out_queued records what it put there. */
struct dgram_out {
    struct dgram_batch b;
    int fd[DGRAM_BATCH];            /* the socket each slot leaves on */
    const char *label[DGRAM_BATCH]; /* its relay's, for the log */
    int n;
};

struct dgram_out *dgram_out_new(void);
void dgram_out_free(struct dgram_out *o);

/* Slots [o->n, o->n + k) were filled (b.msgs with destination, iov length
 * and control data): they leave on fd. */
void dgram_out_queued(struct dgram_out *o, int k, int fd, const char *label);

/* Sends every queued datagram, one sendmmsg per run of slots for one
 * socket, and empties the queue. Returns how many were dropped. */
int dgram_out_flush(struct dgram_out *o);

/* fd closes: what is queued for it is dropped (the number may be reused). */
void dgram_out_forget(struct dgram_out *o, int fd);

#endif
