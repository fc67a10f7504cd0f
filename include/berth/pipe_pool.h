/* A pool of empty pipes for splice(2). A TCP direction borrows a pipe only
 * while bytes are in flight and returns it empty, so idle connections hold
 * none and busy ones skip pipe2()/close() per transfer.
 * Return convention: 0, or -1 with errno. */
#ifndef BERTH_PIPE_POOL_H
#define BERTH_PIPE_POOL_H

#include <stdbool.h>
#include <stddef.h>

struct pipe_pool;

/* A pipe and how many bytes it holds at most. */
struct pipe {
    int rd, wr;
    size_t cap; /* what the kernel gave, from F_GETPIPE_SZ */
    bool grown; /* pipe_grow was tried: never again */
};

/* keep: how many idle pipes to hold at most; more are closed on return. */
struct pipe_pool *pipe_pool_new(size_t keep);
void pipe_pool_free(struct pipe_pool *p);

/* Both ends non-blocking. New pipes have the kernel's default size. */
int pipe_pool_get(struct pipe_pool *p, struct pipe *out);
/* Returns a pipe. empty says whether it holds no bytes; a pipe with data
 * left in it is closed rather than pooled. Sets the fds to -1. */
void pipe_pool_put(struct pipe_pool *p, struct pipe *pp, int empty);

/* Enlarges a pipe for bulk transfers: fewer splice calls per gigabyte.
 * Small exchanges never ask, so they keep small pipes. Best effort: the
 * kernel may refuse (limits for unprivileged users); cap tells. */
void pipe_grow(struct pipe *pp);

size_t pipe_pool_idle(const struct pipe_pool *p);
/* The default pipe size, which is also the buffered path's read size. */
size_t pipe_pool_capacity(void);

#endif
