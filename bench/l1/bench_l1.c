/* bench_l1.c: the L1 benchmark: throughput and latency under threads, and hit ratio against LRU.
 *
 * Two questions, both asked only through the public strata_l1_* API. How fast is L1? A 90% get /
 * 10% set mix over Zipf(0.99) keys (16-byte keys, 100-byte values) against a pre-populated 64 MiB
 * tier, with 1 and 2 threads sharing it, gives ops/s and sampled p50/p99 latencies (one op in 16
 * is timed with clock_gettime so the timer does not dominate; the timer's own cost is measured and
 * printed). The request stream is generated before the clock starts (a ring of key indexes per
 * thread), so the figures are the cache's cost, not the Zipf sampler's. How good is its policy?
 * A Zipf(0.99) trace over 100k keys is replayed cache-aside (get; on a miss, set) against strata
 * and against a plain LRU written here (hash map + doubly linked list) holding exactly as many
 * entries as strata held once calibrated to about 1% of the keys, beside the stationary optimum
 * (the probability mass of the top-k keys). A second trace interleaves one-off scans of fresh keys
 * with the Zipf stream and scores the non-scan requests only: that is where W-TinyLFU admission
 * should beat LRU, which a scan flushes. Every figure is printed for people and then once more as
 * a `RESULT name=value` line for bench/run.sh.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <strata/errors.h>
#include <strata/key.h>
#include <strata/l1.h>
#include <strata/stats.h>
#include <strata/value.h>

#define KEY_LEN      16
#define VALUE_LEN    100
#define ZIPF_S       0.99
#define BENCH_NS     "bench"
#define SCAN_ID_BIT  ((uint64_t)1 << 40) /* ids at or above this are one-off scan keys */
#define RING_ENTRIES ((size_t)1 << 20)   /* pre-generated requests per thread, replayed in a ring */
#define SET_FLAG     0x80000000u         /* ring entry: this request is a set */
#define MAX_THREADS  64
#define MAX_ROUNDS   101
#define MAX_RESULTS  128

/* ---- options ----------------------------------------------------------------------------- */

typedef struct options {
    bool throughput;
    bool hitratio;
    unsigned threads[MAX_THREADS];
    size_t nthreads;
    uint64_t ops;        /* ops per thread per throughput round */
    unsigned rounds;     /* throughput rounds; medians are reported */
    size_t keys;         /* throughput keyspace */
    size_t memory;       /* throughput tier size, bytes */
    unsigned sample;     /* time one op in this many (0: no latency) */
    unsigned set_pct;    /* share of sets in the throughput mix, percent */
    size_t hr_keys;      /* hit-ratio keyspace; capacity is 1% of it */
    uint64_t requests;   /* hit-ratio trace length */
    uint64_t scan_every; /* scan trace: Zipf requests between two scans */
    uint64_t scan_len;   /* scan trace: fresh keys per scan */
    uint64_t seed;
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_l1 [options]\n"
            "  --mode all|throughput|hitratio  what to run (default all)\n"
            "  --threads LIST    thread counts for throughput, e.g. 1 or 2 or 1,2 (default 1,2)\n"
            "  --ops N           ops per thread per throughput round (default 10000000)\n"
            "  --rounds N        throughput rounds; medians are reported (default 3)\n"
            "  --keys N          throughput keyspace, all pre-populated (default 100000)\n"
            "  --memory BYTES    throughput tier size (default 67108864)\n"
            "  --sample N        time one op in N for latency, 0 for none (default 16)\n"
            "  --sets PCT        percent of sets in the throughput mix (default 10)\n"
            "  --hr-keys N       hit-ratio keyspace; capacity is 1%% of it (default 100000)\n"
            "  --requests N      hit-ratio trace length (default 1000000)\n"
            "  --scan-every N    scan trace: Zipf requests between scans (default 10000)\n"
            "  --scan-len N      scan trace: fresh keys per scan (default 5000)\n"
            "  --seed N          PRNG seed (default 42)\n"
            "  --quick           a smoke run: 500k ops, 1 round, 200k-request traces (explicit\n"
            "                    options still win)\n"
            "Pin with taskset (bench/run.sh does); the bench does not pin its own threads.\n");
}

static uint64_t parse_u64(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-') {
        fprintf(stderr, "bench_l1: %s wants a non-negative integer, got '%s'\n", opt, s);
        exit(2);
    }
    return (uint64_t)v;
}

static void parse_threads(options *o, const char *s)
{
    o->nthreads = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        uint64_t t = parse_u64("--threads", tok);
        if (t < 1 || t > MAX_THREADS || o->nthreads == MAX_THREADS) {
            fprintf(stderr, "bench_l1: --threads takes counts 1..%d\n", MAX_THREADS);
            exit(2);
        }
        o->threads[o->nthreads++] = (unsigned)t;
    }
    if (o->nthreads == 0) {
        fprintf(stderr, "bench_l1: --threads is empty\n");
        exit(2);
    }
}

