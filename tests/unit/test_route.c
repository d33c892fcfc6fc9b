/* test_route.c: the route table (src/server/routes.h) and its matcher (src/server/route.c).
 *
 * Every row is reached by a path of its pattern, with its methods, role, flags and name; path
 * parameters come back percent-decoded (an encoded '/' stays inside a key) and are refused
 * strictly (bad escapes, not UTF-8, control characters, bad or reserved namespaces, keys over
 * the limit: 414); paths that fit no row (empty segments, extra segments, no leading '/') are
 * not found; the Allow list of a 405 names exactly a route's methods.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "route.h"

#define KEY_MAX 512

static route r; /* 4 KiB: not on the stack */

static void match(const char *path)
{
    route_match(path, KEY_MAX, &r);
}

/* ---- every row ---------------------------------------------------------------------------- */

typedef struct expect {
    const char *path;
    int id;
    const char *name;
    unsigned methods;
    int role;
    unsigned flags;
    const char *ns, *key;
} expect;

static void test_every_route(void **state)
{
    (void)state;
    static const expect rows[] = {
        {"/livez", R_LIVEZ, "livez", M_GET | M_HEAD, RR_NONE, RF_NO_TENANT, "", ""},
        {"/readyz", R_READYZ, "readyz", M_GET | M_HEAD, RR_NONE, RF_NO_TENANT, "", ""},
        {"/metrics", R_METRICS, "metrics", M_GET, RR_METRICS, 0, "", ""},
        {"/cache/health", R_HEALTH, "health", M_GET, RR_NONE, 0, "", ""},
        {"/cache/stats", R_STATS, "stats", M_GET, RR_READ, 0, "", ""},
        {"/cache/stats/history", R_HISTORY, "stats_history", M_GET, RR_READ, RF_NO_TENANT, "", ""},
        {"/cache/clear", R_CLEAR, "clear", M_POST | M_DELETE, RR_ADMIN, RF_TENANT_QUERY, "", ""},
        {"/cache/purge", R_PURGE, "purge", M_POST, RR_WRITE, 0, "", ""},
        {"/cache/keys", R_KEYS, "keys", M_GET, RR_ADMIN, RF_TENANT_QUERY, "", ""},
        {"/cache/key/ns1/k1", R_INSPECT, "inspect", M_GET, RR_ADMIN, RF_TENANT_QUERY, "ns1", "k1"},
        {"/v1/cache/ns2/k2", R_KV, "kv", M_GET | M_HEAD | M_PUT | M_PATCH | M_DELETE, RR_READ_WRITE,
         0, "ns2", "k2"},
        {"/v1/cache/ns3/_mget", R_MGET, "mget", M_POST, RR_READ, 0, "ns3", ""},
        {"/v1/cache/ns4/_mset", R_MSET, "mset", M_POST, RR_WRITE, 0, "ns4", ""},
        {"/v1/invalidate", R_INVALIDATE, "invalidate", M_POST, RR_WRITE, 0, "", ""},
        {"/v1/ratelimit/rl", R_RATELIMIT, "ratelimit", M_POST, RR_WRITE, 0, "", "rl"},
        {"/v1/sessions", R_SESSIONS, "sessions", M_POST, RR_WRITE, 0, "", ""},
        {"/v1/sessions/s1", R_SESSION, "session", M_GET | M_PUT | M_PATCH | M_DELETE, RR_READ_WRITE,
         0, "", "s1"},
        {"/cache/whoami", R_WHOAMI, "whoami", M_GET, RR_READ, RF_NO_TENANT, "", ""},
        {"/dashboard", R_DASHBOARD, "dashboard", M_GET | M_HEAD, RR_NONE, RF_NO_TENANT, "", ""},
        {"/dashboard/app.js", R_DASHBOARD_JS, "dashboard_js", M_GET | M_HEAD, RR_NONE, RF_NO_TENANT,
         "", ""},
        {"/dashboard/app.css", R_DASHBOARD_CSS, "dashboard_css", M_GET | M_HEAD, RR_NONE,
         RF_NO_TENANT, "", ""},
        {"/dashboard/chart.js", R_DASHBOARD_CHART, "dashboard_chart", M_GET | M_HEAD, RR_NONE,
         RF_NO_TENANT, "", ""},
    };
    int seen[R_COUNT] = {0};
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        const expect *e = &rows[i];
        match(e->path);
        assert_int_equal(r.id, e->id);
        assert_null(r.error);
        assert_string_equal(route_name(r.id), e->name);
        assert_int_equal(r.methods, e->methods);
        assert_int_equal(r.role, e->role);
        assert_int_equal(r.flags, e->flags);
        assert_string_equal(r.ns, e->ns);
        assert_string_equal(r.key, e->key);
        assert_int_equal(r.key_len, strlen(e->key));
        seen[r.id] = 1;
    }
    for (int id = 1; id < R_PROXY; id++)
        assert_true(seen[id]); /* a row added to routes.h needs a line above */
    /* R_PROXY and R_PURGE_URL have no row: no path matches them (dispatch.c routes to them). */
    assert_false(seen[R_PROXY]);
    assert_false(seen[R_PURGE_URL]);
    assert_false(seen[R_LLM]);
    assert_string_equal(route_name(R_PROXY), "proxy");
    assert_string_equal(route_name(R_PURGE_URL), "purge_url");
    assert_string_equal(route_name(R_LLM), "llm");
    assert_string_equal(route_name(R_NOT_FOUND), "not_found");
    assert_string_equal(route_name(R_COUNT), "not_found");
    assert_string_equal(route_name(-1), "not_found");
}

