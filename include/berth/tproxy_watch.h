/* Transparent mode's watch over the host: runs the host check
 * (tproxy_check.h) for the kinds of packets (TPROXY_* bits: TCP, UDP; the
 * target's IPv4, IPv6) that transparent mappings need, logs each finding
 * once, copies the verdicts into ctx->transparent_broken (which
 * transparent.h obeys per connection), and checks again every
 * TPROXY_WATCH_RECHECK_MS while some kind fails, unless once-only.
 *
 * Why only while broken: an operator who reads the warning and runs
 * `berth-tproxy up` sees transparent mode start without restarting berth;
 * but a check spawns nft (and iptables-save where its rules are) and
 * blocks the loop meanwhile (2-3 ms measured, more on a host with a large
 * ruleset), so once it works it is not repeated (a later teardown is not
 * watched). Each kind has its own verdict: IPv6 lacking leaves IPv4
 * targets transparent. */
#ifndef BERTH_TPROXY_WATCH_H
#define BERTH_TPROXY_WATCH_H

#include <event2/event.h>
#include <stdbool.h>

#include "berth/mapping.h"
#include "berth/relay.h"
#include "berth/sockaddr.h"
#include "berth/tproxy_check.h"

#define TPROXY_WATCH_RECHECK_MS 30000

struct tproxy_watch;

/* One check of the host for the kinds in need: tproxy_check_each's
 * contract. arg: the one given to tproxy_watch_new. */
typedef void tproxy_check_fn(void *arg, unsigned need,
                             const struct addr *const targets[2],
                             struct tproxy_report *rep);

/* A watch that writes its verdicts into ctx (which must outlive it) and,
 * while something fails, checks again every recheck_ms on base. check
 * NULL: the host's own (tproxy_check_each); tests give their own. NULL:
 * out of memory. */
struct tproxy_watch *tproxy_watch_new(struct event_base *base, struct relay_ctx *ctx,
                                      unsigned recheck_ms, tproxy_check_fn *check,
                                      void *arg);
void tproxy_watch_free(struct tproxy_watch *w);

/* Once-only: no re-check from now on (docker-proxy mode: one process per
 * port, each would spawn nft every 30 s); one already due still runs. */
void tproxy_watch_set_once(struct tproxy_watch *w, bool once);

/* Notes what mapping m needs if it is transparent (an IP target per
 * family: where replies come in, the first one noted); returns the
 * TPROXY_* bits it needs that no check covered yet (0: none). */
unsigned tproxy_watch_note(struct tproxy_watch *w, const struct mapping *m);

/* Checks the host now when need holds kinds no check covered yet (a
 * label's UDP port after the plan's TCP): all the kinds covered so far,
 * with the targets noted. Nothing when need adds nothing. */
void tproxy_watch_add(struct tproxy_watch *w, unsigned need);

/* The kinds (TPROXY_* bits) the checks cover. */
unsigned tproxy_watch_covered(const struct tproxy_watch *w);

/* Whether a re-check is due (something failed, not once-only). */
bool tproxy_watch_rechecking(const struct tproxy_watch *w);

#endif
