/* test_l2_basic.c: the two-tier cache against a real redis-server: both tiers, promotion, TTLs
 * that agree, the stored format, clears, tags across instances, ACL auth and db selection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

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

/* A cache on srv (rh_apply), or at url when not NULL (with the topology's TLS settings). */
static strata_cache *open_cache(const char *url, const char *prefix)
{
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    cfg.l1.max_memory = 8u << 20;
    cfg.l1.prefix = prefix;
    rh_apply(srv, &cfg.redis);
    if (url != NULL)
        cfg.redis.url = url;
    cfg.log = rh_log_quiet;
    strata_cache *c;
    assert_int_equal(strata_cache_new(&cfg, &c), 0);
    return c;
}

static int saw_invalidation(void *arg)
{
    strata_l2_stats st;
    strata_cache_l2_stats(arg, &st);
    return st.invalidations > 0;
}

static void wait_link(strata_cache *c)
{
    assert_true(rh_wait_for(rh_cache_coherent, c, 5000));
}

static int empty_db(void *arg)
{
    (void)arg;
    redisReply *r = rh_command(srv, "DBSIZE");
    int empty = r != NULL && r->integer == 0;
    if (r != NULL)
        freeReplyObject(r);
    return empty;
}

/* These tests count keys, so they need a Redis of their own: skipped on an external server. */
static void flush(void)
{
    if (rh_is_external(srv))
        skip();
    redisReply *r = rh_command(srv, "FLUSHALL");
    assert_non_null(r);
    freeReplyObject(r);
}

static void test_set_get_del_both_tiers(void **state)
{
    (void)state;
    flush();
    strata_cache *c = open_cache(NULL, "t1");
    wait_link(c);
    strata_key k = {"ns", "acme", "k1", 2};
    strata_value *v;
    assert_int_equal(strata_cache_get(c, &k, &v), STRATA_ENOTFOUND);
    assert_int_equal(strata_cache_set(c, &k, "hello", 5, NULL), STRATA_OK);
    redisReply *r = rh_command(srv, "EXISTS t1:ns:acme:k1");
    assert_int_equal(r->integer, 1); /* in Redis under the built key */
    freeReplyObject(r);
    assert_int_equal(strata_cache_get(c, &k, &v), 0);
    assert_memory_equal(strata_value_data(v), "hello", 5);
    strata_value_release(v);
    assert_int_equal(strata_cache_del(c, &k), 0);
    r = rh_command(srv, "EXISTS t1:ns:acme:k1");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    assert_int_equal(strata_cache_get(c, &k, &v), STRATA_ENOTFOUND);
    assert_int_equal(strata_cache_del(c, &k), STRATA_ENOTFOUND);
    strata_cache_free(c);
}

/* A cache's very first calls reach Redis: a write made the moment the cache is created is shared
 * (STRATA_OK, in Redis), never answered from L1 alone because the cache has not found Redis yet,
 * and no failure is counted. On a cluster the cache must first read the slot map (its watcher
 * thread asks the seeds): the first call waits for it, as a first call to one Redis waits for
 * its connection. */
static void test_first_call_reaches_redis(void **state)
{
    (void)state;
    strata_cache *c = open_cache(NULL, "t0");
    strata_key k = {"ns", NULL, "first", 5};
    assert_int_equal(strata_cache_set(c, &k, "v", 1, NULL), STRATA_OK);
    redisReply *r = rh_command(srv, "EXISTS t0:ns:default:first");
    assert_non_null(r);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    strata_l2_stats st;
    strata_cache_l2_stats(c, &st);
    assert_int_equal(st.errors, 0);
    strata_cache_free(c);
}

