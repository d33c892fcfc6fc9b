/* proxy_fetch.c: a proxied request's exchange with its origin: the request out (its headers
 * forwarded, strata's own removed, the stored copy's validators added), and the response in,
 * one of three ways:
 *   - kept whole (PX_BUFFER) when it may be stored: then stored, then answered (MISS), so a
 *     coalesced waiter and the next request find it;
 *   - streamed (PX_STREAM) when it may not, or grows past its route's max_object: piece by
 *     piece to the client, the origin's socket paused while the client is slow (upstream.h),
 *     never buffered whole;
 *   - read and dropped (PX_DRAIN) when the stored copy answers instead: a 304 that revalidated
 *     it, or an error that stale-if-error covers.
 * A failure (no connection, a timeout, a reset) is never stored and never handed to waiters as
 * the origin's answer: the lease is released (or the stale copy kept under it), and the client
 * gets the stale copy or a 502/504 made here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "proxy_internal.h"

#define ORIGIN_HDRS_MAX 128 /* response header lines read from an origin */

/* ---- the request out ---------------------------------------------------------------------- */

/* The client's path as the origin is asked for it: without the route's strip_prefix. */
static const char *origin_path(const proxy_req *px, const char *path)
{
    const char *sp = px->route->strip_prefix;
    size_t n = sp ? strlen(sp) : 0;
    if (n > 0 && strncmp(path, sp, n) == 0 && (path[n] == '/' || path[n] == '\0'))
        return path[n] ? path + n : "/";
    return path;
}

int proxy_detach(proxy_req *px)
{
    req *q = px->q;
    const char *path = origin_path(px, http_conn_path(q->conn)), *query = http_conn_query(q->conn);
    size_t need = strlen(path) + (query ? strlen(query) + 1 : 0) + 1;
    for (size_t i = 0; i < px->nhdr; i++)
        need += strlen(px->hdr[i].name) + strlen(px->hdr[i].value) + 2;
    char *b = malloc(need);
    if (b == NULL)
        return -1;
    free(px->detached);
    px->detached = b;
    px->target = b;
    b += sprintf(b, "%s%s%s", path, query ? "?" : "", query ? query : "") + 1;
    for (size_t i = 0; i < px->nhdr; i++) {
        size_t nl = strlen(px->hdr[i].name) + 1, vl = strlen(px->hdr[i].value) + 1;
        memcpy(b, px->hdr[i].name, nl);
        memcpy(b + nl, px->hdr[i].value, vl);
        px->hdr[i] = (upstream_header){b, b + nl};
        b += nl + vl;
    }
    px->background = 1;
    px->w->proxy_background++; /* a drain waits for it (proxy_req_free counts it out) */
    return 0;
}

/* Headers that are strata's, never the origin's; and, when strata answers the client's
 * conditions itself (a cacheable request), the client's conditions and ranges. */
static int not_forwarded(const proxy_req *px, const char *name)
{
    static const char *const own[] = {"X-Strata-Token", "X-Tenant", NULL};
    static const char *const cond[] = {"If-None-Match",
                                       "If-Modified-Since",
                                       "If-Match",
                                       "If-Unmodified-Since",
                                       "If-Range",
                                       "Range",
                                       NULL};
    for (int i = 0; own[i]; i++)
        if (strcasecmp(name, own[i]) == 0)
            return 1;
    /* Where strata sends the origin's token, the client's value of that header is not sent (on
     * an openai route it is the client's strata token). */
    const proxy_origin *o = px->route->origin;
    if (o->token_env != NULL && strcasecmp(name, o->token_header) == 0 && getenv(o->token_env))
        return 1;
    for (int i = 0; px->cacheable && cond[i]; i++)
        if (strcasecmp(name, cond[i]) == 0)
            return 1;
    return 0;
}

static int on_head(upstream_req *r, const upstream_head *h, void *arg);
static int on_body(upstream_req *r, const char *data, size_t len, void *arg);
static void on_done(upstream_req *r, int status, void *arg);
static void failed(proxy_req *px, int status, const char *detail);
static void stream_ended(proxy_req *px);

static void on_client_writable(req *q)
{
    proxy_req *px = q->px;
    if (px != NULL && px->paused && px->up != NULL) {
        px->paused = 0;
        upstream_req_resume(px->up);
    }
}

