/* proxy.c: a proxied request's flow, from its head to its answer: the route, the key, the
 * lookups (the primary key, then a variant's), the decision RFC 9111 makes about what was found
 * (proxy/http_cache.h), hits answered from the stored record, and everything else sent through
 * the key's lease to the origin (proxy_fetch.c), so one request per key goes out however many
 * clients and instances ask.
 *
 *   head -> proxy_match: a route of the file? (strata's own routes were tried first)
 *   proxy_handle -> GET/HEAD: lookup(key) -> a Vary marker? lookup(variant)
 *                -> decide: FRESH -> answer (HIT-L1, HIT-L2)
 *                           stale within stale-while-revalidate -> lease (REFRESH), answer STALE,
 *                                                                  refresh in the background
 *                           nothing, or must revalidate -> wait on the lease: a value
 * (HIT-COALESCED) or the lease -> fetch (conditional)
 *                -> other methods: fetch, streamed; unsafe ones invalidate what they change
 */
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <http_parser.h>

#include "handlers.h"
#include "log.h"
#include "proxy_internal.h"

/* ---- routing ------------------------------------------------------------------------------ */

int proxy_match(req *q)
{
    proxy_model *m = proxy_model_ref(q->w->srv);
    if (m == NULL)
        return 0;
    const char *method = http_method_str(http_conn_method(q->conn));
    const char *path = http_conn_path(q->conn);
    proxy_params params;
    const proxy_route *r =
        proxy_config_match(m->pc, method, get_header(q, "Host"), path, strlen(path), &params);
    proxy_req *px = r ? malloc(sizeof *px) : NULL;
    if (px == NULL) {
        proxy_model_unref(m);
        return 0;
    }
    memset(px, 0, offsetof(proxy_req, hdr)); /* the buffers after it are written first */
    px->model = m;
    px->route = r;
    px->params = params;
    size_t ml = strlen(method); /* http-parser's names: the longest is 11 bytes */
    memcpy(px->method, method, ml < sizeof px->method ? ml + 1 : 1);
    q->px = px;
    q->on_end = proxy_abandon; /* whoever answers q, what px holds goes with it */
    q->r.id = r->kind == PROXY_KIND_OPENAI ? R_LLM : R_PROXY;
    q->r.methods = ~0u;
    q->r.role = r->auth == PROXY_AUTH_WRITE  ? RR_WRITE
                : r->auth == PROXY_AUTH_READ ? RR_READ
                                             : RR_NONE;
    /* An openai route whose provider key strata sends: the SDK's api_key is a strata token. */
    const proxy_origin *o = r->origin;
    q->r.flags = r->kind == PROXY_KIND_OPENAI && o->token_env && getenv(o->token_env) &&
                         strcasecmp(o->token_header, "Authorization") == 0
                     ? RF_BEARER_OWN
                     : 0;
    return 1;
}

void proxy_abandon(req *q)
{
    if (q->px != NULL) {
        proxy_req *px = q->px;
        px->q = NULL;
        proxy_req_free(px);
        q->px = NULL;
    }
}

/* ---- lookups ------------------------------------------------------------------------------ */

static void decide(proxy_req *px);
static void through_lease(proxy_req *px);

static void lookup(proxy_req *px);

void proxy_lookup(proxy_req *px)
{
    lookup(px);
}

/* What a lookup found (rc and v as strata_cache_get_stale gives them; tier 1 for L1, 2 for
 * L2): a record to decide on, a Vary marker to follow, or nothing. */
static void found(proxy_req *px, int rc, strata_value *v, int tier)
{
    proxy_record rec;
    int ok = rc == STRATA_OK || rc == STRATA_OK_L1_ONLY || rc == STRATA_OK_STALE;
    if (ok && proxy_record_decode(strata_value_data(v), strata_value_len(v), &rec) != 0) {
        log_msg(LOG_DEBUG, "proxy: a stored entry is not a record this version reads: a miss");
        ok = 0;
    }
    if (!ok) {
        strata_value_release(v);
        decide(px);
        return;
    }
    if (rec.kind == PROXY_RECORD_VARY && px->vkey_len == 0) {
        int vrc = proxy_variant_key(px, rec.vary, rec.vary_len);
        strata_value_release(v);
        if (vrc != 0)
            px->cacheable = 0; /* no variant key: straight to the origin */
        if (vrc != 0)
            proxy_fetch(px, 0);
        else
            lookup(px);
        return;
    }
    if (rec.kind != PROXY_RECORD_RESPONSE) { /* a marker where a variant should be */
        strata_value_release(v);
        decide(px);
        return;
    }
    strata_value_release(px->found);
    px->found = v;
    px->rec = rec;
    px->found_tier = tier;
    px->found_kept = rc != STRATA_OK_STALE && (strata_value_flags(v) & STRATA_VALUE_STALE);
    px->found_stale = rc == STRATA_OK_STALE || px->found_kept;
    /* Held past its expiry (a soft purge, a copy kept after a failed refresh): stale whatever its
     * headers said, for the decision and for what the answer says (Cache-Status ttl). */
    int64_t age = hc_current_age(&px->rec.facts, px->now);
    if (px->found_stale && px->rec.facts.lifetime > age)
        px->rec.facts.lifetime = age;
    decide(px);
}

