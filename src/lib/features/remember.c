/* features/remember.c: strata_cache_remember, sync and async: get a key, or compute it once.
 *
 * A remember is four stages, each a call of the layers below it: the cache's read; on a miss,
 * the lease wait (features/lease_wait.c: one flight per process, one holder across instances);
 * for the caller given the lease, the user's computation, completed through its handle; then
 * the fill (features/lease.c: the value stored and the lease released at once, only for the
 * holder's token) or, without a lease (the local table was full), a plain set. One code path
 * serves both forms: a stage's call is the synchronous one (the pool; the wait blocks the
 * thread) or the loop's, and either way its answer goes to the same next step. A synchronous
 * remember is answered before it returns; a loop's is answered during the call (cache.h: the
 * status is returned, no callback) or later by its callback.
 *
 * The caller that computed is answered its own bytes (an entry built by the cache's own write
 * rules, strata__l1_prepare, and never linked), not a read-back: a fill refused because its lease
 * ran out still gives the caller the value it computed, which is a correct value. An error result
 * is stored flagged STRATA_VALUE_ERROR, which L1's TTL rules cut to the namespace's error TTL (in
 * both tiers: the PX sent to Redis is the entry's); every answer carrying that flag is
 * STRATA_OK_ERROR.
 *
 * Freshness adds a stage before the wait. The read is strata_cache_get_stale; a value fresh but
 * chosen by this caller's XFetch draw, or stale within its grace, is refreshed: the caller tries
 * the key's lease in STRATA_LEASE_REFRESH mode, without waiting. Not given it, it answers what
 * it read (a hit; or STRATA_OK_STALE). Given it, it reads once more, since a REFRESH acquire is
 * granted whatever is stored and a caller whose read came just before another's fill would
 * otherwise compute the same value again; then it computes like a holder from the wait. A
 * failure under a lease goes through strata_lease_fail, which keeps a copy still within its
 * windows (flagged STRATA_VALUE_STALE, for the error TTL) rather than storing the error: the
 * waiters woken read that copy, and every answer of a STALE-flagged value is STRATA_OK_STALE.
 * The compute time, from the callback's call to strata_remember_done on the cache's clock, is
 * stored with every value written (strata_set_opts.compute_ms).
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <strata/errors.h>
#include <strata/remember.h>

#include "cache/cache_internal.h"
#include "core/rand.h"
#include "features/lease_internal.h"
#include "l1/l1_internal.h"

struct strata_remember_handle {
    strata_leases *ls;
    strata_loop *lp; /* NULL: the synchronous call */
    strata_compute_fn compute;
    strata_remember_cb cb;
    void *arg;
    int in_call;   /* the call that made it has not returned: an answer is its result */
    int in_done;   /* inside strata_remember_done: a callback is deferred to the loop */
    int computing; /* compute was called, strata_remember_done not yet */
    int answered, status;
    strata_remember_answer ans;
    int mode;               /* enum mode: how the value read was judged */
    strata_value *seen;     /* REFRESH_EARLY, REFRESH_STALE: the value read, answered if the
                               refresh is refused or given up */
    uint64_t started;       /* c->clock() when compute was called: its time is stored */
    int leased;             /* the lease is this call's (token) */
    int result;             /* what the computation gave: STRATA_OK or STRATA_OK_ERROR */
    strata_value *computed; /* its answer, until handed over */
    char token[STRATA_LEASE_TOKEN_LEN + 1];
    strata_lease_wait_opts wo;
    strata_set_opts so; /* its strings point into buf */
    const char *tags[STRATA_TAGS_MAX_PER_ENTRY];
    strata_key k; /* the copies below */
    char ns[STRATA_NAME_MAX + 1], tenant[STRATA_NAME_MAX + 1];
    char buf[]; /* the user key, the content type, the tag names */
};

