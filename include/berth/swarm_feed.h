/* A Swarm round's answers fed into the round as they come: a list answer's
 * elements one at a time (json_split hands them over), or a whole answer,
 * each parsed (swarm_parse.h) and added (swarm_round.h). An overlay
 * network is added as attached when this host has an address inside its
 * subnet; the routing mesh's network is left out. What cannot be read or
 * would pass the round's bounds is an error, said in err. */
#ifndef BERTH_SWARM_FEED_H
#define BERTH_SWARM_FEED_H

#include <stddef.h>

#include "berth/swarm_round.h"

enum swarm_answer {
    SWARM_NETWORKS, /* GET /networks?filters=overlay: list */
    SWARM_LOCAL,    /* GET /containers/json of task containers: list */
    SWARM_SERVICES, /* GET /services: list */
    SWARM_NODES,    /* GET /nodes: list */
    SWARM_TASKS,    /* GET /tasks: list */
    SWARM_GATEWAY,  /* GET /networks/docker_gwbridge: whole */
    SWARM_VIEW,     /* GET /networks/{id}?verbose=true: whole */
};

/* One element of a list answer. Returns 0, or -1 with err. */
int swarm_feed_elem(struct swarm_round *r, enum swarm_answer kind, const char *elem,
                    size_t len, char *err, size_t errlen);
/* A whole answer (SWARM_GATEWAY, SWARM_VIEW). Returns 0, or -1 with err. */
int swarm_feed_body(struct swarm_round *r, enum swarm_answer kind, const char *body,
                    size_t len, char *err, size_t errlen);

#endif
