/* libFuzzer target: the daemon's container list is cut into elements as it
 * streams in, in pieces cut anywhere, from whatever answers on its socket.
 * Whatever the bytes, the splitter must not crash, must keep no element
 * longer than its bound, and must say the same (the same elements, the
 * same verdict) however the stream is cut; and for a stream cJSON reads
 * as an array it must hand over exactly that array's elements. The first
 * bytes of the input choose the cuts. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/json_split.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ELEM 512

struct seen {
    char out[16384];
    size_t len;
    unsigned n;
};

static int on_elem(void *arg, const char *elem, size_t len, char *err, size_t errlen)
{
    struct seen *s = arg;
    (void)err;
    (void)errlen;
    if (len > MAX_ELEM)
        abort();
    s->n++;
    if (s->len + len + 1 <= sizeof s->out) {
        memcpy(s->out + s->len, elem, len);
        s->len += len;
        s->out[s->len++] = '\x01';
    }
    return 0;
}

/* Feeds body in the pieces cuts say (none: whole); returns the verdict. */
static int run(const char *body, size_t n, const uint8_t *cuts, size_t ncuts,
               struct seen *s)
{
    struct json_split js = JSON_SPLIT_INIT(MAX_ELEM);
    char err[256];
    int rc = 0;
    size_t at = 0;
    for (size_t k = 0; k <= ncuts && rc == 0; k++) {
        size_t piece = k < ncuts ? cuts[k] % (n - at + 1) : n - at;
        rc = json_split_feed(&js, body + at, piece, on_elem, s, err, sizeof err);
        if (js.len > MAX_ELEM + 1)
            abort();
        at += piece;
    }
    if (rc == 0)
        rc = json_split_end(&js, err, sizeof err);
    json_split_release(&js);
    return rc;
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

    static struct seen whole, cut;
    memset(&whole, 0, sizeof whole);
    memset(&cut, 0, sizeof cut);
    int rw = run(body, n, NULL, 0, &whole);
    int rc = run(body, n, cuts, ncuts, &cut);
    if ((rw == 0) != (rc == 0))
        abort();
    if (rw == 0 && (whole.n != cut.n || whole.len != cut.len ||
                    memcmp(whole.out, cut.out, whole.len) != 0))
        abort();

    /* An array cJSON accepts, with elements within the bound, is split
     * into exactly its elements. */
    cJSON *doc = cJSON_ParseWithLength(body, n);
    if (doc && cJSON_IsArray(doc) && rw == 0) {
        if ((int)whole.n != cJSON_GetArraySize(doc))
            abort();
    }
    cJSON_Delete(doc);
    return 0;
}
