/*
 * sctp_peer: both ends of the SCTP traffic in berth's QEMU-guest tests
 * (tests/sctp/guest-test.sh), one-to-one style (SOCK_STREAM, IPPROTO_SCTP).
 *
 *   sctp_peer echo ADDR PORT [--close-after N]
 *   sctp_peer client ADDR PORT [--assocs N] [--rounds R] [--streams K] [--max M]
 *             [--window W] [--unordered] [--timeout S] [--connect-wait S]
 *             [--expect-close-after N | --expect-end]
 *   sctp_peer listen-exec ADDR PORT [--tcp] -- PROG ARGS...
 *
 * echo serves every association in a process of its own and sends each
 * message back whole with its stream, PPID and unordered flag; it prints
 * `listening` once bound. client (sctp_client.c) checks every echo: whole,
 * byte-exact, same stream and PPID, then shuts down and expects a clean end.
 * listen-exec hands a bound, listening socket over as fd 4, as dockerd 29
 * does with `-use-listen-fd`. Exit 0 ok, 1 with one `FAIL: why` line, 2 usage.
 *
 * No libsctp: the kernel's uapi header has everything, and the binary is
 * linked statically to run in the guest's initramfs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* prctl */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/sctp.h>

#include "sctp_peer.h"

_Noreturn void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

_Noreturn void usage(const char *why)
{
    fprintf(stderr, "sctp_peer: %s (see the comment at the top of sctp_peer.c)\n",
            why);
    exit(2);
}

long parse_num(const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "sctp_peer: bad number '%s' (%ld..%ld)\n", s, lo, hi);
        exit(2);
    }
    return v;
}

/* ADDR is an IPv4 or IPv6 literal, IPv6 with or without brackets. */
socklen_t parse_addr(const char *ip, const char *port, struct sockaddr_storage *ss)
{
    char buf[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(ip);
    if (n >= sizeof buf) {
        fprintf(stderr, "sctp_peer: bad address '%s'\n", ip);
        exit(2);
    }
    memcpy(buf, ip, n + 1);
    if (n >= 2 && buf[0] == '[' && buf[n - 1] == ']') {
        buf[n - 1] = '\0';
        memmove(buf, buf + 1, n - 1);
    }
    uint16_t p = (uint16_t)parse_num(port, 1, 65535);
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, buf, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(p);
        return sizeof *in4;
    }
    if (inet_pton(AF_INET6, buf, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(p);
        return sizeof *in6;
    }
    fprintf(stderr, "sctp_peer: bad address '%s'\n", ip);
    exit(2);
}

/* A one-to-one SCTP socket that reports each message's stream and PPID and
 * offers (and accepts) `streams` streams each way. */
int sctp_socket(int family, int streams)
{
    int fd = socket(family, SOCK_STREAM, IPPROTO_SCTP);
    if (fd < 0)
        fail("socket(SCTP): %s", strerror(errno));
    struct sctp_initmsg init = {.sinit_num_ostreams = (uint16_t)streams,
                                .sinit_max_instreams = (uint16_t)streams};
    if (setsockopt(fd, IPPROTO_SCTP, SCTP_INITMSG, &init, sizeof init) < 0)
        fail("SCTP_INITMSG: %s", strerror(errno));
    return fd;
}

void want_rcvinfo(int fd)
{
    int on = 1;
    if (setsockopt(fd, IPPROTO_SCTP, SCTP_RECVRCVINFO, &on, sizeof on) < 0)
        fail("SCTP_RECVRCVINFO: %s", strerror(errno));
}

/* Reads one piece into buf + m->len. 1: the message is whole (MSG_EOR);
 * 2: more to come; 3: an association change, m->note; 0: the peer shut
 * down; -1: errno. */
int recv_piece(int fd, uint8_t *buf, struct msg *m)
{
    union {
        char b[CMSG_SPACE(sizeof(struct sctp_rcvinfo))];
        struct cmsghdr align;
    } cbuf;
    if (m->len >= MSG_CAP)
        fail("a message longer than %d bytes arrived", MSG_CAP);
    struct iovec iov = {buf + m->len, MSG_CAP - m->len};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = cbuf.b,
                        .msg_controllen = sizeof cbuf.b};
    ssize_t n = recvmsg(fd, &mh, 0);
    if (n <= 0)
        return (int)n;
    if (mh.msg_flags & MSG_NOTIFICATION) {
        union sctp_notification sn;
        if ((size_t)n < sizeof sn.sn_assoc_change || !(mh.msg_flags & MSG_EOR))
            fail("a notification of %zd bytes arrived", n);
        memcpy(&sn, buf + m->len, sizeof sn.sn_assoc_change);
        if (sn.sn_header.sn_type != SCTP_ASSOC_CHANGE)
            fail("an SCTP notification of type %u arrived", sn.sn_header.sn_type);
        m->note = sn.sn_assoc_change.sac_state;
        return 3;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == IPPROTO_SCTP && c->cmsg_type == SCTP_RCVINFO &&
            !m->have_info) {
            struct sctp_rcvinfo ri;
            memcpy(&ri, CMSG_DATA(c), sizeof ri);
            m->have_info = 1;
            m->sid = ri.rcv_sid;
            m->ppid = ri.rcv_ppid;
            m->flags = ri.rcv_flags;
        }
    }
    m->len += (size_t)n;
    return (mh.msg_flags & MSG_EOR) ? 1 : 2;
}

