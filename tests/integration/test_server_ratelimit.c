/* test_server_ratelimit.c: rate limits over HTTP: POST /v1/ratelimit/{key} shared exactly by two
 * servers on one Redis, 429 with Retry-After and RateLimit-* headers, tenants, the server's own
 * rules (by header, shadow mode, metrics), the local fallback with Redis killed, and denials
 * answered from memory with Redis' figures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "harness.h"
#include "server_harness.h"

static rh_server *redis;

static int setup(void **state)
{
    (void)state;
    redis = rh_start(NULL);
    return redis ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    rh_stop(redis);
    return 0;
}

static sh_server *start_server(const char *extra1, const char *extra2)
{
    char url[300];
    snprintf(url, sizeof url, "REDIS_URL=%s", rh_url(redis));
    const char *env[] = {url, "STRATA_WORKERS=2", "REDIS_SOCKET_TIMEOUT=0.2", extra1, extra2, NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    return s;
}

static void test_endpoint_shared_by_two_servers(void **state)
{
    (void)state;
    sh_server *a = start_server(NULL, NULL), *b = start_server(NULL, NULL);
    const char *body = "{\"limit\":100,\"period\":3600,\"burst\":100}";
    int allowed = 0, limited = 0;
    for (int i = 0; i < 1000; i++) {
        sh_resp *r = sh_call(i % 2 ? a : b, "POST", "/v1/ratelimit/api-key-1", NULL, "acme",
                             "application/json", body);
        assert_true(r->status == 200 || r->status == 429);
        assert_non_null(sh_resp_header(r, "RateLimit-Limit"));
        assert_non_null(sh_resp_header(r, "RateLimit-Remaining"));
        assert_non_null(sh_resp_header(r, "RateLimit-Reset"));
        json_t *j = sh_resp_json(r);
        assert_int_equal(json_is_true(json_object_get(j, "allowed")), r->status == 200);
        if (r->status == 429) {
            limited++;
            assert_non_null(sh_resp_header(r, "Retry-After"));
            assert_true(json_integer_value(json_object_get(j, "retry_after")) >= 1);
        } else {
            allowed++;
            assert_null(sh_resp_header(r, "Retry-After"));
        }
        json_decref(j);
        sh_resp_free(r);
    }
    print_message("two servers admitted %d of 1000 against 100/h\n", allowed);
    assert_true(allowed >= 99 && allowed <= 101);
    /* Another tenant has its own limit for the same key. */
    sh_resp *r =
        sh_call(a, "POST", "/v1/ratelimit/api-key-1", NULL, "globex", "application/json", body);
    SH_EXPECT_STATUS(r, 200);
    sh_resp_free(r);
    /* Bad bodies. */
    const char *bad[] = {"{}",
                         "{\"limit\":0,\"period\":1}",
                         "{\"limit\":1,\"period\":0}",
                         "{\"limit\":\"x\",\"period\":1}",
                         "[1]",
                         "nope"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = sh_call(a, "POST", "/v1/ratelimit/k", NULL, NULL, "application/json", bad[i]);
        SH_EXPECT_ERROR(r, 400, "bad_request");
        sh_resp_free(r);
    }
    assert_int_equal(sh_stop_check(a), 0);
    assert_int_equal(sh_stop_check(b), 0);
}

