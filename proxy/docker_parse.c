#include "berth/docker_parse.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/idmap.h"
#include "berth/json_split.h"

/* Ids per block of a docker_list (266 KB). */
#define LIST_BLOCK 4096
/* The longest list entry accepted: real ones are 1-2 KB, labels included. */
#define LIST_ENTRY_MAX (1u << 20)
/* The most networks a /networks answer may name: an engine's address pools
 * give a few hundred at most; the registry files each with a scan. */
#define NETWORKS_MAX 4096

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
        out->c.transparent = str_at(labels, "berth.transparent");
        out->c.proxy_protocol = str_at(labels, "berth.proxy-protocol");
        out->swarm_task = str_at(labels, "com.docker.swarm.task.id") != NULL;
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

struct docker_list {
    struct json_split split;
    char (**blocks)[REG_ID_MAX];
    size_t nblocks;
    size_t n, max;
    struct idmap *set; /* the ids kept, keyed by the blocks' copies */
};

struct docker_list *docker_list_new(size_t max)
{
    struct docker_list *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    if (!(l->set = idmap_new())) {
        free(l);
        return NULL;
    }
    l->split = JSON_SPLIT_INIT(LIST_ENTRY_MAX);
    l->max = max;
    return l;
}

void docker_list_free(struct docker_list *l)
{
    if (!l)
        return;
    json_split_release(&l->split);
    for (size_t i = 0; i < l->nblocks; i++)
        free(l->blocks[i]);
    free(l->blocks);
    idmap_free(l->set);
    free(l);
}

/* Room for one more id: a new block when the last one is full. */
static int list_room(struct docker_list *l)
{
    if (l->n < l->nblocks * LIST_BLOCK)
        return 0;
    char(**v)[REG_ID_MAX] = realloc(l->blocks, (l->nblocks + 1) * sizeof *v);
    if (!v)
        return -1;
    l->blocks = v;
    if (!(v[l->nblocks] = malloc(LIST_BLOCK * sizeof **v)))
        return -1;
    l->nblocks++;
    return 0;
}

/* ---- the top-level "Id" of a list entry, without parsing the rest ----
 * A list entry is ~1 KB of which berth needs 64 bytes; parsing every entry
 * whole cost four times the scan below, all on the loop the relays share
 * (libcurl hands over up to 1.6 MB of list at once). json_split has
 * already checked the entry's brackets and quotes balance. */

