/* test_server_history.c: GET /cache/stats/history against a real strata serve: a point a second,
 * oldest first, each figure the second's own (the sums over the points are exactly the reads the
 * test made: hits from L1, misses), the L1 gauges, ?since= keeping the later points, the read role
 * enough and no token refused, a bad since refused; per namespace (the most read ones), sessions
 * made and used, the invalidation link and the money the LLM gateway saved, as the dashboard
 * charts them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "server_harness.h"

#define ADMIN  "history-admin-token-1"
#define READER "history-read-token-1"

static json_t *history(const sh_server *s, const char *query, const char *token)
{
    char path[128];
    snprintf(path, sizeof path, "/cache/stats/history%s", query);
    sh_resp *r = sh_call(s, "GET", path, token, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    json_t *j = sh_resp_json(r);
    assert_non_null(j);
    sh_resp_free(r);
    return j;
}

static long long sum(json_t *points, const char *group, const char *name)
{
    long long n = 0;
    for (size_t i = 0; i < json_array_size(points); i++) {
        json_t *p = json_array_get(points, i);
        json_t *g = group ? json_object_get(p, group) : p;
        n += json_integer_value(json_object_get(g, name));
    }
    return n;
}

static void test_history_counts_every_second(void **state)
{
    (void)state;
    const char *env[] = {"STRATA_WORKERS=2", "STRATA_TOKENS=" ADMIN ":admin," READER ":read", NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    sh_resp *r = sh_call(s, "PUT", "/v1/cache/h/k", ADMIN, NULL, "text/plain", "value");
    assert_true(r->status == 200 || r->status == 201 || r->status == 204);
    sh_resp_free(r);
    for (int i = 0; i < 20; i++) { /* hits */
        r = sh_call(s, "GET", "/v1/cache/h/k", READER, NULL, NULL, NULL);
        SH_EXPECT_STATUS(r, 200);
        sh_resp_free(r);
    }
    for (int i = 0; i < 5; i++) { /* misses */
        r = sh_call(s, "GET", "/v1/cache/h/none", READER, NULL, NULL, NULL);
        SH_EXPECT_STATUS(r, 404);
        sh_resp_free(r);
    }
    /* Once a point later than the last read is there, every read is counted in some point. */
    long long after = (long long)time(NULL) + 1;
    json_t *j = NULL;
    long deadline = sh_now_ms() + 10000;
    for (;;) {
        json_decref(j);
        j = history(s, "", READER);
        json_t *pts = json_object_get(j, "points");
        json_t *last = json_array_get(pts, json_array_size(pts) - 1);
        if (last != NULL && json_integer_value(json_object_get(last, "t")) > after)
            break;
        assert_true(sh_now_ms() < deadline);
        sh_sleep_ms(100);
    }
    json_t *pts = json_object_get(j, "points");
    assert_int_equal(json_integer_value(json_object_get(j, "interval_s")), 1);
    assert_true(json_integer_value(json_object_get(j, "capacity")) >= 899);
    assert_int_equal(sum(pts, "reads", "l1"), 20);
    assert_int_equal(sum(pts, "reads", "misses"), 5);
    assert_true(sum(pts, NULL, "requests") >= 26); /* and the history calls themselves */
    assert_int_equal(sum(pts, "l1", "evictions"), 0);
    long long prev = 0;
    for (size_t i = 0; i < json_array_size(pts); i++) {
        json_t *p = json_array_get(pts, i);
        long long t = json_integer_value(json_object_get(p, "t"));
        assert_true(t > prev); /* oldest first, one a second */
        prev = t;
        assert_true(json_integer_value(json_object_get(json_object_get(p, "l1"), "max_bytes")) > 0);
        assert_true(json_is_object(json_object_get(p, "latency_ms")));
        assert_true(json_is_object(json_object_get(p, "redis")));
    }
    json_t *last = json_array_get(pts, json_array_size(pts) - 1);
    assert_true(json_integer_value(json_object_get(json_object_get(last, "l1"), "entries")) >= 1);
    /* ?since=T: only the points after T. */
    char q[64];
    snprintf(q, sizeof q, "?since=%lld", prev - 1);
    json_t *later = history(s, q, READER);
    json_t *lp = json_object_get(later, "points");
    assert_true(json_array_size(lp) >= 1);
    for (size_t i = 0; i < json_array_size(lp); i++)
        assert_true(json_integer_value(json_object_get(json_array_get(lp, i), "t")) > prev - 1);
    json_decref(later);
    json_decref(j);
    /* No token: refused; a bad since: 400. */
    r = sh_call(s, "GET", "/cache/stats/history", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 401);
    sh_resp_free(r);
    r = sh_call(s, "GET", "/cache/stats/history?since=soon", READER, NULL, NULL, NULL);
    assert_true(sh_resp_is_error(r, "bad_since"));
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(s), 0);
}

/* Waits until the newest point is later than every request made so far; returns the history. */
static json_t *settled(const sh_server *s)
{
    long long after = (long long)time(NULL) + 1;
    long deadline = sh_now_ms() + 10000;
    for (;;) {
        json_t *j = history(s, "", READER);
        json_t *pts = json_object_get(j, "points");
        json_t *last = json_array_get(pts, json_array_size(pts) - 1);
        if (last != NULL && json_integer_value(json_object_get(last, "t")) > after)
            return j;
        json_decref(j);
        assert_true(sh_now_ms() < deadline);
        sh_sleep_ms(100);
    }
}

