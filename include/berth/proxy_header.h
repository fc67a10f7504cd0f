/* The PROXY protocol header (HAProxy's doc/proxy-protocol.txt, versions 1
 * and 2) that a mapping with proxy_proto set sends to its target as the
 * first bytes of each TCP connection, so the target sees the client's
 * address although the connection comes from berth. Pure encoding into a
 * caller's buffer: no I/O, nothing allocated.
 *
 * src is the client (getpeername of the client's socket), dst the address
 * the client connected to (getsockname of it: berth's listening address as
 * the client saw it), which is what the spec calls the destination.
 *
 * Families: an IPv4-mapped IPv6 address (::ffff:a.b.c.d, a client of a
 * dual-stack socket) is sent as the IPv4 address it is. Two IPv4 addresses
 * make TCP4 (v2: 0x11), two IPv6 ones TCP6 (0x21); one of each (which one
 * socket cannot give, but the encoder is total) makes TCP6 with the IPv4
 * one mapped. Any other family (AF_UNIX, AF_UNSPEC) in either makes v1's
 * "PROXY UNKNOWN\r\n" and v2's PROXY command with family AF_UNSPEC and no
 * address block, which receivers take as "use the connection's own
 * addresses". v1 writes IPv6 addresses as hexadecimal groups with the
 * longest run of zero groups (two or more) as "::" (RFC 5952), never the
 * dotted tail inet_ntop gives some, which the spec's grammar does not
 * have; a scope id is not sent. */
#ifndef BERTH_PROXY_HEADER_H
#define BERTH_PROXY_HEADER_H

#include <stddef.h>
#include <stdint.h>

#include "berth/mapping.h"
#include "berth/sockaddr.h"

/* Bytes any header of this module takes at most: v1's worst case in the
 * spec (UNKNOWN with addresses; this module's longest is TCP6 at 104);
 * v2 with IPv6 is 52. */
#define PROXY_HEADER_MAX 107

/* v2's 12-byte signature. */
#define PROXY_V2_SIG "\r\n\r\n\0\r\nQUIT\n"
#define PROXY_V2_SIG_LEN 12

/* Writes the header of version v (V1 or V2) for a connection from src to
 * dst into out. Returns its length, or 0 when it does not fit in cap
 * (nothing useful is left in out then) or v is PROXY_PROTO_NONE. A cap of
 * PROXY_HEADER_MAX always fits. */
size_t proxy_header_encode(enum proxy_proto v, const struct addr *src,
                           const struct addr *dst, uint8_t *out, size_t cap);

/* v2's LOCAL command (0x20, AF_UNSPEC, length 0): a connection the proxy
 * makes on its own behalf, such as a health probe, whose receiver uses the
 * real endpoints. berth probes nothing of its own today; this is here so
 * the encoder covers the spec. Returns 16, or 0 when cap is smaller. */
size_t proxy_header_encode_local(uint8_t *out, size_t cap);

#endif
