#include "berth/config_file.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/spec.h"

/* 1-based line of a byte offset, for JSON syntax errors. */
static int line_of(const char *text, size_t len, const char *at)
{
    int line = 1;
    for (const char *p = text; p < at && p < text + len; p++)
        line += *p == '\n';
    return line;
}

/* A publish entry written as an object: {"spec": "...", "transparent":
 * true, "proxy_protocol": "v2"}. where names it ("config 'f': publish[2]"). */
static int load_publish_object(struct config *c, const cJSON *obj, const char *where,
                               char *err, size_t errlen)
{
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
    if (!cJSON_IsString(spec)) {
        snprintf(err, errlen, "%s: an object needs \"spec\": a publish spec string",
                 where);
        return -1;
    }
    char why[200];
    struct spec sp;
    if (spec_parse(spec->valuestring, &sp, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s '%s': %s", where, spec->valuestring, why);
        return -1;
    }
    signed char own_t = -1, own_pp = -1;
    const cJSON *k;
    cJSON_ArrayForEach(k, obj) {
        if (strcmp(k->string, "spec") == 0)
            continue;
        if (strcmp(k->string, "transparent") == 0) {
            if (!cJSON_IsBool(k)) {
                snprintf(err, errlen, "%s: 'transparent' must be true or false",
                         where);
                return -1;
            }
            own_t = cJSON_IsTrue(k) ? 1 : 0;
            if (own_t && sp.proto == PROTO_SCTP) {
                snprintf(err, errlen,
                         "%s '%s': transparent mode is for TCP and UDP only", where,
                         spec->valuestring);
                return -1;
            }
        } else if (strcmp(k->string, "proxy_protocol") == 0) {
            enum proxy_proto pp;
            if (!cJSON_IsString(k) ||
                spec_parse_proxy_proto(k->valuestring, &pp) < 0) {
                snprintf(err, errlen,
                         "%s: 'proxy_protocol' must be \"v1\", \"v2\" or \"off\"",
                         where);
                return -1;
            }
            if (pp != PROXY_PROTO_NONE && sp.proto != PROTO_TCP) {
                snprintf(err, errlen, "%s '%s': the PROXY protocol is for TCP only",
                         where, spec->valuestring);
                return -1;
            }
            own_pp = (signed char)pp;
        } else {
            snprintf(err, errlen,
                     "%s: unknown key '%s' (want spec, transparent, proxy_protocol)",
                     where, k->string);
            return -1;
        }
    }
    if (config_publish_add(c, spec->valuestring) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->publish_opts[c->publish.n - 1].own_transparent = own_t;
    c->publish_opts[c->publish.n - 1].own_proxy_proto = own_pp;
    return 0;
}

static int load_json_value(struct config *c, const struct config_option *o,
                           const cJSON *item, const char *prefix, char *err,
                           size_t errlen)
{
    char where[300];
    snprintf(where, sizeof where, "%s: %s", prefix, o->name);
    if (o->kind == CONFIG_FLAG) {
        if (!cJSON_IsBool(item)) {
            snprintf(err, errlen, "%s: '%s' must be true or false", prefix, o->name);
            return -1;
        }
        config_set_flag(c, o, cJSON_IsTrue(item));
        return 0;
    }
    if (o->kind == CONFIG_LIST) {
        const char *want =
            strcmp(o->name, "publish") == 0
                ? "an array of specs (strings or {\"spec\": ...} objects)"
                : "an array of strings";
        if (!cJSON_IsArray(item)) {
            snprintf(err, errlen, "%s: '%s' must be %s", prefix, o->name, want);
            return -1;
        }
        int idx = 0;
        const cJSON *el;
        cJSON_ArrayForEach(el, item) {
            if (cJSON_IsObject(el) && strcmp(o->name, "publish") == 0) {
                snprintf(where, sizeof where, "%s: %s[%d]", prefix, o->name, idx++);
                if (load_publish_object(c, el, where, err, errlen) < 0)
                    return -1;
                continue;
            }
            if (!cJSON_IsString(el)) {
                snprintf(err, errlen, "%s: '%s' must be %s", prefix, o->name, want);
                return -1;
            }
            snprintf(where, sizeof where, "%s: %s[%d]", prefix, o->name, idx++);
            if (config_apply(c, o, el->valuestring, where, err, errlen) < 0)
                return -1;
        }
        return 0;
    }
    if (o->kind == CONFIG_UINT || (o->kind == CONFIG_TEXT && cJSON_IsNumber(item))) {
        char num[32];
        if (cJSON_IsNumber(item)) {
            double d = item->valuedouble;
            if (d < 0 || d > 4e9 || d != (double)(unsigned long)d) {
                if (o->kind == CONFIG_TEXT)
                    snprintf(err, errlen,
                             "%s: '%s' must be a string or a whole number", prefix,
                             o->name);
                else
                    snprintf(err, errlen, "%s: '%s' must be a whole number in %u-%u",
                             prefix, o->name, o->min, o->max);
                return -1;
            }
            snprintf(num, sizeof num, "%lu", (unsigned long)d);
            return config_apply(c, o, num, where, err, errlen);
        }
        snprintf(err, errlen, "%s: '%s' must be a number", prefix, o->name);
        return -1;
    }
    if (!cJSON_IsString(item)) {
        snprintf(err, errlen, "%s: '%s' must be a string%s", prefix, o->name,
                 o->kind == CONFIG_TEXT ? " or a whole number" : "");
        return -1;
    }
    return config_apply(c, o, item->valuestring, where, err, errlen);
}

int config_load_file(struct config *c, const char *path, char *err, size_t errlen)
{
    char prefix[256];
    snprintf(prefix, sizeof prefix, "config '%s'", path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot read: %s", prefix, strerror(errno));
        return -1;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 4096) {
            if (cap > (1u << 24)) {
                snprintf(err, errlen, "%s: larger than 16 MiB", prefix);
                fclose(f);
                free(text);
                return -1;
            }
            char *bigger = realloc(text, cap = cap * 2 + 8192);
            if (!bigger) {
                fclose(f);
                free(text);
                snprintf(err, errlen, "%s: out of memory", prefix);
                return -1;
            }
            text = bigger;
        }
        size_t n = fread(text + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    bool read_error = ferror(f);
    fclose(f);
    text[len] = '\0';
    if (read_error) {
        snprintf(err, errlen, "%s: read error", prefix);
        free(text);
        return -1;
    }
    int rc = config_load_json(c, text, len, prefix, err, errlen);
    free(text);
    return rc;
}

int config_load_json(struct config *c, const char *text, size_t len,
                     const char *prefix, char *err, size_t errlen)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (root) {
        /* Trailing garbage after the object is an error too. */
        while (end < text + len && (*end == ' ' || *end == '\n' || *end == '\t' ||
                                    *end == '\r' || *end == '\0'))
            end++;
        if (end < text + len) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    if (!root || !cJSON_IsObject(root)) {
        if (!root)
            snprintf(err, errlen, "%s: invalid JSON at line %d", prefix,
                     line_of(text, len, end ? end : text + len));
        else
            snprintf(err, errlen, "%s: must be a JSON object", prefix);
        cJSON_Delete(root);
        return -1;
    }
    int rc = 0;
    const cJSON *item;
    c->loading_file = true;
    cJSON_ArrayForEach(item, root) {
        const struct config_option *o = config_option_find(item->string,
                                                           strlen(item->string));
        if (!o || strcmp(o->name, "config") == 0 || strcmp(o->name, "help") == 0 ||
            strcmp(o->name, "version") == 0) {
            snprintf(err, errlen, "%s: unknown key '%s'", prefix, item->string);
            rc = -1;
            break;
        }
        if (load_json_value(c, o, item, prefix, err, errlen) < 0) {
            rc = -1;
            break;
        }
    }
    c->loading_file = false;
    cJSON_Delete(root);
    if (rc == 0)
        config_publish_resolve(c);
    return rc;
}
