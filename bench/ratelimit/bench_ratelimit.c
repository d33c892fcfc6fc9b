/* bench_ratelimit.c: rate-limit checks per second through libstrata's public API.
 *
 * One invocation measures one row, so bench/ratelimit/run.sh can interleave it with
 * redis-benchmark running the same EVALSHA on the same redis-server, round after round:
 *
 *   --mode sync    --threads T threads calling strata_ratelimit() (the pool has T connections):
 *                  concurrency T, one blocking round trip per check
 *   --mode async   one thread, one event_base, one strata_loop, keeping --depth calls of
 *                  strata_ratelimit_async() in flight (pipelined on the loop's one connection)
 *
 * Every check is decided by Redis: the keys are "rl%05u" drawn uniformly among --keys distinct
 * keys (tenant default), and the limit is --limit per --period-ms (default 1,000,000 per second,
 * burst = limit), far above what one key receives here, so nothing is ever denied and no check
 * is answered from the remembered denials (a denied key would be answered locally, which is not
 * what this measures). The bench checks it: the limiter's own counters (strata_ratelimit_stats)
 * must show every check as decided by Redis and allowed; anything else is a WARNING.
 *
 * Output: a human line and RESULT rl.<row>=<checks/s>, rl.<row>.client_cpu (this process, all
 * threads), rl.<row>.server_cpu (redis-server, from INFO cpu), rl.<row>.other_cpu (the rest of the
 * machine, from /proc/stat), each a share of one CPU over the run.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include <strata/cache.h>
#include <strata/errors.h>
#include <strata/ratelimit.h>

#define MAX_THREAD 256
#define KEY_LEN    7 /* "rl%05u" */

static struct {
    const char *url, *mode, *row;
    unsigned threads, depth, keys;
    uint64_t ops, warmup, limit, period_ms;
} opt = {NULL, NULL, NULL, 8, 50, 10000, 200000, 5000, 1000000, 1000};

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
    buf[0] = 'r', buf[1] = 'l';
    for (int p = KEY_LEN - 1; p >= 2; p--, i /= 10)
        buf[p] = (char)('0' + i % 10);
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* redis-server's CPU seconds (INFO cpu), on a side connection asked only between timed runs. */
static redisContext *info_conn;

static double server_cpu(void)
{
    if (info_conn == NULL) {
        char host[256] = "127.0.0.1";
        int port = 6379;
        if (sscanf(opt.url, "redis://%255[^:/]:%d", host, &port) < 1)
            return -1;
        info_conn = redisConnect(host, port);
        if (info_conn == NULL || info_conn->err)
            return -1;
    }
    redisReply *r = redisCommand(info_conn, "INFO cpu");
    double sum = -1, a, b;
    const char *p;
    if (r != NULL && r->type == REDIS_REPLY_STRING &&
        (p = strstr(r->str, "used_cpu_sys:")) != NULL && sscanf(p + 13, "%lf", &a) == 1 &&
        (p = strstr(r->str, "used_cpu_user:")) != NULL && sscanf(p + 14, "%lf", &b) == 1)
        sum = a + b;
    if (r)
        freeReplyObject(r);
    return sum;
}

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

static void quiet_log(int level, const char *msg, void *arg)
{
    (void)level, (void)msg, (void)arg;
}

static strata_cache *open_cache(unsigned conns)
{
    strata_cache_config cfg;
    int rc = strata_cache_config_init(&cfg, NULL);
    if (rc != 0) {
        fprintf(stderr, "bench_ratelimit: config: %s\n", strata_strerror(rc));
        exit(1);
    }
    cfg.redis.url = opt.url;
    cfg.redis.enabled = 1;
    cfg.redis.coherence = 0; /* rate limits do not use L1; no invalidation link needed */
    cfg.redis.max_connections = conns;
    cfg.redis.socket_timeout_ms = 2000; /* a preempted client must not turn into fallbacks */
    cfg.log = quiet_log;
    strata_cache *c;
    if ((rc = strata_cache_new(&cfg, &c)) != 0) {
        fprintf(stderr, "bench_ratelimit: strata_cache_new: %s\n", strata_strerror(rc));
        exit(1);
    }
    uint64_t us;
    for (int i = 0; i < 50 && strata_cache_ping(c, &us) != 0; i++) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if ((rc = strata_cache_ping(c, &us)) != 0) {
        fprintf(stderr, "bench_ratelimit: redis at %s does not answer: %s\n", opt.url,
                strata_strerror(rc));
        exit(1);
    }
    return c;
}

