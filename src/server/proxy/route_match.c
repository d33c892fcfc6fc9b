/* route_match.c: the proxy's path patterns and templates (route_match.h).
 *
 * A pattern is split into segments once, at load; a request's path is walked segment by segment
 * against them with no copy and no allocation: literals are compared with the raw segment decoded
 * on the fly, parameters are spans of the raw path. What a parameter holds is written out (in a
 * key, a tag) with its percent-encoding normalised, so "/tasks/%37" and "/tasks/7" give the same
 * tag and the same key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route_match.h"

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int is_name_char(int c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

/* ---- percent-encoding --------------------------------------------------------------------- */

static int unreserved(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* RFC 3986's reserved characters: they mean something in a URI, so one written raw stays raw and
 * one written escaped stays escaped. */
static int reserved(int c)
{
    return c != 0 && strchr(":/?#[]@!$&'()*+,;=", c) != NULL;
}

void proxy_norm_init(proxy_norm *t, const char *s, size_t n)
{
    t->s = s;
    t->n = n;
    t->i = 0;
    t->nesc = t->at = 0;
}

static int escape(proxy_norm *t, unsigned char b)
{
    static const char hex[] = "0123456789ABCDEF";
    t->esc[0] = '%';
    t->esc[1] = hex[b >> 4];
    t->esc[2] = hex[b & 15];
    t->nesc = 3;
    t->at = 1;
    return '%';
}

int proxy_norm_next(proxy_norm *t)
{
    if (t->at < t->nesc)
        return (unsigned char)t->esc[t->at++];
    t->nesc = t->at = 0;
    if (t->i >= t->n)
        return -1;
    unsigned char c = (unsigned char)t->s[t->i];
    if (c == '%' && t->i + 2 < t->n && hexval(t->s[t->i + 1]) >= 0 && hexval(t->s[t->i + 2]) >= 0) {
        unsigned char b = (unsigned char)(hexval(t->s[t->i + 1]) * 16 + hexval(t->s[t->i + 2]));
        t->i += 3;
        return unreserved(b) ? b : escape(t, b);
    }
    t->i++;
    if (unreserved(c) || reserved(c))
        return c;
    return escape(t, c); /* a stray '%', a space, a control, non-ASCII */
}

/* Writes the normalised form of s[0..n) into out; glob: the glob characters * ? [ ] and the
 * backslash, where written raw, get a backslash before them (an escape's bytes are never glob
 * characters). */
static long normalise(const char *s, size_t n, int glob, char *out, size_t cap)
{
    proxy_norm t;
    proxy_norm_init(&t, s, n);
    size_t o = 0;
    for (int c; (c = proxy_norm_next(&t)) >= 0;) {
        int raw = t.nesc == 0;
        if (glob && raw && strchr("*?[]\\", c) != NULL) {
            if (o >= cap)
                return -1;
            out[o++] = '\\';
        }
        if (o >= cap)
            return -1;
        out[o++] = (char)c;
    }
    return (long)o;
}

long proxy_pct_normalise(const char *s, size_t n, char *out, size_t cap)
{
    return normalise(s, n, 0, out, cap);
}

/* ---- patterns ----------------------------------------------------------------------------- */

void proxy_pattern_free(proxy_pattern *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nseg; i++)
        free(p->seg[i].lit);
    for (size_t i = 0; i < p->nparams; i++)
        free(p->names[i]);
    free(p->seg);
    free(p->text);
    memset(p, 0, sizeof *p);
}

int proxy_pattern_param(const proxy_pattern *p, const char *name, size_t len)
{
    for (size_t i = 0; i < p->nparams; i++)
        if (strlen(p->names[i]) == len && memcmp(p->names[i], name, len) == 0)
            return (int)i;
    return -1;
}

/* One segment of a pattern, s[0..n). Returns 0 or -1 with err set. */
static int compile_segment(proxy_pattern *p, const char *s, size_t n, char *err, size_t cap)
{
    proxy_segment *g = &p->seg[p->nseg];
    g->param = -1;
    if (n >= 2 && s[0] == '{' && s[n - 1] == '}') {
        const char *name = s + 1;
        size_t len = n - 2;
        for (size_t i = 0; i < len; i++)
            if (!is_name_char((unsigned char)name[i], i == 0))
                return snprintf(err, cap, "a parameter's name is letters, digits and '_': {%.*s}",
                                (int)len, name),
                       -1;
        if (len == 0 || len > 32)
            return snprintf(err, cap, "a parameter's name is 1 to 32 characters"), -1;
        if (proxy_pattern_param(p, name, len) >= 0)
            return snprintf(err, cap, "parameter {%.*s} appears twice", (int)len, name), -1;
        if (p->nparams == PROXY_PARAMS_MAX)
            return snprintf(err, cap, "at most %d parameters in a path", PROXY_PARAMS_MAX), -1;
        if ((p->names[p->nparams] = strndup(name, len)) == NULL)
            return snprintf(err, cap, "out of memory"), -1;
        g->param = (int)p->nparams++;
        p->nseg++;
        return 0;
    }
    if ((g->lit = malloc(n + 1)) == NULL)
        return snprintf(err, cap, "out of memory"), -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '{' || c == '}' || c == '*') {
            snprintf(err, cap,
                     "'%c' in \"%.*s\": a parameter is a whole segment ({name}), and '*' only "
                     "the last one",
                     c, (int)n, s);
            goto bad;
        }
        if (c == '?' || c == '#' || c <= 0x20 || c >= 0x7f) {
            snprintf(err, cap, "a path pattern has no query, fragment, space or control");
            goto bad;
        }
        if (c == '%') {
            if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) {
                snprintf(err, cap, "'%%' must start an escape (%%2F)");
                goto bad;
            }
            c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
            i += 2;
        }
        g->lit[o++] = (char)c;
    }
    g->lit[o] = '\0';
    g->len = o;
    p->nseg++;
    return 0;
