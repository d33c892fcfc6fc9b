/* route.c: matching a path against the route table (routes.h), and the checks on what a path
 * carries.
 *
 * Routes are matched on the raw path, segment by segment, before anything is decoded, so an
 * encoded '/' (%2F) inside a key stays part of the key instead of splitting the path. Then each
 * parameter is percent-decoded strictly and checked: namespaces are names (key.h), keys must be
 * valid UTF-8 without control characters and at most the key limit in bytes (DESIGN.md: over
 * HTTP a key is text; binary keys are for the library). Anything else is a clear 4xx, never a
 * truncated or "repaired" key.
 */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "route.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long route_percent_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

static int utf8_check(const char *s, size_t n, int controls_ok)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        if ((c < 0x20 || c == 0x7f) && !controls_ok)
            return 0;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t len;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf)
            len = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            len = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            len = 4, cp = c & 0x07;
        else
            return 0;
        if ((size_t)(end - p) < len)
            return 0;
        for (size_t i = 1; i < len; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0x80 && cp <= 0x9f && !controls_ok))
            return 0; /* overlong, surrogate, out of range, or a C1 control */
        p += len;
    }
    return 1;
}

int route_text_ok(const char *s, size_t n)
{
    return utf8_check(s, n, 0);
}

int route_utf8_ok(const char *s, size_t n)
{
    return utf8_check(s, n, 1);
}

enum { SEG_MAX = 5 }; /* path segments a route may have */

static int seg_is(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* Splits path into at most max segments (pointers into path, lengths); returns the count, or
 * -1 when there are more, an empty segment, or no leading '/'. */
static inline int split(const char *path, const char **seg, size_t *len, int max)
{
    if (path[0] != '/')
        return -1;
    int n = 0;
    const char *p = path + 1;
    if (*p == '\0')
        return 0;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t l = slash ? (size_t)(slash - p) : strlen(p);
        if (l == 0 || n == max)
            return -1;
        seg[n] = p;
        len[n++] = l;
        if (slash == NULL)
            return n;
        p = slash + 1;
    }
}

/* ---- the table ---------------------------------------------------------------------------- */

enum seg_kind { SEG_LITERAL, SEG_NS, SEG_KEY };

/* A segment of a row's pattern: where it is, and its text when it is a literal. */
typedef struct seg_def {
    const char *lit;
    size_t len;
    int at, kind;
} seg_def;

/* A row of routes.h with its pattern split once (compile): matching a request compares segment
 * counts, then the literal segments, last first (where rows sharing a prefix differ: _mget,
 * _mset), without parsing a pattern again. */
typedef struct row {
    const char *name, *pattern;
    unsigned methods;
    int role;
    unsigned flags;
    int nseg, nlit, nparam;
    seg_def lit[SEG_MAX], param[SEG_MAX];
} row;

