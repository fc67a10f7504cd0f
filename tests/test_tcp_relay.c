/* The TCP relay in process: berth, client and backend on one loop thread,
 * all on loopback. */
#include "check_run.h"
#include <netinet/in.h>
#include <poll.h>
#include <netinet/tcp.h>
#include <sys/resource.h>

#include "berth/pipe_pool.h"
#include "testnet.h"

struct pair {
    struct relay_fx f;
    int backend_listener;
    int client, backend;
};

static void open_pair(struct pair *p, void (*tune)(struct relay_ctx *))
{
    struct addr target;
    p->backend_listener = t_bind("127.0.0.1", SOCK_STREAM, &target);
    relay_fx_start(&p->f, PROTO_TCP, "127.0.0.1", &target, tune);
    p->client = t_connect(&p->f.front);
    p->backend = t_accept(p->f.base, p->backend_listener);
}

static void close_pair(struct pair *p)
{
    if (p->client >= 0)
        close(p->client);
    if (p->backend >= 0)
        close(p->backend);
    close(p->backend_listener);
    relay_fx_stop(&p->f);
}

static void no_splice(struct relay_ctx *ctx) { ctx->no_splice = true; }

static void integrity(void (*tune)(struct relay_ctx *))
{
    struct pair p;
    open_pair(&p, tune);
    t_transfer(p.f.base, p.client, p.backend, 24u << 20);
    t_transfer(p.f.base, p.backend, p.client, 24u << 20);
    t_transfer(p.f.base, p.client, p.backend, 1);
    close_pair(&p);
}

START_TEST(test_integrity_splice) { integrity(NULL); }
END_TEST

START_TEST(test_integrity_buffered) { integrity(no_splice); }
END_TEST

/* libevent without epoll (no edge triggering): the target's socket is
 * watched level-triggered instead, and everything still flows. */
START_TEST(test_poll_backend)
{
    ck_assert_int_eq(setenv("EVENT_NOEPOLL", "1", 1), 0);
    struct pair p;
    open_pair(&p, NULL);
    ck_assert_str_ne(event_base_get_method(p.f.base), "epoll");
    t_transfer(p.f.base, p.client, p.backend, 4u << 20);
    t_transfer(p.f.base, p.backend, p.client, 4u << 20);
    char buf[8];
    ck_assert_int_eq(shutdown(p.backend, SHUT_WR), 0);
    ck_assert_int_eq(t_recv(p.f.base, p.client, buf, sizeof buf, 3000), 0);
    t_transfer(p.f.base, p.client, p.backend, 1000);
    close_pair(&p);
    unsetenv("EVENT_NOEPOLL");
}
END_TEST

/* Splice-auto: a small exchange is copied through the loop's buffer and
 * borrows no pipe; a bulk transfer (a read of 16 KiB or more) goes
 * through a pipe, which comes back to the pool after. */
START_TEST(test_small_exchange_copies_bulk_splices)
{
    struct pair p;
    open_pair(&p, NULL);
    struct pipe_pool *pool = berth_ctx(p.f.b)->pipes;
    for (int i = 0; i < 5; i++) {
        t_transfer(p.f.base, p.client, p.backend, 100);
        t_transfer(p.f.base, p.backend, p.client, 2000);
    }
    ck_assert_uint_eq(pipe_pool_idle(pool), 0);
    t_transfer(p.f.base, p.backend, p.client, 8u << 20);
    ck_assert_uint_ge(pipe_pool_idle(pool), 1);
    /* Small again after bulk: still intact, either way. */
    t_transfer(p.f.base, p.backend, p.client, 10);
    t_transfer(p.f.base, p.client, p.backend, 10);
    close_pair(&p);
}
END_TEST

/* A target that speaks first and closes at once: its bytes and FIN may
 * come with the connect's completion (one edge-triggered report), and
 * must still reach the client, followed by EOF. */
