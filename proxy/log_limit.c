#include "berth/log_limit.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

struct log_slot {
    const void *scope; /* NULL: free */
    uint64_t key;
    uint64_t start_ms; /* the window's start */
    uint64_t count;    /* events in the window, the one said included */
    uint64_t said;     /* of which said on their own (1 in the first window) */
    enum log_level level;
    char text[LOG_LIMIT_TEXT];
};

struct log_limit {
    uint64_t window_ms;
    log_limit_sink *sink;
    void *arg;
    uint64_t due; /* the earliest window end; UINT64_MAX: none */
    /* Events of kinds that found the table full, counted together. */
    uint64_t other, other_start_ms;
    enum log_level other_level;
    size_t n;
    struct log_slot slot[];
};

struct log_limit *log_limit_new(size_t slots, uint64_t window_ms, log_limit_sink *sink,
                                void *arg)
{
    struct log_limit *l = calloc(1, sizeof *l + slots * sizeof l->slot[0]);
    if (!l)
        return NULL;
    l->window_ms = window_ms;
    l->sink = sink;
    l->arg = arg;
    l->due = UINT64_MAX;
    l->n = slots;
    return l;
}

void log_limit_free(struct log_limit *l) { free(l); }

/* "10 s": how long a window ran, in whole seconds, at least 1. */
static unsigned secs(uint64_t from, uint64_t now)
{
    uint64_t s = now > from ? (now - from + 500) / 1000 : 0;
    return s ? (unsigned)(s > UINT32_MAX ? UINT32_MAX : s) : 1;
}

static void say(struct log_limit *l, enum log_level level, const char *text,
                uint64_t count, uint64_t from, uint64_t now)
{
    char line[LOG_LIMIT_TEXT + 64];
    snprintf(line, sizeof line, "%s (%" PRIu64 " time%s in the last %u s)", text,
             count, count == 1 ? "" : "s", secs(from, now));
    l->sink(l->arg, level, line);
}

static void say_other(struct log_limit *l, uint64_t now)
{
    char line[160];
    snprintf(line, sizeof line,
             "%" PRIu64 " more line%s not shown in the last %u s (too many kinds of "
             "repeated line at once)",
             l->other, l->other == 1 ? "" : "s", secs(l->other_start_ms, now));
    l->sink(l->arg, l->other_level, line);
    l->other = 0;
}

/* Ends s's window: summarised when it repeated, and then followed for
 * another window (again: until now) unless the owner goes (end). */
static void end_window(struct log_limit *l, struct log_slot *s, uint64_t now, bool end)
{
    bool repeated = s->count > s->said;
    if (repeated)
        say(l, s->level, s->text, s->count, s->start_ms, now);
    if (!repeated || end) {
        s->scope = NULL;
        return;
    }
    s->start_ms = now;
    s->count = s->said = 0;
}

static void recompute_due(struct log_limit *l)
{
    l->due = l->other ? l->other_start_ms + l->window_ms : UINT64_MAX;
    for (size_t i = 0; i < l->n; i++) {
        const struct log_slot *s = &l->slot[i];
        if (s->scope && s->start_ms + l->window_ms < l->due)
            l->due = s->start_ms + l->window_ms;
    }
}

uint64_t log_limit_due(const struct log_limit *l) { return l->due; }

void log_limit_flush(struct log_limit *l, uint64_t now)
{
    if (now < l->due)
        return;
    for (size_t i = 0; i < l->n; i++) {
        struct log_slot *s = &l->slot[i];
        if (s->scope && now >= s->start_ms + l->window_ms)
            end_window(l, s, now, false);
    }
    if (l->other && now >= l->other_start_ms + l->window_ms)
        say_other(l, now);
    recompute_due(l);
}

void log_limit_flush_scope(struct log_limit *l, const void *scope, uint64_t now)
{
    for (size_t i = 0; i < l->n; i++) {
        struct log_slot *s = &l->slot[i];
        if (s->scope && (!scope || s->scope == scope))
            end_window(l, s, now, true);
    }
    if (!scope && l->other)
        say_other(l, now);
    recompute_due(l);
}

char *log_limit_event(struct log_limit *l, const void *scope, uint64_t key,
                      enum log_level level, uint64_t now)
{
    log_limit_flush(l, now); /* windows over before this event */
    struct log_slot *free_slot = NULL;
    for (size_t i = 0; i < l->n; i++) {
        struct log_slot *s = &l->slot[i];
        if (!s->scope) {
            if (!free_slot)
                free_slot = s;
        } else if (s->scope == scope && s->key == key) {
            s->count++;
            if (level < s->level) /* the summary is as severe as the worst */
                s->level = level;
            return NULL;
        }
    }
    if (!free_slot) {
        if (!l->other++) {
            l->other_start_ms = now;
            l->other_level = level;
            if (now + l->window_ms < l->due)
                l->due = now + l->window_ms;
        } else if (level < l->other_level) {
            l->other_level = level;
        }
        return NULL;
    }
    *free_slot = (struct log_slot){.scope = scope,
                                   .key = key,
                                   .start_ms = now,
                                   .count = 1,
                                   .said = 1,
                                   .level = level};
    if (now + l->window_ms < l->due)
        l->due = now + l->window_ms;
    return free_slot->text;
}
