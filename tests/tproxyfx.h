/* What the tproxy rule-reading suites share (test_tproxy_rules.c,
 * test_tproxy_ipt.c): the fixtures of tests/fixtures/tproxy/, read whole,
 * and the kinds of packets a mark was found to cover. */
#ifndef BERTH_TEST_TPROXYFX_H
#define BERTH_TEST_TPROXYFX_H

#include <check.h>
#include <stdint.h>
#include <stdio.h>

#include "berth/tproxy_rules.h"

#define TPROXY_FIXTURES FIXTURES "/../tproxy/"

/* The fixture's text, in a buffer the next call reuses. */
static inline char *slurp(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s%s", TPROXY_FIXTURES, name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* The TPROXY_* bits mark carries in m, or 0 when it is not there. */
static inline unsigned covers(const struct tproxy_marks *m, uint32_t mark)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->mark[i] == mark)
            return m->covers[i];
    return 0;
}

#endif
