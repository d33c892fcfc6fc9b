/* test_http_server.c: the HTTP layer (src/server/http) driven in-process: one end of a
 * socketpair is a connection of an http_server on a libevent base, the other is the client,
 * written and read from here between turns of the loop. No strata server behind it: the
 * callbacks are the test's.
 *
 * What the layer promises and each test would catch missing:
 * - an answer written in pieces to a client that does not read is told to stop once the socket
 *   is full (HTTP_WRITE_FULL), is resumed by on_writable once the client reads, and the client
 *   gets every byte, in order, with chunked framing when the length is unknown;
 * - a body handed to on_body as it arrives (HTTP_HEAD_STREAM): the first piece is consumed
 *   before the client sent the rest, and none of it is held in the server's body budget;
 * - the head callback sees the request before any body byte and before 100 Continue: a refusal
 *   there reaches the client instead of a 100, and closes the connection; an accepted head gets
 *   its 100 and its body;
 * - bodies gathered whole are held within the server's budget: past it a 503, and on_drop
 *   instead of on_request;
 * - the body deadline holds however slowly the body trickles in (the idle timer re-arms on
 *   every byte; the deadline does not);
 * - a body's buffer grows with the bytes that came, not with the length its head announces;
 * - the connection limit bounds sockets (accepting waits once the limit and a little room for
 *   refusals are open), and a failing accept (EMFILE) pauses accepting instead of spinning,
 *   is reported once, and the open connections are served meanwhile.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "http/http_server.h"

enum { BIG = 1 << 20, PIECE = 16 * 1024 };

typedef struct fixture {
    struct event_base *base;
    http_server *s;
    int fd; /* the client's end */
    /* what the callbacks do and saw */
    int verdict; /* on_head's answer, unless it refuses */
    int need_token;
    int heads, requests, drops, writables;
    int accept_reports, accept_err;
    unsigned long accept_reported;
    size_t pieces, body_len;
    char body[64 * 1024];
    /* a response in pieces */
    long long length; /* announced, or -1 */
    size_t total, sent;
    int full, wrote_while_full;
    http_conn *conn;
    /* what the client read */
    char *in;
    size_t in_len;
} fixture;

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 131 + (i >> 12));
}

/* ---- the server's callbacks --------------------------------------------------------------- */

static void answer(http_conn *c, int status, const char *body)
{
    const char *hdrs = "Content-Type: text/plain\r\n";
    http_conn_respond(c, status, hdrs, strlen(hdrs), body, strlen(body), NULL, NULL);
    http_conn_done(c);
}

static int on_head(http_conn *c, void *arg)
{
    fixture *f = arg;
    f->heads++;
    if (f->need_token && http_conn_header(c, "Authorization") == NULL) {
        answer(c, 401, "a token is required\n");
        return HTTP_HEAD_ANSWERED;
    }
    return f->verdict;
}

static int on_body(http_conn *c, const char *data, size_t len, void *arg)
{
    (void)c;
    fixture *f = arg;
    assert_true(f->body_len + len <= sizeof f->body);
    memcpy(f->body + f->body_len, data, len);
    f->body_len += len;
    f->pieces++;
    return 0;
}

/* Writes pieces until the body is all queued or the layer says stop. */
static void write_more(fixture *f)
{
    unsigned char piece[PIECE];
    while (f->sent < f->total) {
        size_t n = f->total - f->sent < PIECE ? f->total - f->sent : PIECE;
        for (size_t i = 0; i < n; i++)
            piece[i] = pattern(f->sent + i);
        if (f->full)
            f->wrote_while_full++;
        int rc = http_conn_write(f->conn, piece, n);
        assert_int_not_equal(rc, HTTP_WRITE_GONE);
        f->sent += n;
        if (rc == HTTP_WRITE_FULL) {
            f->full++;
            return; /* on_writable resumes */
        }
    }
    http_conn_end(f->conn);
    http_conn_done(f->conn);
    f->conn = NULL;
}

static void on_writable(http_conn *c, void *arg)
{
    fixture *f = arg;
    assert_ptr_equal(c, f->conn);
    f->writables++;
    f->full = 0;
    write_more(f);
}

