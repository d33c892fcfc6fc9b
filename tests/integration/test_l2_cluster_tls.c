/* test_l2_cluster_tls.c: strata serve on a Redis Cluster over TLS (issue 16, "TLS works with
 * Cluster too"; docs/operations.md, "Redis Cluster").
 *
 * Real processes: a 3-primary cluster whose nodes listen with TLS (a CA and certificates made at
 * test time), the cluster bus and replication over TLS too, made by `redis-cli --tls --cluster
 * create` (cluster_harness.c); strata serve given REDIS_CLUSTER (TLS ports), REDIS_TLS=1 and the
 * CA.
 * - The slot map is read over TLS and every key lands on its primary, acknowledged as shared;
 *   every primary's invalidation link comes up (coherent); health says cluster, TLS on, and a
 *   round trip to each primary.
 * - A CA that did not sign the nodes' certificates: no node is used (writes are l1-only 204s,
 *   never errors) and last_error says the certificate did not verify. */
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
#include "origin_harness.h"
#include "server_harness.h"

#define FOLLOW_MS 30000

static oh_tls tls;
static rc_cluster *cl;
static char seeds[100], ca[600], other_ca[600];

static int setup_all(void **state)
{
    (void)state;
    if (oh_make_tls(&tls) != 0)
        return -1;
    if ((cl = rc_start_tls(3, 0, tls.cert, tls.key, tls.ca)) == NULL)
        return -1;
    snprintf(seeds, sizeof seeds, "REDIS_CLUSTER=%s", rc_seeds(cl));
    snprintf(ca, sizeof ca, "REDIS_TLS_CA_CERT=%s", tls.ca);
    snprintf(other_ca, sizeof other_ca, "REDIS_TLS_CA_CERT=%s", tls.other_ca);
    return 0;
}

static int teardown_all(void **state)
{
    (void)state;
    rc_stop(cl);
    return 0;
}

static int probe(void *arg)
{
    return sh_put_shared(arg, "/v1/cache/t/probe", "p");
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

static void test_keys_over_tls(void **state)
{
    (void)state;
    const char *env[] = {seeds, "REDIS_TLS=1", ca, "STRATA_WORKERS=2", "REDIS_SOCKET_TIMEOUT=2",
                         NULL};
    sh_server *srv = sh_start(env, NULL);
    assert_non_null(srv);
    assert_true(rh_wait_for(probe, srv, FOLLOW_MS));
    for (int i = 0; i < 60; i++) {
        char path[64], stored[64];
        snprintf(path, sizeof path, "/v1/cache/t/k%d", i);
        assert_true(sh_put_shared(srv, path, "v"));
        snprintf(stored, sizeof stored, "strata:t:default:k%d", i);
        rh_server *owner = rc_owner(cl, stored);
        assert_non_null(owner);
        assert_true(rc_exists(owner, stored));
        assert_true(sh_get_is(srv, path, "v"));
    }
    for (int i = 0; i < rc_size(cl); i++)
        assert_true(rc_dbsize(rc_node(cl, i)) > 0); /* every primary has some */
    assert_true(rh_wait_for(coherent, srv, FOLLOW_MS));
    sh_resp *r = sh_call(srv, "GET", "/cache/health", NULL, NULL, NULL, NULL);
    json_t *j = sh_resp_json(r);
    json_t *redis = json_object_get(j, "redis");
    assert_string_equal(json_string_value(json_object_get(redis, "topology")), "cluster");
    assert_true(json_is_true(json_object_get(redis, "tls")));
    json_t *list = json_object_get(redis, "node_list");
    assert_int_equal(json_array_size(list), 3);
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *n = json_array_get(list, i);
        int port = -1, found = 0;
        sscanf(json_string_value(json_object_get(n, "addr")), "127.0.0.1:%d", &port);
        for (int k = 0; k < rc_size(cl); k++)
            found |= rc_tls_port(cl, k) == port; /* the TLS ports: what TLS clients are told */
        assert_true(found);
        assert_true(json_is_number(json_object_get(n, "latency_ms")));
    }
    json_decref(j);
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(srv), 0);
}

static int says_certificate(void *arg)
{
    sh_resp *r = sh_call(arg, "GET", "/cache/health", NULL, NULL, NULL, NULL);
    int yes = strstr(r->body, "certificate verify failed") != NULL;
    sh_resp_free(r);
    return yes;
}

static void test_wrong_ca_is_a_redis_that_is_down(void **state)
{
    (void)state;
    const char *env[] = {
        seeds, "REDIS_TLS=1", other_ca, "STRATA_WORKERS=1", "REDIS_SOCKET_TIMEOUT=0.5", NULL};
    sh_server *srv = sh_start(env, NULL);
    assert_non_null(srv);
    assert_true(rh_wait_for(says_certificate, srv, FOLLOW_MS));
    sh_resp *w = sh_call(srv, "PUT", "/v1/cache/t/never", NULL, NULL, "text/plain", "x");
    SH_EXPECT_STATUS(w, 204);
    SH_EXPECT_HEADER(w, "X-Cache-Write", "l1-only");
    sh_resp_free(w);
    assert_false(rc_exists(rc_owner(cl, "strata:t:default:never"), "strata:t:default:never"));
    assert_int_equal(sh_stop_check(srv), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_over_tls),
        cmocka_unit_test(test_wrong_ca_is_a_redis_that_is_down),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
