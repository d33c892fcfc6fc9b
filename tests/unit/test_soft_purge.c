/* test_soft_purge.c: soft purges on the memory tier alone (src/lib/cache/touch.c's expire,
 * cache.c's expire_any and soft tag invalidation, l1/tags.c's soft records), on a fake clock:
 * a purged value is a miss for get and stale for get_stale within its windows, counted from the
 * purge, then gone; a value with no window is gone at once; a soft tag invalidation makes older
 * entries stale, newer ones stay fresh, a hard one after it makes them misses; the soft record
 * keeps the last STRATA_TAG_SOFT_KEEP retirements. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <strata/strata.h>

#include "cache/cache_internal.h"
#include "cache/soft_record.h"
#include "fake_redis.h"
#include "l1/tags.h"

static void quiet(int level, const char *msg, void *arg)
{
    (void)level, (void)msg, (void)arg;
}

static strata_cache *memory_cache(void)
{
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    cfg.l1.max_memory = 4u << 20;
    cfg.log = quiet;
    strata_cache *c;
    assert_int_equal(strata_cache_new(&cfg, &c), 0);
    strata__cache_use(c, NULL, NULL, 0, fake_clock);
    return c;
}

static void put(strata_cache *c, const strata_key *k, const char *v, uint64_t grace, uint64_t sie,
                const char *tag)
{
    const char *tags[] = {tag};
    strata_set_opts o = {.ttl_ms = 60000,
                         .grace_ms = grace,
                         .stale_if_error_ms = sie,
                         .tags = tags,
                         .ntags = tag != NULL,
                         .flags = STRATA_SET_NO_JITTER | STRATA_SET_EXACT_GRACE |
                                  STRATA_SET_EXACT_STALE_IF_ERROR};
    assert_int_equal(strata_cache_set(c, k, v, strlen(v), &o), 0);
}

/* get's status; get_stale's status (the value checked against want when it answers). */
static int get(strata_cache *c, const strata_key *k)
{
    strata_value *v = NULL;
    int rc = strata_cache_get(c, k, &v);
    strata_value_release(v);
    return rc;
}

static int get_stale(strata_cache *c, const strata_key *k, const char *want)
{
    strata_value *v = NULL;
    int rc = strata_cache_get_stale(c, k, &v);
    if (v != NULL) {
        assert_int_equal(strata_value_len(v), strlen(want));
        assert_memory_equal(strata_value_data(v), want, strlen(want));
    }
    strata_value_release(v);
    return rc;
}

static void test_expire_is_stale_within_windows_from_now(void **state)
{
    (void)state;
    fake_now_ms = 1000000;
    strata_cache *c = memory_cache();
    strata_key k = {"ns", "t", "k", 1}, none = {"ns", "t", "none", 4};
    put(c, &k, "body", 2000, 5000, NULL);
    put(c, &none, "x", 0, 0, NULL);
    fake_now_ms += 10000; /* 50 s of TTL left */
    assert_int_equal(strata_cache_expire(c, &k), 0);
    assert_int_equal(get(c, &k), STRATA_ENOTFOUND);
    assert_int_equal(get_stale(c, &k, "body"), STRATA_OK_STALE);
    strata_value *v;
    assert_int_equal(strata_cache_get_stale(c, &k, &v), STRATA_OK_STALE);
    assert_int_equal(strata_value_expires_ms(v), fake_now_ms); /* expired now */
    assert_int_equal(strata_value_freshness(v, fake_now_ms, 0.5), STRATA_STALE);
    strata_value_release(v);
    /* Stale already: its times are left, the purge answers 0. */
    fake_now_ms += 1000;
    assert_int_equal(strata_cache_expire(c, &k), 0);
    fake_now_ms += 1500; /* 2.5 s after the purge: past grace, within stale-if-error */
    assert_int_equal(strata_cache_get_stale(c, &k, &v), STRATA_OK_STALE);
    assert_int_equal(strata_value_freshness(v, fake_now_ms, 0.5), STRATA_STALE_IF_ERROR);
    strata_value_release(v);
    fake_now_ms += 2500; /* 5 s after: gone */
    assert_int_equal(get_stale(c, &k, ""), STRATA_ENOTFOUND);
    assert_int_equal(strata_cache_expire(c, &k), STRATA_ENOTFOUND);
    /* No window: gone at once. */
    assert_int_equal(strata_cache_expire(c, &none), 0);
    assert_int_equal(get_stale(c, &none, ""), STRATA_ENOTFOUND);
    strata_key missing = {"ns", "t", "missing", 7}, bad = {"ns", "t", "", 0};
    assert_int_equal(strata_cache_expire(c, &missing), STRATA_ENOTFOUND);
    assert_int_equal(strata_cache_expire(c, &bad), STRATA_EKEYEMPTY);
    strata_stats st;
    assert_int_equal(strata_l1_stats(strata_cache_l1(c), "ns", &st), 0);
    assert_int_equal(st.expired_soft, 2);
    strata_cache_free(c);
}

