/* test_redis_client.c: the Redis client's own promises, against a real redis-server: the script
 * helper (EVALSHA first, EVAL once after a SCRIPT FLUSH, on the pool and on a loop's
 * connection), and keys that no instance caches (rate-limit buckets) costing the invalidation
 * link nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <strata/strata.h>

#include "harness.h"
#include "redis/conn.h"
#include "redis/script.h"
#include "redis/sentinel.h"

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

/* How many times Redis ran a command (INFO commandstats; on a cluster, on all its nodes). */
static long calls_of(const char *cmd)
{
    long n = 0;
    for (int i = 0; i < rh_nodes(srv); i++) {
        redisReply *r = rh_command(rh_node(srv, i), "INFO commandstats");
        assert_non_null(r);
        char field[64];
        snprintf(field, sizeof field, "cmdstat_%s:calls=", cmd);
        const char *p = strstr(r->str, field);
        n += p ? strtol(p + strlen(field), NULL, 10) : 0;
        freeReplyObject(r);
    }
    return n;
}

/* A client on srv, made as strata_cache_new makes it (the URL, or the cluster's seeds). */
static redis_client *client(void)
{
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    rh_apply(srv, &cfg.redis);
    redis_url url;
    if (cfg.redis.cluster != NULL)
        strata__sentinel_url(&cfg.redis, &url);
    else
        assert_int_equal(strata__redis_url_parse(cfg.redis.url, &url, NULL), 0);
    redis_client *cl;
    assert_int_equal(strata__redis_new(&cfg.redis, &url, NULL, NULL, rh_log_quiet, NULL, &cl), 0);
    return cl;
}

static redis_script echo = REDIS_SCRIPT("return {KEYS[1], ARGV[1]}");

static void test_script_sync_evalsha_then_eval_after_flush(void **state)
{
    (void)state;
    redis_client *cl = client();
    const char *args[] = {"1", "k", "a"};
    size_t lens[] = {1, 1, 1};
    redisReply *r;
    freeReplyObject(rh_command(srv, "SCRIPT FLUSH"));
    long sha0 = calls_of("evalsha"), eval0 = calls_of("eval");
    assert_int_equal(strata__script_run(cl, &echo, 3, args, lens, &r), 0);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY); /* the script's answer, not NOSCRIPT */
    assert_string_equal(r->element[0]->str, "k");
    freeReplyObject(r);
    assert_int_equal(calls_of("evalsha") - sha0, 1); /* tried by its digest first ... */
    assert_int_equal(calls_of("eval") - eval0, 1);   /* ... then sent whole, once */
    assert_int_equal(strata__script_run(cl, &echo, 3, args, lens, &r), 0);
    freeReplyObject(r);
    assert_int_equal(calls_of("eval") - eval0, 1); /* cached by Redis now: EVALSHA alone */
    assert_int_equal(calls_of("evalsha") - sha0, 2);
    strata__redis_free(cl);
}

typedef struct got {
    int calls, status;
    char first[16];
} got;

static void on_reply(int status, redisReply **r, size_t n, void *arg)
{
    got *g = arg;
    g->calls++, g->status = status;
    if (status == 0 && n == 1 && r[0]->type == REDIS_REPLY_ARRAY)
        snprintf(g->first, sizeof g->first, "%s", r[0]->element[1]->str);
}

static void test_script_async_after_flush(void **state)
{
    (void)state;
    redis_client *cl = client();
    struct event_base *base = event_base_new();
    redis_conn *c;
    assert_int_equal(strata__conn_new(cl, base, &c), 0);
    freeReplyObject(rh_command(srv, "SCRIPT FLUSH"));
    long eval0 = calls_of("eval");
    got g = {0};
    char arg[] = "xyz"; /* copied: changed right after the call */
    const char *args[] = {"1", "k", arg};
    size_t lens[] = {1, 1, 3};
    assert_int_equal(strata__script_send(c, &echo, 3, args, lens, on_reply, &g), STRATA_PENDING);
    arg[0] = '!';
    for (int i = 0; i < 2000 && g.calls == 0; i++) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(500);
    }
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 0);
    assert_string_equal(g.first, "xyz");
    assert_int_equal(calls_of("eval") - eval0, 1);
    strata__conn_free(c);
    event_base_free(base);
    strata__redis_free(cl);
}

typedef struct batch_got {
    int calls, status;
    size_t n;
    long long value[8];
} batch_got;

static void on_batch_replies(int status, redisReply **r, size_t n, void *arg)
{
    batch_got *g = arg;
    g->calls++, g->status = status, g->n = n;
    for (size_t i = 0; status == 0 && i < n && i < 8; i++)
        g->value[i] = r[i]->type == REDIS_REPLY_INTEGER ? r[i]->integer : -1;
}

/* A loop's call of several commands runs each command once, in its order, and answers each in
 * its place, whichever nodes they go to (on a cluster: three keys of one slot, two of others,
 * interleaved). Counted by INCR: a command sent twice would count 2. */
