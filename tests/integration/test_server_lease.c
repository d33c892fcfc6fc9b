/* test_server_lease.c: the lease protocol of the KV API (issue 13, step C; docs/api.md, "Leases"),
 * on real strata serve processes sharing a real Redis.
 *
 * A crowd of 1000 HTTP callers on a cold key over two instances: one gets the token, computes
 * (100 ms) and fills; every other one is answered the value, and the key is computed once. A
 * holder that never fills: a waiter takes the lease over once it expires, and nobody waits past
 * X-Cache-Wait. Tokens that are not the holder's (stale after a takeover, forged, another
 * tenant's or namespace's) are refused with 409 and change nothing. PATCH extends, DELETE with
 * the token releases (a waiter takes over at once), X-Cache-Error stores an error result for the
 * namespace's error TTL. Bad headers are 400s naming them; past STRATA_LEASE_WAITERS a 503 with
 * Retry-After; Redis killed mid-wait: answers, single flight in the instance, no 5xx.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "server_harness.h"

#define CROWD      1000
#define COMPUTE_MS 100
#define MARGIN_MS  1500 /* deadlines are asserted with generous margins (DESIGN.md) */

#define WRITE      "write-token-1"
#define READ       "read-token-1"
#define ACME_WRITE "acme-write-1"
#define ADMIN      "admin-token-1"
#define TOKENS                                                                                     \
    "STRATA_TOKENS=" WRITE ":write," READ ":read," ACME_WRITE ":write:acme," ADMIN ":admin"

static rh_server *redis;
static char redis_env[320];

static int setup(void **state)
{
    (void)state;
    redis = rh_start(NULL);
    if (redis == NULL)
        return -1;
    snprintf(redis_env, sizeof redis_env, "REDIS_URL=%s", rh_url(redis));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rh_stop(redis);
    redis = NULL;
    return 0;
}

/* An instance on the test's Redis, with extra settings (NULL-terminated, at most 4). */
static sh_server *instance(const char *a, const char *b)
{
    const char *env[] = {redis_env,
                         TOKENS,
                         "STRATA_WORKERS=2",
                         "REDIS_SOCKET_TIMEOUT=0.3",
                         "STRATA_NAMESPACES=errs:error_ttl=1",
                         a,
                         b,
                         NULL};
    return sh_start(env, NULL);
}

/* One request with the write token (tenant NULL: default), up to 4 extra headers. */
static sh_resp *call(const sh_server *s, const char *method, const char *path, const char *tenant,
                     const char *body, const char *h1, const char *h2, const char *h3)
{
    char auth[64], ten[80];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", WRITE);
    snprintf(ten, sizeof ten, "X-Tenant: %s", tenant ? tenant : "default");
    const char *hs[] = {auth, ten, h1, h2, h3, NULL};
    return sh_request(s, method, path, hs, body, body ? strlen(body) : 0);
}

/* The token of an answer: 404 with X-Cache-Lease-Token; "" when it has none. */
static const char *token_of(const sh_resp *r)
{
    const char *t = sh_resp_header(r, "X-Cache-Lease-Token");
    return t ? t : "";
}

/* GET with X-Cache-Lease: lease [and X-Cache-Wait: wait] (NULL: none). */
static sh_resp *lease_get(const sh_server *s, const char *path, const char *tenant,
                          const char *lease, const char *wait)
{
    char lh[64], wh[64];
    snprintf(lh, sizeof lh, "X-Cache-Lease: %s", lease);
    snprintf(wh, sizeof wh, "X-Cache-Wait: %s", wait ? wait : "");
    return call(s, "GET", path, tenant, NULL, lh, wait ? wh : NULL, NULL);
}

/* PUT body with the token (and X-Cache-Error: 1 when error). */
static sh_resp *fill(const sh_server *s, const char *path, const char *tenant, const char *token,
                     const char *body, int error)
{
    char th[128];
    snprintf(th, sizeof th, "X-Cache-Lease-Token: %s", token);
    return call(s, "PUT", path, tenant, body, th, "Content-Type: text/plain",
                error ? "X-Cache-Error: 1" : NULL);
}

