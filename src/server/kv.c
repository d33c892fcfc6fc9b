/* kv.c: the key/value API.
 *
 *   GET|HEAD  /v1/cache/{ns}/{key}            the value, Content-Type, ETag, Age, X-Cache
 *   PUT       /v1/cache/{ns}/{key}?ttl=&tags=&grace=&stale_if_error=&beta=&compute_time=
 *                                              body = value; If-None-Match: * / If-Match;
 *                                              X-Cache-Error: 1 (an error result)
 *   DELETE    /v1/cache/{ns}/{key}
 *   (with X-Cache-Lease on a GET, X-Cache-Lease-Token on a PUT, PATCH or DELETE: the lease
 *   protocol, kv_lease.c, and the freshness of values, kv_fresh.c; ?window=S on any of them:
 *   the key of the current time window, key@<n>, said by X-Cache-Key)
 *   POST      /v1/cache/{ns}/_mget             {"keys":[...]}
 *   POST      /v1/cache/{ns}/_mset             {"items":[{"key","value"|"value_b64","ttl",
 *                                               "grace","stale_if_error","beta","compute_time",
 *                                               ...}]}
 *   POST      /v1/invalidate                   {"tags":[...],"patterns":[...]}
 *
 * Every call goes through the worker's strata_loop: an L1 hit is answered during the request
 * callback; anything that needs Redis is answered from the library's callback, so no handler
 * ever waits. /v1/invalidate, whose library calls block, runs on the admin lanes (offload.h):
 * tags alone on the quick lane, patterns on the bulk lane, all of them in one pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "handlers.h"
#include "kv_lease.h"

#define BATCH_MAX    1000
#define PATTERNS_MAX 100 /* per /v1/invalidate */

/* A miss: a plain 404, or, when the GET asked for the lease, the lease protocol's wait. */
static void miss(req *q, int why)
{
    if (get_header(q, "X-Cache-Lease") != NULL)
        kv_lease_wait(q);
    else
        kv_send_miss(q, why);
}

static void on_get(int status, strata_value *v, void *arg)
{
    req *q = arg;
    int why = strata_fallback_reason();
    if (status == STRATA_OK) {
        kv_send_value(q, v, "l2", "HIT-L2");
    } else if (status == STRATA_OK_L1_ONLY) { /* Redis failed: L1's copy, said so */
        add_reason(q, why);
        kv_send_value(q, v, "l1", "HIT-L1");
    } else if (status == STRATA_ENOTFOUND) {
        miss(q, why);
    } else {
        reply_status(q, status);
    }
}

static void kv_get(req *q)
{
    int lease = kv_lease_asked(q); /* its headers are checked before anything is read */
    if (lease < 0)
        return;
    if (lease > 0) {
        kv_fresh_get(q);
        return;
    }
    strata_key k = kv_key_of(q);
    strata_value *v;
    int rc = strata_cache_get_async(q->w->loop, &k, on_get, q, &v);
    if (rc == STRATA_OK || rc == STRATA_OK_L1_ONLY) {
        add_reason(q, strata_fallback_reason());
        kv_send_value(q, v, "l1", "HIT-L1");
    } else if (rc == STRATA_ENOTFOUND) {
        miss(q, strata_fallback_reason());
    } else if (rc != STRATA_PENDING) {
        reply_status(q, rc);
    }
}

/* ---- PUT ---------------------------------------------------------------------------------- */

/* A PUT waiting for the current value (If-Match): what to write once it is known. */
typedef struct put_ctx {
    req *q;
    kv_put_opts o;
} put_ctx;

static void do_write(put_ctx *p)
{
    req *q = p->q;
    size_t len;
    const char *body = get_body(q, &len);
    strata_key k = kv_key_of(q);
    int rc =
        strata_cache_set_async(q->w->loop, &k, body ? body : "", len, &p->o.opts, kv_on_written, q);
    free(p);
    if (rc != STRATA_PENDING)
        kv_on_written(rc, q);
}

static void on_current(int status, strata_value *v, void *arg)
{
    put_ctx *p = arg;
    char etag[20] = "";
    if (v != NULL) {
        codec_etag(v, etag);
        strata_value_release(v);
    }
    if ((status != STRATA_OK && status != STRATA_OK_L1_ONLY) ||
        !codec_etag_listed(get_header(p->q, "If-Match"), etag)) {
        req *q = p->q;
        free(p);
        reply_error(q, 412, "precondition_failed", "If-Match does not match the current value");
        return;
    }
    do_write(p);
}

