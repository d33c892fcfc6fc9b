/* proxy_config.c: the configuration file, YAML -> the proxy's model (proxy_config.h).
 *
 * libfyaml parses the file into a document tree (syntax errors come back with their line and
 * column through its diagnostics, collected rather than printed); this file walks the tree
 * against the schema, one function per kind of object, and stops at the first fault with its
 * position. Every mapping is checked key by key against the keys its object has, so a typo
 * ("tll:") is an error naming the key and the ones expected, never a setting silently left at its
 * default. libfyaml gives a position to scalar tokens only, so a mapping or a sequence is placed
 * at its first scalar, or at the key that named it when it is empty.
 *
 * Anchors and aliases are refused: the schema has no use for them, and expanding them is how a
 * small file becomes a huge tree. Secrets never appear in the file: a key that would hold one
 * (token, password, api_key, ...) is an error saying to name an environment variable instead
 * (token_env), and token_env itself must look like a variable's name, not like a token.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfyaml.h>

#include "proxy_config.h"

#define ROUTES_MAX   4096
#define NAME_MAX_LEN 64

typedef struct pos {
    int line, col; /* 1-based; 0: unknown */
} pos;

typedef struct loader {
    const char *file;
    char *err;
    size_t cap;
    const proxy_load_options *o;
    int failed;
    char what[160]; /* the object being read, for messages: route "tasks" */
} loader;

/* ---- positions and errors ----------------------------------------------------------------- */

static pos node_pos(struct fy_node *n, pos dflt, int depth)
{
    if (n == NULL || depth > 8)
        return dflt;
    void *it = NULL;
    switch (fy_node_get_type(n)) {
    case FYNT_SCALAR: {
        struct fy_token *t = fy_node_get_scalar_token(n);
        const struct fy_mark *m = t ? fy_token_start_mark(t) : NULL;
        return m ? (pos){m->line + 1, m->column + 1} : dflt;
    }
    case FYNT_MAPPING: {
        struct fy_node_pair *p = fy_node_mapping_iterate(n, &it);
        return p ? node_pos(fy_node_pair_key(p), dflt, depth + 1) : dflt;
    }
    case FYNT_SEQUENCE:
        return node_pos(fy_node_sequence_iterate(n, &it), dflt, depth + 1);
    }
    return dflt;
}

static pos at(struct fy_node *n, pos dflt)
{
    return node_pos(n, dflt, 0);
}

/* Records the first fault: "FILE:LINE:COL: WHAT: message". Returns -1. */
__attribute__((format(printf, 3, 4))) static int fail(loader *L, pos p, const char *fmt, ...)
{
    if (L->failed++)
        return -1;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(L->err, L->cap, "%s:%d:%d: %s%s%s", L->file, p.line, p.col, L->what,
             L->what[0] ? ": " : "", msg);
    return -1;
}

/* ---- scalars ------------------------------------------------------------------------------ */

/* n's text as a NUL-terminated copy in buf (cap bytes). Returns 0, or -1 (recorded) when n is not
 * a scalar, is an alias, holds a NUL byte or does not fit. */
static int text(loader *L, struct fy_node *n, pos p, const char *key, char *buf, size_t cap)
{
    if (n == NULL)
        return fail(L, p, "%s has no value", key);
    p = at(n, p);
    if (fy_node_is_alias(n))
        return fail(L, p, "%s: anchors and aliases are not supported", key);
    if (fy_node_get_type(n) != FYNT_SCALAR)
        return fail(L, p, "%s must be a single value, not a %s", key,
                    fy_node_get_type(n) == FYNT_MAPPING ? "mapping" : "list");
    size_t len;
    const char *s = fy_node_get_scalar(n, &len);
    if (s == NULL || memchr(s, '\0', len) != NULL)
        return fail(L, p, "%s holds a NUL byte", key);
    if (len >= cap)
        return fail(L, p, "%s is longer than %zu bytes", key, cap - 1);
    memcpy(buf, s, len);
    buf[len] = '\0';
    return 0;
}

static char *text_dup(loader *L, struct fy_node *n, pos p, const char *key)
{
    char buf[1024];
    if (text(L, n, p, key, buf, sizeof buf) != 0)
        return NULL;
    char *d = strdup(buf);
    if (d == NULL)
        fail(L, p, "out of memory");
    return d;
}

static int expect(loader *L, struct fy_node *n, pos p, const char *key, enum fy_node_type type)
{
    if (n == NULL)
        return fail(L, p, "%s has no value", key);
    if (fy_node_is_alias(n))
        return fail(L, at(n, p), "%s: anchors and aliases are not supported", key);
    if (fy_node_get_type(n) != type)
        return fail(L, at(n, p), "%s must be a %s", key,
                    type == FYNT_MAPPING ? "mapping (key: value lines)" : "list");
    return 0;
}

/* Seconds as "30", "2.5", "250ms", "30s", "5m", "1h" or "1d", at most 10 years, into ms. */
static int duration(loader *L, struct fy_node *n, pos p, const char *key, uint64_t *ms)
{
    char buf[64], *end;
    if (text(L, n, p, key, buf, sizeof buf) != 0)
        return -1;
    errno = 0;
    double d = strtod(buf, &end);
    double unit = 1000;
    if (strcmp(end, "ms") == 0)
        unit = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        unit = 1000;
    else if (strcmp(end, "m") == 0)
        unit = 60e3;
    else if (strcmp(end, "h") == 0)
        unit = 3600e3;
    else if (strcmp(end, "d") == 0)
        unit = 86400e3;
    else
        unit = -1;
    d *= unit;
    if (end == buf || !isdigit((unsigned char)buf[0]) || unit < 0 || errno != 0 || !(d >= 0) ||
        d > 10.0 * 365 * 86400e3)
        return fail(L, at(n, p),
                    "%s: \"%s\" is not a duration; expected seconds (30, 2.5) or a "
                    "number with ms, s, m, h or d (250ms, 5m), at most 10 years",
                    key, buf);
    *ms = (uint64_t)ceil(d);
    return 0;
}

static int whole(loader *L, struct fy_node *n, pos p, const char *key, unsigned long lo,
                 unsigned long hi, unsigned long *out)
{
    char buf[32], *end;
    if (text(L, n, p, key, buf, sizeof buf) != 0)
        return -1;
    errno = 0;
    unsigned long v = strtoul(buf, &end, 10);
    if (!isdigit((unsigned char)buf[0]) || *end != '\0' || errno != 0 || v < lo || v > hi)
        return fail(L, at(n, p), "%s: \"%s\": expected a whole number from %lu to %lu", key, buf,
                    lo, hi);
    *out = v;
    return 0;
}

static int boolean(loader *L, struct fy_node *n, pos p, const char *key, int *out)
{
    char buf[16];
    if (text(L, n, p, key, buf, sizeof buf) != 0)
        return -1;
    if (strcmp(buf, "true") == 0 || strcmp(buf, "false") == 0)
        return *out = buf[0] == 't', 0;
    return fail(L, at(n, p), "%s: \"%s\": expected true or false", key, buf);
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_-.", *s))
            return 0;
    return 1;
}

static char *name_of(loader *L, struct fy_node *n, pos p, const char *key)
{
    char *s = text_dup(L, n, p, key);
    if (s != NULL && !valid_name(s)) {
        fail(L, at(n, p), "%s: \"%s\": expected 1 to %d letters, digits, '_', '-' or '.'", key, s,
             NAME_MAX_LEN);
        free(s);
        return NULL;
    }
    return s;
}

