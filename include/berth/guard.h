/* How an object ends inside one of its own callbacks, the same way
 * everywhere (redis's connection.c idiom: a reference held while a callback
 * runs and a close-scheduled flag). A callback that may end its object
 * enters the guard first and leaves it last; ending while inside only marks
 * the object, and the outermost leave says when to free it:
 *
 *     guard_enter(&o->guard);
 *     ... work that may call o_end(o) ...
 *     if (guard_leave(&o->guard))
 *         o_free(o);
 *
 *     void o_end(struct o *o) { if (guard_end(&o->guard)) o_free(o); }
 *
 * After guard_end the object must not start new work: callers check
 * guard_ending. */
#ifndef BERTH_GUARD_H
#define BERTH_GUARD_H

#include <stdbool.h>

#include "berth/invariant.h"

struct guard {
    unsigned depth; /* callbacks of the object running now */
    bool ending;    /* asked to end: freed when depth drops to 0 */
};

static inline void guard_enter(struct guard *g) { g->depth++; }

/* True when the object must be freed now, by the caller. */
static inline bool guard_leave(struct guard *g)
{
    INVARIANT(g->depth > 0);
    return --g->depth == 0 && g->ending;
}

/* Asks the object to end. True when nothing is using it: free it now. */
static inline bool guard_end(struct guard *g)
{
    g->ending = true;
    return g->depth == 0;
}

/* Asks the object to end from inside one of its own callbacks, where the
 * outermost guard_leave frees it: nothing to free here (and an optimiser
 * that cannot see depth > 0 is not shown a free). */
static inline void guard_end_inside(struct guard *g)
{
    INVARIANT(g->depth > 0);
    g->ending = true;
}

static inline bool guard_ending(const struct guard *g) { return g->ending; }

/* True while a callback of the object runs: work it would start now must
 * wait for that callback to pick it up. */
static inline bool guard_inside(const struct guard *g) { return g->depth > 0; }

#endif
