/* test_l2_faults.c: Redis failing under the two-tier cache, driven with real redis-server
 * processes: killed and restarted, hung (SIGSTOP), a read-only replica, forced read-only, nothing
 * listening at all, and a one-connection pool against a hung server. In every case callers see
 * L1 data, a miss or STRATA_OK_L1_ONLY, never an error caused by Redis; every call is bounded by
 * the configured timeouts; the breaker opens, then closes by itself once Redis is back, and L1
 * copies that predate the outage are not served afterwards (DESIGN.md, docs/architecture.md
 * "Failure handling" and "Coherence"). These tests need processes of their own: they are skipped
 * on an external server (STRATA_TEST_REDIS_URL). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include <cmocka.h>

#include <strata/strata.h>

#include "harness.h"

#define BOUND_MS   500  /* a 100 ms timeout, asserted with DESIGN's generous margin */
#define RECOVER_MS 5000 /* how long the breaker may take to close by itself once Redis is back */

static rh_server *srv;

static int setup(void **state)
{
    (void)state;
    srv = rh_start(NULL);
    return srv ? 0 : -1;
}

/* Runs after a failed assertion too: never leave a server stopped. */
static int teardown(void **state)
{
    (void)state;
    if (!rh_is_external(srv) && rh_pid(srv) > 0)
        rh_resume(srv);
    rh_stop(srv);
    srv = NULL;
    return 0;
}

static void need_own_server(void)
{
    if (rh_is_external(srv))
        skip(); /* kills, pauses and replicas need a process of our own */
}

/* Counts warnings about read-only Redis, from any thread. */
static atomic_int ro_warnings;

static void count_ro(int level, const char *msg, void *arg)
{
    (void)arg;
    if (level == 1 && strstr(msg, "read-only") != NULL)
        atomic_fetch_add(&ro_warnings, 1);
}

/* Settings for a cache on s (rh_apply); s NULL: no Redis yet (the test places one itself). */
static void base_cfg(strata_cache_config *cfg, rh_server *s, const char *prefix)
{
    assert_int_equal(strata_cache_config_init(cfg, NULL), 0);
    cfg->l1.max_memory = 8u << 20;
    cfg->l1.prefix = prefix;
    if (s != NULL)
        rh_apply(s, &cfg->redis);
    cfg->log = rh_log_quiet;
}

static strata_cache *new_cache(const strata_cache_config *cfg)
{
    strata_cache *c = NULL;
    assert_int_equal(strata_cache_new(cfg, &c), 0);
    assert_non_null(c);
    return c;
}

static void wait_link(strata_cache *c)
{
    assert_true(rh_wait_for(rh_cache_coherent, c, 5000));
}

static int link_down(void *arg)
{
    return !rh_cache_coherent(arg);
}

typedef struct inval_wait {
    strata_cache *c;
    uint64_t at_least;
} inval_wait;

static int saw_invalidations(void *arg)
{
    inval_wait *w = arg;
    strata_l2_stats st;
    strata_cache_l2_stats(w->c, &st);
    return st.invalidations >= w->at_least;
}

/* Waits until c has applied n more invalidations than `since` (its own writes come back). */
static void wait_invalidations(strata_cache *c, uint64_t since, uint64_t n)
{
    inval_wait w = {c, since + n};
    assert_true(rh_wait_for(saw_invalidations, &w, 2000));
}

static uint64_t invalidations(strata_cache *c)
{
    strata_l2_stats st;
    strata_cache_l2_stats(c, &st);
    return st.invalidations;
}

static strata_key key_of(const char *name)
{
    strata_key k = {"ns", NULL, name, strlen(name)};
    return k;
}

/* Reads k into out ("" unless found); returns the status. */
static int get_str(strata_cache *c, const char *name, char *out, size_t cap)
{
    strata_key k = key_of(name);
    strata_value *v = NULL;
    out[0] = '\0';
    int rc = strata_cache_get(c, &k, &v);
    if (rc == 0 || rc == STRATA_OK_L1_ONLY) { /* L1_ONLY: served from L1, Redis unusable */
        assert_non_null(v);
        snprintf(out, cap, "%.*s", (int)strata_value_len(v), (const char *)strata_value_data(v));
        strata_value_release(v);
    }
    return rc;
}