/* The path and query to send: the client's, as received. */
static char *target_of(proxy_req *px)
{
    if (px->target != NULL)
        return strdup(px->target);
    const char *path = origin_path(px, http_conn_path(px->q->conn));
    const char *query = http_conn_query(px->q->conn);
    size_t n = strlen(path) + (query ? strlen(query) + 1 : 0) + 1;
    char *t = malloc(n);
    if (t != NULL)
        snprintf(t, n, "%s%s%s", path, query ? "?" : "", query ? query : "");
    return t;
}

void proxy_fetch(proxy_req *px, int conditional)
{
    const proxy_origin *o = px->route->origin;
    atomic_fetch_add_explicit(&proxy_stats_of(px->model, px->route)->origin_requests, 1,
                              memory_order_relaxed);
    if (!proxy_breaker_allows(px->model, o, proxy_now_ms())) {
        failed(px, UPSTREAM_ECONNECT, "its circuit breaker is open after repeated failures");
        return;
    }
    upstream_header in[PROXY_HDRS_MAX], out[PROXY_HDRS_MAX + 8];
    char fwd[2048], bearer[4096];
    size_t nin = 0;
    for (size_t i = 0; i < px->nhdr; i++)
        if (!not_forwarded(px, px->hdr[i].name))
            in[nin++] = px->hdr[i];
    upstream_forward f = {px->q ? get_peer(px->q) : "unknown", "http",
                          px->host[0] ? px->host : NULL};
    int n = upstream_headers_to_origin(in, nin, &f, out, PROXY_HDRS_MAX + 4, fwd, sizeof fwd);
    if (n < 0) {
        failed(px, UPSTREAM_EINVAL, "the request's headers do not fit");
        return;
    }
    px->revalidation = 0;
    if (conditional && px->cacheable && px->found != NULL) {
        int v = hc_validators(&px->rec.facts, out + n, 2);
        px->revalidation = v > 0;
        n += v > 0 ? v : 0;
    }
    const char *secret = o->token_env ? getenv(o->token_env) : NULL;
    if (secret != NULL) { /* read now: a rotated secret is used without a reload */
        int bearer_form = strcasecmp(o->token_header, "Authorization") == 0;
        snprintf(bearer, sizeof bearer, "%s%s", bearer_form ? "Bearer " : "", secret);
        out[n++] = (upstream_header){o->token_header, bearer};
    }
    size_t blen = px->body_out_len;
    const char *body = px->body_out;
    if (body == NULL)
        body = px->q && !px->background ? get_body(px->q, &blen) : NULL;
    free(px->target_path);
    char *target = px->target_path = target_of(px);
    if (target != NULL)
        proxy_url_tag(px->host, target, strcspn(target, "?"), px->url_tag);
    upstream_request_spec spec = {.method = px->cacheable && px->hmethod == HC_M_HEAD ? "GET"
                                                                                      : px->method,
                                  .target = target,
                                  .headers = out,
                                  .nheaders = (size_t)n,
                                  .body = body,
                                  .body_len = blen};
    upstream_callbacks cb = {.on_head = on_head, .on_body = on_body, .on_done = on_done};
    upstream_pool *pool = proxy_model_pool(px->model, px->w);
    px->request_time = proxy_now();
    px->sent_ms = proxy_now_ms();
    int rc =
        target && pool ? upstream_request(pool, o->up, &spec, &cb, px, &px->up) : UPSTREAM_ENOMEM;
    if (rc != 0) {
        failed(px, rc, upstream_strerror(rc));
        return;
    }
    if (px->q != NULL)
        px->q->on_writable = on_client_writable;
}

/* ---- failures ----------------------------------------------------------------------------- */

static void answer_kept(proxy_req *px)
{
    strata_value *v = px->found;
    px->found = NULL;
    proxy_answer_record(px, v, &px->rec, HC_XC_STALE, px->ostatus ? px->ostatus : 502, 0);
    proxy_req_free(px);
}

/* The origin could not answer (status: a negative UPSTREAM_E*). A stale copy within
 * stale-if-error answers (and is kept under the lease for the error TTL, so the waiters get it
 * too); else 502 or 504, made here, never stored. */