static void parse_options(options *o, int argc, char **argv)
{
    *o = (options){.throughput = true,
                   .hitratio = true,
                   .threads = {1, 2},
                   .nthreads = 2,
                   .ops = 10000000,
                   .rounds = 3,
                   .keys = 100000,
                   .memory = (size_t)64 << 20,
                   .sample = 16,
                   .set_pct = 10,
                   .hr_keys = 100000,
                   .requests = 1000000,
                   .scan_every = 10000,
                   .scan_len = 5000,
                   .seed = 42};
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--quick") == 0) {
            o->ops = 500000;
            o->rounds = 1;
            o->requests = 200000;
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--quick") == 0)
            continue; /* applied first, below, so explicit options win over it */
        if (v == NULL) {
            fprintf(stderr, "bench_l1: unknown option or missing value: %s\n", a);
            usage(stderr);
            exit(2);
        }
        i++;
        if (strcmp(a, "--mode") == 0) {
            o->throughput = strcmp(v, "all") == 0 || strcmp(v, "throughput") == 0;
            o->hitratio = strcmp(v, "all") == 0 || strcmp(v, "hitratio") == 0;
            if (!o->throughput && !o->hitratio) {
                fprintf(stderr, "bench_l1: --mode is all, throughput or hitratio\n");
                exit(2);
            }
        } else if (strcmp(a, "--threads") == 0) {
            parse_threads(o, v);
        } else if (strcmp(a, "--ops") == 0) {
            o->ops = parse_u64(a, v);
        } else if (strcmp(a, "--rounds") == 0) {
            o->rounds = (unsigned)parse_u64(a, v);
        } else if (strcmp(a, "--keys") == 0) {
            o->keys = (size_t)parse_u64(a, v);
        } else if (strcmp(a, "--memory") == 0) {
            o->memory = (size_t)parse_u64(a, v);
        } else if (strcmp(a, "--sample") == 0) {
            o->sample = (unsigned)parse_u64(a, v);
        } else if (strcmp(a, "--sets") == 0) {
            o->set_pct = (unsigned)parse_u64(a, v);
        } else if (strcmp(a, "--hr-keys") == 0) {
            o->hr_keys = (size_t)parse_u64(a, v);
        } else if (strcmp(a, "--requests") == 0) {
            o->requests = parse_u64(a, v);
        } else if (strcmp(a, "--scan-every") == 0) {
            o->scan_every = parse_u64(a, v);
        } else if (strcmp(a, "--scan-len") == 0) {
            o->scan_len = parse_u64(a, v);
        } else if (strcmp(a, "--seed") == 0) {
            o->seed = parse_u64(a, v);
        } else {
            fprintf(stderr, "bench_l1: unknown option: %s\n", a);
            usage(stderr);
            exit(2);
        }
    }
    if (o->ops == 0 || o->rounds == 0 || o->rounds > MAX_ROUNDS || o->keys < 1 ||
        o->keys > SET_FLAG - 1 || o->hr_keys < 100 || o->hr_keys > SCAN_ID_BIT ||
        o->requests == 0 || o->scan_every == 0 || o->set_pct > 100) {
        fprintf(stderr,
                "bench_l1: option out of range (rounds 1..%d, keys >= 1, hr-keys >= 100, "
                "sets 0..100, ops, requests and scan-every > 0)\n",
                MAX_ROUNDS);
        exit(2);
    }
}

/* ---- results: printed for people as they come, and as RESULT lines at the end ------------- */

static struct {
    char name[64];
    char value[32];
} results[MAX_RESULTS];
static size_t nresults;

static void result(const char *name, const char *fmt, double v)
{
    if (nresults == MAX_RESULTS)
        return;
    snprintf(results[nresults].name, sizeof results[nresults].name, "%s", name);
    snprintf(results[nresults].value, sizeof results[nresults].value, fmt, v);
    nresults++;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL) {
        fprintf(stderr, "bench_l1: out of memory\n");
        exit(1);
    }
    return p;
}

