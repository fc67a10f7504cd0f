#include "berth/spec.h"

#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define FIELDS_MAX 5

const char *proto_name(enum proto p)
{
    return p == PROTO_UDP ? "udp" : p == PROTO_SCTP ? "sctp" : "tcp";
}

bool proto_is_stream(enum proto p) { return p != PROTO_UDP; }

int proto_sock_type(enum proto p) { return p == PROTO_UDP ? SOCK_DGRAM : SOCK_STREAM; }

int proto_ipproto(enum proto p)
{
    return p == PROTO_UDP ? IPPROTO_UDP : p == PROTO_SCTP ? IPPROTO_SCTP : IPPROTO_TCP;
}

int spec_parse_proxy_proto(const char *text, enum proxy_proto *out)
{
    static const struct {
        const char *name;
        enum proxy_proto v;
    } known[] = {{"v1", PROXY_PROTO_V1},
                 {"v2", PROXY_PROTO_V2},
                 {"off", PROXY_PROTO_NONE}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(text, known[i].name) == 0) {
            *out = known[i].v;
            return 0;
        }
    return -1;
}

const char *proxy_proto_name(enum proxy_proto p)
{
    return p == PROXY_PROTO_V1 ? "v1" : p == PROXY_PROTO_V2 ? "v2" : "off";
}

