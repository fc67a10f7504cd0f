#include "berth/pipe_pool.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* Default pipe capacity on Linux; splice moves at most this per call. */
#define PIPE_CAPACITY 65536

struct pipe_pool {
    int (*fds)[2];
    size_t n, keep;
};

struct pipe_pool *pipe_pool_new(size_t keep)
{
    struct pipe_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->keep = keep;
    if (keep && !(p->fds = calloc(keep, sizeof *p->fds))) {
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
        close(p->fds[i][0]);
        close(p->fds[i][1]);
    }
    free(p->fds);
    free(p);
}

int pipe_pool_get(struct pipe_pool *p, int fds[2])
{
    if (p->n > 0) {
        p->n--;
        fds[0] = p->fds[p->n][0];
        fds[1] = p->fds[p->n][1];
        return 0;
    }
    return pipe2(fds, O_NONBLOCK | O_CLOEXEC);
}

void pipe_pool_put(struct pipe_pool *p, int fds[2], int empty)
{
    if (fds[0] < 0)
        return;
    if (empty && p->n < p->keep) {
        p->fds[p->n][0] = fds[0];
        p->fds[p->n][1] = fds[1];
        p->n++;
    } else {
        close(fds[0]);
        close(fds[1]);
    }
    fds[0] = fds[1] = -1;
}

size_t pipe_pool_idle(const struct pipe_pool *p) { return p->n; }

size_t pipe_pool_capacity(void) { return PIPE_CAPACITY; }
