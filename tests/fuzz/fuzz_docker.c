/* libFuzzer target: every Docker API body berth parses comes from a daemon
 * (or whatever answers on its socket); none may crash berth or corrupt the
 * registry, whatever the bytes. */
#include <stdint.h>
#include <stdlib.h>

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
    docker_parse_networks(body, size, r, err, sizeof err);
    struct docker_event ev;
    docker_parse_event(body, size, &ev, err, sizeof err);
    char text[128];
    docker_error_text(body, size, text, sizeof text);
    registry_free(r);
    return 0;
}
