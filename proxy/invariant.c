#include "berth/invariant.h"

#include <stdlib.h>

#include "berth/log.h"

void invariant_failed(const char *what, const char *file, int line, const char *func)
{
    log_error("invariant broken at %s:%d (%s): %s", file, line, func, what);
    abort();
}
