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
#include "berth/tproxy_rules.h"

enum tproxy_result {
    TPROXY_WORKS,  /* everything the kernel needs is there */
    TPROXY_BROKEN, /* something is missing: why names it */
    /* The marking rules cannot be read (no nft here, as in a container with
     * the host's network): why says so; the host may well be set up, so
     * berth keeps transparent mode on and only warns. */
    TPROXY_UNKNOWN,
};

/* What mapping m needs: its listen address's family and its protocol (the
 * socket towards the target takes the client's address, so its family). */
unsigned tproxy_need(const struct mapping *m);

/* Asks the kernel (RTM_GETROUTE, nothing sent) where a packet to a
 * non-local address (192.0.2.1, 2001:db8::1) with this mark goes: 1 when
 * delivered locally, 0 when not, -1 when it cannot be asked. */
int tproxy_route_local(int family, uint32_t mark);

/* The whole check for the packets in need (TPROXY_* bits). why gets one
 * line: what is missing (TPROXY_BROKEN), why the rules cannot be seen
 * (TPROXY_UNKNOWN), or which marks work (TPROXY_WORKS). */
enum tproxy_result tproxy_check(unsigned need, char *why, size_t len);

#endif
