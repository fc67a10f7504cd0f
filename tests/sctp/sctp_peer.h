/*
 * sctp_peer's pieces shared by its subcommands: sctp_peer.c (echo,
 * listen-exec, the SCTP socket helpers) and sctp_client.c (client).
 */
#ifndef SCTP_PEER_H
#define SCTP_PEER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

enum { MSG_CAP = 128 * 1024 }; /* the largest message handled whole */

/* A message being received: its length so far and what the first piece's
 * SCTP_RCVINFO said. */
struct msg {
    size_t len;
    int have_info;
    int note; /* the sac_state of an SCTP_ASSOC_CHANGE notification */
    uint16_t sid;
    uint16_t flags;
    uint32_t ppid;
};

/* One `FAIL: why` line on stderr, exit 1. */
_Noreturn void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error: one line, exit 2. */
_Noreturn void usage(const char *why);
long parse_num(const char *s, long lo, long hi);
socklen_t parse_addr(const char *ip, const char *port, struct sockaddr_storage *ss);
int sctp_socket(int family, int streams);
void want_rcvinfo(int fd);
int recv_piece(int fd, uint8_t *buf, struct msg *m);
ssize_t send_msg(int fd, const uint8_t *buf, size_t len, uint16_t sid, uint32_t ppid,
                 uint16_t flags);
int cmd_client(int argc, char **argv);

#endif
