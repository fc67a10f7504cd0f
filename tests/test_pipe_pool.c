/* The pipe pool: reuse, a bound on what it keeps, and never pooling a pipe
 * that still holds bytes. */
#include <check.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "berth/pipe_pool.h"

START_TEST(test_reuse_and_bound)
{
    struct pipe_pool *p = pipe_pool_new(2);
    int a[2], b[2], c[2];
    ck_assert_int_eq(pipe_pool_get(p, a), 0);
    ck_assert_int_eq(pipe_pool_get(p, b), 0);
    ck_assert_int_eq(pipe_pool_get(p, c), 0);
    ck_assert(fcntl(a[0], F_GETFL) & O_NONBLOCK);
    int b0 = b[0];
    pipe_pool_put(p, a, 1);
    ck_assert_int_eq(a[0], -1);
    pipe_pool_put(p, b, 1);
    pipe_pool_put(p, c, 1);        /* over the bound: closed */
    ck_assert_uint_eq(pipe_pool_idle(p), 2);
    int d[2];
    ck_assert_int_eq(pipe_pool_get(p, d), 0);
    ck_assert_int_eq(d[0], b0);    /* the last one returned comes back */
    ck_assert_uint_eq(pipe_pool_idle(p), 1);
    pipe_pool_put(p, d, 1);
    pipe_pool_free(p);
    pipe_pool_free(NULL);
}
END_TEST

START_TEST(test_dirty_pipe_not_pooled)
{
    struct pipe_pool *p = pipe_pool_new(4);
    int a[2];
    ck_assert_int_eq(pipe_pool_get(p, a), 0);
    ck_assert_int_eq(write(a[1], "x", 1), 1);
    int rd = a[0];
    pipe_pool_put(p, a, 0);
    ck_assert_uint_eq(pipe_pool_idle(p), 0);
    ck_assert_int_eq(fcntl(rd, F_GETFD), -1);   /* closed */
    pipe_pool_free(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pipe_pool");
    TCase *tc = tcase_create("pipe_pool");
    tcase_add_test(tc, test_reuse_and_bound);
    tcase_add_test(tc, test_dirty_pipe_not_pooled);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