static void die_status(const char *what, int rc)
{
    fprintf(stderr, "bench_l1: %s: %s (%s)\n", what, strata_strerror(rc), strata_err_name(rc));
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- deterministic randomness: splitmix64 seeds xoshiro256** ------------------------------ */

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform in [0, 1). */
static double rng_double(rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* ---- Zipf: rank i (0-based) has probability (i+1)^-s / H(n, s); CDF + binary search ----- */

typedef struct zipf {
    size_t n;
    double *cdf;
} zipf;

static void zipf_init(zipf *z, size_t n, double s)
{
    z->n = n;
    z->cdf = xcalloc(n, sizeof *z->cdf);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += pow((double)(i + 1), -s);
        z->cdf[i] = sum;
    }
    for (size_t i = 0; i < n; i++)
        z->cdf[i] /= sum;
    z->cdf[n - 1] = 1.0;
}

static void zipf_free(zipf *z)
{
    free(z->cdf);
}

static size_t zipf_next(const zipf *z, rng *r)
{
    double u = rng_double(r);
    size_t lo = 0, hi = z->n - 1;
    while (lo < hi) { /* the first rank whose CDF exceeds u */
        size_t mid = lo + (hi - lo) / 2;
        if (z->cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* The stationary optimum with room for k entries: the share of requests to the k likeliest keys. */
static double zipf_top_share(const zipf *z, size_t k)
{
    return k == 0 ? 0 : k >= z->n ? 1.0 : z->cdf[k - 1];
}

/* ---- keys and values ---------------------------------------------------------------------- */

/* 16 bytes, no terminator kept: "k000000000000042" for Zipf keys, "s..." for scan keys (15
 * decimal digits, written by hand: snprintf per key would cost more than the keys' uses). */
static void key_of(uint64_t id, char out[KEY_LEN])
{
    out[0] = id >= SCAN_ID_BIT ? 's' : 'k';
    uint64_t d = id >= SCAN_ID_BIT ? id - SCAN_ID_BIT : id;
    for (int i = KEY_LEN - 1; i > 0; i--) {
        out[i] = (char)('0' + d % 10);
        d /= 10;
    }
}

/* A value starts with its own key, so a reader can check it got the right, intact bytes. */
static void value_of(const char key[KEY_LEN], char out[VALUE_LEN])
{
    memcpy(out, key, KEY_LEN);
    for (size_t i = KEY_LEN; i < VALUE_LEN; i++)
        out[i] = (char)('a' + i % 26);
}

static bool value_ok(const strata_value *v, const char key[KEY_LEN])
{
    return strata_value_len(v) == VALUE_LEN && memcmp(strata_value_data(v), key, KEY_LEN) == 0;
}

static strata_l1 *l1_open(size_t max_memory, unsigned shards)
{
    strata_l1_config cfg;
    int rc = strata_l1_config_init(&cfg);
    if (rc != 0)
        die_status("strata_l1_config_init", rc);
    cfg.max_memory = max_memory;
    cfg.shards = shards;
    strata_l1 *l1;
    rc = strata_l1_new(&cfg, &l1);
    if (rc != 0) {
        fprintf(stderr, "bench_l1: strata_l1_new(max_memory=%zu, shards=%u) failed\n", max_memory,
                shards);
        die_status("strata_l1_new", rc);
    }
    /* An hour: nothing expires during a run, but writes take the usual TTL path (with jitter). */
    strata_ns_config ns;
    strata_ns_config_init(&ns);
    ns.default_ttl_ms = 3600 * 1000;
    rc = strata_l1_ns_configure(l1, BENCH_NS, &ns);
    if (rc != 0)
        die_status("strata_l1_ns_configure", rc);
    return l1;
}

static strata_stats l1_stats(strata_l1 *l1)
{
    strata_stats st;
    int rc = strata_l1_stats(l1, NULL, &st);
    if (rc != 0)
        die_status("strata_l1_stats", rc);
    return st;
}

/* ---- latency histogram: log-linear buckets, 32 per power of two (about 3% wide) ---------- */

#define HIST_SUB_BITS 5
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_BUCKETS  ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

typedef struct hist {
    uint64_t count[HIST_BUCKETS];
    uint64_t total;
} hist;

static size_t hist_bucket(uint64_t v)
{
    if (v < 2 * HIST_SUB)
        return (size_t)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned e = msb - HIST_SUB_BITS;
    return (size_t)(e + 1) * HIST_SUB + (size_t)((v >> e) - HIST_SUB);
}

/* The middle of bucket b. */
static double hist_value(size_t b)
{
    if (b < 2 * HIST_SUB)
        return (double)b;
    unsigned e = (unsigned)(b / HIST_SUB) - 1;
    uint64_t sub = b % HIST_SUB + HIST_SUB;
    return ((double)(sub << e) + (double)((sub + 1) << e)) / 2;
}

static void hist_add(hist *h, uint64_t v)
{
    h->count[hist_bucket(v)]++;
    h->total++;
}

static void hist_merge(hist *into, const hist *from)
{
    for (size_t i = 0; i < HIST_BUCKETS; i++)
        into->count[i] += from->count[i];
    into->total += from->total;
}

static double hist_quantile(const hist *h, double q)
{
    if (h->total == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->total), seen = 0;
    if (rank == 0)
        rank = 1;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= rank)
            return hist_value(i);
    }
    return hist_value(HIST_BUCKETS - 1);
}

/* Back-to-back clock_gettime pairs: the floor under every sampled latency. */
static double timer_floor_ns(void)
{
    hist *h = xcalloc(1, sizeof *h);
    for (int i = 0; i < 200000; i++) {
        uint64_t t0 = now_ns();
        hist_add(h, now_ns() - t0);
    }
    double p50 = hist_quantile(h, 0.5);
    free(h);
    return p50;
}

/* ---- throughput -------------------------------------------------------------------------- */

typedef struct worker {
    /* in */
    strata_l1 *l1;
    const char *keys; /* keyspace * KEY_LEN bytes */
    const uint32_t *ring;
    size_t ring_mask;
    uint64_t ops;
    unsigned sample;
    pthread_barrier_t *start;
    /* out */
    uint64_t t_start, t_end;
    uint64_t gets, sets, hits, misses, errors, corrupt;
    int first_error;
    hist get_lat, set_lat;
} worker;

static void *worker_run(void *arg)
{
    worker *w = arg;
    strata_l1 *l1 = w->l1;
    const uint32_t *ring = w->ring;
    const size_t mask = w->ring_mask;
    char value[VALUE_LEN];
    value_of("................", value);
    strata_key k = {BENCH_NS, NULL, NULL, KEY_LEN};
    uint64_t gets = 0, sets = 0, hits = 0, misses = 0, errors = 0, corrupt = 0, now_ms = 0;
    unsigned countdown = w->sample;
    int first_error = 0;

    pthread_barrier_wait(w->start);
    w->t_start = now_ns();
    for (uint64_t i = 0; i < w->ops; i++) {
        if ((i & 1023) == 0)
            now_ms = strata_now_ms();
        uint32_t req = ring[i & mask];
        const char *key = w->keys + (size_t)(req & ~SET_FLAG) * KEY_LEN;
        k.key = key;
        bool timed = countdown != 0 && --countdown == 0;
        uint64_t t0 = 0;
        if (timed) {
            countdown = w->sample;
            t0 = now_ns();
        }
        int rc;
        if (req & SET_FLAG) {
            memcpy(value, key, KEY_LEN);
            rc = strata_l1_set(l1, &k, value, VALUE_LEN, NULL, now_ms);
            sets++;
        } else {
            strata_value *v;
            rc = strata_l1_get(l1, &k, now_ms, &v);
            gets++;
            if (rc == STRATA_OK) {
                hits++;
                corrupt += !value_ok(v, key);
                strata_value_release(v);
            } else if (rc == STRATA_ENOTFOUND) {
                misses++;
                rc = STRATA_OK;
            }
        }
        if (timed)
            hist_add(req & SET_FLAG ? &w->set_lat : &w->get_lat, now_ns() - t0);
        if (rc != STRATA_OK) {
            if (errors++ == 0)
                first_error = rc;
        }
    }
    w->t_end = now_ns();
    w->gets = gets;
    w->sets = sets;
    w->hits = hits;
    w->misses = misses;
    w->errors = errors;
    w->corrupt = corrupt;
    w->first_error = first_error;
    return NULL;
}

/* One ring of pre-generated requests per thread: Zipf key ranks, set_pct% flagged as sets. */
static uint32_t *make_ring(const zipf *z, uint64_t seed, size_t entries, unsigned set_pct)
{
    uint32_t *ring = xcalloc(entries, sizeof *ring);
    rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < entries; i++) {
        uint32_t id = (uint32_t)zipf_next(z, &r);
        ring[i] = rng_double(&r) * 100 < set_pct ? id | SET_FLAG : id;
    }
    return ring;
}

/* ---- CPU control: how much parallelism the machine gives right now ------------------------
 * On a shared VM two vCPUs are not always two cores' worth of time. Before each round with n > 1
 * threads, n threads spin on pure arithmetic (no shared memory) and their aggregate rate is
 * compared with one thread's: the scaling a perfectly parallel workload would get at that moment,
 * to read the cache's scaling against. */

#define SPIN_ITERS ((uint64_t)1 << 25)

static void *spin_run(void *arg)
{
    rng r;
    rng_seed(&r, *(uint64_t *)arg);
    uint64_t x = 0;
    for (uint64_t i = 0; i < SPIN_ITERS; i++)
        x ^= rng_next(&r);
    *(volatile uint64_t *)arg = x; /* keeps the loop */
    return NULL;
}

/* Aggregate spin iterations per second with n threads. */
static double spin_rate(unsigned n)
{
    pthread_t tids[MAX_THREADS];
    uint64_t sink[MAX_THREADS];
    uint64_t t0 = now_ns();
    for (unsigned t = 0; t < n; t++) {
        sink[t] = t + 1;
        if (pthread_create(&tids[t], NULL, spin_run, &sink[t]) != 0) {
            fprintf(stderr, "bench_l1: pthread_create failed\n");
            exit(1);
        }
    }
    for (unsigned t = 0; t < n; t++)
        pthread_join(tids[t], NULL);
    return (double)n * (double)SPIN_ITERS / ((double)(now_ns() - t0) / 1e9);
}

typedef struct round_figures {
    double ops, get_ops, p50, p99, get_p50, get_p99, set_p50, set_p99, hit, cpu;
} round_figures;

static round_figures run_round(const options *o, strata_l1 *l1, const char *keys,
                               uint32_t *const *rings, size_t ring_entries, worker *const *ws,
                               unsigned nthreads)
{
    double cpu = 1.0;
    if (nthreads > 1) {
        double one = spin_rate(1);
        cpu = spin_rate(nthreads) / one;
    }
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, nthreads);
    pthread_t tids[MAX_THREADS];
    for (unsigned t = 0; t < nthreads; t++) {
        worker *w = ws[t];
        *w = (worker){.l1 = l1,
                      .keys = keys,
                      .ring = rings[t],
                      .ring_mask = ring_entries - 1,
                      .ops = o->ops,
                      .sample = o->sample,
                      .start = &start};
        int err = pthread_create(&tids[t], NULL, worker_run, w);
        if (err != 0) {
            fprintf(stderr, "bench_l1: pthread_create: %s\n", strerror(err));
            exit(1);
        }
    }
    hist *all = xcalloc(1, sizeof *all), *get = xcalloc(1, sizeof *get),
         *set = xcalloc(1, sizeof *set);
    uint64_t t0 = UINT64_MAX, t1 = 0, gets = 0, ops = 0, hits = 0, errors = 0, corrupt = 0;
    int first_error = 0;
    for (unsigned t = 0; t < nthreads; t++) {
        pthread_join(tids[t], NULL);
        const worker *w = ws[t];
        t0 = w->t_start < t0 ? w->t_start : t0;
        t1 = w->t_end > t1 ? w->t_end : t1;
        gets += w->gets;
        ops += w->gets + w->sets;
        hits += w->hits;
        if (w->errors != 0 && errors == 0)
            first_error = w->first_error;
        errors += w->errors;
        corrupt += w->corrupt;
        hist_merge(get, &w->get_lat);
        hist_merge(set, &w->set_lat);
        hist_merge(all, &w->get_lat);
        hist_merge(all, &w->set_lat);
    }
    pthread_barrier_destroy(&start);
    double secs = (double)(t1 - t0) / 1e9;
    round_figures f = {.ops = (double)ops / secs,
                       .get_ops = (double)gets / secs,
                       .p50 = hist_quantile(all, 0.50),
                       .p99 = hist_quantile(all, 0.99),
                       .get_p50 = hist_quantile(get, 0.50),
                       .get_p99 = hist_quantile(get, 0.99),
                       .set_p50 = hist_quantile(set, 0.50),
                       .set_p99 = hist_quantile(set, 0.99),
                       .hit = gets ? (double)hits / (double)gets : 0,
                       .cpu = cpu};
    printf("  %u thread%s: %.3f s, %.2f M ops/s, %.2f M gets/s, get hit %.4f", nthreads,
           nthreads == 1 ? " " : "s", secs, f.ops / 1e6, f.get_ops / 1e6, f.hit);
    if (o->sample != 0)
        printf(", latency p50 %.0f ns p99 %.0f ns (get %.0f/%.0f, set %.0f/%.0f; %" PRIu64
               " samples)",
               f.p50, f.p99, f.get_p50, f.get_p99, f.set_p50, f.set_p99, all->total);
    if (nthreads > 1)
        printf(", CPU control %.2fx", f.cpu);
    printf("\n");
    if (errors != 0)
        printf("  !! %" PRIu64 " calls failed, the first with %s\n", errors,
               strata_err_name(first_error));
    if (corrupt != 0)
        printf("  !! %" PRIu64 " gets returned a value that is not the key's\n", corrupt);
    free(all);
    free(get);
    free(set);
    return f;
}

