/* The one clock of berth's timers and deadlines: monotonic milliseconds,
 * unaffected by changes to the wall clock. */
#ifndef BERTH_CLOCK_H
#define BERTH_CLOCK_H

#include <stdint.h>
#include <sys/time.h>

uint64_t clock_ms(void);

/* ms as a libevent timeout. */
struct timeval clock_tv(uint64_t ms);

#endif