static void kv_put(req *q, uint64_t window_left_ms)
{
    put_ctx *p = calloc(1, sizeof *p);
    if (p == NULL) {
        reply_error(q, 503, "out_of_memory", "out of memory");
        return;
    }
    p->q = q;
    if (kv_put_options(q, &p->o, window_left_ms) != 0) {
        free(p);
        return;
    }
    if (get_header(q, "X-Cache-Lease-Token") != NULL) { /* the holder's fill */
        kv_lease_fill(q, &p->o);
        free(p);
        return;
    }
    if (get_header(q, "If-Match") == NULL) {
        do_write(p);
        return;
    }
    /* If-Match: read the current value first. Checked, then written: a write racing in between
     * from another instance is not detected (see docs/api.md). */
    strata_key k = kv_key_of(q);
    strata_value *v;
    int rc = strata_cache_get_async(q->w->loop, &k, on_current, p, &v);
    if (rc != STRATA_PENDING)
        on_current(rc, v, p);
}

/* ---- DELETE ------------------------------------------------------------------------------- */

static void kv_delete(req *q)
{
    if (get_header(q, "X-Cache-Lease-Token") != NULL) { /* the holder gives the lease up */
        kv_lease_release(q);
        return;
    }
    strata_key k = kv_key_of(q);
    int rc = strata_cache_del_async(q->w->loop, &k, kv_on_written, q); /* answers like a write */
    if (rc != STRATA_PENDING)
        kv_on_written(rc, q);
}

void kv_handle(req *q)
{
    uint64_t window_left_ms;
    if (kv_window(q, &window_left_ms) != 0)
        return;
    switch (q->method) {
    case M_GET:
    case M_HEAD:
        kv_get(q);
        break;
    case M_PUT:
        kv_put(q, window_left_ms);
        break;
    case M_PATCH: /* only the lease's holder patches: it extends its lease */
        kv_lease_extend(q);
        break;
    default:
        kv_delete(q);
    }
}

/* ---- batches ------------------------------------------------------------------------------ */

/* Parses the JSON body; answers 400 and returns NULL when it is not an object. */
static json_t *body_json(req *q)
{
    size_t len;
    const char *body = get_body(q, &len);
    json_error_t err;
    json_t *j = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &err) : NULL;
    if (j == NULL || !json_is_object(j)) {
        reply_error(q, 400, "bad_json", "%s",
                    j == NULL && body ? err.text : "the body must be a JSON object");
        json_decref(j);
        return NULL;
    }
    return j;
}

typedef struct batch {
    req *q;
    json_t *items;
    int pending;
    int l1_only;
    int reason; /* the first l1-only item's, for X-Cache-Reason */
} batch;

typedef struct slot {
    batch *b;
    size_t index;
} slot;

/* An item answered from this instance's memory alone says why; the first reason heads the
 * answer. */
static void batch_reason(batch *b, json_t *item, int reason)
{
    if (reason == STRATA_REASON_NONE)
        return;
    json_object_set_new(item, "reason", json_string(strata_reason_name(reason)));
    if (b->reason == STRATA_REASON_NONE)
        b->reason = reason;
}

static void batch_done(batch *b)
{
    if (--b->pending > 0)
        return;
    req *q = b->q;
    if (b->l1_only)
        add_header(q, "X-Cache-Write", "l1-only");
    add_reason(q, b->reason);
    reply_json(q, 200, json_pack("{s:o}", "items", b->items));
    free(b);
}

static void on_mget(int status, strata_value *v, void *arg)
{
    slot *s = arg;
    json_t *item = json_array_get(s->b->items, s->index);
    int hit = status == STRATA_OK || status == STRATA_OK_L1_ONLY;
    json_object_set_new(item, "hit", json_boolean(hit));
    batch_reason(s->b, item, strata_fallback_reason());
    if (hit) {
        codec_put_value(item, strata_value_data(v), strata_value_len(v));
        const char *ct = strata_value_content_type(v);
        if (ct[0])
            json_object_set_new(item, "content_type", json_string(ct));
        uint64_t left = strata_value_ttl_left_ms(v, strata_now_ms());
        if (left != UINT64_MAX)
            json_object_set_new(item, "ttl", json_integer((json_int_t)(left / 1000)));
        strata_value_release(v);
    } else if (status != STRATA_ENOTFOUND) {
        json_object_set_new(item, "error", json_string(strata_err_name(status)));
    }
    batch *b = s->b;
    free(s);
    batch_done(b);
}