/* VmRSS and VmHWM from /proc/self/status, in KiB (0 if unreadable). */
static void read_rss(uint64_t *rss_kb, uint64_t *hwm_kb)
{
    *rss_kb = *hwm_kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return;
    char line[256];
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long long v;
        if (sscanf(line, "VmRSS: %llu kB", &v) == 1)
            *rss_kb = v;
        else if (sscanf(line, "VmHWM: %llu kB", &v) == 1)
            *hwm_kb = v;
    }
    fclose(f);
}

static void bench_throughput(const options *o)
{
    printf("== throughput: %u%% get / %u%% set, Zipf(%.2f) over %zu keys, %d-byte keys, "
           "%d-byte values\n",
           100 - o->set_pct, o->set_pct, ZIPF_S, o->keys, KEY_LEN, VALUE_LEN);
    printf("   %" PRIu64 " ops per thread per round, %u round%s (medians reported); ", o->ops,
           o->rounds, o->rounds == 1 ? "" : "s");
    if (o->sample != 0) {
        double floor_ns = timer_floor_ns();
        printf("one op in %u timed with clock_gettime(CLOCK_MONOTONIC), whose own back-to-back "
               "cost is %.0f ns and is included in every latency\n",
               o->sample, floor_ns);
        result("l1.timer_floor_ns", "%.0f", floor_ns);
    } else {
        printf("latency not sampled\n");
    }

    unsigned maxt = 0;
    for (size_t i = 0; i < o->nthreads; i++)
        maxt = o->threads[i] > maxt ? o->threads[i] : maxt;

    /* Everything the bench itself needs is allocated before the baseline RSS reading. */
    zipf z;
    zipf_init(&z, o->keys, ZIPF_S);
    char *keys = xcalloc(o->keys, KEY_LEN);
    for (size_t i = 0; i < o->keys; i++)
        key_of(i, keys + i * KEY_LEN);
    size_t ring_entries = RING_ENTRIES;
    while (ring_entries / 2 >= o->ops && ring_entries > 1024)
        ring_entries /= 2;
    uint32_t *rings[MAX_THREADS];
    worker *ws[MAX_THREADS];
    for (unsigned t = 0; t < maxt; t++) {
        rings[t] = make_ring(&z, o->seed + 1000 * (t + 1), ring_entries, o->set_pct);
        ws[t] = xcalloc(1, sizeof *ws[t]);
    }
    uint64_t base_rss, base_hwm;
    read_rss(&base_rss, &base_hwm);

    strata_l1 *l1 = l1_open(o->memory, 0);
    uint64_t now = strata_now_ms();
    char value[VALUE_LEN];
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < o->keys; i++) {
        strata_key k = {BENCH_NS, NULL, keys + i * KEY_LEN, KEY_LEN};
        value_of(keys + i * KEY_LEN, value);
        int rc = strata_l1_set(l1, &k, value, VALUE_LEN, NULL, now);
        if (rc != 0)
            die_status("pre-populating", rc);
    }
    double fill_s = (double)(now_ns() - t0) / 1e9;
    strata_stats st = l1_stats(l1);
    printf("   pre-populated %zu keys in %.3f s (%.2f M sets/s, one thread): %" PRIu64
           " entries, %" PRIu64 " bytes charged of %" PRIu64 " (%.0f bytes/entry)\n",
           o->keys, fill_s, (double)o->keys / fill_s / 1e6, st.entries, st.bytes, st.max_bytes,
           st.entries ? (double)st.bytes / (double)st.entries : 0);
    if (st.entries != o->keys)
        printf("   !! the tier holds %" PRIu64 " of %zu keys: the throughput run is not all hits\n",
               st.entries, o->keys);

    for (size_t ti = 0; ti < o->nthreads; ti++) {
        unsigned n = o->threads[ti];
        double ops[MAX_ROUNDS] = {0}, get_ops[MAX_ROUNDS] = {0}, p50[MAX_ROUNDS] = {0},
               p99[MAX_ROUNDS] = {0}, gp50[MAX_ROUNDS] = {0}, gp99[MAX_ROUNDS] = {0},
               sp50[MAX_ROUNDS] = {0}, sp99[MAX_ROUNDS] = {0}, hit[MAX_ROUNDS] = {0},
               cpu[MAX_ROUNDS] = {0};
        for (unsigned r = 0; r < o->rounds; r++) {
            round_figures f = run_round(o, l1, keys, rings, ring_entries, ws, n);
            ops[r] = f.ops;
            get_ops[r] = f.get_ops;
            p50[r] = f.p50;
            p99[r] = f.p99;
            gp50[r] = f.get_p50;
            gp99[r] = f.get_p99;
            sp50[r] = f.set_p50;
            sp99[r] = f.set_p99;
            hit[r] = f.hit;
            cpu[r] = f.cpu;
        }
        char name[64];
#define RESULT_T(what, fmt, arr)                                                                   \
    do {                                                                                           \
        snprintf(name, sizeof name, "l1." what "_%ut", n);                                         \
        result(name, fmt, median(arr, o->rounds));                                                 \
    } while (0)
        RESULT_T("ops", "%.0f", ops);
        RESULT_T("get_ops", "%.0f", get_ops);
        RESULT_T("get_hit_ratio", "%.4f", hit);
        if (o->sample != 0) {
            RESULT_T("p50_ns", "%.0f", p50);
            RESULT_T("p99_ns", "%.0f", p99);
            RESULT_T("get_p50_ns", "%.0f", gp50);
            RESULT_T("get_p99_ns", "%.0f", gp99);
            RESULT_T("set_p50_ns", "%.0f", sp50);
            RESULT_T("set_p99_ns", "%.0f", sp99);
        }
        if (n > 1)
            RESULT_T("cpu_control", "%.3f", cpu);
#undef RESULT_T
        printf("  median of %u: %u thread%s %.2f M ops/s, %.2f M gets/s", o->rounds, n,
               n == 1 ? "" : "s", median(ops, o->rounds) / 1e6, median(get_ops, o->rounds) / 1e6);
        if (o->sample != 0)
            printf(", p50 %.0f ns, p99 %.0f ns", median(p50, o->rounds), median(p99, o->rounds));
        if (n > 1)
            printf(", CPU control %.2fx", median(cpu, o->rounds));
        printf("\n");
    }

    uint64_t rss, hwm;
    read_rss(&rss, &hwm);
    st = l1_stats(l1);
    printf("   after the runs: RSS %" PRIu64 " KiB (peak %" PRIu64 "), of which about %" PRIu64
           " KiB came with the tier (RSS before it: %" PRIu64 " KiB, the bench's own rings, keys "
           "and CDF); the tier charges itself %" PRIu64 " bytes for %" PRIu64 " entries; "
           "%" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64 " evictions\n",
           rss, hwm, rss > base_rss ? rss - base_rss : 0, base_rss, st.bytes, st.entries, st.hits,
           st.misses, st.evictions);
    result("l1.rss_kb", "%.0f", (double)rss);
    result("l1.rss_tier_kb", "%.0f", (double)(rss > base_rss ? rss - base_rss : 0));
    result("l1.charged_bytes", "%.0f", (double)st.bytes);
    result("l1.entries", "%.0f", (double)st.entries);

    strata_l1_free(l1);
    for (unsigned t = 0; t < maxt; t++) {
        free(rings[t]);
        free(ws[t]);
    }
    free(keys);
    zipf_free(&z);
}

