/* test_cluster_map.c: Redis Cluster's routing pieces (src/lib/redis/cluster_map.c) without a
 * cluster: key slots (core/slot.c) against the values Redis itself gives (CLUSTER KEYSLOT), hash
 * tags, a CLUSTER SLOTS answer read into a map (an empty announced host, ranges, refusals), the
 * routing table, and MOVED / ASK. Routing on a real 3-primary cluster is
 * tests/integration/test_redis_cluster.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <strata/errors.h>

#include "core/slot.h"
#include "redis/cluster_map.h"

static unsigned slot_of(const char *k)
{
    return strata__key_slot(k, strlen(k));
}

/* The values redis-server 7 answers to CLUSTER KEYSLOT for the same keys. */
static void test_slots_match_redis(void **state)
{
    (void)state;
    assert_int_equal(slot_of("foo"), 12182);
    assert_int_equal(slot_of("bar"), 5061);
    assert_int_equal(slot_of("123456789"), 12739); /* CRC16/XMODEM's check value 0x31C3 */
    assert_int_equal(slot_of(""), 0);
    assert_int_equal(slot_of("strata:default:_:user:42"), slot_of("strata:default:_:user:42"));
}

static void test_hash_tags(void **state)
{
    (void)state;
    assert_int_equal(slot_of("{user1000}.following"), slot_of("user1000"));
    assert_int_equal(slot_of("a{user1000}b"), slot_of("{user1000}.followers"));
    assert_int_equal(slot_of("foo{}{bar}"), slot_of("foo{}{bar}")); /* empty tag: whole key */
    assert_int_not_equal(slot_of("foo{}{bar}"), slot_of("bar"));
    assert_int_equal(slot_of("foo{{bar}}zap"), slot_of("{bar")); /* from the first '{' */
    assert_int_equal(slot_of("foo{bar}{zap}"), slot_of("bar"));  /* the first tag only */
    assert_int_equal(slot_of("{unclosed"), slot_of("{unclosed"));
    const char bin[] = {'x', '{', '\0', 'y', '}', 'z'};
    const char tag[] = {'\0', 'y'};
    assert_int_equal(strata__key_slot(bin, sizeof bin), strata__key_slot(tag, 2));
    (void)tag;
}

/* Builds a reply as hiredis would from RESP text. */
static redisReply *resp_n(const char *text, size_t len)
{
    redisReader *rd = redisReaderCreate();
    redisReaderFeed(rd, text, len);
    void *r = NULL;
    assert_int_equal(redisReaderGetReply(rd, &r), REDIS_OK);
    assert_non_null(r);
    redisReaderFree(rd);
    return r;
}

static redisReply *resp(const char *text)
{
    return resp_n(text, strlen(text));
}

static void test_map_from_cluster_slots(void **state)
{
    (void)state;
    /* two ranges on one primary (one announced with an empty host), one on another */
    redisReply *r = resp("*3\r\n"
                         "*4\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n"
                         "*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$2\r\nr1\r\n"
                         "*3\r\n:5461\r\n:10922\r\n*2\r\n$0\r\n\r\n:7001\r\n"
                         "*3\r\n:10923\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:7000\r\n");
    cluster_map *m = malloc(sizeof *m);
    const char *why = NULL;
    assert_int_equal(strata__cluster_map_parse(r, "10.1.1.1", m, &why), 0);
    assert_int_equal(m->nprimaries, 2);
    assert_int_equal(m->covered, CLUSTER_SLOTS);
    assert_string_equal(m->primary[0].host, "127.0.0.1");
    assert_int_equal(m->primary[0].port, 7000);
    assert_string_equal(m->primary[1].host, "10.1.1.1"); /* the empty host: the one asked */
    assert_int_equal(m->primary[1].port, 7001);
    assert_int_equal(m->slot[0], 0);
    assert_int_equal(m->slot[5461], 1);
    assert_int_equal(m->slot[10922], 1);
    assert_int_equal(m->slot[16383], 0);
    freeReplyObject(r);

    /* a cluster being set up: part of the slots has no primary */
    r = resp("*1\r\n*3\r\n:100\r\n:199\r\n*2\r\n$1\r\nh\r\n:1\r\n");
    assert_int_equal(strata__cluster_map_parse(r, "x", m, NULL), 0);
    assert_int_equal(m->covered, 100);
    assert_int_equal(m->slot[99], CLUSTER_NO_NODE);
    assert_int_equal(m->slot[150], 0);
    freeReplyObject(r);
    free(m);
}

static void test_map_refuses_with_a_reason(void **state)
{
    (void)state;
    static const char *bad[] = {
        "+OK\r\n",
        "*1\r\n:1\r\n",
        "*1\r\n*2\r\n:0\r\n:1\r\n",
        "*1\r\n*3\r\n:5\r\n:4\r\n*2\r\n$1\r\nh\r\n:1\r\n",     /* end before start */
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n", /* past the last slot */
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:0\r\n",     /* port 0 */
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n:1\r\n$1\r\nh\r\n",     /* port and host swapped */
        "*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\nh\r\n",           /* no port */
    };
    cluster_map *m = malloc(sizeof *m);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        redisReply *r = resp(bad[i]);
        const char *why = NULL;
        assert_int_equal(strata__cluster_map_parse(r, "x", m, &why), STRATA_EPROTO);
        assert_non_null(why);
        assert_non_null(strstr(why, "CLUSTER SLOTS"));
        freeReplyObject(r);
    }
    static const char nul[] = "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$3\r\na\0b\r\n:1\r\n";
    redisReply *r = resp_n(nul, sizeof nul - 1); /* a NUL in the host */
    assert_int_equal(strata__cluster_map_parse(r, "x", m, NULL), STRATA_EPROTO);
    freeReplyObject(r);
    free(m);
}