/* Checks one batch key: a string, valid as an HTTP key. Returns NULL or why not. */
static const char *batch_key_error(json_t *k, size_t key_max)
{
    if (!json_is_string(k))
        return "keys must be strings";
    size_t n = json_string_length(k);
    if (n == 0)
        return "a key is empty";
    if (n > key_max)
        return "a key is longer than the limit";
    if (!route_text_ok(json_string_value(k), n))
        return "keys must be valid UTF-8 without control characters";
    return NULL;
}

/* The body's array `name` of 1..BATCH_MAX elements, with *root the parsed body (the caller
 * decrefs it); or NULL after answering 400. */
static json_t *batch_array(req *q, const char *name, json_t **root)
{
    json_t *j = body_json(q);
    if (j == NULL)
        return NULL;
    json_t *a = json_object_get(j, name);
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > BATCH_MAX) {
        json_decref(j);
        reply_error(q, 400, "bad_request", "\"%s\" must be an array of 1 to %d elements", name,
                    BATCH_MAX);
        return NULL;
    }
    *root = j;
    return a;
}

void mget_handle(req *q)
{
    json_t *j, *keys = batch_array(q, "keys", &j);
    if (keys == NULL)
        return;
    size_t n = json_array_size(keys), key_max = q->w->srv->cfg.cache.l1.max_key_len;
    for (size_t i = 0; i < n; i++) {
        const char *why = batch_key_error(json_array_get(keys, i), key_max);
        if (why != NULL) {
            json_decref(j);
            reply_error(q, 400, "bad_key", "keys[%zu]: %s", i, why);
            return;
        }
    }
    batch *b = calloc(1, sizeof *b);
    b->q = q;
    b->items = json_array();
    b->pending = 1; /* held until every call is issued */
    for (size_t i = 0; i < n; i++) {
        json_t *kj = json_array_get(keys, i);
        json_array_append_new(b->items, json_pack("{s:O}", "key", kj));
        slot *s = malloc(sizeof *s);
        s->b = b, s->index = i;
        strata_key k = {q->r.ns, q->tenant, json_string_value(kj), json_string_length(kj)};
        strata_value *v;
        b->pending++;
        int rc = strata_cache_get_async(q->w->loop, &k, on_mget, s, &v);
        if (rc != STRATA_PENDING)
            on_mget(rc, v, s);
    }
    json_decref(j);
    batch_done(b);
}

static void on_mset(int status, void *arg)
{
    slot *s = arg;
    json_t *item = json_array_get(s->b->items, s->index);
    int why = strata_fallback_reason();
    json_object_set_new(item, "status",
                        json_string(status == STRATA_OK           ? "ok"
                                    : status == STRATA_OK_L1_ONLY ? "l1-only"
                                                                  : strata_err_name(status)));
    if (status == STRATA_OK_L1_ONLY) {
        s->b->l1_only = 1;
        batch_reason(s->b, item, why);
    }
    batch *b = s->b;
    free(s);
    batch_done(b);
}

/* A number of seconds from 0 to max_ms (integer or real, to the millisecond) into *ms. */
static int json_seconds(json_t *j, uint64_t max_ms, uint64_t *ms)
{
    if (!json_is_number(j))
        return -1;
    double s = json_number_value(j);
    if (!(s >= 0 && s * 1000 <= (double)max_ms))
        return -1;
    *ms = (uint64_t)(s * 1000 + 0.5);
    return 0;
}

/* An _mset item's freshness fields, as a PUT's ?grace= ... (kv_io.c). Returns NULL or why not. */
static const char *mset_freshness(json_t *it, strata_set_opts *o)
{
    json_t *g = json_object_get(it, "grace"), *sie = json_object_get(it, "stale_if_error");
    json_t *b = json_object_get(it, "beta"), *ct = json_object_get(it, "compute_time");
    if (g != NULL && json_seconds(g, STRATA_STALE_MAX_MS, &o->grace_ms) != 0)
        return "\"grace\" must be seconds from 0 to 2592000 (30 days)";
    if (sie != NULL && json_seconds(sie, STRATA_STALE_MAX_MS, &o->stale_if_error_ms) != 0)
        return "\"stale_if_error\" must be seconds from 0 to 2592000 (30 days)";
    if (ct != NULL && json_seconds(ct, KV_COMPUTE_MAX_MS, &o->compute_ms) != 0)
        return "\"compute_time\" must be seconds from 0 to 86400";
    if (b != NULL && (!json_is_number(b) ||
                      !(json_number_value(b) >= 0 && json_number_value(b) <= STRATA_BETA_MAX)))
        return "\"beta\" must be a number from 0 to 100";
    if (g != NULL)
        o->flags |= STRATA_SET_EXACT_GRACE; /* 0: none, whatever the namespace's */
    if (sie != NULL)
        o->flags |= STRATA_SET_EXACT_STALE_IF_ERROR;
    if (b != NULL)
        o->beta = json_number_value(b) > 0 ? json_number_value(b) : -1; /* 0: never early */
    return NULL;
}

