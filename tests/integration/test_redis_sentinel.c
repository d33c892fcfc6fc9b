/* test_redis_sentinel.c: strata serve on a primary found through Redis Sentinel, through a
 * failover under load (issue 16, "Sentinel"; docs/operations.md, "Redis Sentinel").
 *
 * Real processes: a primary, its replica and three redis-sentinel (quorum 2, down-after 500 ms,
 * failover-timeout 2 s) started by the harness; strata serve is given REDIS_SENTINELS and
 * REDIS_SENTINEL_MASTER only.
 * - It finds the primary: writes reach it (no X-Cache-Write: l1-only), /cache/health and
 *   /cache/stats say "sentinel" and name it.
 * - The primary SIGKILLed while four threads write and read through HTTP: no request gets an
 *   error (every answer is 2xx, or a 404 for a read); every 200 carries a value this thread
 *   wrote to that key, never one older than a write Redis acknowledged after the kill (so on the
 *   new primary: nothing can lose it); within a deadline writes reach Redis again, on the former
 *   replica, which /cache/health names. Writes acknowledged l1-only during the failover may be
 *   lost when L1 is dropped on recovery, as for any Redis outage (they said so), and so may a
 *   write the old primary took just before the kill and had not replicated (Redis' replication
 *   is asynchronous): neither is counted as wrong.
 *   How long that took is printed, never asserted (DESIGN.md: no timed assertions).
 * - A sentinel that names a replica (it monitors one by mistake, as after a failover it has not
 *   seen): strata asks ROLE, never uses it as the primary (writes are l1-only 204s, not errors;
 *   the replica holds nothing of them) and says why in /cache/health.
 * - Sentinels with a password of their own (requirepass): REDIS_SENTINEL_PASSWORD right, the
 *   primary is found and written to; wrong, no primary is known, writes are l1-only 204s (never
 *   errors) and last_error says the sentinel refused AUTH.
 * - A cache's first calls, synchronous and on a loop, made before the sentinels named the
 *   primary, wait for the naming and reach it (libstrata directly).
 * - REDIS_URL and REDIS_SENTINELS together: strata serve refuses to start, naming both.
 * Labelled `topology`: it runs in the plain build (make test), not under the sanitizers. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "harness.h"
#include "server_harness.h"

#define MASTER        "strata-it"
#define DOWN_AFTER_MS 500
#define FAILOVER_MS   2000
#define SETUP_MS      20000 /* sentinels discover each other (hello messages every 2 s) */
#define FOLLOW_MS     30000 /* the failover and strata following it, generously */
#define THREADS       4

static rh_server *primary, *replica, *sentinels[3];
static sh_server *srv;

static int replica_synced(void *arg)
{
    redisReply *r = rh_command(arg, "INFO replication");
    int ok = r != NULL && r->type == REDIS_REPLY_STRING &&
             strstr(r->str, "master_link_status:up") != NULL;
    if (r != NULL)
        freeReplyObject(r);
    return ok;
}

/* Every sentinel knows the replica and the two other sentinels: a failover can be voted. */
static int sentinels_ready(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        redisReply *s = rh_command(sentinels[i], "SENTINEL sentinels %s", MASTER);
        redisReply *r = rh_command(sentinels[i], "SENTINEL replicas %s", MASTER);
        int ok = s != NULL && s->type == REDIS_REPLY_ARRAY && s->elements == 2 && r != NULL &&
                 r->type == REDIS_REPLY_ARRAY && r->elements == 1;
        if (s != NULL)
            freeReplyObject(s);
        if (r != NULL)
            freeReplyObject(r);
        if (!ok)
            return 0;
    }
    return 1;
}

