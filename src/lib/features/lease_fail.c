/* features/lease_fail.c: what a lease holder whose computation failed leaves behind.
 *
 * The holder reports the failure with its token and the error result (an upstream's error body,
 * a message). What is stored then decides what every waiter, and every reader for a while, is
 * answered, so a failing backend is asked once per error TTL, not by every caller:
 * - a copy of the key still kept past its expiry (within its grace or stale-if-error window,
 *   strata_set_opts) is kept instead: written again flagged STRATA_VALUE_STALE, fresh for the
 *   namespace's error TTL and exact (no jitter), so readers and waiters get that copy, marked
 *   stale, and nobody computes before the error TTL ends. What is left of its windows after that
 *   goes with it, so the copy is not kept longer than it would have been;
 * - otherwise the error result is stored flagged STRATA_VALUE_ERROR for the error TTL (negative
 *   caching, as strata_remember_done's STRATA_OK_ERROR);
 * - a fresh value found (written meanwhile by a plain set) is left as it is, the lease released.
 * Each is one read (the copy, as strata_cache_get_stale reads it) and one write with the token
 * (the lease's fill script; for the copy, a variant that refuses when the value's expiry changed
 * since the read: a write that landed in between is never overwritten with an older copy).
 */
#include <stdlib.h>
#include <string.h>

#include <strata/errors.h>
#include <strata/lease.h>

#include "cache/cache_internal.h"
#include "cache/twotier.h"
#include "core/token.h"
#include "features/lease_internal.h"
#include "l1/entry.h"
#include "l1/l1_internal.h"

#define ERROR_TTL_DEFAULT_MS 30000 /* a namespace whose error TTL is 0 (none): strata's default */

typedef struct fail_call {
    strata_leases *ls;
    tier t;
    uint64_t now;
    strata_get_cb cb;
    void *arg;
    int in_call, done, status; /* decided before the call returned: see cache/twotier.c */
    strata_value *v;           /* the answer */
    strata_value *copy;        /* the copy being kept */
    strata_key k;
    strata_set_opts so; /* the error result's options (their strings point into buf) */
    const char *tags[STRATA_TAGS_MAX_PER_ENTRY];
    const char *err;
    size_t err_len;
    char ns[STRATA_NAME_MAX + 1], tenant[STRATA_NAME_MAX + 1];
    char token[STRATA_LEASE_TOKEN_LEN + 1];
    char buf[]; /* the user key, the content type, the tag names, the error result */
} fail_call;

static void finish(fail_call *q, int status, strata_value *v)
{
    strata_value_release(q->copy);
    q->copy = NULL;
    if (q->in_call) {
        q->done = 1, q->status = status, q->v = v;
        return;
    }
    if (q->cb != NULL)
        q->cb(status, v, q->arg);
    else
        strata_value_release(v);
    free(q);
}

static void stored_error(int status, void *arg)
{
    fail_call *q = arg;
    int stored = status == 0 || status == STRATA_OK_L1_ONLY;
    if (stored)
        atomic_fetch_add(&q->ls->errors_stored, 1);
    finish(q, stored ? STRATA_OK_ERROR : status, NULL);
}

static void kept(int status, void *arg)
{
    fail_call *q = arg;
    if (status == 0 || status == STRATA_OK_L1_ONLY) {
        atomic_fetch_add(&q->ls->stale_kept, 1);
        finish(q, STRATA_OK_STALE, strata_value_retain(q->copy));
    } else
        finish(q, status, NULL); /* EEXISTS: a newer value was written; ENOTHOLDER; ... */
}

static void released(int status, void *arg)
{
    fail_call *q = arg;
    strata_value *v = q->copy;
    q->copy = NULL;
    if (status != 0) {
        strata_value_release(v);
        finish(q, status, NULL);
        return;
    }
    finish(q, strata_value_flags(v) & STRATA_VALUE_STALE ? STRATA_OK_STALE : STRATA_OK, v);
}

static void write_error(fail_call *q)
{
    int rc = strata__lease_fill_on(q->ls, q->t, &q->k, q->token, q->err, q->err_len, &q->so, NULL,
                                   q->now, stored_error, q);
    if (rc != STRATA_PENDING)
        stored_error(rc, q);
}

/* The copy again, flagged stale, fresh for the error TTL, with what is left of its windows. */
static void keep_copy(fail_call *q, strata_value *v)
{
    strata_ns_config cfg;
    strata_l1_ns_config(q->ls->c->l1, q->k.ns, &cfg);
    uint64_t ttl = cfg.error_ttl_ms != 0 ? cfg.error_ttl_ms : ERROR_TTL_DEFAULT_MS;
    uint64_t until = entry_deadline(v), expires = entry_expires(v);
    uint64_t rest = until > q->now + ttl ? until - (q->now + ttl) : 0;
    const char *tags[STRATA_TAGS_MAX_PER_ENTRY];
    for (size_t i = 0; i < strata_value_tag_count(v); i++)
        tags[i] = strata_value_tag(v, i);
    strata_set_opts so = {.ttl_ms = ttl,
                          .stale_if_error_ms =
                              rest < STRATA_STALE_MAX_MS ? rest : STRATA_STALE_MAX_MS,
                          .content_type = strata_value_content_type(v),
                          .tags = tags,
                          .ntags = strata_value_tag_count(v),
                          .flags = STRATA_VALUE_STALE | STRATA_SET_NO_JITTER};
    q->copy = v;
    int rc = strata__lease_fill_on(q->ls, q->t, &q->k, q->token, strata_value_data(v),
                                   strata_value_len(v), &so, &expires, q->now, kept, q);
    if (rc != STRATA_PENDING)
        kept(rc, q);
}

