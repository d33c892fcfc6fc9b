/* test_ratelimit.c: GCRA limits shared by two instances on a real Redis, bursts, tenants,
 * remembered denials, NOSCRIPT recovery, the asynchronous path, the fallbacks with Redis
 * killed, and the same figures from Redis, from memory and from the local limiter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include <strata/strata.h>

#include "harness.h"

static rh_server *srv;

static int setup(void **state)
{
    (void)state;
    srv = rh_start(NULL);
    return srv ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    rh_stop(srv);
    return 0;
}

static strata_cache *open_cache(const char *prefix)
{
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    cfg.l1.max_memory = 4u << 20;
    cfg.l1.prefix = prefix;
    rh_apply(srv, &cfg.redis);
    cfg.redis.socket_timeout_ms = 200;
    cfg.redis.breaker_failures = 2;
    cfg.log = rh_log_quiet;
    strata_cache *c;
    assert_int_equal(strata_cache_new(&cfg, &c), 0);
    return c;
}

/* A limiter on c: freed before c (strata_ratelimiter_free, beside each strata_cache_free). */
static strata_ratelimiter *limiter(strata_cache *c)
{
    strata_ratelimiter *rl;
    assert_int_equal(strata_ratelimiter_new(c, &rl), 0);
    return rl;
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void test_two_instances_share_the_limit(void **state)
{
    (void)state;
    strata_cache *a = open_cache("rl1"), *b = open_cache("rl1");
    strata_ratelimiter *rl_a = limiter(a), *rl_b = limiter(b);
    strata_rl_params p = {.limit = 1000, .period_ms = 3600 * 1000, .burst = 1000, .cost = 1};
    int allowed = 0;
    for (int i = 0; i < 10000; i++) {
        strata_rl_result r;
        assert_int_equal(strata_ratelimit(i % 2 ? rl_a : rl_b, "acme", "api", 3, &p, &r), 0);
        allowed += r.allowed;
        if (!r.allowed) /* a denied request says when to come back: T = 3.6 s */
            assert_true(r.retry_after_ms > 0 && r.retry_after_ms <= 3600);
    }
    print_message("admitted %d of 10000 against 1000/3600s burst 1000\n", allowed);
    assert_true(allowed >= 990 && allowed <= 1010);
    strata_rl_stats sa, sb;
    strata_ratelimit_stats(rl_a, &sa);
    strata_ratelimit_stats(rl_b, &sb);
    assert_int_equal(sa.checks + sb.checks, 10000);
    assert_int_equal(sa.allowed + sb.allowed, (uint64_t)allowed);
    /* Denials were remembered: most rejected requests never reached Redis. */
    assert_true(sa.remembered + sb.remembered > 8000);
    strata_ratelimiter_free(rl_a);
    strata_cache_free(a);
    strata_ratelimiter_free(rl_b);
    strata_cache_free(b);
}

static void test_burst_then_steady_rate(void **state)
{
    (void)state;
    strata_cache *c = open_cache("rl2");
    strata_ratelimiter *rl_c = limiter(c);
    /* T = 1 s: the exact counts below must not depend on how fast the calls run (under TSan a
     * call can take tens of ms; with T = 100 ms a token came back between two of them). */
    strata_rl_params p = {.limit = 10, .period_ms = 10000, .burst = 5};
    strata_rl_result r;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(strata_ratelimit(rl_c, NULL, "k", 1, &p, &r), 0);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, (uint64_t)(4 - i));
        assert_int_equal(r.limit, 5);
        assert_int_equal(r.source, STRATA_RL_REDIS);
    }
    assert_int_equal(strata_ratelimit(rl_c, NULL, "k", 1, &p, &r), 0);
    assert_false(r.allowed);
    assert_int_equal(r.remaining, 0);
    assert_true(r.retry_after_ms >= 1 && r.retry_after_ms <= 1000);
    assert_true(r.reset_ms >= 4000 && r.reset_ms <= 5000);
    usleep((useconds_t)(r.retry_after_ms + 20) * 1000);
    assert_int_equal(strata_ratelimit(rl_c, NULL, "k", 1, &p, &r), 0);
    assert_true(r.allowed); /* GCRA admits again after retry_after, long before the reset */
    /* A cost larger than the burst can never pass. */
    strata_rl_params heavy = {.limit = 10, .period_ms = 10000, .burst = 5, .cost = 6};
    assert_int_equal(strata_ratelimit(rl_c, NULL, "heavy", 5, &heavy, &r), 0);
    assert_false(r.allowed);
    strata_ratelimiter_free(rl_c);
    strata_cache_free(c);
}

