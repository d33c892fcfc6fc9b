/* proxy_store.c: what the proxy writes to the cache and drops from it: the route's say over a
 * response's freshness, whether it may be stored, the record stored (under the key's lease, in
 * both tiers, with its tags), a stale copy kept when the origin fails, and what a successful
 * unsafe request invalidates.
 *
 * Tags: every entry carries its route's tags (task:{id}), the tags its origin gave it
 * (Surrogate-Key, xkey, Cache-Tag) and its URL's tag (url:<host><path>), so a purge of a URL, a
 * write to it (RFC 9111 §4.4) and an invalidation rule are each one tag invalidation, seen by
 * every instance, with no scan of Redis.
 */
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "proxy_internal.h"

#define TAG_HDRS "Surrogate-Key", "xkey", "Cache-Tag"

/* ---- the route's say ---------------------------------------------------------------------- */

static void set_window(hc_facts *f, uint32_t flag, int64_t *field, uint64_t ms, int replace)
{
    if (ms == 0 || (!replace && (f->cc.flags & flag)))
        return;
    f->cc.flags |= flag;
    *field = (int64_t)(ms / 1000);
}

void proxy_route_facts(const proxy_route *r, hc_facts *f)
{
    int err = proxy_status_in(&r->error_statuses, f->status);
    int override = r->rfc9111 == PROXY_RFC9111_OVERRIDE;
    if (err || override) {
        /* The route decides: its TTL (an error's error_ttl) from now, its windows. */
        f->cc.flags &=
            ~(uint32_t)(HC_CC_NO_CACHE | HC_CC_NO_STORE | HC_CC_PRIVATE | HC_CC_MUST_REVALIDATE |
                        HC_CC_PROXY_REVALIDATE | HC_CC_INVALID_FRESHNESS | HC_CC_SWR | HC_CC_SIE);
        f->lifetime =
            f->corrected_initial_age + (int64_t)((err ? r->error_ttl_ms : r->ttl_ms) / 1000);
        f->flags = (f->flags | HC_F_EXPLICIT) & ~(uint32_t)HC_F_HEURISTIC;
    } else if (!(f->flags & HC_F_EXPLICIT) && r->ttl_set) {
        f->lifetime = f->corrected_initial_age + (int64_t)(r->ttl_ms / 1000);
        f->flags = (f->flags | HC_F_EXPLICIT) & ~(uint32_t)HC_F_HEURISTIC;
    }
    if (!err) {
        set_window(f, HC_CC_SWR, &f->cc.swr, r->grace_ms, override);
        set_window(f, HC_CC_SIE, &f->cc.sie, r->stale_if_error_ms, override);
    }
}

static int has_header(const upstream_header *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(h[i].name, name) == 0)
            return 1;
    return 0;
}

const char *proxy_not_storable(proxy_req *px, const upstream_header *h, size_t n, long long cl)
{
    const proxy_route *r = px->route;
    int status = px->ostatus;
    if (!px->cacheable)
        return "the request is not a GET or HEAD the cache keys";
    if (!px->store_ok)
        return "the request said no-store";
    if (cl > (long long)(px->max_buffer ? px->max_buffer : r->max_object))
        return "the response is larger than the route's max_object: streamed";
    if (proxy_status_in(&r->error_statuses, status))
        return r->error_ttl_ms ? NULL : "an error status, and the route has no error_ttl";
    if (!proxy_status_in(&r->cacheable_statuses, status))
        return "the status is not one of the route's cacheable_statuses";
    if (px->facts.flags & (HC_F_VARY_STAR | HC_F_VARY_TOO_MANY))
        return "Vary: * or too many Vary fields";
    if (px->background && (px->vary != NULL) != (px->vkey_len > 0))
        return "the response's Vary changed: stored by the next request";
    if (r->rfc9111 != PROXY_RFC9111_OVERRIDE) {
        hc_request rq = px->rq;
        rq.method = HC_M_GET; /* a HEAD that missed was fetched as the GET it is answered from */
        int why = hc_storable(&rq, &px->facts);
        if (why != HC_STORE_OK)
            return hc_store_reason_text(why);
        if (has_header(h, n, "Set-Cookie"))
            return "the response sets a cookie (rfc9111: override stores it)";
    }
    if (px->facts.lifetime <= 0 && !(px->facts.flags & (HC_F_ETAG | HC_F_LAST_MODIFIED)))
        return "stale on arrival and without a validator";
    return NULL;
}

