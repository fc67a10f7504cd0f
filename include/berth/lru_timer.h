/* Entries that come due at a fixed age: an intrusive list in order of
 * joining or last touch (lru.h), oldest first, under one libevent timer set
 * for the oldest. tcp_relay keeps two: sessions silent for the idle timeout,
 * and sessions a second old that get keepalive on the target's socket.
 *
 * The timer is set for the oldest entry's due time as it was then: one
 * touched or gone since is found so only when the timer fires, which hands
 * the due ones to the callback and re-arms for what is left. So a touch is
 * O(1) and makes no syscall (the monotonic clock is read through the vDSO),
 * and the timer is stopped only when the last entry leaves, so a burst of
 * short-lived entries leaves no wake-up behind.
 *
 * Ownership: the owner embeds a struct lru_timer_node per entry and gets
 * back to itself with LRU_ENTRY(node, type, member); the timer owns only
 * its event. */
#ifndef BERTH_LRU_TIMER_H
#define BERTH_LRU_TIMER_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "berth/lru.h"

struct lru_timer_node {
    struct lru_node lru;
    uint64_t since_ms; /* joined or last touched, while in */
    bool in;           /* in the timer's list */
};

/* n has come due and already left the list: the callback may free its
 * owner, and join, touch or leave other entries of the same timer. */
typedef void lru_timer_due_fn(struct lru_timer_node *n, void *arg);

struct lru_timer {
    struct lru list;
    struct event *ev; /* NULL while off */
    uint64_t after_ms;
    lru_timer_due_fn *due;
    void *arg;
};

/* An empty timer on base for entries due after_ms after they join or were
 * last touched; after_ms 0 makes it off (joining does nothing). Returns 0,
 * or -1 when out of memory. */
int lru_timer_init(struct lru_timer *t, struct event_base *base, uint64_t after_ms,
                   lru_timer_due_fn *due, void *arg);
/* Frees the event; the entries must have left. */
void lru_timer_clear(struct lru_timer *t);

/* n (not in yet) joins as the newest, counting from now. */
void lru_timer_join(struct lru_timer *t, struct lru_timer_node *n);
/* n counts from now again, if it is in. */
void lru_timer_touch(struct lru_timer *t, struct lru_timer_node *n);
/* n leaves, if it is in; the timer stops when no entry is left. */
void lru_timer_leave(struct lru_timer *t, struct lru_timer_node *n);

#endif
