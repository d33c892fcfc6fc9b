/* test_server_startup.c: strata serve refuses a bad configuration at once, exiting non-zero with
 * a message that names the variable or flag at fault (docs/operations.md); it refuses to listen
 * on a non-loopback address without tokens unless --insecure; and a good configuration starts. */
#include <sched.h>
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

#define QUICK_MS 3000 /* "at once", with room for a loaded machine and sanitizers */

/* Runs strata serve with env and args; expects a non-zero exit within QUICK_MS whose output
 * names `names`. */
static void expect_refused(const char *const *env, const char *const *args, const char *names)
{
    char *out = NULL;
    long took = 0;
    int st = sh_run(env, args, 10000, &out, &took);
    int ok = st > 0 && st < 128 && took <= QUICK_MS && strstr(out, names) != NULL;
    if (!ok) {
        fprintf(stderr, "config [");
        for (size_t i = 0; env != NULL && env[i] != NULL; i++)
            fprintf(stderr, "%s%s", i ? " " : "", env[i]);
        fprintf(stderr, "] args [");
        for (size_t i = 0; args != NULL && args[i] != NULL; i++)
            fprintf(stderr, "%s%s", i ? " " : "", args[i]);
        fprintf(stderr, "]: status %d after %ld ms, expected a message naming %s:\n%s\n", st, took,
                names, out);
    }
    /* No sanitizer report on the way out either. */
    int dirty = strstr(out, "ERROR: AddressSanitizer") != NULL ||
                strstr(out, "ERROR: LeakSanitizer") != NULL ||
                strstr(out, "runtime error:") != NULL;
    free(out);
    assert_true(st > 0 && st < 128); /* an exit code, not a crash (or -1: still running) */
    assert_true(took <= QUICK_MS);
    assert_true(ok);
    assert_false(dirty);
}

static void refused_env(const char *var, const char *names)
{
    const char *env[] = {var, NULL};
    expect_refused(env, NULL, names);
}

static void test_bad_environment(void **state)
{
    (void)state;
    refused_env("STRATA_LISTEN=nonsense", "STRATA_LISTEN");
    refused_env("STRATA_LISTEN=127.0.0.1:99999", "STRATA_LISTEN");
    refused_env("STRATA_LISTEN=127.0.0.1:", "STRATA_LISTEN");
    refused_env("STRATA_LISTEN=127.0.0.1:80x", "STRATA_LISTEN");
    refused_env("STRATA_LISTEN=:8080", "STRATA_LISTEN");
    refused_env("REDIS_URL=http://127.0.0.1:6379", "REDIS_URL");
    refused_env("REDIS_URL=redis://127.0.0.1:notaport", "REDIS_URL");
    refused_env("REDIS_URL=not a url", "REDIS_URL");
    refused_env("REDIS_PORT=abc", "REDIS_PORT");
    refused_env("REDIS_DB=65536", "REDIS_DB");
    refused_env("REDIS_HOST=redis:6379", "REDIS_HOST");
    const char *host_and_sentinels[] = {"REDIS_HOST=127.0.0.1", "REDIS_SENTINELS=127.0.0.1:26379",
                                        "REDIS_SENTINEL_MASTER=mymaster", NULL};
    expect_refused(host_and_sentinels, NULL, "REDIS_HOST and REDIS_SENTINELS are both set");
    refused_env("STRATA_WORKERS=0", "STRATA_WORKERS");
    refused_env("STRATA_WORKERS=abc", "STRATA_WORKERS");
    refused_env("STRATA_WORKERS=-1", "STRATA_WORKERS");
    refused_env("STRATA_WORKERS=100000", "STRATA_WORKERS");
    refused_env("STRATA_TOKENS=short:admin", "STRATA_TOKENS");
    refused_env("STRATA_TOKENS=long-enough-token:superuser", "STRATA_TOKENS");
    refused_env("STRATA_TOKENS=long-enough-token", "STRATA_TOKENS");
    refused_env("STRATA_TOKENS=long-enough-token:read:bad/tenant", "STRATA_TOKENS");
    refused_env("STRATA_TOKENS=long-enough-token:read:", "STRATA_TOKENS");
    refused_env("STRATA_TOKENS=long-enough-token:read,long-enough-token:admin", "STRATA_TOKENS");
    refused_env("STRATA_TOKENS=long enough token:read", "STRATA_TOKENS");
    refused_env("STRATA_MAX_BODY=10", "STRATA_MAX_BODY");
    refused_env("STRATA_MAX_CONNECTIONS=0", "STRATA_MAX_CONNECTIONS");
    refused_env("STRATA_IDLE_TIMEOUT=0", "STRATA_IDLE_TIMEOUT");
    refused_env("STRATA_LOG_LEVEL=loud", "STRATA_LOG_LEVEL");
    refused_env("STRATA_ACCESS_LOG=maybe", "STRATA_ACCESS_LOG");
    refused_env("STRATA_INSECURE=perhaps", "STRATA_INSECURE");
    refused_env("REDIS_SOCKET_TIMEOUT=soon", "REDIS_SOCKET_TIMEOUT");
    refused_env("REDIS_CONNECT_TIMEOUT=-1", "REDIS_CONNECT_TIMEOUT");
    refused_env("CACHE_TTL=forever", "CACHE_TTL");
    refused_env("STRATA_PREFIX=a:b", "STRATA_PREFIX");
    refused_env("STRATA_L1_MAX_MEMORY=lots", "STRATA_L1_MAX_MEMORY");
}