static void test_tenants_and_keys_are_isolated(void **state)
{
    (void)state;
    strata_cache *c = open_cache("rl3");
    strata_ratelimiter *rl_c = limiter(c);
    strata_rl_params p = {.limit = 3, .period_ms = 60000};
    strata_rl_result r;
    for (int i = 0; i < 3; i++)
        assert_int_equal(strata_ratelimit(rl_c, "a", "k", 1, &p, &r), 0), assert_true(r.allowed);
    assert_int_equal(strata_ratelimit(rl_c, "a", "k", 1, &p, &r), 0);
    assert_false(r.allowed);
    assert_int_equal(strata_ratelimit(rl_c, "b", "k", 1, &p, &r), 0);
    assert_true(r.allowed); /* another tenant, same key */
    assert_int_equal(strata_ratelimit(rl_c, "a", "k2", 2, &p, &r), 0);
    assert_true(r.allowed); /* another key */
    redisReply *rep = rh_command(srv, "EXISTS rl3!rl:a:k rl3!rl:b:k");
    assert_int_equal(rep->integer, 2);
    freeReplyObject(rep);
    /* Bad input. */
    strata_rl_params zero = {.limit = 0, .period_ms = 1000};
    assert_int_equal(strata_ratelimit(rl_c, "a", "k", 1, &zero, &r), STRATA_EINVAL);
    assert_int_equal(strata_ratelimit(rl_c, "a", "", 0, &p, &r), STRATA_EKEYEMPTY);
    assert_int_equal(strata_ratelimit(rl_c, "bad tenant", "k", 1, &p, &r), STRATA_EBADNAME);
    strata_ratelimiter_free(rl_c);
    strata_cache_free(c);
}

static void test_noscript_after_flush(void **state)
{
    (void)state;
    strata_cache *c = open_cache("rl4");
    strata_ratelimiter *rl_c = limiter(c);
    /* An hour's period: no token comes back between the calls, however slow (TSan). */
    strata_rl_params p = {.limit = 100, .period_ms = 3600 * 1000};
    strata_rl_result r;
    assert_int_equal(strata_ratelimit(rl_c, NULL, "k", 1, &p, &r), 0);
    assert_int_equal(r.source, STRATA_RL_REDIS);
    redisReply *rep = rh_command(srv, "SCRIPT FLUSH");
    freeReplyObject(rep);
    assert_int_equal(strata_ratelimit(rl_c, NULL, "k", 1, &p, &r), 0);
    assert_int_equal(r.source, STRATA_RL_REDIS); /* recovered with EVAL, not the fallback */
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 98);
    strata_ratelimiter_free(rl_c);
    strata_cache_free(c);
}

typedef struct async_count {
    int done, allowed;
} async_count;

static void on_rl(int status, const strata_rl_result *r, void *arg)
{
    async_count *n = arg;
    assert_int_equal(status, 0);
    n->done++;
    n->allowed += r->allowed;
}

static void test_async_path(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    strata_cache *a = open_cache("rl5"), *b = open_cache("rl5");
    strata_ratelimiter *rl_a = limiter(a), *rl_b = limiter(b);
    strata_loop *la, *lb;
    assert_int_equal(strata_loop_new(a, base, &la), 0);
    assert_int_equal(strata_loop_new(b, base, &lb), 0);
    strata_rl_params p = {.limit = 200, .period_ms = 3600 * 1000};
    async_count n = {0, 0};
    int issued = 0;
    for (int i = 0; i < 2000; i++) {
        strata_rl_result r;
        int rc = strata_ratelimit_async(i % 2 ? rl_a : rl_b, i % 2 ? la : lb, "t", "k", 1, &p,
                                        on_rl, &n, &r);
        if (rc == STRATA_OK) {
            n.done++;
            n.allowed += r.allowed;
        } else {
            assert_int_equal(rc, STRATA_PENDING);
        }
        issued++;
        if (i % 100 == 99) /* let replies (and remembered denials) land between bursts */
            while (n.done < issued)
                event_base_loop(base, EVLOOP_ONCE);
    }
    while (n.done < issued)
        event_base_loop(base, EVLOOP_ONCE);
    print_message("async: admitted %d of 2000 against 200/h\n", n.allowed);
    assert_true(n.allowed >= 198 && n.allowed <= 202);
    strata_loop_free(la);
    strata_loop_free(lb);
    strata_ratelimiter_free(rl_a);
    strata_cache_free(a);
    strata_ratelimiter_free(rl_b);
    strata_cache_free(b);
    event_base_free(base);
}

