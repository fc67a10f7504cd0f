/* The timer of entries due at an age, on a real event_base: entries come
 * due oldest first and never early, a touch puts one back in line without
 * touching the timer, the timer stops when the last entry leaves (the loop
 * then has nothing to wait for), and one that left is never due. */
#include "check_run.h"

#include "berth/clock.h"
#include "berth/lru_timer.h"
#include "looptest.h"

/* Long next to the test's own steps (tens of ms), so a loaded machine
 * does not see an entry due before the test has set the scene. */
#define AFTER_MS 200

struct item {
    struct lru_timer_node node;
    int id;
    uint64_t joined_ms; /* or last touched: its since_ms then */
};

struct fx {
    struct event_base *base;
    struct lru_timer t;
    int order[8]; /* ids in the order they came due */
    uint64_t at[8];
    int n;
    struct item *leave_next; /* left by the first due callback */
};

static void on_due(struct lru_timer_node *n, void *arg)
{
    struct fx *f = arg;
    struct item *it = LRU_ENTRY(n, struct item, node);
    ck_assert_msg(!n->in, "item %d still in when due", it->id);
    ck_assert_int_lt(f->n, 8);
    f->order[f->n] = it->id;
    f->at[f->n] = clock_ms();
    f->n++;
    if (f->leave_next) {
        lru_timer_leave(&f->t, &f->leave_next->node);
        f->leave_next = NULL;
    }
}

static void fx_start(struct fx *f, uint64_t after_ms)
{
    memset(f, 0, sizeof *f);
    f->base = event_base_new();
    ck_assert_ptr_nonnull(f->base);
    ck_assert_int_eq(lru_timer_init(&f->t, f->base, after_ms, on_due, f), 0);
}

static void fx_stop(struct fx *f)
{
    lru_timer_clear(&f->t);
    event_base_free(f->base);
}

static void join(struct fx *f, struct item *it, int id)
{
    memset(it, 0, sizeof *it);
    it->id = id;
    lru_timer_join(&f->t, &it->node);
    it->joined_ms = it->node.since_ms;
}

/* Runs the loop for about ms: the timer's wake-ups happen meanwhile. */
static void run_for(struct fx *f, uint64_t ms)
{
    struct timeval tv = clock_tv(ms);
    event_base_loopexit(f->base, &tv);
    event_base_dispatch(f->base);
}

/* n items join, gap_ms apart, the loop running meanwhile. */
static void join_spaced(struct fx *f, struct item *it, int n, uint64_t gap_ms)
{
    for (int i = 0; i < n; i++) {
        join(f, &it[i], i);
        run_for(f, gap_ms);
    }
}

/* Runs the loop until it has nothing left to wait for: with the timer the
 * only event, until the last entry came due or left and the timer
 * stopped. Bounded by Check's timeout. Returns how long it took. */
static uint64_t run_out(struct fx *f)
{
    uint64_t t0 = clock_ms();
    ck_assert_int_eq(event_base_dispatch(f->base), 1); /* 1: no events left */
    return clock_ms() - t0;
}

/* Oldest first, each no earlier than its age, all out of the list after. */
START_TEST(test_due_in_order_never_early)
{
    struct fx f;
    struct item it[3];
    fx_start(&f, AFTER_MS);
    join_spaced(&f, it, 3, 20);
    run_out(&f);
    ck_assert_int_eq(f.n, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(f.order[i], i);
        ck_assert_msg(f.at[i] >= it[i].joined_ms + AFTER_MS,
                      "item %d due after %llu ms", i,
                      (unsigned long long)(f.at[i] - it[i].joined_ms));
        ck_assert(!it[i].node.in);
    }
    ck_assert_ptr_null(f.t.list.oldest);
    ck_assert(!evtimer_pending(f.t.ev, NULL));
    fx_stop(&f);
}
END_TEST

/* A touch moves the entry behind the others and counts its age from then:
 * the timer, set for it as it was, fires, finds the other one due later
 * and re-arms; the touched one is due its full age after the touch. */