static void failed(proxy_req *px, int status, const char *detail)
{
    px->up = NULL;
    const proxy_origin *o = px->route->origin;
    atomic_fetch_add_explicit(&proxy_stats_of(px->model, px->route)->origin_errors, 1,
                              memory_order_relaxed);
    if (px->found != NULL &&
        hc_decide_on_error(&px->rq, &px->rec.facts, 0, px->now) == HC_STALE_IF_ERROR_ALLOWED) {
        log_msg(LOG_DEBUG, "proxy: origin %s failed (%s): a stale copy answers", o->name, detail);
        proxy_keep_stale(px, answer_kept);
        return;
    }
    proxy_lease_release(px);
    int timeout = status == UPSTREAM_ETIMEDOUT_CONNECT || status == UPSTREAM_ETIMEDOUT_FIRST_BYTE ||
                  status == UPSTREAM_ETIMEDOUT_TOTAL;
    proxy_answer_error(px, timeout ? 504 : 502, timeout ? "origin_timeout" : "origin_unavailable",
                       "origin %s: %s (%s)", o->name, upstream_strerror(status), detail);
    proxy_req_free(px);
}

/* ---- the response in ---------------------------------------------------------------------- */

/* The response's headers as strata keeps and sends them: without hop-by-hop fields, the fields
 * no-cache="..." / private="..." name, and what strata writes itself (Date, Content-Length,
 * Age, X-Cache), with Via. Into px->head. Returns 0 or -1. */
static int make_head(proxy_req *px, const upstream_header *h, size_t n)
{
    static const char *const ours[] = {"Date", "Content-Length", "Age", "X-Cache", NULL};
    upstream_header kept[ORIGIN_HDRS_MAX], out[ORIGIN_HDRS_MAX + 2];
    char via[1024];
    int nk = hc_headers_to_store(h, n, kept, ORIGIN_HDRS_MAX);
    if (nk < 0)
        return -1;
    int w = 0;
    for (int i = 0; i < nk; i++) {
        int skip = 0;
        for (int j = 0; ours[j] && !skip; j++)
            skip = strcasecmp(kept[i].name, ours[j]) == 0;
        if (!skip)
            kept[w++] = kept[i];
    }
    int no = upstream_headers_to_client(kept, (size_t)w, out, ORIGIN_HDRS_MAX + 2, via, sizeof via);
    if (no < 0)
        return -1;
    size_t cap = 256;
    for (int i = 0; i < no; i++)
        cap += strlen(out[i].name) + strlen(out[i].value) + 4;
    free(px->head);
    if ((px->head = malloc(cap)) == NULL)
        return -1;
    long len = proxy_head_format(out, (size_t)no, px->head, cap);
    px->head_len = len < 0 ? 0 : (size_t)len;
    return len < 0 ? -1 : 0;
}

/* The response's Vary lines joined, into px->vary (NULL without). */
static void keep_vary(proxy_req *px, const upstream_header *h, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(h[i].name, "Vary") == 0)
            len += strlen(h[i].value) + 2;
    free(px->vary);
    px->vary = NULL;
    if (len == 0 || len > PROXY_RECORD_VARY_MAX || (px->vary = malloc(len + 1)) == NULL)
        return;
    px->vary[0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(h[i].name, "Vary") == 0)
            strcat(strcat(px->vary, px->vary[0] ? ", " : ""), h[i].value);
}

/* The exchange ends here, the origin's response unread (its connection is closed): the lease
 * goes, a started answer is cut short (the client sees it incomplete), px is freed. Returns
 * UPSTREAM_ABORT, for the callback to return. */
static int stop(proxy_req *px)
{
    upstream_req_cancel(px->up); /* inside its own callbacks too: then as returning ABORT */
    px->up = NULL;
    proxy_lease_release(px);
    if (px->q != NULL && px->started) {
        req *q = px->q;
        px->q = NULL;
        q->px = NULL;
        q->on_writable = NULL;
        reply_cut(q);
    } else if (px->q != NULL) {
        proxy_answer_error(px, 502, "origin_unavailable", "the origin's response was cut short");
    }
    proxy_req_free(px);
    return UPSTREAM_ABORT;
}

/* Starts streaming the response to the client (when there is one): its head, X-Cache, then the
 * pieces as they come. */
static int start_stream(proxy_req *px, long long content_length)
{
    px->mode = PX_STREAM;
    proxy_lease_release(px); /* nothing will be stored: the waiters ask for themselves */
    if (px->q == NULL)
        return stop(px); /* a background refresh that cannot store has nothing to do */
    add_header_lines(px->q, px->head, px->head_len);
    proxy_cache_headers(px, px->cacheable ? HC_XC_MISS : HC_XC_BYPASS, NULL, px->ostatus, 0);
    px->started = 1;
    int w = reply_start(px->q, px->ostatus, content_length);
    return w == HTTP_WRITE_GONE ? stop(px) : UPSTREAM_GO;
}

