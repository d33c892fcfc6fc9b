/* http_cache_cond.c: validation and the headers around it: what is stored (RFC 9111 §3.1),
 * the validators sent to the origin and what its 304 updates (§4.3), a client's conditional
 * request answered from the cache (RFC 9110 §13), and the URIs an unsafe method invalidates
 * (RFC 9111 §4.4).
 *
 * Header results are arrays of (name, value) pointing into the caller's input, as upstream.h's
 * helpers do: nothing is copied or allocated, and hop-by-hop fields are recognised by the
 * upstream layer's one definition (upstream_hop_by_hop). */
#include <string.h>
#include <strings.h>

#include "proxy/http_cache_internal.h"

/* ---- what is stored ----------------------------------------------------------------------- */

int hc_headers_to_store(const upstream_header *h, size_t n, upstream_header *out, size_t cap)
{
    if ((!h && n) || (!out && cap))
        return HC_EINVAL;
    hc__span listed[HC_MAX_LISTED];
    int nlisted = hc__cc_listed(h, n, listed);
    if (nlisted < 0)
        return nlisted;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (!h[i].name || !h[i].value)
            return HC_EINVAL;
        if (upstream_hop_by_hop(h[i].name, h, n) || hc__span_listed(h[i].name, listed, nlisted))
            continue;
        if (count == cap)
            return HC_ENOSPACE;
        out[count++] = h[i];
    }
    return (int)count;
}

/* ---- revalidation with the origin --------------------------------------------------------- */

int hc_validators(const hc_facts *f, upstream_header *out, size_t cap)
{
    size_t count = 0;
    if (f->flags & HC_F_ETAG) {
        if (count == cap)
            return HC_ENOSPACE;
        out[count++] = (upstream_header){"If-None-Match", f->etag};
    }
    if ((f->flags & HC_F_LAST_MODIFIED) && f->last_mod_text[0]) {
        if (count == cap)
            return HC_ENOSPACE;
        out[count++] = (upstream_header){"If-Modified-Since", f->last_mod_text};
    }
    return (int)count;
}

static int facts_etag(const hc_facts *f, hc_etag *e)
{
    return (f->flags & HC_F_ETAG) && hc_etag_parse(f->etag, strlen(f->etag), e) == 0;
}

int hc_304_selects(const hc_facts *stored, const hc_facts *upd)
{
    hc_etag a, b;
    if (upd->flags & HC_F_ETAG) {
        if (!facts_etag(upd, &b) || !facts_etag(stored, &a))
            return 0;
        return b.weak ? hc_etag_weak_eq(&a, &b) : hc_etag_strong_eq(&a, &b);
    }
    if (upd->flags & HC_F_LAST_MODIFIED)
        return (stored->flags & HC_F_LAST_MODIFIED) && stored->last_mod == upd->last_mod;
    return !(stored->flags & (HC_F_ETAG | HC_F_LAST_MODIFIED));
}

/* A field a 304 may update (§3.2). */
static int updatable(const char *name, const upstream_header *upd, size_t nupd,
                     const hc__span *listed, int nlisted)
{
    return !upstream_hop_by_hop(name, upd, nupd) && strcasecmp(name, "content-length") != 0 &&
           strcasecmp(name, "content-encoding") != 0 && strcasecmp(name, "content-range") != 0 &&
           !hc__span_listed(name, listed, nlisted);
}

