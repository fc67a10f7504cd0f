/* One direction's pump on its own, between real loopback TCP sockets: what
 * a read says about src (short reads, the FIN, the urgent mark), a small
 * exchange copied without a pipe, a bulk one moving to splice and back,
 * and bytes dst refused held until it drains. */
#include "check_run.h"

#include "berth/registry.h"
#include "berth/tcp_pump.h"
#include "looptest.h"

struct fx {
    struct event_base *base;
    struct registry *reg;
    struct relay_ctx *ctx;
    int writer, src; /* bytes written to writer arrive on src */
    int dst, reader; /* bytes sent on dst arrive on reader */
    struct tcp_pump p;
};

static void pair(struct event_base *base, int *a, int *b)
{
    struct addr at;
    int lfd = t_bind("127.0.0.1", SOCK_STREAM, &at);
    ck_assert_int_eq(listen(lfd, 4), 0);
    *a = t_connect(&at);
    *b = t_accept(base, lfd);
    close(lfd);
}

static void fx_start(struct fx *f)
{
    memset(f, 0, sizeof *f);
    f->base = event_base_new();
    f->reg = registry_new();
    f->ctx = relay_ctx_new(f->base, f->reg);
    ck_assert_ptr_nonnull(f->ctx);
    pair(f->base, &f->writer, &f->src);
    pair(f->base, &f->dst, &f->reader);
    tcp_pump_init(&f->p, false);
}

static void fx_stop(struct fx *f)
{
    tcp_pump_release(&f->p, f->ctx);
    close(f->writer);
    close(f->src);
    close(f->dst);
    close(f->reader);
    relay_ctx_free(f->ctx);
    registry_free(f->reg);
    event_base_free(f->base);
}

/* Fills until n bytes were read from src and all of them given to dst. */
static void move(struct fx *f, size_t n)
{
    size_t got = 0;
    uint64_t end = t_now_ms() + t_patience(5000);
    while (got < n || f->p.pending > 0) {
        ck_assert_msg(t_now_ms() < end, "moved %zu of %zu", got, n);
        if (f->p.pending > 0) {
            ck_assert_int_ge(tcp_pump_flush(&f->p, f->ctx, f->dst), 0);
            continue;
        }
        ssize_t r = tcp_pump_fill(&f->p, f->ctx, f->src, f->dst);
        if (r < 0 && errno == EAGAIN) {
            t_pump(f->base);
            continue;
        }
        ck_assert_int_gt(r, 0);
        got += (size_t)r;
    }
}

static void drain_check(struct fx *f, const unsigned char *want, size_t n)
{
    unsigned char *got = malloc(n);
    size_t have = 0;
    while (have < n) {
        ssize_t r = t_recv(f->base, f->reader, got + have, n - have, 5000);
        ck_assert_int_gt(r, 0);
        have += (size_t)r;
    }
    ck_assert_mem_eq(got, want, n);
    free(got);
}

START_TEST(test_after_read)
{
    struct tcp_pump p;
    tcp_pump_init(&p, false);
    p.asked = 1000;
    p.copied = true;
    /* A full read: src may hold more. */
    ck_assert_int_eq(tcp_pump_after_read(&p, 1000, true, false), TCP_PUMP_MORE);
    /* A short recv: drained for now when level-triggered; edge-triggered,
     * a reset may hide behind the edge that brought the bytes. */
    ck_assert_int_eq(tcp_pump_after_read(&p, 10, true, false), TCP_PUMP_MORE);
    ck_assert_int_eq(tcp_pump_after_read(&p, 10, false, false), TCP_PUMP_DRAINED);
    /* After the FIN no edge comes again: read on until 0 (a recv stops at
     * the urgent mark with bytes behind it). */
    ck_assert_int_eq(tcp_pump_after_read(&p, 10, true, true), TCP_PUMP_MORE);
    /* A short splice from an edge-triggered src may have stopped at the
     * pipe's slots: read again. */
    p.copied = false;
    ck_assert_int_eq(tcp_pump_after_read(&p, 10, true, false), TCP_PUMP_MORE);
    ck_assert_int_eq(tcp_pump_after_read(&p, 10, false, false), TCP_PUMP_DRAINED);
}
END_TEST

START_TEST(test_small_exchange_copied)
{
    struct fx f;
    fx_start(&f);
    unsigned char msg[100];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (unsigned char)i;
    t_send_all(f.base, f.writer, msg, sizeof msg);
    move(&f, sizeof msg);
    ck_assert(f.p.copied);
    ck_assert(!f.p.splicing);
    ck_assert_int_eq(f.p.pipe.rd, -1); /* no pipe borrowed */
    ck_assert_uint_eq(f.p.pending, 0);
    drain_check(&f, msg, sizeof msg);
    fx_stop(&f);
}
END_TEST

/* A read that fills 16 KiB moves the pump to splice; a small one brings
 * it back; every byte arrives once, in order. */