/* Starts streaming a response that is recorded beside (px->hooks->recorded) to be stored once
 * complete: the lease is kept, for the store to fill. */
static int start_tee(proxy_req *px, long long content_length)
{
    px->mode = PX_TEE;
    if (px->q == NULL)
        return UPSTREAM_GO; /* recorded, stored, never answered */
    add_header_lines(px->q, px->head, px->head_len);
    proxy_cache_headers(px, HC_XC_MISS, NULL, px->ostatus, 0);
    px->started = 1;
    int w = reply_start(px->q, px->ostatus, content_length);
    return w == HTTP_WRITE_GONE ? stop(px) : UPSTREAM_GO;
}

/* The stored headers without the "1.1 strata" make_head added to their Via when they were
 * stored (it is added again once they are merged), in place. Returns the count left. */
static size_t drop_own_via(upstream_header *h, size_t n)
{
    static const char own[] = "1.1 strata";
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(h[i].name, "Via") == 0) {
            char *v = (char *)h[i].value; /* in proxy_record_headers' buffer, ours */
            size_t len = strlen(v), ol = sizeof own - 1;
            if (len >= ol && strcmp(v + len - ol, own) == 0) {
                len -= ol;
                while (len > 0 && (v[len - 1] == ',' || v[len - 1] == ' '))
                    len--;
                v[len] = '\0';
            }
            if (len == 0)
                continue;
        }
        h[w++] = h[i];
    }
    return w;
}

/* A 304 to the stored copy's validators: the stored headers updated (hc_merge_304), the facts
 * computed again; stored and answered when the response is done. */
static int not_modified(proxy_req *px, const upstream_header *h, size_t n)
{
    upstream_header stored[ORIGIN_HDRS_MAX], merged[2 * ORIGIN_HDRS_MAX];
    char buf[PROXY_RECORD_HEAD_MAX];
    hc_facts upd;
    hc_facts_compute(304, h, n, px->request_time, px->response_time, NULL, &upd);
    long ns = proxy_record_headers(&px->rec, stored, ORIGIN_HDRS_MAX, buf, sizeof buf);
    if (ns > 0)
        ns = (long)drop_own_via(stored, (size_t)ns);
    int nm = ns < 0 || !hc_304_selects(&px->rec.facts, &upd)
                 ? -1
                 : hc_merge_304(stored, (size_t)ns, h, n, merged, 2 * ORIGIN_HDRS_MAX);
    if (nm < 0)
        return -1; /* a 304 for another response: fetch it whole */
    hc_facts_compute(px->rec.status, merged, (size_t)nm, px->request_time, px->response_time, NULL,
                     &px->facts);
    proxy_route_facts(px->route, &px->facts);
    if (make_head(px, merged, (size_t)nm) != 0)
        return -1;
    px->mode = PX_DRAIN;
    return 0;
}

/* A successful write: what it invalidates is dropped before the client hears of it, so the
 * client's next read never finds what the write replaced. The answer starts once that is done
 * (after_invalidation); meanwhile the body is held and the origin paused. */
static void after_invalidation(proxy_req *px)
{
    px->inval_pending = 0;
    if (start_stream(px, px->content_length) != UPSTREAM_GO)
        return; /* stopped: px is gone */
    if (px->len > 0) {
        int w = reply_write(px->q, px->buf, px->len);
        px->len = 0;
        if (w == HTTP_WRITE_GONE) {
            stop(px);
            return;
        }
    }
    if (px->origin_ended) {
        if (px->origin_status != 0)
            stop(px); /* cut short: the client sees it incomplete */
        else
            stream_ended(px);
        return;
    }
    if (px->paused && px->up != NULL) {
        px->paused = 0;
        upstream_req_resume(px->up);
    }
}

/* Starts the invalidation of a successful unsafe request's targets. Returns 0 (the answer
 * waits for it), or -1 when it could not be queued (the answer goes on at once). */
static int invalidate_first(proxy_req *px, const upstream_head *h, long long cl)
{
    const char *loc = upstream_head_header(h, "Location");
    const char *cloc = upstream_head_header(h, "Content-Location");
    px->location = loc ? strdup(loc) : NULL;
    px->content_location = cloc ? strdup(cloc) : NULL;
    px->content_length = cl;
    px->mode = PX_STREAM;
    px->inval_pending = 1;
    if (proxy_invalidate(px, after_invalidation) != 0) {
        px->inval_pending = 0;
        px->mode = PX_NONE;
        return -1;
    }
    return 0;
}

