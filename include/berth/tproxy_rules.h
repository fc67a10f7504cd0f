/* Which marks packets of transparent sockets get in prerouting, read from
 * the rules themselves: `nft -j list ruleset` output here, iptables-save
 * text of the mangle table in tproxy_ipt.h (Documentation/networking/
 * tproxy.rst's rules and any equivalent: nft or iptables, legacy or nft
 * backend, any mark). Pure: tproxy_check runs the tools and asks the kernel
 * the rest. Both parsers read local tools' output, yet are total: never
 * trusting the shape of what they read, bounded in depth and in chains
 * visited. */
#ifndef BERTH_TPROXY_RULES_H
#define BERTH_TPROXY_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Which packets: one bit per address family and protocol. */
enum {
    TPROXY_TCP4 = 1 << 0,
    TPROXY_UDP4 = 1 << 1,
    TPROXY_TCP6 = 1 << 2,
    TPROXY_UDP6 = 1 << 3,
    TPROXY_V4 = TPROXY_TCP4 | TPROXY_UDP4,
    TPROXY_V6 = TPROXY_TCP6 | TPROXY_UDP6,
    TPROXY_TCP = TPROXY_TCP4 | TPROXY_TCP6,
    TPROXY_UDP = TPROXY_UDP4 | TPROXY_UDP6,
    TPROXY_ALL = TPROXY_V4 | TPROXY_V6,
};

#define TPROXY_MARKS_MAX 32

/* Marks that packets of transparent sockets get in prerouting, as each
 * would be with no mark before (a rule's `mark | M` gives M). */
struct tproxy_marks {
    uint32_t mark[TPROXY_MARKS_MAX];
    unsigned covers[TPROXY_MARKS_MAX]; /* TPROXY_* bits: which packets */
    size_t n;
    /* An iptables-nft rule on the way, which nft shows without its values:
     * iptables-nft-save must be read too. */
    bool xt;
    /* Per packet kind (bit 1 << i): the first rule that ends a reply's walk
     * of a prerouting chain before a later rule could mark it, "rule '...'
     * in chain ... accepts replies before they are marked"; "" for none.
     * Conservative: only a verdict (accept, drop, reject; a jump or goto to
     * a chain that ends them) whose matches are all ones a reply may pass
     * and that say nothing of its socket (ct state with established, the
     * l4 protocol, the family, the mark, the input interface, a comment)
     * counts; a rule with any other match may spare the reply. */
    char shadow[4][200];
};

/* Adds the marks that `nft -j list ruleset` output sets on packets of
 * transparent sockets: chains of type filter hooked at prerouting (a nat
 * chain never sees a reply), rules with `socket transparent 1` (or `socket
 * wildcard 0`, true of such a socket) followed by `meta mark set` (a value,
 * `mark | v`, `(mark & a) ^ b`), jumps and gotos followed, l4proto and
 * nfproto matches (a value or a set) narrowing which packets, a verdict
 * before the marking ending it (out->shadow). Chains are indexed once and
 * each is walked once per packet kind it is reached with: linear in the
 * ruleset's size. -1 when json is not a ruleset (or out of memory). */
int tproxy_marks_nft(const char *json, struct tproxy_marks *out);

/* For tproxy_ipt too: how deep jumps are followed (loops end). */
#define TPROXY_WALK_DEPTH 16

/* For tproxy_ipt: adds mark for the packets in covers (their bits joining
 * an equal mark's); past TPROXY_MARKS_MAX marks, dropped. */
void tproxy_marks_add(struct tproxy_marks *out, uint32_t mark, unsigned covers);

/* For tproxy_ipt: notes rule (its text) in chain as ending, by verb
 * ("accepts"), the packets in bits before they are marked, for each kind
 * not noted yet (out->shadow). */
void tproxy_shadow_add(struct tproxy_marks *out, unsigned bits, const char *rule,
                       const char *verb, const char *chain);

#endif