static json_t *stats_of(const sh_server *s)
{
    const char *hs[] = {"Authorization: Bearer " ADMIN, NULL};
    sh_resp *r = sh_request(s, "GET", "/cache/stats", hs, NULL, 0);
    SH_EXPECT_STATUS(r, 200);
    json_t *j = sh_resp_json(r);
    sh_resp_free(r);
    assert_non_null(j);
    return j;
}

static long long lease_stat(const sh_server *s, const char *name)
{
    json_t *j = stats_of(s);
    json_t *v = json_object_get(json_object_get(j, "leases"), name);
    assert_true(json_is_integer(v));
    long long n = json_integer_value(v);
    json_decref(j);
    return n;
}

/* ---- waiters on threads ------------------------------------------------------------------- */

typedef struct waiter {
    const sh_server *s;
    const char *path, *tenant, *lease, *wait;
    sh_resp *r;
    atomic_int done; /* set once r is there */
    pthread_t th;
} waiter;

static void *waiter_main(void *arg)
{
    waiter *w = arg;
    w->r = lease_get(w->s, w->path, w->tenant, w->lease, w->wait);
    atomic_store(&w->done, 1);
    return NULL;
}

static void waiter_start(waiter *w, const sh_server *s, const char *path, const char *lease,
                         const char *wait)
{
    memset(w, 0, sizeof *w);
    w->s = s, w->path = path, w->lease = lease, w->wait = wait;
    assert_int_equal(pthread_create(&w->th, NULL, waiter_main, w), 0);
}

/* Joins w; its answer's time since it started, in *ms. */
static sh_resp *waiter_join(waiter *w, long *ms)
{
    pthread_join(w->th, NULL);
    if (ms != NULL)
        *ms = w->r->elapsed_ms;
    return w->r;
}

/* Waits (5 s at most) until s has n requests waiting for lease holders. */
static void until_waiting(const sh_server *s, long long n)
{
    long until = sh_now_ms() + 5000;
    while (lease_stat(s, "waiting") != n) {
        assert_true(sh_now_ms() < until);
        sh_sleep_ms(10);
    }
}

/* ---- the crowd ---------------------------------------------------------------------------- */

typedef struct crowd_conn {
    int fd;
    char *buf;
    size_t len, cap;
    int done;
} crowd_conn;

static int status_of(const char *resp)
{
    int st = 0;
    return sscanf(resp, "HTTP/1.1 %d", &st) == 1 ? st : 0;
}

/* The value of header name in a raw answer (copied into out), or "" when absent. */
static void raw_header(const char *resp, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    const char *end = strstr(resp, "\r\n\r\n"), *p = resp;
    size_t n = strlen(name);
    while ((p = strstr(p, "\r\n")) != NULL && p < end) {
        p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1, *eol = strstr(v, "\r\n");
            while (*v == ' ')
                v++;
            size_t l = (size_t)(eol - v) < cap - 1 ? (size_t)(eol - v) : cap - 1;
            memcpy(out, v, l);
            out[l] = '\0';
            return;
        }
    }
}

static const char *raw_body(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? b + 4 : "";
}

/* Reads what is readable on c; done at EOF (every request says Connection: close). */
static void crowd_read(crowd_conn *c)
{
    if (c->cap - c->len < 4096) {
        c->cap = c->cap * 2 + 8192;
        c->buf = realloc(c->buf, c->cap);
        assert_non_null(c->buf);
    }
    ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
    if (n > 0) {
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        c->done = 1;
        close(c->fd);
    }
}

/* 1000 GETs with a lease spread over two instances, sent before any answer is read. The one
 * given the token computes for COMPUTE_MS and fills; everyone else must get its value. */