static void test_promotion_and_ttl_agree(void **state)
{
    (void)state;
    flush();
    strata_cache *a = open_cache(NULL, "t2"), *b = open_cache(NULL, "t2");
    wait_link(a);
    wait_link(b);
    strata_key k = {"ns", NULL, "shared", 6};
    strata_set_opts o = {.ttl_ms = 60000, .content_type = "text/plain", .flags = 0};
    assert_int_equal(strata_cache_set(a, &k, "value", 5, &o), 0);
    /* The write's own invalidation reaches b too; let it land first, or it may drop the copy b
     * is about to promote (correctly: b cannot tell it is older than b's read). */
    assert_true(rh_wait_for(saw_invalidation, b, 2000));
    strata_value *va, *vb;
    assert_int_equal(strata_cache_get(a, &k, &va), 0);
    assert_int_equal(strata_cache_get(b, &k, &vb), 0); /* from Redis, promoted into b's L1 */
    assert_string_equal(strata_value_content_type(vb), "text/plain");
    assert_int_equal(strata_value_expires_ms(va), strata_value_expires_ms(vb));
    assert_int_equal(strata_value_created_ms(va), strata_value_created_ms(vb));
    strata_value_release(va);
    strata_value_release(vb);
    /* Redis holds the same deadline (PX), within a second of the entry's. */
    redisReply *r = rh_command(srv, "PTTL t2:ns:default:shared");
    assert_true(r->integer > 50000 && r->integer <= 66000);
    freeReplyObject(r);
    /* A second read in b is an L1 hit: the L2 hit counter does not move. */
    strata_l2_stats before, after;
    strata_cache_l2_stats(b, &before);
    assert_int_equal(strata_cache_get(b, &k, &vb), 0);
    strata_value_release(vb);
    strata_cache_l2_stats(b, &after);
    assert_int_equal(after.hits, before.hits);
    strata_stats l1;
    strata_l1_stats(strata_cache_l1(b), NULL, &l1);
    assert_true(l1.hits >= 1);
    strata_cache_free(a);
    strata_cache_free(b);
}

static void test_unknown_format_is_a_miss(void **state)
{
    (void)state;
    flush();
    strata_cache *c = open_cache(NULL, "t3");
    redisReply *r = rh_command(srv, "SET t3:ns:default:k %b", "\x07garbage-from-the-future", 24);
    freeReplyObject(r);
    r = rh_command(srv, "SET t3:ns:default:j %b", "", 0);
    freeReplyObject(r);
    strata_key k = {"ns", NULL, "k", 1}, j = {"ns", NULL, "j", 1};
    strata_value *v;
    assert_int_equal(strata_cache_get(c, &k, &v), STRATA_ENOTFOUND);
    assert_int_equal(strata_cache_get(c, &j, &v), STRATA_ENOTFOUND);
    strata_cache_free(c);
}

static void test_clear_10k(void **state)
{
    (void)state;
    flush();
    strata_cache *c = open_cache(NULL, "t4");
    char name[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(name, sizeof name, "%s:%d", i % 2 ? "user" : "item", i);
        strata_key k = {"ns", i % 4 < 2 ? "t1" : "t2", name, strlen(name)};
        assert_true(strata_cache_set(c, &k, "v", 1, NULL) >= 0);
    }
    /* Foreign keys and other namespaces are never touched. */
    redisReply *r = rh_command(srv, "SET t4:other:t1:user:1 x");
    freeReplyObject(r);
    r = rh_command(srv, "SET unrelated:key x");
    freeReplyObject(r);
    size_t removed = 0;
    assert_int_equal(strata_cache_clear(c, "ns", NULL, "user:*", &removed), 0);
    assert_int_equal(removed, 5000);
    assert_int_equal(strata_cache_clear(c, NULL, "t1", NULL, &removed), 0);
    assert_int_equal(removed, 2501); /* item:* in t1 (2500) and other:t1:user:1 */
    assert_int_equal(strata_cache_clear(c, "ns", "t2", NULL, &removed), 0);
    assert_int_equal(removed, 2500);
    r = rh_command(srv, "DBSIZE");
    assert_int_equal(r->integer, 1); /* unrelated:key */
    freeReplyObject(r);
    strata_cache_free(c);
}

static void test_flush_all(void **state)
{
    (void)state;
    flush();
    strata_cache *c = open_cache(NULL, "t7");
    strata_key k = {"ns", NULL, "k", 1};
    assert_int_equal(strata_cache_set(c, &k, "v", 1, NULL), 0);
    redisReply *r = rh_command(srv, "SET foreign x");
    freeReplyObject(r);
    assert_int_equal(strata_cache_flush(c), 0);
    strata_value *v;
    assert_int_equal(strata_cache_get(c, &k, &v), STRATA_ENOTFOUND);
    assert_true(rh_wait_for(empty_db, NULL, 2000)); /* FLUSHDB ASYNC: everything, foreign too */
    strata_cache_free(c);
}

