/* test_upstream.c: the upstream client (src/server/upstream) against the test origin, a real
 * process on a real socket (tests/origin/strata_test_origin.c, started by origin_harness.c):
 * keep-alive reuse, the three deadlines, streamed bodies with pause and resume in bounded
 * memory, chunked and close-delimited bodies, resets, a killed and restarted origin, the stale
 * connection retry rule, the connection limit and the queue's bound, cancelling, and TLS
 * verification with a CA made at test time. Deadlines are asserted with generous margins.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "origin_harness.h"
#include "upstream/upstream.h"

static oh_origin *plain;
static oh_origin *secure;
static oh_tls tls;

typedef struct call {
    upstream_req *r;
    upstream_pool *pool;
    const upstream_origin *o;
    struct event_base *base;
    int done, status, http_status, heads, abort_in_body;
    long long content_length;
    size_t body_len;
    int pattern_ok; /* every body byte was 'a' + i % 26 */
    char *keep;     /* the body, when asked */
    size_t keep_cap;
    unsigned pause_ms; /* pause after every piece, resume this much later */
    struct event *resume;
    unsigned pauses;
    size_t most_buffered;
    char conn_id[16], sni[64], errstr[256];
} call;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int on_head(upstream_req *r, const upstream_head *h, void *arg)
{
    (void)r;
    call *c = arg;
    c->heads++;
    c->http_status = upstream_head_status(h);
    c->content_length = upstream_head_content_length(h);
    const char *v = upstream_head_header(h, "X-Origin-Conn");
    snprintf(c->conn_id, sizeof c->conn_id, "%s", v ? v : "");
    v = upstream_head_header(h, "X-Origin-SNI");
    snprintf(c->sni, sizeof c->sni, "%s", v ? v : "");
    return UPSTREAM_GO;
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    call *c = arg;
    upstream_req_resume(c->r);
}

static int on_body(upstream_req *r, const char *data, size_t len, void *arg)
{
    (void)r;
    call *c = arg;
    for (size_t i = 0; i < len; i++)
        if (data[i] != 'a' + (char)((c->body_len + i) % 26))
            c->pattern_ok = 0;
    if (c->keep != NULL && c->body_len + len < c->keep_cap) {
        memcpy(c->keep + c->body_len, data, len);
        c->keep[c->body_len + len] = '\0';
    }
    c->body_len += len;
    upstream_pool_stats st;
    upstream_pool_stats_get(c->pool, c->o, &st);
    if (st.buffered > c->most_buffered)
        c->most_buffered = st.buffered;
    if (c->abort_in_body)
        return UPSTREAM_ABORT;
    if (c->pause_ms > 0) {
        c->pauses++;
        struct timeval tv = {0, (suseconds_t)c->pause_ms * 1000};
        event_add(c->resume, &tv);
        return UPSTREAM_PAUSE;
    }
    return UPSTREAM_GO;
}

static void on_done(upstream_req *r, int status, void *arg)
{
    call *c = arg;
    c->done = 1;
    c->status = status;
    snprintf(c->errstr, sizeof c->errstr, "%s", upstream_req_errstr(r));
    c->r = NULL;
}

static const upstream_callbacks cbs = {on_head, on_body, on_done};

/* A loop with a pool on it. */
typedef struct rig {
    struct event_base *base;
    upstream_pool *pool;
    struct event *tick; /* so that a loop turn never waits forever */
} rig;

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static void rig_init(rig *g)
{
    g->base = event_base_new();
    assert_non_null(g->base);
    g->pool = upstream_pool_new(g->base);
    assert_non_null(g->pool);
    g->tick = event_new(g->base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, 10000};
    event_add(g->tick, &tv);
}

static void rig_free(rig *g)
{
    upstream_pool_free(g->pool);
    event_free(g->tick);
    event_base_free(g->base);
}

static void call_init(call *c, rig *g, const upstream_origin *o)
{
    memset(c, 0, sizeof *c);
    c->pool = g->pool;
    c->o = o;
    c->base = g->base;
    c->pattern_ok = 1;
    c->resume = evtimer_new(g->base, on_resume, c);
}

