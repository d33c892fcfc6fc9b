/* test_twotier.c: the two-tier logic (src/lib/cache/twotier.c) against a fake Redis and a fake
 * clock: hits, misses, promotion, Redis down, stalled, recovery, read-only, tags, coherence
 * events, and the ticket race, for the synchronous and the asynchronous calls. No sleeps: time is
 * the fake clock. The same behaviours are tested against a real redis-server in
 * tests/integration/test_l2_*.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <strata/strata.h>

#include "cache/cache_internal.h"
#include "fake_redis.h"

static fake_redis *F;
static struct event_base *base;

static void quiet(int level, const char *msg, void *arg)
{
    (void)level, (void)msg, (void)arg;
}

/* An instance on the fake Redis (several share it, as instances share a Redis). */
static strata_cache *instance(void)
{
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    cfg.l1.max_memory = 4u << 20;
    cfg.l1.prefix = "t";
    cfg.log = quiet;
    strata_cache *c;
    assert_int_equal(strata_cache_new(&cfg, &c), 0);
    strata__cache_use(c, &fake_redis_ops, F, 1, fake_clock);
    return c;
}

static int setup(void **state)
{
    (void)state;
    F = fake_redis_new();
    base = event_base_new();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fake_redis_free(F);
    event_base_free(base);
    return 0;
}

static const strata_key K = {"ns", "acme", "k", 1};

/* Reads K through c: the status, and the value's bytes in buf. */
static int get(strata_cache *c, char *buf, size_t cap)
{
    strata_value *v = NULL;
    int rc = strata_cache_get(c, &K, &v);
    buf[0] = '\0';
    if (v != NULL) {
        snprintf(buf, cap, "%.*s", (int)strata_value_len(v), (const char *)strata_value_data(v));
        strata_value_release(v);
    }
    return rc;
}

typedef struct got {
    int calls, status, reason;
    char value[32];
} got;

static void on_get(int status, strata_value *v, void *arg)
{
    got *g = arg;
    g->calls++, g->status = status, g->reason = strata_fallback_reason();
    if (v != NULL) {
        snprintf(g->value, sizeof g->value, "%.*s", (int)strata_value_len(v),
                 (const char *)strata_value_data(v));
        strata_value_release(v);
    }
}

static void on_done(int status, void *arg)
{
    got *g = arg;
    g->calls++, g->status = status, g->reason = strata_fallback_reason();
}

static void test_miss_set_hit_and_promotion(void **state)
{
    (void)state;
    strata_cache *a = instance(), *b = instance();
    char buf[32];
    assert_int_equal(get(a, buf, sizeof buf), STRATA_ENOTFOUND);
    assert_int_equal(fake_redis_commands(F, "GET"), 1);
    assert_int_equal(strata_cache_set(a, &K, "v1", 2, NULL), STRATA_OK);
    assert_true(fake_redis_has(F, "t:ns:acme:k"));
    /* B reads it from Redis, once: then it is promoted into B's L1. */
    assert_int_equal(get(b, buf, sizeof buf), 0);
    assert_string_equal(buf, "v1");
    unsigned long gets = fake_redis_commands(F, "GET");
    assert_int_equal(get(b, buf, sizeof buf), 0);
    assert_string_equal(buf, "v1");
    assert_int_equal(fake_redis_commands(F, "GET"), gets); /* an L1 hit: Redis not asked */
    strata_l2_stats st;
    strata_cache_l2_stats(b, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.errors + st.fallbacks, 0);
    strata_cache_free(a);
    strata_cache_free(b);
}

static void test_expiry_on_the_fake_clock(void **state)
{
    (void)state;
    strata_cache *a = instance(), *b = instance();
    strata_set_opts o = {.ttl_ms = 1000, .flags = STRATA_SET_NO_JITTER};
    char buf[32];
    assert_int_equal(strata_cache_set(a, &K, "v", 1, &o), 0);
    fake_now_ms += 999;
    assert_int_equal(get(b, buf, sizeof buf), 0);
    fake_now_ms += 2; /* past the expiry: neither tier serves it, without a second of sleep */
    assert_int_equal(get(a, buf, sizeof buf), STRATA_ENOTFOUND);
    assert_int_equal(get(b, buf, sizeof buf), STRATA_ENOTFOUND);
    strata_cache_free(a);
    strata_cache_free(b);
}

