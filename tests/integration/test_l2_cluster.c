/* test_l2_cluster.c: strata serve on a Redis Cluster, the routing itself (issue 16, "Cluster";
 * docs/operations.md, "Redis Cluster"). Fast enough for every build, so the routing code (the
 * loops' pipes per node, the pool's connections per node, redirections) also runs under ASan,
 * UBSan and TSan; the slow faults (a resharding and a failover under load) are
 * test_redis_cluster.c's.
 *
 * Real processes: a 3-primary cluster (no replicas) made by `redis-cli --cluster create`
 * (cluster_harness.c), two strata serve given REDIS_CLUSTER (two seed nodes) only.
 * - Routing: keys written through HTTP land on the primary serving each key's slot (every
 *   primary gets some), acknowledged as shared, and the second instance reads every one.
 * - /cache/health and /cache/stats say "cluster" and count the primaries.
 * - Coherence on every primary: once each primary's invalidation link is up, a value read from
 *   one instance's memory (HIT-L1) is replaced there soon after the other instance writes it,
 *   whichever primary holds it.
 * - A slot in migration (ASK) and a slot moved (MOVED, the map stale until re-read): reads and
 *   writes of its keys still reach the node that has them.
 * - /cache/keys pages through every primary, each key once; /cache/clear removes the keys from
 *   every primary; a flush empties every primary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster_harness.h"
#include "harness.h"
#include "server_harness.h"

#define FOLLOW_MS 30000 /* strata reading the map and linking every primary, generously */

static rc_cluster *cl;
static sh_server *srv, *srv2;
static char seeds[100];

static int setup_all(void **state)
{
    (void)state;
    if ((cl = rc_start(3, 0, NULL)) == NULL)
        return -1;
    snprintf(seeds, sizeof seeds, "REDIS_CLUSTER=%s", rc_seeds(cl));
    /* Timeouts far above a loaded sanitizer build's latency: no write here may fall back. */
    const char *env[] = {seeds, "STRATA_WORKERS=2", "REDIS_SOCKET_TIMEOUT=2", NULL};
    srv = sh_start(env, NULL);
    srv2 = srv ? sh_start(env, NULL) : NULL;
    return srv2 != NULL ? 0 : -1;
}

/* Both instances stop cleanly, with nothing in their logs from the sanitizers. */
static int teardown_all(void **state)
{
    (void)state;
    int rc = srv ? sh_stop_check(srv) : -1; /* stops and frees */
    rc |= srv2 ? sh_stop_check(srv2) : -1;
    rc_stop(cl);
    return rc == 0 ? 0 : -1;
}

static int probe(void *arg)
{
    return sh_put_shared(arg, "/v1/cache/c/probe", "p");
}

static void test_keys_land_on_their_primary(void **state)
{
    (void)state;
    assert_true(rh_wait_for(probe, srv, FOLLOW_MS));
    for (int i = 0; i < 150; i++) {
        char path[64], value[32], stored[64];
        snprintf(path, sizeof path, "/v1/cache/route/k%d", i);
        snprintf(value, sizeof value, "v%d", i);
        assert_true(sh_put_shared(srv, path, value));
        snprintf(stored, sizeof stored, "strata:route:default:k%d", i);
        rh_server *owner = rc_owner(cl, stored);
        assert_non_null(owner);
        assert_true(rc_exists(owner, stored));
    }
    int primaries = 0; /* each holds some of the 150 keys */
    for (int i = 0; i < rc_size(cl); i++)
        if (rc_is_primary(rc_node(cl, i))) {
            primaries++;
            assert_true(rc_dbsize(rc_node(cl, i)) > 0);
        }
    assert_int_equal(primaries, 3);
    for (int i = 0; i < 150; i++) { /* the other instance reads them all from the cluster */
        char path[64], value[32];
        snprintf(path, sizeof path, "/v1/cache/route/k%d", i);
        snprintf(value, sizeof value, "v%d", i);
        assert_true(sh_get_is(srv2, path, value));
    }
}

