#include "berth/docker_parse.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s", what);
    return -1;
}

static const char *str_at(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static cJSON *parse(const char *body, size_t len)
{
    return cJSON_ParseWithLength(body, len);
}

static bool valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n < 12 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    return true;
}

/* Compose labels say "True"/"False"; be lenient about case. */
static bool is_true(const char *s)
{
    return s && (strcmp(s, "True") == 0 || strcmp(s, "true") == 0);
}

static size_t count_aliases(const cJSON *net)
{
    size_t n = 0;
    const char *keys[] = {"Aliases", "DNSNames"};
    for (int k = 0; k < 2; k++) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(net, keys[k]);
        if (cJSON_IsArray(arr))
            n += (size_t)cJSON_GetArraySize(arr);
    }
    return n;
}

/* Aliases and (API >= 1.44) DNSNames, without repeats. */
static size_t collect_aliases(const cJSON *net, const char **out)
{
    size_t n = 0;
    const char *keys[] = {"Aliases", "DNSNames"};
    for (int k = 0; k < 2; k++) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(net, keys[k]);
        const cJSON *a;
        cJSON_ArrayForEach(a, arr) {
            if (!cJSON_IsString(a) || !a->valuestring[0])
                continue;
            bool dup = false;
            for (size_t i = 0; i < n && !dup; i++)
                dup = strcmp(out[i], a->valuestring) == 0;
            if (!dup)
                out[n++] = a->valuestring;
        }
    }
    return n;
}

int docker_parse_inspect(const char *body, size_t len, struct docker_inspect *out,
                         char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    cJSON *root = parse(body, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fail(err, errlen, "inspect: not a JSON object");
    }
    out->json = root;
    const char *id = str_at(root, "Id");
    const char *name = str_at(root, "Name");
    if (!id || !valid_id(id)) {
        docker_inspect_release(out);
        return fail(err, errlen, "inspect: no valid \"Id\"");
    }
    if (!name) {
        docker_inspect_release(out);
        return fail(err, errlen, "inspect: no \"Name\"");
    }
    out->c.id = id;
    out->c.name = name[0] == '/' ? name + 1 : name;
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(root, "State");
    out->running = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(state, "Running"));

    const cJSON *config = cJSON_GetObjectItemCaseSensitive(root, "Config");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(config, "Labels");
    if (cJSON_IsObject(labels)) {
        out->c.project = str_at(labels, "com.docker.compose.project");
        out->c.service = str_at(labels, "com.docker.compose.service");
        out->c.oneoff = is_true(str_at(labels, "com.docker.compose.oneoff"));
        out->c.publish = str_at(labels, "berth.publish");
        const char *num = str_at(labels, "com.docker.compose.container-number");
        out->c.number = num ? atoi(num) : 0;
    }

    const cJSON *settings = cJSON_GetObjectItemCaseSensitive(root, "NetworkSettings");
    const cJSON *nets = cJSON_GetObjectItemCaseSensitive(settings, "Networks");
    if (!cJSON_IsObject(nets))
        return 0; /* no networks: a name with no address */
    size_t nnets = (size_t)cJSON_GetArraySize(nets), naliases = 0;
    const cJSON *net;
    cJSON_ArrayForEach(net, nets)
        naliases += count_aliases(net);
    out->eps = calloc(nnets ? nnets : 1, sizeof *out->eps);
    out->aliases = calloc(naliases ? naliases : 1, sizeof *out->aliases);
    if (!out->eps || !out->aliases) {
        docker_inspect_release(out);
        return fail(err, errlen, "inspect: out of memory");
    }
    size_t used = 0;
    cJSON_ArrayForEach(net, nets) {
        if (!cJSON_IsObject(net) || !net->string)
            continue;
        struct reg_endpoint *ep = &out->eps[out->c.neps];
        ep->network = net->string;
        const char *v4 = str_at(net, "IPAddress");
        const char *v6 = str_at(net, "GlobalIPv6Address");
        ep->has_v4 = v4 && inet_pton(AF_INET, v4, &ep->v4) == 1;
        ep->has_v6 = v6 && inet_pton(AF_INET6, v6, &ep->v6) == 1;
        ep->aliases = out->aliases + used;
        ep->naliases = collect_aliases(net, out->aliases + used);
        used += ep->naliases;
        out->c.neps++;
    }
    out->c.eps = out->eps;
    return 0;
}

void docker_inspect_release(struct docker_inspect *in)
{
    cJSON_Delete(in->json);
    free(in->eps);
    free(in->aliases);
    memset(in, 0, sizeof *in);
}

