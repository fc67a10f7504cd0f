/* Which marks packets of transparent sockets get in prerouting, read from
 * iptables-save (or ip6tables-save) text of the mangle table: legacy or nft
 * backend, the kernel doc's DIVERT chain or any equivalent, any mark. The
 * nft side, and struct tproxy_marks, are tproxy_rules.h's.
 * Pure and total: a local tool's output, yet never trusted for its shape;
 * bounded in jump depth and in chains visited. */
#ifndef BERTH_TPROXY_IPT_H
#define BERTH_TPROXY_IPT_H

#include "berth/tproxy_rules.h"

/* Adds the marks of save's mangle table for family TPROXY_V4 or TPROXY_V6:
 * `-m socket` (with or without --transparent) then `-j MARK` in the same
 * rule or in a chain it jumps to (the kernel doc's DIVERT chain); -p
 * narrows; `-j ACCEPT` (DROP, REJECT) before it ends it, as in nft
 * (out->shadow). */
void tproxy_marks_iptables(const char *save, unsigned family,
                           struct tproxy_marks *out);

#endif
