/* Docker Engine API bodies to plain structs: container inspect, the
 * container list, the network list, and one line of the event stream.
 * Pure (no I/O); every function takes untrusted bytes, checks every type,
 * and explains a rejection in err. Returns 0, or -1 with err set (the
 * list's constructor and lookups, and docker_answer_failed, as stated). */
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
    bool swarm_task; /* a Swarm task's (label com.docker.swarm.task.id) */
    struct reg_container c;
    struct reg_endpoint *eps;
    const char **aliases; /* all endpoints' aliases, one array */
};

int docker_parse_inspect(const char *body, size_t len, struct docker_inspect *out,
                         char *err, size_t errlen);
void docker_inspect_release(struct docker_inspect *in);

/* A /containers/json answer as it streams in (130 MB at 100,000
 * containers): as each entry completes its top-level "Id" is found and
 * checked (the rest of it is only framed, never parsed: berth needs no
 * more), and kept, in order, without repeats, in blocks that never move.
 * At most max ids; an entry over 1 MiB, or more entries, is an error.
 * docker_list_new returns NULL when out of memory. */
struct docker_list;

struct docker_list *docker_list_new(size_t max);
void docker_list_free(struct docker_list *l);
int docker_list_feed(struct docker_list *l, const char *data, size_t len, char *err,
                     size_t errlen);
/* The answer ended: 0 if it was a whole list. */
int docker_list_end(struct docker_list *l, char *err, size_t errlen);
size_t docker_list_count(const struct docker_list *l);
/* The i-th id (i < count); valid until the list is freed. */
const char *docker_list_id(const struct docker_list *l, size_t i);
bool docker_list_has(const struct docker_list *l, const char *id);

/* A whole /containers/json answer at once, through docker_list: the ids as
 * one allocation of n ids of 65 bytes each (free with free()). */
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

/* Why an answer (as http.h's done callback gets it) is not a 200, as one
 * line into out: error, or "HTTP 500: <error text>". False when it is a
 * 200 without error (out untouched). */
bool docker_answer_failed(long status, const char *body, size_t len, const char *error,
                          char *out, size_t outlen);

#endif
