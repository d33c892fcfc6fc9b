/* route_match.h: the proxy's path patterns and templates, compiled once at load and matched per
 * request without allocating.
 *
 * A pattern is "/" and segments: literal text, a whole-segment parameter "{name}", and an
 * optional last segment "*" that matches the rest of the path, empty included (/energy/ then *
 * matches "/energy", "/energy/" and "/energy/a/b"). Literals are compared with the request's raw
 * path decoded on the fly ("/t%61sks/7" is "/tasks/7"); parameters are handed back as spans of the
 * raw path. A template ("task:{id}") is literal text and parameter references, resolved against a
 * pattern's parameters when compiled, so an unknown name is a load error, never a request's.
 *
 *     proxy_pattern p;
 *     char err[128];
 *     if (proxy_pattern_compile("/tasks/{id}", &p, err, sizeof err) != 0) ...
 *     proxy_params m;
 *     if (proxy_pattern_match(&p, "/tasks/7", 8, &m)) // m.v[0] = "7", m.n = 1
 *     proxy_pattern_free(&p);
 */
#ifndef STRATA_SERVER_PROXY_ROUTE_MATCH_H
#define STRATA_SERVER_PROXY_ROUTE_MATCH_H

#include <stddef.h>

#define PROXY_PARAMS_MAX   8  /* parameters per pattern */
#define PROXY_SEGMENTS_MAX 32 /* segments per pattern */

/* A piece of a request: bytes, not NUL-terminated. */
typedef struct proxy_span {
    const char *p;
    size_t n;
} proxy_span;

/* What a match captured: the parameters in the pattern's order, and what "*" matched (the rest
 * of the path after the literal segments, without its leading '/'; empty when none). */
typedef struct proxy_params {
    size_t n;
    proxy_span v[PROXY_PARAMS_MAX];
    proxy_span rest;
} proxy_params;

typedef struct proxy_segment {
    char *lit;  /* decoded literal text, or NULL for a parameter */
    size_t len; /* of lit */
    int param;  /* the parameter's index, or -1 */
} proxy_segment;

typedef struct proxy_pattern {
    char *text; /* as written */
    proxy_segment *seg;
    size_t nseg;
    int wildcard; /* ends in "*" */
    char *names[PROXY_PARAMS_MAX];
    size_t nparams;
} proxy_pattern;

/* Compiles text into p. Returns 0, or -1 with what was expected in err (p is then empty and
 * proxy_pattern_free on it is harmless). */
int proxy_pattern_compile(const char *text, proxy_pattern *p, char *err, size_t cap);
void proxy_pattern_free(proxy_pattern *p);

/* 1 if path[0..n) (the raw path, without the query) matches p, with the captures in *m; else 0.
 * Never allocates, never reads past path + n. */
int proxy_pattern_match(const proxy_pattern *p, const char *path, size_t n, proxy_params *m);

/* The parameter's index in p, or -1. */
int proxy_pattern_param(const proxy_pattern *p, const char *name, size_t len);

/* If p would claim one of strata's own paths (/cache/ *, /metrics, /livez, /readyz, /v1/cache*,
 * /v1/sessions*, /v1/ratelimit*, /v1/invalidate) with its literal segments, that path ("/metrics",
 * "/v1/cache*", ...); else NULL. A pattern that reaches them only through a parameter or "*"
 * ("/{any}", or "/" then "*") claims nothing: strata's own endpoints win over it on the listener.
 */
const char *proxy_pattern_claims_own(const proxy_pattern *p);

/* ---- templates ---------------------------------------------------------------------------- */

typedef struct proxy_piece {
    char *lit; /* literal text, or NULL for a parameter */
    size_t len;
    int param;
} proxy_piece;

typedef struct proxy_template {
    char *text; /* as written */
    proxy_piece *piece;
    size_t n;
} proxy_template;

/* Compiles text ("task:{id}", "tasks:list") against pattern p's parameters; "{{" and "}}" are
 * literal braces. Returns 0, or -1 with the reason in err (an unknown parameter is named). */
int proxy_template_compile(const char *text, const proxy_pattern *p, proxy_template *t, char *err,
                           size_t cap);
void proxy_template_free(proxy_template *t);

/* How a parameter's value is written into an expansion. */
enum proxy_expand_mode {
    PROXY_EXPAND_TEXT = 0, /* the value's normalised percent-encoding (proxy_pct_normalise) */
    PROXY_EXPAND_GLOB = 1, /* the same, with glob metacharacters escaped by '\' (key patterns) */
};

/* Writes t with m's values into out (cap bytes, NUL-terminated). Returns the length, or -1 when
 * it does not fit. */
long proxy_template_expand(const proxy_template *t, const proxy_params *m, int mode, char *out,
                           size_t cap);

/* Writes s[0..n) with its percent-encoding normalised (RFC 3986 6.2.2): escapes of unreserved
 * characters decoded ("%7E" -> "~"), other escapes upper-cased ("%2f" -> "%2F"); reserved
 * characters stay as written (raw or escaped: they mean something); anything else (a space, a
 * control, non-ASCII, a '%' that starts no escape) is escaped. Returns the length written into
 * out (cap bytes, no NUL), or -1 when it does not fit. */
long proxy_pct_normalise(const char *s, size_t n, char *out, size_t cap);

/* The same normalised form, a byte at a time, without a buffer (the key builder sorts and
 * compares query parameters with it):
 *
 *     proxy_norm t;
 *     proxy_norm_init(&t, "%7e%2f", 6);
 *     for (int c; (c = proxy_norm_next(&t)) >= 0;) ... // '~', '%', '2', 'F'
 */
typedef struct proxy_norm {
    const char *s;
    size_t n, i;
    char esc[3];
    int nesc, at;
} proxy_norm;

void proxy_norm_init(proxy_norm *t, const char *s, size_t n);
/* The next byte of the normalised form, or -1 at its end. */
int proxy_norm_next(proxy_norm *t);

#endif
