/* test_server_proxy_cluster.c: the caching proxy under failure and load: origins that die, hang
 * and reset, crowds on one cold URL (one instance, then two sharing a real Redis), a client that
 * does not read, and SIGHUP reloads while requests flow. Real processes only: strata serve, the
 * test origin (tests/origin/strata_test_origin.c), redis-server.
 *
 * A failing origin with a stale copy within stale-if-error answers STALE (Cache-Status
 * detail=stale-if-error); without one, 502 origin_unavailable, or 504 origin_timeout past the
 * origin's first_byte_timeout, never stored. After breaker_failures failures in a row the origin
 * is not asked for 5 s: 502 at once, even when it is back, then one request tries and closes the
 * breaker. 200 clients on one instance, and 1000 over two instances sharing Redis, cost the origin
 * one request; the second instance answers from Redis what the first fetched. A reset mid-body
 * cuts the client's answer and stores nothing; a client that does not read holds back no one
 * else. A new route comes with SIGHUP; a bad file is refused and the old routes keep answering.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "it_tmp.h"
#include "proxy_harness.h"

#define CC1  "X-Origin-Header: Cache-Control: max-age=1"
#define CC60 "X-Origin-Header: Cache-Control: max-age=60"
#define SIE  "X-Origin-Header: Cache-Control: max-age=1, stale-if-error=60"

static char *dir;

/* GET path; asserts a JSON error with that status and code; returns the time it took. */
static long expect_error(const sh_server *s, const char *path, long status, const char *code)
{
    sh_resp *r = px_get(s, "GET", path, CC60, (const char *)NULL);
    SH_EXPECT_ERROR(r, status, code);
    const char *cs = sh_resp_header(r, "Cache-Status");
    if (cs != NULL && strstr(cs, "stored") != NULL)
        fail_msg("%s: an error made by strata was stored: %s", r->what, cs);
    long ms = r->elapsed_ms;
    sh_resp_free(r);
    return ms;
}

/* GET path answered by its stale copy because the origin failed: asked now (fwd=stale, the
 * origin's failure as fwd-status, detail=stale-if-error), or not asked again because a copy was
 * kept after a failure a moment ago (a hit on that copy, docs/api.md). */
static void expect_stale_if_error(const sh_server *s, const char *path, const char *body, int asked)
{
    sh_resp *r = px_get(s, "GET", path, "X-Origin-Body: not this", (const char *)NULL);
    px_expect_body(r, body);
    px_expect_xcache(r, "STALE");
    if (asked) {
        assert_true(px_header_has(r, "Cache-Status", "strata; fwd=stale; fwd-status="));
        assert_true(px_header_has(r, "Cache-Status", "; detail=stale-if-error"));
    } else {
        assert_true(px_header_has(r, "Cache-Status", "strata; hit; ttl=-"));
    }
    sh_resp_free(r);
}

/* ---- 9. stale-if-error, 502, 504 ----------------------------------------------------------- */