/* ---- tags --------------------------------------------------------------------------------- */

void proxy_url_tag(const char *host, const char *path, size_t path_len, char *out)
{
    char norm[STRATA_TAG_MAX + 1];
    size_t pre = strlen(PROXY_URL_TAG), hl = strlen(host);
    long n = -1;
    if (pre + hl < sizeof norm)
        n = proxy_pct_normalise(path, path_len, norm, sizeof norm - pre - hl - 1);
    if (n >= 0) {
        snprintf(out, STRATA_TAG_MAX + 1, "%s%s%.*s", PROXY_URL_TAG, host, (int)n, norm);
        return;
    }
    /* Too long to be a tag: its digest stands for it. */
    unsigned char md[SHA256_DIGEST_LENGTH] = {0};
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c == NULL || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(c, host, hl) != 1 || EVP_DigestUpdate(c, path, path_len) != 1 ||
        EVP_DigestFinal_ex(c, md, NULL) != 1)
        log_msg(LOG_ERROR, "proxy: SHA-256 failed: a long URL's tag is the empty digest");
    EVP_MD_CTX_free(c);
    int at = snprintf(out, STRATA_TAG_MAX + 1, "%s#", PROXY_URL_TAG);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        at += snprintf(out + at, 3, "%02x", md[i]);
}

/* The tags of what px stores, in tags (names) over buf. Returns how many. */
typedef struct tag_set {
    const char *name[STRATA_TAGS_MAX_PER_ENTRY];
    size_t n, used;
    char buf[STRATA_TAGS_MAX_PER_ENTRY * (STRATA_TAG_MAX + 1)];
} tag_set;

static void tag_add(tag_set *t, const char *s, size_t len)
{
    if (t->n == STRATA_TAGS_MAX_PER_ENTRY || len == 0 || len > STRATA_TAG_MAX ||
        !route_text_ok(s, len))
        return;
    for (size_t i = 0; i < t->n; i++)
        if (strlen(t->name[i]) == len && memcmp(t->name[i], s, len) == 0)
            return;
    char *p = t->buf + t->used;
    memcpy(p, s, len);
    p[len] = '\0';
    t->used += len + 1;
    t->name[t->n++] = p;
}

/* The origin's tags: space- or comma-separated names. */
static void origin_tags(tag_set *t, const char *v)
{
    while (*v) {
        size_t skip = strspn(v, " ,\t"), len;
        v += skip;
        len = strcspn(v, " ,\t");
        tag_add(t, v, len);
        v += len;
    }
}

static void tags_of(proxy_req *px, tag_set *t)
{
    static const char *const hdrs[] = {TAG_HDRS, NULL};
    char one[STRATA_TAG_MAX + 1];
    t->n = t->used = 0;
    tag_add(t, px->url_tag, strlen(px->url_tag));
    for (size_t i = 0; i < px->route->ntags; i++) {
        long n = proxy_route_tag(px->route, i, &px->params, one, sizeof one);
        if (n > 0)
            tag_add(t, one, (size_t)n);
    }
    proxy_record hr = {.head = px->head, .head_len = px->head_len};
    upstream_header h[128];
    char *buf = px->head_len ? malloc(px->head_len) : NULL;
    long nh = buf ? proxy_record_headers(&hr, h, 128, buf, px->head_len) : 0;
    for (long i = 0; i < nh; i++)
        for (int j = 0; hdrs[j]; j++)
            if (strcasecmp(h[i].name, hdrs[j]) == 0)
                origin_tags(t, h[i].value);
    free(buf);
}

