/* kv_lease.c: the lease protocol on the key/value API: cache-aside without a stampede, for HTTP
 * clients in any language (issue 13, step C; docs/api.md, "Leases").
 *
 *   GET|HEAD /v1/cache/{ns}/{key}  X-Cache-Lease: S  [X-Cache-Wait: S]
 *       a hit: as a plain GET. A miss: 404 with X-Cache-Lease-Token (this caller computes); or
 *       200 with the value another caller stored meanwhile (X-Cache: HIT-COALESCED); or 404
 *       without a token (the wait ended, the lease still held); 503 lease_busy past the bound
 *   PUT    /v1/cache/{ns}/{key}  X-Cache-Lease-Token: T                        fill: 204 | 409
 *   PUT    /v1/cache/{ns}/{key}  X-Cache-Lease-Token: T  X-Cache-Error: 1
 *       the computation failed (strata_lease_fail): 204 with X-Cache: STALE when the stale copy
 *       is kept for the error TTL, 204 when the error result is stored or a value was written
 *       meanwhile; 409
 *   PATCH  /v1/cache/{ns}/{key}  X-Cache-Lease-Token: T  X-Cache-Lease: S     extend: 204 | 409
 *   DELETE /v1/cache/{ns}/{key}  X-Cache-Lease-Token: T                      release: 204 | 409
 *
 * The library decides everything (include/strata/lease.h): which caller among all instances
 * holds a key's lease, the waiting (strata_lease_wait_async on the worker's loop: a waiting
 * request costs memory, never a thread), takeover when the holder's lease ends, the fallback to
 * one holder per instance when Redis cannot answer. This file maps headers to its calls and its
 * statuses to answers, and keeps the one bound the library cannot know of: how many requests the
 * process lets wait (STRATA_LEASE_WAITERS), below the library's own.
 *
 * A token acts only on the key it was granted for, and the key holds the tenant and namespace
 * (key.h): another tenant's or namespace's token is simply not the holder's (409).
 *
 * Each worker remembers when it granted its latest GRANTS_MAX tokens (the oldest forgotten), so
 * a fill that does not say how long its value took (?compute_time=) is given the time since its
 * grant when the same worker issued the token: what XFetch weighs (kv_fresh.c).
 */
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "kv_lease.h"

#define WAIT_RANGE "seconds from 0 to 60 (fractions to the millisecond allowed)"
#define GRANTS_MAX 4096

/* A ring of the worker's latest grants: token and when (worker thread only). */
struct kv_grants {
    unsigned next;
    struct {
        char token[STRATA_LEASE_TOKEN_LEN + 1];
        uint64_t at_ms;
    } e[GRANTS_MAX];
};

void kv_grant_note(worker *w, const char *token)
{
    if (w->grants == NULL && (w->grants = calloc(1, sizeof *w->grants)) == NULL)
        return; /* out of memory: fills of its tokens have no compute time, nothing worse */
    struct kv_grants *g = w->grants;
    unsigned i = g->next++ % GRANTS_MAX;
    memcpy(g->e[i].token, token, STRATA_LEASE_TOKEN_LEN + 1);
    g->e[i].at_ms = strata_now_ms();
}

/* Milliseconds since this worker granted token (forgotten then), or 0 when it did not (or no
 * longer remembers). Newest first: a fill usually follows its grant closely. */
static uint64_t grant_age(worker *w, const char *token)
{
    struct kv_grants *g = w->grants;
    unsigned n = g == NULL ? 0 : g->next < GRANTS_MAX ? g->next : GRANTS_MAX;
    for (unsigned k = 1; k <= n; k++) {
        unsigned i = (g->next - k) % GRANTS_MAX;
        if (memcmp(g->e[i].token, token, STRATA_LEASE_TOKEN_LEN + 1) == 0) {
            g->e[i].token[0] = '\0';
            uint64_t now = strata_now_ms();
            return now > g->e[i].at_ms ? now - g->e[i].at_ms : 1;
        }
    }
    return 0;
}

static void lease_not_held(req *q)
{
    reply_error(q, 409, "lease_not_held",
                "the lease token is not the holder's (expired, taken over, released, or never "
                "issued for this key): nothing was changed");
}