static void test_tags_across_instances(void **state)
{
    (void)state;
    flush();
    strata_cache *a = open_cache(NULL, "t5"), *b = open_cache(NULL, "t5");
    wait_link(a);
    wait_link(b);
    const char *tags[] = {"user:42"};
    strata_set_opts o = {.tags = tags, .ntags = 1};
    strata_key k1 = {"ns", "acme", "profile", 7}, k2 = {"other", "acme", "feed", 4};
    strata_key k3 = {"ns", "globex", "profile", 7};
    assert_int_equal(strata_cache_set(a, &k1, "p", 1, &o), 0);
    assert_int_equal(strata_cache_set(a, &k2, "f", 1, &o), 0);
    assert_int_equal(strata_cache_set(a, &k3, "g", 1, &o), 0);
    strata_value *v;
    assert_int_equal(strata_cache_get(b, &k1, &v), 0); /* b learns the entry and the tag */
    strata_value_release(v);
    /* The tag version lives in Redis, readable. */
    redisReply *r = rh_command(srv, "GET t5:!tag:acme:user:42");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, 16);
    freeReplyObject(r);
    /* One write from b invalidates what a wrote, in both instances. */
    assert_int_equal(strata_cache_tag_invalidate(b, "acme", "user:42"), 0);
    uint64_t t0 = rh_now_ms();
    while ((strata_cache_get(a, &k1, &v) == 0 || strata_cache_get(b, &k1, &v) == 0) &&
           rh_now_ms() - t0 < 2000) {
        strata_value_release(v);
        usleep(1000);
    }
    assert_int_equal(strata_cache_get(a, &k1, &v), STRATA_ENOTFOUND);
    assert_int_equal(strata_cache_get(b, &k1, &v), STRATA_ENOTFOUND);
    assert_int_equal(strata_cache_get(b, &k2, &v), STRATA_ENOTFOUND);
    assert_int_equal(strata_cache_get(b, &k3, &v), 0); /* another tenant's tag */
    strata_value_release(v);
    /* A flushed tag version (Redis lost it) invalidates too, never resurrects. */
    assert_int_equal(strata_cache_set(a, &k1, "p2", 2, &o), 0);
    r = rh_command(srv, "DEL t5:!tag:acme:user:42");
    freeReplyObject(r);
    t0 = rh_now_ms();
    while (strata_cache_get(b, &k1, &v) == 0 && rh_now_ms() - t0 < 2000) {
        strata_value_release(v);
        usleep(1000);
    }
    assert_int_equal(strata_cache_get(b, &k1, &v), STRATA_ENOTFOUND);
    strata_cache_free(a);
    strata_cache_free(b);
}

static void test_acl_user_and_db(void **state)
{
    (void)state;
    if (rh_topology() == RH_CLUSTER) { /* a cluster has database 0 only (REDIS_DB refused) */
        print_message("skipped under the cluster topology: it selects database 3\n");
        skip();
    }
    flush();
    redisReply *r = rh_command(srv, "ACL SETUSER strata on >s3cr%%t:@x ~* &* +@all");
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    /* The URLs name srv's TLS port under the tls topology (open_cache adds the CA). */
    int tls = rh_topology() == RH_TLS;
    const char *scheme = tls ? "rediss" : "redis";
    int port = tls ? rh_tls_port(srv) : rh_port(srv);
    char url[256];
    snprintf(url, sizeof url, "%s://strata:s3cr%%25t%%3A%%40x@127.0.0.1:%d/3", scheme, port);
    strata_cache *c = open_cache(url, "t6");
    wait_link(c);
    strata_key k = {"ns", NULL, "k", 1};
    assert_int_equal(strata_cache_set(c, &k, "v", 1, NULL), STRATA_OK);
    r = rh_command(srv, "SELECT 3");
    freeReplyObject(r);
    /* rh_command uses a fresh connection: check db 3 through a unix-socket cache instead. */
    strata_cache_free(c);
    snprintf(url, sizeof url, "unix://strata:s3cr%%25t%%3A%%40x@%s?db=3", rh_unix_path(srv));
    c = open_cache(url, "t6");
    strata_value *v;
    int rc = strata_cache_get(c, &k, &v);
    strata_l2_stats st;
    strata_cache_l2_stats(c, &st);
    if (rc != 0)
        print_message("unix get: %s (%s)\n", strata_err_name(rc), st.last_error);
    assert_int_equal(rc, 0);
    strata_value_release(v);
    strata_cache_free(c);
    snprintf(url, sizeof url, "%s://127.0.0.1:%d/0", scheme, port);
    c = open_cache(url, "t6");
    assert_int_equal(strata_cache_get(c, &k, &v), STRATA_ENOTFOUND); /* db 0 does not have it */
    strata_cache_free(c);
    /* A wrong password is a connection failure: the cache still answers, from L1. */
    snprintf(url, sizeof url, "%s://strata:wrong@127.0.0.1:%d/3", scheme, port);
    c = open_cache(url, "t6");
    assert_int_equal(strata_cache_set(c, &k, "v", 1, NULL), STRATA_OK_L1_ONLY);
    assert_int_equal(strata_cache_get(c, &k, &v), STRATA_OK_L1_ONLY); /* L1's copy, said so */
    strata_value_release(v);
    strata_cache_l2_stats(c, &st);
    assert_true(strstr(st.last_error, "AUTH") != NULL);
    strata_cache_free(c);
}