static int set_str(strata_cache *c, const char *name, const char *value)
{
    strata_key k = key_of(name);
    return strata_cache_set(c, &k, value, strlen(value), NULL);
}

static int del_str(strata_cache *c, const char *name)
{
    strata_key k = key_of(name);
    return strata_cache_del(c, &k);
}

static void assert_value(strata_cache *c, const char *name, const char *want)
{
    char got[128];
    int rc = get_str(c, name, got, sizeof got);
    if (rc != 0 && rc != STRATA_OK_L1_ONLY)
        fail_msg("get %s: %s (%d), expected \"%s\"", name, strata_err_name(rc), rc, want);
    assert_string_equal(got, want);
}

static void assert_miss(strata_cache *c, const char *name)
{
    char got[128];
    int rc = get_str(c, name, got, sizeof got);
    if (rc != STRATA_ENOTFOUND)
        fail_msg("get %s: %s (%d) \"%s\", expected STRATA_ENOTFOUND", name, strata_err_name(rc), rc,
                 got);
}

static void assert_status(int got, int want, const char *what)
{
    if (got != want)
        fail_msg("%s: %s (%d), expected %s", what, strata_err_name(got), got,
                 strata_err_name(want));
}

/* EXISTS on a server, straight through hiredis. */
static long long redis_exists(rh_server *s, const char *stored_key)
{
    redisReply *r = rh_command(s, "EXISTS %s", stored_key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

static long long redis_dbsize(rh_server *s)
{
    redisReply *r = rh_command(s, "DBSIZE");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

/* Puts name into c's L1: its own write's invalidation must have landed first (it drops the L1
 * copy), then a read promotes it, and a second read is an L1 hit (the L2 hit counter stays). */
static void warm(strata_cache *c, const char *name, const char *value)
{
    uint64_t before = invalidations(c);
    assert_status(set_str(c, name, value), STRATA_OK, "warm: set");
    wait_invalidations(c, before, 1);
    assert_value(c, name, value);
    strata_l2_stats a, b;
    strata_cache_l2_stats(c, &a);
    assert_value(c, name, value);
    strata_cache_l2_stats(c, &b);
    assert_int_equal(a.hits, b.hits); /* served by L1 */
}

/* ---- 1. killed and restarted ------------------------------------------------------------ */

static void test_kill_and_restart(void **state)
{
    (void)state;
    need_own_server();
    strata_cache_config cfg;
    base_cfg(&cfg, srv, "f1");
    cfg.redis.breaker_failures = 3;
    cfg.redis.breaker_max_backoff_ms = 1000;
    strata_cache *a = new_cache(&cfg), *b = new_cache(&cfg);
    wait_link(a);
    wait_link(b);
    warm(a, "old", "v-old");
    warm(a, "gone", "v-gone");
    const char *tags[] = {"grp"};
    strata_set_opts topts = {.tags = tags, .ntags = 1};
    strata_key tagged = key_of("tagged");
    assert_status(strata_cache_set(a, &tagged, "tv", 2, &topts), STRATA_OK, "set tagged");

    assert_int_equal(rh_kill(srv), 0);
    uint64_t killed_at = rh_now_ms();

    /* While Redis is dead: L1 answers, writes are L1-only and readable, misses are misses. */
    char name[32], got[64];
    for (int i = 0; i < 12; i++) {
        assert_value(a, "old", "v-old");
        snprintf(name, sizeof name, "absent-%d", i);
        assert_miss(a, name);
        snprintf(name, sizeof name, "during-%d", i);
        assert_status(set_str(a, name, "d"), STRATA_OK_L1_ONLY, "set while Redis is down");
        assert_value(a, name, "d");
    }
    assert_status(del_str(a, "gone"), STRATA_OK_L1_ONLY, "del while Redis is down");
    assert_miss(a, "gone");
    /* Tags keep working in L1 alone. */
    assert_status(strata_cache_set(a, &tagged, "tv2", 3, &topts), STRATA_OK_L1_ONLY,
                  "tagged set while Redis is down");
    assert_value(a, "tagged", "tv2");
    assert_status(strata_cache_tag_invalidate(a, NULL, "grp"), STRATA_OK_L1_ONLY,
                  "tag_invalidate while Redis is down");
    assert_miss(a, "tagged");
    uint64_t lat;
    int prc = strata_cache_ping(a, &lat);
    assert_true(prc == STRATA_EUNAVAILABLE || prc == STRATA_ETIMEDOUT);

    /* The link notices a dead Redis within its keep-alive bound (50 ms + the socket timeout). */
    assert_true(rh_wait_for(link_down, a, BOUND_MS));
    print_message("killed: link down after %llu ms\n",
                  (unsigned long long)(rh_now_ms() - killed_at));
    strata_l2_stats st;
    strata_cache_l2_stats(a, &st);
    assert_int_equal(st.configured, 1);
    assert_string_equal(st.breaker, "open");
    assert_int_equal(st.available, 0);
    assert_int_equal(st.coherent, 0);
    assert_true(st.breaker_opens >= 1);
    assert_true(st.fallbacks >= 12 + 12); /* every read answered from L1, every L1-only write */
    assert_true(st.last_error[0] != '\0');

    /* With the breaker open, calls do not touch Redis. */
    uint64_t t0 = rh_now_ms();
    for (int i = 0; i < 100; i++)
        assert_value(a, "old", "v-old");
    assert_true(rh_now_ms() - t0 < BOUND_MS);

    assert_int_equal(rh_restart(srv), 0);

    /* Another instance writes a newer value once its Redis answers (its first call may still
     * find its pooled connection dead: that write is L1-only, and it retries). */
    uint64_t deadline = rh_now_ms() + RECOVER_MS;
    int rc;
    while ((rc = set_str(b, "old", "v-new")) != STRATA_OK && rh_now_ms() < deadline)
        assert_status(rc, STRATA_OK_L1_ONLY, "b: set after restart");
    assert_status(rc, STRATA_OK, "b: set after restart");

    /* a recovers by itself: its calls drive the probes. Until then it may serve the fallback. */
    deadline = rh_now_ms() + RECOVER_MS;
    int recovered = 0;
    while (!recovered && rh_now_ms() < deadline) {
        rc = get_str(a, "old", got, sizeof got);
        int served = rc == 0 || rc == STRATA_OK_L1_ONLY; /* L1_ONLY: the fallback, said so */
        if (served && strcmp(got, "v-old") != 0 && strcmp(got, "v-new") != 0)
            fail_msg("a served \"%s\" for old", got);
        if (!served && rc != STRATA_ENOTFOUND)
            fail_msg("get during recovery: %s (%d)", strata_err_name(rc), rc);
        rc = set_str(a, "after", "x");
        if (rc != STRATA_OK && rc != STRATA_OK_L1_ONLY)
            fail_msg("set during recovery: %s (%d)", strata_err_name(rc), rc);
        strata_cache_l2_stats(a, &st);
        recovered = rc == STRATA_OK && strcmp(st.breaker, "closed") == 0;
        usleep(5000);
    }
    if (!recovered)
        fail_msg("breaker still %s, last set %s, %d ms after the restart", st.breaker,
                 strata_err_name(rc), RECOVER_MS);
    assert_int_equal(redis_exists(srv, "f1:ns:default:after"), 1); /* the write reached Redis */
    /* Entries from before the outage were dropped: never the stale copy. */
    assert_value(a, "old", "v-new");
    /* So were the outage's L1-only writes (acknowledged as such, not written back). */
    assert_miss(a, "during-0");
    assert_int_equal(redis_exists(srv, "f1:ns:default:during-0"), 0);
    strata_cache_l2_stats(a, &st);
    assert_int_equal(st.available, 1);
    assert_string_equal(st.breaker, "closed");

    strata_cache_free(a);
    strata_cache_free(b);
}

/* ---- 2. hung (SIGSTOP) ------------------------------------------------------------------ */

static void fast_timeouts(strata_cache_config *cfg)
{
    cfg->redis.socket_timeout_ms = 100;
    cfg->redis.connect_timeout_ms = 100;
}

/* Measures one call; fails the test past BOUND_MS. */
#define TIMED(worst, expr)                                                                         \
    do {                                                                                           \
        uint64_t t_ = rh_now_ms();                                                                 \
        expr;                                                                                      \
        uint64_t d_ = rh_now_ms() - t_;                                                            \
        if (d_ > (worst))                                                                          \
            (worst) = d_;                                                                          \
        if (d_ > BOUND_MS)                                                                         \
            fail_msg("%s took %llu ms (socket and connect timeouts 100 ms)", #expr,                \
                     (unsigned long long)d_);                                                      \
    } while (0)

static void test_paused_redis_is_bounded(void **state)
{
    (void)state;
    need_own_server();
    strata_cache_config cfg;
    base_cfg(&cfg, srv, "f2");
    fast_timeouts(&cfg);
    cfg.redis.breaker_failures = 3;
    cfg.redis.breaker_max_backoff_ms = 1000;
    strata_cache *c = new_cache(&cfg);
    wait_link(c);
    warm(c, "cached", "v");

    assert_int_equal(rh_pause(srv), 0);

    uint64_t worst = 0, lat = 0;
    char name[32];
    int rc;
    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof name, "uncached-%d", i);
        TIMED(worst, assert_miss(c, name));
        TIMED(worst, assert_value(c, "cached", "v"));
        snprintf(name, sizeof name, "new-%d", i);
        TIMED(worst, rc = set_str(c, name, "n"));
        assert_status(rc, STRATA_OK_L1_ONLY, "set while Redis hangs");
        TIMED(worst, assert_value(c, name, "n"));
        TIMED(worst, rc = del_str(c, name));
        if (rc != STRATA_OK_L1_ONLY && rc != STRATA_ENOTFOUND)
            fail_msg("del while Redis hangs: %s (%d)", strata_err_name(rc), rc);
        const char *tags[] = {"grp"};
        strata_set_opts topts = {.tags = tags, .ntags = 1};
        strata_key tk = key_of("tagged");
        TIMED(worst, rc = strata_cache_set(c, &tk, "t", 1, &topts));
        assert_status(rc, STRATA_OK_L1_ONLY, "tagged set while Redis hangs");
        TIMED(worst, rc = strata_cache_tag_invalidate(c, NULL, "grp"));
        assert_status(rc, STRATA_OK_L1_ONLY, "tag_invalidate while Redis hangs");
        TIMED(worst, assert_miss(c, "tagged"));
        size_t removed;
        TIMED(worst, rc = strata_cache_clear(c, "ns", NULL, "zz*", &removed));
        assert_status(rc, STRATA_OK_L1_ONLY, "clear while Redis hangs");
        TIMED(worst, rc = strata_cache_ping(c, &lat));
        if (rc != STRATA_ETIMEDOUT && rc != STRATA_EUNAVAILABLE)
            fail_msg("ping while Redis hangs: %s (%d)", strata_err_name(rc), rc);
    }
    print_message("paused: slowest call %llu ms\n", (unsigned long long)worst);

    strata_l2_stats st;
    strata_cache_l2_stats(c, &st);
    assert_string_equal(st.breaker, "open");
    assert_int_equal(st.available, 0);
    assert_true(st.breaker_opens >= 1);
    assert_true(st.fallbacks > 0);
    assert_true(st.last_error[0] != '\0');

    /* The breaker is open: a batch of calls costs at most one probe, not a timeout each. */
    uint64_t t0 = rh_now_ms();
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "batch-%d", i);
        assert_miss(c, name);
    }
    uint64_t batch = rh_now_ms() - t0;
    print_message("paused, breaker open: 100 gets in %llu ms\n", (unsigned long long)batch);
    assert_true(batch < BOUND_MS);

    /* A cache created now does not wait for the hung Redis either. */
    t0 = rh_now_ms();
    strata_cache *late = new_cache(&cfg);
    TIMED(worst, assert_miss(late, "uncached-0"));
    TIMED(worst, rc = set_str(late, "late", "l"));
    assert_status(rc, STRATA_OK_L1_ONLY, "late cache: set while Redis hangs");
    assert_true(rh_now_ms() - t0 < 2 * BOUND_MS);
    strata_cache_free(late);

    assert_int_equal(rh_resume(srv), 0);

    /* Back by itself (reads and writes drive the probes): writes reach Redis again. */
    uint64_t deadline = rh_now_ms() + RECOVER_MS;
    int recovered = 0;
    char got[16];
    while (!recovered && rh_now_ms() < deadline) {
        rc = get_str(c, "uncached-0", got, sizeof got);
        if (rc != STRATA_ENOTFOUND)
            fail_msg("get during recovery: %s (%d)", strata_err_name(rc), rc);
        rc = set_str(c, "after", "a");
        if (rc != STRATA_OK && rc != STRATA_OK_L1_ONLY)
            fail_msg("set during recovery: %s (%d)", strata_err_name(rc), rc);
        strata_cache_l2_stats(c, &st);
        recovered = rc == STRATA_OK && strcmp(st.breaker, "closed") == 0;
        usleep(5000);
    }
    if (!recovered)
        fail_msg("not recovered %d ms after resume: breaker %s, last set %s", RECOVER_MS,
                 st.breaker, strata_err_name(rc));
    assert_int_equal(redis_exists(srv, "f2:ns:default:after"), 1);
    assert_value(c, "after", "a");
    assert_value(c, "cached", "v"); /* Redis still has it */
    strata_cache_free(c);
}

