/* test_lease.c: leases against a real redis-server, with two caches as two instances on it: an
 * acquire is exclusive across them; the holder's fill stores what a set would (bytes, content
 * type, TTL, tags) and frees the lease; wrong and stale tokens are refused and change nothing;
 * release, extend, expiry and takeover; MISS and REFRESH modes; the PUBLISH on "<prefix>!lease";
 * NOSCRIPT recovery; Redis killed (the process decides); the asynchronous calls on a loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
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

/* An instance: a cache with its leases, on server s under prefix "lz". */
typedef struct inst {
    strata_cache *c;
    strata_leases *ls;
} inst;

static inst open_on(rh_server *s)
{
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    cfg.l1.max_memory = 8u << 20;
    cfg.l1.prefix = "lz";
    rh_apply(s, &cfg.redis);
    cfg.redis.socket_timeout_ms = 200;
    cfg.redis.connect_timeout_ms = 200;
    cfg.redis.breaker_failures = 2;
    cfg.log = rh_log_quiet;
    inst i;
    assert_int_equal(strata_cache_new(&cfg, &i.c), 0);
    assert_true(rh_wait_for(rh_cache_coherent, i.c, 5000));
    assert_int_equal(strata_leases_new(i.c, &i.ls), 0);
    return i;
}

static inst open_inst(void)
{
    return open_on(srv);
}

static void close_inst(inst i)
{
    strata_leases_free(i.ls);
    strata_cache_free(i.c);
}

/* The stored key of (ns, acme, key) and its lease key (no braces in these keys). */
static void keys_of(const char *key, char *vk, char *lk, size_t cap)
{
    snprintf(vk, cap, "lz:ns:acme:%s", key);
    snprintf(lk, cap, "lz!lease:{lz:ns:acme:%s}", key);
}

static long long cmd_int(const char *fmt, const char *arg)
{
    redisReply *r = rh_command(srv, fmt, arg);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* GET key as a string into buf ("" when missing). */
static void get_raw(const char *key, char *buf, size_t cap)
{
    redisReply *r = rh_command(srv, "GET %s", key);
    assert_non_null(r);
    buf[0] = '\0';
    if (r->type == REDIS_REPLY_STRING)
        snprintf(buf, cap, "%.*s", (int)r->len, r->str);
    freeReplyObject(r);
}

/* Tokens of the right form, never issued: one as Redis' tokens are, one marked as a process's. */
static const char FORGED[] = "AAAAAAAAAAAAAAAAAAAAAA", FORGED_LOCAL[] = "AAAAAAAAAAAAAAAAAAAAAB";

static void test_acquire_is_exclusive_across_instances(void **state)
{
    (void)state;
    inst a = open_inst(), b = open_inst();
    strata_key k = {"ns", "acme", "excl", 4};
    char vk[128], lk[128], raw[64];
    keys_of("excl", vk, lk, sizeof vk);
    strata_lease_grant g1, g2;
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_MISS, &g1), STRATA_OK);
    assert_false(g1.local);
    assert_int_equal(strata_lease_acquire(b.ls, &k, 30000, STRATA_LEASE_MISS, &g2), STRATA_EHELD);
    assert_true(g2.held_ms > 25000 && g2.held_ms <= 30000);
    assert_string_equal(g2.token, "");
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_REFRESH, &g2),
                     STRATA_EHELD);
    get_raw(lk, raw, sizeof raw); /* the lease key holds the holder's token */
    assert_string_equal(raw, g1.token);
    assert_int_equal(cmd_int("EXISTS %s", vk), 0);
    strata_lease_stats st;
    strata_leases_stats(b.ls, &st);
    assert_int_equal(st.held, 1);
    assert_int_equal(st.local, 0);
    close_inst(a);
    close_inst(b);
}