static void test_origin_down_stale_if_error_502_504(void **state)
{
    (void)state;
    oh_origin *o = oh_start(NULL);
    assert_non_null(o);
    sh_server *up = px_start_upstream(o, NULL);
    assert_non_null(up);
    char *yaml = it_xasprintf("origins: [{name: slow, url: 'http://127.0.0.1:%d',"
                              " first_byte_timeout: 500ms}]\n"
                              "routes: [{name: all, match: {methods: ['*'], path: '/*'}}]\n",
                              oh_port(o));
    char *path = px_write_file(dir, "timeout.yaml", yaml);
    sh_server *cf = px_start_config(path, NULL);
    assert_non_null(cf);

    px_align_second();
    PX_GET_EXPECT(up, "/sie/kept", "kept", "MISS", SIE, "X-Origin-Body: kept");
    PX_GET_EXPECT(up, "/sie/plain", "plain", "MISS", CC1, "X-Origin-Body: plain");
    PX_GET_EXPECT(cf, "/slow/kept", "slow kept", "MISS", SIE, "X-Origin-Body: slow kept");
    sh_sleep_ms(1200); /* all three are stale now */

    /* the origin hangs: past first_byte_timeout, 504; a stale copy answers instead */
    assert_int_equal(oh_pause(o), 0);
    long ms = expect_error(cf, "/slow/new", 504, "origin_timeout");
    if (ms < 400 || ms > 3000)
        fail_msg("the 504 came after %ld ms; first_byte_timeout is 500 ms", ms);
    expect_stale_if_error(cf, "/slow/kept", "slow kept", 1);
    assert_int_equal(oh_resume(o), 0);
    PX_GET_EXPECT(cf, "/slow/new", "back", "MISS", CC60, "X-Origin-Body: back");

    /* the origin is gone: stale-if-error, else 502 (and it was not stored) */
    assert_int_equal(oh_kill(o), 0);
    expect_stale_if_error(up, "/sie/kept", "kept", 1);
    expect_stale_if_error(up, "/sie/kept", "kept", 0);
    expect_error(up, "/sie/plain", 502, "origin_unavailable");
    expect_error(up, "/sie/never", 502, "origin_unavailable");
    assert_true(sh_healthy(up));
    assert_int_equal(oh_restart(o), 0);
    PX_GET_EXPECT(up, "/sie/plain", "plain again", "MISS", CC60, "X-Origin-Body: plain again");
    PX_GET_EXPECT(up, "/sie/never", "now", "MISS", CC60, "X-Origin-Body: now");
    /* the copy kept after the failure answers for its error TTL (30 s) without asking */
    unsigned long before = px_origin_requests(o);
    expect_stale_if_error(up, "/sie/kept", "kept", 0);
    assert_int_equal(px_origin_requests(o), before);
    assert_int_equal(sh_stop_check(up), 0);
    assert_int_equal(sh_stop_check(cf), 0);
    oh_stop(o);
    free(path);
    free(yaml);
}

/* ---- 10. the breaker ----------------------------------------------------------------------- */

static void test_breaker_opens_then_lets_one_try(void **state)
{
    (void)state;
    oh_origin *o = oh_start(NULL);
    assert_non_null(o);
    char *yaml = it_xasprintf("origins: [{name: flaky, url: 'http://127.0.0.1:%d',"
                              " breaker_failures: 3}]\n"
                              "routes: [{name: all, match: {methods: ['*'], path: '/*'}}]\n",
                              oh_port(o));
    char *path = px_write_file(dir, "breaker.yaml", yaml);
    sh_server *s = px_start_config(path, NULL);
    assert_non_null(s);
    PX_GET_EXPECT(s, "/br/warm", "up", "MISS", "X-Origin-Body: up");
    assert_int_equal(oh_kill(o), 0);
    for (int i = 0; i < 3; i++)
        expect_error(s, "/br/x", 502, "origin_unavailable");
    long opened = sh_now_ms();
    assert_true(
        px_wait_log(s, "proxy: origin flaky failed 3 times in a row: its breaker is open", 3000));
    /* open: 502 without asking (the body says the breaker; the origin's count below stays 0),
     * even once the origin is back */
    sh_resp *r = px_get(s, "GET", "/br/x", (const char *)NULL);
    SH_EXPECT_ERROR(r, 502, "origin_unavailable");
    assert_true(px_contains_ci(r->body, r->body_len, "circuit breaker"));
    sh_resp_free(r);
    assert_int_equal(oh_restart(o), 0);
    r = px_get(s, "GET", "/br/x", (const char *)NULL);
    SH_EXPECT_ERROR(r, 502, "origin_unavailable");
    assert_true(px_contains_ci(r->body, r->body_len, "circuit breaker"));
    sh_resp_free(r);
    assert_int_equal(px_origin_requests(o), 0);
    /* after 5 s one request tries, succeeds, and closes it */
    long t;
    for (;;) {
        r = px_get(s, "GET", "/br/x", "X-Origin-Body: closed", (const char *)NULL);
        t = sh_now_ms() - opened;
        long st = r->status;
        if (st != 200)
            SH_EXPECT_ERROR(r, 502, "origin_unavailable");
        sh_resp_free(r);
        if (st == 200)
            break;
        if (t > 9000)
            fail_msg("the breaker is still open %ld ms after it opened", t);
        sh_sleep_ms(100);
    }
    if (t < 4000)
        fail_msg("the origin was asked again %ld ms after the breaker opened (5 s)", t);
    assert_int_equal(px_origin_requests(o), 1);
    assert_true(px_wait_log(s, "proxy: origin flaky answers again: its breaker is closed", 2000));
    PX_GET_EXPECT(s, "/br/y", "fine", "MISS", "X-Origin-Body: fine");
    assert_int_equal(sh_stop_check(s), 0);
    oh_stop(o);
    free(path);
    free(yaml);
}

