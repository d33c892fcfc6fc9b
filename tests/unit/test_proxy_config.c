/* test_proxy_config.c: the proxy's configuration file (src/server/proxy/proxy_config.c), its
 * matcher (route_match.c, proxy_config_match.c) and its key builder (cache_key.c).
 *
 * A full file loads into the model it says; every kind of fault is refused with the file, line
 * and column asserted; examples/proxy.yaml (the one docs/operations.md shows) loads; secrets are
 * named by variable only; the matcher finds the first route by method, host and path with its
 * parameters and never lets a route claim strata's own paths; keys have a normalised, filtered,
 * sorted query, the chosen headers and the window, and a long key is hashed behind its readable
 * prefix; --upstream alone is one route; a reload keeps the old model on a bad file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "config.h"
#include "proxy/cache_key.h"
#include "proxy/proxy_config.h"

static char err[1024];

static proxy_config *load(const char *yaml)
{
    proxy_config *c = NULL;
    err[0] = '\0';
    int rc = proxy_config_load_bytes("t.yaml", yaml, strlen(yaml), &serve_proxy_options, &c, err,
                                     sizeof err);
    if (rc != 0)
        assert_null(c);
    return c;
}

static const char full[] =
    "version: 1\n"
    "origins:\n"
    "  - name: api\n"
    "    url: http://127.0.0.1:9000/base\n"
    "    connect_timeout: 2s\n"
    "    first_byte_timeout: 1.5\n"
    "    total_timeout: 1m\n"
    "    idle_timeout: 250ms\n"
    "    max_connections: 8\n"
    "    max_queue: 32\n"
    "    max_idle: 4\n"
    "  - name: llm\n"
    "    url: https://127.0.0.1:9443\n"
    "    tls: {server_name: llm.test, insecure: true}\n"
    "    token_env: TEST_PROXY_KEY\n"
    "routes:\n"
    "  - name: task\n"
    "    match: {methods: [GET, HEAD], path: '/tasks/{id}', host: API.example.com}\n"
    "    origin: api\n"
    "    ttl: 60\n"
    "    grace: 10s\n"
    "    stale_if_error: 5m\n"
    "    error_ttl: 10s\n"
    "    error_statuses: [500-503, 429]\n"
    "    cacheable_statuses: [200, 4xx]\n"
    "    rfc9111: override\n"
    "    key:\n"
    "      query: {drop: [utm_source, 'a%7eb']}\n"
    "      headers: [X-Plan, Accept-Language]\n"
    "      window: 30\n"
    "    tags: ['task:{id}', tasks]\n"
    "    rate_limit: {limit: 100, period: 1, burst: 20, by: ip}\n"
    "  - name: energy\n"
    "    match: {path: /energy/*}\n"
    "    origin: llm\n"
    "    key: {query: {keep: [to, from]}, path_params: []}\n"
    "    rate_limit: 'lim:limit=5,period=2,by=header:X-Key'\n"
    "invalidations:\n"
    "  - name: task-update\n"
    "    match: {methods: [PUT, DELETE], path: '/tasks/{id}'}\n"
    "    tags: ['task:{id}', 'tasks:list']\n"
    "    keys: ['GET */tasks/{id}*']\n"
    "  - match: {path: /tasks}\n"
    "    tags: ['tasks:list']\n";

