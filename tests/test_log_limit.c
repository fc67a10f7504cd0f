/* Rate-limited lines (log_limit): the first said, repeats counted and
 * summarised once per window while they go on, keys kept apart, the table
 * bounded. Time is whatever the test passes: no clock is read. */
#include "check_run.h"
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "berth/log_limit.h"

#define WINDOW 10000

/* The summaries said, in order. */
struct heard {
    char line[16][LOG_LIMIT_TEXT + 80];
    enum log_level level[16];
    int n;
};

static void sink(void *arg, enum log_level level, const char *line)
{
    struct heard *h = arg;
    ck_assert_int_lt(h->n, 16);
    snprintf(h->line[h->n], sizeof h->line[0], "%s", line);
    h->level[h->n++] = level;
}

static const int port_a, port_b; /* two scopes: only their addresses count */

/* One event; when it is to be said, the test writes its words and counts. */
static int ev(struct log_limit *l, const void *scope, uint64_t key, uint64_t now,
              const char *words)
{
    char *text = log_limit_event(l, scope, key, LOG_WARN, now);
    if (!text)
        return 0;
    snprintf(text, LOG_LIMIT_TEXT, "%s", words);
    return 1;
}

START_TEST(test_300_refusals_are_one_line_and_one_summary)
{
    struct heard h = {0};
    struct log_limit *l = log_limit_new(8, WINDOW, sink, &h);
    ck_assert_ptr_nonnull(l);
    ck_assert_uint_eq(log_limit_due(l), UINT64_MAX);
    int said = 0;
    for (int i = 0; i < 300; i++) /* 300 connections within 3 s */
        said += ev(l, &port_a, 111, 1000 + (uint64_t)i * 10, "p: connect x: refused");
    ck_assert_int_eq(said, 1);
    ck_assert_uint_eq(log_limit_due(l), 1000 + WINDOW);
    log_limit_flush(l, 1000 + WINDOW - 1); /* not yet */
    ck_assert_int_eq(h.n, 0);
    log_limit_flush(l, 1000 + WINDOW);
    ck_assert_int_eq(h.n, 1);
    ck_assert_str_eq(h.line[0], "p: connect x: refused (300 times in the last 10 s)");
    ck_assert_int_eq(h.level[0], LOG_WARN);
    /* It went on: the next window only counts, and is summarised too. */
    ck_assert_uint_eq(log_limit_due(l), 1000 + 2 * WINDOW);
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(ev(l, &port_a, 111, 12000 + (uint64_t)i, "again"), 0);
    log_limit_flush(l, 1000 + 2 * WINDOW);
    ck_assert_int_eq(h.n, 2);
    ck_assert_str_eq(h.line[1], "p: connect x: refused (7 times in the last 10 s)");
    /* A quiet window: forgotten without a word, the next one said again. */
    log_limit_flush(l, 1000 + 3 * WINDOW);
    ck_assert_int_eq(h.n, 2);
    ck_assert_uint_eq(log_limit_due(l), UINT64_MAX);
    ck_assert_int_eq(ev(l, &port_a, 111, 40000, "p: back"), 1);
    log_limit_free(l);
}
END_TEST

START_TEST(test_once_is_no_summary)
{
    struct heard h = {0};
    struct log_limit *l = log_limit_new(8, WINDOW, sink, &h);
    ck_assert_int_eq(ev(l, &port_a, 1, 0, "once"), 1);
    log_limit_flush(l, WINDOW);
    ck_assert_int_eq(h.n, 0); /* said once: nothing to add */
    ck_assert_uint_eq(log_limit_due(l), UINT64_MAX);
    ck_assert_int_eq(ev(l, &port_a, 1, WINDOW + 1, "once"), 1);
    log_limit_free(l);
}
END_TEST

START_TEST(test_ports_and_reasons_apart)
{
    struct heard h = {0};
    struct log_limit *l = log_limit_new(8, WINDOW, sink, &h);
    /* One port flooding does not mute another's line, nor another reason. */
    for (int i = 0; i < 50; i++)
        ev(l, &port_a, 1, (uint64_t)i, "a: refused");
    ck_assert_int_eq(ev(l, &port_b, 1, 60, "b: refused"), 1);
    ck_assert_int_eq(ev(l, &port_a, 2, 70, "a: timed out"), 1);
    ck_assert_int_eq(ev(l, &port_b, 1, 80, "b: refused"), 0);
    log_limit_flush(l, 5000 + WINDOW);
    ck_assert_int_eq(h.n, 2);
    ck_assert_str_eq(h.line[0], "a: refused (50 times in the last 15 s)");
    ck_assert_str_eq(h.line[1], "b: refused (2 times in the last 15 s)");
    log_limit_free(l);
}
END_TEST