/* ---- 14. coalescing ------------------------------------------------------------------------ */

typedef struct crowd {
    pthread_t thread;
    int port;
    const char *path;
    const char *const *headers;
    pthread_barrier_t *go;
    long status;
    char xcache[32];
    int body_ok;
} crowd;

static void *crowd_main(void *arg)
{
    crowd *c = arg;
    pthread_barrier_wait(c->go);
    sh_resp *r = sh_request_port(c->port, "GET", c->path, c->headers, NULL, 0, 20000);
    c->status = r->status;
    const char *x = sh_resp_header(r, "X-Cache");
    snprintf(c->xcache, sizeof c->xcache, "%s", x ? x : "(none)");
    c->body_ok = strcmp(r->body, "one answer") == 0;
    sh_resp_free(r);
    return NULL;
}

/* n clients at once on path, client i on ports[i % nports]; asserts every answer and that the
 * origin was asked once; returns how many were HIT-L2. */
static int run_crowd(oh_origin *o, const int *ports, int nports, int n, const char *path,
                     const char *const *headers)
{
    crowd *c = calloc((size_t)n, sizeof *c);
    assert_non_null(c);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)n);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    unsigned long before = px_origin_requests(o);
    for (int i = 0; i < n; i++) {
        c[i] = (crowd){.port = ports[i % nports], .path = path, .headers = headers, .go = &go};
        assert_int_equal(pthread_create(&c[i].thread, &attr, crowd_main, &c[i]), 0);
    }
    for (int i = 0; i < n; i++)
        pthread_join(c[i].thread, NULL);
    pthread_attr_destroy(&attr);
    pthread_barrier_destroy(&go);
    int miss = 0, l2 = 0, bad = 0;
    for (int i = 0; i < n; i++) {
        int known = strcmp(c[i].xcache, "HIT-COALESCED") == 0 ||
                    strcmp(c[i].xcache, "HIT-L1") == 0 || strcmp(c[i].xcache, "HIT-L2") == 0;
        miss += strcmp(c[i].xcache, "MISS") == 0;
        l2 += strcmp(c[i].xcache, "HIT-L2") == 0;
        if (c[i].status != 200 || !c[i].body_ok || (!known && strcmp(c[i].xcache, "MISS") != 0)) {
            if (bad++ < 5)
                fprintf(stderr, "client %d (port %d): HTTP %ld, X-Cache %s, body %s\n", i,
                        c[i].port, c[i].status, c[i].xcache, c[i].body_ok ? "ok" : "wrong");
        }
    }
    unsigned long asked = px_origin_requests(o) - before;
    free(c);
    if (bad > 0 || miss != 1 || asked != 1)
        fail_msg("%d clients on %d instance(s): %d wrong answers, %d MISS, the origin asked %lu "
                 "times (expected 0, 1, 1)",
                 n, nports, bad, miss, asked);
    return l2;
}

static void test_one_instance_coalesces_200_clients(void **state)
{
    (void)state;
    oh_origin *o = oh_start(NULL);
    assert_non_null(o);
    sh_server *s = px_start_upstream(o, NULL);
    assert_non_null(s);
    const char *const h[] = {CC60, "X-Origin-Delay-Ms: 500", "X-Origin-Body: one answer", NULL};
    int port = sh_port(s);
    run_crowd(o, &port, 1, 200, "/co/cold", h);
    assert_int_equal(sh_stop_check(s), 0);
    oh_stop(o);
}

