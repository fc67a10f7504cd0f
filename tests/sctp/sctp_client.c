/*
 * sctp_peer client: N associations at once, each sending messages of 1 byte
 * to --max bytes round-robin over --streams streams with a distinct PPID
 * each, --window of them in flight, and checking every echo: whole,
 * byte-exact, same stream and PPID (and unordered flag with --unordered).
 * Then a clean end: our shutdown completes (SCTP_SHUTDOWN_COMP), or with
 * --expect-close-after N the peer shuts down after N echoes, or with
 * --expect-end the association ends (shutdown or abort) before any echo.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/sctp.h>

#include "sctp_peer.h"

enum {
    MAX_ASSOCS = 256,
    MAX_WINDOW = 16,
    PPID_IDX_BITS = 20, /* ppid = assoc << 20 | message index */
};

/* Sizes every association sends first: the edges of 1500-byte MTU
 * fragments and of docker-proxy's 32,736-byte copy buffer. */
static const size_t fixed_sizes[] = {1,     2,     100,   1452,  1453, 16384,
                                     32736, 32737, 48000, 60000, 65000};
enum { N_FIXED = sizeof fixed_sizes / sizeof fixed_sizes[0], PER_ROUND = 25 };
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The client's plan: which size, stream and bytes message i of association
 * a has, all derived from (a, i) so that an echo is checked on its own. */
struct plan {
    int assocs, streams, window, unordered;
    size_t max, total; /* largest message; messages per association */
    long close_after;  /* --expect-close-after, else 0 */
    int expect_end;    /* --expect-end */
    double timeout, connect_wait;
};

static uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static size_t msg_size(const struct plan *p, int a, size_t i)
{
    size_t k = i % PER_ROUND;
    if (k < N_FIXED)
        return fixed_sizes[k] < p->max ? fixed_sizes[k] : p->max;
    uint32_t s = 0x9e3779b9u ^ (uint32_t)(a * 1000003 + (long)i * 7919);
    xorshift(&s);
    uint32_t r = xorshift(&s);
    return 1 + (k % 2 ? r % 1500 : r % p->max); /* half small, half any size */
}

static uint16_t msg_flags(const struct plan *p, size_t i)
{
    return p->unordered && i % 4 == 3 ? SCTP_UNORDERED : 0;
}

static void fill(uint8_t *buf, size_t len, int a, size_t i)
{
    uint32_t s = (uint32_t)(a * 7919 + (long)i * 104729 + 1), w = 0;
    for (size_t j = 0; j < len; j++, w >>= 8) {
        if (j % 4 == 0)
            w = xorshift(&s);
        buf[j] = (uint8_t)w;
    }
}

struct assoc {
    int fd;
    size_t next, echoed; /* messages sent; messages back and checked */
    uint32_t inflight[MAX_WINDOW];
    int n_inflight, blocked, shut, done;
    struct msg in;
    uint8_t *rbuf;
};

static int open_assoc(const struct plan *p, const struct sockaddr_storage *ss,
                      socklen_t len)
{
    double until = now_s() + p->connect_wait;
    for (;;) {
        int fd = sctp_socket(ss->ss_family, p->streams);
        want_rcvinfo(fd);
        if (connect(fd, (const struct sockaddr *)ss, len) == 0) {
            /* The end of an association we shut down ourselves shows as
             * SHUTDOWN_COMP (recv does not return 0 then), an abort as
             * COMM_LOST. */
            struct sctp_event ev = {.se_type = SCTP_ASSOC_CHANGE, .se_on = 1};
            if (setsockopt(fd, IPPROTO_SCTP, SCTP_EVENT, &ev, sizeof ev) < 0)
                fail("SCTP_EVENT: %s", strerror(errno));
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
            return fd;
        }
        int e = errno;
        close(fd);
        if (e != ECONNREFUSED || now_s() >= until)
            fail("connect: %s", strerror(e));
        usleep(50 * 1000);
    }
}

/* An echo came back whole: it must be one of ours still in flight, with
 * its size, stream, flags and bytes. */