/* How a remember came to compute (or to wait). */
enum mode {
    MISS = 0,      /* nothing usable was read: the wait path (a miss, expired, or within the
                      stale-if-error window only) */
    REFRESH_EARLY, /* fresh, and this caller's XFetch draw chose it to refresh early */
    REFRESH_STALE  /* past its TTL within its grace: answered stale unless given the lease */
};

#define COUNT(h, field) atomic_fetch_add(&(h)->ls->rem.field, 1)

/* ---- the XFetch draw ------------------------------------------------------------------------- */

/* core/rand.h's generator, one state per thread (as L1's jitter): a draw per remember of a
 * fresh value must cost nothing and never contend. */
static double default_draw(void)
{
    static _Thread_local uint64_t state;
    if (state == 0)
        state = strata__rand_seed() | 1;
    return 1.0 - strata__rand_unit(&state); /* (0, 1]: ln(u) is finite */
}

double (*strata__remember_draw)(void);

static double draw(void)
{
    double (*d)(void) = strata__remember_draw;
    return d != NULL ? d() : default_draw();
}

/* ---- answering ------------------------------------------------------------------------------ */

static void free_handle(strata_remember_handle *h)
{
    strata_value_release(h->computed);
    strata_value_release(h->seen);
    free(h);
}

static void deliver(strata_remember_handle *h)
{
    strata_remember_answer a = h->ans;
    strata_remember_cb cb = h->cb;
    void *arg = h->arg;
    int status = h->status;
    free_handle(h);
    cb(status, &a, arg);
}

static void deferred(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    deliver(arg);
}

static int value_status(const strata_value *v)
{
    return (strata_value_flags(v) & STRATA_VALUE_ERROR) ? STRATA_OK_ERROR : STRATA_OK;
}

/* h's answer: to the call still running (its result), or the callback (from the loop; deferred
 * when strata_remember_done is on the stack, so the user's callback never runs inside it). */
static void answer(strata_remember_handle *h, int status, strata_value *v, int source)
{
    COUNT(h, calls);
    if (status == STRATA_OK || status == STRATA_OK_ERROR) {
        if (source == STRATA_REMEMBER_HIT)
            COUNT(h, hits);
        else if (source == STRATA_REMEMBER_COALESCED)
            COUNT(h, coalesced);
        if (status == STRATA_OK_ERROR && source != STRATA_REMEMBER_COMPUTED)
            COUNT(h, negative_hits);
    } else if (status == STRATA_OK_STALE) {
        COUNT(h, stale);
    } else if (status == STRATA_EHELD) {
        COUNT(h, not_available);
    }
    h->answered = 1, h->status = status;
    h->ans.value = v, h->ans.source = source;
    if (h->in_call || h->lp == NULL || h->in_done)
        return; /* the call's result; or strata_remember_done defers it when it ends */
    deliver(h);
}

/* Gives h's lease up, if it holds one (nothing of it was stored). */
static void release_lease(strata_remember_handle *h)
{
    if (!h->leased)
        return;
    h->leased = 0;
    if (h->lp != NULL)
        strata_lease_release_async(h->ls, h->lp, &h->k, h->token, NULL, NULL);
    else
        strata_lease_release(h->ls, &h->k, h->token);
}

static void give_up(strata_remember_handle *h, int status)
{
    release_lease(h);
    answer(h, status, NULL, 0);
}

/* Answers v, read or woken to: a copy kept after a failed refresh is stale whoever reads it, an
 * error result is an error. */
static void answer_read(strata_remember_handle *h, strata_value *v, int source)
{
    if (strata_value_flags(v) & STRATA_VALUE_STALE)
        answer(h, STRATA_OK_STALE, v, STRATA_REMEMBER_STALE);
    else
        answer(h, value_status(v), v, source);
}

/* A refresh that did not happen (no lease, given up): the value read is the answer, as it was
 * judged (fresh, or stale within its grace). */