/* A refused variable is explained by what it takes, not by a status: "64MB" was "value out of
 * range" when the suffix is what is wrong (hardening item 18). */
static void test_bad_value_says_what_it_takes(void **state)
{
    (void)state;
    refused_env("STRATA_L1_MAX_MEMORY=64MB", "STRATA_L1_MAX_MEMORY=64MB: \"MB\" is not a size "
                                             "suffix: use K, M or G");
    refused_env("STRATA_L1_MAX_MEMORY=0", "a size must be more than 0");
    refused_env("STRATA_L1_MAX_MEMORY=99999999999999999999", "too large a size");
    refused_env("STRATA_L1_MAX_MEMORY=lots", "digits with an optional K, M or G suffix");
    refused_env("CACHE_TTL=5m", "CACHE_TTL=5m: expected whole seconds");
    refused_env("REDIS_SOCKET_TIMEOUT=250ms", "expected seconds above 0");
    refused_env("REDIS_ENABLED=maybe", "expected true or false");
    refused_env("REDIS_MAX_CONNECTIONS=0", "from 1 to 1024");
    char *out = NULL;
    const char *env[] = {"STRATA_L1_MAX_MEMORY=64MB", NULL};
    sh_run(env, NULL, 10000, &out, NULL);
    assert_null(strstr(out, "out of range"));
    free(out);
}

static void test_bad_flags(void **state)
{
    (void)state;
    const char *listen[] = {"--listen", "nowhere", NULL};
    expect_refused(NULL, listen, "--listen");
    const char *workers[] = {"--workers", "0", NULL};
    expect_refused(NULL, workers, "--workers");
    const char *level[] = {"--log-level", "chatty", NULL};
    expect_refused(NULL, level, "--log-level");
    const char *unknown[] = {"--bogus", NULL};
    expect_refused(NULL, unknown, "--bogus");
    const char *missing[] = {"--listen", NULL};
    expect_refused(NULL, missing, "--listen");
    const char *file[] = {"--tokens-file", "/nonexistent/strata-tokens", NULL};
    expect_refused(NULL, file, "/nonexistent/strata-tokens");
    /* A tokens file with a bad line: named by file and line. */
    char path[] = "/tmp/strata-tokens-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "good-token-one:admin\nbad-line-without-role\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    const char *badfile[] = {"--tokens-file", path, NULL};
    expect_refused(NULL, badfile, "line 2");
    unlink(path);
    /* --help is not an error. */
    const char *help[] = {"--help", NULL};
    char *out = NULL;
    int st = sh_run(NULL, help, 5000, &out, NULL);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "usage"));
    free(out);
}

