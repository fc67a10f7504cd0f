/*
 * udp_echo: a tiny echo server used as a backend by the end-to-end tests and
 * copied (statically linked) into the dockerd drop-in test image.
 *
 *   udp_echo [-4|-6] [-t] [-r] [-b ADDR] PORT
 *
 * Echoes every UDP datagram back to its sender, byte for byte, from the
 * address it was sent to (0-byte datagrams included, up to 65535 bytes).
 * With -t it also echoes TCP on the same port. -4 (default) binds 0.0.0.0,
 * -6 binds :: dual-stack, -b binds one address. Prints nothing, except that
 * PORT 0 picks a free port and prints its number on stdout, so a test can
 * start it without racing for a port. Runs until killed.
 *
 * -r (report) answers with the peer's address instead of echoing: each UDP
 * datagram gets one datagram "IP PORT\n" back, each TCP connection gets the
 * line and is closed (the client sends nothing). The transparent-mode test
 * reads it to see whom the server in the container believes it talks to.
 *
 * Only inet_pton/inet_ntop and plain syscalls: it must link with -static.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* struct in_pktinfo, accept4 */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_TCP 1024
#define TCP_BUF 65536

struct tcp_conn {
    int fd;
    size_t len; /* bytes in buf waiting to be written back */
    size_t off;
    char buf[TCP_BUF];
};

static void usage(void)
{
    fprintf(stderr, "usage: udp_echo [-4|-6] [-t] [-r] [-b ADDR] PORT\n");
    exit(2);
}

static int parse_addr(const char *text, int family_hint, struct sockaddr_storage *ss,
                      socklen_t *len)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    if (text == NULL)
        text = family_hint == AF_INET6 ? "::" : "0.0.0.0";
    if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        *len = sizeof(*sin);
        return 0;
    }
    if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        *len = sizeof(*sin6);
        return 0;
    }
    return -1;
}

static void set_port(struct sockaddr_storage *ss, unsigned port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((unsigned short)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((unsigned short)port);
}

static unsigned get_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static int open_socket(const struct sockaddr_storage *ss, socklen_t len, int type)
{
    int one = 1, zero = 0;
    int fd = socket(ss->ss_family, type | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    if (type == SOCK_STREAM)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, (const struct sockaddr *)ss, len) < 0) {
        int e = errno; /* the caller tells EADDRINUSE apart */
        close(fd);
        errno = e;
        return -1;
    }
    if (type == SOCK_STREAM && listen(fd, 1024) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * "IP PORT\n" of a peer into out; returns its length, 0 if it did not fit.
 * An IPv4 client of a dual-stack socket prints as ::ffff:a.b.c.d.
 */
static size_t format_peer(const struct sockaddr_storage *peer, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    const void *a =
        peer->ss_family == AF_INET
            ? (const void *)&((const struct sockaddr_in *)peer)->sin_addr
            : (const void *)&((const struct sockaddr_in6 *)peer)->sin6_addr;
    int n;

    if (inet_ntop(peer->ss_family, a, ip, sizeof(ip)) == NULL)
        return 0;
    n = snprintf(out, cap, "%s %u\n", ip, get_port(peer));
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/*
 * Reply from the address the datagram was sent to, so a wildcard-bound echo
 * server answers from the right source (IP_PKTINFO / IPV6_RECVPKTINFO).
 */
static void udp_echo_one(int fd, int report, char *buf, size_t cap)
{
    struct sockaddr_storage peer;
    char cbuf[256];
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    struct msghdr msg = {
        .msg_name = &peer,
        .msg_namelen = sizeof(peer),
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = cbuf,
        .msg_controllen = sizeof(cbuf),
    };
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
    struct cmsghdr *c;

    if (n < 0)
        return;
    iov.iov_len = (size_t)n;
    if (report && (iov.iov_len = format_peer(&peer, buf, cap)) == 0)
        return;
    /* Keep only the pktinfo cmsg, cleared of the interface index. */
    for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo *pi = (struct in_pktinfo *)CMSG_DATA(c);
            pi->ipi_ifindex = 0;
            pi->ipi_spec_dst = pi->ipi_addr;
            break;
        }
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo *pi = (struct in6_pktinfo *)CMSG_DATA(c);
            pi->ipi6_ifindex = 0;
            break;
        }
    }
    if (c != NULL) {
        /* Move the one cmsg we keep to the front of the buffer. */
        size_t clen = c->cmsg_len;
        memmove(cbuf, c, clen);
        msg.msg_control = cbuf;
        msg.msg_controllen = CMSG_SPACE(clen - CMSG_LEN(0));
    } else {
        msg.msg_control = NULL;
        msg.msg_controllen = 0;
    }
    msg.msg_flags = 0;
    if (sendmsg(fd, &msg, 0) < 0 && msg.msg_control != NULL) {
        /* Fall back to letting the kernel choose the source. */
        msg.msg_control = NULL;
        msg.msg_controllen = 0;
        (void)sendmsg(fd, &msg, 0);
    }
}

static void tcp_close(struct tcp_conn **conns, int i)
{
    close(conns[i]->fd);
    free(conns[i]);
    conns[i] = NULL;
}