static void test_redirects(void **state)
{
    (void)state;
    int ask = -1;
    unsigned slot = 0;
    cluster_addr to;
    redisReply *r = resp("-MOVED 3999 127.0.0.1:6381\r\n");
    assert_int_equal(strata__cluster_redirect(r, &ask, &slot, &to), 1);
    assert_int_equal(ask, 0);
    assert_int_equal(slot, 3999);
    assert_string_equal(to.host, "127.0.0.1");
    assert_int_equal(to.port, 6381);
    freeReplyObject(r);
    r = resp("-ASK 16383 ::1:7002\r\n");
    assert_int_equal(strata__cluster_redirect(r, &ask, &slot, &to), 1);
    assert_int_equal(ask, 1);
    assert_string_equal(to.host, "::1");
    assert_int_equal(to.port, 7002);
    freeReplyObject(r);
    r = resp("-MOVED 12 :7005\r\n"); /* an empty host: the node that answered */
    assert_int_equal(strata__cluster_redirect(r, &ask, &slot, &to), 1);
    assert_string_equal(to.host, "");
    freeReplyObject(r);
    static const char *not_one[] = {
        "-ERR MOVED 1 h:1\r\n", "-MOVED 16384 h:1\r\n", "-MOVED x h:1\r\n", "-MOVED 1 h\r\n",
        "-MOVED 1 h:0\r\n",     "-ASK 1 h:70000\r\n",   "+MOVED 1 h:1\r\n", "-MOVED 1 h:1x\r\n"};
    for (size_t i = 0; i < sizeof not_one / sizeof *not_one; i++) {
        r = resp(not_one[i]);
        assert_int_equal(strata__cluster_redirect(r, &ask, &slot, &to), 0);
        freeReplyObject(r);
    }
}

static void test_routing_table(void **state)
{
    (void)state;
    cluster_table *t = malloc(sizeof *t);
    cluster_map *m = malloc(sizeof *m);
    strata__cluster_table_init(t);
    assert_int_equal(strata__cluster_table_route(t, 5), -1); /* no map yet */
    redisReply *r = resp("*2\r\n*3\r\n:0\r\n:8191\r\n*2\r\n$1\r\na\r\n:1\r\n"
                         "*3\r\n:8192\r\n:16383\r\n*2\r\n$1\r\nb\r\n:2\r\n");
    assert_int_equal(strata__cluster_map_parse(r, "x", m, NULL), 0);
    freeReplyObject(r);
    assert_int_equal(strata__cluster_table_install(t, m), 1);
    assert_int_equal(strata__cluster_table_install(t, m), 0); /* the same map: nothing changed */
    int a = strata__cluster_table_route(t, 0), b = strata__cluster_table_route(t, 16383);
    assert_string_equal(strata__cluster_table_addr(t, a)->host, "a");
    assert_string_equal(strata__cluster_table_addr(t, b)->host, "b");
    int p[CLUSTER_PRIMARIES];
    assert_int_equal(strata__cluster_table_primaries(t, p, CLUSTER_PRIMARIES), 2);
    /* a failover: b's slots go to c; b keeps its index (a loop's pipe to it stays valid) */
    r = resp("*2\r\n*3\r\n:0\r\n:8191\r\n*2\r\n$1\r\na\r\n:1\r\n"
             "*3\r\n:8192\r\n:16383\r\n*2\r\n$1\r\nc\r\n:3\r\n");
    assert_int_equal(strata__cluster_map_parse(r, "x", m, NULL), 0);
    freeReplyObject(r);
    assert_int_equal(strata__cluster_table_install(t, m), 1);
    int c = strata__cluster_table_route(t, 9000);
    assert_int_not_equal(c, b);
    assert_string_equal(strata__cluster_table_addr(t, c)->host, "c");
    assert_string_equal(strata__cluster_table_addr(t, b)->host, "b");
    cluster_addr b_again = {"b", 2};
    assert_int_equal(strata__cluster_table_node(t, &b_again), b);
    /* the bound: past CLUSTER_NODES_MAX nodes, no new index */
    for (int i = 0; i < CLUSTER_NODES_MAX; i++) {
        cluster_addr n = {"n", 1000 + i};
        (void)strata__cluster_table_node(t, &n);
    }
    cluster_addr one_more = {"z", 1};
    assert_int_equal(strata__cluster_table_node(t, &one_more), -1);
    strata__cluster_table_destroy(t);
    free(t), free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_match_redis),
        cmocka_unit_test(test_hash_tags),
        cmocka_unit_test(test_map_from_cluster_slots),
        cmocka_unit_test(test_map_refuses_with_a_reason),
        cmocka_unit_test(test_redirects),
        cmocka_unit_test(test_routing_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
