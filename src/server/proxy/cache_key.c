/* cache_key.c: a proxied request's cache key, and its route's tags (cache_key.h).
 *
 * The key is written in one pass into the caller's buffer. As long as it fits in key_max it is
 * the key; the moment it would not, a SHA-256 is started over what was written and fed the rest,
 * and the key becomes its readable prefix, '#' and the digest: the buffer never holds more than
 * key_max bytes, and a request with a huge query costs its bytes once. Query parameters are
 * sorted as spans of the request, compared through their normalised form a byte at a time
 * (proxy_norm), so nothing is copied to sort them.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "cache_key.h"

typedef struct key_writer {
    char *out;
    size_t max, len, total; /* out holds the first len (<= max) of total bytes */
    EVP_MD_CTX *md;         /* started once total would pass max */
    int failed;
} key_writer;

static void put(key_writer *w, const char *s, size_t n)
{
    if (w->failed || n == 0)
        return;
    if (w->md == NULL && w->total + n > w->max) {
        w->md = EVP_MD_CTX_new();
        if (w->md == NULL || EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1 ||
            EVP_DigestUpdate(w->md, w->out, w->len) != 1) {
            w->failed = 1;
            return;
        }
    }
    if (w->md != NULL && EVP_DigestUpdate(w->md, s, n) != 1)
        w->failed = 1;
    size_t room = w->max - w->len, c = n < room ? n : room;
    memcpy(w->out + w->len, s, c);
    w->len += c;
    w->total += n;
}

static void put_str(key_writer *w, const char *s)
{
    put(w, s, strlen(s));
}

/* s[0..n) in its normalised percent-encoding. */
static void put_norm(key_writer *w, const char *s, size_t n)
{
    char buf[64];
    size_t o = 0;
    proxy_norm t;
    proxy_norm_init(&t, s, n);
    for (int c; (c = proxy_norm_next(&t)) >= 0;) {
        buf[o++] = (char)c;
        if (o == sizeof buf)
            put(w, buf, o), o = 0;
    }
    put(w, buf, o);
}

/* ---- query -------------------------------------------------------------------------------- */

typedef struct qparam {
    proxy_span name, value;
    int has_value;
} qparam;

/* <0, 0, >0 as a's normalised form sorts before, with or after b's. */
static int norm_cmp(proxy_span a, proxy_span b)
{
    proxy_norm x, y;
    proxy_norm_init(&x, a.p, a.n);
    proxy_norm_init(&y, b.p, b.n);
    for (;;) {
        int c = proxy_norm_next(&x), d = proxy_norm_next(&y);
        if (c != d || c < 0)
            return c - d;
    }
}

static int norm_is(proxy_span a, const char *s)
{
    return norm_cmp(a, (proxy_span){s, strlen(s)}) == 0;
}

static int qparam_cmp(const qparam *a, const qparam *b)
{
    int c = norm_cmp(a->name, b->name);
    if (c != 0)
        return c;
    if (a->has_value != b->has_value)
        return a->has_value - b->has_value;
    return norm_cmp(a->value, b->value);
}

/* 1 if the parameter named n is listed (names: sorted, normalised). */
static int listed(const proxy_key_spec *k, proxy_span n)
{
    for (size_t i = 0; i < k->nquery_names; i++)
        if (norm_is(n, k->query_names[i]))
            return 1;
    return 0;
}

static int put_query(key_writer *w, const proxy_key_spec *k, const char *q, size_t len)
{
    if (k->query == PROXY_QUERY_NONE || q == NULL)
        return 0;
    qparam ps[PROXY_QUERY_PARAMS_MAX];
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        const char *amp = memchr(q + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - q) : len;
        if (end > i) {
            const char *eq = memchr(q + i, '=', end - i);
            qparam p = {.name = {q + i, eq ? (size_t)(eq - (q + i)) : end - i}};
            if (eq != NULL)
                p.value = (proxy_span){eq + 1, (size_t)(q + end - (eq + 1))}, p.has_value = 1;
            int keep =
                k->query == PROXY_QUERY_ALL || (k->query == PROXY_QUERY_KEEP) == listed(k, p.name);
            if (keep) {
                if (n == PROXY_QUERY_PARAMS_MAX)
                    return -1;
                /* insertion sort: a few parameters, no allocation */
                size_t j = n++;
                while (j > 0 && qparam_cmp(&ps[j - 1], &p) > 0) {
                    ps[j] = ps[j - 1];
                    j--;
                }
                ps[j] = p;
            }
        }
        i = end + 1;
    }
    for (size_t i = 0; i < n; i++) {
        put(w, i == 0 ? "?" : "&", 1);
        put_norm(w, ps[i].name.p, ps[i].name.n);
        if (ps[i].has_value) {
            put(w, "=", 1);
            put_norm(w, ps[i].value.p, ps[i].value.n);
        }
    }
    return 0;
}

/* ---- headers ------------------------------------------------------------------------------ */

/* A header's value with its outer blanks trimmed; what is not printable ASCII, '%' and ' '
 * escaped (a key's parts are separated by spaces). */
