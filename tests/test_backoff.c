/* The growing pause, and the base helpers beside it that everything
 * times and hashes with: the clock and the hash. */
#include "check_run.h"
#include <check.h>
#include <string.h>
#include <time.h>

#include "berth/backoff.h"
#include "berth/clock.h"
#include "berth/hash.h"

START_TEST(test_doubles_to_the_cap_and_resets)
{
    struct backoff b = BACKOFF_INIT(10, 1000);
    ck_assert_uint_eq(backoff_next(&b), 10);
    ck_assert(backoff_first(&b)); /* the one pause to say out loud */
    unsigned want[] = {20, 40, 80, 160, 320, 640, 1000, 1000};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ck_assert_uint_eq(backoff_next(&b), want[i]);
        ck_assert(!backoff_first(&b));
    }
    backoff_reset(&b);
    ck_assert_uint_eq(b.cur_ms, 0);
    ck_assert_uint_eq(backoff_next(&b), 10);
    ck_assert(backoff_first(&b));
}
END_TEST

START_TEST(test_clock)
{
    uint64_t a = clock_ms();
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    uint64_t b = clock_ms();
    ck_assert_uint_ge(b - a, 19); /* monotonic, in milliseconds */
    struct timeval tv = clock_tv(2345);
    ck_assert_int_eq(tv.tv_sec, 2);
    ck_assert_int_eq(tv.tv_usec, 345000);
}
END_TEST

/* FNV-1a's published 32-bit test vectors. */
START_TEST(test_hash_vectors)
{
    ck_assert_uint_eq(hash_bytes(HASH_INIT, "", 0), 0x811c9dc5u);
    ck_assert_uint_eq(hash_bytes(HASH_INIT, "a", 1), 0xe40c292cu);
    ck_assert_uint_eq(hash_bytes(HASH_INIT, "foobar", 6), 0xbf9cf968u);
    /* Folding in pieces is folding the whole. */
    uint32_t h = hash_bytes(HASH_INIT, "foo", 3);
    ck_assert_uint_eq(hash_bytes(h, "bar", 3), 0xbf9cf968u);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("backoff");
    TCase *tc = tcase_create("base");
    tcase_add_test(tc, test_doubles_to_the_cap_and_resets);
    tcase_add_test(tc, test_clock);
    tcase_add_test(tc, test_hash_vectors);
    suite_add_tcase(s, tc);
    return check_run(s);
}