/* A write-only workload must come back too: writes are calls, and the breaker's probe is "one
 * call let through" (docs/architecture.md, "Failure handling"). */
static void test_writes_alone_close_the_breaker(void **state)
{
    (void)state;
    need_own_server();
    strata_cache_config cfg;
    base_cfg(&cfg, srv, "f2b");
    cfg.redis.breaker_failures = 3;
    cfg.redis.breaker_max_backoff_ms = 1000;
    strata_cache *c = new_cache(&cfg);
    wait_link(c);
    assert_status(set_str(c, "k", "v"), STRATA_OK, "set");
    assert_int_equal(rh_kill(srv), 0);
    char name[32];
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "down-%d", i);
        assert_status(set_str(c, name, "d"), STRATA_OK_L1_ONLY, "set while Redis is down");
    }
    strata_l2_stats st;
    strata_cache_l2_stats(c, &st);
    assert_string_equal(st.breaker, "open");
    assert_int_equal(rh_restart(srv), 0);

    uint64_t deadline = rh_now_ms() + RECOVER_MS;
    int rc;
    while ((rc = set_str(c, "after", "a")) != STRATA_OK && rh_now_ms() < deadline) {
        assert_status(rc, STRATA_OK_L1_ONLY, "set after restart");
        usleep(5000);
    }
    strata_cache_l2_stats(c, &st);
    if (rc != STRATA_OK) {
        strata_cache_free(c);
        fail_msg("only writes for %d ms after the restart: still %s, breaker %s", RECOVER_MS,
                 strata_err_name(rc), st.breaker);
    }
    assert_string_equal(st.breaker, "closed");
    assert_int_equal(redis_exists(srv, "f2b:ns:default:after"), 1);
    strata_cache_free(c);
}