/* Validates one _mset item and extracts what to write. Returns NULL or why it is refused. */
static const char *mset_item(json_t *it, size_t key_max, size_t value_max, unsigned char **owned,
                             const char **val, size_t *len, strata_set_opts *o, const char **tags)
{
    if (!json_is_object(it))
        return "items must be objects";
    const char *why = batch_key_error(json_object_get(it, "key"), key_max);
    if (why != NULL)
        return why;
    json_t *v = json_object_get(it, "value"), *b64 = json_object_get(it, "value_b64");
    if ((v != NULL) == (b64 != NULL))
        return "give exactly one of \"value\" and \"value_b64\"";
    if (v != NULL) {
        if (!json_is_string(v))
            return "\"value\" must be a string";
        *val = json_string_value(v), *len = json_string_length(v);
    } else if (!json_is_string(b64) ||
               codec_b64_decode(json_string_value(b64), json_string_length(b64), owned, len) != 0)
        return "\"value_b64\" must be standard base64";
    else
        *val = (const char *)*owned;
    if (*len > value_max)
        return "the value is larger than the limit";
    json_t *ttl = json_object_get(it, "ttl"), *tg = json_object_get(it, "tags");
    json_t *ct = json_object_get(it, "content_type");
    if (ttl != NULL && (!json_is_integer(ttl) || json_integer_value(ttl) < 1 ||
                        json_integer_value(ttl) > (json_int_t)CODEC_TTL_MAX_S))
        return "\"ttl\" must be " CODEC_TTL_RANGE;
    o->ttl_ms = ttl ? (uint64_t)json_integer_value(ttl) * 1000 : 0;
    if (ct != NULL && !json_is_string(ct))
        return "\"content_type\" must be a string";
    o->content_type = ct ? json_string_value(ct) : NULL;
    if ((why = mset_freshness(it, o)) != NULL)
        return why;
    if (tg != NULL) {
        if (!json_is_array(tg) || json_array_size(tg) > STRATA_TAGS_MAX_PER_ENTRY)
            return "\"tags\" must be an array of at most 32 strings";
        for (size_t i = 0; i < json_array_size(tg); i++) {
            if (!json_is_string(json_array_get(tg, i)))
                return "\"tags\" must be an array of strings";
            tags[i] = json_string_value(json_array_get(tg, i));
        }
        o->tags = tags;
        o->ntags = json_array_size(tg);
    }
    return NULL;
}

void mset_handle(req *q)
{
    json_t *j, *items = batch_array(q, "items", &j);
    if (items == NULL)
        return;
    size_t n = json_array_size(items), key_max = q->w->srv->cfg.cache.l1.max_key_len;
    size_t value_max = q->w->srv->cfg.cache.l1.max_value_len;
    /* Validate everything first: a batch with a bad item writes nothing. */
    for (size_t i = 0; i < n; i++) {
        unsigned char *owned = NULL;
        const char *val, *tags[STRATA_TAGS_MAX_PER_ENTRY];
        size_t len;
        strata_set_opts o = {0};
        const char *why =
            mset_item(json_array_get(items, i), key_max, value_max, &owned, &val, &len, &o, tags);
        free(owned);
        if (why != NULL) {
            json_decref(j);
            reply_error(q, 400, "bad_item", "items[%zu]: %s", i, why);
            return;
        }
    }
    batch *b = calloc(1, sizeof *b);
    b->q = q;
    b->items = json_array();
    b->pending = 1;
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(items, i);
        unsigned char *owned = NULL;
        const char *val, *tags[STRATA_TAGS_MAX_PER_ENTRY];
        size_t len;
        strata_set_opts o = {0};
        mset_item(it, key_max, value_max, &owned, &val, &len, &o, tags);
        json_array_append_new(b->items, json_pack("{s:O}", "key", json_object_get(it, "key")));
        slot *s = malloc(sizeof *s);
        s->b = b, s->index = i;
        json_t *kj = json_object_get(it, "key");
        strata_key k = {q->r.ns, q->tenant, json_string_value(kj), json_string_length(kj)};
        b->pending++;
        int rc = strata_cache_set_async(q->w->loop, &k, val, len, &o, on_mset, s);
        free(owned); /* the library copied it */
        if (rc != STRATA_PENDING)
            on_mset(rc, s);
    }
    json_decref(j);
    batch_done(b);
}