START_TEST(test_event_after_window_ends_it_first)
{
    /* The flush timer may run late: an event past the window still ends
     * it first, so the count covers only the window. */
    struct heard h = {0};
    struct log_limit *l = log_limit_new(4, WINDOW, sink, &h);
    ev(l, &port_a, 1, 0, "a");
    ev(l, &port_a, 1, 1, "a");
    ck_assert_int_eq(ev(l, &port_a, 1, WINDOW + 3000, "a"), 0);
    ck_assert_int_eq(h.n, 1);
    ck_assert_str_eq(h.line[0], "a (2 times in the last 13 s)");
    /* ...and this event opened the next window, counted from then. */
    ck_assert_uint_eq(log_limit_due(l), 2 * WINDOW + 3000);
    log_limit_flush(l, 2 * WINDOW + 3000);
    ck_assert_str_eq(h.line[1], "a (1 time in the last 10 s)");
    log_limit_free(l);
}
END_TEST

START_TEST(test_full_table_counts_the_rest_together)
{
    struct heard h = {0};
    struct log_limit *l = log_limit_new(2, WINDOW, sink, &h);
    ck_assert_int_eq(ev(l, &port_a, 1, 0, "a1"), 1);
    ck_assert_int_eq(ev(l, &port_a, 2, 0, "a2"), 1);
    for (uint64_t k = 3; k < 103; k++) /* 100 more kinds: never said alone */
        ck_assert_int_eq(ev(l, &port_a, k, 100, "x"), 0);
    ck_assert_ptr_null(log_limit_event(l, &port_b, 9, LOG_ERROR, 200));
    log_limit_flush(l, WINDOW + 200);
    ck_assert_int_eq(h.n, 1); /* a1 and a2 said once each: forgotten */
    ck_assert_str_eq(h.line[0], "101 more lines not shown in the last 10 s (too many "
                                "kinds of repeated line at once)");
    ck_assert_int_eq(h.level[0], LOG_ERROR); /* the worst of them */
    /* Room again. */
    ck_assert_int_eq(ev(l, &port_b, 9, WINDOW + 300, "b9"), 1);
    log_limit_free(l);
}
END_TEST

START_TEST(test_flush_scope_says_its_own_now)
{
    struct heard h = {0};
    struct log_limit *l = log_limit_new(4, WINDOW, sink, &h);
    for (int i = 0; i < 3; i++) {
        ev(l, &port_a, 1, (uint64_t)i, "a");
        ev(l, &port_b, 1, (uint64_t)i, "b");
    }
    log_limit_flush_scope(l, &port_a, 2400); /* port a closes */
    ck_assert_int_eq(h.n, 1);
    ck_assert_str_eq(h.line[0], "a (3 times in the last 2 s)");
    ck_assert_int_eq(ev(l, &port_a, 1, 2500, "a"), 1); /* a fresh start */
    log_limit_flush_scope(l, NULL, 2600);              /* everything: at exit */
    ck_assert_int_eq(h.n, 2);
    ck_assert_str_eq(h.line[1], "b (3 times in the last 3 s)");
    ck_assert_uint_eq(log_limit_due(l), UINT64_MAX);
    log_limit_free(l);
}
END_TEST

START_TEST(test_long_text_cut)
{
    struct heard h = {0};
    struct log_limit *l = log_limit_new(1, WINDOW, sink, &h);
    char *text = log_limit_event(l, &port_a, 1, LOG_INFO, 0);
    ck_assert_ptr_nonnull(text);
    memset(text, 'x', LOG_LIMIT_TEXT - 1);
    text[LOG_LIMIT_TEXT - 1] = '\0';
    ev(l, &port_a, 1, 1, ""); /* a warning of the same kind */
    log_limit_flush(l, WINDOW);
    ck_assert_int_eq(h.n, 1);
    ck_assert_int_eq(h.level[0], LOG_WARN); /* the summary: the worst of them */
    ck_assert_ptr_nonnull(strstr(h.line[0], "x (2 times in the last 10 s)"));
    log_limit_free(l);
    log_limit_free(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log_limit");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_300_refusals_are_one_line_and_one_summary);
    tcase_add_test(tc, test_once_is_no_summary);
    tcase_add_test(tc, test_ports_and_reasons_apart);
    tcase_add_test(tc, test_event_after_window_ends_it_first);
    tcase_add_test(tc, test_full_table_counts_the_rest_together);
    tcase_add_test(tc, test_flush_scope_says_its_own_now);
    tcase_add_test(tc, test_long_text_cut);
    suite_add_tcase(s, tc);
    return check_run(s);
}
