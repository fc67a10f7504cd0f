#include "berth/docker_endpoint.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "berth/sha256.h"

#define DEFAULT_SOCKET "/var/run/docker.sock"
/* Bounds what is read of config.json and a context's meta.json: both are
 * small, and a runaway file must not be slurped at start. */
#define JSON_FILE_MAX (1 << 20)

/* An environment variable as the CLI reads it: set and non-empty. */
static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* $DOCKER_CONFIG, else ~/.docker: the CLI's config dir, and its default
 * certificate folder. */
static void config_dir(char *out, size_t len)
{
    if (env("DOCKER_CONFIG"))
        snprintf(out, len, "%s", env("DOCKER_CONFIG"));
    else
        snprintf(out, len, "%s/.docker", env("HOME") ? env("HOME") : "");
}

static bool port_ok(const char *s, size_t n, unsigned *port)
{
    unsigned v = 0;
    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *port = v;
    return v >= 1 && v <= 65535;
}

/* host[:port] or [v6][:port] of n bytes into host and port (0 if absent).
 * Returns a reason, or NULL. */
static const char *split_hostport(const char *s, size_t n, char *host, size_t hlen,
                                  unsigned *port)
{
    const char *colon = NULL;
    size_t hn;
    *port = 0;
    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return "unclosed '['";
        hn = (size_t)(close - s) + 1;
        if (hn < n && s[hn] != ':')
            return "want [IPv6]:PORT";
        colon = hn < n ? s + hn : NULL;
    } else {
        colon = memchr(s, ':', n);
        hn = colon ? (size_t)(colon - s) : n;
    }
    if (colon && !port_ok(colon + 1, n - hn - 1, port))
        return "bad port";
    if (hn >= hlen)
        return "host name too long";
    for (size_t i = 0; i < hn; i++)
        if ((unsigned char)s[i] <= ' ' || strchr("@/?#", s[i]))
            return "bad character in the host";
    memcpy(host, s, hn);
    host[hn] = '\0';
    return NULL;
}

/* tcp: the CLI's ParseTCPAddr (opts/hosts.go): no host is localhost, no
 * port is 2375 even with TLS (the CLI adds 2376 only to its TLS default,
 * tcp://localhost:2376); a path is kept, its trailing slashes are not. */
static const char *parse_tcp(struct docker_endpoint *ep, const char *rest)
{
    char host[256];
    unsigned port;
    size_t n = strcspn(rest, "/");
    const char *why = split_hostport(rest, n, host, sizeof host, &port);
    if (why)
        return why;
    char path[256];
    snprintf(path, sizeof path, "%s", rest + n);
    for (size_t l = strlen(path); l && path[l - 1] == '/'; l--)
        path[l - 1] = '\0';
    if (strchr(path, '?') || strchr(path, '#') || strchr(path, ' '))
        return "a query or fragment in the path";
    int w = snprintf(ep->url, sizeof ep->url, "tcp://%s:%u%s",
                     *host ? host : "localhost", port ? port : 2375, path);
    if (w < 0 || (size_t)w >= sizeof ep->url)
        return "too long";
    return NULL;
}

/* ssh://[user@]host[:port], as the CLI's connhelper/ssh takes it: no path,
 * query or fragment. Port 0: ssh's own default (or ~/.ssh/config's). */
static const char *parse_ssh(struct docker_endpoint *ep, const char *rest)
{
    const char *at = strchr(rest, '@');
    const char *hp = rest;
    if (strcspn(rest, "/?#") != strlen(rest))
        return "no path, query or fragment allowed after the host";
    if (at) {
        size_t un = (size_t)(at - rest);
        if (un == 0 || un >= sizeof ep->ssh_user || memchr(rest, ':', un))
            return "bad user";
        memcpy(ep->ssh_user, rest, un);
        ep->ssh_user[un] = '\0';
        hp = at + 1;
    }
    const char *why = split_hostport(hp, strlen(hp), ep->ssh_host, sizeof ep->ssh_host,
                                     &ep->ssh_port);
    if (why)
        return why;
    if (!*ep->ssh_host)
        return "no host";
    ep->ssh = true;
    snprintf(ep->url, sizeof ep->url, "ssh://%s", rest);
    return NULL;
}