static void check_echo(const struct plan *p, struct assoc *as, int a, uint8_t *scratch)
{
    struct msg *m = &as->in;
    if (!m->have_info)
        fail("assoc %d: an echo came without SCTP_RCVINFO", a);
    size_t i = m->ppid & ((1u << PPID_IDX_BITS) - 1);
    int k = 0;
    while (k < as->n_inflight && as->inflight[k] != m->ppid)
        k++;
    if (m->ppid >> PPID_IDX_BITS != (uint32_t)a || k == as->n_inflight)
        fail("assoc %d: echo with PPID %#x matches no message in flight", a, m->ppid);
    as->inflight[k] = as->inflight[--as->n_inflight];
    size_t want = msg_size(p, a, i);
    if (m->len != want)
        fail("assoc %d msg %zu: echo of %zu bytes, sent %zu (split or joined)", a, i,
             m->len, want);
    if (m->sid != i % (size_t)p->streams)
        fail("assoc %d msg %zu: echo on stream %u, sent on %zu", a, i, m->sid,
             i % (size_t)p->streams);
    if (p->unordered && (m->flags & SCTP_UNORDERED) != msg_flags(p, i))
        fail("assoc %d msg %zu: unordered flag %s", a, i,
             msg_flags(p, i) ? "lost" : "added");
    fill(scratch, want, a, i);
    if (memcmp(scratch, as->rbuf, want)) {
        size_t j = 0;
        while (scratch[j] == as->rbuf[j])
            j++;
        fail("assoc %d msg %zu (%zu bytes): content differs from byte %zu", a, i, want,
             j);
    }
    as->echoed++;
}

/* The association ended (recv 0, or err != 0 for an error): expected or
 * not, per the mode. */
static void ended(const struct plan *p, struct assoc *as, int a, int err, int *aborts)
{
    if (p->expect_end) {
        if (as->echoed)
            fail("assoc %d: an echo came back, expected the association to end", a);
        *aborts += err != 0;
    } else if (err) {
        fail("assoc %d: %s after %zu of %zu echoes", a, strerror(err), as->echoed,
             p->close_after ? (size_t)p->close_after : p->total);
    } else if (p->close_after ? as->echoed != (size_t)p->close_after
                              : !as->shut || as->echoed != p->total) {
        fail("assoc %d: the peer ended the association after %zu echoes, expected %zu",
             a, as->echoed, p->close_after ? (size_t)p->close_after : p->total);
    }
    as->done = 1;
    close(as->fd);
}

static void pump_in(const struct plan *p, struct assoc *as, int a, uint8_t *scratch,
                    int *aborts)
{
    for (;;) {
        int r = recv_piece(as->fd, as->rbuf, &as->in);
        if (r == 1) {
            if (p->expect_end)
                fail("assoc %d: an echo came back, expected the association to end",
                     a);
            check_echo(p, as, a, scratch);
            as->in = (struct msg){0};
        } else if (r == 3) {
            int note = as->in.note;
            as->in.note = 0;
            if (note == SCTP_SHUTDOWN_COMP || note == SCTP_COMM_LOST) {
                ended(p, as, a, note == SCTP_COMM_LOST ? ECONNRESET : 0, aborts);
                return;
            }
        } else if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            ended(p, as, a, r ? errno : 0, aborts);
            return;
        } else if (r < 0) {
            return;
        }
    }
}

static void pump_out(const struct plan *p, struct assoc *as, int a, uint8_t *scratch,
                     int *aborts)
{
    size_t limit = p->close_after ? (size_t)p->close_after : p->total;
    while (!as->done && as->n_inflight < p->window && as->next < limit) {
        size_t i = as->next, len = msg_size(p, a, i);
        uint32_t ppid = (uint32_t)a << PPID_IDX_BITS | (uint32_t)i;
        fill(scratch, len, a, i);
        ssize_t n = send_msg(as->fd, scratch, len, (uint16_t)(i % (size_t)p->streams),
                             ppid, msg_flags(p, i));
        if (n < 0 && errno == EAGAIN) {
            as->blocked = 1; /* POLLOUT may come before room for all of it */
            return;
        }
        if (n < 0 && p->expect_end) {
            ended(p, as, a, errno, aborts);
            return;
        }
        if (n != (ssize_t)len)
            fail("assoc %d msg %zu: send %zu bytes: %s", a, i, len,
                 n < 0 ? strerror(errno) : "short");
        as->inflight[as->n_inflight++] = ppid;
        as->next++;
    }
    if (!p->close_after && !p->expect_end && !as->shut && as->echoed == p->total) {
        shutdown(as->fd, SHUT_WR);
        as->shut = 1;
    }
}

