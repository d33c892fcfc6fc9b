/* test_server_dashboard.c: what the dashboard needs of a real strata serve, over HTTP.
 *
 * - GET /dashboard and its files: served without a token (also with tokens configured), each
 *   with its type, a Content-Security-Policy allowing scripts and styles from the server alone
 *   (no inline ones: the page has none), a strong ETag answered 304 on If-None-Match, HEAD
 *   without a body; other methods 405.
 * - GET /cache/whoami: a token's role and tenant; no token 401; development mode says so.
 * - POST /cache/clear?dry_run=true: how many keys the clear would remove, removing none, in the
 *   tenant asked only, with Redis and without; refused with all_tenants or flush.
 * The page itself is tested in a browser by test_dashboard_browser.
 */
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

#define ADMIN  "dash-admin-token-1"
#define READER "dash-read-token-1"
#define ACME   "dash-acme-admin-token"

static void test_dashboard_files_served_strictly(void **state)
{
    (void)state;
    const char *env[] = {"STRATA_TOKENS=" ADMIN ":admin," READER ":read", NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    static const struct {
        const char *path, *type, *starts;
    } files[] = {
        {"/dashboard", "text/html; charset=utf-8", "<!doctype html>"},
        {"/dashboard/app.js", "text/javascript; charset=utf-8", "/* app.js"},
        {"/dashboard/app.css", "text/css; charset=utf-8", "/* app.css"},
        {"/dashboard/chart.js", "text/javascript; charset=utf-8", "/*!\n * Chart.js v3"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        sh_resp *r = sh_call(s, "GET", files[i].path, NULL, NULL, NULL, NULL); /* no token */
        SH_EXPECT_STATUS(r, 200);
        assert_string_equal(sh_resp_header(r, "Content-Type"), files[i].type);
        assert_true(r->body_len > 100);
        assert_memory_equal(r->body, files[i].starts, strlen(files[i].starts));
        const char *csp = sh_resp_header(r, "Content-Security-Policy");
        assert_non_null(csp);
        assert_non_null(strstr(csp, "default-src 'none'"));
        assert_non_null(strstr(csp, "script-src 'self';"));
        assert_non_null(strstr(csp, "connect-src 'self';"));
        assert_non_null(strstr(csp, "frame-ancestors 'none'"));
        assert_null(strstr(csp, "unsafe"));
        assert_string_equal(sh_resp_header(r, "X-Content-Type-Options"), "nosniff");
        assert_string_equal(sh_resp_header(r, "Cache-Control"), "no-cache");
        const char *etag = sh_resp_header(r, "ETag");
        assert_non_null(etag);
        assert_int_equal(strlen(etag), 18); /* "<16 hex digits>" */
        char inm[64];
        snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
        const char *h[] = {inm, NULL};
        sh_resp *again = sh_request(s, "GET", files[i].path, h, NULL, 0);
        SH_EXPECT_STATUS(again, 304);
        assert_int_equal(again->body_len, 0);
        assert_string_equal(sh_resp_header(again, "ETag"), etag);
        sh_resp_free(again);
        const char *other[] = {"If-None-Match: \"0000000000000000\"", NULL};
        again = sh_request(s, "GET", files[i].path, other, NULL, 0);
        SH_EXPECT_STATUS(again, 200);
        assert_int_equal(again->body_len, r->body_len);
        sh_resp_free(again);
        again = sh_call(s, "HEAD", files[i].path, NULL, NULL, NULL, NULL);
        SH_EXPECT_STATUS(again, 200);
        assert_int_equal(again->body_len, 0);
        sh_resp_free(again);
        sh_resp_free(r);
    }
    /* The page has no inline script: every <script> loads a file of the server's. */
    sh_resp *r = sh_call(s, "GET", "/dashboard", NULL, NULL, NULL, NULL);
    int scripts = 0;
    for (const char *p = strstr(r->body, "<script"); p != NULL; p = strstr(p + 1, "<script")) {
        assert_memory_equal(p, "<script src=\"/dashboard/", 24);
        scripts++;
    }
    assert_int_equal(scripts, 2);
    assert_null(strstr(r->body, "style=")); /* nor inline style */
    assert_null(strstr(r->body, "http://"));
    assert_null(strstr(r->body, "https://")); /* nothing from elsewhere */
    sh_resp_free(r);
    r = sh_call(s, "POST", "/dashboard", NULL, NULL, "text/plain", "x");
    SH_EXPECT_STATUS(r, 405);
    sh_resp_free(r);
    r = sh_call(s, "GET", "/dashboard/other.js", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 404);
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(s), 0);
}

static void expect_whoami(const sh_server *s, const char *token, const char *role,
                          const char *tenant, int tokens)
{
    sh_resp *r = sh_call(s, "GET", "/cache/whoami", token, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    json_t *j = sh_resp_json(r);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "role")), role);
    if (tenant == NULL)
        assert_true(json_is_null(json_object_get(j, "tenant")));
    else
        assert_string_equal(json_string_value(json_object_get(j, "tenant")), tenant);
    assert_int_equal(json_is_true(json_object_get(j, "tokens")), tokens);
    json_decref(j);
    sh_resp_free(r);
}