/* ---- storing ------------------------------------------------------------------------------ */

typedef struct store_call {
    proxy_req *px;
    void (*done)(proxy_req *px);
    char *bytes;  /* the encoded record */
    char *marker; /* the Vary marker, when the lease is on the primary key */
    size_t marker_len;
    tag_set tags;
    strata_set_opts opts;
} store_call;

static void store_finished(store_call *sc, int status)
{
    proxy_req *px = sc->px;
    if (status == STRATA_OK || status == STRATA_OK_L1_ONLY) {
        atomic_fetch_add_explicit(&proxy_stats_of(px->model, px->route)->stored, 1,
                                  memory_order_relaxed);
        px->leased = 0; /* a fill releases the lease with the write */
    } else {
        log_msg(LOG_DEBUG, "proxy: route %s: not stored: %s", px->route->name,
                strata_strerror(status));
        if (status == STRATA_ENOTHOLDER)
            px->leased = 0; /* lost meanwhile: nothing to give up */
    }
    proxy_lease_release(px);
    void (*done)(proxy_req *) = sc->done;
    free(sc->bytes);
    free(sc->marker);
    free(sc);
    done(px);
}

static void on_marker_stored(int status, void *arg)
{
    store_finished(arg, status);
}

/* The variant went in; now the marker, under the primary key's lease. */
static void on_variant_stored(int status, void *arg)
{
    store_call *sc = arg;
    proxy_req *px = sc->px;
    if (status != STRATA_OK && status != STRATA_OK_L1_ONLY) {
        store_finished(sc, status);
        return;
    }
    strata_key k = proxy_lease_key(px);
    int rc = px->leased ? strata_lease_fill_async(px->w->srv->leases, px->w->loop, &k, px->token,
                                                  sc->marker, sc->marker_len, &sc->opts,
                                                  on_marker_stored, sc)
                        : strata_cache_set_async(px->w->loop, &k, sc->marker, sc->marker_len,
                                                 &sc->opts, on_marker_stored, sc);
    if (rc != STRATA_PENDING)
        store_finished(sc, rc);
}

/* A response with Vary under a lease on the primary key: the variant is written first (a plain
 * set), then the marker fills the lease, so a woken waiter that follows the marker finds it. */
static int vary_marker(proxy_req *px, const proxy_record *rec, store_call *sc)
{
    proxy_record m = {.kind = PROXY_RECORD_VARY,
                      .status = rec->status,
                      .facts = rec->facts,
                      .vary = px->vary,
                      .vary_len = strlen(px->vary)};
    sc->marker_len = proxy_record_size(&m);
    sc->marker = sc->marker_len ? malloc(sc->marker_len) : NULL;
    return sc->marker && proxy_record_encode(&m, sc->marker, sc->marker_len) > 0 ? 0 : -1;
}

