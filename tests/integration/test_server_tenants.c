/* test_server_tenants.c: tenant isolation in strata serve (DESIGN.md "Rules that shape the code":
 * every key is built from (prefix, namespace, tenant, key); tenants can never read or clear each
 * other's keys, through any API; a token bound to a tenant always acts in it, an X-Tenant naming
 * another is 403; an unbound token acts in X-Tenant, else "default"). Checked over the KV API,
 * _mget, tags, patterns, the key listing, inspection and clear, against a real Redis. */
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
#define READ       "read-token-1"
#define WRITE      "write-token-1"
#define ACME_WRITE "acme-write-1"
#define ACME_ADMIN "acme-admin-1"

static rh_server *redis;
static sh_server *srv;
static char redis_env[320];

static int setup(void **state)
{
    (void)state;
    redis = rh_start(NULL);
    if (redis == NULL)
        return -1;
    snprintf(redis_env, sizeof redis_env, "REDIS_URL=%s", rh_url(redis));
    const char *env[] = {redis_env, "STRATA_WORKERS=2",
                         "STRATA_TOKENS=" ADMIN ":admin," READ ":read," WRITE ":write," ACME_WRITE
                         ":write:acme," ACME_ADMIN ":admin:acme",
                         NULL};
    srv = sh_start(env, NULL);
    return srv ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    sh_free(srv);
    srv = NULL;
    rh_stop(redis);
    redis = NULL;
    return 0;
}

static long long redis_exists(const char *stored)
{
    redisReply *r = rh_command(redis, "EXISTS %s", stored);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

static void put_in(const char *tenant, const char *key, const char *value)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/cache/tn/%s", key);
    SH_CALL_EXPECT(srv, "PUT", path, WRITE, tenant, "text/plain", value, 204);
}

/* GET key in tenant (NULL: no X-Tenant) with token; expects status and, for 200, the value. */
static void get_in(const char *token, const char *tenant, const char *key, long status,
                   const char *value)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/cache/tn/%s", key);
    sh_resp *r = sh_call(srv, "GET", path, token, tenant, NULL, NULL);
    SH_EXPECT_STATUS(r, status);
    if (value != NULL) {
        if (strcmp(r->body, value) != 0)
            fprintf(stderr, "%s (tenant %s): \"%s\", expected \"%s\"\n", r->what,
                    tenant ? tenant : "-", r->body, value);
        assert_string_equal(r->body, value);
    }
    sh_resp_free(r);
}

/* The user keys /cache/keys lists (all pages), as a sorted comma-separated string. */
static char *list_keys(const char *token, const char *query, const char *tenant_hdr,
                       const char *expect_tenant)
{
    char cursor[32] = "0", path[512];
    json_t *all = json_array();
    for (int page = 0; page < 100; page++) {
        snprintf(path, sizeof path, "/cache/keys?%s&limit=1000&cursor=%s", query, cursor);
        sh_resp *r = sh_call(srv, "GET", path, token, tenant_hdr, NULL, NULL);
        SH_EXPECT_STATUS(r, 200);
        json_t *j = sh_resp_json(r);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "tenant")), expect_tenant);
        json_t *keys = json_object_get(j, "keys");
        for (size_t i = 0; i < json_array_size(keys); i++)
            json_array_append(all, json_object_get(json_array_get(keys, i), "key"));
        snprintf(cursor, sizeof cursor, "%s", json_string_value(json_object_get(j, "cursor")));
        json_decref(j);
        sh_resp_free(r);
        if (strcmp(cursor, "0") == 0)
            break;
    }
    /* sort: simple insertion sort of strings */
    size_t n = json_array_size(all);
    const char **v = calloc(n + 1, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(all, i));
        size_t k = i;
        while (k > 0 && strcmp(v[k - 1], s) > 0) {
            v[k] = v[k - 1];
            k--;
        }
        v[k] = s;
    }
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(v[i]) + 1;
    char *out = calloc(1, len);
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(out, ",");
        strcat(out, v[i]);
    }
    free(v);
    json_decref(all);
    return out;
}

