/* test_sentinel.c: what src/lib/redis/sentinel.c decides without a sentinel: the
 * REDIS_SENTINELS list and the master's name, the configuration read from the environment
 * (REDIS_URL with REDIS_SENTINELS is refused, naming both), and a cache whose sentinels do not
 * answer (it starts, serves L1, and says it is on sentinels with no primary known). The
 * failover itself is tests/integration/test_redis_sentinel.c, against real processes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <strata/cache.h>
#include <strata/errors.h>

#include "redis/breaker.h"
#include "redis/sentinel.h"

static void test_list_parses(void **state)
{
    (void)state;
    sentinel_addr a[SENTINELS_MAX];
    size_t n = 0;
    assert_int_equal(
        strata__sentinels_parse("s1.example:26379, 10.0.0.2:26380 ,[::1]:5", a, &n, NULL), 0);
    assert_int_equal(n, 3);
    assert_string_equal(a[0].host, "s1.example");
    assert_int_equal(a[0].port, 26379);
    assert_string_equal(a[1].host, "10.0.0.2");
    assert_int_equal(a[1].port, 26380);
    assert_string_equal(a[2].host, "::1");
    assert_int_equal(a[2].port, 5);
    assert_int_equal(strata__sentinels_parse("h:1", NULL, NULL, NULL), 0);
}

static void test_list_refuses_with_a_reason(void **state)
{
    (void)state;
    static const char *bad[] = {"",     "h",    "h:",      ":26379",     "h:0",     "h:65536",
                                "h:1x", "h:1,", "h:1;g:2", "[::1:26379", "h:1 g:2", NULL};
    for (int i = 0; bad[i] != NULL; i++) {
        const char *why = NULL;
        if (strata__sentinels_parse(bad[i], NULL, NULL, &why) != STRATA_EBADURL)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_non_null(why);
    }
    char many[400] = "";
    for (int i = 0; i <= SENTINELS_MAX; i++)
        strcat(many, i ? ",h:1" : "h:1");
    const char *why = NULL;
    assert_int_equal(strata__sentinels_parse(many, NULL, NULL, &why), STRATA_EBADURL);
    assert_non_null(strstr(why, "16"));
}

static void test_master_name(void **state)
{
    (void)state;
    assert_int_equal(strata__sentinel_master_check("mymaster"), 0);
    assert_int_equal(strata__sentinel_master_check(""), STRATA_EINVAL);
    assert_int_equal(strata__sentinel_master_check("my master"), STRATA_EINVAL);
    assert_int_equal(strata__sentinel_master_check(NULL), STRATA_EINVAL);
    char longname[130];
    memset(longname, 'm', 129);
    longname[129] = '\0';
    assert_int_equal(strata__sentinel_master_check(longname), STRATA_EINVAL);
}

static void clear_env(void)
{
    static const char *vars[] = {"REDIS_URL",
                                 "REDIS_SENTINELS",
                                 "REDIS_SENTINEL_MASTER",
                                 "REDIS_SENTINEL_PASSWORD",
                                 "REDIS_USERNAME",
                                 "REDIS_PASSWORD",
                                 NULL};
    for (int i = 0; vars[i] != NULL; i++)
        unsetenv(vars[i]);
}

static void test_env_url_and_sentinels_name_both(void **state)
{
    (void)state;
    clear_env();
    setenv("REDIS_URL", "redis://127.0.0.1:6379", 1);
    setenv("REDIS_SENTINELS", "127.0.0.1:26379", 1);
    setenv("REDIS_SENTINEL_MASTER", "mymaster", 1);
    strata_cache_config cfg;
    const char *bad = NULL;
    assert_int_not_equal(strata_cache_config_init(&cfg, &bad), 0);
    assert_string_equal(bad, "REDIS_SENTINELS");
    char why[200];
    strata_cache_config_why(bad, getenv(bad), why, sizeof why);
    assert_non_null(strstr(why, "REDIS_URL"));
    assert_non_null(strstr(why, "REDIS_SENTINELS"));
    /* The library refuses the same through the struct. */
    cfg.redis.url = "redis://127.0.0.1:6379";
    cfg.redis.sentinels = "127.0.0.1:26379";
    cfg.redis.sentinel_master = "mymaster";
    strata_cache *c = NULL;
    assert_int_equal(strata_cache_new(&cfg, &c), STRATA_EINVAL);
    assert_null(c);
    clear_env();
}