int hc_merge_304(const upstream_header *stored, size_t nstored, const upstream_header *upd,
                 size_t nupd, upstream_header *out, size_t cap)
{
    if ((!stored && nstored) || (!upd && nupd) || (!out && cap))
        return HC_EINVAL;
    hc__span listed[2 * HC_MAX_LISTED];
    int a = hc__cc_listed(stored, nstored, listed);
    if (a < 0)
        return a;
    int b = hc__cc_listed(upd, nupd, listed + a);
    if (b < 0)
        return b;
    int nlisted = a + b;
    size_t count = 0;
    for (size_t i = 0; i < nstored; i++) {
        int replaced = 0;
        for (size_t j = 0; j < nupd && !replaced; j++)
            replaced = strcasecmp(stored[i].name, upd[j].name) == 0 &&
                       updatable(upd[j].name, upd, nupd, listed, nlisted);
        if (replaced)
            continue;
        if (count == cap)
            return HC_ENOSPACE;
        out[count++] = stored[i];
    }
    for (size_t j = 0; j < nupd; j++) {
        if (!updatable(upd[j].name, upd, nupd, listed, nlisted))
            continue;
        if (count == cap)
            return HC_ENOSPACE;
        out[count++] = upd[j];
    }
    return (int)count;
}

/* ---- a client's conditional request ------------------------------------------------------- */

/* Does any line of field `name` list an entity tag matching f's (or `*`)? strong: the strong
 * comparison. Returns -1 when the field is absent, else 1 or 0. */
static int etag_list_matches(const upstream_header *h, size_t n, const char *name,
                             const hc_facts *f, int strong)
{
    hc_etag mine, theirs;
    int have = facts_etag(f, &mine), present = 0;
    for (size_t i = 0; i < n; i++) {
        if (!h[i].name || !h[i].value || strcasecmp(h[i].name, name) != 0)
            continue;
        present = 1;
        const char *p = h[i].value, *end = p + strlen(p);
        hc__span e;
        while (hc__list_next(&p, end, &e)) {
            if (e.len == 1 && e.p[0] == '*')
                return 1; /* a current representation exists: the stored one */
            if (!have || hc_etag_parse(e.p, e.len, &theirs) != 0)
                continue;
            if (strong ? hc_etag_strong_eq(&mine, &theirs) : hc_etag_weak_eq(&mine, &theirs))
                return 1;
        }
    }
    return present ? 0 : -1;
}

/* A request date field, or -1 when absent or invalid. */
static int date_field(const upstream_header *h, size_t n, const char *name, int64_t now,
                      int64_t *out)
{
    const char *v = hc__header(h, n, name);
    return v && hc_date_parse(v, strlen(v), now, out) == 0 ? 0 : -1;
}

int hc_client_conditional(const upstream_header *req, size_t nreq, int method, const hc_facts *f,
                          int64_t now)
{
    int get_head = method == HC_M_GET || method == HC_M_HEAD;
    int64_t t;
    /* RFC 9110 §13.2.2 step 1 and 2 */
    int m = etag_list_matches(req, nreq, "if-match", f, 1);
    if (m == 0)
        return HC_COND_FAILED;
    if (m < 0 && date_field(req, nreq, "if-unmodified-since", now, &t) == 0 &&
        (f->flags & HC_F_LAST_MODIFIED) && f->last_mod > t)
        return HC_COND_FAILED;
    /* step 3: If-None-Match, weak comparison */
    m = etag_list_matches(req, nreq, "if-none-match", f, 0);
    if (m == 1)
        return get_head ? HC_COND_NOT_MOD : HC_COND_FAILED;
    /* step 4: If-Modified-Since, only without If-None-Match, only for GET and HEAD; a stored
     * response without Last-Modified is compared by its Date (RFC 9111 §4.3.2) */
    if (m < 0 && get_head && date_field(req, nreq, "if-modified-since", now, &t) == 0 && t <= now) {
        int64_t lm = (f->flags & HC_F_LAST_MODIFIED) ? f->last_mod : f->date;
        if (lm <= t)
            return HC_COND_NOT_MOD;
    }
    return HC_COND_FULL;
}

/* ---- unsafe methods: invalidation --------------------------------------------------------- */

typedef struct origin {
    const char *scheme;
    size_t scheme_len;
    const char *host;
    size_t host_len;
    unsigned port;
} origin;

/* host[:port] (userinfo dropped, brackets kept), with the scheme's default port. Returns 0 or -1
 * on a port that is not a number. */
