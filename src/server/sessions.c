/* sessions.c: the session API.
 *
 *   POST   /v1/sessions?ttl=S        body: a JSON object  -> 201 {"id":"..."} + Location
 *   GET    /v1/sessions/{id}         the JSON; the TTL slides (starts again from now) once
 *                                    half of it has gone by
 *   PUT    /v1/sessions/{id}         replace                -> 204
 *   PATCH  /v1/sessions/{id}         RFC 7396 JSON Merge Patch -> 200 with the result
 *   DELETE /v1/sessions/{id}                                -> 204, or 503 while Redis cannot
 *                                    take it (strict: Redis first, never in memory alone)
 *
 * Unknown ids are 404, malformed ones 400. Sessions are bound to the request's tenant (a token
 * bound to a tenant sees only that tenant's sessions). Ids never reach logs or metrics: the
 * access log names the route. A write that landed in L1 only (no Redis, or Redis down) answers
 * with X-Cache-Write: l1-only: that session will not survive a restart of this instance.
 * PUT and PATCH read, then write: two writers racing on one session can lose one update, as
 * with most session stores; the last write wins. A read slides the TTL with a touch
 * (strata_cache_touch: the stored times change atomically, the document is not written again, so
 * it never undoes a write), and only once half the TTL has gone by (ASP.NET's rule for sliding
 * expiration): most session reads write nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "handlers.h"
#include "log.h"

typedef struct sess_op {
    req *q;
    json_t *patch; /* PATCH: the patch; PUT: the new document */
    uint64_t ttl_ms;
    char id[STRATA_SESSION_ID_LEN + 1];
} sess_op;

static strata_key key_of(req *q, const char *id)
{
    return strata_session_key(q->tenant, id);
}

/* Parses the body as a JSON object; answers 400 and returns NULL otherwise. */
static json_t *body_object(req *q)
{
    size_t len;
    const char *body = get_body(q, &len);
    json_error_t err;
    json_t *j = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &err) : NULL;
    if (j == NULL || !json_is_object(j)) {
        reply_error(q, 400, "bad_json", "%s",
                    j == NULL && body ? err.text : "session data must be a JSON object");
        json_decref(j);
        return NULL;
    }
    return j;
}

static int ttl_of(req *q, uint64_t *ms)
{
    const char *ttl = get_query(q, "ttl");
    *ms = STRATA_SESSION_TTL_DEFAULT_MS;
    if (ttl != NULL && codec_ttl(ttl, ms) != 0) {
        reply_error(q, 400, "bad_ttl", "ttl must be a whole number of seconds, 1 or more");
        return -1;
    }
    return 0;
}

/* Writes doc as the session's data with ttl_ms; then done(status, arg). */
static int write_session(req *q, const char *id, json_t *doc, uint64_t ttl_ms, unsigned flags,
                         strata_done_cb done, void *arg)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    if (text == NULL)
        return STRATA_ENOMEM;
    strata_key k = key_of(q, id);
    strata_set_opts o = {.ttl_ms = ttl_ms,
                         .content_type = "application/json",
                         .flags = flags | STRATA_SET_PINNED | STRATA_SET_NO_JITTER};
    int rc = strata_cache_set_async(q->w->loop, &k, text, strlen(text), &o, done, arg);
    free(text);
    return rc;
}

/* Memory only, or Redis unavailable: the session lives in this instance's L1 alone. */
static void wrote_status(req *q, int status)
{
    /* In the write's callback: the thread's reason is the write's. */
    int reason = status == STRATA_OK_L1_ONLY              ? strata_fallback_reason()
                 : !strata_cache_shared(q->w->srv->cache) ? STRATA_REASON_NO_REDIS
                                                          : STRATA_REASON_NONE;
    if (status == STRATA_OK_L1_ONLY || reason == STRATA_REASON_NO_REDIS)
        add_header(q, "X-Cache-Write", "l1-only");
    add_reason(q, reason);
}

/* ---- create ------------------------------------------------------------------------------- */

