/* test_server_sessions.c: the session API end to end: create, read, replace, merge-patch,
 * expire, slide, delete, surviving a restart of strata (Redis), living in memory without Redis
 * (X-Cache-Write: l1-only, health says so), tenants, unknown and malformed ids, and an admin
 * listing and clearing them by naming _sessions, and two instances agreeing after Redis comes
 * back: a session Redis lost is gone on both, one written during the outage too (it lived in one
 * instance's memory), and a delete that Redis could not take is refused, so it can never come
 * back. */
#include <setjmp.h>
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

static sh_server *start_server(int with_redis)
{
    char url[300];
    snprintf(url, sizeof url, "REDIS_URL=%s", rh_url(redis));
    const char *env_redis[] = {url, "STRATA_WORKERS=2", "STRATA_PREFIX=sess", NULL};
    const char *env_mem[] = {"STRATA_WORKERS=2", NULL};
    sh_server *s = sh_start(with_redis ? env_redis : env_mem, NULL);
    assert_non_null(s);
    return s;
}

/* Creates a session holding body; returns its id (caller frees). */
static char *create(sh_server *s, const char *tenant, const char *body, const char *query)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/sessions%s", query ? query : "");
    sh_resp *r = sh_call(s, "POST", path, NULL, tenant, "application/json", body);
    SH_EXPECT_STATUS(r, 201);
    json_t *j = sh_resp_json(r);
    const char *id = json_string_value(json_object_get(j, "id"));
    assert_non_null(id);
    assert_int_equal(strlen(id), 22);
    char loc[64];
    snprintf(loc, sizeof loc, "/v1/sessions/%s", id);
    assert_string_equal(sh_resp_header(r, "Location"), loc);
    char *out = strdup(id);
    json_decref(j);
    sh_resp_free(r);
    return out;
}

/* GETs a session: the status, and the body into out (may be NULL). */
static long read_session(sh_server *s, const char *tenant, const char *id, char *out, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/sessions/%s", id);
    sh_resp *r = sh_call(s, "GET", path, NULL, tenant, NULL, NULL);
    long st = r->status;
    if (out != NULL)
        snprintf(out, cap, "%s", r->body ? r->body : "");
    sh_resp_free(r);
    return st;
}

static void test_lifecycle_with_redis(void **state)
{
    (void)state;
    sh_server *s = start_server(1);
    char *id = create(s, NULL, "{\"user\":\"ann\",\"cart\":{\"a\":1,\"b\":2}}", NULL);
    char body[512], path[64];
    assert_int_equal(read_session(s, NULL, id, body, sizeof body), 200);
    json_t *j = json_loads(body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "user")), "ann");
    json_decref(j);
    snprintf(path, sizeof path, "/v1/sessions/%s", id);
    /* PATCH: RFC 7396 merge (null removes, objects merge, scalars replace). */
    sh_resp *r = sh_call(s, "PATCH", path, NULL, NULL, "application/merge-patch+json",
                         "{\"cart\":{\"a\":null,\"c\":3},\"user\":\"bob\"}");
    SH_EXPECT_STATUS(r, 200);
    j = sh_resp_json(r);
    assert_string_equal(json_string_value(json_object_get(j, "user")), "bob");
    json_t *cart = json_object_get(j, "cart");
    assert_null(json_object_get(cart, "a"));
    assert_int_equal(json_integer_value(json_object_get(cart, "b")), 2);
    assert_int_equal(json_integer_value(json_object_get(cart, "c")), 3);
    json_decref(j);
    sh_resp_free(r);
    assert_null(
        sh_resp_header(r = sh_call(s, "PUT", path, NULL, NULL, "application/json", "{\"x\":1}"),
                       "X-Cache-Write")); /* in Redis: durable */
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    assert_int_equal(read_session(s, NULL, id, body, sizeof body), 200);
    assert_string_equal(body, "{\"x\":1}\n");
    /* It lives in Redis, under the reserved namespace, and survives a restart of strata. */
    redisReply *rep = rh_command(redis, "EXISTS sess:_sessions:default:%s", id);
    assert_int_equal(rep->integer, 1);
    freeReplyObject(rep);
    assert_int_equal(sh_stop_check(s), 0); /* also frees s */
    s = start_server(1);
    assert_int_equal(read_session(s, NULL, id, body, sizeof body), 200);
    assert_string_equal(body, "{\"x\":1}\n");
    /* DELETE, then it is gone. */
    SH_CALL_EXPECT(s, "DELETE", path, NULL, NULL, NULL, NULL, 204);
    assert_int_equal(read_session(s, NULL, id, NULL, 0), 404);
    SH_CALL_EXPECT(s, "DELETE", path, NULL, NULL, NULL, NULL, 404);
    free(id);
    assert_int_equal(sh_stop_check(s), 0); /* also frees s */
}