static void test_full_file(void **state)
{
    (void)state;
    setenv("TEST_PROXY_KEY", "sk-test", 1);
    proxy_config *c = load(full);
    assert_non_null(c);
    assert_string_equal(c->source, "t.yaml");
    assert_int_equal(c->norigins, 2);
    const proxy_origin *api = &c->origins[0], *llm = &c->origins[1];
    assert_string_equal(api->name, "api");
    assert_string_equal(api->url, "http://127.0.0.1:9000/base");
    assert_int_equal(api->opts.connect_timeout_ms, 2000);
    assert_int_equal(api->opts.first_byte_timeout_ms, 1500);
    assert_int_equal(api->opts.total_timeout_ms, 60000);
    assert_int_equal(api->opts.idle_timeout_ms, 250);
    assert_int_equal(api->opts.max_conns, 8);
    assert_int_equal(api->opts.max_queue, 32);
    assert_int_equal(api->opts.max_idle, 4);
    assert_non_null(api->up);
    assert_string_equal(upstream_origin_base_path(api->up), "/base");
    assert_int_equal(api->line, 3);
    assert_string_equal(llm->opts.server_name, "llm.test");
    assert_int_equal(llm->opts.tls_insecure, 1);
    assert_string_equal(llm->token_env, "TEST_PROXY_KEY");
    assert_string_equal(llm->token_header, "Authorization");

    assert_int_equal(c->nroutes, 2);
    const proxy_route *r = &c->routes[0];
    assert_string_equal(r->name, "task");
    assert_int_equal(r->line, 17);
    assert_int_equal(r->match.methods, PROXY_M_GET | PROXY_M_HEAD);
    assert_string_equal(r->match.host, "api.example.com");
    assert_ptr_equal(r->origin, api);
    assert_int_equal(r->ttl_ms, 60000);
    assert_int_equal(r->grace_ms, 10000);
    assert_int_equal(r->stale_if_error_ms, 300000);
    assert_int_equal(r->error_ttl_ms, 10000);
    assert_true(proxy_status_in(&r->error_statuses, 502));
    assert_true(proxy_status_in(&r->error_statuses, 429));
    assert_false(proxy_status_in(&r->error_statuses, 504));
    assert_true(proxy_status_in(&r->cacheable_statuses, 404));
    assert_false(proxy_status_in(&r->cacheable_statuses, 301));
    assert_int_equal(r->rfc9111, PROXY_RFC9111_OVERRIDE);
    assert_int_equal(r->key.query, PROXY_QUERY_DROP);
    assert_int_equal(r->key.nquery_names, 2);
    assert_string_equal(r->key.query_names[0], "a~b"); /* normalised, sorted */
    assert_string_equal(r->key.query_names[1], "utm_source");
    assert_int_equal(r->key.nheaders, 2);
    assert_string_equal(r->key.headers[0], "accept-language"); /* lower case, sorted */
    assert_string_equal(r->key.headers[1], "x-plan");
    assert_int_equal(r->key.window_s, 30);
    assert_int_equal(r->ntags, 2);
    assert_string_equal(r->rate_limit, "task:limit=100,period=1,burst=20,by=ip");

    const proxy_route *e = &c->routes[1];
    assert_int_equal(e->match.methods, PROXY_M_GET | PROXY_M_HEAD); /* the default */
    assert_null(e->match.host);
    assert_true(e->match.path.wildcard);
    assert_ptr_equal(e->origin, llm);
    assert_int_equal(e->rfc9111, PROXY_RFC9111_OBEY);
    assert_false(e->ttl_set);
    assert_true(proxy_status_in(&e->error_statuses, 500)); /* defaults */
    assert_true(proxy_status_in(&e->cacheable_statuses, 301));
    assert_false(proxy_status_in(&e->cacheable_statuses, 302));
    assert_int_equal(e->key.query, PROXY_QUERY_KEEP);
    assert_string_equal(e->key.query_names[0], "from");
    assert_true(e->key.path_params_set);
    assert_string_equal(e->rate_limit, "lim:limit=5,period=2,by=header:X-Key");

    assert_int_equal(c->ninvalidations, 2);
    assert_string_equal(c->invalidations[0].name, "task-update");
    assert_int_equal(c->invalidations[0].match.methods, PROXY_M_PUT | PROXY_M_DELETE);
    assert_int_equal(c->invalidations[0].ntags, 2);
    assert_int_equal(c->invalidations[0].nkeys, 1);
    assert_int_equal(c->invalidations[1].match.methods,
                     PROXY_M_PUT | PROXY_M_PATCH | PROXY_M_POST | PROXY_M_DELETE);
    proxy_config_free(c);
    proxy_config_free(NULL);
}

static void test_example_file_loads(void **state)
{
    (void)state;
    setenv("OPENAI_API_KEY", "sk-example", 1);
    proxy_config *c = NULL;
    int rc = proxy_config_load_file(STRATA_SOURCE_DIR "/examples/proxy.yaml", &serve_proxy_options,
                                    &c, err, sizeof err);
    if (rc != 0)
        fail_msg("examples/proxy.yaml: %s", err);
    assert_int_equal(c->nroutes, 3);
    assert_int_equal(c->norigins, 2);
    assert_int_equal(c->ninvalidations, 1);
    proxy_config_free(c);
}

/* ---- errors ------------------------------------------------------------------------------- */

#define O "origins: [{name: api, url: 'http://127.0.0.1:9000'}]\n"