#define ROUTE_ROW(id, name, methods, pattern, role, flags, handler)                                \
    [R_##id] = {name, pattern, methods, role, flags, 0, 0, 0, {{0}}, {{0}}},
static row rows[R_COUNT] = {
    [R_NOT_FOUND] = {"not_found", NULL, 0, RR_ADMIN, 0, -1, 0, 0, {{0}}, {{0}}},
    STRATA_ROUTES(ROUTE_ROW)[R_PROXY] = {"proxy", NULL, 0, RR_NONE, 0, -1, 0, 0, {{0}}, {{0}}},
    [R_PURGE_URL] = {"purge_url", NULL, 0, RR_WRITE, 0, -1, 0, 0, {{0}}, {{0}}},
    [R_LLM] = {"llm", NULL, 0, RR_NONE, 0, -1, 0, 0, {{0}}, {{0}}}};
#undef ROUTE_ROW
/* The rows with n segments, in table order, 0-terminated: a request looks at those alone. */
_Static_assert(R_COUNT <= 255, "route ids fit the by_count table");
static unsigned char by_count[SEG_MAX + 1][R_COUNT];
static pthread_once_t compiled = PTHREAD_ONCE_INIT;

static void compile_row(int id)
{
    row *r = &rows[id];
    const char *seg[SEG_MAX];
    size_t len[SEG_MAX];
    r->nseg = split(r->pattern, seg, len, SEG_MAX);
    assert(r->nseg > 0); /* a pattern is "/" and segments */
    for (int i = r->nseg - 1; i >= 0; i--) {
        int kind = seg_is(seg[i], len[i], "{ns}")    ? SEG_NS
                   : seg_is(seg[i], len[i], "{key}") ? SEG_KEY
                                                     : SEG_LITERAL;
        seg_def d = {seg[i], len[i], i, kind};
        if (kind == SEG_LITERAL)
            r->lit[r->nlit++] = d;
        else
            r->param[r->nparam++] = d;
    }
    /* Parameters are decoded left to right (the first error found is the one reported). */
    for (int i = 0; i < r->nparam / 2; i++) {
        seg_def t = r->param[i];
        r->param[i] = r->param[r->nparam - 1 - i];
        r->param[r->nparam - 1 - i] = t;
    }
}

static void compile(void)
{
    int count[SEG_MAX + 1] = {0};
    for (int id = 1; id < R_PROXY; id++) {
        compile_row(id);
        by_count[rows[id].nseg][count[rows[id].nseg]++] = (unsigned char)id;
    }
}

static void fail(route *r, const char *code, const char *msg)
{
    if (r->error == NULL) {
        r->error_code = code;
        r->error = msg;
    }
}

static void take_ns(route *r, const char *s, size_t n)
{
    long l = route_percent_decode(s, n, r->ns, sizeof r->ns);
    if (l <= 0 || strata_name_check(r->ns) != 0)
        fail(r, "bad_namespace", "namespace must be 1-64 characters of A-Z a-z 0-9 _ . -");
    else if (r->ns[0] == '_')
        fail(r, "reserved_namespace", "namespaces starting with _ are reserved (sessions)");
}

static void take_key(route *r, const char *s, size_t n, size_t key_max)
{
    long l = route_percent_decode(s, n, r->key, sizeof r->key);
    if (l < 0 && n > 3 * (key_max + 1)) {
        fail(r, "key_too_long", "key is longer than the limit");
        return;
    }
    if (l < 0) {
        fail(r, n > key_max ? "key_too_long" : "bad_key",
             n > key_max ? "key is longer than the limit" : "malformed percent-encoding in key");
        return;
    }
    r->key_len = (size_t)l;
    if (l == 0)
        fail(r, "bad_key", "key is empty");
    else if ((size_t)l > key_max)
        fail(r, "key_too_long", "key is longer than the limit");
    else if (!route_text_ok(r->key, (size_t)l))
        fail(r, "bad_key", "key must be valid UTF-8 without control characters");
}

/* 1 if the path's segments fit row r's literal segments (the counts are equal). */
static int fits(const row *r, const char **seg, const size_t *len)
{
    for (int i = 0; i < r->nlit; i++) {
        const seg_def *d = &r->lit[i];
        const char *s = seg[d->at];
        if (len[d->at] != d->len || s[0] != d->lit[0] || memcmp(s, d->lit, d->len) != 0)
            return 0;
    }
    return 1;
}

void route_none(route *r)
{
    /* Field by field, not memset: the key buffer is 4 KiB, and this runs for every request. */
    r->id = R_NOT_FOUND;
    r->methods = 0;
    r->role = RR_NONE;
    r->flags = 0;
    r->ns[0] = r->key[0] = '\0';
    r->key_len = 0;
    r->error = r->error_code = NULL;
}

void route_match(const char *path, size_t key_max, route *r)
{
    const char *seg[SEG_MAX];
    size_t len[SEG_MAX];
    pthread_once(&compiled, compile);
    route_none(r);
    int n = split(path, seg, len, SEG_MAX);
    if (n < 1)
        return;
    for (const unsigned char *id = by_count[n]; *id != 0; id++) {
        const row *w = &rows[*id];
        if (!fits(w, seg, len))
            continue;
        r->id = *id;
        r->methods = w->methods;
        r->role = w->role;
        r->flags = w->flags;
        for (int i = 0; i < w->nparam; i++) {
            const seg_def *d = &w->param[i];
            if (d->kind == SEG_NS)
                take_ns(r, seg[d->at], len[d->at]);
            else
                take_key(r, seg[d->at], len[d->at], key_max);
        }
        return;
    }
}

int route_error_status(const route *r)
{
    return r->error_code != NULL && strcmp(r->error_code, "key_too_long") == 0 ? 414 : 400;
}

const char *route_name(int id)
{
    return id > 0 && id < R_COUNT ? rows[id].name : "not_found";
}

void route_allow(unsigned methods, char *out, size_t cap)
{
    static const struct {
        unsigned bit;
        const char *name;
    } m[] = {{M_GET, "GET"},   {M_HEAD, "HEAD"},     {M_PUT, "PUT"},
             {M_POST, "POST"}, {M_DELETE, "DELETE"}, {M_PATCH, "PATCH"}};
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof m / sizeof *m; i++)
        if (methods & m[i].bit) {
            int k = snprintf(out + n, cap - n, "%s%s", n ? ", " : "", m[i].name);
            if (k < 0 || (size_t)k >= cap - n)
                return;
            n += (size_t)k;
        }
}