static void test_server_rules(void **state)
{
    (void)state;
    sh_server *s = start_server("STRATA_RATE_LIMITS=peruser:route=kv,limit=3,period=60,by=header:"
                                "X-User;everyone:route=*,limit=2,period=60,by=tenant,shadow=true",
                                NULL);
    int codes[5];
    for (int i = 0; i < 5; i++) {
        const char *h[] = {"X-User: alice", NULL};
        sh_resp *r = sh_request(s, "GET", "/v1/cache/ns/k", h, NULL, 0);
        codes[i] = (int)r->status;
        if (r->status == 429) {
            assert_true(sh_resp_is_error(r, "rate_limited"));
            assert_non_null(sh_resp_header(r, "Retry-After"));
            SH_EXPECT_HEADER(r, "RateLimit-Limit", "3");
        }
        sh_resp_free(r);
    }
    assert_int_equal(codes[0], 404); /* a miss: allowed through to the handler */
    assert_int_equal(codes[2], 404);
    assert_int_equal(codes[3], 429);
    assert_int_equal(codes[4], 429);
    /* Another user is not affected; requests without the header are not counted by the rule. */
    const char *bob[] = {"X-User: bob", NULL};
    sh_resp *r = sh_request(s, "GET", "/v1/cache/ns/k", bob, NULL, 0);
    SH_EXPECT_STATUS(r, 404);
    sh_resp_free(r);
    for (int i = 0; i < 5; i++) {
        r = sh_call(s, "GET", "/v1/cache/ns/k", NULL, NULL, NULL, NULL);
        SH_EXPECT_STATUS(r, 404);
        sh_resp_free(r);
    }
    /* The shadow rule never rejected, but counted; metrics show every decision. */
    r = sh_call(s, "GET", "/metrics", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    assert_non_null(strstr(r->body, "strata_ratelimit_decisions_total{rule=\"peruser\","
                                    "decision=\"limited\"} 2"));
    const char *p = strstr(r->body, "{rule=\"everyone\",decision=\"shadow_limited\"} ");
    assert_non_null(p);
    assert_true(atoi(p + strlen("{rule=\"everyone\",decision=\"shadow_limited\"} ")) >= 8);
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(s), 0);
}

/* A rule by=token counts the token, whatever the spelling of the scheme: "Bearer", "bearer" and
 * "BEARER" are one caller (each had its own bucket, so the limit multiplied). */
static void test_token_rule_counts_the_token(void **state)
{
    (void)state;
    sh_server *s = start_server("STRATA_TOKENS=token-aaaa:read,token-bbbb:read",
                                "STRATA_RATE_LIMITS=pertoken:route=kv,limit=3,period=60,by=token");
    const char *spellings[] = {
        "Authorization: Bearer token-aaaa", "Authorization: bearer token-aaaa",
        "Authorization: BEARER token-aaaa", "Authorization: BeArEr token-aaaa"};
    int codes[4];
    for (int i = 0; i < 4; i++) {
        const char *h[] = {spellings[i], NULL};
        sh_resp *r = sh_request(s, "GET", "/v1/cache/ns/k", h, NULL, 0);
        codes[i] = (int)r->status;
        sh_resp_free(r);
    }
    assert_int_equal(codes[0], 404); /* allowed: a miss */
    assert_int_equal(codes[2], 404);
    assert_int_equal(codes[3], 429); /* the fourth request of one token, however spelled */
    const char *other[] = {"Authorization: Bearer token-bbbb", NULL};
    sh_resp *r = sh_request(s, "GET", "/v1/cache/ns/k", other, NULL, 0);
    SH_EXPECT_STATUS(r, 404); /* another token has its own bucket */
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(s), 0);
}

static void test_bad_rules_refused_at_start(void **state)
{
    (void)state;
    /* An unknown route; a name outside printable ASCII (it is a Structured Fields string in
     * RateLimit-Policy). */
    const char *specs[] = {"STRATA_RATE_LIMITS=x:route=nosuch,limit=1,period=1",
                           "STRATA_RATE_LIMITS=caf\xc3\xa9:route=kv,limit=1,period=1"};
    const char *why[] = {"nosuch", "printable ASCII"};
    for (int i = 0; i < 2; i++) {
        const char *env[] = {specs[i], NULL};
        char *out = NULL;
        long ms = 0;
        int st = sh_run(env, NULL, 5000, &out, &ms);
        assert_int_not_equal(st, 0);
        assert_non_null(strstr(out, "STRATA_RATE_LIMITS"));
        assert_non_null(strstr(out, why[i]));
        free(out);
    }
}

static void test_local_fallback_with_redis_killed(void **state)
{
    (void)state;
    if (rh_is_external(redis))
        skip();
    sh_server *s = start_server("STRATA_INSTANCES=2", NULL);
    const char *body = "{\"limit\":40,\"period\":3600}";
    sh_resp_free(sh_call(s, "POST", "/v1/ratelimit/warm", NULL, NULL, "application/json", body));
    assert_int_equal(rh_kill(redis), 0);
    int allowed = 0;
    for (int i = 0; i < 100; i++) {
        sh_resp *r = sh_call(s, "POST", "/v1/ratelimit/k", NULL, NULL, "application/json", body);
        assert_true(r->status == 200 || r->status == 429); /* never a 5xx */
        allowed += r->status == 200;
        sh_resp_free(r);
    }
    print_message("with Redis killed, the local limiter admitted %d (share 40/2)\n", allowed);
    assert_int_equal(allowed, 20);
    assert_int_equal(rh_restart(redis), 0);
    assert_int_equal(sh_stop_check(s), 0);
}