static void expect_keys(const char *token, const char *query, const char *tenant_hdr,
                        const char *expect_tenant, const char *expected)
{
    char *got = list_keys(token, query, tenant_hdr, expect_tenant);
    if (strcmp(got, expected) != 0)
        fprintf(stderr, "/cache/keys?%s (X-Tenant %s): [%s], expected [%s]\n", query,
                tenant_hdr ? tenant_hdr : "-", got, expected);
    assert_string_equal(got, expected);
    free(got);
}

static void test_kv_isolation(void **state)
{
    (void)state;
    put_in("a", "k", "A");
    put_in("b", "k", "B");
    put_in("a", "onlya", "A1");
    put_in("b", "onlyb", "B1");
    get_in(READ, "a", "k", 200, "A");
    get_in(READ, "b", "k", 200, "B");
    get_in(READ, NULL, "k", 404, NULL); /* default is a tenant of its own */
    get_in(READ, "default", "k", 404, NULL);
    get_in(READ, "a", "onlyb", 404, NULL);
    get_in(READ, "b", "onlya", 404, NULL);
    assert_int_equal(redis_exists("strata:tn:a:k"), 1);
    assert_int_equal(redis_exists("strata:tn:b:k"), 1);
    assert_int_equal(redis_exists("strata:tn:default:k"), 0);

    /* DELETE in one tenant leaves the other's. */
    SH_CALL_EXPECT(srv, "DELETE", "/v1/cache/tn/k", WRITE, "b", NULL, NULL, 204);
    get_in(READ, "a", "k", 200, "A");
    get_in(READ, "b", "k", 404, NULL);
    put_in("b", "k", "B");

    /* _mget sees only its tenant. */
    sh_resp *r = sh_call(srv, "POST", "/v1/cache/tn/_mget", READ, "a", "application/json",
                         "{\"keys\":[\"k\",\"onlya\",\"onlyb\"]}");
    SH_EXPECT_STATUS(r, 200);
    json_t *j = sh_resp_json(r);
    json_t *items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "value")), "A");
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 1), "value")),
                        "A1");
    assert_true(json_is_false(json_object_get(json_array_get(items, 2), "hit")));
    json_decref(j);
    sh_resp_free(r);

    /* _mset writes into its tenant only. */
    SH_CALL_EXPECT(srv, "POST", "/v1/cache/tn/_mset", WRITE, "b", "application/json",
                   "{\"items\":[{\"key\":\"ms\",\"value\":\"in-b\"}]}", 200);
    get_in(READ, "b", "ms", 200, "in-b");
    get_in(READ, "a", "ms", 404, NULL);

    /* Tags: the same tag name in two tenants is two tags. */
    SH_CALL_EXPECT(srv, "PUT", "/v1/cache/tn/tagged?tags=shared", WRITE, "a", NULL, "ta", 204);
    SH_CALL_EXPECT(srv, "PUT", "/v1/cache/tn/tagged?tags=shared", WRITE, "b", NULL, "tb", 204);
    SH_CALL_EXPECT(srv, "POST", "/v1/invalidate", WRITE, "a", "application/json",
                   "{\"tags\":[\"shared\"]}", 200);
    get_in(READ, "a", "tagged", 404, NULL);
    get_in(READ, "b", "tagged", 200, "tb");

    /* Patterns: "*" in tenant a removes a's keys only. */
    put_in("a", "pa1", "x");
    put_in("b", "pa1", "y");
    r = sh_call(srv, "POST", "/v1/invalidate", WRITE, "a", "application/json",
                "{\"patterns\":[\"pa*\"]}");
    SH_EXPECT_STATUS(r, 200);
    j = sh_resp_json(r);
    assert_int_equal(json_integer_value(json_object_get(j, "keys_removed")), 1);
    json_decref(j);
    sh_resp_free(r);
    get_in(READ, "a", "pa1", 404, NULL);
    get_in(READ, "b", "pa1", 200, "y");

    /* A bad tenant name is refused, not mapped somewhere. */
    r = sh_call(srv, "GET", "/v1/cache/tn/k", READ, "bad tenant!", NULL, NULL);
    SH_EXPECT_ERROR(r, 400, "bad_tenant");
    sh_resp_free(r);
    r = sh_call(srv, "GET", "/v1/cache/tn/k", READ, "a:b", NULL, NULL);
    SH_EXPECT_ERROR(r, 400, "bad_tenant");
    sh_resp_free(r);
    assert_true(sh_healthy(srv));
}

