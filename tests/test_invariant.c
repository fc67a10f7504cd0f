/* INVARIANT and the guard: a broken invariant stops the process (going on
 * would corrupt data in flight); a kept one costs nothing; the guard frees
 * an object ended inside its own callback only when the outermost callback
 * leaves. */
#include "check_run.h"
#include <check.h>
#include <signal.h>

#include "berth/guard.h"
#include "berth/invariant.h"

START_TEST(test_kept_invariant_goes_on)
{
    int x = 1;
    INVARIANT(x == 1);
    ck_assert_int_eq(x, 1);
}
END_TEST

START_TEST(test_broken_invariant_aborts)
{
    int x = 1;
    INVARIANT(x == 2);
}
END_TEST

START_TEST(test_guard_defers_to_the_outermost_leave)
{
    struct guard g = {0};
    ck_assert(guard_end(&(struct guard){0})); /* not inside: free now */
    guard_enter(&g);
    guard_enter(&g); /* a callback run from inside another */
    ck_assert(guard_inside(&g));
    ck_assert(!guard_end(&g)); /* ended inside: not yet */
    ck_assert(guard_ending(&g));
    ck_assert(!guard_leave(&g));
    ck_assert(guard_leave(&g)); /* the outermost leave frees it */
}
END_TEST

START_TEST(test_guard_leave_without_enter_aborts)
{
    struct guard g = {0};
    guard_leave(&g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("invariant");
    TCase *tc = tcase_create("invariant");
    tcase_add_test(tc, test_kept_invariant_goes_on);
    tcase_add_test_raise_signal(tc, test_broken_invariant_aborts, SIGABRT);
    tcase_add_test(tc, test_guard_defers_to_the_outermost_leave);
    tcase_add_test_raise_signal(tc, test_guard_leave_without_enter_aborts, SIGABRT);
    suite_add_tcase(s, tc);
    return check_run(s);
}