/* The exit code tells a malformed setting (2, whichever part of the server reads it: a
 * malformed STRATA_NAMESPACES exited 1) from a server that cannot start (1), as
 * docs/operations.md's table says. */
static int exit_code(const char *var, const char *const *args)
{
    const char *env[] = {"STRATA_LISTEN=127.0.0.1:39124", var, NULL};
    int st = sh_run(env, args, 10000, NULL, NULL);
    if (st != 2 && st != 1)
        fprintf(stderr, "%s: exit status %d\n", var ? var : args[0], st);
    return st;
}

static void test_malformed_settings_exit_2(void **state)
{
    (void)state;
    assert_int_equal(exit_code("STRATA_WORKERS=0", NULL), 2);
    assert_int_equal(exit_code("REDIS_PORT=notaport", NULL), 2);
    assert_int_equal(exit_code("REDIS_DB=-1", NULL), 2);
    assert_int_equal(exit_code("STRATA_L1_MAX_MEMORY=64MB", NULL), 2);
    assert_int_equal(exit_code("STRATA_TOKENS=short:admin", NULL), 2);
    assert_int_equal(exit_code("STRATA_RATE_LIMITS=nonsense", NULL), 2);
    assert_int_equal(exit_code("STRATA_NAMESPACES=llm:tll=5", NULL), 2);
    const char *workers[] = {"--workers", "0", NULL};
    assert_int_equal(exit_code(NULL, workers), 2);
    /* Cannot start: a tokens file that is not there, or does not parse; no tokens in public. */
    const char *file[] = {"--tokens-file", "/nonexistent/strata-tokens", NULL};
    assert_int_equal(exit_code("STRATA_TOKENS=good-token-one:admin", file), 1);
    char path[] = "/tmp/strata-tokens-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "bad-line-without-role\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    const char *badfile[] = {"--tokens-file", path, NULL};
    assert_int_equal(exit_code(NULL, badfile), 1);
    unlink(path);
    const char *exposed[] = {"--listen", "0.0.0.0:39124", NULL};
    assert_int_equal(exit_code(NULL, exposed), 1);
}

static void test_exposed_without_tokens(void **state)
{
    (void)state;
    /* 0.0.0.0 without tokens: refused, and the message says what to do. */
    const char *env[] = {"STRATA_LISTEN=0.0.0.0:39123", NULL};
    expect_refused(env, NULL, "--insecure");
    const char *args[] = {"--listen", "0.0.0.0:39124", NULL};
    expect_refused(NULL, args, "--insecure");

    /* With --insecure (or STRATA_INSECURE), or with tokens, it starts. */
    const char *insecure[] = {"--listen", "0.0.0.0:{PORT}", "--insecure", NULL};
    const char *one[] = {"STRATA_WORKERS=1", NULL};
    sh_server *s = sh_start(one, insecure);
    assert_non_null(s);
    SH_CALL_EXPECT(s, "GET", "/cache/stats", NULL, NULL, NULL, NULL, 200);
    assert_int_equal(sh_stop_check(s), 0);

    const char *listen_any[] = {"--listen", "0.0.0.0:{PORT}", NULL};
    const char *env_insecure[] = {"STRATA_WORKERS=1", "STRATA_INSECURE=true", NULL};
    s = sh_start(env_insecure, listen_any);
    assert_non_null(s);
    assert_int_equal(sh_stop_check(s), 0);

    const char *env_tokens[] = {"STRATA_WORKERS=1", "STRATA_TOKENS=admin-token-1:admin", NULL};
    s = sh_start(env_tokens, listen_any);
    assert_non_null(s);
    sh_resp *r = sh_call(s, "GET", "/cache/stats", NULL, NULL, NULL, NULL);
    SH_EXPECT_ERROR(r, 401, "unauthorized");
    sh_resp_free(r);
    SH_CALL_EXPECT(s, "GET", "/cache/stats", "admin-token-1", NULL, NULL, NULL, 200);
    assert_int_equal(sh_stop_check(s), 0);

    /* Loopback without tokens: development mode, everything allowed. */
    s = sh_start(one, NULL);
    assert_non_null(s);
    SH_CALL_EXPECT(s, "GET", "/cache/stats", NULL, NULL, NULL, NULL, 200);
    assert_int_equal(sh_stop_check(s), 0);
}

