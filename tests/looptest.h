/* What every in-process suite needs to drive an event loop from the test's
 * own thread: a clock, loopback addresses and a bounded pump. The fixture
 * (struct fx) is the including suite's, with an event_base called base. */
#ifndef BERTH_LOOPTEST_H
#define BERTH_LOOPTEST_H

#include <check.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "berth/sockaddr.h"

static inline uint64_t t_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline struct addr t_addr(const char *ip, uint16_t port)
{
    struct addr a;
    ck_assert_int_eq(addr_from_ip(&a, ip, port), 0);
    return a;
}

/* Runs the loop (sleeping 1 ms between passes) until cond or ms elapse. */
#define PUMP_UNTIL(f, ms, cond)                                               \
    ({                                                                        \
        uint64_t deadline_ = t_now_ms() + (ms);                               \
        bool ok_;                                                             \
        while (!(ok_ = (cond)) && t_now_ms() < deadline_) {                   \
            event_base_loop((f)->base, EVLOOP_NONBLOCK);                      \
            usleep(1000);                                                     \
        }                                                                     \
        ok_;                                                                  \
    })

#endif