bad: /* the segment is not counted yet: proxy_pattern_free would not see it */
    free(g->lit);
    g->lit = NULL;
    return -1;
}

int proxy_pattern_compile(const char *text, proxy_pattern *p, char *err, size_t cap)
{
    memset(p, 0, sizeof *p);
    if (text == NULL || text[0] != '/')
        return snprintf(err, cap, "a path pattern starts with '/' (/tasks/{id}, /energy/*)"), -1;
    p->seg = calloc(PROXY_SEGMENTS_MAX, sizeof *p->seg);
    p->text = strdup(text);
    if (p->seg == NULL || p->text == NULL) {
        proxy_pattern_free(p);
        return snprintf(err, cap, "out of memory"), -1;
    }
    const char *s = text + 1;
    for (;;) {
        const char *slash = strchr(s, '/');
        size_t n = slash ? (size_t)(slash - s) : strlen(s);
        if (slash == NULL && n == 1 && s[0] == '*') {
            p->wildcard = 1;
            break;
        }
        if (p->nseg == PROXY_SEGMENTS_MAX) {
            proxy_pattern_free(p);
            return snprintf(err, cap, "at most %d segments in a path", PROXY_SEGMENTS_MAX), -1;
        }
        if (compile_segment(p, s, n, err, cap) != 0) {
            proxy_pattern_free(p);
            return -1;
        }
        if (slash == NULL)
            break;
        s = slash + 1;
    }
    return 0;
}

/* 1 if the raw segment r[0..rn), decoded, is lit[0..ln). */
static int segment_is(const char *r, size_t rn, const char *lit, size_t ln)
{
    size_t j = 0;
    for (size_t i = 0; i < rn; i++, j++) {
        int c = (unsigned char)r[i];
        if (c == '%' && i + 2 < rn && hexval(r[i + 1]) >= 0 && hexval(r[i + 2]) >= 0) {
            c = hexval(r[i + 1]) * 16 + hexval(r[i + 2]);
            i += 2;
        }
        if (j >= ln || (unsigned char)lit[j] != c)
            return 0;
    }
    return j == ln;
}

int proxy_pattern_match(const proxy_pattern *p, const char *path, size_t n, proxy_params *m)
{
    if (n == 0 || path[0] != '/')
        return 0;
    m->n = p->nparams;
    m->rest.p = path + n;
    m->rest.n = 0;
    size_t pos = 1; /* where the next segment starts; n + 1: none left */
    for (size_t i = 0; i < p->nseg; i++) {
        if (pos > n)
            return 0;
        const char *slash = memchr(path + pos, '/', n - pos);
        size_t end = slash ? (size_t)(slash - path) : n;
        const proxy_segment *g = &p->seg[i];
        if (g->param >= 0) {
            if (end == pos)
                return 0; /* a parameter is never empty */
            m->v[g->param].p = path + pos;
            m->v[g->param].n = end - pos;
        } else if (!segment_is(path + pos, end - pos, g->lit, g->len)) {
            return 0;
        }
        pos = end + 1;
    }
    if (p->wildcard) {
        if (pos <= n) {
            m->rest.p = path + pos;
            m->rest.n = n - pos;
        }
        return 1;
    }
    return pos == n + 1;
}

/* strata's own paths. A pattern claims one when its literal segments name it: the first ones
 * equal its segments (prefix: the last only starts with it), and, for an exact path, nothing
 * follows them but an optional "*". */
static const struct own_path {
    const char *seg[2];
    size_t n;
    int prefix_last, subtree;
    const char *name;
} own_paths[] = {
    {{"cache"}, 1, 0, 1, "/cache/*"},
    {{"metrics"}, 1, 0, 0, "/metrics"},
    {{"livez"}, 1, 0, 0, "/livez"},
    {{"readyz"}, 1, 0, 0, "/readyz"},
    {{"dashboard"}, 1, 0, 1, "/dashboard*"},
    {{"v1", "cache"}, 2, 1, 1, "/v1/cache*"},
    {{"v1", "sessions"}, 2, 1, 1, "/v1/sessions*"},
    {{"v1", "ratelimit"}, 2, 1, 1, "/v1/ratelimit*"},
    {{"v1", "invalidate"}, 2, 0, 0, "/v1/invalidate"},
};