static void test_redis_down_then_recovery(void **state)
{
    (void)state;
    strata_cache *a = instance();
    char buf[32];
    assert_int_equal(strata_cache_set(a, &K, "old", 3, NULL), 0);
    fake_redis_down(F, 1);
    /* A write lands in L1 only, said so; a read is served from L1, said so. */
    assert_int_equal(strata_cache_set(a, &K, "new", 3, NULL), STRATA_OK_L1_ONLY);
    assert_int_equal(strata_fallback_reason(), STRATA_REASON_BREAKER_OPEN); /* known down */
    assert_int_equal(get(a, buf, sizeof buf), 0); /* L1 is trusted: the link is up */
    assert_int_equal(strata_fallback_reason(), STRATA_REASON_NONE); /* a hit: nothing to say */
    assert_string_equal(buf, "new");
    fake_redis_link(F, 0); /* no invalidations: L1 is not trusted, Redis is asked, and is down */
    assert_int_equal(get(a, buf, sizeof buf), STRATA_OK_L1_ONLY);
    assert_int_equal(strata_fallback_reason(), STRATA_REASON_BREAKER_OPEN);
    assert_string_equal(buf, "new");
    assert_int_equal(strata_cache_del(a, &K), STRATA_OK_L1_ONLY);
    assert_int_equal(strata_fallback_reason(), STRATA_REASON_BREAKER_OPEN);
    assert_int_equal(get(a, buf, sizeof buf), STRATA_ENOTFOUND);
    /* a miss of L1 alone, said so: Redis may have it */
    assert_int_equal(strata_fallback_reason(), STRATA_REASON_BREAKER_OPEN);
    assert_string_equal(strata_reason_name(STRATA_REASON_BREAKER_OPEN), "breaker-open");
    strata_l2_stats st;
    strata_cache_l2_stats(a, &st);
    assert_true(st.fallbacks >= 3);
    /* Redis is back: the client raises `recovered`, and L1, which may have missed writes made
     * meanwhile, is dropped whole; Redis' value is what a read sees. */
    fake_redis_down(F, 0);
    fake_redis_link(F, 1);
    assert_int_equal(strata_cache_set(a, &K, "l1", 2, NULL), 0);
    fake_redis_put(F, "t:ns:acme:k", "garbage", 7); /* someone else's write, never announced */
    assert_int_equal(get(a, buf, sizeof buf), 0);
    assert_string_equal(buf, "l1");
    strata__cache_events(a).recovered(a);
    assert_int_equal(get(a, buf, sizeof buf), STRATA_ENOTFOUND); /* not strata's format: a miss */
    strata_cache_free(a);
}

static void test_stalled_redis_counts_errors(void **state)
{
    (void)state;
    strata_cache *a = instance();
    strata_loop *lp;
    assert_int_equal(strata_loop_new(a, base, &lp), 0);
    fake_redis_stall(F, 1);
    got g = {0};
    strata_value *v;
    assert_int_equal(strata_cache_get_async(lp, &K, on_get, &g, &v), STRATA_PENDING);
    fake_redis_stall(F, 0);
    assert_int_equal(fake_redis_flush(F), 1); /* the deadline passed: it falls back to L1 */
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, STRATA_ENOTFOUND);      /* a miss, never an error */
    assert_int_equal(g.reason, STRATA_REASON_TIMEOUT); /* set for the callback */
    /* Redis answers at once now: a miss of both tiers, and nothing left of the last reason. */
    assert_int_equal(strata_cache_get_async(lp, &K, on_get, &g, &v), STRATA_ENOTFOUND);
    assert_int_equal(strata_fallback_reason(), STRATA_REASON_NONE);
    strata_l2_stats st;
    strata_cache_l2_stats(a, &st);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.fallbacks, 1);
    strata_loop_free(lp);
    strata_cache_free(a);
}

static void test_readonly_skips_writes(void **state)
{
    (void)state;
    strata_cache *a = instance();
    fake_redis_readonly(F, 1);
    unsigned long sets = fake_redis_commands(F, "SET"), dels = fake_redis_commands(F, "UNLINK");
    assert_int_equal(strata_cache_set(a, &K, "v", 1, NULL), STRATA_OK_L1_ONLY);
    assert_int_equal(strata_fallback_reason(), STRATA_REASON_READ_ONLY);
    assert_int_equal(strata_cache_del(a, &K), STRATA_OK_L1_ONLY);
    assert_int_equal(strata_fallback_reason(), STRATA_REASON_READ_ONLY);
    assert_int_equal(fake_redis_commands(F, "SET"), sets); /* skipped by design, not tried */
    assert_int_equal(fake_redis_commands(F, "UNLINK"), dels);
    strata_l2_stats st;
    strata_cache_l2_stats(a, &st);
    assert_int_equal(st.errors, 0); /* read-only is a state, not an error */
    assert_true(st.readonly);
    fake_redis_readonly(F, 0);
    strata_cache_free(a);
}

