/* libFuzzer target: the firewall rules tproxy_check reads, as `nft -j list
 * ruleset` JSON (tproxy_rules) and as iptables-save text (tproxy_ipt), for
 * both families. Local tools' output, yet neither parser may crash, leak,
 * read out of bounds or break struct tproxy_marks' bounds, whatever the
 * bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/tproxy_ipt.h"
#include "berth/tproxy_rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What every caller relies on: at most TPROXY_MARKS_MAX marks, each for
 * some packets, and every shadow note a terminated string. */
static void check_marks(const struct tproxy_marks *m)
{
    if (m->n > TPROXY_MARKS_MAX)
        abort();
    for (size_t i = 0; i < m->n; i++)
        if ((m->covers[i] & ~(unsigned)TPROXY_ALL) != 0)
            abort();
    for (size_t i = 0; i < 4; i++)
        if (!memchr(m->shadow[i], '\0', sizeof m->shadow[i]))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    struct tproxy_marks m = {.n = 0};
    tproxy_marks_nft(text, &m);
    check_marks(&m);

    static const unsigned families[] = {TPROXY_V4, TPROXY_V6};
    for (size_t i = 0; i < 2; i++) {
        struct tproxy_marks k = {.n = 0};
        tproxy_marks_iptables(text, families[i], &k);
        check_marks(&k);
    }
    free(text);
    return 0;
}
