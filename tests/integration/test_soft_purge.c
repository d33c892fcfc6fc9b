/* test_soft_purge.c: soft purges (strata_cache_expire[_async], strata_cache_expire_any,
 * strata_cache_tag_invalidate_soft) against a real redis-server, with two caches as two instances
 * on it, on a fake clock ahead of real time (stored times follow it; Redis' own expiry runs on
 * real time, far longer than any step here).
 *
 * What is shown: a purged value is a miss for get and stale for get_stale within its windows,
 * counted from the purge, on the instance that purged it and on the other one (whose L1 copy was
 * fresh and stops answering: the purge is a write it hears), then gone; a version 1 entry (no
 * windows) is gone at once, one with a plain grace is stale within it; expire_any by patterns and
 * tenants; a soft tag invalidation then a hard one, on both instances, and writes after the soft
 * one stay fresh; an instance that knows nothing of soft records (reading the version only) takes
 * the entries for invalid; Redis down: this instance only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include <strata/strata.h>

#include "cache/cache_internal.h"
#include "l1/l1_internal.h"
#include "harness.h"

static rh_server *srv;
static uint64_t fake_now;

static uint64_t fake_clock(void)
{
    return fake_now;
}

static int setup(void **state)
{
    (void)state;
    srv = rh_start(NULL);
    return srv ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    rh_resume(srv);
    rh_stop(srv);
    return 0;
}

/* A cache on s whose Redis calls may take timeout_ms: on a loaded machine Redis can take more
 * than 200 ms to answer, which would count Redis as down and turn a shared
 * read into a miss of this instance's memory; only the test that pauses Redis wants it short. */
static strata_cache *open_on_t(rh_server *s, unsigned timeout_ms)
{
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    cfg.l1.max_memory = 8u << 20;
    cfg.l1.prefix = "sp";
    rh_apply(s, &cfg.redis);
    cfg.redis.socket_timeout_ms = timeout_ms;
    /* A new cache's first call makes its connection: 200 ms was once too little for that under
     * ASan on a loaded machine, and the call then fell back to an empty L1 (a miss). */
    cfg.redis.connect_timeout_ms = timeout_ms;
    cfg.redis.breaker_failures = 2;
    cfg.log = rh_log_quiet;
    strata_cache *c;
    assert_int_equal(strata_cache_new(&cfg, &c), 0);
    strata__cache_set_clock(c, fake_clock);
    assert_true(rh_wait_for(rh_cache_coherent, c, 5000));
    return c;
}

static strata_cache *open_on(rh_server *s)
{
    return open_on_t(s, 2000);
}

static void put(strata_cache *c, const strata_key *k, const char *v, uint64_t grace, uint64_t sie,
                const char *tag)
{
    const char *tags[] = {tag};
    strata_set_opts o = {.ttl_ms = 600000,
                         .grace_ms = grace,
                         .stale_if_error_ms = sie,
                         .content_type = "text/plain",
                         .tags = tags,
                         .ntags = tag != NULL,
                         .flags = STRATA_SET_NO_JITTER | STRATA_SET_EXACT_GRACE |
                                  STRATA_SET_EXACT_STALE_IF_ERROR};
    assert_int_equal(strata_cache_set(c, k, v, strlen(v), &o), STRATA_OK);
}

static int get(strata_cache *c, const strata_key *k)
{
    strata_value *v = NULL;
    int rc = strata_cache_get(c, k, &v);
    strata_value_release(v);
    return rc;
}

/* get_stale's status; a value it answers must be want, with its content type kept. */
static int get_stale(strata_cache *c, const strata_key *k, const char *want)
{
    strata_value *v = NULL;
    int rc = strata_cache_get_stale(c, k, &v);
    if (v != NULL) {
        assert_int_equal(strata_value_len(v), strlen(want));
        assert_memory_equal(strata_value_data(v), want, strlen(want));
        assert_string_equal(strata_value_content_type(v), "text/plain");
    }
    strata_value_release(v);
    return rc;
}

typedef struct probe {
    strata_cache *c;
    const strata_key *k;
} probe;

static int not_fresh(void *arg)
{
    const probe *p = arg;
    return get(p->c, p->k) == STRATA_ENOTFOUND;
}

static int fresh(void *arg)
{
    const probe *p = arg;
    return get(p->c, p->k) == 0;
}

static int stale_gone(void *arg)
{
    const probe *p = arg;
    strata_value *v = NULL;
    int rc = strata_cache_get_stale(p->c, p->k, &v);
    strata_value_release(v);
    return rc == STRATA_ENOTFOUND;
}

static int stored_version(const char *stored)
{
    redisReply *r = rh_command(srv, "GETRANGE %s 0 0", stored);
    assert_non_null(r);
    int v = r->type == REDIS_REPLY_STRING && r->len == 1 ? (unsigned char)r->str[0] : 0;
    freeReplyObject(r);
    return v;
}

