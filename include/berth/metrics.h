/* Counters for /metrics (Prometheus text format 0.0.4): per published port
 * (struct map_stats, which the relays increment in place: no lookup, no
 * allocation, no syscall per packet), DNS, the Docker engine and reloads,
 * and the process's own figures read from /proc/self at render time.
 *
 * A port's block lives from berth publishing it to closing it; its series
 * leave /metrics with it. Nothing here is needed to relay: a NULL struct
 * metrics or map_stats (docker-proxy mode, no --admin) counts nothing. */
#ifndef BERTH_METRICS_H
#define BERTH_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "berth/mapping.h"
#include "berth/sockaddr.h"

struct evbuffer;
struct evhttp_request;
struct metrics;

/* Fixed upper bounds, seconds: from half a millisecond (a local target)
 * to 5 s (a connect budget's order). */
#define METRICS_BUCKETS 13

/* Per bucket, not cumulative (rendering sums them); n[METRICS_BUCKETS] is
 * above the last bound. */
struct histogram {
    uint64_t n[METRICS_BUCKETS + 1];
    uint64_t count;
    double sum; /* seconds */
};

/* in: client to target; out: back. For UDP, per port:
 *   datagrams[IN]  datagrams received from clients;
 *   bytes[IN]      payload of those relayed: the kernel took them towards
 *                  the target;
 *   udp_dropped[r] those received but not relayed, by reason;
 * so datagrams[IN] = relayed + the sum of udp_dropped. datagrams[OUT] and
 * bytes[OUT] are replies received from targets and queued to their clients
 * (the queue is shared by all ports: a send to a client the kernel refuses
 * is logged at debug level, not counted). */
enum { METRICS_IN, METRICS_OUT };

enum metrics_connect_reason {
    METRICS_REFUSED,
    METRICS_TIMEOUT,
    METRICS_UNREACHABLE,
    METRICS_RESOURCE, /* berth's own: fds, memory, local ports */
    METRICS_OTHER,
    METRICS_NO_TARGET, /* a name with nothing running behind it: not tried */
    METRICS_CONNECT_REASONS
};

enum metrics_udp_drop {
    METRICS_DROP_NO_TARGET, /* a name with nothing running behind it */
    METRICS_DROP_FLOW,      /* no flow could be opened (socket, connect) */
    METRICS_DROP_SEND,      /* the kernel refused it towards the target */
    METRICS_DROP_DRAINING,  /* a new client of a port a reload removed */
    METRICS_UDP_DROPS
};

struct map_stats {
    /* TCP */
    uint64_t conns;        /* accepted */
    uint64_t conns_active; /* sessions open now */
    uint64_t connect_errors[METRICS_CONNECT_REASONS];
    struct histogram connect; /* successful connects, accept to connected */
    /* Both: TCP payload, UDP datagram payload. */
    uint64_t bytes[2];
    /* UDP */
    uint64_t flows_active;
    uint64_t datagrams[2];
    uint64_t udp_dropped[METRICS_UDP_DROPS];
    /* Owned by metrics.c. */
    bool draining; /* metrics_port_draining: rendered with state="draining" */
    struct metrics *owner;
    struct map_stats *prev, *next;
    enum proto proto;
    char listen[ADDR_STRLEN];
    char target[MAPPING_NAME_MAX + 8];
};

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* A block for port m bound at listen (its real port when m asked for 0).
 * NULL when m is NULL or out of memory: that port is then not counted. */
struct map_stats *metrics_port_new(struct metrics *m, const struct mapping *map,
                                   const struct addr *listen);
void metrics_port_free(struct map_stats *s);

/* Port s was removed by a reload and drains. Its series gain the label
 * state="draining": the port that replaces it (same listen, proto and
 * target, other switches) has its own series, and Prometheus refuses two
 * samples of one series. NULL counts nothing. */
void metrics_port_draining(struct map_stats *s);

/* A TCP connect ended after ns: err 0 (connected, observed in the
 * histogram) or its errno, counted under metrics_connect_reason(err). */
void metrics_connect_done(struct map_stats *s, int err, uint64_t ns);
enum metrics_connect_reason metrics_connect_reason(int err);

void histogram_observe(struct histogram *h, double seconds);

/* A DNS reply sent: rcode from its header; forwarded: an upstream's. */
void metrics_dns_answer(struct metrics *m, unsigned rcode, bool forwarded);
/* An upstream answered (or every try failed) after ns. */
void metrics_dns_forward_time(struct metrics *m, uint64_t ns);

/* The Docker engine: followed (up) or not; one event read. Before the
 * first metrics_docker_up berth follows no engine: no berth_docker_*. */
void metrics_docker_up(struct metrics *m, bool up);
void metrics_docker_event(struct metrics *m);

/* A --config reload, applied or refused. */
void metrics_reload(struct metrics *m, bool ok);

/* CLOCK_MONOTONIC in ns (the vDSO: no syscall). */
uint64_t metrics_now_ns(void);

/* Everything in the text format, to out. 0, or -1 on a write error. */
int metrics_render(const struct metrics *m, FILE *out);

/* An admin_handler_fn: GET /metrics, arg the struct metrics. */
void metrics_http(struct evhttp_request *req, void *arg);

/* The admin endpoint's answer to a GET or HEAD: code with body of type, or
 * with body NULL, evhttp's error page. A HEAD gets the headers its GET
 * would, Content-Length included, and no body: evhttp (2.1) sends a body
 * given after a HEAD's headers, and a client reading the connection's next
 * response reads that body instead. Here (not admin.c, a layer above) as
 * /metrics answers through it too. */
void metrics_http_reply(struct evhttp_request *req, int code, const char *reason,
                        const char *type, struct evbuffer *body);

#endif
