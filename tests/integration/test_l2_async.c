/* test_l2_async.c: the asynchronous two-tier calls on a libevent loop against a real Redis:
 * the calling convention, pipelining on one connection, tags in two rounds, deadlines with a
 * stopped Redis, the bounded queue, and freeing a loop with calls in flight. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include <strata/strata.h>

#include "harness.h"

static rh_server *srv;
static struct event_base *base;

typedef struct result {
    int calls, status;
    char value[64];
    uint64_t at_ms;
} result;

static int setup(void **state)
{
    (void)state;
    srv = rh_start(NULL);
    base = event_base_new();
    return srv && base ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    rh_resume(srv);
    rh_stop(srv);
    event_base_free(base);
    return 0;
}

/* A cache on srv whose calls time out after timeout_ms. */
static strata_cache *open_cache_t(const char *prefix, unsigned max_pending, unsigned timeout_ms)
{
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    cfg.l1.max_memory = 8u << 20;
    cfg.l1.prefix = prefix;
    rh_apply(srv, &cfg.redis);
    cfg.redis.socket_timeout_ms = timeout_ms;
    cfg.redis.connect_timeout_ms = 100;
    cfg.redis.breaker_failures = 1000; /* these tests watch timeouts, not the breaker */
    cfg.redis.max_pending = max_pending;
    cfg.log = rh_log_quiet;
    strata_cache *c;
    assert_int_equal(strata_cache_new(&cfg, &c), 0);
    assert_true(rh_wait_for(rh_cache_coherent, c, 5000));
    return c;
}

static strata_cache *open_cache(const char *prefix, unsigned max_pending)
{
    return open_cache_t(prefix, max_pending, 100);
}

static void on_get(int status, strata_value *v, void *arg)
{
    result *r = arg;
    r->calls++;
    r->status = status;
    r->at_ms = rh_now_ms();
    if (v != NULL) {
        snprintf(r->value, sizeof r->value, "%.*s", (int)strata_value_len(v),
                 (const char *)strata_value_data(v));
        strata_value_release(v);
    }
}

static void on_done(int status, void *arg)
{
    result *r = arg;
    r->calls++;
    r->status = status;
    r->at_ms = rh_now_ms();
}

/* A numeric field of an INFO answer ("connected_clients:"), or -1. */
static long long info_field(const char *info, const char *field)
{
    const char *p = strstr(info, field);
    return p ? strtoll(p + strlen(field), NULL, 10) : -1;
}

/* The connection counters of srv (summed over its nodes on a cluster: strata's loop holds a
 * connection to each primary), read with one rh_command connection per node. */
typedef struct conn_counts {
    long long received, connected;
} conn_counts;

static conn_counts conn_counts_now(void)
{
    conn_counts c = {0, 0};
    for (int i = 0; i < rh_nodes(srv); i++) {
        redisReply *r = rh_command(rh_node(srv, i), "INFO");
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        long long received = info_field(r->str, "total_connections_received:");
        long long connected = info_field(r->str, "connected_clients:");
        assert_true(received >= 0 && connected >= 0);
        c.received += received, c.connected += connected;
        freeReplyObject(r);
    }
    return c;
}

/* Runs the loop until every result has been called back (or 3 s pass). */
static void run_until(result *rs, int n)
{
    uint64_t t0 = rh_now_ms();
    for (;;) {
        int done = 1;
        for (int i = 0; i < n; i++)
            done &= rs[i].calls > 0;
        if (done || rh_now_ms() - t0 > 3000)
            return;
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(200);
    }
}

/* A loop's very first call reaches Redis: an asynchronous write made the moment the cache is
 * created is shared (status 0, in Redis), not failed because the cache has not found Redis yet.
 * On a cluster the call waits (parked, the loop free) for the slot map the cache's watcher is
 * still reading, as a call on one Redis waits for the connection being made. */
static void test_first_call_reaches_redis(void **state)
{
    (void)state;
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    cfg.l1.prefix = "a0";
    rh_apply(srv, &cfg.redis);
    cfg.redis.socket_timeout_ms = 2000; /* far above the map's read, even under a sanitizer */
    cfg.log = rh_log_quiet;
    strata_cache *c;
    assert_int_equal(strata_cache_new(&cfg, &c), 0);
    strata_loop *lp;
    assert_int_equal(strata_loop_new(c, base, &lp), 0);
    strata_key k = {"ns", NULL, "first", 5};
    result set = {0};
    assert_int_equal(strata_cache_set_async(lp, &k, "v", 1, NULL, on_done, &set), STRATA_PENDING);
    run_until(&set, 1);
    assert_int_equal(set.calls, 1);
    assert_int_equal(set.status, 0);
    redisReply *r = rh_command(srv, "EXISTS a0:ns:default:first");
    assert_non_null(r);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    strata_l2_stats st;
    strata_cache_l2_stats(c, &st);
    assert_int_equal(st.errors, 0);
    strata_loop_free(lp);
    strata_cache_free(c);
}