static const struct bad {
    const char *yaml;
    const char *where; /* "t.yaml:LINE:COL" */
    const char *what;  /* a piece of the message */
} bad[] = {
    {"", "t.yaml:1:1", "empty"},
    {"routes: [\n", "t.yaml:2:1", "YAML"},
    {"a: 1\na: 2\n", "t.yaml:2:1", "duplicate key"},
    {"origns: []\n", "t.yaml:1:1", "unknown key \"origns\"; expected one of: version, origins"},
    {O "routes:\n  - name: t\n    match: {path: /t}\n    tll: 5\n", "t.yaml:5:5",
     "route \"t\": unknown key \"tll\"; expected one of: name, match"},
    {O "routes:\n  - name: t\n    match: {path: /t}\n    ttl: 5 minutes\n", "t.yaml:5:10",
     "is not a duration"},
    {O "routes:\n  - name: t\n    match: {path: /t}\n    error_statuses: [5xx, 700]\n",
     "t.yaml:5:27", "expected statuses from 100 to 599"},
    {O "routes:\n  - name: t\n    match: {path: /t, methods: [GET, FETCH]}\n", "t.yaml:4:38",
     "\"FETCH\": expected GET"},
    {O "routes:\n  - name: t\n    match: {host: a.b}\n", "t.yaml:4:13", "match has no path"},
    {O "routes:\n  - name: t\n    match: {path: '/a/x{id}'}\n", "t.yaml:4:20",
     "a parameter is a whole segment"},
    {O "routes:\n  - name: stats\n    match: {path: '/cache/{x}'}\n", "t.yaml:4:13",
     "route \"stats\": the path /cache/{x} claims strata's own /cache/*"},
    {O "routes:\n  - name: m\n    match: {path: /metrics}\n", "t.yaml:4:13",
     "claims strata's own /metrics"},
    {O "routes:\n  - name: kv\n    match: {path: '/v1/cache/{ns}/{key}'}\n", "t.yaml:4:13",
     "claims strata's own /v1/cache*"},
    {O "routes:\n  - name: s\n    match: {path: '/v1/sessions/*'}\n", "t.yaml:4:13",
     "claims strata's own /v1/sessions*"},
    {O "routes:\n  - name: t\n    match: {path: /t}\n    origin: nope\n", "t.yaml:5:13",
     "origin \"nope\" is not declared"},
    {O "routes:\n  - name: t\n    match: {path: /t}\n  - name: t\n    match: {path: /u}\n",
     "t.yaml:5:11", "already the route's on line 3"},
    {O "routes:\n  - name: t\n    match: {path: '/t/{id}'}\n    tags: ['t:{di}']\n", "t.yaml:5:13",
     "names a parameter the path does not have"},
    {"origins: [{name: api, url: 'http://x', token: sk-123}]\nroutes: []\n", "t.yaml:1:40",
     "secrets are not written in the file"},
    {"origins: [{name: api, url: 'http://x', token_env: sk-abc123}]\nroutes: []\n", "t.yaml:1:51",
     "never the secret itself"},
    {"origins: [{name: api, url: 'http://x', token_env: TEST_PROXY_UNSET}]\nroutes: []\n",
     "t.yaml:1:51", "TEST_PROXY_UNSET is not set"},
    {"origins: [{name: api, url: 'ftp://x'}]\nroutes: [{name: t, match: {path: /}}]\n",
     "t.yaml:1:12", "origin \"api\""},
    {O "routes:\n  - name: t\n    match: {path: /t}\n    rate_limit: {limit: 0, period: 1}\n",
     "t.yaml:5:18", "rate_limit: rule t: bad limit=0"},
    {O "routes:\n  - name: t\n    match: {path: /t}\n    rate_limit: 'limit=5,period=1,route=kv'\n",
     "t.yaml:5:18", "no route= here"},
    {O "routes:\n  - name: t\n    match: {path: /t}\n    rate_limit: {limit: 5, period: 1, "
       "per: ip}\n",
     "t.yaml:5:39", "unknown key \"per\""},
    {O "routes:\n  - name: t\n    match: {path: /t}\n    key: {query: {keep: [a], drop: [b]}}\n",
     "t.yaml:5:30", "keep or drop, not both"},
    {O "routes:\n  - name: t\n    match: {path: /t}\n    key: {path_params: [id]}\n", "t.yaml:5:25",
     "\"id\" is not a parameter of the path /t"},
    {O "routes:\n  - name: t\n    match: {path: /t}\n    rfc9111: override\n", "t.yaml:5:14",
     "override needs the route's ttl"},
    {O "routes:\n  - name: t\n    match: {path: /t}\n    rfc9111: maybe\n", "t.yaml:5:14",
     "expected obey or override"},
    {O "routes:\n  - name: t\n    match: {path: /t}\n    auth: admin\n", "t.yaml:5:11",
     "expected none, read or write"},
    {O "routes:\n  - name: t\n    match: {path: /t}\n    max_object: 2000000\n", "t.yaml:5:17",
     "expected a whole number from 1 to 983040"},
    {O "routes:\n  - name: t\n    match: {path: /t}\ninvalidations:\n  - match: {methods: [GET], "
       "path: /t}\n    tags: [x]\n",
     "t.yaml:6:13", "unsafe methods only"},
    {O "routes:\n  - name: t\n    match: {path: /t}\ninvalidations:\n  - match: {path: /t}\n",
     "t.yaml:6:5", "drops tags: [..], keys: [..] or both"},
    {O "routes:\n  - name: t\n    match: &m {path: /t}\n  - name: u\n    match: *m\n",
     "t.yaml:6:13", "anchors and aliases are not supported"},
    {O "routes:\n  - name: t\n    match: {path: [/t]}\n", "t.yaml:4:20",
     "path must be a single value"},
    {O "routes: {name: t}\n", "t.yaml:2:10", "routes must be a list"},
    {"routes:\n  - name: t\n    match: {path: /t}\n", "t.yaml:1:1", "routes need an origin"},
    {O "routes:\n  - name: 'a b'\n    match: {path: /t}\n", "t.yaml:3:12", "expected 1 to 64"},
    {O "routes:\n  - name: t\n    match: {path: /t}\n    key: {window: 1.5}\n", "t.yaml:5:19",
     "window: whole seconds"},
    {"version: 2\n" O "routes: [{name: t, match: {path: /}}]\n", "t.yaml:1:10",
     "expected a whole number from 1 to 1"},
};