static void test_expiry_and_sliding(void **state)
{
    (void)state;
    sh_server *s = start_server(1);
    char *gone = create(s, NULL, "{}", "?ttl=1");
    char *kept = create(s, NULL, "{}", "?ttl=2");
    sh_sleep_ms(1200);
    assert_int_equal(read_session(s, NULL, kept, NULL, 0), 200); /* slides: 2 s from now */
    sh_sleep_ms(400);
    assert_int_equal(read_session(s, NULL, gone, NULL, 0), 404); /* 1 s, never read: expired */
    sh_sleep_ms(1000);                                           /* 2.6 s after creation */
    assert_int_equal(read_session(s, NULL, kept, NULL, 0), 200);
    sh_sleep_ms(2300); /* not read for more than its TTL */
    assert_int_equal(read_session(s, NULL, kept, NULL, 0), 404);
    free(gone);
    free(kept);
    assert_int_equal(sh_stop_check(s), 0); /* also frees s */
}

/* Milliseconds Redis still keeps the session. */
static long long redis_pttl(const char *id)
{
    redisReply *rep = rh_command(redis, "PTTL sess:_sessions:default:%s", id);
    long long ms = rep->integer;
    freeReplyObject(rep);
    return ms;
}

/* A read slides the TTL only once half of it has gone by: earlier reads write nothing. */
static void test_slide_after_half(void **state)
{
    (void)state;
    sh_server *s = start_server(1);
    char *id = create(s, NULL, "{\"n\":1}", "?ttl=4");
    sh_sleep_ms(1000); /* a quarter gone by */
    assert_int_equal(read_session(s, NULL, id, NULL, 0), 200);
    long long before = redis_pttl(id);
    assert_true(before > 0 && before <= 3100); /* not slid: still counting from the creation */
    sh_sleep_ms(1300);                         /* over half gone by */
    assert_int_equal(read_session(s, NULL, id, NULL, 0), 200);
    long long after = redis_pttl(id);
    assert_true(after > 3500 && after <= 4000); /* slid: 4 s from now */
    free(id);
    assert_int_equal(sh_stop_check(s), 0); /* also frees s */
}

