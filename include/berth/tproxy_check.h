/* Whether this host is set up for transparent mode, judged by what the
 * kernel will do (Documentation/networking/tproxy.rst), whoever set it up:
 * berth-tproxy, or an administrator by hand in nft or iptables (legacy or
 * nft backend), with any mark, mask and table.
 *
 * Three things must hold for a reply to reach berth's socket bound to the
 * client's address: berth may set IP_TRANSPARENT (CAP_NET_ADMIN); a rule in
 * prerouting marks packets that belong to a transparent socket; and the
 * kernel delivers packets with that mark locally (an ip rule to a table with
 * a local default route). The first and last are asked of the kernel itself
 * (a scratch socket, an RTM_GETROUTE lookup: no packet is sent); the marking
 * rules are read from `nft -j list ruleset` and iptables-save's text, found
 * in /usr/sbin or /sbin only.
 * Blocking (it runs those tools): start-up and a slow timer only. */
#ifndef BERTH_TPROXY_CHECK_H
#define BERTH_TPROXY_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/mapping.h"
#include "berth/sockaddr.h"
#include "berth/tproxy_rules.h"

enum tproxy_result {
    TPROXY_WORKS,  /* everything the kernel needs is there */
    TPROXY_BROKEN, /* something is missing: why names it */
    /* The marking rules cannot be read (no nft here, as in a container with
     * the host's network): why says so; the host may well be set up, so
     * berth keeps transparent mode on and only warns. */
    TPROXY_UNKNOWN,
};

#define TPROXY_WHY_MAX 256

/* What mapping m needs (TPROXY_* bits): its protocol and its target's
 * family (the socket towards the target takes the client's address, so
 * the target's family); a Docker name: IPv4, what it resolves to first. */
unsigned tproxy_need(const struct mapping *m);

/* "TCP and UDP packets (IPv4)": the kinds in bits, for a log line. */
const char *tproxy_what(unsigned bits, char *buf, size_t len);

/* Asks the kernel (RTM_GETROUTE, nothing sent) where a reply to a
 * non-local address (192.0.2.1, 2001:db8::1) with this mark goes: with
 * iif (an interface index, not 0) an input lookup as for a packet arriving
 * on iif from src (NULL: 198.51.100.1, 2001:db8::2), as the kernel routes
 * a real reply (`ip rule ... iif lo` does not hold for it); iif 0 an output
 * lookup, and the fallback when the input lookup's own checks refuse the
 * made-up packet (rp_filter). 1 when delivered locally, 0 when not, -1
 * when it cannot be asked. */
int tproxy_route_local(int family, uint32_t mark, int iif, const struct addr *src);

/* The interface replies from target (NULL, or another family: none known)
 * arrive on: the one packets to target leave by, else the first that is up
 * and not loopback. Its index (name into name, IF_NAMESIZE), or 0: none. */
int tproxy_reply_iif(int family, const struct addr *target, char *name);

/* One check's findings per kind of packet: [i] for bit 1 << i (TPROXY_TCP4,
 * UDP4, TCP6, UDP6); kinds not needed: TPROXY_WORKS, "", mark 0. why says
 * what is missing (TPROXY_BROKEN), why the rules cannot be seen
 * (TPROXY_UNKNOWN), or which mark works (TPROXY_WORKS, mark). */
struct tproxy_report {
    enum tproxy_result result[4];
    char why[4][TPROXY_WHY_MAX];
    uint32_t mark[4];
};

/* The whole check for the packets in need (TPROXY_* bits), each kind on
 * its own: the tools run once, within 2 s together (one that does not
 * answer is killed: TPROXY_UNKNOWN, "nft did not answer in 2 s").
 * targets[0], [1]: an IPv4 and an IPv6 target of a transparent mapping
 * (or NULL, as targets itself may be): where their replies come in. */
void tproxy_check_each(unsigned need, const struct addr *const targets[2],
                       struct tproxy_report *rep);

/* The same for all of need at once: the first broken kind's reason, else
 * the first unknown one's, else which marks work. */
enum tproxy_result tproxy_check(unsigned need, char *why, size_t len);

#endif
