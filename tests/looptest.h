/* What every in-process suite needs to drive an event loop from the test's
 * own thread: a clock, the test's patience, loopback sockets and a bounded
 * pump. Helpers take the event_base to pump, never a fixture, so the relay
 * fixture (testnet.h) and the DNS fixture (dnsfx.h) share them.
 *
 * Patience: every wait a test bounds only so that it cannot hang (pump
 * deadlines, receive timeouts, settle sleeps, Check's tcase timeouts) is
 * multiplied by BERTH_TEST_TIME_SCALE (default 1), for slow or loaded
 * machines and sanitizer builds. Durations that are the behaviour under test
 * are not: timeouts berth is configured with, the pace of traffic kept up
 * against them, and assertions on how long something took. */
#ifndef BERTH_LOOPTEST_H
#define BERTH_LOOPTEST_H

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "berth/sockaddr.h"

/* BERTH_TEST_TIME_SCALE, read on first use (main's t_tcase_timeout, before
 * Check forks, so every test inherits it). Not a positive number: the suite
 * stops and says so rather than run with a patience nobody asked for. */
static inline double t_time_scale(void)
{
    static double scale;
    if (scale == 0) {
        const char *s = getenv("BERTH_TEST_TIME_SCALE");
        char *end = NULL;
        scale = s && *s ? strtod(s, &end) : 1;
        if (s && *s && (*end != '\0' || !(scale > 0))) {
            fprintf(stderr, "BERTH_TEST_TIME_SCALE=%s: want a positive number\n", s);
            exit(EXIT_FAILURE);
        }
    }
    return scale;
}

/* ms of patience, scaled. */
static inline uint64_t t_patience(uint64_t ms)
{
    return (uint64_t)((double)ms * t_time_scale() + 0.5);
}

/* Check's per-test limit, in seconds of patience. */
static inline void t_tcase_timeout(TCase *tc, double seconds)
{
    tcase_set_timeout(tc, seconds * t_time_scale());
}

static inline uint64_t t_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Sleeps while the kernel finishes something the test cannot poll for
 * (handshakes landing in a backlog); ms is patience. */
static inline void t_settle(uint64_t ms)
{
    usleep((useconds_t)(t_patience(ms) * 1000));
}

static inline struct addr t_addr(const char *ip, uint16_t port)
{
    struct addr a;
    ck_assert_int_eq(addr_from_ip(&a, ip, port), 0);
    return a;
}

/* One non-blocking pass of the loop. */
static inline void t_pump(struct event_base *base)
{
    event_base_loop(base, EVLOOP_NONBLOCK);
}

/* Runs the loop (sleeping 1 ms between passes) until cond holds or ms of
 * patience elapse; the value of cond at the end. */
#define PUMP_UNTIL(base, ms, cond)                                                    \
    ({                                                                                \
        uint64_t deadline_ = t_now_ms() + t_patience(ms);                             \
        bool ok_;                                                                     \
        while (!(ok_ = (cond)) && t_now_ms() < deadline_) {                           \
            t_pump(base);                                                             \
            usleep(1000);                                                             \
        }                                                                             \
        ok_;                                                                          \
    })

/* Runs the loop for exactly ms, not scaled: for a pace the test sets
 * against a timeout it configured. */
static inline void t_pump_for(struct event_base *base, uint64_t ms)
{
    uint64_t end = t_now_ms() + ms;
    while (t_now_ms() < end) {
        t_pump(base);
        usleep(1000);
    }
}

/* A non-blocking socket bound to ip:0 (TCP: listening); *bound gets the
 * address. */
static inline int t_bind(const char *ip, int type, struct addr *bound)
{
    struct addr a = t_addr(ip, 0);
    int fd = sock_bind(&a, type);
    ck_assert_msg(fd >= 0, "bind %s:0: %s", ip, strerror(errno));
    bound->len = sizeof bound->ss;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&bound->ss, &bound->len), 0);
    return fd;
}

/* A non-blocking TCP connect to a, under way or done. */
static inline int t_connect(const struct addr *a)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(fd, 0);
    int r = connect(fd, (const struct sockaddr *)&a->ss, a->len);
    ck_assert(r == 0 || errno == EINPROGRESS);
    return fd;
}

/* A non-blocking, unbound UDP socket of to's family. */
static inline int t_udp_client(const struct addr *to)
{
    int fd = socket(to->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(fd, 0);
    return fd;
}

/* Accepts one connection on lfd (non-blocking), pumping meanwhile. */
static inline int t_accept(struct event_base *base, int lfd)
{
    int c = -1;
    PUMP_UNTIL(base, 5000, (c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0);
    ck_assert_msg(c >= 0, "no connection to accept");
    return c;
}

/* recvfrom that pumps the loop until something (data, EOF or an error
 * other than EAGAIN) arrives or ms of patience pass; from may be NULL.
 * Returns recvfrom's result; errno is kept. */
static inline ssize_t t_recvfrom(struct event_base *base, int fd, void *buf,
                                 size_t len, struct addr *from, uint64_t ms)
{
    ssize_t r = -1;
    struct sockaddr *sa = from ? (struct sockaddr *)&from->ss : NULL;
    socklen_t *salen = from ? &from->len : NULL;
    PUMP_UNTIL(base, ms, ({
                   if (salen)
                       *salen = sizeof from->ss;
                   r = recvfrom(fd, buf, len, MSG_DONTWAIT, sa, salen);
                   r >= 0 || errno != EAGAIN;
               }));
    return r;
}

static inline ssize_t t_recv(struct event_base *base, int fd, void *buf, size_t len,
                             uint64_t ms)
{
    return t_recvfrom(base, fd, buf, len, NULL, ms);
}

/* Writes all of buf on a non-blocking socket, pumping the loop. */
static inline void t_send_all(struct event_base *base, int fd, const void *buf,
                              size_t len)
{
    size_t done = 0;
    uint64_t end = t_now_ms() + t_patience(10000);
    while (done < len) {
        ck_assert_msg(t_now_ms() < end, "send stalled");
        ssize_t w = send(fd, (const char *)buf + done, len - done, MSG_NOSIGNAL);
        if (w > 0)
            done += (size_t)w;
        else
            ck_assert_msg(errno == EAGAIN || errno == ENOTCONN, "send: %s",
                          strerror(errno));
        t_pump(base);
    }
}

/* Open fds of this process. */
static inline int t_count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the DIR's own fd */
}

/* Whether ::1 can be bound here. */
static inline bool t_have_ipv6(void)
{
    struct addr six = t_addr("::1", 0);
    int fd = socket(AF_INET6, SOCK_DGRAM, 0);
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&six.ss, six.len) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

#endif
