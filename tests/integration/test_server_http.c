/* test_server_http.c: the HTTP/1.1 protocol of strata serve, end to end over raw TCP and curl.
 *
 * It pins down what the HTTP layer (src/server/conn.c) must do, as RFC 7230/7231 ask of an
 * origin server, and RFC 9110/9112 where those are more precise:
 *   - Expect: 100-continue: a 100 within 1 s, or a final 413 and close when the announced body
 *     is over STRATA_MAX_BODY;
 *   - request bodies: chunked (several chunks, a trailer; chunk extensions ignored), the largest
 *     value (1 MiB) over curl and written in small slices, a request sent one byte at a time;
 *   - connections: HTTP/1.0 closes unless keep-alive, "Connection: close" closes and nothing sent
 *     after it is processed, 200 pipelined requests answered in order, HEAD sends no body;
 *   - every response: Date, Content-Length (none on 204, no body on 204/304), standard reason
 *     phrases;
 *   - clients going away with a request in flight (at Redis, or at a paused Redis);
 *   - query strings and percent-encoded keys;
 *   - bad framing: NUL in a header, Content-Lengths that overflow 64 bits or disagree,
 *     Content-Length with Transfer-Encoding, HTTP/1.1 without Host (or with two).
 * After bad input the server must still answer /livez with a clean log, and exit 0 on SIGTERM.
 * One redis-server and one server (2 workers, STRATA_MAX_BODY 2 MiB) serve the group; the
 * disconnect test starts its own pair, as it pauses Redis. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "server_harness.h"

#define VALUE_MAX ((size_t)1 << 20) /* the value limit (docs/api.md "Limits") */
#define OVER_BODY "4194304"         /* a Content-Length over STRATA_MAX_BODY (2 MiB here) */
#define LIVEZ     "{\"status\":\"ok\"}\n"
#define READ_MS   5000

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
    const char *env[] = {redis_env, "STRATA_WORKERS=2", "STRATA_MAX_BODY=2097152", NULL};
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

/* ---- helpers ----------------------------------------------------------------------------- */

/* n pseudo-random bytes (splitmix64) from seed: values no codec could mangle unnoticed. */
static unsigned char *random_bytes(size_t n, uint64_t seed)
{
    unsigned char *p = malloc(n);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        uint64_t z = (seed += 0x9e3779b97f4a7c15u);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        p[i] = (unsigned char)(z ^ (z >> 31));
    }
    return p;
}

/* GET path over curl must answer 200 with exactly value[0..len). */
static void expect_stored(const char *path, const void *value, size_t len)
{
    sh_resp *r = sh_request(srv, "GET", path, NULL, NULL, 0);
    SH_EXPECT_STATUS(r, 200);
    if (r->body_len != len || memcmp(r->body, value, len) != 0)
        fprintf(stderr, "%s: %zu bytes, expected %zu (or they differ)\n", r->what, r->body_len,
                len);
    assert_int_equal(r->body_len, len);
    assert_memory_equal(r->body, value, len);
    sh_resp_free(r);
}

static void expect_status(const char *method, const char *path, long status)
{
    SH_CALL_EXPECT(srv, method, path, NULL, NULL, NULL, NULL, status);
}

/* One parsed response. */
typedef struct msg {
    int minor; /* HTTP/1.minor */
    int status;
    char reason[64];
    char *head; /* the status line and header lines, each ending in CRLF */
    char *body; /* body_len bytes, NUL-terminated */
    size_t body_len;
    long clen; /* Content-Length, -1 when absent */
} msg;

static void msg_clear(msg *m)
{
    free(m->head);
    free(m->body);
    memset(m, 0, sizeof *m);
}

