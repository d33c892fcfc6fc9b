/* test_redis_url.c: where Redis is, as src/lib/redis/redis_url.c and the configuration layer
 * (strata_cache_config_init) decide it without a Redis: REDIS_HOST, REDIS_PORT, REDIS_DB,
 * REDIS_USERNAME and REDIS_PASSWORD composed into the connection REDIS_URL would give; bad values
 * refused with the variable named; REDIS_URL winning over them with one warning that names the
 * ignored ones; REDIS_HOST with REDIS_SENTINELS refused, naming both. That strata serve reaches a
 * real Redis through them is tests/integration/test_server_redis_settings.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <strata/cache.h>
#include <strata/errors.h>

#include "redis/redis_url.h"

static void clear_env(void)
{
    static const char *vars[] = {"REDIS_URL",
                                 "REDIS_SENTINELS",
                                 "REDIS_SENTINEL_MASTER",
                                 "REDIS_USERNAME",
                                 "REDIS_PASSWORD",
                                 "REDIS_HOST",
                                 "REDIS_PORT",
                                 "REDIS_DB",
                                 "REDIS_TLS",
                                 NULL};
    for (int i = 0; vars[i] != NULL; i++)
        unsetenv(vars[i]);
}

static void test_compose_like_a_url(void **state)
{
    (void)state;
    redis_url a, b;
    const char *why = NULL;
    assert_int_equal(
        strata__redis_url_compose("cache.internal", 6380, 2, "app", "p@ss:w", 1, &a, &why), 0);
    assert_int_equal(
        strata__redis_url_parse("rediss://app:p%40ss%3Aw@cache.internal:6380/2", &b, NULL), 0);
    assert_memory_equal(&a, &b, sizeof a);
    /* Defaults: port 6379, db 0, no credentials, no TLS; a bracketed or bare IPv6 address. */
    assert_int_equal(strata__redis_url_compose("[::1]", 0, 0, NULL, NULL, 0, &a, NULL), 0);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 6379);
    assert_int_equal(a.db, 0);
    assert_string_equal(a.user, "");
    assert_string_equal(a.password, "");
    assert_int_equal(a.tls, 0);
    assert_int_equal(strata__redis_url_compose("fe80::1", 7000, 0, NULL, "pw", 0, &a, NULL), 0);
    assert_string_equal(a.host, "fe80::1");
    assert_int_equal(a.port, 7000);
    assert_string_equal(a.password, "pw");
}