static void call_free(call *c)
{
    if (c->resume != NULL)
        event_free(c->resume);
    free(c->keep);
    c->resume = NULL;
    c->keep = NULL;
}

/* Sends method target with the given headers (NULL-terminated name, value pairs). */
static int send_req(call *c, const char *method, const char *target, const char *const *hdrs,
                    const char *body)
{
    upstream_header h[16];
    size_t n = 0;
    for (; hdrs != NULL && hdrs[2 * n] != NULL; n++) {
        h[n].name = hdrs[2 * n];
        h[n].value = hdrs[2 * n + 1];
    }
    upstream_request_spec rq = {method, target, h, n, body, body ? strlen(body) : 0};
    return upstream_request(c->pool, c->o, &rq, &cbs, c, &c->r);
}

/* Runs the loop until every call of cs[0..n) is done, or ms passed. */
static void run_until_done(rig *g, call **cs, size_t n, unsigned ms)
{
    uint64_t end = now_ms() + ms;
    for (;;) {
        size_t left = 0;
        for (size_t i = 0; i < n; i++)
            left += !cs[i]->done;
        if (left == 0 || now_ms() > end)
            return;
        event_base_loop(g->base, EVLOOP_ONCE);
    }
}

static void run_ms(rig *g, unsigned ms)
{
    uint64_t end = now_ms() + ms;
    while (now_ms() < end)
        event_base_loop(g->base, EVLOOP_ONCE);
}

static void get_one(rig *g, call *c, const char *method, const char *target,
                    const char *const *hdrs, const char *body)
{
    assert_int_equal(send_req(c, method, target, hdrs, body), 0);
    run_until_done(g, (call *[]){c}, 1, 10000);
    assert_true(c->done);
}

static upstream_origin *origin_for(const char *scheme, int port, const upstream_options *opt)
{
    char url[128], err[256];
    snprintf(url, sizeof url, "%s://127.0.0.1:%d", scheme, port);
    upstream_origin *o = NULL;
    int rc = upstream_origin_new(url, opt, err, sizeof err, &o);
    if (rc != 0)
        fprintf(stderr, "origin: %s\n", err);
    assert_int_equal(rc, 0);
    return o;
}

static void counts(unsigned long *conns, unsigned long *reqs)
{
    assert_int_equal(oh_count(plain, conns, reqs), 0);
}

/* ---- plain HTTP ---------------------------------------------------------------------------- */

static void test_keepalive_reuse(void **state)
{
    (void)state;
    rig g;
    rig_init(&g);
    upstream_origin *o = origin_for("http", oh_port(plain), NULL);
    unsigned long c0, r0, c1, r1;
    counts(&c0, &r0);
    char first[16] = "";
    for (int i = 0; i < 3; i++) {
        call c;
        call_init(&c, &g, o);
        get_one(&g, &c, "GET", "/x", (const char *[]){"X-Origin-Body-Size", "1000", NULL}, NULL);
        assert_int_equal(c.status, 0);
        assert_int_equal(c.http_status, 200);
        assert_int_equal(c.body_len, 1000);
        assert_true(c.pattern_ok);
        if (i == 0)
            snprintf(first, sizeof first, "%s", c.conn_id);
        assert_string_equal(c.conn_id, first); /* the same connection every time */
        call_free(&c);
    }
    counts(&c1, &r1);
    assert_int_equal(c1 - c0, 1);
    assert_int_equal(r1 - r0, 3);
    upstream_pool_stats st;
    upstream_pool_stats_get(g.pool, o, &st);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.reuses, 2);
    assert_int_equal(st.idle, 1);
    rig_free(&g);
    upstream_origin_free(o);
}

