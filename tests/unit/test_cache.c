/* test_cache.c: the two-tier facade (src/lib/cache/cache.c) on its memory tier, clears of
 * several patterns at once, and the asynchronous calling convention: completed calls answer at
 * once and never call back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include <strata/strata.h>

static int callbacks;

static void on_get(int status, strata_value *v, void *arg)
{
    (void)status, (void)arg;
    strata_value_release(v);
    callbacks++;
}

static void on_done(int status, void *arg)
{
    (void)status, (void)arg;
    callbacks++;
}

static void test_config_env(void **state)
{
    (void)state;
    strata_cache_config cfg;
    setenv("STRATA_PREFIX", "myapp.cache", 1);
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    assert_string_equal(cfg.l1.prefix, "myapp.cache");
    setenv("STRATA_PREFIX", "bad prefix", 1);
    assert_int_equal(strata_cache_config_init(&cfg, NULL), STRATA_EBADNAME);
    unsetenv("STRATA_PREFIX");
    setenv("STRATA_L1_MAX_MEMORY", "nope", 1);
    assert_int_equal(strata_cache_config_init(&cfg, NULL), STRATA_ERANGE);
    unsetenv("STRATA_L1_MAX_MEMORY");
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    assert_string_equal(cfg.l1.prefix, "strata");
}

static void test_sync_calls(void **state)
{
    (void)state;
    strata_cache_config cfg;
    strata_cache_config_init(&cfg, NULL);
    cfg.l1.max_memory = 4u << 20;
    strata_cache *c;
    assert_int_equal(strata_cache_new(&cfg, &c), 0);
    assert_non_null(strata_cache_l1(c));
    strata_key k = {"ns", "t", "k", 1};
    strata_value *v;
    assert_int_equal(strata_cache_get(c, &k, &v), STRATA_ENOTFOUND);
    /* With no shared tier configured the memory tier is the whole cache: plain OK. */
    assert_int_equal(strata_cache_set(c, &k, "v", 1, NULL), STRATA_OK);
    assert_int_equal(strata_cache_get(c, &k, &v), 0);
    assert_memory_equal(strata_value_data(v), "v", 1);
    strata_value_release(v);
    assert_int_equal(strata_cache_del(c, &k), 0);
    assert_int_equal(strata_cache_del(c, &k), STRATA_ENOTFOUND);
    strata_key bad = {"ns", "t", "", 0};
    assert_int_equal(strata_cache_set(c, &bad, "v", 1, NULL), STRATA_EKEYEMPTY);
    strata_cache_free(c);
    strata_cache_free(NULL);

    cfg.l1.shards = 3;
    c = (strata_cache *)1;
    assert_int_equal(strata_cache_new(&cfg, &c), STRATA_EINVAL);
    assert_null(c);
}

static void on_pong(int status, uint64_t latency_us, void *arg)
{
    (void)status, (void)latency_us, (void)arg;
    callbacks++;
}

static void on_info(int status, const strata_redis_info *info, void *arg)
{
    (void)status, (void)info, (void)arg;
    callbacks++;
}

/* Several patterns are one pass: a key matching two of them is removed and counted once, as
 * clearing them one after another did; only the scope's keys go (hardening item 4). */
static void test_clear_any(void **state)
{
    (void)state;
    strata_cache *c;
    assert_int_equal(strata_cache_new(NULL, &c), 0);
    const char *keys[] = {"a1", "a2", "b1", "b2", "c1", "zz"};
    const char *tenants[] = {"acme", "beta"};
    for (size_t t = 0; t < 2; t++)
        for (size_t i = 0; i < 6; i++) {
            strata_key k = {"ns", tenants[t], keys[i], 2};
            assert_int_equal(strata_cache_set(c, &k, "v", 1, NULL), STRATA_OK);
        }
    const char *pats[] = {"a*", "*1", "none*", "a1"};
    size_t n = 99;
    assert_int_equal(strata_cache_clear_any(c, NULL, "acme", pats, 4, &n), 0);
    assert_int_equal(n, 4); /* a1 a2 b1 c1 */
    for (size_t t = 0; t < 2; t++)
        for (size_t i = 0; i < 6; i++) {
            strata_key k = {"ns", tenants[t], keys[i], 2};
            strata_value *v;
            int gone = t == 0 && (keys[i][0] == 'a' || keys[i][1] == '1');
            assert_int_equal(strata_cache_get(c, &k, &v), gone ? STRATA_ENOTFOUND : STRATA_OK);
            if (!gone)
                strata_value_release(v);
        }
    /* No pattern: the whole scope; patterns missing: refused. */
    assert_int_equal(strata_cache_clear_any(c, "ns", "acme", NULL, 0, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(strata_cache_clear_any(c, NULL, NULL, NULL, 1, &n), STRATA_EINVAL);
    assert_int_equal(strata_cache_clear_any(c, NULL, "bad tenant", pats, 1, &n), STRATA_EBADNAME);
    strata_cache_free(c);
}

static void test_async_convention(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    strata_cache *c;
    assert_int_equal(strata_cache_new(NULL, &c), 0);
    strata_loop *lp;
    assert_int_equal(strata_loop_new(c, NULL, &lp), STRATA_EINVAL);
    assert_int_equal(strata_loop_new(c, base, &lp), 0);
    callbacks = 0;
    strata_key k = {"ns", NULL, "k", 1};
    strata_value *v = NULL;
    assert_int_equal(strata_cache_get_async(lp, &k, on_get, NULL, &v), STRATA_ENOTFOUND);
    assert_null(v);
    assert_int_equal(strata_cache_set_async(lp, &k, "async", 5, NULL, on_done, NULL), STRATA_OK);
    assert_int_equal(strata_cache_get_async(lp, &k, on_get, NULL, &v), STRATA_OK);
    assert_memory_equal(strata_value_data(v), "async", 5);
    strata_value_release(v);
    assert_int_equal(strata_cache_del_async(lp, &k, on_done, NULL), STRATA_OK);
    strata_key bad = {"bad ns", NULL, "k", 1};
    assert_int_equal(strata_cache_set_async(lp, &bad, "v", 1, NULL, on_done, NULL),
                     STRATA_EBADNAME);
    /* Without a shared tier there is nobody to ping: failed at once. */
    assert_int_equal(strata_cache_ping_async(lp, on_pong, NULL), STRATA_EUNAVAILABLE);
    assert_int_equal(strata_cache_redis_info_async(lp, on_info, NULL), STRATA_EUNAVAILABLE);
    /* Completed or failed calls never call back, not even later from the loop. */
    event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(callbacks, 0);
    strata_loop_free(lp);
    strata_loop_free(NULL);
    strata_cache_free(c);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_env),
        cmocka_unit_test(test_sync_calls),
        cmocka_unit_test(test_clear_any),
        cmocka_unit_test(test_async_convention),
    };
    return cmocka_run_group_tests_name("cache", tests, NULL, NULL);
}
