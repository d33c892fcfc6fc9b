/* test_harness_topology.c: the harness' topologies themselves (harness.h,
 * STRATA_TEST_REDIS_TOPOLOGY), run as the L2 suite runs: plain, and again as integration/tls/ and
 * integration/cluster/. The suite's tests trust rh_start, rh_apply, rh_command and the faults to
 * mean the same under each topology, so those promises are checked here:
 * - rh_apply points strata at the topology started: a write is shared, and the cache says which
 *   topology it uses, with TLS under tls and every primary under cluster.
 * - rh_command sees the whole keyspace: keys routed to their nodes (a cluster's keys spread over
 *   every primary), DBSIZE and KEYS over all of them, multi-key EXISTS and DEL, FLUSHALL.
 * - rh_kill, rh_restart, rh_pause and rh_resume act on every node, and Redis is usable again
 *   after the last two.
 * - rh_apply_port says the topology's settings for a place where nothing answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define NKEYS 60

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

static long long int_of(redisReply *r)
{
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

static void ok_of(redisReply *r)
{
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
}

static void need_own_server(void)
{
    if (rh_is_external(srv)) {
        print_message("skipped: the external server is not ours to flush, kill or pause\n");
        skip();
    }
}

static void test_apply_matches_topology(void **state)
{
    (void)state;
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    cfg.l1.prefix = "ht";
    rh_apply(srv, &cfg.redis);
    cfg.log = rh_log_quiet;
    strata_cache *c;
    assert_int_equal(strata_cache_new(&cfg, &c), 0);
    assert_true(rh_wait_for(rh_cache_coherent, c, 10000));
    strata_key k = {"ns", NULL, "applied", 7};
    assert_int_equal(strata_cache_set(c, &k, "v", 1, NULL), STRATA_OK);
    assert_int_equal(int_of(rh_command(srv, "EXISTS ht:ns:default:applied")), 1);
    strata_l2_stats st;
    strata_cache_l2_stats(c, &st);
    int t = rh_topology();
    assert_string_equal(st.topology, t == RH_CLUSTER ? "cluster" : "single");
    assert_int_equal(st.tls, t == RH_TLS);
    assert_int_equal(st.nodes, (unsigned)rh_nodes(srv));
    assert_int_equal(rh_nodes(srv), t == RH_CLUSTER ? 3 : 1);
    if (t == RH_TLS) {
        assert_non_null(cfg.redis.tls_ca_cert);
        assert_int_equal(cfg.redis.tls_insecure, 0); /* the certificate is verified */
        assert_int_equal(strncmp(cfg.redis.url, "rediss://", 9), 0);
    }
    strata_cache_free(c);
}

static void test_whole_keyspace_commands(void **state)
{
    (void)state;
    need_own_server();
    ok_of(rh_command(srv, "FLUSHALL"));
    for (int i = 0; i < NKEYS; i++)
        ok_of(rh_command(srv, "SET hk:%d v%d", i, i));
    redisReply *r = rh_command(srv, "GET hk:%d", 17);
    assert_non_null(r);
    assert_string_equal(r->str, "v17");
    freeReplyObject(r);
    assert_int_equal(int_of(rh_command(srv, "DBSIZE")), NKEYS);
    long long sum = 0;
    for (int i = 0; i < rh_nodes(srv); i++) {
        long long n = int_of(rh_command(rh_node(srv, i), "DBSIZE"));
        if (rh_nodes(srv) > 1) /* routed by slot: every primary holds some, none all */
            assert_true(n > 0 && n < NKEYS);
        sum += n;
    }
    assert_int_equal(sum, NKEYS);
    r = rh_command(srv, "KEYS hk:*");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, NKEYS);
    int seen[NKEYS] = {0};
    for (size_t i = 0; i < r->elements; i++) {
        int n = atoi(r->element[i]->str + 3);
        assert_true(n >= 0 && n < NKEYS);
        assert_int_equal(seen[n]++, 0); /* each key once */
    }
    freeReplyObject(r);
    assert_int_equal(int_of(rh_command(srv, "EXISTS hk:0 hk:1 hk:2 hk:none")), 3);
    assert_int_equal(int_of(rh_command(srv, "DEL hk:0 hk:1 hk:none")), 2);
    assert_int_equal(int_of(rh_command(srv, "DBSIZE")), NKEYS - 2);
    ok_of(rh_command(srv, "FLUSHALL"));
    assert_int_equal(int_of(rh_command(srv, "DBSIZE")), 0);
    r = rh_command(srv, "INFO");
    assert_non_null(r);
    /* one server's facts: a cluster's are asked of each node */
    assert_int_equal(r->type, rh_nodes(srv) > 1 ? REDIS_REPLY_ERROR : REDIS_REPLY_STRING);
    freeReplyObject(r);
}

