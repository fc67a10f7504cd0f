#include "berth/docker_fault.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "berth/curl_api.h"
#include "berth/docker_parse.h"

/* libcurl's texts as OpenSSL and GnuTLS word them: the code alone cannot
 * say which alert the daemon sent or which check failed. */
static bool has(const char *text, const char *word)
{
    return text && strcasestr(text, word) != NULL;
}

static bool any_of(const char *text, const char *const *words)
{
    for (; *words; words++)
        if (has(text, *words))
            return true;
    return false;
}

/* The daemon refused our certificate (or wanted one): TLS alerts it sent. */
static const char *const CLIENT_REJECTED[] = {"alert bad certificate",
                                              "certificate required",
                                              "alert unknown ca",
                                              "alert certificate unknown",
                                              "alert unsupported certificate",
                                              "alert access denied",
                                              "handshake failure",
                                              NULL};
/* Our ClientHello answered by something that is not TLS (an HTTP 400, a
 * banner): OpenSSL reads its first bytes as a record header. */
static const char *const NOT_TLS[] = {"wrong version number",
                                      "packet length too long",
                                      "record layer failure",
                                      "unknown protocol",
                                      "unexpected message",
                                      "first record",
                                      NULL};

static void unix_connect(const char *path, int err, char *out, size_t outlen)
{
    switch (err) {
    case ENOENT:
    case ENOTDIR:
        snprintf(out, outlen,
                 "cannot connect to %s: no such socket (is dockerd running? is the "
                 "path right?)",
                 path);
        break;
    case EACCES:
    case EPERM:
        snprintf(out, outlen,
                 "cannot connect to %s: permission denied (add yourself to the "
                 "docker group or run as root)",
                 path);
        break;
    case ECONNREFUSED:
        snprintf(out, outlen,
                 "cannot connect to %s: connection refused, nothing listens on the "
                 "socket (is dockerd running?)",
                 path);
        break;
    default:
        snprintf(out, outlen, "cannot connect to %s: %s (is dockerd running?)", path,
                 err ? strerror(err) : "connect failed");
        break;
    }
}

static void tcp_connect(const char *url, int err, char *out, size_t outlen)
{
    if (err == ECONNREFUSED)
        snprintf(out, outlen,
                 "cannot connect to %s: connection refused (is dockerd running and "
                 "listening on that address?)",
                 url);
    else
        snprintf(out, outlen,
                 "cannot connect to %s: %s (is the host up and the port open?)", url,
                 err ? strerror(err) : "connect failed");
}

/* A TLS failure. Returns false if text and code say it is none. */
static bool tls(const struct http_target *t, int code, const char *text, char *out,
                size_t outlen)
{
    const char *url = t->base_url, *ca = t->ca ? t->ca : "the system's CAs";
    if (code == CURLE_SSL_CACERT_BADFILE) {
        snprintf(out, outlen, "cannot use the CA file %s: %s (check DOCKER_CERT_PATH)",
                 ca, text);
    } else if (code == CURLE_SSL_CERTPROBLEM) {
        snprintf(out, outlen,
                 "cannot use the client certificate %s (key %s): %s (check "
                 "DOCKER_CERT_PATH)",
                 t->cert ? t->cert : "(none)", t->key ? t->key : "(none)", text);
    } else if (code == CURLE_PEER_FAILED_VERIFICATION) {
        /* Our check of the daemon's certificate failed: which check? */
        if (has(text, "expired") || has(text, "not yet valid"))
            snprintf(out, outlen,
                     "the daemon's certificate at %s has expired or is not yet valid "
                     "(renew it; check both clocks): %s",
                     url, text);
        else if (has(text, "name") || has(text, "host"))
            snprintf(out, outlen,
                     "the daemon's certificate at %s is not for that host name (use "
                     "the name it was issued for, or reissue it): %s",
                     url, text);
        else
            snprintf(out, outlen,
                     "the daemon at %s is not trusted: its certificate is not signed "
                     "by %s (is DOCKER_CERT_PATH the daemon's?): %s",
                     url, ca, text);
    } else if (has(text, "alert certificate expired")) {
        snprintf(out, outlen,
                 "the daemon at %s rejected the client certificate %s: expired (renew "
                 "it): %s",
                 url, t->cert ? t->cert : "(none)", text);
    } else if (any_of(text, CLIENT_REJECTED)) {
        if (!t->cert)
            snprintf(out, outlen,
                     "the daemon at %s wants a client certificate (set "
                     "DOCKER_CERT_PATH to a folder with cert.pem and key.pem): %s",
                     url, text);
        else
            snprintf(out, outlen,
                     "the daemon at %s rejected the client certificate %s (is it "
                     "signed by a CA the daemon trusts?): %s",
                     url, t->cert, text);
    } else if (any_of(text, NOT_TLS)) {
        snprintf(out, outlen,
                 "the daemon at %s does not speak TLS there (a plain HTTP port? use "
                 "its TLS port, or tcp:// without DOCKER_TLS_VERIFY): %s",
                 url, text);
    } else if (code == CURLE_SSL_CONNECT_ERROR || has(text, "SSL") ||
               has(text, "TLS")) {
        snprintf(out, outlen, "TLS with %s failed: %s", url, text);
    } else {
        return false;
    }
    return true;
}

