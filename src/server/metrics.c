/* metrics.c: /metrics in the Prometheus text format (version 0.0.4).
 *
 * Every label set is bounded: routes by name (never a path), status by class, tiers by name.
 * Keys and tenants never become labels, so a client cannot blow up the series count. Each worker
 * counts into its own block without atomics-with-lock-prefix (one writer per counter); the scrape
 * sums the blocks.
 */
#include <stdio.h>
#include <stdlib.h>

#include "metrics.h"

static const double bounds_s[METRICS_BUCKETS - 1] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};

double metrics_bucket_bound(int b)
{
    return b >= 0 && b < METRICS_BUCKETS - 1 ? bounds_s[b] : 1e9;
}

metrics_block *metrics_new(void)
{
    metrics_block *m = calloc(1, sizeof *m);
    if (m != NULL && (m->usage = usage_new()) == NULL) {
        free(m);
        return NULL;
    }
    return m;
}

void metrics_free(metrics_block *m)
{
    if (m != NULL)
        usage_free(m->usage);
    free(m);
}

static void bump(_Atomic uint64_t *c, uint64_t d)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

static uint64_t get(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

void metrics_record(metrics_block *m, int route_id, int status, uint64_t micros, int tier)
{
    int r = route_id >= 0 && route_id < R_COUNT ? route_id : R_NOT_FOUND;
    int cls = status >= 100 && status < 600 ? status / 100 - 1 : 5;
    bump(&m->requests[r][cls], 1);
    int b = 0;
    while (b < METRICS_BUCKETS - 1 && (double)micros / 1e6 > bounds_s[b])
        b++;
    bump(&m->latency[r][b], 1);
    bump(&m->latency_sum_us[r], micros);
    if (tier >= 0 && tier < 3)
        bump(&m->served[tier], 1);
}

void metrics_count(metrics_block *m, int what)
{
    bump(&m->fresh[what], 1);
}

void metrics_fresh_sum(metrics_block **blocks, unsigned n, uint64_t out[METRICS_FRESH_COUNT])
{
    for (int f = 0; f < METRICS_FRESH_COUNT; f++) {
        out[f] = 0;
        for (unsigned i = 0; i < n; i++)
            out[f] += get(&blocks[i]->fresh[f]);
    }
}

static void render_requests(struct evbuffer *out, metrics_block **blocks, unsigned n)
{
    static const char *classes[6] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};
    evbuffer_add_printf(out, "# HELP strata_http_requests_total HTTP requests answered.\n"
                             "# TYPE strata_http_requests_total counter\n");
    for (int r = 0; r < R_COUNT; r++)
        for (int c = 0; c < 6; c++) {
            uint64_t v = 0;
            for (unsigned i = 0; i < n; i++)
                v += get(&blocks[i]->requests[r][c]);
            if (v > 0)
                evbuffer_add_printf(out,
                                    "strata_http_requests_total{route=\"%s\",code=\"%s\"} %llu\n",
                                    route_name(r), classes[c], (unsigned long long)v);
        }
    evbuffer_add_printf(out, "# HELP strata_http_request_duration_seconds Time to answer.\n"
                             "# TYPE strata_http_request_duration_seconds histogram\n");
    for (int r = 0; r < R_COUNT; r++) {
        uint64_t count = 0, sum = 0, cum = 0;
        for (unsigned i = 0; i < n; i++) {
            sum += get(&blocks[i]->latency_sum_us[r]);
            for (int b = 0; b < METRICS_BUCKETS; b++)
                count += get(&blocks[i]->latency[r][b]);
        }
        if (count == 0)
            continue;
        for (int b = 0; b < METRICS_BUCKETS; b++) {
            for (unsigned i = 0; i < n; i++)
                cum += get(&blocks[i]->latency[r][b]);
            if (b < METRICS_BUCKETS - 1)
                evbuffer_add_printf(out,
                                    "strata_http_request_duration_seconds_bucket{route=\"%s\","
                                    "le=\"%g\"} %llu\n",
                                    route_name(r), bounds_s[b], (unsigned long long)cum);
            else
                evbuffer_add_printf(out,
                                    "strata_http_request_duration_seconds_bucket{route=\"%s\","
                                    "le=\"+Inf\"} %llu\n",
                                    route_name(r), (unsigned long long)cum);
        }
        evbuffer_add_printf(out, "strata_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n",
                            route_name(r), (double)sum / 1e6);
        evbuffer_add_printf(out, "strata_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                            route_name(r), (unsigned long long)count);
    }
}

static void counter(struct evbuffer *out, const char *name, const char *help, uint64_t v)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                        (unsigned long long)v);
}