/* The key as the holder's failure finds it: a value to keep, one to leave, or none. */
static void got_copy(int status, strata_value *v, void *arg)
{
    fail_call *q = arg;
    int fresh = status == STRATA_OK || status == STRATA_OK_L1_ONLY;
    if (v != NULL && (strata_value_flags(v) & STRATA_VALUE_ERROR)) {
        strata_value_release(v); /* an error result is never kept as a copy */
        v = NULL;
    }
    if (v != NULL && fresh) {
        q->copy = v; /* written meanwhile: leave it, give the lease up */
        int rc = strata__lease_release_on(q->ls, q->t, &q->k, q->token, q->now, released, q);
        if (rc != STRATA_PENDING)
            released(rc, q);
    } else if (v != NULL && status == STRATA_OK_STALE) {
        keep_copy(q, v);
    } else {
        strata_value_release(v);
        write_error(q);
    }
}

/* One allocation holding the key, the token and the error result with its options. */
static fail_call *new_call(strata_leases *ls, tier t, const strata_key *k, const char *token,
                           const void *err, size_t len, const strata_set_opts *opts)
{
    static const strata_set_opts none;
    const strata_set_opts *o = opts ? opts : &none;
    size_t ct = o->content_type ? strlen(o->content_type) + 1 : 0, names = 0;
    for (size_t i = 0; i < o->ntags; i++)
        names += strlen(o->tags[i]) + 1;
    fail_call *q = calloc(1, sizeof *q + k->len + ct + names + len);
    if (q == NULL)
        return NULL;
    q->ls = ls, q->t = t, q->now = ls->c->clock();
    char *p = q->buf;
    memcpy(p, k->key, k->len);
    memcpy(q->ns, k->ns, strlen(k->ns) + 1);
    if (k->tenant != NULL)
        memcpy(q->tenant, k->tenant, strlen(k->tenant) + 1);
    q->k = (strata_key){q->ns, k->tenant ? q->tenant : NULL, p, k->len};
    p += k->len;
    memcpy(q->token, token, STRATA_LEASE_TOKEN_LEN + 1);
    q->so = *o;
    q->so.flags = (o->flags & ~STRATA_VALUE_STALE) | STRATA_VALUE_ERROR;
    if (ct != 0) {
        memcpy(p, o->content_type, ct);
        q->so.content_type = p, p += ct;
    }
    for (size_t i = 0; i < o->ntags; i++) {
        size_t n = strlen(o->tags[i]) + 1;
        memcpy(p, o->tags[i], n);
        q->tags[i] = p, p += n;
    }
    q->so.tags = q->tags;
    if (len > 0)
        memcpy(p, err, len);
    q->err = p, q->err_len = len;
    return q;
}

static int fail(strata_leases *ls, tier t, const strata_key *k, const char *token, const void *err,
                size_t len, const strata_set_opts *opts, strata_get_cb cb, void *arg,
                strata_value **out)
{
    *out = NULL;
    if (strata__token_check(token) != 0 || (len > 0 && err == NULL) ||
        (opts != NULL &&
         ((opts->flags & STRATA_SET_NX) || opts->ntags > STRATA_TAGS_MAX_PER_ENTRY ||
          (opts->ntags > 0 && opts->tags == NULL))))
        return STRATA_EINVAL;
    for (size_t i = 0; opts != NULL && i < opts->ntags; i++)
        if (opts->tags[i] == NULL)
            return STRATA_EINVAL;
    l1_addr a;
    int rc = strata__l1_resolve(ls->c->l1, k, &a); /* names and key checked before copying */
    if (rc != 0)
        return rc;
    fail_call *q = new_call(ls, t, k, token, err, len, opts);
    if (q == NULL)
        return STRATA_ENOMEM;
    q->cb = cb, q->arg = arg, q->in_call = 1;
    strata_value *v;
    rc = strata__tt_get_ex(ls->c, t, &q->k, q->now, 1, got_copy, q, &v);
    if (rc != STRATA_PENDING)
        got_copy(rc, v, q);
    q->in_call = 0;
    if (!q->done)
        return STRATA_PENDING;
    rc = q->status;
    *out = q->v;
    free(q);
    return rc;
}

int strata_lease_fail(strata_leases *ls, const strata_key *k, const char *token, const void *err,
                      size_t len, const strata_set_opts *opts, strata_value **out)
{
    return fail(ls, ls->c->pool, k, token, err, len, opts, NULL, NULL, out);
}

int strata_lease_fail_async(strata_leases *ls, strata_loop *lp, const strata_key *k,
                            const char *token, const void *err, size_t len,
                            const strata_set_opts *opts, strata_get_cb cb, void *arg,
                            strata_value **out)
{
    return fail(ls, strata__loop_tier(lp), k, token, err, len, opts, cb, arg, out);
}
