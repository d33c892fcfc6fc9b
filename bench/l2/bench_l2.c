/* bench_l2.c: the shared-tier (Redis) benchmark: strata's L2 get and set, sync and async.
 *
 * One invocation measures one row, so bench/l2/run.sh can interleave strata's rows with
 * redis-benchmark's on the same redis-server, round after round, and report medians:
 *
 *   --mode preload   writes every key 0..keys-1 through strata (async, 800 in flight), so the
 *                    gets that follow read strata's stored format and always hit
 *   --mode sync      --threads T threads calling strata_cache_get / strata_cache_set (the pool has
 *                    --conns connections): concurrency T, one blocking round trip per call
 *   --mode async     one thread, one event_base, one strata_loop, keeping --depth calls of
 *                    strata_cache_get_async / strata_cache_set_async in flight (all pipelined on
 *                    the loop's one connection)
 *   --mode hiredis   the same async driver on a bare hiredis async connection (GET / SET PX of
 *                    the very same stored keys and bytes): what the protocol alone costs here,
 *                    to tell strata's own overhead from hiredis' and Redis'
 *
 * Every row runs sets first, then gets (as redis-benchmark -t get,set does), each for --ops calls
 * after --warmup untimed ones, and prints a human line and `RESULT l2.<row>.<op>=<ops/s>`.
 *
 * L2, not L1: the cache is made with cfg.redis.coherence = 0. With coherence off, L1 is never
 * trusted for shared keys (the two-tier logic does not trust L1 without an invalidation link):
 * every get goes to Redis and what it reads is not promoted, and a set is not linked into L1.
 * So each get below is one Redis GET plus strata's decode and value build, exactly. The bench
 * checks it: every value read must be 100 bytes starting with its own key, and the L2 counters
 * (hits, errors, fallbacks) are printed; any miss, error or fallback is reported as a warning.
 *
 * Keys: user key "key:%012u" (16 bytes, the shape redis-benchmark -r gives its own keys) in
 * namespace "bench", tenant default, so the stored key is "strata:bench:default:key:...". Values:
 * 100 bytes (the key, then filler), stored as a 128-byte Redis string (strata's 28-byte header).
 * Keys are drawn uniformly (xorshift64*). TTL one hour, no jitter. Settings otherwise the
 * defaults (max_pending 1024, above the 800 in flight), but socket_timeout_ms is 2 s: on a shared
 * machine a preempted client must not turn into timeouts and L1 fallbacks.
 *
 * CPU: each timed run also reports how busy it kept the client (getrusage, this process, all
 * threads) and the redis-server (INFO cpu, asked on a side connection before and after), as a
 * share of one CPU over the run. 1.00 means that side was the bottleneck; on a shared machine,
 * the CPU per call (share / rate) is the figure that survives other people's load. The CPU that
 * other processes used meanwhile (/proc/stat's busy time minus both) is reported too, so
 * bench/l2/run.sh can tell a disturbed measurement from a clean one.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <strata/cache.h>
#include <strata/errors.h>
#include <strata/key.h>
#include <strata/value.h>

#define BENCH_NS   "bench"
#define KEY_LEN    16 /* "key:%012u" */
#define VALUE_LEN  100
#define TTL_MS     3600000u
#define MAX_THREAD 256

enum { OP_SET, OP_GET };
static const char *const op_name[] = {"set", "get"};

typedef struct options {
    const char *url;
    const char *cluster; /* --cluster: a Redis Cluster's seeds instead of --url */
    const char *tls_ca;  /* --tls-ca: TLS (rediss:// or to every cluster node), this CA */
    const char *mode;
    const char *row; /* the row's name in RESULT lines (default from mode and settings) */
    const char *ops_list;
    unsigned keys;
    uint64_t ops, warmup;
    unsigned threads, conns, depth;
    uint64_t seed;
} options;

static options opt = {.url = NULL,
                      .mode = NULL,
                      .row = NULL,
                      .ops_list = "set,get",
                      .keys = 100000,
                      .ops = 400000,
                      .warmup = 5000,
                      .threads = 8,
                      .conns = 8,
                      .depth = 50,
                      .seed = 42};

