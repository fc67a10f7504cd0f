#include "berth/lru_timer.h"

#include "berth/clock.h"

static struct lru_timer_node *oldest(struct lru_timer *t)
{
    return t->list.oldest ? LRU_ENTRY(t->list.oldest, struct lru_timer_node, lru)
                          : NULL;
}

/* Set for the oldest as it is now, unless already set (for an entry as it
 * was then): see lru_timer.h. */
static void arm(struct lru_timer *t, uint64_t now)
{
    struct lru_timer_node *n = oldest(t);
    if (!n || evtimer_pending(t->ev, NULL))
        return;
    uint64_t due = n->since_ms + t->after_ms;
    /* One ms late rather than early: the clock counts whole ms, so the
     * entry is then surely due, and the wake-up finds it. */
    struct timeval tv = clock_tv((due > now ? due - now : 0) + 1);
    evtimer_add(t->ev, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct lru_timer *t = arg;
    (void)fd;
    (void)what;
    uint64_t now = clock_ms();
    struct lru_timer_node *n;
    while ((n = oldest(t)) && n->since_ms + t->after_ms <= now) {
        lru_timer_leave(t, n);
        t->due(n, t->arg);
    }
    arm(t, now);
}

int lru_timer_init(struct lru_timer *t, struct event_base *base, uint64_t after_ms,
                   lru_timer_due_fn *due, void *arg)
{
    *t = (struct lru_timer){.after_ms = after_ms, .due = due, .arg = arg};
    if (after_ms && !(t->ev = evtimer_new(base, on_timer, t)))
        return -1;
    return 0;
}

void lru_timer_clear(struct lru_timer *t)
{
    if (t->ev)
        event_free(t->ev);
    t->ev = NULL;
    t->list = (struct lru){0};
}

void lru_timer_join(struct lru_timer *t, struct lru_timer_node *n)
{
    if (!t->ev)
        return;
    n->in = true;
    n->since_ms = clock_ms();
    lru_push(&t->list, &n->lru);
    arm(t, n->since_ms);
}

void lru_timer_touch(struct lru_timer *t, struct lru_timer_node *n)
{
    if (n->in) {
        n->since_ms = clock_ms();
        lru_touch(&t->list, &n->lru);
    }
}

void lru_timer_leave(struct lru_timer *t, struct lru_timer_node *n)
{
    if (!n->in)
        return;
    lru_unlink(&t->list, &n->lru);
    n->in = false;
    /* No wake-up for nobody. */
    if (!t->list.oldest)
        evtimer_del(t->ev);
}