static void test_fallbacks_with_redis_killed(void **state)
{
    (void)state;
    if (rh_is_external(srv))
        skip();
    strata_cache *c = open_cache("rl6");
    strata_ratelimiter *rl_c = limiter(c);
    assert_int_equal(strata_ratelimit_configure(rl_c, STRATA_RL_FALLBACK_LOCAL, 2), 0);
    assert_int_equal(strata_ratelimit_configure(rl_c, 7, 2), STRATA_EINVAL);
    assert_int_equal(strata_ratelimit_configure(rl_c, STRATA_RL_FALLBACK_LOCAL, 0), STRATA_EINVAL);
    strata_rl_params p = {.limit = 100, .period_ms = 3600 * 1000};
    strata_rl_result r;
    assert_int_equal(strata_ratelimit(rl_c, NULL, "warm", 4, &p, &r), 0);
    assert_int_equal(rh_kill(srv), 0);
    int allowed = 0;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(strata_ratelimit(rl_c, NULL, "k", 1, &p, &r), 0);
        allowed += r.allowed;
        if (i > 5) /* after the first failures, the breaker skips Redis */
            assert_true(r.source == STRATA_RL_LOCAL || r.source == STRATA_RL_REMEMBERED);
    }
    assert_int_equal(allowed, 50); /* this instance's share: 100 / 2 */
    assert_int_equal(strata_ratelimit_configure(rl_c, STRATA_RL_FALLBACK_OPEN, 2), 0);
    assert_int_equal(strata_ratelimit(rl_c, NULL, "other", 5, &p, &r), 0);
    assert_true(r.allowed);
    assert_int_equal(r.source, STRATA_RL_FAIL_OPEN);
    assert_int_equal(strata_ratelimit_configure(rl_c, STRATA_RL_FALLBACK_CLOSED, 2), 0);
    assert_int_equal(strata_ratelimit(rl_c, NULL, "third", 5, &p, &r), 0);
    assert_false(r.allowed);
    assert_int_equal(r.source, STRATA_RL_FAIL_CLOSED);
    strata_rl_stats st;
    strata_ratelimit_stats(rl_c, &st);
    assert_true(st.local >= 50 && st.local + st.remembered >= 195);
    assert_true(st.fail_open == 1 && st.fail_closed == 1);
    assert_int_equal(rh_restart(srv), 0);
    strata_ratelimiter_free(rl_c);
    strata_cache_free(c);
}

/* A denial Redis made and the same denial answered from memory report the same figures: 3 per
 * 60 s, three at once, then the fourth is denied with reset 60 s (the bucket is whole again) and
 * retry_after 20 s. From memory it said reset 20 s (its retry_after), where Redis said 60. */
static void test_remembered_denial_matches_redis(void **state)
{
    (void)state;
    strata_cache *c = open_cache("rl7");
    strata_ratelimiter *rl_c = limiter(c);
    strata_rl_params p = {.limit = 3, .period_ms = 60000};
    strata_rl_result r, mem;
    for (int i = 0; i < 3; i++)
        assert_int_equal(strata_ratelimit(rl_c, NULL, "k", 1, &p, &r), 0), assert_true(r.allowed);
    uint64_t t0 = mono_us();
    assert_int_equal(strata_ratelimit(rl_c, NULL, "k", 1, &p, &r), 0);
    assert_false(r.allowed);
    assert_int_equal(r.source, STRATA_RL_REDIS);
    assert_true(r.reset_ms > 59000 && r.reset_ms <= 60000);
    assert_true(r.retry_after_ms > 19000 && r.retry_after_ms <= 20000);
    assert_int_equal(strata_ratelimit(rl_c, NULL, "k", 1, &p, &mem), 0);
    uint64_t apart = (mono_us() - t0) / 1000 + 1; /* ms, however slow the machine */
    assert_false(mem.allowed);
    assert_int_equal(mem.source, STRATA_RL_REMEMBERED);
    assert_int_equal(mem.limit, r.limit);
    assert_int_equal(mem.remaining, r.remaining);
    /* Answered a moment later (and timed from when the check began): at most that much less. */
    assert_true(mem.reset_ms <= r.reset_ms && mem.reset_ms + apart >= r.reset_ms);
    assert_true(mem.retry_after_ms <= r.retry_after_ms &&
                mem.retry_after_ms + apart >= r.retry_after_ms);
    strata_ratelimiter_free(rl_c);
    strata_cache_free(c);
}

