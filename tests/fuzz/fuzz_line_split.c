/* libFuzzer target: Docker's event stream arrives in chunks cut anywhere,
 * from whatever answers on the daemon's socket. Whatever the bytes and the
 * cuts, the splitter must hand over exactly the lines that the whole stream
 * holds (when none is longer than its bound), and never keep more of an
 * unfinished line than the bound. The first bytes of the input choose the cuts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/line_split.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LINE 64

struct seen {
    char out[8192];
    size_t len;
};

static void on_line(void *arg, const char *line, size_t len)
{
    struct seen *s = arg;
    if (len == 0 || memchr(line, '\n', len))
        abort();
    if (s->len + len + 1 <= sizeof s->out) {
        memcpy(s->out + s->len, line, len);
        s->len += len;
        s->out[s->len++] = '\n';
    }
}

/* What the splitter should say for the whole stream at once: every
 * complete non-empty line. Whether a line longer than MAX_LINE is dropped
 * depends on where the cuts fall, so *fits says when the oracle holds. */
static size_t expected(const char *in, size_t n, char *out, size_t cap, int *fits)
{
    size_t len = 0, start = 0;
    *fits = 1;
    for (size_t i = 0; i < n; i++) {
        if (in[i] != '\n')
            continue;
        size_t l = i - start;
        if (l >= MAX_LINE)
            *fits = 0;
        if (l && len + l + 1 <= cap) {
            memcpy(out + len, in + start, l);
            len += l;
            out[len++] = '\n';
        }
        start = i + 1;
    }
    if (n - start >= MAX_LINE)
        *fits = 0;
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t ncuts = data[0] % 8;
    if (size < 1 + ncuts)
        return 0;
    const uint8_t *cuts = data + 1;
    const char *body = (const char *)data + 1 + ncuts;
    size_t n = size - 1 - ncuts;

    struct line_split ls = LINE_SPLIT_INIT(MAX_LINE);
    struct seen s = {.len = 0};
    size_t at = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t piece = k < ncuts ? cuts[k] % (n - at + 1) : n - at;
        line_split_feed(&ls, body + at, piece, on_line, &s);
        if (ls.len > MAX_LINE)
            abort(); /* keeps more of an unfinished line than its bound */
        at += piece;
    }
    static char want[8192];
    int fits;
    size_t wlen = expected(body, n, want, sizeof want, &fits);
    if (fits && (wlen != s.len || memcmp(want, s.out, wlen) != 0))
        abort();
    line_split_release(&ls);
    return 0;
}