int docker_parse_list(const char *body, size_t len, char (**ids)[REG_ID_MAX],
                      size_t *n, char *err, size_t errlen)
{
    *ids = NULL;
    *n = 0;
    cJSON *root = parse(body, len);
    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return fail(err, errlen, "container list: not a JSON array");
    }
    size_t cap = (size_t)cJSON_GetArraySize(root);
    *ids = calloc(cap ? cap : 1, sizeof **ids);
    if (!*ids) {
        cJSON_Delete(root);
        return fail(err, errlen, "container list: out of memory");
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, root) {
        const char *id = str_at(c, "Id");
        if (!id || !valid_id(id)) {
            free(*ids);
            *ids = NULL;
            *n = 0;
            cJSON_Delete(root);
            return fail(err, errlen, "container list: an entry has no valid \"Id\"");
        }
        snprintf((*ids)[(*n)++], REG_ID_MAX, "%s", id);
    }
    cJSON_Delete(root);
    return 0;
}

static int parse_subnet(const char *text, struct reg_subnet *s)
{
    char ip[64];
    const char *slash = strchr(text, '/');
    if (!slash || (size_t)(slash - text) >= sizeof ip)
        return -1;
    snprintf(ip, sizeof ip, "%.*s", (int)(slash - text), text);
    char *end;
    long prefix = strtol(slash + 1, &end, 10);
    if (*end || prefix < 0 || prefix > 128 || addr_from_ip(&s->net, ip, 0) < 0)
        return -1;
    s->prefix = (unsigned)prefix;
    return 0;
}

int docker_parse_networks(const char *body, size_t len, struct registry *r, char *err,
                          size_t errlen)
{
    cJSON *root = parse(body, len);
    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return fail(err, errlen, "network list: not a JSON array");
    }
    /* The list is the whole truth: a network missing from it is gone. */
    registry_clear_networks(r);
    const cJSON *net;
    cJSON_ArrayForEach(net, root) {
        const char *name = str_at(net, "Name");
        if (!name)
            continue;
        struct reg_subnet subnets[16];
        size_t n = 0;
        const cJSON *ipam = cJSON_GetObjectItemCaseSensitive(net, "IPAM");
        const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(ipam, "Config");
        const cJSON *c;
        cJSON_ArrayForEach(c, cfg) {
            const char *sub = str_at(c, "Subnet");
            if (sub && n < sizeof subnets / sizeof subnets[0] &&
                parse_subnet(sub, &subnets[n]) == 0)
                n++;
        }
        if (registry_put_network(r, name, subnets, n) < 0) {
            cJSON_Delete(root);
            return fail(err, errlen, "network list: out of memory");
        }
    }
    cJSON_Delete(root);
    return 0;
}

int docker_parse_event(const char *line, size_t len, struct docker_event *ev,
                       char *err, size_t errlen)
{
    memset(ev, 0, sizeof *ev);
    cJSON *root = parse(line, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fail(err, errlen, "event: not a JSON object");
    }
    const char *type = str_at(root, "Type");
    const char *action = str_at(root, "Action");
    if (!type || !action) {
        cJSON_Delete(root);
        return fail(err, errlen, "event: no \"Type\" or \"Action\"");
    }
    snprintf(ev->type, sizeof ev->type, "%s", type);
    snprintf(ev->action, sizeof ev->action, "%s", action);
    const cJSON *actor = cJSON_GetObjectItemCaseSensitive(root, "Actor");
    const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(actor, "Attributes");
    /* Container events name the container as the actor; network events
     * carry it as an attribute. */
    const char *id = strcmp(type, "container") == 0 ? str_at(actor, "ID")
                                                    : str_at(attrs, "container");
    if (id && valid_id(id))
        snprintf(ev->id, sizeof ev->id, "%s", id);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "time");
    if (cJSON_IsNumber(t))
        ev->time = (int64_t)t->valuedouble;
    cJSON_Delete(root);
    return 0;
}

void docker_error_text(const char *body, size_t len, char *out, size_t outlen)
{
    cJSON *root = parse(body, len);
    const char *msg = cJSON_IsObject(root) ? str_at(root, "message") : NULL;
    if (msg) {
        snprintf(out, outlen, "%s", msg);
    } else {
        /* Plain text: first line, control bytes dropped. */
        size_t n = 0;
        for (size_t i = 0; i < len && n + 1 < outlen && body[i] != '\n'; i++)
            if ((unsigned char)body[i] >= 0x20)
                out[n++] = body[i];
        while (n > 0 && out[n - 1] == ' ')
            n--;
        out[n] = '\0';
        if (n == 0)
            snprintf(out, outlen, "(empty answer)");
    }
    cJSON_Delete(root);
}