static void test_batch_runs_each_command_once(void **state)
{
    (void)state;
    static const char *const keys[] = {"b{x}1", "b:other", "b{x}2", "b:else", "b{x}3"};
    enum { N = sizeof keys / sizeof keys[0] };
    for (int i = 0; i < N; i++)
        freeReplyObject(rh_command(srv, "DEL %s", keys[i]));
    redis_client *cl = client();
    struct event_base *base = event_base_new();
    redis_conn *c;
    assert_int_equal(strata__conn_new(cl, base, &c), 0);
    redis_cmd cmds[N];
    for (int i = 0; i < N; i++)
        cmds[i] = (redis_cmd){.argc = 3,
                              .argv = {"INCRBY", keys[i], i == 0 ? "10" : "1"},
                              .argvlen = {6, strlen(keys[i]), i == 0 ? 2 : 1}};
    batch_got g = {0};
    assert_int_equal(strata__conn_send(c, cmds, N, on_batch_replies, &g), STRATA_PENDING);
    for (int i = 0; i < 4000 && g.calls == 0; i++) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(500);
    }
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.n, N);
    assert_int_equal(g.value[0], 10); /* each reply in its command's place */
    for (int i = 1; i < N; i++)
        assert_int_equal(g.value[i], 1);
    for (int i = 0; i < N; i++) { /* and each command ran once */
        redisReply *r = rh_command(srv, "GET %s", keys[i]);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        assert_string_equal(r->str, i == 0 ? "10" : "1");
        freeReplyObject(r);
    }
    strata__conn_free(c);
    event_base_free(base);
    strata__redis_free(cl);
}

/* A client of server s tracking "<prefix>:" the way every instance's link does (on a cluster,
 * each node tracks its own keys: one per node). Returns its context. */
static redisContext *tracker(rh_server *s, const char *prefix)
{
    redisContext *ctx = redisConnect(rh_host(s), rh_port(s));
    assert_true(ctx != NULL && ctx->err == 0);
    redisReply *id = redisCommand(ctx, "CLIENT ID");
    long long my = id->integer;
    freeReplyObject(id);
    freeReplyObject(
        redisCommand(ctx, "CLIENT TRACKING on REDIRECT %lld BCAST PREFIX %s:", my, prefix));
    freeReplyObject(redisCommand(ctx, "SUBSCRIBE __redis__:invalidate"));
    return ctx;
}

/* Keys named by invalidation messages that arrive within 300 ms of quiet. */
static int invalidations_of(redisContext *ctx)
{
    int n = 0;
    struct pollfd p = {.fd = ctx->fd, .events = POLLIN};
    while (poll(&p, 1, 300) == 1) {
        assert_int_equal(redisBufferRead(ctx), REDIS_OK);
        void *r;
        while (redisGetReplyFromReader(ctx, &r) == REDIS_OK && r != NULL) {
            redisReply *m = r;
            if (m->type == REDIS_REPLY_ARRAY && m->elements == 3 &&
                m->element[2]->type == REDIS_REPLY_ARRAY)
                n += (int)m->element[2]->elements;
            freeReplyObject(r);
        }
    }
    return n;
}

#define TRACKERS_MAX 8

/* ... summed over the trackers of every node. */
static int invalidations(redisContext **ctx)
{
    int n = 0;
    for (int i = 0; i < rh_nodes(srv); i++)
        n += invalidations_of(ctx[i]);
    return n;
}

static void test_ratelimit_checks_send_no_invalidations(void **state)
{
    (void)state;
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    cfg.l1.prefix = "quiet";
    rh_apply(srv, &cfg.redis);
    cfg.redis.coherence = 0; /* the tracker below stands for every instance's link */
    cfg.log = rh_log_quiet;
    strata_cache *c;
    assert_int_equal(strata_cache_new(&cfg, &c), 0);
    strata_ratelimiter *rl;
    assert_int_equal(strata_ratelimiter_new(c, &rl), 0);
    redisContext *ctx[TRACKERS_MAX];
    assert_true(rh_nodes(srv) <= TRACKERS_MAX);
    for (int i = 0; i < rh_nodes(srv); i++)
        ctx[i] = tracker(rh_node(srv, i), "quiet");
    strata_rl_params p = {.limit = 1000000, .period_ms = 1000};
    strata_rl_result r;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(strata_ratelimit(rl, "acme", "user:1", 6, &p, &r), 0);
        assert_int_equal(r.source, STRATA_RL_REDIS); /* each check really ran in Redis */
    }
    assert_int_equal(invalidations(ctx), 0);
    /* The tracker does hear what instances cache: one cache write is one invalidation. */
    strata_key k = {"ns", "acme", "k", 1};
    assert_int_equal(strata_cache_set(c, &k, "v", 1, NULL), 0);
    assert_int_equal(invalidations(ctx), 1);
    for (int i = 0; i < rh_nodes(srv); i++)
        redisFree(ctx[i]);
    strata_ratelimiter_free(rl);
    strata_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_script_sync_evalsha_then_eval_after_flush),
        cmocka_unit_test(test_script_async_after_flush),
        cmocka_unit_test(test_batch_runs_each_command_once),
        cmocka_unit_test(test_ratelimit_checks_send_no_invalidations),
    };
    return cmocka_run_group_tests_name("redis_client", tests, setup, teardown);
}
