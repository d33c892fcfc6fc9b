/* test_server_kv.c: the key/value API of strata serve over HTTP, against a real Redis: PUT, GET,
 * HEAD and DELETE with Content-Type, ETag, Age and X-Cache (HIT-L1 on the writing instance,
 * HIT-L2 on a second instance sharing the Redis, MISS), conditional requests (If-None-Match,
 * If-None-Match: *, If-Match), TTLs (?ttl= and Cache-Control: max-age), tags and patterns through
 * /v1/invalidate, keys holding %2F and UTF-8, and the batch calls _mget and _mset (text and
 * binary values, and all-or-nothing validation). docs/api.md and DESIGN.md "Rules that shape the
 * code". Two servers (A and B) share one redis-server started for this file. */
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

#define SETTLE_MS 300 /* time for invalidations in flight to arrive */

static rh_server *redis;
static sh_server *a, *b;
static char redis_env[320];

static int setup(void **state)
{
    (void)state;
    redis = rh_start(NULL);
    if (redis == NULL)
        return -1;
    snprintf(redis_env, sizeof redis_env, "REDIS_URL=%s", rh_url(redis));
    const char *env[] = {redis_env, "STRATA_WORKERS=2", NULL};
    a = sh_start(env, NULL);
    b = sh_start(env, NULL);
    return a && b ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    sh_free(a);
    sh_free(b);
    a = b = NULL;
    rh_stop(redis);
    redis = NULL;
    return 0;
}

/* Last: both servers exit 0 on SIGTERM (no leak under LeakSanitizer), logs clean. */
static void test_clean_exit(void **state)
{
    (void)state;
    int ra = sh_stop_check(a), rb = sh_stop_check(b);
    a = b = NULL;
    assert_int_equal(ra, 0);
    assert_int_equal(rb, 0);
}

/* The server log stays clean after each test. */
static void assert_servers_ok(void)
{
    assert_true(sh_healthy(a));
    assert_true(sh_healthy(b));
}

static sh_resp *put(sh_server *s, const char *path, const char *ctype, const char *body)
{
    return sh_call(s, "PUT", path, NULL, NULL, ctype, body);
}

static sh_resp *get(sh_server *s, const char *path)
{
    return sh_call(s, "GET", path, NULL, NULL, NULL, NULL);
}

static void expect_body(const sh_resp *r, const char *body)
{
    if (r->body_len != strlen(body) || memcmp(r->body, body, r->body_len) != 0)
        fprintf(stderr, "%s: body \"%s\", expected \"%s\"\n", r->what, r->body, body);
    assert_int_equal(r->body_len, strlen(body));
    assert_memory_equal(r->body, body, r->body_len);
}

static int etag_ok(const char *etag)
{
    if (etag == NULL || strlen(etag) < 3 || etag[0] != '"' || etag[strlen(etag) - 1] != '"')
        return 0;
    return 1;
}