static void answer_seen(strata_remember_handle *h)
{
    release_lease(h);
    strata_value *v = h->seen;
    h->seen = NULL;
    if (h->mode == REFRESH_STALE)
        answer(h, STRATA_OK_STALE, v, STRATA_REMEMBER_STALE);
    else
        answer(h, STRATA_OK, v, STRATA_REMEMBER_HIT);
}

/* ---- the stages ----------------------------------------------------------------------------- */

static void filled(int status, void *arg)
{
    strata_remember_handle *h = arg;
    if (status == STRATA_ENOTHOLDER) {
        COUNT(h, fill_refused); /* another caller took the lease over: it stores its own */
        h->leased = 0;
    } else if (status != STRATA_OK && status != STRATA_OK_L1_ONLY) {
        COUNT(h, fill_failed);
        /* Nothing was stored: the waiters go on at once, unless the loop is being freed. */
        if (h->lp == NULL || status != STRATA_ETIMEDOUT)
            release_lease(h);
    }
    h->leased = 0;
    strata_value *v = h->computed;
    h->computed = NULL;
    answer(h, h->result, v, STRATA_REMEMBER_COMPUTED);
}

/* What a failure found written meanwhile (its own write refused, the lease released): answered
 * rather than the error result, when it is there to read. */
static void on_reread(strata_remember_handle *h, int status, strata_value *v)
{
    if ((status == STRATA_OK || status == STRATA_OK_L1_ONLY) && v != NULL) {
        answer_read(h, v, STRATA_REMEMBER_COALESCED);
        return;
    }
    strata_value_release(v);
    filled(STRATA_OK, h); /* the error result computed is the answer */
}

static void reread(int status, strata_value *v, void *arg)
{
    on_reread(arg, status, v);
}

/* strata_lease_fail's answer to a failed computation (the lease is released by it but in the
 * cases filled() handles the same way). */
static void failed(int status, strata_value *v, void *arg)
{
    strata_remember_handle *h = arg;
    if (status == STRATA_OK_STALE) { /* a copy was kept: it is everyone's answer */
        COUNT(h, stale_if_error);
        h->leased = 0;
        answer(h, STRATA_OK_STALE, v, STRATA_REMEMBER_STALE);
    } else if (status == STRATA_OK && v != NULL) { /* a fresh value, left as it is */
        h->leased = 0;
        answer_read(h, v,
                    h->mode == REFRESH_EARLY ? STRATA_REMEMBER_HIT : STRATA_REMEMBER_COALESCED);
    } else if (status == STRATA_EEXISTS) { /* written meanwhile: the lease was released */
        strata_value_release(v);
        h->leased = 0;
        v = NULL;
        int rc = h->lp != NULL ? strata_cache_get_async(h->lp, &h->k, reread, h, &v)
                               : strata_cache_get(h->ls->c, &h->k, &v);
        if (rc != STRATA_PENDING)
            on_reread(h, rc, v);
    } else {
        strata_value_release(v);
        filled(status == STRATA_OK_ERROR ? STRATA_OK : status, h); /* the error result stored */
    }
}

/* The computation gave value[0..len) (result: STRATA_OK, or STRATA_OK_ERROR for an error
 * result): the caller's answer is built, then the value filled (or set, without a lease). A
 * failure under a lease goes through strata_lease_fail, so a copy still kept wins over it. */
