/* test_server_admin.c: the management API of strata serve against a real Redis: /cache/stats
 * (L1 counters that move with the requests, L2 with the Redis version), /cache/clear by
 * namespace, pattern and tenant with counts, /cache/keys paged through its cursor (every key
 * exactly once), /cache/key/{ns}/{key} inspection (ttl_ms, tags, content_type, tier), the
 * probes, and /metrics as valid Prometheus text (`promtool check metrics`). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "server_harness.h"

#define ADMIN "admin-token-1"
#define WRITE "write-token-1"

static rh_server *redis;
static sh_server *srv, *other;
static char redis_env[320];

static int setup(void **state)
{
    (void)state;
    redis = rh_start(NULL);
    if (redis == NULL)
        return -1;
    snprintf(redis_env, sizeof redis_env, "REDIS_URL=%s", rh_url(redis));
    const char *env[] = {redis_env, "STRATA_WORKERS=2",
                         "STRATA_TOKENS=" ADMIN ":admin,read-token-1:read," WRITE ":write", NULL};
    srv = sh_start(env, NULL);
    other = sh_start(env, NULL);
    return srv && other ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    sh_free(srv);
    sh_free(other);
    srv = other = NULL;
    rh_stop(redis);
    redis = NULL;
    return 0;
}

static json_t *get_json(sh_server *s, const char *path, const char *tenant, long status)
{
    sh_resp *r = sh_call(s, "GET", path, ADMIN, tenant, NULL, NULL);
    SH_EXPECT_STATUS(r, status);
    SH_EXPECT_HEADER(r, "Content-Type", "application/json");
    json_t *j = sh_resp_json(r);
    if (j == NULL)
        fprintf(stderr, "%s: not JSON: %s\n", r->what, r->body);
    assert_non_null(j);
    sh_resp_free(r);
    return j;
}

static json_int_t jint(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(json_object_get(o, a), b);
    if (!json_is_integer(v))
        fprintf(stderr, "%s.%s is not an integer\n", a, b);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static void put(sh_server *s, const char *path, const char *tenant, const char *ctype,
                const char *body)
{
    SH_CALL_EXPECT(s, "PUT", path, WRITE, tenant, ctype, body, 204);
}

static long get_status(sh_server *s, const char *path, const char *tenant)
{
    sh_resp *r = sh_call(s, "GET", path, ADMIN, tenant, NULL, NULL);
    long st = r->status;
    sh_resp_free(r);
    return st;
}

static void test_stats(void **state)
{
    (void)state;
    put(srv, "/v1/cache/st/a", NULL, NULL, "12345");
    /* Warm it into L1, once the invalidation of its own write came back (DESIGN.md). */
    sh_sleep_ms(300);
    for (int i = 0; i < 20; i++) {
        sh_resp *r = sh_call(srv, "GET", "/v1/cache/st/a", ADMIN, NULL, NULL, NULL);
        int l1 = r->status == 200 && sh_resp_header(r, "X-Cache") &&
                 strcmp(sh_resp_header(r, "X-Cache"), "HIT-L1") == 0;
        sh_resp_free(r);
        if (l1)
            break;
    }
    json_t *before = get_json(srv, "/cache/stats", NULL, 200);
    for (int i = 0; i < 5; i++)
        assert_int_equal(get_status(srv, "/v1/cache/st/a", NULL), 200);
    for (int i = 0; i < 3; i++)
        assert_int_equal(get_status(srv, "/v1/cache/st/absent", NULL), 404);
    json_t *after = get_json(srv, "/cache/stats", NULL, 200);

    json_int_t dh = jint(after, "l1", "hits") - jint(before, "l1", "hits");
    json_int_t dm = jint(after, "l1", "misses") - jint(before, "l1", "misses");
    if (dh < 5 || dm < 3)
        fprintf(stderr, "l1 hits +%lld misses +%lld\n", (long long)dh, (long long)dm);
    assert_true(dh >= 5);
    assert_true(dm >= 3);
    json_t *l1 = json_object_get(after, "l1");
    double rate = json_number_value(json_object_get(l1, "hit_rate"));
    double h = (double)jint(after, "l1", "hits"), m = (double)jint(after, "l1", "misses");
    assert_true(json_is_number(json_object_get(l1, "hit_rate")));
    assert_true(rate > 0.0 && rate <= 1.0);
    assert_true(rate > h / (h + m) - 0.001 && rate < h / (h + m) + 0.001);
    assert_true(jint(after, "l1", "keys") >= 1);
    assert_true(jint(after, "l1", "memory_bytes") > 5);
    assert_true(jint(after, "l1", "max_memory_bytes") >= jint(after, "l1", "memory_bytes"));
    /* L2: configured, up, with what Redis says about itself. */
    json_t *l2 = json_object_get(after, "l2");
    assert_true(json_is_true(json_object_get(l2, "configured")));
    assert_true(json_is_true(json_object_get(l2, "available")));
    assert_true(json_is_integer(json_object_get(l2, "misses")));
    assert_true(jint(after, "l2", "misses") - jint(before, "l2", "misses") >= 3);
    json_t *rinfo = json_object_get(l2, "redis");
    assert_non_null(rinfo);
    redisReply *rr = rh_command(redis, "INFO server");
    assert_non_null(rr);
    const char *p = strstr(rr->str, "redis_version:");
    assert_non_null(p);
    char version[32];
    snprintf(version, sizeof version, "%.*s", (int)strcspn(p + 14, "\r\n"), p + 14);
    freeReplyObject(rr);
    assert_string_equal(json_string_value(json_object_get(rinfo, "version")), version);
    assert_string_equal(json_string_value(json_object_get(rinfo, "role")), "master");
    assert_true(json_integer_value(json_object_get(rinfo, "used_memory")) > 0);
    assert_true(json_integer_value(json_object_get(json_object_get(after, "server"), "workers")) ==
                2);
    json_decref(before);
    json_decref(after);

    /* Without Redis: L1 only, no Redis section. */
    const char *env[] = {"STRATA_WORKERS=1", NULL};
    sh_server *mem = sh_start(env, NULL);
    assert_non_null(mem);
    json_t *j = get_json(mem, "/cache/stats", NULL, 200);
    assert_true(json_is_false(json_object_get(json_object_get(j, "l2"), "configured")));
    assert_null(json_object_get(json_object_get(j, "l2"), "redis"));
    assert_true(json_is_integer(json_object_get(json_object_get(j, "l1"), "hits")));
    json_decref(j);
    j = get_json(mem, "/cache/health", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "healthy");
    assert_true(json_is_false(json_object_get(j, "redis_configured")));
    /* No Redis to come back: the warning says what would make sessions last (hardening 18). */
    const char *warning = json_string_value(json_array_get(json_object_get(j, "warnings"), 0));
    assert_non_null(warning);
    assert_null(strstr(warning, "until Redis is back"));
    assert_non_null(strstr(warning, "no Redis configured"));
    json_decref(j);
    sh_resp *met = sh_call(mem, "GET", "/metrics", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(met, 200);
    assert_non_null(strstr(met->body, "\nstrata_redis_nodes 0\n"));
    assert_null(strstr(met->body, "strata_redis_node_errors_total{"));
    sh_resp_free(met);
    assert_int_equal(sh_stop_check(mem), 0);
}

