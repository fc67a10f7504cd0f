/* An intrusive list in order of last use, oldest first: O(1) to touch, to
 * drop and to find the entry idle longest. Used by the UDP flow table and
 * the DNS TCP connections, which both evict or expire the oldest. Embed a
 * struct lru_node and get back to the owner with LRU_ENTRY. */
#ifndef BERTH_LRU_H
#define BERTH_LRU_H

#include <stddef.h>

struct lru_node {
    struct lru_node *older, *newer;
};

struct lru {
    struct lru_node *oldest, *newest;
};

#define LRU_ENTRY(node, type, member)                                                 \
    ((type *)(void *)((char *)(node)-offsetof(type, member)))

static inline void lru_unlink(struct lru *l, struct lru_node *n)
{
    if (n->older)
        n->older->newer = n->newer;
    else
        l->oldest = n->newer;
    if (n->newer)
        n->newer->older = n->older;
    else
        l->newest = n->older;
    n->older = n->newer = NULL;
}

static inline void lru_push(struct lru *l, struct lru_node *n)
{
    n->older = l->newest;
    n->newer = NULL;
    if (l->newest)
        l->newest->newer = n;
    else
        l->oldest = n;
    l->newest = n;
}

/* Marks n as the most recently used. */
static inline void lru_touch(struct lru *l, struct lru_node *n)
{
    if (l->newest != n) {
        lru_unlink(l, n);
        lru_push(l, n);
    }
}

#endif