static int exists(const char *stored)
{
    redisReply *r = rh_command(srv, "EXISTS %s", stored);
    int n = (int)r->integer;
    freeReplyObject(r);
    return n;
}

static void test_expire_is_stale_everywhere_then_gone(void **state)
{
    (void)state;
    fake_now = rh_now_ms() + 86400000; /* ahead of real time: L1's sweeper runs on it */
    strata_cache *a = open_on(srv), *b = open_on(srv);
    strata_key k = {"ns", "acme", "page", 4};
    put(a, &k, "body", 2000, 5000, NULL);
    assert_int_equal(stored_version("sp:ns:acme:page"), 2);
    assert_int_equal(get(b, &k), 0); /* b's L1 holds a fresh copy now */
    assert_int_equal(get(b, &k), 0);
    fake_now += 1000;
    assert_int_equal(strata_cache_expire(a, &k), STRATA_OK);
    uint64_t purged = fake_now;
    probe p = {b, &k};
    assert_true(rh_wait_for(not_fresh, &p, 500)); /* b's copy heard the purge */
    assert_int_equal(get(a, &k), STRATA_ENOTFOUND);
    assert_int_equal(get_stale(a, &k, "body"), STRATA_OK_STALE);
    strata_value *v;
    assert_int_equal(strata_cache_get_stale(b, &k, &v), STRATA_OK_STALE);
    assert_int_equal(strata_value_expires_ms(v), purged);
    assert_int_equal(strata_value_grace_ms(v), 2000);
    assert_int_equal(strata_value_stale_if_error_ms(v), 5000);
    assert_int_equal(strata_value_freshness(v, fake_now, 0.5), STRATA_STALE);
    strata_value_release(v);
    strata_cache *c = open_on(srv); /* nothing in its L1: from Redis */
    assert_int_equal(get(c, &k), STRATA_ENOTFOUND);
    assert_int_equal(get_stale(c, &k, "body"), STRATA_OK_STALE);
    /* Redis keeps it for its windows from now (real time): about 5 s. */
    redisReply *r = rh_command(srv, "PTTL %s", "sp:ns:acme:page");
    assert_true(r->integer > 4000 && r->integer <= 5000);
    freeReplyObject(r);
    /* Already stale: left as it is, still 0. */
    assert_int_equal(strata_cache_expire(b, &k), STRATA_OK);
    fake_now = purged + 3000; /* past grace, within stale-if-error */
    assert_int_equal(strata_cache_get_stale(b, &k, &v), STRATA_OK_STALE);
    assert_int_equal(strata_value_freshness(v, fake_now, 0.5), STRATA_STALE_IF_ERROR);
    strata_value_release(v);
    fake_now = purged + 5000; /* past both */
    assert_int_equal(get_stale(a, &k, ""), STRATA_ENOTFOUND);
    assert_int_equal(get_stale(b, &k, ""), STRATA_ENOTFOUND);
    assert_int_equal(get_stale(c, &k, ""), STRATA_ENOTFOUND);
    assert_int_equal(strata_cache_expire(a, &k), STRATA_ENOTFOUND);
    strata_key missing = {"ns", "acme", "missing", 7};
    assert_int_equal(strata_cache_expire(a, &missing), STRATA_ENOTFOUND);
    strata_l2_stats st;
    strata_cache_l2_stats(a, &st);
    assert_int_equal(st.expired_soft, 1);
    strata_cache_free(c);
    strata_cache_free(a);
    strata_cache_free(b);
}

/* Version 1 entries: with no window the purge removes the value everywhere; a plain grace (still
 * version 1) is a window like any other. Written by hand as an older strata would. */
static void test_version_1_entries(void **state)
{
    (void)state;
    fake_now = rh_now_ms() + 86400000;
    strata_cache *a = open_on(srv), *b = open_on(srv);
    strata_key plain = {"ns", "acme", "v1", 2}, graced = {"ns", "acme", "v1g", 3};
    put(a, &plain, "p", 0, 0, NULL);
    put(a, &graced, "g", 3000, 0, NULL);
    assert_int_equal(stored_version("sp:ns:acme:v1"), 1);
    assert_int_equal(stored_version("sp:ns:acme:v1g"), 1);
    assert_int_equal(get(b, &plain), 0);
    fake_now += 1;
    assert_int_equal(strata_cache_expire(a, &plain), STRATA_OK);
    assert_int_equal(exists("sp:ns:acme:v1"), 0);
    probe p = {b, &plain};
    assert_true(rh_wait_for(not_fresh, &p, 500));
    assert_int_equal(get_stale(b, &plain, ""), STRATA_ENOTFOUND);
    assert_int_equal(get_stale(a, &plain, ""), STRATA_ENOTFOUND);
    assert_int_equal(strata_cache_expire(a, &graced), STRATA_OK);
    assert_int_equal(stored_version("sp:ns:acme:v1g"), 1); /* rewritten in place */
    assert_int_equal(get(b, &graced), STRATA_ENOTFOUND);
    assert_int_equal(get_stale(b, &graced, "g"), STRATA_OK_STALE);
    fake_now += 3000;
    assert_int_equal(get_stale(b, &graced, ""), STRATA_ENOTFOUND);
    strata_cache_free(a);
    strata_cache_free(b);
}

