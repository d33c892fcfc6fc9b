/* history.c: the ring of per-second snapshots (history.h), its sampling thread, and its JSON.
 *
 * The thread wakes on each second of the wall clock, sums the workers' counters (relaxed loads
 * of atomics only they write) and the library's, and writes the snapshot into the ring under
 * the ring's lock; GET /cache/stats/history copies what it needs under the same lock. Nothing on
 * a request's path takes the lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "history.h"
#include "proxy_internal.h"
#include "usage.h"

/* The counters as they stand at one moment (cumulative), and the gauges. */
typedef struct snap {
    int64_t t; /* unix seconds */
    uint64_t requests, status4xx, status5xx;
    uint64_t served[3]; /* L1, L2, misses */
    uint64_t latency[METRICS_BUCKETS];
    uint64_t evictions, expirations, l1_bytes, l1_max_bytes, l1_entries;
    int l2_configured, l2_available;
    char breaker[16];
    uint64_t l2_errors;
    uint64_t rl_allowed, rl_limited;
    uint64_t llm_hits, llm_tokens_saved, llm_nano_usd_saved;
    int l2_coherent;
    uint64_t sessions_created, session_requests, sessions_l1;
    unsigned nns; /* the namespaces read most since the snapshot before, and those reads */
    struct {
        char name[STRATA_NAME_MAX + 1];
        uint64_t l1, l2, misses;
    } ns[HISTORY_NAMESPACES];
} snap;

/* The reads of every namespace as they stood at the last snapshot, so that a snapshot keeps the
 * second's own reads of the namespaces read most in it. Only the history thread uses it.
 * Namespaces are never forgotten (usage.c never removes a row), at most USAGE_NAMESPACES. */
#define NS_SLOTS (2 * USAGE_NAMESPACES)
typedef struct ns_prev {
    char name[STRATA_NAME_MAX + 1]; /* "" for a free slot */
    uint64_t l1, l2, misses;
} ns_prev;

typedef struct history {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    int stop;
    size_t head, count; /* the newest is ring[(head + count - 1) % HISTORY_POINTS] */
    snap ring[HISTORY_POINTS];
    ns_prev ns[NS_SLOTS];
} history;

/* ---- a snapshot --------------------------------------------------------------------------- */

static void llm_row(const char *rname, const char *model, const char *tenant, const llm_counts *n,
                    void *arg)
{
    (void)rname, (void)model, (void)tenant;
    snap *s = arg;
    s->llm_hits += atomic_load_explicit(&n->hits, memory_order_relaxed) +
                   atomic_load_explicit(&n->coalesced, memory_order_relaxed);
    s->llm_tokens_saved += atomic_load_explicit(&n->prompt_saved, memory_order_relaxed) +
                           atomic_load_explicit(&n->completion_saved, memory_order_relaxed);
    s->llm_nano_usd_saved += atomic_load_explicit(&n->nano_usd_saved, memory_order_relaxed);
}

typedef struct ns_pass {
    snap *s;
    ns_prev *prev;
} ns_pass;

static uint64_t ns_reads(const snap *s, unsigned i)
{
    return s->ns[i].l1 + s->ns[i].l2 + s->ns[i].misses;
}

/* ns's row of the table, found or made. */
static ns_prev *ns_slot(ns_prev *prev, const char *ns)
{
    size_t i = (size_t)XXH3_64bits(ns, strlen(ns)) & (NS_SLOTS - 1);
    while (prev[i].name[0] != '\0' && strcmp(prev[i].name, ns) != 0)
        i = (i + 1) & (NS_SLOTS - 1); /* never full: twice the rows there can be */
    if (prev[i].name[0] == '\0')
        snprintf(prev[i].name, sizeof prev[i].name, "%s", ns);
    return &prev[i];
}

/* Keeps the HISTORY_NAMESPACES namespaces with the most reads since the last snapshot. */
static void ns_row(const char *ns, const uint64_t c[USAGE_COUNT], void *arg)
{
    ns_pass *pass = arg;
    snap *s = pass->s;
    ns_prev *p = ns_slot(pass->prev, ns);
#define SINCE(f, n) (c[n] >= p->f ? c[n] - p->f : 0)
    uint64_t l1 = SINCE(l1, USAGE_L1), l2 = SINCE(l2, USAGE_L2), miss = SINCE(misses, USAGE_MISSES);
#undef SINCE
    p->l1 = c[USAGE_L1], p->l2 = c[USAGE_L2], p->misses = c[USAGE_MISSES];
    uint64_t reads = l1 + l2 + miss;
    if (reads == 0)
        return;
    unsigned at = s->nns;
    if (at == HISTORY_NAMESPACES) { /* full: replace the one with the fewest, if fewer */
        at = 0;
        for (unsigned i = 1; i < s->nns; i++)
            if (ns_reads(s, i) < ns_reads(s, at))
                at = i;
        if (reads <= ns_reads(s, at))
            return;
    } else {
        s->nns++;
    }
    snprintf(s->ns[at].name, sizeof s->ns[at].name, "%s", ns);
    s->ns[at].l1 = l1;
    s->ns[at].l2 = l2;
    s->ns[at].misses = miss;
}

