#include "berth/pipe_pool.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* Default pipe capacity on Linux; splice moves at most this per call. */
#define PIPE_CAPACITY 65536
/* Bulk pipes: the default pipe-max-size, so no privilege is needed. */
#define PIPE_BULK (1u << 20)

struct pipe_pool {
    struct pipe *idle;
    size_t n, keep;
};

struct pipe_pool *pipe_pool_new(size_t keep)
{
    struct pipe_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->keep = keep;
    if (keep && !(p->idle = calloc(keep, sizeof *p->idle))) {
        free(p);
        return NULL;
    }
    return p;
}

void pipe_pool_free(struct pipe_pool *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        close(p->idle[i].rd);
        close(p->idle[i].wr);
    }
    free(p->idle);
    free(p);
}

int pipe_pool_get(struct pipe_pool *p, struct pipe *out)
{
    if (p->n > 0) {
        *out = p->idle[--p->n];
        return 0;
    }
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    int size = fcntl(fds[1], F_GETPIPE_SZ);
    *out = (struct pipe){fds[0], fds[1], size > 0 ? (size_t)size : PIPE_CAPACITY,
                         false};
    return 0;
}

void pipe_pool_put(struct pipe_pool *p, struct pipe *pp, int empty)
{
    if (pp->rd < 0)
        return;
    if (empty && p->n < p->keep) {
        p->idle[p->n++] = *pp;
    } else {
        close(pp->rd);
        close(pp->wr);
    }
    pp->rd = pp->wr = -1;
}

void pipe_grow(struct pipe *pp)
{
    if (pp->grown)
        return;
    pp->grown = true; /* refused or not, asked once */
    int size = fcntl(pp->wr, F_SETPIPE_SZ, (int)PIPE_BULK);
    if (size > 0)
        pp->cap = (size_t)size;
}

size_t pipe_pool_idle(const struct pipe_pool *p) { return p->n; }

size_t pipe_pool_capacity(void) { return PIPE_CAPACITY; }
