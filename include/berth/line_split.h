/* A byte stream that arrives in pieces cut anywhere (the HTTP chunks of
 * Docker's event stream) as lines: each piece is appended, every complete
 * line handed over, an unfinished one carried to the next piece.
 *
 * Only an unfinished line is bounded (max): past it, it is dropped up to
 * its end, so a peer that never sends '\n' cannot eat memory, while a
 * burst of many short lines may arrive in one piece far larger than max
 * (the piece itself is bounded by whoever read it). Nothing else is kept:
 * memory stays under max plus one piece whatever the stream holds.
 * Return convention: line_split_feed returns 0, or -1 when it started
 * dropping an overlong line (the caller says so). */
#ifndef BERTH_LINE_SPLIT_H
#define BERTH_LINE_SPLIT_H

#include <stdbool.h>
#include <stddef.h>

struct line_split {
    char *buf; /* the bytes after the last '\n' */
    size_t len, cap;
    size_t max;    /* longest unfinished line kept */
    bool skipping; /* inside an overlong line, dropping it */
};

#define LINE_SPLIT_INIT(max_bytes) ((struct line_split){.max = (max_bytes)})

/* One complete line, without its '\n', never empty. It may not feed,
 * reset or release the splitter that called it. */
typedef void line_fn(void *arg, const char *line, size_t len);

/* Forgets what is buffered: a new stream starts. */
void line_split_reset(struct line_split *ls);
/* Frees the buffer; ls stays usable, as after a reset. */
void line_split_release(struct line_split *ls);

/* Appends len bytes and hands each complete line to fn. A piece that
 * finds no memory is lost. */
int line_split_feed(struct line_split *ls, const char *data, size_t len, line_fn *fn,
                    void *arg);

#endif
