/* The relay fixture for the in-process relay suites: a berth instance on a
 * fresh event_base with one mapping, and a checked byte stream, so a test
 * drives clients, berth and backends from one thread without races. Socket
 * and loop helpers are looptest.h's. */
#ifndef BERTH_TESTNET_H
#define BERTH_TESTNET_H

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "berth/berth.h"
#include "looptest.h"

struct relay_fx {
    struct event_base *base;
    struct plan plan;
    struct berth *b;
    struct addr front; /* where clients connect (berth's listener) */
};

/* Starts berth with one mapping listen_ip:0 -> target. */
static inline void relay_fx_start(struct relay_fx *f, enum proto proto,
                                  const char *listen_ip, const struct addr *target,
                                  void (*tune)(struct relay_ctx *))
{
    memset(f, 0, sizeof *f);
    f->base = berth_event_base_new();
    ck_assert_ptr_nonnull(f->base);
    struct addr l = t_addr(listen_ip, 0);
    ck_assert_int_eq(plan_add(&f->plan, proto, &l, target), 0);
    f->plan.udp_timeout = 90;
    f->b = berth_new(f->base, &f->plan, NULL);
    ck_assert_ptr_nonnull(f->b);
    if (tune)
        tune(berth_ctx(f->b));
    char err[256];
    ck_assert_msg(berth_start(f->b, NULL, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(berth_local_addr(f->b, 0, &f->front), 0);
}

static inline void relay_fx_stop(struct relay_fx *f)
{
    berth_free(f->b);
    free(f->plan.maps);
    event_base_free(f->base);
}

/* Byte i of a test stream: a pattern no shifted copy of which matches, so a
 * lost, repeated or reordered chunk is caught. */
static inline unsigned char t_pattern(uint64_t i)
{
    return (unsigned char)((i * 2654435761u) >> 13 ^ (i >> 16));
}

/* Sends len pattern bytes on from and checks they all arrive intact on to,
 * pumping the loop in between. */
static inline void t_transfer(struct event_base *base, int from, int to, size_t len)
{
    static unsigned char buf[1 << 16];
    size_t sent = 0, got = 0;
    uint64_t deadline = t_now_ms() + t_patience(60000);
    while (got < len) {
        if (t_now_ms() > deadline)
            ck_abort_msg("transfer stalled at %zu/%zu", got, len);
        if (sent < len) {
            size_t n = len - sent < sizeof buf ? len - sent : sizeof buf;
            for (size_t i = 0; i < n; i++)
                buf[i] = t_pattern(sent + i);
            ssize_t w = send(from, buf, n, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
            else if (errno != EAGAIN)
                ck_abort_msg("send: %s", strerror(errno));
        }
        t_pump(base);
        ssize_t r = recv(to, buf, sizeof buf, 0);
        if (r > 0) {
            /* One assertion per chunk: Check logs every assertion. */
            ssize_t bad = -1;
            for (ssize_t i = 0; i < r && bad < 0; i++)
                if (buf[i] != t_pattern(got + (size_t)i))
                    bad = i;
            ck_assert_msg(bad < 0, "byte %zu corrupted", got + (size_t)bad);
            got += (size_t)r;
        } else if (r == 0 || errno != EAGAIN) {
            ck_abort_msg("recv: %s", r == 0 ? "early EOF" : strerror(errno));
        }
    }
}

#endif