/* Redis EXISTS on the stored key of (ns, tenant, key). */
static long long redis_exists(const char *ns, const char *tenant, const char *key)
{
    redisReply *r = rh_command(redis, "EXISTS strata:%s:%s:%s", ns, tenant, key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

/* GETs path on s until it answers 200 with X-Cache: HIT-L1 (the first read after a write may
 * come from Redis: the instance's own write can come back as an invalidation, DESIGN.md). Each
 * answer must be a 200 HIT-L1 or HIT-L2. Fails after 20 reads. */
static void warm(sh_server *s, const char *path)
{
    /* The invalidation of this instance's own write comes back through the coherence link a
     * moment after the write is acknowledged, and drops the L1 copy: let it arrive first. */
    sh_sleep_ms(SETTLE_MS);
    for (int i = 0; i < 20; i++) {
        sh_resp *r = get(s, path);
        SH_EXPECT_STATUS(r, 200);
        const char *xc = sh_resp_header(r, "X-Cache");
        assert_non_null(xc);
        if (strcmp(xc, "HIT-L1") != 0 && strcmp(xc, "HIT-L2") != 0)
            fprintf(stderr, "%s: X-Cache %s\n", r->what, xc);
        assert_true(strcmp(xc, "HIT-L1") == 0 || strcmp(xc, "HIT-L2") == 0);
        int l1 = strcmp(xc, "HIT-L1") == 0;
        sh_resp_free(r);
        if (l1)
            return;
        sh_sleep_ms(10);
    }
    fail_msg("%s never answered HIT-L1", path);
}

static void test_put_get_head_delete(void **state)
{
    (void)state;
    sh_resp *r = put(a, "/v1/cache/kv1/greeting", "text/plain; charset=utf-8", "hello world");
    SH_EXPECT_STATUS(r, 204);
    SH_EXPECT_HEADER(r, "X-Cache-Write", NULL);
    assert_int_equal(r->body_len, 0);
    sh_resp_free(r);
    assert_int_equal(redis_exists("kv1", "default", "greeting"), 1);

    warm(a, "/v1/cache/kv1/greeting");
    r = get(a, "/v1/cache/kv1/greeting");
    SH_EXPECT_STATUS(r, 200);
    expect_body(r, "hello world");
    SH_EXPECT_HEADER(r, "Content-Type", "text/plain; charset=utf-8");
    SH_EXPECT_HEADER(r, "X-Cache", "HIT-L1");
    const char *etag_h = sh_resp_header(r, "ETag");
    assert_true(etag_ok(etag_h));
    char etag[64];
    snprintf(etag, sizeof etag, "%s", etag_h);
    assert_non_null(sh_resp_header(r, "Age"));
    assert_true(atol(sh_resp_header(r, "Age")) >= 0 && atol(sh_resp_header(r, "Age")) <= 1);
    sh_resp_free(r);

    /* HEAD: the headers of a GET, no body. */
    r = sh_call(a, "HEAD", "/v1/cache/kv1/greeting", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    assert_int_equal(r->body_len, 0);
    SH_EXPECT_HEADER(r, "Content-Length", "11");
    SH_EXPECT_HEADER(r, "ETag", etag);
    SH_EXPECT_HEADER(r, "Content-Type", "text/plain; charset=utf-8");
    SH_EXPECT_HEADER(r, "X-Cache", "HIT-L1");
    sh_resp_free(r);

    /* Age counts seconds since the write. */
    sh_sleep_ms(1200);
    r = get(a, "/v1/cache/kv1/greeting");
    SH_EXPECT_STATUS(r, 200);
    assert_non_null(sh_resp_header(r, "Age"));
    assert_true(atol(sh_resp_header(r, "Age")) >= 1 && atol(sh_resp_header(r, "Age")) <= 3);
    SH_EXPECT_HEADER(r, "ETag", etag); /* the same entry: the same ETag */
    sh_resp_free(r);

    /* No Content-Type given: application/octet-stream. */
    r = put(a, "/v1/cache/kv1/raw", NULL, "bytes");
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    r = get(a, "/v1/cache/kv1/raw");
    SH_EXPECT_STATUS(r, 200);
    SH_EXPECT_HEADER(r, "Content-Type", "application/octet-stream");
    expect_body(r, "bytes");
    sh_resp_free(r);

    /* An empty value is a value. */
    r = put(a, "/v1/cache/kv1/empty", "text/plain", "");
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    r = get(b, "/v1/cache/kv1/empty");
    SH_EXPECT_STATUS(r, 200);
    assert_int_equal(r->body_len, 0);
    sh_resp_free(r);

    /* DELETE: gone from both tiers and from the other instance. */
    r = get(b, "/v1/cache/kv1/greeting"); /* B now holds it in L1 */
    SH_EXPECT_STATUS(r, 200);
    sh_resp_free(r);
    r = sh_call(a, "DELETE", "/v1/cache/kv1/greeting", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 204);
    SH_EXPECT_HEADER(r, "X-Cache-Write", NULL);
    sh_resp_free(r);
    assert_int_equal(redis_exists("kv1", "default", "greeting"), 0);
    r = get(a, "/v1/cache/kv1/greeting");
    SH_EXPECT_ERROR(r, 404, "not_found");
    SH_EXPECT_HEADER(r, "X-Cache", "MISS");
    sh_resp_free(r);
    /* B drops its L1 copy through the invalidation link (coherence window: 2 s here). */
    long deadline = sh_now_ms() + 2000;
    long status = 0;
    do {
        r = get(b, "/v1/cache/kv1/greeting");
        status = r->status;
        sh_resp_free(r);
        if (status != 404)
            sh_sleep_ms(20);
    } while (status != 404 && sh_now_ms() < deadline);
    assert_int_equal(status, 404);
    r = sh_call(a, "HEAD", "/v1/cache/kv1/greeting", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 404);
    assert_int_equal(r->body_len, 0);
    SH_EXPECT_HEADER(r, "X-Cache", "MISS");
    sh_resp_free(r);
    assert_servers_ok();
}

static void test_tiers(void **state)
{
    (void)state;
    sh_resp *r = put(a, "/v1/cache/kv2/shared", "application/json", "{\"n\":1}");
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    warm(a, "/v1/cache/kv2/shared");
    r = get(a, "/v1/cache/kv2/shared");
    SH_EXPECT_STATUS(r, 200);
    SH_EXPECT_HEADER(r, "X-Cache", "HIT-L1");
    char etag[64];
    assert_true(etag_ok(sh_resp_header(r, "ETag")));
    snprintf(etag, sizeof etag, "%s", sh_resp_header(r, "ETag"));
    sh_resp_free(r);

    /* B never saw it: from Redis, then from its own L1 (once A's write's invalidation, which
     * reaches every instance, has come and gone). */
    sh_sleep_ms(SETTLE_MS);
    r = get(b, "/v1/cache/kv2/shared");
    SH_EXPECT_STATUS(r, 200);
    SH_EXPECT_HEADER(r, "X-Cache", "HIT-L2");
    SH_EXPECT_HEADER(r, "Content-Type", "application/json");
    SH_EXPECT_HEADER(r, "ETag", etag); /* one entry, one ETag, whichever instance answers */
    expect_body(r, "{\"n\":1}");
    sh_resp_free(r);
    r = get(b, "/v1/cache/kv2/shared");
    SH_EXPECT_STATUS(r, 200);
    SH_EXPECT_HEADER(r, "X-Cache", "HIT-L1");
    expect_body(r, "{\"n\":1}");
    sh_resp_free(r);

    r = get(b, "/v1/cache/kv2/nobody");
    SH_EXPECT_ERROR(r, 404, "not_found");
    SH_EXPECT_HEADER(r, "X-Cache", "MISS");
    sh_resp_free(r);

    /* An overwrite through A reaches B (coherence window: 2 s here). */
    r = put(a, "/v1/cache/kv2/shared", "application/json", "{\"n\":2}");
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    long deadline = sh_now_ms() + 2000;
    int seen = 0;
    while (!seen) {
        r = get(b, "/v1/cache/kv2/shared");
        seen = r->status == 200 && r->body_len == 7 && memcmp(r->body, "{\"n\":2}", 7) == 0;
        sh_resp_free(r);
        if (seen || sh_now_ms() > deadline)
            break;
        sh_sleep_ms(20);
    }
    assert_true(seen);
    assert_servers_ok();
}

static void test_conditional(void **state)
{
    (void)state;
    sh_resp *r = put(a, "/v1/cache/kv3/doc", "text/plain", "v1");
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    r = get(a, "/v1/cache/kv3/doc");
    SH_EXPECT_STATUS(r, 200);
    char etag[64], hdr[128];
    assert_true(etag_ok(sh_resp_header(r, "ETag")));
    snprintf(etag, sizeof etag, "%s", sh_resp_header(r, "ETag"));
    sh_resp_free(r);

    /* If-None-Match with the current ETag: 304, no body, the ETag again. */
    snprintf(hdr, sizeof hdr, "If-None-Match: %s", etag);
    const char *inm[] = {hdr, NULL};
    r = sh_request(a, "GET", "/v1/cache/kv3/doc", inm, NULL, 0);
    SH_EXPECT_STATUS(r, 304);
    assert_int_equal(r->body_len, 0);
    SH_EXPECT_HEADER(r, "ETag", etag);
    sh_resp_free(r);
    r = sh_request(b, "GET", "/v1/cache/kv3/doc", inm, NULL, 0); /* via Redis too */
    SH_EXPECT_STATUS(r, 304);
    sh_resp_free(r);
    snprintf(hdr, sizeof hdr, "If-None-Match: \"nope\", W/%s", etag); /* weak, in a list */
    r = sh_request(a, "GET", "/v1/cache/kv3/doc", inm, NULL, 0);
    SH_EXPECT_STATUS(r, 304);
    sh_resp_free(r);
    snprintf(hdr, sizeof hdr, "If-None-Match: \"0123456789abcdef\"");
    r = sh_request(a, "GET", "/v1/cache/kv3/doc", inm, NULL, 0);
    SH_EXPECT_STATUS(r, 200);
    expect_body(r, "v1");
    sh_resp_free(r);

    /* If-None-Match: * on PUT: create only if absent. */
    const char *star[] = {"If-None-Match: *", "Content-Type: text/plain", NULL};
    r = sh_request(a, "PUT", "/v1/cache/kv3/doc", star, "v2", 2);
    SH_EXPECT_ERROR(r, 412, "precondition_failed");
    sh_resp_free(r);
    r = get(a, "/v1/cache/kv3/doc");
    SH_EXPECT_STATUS(r, 200);
    expect_body(r, "v1");
    sh_resp_free(r);
    r = sh_request(b, "PUT", "/v1/cache/kv3/doc", star, "v2", 2); /* B only knows it via Redis */
    SH_EXPECT_ERROR(r, 412, "precondition_failed");
    sh_resp_free(r);
    r = sh_request(a, "PUT", "/v1/cache/kv3/fresh", star, "new", 3);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    r = get(b, "/v1/cache/kv3/fresh");
    SH_EXPECT_STATUS(r, 200);
    expect_body(r, "new");
    sh_resp_free(r);

    /* If-Match: the current ETag writes, another one does not. */
    snprintf(hdr, sizeof hdr, "If-Match: \"0000000000000000\"");
    const char *im[] = {hdr, "Content-Type: text/plain", NULL};
    r = sh_request(a, "PUT", "/v1/cache/kv3/doc", im, "v3", 2);
    SH_EXPECT_ERROR(r, 412, "precondition_failed");
    sh_resp_free(r);
    r = get(a, "/v1/cache/kv3/doc");
    SH_EXPECT_STATUS(r, 200);
    expect_body(r, "v1");
    sh_resp_free(r);
    snprintf(hdr, sizeof hdr, "If-Match: %s", etag);
    r = sh_request(a, "PUT", "/v1/cache/kv3/doc", im, "v4", 2);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    r = get(a, "/v1/cache/kv3/doc");
    SH_EXPECT_STATUS(r, 200);
    expect_body(r, "v4");
    assert_true(etag_ok(sh_resp_header(r, "ETag")));
    assert_string_not_equal(sh_resp_header(r, "ETag"), etag);
    sh_resp_free(r);
    /* The old ETag no longer matches. */
    r = sh_request(a, "PUT", "/v1/cache/kv3/doc", im, "v5", 2);
    SH_EXPECT_ERROR(r, 412, "precondition_failed");
    sh_resp_free(r);
    /* If-Match on an absent key: 412. */
    r = sh_request(a, "PUT", "/v1/cache/kv3/absent", im, "v6", 2);
    SH_EXPECT_ERROR(r, 412, "precondition_failed");
    sh_resp_free(r);
    r = get(a, "/v1/cache/kv3/absent");
    SH_EXPECT_STATUS(r, 404);
    sh_resp_free(r);
    assert_servers_ok();
}

static long long redis_pttl(const char *stored)
{
    redisReply *r = rh_command(redis, "PTTL %s", stored);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static void test_ttl(void **state)
{
    (void)state;
    sh_resp *r = put(a, "/v1/cache/kv4/q?ttl=1", "text/plain", "short");
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    const char *cc[] = {"Cache-Control: max-age=1", "Content-Type: text/plain", NULL};
    r = sh_request(a, "PUT", "/v1/cache/kv4/c", cc, "short", 5);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    r = put(a, "/v1/cache/kv4/long?ttl=300", "text/plain", "long");
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);

    /* Redis holds the TTL (±10% jitter). */
    long long q = redis_pttl("strata:kv4:default:q"), c = redis_pttl("strata:kv4:default:c");
    long long l = redis_pttl("strata:kv4:default:long");
    if (q <= 0 || q > 1100 || c <= 0 || c > 1100 || l < 250000 || l > 330000)
        fprintf(stderr, "PTTL q=%lld c=%lld long=%lld\n", q, c, l);
    assert_true(q > 0 && q <= 1100);
    assert_true(c > 0 && c <= 1100);
    assert_true(l >= 250000 && l <= 330000);

    r = get(a, "/v1/cache/kv4/q");
    SH_EXPECT_STATUS(r, 200);
    assert_non_null(sh_resp_header(r, "Cache-Control"));
    assert_true(strncmp(sh_resp_header(r, "Cache-Control"), "max-age=", 8) == 0);
    assert_true(atol(sh_resp_header(r, "Cache-Control") + 8) <= 1);
    sh_resp_free(r);
    r = get(b, "/v1/cache/kv4/c"); /* B holds a copy in L1 too */
    SH_EXPECT_STATUS(r, 200);
    sh_resp_free(r);

    sh_sleep_ms(1500);
    const char *gone[] = {"/v1/cache/kv4/q", "/v1/cache/kv4/c"};
    for (int i = 0; i < 2; i++) {
        r = get(a, gone[i]);
        SH_EXPECT_ERROR(r, 404, "not_found");
        SH_EXPECT_HEADER(r, "X-Cache", "MISS");
        sh_resp_free(r);
        r = get(b, gone[i]);
        SH_EXPECT_STATUS(r, 404);
        sh_resp_free(r);
    }
    r = get(b, "/v1/cache/kv4/long");
    SH_EXPECT_STATUS(r, 200);
    sh_resp_free(r);

    /* Bad TTLs are refused, nothing written. */
    const char *bad[] = {"/v1/cache/kv4/x?ttl=0", "/v1/cache/kv4/x?ttl=abc",
                         "/v1/cache/kv4/x?ttl=-5", "/v1/cache/kv4/x?ttl=1.5"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = put(a, bad[i], NULL, "x");
        SH_EXPECT_ERROR(r, 400, "bad_ttl");
        sh_resp_free(r);
    }
    const char *badcc[] = {"Cache-Control: max-age=0", NULL};
    r = sh_request(a, "PUT", "/v1/cache/kv4/x", badcc, "x", 1);
    SH_EXPECT_ERROR(r, 400, "bad_ttl");
    sh_resp_free(r);
    /* One past the longest TTL: the refusal states the maximum (hardening item 18). */
    const char *toolong[] = {"Cache-Control: max-age=315360001", NULL};
    r = put(a, "/v1/cache/kv4/x?ttl=315360001", NULL, "x");
    SH_EXPECT_ERROR(r, 400, "bad_ttl");
    assert_non_null(strstr(r->body, "from 1 to 315360000 (10 years)"));
    sh_resp_free(r);
    r = sh_request(a, "PUT", "/v1/cache/kv4/x", toolong, "x", 1);
    SH_EXPECT_ERROR(r, 400, "bad_ttl");
    assert_non_null(strstr(r->body, "from 1 to 315360000 (10 years)"));
    sh_resp_free(r);
    r = sh_call(a, "POST", "/v1/cache/kv4/_mset", NULL, NULL, "application/json",
                "{\"items\":[{\"key\":\"x\",\"value\":\"x\",\"ttl\":315360001}]}");
    assert_non_null(strstr(r->body, "from 1 to 315360000 (10 years)"));
    sh_resp_free(r);
    r = get(a, "/v1/cache/kv4/x");
    SH_EXPECT_STATUS(r, 404);
    sh_resp_free(r);
    assert_servers_ok();
}

static void expect_get(sh_server *s, const char *path, long status)
{
    sh_resp *r = get(s, path);
    SH_EXPECT_STATUS(r, status);
    sh_resp_free(r);
}

/* Polls until GET path on s answers status (up to ms). */
static void eventually_get(sh_server *s, const char *path, long status, long ms)
{
    long deadline = sh_now_ms() + ms;
    for (;;) {
        sh_resp *r = get(s, path);
        long got = r->status;
        if (got == status || sh_now_ms() > deadline) {
            SH_EXPECT_STATUS(r, status);
            sh_resp_free(r);
            return;
        }
        sh_resp_free(r);
        sh_sleep_ms(20);
    }
}

static void test_tags_and_patterns(void **state)
{
    (void)state;
    const char *writes[][2] = {{"/v1/cache/kv5/a?tags=red,blue", "a"},
                               {"/v1/cache/kv5/b?tags=blue", "b"},
                               {"/v1/cache/kv5/c?tags=green", "c"},
                               {"/v1/cache/kv5/d", "d"}};
    for (size_t i = 0; i < 4; i++) {
        sh_resp *r = put(a, writes[i][0], "text/plain", writes[i][1]);
        SH_EXPECT_STATUS(r, 204);
        sh_resp_free(r);
    }
    expect_get(b, "/v1/cache/kv5/a", 200); /* B caches a copy of a */
    sh_resp *r = sh_call(a, "POST", "/v1/invalidate", NULL, NULL, "application/json",
                         "{\"tags\":[\"blue\"]}");
    SH_EXPECT_STATUS(r, 200);
    json_t *j = sh_resp_json(r);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "tags_invalidated")), 1);
    json_decref(j);
    sh_resp_free(r);
    expect_get(a, "/v1/cache/kv5/a", 404);
    expect_get(a, "/v1/cache/kv5/b", 404);
    expect_get(a, "/v1/cache/kv5/c", 200);
    expect_get(a, "/v1/cache/kv5/d", 200);
    eventually_get(b, "/v1/cache/kv5/a", 404, 2000);
    expect_get(b, "/v1/cache/kv5/b", 404);
    expect_get(b, "/v1/cache/kv5/c", 200);
    /* A write after the invalidation carries the new tag version: readable. */
    r = put(a, "/v1/cache/kv5/b?tags=blue", "text/plain", "b2");
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    expect_get(a, "/v1/cache/kv5/b", 200);
    expect_get(b, "/v1/cache/kv5/b", 200);

    /* Patterns: Redis glob on the user key, in this tenant. */
    const char *pkeys[] = {"pat-user:1", "pat-user:2", "pat-users", "pat-item:1"};
    for (size_t i = 0; i < 4; i++) {
        char path[128];
        snprintf(path, sizeof path, "/v1/cache/kv5/%s", pkeys[i]);
        r = put(a, path, NULL, "x");
        SH_EXPECT_STATUS(r, 204);
        sh_resp_free(r);
        expect_get(b, path, 200);
    }
    r = sh_call(a, "POST", "/v1/invalidate", NULL, NULL, "application/json",
                "{\"patterns\":[\"pat-user:*\"]}");
    SH_EXPECT_STATUS(r, 200);
    j = sh_resp_json(r);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "keys_removed")), 2);
    json_decref(j);
    sh_resp_free(r);
    expect_get(a, "/v1/cache/kv5/pat-user:1", 404);
    expect_get(a, "/v1/cache/kv5/pat-user:2", 404);
    expect_get(a, "/v1/cache/kv5/pat-users", 200);
    expect_get(a, "/v1/cache/kv5/pat-item:1", 200);
    eventually_get(b, "/v1/cache/kv5/pat-user:1", 404, 2000);
    eventually_get(b, "/v1/cache/kv5/pat-user:2", 404, 2000);
    expect_get(b, "/v1/cache/kv5/pat-users", 200);
    assert_int_equal(redis_exists("kv5", "default", "pat-user:1"), 0);
    assert_int_equal(redis_exists("kv5", "default", "pat-users"), 1);
    assert_servers_ok();
}

