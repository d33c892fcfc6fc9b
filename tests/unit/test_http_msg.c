/* test_http_msg.c: the framing of one HTTP/1.x message over a flat buffer (src/server/http/
 * http_msg.c), tied to no connection: requests as the server reads them, and responses as an
 * upstream client will.
 *
 * Checked: feeding stops after a head that announces a body (nothing of the body parsed) and
 * after each message; spans are offsets, so the same message fed from a moved buffer reads the
 * same; chunked bodies are joined in place or handed out piece by piece; responses are framed
 * by length, by chunks, or by the close; the head and body limits refuse with their status;
 * framing a hop could read otherwise is refused (a bare LF in a request head, Transfer-Encoding
 * in HTTP/1.0), however the bytes are cut.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/http_msg.h"

static http_msg m;

/* Feeds all of buf[0..len) from its start, the way a connection does (one message). */
static int feed(char *buf, size_t len, size_t *at)
{
    size_t used = 0;
    int e = http_msg_feed(&m, buf, buf + *at, len - *at, &used);
    *at += used;
    return e;
}

static void test_request_head_then_body(void **state)
{
    (void)state;
    char buf[] = "PUT /a?b=1 HTTP/1.1\r\nHost: h\r\nX-Y:  v  \r\nContent-Length: 5\r\n\r\nhello";
    size_t len = strlen(buf), at = 0;
    http_msg_init(&m, HTTP_REQUEST, 1024, 1024);
    assert_int_equal(feed(buf, len, &at), HTTP_MSG_HEAD);
    assert_int_equal(m.body_seen, 0); /* stopped before the body */
    assert_string_equal(http_msg_url(&m, buf), "/a?b=1");
    assert_string_equal(http_msg_header(&m, buf, "x-y"), "v");
    assert_int_equal(http_msg_content_length(&m), 5);
    assert_int_equal(feed(buf, len, &at), HTTP_MSG_DONE);
    assert_int_equal(at, len);
    assert_memory_equal(buf + m.body.off, "hello", 5);
    /* Offsets, not pointers: the message copied elsewhere reads the same. */
    char moved[sizeof buf];
    memcpy(moved, buf, sizeof buf);
    assert_string_equal(http_msg_header(&m, moved, "Host"), "h");
}

static int pieces;
static char got[64];
static size_t got_len;

static int on_piece(void *arg, const char *data, size_t len)
{
    (void)arg;
    memcpy(got + got_len, data, len);
    got_len += len;
    pieces++;
    return 0;
}

static void test_chunked_joined_or_streamed(void **state)
{
    (void)state;
    const char *text = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3;ext=1\r\nabc\r\n4\r\ndefg\r\n0\r\nTrailer: x\r\n\r\n";
    char buf[256];
    for (int stream = 0; stream < 2; stream++) {
        strcpy(buf, text);
        size_t len = strlen(buf), at = 0;
        http_msg_init(&m, HTTP_REQUEST, 1024, 1024);
        assert_int_equal(feed(buf, len, &at), HTTP_MSG_HEAD);
        assert_true(http_msg_chunked(&m));
        pieces = 0, got_len = 0;
        if (stream) {
            m.on_piece = on_piece;
            m.piece_arg = NULL;
        }
        assert_int_equal(feed(buf, len, &at), HTTP_MSG_DONE);
        if (stream) {
            assert_int_equal(pieces, 2);
            assert_memory_equal(got, "abcdefg", 7);
            assert_int_equal(m.body.len, 0); /* nothing kept */
        } else {
            assert_int_equal(m.body.len, 7);
            assert_memory_equal(buf + m.body.off, "abcdefg", 7); /* joined in place */
        }
        assert_null(http_msg_header(&m, buf, "Trailer")); /* trailers are not headers */
    }
}

