#include "berth/status.h"

#include <cjson/cJSON.h>
#include <event2/http.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "berth/berth.h"
#include "berth/clock.h"
#include "berth/docker.h"
#include "berth/log.h"
#include "berth/metrics.h"
#include "berth/registry.h"
#include "berth/relay.h"
#include "berth/spec.h"

/* Replicas shown per name target: relay_resolve tries at most 16 per
 * connection, so these are all a client can reach right now. */
#define STATUS_REPLICAS 16

struct status {
    struct berth *b;
    const struct docker *docker;
    uint64_t started_ms;
};

struct status *status_new(struct berth *b, const struct docker *docker)
{
    struct status *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->b = b;
    s->docker = docker;
    s->started_ms = clock_ms();
    return s;
}

void status_free(struct status *s) { free(s); }

static const char *origin_name(enum mapping_origin o)
{
    return o == MAPPING_LABEL ? "label" : o == MAPPING_CONFIG ? "config" : "cli";
}

/* The target as the spec wrote it: "10.0.0.2:80", "web:80" (a label's
 * port: the container's short id). */
static void target_text(const struct mapping *m, char *out, size_t len)
{
    if (m->target_name[0])
        snprintf(out, len, "%s:%u", m->target_name, (unsigned)m->target_port);
    else
        addr_format(&m->target, out, len);
}

/* What m forwards to now: [{address, passed_over}], and for a name that
 * finds nothing, relay's words for why ("unresolved"). */
static bool add_resolution(struct relay_ctx *ctx, const struct mapping *m, cJSON *obj)
{
    cJSON *list = cJSON_AddArrayToObject(obj, "resolves_to");
    if (!list)
        return false;
    struct addr found[STATUS_REPLICAS];
    size_t n = 1;
    if (m->target_name[0]) {
        unsigned rr = 0; /* the registry's order, not a client's turn */
        n = relay_resolve(ctx, m, &rr, found, STATUS_REPLICAS);
    } else {
        found[0] = m->target;
    }
    for (size_t i = 0; i < n; i++) {
        char a[ADDR_STRLEN];
        cJSON *r = cJSON_CreateObject();
        if (!r || !cJSON_AddItemToArray(list, r) ||
            !cJSON_AddStringToObject(r, "address",
                                     addr_format(&found[i], a, sizeof a)) ||
            !cJSON_AddBoolToObject(r, "passed_over",
                                   m->target_name[0] && m->proto != PROTO_UDP &&
                                       relay_passed_over(ctx, &found[i])))
            return false;
    }
    if (n == 0) {
        char why[REG_WHY_MAX + 200];
        relay_unresolved(ctx, m, why, sizeof why);
        return cJSON_AddStringToObject(obj, "unresolved", why) != NULL;
    }
    return true;
}