static void put_header_value(key_writer *w, const char *v)
{
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    while (n > 0 && (*v == ' ' || *v == '\t'))
        v++, n--;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        char esc[4];
        if (c <= 0x20 || c >= 0x7f || c == '%') {
            snprintf(esc, sizeof esc, "%%%02X", c);
            put(w, esc, 3);
        } else {
            put(w, (const char *)&v[i], 1);
        }
    }
}

static void put_headers(key_writer *w, const proxy_key_spec *k, const proxy_key_request *q)
{
    for (size_t i = 0; i < k->nheaders; i++) {
        put_str(w, " h:");
        put_str(w, k->headers[i]);
        int seen = 0;
        for (size_t j = 0; j < q->nheaders; j++) {
            if (q->headers[j].name == NULL || q->headers[j].value == NULL ||
                strcasecmp(q->headers[j].name, k->headers[i]) != 0)
                continue;
            put(w, seen++ ? "," : "=", 1);
            put_header_value(w, q->headers[j].value);
        }
    }
}

/* ---- the key ------------------------------------------------------------------------------ */

static void put_path(key_writer *w, const proxy_route *r, const proxy_params *m,
                     const proxy_key_request *q)
{
    if (!r->key.path_params_set) {
        put_norm(w, q->path, q->path_len);
        return;
    }
    const proxy_pattern *p = &r->match.path;
    for (size_t i = 0; i < p->nseg; i++) {
        const proxy_segment *g = &p->seg[i];
        put(w, "/", 1);
        if (g->param < 0)
            put_norm(w, g->lit, g->len);
        else if ((r->key.path_params >> g->param) & 1)
            put_norm(w, m->v[g->param].p, m->v[g->param].n);
        else
            put_str(w, "{"), put_str(w, p->names[g->param]), put_str(w, "}");
    }
    if (p->nseg == 0 && !p->wildcard)
        put(w, "/", 1);
    if (p->wildcard && m->rest.p != NULL && m->rest.n > 0) {
        put(w, "/", 1);
        put_norm(w, m->rest.p, m->rest.n);
    }
}

long proxy_cache_key(const proxy_route *r, const proxy_params *m, const proxy_key_request *q,
                     size_t key_max, char *out, size_t cap)
{
    if (key_max < PROXY_KEY_MIN || cap < key_max + 1 || q->method == NULL)
        return -1;
    key_writer w = {.out = out, .max = key_max};
    put_str(&w, strcmp(q->method, "HEAD") == 0 ? "GET" : q->method);
    put(&w, " ", 1);
    if (q->host != NULL)
        for (const char *h = q->host; *h; h++) {
            char c = (char)(*h >= 'A' && *h <= 'Z' ? *h + 32 : *h);
            put(&w, &c, 1);
        }
    put_path(&w, r, m, q);
    size_t prefix = w.total; /* METHOD SP host path: what a hashed key keeps */
    int rc = put_query(&w, &r->key, q->query, q->query_len);
    put_headers(&w, &r->key, q);
    if (r->key.window_s > 0) {
        char win[32];
        snprintf(win, sizeof win, " w:%llu", (unsigned long long)(q->now_s / r->key.window_s));
        put_str(&w, win);
    }
    if (w.md != NULL) {
        unsigned char d[32];
        unsigned dn = 0;
        if (!w.failed && EVP_DigestFinal_ex(w.md, d, &dn) == 1 && dn == 32) {
            static const char hex[] = "0123456789abcdef";
            size_t at =
                prefix < key_max - PROXY_KEY_HASH_LEN ? prefix : key_max - PROXY_KEY_HASH_LEN;
            out[at] = '#';
            for (int i = 0; i < 32; i++) {
                out[at + 1 + 2 * i] = hex[d[i] >> 4];
                out[at + 2 + 2 * i] = hex[d[i] & 15];
            }
            w.len = at + PROXY_KEY_HASH_LEN;
        } else {
            w.failed = 1;
        }
        EVP_MD_CTX_free(w.md);
    }
    if (w.failed || rc != 0)
        return -1;
    out[w.len] = '\0';
    return (long)w.len;
}

/* ---- tags --------------------------------------------------------------------------------- */

long proxy_route_tag(const proxy_route *r, size_t i, const proxy_params *m, char *out, size_t cap)
{
    if (i >= r->ntags)
        return -1;
    return proxy_template_expand(&r->tags[i], m, PROXY_EXPAND_TEXT, out, cap);
}

long proxy_invalidation_tag(const proxy_invalidation *v, size_t i, const proxy_params *m, char *out,
                            size_t cap)
{
    if (i >= v->ntags)
        return -1;
    return proxy_template_expand(&v->tags[i], m, PROXY_EXPAND_TEXT, out, cap);
}

long proxy_invalidation_key(const proxy_invalidation *v, size_t i, const proxy_params *m, char *out,
                            size_t cap)
{
    if (i >= v->nkeys)
        return -1;
    return proxy_template_expand(&v->keys[i], m, PROXY_EXPAND_GLOB, out, cap);
}