static json_int_t clear(const char *method, const char *query, const char *tenant)
{
    char path[512];
    snprintf(path, sizeof path, "/cache/clear?%s", query);
    sh_resp *r = sh_call(srv, method, path, ADMIN, tenant, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    json_t *j = sh_resp_json(r);
    assert_non_null(j);
    assert_true(json_is_integer(json_object_get(j, "removed")));
    json_int_t n = json_integer_value(json_object_get(j, "removed"));
    json_decref(j);
    sh_resp_free(r);
    return n;
}

static void test_clear(void **state)
{
    (void)state;
    const char *c1[] = {"/v1/cache/c1/a", "/v1/cache/c1/b", "/v1/cache/c1/xa"};
    const char *c2[] = {"/v1/cache/c2/xa", "/v1/cache/c2/xb", "/v1/cache/c2/ya"};
    for (int i = 0; i < 3; i++) {
        put(srv, c1[i], NULL, NULL, "v");
        put(srv, c2[i], NULL, NULL, "v");
        put(srv, c1[i], "t2", NULL, "v");
        assert_int_equal(get_status(other, c1[i], NULL), 200); /* copies in the other L1 too */
    }
    /* By namespace: this tenant's keys there, nothing else. */
    assert_int_equal(clear("POST", "namespace=c1", NULL), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(get_status(srv, c1[i], NULL), 404);
        assert_int_equal(get_status(srv, c2[i], NULL), 200);
        assert_int_equal(get_status(srv, c1[i], "t2"), 200);
    }
    /* The other instance drops its copies too (coherence window: 2 s here). */
    long deadline = sh_now_ms() + 2000;
    while (get_status(other, c1[0], NULL) != 404 && sh_now_ms() < deadline)
        sh_sleep_ms(20);
    assert_int_equal(get_status(other, c1[0], NULL), 404);
    /* By pattern. */
    assert_int_equal(clear("DELETE", "namespace=c2&pattern=x*", NULL), 2);
    assert_int_equal(get_status(srv, c2[0], NULL), 404);
    assert_int_equal(get_status(srv, c2[1], NULL), 404);
    assert_int_equal(get_status(srv, c2[2], NULL), 200);
    /* By tenant, via ?tenant= and via X-Tenant. */
    assert_int_equal(clear("POST", "namespace=c1&pattern=a&tenant=t2", NULL), 1);
    assert_int_equal(get_status(srv, c1[0], "t2"), 404);
    assert_int_equal(get_status(srv, c1[1], "t2"), 200);
    assert_int_equal(clear("POST", "namespace=c1", "t2"), 2);
    assert_int_equal(get_status(srv, c1[1], "t2"), 404);
    assert_int_equal(get_status(srv, c2[2], NULL), 200);
    /* Nothing matching: 0. */
    assert_int_equal(clear("POST", "namespace=c1&pattern=zzz*", NULL), 0);
    /* All tenants. */
    put(srv, "/v1/cache/c3/k", "t2", NULL, "v");
    put(srv, "/v1/cache/c3/k", "t3", NULL, "v");
    put(srv, "/v1/cache/c3/k", NULL, NULL, "v");
    assert_int_equal(clear("POST", "namespace=c3&all_tenants=true", NULL), 3);
    assert_int_equal(get_status(srv, "/v1/cache/c3/k", "t2"), 404);
    assert_int_equal(get_status(srv, "/v1/cache/c3/k", "t3"), 404);
    assert_int_equal(get_status(srv, "/v1/cache/c3/k", NULL), 404);
    assert_int_equal(get_status(srv, c2[2], NULL), 200);

    /* Bad parameters: 400, nothing cleared. */
    const char *bad[] = {"/cache/clear?namespace=bad:ns",
                         "/cache/clear?pattern=", "/cache/clear?namespace=c2&tenant=bad%20tenant",
                         "/cache/clear?pattern=%01"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sh_resp *r = sh_call(srv, "POST", bad[i], ADMIN, NULL, NULL, NULL);
        SH_EXPECT_ERROR(r, 400, NULL);
        sh_resp_free(r);
    }
    assert_int_equal(get_status(srv, c2[2], NULL), 200);
    assert_true(sh_healthy(srv));
}

static void test_keys_paging(void **state)
{
    (void)state;
    enum { N = 250, LIMIT = 50 };
    /* 250 keys through one _mset, plus decoys in another namespace and tenant. */
    size_t cap = 64 * N + 64;
    char *body = malloc(cap);
    size_t o = (size_t)snprintf(body, cap, "{\"items\":[");
    for (int i = 0; i < N; i++)
        o += (size_t)snprintf(body + o, cap - o, "%s{\"key\":\"key-%03d\",\"value\":\"%d\"}",
                              i ? "," : "", i, i);
    snprintf(body + o, cap - o, "]}");
    SH_CALL_EXPECT(srv, "POST", "/v1/cache/page/_mset", WRITE, NULL, "application/json", body, 200);
    SH_CALL_EXPECT(srv, "POST", "/v1/cache/page/_mset", WRITE, "decoy", "application/json",
                   "{\"items\":[{\"key\":\"key-999\",\"value\":\"x\"}]}", 200);
    SH_CALL_EXPECT(srv, "POST", "/v1/cache/page2/_mset", WRITE, NULL, "application/json",
                   "{\"items\":[{\"key\":\"key-998\",\"value\":\"x\"}]}", 200);
    free(body);

    int seen[N];
    memset(seen, 0, sizeof seen);
    char cursor[32] = "0";
    int pages = 0, total = 0, biggest = 0;
    do {
        char path[256];
        snprintf(path, sizeof path, "/cache/keys?namespace=page&limit=%d&cursor=%s", LIMIT, cursor);
        json_t *j = get_json(other, path, NULL, 200); /* the other instance: from Redis */
        json_t *keys = json_object_get(j, "keys");
        assert_true(json_is_array(keys));
        int n = (int)json_array_size(keys);
        biggest = n > biggest ? n : biggest;
        for (int i = 0; i < n; i++) {
            json_t *k = json_array_get(keys, i);
            assert_string_equal(json_string_value(json_object_get(k, "namespace")), "page");
            const char *name = json_string_value(json_object_get(k, "key"));
            assert_non_null(name);
            int idx = -1;
            if (sscanf(name, "key-%d", &idx) != 1 || idx < 0 || idx >= N)
                fail_msg("listed a key that is not one of ours: %s", name);
            seen[idx]++;
            total++;
        }
        snprintf(cursor, sizeof cursor, "%s", json_string_value(json_object_get(j, "cursor")));
        json_decref(j);
        pages++;
    } while (strcmp(cursor, "0") != 0 && pages < 1000);
    int missing = 0, dup = 0;
    for (int i = 0; i < N; i++)
        missing += seen[i] == 0, dup += seen[i] > 1;
    if (missing || dup || biggest > 2 * LIMIT)
        fprintf(stderr, "keys: %d pages, %d listed, %d missing, %d duplicated, biggest page %d\n",
                pages, total, missing, dup, biggest);
    assert_int_equal(missing, 0);
    assert_int_equal(dup, 0);
    assert_int_equal(total, N);
    /* A page holds about `limit` keys. */
    assert_true(biggest <= 2 * LIMIT);
    assert_true(pages >= N / (2 * LIMIT));

    /* A pattern narrows the listing. */
    json_t *j = get_json(srv, "/cache/keys?namespace=page&pattern=key-00*&limit=1000", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "keys")), 10);
    json_decref(j);
    /* Bad parameters. */
    const char *bad[] = {"/cache/keys?limit=0", "/cache/keys?limit=abc", "/cache/keys?limit=1001",
                         "/cache/keys?cursor=abc", "/cache/keys?namespace=a:b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sh_resp *r = sh_call(srv, "GET", bad[i], ADMIN, NULL, NULL, NULL);
        SH_EXPECT_ERROR(r, 400, NULL);
        sh_resp_free(r);
    }
    assert_true(sh_healthy(srv));
}

