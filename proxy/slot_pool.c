#include "berth/slot_pool.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "berth/invariant.h"

struct slot_pool {
    char *mem; /* count slots of stride bytes */
    size_t stride, count;
    size_t *free_idx; /* a stack of free slot numbers */
    size_t nfree;
    bool *taken;
};

struct slot_pool *slot_pool_new(size_t count, size_t size)
{
    struct slot_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    size_t align = alignof(max_align_t);
    p->stride = (size ? size + align - 1 : align) / align * align;
    p->count = count;
    p->mem = calloc(count ? count : 1, p->stride);
    p->free_idx = calloc(count ? count : 1, sizeof *p->free_idx);
    p->taken = calloc(count ? count : 1, sizeof *p->taken);
    if (!p->mem || !p->free_idx || !p->taken) {
        slot_pool_free(p);
        return NULL;
    }
    /* Lowest numbers on top: the first slots taken are the ones touched. */
    for (size_t i = 0; i < count; i++)
        p->free_idx[i] = count - 1 - i;
    p->nfree = count;
    return p;
}

void slot_pool_free(struct slot_pool *p)
{
    if (!p)
        return;
    free(p->mem);
    free(p->free_idx);
    free(p->taken);
    free(p);
}

void *slot_get(struct slot_pool *p)
{
    if (!p->nfree)
        return NULL;
    size_t i = p->free_idx[--p->nfree];
    INVARIANT(!p->taken[i]);
    p->taken[i] = true;
    void *s = p->mem + i * p->stride;
    memset(s, 0, p->stride);
    return s;
}

void slot_put(struct slot_pool *p, void *slot)
{
    size_t off = (size_t)((char *)slot - p->mem);
    INVARIANT(off % p->stride == 0 && off / p->stride < p->count);
    size_t i = off / p->stride;
    INVARIANT(p->taken[i]);
    p->taken[i] = false;
    p->free_idx[p->nfree++] = i;
}

size_t slot_pool_used(const struct slot_pool *p) { return p->count - p->nfree; }

size_t slot_pool_count(const struct slot_pool *p) { return p->count; }

void *slot_pool_at(const struct slot_pool *p, size_t i)
{
    return i < p->count && p->taken[i] ? p->mem + i * p->stride : NULL;
}
