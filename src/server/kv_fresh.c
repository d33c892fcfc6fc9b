/* kv_fresh.c: a lease GET judged by its value's freshness (issue 13): stale-while-revalidate,
 * early refresh, and the wait of the lease protocol for the rest.
 *
 *   GET|HEAD /v1/cache/{ns}/{key}  X-Cache-Lease: S  [X-Cache-Wait: S]
 *       fresh: 200 X-Cache: HIT-L1|HIT-L2; the one reader XFetch draws (strata_value_freshness)
 *              also gets X-Cache-Lease-Token if nobody holds the lease: it refreshes early
 *       past its TTL, within its grace: 200 X-Cache: STALE at once; one caller among all
 *              instances also gets X-Cache-Lease-Token, the others the value alone
 *       a copy kept after a failed refresh (STRATA_VALUE_STALE): 200 X-Cache: STALE, no token
 *       within its stale-if-error window only, or missing: the wait (kv_lease.c)
 *
 * The read is strata_cache_get_stale, which also answers a value past its TTL that is still
 * kept. A fresh hit nobody is chosen for costs what a plain hit does: the XFetch draw is a few
 * instructions of the worker's own generator, made only for values that carry a compute time,
 * and nothing is allocated or asked of Redis. A refresh acquire is one round trip, made by the
 * chosen reader (STRATA_LEASE_REFRESH: taken whatever is stored) or a stale one
 * (STRATA_LEASE_MISS: a stale value is no value, but a fresh one stored meanwhile by another
 * instance's refresh is, so an instance whose memory still holds the stale copy during the
 * coherence window does not start a second refresh); the value is held meanwhile and answered
 * with the token or without.
 */
#include <stdlib.h>
#include <time.h>

#include "kv_lease.h"

/* A uniform draw in (0, 1] from the worker's xorshift64* (worker thread only): XFetch needs no
 * more, and it must cost a hit nothing. Seeded on first use from the clock and the worker. */
static double draw(worker *w)
{
    if (w->rng == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        w->rng = ((uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull) ^ (uintptr_t)w ^
                 ((uint64_t)w->index << 32) ^ (uint64_t)ts.tv_sec;
        w->rng |= 1;
    }
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) * 0x1.0p-53 + 0x1.0p-53;
}

/* A value held while its refresh lease is asked for. */
typedef struct refresh {
    req *q;
    strata_value *v;
    const char *tier, *label;
    int early; /* a fresh hit chosen by XFetch (else a stale one) */
} refresh;

static void on_refresh(int status, const strata_lease_grant *g, void *arg)
{
    refresh *r = arg;
    req *q = r->q;
    if (status == STRATA_OK) { /* this caller refreshes; any other answer: somebody else does */
        kv_grant_note(q->w, g->token);
        add_header(q, "X-Cache-Lease-Token", g->token);
        if (r->early)
            metrics_count(q->w->metrics, METRICS_EARLY);
    }
    kv_send_value(q, r->v, r->tier, r->label);
    free(r);
}

/* Answers v with a refresh lease if nobody holds one. */
static void refresh_start(req *q, strata_value *v, const char *tier, const char *label, int early)
{
    refresh *r = malloc(sizeof *r);
    if (r == NULL) { /* out of memory: the value without a lease */
        kv_send_value(q, v, tier, label);
        return;
    }
    *r = (refresh){q, v, tier, label, early};
    strata_key k = kv_key_of(q);
    strata_lease_grant g;
    /* A stale reader asks as after a miss: a fresh value already stored (refreshed meanwhile,
     * its invalidation not yet here) is STRATA_EEXISTS, not a second refresh. An early one asks
     * whatever is stored: the value it refreshes is still fresh. */
    int rc = strata_lease_acquire_async(q->w->srv->leases, q->w->loop, &k, kv_lease_ms(q),
                                        early ? STRATA_LEASE_REFRESH : STRATA_LEASE_MISS,
                                        on_refresh, r, &g);
    if (rc != STRATA_PENDING)
        on_refresh(rc, &g, r);
}

/* What the read found, judged. tier, label: where a hit came from. */
static void judge(req *q, int status, strata_value *v, const char *tier, const char *label)
{
    if (status == STRATA_OK || status == STRATA_OK_L1_ONLY) {
        /* The draw only for values that can be refreshed early, and never for a copy kept
         * after a failure: its failure is remembered for the error TTL. */
        if (strata_value_compute_ms(v) != 0 && strata_value_beta(v) > 0 &&
            !(strata_value_flags(v) & STRATA_VALUE_STALE) &&
            strata_value_freshness(v, strata_now_ms(), draw(q->w)) == STRATA_FRESH_EARLY)
            refresh_start(q, v, tier, label, 1);
        else
            kv_send_value(q, v, tier, label);
    } else if (status == STRATA_OK_STALE &&
               strata_value_freshness(v, strata_now_ms(), 1.0) == STRATA_STALE) {
        refresh_start(q, v, tier, "STALE", 0);
    } else if (status == STRATA_OK_STALE || status == STRATA_ENOTFOUND) {
        /* Kept for its stale-if-error window only (or just past its windows): served only when
         * its refresh fails, so the lease's wait decides (strata_lease_fail keeps it then). */
        strata_value_release(v);
        kv_lease_wait(q);
    } else {
        reply_status(q, status);
    }
}

static void on_read(int status, strata_value *v, void *arg)
{
    req *q = arg;
    int why = strata_fallback_reason();
    if (why != STRATA_REASON_NONE && status != STRATA_ENOTFOUND)
        add_reason(q, why); /* Redis failed: L1's copy, said so */
    int l1 = status == STRATA_OK_L1_ONLY || why != STRATA_REASON_NONE;
    judge(q, status, v, l1 ? "l1" : "l2", l1 ? "HIT-L1" : "HIT-L2");
}

void kv_fresh_get(req *q)
{
    strata_key k = kv_key_of(q);
    strata_value *v = NULL;
    int rc = strata_cache_get_stale_async(q->w->loop, &k, on_read, q, &v);
    if (rc == STRATA_PENDING)
        return;
    if (rc == STRATA_OK_L1_ONLY)
        add_reason(q, strata_fallback_reason());
    judge(q, rc, v, "l1", "HIT-L1");
}
