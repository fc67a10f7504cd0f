#include "berth/docker_endpoint.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int docker_endpoint_parse(struct docker_endpoint *ep, const char *url, char *err,
                          size_t errlen)
{
    memset(ep, 0, sizeof *ep);
    if (strncmp(url, "unix://", 7) == 0 && url[7] == '/') {
        snprintf(ep->unix_path, sizeof ep->unix_path, "%s", url + 7);
        /* The host part is ignored over a unix socket. */
        snprintf(ep->base_url, sizeof ep->base_url, "http://docker");
        ep->target.unix_path = ep->unix_path;
    } else if (strncmp(url, "tcp://", 6) == 0 && url[6]) {
        const char *verify = getenv("DOCKER_TLS_VERIFY");
        const char *certs = getenv("DOCKER_CERT_PATH");
        bool tls = (verify && *verify) || (certs && *certs);
        snprintf(ep->base_url, sizeof ep->base_url, "%s://%s", tls ? "https" : "http",
                 url + 6);
        if (tls) {
            char home[4096];
            if (!certs || !*certs) {
                snprintf(home, sizeof home, "%s/.docker",
                         getenv("HOME") ? getenv("HOME") : "");
                certs = home;
            }
            snprintf(ep->ca, sizeof ep->ca, "%s/ca.pem", certs);
            snprintf(ep->cert, sizeof ep->cert, "%s/cert.pem", certs);
            snprintf(ep->key, sizeof ep->key, "%s/key.pem", certs);
            ep->target.ca = ep->ca;
            ep->target.cert = ep->cert;
            ep->target.key = ep->key;
            ep->target.verify = verify && *verify;
        }
    } else {
        snprintf(err, errlen, "--docker '%s': want unix:///path or tcp://host:port",
                 url);
        return -1;
    }
    ep->target.base_url = ep->base_url;
    return 0;
}