static cJSON *mapping_json(struct relay_ctx *ctx, const struct berth_port *p)
{
    const struct mapping *m = berth_port_mapping(p);
    struct addr bound;
    char listen[ADDR_STRLEN], target[MAPPING_NAME_MAX + 8];
    if (berth_port_addr(p, &bound) < 0)
        bound = m->listen;
    target_text(m, target, sizeof target);
    size_t active = berth_port_active(p);
    cJSON *o = cJSON_CreateObject();
    if (!o ||
        !cJSON_AddStringToObject(o, "listen",
                                 addr_format(&bound, listen, sizeof listen)) ||
        !cJSON_AddStringToObject(o, "proto", proto_name(m->proto)) ||
        !cJSON_AddStringToObject(o, "target", target) ||
        !cJSON_AddStringToObject(o, "source", origin_name(m->origin)) ||
        (m->origin == MAPPING_LABEL &&
         !cJSON_AddStringToObject(o, "container", m->owner ? m->owner : "")) ||
        !cJSON_AddStringToObject(o, "label", m->label) || !add_resolution(ctx, m, o) ||
        !cJSON_AddNumberToObject(o, m->proto != PROTO_UDP ? "sessions" : "flows",
                                 (double)active) ||
        !cJSON_AddBoolToObject(o, "transparent", m->transparent) ||
        !cJSON_AddStringToObject(o, "proxy_protocol",
                                 proxy_proto_name(m->proxy_proto))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The engine as berth follows it: the client's phase, the registry's
 * view (synced once, stale) and, while it cannot be followed, why, in
 * docker_fault's words (the text relay gives clients). */
static cJSON *docker_json(const struct status *s, const struct registry *reg)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddBoolToObject(o, "followed", s->docker != NULL))
        goto fail;
    if (!s->docker)
        return o;
    char ep[600];
    docker_describe(s->docker, ep, sizeof ep);
    const char *why = reg ? registry_engine_why(reg) : "";
    if (!cJSON_AddStringToObject(o, "endpoint", ep) ||
        !cJSON_AddStringToObject(o, "phase", docker_phase_name(s->docker)) ||
        !cJSON_AddBoolToObject(o, "synced", docker_synced(s->docker)) ||
        !cJSON_AddBoolToObject(o, "known", reg && registry_known(reg)) ||
        !cJSON_AddBoolToObject(o, "stale", reg && registry_stale(reg)) ||
        !cJSON_AddNumberToObject(o, "containers",
                                 reg ? (double)registry_count(reg) : 0) ||
        !(why[0] ? cJSON_AddStringToObject(o, "error", why)
                 : cJSON_AddNullToObject(o, "error")))
        goto fail;
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

static cJSON *status_doc(struct status *s)
{
    struct relay_ctx *ctx = berth_ctx(s->b);
    cJSON *doc = cJSON_CreateObject(), *maps = NULL, *d = NULL;
    if (!doc || !cJSON_AddStringToObject(doc, "version", BERTH_VERSION) ||
        !cJSON_AddNumberToObject(doc, "uptime_seconds",
                                 (double)((clock_ms() - s->started_ms) / 1000)) ||
        !cJSON_AddNumberToObject(doc, "tcp_sessions",
                                 (double)berth_tcp_sessions(s->b)) ||
        !cJSON_AddNumberToObject(doc, "udp_flows", (double)berth_udp_flows(s->b)) ||
        !(d = docker_json(s, ctx->reg)) || !cJSON_AddItemToObject(doc, "docker", d) ||
        !(maps = cJSON_AddArrayToObject(doc, "mappings"))) {
        if (!cJSON_IsObject(cJSON_GetObjectItem(doc, "docker")))
            cJSON_Delete(d);
        cJSON_Delete(doc);
        return NULL;
    }
    for (const struct berth_port *p = berth_port_next(s->b, NULL); p;
         p = berth_port_next(s->b, p)) {
        cJSON *m = mapping_json(ctx, p);
        if (!m || !cJSON_AddItemToArray(maps, m)) {
            cJSON_Delete(m);
            cJSON_Delete(doc);
            return NULL;
        }
    }
    return doc;
}

int status_json(struct status *s, struct evbuffer *out)
{
    cJSON *doc = status_doc(s);
    char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    int r = text && evbuffer_add(out, text, strlen(text)) == 0 ? 0 : -1;
    free(text);
    return r;
}

/* ---- the page ---- */

/* Every string from berth's state goes through here: container names and
 * the engine's error are anyone's text. */
static void html_put(struct evbuffer *out, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = *s == '&'    ? "&amp;"
                          : *s == '<'  ? "&lt;"
                          : *s == '>'  ? "&gt;"
                          : *s == '"'  ? "&quot;"
                          : *s == '\'' ? "&#39;"
                                       : NULL;
        if (!rep)
            continue;
        evbuffer_add(out, run, (size_t)(s - run));
        evbuffer_add(out, rep, strlen(rep));
        run = s + 1;
    }
    evbuffer_add(out, run, (size_t)(s - run));
}

static const char *str_of(const cJSON *o, const char *key)
{
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
    return v ? v : "";
}

static double num_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* "2d 3h 4m 5s", leading zero units left out; the script's dur() too. */
static void put_duration(struct evbuffer *out, uint64_t s)
{
    uint64_t unit[4] = {s / 86400, s / 3600 % 24, s / 60 % 60, s % 60};
    static const char name[4] = {'d', 'h', 'm', 's'};
    bool any = false;
    for (int i = 0; i < 4; i++)
        if (unit[i] || any || i == 3) {
            evbuffer_add_printf(out, "%s%" PRIu64 "%c", any ? " " : "", unit[i],
                                name[i]);
            any = true;
        }
}

static void put_count(struct evbuffer *out, double n, const char *word)
{
    evbuffer_add_printf(out, "%.0f %s%s", n, word, n == 1 ? "" : "s");
}

/* The lines above the table; the script's summary() and dockerLine(). */
static void put_summary(struct evbuffer *out, const cJSON *doc)
{
    evbuffer_add_printf(out, "<p id=\"summary\">version ");
    html_put(out, str_of(doc, "version"));
    evbuffer_add_printf(out, " · up ");
    put_duration(out, (uint64_t)num_of(doc, "uptime_seconds"));
    evbuffer_add_printf(out, " · ");
    put_count(out, num_of(doc, "tcp_sessions"), "TCP session");
    evbuffer_add_printf(out, " · ");
    put_count(out, num_of(doc, "udp_flows"), "UDP flow");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(doc, "docker");
    bool bad = cJSON_IsTrue(cJSON_GetObjectItem(d, "stale")) || str_of(d, "error")[0];
    evbuffer_add_printf(out, "</p>\n<p id=\"docker\"%s>Docker: ",
                        bad ? " class=\"bad\"" : "");
    if (!cJSON_IsTrue(cJSON_GetObjectItem(d, "followed"))) {
        evbuffer_add_printf(out,
                            "not followed (no name targets, labels or DNS)</p>\n");
        return;
    }
    html_put(out, str_of(d, "endpoint"));
    evbuffer_add_printf(out, ": ");
    html_put(out, str_of(d, "phase"));
    evbuffer_add_printf(out, ", ");
    put_count(out, num_of(d, "containers"), "container");
    if (cJSON_IsTrue(cJSON_GetObjectItem(d, "stale")))
        evbuffer_add_printf(out, ", stale: names do not resolve");
    if (str_of(d, "error")[0]) {
        evbuffer_add_printf(out, "; cannot follow the engine: ");
        html_put(out, str_of(d, "error"));
    }
    evbuffer_add_printf(out, "</p>\n");
}

