/* DNS replies on the wire (RFC 1035, EDNS0 per RFC 6891): a message built
 * in the caller's buffer, record by record, to a query dns_parse_query read;
 * names compressed against the question and the zone, SOA and NS naming
 * berth, truncation and TC, OPT echoed; and the bare error reply.
 *
 * Pure: no I/O and no allocation. Nothing is written past the cap given.
 * Return convention: dns_msg_start and the adders return 0 (dns_msg_add_ns
 * an offset, documented there), or -1 when it does not fit, and then write
 * no byte of it; dns_build_error returns the bytes written, or 0 when they
 * do not fit. errno is never set. */
#ifndef BERTH_DNS_MSG_H
#define BERTH_DNS_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "berth/dns_wire.h"
#include "berth/sockaddr.h"

struct dns_msg {
    uint8_t *buf;
    size_t cap; /* the client's limit */
    size_t len;
    size_t reserve; /* kept free for the OPT record */
    size_t question_end;
    unsigned rcode;      /* may be extended (> 15) */
    uint16_t count[3];   /* answer, authority, additional */
    const uint8_t *zone; /* wire form: under it SOA and NS name berth */
    size_t zone_len;
    uint16_t zone_off; /* where the zone's name is in buf; 0: not yet */
};

enum dns_section { DNS_ANSWER = 0, DNS_AUTHORITY = 1, DNS_ADDITIONAL = 2 };

/* Where the question name starts in any reply: for compression pointers. */
#define DNS_QNAME_OFF DNS_HDR

/* Starts a reply to q in buf (cap bytes, at most the client's limit): q's
 * ID, opcode, RD and CD, QR, the given flags and rcode, and the question as
 * asked. With q->edns, room for an OPT record stays reserved. Returns -1 if
 * even that does not fit. */
int dns_msg_start(struct dns_msg *m, uint8_t *buf, size_t cap,
                  const struct dns_query *q, uint16_t flags, unsigned rcode);
/* A or AAAA (by ip's family) owned by the name at offset owner. */
int dns_msg_add_addr(struct dns_msg *m, enum dns_section s, uint16_t owner,
                     uint32_t ttl, const struct addr *ip);
/* PTR owned by owner, pointing at "<name>.<zone>" (name is dotted text). */
int dns_msg_add_ptr(struct dns_msg *m, uint16_t owner, uint32_t ttl, const char *name,
                    const uint8_t *zone, size_t zone_len);
/* The zone (wire form, kept by the caller) whose server names, ns.<zone>
 * and hostmaster.<zone>, SOA and NS records carry; off: where its name
 * already is in the message, 0 if nowhere yet (then the first record that
 * needs it writes it in full, the later ones point at it). */
void dns_msg_set_zone(struct dns_msg *m, const uint8_t *zone, size_t zone_len,
                      uint16_t off);
/* An SOA owned by the name at offset owner: MNAME ns.<zone>, RNAME
 * hostmaster.<zone> (without dns_msg_set_zone: the owner's zone). */
int dns_msg_add_soa(struct dns_msg *m, enum dns_section s, uint16_t owner,
                    uint32_t ttl, uint32_t serial, uint32_t minimum);
/* NS ns.<zone> owned by owner. Returns the target's offset (the owner of
 * its addresses in the additional section), 0 when no pointer can reach
 * it, -1 when it does not fit. */
int dns_msg_add_ns(struct dns_msg *m, enum dns_section s, uint16_t owner,
                   uint32_t ttl);
void dns_msg_set_rcode(struct dns_msg *m, unsigned rcode);
/* The reply did not fit: every record goes, TC is set. */
void dns_msg_truncate(struct dns_msg *m);
/* Only part of the reply fit: the records that did stay, TC is set. */
void dns_msg_set_tc(struct dns_msg *m);
/* Appends OPT when q had it (q->dnssec_ok echoed), fills in the counts.
 * Returns the message length. */
size_t dns_msg_finish(struct dns_msg *m, const struct dns_query *q);

/* A reply without question (FORMERR, NOTIMP) to what dns_parse_query
 * read: the header, and OPT when the query had one. Returns its length, or
 * 0 when cap is smaller. */
size_t dns_build_error(uint8_t *out, size_t cap, const struct dns_query *q,
                       unsigned rcode);

#endif
