/* kv_io.c: what the key/value routes read from a request and how they answer it (kv_io.h).
 *
 * One description of a value (ETag, X-Cache, Age, Cache-Control, Content-Type, X-Cache-Error),
 * of a miss and of a write's outcome, whichever route answers: a plain GET, a waiter of the lease
 * protocol, a PUT, a lease's fill. And what a request makes of its key (?window=) and of a
 * write's parameters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "kv_io.h"

strata_key kv_key_of(req *q)
{
    strata_key k = {q->r.ns, q->tenant, q->r.key, q->r.key_len};
    return k;
}

static void header_u64(req *q, const char *name, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    add_header(q, name, buf);
}

/* Cache-Control of an answer: max-age=0 for a stale one (past its TTL, or a copy kept after a
 * failed refresh); else its lifetime (created to expires: with Age beside it, a downstream cache
 * computes what is left as RFC 9111 §4.2 says, max-age - Age), with the windows it may use (RFC
 * 5861) when the value has them. Nothing for a value that never expires. */
static void cache_control(req *q, const strata_value *v, int stale)
{
    uint64_t expires = strata_value_expires_ms(v), created = strata_value_created_ms(v);
    if (expires == 0)
        return;
    uint64_t life = expires > created ? (expires - created) / 1000 : 0;
    char cc[128];
    int n = snprintf(cc, sizeof cc, "max-age=%llu", stale ? 0ull : (unsigned long long)life);
    uint64_t grace = strata_value_grace_ms(v) / 1000,
             sie = strata_value_stale_if_error_ms(v) / 1000;
    if (!stale && grace > 0)
        n += snprintf(cc + n, sizeof cc - (size_t)n, ", stale-while-revalidate=%llu",
                      (unsigned long long)grace);
    if (!stale && sie > 0)
        snprintf(cc + n, sizeof cc - (size_t)n, ", stale-if-error=%llu", (unsigned long long)sie);
    add_header(q, "Cache-Control", cc);
}

void kv_send_value(req *q, strata_value *v, const char *tier, const char *label)
{
    char etag[20];
    uint64_t now = strata_now_ms();
    unsigned flags = strata_value_flags(v);
    if (flags & STRATA_VALUE_STALE) /* kept after a failed refresh: stale data, whoever asks */
        label = "STALE";
    int stale = strcmp(label, "STALE") == 0;
    q->tier = tier;
    codec_etag(v, etag);
    add_header(q, "ETag", etag);
    add_header(q, "X-Cache", label);
    uint64_t created = strata_value_created_ms(v);
    header_u64(q, "Age", now > created ? (now - created) / 1000 : 0);
    cache_control(q, v, stale);
    if (stale)
        metrics_count(q->w->metrics, METRICS_STALE);
    /* A client must be able to tell a cached failure from a result without reading the body. */
    if (flags & STRATA_VALUE_ERROR) {
        add_header(q, "X-Cache-Error", "1");
        metrics_count(q->w->metrics, METRICS_NEGATIVE);
    }
    if (codec_etag_listed(get_header(q, "If-None-Match"), etag)) {
        strata_value_release(v);
        reply_empty(q, 304);
        return;
    }
    const char *ct = strata_value_content_type(v);
    add_header(q, "Content-Type", ct[0] ? ct : "application/octet-stream");
    reply_value(q, 200, v);
}

void kv_send_miss(req *q, int reason)
{
    q->tier = "miss";
    add_header(q, "X-Cache", "MISS");
    add_reason(q, reason); /* a miss of this instance's memory: Redis was not asked */
    reply_error(q, 404, "not_found", "no such key");
}

void kv_on_written(int status, void *arg)
{
    req *q = arg;
    if (status == STRATA_OK_L1_ONLY) {
        add_header(q, "X-Cache-Write", "l1-only");
        add_reason(q, strata_fallback_reason());
    }
    if (status == STRATA_OK || status == STRATA_OK_L1_ONLY)
        reply_empty(q, 204);
    else
        reply_status(q, status);
}

/* ?tags=: 1 to 32 names. Returns 0, or answers 400 and returns -1. */
static int put_tags(req *q, kv_put_opts *p, const char *tags)
{
    int n = -1;
    if (strlen(tags) < sizeof p->tagbuf) {
        strcpy(p->tagbuf, tags);
        n = codec_split_tags(p->tagbuf, p->tags, STRATA_TAGS_MAX_PER_ENTRY);
    }
    if (n < 0) {
        reply_error(q, 400, "bad_tags", "tags must be 1 to 32 non-empty names, comma-separated");
        return -1;
    }
    p->opts.tags = p->tags;
    p->opts.ntags = (size_t)n;
    return 0;
}

/* X-Cache-Error: 1 stores the body as an error result (the namespace's error TTL applies, or the
 * write's own TTL when shorter); 0 or no header, a result. */
static int put_error_flag(req *q, kv_put_opts *p)
{
    const char *e = get_header(q, "X-Cache-Error");
    if (e == NULL || strcmp(e, "0") == 0)
        return 0;
    if (strcmp(e, "1") != 0) {
        reply_error(q, 400, "bad_request", "X-Cache-Error must be 1 or 0");
        return -1;
    }
    p->opts.flags |= STRATA_VALUE_ERROR;
    return 0;
}

/* Bytes a URL path segment keeps as they are: RFC 3986's unreserved, and ':' and '@' (a
 * windowed key's separator stays readable). */