static void test_framings(void **state)
{
    (void)state;
    rig g;
    rig_init(&g);
    upstream_origin *o = origin_for("http", oh_port(plain), NULL);
    call c;
    /* chunked, in small pieces */
    call_init(&c, &g, o);
    get_one(&g, &c, "GET", "/chunked",
            (const char *[]){"X-Origin-Body-Size", "100000", "X-Origin-Chunked", "1",
                             "X-Origin-Chunk-Size", "777", NULL},
            NULL);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.content_length, -1);
    assert_int_equal(c.body_len, 100000);
    assert_true(c.pattern_ok);
    call_free(&c);
    /* to the close: complete, and the connection is not kept */
    call_init(&c, &g, o);
    get_one(&g, &c, "GET", "/eof",
            (const char *[]){"X-Origin-Body-Size", "5000", "X-Origin-No-Length", "1", NULL}, NULL);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.body_len, 5000);
    assert_true(c.pattern_ok);
    call_free(&c);
    /* HEAD: a length announced, no body read, and the connection stays usable */
    call_init(&c, &g, o);
    get_one(&g, &c, "HEAD", "/h", (const char *[]){"X-Origin-Body-Size", "4000", NULL}, NULL);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.content_length, 4000);
    assert_int_equal(c.body_len, 0);
    call_free(&c);
    /* 204 */
    call_init(&c, &g, o);
    get_one(&g, &c, "GET", "/n", (const char *[]){"X-Origin-Status", "204", NULL}, NULL);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.http_status, 204);
    call_free(&c);
    upstream_pool_stats st;
    upstream_pool_stats_get(g.pool, o, &st);
    assert_int_equal(st.connects, 2); /* one before the close-delimited body, one after */
    /* What went on the wire: Host, the caller's headers, Content-Length, the body. */
    call_init(&c, &g, o);
    c.keep = calloc(1, 4096);
    c.keep_cap = 4096;
    get_one(&g, &c, "POST", "/__echo?a=1", (const char *[]){"X-Test", "yes", NULL}, "hello");
    assert_int_equal(c.status, 0);
    assert_non_null(strstr(c.keep, "POST /__echo?a=1 HTTP/1.1\r\n"));
    char host[64];
    snprintf(host, sizeof host, "Host: 127.0.0.1:%d\r\n", oh_port(plain));
    assert_non_null(strstr(c.keep, host));
    assert_non_null(strstr(c.keep, "X-Test: yes\r\n"));
    assert_non_null(strstr(c.keep, "Content-Length: 5\r\n"));
    assert_non_null(strstr(c.keep, "\r\n\r\nhello"));
    call_free(&c);
    rig_free(&g);
    upstream_origin_free(o);
}