/* The daemon answered HTTP with an error. */
static void http_status(const struct http_target *t, long status, const char *body,
                        size_t len, char *out, size_t outlen)
{
    const char *where = t->unix_path ? t->unix_path : t->base_url;
    char msg[300];
    docker_error_text(body, len, msg, sizeof msg);
    const char *hint = "";
    if (status == 400 && has(msg, "HTTP request to an HTTPS server")) {
        snprintf(out, outlen,
                 "the daemon at %s speaks TLS (set DOCKER_TLS_VERIFY=1 and "
                 "DOCKER_CERT_PATH, or use its plain port): HTTP 400: %s",
                 where, msg);
        return;
    }
    if (status == 401 || status == 403)
        hint = " (an authorization plugin or a proxy refuses berth)";
    else if (status == 404)
        hint = " (is this a Docker Engine API?)";
    else if (status >= 500)
        hint = " (the daemon's own failure: see its log)";
    snprintf(out, outlen, "HTTP %ld from %s: %s%s", status, where, msg, hint);
}

void docker_fault_explain(const struct http_target *t, const struct http_error *error,
                          long status, const char *body, size_t len, char *out,
                          size_t outlen)
{
    if (!error) {
        http_status(t, status, body, len, out, outlen);
        return;
    }
    const char *where = t->unix_path ? t->unix_path : t->base_url;
    const char *text = error->text;
    int code = error->code;
    bool https = strncmp(t->base_url, "https:", 6) == 0 && !t->unix_path;
    if (code == CURLE_COULDNT_CONNECT) {
        if (t->unix_path)
            unix_connect(t->unix_path, error->os_errno, out, outlen);
        else
            tcp_connect(t->base_url, error->os_errno, out, outlen);
    } else if (code == CURLE_COULDNT_RESOLVE_HOST) {
        snprintf(out, outlen, "cannot resolve the host of %s (is the name right?): %s",
                 where, text);
    } else if (code == CURLE_OPERATION_TIMEDOUT) {
        snprintf(out, outlen,
                 "no answer from %s in time (a hung daemon, or a firewall dropping "
                 "packets?): %s",
                 where, text);
    } else if (https && tls(t, code, text, out, outlen)) {
        return;
    } else if (!https && !t->unix_path &&
               (code == CURLE_WEIRD_SERVER_REPLY || code == CURLE_GOT_NOTHING ||
                code == CURLE_UNSUPPORTED_PROTOCOL || code == CURLE_RECV_ERROR)) {
        /* Plain HTTP sent to a port that speaks TLS (or something else). */
        snprintf(out, outlen,
                 "%s does not answer plain HTTP (a TLS port? set DOCKER_TLS_VERIFY=1 "
                 "and DOCKER_CERT_PATH): %s",
                 where, text);
    } else if (code == CURLE_PARTIAL_FILE) {
        snprintf(out, outlen,
                 "the daemon at %s closed the connection mid-answer (did it stop?)",
                 where);
    } else if (code == CURLE_GOT_NOTHING) {
        snprintf(out, outlen,
                 "the daemon at %s closed the connection without answering", where);
    } else if (code) {
        snprintf(out, outlen, "%s: %s", where, text);
    } else {
        snprintf(out, outlen, "%s", text); /* berth's own reason, already worded */
    }
}

const char *docker_duration(uint64_t ms, char *out, size_t outlen)
{
    uint64_t s = (ms + 500) / 1000;
    if (s < 60)
        snprintf(out, outlen, "%" PRIu64 "s", s);
    else if (s < 3600)
        snprintf(out, outlen, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
    else
        snprintf(out, outlen, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s / 60 % 60);
    return out;
}

bool docker_fault_unreachable(const struct http_error *error)
{
    return error && (error->code == CURLE_COULDNT_CONNECT ||
                     error->code == CURLE_COULDNT_RESOLVE_HOST);
}
