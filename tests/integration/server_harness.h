/* server_harness.h: `strata serve` processes and an HTTP client for strata's server tests.
 *
 * The counterpart of harness.h (real redis-server processes) for the HTTP server: sh_start()
 * runs STRATA_BINARY serve on a free 127.0.0.1 port with a clean environment (only the variables
 * the test gives, plus the sanitizer options of the test's own environment), its stdout and
 * stderr appended to server.log in a fresh temp dir, and returns once GET /livez answers 200.
 * Every server is registered and SIGKILLed by an atexit() handler, and dies with the test if the
 * test crashes (PR_SET_PDEATHSIG), like harness.c's redis-servers.
 *
 * The server may be built with ASan+UBSan (STRATA_SANITIZE): sh_log_clean() looks for their
 * reports in the log, and sh_stop_check() stops the server with SIGTERM and requires exit code 0
 * (LeakSanitizer makes the exit code non-zero when memory leaked) and a clean log.
 *
 * HTTP: sh_request() (libcurl, one fresh connection per call) returns status, headers (looked up
 * by name, case-insensitively) and body; sh_raw_*() send arbitrary bytes on a plain TCP
 * connection and read what comes back, for requests curl would never send.
 *
 * Not thread-safe per server handle for start/stop; sh_request() and the raw helpers may be
 * called from any number of threads at once.
 */
#ifndef STRATA_TESTS_SERVER_HARNESS_H
#define STRATA_TESTS_SERVER_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

typedef struct sh_server sh_server;

/* Starts `strata serve` with:
 *   env:  a NULL-terminated list of "NAME=VALUE" strings (or NULL): the whole environment the
 *         server gets, besides ASAN_OPTIONS / UBSAN_OPTIONS / LSAN_OPTIONS copied from ours;
 *   args: a NULL-terminated list of further arguments (or NULL).
 * Unless args contain "--listen", "--listen 127.0.0.1:PORT" comes first. In env values and args,
 * "{PORT}" is replaced by the chosen port (e.g. {"--listen", "0.0.0.0:{PORT}", NULL}).
 * The port is picked by binding a SO_REUSEPORT socket to 127.0.0.1:0 and holding it until the
 * server listens on it too, so no other process can take it in between.
 * Waits up to 5 s (10 s under sanitizers) until GET /livez answers 200. Returns a handle, or NULL
 * with the reason and the server's log on stderr (the process, if any, is killed). */
sh_server *sh_start(const char *const *env, const char *const *args);
/* The next server started (sh_start or sh_run) runs with RLIMIT_NOFILE soft and hard (a
 * descriptor limit it cannot raise past hard); then back to the test's own. */
void sh_next_nofile(unsigned soft, unsigned hard);

int sh_port(const sh_server *s);
pid_t sh_pid(const sh_server *s); /* -1 once it exited (and was reaped) */
const char *sh_dir(const sh_server *s);
const char *sh_log_path(const sh_server *s);

/* Sends sig to the server process. Returns 0 or -1. */
int sh_signal(sh_server *s, int sig);

/* 1 if the process has exited (reaping it and recording its status), else 0. */
int sh_exited(sh_server *s);

/* Waits up to timeout_ms for the process to exit. Returns its exit status (exit code, or 128 +
 * signal number when killed by a signal), or -1 on timeout. */
int sh_wait_exit(sh_server *s, int timeout_ms);

/* SIGTERM, then waits up to 15 s for the exit (then SIGKILL). Returns the exit status as
 * sh_wait_exit() does (137 after the SIGKILL); already exited: the recorded status. The handle
 * stays valid (the log can still be read); release it with sh_free(). */
int sh_stop(sh_server *s);

/* SIGKILLs the process if it still runs, removes the temp dir and frees s. NULL: no-op. */
void sh_free(sh_server *s);

/* The log so far (stdout and stderr of the server), NUL-terminated; the caller frees it. */
char *sh_log(const sh_server *s);

/* 1 if the log has no "ERROR: AddressSanitizer", "ERROR: LeakSanitizer" or "runtime error:";
 * else 0 (and the log is printed to stderr). */
int sh_log_clean(const sh_server *s);

/* 1 if the log contains needle; else 0. */
int sh_log_contains(const sh_server *s, const char *needle);

/* 1 if the process still runs, GET /livez answers 200 and the log is clean; else 0 with the
 * reason on stderr. Call after each malformed input. */