static void test_health_and_stats_say_cluster(void **state)
{
    (void)state;
    assert_true(rh_wait_for(probe, srv, FOLLOW_MS));
    sh_resp *r = sh_call(srv, "GET", "/cache/health", NULL, NULL, NULL, NULL);
    json_t *j = sh_resp_json(r);
    json_t *redis = json_object_get(j, "redis");
    assert_non_null(redis);
    assert_string_equal(json_string_value(json_object_get(redis, "topology")), "cluster");
    assert_int_equal(json_integer_value(json_object_get(redis, "nodes")), 3);
    /* each primary listed, in use, with its slots (all 16384 between them) and a round trip
     * from this health check (it pinged every primary), each one a node the cluster says is a
     * primary */
    json_t *list = json_object_get(redis, "node_list");
    assert_int_equal(json_array_size(list), 3);
    long long slots = 0;
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *n = json_array_get(list, i);
        assert_true(json_is_true(json_object_get(n, "primary")));
        assert_true(json_is_number(json_object_get(n, "latency_ms")));
        slots += json_integer_value(json_object_get(n, "slots"));
        int port = -1;
        sscanf(json_string_value(json_object_get(n, "addr")), "127.0.0.1:%d", &port);
        int found = 0;
        for (int k = 0; k < rc_size(cl); k++)
            found |= rh_port(rc_node(cl, k)) == port && rc_is_primary(rc_node(cl, k));
        assert_true(found);
    }
    assert_int_equal(slots, 16384);
    json_decref(j);
    sh_resp_free(r);
    r = sh_call(srv, "GET", "/cache/stats", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    j = sh_resp_json(r);
    json_t *l2 = json_object_get(j, "l2");
    assert_string_equal(json_string_value(json_object_get(l2, "topology")), "cluster");
    json_decref(j);
    sh_resp_free(r);
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

typedef struct want {
    const char *path, *value;
} want;

static int reads(void *arg)
{
    want *w = arg;
    sh_resp *r = sh_call(srv, "GET", w->path, NULL, NULL, NULL, NULL);
    int ok = r->status == 200 && strcmp(r->body, w->value) == 0;
    sh_resp_free(r);
    return ok;
}

static int l1_hit(void *path)
{
    sh_resp *r = sh_call(srv, "GET", path, NULL, NULL, NULL, NULL);
    const char *x = sh_resp_header(r, "X-Cache");
    int yes =
        r->status == 200 && x != NULL && strcmp(x, "HIT-L1") == 0 && strcmp(r->body, "one") == 0;
    sh_resp_free(r);
    return yes;
}

static void test_coherence_on_every_primary(void **state)
{
    (void)state;
    assert_true(rh_wait_for(coherent, srv, FOLLOW_MS));
    assert_true(rh_wait_for(coherent, srv2, FOLLOW_MS));
    for (int i = 0; i < 30; i++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/cache/coh/k%d", i);
        assert_true(sh_put_shared(srv, path, "one"));
        /* Served from memory (once our own write's invalidation has come back and gone): L1
         * is trusted, so every primary's link is up. */
        assert_true(rh_wait_for(l1_hit, path, 5000));
        assert_true(sh_put_shared(srv2, path, "two"));
        want w = {path, "two"};
        assert_true(rh_wait_for(reads, &w, 5000));
    }
}

static unsigned keyslot(const char *stored)
{
    redisReply *r = rh_command(rc_node(cl, 0), "CLUSTER KEYSLOT %s", stored);
    assert_non_null(r);
    unsigned slot = (unsigned)r->integer;
    freeReplyObject(r);
    return slot;
}

static void expect_ok(redisReply *r)
{
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "redis: %s\n", r->str);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

/* A slot moved from its primary to another by hand, as redis-cli --cluster reshard does it. */
static void test_ask_and_moved_are_followed(void **state)
{
    (void)state;
    assert_true(rh_wait_for(probe, srv, FOLLOW_MS));
    const char *stored = "strata:move:default:m";
    assert_true(sh_put_shared(srv, "/v1/cache/move/m", "before"));
    unsigned slot = keyslot(stored);
    rh_server *from = rc_owner(cl, stored), *to = rc_other_primary(cl, from);
    assert_non_null(from);
    assert_non_null(to);
    char from_id[41], to_id[41];
    assert_int_equal(rc_node_id(cl, from, from_id), 0);
    assert_int_equal(rc_node_id(cl, to, to_id), 0);
    expect_ok(rh_command(to, "CLUSTER SETSLOT %u IMPORTING %s", slot, from_id));
    expect_ok(rh_command(from, "CLUSTER SETSLOT %u MIGRATING %s", slot, to_id));
    expect_ok(rh_command(from, "MIGRATE %s %d %s 0 5000", rh_host(to), rh_port(to), stored));
    assert_true(rc_exists(to, stored) == 0); /* not visible on `to` without ASKING */
    /* Mid-migration: `from` still owns the slot, answers ASK for the key it no longer has. */
    assert_true(sh_get_is(srv, "/v1/cache/move/m", "before"));
    /* The slot given to `to` everywhere: strata's map is stale until it reads it again, and the
     * first calls get MOVED. */
    for (int i = 0; i < rc_size(cl); i++)
        if (rc_is_primary(rc_node(cl, i)))
            expect_ok(rh_command(rc_node(cl, i), "CLUSTER SETSLOT %u NODE %s", slot, to_id));
    assert_true(sh_put_shared(srv2, "/v1/cache/move/m", "after"));
    assert_true(rc_exists(to, stored));
    assert_false(rc_exists(from, stored));
    /* srv may hold "before" in memory (read mid-migration); `to`'s invalidation reaches it
     * through its link to `to`, asynchronously, as any invalidation does. */
    want w = {"/v1/cache/move/m", "after"};
    assert_true(rh_wait_for(reads, &w, 5000));
}

typedef struct seen {
    int count[80];
} seen;

static void test_keys_and_clear_walk_every_primary(void **state)
{
    (void)state;
    assert_true(rh_wait_for(probe, srv, FOLLOW_MS));
    for (int i = 0; i < 80; i++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/cache/walk/w%d", i);
        assert_true(sh_put_shared(srv, path, "x"));
    }
    seen s = {{0}};
    char cursor[64] = "0";
    int pages = 0;
    do {
        char path[160];
        snprintf(path, sizeof path, "/cache/keys?namespace=walk&limit=7&cursor=%s", cursor);
        sh_resp *r = sh_call(srv, "GET", path, NULL, NULL, NULL, NULL);
        SH_EXPECT_STATUS(r, 200);
        json_t *j = sh_resp_json(r);
        json_t *keys = json_object_get(j, "keys");
        for (size_t i = 0; i < json_array_size(keys); i++) {
            int n = -1;
            sscanf(json_string_value(json_object_get(json_array_get(keys, i), "key")), "w%d", &n);
            assert_true(n >= 0 && n < 80);
            s.count[n]++;
        }
        snprintf(cursor, sizeof cursor, "%s", json_string_value(json_object_get(j, "cursor")));
        json_decref(j);
        sh_resp_free(r);
        assert_true(++pages < 200);
    } while (strcmp(cursor, "0") != 0);
    for (int i = 0; i < 80; i++)
        assert_int_equal(s.count[i], 1);
    sh_resp *r = sh_call(srv, "POST", "/cache/clear?namespace=walk", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    json_t *j = sh_resp_json(r);
    assert_int_equal(json_integer_value(json_object_get(j, "removed")), 80);
    json_decref(j);
    sh_resp_free(r);
    for (int i = 0; i < 80; i++) {
        char stored[64];
        snprintf(stored, sizeof stored, "strata:walk:default:w%d", i);
        assert_false(rc_exists(rc_owner(cl, stored), stored));
    }
    /* a flush empties every primary */
    r = sh_call(srv, "POST", "/cache/clear?flush=true", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    sh_resp_free(r);
    for (int i = 0; i < rc_size(cl); i++)
        if (rc_is_primary(rc_node(cl, i)))
            assert_int_equal(rc_dbsize(rc_node(cl, i)), 0);
}

/* ---- a primary killed under load ----------------------------------------------------------- */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_land_on_their_primary),
        cmocka_unit_test(test_health_and_stats_say_cluster),
        cmocka_unit_test(test_coherence_on_every_primary),
        cmocka_unit_test(test_ask_and_moved_are_followed),
        cmocka_unit_test(test_keys_and_clear_walk_every_primary),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
