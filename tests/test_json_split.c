/* Elements of a JSON array that arrives in pieces cut anywhere: the same
 * elements whatever the cuts (strings with brackets and escaped quotes in
 * them, nesting, bare scalars), framing errors refused, an element over
 * the bound refused without keeping it. */
#include "check_run.h"
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "berth/json_split.h"

struct seen {
    char all[1024]; /* the elements, each followed by '|' */
    size_t len;
    int stop_at; /* fail the n-th element (0: never) */
    int count;
};

static int keep(void *arg, const char *elem, size_t len, char *err, size_t errlen)
{
    struct seen *s = arg;
    if (++s->count == s->stop_at) {
        snprintf(err, errlen, "refused element %d", s->count);
        return -1;
    }
    ck_assert_uint_lt(s->len + len + 1, sizeof s->all);
    memcpy(s->all + s->len, elem, len);
    s->len += len;
    s->all[s->len++] = '|';
    s->all[s->len] = '\0';
    return 0;
}

/* Feeds text in pieces of at most `piece` bytes; 0 or -1 with err. */
static int split(const char *text, size_t piece, size_t max, struct seen *s, char *err,
                 size_t errlen)
{
    struct json_split js = JSON_SPLIT_INIT(max);
    size_t len = strlen(text);
    int rc = 0;
    for (size_t at = 0; at < len && rc == 0; at += piece) {
        size_t n = len - at < piece ? len - at : piece;
        rc = json_split_feed(&js, text + at, n, keep, s, err, errlen);
    }
    if (rc == 0)
        rc = json_split_end(&js, err, errlen);
    json_split_release(&js);
    return rc;
}

static const char *array = " [ {\"Id\": \"a]}\\\"[{\", \"x\": [1, {\"y\": \"}\"}]},\n"
                           "  [ ], \"str,]\\\\\", 12.5e3 ,true, null, {} ] \r\n";
static const char *elements =
    "{\"Id\": \"a]}\\\"[{\", \"x\": [1, {\"y\": \"}\"}]}|[ ]|\"str,]\\\\\"|12.5e3|true|null|{}|";

START_TEST(test_same_elements_whatever_the_cuts)
{
    for (size_t piece = 1; piece <= strlen(array); piece++) {
        struct seen s = {0};
        char err[100] = "";
        ck_assert_msg(split(array, piece, 100, &s, err, sizeof err) == 0,
                      "pieces of %zu: %s", piece, err);
        ck_assert_str_eq(s.all, elements);
    }
}
END_TEST

START_TEST(test_empty_array)
{
    struct seen s = {0};
    char err[100];
    ck_assert_int_eq(split("[]", 1, 100, &s, err, sizeof err), 0);
    ck_assert_int_eq(split(" [ \n ] ", 2, 100, &s, err, sizeof err), 0);
    ck_assert_uint_eq(s.len, 0);
}
END_TEST

static const struct {
    const char *text, *error;
} bads[] = {
    {"", "not a JSON array"},
    {"{\"message\": \"no\"}", "not a JSON array"},
    {"[1 2]", "no ',' or ']' after an element"},
    {"[1,,2]", "an element is not a JSON value"},
    {"[1,]", "an element is not a JSON value"},
    {"[:]", "an element is not a JSON value"},
    {"[1]x", "bytes after the array"},
    {"[1] [2]", "bytes after the array"},
    {"[{\"a\": 1}", "the array ended early"},
    {"[{\"a\": \"b}]", "the array ended early"},
    {"[\"0123456789abcdef0123\"]", "an element longer than 16 bytes"},
};

START_TEST(test_framing_refused)
{
    for (size_t piece = 1; piece <= 3; piece++) {
        struct seen s = {0};
        char err[100] = "";
        ck_assert_msg(split(bads[_i].text, piece, 16, &s, err, sizeof err) == -1,
                      "'%s' accepted", bads[_i].text);
        ck_assert_str_eq(err, bads[_i].error);
    }
}
END_TEST

/* An element that never ends keeps no more than the bound, and after a
 * refusal everything is refused until a reset. */
START_TEST(test_endless_element_bounded_and_refused_after)
{
    struct json_split js = JSON_SPLIT_INIT(4096);
    struct seen s = {0};
    char err[100], junk[1000];
    memset(junk, 'x', sizeof junk);
    ck_assert_int_eq(json_split_feed(&js, "[{\"k\": \"", 8, keep, &s, err, sizeof err),
                     0);
    int rc, pieces = 0;
    do {
        rc = json_split_feed(&js, junk, sizeof junk, keep, &s, err, sizeof err);
        pieces++;
    } while (rc == 0 && pieces < 100);
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(pieces, 5);
    ck_assert_str_eq(err, "an element longer than 4096 bytes");
    ck_assert_uint_le(js.cap, 4096);
    ck_assert_int_eq(json_split_feed(&js, "]", 1, keep, &s, err, sizeof err), -1);
    ck_assert_str_eq(err, "refused after an earlier error");
    json_split_reset(&js);
    ck_assert_int_eq(json_split_feed(&js, "[7]", 3, keep, &s, err, sizeof err), 0);
    ck_assert_int_eq(json_split_end(&js, err, sizeof err), 0);
    ck_assert_str_eq(s.all, "7|");
    json_split_release(&js);
    json_split_release(&js); /* twice: still fine */
}
END_TEST

START_TEST(test_callback_stops_the_feed)
{
    struct seen s = {.stop_at = 2};
    char err[100];
    ck_assert_int_eq(split("[1, 2, 3]", 100, 100, &s, err, sizeof err), -1);
    ck_assert_str_eq(err, "refused element 2");
    ck_assert_str_eq(s.all, "1|");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("json_split");
    TCase *tc = tcase_create("json_split");
    tcase_add_test(tc, test_same_elements_whatever_the_cuts);
    tcase_add_test(tc, test_empty_array);
    tcase_add_loop_test(tc, test_framing_refused, 0, sizeof bads / sizeof bads[0]);
    tcase_add_test(tc, test_endless_element_bounded_and_refused_after);
    tcase_add_test(tc, test_callback_stops_the_feed);
    suite_add_tcase(s, tc);
    return check_run(s);
}
