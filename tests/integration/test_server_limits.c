/* test_server_limits.c: limits and bad input on strata serve. Keys over 512 bytes (414), bad
 * namespaces and keys that are not UTF-8 text (400), values over 1 MiB (413), malformed JSON
 * bodies (400), unknown routes (404), wrong methods (405 with Allow), all with the API's JSON
 * error; and, over raw TCP, what curl would never send: garbage request lines, a missing HTTP
 * version, headers over 16 KiB, bodies over STRATA_MAX_BODY (a JSON 4xx and close, from the
 * HTTP layer before routing), pipelined requests (answered in order), idle and slow
 * clients (closed after STRATA_IDLE_TIMEOUT). After every malformed input the server still
 * answers /livez and its log holds no sanitizer report. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "server_harness.h"

static rh_server *redis;
static sh_server *srv;
static char redis_env[320];

static int setup(void **state)
{
    (void)state;
    redis = rh_start(NULL);
    if (redis == NULL)
        return -1;
    snprintf(redis_env, sizeof redis_env, "REDIS_URL=%s", rh_url(redis));
    const char *env[] = {redis_env, "STRATA_WORKERS=2", "STRATA_IDLE_TIMEOUT=1",
                         "STRATA_MAX_BODY=2097152", NULL};
    srv = sh_start(env, NULL);
    return srv ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    int rc = 0;
    if (srv != NULL && sh_stop_check(srv) != 0) /* test_clean_exit did not run: check here */
        rc = -1;
    srv = NULL;
    rh_stop(redis);
    redis = NULL;
    return rc;
}

static void expect_error(const char *method, const char *path, const char *ctype, const char *body,
                         long status, const char *code)
{
    sh_resp *r = sh_call(srv, method, path, NULL, NULL, ctype, body);
    SH_EXPECT_ERROR(r, status, code);
    sh_resp_free(r);
}

/* A namespace of 65 characters, one over the limit. */
#define LONG_NS_PATH "/v1/cache/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/k"

static void test_keys(void **state)
{
    (void)state;
    char path[40000];
    /* 513 ASCII bytes. */
    int o = snprintf(path, sizeof path, "/v1/cache/lim/");
    memset(path + o, 'k', 513);
    path[o + 513] = '\0';
    expect_error("PUT", path, NULL, "v", 414, "key_too_long");
    expect_error("GET", path, NULL, NULL, 414, "key_too_long");
    expect_error("DELETE", path, NULL, NULL, 414, "key_too_long");
    /* 512 is fine. */
    path[o + 512] = '\0';
    SH_CALL_EXPECT(srv, "PUT", path, NULL, NULL, NULL, "v", 204);
    /* 514 bytes as 257 percent-encoded two-byte characters (1542 characters of path). */
    o = snprintf(path, sizeof path, "/v1/cache/lim/");
    for (int i = 0; i < 257; i++)
        o += snprintf(path + o, sizeof path - (size_t)o, "%%C3%%A9");
    expect_error("PUT", path, NULL, "v", 414, "key_too_long");
    /* Very long: 10000 bytes, plain and encoded. */
    o = snprintf(path, sizeof path, "/v1/cache/lim/");
    memset(path + o, 'x', 10000);
    path[o + 10000] = '\0';
    expect_error("GET", path, NULL, NULL, 414, "key_too_long");
    o = snprintf(path, sizeof path, "/cache/key/lim/");
    for (int i = 0; i < 3000; i++)
        o += snprintf(path + o, sizeof path - (size_t)o, "%%41");
    expect_error("GET", path, NULL, NULL, 414, "key_too_long");

    /* Empty segments: no such route. */
    expect_error("GET", "/v1/cache/lim/", NULL, NULL, 404, "not_found");
    expect_error("PUT", "/v1/cache//k", NULL, "v", 404, "not_found");
    expect_error("GET", "/v1/cache/lim//", NULL, NULL, 404, "not_found");
    /* Bad namespaces. */
    const char *badns[] = {"/v1/cache/bad:ns/k", "/v1/cache/bad%3Ans/k", "/v1/cache/b%20d/k",
                           "/v1/cache/%ZZ/k",    "/v1/cache/%C3%A9/k",   "/cache/key/a*b/k",
                           LONG_NS_PATH};
    for (size_t i = 0; i < sizeof badns / sizeof *badns; i++)
        expect_error("GET", badns[i], NULL, NULL, 400, "bad_namespace");
    expect_error("POST", "/v1/cache/bad:ns/_mget", "application/json", "{\"keys\":[\"a\"]}", 400,
                 "bad_namespace");
    /* Keys that are not UTF-8 text. */
    const char *badkey[] = {
        "/v1/cache/lim/a%00b",                                /* NUL */
        "/v1/cache/lim/%C3%28",                               /* invalid continuation */
        "/v1/cache/lim/a%0Ab",                                /* newline */
        "/v1/cache/lim/a%7F",                                 /* DEL */
        "/v1/cache/lim/%C2%80",                               /* C1 control */
        "/v1/cache/lim/%ED%A0%80",                            /* surrogate */
        "/v1/cache/lim/%C0%AF",                               /* overlong '/' */
        "/v1/cache/lim/%F4%90%80%80",                         /* past U+10FFFF */
        "/v1/cache/lim/%FF",          "/v1/cache/lim/%E2%82", /* truncated */
        "/v1/cache/lim/a%4",                                  /* bad percent-encoding */
        "/v1/cache/lim/a%G1",         "/cache/key/lim/%00",
    };
    for (size_t i = 0; i < sizeof badkey / sizeof *badkey; i++) {
        expect_error("GET", badkey[i], NULL, NULL, 400, "bad_key");
        if (strncmp(badkey[i], "/v1/", 4) == 0)
            expect_error("PUT", badkey[i], NULL, "v", 400, "bad_key");
    }
    assert_true(sh_healthy(srv));
}

