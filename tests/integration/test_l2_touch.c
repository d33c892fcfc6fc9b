/* test_l2_touch.c: strata_cache_touch against a real redis-server: the value keeps its bytes while
 * its times start again (in the stored header and in Redis' own expiry, grace included), a write
 * that lands before the touch is kept, missing keys, bad TTLs, Redis down (this instance's copy
 * only), memory only, and the asynchronous call with the script flushed from Redis (NOSCRIPT). */
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
    rh_resume(srv);
    rh_stop(srv);
    return 0;
}

/* A cache on the test's Redis s (rh_apply; NULL: memory only), logged in as user with password
 * pw when user is not NULL. */
static strata_cache *open_cache_as(rh_server *s, const char *user, const char *pw,
                                   const char *prefix)
{
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    cfg.l1.max_memory = 8u << 20;
    cfg.l1.prefix = prefix;
    char url[256];
    if (s != NULL)
        rh_apply(s, &cfg.redis);
    if (s != NULL && user != NULL && rh_topology() == RH_CLUSTER) {
        cfg.redis.username = user; /* with REDIS_CLUSTER, the nodes' login */
        cfg.redis.password = pw;
    } else if (s != NULL && user != NULL) {
        int tls = rh_topology() == RH_TLS;
        snprintf(url, sizeof url, "%s://%s:%s@%s:%d", tls ? "rediss" : "redis", user, pw,
                 rh_host(s), tls ? rh_tls_port(s) : rh_port(s));
        cfg.redis.url = url;
    }
    cfg.redis.socket_timeout_ms = 200;
    cfg.redis.connect_timeout_ms = 200;
    cfg.log = rh_log_quiet;
    strata_cache *c;
    assert_int_equal(strata_cache_new(&cfg, &c), 0);
    if (s != NULL)
        assert_true(rh_wait_for(rh_cache_coherent, c, 5000));
    return c;
}

static strata_cache *open_cache(rh_server *s, const char *prefix)
{
    return open_cache_as(s, NULL, NULL, prefix);
}

static void put(strata_cache *c, const strata_key *k, const char *v, uint64_t ttl_ms,
                uint64_t grace_ms)
{
    strata_set_opts o = {.ttl_ms = ttl_ms,
                         .grace_ms = grace_ms,
                         .content_type = "text/plain",
                         .flags = STRATA_SET_NO_JITTER};
    assert_int_equal(strata_cache_set(c, k, v, strlen(v), &o), 0);
}

static long long pttl(const char *stored_key)
{
    redisReply *r = rh_command(srv, "PTTL %s", stored_key);
    long long ms = r->integer;
    freeReplyObject(r);
    return ms;
}

/* Reads k through a second cache (its L1 is empty: the times come from Redis' copy). */
static void expect_from_redis(const strata_key *k, const char *value, uint64_t ttl_ms)
{
    strata_cache *other = open_cache(srv, "tt");
    strata_value *v = NULL;
    assert_int_equal(strata_cache_get(other, k, &v), 0);
    assert_int_equal(strata_value_len(v), strlen(value));
    assert_memory_equal(strata_value_data(v), value, strlen(value));
    assert_string_equal(strata_value_content_type(v), "text/plain");
    assert_int_equal(strata_value_expires_ms(v) - strata_value_created_ms(v), ttl_ms);
    assert_true(strata_now_ms() - strata_value_created_ms(v) < 5000);
    strata_value_release(v);
    strata_cache_free(other);
}

static void test_touch_keeps_bytes_and_restarts_times(void **state)
{
    (void)state;
    strata_cache *c = open_cache(srv, "tt");
    strata_key k = {"sess", NULL, "a", 1};
    put(c, &k, "hello", 2000, 0);
    usleep(300 * 1000);
    assert_int_equal(strata_cache_touch(c, &k, 10000), 0);
    long long ms = pttl("tt:sess:default:a");
    assert_true(ms > 9000 && ms <= 10000);
    expect_from_redis(&k, "hello", 10000);
    /* This instance reads the new times too (its own copy was dropped, then re-read). */
    strata_value *v = NULL;
    assert_int_equal(strata_cache_get(c, &k, &v), 0);
    assert_int_equal(strata_value_expires_ms(v) - strata_value_created_ms(v), 10000);
    strata_value_release(v);
    /* Past the first TTL, still there. */
    usleep(2000 * 1000);
    assert_int_equal(strata_cache_get(c, &k, &v), 0);
    strata_value_release(v);
    strata_cache_free(c);
}

static void test_grace_is_kept(void **state)
{
    (void)state;
    strata_cache *c = open_cache(srv, "tt");
    strata_key k = {"sess", NULL, "g", 1};
    put(c, &k, "graceful", 1000, 5000);
    assert_int_equal(strata_cache_touch(c, &k, 3000), 0);
    long long ms = pttl("tt:sess:default:g");
    assert_true(ms > 7000 && ms <= 8000); /* the new TTL plus the entry's grace */
    strata_cache_free(c);
}