static long long sum_ns(json_t *points, const char *ns, const char *name)
{
    long long n = 0;
    for (size_t i = 0; i < json_array_size(points); i++) {
        json_t *v = json_object_get(json_object_get(json_array_get(points, i), "namespaces"), ns);
        n += json_integer_value(json_object_get(v, name));
    }
    return n;
}

static void test_history_namespaces_sessions_llm(void **state)
{
    (void)state;
    const char *env[] = {"STRATA_WORKERS=2", "STRATA_TOKENS=" ADMIN ":admin," READER ":read", NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    sh_resp *r;
    /* Namespaces exist once written; then a second later the reads count per namespace. */
    for (int n = 0; n < 10; n++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/cache/ns%d/k", n);
        r = sh_call(s, "PUT", path, ADMIN, NULL, "text/plain", "v");
        assert_true(r->status >= 200 && r->status < 300);
        sh_resp_free(r);
    }
    json_decref(settled(s));
    long long t0 = (long long)time(NULL);
    /* ns0 and ns1 read most: 30 hits and 10 misses in ns0, 20 hits in ns1, one read elsewhere. */
    for (int i = 0; i < 30; i++) {
        r = sh_call(s, "GET", "/v1/cache/ns0/k", READER, NULL, NULL, NULL);
        SH_EXPECT_STATUS(r, 200);
        sh_resp_free(r);
    }
    for (int i = 0; i < 10; i++) {
        r = sh_call(s, "GET", "/v1/cache/ns0/none", READER, NULL, NULL, NULL);
        SH_EXPECT_STATUS(r, 404);
        sh_resp_free(r);
    }
    for (int i = 0; i < 20; i++) {
        r = sh_call(s, "GET", "/v1/cache/ns1/k", READER, NULL, NULL, NULL);
        SH_EXPECT_STATUS(r, 200);
        sh_resp_free(r);
    }
    for (int n = 2; n < 10; n++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/cache/ns%d/k", n);
        r = sh_call(s, "GET", path, READER, NULL, NULL, NULL);
        SH_EXPECT_STATUS(r, 200);
        sh_resp_free(r);
    }
    /* Two sessions made, three calls on one. */
    char id[128] = "";
    for (int i = 0; i < 2; i++) {
        r = sh_call(s, "POST", "/v1/sessions", ADMIN, NULL, "application/json", "{\"u\":1}");
        SH_EXPECT_STATUS(r, 201);
        json_t *j = sh_resp_json(r);
        snprintf(id, sizeof id, "/v1/sessions/%s", json_string_value(json_object_get(j, "id")));
        json_decref(j);
        sh_resp_free(r);
    }
    for (int i = 0; i < 3; i++) {
        r = sh_call(s, "GET", id, READER, NULL, NULL, NULL);
        SH_EXPECT_STATUS(r, 200);
        sh_resp_free(r);
    }
    json_t *j = settled(s);
    json_t *all = json_object_get(j, "points"), *pts = json_array();
    for (size_t i = 0; i < json_array_size(all); i++) /* the points since the reads began */
        if (json_integer_value(json_object_get(json_array_get(all, i), "t")) > t0)
            json_array_append(pts, json_array_get(all, i));
    assert_int_equal(sum_ns(pts, "ns0", "l1"), 30);
    assert_int_equal(sum_ns(pts, "ns0", "misses"), 10);
    assert_int_equal(sum_ns(pts, "ns1", "l1"), 20);
    /* At most 8 namespaces a point: 10 were read, ns0 and ns1 the most, so they are there. */
    for (size_t i = 0; i < json_array_size(all); i++)
        assert_true(json_object_size(json_object_get(json_array_get(all, i), "namespaces")) <= 8);
    int ratio_seen = 0;
    for (size_t i = 0; i < json_array_size(pts); i++) {
        json_t *v = json_object_get(json_object_get(json_array_get(pts, i), "namespaces"), "ns1");
        if (json_integer_value(json_object_get(v, "l1")) > 0) {
            assert_true(json_real_value(json_object_get(v, "hit_ratio")) == 1.0);
            ratio_seen = 1;
        }
    }
    assert_true(ratio_seen);
    assert_int_equal(sum(pts, "sessions", "created"), 2);
    assert_int_equal(sum(pts, "sessions", "requests"), 3);
    json_t *last = json_array_get(all, json_array_size(all) - 1);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(last, "sessions"), "in_l1")), 2);
    json_t *redis = json_object_get(last, "redis");
    assert_true(json_is_false(json_object_get(redis, "coherent"))); /* no Redis: no link */
    assert_true(json_is_number(json_object_get(json_object_get(last, "llm"), "usd_saved")));
    json_decref(pts);
    json_decref(j);
    assert_int_equal(sh_stop_check(s), 0);
}

int main(void)
{
    SH_TEST_FILTER();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history_counts_every_second),
        cmocka_unit_test(test_history_namespaces_sessions_llm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