static int segment_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           strchr("-._~:@", c) != NULL;
}

int kv_window(req *q, uint64_t *left_ms)
{
    *left_ms = 0;
    const char *w = get_query(q, "window");
    if (w == NULL)
        return 0;
    uint64_t ms;
    if (codec_seconds(w, 1000, KV_WINDOW_MAX_MS, &ms) != 0) {
        reply_error(q, 400, "bad_window",
                    "window must be seconds from 1 to 31536000 (a year), fractions to the "
                    "millisecond allowed");
        return -1;
    }
    char wk[ROUTE_KEY_MAX + 32];
    size_t n;
    if (strata_key_window(q->r.key, q->r.key_len, ms, strata_now_ms(), wk, sizeof wk, &n,
                          left_ms) != 0 ||
        n > q->w->srv->cfg.cache.l1.max_key_len) {
        reply_error(q, 414, "key_too_long",
                    "the key with its window (@N) is longer than the limit");
        return -1;
    }
    memcpy(q->r.key, wk, n);
    q->r.key[n] = '\0';
    q->r.key_len = n;
    static const char hex[] = "0123456789ABCDEF";
    char enc[3 * sizeof wk + 1], *e = enc;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)wk[i];
        if (segment_char(c)) {
            *e++ = (char)c;
        } else {
            *e++ = '%', *e++ = hex[c >> 4], *e++ = hex[c & 15];
        }
    }
    *e = '\0';
    add_header(q, "X-Cache-Key", enc);
    return 0;
}

/* ?grace=, ?stale_if_error=, ?beta=, ?compute_time=. Returns 0, or answers 400 and returns -1. */
static int put_freshness(req *q, kv_put_opts *p)
{
    const char *grace = get_query(q, "grace"), *sie = get_query(q, "stale_if_error");
    const char *beta = get_query(q, "beta"), *compute = get_query(q, "compute_time");
    if (grace == NULL && sie == NULL && beta == NULL && compute == NULL)
        return 0;
    if (grace != NULL) {
        if (codec_seconds(grace, 0, STRATA_STALE_MAX_MS, &p->opts.grace_ms) != 0) {
            reply_error(q, 400, "bad_grace", "grace must be " KV_STALE_RANGE);
            return -1;
        }
        p->opts.flags |= STRATA_SET_EXACT_GRACE; /* ?grace=0: none, whatever the namespace's */
    }
    if (sie != NULL) {
        if (codec_seconds(sie, 0, STRATA_STALE_MAX_MS, &p->opts.stale_if_error_ms) != 0) {
            reply_error(q, 400, "bad_stale_if_error", "stale_if_error must be " KV_STALE_RANGE);
            return -1;
        }
        p->opts.flags |= STRATA_SET_EXACT_STALE_IF_ERROR;
    }
    if (beta != NULL) {
        char *end;
        double b = strtod(beta, &end);
        if (*beta < '0' || *beta > '9' || *end != '\0' || !(b >= 0 && b <= STRATA_BETA_MAX)) {
            reply_error(q, 400, "bad_beta", "beta must be a number from 0 to 100 (0: never early)");
            return -1;
        }
        p->opts.beta = b > 0 ? b : -1; /* the library's 0 is the namespace's */
    }
    if (compute != NULL) {
        if (codec_seconds(compute, 0, KV_COMPUTE_MAX_MS, &p->opts.compute_ms) != 0) {
            reply_error(q, 400, "bad_compute_time",
                        "compute_time must be seconds from 0 to 86400, fractions to the "
                        "millisecond allowed");
            return -1;
        }
        p->compute_given = 1;
    }
    return 0;
}

int kv_put_options(req *q, kv_put_opts *p, uint64_t window_left_ms)
{
    const char *ttl = get_query(q, "ttl"), *tags = get_query(q, "tags");
    if (ttl != NULL && codec_ttl(ttl, &p->opts.ttl_ms) != 0) {
        reply_error(q, 400, "bad_ttl", "ttl must be " CODEC_TTL_RANGE);
        return -1;
    }
    if (ttl == NULL && codec_max_age(get_header(q, "Cache-Control"), &p->opts.ttl_ms) != 0) {
        reply_error(q, 400, "bad_ttl", "Cache-Control max-age must be " CODEC_TTL_RANGE);
        return -1;
    }
    if (p->opts.ttl_ms == 0 && window_left_ms != 0) { /* gone when its window ends */
        p->opts.ttl_ms = window_left_ms;
        p->opts.flags |= STRATA_SET_NO_JITTER;
    }
    if (tags != NULL && put_tags(q, p, tags) != 0)
        return -1;
    if (put_freshness(q, p) != 0)
        return -1;
    const char *ct = get_header(q, "Content-Type");
    if (ct != NULL) {
        if (strlen(ct) > STRATA_CONTENT_TYPE_MAX) {
            reply_error(q, 400, "bad_content_type", "Content-Type is longer than 255 bytes");
            return -1;
        }
        strcpy(p->ctype, ct);
        p->opts.content_type = p->ctype;
    }
    if (put_error_flag(q, p) != 0)
        return -1;
    if (codec_etag_listed(get_header(q, "If-None-Match"), "\"*\"") ||
        (get_header(q, "If-None-Match") && strcmp(get_header(q, "If-None-Match"), "*") == 0))
        p->opts.flags |= STRATA_SET_NX;
    return 0;
}