/* The CLI's parseDockerDaemonHost, into ep->url and the ssh fields: a bare
 * host[:port] is tcp, unix:// alone the default socket. */
static int parse_url(struct docker_endpoint *ep, const char *given, const char *from,
                     char *err, size_t errlen)
{
    /* Surrounding blanks are dropped, as the CLI's ParseHost does. */
    char url[sizeof ep->url];
    while (*given == ' ' || *given == '\t' || *given == '\n')
        given++;
    size_t n = strlen(given);
    while (n && (given[n - 1] == ' ' || given[n - 1] == '\t' || given[n - 1] == '\n'))
        n--;
    if (n >= sizeof url) {
        snprintf(err, errlen, "%s '%.200s...': too long", from, given);
        return -1;
    }
    memcpy(url, given, n);
    url[n] = '\0';
    const char *sep = strstr(url, "://");
    const char *rest = sep ? sep + 3 : url;
    size_t slen = sep ? (size_t)(sep - url) : 3;
    const char *scheme = sep ? url : "tcp";
    const char *why = NULL;
    if (!*url)
        why = "empty";
    else if (strstr(rest, "://"))
        why = "more than one scheme";
    else if (slen == 3 && strncmp(scheme, "tcp", 3) == 0)
        why = parse_tcp(ep, rest);
    else if (slen == 4 && strncmp(scheme, "unix", 4) == 0) {
        if (*rest && *rest != '/')
            why = "want an absolute path";
        else if (strlen(rest) >= sizeof ep->unix_path)
            why = "path too long";
        else if (snprintf(ep->url, sizeof ep->url, "unix://%s",
                          *rest ? rest : DEFAULT_SOCKET) >= (int)sizeof ep->url)
            why = "path too long";
    } else if (slen == 3 && strncmp(scheme, "ssh", 3) == 0)
        why = parse_ssh(ep, rest);
    else if (slen == 5 && strncmp(scheme, "npipe", 5) == 0)
        why = "named pipes are Windows only";
    else if (slen == 2 && strncmp(scheme, "fd", 2) == 0)
        why = "fd:// is for dockerd, not for a client";
    else
        why = "unknown scheme (want unix:///path, tcp://host[:port] or "
              "ssh://[user@]host[:port])";
    if (why) {
        snprintf(err, errlen, "%s '%s': %s", from, url, why);
        return -1;
    }
    return 0;
}

/* The TLS the CLI's flags and environment give --docker, DOCKER_HOST and
 * the default context (cli/flags/options.go): DOCKER_TLS_VERIFY turns TLS
 * and verification on, DOCKER_TLS TLS alone; DOCKER_CERT_PATH only says
 * where the files are. A client certificate or key that is missing is
 * skipped; the CA is always named, so a missing one fails by its name. */
static void env_tls(struct docker_endpoint *ep)
{
    ep->verify = env("DOCKER_TLS_VERIFY") != NULL;
    ep->tls = ep->verify || env("DOCKER_TLS");
    if (!ep->tls)
        return;
    char dir[4096];
    if (env("DOCKER_CERT_PATH"))
        snprintf(dir, sizeof dir, "%s", env("DOCKER_CERT_PATH"));
    else
        config_dir(dir, sizeof dir);
    snprintf(ep->ca, sizeof ep->ca, "%s/ca.pem", dir);
    snprintf(ep->cert, sizeof ep->cert, "%s/cert.pem", dir);
    snprintf(ep->key, sizeof ep->key, "%s/key.pem", dir);
    /* Not verifying, the CA is of no use; curl would still fail on it. */
    if (!ep->verify && !exists(ep->ca))
        ep->ca[0] = '\0';
    if (!exists(ep->cert) || !exists(ep->key))
        ep->cert[0] = ep->key[0] = '\0';
}