static void test_config_from_env(void **state)
{
    (void)state;
    strata_cache_config cfg;
    const char *bad;
    setenv("REDIS_URL", "redis://h:99999", 1);
    assert_int_equal(strata_cache_config_init(&cfg, &bad), STRATA_EBADURL);
    assert_string_equal(bad, "REDIS_URL");
    setenv("REDIS_URL", "redis://user:pw@localhost:6380/2", 1);
    setenv("REDIS_SOCKET_TIMEOUT", "0.2", 1);
    setenv("REDIS_CONNECT_TIMEOUT", "1.5", 1);
    setenv("REDIS_MAX_CONNECTIONS", "3", 1);
    setenv("REDIS_READONLY", "true", 1);
    setenv("CACHE_TTL", "120", 1);
    assert_int_equal(strata_cache_config_init(&cfg, &bad), 0);
    assert_string_equal(cfg.redis.url, "redis://user:pw@localhost:6380/2");
    assert_int_equal(cfg.redis.socket_timeout_ms, 200);
    assert_int_equal(cfg.redis.connect_timeout_ms, 1500);
    assert_int_equal(cfg.redis.max_connections, 3);
    assert_int_equal(cfg.redis.readonly, 1);
    assert_int_equal(cfg.default_ttl_ms, 120000);
    const char *bad_values[][2] = {{"REDIS_SOCKET_TIMEOUT", "fast"},
                                   {"REDIS_SOCKET_TIMEOUT", "0"},
                                   {"REDIS_MAX_CONNECTIONS", "0"},
                                   {"REDIS_READONLY", "maybe"},
                                   {"CACHE_TTL", "-5"},
                                   {"REDIS_ENABLED", "2"}};
    for (size_t i = 0; i < sizeof bad_values / sizeof *bad_values; i++) {
        char *old = getenv(bad_values[i][0]) ? strdup(getenv(bad_values[i][0])) : NULL;
        setenv(bad_values[i][0], bad_values[i][1], 1);
        assert_int_equal(strata_cache_config_init(&cfg, &bad), STRATA_ERANGE);
        assert_string_equal(bad, bad_values[i][0]);
        if (old)
            setenv(bad_values[i][0], old, 1), free(old);
        else
            unsetenv(bad_values[i][0]);
    }
    const char *why;
    assert_int_equal(strata_redis_url_check("http://x", &why), STRATA_EBADURL);
    assert_non_null(strstr(why, "scheme"));
    unsetenv("REDIS_URL"), unsetenv("REDIS_SOCKET_TIMEOUT"), unsetenv("REDIS_CONNECT_TIMEOUT");
    unsetenv("REDIS_MAX_CONNECTIONS"), unsetenv("REDIS_READONLY"), unsetenv("CACHE_TTL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_get_del_both_tiers),
        cmocka_unit_test(test_first_call_reaches_redis),
        cmocka_unit_test(test_promotion_and_ttl_agree),
        cmocka_unit_test(test_unknown_format_is_a_miss),
        cmocka_unit_test(test_clear_10k),
        cmocka_unit_test(test_flush_all),
        cmocka_unit_test(test_tags_across_instances),
        cmocka_unit_test(test_acl_user_and_db),
        cmocka_unit_test(test_config_from_env),
    };
    return cmocka_run_group_tests_name("l2_basic", tests, setup, teardown);
}