/* The state letter of process pid (/proc/pid/stat), or '?'. */
static char proc_state(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f != NULL)
        fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' ? p[2] : '?';
}

static int every_node_pings(void)
{
    for (int i = 0; i < rh_nodes(srv); i++) {
        redisReply *r = rh_command(rh_node(srv, i), "PING");
        int ok = r != NULL && r->type == REDIS_REPLY_STATUS;
        if (r != NULL)
            freeReplyObject(r);
        if (!ok)
            return 0;
    }
    return 1;
}

static void test_faults_act_on_every_node(void **state)
{
    (void)state;
    need_own_server();
    ok_of(rh_command(srv, "SET hf:k before"));
    assert_int_equal(rh_kill(srv), 0);
    assert_int_equal(rh_pid(srv), -1);
    for (int i = 0; i < rh_nodes(srv); i++) {
        assert_int_equal(rh_pid(rh_node(srv, i)), -1);
        assert_null(rh_command(rh_node(srv, i), "PING"));
    }
    assert_null(rh_command(srv, "GET hf:k"));
    assert_int_equal(rh_restart(srv), 0); /* back, usable, and empty */
    assert_true(rh_pid(srv) > 0);
    assert_true(every_node_pings());
    assert_int_equal(int_of(rh_command(srv, "DBSIZE")), 0);
    for (int i = 0; i < NKEYS; i++) /* every slot served again */
        ok_of(rh_command(srv, "SET hf:%d v", i));

    assert_int_equal(rh_pause(srv), 0);
    for (int i = 0; i < rh_nodes(srv); i++)
        assert_int_equal(proc_state(rh_pid(rh_node(srv, i))), 'T');
    assert_int_equal(rh_resume(srv), 0);
    for (int i = 0; i < rh_nodes(srv); i++)
        assert_true(proc_state(rh_pid(rh_node(srv, i))) != 'T');
    assert_true(every_node_pings());
    for (int i = 0; i < NKEYS; i++)
        ok_of(rh_command(srv, "SET hf:%d w", i));
    assert_int_equal(int_of(rh_command(srv, "DBSIZE")), NKEYS);
}

static void test_apply_port_nothing_there(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0); /* bound, never listening: refused */
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    strata_cache_config cfg;
    assert_int_equal(strata_cache_config_init(&cfg, NULL), 0);
    cfg.l1.prefix = "hp";
    char buf[64];
    rh_apply_port(ntohs(sa.sin_port), &cfg.redis, buf, sizeof buf);
    cfg.redis.connect_timeout_ms = 100;
    cfg.log = rh_log_quiet;
    strata_cache *c;
    assert_int_equal(strata_cache_new(&cfg, &c), 0);
    strata_key k = {"ns", NULL, "k", 1};
    assert_int_equal(strata_cache_set(c, &k, "v", 1, NULL), STRATA_OK_L1_ONLY);
    strata_l2_stats st;
    strata_cache_l2_stats(c, &st);
    assert_string_equal(st.topology, rh_topology() == RH_CLUSTER ? "cluster" : "single");
    assert_int_equal(st.tls, rh_topology() == RH_TLS);
    strata_cache_free(c);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_matches_topology),
        cmocka_unit_test(test_whole_keyspace_commands),
        cmocka_unit_test(test_faults_act_on_every_node),
        cmocka_unit_test(test_apply_port_nothing_there),
    };
    return cmocka_run_group_tests_name("harness_topology", tests, setup, teardown);
}
