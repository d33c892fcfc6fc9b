/* test_ratelimit.c: the figures of the rate limiter (src/lib/features/ratelimit.c) on a fake
 * clock: remembered denials, the local fallback (alone and as one instance's share) and
 * fail-closed all report what ratelimit.c defines, so the same state gives the same figures
 * whichever of them answers. Redis itself is not here (the fake Redis runs no Lua): the script's
 * figures are checked against a real redis-server in tests/integration/test_ratelimit.c. */
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
#include "features/ratelimit_internal.h"

#define S 1000000ull /* one second, in the limiter's microseconds */

static fake_redis *F;
static const uint64_t t0 = 1000 * S; /* the fake monotonic clock starts anywhere */

static void quiet(int level, const char *msg, void *arg)
{
    (void)level, (void)msg, (void)arg;
}

/* A cache on the fake Redis (redis 1) or on memory alone (0), and a limiter on it. */
static strata_ratelimiter *limiter(int redis, strata_cache **c)
{
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    cfg.l1.max_memory = 4u << 20;
    cfg.l1.prefix = "t";
    cfg.log = quiet;
    assert_int_equal(strata_cache_new(&cfg, c), 0);
    strata__cache_use(*c, redis ? &fake_redis_ops : NULL, redis ? F : NULL, 0, fake_clock);
    strata_ratelimiter *rl;
    assert_int_equal(strata_ratelimiter_new(*c, &rl), 0);
    return rl;
}

static void done(strata_ratelimiter *rl, strata_cache *c)
{
    strata_ratelimiter_free(rl);
    strata_cache_free(c);
}

static strata_rl_result at(strata_ratelimiter *rl, uint64_t now, const strata_rl_params *p)
{
    strata_rl_result r;
    memset(&r, 0xa5, sizeof r); /* no field may be left as it was */
    assert_int_equal(strata__ratelimit_at(rl, now, "acme", "k", 1, p, &r), 0);
    return r;
}

/* Every figure of a and b but the source. */
static void same_figures(const strata_rl_result *a, const strata_rl_result *b)
{
    assert_int_equal(a->allowed, b->allowed);
    assert_int_equal(a->limit, b->limit);
    assert_int_equal(a->remaining, b->remaining);
    assert_int_equal(a->reset_ms, b->reset_ms);
    assert_int_equal(a->retry_after_ms, b->retry_after_ms);
}

static int setup(void **state)
{
    (void)state;
    F = fake_redis_new();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fake_redis_free(F);
    return 0;
}

/* 3 per 60 s: after three at once the bucket is whole again in 60 s and the next request passes
 * in 20 s. A denial answered from memory said reset 20 (its retry_after) where the decider said
 * 60: it must say what the decider would say now. */
static void test_remembered_denial_reports_what_was_decided(void **state)
{
    (void)state;
    strata_cache *c;
    strata_ratelimiter *rl = limiter(0, &c);
    strata_rl_params p = {.limit = 3, .period_ms = 60000};
    for (int i = 0; i < 3; i++)
        assert_true(at(rl, t0, &p).allowed);
    strata_rl_result denied = at(rl, t0, &p);
    assert_false(denied.allowed);
    assert_int_equal(denied.source, STRATA_RL_LOCAL);
    assert_int_equal(denied.limit, 3);
    assert_int_equal(denied.remaining, 0);
    assert_int_equal(denied.reset_ms, 60000);
    assert_int_equal(denied.retry_after_ms, 20000);
    strata_rl_result mem = at(rl, t0, &p);
    assert_int_equal(mem.source, STRATA_RL_REMEMBERED);
    same_figures(&mem, &denied);
    mem = at(rl, t0 + 5 * S, &p); /* five seconds on, both times are five seconds shorter */
    assert_int_equal(mem.source, STRATA_RL_REMEMBERED);
    assert_int_equal(mem.reset_ms, 55000);
    assert_int_equal(mem.retry_after_ms, 15000);
    strata_rl_result ok = at(rl, t0 + 20 * S, &p); /* retry_after has passed */
    assert_true(ok.allowed);
    assert_int_equal(ok.remaining, 0);
    assert_int_equal(ok.reset_ms, 60000);
    assert_int_equal(ok.retry_after_ms, 0);
    done(rl, c);
}

/* The local fallback's share (limit / instances) is what its remembered denials report too. */
static void test_local_share_remembered_alike(void **state)
{
    (void)state;
    strata_cache *c;
    strata_ratelimiter *rl = limiter(1, &c);
    assert_int_equal(strata_ratelimit_configure(rl, STRATA_RL_FALLBACK_LOCAL, 2), 0);
    fake_redis_down(F, 1);
    strata_rl_params p = {.limit = 4, .period_ms = 60000}; /* this instance: 2 per 60 s */
    for (int i = 0; i < 2; i++)
        assert_true(at(rl, t0, &p).allowed);
    strata_rl_result denied = at(rl, t0, &p);
    assert_false(denied.allowed);
    assert_int_equal(denied.source, STRATA_RL_LOCAL);
    assert_int_equal(denied.limit, 2);
    assert_int_equal(denied.reset_ms, 60000);
    assert_int_equal(denied.retry_after_ms, 30000);
    strata_rl_result mem = at(rl, t0 + S, &p);
    assert_int_equal(mem.source, STRATA_RL_REMEMBERED);
    assert_int_equal(mem.limit, 2);
    assert_int_equal(mem.reset_ms, 59000);
    assert_int_equal(mem.retry_after_ms, 29000);
    fake_redis_down(F, 0);
    done(rl, c);
}