static void test_literal_before_parameter(void **state)
{
    (void)state;
    /* "_mget" is the batch route, never a key named _mget; a near miss is a key. */
    match("/v1/cache/ns/_mget");
    assert_int_equal(r.id, R_MGET);
    match("/v1/cache/ns/_mgets");
    assert_int_equal(r.id, R_KV);
    assert_string_equal(r.key, "_mgets");
}

/* ---- not found ---------------------------------------------------------------------------- */

static void test_not_found(void **state)
{
    (void)state;
    const char *paths[] = {"",
                           "/",
                           "livez",
                           "/livez/",
                           "/livez/x",
                           "//livez",
                           "/cache",
                           "/cache/nope",
                           "/v1/cache/",
                           "/v1/cache//k",
                           "/v1/cache/ns//",
                           "/v1/cache/ns/k/extra",
                           "/v1/cache/a/b/c/d/e/f",
                           "/LIVEZ",
                           "/v1/sessions/a/b",
                           "/cache/key/ns"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        match(paths[i]);
        assert_int_equal(r.id, R_NOT_FOUND);
        assert_int_equal(r.methods, 0);
    }
}

/* ---- parameters --------------------------------------------------------------------------- */

static void test_params_decoded(void **state)
{
    (void)state;
    match("/v1/cache/ns/a%2Fb%20c");
    assert_int_equal(r.id, R_KV);
    assert_string_equal(r.key, "a/b c"); /* an encoded '/' stays inside the key */
    assert_int_equal(r.key_len, 5);
    match("/v1/cache/n%73/k");
    assert_string_equal(r.ns, "ns");
    match("/v1/cache/ns/a+b");
    assert_string_equal(r.key, "a+b"); /* '+' is not a space in a path */
    match("/v1/cache/ns/%C3%A9t%C3%A9");
    assert_null(r.error);
    assert_string_equal(r.key, "\xc3\xa9t\xc3\xa9");
    match("/v1/sessions/s%2D1");
    assert_string_equal(r.key, "s-1");
}

static void expect_error(const char *path, int id, const char *code, int status)
{
    match(path);
    assert_int_equal(r.id, id);
    assert_non_null(r.error);
    assert_string_equal(r.error_code, code);
    assert_int_equal(route_error_status(&r), status);
}

