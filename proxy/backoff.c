#include "berth/backoff.h"

unsigned backoff_next(struct backoff *b)
{
    b->cur_ms = b->cur_ms ? b->cur_ms * 2 : b->min_ms;
    if (b->cur_ms > b->max_ms)
        b->cur_ms = b->max_ms;
    return b->cur_ms;
}

void backoff_reset(struct backoff *b) { b->cur_ms = 0; }

bool backoff_first(const struct backoff *b) { return b->cur_ms == b->min_ms; }
