/* test_server_auth.c: who may call what on strata serve. Every route, with every kind of caller
 * (no token, an unknown token, read, write, admin, and a write token bound to a tenant), answers
 * exactly what serve.c's needed_role() says: probes and health need nothing, /metrics nothing
 * unless --metrics-auth, KV reads and _mget need read, writes, _mset and invalidate need write,
 * the admin API needs admin; no token or an unknown one is 401 (with WWW-Authenticate), too low a
 * role 403, both with the API's JSON error body. Health shows details only to a read token.
 * SIGHUP reloads --tokens-file: a new token works and a removed one is 401 at once, and a broken
 * file keeps the tokens in force (logged as an error). */
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

#define TOKENS "admin-token-1:admin,read-token-1:read,write-token-1:write,acme-write-1:write:acme"

static rh_server *redis;
static char redis_env[320];

static int setup(void **state)
{
    (void)state;
    redis = rh_start(NULL);
    if (redis == NULL)
        return -1;
    snprintf(redis_env, sizeof redis_env, "REDIS_URL=%s", rh_url(redis));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rh_stop(redis);
    redis = NULL;
    return 0;
}

enum { NONE = 0, READ = 1, WRITE = 2, ADMIN = 3 };

typedef struct caller {
    const char *name;
    const char *token;  /* NULL: no Authorization header */
    int role;           /* NONE for no token and for an unknown one */
    const char *tenant; /* the tenant it acts in */
} caller;

static const caller callers[] = {
    {"no token", NULL, NONE, "default"},
    {"unknown token", "not-a-token-at-all", NONE, "default"},
    {"read", "read-token-1", READ, "default"},
    {"write", "write-token-1", WRITE, "default"},
    {"admin", "admin-token-1", ADMIN, "default"},
    {"acme write", "acme-write-1", WRITE, "acme"},
};

typedef struct route_case {
    const char *method, *path, *body;
    int need;
    long ok; /* the status when allowed */
} route_case;

static const route_case routes[] = {
    {"GET", "/livez", NULL, NONE, 200},
    {"HEAD", "/livez", NULL, NONE, 200},
    {"GET", "/readyz", NULL, NONE, 200},
    {"HEAD", "/readyz", NULL, NONE, 200},
    {"GET", "/metrics", NULL, NONE, 200},
    {"GET", "/cache/health", NULL, NONE, 200},
    {"GET", "/cache/stats", NULL, READ, 200},
    {"POST", "/cache/clear?namespace=authns&pattern=nothing-*", NULL, ADMIN, 200},
    {"DELETE", "/cache/clear?namespace=authns&pattern=nothing-*", NULL, ADMIN, 200},
    {"GET", "/cache/keys?namespace=authns", NULL, ADMIN, 200},
    {"GET", "/cache/key/authns/k", NULL, ADMIN, 200},
    {"GET", "/v1/cache/authns/k", NULL, READ, 200},
    {"HEAD", "/v1/cache/authns/k", NULL, READ, 200},
    {"PUT", "/v1/cache/authns/k", "value", WRITE, 204},
    {"DELETE", "/v1/cache/authns/k", NULL, WRITE, 204},
    {"POST", "/v1/cache/authns/_mget", "{\"keys\":[\"k\"]}", READ, 200},
    {"POST", "/v1/cache/authns/_mset", "{\"items\":[{\"key\":\"m\",\"value\":\"v\"}]}", WRITE, 200},
    {"POST", "/v1/invalidate", "{\"tags\":[\"authtag\"]}", WRITE, 200},
};

/* The key every read route reads exists, in both tenants, before each call. */
static void seed(sh_server *s)
{
    SH_CALL_EXPECT(s, "PUT", "/v1/cache/authns/k", "admin-token-1", NULL, "text/plain", "seed",
                   204);
    SH_CALL_EXPECT(s, "PUT", "/v1/cache/authns/k", "admin-token-1", "acme", "text/plain", "seed",
                   204);
}