static void test_convention_and_promotion(void **state)
{
    (void)state;
    strata_cache *a = open_cache("a1", 0), *b = open_cache("a1", 0);
    strata_loop *la, *lb;
    assert_int_equal(strata_loop_new(a, base, &la), 0);
    assert_int_equal(strata_loop_new(b, base, &lb), 0);
    strata_key k = {"ns", "acme", "k", 1};
    result set = {0}, get = {0};
    strata_set_opts o = {.ttl_ms = 60000, .content_type = "text/plain"};
    assert_int_equal(strata_cache_set_async(la, &k, "async-v", 7, &o, on_done, &set),
                     STRATA_PENDING);
    run_until(&set, 1);
    assert_int_equal(set.calls, 1);
    assert_int_equal(set.status, 0);
    redisReply *r = rh_command(srv, "EXISTS a1:ns:acme:k");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    usleep(50000); /* let the write's own invalidation pass */
    strata_value *v = NULL;
    assert_int_equal(strata_cache_get_async(lb, &k, on_get, &get, &v), STRATA_PENDING);
    assert_null(v);
    run_until(&get, 1);
    assert_int_equal(get.calls, 1);
    assert_int_equal(get.status, 0);
    assert_string_equal(get.value, "async-v");
    /* Promoted: the next read answers during the call, and never calls back. */
    result again = {0};
    assert_int_equal(strata_cache_get_async(lb, &k, on_get, &again, &v), STRATA_OK);
    assert_memory_equal(strata_value_data(v), "async-v", 7);
    strata_value_release(v);
    /* A miss known only to Redis is a callback with STRATA_ENOTFOUND. */
    strata_key none = {"ns", "acme", "none", 4};
    result miss = {0};
    assert_int_equal(strata_cache_get_async(lb, &none, on_get, &miss, &v), STRATA_PENDING);
    run_until(&miss, 1);
    assert_int_equal(miss.status, STRATA_ENOTFOUND);
    /* Delete through the loop. */
    result del = {0};
    assert_int_equal(strata_cache_del_async(la, &k, on_done, &del), STRATA_PENDING);
    run_until(&del, 1);
    assert_int_equal(del.status, 0);
    /* Bad arguments fail at once, never call back. */
    strata_key bad = {"bad ns", NULL, "k", 1};
    result never = {0};
    assert_int_equal(strata_cache_get_async(lb, &bad, on_get, &never, &v), STRATA_EBADNAME);
    assert_int_equal(strata_cache_set_async(lb, &bad, "v", 1, NULL, on_done, &never),
                     STRATA_EBADNAME);
    event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(again.calls + never.calls, 0);
    strata_loop_free(la);
    strata_loop_free(lb);
    strata_cache_free(a);
    strata_cache_free(b);
}

static void test_pipelined_on_one_connection(void **state)
{
    (void)state;
    enum { N = 300 };
    strata_cache *a = open_cache("a2", 0);
    strata_loop *lp;
    assert_int_equal(strata_loop_new(a, base, &lp), 0);
    static result sets[N], gets[N];
    memset(sets, 0, sizeof sets);
    memset(gets, 0, sizeof gets);
    char name[16], val[16];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "k%d", i);
        snprintf(val, sizeof val, "v%d", i);
        strata_key k = {"ns", NULL, name, strlen(name)};
        assert_int_equal(strata_cache_set_async(lp, &k, val, strlen(val), NULL, on_done, &sets[i]),
                         STRATA_PENDING);
    }
    run_until(sets, N);
    conn_counts before = conn_counts_now();
    for (int i = 0; i < N; i++) {
        assert_int_equal(sets[i].status, 0);
        snprintf(name, sizeof name, "k%d", i);
        strata_key k = {"ns", NULL, name, strlen(name)};
        strata_value *v = NULL;
        int rc = strata_cache_get_async(lp, &k, on_get, &gets[i], &v);
        if (rc == STRATA_OK) { /* still in L1: record it as if called back */
            on_get(0, v, &gets[i]);
        } else {
            assert_int_equal(rc, STRATA_PENDING);
        }
    }
    run_until(gets, N);
    for (int i = 0; i < N; i++) {
        snprintf(val, sizeof val, "v%d", i);
        assert_int_equal(gets[i].calls, 1);
        assert_string_equal(gets[i].value, val);
    }
    conn_counts after = conn_counts_now();
    /* No connection opened for the burst: the ones made since are rh_command's own, for this
     * INFO (one per node); none open beyond those before. (Not the whole INFO clients section:
     * client_recent_max_input_buffer moves with the traffic.) */
    assert_int_equal(after.received, before.received + rh_nodes(srv));
    assert_int_equal(after.connected, before.connected);
    strata_loop_free(lp);
    strata_cache_free(a);
}

