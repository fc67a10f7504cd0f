/* The list of ports a reload removed, with items standing in for ports on
 * a real event_base: an item is released once it has no client left,
 * never before, each exactly once; the rest are looked at again each
 * period; drain_free hands back what is still held; the list reads newest
 * first. */
#include "check_run.h"

#include "berth/drain.h"
#include "looptest.h"

#define PERIOD_MS 20

struct item {
    size_t clients;
    int released; /* times */
    bool idle;    /* how, the last time */
    int order;    /* when, among releases (1, 2, ...) */
    int *releases;
};

static size_t item_active(const void *p) { return ((const struct item *)p)->clients; }

static void item_release(void *p, bool idle)
{
    struct item *it = p;
    it->released++;
    it->idle = idle;
    it->order = ++*it->releases;
}

START_TEST(test_released_when_idle)
{
    struct event_base *base = event_base_new();
    int releases = 0;
    struct item a = {.clients = 2, .releases = &releases};
    struct item b = {.clients = 1, .releases = &releases};
    struct drain *d = drain_new(base, PERIOD_MS, item_active, item_release);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(drain_add(d, &a), 0);
    ck_assert_int_eq(drain_add(d, &b), 0);
    ck_assert_uint_eq(drain_count(d), 2);
    ck_assert_ptr_eq(drain_item(d, 0), &b); /* newest first */
    ck_assert_ptr_eq(drain_item(d, 1), &a);

    /* Clients left: looked at several times, kept. */
    t_pump_for(base, 4 * PERIOD_MS);
    ck_assert_int_eq(releases, 0);

    b.clients = 0;
    ck_assert(PUMP_UNTIL(base, 2000, b.released == 1));
    ck_assert(b.idle);
    ck_assert_int_eq(a.released, 0);
    ck_assert_uint_eq(drain_count(d), 1);
    ck_assert_ptr_eq(drain_item(d, 0), &a);

    a.clients = 1;
    t_pump_for(base, 3 * PERIOD_MS);
    ck_assert_int_eq(a.released, 0);
    a.clients = 0;
    ck_assert(PUMP_UNTIL(base, 2000, a.released == 1));
    ck_assert(a.idle);
    ck_assert_uint_eq(drain_count(d), 0);

    /* Empty: the timer stops, the loop has nothing left to wait for. */
    ck_assert_int_eq(event_base_loop(base, EVLOOP_ONCE), 1);
    ck_assert_int_eq(b.released, 1);
    drain_free(d);
    ck_assert_int_eq(a.released, 1);
    event_base_free(base);
}
END_TEST

/* Several idle at one look: all released, newest first. */
START_TEST(test_released_together_newest_first)
{
    struct event_base *base = event_base_new();
    int releases = 0;
    struct item it[5];
    struct drain *d = drain_new(base, PERIOD_MS, item_active, item_release);
    for (int i = 0; i < 5; i++) {
        it[i] = (struct item){.clients = 1, .releases = &releases};
        ck_assert_int_eq(drain_add(d, &it[i]), 0);
    }
    it[0].clients = it[2].clients = it[4].clients = 0;
    ck_assert(PUMP_UNTIL(base, 2000, releases == 3));
    ck_assert_int_eq(it[4].order, 1);
    ck_assert_int_eq(it[2].order, 2);
    ck_assert_int_eq(it[0].order, 3);
    ck_assert_uint_eq(drain_count(d), 2);
    ck_assert_ptr_eq(drain_item(d, 0), &it[3]);
    ck_assert_ptr_eq(drain_item(d, 1), &it[1]);

    /* Ended with clients left: handed back not idle, once. */
    drain_free(d);
    ck_assert_int_eq(it[1].released, 1);
    ck_assert_int_eq(it[3].released, 1);
    ck_assert(!it[1].idle && !it[3].idle);
    ck_assert_int_eq(it[3].order, 4); /* newest first again */
    for (int i = 0; i < 5; i += 2)
        ck_assert_int_eq(it[i].released, 1);
    drain_free(NULL);
    event_base_free(base);
}
END_TEST

/* An item added later moves the next look a period on: none is looked at
 * before a whole period has passed since the last add. */
START_TEST(test_add_moves_next_look)
{
    struct event_base *base = event_base_new();
    int releases = 0;
    struct item a = {.clients = 0, .releases = &releases};
    struct item b = {.clients = 0, .releases = &releases};
    struct drain *d = drain_new(base, 200, item_active, item_release);
    ck_assert_int_eq(drain_add(d, &a), 0);
    t_pump_for(base, 100);
    ck_assert_int_eq(releases, 0);
    ck_assert_int_eq(drain_add(d, &b), 0);
    /* a's first look was due 200 ms after its add: moved past it. */
    t_pump_for(base, 150);
    ck_assert_int_eq(releases, 0);
    ck_assert(PUMP_UNTIL(base, 3000, releases == 2));
    drain_free(d);
    ck_assert_int_eq(a.released + b.released, 2);
    event_base_free(base);
}
END_TEST

/* An item whose resources are needed again goes at once, clients or not,
 * and the rest stay held in order. */
START_TEST(test_release_now)
{
    struct event_base *base = event_base_new();
    int releases = 0;
    struct item a = {.clients = 1, .releases = &releases};
    struct item b = {.clients = 1, .releases = &releases};
    struct item c = {.clients = 1, .releases = &releases};
    struct drain *d = drain_new(base, PERIOD_MS, item_active, item_release);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(drain_add(d, &a), 0);
    ck_assert_int_eq(drain_add(d, &b), 0);
    ck_assert_int_eq(drain_add(d, &c), 0);
    drain_release(d, 1); /* b: the middle one, newest first */
    ck_assert_int_eq(b.released, 1);
    ck_assert(!b.idle);
    ck_assert_uint_eq(drain_count(d), 2);
    ck_assert_ptr_eq(drain_item(d, 0), &c);
    ck_assert_ptr_eq(drain_item(d, 1), &a);
    t_pump_for(base, 3 * PERIOD_MS);
    ck_assert_int_eq(b.released, 1); /* never again */
    drain_free(d);
    ck_assert_int_eq(a.released + c.released, 2);
    event_base_free(base);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("drain");
    TCase *tc = tcase_create("drain");
    t_tcase_timeout(tc, 10);
    tcase_add_test(tc, test_released_when_idle);
    tcase_add_test(tc, test_released_together_newest_first);
    tcase_add_test(tc, test_add_moves_next_look);
    tcase_add_test(tc, test_release_now);
    suite_add_tcase(s, tc);
    return check_run(s);
}