/* ---- small helpers ------------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_next(uint64_t *s) /* xorshift64* */
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void make_key(char *buf, unsigned i)
{
    /* "key:" + 12 zero-padded digits, no NUL needed (length is KEY_LEN) */
    memcpy(buf, "key:", 4);
    for (int p = KEY_LEN - 1; p >= 4; p--, i /= 10)
        buf[p] = (char)('0' + i % 10);
}

static void make_value(char *buf, const char *key)
{
    memcpy(buf, key, KEY_LEN);
    for (int p = KEY_LEN; p < VALUE_LEN; p++)
        buf[p] = (char)('a' + p % 26);
}

static bool value_ok(const void *data, size_t len, const char *key)
{
    return len == VALUE_LEN && memcmp(data, key, KEY_LEN) == 0;
}

/* CPU seconds of this process (all threads) */
static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* CPU seconds of the redis-server (INFO cpu: used_cpu_sys + used_cpu_user), on a side connection
 * asked only between timed runs; -1 if it cannot be had. */
static redisContext *info_conn;

static double server_cpu(void)
{
    if (info_conn == NULL) {
        char host[256] = "127.0.0.1";
        int port = 6379;
        if (opt.url == NULL || sscanf(opt.url, "redis://%255[^:/]:%d", host, &port) < 1)
            return -1; /* rediss:// and clusters: the script measures the servers itself */
        info_conn = redisConnect(host, port);
        if (info_conn == NULL || info_conn->err)
            return -1;
    }
    redisReply *r = redisCommand(info_conn, "INFO cpu");
    double sum = -1;
    if (r != NULL && r->type == REDIS_REPLY_STRING) {
        const char *p;
        double a, b;
        if ((p = strstr(r->str, "used_cpu_sys:")) != NULL && sscanf(p + 13, "%lf", &a) == 1 &&
            (p = strstr(r->str, "used_cpu_user:")) != NULL && sscanf(p + 14, "%lf", &b) == 1)
            sum = a + b;
    }
    if (r)
        freeReplyObject(r);
    return sum;
}

/* CPU seconds the whole machine has spent busy (all CPUs; /proc/stat), -1 if unknown. */
static double machine_busy(void)
{
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = {0};
    int n = f ? fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                       &v[4], &v[5], &v[6], &v[7])
              : 0;
    if (f)
        fclose(f);
    if (n < 8)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)(hz > 0 ? hz : 100);
}

/* Where a timed run starts: wall clock, this process' CPU, the server's, the machine's. */
typedef struct span {
    double wall, self, server, machine;
} span;

static span span_start(void)
{
    span s;
    s.server = server_cpu();
    s.machine = machine_busy();
    s.self = self_cpu();
    s.wall = now_s();
    return s;
}

/* Log lines of the cache: counted, the last kept, printed at the end (never on the hot path). */
static unsigned long log_lines;
static char log_last[256];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void quiet_log(int level, const char *msg, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&log_lock);
    log_lines++;
    snprintf(log_last, sizeof log_last, "[%d] %s", level, msg);
    pthread_mutex_unlock(&log_lock);
}

static strata_cache *open_cache(unsigned conns)
{
    strata_cache_config cfg;
    int rc = strata_cache_config_init(&cfg, NULL);
    if (rc != 0) {
        fprintf(stderr, "bench_l2: config: %s\n", strata_strerror(rc));
        exit(1);
    }
    cfg.redis.url = opt.url;
    cfg.redis.cluster = opt.cluster;
    if (opt.tls_ca != NULL)
        cfg.redis.tls = 1, cfg.redis.tls_ca_cert = opt.tls_ca;
    cfg.redis.enabled = 1;
    cfg.redis.coherence = 0; /* L1 never answers a shared key: every get is a Redis GET */
    cfg.redis.max_connections = conns;
    cfg.redis.socket_timeout_ms = 2000; /* a noisy shared machine must not turn into fallbacks */
    cfg.log = quiet_log;
    cfg.log_arg = NULL;
    strata_cache *c;
    if ((rc = strata_cache_new(&cfg, &c)) != 0) {
        fprintf(stderr, "bench_l2: strata_cache_new: %s\n", strata_strerror(rc));
        exit(1);
    }
    uint64_t us;
    for (int i = 0; i < 50 && strata_cache_ping(c, &us) != 0; i++) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if ((rc = strata_cache_ping(c, &us)) != 0) {
        fprintf(stderr, "bench_l2: redis at %s does not answer: %s\n",
                opt.url ? opt.url : opt.cluster, strata_strerror(rc));
        exit(1);
    }
    return c;
}