static void test_values_and_bodies(void **state)
{
    (void)state;
    size_t mib = (size_t)1 << 20;
    char *big = malloc(mib + 1);
    memset(big, 'v', mib + 1);
    /* Exactly 1 MiB: stored. One byte more: 413, nothing stored. */
    sh_resp *r = sh_request(srv, "PUT", "/v1/cache/lim/onemib", NULL, big, mib);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    r = sh_request(srv, "GET", "/v1/cache/lim/onemib", NULL, NULL, 0);
    SH_EXPECT_STATUS(r, 200);
    assert_int_equal(r->body_len, mib);
    sh_resp_free(r);
    r = sh_request(srv, "PUT", "/v1/cache/lim/toobig", NULL, big, mib + 1);
    SH_EXPECT_ERROR(r, 413, "value_too_large");
    sh_resp_free(r);
    expect_error("GET", "/v1/cache/lim/toobig", NULL, NULL, 404, "not_found");
    /* In a batch too: 413 or 400, nothing written. */
    char *b64body = malloc(2 * mib + 200);
    int o = sprintf(b64body, "{\"items\":[{\"key\":\"small\",\"value\":\"s\"},{\"key\":\"big\","
                             "\"value\":\"");
    memset(b64body + o, 'v', mib + 1);
    strcpy(b64body + o + mib + 1, "\"}]}");
    r = sh_call(srv, "POST", "/v1/cache/lim/_mset", NULL, NULL, "application/json", b64body);
    if (r->status == 200)
        fprintf(stderr, "_mset with a value over 1 MiB: %.300s\n", r->body);
    assert_true(r->status == 413 || r->status == 400);
    assert_true(sh_resp_is_error(r, NULL));
    sh_resp_free(r);
    expect_error("GET", "/v1/cache/lim/big", NULL, NULL, 404, "not_found");
    expect_error("GET", "/v1/cache/lim/small", NULL, NULL, 404, "not_found");
    free(b64body);
    free(big);

    /* Malformed JSON. */
    const char *bad[] = {"{",
                         "not json",
                         "",
                         "[1,2]",
                         "\"keys\"",
                         "{\"keys\":[\"a\"],\"keys\":[\"b\"]}",
                         "{\"keys\":[\"a\"]} trailing",
                         "{\"keys\":[\"a\"]"};
    const char *paths[] = {"/v1/cache/lim/_mget", "/v1/cache/lim/_mset", "/v1/invalidate"};
    for (size_t p = 0; p < 3; p++)
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            sh_resp *e = sh_call(srv, "POST", paths[p], NULL, NULL, "application/json", bad[i]);
            if (e->status != 400)
                fprintf(stderr, "body [%s]\n", bad[i]);
            SH_EXPECT_ERROR(e, 400, NULL);
            sh_resp_free(e);
        }
    /* Invalidate with wrong shapes. */
    const char *binv[] = {"{}",
                          "{\"tags\":\"x\"}",
                          "{\"tags\":[\"\"]}",
                          "{\"tags\":[1]}",
                          "{\"patterns\":[null]}",
                          "{\"patterns\":\"*\"}",
                          "{\"tags\":[\"a\\u0000\"]}"};
    for (size_t i = 0; i < sizeof binv / sizeof *binv; i++) {
        sh_resp *e =
            sh_call(srv, "POST", "/v1/invalidate", NULL, NULL, "application/json", binv[i]);
        if (e->status != 400)
            fprintf(stderr, "body [%s]\n", binv[i]);
        SH_EXPECT_ERROR(e, 400, NULL);
        sh_resp_free(e);
    }
    /* Bad tags and content types on PUT. */
    expect_error("PUT", "/v1/cache/lim/t?tags=", NULL, "v", 400, "bad_tags");
    expect_error("PUT", "/v1/cache/lim/t?tags=a,,b", NULL, "v", 400, "bad_tags");
    char ct[400];
    memset(ct, 'c', 300);
    ct[300] = '\0';
    expect_error("PUT", "/v1/cache/lim/t", ct, "v", 400, "bad_content_type");
    expect_error("GET", "/v1/cache/lim/t", NULL, NULL, 404, "not_found");
    assert_true(sh_healthy(srv));
}

