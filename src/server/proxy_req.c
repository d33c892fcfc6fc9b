/* proxy_req.c: a proxied request's state and its answers: what every step of the flow (proxy.c),
 * the exchange with the origin (proxy_fetch.c) and the store (proxy_store.c) share: the keys it
 * looks up, the answer from a stored record or an error made here, with X-Cache, Cache-Status
 * and Age, counted per route, and the end of the request's state.
 */
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proxy_internal.h"

int64_t proxy_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

uint64_t proxy_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void proxy_req_free(proxy_req *px)
{
    if (px->hooks != NULL && px->hooks->free != NULL)
        px->hooks->free(px);
    if (px->q != NULL)
        px->q->px = NULL;
    if (px->background)
        px->w->proxy_background--;
    strata_value_release(px->found);
    free(px->head);
    free(px->vary);
    free(px->buf);
    free(px->location);
    free(px->content_location);
    free(px->target_path);
    free(px->detached);
    proxy_model_unref(px->model);
    free(px);
}

/* ---- answers ------------------------------------------------------------------------------ */

static const char *const xcache_tier[] = {
    [HC_XC_HIT_L1] = "l1",   [HC_XC_HIT_L2] = "l2",        [HC_XC_HIT_COALESCED] = "l2",
    [HC_XC_STALE] = "l1",    [HC_XC_REVALIDATED] = "miss", [HC_XC_MISS] = "miss",
    [HC_XC_BYPASS] = "miss",
};

/* The route's counters for an answer of kind x with body_len bytes from the cache. */
void proxy_count_answer(proxy_req *px, int x, size_t body_len)
{
    proxy_route_stats *st = proxy_stats_of(px->model, px->route);
    _Atomic uint64_t *c = x == HC_XC_HIT_L1 || x == HC_XC_HIT_L2 ? &st->hits
                          : x == HC_XC_HIT_COALESCED             ? &st->coalesced
                          : x == HC_XC_STALE                     ? &st->stale
                          : x == HC_XC_REVALIDATED               ? &st->revalidated
                          : x == HC_XC_BYPASS                    ? &st->bypass
                                                                 : &st->misses;
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
    if (x != HC_XC_MISS && x != HC_XC_BYPASS)
        atomic_fetch_add_explicit(&st->bytes_saved, body_len, memory_order_relaxed);
}

void proxy_cache_headers(proxy_req *px, int x, const hc_facts *f, int fwd_status, int stored)
{
    req *q = px->q;
    char cs[160];
    hc_cache_status st = {.xcache = x,
                          .fwd_status = fwd_status,
                          .stored = stored,
                          .has_ttl = f != NULL,
                          .ttl = f ? hc_ttl(f, px->now) : 0,
                          .detail = x == HC_XC_STALE && fwd_status ? "stale-if-error" : NULL};
    add_header(q, "X-Cache", hc_xcache_name(x));
    if (hc_cache_status_format(&st, cs, sizeof cs) > 0)
        add_header(q, "Cache-Status", cs);
    q->tier = xcache_tier[x];
}

/* v in decimal into buf (24 bytes), NUL-terminated: no printf on a hit's path. */
static void decimal(char *buf, uint64_t v)
{
    char t[24];
    size_t n = sizeof t;
    do
        t[--n] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    memcpy(buf, t + n, sizeof t - n);
    buf[sizeof t - n] = '\0';
}

/* Hands q over to be answered: px no longer reaches it. */
req *proxy_take_client(proxy_req *px)
{
    req *q = px->q;
    px->q = NULL;
    q->px = NULL;
    q->on_writable = NULL;
    return q;
}

void proxy_answer_record(proxy_req *px, strata_value *v, const proxy_record *rec, int x,
                         int fwd_status, int stored)
{
    if (px->q == NULL) {
        strata_value_release(v);
        return;
    }
    if (px->hooks != NULL) {
        px->hooks->answer(px, v, rec, x, fwd_status, stored);
        return;
    }
    int cond = px->rq.flags & HC_RQ_CONDITIONAL
                   ? hc_client_conditional(px->hdr, px->nhdr, px->hmethod, &rec->facts, px->now)
                   : HC_COND_FULL;
    proxy_count_answer(px, x, rec->body_len);
    if (cond == HC_COND_FAILED) {
        strata_value_release(v);
        reply_error(proxy_take_client(px), 412, "precondition_failed",
                    "a precondition of the request failed against the cached response");
        return;
    }
    char age[24];
    decimal(age, (uint64_t)hc_current_age(&rec->facts, px->now));
    add_header_lines(px->q, rec->head, rec->head_len);
    add_header(px->q, "Age", age);
    proxy_cache_headers(px, x, &rec->facts, fwd_status, stored);
    req *q = proxy_take_client(px);
    if (cond == HC_COND_NOT_MOD) {
        strata_value_release(v);
        reply_empty(q, 304);
    } else if (v != NULL) {
        reply_value_part(q, rec->status, v, rec->body, rec->body_len);
    } else {
        reply_bytes(q, rec->status, rec->body, rec->body_len);
    }
}

void proxy_answer_error(proxy_req *px, int status, const char *code, const char *fmt, ...)
{
    if (px->q == NULL)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    proxy_count_answer(px, HC_XC_MISS, 0);
    proxy_cache_headers(px, HC_XC_MISS, NULL, 0, 0);
    if (px->hooks != NULL)
        px->hooks->error(px, status, code, msg);
    else
        reply_error(proxy_take_client(px), status, code, "%s", msg);
}

/* The key looked up now: the variant's once a Vary marker was found, else the primary. */
strata_key proxy_key_used(const proxy_req *px)
{
    strata_key k = {px->ns ? px->ns : PROXY_NS, px->tenant, px->vkey_len ? px->vkey : px->key,
                    px->vkey_len ? px->vkey_len : px->key_len};
    return k;
}

/* A variant's key: the primary key, PROXY_VARIANT and 32 hex digits of the SHA-256 of the
 * request's values of the fields the Vary marker names. Returns 0, or -1 when the request's
 * values cannot make one (too many fields, no room): the request then bypasses the cache. */
int proxy_variant_key(proxy_req *px, const char *vary, size_t vary_len)
{
    char names[PROXY_RECORD_VARY_MAX + 1], vk[8192];
    size_t vlen = 0;
    memcpy(names, vary, vary_len);
    names[vary_len] = '\0';
    upstream_header h = {"Vary", names};
    int rc = hc_vary_key(&h, 1, px->hdr, px->nhdr, vk, sizeof vk, &vlen);
    unsigned char md[SHA256_DIGEST_LENGTH];
    if (rc != HC_OK || px->key_len + strlen(PROXY_VARIANT) + 32 >= sizeof px->vkey)
        return -1;
    SHA256((const unsigned char *)vk, vlen, md);
    memcpy(px->vkey, px->key, px->key_len);
    size_t n = px->key_len;
    memcpy(px->vkey + n, PROXY_VARIANT, strlen(PROXY_VARIANT));
    n += strlen(PROXY_VARIANT);
    for (int i = 0; i < 16; i++)
        n += (size_t)snprintf(px->vkey + n, 3, "%02x", md[i]);
    px->vkey_len = n;
    return 0;
}