static void on_found_l2(int status, strata_value *v, void *arg)
{
    found(arg, status, v, 2);
}

static void lookup(proxy_req *px)
{
    strata_key k = proxy_key_used(px);
    strata_value *v = NULL;
    int rc = strata_cache_get_stale_async(px->w->loop, &k, on_found_l2, px, &v);
    if (rc != STRATA_PENDING)
        found(px, rc, v, 1);
}

/* ---- decisions ---------------------------------------------------------------------------- */

static void only_if_cached(proxy_req *px)
{
    proxy_answer_error(px, 504, "not_cached",
                       "only-if-cached: no stored response may answer this request");
    proxy_req_free(px);
}

static void answer_found(proxy_req *px, int x)
{
    strata_value *v = px->found;
    px->found = NULL;
    proxy_answer_record(px, v, &px->rec, x, 0, 0);
}

static void refresh_in_background(proxy_req *px);

/* RFC 9111 on what was found (found() made a copy held past its expiry stale). */
static void decide(proxy_req *px)
{
    if (px->found == NULL) {
        if (px->rq.cc.flags & HC_CC_ONLY_IF_CACHED)
            only_if_cached(px);
        else
            through_lease(px);
        return;
    }
    /* A copy kept after the origin failed, within the error TTL: the origin is asked again once
     * that ends, not by every request (strata_lease_fail). */
    if (px->found_kept &&
        hc_decide_on_error(&px->rq, &px->rec.facts, 0, px->now) == HC_STALE_IF_ERROR_ALLOWED) {
        strata_value *v = px->found;
        px->found = NULL;
        proxy_answer_record(px, v, &px->rec, HC_XC_STALE, 0, 0);
        proxy_req_free(px);
        return;
    }
    switch (hc_decide(&px->rq, &px->rec.facts, px->now)) {
    case HC_FRESH:
        answer_found(px, px->coalesced         ? HC_XC_HIT_COALESCED
                         : px->found_tier == 1 ? HC_XC_HIT_L1
                                               : HC_XC_HIT_L2);
        proxy_req_free(px);
        return;
    case HC_STALE_ALLOWED:
        answer_found(px, HC_XC_STALE);
        proxy_req_free(px);
        return;
    case HC_STALE_REVALIDATE_IN_BACKGROUND:
        refresh_in_background(px);
        return;
    case HC_ONLY_IF_CACHED_MISS:
        only_if_cached(px);
        return;
    default:                 /* MUST_REVALIDATE */
        if (px->coalesced) { /* a waiter given a value it may not use: ask alone */
            proxy_fetch(px, 1);
            return;
        }
        through_lease(px);
    }
}

/* ---- the lease ---------------------------------------------------------------------------- */

/* How long a fetch may hold the key's lease: the origin's deadlines and a margin. */
static uint64_t lease_ms_of(const proxy_req *px)
{
    const upstream_options *o = &px->route->origin->opts;
    uint64_t ms = o->total_timeout_ms
                      ? o->total_timeout_ms
                      : (uint64_t)(o->connect_timeout_ms ? o->connect_timeout_ms : 5000) +
                            (o->first_byte_timeout_ms ? o->first_byte_timeout_ms : 30000);
    return ms + 5000;
}

static void on_waited(int status, strata_lease_answer *a, void *arg)
{
    proxy_req *px = arg;
    px->w->lease_waits--;
    atomic_fetch_sub(&px->w->srv->lease_waiting, 1);
    px->waiting = 0;
    switch (status) {
    case STRATA_OK: /* another request's fetch (or any write) stored it */
        px->coalesced = 1;
        found(px, STRATA_OK, a->value, 2);
        return;
    case STRATA_LEASED:
        px->leased = 1;
        px->lease_on_variant = px->vkey_len > 0;
        memcpy(px->token, a->grant.token, sizeof px->token);
        proxy_fetch(px, 1);
        return;
    default: /* the holder still fetches after the wait, or no lease can be had: ask alone */
        proxy_fetch(px, 1);
    }
}

/* Nothing usable was found: wait for the key's lease (one fetch per key across instances),
 * or fetch alone when the request may not store or the waiters' bound is reached. */
static void through_lease(proxy_req *px)
{
    server *s = px->w->srv;
    if (!px->store_ok || px->q == NULL) {
        proxy_fetch(px, 1);
        return;
    }
    if (atomic_fetch_add(&s->lease_waiting, 1) >= s->cfg.lease_waiters) {
        atomic_fetch_sub(&s->lease_waiting, 1);
        proxy_fetch(px, 1);
        return;
    }
    uint64_t ms = lease_ms_of(px);
    strata_lease_wait_opts o = {.lease_ms = ms, .wait_ms = ms, .takeover = 1};
    strata_key k = proxy_key_used(px);
    strata_lease_answer a;
    px->w->lease_waits++;
    px->waiting = 1;
    int rc = strata_lease_wait_async(s->leases, px->w->loop, &k, &o, on_waited, px, &a);
    if (rc != STRATA_PENDING)
        on_waited(rc, &a, px);
}