static void lease_busy(req *q, const char *why)
{
    atomic_fetch_add(&q->w->srv->lease_refused, 1);
    add_header(q, "Retry-After", "1");
    reply_error(q, 503, "lease_busy", "%s: retry later", why);
}

uint64_t kv_lease_ms(req *q)
{
    uint64_t ms = 0;
    codec_seconds(get_header(q, "X-Cache-Lease"), 1, q->w->srv->cfg.lease_max_ms, &ms);
    return ms;
}

/* X-Cache-Lease into ms (1 ms to STRATA_LEASE_MAX). Returns 0, or answers 400 and returns -1. */
static int lease_ms_of(req *q, uint64_t *ms)
{
    uint64_t max = q->w->srv->cfg.lease_max_ms;
    if (codec_seconds(get_header(q, "X-Cache-Lease"), 1, max, ms) == 0)
        return 0;
    reply_error(q, 400, "bad_lease",
                "X-Cache-Lease must be seconds above 0, at most %llu (fractions to the "
                "millisecond allowed)",
                (unsigned long long)(max / 1000));
    return -1;
}

/* The request's lease and wait. Returns 0, or answers 400 and returns -1. */
static int wait_opts_of(req *q, strata_lease_wait_opts *o)
{
    const char *wait = get_header(q, "X-Cache-Wait");
    memset(o, 0, sizeof *o);
    o->takeover = 1; /* a waiter whose holder died or gave up computes: nobody waits for nothing */
    o->wait_ms = q->w->srv->cfg.lease_wait_ms;
    if (lease_ms_of(q, &o->lease_ms) != 0)
        return -1;
    if (wait != NULL && codec_seconds(wait, 0, SERVE_LEASE_WAIT_MAX_MS, &o->wait_ms) != 0) {
        reply_error(q, 400, "bad_wait", "X-Cache-Wait must be " WAIT_RANGE);
        return -1;
    }
    return 0;
}

/* The token, if it has a token's form (22 characters of URL-safe base64); NULL after answering
 * 409 (a string that is no token was never issued) or 400 (none given). */
static const char *token_of(req *q)
{
    const char *t = get_header(q, "X-Cache-Lease-Token");
    if (t == NULL) {
        reply_error(q, 400, "bad_request", "X-Cache-Lease-Token is required");
        return NULL;
    }
    size_t n = strlen(t);
    if (n != STRATA_LEASE_TOKEN_LEN ||
        strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                  "0123456789-_") != n) {
        lease_not_held(q);
        return NULL;
    }
    return t;
}

int kv_lease_asked(req *q)
{
    if (get_header(q, "X-Cache-Lease") == NULL)
        return 0;
    strata_lease_wait_opts o;
    if (wait_opts_of(q, &o) != 0)
        return -1;
    /* The holder is expected to write: a reader given the lease would stall every waiter. */
    if (q->role < ROLE_WRITE) {
        reply_error(q, 403, "forbidden",
                    "X-Cache-Lease needs the write role: the lease's holder writes the value");
        return -1;
    }
    return 1;
}

/* ---- waiting ------------------------------------------------------------------------------ */

static void on_waited(int status, strata_lease_answer *a, void *arg)
{
    req *q = arg;
    int why = strata_fallback_reason();
    q->w->lease_waits--;
    atomic_fetch_sub(&q->w->srv->lease_waiting, 1);
    switch (status) {
    case STRATA_OK: /* stored by another caller after this one missed */
        kv_send_value(q, a->value, "l2", "HIT-COALESCED");
        break;
    case STRATA_LEASED: /* this caller computes */
        kv_grant_note(q->w, a->grant.token);
        add_header(q, "X-Cache-Lease-Token", a->grant.token);
        kv_send_miss(q, why);
        break;
    case STRATA_EHELD: /* the wait ended: another caller still computes */
        kv_send_miss(q, STRATA_REASON_NONE);
        break;
    case STRATA_EBUSY:
        lease_busy(q, "too many keys or requests wait for lease holders in this instance");
        break;
    case STRATA_ELIMIT:
        lease_busy(q, "Redis cannot be asked and this instance holds as many leases as it may");
        break;
    default:
        reply_status(q, status);
    }
}