static void test_port_in_use(void **state)
{
    (void)state;
    /* A port held by a redis-server (no SO_REUSEPORT): strata serve cannot listen and says so. */
    rh_server *redis = rh_start(NULL);
    assert_non_null(redis);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", rh_port(redis));
    const char *args[] = {"--listen", listen, "--workers", "1", NULL};
    expect_refused(NULL, args, listen);
    rh_stop(redis);
    /* A port a strata serve listens on (with SO_REUSEPORT, as its workers do): a second one is
     * refused too, instead of starting and silently sharing the traffic. */
    sh_server *first = sh_start(NULL, NULL);
    assert_non_null(first);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", sh_port(first));
    const char *again[] = {"--listen", listen, NULL};
    expect_refused(NULL, again, "another process already listens there");
    assert_true(sh_healthy(first)); /* the first goes on serving */
    assert_int_equal(sh_stop_check(first), 0);
}

/* Left to its default, the worker count is the CPUs the process may run on, not the machine's:
 * started under an affinity of one CPU (as taskset does; the child inherits ours), one worker. */
static void test_default_workers_follow_affinity(void **state)
{
    (void)state;
    cpu_set_t saved, one;
    assert_int_equal(sched_getaffinity(0, sizeof saved, &saved), 0);
    CPU_ZERO(&one);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &saved)) {
            CPU_SET(cpu, &one);
            break;
        }
    assert_int_equal(sched_setaffinity(0, sizeof one, &one), 0);
    sh_server *s = sh_start(NULL, NULL);
    assert_int_equal(sched_setaffinity(0, sizeof saved, &saved), 0);
    assert_non_null(s);
    int seen = 0;
    for (int i = 0; i < 100 && !seen; i++) { /* the start line follows the listening sockets */
        seen = sh_log_contains(s, "(1 worker, from its affinity mask;");
        if (!seen)
            usleep(20000);
    }
    assert_true(seen);
    assert_int_equal(sh_stop_check(s), 0);
}

static void test_redis_down_at_start(void **state)
{
    (void)state;
    /* Redis not there at start is not a configuration error: it serves from L1. */
    const char *env[] = {"REDIS_URL=redis://127.0.0.1:1", "STRATA_WORKERS=1", NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    sh_resp *r = sh_call(s, "PUT", "/v1/cache/st/k", NULL, NULL, NULL, "v");
    SH_EXPECT_STATUS(r, 204);
    SH_EXPECT_HEADER(r, "X-Cache-Write", "l1-only");
    sh_resp_free(r);
    SH_CALL_EXPECT(s, "GET", "/v1/cache/st/k", NULL, NULL, NULL, NULL, 200);
    r = sh_call(s, "GET", "/cache/health", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    json_t *j = sh_resp_json(r);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "degraded");
    json_decref(j);
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(s), 0);
    /* With --require-redis health is 503 then. */
    const char *req[] = {"--require-redis", NULL};
    s = sh_start(env, req);
    assert_non_null(s);
    r = sh_call(s, "GET", "/cache/health", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 503);
    j = sh_resp_json(r);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "unhealthy");
    json_decref(j);
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_environment),
        cmocka_unit_test(test_bad_value_says_what_it_takes),
        cmocka_unit_test(test_bad_flags),
        cmocka_unit_test(test_malformed_settings_exit_2),
        cmocka_unit_test(test_exposed_without_tokens),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_redis_down_at_start),
        cmocka_unit_test(test_default_workers_follow_affinity),
    };
    SH_TEST_FILTER();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