START_TEST(test_target_speaks_and_closes_at_once)
{
    struct pair p;
    struct addr target;
    p.backend_listener = t_bind("127.0.0.1", SOCK_STREAM, &target);
    relay_fx_start(&p.f, PROTO_TCP, "127.0.0.1", &target, NULL);
    p.client = t_connect(&p.f.front);
    /* berth accepts and starts its connect; the backend answers before
     * berth's loop looks at the connect again. */
    for (int i = 0; i < 200; i++) {
        event_base_loop(p.f.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        struct pollfd pfd = {.fd = p.backend_listener, .events = POLLIN};
        if (poll(&pfd, 1, 10) == 1)
            break;
    }
    p.backend = accept(p.backend_listener, NULL, NULL);
    ck_assert_int_ge(p.backend, 0);
    const char banner[] = "220 hello\r\n";
    ck_assert_int_eq(send(p.backend, banner, sizeof banner - 1, 0),
                     (ssize_t)(sizeof banner - 1));
    ck_assert_int_eq(shutdown(p.backend, SHUT_WR), 0);
    char buf[64];
    size_t got = 0;
    ssize_t n;
    while ((n = t_recv(p.f.base, p.client, buf + got, sizeof buf - got, 3000)) > 0)
        got += (size_t)n;
    ck_assert_int_eq(n, 0); /* EOF, not a reset or a stall */
    ck_assert_uint_eq(got, sizeof banner - 1);
    ck_assert(memcmp(buf, banner, got) == 0);
    /* The client's side still open: the session waits for it. */
    t_transfer(p.f.base, p.client, p.backend, 500);
    close_pair(&p);
}
END_TEST

/* Each side's FIN reaches the other while the opposite direction still
 * flows; the session ends only when both directions are done. */
static void half_close(void (*tune)(struct relay_ctx *), bool client_first)
{
    struct pair p;
    open_pair(&p, tune);
    int first = client_first ? p.client : p.backend;
    int second = client_first ? p.backend : p.client;
    char buf[64];
    t_transfer(p.f.base, first, second, 1000);
    ck_assert_int_eq(shutdown(first, SHUT_WR), 0);
    ck_assert_int_eq(t_recv(p.f.base, second, buf, sizeof buf, 3000), 0);
    t_transfer(p.f.base, second, first, 300000); /* the other way still works */
    ck_assert_uint_eq(berth_tcp_sessions(p.f.b), 1);
    ck_assert_int_eq(shutdown(second, SHUT_WR), 0);
    ck_assert_int_eq(t_recv(p.f.base, first, buf, sizeof buf, 3000), 0);
    ck_assert(PUMP_UNTIL(p.f.base, 3000, berth_tcp_sessions(p.f.b) == 0));
    close_pair(&p);
}

START_TEST(test_half_close_client_first) { half_close(NULL, true); }
END_TEST

START_TEST(test_half_close_backend_first) { half_close(NULL, false); }
END_TEST

START_TEST(test_half_close_buffered) { half_close(no_splice, true); }
END_TEST

START_TEST(test_reset_propagates)
{
    struct pair p;
    open_pair(&p, NULL);
    t_transfer(p.f.base, p.client, p.backend, 100);
    sock_set_reset_on_close(p.backend);
    close(p.backend);
    p.backend = -1;
    char buf[16];
    ck_assert_int_eq(t_recv(p.f.base, p.client, buf, sizeof buf, 3000), -1);
    ck_assert_int_eq(errno, ECONNRESET);
    ck_assert(PUMP_UNTIL(p.f.base, 3000, berth_tcp_sessions(p.f.b) == 0));
    close_pair(&p);
}
END_TEST

START_TEST(test_refused_backend_resets_client_fast)
{
    struct relay_fx f;
    struct addr target;
    int gone = t_bind("127.0.0.1", SOCK_STREAM, &target);
    close(gone); /* nothing listens there now */
    relay_fx_start(&f, PROTO_TCP, "127.0.0.1", &target, NULL);
    int c = t_connect(&f.front);
    uint64_t t0 = t_now_ms();
    char buf[4];
    ck_assert_int_eq(t_recv(f.base, c, buf, sizeof buf, 3000), -1);
    ck_assert_int_eq(errno, ECONNRESET);
    ck_assert_uint_lt(t_now_ms() - t0, 100);
    ck_assert_uint_eq(berth_tcp_sessions(f.b), 0);
    close(c);
    relay_fx_stop(&f);
}
END_TEST

static void short_connect_timeout(struct relay_ctx *ctx)
{
    ctx->connect_timeout.tv_sec = 0;
    ctx->connect_timeout.tv_usec = 300000;
}

/* A backend whose accept queue is full drops SYNs: connect hangs, and the
 * timeout must end the session. */
START_TEST(test_connect_timeout)
{
    struct addr target = t_addr("127.0.0.1", 0);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&target.ss, target.len), 0);
    ck_assert_int_eq(listen(lfd, 0), 0);
    target.len = sizeof target.ss;
    getsockname(lfd, (struct sockaddr *)&target.ss, &target.len);
    int fillers[4];
    for (int i = 0; i < 4; i++)
        fillers[i] = t_connect(&target);
    t_settle(100);
    struct relay_fx f;
    relay_fx_start(&f, PROTO_TCP, "127.0.0.1", &target, short_connect_timeout);
    int c = t_connect(&f.front);
    char buf[4];
    uint64_t t0 = t_now_ms();
    ck_assert_int_eq(t_recv(f.base, c, buf, sizeof buf, 5000), -1);
    ck_assert_int_eq(errno, ECONNRESET);
    ck_assert_uint_ge(t_now_ms() - t0, 250);
    ck_assert_uint_eq(berth_tcp_sessions(f.b), 0);
    close(c);
    for (int i = 0; i < 4; i++)
        close(fillers[i]);
    close(lfd);
    relay_fx_stop(&f);
}
END_TEST