static void store(strata_remember_handle *h, int result, const void *value, size_t len)
{
    strata_cache *c = h->ls->c;
    h->result = result;
    h->so.flags = result == STRATA_OK_ERROR ? STRATA_VALUE_ERROR : 0;
    /* The entry the write will build, never linked; tag versions are not read (a detached
     * value is never checked against them), so L1's tag table is left as it is. */
    static const uint64_t no_versions[STRATA_TAGS_MAX_PER_ENTRY];
    l1_write w = {.k = &h->k,
                  .value = value,
                  .len = len,
                  .opts = &h->so,
                  .now_ms = c->clock(),
                  .tag_versions = no_versions};
    struct strata_value *e;
    int rc = strata__l1_prepare(c->l1, &w, &e);
    if (rc != 0) {
        give_up(h, rc); /* a value the cache cannot take: the fill would refuse it too */
        return;
    }
    strata__l1_detach(e);
    h->computed = e;
    if (h->leased && result == STRATA_OK_ERROR) {
        strata_value *v = NULL;
        rc = h->lp != NULL ? strata_lease_fail_async(h->ls, h->lp, &h->k, h->token, value, len,
                                                     &h->so, failed, h, &v)
                           : strata_lease_fail(h->ls, &h->k, h->token, value, len, &h->so, &v);
        if (rc != STRATA_PENDING)
            failed(rc, v, h);
        return;
    }
    if (h->leased && h->lp != NULL)
        rc = strata_lease_fill_async(h->ls, h->lp, &h->k, h->token, value, len, &h->so, filled, h);
    else if (h->leased)
        rc = strata_lease_fill(h->ls, &h->k, h->token, value, len, &h->so);
    else if (h->lp != NULL)
        rc = strata_cache_set_async(h->lp, &h->k, value, len, &h->so, filled, h);
    else
        rc = strata_cache_set(c, &h->k, value, len, &h->so);
    if (rc != STRATA_PENDING)
        filled(rc, h);
}

static void compute_stage(strata_remember_handle *h)
{
    COUNT(h, computations);
    if (h->mode == REFRESH_EARLY)
        COUNT(h, early_refreshes);
    else if (h->mode == REFRESH_STALE)
        COUNT(h, stale_refreshes);
    h->computing = 1;
    h->started = h->ls->c->clock();
    int sync = h->lp == NULL;
    h->compute(&h->k, h, h->arg);
    /* On a loop h may be answered and gone by now; a synchronous call is always still here. */
    if (sync && h->computing) {
        h->computing = 0;
        COUNT(h, abandoned);
        give_up(h, STRATA_EINVAL); /* returned without completing its handle */
    }
}

static void on_wait(strata_remember_handle *h, int status, strata_lease_answer *a)
{
    if (status == STRATA_OK) {
        answer_read(h, a->value, a->coalesced ? STRATA_REMEMBER_COALESCED : STRATA_REMEMBER_HIT);
    } else if (status == STRATA_LEASED) {
        h->leased = 1;
        memcpy(h->token, a->grant.token, sizeof h->token);
        compute_stage(h);
    } else if (status == STRATA_ELIMIT) { /* no lease to be had: compute and set */
        COUNT(h, unleased);
        compute_stage(h);
    } else {
        h->ans.held_ms = status == STRATA_EHELD ? a->grant.held_ms : 0;
        answer(h, status, NULL, 0);
    }
}

static void waited(int status, strata_lease_answer *a, void *arg)
{
    on_wait(arg, status, a);
}

static void wait_stage(strata_remember_handle *h)
{
    strata_lease_answer a;
    int rc = h->lp != NULL ? strata_lease_wait_async(h->ls, h->lp, &h->k, &h->wo, waited, h, &a)
                           : strata_lease_wait(h->ls, &h->k, &h->wo, &a);
    if (rc != STRATA_PENDING)
        on_wait(h, rc, &a);
}

/* The refresh lease is this caller's, but the value read may have been refreshed by another
 * caller between the read and the acquire (a REFRESH acquire takes the lease whatever is stored):
 * read again, and compute only if the value is still the one read. */
static void on_recheck(strata_remember_handle *h, int status, strata_value *v)
{
    int read = (status == STRATA_OK || status == STRATA_OK_L1_ONLY) && v != NULL;
    if (read && (strata_value_expires_ms(v) != strata_value_expires_ms(h->seen) ||
                 strata_value_created_ms(v) != strata_value_created_ms(h->seen))) {
        release_lease(h); /* written meanwhile: that write is the refresh */
        answer_read(h, v, STRATA_REMEMBER_COALESCED);
        return;
    }
    strata_value_release(v);
    if (status < 0 && status != STRATA_ENOTFOUND) {
        if (status == STRATA_ETIMEDOUT && h->lp != NULL)
            h->leased = 0; /* the loop is being freed: the lease expires by itself */
        answer_seen(h);
    } else {
        compute_stage(h);
    }
}