static int setup_all(void **state)
{
    (void)state;
    primary = rh_start(NULL);
    if (primary == NULL)
        return -1;
    char port[16];
    snprintf(port, sizeof port, "%d", rh_port(primary));
    const char *const args[] = {"--replicaof", rh_host(primary), port, NULL};
    replica = rh_start(args);
    if (replica == NULL || !rh_wait_for(replica_synced, replica, SETUP_MS))
        return -1;
    for (int i = 0; i < 3; i++)
        if ((sentinels[i] = rh_start_sentinel(MASTER, primary, 2, DOWN_AFTER_MS, FAILOVER_MS)) ==
            NULL)
            return -1;
    uint64_t t0 = rh_now_ms();
    if (!rh_wait_for(sentinels_ready, NULL, SETUP_MS)) {
        fprintf(stderr, "sentinels did not discover each other within %d ms\n", SETUP_MS);
        return -1;
    }
    fprintf(stderr, "sentinels ready after %llu ms\n", (unsigned long long)(rh_now_ms() - t0));
    static char list[200], master[64];
    snprintf(list, sizeof list, "REDIS_SENTINELS=%s:%d, %s:%d,%s:%d", rh_host(sentinels[0]),
             rh_port(sentinels[0]), rh_host(sentinels[1]), rh_port(sentinels[1]),
             rh_host(sentinels[2]), rh_port(sentinels[2]));
    snprintf(master, sizeof master, "REDIS_SENTINEL_MASTER=%s", MASTER);
    const char *env[] = {
        list, master, "STRATA_WORKERS=2", "REDIS_SOCKET_TIMEOUT=0.3", "REDIS_CONNECT_TIMEOUT=0.3",
        NULL};
    srv = sh_start(env, NULL);
    return srv != NULL ? 0 : -1;
}

static int teardown_all(void **state)
{
    (void)state;
    sh_free(srv);
    for (int i = 0; i < 3; i++)
        rh_stop(sentinels[i]);
    rh_stop(replica);
    rh_stop(primary);
    return 0;
}

/* A PUT Redis took (204 without X-Cache-Write: l1-only). */
static int put_shared(const char *path, const char *value)
{
    sh_resp *r = sh_call(srv, "PUT", path, NULL, NULL, "text/plain", value);
    int ok = r->status == 204 && sh_resp_header(r, "X-Cache-Write") == NULL;
    sh_resp_free(r);
    return ok;
}

static int put_probe(void *arg)
{
    (void)arg;
    return put_shared("/v1/cache/sentinel/probe", "p");
}

/* The "redis" object of /cache/health (a new reference), or NULL. */
static json_t *health_redis(void)
{
    sh_resp *r = sh_call(srv, "GET", "/cache/health", NULL, NULL, NULL, NULL);
    json_t *j = r->status == 200 ? sh_resp_json(r) : NULL;
    json_t *redis = j ? json_object_get(j, "redis") : NULL;
    if (redis != NULL)
        json_incref(redis);
    json_decref(j);
    sh_resp_free(r);
    return redis;
}

/* 1 when /cache/health names the server arg as the primary. */
static int health_names(void *arg)
{
    char want[64];
    snprintf(want, sizeof want, "%s:%d", rh_host(arg), rh_port(arg));
    json_t *redis = health_redis();
    const char *p = redis ? json_string_value(json_object_get(redis, "primary")) : NULL;
    int ok = p != NULL && strcmp(p, want) == 0;
    json_decref(redis);
    return ok;
}

static int stored(rh_server *s, const char *key)
{
    redisReply *r = rh_command(s, "EXISTS strata:sentinel:default:%s", key);
    int yes = r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (r != NULL)
        freeReplyObject(r);
    return yes;
}