/* The http_target and base URL from ep->url and the TLS fields. */
static void finish(struct docker_endpoint *ep)
{
    if (strncmp(ep->url, "unix://", 7) == 0) {
        snprintf(ep->unix_path, sizeof ep->unix_path, "%s", ep->url + 7);
        ep->target.unix_path = ep->unix_path;
    }
    if (strncmp(ep->url, "tcp://", 6) == 0)
        snprintf(ep->base_url, sizeof ep->base_url, "%s://%s",
                 ep->tls ? "https" : "http", ep->url + 6);
    else /* the host part is ignored over a socket or ssh's stdio */
        snprintf(ep->base_url, sizeof ep->base_url, "http://docker");
    if (!strncmp(ep->url, "tcp://", 6) && ep->tls) {
        ep->target.ca = *ep->ca ? ep->ca : NULL;
        ep->target.cert = *ep->cert ? ep->cert : NULL;
        ep->target.key = *ep->key ? ep->key : NULL;
        ep->target.verify = ep->verify;
    } else {
        /* The CLI sets no TLS on a socket; neither does berth. */
        ep->tls = ep->verify = false;
        ep->ca[0] = ep->cert[0] = ep->key[0] = '\0';
    }
    ep->target.base_url = ep->base_url;
    if (ep->ssh) /* http runs `ssh ... docker system dial-stdio` (ssh_dial.h) */
        ep->target.ssh = (struct ssh_dest){.host = ep->ssh_host,
                                           .user = ep->ssh_user,
                                           .port = ep->ssh_port};
}

/* url with the environment's TLS, from the named source. */
static int from_url(struct docker_endpoint *ep, const char *url, const char *from,
                    char *err, size_t errlen)
{
    if (parse_url(ep, url, from, err, errlen) < 0)
        return -1;
    snprintf(ep->source, sizeof ep->source, "%s", from);
    env_tls(ep);
    finish(ep);
    return 0;
}

int docker_endpoint_parse(struct docker_endpoint *ep, const char *url, char *err,
                          size_t errlen)
{
    memset(ep, 0, sizeof *ep);
    return from_url(ep, url, "--docker", err, errlen);
}

/* A JSON file of at most JSON_FILE_MAX bytes; NULL with errno (ENOENT when
 * absent) or, when it is not JSON, errno 0. */
static cJSON *read_json(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = malloc(JSON_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, JSON_FILE_MAX + 1, f) : 0;
    int e = ferror(f) ? EIO : 0;
    fclose(f);
    cJSON *j = NULL;
    if (!buf)
        e = ENOMEM;
    else if (!e && n <= JSON_FILE_MAX) {
        buf[n] = '\0';
        j = cJSON_Parse(buf);
    }
    free(buf);
    errno = e;
    return j;
}

/* The default context: the environment's TLS; with TLS on and nothing
 * else said, the CLI's tcp://localhost:2376 rather than the socket. */
static int default_context(struct docker_endpoint *ep, const char *from, char *err,
                           size_t errlen)
{
    bool tls = env("DOCKER_TLS_VERIFY") || env("DOCKER_TLS");
    return from_url(ep, tls ? "tcp://localhost:2376" : "unix://" DEFAULT_SOCKET, from,
                    err, errlen);
}

/* A named context from the CLI's store (cli/context/store): meta.json in
 * contexts/meta/<sha256 of the name>/, TLS files in
 * contexts/tls/<sha256>/docker/. TLS is on when any TLS file is there or
 * SkipTLSVerify is set, verified unless SkipTLSVerify; a client
 * certificate only counts with its key. */