/* ---- invalidate --------------------------------------------------------------------------- */

typedef struct inval_job {
    req *q;
    json_t *tags, *patterns;
    char tenant[STRATA_NAME_MAX + 1];
    strata_cache *cache;
    size_t tags_done, removed;
    int l1_only, rc, reason;
} inval_job;

/* Runs on an admin lane's thread, right after the call: its reason is this thread's. */
static void inval_l1_only(inval_job *j, int rc)
{
    if (rc != STRATA_OK_L1_ONLY)
        return;
    if (!j->l1_only)
        j->reason = strata_fallback_reason();
    j->l1_only = 1;
}

static void inval_run(void *arg)
{
    inval_job *j = arg;
    for (size_t i = 0; i < json_array_size(j->tags); i++) {
        int rc = strata_cache_tag_invalidate(j->cache, j->tenant,
                                             json_string_value(json_array_get(j->tags, i)));
        inval_l1_only(j, rc);
        if (rc < 0 && j->rc == 0)
            j->rc = rc;
        j->tags_done += rc >= 0;
    }
    size_t n = json_array_size(j->patterns);
    if (n == 0)
        return;
    /* All the patterns in one pass over the keyspace: a SCAN costs the keyspace, so a hundred
     * patterns one by one cost a hundred passes (hardening item 4). */
    const char *pats[PATTERNS_MAX];
    for (size_t i = 0; i < n; i++)
        pats[i] = json_string_value(json_array_get(j->patterns, i));
    int rc = strata_cache_clear_any(j->cache, NULL, j->tenant, pats, n, &j->removed);
    inval_l1_only(j, rc);
    if (rc < 0 && j->rc == 0)
        j->rc = rc;
}

static void inval_done(void *arg)
{
    inval_job *j = arg;
    req *q = j->q;
    if (j->l1_only) {
        add_header(q, "X-Cache-Write", "l1-only");
        add_reason(q, j->reason);
    }
    if (j->rc < 0)
        reply_status(q, j->rc);
    else
        reply_json(q, 200,
                   json_pack("{s:I,s:I}", "tags_invalidated", (json_int_t)j->tags_done,
                             "keys_removed", (json_int_t)j->removed));
    json_decref(j->tags);
    json_decref(j->patterns);
    free(j);
}

static int strings_array(json_t *a, size_t max)
{
    if (a == NULL)
        return 1;
    if (!json_is_array(a) || json_array_size(a) > max)
        return 0;
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *s = json_array_get(a, i);
        if (!json_is_string(s) || json_string_length(s) == 0 ||
            !route_text_ok(json_string_value(s), json_string_length(s)))
            return 0;
    }
    return 1;
}

void invalidate_handle(req *q)
{
    json_t *j = body_json(q);
    if (j == NULL)
        return;
    json_t *tags = json_object_get(j, "tags"), *patterns = json_object_get(j, "patterns");
    if ((tags == NULL && patterns == NULL) || !strings_array(tags, BATCH_MAX) ||
        !strings_array(patterns, PATTERNS_MAX)) {
        json_decref(j);
        reply_error(q, 400, "bad_request",
                    "give \"tags\" and/or \"patterns\": arrays of non-empty UTF-8 strings");
        return;
    }
    inval_job *job = calloc(1, sizeof *job);
    job->q = q;
    job->tags = json_incref(tags);
    job->patterns = json_incref(patterns);
    job->cache = q->w->srv->cache;
    strcpy(job->tenant, q->tenant);
    json_decref(j);
    /* Tags alone are a write each: the quick lane, never behind another tenant's scans. */
    server *srv = q->w->srv;
    offload_lane *lane = json_array_size(patterns) > 0 ? &srv->bulk : &srv->quick;
    if (offload_bounded(q, lane, inval_run, inval_done, job) != 0) {
        json_decref(job->tags);
        json_decref(job->patterns);
        free(job);
    }
}