static void test_inspect(void **state)
{
    (void)state;
    put(srv, "/v1/cache/insp/k?ttl=100&tags=x,y", NULL, "text/html", "<b>hi</b>");
    put(srv, "/v1/cache/insp/dflt", NULL, NULL, "f");
    json_t *j = get_json(srv, "/cache/key/insp/k", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(j, "namespace")), "insp");
    assert_string_equal(json_string_value(json_object_get(j, "key")), "k");
    assert_string_equal(json_string_value(json_object_get(j, "tenant")), "default");
    assert_string_equal(json_string_value(json_object_get(j, "content_type")), "text/html");
    assert_string_equal(json_string_value(json_object_get(j, "value")), "<b>hi</b>");
    assert_int_equal(json_integer_value(json_object_get(j, "size")), 9);
    json_t *ttl = json_object_get(j, "ttl_ms");
    assert_true(json_is_integer(ttl));
    assert_true(json_integer_value(ttl) > 85000 && json_integer_value(ttl) <= 110000);
    json_t *tags = json_object_get(j, "tags");
    assert_int_equal(json_array_size(tags), 2);
    assert_string_equal(json_string_value(json_array_get(tags, 0)), "x");
    assert_string_equal(json_string_value(json_array_get(tags, 1)), "y");
    const char *tier = json_string_value(json_object_get(j, "tier"));
    assert_non_null(tier);
    assert_true(strcmp(tier, "l1") == 0 || strcmp(tier, "l2") == 0);
    json_decref(j);
    /* The other instance never read it: from Redis, then from its L1. */
    j = get_json(other, "/cache/key/insp/k", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(j, "tier")), "l2");
    assert_int_equal(json_array_size(json_object_get(j, "tags")), 2);
    json_decref(j);
    j = get_json(other, "/cache/key/insp/k", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(j, "tier")), "l1");
    json_decref(j);
    /* No TTL given: the default (300 s, ±10%). */
    j = get_json(srv, "/cache/key/insp/dflt", NULL, 200);
    ttl = json_object_get(j, "ttl_ms");
    assert_true(json_is_integer(ttl));
    assert_true(json_integer_value(ttl) > 260000 && json_integer_value(ttl) <= 330000);
    assert_int_equal(json_array_size(json_object_get(j, "tags")), 0);
    json_decref(j);
    /* Binary values come as value_b64. */
    const char bin[] = {'\x01', '\xff', '\x00', 'a'};
    const char *h[] = {"Authorization: Bearer " WRITE, NULL};
    sh_resp *r = sh_request(srv, "PUT", "/v1/cache/insp/bin", h, bin, sizeof bin);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    j = get_json(srv, "/cache/key/insp/bin", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(j, "value_b64")), "Af8AYQ==");
    json_decref(j);
    /* Absent. */
    r = sh_call(srv, "GET", "/cache/key/insp/nope", ADMIN, NULL, NULL, NULL);
    SH_EXPECT_ERROR(r, 404, "not_found");
    sh_resp_free(r);
    assert_true(sh_healthy(srv));
}

