/* The elements of a JSON array that arrives in pieces cut anywhere (the
 * Docker daemon's container list, some 1.3 KB per container: 130 MB for
 * 100,000), handed over one at a time as they complete, so the whole
 * answer is never held or parsed at once.
 *
 * Only the framing is checked here: one top-level array, elements
 * separated by commas, nothing after it. Each element (object, array,
 * string or bare scalar) is cut out by nesting and string quoting alone;
 * its own syntax is for the callback's parser. An element longer than max
 * is an error, so memory stays bounded whatever the peer sends. After an
 * error the splitter refuses everything until reset.
 * Return convention: 0, or -1 with a reason in err. */
#ifndef BERTH_JSON_SPLIT_H
#define BERTH_JSON_SPLIT_H

#include <stdbool.h>
#include <stddef.h>

enum json_split_state {
    JS_START,  /* before the '[' */
    JS_FIRST,  /* after '[': an element or ']' */
    JS_NEXT,   /* after ',': an element */
    JS_ELEM,   /* inside an element */
    JS_AFTER,  /* after an element: ',' or ']' */
    JS_DONE,   /* after ']': whitespace only */
    JS_FAILED, /* refused; reset to start again */
};

struct json_split {
    char *buf; /* the element being read */
    size_t len, cap;
    size_t max; /* longest element accepted */
    enum json_split_state state;
    unsigned depth; /* brackets open inside the element */
    bool in_str, esc, scalar;
};

#define JSON_SPLIT_INIT(max_bytes) ((struct json_split){.max = (max_bytes)})

/* One complete element, exactly its bytes. Returns 0 to go on, or -1 with
 * a reason in err to stop the feed (it then fails). It may not feed,
 * reset or release the splitter that called it. */
typedef int json_elem_fn(void *arg, const char *elem, size_t len, char *err,
                         size_t errlen);

/* Scans len more bytes, handing each element that completes to fn. */
int json_split_feed(struct json_split *js, const char *data, size_t len,
                    json_elem_fn *fn, void *arg, char *err, size_t errlen);
/* The input ended: 0 if it was one whole array, else -1 with err. */
int json_split_end(const struct json_split *js, char *err, size_t errlen);

/* Forgets what is buffered: a new array starts. */
void json_split_reset(struct json_split *js);
/* Frees the buffer; js stays usable, as after a reset. */
void json_split_release(struct json_split *js);

#endif