static void test_matrix(void **state)
{
    (void)state;
    const char *env[] = {redis_env, "STRATA_WORKERS=2", "STRATA_TOKENS=" TOKENS, NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    int failures = 0;
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        for (size_t c = 0; c < sizeof callers / sizeof *callers; c++) {
            const route_case *rc = &routes[i];
            const caller *who = &callers[c];
            seed(s);
            long expect = rc->ok;
            const char *code = NULL;
            if (who->role < rc->need) {
                expect = who->role == NONE ? 401 : 403;
                code = who->role == NONE ? "unauthorized" : "forbidden";
            }
            sh_resp *r = sh_call(s, rc->method, rc->path, who->token, NULL,
                                 rc->body ? "application/json" : NULL, rc->body);
            int bad = r->status != expect;
            if (!bad && code != NULL && strcmp(rc->method, "HEAD") != 0)
                bad = !sh_resp_is_error(r, code);
            if (!bad && expect == 401) {
                const char *wa = sh_resp_header(r, "WWW-Authenticate");
                bad = wa == NULL || strncmp(wa, "Bearer", 6) != 0;
            }
            if (bad) {
                fprintf(stderr, "%s %s as %s: expected %ld, got %ld: %s\n", rc->method, rc->path,
                        who->name, expect, r->status, r->body);
                failures++;
            }
            sh_resp_free(r);
        }
    }
    assert_int_equal(failures, 0);

    /* The scheme name is case-insensitive; other schemes are no token at all. */
    SH_CALL_EXPECT(s, "GET", "/cache/stats", "admin-token-1", NULL, NULL, NULL, 200);
    const char *lower[] = {"Authorization: bearer admin-token-1", NULL};
    sh_resp *r = sh_request(s, "GET", "/cache/stats", lower, NULL, 0);
    SH_EXPECT_STATUS(r, 200);
    sh_resp_free(r);
    const char *basic[] = {"Authorization: Basic YWRtaW46YWRtaW4=", NULL};
    r = sh_request(s, "GET", "/cache/stats", basic, NULL, 0);
    SH_EXPECT_ERROR(r, 401, "unauthorized");
    sh_resp_free(r);
    /* A prefix or an extension of a token is not the token. */
    const char *prefix[] = {"Authorization: Bearer admin-token-", NULL};
    r = sh_request(s, "GET", "/cache/stats", prefix, NULL, 0);
    SH_EXPECT_ERROR(r, 401, "unauthorized");
    sh_resp_free(r);
    const char *longer[] = {"Authorization: Bearer admin-token-11", NULL};
    r = sh_request(s, "GET", "/cache/stats", longer, NULL, 0);
    SH_EXPECT_ERROR(r, 401, "unauthorized");
    sh_resp_free(r);
    /* The write the bound token did landed in acme, not in default. */
    r = sh_call(s, "GET", "/v1/cache/authns/m", "read-token-1", "acme", NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    sh_resp_free(r);

    /* Health: the status for anyone, details for a read token. */
    const char *detail_keys[] = {"redis_configured", "redis_available", "breaker", "readonly",
                                 "l1_entries"};
    for (size_t c = 0; c < sizeof callers / sizeof *callers; c++) {
        r = sh_call(s, "GET", "/cache/health", callers[c].token, NULL, NULL, NULL);
        SH_EXPECT_STATUS(r, 200);
        json_t *j = sh_resp_json(r);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "status")), "healthy");
        if (callers[c].role == NONE) {
            if (json_object_size(j) != 1)
                fprintf(stderr, "health as %s shows details: %s\n", callers[c].name, r->body);
            assert_int_equal(json_object_size(j), 1);
        } else {
            for (size_t k = 0; k < sizeof detail_keys / sizeof *detail_keys; k++) {
                if (json_object_get(j, detail_keys[k]) == NULL)
                    fprintf(stderr, "health as %s lacks %s: %s\n", callers[c].name, detail_keys[k],
                            r->body);
                assert_non_null(json_object_get(j, detail_keys[k]));
            }
            assert_true(json_is_true(json_object_get(j, "redis_available")));
            assert_true(json_is_true(json_object_get(j, "redis_configured")));
        }
        json_decref(j);
        sh_resp_free(r);
    }
    assert_int_equal(sh_stop_check(s), 0);
}

static void test_metrics_auth(void **state)
{
    (void)state;
    const char *env[] = {"STRATA_WORKERS=1", "STRATA_TOKENS=" TOKENS, NULL};
    const char *args[] = {"--metrics-auth", NULL};
    sh_server *s = sh_start(env, args);
    assert_non_null(s);
    sh_resp *r = sh_call(s, "GET", "/metrics", NULL, NULL, NULL, NULL);
    SH_EXPECT_ERROR(r, 401, "unauthorized");
    sh_resp_free(r);
    r = sh_call(s, "GET", "/metrics", "not-a-token-at-all", NULL, NULL, NULL);
    SH_EXPECT_ERROR(r, 401, "unauthorized");
    sh_resp_free(r);
    SH_CALL_EXPECT(s, "GET", "/metrics", "read-token-1", NULL, NULL, NULL, 200);
    SH_CALL_EXPECT(s, "GET", "/metrics", "admin-token-1", NULL, NULL, NULL, 200);
    SH_CALL_EXPECT(s, "GET", "/livez", NULL, NULL, NULL, NULL, 200);
    assert_int_equal(sh_stop_check(s), 0);

    const char *env2[] = {"STRATA_WORKERS=1", "STRATA_TOKENS=" TOKENS, "STRATA_METRICS_AUTH=true",
                          NULL};
    s = sh_start(env2, NULL);
    assert_non_null(s);
    r = sh_call(s, "GET", "/metrics", NULL, NULL, NULL, NULL);
    SH_EXPECT_ERROR(r, 401, "unauthorized");
    sh_resp_free(r);
    SH_CALL_EXPECT(s, "GET", "/metrics", "read-token-1", NULL, NULL, NULL, 200);
    assert_int_equal(sh_stop_check(s), 0);
}