static void rechecked(int status, strata_value *v, void *arg)
{
    on_recheck(arg, status, v);
}

static void on_refresh_lease(strata_remember_handle *h, int status, const strata_lease_grant *g)
{
    if (status != STRATA_OK) { /* held by another caller (or none to be had): no refresh here */
        answer_seen(h);
        return;
    }
    h->leased = 1;
    memcpy(h->token, g->token, sizeof h->token);
    strata_value *v = NULL;
    int rc = h->lp != NULL ? strata_cache_get_stale_async(h->lp, &h->k, rechecked, h, &v)
                           : strata_cache_get_stale(h->ls->c, &h->k, &v);
    if (rc != STRATA_PENDING)
        on_recheck(h, rc, v);
}

static void refresh_leased(int status, const strata_lease_grant *g, void *arg)
{
    on_refresh_lease(arg, status, g);
}

/* v is to be refreshed (mode): the caller given the lease computes, the others answer v. */
static void refresh_stage(strata_remember_handle *h, int mode, strata_value *v)
{
    h->mode = mode;
    h->seen = v;
    strata_lease_grant g;
    int rc = h->lp != NULL
                 ? strata_lease_acquire_async(h->ls, h->lp, &h->k, h->wo.lease_ms,
                                              STRATA_LEASE_REFRESH, refresh_leased, h, &g)
                 : strata_lease_acquire(h->ls, &h->k, h->wo.lease_ms, STRATA_LEASE_REFRESH, &g);
    if (rc != STRATA_PENDING)
        on_refresh_lease(h, rc, &g);
}

/* The first read, as strata_cache_get_stale gave it, judged by the value's freshness. */
static void on_get(strata_remember_handle *h, int status, strata_value *v)
{
    int fresh = status == STRATA_OK || status == STRATA_OK_L1_ONLY;
    if (v != NULL && (fresh || status == STRATA_OK_STALE)) {
        unsigned flags = strata_value_flags(v);
        if (fresh && (flags & (STRATA_VALUE_STALE | STRATA_VALUE_ERROR))) {
            answer_read(h, v, STRATA_REMEMBER_HIT); /* a kept copy, a negative hit: as stored */
            return;
        }
        /* An error result past its TTL is a miss like any other. */
        int f = flags & STRATA_VALUE_ERROR
                    ? STRATA_EXPIRED
                    : strata_value_freshness(v, h->ls->c->clock(), fresh ? draw() : 1.0);
        if (f == STRATA_FRESH) {
            answer(h, STRATA_OK, v, STRATA_REMEMBER_HIT);
            return;
        }
        if (f == STRATA_FRESH_EARLY || f == STRATA_STALE) {
            refresh_stage(h, f == STRATA_STALE ? REFRESH_STALE : REFRESH_EARLY, v);
            return;
        }
        /* Within its stale-if-error window only, or expired since the read: a miss (a failed
         * computation will find the copy itself, strata_lease_fail). */
    }
    strata_value_release(v);
    if (status == STRATA_ENOTFOUND || status == STRATA_OK_STALE || fresh)
        wait_stage(h);
    else
        answer(h, status, NULL, 0); /* STRATA_ETIMEDOUT: the loop is being freed */
}

static void got(int status, strata_value *v, void *arg)
{
    on_get(arg, status, v);
}

/* ---- the calls ------------------------------------------------------------------------------ */