/* Counts of one measured run. */
typedef struct tally {
    uint64_t ok, miss, bad, err;
} tally;

static strata_l2_stats stats_before;

static void report(const char *row, int op, uint64_t ops, span from, const tally *t,
                   strata_cache *c)
{
    double wall = now_s(), self = self_cpu(), machine = machine_busy(), server = server_cpu();
    double secs = wall - from.wall;
    double rate = secs > 0 ? (double)ops / secs : 0;
    double ccpu = secs > 0 ? (self - from.self) / secs : 0;
    double scpu = secs > 0 && server >= 0 && from.server >= 0 ? (server - from.server) / secs : -1;
    /* everyone else: the machine's busy CPUs minus this client and the server (tick-grained) */
    double other = -1;
    if (secs > 0 && machine >= 0 && from.machine >= 0 && scpu >= 0) {
        other = (machine - from.machine) / secs - ccpu - scpu;
        if (other < 0)
            other = 0;
    }
    printf("%-22s %-4s %12.0f ops/s  (%" PRIu64 " ops in %.3f s; ok %" PRIu64 " miss %" PRIu64
           " bad %" PRIu64 " err %" PRIu64 ")\n",
           row, op_name[op], rate, ops, secs, t->ok, t->miss, t->bad, t->err);
    if (c != NULL) {
        strata_l2_stats s;
        strata_cache_l2_stats(c, &s);
        uint64_t fb = s.fallbacks - stats_before.fallbacks, er = s.errors - stats_before.errors;
        printf("%-22s      L2 counters: hits +%" PRIu64 " misses +%" PRIu64 " errors +%" PRIu64
               " fallbacks +%" PRIu64 " breaker %s\n",
               "", s.hits - stats_before.hits, s.misses - stats_before.misses, er, fb, s.breaker);
        if (fb || er)
            printf("WARNING: %s %s: %" PRIu64 " fallbacks, %" PRIu64
                   " errors: some calls were not answered by Redis (last error: %s)\n",
                   row, op_name[op], fb, er, s.last_error);
        stats_before = s;
    }
    if (t->miss || t->bad || t->err)
        printf("WARNING: %s %s: %" PRIu64 " misses, %" PRIu64 " wrong values, %" PRIu64 " errors\n",
               row, op_name[op], t->miss, t->bad, t->err);
    printf("%-22s      CPU busy: client %.2f (this process, all threads), redis-server %.2f, "
           "other processes %.2f\n",
           "", ccpu, scpu, other);
    printf("RESULT l2.%s.%s=%.0f\n", row, op_name[op], rate);
    printf("RESULT l2.%s.%s.client_cpu=%.2f\n", row, op_name[op], ccpu);
    if (scpu >= 0)
        printf("RESULT l2.%s.%s.server_cpu=%.2f\n", row, op_name[op], scpu);
    if (other >= 0)
        printf("RESULT l2.%s.%s.other_cpu=%.2f\n", row, op_name[op], other);
    fflush(stdout);
}

/* ---- sync: threads on the blocking API ---------------------------------------------------- */

typedef struct sync_arg {
    strata_cache *c;
    pthread_barrier_t *start;
    int op;
    uint64_t ops;
    uint64_t seed;
    tally t;
} sync_arg;

static void sync_one(strata_cache *c, int op, unsigned idx, tally *t)
{
    char key[KEY_LEN], val[VALUE_LEN];
    make_key(key, idx);
    strata_key k = {BENCH_NS, NULL, key, KEY_LEN};
    if (op == OP_GET) {
        strata_value *v = NULL;
        int rc = strata_cache_get(c, &k, &v);
        if (rc == 0) {
            if (value_ok(strata_value_data(v), strata_value_len(v), key))
                t->ok++;
            else
                t->bad++;
            strata_value_release(v);
        } else if (rc == STRATA_ENOTFOUND) {
            t->miss++;
        } else {
            t->err++;
        }
    } else {
        strata_set_opts so = {.ttl_ms = TTL_MS, .flags = STRATA_SET_NO_JITTER};
        make_value(val, key);
        int rc = strata_cache_set(c, &k, val, VALUE_LEN, &so);
        if (rc == STRATA_OK)
            t->ok++;
        else
            t->err++; /* STRATA_OK_L1_ONLY included: Redis did not take it */
    }
}

