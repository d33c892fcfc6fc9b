/* test_server_admin_lanes.c: admin work that scans Redis never stalls anyone else (hardening
 * item 4).
 *
 * Against a Redis holding 200,000 keys, where every pattern clear is a full SCAN of the keyspace:
 * while one tenant's heavy pattern invalidations run, /cache/health, another tenant's tag
 * invalidation and that tenant's own pattern invalidation all answer long before the heavy work
 * ends; one tenant's queue of bulk jobs is bounded (503 admin_busy with Retry-After, others still
 * served); and a request's patterns, matched in one pass, remove and count exactly what they
 * removed one pattern at a time. Durations are compared with the heavy work's own, never with a
 * fixed wall-clock bound: the machine running this may be slow or busy.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "server_harness.h"

#define ADMIN      "admin-token-1"
#define ACME_WRITE "acme-write-1"
#define BETA_WRITE "beta-write-1"
#define FILLER     200000 /* keys that are not strata's: only what a SCAN walks through */
#define HEAVY      6      /* acme's heavy requests, sent at once */
#define PATTERNS   100    /* per heavy request: the most /v1/invalidate takes */

static rh_server *redis;
static char redis_env[320];
static const char *tokens =
    "STRATA_TOKENS=" ADMIN ":admin," ACME_WRITE ":write:acme," BETA_WRITE ":write:beta";

static int setup(void **state)
{
    (void)state;
    redis = rh_start(NULL);
    if (redis == NULL)
        return -1;
    if (rh_is_external(redis)) /* DEBUG POPULATE would fill a server that is not ours */
        return 0;
    snprintf(redis_env, sizeof redis_env, "REDIS_URL=%s", rh_url(redis));
    redisReply *r = rh_command(redis, "DEBUG POPULATE %d filler 8", FILLER);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rh_stop(redis);
    redis = NULL;
    return 0;
}

static sh_server *start(const char *extra)
{
    if (rh_is_external(redis))
        skip();
    const char *env[] = {redis_env, "STRATA_WORKERS=2", tokens, extra, NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    return s;
}

/* {"patterns":["heavy-0-*", ..., "heavy-99-*"]}: matches nothing, costs a full SCAN each. */
static char *heavy_body(void)
{
    size_t cap = 64 + PATTERNS * 24, len = 0;
    char *b = malloc(cap);
    assert_non_null(b);
    len += (size_t)snprintf(b + len, cap - len, "{\"patterns\":[");
    for (int i = 0; i < PATTERNS; i++)
        len += (size_t)snprintf(b + len, cap - len, "%s\"heavy-%d-*\"", i ? "," : "", i);
    snprintf(b + len, cap - len, "]}");
    return b;
}

/* One request on a fresh connection, sent from its own thread. */
typedef struct call {
    pthread_t thread;
    int port;
    const char *method, *path, *token, *body;
    long start_ms, end_ms, status;
    char code[64];       /* error.code of the answer, or "" */
    char retry_after[8]; /* its Retry-After, or "" */
} call;

static void *call_main(void *arg)
{
    call *c = arg;
    char auth[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->token ? c->token : "");
    const char *hdr[] = {"Content-Type: application/json", c->token ? auth : NULL, NULL};
    c->start_ms = sh_now_ms();
    /* Long enough for the old code's single thread, so the comparisons are what fails. */
    sh_resp *r = sh_request_port(c->port, c->method, c->path, hdr, c->body,
                                 c->body ? strlen(c->body) : 0, 180000);
    c->end_ms = sh_now_ms();
    c->status = r->status;
    json_t *j = sh_resp_json(r);
    const char *code = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    snprintf(c->code, sizeof c->code, "%s", code ? code : "");
    const char *ra = sh_resp_header(r, "Retry-After");
    snprintf(c->retry_after, sizeof c->retry_after, "%s", ra ? ra : "");
    if (c->status != 200 && c->status != 503)
        fprintf(stderr, "%s: %ld %s\n", r->what, c->status, r->body);
    json_decref(j);
    sh_resp_free(r);
    return NULL;
}

static void call_start(call *c, int port, const char *method, const char *path, const char *token,
                       const char *body)
{
    memset(c, 0, sizeof *c);
    c->port = port, c->method = method, c->path = path, c->token = token, c->body = body;
    assert_int_equal(pthread_create(&c->thread, NULL, call_main, c), 0);
}

/* n of acme's heavy invalidations at once. */
static void heavy_start(call *h, int n, int port, const char *body)
{
    for (int i = 0; i < n; i++)
        call_start(&h[i], port, "POST", "/v1/invalidate", ACME_WRITE, body);
}

/* Joins them; returns when the last one ended. */
static long join_all(call *c, int n)
{
    long last = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(c[i].thread, NULL);
        if (c[i].end_ms > last)
            last = c[i].end_ms;
    }
    return last;
}