static void test_write_before_touch_is_kept(void **state)
{
    (void)state;
    strata_cache *reader = open_cache(srv, "tt");
    strata_cache *writer = open_cache(srv, "tt");
    strata_key k = {"sess", NULL, "w", 1};
    put(reader, &k, "old", 60000, 0);
    strata_value *v = NULL;
    assert_int_equal(strata_cache_get(reader, &k, &v), 0); /* the reader holds "old" */
    strata_value_release(v);
    put(writer, &k, "new", 60000, 0); /* another client writes meanwhile */
    assert_int_equal(strata_cache_touch(reader, &k, 30000), 0);
    expect_from_redis(&k, "new", 30000);
    strata_cache_free(reader);
    strata_cache_free(writer);
}

static void test_missing_and_bad(void **state)
{
    (void)state;
    strata_cache *c = open_cache(srv, "tt");
    strata_key k = {"sess", NULL, "nothing", 7};
    assert_int_equal(strata_cache_touch(c, &k, 1000), STRATA_ENOTFOUND);
    assert_int_equal(pttl("tt:sess:default:nothing"), -2); /* not created by the touch */
    strata_key bad = {"bad:ns", NULL, "x", 1};
    assert_int_equal(strata_cache_touch(c, &bad, 1000), STRATA_EBADNAME);
    strata_key ok = {"sess", NULL, "b", 1};
    put(c, &ok, "v", 60000, 0);
    assert_int_equal(strata_cache_touch(c, &ok, 0), STRATA_EINVAL);
    /* A value Redis holds in a format this code does not know is left alone. */
    redisReply *r = rh_command(srv, "SET tt:sess:default:alien %b",
                               "\x09xxxxxxxxxxxxxxxxxxxxxxxxxxxxx", (size_t)30);
    freeReplyObject(r);
    strata_key alien = {"sess", NULL, "alien", 5};
    assert_int_equal(strata_cache_touch(c, &alien, 1000), STRATA_ENOTFOUND);
    assert_int_equal(pttl("tt:sess:default:alien"), -1);
    strata_cache_free(c);
}

static void test_redis_paused_touches_l1(void **state)
{
    (void)state;
    strata_cache *c = open_cache(srv, "tt");
    strata_key k = {"sess", NULL, "p", 1};
    /* Straight into this instance's L1 (a write to Redis would send an invalidation that could
     * drop the copy at any moment). */
    strata_set_opts o = {
        .ttl_ms = 60000, .content_type = "text/plain", .flags = STRATA_SET_NO_JITTER};
    assert_int_equal(strata_l1_set(strata_cache_l1(c), &k, "here", 4, &o, strata_now_ms()), 0);
    assert_int_equal(rh_pause(srv), 0);
    int rc = strata_cache_touch(c, &k, 5000);
    strata_value *v = NULL;
    int l1rc = strata_l1_get(strata_cache_l1(c), &k, strata_now_ms(), &v);
    assert_int_equal(rh_resume(srv), 0);
    assert_int_equal(rc, STRATA_OK_L1_ONLY);
    assert_int_equal(l1rc, 0);
    assert_int_equal(strata_value_expires_ms(v) - strata_value_created_ms(v), 5000);
    strata_value_release(v);
    strata_cache_free(c);
}

/* A value past its expiry, kept by Redis only for its grace period, is not brought back. */
static void test_no_revival_in_grace(void **state)
{
    (void)state;
    strata_cache *c = open_cache(srv, "tt");
    strata_key k = {"sess", NULL, "late", 4};
    put(c, &k, "stale", 300, 5000);
    usleep(500 * 1000);
    assert_int_equal(strata_cache_touch(c, &k, 60000), STRATA_ENOTFOUND);
    long long ms = pttl("tt:sess:default:late");
    assert_true(ms > 0 && ms <= 4800); /* still the old grace deadline */
    strata_cache_free(c);
}

/* A copy written to L1 alone (pinned: Redis could not take it) is newer than Redis: a touch keeps
 * it and restarts its times, whatever Redis holds. */
static void test_pinned_copy_is_kept(void **state)
{
    (void)state;
    strata_cache *c = open_cache(srv, "tt");
    strata_key k = {"sess", NULL, "pin", 3};
    strata_set_opts o = {.ttl_ms = 60000,
                         .content_type = "text/plain",
                         .flags = STRATA_SET_NO_JITTER | STRATA_SET_PINNED};
    assert_int_equal(strata_l1_set(strata_cache_l1(c), &k, "only here", 9, &o, strata_now_ms()), 0);
    assert_int_equal(strata_cache_touch(c, &k, 7000), STRATA_OK_L1_ONLY);
    strata_value *v = NULL;
    assert_int_equal(strata_l1_get(strata_cache_l1(c), &k, strata_now_ms(), &v), 0);
    assert_int_equal(strata_value_expires_ms(v) - strata_value_created_ms(v), 7000);
    strata_value_release(v);
    strata_cache_free(c);
}