int sh_healthy(sh_server *s);

/* sh_stop(), then checks: exit status 0 and a clean log. Returns 0 if so, else -1 with the
 * reason and the log on stderr. Then sh_free(). Example: assert_int_equal(sh_stop_check(s), 0); */
int sh_stop_check(sh_server *s);

/* Runs `strata serve args` (no --listen added; "{PORT}" is not replaced) with env as above and
 * waits up to timeout_ms for it to exit. Returns its exit status (as sh_wait_exit), or -1 if it
 * was still running at the deadline (it is then killed). *output (if not NULL) receives what it
 * printed (stdout and stderr), to free(). *elapsed_ms (if not NULL) the time it ran. */
int sh_run(const char *const *env, const char *const *args, int timeout_ms, char **output,
           long *elapsed_ms);

/* ---- HTTP over libcurl ------------------------------------------------------------------- */

typedef struct sh_header {
    char *name, *value;
} sh_header;

typedef struct sh_resp {
    long status;   /* 0 when no HTTP answer came (err then says why) */
    int curl_code; /* CURLcode */
    char err[256]; /* curl's message when curl_code != 0 */
    char *body;    /* NUL-terminated (the terminator is not counted in body_len) */
    size_t body_len;
    sh_header *headers; /* the final response's headers */
    size_t nheaders;
    long elapsed_ms;
    char what[200]; /* "METHOD path", for failure messages */
} sh_resp;

/* One request on a fresh connection to 127.0.0.1:port. headers: NULL-terminated list of
 * "Name: value" (or NULL). When they give no Content-Type, none is sent (curl would add a form
 * type). "Expect: 100-continue" is never sent. HEAD reads no body. timeout_ms 0: 10 s.
 * Never NULL (aborts on out of memory); free with sh_resp_free(). */
sh_resp *sh_request_port(int port, const char *method, const char *path, const char *const *headers,
                         const void *body, size_t body_len, long timeout_ms);
sh_resp *sh_request(const sh_server *s, const char *method, const char *path,
                    const char *const *headers, const void *body, size_t body_len);

/* Shorthands: token may be NULL (no Authorization), tenant NULL (no X-Tenant); body a string
 * (or NULL); content_type NULL for none. */
sh_resp *sh_call(const sh_server *s, const char *method, const char *path, const char *token,
                 const char *tenant, const char *content_type, const char *body);

void sh_resp_free(sh_resp *r);

/* A PUT of value (text/plain) that Redis took: 204 without X-Cache-Write: l1-only. */
int sh_put_shared(const sh_server *s, const char *path, const char *value);
/* A GET answered 200 with exactly want as the body (what it got instead goes to stderr). */
int sh_get_is(const sh_server *s, const char *path, const char *want);

/* The first header named name (case-insensitive), or NULL. Owned by r. */
const char *sh_resp_header(const sh_resp *r, const char *name);

/* The body parsed as JSON, or NULL. The caller json_decref()s it. */
json_t *sh_resp_json(const sh_resp *r);

/* 1 if the body is an error as the API defines it: {"error":{"code":S,"message":S,"status":N}}
 * with status equal to the HTTP status, and Content-Type application/json; else 0 (printing
 * why). If code is not NULL, error.code must equal it too. */
int sh_resp_is_error(const sh_resp *r, const char *code);

/* Percent-encodes every byte outside [A-Za-z0-9_.~-] of s[0..n). The caller frees it. */
char *sh_urlencode(const void *s, size_t n);

/* Standard base64 with padding. The caller frees. */
char *sh_b64_encode(const void *data, size_t n);
/* Decodes standard base64 (padding required); NULL if malformed. The caller frees. */
unsigned char *sh_b64_decode(const char *s, size_t *len);

/* ---- raw TCP ----------------------------------------------------------------------------- */

/* Connects to 127.0.0.1:port. Returns the fd, or -1. */
int sh_raw_connect(int port);

/* Writes all of data. Returns 0, or -1 (e.g. the server closed: EPIPE is not a signal). */
int sh_raw_send(int fd, const void *data, size_t len);

/* 1 if something (bytes or EOF) is waiting to be read on fd right now, else 0. */
int sh_raw_readable(int fd);