const char *proxy_pattern_claims_own(const proxy_pattern *p)
{
    for (size_t k = 0; k < sizeof own_paths / sizeof own_paths[0]; k++) {
        const struct own_path *o = &own_paths[k];
        if (p->nseg < o->n)
            continue;
        size_t i = 0;
        for (; i < o->n; i++) {
            const proxy_segment *g = &p->seg[i];
            size_t ol = strlen(o->seg[i]);
            int last_prefix = o->prefix_last && i == o->n - 1;
            if (g->lit == NULL || (last_prefix ? g->len < ol : g->len != ol) ||
                memcmp(g->lit, o->seg[i], ol) != 0)
                break;
        }
        if (i == o->n && (o->subtree || p->nseg == o->n))
            return o->name;
    }
    return NULL;
}

/* ---- templates ---------------------------------------------------------------------------- */

void proxy_template_free(proxy_template *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->piece[i].lit);
    free(t->piece);
    free(t->text);
    memset(t, 0, sizeof *t);
}

static int add_piece(proxy_template *t, const char *lit, size_t len, int param)
{
    proxy_piece *np = realloc(t->piece, (t->n + 1) * sizeof *np);
    if (np == NULL)
        return -1;
    t->piece = np;
    proxy_piece *pc = &t->piece[t->n];
    pc->param = param;
    pc->len = len;
    pc->lit = NULL;
    if (param < 0 && (pc->lit = strndup(lit, len)) == NULL)
        return -1;
    t->n++;
    return 0;
}

int proxy_template_compile(const char *text, const proxy_pattern *p, proxy_template *t, char *err,
                           size_t cap)
{
    memset(t, 0, sizeof *t);
    if (text == NULL || *text == '\0')
        return snprintf(err, cap, "an empty template"), -1;
    if ((t->text = strdup(text)) == NULL)
        return snprintf(err, cap, "out of memory"), -1;
    char lit[512];
    size_t ln = 0;
    for (const char *s = text; *s;) {
        int param = -1;
        const char *name = NULL;
        size_t nl = 0;
        if ((s[0] == '{' && s[1] == '{') || (s[0] == '}' && s[1] == '}')) {
            if (ln == sizeof lit)
                goto too_long;
            lit[ln++] = s[0];
            s += 2;
            continue;
        }
        if (s[0] == '}') {
            proxy_template_free(t);
            return snprintf(err, cap, "a lone '}' (write }} for a brace)"), -1;
        }
        if (s[0] != '{') {
            if (ln == sizeof lit)
                goto too_long;
            lit[ln++] = *s++;
            continue;
        }
        name = s + 1;
        const char *close = strchr(name, '}');
        nl = close ? (size_t)(close - name) : 0;
        if (close == NULL || p == NULL || (param = proxy_pattern_param(p, name, nl)) < 0) {
            snprintf(err, cap,
                     close == NULL ? "a '{' without its '}' in \"%s\""
                                   : "\"%s\" names a parameter the path does not have",
                     text);
            proxy_template_free(t);
            return -1;
        }
        if ((ln > 0 && add_piece(t, lit, ln, -1) != 0) || add_piece(t, NULL, 0, param) != 0) {
            proxy_template_free(t);
            return snprintf(err, cap, "out of memory"), -1;
        }
        ln = 0;
        s = close + 1;
    }
    if (ln > 0 && add_piece(t, lit, ln, -1) != 0) {
        proxy_template_free(t);
        return snprintf(err, cap, "out of memory"), -1;
    }
    return 0;
too_long:
    proxy_template_free(t);
    return snprintf(err, cap, "a template's literal text is at most %zu bytes", sizeof lit), -1;
}

long proxy_template_expand(const proxy_template *t, const proxy_params *m, int mode, char *out,
                           size_t cap)
{
    size_t o = 0;
    int glob = mode == PROXY_EXPAND_GLOB;
    for (size_t i = 0; i < t->n; i++) {
        const proxy_piece *pc = &t->piece[i];
        if (pc->param < 0) {
            if (o + pc->len > cap)
                return -1;
            memcpy(out + o, pc->lit, pc->len);
            o += pc->len;
            continue;
        }
        const proxy_span *v = (size_t)pc->param < m->n ? &m->v[pc->param] : NULL;
        long w = v ? normalise(v->p, v->n, glob, out + o, cap - o) : 0;
        if (w < 0)
            return -1;
        o += (size_t)w;
    }
    if (o >= cap)
        return -1;
    out[o] = '\0';
    return (long)o;
}