/* Writes text to path atomically (a temp file renamed over it). */
static void write_file(const char *path, const char *text)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
}

/* An admin-only call (the key listing): 200 tells an admin token from the others' 403. */
static long status_with(sh_server *s, const char *token)
{
    sh_resp *r = sh_call(s, "GET", "/cache/keys", token, NULL, NULL, NULL);
    long st = r->status;
    sh_resp_free(r);
    return st;
}

typedef struct wait_arg {
    sh_server *s;
    const char *token;
    long status;
} wait_arg;

static int answers(void *p)
{
    wait_arg *w = p;
    return status_with(w->s, w->token) == w->status;
}

static int log_has(void *p)
{
    wait_arg *w = p;
    return sh_log_contains(w->s, w->token);
}

static void test_sighup(void **state)
{
    (void)state;
    char dir[] = "/tmp/strata-sighup-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/tokens", dir);
    write_file(path, "# tokens\nold-admin-token:admin\nold-reader-tok:read\n");
    const char *env[] = {"STRATA_WORKERS=2", "STRATA_TOKENS=env-admin-token:admin", NULL};
    const char *args[] = {"--tokens-file", path, NULL};
    sh_server *s = sh_start(env, args);
    assert_non_null(s);
    assert_int_equal(status_with(s, "old-admin-token"), 200);
    assert_int_equal(status_with(s, "new-admin-token"), 401);
    assert_int_equal(status_with(s, "env-admin-token"), 200);
    assert_int_equal(status_with(s, "old-reader-tok"), 403);

    /* New file: a new token, the old admin one removed, the reader promoted. */
    write_file(path, "new-admin-token:admin\nold-reader-tok:admin\n");
    assert_int_equal(sh_signal(s, SIGHUP), 0);
    wait_arg w = {s, "new-admin-token", 200};
    assert_true(rh_wait_for(answers, &w, 3000));
    assert_int_equal(status_with(s, "old-admin-token"), 401);
    assert_int_equal(status_with(s, "old-reader-tok"), 200);
    assert_int_equal(status_with(s, "env-admin-token"), 200); /* STRATA_TOKENS stay */
    wait_arg l = {s, "SIGHUP: 3 tokens loaded", 0};
    assert_true(rh_wait_for(log_has, &l, 2000));

    /* A broken file: the tokens in force stay, and the error is logged. */
    write_file(path, "new-admin-token:admin\nthis line has no role\n");
    assert_int_equal(sh_signal(s, SIGHUP), 0);
    wait_arg e = {s, "tokens not reloaded", 0};
    assert_true(rh_wait_for(log_has, &e, 3000));
    assert_int_equal(status_with(s, "new-admin-token"), 200);
    assert_int_equal(status_with(s, "old-reader-tok"), 200);
    assert_int_equal(status_with(s, "old-admin-token"), 401);
    /* The log names the file and line, never the token text. */
    char *log = sh_log(s);
    assert_null(strstr(log, "this line has no role"));
    assert_null(strstr(log, "new-admin-token"));
    free(log);

    /* A missing file: the same. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(sh_signal(s, SIGHUP), 0);
    sh_sleep_ms(300);
    assert_int_equal(status_with(s, "new-admin-token"), 200);
    assert_int_equal(status_with(s, "old-admin-token"), 401);

    /* And a good file again works again. */
    write_file(path, "third-admin-token:admin\n");
    assert_int_equal(sh_signal(s, SIGHUP), 0);
    wait_arg t = {s, "third-admin-token", 200};
    assert_true(rh_wait_for(answers, &t, 3000));
    assert_int_equal(status_with(s, "new-admin-token"), 401);
    /* One token left (STRATA_TOKENS'): "1 token", not "1 tokens" (hardening item 18). */
    write_file(path, "# none here now\n");
    assert_int_equal(sh_signal(s, SIGHUP), 0);
    wait_arg one = {s, "SIGHUP: 1 token loaded", 0};
    assert_true(rh_wait_for(log_has, &one, 3000));
    assert_true(sh_healthy(s));
    assert_int_equal(sh_stop_check(s), 0);
    unlink(path);
    rmdir(dir);
}

/* The start line counts tokens in English: "1 token" (it said "1 tokens"). */
static void test_start_line_counts_tokens(void **state)
{
    (void)state;
    const char *env[] = {"STRATA_TOKENS=the-only-token:admin", NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    wait_arg w = {s, ", 1 token)", 0}; /* logged once the workers run: maybe after /livez */
    assert_true(rh_wait_for(log_has, &w, 3000));
    assert_false(sh_log_contains(s, "1 tokens"));
    assert_int_equal(sh_stop_check(s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matrix),
        cmocka_unit_test(test_metrics_auth),
        cmocka_unit_test(test_sighup),
        cmocka_unit_test(test_start_line_counts_tokens),
    };
    SH_TEST_FILTER();
    return cmocka_run_group_tests(tests, setup, teardown);
}