/* ---- 3. read-only: a replica, and forced ------------------------------------------------ */

typedef struct ro_writer {
    strata_cache *c;
    int id;
    int bad_set, bad_get; /* first unexpected status, 0 if none */
} ro_writer;

static void *ro_write_many(void *arg)
{
    ro_writer *w = arg;
    char name[32], got[16];
    for (int i = 0; i < 25; i++) {
        snprintf(name, sizeof name, "w-%d-%d", w->id, i);
        int rc = set_str(w->c, name, "r");
        if (rc != STRATA_OK_L1_ONLY && w->bad_set == 0)
            w->bad_set = rc == 0 ? 1000 : rc;
        strata_key k = key_of(name);
        strata_value *v = NULL;
        rc = strata_cache_get(w->c, &k, &v);
        if (rc == 0) {
            snprintf(got, sizeof got, "%.*s", (int)strata_value_len(v),
                     (const char *)strata_value_data(v));
            strata_value_release(v);
            if (strcmp(got, "r") != 0)
                rc = 2000;
        }
        if (rc != 0 && w->bad_get == 0)
            w->bad_get = rc;
    }
    return NULL;
}

static int replica_synced(void *arg)
{
    redisReply *r = rh_command(arg, "INFO replication");
    int up = r != NULL && r->type == REDIS_REPLY_STRING &&
             strstr(r->str, "master_link_status:up") != NULL;
    if (r != NULL)
        freeReplyObject(r);
    return up;
}