/* While acme's heavy invalidations run, at once from three more clients: /cache/health answers
 * within a small fraction of their time, and beta's tag invalidation and beta's own pattern
 * invalidation are done before they are. Before the fix (one thread, one SCAN per pattern) each
 * of the three waited for all of acme's work. */
static void test_health_and_other_tenants_do_not_wait_for_bulk_work(void **state)
{
    (void)state;
    sh_server *s = start(NULL);
    int port = sh_port(s);
    char *body = heavy_body();
    call h[HEAVY], health, tag, pat;
    long t0 = sh_now_ms();
    heavy_start(h, HEAVY, port, body);
    sh_sleep_ms(150); /* their jobs are queued and the first runs */
    call_start(&health, port, "GET", "/cache/health", NULL, NULL);
    call_start(&tag, port, "POST", "/v1/invalidate", BETA_WRITE, "{\"tags\":[\"t1\"]}");
    call_start(&pat, port, "POST", "/v1/invalidate", BETA_WRITE, "{\"patterns\":[\"p-*\"]}");
    long last = join_all(h, HEAVY), bulk_ms = last - t0;
    join_all(&health, 1), join_all(&tag, 1), join_all(&pat, 1);
    long health_ms = health.end_ms - health.start_ms, tag_ms = tag.end_ms - tag.start_ms;
    fprintf(stderr,
            "heavy work (%d x %d patterns over %d keys): %ld ms; meanwhile health %ld ms, beta's "
            "tag invalidation %ld ms, beta's pattern invalidation %ld ms\n",
            HEAVY, PATTERNS, FILLER, bulk_ms, health_ms, tag_ms, pat.end_ms - pat.start_ms);
    for (int i = 0; i < HEAVY; i++)
        assert_int_equal(h[i].status, 200);
    assert_int_equal(health.status, 200);
    assert_int_equal(tag.status, 200);
    assert_int_equal(pat.status, 200);
    assert_true(health.end_ms < last);
    assert_true(health_ms * 4 < bulk_ms);
    assert_true(tag.end_ms < last);
    assert_true(tag_ms * 4 < bulk_ms);
    assert_true(pat.end_ms < last); /* fair: beta's one job did not wait for acme's six */
    free(body);
    assert_int_equal(sh_stop_check(s), 0);
}

/* One tenant cannot queue bulk work without bound: with STRATA_ADMIN_QUEUE=4 a tenant may have
 * one job waiting (a quarter), so of acme's heavy requests sent at once one runs, at most one
 * waits and the others are refused at once with 503 admin_busy and Retry-After; beta is still
 * served. */
static void test_bulk_queue_of_a_tenant_is_bounded(void **state)
{
    (void)state;
    sh_server *s = start("STRATA_ADMIN_QUEUE=4");
    int port = sh_port(s);
    char *body = heavy_body();
    call h[HEAVY], pat;
    heavy_start(h, HEAVY, port, body);
    sh_sleep_ms(150);
    call_start(&pat, port, "POST", "/v1/invalidate", BETA_WRITE, "{\"patterns\":[\"p-*\"]}");
    join_all(h, HEAVY);
    join_all(&pat, 1);
    assert_int_equal(pat.status, 200);
    int ok = 0, busy = 0;
    for (int i = 0; i < HEAVY; i++) {
        ok += h[i].status == 200;
        if (h[i].status == 503) { /* what a refused client reads */
            assert_string_equal(h[i].code, "admin_busy");
            assert_string_equal(h[i].retry_after, "1");
            busy++;
        }
    }
    fprintf(stderr, "acme: %d answered, %d refused as busy\n", ok, busy);
    assert_int_equal(ok + busy, HEAVY);
    /* One runs and at most one waits: whether the second sent finds the first already taken
     * off the queue (and waits) or not yet (and is refused) depends on the scheduler. */
    assert_true(ok >= 1 && ok <= 2);
    assert_true(busy >= HEAVY - 2);
    free(body);
    assert_int_equal(sh_stop_check(s), 0);
}