static void test_tags_across_instances(void **state)
{
    (void)state;
    strata_cache *a = instance(), *b = instance();
    const char *tags[] = {"team:1"};
    strata_set_opts o = {.tags = tags, .ntags = 1};
    char buf[32];
    assert_int_equal(strata_cache_set(a, &K, "tagged", 6, &o), 0);
    assert_true(fake_redis_has(F, "t:!tag:acme:team:1"));
    assert_int_equal(get(b, buf, sizeof buf), 0); /* B learns the tag's version from Redis */
    assert_string_equal(buf, "tagged");
    /* Another instance invalidates the tag: a new version in Redis, and the link tells B. */
    fake_redis_put(F, "t:!tag:acme:team:1", "00000000000000ff", 16);
    strata__cache_events(b).invalidated("t:!tag:acme:team:1", 18, b);
    assert_int_equal(get(b, buf, sizeof buf), STRATA_ENOTFOUND);
    /* A lost tag version (Redis flushed it) invalidates what carries the tag, never revives. */
    assert_int_equal(strata_cache_set(a, &K, "again", 5, &o), 0);
    strata__cache_events(b).invalidated(NULL, 0, b); /* FLUSHDB: everything */
    fake_redis_put(F, "t:!tag:acme:team:1", "0000000000000000", 16);
    assert_int_equal(get(b, buf, sizeof buf), STRATA_ENOTFOUND);
    strata_cache_free(a);
    strata_cache_free(b);
}

static void test_invalidation_and_link_down(void **state)
{
    (void)state;
    strata_cache *a = instance(), *b = instance();
    char buf[32];
    assert_int_equal(strata_cache_set(a, &K, "one", 3, NULL), 0);
    assert_int_equal(get(b, buf, sizeof buf), 0);
    assert_int_equal(strata_cache_set(a, &K, "two", 3, NULL), 0);
    strata__cache_events(b).invalidated("t:ns:acme:k", 11, b); /* A's write, announced */
    assert_int_equal(get(b, buf, sizeof buf), 0);
    assert_string_equal(buf, "two");
    /* The link is down: B's L1 is not trusted; every read asks Redis, and nothing is kept. */
    fake_redis_link(F, 0);
    unsigned long gets = fake_redis_commands(F, "GET");
    assert_int_equal(get(b, buf, sizeof buf), 0);
    assert_int_equal(get(b, buf, sizeof buf), 0);
    assert_int_equal(fake_redis_commands(F, "GET"), gets + 2);
    /* Back up: link_up drops L1 before it is trusted again. */
    fake_redis_link(F, 1);
    strata__cache_events(b).link_up(b);
    assert_int_equal(get(b, buf, sizeof buf), 0);
    assert_int_equal(fake_redis_commands(F, "GET"), gets + 3);
    strata_cache_free(a);
    strata_cache_free(b);
}

/* An invalidation that lands while a read is in flight wins: the value read is served once but
 * not kept (the key's ticket moved), so the next read asks Redis again. */
static void test_async_convention_and_ticket_race(void **state)
{
    (void)state;
    strata_cache *a = instance(), *b = instance();
    strata_loop *lp;
    assert_int_equal(strata_loop_new(b, base, &lp), 0);
    assert_int_equal(strata_cache_set(a, &K, "v", 1, NULL), 0);
    fake_redis_deferred(F, 1);
    got g = {0}, w = {0};
    strata_value *v;
    assert_int_equal(strata_cache_get_async(lp, &K, on_get, &g, &v), STRATA_PENDING);
    assert_int_equal(g.calls, 0); /* later, never during the call */
    strata__cache_events(b).invalidated("t:ns:acme:k", 11, b);
    assert_int_equal(fake_redis_flush(F), 1);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 0);
    assert_string_equal(g.value, "v");
    unsigned long gets = fake_redis_commands(F, "GET");
    memset(&g, 0, sizeof g);
    assert_int_equal(strata_cache_get_async(lp, &K, on_get, &g, &v), STRATA_PENDING);
    assert_int_equal(fake_redis_commands(F, "GET"), gets + 1); /* not promoted: asked again */
    fake_redis_flush(F);
    /* Without the race the value is promoted: the third read is an L1 hit, at once. */
    assert_int_equal(strata_cache_get_async(lp, &K, on_get, &g, &v), STRATA_OK);
    strata_value_release(v);
    /* A write completes through its callback, once. */
    assert_int_equal(strata_cache_set_async(lp, &K, "w", 1, NULL, on_done, &w), STRATA_PENDING);
    fake_redis_flush(F);
    assert_int_equal(w.calls, 1);
    assert_int_equal(w.status, 0);
    /* Redis refusing at once (down): the call answers from L1 at once, no callback. */
    fake_redis_deferred(F, 0);
    fake_redis_down(F, 1);
    memset(&w, 0, sizeof w);
    assert_int_equal(strata_cache_set_async(lp, &K, "x", 1, NULL, on_done, &w), STRATA_OK_L1_ONLY);
    assert_int_equal(w.calls, 0);
    fake_redis_down(F, 0);
    strata_loop_free(lp);
    strata_cache_free(a);
    strata_cache_free(b);
}