static void test_two_instances_share_one_origin_request(void **state)
{
    (void)state;
    rh_server *redis = rh_start(NULL);
    assert_non_null(redis);
    oh_origin *o = oh_start(NULL);
    assert_non_null(o);
    char *url = it_xasprintf("REDIS_URL=%s", rh_url(redis));
    /* A Redis call slower than REDIS_SOCKET_TIMEOUT (0.25 s) falls back to this instance's own
     * lease, by design (lease.h); 1000 clients on two cores under the sanitizers can take that
     * long, and then each instance asks once. What is checked here is coalescing through Redis,
     * so Redis gets the time a loaded machine needs (as test_server_drain does). */
    const char *env[] = {"STRATA_WORKERS=2", url, "REDIS_SOCKET_TIMEOUT=2", NULL};
    sh_server *a = px_start_upstream(o, env), *b = px_start_upstream(o, env);
    assert_non_null(a);
    assert_non_null(b);
    /* the key holds the Host: both instances must see the same one */
    const char *const h[] = {"Host: shared.example", CC60, "X-Origin-Delay-Ms: 500",
                             "X-Origin-Body: one answer", NULL};
    int ports[2] = {sh_port(a), sh_port(b)};
    run_crowd(o, ports, 2, 1000, "/co/shared", h);

    /* what a fetched, b answers from Redis */
    unsigned long before = px_origin_requests(o);
    const char *const h2[] = {"Host: shared.example", CC60, "X-Origin-Body: from a", NULL};
    sh_resp *r = px_send(a, "GET", "/co/l2", NULL, 0, h2);
    px_expect_body(r, "from a");
    px_expect_xcache(r, "MISS");
    sh_resp_free(r);
    const char *const h3[] = {"Host: shared.example", "X-Origin-Body: not this", NULL};
    r = px_send(b, "GET", "/co/l2", NULL, 0, h3);
    px_expect_body(r, "from a");
    px_expect_xcache(r, "HIT-L2");
    assert_true(px_header_has(r, "Cache-Status", "strata; hit"));
    sh_resp_free(r);
    assert_int_equal(px_origin_requests(o) - before, 1);
    assert_int_equal(sh_stop_check(a), 0);
    assert_int_equal(sh_stop_check(b), 0);
    oh_stop(o);
    rh_stop(redis);
    free(url);
}

/* Reads path on s until X-Cache is want, while it is still HIT-L1 (an invalidation from Redis
 * is on its way to s's memory: within the coherence bound), for at most 5 s. */
static void until_xcache(const sh_server *s, const char *path, const char *const *h,
                         const char *want)
{
    long t0 = sh_now_ms();
    for (;;) {
        sh_resp *r = px_send(s, "GET", path, NULL, 0, h);
        const char *x = sh_resp_header(r, "X-Cache");
        int done = x != NULL && strcmp(x, want) == 0;
        if (!done && (x == NULL || strcmp(x, "HIT-L1") != 0))
            fail_msg("%s answered X-Cache %s (expected %s, or HIT-L1 until the invalidation "
                     "arrives)",
                     path, x ? x : "(none)", want);
        sh_resp_free(r);
        if (done)
            return;
        if (sh_now_ms() - t0 > 5000)
            fail_msg("%s still answers HIT-L1 5 s later (expected %s)", path, want);
        sh_sleep_ms(20);
    }
}

/* Waits until s's memory is coherent with Redis (its invalidation link subscribed): before
 * that, reads from Redis are not kept in memory (docs/architecture.md, "Coherence"). */
static void wait_coherent(const sh_server *s)
{
    long t0 = sh_now_ms();
    for (;;) {
        sh_resp *r = sh_request(s, "GET", "/cache/health", NULL, NULL, 0);
        int ok = r->body != NULL && strstr(r->body, "\"coherent\":true") != NULL;
        sh_resp_free(r);
        if (ok)
            return;
        if (sh_now_ms() - t0 > 10000)
            fail_msg("the server's memory is not coherent with Redis 10 s after its start");
        sh_sleep_ms(50);
    }
}