static void test_fill_stores_what_a_set_would_and_frees_the_lease(void **state)
{
    (void)state;
    inst a = open_inst(), b = open_inst();
    strata_key k = {"ns", "acme", "fill", 4}, plain = {"ns", "acme", "plain", 5};
    char vk[128], lk[128];
    keys_of("fill", vk, lk, sizeof vk);
    strata_lease_grant g;
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    strata_set_opts o = {.ttl_ms = 60000,
                         .grace_ms = 5000,
                         .content_type = "application/json",
                         .flags = STRATA_SET_NO_JITTER};
    const char value[] = "{\"answer\":42}\0binary";
    assert_int_equal(strata_lease_fill(a.ls, &k, g.token, value, sizeof value, &o), STRATA_OK);
    assert_int_equal(strata_cache_set(a.c, &plain, value, sizeof value, &o), STRATA_OK);
    assert_int_equal(cmd_int("EXISTS %s", lk), 0); /* released */
    /* The other instance reads both alike from Redis. */
    const strata_key *both[] = {&k, &plain};
    for (int i = 0; i < 2; i++) {
        strata_value *v = NULL;
        assert_int_equal(strata_cache_get(b.c, both[i], &v), STRATA_OK);
        assert_int_equal(strata_value_len(v), sizeof value);
        assert_memory_equal(strata_value_data(v), value, sizeof value);
        assert_string_equal(strata_value_content_type(v), "application/json");
        assert_int_equal(strata_value_expires_ms(v) - strata_value_created_ms(v), 60000);
        assert_int_equal(strata_value_grace_ms(v), 5000);
        strata_value_release(v);
    }
    long long pttl = cmd_int("PTTL %s", vk);
    assert_true(pttl > 60000 && pttl <= 65000); /* TTL + grace, as a set gives */
    /* The filler's own L1 holds it as after a set. */
    strata_value *v = NULL;
    assert_int_equal(strata_cache_get(a.c, &k, &v), STRATA_OK);
    strata_value_release(v);
    strata_lease_stats st;
    strata_leases_stats(a.ls, &st);
    assert_int_equal(st.filled, 1);
    assert_int_equal(st.acquired, 1);
    close_inst(a);
    close_inst(b);
}

static void test_wrong_and_stale_tokens_change_nothing(void **state)
{
    (void)state;
    inst a = open_inst(), b = open_inst();
    strata_key k = {"ns", "acme", "tok", 3};
    char vk[128], lk[128], raw[64];
    keys_of("tok", vk, lk, sizeof vk);
    strata_lease_grant g, g2;
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    assert_int_equal(strata_lease_fill(b.ls, &k, FORGED, "forged", 6, NULL), STRATA_ENOTHOLDER);
    assert_int_equal(strata_lease_release(b.ls, &k, FORGED), STRATA_ENOTHOLDER);
    assert_int_equal(strata_lease_extend(b.ls, &k, FORGED, 100), STRATA_ENOTHOLDER);
    assert_int_equal(cmd_int("EXISTS %s", vk), 0);
    get_raw(lk, raw, sizeof raw);
    assert_string_equal(raw, g.token);
    assert_true(cmd_int("PTTL %s", lk) > 25000); /* not shortened by the forged extend */
    /* A's lease expires (the test makes it: PEXPIRE 1 ms); B takes over; A is stale now. */
    assert_int_equal(cmd_int("PEXPIRE %s 1", lk), 1);
    usleep(5000);
    assert_int_equal(strata_lease_acquire(b.ls, &k, 30000, STRATA_LEASE_MISS, &g2), STRATA_OK);
    assert_int_equal(strata_lease_fill(a.ls, &k, g.token, "stale", 5, NULL), STRATA_ENOTHOLDER);
    assert_int_equal(strata_lease_release(a.ls, &k, g.token), STRATA_ENOTHOLDER);
    assert_int_equal(strata_lease_extend(a.ls, &k, g.token, 100), STRATA_ENOTHOLDER);
    assert_int_equal(cmd_int("EXISTS %s", vk), 0);
    strata_value *v = NULL;
    assert_int_equal(strata_cache_get(a.c, &k, &v), STRATA_ENOTFOUND); /* not in A's L1 either */
    get_raw(lk, raw, sizeof raw);
    assert_string_equal(raw, g2.token);
    /* The new holder's fill lands. */
    assert_int_equal(strata_lease_fill(b.ls, &k, g2.token, "fresh", 5, NULL), STRATA_OK);
    get_raw(lk, raw, sizeof raw);
    assert_string_equal(raw, "");
    strata_lease_stats st;
    strata_leases_stats(a.ls, &st);
    assert_int_equal(st.refused, 3);
    close_inst(a);
    close_inst(b);
}

