/* The pipe pool: reuse, a bound on what it keeps, never pooling a pipe that
 * still holds bytes, and growing a pipe for bulk transfers. */
#include "check_run.h"
#include <check.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "berth/pipe_pool.h"

START_TEST(test_reuse_and_bound)
{
    struct pipe_pool *p = pipe_pool_new(2);
    struct pipe a, b, c;
    ck_assert_int_eq(pipe_pool_get(p, &a), 0);
    ck_assert_int_eq(pipe_pool_get(p, &b), 0);
    ck_assert_int_eq(pipe_pool_get(p, &c), 0);
    ck_assert(fcntl(a.rd, F_GETFL) & O_NONBLOCK);
    ck_assert_uint_eq(a.cap, pipe_pool_capacity());
    int b_rd = b.rd;
    pipe_pool_put(p, &a, 1);
    ck_assert_int_eq(a.rd, -1);
    pipe_pool_put(p, &b, 1);
    pipe_pool_put(p, &c, 1); /* over the bound: closed */
    ck_assert_uint_eq(pipe_pool_idle(p), 2);
    struct pipe d;
    ck_assert_int_eq(pipe_pool_get(p, &d), 0);
    ck_assert_int_eq(d.rd, b_rd); /* the last one returned comes back */
    ck_assert_uint_eq(pipe_pool_idle(p), 1);
    pipe_pool_put(p, &d, 1);
    pipe_pool_free(p);
    pipe_pool_free(NULL);
}
END_TEST

START_TEST(test_dirty_pipe_not_pooled)
{
    struct pipe_pool *p = pipe_pool_new(4);
    struct pipe a;
    ck_assert_int_eq(pipe_pool_get(p, &a), 0);
    ck_assert_int_eq(write(a.wr, "x", 1), 1);
    int rd = a.rd;
    pipe_pool_put(p, &a, 0);
    ck_assert_uint_eq(pipe_pool_idle(p), 0);
    ck_assert_int_eq(fcntl(rd, F_GETFD), -1); /* closed */
    pipe_pool_free(p);
}
END_TEST

START_TEST(test_grow_keeps_size_in_pool)
{
    struct pipe_pool *p = pipe_pool_new(4);
    struct pipe a;
    ck_assert_int_eq(pipe_pool_get(p, &a), 0);
    pipe_grow(&a);
    ck_assert_uint_gt(a.cap, pipe_pool_capacity());
    ck_assert_int_eq(fcntl(a.wr, F_GETPIPE_SZ), (int)a.cap);
    size_t cap = a.cap;
    pipe_pool_put(p, &a, 1);
    ck_assert_int_eq(pipe_pool_get(p, &a), 0);
    ck_assert_uint_eq(a.cap, cap);
    pipe_pool_put(p, &a, 1);
    pipe_pool_free(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pipe_pool");
    TCase *tc = tcase_create("pipe_pool");
    tcase_add_test(tc, test_reuse_and_bound);
    tcase_add_test(tc, test_dirty_pipe_not_pooled);
    tcase_add_test(tc, test_grow_keeps_size_in_pool);
    suite_add_tcase(s, tc);
    return check_run(s);
}