static int on_head(upstream_req *r, const upstream_head *h, void *arg)
{
    (void)r;
    proxy_req *px = arg;
    upstream_header hs[ORIGIN_HDRS_MAX];
    size_t n = upstream_head_count(h);
    n = n < ORIGIN_HDRS_MAX ? n : ORIGIN_HDRS_MAX;
    for (size_t i = 0; i < n; i++)
        hs[i] = upstream_head_at(h, i);
    px->ostatus = upstream_head_status(h);
    px->response_time = proxy_now();
    proxy_breaker_result(px->model, px->route->origin, px->ostatus < 500, proxy_now_ms());
    if (px->revalidation && px->ostatus == 304 && not_modified(px, hs, n) == 0)
        return UPSTREAM_GO;
    if (px->ostatus >= 500 && px->found != NULL &&
        hc_decide_on_error(&px->rq, &px->rec.facts, px->ostatus, px->now) ==
            HC_STALE_IF_ERROR_ALLOWED) {
        px->mode = PX_DRAIN; /* the stale copy answers once the error is read */
        return UPSTREAM_GO;
    }
    hc_facts_compute(px->ostatus, hs, n, px->request_time, px->response_time, NULL, &px->facts);
    proxy_route_facts(px->route, &px->facts);
    if (px->ttl_s > 0)
        px->facts.lifetime = px->facts.corrected_initial_age + px->ttl_s;
    if (make_head(px, hs, n) != 0) {
        failed(px, UPSTREAM_EBADRESPONSE, "its response headers are too large to forward");
        return UPSTREAM_ABORT;
    }
    keep_vary(px, hs, n);
    long long cl = upstream_head_content_length(h);
    if (!hc_method_safe(px->hmethod) && px->hooks == NULL && px->ostatus >= 200 &&
        px->ostatus < 400 && px->q != NULL && invalidate_first(px, h, cl) == 0)
        return UPSTREAM_GO;
    const char *why = proxy_not_storable(px, hs, n, cl);
    if (why != NULL && px->must_buffer && px->ostatus == 200) {
        failed(px, UPSTREAM_EBADRESPONSE, why);
        return UPSTREAM_ABORT;
    }
    if (why != NULL) {
        log_msg(LOG_DEBUG, "proxy: route %s: not stored: %s", px->route->name, why);
        return start_stream(px, cl);
    }
    if (px->tee && px->ostatus == 200) /* an error to keep (error_ttl) is not a stream */
        return start_tee(px, cl);
    px->mode = PX_BUFFER;
    px->cap = cl > 0 ? (size_t)cl : 16384;
    px->len = 0;
    free(px->buf);
    if ((px->buf = malloc(px->cap)) == NULL)
        return start_stream(px, cl);
    return UPSTREAM_GO;
}

/* A body grew past what is stored: what was kept goes to the client, the rest streams. */
static int spill(proxy_req *px)
{
    int v = start_stream(px, -1);
    if (v != UPSTREAM_GO)
        return v;
    int w = reply_write(px->q, px->buf, px->len);
    free(px->buf);
    px->buf = NULL;
    px->len = px->cap = 0;
    return w == HTTP_WRITE_GONE ? stop(px) : UPSTREAM_GO;
}

/* Appends data to px->buf. Returns 0 or -1 (out of memory). */
static int hold(proxy_req *px, const char *data, size_t len)
{
    if (px->len + len > px->cap) {
        size_t cap = px->cap * 2 > px->len + len ? px->cap * 2 : px->len + len;
        char *b = realloc(px->buf, cap);
        if (b == NULL)
            return -1;
        px->buf = b;
        px->cap = cap;
    }
    memcpy(px->buf + px->len, data, len);
    px->len += len;
    return 0;
}