static size_t skip_space(const char *p, size_t i, size_t len)
{
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

/* p[i] is a '"': the index after the string's closing quote (or len). */
static size_t skip_string(const char *p, size_t i, size_t len)
{
    for (i++; i < len; i++) {
        if (p[i] == '\\')
            i++;
        else if (p[i] == '"')
            return i + 1;
    }
    return len;
}

/* The index after the value that starts at p[i]. */
static size_t skip_value(const char *p, size_t i, size_t len)
{
    if (i < len && p[i] == '"')
        return skip_string(p, i, len);
    unsigned depth = 0;
    while (i < len) {
        char c = p[i];
        if (c == '"') {
            i = skip_string(p, i, len);
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return i; /* the end of the enclosing object */
            if (--depth == 0)
                return i + 1;
        } else if (depth == 0 &&
                   (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
            return i; /* a bare scalar ends */
        }
        i++;
    }
    return len;
}

/* Copies the string value of the object's first top-level "Id" key into
 * id; false if elem is no object or has none. */
static bool entry_id(const char *p, size_t len, char *id, size_t idlen)
{
    size_t i = skip_space(p, 0, len);
    if (i >= len || p[i] != '{')
        return false;
    for (i++;; i++) { /* at each key: after '{' or ',' */
        i = skip_space(p, i, len);
        if (i >= len || p[i] != '"')
            return false;
        size_t key = i + 1;
        i = skip_string(p, i, len);
        bool is_id = i == key + 3 && memcmp(p + key, "Id\"", 3) == 0;
        i = skip_space(p, i, len);
        if (i >= len || p[i] != ':')
            return false;
        i = skip_space(p, i + 1, len);
        if (is_id) {
            size_t end = i < len && p[i] == '"' ? skip_string(p, i, len) : i;
            size_t n = end > i + 1 && p[end - 1] == '"' ? end - i - 2 : idlen;
            if (n >= idlen || memchr(p + i + 1, '\\', n))
                return false;
            memcpy(id, p + i + 1, n);
            id[n] = '\0';
            return true;
        }
        i = skip_space(p, skip_value(p, i, len), len);
        if (i >= len || p[i] != ',')
            return false;
    }
}

/* One entry of the list (a json_elem_fn). */
static int list_entry(void *arg, const char *elem, size_t len, char *err,
                      size_t errlen)
{
    struct docker_list *l = arg;
    char id[REG_ID_MAX];
    if (!entry_id(elem, len, id, sizeof id) || !valid_id(id))
        return fail(err, errlen, "an entry has no valid \"Id\"");
    if (idmap_get(l->set, id))
        return 0; /* said twice: once is enough */
    if (l->n >= l->max) {
        snprintf(err, errlen, "more than %zu containers", l->max);
        return -1;
    }
    if (list_room(l) < 0)
        return fail(err, errlen, "out of memory");
    char *slot = l->blocks[l->n / LIST_BLOCK][l->n % LIST_BLOCK];
    memcpy(slot, id, sizeof id);
    if (idmap_put(l->set, slot, slot) < 0)
        return fail(err, errlen, "out of memory");
    l->n++;
    return 0;
}

/* Says which answer was wrong: every message starts the same. */
static int list_failed(char *err, size_t errlen)
{
    char why[200];
    snprintf(why, sizeof why, "%s", err);
    snprintf(err, errlen, "container list: %s", why);
    return -1;
}

int docker_list_feed(struct docker_list *l, const char *data, size_t len, char *err,
                     size_t errlen)
{
    if (json_split_feed(&l->split, data, len, list_entry, l, err, errlen) < 0)
        return list_failed(err, errlen);
    return 0;
}

int docker_list_end(struct docker_list *l, char *err, size_t errlen)
{
    if (json_split_end(&l->split, err, errlen) < 0)
        return list_failed(err, errlen);
    return 0;
}

size_t docker_list_count(const struct docker_list *l) { return l->n; }

const char *docker_list_id(const struct docker_list *l, size_t i)
{
    return l->blocks[i / LIST_BLOCK][i % LIST_BLOCK];
}

bool docker_list_has(const struct docker_list *l, const char *id)
{
    return idmap_get(l->set, id) != NULL;
}

int docker_parse_list(const char *body, size_t len, char (**ids)[REG_ID_MAX],
                      size_t *n, char *err, size_t errlen)
{
    *ids = NULL;
    *n = 0;
    struct docker_list *l = docker_list_new((size_t)-1);
    if (!l)
        return fail(err, errlen, "container list: out of memory");
    if (docker_list_feed(l, body, len, err, errlen) < 0 ||
        docker_list_end(l, err, errlen) < 0) {
        docker_list_free(l);
        return -1;
    }
    if (!(*ids = calloc(l->n ? l->n : 1, sizeof **ids))) {
        docker_list_free(l);
        return fail(err, errlen, "container list: out of memory");
    }
    for (size_t i = 0; i < l->n; i++)
        snprintf((*ids)[i], REG_ID_MAX, "%s", docker_list_id(l, i));
    *n = l->n;
    docker_list_free(l);
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
    if (cJSON_GetArraySize(root) > NETWORKS_MAX) {
        cJSON_Delete(root);
        return fail(err, errlen, "network list: more than 4096 networks");
    }
    /* The list is the whole truth: a network missing from it is gone. */
    registry_clear_networks(r);
    const cJSON *net;
    cJSON_ArrayForEach(net, root) {
        const char *name = str_at(net, "Name");
        if (!name)
            continue;
        /* Compose's key for it ("backend" of "lab_backend"), with its
         * project: a key alone says nothing of where it belongs. */
        const cJSON *labels = cJSON_GetObjectItemCaseSensitive(net, "Labels");
        const char *project = str_at(labels, "com.docker.compose.project");
        const char *key = str_at(labels, "com.docker.compose.network");
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
        if (registry_put_network(r, name, project && key ? project : NULL,
                                 project && key ? key : NULL, subnets, n) < 0) {
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

bool docker_answer_failed(long status, const char *body, size_t len, const char *error,
                          char *out, size_t outlen)
{
    if (error) {
        snprintf(out, outlen, "%s", error);
        return true;
    }
    if (status == 200)
        return false;
    char text[300];
    docker_error_text(body, len, text, sizeof text);
    snprintf(out, outlen, "HTTP %ld: %s", status, text);
    return true;
}