static void test_errors_name_line_and_column(void **state)
{
    (void)state;
    unsetenv("TEST_PROXY_UNSET");
    int failed = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        proxy_config *c = load(bad[i].yaml);
        if (c != NULL) {
            print_error("case %zu loaded:\n%s", i, bad[i].yaml);
            proxy_config_free(c);
            failed++;
        } else if (strncmp(err, bad[i].where, strlen(bad[i].where)) != 0 ||
                   err[strlen(bad[i].where)] != ':' || strstr(err, bad[i].what) == NULL) {
            print_error("case %zu: got \"%s\", expected %s: ...%s...\n", i, err, bad[i].where,
                        bad[i].what);
            failed++;
        }
    }
    assert_int_equal(failed, 0);
}

/* Bytes that are not YAML's text are refused where they stand, before the YAML library reads
 * them: libfyaml 0.7.12 loops forever on some after a '%' directive (found by fuzz_proxy_config;
 * the input is in its corpus as hang-directive). */
static void test_not_text(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
        const char *where;
    } cases[] = {
        {"a: b\n%=\x89routes: []\n", 19, "t.yaml:2:3"}, /* the hang */
        {"a: b\nx\0y\n", 9, "t.yaml:2:2"},              /* NUL */
        {"routes:\n  - \xc0\xaf\n", 15, "t.yaml:2:5"},  /* overlong '/' */
        {"a: \xed\xa0\x80\n", 7, "t.yaml:1:4"},         /* a surrogate */
        {"a: \x1b[31m\n", 9, "t.yaml:1:4"},             /* ESC */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        proxy_config *c = NULL;
        assert_int_equal(proxy_config_load_bytes("t.yaml", cases[i].bytes, cases[i].len,
                                                 &serve_proxy_options, &c, err, sizeof err),
                         -1);
        assert_null(c);
        if (strncmp(err, cases[i].where, strlen(cases[i].where)) != 0 ||
            strstr(err, "not UTF-8 text") == NULL)
            fail_msg("case %zu: %s", i, err);
    }
    /* One document per file: a second one is an error where it starts, never ignored. */
    proxy_config *two = load("origins: [{name: a, url: 'http://127.0.0.1:1'}]\n"
                             "routes: [{name: t, match: {path: /}}]\n"
                             "---\n"
                             "routes: [{name: u, match: {path: /u}}]\n");
    assert_null(two);
    if (strncmp(err, "t.yaml:4:", 9) != 0 || strstr(err, "a second YAML document") == NULL)
        fail_msg("two documents: %s", err);
    /* UTF-8 text is text: a value in another script loads (it is then checked as any value) */
    proxy_config *c = load("origins: [{name: a, url: 'http://127.0.0.1:1'}]\n"
                           "routes: [{name: t, match: {path: /caf\xc3\xa9}}]\n");
    if (c == NULL)
        assert_null(strstr(err, "not UTF-8 text"));
    proxy_config_free(c);
}

static void test_unreadable_file(void **state)
{
    (void)state;
    proxy_config *c = (proxy_config *)1;
    assert_int_equal(proxy_config_load_file("/nonexistent/proxy.yaml", NULL, &c, err, sizeof err),
                     -1);
    assert_null(c);
    assert_non_null(strstr(err, "/nonexistent/proxy.yaml: cannot be read"));
}

/* ---- secrets ------------------------------------------------------------------------------ */

static void test_secret_by_env_name(void **state)
{
    (void)state;
    setenv("TEST_PROXY_KEY", "sk-live", 1);
    proxy_config *c = load("origins: [{name: a, url: 'https://x.test', token_env: TEST_PROXY_KEY, "
                           "token_header: X-Api-Key}]\nroutes: [{name: t, match: {path: /}}]\n");
    assert_non_null(c);
    assert_string_equal(c->origins[0].token_env, "TEST_PROXY_KEY");
    assert_string_equal(c->origins[0].token_header, "X-Api-Key");
    /* the value is never copied into the model */
    assert_null(strstr(c->origins[0].token_env, "sk-live"));
    proxy_config_free(c);
    static const char *const keys[] = {"password", "api_key", "Authorization", "secret"};
    for (size_t i = 0; i < 4; i++) {
        char y[256];
        snprintf(y, sizeof y,
                 "origins: [{name: a, url: 'http://x', %s: hunter2}]\nroutes: [{name: t, "
                 "match: {path: /}}]\n",
                 keys[i]);
        assert_null(load(y));
        assert_non_null(strstr(err, "secrets are not written in the file"));
        assert_non_null(strstr(err, "token_env"));
    }
}