static void test_expire_any_by_pattern_and_tenant(void **state)
{
    (void)state;
    fake_now_ms = 2000000;
    strata_cache *c = memory_cache();
    strata_key a1 = {"ns", "a", "user:1", 6}, a2 = {"ns", "a", "user:2", 6},
               a3 = {"ns", "a", "feed:1", 6}, b1 = {"ns", "b", "user:1", 6},
               o1 = {"other", "a", "user:1", 6};
    const strata_key *all[] = {&a1, &a2, &a3, &b1, &o1};
    for (size_t i = 0; i < 5; i++)
        put(c, all[i], "v", 10000, 0, NULL);
    fake_now_ms += 1;
    const char *pats[] = {"user:*", "nomatch"};
    size_t n = 99;
    assert_int_equal(strata_cache_expire_any(c, "ns", "a", pats, 2, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(get(c, &a1), STRATA_ENOTFOUND);
    assert_int_equal(get_stale(c, &a1, "v"), STRATA_OK_STALE);
    assert_int_equal(get(c, &a2), STRATA_ENOTFOUND);
    assert_int_equal(get(c, &a3), 0); /* another key */
    assert_int_equal(get(c, &b1), 0); /* another tenant */
    assert_int_equal(get(c, &o1), 0); /* another namespace */
    /* Again: already stale, nothing counted. */
    assert_int_equal(strata_cache_expire_any(c, "ns", "a", pats, 2, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(strata_cache_expire_any(c, NULL, NULL, NULL, 0, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(strata_cache_expire_any(c, NULL, NULL, NULL, 1, &n), STRATA_EINVAL);
    assert_int_equal(strata_cache_expire_any(c, "bad name", NULL, NULL, 0, &n), STRATA_EBADNAME);
    strata_cache_free(c);
}

static void test_soft_tag_then_hard(void **state)
{
    (void)state;
    fake_now_ms = 3000000;
    strata_cache *c = memory_cache();
    strata_key old = {"ns", "t", "old", 3}, other = {"ns", "u", "old", 3},
               nograce = {"ns", "t", "ng", 2};
    put(c, &old, "old", 3000, 0, "product:1");
    put(c, &other, "other", 3000, 0, "product:1"); /* another tenant's tag */
    put(c, &nograce, "ng", 0, 0, "product:1");
    fake_now_ms += 10;
    assert_int_equal(strata_cache_tag_invalidate_soft(c, "t", "product:1"), 0);
    uint64_t purged = fake_now_ms;
    assert_int_equal(get(c, &old), STRATA_ENOTFOUND);
    assert_int_equal(get_stale(c, &old, "old"), STRATA_OK_STALE);
    strata_value *v;
    assert_int_equal(strata_cache_get_stale(c, &old, &v), STRATA_OK_STALE);
    assert_int_equal(strata_value_expires_ms(v), purged);
    strata_value_release(v);
    assert_int_equal(get_stale(c, &nograce, ""), STRATA_ENOTFOUND); /* no window: gone */
    assert_int_equal(get(c, &other), 0);
    /* Written after the purge: fresh. */
    fake_now_ms += 1;
    strata_key fresh = {"ns", "t", "fresh", 5};
    put(c, &fresh, "new", 3000, 0, "product:1");
    assert_int_equal(get(c, &fresh), 0);
    /* Within the window measured from the purge, then gone. */
    fake_now_ms = purged + 2999;
    assert_int_equal(get_stale(c, &old, "old"), STRATA_OK_STALE);
    fake_now_ms = purged + 3000;
    assert_int_equal(get_stale(c, &old, ""), STRATA_ENOTFOUND);
    /* Soft then hard: misses; the entry written after the soft one too. */
    put(c, &old, "old2", 3000, 0, "product:1");
    fake_now_ms += 1;
    assert_int_equal(strata_cache_tag_invalidate_soft(c, "t", "product:1"), 0);
    assert_int_equal(get_stale(c, &old, "old2"), STRATA_OK_STALE);
    assert_int_equal(strata_cache_tag_invalidate(c, "t", "product:1"), 0);
    assert_int_equal(get_stale(c, &old, ""), STRATA_ENOTFOUND);
    assert_int_equal(get_stale(c, &fresh, ""), STRATA_ENOTFOUND);
    assert_int_equal(strata_cache_tag_invalidate_soft(c, "bad tenant", "x"), STRATA_EBADNAME);
    assert_int_equal(strata_cache_tag_invalidate_soft(c, "t", "bad\ntag"), STRATA_EBADTEXT);
    strata_cache_free(c);
}

/* An entry outlives the last STRATA_TAG_SOFT_KEEP soft invalidations of its tag, stale. */
static void test_soft_tag_keeps_the_last_retirements(void **state)
{
    (void)state;
    fake_now_ms = 4000000;
    strata_cache *c = memory_cache();
    strata_key k = {"ns", "t", "k", 1};
    put(c, &k, "v", 600000, 0, "tg");
    for (int i = 0; i < STRATA_TAG_SOFT_KEEP; i++) {
        fake_now_ms += 1;
        assert_int_equal(strata_cache_tag_invalidate_soft(c, "t", "tg"), 0);
    }
    strata_key k2 = {"ns", "t", "k2", 2};
    put(c, &k2, "v2", 600000, 0, "tg");
    fake_now_ms += 1;
    assert_int_equal(get_stale(c, &k2, "v2"), 0);
    for (int i = 0; i < STRATA_TAG_SOFT_KEEP; i++) {
        fake_now_ms += 1;
        assert_int_equal(strata_cache_tag_invalidate_soft(c, "t", "tg"), 0);
    }
    assert_int_equal(get_stale(c, &k2, "v2"), STRATA_OK_STALE); /* the 4th one back */
    fake_now_ms += 1;
    assert_int_equal(strata_cache_tag_invalidate_soft(c, "t", "tg"), 0);
    assert_int_equal(get_stale(c, &k2, ""), STRATA_ENOTFOUND); /* the 5th: a miss */
    assert_int_equal(get_stale(c, &k, ""), STRATA_ENOTFOUND);  /* the 9th */
    strata_cache_free(c);
}

/* The record as Redis stores it: text that reads back the same, and nothing else accepted. */
static void test_soft_record_text(void **state)
{
    (void)state;
    tag_soft r, back;
    strata__tags_soft_next(NULL, 0x1111, 0x2222, 1700000000000ull, &r);
    tag_soft r2;
    strata__tags_soft_next(&r, 0x2222, 0x3333, 1700000000005ull, &r2);
    char buf[SOFT_TAG_RECORD_MAX];
    size_t n = strata__soft_tag_format(&r2, buf);
    buf[n] = '\0';
    assert_string_equal(buf, "0000000000003333 0000000000002222@1700000000005 "
                             "0000000000001111@1700000000000");
    assert_int_equal(strata__soft_tag_parse(buf, n, &back), 0);
    assert_memory_equal(&back, &r2, sizeof back);
    uint64_t from;
    assert_int_equal(strata__tags_judge(0x1111, 0x3333, &back, &from), 1);
    assert_int_equal(from, 1700000000000ull);
    assert_int_equal(strata__tags_judge(0x3333, 0x3333, &back, &from), 1);
    assert_int_equal(from, 0);
    assert_int_equal(strata__tags_judge(0x1111, 0x4444, &back, &from), 0); /* hard since */
    assert_int_equal(strata__tags_judge(0x9999, 0x3333, &back, &from), 0);
    const char *bad[] = {"",
                         "000000000000333",
                         "0000000000003333 ",
                         "0000000000003333 x",
                         "0000000000003333 0000000000002222@",
                         "0000000000003333 0000000000002222@1x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(strata__soft_tag_parse(bad[i], strlen(bad[i]), &back), STRATA_EFORMAT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expire_is_stale_within_windows_from_now),
        cmocka_unit_test(test_expire_any_by_pattern_and_tenant),
        cmocka_unit_test(test_soft_tag_then_hard),
        cmocka_unit_test(test_soft_tag_keeps_the_last_retirements),
        cmocka_unit_test(test_soft_record_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
