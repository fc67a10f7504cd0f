/* Runs a Check suite and turns its result into main()'s exit status, the
 * same way for every tests/test_*.c. */
#ifndef BERTH_CHECK_RUN_H
#define BERTH_CHECK_RUN_H

#include <check.h>
#include <stdlib.h>

static inline int check_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
