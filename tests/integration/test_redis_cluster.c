/* test_redis_cluster.c: strata serve on a Redis Cluster through its faults (issue 16,
 * "Cluster"; docs/operations.md, "Redis Cluster"). The routing itself is test_l2_cluster.c's.
 *
 * Real processes: a 3-primary 3-replica cluster made by `redis-cli --cluster create`
 * (cluster_harness.c), two strata serve given REDIS_CLUSTER (two seed nodes) only.
 * - `redis-cli --cluster reshard` moving 1000 slots between primaries under load: no request
 *   gets an error, no read a wrong value.
 * - A primary SIGKILLed under load: no request gets an error, no read a wrong value; writes of
 *   its slots reach the promoted replica (how long after the election is printed, never
 *   asserted); the cache is coherent again; sessions acknowledged before the kill, once its
 *   replica had them, are still there, read from the instance that was idle throughout.
 * - REDIS_URL with REDIS_CLUSTER, REDIS_DB with REDIS_CLUSTER, a seed without its port: strata
 *   serve refuses to start, naming what is wrong.
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

#include "cluster_harness.h"
#include "harness.h"
#include "server_harness.h"

#define FOLLOW_MS 30000 /* a failover and strata following it, generously */
#define THREADS   4

static rc_cluster *cl;
static sh_server *srv, *srv2;
static char seeds[100];

static int setup_all(void **state)
{
    (void)state;
    if ((cl = rc_start(3, 1, NULL)) == NULL)
        return -1;
    snprintf(seeds, sizeof seeds, "REDIS_CLUSTER=%s", rc_seeds(cl));
    const char *env[] = {seeds, "STRATA_WORKERS=2", "REDIS_SOCKET_TIMEOUT=0.3",
                         "REDIS_CONNECT_TIMEOUT=0.3", NULL};
    srv = sh_start(env, NULL);
    srv2 = srv ? sh_start(env, NULL) : NULL;
    return srv2 != NULL ? 0 : -1;
}

static int teardown_all(void **state)
{
    (void)state;
    sh_free(srv);
    sh_free(srv2);
    rc_stop(cl);
    return 0;
}

static int coherent(void *arg)
{
    sh_resp *r = sh_call(arg, "GET", "/cache/health", NULL, NULL, NULL, NULL);
    json_t *j = r->status == 200 ? sh_resp_json(r) : NULL;
    int yes = j != NULL && json_is_true(json_object_get(j, "coherent"));
    json_decref(j);
    sh_resp_free(r);
    return yes;
}

static int probe(void *arg)
{
    return sh_put_shared(arg, "/v1/cache/c/victim", "p");
}

#define KEYS 40

static atomic_int stop_load, killed, run; /* run: each load's keys are its own */
static atomic_long requests, errors, wrong;

static void *load(void *arg)
{
    int id = (int)(intptr_t)arg;
    long safe[KEYS];
    for (int k = 0; k < KEYS; k++)
        safe[k] = -1;
    for (long i = 0; !atomic_load(&stop_load); i++) {
        int k = (int)(i % KEYS), after_kill = atomic_load(&killed);
        char path[96], value[64];
        snprintf(path, sizeof path, "/v1/cache/load/l%d-%d-%d", atomic_load(&run), id, k);
        snprintf(value, sizeof value, "value-%d-%ld", id, i);
        sh_resp *w = sh_call(srv, "PUT", path, NULL, NULL, "text/plain", value);
        if (w->status != 204) {
            fprintf(stderr, "load: PUT %s answered %ld %s\n", path, w->status, w->err);
            atomic_fetch_add(&errors, 1);
        } else if (sh_resp_header(w, "X-Cache-Write") == NULL && after_kill) {
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
                    "load: GET %s gave %s (wrote %ld last, Redis took %ld after the kill)\n", path,
                    g->body, i, safe[k]);
            atomic_fetch_add(&wrong, 1);
        }
        sh_resp_free(g);
        atomic_fetch_add(&requests, 2);
    }
    return NULL;
}

