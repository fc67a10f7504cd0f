#include "berth/line_split.h"

#include <stdlib.h>
#include <string.h>

void line_split_reset(struct line_split *ls)
{
    ls->len = 0;
    ls->skipping = false;
}

void line_split_release(struct line_split *ls)
{
    free(ls->buf);
    ls->buf = NULL;
    ls->cap = 0;
    line_split_reset(ls);
}

int line_split_feed(struct line_split *ls, const char *data, size_t len, line_fn *fn,
                    void *arg)
{
    if (!len)
        return 0;
    if (ls->skipping) {
        /* The rest of an overlong line: drop up to its end. */
        const char *nl = memchr(data, '\n', len);
        if (!nl)
            return 0;
        ls->skipping = false;
        len -= (size_t)(nl + 1 - data);
        data = nl + 1;
    }
    if (ls->len + len > ls->cap) {
        size_t cap = ls->cap ? ls->cap : 4096;
        while (cap < ls->len + len)
            cap *= 2;
        char *b = realloc(ls->buf, cap);
        if (!b)
            return 0;
        ls->buf = b;
        ls->cap = cap;
    }
    memcpy(ls->buf + ls->len, data, len);
    ls->len += len;
    size_t start = 0;
    for (size_t i = 0; i < ls->len; i++) {
        if (ls->buf[i] != '\n')
            continue;
        if (i > start)
            fn(arg, ls->buf + start, i - start);
        start = i + 1;
    }
    memmove(ls->buf, ls->buf + start, ls->len - start);
    ls->len -= start;
    if (ls->len > ls->max) {
        ls->len = 0;
        ls->skipping = true;
        return -1;
    }
    return 0;
}