/* ---- matcher ------------------------------------------------------------------------------ */

static const char routes_yaml[] =
    O "routes:\n"
      "  - {name: host, match: {path: '/tasks/{id}', host: api.test}}\n"
      "  - {name: task, match: {path: '/tasks/{id}'}}\n"
      "  - {name: sub, match: {path: '/users/{u}/posts/{p}', methods: [GET, POST]}}\n"
      "  - {name: energy, match: {path: '/energy/*'}}\n"
      "  - {name: root, match: {path: /}}\n"
      "  - {name: all, match: {path: '/*', methods: ['*']}}\n";

static const char *route_of(const proxy_config *c, const char *method, const char *host,
                            const char *path, proxy_params *m)
{
    const proxy_route *r = proxy_config_match(c, method, host, path, strlen(path), m);
    return r ? r->name : NULL;
}

static void assert_span(proxy_span s, const char *want)
{
    assert_int_equal(s.n, strlen(want));
    assert_memory_equal(s.p, want, s.n);
}

static void test_matcher(void **state)
{
    (void)state;
    proxy_config *c = load(routes_yaml);
    assert_non_null(c);
    proxy_params m;
    assert_string_equal(route_of(c, "GET", "API.test:8080", "/tasks/7", &m), "host");
    assert_int_equal(m.n, 1);
    assert_span(m.v[0], "7");
    assert_string_equal(route_of(c, "GET", "[::1]:8080", "/tasks/7", &m), "task");
    assert_string_equal(route_of(c, "HEAD", NULL, "/tasks/a%2Fb", &m), "task");
    assert_span(m.v[0], "a%2Fb"); /* raw: an encoded '/' stays in the parameter */
    assert_string_equal(route_of(c, "GET", NULL, "/t%61sks/8", &m), "task");
    assert_string_equal(route_of(c, "GET", NULL, "/tasks/", &m), "all"); /* no empty param */
    assert_string_equal(route_of(c, "GET", NULL, "/tasks/7/x", &m), "all");
    assert_string_equal(route_of(c, "POST", NULL, "/tasks/7", &m), "all"); /* method */
    assert_string_equal(route_of(c, "POST", NULL, "/users/u1/posts/p2", &m), "sub");
    assert_int_equal(m.n, 2);
    assert_span(m.v[0], "u1");
    assert_span(m.v[1], "p2");
    assert_string_equal(route_of(c, "GET", NULL, "/energy", &m), "energy");
    assert_int_equal(m.rest.n, 0);
    assert_string_equal(route_of(c, "GET", NULL, "/energy/", &m), "energy");
    assert_string_equal(route_of(c, "GET", NULL, "/energy/a/b", &m), "energy");
    assert_span(m.rest, "a/b");
    assert_string_equal(route_of(c, "GET", NULL, "/energyx", &m), "all");
    assert_string_equal(route_of(c, "GET", NULL, "/", &m), "root");
    assert_string_equal(route_of(c, "DELETE", NULL, "/", &m), "all");
    assert_null(route_of(c, "BREW", NULL, "/", &m));
    assert_null(route_of(c, "GET", NULL, "*", &m));
    assert_null(route_of(c, "GET", NULL, "", &m));
    proxy_config_free(c);
}