int strata_remember_done(strata_remember_handle *h, int status, const void *value, size_t len)
{
    if (h == NULL || !h->computing ||
        (status != STRATA_OK && status != STRATA_OK_ERROR && status >= 0) ||
        (value == NULL && len > 0))
        return STRATA_EINVAL;
    h->computing = 0;
    h->in_done = 1;
    /* The computation's time, on the cache's clock, goes with the value: XFetch weighs it. */
    uint64_t end = h->ls->c->clock();
    h->so.compute_ms = end > h->started ? end - h->started : 0;
    if (status < 0) {
        COUNT(h, abandoned);
        if (h->seen != NULL)
            answer_seen(h); /* a refresh given up: the value read is still an answer */
        else
            give_up(h, status);
    } else {
        if (status == STRATA_OK_ERROR)
            COUNT(h, failures);
        store(h, status, value == NULL ? "" : value, len);
    }
    /* An answer given inside this call is the result of the call that made h (still running),
     * or goes to the callback from the loop, once this call has returned. */
    h->in_done = 0;
    if (h->answered && !h->in_call) {
        struct timeval now = {0, 0};
        if (event_base_once(strata__loop_base(h->lp), -1, EV_TIMEOUT, deferred, h, &now) != 0)
            deliver(h); /* out of memory: at once rather than never */
    }
    return 0;
}

static int check_opts(const strata_remember_opts *o)
{
    if (o == NULL)
        return 0;
    for (size_t i = 0; i < sizeof o->reserved / sizeof o->reserved[0]; i++)
        if (o->reserved[i] != 0)
            return STRATA_EINVAL;
    if (o->grace_ms > STRATA_STALE_MAX_MS || o->stale_if_error_ms > STRATA_STALE_MAX_MS ||
        !(o->beta <= STRATA_BETA_MAX)) /* NaN too */
        return STRATA_EINVAL;
    if (o->lease_ms > STRATA_LEASE_MAX_MS || o->wait_ms > STRATA_LEASE_MAX_MS ||
        (o->wait_end != STRATA_REMEMBER_TAKEOVER && o->wait_end != STRATA_REMEMBER_NOT_AVAILABLE) ||
        (o->ntags > 0 && o->tags == NULL))
        return STRATA_EINVAL;
    if (o->ntags > STRATA_TAGS_MAX_PER_ENTRY)
        return STRATA_ETOOMANYTAGS;
    for (size_t i = 0; i < o->ntags; i++)
        if (o->tags[i] == NULL)
            return STRATA_EINVAL;
    return 0;
}

/* A handle for a remember of k, with its own copies of the key and the options. Returns 0,
 * STRATA_EINVAL, STRATA_ETOOMANYTAGS, STRATA_ENOMEM or a key error. */
static int new_handle(strata_leases *ls, strata_loop *lp, const strata_key *k,
                      const strata_remember_opts *o, strata_compute_fn compute, void *arg,
                      strata_remember_handle **out)
{
    *out = NULL;
    int rc = check_opts(o);
    if (rc != 0 || ls == NULL || compute == NULL)
        return rc != 0 ? rc : STRATA_EINVAL;
    l1_addr a;
    if ((rc = strata__l1_resolve(ls->c->l1, k, &a)) != 0) /* names and length checked here */
        return rc;
    static const strata_remember_opts defaults;
    if (o == NULL)
        o = &defaults;
    size_t ct = o->content_type != NULL ? strlen(o->content_type) + 1 : 0, more = k->len + ct;
    for (size_t i = 0; i < o->ntags; i++)
        more += strlen(o->tags[i]) + 1;
    strata_remember_handle *h = calloc(1, sizeof *h + more);
    if (h == NULL)
        return STRATA_ENOMEM;
    h->ls = ls, h->lp = lp, h->compute = compute, h->arg = arg, h->in_call = 1;
    memcpy(h->ns, k->ns, strlen(k->ns) + 1);
    if (k->tenant != NULL)
        memcpy(h->tenant, k->tenant, strlen(k->tenant) + 1);
    char *p = h->buf;
    memcpy(p, k->key, k->len);
    h->k = (strata_key){h->ns, k->tenant != NULL ? h->tenant : NULL, p, k->len};
    p += k->len;
    h->so = (strata_set_opts){.ttl_ms = o->ttl_ms,
                              .grace_ms = o->grace_ms,
                              .ntags = o->ntags,
                              .stale_if_error_ms = o->stale_if_error_ms,
                              .beta = o->beta};
    if (o->content_type != NULL) {
        memcpy(p, o->content_type, ct);
        h->so.content_type = p;
        p += ct;
    }
    for (size_t i = 0; i < o->ntags; i++) {
        size_t n = strlen(o->tags[i]) + 1;
        memcpy(p, o->tags[i], n);
        h->tags[i] = p;
        p += n;
    }
    h->so.tags = o->ntags > 0 ? h->tags : NULL;
    h->wo.lease_ms = o->lease_ms != 0 ? o->lease_ms : STRATA_REMEMBER_LEASE_MS;
    h->wo.wait_ms = o->wait_ms != 0 ? o->wait_ms : h->wo.lease_ms;
    h->wo.takeover = o->wait_end == STRATA_REMEMBER_TAKEOVER;
    *out = h;
    return 0;
}