/* Sends one whole message on stream sid with that PPID (passed as is: SCTP
 * carries it opaquely, so both ends compare raw values). */
ssize_t send_msg(int fd, const uint8_t *buf, size_t len, uint16_t sid, uint32_t ppid,
                 uint16_t flags)
{
    union {
        char b[CMSG_SPACE(sizeof(struct sctp_sndinfo))];
        struct cmsghdr align;
    } cbuf;
    memset(&cbuf, 0, sizeof cbuf);
    struct iovec iov = {(void *)buf, len};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = cbuf.b,
                        .msg_controllen = sizeof cbuf.b};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = IPPROTO_SCTP;
    c->cmsg_type = SCTP_SNDINFO;
    c->cmsg_len = CMSG_LEN(sizeof(struct sctp_sndinfo));
    struct sctp_sndinfo si = {.snd_sid = sid, .snd_flags = flags, .snd_ppid = ppid};
    memcpy(CMSG_DATA(c), &si, sizeof si);
    return sendmsg(fd, &mh, MSG_NOSIGNAL);
}
/* One association of the echo server, in its own process. With close_after
 * it shuts down after that many echoes and drains what still comes, so the
 * end is a SHUTDOWN and not the ABORT a close with unread data sends. Its
 * end is one line on stdout, `end shutdown msgs=N` when the peer shut down
 * (so a test sees that a relay passed the client's shutdown on), else
 * `end close-after`, `end recv: why` or `end send: why`. */
static void echo_serve(int fd, long close_after)
{
    uint8_t *buf = malloc(MSG_CAP);
    if (!buf)
        fail("out of memory");
    want_rcvinfo(fd);
    long n = 0;
    for (;;) {
        struct msg m = {0};
        int r;
        while ((r = recv_piece(fd, buf, &m)) == 2)
            ;
        if (r == 3)
            fail("echo: a notification arrived though none was subscribed");
        if (r == 0) {
            dprintf(1, "end shutdown msgs=%ld\n", n);
            break;
        }
        if (r < 0) {
            dprintf(1, "end recv: %s after %ld msgs\n", strerror(errno), n);
            break;
        }
        uint16_t fl = m.flags & SCTP_UNORDERED;
        if (send_msg(fd, buf, m.len, m.sid, m.ppid, fl) != (ssize_t)m.len) {
            dprintf(1, "end send: %zu bytes on stream %u: %s\n", m.len, m.sid,
                    strerror(errno));
            break;
        }
        if (++n == close_after) {
            shutdown(fd, SHUT_WR);
            while (recv(fd, buf, MSG_CAP, 0) > 0)
                ;
            dprintf(1, "end close-after\n");
            break;
        }
    }
    close(fd);
    free(buf);
}

static int cmd_echo(int argc, char **argv)
{
    if (argc != 2 && !(argc == 4 && !strcmp(argv[2], "--close-after")))
        usage("echo ADDR PORT [--close-after N]");
    long close_after = argc == 4 ? parse_num(argv[3], 1, 1L << 30) : 0;
    struct sockaddr_storage ss;
    socklen_t len = parse_addr(argv[0], argv[1], &ss);
    int fd = sctp_socket(ss.ss_family, 64);
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0)
        fail("bind %s port %s: %s", argv[0], argv[1], strerror(errno));
    if (listen(fd, 128) < 0)
        fail("listen: %s", strerror(errno));
    signal(SIGCHLD, SIG_IGN); /* children reaped by the kernel */
    printf("listening\n");
    fflush(stdout);
    for (;;) {
        int c = accept(fd, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            fail("accept: %s", strerror(errno));
        }
        pid_t pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* killing the server ends all */
            close(fd);
            echo_serve(c, close_after);
            _exit(0);
        }
        if (pid < 0)
            fail("fork: %s", strerror(errno));
        close(c);
    }
}

/* dockerd 29's handover: a bound, listening socket as fd 4 (SCTP, or TCP
 * with --tcp to check that berth refuses the wrong protocol). */
static int cmd_listen_exec(int argc, char **argv)
{
    int tcp = argc > 2 && !strcmp(argv[2], "--tcp");
    int dd = 2 + tcp;
    if (argc < dd + 2 || strcmp(argv[dd], "--"))
        usage("listen-exec ADDR PORT [--tcp] -- PROG ARGS...");
    struct sockaddr_storage ss;
    socklen_t len = parse_addr(argv[0], argv[1], &ss);
    int fd = socket(ss.ss_family, SOCK_STREAM, tcp ? IPPROTO_TCP : IPPROTO_SCTP);
    if (fd < 0)
        fail("socket: %s", strerror(errno));
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 128) < 0)
        fail("bind/listen %s port %s: %s", argv[0], argv[1], strerror(errno));
    if (fd != 4 && dup2(fd, 4) < 0)
        fail("dup2: %s", strerror(errno));
    if (fd != 4)
        close(fd);
    fcntl(4, F_SETFD, 0); /* berth must inherit it */
    execvp(argv[dd + 1], argv + dd + 1);
    fail("exec %s: %s", argv[dd + 1], strerror(errno));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage("echo|client|listen-exec ...");
    if (!strcmp(argv[1], "echo"))
        return cmd_echo(argc - 2, argv + 2);
    if (!strcmp(argv[1], "client"))
        return cmd_client(argc - 2, argv + 2);
    if (!strcmp(argv[1], "listen-exec"))
        return cmd_listen_exec(argc - 2, argv + 2);
    usage("unknown subcommand");
    return 2;
}
