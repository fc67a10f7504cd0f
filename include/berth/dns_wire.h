/* DNS messages on the wire (RFC 1035, EDNS0 per RFC 6891): parsing queries,
 * building replies, checking upstream answers, reverse (PTR) names.
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

/* ---- replies ---- */

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

/* v's low 16 bits at p, in network order: for the fields others set in a
 * message this module built (the forwarder's IDs). */
void dns_put16(uint8_t *p, unsigned v);

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