/* ---- the plain LRU reference: a chained hash map over a doubly linked list of ids --------- */

#define NIL UINT32_MAX

typedef struct lru_node {
    uint64_t id;
    uint32_t prev, next; /* recency list, head = most recent */
    uint32_t chain;      /* next node in the same hash bucket */
} lru_node;

typedef struct lru {
    size_t cap, n;
    lru_node *nodes;
    uint32_t *buckets;
    size_t bucket_mask;
    uint32_t head, tail;
} lru;

static void lru_init(lru *c, size_t cap)
{
    size_t nb = 1;
    while (nb < 2 * cap)
        nb <<= 1;
    *c = (lru){.cap = cap, .bucket_mask = nb - 1, .head = NIL, .tail = NIL};
    c->nodes = xcalloc(cap, sizeof *c->nodes);
    c->buckets = xcalloc(nb, sizeof *c->buckets);
    for (size_t i = 0; i < nb; i++)
        c->buckets[i] = NIL;
}

static void lru_free(lru *c)
{
    free(c->nodes);
    free(c->buckets);
}

static size_t lru_bucket(const lru *c, uint64_t id)
{
    uint64_t x = id;
    return (size_t)(splitmix64(&x) & c->bucket_mask);
}

static uint32_t lru_find(const lru *c, uint64_t id)
{
    for (uint32_t i = c->buckets[lru_bucket(c, id)]; i != NIL; i = c->nodes[i].chain)
        if (c->nodes[i].id == id)
            return i;
    return NIL;
}