static void test_timeouts(void **state)
{
    (void)state;
    rig g;
    rig_init(&g);
    upstream_options opt = {.first_byte_timeout_ms = 200, .connect_timeout_ms = 300};
    upstream_origin *o = origin_for("http", oh_port(plain), &opt);
    call c;
    call_init(&c, &g, o);
    uint64_t t0 = now_ms();
    get_one(&g, &c, "GET", "/slow", (const char *[]){"X-Origin-Delay-Ms", "3000", NULL}, NULL);
    assert_int_equal(c.status, UPSTREAM_ETIMEDOUT_FIRST_BYTE);
    assert_int_equal(c.heads, 0);
    assert_true(now_ms() - t0 < 1500);
    call_free(&c);
    upstream_origin_free(o);

    /* total: the head comes, the body trickles */
    upstream_options tot = {.total_timeout_ms = 300};
    o = origin_for("http", oh_port(plain), &tot);
    call_init(&c, &g, o);
    t0 = now_ms();
    get_one(&g, &c, "GET", "/trickle",
            (const char *[]){"X-Origin-Body-Size", "100000", "X-Origin-Chunk-Size", "1000",
                             "X-Origin-Chunk-Delay-Ms", "50", NULL},
            NULL);
    assert_int_equal(c.status, UPSTREAM_ETIMEDOUT_TOTAL);
    assert_int_equal(c.heads, 1);
    assert_true(c.body_len > 0 && c.body_len < 100000);
    assert_true(now_ms() - t0 < 1500);
    call_free(&c);
    upstream_origin_free(o);

    /* connect: a listener whose backlog is full drops the SYN; an https listener that never
     * answers the handshake stalls it. Both are the connect deadline. */
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &len), 0);
    assert_int_equal(listen(ls, 0), 0);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&sa, sizeof sa);
    }
    run_ms(&g, 50);
    o = origin_for("http", ntohs(sa.sin_port), &opt);
    call_init(&c, &g, o);
    t0 = now_ms();
    get_one(&g, &c, "GET", "/", NULL, NULL);
    assert_int_equal(c.status, UPSTREAM_ETIMEDOUT_CONNECT);
    assert_true(now_ms() - t0 < 1500);
    call_free(&c);
    upstream_origin_free(o);
    upstream_options topt = opt;
    topt.tls_insecure = 1;
    int ls2 = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa2 = {.sin_family = AF_INET};
    sa2.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof sa2;
    assert_int_equal(bind(ls2, (struct sockaddr *)&sa2, sizeof sa2), 0);
    assert_int_equal(getsockname(ls2, (struct sockaddr *)&sa2, &len), 0);
    assert_int_equal(listen(ls2, 16), 0);
    o = origin_for("https", ntohs(sa2.sin_port), &topt);
    call_init(&c, &g, o);
    get_one(&g, &c, "GET", "/", NULL, NULL);
    assert_int_equal(c.status, UPSTREAM_ETIMEDOUT_CONNECT);
    call_free(&c);
    upstream_origin_free(o);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(ls);
    close(ls2);

    /* refused */
    int port = ntohs(sa.sin_port); /* closed now */
    o = origin_for("http", port, &opt);
    call_init(&c, &g, o);
    get_one(&g, &c, "GET", "/", NULL, NULL);
    assert_int_equal(c.status, UPSTREAM_ECONNECT);
    assert_non_null(strstr(c.errstr, "refused"));
    call_free(&c);
    rig_free(&g);
    upstream_origin_free(o);
}

/* A large body read by a slow reader: the client holds a bounded amount however big the body. */
static void large_body(const char *scheme, int port, const upstream_options *opt)
{
    rig g;
    rig_init(&g);
    upstream_origin *o = origin_for(scheme, port, opt);
    call c;
    call_init(&c, &g, o);
    c.pause_ms = 1;
    get_one(&g, &c, "GET", "/big", (const char *[]){"X-Origin-Body-Size", "8388608", NULL}, NULL);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.body_len, 8388608);
    assert_true(c.pattern_ok);
    assert_true(c.pauses > 10);
    fprintf(stderr, "large body (%s): %u pauses, at most %zu bytes held\n", scheme, c.pauses,
            c.most_buffered);
    assert_true(c.most_buffered <= 80 * 1024); /* the read watermark, 64 KiB, and a margin */
    call_free(&c);
    rig_free(&g);
    upstream_origin_free(o);
}

static void test_large_body_paused(void **state)
{
    (void)state;
    large_body("http", oh_port(plain), NULL);
}

static void test_failures_mid_response(void **state)
{
    (void)state;
    rig g;
    rig_init(&g);
    upstream_origin *o = origin_for("http", oh_port(plain), NULL);
    call c;
    call_init(&c, &g, o);
    get_one(&g, &c, "GET", "/reset",
            (const char *[]){"X-Origin-Body-Size", "100000", "X-Origin-Reset-After", "5000", NULL},
            NULL);
    assert_int_equal(c.status, UPSTREAM_ERESET);
    assert_int_equal(c.heads, 1);
    assert_true(c.body_len <= 5000);
    call_free(&c);
    call_init(&c, &g, o);
    get_one(&g, &c, "GET", "/cut",
            (const char *[]){"X-Origin-Body-Size", "100", "X-Origin-Close-After-Head", "1", NULL},
            NULL);
    assert_int_equal(c.status, UPSTREAM_ERESET);
    assert_non_null(strstr(c.errstr, "after 0 bytes"));
    call_free(&c);
    call_init(&c, &g, o);
    get_one(&g, &c, "GET", "/bad", (const char *[]){"X-Origin-Bad", "1", NULL}, NULL);
    assert_int_equal(c.status, UPSTREAM_EBADRESPONSE);
    assert_int_equal(c.heads, 0);
    call_free(&c);
    upstream_pool_stats st;
    upstream_pool_stats_get(g.pool, o, &st);
    assert_int_equal(st.open, 0); /* none of those connections was kept */
    rig_free(&g);
    upstream_origin_free(o);
}