void kv_lease_wait(req *q)
{
    server *srv = q->w->srv;
    strata_lease_wait_opts o;
    wait_opts_of(q, &o); /* checked by kv_lease_asked */
    if (atomic_fetch_add(&srv->lease_waiting, 1) >= srv->cfg.lease_waiters) {
        atomic_fetch_sub(&srv->lease_waiting, 1);
        lease_busy(q, "STRATA_LEASE_WAITERS requests wait for lease holders already");
        return;
    }
    q->w->lease_waits++;
    strata_key k = kv_key_of(q);
    strata_lease_answer a;
    int rc = strata_lease_wait_async(srv->leases, q->w->loop, &k, &o, on_waited, q, &a);
    if (rc != STRATA_PENDING)
        on_waited(rc, &a, q);
}

/* ---- the holder's calls ------------------------------------------------------------------- */

/* A fill, extend or release answered. */
static void on_holder_done(int status, void *arg)
{
    if (status == STRATA_ENOTHOLDER)
        lease_not_held(arg);
    else
        kv_on_written(status, arg);
}

/* The failing holder's answer (strata_lease_fail): the lease is released in every case but
 * ENOTHOLDER; what stands now is said by X-Cache: STALE (the stale copy is kept, answered to
 * everyone for the error TTL), or nothing (the error result is stored, or a newer value). */
static void on_failed(int status, strata_value *v, void *arg)
{
    req *q = arg;
    strata_value_release(v);
    if ((status == STRATA_OK_STALE || status == STRATA_OK_ERROR) &&
        strata_fallback_reason() != STRATA_REASON_NONE) {
        add_header(q, "X-Cache-Write", "l1-only"); /* written to this instance alone */
        add_reason(q, strata_fallback_reason());
    }
    switch (status) {
    case STRATA_OK_STALE:
        add_header(q, "X-Cache", "STALE");
        reply_empty(q, 204);
        break;
    case STRATA_OK_ERROR: /* stored, as a fill stores a value */
    case STRATA_OK:       /* a fresh value was written meanwhile: it stands */
    case STRATA_EEXISTS:  /* one was written between the read and the write: it stands */
        reply_empty(q, 204);
        break;
    case STRATA_ENOTHOLDER:
        lease_not_held(q);
        break;
    default:
        reply_status(q, status);
    }
}

void kv_lease_fill(req *q, const kv_put_opts *o)
{
    const char *token = token_of(q);
    if (token == NULL)
        return;
    if (o->opts.flags & STRATA_SET_NX || get_header(q, "If-Match") != NULL) {
        reply_error(q, 400, "bad_request",
                    "X-Cache-Lease-Token does not go with If-Match or If-None-Match: the lease "
                    "decides who writes");
        return;
    }
    size_t len;
    const char *body = get_body(q, &len);
    strata_key k = kv_key_of(q);
    strata_set_opts so = o->opts;
    if (!o->compute_given)
        so.compute_ms = grant_age(q->w, token); /* 0 when another worker issued it */
    if (so.flags & STRATA_VALUE_ERROR) {
        strata_value *v = NULL;
        int rc = strata_lease_fail_async(q->w->srv->leases, q->w->loop, &k, token, body ? body : "",
                                         len, &so, on_failed, q, &v);
        if (rc != STRATA_PENDING)
            on_failed(rc, v, q);
        return;
    }
    int rc = strata_lease_fill_async(q->w->srv->leases, q->w->loop, &k, token, body ? body : "",
                                     len, &so, on_holder_done, q);
    if (rc != STRATA_PENDING)
        on_holder_done(rc, q);
}

void kv_lease_extend(req *q)
{
    uint64_t ms;
    const char *token = token_of(q);
    if (token == NULL || lease_ms_of(q, &ms) != 0)
        return;
    strata_key k = kv_key_of(q);
    int rc =
        strata_lease_extend_async(q->w->srv->leases, q->w->loop, &k, token, ms, on_holder_done, q);
    if (rc != STRATA_PENDING)
        on_holder_done(rc, q);
}

void kv_lease_release(req *q)
{
    const char *token = token_of(q);
    if (token == NULL)
        return;
    strata_key k = kv_key_of(q);
    int rc =
        strata_lease_release_async(q->w->srv->leases, q->w->loop, &k, token, on_holder_done, q);
    if (rc != STRATA_PENDING)
        on_holder_done(rc, q);
}