static void max_two(struct relay_ctx *ctx) { ctx->max_conns = 2; }

START_TEST(test_max_conns)
{
    struct addr target;
    int lfd = t_bind("127.0.0.1", SOCK_STREAM, &target);
    struct relay_fx f;
    relay_fx_start(&f, PROTO_TCP, "127.0.0.1", &target, max_two);
    int c[3], b[3];
    for (int i = 0; i < 3; i++)
        c[i] = t_connect(&f.front);
    b[0] = t_accept(f.base, lfd);
    b[1] = t_accept(f.base, lfd);
    /* The third waits in berth's backlog: no session, no backend socket. */
    PUMP_UNTIL(f.base, 300, false);
    ck_assert_uint_eq(berth_tcp_sessions(f.b), 2);
    ck_assert_int_lt(accept4(lfd, NULL, NULL, SOCK_NONBLOCK), 0);
    close(c[0]);
    close(b[0]);
    b[2] = t_accept(f.base, lfd);
    t_transfer(f.base, c[2], b[2], 1000);
    ck_assert_uint_eq(berth_tcp_sessions(f.b), 2);
    for (int i = 1; i < 3; i++) {
        close(c[i]);
        close(b[i]);
    }
    ck_assert(PUMP_UNTIL(f.base, 3000, berth_tcp_sessions(f.b) == 0));
    close(lfd);
    relay_fx_stop(&f);
}
END_TEST

/* The backend never reads: the client writes until every buffer up to
 * berth's pipe is full of fill bytes. */
static void stall_backend(struct pair *p, char fill)
{
    static char junk[1 << 16];
    memset(junk, fill, sizeof junk);
    for (int i = 0; i < 2000; i++) {
        if (send(p->client, junk, sizeof junk, MSG_NOSIGNAL) < 0 && errno == EAGAIN) {
            t_pump(p->f.base);
            usleep(1000);
        }
    }
    PUMP_UNTIL(p->f.base, 300, false);
}

/* A session reset with bytes stuck in its pipe (the target stopped
 * reading) must not hand that pipe, bytes and all, to the next session. */
START_TEST(test_reset_with_bytes_in_flight_leaks_nothing)
{
    struct pair p;
    open_pair(&p, NULL);
    stall_backend(&p, 'A');
    /* The target resets while berth holds its unread bytes. */
    sock_set_reset_on_close(p.backend);
    close(p.backend);
    p.backend = -1;
    ck_assert(PUMP_UNTIL(p.f.base, 3000, berth_tcp_sessions(p.f.b) == 0));
    for (int i = 0; i < 20; i++) { /* pooled pipes come back in any order */
        int c = t_connect(&p.f.front);
        int b = t_accept(p.f.base, p.backend_listener);
        /* Bulk, so that it goes through pooled pipes (small exchanges
         * borrow none). */
        t_transfer(p.f.base, c, b, 256u << 10);
        t_transfer(p.f.base, b, c, 256u << 10);
        close(c);
        close(b);
        ck_assert(PUMP_UNTIL(p.f.base, 3000, berth_tcp_sessions(p.f.b) == 0));
    }
    close_pair(&p);
}
END_TEST

/* A client that resets while berth waits on a target that stopped reading
 * must not leave the session stuck there. */