static void *sync_thread(void *p)
{
    sync_arg *a = p;
    uint64_t s = a->seed;
    pthread_barrier_wait(a->start);
    for (uint64_t i = 0; i < a->ops; i++)
        sync_one(a->c, a->op, (unsigned)(rng_next(&s) % opt.keys), &a->t);
    return NULL;
}

static void run_sync(strata_cache *c, int op, const char *row)
{
    unsigned n = opt.threads;
    pthread_t th[MAX_THREAD];
    sync_arg args[MAX_THREAD];
    pthread_barrier_t start;
    /* warm-up: every pool connection made before the clock starts */
    for (int phase = 0; phase < 2; phase++) {
        uint64_t per = phase == 0 ? opt.warmup / n + 1 : opt.ops / n;
        pthread_barrier_init(&start, NULL, n + 1);
        for (unsigned i = 0; i < n; i++) {
            args[i] = (sync_arg){.c = c,
                                 .start = &start,
                                 .op = op,
                                 .ops = per,
                                 .seed = opt.seed * 7919 + i * 104729 + (uint64_t)phase + 1};
            if (pthread_create(&th[i], NULL, sync_thread, &args[i]) != 0) {
                fprintf(stderr, "bench_l2: pthread_create failed\n");
                exit(1);
            }
        }
        if (phase == 1) {
            strata_cache_l2_stats(c, &stats_before);
        }
        span from = span_start();
        pthread_barrier_wait(&start);
        for (unsigned i = 0; i < n; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&start);
        if (phase == 1) {
            tally t = {0};
            for (unsigned i = 0; i < n; i++) {
                t.ok += args[i].t.ok, t.miss += args[i].t.miss;
                t.bad += args[i].t.bad, t.err += args[i].t.err;
            }
            report(row, op, per * n, from, &t, c);
        }
    }
}

/* ---- async: one loop, a fixed number of calls in flight ----------------------------------- */

typedef struct adrv adrv;
typedef int (*issue_fn)(adrv *d, unsigned idx); /* 1: pending; 0: done at once (tallied) */

struct adrv {
    struct event_base *base;
    strata_loop *lp;       /* strata mode */
    redisAsyncContext *ac; /* hiredis mode */
    int op;
    uint64_t total, issued, done;
    unsigned depth, inflight;
    int in_issue, finished;
    int sequential; /* keys 0, 1, 2, ... instead of uniform draws (the preload) */
    uint64_t rng;
    tally t;
    issue_fn issue_one;
};

typedef struct req { /* one call in flight: its driver and its key */
    adrv *d;
    char key[KEY_LEN];
} req;

static void finish_one(adrv *d);

static void fill(adrv *d)
{
    if (d->in_issue)
        return; /* a callback from inside an issue: the outer loop refills */
    d->in_issue = 1;
    while (d->inflight < d->depth && d->issued < d->total) {
        unsigned idx =
            d->sequential ? (unsigned)d->issued : (unsigned)(rng_next(&d->rng) % opt.keys);
        d->issued++;
        if (d->issue_one(d, idx))
            d->inflight++;
        else
            d->done++;
    }
    d->in_issue = 0;
    if (d->done == d->total && !d->finished) {
        d->finished = 1;
        event_base_loopbreak(d->base);
    }
}

static void finish_one(adrv *d)
{
    d->inflight--;
    d->done++;
    fill(d);
}

static void on_strata_get(int status, strata_value *v, void *arg)
{
    req *r = arg;
    adrv *d = r->d;
    if (status == 0) {
        if (value_ok(strata_value_data(v), strata_value_len(v), r->key))
            d->t.ok++;
        else
            d->t.bad++;
        strata_value_release(v);
    } else if (status == STRATA_ENOTFOUND) {
        d->t.miss++;
    } else {
        d->t.err++;
    }
    free(r);
    finish_one(d);
}

