/* DNS messages on the wire (RFC 1035, EDNS0 per RFC 6891): parsing queries,
 * the query sent upstream and checking its answer, names and reverse (PTR)
 * names. Replies are built by dns_msg.h on what this parses.
 *
 * Pure: no I/O and no allocation. Every read is bounds checked against the
 * length given, so any bytes are safe input (tests/fuzz/fuzz_dns.c).
 * Return convention: builders return the bytes written, or 0 / -1 when the
 * output does not fit; checks return 0 / -1; dns_parse_query is special
 * and documented below. errno is never set. */
#ifndef BERTH_DNS_WIRE_H
#define BERTH_DNS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/sockaddr.h"

#define DNS_HDR 12
#define DNS_NAME_MAX 255 /* wire form, root byte included */
#define DNS_LABELS_MAX 127
#define DNS_UDP_PLAIN 512  /* reply limit without EDNS0 */
#define DNS_UDP_MAX 4096   /* cap on what a client may advertise */
#define DNS_MSG_MAX 65535  /* TCP */
#define DNS_OPT_LEN 11     /* an OPT record without options */
#define DNS_EDNS_SIZE 1232 /* what berth advertises (DNS flag day 2020) */
/* header + largest question + OPT: any query berth sends upstream. */
#define DNS_QUERY_MAX (DNS_HDR + DNS_NAME_MAX + 4 + DNS_OPT_LEN)

/* Header flag bits (the second 16-bit word). */
#define DNS_QR 0x8000u
#define DNS_OPCODE_MASK 0x7800u
#define DNS_AA 0x0400u
#define DNS_TC 0x0200u
#define DNS_RD 0x0100u
#define DNS_RA 0x0080u
#define DNS_AD 0x0020u
#define DNS_CD 0x0010u
#define DNS_RCODE_MASK 0x000fu

enum dns_type {
    DNS_T_A = 1,
    DNS_T_NS = 2,
    DNS_T_SOA = 6,
    DNS_T_PTR = 12,
    DNS_T_TXT = 16,
    DNS_T_AAAA = 28,
    DNS_T_OPT = 41,
    DNS_T_IXFR = 251,
    DNS_T_AXFR = 252,
    DNS_T_ANY = 255,
};

enum { DNS_C_IN = 1, DNS_C_CH = 3, DNS_C_ANY = 255 };

enum dns_rcode {
    DNS_NOERROR = 0,
    DNS_FORMERR = 1,
    DNS_SERVFAIL = 2,
    DNS_NXDOMAIN = 3,
    DNS_NOTIMP = 4,
    DNS_REFUSED = 5,
    DNS_BADVERS = 16, /* extended: needs OPT */
};

/* A parsed query. qname points into the packet, so the struct is valid only
 * as long as the packet is (copy qname to keep it). */
struct dns_query {
    uint16_t id, flags;
    const uint8_t *qname;          /* wire form, letters as the client sent */
    size_t qname_len;              /* including the root byte */
    uint8_t nlabels;               /* not counting the root */
    uint8_t label[DNS_LABELS_MAX]; /* offset in qname of each length byte */
    uint16_t qtype, qclass;
    size_t end;        /* header + question */
    bool edns;         /* an OPT record came with it */
    uint16_t udp_size; /* as advertised (may be below 512) */
    uint8_t edns_version;
    bool dnssec_ok;
};

/* Parses a query. Returns 0 for a query to answer; -1 to drop it silently
 * (shorter than a header, or a response); DNS_FORMERR or DNS_NOTIMP when
 * only an error reply is possible (then id, flags and the EDNS fields are
 * valid, nothing else is). Rejected: QDCOUNT != 1, compressed or over-long question
 * names, records running past the end, a second OPT or one not owned by the
 * root, trailing bytes. */
int dns_parse_query(const uint8_t *pkt, size_t len, struct dns_query *q);

/* The largest reply the client takes: 65535 over TCP; over UDP its
 * advertised size within [512, 4096], or 512 without EDNS0. */
size_t dns_reply_limit(const struct dns_query *q, bool tcp);

/* Index of the label where zone (wire form, lower case) starts in q's name,
 * compared without regard to case: nlabels when the name is the zone's
 * apex, -1 when the name is outside the zone. */
int dns_zone_suffix(const struct dns_query *q, const uint8_t *zone, size_t zone_len);

/* The first n labels of q's name as dotted text (no trailing dot). Returns
 * the length, or -1 if it does not fit or a label holds a '.' or a NUL
 * (such a name can be no container's). */
int dns_qname_text(const struct dns_query *q, unsigned n, char *out, size_t cap);

/* ---- forwarding ---- */

/* The query berth sends upstream for q: a new ID, q's RD, CD and AD, q's
 * question as asked, and an OPT advertising udp_size (none when 0) with
 * q's DO bit. Returns the length, or 0 if cap is too small. */
size_t dns_build_query(uint8_t *out, size_t cap, const struct dns_query *q,
                       uint16_t id, uint16_t udp_size);

/* Whether ans is a well-formed answer to query (what dns_build_query
 * made): QR, same ID and opcode, one question equal but for letter case,
 * and every record inside the message. */
int dns_match_answer(const uint8_t *ans, size_t len, const uint8_t *query,
                     size_t qlen);

/* Walks a whole message: names (compression pointers must point backward,
 * at most 255 bytes once expanded) and record lengths. Returns the offset
 * where the last record ends, or -1. Bytes after it are not looked at. */
long dns_msg_check(const uint8_t *msg, size_t len);

/* v's low 16 (32) bits at p, in network order: for the fields others set in
 * a message this module built (the forwarder's IDs) and for dns_msg's. */
void dns_put16(uint8_t *p, unsigned v);
void dns_put32(uint8_t *p, uint32_t v);

/* ---- names ---- */

/* "a.b.c" or "a.b.c." into wire form. Returns the length, or -1 for an
 * empty or over-long label or name. */
int dns_name_wire(const char *text, uint8_t *out, size_t cap);

/* Wire name (uncompressed) as text for logs, "\DDD" for odd bytes. Returns
 * out (always NUL-terminated). */
const char *dns_name_text(const uint8_t *wire, size_t len, char *out, size_t cap);

/* The address of a reverse name: 4 decimal labels under in-addr.arpa or
 * 32 hex nibbles under ip6.arpa, nothing else. Returns 0 or -1. */
int dns_ptr_parse(const struct dns_query *q, struct addr *ip);

/* The reverse name of ip, "4.3.2.1.in-addr.arpa" or the ip6.arpa nibbles.
 * Returns its length or -1. */
int dns_ptr_name(const struct addr *ip, char *out, size_t cap);

#endif