static json_int_t removed_by(sh_server *s, const char *token, const char *body)
{
    sh_resp *r = sh_call(s, "POST", "/v1/invalidate", token, NULL, "application/json", body);
    SH_EXPECT_STATUS(r, 200);
    json_t *j = sh_resp_json(r);
    assert_non_null(j);
    json_int_t n = json_integer_value(json_object_get(j, "keys_removed"));
    json_decref(j);
    sh_resp_free(r);
    return n;
}

static long status_of(sh_server *s, const char *token, const char *path)
{
    sh_resp *r = sh_call(s, "GET", path, token, NULL, NULL, NULL);
    long st = r->status;
    sh_resp_free(r);
    return st;
}

/* Several patterns in one pass remove what one pass per pattern did, each key counted once
 * (a1 matches two of them), in the request's tenant only, with Redis and without. */
static void test_patterns_in_one_pass_remove_exactly_what_they_match(void **state)
{
    (void)state;
    const char *keys[] = {"a1", "a2", "b1", "b2", "c1", "zz"};
    for (int with_redis = 1; with_redis >= 0; with_redis--) {
        sh_server *s = start(NULL);
        if (!with_redis) {
            sh_free(s);
            const char *env[] = {"STRATA_WORKERS=2", tokens, NULL};
            s = sh_start(env, NULL);
            assert_non_null(s);
        }
        char path[128];
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
            for (int ns = 1; ns <= 2; ns++) {
                snprintf(path, sizeof path, "/v1/cache/n%d/%s", ns, keys[i]);
                SH_CALL_EXPECT(s, "PUT", path, ACME_WRITE, NULL, NULL, "v", 204);
                SH_CALL_EXPECT(s, "PUT", path, BETA_WRITE, NULL, NULL, "v", 204);
            }
        assert_int_equal(
            removed_by(s, ACME_WRITE, "{\"patterns\":[\"a*\",\"*1\",\"none*\",\"a1\"]}"), 8);
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
            for (int ns = 1; ns <= 2; ns++) {
                snprintf(path, sizeof path, "/v1/cache/n%d/%s", ns, keys[i]);
                int gone = keys[i][0] == 'a' || keys[i][1] == '1';
                assert_int_equal(status_of(s, ACME_WRITE, path), gone ? 404 : 200);
                assert_int_equal(status_of(s, BETA_WRITE, path), 200);
            }
        /* Tags and patterns together: both done, the same counts. */
        sh_resp *r = sh_call(s, "POST", "/v1/invalidate", ACME_WRITE, NULL, "application/json",
                             "{\"tags\":[\"x\",\"y\"],\"patterns\":[\"b*\",\"zz\"]}");
        SH_EXPECT_STATUS(r, 200);
        json_t *j = sh_resp_json(r);
        assert_int_equal(json_integer_value(json_object_get(j, "tags_invalidated")), 2);
        assert_int_equal(json_integer_value(json_object_get(j, "keys_removed")), 4);
        json_decref(j);
        sh_resp_free(r);
        assert_int_equal(sh_stop_check(s), 0);
    }
}

int main(void)
{
    SH_TEST_FILTER();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_and_other_tenants_do_not_wait_for_bulk_work),
        cmocka_unit_test(test_bulk_queue_of_a_tenant_is_bounded),
        cmocka_unit_test(test_patterns_in_one_pass_remove_exactly_what_they_match),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
