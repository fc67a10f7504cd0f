/* INVARIANT(cond): a state the code relies on. Not error handling (errors
 * are code paths): a false invariant is a bug, and going on would corrupt
 * data in flight, so berth logs where and aborts. Always compiled in: the
 * checks are a compare each, on paths that are not per byte. */
#ifndef BERTH_INVARIANT_H
#define BERTH_INVARIANT_H

#define INVARIANT(cond)                                                               \
    ((cond) ? (void)0 : invariant_failed(#cond, __FILE__, __LINE__, __func__))

_Noreturn void invariant_failed(const char *what, const char *file, int line,
                                const char *func);

#endif