static void test_sentinel_finds_the_primary(void **state)
{
    (void)state;
    assert_true(rh_wait_for(put_probe, NULL, FOLLOW_MS));
    assert_true(stored(primary, "probe"));
    assert_true(health_names(primary));
    json_t *redis = health_redis();
    assert_non_null(redis);
    assert_string_equal(json_string_value(json_object_get(redis, "topology")), "sentinel");
    assert_false(json_is_true(json_object_get(redis, "tls")));
    json_decref(redis);
    sh_resp *r = sh_call(srv, "GET", "/cache/stats", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    json_t *j = sh_resp_json(r);
    json_t *l2 = json_object_get(j, "l2");
    assert_non_null(l2);
    assert_string_equal(json_string_value(json_object_get(l2, "topology")), "sentinel");
    char want[64];
    snprintf(want, sizeof want, "%s:%d", rh_host(primary), rh_port(primary));
    assert_string_equal(json_string_value(json_object_get(l2, "primary")), want);
    json_decref(j);
    sh_resp_free(r);
}

/* ---- load ----------------------------------------------------------------------------------- */

#define KEYS 50

static atomic_int stop_load, killed;
static atomic_long requests, errors, wrong, older;

/* Thread id writes value-<id>-<i> to key load-<id>-<i % KEYS>, then reads it back. */
static void *load(void *arg)
{
    int id = (int)(intptr_t)arg;
    long safe[KEYS];   /* per key: the last write Redis acknowledged after the kill */
    long shared[KEYS]; /* per key: the last write Redis acknowledged at all */
    for (int k = 0; k < KEYS; k++)
        safe[k] = shared[k] = -1;
    for (long i = 0; !atomic_load(&stop_load); i++) {
        int k = (int)(i % KEYS), after_kill = atomic_load(&killed);
        char path[96], value[64];
        snprintf(path, sizeof path, "/v1/cache/sentinel/load-%d-%d", id, k);
        snprintf(value, sizeof value, "value-%d-%ld", id, i);
        sh_resp *w = sh_call(srv, "PUT", path, NULL, NULL, "text/plain", value);
        if (w->status != 204) {
            fprintf(stderr, "load: PUT %s answered %ld %s\n", path, w->status, w->err);
            atomic_fetch_add(&errors, 1);
        } else if (sh_resp_header(w, "X-Cache-Write") == NULL) {
            shared[k] = i;
            if (after_kill)
                safe[k] = i;
        }
        sh_resp_free(w);
        sh_resp *g = sh_call(srv, "GET", path, NULL, NULL, NULL, NULL);
        int got_id = -1;
        long got = -1;
        if (g->status != 200 && g->status != 404) {
            fprintf(stderr, "load: GET %s answered %ld %s\n", path, g->status, g->err);
            atomic_fetch_add(&errors, 1);
        } else if (g->status == 200 &&
                   (sscanf(g->body, "value-%d-%ld", &got_id, &got) != 2 || got_id != id ||
                    got % KEYS != k || got > i || got < safe[k])) {
            fprintf(stderr,
                    "load: GET %s gave %s (wrote value-%d-%ld last; Redis took %ld "
                    "after the kill)\n",
                    path, g->body, id, i, safe[k]);
            atomic_fetch_add(&wrong, 1);
        } else if (g->status == 200 && got < shared[k]) {
            atomic_fetch_add(&older, 1);
        }
        sh_resp_free(g);
        atomic_fetch_add(&requests, 2);
    }
    return NULL;
}

static void test_sentinel_failover_under_load(void **state)
{
    (void)state;
    assert_true(rh_wait_for(put_probe, NULL, FOLLOW_MS));
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, load, (void *)(intptr_t)i), 0);
    while (atomic_load(&requests) < 200) /* under load before the kill */
        sh_sleep_ms(5);
    uint64_t kill_ms = rh_now_ms();
    assert_int_equal(rh_kill(primary), 0);
    atomic_store(&killed, 1);
    int followed = rh_wait_for(health_names, replica, FOLLOW_MS);
    uint64_t named = rh_now_ms();
    int writes = followed && rh_wait_for(put_probe, NULL, FOLLOW_MS);
    uint64_t resumed = rh_now_ms();
    sh_sleep_ms(300); /* a little load on the new primary too */
    atomic_store(&stop_load, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    fprintf(stderr,
            "failover: new primary named after %llu ms, writes reach it after %llu ms; "
            "%ld requests, %ld errors; %ld reads older than a write the old primary took\n",
            (unsigned long long)(named - kill_ms), (unsigned long long)(resumed - kill_ms),
            atomic_load(&requests), atomic_load(&errors), atomic_load(&older));
    assert_true(followed);
    assert_true(writes);
    assert_int_equal(atomic_load(&errors), 0);
    assert_int_equal(atomic_load(&wrong), 0);
    assert_true(put_shared("/v1/cache/sentinel/after", "a"));
    assert_true(stored(replica, "after")); /* acknowledged as shared: on the new primary */
    sh_resp *r = sh_call(srv, "GET", "/v1/cache/sentinel/after", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    assert_string_equal(r->body, "a");
    sh_resp_free(r);
}

static void on_set(int status, void *arg)
{
    *(int *)arg = status;
}

/* The first calls of a cache just made reach the primary. The sentinels name it a few
 * milliseconds after the cache starts; meanwhile a synchronous call waits for the naming (at
 * most the connect timeout) and a loop's call is held (at most its deadline), rather than being
 * answered from memory alone and counted as a failure of a healthy Redis. Run before the
 * failover test (primary is still the primary). */
static void test_first_calls_reach_the_primary(void **state)
{
    (void)state;
    char list[200];
    snprintf(list, sizeof list, "%s:%d,%s:%d,%s:%d", rh_host(sentinels[0]), rh_port(sentinels[0]),
             rh_host(sentinels[1]), rh_port(sentinels[1]), rh_host(sentinels[2]),
             rh_port(sentinels[2]));
    for (int async = 0; async < 2; async++) {
        strata_cache_config cfg;
        assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
        cfg.l1.prefix = async ? "first_a" : "first_s";
        cfg.redis.sentinels = list;
        cfg.redis.sentinel_master = MASTER;
        cfg.redis.socket_timeout_ms = 2000; /* far above the naming, even on a loaded machine */
        cfg.redis.connect_timeout_ms = 2000;
        cfg.log = rh_log_quiet;
        strata_cache *c;
        assert_int_equal(strata_cache_new(&cfg, &c), 0);
        strata_key k = {"ns", NULL, "first", 5};
        if (!async) {
            assert_int_equal(strata_cache_set(c, &k, "v", 1, NULL), STRATA_OK);
        } else {
            struct event_base *base = event_base_new();
            strata_loop *lp;
            assert_int_equal(strata_loop_new(c, base, &lp), 0);
            int status = 1;
            assert_int_equal(strata_cache_set_async(lp, &k, "v", 1, NULL, on_set, &status),
                             STRATA_PENDING);
            while (status == 1)
                event_base_loop(base, EVLOOP_ONCE);
            assert_int_equal(status, STRATA_OK);
            strata_loop_free(lp);
            event_base_free(base);
        }
        redisReply *r = rh_command(primary, "EXISTS %s:ns:default:first", cfg.l1.prefix);
        assert_non_null(r);
        assert_int_equal(r->integer, 1);
        freeReplyObject(r);
        strata_l2_stats st;
        strata_cache_l2_stats(c, &st);
        assert_int_equal(st.errors, 0);
        strata_cache_free(c);
    }
}

/* PUTs path on s (each a 204 written to memory alone, never an error) until /cache/health says
 * why Redis is not used (needle), at most 10 s. Returns 1 once it does. */
static int l1_only_until_health_says(sh_server *s, const char *path, const char *needle)
{
    int said = 0;
    for (long deadline = sh_now_ms() + 10000; !said && sh_now_ms() < deadline;) {
        sh_resp *w = sh_call(s, "PUT", path, NULL, NULL, "text/plain", "x");
        SH_EXPECT_STATUS(w, 204);
        SH_EXPECT_HEADER(w, "X-Cache-Write", "l1-only");
        sh_resp_free(w);
        sh_resp *h = sh_call(s, "GET", "/cache/health", NULL, NULL, NULL, NULL);
        said = strstr(h->body, needle) != NULL;
        sh_resp_free(h);
        sh_sleep_ms(20);
    }
    return said;
}

/* A sentinel naming a replica as the primary of "wrong": strata must not use it. Run before the
 * failover test (the replica is still one). */
static void test_replica_named_is_not_used(void **state)
{
    (void)state;
    rh_server *liar = rh_start_sentinel("wrong", replica, 1, 60000, 180000);
    assert_non_null(liar);
    char list[100];
    snprintf(list, sizeof list, "REDIS_SENTINELS=%s:%d", rh_host(liar), rh_port(liar));
    const char *env[] = {list, "REDIS_SENTINEL_MASTER=wrong", "STRATA_WORKERS=1",
                         "REDIS_SOCKET_TIMEOUT=0.3", NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    assert_true(l1_only_until_health_says(s, "/v1/cache/sentinel/never", "is not the primary"));
    sh_resp *h = sh_call(s, "GET", "/cache/health", NULL, NULL, NULL, NULL);
    json_t *j = sh_resp_json(h);
    assert_false(json_is_true(json_object_get(j, "redis_available")));
    assert_false(json_is_true(json_object_get(j, "readonly"))); /* not taken for a primary */
    json_decref(j);
    sh_resp_free(h);
    assert_false(stored(replica, "never"));
    assert_int_equal(sh_stop_check(s), 0);
    rh_stop(liar);
}

/* A sentinel with its own password, asked with the right one and with a wrong one. */
static void test_sentinel_password(void **state)
{
    (void)state;
    rh_server *guarded =
        rh_start_sentinel_auth("guarded", primary, 1, 60000, 180000, "s3ntinel-pw");
    assert_non_null(guarded);
    char list[100];
    snprintf(list, sizeof list, "REDIS_SENTINELS=%s:%d", rh_host(guarded), rh_port(guarded));
    const char *right[] = {list, "REDIS_SENTINEL_MASTER=guarded",
                           "REDIS_SENTINEL_PASSWORD=s3ntinel-pw", "STRATA_WORKERS=1", NULL};
    sh_server *s = sh_start(right, NULL);
    assert_non_null(s);
    for (long deadline = sh_now_ms() + FOLLOW_MS; sh_now_ms() < deadline;) {
        sh_resp *w = sh_call(s, "PUT", "/v1/cache/sentinel/pw", NULL, NULL, "text/plain", "x");
        int shared = w->status == 204 && sh_resp_header(w, "X-Cache-Write") == NULL;
        sh_resp_free(w);
        if (shared)
            break;
        sh_sleep_ms(20);
    }
    assert_true(stored(primary, "pw"));
    assert_int_equal(sh_stop_check(s), 0);
    const char *bad_pw[] = {list, "REDIS_SENTINEL_MASTER=guarded",
                            "REDIS_SENTINEL_PASSWORD=wrong-pw", "STRATA_WORKERS=1", NULL};
    s = sh_start(bad_pw, NULL);
    assert_non_null(s);
    assert_true(l1_only_until_health_says(s, "/v1/cache/sentinel/pw-wrong", "refused AUTH"));
    assert_false(stored(primary, "pw-wrong"));
    assert_int_equal(sh_stop_check(s), 0);
    rh_stop(guarded);
}

/* REDIS_URL and REDIS_SENTINELS at once: which was meant cannot be guessed. */
static void test_url_and_sentinels_refused(void **state)
{
    (void)state;
    const char *env[] = {"REDIS_URL=redis://127.0.0.1:6379", "REDIS_SENTINELS=127.0.0.1:26379",
                         "REDIS_SENTINEL_MASTER=mymaster", NULL};
    const char *args[] = {"--listen", "127.0.0.1:0", NULL};
    char *out = NULL;
    int st = sh_run(env, args, 10000, &out, NULL);
    assert_int_not_equal(st, 0);
    assert_non_null(out);
    if (strstr(out, "REDIS_URL") == NULL || strstr(out, "REDIS_SENTINELS") == NULL)
        fprintf(stderr, "output: %s\n", out);
    assert_non_null(strstr(out, "REDIS_URL"));
    assert_non_null(strstr(out, "REDIS_SENTINELS"));
    free(out);
}

int main(void)
{
    SH_TEST_FILTER();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_and_sentinels_refused),
        cmocka_unit_test(test_sentinel_finds_the_primary),
        cmocka_unit_test(test_first_calls_reach_the_primary),
        cmocka_unit_test(test_replica_named_is_not_used),
        cmocka_unit_test(test_sentinel_password),
        cmocka_unit_test(test_sentinel_failover_under_load),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
