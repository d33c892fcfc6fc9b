/* test_server_redis_down.c: strata serve while Redis hangs or dies (DESIGN.md: "No Redis or
 * upstream round trip ever blocks a server event loop"; "Redis being down, slow, read-only, or
 * restarted is normal operation: callers see a miss or L1 data, never an error caused by the
 * cache"; "What a write answers ... With Redis down it is L1 only: still 2xx, with
 * X-Cache-Write: l1-only").
 *
 * Hung Redis (SIGSTOP): with one worker, a GET waiting on Redis does not hold up L1 hits on other
 * connections of the same loop (each answered within 50 ms), and the waiting GET itself is
 * answered (a miss) within REDIS_SOCKET_TIMEOUT plus a margin.
 * Killed Redis: warm keys are still served, writes are 204 l1-only, health is degraded with
 * redis_available false; once Redis is back, writes are plain 204 again within seconds. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "server_harness.h"

#define SETTLE_MS 300 /* time for invalidations in flight to arrive */

#define L1_BOUND_MS       50  /* an L1 hit while another request waits on Redis */
#define SOCKET_TIMEOUT_MS 300 /* REDIS_SOCKET_TIMEOUT below */
#define PENDING_BOUND_MS  (SOCKET_TIMEOUT_MS + 1200)
#define RECOVER_MS        10000

static rh_server *redis;
static sh_server *srv;

static int setup_one(void **state)
{
    (void)state;
    redis = rh_start(NULL);
    return redis ? 0 : -1;
}

/* Never leave Redis stopped; kill what the test left running. */
static int teardown_one(void **state)
{
    (void)state;
    if (redis != NULL && rh_pid(redis) > 0)
        rh_resume(redis);
    sh_free(srv);
    srv = NULL;
    rh_stop(redis);
    redis = NULL;
    return 0;
}

static sh_server *start_server(const char *workers)
{
    static char url[320], w[32];
    snprintf(url, sizeof url, "REDIS_URL=%s", rh_url(redis));
    snprintf(w, sizeof w, "STRATA_WORKERS=%s", workers);
    const char *env[] = {url, w, "REDIS_SOCKET_TIMEOUT=0.3", "REDIS_CONNECT_TIMEOUT=0.3", NULL};
    return sh_start(env, NULL);
}

/* GETs path until X-Cache: HIT-L1 (at most 20 reads, each a 200). */
static void warm(sh_server *s, const char *path)
{
    /* The invalidation of this instance's own write comes back through the coherence link a
     * moment after the write is acknowledged, and drops the L1 copy: let it arrive first. */
    sh_sleep_ms(SETTLE_MS);
    for (int i = 0; i < 20; i++) {
        sh_resp *r = sh_call(s, "GET", path, NULL, NULL, NULL, NULL);
        SH_EXPECT_STATUS(r, 200);
        const char *xc = sh_resp_header(r, "X-Cache");
        int l1 = xc != NULL && strcmp(xc, "HIT-L1") == 0;
        sh_resp_free(r);
        if (l1)
            return;
        sh_sleep_ms(10);
    }
    fail_msg("%s never answered HIT-L1", path);
}

static int first_status(const char *buf)
{
    int st = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &st) != 1)
        return 0;
    return st;
}

/* The reason given for an answer from memory alone: one of the two expected (docs/api.md). */
static void expect_reason(const char *what, const char *got, const char *a, const char *b)
{
    if (got == NULL || (strcmp(got, a) != 0 && strcmp(got, b) != 0))
        fprintf(stderr, "%s: X-Cache-Reason %s, expected %s or %s\n", what, got ? got : "(none)", a,
                b);
    assert_non_null(got);
    assert_true(strcmp(got, a) == 0 || strcmp(got, b) == 0);
}