static void test_expire_any_patterns_and_tenants(void **state)
{
    (void)state;
    fake_now = rh_now_ms() + 86400000;
    strata_cache *a = open_on(srv), *b = open_on(srv);
    strata_key a1 = {"ea", "acme", "user:1", 6}, a2 = {"ea", "acme", "user:2", 6},
               a3 = {"ea", "acme", "feed:1", 6}, t1 = {"ea", "tiny", "user:1", 6},
               o1 = {"eo", "acme", "user:1", 6}, ng = {"ea", "acme", "user:ng", 7};
    const strata_key *all[] = {&a1, &a2, &a3, &t1, &o1};
    for (size_t i = 0; i < 5; i++) {
        put(a, all[i], "v", 10000, 0, NULL);
        assert_int_equal(get(b, all[i]), 0);
    }
    put(a, &ng, "v", 0, 0, NULL); /* no window: removed, counted */
    fake_now += 1;
    const char *pats[] = {"user:*", "nomatch:*"};
    size_t n = 0;
    assert_int_equal(strata_cache_expire_any(a, "ea", "acme", pats, 2, &n), STRATA_OK);
    assert_int_equal(n, 3);
    assert_int_equal(exists("sp:ea:acme:user:ng"), 0);
    probe p = {b, &a1};
    assert_true(rh_wait_for(not_fresh, &p, 500));
    probe p2 = {b, &a2};
    assert_true(rh_wait_for(not_fresh, &p2, 500));
    assert_int_equal(get_stale(b, &a1, "v"), STRATA_OK_STALE);
    assert_int_equal(get_stale(a, &a2, "v"), STRATA_OK_STALE);
    assert_int_equal(get(b, &a3), 0);
    assert_int_equal(get(b, &t1), 0);
    assert_int_equal(get(b, &o1), 0);
    /* Once more: nothing fresh left to purge there. */
    assert_int_equal(strata_cache_expire_any(b, "ea", "acme", pats, 2, &n), STRATA_OK);
    assert_int_equal(n, 0);
    /* One pattern (the SCAN's MATCH), every namespace of a tenant. */
    const char *one[] = {"user:1"};
    assert_int_equal(strata_cache_expire_any(b, NULL, "acme", one, 1, &n), STRATA_OK);
    assert_int_equal(n, 1); /* eo's; ea's is stale already */
    probe ao = {a, &o1};
    assert_true(rh_wait_for(not_fresh, &ao, 500));
    assert_int_equal(get_stale(a, &o1, "v"), STRATA_OK_STALE);
    assert_int_equal(get(a, &t1), 0);
    strata_cache_free(a);
    strata_cache_free(b);
}