static void take(server *srv, ns_prev *prev, int64_t t, snap *s)
{
    memset(s, 0, sizeof *s);
    s->t = t;
    for (unsigned w = 0; w < srv->cfg.workers; w++) {
        metrics_block *m = srv->workers[w].metrics;
        for (int r = 0; r < R_COUNT; r++) {
            for (int c = 0; c < 6; c++) {
                uint64_t v = atomic_load_explicit(&m->requests[r][c], memory_order_relaxed);
                s->requests += v;
                s->status4xx += c == 3 ? v : 0;
                s->status5xx += c == 4 ? v : 0;
            }
            for (int b = 0; b < METRICS_BUCKETS; b++)
                s->latency[b] += atomic_load_explicit(&m->latency[r][b], memory_order_relaxed);
        }
        for (int i = 0; i < 3; i++)
            s->served[i] += atomic_load_explicit(&m->served[i], memory_order_relaxed);
        /* Sessions made (2xx of POST /v1/sessions), and every call on one. */
        s->sessions_created +=
            atomic_load_explicit(&m->requests[R_SESSIONS][1], memory_order_relaxed);
        for (int c = 0; c < 6; c++)
            s->session_requests +=
                atomic_load_explicit(&m->requests[R_SESSION][c], memory_order_relaxed);
    }
    usage *tables[256];
    unsigned nt = srv->cfg.workers < 256 ? srv->cfg.workers : 256;
    for (unsigned w = 0; w < nt; w++)
        tables[w] = srv->workers[w].metrics->usage;
    ns_pass pass = {s, prev};
    usage_each_namespace(tables, nt, ns_row, &pass);
    strata_stats l1;
    strata_l1_stats(strata_cache_l1(srv->cache), NULL, &l1);
    s->evictions = l1.evictions;
    s->expirations = l1.expirations;
    s->l1_bytes = l1.bytes;
    s->l1_max_bytes = l1.max_bytes;
    s->l1_entries = l1.entries;
    strata_stats sess;
    if (strata_l1_stats(strata_cache_l1(srv->cache), STRATA_SESSION_NS, &sess) == 0)
        s->sessions_l1 = sess.entries;
    strata_l2_stats l2;
    strata_cache_l2_stats(srv->cache, &l2);
    s->l2_configured = l2.configured;
    s->l2_available = l2.available;
    s->l2_coherent = l2.coherent;
    snprintf(s->breaker, sizeof s->breaker, "%s", l2.breaker ? l2.breaker : "");
    s->l2_errors = l2.errors;
    strata_rl_stats rl;
    strata_ratelimit_stats(srv->rl, &rl);
    s->rl_allowed = rl.allowed;
    s->rl_limited = rl.limited;
    proxy_model *pm = proxy_model_ref(srv);
    if (pm != NULL) {
        llm_counters_each(pm->llm, llm_row, s);
        proxy_model_unref(pm);
    }
}

/* ---- the thread --------------------------------------------------------------------------- */

static void *run(void *arg)
{
    server *srv = arg;
    history *h = srv->history;
    /* The first snapshot at once: what comes before the next second counts in its point. */
    struct timespec start;
    clock_gettime(CLOCK_REALTIME, &start);
    take(srv, h->ns, (int64_t)start.tv_sec, &h->ring[0]);
    pthread_mutex_lock(&h->lock);
    h->count = 1;
    while (!h->stop) {
        /* Wake just after the next second of the wall clock begins. */
        struct timespec now, until;
        clock_gettime(CLOCK_REALTIME, &now);
        until.tv_sec = now.tv_sec + 1;
        until.tv_nsec = 5 * 1000000;
        int rc = 0;
        while (!h->stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&h->wake, &h->lock, &until);
        if (h->stop)
            break;
        pthread_mutex_unlock(&h->lock);
        snap s;
        take(srv, h->ns, (int64_t)until.tv_sec, &s);
        pthread_mutex_lock(&h->lock);
        size_t at = (h->head + h->count) % HISTORY_POINTS;
        h->ring[at] = s;
        if (h->count < HISTORY_POINTS)
            h->count++;
        else
            h->head = (h->head + 1) % HISTORY_POINTS;
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

int history_start(server *s)
{
    history *h = calloc(1, sizeof *h);
    if (h == NULL)
        return -1;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->wake, NULL);
    s->history = h;
    if (pthread_create(&h->thread, NULL, run, s) != 0) {
        pthread_cond_destroy(&h->wake);
        pthread_mutex_destroy(&h->lock);
        free(h);
        s->history = NULL;
        return -1;
    }
    return 0;
}

void history_stop(server *s)
{
    history *h = s->history;
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->lock);
    h->stop = 1;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    free(h);
    s->history = NULL;
}