int spec_parse_switch(const char *text, bool *out)
{
    static const char *on[] = {"true", "1", "yes", "on"},
                      *off[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, on[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(text, off[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen,
                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int parse_port(const char *s, size_t len, uint16_t *out)
{
    if (len == 0 || len > 5)
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

int spec_parse_ports(const char *text, size_t len, const char *what, uint16_t *lo,
                     uint16_t *hi, char *err, size_t errlen)
{
    char buf[32];
    if (len == 0) {
        snprintf(err, errlen, "missing %s", what);
        return -1;
    }
    snprintf(buf, sizeof buf, "%.*s", (int)(len < 31 ? len : 31), text);
    const char *dash = memchr(text, '-', len);
    size_t first = dash ? (size_t)(dash - text) : len;
    if (parse_port(text, first, lo) < 0 ||
        (dash && parse_port(dash + 1, len - first - 1, hi) < 0)) {
        snprintf(err, errlen, "%s '%s' is not a port or range in 1-65535", what, buf);
        return -1;
    }
    if (!dash)
        *hi = *lo;
    if (*hi < *lo) {
        snprintf(err, errlen, "%s range '%s' ends before it starts", what, buf);
        return -1;
    }
    return 0;
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

/* A Docker container name, short id, or dotted Compose/network name. */
static bool valid_name(const char *s, size_t len)
{
    if (len == 0 || len > SPEC_NAME_MAX || s[0] == '.' || s[0] == '-' ||
        s[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_name_char(s[i]) || (s[i] == '.' && s[i + 1] == '.'))
            return false;
    return true;
}

/* Four dot-separated groups of digits: meant as an IPv4 address, even if
 * out of range, never a container name. */
static bool looks_like_ipv4(const char *s, size_t len)
{
    int dots = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.')
            dots++;
        else if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return dots == 3;
}

/* Splits at ':' outside brackets. Returns the field count, or -1 for an
 * unclosed bracket; counts past FIELDS_MAX are reported but not stored. */
static int split_fields(const char *s, size_t len, const char *start[], size_t flen[])
{
    int n = 0;
    size_t begin = 0;
    int depth = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] == '[')
            depth++;
        else if (i < len && s[i] == ']')
            depth--;
        if (i == len || (s[i] == ':' && depth == 0)) {
            if (n < FIELDS_MAX) {
                start[n] = s + begin;
                flen[n] = i - begin;
            }
            n++;
            begin = i + 1;
        }
    }
    return depth == 0 ? n : -1;
}

/* An IP field: IPv4, or IPv6 inside brackets. Returns 0, 1 if the field is
 * not an IP literal at all, -1 if it is malformed (err set). */
static int parse_ip_field(const char *f, size_t len, const char *what,
                          struct addr *out, char *err, size_t errlen)
{
    char ip[64];
    if (len >= sizeof ip)
        return 1;
    if (f[0] == '[') {
        snprintf(ip, sizeof ip, "%.*s", (int)len, f);
        if (len < 3 || f[len - 1] != ']') {
            snprintf(err, errlen, "%s '%s' is not a bracketed IPv6 address", what, ip);
            return -1;
        }
        snprintf(ip, sizeof ip, "%.*s", (int)(len - 2), f + 1);
        if (addr_from_ip(out, ip, 0) < 0 || out->ss.ss_family != AF_INET6) {
            snprintf(err, errlen, "%s '[%s]' is not an IPv6 address", what, ip);
            return -1;
        }
        return 0;
    }
    snprintf(ip, sizeof ip, "%.*s", (int)len, f);
    if (addr_from_ip(out, ip, 0) == 0 && out->ss.ss_family == AF_INET)
        return 0;
    return 1;
}

int spec_parse(const char *text, struct spec *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->proto = PROTO_TCP;
    size_t len = strlen(text);
    if (len == 0)
        return fail(err, errlen, "%sempty spec", "");

    const char *slash = strrchr(text, '/');
    if (slash) {
        const char *p = slash + 1;
        if (strcmp(p, "tcp") == 0)
            out->proto = PROTO_TCP;
        else if (strcmp(p, "udp") == 0)
            out->proto = PROTO_UDP;
        else if (strcmp(p, "sctp") == 0)
            out->proto = PROTO_SCTP;
        else
            return fail(err, errlen, "unknown protocol '%s' (want tcp, udp or sctp)",
                        p);
        len = (size_t)(slash - text);
    }

    const char *f[FIELDS_MAX];
    size_t fl[FIELDS_MAX];
    int n = split_fields(text, len, f, fl);
    if (n < 0)
        return fail(err, errlen, "%sunclosed '[' in address", "");
    if (n > 4)
        return fail(err, errlen,
                    "too many ':' (write IPv6 addresses in brackets, e.g. [%s])",
                    "::1");
    if (n == 1)
        return fail(err, errlen, "%smissing target and target port", "");
    if (n == 2) {
        uint16_t lo, hi;
        char tmp[8];
        if (spec_parse_ports(f[1], fl[1], "", &lo, &hi, tmp, sizeof tmp) == 0)
            return fail(err, errlen,
                        "missing target (want HOST_PORT:TARGET:TARGET_PORT)%s", "");
        return fail(err, errlen, "%smissing target port", "");
    }

    int i = 0;
    if (n == 4) {
        int r = parse_ip_field(f[0], fl[0], "host IP", &out->host, err, errlen);
        if (r < 0)
            return -1;
        if (r > 0) {
            char ip[64];
            snprintf(ip, sizeof ip, "%.*s", (int)(fl[0] < 63 ? fl[0] : 63), f[0]);
            return fail(err, errlen, "host IP '%s' is not an IP address", ip);
        }
        i = 1;
    } else {
        addr_from_ip(&out->host, "0.0.0.0", 0);
        out->host_default = true;
    }

    if (n == 3 &&
        parse_ip_field(f[0], fl[0], "host IP", &out->target, err, errlen) == 0)
        return fail(err, errlen,
                    "missing target (want [HOST_IP:]HOST_PORT:TARGET:TARGET_PORT)%s",
                    "");
    if (spec_parse_ports(f[i], fl[i], "host port", &out->host_lo, &out->host_hi, err,
                         errlen) < 0)
        return -1;

    const char *t = f[i + 1];
    size_t tl = fl[i + 1];
    if (tl == 0)
        return fail(err, errlen, "%smissing target", "");
    int r = parse_ip_field(t, tl, "target", &out->target, err, errlen);
    if (r < 0)
        return -1;
    if (r == 0) {
        out->target_is_ip = true;
    } else {
        char name[SPEC_NAME_MAX + 2];
        snprintf(name, sizeof name, "%.*s",
                 (int)(tl <= SPEC_NAME_MAX ? tl : SPEC_NAME_MAX), t);
        if (!valid_name(t, tl))
            return fail(err, errlen,
                        "target '%s' is neither an IP address nor a container name",
                        name);
        if (looks_like_ipv4(t, tl))
            return fail(err, errlen, "target '%s' is not a valid IPv4 address", name);
        memcpy(out->target_name, t, tl);
        out->target_name[tl] = '\0';
    }

    if (spec_parse_ports(f[i + 2], fl[i + 2], "target port", &out->target_lo,
                         &out->target_hi, err, errlen) < 0)
        return -1;

    if (out->host_hi - out->host_lo != out->target_hi - out->target_lo) {
        snprintf(err, errlen,
                 "host ports %u-%u and target ports %u-%u differ in length",
                 out->host_lo, out->host_hi, out->target_lo, out->target_hi);
        return -1;
    }
    return 0;
}