static void test_tags_two_rounds(void **state)
{
    (void)state;
    strata_cache *a = open_cache("a3", 0), *b = open_cache("a3", 0);
    strata_loop *la, *lb;
    assert_int_equal(strata_loop_new(a, base, &la), 0);
    assert_int_equal(strata_loop_new(b, base, &lb), 0);
    const char *tags[] = {"user:1", "team:2"};
    strata_set_opts o = {.tags = tags, .ntags = 2};
    strata_key k = {"ns", "acme", "tagged", 6};
    result set = {0}, get = {0}, get2 = {0};
    assert_int_equal(strata_cache_set_async(la, &k, "tv", 2, &o, on_done, &set), STRATA_PENDING);
    run_until(&set, 1);
    assert_int_equal(set.status, 0);
    redisReply *r = rh_command(srv, "EXISTS a3:!tag:acme:user:1 a3:!tag:acme:team:2");
    assert_int_equal(r->integer, 2);
    freeReplyObject(r);
    usleep(50000);
    strata_value *v;
    assert_int_equal(strata_cache_get_async(lb, &k, on_get, &get, &v), STRATA_PENDING);
    run_until(&get, 1);
    assert_int_equal(get.status, 0);
    assert_string_equal(get.value, "tv");
    assert_int_equal(strata_cache_tag_invalidate(a, "acme", "team:2"), 0);
    usleep(100000);
    int rc = strata_cache_get_async(lb, &k, on_get, &get2, &v);
    if (rc == STRATA_PENDING)
        run_until(&get2, 1), rc = get2.status;
    assert_int_equal(rc, STRATA_ENOTFOUND);
    strata_loop_free(la);
    strata_loop_free(lb);
    strata_cache_free(a);
    strata_cache_free(b);
}

static void test_stopped_redis_deadlines(void **state)
{
    (void)state;
    strata_cache *a = open_cache("a4", 8);
    strata_loop *lp;
    assert_int_equal(strata_loop_new(a, base, &lp), 0);
    strata_key hot = {"ns", NULL, "hot", 3}, cold = {"ns", NULL, "cold", 4};
    result set = {0};
    assert_int_equal(strata_cache_set_async(lp, &hot, "h", 1, NULL, on_done, &set), STRATA_PENDING);
    run_until(&set, 1);
    usleep(50000);
    strata_value *v;
    result warm = {0};
    if (strata_cache_get_async(lp, &hot, on_get, &warm, &v) == STRATA_PENDING)
        run_until(&warm, 1);
    else
        strata_value_release(v);
    assert_int_equal(rh_pause(srv), 0);
    /* A miss pending on a stopped Redis... */
    static result misses[8];
    memset(misses, 0, sizeof misses);
    uint64_t t0 = rh_now_ms();
    for (int i = 0; i < 8; i++)
        assert_int_equal(strata_cache_get_async(lp, &cold, on_get, &misses[i], &v), STRATA_PENDING);
    /* ...the queue is bounded: the 9th is not sent, it waits for room (back-pressure, not a
     * reason to answer from L1), and ends with the others when the deadline passes. */
    result ninth = {0};
    assert_int_equal(strata_cache_get_async(lp, &cold, on_get, &ninth, &v), STRATA_PENDING);
    /* The hot key is still an L1 hit? Only while the link is up; either way, at once. */
    result hotr = {0};
    int rc = strata_cache_get_async(lp, &hot, on_get, &hotr, &v);
    assert_true(rc == STRATA_OK || rc == STRATA_PENDING);
    if (rc == STRATA_OK)
        strata_value_release(v);
    run_until(misses, 8);
    run_until(&ninth, 1);
    assert_int_equal(ninth.status, STRATA_ENOTFOUND);
    assert_true(ninth.at_ms - t0 <= 500);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(misses[i].calls, 1);
        assert_int_equal(misses[i].status, STRATA_ENOTFOUND); /* a miss, never an error */
        assert_true(misses[i].at_ms - t0 <= 500);             /* the 100 ms timeout, generously */
    }
    if (rc == STRATA_PENDING) {
        run_until(&hotr, 1);
        assert_int_equal(hotr.status, 0); /* the fallback serves L1 */
        assert_string_equal(hotr.value, "h");
    }
    /* A write with Redis stopped lands in L1 only, said so. */
    result w = {0};
    rc = strata_cache_set_async(lp, &cold, "c", 1, NULL, on_done, &w);
    if (rc == STRATA_PENDING)
        run_until(&w, 1), rc = w.status;
    assert_int_equal(rc, STRATA_OK_L1_ONLY);
    assert_int_equal(rh_resume(srv), 0);
    strata_loop_free(lp);
    strata_cache_free(a);
}