typedef struct key_on {
    rh_server *s;
    const char *key;
} key_on;

static int key_arrived(void *arg)
{
    key_on *k = arg;
    redisReply *r = rh_command(k->s, "EXISTS %s", k->key);
    int n = r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (r != NULL)
        freeReplyObject(r);
    return n;
}

static void test_replica_is_read_only(void **state)
{
    (void)state;
    need_own_server();
    if (rh_topology() == RH_CLUSTER) { /* a cluster node cannot replicate another server */
        print_message("skipped under the cluster topology: it starts a replica of its own "
                      "(a cluster's replicas are test_redis_cluster's)\n");
        skip();
    }
    char port[16];
    snprintf(port, sizeof port, "%d", rh_port(srv));
    const char *const args[] = {"--replicaof", "127.0.0.1", port, NULL};
    rh_server *replica = rh_start(args);
    assert_non_null(replica);
    assert_true(rh_wait_for(replica_synced, replica, 5000));

    strata_cache_config pcfg, rcfg;
    base_cfg(&pcfg, srv, "f3");
    base_cfg(&rcfg, replica, "f3");
    atomic_store(&ro_warnings, 0);
    rcfg.log = count_ro;
    strata_cache *p = new_cache(&pcfg), *r = new_cache(&rcfg);
    wait_link(p);
    wait_link(r);

    /* Written on the primary, read through the replica: an L2 hit there. */
    assert_status(set_str(p, "shared", "from-primary"), STRATA_OK, "set on the primary");
    key_on ko = {replica, "f3:ns:default:shared"};
    assert_true(rh_wait_for(key_arrived, &ko, 5000));
    strata_l2_stats before, after;
    strata_cache_l2_stats(r, &before);
    assert_value(r, "shared", "from-primary");
    strata_cache_l2_stats(r, &after);
    assert_int_equal(after.hits, before.hits + 1);

    /* Writes through the replica land in L1, readable there; one warning for all of them, from
     * however many pool connections found out. */
    ro_writer w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (ro_writer){.c = r, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, ro_write_many, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        if (w[i].bad_set != 0)
            fail_msg("writer %d: set answered %s (%d), expected STRATA_OK_L1_ONLY", i,
                     strata_err_name(w[i].bad_set), w[i].bad_set);
        if (w[i].bad_get != 0)
            fail_msg("writer %d: reading its L1-only write answered %d", i, w[i].bad_get);
    }
    for (int i = 0; i < 20; i++)
        assert_status(set_str(r, "one-more", "r"), STRATA_OK_L1_ONLY, "set on the replica");
    strata_l2_stats st;
    strata_cache_l2_stats(r, &st);
    assert_int_equal(st.readonly, 1);
    assert_int_equal(atomic_load(&ro_warnings), 1);
    /* Nothing reached either server. */
    assert_int_equal(redis_dbsize(replica), 1); /* "shared" alone */
    assert_int_equal(redis_exists(srv, "f3:ns:default:w-0-0"), 0);
    assert_int_equal(redis_exists(srv, "f3:ns:default:one-more"), 0);
    /* A delete through the replica is L1-only too. */
    assert_status(del_str(r, "one-more"), STRATA_OK_L1_ONLY, "del on the replica");
    assert_int_equal(redis_exists(replica, "f3:ns:default:shared"), 1);
    /* The primary's cache is not read-only. */
    strata_cache_l2_stats(p, &st);
    assert_int_equal(st.readonly, 0);

    strata_cache_free(p);
    strata_cache_free(r);
    assert_int_equal(atomic_load(&ro_warnings), 1);
    rh_stop(replica);
}