static void on_created(int status, void *arg)
{
    sess_op *s = arg;
    req *q = s->q;
    if (status == STRATA_OK || status == STRATA_OK_L1_ONLY) {
        char loc[64];
        snprintf(loc, sizeof loc, "/v1/sessions/%s", s->id);
        wrote_status(q, status);
        add_header(q, "Location", loc);
        reply_json(q, 201, json_pack("{s:s}", "id", s->id));
    } else {
        reply_status(q, status);
    }
    free(s);
}

static void session_create(req *q)
{
    uint64_t ttl;
    if (ttl_of(q, &ttl) != 0)
        return;
    json_t *doc = body_object(q);
    if (doc == NULL)
        return;
    sess_op *s = calloc(1, sizeof *s);
    if (s == NULL) {
        json_decref(doc);
        reply_error(q, 503, "out_of_memory", "out of memory");
        return;
    }
    s->q = q;
    if (strata_session_new_id(s->id) != 0) {
        json_decref(doc);
        free(s);
        reply_error(q, 503, "no_randomness", "could not make a session id");
        return;
    }
    int rc = write_session(q, s->id, doc, ttl, STRATA_SET_NX, on_created, s);
    json_decref(doc);
    if (rc != STRATA_PENDING)
        on_created(rc, s);
}

/* ---- merge patch (RFC 7396) -------------------------------------------------------------- */

/* Applies patch to target (consumed) and returns the result (a new reference). */
static json_t *merge_patch(json_t *target, json_t *patch)
{
    if (!json_is_object(patch)) {
        json_decref(target);
        return json_incref(patch);
    }
    if (!json_is_object(target)) {
        json_decref(target);
        target = json_object();
    }
    const char *k;
    json_t *v;
    json_object_foreach(patch, k, v)
    {
        if (json_is_null(v))
            json_object_del(target, k);
        else
            json_object_set_new(target, k, merge_patch(json_incref(json_object_get(target, k)), v));
    }
    return target;
}

/* ---- read, replace, patch ----------------------------------------------------------------- */

/* The read's TTL was slid: now the read is answered. Answering only after the slide landed
 * keeps a client's next request from being overtaken by it. */
static void slid(int status, void *arg)
{
    sess_op *s = arg;
    if (status != STRATA_OK && status != STRATA_OK_L1_ONLY && status != STRATA_ENOTFOUND)
        log_msg(LOG_WARN, "a session read could not slide its TTL: %s", strata_strerror(status));
    reply_json(s->q, 200, s->patch); /* the document read */
    free(s);
}

/* The TTL a stored session was given (exact: sessions are written without jitter). */
static uint64_t stored_ttl(const strata_value *v)
{
    uint64_t exp = strata_value_expires_ms(v), created = strata_value_created_ms(v);
    return exp > created ? exp - created : STRATA_SESSION_TTL_DEFAULT_MS;
}

static void on_written(int status, void *arg)
{
    sess_op *s = arg;
    req *q = s->q;
    if (status == STRATA_OK || status == STRATA_OK_L1_ONLY) {
        wrote_status(q, status);
        if (q->method == M_PATCH)
            reply_json(q, 200, json_incref(s->patch));
        else
            reply_empty(q, 204);
    } else {
        reply_status(q, status);
    }
    json_decref(s->patch);
    free(s);
}

/* Slides the session's TTL, then answers a GET with doc (consumed). The slide is a touch: the
 * stored times change, the document is not written again, so a write racing the read is kept. */
static void answer_read(sess_op *s, json_t *doc, uint64_t ttl)
{
    json_decref(s->patch);
    s->patch = doc;
    strata_key k = key_of(s->q, s->id);
    int rc = strata_cache_touch_async(s->q->w->loop, &k, ttl, slid, s);
    if (rc != STRATA_PENDING) /* done already (memory only), or failed: no callback follows */
        slid(rc, s);
}

