#include "berth/json_split.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* What a number or true/false/null is made of. */
static bool is_scalar(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || c == '+' || c == '-' || c == '.';
}

static int refuse(struct json_split *js, char *err, size_t errlen, const char *why)
{
    js->state = JS_FAILED;
    js->len = 0;
    snprintf(err, errlen, "%s", why);
    return -1;
}

static int refuse_long(struct json_split *js, char *err, size_t errlen)
{
    char why[80];
    snprintf(why, sizeof why, "an element longer than %zu bytes", js->max);
    return refuse(js, err, errlen, why);
}

/* Keeps part of an element that continues in a later piece. */
static int keep(struct json_split *js, const char *data, size_t n, char *err,
                size_t errlen)
{
    if (js->len + n > js->max)
        return refuse_long(js, err, errlen);
    if (js->len + n > js->cap) {
        size_t cap = js->cap ? js->cap : 4096;
        while (cap < js->len + n)
            cap *= 2;
        char *b = realloc(js->buf, cap);
        if (!b)
            return refuse(js, err, errlen, "out of memory");
        js->buf = b;
        js->cap = cap;
    }
    memcpy(js->buf + js->len, data, n);
    js->len += n;
    return 0;
}

/* Opens an element whose first byte is c (scanned next, like the rest);
 * false if no value starts so. */
static bool open_elem(struct json_split *js, char c)
{
    js->state = JS_ELEM;
    js->len = 0;
    js->depth = 0;
    js->in_str = js->esc = false;
    js->scalar = is_scalar(c);
    return js->scalar || c == '{' || c == '[' || c == '"';
}

/* Scans the element from data[0]; returns how many bytes belong to it and
 * sets *whole when it ended there. */
static size_t scan_elem(struct json_split *js, const char *data, size_t len,
                        bool *whole)
{
    size_t i = 0;
    *whole = false;
    if (js->scalar) {
        while (i < len && is_scalar(data[i]))
            i++;
        *whole = i < len; /* the byte after it is the next one's */
        return i;
    }
    for (; i < len; i++) {
        char c = data[i];
        if (js->in_str) {
            if (js->esc)
                js->esc = false;
            else if (c == '\\')
                js->esc = true;
            else if (c == '"')
                js->in_str = false;
        } else if (c == '"') {
            js->in_str = true;
        } else if (c == '{' || c == '[') {
            js->depth++;
        } else if (c == '}' || c == ']') {
            js->depth--;
        } else {
            continue;
        }
        if (!js->in_str && js->depth == 0) {
            *whole = true;
            return i + 1;
        }
    }
    return i;
}

int json_split_feed(struct json_split *js, const char *data, size_t len,
                    json_elem_fn *fn, void *arg, char *err, size_t errlen)
{
    if (js->state == JS_FAILED)
        return refuse(js, err, errlen, "refused after an earlier error");
    for (size_t i = 0; i < len;) {
        char c = data[i];
        if (js->state != JS_ELEM && is_space(c)) {
            i++;
            continue;
        }
        switch (js->state) {
        case JS_START:
            if (c != '[')
                return refuse(js, err, errlen, "not a JSON array");
            js->state = JS_FIRST;
            i++;
            continue;
        case JS_AFTER:
            if (c != ',' && c != ']')
                return refuse(js, err, errlen, "no ',' or ']' after an element");
            js->state = c == ',' ? JS_NEXT : JS_DONE;
            i++;
            continue;
        case JS_DONE:
            return refuse(js, err, errlen, "bytes after the array");
        case JS_FIRST:
        case JS_NEXT:
            if (c == ']' && js->state == JS_FIRST) { /* [] */
                js->state = JS_DONE;
                i++;
                continue;
            }
            if (!open_elem(js, c))
                return refuse(js, err, errlen, "an element is not a JSON value");
            break;
        case JS_ELEM:
            break;
        case JS_FAILED:
            return -1;
        }
        bool whole;
        size_t n = scan_elem(js, data + i, len - i, &whole);
        const char *elem = data + i;
        size_t elen = n;
        i += n;
        if (js->len || !whole) { /* it spans pieces: keep the bytes */
            if (keep(js, elem, n, err, errlen) < 0)
                return -1;
            elem = js->buf;
            elen = js->len;
        } else if (elen > js->max) {
            return refuse_long(js, err, errlen);
        }
        if (!whole)
            continue;
        js->state = JS_AFTER;
        js->len = 0;
        if (fn(arg, elem, elen, err, errlen) < 0) {
            js->state = JS_FAILED;
            return -1;
        }
    }
    return 0;
}

int json_split_end(const struct json_split *js, char *err, size_t errlen)
{
    if (js->state == JS_DONE)
        return 0;
    snprintf(err, errlen, "%s",
             js->state == JS_START    ? "not a JSON array"
             : js->state == JS_FAILED ? "refused after an earlier error"
                                      : "the array ended early");
    return -1;
}

void json_split_reset(struct json_split *js)
{
    js->len = 0;
    js->state = JS_START;
}

void json_split_release(struct json_split *js)
{
    free(js->buf);
    js->buf = NULL;
    js->cap = 0;
    json_split_reset(js);
}