/* Reads what arrives until the peer closes or timeout_ms passes with no EOF, whichever first.
 * Returns a malloc'd NUL-terminated buffer (length in *len), *eof = 1 if the peer closed (or
 * reset) the connection. */
char *sh_raw_read_all(int fd, int timeout_ms, size_t *len, int *eof);

/* Reads until buf holds at least `want` occurrences of "HTTP/1." response starts with complete
 * headers and bodies (Content-Length framing), EOF, or timeout. Returns the bytes (to free). */
char *sh_raw_read_responses(int fd, int want, int timeout_ms, size_t *len, int *eof);

/* Connects, sends data, reads until EOF or timeout_ms, closes. *eof as sh_raw_read_all. */
char *sh_raw_exchange(int port, const void *data, size_t len, int timeout_ms, size_t *out_len,
                      int *eof);

/* Milliseconds on CLOCK_MONOTONIC. */
long sh_now_ms(void);
void sh_sleep_ms(long ms);

/* ---- with cmocka (include <cmocka.h> first) ----------------------------------------------- */
#ifdef cmocka_unit_test
#include <stdio.h>

/* Runs only the tests whose names match $SH_TEST_FILTER (a cmocka pattern, e.g. "test_kv*"),
 * for debugging one test: SH_TEST_FILTER=test_ttl ./it_test_server_kv */
#include <stdlib.h>
#define SH_TEST_FILTER()                                                                           \
    do {                                                                                           \
        const char *sh_f_ = getenv("SH_TEST_FILTER");                                              \
        if (sh_f_ != NULL && sh_f_[0] != '\0')                                                     \
            cmocka_set_test_filter(sh_f_);                                                         \
    } while (0)

/* Asserts the HTTP status, printing the request and the whole answer when it differs. */
#define SH_EXPECT_STATUS(resp, code)                                                               \
    do {                                                                                           \
        const sh_resp *sh_r_ = (resp);                                                             \
        if (sh_r_->status != (long)(code))                                                         \
            fprintf(stderr, "%s: expected HTTP %d, got %ld%s%s: %.*s\n", sh_r_->what, (int)(code), \
                    sh_r_->status, sh_r_->err[0] ? " / " : "", sh_r_->err,                         \
                    (int)(sh_r_->body_len > 2000 ? 2000 : sh_r_->body_len), sh_r_->body);          \
        assert_int_equal(sh_r_->status, (code));                                                   \
    } while (0)

/* Asserts a header's value (NULL: the header must be absent). */
#define SH_EXPECT_HEADER(resp, name, value)                                                        \
    do {                                                                                           \
        const char *sh_h_ = sh_resp_header((resp), (name));                                        \
        const char *sh_v_ = (value);                                                               \
        if (sh_v_ == NULL && sh_h_ != NULL)                                                        \
            fprintf(stderr, "%s: header %s should be absent, is \"%s\"\n", (resp)->what, (name),   \
                    sh_h_);                                                                        \
        if (sh_v_ != NULL && (sh_h_ == NULL || strcmp(sh_h_, sh_v_) != 0))                         \
            fprintf(stderr, "%s: header %s: expected \"%s\", got %s%s%s\n", (resp)->what, (name),  \
                    sh_v_, sh_h_ ? "\"" : "", sh_h_ ? sh_h_ : "(absent)", sh_h_ ? "\"" : "");      \
        if (sh_v_ == NULL)                                                                         \
            assert_null(sh_h_);                                                                    \
        else {                                                                                     \
            assert_non_null(sh_h_);                                                                \
            assert_string_equal(sh_h_, sh_v_);                                                     \
        }                                                                                          \
    } while (0)

/* Asserts status and an API error body with that code (NULL: any code). */
#define SH_EXPECT_ERROR(resp, code, errcode)                                                       \
    do {                                                                                           \
        SH_EXPECT_STATUS((resp), (code));                                                          \
        assert_true(sh_resp_is_error((resp), (errcode)));                                          \
    } while (0)

/* Issues a request, asserts its status, frees the answer. */
#define SH_CALL_EXPECT(srv, method, path, token, tenant, ctype, body, code)                        \
    do {                                                                                           \
        sh_resp *sh_c_ = sh_call((srv), (method), (path), (token), (tenant), (ctype), (body));     \
        SH_EXPECT_STATUS(sh_c_, (code));                                                           \
        sh_resp_free(sh_c_);                                                                       \
    } while (0)
#endif

#endif
