/* Where the Docker Engine API is and how to trust it, found as the docker
 * CLI finds it: --docker, else DOCKER_HOST, else the context DOCKER_CONTEXT
 * names, else the CLI config's current context ($DOCKER_CONFIG or
 * ~/.docker), else unix:///var/run/docker.sock. For --docker, DOCKER_HOST
 * and the default, TLS is on with DOCKER_TLS_VERIFY (verifying) or
 * DOCKER_TLS (not verifying), with ca.pem, cert.pem and key.pem from
 * DOCKER_CERT_PATH, else $DOCKER_CONFIG, else ~/.docker (client files that
 * are missing are skipped); for a context, from its meta.json and its TLS
 * folder. Functions return 0, or -1 with a one-line reason in err naming
 * the offending text and where it came from. */
#ifndef BERTH_DOCKER_ENDPOINT_H
#define BERTH_DOCKER_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

#include "berth/http.h"

struct docker_endpoint {
    struct http_target target; /* points into the strings below */
    char unix_path[256], base_url[300];
    char ca[4200], cert[4200], key[4200];
    char url[300];     /* normalised: unix:///p, tcp://host:port[/path], ssh://... */
    char source[4300]; /* "--docker", "DOCKER_HOST", "DOCKER_CONTEXT=x", ... */
    char warning[300]; /* what the CLI would warn about and ignore, or "" */
    bool tls, verify;
    /* ssh://[user@]host[:port]: ssh_port 0 when not given (ssh's own). */
    bool ssh;
    char ssh_user[128], ssh_host[256];
    unsigned ssh_port;
};

/* The endpoint at url with the TLS environment, as for --docker. */
int docker_endpoint_parse(struct docker_endpoint *ep, const char *url, char *err,
                          size_t errlen);
/* The endpoint the docker CLI would use; flag_url is --docker, or NULL. */
int docker_endpoint_resolve(struct docker_endpoint *ep, const char *flag_url,
                            char *err, size_t errlen);
/* "tcp://h:2376 (from DOCKER_HOST; TLS, verified)" for logs and --check. */
void docker_endpoint_describe(const struct docker_endpoint *ep, char *out, size_t len);

#endif