static void test_release_extend_and_expiry(void **state)
{
    (void)state;
    inst a = open_inst(), b = open_inst();
    strata_key k = {"ns", "acme", "rel", 3};
    char vk[128], lk[128];
    keys_of("rel", vk, lk, sizeof vk);
    strata_lease_grant g, g2;
    assert_int_equal(strata_lease_acquire(a.ls, &k, 1000, STRATA_LEASE_MISS, &g), STRATA_OK);
    assert_int_equal(strata_lease_extend(a.ls, &k, g.token, 60000), STRATA_OK);
    assert_true(cmd_int("PTTL %s", lk) > 50000);
    assert_int_equal(strata_lease_release(a.ls, &k, g.token), STRATA_OK);
    assert_int_equal(cmd_int("EXISTS %s", lk), 0);
    assert_int_equal(strata_lease_release(a.ls, &k, g.token), STRATA_ENOTHOLDER);
    /* A lease that runs out by itself: 50 ms, then B may take it, and not before it ran out. */
    uint64_t t0 = rh_now_ms();
    assert_int_equal(strata_lease_acquire(b.ls, &k, 50, STRATA_LEASE_MISS, &g2), STRATA_OK);
    int rc;
    while ((rc = strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_MISS, &g)) == STRATA_EHELD &&
           rh_now_ms() - t0 < 2000)
        usleep(2000);
    assert_int_equal(rc, STRATA_OK);
    assert_true(rh_now_ms() - t0 >= 45);
    assert_int_equal(strata_lease_release(b.ls, &k, g2.token), STRATA_ENOTHOLDER);
    assert_int_equal(strata_lease_release(a.ls, &k, g.token), STRATA_OK);
    close_inst(a);
    close_inst(b);
}