void proxy_store(proxy_req *px, const proxy_record *rec, void (*done)(proxy_req *px))
{
    store_call *sc = calloc(1, sizeof *sc);
    size_t size = proxy_record_size(rec);
    if (sc == NULL || size == 0 || (sc->bytes = malloc(size)) == NULL ||
        proxy_record_encode(rec, sc->bytes, size) < 0) {
        if (sc)
            free(sc->bytes);
        free(sc);
        proxy_lease_release(px);
        done(px);
        return;
    }
    sc->px = px;
    sc->done = done;
    tags_of(px, &sc->tags);
    /* A response with a validator is kept past its windows as long again as it was fresh (a
     * minute to a day): expired or soft-purged, it is revalidated with a 304 instead of being
     * fetched whole. */
    int64_t keep = rec->facts.lifetime < 60      ? 60
                   : rec->facts.lifetime > 86400 ? 86400
                                                 : rec->facts.lifetime;
    hc_entry_times t;
    hc_entry_times_of(&rec->facts, proxy_now(), keep, &t);
    sc->opts = (strata_set_opts){.ttl_ms = t.ttl_ms,
                                 .grace_ms = t.grace_ms,
                                 .stale_if_error_ms = t.stale_if_error_ms,
                                 .tags = sc->tags.name,
                                 .ntags = sc->tags.n,
                                 .compute_ms = rec->origin_ms,
                                 .beta = -1,
                                 .flags = STRATA_SET_NO_JITTER | STRATA_SET_EXACT_GRACE |
                                          STRATA_SET_EXACT_STALE_IF_ERROR};
    /* With Vary and the lease on the primary key: variant, then marker. */
    int with_marker = px->vary != NULL && px->vkey_len == 0;
    if (with_marker &&
        (proxy_variant_key(px, px->vary, strlen(px->vary)) != 0 || vary_marker(px, rec, sc) != 0)) {
        store_finished(sc, STRATA_EINVAL);
        return;
    }
    strata_key k = proxy_key_used(px);
    int rc;
    if (with_marker)
        rc = strata_cache_set_async(px->w->loop, &k, sc->bytes, size, &sc->opts, on_variant_stored,
                                    sc);
    else if (px->leased)
        rc = strata_lease_fill_async(px->w->srv->leases, px->w->loop, &k, px->token, sc->bytes,
                                     size, &sc->opts, on_marker_stored, sc);
    else
        rc = strata_cache_set_async(px->w->loop, &k, sc->bytes, size, &sc->opts, on_marker_stored,
                                    sc);
    if (rc != STRATA_PENDING)
        (with_marker ? on_variant_stored : on_marker_stored)(rc, sc);
}

/* ---- the lease's end ---------------------------------------------------------------------- */

strata_key proxy_lease_key(const proxy_req *px)
{
    strata_key k = {px->ns ? px->ns : PROXY_NS, px->tenant,
                    px->lease_on_variant ? px->vkey : px->key,
                    px->lease_on_variant ? px->vkey_len : px->key_len};
    return k;
}

static void released(int status, void *arg)
{
    (void)status, (void)arg; /* a lease not given back expires by itself */
}

void proxy_lease_release(proxy_req *px)
{
    if (!px->leased)
        return;
    px->leased = 0;
    strata_key k = proxy_lease_key(px);
    strata_lease_release_async(px->w->srv->leases, px->w->loop, &k, px->token, released, NULL);
}

typedef struct keep_call {
    proxy_req *px;
    void (*done)(proxy_req *px);
} keep_call;

static void on_kept(int status, strata_value *v, void *arg)
{
    keep_call *kc = arg;
    (void)status;
    strata_value_release(v);
    void (*done)(proxy_req *) = kc->done;
    proxy_req *px = kc->px;
    free(kc);
    done(px);
}

void proxy_keep_stale(proxy_req *px, void (*done)(proxy_req *px))
{
    keep_call *kc = px->leased ? malloc(sizeof *kc) : NULL;
    if (kc == NULL) {
        proxy_lease_release(px);
        done(px);
        return;
    }
    *kc = (keep_call){px, done};
    px->leased = 0; /* strata_lease_fail releases it in every case but a lost lease */
    strata_key k = proxy_lease_key(px);
    strata_value *v = NULL;
    /* No error result of our own: a copy past its windows leaves an empty entry, which the next
     * reader does not decode and so fetches again. */
    strata_set_opts so = {.ttl_ms = px->route->error_ttl_ms ? px->route->error_ttl_ms : 1000};
    int rc = strata_lease_fail_async(px->w->srv->leases, px->w->loop, &k, px->token, "", 0, &so,
                                     on_kept, kc, &v);
    if (rc != STRATA_PENDING)
        on_kept(rc, v, kc);
}

/* ---- invalidation after unsafe requests --------------------------------------------------- */

#define INVALIDATE_MAX 64 /* tags and patterns one request drops */

