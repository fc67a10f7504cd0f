/* Lines out of a stream cut anywhere (Docker's event stream): carried
 * over between pieces, many to a piece, an overlong one dropped to its
 * end however long it runs, and a reset. */
#include "check_run.h"
#include <check.h>
#include <string.h>

#include "berth/line_split.h"

struct seen {
    char all[256]; /* the lines, each followed by '|' */
    size_t len;
};

static void keep(void *arg, const char *line, size_t len)
{
    struct seen *s = arg;
    ck_assert_uint_lt(s->len + len + 1, sizeof s->all);
    memcpy(s->all + s->len, line, len);
    s->len += len;
    s->all[s->len++] = '|';
    s->all[s->len] = '\0';
}

static int feed(struct line_split *ls, const char *text, struct seen *s)
{
    return line_split_feed(ls, text, strlen(text), keep, s);
}

START_TEST(test_pieces)
{
    struct line_split ls = LINE_SPLIT_INIT(64);
    struct seen s = {0};
    ck_assert_int_eq(feed(&ls, "{\"a\"", &s), 0);
    ck_assert_uint_eq(s.len, 0);
    ck_assert_int_eq(feed(&ls, ":1}\n{\"b\":2}\n\n{\"c\"", &s), 0);
    ck_assert_str_eq(s.all, "{\"a\":1}|{\"b\":2}|");
    ck_assert_int_eq(feed(&ls, ":3}\n", &s), 0);
    ck_assert_str_eq(s.all, "{\"a\":1}|{\"b\":2}|{\"c\":3}|");
    ck_assert_uint_eq(ls.len, 0);
    line_split_release(&ls);
}
END_TEST

START_TEST(test_overlong_line_dropped_to_its_end)
{
    struct line_split ls = LINE_SPLIT_INIT(8);
    struct seen s = {0};
    ck_assert_int_eq(feed(&ls, "short\n0123456789", &s), -1);
    ck_assert_int_eq(feed(&ls, "still the long one", &s), 0);
    ck_assert_int_eq(feed(&ls, " end\nnext\n", &s), 0);
    ck_assert_str_eq(s.all, "short|next|");
    /* Complete lines are not bounded, only an unfinished one. */
    ck_assert_int_eq(feed(&ls, "a line longer than eight\n", &s), 0);
    ck_assert_str_eq(s.all, "short|next|a line longer than eight|");
    line_split_release(&ls);
}
END_TEST

START_TEST(test_endless_line_keeps_memory_flat)
{
    struct line_split ls = LINE_SPLIT_INIT(1024);
    struct seen s = {0};
    char piece[700];
    memset(piece, 'x', sizeof piece);
    ck_assert_int_eq(line_split_feed(&ls, piece, sizeof piece, keep, &s), 0);
    ck_assert_int_eq(line_split_feed(&ls, piece, sizeof piece, keep, &s), -1);
    size_t cap = ls.cap;
    /* 7 MB more of the same line: nothing more is kept. */
    for (int i = 0; i < 10000; i++)
        ck_assert_int_eq(line_split_feed(&ls, piece, sizeof piece, keep, &s), 0);
    ck_assert_uint_eq(ls.len, 0);
    ck_assert_uint_eq(ls.cap, cap);
    ck_assert_int_eq(feed(&ls, "xx\nafter\n", &s), 0);
    ck_assert_str_eq(s.all, "after|");
    line_split_release(&ls);
}
END_TEST

START_TEST(test_reset)
{
    struct line_split ls = LINE_SPLIT_INIT(64);
    struct seen s = {0};
    ck_assert_int_eq(feed(&ls, "half a li", &s), 0);
    line_split_reset(&ls);
    ck_assert_int_eq(feed(&ls, "x\n", &s), 0);
    ck_assert_str_eq(s.all, "x|");
    line_split_release(&ls);
    line_split_release(&ls); /* released twice: still fine */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("line_split");
    TCase *tc = tcase_create("line_split");
    tcase_add_test(tc, test_pieces);
    tcase_add_test(tc, test_overlong_line_dropped_to_its_end);
    tcase_add_test(tc, test_endless_line_keeps_memory_flat);
    tcase_add_test(tc, test_reset);
    suite_add_tcase(s, tc);
    return check_run(s);
}