/* ---- keys --------------------------------------------------------------------------------- */

/* Keys that would hold a secret in the file. */
static const char *const secret_keys[] = {
    "token",        "password",     "passwd",        "secret",        "api_key", "apikey",
    "access_token", "bearer_token", "authorization", "client_secret", NULL};

static int is_secret_key(const char *k)
{
    for (size_t i = 0; secret_keys[i]; i++)
        if (strcasecmp(k, secret_keys[i]) == 0)
            return 1;
    return 0;
}

/* The index of key k in keys (a NULL-terminated list), or -1 (recorded) naming what was
 * expected. */
static int key_index(loader *L, struct fy_node_pair *pr, pos p, const char *const *keys, char *k,
                     size_t cap, pos *kp)
{
    struct fy_node *kn = fy_node_pair_key(pr);
    *kp = at(kn, p);
    if (text(L, kn, p, "a key", k, cap) != 0)
        return -1;
    for (int i = 0; keys[i]; i++)
        if (strcmp(k, keys[i]) == 0)
            return i;
    if (is_secret_key(k))
        return fail(L, *kp,
                    "\"%s\": secrets are not written in the file; put it in an environment "
                    "variable and name that with token_env (token_env: OPENAI_KEY)",
                    k);
    char list[300];
    size_t o = 0;
    for (int i = 0; keys[i] && o < sizeof list; i++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", keys[i]);
    return fail(L, *kp, "unknown key \"%s\"; expected one of: %s", k, list);
}

/* Mapping n's values by key (keys: NULL-terminated, at most 16): by[i] and its key's position
 * kps[i] for the keys present, NULL for the others. An unknown key, or a key without a value, is
 * an error. */
static int fields(loader *L, struct fy_node *n, pos p, const char *const *keys, struct fy_node **by,
                  pos *kps)
{
    void *it = NULL;
    struct fy_node_pair *pr;
    while ((pr = fy_node_mapping_iterate(n, &it)) != NULL) {
        char k[64];
        pos kp;
        int i = key_index(L, pr, p, keys, k, sizeof k, &kp);
        if (i < 0)
            return -1;
        by[i] = fy_node_pair_value(pr);
        kps[i] = kp;
        if (by[i] == NULL)
            return fail(L, kp, "%s has no value", k);
    }
    return 0;
}

/* The text of mapping n's "name" key, for messages before the name is read, or NULL. */
static const char *peek_name(struct fy_node *n, char *buf, size_t cap)
{
    if (n == NULL || fy_node_is_alias(n) || fy_node_get_type(n) != FYNT_MAPPING)
        return NULL;
    struct fy_node *v = fy_node_mapping_lookup_by_string(n, "name", 4);
    size_t len;
    const char *s = v && !fy_node_is_alias(v) && fy_node_get_type(v) == FYNT_SCALAR
                        ? fy_node_get_scalar(v, &len)
                        : NULL;
    if (s == NULL || len >= cap || memchr(s, '\0', len) != NULL)
        return NULL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return buf;
}

/* Names the object being read in L->what: kind "name" when it has one, else list[i]. */
static void object_name(loader *L, struct fy_node *n, const char *kind, const char *list, size_t i)
{
    char buf[NAME_MAX_LEN + 1];
    if (peek_name(n, buf, sizeof buf) != NULL)
        snprintf(L->what, sizeof L->what, "%s \"%s\"", kind, buf);
    else
        snprintf(L->what, sizeof L->what, "%s[%zu]", list, i);
}

/* ---- statuses and methods ----------------------------------------------------------------- */

static void status_add(proxy_statuses *s, int lo, int hi)
{
    for (int st = lo; st <= hi; st++) {
        unsigned i = (unsigned)(st - 100);
        s->bits[i / 64] |= 1ull << (i % 64);
    }
}

static int statuses(loader *L, struct fy_node *n, pos p, const char *key, proxy_statuses *out)
{
    if (expect(L, n, p, key, FYNT_SEQUENCE) != 0)
        return -1;
    memset(out, 0, sizeof *out);
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(n, &it)) != NULL) {
        char buf[32];
        if (text(L, item, at(n, p), key, buf, sizeof buf) != 0)
            return -1;
        int lo, hi, used = 0;
        char x[4];
        if (strlen(buf) == 3 && buf[0] >= '1' && buf[0] <= '5' && strcmp(buf + 1, "xx") == 0)
            lo = (buf[0] - '0') * 100, hi = lo + 99, used = 1;
        else if (sscanf(buf, "%3d-%3d%n", &lo, &hi, &used) == 2 && buf[used] == '\0')
            used = 1;
        else if (sscanf(buf, "%3d%n%1s", &lo, &used, x) == 1 && buf[used] == '\0')
            hi = lo, used = 1;
        else
            used = 0;
        if (!used || lo < 100 || hi > 599 || lo > hi)
            return fail(L, at(item, p),
                        "%s: \"%s\": expected statuses from 100 to 599: 404, 500-504 or 5xx", key,
                        buf);
        status_add(out, lo, hi);
    }
    return 0;
}

static int methods(loader *L, struct fy_node *n, pos p, unsigned *out)
{
    if (expect(L, n, p, "methods", FYNT_SEQUENCE) != 0)
        return -1;
    *out = 0;
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(n, &it)) != NULL) {
        char buf[16];
        if (text(L, item, at(n, p), "methods", buf, sizeof buf) != 0)
            return -1;
        unsigned bit = proxy_method_bit(buf, strlen(buf));
        if (strcmp(buf, "*") == 0)
            bit = PROXY_M_GET | PROXY_M_HEAD | PROXY_M_POST | PROXY_M_PUT | PROXY_M_DELETE |
                  PROXY_M_OPTIONS | PROXY_M_PATCH;
        if (bit == 0)
            return fail(L, at(item, p),
                        "methods: \"%s\": expected GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS "
                        "or *",
                        buf);
        *out |= bit;
    }
    if (*out == 0)
        return fail(L, at(n, p), "methods: the list is empty");
    return 0;
}

/* ---- match -------------------------------------------------------------------------------- */

static int host_ok(char *h)
{
    if (*h == '\0')
        return 0;
    for (char *c = h; *c; c++) {
        *c = (char)tolower((unsigned char)*c);
        if (!isalnum((unsigned char)*c) && !strchr(".-:[]", *c))
            return 0;
    }
    return 1;
}

static int match_rule(loader *L, struct fy_node *n, pos p, unsigned dflt_methods,
                      proxy_match_rule *m)
{
    static const char *const keys[] = {"methods", "path", "host", NULL};
    if (expect(L, n, p, "match", FYNT_MAPPING) != 0)
        return -1;
    m->methods = dflt_methods;
    int have_path = 0;
    void *it = NULL;
    struct fy_node_pair *pr;
    while ((pr = fy_node_mapping_iterate(n, &it)) != NULL) {
        char k[64];
        pos kp;
        struct fy_node *v = fy_node_pair_value(pr);
        switch (key_index(L, pr, p, keys, k, sizeof k, &kp)) {
        case 0:
            if (methods(L, v, kp, &m->methods) != 0)
                return -1;
            break;
        case 1: {
            char buf[1024], why[200];
            if (text(L, v, kp, "path", buf, sizeof buf) != 0)
                return -1;
            if (proxy_pattern_compile(buf, &m->path, why, sizeof why) != 0)
                return fail(L, at(v, kp), "path \"%s\": %s", buf, why);
            have_path = 1;
            break;
        }
        case 2:
            if ((m->host = text_dup(L, v, kp, "host")) == NULL)
                return -1;
            if (!host_ok(m->host))
                return fail(L, at(v, kp),
                            "host \"%s\": expected a host name (api.example.com, "
                            "optionally :PORT)",
                            m->host);
            break;
        default:
            return -1;
        }
    }
    if (!have_path)
        return fail(L, at(n, p), "match has no path; expected path: /tasks/{id} or /energy/*");
    return 0;
}

