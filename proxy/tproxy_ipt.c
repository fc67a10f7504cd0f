#include "berth/tproxy_ipt.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Chains visited per walk: loops and huge rulesets end. */
#define WALK_BUDGET 1024

static bool streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* The next word of a rule line into buf (quotes of --comment kept whole);
 * false at the end of the line. */
static bool ipt_word(const char **p, char *buf, size_t len)
{
    const char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s || *s == '\n')
        return false;
    size_t n = 0;
    bool quoted = false;
    for (; *s && *s != '\n' && (quoted || (*s != ' ' && *s != '\t')); s++) {
        if (*s == '\\' && quoted && s[1] && s[1] != '\n')
            s++;
        else if (*s == '"') {
            quoted = !quoted;
            continue;
        }
        if (n + 1 < len)
            buf[n++] = *s;
    }
    buf[n] = '\0';
    *p = s;
    return true;
}

struct ipt_walk {
    const char *mangle; /* the *mangle section's first line */
    struct tproxy_marks *out;
    unsigned budget;
};

static unsigned ipt_chain(struct ipt_walk *w, const char *chain, unsigned covers,
                          bool sock, int depth);

/* Walks one rule (p: after "-A CHAIN"); returns the bits it ends before
 * any marking of a later rule (see tproxy_marks.shadow). */
static unsigned ipt_rule(struct ipt_walk *w, const char *chain, const char *line,
                         const char *p, unsigned covers, bool sock, int depth)
{
    char word[128], arg[128];
    bool neg = false, plain = true;
    while (ipt_word(&p, word, sizeof word)) {
        if (streq(word, "!")) {
            neg = true;
            continue;
        }
        if ((streq(word, "-p") || streq(word, "--protocol")) &&
            ipt_word(&p, arg, sizeof arg)) {
            unsigned bits = streq(arg, "tcp") || streq(arg, "6")    ? TPROXY_TCP
                            : streq(arg, "udp") || streq(arg, "17") ? TPROXY_UDP
                            : streq(arg, "all") || streq(arg, "0")  ? TPROXY_ALL
                                                                    : 0;
            covers &= neg ? ~bits : bits;
        } else if (streq(word, "-m") && ipt_word(&p, arg, sizeof arg)) {
            /* with or without --transparent: berth's socket matches */
            sock = sock || streq(arg, "socket");
            plain = plain && (streq(arg, "conntrack") || streq(arg, "state") ||
                              streq(arg, "mark") || streq(arg, "comment"));
        } else if ((streq(word, "--ctstate") || streq(word, "--state")) &&
                   ipt_word(&p, arg, sizeof arg)) {
            if ((strstr(arg, "ESTABLISHED") != NULL) == neg)
                return 0; /* a reply is established */
        } else if ((streq(word, "-i") || streq(word, "--in-interface") ||
                    streq(word, "--mark") || streq(word, "--comment")) &&
                   ipt_word(&p, arg, sizeof arg)) {
            /* plain matches: the reply may pass them */
        } else if ((streq(word, "-j") || streq(word, "-g")) &&
                   ipt_word(&p, arg, sizeof arg)) {
            if (!covers)
                return 0;
            if (streq(arg, "ACCEPT") || streq(arg, "DROP") || streq(arg, "REJECT")) {
                if (!plain || sock)
                    return 0;
                char text[128];
                const char *nl = strchr(line, '\n');
                snprintf(text, sizeof text, "%.*s",
                         (int)(nl ? nl - line : (ptrdiff_t)strlen(line)), line);
                tproxy_shadow_add(w->out, covers, text,
                                  arg[0] == 'A'   ? "accepts"
                                  : arg[0] == 'D' ? "drops"
                                                  : "rejects",
                                  chain);
                return covers;
            }
            if (!streq(arg, "MARK")) {
                unsigned ended = ipt_chain(w, arg, covers, sock, depth + 1);
                return plain ? ended : 0;
            }
            while (sock && ipt_word(&p, word, sizeof word)) {
                /* --set-xmark v/m is (mark & ~m) ^ v; --or-mark and
                 * --xor-mark v give v too, --and-mark 0, from mark 0. */
                if (ipt_word(&p, arg, sizeof arg) &&
                    (streq(word, "--set-xmark") || streq(word, "--set-mark") ||
                     streq(word, "--or-mark") || streq(word, "--xor-mark"))) {
                    char *end;
                    unsigned long v = strtoul(arg, &end, 0);
                    if (end != arg && (*end == '\0' || *end == '/') &&
                        v <= 0xffffffffUL)
                        tproxy_marks_add(w->out, (uint32_t)v, covers);
                }
            }
            return 0;
        } else {
            plain = false; /* a match (or an option) that may spare a reply */
        }
        neg = false;
    }
    return 0;
}

/* Walks chain for the packets in covers; returns the bits it ends. */
static unsigned ipt_chain(struct ipt_walk *w, const char *chain, unsigned covers,
                          bool sock, int depth)
{
    if (depth > TPROXY_WALK_DEPTH || w->budget == 0 || !covers)
        return 0;
    w->budget--;
    size_t clen = strlen(chain);
    unsigned live = covers;
    for (const char *l = w->mangle; live && l && *l && strncmp(l, "COMMIT", 6) != 0;) {
        if (strncmp(l, "-A ", 3) == 0 && strncmp(l + 3, chain, clen) == 0 &&
            l[3 + clen] == ' ')
            live &= ~ipt_rule(w, chain, l, l + 4 + clen, live, sock, depth);
        l = strchr(l, '\n');
        l = l ? l + 1 : NULL;
    }
    return covers & ~live;
}

void tproxy_marks_iptables(const char *save, unsigned family, struct tproxy_marks *out)
{
    const char *m = save;
    while (m && strncmp(m, "*mangle\n", 8) != 0) {
        m = strchr(m, '\n');
        m = m ? m + 1 : NULL;
    }
    struct ipt_walk w = {.mangle = m, .out = out, .budget = WALK_BUDGET};
    if (m)
        ipt_chain(&w, "PREROUTING", family & TPROXY_ALL, false, 0);
}
