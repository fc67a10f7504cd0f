/* A published UDP port: a flow per client address, each with its own
 * connected socket to the target; replies leave from the address the client
 * wrote to; idle flows expire; the table is bounded and evicts the flow
 * idle longest. Datagrams move in recvmmsg/sendmmsg batches: a batch's
 * requests in one sendmmsg per flow, and the replies of every flow ready in
 * one loop turn in one sendmmsg per listener.
 * Errors: NULL with a one-line reason in err. */
#ifndef BERTH_UDP_RELAY_H
#define BERTH_UDP_RELAY_H

#include <stddef.h>

#include "berth/mapping.h"
#include "berth/metrics.h"
#include "berth/relay.h"

struct udp_listener;

/* Takes fd, a bound datagram socket (closed on failure). m must outlive
 * the listener. */
struct udp_listener *udp_listener_new(struct relay_ctx *ctx, const struct mapping *m,
                                      int fd, char *err, size_t errlen);
void udp_listener_free(struct udp_listener *l);
/* A reload removed the port: datagrams from clients without a flow are
 * dropped; the flows go on (replies leave from this socket, which stays
 * bound) until they expire. Free it once udp_listener_flows reads 0. */
void udp_listener_drain(struct udp_listener *l);
size_t udp_listener_flows(const struct udp_listener *l);
int udp_listener_fd(const struct udp_listener *l);
/* Counts the port's datagrams, bytes, flows and drops in stats (NULL: no
 * more); set before the first datagram, kept until the listener is freed. */
void udp_listener_set_stats(struct udp_listener *l, struct map_stats *stats);

#endif
