/* Where the Docker Engine API is, as the docker CLI finds it: unix:///path,
 * or tcp://host:port with TLS when DOCKER_TLS_VERIFY or DOCKER_CERT_PATH is
 * set (ca.pem, cert.pem, key.pem in DOCKER_CERT_PATH, else ~/.docker).
 * Returns 0, or -1 with a one-line reason in err. */
#ifndef BERTH_DOCKER_ENDPOINT_H
#define BERTH_DOCKER_ENDPOINT_H

#include <stddef.h>

#include "berth/http.h"

struct docker_endpoint {
    struct http_target target; /* points into the strings below */
    char unix_path[256], base_url[300];
    char ca[4200], cert[4200], key[4200];
};

int docker_endpoint_parse(struct docker_endpoint *ep, const char *url, char *err,
                          size_t errlen);

#endif