static void test_crowd_over_two_instances(void **state)
{
    (void)state;
    sh_server *a = instance(NULL, NULL), *b = instance(NULL, NULL);
    assert_non_null(a);
    assert_non_null(b);
    static crowd_conn conns[CROWD];
    char req[256];
    snprintf(req, sizeof req,
             "GET /v1/cache/crowd/cold HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " WRITE
             "\r\nX-Cache-Lease: 10\r\nX-Cache-Wait: 20\r\nConnection: close\r\n\r\n");
    for (int i = 0; i < CROWD; i++) {
        conns[i] = (crowd_conn){0};
        conns[i].fd = sh_raw_connect(sh_port(i % 2 ? b : a));
        assert_true(conns[i].fd >= 0);
        assert_int_equal(sh_raw_send(conns[i].fd, req, strlen(req)), 0);
    }
    static struct pollfd pfd[CROWD];
    int left = CROWD, holder = -1;
    long deadline = sh_now_ms() + 60000, fill_at = 0;
    char token[64] = "";
    while (left > 0) {
        assert_true(sh_now_ms() < deadline);
        if (fill_at != 0 && sh_now_ms() >= fill_at) { /* the holder's computation is done */
            sh_resp *r = fill(holder % 2 ? b : a, "/v1/cache/crowd/cold", NULL, token, "v42", 0);
            SH_EXPECT_STATUS(r, 204);
            sh_resp_free(r);
            fill_at = 0;
        }
        int n = 0;
        for (int i = 0; i < CROWD; i++)
            if (!conns[i].done)
                pfd[n++] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
        poll(pfd, (nfds_t)n, 10);
        for (int i = 0, k = 0; i < CROWD; i++) {
            if (conns[i].done)
                continue;
            if (pfd[k++].revents == 0)
                continue;
            crowd_read(&conns[i]);
            if (!conns[i].done)
                continue;
            left--;
            char t[64];
            raw_header(conns[i].buf ? conns[i].buf : "", "X-Cache-Lease-Token", t, sizeof t);
            if (t[0] != '\0') {
                assert_int_equal(holder, -1); /* exactly one caller computes */
                holder = i;
                snprintf(token, sizeof token, "%s", t);
                fill_at = sh_now_ms() + COMPUTE_MS;
            }
        }
    }
    assert_int_not_equal(holder, -1);
    int coalesced = 0, hits = 0;
    for (int i = 0; i < CROWD; i++) {
        const char *resp = conns[i].buf ? conns[i].buf : "";
        char xc[32];
        raw_header(resp, "X-Cache", xc, sizeof xc);
        if (i == holder) {
            assert_int_equal(status_of(resp), 404);
        } else {
            if (status_of(resp) != 200)
                fprintf(stderr, "caller %d: %s\n", i, resp);
            assert_int_equal(status_of(resp), 200);
            assert_string_equal(raw_body(resp), "v42");
            coalesced += strcmp(xc, "HIT-COALESCED") == 0;
            hits += strncmp(xc, "HIT-L", 5) == 0; /* came after the fill */
        }
        free(conns[i].buf);
    }
    fprintf(stderr, "crowd: %d coalesced, %d plain hits, 1 computation\n", coalesced, hits);
    assert_int_equal(coalesced + hits, CROWD - 1);
    assert_true(coalesced > 0);
    assert_int_equal(lease_stat(a, "granted") + lease_stat(b, "granted"), 1);
    assert_int_equal(sh_stop_check(a), 0);
    assert_int_equal(sh_stop_check(b), 0);
}

/* ---- takeover and tokens ------------------------------------------------------------------ */

/* The holder never fills: a waiter (on the other instance) gets the lease once the holder's
 * expires; a waiter whose X-Cache-Wait ends first gets a 404 without a token in time; the stale
 * token is refused afterwards and changes nothing. */
