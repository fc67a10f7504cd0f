/* libFuzzer target: every Docker API body berth parses comes from a daemon
 * (or whatever answers on its socket); none may crash berth or corrupt the
 * registry, whatever the bytes. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/docker_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    char err[256];
    struct registry *r = registry_new();
    if (!r)
        return 0;
    struct docker_inspect in;
    if (docker_parse_inspect(body, size, &in, err, sizeof err) == 0) {
        registry_put(r, &in.c);
        struct addr a[4];
        registry_resolve(r, in.c.name, 0, AF_INET, a, 4);
        docker_inspect_release(&in);
    }
    char(*ids)[REG_ID_MAX];
    size_t n;
    if (docker_parse_list(body, size, &ids, &n, err, sizeof err) == 0)
        free(ids);
    /* Networks, then names read through their Compose keys (a container
     * on a keyed network, and the input itself as a name). */
    const char *alias[] = {"db"};
    struct reg_endpoint ep = {.network = "lab_backend",
                              .has_v4 = true,
                              .v4 = {htonl(0x0a000002)},
                              .aliases = alias,
                              .naliases = 1};
    struct reg_container db = {.id = "d0000000000000000000000000000000000000000000000"
                                     "00000000000000000",
                               .name = "lab_db_1",
                               .eps = &ep,
                               .neps = 1};
    registry_put(r, &db);
    if (docker_parse_networks(body, size, r, err, sizeof err) == 0) {
        struct addr a[4];
        const char *names[] = {"db.backend", "backend", "db.default", "x.db.backend"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            registry_resolve(r, names[i], strlen(names[i]), AF_INET, a, 4);
        registry_resolve(r, body, size < 300 ? size : 300, AF_INET6, a, 4);
        registry_has_below(r, body, size < 300 ? size : 300);
        registry_has_below(r, "internal.backend", 16);
        /* The list again (keys kept or re-keyed), a container leaving and
         * coming back under them, and a network's key going. */
        docker_parse_networks(body, size, r, err, sizeof err);
        registry_drop(r, db.id);
        registry_resolve(r, "db.backend", 10, AF_INET, a, 4);
        registry_put(r, &db);
        registry_drop_network(r, "lab_backend");
        registry_resolve(r, "db.backend", 10, AF_INET, a, 4);
    }
    struct docker_event ev;
    docker_parse_event(body, size, &ev, err, sizeof err);
    char text[128];
    docker_error_text(body, size, text, sizeof text);
    registry_free(r);
    return 0;
}
