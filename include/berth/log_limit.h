/* Rate-limited log lines: a line that would repeat once per connection,
 * flow or datagram (a refusing target, a name that resolves to nothing) is
 * said when it first happens, then only counted, and summarised once per
 * window while it goes on:
 *   "<text> (300 times in the last 10 s)"
 * Each kind of line is a key, (scope, key): the caller's object (a port's
 * mapping) and a number that tells reasons apart (an errno, an address),
 * so one port's failures never mute another's.
 *
 * Pure and bounded: a fixed table made once, nothing allocated per event,
 * no timer and no clock of its own: the caller passes the time (clock_ms)
 * and calls log_limit_flush when log_limit_due says, so tests drive it
 * with any time they like. Summaries go to the sink given at creation. */
#ifndef BERTH_LOG_LIMIT_H
#define BERTH_LOG_LIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "berth/log.h"

/* The room for the words a summary repeats (the rest is cut). */
#define LOG_LIMIT_TEXT 512

/* Says one summary line (text and count already joined). */
typedef void log_limit_sink(void *arg, enum log_level level, const char *line);

struct log_limit;

/* slots: how many kinds of line are followed at once (past that, new
 * kinds are only counted together, see log_limit_event); window_ms: the
 * summary's period. NULL: out of memory. */
struct log_limit *log_limit_new(size_t slots, uint64_t window_ms, log_limit_sink *sink,
                                void *arg);
/* Frees without a word: log_limit_flush_scope(l, NULL, now) first says
 * what is still counted. */
void log_limit_free(struct log_limit *l);

/* An event of kind (scope, key) at now (scope non-NULL). Returns a buffer
 * of LOG_LIMIT_TEXT bytes when the caller is to log the event itself: it
 * writes into it, NUL-terminated, the words its summary will repeat (one
 * line without the per-event detail). Returns NULL when the event is only
 * counted: said already in this window, or the table is full (then it
 * counts among "other lines"). */
char *log_limit_event(struct log_limit *l, const void *scope, uint64_t key,
                      enum log_level level, uint64_t now);

/* When log_limit_flush has something to do next; UINT64_MAX: nothing. */
uint64_t log_limit_due(const struct log_limit *l);

/* Ends every window over by now: a kind that repeated in it is
 * summarised and followed for another window, one that did not is
 * forgotten (its next event is said again). */
void log_limit_flush(struct log_limit *l, uint64_t now);

/* Ends the windows of scope now (its object goes away), or of every
 * scope when scope is NULL: summarises what repeated, forgets them. */
void log_limit_flush_scope(struct log_limit *l, const void *scope, uint64_t now);

#endif