static void test_own_paths(void **state)
{
    (void)state;
    static const struct {
        const char *path, *claims;
    } cases[] = {
        {"/cache", "/cache/*"},
        {"/cache/stats", "/cache/*"},
        {"/cache/{a}/{b}", "/cache/*"},
        {"/metrics", "/metrics"},
        {"/metrics/*", "/metrics"},
        {"/livez", "/livez"},
        {"/readyz", "/readyz"},
        {"/dashboard", "/dashboard*"},
        {"/dashboard/app.js", "/dashboard*"},
        {"/dashboard/{file}", "/dashboard*"},
        {"/v1/cache", "/v1/cache*"},
        {"/v1/cache/{ns}/{key}", "/v1/cache*"},
        {"/v1/cachex/*", "/v1/cache*"},
        {"/v1/sessions/{id}", "/v1/sessions*"},
        {"/v1/ratelimit/{k}", "/v1/ratelimit*"},
        {"/v1/invalidate", "/v1/invalidate"},
        {"/*", NULL},
        {"/{any}", NULL},
        {"/v1/*", NULL},
        {"/v1/{x}/y", NULL},
        {"/metrics/x", NULL},
        {"/cachex", NULL},
        {"/v1/invalidate/x", NULL},
        {"/livez2", NULL},
        {"/dashboards", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        proxy_pattern p;
        assert_int_equal(proxy_pattern_compile(cases[i].path, &p, err, sizeof err), 0);
        const char *got = proxy_pattern_claims_own(&p);
        if (cases[i].claims == NULL ? got != NULL
                                    : got == NULL || strcmp(got, cases[i].claims) != 0)
            fail_msg("%s: claims %s, expected %s", cases[i].path, got ? got : "nothing",
                     cases[i].claims ? cases[i].claims : "nothing");
        proxy_pattern_free(&p);
    }
    proxy_pattern p;
    assert_int_equal(proxy_pattern_compile("tasks", &p, err, sizeof err), -1);
    assert_int_equal(proxy_pattern_compile("/a/*/b", &p, err, sizeof err), -1);
    assert_int_equal(proxy_pattern_compile("/{a}/{a}", &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "appears twice"));
    assert_int_equal(proxy_pattern_compile("/a%zz", &p, err, sizeof err), -1);
    proxy_pattern_free(&p);
}

static void test_invalidation_match(void **state)
{
    (void)state;
    proxy_config *c = load(full);
    assert_non_null(c);
    proxy_params m;
    const proxy_invalidation *v =
        proxy_config_match_invalidation(c, "PUT", NULL, "/tasks/a*b", 10, &m);
    assert_non_null(v);
    assert_string_equal(v->name, "task-update");
    char out[256];
    assert_int_equal(proxy_invalidation_tag(v, 0, &m, out, sizeof out), 8);
    assert_string_equal(out, "task:a*b");
    assert_true(proxy_invalidation_key(v, 0, &m, out, sizeof out) > 0);
    assert_string_equal(out, "GET */tasks/a\\*b*"); /* the value's '*' escaped, the rule's not */
    assert_int_equal(proxy_invalidation_key(v, 1, &m, out, sizeof out), -1);
    assert_null(proxy_config_match_invalidation(c, "PATCH", NULL, "/tasks/7", 8, &m));
    assert_null(proxy_config_match_invalidation(c, "GET", NULL, "/tasks", 6, &m));
    v = proxy_config_match_invalidation(c, "PATCH", NULL, "/tasks", 6, &m);
    assert_non_null(v);
    assert_int_equal(v->line, 43);
    proxy_config_free(c);
}

/* ---- templates ---------------------------------------------------------------------------- */

static void test_templates(void **state)
{
    (void)state;
    proxy_pattern p;
    proxy_template t;
    assert_int_equal(proxy_pattern_compile("/t/{id}/{sub}", &p, err, sizeof err), 0);
    assert_int_equal(proxy_template_compile("task:{id}:{sub}:{{x}}", &p, &t, err, sizeof err), 0);
    proxy_params m;
    assert_true(proxy_pattern_match(&p, "/t/%37%2f/a b", 13, &m));
    char out[64];
    assert_int_equal(proxy_template_expand(&t, &m, PROXY_EXPAND_TEXT, out, sizeof out), 19);
    assert_string_equal(out, "task:7%2F:a%20b:{x}"); /* normalised: %37 is 7, %2f is %2F */
    assert_int_equal(proxy_template_expand(&t, &m, PROXY_EXPAND_TEXT, out, 8), -1);
    proxy_template_free(&t);
    assert_int_equal(proxy_template_compile("x:{nope}", &p, &t, err, sizeof err), -1);
    assert_int_equal(proxy_template_compile("x:{id", &p, &t, err, sizeof err), -1);
    assert_int_equal(proxy_template_compile("x}", &p, &t, err, sizeof err), -1);
    assert_int_equal(proxy_template_compile("", &p, &t, err, sizeof err), -1);
    proxy_pattern_free(&p);

    proxy_config *c = load(full);
    assert_non_null(c);
    const proxy_route *r = proxy_config_match(c, "GET", "api.example.com", "/tasks/42", 9, &m);
    assert_non_null(r);
    assert_int_equal(proxy_route_tag(r, 0, &m, out, sizeof out), 7);
    assert_string_equal(out, "task:42");
    assert_int_equal(proxy_route_tag(r, 1, &m, out, sizeof out), 5);
    assert_string_equal(out, "tasks");
    assert_int_equal(proxy_route_tag(r, 2, &m, out, sizeof out), -1);
    proxy_config_free(c);
}

/* ---- keys --------------------------------------------------------------------------------- */

static char key[600];

static const char *key_of(const proxy_config *c, const char *method, const char *host,
                          const char *target, const upstream_header *h, size_t nh, uint64_t now,
                          size_t key_max)
{
    const char *qm = strchr(target, '?');
    size_t plen = qm ? (size_t)(qm - target) : strlen(target);
    proxy_params m;
    const proxy_route *r = proxy_config_match(c, method, host, target, plen, &m);
    assert_non_null(r);
    proxy_key_request q = {.method = method,
                           .host = host,
                           .path = target,
                           .path_len = plen,
                           .query = qm ? qm + 1 : NULL,
                           .query_len = qm ? strlen(qm + 1) : 0,
                           .headers = h,
                           .nheaders = nh,
                           .now_s = now};
    long n = proxy_cache_key(r, &m, &q, key_max, key, sizeof key);
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(key));
    return key;
}