static void test_soft_tag_then_hard_on_both_instances(void **state)
{
    (void)state;
    /* A minute of grace: after the soft purge Redis keeps the entry that long in real time too
     * (PX from the purge), so a slow run cannot see it expire under the test. */
    fake_now = rh_now_ms() + 86400000;
    strata_cache *a = open_on(srv), *b = open_on(srv);
    strata_key k = {"ns", "acme", "prod", 4}, u = {"ns", "umbrella", "prod", 4};
    put(a, &k, "old", 60000, 0, "product:9");
    put(a, &u, "other", 60000, 0, "product:9");
    assert_int_equal(get(b, &k), 0);
    fake_now += 5;
    assert_int_equal(strata_cache_tag_invalidate_soft(a, "acme", "product:9"), STRATA_OK);
    uint64_t purged = fake_now;
    probe p = {b, &k};
    assert_true(rh_wait_for(not_fresh, &p, 500));
    assert_int_equal(get(a, &k), STRATA_ENOTFOUND);
    strata_value *v;
    assert_int_equal(strata_cache_get_stale(b, &k, &v), STRATA_OK_STALE);
    assert_int_equal(strata_value_expires_ms(v), purged);
    strata_value_release(v);
    assert_int_equal(get_stale(a, &k, "old"), STRATA_OK_STALE);
    strata_cache *c = open_on(srv); /* learns the record from Redis */
    assert_int_equal(get(c, &k), STRATA_ENOTFOUND);
    assert_int_equal(strata_fallback_reason(), STRATA_REASON_NONE); /* Redis said so, not L1 */
    assert_int_equal(get_stale(c, &k, "old"), STRATA_OK_STALE);
    assert_int_equal(get(b, &u), 0); /* another tenant's tag */
    /* What an older strata reads: the version alone, no longer the entry's: a miss. */
    redisReply *r = rh_command(srv, "GET %s", "sp:!stag:acme:product:9");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);
    /* Written after the soft purge, through b: fresh everywhere. */
    fake_now += 1;
    strata_key n = {"ns", "acme", "new", 3};
    put(b, &n, "new", 60000, 0, "product:9");
    probe an = {a, &n}, cn = {c, &n}; /* once each has heard the purge's own writes */
    assert_true(rh_wait_for(fresh, &an, 500));
    assert_true(rh_wait_for(fresh, &cn, 500));
    /* Within the window from the purge, then gone. */
    fake_now = purged + 59999;
    assert_int_equal(get_stale(b, &k, "old"), STRATA_OK_STALE);
    fake_now = purged + 1000;
    /* Hard: misses, the newer entry too. */
    assert_int_equal(strata_cache_tag_invalidate(b, "acme", "product:9"), STRATA_OK);
    /* Each instance hears it within the coherence window. */
    probe gone[] = {{a, &k}, {b, &k}, {c, &k}, {a, &n}, {c, &n}};
    for (size_t i = 0; i < sizeof gone / sizeof *gone; i++)
        assert_true(rh_wait_for(stale_gone, &gone[i], 500));
    strata_cache_free(c);
    strata_cache_free(a);
    strata_cache_free(b);
}

static void test_redis_down_purges_this_instance(void **state)
{
    (void)state;
    fake_now = rh_now_ms() + 86400000;
    strata_cache *a = open_on_t(srv, 200);
    strata_key k = {"ns", "acme", "down", 4};
    /* Straight into this instance's L1 (a write to Redis would send an invalidation that could
     * drop the copy at any moment). */
    strata_set_opts o = {.ttl_ms = 60000,
                         .grace_ms = 3000,
                         .content_type = "text/plain",
                         .flags = STRATA_SET_NO_JITTER};
    assert_int_equal(strata_l1_set(strata_cache_l1(a), &k, "v", 1, &o, fake_now), 0);
    assert_int_equal(rh_pause(srv), 0);
    fake_now += 1;
    int rc = strata_cache_expire(a, &k), reason = strata_fallback_reason();
    strata_value *v = NULL;
    int l1rc = strata__l1_get_ex(strata_cache_l1(a), &k, fake_now, L1_GET_STALE, &v);
    strata_value *f = NULL;
    int fresh = strata_l1_get(strata_cache_l1(a), &k, fake_now, &f);
    strata_value_release(f);
    int trc = strata_cache_tag_invalidate_soft(a, "acme", "x");
    assert_int_equal(rh_resume(srv), 0);
    assert_int_equal(rc, STRATA_OK_L1_ONLY);
    assert_int_not_equal(reason, STRATA_REASON_NONE);
    assert_int_equal(l1rc, 0);
    assert_int_equal(strata_value_expires_ms(v), fake_now); /* stale from now, in L1 */
    strata_value_release(v);
    assert_int_equal(fresh, STRATA_ENOTFOUND);
    assert_int_equal(trc, STRATA_OK_L1_ONLY);
    strata_cache_free(a);
}

static int done_status, done_calls;

static void on_done(int status, void *arg)
{
    (void)arg;
    done_status = status, done_calls++;
}

static void test_async(void **state)
{
    (void)state;
    fake_now = rh_now_ms() + 86400000;
    strata_cache *a = open_on(srv);
    strata_key k = {"ns", "acme", "async", 5};
    put(a, &k, "v", 3000, 0, NULL);
    struct event_base *base = event_base_new();
    strata_loop *lp;
    assert_int_equal(strata_loop_new(a, base, &lp), 0);
    fake_now += 1;
    done_calls = 0;
    assert_int_equal(strata_cache_expire_async(lp, &k, on_done, NULL), STRATA_PENDING);
    while (done_calls == 0)
        event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(done_status, STRATA_OK);
    assert_int_equal(get(a, &k), STRATA_ENOTFOUND);
    assert_int_equal(get_stale(a, &k, "v"), STRATA_OK_STALE);
    strata_loop_free(lp);
    event_base_free(base);
    strata_cache_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expire_is_stale_everywhere_then_gone),
        cmocka_unit_test(test_version_1_entries),
        cmocka_unit_test(test_expire_any_patterns_and_tenants),
        cmocka_unit_test(test_soft_tag_then_hard_on_both_instances),
        cmocka_unit_test(test_redis_down_purges_this_instance),
        cmocka_unit_test(test_async),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
