/* A growing pause after a failure that retrying at once would repeat: the
 * process out of fds (every accept loop), the Docker endpoint gone. The
 * first pause is min_ms, each next one doubles up to max_ms; a success
 * resets it. */
#ifndef BERTH_BACKOFF_H
#define BERTH_BACKOFF_H

#include <stdbool.h>

struct backoff {
    unsigned min_ms, max_ms;
    unsigned cur_ms; /* the last pause; 0: not backing off */
};

#define BACKOFF_INIT(min, max) ((struct backoff){(min), (max), 0})

/* The next pause, in ms. */
unsigned backoff_next(struct backoff *b);
void backoff_reset(struct backoff *b);
/* True on the first pause after a success: say so once, not per retry. */
bool backoff_first(const struct backoff *b);

#endif