static void lru_unlink(lru *c, uint32_t i)
{
    lru_node *nd = &c->nodes[i];
    if (nd->prev != NIL)
        c->nodes[nd->prev].next = nd->next;
    else
        c->head = nd->next;
    if (nd->next != NIL)
        c->nodes[nd->next].prev = nd->prev;
    else
        c->tail = nd->prev;
}

static void lru_push_front(lru *c, uint32_t i)
{
    lru_node *nd = &c->nodes[i];
    nd->prev = NIL;
    nd->next = c->head;
    if (c->head != NIL)
        c->nodes[c->head].prev = i;
    c->head = i;
    if (c->tail == NIL)
        c->tail = i;
}

/* A read: true on a hit, which makes the entry the most recent. */
static bool lru_get(lru *c, uint64_t id)
{
    uint32_t i = lru_find(c, id);
    if (i == NIL)
        return false;
    lru_unlink(c, i);
    lru_push_front(c, i);
    return true;
}

/* A write: inserts id as the most recent entry, evicting the least recent when full. */
static void lru_set(lru *c, uint64_t id)
{
    if (lru_get(c, id))
        return;
    uint32_t i;
    if (c->n < c->cap) {
        i = (uint32_t)c->n++;
    } else {
        i = c->tail;
        lru_unlink(c, i);
        uint32_t *p = &c->buckets[lru_bucket(c, c->nodes[i].id)];
        while (*p != i)
            p = &c->nodes[*p].chain;
        *p = c->nodes[i].chain;
    }
    size_t b = lru_bucket(c, id);
    c->nodes[i].id = id;
    c->nodes[i].chain = c->buckets[b];
    c->buckets[b] = i;
    lru_push_front(c, i);
}