static const char keys_yaml[] =
    O "routes:\n"
      "  - {name: all, match: {path: '/all/*'}}\n"
      "  - {name: keep, match: {path: /keep}, key: {query: {keep: [b, 'c~']}}}\n"
      "  - {name: drop, match: {path: /drop}, key: {query: {drop: [utm, 'x y']}}}\n"
      "  - {name: none, match: {path: /none}, key: {query: none}}\n"
      "  - {name: hdr, match: {path: /hdr}, key: {headers: [X-B, accept-language]}}\n"
      "  - {name: win, match: {path: /win}, key: {window: 30}}\n"
      "  - {name: pp, match: {path: '/m/{model}/n/{nonce}/*'}, key: {path_params: [model]}}\n";

static void test_key_query(void **state)
{
    (void)state;
    proxy_config *c = load(keys_yaml);
    assert_non_null(c);
    /* sorted by name then value; escapes of unreserved characters decoded, others upper case */
    assert_string_equal(
        key_of(c, "GET", "Api.Test:80", "/all/x?b=2&a=%7e&c&a=1&&%2f=%2f", NULL, 0, 0, 512),
        "GET api.test:80/all/x?%2F=%2F&a=1&a=~&b=2&c");
    /* the same request written differently is the same key */
    char first[600];
    snprintf(first, sizeof first, "%s",
             key_of(c, "GET", "h", "/all/%7Ex?q=a%20b", NULL, 0, 0, 512));
    assert_string_equal(key_of(c, "GET", "h", "/all/~x?q=a b", NULL, 0, 0, 512), first);
    assert_string_equal(first, "GET h/all/~x?q=a%20b");
    assert_string_equal(key_of(c, "HEAD", "h", "/all/x", NULL, 0, 0, 512), "GET h/all/x");
    assert_string_equal(key_of(c, "GET", NULL, "/all/x?", NULL, 0, 0, 512), "GET /all/x");
    /* kept and dropped lists, compared by normalised name */
    assert_string_equal(key_of(c, "GET", "h", "/keep?a=1&b=2&c%7E=3&d=4", NULL, 0, 0, 512),
                        "GET h/keep?b=2&c~=3");
    assert_string_equal(key_of(c, "GET", "h", "/drop?utm=1&z=2&x%20y=3&a=4", NULL, 0, 0, 512),
                        "GET h/drop?a=4&z=2");
    assert_string_equal(key_of(c, "GET", "h", "/drop?utm=1", NULL, 0, 0, 512), "GET h/drop");
    assert_string_equal(key_of(c, "GET", "h", "/none?a=1", NULL, 0, 0, 512), "GET h/none");
    proxy_config_free(c);
}

static void test_key_headers_window_params(void **state)
{
    (void)state;
    proxy_config *c = load(keys_yaml);
    assert_non_null(c);
    upstream_header h[] = {
        {"Accept-Language", " en-GB "}, {"x-b", "1"}, {"X-B", "two words"}, {"X-Other", "no"}};
    assert_string_equal(key_of(c, "GET", "h", "/hdr", h, 4, 0, 512),
                        "GET h/hdr h:accept-language=en-GB h:x-b=1,two%20words");
    assert_string_equal(key_of(c, "GET", "h", "/hdr", h, 1, 0, 512),
                        "GET h/hdr h:accept-language=en-GB h:x-b"); /* absent: no '=' */
    assert_string_equal(key_of(c, "GET", "h", "/win", NULL, 0, 59, 512), "GET h/win w:1");
    assert_string_equal(key_of(c, "GET", "h", "/win", NULL, 0, 60, 512), "GET h/win w:2");
    assert_string_equal(key_of(c, "GET", "h", "/m/gpt%2D4/n/123/x/y?a=1", NULL, 0, 0, 512),
                        "GET h/m/gpt-4/n/{nonce}/x/y?a=1");
    assert_string_equal(key_of(c, "GET", "h", "/m/gpt/n/456", NULL, 0, 0, 512),
                        "GET h/m/gpt/n/{nonce}");
    proxy_config_free(c);
}

