/* test_upstream_headers.c: the upstream layer's pure parts: origins from URLs
 * (src/server/upstream/origin.c), the status table (upstream_errors.c) and what a proxy does to
 * headers both ways (headers.c). No network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "upstream/upstream.h"

static upstream_origin *parse_ok(const char *url)
{
    upstream_origin *o = NULL;
    char err[256];
    int rc = upstream_origin_new(url, NULL, err, sizeof err, &o);
    if (rc != 0)
        fail_msg("%s: %s", url, err);
    return o;
}

static void parse_bad(const char *url, const char *why)
{
    upstream_origin *o = NULL;
    char err[256];
    assert_int_equal(upstream_origin_new(url, NULL, err, sizeof err, &o), UPSTREAM_EINVAL);
    assert_null(o);
    assert_non_null(strstr(err, why));
}

static void test_url_forms(void **state)
{
    (void)state;
    upstream_origin *o = parse_ok("http://example.com");
    assert_string_equal(upstream_origin_scheme(o), "http");
    assert_string_equal(upstream_origin_host(o), "example.com");
    assert_int_equal(upstream_origin_port(o), 80);
    assert_string_equal(upstream_origin_base_path(o), "");
    assert_string_equal(upstream_origin_authority(o), "example.com");
    upstream_origin_free(o);

    o = parse_ok("https://api.example.com/v1/");
    assert_string_equal(upstream_origin_scheme(o), "https");
    assert_int_equal(upstream_origin_port(o), 443);
    assert_string_equal(upstream_origin_base_path(o), "/v1"); /* no trailing slash */
    assert_string_equal(upstream_origin_authority(o), "api.example.com");
    upstream_origin_free(o);

    o = parse_ok("HTTP://127.0.0.1:8080/a/b");
    assert_string_equal(upstream_origin_scheme(o), "http");
    assert_int_equal(upstream_origin_port(o), 8080);
    assert_string_equal(upstream_origin_base_path(o), "/a/b");
    assert_string_equal(upstream_origin_authority(o), "127.0.0.1:8080");
    upstream_origin_free(o);

    o = parse_ok("http://[::1]:9000");
    assert_string_equal(upstream_origin_host(o), "::1");
    assert_string_equal(upstream_origin_authority(o), "[::1]:9000");
    upstream_origin_free(o);

    o = parse_ok("https://[2001:db8::1]");
    assert_string_equal(upstream_origin_authority(o), "[2001:db8::1]");
    upstream_origin_free(o);
}

static void test_url_refused(void **state)
{
    (void)state;
    parse_bad("", "not a URL");
    parse_bad("example.com", "not a URL");
    parse_bad("/just/a/path", "scheme and a host");
    parse_bad("ftp://example.com", "http or https");
    parse_bad("http://user:pw@example.com", "no user info");
    parse_bad("http://example.com/?q=1", "no user info, query or fragment");
    parse_bad("http://example.com/#x", "no user info, query or fragment");
    parse_bad("http://example.com:0", "port 0");
    parse_bad("http://example.com:99999", "not a URL");
    upstream_origin *o = NULL;
    assert_int_equal(upstream_origin_new(NULL, NULL, NULL, 0, &o), UPSTREAM_EINVAL);
    upstream_origin_free(NULL); /* a no-op */
}

static void test_tls_options(void **state)
{
    (void)state;
    upstream_origin *o = NULL;
    char err[256];
    upstream_options opt = {.ca_file = "/nonexistent/ca.pem"};
    assert_int_equal(upstream_origin_new("https://example.com", &opt, err, sizeof err, &o),
                     UPSTREAM_EINVAL);
    assert_non_null(strstr(err, "/nonexistent/ca.pem"));
    /* the CA file does not matter for http, nor when verification is off */
    assert_int_equal(upstream_origin_new("http://example.com", &opt, err, sizeof err, &o), 0);
    upstream_origin_free(o);
    opt.tls_insecure = 1;
    assert_int_equal(upstream_origin_new("https://example.com", &opt, err, sizeof err, &o), 0);
    upstream_origin_free(o);
}

static void test_status_table(void **state)
{
    (void)state;
    assert_string_equal(upstream_err_name(UPSTREAM_ETIMEDOUT_CONNECT), "ETIMEDOUT_CONNECT");
    assert_string_equal(upstream_strerror(UPSTREAM_EQUEUEFULL),
                        "too many requests are waiting for a connection to the origin");
    assert_string_equal(upstream_err_name(0), "OK");
    assert_string_equal(upstream_err_name(-999), "UNKNOWN");
    assert_string_equal(upstream_strerror(-999), "unknown status");
}

#define H(n, v)                                                                                    \
    {                                                                                              \
        (n), (v)                                                                                   \
    }

static const char *value_of(const upstream_header *h, int n, const char *name)
{
    const char *v = NULL;
    for (int i = 0; i < n; i++)
        if (strcmp(h[i].name, name) == 0) {
            assert_null(v); /* once */
            v = h[i].value;
        }
    return v;
}