static void test_whoami_says_role_and_tenant(void **state)
{
    (void)state;
    const char *env[] = {"STRATA_TOKENS=" ADMIN ":admin," READER ":read," ACME ":admin:acme", NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    expect_whoami(s, ADMIN, "admin", NULL, 1);
    expect_whoami(s, READER, "read", NULL, 1);
    expect_whoami(s, ACME, "admin", "acme", 1);
    sh_resp *r = sh_call(s, "GET", "/cache/whoami", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 401);
    sh_resp_free(r);
    r = sh_call(s, "GET", "/cache/whoami", "not-a-token-at-all", NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 401);
    sh_resp_free(r);
    /* A stray X-Tenant does not matter: the call acts in no tenant. */
    r = sh_call(s, "GET", "/cache/whoami", READER, "other", NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(s), 0);
    /* Development mode: no tokens, every request admin. */
    s = sh_start(NULL, NULL);
    assert_non_null(s);
    expect_whoami(s, NULL, "admin", NULL, 0);
    assert_int_equal(sh_stop_check(s), 0);
}

static long long json_field(const sh_resp *r, const char *name)
{
    json_t *j = sh_resp_json(r);
    assert_non_null(j);
    json_t *v = json_object_get(j, name);
    assert_true(json_is_integer(v));
    long long n = json_integer_value(v);
    json_decref(j);
    return n;
}

static void put(const sh_server *s, const char *path, const char *tenant)
{
    sh_resp *r = sh_call(s, "PUT", path, ADMIN, tenant, "text/plain", "x");
    assert_true(r->status >= 200 && r->status < 300);
    sh_resp_free(r);
}

static void dry_run_counts(const char *redis_url)
{
    char redis_env[512];
    snprintf(redis_env, sizeof redis_env, "REDIS_URL=%s", redis_url ? redis_url : "");
    const char *env[] = {"STRATA_TOKENS=" ADMIN ":admin", redis_url ? redis_env : NULL, NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    char path[64];
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "/v1/cache/demo/j%d", i);
        put(s, path, NULL);
    }
    put(s, "/v1/cache/demo/a", NULL);
    put(s, "/v1/cache/other/j9", NULL);
    put(s, "/v1/cache/demo/j7", "acme");
    sh_resp *r = sh_call(s, "POST", "/cache/clear?namespace=demo&pattern=j*&dry_run=true", ADMIN,
                         NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    assert_int_equal(json_field(r, "matching"), 5);
    sh_resp_free(r);
    r = sh_call(s, "POST", "/cache/clear?pattern=j*&dry_run=1", ADMIN, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    assert_int_equal(json_field(r, "matching"), 6); /* every namespace */
    sh_resp_free(r);
    r = sh_call(s, "POST", "/cache/clear?namespace=demo&dry_run=true&tenant=acme", ADMIN, NULL,
                NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    assert_int_equal(json_field(r, "matching"), 1);
    sh_resp_free(r);
    /* Nothing was removed. */
    r = sh_call(s, "GET", "/v1/cache/demo/j3", ADMIN, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    sh_resp_free(r);
    /* The clear then removes what the dry run counted. */
    r = sh_call(s, "POST", "/cache/clear?namespace=demo&pattern=j*", ADMIN, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    assert_int_equal(json_field(r, "removed"), 5);
    sh_resp_free(r);
    r = sh_call(s, "POST", "/cache/clear?namespace=demo&pattern=j*&dry_run=true", ADMIN, NULL, NULL,
                NULL);
    assert_int_equal(json_field(r, "matching"), 0);
    sh_resp_free(r);
    /* One tenant at a time. */
    r = sh_call(s, "POST", "/cache/clear?all_tenants=true&dry_run=true", ADMIN, NULL, NULL, NULL);
    assert_true(sh_resp_is_error(r, "bad_request"));
    sh_resp_free(r);
    r = sh_call(s, "POST", "/cache/clear?flush=true&dry_run=true", ADMIN, NULL, NULL, NULL);
    assert_true(sh_resp_is_error(r, "bad_request"));
    sh_resp_free(r);
    r = sh_call(s, "GET", "/v1/cache/demo/a", ADMIN, NULL, NULL, NULL); /* not flushed */
    SH_EXPECT_STATUS(r, 200);
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(s), 0);
}

static void test_clear_dry_run_counts_without_removing(void **state)
{
    (void)state;
    dry_run_counts(NULL);
    rh_server *redis = rh_start(NULL);
    assert_non_null(redis);
    dry_run_counts(rh_url(redis));
    rh_stop(redis);
}

int main(void)
{
    SH_TEST_FILTER();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dashboard_files_served_strictly),
        cmocka_unit_test(test_whoami_says_role_and_tenant),
        cmocka_unit_test(test_clear_dry_run_counts_without_removing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
