/* test_l2_tls.c: the shared tier over TLS (rediss://) against a real redis-server --tls-port
 * with a CA and certificates made at test time: values shared by two instances through the pool
 * and through a loop's pipelined connection, coherence (the invalidation link) and a rate-limit
 * script over TLS; a certificate that does not verify (wrong CA, wrong name) is a Redis that is
 * down, named in last_error, while L1 serves; REDIS_TLS_INSECURE=1 skips verification; client
 * certificates when the server requires them; strata serve with rediss:// is healthy, and its
 * TLS settings that cannot be used are refused at start with exit 2; REDIS_TLS_INSECURE=1 is a
 * warning at start. */
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
#include <jansson.h>

#include <strata/strata.h>

#include "harness.h"
#include "origin_harness.h"
#include "server_harness.h"

#define BOUND_MS 500 /* the coherence window, with a generous margin */

static oh_tls tls;
static rh_server *srv;  /* TLS, client certificates optional */
static rh_server *mtls; /* TLS, client certificates required */

static int setup(void **state)
{
    (void)state;
    if (oh_make_tls(&tls) != 0)
        return -1;
    srv = rh_start_tls(tls.cert, tls.key, tls.ca, 0);
    mtls = rh_start_tls(tls.cert, tls.key, tls.ca, 1);
    return srv && mtls ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    rh_stop(srv);
    rh_stop(mtls);
    oh_free_tls(&tls);
    return 0;
}

static void tls_config(strata_cache_config *cfg, const char *prefix, const rh_server *s)
{
    assert_int_equal(strata_cache_config_init(cfg, NULL), 0);
    cfg->l1.max_memory = 8u << 20;
    cfg->l1.prefix = prefix;
    cfg->redis.url = rh_tls_url(s);
    cfg->redis.tls_ca_cert = tls.ca;
    cfg->redis.connect_timeout_ms = 2000; /* TLS handshakes under the sanitizers */
    cfg->redis.socket_timeout_ms = 1000;
    cfg->log = rh_log_quiet;
}

static strata_cache *open_cache(const strata_cache_config *cfg)
{
    strata_cache *c;
    assert_int_equal(strata_cache_new(cfg, &c), 0);
    return c;
}

static void read_value(strata_cache *c, const strata_key *k, char *out, size_t cap)
{
    strata_value *v;
    out[0] = '\0';
    if (strata_cache_get(c, k, &v) == 0) {
        snprintf(out, cap, "%.*s", (int)strata_value_len(v), (const char *)strata_value_data(v));
        strata_value_release(v);
    }
}

static const strata_set_opts opts = {.ttl_ms = 60000, .content_type = "text/plain"};

static void test_shared_and_coherent(void **state)
{
    (void)state;
    strata_cache_config cfg;
    tls_config(&cfg, "t1", srv);
    strata_cache *a = open_cache(&cfg), *b = open_cache(&cfg);
    assert_true(rh_wait_for(rh_cache_coherent, a, 5000));
    assert_true(rh_wait_for(rh_cache_coherent, b, 5000));
    strata_key k = {"ns", "acme", "k", 1};
    assert_int_equal(strata_cache_set(a, &k, "v1", 2, &opts), STRATA_OK);
    redisReply *r = rh_command(srv, "EXISTS t1:ns:acme:k"); /* over the plain port */
    assert_non_null(r);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    char got[32];
    read_value(b, &k, got, sizeof got); /* from Redis, kept in b's L1 */
    assert_string_equal(got, "v1");
    read_value(b, &k, got, sizeof got);
    assert_string_equal(got, "v1");
    /* A write on a drops b's copy: the invalidation came over the TLS link. */
    assert_int_equal(strata_cache_set(a, &k, "v2", 2, &opts), STRATA_OK);
    uint64_t t0 = rh_now_ms();
    do {
        read_value(b, &k, got, sizeof got);
    } while (strcmp(got, "v2") != 0 && rh_now_ms() - t0 < BOUND_MS && usleep(1000) == 0);
    assert_string_equal(got, "v2");
    strata_l2_stats st;
    strata_cache_l2_stats(b, &st);
    assert_true(st.available);
    assert_true(st.invalidations > 0);
    strata_cache_free(a);
    strata_cache_free(b);
}

typedef struct result {
    int calls, status;
    char value[32];
} result;

static void on_get(int status, strata_value *v, void *arg)
{
    result *r = arg;
    r->calls++;
    r->status = status;
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
}

static void run_until(struct event_base *base, result *rs, int n)
{
    uint64_t t0 = rh_now_ms();
    for (;;) {
        int done = 1;
        for (int i = 0; i < n; i++)
            done &= rs[i].calls > 0;
        if (done || rh_now_ms() - t0 > 5000)
            return;
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(200);
    }
}