static void test_origin_killed_and_restarted(void **state)
{
    (void)state;
    rig g;
    rig_init(&g);
    upstream_options opt = {.connect_timeout_ms = 1000};
    upstream_origin *o = origin_for("http", oh_port(plain), &opt);
    call c;
    call_init(&c, &g, o);
    get_one(&g, &c, "GET", "/", NULL, NULL);
    assert_int_equal(c.status, 0);
    call_free(&c);
    assert_int_equal(oh_kill(plain), 0);
    /* at once: the idle connection is dead (a retry on a new one, refused) or seen closed */
    call_init(&c, &g, o);
    get_one(&g, &c, "GET", "/", NULL, NULL);
    assert_int_equal(c.status, UPSTREAM_ECONNECT);
    call_free(&c);
    assert_int_equal(oh_restart(plain), 0);
    call_init(&c, &g, o);
    get_one(&g, &c, "GET", "/", (const char *[]){"X-Origin-Body", "back", NULL}, NULL);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.body_len, 4);
    call_free(&c);
    /* paused: the first-byte deadline answers; resumed: served again (the first origin is
     * freed after the pool, whose idle connection still points at it) */
    upstream_origin *first = o;
    upstream_options fast = {.first_byte_timeout_ms = 200};
    o = origin_for("http", oh_port(plain), &fast);
    assert_int_equal(oh_pause(plain), 0);
    call_init(&c, &g, o);
    get_one(&g, &c, "GET", "/", NULL, NULL);
    assert_int_equal(c.status, UPSTREAM_ETIMEDOUT_FIRST_BYTE);
    call_free(&c);
    assert_int_equal(oh_resume(plain), 0);
    call_init(&c, &g, o);
    get_one(&g, &c, "GET", "/", NULL, NULL);
    assert_int_equal(c.status, 0);
    call_free(&c);
    rig_free(&g);
    upstream_origin_free(o);
    upstream_origin_free(first);
}

/* The origin answers, then drops the connection's next request unanswered: what a kept-alive
 * connection closed by the origin as we reuse it looks like. */
static void stale(const char *method, int expect_status, int expect_retried)
{
    rig g;
    rig_init(&g);
    upstream_origin *o = origin_for("http", oh_port(plain), NULL);
    unsigned long c0, r0, c1, r1;
    counts(&c0, &r0);
    call c;
    call_init(&c, &g, o);
    get_one(&g, &c, "GET", "/", (const char *[]){"X-Origin-Drop-Next", "1", NULL}, NULL);
    assert_int_equal(c.status, 0);
    call_free(&c);
    call_init(&c, &g, o);
    get_one(&g, &c, method, "/again", NULL, NULL);
    assert_int_equal(c.status, expect_status);
    upstream_pool_stats st;
    upstream_pool_stats_get(g.pool, o, &st);
    assert_int_equal(st.retries, expect_retried);
    call_free(&c);
    counts(&c1, &r1);
    assert_int_equal(r1 - r0, 2 + expect_retried); /* the first, the dropped one, the retry */
    assert_int_equal(c1 - c0, 1 + expect_retried);
    rig_free(&g);
    upstream_origin_free(o);
}

static void test_stale_connection_get_retried(void **state)
{
    (void)state;
    stale("GET", 0, 1);
    stale("DELETE", 0, 1);
}

static void test_stale_connection_post_not_retried(void **state)
{
    (void)state;
    stale("POST", UPSTREAM_ERESET, 0);
    stale("PATCH", UPSTREAM_ERESET, 0);
}