static void test_forced_read_only(void **state)
{
    (void)state;
    need_own_server();
    strata_cache_config cfg, wcfg;
    base_cfg(&cfg, srv, "f3b");
    cfg.redis.readonly = 1;
    base_cfg(&wcfg, srv, "f3b");
    strata_cache *ro = new_cache(&cfg), *rw = new_cache(&wcfg);
    wait_link(ro);
    wait_link(rw);
    strata_l2_stats st;
    strata_cache_l2_stats(ro, &st);
    assert_int_equal(st.readonly, 1);

    for (int i = 0; i < 10; i++) {
        char name[16];
        snprintf(name, sizeof name, "k%d", i);
        assert_status(set_str(ro, name, "local"), STRATA_OK_L1_ONLY, "set with REDIS_READONLY");
        assert_value(ro, name, "local");
    }
    assert_int_equal(redis_dbsize(srv), 0);

    /* Reads still come from Redis; deletes and tag bumps do not touch it. */
    assert_status(set_str(rw, "shared", "s"), STRATA_OK, "set on a writable cache");
    assert_value(ro, "shared", "s");
    assert_status(del_str(ro, "shared"), STRATA_OK_L1_ONLY, "del with REDIS_READONLY");
    assert_int_equal(redis_exists(srv, "f3b:ns:default:shared"), 1);
    assert_status(strata_cache_tag_invalidate(ro, NULL, "grp"), STRATA_OK_L1_ONLY,
                  "tag_invalidate with REDIS_READONLY");
    assert_int_equal(redis_exists(srv, "f3b:!tag:default:grp"), 0);
    strata_cache_l2_stats(rw, &st);
    assert_int_equal(st.readonly, 0);
    strata_cache_free(ro);
    strata_cache_free(rw);
}