static void start_load(pthread_t *t)
{
    atomic_store(&stop_load, 0), atomic_store(&killed, 0), atomic_fetch_add(&run, 1);
    atomic_store(&requests, 0), atomic_store(&errors, 0), atomic_store(&wrong, 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, load, (void *)(intptr_t)i), 0);
    while (atomic_load(&requests) < 200)
        sh_sleep_ms(5);
}

static void stop_load_threads(pthread_t *t)
{
    atomic_store(&stop_load, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
}

static void test_reshard_under_load(void **state)
{
    (void)state;
    assert_true(rh_wait_for(probe, srv, FOLLOW_MS));
    rh_server *from = rc_slot_owner(cl, 0), *to = rc_other_primary(cl, from);
    assert_non_null(from);
    assert_non_null(to);
    char from_id[41], to_id[41];
    assert_int_equal(rc_node_id(cl, from, from_id), 0);
    assert_int_equal(rc_node_id(cl, to, to_id), 0);
    pthread_t t[THREADS];
    start_load(t);
    atomic_store(&killed, 1); /* every write Redis takes from now on must be read back */
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "redis-cli --cluster reshard %s:%d --cluster-from %s --cluster-to %s "
             "--cluster-slots 1000 --cluster-yes > %s/reshard.log 2>&1",
             rh_host(from), rh_port(from), from_id, to_id, rh_dir(from));
    int st = system(cmd);
    sh_sleep_ms(300); /* load on the new map too */
    stop_load_threads(t);
    fprintf(stderr, "reshard of 1000 slots under load: %ld requests, %ld errors, %ld wrong\n",
            atomic_load(&requests), atomic_load(&errors), atomic_load(&wrong));
    assert_int_equal(st, 0);
    assert_ptr_equal(rc_slot_owner(cl, 0), to);
    assert_int_equal(atomic_load(&errors), 0);
    assert_int_equal(atomic_load(&wrong), 0);
    assert_true(sh_put_shared(srv, "/v1/cache/c/after-reshard", "x"));
    assert_true(sh_get_is(srv2, "/v1/cache/c/after-reshard", "x"));
}

#define SESSIONS 8

/* Creates sessions until SESSIONS of them live on node; their ids into ids. */
static void sessions_on(rh_server *node, char ids[SESSIONS][64])
{
    int n = 0;
    for (int tries = 0; n < SESSIONS && tries < 400; tries++) {
        sh_resp *r =
            sh_call(srv, "POST", "/v1/sessions", NULL, NULL, "application/json", "{\"user\":7}");
        SH_EXPECT_STATUS(r, 201);
        assert_null(sh_resp_header(r, "X-Cache-Write"));
        json_t *j = sh_resp_json(r);
        const char *id = json_string_value(json_object_get(j, "id"));
        char stored[128];
        snprintf(stored, sizeof stored, "strata:_sessions:default:%s", id);
        if (rc_owner(cl, stored) == node)
            snprintf(ids[n++], 64, "%s", id);
        json_decref(j);
        sh_resp_free(r);
    }
    assert_int_equal(n, SESSIONS);
}

/* A field of INFO replication as a number, -1 if absent. */
static long long repl_field(rh_server *n, const char *field)
{
    redisReply *r = rh_command(n, "INFO replication");
    long long v = -1;
    const char *p = r != NULL && r->type == REDIS_REPLY_STRING ? strstr(r->str, field) : NULL;
    if (p != NULL)
        v = strtoll(p + strlen(field), NULL, 10);
    if (r != NULL)
        freeReplyObject(r);
    return v;
}

/* The primary's replica has everything the primary had taken at `upto`. */
typedef struct replicated_arg {
    rh_server *primary;
    long long upto;
} replicated_arg;

static int replicated(void *arg)
{
    replicated_arg *a = arg;
    for (int k = 0; k < rc_size(cl); k++) {
        rh_server *n = rc_node(cl, k);
        if (n == a->primary || rh_pid(n) < 0 ||
            repl_field(n, "master_port:") != rh_port(a->primary))
            continue;
        if (repl_field(n, "slave_repl_offset:") >= a->upto)
            return 1;
    }
    return 0;
}

static const char *victim_path = "/v1/cache/c/victim";
static rh_server *victim;