static void test_hung_redis_does_not_block_l1(void **state)
{
    (void)state;
    srv = start_server("1");
    assert_non_null(srv);
    SH_CALL_EXPECT(srv, "PUT", "/v1/cache/nb/warm", NULL, NULL, "text/plain", "warm-value", 204);
    warm(srv, "/v1/cache/nb/warm");

    assert_int_equal(rh_pause(redis), 0);
    /* A GET of a key L1 does not have: it waits on the stopped Redis. */
    int fd = sh_raw_connect(sh_port(srv));
    assert_true(fd >= 0);
    const char cold[] = "GET /v1/cache/nb/cold HTTP/1.1\r\nHost: a\r\n\r\n";
    long t0 = sh_now_ms();
    assert_int_equal(sh_raw_send(fd, cold, sizeof cold - 1), 0);
    sh_sleep_ms(20); /* the worker has taken it and asked Redis */

    /* Meanwhile, on other connections of the same (only) worker: L1 hits at once. */
    int pending_during = 0;
    long worst = 0;
    for (int i = 0; i < 5; i++) {
        sh_resp *r = sh_call(srv, "GET", "/v1/cache/nb/warm", NULL, NULL, NULL, NULL);
        SH_EXPECT_STATUS(r, 200);
        SH_EXPECT_HEADER(r, "X-Cache", "HIT-L1");
        assert_string_equal(r->body, "warm-value");
        worst = r->elapsed_ms > worst ? r->elapsed_ms : worst;
        if (r->elapsed_ms > L1_BOUND_MS)
            fprintf(stderr, "L1 hit %d took %ld ms while a GET waited on Redis\n", i,
                    r->elapsed_ms);
        assert_true(r->elapsed_ms <= L1_BOUND_MS);
        sh_resp_free(r);
        /* The cold GET is still waiting (else this proves nothing). */
        if (i == 0)
            pending_during = !sh_raw_readable(fd);
    }
    assert_true(pending_during);

    /* The waiting GET is answered, a miss, within the socket timeout and a margin. */
    size_t n = 0;
    int eof = 0;
    char *out = sh_raw_read_responses(fd, 1, 5000, &n, &eof);
    long took = sh_now_ms() - t0;
    close(fd);
    int st = first_status(out);
    if (st != 404 || took > PENDING_BOUND_MS || strstr(out, "X-Cache: MISS") == NULL ||
        strstr(out, "X-Cache-Reason: timeout\r\n") == NULL)
        fprintf(stderr, "GET waiting on a stopped Redis: after %ld ms: %.400s\n", took, out);
    assert_int_equal(st, 404);
    assert_non_null(strstr(out, "X-Cache-Reason: timeout\r\n")); /* a miss of memory alone */
    free(out);
    assert_true(took <= PENDING_BOUND_MS);

    /* A write while Redis hangs: acknowledged as L1-only, within the bound too. */
    sh_resp *r = sh_call(srv, "PUT", "/v1/cache/nb/during", NULL, NULL, NULL, "d");
    SH_EXPECT_STATUS(r, 204);
    SH_EXPECT_HEADER(r, "X-Cache-Write", "l1-only");
    expect_reason(r->what, sh_resp_header(r, "X-Cache-Reason"), "timeout", "breaker-open");
    assert_true(r->elapsed_ms <= PENDING_BOUND_MS);
    sh_resp_free(r);

    assert_int_equal(rh_resume(redis), 0);
    assert_true(sh_healthy(srv));
    int rc = sh_stop_check(srv);
    srv = NULL;
    assert_int_equal(rc, 0);
    (void)worst;
}