static void test_tenants_and_bad_ids(void **state)
{
    (void)state;
    sh_server *s = start_server(1);
    char *id = create(s, "acme", "{\"t\":\"acme\"}", NULL);
    assert_int_equal(read_session(s, "acme", id, NULL, 0), 200);
    assert_int_equal(read_session(s, "globex", id, NULL, 0), 404); /* another tenant's id */
    assert_int_equal(read_session(s, NULL, id, NULL, 0), 404);
    char path[64];
    snprintf(path, sizeof path, "/v1/sessions/%s", id);
    SH_CALL_EXPECT(s, "DELETE", path, NULL, "globex", NULL, NULL, 404);
    assert_int_equal(read_session(s, "acme", id, NULL, 0), 200);
    /* Unknown (well-formed) ids are 404; malformed ones 400. */
    assert_int_equal(read_session(s, NULL, "AAAAAAAAAAAAAAAAAAAAAA", NULL, 0), 404);
    sh_resp *r = sh_call(s, "GET", "/v1/sessions/short", NULL, NULL, NULL, NULL);
    SH_EXPECT_ERROR(r, 400, "bad_session_id");
    sh_resp_free(r);
    r = sh_call(s, "GET", "/v1/sessions/AAAAAAAAAAAAAAAAAAAAA%21", NULL, NULL, NULL, NULL);
    SH_EXPECT_ERROR(r, 400, "bad_session_id");
    sh_resp_free(r);
    /* Bodies must be JSON objects. */
    r = sh_call(s, "POST", "/v1/sessions", NULL, NULL, "application/json", "[1,2]");
    SH_EXPECT_ERROR(r, 400, "bad_json");
    sh_resp_free(r);
    r = sh_call(s, "PATCH", path, NULL, "acme", "application/json", "{not json");
    SH_EXPECT_ERROR(r, 400, "bad_json");
    sh_resp_free(r);
    /* The reserved namespace is out of the key/value API's reach. */
    char kv[96];
    snprintf(kv, sizeof kv, "/v1/cache/_sessions/%s", id);
    r = sh_call(s, "GET", kv, NULL, "acme", NULL, NULL);
    SH_EXPECT_ERROR(r, 400, "reserved_namespace");
    sh_resp_free(r);
    /* ...and out of the key listing. */
    r = sh_call(s, "GET", "/cache/keys?limit=1000", NULL, "acme", NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    assert_null(strstr(r->body, id));
    sh_resp_free(r);
    /* The id never reaches the log. */
    assert_int_equal(sh_log_contains(s, id), 0);
    free(id);
    assert_int_equal(sh_stop_check(s), 0); /* also frees s */
}

static void test_memory_only(void **state)
{
    (void)state;
    sh_server *s = start_server(0);
    sh_resp *r = sh_call(s, "POST", "/v1/sessions", NULL, NULL, "application/json", "{\"a\":1}");
    SH_EXPECT_STATUS(r, 201);
    SH_EXPECT_HEADER(r, "X-Cache-Write", "l1-only");
    SH_EXPECT_HEADER(r, "X-Cache-Reason", "no-redis");
    sh_resp_free(r);
    r = sh_call(s, "GET", "/cache/health", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    assert_non_null(strstr(r->body, "sessions are not durable"));
    sh_resp_free(r);
    /* Sessions are not a cache: a flood of cache writes does not evict them. */
    char *id = create(s, NULL, "{\"keep\":true}", NULL);
    char big[4096];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < 300; i++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/cache/ns/k%d", i);
        sh_resp_free(sh_call(s, "PUT", path, NULL, NULL, "text/plain", big));
    }
    assert_int_equal(read_session(s, NULL, id, NULL, 0), 200);
    free(id);
    assert_int_equal(sh_stop_check(s), 0); /* also frees s */
}

/* An admin lists and clears sessions by naming _sessions on /cache/keys and /cache/clear (both
 * answered 400 before: docs/api.md promised it), one tenant at a time; unnamed clears and listings
 * leave them alone, and no other reserved name is taken. With Redis and in memory alone. */
static void admin_sessions(int with_redis)
{
    freeReplyObject(rh_command(redis, "FLUSHALL")); /* no session left by the tests before */
    sh_server *s = start_server(with_redis);
    char *mine = create(s, NULL, "{\"u\":1}", NULL), *acme = create(s, "acme", "{\"u\":2}", NULL);
    sh_resp *r = sh_call(s, "GET", "/cache/keys?namespace=_sessions", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    assert_non_null(strstr(r->body, mine));
    assert_null(strstr(r->body, acme)); /* another tenant's */
    assert_non_null(strstr(r->body, "\"namespace\":\"_sessions\""));
    sh_resp_free(r);
    r = sh_call(s, "GET", "/cache/keys?namespace=_sessions&tenant=acme", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    assert_non_null(strstr(r->body, acme));
    sh_resp_free(r);
    /* A clear that does not name them keeps them. */
    r = sh_call(s, "POST", "/cache/clear?all_tenants=true", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    sh_resp_free(r);
    assert_int_equal(read_session(s, NULL, mine, NULL, 0), 200);
    /* Named: this tenant's go, the other's stay. */
    r = sh_call(s, "POST", "/cache/clear?namespace=_sessions", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    assert_non_null(strstr(r->body, "\"removed\":1"));
    sh_resp_free(r);
    assert_int_equal(read_session(s, NULL, mine, NULL, 0), 404);
    assert_int_equal(read_session(s, "acme", acme, NULL, 0), 200);
    r = sh_call(s, "DELETE", "/cache/clear?namespace=_sessions&tenant=acme", NULL, NULL, NULL,
                NULL);
    SH_EXPECT_STATUS(r, 200);
    sh_resp_free(r);
    assert_int_equal(read_session(s, "acme", acme, NULL, 0), 404);
    /* The other reserved names stay refused. */
    r = sh_call(s, "GET", "/cache/keys?namespace=_other", NULL, NULL, NULL, NULL);
    SH_EXPECT_ERROR(r, 400, "bad_request");
    sh_resp_free(r);
    r = sh_call(s, "POST", "/cache/clear?namespace=_other", NULL, NULL, NULL, NULL);
    SH_EXPECT_ERROR(r, 400, "bad_namespace");
    sh_resp_free(r);
    free(mine);
    free(acme);
    assert_int_equal(sh_stop_check(s), 0); /* also frees s */
}

static void test_admin_lists_and_clears_sessions(void **state)
{
    (void)state;
    admin_sessions(1);
    admin_sessions(0);
}

/* A tenant's sessions held in memory alone are bounded by _sessions' quota: past it that tenant
 * is refused (507), none of its sessions is evicted, and another tenant is not affected. */
static void test_session_quota_per_tenant(void **state)
{
    (void)state;
    const char *env[] = {"STRATA_WORKERS=1", "STRATA_NAMESPACES=_sessions:quota=16K", NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    char big[600], *ids[200];
    snprintf(big, sizeof big, "{\"pad\":\"%0500d\"}", 0);
    int made = 0;
    long st = 201;
    while (made < 200) {
        sh_resp *r = sh_call(s, "POST", "/v1/sessions", NULL, "greedy", "application/json", big);
        st = r->status;
        if (st == 201) {
            json_t *j = sh_resp_json(r);
            ids[made++] = strdup(json_string_value(json_object_get(j, "id")));
            json_decref(j);
        } else {
            assert_true(sh_resp_is_error(r, "quota_exceeded"));
        }
        sh_resp_free(r);
        if (st != 201)
            break;
    }
    assert_int_equal(st, 507);
    assert_true(made >= 5 && made < 40); /* 16 KiB of ~700-byte sessions */
    for (int i = 0; i < made; i++) {     /* all kept: none was evicted to make room */
        assert_int_equal(read_session(s, "greedy", ids[i], NULL, 0), 200);
        free(ids[i]);
    }
    char *other = create(s, "other", "{\"a\":1}", NULL);
    assert_int_equal(read_session(s, "other", other, NULL, 0), 200);
    free(other);
    const char *bad[] = {"STRATA_NAMESPACES=_sessions:ttl=60", NULL};
    char *out = NULL;
    assert_int_equal(sh_run(bad, NULL, 5000, &out, NULL), 2);
    assert_non_null(strstr(out, "only quota"));
    free(out);
    assert_int_equal(sh_stop_check(s), 0);
}

/* ---- two instances and a Redis that goes away ---------------------------------------------- */

/* A cache write Redis took (no X-Cache-Write): s is talking to Redis again. */
static int plain_write(void *arg)
{
    sh_resp *r = sh_call(arg, "PUT", "/v1/cache/probe/k", NULL, NULL, NULL, "x");
    int ok = r->status == 204 && sh_resp_header(r, "X-Cache-Write") == NULL;
    sh_resp_free(r);
    if (!ok)
        sh_sleep_ms(100);
    return ok;
}

/* ... and its invalidation link is up again (health says "coherent"): its memory is trusted. */
static int coherent(void *arg)
{
    sh_resp *r = sh_call(arg, "GET", "/cache/health", NULL, NULL, NULL, NULL);
    json_t *j = sh_resp_json(r);
    int ok = j != NULL && json_is_true(json_object_get(j, "coherent"));
    json_decref(j);
    sh_resp_free(r);
    if (!ok)
        sh_sleep_ms(100);
    return ok;
}

static void both_recovered(sh_server *a, sh_server *b)
{
    assert_true(rh_wait_for(plain_write, a, 15000));
    assert_true(rh_wait_for(plain_write, b, 15000));
    assert_true(rh_wait_for(coherent, a, 15000));
    assert_true(rh_wait_for(coherent, b, 15000));
}

static long delete_session(sh_server *s, const char *id)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/sessions/%s", id);
    sh_resp *r = sh_call(s, "DELETE", path, NULL, NULL, NULL, NULL);
    long st = r->status;
    if (st == 503)
        assert_true(sh_resp_is_error(r, "redis_unavailable"));
    sh_resp_free(r);
    return st;
}

/* Redis restarts empty: a session both instances had read is gone on both, not served from
 * the memory of either (it was, by both, although they logged "dropping L1"). */
static void test_sessions_after_redis_restarts_empty(void **state)
{
    (void)state;
    sh_server *a = start_server(1), *b = start_server(1);
    char *id = create(a, NULL, "{\"u\":1}", NULL);
    assert_int_equal(read_session(a, NULL, id, NULL, 0), 200);
    assert_int_equal(read_session(b, NULL, id, NULL, 0), 200);
    assert_int_equal(rh_kill(redis), 0);
    /* During the outage: created on a, in a's memory alone (the answer says so). */
    sh_resp *r = sh_call(a, "POST", "/v1/sessions", NULL, NULL, "application/json", "{\"u\":2}");
    SH_EXPECT_STATUS(r, 201);
    SH_EXPECT_HEADER(r, "X-Cache-Write", "l1-only");
    json_t *j = sh_resp_json(r);
    char *during = strdup(json_string_value(json_object_get(j, "id")));
    json_decref(j);
    sh_resp_free(r);
    assert_int_equal(read_session(a, NULL, during, NULL, 0), 200);
    assert_int_equal(rh_restart(redis), 0); /* empty: no persistence */
    both_recovered(a, b);
    /* Redis is the truth again, for both: neither session is served by anyone. */
    assert_int_equal(read_session(a, NULL, id, NULL, 0), 404);
    assert_int_equal(read_session(b, NULL, id, NULL, 0), 404);
    assert_int_equal(read_session(a, NULL, during, NULL, 0), 404);
    assert_int_equal(read_session(b, NULL, during, NULL, 0), 404);
    free(id);
    free(during);
    assert_int_equal(sh_stop_check(a), 0);
    assert_int_equal(sh_stop_check(b), 0);
}

/* A delete while Redis is away (here stopped with its data, as in a partition or a restart with
 * persistence) is never acknowledged from memory: acknowledged, the session came back from Redis
 * once it answered again. It is refused (503: retry); as it may have reached the stopped Redis
 * and run once it resumed, both instances then agree on whatever Redis holds, and the retry
 * deletes it everywhere. */
static void test_delete_while_redis_is_away(void **state)
{
    (void)state;
    sh_server *a = start_server(1), *b = start_server(1);
    char *id = create(a, NULL, "{\"u\":3}", NULL);
    assert_int_equal(read_session(a, NULL, id, NULL, 0), 200);
    assert_int_equal(read_session(b, NULL, id, NULL, 0), 200);
    assert_int_equal(rh_pause(redis), 0);
    long st = delete_session(b, id);
    assert_int_equal(rh_resume(redis), 0);
    both_recovered(a, b);
    if (st == 204) { /* acknowledged: it must then be gone everywhere, for good */
        assert_int_equal(read_session(a, NULL, id, NULL, 0), 404);
        assert_int_equal(read_session(b, NULL, id, NULL, 0), 404);
    }
    assert_int_equal(st, 503);
    long on_a = read_session(a, NULL, id, NULL, 0);
    assert_true(on_a == 200 || on_a == 404);
    assert_int_equal(read_session(b, NULL, id, NULL, 0), on_a); /* no ghost on one of them */
    st = delete_session(b, id); /* the retry: Redis is back, deleted everywhere */
    assert_int_equal(st, on_a == 200 ? 204 : 404);
    assert_int_equal(read_session(a, NULL, id, NULL, 0), 404);
    assert_int_equal(read_session(b, NULL, id, NULL, 0), 404);
    free(id);
    assert_int_equal(sh_stop_check(a), 0);
    assert_int_equal(sh_stop_check(b), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle_with_redis),
        cmocka_unit_test(test_expiry_and_sliding),
        cmocka_unit_test(test_slide_after_half),
        cmocka_unit_test(test_tenants_and_bad_ids),
        cmocka_unit_test(test_memory_only),
        cmocka_unit_test(test_admin_lists_and_clears_sessions),
        cmocka_unit_test(test_session_quota_per_tenant),
        cmocka_unit_test(test_sessions_after_redis_restarts_empty),
        cmocka_unit_test(test_delete_while_redis_is_away),
    };
    return cmocka_run_group_tests_name("server_sessions", tests, setup, teardown);
}