static int named_context(struct docker_endpoint *ep, const char *name,
                         const char *from, char *err, size_t errlen)
{
    char dir[4096], id[65], path[4400];
    config_dir(dir, sizeof dir);
    sha256_hex(name, strlen(name), id);
    snprintf(path, sizeof path, "%s/contexts/meta/%s/meta.json", dir, id);
    cJSON *meta = read_json(path);
    if (!meta) {
        if (errno == ENOENT)
            snprintf(err, errlen, "context '%s' (%s): no such context (no %s)", name,
                     from, path);
        else
            snprintf(err, errlen, "context '%s' (%s): %s: %s", name, from, path,
                     errno ? strerror(errno) : "not JSON");
        return -1;
    }
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(meta, "Endpoints");
    const cJSON *dock = cJSON_GetObjectItemCaseSensitive(eps, "docker");
    const cJSON *host = cJSON_GetObjectItemCaseSensitive(dock, "Host");
    const cJSON *skip = cJSON_GetObjectItemCaseSensitive(dock, "SkipTLSVerify");
    char where[4400];
    snprintf(where, sizeof where, "context '%s' (%s) host", name, from);
    int rc = -1;
    if (!cJSON_IsString(host) || !*host->valuestring)
        snprintf(err, errlen, "context '%s' (%s): %s has no Endpoints.docker.Host",
                 name, from, path);
    else if (skip && !cJSON_IsBool(skip))
        snprintf(err, errlen,
                 "context '%s' (%s): %s: SkipTLSVerify is not true or false", name,
                 from, path);
    else
        rc = parse_url(ep, host->valuestring, where, err, errlen);
    bool skip_verify = cJSON_IsTrue(skip);
    cJSON_Delete(meta);
    if (rc < 0)
        return -1;
    if (strcmp(from, "DOCKER_CONTEXT") == 0)
        snprintf(ep->source, sizeof ep->source, "DOCKER_CONTEXT=%s", name);
    else
        snprintf(ep->source, sizeof ep->source, "context '%s' (%s)", name, from);
    snprintf(ep->ca, sizeof ep->ca, "%s/contexts/tls/%s/docker/ca.pem", dir, id);
    snprintf(ep->cert, sizeof ep->cert, "%s/contexts/tls/%s/docker/cert.pem", dir, id);
    snprintf(ep->key, sizeof ep->key, "%s/contexts/tls/%s/docker/key.pem", dir, id);
    bool ca = exists(ep->ca), cert = exists(ep->cert), key = exists(ep->key);
    ep->tls = ca || cert || key || skip_verify;
    ep->verify = !skip_verify;
    if (!ca)
        ep->ca[0] = '\0';
    if (!cert || !key)
        ep->cert[0] = ep->key[0] = '\0';
    finish(ep);
    return 0;
}

/* A context by name: "default" is the CLI's built-in one. */
static int context(struct docker_endpoint *ep, const char *name, const char *from,
                   char *err, size_t errlen)
{
    if (strcmp(name, "default") == 0) {
        char src[300];
        if (strcmp(from, "DOCKER_CONTEXT") == 0)
            snprintf(src, sizeof src, "DOCKER_CONTEXT=default");
        else
            snprintf(src, sizeof src, "context 'default' (%.250s)", from);
        return default_context(ep, src, err, errlen);
    }
    return named_context(ep, name, from, err, errlen);
}

int docker_endpoint_resolve(struct docker_endpoint *ep, const char *flag_url,
                            char *err, size_t errlen)
{
    memset(ep, 0, sizeof *ep);
    if (flag_url)
        return from_url(ep, flag_url, "--docker", err, errlen);
    if (env("DOCKER_HOST"))
        return from_url(ep, env("DOCKER_HOST"), "DOCKER_HOST", err, errlen);
    if (env("DOCKER_CONTEXT"))
        return context(ep, env("DOCKER_CONTEXT"), "DOCKER_CONTEXT", err, errlen);
    char dir[4096], path[4200];
    config_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *cfg = read_json(path);
    if (!cfg && errno != ENOENT) {
        /* The CLI warns and goes on without the file; so does berth. */
        const char *why = errno ? strerror(errno) : "not JSON";
        int rc = default_context(ep, "default", err, errlen);
        snprintf(ep->warning, sizeof ep->warning, "ignoring %.200s: %.80s", path, why);
        return rc;
    }
    const cJSON *cur = cJSON_GetObjectItemCaseSensitive(cfg, "currentContext");
    int rc;
    if (cJSON_IsString(cur) && *cur->valuestring)
        rc = context(ep, cur->valuestring, path, err, errlen);
    else
        rc = default_context(ep, "default", err, errlen);
    cJSON_Delete(cfg);
    return rc;
}

void docker_endpoint_describe(const struct docker_endpoint *ep, char *out, size_t len)
{
    const char *how;
    if (ep->ssh)
        how = "over ssh";
    else if (ep->target.unix_path)
        how = "unix socket";
    else if (!ep->tls)
        how = "plain HTTP, no TLS";
    else if (ep->verify)
        how = "TLS, server verified";
    else
        how = "TLS, server NOT verified";
    snprintf(out, len, "%s (from %s; %s)", ep->url, ep->source, how);
}