typedef struct inval_job {
    proxy_req *px;
    void (*done)(proxy_req *px);
    strata_cache *cache;
    char tenant[STRATA_NAME_MAX + 1];
    const char *tags[INVALIDATE_MAX], *patterns[INVALIDATE_MAX];
    size_t ntags, npatterns;
    char buf[INVALIDATE_MAX * 2 * 260];
    size_t used;
} inval_job;

static void job_add(inval_job *j, const char **list, size_t *n, const char *s, long len)
{
    if (len <= 0 || *n == INVALIDATE_MAX || j->used + (size_t)len + 1 > sizeof j->buf)
        return;
    char *p = j->buf + j->used;
    memcpy(p, s, (size_t)len);
    p[len] = '\0';
    j->used += (size_t)len + 1;
    list[(*n)++] = p;
}

static void run_invalidation(void *arg)
{
    inval_job *j = arg;
    for (size_t i = 0; i < j->ntags; i++)
        strata_cache_tag_invalidate(j->cache, j->tenant, j->tags[i]);
    size_t removed = 0;
    if (j->npatterns > 0)
        strata_cache_clear_any(j->cache, PROXY_NS, j->tenant, j->patterns, j->npatterns, &removed);
}

static void invalidated(void *arg)
{
    inval_job *j = arg;
    void (*done)(proxy_req *) = j->done;
    proxy_req *px = j->px;
    free(j);
    done(px);
}

/* The URL tags of what the response invalidates: the target, Location, Content-Location. */
static void uri_tags(proxy_req *px, inval_job *j)
{
    const char *uri[3], *target = px->target_path;
    char buf[3 * 2048], tag[STRATA_TAG_MAX + 1];
    int n = hc_invalidations(px->hmethod, px->ostatus, "http", px->host, target, px->location,
                             px->content_location, uri, buf, sizeof buf);
    for (int i = 0; i < n; i++) {
        size_t plen = strcspn(uri[i], "?");
        proxy_url_tag(px->host, uri[i], plen, tag);
        job_add(j, j->tags, &j->ntags, tag, (long)strlen(tag));
    }
}

/* The route's invalidation rules for this request. */
static void rule_drops(proxy_req *px, inval_job *j)
{
    proxy_params m;
    const char *path = px->target_path;
    size_t plen = strcspn(path, "?");
    const proxy_invalidation *v = proxy_config_match_invalidation(
        px->model->pc, px->method, px->host[0] ? px->host : NULL, path, plen, &m);
    char out[PROXY_KEY_CAP];
    for (size_t i = 0; v != NULL && i < v->ntags; i++)
        job_add(j, j->tags, &j->ntags, out, proxy_invalidation_tag(v, i, &m, out, sizeof out));
    for (size_t i = 0; v != NULL && i < v->nkeys; i++)
        job_add(j, j->patterns, &j->npatterns, out,
                proxy_invalidation_key(v, i, &m, out, sizeof out));
}

int proxy_invalidate(proxy_req *px, void (*done)(proxy_req *px))
{
    inval_job *j = calloc(1, sizeof *j);
    if (j == NULL || px->q == NULL || px->target_path == NULL) {
        free(j);
        return -1;
    }
    j->px = px;
    j->done = done;
    j->cache = px->w->srv->cache;
    snprintf(j->tenant, sizeof j->tenant, "%s", px->tenant);
    uri_tags(px, j);
    rule_drops(px, j);
    /* Always queued, past the lanes' bounds too: the origin has made the write, so what it
     * invalidates is dropped whatever the queue holds (a scan of Redis on the bulk lane). */
    server *srv = px->w->srv;
    offload_lane *lane = j->npatterns > 0 ? &srv->bulk : &srv->quick;
    if (offload_submit(lane, px->w->base, j->tenant, 1, run_invalidation, invalidated, j) != 0) {
        log_msg(LOG_ERROR, "proxy: route %s: out of memory: a write's invalidation is skipped",
                px->route->name);
        free(j);
        return -1;
    }
    return 0;
}