static void test_bound_token(void **state)
{
    (void)state;
    /* Bound to acme, naming another tenant: 403, nothing written. */
    sh_resp *r = sh_call(srv, "PUT", "/v1/cache/tn/bound", ACME_WRITE, "other", NULL, "x");
    SH_EXPECT_ERROR(r, 403, "forbidden");
    sh_resp_free(r);
    r = sh_call(srv, "PUT", "/v1/cache/tn/bound", ACME_WRITE, "default", NULL, "x");
    SH_EXPECT_ERROR(r, 403, "forbidden");
    sh_resp_free(r);
    assert_int_equal(redis_exists("strata:tn:other:bound"), 0);
    assert_int_equal(redis_exists("strata:tn:default:bound"), 0);
    r = sh_call(srv, "GET", "/v1/cache/tn/k", ACME_WRITE, "a", NULL, NULL);
    SH_EXPECT_ERROR(r, 403, "forbidden");
    sh_resp_free(r);
    r = sh_call(srv, "POST", "/v1/cache/tn/_mget", ACME_WRITE, "a", "application/json",
                "{\"keys\":[\"k\"]}");
    SH_EXPECT_ERROR(r, 403, "forbidden");
    sh_resp_free(r);
    r = sh_call(srv, "POST", "/v1/invalidate", ACME_WRITE, "a", "application/json",
                "{\"patterns\":[\"*\"]}");
    SH_EXPECT_ERROR(r, 403, "forbidden");
    sh_resp_free(r);
    get_in(READ, "a", "k", 200, "A");

    /* Without X-Tenant it acts in acme; naming acme is fine too. */
    SH_CALL_EXPECT(srv, "PUT", "/v1/cache/tn/bound", ACME_WRITE, NULL, "text/plain", "acme-v", 204);
    assert_int_equal(redis_exists("strata:tn:acme:bound"), 1);
    assert_int_equal(redis_exists("strata:tn:default:bound"), 0);
    get_in(READ, "acme", "bound", 200, "acme-v");
    get_in(READ, NULL, "bound", 404, NULL);
    get_in(ACME_WRITE, NULL, "bound", 200, "acme-v");
    get_in(ACME_WRITE, "acme", "bound", 200, "acme-v");
    /* It cannot see the default tenant's keys. */
    put_in(NULL, "dflt", "D");
    get_in(ACME_WRITE, NULL, "dflt", 404, NULL);

    /* A bound admin token lists, inspects and clears its tenant only. */
    put_in("acme", "ak1", "1");
    put_in("acme", "ak2", "2");
    expect_keys(ACME_ADMIN, "namespace=tn", NULL, "acme", "ak1,ak2,bound");
    expect_keys(ACME_ADMIN, "namespace=tn&tenant=acme", NULL, "acme", "ak1,ak2,bound");
    r = sh_call(srv, "GET", "/cache/keys?namespace=tn&tenant=a", ACME_ADMIN, NULL, NULL, NULL);
    SH_EXPECT_ERROR(r, 403, "forbidden");
    sh_resp_free(r);
    r = sh_call(srv, "GET", "/cache/keys?namespace=tn", ACME_ADMIN, "a", NULL, NULL);
    SH_EXPECT_ERROR(r, 403, "forbidden");
    sh_resp_free(r);
    r = sh_call(srv, "GET", "/cache/key/tn/k?tenant=a", ACME_ADMIN, NULL, NULL, NULL);
    SH_EXPECT_ERROR(r, 403, "forbidden");
    sh_resp_free(r);
    r = sh_call(srv, "GET", "/cache/key/tn/dflt", ACME_ADMIN, NULL, NULL, NULL);
    SH_EXPECT_ERROR(r, 404, "not_found");
    sh_resp_free(r);
    r = sh_call(srv, "GET", "/cache/key/tn/ak1", ACME_ADMIN, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    json_t *j = sh_resp_json(r);
    assert_string_equal(json_string_value(json_object_get(j, "tenant")), "acme");
    json_decref(j);
    sh_resp_free(r);
    const char *wide[] = {"/cache/clear?all_tenants=true", "/cache/clear?all_tenants=1",
                          "/cache/clear?flush=true", "/cache/clear?namespace=tn&all_tenants=true"};
    for (size_t i = 0; i < sizeof wide / sizeof *wide; i++) {
        r = sh_call(srv, "POST", wide[i], ACME_ADMIN, NULL, NULL, NULL);
        SH_EXPECT_ERROR(r, 403, "forbidden");
        sh_resp_free(r);
        r = sh_call(srv, "DELETE", wide[i], ACME_ADMIN, NULL, NULL, NULL);
        SH_EXPECT_ERROR(r, 403, "forbidden");
        sh_resp_free(r);
    }
    r = sh_call(srv, "POST", "/cache/clear?namespace=tn&tenant=a", ACME_ADMIN, NULL, NULL, NULL);
    SH_EXPECT_ERROR(r, 403, "forbidden");
    sh_resp_free(r);
    get_in(READ, "a", "k", 200, "A");
    get_in(READ, NULL, "dflt", 200, "D");
    r = sh_call(srv, "POST", "/cache/clear?namespace=tn", ACME_ADMIN, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    j = sh_resp_json(r);
    assert_int_equal(json_integer_value(json_object_get(j, "removed")), 3);
    json_decref(j);
    sh_resp_free(r);
    get_in(READ, "acme", "ak1", 404, NULL);
    get_in(READ, "acme", "bound", 404, NULL);
    get_in(READ, "a", "k", 200, "A");
    get_in(READ, "b", "k", 200, "B");
    get_in(READ, NULL, "dflt", 200, "D");
    assert_true(sh_healthy(srv));
}

static void test_admin_isolation(void **state)
{
    (void)state;
    /* Fresh namespace: listing, inspection and clear, each in one tenant. */
    const char *ta[] = {"x1", "x2", "same"}, *tb[] = {"y1", "same"};
    for (size_t i = 0; i < 3; i++) {
        char path[128];
        snprintf(path, sizeof path, "/v1/cache/adm/%s", ta[i]);
        SH_CALL_EXPECT(srv, "PUT", path, WRITE, "ta", NULL, "a", 204);
    }
    for (size_t i = 0; i < 2; i++) {
        char path[128];
        snprintf(path, sizeof path, "/v1/cache/adm/%s", tb[i]);
        SH_CALL_EXPECT(srv, "PUT", path, WRITE, "tb", NULL, "b", 204);
    }
    SH_CALL_EXPECT(srv, "PUT", "/v1/cache/adm/d1", WRITE, NULL, NULL, "d", 204);
    expect_keys(ADMIN, "namespace=adm&tenant=ta", NULL, "ta", "same,x1,x2");
    expect_keys(ADMIN, "namespace=adm", "tb", "tb", "same,y1");
    expect_keys(ADMIN, "namespace=adm", NULL, "default", "d1");
    expect_keys(ADMIN, "namespace=adm&pattern=*", "ta", "ta", "same,x1,x2");

    sh_resp *r = sh_call(srv, "GET", "/cache/key/adm/x1?tenant=tb", ADMIN, NULL, NULL, NULL);
    SH_EXPECT_ERROR(r, 404, "not_found");
    sh_resp_free(r);
    r = sh_call(srv, "GET", "/cache/key/adm/same?tenant=tb", ADMIN, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    json_t *j = sh_resp_json(r);
    assert_string_equal(json_string_value(json_object_get(j, "tenant")), "tb");
    assert_string_equal(json_string_value(json_object_get(j, "value")), "b");
    json_decref(j);
    sh_resp_free(r);
    r = sh_call(srv, "GET", "/cache/key/adm/same", ADMIN, "ta", NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    j = sh_resp_json(r);
    assert_string_equal(json_string_value(json_object_get(j, "value")), "a");
    json_decref(j);
    sh_resp_free(r);

    /* Clear in ta: only ta's keys go. */
    r = sh_call(srv, "POST", "/cache/clear?namespace=adm&tenant=ta", ADMIN, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    j = sh_resp_json(r);
    assert_int_equal(json_integer_value(json_object_get(j, "removed")), 3);
    json_decref(j);
    sh_resp_free(r);
    expect_keys(ADMIN, "namespace=adm&tenant=ta", NULL, "ta", "");
    expect_keys(ADMIN, "namespace=adm&tenant=tb", NULL, "tb", "same,y1");
    SH_CALL_EXPECT(srv, "GET", "/v1/cache/adm/same", READ, "tb", NULL, NULL, 200);
    SH_CALL_EXPECT(srv, "GET", "/v1/cache/adm/same", READ, "ta", NULL, NULL, 404);
    SH_CALL_EXPECT(srv, "GET", "/v1/cache/adm/d1", READ, NULL, NULL, NULL, 200);
    /* Clear with X-Tenant, and with no tenant at all: the default tenant only. */
    r = sh_call(srv, "DELETE", "/cache/clear?namespace=adm", ADMIN, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    j = sh_resp_json(r);
    assert_int_equal(json_integer_value(json_object_get(j, "removed")), 1);
    json_decref(j);
    sh_resp_free(r);
    SH_CALL_EXPECT(srv, "GET", "/v1/cache/adm/same", READ, "tb", NULL, NULL, 200);
    SH_CALL_EXPECT(srv, "GET", "/v1/cache/adm/d1", READ, NULL, NULL, NULL, 404);
    /* An unbound admin may clear every tenant at once. */
    SH_CALL_EXPECT(srv, "PUT", "/v1/cache/adm/d1", WRITE, NULL, NULL, "d", 204);
    r = sh_call(srv, "POST", "/cache/clear?namespace=adm&all_tenants=true", ADMIN, NULL, NULL,
                NULL);
    SH_EXPECT_STATUS(r, 200);
    j = sh_resp_json(r);
    assert_int_equal(json_integer_value(json_object_get(j, "removed")), 3);
    json_decref(j);
    sh_resp_free(r);
    SH_CALL_EXPECT(srv, "GET", "/v1/cache/adm/same", READ, "tb", NULL, NULL, 404);
    SH_CALL_EXPECT(srv, "GET", "/v1/cache/adm/d1", READ, NULL, NULL, NULL, 404);
    assert_true(sh_healthy(srv));
}

static void test_clean_exit(void **state)
{
    (void)state;
    int rc = sh_stop_check(srv);
    srv = NULL;
    assert_int_equal(rc, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_isolation),
        cmocka_unit_test(test_bound_token),
        cmocka_unit_test(test_admin_isolation),
        cmocka_unit_test(test_clean_exit),
    };
    SH_TEST_FILTER();
    return cmocka_run_group_tests(tests, setup, teardown);
}