static void test_special_keys(void **state)
{
    (void)state;
    /* %2F stays inside the key. */
    sh_resp *r = put(a, "/v1/cache/kv6/a%2Fb", "text/plain", "slash");
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    assert_int_equal(redis_exists("kv6", "default", "a/b"), 1);
    r = get(b, "/v1/cache/kv6/a%2fb"); /* lower-case hex: the same key */
    SH_EXPECT_STATUS(r, 200);
    expect_body(r, "slash");
    sh_resp_free(r);
    r = get(a, "/v1/cache/kv6/a/b"); /* a real '/' is another path, not this key */
    SH_EXPECT_STATUS(r, 404);
    SH_EXPECT_HEADER(r, "X-Cache", NULL);
    sh_resp_free(r);

    /* UTF-8 keys, stored as their bytes. */
    const char *key = "caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x98\x80";
    char *enc = sh_urlencode(key, strlen(key));
    char path[512];
    snprintf(path, sizeof path, "/v1/cache/kv6/%s", enc);
    r = put(a, path, "text/plain; charset=utf-8", "unicode \xe2\x9c\x93");
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    assert_int_equal(redis_exists("kv6", "default", key), 1);
    r = get(b, path);
    SH_EXPECT_STATUS(r, 200);
    expect_body(r, "unicode \xe2\x9c\x93");
    sh_resp_free(r);
    free(enc);
    /* Listed as the same text. */
    r = get(a, "/cache/keys?namespace=kv6&limit=1000");
    SH_EXPECT_STATUS(r, 200);
    json_t *j = sh_resp_json(r);
    json_t *keys = json_object_get(j, "keys");
    int found_utf8 = 0, found_slash = 0;
    for (size_t i = 0; i < json_array_size(keys); i++) {
        const char *k = json_string_value(json_object_get(json_array_get(keys, i), "key"));
        found_utf8 += k && strcmp(k, key) == 0;
        found_slash += k && strcmp(k, "a/b") == 0;
    }
    json_decref(j);
    sh_resp_free(r);
    assert_int_equal(found_utf8, 1);
    assert_int_equal(found_slash, 1);

    /* A key of exactly 512 bytes is fine (two-byte characters, percent-encoded). */
    char big[513];
    for (int i = 0; i < 512; i += 2)
        big[i] = '\xc3', big[i + 1] = '\xa9';
    big[512] = '\0';
    enc = sh_urlencode(big, 512);
    char *bpath = malloc(strlen(enc) + 32);
    sprintf(bpath, "/v1/cache/kv6/%s", enc);
    r = put(a, bpath, NULL, "max");
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    r = get(b, bpath);
    SH_EXPECT_STATUS(r, 200);
    expect_body(r, "max");
    sh_resp_free(r);
    free(bpath);
    free(enc);
    assert_servers_ok();
}