int strata_cache_remember(strata_leases *ls, const strata_key *k, const strata_remember_opts *o,
                          strata_compute_fn compute, void *arg, strata_remember_answer *out)
{
    memset(out, 0, sizeof *out);
    strata_remember_handle *h;
    int rc = new_handle(ls, NULL, k, o, compute, arg, &h);
    if (rc != 0)
        return rc;
    strata_value *v = NULL;
    rc = strata_cache_get_stale(ls->c, &h->k, &v);
    on_get(h, rc, v);
    /* Every stage of a synchronous remember answers before it returns. */
    *out = h->ans;
    rc = h->status;
    free_handle(h);
    return rc;
}

int strata_cache_remember_async(strata_leases *ls, strata_loop *lp, const strata_key *k,
                                const strata_remember_opts *o, strata_compute_fn compute,
                                strata_remember_cb cb, void *arg, strata_remember_answer *out)
{
    memset(out, 0, sizeof *out);
    if (lp == NULL || cb == NULL)
        return STRATA_EINVAL;
    strata_remember_handle *h;
    int rc = new_handle(ls, lp, k, o, compute, arg, &h);
    if (rc != 0)
        return rc;
    h->cb = cb;
    strata_value *v = NULL;
    rc = strata_cache_get_stale_async(lp, &h->k, got, h, &v);
    if (rc != STRATA_PENDING)
        on_get(h, rc, v);
    h->in_call = 0;
    if (!h->answered)
        return STRATA_PENDING;
    *out = h->ans;
    rc = h->status;
    free_handle(h);
    return rc;
}

void strata_leases_remember_stats(strata_leases *ls, strata_remember_stats *out)
{
    out->calls = atomic_load(&ls->rem.calls);
    out->hits = atomic_load(&ls->rem.hits);
    out->computations = atomic_load(&ls->rem.computations);
    out->coalesced = atomic_load(&ls->rem.coalesced);
    out->negative_hits = atomic_load(&ls->rem.negative_hits);
    out->failures = atomic_load(&ls->rem.failures);
    out->abandoned = atomic_load(&ls->rem.abandoned);
    out->fill_refused = atomic_load(&ls->rem.fill_refused);
    out->fill_failed = atomic_load(&ls->rem.fill_failed);
    out->unleased = atomic_load(&ls->rem.unleased);
    out->not_available = atomic_load(&ls->rem.not_available);
    out->stale = atomic_load(&ls->rem.stale);
    out->early_refreshes = atomic_load(&ls->rem.early_refreshes);
    out->stale_refreshes = atomic_load(&ls->rem.stale_refreshes);
    out->stale_if_error = atomic_load(&ls->rem.stale_if_error);
}