static void on_read(int status, strata_value *v, void *arg)
{
    sess_op *s = arg;
    req *q = s->q;
    json_t *doc = NULL;
    uint64_t ttl = 0, left = 0;
    if (status == STRATA_OK_L1_ONLY || status == STRATA_ENOTFOUND)
        add_reason(q, strata_fallback_reason()); /* Redis away: this instance's copy, or none */
    if (status == STRATA_OK_L1_ONLY)
        status = STRATA_OK;
    if (status == STRATA_OK) {
        doc = json_loadb(strata_value_data(v), strata_value_len(v), 0, NULL);
        ttl = stored_ttl(v);
        left = strata_value_ttl_left_ms(v, strata_now_ms());
        strata_value_release(v);
    }
    if (doc == NULL) {
        json_decref(s->patch);
        free(s);
        if (status == STRATA_ENOTFOUND)
            reply_error(q, 404, "not_found", "no such session");
        else if (status == STRATA_OK)
            reply_error(q, 500, "corrupt_session", "the stored session is not JSON");
        else
            reply_status(q, status);
        return;
    }
    if (q->method == M_GET && left > ttl / 2) { /* less than half gone by: no slide yet */
        json_decref(s->patch);
        free(s);
        reply_json(q, 200, doc);
        return;
    }
    if (q->method == M_GET) {
        answer_read(s, doc, ttl);
        return;
    }
    if (q->method == M_PATCH) {
        json_t *merged = merge_patch(doc, s->patch);
        json_decref(s->patch);
        s->patch = merged;
    } else
        json_decref(doc); /* PUT: the new document replaces it */
    int rc = write_session(q, s->id, s->patch, ttl, 0, on_written, s);
    if (rc != STRATA_PENDING)
        on_written(rc, s);
}

static void on_deleted(int status, void *arg)
{
    sess_op *s = arg;
    req *q = s->q;
    free(s);
    if (status == STRATA_ENOTFOUND) {
        reply_error(q, 404, "not_found", "no such session");
    } else if (status == STRATA_OK || status == STRATA_OK_L1_ONLY) {
        wrote_status(q, status), reply_empty(q, 204);
    } else if (status == STRATA_EUNAVAILABLE || status == STRATA_ETIMEDOUT ||
               status == STRATA_EREADONLY || status == STRATA_EPROTO) {
        /* A delete Redis did not take is not made in memory alone: it would come back. One
         * that timed out may still run in Redis: either way the client retries. */
        add_reason(q, strata_fallback_reason());
        add_header(q, "Retry-After", "1");
        reply_error(q, 503, "redis_unavailable",
                    status == STRATA_ETIMEDOUT
                        ? "the session may not be deleted: Redis did not answer in time; retry"
                        : "the session was not deleted: Redis cannot take the delete now; retry");
    } else {
        reply_status(q, status);
    }
}

void session_handle(req *q)
{
    if (q->r.id == R_SESSIONS) {
        session_create(q);
        return;
    }
    if (strata_session_id_check(q->r.key) != 0) {
        reply_error(q, 400, "bad_session_id", "a session id is 22 characters of A-Z a-z 0-9 - _");
        return;
    }
    sess_op *s = calloc(1, sizeof *s);
    if (s == NULL) {
        reply_error(q, 503, "out_of_memory", "out of memory");
        return;
    }
    s->q = q;
    strcpy(s->id, q->r.key);
    if (q->method == M_PUT || q->method == M_PATCH) {
        if ((s->patch = body_object(q)) == NULL) {
            free(s);
            return;
        }
    }
    strata_key k = key_of(q, s->id);
    int rc;
    if (q->method == M_DELETE) {
        rc = strata_cache_del_strict_async(q->w->loop, &k, on_deleted, s);
        if (rc != STRATA_PENDING)
            on_deleted(rc, s);
        return;
    }
    strata_value *v = NULL;
    rc = strata_cache_get_async(q->w->loop, &k, on_read, s, &v);
    if (rc != STRATA_PENDING)
        on_read(rc, v, s);
}