/* A loop's pipelined connection: 64 sets then 64 gets in flight at once, over one TLS session
 * each; values larger than a TLS record go both ways. */
static void test_async_pipelined(void **state)
{
    (void)state;
    enum { N = 64, BIG = 40000 };
    strata_cache_config cfg;
    tls_config(&cfg, "t2", srv);
    cfg.redis.coherence = 0;
    strata_cache *a = open_cache(&cfg), *b = open_cache(&cfg);
    struct event_base *base = event_base_new();
    strata_loop *la, *lb;
    assert_int_equal(strata_loop_new(a, base, &la), 0);
    assert_int_equal(strata_loop_new(b, base, &lb), 0);
    char *big = malloc(BIG);
    memset(big, 'x', BIG);
    static result sets[N], gets[N];
    memset(sets, 0, sizeof sets), memset(gets, 0, sizeof gets);
    char names[N][8];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "k%d", i);
        strata_key k = {"ns", "acme", names[i], strlen(names[i])};
        int rc = i == 0 ? strata_cache_set_async(la, &k, big, BIG, &opts, on_done, &sets[i])
                        : strata_cache_set_async(la, &k, names[i], strlen(names[i]), &opts, on_done,
                                                 &sets[i]);
        assert_int_equal(rc, STRATA_PENDING);
    }
    run_until(base, sets, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(sets[i].calls, 1);
        assert_int_equal(sets[i].status, 0);
    }
    for (int i = 0; i < N; i++) {
        strata_key k = {"ns", "acme", names[i], strlen(names[i])};
        strata_value *v = NULL;
        assert_int_equal(strata_cache_get_async(lb, &k, on_get, &gets[i], &v), STRATA_PENDING);
    }
    run_until(base, gets, N);
    for (int i = 1; i < N; i++) {
        assert_int_equal(gets[i].status, 0);
        assert_string_equal(gets[i].value, names[i]);
    }
    assert_int_equal(gets[0].status, 0);
    strata_value *v;
    strata_key k0 = {"ns", "acme", "k0", 2};
    assert_int_equal(strata_cache_get(b, &k0, &v), 0);
    assert_int_equal(strata_value_len(v), BIG);
    strata_value_release(v);
    free(big);
    strata_loop_free(la);
    strata_loop_free(lb);
    event_base_free(base);
    strata_cache_free(a);
    strata_cache_free(b);
}

/* The rate limit is a script (EVALSHA, loaded on NOSCRIPT): decided by Redis over TLS. */
static void test_ratelimit_script(void **state)
{
    (void)state;
    strata_cache_config cfg;
    tls_config(&cfg, "t3", srv);
    strata_cache *a = open_cache(&cfg);
    strata_ratelimiter *rl;
    assert_int_equal(strata_ratelimiter_new(a, &rl), 0);
    strata_rl_params p = {.limit = 2, .period_ms = 60000};
    strata_rl_result r;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(strata_ratelimit(rl, "acme", "user:1", 6, &p, &r), 0);
        assert_int_equal(r.source, STRATA_RL_REDIS);
        assert_int_equal(r.allowed, i < 2);
    }
    strata_ratelimiter_free(rl);
    strata_cache_free(a);
}

/* A Redis that cannot be used (TLS refused): writes are L1 only, L1 serves, and last_error
 * holds needle. (Without coherence: with it, L1 is not trusted for shared keys before the
 * invalidation link has ever been up, test_l2_coherence.c.) */
static void expect_down(const strata_cache_config *cfg, const char *needle)
{
    strata_cache_config own = *cfg;
    own.redis.coherence = 0;
    strata_cache *c = open_cache(&own);
    strata_key k = {"ns", "acme", "down", 4};
    assert_int_equal(strata_cache_set(c, &k, "mine", 4, &opts), STRATA_OK_L1_ONLY);
    strata_value *v = NULL;
    assert_int_equal(strata_cache_get(c, &k, &v), STRATA_OK_L1_ONLY); /* from L1 */
    assert_int_equal(strata_value_len(v), 4);
    assert_memory_equal(strata_value_data(v), "mine", 4);
    strata_value_release(v);
    strata_l2_stats st;
    strata_cache_l2_stats(c, &st);
    assert_false(st.available);
    if (strstr(st.last_error, needle) == NULL)
        fail_msg("last_error \"%s\" does not say \"%s\"", st.last_error, needle);
    strata_cache_free(c);
}