static void test_miss_and_refresh_modes(void **state)
{
    (void)state;
    inst a = open_inst(), b = open_inst();
    strata_key k = {"ns", "acme", "modes", 5}, graced = {"ns", "acme", "graced", 6};
    strata_lease_grant g;
    strata_set_opts o = {.ttl_ms = 60000, .flags = STRATA_SET_NO_JITTER};
    assert_int_equal(strata_cache_set(a.c, &k, "v1", 2, &o), STRATA_OK);
    assert_int_equal(strata_lease_acquire(b.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_EEXISTS);
    assert_string_equal(g.token, "");
    assert_int_equal(strata_lease_acquire(b.ls, &k, 30000, STRATA_LEASE_REFRESH, &g), STRATA_OK);
    assert_int_equal(strata_lease_fill(b.ls, &k, g.token, "v2", 2, &o), STRATA_OK);
    strata_value *v = NULL;
    assert_int_equal(strata_cache_get(b.c, &k, &v), STRATA_OK);
    assert_memory_equal(strata_value_data(v), "v2", 2);
    strata_value_release(v);
    /* A value past its TTL, kept for its grace, is no fresh value: MISS takes the lease. */
    strata_set_opts short_ttl = {.ttl_ms = 30, .grace_ms = 60000, .flags = STRATA_SET_NO_JITTER};
    assert_int_equal(strata_cache_set(a.c, &graced, "old", 3, &short_ttl), STRATA_OK);
    usleep(60000);
    assert_int_equal(cmd_int("EXISTS %s", "lz:ns:acme:graced"), 1);
    assert_int_equal(strata_lease_acquire(b.ls, &graced, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    strata_lease_stats st;
    strata_leases_stats(b.ls, &st);
    assert_int_equal(st.present, 1);
    assert_int_equal(st.acquired, 2);
    close_inst(a);
    close_inst(b);
}

/* A tagged fill is invalidated by its tag like a tagged set; a reader that then misses asks
 * again with REFRESH (the value is still stored: MISS answers "a value is there"). */
static int b_misses(void *arg)
{
    inst *b = arg;
    strata_key k = {"ns", "acme", "tagged", 6};
    strata_value *v = NULL;
    int rc = strata_cache_get(b->c, &k, &v);
    strata_value_release(v);
    return rc == STRATA_ENOTFOUND;
}

static void test_tagged_fill_is_invalidated_by_its_tag(void **state)
{
    (void)state;
    inst a = open_inst(), b = open_inst();
    strata_key k = {"ns", "acme", "tagged", 6};
    const char *tags[] = {"user:7"};
    strata_set_opts o = {.ttl_ms = 60000, .tags = tags, .ntags = 1};
    strata_lease_grant g;
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    assert_int_equal(strata_lease_fill(a.ls, &k, g.token, "tagged", 6, &o), STRATA_OK);
    strata_value *v = NULL;
    assert_int_equal(strata_cache_get(b.c, &k, &v), STRATA_OK);
    assert_int_equal(strata_value_tag_count(v), 1);
    strata_value_release(v);
    assert_int_equal(strata_cache_tag_invalidate(a.c, "acme", "user:7"), STRATA_OK);
    assert_true(rh_wait_for(b_misses, &b, 2000));
    assert_int_equal(strata_cache_get(a.c, &k, &v), STRATA_ENOTFOUND);
    assert_int_equal(strata_lease_acquire(b.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_EEXISTS);
    assert_int_equal(strata_lease_acquire(b.ls, &k, 30000, STRATA_LEASE_REFRESH, &g), STRATA_OK);
    assert_int_equal(strata_lease_fill(b.ls, &k, g.token, "again", 5, &o), STRATA_OK);
    assert_int_equal(strata_cache_get(a.c, &k, &v), STRATA_OK);
    assert_memory_equal(strata_value_data(v), "again", 5);
    strata_value_release(v);
    close_inst(a);
    close_inst(b);
}

/* Reads one pub/sub message from sub: its channel and payload. */
static void expect_message(redisContext *sub, const char *channel, const char *payload)
{
    redisReply *r = NULL;
    assert_int_equal(redisGetReply(sub, (void **)&r), REDIS_OK);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[0]->str, "message");
    assert_string_equal(r->element[1]->str, channel);
    assert_int_equal(r->element[2]->len, strlen(payload));
    assert_memory_equal(r->element[2]->str, payload, strlen(payload));
    freeReplyObject(r);
}

static void test_release_and_fill_publish_the_value_key(void **state)
{
    (void)state;
    inst a = open_inst();
    redisContext *sub = redisConnect(rh_host(srv), rh_port(srv));
    assert_true(sub != NULL && sub->err == 0);
    struct timeval tv = {2, 0};
    redisSetTimeout(sub, tv);
    redisReply *r = redisCommand(sub, "SUBSCRIBE %s", "lz!lease");
    assert_non_null(r);
    freeReplyObject(r);
    strata_key k = {"ns", "acme", "pub{x}", 6};
    strata_lease_grant g;
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    assert_int_equal(strata_lease_release(a.ls, &k, g.token), STRATA_OK);
    expect_message(sub, "lz!lease", "lz:ns:acme:pub{x}");
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    assert_int_equal(cmd_int("EXISTS %s", "lz!lease:lz:ns:acme:pub{x}"), 1); /* its own tag */
    assert_int_equal(strata_lease_fill(a.ls, &k, g.token, "v", 1, NULL), STRATA_OK);
    expect_message(sub, "lz!lease", "lz:ns:acme:pub{x}");
    /* Refused calls publish nothing: the next message is the next release's. */
    assert_int_equal(strata_lease_release(a.ls, &k, FORGED), STRATA_ENOTHOLDER);
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_REFRESH, &g), STRATA_OK);
    strata_key other = {"ns", "acme", "a}b", 3};
    strata_lease_grant g2;
    assert_int_equal(strata_lease_acquire(a.ls, &other, 30000, STRATA_LEASE_MISS, &g2), 0);
    assert_int_equal(strata_lease_release(a.ls, &other, g2.token), STRATA_OK);
    expect_message(sub, "lz!lease", "lz:ns:acme:a}b");
    assert_int_equal(strata_lease_release(a.ls, &k, g.token), STRATA_OK);
    expect_message(sub, "lz!lease", "lz:ns:acme:pub{x}");
    redisFree(sub);
    close_inst(a);
}

static void test_noscript_recovery(void **state)
{
    (void)state;
    inst a = open_inst();
    strata_key k = {"ns", "acme", "noscript", 8};
    strata_lease_grant g;
    freeReplyObject(rh_command(srv, "SCRIPT FLUSH"));
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_MISS, &g), STRATA_OK);
    assert_false(g.local);
    freeReplyObject(rh_command(srv, "SCRIPT FLUSH"));
    assert_int_equal(strata_lease_extend(a.ls, &k, g.token, 40000), STRATA_OK);
    freeReplyObject(rh_command(srv, "SCRIPT FLUSH"));
    assert_int_equal(strata_lease_fill(a.ls, &k, g.token, "v", 1, NULL), STRATA_OK);
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_REFRESH, &g), STRATA_OK);
    freeReplyObject(rh_command(srv, "SCRIPT FLUSH"));
    assert_int_equal(strata_lease_release(a.ls, &k, g.token), STRATA_OK);
    strata_lease_stats st;
    strata_leases_stats(a.ls, &st);
    assert_int_equal(st.local, 0);
    close_inst(a);
}