static int parse_authority(const char *a, size_t len, const char *scheme, size_t scheme_len,
                           origin *o)
{
    const char *at = memchr(a, '@', len);
    if (at) {
        len -= (size_t)(at + 1 - a);
        a = at + 1;
    }
    const char *colon = NULL;
    for (size_t i = len; i > 0; i--) {
        if (a[i - 1] == ']')
            break;
        if (a[i - 1] == ':') {
            colon = a + i - 1;
            break;
        }
    }
    o->scheme = scheme;
    o->scheme_len = scheme_len;
    o->host = a;
    o->host_len = colon ? (size_t)(colon - a) : len;
    o->port = hc__ieq(scheme, scheme_len, "https") ? 443 : 80;
    if (colon && colon + 1 < a + len) {
        unsigned p = 0;
        for (const char *c = colon + 1; c < a + len; c++) {
            if (*c < '0' || *c > '9' || p > 65535)
                return -1;
            p = p * 10 + (unsigned)(*c - '0');
        }
        o->port = p;
    }
    return 0;
}

static int same_origin(const origin *a, const origin *b)
{
    return a->scheme_len == b->scheme_len &&
           strncasecmp(a->scheme, b->scheme, a->scheme_len) == 0 && a->host_len == b->host_len &&
           strncasecmp(a->host, b->host, a->host_len) == 0 && a->port == b->port;
}

/* RFC 3986 §5.2.4 on p[0..len) (starting with '/'), in place. Returns the new length. */
static size_t remove_dots(char *p, size_t len)
{
    size_t o = 0, i = 0;
    while (i < len) {
        size_t seg = i + 1, q = seg;
        while (q < len && p[q] != '/')
            q++;
        size_t sl = q - seg;
        if (sl == 1 && p[seg] == '.') {
            if (q == len)
                p[o++] = '/';
        } else if (sl == 2 && p[seg] == '.' && p[seg + 1] == '.') {
            while (o > 0 && p[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
            if (q == len)
                p[o++] = '/';
        } else {
            p[o++] = '/';
            memmove(p + o, p + seg, sl);
            o += sl;
        }
        i = q;
    }
    if (o == 0)
        p[o++] = '/';
    return o;
}

typedef struct sink {
    char *buf;
    size_t cap, len;
} sink;

/* Appends parts to the sink as one NUL-terminated string (path then query), dot segments removed
 * from the path. Returns its start, or NULL when out of room. */
static const char *emit(sink *s, const char *dir, size_t dir_len, const char *path, size_t path_len,
                        const char *query, size_t query_len)
{
    size_t need = 1 + dir_len + path_len + query_len + 2;
    if (s->cap - s->len < need)
        return NULL;
    char *start = s->buf + s->len, *w = start;
    if ((dir_len ? dir[0] : path_len ? path[0] : '/') != '/')
        *w++ = '/';
    memcpy(w, dir, dir_len);
    w += dir_len;
    memcpy(w, path, path_len);
    w += path_len;
    size_t plen = remove_dots(start, (size_t)(w - start));
    w = start + plen;
    memcpy(w, query, query_len);
    w += query_len;
    *w++ = '\0';
    s->len += (size_t)(w - start);
    return start;
}

/* Resolves ref against the target (base origin bo, path base_path, query base_query) and emits
 * its path and query when it has the same origin. Returns the string, NULL when not the same
 * origin or not a reference; *nospace set when out of room. */
static const char *resolve(sink *s, const origin *bo, const char *base_path, size_t bp_len,
                           const char *base_query, size_t bq_len, const char *ref, int *nospace)
{
    size_t len = strlen(ref);
    while (len && (ref[0] == ' ' || ref[0] == '\t')) {
        ref++;
        len--;
    }
    while (len && (ref[len - 1] == ' ' || ref[len - 1] == '\t'))
        len--;
    const char *hash = memchr(ref, '#', len);
    if (hash)
        len = (size_t)(hash - ref);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)ref[i] <= 0x20 || ref[i] == 0x7f)
            return NULL; /* not a URI reference */
    const char *p = ref, *end = ref + len;
    /* a scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" before any '/', '?' */
    const char *c = p;
    while (c < end &&
           ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
            (c > p && ((*c >= '0' && *c <= '9') || *c == '+' || *c == '-' || *c == '.'))))
        c++;
    origin ro = *bo;
    int has_authority = 0;
    if (c > p && c < end && *c == ':') {
        ro.scheme = p;
        ro.scheme_len = (size_t)(c - p);
        p = c + 1;
        if (end - p < 2 || p[0] != '/' || p[1] != '/')
            return NULL; /* "mailto:x", "http:x": not a same-origin http URI */
    }
    if (end - p >= 2 && p[0] == '/' && p[1] == '/') {
        p += 2;
        const char *a = p;
        while (p < end && *p != '/' && *p != '?')
            p++;
        if (parse_authority(a, (size_t)(p - a), ro.scheme, ro.scheme_len, &ro) != 0)
            return NULL;
        has_authority = 1;
    }
    if (!same_origin(&ro, bo))
        return NULL;
    const char *q = memchr(p, '?', (size_t)(end - p));
    size_t path_len = (size_t)((q ? q : end) - p);
    const char *query = q ? q : "";
    size_t query_len = q ? (size_t)(end - q) : 0;
    const char *r;
    if (has_authority || (path_len && p[0] == '/')) {
        r = emit(s, "", 0, p, path_len, query, query_len);
    } else if (path_len == 0) { /* "" or "?q": the base path, the ref's query or the base's */
        r = q ? emit(s, "", 0, base_path, bp_len, query, query_len)
              : emit(s, "", 0, base_path, bp_len, base_query, bq_len);
    } else { /* a relative path: merged with the base's directory (§5.2.3) */
        size_t dir = bp_len;
        while (dir > 0 && base_path[dir - 1] != '/')
            dir--;
        r = emit(s, base_path, dir, p, path_len, query, query_len);
    }
    if (!r)
        *nospace = 1;
    return r;
}