/* A 429 that Redis decided and the same denial answered from memory carry the same figures. With
 * Redis paused the local fallback would have allowed a fresh bucket, so a 429 then is memory's.
 * Memory answered reset 20 (its retry_after) where Redis had answered 60. */
static void test_remembered_denial_matches_redis(void **state)
{
    (void)state;
    if (rh_is_external(redis))
        skip();
    sh_server *s = start_server(NULL, NULL);
    const char *body = "{\"limit\":3,\"period\":60}";
    for (int i = 0; i < 3; i++) {
        sh_resp *r =
            sh_call(s, "POST", "/v1/ratelimit/login:alice", NULL, NULL, "application/json", body);
        SH_EXPECT_STATUS(r, 200);
        sh_resp_free(r);
    }
    sh_resp *from_redis =
        sh_call(s, "POST", "/v1/ratelimit/login:alice", NULL, NULL, "application/json", body);
    SH_EXPECT_STATUS(from_redis, 429);
    assert_string_equal(from_redis->body,
                        "{\"allowed\":false,\"limit\":3,\"remaining\":0,\"reset\":60,"
                        "\"retry_after\":20}\n");
    assert_int_equal(rh_pause(redis), 0);
    sh_resp *from_memory =
        sh_call(s, "POST", "/v1/ratelimit/login:alice", NULL, NULL, "application/json", body);
    assert_int_equal(rh_resume(redis), 0);
    SH_EXPECT_STATUS(from_memory, 429);
    assert_string_equal(from_memory->body, from_redis->body);
    const char *fields[] = {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
                            "Retry-After"};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        assert_string_equal(sh_resp_header(from_memory, fields[i]),
                            sh_resp_header(from_redis, fields[i]));
    sh_resp_free(from_redis);
    sh_resp_free(from_memory);
    assert_int_equal(sh_stop_check(s), 0);
}

/* The draft's fields (draft-ietf-httpapi-ratelimit-headers, revision 10 on) beside the
 * RateLimit-Limit/-Remaining/-Reset ones, on the endpoint: policy "default", q the burst, w the
 * seconds an empty bucket takes to fill, r remaining, t until one more request is free (equal to
 * Retry-After on a denial). */
static void test_ratelimit_fields_on_the_endpoint(void **state)
{
    (void)state;
    sh_server *s = start_server(NULL, NULL);
    const char *body = "{\"limit\":3,\"period\":60}";
    const char *t[] = {"20", "20", "20", "20"}, *rem[] = {"2", "1", "0", "0"};
    for (int i = 0; i < 4; i++) {
        sh_resp *r =
            sh_call(s, "POST", "/v1/ratelimit/fields", NULL, NULL, "application/json", body);
        SH_EXPECT_STATUS(r, i < 3 ? 200 : 429);
        SH_EXPECT_HEADER(r, "RateLimit-Policy", "\"default\";q=3;w=60");
        char want[64];
        snprintf(want, sizeof want, "\"default\";r=%s;t=%s", rem[i], t[i]);
        SH_EXPECT_HEADER(r, "RateLimit", want);
        SH_EXPECT_HEADER(r, "RateLimit-Limit", "3");
        SH_EXPECT_HEADER(r, "RateLimit-Remaining", rem[i]);
        if (i == 3)
            SH_EXPECT_HEADER(r, "Retry-After", "20");
        sh_resp_free(r);
    }
    /* A burst unlike the limit: q is the burst, w the time it takes to come back (0.6 s each). */
    sh_resp *r = sh_call(s, "POST", "/v1/ratelimit/burst", NULL, NULL, "application/json",
                         "{\"limit\":100,\"period\":60,\"burst\":10}");
    SH_EXPECT_STATUS(r, 200);
    SH_EXPECT_HEADER(r, "RateLimit-Policy", "\"default\";q=10;w=6");
    SH_EXPECT_HEADER(r, "RateLimit", "\"default\";r=9;t=1");
    SH_EXPECT_HEADER(r, "RateLimit-Limit", "10");
    sh_resp_free(r);
    /* ... and a window that is no whole number of seconds (5 x 6.67 s) is rounded up. */
    r = sh_call(s, "POST", "/v1/ratelimit/odd", NULL, NULL, "application/json",
                "{\"limit\":9,\"period\":60,\"burst\":5}");
    SH_EXPECT_HEADER(r, "RateLimit-Policy", "\"default\";q=5;w=34");
    SH_EXPECT_HEADER(r, "RateLimit", "\"default\";r=4;t=7");
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(s), 0);
}