/* ---- the asynchronous calls ------------------------------------------------------------------ */

typedef struct got {
    int calls, status;
    strata_lease_grant g;
} got;

static void on_grant(int status, const strata_lease_grant *g, void *arg)
{
    got *r = arg;
    r->calls++, r->status = status, r->g = *g;
}

static void on_done(int status, void *arg)
{
    got *r = arg;
    r->calls++, r->status = status;
}

static void run_until(struct event_base *base, const got *r)
{
    uint64_t t0 = rh_now_ms();
    while (r->calls == 0 && rh_now_ms() - t0 < 3000)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(200);
    assert_int_equal(r->calls, 1);
}

static void test_async_calls_on_a_loop(void **state)
{
    (void)state;
    inst a = open_inst(), b = open_inst();
    struct event_base *base = event_base_new();
    strata_loop *la, *lb;
    assert_int_equal(strata_loop_new(a.c, base, &la), 0);
    assert_int_equal(strata_loop_new(b.c, base, &lb), 0);
    strata_key k = {"ns", "acme", "async", 5};
    strata_lease_grant out;
    got r1 = {0}, r2 = {0}, r3 = {0}, r4 = {0}, r5 = {0}, r6 = {0};
    freeReplyObject(rh_command(srv, "SCRIPT FLUSH")); /* NOSCRIPT on a loop's connection too */
    assert_int_equal(
        strata_lease_acquire_async(a.ls, la, &k, 30000, STRATA_LEASE_MISS, on_grant, &r1, &out),
        STRATA_PENDING);
    run_until(base, &r1);
    assert_int_equal(r1.status, STRATA_OK);
    assert_int_equal(strlen(r1.g.token), STRATA_LEASE_TOKEN_LEN);
    assert_int_equal(
        strata_lease_acquire_async(b.ls, lb, &k, 30000, STRATA_LEASE_MISS, on_grant, &r2, &out),
        STRATA_PENDING);
    run_until(base, &r2);
    assert_int_equal(r2.status, STRATA_EHELD);
    assert_true(r2.g.held_ms > 20000);
    assert_int_equal(strata_lease_extend_async(a.ls, la, &k, r1.g.token, 50000, on_done, &r3),
                     STRATA_PENDING);
    run_until(base, &r3);
    assert_int_equal(r3.status, STRATA_OK);
    assert_int_equal(strata_lease_fill_async(b.ls, lb, &k, FORGED, "x", 1, NULL, on_done, &r4),
                     STRATA_PENDING);
    run_until(base, &r4);
    assert_int_equal(r4.status, STRATA_ENOTHOLDER);
    strata_set_opts o = {.ttl_ms = 60000, .content_type = "text/plain"};
    assert_int_equal(
        strata_lease_fill_async(a.ls, la, &k, r1.g.token, "async", 5, &o, on_done, &r5),
        STRATA_PENDING);
    run_until(base, &r5);
    assert_int_equal(r5.status, STRATA_OK);
    strata_value *v = NULL;
    assert_int_equal(strata_cache_get(b.c, &k, &v), STRATA_OK);
    assert_memory_equal(strata_value_data(v), "async", 5);
    strata_value_release(v);
    assert_int_equal(strata_lease_release_async(a.ls, la, &k, r1.g.token, on_done, &r6),
                     STRATA_PENDING);
    run_until(base, &r6);
    assert_int_equal(r6.status, STRATA_ENOTHOLDER); /* the fill released it */
    /* Bad arguments fail at once: no callback. */
    got r7 = {0};
    assert_int_equal(strata_lease_release_async(a.ls, la, &k, "bad", on_done, &r7), STRATA_EINVAL);
    /* Freeing the loop answers a pending call with STRATA_ETIMEDOUT. */
    assert_int_equal(
        strata_lease_acquire_async(a.ls, la, &k, 30000, STRATA_LEASE_REFRESH, on_grant, &r7, &out),
        STRATA_PENDING);
    strata_loop_free(la);
    assert_int_equal(r7.calls, 1);
    assert_int_equal(r7.status, STRATA_ETIMEDOUT);
    strata_loop_free(lb);
    event_base_free(base);
    close_inst(a);
    close_inst(b);
}