/* A touch restarts a value's life on the cache's clock: no sleeping to see it (memory only). */
static void test_touch_on_the_fake_clock(void **state)
{
    (void)state;
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    cfg.l1.max_memory = 4u << 20;
    cfg.log = quiet;
    strata_cache *c;
    assert_int_equal(strata_cache_new(&cfg, &c), 0);
    strata__cache_use(c, NULL, NULL, 0, fake_clock);
    strata_set_opts o = {.ttl_ms = 1000, .flags = STRATA_SET_NO_JITTER};
    char buf[32];
    assert_int_equal(strata_cache_set(c, &K, "s", 1, &o), 0);
    fake_now_ms += 900;
    assert_int_equal(strata_cache_touch(c, &K, 1000), 0);
    fake_now_ms += 900; /* 1.8 s after the write: alive, because it was touched */
    assert_int_equal(get(c, buf, sizeof buf), 0);
    fake_now_ms += 101; /* 1001 ms after the touch: gone */
    assert_int_equal(get(c, buf, sizeof buf), STRATA_ENOTFOUND);
    assert_int_equal(strata_cache_touch(c, &K, 1000), STRATA_ENOTFOUND);
    strata_cache_free(c);
}

/* A strict delete happens everywhere or not at all: Redis down or read-only, L1 keeps its copy
 * and the caller hears why; Redis up, both tiers lose it. */
static void test_strict_delete(void **state)
{
    (void)state;
    strata_cache *a = instance();
    char buf[32];
    assert_int_equal(strata_cache_set(a, &K, "v", 1, NULL), 0);
    fake_redis_down(F, 1);
    assert_int_equal(strata_cache_del_strict(a, &K), STRATA_EUNAVAILABLE);
    assert_int_equal(strata_fallback_reason(), STRATA_REASON_BREAKER_OPEN);
    assert_int_equal(get(a, buf, sizeof buf), 0); /* nothing was deleted */
    fake_redis_down(F, 0);
    fake_redis_readonly(F, 1);
    assert_int_equal(strata_cache_del_strict(a, &K), STRATA_EREADONLY);
    assert_int_equal(strata_fallback_reason(), STRATA_REASON_READ_ONLY);
    assert_true(fake_redis_has(F, "t:ns:acme:k"));
    fake_redis_readonly(F, 0);
    assert_int_equal(strata_cache_del_strict(a, &K), 0);
    assert_false(fake_redis_has(F, "t:ns:acme:k"));
    assert_int_equal(get(a, buf, sizeof buf), STRATA_ENOTFOUND);
    assert_int_equal(strata_cache_del_strict(a, &K), STRATA_ENOTFOUND);
    strata_cache_free(a);
}

/* Redis came back: every copy L1 holds may be stale, sessions too (Redis may have lost them). */
static void test_recovery_drops_sessions(void **state)
{
    (void)state;
    strata_cache *a = instance();
    strata_key s = {"_sessions", "acme", "sid", 3};
    strata_set_opts pinned = {.flags = STRATA_SET_PINNED};
    assert_int_equal(strata_cache_set(a, &s, "{}", 2, &pinned), 0);
    fake_redis_put(F, "t:_sessions:acme:sid", "lost", 4); /* Redis lost it: not strata's */
    strata_value *v = NULL;
    assert_int_equal(strata_cache_get(a, &s, &v), 0); /* L1's copy, trusted */
    strata_value_release(v);
    strata__cache_events(a).recovered(a);
    assert_int_equal(strata_cache_get(a, &s, &v), STRATA_ENOTFOUND); /* Redis', everywhere */
    strata_cache_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_miss_set_hit_and_promotion),
        cmocka_unit_test(test_expiry_on_the_fake_clock),
        cmocka_unit_test(test_redis_down_then_recovery),
        cmocka_unit_test(test_stalled_redis_counts_errors),
        cmocka_unit_test(test_readonly_skips_writes),
        cmocka_unit_test(test_tags_across_instances),
        cmocka_unit_test(test_invalidation_and_link_down),
        cmocka_unit_test(test_async_convention_and_ticket_race),
        cmocka_unit_test(test_touch_on_the_fake_clock),
        cmocka_unit_test(test_strict_delete),
        cmocka_unit_test(test_recovery_drops_sessions),
    };
    return cmocka_run_group_tests_name("twotier", tests, setup, teardown);
}