static void test_wrong_ca_is_down(void **state)
{
    (void)state;
    strata_cache_config cfg;
    tls_config(&cfg, "t4", srv);
    cfg.redis.tls_ca_cert = tls.other_ca;
    expect_down(&cfg, "TLS handshake with redis failed: TLS: certificate verify failed");
    /* The name checked is the URL's host, or REDIS_TLS_SERVER_NAME. */
    tls_config(&cfg, "t4", srv);
    cfg.redis.tls_server_name = "redis.example.com";
    expect_down(&cfg, "certificate verify failed: hostname mismatch");
    cfg.redis.tls_server_name = "localhost";
    strata_cache *c = open_cache(&cfg);
    strata_key k = {"ns", "acme", "up", 2};
    assert_int_equal(strata_cache_set(c, &k, "v", 1, &opts), STRATA_OK);
    strata_cache_free(c);
}

static void test_insecure_skips_verification(void **state)
{
    (void)state;
    strata_cache_config cfg;
    tls_config(&cfg, "t5", srv);
    cfg.redis.tls_ca_cert = tls.other_ca;
    cfg.redis.tls_server_name = "redis.example.com";
    cfg.redis.tls_insecure = 1;
    strata_cache *c = open_cache(&cfg);
    strata_key k = {"ns", "acme", "k", 1};
    assert_int_equal(strata_cache_set(c, &k, "v", 1, &opts), STRATA_OK);
    strata_cache_free(c);
}

static void test_client_certificate(void **state)
{
    (void)state;
    strata_cache_config cfg;
    tls_config(&cfg, "t6", mtls);
    expect_down(&cfg, "TLS: redis refused the connection: certificate required");
    cfg.redis.tls_cert = tls.client_cert;
    cfg.redis.tls_key = tls.client_key;
    strata_cache *c = open_cache(&cfg);
    assert_true(rh_wait_for(rh_cache_coherent, c, 5000));
    strata_key k = {"ns", "acme", "k", 1};
    assert_int_equal(strata_cache_set(c, &k, "v", 1, &opts), STRATA_OK);
    strata_cache_free(c);
}

/* strata serve: healthy over rediss://; TLS settings it cannot use are refused with exit 2. */
static void test_serve(void **state)
{
    (void)state;
    char *url = NULL, *ca = NULL;
    assert_true(asprintf(&url, "REDIS_URL=%s", rh_tls_url(srv)) > 0);
    assert_true(asprintf(&ca, "REDIS_TLS_CA_CERT=%s", tls.ca) > 0);
    const char *env[] = {url, ca, NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    SH_CALL_EXPECT(s, "PUT", "/v1/cache/tls/k", NULL, NULL, "text/plain", "v", 204);
    sh_resp *r = sh_call(s, "GET", "/cache/health", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    json_t *j = sh_resp_json(r);
    assert_true(json_is_true(json_object_get(j, "redis_available")));
    json_decref(j);
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(s), 0); /* and frees s */

    /* REDIS_TLS_INSECURE=1 (with a CA that signed nothing): it works, and says so at start. */
    char *other = NULL;
    assert_true(asprintf(&other, "REDIS_TLS_CA_CERT=%s", tls.other_ca) > 0);
    const char *insecure_env[] = {url, other, "REDIS_TLS_INSECURE=1", NULL};
    s = sh_start(insecure_env, NULL);
    assert_non_null(s);
    SH_CALL_EXPECT(s, "PUT", "/v1/cache/tls/k", NULL, NULL, "text/plain", "v", 204);
    assert_true(sh_log_contains(s, "REDIS_TLS_INSECURE=1: Redis' certificate and name are not "
                                   "verified"));
    assert_int_equal(sh_stop_check(s), 0);

    const char *missing[] = {url, "REDIS_TLS_CA_CERT=/nonexistent/ca.pem", NULL};
    const char *half[] = {url, ca, "REDIS_TLS_CERT=/etc/hostname", NULL};
    const char *insecure[] = {url, "REDIS_TLS_INSECURE=maybe", NULL};
    const char *const *bad[] = {missing, half, insecure};
    const char *names[] = {"REDIS_TLS_CA_CERT=/nonexistent/ca.pem: cannot read the file",
                           "REDIS_TLS_KEY=: REDIS_TLS_CERT and REDIS_TLS_KEY go together",
                           "REDIS_TLS_INSECURE=maybe: expected true or false"};
    for (size_t i = 0; i < 3; i++) {
        char *out = NULL;
        int st = sh_run(bad[i], NULL, 10000, &out, NULL);
        if (st != 2 || strstr(out, names[i]) == NULL)
            fail_msg("exit %d, expected 2 and \"%s\":\n%s", st, names[i], out);
        free(out);
    }
    free(url);
    free(ca);
    free(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_and_coherent),
        cmocka_unit_test(test_async_pipelined),
        cmocka_unit_test(test_ratelimit_script),
        cmocka_unit_test(test_wrong_ca_is_down),
        cmocka_unit_test(test_insecure_skips_verification),
        cmocka_unit_test(test_client_certificate),
        cmocka_unit_test(test_serve),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
