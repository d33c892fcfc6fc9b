/* metrics.h: request counters and latency histograms, one block per worker. */
#ifndef STRATA_SERVER_METRICS_H
#define STRATA_SERVER_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <strata/strata.h>

#include "route.h"
#include "usage.h"

#define METRICS_BUCKETS 14 /* upper bounds in metrics.c, +Inf last */

/* What the KV reads answered beyond a hit or a miss (issue 13's freshness). */
enum metrics_fresh {
    METRICS_STALE = 0,    /* answered a value marked stale (X-Cache: STALE) */
    METRICS_EARLY = 1,    /* a fresh hit given the lease to refresh early (XFetch) */
    METRICS_NEGATIVE = 2, /* answered a cached error result (X-Cache-Error: 1) */
    METRICS_FRESH_COUNT
};

/* Written only by its worker's thread (relaxed load + store), read by the scrape. */
typedef struct metrics_block {
    _Atomic uint64_t requests[R_COUNT][6]; /* by status class: 1xx..5xx, and "other" */
    _Atomic uint64_t latency[R_COUNT][METRICS_BUCKETS];
    _Atomic uint64_t latency_sum_us[R_COUNT];
    _Atomic uint64_t served[3]; /* reads answered from L1, from L2, misses */
    _Atomic uint64_t fresh[METRICS_FRESH_COUNT];
    usage *usage; /* the same by namespace and tenant (usage.h) */
} metrics_block;

/* The upper bound of latency bucket b (seconds; the last bucket has none: +Inf). */
double metrics_bucket_bound(int b);

/* NULL on out of memory. */
metrics_block *metrics_new(void);
void metrics_free(metrics_block *m);

/* Records one answered request (worker thread only). tier: 0 l1, 1 l2, 2 miss, -1 none. */
void metrics_record(metrics_block *m, int route_id, int status, uint64_t micros, int tier);

/* Counts one enum metrics_fresh event (worker thread only). */
void metrics_count(metrics_block *m, int what);

/* The metrics_fresh counters summed over n blocks. */
void metrics_fresh_sum(metrics_block **blocks, unsigned n, uint64_t out[METRICS_FRESH_COUNT]);

/* Writes the Prometheus text exposition of n blocks and the cache's own counters. */
void metrics_render(struct evbuffer *out, metrics_block **blocks, unsigned n, strata_cache *c,
                    strata_ratelimiter *limiter, uint64_t uptime_s);

/* The lease protocol's counters: the library's, the lease GETs the server refused itself (503
 * lease_busy), and the freshness counters (fresh: metrics_fresh_sum's). */
void metrics_render_leases(struct evbuffer *out, strata_leases *ls, uint64_t refused,
                           const uint64_t fresh[METRICS_FRESH_COUNT]);

#endif