static void gauge(struct evbuffer *out, const char *name, const char *help, double v)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name,
                        v);
}

/* A label value as the text format wants it: backslash, double quote and newline escaped. */
static void label_value(struct evbuffer *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            evbuffer_add_printf(out, "\\%c", *v);
        else if (*v == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add(out, v, 1);
    }
}

/* The Redis nodes: how many are in use, and the failures counted against each node the cache
 * has used (at most 16 rows: the library folds the rest into "(other)"). */
static void render_nodes(struct evbuffer *out, strata_cache *c, const strata_l2_stats *l2)
{
    gauge(out, "strata_redis_nodes", "Redis nodes in use (1: one Redis or a sentinel primary).",
          l2->nodes);
    strata_redis_node nodes[16];
    size_t n = strata_cache_redis_nodes(c, nodes, 16);
    evbuffer_add_printf(out, "# HELP strata_redis_node_errors_total Failures talking to each "
                             "Redis node (connections, timeouts, refused handshakes).\n"
                             "# TYPE strata_redis_node_errors_total counter\n");
    for (size_t i = 0; i < n && i < 16; i++) {
        evbuffer_add_printf(out, "strata_redis_node_errors_total{node=\"");
        label_value(out, nodes[i].addr);
        evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)nodes[i].errors);
    }
}

static void render_cache(struct evbuffer *out, metrics_block **blocks, unsigned n, strata_cache *c,
                         strata_ratelimiter *limiter)
{
    static const char *tiers[3] = {"l1", "l2", "miss"};
    evbuffer_add_printf(out, "# HELP strata_reads_total Reads over HTTP by where they were "
                             "answered.\n# TYPE strata_reads_total counter\n");
    for (int t = 0; t < 3; t++) {
        uint64_t v = 0;
        for (unsigned i = 0; i < n; i++)
            v += get(&blocks[i]->served[t]);
        evbuffer_add_printf(out, "strata_reads_total{tier=\"%s\"} %llu\n", tiers[t],
                            (unsigned long long)v);
    }
    strata_stats s;
    strata_l1_stats(strata_cache_l1(c), NULL, &s);
    counter(out, "strata_l1_hits_total", "L1 reads answered with a fresh value.", s.hits);
    counter(out, "strata_l1_misses_total", "L1 reads that found nothing fresh.", s.misses);
    counter(out, "strata_l1_sets_total", "Writes stored in L1.", s.sets);
    counter(out, "strata_l1_evictions_total", "L1 entries evicted for memory or quota.",
            s.evictions);
    counter(out, "strata_l1_expirations_total", "L1 entries dropped at expiry.", s.expirations);
    counter(out, "strata_l1_rejections_total", "Writes refused by L1 (too large, quota).",
            s.rejections);
    counter(out, "strata_l1_invalidations_total", "L1 entries dropped by invalidations.",
            s.invalidations);
    gauge(out, "strata_l1_entries", "Entries held in L1.", (double)s.entries);
    gauge(out, "strata_l1_bytes", "Bytes held by L1, overhead included.", (double)s.bytes);
    gauge(out, "strata_l1_max_bytes", "The L1 memory bound.", (double)s.max_bytes);
    strata_l2_stats l2;
    strata_cache_l2_stats(c, &l2);
    gauge(out, "strata_l2_configured", "1 when a Redis tier is configured.", l2.configured);
    gauge(out, "strata_l2_available", "1 when the Redis breaker is closed.", l2.available);
    gauge(out, "strata_l2_readonly", "1 when Redis writes are skipped.", l2.readonly);
    gauge(out, "strata_l2_coherent", "1 when the invalidation link is up.", l2.coherent);
    gauge(out, "strata_l2_breaker_open", "1 when the breaker is open.",
          l2.configured && !l2.available);
    counter(out, "strata_l2_hits_total", "Reads answered by Redis.", l2.hits);
    counter(out, "strata_l2_misses_total", "Reads Redis did not have.", l2.misses);
    counter(out, "strata_l2_errors_total", "Redis calls that failed.", l2.errors);
    counter(out, "strata_l2_fallbacks_total", "Calls answered from L1 because Redis could not be.",
            l2.fallbacks);
    counter(out, "strata_l2_breaker_opens_total", "Times the breaker opened.", l2.breaker_opens);
    counter(out, "strata_l2_invalidations_total", "Invalidations received from Redis.",
            l2.invalidations);
    counter(out, "strata_l2_link_drops_total", "Times the invalidation link was lost.",
            l2.link_drops);
    render_nodes(out, c, &l2);
    strata_rl_stats rl;
    strata_ratelimit_stats(limiter, &rl);
    counter(out, "strata_ratelimit_checks_total", "Rate-limit checks.", rl.checks);
    counter(out, "strata_ratelimit_allowed_total", "Rate-limit checks allowed.", rl.allowed);
    counter(out, "strata_ratelimit_limited_total", "Rate-limit checks denied.", rl.limited);
    counter(out, "strata_ratelimit_remembered_total",
            "Denials answered locally from a remembered over-limit key.", rl.remembered);
    counter(out, "strata_ratelimit_fallback_total",
            "Checks decided without Redis (local limiter, fail-open, fail-closed).",
            rl.local + rl.fail_open + rl.fail_closed);
}