/* ---- the answer --------------------------------------------------------------------------- */

#define D(f) ((json_int_t)(b->f >= a->f ? b->f - a->f : 0))

/* The latency below which a share q of the second's requests were answered (ms), from the
 * difference of two histograms: the bucket's upper bound; 0 without requests. */
static double quantile_ms(const snap *a, const snap *b, double q)
{
    uint64_t n = 0, seen = 0;
    for (int i = 0; i < METRICS_BUCKETS; i++)
        n += b->latency[i] - a->latency[i];
    if (n == 0)
        return 0;
    for (int i = 0; i < METRICS_BUCKETS; i++) {
        seen += b->latency[i] - a->latency[i];
        if ((double)seen >= q * (double)n)
            return metrics_bucket_bound(i) * 1000.0;
    }
    return metrics_bucket_bound(METRICS_BUCKETS - 1) * 1000.0;
}

static json_t *point(const snap *a, const snap *b)
{
    uint64_t hits = (b->served[0] - a->served[0]) + (b->served[1] - a->served[1]);
    uint64_t reads = hits + (b->served[2] - a->served[2]);
    json_t *p = json_pack("{s:I,s:I,s:I,s:I}", "t", (json_int_t)b->t, "requests", D(requests),
                          "errors_4xx", D(status4xx), "errors_5xx", D(status5xx));
    json_object_set_new(p, "reads",
                        json_pack("{s:I,s:I,s:I,s:f}", "l1", D(served[0]), "l2", D(served[1]),
                                  "misses", D(served[2]), "hit_ratio",
                                  reads ? (double)hits / (double)reads : 0.0));
    json_object_set_new(p, "latency_ms",
                        json_pack("{s:f,s:f,s:f}", "p50", quantile_ms(a, b, 0.5), "p90",
                                  quantile_ms(a, b, 0.9), "p99", quantile_ms(a, b, 0.99)));
    json_object_set_new(p, "l1",
                        json_pack("{s:I,s:I,s:I,s:I,s:I}", "bytes", (json_int_t)b->l1_bytes,
                                  "max_bytes", (json_int_t)b->l1_max_bytes, "entries",
                                  (json_int_t)b->l1_entries, "evictions", D(evictions),
                                  "expirations", D(expirations)));
    json_object_set_new(p, "redis",
                        json_pack("{s:b,s:b,s:b,s:s,s:I}", "configured", b->l2_configured,
                                  "available", b->l2_available, "coherent", b->l2_coherent,
                                  "breaker", b->breaker, "errors", D(l2_errors)));
    json_object_set_new(p, "ratelimit",
                        json_pack("{s:I,s:I}", "allowed", D(rl_allowed), "limited", D(rl_limited)));
    json_object_set_new(p, "llm",
                        json_pack("{s:I,s:I,s:f}", "hits", D(llm_hits), "tokens_saved",
                                  D(llm_tokens_saved), "usd_saved",
                                  (double)D(llm_nano_usd_saved) / 1e9));
    json_object_set_new(p, "sessions",
                        json_pack("{s:I,s:I,s:I}", "created", D(sessions_created), "requests",
                                  D(session_requests), "in_l1", (json_int_t)b->sessions_l1));
    json_t *nss = json_object();
    for (unsigned i = 0; i < b->nns; i++) { /* the second's own reads (ns_row) */
        uint64_t l1 = b->ns[i].l1, l2 = b->ns[i].l2, miss = b->ns[i].misses;
        json_object_set_new(nss, b->ns[i].name,
                            json_pack("{s:I,s:I,s:I,s:f}", "l1", (json_int_t)l1, "l2",
                                      (json_int_t)l2, "misses", (json_int_t)miss, "hit_ratio",
                                      (double)(l1 + l2) / (double)(l1 + l2 + miss)));
    }
    json_object_set_new(p, "namespaces", nss);
    return p;
}

json_t *history_json(server *s, int64_t since)
{
    history *h = s->history;
    json_t *points = json_array();
    if (h != NULL) {
        pthread_mutex_lock(&h->lock);
        for (size_t i = 1; i < h->count; i++) {
            const snap *a = &h->ring[(h->head + i - 1) % HISTORY_POINTS];
            const snap *b = &h->ring[(h->head + i) % HISTORY_POINTS];
            if (b->t > since)
                json_array_append_new(points, point(a, b));
        }
        pthread_mutex_unlock(&h->lock);
    }
    return json_pack("{s:i,s:i,s:o}", "interval_s", HISTORY_INTERVAL_MS / 1000, "capacity",
                     HISTORY_POINTS - 1, "points", points);
}