static void on_request(http_conn *c, void *arg)
{
    fixture *f = arg;
    f->requests++;
    if (f->total > 0) {
        f->conn = c;
        const char *hdrs = "Content-Type: application/octet-stream\r\n";
        assert_int_equal(http_conn_start(c, 200, hdrs, strlen(hdrs), f->length), HTTP_WRITE_OK);
        write_more(f);
        return;
    }
    char text[64];
    size_t len;
    const char *body = http_conn_body(c, &len);
    snprintf(text, sizeof text, "pieces=%zu gathered=%zu\n", f->pieces, body ? len : 0);
    answer(c, 200, text);
}

static void on_drop(http_conn *c, void *arg)
{
    fixture *f = arg;
    f->drops++;
    if (f->verdict == HTTP_HEAD_STREAM)
        http_conn_done(c); /* a streamed request is the owner's until done */
}

static void on_accept_error(int err, unsigned long failures, void *arg)
{
    fixture *f = arg;
    f->accept_reports++;
    f->accept_err = err;
    f->accept_reported += failures;
}

/* ---- the client ----------------------------------------------------------------------------- */

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->base = event_base_new();
    http_limits lim = {.max_headers = 16 * 1024,
                       .max_body = 1 << 20,
                       .body_budget = 1 << 20,
                       .idle_timeout_s = 10,
                       .ctx_size = 64};
    http_callbacks cb = {.arg = f,
                         .on_head = on_head,
                         .on_body = on_body,
                         .on_request = on_request,
                         .on_drop = on_drop,
                         .on_writable = on_writable,
                         .on_accept_error = on_accept_error};
    f->s = http_server_new(f->base, &lim, &cb);
    assert_non_null(f->s);
    f->verdict = HTTP_HEAD_GATHER;
    f->length = -1;
    f->fd = -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    http_server_free(f->s);
    event_base_free(f->base);
    if (f->fd >= 0)
        close(f->fd);
    free(f->in);
    free(f);
    return 0;
}

/* A connection with small socket buffers (so a large answer fills them). */
static void connect_client(fixture *f, int small)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    if (small) {
        int size = 4096;
        for (int i = 0; i < 2; i++) {
            setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
            setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
        }
    }
    http_server_adopt(f->s, sv[0], NULL);
    f->fd = sv[1];
}

static void turn(fixture *f)
{
    event_base_loop(f->base, EVLOOP_NONBLOCK);
}

static void send_text(fixture *f, const char *s)
{
    size_t len = strlen(s);
    assert_int_equal(send(f->fd, s, len, 0), (ssize_t)len);
    turn(f);
}

/* Reads at most max bytes of what the server sent. Returns how many; -1 at its end. */
static long client_read(fixture *f, size_t max)
{
    char buf[8192];
    if (max > sizeof buf)
        max = sizeof buf;
    ssize_t n = recv(f->fd, buf, max, 0);
    if (n == 0)
        return -1;
    if (n < 0) {
        assert_true(errno == EAGAIN);
        return 0;
    }
    f->in = realloc(f->in, f->in_len + (size_t)n + 1);
    memcpy(f->in + f->in_len, buf, (size_t)n);
    f->in_len += (size_t)n;
    f->in[f->in_len] = '\0';
    return n;
}

/* Turns the loop and reads until the server closes or turns run out. Returns 1 at its end. */
static int read_all(fixture *f, int turns)
{
    for (int i = 0; i < turns; i++) {
        turn(f);
        long n;
        while ((n = client_read(f, 8192)) > 0)
            ;
        if (n < 0)
            return 1;
        if (i > 10)
            usleep(1000);
    }
    return 0;
}

/* ---- an answer in pieces to a slow reader ------------------------------------------------ */