static void client_options(struct plan *p, int argc, char **argv)
{
    long rounds = 2;
    *p = (struct plan){.assocs = 8,
                       .streams = 8,
                       .window = 4,
                       .max = 65000,
                       .timeout = 60,
                       .connect_wait = 5};
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--unordered") || !strcmp(o, "--expect-end")) {
            *(o[2] == 'u' ? &p->unordered : &p->expect_end) = 1;
            continue;
        }
        if (!v)
            usage("an option without its value");
        i++;
        if (!strcmp(o, "--assocs"))
            p->assocs = (int)parse_num(v, 1, MAX_ASSOCS);
        else if (!strcmp(o, "--rounds"))
            rounds = parse_num(v, 1, 1000);
        else if (!strcmp(o, "--streams"))
            p->streams = (int)parse_num(v, 1, 1024);
        else if (!strcmp(o, "--max"))
            p->max = (size_t)parse_num(v, 1, MSG_CAP);
        else if (!strcmp(o, "--window"))
            p->window = (int)parse_num(v, 1, MAX_WINDOW);
        else if (!strcmp(o, "--timeout"))
            p->timeout = (double)parse_num(v, 1, 3600);
        else if (!strcmp(o, "--connect-wait"))
            p->connect_wait = (double)parse_num(v, 0, 3600);
        else if (!strcmp(o, "--expect-close-after"))
            p->close_after = parse_num(v, 1, 1L << PPID_IDX_BITS);
        else
            usage("unknown client option");
    }
    p->total = (size_t)rounds * PER_ROUND;
    if (p->expect_end)
        p->total = 1, p->window = 1;
}

int cmd_client(int argc, char **argv)
{
    if (argc < 2)
        usage("client ADDR PORT [options]");
    struct plan p;
    client_options(&p, argc, argv);
    struct sockaddr_storage ss;
    socklen_t len = parse_addr(argv[0], argv[1], &ss);
    static struct assoc as[MAX_ASSOCS];
    static struct pollfd pf[MAX_ASSOCS];
    uint8_t *scratch = malloc(MSG_CAP);
    if (!scratch)
        fail("out of memory");
    for (int a = 0; a < p.assocs; a++) {
        as[a] = (struct assoc){.fd = open_assoc(&p, &ss, len),
                               .rbuf = malloc(MSG_CAP)};
        if (!as[a].rbuf)
            fail("out of memory");
        struct sctp_status st = {0};
        socklen_t sl = sizeof st;
        if (getsockopt(as[a].fd, IPPROTO_SCTP, SCTP_STATUS, &st, &sl) < 0)
            fail("SCTP_STATUS: %s", strerror(errno));
        if (st.sstat_outstrms < p.streams)
            fail("assoc %d has %u outbound streams, --streams asked %d", a,
                 st.sstat_outstrms, p.streams);
        if (st.sstat_instrms < p.streams)
            fail(
                "assoc %d has %u inbound streams: echoes on the %d streams of --streams "
                "cannot all come back",
                a, st.sstat_instrms, p.streams);
    }
    double deadline = now_s() + p.timeout;
    int aborts = 0, left = p.assocs;
    size_t limit = p.close_after ? (size_t)p.close_after : p.total;
    while (left) {
        int any_blocked = 0;
        for (int a = 0; a < p.assocs; a++) {
            if (!as[a].done)
                pump_out(&p, &as[a], a, scratch, &aborts);
            pf[a] = (struct pollfd){.fd = as[a].done ? -1 : as[a].fd,
                                    .events = POLLIN};
            if (as[a].blocked)
                any_blocked = 1, as[a].blocked = 0;
            else if (as[a].next < limit && as[a].n_inflight < p.window)
                pf[a].events |= POLLOUT;
        }
        if (poll(pf, (nfds_t)p.assocs, any_blocked ? 2 : 200) < 0 && errno != EINTR)
            fail("poll: %s", strerror(errno));
        left = 0;
        for (int a = 0; a < p.assocs; a++) {
            if (!as[a].done && pf[a].revents & (POLLIN | POLLERR | POLLHUP))
                pump_in(&p, &as[a], a, scratch, &aborts);
            left += !as[a].done;
        }
        if (left && now_s() > deadline) {
            int a = 0;
            while (as[a].done)
                a++;
            fail(
                "timeout after %.0f s: assoc %d sent %zu, %zu echoes back, %d associations "
                "open",
                p.timeout, a, as[a].next, as[a].echoed, left);
        }
    }
    size_t msgs = 0;
    unsigned long long bytes = 0;
    for (int a = 0; a < p.assocs; a++) {
        msgs += as[a].echoed;
        for (size_t i = 0; i < as[a].echoed; i++)
            bytes += msg_size(&p, a, i);
        free(as[a].rbuf);
    }
    free(scratch);
    if (p.expect_end)
        printf("ok assocs=%d ended shutdown=%d abort=%d\n", p.assocs,
               p.assocs - aborts, aborts);
    else
        printf("ok assocs=%d msgs=%zu bytes=%llu max=%zu streams=%d\n", p.assocs, msgs,
               bytes, p.max, p.streams);
    return 0;
}
