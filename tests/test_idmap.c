/* The id map: insert, replace, delete in any order against a plain array
 * kept beside it (backward-shift deletion must never lose a key that
 * probed past the hole), growth, clear. */
#include "check_run.h"
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/idmap.h"

#define N 5000

START_TEST(test_put_get_replace_del)
{
    struct idmap *m = idmap_new();
    int a = 1, b = 2;
    ck_assert_ptr_null(idmap_get(m, "x"));
    ck_assert_ptr_null(idmap_del(m, "x"));
    ck_assert_int_eq(idmap_put(m, "x", &a), 0);
    ck_assert_ptr_eq(idmap_get(m, "x"), &a);
    /* Replacing takes the new key pointer too: the old one may go. */
    char *copy = strdup("x");
    ck_assert_int_eq(idmap_put(m, copy, &b), 0);
    ck_assert_uint_eq(idmap_count(m), 1);
    ck_assert_ptr_eq(idmap_get(m, "x"), &b);
    ck_assert_ptr_eq(idmap_del(m, "x"), &b);
    free(copy);
    ck_assert_uint_eq(idmap_count(m), 0);
    ck_assert_ptr_null(idmap_get(m, "x"));
    idmap_free(m);
    idmap_free(NULL);
}
END_TEST

/* Keys and a reference of which are in; a deterministic shuffle of puts
 * and deletes, checked in full every 499 steps (plain compares: Check
 * marks every assertion with a write). */
START_TEST(test_churn_against_reference)
{
    static char keys[N][20];
    static bool in[N];
    memset(in, 0, sizeof in);
    struct idmap *m = idmap_new();
    for (int i = 0; i < N; i++)
        snprintf(keys[i], sizeof keys[i], "%08x%d", (unsigned)i * 2654435761u, i);
    unsigned seed = 12345;
    size_t count = 0;
    for (int step = 0; step < 40 * N; step++) {
        seed = seed * 1103515245u + 12345u;
        int i = (int)((seed >> 8) % N);
        if (in[i] && (seed & 1)) {
            if (idmap_del(m, keys[i]) != keys[i])
                ck_abort_msg("step %d: %s not deleted", step, keys[i]);
            in[i] = false;
            count--;
        } else if (!in[i]) {
            if (idmap_put(m, keys[i], keys[i]) < 0)
                ck_abort_msg("step %d: out of memory", step);
            in[i] = true;
            count++;
        }
        if (step % 499 == 0) {
            ck_assert_uint_eq(idmap_count(m), count);
            int wrong = 0;
            for (int k = 0; k < N; k++)
                wrong += idmap_get(m, keys[k]) != (in[k] ? keys[k] : NULL);
            ck_assert_int_eq(wrong, 0);
        }
    }
    idmap_clear(m);
    ck_assert_uint_eq(idmap_count(m), 0);
    int left = 0;
    for (int k = 0; k < N; k++)
        left += idmap_get(m, keys[k]) != NULL;
    ck_assert_int_eq(left, 0);
    ck_assert_int_eq(idmap_put(m, keys[7], keys[7]), 0);
    ck_assert_ptr_eq(idmap_get(m, keys[7]), keys[7]);
    idmap_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("idmap");
    TCase *tc = tcase_create("idmap");
    tcase_add_test(tc, test_put_get_replace_del);
    tcase_add_test(tc, test_churn_against_reference);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return check_run(s);
}
