/* Docker Engine API bodies to plain structs: container inspect, the
 * container list, the network list, and one line of the event stream.
 * Pure (no I/O); every function takes untrusted bytes, checks every type,
 * and explains a rejection in err. Returns 0, or -1 with err set. */
#ifndef BERTH_DOCKER_PARSE_H
#define BERTH_DOCKER_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/registry.h"

/* An inspected container; strings point into the parsed JSON it owns. */
struct docker_inspect {
    void *json; /* the cJSON tree */
    bool running;
    struct reg_container c;
    struct reg_endpoint *eps;
    const char **aliases; /* all endpoints' aliases, one array */
};

int docker_parse_inspect(const char *body, size_t len, struct docker_inspect *out,
                         char *err, size_t errlen);
void docker_inspect_release(struct docker_inspect *in);

/* The ids of a /containers/json answer, as one allocation of n ids of 65
 * bytes each (free with free()). */
int docker_parse_list(const char *body, size_t len, char (**ids)[REG_ID_MAX],
                      size_t *n, char *err, size_t errlen);

/* A /networks answer into the registry's subnets (replacing all). */
int docker_parse_networks(const char *body, size_t len, struct registry *r, char *err,
                          size_t errlen);

struct docker_event {
    char type[16];       /* "container", "network", ... */
    char action[48];     /* "start", "die", "connect", ... */
    char id[REG_ID_MAX]; /* the container concerned, or "" */
    int64_t time;        /* seconds since the epoch */
};

int docker_parse_event(const char *line, size_t len, struct docker_event *ev,
                       char *err, size_t errlen);

/* The daemon's error text from an error body: {"message": ...} or the
 * plain text, trimmed, into out. */
void docker_error_text(const char *body, size_t len, char *out, size_t outlen);

#endif