/* Checks the client got one 200 whose body is the pattern, framed as said. */
static void check_pattern_answer(const fixture *f, int chunked)
{
    const char *end = strstr(f->in, "\r\n\r\n");
    assert_non_null(end);
    assert_memory_equal(f->in, "HTTP/1.1 200 OK\r\n", 17);
    const unsigned char *p = (const unsigned char *)end + 4,
                        *stop = (unsigned char *)f->in + f->in_len;
    size_t at = 0;
    if (!chunked) {
        assert_non_null(strstr(f->in, "Content-Length: 1048576\r\n"));
        assert_int_equal((size_t)(stop - p), (size_t)BIG);
        for (; at < BIG; at++)
            if (p[at] != pattern(at))
                fail_msg("byte %zu differs", at);
        return;
    }
    assert_non_null(strstr(f->in, "Transfer-Encoding: chunked\r\n"));
    for (;;) { /* chunk-size CRLF data CRLF ..., 0 CRLF CRLF */
        char *nl;
        unsigned long size = strtoul((const char *)p, &nl, 16);
        assert_memory_equal(nl, "\r\n", 2);
        p = (const unsigned char *)nl + 2;
        if (size == 0)
            break;
        for (unsigned long i = 0; i < size; i++, at++)
            if (p[i] != pattern(at))
                fail_msg("byte %zu differs", at);
        p += size;
        assert_memory_equal(p, "\r\n", 2);
        p += 2;
    }
    assert_int_equal(at, (size_t)BIG);
    assert_memory_equal(p, "\r\n", 2);
    assert_ptr_equal(p + 2, stop);
}