static void test_env_sentinels(void **state)
{
    (void)state;
    clear_env();
    setenv("REDIS_SENTINELS", "127.0.0.1:26379,127.0.0.1:26380", 1);
    strata_cache_config cfg;
    const char *bad = NULL;
    assert_int_not_equal(strata_cache_config_init(&cfg, &bad), 0);
    assert_string_equal(bad, "REDIS_SENTINEL_MASTER"); /* the name is required */
    setenv("REDIS_SENTINEL_MASTER", "mymaster", 1);
    setenv("REDIS_SENTINEL_PASSWORD", "s3cret", 1);
    setenv("REDIS_USERNAME", "app", 1);
    setenv("REDIS_PASSWORD", "pw", 1);
    assert_int_equal(strata_cache_config_init(&cfg, &bad), 0);
    assert_string_equal(cfg.redis.sentinels, "127.0.0.1:26379,127.0.0.1:26380");
    assert_string_equal(cfg.redis.sentinel_master, "mymaster");
    assert_string_equal(cfg.redis.sentinel_password, "s3cret");
    assert_string_equal(cfg.redis.username, "app");
    assert_string_equal(cfg.redis.password, "pw");
    assert_null(cfg.redis.url);
    setenv("REDIS_SENTINELS", "127.0.0.1", 1);
    assert_int_equal(strata_cache_config_init(&cfg, &bad), STRATA_EBADURL);
    assert_string_equal(bad, "REDIS_SENTINELS");
    char why[200];
    strata_cache_config_why(bad, getenv(bad), why, sizeof why);
    assert_non_null(strstr(why, "port"));
    clear_env();
}

static void quiet(int level, const char *msg, void *arg)
{
    (void)level, (void)msg, (void)arg;
}

/* No sentinel answers (nothing listens on 17950 in the tests' range): L1 serves, the stats say
 * sentinel with no primary, and nothing blocks or crashes. */
static void test_cache_without_an_answering_sentinel(void **state)
{
    (void)state;
    clear_env();
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    cfg.redis.sentinels = "127.0.0.1:17950";
    cfg.redis.sentinel_master = "mymaster";
    cfg.log = quiet;
    strata_cache *c = NULL;
    assert_int_equal(strata_cache_new(&cfg, &c), 0);
    strata_key k = {.ns = "ns", .tenant = "t", .key = "k", .len = 1};
    int rc = strata_cache_set(c, &k, "v", 1, NULL);
    assert_true(rc == STRATA_OK_L1_ONLY);
    strata_l2_stats st;
    strata_cache_l2_stats(c, &st);
    assert_true(st.configured);
    assert_string_equal(st.topology, "sentinel");
    assert_string_equal(st.primary, "");
    assert_false(st.tls);
    strata_cache_free(c);
}

static void test_breaker_retry_now(void **state)
{
    (void)state;
    breaker b;
    strata__breaker_init(&b, 1, 10000, 10000);
    assert_int_equal(strata__breaker_failure(&b, 1000), 1);
    assert_false(strata__breaker_allow(&b, 1001));
    strata__breaker_retry_now(&b); /* a new primary: probe it now, not in 10 s */
    assert_true(strata__breaker_allow(&b, 1002));
    strata__breaker_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_parses),
        cmocka_unit_test(test_list_refuses_with_a_reason),
        cmocka_unit_test(test_master_name),
        cmocka_unit_test(test_env_url_and_sentinels_name_both),
        cmocka_unit_test(test_env_sentinels),
        cmocka_unit_test(test_cache_without_an_answering_sentinel),
        cmocka_unit_test(test_breaker_retry_now),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