static void test_params_refused(void **state)
{
    (void)state;
    expect_error("/v1/cache/ns/a%2", R_KV, "bad_key", 400);
    expect_error("/v1/cache/ns/a%zz", R_KV, "bad_key", 400);
    expect_error("/v1/cache/ns/a%00b", R_KV, "bad_key", 400);
    expect_error("/v1/cache/ns/a%0Ab", R_KV, "bad_key", 400);
    expect_error("/v1/cache/ns/%C3%28", R_KV, "bad_key", 400);
    expect_error("/v1/cache/ns/%C2%80", R_KV, "bad_key", 400);    /* C1 control */
    expect_error("/v1/cache/ns/%ED%A0%80", R_KV, "bad_key", 400); /* surrogate */
    expect_error("/v1/cache/ns/%C0%AF", R_KV, "bad_key", 400);    /* overlong */
    expect_error("/v1/cache/bad:ns/k", R_KV, "bad_namespace", 400);
    expect_error("/v1/cache/%ZZ/k", R_KV, "bad_namespace", 400);
    expect_error("/v1/cache/_sessions/k", R_KV, "reserved_namespace", 400);
    expect_error("/v1/cache/bad:ns/_mget", R_MGET, "bad_namespace", 400);
    expect_error("/cache/key/a*b/k", R_INSPECT, "bad_namespace", 400);
    expect_error("/v1/ratelimit/%FF", R_RATELIMIT, "bad_key", 400);
    expect_error("/v1/sessions/%01", R_SESSION, "bad_key", 400);
}

static void test_key_limit(void **state)
{
    (void)state;
    static char path[4 * KEY_MAX];
    int n = snprintf(path, sizeof path, "/v1/cache/ns/");
    memset(path + n, 'k', KEY_MAX);
    path[n + KEY_MAX] = '\0';
    match(path);
    assert_null(r.error);
    assert_int_equal(r.key_len, KEY_MAX);
    path[n + KEY_MAX] = 'k';
    path[n + KEY_MAX + 1] = '\0';
    expect_error(path, R_KV, "key_too_long", 414);
    /* Percent-encoded past what the key buffer holds: still 414, never a truncated key. */
    for (int i = 0; i < KEY_MAX + 10; i++)
        memcpy(path + n + 3 * i, "%41", 3);
    path[n + 3 * (KEY_MAX + 10)] = '\0';
    expect_error(path, R_KV, "key_too_long", 414);
    /* A smaller limit, as STRATA_L1_MAX_KEY_LEN sets it. */
    route_match("/v1/cache/ns/abcdef", 5, &r);
    assert_string_equal(r.error_code, "key_too_long");
}

/* ---- methods ------------------------------------------------------------------------------ */

static void test_allow(void **state)
{
    (void)state;
    char allow[96];
    match("/v1/cache/ns/k");
    route_allow(r.methods, allow, sizeof allow);
    assert_string_equal(allow, "GET, HEAD, PUT, DELETE, PATCH");
    match("/v1/sessions/s");
    route_allow(r.methods, allow, sizeof allow);
    assert_string_equal(allow, "GET, PUT, DELETE, PATCH");
    match("/cache/clear");
    route_allow(r.methods, allow, sizeof allow);
    assert_string_equal(allow, "POST, DELETE");
    match("/v1/cache/ns/_mget");
    assert_false(r.methods & M_GET); /* a GET is a 405, not a read of the key "_mget" */
    route_allow(r.methods, allow, sizeof allow);
    assert_string_equal(allow, "POST");
    char small[8];
    route_allow(M_GET | M_HEAD | M_PUT, small, sizeof small);
    assert_true(strlen(small) < sizeof small); /* cut, never overrun */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route),    cmocka_unit_test(test_literal_before_parameter),
        cmocka_unit_test(test_not_found),      cmocka_unit_test(test_params_decoded),
        cmocka_unit_test(test_params_refused), cmocka_unit_test(test_key_limit),
        cmocka_unit_test(test_allow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