/* ---- hit ratio ---------------------------------------------------------------------------- */

/* Fills a single-shard tier of max_memory bytes with distinct keys and returns how many it holds.
 */
static uint64_t entries_held(size_t max_memory, size_t target)
{
    strata_l1 *l1 = l1_open(max_memory, 1);
    uint64_t now = strata_now_ms();
    char key[KEY_LEN], value[VALUE_LEN];
    for (uint64_t id = 0; id < 4 * target + 1000; id++) {
        key_of(SCAN_ID_BIT + id, key);
        value_of(key, value);
        strata_key k = {BENCH_NS, NULL, key, KEY_LEN};
        int rc = strata_l1_set(l1, &k, value, VALUE_LEN, NULL, now);
        if (rc != 0)
            die_status("calibration fill", rc);
    }
    uint64_t n = l1_stats(l1).entries;
    strata_l1_free(l1);
    return n;
}

/* The smallest max_memory (shards = 1) at which strata holds at least target entries. */
static size_t calibrate(size_t target, uint64_t *held)
{
    size_t lo = 64 << 10, hi = lo; /* 64 KiB is the smallest shard strata accepts */
    while (entries_held(hi, target) < target) {
        lo = hi;
        hi *= 2;
        if (hi > ((size_t)1 << 34)) {
            fprintf(stderr, "bench_l1: calibration: no size up to 16 GiB holds %zu entries\n",
                    target);
            exit(1);
        }
    }
    if (lo == hi) { /* the smallest size already holds enough */
        *held = entries_held(hi, target);
        return hi;
    }
    while (hi - lo > 64) { /* invariant: lo holds fewer than target, hi at least target */
        size_t mid = lo + (hi - lo) / 2;
        if (entries_held(mid, target) < target)
            lo = mid;
        else
            hi = mid;
    }
    *held = entries_held(hi, target);
    return hi;
}

typedef struct hr_counts {
    uint64_t requests, hits;   /* Zipf (non-scan) requests */
    uint64_t scans, scan_hits; /* scan requests */
    uint64_t errors, corrupt;
    int first_error;
} hr_counts;

/* Cache-aside against strata: get; on a miss, set. Scan ids count apart. */
static hr_counts replay_strata(strata_l1 *l1, const uint64_t *trace, size_t n)
{
    hr_counts c = {0};
    uint64_t now = strata_now_ms(); /* fixed: nothing expires, and time is not what is measured */
    char key[KEY_LEN], value[VALUE_LEN];
    for (size_t i = 0; i < n; i++) {
        bool scan = trace[i] >= SCAN_ID_BIT;
        key_of(trace[i], key);
        strata_key k = {BENCH_NS, NULL, key, KEY_LEN};
        strata_value *v;
        int rc = strata_l1_get(l1, &k, now, &v);
        bool hit = rc == STRATA_OK;
        if (hit) {
            c.corrupt += !value_ok(v, key);
            strata_value_release(v);
        } else if (rc == STRATA_ENOTFOUND) {
            value_of(key, value);
            rc = strata_l1_set(l1, &k, value, VALUE_LEN, NULL, now);
        }
        if (rc != STRATA_OK && c.errors++ == 0)
            c.first_error = rc;
        if (scan) {
            c.scans++;
            c.scan_hits += hit;
        } else {
            c.requests++;
            c.hits += hit;
        }
    }
    return c;
}

static hr_counts replay_lru(lru *cache, const uint64_t *trace, size_t n)
{
    hr_counts c = {0};
    for (size_t i = 0; i < n; i++) {
        bool hit = lru_get(cache, trace[i]);
        if (!hit)
            lru_set(cache, trace[i]);
        if (trace[i] >= SCAN_ID_BIT) {
            c.scans++;
            c.scan_hits += hit;
        } else {
            c.requests++;
            c.hits += hit;
        }
    }
    return c;
}

static double ratio(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : 0;
}