/* A full queue on a healthy Redis is back-pressure: calls past max_pending wait for room and are
 * answered by Redis, never from L1 (which does not hold these keys: it would be a miss). */
static void test_full_queue_waits_for_room(void **state)
{
    (void)state;
    enum { N = 200 };
    /* The wait for room counts against each call's deadline: 200 calls through 4 places are 50
     * round trips one after another, which over TLS under a sanitizer take more than 100 ms. */
    strata_cache *writer = open_cache("a6", 0), *a = open_cache_t("a6", 4, 5000);
    char name[16];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "k%d", i);
        strata_key k = {"ns", NULL, name, strlen(name)};
        assert_int_equal(strata_cache_set(writer, &k, name, strlen(name), NULL), 0);
    }
    strata_loop *lp;
    assert_int_equal(strata_loop_new(a, base, &lp), 0);
    static result gets[N];
    memset(gets, 0, sizeof gets);
    strata_l2_stats before, after;
    strata_cache_l2_stats(a, &before);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "k%d", i);
        strata_key k = {"ns", NULL, name, strlen(name)};
        strata_value *v;
        assert_int_equal(strata_cache_get_async(lp, &k, on_get, &gets[i], &v), STRATA_PENDING);
    }
    run_until(gets, N);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "k%d", i);
        assert_int_equal(gets[i].calls, 1);
        assert_int_equal(gets[i].status, 0);
        assert_string_equal(gets[i].value, name);
    }
    strata_cache_l2_stats(a, &after);
    assert_int_equal(after.fallbacks, before.fallbacks);
    assert_int_equal(after.hits - before.hits, N);
    strata_loop_free(lp);
    strata_cache_free(a);
    strata_cache_free(writer);
}

static void test_free_loop_fails_pending(void **state)
{
    (void)state;
    strata_cache *a = open_cache("a5", 0);
    strata_loop *lp;
    assert_int_equal(strata_loop_new(a, base, &lp), 0);
    assert_int_equal(rh_pause(srv), 0);
    strata_key k = {"ns", NULL, "k", 1};
    result get = {0}, set = {0};
    strata_value *v;
    assert_int_equal(strata_cache_get_async(lp, &k, on_get, &get, &v), STRATA_PENDING);
    assert_int_equal(strata_cache_set_async(lp, &k, "v", 1, NULL, on_done, &set), STRATA_PENDING);
    strata_loop_free(lp);
    assert_int_equal(get.calls, 1);
    assert_int_equal(get.status, STRATA_ETIMEDOUT);
    assert_int_equal(set.calls, 1);
    assert_int_equal(set.status, STRATA_ETIMEDOUT);
    assert_int_equal(rh_resume(srv), 0);
    strata_cache_free(a);
}

/* A listening socket whose accept queue is full, so a connect to it never completes (the kernel
 * drops the SYNs): a Redis that is never reachable. Returns the listener; fills[] the sockets
 * that fill the queue (close all of them after). */
static int unreachable_port(int *port, int fills[4])
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 0), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    for (int i = 0; i < 4; i++) {
        fills[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fills[i], (struct sockaddr *)&a, sizeof a); /* EINPROGRESS, or queued */
    }
    usleep(100000);
    return fd;
}

/* A cache's settings for the port unreachable_port made (url: its buffer, cap bytes), with
 * these deadlines. */
static void unreachable_config(strata_cache_config *cfg, const char *prefix, int port, char *url,
                               size_t cap, unsigned socket_ms, unsigned connect_ms)
{
    assert_int_equal(strata_cache_config_init(cfg, NULL), 0);
    cfg->l1.prefix = prefix;
    rh_apply_port(port, &cfg->redis, url, cap);
    cfg->redis.socket_timeout_ms = socket_ms;
    cfg->redis.connect_timeout_ms = connect_ms;
}

