/* The slot pool: a fixed number of slots, O(1) take and give back, zeroed
 * on take, visitable while taken, and a full pool says so instead of
 * growing. */
#include "check_run.h"
#include <check.h>
#include <string.h>

#include "berth/slot_pool.h"

struct item {
    char bytes[37]; /* an odd size: slots must still be aligned */
    double d;
};

START_TEST(test_take_all_then_full)
{
    struct slot_pool *p = slot_pool_new(4, sizeof(struct item));
    ck_assert_ptr_nonnull(p);
    struct item *got[4];
    for (int i = 0; i < 4; i++) {
        got[i] = slot_get(p);
        ck_assert_ptr_nonnull(got[i]);
        ck_assert_uint_eq((uintptr_t)got[i] % _Alignof(max_align_t), 0);
        for (int k = 0; k < i; k++)
            ck_assert_ptr_ne(got[i], got[k]);
        memset(got[i], 0xa5, sizeof *got[i]);
    }
    ck_assert_uint_eq(slot_pool_used(p), 4);
    ck_assert_ptr_null(slot_get(p)); /* bounded: no fifth */
    slot_put(p, got[2]);
    ck_assert_uint_eq(slot_pool_used(p), 3);
    struct item *again = slot_get(p);
    ck_assert_ptr_eq(again, got[2]); /* the one given back */
    /* Zeroed on take: nothing of the last user's data survives. */
    const char *raw = (const char *)again;
    for (size_t i = 0; i < sizeof *again; i++)
        ck_assert_int_eq(raw[i], 0);
    slot_pool_free(p);
}
END_TEST

START_TEST(test_visit_taken)
{
    struct slot_pool *p = slot_pool_new(5, sizeof(int));
    int *a = slot_get(p), *b = slot_get(p), *c = slot_get(p);
    *a = 1;
    *b = 2;
    *c = 3;
    slot_put(p, b);
    int sum = 0, seen = 0;
    for (size_t i = 0; i < slot_pool_count(p); i++) {
        int *x = slot_pool_at(p, i);
        if (x) {
            sum += *x;
            seen++;
        }
    }
    ck_assert_int_eq(seen, 2);
    ck_assert_int_eq(sum, 4);
    ck_assert_ptr_null(slot_pool_at(p, 99)); /* out of range: none */
    slot_pool_free(p);
    slot_pool_free(NULL);
}
END_TEST

START_TEST(test_empty_pool)
{
    struct slot_pool *p = slot_pool_new(0, 16);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_null(slot_get(p));
    ck_assert_uint_eq(slot_pool_used(p), 0);
    slot_pool_free(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("slot_pool");
    TCase *tc = tcase_create("slot_pool");
    tcase_add_test(tc, test_take_all_then_full);
    tcase_add_test(tc, test_visit_taken);
    tcase_add_test(tc, test_empty_pool);
    suite_add_tcase(s, tc);
    return check_run(s);
}
