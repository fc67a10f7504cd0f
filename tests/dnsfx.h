/* The DNS fixture for the in-process DNS suites: a registry filled by hand
 * and a dns_server on loopback port 0, queried over UDP and framed TCP, all
 * driven from the test's thread by pumping the event loop. Socket and loop
 * helpers are looptest.h's. */
#ifndef BERTH_DNSFX_H
#define BERTH_DNSFX_H

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "berth/dns_server.h"
#include "berth/log.h"
#include "berth/dns_wire.h"
#include "berth/registry.h"
#include "dnstest.h"
#include "looptest.h"

struct dns_fx {
    struct event_base *base;
    struct registry *reg;
    struct dns_server *s;
    struct addr front; /* the server's first address */
};

/* One container on one network. */
static inline void t_put(struct registry *r, const char *id, const char *name,
                         const char *project, const char *service, int number,
                         const char *net, const char *v4, const char *v6,
                         const char *alias)
{
    struct reg_endpoint ep = {.network = net};
    if (v4) {
        ep.has_v4 = true;
        ck_assert_int_eq(inet_pton(AF_INET, v4, &ep.v4), 1);
    }
    if (v6) {
        ep.has_v6 = true;
        ck_assert_int_eq(inet_pton(AF_INET6, v6, &ep.v6), 1);
    }
    const char *aliases[1] = {alias};
    ep.aliases = aliases;
    ep.naliases = alias ? 1 : 0;
    struct reg_container c = {.id = id,
                              .name = name,
                              .project = project,
                              .service = service,
                              .number = number,
                              .eps = &ep,
                              .neps = 1};
    ck_assert_int_eq(registry_put(r, &c), 0);
}

/* o may be NULL: listen on 127.0.0.1:0, upstream a blackhole that the
 * caller never expects to be used. Fields left 0 in o are filled in. */
static inline void dns_fx_start(struct dns_fx *f, struct dns_options *o)
{
    memset(f, 0, sizeof *f);
    f->base = event_base_new();
    ck_assert_ptr_nonnull(f->base);
    f->reg = registry_new();
    ck_assert_ptr_nonnull(f->reg);
    static struct addr lo, hole;
    struct dns_options def = {0};
    if (!o)
        o = &def;
    if (!o->nlisten) {
        lo = t_addr("127.0.0.1", 0);
        o->listen = &lo;
        o->nlisten = 1;
    }
    if (!o->nupstreams) {
        /* Never forward to the machine's resolver: port 9 of loopback
         * (discard) refuses, so a stray forward fails fast. */
        hole = t_addr("127.0.0.1", 9);
        o->upstreams = &hole;
        o->nupstreams = 1;
    }
    if (!o->domain)
        o->domain = "docker";
    char err[256];
    f->s = dns_server_new(f->base, f->reg, o, err, sizeof err);
    ck_assert_msg(f->s != NULL, "%s", err);
    ck_assert_int_eq(dns_server_local_addr(f->s, 0, &f->front), 0);
}

static inline void dns_fx_stop(struct dns_fx *f)
{
    dns_server_free(f->s);
    registry_free(f->reg);
    event_base_free(f->base);
}

/* Sends a query over UDP and waits for one reply (len, or -1 on timeout). */
static inline ssize_t t_ask_udp(struct event_base *base, int fd, const struct addr *to,
                                const uint8_t *q, size_t qlen, uint8_t *out,
                                size_t cap, int ms)
{
    ck_assert_int_eq(sendto(fd, q, qlen, 0, (const struct sockaddr *)&to->ss, to->len),
                     (ssize_t)qlen);
    return t_recv(base, fd, out, cap, (uint64_t)ms);
}

/* A query by name over UDP from a fresh socket; the reply decoded. */
static inline struct t_reply *t_ask(struct dns_fx *f, const char *name, uint16_t type,
                                    int edns, uint8_t *out, size_t cap)
{
    uint8_t q[600];
    size_t n = t_query(q, (uint16_t)(t_now_ms() & 0xffff), name, type, edns, false, 0);
    int fd = t_udp_client(&f->front);
    ssize_t r = t_ask_udp(f->base, fd, &f->front, q, n, out, cap, 5000);
    close(fd);
    ck_assert_msg(r > 0, "no reply to %s", name);
    struct t_reply *rep = t_decode(out, (size_t)r);
    ck_assert_uint_eq(rep->id, t_get16(q));
    return rep;
}

/* Reads one framed TCP message: its length, 0 on EOF, -1 when ms of
 * patience pass first. */
static inline ssize_t t_tcp_read(struct event_base *base, int fd, uint8_t *out,
                                 size_t cap, int ms)
{
    uint8_t hdr[2];
    size_t got = 0, want = 2;
    uint64_t end = t_now_ms() + t_patience((uint64_t)ms);
    while (t_now_ms() < end) {
        ssize_t r = recv(fd, got < 2 ? hdr + got : out + got - 2, want - got,
                         MSG_DONTWAIT);
        if (r == 0)
            return 0;
        if (r > 0) {
            got += (size_t)r;
            if (got == 2) {
                want = 2 + (size_t)t_get16(hdr);
                ck_assert_uint_le(want - 2, cap);
            }
            if (got == want && got > 2)
                return (ssize_t)(want - 2);
            continue;
        }
        t_pump(base);
        usleep(500);
    }
    return -1;
}

static inline size_t t_frame(uint8_t *buf, const uint8_t *msg, size_t len)
{
    t_put16(buf, (unsigned)len);
    memmove(buf + 2, msg, len);
    return len + 2;
}

#endif