/* Copies the value of the first header called name into out. Returns 1, or 0 if absent. */
static int msg_header(const msg *m, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *line = strstr(m->head, "\r\n") + 2; /* after the status line */
    for (const char *eol; (eol = strstr(line, "\r\n")) != NULL; line = eol + 2) {
        if ((size_t)(eol - line) <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
            continue;
        const char *v = line + nl + 1, *e = eol;
        while (v < e && (*v == ' ' || *v == '\t'))
            v++;
        while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        size_t n = (size_t)(e - v) < cap - 1 ? (size_t)(e - v) : cap - 1;
        memcpy(out, v, n);
        out[n] = '\0';
        return 1;
    }
    return 0;
}

static int msg_has_token(const msg *m, const char *name, const char *token)
{
    char v[256];
    return msg_header(m, name, v, sizeof v) && strcasestr(v, token) != NULL;
}

/* Parses one response at p[0..n); head_req: it answers a HEAD. Returns 1 (m filled, *used
 * bytes), 0 if it is not complete yet, -1 if p does not start with a response. A response
 * without Content-Length ends at EOF. */
static int parse_msg(const char *p, size_t n, int eof, int head_req, msg *m, size_t *used)
{
    memset(m, 0, sizeof *m);
    if (memcmp(p, "HTTP/1.", n < 7 ? n : 7) != 0)
        return -1;
    const char *end = memmem(p, n, "\r\n\r\n", 4);
    if (end == NULL)
        return eof ? -1 : 0;
    size_t hlen = (size_t)(end - p) + 4;
    if (sscanf(p, "HTTP/1.%1d %3d", &m->minor, &m->status) != 2)
        return -1;
    const char *eol = memmem(p, hlen, "\r\n", 2);
    if (eol - p > 13 && p[12] == ' ')
        snprintf(m->reason, sizeof m->reason, "%.*s", (int)(eol - p - 13), p + 13);
    m->head = strndup(p, hlen - 2);
    char cl[64];
    m->clen = msg_header(m, "Content-Length", cl, sizeof cl) ? strtol(cl, NULL, 10) : -1;
    size_t blen = 0;
    if (head_req || m->status / 100 == 1 || m->status == 204 || m->status == 304)
        blen = 0;
    else if (m->clen >= 0 && n - hlen >= (size_t)m->clen)
        blen = (size_t)m->clen;
    else if (m->clen < 0 && eof)
        blen = n - hlen;
    else {
        msg_clear(m);
        return 0;
    }
    m->body = malloc(blen + 1);
    assert_non_null(m->body);
    memcpy(m->body, p + hlen, blen);
    m->body[blen] = '\0';
    m->body_len = blen;
    *used = hlen + blen;
    return 1;
}

/* A raw client connection and what it has read; responses are taken from it one at a time. */
typedef struct conn {
    int fd;
    char *buf;
    size_t len, cap, off; /* off: where the next response starts */
    int eof;
} conn;

static conn *conn_open(void)
{
    conn *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->fd = sh_raw_connect(sh_port(srv));
    assert_true(c->fd >= 0);
    c->cap = 1 << 16;
    c->buf = calloc(1, c->cap);
    assert_non_null(c->buf);
    return c;
}

static void conn_free(conn *c)
{
    close(c->fd);
    free(c->buf);
    free(c);
}

static void conn_send(conn *c, const void *data, size_t len)
{
    assert_int_equal(sh_raw_send(c->fd, data, len), 0);
}

static void conn_sends(conn *c, const char *s)
{
    conn_send(c, s, strlen(s));
}

/* Waits up to wait_ms for bytes. Returns 1 if some came, 0 on EOF (or a reset), -1 if none. */
static int conn_fill(conn *c, long wait_ms)
{
    struct pollfd p = {c->fd, POLLIN, 0};
    int pr;
    do {
        pr = poll(&p, 1, (int)(wait_ms > 0 ? wait_ms : 0));
    } while (pr < 0 && errno == EINTR);
    if (pr <= 0)
        return -1;
    if (c->cap - c->len < (1 << 15)) {
        c->cap *= 2;
        c->buf = realloc(c->buf, c->cap);
        assert_non_null(c->buf);
    }
    ssize_t n;
    do {
        n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        c->eof = 1;
        return 0;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    return 1;
}

/* The next response, waiting up to timeout_ms. Returns 1 (clear m after), or 0 if none came
 * complete. Bytes that are not a response where one should start fail the test. */
static int conn_next(conn *c, int head_req, long timeout_ms, msg *m)
{
    long deadline = sh_now_ms() + timeout_ms;
    for (;;) {
        size_t used = 0;
        int r = parse_msg(c->buf + c->off, c->len - c->off, c->eof, head_req, m, &used);
        if (r < 0) {
            fprintf(stderr, "not an HTTP response at byte %zu: [%.300s]\n", c->off,
                    c->buf + c->off);
            fail();
        }
        if (r == 1) {
            c->off += used;
            return 1;
        }
        long left = deadline - sh_now_ms();
        if (c->eof || left <= 0 || conn_fill(c, left) < 0) {
            fprintf(stderr, "no complete response in %ld ms (eof=%d): [%.300s]\n", timeout_ms,
                    c->eof, c->buf + c->off);
            return 0;
        }
    }
}

/* Reads the next response: it must have this status and, unless body is NULL, this body. */
static void expect_next(conn *c, int head_req, int status, const void *body, size_t body_len)
{
    msg m;
    assert_true(conn_next(c, head_req, READ_MS, &m));
    int ok = m.status == status &&
             (body == NULL || (m.body_len == body_len && memcmp(m.body, body, body_len) == 0));
    if (!ok)
        fprintf(stderr, "expected %d with %zu bytes of body, got: [%.400s] + %zu bytes [%.200s]\n",
                status, body ? body_len : 0, m.head, m.body_len, m.body);
    assert_true(ok);
    msg_clear(&m);
}

/* 1 if the server closes c within timeout_ms having sent nothing after the responses read. */
static int conn_closed(conn *c, long timeout_ms)
{
    long deadline = sh_now_ms() + timeout_ms;
    while (!c->eof && deadline - sh_now_ms() > 0 && conn_fill(c, deadline - sh_now_ms()) >= 0) {
    }
    if (c->len > c->off)
        fprintf(stderr, "%zu unexpected bytes: [%.300s]\n", c->len - c->off, c->buf + c->off);
    if (!c->eof)
        fprintf(stderr, "the connection is still open after %ld ms\n", timeout_ms);
    return c->eof && c->len == c->off;
}

/* 1 if c stays open and silent for ms. */
static int conn_quiet(conn *c, long ms)
{
    int r = conn_fill(c, ms);
    if (r >= 0)
        fprintf(stderr, "expected silence, got %s: [%.300s]\n", r ? "bytes" : "EOF",
                c->buf + c->off);
    return r < 0;
}

/* Sends req on a fresh connection and reads one response into m. Returns 1, or 0 if none. */
static int exchange(const void *req, size_t len, int head_req, msg *m)
{
    conn *c = conn_open();
    sh_raw_send(c->fd, req, len); /* the server may close before taking it all */
    int got = conn_next(c, head_req, READ_MS, m);
    conn_free(c);
    return got;
}

/* Sends req on a fresh connection: the answer must be a 4xx (any if want_status is 0) and the
 * connection then closed; the server stays healthy. Returns the status. */
static int expect_rejected(const char *what, const void *req, size_t len, int want_status)
{
    conn *c = conn_open();
    sh_raw_send(c->fd, req, len);
    msg m;
    int got = conn_next(c, 0, READ_MS, &m);
    int status = got ? m.status : 0;
    int closed = got && conn_closed(c, 3000);
    if (!got || status / 100 != 4 || (want_status && status != want_status) || !closed)
        fprintf(stderr, "%s: expected %d (4xx) and close, got %d, closed=%d\n", what, want_status,
                status, closed);
    if (got)
        msg_clear(&m);
    conn_free(c);
    assert_true(status / 100 == 4 && (!want_status || status == want_status) && closed);
    assert_true(sh_healthy(srv));
    return status;
}

/* ---- Expect: 100-continue ---------------------------------------------------------------- */

static void test_expect_continue(void **state)
{
    (void)state;
    unsigned char *body = random_bytes(5000, 1);
    conn *c = conn_open();
    conn_sends(c, "PUT /v1/cache/http/expect HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                  "Content-Type: application/octet-stream\r\nContent-Length: 5000\r\n\r\n");
    msg m;
    assert_true(conn_next(c, 0, 1000, &m)); /* the headers alone: 100 within 1 s */
    if (m.status != 100)
        fprintf(stderr, "expected 100 Continue first, got [%s]\n", m.head);
    assert_int_equal(m.status, 100);
    msg_clear(&m);
    conn_send(c, body, 5000);
    expect_next(c, 0, 204, NULL, 0);
    conn_free(c);
    expect_stored("/v1/cache/http/expect", body, 5000);
    free(body);
}

/* Over STRATA_MAX_BODY: the final 413 instead of the 100 (RFC 7231 5.1.1), then close. */
static void test_expect_continue_over_limit(void **state)
{
    (void)state;
    conn *c = conn_open();
    conn_sends(c, "PUT /v1/cache/http/expect-big HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                  "Content-Length: " OVER_BODY "\r\n\r\n");
    msg m;
    assert_true(conn_next(c, 0, 3000, &m));
    if (m.status != 413)
        fprintf(stderr, "expected 413, got [%s]\n", m.head);
    assert_int_equal(m.status, 413);
    msg_clear(&m);
    assert_true(conn_closed(c, 3000));
    conn_free(c);
    expect_status("GET", "/v1/cache/http/expect-big", 404);
    assert_true(sh_healthy(srv));
}

/* ---- request bodies ---------------------------------------------------------------------- */

/* Chunks of several sizes (hex in both cases), one holding what looks like a last chunk, and a
 * trailer; a GET pipelined right behind it must be parsed after the trailer. */
static void test_chunked_body(void **state)
{
    (void)state;
    unsigned char *big = random_bytes(300, 2);
    const char tricky[] = "\r\n0\r\n\r\n(not the end)"; /* 0x14 bytes */
    char req[2048];
    int o = sprintf(req,
                    "PUT /v1/cache/http/chunked HTTP/1.1\r\nHost: a\r\n"
                    "Content-Type: application/octet-stream\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n14\r\n%s\r\n12C\r\n",
                    tricky);
    memcpy(req + o, big, 300);
    o += 300;
    o += sprintf(req + o, "\r\n1\r\n!\r\n0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n"
                          "GET /v1/cache/http/chunked HTTP/1.1\r\nHost: a\r\n\r\n");
    char want[400];
    memcpy(want, "hello", 5);
    assert_int_equal(strlen(tricky), 0x14);
    memcpy(want + 5, tricky, 20);
    memcpy(want + 25, big, 300);
    want[325] = '!';
    conn *c = conn_open();
    conn_send(c, req, (size_t)o);
    expect_next(c, 0, 204, NULL, 0);
    expect_next(c, 0, 200, want, 326);
    conn_free(c);
    expect_stored("/v1/cache/http/chunked", want, 326);
    free(big);
}

/* Chunk extensions must be ignored (RFC 7230 4.1.1), on the last chunk too. */
static void test_chunk_extensions(void **state)
{
    (void)state;
    const char req[] = "PUT /v1/cache/http/chunk-ext HTTP/1.1\r\nHost: a\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n"
                       "5;name=value\r\nhello\r\n"
                       "6;quoted=\"a;b=c\"\r\n world\r\n"
                       "1;flag\r\n!\r\n"
                       "0;last=1\r\nX-Trailer: t\r\n\r\n";
    conn *c = conn_open();
    conn_send(c, req, sizeof req - 1);
    expect_next(c, 0, 204, NULL, 0);
    conn_free(c);
    expect_stored("/v1/cache/http/chunk-ext", "hello world!", 12);
}

/* The largest value over curl, byte-exact both ways. */
static void test_max_value_curl(void **state)
{
    (void)state;
    unsigned char *v = random_bytes(VALUE_MAX, 3);
    const char *h[] = {"Content-Type: application/octet-stream", NULL};
    sh_resp *r = sh_request(srv, "PUT", "/v1/cache/http/onemib", h, v, VALUE_MAX);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    expect_stored("/v1/cache/http/onemib", v, VALUE_MAX);
    free(v);
}

/* The largest value written in pieces: the head in 1-7 byte slices, the body in 64 KiB ones. */
static void test_max_value_sliced(void **state)
{
    (void)state;
    unsigned char *v = random_bytes(VALUE_MAX, 4);
    char head[256];
    size_t hn = (size_t)snprintf(head, sizeof head,
                                 "PUT /v1/cache/http/sliced HTTP/1.1\r\nHost: a\r\n"
                                 "Content-Type: application/octet-stream\r\n"
                                 "Content-Length: %zu\r\n\r\n",
                                 VALUE_MAX);
    conn *c = conn_open();
    for (size_t i = 0, k = 0; i < hn; k++) {
        size_t n = 1 + k % 7 < hn - i ? 1 + k % 7 : hn - i;
        conn_send(c, head + i, n);
        i += n;
        sh_sleep_ms(1);
    }
    for (size_t i = 0; i < VALUE_MAX; i += 65536) {
        conn_send(c, v + i, 65536);
        sh_sleep_ms(1);
    }
    expect_next(c, 0, 204, NULL, 0);
    conn_sends(c, "GET /v1/cache/http/sliced HTTP/1.1\r\nHost: a\r\n\r\n");
    expect_next(c, 0, 200, v, VALUE_MAX);
    conn_free(c);
    expect_stored("/v1/cache/http/sliced", v, VALUE_MAX);
    free(v);
}

static void send_bytewise(conn *c, const char *s)
{
    for (size_t i = 0; s[i] != '\0'; i++) {
        conn_send(c, s + i, 1);
        sh_sleep_ms(1);
    }
}

static void test_one_byte_at_a_time(void **state)
{
    (void)state;
    conn *c = conn_open();
    send_bytewise(c, "PUT /v1/cache/http/bytewise HTTP/1.1\r\nHost: a\r\n"
                     "Content-Length: 11\r\n\r\nhello world");
    expect_next(c, 0, 204, NULL, 0);
    send_bytewise(c, "GET /v1/cache/http/bytewise HTTP/1.1\r\nHost: a\r\n\r\n");
    expect_next(c, 0, 200, "hello world", 11);
    conn_free(c);
}

/* ---- connections ------------------------------------------------------------------------- */

/* HTTP/1.0 without keep-alive: answered, then closed (RFC 7230 6.3). */
static void test_http10_closes(void **state)
{
    (void)state;
    conn *c = conn_open();
    conn_sends(c, "GET /livez HTTP/1.0\r\n\r\n");
    expect_next(c, 0, 200, LIVEZ, strlen(LIVEZ));
    assert_true(conn_closed(c, 3000));
    conn_free(c);
}

/* HTTP/1.0 with keep-alive: the answer says the connection persists (an HTTP/1.0 answer with
 * "Connection: keep-alive", or an HTTP/1.1 one without "close"), and it does. */
static void test_http10_keep_alive(void **state)
{
    (void)state;
    const char get[] = "GET /livez HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    conn *c = conn_open();
    conn_sends(c, get);
    msg m;
    assert_true(conn_next(c, 0, READ_MS, &m));
    assert_int_equal(m.status, 200);
    assert_string_equal(m.body, LIVEZ);
    int persists = m.minor == 0 ? msg_has_token(&m, "Connection", "keep-alive")
                                : !msg_has_token(&m, "Connection", "close");
    if (!persists)
        fprintf(stderr, "the answer does not keep the connection: [%s]\n", m.head);
    assert_true(persists);
    msg_clear(&m);
    assert_true(conn_quiet(c, 300));
    conn_sends(c, "PUT /v1/cache/http/ka10 HTTP/1.0\r\nConnection: keep-alive\r\n"
                  "Content-Length: 2\r\n\r\nka");
    expect_next(c, 0, 204, NULL, 0);
    conn_sends(c, get);
    expect_next(c, 0, 200, LIVEZ, strlen(LIVEZ));
    conn_free(c);
    expect_stored("/v1/cache/http/ka10", "ka", 2);
}

/* "Connection: close": answered (with "close" too), then closed; a request pipelined behind it
 * is not processed (RFC 7230 6.6). */
static void test_connection_close(void **state)
{
    (void)state;
    conn *c = conn_open();
    conn_sends(c,
               "GET /livez HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
               "PUT /v1/cache/http/after-close HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx");
    msg m;
    assert_true(conn_next(c, 0, READ_MS, &m));
    assert_int_equal(m.status, 200);
    assert_string_equal(m.body, LIVEZ);
    if (!msg_has_token(&m, "Connection", "close"))
        fprintf(stderr, "no \"Connection: close\" in the answer: [%s]\n", m.head);
    assert_true(msg_has_token(&m, "Connection", "close"));
    msg_clear(&m);
    assert_true(conn_closed(c, 3000));
    conn_free(c);
    expect_status("GET", "/v1/cache/http/after-close", 404);
}

/* 200 requests in one write: hits, misses (answered by Redis, later) and probes, answered in
 * order, exactly 200 of them. */
static void test_pipeline_200(void **state)
{
    (void)state;
    char path[64], val[32];
    for (int i = 0; i < 20; i++) {
        snprintf(path, sizeof path, "/v1/cache/pipe200/k%d", i);
        snprintf(val, sizeof val, "value-%d", i);
        SH_CALL_EXPECT(srv, "PUT", path, NULL, NULL, "text/plain", val, 204);
    }
    size_t cap = 200 * 80, o = 0;
    char *reqs = malloc(cap);
    assert_non_null(reqs);
    for (int i = 0; i < 200; i++) {
        if (i % 4 == 1)
            o += (size_t)snprintf(reqs + o, cap - o,
                                  "GET /v1/cache/pipe200/absent%d HTTP/1.1\r\nHost: a\r\n\r\n", i);
        else if (i % 4 == 2)
            o += (size_t)snprintf(reqs + o, cap - o, "GET /livez HTTP/1.1\r\nHost: a\r\n\r\n");
        else
            o += (size_t)snprintf(reqs + o, cap - o,
                                  "GET /v1/cache/pipe200/k%d HTTP/1.1\r\nHost: a\r\n\r\n", i % 20);
    }
    conn *c = conn_open();
    conn_send(c, reqs, o);
    free(reqs);
    for (int i = 0; i < 200; i++) {
        msg m;
        int got = conn_next(c, 0, READ_MS, &m);
        if (!got)
            fprintf(stderr, "only %d of 200 answers\n", i);
        assert_true(got);
        snprintf(val, sizeof val, "value-%d", i % 20);
        int ok = i % 4 == 1   ? m.status == 404 && strstr(m.body, "no such key") != NULL
                 : i % 4 == 2 ? m.status == 200 && strcmp(m.body, LIVEZ) == 0
                              : m.status == 200 && strcmp(m.body, val) == 0;
        if (!ok)
            fprintf(stderr, "answer %d out of order or wrong: [%s] [%s]\n", i, m.head, m.body);
        assert_true(ok);
        msg_clear(&m);
    }
    assert_true(conn_quiet(c, 300)); /* nothing more */
    conn_free(c);
}

/* A CR/LF after a body (RFC 7230 3.5 lets a client send one) is skipped, and the request after
 * it is answered: the previous body's offsets must not apply to it (fuzz_http found them pushing
 * the read buffer's end past its allocation). */
static void test_crlf_after_body(void **state)
{
    (void)state;
    unsigned char *body = random_bytes(3000, 7);
    char head[160];
    int hl = snprintf(head, sizeof head,
                      "PUT /v1/cache/crlf/k HTTP/1.1\r\nHost: a\r\nContent-Length: 3000\r\n\r\n");
    conn *c = conn_open();
    conn_send(c, head, (size_t)hl);
    conn_send(c, body, 3000);
    conn_sends(c, "\r\nGET /v1/cache/crlf/k HTTP/1.1\r\nHost: a\r\n\r\n");
    expect_next(c, 0, 204, NULL, 0);
    expect_next(c, 0, 200, body, 3000);
    shutdown(c->fd, SHUT_WR);
    assert_true(conn_closed(c, READ_MS));
    conn_free(c);
    free(body);
}

/* Answers over the high-water mark: a 64 KiB value read 32 times in one pipelined send. Every
 * answer comes without the client sending anything more or closing (they were held back until
 * then when the socket took the first batch at once). */
static void test_pipeline_past_high_water(void **state)
{
    (void)state;
    unsigned char *big = random_bytes(64 * 1024, 11);
    sh_resp *r = sh_request(srv, "PUT", "/v1/cache/hw/k", NULL, big, 64 * 1024);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    char reqs[32 * 48];
    size_t o = 0;
    for (int i = 0; i < 32; i++)
        o += (size_t)snprintf(reqs + o, sizeof reqs - o,
                              "GET /v1/cache/hw/k HTTP/1.1\r\nHost: a\r\n\r\n");
    conn *c = conn_open();
    conn_send(c, reqs, o);
    for (int i = 0; i < 32; i++)
        expect_next(c, 0, 200, big, 64 * 1024);
    conn_free(c);
    free(big);
}

/* HEAD: the Content-Length of the GET and no body, so what follows parses right after. */
static void test_head_framing(void **state)
{
    (void)state;
    const char val[] = "a value of 31 bytes, for a HEAD";
    SH_CALL_EXPECT(srv, "PUT", "/v1/cache/http/head", NULL, NULL, "text/plain", val, 204);
    conn *c = conn_open();
    conn_sends(c, "HEAD /v1/cache/http/head HTTP/1.1\r\nHost: a\r\n\r\n"
                  "GET /v1/cache/http/head HTTP/1.1\r\nHost: a\r\n\r\n"
                  "HEAD /v1/cache/http/head-absent HTTP/1.1\r\nHost: a\r\n\r\n"
                  "GET /livez HTTP/1.1\r\nHost: a\r\n\r\n");
    msg m;
    assert_true(conn_next(c, 1, READ_MS, &m));
    assert_int_equal(m.status, 200);
    if (m.clen != (long)strlen(val))
        fprintf(stderr, "HEAD: Content-Length %ld, expected %zu\n", m.clen, strlen(val));
    assert_int_equal(m.clen, strlen(val));
    msg_clear(&m);
    expect_next(c, 0, 200, val, strlen(val));
    expect_next(c, 1, 404, NULL, 0);
    expect_next(c, 0, 200, LIVEZ, strlen(LIVEZ));
    assert_true(conn_quiet(c, 300));
    conn_free(c);
}

/* ---- what every response carries -------------------------------------------------------- */

typedef struct rcase {
    const char *what;
    char *req;
    size_t len;
    int head, status;
    const char *reason; /* RFC 7231 6.1 (and 7232, 6585) */
} rcase;

#define NCASES 18

static void add_case(rcase *cs, int *n, const char *what, int head, int status, const char *reason,
                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *req = NULL;
    int len = vasprintf(&req, fmt, ap);
    va_end(ap);
    assert_true(len > 0 && *n < NCASES);
    cs[(*n)++] = (rcase){what, req, (size_t)len, head, status, reason};
}

/* One request per status the server gives, each on its own connection ("Connection: close"
 * where it is HTTP/1.1, so an answer without Content-Length still ends). */
static int build_cases(rcase *cs)
{
    static int round; /* fresh rate-limit keys each time */
    round++;
    int n = 0;
    SH_CALL_EXPECT(srv, "PUT", "/v1/cache/http/fr", NULL, NULL, "text/plain", "framing", 204);
    sh_resp *r = sh_request(srv, "GET", "/v1/cache/http/fr", NULL, NULL, 0);
    SH_EXPECT_STATUS(r, 200);
    const char *etag = sh_resp_header(r, "ETag");
    assert_non_null(etag);
    const char *rl = "{\"limit\":1,\"period\":60}";
    char rlpath[64];
    snprintf(rlpath, sizeof rlpath, "/v1/ratelimit/http-cases-%d", round);
    SH_CALL_EXPECT(srv, "POST", rlpath, NULL, NULL, "application/json", rl, 200);
    char key[600];
    memset(key, 'k', 513);
    key[513] = '\0';
#define CLOSE "Host: a\r\nConnection: close\r\n"
    add_case(cs, &n, "GET /livez", 0, 200, "OK", "GET /livez HTTP/1.1\r\n" CLOSE "\r\n");
    add_case(cs, &n, "GET /livez, HTTP/1.0", 0, 200, "OK", "GET /livez HTTP/1.0\r\n\r\n");
    add_case(cs, &n, "GET a value", 0, 200, "OK",
             "GET /v1/cache/http/fr HTTP/1.1\r\n" CLOSE "\r\n");
    add_case(cs, &n, "HEAD a value", 1, 200, "OK",
             "HEAD /v1/cache/http/fr HTTP/1.1\r\n" CLOSE "\r\n");
    add_case(cs, &n, "PUT", 0, 204, "No Content",
             "PUT /v1/cache/http/fr2 HTTP/1.1\r\n" CLOSE "Content-Length: 1\r\n\r\nx");
    add_case(cs, &n, "GET If-None-Match", 0, 304, "Not Modified",
             "GET /v1/cache/http/fr HTTP/1.1\r\n" CLOSE "If-None-Match: %s\r\n\r\n", etag);
    add_case(cs, &n, "POST /v1/ratelimit, allowed", 0, 200, "OK",
             "POST /v1/ratelimit/http-other-%d HTTP/1.1\r\n" CLOSE "Content-Length: %zu\r\n\r\n%s",
             round, strlen(rl), rl);
    add_case(cs, &n, "bad JSON", 0, 400, "Bad Request",
             "POST /v1/invalidate HTTP/1.1\r\n" CLOSE "Content-Length: 1\r\n\r\n{");
    add_case(cs, &n, "malformed header", 0, 400, "Bad Request",
             "GET /livez HTTP/1.1\r\n" CLOSE "not a header\r\n\r\n");
    add_case(cs, &n, "GET a missing key", 0, 404, "Not Found",
             "GET /v1/cache/http/absent HTTP/1.1\r\n" CLOSE "\r\n");
    add_case(cs, &n, "HEAD a missing key", 1, 404, "Not Found",
             "HEAD /v1/cache/http/absent HTTP/1.1\r\n" CLOSE "\r\n");
    add_case(cs, &n, "no route", 0, 404, "Not Found", "GET /nope HTTP/1.1\r\n" CLOSE "\r\n");
    add_case(cs, &n, "wrong method", 0, 405, "Method Not Allowed",
             "POST /v1/cache/http/fr HTTP/1.1\r\n" CLOSE "Content-Length: 0\r\n\r\n");
    add_case(cs, &n, "If-Match mismatch", 0, 412, "Precondition Failed",
             "PUT /v1/cache/http/fr HTTP/1.1\r\n" CLOSE
             "If-Match: \"nope\"\r\nContent-Length: 1\r\n\r\nx");
    add_case(cs, &n, "value over 1 MiB", 0, 413, "Payload Too Large",
             "PUT /v1/cache/http/fr3 HTTP/1.1\r\n" CLOSE "Content-Length: %zu\r\n\r\n%0*d",
             VALUE_MAX + 1, (int)(VALUE_MAX + 1), 0);
    add_case(cs, &n, "body over STRATA_MAX_BODY", 0, 413, "Payload Too Large",
             "PUT /v1/cache/http/fr3 HTTP/1.1\r\n" CLOSE "Content-Length: " OVER_BODY "\r\n\r\n");
    add_case(cs, &n, "key over 512 bytes", 0, 414, "URI Too Long",
             "GET /v1/cache/http/%s HTTP/1.1\r\n" CLOSE "\r\n", key);
    add_case(cs, &n, "rate limited", 0, 429, "Too Many Requests",
             "POST %s HTTP/1.1\r\n" CLOSE "Content-Length: %zu\r\n\r\n%s", rlpath, strlen(rl), rl);
#undef CLOSE
    sh_resp_free(r);
    return n;
}

static void free_cases(rcase *cs, int n)
{
    for (int i = 0; i < n; i++)
        free(cs[i].req);
}

/* A Date in the IMF-fixdate form within a minute of now (RFC 7231 7.1.1.1-2). */
static int date_ok(const char *v)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == NULL || *end != '\0' || strlen(v) != 29)
        return 0;
    time_t t = timegm(&tm), now = time(NULL);
    return t > now - 60 && t < now + 60;
}

/* Every 2xx, 3xx and 4xx answer has a Date (RFC 7231 7.1.1.2: MUST). Every answer but 204 and
 * 304 has a Content-Length (RFC 7230 3.3.2: SHOULD when the size is known; the new layer always
 * knows it) equal to the body it sends; a 204 has none (MUST NOT). */
static void test_date_and_content_length(void **state)
{
    (void)state;
    rcase cs[NCASES];
    int n = build_cases(cs), bad = 0;
    for (int i = 0; i < n; i++) {
        msg m;
        char v[128];
        if (!exchange(cs[i].req, cs[i].len, cs[i].head, &m)) {
            fprintf(stderr, "%s: no answer\n", cs[i].what);
            bad++;
            continue;
        }
        const char *why = NULL;
        if (m.status != cs[i].status)
            why = "unexpected status";
        else if (!msg_header(&m, "Date", v, sizeof v))
            why = "no Date";
        else if (!date_ok(v))
            why = "Date not an IMF-fixdate of now";
        else if (m.status == 204 && m.clen >= 0)
            why = "Content-Length on a 204";
        else if (m.status != 204 && m.status != 304 && m.clen < 0)
            why = "no Content-Length";
        else if (!cs[i].head && m.status != 204 && m.status != 304 && m.body_len != (size_t)m.clen)
            why = "Content-Length differs from the body";
        if (why != NULL) {
            fprintf(stderr, "%s: %s: [%s]\n", cs[i].what, why, m.head);
            bad++;
        }
        msg_clear(&m);
    }
    free_cases(cs, n);
    assert_true(sh_healthy(srv));
    assert_int_equal(bad, 0);
}

/* The reason phrases of RFC 7231 6.1 (RFC 6585 for 429), including the answers the HTTP layer
 * gives itself (400, and 413 over STRATA_MAX_BODY). */
static void test_reason_phrases(void **state)
{
    (void)state;
    rcase cs[NCASES];
    int n = build_cases(cs), bad = 0;
    for (int i = 0; i < n; i++) {
        msg m;
        if (!exchange(cs[i].req, cs[i].len, cs[i].head, &m)) {
            fprintf(stderr, "%s: no answer\n", cs[i].what);
            bad++;
            continue;
        }
        if (m.status != cs[i].status || strcmp(m.reason, cs[i].reason) != 0) {
            fprintf(stderr, "%s: expected \"%d %s\", got \"%d %s\"\n", cs[i].what, cs[i].status,
                    cs[i].reason, m.status, m.reason);
            bad++;
        }
        msg_clear(&m);
    }
    free_cases(cs, n);
    /* The interim answer too. */
    conn *c = conn_open();
    conn_sends(c, "PUT /v1/cache/http/fr4 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                  "Content-Length: 1\r\n\r\n");
    msg m;
    assert_true(conn_next(c, 0, 1000, &m));
    if (m.status != 100 || strcmp(m.reason, "Continue") != 0) {
        fprintf(stderr, "expected \"100 Continue\", got \"%d %s\"\n", m.status, m.reason);
        bad++;
    }
    msg_clear(&m);
    conn_free(c);
    assert_true(sh_healthy(srv));
    assert_int_equal(bad, 0);
}

/* ---- clients that go away ---------------------------------------------------------------- */

/* Sends req on a fresh connection to port and closes it at once, the answer unread. */
static void send_and_close(int port, const char *req)
{
    int fd = sh_raw_connect(port);
    assert_true(fd >= 0);
    sh_raw_send(fd, req, strlen(req));
    close(fd);
}

/* Requests that go to Redis (a miss, a write, a SCAN), their clients gone before the answer;
 * then the same while Redis hangs, so the answers come after the clients left. Own server and
 * Redis: pausing Redis would disturb the group's. */
static void test_disconnect_in_flight(void **state)
{
    (void)state;
    rh_server *r = rh_start(NULL);
    assert_non_null(r);
    char url[320];
    snprintf(url, sizeof url, "REDIS_URL=%s", rh_url(r));
    const char *env[] = {url, "STRATA_WORKERS=2", "REDIS_SOCKET_TIMEOUT=1", NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    int port = sh_port(s);
    char req[256];
    for (int i = 0; i < 100; i++) {
        if (i % 3 == 0)
            snprintf(req, sizeof req, "GET /v1/cache/gone/miss%d HTTP/1.1\r\nHost: a\r\n\r\n", i);
        else if (i % 3 == 1)
            snprintf(req, sizeof req,
                     "PUT /v1/cache/gone/k%d HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"
                     "value",
                     i);
        else
            snprintf(req, sizeof req, "GET /cache/keys?namespace=gone HTTP/1.1\r\nHost: a\r\n\r\n");
        send_and_close(port, req);
    }
    assert_true(sh_healthy(s));
    assert_int_equal(rh_pause(r), 0);
    for (int i = 0; i < 20; i++) {
        snprintf(req, sizeof req, "GET /v1/cache/gone/paused%d HTTP/1.1\r\nHost: a\r\n\r\n", i);
        send_and_close(port, req);
    }
    sh_sleep_ms(300);
    assert_int_equal(rh_resume(r), 0);
    sh_sleep_ms(1500); /* the answers to nobody go out */
    assert_true(sh_healthy(s));
    sh_resp *g = sh_request(s, "GET", "/v1/cache/gone/absent", NULL, NULL, 0);
    SH_EXPECT_STATUS(g, 404);
    sh_resp_free(g);
    assert_int_equal(sh_stop_check(s), 0);
    rh_stop(r);
}

/* ---- paths and queries ------------------------------------------------------------------- */

/* The keys /cache/keys lists for this query (all pages), as "k1|k2|" in the order given. */
static char *list_keys(const char *query)
{
    char path[512], cursor[64] = "0";
    size_t cap = 4096, o = 0;
    char *out = calloc(1, cap);
    assert_non_null(out);
    for (int page = 0; page < 50; page++) {
        snprintf(path, sizeof path, "/cache/keys?%s&cursor=%s", query, cursor);
        sh_resp *r = sh_request(srv, "GET", path, NULL, NULL, 0);
        SH_EXPECT_STATUS(r, 200);
        json_t *j = sh_resp_json(r);
        assert_non_null(j);
        size_t i;
        json_t *k;
        json_array_foreach(json_object_get(j, "keys"), i, k)
        {
            const char *name = json_string_value(json_object_get(k, "key"));
            assert_non_null(name);
            assert_true(o + strlen(name) + 2 < cap);
            o += (size_t)sprintf(out + o, "%s|", name);
        }
        snprintf(cursor, sizeof cursor, "%s", json_string_value(json_object_get(j, "cursor")));
        json_decref(j);
        sh_resp_free(r);
        if (strcmp(cursor, "0") == 0)
            return out;
    }
    fail_msg("/cache/keys?%s: no last page", query);
    return out;
}

static void test_query_strings(void **state)
{
    (void)state;
    /* Queries on routes that take none, or that do not know the parameter. */
    expect_status("GET", "/livez?probe=1", 200);
    expect_status("GET", "/livez?", 200);
    /* A query that sets something: the TTL (30 s, +-10% jitter; the default is 300 s). */
    SH_CALL_EXPECT(srv, "PUT", "/v1/cache/qs/ttl?ttl=30&tags=t1,t2", NULL, NULL, NULL, "t", 204);
    sh_resp *r = sh_request(srv, "GET", "/v1/cache/qs/ttl?unused=1", NULL, NULL, 0);
    SH_EXPECT_STATUS(r, 200);
    const char *cc = sh_resp_header(r, "Cache-Control");
    long age = -1;
    if (cc == NULL || sscanf(cc, "max-age=%ld", &age) != 1 || age < 1 || age > 33)
        fprintf(stderr, "Cache-Control after ?ttl=30: %s\n", cc ? cc : "(none)");
    assert_true(age >= 1 && age <= 33);
    sh_resp_free(r);
    /* Listing with a percent-encoded pattern: "a *" matches "a b", not "ab". */
    SH_CALL_EXPECT(srv, "PUT", "/v1/cache/qs/a%20b", NULL, NULL, NULL, "spaced", 204);
    SH_CALL_EXPECT(srv, "PUT", "/v1/cache/qs/ab", NULL, NULL, NULL, "joined", 204);
    char *keys = list_keys("namespace=qs&pattern=a%20%2A&limit=1000");
    if (strcmp(keys, "a b|") != 0)
        fprintf(stderr, "keys matching \"a *\": %s\n", keys);
    assert_string_equal(keys, "a b|");
    free(keys);
    keys = list_keys("namespace=qs&pattern=ab");
    assert_string_equal(keys, "ab|");
    free(keys);
    r = sh_request(srv, "GET", "/cache/key/qs/a%20b?tenant=default", NULL, NULL, 0);
    SH_EXPECT_STATUS(r, 200);
    json_t *j = sh_resp_json(r);
    assert_string_equal(json_string_value(json_object_get(j, "key")), "a b");
    assert_string_equal(json_string_value(json_object_get(j, "value")), "spaced");
    json_decref(j);
    sh_resp_free(r);
}

/* Percent-encoded keys are decoded once, to the same key however they are spelled; '+' is a
 * plus in a path; an encoded '?' is part of the key, not a query. */
static void test_encoded_keys(void **state)
{
    (void)state;
    SH_CALL_EXPECT(srv, "PUT", "/v1/cache/enc/a%20b", NULL, NULL, NULL, "spaced", 204);
    expect_stored("/v1/cache/enc/a%20b", "spaced", 6);
    expect_stored("/v1/cache/enc/%61%20%62", "spaced", 6);
    expect_status("GET", "/v1/cache/enc/a+b", 404);
    SH_CALL_EXPECT(srv, "PUT", "/v1/cache/enc/1+1", NULL, NULL, NULL, "two", 204);
    expect_stored("/v1/cache/enc/1%2B1", "two", 3);
    expect_status("GET", "/v1/cache/enc/1%201", 404);
    SH_CALL_EXPECT(srv, "PUT", "/v1/cache/enc/what%3Fnot?ttl=60", NULL, NULL, NULL, "q", 204);
    expect_stored("/v1/cache/enc/what%3Fnot", "q", 1);
    expect_status("GET", "/v1/cache/enc/what", 404);
    sh_resp *r = sh_request(srv, "GET", "/cache/key/enc/what%3Fnot", NULL, NULL, 0);
    SH_EXPECT_STATUS(r, 200);
    json_t *j = sh_resp_json(r);
    assert_string_equal(json_string_value(json_object_get(j, "key")), "what?not");
    json_decref(j);
    sh_resp_free(r);
    /* The same over raw TCP, where nothing normalises the path on the way. */
    conn *c = conn_open();
    conn_sends(c, "GET /v1/cache/enc/a%20b HTTP/1.1\r\nHost: a\r\n\r\n"
                  "GET /v1/cache/enc/what%3fnot?x=%3F HTTP/1.1\r\nHost: a\r\n\r\n");
    expect_next(c, 0, 200, "spaced", 6);
    expect_next(c, 0, 200, "q", 1);
    conn_free(c);
}

/* ---- bad framing ------------------------------------------------------------------------- */

/* NUL in a header name: not a token, 4xx and close. NUL in a value: reject, or replace it with
 * a space (RFC 9110 5.5); never cut the value at it. */
static void test_nul_in_header(void **state)
{
    (void)state;
    const char name[] = "GET /livez HTTP/1.1\r\nHost: a\r\nX-Bad\0Name: v\r\n\r\n";
    expect_rejected("NUL in a header name", name, sizeof name - 1, 0);

    const char value[] = "PUT /v1/cache/http/nul HTTP/1.1\r\nHost: a\r\n"
                         "Content-Type: text/pl\0ain\r\nContent-Length: 1\r\n\r\nx";
    conn *c = conn_open();
    conn_send(c, value, sizeof value - 1);
    msg m;
    assert_true(conn_next(c, 0, READ_MS, &m));
    int status = m.status;
    msg_clear(&m);
    int closed = status / 100 == 4 && conn_closed(c, 3000);
    conn_free(c);
    if (status == 204) {
        sh_resp *r = sh_request(srv, "GET", "/v1/cache/http/nul", NULL, NULL, 0);
        SH_EXPECT_STATUS(r, 200);
        SH_EXPECT_HEADER(r, "Content-Type", "text/pl ain");
        sh_resp_free(r);
    } else {
        if (!closed)
            fprintf(stderr, "NUL in a header value: %d, closed=%d\n", status, closed);
        assert_true(closed);
        expect_status("GET", "/v1/cache/http/nul", 404);
    }
    assert_true(sh_healthy(srv));
}

/* Content-Lengths too large for 64 bits: refused (400, or 413 as too large) and closed, never
 * wrapped around: 2^64 + 5 must not read as 5 (RFC 9110 8.6). */
static void test_huge_content_length(void **state)
{
    (void)state;
    const char *cls[] = {"99999999999999999999", "18446744073709551621"};
    char req[256];
    for (int i = 0; i < 2; i++) {
        int n = snprintf(req, sizeof req,
                         "PUT /v1/cache/http/huge-cl HTTP/1.1\r\nHost: a\r\n"
                         "Content-Length: %s\r\n\r\nhello",
                         cls[i]);
        int st = expect_rejected(cls[i], req, (size_t)n, 0);
        assert_true(st == 400 || st == 413);
        expect_status("GET", "/v1/cache/http/huge-cl", 404);
    }
}

/* Content-Lengths that disagree: 400 and close (RFC 7230 3.3.3 item 4: MUST). */
static void test_conflicting_content_length(void **state)
{
    (void)state;
    const char two[] = "PUT /v1/cache/http/two-cl HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                       "Content-Length: 6\r\n\r\nhello!";
    expect_rejected("two Content-Length headers", two, sizeof two - 1, 400);
    const char list[] = "PUT /v1/cache/http/two-cl HTTP/1.1\r\nHost: a\r\n"
                        "Content-Length: 5, 6\r\n\r\nhello!";
    expect_rejected("a Content-Length list", list, sizeof list - 1, 400);
    expect_status("GET", "/v1/cache/http/two-cl", 404);
}

/* STRATA_MAX_CONNECTIONS bounds open connections: one over the limit is told 503 (JSON,
 * Retry-After, Connection: close) at once, without sending anything, and closed; once a place is
 * free again, a new connection is served. */
static void test_connection_limit(void **state)
{
    (void)state;
    const char *env[] = {"STRATA_WORKERS=1", "STRATA_MAX_CONNECTIONS=2", NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    int a = sh_raw_connect(sh_port(s)), b = sh_raw_connect(sh_port(s));
    assert_true(a >= 0 && b >= 0);
    usleep(100 * 1000); /* both accepted */
    int over = sh_raw_connect(sh_port(s));
    assert_true(over >= 0);
    size_t n = 0;
    int eof = 0;
    char *out = sh_raw_read_all(over, 3000, &n, &eof); /* nothing sent: the answer comes anyway */
    close(over);
    int ok = eof && strncmp(out, "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0 &&
             strstr(out, "Retry-After: 1\r\n") != NULL &&
             strstr(out, "Connection: close\r\n") != NULL &&
             strstr(out, "\"too_many_connections\"") != NULL;
    if (!ok)
        fprintf(stderr, "over the limit: eof=%d [%.300s]\n", eof, out);
    assert_true(ok);
    free(out);
    close(a);
    close(b);
    usleep(200 * 1000); /* their places are given back */
    sh_resp *r = sh_request(s, "GET", "/livez", NULL, NULL, 0);
    SH_EXPECT_STATUS(r, 200);
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(s), 0); /* also frees s */
}

/* RFC 7230 3.2.4: whitespace between a header name and its colon is a 400 (a proxy reading the
 * name differently could smuggle a request); a folded value (obs-fold) is refused too. */
static void test_header_name_space_and_fold(void **state)
{
    (void)state;
    const char space[] = "PUT /v1/cache/http/sp HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n"
                         "hello";
    expect_rejected("space before the colon", space, sizeof space - 1, 400);
    const char tab[] = "GET /livez HTTP/1.1\r\nHost\t: a\r\n\r\n";
    expect_rejected("tab before the colon", tab, sizeof tab - 1, 400);
    const char fold[] = "PUT /v1/cache/http/fold HTTP/1.1\r\nHost: a\r\nContent-Type: text/\r\n"
                        " plain\r\nContent-Length: 1\r\n\r\nx";
    expect_rejected("a folded header value", fold, sizeof fold - 1, 400);
    expect_status("GET", "/v1/cache/http/sp", 404);
    expect_status("GET", "/v1/cache/http/fold", 404);
}

/* Content-Length and Transfer-Encoding: chunked. RFC 7230 3.3.3 item 3: chunked wins (and the
 * message "ought to be handled as an error"); RFC 9112 6.1: the server MAY reject it, and MUST
 * close the connection after answering. So: 400, or the chunked body stored; either way closed,
 * and the bytes past Content-Length never read as a second request. */
static void test_content_length_and_chunked(void **state)
{
    (void)state;
    const char req[] = "PUT /v1/cache/http/cl-te HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    conn *c = conn_open();
    conn_send(c, req, sizeof req - 1);
    msg m;
    assert_true(conn_next(c, 0, READ_MS, &m));
    int status = m.status;
    msg_clear(&m);
    int closed = conn_closed(c, 3000);
    conn_free(c);
    if ((status != 400 && status != 204) || !closed)
        fprintf(stderr, "CL + TE: %d, closed=%d\n", status, closed);
    assert_true(status == 400 || status == 204);
    assert_true(closed);
    if (status == 204)
        expect_stored("/v1/cache/http/cl-te", "hello", 5);
    else
        expect_status("GET", "/v1/cache/http/cl-te", 404);
    assert_true(sh_healthy(srv));
}

/* An HTTP/1.1 request without Host, or with two: 400 (RFC 7230 5.4: MUST). */
static void test_host_required(void **state)
{
    (void)state;
    const char *reqs[] = {"GET /livez HTTP/1.1\r\n\r\n",
                          "GET /livez HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"};
    for (int i = 0; i < 2; i++) {
        msg m;
        assert_true(exchange(reqs[i], strlen(reqs[i]), 0, &m));
        if (m.status != 400)
            fprintf(stderr, "%s Host: expected 400, got [%s]\n", i ? "two" : "no", m.head);
        int status = m.status;
        msg_clear(&m);
        assert_int_equal(status, 400);
    }
    assert_true(sh_healthy(srv));
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
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_expect_continue_over_limit),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_chunk_extensions),
        cmocka_unit_test(test_max_value_curl),
        cmocka_unit_test(test_max_value_sliced),
        cmocka_unit_test(test_one_byte_at_a_time),
        cmocka_unit_test(test_http10_closes),
        cmocka_unit_test(test_http10_keep_alive),
        cmocka_unit_test(test_connection_close),
        cmocka_unit_test(test_pipeline_200),
        cmocka_unit_test(test_crlf_after_body),
        cmocka_unit_test(test_pipeline_past_high_water),
        cmocka_unit_test(test_head_framing),
        cmocka_unit_test(test_date_and_content_length),
        cmocka_unit_test(test_reason_phrases),
        cmocka_unit_test(test_disconnect_in_flight),
        cmocka_unit_test(test_query_strings),
        cmocka_unit_test(test_encoded_keys),
        cmocka_unit_test(test_nul_in_header),
        cmocka_unit_test(test_huge_content_length),
        cmocka_unit_test(test_conflicting_content_length),
        cmocka_unit_test(test_header_name_space_and_fold),
        cmocka_unit_test(test_connection_limit),
        cmocka_unit_test(test_content_length_and_chunked),
        cmocka_unit_test(test_host_required),
        cmocka_unit_test(test_clean_exit),
    };
    SH_TEST_FILTER();
    return cmocka_run_group_tests(tests, setup, teardown);
}