static strata_ratelimiter *limiter; /* on the cache open_cache made */

static strata_rl_params params(void)
{
    strata_rl_params p = {.limit = opt.limit, .period_ms = opt.period_ms, .burst = 0, .cost = 1};
    return p;
}

/* ---- sync ------------------------------------------------------------------------------- */

typedef struct targ {
    strata_cache *c;
    pthread_barrier_t *start;
    uint64_t ops, seed, bad;
} targ;

static void *sync_thread(void *arg)
{
    targ *a = arg;
    strata_rl_params p = params();
    char key[KEY_LEN];
    pthread_barrier_wait(a->start);
    for (uint64_t i = 0; i < a->ops; i++) {
        make_key(key, (unsigned)(rng_next(&a->seed) % opt.keys));
        strata_rl_result r;
        if (strata_ratelimit(limiter, NULL, key, KEY_LEN, &p, &r) != 0)
            a->bad++;
    }
    return NULL;
}

static void run_sync(strata_cache *c, uint64_t ops)
{
    unsigned n = opt.threads;
    pthread_t th[MAX_THREAD];
    targ args[MAX_THREAD];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, n + 1);
    for (unsigned i = 0; i < n; i++) {
        args[i] = (targ){c, &start, ops / n + (i < ops % n), 0x9E3779B97F4A7C15ULL * (i + 1), 0};
        if (pthread_create(&th[i], NULL, sync_thread, &args[i]) != 0) {
            fprintf(stderr, "bench_ratelimit: pthread_create failed\n");
            exit(1);
        }
    }
    pthread_barrier_wait(&start);
    uint64_t bad = 0;
    for (unsigned i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        bad += args[i].bad;
    }
    pthread_barrier_destroy(&start);
    if (bad)
        printf("WARNING: %s: %" PRIu64 " checks failed\n", opt.row, bad);
}

/* ---- async ------------------------------------------------------------------------------ */

typedef struct adrv {
    struct event_base *base;
    strata_loop *lp;
    uint64_t total, issued, done, bad, seed;
    unsigned inflight;
    int in_fill, finished;
} adrv;

static void fill(adrv *d);

static void on_checked(int status, const strata_rl_result *r, void *arg)
{
    adrv *d = arg;
    (void)r;
    if (status != 0)
        d->bad++;
    d->inflight--;
    d->done++;
    fill(d);
}

static void fill(adrv *d)
{
    if (d->in_fill)
        return;
    d->in_fill = 1;
    strata_rl_params p = params();
    char key[KEY_LEN];
    while (d->inflight < opt.depth && d->issued < d->total) {
        make_key(key, (unsigned)(rng_next(&d->seed) % opt.keys));
        d->issued++;
        strata_rl_result r;
        int rc = strata_ratelimit_async(limiter, d->lp, NULL, key, KEY_LEN, &p, on_checked, d, &r);
        if (rc == STRATA_PENDING) {
            d->inflight++;
        } else {
            if (rc != 0)
                d->bad++;
            d->done++; /* decided at once (remembered, local): counted by the stats check */
        }
    }
    d->in_fill = 0;
    if (d->done == d->total && !d->finished) {
        d->finished = 1;
        event_base_loopbreak(d->base);
    }
}

static void run_async(adrv *d, uint64_t ops)
{
    d->total = ops;
    d->issued = d->done = 0;
    d->finished = 0;
    fill(d);
    while (!d->finished)
        if (event_base_loop(d->base, EVLOOP_ONCE) < 0) {
            fprintf(stderr, "bench_ratelimit: event loop failed\n");
            exit(1);
        }
    if (d->bad)
        printf("WARNING: %s: %" PRIu64 " checks failed\n", opt.row, d->bad);
}