static void test_probes_and_metrics(void **state)
{
    (void)state;
    json_t *j = get_json(srv, "/livez", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
    json_decref(j);
    j = get_json(srv, "/readyz", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ready");
    json_decref(j);

    /* Some traffic of each kind, so the series exist. */
    put(srv, "/v1/cache/met/k", NULL, NULL, "v");
    for (int i = 0; i < 3; i++)
        get_status(srv, "/v1/cache/met/k", NULL);
    get_status(srv, "/v1/cache/met/absent", NULL);
    get_status(srv, "/nowhere", NULL);
    sh_resp *r = sh_call(srv, "GET", "/metrics", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    const char *ct = sh_resp_header(r, "Content-Type");
    assert_non_null(ct);
    assert_true(strncmp(ct, "text/plain", 10) == 0);
    assert_non_null(strstr(r->body, "strata_http_requests_total{route=\"kv\",code=\"2xx\"}"));
    assert_non_null(strstr(r->body, "strata_http_requests_total{route=\"kv\",code=\"4xx\"}"));
    assert_non_null(strstr(r->body, "strata_http_request_duration_seconds_bucket{route=\"kv\""));
    assert_non_null(strstr(r->body, "strata_reads_total{tier=\"l1\"}"));
    /* One Redis, named as REDIS_URL names it, with its failures (none so far, or a few). */
    assert_non_null(strstr(r->body, "\nstrata_redis_nodes 1\n"));
    char node[96];
    snprintf(node, sizeof node, "\nstrata_redis_node_errors_total{node=\"%s:%d\"} ", rh_host(redis),
             rh_port(redis));
    assert_non_null(strstr(r->body, node));
    /* No key ever becomes a label. */
    assert_null(strstr(r->body, "met/k"));
    assert_null(strstr(r->body, "nowhere"));

    char out[64], cmd[128];
    snprintf(out, sizeof out, "/tmp/strata-promtool-%d.out", (int)getpid());
    snprintf(cmd, sizeof cmd, "promtool check metrics > %s 2>&1", out);
    FILE *p = popen(cmd, "w");
    assert_non_null(p);
    fwrite(r->body, 1, r->body_len, p);
    int st = pclose(p);
    if (st != 0) {
        FILE *f = fopen(out, "r");
        char line[512];
        fprintf(stderr, "promtool check metrics failed (status %d):\n", st);
        while (f != NULL && fgets(line, sizeof line, f) != NULL)
            fputs(line, stderr);
        if (f != NULL)
            fclose(f);
    }
    remove(out);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    sh_resp_free(r);
    assert_true(sh_healthy(srv));
}

/* GET path with token: the status, and the body as JSON (NULL when it is not). */
static json_t *stats_as(sh_server *s, const char *token, const char *path, long status)
{
    sh_resp *r = sh_call(s, "GET", path, token, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, status);
    json_t *j = sh_resp_json(r);
    assert_non_null(j);
    sh_resp_free(r);
    return j;
}

static const char *jerr(json_t *j)
{
    return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}

/* /cache/stats?namespace= was silently ignored (hardening item 18): one namespace's settings,
 * L1 counters and requests by tier; one tenant's requests (in a namespace or in all); an unknown
 * or malformed namespace is a 4xx, never the totals. */
static void test_stats_per_namespace_and_tenant(void **state)
{
    (void)state;
    put(srv, "/v1/cache/nsst/a", NULL, "text/plain", "12345");
    put(srv, "/v1/cache/nsst/a", "acme", "text/plain", "acme's");
    for (int i = 0; i < 3; i++)
        assert_int_equal(get_status(srv, "/v1/cache/nsst/a", NULL), 200);
    assert_int_equal(get_status(srv, "/v1/cache/nsst/absent", NULL), 404);
    SH_CALL_EXPECT(srv, "DELETE", "/v1/cache/nsst/a", WRITE, "acme", NULL, NULL, 204);
    /* Read on the other instance: a namespace it did not hold comes from Redis. */
    assert_int_equal(get_status(other, "/v1/cache/nsst/a", NULL), 200);

    json_t *j = get_json(srv, "/cache/stats?namespace=nsst", NULL, 200);
    assert_non_null(json_object_get(j, "namespace")); /* not the totals */
    assert_string_equal(json_string_value(json_object_get(j, "namespace")), "nsst");
    assert_int_equal(jint(j, "settings", "ttl"), 300);
    /* L1's own counters of the namespace (whether a write or a read from Redis leaves a copy
     * in L1 depends on the invalidations of our own writes: bounds only). */
    assert_true(jint(j, "l1", "sets") >= 1);
    assert_true(jint(j, "l1", "keys") <= 1); /* acme's was deleted */
    assert_true(jint(j, "l1", "hits") + jint(j, "l1", "misses") >= 1);
    assert_int_equal(jint(j, "requests", "total"), 7);
    assert_int_equal(jint(j, "requests", "writes"), 2);
    assert_int_equal(jint(j, "requests", "deletes"), 1);
    assert_int_equal(jint(j, "requests", "misses"), 1);
    assert_int_equal(jint(j, "requests", "l1") + jint(j, "requests", "l2"), 3);
    assert_null(json_object_get(json_object_get(j, "l1"), "max_memory_bytes"));
    json_decref(j);
    j = get_json(other, "/cache/stats?namespace=nsst", NULL, 200);
    assert_int_equal(jint(j, "requests", "l2"), 1);
    json_decref(j);

    j = get_json(srv, "/cache/stats?tenant=acme", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(j, "tenant")), "acme");
    assert_int_equal(jint(j, "requests", "total"), 2);
    assert_int_equal(jint(j, "requests", "writes"), 1);
    assert_int_equal(jint(j, "requests", "deletes"), 1);
    assert_true(json_is_true(json_object_get(j, "complete")));
    json_decref(j);
    j = get_json(srv, "/cache/stats?namespace=nsst&tenant=default", NULL, 200);
    assert_int_equal(jint(j, "requests", "total"), 5);
    json_decref(j);

    j = stats_as(srv, ADMIN, "/cache/stats?namespace=never-written", 404);
    assert_string_equal(jerr(j), "unknown_namespace");
    json_decref(j);
    j = stats_as(srv, ADMIN, "/cache/stats?namespace=", 400);
    assert_string_equal(jerr(j), "bad_namespace");
    json_decref(j);
    j = stats_as(srv, ADMIN, "/cache/stats?namespace=a%3Ab", 400);
    json_decref(j);
    j = stats_as(srv, ADMIN, "/cache/stats?tenant=nobody", 404);
    assert_string_equal(jerr(j), "unknown_tenant");
    json_decref(j);
    j = stats_as(srv, WRITE, "/cache/stats?namespace=nsst", 200); /* counters: the read role */
    json_decref(j);
}

/* Tenants are unbounded, what a worker keeps of them is not: past USAGE_PAIRS (512) pairs a
 * worker counts the rest together, and an answer that may miss some says so. A token bound to
 * a tenant sees only its own tenant's figures. */
static void test_stats_tenants_bounded(void **state)
{
    (void)state;
    const char *env[] = {"STRATA_WORKERS=1", "STRATA_NAMESPACES=many:ttl=60,max_ttl=600,quota=1M",
                         "STRATA_TOKENS=" ADMIN
                         ":admin,acme-admin-token:admin:acme,acme-read-token:read:acme,"
                         "plain-read-token:read,plain-write-token:write",
                         NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    json_t *j = stats_as(s, ADMIN, "/cache/stats?namespace=many", 200);
    assert_int_equal(jint(j, "settings", "max_ttl"), 600);
    assert_int_equal(jint(j, "settings", "quota"), 1 << 20);
    json_decref(j);
    j = stats_as(s, "acme-admin-token", "/cache/stats?tenant=globex", 403);
    json_decref(j);
    SH_CALL_EXPECT(s, "PUT", "/v1/cache/many/k", "acme-admin-token", NULL, "text/plain", "v", 204);
    j = stats_as(s, "acme-admin-token", "/cache/stats?tenant=acme", 200);
    assert_int_equal(jint(j, "requests", "writes"), 1);
    json_decref(j);
    /* The read role reads the counters (the dashboard's read tokens), under the same rule: a
     * token bound to a tenant, whatever its role, asks of its own tenant only. */
    json_decref(stats_as(s, "plain-read-token", "/cache/stats", 200));
    json_decref(stats_as(s, "plain-write-token", "/cache/stats?namespace=many", 200));
    json_decref(stats_as(s, "acme-read-token", "/cache/stats?tenant=globex", 403));
    json_decref(stats_as(s, "acme-read-token", "/cache/stats?tenant=acme", 200));
    /* 600 more tenants, pipelined on one connection: 511 get a row (acme has one), 89 share
     * "other". */
    static char reqs[600 * 160];
    size_t len = 0;
    for (int i = 0; i < 600; i++)
        len += (size_t)snprintf(reqs + len, sizeof reqs - len,
                                "GET /v1/cache/many/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                                "%s\r\nX-Tenant: t%03d\r\n\r\n",
                                ADMIN, i);
    int fd = sh_raw_connect(sh_port(s));
    assert_true(fd >= 0);
    assert_int_equal(sh_raw_send(fd, reqs, len), 0);
    size_t got;
    int eof;
    free(sh_raw_read_responses(fd, 600, 10000, &got, &eof));
    close(fd);
    j = stats_as(s, ADMIN, "/cache/stats?namespace=many", 200);
    assert_int_equal(jint(j, "requests", "misses"), 600); /* the namespace's row is exact */
    json_decref(j);
    j = stats_as(s, ADMIN, "/cache/stats?tenant=t000&namespace=many", 200);
    assert_int_equal(jint(j, "requests", "misses"), 1);
    assert_true(json_is_true(json_object_get(j, "complete"))); /* it has its row */
    json_decref(j);
    j = stats_as(s, ADMIN, "/cache/stats?tenant=t599", 200); /* counted in "other" */
    assert_int_equal(jint(j, "requests", "total"), 0);
    assert_true(json_is_false(json_object_get(j, "complete")));
    json_decref(j);
    assert_int_equal(sh_stop_check(s), 0);
}

static void test_clean_exit(void **state)
{
    (void)state;
    int a = sh_stop_check(srv), b = sh_stop_check(other);
    srv = other = NULL;
    assert_int_equal(a, 0);
    assert_int_equal(b, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_clear),
        cmocka_unit_test(test_keys_paging),
        cmocka_unit_test(test_inspect),
        cmocka_unit_test(test_probes_and_metrics),
        cmocka_unit_test(test_stats_per_namespace_and_tenant),
        cmocka_unit_test(test_stats_tenants_bounded),
        cmocka_unit_test(test_clean_exit),
    };
    SH_TEST_FILTER();
    return cmocka_run_group_tests(tests, setup, teardown);
}