static void slow_reader(void **state, long long length)
{
    fixture *f = *state;
    f->total = BIG;
    f->length = length;
    connect_client(f, 1);
    send_text(f, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
    for (int i = 0; i < 20; i++)
        turn(f);
    /* Nobody reads: the writer was told to stop long before the end, and stopped. */
    assert_int_equal(f->requests, 1);
    assert_int_equal(f->full, 1);
    assert_true(f->sent < BIG / 4);
    assert_int_equal(f->wrote_while_full, 0);
    assert_int_equal(f->writables, 0);
    /* A slow reader: 4 KiB per turn; the writer is resumed, again and again. */
    for (int i = 0; i < 100000 && f->conn != NULL; i++) {
        client_read(f, 4096);
        turn(f);
        assert_int_equal(f->wrote_while_full, 0);
    }
    assert_null(f->conn); /* the whole body was written and the request done */
    assert_true(f->writables > 1);
    send_text(f, "GET /again HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    f->total = 0;
    assert_true(read_all(f, 100000));
    /* The first answer, then the second (kept alive after a body in pieces). */
    const char *second = memmem(f->in + 1, f->in_len - 1, "HTTP/1.1 200 OK\r\n", 17);
    assert_non_null(second);
    assert_non_null(strstr(second, "gathered=0\n"));
    size_t first_len = (size_t)(second - f->in);
    f->in_len = first_len;
    check_pattern_answer(f, length < 0);
}

static void test_slow_reader_with_length(void **state)
{
    slow_reader(state, BIG);
}

static void test_slow_reader_chunked(void **state)
{
    slow_reader(state, -1);
}

/* ---- a body consumed as it arrives ------------------------------------------------------- */

static void test_body_streamed_as_it_arrives(void **state)
{
    fixture *f = *state;
    f->verdict = HTTP_HEAD_STREAM;
    connect_client(f, 0);
    char piece[10000];
    send_text(f, "PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: 30000\r\n\r\n");
    assert_int_equal(f->heads, 1);
    assert_int_equal(f->body_len, 0);
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < sizeof piece; i++)
            piece[i] = (char)pattern(k * sizeof piece + i);
        assert_int_equal(send(f->fd, piece, sizeof piece, 0), (ssize_t)sizeof piece);
        for (int i = 0; i < 5; i++)
            turn(f);
        /* Consumed before the client sent the rest, and never held by the server. */
        assert_int_equal(f->body_len, (k + 1) * sizeof piece);
        assert_int_equal(http_server_body_held(f->s), 0);
        assert_int_equal(f->requests, k == 2); /* once the whole body is in */
    }
    assert_true(f->pieces >= 3);
    for (size_t i = 0; i < f->body_len; i++)
        if ((unsigned char)f->body[i] != pattern(i))
            fail_msg("body byte %zu differs", i);
    turn(f);
    assert_int_equal(f->requests, 1);
    send_text(f, "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert_true(read_all(f, 1000));
    /* Streamed, so nothing was gathered: "gathered=0" in the answer to the PUT. */
    assert_non_null(strstr(f->in, "gathered=0\n"));
}

static void test_chunked_body_streamed(void **state)
{
    fixture *f = *state;
    f->verdict = HTTP_HEAD_STREAM;
    connect_client(f, 0);
    send_text(f,
              "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    assert_int_equal(f->body_len, 5);
    send_text(f, "6\r\n world\r\n");
    assert_int_equal(f->body_len, 11);
    assert_int_equal(f->requests, 0);
    send_text(f, "0\r\n\r\n");
    assert_int_equal(f->requests, 1);
    assert_memory_equal(f->body, "hello world", 11);
}

static void test_streamed_body_client_leaves(void **state)
{
    fixture *f = *state;
    f->verdict = HTTP_HEAD_STREAM;
    connect_client(f, 0);
    send_text(f, "PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789");
    assert_int_equal(f->body_len, 10);
    close(f->fd); /* gone mid-body: the owner is told, once, from the loop */
    f->fd = -1;
    for (int i = 0; i < 10; i++)
        turn(f);
    assert_int_equal(f->drops, 1);
    assert_int_equal(f->requests, 0);
    assert_int_equal(http_server_alive(f->s), 0); /* its done freed the connection */
}

/* ---- the head decides before 100 Continue ------------------------------------------------ */

static void test_head_refuses_before_continue(void **state)
{
    fixture *f = *state;
    f->need_token = 1;
    connect_client(f, 0);
    send_text(f, "PUT /v HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    assert_true(read_all(f, 1000)); /* answered and closed, without the body */
    assert_int_equal(f->heads, 1);
    assert_int_equal(f->requests, 0);
    assert_null(strstr(f->in, "100 Continue"));
    assert_memory_equal(f->in, "HTTP/1.1 401 Unauthorized\r\n", 27);
    assert_non_null(strstr(f->in, "Connection: close\r\n"));
    assert_non_null(strstr(f->in, "a token is required"));
}

static void test_head_accepts_then_continue(void **state)
{
    fixture *f = *state;
    f->need_token = 1;
    connect_client(f, 0);
    send_text(f, "PUT /v HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\nContent-Length: 5\r\n"
                 "Expect: 100-continue\r\n\r\n");
    turn(f);
    client_read(f, 8192);
    assert_non_null(f->in);
    assert_string_equal(f->in, "HTTP/1.1 100 Continue\r\n\r\n");
    send_text(f, "hello");
    assert_int_equal(f->requests, 1);
    send_text(f,
              "GET /x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\nConnection: close\r\n\r\n");
    assert_true(read_all(f, 1000));
    assert_non_null(strstr(f->in, "pieces=0 gathered=5\n"));
}

/* ---- the body budget and the body deadline ---------------------------------------------- */

static void test_body_budget(void **state)
{
    fixture *f = *state;
    http_limits lim = {.max_headers = 16 * 1024,
                       .max_body = 1 << 20,
                       .body_budget = 100,
                       .idle_timeout_s = 10,
                       .ctx_size = 64};
    http_server_set_limits(f->s, &lim);
    connect_client(f, 0);
    send_text(f, "PUT /v HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n");
    assert_int_equal(http_server_body_held(f->s), 100); /* held from the head on */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    http_server_adopt(f->s, sv[0], NULL);
    const char *over = "PUT /w HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx";
    assert_int_equal(send(sv[1], over, strlen(over), 0), (ssize_t)strlen(over));
    for (int i = 0; i < 10; i++)
        turn(f);
    char buf[1024] = "";
    ssize_t n = recv(sv[1], buf, sizeof buf - 1, 0);
    assert_true(n > 0);
    assert_memory_equal(buf, "HTTP/1.1 503 Service Unavailable\r\n", 34);
    assert_non_null(strstr(buf, "Retry-After: 1\r\n"));
    assert_int_equal(f->heads, 2);
    assert_int_equal(f->drops, 1); /* the refused one's owner is told, not called */
    assert_int_equal(f->requests, 0);
    close(sv[1]);
    char body[100];
    memset(body, 'b', sizeof body);
    assert_int_equal(send(f->fd, body, sizeof body, 0), (ssize_t)sizeof body);
    turn(f);
    assert_int_equal(f->requests, 1);
    assert_int_equal(http_server_body_held(f->s), 0); /* given back once answered */
}

/* A head that announces a large body pins no more memory than the bytes that came. */
static void test_buffer_grows_with_what_arrives(void **state)
{
    fixture *f = *state;
    http_limits lim = {
        .max_headers = 16 * 1024, .max_body = 16 << 20, .idle_timeout_s = 10, .ctx_size = 64};
    http_server_set_limits(f->s, &lim);
    connect_client(f, 0);
    send_text(f, "PUT /v HTTP/1.1\r\nHost: a\r\nContent-Length: 16000000\r\n\r\n");
    char some[10000];
    memset(some, 'b', sizeof some);
    assert_int_equal(send(f->fd, some, sizeof some, 0), (ssize_t)sizeof some);
    for (int i = 0; i < 5; i++)
        turn(f);
    assert_int_equal(http_server_body_held(f->s), 16000000);    /* the budget counts the claim */
    assert_true(http_server_buffered(f->s) <= 4 * sizeof some); /* memory, only what came */
    assert_int_equal(f->requests, 0);
}

static uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void test_body_deadline(void **state)
{
    fixture *f = *state;
    http_limits lim = {.max_headers = 16 * 1024,
                       .max_body = 1 << 20,
                       .idle_timeout_s = 10,
                       .body_timeout_s = 1,
                       .ctx_size = 64};
    http_server_set_limits(f->s, &lim);
    connect_client(f, 0);
    send_text(f, "PUT /v HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n");
    uint64_t t0 = ms_now();
    int ended = 0;
    /* A byte every 100 ms: the idle timer (10 s) never fires, the body deadline (1 s) does. */
    while (!ended && ms_now() - t0 < 5000) {
        if (send(f->fd, "b", 1, MSG_NOSIGNAL) != 1)
            break;
        for (int i = 0; i < 10 && !ended; i++) {
            usleep(10000);
            turn(f);
            long n;
            while ((n = client_read(f, 8192)) > 0)
                ;
            ended = n < 0;
        }
    }
    assert_non_null(f->in);
    assert_memory_equal(f->in, "HTTP/1.1 408 Request Timeout\r\n", 30);
    assert_true(ms_now() - t0 < 2500);
    assert_int_equal(f->requests, 0);
    assert_int_equal(f->drops, 1);
}

/* Reads until the server closes or ms pass. Returns the ms it took, or -1. */
static long until_closed(fixture *f, long ms)
{
    uint64_t t0 = ms_now();
    while ((long)(ms_now() - t0) < ms) {
        turn(f);
        long n;
        while ((n = client_read(f, 8192)) > 0)
            ;
        if (n < 0)
            return (long)(ms_now() - t0);
        usleep(5000);
    }
    return -1;
}

static void limits_with(fixture *f, unsigned idle_s, unsigned body_s, unsigned linger_ms)
{
    http_limits lim = {.max_headers = 16 * 1024,
                       .max_body = 1 << 20,
                       .idle_timeout_s = idle_s,
                       .body_timeout_s = body_s,
                       .linger_ms = linger_ms,
                       .ctx_size = 64};
    http_server_set_limits(f->s, &lim);
}

static void test_head_deadline_is_a_timer(void **state)
{
    fixture *f = *state;
    limits_with(f, 1, 0, 0);
    connect_client(f, 0);
    send_text(f, "GET /slow HTTP/1.1\r\n");
    usleep(600 * 1000);
    send_text(f, "Host: a\r\n"); /* then nothing: the idle timer alone would wait 1 s more */
    long took = until_closed(f, 3000);
    assert_true(took >= 0);
    assert_true(took < 800); /* the head's deadline: 1 s from its first byte, not from its last */
    assert_memory_equal(f->in, "HTTP/1.1 408 Request Timeout\r\n", 30);
}

static void test_body_deadline_silent_client(void **state)
{
    fixture *f = *state;
    limits_with(f, 10, 1, 0);
    connect_client(f, 0);
    send_text(f, "PUT /v HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab");
    long took = until_closed(f, 5000); /* the idle timeout is 10 s */
    assert_true(took >= 0 && took < 2000);
    assert_memory_equal(f->in, "HTTP/1.1 408 Request Timeout\r\n", 30);
    assert_int_equal(f->drops, 1);
}

static void test_linger_is_bounded(void **state)
{
    fixture *f = *state;
    limits_with(f, 10, 0, 300);
    connect_client(f, 0);
    /* Refused (no Host), then the client neither reads to the end nor closes nor sends. */
    send_text(f, "GET / HTTP/1.1\r\n\r\n");
    assert_true(until_closed(f, 1000) >= 0); /* the answer, then our write side shut */
    assert_memory_equal(f->in, "HTTP/1.1 400 Bad Request\r\n", 26);
    uint64_t t0 = ms_now();
    while (http_server_alive(f->s) > 0 && ms_now() - t0 < 5000) {
        turn(f);
        usleep(5000);
    }
    /* Closed at the linger bound, not at the 10 s idle timeout. */
    assert_int_equal(http_server_alive(f->s), 0);
    assert_true(ms_now() - t0 < 1500);
}

/* ---- accepting -------------------------------------------------------------------------- */

static int listen_tcp(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 64), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* A client connected through the listener's backlog (loopback: at once, accepted or not). */
static int connect_tcp(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void run_ms(fixture *f, long ms)
{
    uint64_t t0 = ms_now();
    while ((long)(ms_now() - t0) < ms) {
        turn(f);
        usleep(1000);
    }
}

/* Sends a request on fd while the loop turns, and returns the status of the answer (0: none). */
static int ask(fixture *f, int fd)
{
    const char *req = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req))
        return 0;
    run_ms(f, 50);
    char buf[512] = "";
    ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    return n > 12 ? atoi(buf + 9) : 0;
}

static void listen_on(fixture *f, int *port)
{
    char err[128];
    assert_int_equal(http_server_listen(f->s, listen_tcp(port), err, sizeof err), 0);
}

static void test_descriptors_bounded(void **state)
{
    fixture *f = *state;
    http_limits lim = {.max_headers = 16 * 1024,
                       .max_body = 1 << 20,
                       .max_connections = 2,
                       .idle_timeout_s = 10,
                       .ctx_size = 64};
    http_server_set_limits(f->s, &lim);
    unsigned most = http_server_most_open(2);
    assert_int_equal(most, 4); /* 2, and room to refuse 2 more */
    int port, fd[10];
    listen_on(f, &port);
    for (int i = 0; i < 10; i++)
        fd[i] = connect_tcp(port);
    run_ms(f, 200);
    assert_int_equal(http_server_open(f->s), most); /* the other 6 wait in the kernel's queue */
    int served = 0, refused = 0;
    for (int i = 0; i < 10; i++) {
        int st = ask(f, fd[i]);
        served += st == 200;
        refused += st == 503;
    }
    assert_int_equal(served, 2);
    assert_int_equal(refused, 2);
    assert_int_equal(http_server_open(f->s), most);
    for (int i = 0; i < 10; i++)
        close(fd[i]);
    run_ms(f, 200); /* the waiting ones are accepted in turn, see their clients gone, close */
    assert_int_equal(http_server_open(f->s), 0);
    int again = connect_tcp(port);
    assert_int_equal(ask(f, again), 200); /* accepting again */
    close(again);
}

static void test_failing_accept_pauses(void **state)
{
    fixture *f = *state;
    int port, served = -1, waiting[5];
    listen_on(f, &port);
    int open = connect_tcp(port);
    run_ms(f, 50);
    assert_int_equal(http_server_open(f->s), 1);
    for (int i = 0; i < 5; i++)
        waiting[i] = connect_tcp(port); /* in the backlog: accept will need a descriptor */
    struct rlimit was, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &was), 0);
    low = was;
    low.rlim_cur = (rlim_t)dup(0); /* the lowest free descriptor: none is left below it */
    close((int)low.rlim_cur);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    run_ms(f, 600);
    served = ask(f, open); /* the open connection is served meanwhile */
    unsigned long failures = http_server_accept_failures(f->s);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &was), 0);
    assert_int_equal(served, 200);
    /* Paused 250 ms after each failure: a few tries in 650 ms, not thousands. */
    assert_true(failures >= 1 && failures <= 6);
    assert_int_equal(f->accept_reports, 1); /* one report per 10 s */
    assert_int_equal(f->accept_err, EMFILE);
    assert_int_equal(f->accept_reported, 1);
    run_ms(f, 400); /* the pause ends: the waiting ones are accepted */
    assert_int_equal(http_server_open(f->s), 6);
    for (int i = 0; i < 5; i++)
        close(waiting[i]);
    close(open);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slow_reader_with_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_reader_chunked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_streamed_as_it_arrives, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_body_streamed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_streamed_body_client_leaves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_refuses_before_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_accepts_then_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffer_grows_with_what_arrives, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_deadline_is_a_timer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_deadline_silent_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linger_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_descriptors_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_accept_pauses, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