static void test_responses(void **state)
{
    (void)state;
    /* By length, then by chunks, pipelined on one stream; then one that runs to the close. */
    char buf[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                 "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
                 "HTTP/1.1 204 No Content\r\n\r\n"
                 "HTTP/1.0 200 OK\r\n\r\nuntil the close";
    size_t len = strlen(buf), at = 0, start;
    http_msg_init(&m, HTTP_RESPONSE, 1024, 1024);
    int status[] = {200, 201, 204};
    const char *body[] = {"ok", "hi", ""};
    for (int i = 0; i < 3; i++) {
        start = at;
        http_msg_reset(&m);
        int e = feed(buf + 0, len, &at);
        if (e == HTTP_MSG_HEAD)
            e = feed(buf, len, &at);
        assert_int_equal(e, HTTP_MSG_DONE);
        assert_int_equal(m.parser.status_code, status[i]);
        assert_int_equal(m.body.len, strlen(body[i]));
        assert_memory_equal(buf + m.body.off, body[i], m.body.len);
        assert_true(at > start);
    }
    http_msg_reset(&m);
    assert_int_equal(feed(buf, len, &at), HTTP_MSG_HEAD); /* a body to the close follows */
    assert_int_equal(feed(buf, len, &at), HTTP_MSG_MORE);
    assert_int_equal(m.body.len, strlen("until the close"));
    size_t used;
    assert_int_equal(http_msg_feed(&m, buf, buf + at, 0, &used), HTTP_MSG_DONE); /* the close */
}

static void test_limits(void **state)
{
    (void)state;
    char big[] = "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000\r\n\r\n";
    size_t at = 0;
    http_msg_init(&m, HTTP_REQUEST, 1024, 1024);
    assert_int_equal(feed(big, strlen(big), &at), HTTP_MSG_ERROR);
    assert_int_equal(m.fail_status, 413); /* refused on the head, before the body */
    char head[2048];
    int n = snprintf(head, sizeof head, "GET / HTTP/1.1\r\nHost: h\r\nX: ");
    memset(head + n, 'x', sizeof head - (size_t)n - 1);
    head[sizeof head - 1] = '\0';
    at = 0;
    http_msg_init(&m, HTTP_REQUEST, 1024, 1024);
    assert_int_equal(feed(head, strlen(head), &at), HTTP_MSG_ERROR);
    assert_int_equal(m.fail_status, 431); /* a head that never ends, refused at the limit */
    char nohost[] = "GET / HTTP/1.1\r\n\r\n";
    at = 0;
    http_msg_init(&m, HTTP_REQUEST, 1024, 1024);
    assert_int_equal(feed(nohost, strlen(nohost), &at), HTTP_MSG_ERROR);
    assert_int_equal(m.fail_status, 400);
}

/* Feeds s one byte at a time (each read a byte long), as a trickling client would. */
static int feed_bytewise(const char *s)
{
    static char buf[1024];
    size_t len = strlen(s), at = 0;
    memcpy(buf, s, len + 1);
    int e = HTTP_MSG_MORE;
    for (size_t end = 1; end <= len && e == HTTP_MSG_MORE; end++) {
        size_t used = 0;
        e = http_msg_feed(&m, buf, buf + at, end - at, &used);
        at += used;
    }
    return e;
}

/* Feeds s whole, then byte by byte; returns the status of a refusal (both ways the same), or 0. */
static int refused_with(const char *s)
{
    char buf[1024];
    size_t at = 0;
    snprintf(buf, sizeof buf, "%s", s);
    http_msg_init(&m, HTTP_REQUEST, 1024, 1024);
    int whole = feed(buf, strlen(buf), &at) == HTTP_MSG_ERROR ? m.fail_status : 0;
    http_msg_init(&m, HTTP_REQUEST, 1024, 1024);
    int bytewise = feed_bytewise(s) == HTTP_MSG_ERROR ? m.fail_status : 0;
    assert_int_equal(whole, bytewise);
    return whole;
}

static void test_faulty_framing(void **state)
{
    (void)state;
    /* the same requests with CR LF are fine */
    assert_int_equal(refused_with("GET / HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
    assert_int_equal(refused_with("GET / HTTP/1.0\r\n\r\n"), 0);
    assert_int_equal(refused_with("PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                                  "\r\n1\r\na\r\n0\r\n\r\n"),
                     0);
    /* a bare LF anywhere in the head: after the request line, a header, or as the empty line */
    assert_int_equal(refused_with("GET / HTTP/1.1\nHost: h\r\n\r\n"), 400);
    assert_int_equal(refused_with("GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n"), 400);
    assert_int_equal(refused_with("GET / HTTP/1.1\r\nHost: h\r\n\n"), 400);
    assert_int_equal(refused_with("GET / HTTP/1.0\n\n"), 400);
    assert_string_equal(m.fail_msg, "a line of the request head ends in LF without CR");
    /* RFC 9112 6.1: Transfer-Encoding in HTTP/1.0, with or without a length beside it */
    assert_int_equal(refused_with("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "1\r\na\r\n0\r\n\r\n"),
                     400);
    assert_non_null(strstr(m.fail_msg, "HTTP/1.0"));
    /* a response (the upstream client's side) is not held to the request rules */
    char resp[] = "HTTP/1.1 200 OK\nContent-Length: 2\n\nok";
    size_t at = 0;
    http_msg_init(&m, HTTP_RESPONSE, 1024, 1024);
    assert_int_equal(feed(resp, strlen(resp), &at), HTTP_MSG_HEAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_head_then_body),
        cmocka_unit_test(test_chunked_joined_or_streamed),
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_faulty_framing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