static int on_body(upstream_req *r, const char *data, size_t len, void *arg)
{
    (void)r;
    proxy_req *px = arg;
    if (px->inval_pending) { /* held until the invalidation is done; the origin waits */
        if (hold(px, data, len) != 0)
            return stop(px);
        px->paused = 1;
        return UPSTREAM_PAUSE;
    }
    if (px->mode == PX_BUFFER) {
        size_t max = px->max_buffer ? px->max_buffer : px->route->max_object;
        if (px->len + len <= max && hold(px, data, len) == 0)
            return UPSTREAM_GO;
        if (px->must_buffer) {
            failed(px, UPSTREAM_EBADRESPONSE, "the response is larger than strata holds");
            return UPSTREAM_ABORT;
        }
        int v = spill(px); /* too large to store (or no memory): what was kept streams */
        if (v != UPSTREAM_GO)
            return v;
    }
    if (px->mode == PX_TEE)
        px->hooks->recorded(px, data, len);
    if ((px->mode != PX_STREAM && px->mode != PX_TEE) || px->q == NULL)
        return UPSTREAM_GO;
    int w = reply_write(px->q, data, len);
    if (w == HTTP_WRITE_GONE)
        return stop(px);
    if (w == HTTP_WRITE_FULL) {
        px->paused = 1;
        return UPSTREAM_PAUSE;
    }
    return UPSTREAM_GO;
}

/* ---- the end ------------------------------------------------------------------------------ */

static void answer_stored(proxy_req *px)
{
    proxy_record *rec = &px->rec;
    proxy_answer_record(px, NULL, rec,
                        px->revalidation && px->ostatus == 304 ? HC_XC_REVALIDATED : HC_XC_MISS,
                        px->ostatus, 1);
    proxy_req_free(px);
}

static void stream_ended(proxy_req *px)
{
    if (px->q != NULL) {
        req *q = px->q;
        px->q = NULL;
        q->px = NULL;
        q->on_writable = NULL;
        reply_end(q);
    }
    proxy_req_free(px);
}

/* The record of what was received (PX_BUFFER) or revalidated (PX_DRAIN after a 304), into
 * px->rec; its body in px->buf or the stored copy's. */
static void make_record(proxy_req *px)
{
    const char *body = px->buf;
    size_t body_len = px->len;
    if (px->mode == PX_DRAIN) { /* a 304: the stored body, which px->found holds */
        body = px->rec.body;
        body_len = px->rec.body_len;
    }
    int status = px->mode == PX_DRAIN ? px->rec.status : px->ostatus;
    px->facts.status = status;
    px->rec = (proxy_record){
        .kind = PROXY_RECORD_RESPONSE,
        .status = status,
        .flags = proxy_status_in(&px->route->error_statuses, status) ? PROXY_RECORD_ERROR : 0,
        .origin_ms = (uint32_t)(proxy_now_ms() - px->sent_ms),
        .facts = px->facts,
        .head = px->head,
        .head_len = px->head_len,
        .body = body,
        .body_len = body_len};
}

static void on_done(upstream_req *r, int status, void *arg)
{
    (void)r;
    proxy_req *px = arg;
    px->up = NULL;
    if (px->inval_pending) { /* the answer waits for the invalidation: it ends it */
        px->origin_ended = 1;
        px->origin_status = status;
        if (status != 0)
            proxy_breaker_result(px->model, px->route->origin, 0, proxy_now_ms());
        return;
    }
    if (status != 0) {
        proxy_breaker_result(px->model, px->route->origin, 0, proxy_now_ms());
        if ((px->mode == PX_STREAM || px->mode == PX_TEE) && px->started) {
            stop(px);
            return;
        }
        failed(px, status, upstream_req_errstr(r)[0] ? upstream_req_errstr(r) : "");
        return;
    }
    switch (px->mode) {
    case PX_BUFFER:
        if (px->hooks != NULL && px->hooks->complete(px) != 0) {
            proxy_lease_release(px); /* not an answer to keep: the client gets it as it came */
            make_record(px);
            proxy_answer_record(px, NULL, &px->rec, HC_XC_MISS, px->ostatus, 0);
            proxy_req_free(px);
            return;
        }
        make_record(px);
        proxy_store(px, &px->rec, answer_stored);
        return;
    case PX_TEE:
        if (px->hooks->complete(px) != 0) {
            proxy_lease_release(px);
            stream_ended(px);
            return;
        }
        make_record(px);
        proxy_store(px, &px->rec, stream_ended);
        return;
    case PX_DRAIN:
        if (px->ostatus == 304) { /* revalidated: stored again with the new headers */
            make_record(px);
            proxy_store(px, &px->rec, answer_stored);
        } else { /* an error stale-if-error covers */
            proxy_keep_stale(px, answer_kept);
        }
        return;
    default:
        stream_ended(px);
    }
}