static void test_takeover_and_stale_token(void **state)
{
    (void)state;
    sh_server *a = instance(NULL, NULL), *b = instance(NULL, NULL);
    const char *path = "/v1/cache/tk/k";
    sh_resp *r = lease_get(a, path, NULL, "1", NULL);
    SH_EXPECT_STATUS(r, 404);
    char stale[64];
    snprintf(stale, sizeof stale, "%s", token_of(r));
    assert_int_equal(strlen(stale), 22);
    sh_resp_free(r);

    waiter w, quick;
    waiter_start(&w, b, path, "5", "5");
    waiter_start(&quick, b, path, "5", "0.3");
    long ms;
    r = waiter_join(&quick, &ms);
    SH_EXPECT_STATUS(r, 404);
    SH_EXPECT_HEADER(r, "X-Cache-Lease-Token", NULL); /* held: not available */
    assert_true(ms >= 250 && ms <= 300 + MARGIN_MS);
    sh_resp_free(r);
    r = waiter_join(&w, &ms);
    SH_EXPECT_STATUS(r, 404);
    char fresh[64];
    snprintf(fresh, sizeof fresh, "%s", token_of(r));
    assert_int_equal(strlen(fresh), 22); /* the takeover */
    fprintf(stderr, "takeover after %ld ms\n", ms);
    assert_true(ms >= 700 && ms <= 1000 + MARGIN_MS);
    assert_string_not_equal(fresh, stale);
    sh_resp_free(r);
    assert_int_equal(lease_stat(b, "takeovers"), 1);

    /* The stale token: refused on both instances, nothing written, the new lease intact. */
    r = fill(a, path, NULL, stale, "late", 0);
    SH_EXPECT_ERROR(r, 409, "lease_not_held");
    sh_resp_free(r);
    r = call(b, "DELETE", path, NULL, NULL, "X-Cache-Lease-Token: AAAAAAAAAAAAAAAAAAAAAA", NULL,
             NULL);
    SH_EXPECT_ERROR(r, 409, "lease_not_held"); /* forged */
    sh_resp_free(r);
    r = fill(b, path, NULL, "not a token", "x", 0);
    SH_EXPECT_ERROR(r, 409, "lease_not_held");
    sh_resp_free(r);
    r = call(a, "GET", path, NULL, NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 404);
    sh_resp_free(r);
    r = lease_get(a, path, NULL, "5", "0"); /* still held by the new holder */
    SH_EXPECT_STATUS(r, 404);
    SH_EXPECT_HEADER(r, "X-Cache-Lease-Token", NULL);
    sh_resp_free(r);
    r = fill(b, path, NULL, fresh, "computed", 0);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    r = call(a, "GET", path, NULL, NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    assert_string_equal(r->body, "computed");
    sh_resp_free(r);
    assert_true(lease_stat(a, "refused") + lease_stat(b, "refused") >= 2);
    assert_int_equal(sh_stop_check(a), 0);
    assert_int_equal(sh_stop_check(b), 0);
}

/* A token is bound to the tenant and namespace of the request that got it. */
static void test_token_of_another_tenant_or_namespace(void **state)
{
    (void)state;
    sh_server *s = instance(NULL, NULL);
    sh_resp *r = lease_get(s, "/v1/cache/tn/k", "acme", "10", NULL);
    SH_EXPECT_STATUS(r, 404);
    char token[64];
    snprintf(token, sizeof token, "%s", token_of(r));
    sh_resp_free(r);
    /* The same key in another tenant, and the same tenant in another namespace: not the holder. */
    r = fill(s, "/v1/cache/tn/k", "other", token, "intruder", 0);
    SH_EXPECT_ERROR(r, 409, "lease_not_held");
    sh_resp_free(r);
    r = fill(s, "/v1/cache/tn2/k", "acme", token, "intruder", 0);
    SH_EXPECT_ERROR(r, 409, "lease_not_held");
    sh_resp_free(r);
    char th[128];
    snprintf(th, sizeof th, "X-Cache-Lease-Token: %s", token);
    r = call(s, "DELETE", "/v1/cache/tn/k", "other", NULL, th, NULL, NULL);
    SH_EXPECT_ERROR(r, 409, "lease_not_held");
    sh_resp_free(r);
    /* A token bound to acme cannot even name another tenant; its own fill still works. */
    const char *hs[] = {"Authorization: Bearer " ACME_WRITE, "X-Tenant: other", th, NULL};
    r = sh_request(s, "PUT", "/v1/cache/tn/k", hs, "x", 1);
    SH_EXPECT_ERROR(r, 403, "forbidden");
    sh_resp_free(r);
    r = call(s, "GET", "/v1/cache/tn/k", "other", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 404); /* nothing written anywhere */
    sh_resp_free(r);
    r = call(s, "GET", "/v1/cache/tn2/k", "acme", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 404);
    sh_resp_free(r);
    r = fill(s, "/v1/cache/tn/k", "acme", token, "mine", 0); /* the lease was left intact */
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(s), 0);
}