static json_t *health(sh_server *s)
{
    sh_resp *r = sh_call(s, "GET", "/cache/health", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    json_t *j = sh_resp_json(r);
    assert_non_null(j);
    sh_resp_free(r);
    return j;
}

typedef struct recover_arg {
    sh_server *s;
    int n;
} recover_arg;

/* A PUT answered 204 without X-Cache-Write: Redis took it. */
static int plain_write(void *p)
{
    recover_arg *a = p;
    char path[64];
    snprintf(path, sizeof path, "/v1/cache/rd/after-%d", a->n++);
    sh_resp *r = sh_call(a->s, "PUT", path, NULL, NULL, NULL, "x");
    int ok = r->status == 204 && sh_resp_header(r, "X-Cache-Write") == NULL &&
             sh_resp_header(r, "X-Cache-Reason") == NULL;
    sh_resp_free(r);
    if (!ok)
        sh_sleep_ms(100);
    return ok;
}

static int is_healthy(void *p)
{
    json_t *j = health(p);
    int ok = strcmp(json_string_value(json_object_get(j, "status")), "healthy") == 0;
    json_decref(j);
    if (!ok)
        sh_sleep_ms(50);
    return ok;
}

/* The value of /metrics' sample that starts with series (name and labels, then a space), or -1
 * when there is none. */
static long node_errors(const char *series)
{
    sh_resp *r = sh_call(srv, "GET", "/metrics", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    const char *p = strstr(r->body, series);
    long v = p ? atol(p + strlen(series)) : -1;
    if (p == NULL)
        fprintf(stderr, "no %s in /metrics:\n%s\n", series, r->body);
    sh_resp_free(r);
    return v;
}

static void test_killed_redis(void **state)
{
    (void)state;
    srv = start_server("2");
    assert_non_null(srv);
    const char *warmkeys[] = {"/v1/cache/rd/w1", "/v1/cache/rd/w2", "/v1/cache/rd/w3"};
    for (int i = 0; i < 3; i++) {
        SH_CALL_EXPECT(srv, "PUT", warmkeys[i], NULL, NULL, "text/plain", "warm", 204);
        warm(srv, warmkeys[i]);
    }
    json_t *j = health(srv);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "healthy");
    json_decref(j);
    char node[96];
    snprintf(node, sizeof node, "strata_redis_node_errors_total{node=\"%s:%d\"} ", rh_host(redis),
             rh_port(redis));
    long before = node_errors(node);
    assert_true(before >= 0); /* the series exists before any failure */

    assert_int_equal(rh_kill(redis), 0);

    /* Warm keys: still served, many times over. */
    for (int round = 0; round < 5; round++)
        for (int i = 0; i < 3; i++) {
            sh_resp *r = sh_call(srv, "GET", warmkeys[i], NULL, NULL, NULL, NULL);
            SH_EXPECT_STATUS(r, 200);
            assert_string_equal(r->body, "warm");
            /* Redis is dead: whatever answered, it was not Redis. */
            const char *xc = sh_resp_header(r, "X-Cache");
            assert_non_null(xc);
            if (strcmp(xc, "HIT-L2") == 0)
                fprintf(stderr, "%s (round %d) with Redis killed: X-Cache: %s\n", r->what, round,
                        xc);
            assert_string_not_equal(xc, "HIT-L2");
            sh_resp_free(r);
        }
    /* Writes: 204, L1 only, readable. */
    sh_resp *r = sh_call(srv, "PUT", "/v1/cache/rd/new", NULL, NULL, "text/plain", "during");
    SH_EXPECT_STATUS(r, 204);
    SH_EXPECT_HEADER(r, "X-Cache-Write", "l1-only");
    expect_reason(r->what, sh_resp_header(r, "X-Cache-Reason"), "redis-down", "breaker-open");
    sh_resp_free(r);
    r = sh_call(srv, "GET", "/v1/cache/rd/new", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    assert_string_equal(r->body, "during");
    sh_resp_free(r);
    r = sh_call(srv, "POST", "/v1/cache/rd/_mset", NULL, NULL, "application/json",
                "{\"items\":[{\"key\":\"m1\",\"value\":\"v\"}]}");
    SH_EXPECT_STATUS(r, 200);
    SH_EXPECT_HEADER(r, "X-Cache-Write", "l1-only");
    j = sh_resp_json(r);
    json_t *item = json_array_get(json_object_get(j, "items"), 0);
    assert_string_equal(json_string_value(json_object_get(item, "status")), "l1-only");
    expect_reason("_mset item", json_string_value(json_object_get(item, "reason")), "redis-down",
                  "breaker-open");
    expect_reason(r->what, sh_resp_header(r, "X-Cache-Reason"), "redis-down", "breaker-open");
    json_decref(j);
    sh_resp_free(r);
    r = sh_call(srv, "DELETE", "/v1/cache/rd/w3", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 204);
    SH_EXPECT_HEADER(r, "X-Cache-Write", "l1-only");
    expect_reason(r->what, sh_resp_header(r, "X-Cache-Reason"), "redis-down", "breaker-open");
    sh_resp_free(r);
    /* /metrics counts the failures against that Redis. */
    assert_true(node_errors(node) > before);
    /* A miss is a miss, not an error, and quick. */
    r = sh_call(srv, "GET", "/v1/cache/rd/never", NULL, NULL, NULL, NULL);
    SH_EXPECT_ERROR(r, 404, "not_found");
    SH_EXPECT_HEADER(r, "X-Cache", "MISS");
    expect_reason(r->what, sh_resp_header(r, "X-Cache-Reason"), "redis-down", "breaker-open");
    assert_true(r->elapsed_ms <= PENDING_BOUND_MS);
    sh_resp_free(r);
    r = sh_call(srv, "POST", "/v1/cache/rd/_mget", NULL, NULL, "application/json",
                "{\"keys\":[\"w1\",\"never\"]}");
    SH_EXPECT_STATUS(r, 200);
    j = sh_resp_json(r);
    item = json_array_get(json_object_get(j, "items"), 1);
    assert_true(json_is_false(json_object_get(item, "hit")));
    expect_reason("_mget miss", json_string_value(json_object_get(item, "reason")), "redis-down",
                  "breaker-open");
    json_decref(j);
    sh_resp_free(r);
    /* Health: degraded, Redis unavailable. */
    j = health(srv);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "degraded");
    assert_true(json_is_false(json_object_get(j, "redis_available")));
    assert_true(json_is_true(json_object_get(j, "redis_configured")));
    json_decref(j);
    /* The admin API keeps answering; only the key listing needs Redis (docs/api.md). */
    SH_CALL_EXPECT(srv, "GET", "/cache/stats", NULL, NULL, NULL, NULL, 200);
    r = sh_call(srv, "GET", "/cache/keys", NULL, NULL, NULL, NULL);
    SH_EXPECT_ERROR(r, 503, "redis_unavailable");
    sh_resp_free(r);
    SH_CALL_EXPECT(srv, "GET", "/metrics", NULL, NULL, NULL, NULL, 200);
    SH_CALL_EXPECT(srv, "GET", "/readyz", NULL, NULL, NULL, NULL, 200);

    /* Redis back (empty): writes reach it again within seconds, by themselves. */
    assert_int_equal(rh_restart(redis), 0);
    recover_arg ra = {srv, 0};
    long t0 = sh_now_ms();
    int back = rh_wait_for(plain_write, &ra, RECOVER_MS);
    if (!back)
        fprintf(stderr, "writes still l1-only %ld ms after Redis came back\n", sh_now_ms() - t0);
    assert_true(back);
    char stored[64];
    snprintf(stored, sizeof stored, "strata:rd:default:after-%d", ra.n - 1);
    redisReply *rr = rh_command(redis, "EXISTS %s", stored);
    assert_non_null(rr);
    assert_int_equal(rr->integer, 1);
    freeReplyObject(rr);
    /* Health follows: healthy again (the invalidation link reconnects too). */
    long t1 = sh_now_ms();
    int healthy = rh_wait_for(is_healthy, srv, RECOVER_MS);
    fprintf(stderr, "writes plain again %ld ms after the restart, health healthy %ld ms later\n",
            t1 - t0, sh_now_ms() - t1);
    j = health(srv);
    if (!healthy)
        fprintf(stderr, "health %ld ms after writes recovered: %s\n", sh_now_ms() - t1,
                json_dumps(j, JSON_COMPACT));
    assert_string_equal(json_string_value(json_object_get(j, "status")), "healthy");
    assert_true(json_is_true(json_object_get(j, "redis_available")));
    json_decref(j);
    /* The restarted Redis is empty, and the instance may have missed changes: what it held in
     * memory from before and during the outage is not served any more (docs/api.md). */
    const char *gone[] = {"/v1/cache/rd/w1", "/v1/cache/rd/w2", "/v1/cache/rd/new",
                          "/v1/cache/rd/m1"};
    for (size_t i = 0; i < sizeof gone / sizeof *gone; i++) {
        long deadline = sh_now_ms() + 5000, st = 0;
        for (;;) {
            r = sh_call(srv, "GET", gone[i], NULL, NULL, NULL, NULL);
            st = r->status;
            sh_resp_free(r);
            if (st == 404 || sh_now_ms() > deadline)
                break;
            sh_sleep_ms(50);
        }
        if (st != 404)
            fprintf(stderr, "GET %s after Redis came back (empty): %ld\n", gone[i], st);
        assert_int_equal(st, 404);
    }
    assert_true(sh_healthy(srv));
    int rc = sh_stop_check(srv);
    srv = NULL;
    assert_int_equal(rc, 0);
}

/* A read-only Redis (REDIS_READONLY=1 here; a replica is detected alike): writes say why. */
static void test_readonly_says_why(void **state)
{
    (void)state;
    char url[320];
    snprintf(url, sizeof url, "REDIS_URL=%s", rh_url(redis));
    const char *env[] = {url, "STRATA_WORKERS=1", "REDIS_READONLY=1", NULL};
    srv = sh_start(env, NULL);
    assert_non_null(srv);
    sh_resp *r = sh_call(srv, "PUT", "/v1/cache/ro/k", NULL, NULL, NULL, "v");
    SH_EXPECT_STATUS(r, 204);
    SH_EXPECT_HEADER(r, "X-Cache-Write", "l1-only");
    SH_EXPECT_HEADER(r, "X-Cache-Reason", "read-only");
    sh_resp_free(r);
    r = sh_call(srv, "POST", "/v1/invalidate", NULL, NULL, "application/json",
                "{\"tags\":[\"t\"]}");
    SH_EXPECT_STATUS(r, 200);
    SH_EXPECT_HEADER(r, "X-Cache-Reason", "read-only");
    sh_resp_free(r);
    r = sh_call(srv, "POST", "/cache/clear?namespace=ro", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    SH_EXPECT_HEADER(r, "X-Cache-Reason", "read-only");
    sh_resp_free(r);
    int rc = sh_stop_check(srv);
    srv = NULL;
    assert_int_equal(rc, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hung_redis_does_not_block_l1, setup_one, teardown_one),
        cmocka_unit_test_setup_teardown(test_killed_redis, setup_one, teardown_one),
        cmocka_unit_test_setup_teardown(test_readonly_says_why, setup_one, teardown_one),
    };
    SH_TEST_FILTER();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