START_TEST(test_reset_while_target_stalled_ends_session)
{
    struct pair p;
    open_pair(&p, NULL);
    stall_backend(&p, 'B');
    ck_assert_uint_eq(berth_tcp_sessions(p.f.b), 1);
    sock_set_reset_on_close(p.client);
    close(p.client);
    p.client = -1;
    ck_assert(PUMP_UNTIL(p.f.base, 3000, berth_tcp_sessions(p.f.b) == 0));
    /* ...and the stalled target hears of it as a reset. */
    char buf[1 << 16];
    ssize_t r;
    while ((r = t_recv(p.f.base, p.backend, buf, sizeof buf, 3000)) > 0)
        ;
    ck_assert_int_eq(r, -1);
    ck_assert_int_eq(errno, ECONNRESET);
    close_pair(&p);
}
END_TEST

/* Sequential sessions leave nothing behind but pooled pipes. */
START_TEST(test_no_fd_leak)
{
    struct addr target;
    int lfd = t_bind("127.0.0.1", SOCK_STREAM, &target);
    struct relay_fx f;
    relay_fx_start(&f, PROTO_TCP, "127.0.0.1", &target, NULL);
    struct pipe_pool *pool = berth_ctx(f.b)->pipes;
    int before = t_count_fds() - 2 * (int)pipe_pool_idle(pool);
    for (int i = 0; i < 300; i++) {
        int c = t_connect(&f.front);
        int b = t_accept(f.base, lfd);
        t_transfer(f.base, c, b, 2000);
        t_transfer(f.base, b, c, 70000);
        close(c);
        close(b);
        ck_assert(PUMP_UNTIL(f.base, 3000, berth_tcp_sessions(f.b) == 0));
    }
    ck_assert_int_eq(t_count_fds() - 2 * (int)pipe_pool_idle(pool), before);
    ck_assert_uint_le(pipe_pool_idle(pool), 2);
    close(lfd);
    relay_fx_stop(&f);
}
END_TEST

/* Out of fds: accept fails with EMFILE; berth must back off rather than
 * spin on a listener that stays readable, and recover when fds free up. */
START_TEST(test_emfile_backoff)
{
    struct addr target;
    int lfd = t_bind("127.0.0.1", SOCK_STREAM, &target);
    struct relay_fx f;
    relay_fx_start(&f, PROTO_TCP, "127.0.0.1", &target, NULL);
    int c[3];
    for (int i = 0; i < 3; i++)
        c[i] = t_connect(&f.front);
    t_settle(50);
    struct rlimit old, low;
    getrlimit(RLIMIT_NOFILE, &old);
    low = old;
    low.rlim_cur = (rlim_t)(c[2] + 1); /* no fd left for accept */
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    struct timeval half = {0, 500000};
    event_base_loopexit(f.base, &half);
    event_base_dispatch(f.base);
    getrusage(RUSAGE_SELF, &r1);
    setrlimit(RLIMIT_NOFILE, &old);
    long cpu_us = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) * 1000000L +
                  (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) +
                  (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) * 1000000L +
                  (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec);
    ck_assert_msg(cpu_us < 150000, "spun for %ld us of CPU in 500 ms", cpu_us);
    ck_assert_uint_eq(berth_tcp_sessions(f.b), 0);
    int b[3];
    for (int i = 0; i < 3; i++)
        b[i] = t_accept(f.base, lfd);
    for (int i = 0; i < 3; i++) {
        t_transfer(f.base, c[i], b[i], 100);
        close(c[i]);
        close(b[i]);
    }
    close(lfd);
    relay_fx_stop(&f);
}
END_TEST

START_TEST(test_ipv6_listener_ipv4_backend)
{
    if (!t_have_ipv6())
        return; /* no IPv6 loopback here */
    struct addr target;
    int lfd = t_bind("127.0.0.1", SOCK_STREAM, &target);
    struct relay_fx f;
    relay_fx_start(&f, PROTO_TCP, "::1", &target, NULL);
    int c = t_connect(&f.front);
    int b = t_accept(f.base, lfd);
    t_transfer(f.base, c, b, 100000);
    t_transfer(f.base, b, c, 100000);
    close(c);
    close(b);
    close(lfd);
    relay_fx_stop(&f);
}
END_TEST

/* ---- keepalive ---- */

static struct addr local_of(int fd)
{
    struct addr a;
    a.len = sizeof a.ss;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a.ss, &a.len), 0);
    return a;
}

static struct addr peer_of(int fd)
{
    struct addr a;
    a.len = sizeof a.ss;
    ck_assert_int_eq(getpeername(fd, (struct sockaddr *)&a.ss, &a.len), 0);
    return a;
}