int hc_invalidations(int method, int status, const char *scheme, const char *authority,
                     const char *target, const char *location, const char *content_location,
                     const char *out[3], char *buf, size_t cap)
{
    if (!scheme || !authority || !target || !out || (!buf && cap))
        return HC_EINVAL;
    /* §4.4: unsafe methods (and those of unknown safety), non-error statuses */
    if (hc_method_safe(method) || status < 200 || status >= 400)
        return 0;
    origin bo;
    if (parse_authority(authority, strlen(authority), scheme, strlen(scheme), &bo) != 0)
        return HC_EINVAL;
    size_t tlen = strlen(target);
    const char *hash = memchr(target, '#', tlen);
    if (hash)
        tlen = (size_t)(hash - target);
    const char *tq = memchr(target, '?', tlen);
    size_t bp_len = (size_t)((tq ? tq : target + tlen) - target);
    size_t bq_len = tq ? (size_t)(target + tlen - tq) : 0;
    sink s = {buf, cap, 0};
    int count = 0, nospace = 0;
    const char *t = emit(&s, "", 0, target, bp_len, tq ? tq : "", bq_len);
    if (!t)
        return HC_ENOSPACE;
    out[count++] = t;
    const char *refs[2] = {location, content_location};
    for (int i = 0; i < 2; i++) {
        if (!refs[i])
            continue;
        size_t mark = s.len;
        const char *r = resolve(&s, &bo, target, bp_len, tq ? tq : "", bq_len, refs[i], &nospace);
        if (nospace)
            return HC_ENOSPACE;
        if (!r)
            continue;
        int dup = 0;
        for (int k = 0; k < count && !dup; k++)
            dup = strcmp(out[k], r) == 0;
        if (dup)
            s.len = mark; /* the same URI twice: once is enough */
        else
            out[count++] = r;
    }
    return count;
}