/* ---- templates ---------------------------------------------------------------------------- */

static int templates(loader *L, struct fy_node *n, pos p, const char *key,
                     const proxy_pattern *path, proxy_template **out, size_t *nout)
{
    if (expect(L, n, p, key, FYNT_SEQUENCE) != 0)
        return -1;
    int count = fy_node_sequence_item_count(n);
    if (count <= 0)
        return 0;
    if ((*out = calloc((size_t)count, sizeof **out)) == NULL)
        return fail(L, p, "out of memory");
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(n, &it)) != NULL) {
        char buf[512], why[200];
        if (text(L, item, at(n, p), key, buf, sizeof buf) != 0)
            return -1;
        if (proxy_template_compile(buf, path, &(*out)[*nout], why, sizeof why) != 0)
            return fail(L, at(item, p), "%s: %s; expected text with {param} from the path (%s)",
                        key, why, path->text ? path->text : "");
        (*nout)++;
    }
    return 0;
}

/* ---- origins ------------------------------------------------------------------------------ */

static int env_name_ok(const char *s)
{
    if (!(isupper((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    for (; *s; s++)
        if (!isupper((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_')
            return 0;
    return 1;
}

static int timeout_ms(loader *L, struct fy_node *v, pos kp, const char *k, unsigned *out)
{
    uint64_t ms;
    if (duration(L, v, kp, k, &ms) != 0)
        return -1;
    if (ms > 3600000)
        return fail(L, at(v, kp), "%s: at most 1 hour", k);
    *out = (unsigned)ms;
    return 0;
}

static int tls(loader *L, struct fy_node *n, pos p, proxy_origin *o)
{
    static const char *const keys[] = {"ca_file", "server_name", "insecure", NULL};
    if (expect(L, n, p, "tls", FYNT_MAPPING) != 0)
        return -1;
    void *it = NULL;
    struct fy_node_pair *pr;
    while ((pr = fy_node_mapping_iterate(n, &it)) != NULL) {
        char k[64];
        pos kp;
        struct fy_node *v = fy_node_pair_value(pr);
        int i = key_index(L, pr, p, keys, k, sizeof k, &kp), rc = -1;
        if (i == 0 && o->opts.ca_file == NULL)
            rc = (o->opts.ca_file = text_dup(L, v, kp, k)) ? 0 : -1;
        else if (i == 1 && o->opts.server_name == NULL)
            rc = (o->opts.server_name = text_dup(L, v, kp, k)) ? 0 : -1;
        else if (i == 2)
            rc = boolean(L, v, kp, k, &o->opts.tls_insecure);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int origin(loader *L, struct fy_node *n, pos p, proxy_config *c)
{
    static const char *const keys[] = {"name",
                                       "url",
                                       "connect_timeout",
                                       "first_byte_timeout",
                                       "total_timeout",
                                       "idle_timeout",
                                       "max_connections",
                                       "max_queue",
                                       "max_idle",
                                       "tls",
                                       "token_env",
                                       "token_header",
                                       "breaker_failures",
                                       NULL};
    proxy_origin *o = &c->origins[c->norigins];
    o->breaker_failures = 5;
    object_name(L, n, "origin", "origins", c->norigins);
    if (expect(L, n, p, L->what, FYNT_MAPPING) != 0)
        return -1;
    c->norigins++;
    o->line = at(n, p).line;
    void *it = NULL;
    struct fy_node_pair *pr;
    while ((pr = fy_node_mapping_iterate(n, &it)) != NULL) {
        char k[64];
        pos kp;
        unsigned long u;
        struct fy_node *v = fy_node_pair_value(pr);
        int i = key_index(L, pr, p, keys, k, sizeof k, &kp), rc = -1;
        switch (i) {
        case 0:
            if ((o->name = name_of(L, v, kp, k)) != NULL) {
                rc = 0;
                snprintf(L->what, sizeof L->what, "origin \"%s\"", o->name);
                for (size_t j = 0; j + 1 < c->norigins; j++)
                    if (strcmp(c->origins[j].name, o->name) == 0)
                        rc = fail(L, kp, "the name is already the origin's on line %d",
                                  c->origins[j].line);
            }
            break;
        case 1:
            rc = (o->url = text_dup(L, v, kp, k)) ? 0 : -1;
            break;
        case 2:
            rc = timeout_ms(L, v, kp, k, &o->opts.connect_timeout_ms);
            break;
        case 3:
            rc = timeout_ms(L, v, kp, k, &o->opts.first_byte_timeout_ms);
            break;
        case 4:
            rc = timeout_ms(L, v, kp, k, &o->opts.total_timeout_ms);
            break;
        case 5:
            rc = timeout_ms(L, v, kp, k, &o->opts.idle_timeout_ms);
            break;
        case 6:
        case 7:
        case 8:
            if ((rc = whole(L, v, kp, k, i == 8 ? 0 : 1, 100000, &u)) == 0)
                *(i == 6   ? &o->opts.max_conns
                  : i == 7 ? &o->opts.max_queue
                           : &o->opts.max_idle) = (unsigned)u;
            break;
        case 9:
            rc = tls(L, v, kp, o);
            break;
        case 10:
            if ((o->token_env = text_dup(L, v, kp, k)) == NULL)
                break;
            if (!env_name_ok(o->token_env))
                rc = fail(L, at(v, kp),
                          "token_env names an environment variable (upper case, digits, '_': "
                          "OPENAI_KEY), never the secret itself");
            else if (getenv(o->token_env) == NULL)
                rc = fail(L, at(v, kp), "token_env: the environment variable %s is not set",
                          o->token_env);
            else
                rc = 0;
            break;
        case 11:
            rc = (o->token_header = text_dup(L, v, kp, k)) ? 0 : -1;
            break;
        case 12:
            if ((rc = whole(L, v, kp, k, 1, 1000000, &u)) == 0)
                o->breaker_failures = (unsigned)u;
            break;
        }
        if (rc != 0)
            return -1;
    }
    if (o->name == NULL)
        return fail(L, at(n, p), "an origin needs a name (name: api)");
    if (o->url == NULL)
        return fail(L, at(n, p), "origin needs a url (url: https://api.example.com)");
    if (o->token_header != NULL && o->token_env == NULL)
        return fail(L, at(n, p), "token_header without token_env");
    if (o->token_env != NULL && o->token_header == NULL &&
        (o->token_header = strdup("Authorization")) == NULL)
        return fail(L, p, "out of memory");
    char why[256];
    if (upstream_origin_new(o->url, &o->opts, why, sizeof why, &o->up) != 0)
        return fail(L, at(n, p), "%s", why);
    return 0;
}

/* ---- routes ------------------------------------------------------------------------------- */

static int strings(loader *L, struct fy_node *n, pos p, const char *key, int lower, char ***out,
                   size_t *nout)
{
    if (expect(L, n, p, key, FYNT_SEQUENCE) != 0)
        return -1;
    int count = fy_node_sequence_item_count(n);
    if (count <= 0)
        return fail(L, at(n, p), "%s: the list is empty", key);
    if ((*out = calloc((size_t)count, sizeof **out)) == NULL)
        return fail(L, p, "out of memory");
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(n, &it)) != NULL) {
        char buf[256], norm[256];
        if (text(L, item, at(n, p), key, buf, sizeof buf) != 0)
            return -1;
        long len = lower ? (long)strlen(buf) : proxy_pct_normalise(buf, strlen(buf), norm, 255);
        if (buf[0] == '\0' || len < 0)
            return fail(L, at(item, p), "%s: an empty or too long name", key);
        if (lower) {
            for (char *c = buf; *c; c++) {
                if (*c <= 0x20 || *c >= 0x7f || *c == ':')
                    return fail(L, at(item, p), "%s: \"%s\" is not a header name", key, buf);
                *c = (char)tolower((unsigned char)*c);
            }
        } else {
            norm[len] = '\0';
        }
        if (((*out)[*nout] = strdup(lower ? buf : norm)) == NULL)
            return fail(L, p, "out of memory");
        (*nout)++;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int query(loader *L, struct fy_node *n, pos p, proxy_key_spec *k)
{
    if (n != NULL && !fy_node_is_alias(n) && fy_node_get_type(n) == FYNT_SCALAR) {
        char buf[16];
        if (text(L, n, p, "query", buf, sizeof buf) != 0)
            return -1;
        if (strcmp(buf, "all") == 0 || strcmp(buf, "none") == 0)
            return k->query = buf[0] == 'a' ? PROXY_QUERY_ALL : PROXY_QUERY_NONE, 0;
        return fail(L, at(n, p), "query: \"%s\": expected all, none, {keep: [..]} or {drop: [..]}",
                    buf);
    }
    static const char *const keys[] = {"keep", "drop", NULL};
    if (expect(L, n, p, "query", FYNT_MAPPING) != 0)
        return -1;
    void *it = NULL;
    struct fy_node_pair *pr;
    while ((pr = fy_node_mapping_iterate(n, &it)) != NULL) {
        char kk[64];
        pos kp;
        int i = key_index(L, pr, p, keys, kk, sizeof kk, &kp);
        if (i < 0)
            return -1;
        if (k->query != PROXY_QUERY_ALL)
            return fail(L, kp, "query: keep or drop, not both");
        k->query = i == 0 ? PROXY_QUERY_KEEP : PROXY_QUERY_DROP;
        if (strings(L, fy_node_pair_value(pr), kp, kk, 0, &k->query_names, &k->nquery_names) != 0)
            return -1;
    }
    if (k->query == PROXY_QUERY_ALL)
        return fail(L, at(n, p), "query: expected keep: [..] or drop: [..]");
    qsort(k->query_names, k->nquery_names, sizeof *k->query_names, cmp_str);
    return 0;
}

static int key_spec(loader *L, struct fy_node *n, pos p, proxy_route *r)
{
    static const char *const keys[] = {"path_params", "query", "headers", "window", NULL};
    proxy_key_spec *k = &r->key;
    if (expect(L, n, p, "key", FYNT_MAPPING) != 0)
        return -1;
    void *it = NULL;
    struct fy_node_pair *pr;
    while ((pr = fy_node_mapping_iterate(n, &it)) != NULL) {
        char kk[64];
        pos kp;
        struct fy_node *v = fy_node_pair_value(pr);
        uint64_t ms;
        int i = key_index(L, pr, p, keys, kk, sizeof kk, &kp);
        if (i < 0)
            return -1;
        if (i == 0) {
            if (expect(L, v, kp, kk, FYNT_SEQUENCE) != 0)
                return -1;
            k->path_params_set = 1;
            void *it2 = NULL;
            struct fy_node *item;
            while ((item = fy_node_sequence_iterate(v, &it2)) != NULL) {
                char buf[64];
                if (text(L, item, kp, kk, buf, sizeof buf) != 0)
                    return -1;
                int pi = proxy_pattern_param(&r->match.path, buf, strlen(buf));
                if (pi < 0)
                    return fail(L, at(item, kp),
                                "path_params: \"%s\" is not a parameter of the path %s", buf,
                                r->match.path.text);
                k->path_params |= 1u << pi;
            }
        } else if (i == 1) {
            if (query(L, v, kp, k) != 0)
                return -1;
        } else if (i == 2) {
            if (strings(L, v, kp, kk, 1, &k->headers, &k->nheaders) != 0)
                return -1;
            qsort(k->headers, k->nheaders, sizeof *k->headers, cmp_str);
        } else {
            if (duration(L, v, kp, kk, &ms) != 0)
                return -1;
            if (ms < 1000 || ms % 1000 != 0)
                return fail(L, at(v, kp), "window: whole seconds, at least 1");
            k->window_s = ms / 1000;
        }
    }
    return 0;
}

/* A route's rate limit: "limit=100,period=1[,burst=..][,by=..][,shadow=..]" with an optional
 * "NAME:" before it, or the same fields as a mapping. Made into the STRATA_RATE_LIMITS rule
 * "NAME:fields" (NAME: the route's name unless given) and checked by the server's own parser. */
static int rate_limit(loader *L, struct fy_node *n, pos p, proxy_route *r)
{
    char rule[512], fields[400] = "", name[NAME_MAX_LEN + 1];
    snprintf(name, sizeof name, "%s", r->name ? r->name : "route");
    if (n != NULL && !fy_node_is_alias(n) && fy_node_get_type(n) == FYNT_MAPPING) {
        static const char *const keys[] = {"name", "limit",  "period", "burst",
                                           "by",   "shadow", NULL};
        void *it = NULL;
        struct fy_node_pair *pr;
        size_t o = 0;
        while ((pr = fy_node_mapping_iterate(n, &it)) != NULL) {
            char k[64], v[128];
            pos kp;
            int i = key_index(L, pr, p, keys, k, sizeof k, &kp);
            if (i < 0 || text(L, fy_node_pair_value(pr), kp, k, v, sizeof v) != 0)
                return -1;
            if (i == 0 && strlen(v) > NAME_MAX_LEN)
                return fail(L, kp, "rate_limit: a name of at most %d bytes", NAME_MAX_LEN);
            if (i == 0)
                memcpy(name, v, strlen(v) + 1);
            else
                o += (size_t)snprintf(fields + o, sizeof fields - o, "%s%s=%s", o ? "," : "", k, v);
            if (o >= sizeof fields)
                return fail(L, kp, "rate_limit is too long");
        }
    } else {
        char buf[400];
        if (text(L, n, p, "rate_limit", buf, sizeof buf) != 0)
            return -1;
        char *colon = strchr(buf, ':'), *eq = strchr(buf, '=');
        if (colon != NULL && (eq == NULL || colon < eq)) {
            *colon = '\0';
            if (strlen(buf) > NAME_MAX_LEN)
                return fail(L, at(n, p), "rate_limit: a name of at most %d bytes", NAME_MAX_LEN);
            memcpy(name, buf, strlen(buf) + 1);
            snprintf(fields, sizeof fields, "%s", colon + 1);
        } else {
            snprintf(fields, sizeof fields, "%s", buf);
        }
    }
    pos vp = at(n, p);
    if (strncmp(fields, "route=", 6) == 0 || strstr(fields, ",route=") != NULL)
        return fail(L, vp, "rate_limit: no route= here: the rule applies to this route");
    snprintf(rule, sizeof rule, "%s:%s", name, fields);
    char why[256];
    if (L->o != NULL && L->o->check_rule != NULL && L->o->check_rule(rule, why, sizeof why) != 0)
        return fail(L, vp,
                    "rate_limit: %s; expected limit=N,period=SECONDS[,burst=N][,by=ip|token|"
                    "tenant|header:NAME][,shadow=true]",
                    why);
    if ((r->rate_limit = strdup(rule)) == NULL)
        return fail(L, vp, "out of memory");
    return 0;
}

static const proxy_origin *find_origin(const proxy_config *c, const char *name)
{
    for (size_t i = 0; i < c->norigins; i++)
        if (strcmp(c->origins[i].name, name) == 0)
            return &c->origins[i];
    return NULL;
}

static void route_defaults(proxy_route *r)
{
    static const int cacheable[] = {200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501};
    r->match.methods = PROXY_M_GET | PROXY_M_HEAD;
    r->max_object = PROXY_MAX_OBJECT_DEFAULT;
    status_add(&r->error_statuses, 500, 599);
    for (size_t i = 0; i < sizeof cacheable / sizeof cacheable[0]; i++)
        status_add(&r->cacheable_statuses, cacheable[i], cacheable[i]);
}

static int route_kind(loader *L, struct fy_node *n, pos p, proxy_route *r)
{
    char buf[16];
    if (text(L, n, p, "kind", buf, sizeof buf) != 0)
        return -1;
    if (strcmp(buf, "http") != 0 && strcmp(buf, "openai") != 0)
        return fail(L, at(n, p), "kind: \"%s\": expected http or openai", buf);
    r->kind = buf[0] == 'o' ? PROXY_KIND_OPENAI : PROXY_KIND_HTTP;
    return 0;
}

/* An openai route: its answers are keyed by their requests and kept for the route's ttl (or
 * LLM_CACHE_TTL's), whatever the provider's headers say (they say nothing of caching). */
static int openai_defaults(loader *L, struct fy_node **by, pos *kps, proxy_route *r)
{
    if (by[9] != NULL && r->rfc9111 != PROXY_RFC9111_OVERRIDE)
        return fail(L, at(by[9], kps[9]),
                    "rfc9111: a route of kind openai caches by its requests (override)");
    if (by[10] != NULL)
        return fail(L, at(by[10], kps[10]),
                    "key: a route of kind openai keys its answers by their requests");
    r->rfc9111 = PROXY_RFC9111_OVERRIDE;
    const proxy_load_options *o = L->o;
    if (!r->ttl_set) {
        r->ttl_ms = o && o->llm_ttl_ms ? o->llm_ttl_ms : PROXY_LLM_TTL_DEFAULT_S * 1000ull;
        r->ttl_set = 1;
    }
    r->llm_cache = !(o && o->llm_cache_off);
    r->embedding_cache = !(o && o->embedding_cache_off);
    r->embedding_ttl_ms =
        o && o->embedding_ttl_ms ? o->embedding_ttl_ms : PROXY_EMBEDDING_TTL_DEFAULT_S * 1000ull;
    /* strata spends its own provider key for the caller: not for anyone who can reach it. */
    if (r->origin->token_env != NULL)
        r->auth = PROXY_AUTH_READ;
    r->cacheable_statuses = (proxy_statuses){{0}};
    status_add(&r->cacheable_statuses, 200, 200); /* answers; errors only with error_ttl */
    if (by[7] == NULL) /* a provider's errors worth a short negative TTL: rate limits, 5xx */
        status_add(&r->error_statuses, 429, 429);
    return 0;
}

static int strip_prefix(loader *L, struct fy_node *n, pos p, proxy_route *r)
{
    if ((r->strip_prefix = text_dup(L, n, p, "strip_prefix")) == NULL)
        return -1;
    size_t len = strlen(r->strip_prefix);
    if (r->strip_prefix[0] != '/' || len < 2 || r->strip_prefix[len - 1] == '/' ||
        strpbrk(r->strip_prefix, "?#*{} ") != NULL)
        return fail(L, at(n, p), "strip_prefix \"%s\": expected a path prefix like /v1",
                    r->strip_prefix);
    const char *pat = r->match.path.text;
    if (strncmp(pat, r->strip_prefix, len) != 0 || (pat[len] != '/' && pat[len] != '\0'))
        return fail(L, at(n, p), "strip_prefix %s: the route's path %s does not start with it",
                    r->strip_prefix, pat);
    return 0;
}

static int route(loader *L, struct fy_node *n, pos p, proxy_config *c)
{
    static const char *const keys[] = {"name",
                                       "match",
                                       "origin",
                                       "ttl",
                                       "grace",
                                       "stale_if_error",
                                       "error_ttl",
                                       "error_statuses",
                                       "cacheable_statuses",
                                       "rfc9111",
                                       "key",
                                       "tags",
                                       "rate_limit",
                                       "auth",
                                       "max_object",
                                       "kind",
                                       "strip_prefix",
                                       "cache_sampled",
                                       "embedding_ttl",
                                       NULL};
    proxy_route *r = &c->routes[c->nroutes];
    object_name(L, n, "route", "routes", c->nroutes);
    if (expect(L, n, p, L->what, FYNT_MAPPING) != 0)
        return -1;
    c->nroutes++;
    route_defaults(r);
    r->line = at(n, p).line;
    /* name and match first: the messages name the route, and key and tags need the path */
    struct fy_node *by[20] = {NULL};
    pos kps[20];
    if (fields(L, n, p, keys, by, kps) != 0)
        return -1;
    pos np = at(n, p);
    if (by[0] == NULL)
        return fail(L, np, "a route needs a name (name: tasks)");
    if ((r->name = name_of(L, by[0], kps[0], "name")) == NULL)
        return -1;
    snprintf(L->what, sizeof L->what, "route \"%s\"", r->name);
    for (size_t j = 0; j + 1 < c->nroutes; j++)
        if (strcmp(c->routes[j].name, r->name) == 0)
            return fail(L, at(by[0], np), "the name is already the route's on line %d",
                        c->routes[j].line);
    if (by[15] != NULL && route_kind(L, by[15], kps[15], r) != 0)
        return -1;
    if (by[1] == NULL)
        return fail(L, np, "a route needs match: {path: /tasks/{id}}");
    /* An OpenAI-compatible API is POSTed to (and its models listed with GET). */
    unsigned dflt = r->kind == PROXY_KIND_OPENAI ? ~0u : PROXY_M_GET | PROXY_M_HEAD;
    if (match_rule(L, by[1], kps[1], dflt, &r->match) != 0)
        return -1;
    const char *own = proxy_pattern_claims_own(&r->match.path);
    if (own != NULL)
        return fail(L, at(by[1], kps[1]),
                    "the path %s claims strata's own %s; strata's endpoints (/cache/*, /metrics, "
                    "/livez, /readyz, /dashboard*, /v1/cache*, /v1/sessions*, /v1/ratelimit*, "
                    "/v1/invalidate) "
                    "cannot be routed to an origin",
                    r->match.path.text, own);
    if (by[2] != NULL) {
        char buf[NAME_MAX_LEN + 1];
        if (text(L, by[2], kps[2], "origin", buf, sizeof buf) != 0)
            return -1;
        if ((r->origin = find_origin(c, buf)) == NULL)
            return fail(L, at(by[2], kps[2]), "origin \"%s\" is not declared under origins", buf);
    } else if (c->norigins == 1) {
        r->origin = &c->origins[0];
    } else {
        return fail(L, np, "origin: which one? (%zu origins are declared)", c->norigins);
    }
    uint64_t *durations[4] = {&r->ttl_ms, &r->grace_ms, &r->stale_if_error_ms, &r->error_ttl_ms};
    for (int i = 3; i <= 6; i++)
        if (by[i] != NULL && duration(L, by[i], kps[i], keys[i], durations[i - 3]) != 0)
            return -1;
    r->ttl_set = by[3] != NULL;
    if (by[7] != NULL && statuses(L, by[7], kps[7], keys[7], &r->error_statuses) != 0)
        return -1;
    if (by[8] != NULL && statuses(L, by[8], kps[8], keys[8], &r->cacheable_statuses) != 0)
        return -1;
    if (by[9] != NULL) {
        char buf[16];
        if (text(L, by[9], kps[9], "rfc9111", buf, sizeof buf) != 0)
            return -1;
        if (strcmp(buf, "obey") != 0 && strcmp(buf, "override") != 0)
            return fail(L, at(by[9], kps[9]), "rfc9111: \"%s\": expected obey or override", buf);
        r->rfc9111 = buf[1] == 'v' ? PROXY_RFC9111_OVERRIDE : PROXY_RFC9111_OBEY;
    }
    if (r->kind == PROXY_KIND_OPENAI && openai_defaults(L, by, kps, r) != 0)
        return -1;
    if (r->rfc9111 == PROXY_RFC9111_OVERRIDE && !r->ttl_set)
        return fail(L, at(by[9], np), "rfc9111: override needs the route's ttl");
    if (by[10] != NULL && key_spec(L, by[10], kps[10], r) != 0)
        return -1;
    if (by[11] != NULL &&
        templates(L, by[11], kps[11], "tags", &r->match.path, &r->tags, &r->ntags) != 0)
        return -1;
    if (by[12] != NULL && rate_limit(L, by[12], kps[12], r) != 0)
        return -1;
    if (by[13] != NULL) {
        char buf[16];
        if (text(L, by[13], kps[13], "auth", buf, sizeof buf) != 0)
            return -1;
        r->auth = strcmp(buf, "none") == 0    ? PROXY_AUTH_NONE
                  : strcmp(buf, "read") == 0  ? PROXY_AUTH_READ
                  : strcmp(buf, "write") == 0 ? PROXY_AUTH_WRITE
                                              : -1;
        if (r->auth < 0)
            return fail(L, at(by[13], kps[13]), "auth: \"%s\": expected none, read or write", buf);
    }
    unsigned long bytes;
    if (by[14] != NULL) {
        if (whole(L, by[14], kps[14], "max_object", 1, PROXY_MAX_OBJECT_LIMIT, &bytes) != 0)
            return -1;
        r->max_object = (size_t)bytes;
    }
    if (by[16] != NULL && strip_prefix(L, by[16], kps[16], r) != 0)
        return -1;
    if (by[17] != NULL) {
        if (r->kind != PROXY_KIND_OPENAI)
            return fail(L, at(by[17], kps[17]), "cache_sampled is for routes of kind openai");
        if (boolean(L, by[17], kps[17], "cache_sampled", &r->cache_sampled) != 0)
            return -1;
    }
    if (by[18] != NULL) {
        if (r->kind != PROXY_KIND_OPENAI)
            return fail(L, at(by[18], kps[18]), "embedding_ttl is for routes of kind openai");
        if (duration(L, by[18], kps[18], "embedding_ttl", &r->embedding_ttl_ms) != 0)
            return -1;
        if (r->embedding_ttl_ms < 1000)
            return fail(L, at(by[18], kps[18]), "embedding_ttl: at least 1 s");
    }
    return 0;
}

/* ---- invalidation rules ------------------------------------------------------------------- */

#define UNSAFE (PROXY_M_PUT | PROXY_M_PATCH | PROXY_M_POST | PROXY_M_DELETE)

static int invalidation(loader *L, struct fy_node *n, pos p, proxy_config *c)
{
    static const char *const keys[] = {"name", "match", "tags", "keys", NULL};
    proxy_invalidation *v = &c->invalidations[c->ninvalidations];
    object_name(L, n, "invalidation", "invalidations", c->ninvalidations);
    if (expect(L, n, p, L->what, FYNT_MAPPING) != 0)
        return -1;
    c->ninvalidations++;
    v->line = at(n, p).line;
    struct fy_node *by[4] = {NULL};
    pos kps[4] = {{0, 0}};
    if (fields(L, n, p, keys, by, kps) != 0)
        return -1;
    pos np = at(n, p);
    if (by[0] != NULL) {
        if ((v->name = name_of(L, by[0], kps[0], "name")) == NULL)
            return -1;
        snprintf(L->what, sizeof L->what, "invalidation \"%s\"", v->name);
    } else if ((v->name = strdup(L->what)) == NULL) {
        return fail(L, np, "out of memory");
    }
    if (by[1] == NULL)
        return fail(L, np, "an invalidation rule needs match: {methods: [PUT], path: ...}");
    if (match_rule(L, by[1], kps[1], UNSAFE, &v->match) != 0)
        return -1;
    if ((v->match.methods & ~(unsigned)UNSAFE) != 0)
        return fail(L, at(by[1], kps[1]),
                    "invalidation rules follow unsafe methods only: PUT, PATCH, POST, DELETE");
    if (by[2] == NULL && by[3] == NULL)
        return fail(L, np, "an invalidation rule drops tags: [..], keys: [..] or both");
    if (by[2] != NULL &&
        templates(L, by[2], kps[2], "tags", &v->match.path, &v->tags, &v->ntags) != 0)
        return -1;
    if (by[3] != NULL &&
        templates(L, by[3], kps[3], "keys", &v->match.path, &v->keys, &v->nkeys) != 0)
        return -1;
    return 0;
}

/* ---- the document ------------------------------------------------------------------------- */

/* Reads the list under key with one(): allocates *arr for its items first. */
static int list(loader *L, struct fy_node *n, pos p, const char *key, size_t size, void **arr,
                int (*one)(loader *, struct fy_node *, pos, proxy_config *), proxy_config *c)
{
    if (expect(L, n, p, key, FYNT_SEQUENCE) != 0)
        return -1;
    int count = fy_node_sequence_item_count(n);
    if (count > ROUTES_MAX)
        return fail(L, at(n, p), "%s: at most %d", key, ROUTES_MAX);
    if (count <= 0)
        return 0;
    if ((*arr = calloc((size_t)count, size)) == NULL)
        return fail(L, p, "out of memory");
    void *it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(n, &it)) != NULL) {
        if (one(L, item, at(item, at(n, p)), c) != 0)
            return -1;
        L->what[0] = '\0';
    }
    return 0;
}

/* A price: a number of USD per million tokens, 0 to 1e6. */
static int price(loader *L, struct fy_node *n, pos p, const char *key, double *out)
{
    char buf[64], *end;
    if (text(L, n, p, key, buf, sizeof buf) != 0)
        return -1;
    errno = 0;
    double d = strtod(buf, &end);
    if (end == buf || *end != '\0' || errno != 0 || !(d >= 0) || d > 1e6)
        return fail(L, at(n, p), "%s: \"%s\": expected USD per million tokens (0.15)", key, buf);
    *out = d;
    return 0;
}

/* prices: {MODEL: {input: USD per 1M tokens, output: ...}, ...} */
static int prices(loader *L, struct fy_node *n, pos p, proxy_config *c)
{
    static const char *const keys[] = {"input", "output", NULL};
    if (expect(L, n, p, "prices", FYNT_MAPPING) != 0)
        return -1;
    int count = fy_node_mapping_item_count(n);
    if (count <= 0)
        return 0;
    if ((c->prices = calloc((size_t)count, sizeof *c->prices)) == NULL)
        return fail(L, p, "out of memory");
    void *it = NULL;
    struct fy_node_pair *pr;
    while ((pr = fy_node_mapping_iterate(n, &it)) != NULL) {
        proxy_price *x = &c->prices[c->nprices];
        struct fy_node *k = fy_node_pair_key(pr), *v = fy_node_pair_value(pr);
        pos kp = at(k, p);
        if ((x->model = text_dup(L, k, kp, "prices")) == NULL)
            return -1;
        c->nprices++;
        snprintf(L->what, sizeof L->what, "prices \"%s\"", x->model);
        struct fy_node *by[2] = {NULL};
        pos kps[2];
        if (expect(L, v, kp, L->what, FYNT_MAPPING) != 0 || fields(L, v, kp, keys, by, kps) != 0)
            return -1;
        if ((by[0] && price(L, by[0], kps[0], "input", &x->input) != 0) ||
            (by[1] && price(L, by[1], kps[1], "output", &x->output) != 0))
            return -1;
    }
    L->what[0] = '\0';
    return 0;
}

const proxy_price *proxy_config_price(const proxy_config *c, const char *model)
{
    const proxy_price *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; c != NULL && model != NULL && i < c->nprices; i++) {
        size_t n = strlen(c->prices[i].model);
        if (n >= best_len && strncmp(model, c->prices[i].model, n) == 0) {
            best = &c->prices[i];
            best_len = n;
        }
    }
    return best;
}

static int document(loader *L, struct fy_node *root, proxy_config *c)
{
    static const char *const keys[] = {"version",       "origins", "routes",
                                       "invalidations", "prices",  NULL};
    pos start = {1, 1};
    if (root == NULL)
        return fail(L, start, "the file is empty; expected origins: and routes:");
    if (expect(L, root, start, "the file", FYNT_MAPPING) != 0)
        return -1;
    struct fy_node *by[5] = {NULL};
    pos kps[5];
    if (fields(L, root, start, keys, by, kps) != 0)
        return -1;
    if (by[4] != NULL && prices(L, by[4], kps[4], c) != 0)
        return -1;
    if (by[0] != NULL) {
        unsigned long v;
        if (whole(L, by[0], kps[0], "version", 1, 1, &v) != 0)
            return -1;
    }
    if (by[1] != NULL &&
        list(L, by[1], kps[1], "origins", sizeof *c->origins, (void **)&c->origins, origin, c) != 0)
        return -1;
    if (by[2] != NULL && expect(L, by[2], kps[2], "routes", FYNT_SEQUENCE) != 0)
        return -1;
    if (by[2] == NULL || fy_node_sequence_item_count(by[2]) <= 0)
        return fail(L, by[2] ? kps[2] : start,
                    "no routes; expected routes: with at least one route");
    if (c->norigins == 0)
        return fail(L, kps[2], "routes need an origin; expected origins: [{name: .., url: ..}]");
    if (list(L, by[2], kps[2], "routes", sizeof *c->routes, (void **)&c->routes, route, c) != 0)
        return -1;
    if (by[3] != NULL && list(L, by[3], kps[3], "invalidations", sizeof *c->invalidations,
                              (void **)&c->invalidations, invalidation, c) != 0)
        return -1;
    return 0;
}

/* libfyaml's first collected error, as "FILE:LINE:COL: message". */
static void syntax_error(loader *L, struct fy_diag *d)
{
    void *it = NULL;
    struct fy_diag_error *e = d ? fy_diag_errors_iterate(d, &it) : NULL;
    if (e != NULL)
        fail(L, (pos){e->line, e->column}, "YAML: %s", e->msg);
    else
        fail(L, (pos){1, 1}, "the file is empty or not YAML; expected origins: and routes:");
}

/* The length of the UTF-8 sequence at p (1..4) that YAML allows as text, or 0: printable
 * characters, tab, LF and CR (YAML 1.2, 5.1), no overlong forms, no surrogates. */
static size_t yaml_char(const unsigned char *p, size_t left)
{
    unsigned c = p[0];
    if (c < 0x80)
        return c == '\t' || c == '\n' || c == '\r' || (c >= 0x20 && c != 0x7f);
    size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    if (n == 0 || c > 0xf4 || n > left)
        return 0;
    uint32_t cp = c & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[n] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff ||
        (cp >= 0x80 && cp <= 0x9f && cp != 0x85))
        return 0;
    return n;
}

/* A configuration file is UTF-8 text. Checked before libfyaml sees it: besides a clearer error,
 * libfyaml 0.7.12 loops forever on some invalid bytes after a '%' directive (fuzz_proxy_config
 * found it), so a file that is not text must never reach it. */
static int text_check(loader *L, const char *data, size_t len)
{
    const unsigned char *p = (const unsigned char *)data;
    pos at = {1, 1};
    for (size_t i = 0; i < len;) {
        size_t n = yaml_char(p + i, len - i);
        if (n == 0)
            return fail(L, at, "byte 0x%02x is not UTF-8 text YAML allows; expected a text file",
                        p[i]);
        if (p[i] == '\n')
            at.line++, at.col = 0;
        at.col++;
        i += n;
    }
    return 0;
}

static int load(loader *L, const char *data, size_t len, proxy_config **out)
{
    *out = NULL;
    if (text_check(L, data, len) != 0)
        return -1;
    proxy_config *c = calloc(1, sizeof *c);
    struct fy_diag_cfg dc;
    fy_diag_cfg_default(&dc);
    dc.fp = NULL;
    dc.colorize = false;
    struct fy_diag *d = fy_diag_create(&dc);
    if (c == NULL || d == NULL || (c->source = strdup(L->file)) == NULL) {
        fy_diag_destroy(d);
        proxy_config_free(c);
        return fail(L, (pos){0, 0}, "out of memory");
    }
    fy_diag_set_collect_errors(d, true);
    struct fy_parse_cfg pc = {.flags = FYPCF_QUIET | FYPCF_DISABLE_RECYCLING, .diag = d};
    struct fy_parser *fyp = fy_parser_create(&pc);
    if (fyp == NULL || fy_parser_set_string(fyp, data, len) != 0) {
        fy_parser_destroy(fyp);
        fy_diag_destroy(d);
        proxy_config_free(c);
        return fail(L, (pos){0, 0}, "out of memory");
    }
    /* One document: a second one (after a "---") would otherwise be ignored without a word. */
    struct fy_document *doc = fy_parse_load_document(fyp), *more = NULL;
    int rc = -1;
    if (doc == NULL || fy_diag_got_error(d))
        syntax_error(L, d);
    else if ((more = fy_parse_load_document(fyp)) != NULL)
        fail(L, at(fy_document_root(more), (pos){0, 0}),
             "a second YAML document; expected one document per file");
    else if (fy_diag_got_error(d))
        syntax_error(L, d);
    else
        rc = document(L, fy_document_root(doc), c);
    fy_parse_document_destroy(fyp, more);
    fy_parse_document_destroy(fyp, doc);
    fy_parser_destroy(fyp);
    fy_diag_destroy(d);
    if (rc != 0) {
        proxy_config_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

int proxy_config_load_bytes(const char *name, const char *data, size_t len,
                            const proxy_load_options *o, proxy_config **out, char *err, size_t cap)
{
    loader L = {.file = name ? name : "(config)", .err = err, .cap = cap, .o = o};
    return load(&L, data, len, out);
}

int proxy_config_load_file(const char *path, const proxy_load_options *o, proxy_config **out,
                           char *err, size_t cap)
{
    loader L = {.file = path, .err = err, .cap = cap, .o = o};
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, cap, "%s: cannot be read: %s", path, strerror(errno));
        return -1;
    }
    char *data = malloc(PROXY_CONFIG_MAX_BYTES + 1);
    size_t len = data ? fread(data, 1, PROXY_CONFIG_MAX_BYTES + 1, f) : 0;
    int bad = data == NULL || ferror(f);
    fclose(f);
    int rc = -1;
    if (bad)
        snprintf(err, cap, "%s: cannot be read: %s", path,
                 data ? strerror(errno) : "out of memory");
    else if (len > PROXY_CONFIG_MAX_BYTES)
        snprintf(err, cap, "%s: larger than %d bytes; expected a configuration file", path,
                 PROXY_CONFIG_MAX_BYTES);
    else
        rc = load(&L, data, len, out);
    free(data);
    return rc;
}

int proxy_config_reload(proxy_config **cur, const char *path, const proxy_load_options *o,
                        char *err, size_t cap)
{
    proxy_config *next;
    if (proxy_config_load_file(path, o, &next, err, cap) != 0)
        return -1;
    proxy_config_free(*cur);
    *cur = next;
    return 0;
}

int proxy_config_from_upstream(const char *url, proxy_config **out, char *err, size_t cap)
{
    char yaml[2300];
    *out = NULL;
    if (url == NULL || strlen(url) > 2000 || strpbrk(url, "\"\\\n\r") != NULL)
        return snprintf(err, cap, "--upstream: expected http://HOST[:PORT][/PATH] or https://..."),
               -1;
    /* The one-route configuration is written as the file would be, so it is checked and built
     * by the same code as every file. */
    snprintf(yaml, sizeof yaml,
             "origins: [{name: upstream, url: \"%s\"}]\n"
             "routes: [{name: default, match: {methods: ['*'], path: '/*'}, rfc9111: obey}]\n",
             url);
    loader L = {.file = "--upstream", .err = err, .cap = cap};
    if (load(&L, yaml, strlen(yaml), out) != 0) {
        /* the position is the generated text's: say what was given instead */
        const char *why = strstr(err, "origin \"upstream\": ");
        char msg[512];
        snprintf(msg, sizeof msg, "--upstream %s: %s", url,
                 why ? why + strlen("origin \"upstream\": ") : err);
        snprintf(err, cap, "%s", msg);
        return -1;
    }
    return 0;
}

int proxy_config_from_llm_upstream(const char *url, const char *key_env, const char *upstream,
                                   const proxy_load_options *o, proxy_config **out, char *err,
                                   size_t cap)
{
    char yaml[5000], key[160] = "", up_origin[2100] = "", up_route[160] = "";
    *out = NULL;
    const char *bad =
        url == NULL || strlen(url) > 2000 || strpbrk(url, "\"\\\n\r") != NULL ? url
        : upstream != NULL && (strlen(upstream) > 2000 || strpbrk(upstream, "\"\\\n\r") != NULL)
            ? upstream
            : NULL;
    if (url == NULL || bad != NULL)
        return snprintf(err, cap, "%s: expected http://HOST[:PORT][/PATH] or https://...",
                        bad == url ? "--llm-upstream" : "--upstream"),
               -1;
    if (key_env != NULL && strlen(key_env) < 100)
        snprintf(key, sizeof key, ", token_env: %s", key_env);
    if (upstream != NULL) {
        snprintf(up_origin, sizeof up_origin, ", {name: upstream, url: \"%s\"}", upstream);
        snprintf(up_route, sizeof up_route,
                 ", {name: default, origin: upstream, match: {methods: ['*'], path: '/*'}, "
                 "rfc9111: obey}");
    }
    /* Written as the file would be, so it is checked and built by the same code as every file.
     * A provider takes its time before the first token: two minutes, not the origin's default. */
    snprintf(yaml, sizeof yaml,
             "origins: [{name: llm, url: \"%s\", first_byte_timeout: 120s%s}%s]\n"
             "routes: [{name: llm, kind: openai, origin: llm, match: {path: '/v1/*'}, "
             "strip_prefix: /v1}%s]\n",
             url, key, up_origin, up_route);
    loader L = {.file = "--llm-upstream", .err = err, .cap = cap, .o = o};
    if (load(&L, yaml, strlen(yaml), out) != 0) {
        const char *why = strstr(err, "\": ");
        char msg[512];
        snprintf(msg, sizeof msg, "%s: %s", url, why ? why + 3 : err);
        snprintf(err, cap, "%s", msg);
        return -1;
    }
    return 0;
}

/* ---- freeing ------------------------------------------------------------------------------ */

static void match_free(proxy_match_rule *m)
{
    free(m->host);
    proxy_pattern_free(&m->path);
}

static void templates_free(proxy_template *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        proxy_template_free(&t[i]);
    free(t);
}

static void strings_free(char **s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i]);
    free(s);
}

void proxy_config_free(proxy_config *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nroutes; i++) {
        proxy_route *r = &c->routes[i];
        free(r->name);
        match_free(&r->match);
        strings_free(r->key.query_names, r->key.nquery_names);
        strings_free(r->key.headers, r->key.nheaders);
        templates_free(r->tags, r->ntags);
        free(r->rate_limit);
        free(r->strip_prefix);
    }
    for (size_t i = 0; i < c->ninvalidations; i++) {
        proxy_invalidation *v = &c->invalidations[i];
        free(v->name);
        match_free(&v->match);
        templates_free(v->tags, v->ntags);
        templates_free(v->keys, v->nkeys);
    }
    for (size_t i = 0; i < c->norigins; i++) {
        proxy_origin *o = &c->origins[i];
        upstream_origin_free(o->up);
        free(o->name);
        free(o->url);
        free((char *)o->opts.ca_file);
        free((char *)o->opts.server_name);
        free(o->token_env);
        free(o->token_header);
    }
    for (size_t i = 0; i < c->nprices; i++)
        free(c->prices[i].model);
    free(c->prices);
    free(c->routes);
    free(c->invalidations);
    free(c->origins);
    free(c->source);
    free(c);
}