/* Purges reach every instance: what instance a purges (by URL, by tag, by pattern; hard or
 * soft), instance b no longer answers from its memory or from Redis. */
static void test_purges_seen_on_a_second_instance(void **state)
{
    (void)state;
    rh_server *redis = rh_start(NULL);
    assert_non_null(redis);
    oh_origin *o = oh_start(NULL);
    assert_non_null(o);
    char *url = it_xasprintf("REDIS_URL=%s", rh_url(redis));
    const char *env[] = {"STRATA_WORKERS=2", url, "REDIS_SOCKET_TIMEOUT=2", NULL};
    sh_server *a = px_start_upstream(o, env), *b = px_start_upstream(o, env);
    assert_non_null(a);
    assert_non_null(b);
    wait_coherent(a);
    wait_coherent(b);
    const char *tagged = "X-Origin-Header: Surrogate-Key: shared-tag";
    const char *etag = "X-Origin-Header: ETag: \"v1\"";
    const char *const paths[] = {"/pg/url", "/pg/tag", "/pg/pattern", "/pg/soft"};
    const char *const fill[] = {"Host: shared.example", CC60, tagged, etag,
                                "X-Origin-Body: old",   NULL};
    const char *const again[] = {"Host: shared.example", CC60, etag, "X-Origin-Body: old", NULL};
    for (size_t i = 0; i < 4; i++) {
        sh_resp *r = px_send(a, "GET", paths[i], NULL, 0, fill);
        px_expect_xcache(r, "MISS");
        sh_resp_free(r);
        r = px_send(b, "GET", paths[i], NULL, 0, fill);
        assert_true(px_xcache_in(r, "HIT-L2", "HIT-L1", (const char *)NULL));
        px_expect_body(r, "old");
        sh_resp_free(r);
    }
    /* each purge on a; each path read on b, whose memory may hold it until the invalidation
     * comes: a hard purge is then a miss, fetched whole; a soft one is revalidated (the origin
     * answers 304 to its ETag) */
    const char *const purges[] = {"{\"urls\":[\"http://shared.example/pg/url\"]}",
                                  "{\"tags\":[\"shared-tag\"]}",
                                  "{\"patterns\":[\"GET shared.example/pg/pattern\"]}",
                                  "{\"urls\":[\"http://shared.example/pg/soft\"],\"soft\":true}"};
    const char *const h200[] = {"Host: shared.example", CC60, etag, "X-Origin-Body: new", NULL};
    const char *const h304[] = {"Host: shared.example", CC60, etag, "X-Origin-Status: 304",
                                "X-Origin-Body: new",   NULL};
    for (size_t i = 0; i < 4; i++) {
        const char *const ph[] = {"Content-Type: application/json", NULL};
        sh_resp *r = px_send(a, "POST", "/cache/purge", purges[i], 0, ph);
        SH_EXPECT_STATUS(r, 200);
        sh_resp_free(r);
        if (i == 1) /* the tag dropped every path: the two still to purge are stored again */
            for (size_t k = 2; k < 4; k++)
                until_xcache(b, paths[k], again, "MISS");
        until_xcache(b, paths[i], i == 3 ? h304 : h200, i == 3 ? "REVALIDATED" : "MISS");
    }
    assert_int_equal(sh_stop_check(a), 0);
    assert_int_equal(sh_stop_check(b), 0);
    oh_stop(o);
    rh_stop(redis);
    free(url);
}

/* ---- 15. a reset mid-body ------------------------------------------------------------------ */

