#include "berth/drain.h"

#include <stdlib.h>
#include <string.h>

struct drain {
    struct event *timer;
    struct timeval period;
    drain_active_fn *active;
    drain_release_fn *release;
    /* Oldest first (drain_item counts from the end); a reload removes a
     * handful of ports, so a removal's memmove costs nothing. */
    void **items;
    size_t n, cap;
};

static void on_check(evutil_socket_t fd, short what, void *arg)
{
    struct drain *d = arg;
    (void)fd;
    (void)what;
    /* Newest first, as drain_item: released in that order. */
    for (size_t i = d->n; i-- > 0;) {
        if (d->active(d->items[i]) != 0)
            continue;
        void *item = d->items[i];
        memmove(&d->items[i], &d->items[i + 1], (d->n - i - 1) * sizeof *d->items);
        d->n--;
        d->release(item, true);
    }
    if (d->n)
        evtimer_add(d->timer, &d->period);
}

struct drain *drain_new(struct event_base *base, unsigned period_ms,
                        drain_active_fn *active, drain_release_fn *release)
{
    struct drain *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    if (!(d->timer = evtimer_new(base, on_check, d))) {
        free(d);
        return NULL;
    }
    d->period.tv_sec = period_ms / 1000;
    d->period.tv_usec = (period_ms % 1000) * 1000;
    d->active = active;
    d->release = release;
    return d;
}

void drain_free(struct drain *d)
{
    if (!d)
        return;
    event_free(d->timer);
    for (size_t i = d->n; i-- > 0;)
        d->release(d->items[i], false);
    free(d->items);
    free(d);
}

int drain_add(struct drain *d, void *item)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        void **items = realloc(d->items, cap * sizeof *items);
        if (!items)
            return -1;
        d->items = items;
        d->cap = cap;
    }
    d->items[d->n++] = item;
    evtimer_add(d->timer, &d->period);
    return 0;
}

void drain_release(struct drain *d, size_t i)
{
    size_t at = d->n - 1 - i;
    void *item = d->items[at];
    memmove(&d->items[at], &d->items[at + 1], (d->n - at - 1) * sizeof *d->items);
    d->n--;
    d->release(item, false);
}

size_t drain_count(const struct drain *d) { return d->n; }

void *drain_item(const struct drain *d, size_t i) { return d->items[d->n - 1 - i]; }