static void test_routes_and_methods(void **state)
{
    (void)state;
    const char *unknown[] = {"/",
                             "/nope",
                             "/v1",
                             "/v1/cache",
                             "/v1/cache/lim",
                             "/cache",
                             "/cache/key/lim",
                             "/v1/cache/lim/k/extra",
                             "/livez/x",
                             "/metricsx",
                             "/cache/nothing",
                             "/v2/cache/lim/k",
                             "/cache/key/lim/k/x"};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
        expect_error("GET", unknown[i], NULL, NULL, 404, "not_found");
        expect_error("POST", unknown[i], "application/json", "{}", 404, "not_found");
    }
    static const struct {
        const char *method, *path, *allow;
    } wrong[] = {
        {"POST", "/livez", "GET, HEAD"},
        {"DELETE", "/readyz", "GET, HEAD"},
        {"POST", "/metrics", "GET"},
        {"PUT", "/cache/stats", "GET"},
        {"POST", "/cache/health", "GET"},
        {"GET", "/cache/clear", "POST, DELETE"},
        {"PUT", "/cache/keys", "GET"},
        {"DELETE", "/cache/key/lim/k", "GET"},
        {"POST", "/v1/cache/lim/k", "GET, HEAD, PUT, DELETE, PATCH"},
        {"OPTIONS", "/v1/cache/lim/k", "GET, HEAD, PUT, DELETE, PATCH"},
        {"GET", "/v1/cache/lim/_mget", "POST"},
        {"PUT", "/v1/cache/lim/_mset", "POST"},
        {"GET", "/v1/invalidate", "POST"},
    };
    for (size_t i = 0; i < sizeof wrong / sizeof *wrong; i++) {
        sh_resp *r = sh_call(srv, wrong[i].method, wrong[i].path, NULL, NULL, NULL, NULL);
        SH_EXPECT_ERROR(r, 405, "method_not_allowed");
        SH_EXPECT_HEADER(r, "Allow", wrong[i].allow);
        sh_resp_free(r);
    }
    assert_true(sh_healthy(srv));
}