/* Redis' script and the local limiter report alike: 9 per 60 s, whose interval (6.67 s) is no
 * whole number of microseconds. Redis said remaining 7 after the first request. */
static void test_redis_and_local_figures_agree(void **state)
{
    (void)state;
    strata_cache *c = open_cache("rl8"), *mem;
    assert_int_equal(strata_cache_new(NULL, &mem), 0);
    strata_ratelimiter *rl_c = limiter(c), *rl_mem = limiter(mem);
    strata_rl_params p = {.limit = 9, .period_ms = 60000};
    uint64_t first = 0; /* how far apart the two first checks were, in ms (rounded up) */
    for (int i = 0; i < 10; i++) {
        strata_rl_result r, m;
        uint64_t t0 = mono_us();
        assert_int_equal(strata_ratelimit(rl_c, NULL, "k", 1, &p, &r), 0);
        assert_int_equal(strata_ratelimit(rl_mem, NULL, "k", 1, &p, &m), 0);
        uint64_t apart = (mono_us() - t0 + 999) / 1000;
        if (i == 0)
            first = apart;
        assert_int_equal(r.source, STRATA_RL_REDIS);
        assert_int_equal(m.source, STRATA_RL_LOCAL);
        assert_int_equal(r.allowed, i < 9);
        assert_int_equal(m.allowed, i < 9);
        assert_int_equal(r.remaining, m.remaining);
        assert_int_equal(r.limit, m.limit);
        if (i < 9)
            assert_int_equal(r.remaining, (uint64_t)(8 - i));
        /* Each limiter times its check when it runs it: the figures differ by no more than the
         * checks were apart (now and at the first check, which started each bucket), plus a
         * millisecond of rounding. A few microseconds on an idle machine; under load, more. */
        uint64_t slack = 1 + first + apart;
        assert_true(r.reset_ms + slack >= m.reset_ms && m.reset_ms + slack >= r.reset_ms);
        assert_true(r.retry_after_ms + slack >= m.retry_after_ms &&
                    m.retry_after_ms + slack >= r.retry_after_ms);
    }
    strata_ratelimiter_free(rl_c);
    strata_cache_free(c);
    strata_ratelimiter_free(rl_mem);
    strata_cache_free(mem);
}

static void test_without_redis(void **state)
{
    (void)state;
    strata_cache *c;
    assert_int_equal(strata_cache_new(NULL, &c), 0);
    strata_ratelimiter *rl_c = limiter(c);
    strata_rl_params p = {.limit = 5, .period_ms = 60000};
    strata_rl_result r;
    int allowed = 0;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(strata_ratelimit(rl_c, NULL, "k", 1, &p, &r), 0);
        allowed += r.allowed;
    }
    assert_int_equal(allowed, 5); /* one instance, the whole limit */
    strata_ratelimiter_free(rl_c);
    strata_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_instances_share_the_limit),
        cmocka_unit_test(test_burst_then_steady_rate),
        cmocka_unit_test(test_tenants_and_keys_are_isolated),
        cmocka_unit_test(test_noscript_after_flush),
        cmocka_unit_test(test_async_path),
        cmocka_unit_test(test_fallbacks_with_redis_killed),
        cmocka_unit_test(test_without_redis),
        cmocka_unit_test(test_remembered_denial_matches_redis),
        cmocka_unit_test(test_redis_and_local_figures_agree),
    };
    return cmocka_run_group_tests_name("ratelimit", tests, setup, teardown);
}