/* The socket of this process (berth's, here) from local to peer. */
static int find_socket(const struct addr *local, const struct addr *peer)
{
    for (int fd = 0; fd < 4096; fd++) {
        struct addr l, p;
        l.len = p.len = sizeof l.ss;
        if (getsockname(fd, (struct sockaddr *)&l.ss, &l.len) == 0 &&
            getpeername(fd, (struct sockaddr *)&p.ss, &p.len) == 0 &&
            addr_equal(&l, local) && addr_equal(&p, peer))
            return fd;
    }
    ck_abort_msg("no socket from %s",
                 addr_format(local, (char[ADDR_STRLEN]){0}, ADDR_STRLEN));
    return -1;
}

/* "on idle:interval:count", or "off". */
static const char *keepalive_of(int fd)
{
    static char out[64];
    int on = 0, idle = 0, intvl = 0, cnt = 0;
    socklen_t len = sizeof on;
    ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, &len), 0);
    if (!on)
        return "off";
    len = sizeof idle;
    ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, &len), 0);
    ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, &len), 0);
    ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, &len), 0);
    snprintf(out, sizeof out, "on %d:%d:%d", idle, intvl, cnt);
    return out;
}

static void keepalive_7_3_4(struct relay_ctx *ctx)
{
    ctx->tcp_keepalive = (struct sock_keepalive){7, 3, 4};
}

static void keepalive_off(struct relay_ctx *ctx)
{
    ctx->tcp_keepalive = (struct sock_keepalive){0, 0, 0};
}

/* Both sockets berth holds for a session: the client's, which got the
 * settings from the listening socket through accept(), and the target's,
 * which gets them once the session has relayed for a second: a session
 * shorter than that never pays for the calls. */
static void keepalive_on_both(void (*tune)(struct relay_ctx *), const char *want)
{
    struct pair p;
    uint64_t start = t_now_ms();
    open_pair(&p, tune);
    struct addr client = local_of(p.client), target = local_of(p.backend);
    struct addr berth_out = peer_of(p.backend);
    int from_client = find_socket(&p.f.front, &client);
    int to_target = find_socket(&berth_out, &target);
    ck_assert_str_eq(keepalive_of(from_client), want);
    /* The session started after the pair's connect: younger than this. */
    if (t_now_ms() - start < 800)
        ck_assert_str_eq(keepalive_of(to_target), "off");
    uint64_t end = t_now_ms() + t_patience(3000);
    while (strcmp(keepalive_of(to_target), want) != 0 && t_now_ms() < end)
        t_pump_for(p.f.base, 10);
    ck_assert_str_eq(keepalive_of(to_target), want);
    ck_assert_str_eq(keepalive_of(p.client), "off"); /* the test's own: untouched */
    t_transfer(p.f.base, p.client, p.backend, 1000);
    close_pair(&p);
}

START_TEST(test_keepalive_both_sockets)
{
    keepalive_on_both(keepalive_7_3_4, "on 7:3:4");
}
END_TEST

START_TEST(test_keepalive_off) { keepalive_on_both(keepalive_off, "off"); }
END_TEST

/* Values equal to the kernel's defaults are not set again on the target's
 * socket, which has them anyway; the others are. */
static void keepalive_kernel_count(struct relay_ctx *ctx)
{
    ctx->tcp_keepalive = (struct sock_keepalive){7, 3,
                                                 ctx->tcp_keepalive_kernel.count};
}

START_TEST(test_keepalive_kernel_defaults)
{
    struct sock_keepalive k;
    sock_keepalive_kernel(&k);
    ck_assert_uint_gt(k.count, 0); /* read from /proc */
    char want[64];
    snprintf(want, sizeof want, "on 7:3:%u", k.count);
    keepalive_on_both(keepalive_kernel_count, want);
}
END_TEST

/* ---- idle timeout ---- */

static void idle_300ms(struct relay_ctx *ctx) { ctx->idle_timeout_ms = 300; }

static int tcp_state(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
    return ti.tcpi_state;
}

/* Silent both ways for the timeout: both sides reset, the session gone. */
START_TEST(test_idle_timeout_resets_both_sides)
{
    struct pair p;
    open_pair(&p, idle_300ms);
    t_transfer(p.f.base, p.client, p.backend, 1000);
    t_transfer(p.f.base, p.backend, p.client, 1000);
    uint64_t t0 = t_now_ms();
    char buf[16];
    ck_assert_int_eq(t_recv(p.f.base, p.client, buf, sizeof buf, 3000), -1);
    ck_assert_int_eq(errno, ECONNRESET);
    uint64_t took = t_now_ms() - t0;
    ck_assert_msg(took >= 250, "reset after %llu ms, before the timeout",
                  (unsigned long long)took);
    ck_assert_int_eq(t_recv(p.f.base, p.backend, buf, sizeof buf, 3000), -1);
    ck_assert_int_eq(errno, ECONNRESET);
    ck_assert(PUMP_UNTIL(p.f.base, 3000, berth_tcp_sessions(p.f.b) == 0));
    close_pair(&p);
}
END_TEST