/* ---- main ------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_ratelimit --url redis://HOST:PORT --mode sync|async [--threads T]\n"
               "       [--depth D] [--ops N] [--warmup N] [--keys K] [--limit L] [--period-ms P]\n"
               "       [--row NAME]\n");
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (v == NULL) {
            usage(stderr);
            return 2;
        }
        i++;
        if (strcmp(a, "--url") == 0)
            opt.url = v;
        else if (strcmp(a, "--mode") == 0)
            opt.mode = v;
        else if (strcmp(a, "--row") == 0)
            opt.row = v;
        else if (strcmp(a, "--threads") == 0)
            opt.threads = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--depth") == 0)
            opt.depth = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--keys") == 0)
            opt.keys = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--ops") == 0)
            opt.ops = strtoull(v, NULL, 10);
        else if (strcmp(a, "--warmup") == 0)
            opt.warmup = strtoull(v, NULL, 10);
        else if (strcmp(a, "--limit") == 0)
            opt.limit = strtoull(v, NULL, 10);
        else if (strcmp(a, "--period-ms") == 0)
            opt.period_ms = strtoull(v, NULL, 10);
        else {
            usage(stderr);
            return 2;
        }
    }
    int sync = opt.mode && strcmp(opt.mode, "sync") == 0;
    if (opt.url == NULL || opt.mode == NULL || (!sync && strcmp(opt.mode, "async") != 0) ||
        opt.threads == 0 || opt.threads > MAX_THREAD || opt.depth == 0 || opt.keys == 0 ||
        opt.keys > 100000 || opt.ops == 0) {
        usage(stderr);
        return 2;
    }
    if (opt.row == NULL)
        opt.row = sync ? "sync" : "async";

    strata_cache *c = open_cache(sync ? opt.threads : 1);
    if (strata_ratelimiter_new(c, &limiter) != 0) {
        fprintf(stderr, "bench_ratelimit: strata_ratelimiter_new failed\n");
        return 1;
    }
    struct event_base *base = NULL;
    adrv d = {0};
    if (!sync) {
        base = event_base_new();
        if (base == NULL || strata_loop_new(c, base, &d.lp) != 0) {
            fprintf(stderr, "bench_ratelimit: strata_loop_new failed\n");
            return 1;
        }
        d.base = base;
        d.seed = 0x2545F4914F6CDD1DULL;
    }
    /* warm-up: connections, the script's first EVALSHA, the allocator */
    if (sync)
        run_sync(c, opt.warmup);
    else
        run_async(&d, opt.warmup);

    strata_rl_stats s0, s1;
    strata_ratelimit_stats(limiter, &s0);
    double srv0 = server_cpu(), m0 = machine_busy(), self0 = self_cpu(), t0 = now_s();
    if (sync)
        run_sync(c, opt.ops);
    else
        run_async(&d, opt.ops);
    double t1 = now_s(), self1 = self_cpu(), m1 = machine_busy(), srv1 = server_cpu();
    strata_ratelimit_stats(limiter, &s1);

    double secs = t1 - t0, rate = (double)opt.ops / secs;
    double ccpu = (self1 - self0) / secs;
    double scpu = srv0 >= 0 && srv1 >= 0 ? (srv1 - srv0) / secs : -1;
    double other = m0 >= 0 && m1 >= 0 && scpu >= 0 ? (m1 - m0) / secs - ccpu - scpu : -1;
    if (scpu >= 0 && other < 0)
        other = 0;
    uint64_t checks = s1.checks - s0.checks, redis = s1.redis - s0.redis,
             allowed = s1.allowed - s0.allowed;
    printf("%-16s %12.0f checks/s  (%" PRIu64 " in %.3f s; %s, %u %s; decided by redis %" PRIu64
           ", allowed %" PRIu64 ")\n",
           opt.row, rate, opt.ops, secs, opt.mode, sync ? opt.threads : opt.depth,
           sync ? "threads" : "in flight", redis, allowed);
    printf("%-16s CPU busy: client %.2f, redis-server %.2f, other processes %.2f\n", "", ccpu, scpu,
           other);
    if (checks != opt.ops || redis != checks || allowed != checks)
        printf("WARNING: %s: of %" PRIu64 " checks, %" PRIu64 " were decided by Redis and %" PRIu64
               " allowed (expected all): remembered %" PRIu64 " local %" PRIu64
               " fail-open %" PRIu64 "\n",
               opt.row, checks, redis, allowed, s1.remembered - s0.remembered, s1.local - s0.local,
               s1.fail_open - s0.fail_open);
    printf("RESULT rl.%s=%.0f\n", opt.row, rate);
    printf("RESULT rl.%s.client_cpu=%.2f\n", opt.row, ccpu);
    if (scpu >= 0)
        printf("RESULT rl.%s.server_cpu=%.2f\n", opt.row, scpu);
    if (other >= 0)
        printf("RESULT rl.%s.other_cpu=%.2f\n", opt.row, other);

    if (!sync) {
        strata_loop_free(d.lp);
        event_base_free(base);
    }
    strata_cache_free(c);
    if (info_conn)
        redisFree(info_conn);
    return 0;
}