static void test_origin_reset_mid_body(void **state)
{
    (void)state;
    oh_origin *o = oh_start(NULL);
    assert_non_null(o);
    sh_server *s = px_start_upstream(o, NULL);
    assert_non_null(s);
    unsigned long before = px_origin_requests(o);
    /* streamed (too large to store): the client sees the answer cut short */
    for (int k = 0; k < 2; k++) {
        sh_resp *r = px_get(s, "GET", "/reset/big", CC60, "X-Origin-Body-Size: 3000000",
                            "X-Origin-Reset-After: 200000", (const char *)NULL);
        if (r->curl_code == 0 || r->body_len >= 3000000)
            fail_msg("a response reset after 200000 bytes came whole to the client: curl %d, "
                     "%zu bytes",
                     r->curl_code, r->body_len);
        assert_true(px_is_pattern(r->body, r->body_len));
        sh_resp_free(r);
        assert_true(sh_healthy(s));
    }
    assert_int_equal(px_origin_requests(o) - before, 2);
    /* kept to be stored: nothing was sent yet, so a 502; and nothing stored */
    sh_resp *r = px_get(s, "GET", "/reset/small", CC60, "X-Origin-Body-Size: 100000",
                        "X-Origin-Reset-After: 5000", (const char *)NULL);
    SH_EXPECT_ERROR(r, 502, "origin_unavailable");
    sh_resp_free(r);
    assert_true(sh_healthy(s));
    r = px_get(s, "GET", "/reset/small", CC60, "X-Origin-Body-Size: 100000", (const char *)NULL);
    SH_EXPECT_STATUS(r, 200);
    px_expect_xcache(r, "MISS");
    assert_int_equal(r->body_len, 100000);
    sh_resp_free(r);
    assert_int_equal(px_origin_requests(o) - before, 4);
    assert_int_equal(sh_stop_check(s), 0);
    oh_stop(o);
}

/* ---- 16. a client that does not read ------------------------------------------------------- */

/* Large enough to fill the socket buffers on both sides, so strata's stream must pause. */
#define SLOW_SIZE "16000000"

/* A connection whose receive window stays small: SO_RCVBUF set before connect (set after, the
 * window scale agreed on a large buffer rounds the window to zero and the kernel's zero-window
 * probes crawl). */