static void on_strata_set(int status, void *arg)
{
    req *r = arg;
    adrv *d = r->d;
    if (status == STRATA_OK)
        d->t.ok++;
    else
        d->t.err++;
    free(r);
    finish_one(d);
}

static int issue_strata(adrv *d, unsigned idx)
{
    req *r = malloc(sizeof *r);
    if (r == NULL)
        abort();
    r->d = d;
    make_key(r->key, idx);
    strata_key k = {BENCH_NS, NULL, r->key, KEY_LEN};
    int rc;
    if (d->op == OP_GET) {
        strata_value *v = NULL;
        rc = strata_cache_get_async(d->lp, &k, on_strata_get, r, &v);
        if (rc == STRATA_OK) { /* an L1 answer: must not happen with coherence off */
            d->t.bad++;
            strata_value_release(v);
        }
    } else {
        strata_set_opts so = {.ttl_ms = TTL_MS, .flags = STRATA_SET_NO_JITTER};
        char val[VALUE_LEN];
        make_value(val, r->key);
        rc = strata_cache_set_async(d->lp, &k, val, VALUE_LEN, &so, on_strata_set, r);
        if (rc == STRATA_OK || rc == STRATA_OK_L1_ONLY)
            d->t.err++; /* completed without Redis (L1 only) */
    }
    if (rc == STRATA_PENDING)
        return 1;
    if (rc == STRATA_ENOTFOUND)
        d->t.miss++;
    else if (rc < 0)
        d->t.err++;
    free(r);
    return 0;
}

/* The bare hiredis peer: the same stored keys and bytes, no strata in between. */
static char stored_prefix[] = "strata:" BENCH_NS ":" STRATA_DEFAULT_TENANT ":";

static void on_hiredis(redisAsyncContext *ac, void *reply, void *arg)
{
    (void)ac;
    req *r = arg;
    adrv *d = r->d;
    redisReply *rep = reply;
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR)
        d->t.err++;
    else if (d->op == OP_GET && rep->type == REDIS_REPLY_NIL)
        d->t.miss++;
    else if (d->op == OP_GET && (rep->type != REDIS_REPLY_STRING || rep->len != VALUE_LEN + 28 ||
                                 memcmp(rep->str + 28, r->key, KEY_LEN) != 0))
        d->t.bad++;
    else
        d->t.ok++;
    free(r);
    finish_one(d);
}

static char hiredis_blob[VALUE_LEN + 28]; /* a strata-format entry, copied from a real read */

static int issue_hiredis(adrv *d, unsigned idx)
{
    req *r = malloc(sizeof *r);
    if (r == NULL)
        abort();
    r->d = d;
    make_key(r->key, idx);
    char skey[sizeof stored_prefix + KEY_LEN];
    size_t plen = sizeof stored_prefix - 1;
    memcpy(skey, stored_prefix, plen);
    memcpy(skey + plen, r->key, KEY_LEN);
    int rc;
    if (d->op == OP_GET) {
        const char *argv[] = {"GET", skey};
        size_t lens[] = {3, plen + KEY_LEN};
        rc = redisAsyncCommandArgv(d->ac, on_hiredis, r, 2, argv, lens);
    } else {
        char blob[sizeof hiredis_blob];
        memcpy(blob, hiredis_blob, sizeof blob);
        memcpy(blob + 28, r->key, KEY_LEN);
        const char *argv[] = {"SET", skey, blob, "PX", "3600000"};
        size_t lens[] = {3, plen + KEY_LEN, sizeof blob, 2, 7};
        rc = redisAsyncCommandArgv(d->ac, on_hiredis, r, 5, argv, lens);
    }
    if (rc == REDIS_OK)
        return 1;
    d->t.err++;
    free(r);
    return 0;
}

static void drive(adrv *d, uint64_t ops)
{
    d->total = ops;
    d->issued = d->done = 0;
    d->inflight = 0;
    d->finished = 0;
    fill(d);
    while (!d->finished)
        if (event_base_loop(d->base, EVLOOP_ONCE) < 0) {
            fprintf(stderr, "bench_l2: event loop failed\n");
            exit(1);
        }
}

