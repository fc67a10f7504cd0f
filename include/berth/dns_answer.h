/* The DNS answers berth makes itself: the zone <domain> from the registry
 * (names, NXDOMAIN and empty NOERROR with the zone's SOA, empty
 * non-terminals, the apex's SOA and NS ns.<zone>, which is berth), every
 * type of a container address's reverse name, errors, refusals of classes
 * other than IN; and the decision that a query goes upstream instead.
 *
 * Pure: no I/O, and no allocation per query (the address scratch space is
 * made once), so the whole path runs under the fuzzer.
 * Errors: dns_responder_new returns NULL with a one-line reason in err. */
#ifndef BERTH_DNS_ANSWER_H
#define BERTH_DNS_ANSWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/dns_wire.h"
#include "berth/registry.h"

struct dns_responder;

/* domain: the zone ("docker", "docker.internal."); ttl: of every record
 * made here, and the SOA's negative-answer TTL. reg must outlive it. */
struct dns_responder *dns_responder_new(struct registry *reg, const char *domain,
                                        unsigned ttl, char *err, size_t errlen);
void dns_responder_free(struct dns_responder *r);

enum dns_action {
    DNS_REPLY,   /* out holds the reply */
    DNS_FORWARD, /* not ours: q is the parsed query, to send upstream */
    DNS_DROP,    /* not a query (too short, or a response): no reply */
};

/* Handles one message from a client. local: the address it arrived on
 * (what ns.<zone> answers; NULL or a wildcard when not known). cap is
 * out's size; the reply also stays within what the client takes
 * (dns_reply_limit): addresses that do not all fit are cut to the whole
 * records that do, with TC. Multi-address answers rotate from one reply to
 * the next, a cut one past what it held. */
enum dns_action dns_respond(struct dns_responder *r, const uint8_t *pkt, size_t len,
                            bool tcp, const struct addr *local, struct dns_query *q,
                            uint8_t *out, size_t cap, size_t *outlen);

/* A reply to a parsed query with no records: SERVFAIL, REFUSED, or TC set
 * in flags for an upstream answer too large for the client. Returns its
 * length, 0 if cap is too small. */
size_t dns_reply_empty(const struct dns_query *q, uint16_t flags, unsigned rcode,
                       uint8_t *out, size_t cap);

#endif
