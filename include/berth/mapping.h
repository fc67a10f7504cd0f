/* What a published port is: types only. The plan makes mappings from the
 * command line and config, labels make them from containers, berth owns
 * the listener of each, and the relays read them; none of those needs the
 * others' functions to share this. */
#ifndef BERTH_MAPPING_H
#define BERTH_MAPPING_H

#include <stddef.h>
#include <stdint.h>

#include "berth/sockaddr.h"

enum proto { PROTO_TCP, PROTO_UDP };

/* A Docker name target at most (a DNS name's length). */
#define MAPPING_NAME_MAX 253
#define MAPPING_LABEL_MAX 128

struct mapping {
    enum proto proto;
    struct addr listen; /* host address and port to bind */
    struct addr target; /* where connections and datagrams go (IP) */
    /* A Docker name instead ("web", "api.lab"): resolved through the
     * registry per connection or flow; target_port goes with it. */
    char target_name[MAPPING_NAME_MAX + 1];
    uint16_t target_port;
    /* "127.0.0.1:8080->10.0.0.2:80/tcp", used in every log line. */
    char label[MAPPING_LABEL_MAX];
    size_t source; /* index of the --publish entry it came from */
};

#endif