static json_t *item_of(json_t *items, size_t i, const char *key)
{
    json_t *it = json_array_get(items, i);
    assert_non_null(it);
    assert_string_equal(json_string_value(json_object_get(it, "key")), key);
    return it;
}

static void test_mget_mset(void **state)
{
    (void)state;
    const unsigned char bin[] = {0x00, 0xff, 0x10, 0x80, 0xfe, 0xc3, 0x28, 0x00};
    char *b64 = sh_b64_encode(bin, sizeof bin);
    char body[2048];
    snprintf(body, sizeof body,
             "{\"items\":[{\"key\":\"u1\",\"value\":\"h\xc3\xa9llo w\xc3\xb6rld\"},"
             "{\"key\":\"b1\",\"value_b64\":\"%s\"},"
             "{\"key\":\"t1\",\"value\":\"x\",\"ttl\":60,\"content_type\":\"text/plain\","
             "\"tags\":[\"mt\"]},"
             "{\"key\":\"caf\xc3\xa9\",\"value\":\"\"}]}",
             b64);
    sh_resp *r = sh_call(a, "POST", "/v1/cache/kv7/_mset", NULL, NULL, "application/json", body);
    SH_EXPECT_STATUS(r, 200);
    SH_EXPECT_HEADER(r, "X-Cache-Write", NULL);
    json_t *j = sh_resp_json(r);
    json_t *items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 4);
    const char *keys[] = {"u1", "b1", "t1", "caf\xc3\xa9"};
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(
            json_string_value(json_object_get(item_of(items, i, keys[i]), "status")), "ok");
    json_decref(j);
    sh_resp_free(r);

    /* The binary value comes back byte for byte over GET... */
    r = get(b, "/v1/cache/kv7/b1");
    SH_EXPECT_STATUS(r, 200);
    assert_int_equal(r->body_len, sizeof bin);
    assert_memory_equal(r->body, bin, sizeof bin);
    sh_resp_free(r);
    r = get(b, "/v1/cache/kv7/t1");
    SH_EXPECT_STATUS(r, 200);
    SH_EXPECT_HEADER(r, "Content-Type", "text/plain");
    sh_resp_free(r);

    /* ... and as value_b64 over _mget; text as value; misses in place. */
    r = sh_call(b, "POST", "/v1/cache/kv7/_mget", NULL, NULL, "application/json",
                "{\"keys\":[\"u1\",\"b1\",\"missing\",\"t1\",\"caf\xc3\xa9\",\"u1\"]}");
    SH_EXPECT_STATUS(r, 200);
    j = sh_resp_json(r);
    assert_non_null(j);
    items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 6);
    json_t *it = item_of(items, 0, "u1");
    assert_true(json_is_true(json_object_get(it, "hit")));
    assert_string_equal(json_string_value(json_object_get(it, "value")),
                        "h\xc3\xa9llo w\xc3\xb6rld");
    assert_null(json_object_get(it, "value_b64"));
    it = item_of(items, 1, "b1");
    assert_true(json_is_true(json_object_get(it, "hit")));
    assert_null(json_object_get(it, "value"));
    assert_non_null(json_string_value(json_object_get(it, "value_b64")));
    size_t blen = 0;
    unsigned char *dec = sh_b64_decode(json_string_value(json_object_get(it, "value_b64")), &blen);
    assert_non_null(dec);
    assert_int_equal(blen, sizeof bin);
    assert_memory_equal(dec, bin, sizeof bin);
    free(dec);
    it = item_of(items, 2, "missing");
    assert_true(json_is_false(json_object_get(it, "hit")));
    assert_null(json_object_get(it, "value"));
    it = item_of(items, 3, "t1");
    assert_true(json_is_true(json_object_get(it, "hit")));
    assert_string_equal(json_string_value(json_object_get(it, "content_type")), "text/plain");
    assert_true(json_integer_value(json_object_get(it, "ttl")) >= 50 &&
                json_integer_value(json_object_get(it, "ttl")) <= 66);
    it = item_of(items, 4, "caf\xc3\xa9");
    assert_true(json_is_true(json_object_get(it, "hit")));
    assert_string_equal(json_string_value(json_object_get(it, "value")), "");
    it = item_of(items, 5, "u1");
    assert_true(json_is_true(json_object_get(it, "hit")));
    json_decref(j);
    sh_resp_free(r);

    /* The _mset tags count: invalidating "mt" drops t1. */
    r = sh_call(a, "POST", "/v1/invalidate", NULL, NULL, "application/json", "{\"tags\":[\"mt\"]}");
    SH_EXPECT_STATUS(r, 200);
    sh_resp_free(r);
    expect_get(a, "/v1/cache/kv7/t1", 404);

    /* Bad items: 400 and nothing written, whichever item is wrong. */
    snprintf(body, sizeof body, "%s", "");
    const char *bad[] = {
        "{\"items\":[{\"key\":\"g1\",\"value\":\"ok\"},{\"key\":\"g2\"}]}",
        "{\"items\":[{\"key\":\"g1\",\"value\":\"ok\"},{\"key\":\"g2\",\"value\":\"a\","
        "\"value_b64\":\"YQ==\"}]}",
        "{\"items\":[{\"key\":\"g1\",\"value\":\"ok\"},{\"key\":\"g2\",\"value_b64\":\"!!!\"}]}",
        "{\"items\":[{\"key\":\"g1\",\"value\":\"ok\"},{\"key\":\"\",\"value\":\"a\"}]}",
        "{\"items\":[{\"key\":\"g1\",\"value\":\"ok\"},{\"key\":\"g2\",\"value\":\"a\",\"ttl\":0}]"
        "}",
        "{\"items\":[{\"key\":\"g1\",\"value\":\"ok\"},{\"key\":\"g2\",\"value\":\"a\",\"ttl\":"
        "\"60\"}]}",
        "{\"items\":[{\"key\":\"g1\",\"value\":\"ok\"},{\"key\":\"g2\",\"value\":5}]}",
        "{\"items\":[{\"key\":\"g1\",\"value\":\"ok\"},{\"key\":7,\"value\":\"a\"}]}",
        "{\"items\":[{\"key\":\"g1\",\"value\":\"ok\"},{\"key\":\"g\\u0001\",\"value\":\"a\"}]}",
        "{\"items\":[{\"key\":\"g1\",\"value\":\"ok\"},\"g2\"]}",
        "{\"items\":[{\"key\":\"g1\",\"value\":\"ok\"},{\"key\":\"g2\",\"value\":\"a\","
        "\"tags\":\"t\"}]}",
        "{\"items\":[]}",
        "{\"items\":{\"key\":\"g1\",\"value\":\"ok\"}}",
        "{\"keys\":[\"g1\"]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = sh_call(a, "POST", "/v1/cache/kv7/_mset", NULL, NULL, "application/json", bad[i]);
        if (r->status != 400)
            fprintf(stderr, "_mset body %zu: %s\n", i, bad[i]);
        SH_EXPECT_STATUS(r, 400);
        assert_true(sh_resp_is_error(r, NULL));
        sh_resp_free(r);
        expect_get(a, "/v1/cache/kv7/g1", 404);
        expect_get(a, "/v1/cache/kv7/g2", 404);
    }
    /* A key over 512 bytes in a batch: 400 too. */
    char *longbody = malloc(2048);
    char longkey[600];
    memset(longkey, 'k', 513);
    longkey[513] = '\0';
    snprintf(longbody, 2048,
             "{\"items\":[{\"key\":\"g1\",\"value\":\"ok\"},{\"key\":\"%s\","
             "\"value\":\"a\"}]}",
             longkey);
    r = sh_call(a, "POST", "/v1/cache/kv7/_mset", NULL, NULL, "application/json", longbody);
    SH_EXPECT_ERROR(r, 400, NULL);
    sh_resp_free(r);
    expect_get(a, "/v1/cache/kv7/g1", 404);
    snprintf(longbody, 2048, "{\"keys\":[\"u1\",\"%s\"]}", longkey);
    r = sh_call(a, "POST", "/v1/cache/kv7/_mget", NULL, NULL, "application/json", longbody);
    SH_EXPECT_ERROR(r, 400, NULL);
    sh_resp_free(r);
    free(longbody);

    const char *badget[] = {"{\"keys\":[]}",
                            "{\"keys\":\"u1\"}",
                            "{\"keys\":[\"u1\",3]}",
                            "{\"keys\":[\"\"]}",
                            "{}",
                            "[\"u1\"]",
                            "{\"keys\":[\"a\\u0000b\"]}"};
    for (size_t i = 0; i < sizeof badget / sizeof *badget; i++) {
        r = sh_call(a, "POST", "/v1/cache/kv7/_mget", NULL, NULL, "application/json", badget[i]);
        if (r->status != 400)
            fprintf(stderr, "_mget body %zu: %s\n", i, badget[i]);
        SH_EXPECT_ERROR(r, 400, NULL);
        sh_resp_free(r);
    }
    free(b64);
    assert_servers_ok();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_head_delete), cmocka_unit_test(test_tiers),
        cmocka_unit_test(test_conditional),         cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_tags_and_patterns),   cmocka_unit_test(test_special_keys),
        cmocka_unit_test(test_mget_mset),           cmocka_unit_test(test_clean_exit),
    };
    SH_TEST_FILTER();
    return cmocka_run_group_tests(tests, setup, teardown);
}