void metrics_render(struct evbuffer *out, metrics_block **blocks, unsigned n, strata_cache *c,
                    strata_ratelimiter *limiter, uint64_t uptime_s)
{
    render_requests(out, blocks, n);
    render_cache(out, blocks, n, c, limiter);
    gauge(out, "strata_uptime_seconds", "Seconds since the server started.", (double)uptime_s);
}

void metrics_render_leases(struct evbuffer *out, strata_leases *ls, uint64_t refused,
                           const uint64_t fresh[METRICS_FRESH_COUNT])
{
    strata_lease_stats l;
    strata_leases_stats(ls, &l);
    counter(out, "strata_lease_granted_total", "Leases granted (by Redis, or by this instance).",
            l.acquired);
    counter(out, "strata_lease_waits_total", "Lease waits answered.", l.waits);
    counter(out, "strata_lease_coalesced_total",
            "Waits answered with the value another caller stored.", l.coalesced);
    counter(out, "strata_lease_takeovers_total",
            "Waits given the lease after its holder's ended without a value.", l.takeovers);
    counter(out, "strata_lease_timeouts_total",
            "Waits that ended without a value, the lease still held.", l.timeouts);
    counter(out, "strata_lease_busy_total",
            "Lease requests refused: too many waiting (503 lease_busy).", refused);
    counter(out, "strata_lease_refused_total",
            "Fills, extensions and releases refused: the token was not the holder's.", l.refused);
    counter(out, "strata_lease_local_total",
            "Lease calls decided by this instance alone (Redis unavailable or absent).", l.local);
    gauge(out, "strata_lease_waiting", "Callers waiting for a lease holder now.",
          (double)l.waiting);
    counter(out, "strata_lease_early_refreshes_total",
            "Fresh hits given the lease to refresh the value early (XFetch).",
            fresh[METRICS_EARLY]);
    counter(out, "strata_lease_stale_kept_total",
            "Failed refreshes answered by keeping the stale copy (stale-if-error).", l.stale_kept);
    counter(out, "strata_lease_errors_stored_total",
            "Failed computations stored as an error result (no copy to keep).", l.errors_stored);
    counter(out, "strata_cache_stale_served_total",
            "KV reads answered with a value marked stale (X-Cache: STALE).", fresh[METRICS_STALE]);
    counter(out, "strata_cache_negative_hits_total",
            "KV reads answered with a cached error result (X-Cache-Error: 1).",
            fresh[METRICS_NEGATIVE]);
}
