/* proxy_harness.h: what the caching proxy's integration tests (test_server_proxy*.c) share on top
 * of server_harness.h and origin_harness.h: requests with any headers, the origin's request
 * counter, configuration files in a temp dir, the log polled for a line, and the wall clock's
 * second boundary.
 *
 * The proxy decides freshness in whole seconds (RFC 9111 ages are delta-seconds), so a test that
 * stores max-age=1 and expects a hit right after, and a miss 1.2 s later, starts just after a
 * second begins (px_align_second): the hit then falls in the same second, the refetch in the
 * next.
 *
 *     oh_origin *o = oh_start(NULL);
 *     sh_server *s = px_start_upstream(o, NULL);
 *     unsigned long before = px_origin_requests(o);
 *     sh_resp *r = px_get(s, "GET", "/a", "X-Origin-Header: Cache-Control: max-age=60", NULL);
 *     px_expect_xcache(r, "MISS");
 */
#ifndef STRATA_TESTS_PROXY_HARNESS_H
#define STRATA_TESTS_PROXY_HARNESS_H

#include "origin_harness.h"
#include "server_harness.h"

/* One request on a fresh connection; the headers follow path as "Name: value" strings, ended by
 * NULL. Never NULL; free with sh_resp_free. */
sh_resp *px_get(const sh_server *s, const char *method, const char *path, ...)
    __attribute__((sentinel));
/* The same with a body (a string) and a timeout (0: 10 s). */
sh_resp *px_send(const sh_server *s, const char *method, const char *path, const char *body,
                 long timeout_ms, const char *const *headers);

/* The heads the origin received so far (GET /__count); aborts the test's process when the
 * origin does not answer (the count is what every assertion here stands on). */
unsigned long px_origin_requests(const oh_origin *o);

/* strata serve --upstream http://127.0.0.1:<origin's port>, with env (NULL-terminated, or NULL:
 * STRATA_WORKERS=2). NULL when it does not start. */
sh_server *px_start_upstream(const oh_origin *o, const char *const *env);
/* strata serve --config path, env as above. */
sh_server *px_start_config(const char *path, const char *const *env);

/* Writes text to dir/name (replacing it) and returns the path, to free. Aborts on failure. */
char *px_write_file(const char *dir, const char *name, const char *text);

/* 1 once the server's log holds needle (polled for up to timeout_ms), else 0. */
int px_wait_log(const sh_server *s, const char *needle, long timeout_ms);

/* Sleeps until the wall clock is 20-120 ms into a second. */
void px_align_second(void);

/* 1 if r's X-Cache is one of the values (a NULL-terminated list), else 0 (printing it). */
int px_xcache_in(const sh_resp *r, ...) __attribute__((sentinel));
/* 1 if r is a 200 whose body is the text body, else 0 (printing what it is). */
int px_body_is(const sh_resp *r, const char *body);
/* 1 if r's header name contains needle, else 0 (printing what it is). */
int px_header_has(const sh_resp *r, const char *name, const char *needle);
/* 1 if the bytes hay[0..len) contain needle compared case-insensitively. */
int px_contains_ci(const char *hay, size_t len, const char *needle);
/* 1 if body[0..len) is the origin's X-Origin-Body-Size pattern: byte i = 'a' + i % 26. */
int px_is_pattern(const char *body, size_t len);

#ifdef cmocka_unit_test
/* Asserts X-Cache, printing the answer's head when it differs. */
#define px_expect_xcache(r, value) assert_true(px_xcache_in((r), (value), (const char *)NULL))
/* Asserts status 200 and the body text. */
#define px_expect_body(r, body) assert_true(px_body_is((r), (body)))
/* GET path with headers (then NULL); asserts 200, the body and X-Cache; frees the answer. */
#define PX_GET_EXPECT(s, path, body, xcache, ...)                                                  \
    do {                                                                                           \
        sh_resp *r_ = px_get((s), "GET", (path), __VA_ARGS__, (const char *)NULL);                 \
        px_expect_body(r_, (body));                                                                \
        px_expect_xcache(r_, (xcache));                                                            \
        sh_resp_free(r_);                                                                          \
    } while (0)
#endif

#endif