/* ---- PATCH, DELETE, X-Cache-Error --------------------------------------------------------- */

static void test_patch_extends(void **state)
{
    (void)state;
    sh_server *s = instance(NULL, NULL);
    const char *path = "/v1/cache/px/k";
    sh_resp *r = lease_get(s, path, NULL, "1", NULL);
    char token[64], th[128];
    snprintf(token, sizeof token, "%s", token_of(r));
    snprintf(th, sizeof th, "X-Cache-Lease-Token: %s", token);
    sh_resp_free(r);
    r = call(s, "PATCH", path, NULL, NULL, th, "X-Cache-Lease: 4", NULL);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    r = call(s, "PATCH", path, NULL, NULL, th, NULL, NULL);
    SH_EXPECT_ERROR(r, 400, "bad_lease");
    sh_resp_free(r);
    r = call(s, "PATCH", path, NULL, NULL, "X-Cache-Lease-Token: AAAAAAAAAAAAAAAAAAAAAA",
             "X-Cache-Lease: 4", NULL);
    SH_EXPECT_ERROR(r, 409, "lease_not_held");
    sh_resp_free(r);
    r = call(s, "PATCH", path, NULL, NULL, "X-Cache-Lease: 4", NULL, NULL);
    SH_EXPECT_ERROR(r, 400, "bad_request"); /* no token */
    sh_resp_free(r);
    sh_sleep_ms(1500); /* past the first lease: still held thanks to the PATCH */
    r = lease_get(s, path, NULL, "5", "0.2");
    SH_EXPECT_STATUS(r, 404);
    SH_EXPECT_HEADER(r, "X-Cache-Lease-Token", NULL);
    sh_resp_free(r);
    r = fill(s, path, NULL, token, "done", 0);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(s), 0);
}

/* DELETE with the token gives the lease up: a waiter takes over at once, not at the lease's end;
 * a plain DELETE still deletes the key. */