static void run_async(adrv *d, strata_cache *c, int op, const char *row)
{
    d->op = op;
    d->depth = opt.depth;
    d->rng = opt.seed * 31 + (uint64_t)op + 1;
    memset(&d->t, 0, sizeof d->t);
    drive(d, opt.warmup); /* connects, and settles the allocator */
    memset(&d->t, 0, sizeof d->t);
    if (c != NULL)
        strata_cache_l2_stats(c, &stats_before);
    span from = span_start();
    drive(d, opt.ops);
    report(row, op, opt.ops, from, &d->t, c);
}

/* Fetches one stored entry through hiredis (sync) to learn strata's real header bytes. */
static int learn_blob(const char *host, int port)
{
    redisContext *rc = redisConnect(host, port);
    if (rc == NULL || rc->err)
        return -1;
    char skey[sizeof stored_prefix + KEY_LEN];
    memcpy(skey, stored_prefix, sizeof stored_prefix - 1);
    make_key(skey + sizeof stored_prefix - 1, 0);
    redisReply *r = redisCommand(rc, "GET %b", skey, sizeof stored_prefix - 1 + KEY_LEN);
    int ok = r != NULL && r->type == REDIS_REPLY_STRING && r->len == (int)sizeof hiredis_blob;
    if (ok)
        memcpy(hiredis_blob, r->str, sizeof hiredis_blob);
    if (r)
        freeReplyObject(r);
    redisFree(rc);
    return ok ? 0 : -1;
}