START_TEST(test_touch_rearms_for_later)
{
    struct fx f;
    struct item a, b;
    fx_start(&f, AFTER_MS);
    join(&f, &a, 0);
    run_for(&f, 30);
    join(&f, &b, 1);
    run_for(&f, 30);
    struct timeval set_for;
    ck_assert(evtimer_pending(f.t.ev, &set_for));
    lru_timer_touch(&f.t, &a.node);
    a.joined_ms = a.node.since_ms;
    /* Traffic leaves the timer alone: still set for a as it was. */
    struct timeval still;
    ck_assert(evtimer_pending(f.t.ev, &still));
    ck_assert(timercmp(&still, &set_for, ==));
    run_out(&f);
    ck_assert_int_eq(f.n, 2);
    ck_assert_int_eq(f.order[0], 1);
    ck_assert_int_eq(f.order[1], 0);
    ck_assert_msg(f.at[1] >= a.joined_ms + AFTER_MS, "touched item due %llu ms after",
                  (unsigned long long)(f.at[1] - a.joined_ms));
    ck_assert_msg(f.at[0] >= b.joined_ms + AFTER_MS, "item due %llu ms after",
                  (unsigned long long)(f.at[0] - b.joined_ms));
    fx_stop(&f);
}
END_TEST

/* The last entry leaving stops the timer: a burst of short-lived entries
 * leaves no wake-up, so the loop has nothing to wait for at once. One
 * still in keeps it; a second leave, or a touch after, does nothing. */
START_TEST(test_stops_when_empty)
{
    struct fx f;
    struct item it[4];
    fx_start(&f, AFTER_MS);
    for (int i = 0; i < 4; i++)
        join(&f, &it[i], i);
    ck_assert(evtimer_pending(f.t.ev, NULL));
    for (int i = 0; i < 3; i++)
        lru_timer_leave(&f.t, &it[i].node);
    ck_assert(evtimer_pending(f.t.ev, NULL));
    lru_timer_leave(&f.t, &it[3].node);
    ck_assert(!evtimer_pending(f.t.ev, NULL));
    lru_timer_leave(&f.t, &it[3].node);
    lru_timer_touch(&f.t, &it[3].node);
    ck_assert_ptr_null(f.t.list.oldest);
    ck_assert_uint_lt(run_out(&f), AFTER_MS / 2);
    ck_assert_int_eq(f.n, 0);
    fx_stop(&f);
}
END_TEST

/* One that leaves before its time is never due, the oldest included (the
 * timer set for it fires, finds the next not yet due, and waits for it);
 * a due callback may make another leave. */
START_TEST(test_leave_before_due)
{
    struct fx f;
    struct item it[4];
    fx_start(&f, AFTER_MS);
    join_spaced(&f, it, 4, 10);
    lru_timer_leave(&f.t, &it[0].node); /* the oldest: the timer is its */
    lru_timer_leave(&f.t, &it[2].node);
    f.leave_next = &it[3]; /* left by 1's callback */
    run_out(&f);
    ck_assert_int_eq(f.n, 1);
    ck_assert_int_eq(f.order[0], 1);
    ck_assert(f.at[0] >= it[1].joined_ms + AFTER_MS);
    for (int i = 0; i < 4; i++)
        ck_assert(!it[i].node.in);
    fx_stop(&f);
}
END_TEST

/* after_ms 0: off, with no event; joining does nothing. */
START_TEST(test_off)
{
    struct fx f;
    struct item it;
    fx_start(&f, 0);
    ck_assert_ptr_null(f.t.ev);
    join(&f, &it, 0);
    ck_assert(!it.node.in);
    ck_assert_ptr_null(f.t.list.oldest);
    lru_timer_leave(&f.t, &it.node);
    ck_assert_int_eq(event_base_dispatch(f.base), 1);
    fx_stop(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lru_timer");
    TCase *tc = tcase_create("timer");
    t_tcase_timeout(tc, 10);
    tcase_add_test(tc, test_due_in_order_never_early);
    tcase_add_test(tc, test_touch_rearms_for_later);
    tcase_add_test(tc, test_stops_when_empty);
    tcase_add_test(tc, test_leave_before_due);
    tcase_add_test(tc, test_off);
    suite_add_tcase(s, tc);
    return check_run(s);
}