/* Redis refuses the script (an ACL user without GETRANGE/SETRANGE/PEXPIRE): the touch fails,
 * and this instance's copy is not made to look fresh while Redis' expires. */
static void test_refused_script_is_an_error(void **state)
{
    (void)state;
    /* On a cluster, the user may also read the slot map (what every cluster client needs). */
    freeReplyObject(rh_command(srv,
                               "ACL SETUSER toucher on >pw ~tt:* &__redis__:invalidate +get "
                               "+set +unlink +scan +evalsha +eval +ping +info +client|id "
                               "+client|tracking +subscribe +select %s",
                               rh_topology() == RH_CLUSTER ? "+cluster|slots" : "+ping"));
    strata_cache *c = open_cache_as(srv, "toucher", "pw", "tt");
    strata_key k = {"sess", NULL, "acl", 3};
    put(c, &k, "guarded", 3000, 0);
    int rc = strata_cache_touch(c, &k, 60000);
    assert_true(rc < 0 && rc != STRATA_ENOTFOUND);
    long long ms = pttl("tt:sess:default:acl");
    assert_true(ms > 0 && ms <= 3000);
    strata_value *v = NULL;
    if (strata_l1_get(strata_cache_l1(c), &k, strata_now_ms(), &v) == 0) {
        assert_true(strata_value_expires_ms(v) - strata_value_created_ms(v) <= 3000);
        strata_value_release(v);
    }
    strata_cache_free(c);
    freeReplyObject(rh_command(srv, "ACL DELUSER toucher"));
}

static void test_memory_only(void **state)
{
    (void)state;
    strata_cache *c = open_cache(NULL, "tt");
    strata_key k = {"sess", NULL, "m", 1};
    put(c, &k, "mem", 1000, 0);
    usleep(200 * 1000);
    assert_int_equal(strata_cache_touch(c, &k, 4000), 0);
    strata_value *v = NULL;
    assert_int_equal(strata_cache_get(c, &k, &v), 0);
    assert_int_equal(strata_value_expires_ms(v) - strata_value_created_ms(v), 4000);
    assert_true(strata_now_ms() - strata_value_created_ms(v) < 100);
    strata_value_release(v);
    strata_key none = {"sess", NULL, "none", 4};
    assert_int_equal(strata_cache_touch(c, &none, 4000), STRATA_ENOTFOUND);
    strata_cache_free(c);
}

typedef struct done {
    int calls, status;
} done;

static void on_done(int status, void *arg)
{
    done *d = arg;
    d->calls++;
    d->status = status;
}

static void test_async_and_noscript(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    strata_cache *c = open_cache(srv, "tt");
    strata_loop *lp;
    assert_int_equal(strata_loop_new(c, base, &lp), 0);
    strata_key k = {"sess", NULL, "async", 5};
    put(c, &k, "asynchronous", 2000, 0);
    for (int round = 0; round < 2; round++) {
        /* Round 1 runs without the script in Redis: NOSCRIPT, then it is sent whole. */
        freeReplyObject(rh_command(srv, "SCRIPT FLUSH"));
        done d = {0, 0};
        int rc = strata_cache_touch_async(lp, &k, 20000 + 10000 * (uint64_t)round, on_done, &d);
        assert_int_equal(rc, STRATA_PENDING);
        uint64_t t0 = rh_now_ms();
        while (d.calls == 0 && rh_now_ms() - t0 < 3000)
            event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(200);
        assert_int_equal(d.calls, 1);
        assert_int_equal(d.status, 0);
        expect_from_redis(&k, "asynchronous", 20000 + 10000 * (uint64_t)round);
    }
    done d = {0, 0};
    strata_key none = {"sess", NULL, "absent", 6};
    assert_int_equal(strata_cache_touch_async(lp, &none, 1000, on_done, &d), STRATA_PENDING);
    uint64_t t0 = rh_now_ms();
    while (d.calls == 0 && rh_now_ms() - t0 < 3000)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(200);
    assert_int_equal(d.status, STRATA_ENOTFOUND);
    strata_loop_free(lp);
    strata_cache_free(c);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_touch_keeps_bytes_and_restarts_times),
        cmocka_unit_test(test_grace_is_kept),
        cmocka_unit_test(test_write_before_touch_is_kept),
        cmocka_unit_test(test_missing_and_bad),
        cmocka_unit_test(test_redis_paused_touches_l1),
        cmocka_unit_test(test_no_revival_in_grace),
        cmocka_unit_test(test_pinned_copy_is_kept),
        cmocka_unit_test(test_refused_script_is_an_error),
        cmocka_unit_test(test_memory_only),
        cmocka_unit_test(test_async_and_noscript),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