static void test_connection_limit_and_queue(void **state)
{
    (void)state;
    rig g;
    rig_init(&g);
    upstream_options opt = {.max_conns = 2, .max_queue = 3};
    upstream_origin *o = origin_for("http", oh_port(plain), &opt);
    unsigned long c0, r0, c1, r1;
    counts(&c0, &r0);
    call cs[6];
    call *ps[5];
    for (int i = 0; i < 5; i++) {
        call_init(&cs[i], &g, o);
        ps[i] = &cs[i];
        assert_int_equal(
            send_req(&cs[i], "GET", "/q", (const char *[]){"X-Origin-Delay-Ms", "100", NULL}, NULL),
            0);
    }
    upstream_pool_stats st;
    upstream_pool_stats_get(g.pool, o, &st);
    assert_int_equal(st.open, 2);
    assert_int_equal(st.queued, 3);
    call_init(&cs[5], &g, o);
    assert_int_equal(send_req(&cs[5], "GET", "/q", NULL, NULL), UPSTREAM_EQUEUEFULL);
    run_until_done(&g, ps, 5, 10000);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(cs[i].status, 0);
        call_free(&cs[i]);
    }
    assert_false(cs[5].done); /* a refused request is never called back */
    call_free(&cs[5]);
    upstream_pool_stats_get(g.pool, o, &st);
    assert_int_equal(st.most_open, 2);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.reuses, 3);
    counts(&c1, &r1);
    assert_int_equal(c1 - c0, 2);
    assert_int_equal(r1 - r0, 5);
    rig_free(&g);
    upstream_origin_free(o);
}

static void test_cancel(void **state)
{
    (void)state;
    rig g;
    rig_init(&g);
    upstream_origin *o = origin_for("http", oh_port(plain), NULL);
    call c;
    /* before the head: no callback, the connection closed */
    call_init(&c, &g, o);
    assert_int_equal(
        send_req(&c, "GET", "/", (const char *[]){"X-Origin-Delay-Ms", "200", NULL}, NULL), 0);
    run_ms(&g, 50);
    upstream_req_cancel(c.r);
    run_ms(&g, 400);
    assert_false(c.done);
    assert_int_equal(c.heads, 0);
    upstream_pool_stats st;
    upstream_pool_stats_get(g.pool, o, &st);
    assert_int_equal(st.open, 0);
    call_free(&c);
    /* from on_body: the rest is not read, the connection is not kept */
    call_init(&c, &g, o);
    c.abort_in_body = 1;
    assert_int_equal(
        send_req(&c, "GET", "/", (const char *[]){"X-Origin-Body-Size", "100000", NULL}, NULL), 0);
    run_ms(&g, 300);
    assert_false(c.done);
    assert_int_equal(c.heads, 1);
    assert_true(c.body_len > 0);
    upstream_pool_stats_get(g.pool, o, &st);
    assert_int_equal(st.open, 0);
    call_free(&c);
    /* freeing the pool calls what is pending back */
    call_init(&c, &g, o);
    assert_int_equal(
        send_req(&c, "GET", "/", (const char *[]){"X-Origin-Delay-Ms", "500", NULL}, NULL), 0);
    run_ms(&g, 50);
    upstream_pool_free(g.pool);
    g.pool = NULL;
    assert_true(c.done);
    assert_int_equal(c.status, UPSTREAM_ECLOSED);
    call_free(&c);
    rig_free(&g);
    upstream_origin_free(o);
}

/* ---- TLS ----------------------------------------------------------------------------------- */