static void sha256_hex(const char *s, char *hex)
{
    unsigned char d[32];
    unsigned n;
    EVP_Digest(s, strlen(s), d, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", d[i]);
}

static void test_long_keys_hashed(void **state)
{
    (void)state;
    proxy_config *c = load(keys_yaml);
    assert_non_null(c);
    /* the full key first, with a limit it fits in */
    char target[400], full_key[600], hex[65];
    snprintf(target, sizeof target, "/all/report?%0300d=1", 7);
    snprintf(full_key, sizeof full_key, "%s", key_of(c, "GET", "h", target, NULL, 0, 0, 512));
    assert_int_equal(strlen(full_key), strlen("GET h/all/report?") + 300 + 2);
    /* over a limit of 200: the readable prefix, '#', the digest of the whole key */
    const char *k = key_of(c, "GET", "h", target, NULL, 0, 0, 200);
    sha256_hex(full_key, hex);
    char want[300];
    snprintf(want, sizeof want, "GET h/all/report#%s", hex);
    assert_string_equal(k, want);
    /* another query: another digest, the same prefix */
    target[20] = '8';
    k = key_of(c, "GET", "h", target, NULL, 0, 0, 200);
    assert_memory_equal(k, "GET h/all/report#", 17);
    assert_string_not_equal(k, want);
    /* a path longer than the limit: cut to leave room for the digest */
    char path[400] = "/all/";
    memset(path + 5, 'p', 300);
    path[305] = '\0';
    k = key_of(c, "GET", "h", path, NULL, 0, 0, 200);
    assert_int_equal(strlen(k), 200);
    assert_int_equal(k[200 - PROXY_KEY_HASH_LEN], '#');
    assert_memory_equal(k, "GET h/all/ppp", 13);
    /* exactly at the limit: not hashed */
    k = key_of(c, "GET", "h", "/all/x", NULL, 0, 0, 512);
    assert_string_equal(k, "GET h/all/x");
    /* bounds */
    proxy_params m;
    const proxy_route *r = proxy_config_match(c, "GET", NULL, "/all/x", 6, &m);
    proxy_key_request q = {.method = "GET", .path = "/all/x", .path_len = 6};
    assert_int_equal(proxy_cache_key(r, &m, &q, 64, key, sizeof key), -1); /* under the minimum */
    assert_int_equal(proxy_cache_key(r, &m, &q, 512, key, 512), -1);       /* no room for NUL */
    proxy_config_free(c);
}

/* ---- --upstream and reload ---------------------------------------------------------------- */

static void test_upstream_alone(void **state)
{
    (void)state;
    proxy_config *c = NULL;
    assert_int_equal(proxy_config_from_upstream("http://127.0.0.1:9000/api", &c, err, sizeof err),
                     0);
    assert_int_equal(c->nroutes, 1);
    assert_int_equal(c->norigins, 1);
    assert_string_equal(c->origins[0].url, "http://127.0.0.1:9000/api");
    assert_int_equal(c->routes[0].rfc9111, PROXY_RFC9111_OBEY);
    assert_false(c->routes[0].ttl_set);
    proxy_params m;
    assert_string_equal(route_of(c, "POST", "any", "/x/y?z", &m), "default");
    assert_string_equal(route_of(c, "GET", NULL, "/", &m), "default");
    proxy_config_free(c);
    assert_int_equal(proxy_config_from_upstream("ftp://x", &c, err, sizeof err), -1);
    assert_null(c);
    assert_non_null(strstr(err, "--upstream ftp://x"));
    assert_int_equal(proxy_config_from_upstream("http://a\"b", &c, err, sizeof err), -1);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_reload_keeps_old_on_error(void **state)
{
    (void)state;
    char path[] = "/tmp/strata-proxy-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_file(path, O "routes: [{name: one, match: {path: /one}}]\n");
    proxy_config *c = NULL;
    assert_int_equal(proxy_config_load_file(path, &serve_proxy_options, &c, err, sizeof err), 0);
    proxy_config *before = c;
    write_file(path, O "routes: [{name: two, match: {path: /two}, ttl: soon}]\n");
    assert_int_equal(proxy_config_reload(&c, path, &serve_proxy_options, err, sizeof err), -1);
    assert_ptr_equal(c, before);
    assert_string_equal(c->routes[0].name, "one");
    assert_non_null(strstr(err, ":2:"));
    write_file(path, O "routes: [{name: two, match: {path: /two}}, {name: three, match: {path: "
                       "/three}}]\n");
    assert_int_equal(proxy_config_reload(&c, path, &serve_proxy_options, err, sizeof err), 0);
    assert_int_equal(c->nroutes, 2);
    assert_string_equal(c->routes[1].name, "three");
    proxy_config_free(c);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_example_file_loads),
        cmocka_unit_test(test_errors_name_line_and_column),
        cmocka_unit_test(test_not_text),
        cmocka_unit_test(test_unreadable_file),
        cmocka_unit_test(test_secret_by_env_name),
        cmocka_unit_test(test_matcher),
        cmocka_unit_test(test_own_paths),
        cmocka_unit_test(test_invalidation_match),
        cmocka_unit_test(test_templates),
        cmocka_unit_test(test_key_query),
        cmocka_unit_test(test_key_headers_window_params),
        cmocka_unit_test(test_long_keys_hashed),
        cmocka_unit_test(test_upstream_alone),
        cmocka_unit_test(test_reload_keeps_old_on_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