/* ---- main --------------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(
        stderr,
        "usage: bench_l2 --url redis://HOST:PORT --mode preload|sync|async|hiredis [options]\n"
        "  --cluster H:P,H:P   a Redis Cluster's seed nodes instead of --url (not hiredis)\n"
        "  --tls-ca FILE       TLS (a rediss:// --url, or every cluster node), verified by FILE\n"
        "  --ops-list set,get  which operations, in order (default set,get)\n"
        "  --keys N            keyspace (default 100000), read and written uniformly\n"
        "  --ops N             timed calls per operation (default 400000)\n"
        "  --warmup N          untimed calls before each timed run (default 5000)\n"
        "  --threads T         sync: threads (default 8)\n"
        "  --conns C           sync: pool connections, max_connections (default 8)\n"
        "  --depth D           async, hiredis: calls in flight (default 50)\n"
        "  --row NAME          name of the row in RESULT lines (default from the mode)\n"
        "  --seed S            key stream seed (default 42)\n"
        "  --quick             a smoke run (20000 ops, 1000 warm-up)\n");
    exit(2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v != NULL && (i++, 1))
        if (ARG("--url"))
            opt.url = v;
        else if (ARG("--cluster"))
            opt.cluster = v;
        else if (ARG("--tls-ca"))
            opt.tls_ca = v;
        else if (ARG("--mode"))
            opt.mode = v;
        else if (ARG("--row"))
            opt.row = v;
        else if (ARG("--ops-list"))
            opt.ops_list = v;
        else if (ARG("--keys"))
            opt.keys = (unsigned)strtoul(v, NULL, 10);
        else if (ARG("--ops"))
            opt.ops = strtoull(v, NULL, 10);
        else if (ARG("--warmup"))
            opt.warmup = strtoull(v, NULL, 10);
        else if (ARG("--threads"))
            opt.threads = (unsigned)strtoul(v, NULL, 10);
        else if (ARG("--conns"))
            opt.conns = (unsigned)strtoul(v, NULL, 10);
        else if (ARG("--depth"))
            opt.depth = (unsigned)strtoul(v, NULL, 10);
        else if (ARG("--seed"))
            opt.seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--quick") == 0)
            opt.ops = 20000, opt.warmup = 1000;
        else
            usage();
#undef ARG
    }
    if ((opt.url == NULL) == (opt.cluster == NULL) || opt.mode == NULL || opt.keys == 0 ||
        opt.ops == 0 || opt.threads == 0 || opt.threads > MAX_THREAD || opt.depth == 0)
        usage();
    int ops[2], nops = 0;
    if (strstr(opt.ops_list, "set"))
        ops[nops++] = OP_SET;
    if (strstr(opt.ops_list, "get"))
        ops[nops++] = OP_GET;
    if (strstr(opt.ops_list, "get") && strstr(opt.ops_list, "set") &&
        strstr(opt.ops_list, "get") < strstr(opt.ops_list, "set"))
        ops[0] = OP_GET, ops[1] = OP_SET;
    char rowbuf[64];

    if (strcmp(opt.mode, "preload") == 0) {
        strata_cache *c = open_cache(1);
        struct event_base *base = event_base_new();
        strata_loop *lp;
        if (base == NULL || strata_loop_new(c, base, &lp) != 0)
            return 1;
        adrv d = {.base = base,
                  .lp = lp,
                  .op = OP_SET,
                  .depth = 800,
                  .sequential = 1,
                  .issue_one = issue_strata};
        double t0 = now_s();
        drive(&d, opt.keys);
        double t1 = now_s();
        strata_loop_free(lp);
        /* check: every key is there, in strata's format, readable through strata */
        tally t = {0};
        for (unsigned i = 0; i < opt.keys; i += opt.keys / 1000 + 1)
            sync_one(c, OP_GET, i, &t);
        printf(
            "preload: %u keys written through strata in %.2f s (ok %" PRIu64 " err %" PRIu64
            "); spot check of %" PRIu64 " reads: ok %" PRIu64 " miss %" PRIu64 " bad %" PRIu64 "\n",
            opt.keys, t1 - t0, d.t.ok, d.t.err, t.ok + t.miss + t.bad + t.err, t.ok, t.miss, t.bad);
        strata_cache_free(c);
        event_base_free(base);
        return d.t.err || t.miss || t.bad || t.err ? 1 : 0;
    }

    if (strcmp(opt.mode, "sync") == 0) {
        strata_cache *c = open_cache(opt.conns);
        snprintf(rowbuf, sizeof rowbuf, "sync_%ut", opt.threads);
        for (int i = 0; i < nops; i++)
            run_sync(c, ops[i], opt.row ? opt.row : rowbuf);
        strata_cache_free(c);
    } else if (strcmp(opt.mode, "async") == 0) {
        strata_cache *c = open_cache(1);
        struct event_base *base = event_base_new();
        strata_loop *lp;
        if (base == NULL || strata_loop_new(c, base, &lp) != 0) {
            fprintf(stderr, "bench_l2: strata_loop_new failed\n");
            return 1;
        }
        adrv d = {.base = base, .lp = lp, .issue_one = issue_strata};
        snprintf(rowbuf, sizeof rowbuf, "async_d%u", opt.depth);
        for (int i = 0; i < nops; i++)
            run_async(&d, c, ops[i], opt.row ? opt.row : rowbuf);
        strata_loop_free(lp);
        event_base_free(base);
        strata_cache_free(c);
    } else if (strcmp(opt.mode, "hiredis") == 0) {
        char host[256] = "127.0.0.1";
        int port = 6379;
        if (opt.url == NULL || sscanf(opt.url, "redis://%255[^:/]:%d", host, &port) < 1) {
            fprintf(stderr, "bench_l2: hiredis mode takes redis://HOST:PORT\n");
            return 2;
        }
        if (learn_blob(host, port) != 0) {
            fprintf(stderr, "bench_l2: no preloaded strata entry found (run --mode preload)\n");
            return 1;
        }
        struct event_base *base = event_base_new();
        redisAsyncContext *ac = redisAsyncConnect(host, port);
        if (base == NULL || ac == NULL || ac->err) {
            fprintf(stderr, "bench_l2: hiredis connect failed\n");
            return 1;
        }
        redisLibeventAttach(ac, base);
        adrv d = {.base = base, .ac = ac, .issue_one = issue_hiredis};
        snprintf(rowbuf, sizeof rowbuf, "hiredis_async_d%u", opt.depth);
        for (int i = 0; i < nops; i++)
            run_async(&d, NULL, ops[i], opt.row ? opt.row : rowbuf);
        redisAsyncFree(ac);
        event_base_free(base);
    } else {
        usage();
    }
    if (log_lines)
        printf("note: the cache logged %lu line(s); the last: %s\n", log_lines, log_last);
    return 0;
}