static void tls_get(const upstream_options *opt, int expect, const char *errpart, const char *sni)
{
    rig g;
    rig_init(&g);
    upstream_origin *o = origin_for("https", oh_port(secure), opt);
    call c;
    call_init(&c, &g, o);
    get_one(&g, &c, "GET", "/", (const char *[]){"X-Origin-Body-Size", "3000", NULL}, NULL);
    if (c.status != expect)
        fprintf(stderr, "tls: %s (%s)\n", upstream_err_name(c.status), c.errstr);
    assert_int_equal(c.status, expect);
    if (errpart != NULL)
        assert_non_null(strstr(c.errstr, errpart));
    if (expect == 0) {
        assert_int_equal(c.body_len, 3000);
        assert_true(c.pattern_ok);
        assert_string_equal(c.sni, sni);
        char first[16];
        snprintf(first, sizeof first, "%s", c.conn_id);
        call_free(&c);
        call_init(&c, &g, o); /* kept alive over TLS too */
        get_one(&g, &c, "GET", "/", NULL, NULL);
        assert_int_equal(c.status, 0);
        assert_string_equal(c.conn_id, first);
    }
    call_free(&c);
    rig_free(&g);
    upstream_origin_free(o);
}

static void test_tls_verified(void **state)
{
    (void)state;
    /* by name (SNI sent, checked against DNS:localhost) and by address (no SNI, IP:127.0.0.1) */
    tls_get(&(upstream_options){.ca_file = tls.ca, .server_name = "localhost"}, 0, NULL,
            "localhost");
    tls_get(&(upstream_options){.ca_file = tls.ca}, 0, NULL, "-");
}

static void test_tls_refused(void **state)
{
    (void)state;
    tls_get(&(upstream_options){.ca_file = tls.other_ca, .server_name = "localhost"},
            UPSTREAM_ETLSVERIFY, "unable to get local issuer certificate", NULL);
    tls_get(&(upstream_options){.ca_file = tls.ca, .server_name = "wrong.example"},
            UPSTREAM_ETLSVERIFY, "mismatch", NULL);
    /* the system store does not know the test CA */
    tls_get(&(upstream_options){.server_name = "localhost"}, UPSTREAM_ETLSVERIFY, "verify", NULL);
    /* a server that closes the connection at once: the handshake fails, no verification */
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &len), 0);
    assert_int_equal(listen(ls, 4), 0);
    rig g;
    rig_init(&g);
    upstream_origin *o =
        origin_for("https", ntohs(sa.sin_port), &(upstream_options){.ca_file = tls.ca});
    call c;
    call_init(&c, &g, o);
    assert_int_equal(send_req(&c, "GET", "/", NULL, NULL), 0);
    run_ms(&g, 100);
    int fd = accept(ls, NULL, NULL);
    assert_true(fd >= 0);
    close(fd);
    run_until_done(&g, (call *[]){&c}, 1, 5000);
    assert_int_equal(c.status, UPSTREAM_ETLS);
    call_free(&c);
    close(ls);
    rig_free(&g);
    upstream_origin_free(o);
}

static void test_tls_insecure(void **state)
{
    (void)state;
    tls_get(&(upstream_options){.ca_file = tls.other_ca,
                                .server_name = "wrong.example",
                                .tls_insecure = 1},
            0, NULL, "wrong.example");
}

static void test_tls_large_body_paused(void **state)
{
    (void)state;
    large_body("https", oh_port(secure), &(upstream_options){.ca_file = tls.ca});
}

static int setup(void **state)
{
    (void)state;
    plain = oh_start(NULL);
    if (plain == NULL || oh_make_tls(&tls) != 0)
        return -1;
    secure = oh_start(&tls);
    return secure == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    oh_stop(plain);
    oh_stop(secure);
    oh_free_tls(&tls);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keepalive_reuse),
        cmocka_unit_test(test_framings),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_large_body_paused),
        cmocka_unit_test(test_failures_mid_response),
        cmocka_unit_test(test_stale_connection_get_retried),
        cmocka_unit_test(test_stale_connection_post_not_retried),
        cmocka_unit_test(test_connection_limit_and_queue),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_origin_killed_and_restarted),
        cmocka_unit_test(test_tls_verified),
        cmocka_unit_test(test_tls_refused),
        cmocka_unit_test(test_tls_insecure),
        cmocka_unit_test(test_tls_large_body_paused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
