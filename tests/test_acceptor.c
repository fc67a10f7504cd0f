/* The acceptor on its own: connections handed over in batches, paused and
 * resumed by its owner, and a pause that grows (instead of a spin) while
 * the process has no fd to accept into, resuming by itself. */
#include "check_run.h"
#include <sys/resource.h>

#include "berth/acceptor.h"
#include "looptest.h"

struct fx {
    struct event_base *base;
    int lfd;
    struct addr at;
    struct acceptor *a;
    int fds[64];
    int n;
    int pause_after; /* the owner pauses once it has this many */
};

static void on_conn(void *arg, int fd, const struct addr *peer)
{
    struct fx *f = arg;
    ck_assert_int_eq(peer->ss.ss_family, AF_INET);
    ck_assert_int_lt(f->n, 64);
    f->fds[f->n++] = fd;
    if (f->pause_after && f->n == f->pause_after)
        acceptor_pause(f->a);
}

static void fx_start(struct fx *f)
{
    memset(f, 0, sizeof *f);
    f->base = event_base_new();
    ck_assert_ptr_nonnull(f->base);
    f->lfd = t_bind("127.0.0.1", SOCK_STREAM, &f->at);
    f->a = acceptor_new(f->base, f->lfd, "test", on_conn, f);
    ck_assert_ptr_nonnull(f->a);
}

static void fx_stop(struct fx *f)
{
    acceptor_free(f->a);
    for (int i = 0; i < f->n; i++)
        close(f->fds[i]);
    close(f->lfd);
    event_base_free(f->base);
}

START_TEST(test_accepts_and_pauses)
{
    struct fx f;
    fx_start(&f);
    f.pause_after = 3;
    int c[5];
    for (int i = 0; i < 5; i++)
        c[i] = t_connect(&f.at);
    ck_assert(PUMP_UNTIL(f.base, 3000, f.n == 3));
    t_pump_for(f.base, 200);
    ck_assert_int_eq(f.n, 3); /* paused: the rest wait in the backlog */
    f.pause_after = 0;
    acceptor_resume(f.a);
    ck_assert(PUMP_UNTIL(f.base, 3000, f.n == 5));
    for (int i = 0; i < 5; i++)
        close(c[i]);
    fx_stop(&f);
}
END_TEST

START_TEST(test_out_of_fds_backs_off_then_resumes)
{
    struct fx f;
    fx_start(&f);
    struct rlimit old;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    /* Every fd below the limit taken: accept4 fails with EMFILE. */
    int c = t_connect(&f.at);
    int spare[256], nspare = 0;
    struct rlimit low = {(rlim_t)t_count_fds() + 8, old.rlim_max};
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fd;
    while (nspare < 256 && (fd = dup(0)) >= 0)
        spare[nspare++] = fd;
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    t_pump_for(f.base, 500);
    getrusage(RUSAGE_SELF, &after);
    ck_assert_int_eq(f.n, 0);
    /* A readable listener that cannot be drained, yet hardly any CPU: the
     * acceptor paused instead of spinning. */
    long us = (after.ru_utime.tv_sec - before.ru_utime.tv_sec) * 1000000L +
              (after.ru_utime.tv_usec - before.ru_utime.tv_usec) +
              (after.ru_stime.tv_sec - before.ru_stime.tv_sec) * 1000000L +
              (after.ru_stime.tv_usec - before.ru_stime.tv_usec);
    ck_assert_msg(us < 200000, "%ld us of CPU in 500 ms", us);
    for (int i = 0; i < nspare; i++)
        close(spare[i]);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    /* fds back: the pause ends by itself and the client is taken. */
    ck_assert(PUMP_UNTIL(f.base, 3000, f.n == 1));
    close(c);
    fx_stop(&f);
}
END_TEST

/* Sequential clients are taken one per wake-up (no accept that can only
 * find EAGAIN), yet a burst is found and taken in batches: 40 clients
 * waiting at once need far fewer than 40 turns of the loop. */
START_TEST(test_burst_taken_in_batches)
{
    struct fx f;
    fx_start(&f);
    int c[40];
    for (int i = 0; i < 3; i++) { /* one at a time */
        c[i] = t_connect(&f.at);
        ck_assert(PUMP_UNTIL(f.base, 3000, f.n == i + 1));
    }
    for (int i = 3; i < 40; i++)
        c[i] = t_connect(&f.at);
    int turns = 0;
    while (f.n < 40 && turns < 39) {
        event_base_loop(f.base, EVLOOP_ONCE);
        turns++;
    }
    ck_assert_int_eq(f.n, 40);
    ck_assert_int_lt(turns, 20);
    for (int i = 0; i < 40; i++)
        close(c[i]);
    fx_stop(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("acceptor");
    TCase *tc = tcase_create("acceptor");
    t_tcase_timeout(tc, 60);
    tcase_add_test(tc, test_accepts_and_pauses);
    tcase_add_test(tc, test_out_of_fds_backs_off_then_resumes);
    tcase_add_test(tc, test_burst_taken_in_batches);
    suite_add_tcase(s, tc);
    return check_run(s);
}