static int connect_small_window(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int small = 4096;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void test_slow_client_holds_back_no_one(void **state)
{
    (void)state;
    oh_origin *o = oh_start(NULL);
    assert_non_null(o);
    const char *env[] = {"STRATA_WORKERS=1", NULL}; /* one loop serves the slow and the fast */
    sh_server *s = px_start_upstream(o, env);
    assert_non_null(s);
    int fd = connect_small_window(sh_port(s));
    const char req[] = "GET /slow/big HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "X-Origin-Body-Size: " SLOW_SIZE "\r\nConnection: close\r\n\r\n";
    assert_int_equal(sh_raw_send(fd, req, sizeof req - 1), 0);
    sh_sleep_ms(300); /* the stream fills the buffers and pauses */
    PX_GET_EXPECT(s, "/fast/cached", "c", "MISS", CC60, "X-Origin-Body: c");
    for (int i = 0; i < 20; i++) {
        char path[32];
        snprintf(path, sizeof path, i % 2 ? "/fast/cached" : "/fast/%d", i);
        /* a loop stalled by the slow client would answer nothing until it reads (10 s on) */
        const char *const h[] = {"X-Origin-Body: c", NULL};
        sh_resp *r = px_send(s, "GET", path, NULL, 5000, h);
        if (r->status == 0)
            fail_msg("%s got no answer within 5 s beside a client that does not read: %s", path,
                     r->err);
        px_expect_body(r, "c");
        sh_resp_free(r);
    }
    /* and the slow client, once it reads, gets its answer whole */
    size_t len = 0;
    int eof = 0;
    char *all = sh_raw_read_all(fd, 10000, &len, &eof);
    close(fd);
    const char *body = strstr(all, "\r\n\r\n");
    assert_non_null(body);
    body += 4;
    assert_int_equal(len - (size_t)(body - all), atol(SLOW_SIZE));
    assert_true(px_is_pattern(body, len - (size_t)(body - all)));
    free(all);
    assert_true(sh_healthy(s));
    assert_int_equal(sh_stop_check(s), 0);
    oh_stop(o);
}

/* ---- 17. SIGHUP ---------------------------------------------------------------------------- */

typedef struct flow {
    pthread_t thread;
    const sh_server *s;
    atomic_int stop;
    int ok, failed;
} flow;

static void *flow_main(void *arg)
{
    flow *f = arg;
    while (!atomic_load(&f->stop)) {
        sh_resp *r = px_get(f->s, "GET", "/a/flow", "X-Origin-Body: flowing", (const char *)NULL);
        if (r->status == 200 && strcmp(r->body, "flowing") == 0)
            f->ok++;
        else if (f->failed++ < 3)
            fprintf(stderr, "during the reloads: HTTP %ld %s\n", r->status, r->body);
        sh_resp_free(r);
    }
    return NULL;
}

static void test_sighup_adds_a_route_and_refuses_a_bad_file(void **state)
{
    (void)state;
    oh_origin *o = oh_start(NULL);
    assert_non_null(o);
    char *v1 = it_xasprintf("origins: [{name: o, url: 'http://127.0.0.1:%d'}]\n"
                            "routes: [{name: a, match: {path: '/a/*'}}]\n",
                            oh_port(o));
    char *v2 = it_xasprintf("origins: [{name: o, url: 'http://127.0.0.1:%d'}]\n"
                            "routes:\n"
                            "  - {name: a, match: {path: '/a/*'}}\n"
                            "  - {name: b, match: {path: '/b/*'}}\n",
                            oh_port(o));
    char *path = px_write_file(dir, "reload.yaml", v1);
    sh_server *s = px_start_config(path, NULL);
    assert_non_null(s);
    PX_GET_EXPECT(s, "/a/x", "a", "MISS", "X-Origin-Body: a");
    sh_resp *r = px_get(s, "GET", "/b/x", "X-Origin-Body: b", (const char *)NULL);
    SH_EXPECT_ERROR(r, 404, "not_found");
    sh_resp_free(r);

    flow f = {.s = s};
    assert_int_equal(pthread_create(&f.thread, NULL, flow_main, &f), 0);
    sh_sleep_ms(100);
    free(px_write_file(dir, "reload.yaml", v2));
    assert_int_equal(sh_signal(s, SIGHUP), 0);
    assert_true(px_wait_log(s, "SIGHUP: proxy: 2 routes", 5000));
    PX_GET_EXPECT(s, "/b/x", "b", "MISS", "X-Origin-Body: b");
    sh_sleep_ms(100);
    free(px_write_file(dir, "reload.yaml", "routes: [\n"));
    assert_int_equal(sh_signal(s, SIGHUP), 0);
    assert_true(px_wait_log(s, "not reloaded, the old one stays", 5000));
    PX_GET_EXPECT(s, "/a/x", "a", "MISS", "X-Origin-Body: a");
    PX_GET_EXPECT(s, "/b/x", "b", "MISS", "X-Origin-Body: b");
    sh_sleep_ms(100);
    atomic_store(&f.stop, 1);
    pthread_join(f.thread, NULL);
    if (f.failed > 0 || f.ok == 0)
        fail_msg("requests during the reloads: %d answered, %d failed", f.ok, f.failed);
    assert_true(sh_healthy(s));
    assert_int_equal(sh_stop_check(s), 0);
    oh_stop(o);
    free(path);
    free(v1);
    free(v2);
}

static int setup(void **state)
{
    (void)state;
    dir = it_make_temp_dir("strata-pq");
    return dir != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    it_remove_tree(dir);
    free(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_origin_down_stale_if_error_502_504),
        cmocka_unit_test(test_breaker_opens_then_lets_one_try),
        cmocka_unit_test(test_one_instance_coalesces_200_clients),
        cmocka_unit_test(test_two_instances_share_one_origin_request),
        cmocka_unit_test(test_purges_seen_on_a_second_instance),
        cmocka_unit_test(test_origin_reset_mid_body),
        cmocka_unit_test(test_slow_client_holds_back_no_one),
        cmocka_unit_test(test_sighup_adds_a_route_and_refuses_a_bad_file),
    };
    SH_TEST_FILTER();
    return cmocka_run_group_tests(tests, setup, teardown);
}