/* Replays one trace against a fresh calibrated strata and an LRU of the same entry count. */
static void compare(const char *label, const char *result_prefix, const uint64_t *trace, size_t n,
                    size_t max_memory, uint64_t held, double optimum)
{
    strata_l1 *l1 = l1_open(max_memory, 1);
    hr_counts s = replay_strata(l1, trace, n);
    strata_stats st = l1_stats(l1);
    strata_l1_free(l1);
    lru ref;
    lru_init(&ref, (size_t)held);
    hr_counts r = replay_lru(&ref, trace, n);
    lru_free(&ref);

    double hs = ratio(s.hits, s.requests), hl = ratio(r.hits, r.requests);
    printf("   %s: %" PRIu64 " Zipf requests", label, s.requests);
    if (s.scans)
        printf(" + %" PRIu64 " scan requests", s.scans);
    printf("\n     hit ratio%s: strata %.4f, LRU %.4f (strata/LRU %.3f), stationary optimum %.4f\n",
           s.scans ? " on the Zipf requests" : "", hs, hl, hl > 0 ? hs / hl : 0, optimum);
    printf("     strata at the end: %" PRIu64 " entries (%" PRIu64 " at calibration), %" PRIu64
           " of %" PRIu64 " bytes, %" PRIu64 " evictions, %" PRIu64 " hits + %" PRIu64
           " misses counted by the tier\n",
           st.entries, held, st.bytes, st.max_bytes, st.evictions, st.hits, st.misses);
    if (st.hits != s.hits + s.scan_hits || st.hits + st.misses != s.requests + s.scans)
        printf("     !! the tier's hit/miss counters disagree with the bench's (%" PRIu64
               " hits of %" PRIu64 " gets)\n",
               s.hits + s.scan_hits, s.requests + s.scans);
    if (st.bytes > st.max_bytes)
        printf("     !! the tier charges %" PRIu64 " bytes, over its bound of %" PRIu64 "\n",
               st.bytes, st.max_bytes);
    if (s.errors)
        printf("     !! %" PRIu64 " strata calls failed, the first with %s\n", s.errors,
               strata_err_name(s.first_error));
    if (s.corrupt)
        printf("     !! %" PRIu64 " strata hits returned the wrong bytes\n", s.corrupt);
    if (hs <= hl)
        printf("     !! strata's hit ratio is not above LRU's on this trace\n");

    char name[64];
    snprintf(name, sizeof name, "%s.strata", result_prefix);
    result(name, "%.4f", hs);
    snprintf(name, sizeof name, "%s.lru", result_prefix);
    result(name, "%.4f", hl);
    snprintf(name, sizeof name, "%s.optimum", result_prefix);
    result(name, "%.4f", optimum);
    if (s.scans) {
        snprintf(name, sizeof name, "%s.strata_scan_requests", result_prefix);
        result(name, "%.4f", ratio(s.scan_hits, s.scans));
    }
}

static void bench_hitratio(const options *o)
{
    size_t target = o->hr_keys / 100;
    printf("== hit ratio: Zipf(%.2f) over %zu keys, %" PRIu64 " requests, cache-aside (get; on a "
           "miss, set), capacity 1%% of the keys\n",
           ZIPF_S, o->hr_keys, o->requests);
    uint64_t held;
    size_t max_memory = calibrate(target, &held);
    printf("   calibration: shards=1, max_memory=%zu bytes holds %" PRIu64 " entries of %d+%d "
           "bytes (target %zu); the LRU reference gets exactly %" PRIu64 " entries\n",
           max_memory, held, KEY_LEN, VALUE_LEN, target, held);
    result("l1.capacity.max_memory", "%.0f", (double)max_memory);
    result("l1.capacity.strata_entries", "%.0f", (double)held);
    result("l1.capacity.lru_entries", "%.0f", (double)held);

    zipf z;
    zipf_init(&z, o->hr_keys, ZIPF_S);
    double optimum = zipf_top_share(&z, (size_t)held);
    rng r;

    /* Trace 1: plain Zipf. */
    size_t n = (size_t)o->requests;
    uint64_t *trace = xcalloc(n, sizeof *trace);
    rng_seed(&r, o->seed);
    for (size_t i = 0; i < n; i++)
        trace[i] = zipf_next(&z, &r);
    compare("Zipf trace", "l1.hit_ratio", trace, n, max_memory, held, optimum);
    free(trace);

    /* Trace 2: the same Zipf stream (same seed), a scan of fresh keys after every scan_every. */
    size_t scans = (size_t)(o->requests / o->scan_every);
    size_t m = n + scans * (size_t)o->scan_len;
    trace = xcalloc(m, sizeof *trace);
    rng_seed(&r, o->seed);
    uint64_t fresh = 0;
    for (size_t i = 0, j = 0; i < n; i++) {
        trace[j++] = zipf_next(&z, &r);
        if ((i + 1) % o->scan_every == 0)
            for (uint64_t s = 0; s < o->scan_len; s++)
                trace[j++] = SCAN_ID_BIT + fresh++;
    }
    printf("   scan trace: every %" PRIu64 " Zipf requests, a scan of %" PRIu64
           " never-repeated keys\n",
           o->scan_every, o->scan_len);
    compare("scan trace", "l1.scan_hit_ratio", trace, m, max_memory, held, optimum);
    free(trace);
    zipf_free(&z);
}

int main(int argc, char **argv)
{
    options o;
    parse_options(&o, argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (o.throughput)
        bench_throughput(&o);
    if (o.hitratio)
        bench_hitratio(&o);
    printf("== summary\n");
    for (size_t i = 0; i < nresults; i++)
        printf("RESULT %s=%s\n", results[i].name, results[i].value);
    return 0;
}