static void test_hop_by_hop(void **state)
{
    (void)state;
    const upstream_header in[] = {
        H("Host", "a"),
        H("Connection", "keep-alive, X-Secret , close"),
        H("Keep-Alive", "t=5"),
        H("X-Secret", "s"),
        H("TE", "trailers"),
        H("Transfer-Encoding", "chunked"),
        H("Upgrade", "websocket"),
        H("Proxy-Connection", "x"),
        H("Trailer", "X"),
        H("Accept", "*/*"),
        H("connection", "x-other"),
        H("X-Other", "o"),
        H("X-Secretive", "kept"),
    };
    size_t n = sizeof in / sizeof in[0];
    assert_true(upstream_hop_by_hop("x-secret", in, n));
    assert_true(upstream_hop_by_hop("X-OTHER", in, n));
    assert_true(upstream_hop_by_hop("te", NULL, 0));
    assert_false(upstream_hop_by_hop("X-Secretive", in, n));
    assert_false(upstream_hop_by_hop("Accept", in, n));
    upstream_header out[16];
    int k = upstream_headers_strip_hop(in, n, out, 16);
    assert_int_equal(k, 3);
    assert_string_equal(out[0].name, "Host");
    assert_string_equal(out[1].name, "Accept");
    assert_string_equal(out[2].name, "X-Secretive");
    assert_int_equal(upstream_headers_strip_hop(in, n, out, 2), -1);
}

static void test_to_origin(void **state)
{
    (void)state;
    const upstream_header in[] = {
        H("Host", "shop.example"),
        H("X-Forwarded-For", "198.51.100.1"),
        H("Connection", "close"),
        H("X-Forwarded-Proto", "https"), /* the client's: replaced */
        H("x-forwarded-for", "198.51.100.2"),
        H("Via", "1.0 corp"),
        H("Accept", "text/html"),
    };
    upstream_header out[16];
    char buf[256];
    upstream_forward f = {"203.0.113.7", "http", "shop.example"};
    int k = upstream_headers_to_origin(in, sizeof in / sizeof in[0], &f, out, 16, buf, sizeof buf);
    assert_int_equal(k, 6);
    assert_string_equal(value_of(out, k, "Host"), "shop.example");
    assert_string_equal(value_of(out, k, "Accept"), "text/html");
    assert_string_equal(value_of(out, k, "X-Forwarded-For"),
                        "198.51.100.1, 198.51.100.2, 203.0.113.7");
    assert_string_equal(value_of(out, k, "X-Forwarded-Proto"), "http");
    assert_string_equal(value_of(out, k, "X-Forwarded-Host"), "shop.example");
    assert_string_equal(value_of(out, k, "Via"), "1.0 corp, 1.1 strata");
    assert_null(value_of(out, k, "Connection"));
    assert_null(value_of(out, k, "x-forwarded-for"));

    /* a first hop: nothing to append to */
    const upstream_header one[] = {H("Host", "h")};
    k = upstream_headers_to_origin(one, 1, &(upstream_forward){"::1", "https", NULL}, out, 16, buf,
                                   sizeof buf);
    assert_int_equal(k, 4);
    assert_string_equal(value_of(out, k, "X-Forwarded-For"), "::1");
    assert_string_equal(value_of(out, k, "X-Forwarded-Proto"), "https");
    assert_null(value_of(out, k, "X-Forwarded-Host"));
    assert_string_equal(value_of(out, k, "Via"), "1.1 strata");
    /* too small: out, then buf */
    assert_int_equal(upstream_headers_to_origin(one, 1, &f, out, 3, buf, sizeof buf), -1);
    assert_int_equal(upstream_headers_to_origin(in, 7, &f, out, 16, buf, 20), -1);
}

static void test_to_client(void **state)
{
    (void)state;
    const upstream_header in[] = {
        H("Content-Type", "text/plain"),
        H("Transfer-Encoding", "chunked"),
        H("Connection", "keep-alive"),
        H("Keep-Alive", "timeout=5"),
        H("Via", "1.1 cdn"),
        H("ETag", "\"x\""),
    };
    upstream_header out[8];
    char buf[64];
    int k = upstream_headers_to_client(in, 6, out, 8, buf, sizeof buf);
    assert_int_equal(k, 3);
    assert_string_equal(out[0].name, "Content-Type");
    assert_string_equal(out[1].name, "ETag");
    assert_string_equal(value_of(out, k, "Via"), "1.1 cdn, 1.1 strata");
    assert_int_equal(upstream_headers_to_client(in, 6, out, 8, buf, 8), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_forms),   cmocka_unit_test(test_url_refused),
        cmocka_unit_test(test_tls_options), cmocka_unit_test(test_status_table),
        cmocka_unit_test(test_hop_by_hop),  cmocka_unit_test(test_to_origin),
        cmocka_unit_test(test_to_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