/* Returns 0 to keep the connection, -1 to close it. */
static int tcp_service(struct tcp_conn *c, short revents)
{
    ssize_t n;

    if (c->len > c->off && (revents & (POLLOUT | POLLERR | POLLHUP))) {
        n = write(c->fd, c->buf + c->off, c->len - c->off);
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        c->off += (size_t)n;
        if (c->off == c->len)
            c->off = c->len = 0;
        return 0;
    }
    if (c->len == 0 && (revents & (POLLIN | POLLERR | POLLHUP))) {
        n = read(c->fd, c->buf, sizeof(c->buf));
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        if (n == 0)
            return -1;
        c->len = (size_t)n;
        c->off = 0;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int family = AF_INET, tcp = 0, report = 0, opt, one = 1;
    const char *bind_text = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen;
    unsigned long port;
    char *end;
    int ufd, tfd = -1;
    static struct tcp_conn *conns[MAX_TCP];
    static struct pollfd pfds[MAX_TCP + 2];
    static char dgram[65536];

    while ((opt = getopt(argc, argv, "46trb:")) != -1) {
        switch (opt) {
        case '4':
            family = AF_INET;
            break;
        case '6':
            family = AF_INET6;
            break;
        case 't':
            tcp = 1;
            break;
        case 'r':
            report = 1;
            break;
        case 'b':
            bind_text = optarg;
            break;
        default:
            usage();
        }
    }
    if (optind != argc - 1)
        usage();
    port = strtoul(argv[optind], &end, 10);
    if (*argv[optind] == '\0' || *end != '\0' || port > 65535)
        usage();
    if (parse_addr(bind_text, family, &ss, &sslen) < 0)
        usage();
    signal(SIGPIPE, SIG_IGN);

    /* With PORT 0 and -t, the port the kernel picks for UDP may be taken
     * for TCP (a busy host's connections use the same range): pick again
     * rather than fail. */
    for (int tries = 0;; tries++) {
        set_port(&ss, (unsigned)port);
        ufd = open_socket(&ss, sslen, SOCK_DGRAM);
        if (ufd < 0) {
            perror("udp_echo: udp bind");
            return 1;
        }
        if (port == 0) {
            /* Learn the port, then use the same one for TCP. */
            struct sockaddr_storage got;
            socklen_t glen = sizeof(got);
            getsockname(ufd, (struct sockaddr *)&got, &glen);
            set_port(&ss, get_port(&got));
        }
        if (!tcp)
            break;
        tfd = open_socket(&ss, sslen, SOCK_STREAM);
        if (tfd >= 0)
            break;
        if (port != 0 || errno != EADDRINUSE || tries == 100) {
            perror("udp_echo: tcp bind");
            return 1;
        }
        close(ufd);
    }
    if (tfd >= 0)
        fcntl(tfd, F_SETFL, O_NONBLOCK);
    if (ss.ss_family == AF_INET)
        setsockopt(ufd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
    if (ss.ss_family == AF_INET6) {
        setsockopt(ufd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
        setsockopt(ufd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
    }
    if (port == 0) {
        printf("%u\n", get_port(&ss));
        fflush(stdout);
    }

    for (;;) {
        int nfds = 0, i, map[MAX_TCP];

        pfds[nfds].fd = ufd;
        pfds[nfds++].events = POLLIN;
        if (tfd >= 0) {
            pfds[nfds].fd = tfd;
            pfds[nfds++].events = POLLIN;
        }
        for (i = 0; i < MAX_TCP; i++) {
            if (conns[i] == NULL)
                continue;
            map[nfds - 2] = i;
            pfds[nfds].fd = conns[i]->fd;
            pfds[nfds++].events = conns[i]->len ? POLLOUT : POLLIN;
        }
        if (poll(pfds, (nfds_t)nfds, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("udp_echo: poll");
            return 1;
        }
        if (pfds[0].revents & POLLIN) {
            /* Drain a bounded batch so TCP is not starved. */
            for (i = 0; i < 64; i++) {
                struct pollfd p = {.fd = ufd, .events = POLLIN};

                udp_echo_one(ufd, report, dgram, sizeof(dgram));
                if (poll(&p, 1, 0) <= 0)
                    break;
            }
        }
        if (tfd < 0)
            continue;
        for (i = 2; i < nfds; i++) {
            if (pfds[i].revents == 0)
                continue;
            if (tcp_service(conns[map[i - 2]], pfds[i].revents) < 0)
                tcp_close(conns, map[i - 2]);
        }
        if (pfds[1].revents & POLLIN) {
            for (;;) {
                struct sockaddr_storage peer;
                socklen_t plen = sizeof(peer);
                int cfd = accept4(tfd, (struct sockaddr *)&peer, &plen,
                                  SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0)
                    break;
                if (report) {
                    /* A few bytes into an empty send buffer: one write. */
                    size_t len = format_peer(&peer, dgram, sizeof(dgram));
                    if (len > 0 && write(cfd, dgram, len) < 0)
                        perror("udp_echo: report");
                    close(cfd);
                    continue;
                }
                for (i = 0; i < MAX_TCP && conns[i] != NULL; i++)
                    ;
                if (i == MAX_TCP ||
                    (conns[i] = calloc(1, sizeof(*conns[i]))) == NULL) {
                    close(cfd);
                    continue;
                }
                conns[i]->fd = cfd;
            }
        }
    }
}