/* A denial is remembered for the request that was denied: a request too heavy for the burst
 * leaves the bucket as it was, so a light one on the same key still passes. remaining counts
 * requests of weight 1, whatever the weight of the one denied. */
static void test_remembered_denial_is_for_its_weight(void **state)
{
    (void)state;
    strata_cache *c;
    strata_ratelimiter *rl = limiter(0, &c);
    strata_rl_params heavy = {.limit = 5, .period_ms = 1000, .cost = 6}; /* T = 200 ms */
    strata_rl_result r = at(rl, t0, &heavy);
    assert_false(r.allowed);
    assert_int_equal(r.remaining, 5);
    assert_int_equal(r.reset_ms, 0);
    assert_int_equal(r.retry_after_ms, 200);
    strata_rl_params light = {.limit = 5, .period_ms = 1000};
    r = at(rl, t0, &light);
    assert_true(r.allowed);
    assert_int_equal(r.source, STRATA_RL_LOCAL);
    assert_int_equal(r.remaining, 4);
    done(rl, c);
}

/* Fail-closed knows nothing of the bucket: it says come back in a second, with a reset no
 * earlier than that, and is not remembered (Redis decides as soon as it answers again). */
static void test_fail_closed_figures(void **state)
{
    (void)state;
    strata_cache *c;
    strata_ratelimiter *rl = limiter(1, &c);
    assert_int_equal(strata_ratelimit_configure(rl, STRATA_RL_FALLBACK_CLOSED, 1), 0);
    fake_redis_down(F, 1);
    strata_rl_params p = {.limit = 10, .period_ms = 1000};
    for (int i = 0; i < 2; i++) {
        strata_rl_result r = at(rl, t0, &p);
        assert_false(r.allowed);
        assert_int_equal(r.source, STRATA_RL_FAIL_CLOSED);
        assert_int_equal(r.remaining, 0);
        assert_int_equal(r.retry_after_ms, 1000);
        assert_int_equal(r.reset_ms, 1000);
    }
    fake_redis_down(F, 0);
    done(rl, c);
}

/* 9 per 60 s (T = 6.67 s, not a whole number of microseconds): nine at once, remaining 8 down
 * to 0, then the figures as time passes. */
static void test_figures_when_the_period_does_not_divide(void **state)
{
    (void)state;
    strata_cache *c;
    strata_ratelimiter *rl = limiter(0, &c);
    strata_rl_params p = {.limit = 9, .period_ms = 60000};
    for (uint64_t i = 0; i < 9; i++) {
        strata_rl_result r = at(rl, t0, &p);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, 8 - i);
    }
    strata_rl_result r = at(rl, t0, &p);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_ms, 6667);
    r = at(rl, t0 + 10 * S, &p); /* 10 s on: one request's worth is back, and taken */
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.reset_ms, 56667);
    done(rl, c);
}

static void never_called(int status, const strata_rl_result *r, void *arg)
{
    (void)status, (void)r, (void)arg;
    fail(); /* decided during the call: no callback */
}

/* Without Redis an async check is decided during the call, and fills every field of *out
 * (hardening item 7: valgrind saw out->source read uninitialised on this path). */
static void test_async_without_redis_fills_the_result(void **state)
{
    (void)state;
    strata_cache *c;
    strata_ratelimiter *rl = limiter(0, &c);
    struct event_base *base = event_base_new();
    strata_loop *lp;
    assert_int_equal(strata_loop_new(c, base, &lp), 0);
    strata_rl_params p = {.limit = 2, .period_ms = 60000};
    for (int i = 0; i < 3; i++) {
        strata_rl_result r;
        memset(&r, 0xa5, sizeof r);
        assert_int_equal(strata_ratelimit_async(rl, lp, "acme", "k", 1, &p, never_called, NULL, &r),
                         STRATA_OK);
        assert_int_equal(r.source, STRATA_RL_LOCAL);
        assert_int_equal(r.allowed, i < 2);
        assert_int_equal(r.limit, 2);
        assert_int_equal(r.remaining, i < 1 ? 1 : 0);
        assert_true(r.reset_ms <= 60000);
        assert_true(r.retry_after_ms <= 30000);
        assert_true(i < 2 ? r.retry_after_ms == 0 : r.retry_after_ms > 0);
    }
    strata_loop_free(lp);
    event_base_free(base);
    done(rl, c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_remembered_denial_reports_what_was_decided),
        cmocka_unit_test(test_local_share_remembered_alike),
        cmocka_unit_test(test_remembered_denial_is_for_its_weight),
        cmocka_unit_test(test_fail_closed_figures),
        cmocka_unit_test(test_figures_when_the_period_does_not_divide),
        cmocka_unit_test(test_async_without_redis_fills_the_result),
    };
    return cmocka_run_group_tests_name("ratelimit", tests, setup, teardown);
}