/* One table row; the script's cells() makes the same. */
static void put_row(struct evbuffer *out, const cJSON *m)
{
    evbuffer_add_printf(out, "<tr><td class=\"listen\">");
    html_put(out, str_of(m, "listen"));
    evbuffer_add_printf(out, "</td><td>");
    html_put(out, str_of(m, "proto"));
    evbuffer_add_printf(out, "</td><td>");
    html_put(out, str_of(m, "target"));
    evbuffer_add_printf(out, "</td><td>");
    html_put(out, str_of(m, "source"));
    if (cJSON_GetObjectItem(m, "container")) {
        evbuffer_add_printf(out, ": ");
        html_put(out, str_of(m, "container"));
    }
    evbuffer_add_printf(out, "</td><td>");
    const cJSON *r, *list = cJSON_GetObjectItem(m, "resolves_to");
    bool first = true;
    cJSON_ArrayForEach(r, list) {
        evbuffer_add_printf(out, "%s", first ? "" : ", ");
        html_put(out, str_of(r, "address"));
        if (cJSON_IsTrue(cJSON_GetObjectItem(r, "passed_over")))
            evbuffer_add_printf(out, " (passed over)");
        first = false;
    }
    if (first)
        html_put(out, str_of(m, "unresolved"));
    evbuffer_add_printf(out, "</td><td>");
    bool tcp = strcmp(str_of(m, "proto"), "udp") != 0; /* or sctp */
    put_count(out, num_of(m, tcp ? "sessions" : "flows"), tcp ? "session" : "flow");
    evbuffer_add_printf(out, "</td><td>");
    bool t = cJSON_IsTrue(cJSON_GetObjectItem(m, "transparent"));
    const char *pp = str_of(m, "proxy_protocol");
    bool p = pp[0] && strcmp(pp, "off") != 0;
    evbuffer_add_printf(out, "%s%s", t ? "transparent" : "", t && p ? ", " : "");
    if (p) {
        evbuffer_add_printf(out, "proxy-protocol ");
        html_put(out, pp);
    }
    evbuffer_add_printf(out, "%s</td></tr>\n", t || p ? "" : "—");
}

/* The script: /status every 2 s, the same text as put_summary/put_row,
 * built with textContent (no markup from data); on failure the last
 * table stays, marked as old. */