/* The status of the first response in buf, or 0. */
static int first_status(const char *buf)
{
    int st = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &st) != 1)
        return 0;
    return st;
}

/* Sends bytes on a fresh connection: the answer must be a 4xx (or nothing) and the connection
 * closed within 3 s. Returns the status seen (0 for none). */
static int expect_refused(const char *what, const void *data, size_t len)
{
    size_t n = 0;
    int eof = 0;
    char *out = sh_raw_exchange(sh_port(srv), data, len, 3000, &n, &eof);
    int st = first_status(out);
    if (!eof || (n > 0 && (st < 400 || st > 499)))
        fprintf(stderr, "%s: eof=%d, answer: %.300s\n", what, eof, out);
    assert_true(eof);
    assert_true(n == 0 || (st >= 400 && st <= 499));
    free(out);
    assert_true(sh_healthy(srv));
    return st;
}

static void test_raw_malformed(void **state)
{
    (void)state;
    const char garbage[] = "GARBAGE\r\n\r\n";
    expect_refused("garbage request line", garbage, sizeof garbage - 1);
    const char noversion[] = "GET /livez\r\n\r\n";
    expect_refused("no HTTP version", noversion, sizeof noversion - 1);
    const char badversion[] = "GET /livez HTTP/x.y\r\nHost: a\r\n\r\n";
    expect_refused("bad HTTP version", badversion, sizeof badversion - 1);
    const char binary[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS hello\r\n\r\n";
    expect_refused("a TLS hello", binary, sizeof binary - 1);
    const char nohost11[] = "GET /livez HTTP/1.1\r\nContent-Length: -5\r\n\r\n";
    expect_refused("negative Content-Length", nohost11, sizeof nohost11 - 1);
    const char badcl[] = "PUT /v1/cache/lim/cl HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n";
    expect_refused("non-numeric Content-Length", badcl, sizeof badcl - 1);
    const char nocolon[] = "GET /livez HTTP/1.1\r\nHost a\r\nthis is not a header\r\n\r\n";
    expect_refused("header without a colon", nocolon, sizeof nocolon - 1);
    /* RFC 9112 6.1: chunked in HTTP/1.0 is faulty framing: refused and closed, never kept
     * alive for a pipelined request behind it; nothing is stored. */
    const char te10[] = "PUT /v1/cache/lim/te10 HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "1\r\na\r\n0\r\n\r\nGET /livez HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(expect_refused("HTTP/1.0 with chunked", te10, sizeof te10 - 1), 400);
    expect_error("GET", "/v1/cache/lim/te10", NULL, NULL, 404, "not_found");
    /* A bare LF ending a line of the head. */
    const char lf[] = "GET /livez HTTP/1.1\nHost: a\n\n";
    assert_int_equal(expect_refused("bare LF line ends", lf, sizeof lf - 1), 400);

    /* Headers over 16 KiB. */
    size_t hl = 20000;
    char *big = malloc(hl + 200);
    int o = sprintf(big, "GET /livez HTTP/1.1\r\nHost: a\r\nX-Big: ");
    memset(big + o, 'a', hl);
    strcpy(big + o + hl, "\r\n\r\n");
    expect_refused("headers over 16 KiB", big, strlen(big));
    /* Many small headers adding up to over 16 KiB. */
    o = sprintf(big, "GET /livez HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; o < 18000; i++)
        o += sprintf(big + o, "X-H%d: %s\r\n", i, "0123456789012345678901234567890123456789");
    strcpy(big + o, "\r\n");
    expect_refused("many headers over 16 KiB", big, strlen(big));
    free(big);

    /* A body over STRATA_MAX_BODY (2 MiB here): 413 and close, nothing stored. */
    const char over[] = "PUT /v1/cache/lim/huge HTTP/1.1\r\nHost: a\r\nContent-Length: 4194304\r\n"
                        "\r\nsome of the body";
    int st = expect_refused("body over the limit", over, sizeof over - 1);
    assert_int_equal(st, 413);
    expect_error("GET", "/v1/cache/lim/huge", NULL, NULL, 404, "not_found");

    /* A raw control character in the path. */
    const char ctl[] = "GET /v1/cache/lim/a\x01z HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    st = expect_refused("control character in the path", ctl, sizeof ctl - 1);
    assert_int_equal(st, 400);
}

static void test_raw_body_limit_small(void **state)
{
    (void)state;
    /* STRATA_MAX_BODY at its minimum (1 KiB): a 2 KiB PUT is refused, 1 KiB passes. */
    const char *env[] = {"STRATA_WORKERS=1", "STRATA_MAX_BODY=1024", NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    char body[2048];
    memset(body, 'b', sizeof body);
    sh_resp *r = sh_request(s, "PUT", "/v1/cache/lim/fits", NULL, body, 1024);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    char req[4096];
    int o =
        sprintf(req, "PUT /v1/cache/lim/over HTTP/1.1\r\nHost: a\r\nContent-Length: 2048\r\n\r\n");
    memcpy(req + o, body, 2048);
    size_t n = 0;
    int eof = 0;
    char *out = sh_raw_exchange(sh_port(s), req, (size_t)o + 2048, 3000, &n, &eof);
    if (first_status(out) != 413 || !eof)
        fprintf(stderr, "2 KiB body, 1 KiB limit: eof=%d: %.300s\n", eof, out);
    assert_int_equal(first_status(out), 413);
    assert_true(eof);
    free(out);
    /* Chunked, over the limit too. */
    o = sprintf(req, "PUT /v1/cache/lim/over HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                     "\r\n800\r\n");
    memcpy(req + o, body, 2048);
    o += 2048;
    o += sprintf(req + o, "\r\n0\r\n\r\n");
    out = sh_raw_exchange(sh_port(s), req, (size_t)o, 3000, &n, &eof);
    if (first_status(out) != 413 || !eof)
        fprintf(stderr, "2 KiB chunked body, 1 KiB limit: eof=%d: %.300s\n", eof, out);
    assert_int_equal(first_status(out), 413);
    assert_true(eof);
    free(out);
    r = sh_request(s, "GET", "/v1/cache/lim/over", NULL, NULL, 0);
    SH_EXPECT_STATUS(r, 404);
    sh_resp_free(r);
    assert_true(sh_healthy(s));
    assert_int_equal(sh_stop_check(s), 0);
}

/* The body of the i-th response in buf (Content-Length framing), copied into out. */
static int nth_response(const char *buf, size_t len, int i, int *status, char *out, size_t cap)
{
    size_t off = 0;
    for (int k = 0; off < len; k++) {
        const char *start = buf + off;
        const char *end = memmem(start, len - off, "\r\n\r\n", 4);
        if (end == NULL)
            return -1;
        int st = 0;
        sscanf(start, "HTTP/1.%*d %d", &st);
        size_t clen = 0;
        const char *cl = memmem(start, (size_t)(end - start), "Content-Length:", 15);
        if (cl != NULL)
            clen = strtoul(cl + 15, NULL, 10);
        if (st == 204 || st == 304)
            clen = 0;
        const char *body = end + 4;
        if (k == i) {
            *status = st;
            size_t n = clen < cap - 1 ? clen : cap - 1;
            memcpy(out, body, n);
            out[n] = '\0';
            return 0;
        }
        off = (size_t)(body - buf) + clen;
    }
    return -1;
}

static void test_pipelining(void **state)
{
    (void)state;
    SH_CALL_EXPECT(srv, "PUT", "/v1/cache/pipe/one", NULL, NULL, "text/plain", "first", 204);
    SH_CALL_EXPECT(srv, "PUT", "/v1/cache/pipe/two", NULL, NULL, "text/plain", "second", 204);
    for (int i = 0; i < 3; i++) /* warm */
        SH_CALL_EXPECT(srv, "GET", "/v1/cache/pipe/two", NULL, NULL, NULL, NULL, 200);
    /* A Redis miss (answered later) first, then an L1 hit, a probe, a write and its read. */
    const char reqs[] = "GET /v1/cache/pipe/absent HTTP/1.1\r\nHost: a\r\n\r\n"
                        "GET /v1/cache/pipe/two HTTP/1.1\r\nHost: a\r\n\r\n"
                        "GET /livez HTTP/1.1\r\nHost: a\r\n\r\n"
                        "PUT /v1/cache/pipe/three HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"
                        "third"
                        "GET /v1/cache/pipe/three HTTP/1.1\r\nHost: a\r\n\r\n"
                        "GET /v1/cache/pipe/one HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    int fd = sh_raw_connect(sh_port(srv));
    assert_true(fd >= 0);
    assert_int_equal(sh_raw_send(fd, reqs, sizeof reqs - 1), 0);
    size_t n = 0;
    int eof = 0;
    char *out = sh_raw_read_responses(fd, 6, 5000, &n, &eof);
    close(fd);
    const struct {
        int status;
        const char *body; /* NULL: not checked */
    } want[] = {{404, NULL}, {200, "second"}, {200, "{\"status\":\"ok\"}\n"},
                {204, ""},   {200, "third"},  {200, "first"}};
    for (int i = 0; i < 6; i++) {
        int st = 0;
        char body[256];
        if (nth_response(out, n, i, &st, body, sizeof body) != 0 || st != want[i].status ||
            (want[i].body && strcmp(body, want[i].body) != 0)) {
            fprintf(stderr, "pipelined answer %d: expected %d %s; all answers:\n%.2000s\n", i,
                    want[i].status, want[i].body ? want[i].body : "", out);
            fail();
        }
    }
    free(out);
    assert_true(sh_healthy(srv));
}

static void test_idle_and_slow(void **state)
{
    (void)state;
    /* Idle: nothing sent; closed after about STRATA_IDLE_TIMEOUT (1 s). */
    int fd = sh_raw_connect(sh_port(srv));
    assert_true(fd >= 0);
    long t0 = sh_now_ms();
    int eof = 0;
    size_t n = 0;
    char *out = sh_raw_read_all(fd, 6000, &n, &eof);
    long took = sh_now_ms() - t0;
    close(fd);
    free(out);
    if (!eof || took > 4000)
        fprintf(stderr, "idle connection: eof=%d after %ld ms\n", eof, took);
    assert_true(eof);
    assert_true(took >= 500 && took <= 4000);

    /* Slow headers: half a request, then nothing. */
    fd = sh_raw_connect(sh_port(srv));
    assert_true(fd >= 0);
    const char half[] = "GET /livez HTTP/1.1\r\nHost: a\r\n";
    assert_int_equal(sh_raw_send(fd, half, sizeof half - 1), 0);
    t0 = sh_now_ms();
    out = sh_raw_read_all(fd, 6000, &n, &eof);
    took = sh_now_ms() - t0;
    close(fd);
    if (!eof || took > 4000 || (n > 0 && first_status(out) < 400))
        fprintf(stderr, "slow headers: eof=%d after %ld ms: %.200s\n", eof, took, out);
    assert_true(eof && took <= 4000);
    assert_true(n == 0 || first_status(out) >= 400);
    free(out);

    /* Slow body: 5 of 10 bytes, then nothing. */
    fd = sh_raw_connect(sh_port(srv));
    assert_true(fd >= 0);
    const char part[] =
        "PUT /v1/cache/lim/slow HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12345";
    assert_int_equal(sh_raw_send(fd, part, sizeof part - 1), 0);
    t0 = sh_now_ms();
    out = sh_raw_read_all(fd, 6000, &n, &eof);
    took = sh_now_ms() - t0;
    close(fd);
    if (!eof || took > 4000 || (n > 0 && first_status(out) < 400))
        fprintf(stderr, "slow body: eof=%d after %ld ms: %.200s\n", eof, took, out);
    assert_true(eof && took <= 4000);
    assert_true(n == 0 || first_status(out) >= 400);
    free(out);
    expect_error("GET", "/v1/cache/lim/slow", NULL, NULL, 404, "not_found");

    /* A keep-alive connection left idle after an answer: closed too. */
    fd = sh_raw_connect(sh_port(srv));
    assert_true(fd >= 0);
    const char one[] = "GET /livez HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(sh_raw_send(fd, one, sizeof one - 1), 0);
    out = sh_raw_read_responses(fd, 1, 3000, &n, &eof);
    assert_int_equal(first_status(out), 200);
    free(out);
    t0 = sh_now_ms();
    out = sh_raw_read_all(fd, 6000, &n, &eof);
    took = sh_now_ms() - t0;
    close(fd);
    free(out);
    assert_true(eof && took <= 4000);
    assert_true(sh_healthy(srv));
}

/* Many connections that send nothing or a request, then go away: the server keeps serving. */
/* A body must arrive whole within STRATA_BODY_TIMEOUT of its head, however steadily its bytes
 * trickle: one byte every 0.5 s stays under the idle timeout (10 s) forever, and was never cut. */
static void test_trickled_body_times_out(void **state)
{
    (void)state;
    const char *env[] = {"STRATA_WORKERS=1", "STRATA_IDLE_TIMEOUT=10", "STRATA_BODY_TIMEOUT=2",
                         NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    int fd = sh_raw_connect(sh_port(s));
    assert_true(fd >= 0);
    const char head[] =
        "PUT /v1/cache/lim/trickle HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\n\r\n";
    assert_int_equal(sh_raw_send(fd, head, sizeof head - 1), 0);
    long t0 = sh_now_ms();
    int sent = 0, eof = 0;
    size_t n = 0;
    char *out = NULL;
    while (sent < 40 && sh_now_ms() - t0 < 8000) {
        if (sh_raw_send(fd, "x", 1) != 0)
            break; /* closed on us */
        sent++;
        free(out);
        out = sh_raw_read_all(fd, 500, &n, &eof); /* waits up to 0.5 s for an answer */
        if (n > 0 || eof)
            break;
    }
    long took = sh_now_ms() - t0;
    if (n == 0 && !eof)
        out = sh_raw_read_all(fd, 3000, &n, &eof);
    close(fd);
    if (n == 0 || first_status(out) != 408 || took > 5000)
        fprintf(stderr, "trickled body: %d bytes sent, %ld ms, %zu bytes back: %.200s\n", sent,
                took, n, out ? out : "");
    assert_true(n > 0);
    assert_int_equal(first_status(out), 408);  /* request_timeout, then closed */
    assert_true(took >= 1500 && took <= 5000); /* 2 s, generously */
    free(out);
    assert_int_equal(sh_stop_check(s), 0);
}

static void test_connection_churn(void **state)
{
    (void)state;
    int fds[200];
    for (int i = 0; i < 200; i++)
        fds[i] = sh_raw_connect(sh_port(srv));
    SH_CALL_EXPECT(srv, "GET", "/livez", NULL, NULL, NULL, NULL, 200);
    for (int i = 0; i < 200; i++) {
        if (fds[i] >= 0 && i % 2 == 0)
            sh_raw_send(fds[i], "GET /livez HTTP/1.1\r\nHost: a\r\n\r\n", 33);
        if (fds[i] >= 0)
            close(fds[i]); /* with the request unread or the answer unsent */
    }
    assert_true(sh_healthy(srv));
}

/* Opens a connection, gets one answer on it and keeps it open. Returns the fd. */
static int open_served(int port)
{
    int fd = sh_raw_connect(port);
    assert_true(fd >= 0);
    const char one[] = "GET /livez HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(sh_raw_send(fd, one, sizeof one - 1), 0);
    size_t n = 0;
    int eof = 0;
    char *out = sh_raw_read_responses(fd, 1, 3000, &n, &eof);
    int st = first_status(out);
    free(out);
    if (st != 200)
        fprintf(stderr, "open_served: no answer on a new connection (eof=%d)\n", eof);
    assert_int_equal(st, 200);
    return fd;
}

/* One worker: connections come and go, more stay open than the first table of open connections
 * holds. Every new connection is still answered. */
static void test_open_connections(void **state)
{
    (void)state;
    const char *env[] = {"STRATA_WORKERS=1", NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    int fds[120];
    for (int i = 0; i < 20; i++)
        fds[i] = open_served(sh_port(s));
    for (int i = 0; i < 20; i += 2)
        close(fds[i]);
    sh_sleep_ms(200); /* the server sees the closes */
    for (int i = 20; i < 120; i++)
        fds[i] = open_served(sh_port(s));
    for (int i = 1; i < 120; i++)
        if (i >= 20 || i % 2 == 1)
            close(fds[i]);
    assert_true(sh_healthy(s));
    assert_int_equal(sh_stop_check(s), 0);
}

/* Counts the lines of s's log that contain needle. */
static int log_lines_with(const sh_server *s, const char *needle)
{
    char *log = sh_log(s);
    int n = 0;
    for (const char *p = log; (p = strstr(p, needle)) != NULL; p++)
        n++;
    free(log);
    return n;
}

/* The soft limit of open files of a process, from /proc. */
static long nofile_of(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/limits", (int)pid);
    FILE *f = fopen(path, "r");
    long soft = -1;
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "Max open files", 14) == 0)
            soft = atol(line + 26);
    if (f != NULL)
        fclose(f);
    return soft;
}

/* Descriptors: the soft limit is raised to the hard one; a hard limit too low for
 * STRATA_MAX_CONNECTIONS lowers it, with one warning; 80 silent clients against 64
 * descriptors neither exhaust them nor make the worker spin on failing accepts (it wrote
 * hundreds of thousands of "Too many open files" lines before), and served clients go on. */
static void test_descriptor_limit(void **state)
{
    (void)state;
    const char *env1000[] = {"STRATA_WORKERS=1", "STRATA_MAX_CONNECTIONS=1000", NULL};
    sh_next_nofile(64, 4096);
    sh_server *s = sh_start(env1000, NULL);
    assert_non_null(s);
    assert_int_equal(nofile_of(sh_pid(s)), 4096); /* raised */
    assert_int_equal(log_lines_with(s, "descriptor limit"), 0);
    assert_int_equal(sh_stop_check(s), 0);

    const char *env[] = {"STRATA_WORKERS=1", "STRATA_IDLE_TIMEOUT=30", NULL};
    sh_next_nofile(64, 64);
    s = sh_start(env, NULL);
    assert_non_null(s);
    assert_int_equal(log_lines_with(s, "cannot hold STRATA_MAX_CONNECTIONS=10000"), 1);
    int served = open_served(sh_port(s)), silent[80];
    for (int i = 0; i < 80; i++)
        silent[i] = sh_raw_connect(sh_port(s));
    sh_sleep_ms(1500);
    const char again[] = "GET /livez HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(sh_raw_send(served, again, sizeof again - 1), 0);
    size_t n = 0;
    int eof = 0;
    char *out = sh_raw_read_responses(served, 1, 3000, &n, &eof);
    assert_int_equal(first_status(out), 200); /* an open connection is still served */
    free(out);
    assert_true(log_lines_with(s, "cannot accept") <= 1);
    assert_int_equal(log_lines_with(s, "Error from accept"), 0);
    for (int i = 0; i < 80; i++)
        if (silent[i] >= 0)
            close(silent[i]);
    close(served);
    sh_sleep_ms(300);
    assert_true(sh_healthy(s)); /* a new connection is accepted and served */
    assert_int_equal(sh_stop_check(s), 0);
}

static void test_clean_exit(void **state)
{
    (void)state;
    int rc = sh_stop_check(srv);
    srv = NULL;
    assert_int_equal(rc, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_values_and_bodies),
        cmocka_unit_test(test_routes_and_methods),
        cmocka_unit_test(test_raw_malformed),
        cmocka_unit_test(test_raw_body_limit_small),
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_idle_and_slow),
        cmocka_unit_test(test_trickled_body_times_out),
        cmocka_unit_test(test_connection_churn),
        cmocka_unit_test(test_open_connections),
        cmocka_unit_test(test_descriptor_limit),
        cmocka_unit_test(test_clean_exit),
    };
    SH_TEST_FILTER();
    return cmocka_run_group_tests(tests, setup, teardown);
}
