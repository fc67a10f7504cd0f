/* libFuzzer target: publish specs, docker-proxy flags and --config JSON are
 * the text berth parses; none of them may crash, leak or read out of
 * bounds, whatever the bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/compat.h"
#include "berth/config.h"
#include "berth/config_file.h"
#include "berth/plan.h"
#include "berth/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    struct spec sp;
    spec_parse(text, &sp, err, sizeof err);

    /* The same bytes as docker-proxy argv, split at spaces. */
    char *argv[16] = {"berth"};
    int argc = 1;
    char *copy = strdup(text), *save = NULL;
    for (char *t = strtok_r(copy, " ", &save); t && argc < 15;
         t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    struct compat_args ca;
    compat_parse(argc, argv, &ca, err, sizeof err);

    struct config *c = config_new();
    if (c && config_load_json(c, (const char *)data, size, "config", err,
                              sizeof err) == 0) {
        c->host_ipv6 = size % 2; /* specs without HOST_IP: one family or two */
        struct plan *p = plan_new(c, err, sizeof err);
        plan_free(p);
    }
    config_free(c);
    free(copy);
    free(text);
    return 0;
}
