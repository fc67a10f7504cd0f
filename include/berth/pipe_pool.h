/* A pool of empty pipes for splice(2). A TCP direction borrows a pipe only
 * while bytes are in flight and returns it empty, so idle connections hold
 * none and busy ones skip pipe2()/close() per transfer.
 * Return convention: 0, or -1 with errno. */
#ifndef BERTH_PIPE_POOL_H
#define BERTH_PIPE_POOL_H

#include <stddef.h>

struct pipe_pool;

/* keep: how many idle pipes to hold at most; more are closed on return. */
struct pipe_pool *pipe_pool_new(size_t keep);
void pipe_pool_free(struct pipe_pool *p);

/* fds[0] is the read end, fds[1] the write end, both non-blocking. */
int pipe_pool_get(struct pipe_pool *p, int fds[2]);
/* Returns a pipe. empty says whether it holds no bytes; a pipe with data
 * left in it is closed rather than pooled. Sets fds to -1. */
void pipe_pool_put(struct pipe_pool *p, int fds[2], int empty);

size_t pipe_pool_idle(const struct pipe_pool *p);
size_t pipe_pool_capacity(void);

#endif