static const char page_script[] =
    "<script>\n"
    "(function () {\n"
    "  'use strict';\n"
    "  function $(id) { return document.getElementById(id); }\n"
    "  function count(n, w) { return n + ' ' + w + (n === 1 ? '' : 's'); }\n"
    "  function dur(s) {\n"
    "    var u = [Math.floor(s / 86400), Math.floor(s / 3600) % 24,\n"
    "             Math.floor(s / 60) % 60, s % 60], n = 'dhms', out = [];\n"
    "    for (var i = 0; i < 4; i++)\n"
    "      if (u[i] || out.length || i === 3) out.push(u[i] + n[i]);\n"
    "    return out.join(' ');\n"
    "  }\n"
    "  function summary(st) {\n"
    "    return 'version ' + st.version + ' · up ' + dur(st.uptime_seconds) +\n"
    "      ' · ' + count(st.tcp_sessions, 'TCP session') + ' · ' +\n"
    "      count(st.udp_flows, 'UDP flow');\n"
    "  }\n"
    "  function dockerLine(d) {\n"
    "    if (!d.followed) return 'Docker: not followed (no name targets, labels or DNS)';\n"
    "    var t = 'Docker: ' + d.endpoint + ': ' + d.phase + ', ' +\n"
    "      count(d.containers, 'container');\n"
    "    if (d.stale) t += ', stale: names do not resolve';\n"
    "    if (d.error) t += '; cannot follow the engine: ' + d.error;\n"
    "    return t;\n"
    "  }\n"
    "  function cells(m) {\n"
    "    var res = m.resolves_to.map(function (r) {\n"
    "      return r.address + (r.passed_over ? ' (passed over)' : '');\n"
    "    }).join(', ') || m.unresolved || '';\n"
    "    var sw = [];\n"
    "    if (m.transparent) sw.push('transparent');\n"
    "    if (m.proxy_protocol && m.proxy_protocol !== 'off')\n"
    "      sw.push('proxy-protocol ' + m.proxy_protocol);\n"
    "    var tcp = m.proto !== 'udp';\n"
    "    return [m.listen, m.proto, m.target,\n"
    "      m.source + ('container' in m ? ': ' + m.container : ''), res,\n"
    "      count(tcp ? m.sessions : m.flows, tcp ? 'session' : 'flow'),\n"
    "      sw.join(', ') || '\\u2014'];\n"
    "  }\n"
    "  function render(st) {\n"
    "    $('summary').textContent = summary(st);\n"
    "    $('docker').textContent = dockerLine(st.docker);\n"
    "    $('docker').className = st.docker.stale || st.docker.error ? 'bad' : '';\n"
    "    var body = document.createElement('tbody');\n"
    "    body.id = 'maps';\n"
    "    body.setAttribute('data-rendered', 'script');\n"
    "    st.mappings.forEach(function (m) {\n"
    "      var tr = body.insertRow();\n"
    "      cells(m).forEach(function (c, i) {\n"
    "        var td = tr.insertCell();\n"
    "        td.textContent = c;\n"
    "        if (i === 0) td.className = 'listen';\n"
    "      });\n"
    "    });\n"
    "    $('maps').replaceWith(body);\n"
    "    $('note').textContent = 'live: updated ' + new Date().toLocaleTimeString();\n"
    "    $('note').className = '';\n"
    "  }\n"
    "  function tick() {\n"
    "    fetch('/status', {cache: 'no-store'}).then(function (r) {\n"
    "      if (!r.ok) throw new Error('HTTP ' + r.status);\n"
    "      return r.json();\n"
    "    }).then(render).catch(function (e) {\n"
    "      $('note').textContent = 'berth is not answering (' + e.message +\n"
    "        '): the table above is the last state seen';\n"
    "      $('note').className = 'bad';\n"
    "    }).then(function () { setTimeout(tick, 2000); });\n"
    "  }\n"
    "  tick();\n"
    "})();\n"
    "</script>\n";

static const char page_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>berth</title>\n<style>\n"
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}\n"
    "h1{font-size:1.5em;margin:0 0 .3em}\n"
    "table{border-collapse:collapse;width:100%}\n"
    "th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #ddd;"
    "vertical-align:top}\n"
    "th{background:#f2f2f2}\n"
    "td.listen{font-family:ui-monospace,monospace;white-space:nowrap}\n"
    "tbody tr:hover{background:#fafafa}\n"
    ".bad{color:#b00}\n#note{color:#777;font-size:.9em}\n"
    "</style></head>\n<body>\n<h1>berth</h1>\n";

int status_page(struct status *s, struct evbuffer *out)
{
    cJSON *doc = status_doc(s);
    if (!doc)
        return -1;
    evbuffer_add(out, page_head, sizeof page_head - 1);
    put_summary(out, doc);
    evbuffer_add_printf(
        out, "<table><thead><tr><th>listen</th><th>proto</th><th>target</th>"
             "<th>source</th><th>resolves to</th><th>sessions / flows</th>"
             "<th>switches</th></tr></thead>\n<tbody id=\"maps\" "
             "data-rendered=\"server\">\n");
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(doc, "mappings"))
        put_row(out, m);
    evbuffer_add_printf(out, "</tbody></table>\n<p id=\"note\">rendered by berth; "
                             "refreshed every 2 s while scripts run</p>\n");
    evbuffer_add(out, page_script, sizeof page_script - 1);
    evbuffer_add_printf(out, "</body></html>\n");
    cJSON_Delete(doc);
    return 0;
}

/* ---- HTTP ---- */

static void serve(struct evhttp_request *req, struct status *s, const char *type,
                  int (*render)(struct status *, struct evbuffer *))
{
    struct evbuffer *body = evbuffer_new();
    if (!body || render(s, body) < 0) {
        log_warn("admin: %s: out of memory", evhttp_request_get_uri(req));
        if (body) /* evbuffer_free does not take NULL */
            evbuffer_free(body);
        metrics_http_reply(req, HTTP_INTERNAL, "out of memory", NULL, NULL);
        return;
    }
    /* A snapshot: a cache must not hand out an old one. */
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control",
                      "no-store");
    metrics_http_reply(req, HTTP_OK, "OK", type, body);
    evbuffer_free(body);
}

void status_serve_json(struct evhttp_request *req, void *arg)
{
    serve(req, arg, "application/json", status_json);
}

void status_serve_page(struct evhttp_request *req, void *arg)
{
    serve(req, arg, "text/html; charset=utf-8", status_page);
}