/* A replica of the killed primary was elected: a live primary serves the victim key's slot. */
static int elected(void *arg)
{
    (void)arg;
    rh_server *owner = rc_owner(cl, "strata:c:default:victim");
    return owner != NULL && owner != victim && rc_is_primary(owner) && rc_ok(cl);
}

static int victim_writable(void *arg)
{
    (void)arg;
    return sh_put_shared(srv, victim_path, "v");
}

static void test_primary_failover_under_load(void **state)
{
    (void)state;
    assert_true(rh_wait_for(victim_writable, NULL, FOLLOW_MS));
    victim = rc_owner(cl, "strata:c:default:victim");
    assert_non_null(victim);
    char ids[SESSIONS][64];
    sessions_on(victim, ids);
    replicated_arg ra = {victim, repl_field(victim, "master_repl_offset:")};
    assert_true(ra.upto > 0);
    assert_true(rh_wait_for(replicated, &ra, FOLLOW_MS));
    pthread_t t[THREADS];
    start_load(t);
    uint64_t kill_ms = rh_now_ms();
    assert_int_equal(rh_kill(victim), 0);
    atomic_store(&killed, 1);
    int was_elected = rh_wait_for(elected, NULL, FOLLOW_MS);
    uint64_t elected_ms = rh_now_ms();
    int writes = was_elected && rh_wait_for(victim_writable, NULL, FOLLOW_MS);
    uint64_t resumed = rh_now_ms();
    sh_sleep_ms(300);
    stop_load_threads(t);
    fprintf(stderr,
            "cluster failover: elected after %llu ms, strata writes there %llu ms after the "
            "election; %ld requests, %ld errors\n",
            (unsigned long long)(elected_ms - kill_ms), (unsigned long long)(resumed - elected_ms),
            atomic_load(&requests), atomic_load(&errors));
    assert_true(was_elected);
    assert_true(writes);
    assert_int_equal(atomic_load(&errors), 0);
    assert_int_equal(atomic_load(&wrong), 0);
    rh_server *promoted = rc_owner(cl, "strata:c:default:victim");
    assert_non_null(promoted);
    assert_ptr_not_equal(promoted, victim);
    assert_true(rc_exists(promoted, "strata:c:default:victim"));
    assert_true(rh_wait_for(coherent, srv, FOLLOW_MS)); /* the new primary's link is up */
    /* The other instance, idle through the failover, follows it too (its next call to the dead
     * node has it read the map again); then the sessions are read there. */
    assert_true(rh_wait_for(probe, srv2, FOLLOW_MS));
    for (int i = 0; i < SESSIONS; i++) {
        char path[600];
        snprintf(path, sizeof path, "/v1/sessions/%s", ids[i]);
        assert_true(sh_get_is(srv2, path, "{\"user\":7}\n"));
    }
}

/* ---- configuration ------------------------------------------------------------------------- */

static void refused(const char *a, const char *b, const char *needle1, const char *needle2)
{
    const char *env[] = {a, b, NULL};
    const char *args[] = {"--listen", "127.0.0.1:0", NULL};
    char *out = NULL;
    int st = sh_run(env, args, 10000, &out, NULL);
    assert_int_not_equal(st, 0);
    assert_non_null(out);
    if (strstr(out, needle1) == NULL || strstr(out, needle2) == NULL)
        fprintf(stderr, "output: %s\n", out);
    assert_non_null(strstr(out, needle1));
    assert_non_null(strstr(out, needle2));
    free(out);
}

static void test_cluster_with_url_or_db_refused(void **state)
{
    (void)state;
    refused("REDIS_URL=redis://127.0.0.1:6379", "REDIS_CLUSTER=127.0.0.1:7000", "REDIS_URL",
            "REDIS_CLUSTER");
    refused("REDIS_DB=2", "REDIS_CLUSTER=127.0.0.1:7000", "REDIS_DB", "database 0");
    refused("REDIS_CLUSTER=127.0.0.1", "REDIS_ENABLED=true", "REDIS_CLUSTER", "host:port");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cluster_with_url_or_db_refused),
        cmocka_unit_test(test_reshard_under_load),
        cmocka_unit_test(test_primary_failover_under_load),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