static void test_host_refused_with_a_reason(void **state)
{
    (void)state;
    static const struct {
        const char *host, *says;
    } bad[] = {{"redis:6379", "REDIS_PORT"}, {"/run/redis.sock", "unix://"}, {"a b", "invalid"},
               {"user@h", "invalid"},        {"[::1", "unterminated"},       {"[]", "missing"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *why = NULL;
        redis_url u;
        assert_int_equal(strata__redis_host_check(bad[i].host, &why), STRATA_EBADURL);
        assert_non_null(strstr(why, bad[i].says));
        assert_int_equal(strata__redis_url_compose(bad[i].host, 0, 0, NULL, NULL, 0, &u, NULL),
                         STRATA_EBADURL);
    }
    redis_url u;
    assert_int_equal(strata__redis_url_compose("h", 65536, 0, NULL, NULL, 0, &u, NULL),
                     STRATA_EBADURL);
    assert_int_equal(strata__redis_url_compose("h", 1, 65536, NULL, NULL, 0, &u, NULL),
                     STRATA_EBADURL);
}

static void test_env_composes(void **state)
{
    (void)state;
    clear_env();
    setenv("REDIS_HOST", "redis.internal", 1);
    setenv("REDIS_PORT", "6390", 1);
    setenv("REDIS_DB", "3", 1);
    setenv("REDIS_USERNAME", "app", 1);
    setenv("REDIS_PASSWORD", "s3cret", 1);
    setenv("REDIS_TLS", "1", 1);
    strata_cache_config cfg;
    const char *bad = NULL;
    assert_int_equal(strata_cache_config_init(&cfg, &bad), 0);
    assert_null(cfg.redis.url);
    assert_string_equal(cfg.redis.host, "redis.internal");
    assert_int_equal(cfg.redis.port, 6390);
    assert_int_equal(cfg.redis.db, 3);
    assert_string_equal(cfg.redis.username, "app");
    assert_string_equal(cfg.redis.password, "s3cret");
    assert_int_equal(cfg.redis.tls, 1);
    redis_url u;
    assert_int_equal(strata__redis_url_compose(cfg.redis.host, cfg.redis.port, cfg.redis.db,
                                               cfg.redis.username, cfg.redis.password,
                                               cfg.redis.tls, &u, NULL),
                     0);
    assert_string_equal(u.host, "redis.internal");
    assert_int_equal(u.port, 6390);
    assert_int_equal(u.db, 3);
    assert_int_equal(u.tls, 1); /* REDIS_TLS=1: rediss:// */
    clear_env();
    setenv("REDIS_HOST", "127.0.0.1", 1);
    assert_int_equal(strata_cache_config_init(&cfg, &bad), 0);
    assert_int_equal(cfg.redis.port, 0); /* 6379 */
    assert_int_equal(cfg.redis.db, 0);
    assert_null(cfg.redis.password);
    clear_env();
}

static void test_env_bad_values_name_the_variable(void **state)
{
    (void)state;
    static const struct {
        const char *var, *value, *says;
        int rc;
    } bad[] = {
        {"REDIS_PORT", "abc", "1 to 65535", STRATA_ERANGE},
        {"REDIS_PORT", "0", "1 to 65535", STRATA_ERANGE},
        {"REDIS_PORT", "65536", "1 to 65535", STRATA_ERANGE},
        {"REDIS_PORT", "6379 ", "1 to 65535", STRATA_ERANGE},
        {"REDIS_DB", "-1", "0 to 65535", STRATA_ERANGE},
        {"REDIS_DB", "65536", "0 to 65535", STRATA_ERANGE},
        {"REDIS_DB", "two", "0 to 65535", STRATA_ERANGE},
        {"REDIS_HOST", "redis:6379", "REDIS_PORT", STRATA_EBADURL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        clear_env();
        setenv("REDIS_HOST", "127.0.0.1", 1);
        setenv(bad[i].var, bad[i].value, 1);
        strata_cache_config cfg;
        const char *bad_var = NULL;
        assert_int_equal(strata_cache_config_init(&cfg, &bad_var), bad[i].rc);
        assert_string_equal(bad_var, bad[i].var);
        char why[200];
        strata_cache_config_why(bad_var, getenv(bad_var), why, sizeof why);
        assert_non_null(strstr(why, bad[i].says));
    }
    /* A user without a password would be dropped silently (no AUTH is sent without one). */
    clear_env();
    setenv("REDIS_HOST", "127.0.0.1", 1);
    setenv("REDIS_USERNAME", "app", 1);
    strata_cache_config cfg;
    const char *bad_var = NULL;
    assert_int_equal(strata_cache_config_init(&cfg, &bad_var), STRATA_ERANGE);
    assert_string_equal(bad_var, "REDIS_USERNAME");
    clear_env();
}

static void test_env_host_and_sentinels_name_both(void **state)
{
    (void)state;
    clear_env();
    setenv("REDIS_HOST", "127.0.0.1", 1);
    setenv("REDIS_SENTINELS", "127.0.0.1:26379", 1);
    setenv("REDIS_SENTINEL_MASTER", "mymaster", 1);
    strata_cache_config cfg;
    const char *bad = NULL;
    assert_int_equal(strata_cache_config_init(&cfg, &bad), STRATA_EINVAL);
    assert_string_equal(bad, "REDIS_SENTINELS");
    char why[200];
    strata_cache_config_why(bad, getenv(bad), why, sizeof why);
    assert_non_null(strstr(why, "REDIS_HOST"));
    assert_non_null(strstr(why, "REDIS_SENTINELS"));
    /* The library refuses the same through the struct. */
    memset(&cfg, 0, sizeof cfg);
    strata_l1_config_init(&cfg.l1);
    cfg.redis.enabled = 1;
    cfg.redis.host = "127.0.0.1";
    cfg.redis.sentinels = "127.0.0.1:26379";
    cfg.redis.sentinel_master = "mymaster";
    strata_cache *c = NULL;
    assert_int_equal(strata_cache_new(&cfg, &c), STRATA_EINVAL);
    assert_null(c);
    clear_env();
}

typedef struct warnings {
    int n;
    char last[300];
} warnings;

static void keep_warnings(int level, const char *msg, void *arg)
{
    warnings *w = arg;
    if (level == 1) {
        w->n++;
        snprintf(w->last, sizeof w->last, "%s", msg);
    }
}

/* Builds a cache from the environment and returns the warnings it logged while starting. */
static warnings start_from_env(strata_l2_stats *st)
{
    warnings w = {0};
    strata_cache_config cfg;
    const char *bad = NULL;
    assert_int_equal(strata_cache_config_init(&cfg, &bad), 0);
    cfg.redis.coherence = 0; /* no link thread: nothing listens on these ports */
    cfg.log = keep_warnings;
    cfg.log_arg = &w;
    strata_cache *c = NULL;
    assert_int_equal(strata_cache_new(&cfg, &c), 0);
    strata_cache_l2_stats(c, st);
    strata_cache_free(c);
    return w;
}

static void test_url_wins_with_one_warning(void **state)
{
    (void)state;
    clear_env();
    setenv("REDIS_URL", "redis://127.0.0.1:1/4", 1);
    setenv("REDIS_HOST", "127.0.0.2", 1);
    setenv("REDIS_PORT", "2", 1);
    setenv("REDIS_DB", "5", 1);
    setenv("REDIS_PASSWORD", "pw", 1);
    strata_l2_stats st;
    warnings w = start_from_env(&st);
    assert_int_equal(w.n, 1);
    assert_non_null(strstr(w.last, "REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_PASSWORD are ignored"));
    assert_non_null(strstr(w.last, "REDIS_URL"));
    assert_string_equal(st.topology, "single");
    assert_string_equal(st.primary, "127.0.0.1:1"); /* the URL's, not REDIS_HOST's */
    /* The composed connection, and no warning when nothing is ignored. */
    clear_env();
    setenv("REDIS_HOST", "127.0.0.1", 1);
    setenv("REDIS_PORT", "2", 1);
    setenv("REDIS_DB", "5", 1);
    w = start_from_env(&st);
    assert_int_equal(w.n, 0);
    assert_true(st.configured);
    assert_string_equal(st.primary, "127.0.0.1:2");
    /* The split settings alone, without REDIS_HOST: memory only, said once. */
    clear_env();
    setenv("REDIS_PORT", "6380", 1);
    w = start_from_env(&st);
    assert_int_equal(w.n, 1);
    assert_non_null(strstr(w.last, "REDIS_PORT is ignored"));
    assert_non_null(strstr(w.last, "REDIS_HOST"));
    assert_false(st.configured);
    clear_env();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compose_like_a_url),
        cmocka_unit_test(test_host_refused_with_a_reason),
        cmocka_unit_test(test_env_composes),
        cmocka_unit_test(test_env_bad_values_name_the_variable),
        cmocka_unit_test(test_env_host_and_sentinels_name_both),
        cmocka_unit_test(test_url_wins_with_one_warning),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