/* Stale within stale-while-revalidate: one request (across instances: the lease, REFRESH) asks
 * the origin again; every request is answered the stale copy at once. The request's headers and
 * target are copied first (proxy_detach): the client's request is gone once it is answered. */
static void on_refresh_lease(int status, const strata_lease_grant *g, void *arg)
{
    proxy_req *px = arg;
    strata_value *v = px->found;
    px->found = NULL;
    proxy_record rec = px->rec;
    if (status == STRATA_OK) {
        /* The answer reads v; the fetch keeps its own reference for a 304 or stale-if-error. */
        px->found = strata_value_retain(v);
        px->leased = 1;
        px->lease_on_variant = px->vkey_len > 0;
        memcpy(px->token, g->token, sizeof px->token);
        if (proxy_detach(px) != 0) { /* out of memory: no refresh this time */
            proxy_lease_release(px);
            px->leased = 0;
        }
        proxy_answer_record(px, v, &rec, HC_XC_STALE, 0, 0);
        if (px->leased)
            proxy_fetch(px, 1); /* px->q is NULL: stored, never answered */
        else
            proxy_req_free(px);
        return;
    }
    proxy_answer_record(px, v, &rec, HC_XC_STALE, 0, 0);
    proxy_req_free(px);
}

static void refresh_in_background(proxy_req *px)
{
    strata_key k = proxy_key_used(px);
    strata_lease_grant g;
    int rc = strata_lease_acquire_async(px->w->srv->leases, px->w->loop, &k, lease_ms_of(px),
                                        STRATA_LEASE_REFRESH, on_refresh_lease, px, &g);
    if (rc != STRATA_PENDING)
        on_refresh_lease(rc, &g, px);
}

/* ---- the request -------------------------------------------------------------------------- */

/* The request's headers, its host, its method, its cache-relevant parts. */
void proxy_read_request(proxy_req *px)
{
    req *q = px->q;
    unsigned n = http_conn_header_count(q->conn);
    px->nhdr = 0;
    for (unsigned i = 0; i < n && px->nhdr < PROXY_HDRS_MAX; i++) {
        const char *v, *name = http_conn_header_at(q->conn, i, &v);
        px->hdr[px->nhdr++] = (upstream_header){name, v};
    }
    const char *host = get_header(q, "Host");
    size_t i = 0;
    for (; host && host[i] && i + 1 < sizeof px->host; i++)
        px->host[i] = (char)((host[i] >= 'A' && host[i] <= 'Z') ? host[i] + 32 : host[i]);
    px->host[i] = '\0';
    px->hmethod = hc_method_of(px->method);
    hc_request_parse(px->method, px->hdr, px->nhdr, &px->rq);
    px->now = proxy_now();
    memcpy(px->tenant, q->tenant, sizeof px->tenant); /* both STRATA_NAME_MAX + 1 bytes */
}

/* The primary key (cache_key.h); 0, or -1 when the request cannot have one. */
static int primary_key(proxy_req *px)
{
    req *q = px->q;
    const char *path = http_conn_path(q->conn), *query = http_conn_query(q->conn);
    proxy_key_request kr = {.method = px->hmethod == HC_M_HEAD ? "GET" : px->method,
                            .host = px->host[0] ? px->host : NULL,
                            .path = path,
                            .path_len = strlen(path),
                            .query = query,
                            .query_len = query ? strlen(query) : 0,
                            .headers = px->hdr,
                            .nheaders = px->nhdr,
                            .now_s = (uint64_t)px->now};
    size_t max = q->w->srv->cfg.cache.l1.max_key_len;
    /* Room for a variant's suffix behind the primary key. */
    size_t room = strlen(PROXY_VARIANT) + 32;
    if (max < PROXY_KEY_MIN + room)
        return -1;
    long n = proxy_cache_key(px->route, &px->params, &kr, max - room, px->key, sizeof px->key);
    if (n < 0)
        return -1;
    px->key_len = (size_t)n;
    return 0;
}

static void run(req *q);

void proxy_handle(req *q)
{
    proxy_req *px = q->px;
    px->q = q;
    px->w = q->w;
    limits_apply_rules(q, proxy_limits_of(px->model, px->route), run);
}

/* Past the route's rate limit (a 429 ends q there; proxy_abandon has nothing left then). */
static void run(req *q)
{
    proxy_req *px = q->px;
    proxy_read_request(px);
    atomic_fetch_add_explicit(&proxy_stats_of(px->model, px->route)->requests, 1,
                              memory_order_relaxed);
    int get = px->hmethod == HC_M_GET || px->hmethod == HC_M_HEAD;
    px->store_ok = !(px->rq.cc.flags & HC_CC_NO_STORE);
    px->cacheable = get && !(px->rq.flags & HC_RQ_RANGE) && primary_key(px) == 0;
    if (!px->cacheable) {
        proxy_fetch(px, 0);
        return;
    }
    lookup(px);
}