/* ---- Redis killed ------------------------------------------------------------------------- */

static int lease_from_redis(void *arg)
{
    inst *i = arg;
    strata_key k = {"ns", "acme", "after", 5};
    strata_lease_grant g;
    int rc = strata_lease_acquire(i->ls, &k, 30000, STRATA_LEASE_REFRESH, &g);
    if (rc == STRATA_OK)
        strata_lease_release(i->ls, &k, g.token);
    return rc == STRATA_OK && !g.local;
}

static void test_redis_killed_the_process_decides(void **state)
{
    (void)state;
    rh_server *own = rh_start((const char *const[]){"--loglevel", "warning", NULL});
    assert_non_null(own);
    inst a = open_on(own), b = open_on(own);
    strata_key k = {"ns", "acme", "killed", 6};
    strata_lease_grant g1, g2, g3;
    /* A Redis lease taken before: its fill lands in L1 alone once Redis is gone. */
    assert_int_equal(strata_lease_acquire(a.ls, &k, 30000, STRATA_LEASE_MISS, &g1), STRATA_OK);
    assert_false(g1.local);
    assert_int_equal(rh_kill(own), 0);
    assert_int_equal(strata_lease_acquire(b.ls, &k, 30000, STRATA_LEASE_MISS, &g2), STRATA_OK);
    assert_true(g2.local);
    assert_int_equal(strata_lease_acquire(b.ls, &k, 30000, STRATA_LEASE_MISS, &g3), STRATA_EHELD);
    assert_true(g3.held_ms > 29000);
    assert_int_equal(strata_lease_release(a.ls, &k, g1.token) < 0, 1); /* Redis cannot be asked */
    assert_int_equal(strata_lease_fill(a.ls, &k, g1.token, "a", 1, NULL), STRATA_OK_L1_ONLY);
    /* B's local lease: checked in B's table; stale tokens refused there. */
    assert_int_equal(strata_lease_fill(b.ls, &k, FORGED_LOCAL, "f", 1, NULL), STRATA_ENOTHOLDER);
    assert_int_equal(strata_lease_release(b.ls, &k, FORGED_LOCAL), STRATA_ENOTHOLDER);
    assert_int_equal(strata_lease_extend(b.ls, &k, g2.token, 60000), STRATA_OK);
    assert_int_equal(strata_lease_fill(b.ls, &k, g2.token, "b", 1, NULL), STRATA_OK_L1_ONLY);
    strata_value *v = NULL;
    /* This instance's copy: a plain L1 hit while its link has not yet seen Redis go (the link
     * notices on its own thread), a fallback once it has; the same value either way. */
    int rc = strata_cache_get(b.c, &k, &v);
    assert_true(rc == STRATA_OK || rc == STRATA_OK_L1_ONLY);
    assert_memory_equal(strata_value_data(v), "b", 1);
    strata_value_release(v);
    assert_int_equal(strata_lease_acquire(b.ls, &k, 30000, STRATA_LEASE_MISS, &g3),
                     STRATA_EEXISTS); /* this instance's L1 holds a value */
    assert_int_equal(strata_lease_acquire(b.ls, &k, 30000, STRATA_LEASE_REFRESH, &g3), STRATA_OK);
    assert_int_equal(strata_lease_release(b.ls, &k, g3.token), STRATA_OK);
    strata_lease_stats st;
    strata_leases_stats(b.ls, &st);
    assert_true(st.local >= 7);
    assert_int_equal(st.local_held, 0);
    /* Redis back: Redis decides again. */
    assert_int_equal(rh_restart(own), 0);
    assert_true(rh_wait_for(lease_from_redis, &b, 15000));
    close_inst(a);
    close_inst(b);
    rh_stop(own);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acquire_is_exclusive_across_instances),
        cmocka_unit_test(test_fill_stores_what_a_set_would_and_frees_the_lease),
        cmocka_unit_test(test_wrong_and_stale_tokens_change_nothing),
        cmocka_unit_test(test_release_extend_and_expiry),
        cmocka_unit_test(test_miss_and_refresh_modes),
        cmocka_unit_test(test_tagged_fill_is_invalidated_by_its_tag),
        cmocka_unit_test(test_release_and_fill_publish_the_value_key),
        cmocka_unit_test(test_noscript_recovery),
        cmocka_unit_test(test_async_calls_on_a_loop),
        cmocka_unit_test(test_redis_killed_the_process_decides),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