/* ---- 4. nothing listening --------------------------------------------------------------- */

/* A 127.0.0.1 port that is bound (so nobody else takes it) but not listening: connections to it
 * are refused. Returns the socket, to close at the end. */
static int refusing_port(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static int breaker_opened(void *arg)
{
    strata_cache *c = arg;
    strata_l2_stats st;
    assert_status(set_str(c, "drive", "d"), STRATA_OK_L1_ONLY, "set, nothing listening");
    strata_cache_l2_stats(c, &st);
    return st.available == 0;
}

static void test_connection_refused_from_start(void **state)
{
    (void)state;
    int port, fd = refusing_port(&port);
    char url[64];
    strata_cache_config cfg;
    base_cfg(&cfg, NULL, "f4");
    rh_apply_port(port, &cfg.redis, url, sizeof url); /* nothing there, whatever the topology */
    cfg.redis.breaker_failures = 3;
    uint64_t t0 = rh_now_ms();
    strata_cache *c = new_cache(&cfg);
    assert_true(rh_now_ms() - t0 < BOUND_MS); /* does not wait for Redis */

    strata_l2_stats st;
    strata_cache_l2_stats(c, &st);
    assert_int_equal(st.configured, 1);
    assert_int_equal(st.coherent, 0);

    /* Each write is one failed call: the third opens the breaker (breaker_failures = 3). */
    assert_status(set_str(c, "k", "v"), STRATA_OK_L1_ONLY, "set, nothing listening");
    assert_status(set_str(c, "k", "v"), STRATA_OK_L1_ONLY, "set, nothing listening");
    strata_cache_l2_stats(c, &st);
    assert_string_equal(st.breaker, "closed");
    assert_int_equal(st.breaker_opens, 0);
    assert_status(set_str(c, "k", "v"), STRATA_OK_L1_ONLY, "set, nothing listening");
    strata_cache_l2_stats(c, &st);
    assert_string_equal(st.breaker, "open");
    assert_int_equal(st.breaker_opens, 1);
    assert_int_equal(st.available, 0);
    assert_value(c, "k", "v");
    assert_miss(c, "absent");
    assert_status(del_str(c, "k"), STRATA_OK_L1_ONLY, "del, nothing listening");
    assert_miss(c, "k");
    assert_status(set_str(c, "k2", "v2"), STRATA_OK_L1_ONLY, "set, nothing listening");
    size_t removed = 99;
    assert_status(strata_cache_clear(c, "ns", NULL, "zzz*", &removed), STRATA_OK_L1_ONLY,
                  "clear, nothing listening");
    assert_value(c, "k2", "v2");
    uint64_t lat;
    assert_status(strata_cache_ping(c, &lat), STRATA_EUNAVAILABLE, "ping, nothing listening");

    assert_true(rh_wait_for(breaker_opened, c, 2000));
    for (int i = 0; i < 10; i++)
        assert_value(c, "k2", "v2");
    strata_cache_l2_stats(c, &st);
    assert_int_equal(st.configured, 1);
    assert_int_equal(st.available, 0);
    assert_int_equal(st.coherent, 0);
    assert_string_equal(st.breaker, "open");
    assert_true(st.fallbacks > 0);
    assert_true(st.last_error[0] != '\0');
    strata_cache_free(c);
    close(fd);
}

/* cache.h: available is "the breaker is closed and the last call succeeded". One refused call,
 * far below the breaker's threshold, already means the last call did not succeed. */
static void test_available_after_one_failure(void **state)
{
    (void)state;
    int port, fd = refusing_port(&port);
    char url[64];
    strata_cache_config cfg;
    base_cfg(&cfg, NULL, "f4b");
    rh_apply_port(port, &cfg.redis, url, sizeof url); /* nothing there, whatever the topology */
    cfg.redis.breaker_failures = 5;
    strata_cache *c = new_cache(&cfg);
    assert_status(set_str(c, "k", "v"), STRATA_OK_L1_ONLY, "set, nothing listening");
    strata_l2_stats st;
    strata_cache_l2_stats(c, &st);
    assert_string_equal(st.breaker, "closed"); /* 1 failure of 5 */
    assert_true(st.last_error[0] != '\0');
    strata_cache_free(c);
    close(fd);
    assert_int_equal(st.available, 0);
}

/* ---- 5. a one-connection pool against a hung Redis -------------------------------------- */

#define POOL_THREADS 8
#define POOL_CALLS   5

typedef struct pool_reader {
    strata_cache *c;
    int id;
    uint64_t worst_ms;
    int bad; /* first status other than a miss, 0 if none */
} pool_reader;

static void *pool_read(void *arg)
{
    pool_reader *r = arg;
    char name[32];
    for (int i = 0; i < POOL_CALLS; i++) {
        snprintf(name, sizeof name, "p-%d-%d", r->id, i);
        strata_key k = key_of(name);
        strata_value *v = NULL;
        uint64_t t0 = rh_now_ms();
        int rc = strata_cache_get(r->c, &k, &v);
        uint64_t d = rh_now_ms() - t0;
        if (d > r->worst_ms)
            r->worst_ms = d;
        if (rc == 0)
            strata_value_release(v);
        if (rc != STRATA_ENOTFOUND && r->bad == 0)
            r->bad = rc == 0 ? 1000 : rc;
    }
    return NULL;
}

static void test_pool_exhaustion_is_bounded(void **state)
{
    (void)state;
    need_own_server();
    strata_cache_config cfg;
    base_cfg(&cfg, srv, "f5");
    fast_timeouts(&cfg);
    cfg.redis.max_connections = 1;
    cfg.redis.breaker_failures = 1000000; /* keep every call on the pool, not the breaker */
    strata_cache *c = new_cache(&cfg);
    wait_link(c);
    assert_status(set_str(c, "warm", "w"), STRATA_OK, "set"); /* the pool's one connection */

    assert_int_equal(rh_pause(srv), 0);
    pool_reader r[POOL_THREADS];
    pthread_t th[POOL_THREADS];
    uint64_t t0 = rh_now_ms();
    for (int i = 0; i < POOL_THREADS; i++) {
        r[i] = (pool_reader){.c = c, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, pool_read, &r[i]), 0);
    }
    uint64_t worst = 0;
    for (int i = 0; i < POOL_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        if (r[i].worst_ms > worst)
            worst = r[i].worst_ms;
    }
    print_message("pool of 1, %d threads x %d gets on a hung Redis: %llu ms, slowest %llu ms\n",
                  POOL_THREADS, POOL_CALLS, (unsigned long long)(rh_now_ms() - t0),
                  (unsigned long long)worst);
    for (int i = 0; i < POOL_THREADS; i++)
        if (r[i].bad != 0)
            fail_msg("reader %d got %s (%d), expected STRATA_ENOTFOUND", i,
                     strata_err_name(r[i].bad), r[i].bad);
    if (worst > BOUND_MS)
        fail_msg("a get waited %llu ms with max_connections 1 and 100 ms timeouts",
                 (unsigned long long)worst);
    strata_l2_stats st;
    strata_cache_l2_stats(c, &st);
    assert_true(st.errors > 0);
    assert_true(st.last_error[0] != '\0');

    assert_int_equal(rh_resume(srv), 0);
    uint64_t deadline = rh_now_ms() + RECOVER_MS;
    int rc;
    while ((rc = set_str(c, "after", "a")) != STRATA_OK && rh_now_ms() < deadline)
        assert_status(rc, STRATA_OK_L1_ONLY, "set after resume");
    assert_status(rc, STRATA_OK, "set after resume");
    assert_value(c, "warm", "w");
    strata_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paused_redis_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writes_alone_close_the_breaker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replica_is_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forced_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused_from_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_available_after_one_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_exhaustion_is_bounded, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