/* The server's own rules: one item per rule that applied (shadow rules are not reported), the
 * rule's name as the policy's, escaped as a Structured Fields string; RateLimit-Limit/-Remaining/
 * -Reset report the most pressing decision, once (each rule used to add its own set). */
static void test_ratelimit_fields_of_the_rules(void **state)
{
    (void)state;
    sh_server *s = start_server("STRATA_RATE_LIMITS=per-ip:route=kv,limit=5,period=10,by=ip;"
                                "a\"b\\c:route=*,limit=2,period=60,by=tenant;"
                                "watch:route=*,limit=1,period=60,by=tenant,shadow=true",
                                NULL);
    const char *policy = "\"per-ip\";q=5;w=10, \"a\\\"b\\\\c\";q=2;w=60";
    const char *limit[] = {"\"per-ip\";r=4;t=2, \"a\\\"b\\\\c\";r=1;t=30",
                           "\"per-ip\";r=3;t=2, \"a\\\"b\\\\c\";r=0;t=30",
                           "\"per-ip\";r=2;t=2, \"a\\\"b\\\\c\";r=0;t=30"};
    const char *remaining[] = {"1", "0", "0"}, *reset[] = {"30", "60", "60"};
    for (int i = 0; i < 3; i++) {
        sh_resp *r = sh_call(s, "GET", "/v1/cache/ns/k", NULL, NULL, NULL, NULL);
        SH_EXPECT_STATUS(r, i < 2 ? 404 : 429);
        SH_EXPECT_HEADER(r, "RateLimit-Policy", policy);
        SH_EXPECT_HEADER(r, "RateLimit", limit[i]);
        SH_EXPECT_HEADER(r, "RateLimit-Limit", "2"); /* a"b\c: the fewest left */
        SH_EXPECT_HEADER(r, "RateLimit-Remaining", remaining[i]);
        SH_EXPECT_HEADER(r, "RateLimit-Reset", reset[i]);
        size_t n = 0;
        for (size_t h = 0; h < r->nheaders; h++)
            n += strcasecmp(r->headers[h].name, "RateLimit-Limit") == 0;
        assert_int_equal(n, 1);
        if (i == 2)
            SH_EXPECT_HEADER(r, "Retry-After", "30");
        sh_resp_free(r);
    }
    assert_int_equal(sh_stop_check(s), 0);
    /* A rule's name as a Prometheus label value: \ and " escaped, so the page still parses
     * (another name: the one above is spent in this Redis). */
    s = start_server("STRATA_RATE_LIMITS=q\"r\\s:route=kv,limit=1,period=60,by=tenant", NULL);
    for (int i = 0; i < 2; i++)
        SH_CALL_EXPECT(s, "GET", "/v1/cache/ns/k", NULL, NULL, NULL, NULL, (i == 0 ? 404 : 429));
    sh_resp *m = sh_call(s, "GET", "/metrics", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(m, 200);
    assert_non_null(strstr(m->body, "strata_ratelimit_decisions_total{rule=\"q\\\"r\\\\s\","
                                    "decision=\"limited\"} 1\n"));
    sh_resp_free(m);
    assert_int_equal(sh_stop_check(s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoint_shared_by_two_servers),
        cmocka_unit_test(test_server_rules),
        cmocka_unit_test(test_token_rule_counts_the_token),
        cmocka_unit_test(test_bad_rules_refused_at_start),
        cmocka_unit_test(test_local_fallback_with_redis_killed),
        cmocka_unit_test(test_remembered_denial_matches_redis),
        cmocka_unit_test(test_ratelimit_fields_on_the_endpoint),
        cmocka_unit_test(test_ratelimit_fields_of_the_rules),
    };
    return cmocka_run_group_tests_name("server_ratelimit", tests, setup, teardown);
}