/* A byte either way now and then keeps a session: each direction alone. */
START_TEST(test_idle_timeout_spares_traffic)
{
    struct pair p;
    open_pair(&p, idle_300ms);
    char buf[4];
    for (int dir = 0; dir < 2; dir++) {
        int from = dir ? p.backend : p.client, to = dir ? p.client : p.backend;
        for (int i = 0; i < 8; i++) {
            t_pump_for(p.f.base, 100);
            ck_assert_int_eq(send(from, "x", 1, MSG_NOSIGNAL), 1);
            ck_assert_int_eq(t_recv(p.f.base, to, buf, sizeof buf, 3000), 1);
        }
        ck_assert_uint_eq(berth_tcp_sessions(p.f.b), 1);
    }
    ck_assert_int_eq(t_recv(p.f.base, p.client, buf, sizeof buf, 3000), -1);
    ck_assert_int_eq(errno, ECONNRESET);
    close_pair(&p);
}
END_TEST

/* The client half-closed and the target never finishes: the session is
 * still silent, so it goes too, and neither peer is left in CLOSE-WAIT or
 * FIN-WAIT-2. */
START_TEST(test_idle_timeout_half_closed)
{
    struct pair p;
    open_pair(&p, idle_300ms);
    t_transfer(p.f.base, p.client, p.backend, 100);
    ck_assert_int_eq(shutdown(p.client, SHUT_WR), 0);
    char buf[16];
    ck_assert_int_eq(t_recv(p.f.base, p.backend, buf, sizeof buf, 3000), 0);
    /* (The FIN's ACK may be delayed a little.) */
    ck_assert(PUMP_UNTIL(p.f.base, 200, tcp_state(p.client) == TCP_FIN_WAIT2));
    ck_assert_int_eq(tcp_state(p.backend), TCP_CLOSE_WAIT);
    ck_assert_uint_eq(berth_tcp_sessions(p.f.b), 1);
    ck_assert(PUMP_UNTIL(p.f.base, 3000, berth_tcp_sessions(p.f.b) == 0));
    ck_assert(PUMP_UNTIL(p.f.base, 1000,
                         tcp_state(p.client) == TCP_CLOSE &&
                             tcp_state(p.backend) == TCP_CLOSE));
    close_pair(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tcp_relay");
    TCase *tc = tcase_create("tcp_relay");
    t_tcase_timeout(tc, 120);
    tcase_add_test(tc, test_integrity_splice);
    tcase_add_test(tc, test_integrity_buffered);
    tcase_add_test(tc, test_poll_backend);
    tcase_add_test(tc, test_half_close_client_first);
    tcase_add_test(tc, test_half_close_backend_first);
    tcase_add_test(tc, test_half_close_buffered);
    tcase_add_test(tc, test_reset_propagates);
    tcase_add_test(tc, test_refused_backend_resets_client_fast);
    tcase_add_test(tc, test_connect_timeout);
    tcase_add_test(tc, test_max_conns);
    tcase_add_test(tc, test_no_fd_leak);
    tcase_add_test(tc, test_reset_with_bytes_in_flight_leaks_nothing);
    tcase_add_test(tc, test_reset_while_target_stalled_ends_session);
    tcase_add_test(tc, test_emfile_backoff);
    tcase_add_test(tc, test_ipv6_listener_ipv4_backend);
    tcase_add_test(tc, test_keepalive_both_sockets);
    tcase_add_test(tc, test_keepalive_off);
    tcase_add_test(tc, test_keepalive_kernel_defaults);
    tcase_add_test(tc, test_small_exchange_copies_bulk_splices);
    tcase_add_test(tc, test_target_speaks_and_closes_at_once);
    tcase_add_test(tc, test_idle_timeout_resets_both_sides);
    tcase_add_test(tc, test_idle_timeout_spares_traffic);
    tcase_add_test(tc, test_idle_timeout_half_closed);
    suite_add_tcase(s, tc);
    return check_run(s);
}