static char unreachable_log[512];

static void keep_log(int level, const char *msg, void *arg)
{
    (void)arg;
    if (level <= 1 && unreachable_log[0] == '\0')
        snprintf(unreachable_log, sizeof unreachable_log, "%s", msg);
}

/* Redis never reachable: calls time out while the connection is still being made, and the log
 * and last error say that no connection was made, not that a connected Redis stopped answering
 * (hardening item 18: "connection lost with calls in flight"). */
static void test_never_reachable_says_so(void **state)
{
    (void)state;
    int port, fills[4], fd = unreachable_port(&port, fills);
    char url[64];
    strata_cache_config cfg;
    /* a call's deadline passes before the connect's */
    unreachable_config(&cfg, "a6", port, url, sizeof url, 100, 2000);
    cfg.redis.breaker_failures = 1; /* the first failure opens it and is logged */
    cfg.redis.coherence = 0;        /* only the loop's connection reports */
    cfg.log = keep_log;
    unreachable_log[0] = '\0';
    strata_cache *c;
    assert_int_equal(strata_cache_new(&cfg, &c), 0);
    strata_loop *lp;
    assert_int_equal(strata_loop_new(c, base, &lp), 0);
    strata_key k = {"ns", NULL, "k", 1};
    result get = {0};
    strata_value *v;
    assert_int_equal(strata_cache_get_async(lp, &k, on_get, &get, &v), STRATA_PENDING);
    run_until(&get, 1);
    assert_int_equal(get.status, STRATA_ENOTFOUND); /* a miss, never an error */
    strata_l2_stats st;
    strata_cache_l2_stats(c, &st);
    /* On a cluster the call waited for the slot map no node gave (the seed's connection is
     * still being made): its words for the same fact. */
    int cluster = rh_topology() == RH_CLUSTER;
    const char *said = cluster ? "no redis cluster slot map yet (no node has answered)"
                               : "connect to redis: no connection after";
    if (strstr(st.last_error, said) == NULL)
        fprintf(stderr, "last error: %s\nlog: %s\n", st.last_error, unreachable_log);
    assert_non_null(strstr(st.last_error, said));
    assert_non_null(strstr(unreachable_log, cluster ? said : "connect to redis"));
    assert_null(strstr(unreachable_log, "did not answer"));
    strata_loop_free(lp);
    strata_cache_free(c);
    for (int i = 0; i < 4; i++)
        close(fills[i]);
    close(fd);
}

/* A loop freed while its first call waits for Redis (on a cluster: parked, the slot map not
 * read yet; on one Redis: the connection still being made) answers that call once, as it
 * answers the calls in flight (test_free_loop_fails_pending): timed out. Nothing is left behind
 * (ASan). */
static void test_free_loop_fails_first_call(void **state)
{
    (void)state;
    int port, fills[4], fd = unreachable_port(&port, fills);
    char url[64];
    strata_cache_config cfg;
    /* the call is still waiting when its loop goes */
    unreachable_config(&cfg, "a7", port, url, sizeof url, 5000, 5000);
    cfg.redis.coherence = 0;
    cfg.log = rh_log_quiet;
    strata_cache *c;
    assert_int_equal(strata_cache_new(&cfg, &c), 0);
    strata_loop *lp;
    assert_int_equal(strata_loop_new(c, base, &lp), 0);
    strata_key k = {"ns", NULL, "k", 1};
    result get = {0};
    strata_value *v;
    assert_int_equal(strata_cache_get_async(lp, &k, on_get, &get, &v), STRATA_PENDING);
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(get.calls, 0);
    strata_loop_free(lp);
    assert_int_equal(get.calls, 1);
    assert_int_equal(get.status, STRATA_ETIMEDOUT);
    strata_cache_free(c);
    for (int i = 0; i < 4; i++)
        close(fills[i]);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_call_reaches_redis),
        cmocka_unit_test(test_convention_and_promotion),
        cmocka_unit_test(test_pipelined_on_one_connection),
        cmocka_unit_test(test_tags_two_rounds),
        cmocka_unit_test(test_stopped_redis_deadlines),
        cmocka_unit_test(test_full_queue_waits_for_room),
        cmocka_unit_test(test_free_loop_fails_pending),
        cmocka_unit_test(test_never_reachable_says_so),
        cmocka_unit_test(test_free_loop_fails_first_call),
    };
    return cmocka_run_group_tests_name("l2_async", tests, setup, teardown);
}