static void test_delete_releases(void **state)
{
    (void)state;
    sh_server *a = instance(NULL, NULL), *b = instance(NULL, NULL);
    const char *path = "/v1/cache/rel/k";
    sh_resp *r = lease_get(a, path, NULL, "30", NULL);
    char th[128];
    snprintf(th, sizeof th, "X-Cache-Lease-Token: %s", token_of(r));
    sh_resp_free(r);
    waiter w;
    waiter_start(&w, b, path, "5", "10");
    until_waiting(b, 1);
    long released = sh_now_ms();
    r = call(a, "DELETE", path, NULL, NULL, th, NULL, NULL);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    r = waiter_join(&w, NULL);
    SH_EXPECT_STATUS(r, 404);
    assert_int_equal(strlen(token_of(r)), 22);
    assert_true(sh_now_ms() - released <= MARGIN_MS);
    sh_resp_free(r);
    r = call(a, "DELETE", path, NULL, NULL, th, NULL, NULL); /* released already */
    SH_EXPECT_ERROR(r, 409, "lease_not_held");
    sh_resp_free(r);
    /* A plain DELETE is the delete it always was. */
    r = call(a, "PUT", path, NULL, "v", NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    r = call(a, "DELETE", path, NULL, NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    r = call(a, "GET", path, NULL, NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 404);
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(a), 0);
    assert_int_equal(sh_stop_check(b), 0);
}

/* The holder reports a failure: waiters get the error result, marked, for the namespace's error
 * TTL (errs: 1 s) and not longer. */
static void test_error_result(void **state)
{
    (void)state;
    sh_server *a = instance(NULL, NULL), *b = instance(NULL, NULL);
    const char *path = "/v1/cache/errs/k";
    sh_resp *r = lease_get(a, path, NULL, "10", NULL);
    char token[64];
    snprintf(token, sizeof token, "%s", token_of(r));
    sh_resp_free(r);
    waiter w;
    waiter_start(&w, b, path, "5", "5");
    until_waiting(b, 1);
    r = fill(a, "/v1/cache/errs/k?ttl=600", NULL, token, "upstream failed", 1);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    r = waiter_join(&w, NULL);
    SH_EXPECT_STATUS(r, 200);
    SH_EXPECT_HEADER(r, "X-Cache", "HIT-COALESCED");
    SH_EXPECT_HEADER(r, "X-Cache-Error", "1");
    assert_string_equal(r->body, "upstream failed");
    sh_resp_free(r);
    r = call(a, "GET", path, NULL, NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    SH_EXPECT_HEADER(r, "X-Cache-Error", "1");
    sh_resp_free(r);
    r = call(a, "GET", "/v1/cache/errs/plain", NULL, NULL, NULL, NULL, NULL);
    SH_EXPECT_HEADER(r, "X-Cache-Error", NULL);
    sh_resp_free(r);
    sh_sleep_ms(1300 + 200); /* error_ttl=1 (±10% jitter), not the ?ttl=600 */
    r = call(b, "GET", path, NULL, NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 404);
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(a), 0);
    assert_int_equal(sh_stop_check(b), 0);
}

/* ---- what is refused ---------------------------------------------------------------------- */

static void expect_bad(const sh_server *s, const char *h1, const char *h2, const char *code,
                       const char *names)
{
    sh_resp *r = call(s, "GET", "/v1/cache/bad/k", NULL, NULL, h1, h2, NULL);
    SH_EXPECT_ERROR(r, 400, code);
    assert_non_null(strstr(r->body, names));
    sh_resp_free(r);
}

static void test_bad_headers(void **state)
{
    (void)state;
    sh_server *s = instance("STRATA_LEASE_MAX=60", NULL);
    const char *bad_leases[] = {"X-Cache-Lease: abc",    "X-Cache-Lease: 0",  "X-Cache-Lease: 61",
                                "X-Cache-Lease: 1.2345", "X-Cache-Lease: -1", "X-Cache-Lease: 1.",
                                "X-Cache-Lease: 1e3"};
    for (size_t i = 0; i < sizeof bad_leases / sizeof *bad_leases; i++)
        expect_bad(s, bad_leases[i], NULL, "bad_lease", "X-Cache-Lease must be");
    expect_bad(s, "X-Cache-Lease: 1", "X-Cache-Wait: 61", "bad_wait", "X-Cache-Wait must be");
    expect_bad(s, "X-Cache-Lease: 1", "X-Cache-Wait: x", "bad_wait", "X-Cache-Wait must be");
    sh_resp *r = call(s, "PUT", "/v1/cache/bad/k", NULL, "v", "X-Cache-Error: yes", NULL, NULL);
    SH_EXPECT_ERROR(r, 400, "bad_request");
    assert_non_null(strstr(r->body, "X-Cache-Error"));
    sh_resp_free(r);
    r = call(s, "PUT", "/v1/cache/bad/k", NULL, "v", "X-Cache-Lease-Token: AAAAAAAAAAAAAAAAAAAAAA",
             "If-None-Match: *", NULL);
    SH_EXPECT_ERROR(r, 400, "bad_request");
    sh_resp_free(r);
    /* A reader may not take leases: it could not fill them. */
    const char *hs[] = {"Authorization: Bearer " READ, "X-Cache-Lease: 5", NULL};
    r = sh_request(s, "GET", "/v1/cache/bad/k", hs, NULL, 0);
    SH_EXPECT_ERROR(r, 403, "forbidden");
    sh_resp_free(r);
    /* Without X-Cache-Lease a miss is the plain 404 at once: no wait, no token. */
    r = call(s, "GET", "/v1/cache/bad/k", NULL, NULL, "X-Cache-Wait: 5", NULL, NULL);
    SH_EXPECT_ERROR(r, 404, "not_found");
    SH_EXPECT_HEADER(r, "X-Cache-Lease-Token", NULL);
    assert_true(r->elapsed_ms < 1000);
    sh_resp_free(r);
    assert_int_equal(lease_stat(s, "granted"), 0);
    assert_int_equal(sh_stop_check(s), 0);
}

/* STRATA_LEASE_WAITERS=2: a third waiter is refused with 503 and Retry-After; the two waiting
 * still get the value. */
static void test_waiter_bound(void **state)
{
    (void)state;
    sh_server *s = instance("STRATA_LEASE_WAITERS=2", NULL);
    const char *path = "/v1/cache/wb/k";
    sh_resp *r = lease_get(s, path, NULL, "10", NULL);
    char token[64];
    snprintf(token, sizeof token, "%s", token_of(r));
    sh_resp_free(r);
    waiter w[2];
    waiter_start(&w[0], s, path, "5", "10");
    waiter_start(&w[1], s, path, "5", "10");
    until_waiting(s, 2);
    r = lease_get(s, path, NULL, "5", "10");
    SH_EXPECT_ERROR(r, 503, "lease_busy");
    SH_EXPECT_HEADER(r, "Retry-After", "1");
    sh_resp_free(r);
    r = fill(s, path, NULL, token, "v", 0);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    for (int i = 0; i < 2; i++) {
        r = waiter_join(&w[i], NULL);
        SH_EXPECT_STATUS(r, 200);
        sh_resp_free(r);
    }
    assert_int_equal(lease_stat(s, "busy"), 1);
    assert_int_equal(sh_stop_check(s), 0);
}

/* Redis killed while callers wait: the instance answers them itself (one of them is given a
 * lease of this instance, the others its value), never a 5xx. */
static void test_redis_killed_mid_wait(void **state)
{
    (void)state;
    sh_server *s = instance(NULL, NULL);
    const char *path = "/v1/cache/rk/k";
    sh_resp *r = lease_get(s, path, NULL, "2", NULL);
    assert_int_equal(strlen(token_of(r)), 22);
    sh_resp_free(r);
    enum { N = 6 };
    waiter w[N];
    sh_resp *got[N] = {0};
    for (int i = 0; i < N; i++)
        waiter_start(&w[i], s, path, "10", "8");
    until_waiting(s, N);
    assert_int_equal(rh_kill(redis), 0);
    /* The first answered is the one given the lease (the others wait for its fill). */
    int t = -1;
    long deadline = sh_now_ms() + 8000 + MARGIN_MS;
    while (t < 0 && sh_now_ms() < deadline) {
        for (int i = 0; i < N && t < 0; i++) {
            if (got[i] != NULL || !atomic_load(&w[i].done))
                continue;
            got[i] = waiter_join(&w[i], NULL);
            if (got[i]->status >= 500)
                fprintf(stderr, "waiter %d: %ld %s\n", i, got[i]->status, got[i]->body);
            assert_true(got[i]->status > 0 && got[i]->status < 500);
            if (strlen(token_of(got[i])) == 22)
                t = i;
        }
        sh_sleep_ms(10);
    }
    assert_true(t >= 0);
    r = fill(s, path, NULL, token_of(got[t]), "local", 0);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    for (int i = 0; i < N; i++) {
        if (got[i] == NULL)
            got[i] = waiter_join(&w[i], NULL);
        if (i != t) {
            SH_EXPECT_STATUS(got[i], 200);
            assert_string_equal(got[i]->body, "local");
        }
        sh_resp_free(got[i]);
    }
    /* A cold key with Redis down: the lease is this instance's, no error. */
    r = lease_get(s, "/v1/cache/rk/other", NULL, "5", "1");
    SH_EXPECT_STATUS(r, 404);
    assert_int_equal(strlen(token_of(r)), 22);
    sh_resp_free(r);
    assert_true(lease_stat(s, "local") > 0);
    assert_int_equal(sh_stop_check(s), 0);
    assert_int_equal(rh_restart(redis), 0);
}

int main(void)
{
    SH_TEST_FILTER();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crowd_over_two_instances),
        cmocka_unit_test(test_takeover_and_stale_token),
        cmocka_unit_test(test_token_of_another_tenant_or_namespace),
        cmocka_unit_test(test_patch_extends),
        cmocka_unit_test(test_delete_releases),
        cmocka_unit_test(test_error_result),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_waiter_bound),
        cmocka_unit_test(test_redis_killed_mid_wait),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