START_TEST(test_bulk_splices_then_copies)
{
    struct fx f;
    fx_start(&f);
    size_t n = 1 << 20;
    unsigned char *data = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)(i * 7 + i / 251);
    bool spliced = false;
    size_t sent = 0, got = 0;
    unsigned char *out = malloc(n);
    uint64_t end = t_now_ms() + t_patience(10000);
    while (got < n) {
        ck_assert_msg(t_now_ms() < end, "stalled at %zu of %zu", got, n);
        if (sent < n) {
            ssize_t w = send(f.writer, data + sent, n - sent,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0)
                sent += (size_t)w;
        }
        if (f.p.pending > 0)
            ck_assert_int_ge(tcp_pump_flush(&f.p, f.ctx, f.dst), 0);
        else if (tcp_pump_fill(&f.p, f.ctx, f.src, f.dst) < 0)
            ck_assert_int_eq(errno, EAGAIN);
        spliced |= f.p.pipe.rd >= 0;
        ssize_t r = recv(f.reader, out + got, n - got, MSG_DONTWAIT);
        if (r > 0)
            got += (size_t)r;
    }
    ck_assert_msg(spliced, "1 MiB never went through a pipe");
    ck_assert_mem_eq(out, data, n);
    /* Now a small exchange: copied again, the pipe given back. */
    unsigned char small[40] = "a short answer after the bulk";
    t_send_all(f.base, f.writer, small, sizeof small);
    move(&f, sizeof small);
    ck_assert(!f.p.splicing);
    ck_assert_int_eq(f.p.pipe.rd, -1);
    drain_check(&f, small, sizeof small);
    free(data);
    free(out);
    fx_stop(&f);
}
END_TEST

/* A recv stops at the urgent mark: the bytes behind it come with the next
 * read, which tcp_pump_after_read asks for once the FIN was seen. */
START_TEST(test_urgent_mark_short_read)
{
    struct fx f;
    fx_start(&f);
    t_send_all(f.base, f.writer, "abc", 3);
    ck_assert_int_eq(send(f.writer, "X", 1, MSG_OOB), 1);
    t_send_all(f.base, f.writer, "def", 3);
    ck_assert_int_eq(shutdown(f.writer, SHUT_WR), 0);
    t_settle(50);
    ssize_t n = tcp_pump_fill(&f.p, f.ctx, f.src, f.dst);
    ck_assert_int_eq(n, 3); /* stopped at the mark */
    ck_assert_int_eq(tcp_pump_after_read(&f.p, (size_t)n, true, true), TCP_PUMP_MORE);
    ck_assert_int_eq(tcp_pump_fill(&f.p, f.ctx, f.src, f.dst), 3);
    ck_assert_int_eq(tcp_pump_fill(&f.p, f.ctx, f.src, f.dst), 0); /* the FIN */
    drain_check(&f, (const unsigned char *)"abcdef", 6);
    fx_stop(&f);
}
END_TEST

/* What dst refuses is held (copied out of the shared scratch buffer) and
 * given by flush once dst drains. */
START_TEST(test_refused_bytes_held_until_flush)
{
    struct fx f;
    fx_start(&f);
    size_t n = 32 << 20; /* more than loopback's buffers hold */
    unsigned char *data = malloc(n), *out = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)(i % 253);
    size_t sent = 0, got = 0;
    bool held = false;
    uint64_t end = t_now_ms() + t_patience(15000);
    while (got < n) {
        ck_assert_msg(t_now_ms() < end, "stalled at %zu of %zu", got, n);
        if (sent < n) {
            ssize_t w = send(f.writer, data + sent, n - sent,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0)
                sent += (size_t)w;
        }
        if (f.p.pending > 0) {
            held = true;
            ck_assert_int_ge(tcp_pump_flush(&f.p, f.ctx, f.dst), 0);
        } else if (tcp_pump_fill(&f.p, f.ctx, f.src, f.dst) < 0) {
            ck_assert_int_eq(errno, EAGAIN);
        }
        /* The reader waits until dst refused something. */
        ssize_t r = held ? recv(f.reader, out + got, n - got, MSG_DONTWAIT) : 0;
        if (r > 0)
            got += (size_t)r;
    }
    ck_assert(held);
    ck_assert_mem_eq(out, data, n);
    free(data);
    free(out);
    fx_stop(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tcp_pump");
    TCase *tc = tcase_create("pump");
    t_tcase_timeout(tc, 30);
    tcase_add_test(tc, test_after_read);
    tcase_add_test(tc, test_small_exchange_copied);
    tcase_add_test(tc, test_bulk_splices_then_copies);
    tcase_add_test(tc, test_urgent_mark_short_read);
    tcase_add_test(tc, test_refused_bytes_held_until_flush);
    suite_add_tcase(s, tc);
    return check_run(s);
}
