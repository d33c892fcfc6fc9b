/* test_server_redis_settings.c: strata serve configured the way the seed services configure
 * Redis, with split variables instead of REDIS_URL (docs/operations.md, "REDIS_HOST and the
 * split settings"), against a real redis-server that requires a password.
 *
 * REDIS_HOST, REDIS_PORT, REDIS_DB and REDIS_PASSWORD reach it: a write is acknowledged as
 * shared (no X-Cache-Write: l1-only), lands in that database and nowhere else, and
 * /cache/health names the Redis as primary. With REDIS_URL set as well, the URL wins (the write
 * lands in its database) and the log holds exactly one warning naming the ignored variables.
 * What the configuration layer decides alone is tests/unit/test_redis_url.c; malformed values
 * are refused with exit code 2 in test_server_startup.c. */
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

#define PASSWORD "s3cr3t-pw"
#define READY_MS 10000 /* deadline for the server to report Redis available */
#define IGNORED  "REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_PASSWORD are ignored"

static rh_server *redis;

static int setup(void **state)
{
    (void)state;
    const char *const args[] = {"--requirepass", PASSWORD, NULL};
    redis = rh_start(args);
    return redis ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    rh_stop(redis);
    redis = NULL;
    return 0;
}

static int redis_available(void *arg)
{
    sh_resp *r = sh_call(arg, "GET", "/cache/health", NULL, NULL, NULL, NULL);
    json_t *j = r->status == 200 ? sh_resp_json(r) : NULL;
    int ok = j != NULL && json_is_true(json_object_get(j, "redis_available"));
    json_decref(j);
    sh_resp_free(r);
    return ok;
}

/* The number of keys Redis holds in database db (INFO keyspace), 0 when it has none. */
static long keys_in_db(int db)
{
    redisReply *r = rh_command(redis, "INFO keyspace");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char needle[32];
    snprintf(needle, sizeof needle, "db%d:keys=", db);
    const char *p = strstr(r->str, needle);
    long n = p ? atol(p + strlen(needle)) : 0;
    freeReplyObject(r);
    return n;
}

/* Starts strata serve with env, waits until it reports Redis available, writes one key and
 * checks it was acknowledged as shared. */
static sh_server *start_and_write(const char *const *env)
{
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    assert_true(rh_wait_for(redis_available, s, READY_MS));
    sh_resp *r =
        sh_call(s, "PUT", "/v1/cache/settings/greeting", NULL, NULL, "text/plain", "hello");
    SH_EXPECT_STATUS(r, 204);
    SH_EXPECT_HEADER(r, "X-Cache-Write", NULL); /* not l1-only: Redis took it */
    sh_resp_free(r);
    return s;
}

static int occurrences(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void test_split_settings_reach_redis(void **state)
{
    (void)state;
    freeReplyObject(rh_command(redis, "FLUSHALL"));
    char host[64], port[64];
    snprintf(host, sizeof host, "REDIS_HOST=%s", rh_host(redis));
    snprintf(port, sizeof port, "REDIS_PORT=%d", rh_port(redis));
    const char *env[] = {host, port, "REDIS_DB=5", "REDIS_PASSWORD=" PASSWORD, "STRATA_WORKERS=1",
                         NULL};
    sh_server *s = start_and_write(env);
    assert_int_equal(keys_in_db(5), 1);
    assert_int_equal(keys_in_db(0), 0);
    redisReply *r =
        rh_command(redis, "EVAL %s 0", "redis.call('SELECT', 5) return redis.call('KEYS', '*')");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 1);
    assert_non_null(strstr(r->element[0]->str, ":settings:"));
    assert_non_null(strstr(r->element[0]->str, ":greeting"));
    freeReplyObject(r);
    /* Health names the Redis the settings describe. */
    sh_resp *h = sh_call(s, "GET", "/cache/health", NULL, NULL, NULL, NULL);
    json_t *j = sh_resp_json(h);
    assert_non_null(j);
    json_t *redis_obj = json_object_get(j, "redis");
    char want[64];
    snprintf(want, sizeof want, "%s:%d", rh_host(redis), rh_port(redis));
    assert_string_equal(json_string_value(json_object_get(redis_obj, "topology")), "single");
    assert_string_equal(json_string_value(json_object_get(redis_obj, "primary")), want);
    json_decref(j);
    sh_resp_free(h);
    assert_false(sh_log_contains(s, "ignored"));
    assert_int_equal(sh_stop_check(s), 0);
}

static void test_url_wins_with_one_warning(void **state)
{
    (void)state;
    freeReplyObject(rh_command(redis, "FLUSHALL"));
    char url[160];
    snprintf(url, sizeof url, "REDIS_URL=redis://:%s@%s:%d/2", PASSWORD, rh_host(redis),
             rh_port(redis));
    /* Split settings that would point elsewhere: a wrong password, another port and database. */
    const char *env[] = {url,          "REDIS_HOST=127.0.0.1", "REDIS_PORT=1",
                         "REDIS_DB=7", "REDIS_PASSWORD=wrong", "STRATA_WORKERS=2",
                         NULL};
    sh_server *s = start_and_write(env);
    assert_int_equal(keys_in_db(2), 1);
    assert_int_equal(keys_in_db(7), 0);
    char *log = sh_log(s);
    int n = occurrences(log, IGNORED);
    if (n != 1)
        fprintf(stderr, "expected one \"%s\" in the log:\n%s\n", IGNORED, log);
    free(log);
    assert_int_equal(n, 1);
    assert_true(sh_log_contains(s, "REDIS_URL is set"));
    assert_int_equal(sh_stop_check(s), 0);
}

int main(void)
{
    SH_TEST_FILTER();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_settings_reach_redis),
        cmocka_unit_test(test_url_wins_with_one_warning),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
