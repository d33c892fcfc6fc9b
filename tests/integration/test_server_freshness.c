/* test_server_freshness.c: freshness on the KV API (issue 13; docs/api.md, "Leases": grace,
 * stale-if-error, early refresh, time windows), on real strata serve processes sharing a real
 * Redis.
 *
 * Grace: past its TTL a value is answered at once, X-Cache: STALE, and exactly one of 20
 * concurrent lease GETs over two instances gets the token; its fill makes the next GET a hit.
 * Stale-if-error: the holder's X-Cache-Error keeps the old value, answered STALE to the waiters
 * and to every GET for the error TTL, without a token; without a copy the error result is
 * stored as before. XFetch: a value written with ?compute_time=10&beta=100 gives one lease GET
 * the token before expiry, the others plain hits while it is held. Namespace settings from
 * STRATA_NAMESPACES. ?window=: one key per window (X-Cache-Key), a PUT's TTL ends with its
 * window. Bad parameters are 400s with their codes. Redis down: the instance decides (one token
 * per instance), never a 5xx. A forged or another tenant's token on X-Cache-Error: 409, nothing
 * changed.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "server_harness.h"

#define WRITE  "write-token-1"
#define ADMIN  "admin-token-1"
#define TOKENS "STRATA_TOKENS=" WRITE ":write," ADMIN ":admin"
#define CROWD  20

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

/* An instance on the test's Redis; ns: STRATA_NAMESPACES (NULL: the test's default). */
static sh_server *instance(const char *ns)
{
    const char *env[] = {redis_env,
                         TOKENS,
                         "STRATA_WORKERS=2",
                         "REDIS_SOCKET_TIMEOUT=0.3",
                         ns ? ns : "STRATA_NAMESPACES=sie:error_ttl=2",
                         NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    return s;
}

/* One request with the write token, up to 3 extra headers. */
static sh_resp *call(const sh_server *s, const char *method, const char *path, const char *tenant,
                     const char *body, const char *h1, const char *h2, const char *h3)
{
    char ten[80];
    snprintf(ten, sizeof ten, "X-Tenant: %s", tenant ? tenant : "default");
    const char *hs[] = {"Authorization: Bearer " WRITE, ten, h1, h2, h3, NULL};
    return sh_request(s, method, path, hs, body, body ? strlen(body) : 0);
}

/* Cache-Control after its max-age (which jitter moves): ", stale-while-revalidate=..." or "". */
static const char *cc_windows(const sh_resp *r)
{
    const char *cc = sh_resp_header(r, "Cache-Control");
    assert_non_null(cc);
    assert_memory_equal(cc, "max-age=", 8);
    return cc + 8 + strspn(cc + 8, "0123456789");
}

static const char *token_of(const sh_resp *r)
{
    const char *t = sh_resp_header(r, "X-Cache-Lease-Token");
    return t ? t : "";
}

static sh_resp *lease_get(const sh_server *s, const char *path, const char *tenant)
{
    return call(s, "GET", path, tenant, NULL, "X-Cache-Lease: 10", "X-Cache-Wait: 5", NULL);
}

/* PUT with the token (X-Cache-Error: 1 when error). */
static sh_resp *fill(const sh_server *s, const char *path, const char *tenant, const char *token,
                     const char *body, int error)
{
    char th[128];
    snprintf(th, sizeof th, "X-Cache-Lease-Token: %s", token);
    return call(s, "PUT", path, tenant, body, th, "Content-Type: text/plain",
                error ? "X-Cache-Error: 1" : NULL);
}

static void put_ok(const sh_server *s, const char *path, const char *body)
{
    sh_resp *r = call(s, "PUT", path, NULL, body, "Content-Type: text/plain", NULL, NULL);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
}

static json_t *get_json(const sh_server *s, const char *path)
{
    const char *hs[] = {"Authorization: Bearer " ADMIN, NULL};
    sh_resp *r = sh_request(s, "GET", path, hs, NULL, 0);
    SH_EXPECT_STATUS(r, 200);
    json_t *j = sh_resp_json(r);
    sh_resp_free(r);
    assert_non_null(j);
    return j;
}

static long long stat_of(const sh_server *s, const char *section, const char *name)
{
    json_t *j = get_json(s, "/cache/stats");
    json_t *v = json_object_get(json_object_get(j, section), name);
    long long n = json_is_integer(v) ? json_integer_value(v) : json_is_true(v) ? 1 : 0;
    assert_true(json_is_integer(v) || json_is_boolean(v));
    json_decref(j);
    return n;
}

static long long lease_stat(const sh_server *s, const char *name)
{
    return stat_of(s, "leases", name);
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

/* ---- concurrent lease GETs ---------------------------------------------------------------- */

typedef struct getter {
    const sh_server *s;
    const char *path;
    sh_resp *r;
    pthread_t th;
} getter;

static void *getter_main(void *arg)
{
    getter *g = arg;
    g->r = lease_get(g->s, g->path, NULL);
    return NULL;
}

/* n lease GETs at once, alternating over a and b; answers in out[]. */
static void crowd(const sh_server *a, const sh_server *b, const char *path, int n, sh_resp **out)
{
    getter g[CROWD * 2];
    assert_true(n <= CROWD * 2);
    for (int i = 0; i < n; i++) {
        g[i] = (getter){.s = i % 2 ? b : a, .path = path};
        assert_int_equal(pthread_create(&g[i].th, NULL, getter_main, &g[i]), 0);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(g[i].th, NULL);
        out[i] = g[i].r;
    }
}

/* ---- grace -------------------------------------------------------------------------------- */

static void test_grace_stale_one_token_across_instances(void **state)
{
    (void)state;
    sh_server *a = instance(NULL), *b = instance(NULL);
    const char *path = "/v1/cache/fr/g";
    put_ok(a, "/v1/cache/fr/g?ttl=1&grace=30", "old");
    sh_resp *r = call(b, "GET", path, NULL, NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    assert_string_equal(cc_windows(r), ", stale-while-revalidate=30");
    sh_resp_free(r);
    sh_sleep_ms(1500); /* past the TTL (1 s, +-10%), well within the grace */

    sh_resp *got[CROWD];
    crowd(a, b, path, CROWD, got);
    int holder = -1;
    for (int i = 0; i < CROWD; i++) {
        SH_EXPECT_STATUS(got[i], 200);
        SH_EXPECT_HEADER(got[i], "X-Cache", "STALE");
        SH_EXPECT_HEADER(got[i], "Cache-Control", "max-age=0");
        assert_string_equal(got[i]->body, "old");
        if (token_of(got[i])[0] != '\0') {
            assert_int_equal(holder, -1); /* exactly one caller refreshes */
            holder = i;
        }
    }
    assert_int_not_equal(holder, -1);
    assert_int_equal(strlen(token_of(got[holder])), 22);
    /* A plain GET is what it always was: past its TTL, a miss. */
    r = call(a, "GET", path, NULL, NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 404);
    sh_resp_free(r);

    r = fill(holder % 2 ? b : a, "/v1/cache/fr/g?ttl=60&grace=30", NULL, token_of(got[holder]),
             "new", 0);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    for (int i = 0; i < CROWD; i++)
        sh_resp_free(got[i]);
    for (int i = 0; i < 2; i++) {
        /* The other instance's memory drops its stale copy when the invalidation reaches it:
         * within the coherence window (asserted with a margin). */
        long until = sh_now_ms() + 1000;
        for (;;) {
            r = lease_get(i ? b : a, path, NULL);
            SH_EXPECT_STATUS(r, 200);
            SH_EXPECT_HEADER(r, "X-Cache-Lease-Token", NULL);
            if (strstr(sh_resp_header(r, "X-Cache"), "HIT") != NULL || sh_now_ms() > until)
                break;
            sh_resp_free(r);
            sh_sleep_ms(20);
        }
        assert_non_null(strstr(sh_resp_header(r, "X-Cache"), "HIT"));
        assert_string_equal(r->body, "new");
        sh_resp_free(r);
    }
    assert_true(lease_stat(a, "stale_served") + lease_stat(b, "stale_served") >= CROWD);
    assert_int_equal(lease_stat(a, "granted") + lease_stat(b, "granted"), 1);
    assert_int_equal(sh_stop_check(a), 0);
    assert_int_equal(sh_stop_check(b), 0);
}

/* ---- stale-if-error ----------------------------------------------------------------------- */

/* Namespace sie: error_ttl=2. The value has no grace: past its TTL it waits for its refresh;
 * the refresh fails, and the waiters and every reader get the old value, STALE, for 2 s. */
static void test_stale_if_error_keeps_the_old_value(void **state)
{
    (void)state;
    sh_server *a = instance(NULL), *b = instance(NULL);
    const char *path = "/v1/cache/sie/k";
    put_ok(a, "/v1/cache/sie/k?ttl=1&stale_if_error=60", "old");
    sh_sleep_ms(1500);
    sh_resp *r = lease_get(a, path, NULL); /* within stale-if-error only: the lease, no value */
    SH_EXPECT_STATUS(r, 404);
    char token[64];
    snprintf(token, sizeof token, "%s", token_of(r));
    assert_int_equal(strlen(token), 22);
    sh_resp_free(r);
    enum { N = 4 };
    getter w[N];
    for (int i = 0; i < N; i++) {
        w[i] = (getter){.s = b, .path = path};
        assert_int_equal(pthread_create(&w[i].th, NULL, getter_main, &w[i]), 0);
    }
    until_waiting(b, N);
    r = fill(a, path, NULL, token, "backend down", 1);
    SH_EXPECT_STATUS(r, 204);
    SH_EXPECT_HEADER(r, "X-Cache", "STALE"); /* the copy is kept */
    sh_resp_free(r);
    for (int i = 0; i < N; i++) {
        pthread_join(w[i].th, NULL);
        SH_EXPECT_STATUS(w[i].r, 200);
        SH_EXPECT_HEADER(w[i].r, "X-Cache", "STALE");
        SH_EXPECT_HEADER(w[i].r, "X-Cache-Lease-Token", NULL);
        SH_EXPECT_HEADER(w[i].r, "X-Cache-Error", NULL);
        assert_string_equal(w[i].r->body, "old");
        sh_resp_free(w[i].r);
    }
    /* For the error TTL, every GET (lease or not, either instance) is the copy, STALE, and
     * nobody is given a token: the failing backend is not asked again. */
    for (int i = 0; i < 4; i++) {
        r = i % 2 ? lease_get(i < 2 ? a : b, path, NULL)
                  : call(i < 2 ? a : b, "GET", path, NULL, NULL, NULL, NULL, NULL);
        SH_EXPECT_STATUS(r, 200);
        SH_EXPECT_HEADER(r, "X-Cache", "STALE");
        SH_EXPECT_HEADER(r, "Cache-Control", "max-age=0");
        SH_EXPECT_HEADER(r, "X-Cache-Lease-Token", NULL);
        assert_string_equal(r->body, "old");
        sh_resp_free(r);
    }
    assert_int_equal(lease_stat(a, "stale_kept"), 1);
    assert_int_equal(lease_stat(a, "errors_stored"), 0);
    assert_true(lease_stat(b, "stale_served") >= N + 2);
    sh_sleep_ms(2500); /* past the error TTL (exact): the next caller tries again */
    r = lease_get(b, path, NULL);
    SH_EXPECT_STATUS(r, 404);
    assert_int_equal(strlen(token_of(r)), 22);
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(a), 0);
    assert_int_equal(sh_stop_check(b), 0);
}

/* No copy to keep: the error result is stored, as before, and reads of it are negative hits. */
static void test_error_without_a_copy(void **state)
{
    (void)state;
    sh_server *a = instance(NULL), *b = instance(NULL);
    const char *path = "/v1/cache/sie/cold";
    sh_resp *r = lease_get(a, path, NULL);
    char token[64];
    snprintf(token, sizeof token, "%s", token_of(r));
    assert_int_equal(strlen(token), 22);
    sh_resp_free(r);
    getter w = {.s = b, .path = path};
    assert_int_equal(pthread_create(&w.th, NULL, getter_main, &w), 0);
    until_waiting(b, 1);
    r = fill(a, path, NULL, token, "upstream failed", 1);
    SH_EXPECT_STATUS(r, 204);
    SH_EXPECT_HEADER(r, "X-Cache", NULL);
    sh_resp_free(r);
    pthread_join(w.th, NULL);
    SH_EXPECT_STATUS(w.r, 200);
    SH_EXPECT_HEADER(w.r, "X-Cache", "HIT-COALESCED");
    SH_EXPECT_HEADER(w.r, "X-Cache-Error", "1");
    assert_string_equal(w.r->body, "upstream failed");
    sh_resp_free(w.r);
    r = call(a, "GET", path, NULL, NULL, NULL, NULL, NULL);
    SH_EXPECT_HEADER(r, "X-Cache-Error", "1");
    sh_resp_free(r);
    assert_int_equal(lease_stat(a, "errors_stored"), 1);
    assert_int_equal(lease_stat(a, "negative_hits"), 1);
    assert_int_equal(lease_stat(b, "negative_hits"), 1);
    /* The same token again: released with the failure. */
    r = fill(a, path, NULL, token, "again", 1);
    SH_EXPECT_ERROR(r, 409, "lease_not_held");
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(a), 0);
    assert_int_equal(sh_stop_check(b), 0);
}

/* ---- early refresh (XFetch) --------------------------------------------------------------- */

static void test_xfetch_gives_one_early_token(void **state)
{
    (void)state;
    sh_server *a = instance(NULL), *b = instance(NULL);
    const char *path = "/v1/cache/xf/hot";
    /* 10 s of computation at beta 100: 1000 s * -ln(u) ahead, more than the 2 s TTL for all
     * but one draw in 500: every lease GET is chosen, one of them is given the lease. */
    put_ok(a, "/v1/cache/xf/hot?ttl=2&compute_time=10&beta=100", "v1");
    sh_sleep_ms(1000); /* within the second before expiry */
    int tokens = 0;
    char token[64] = "";
    for (int i = 0; i < 12; i++) {
        sh_resp *r = lease_get(i % 2 ? b : a, path, NULL);
        SH_EXPECT_STATUS(r, 200);
        assert_non_null(strstr(sh_resp_header(r, "X-Cache"), "HIT"));
        assert_string_equal(r->body, "v1");
        if (token_of(r)[0] != '\0') {
            tokens++;
            snprintf(token, sizeof token, "%s", token_of(r));
        }
        sh_resp_free(r);
    }
    assert_int_equal(tokens, 1); /* at most one holder: the other refresh acquires refused */
    /* A plain GET never refreshes. */
    sh_resp *r = call(a, "GET", path, NULL, NULL, NULL, NULL, NULL);
    SH_EXPECT_HEADER(r, "X-Cache-Lease-Token", NULL);
    sh_resp_free(r);
    r = fill(a, "/v1/cache/xf/hot?ttl=60", NULL, token, "v2", 0);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    /* b's memory drops v1 when Redis' invalidation reaches it: within the coherence bound, not
     * at once (docs/architecture.md, "Coherence"). */
    for (long t0 = sh_now_ms();; sh_sleep_ms(20)) {
        r = call(b, "GET", path, NULL, NULL, NULL, NULL, NULL);
        int seen = r->status == 200 && strcmp(r->body, "v2") == 0;
        sh_resp_free(r);
        if (seen)
            break;
        if (sh_now_ms() - t0 > 5000)
            fail_msg("b still answers v1 5 s after a stored v2");
    }
    /* v2's compute time is the time since the grant (a few ms), the namespace's beta 1: not
     * early an hour before its expiry. */
    for (int i = 0; i < 10; i++) {
        r = lease_get(i % 2 ? b : a, path, NULL);
        SH_EXPECT_STATUS(r, 200);
        assert_string_equal(r->body, "v2");
        SH_EXPECT_HEADER(r, "X-Cache-Lease-Token", NULL);
        sh_resp_free(r);
    }
    /* Without a compute time a value is never refreshed early. */
    put_ok(a, "/v1/cache/xf/plain?ttl=1&beta=100", "p");
    for (int i = 0; i < 10; i++) {
        r = lease_get(a, "/v1/cache/xf/plain", NULL);
        SH_EXPECT_HEADER(r, "X-Cache-Lease-Token", NULL);
        sh_resp_free(r);
    }
    /* beta=0: never early. */
    put_ok(a, "/v1/cache/xf/never?ttl=2&compute_time=10&beta=0", "n");
    for (int i = 0; i < 10; i++) {
        r = lease_get(b, "/v1/cache/xf/never", NULL);
        SH_EXPECT_HEADER(r, "X-Cache-Lease-Token", NULL);
        sh_resp_free(r);
    }
    assert_int_equal(lease_stat(a, "early_refreshes") + lease_stat(b, "early_refreshes"), 1);
    sh_resp *m = sh_request(a, "GET", "/metrics", NULL, NULL, 0);
    assert_non_null(strstr(m->body, "strata_lease_early_refreshes_total "));
    assert_non_null(strstr(m->body, "strata_cache_stale_served_total 0"));
    assert_non_null(strstr(m->body, "strata_lease_stale_kept_total 0"));
    assert_non_null(strstr(m->body, "strata_lease_errors_stored_total 0"));
    assert_non_null(strstr(m->body, "strata_cache_negative_hits_total 0"));
    sh_resp_free(m);
    assert_int_equal(sh_stop_check(a), 0);
    assert_int_equal(sh_stop_check(b), 0);
}

/* ---- namespaces --------------------------------------------------------------------------- */

static void test_namespace_settings(void **state)
{
    (void)state;
    sh_server *a = instance("STRATA_NAMESPACES=nsg:grace=30,stale_if_error=60,beta=2;nsz:jitter=0");
    put_ok(a, "/v1/cache/nsg/k?ttl=1", "old");
    sh_resp *r = call(a, "GET", "/v1/cache/nsg/k", NULL, NULL, NULL, NULL, NULL);
    assert_string_equal(cc_windows(r), ", stale-while-revalidate=30, stale-if-error=60");
    sh_resp_free(r);
    /* ?grace=0 on one write: none, although the namespace has one. */
    put_ok(a, "/v1/cache/nsg/nograce?ttl=1&grace=0", "x");
    sh_sleep_ms(1500);
    r = lease_get(a, "/v1/cache/nsg/k", NULL);
    SH_EXPECT_STATUS(r, 200);
    SH_EXPECT_HEADER(r, "X-Cache", "STALE");
    assert_int_equal(strlen(token_of(r)), 22);
    sh_resp_free(r);
    r = lease_get(a, "/v1/cache/nsg/nograce", NULL); /* stale-if-error only: the lease's wait */
    SH_EXPECT_STATUS(r, 404);
    assert_int_equal(strlen(token_of(r)), 22);
    sh_resp_free(r);
    json_t *j = get_json(a, "/cache/stats?namespace=nsg");
    json_t *set = json_object_get(j, "settings");
    assert_int_equal(json_integer_value(json_object_get(set, "grace")), 30);
    assert_int_equal(json_integer_value(json_object_get(set, "stale_if_error")), 60);
    assert_true(json_real_value(json_object_get(set, "beta")) == 2.0);
    json_decref(j);
    /* A namespace named for something else keeps the defaults: beta 1, no windows. */
    put_ok(a, "/v1/cache/nsz/k", "z");
    j = get_json(a, "/cache/stats?namespace=nsz");
    set = json_object_get(j, "settings");
    assert_int_equal(json_integer_value(json_object_get(set, "grace")), 0);
    assert_true(json_real_value(json_object_get(set, "beta")) == 1.0);
    json_decref(j);
    assert_int_equal(sh_stop_check(a), 0);

    const char *bad[] = {"STRATA_NAMESPACES=x:beta=101", "STRATA_NAMESPACES=x:grace=2592001",
                         "STRATA_NAMESPACES=x:stale_if_error=-1", "STRATA_NAMESPACES=x:beta=abc"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *env[] = {bad[i], NULL}, *args[] = {"--listen", "127.0.0.1:1", NULL};
        char *out = NULL;
        int st = sh_run(env, args, 5000, &out, NULL);
        assert_int_not_equal(st, 0);
        assert_non_null(strstr(out, "STRATA_NAMESPACES"));
        free(out);
    }
}

/* ---- time windows ------------------------------------------------------------------------- */

static long long wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Sleeps until just after the start of a window of w ms. */
static void window_start(long long w)
{
    sh_sleep_ms((long)(w - wall_ms() % w + 100));
}

static void test_windows(void **state)
{
    (void)state;
    sh_server *a = instance(NULL), *b = instance(NULL);
    window_start(4000);
    sh_resp *r1 = call(a, "GET", "/v1/cache/win/report?window=4", NULL, NULL, NULL, NULL, NULL);
    sh_resp *r2 = call(b, "GET", "/v1/cache/win/report?window=4", NULL, NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r1, 404);
    const char *k1 = sh_resp_header(r1, "X-Cache-Key");
    assert_non_null(k1);
    assert_non_null(strstr(k1, "report@"));
    SH_EXPECT_HEADER(r2, "X-Cache-Key", k1); /* the same window on every instance */
    char wkey[128];
    snprintf(wkey, sizeof wkey, "%s", k1);
    sh_resp_free(r1);
    sh_resp_free(r2);
    /* A PUT with ?window and no TTL ends with its window: exact, no jitter. */
    sh_resp *r = call(a, "PUT", "/v1/cache/win/report?window=4", NULL, "w", NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 204);
    SH_EXPECT_HEADER(r, "X-Cache-Key", wkey);
    sh_resp_free(r);
    r = call(b, "GET", "/v1/cache/win/report?window=4", NULL, NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    SH_EXPECT_HEADER(r, "X-Cache-Key", wkey);
    SH_EXPECT_HEADER(r, "Cache-Control", "max-age=3");
    assert_string_equal(r->body, "w");
    sh_resp_free(r);
    char direct[160]; /* the windowed key itself, as X-Cache-Key gave it */
    snprintf(direct, sizeof direct, "/v1/cache/win/%s", wkey);
    r = call(a, "GET", direct, NULL, NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    SH_EXPECT_HEADER(r, "X-Cache-Key", NULL);
    sh_resp_free(r);
    window_start(4000); /* the next window: a new key, the old entry gone with its window */
    r = call(a, "GET", "/v1/cache/win/report?window=4", NULL, NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 404);
    assert_string_not_equal(sh_resp_header(r, "X-Cache-Key"), wkey);
    sh_resp_free(r);
    r = call(b, "GET", direct, NULL, NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 404);
    sh_resp_free(r);
    /* A PUT to the windowed key itself is read through ?window in the same window. */
    window_start(4000);
    r = call(a, "GET", "/v1/cache/win/other?window=4", NULL, NULL, NULL, NULL, NULL);
    snprintf(direct, sizeof direct, "/v1/cache/win/%s?ttl=60", sh_resp_header(r, "X-Cache-Key"));
    sh_resp_free(r);
    put_ok(b, direct, "direct");
    r = call(a, "GET", "/v1/cache/win/other?window=4", NULL, NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    assert_string_equal(r->body, "direct");
    sh_resp_free(r);
    /* Percent-encoded as in a URL; a long one still whole (past the usual header room). */
    r = call(a, "GET", "/v1/cache/win/%C3%A9%20x?window=60", NULL, NULL, NULL, NULL, NULL);
    const char *k = sh_resp_header(r, "X-Cache-Key");
    assert_non_null(k);
    assert_memory_equal(k, "%C3%A9%20x@", 11);
    sh_resp_free(r);
    char path[4096] = "/v1/cache/win/", expect[2048] = "";
    for (int i = 0; i < 250; i++) {
        strcat(path, "%C3%A9");
        strcat(expect, "%C3%A9");
    }
    strcat(path, "?window=60");
    r = call(a, "GET", path, NULL, NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 404);
    k = sh_resp_header(r, "X-Cache-Key");
    assert_non_null(k);
    assert_int_equal(strncmp(k, expect, strlen(expect)), 0);
    assert_int_equal(k[strlen(expect)], '@');
    sh_resp_free(r);
    assert_true(sh_log_clean(a));
    assert_false(sh_log_contains(a, "dropped"));
    assert_int_equal(sh_stop_check(a), 0);
    assert_int_equal(sh_stop_check(b), 0);
}

/* ---- what is refused ---------------------------------------------------------------------- */

static void expect_bad(const sh_server *s, const char *method, const char *path, const char *code)
{
    sh_resp *r = call(s, method, path, NULL, method[0] == 'P' ? "v" : NULL, NULL, NULL, NULL);
    SH_EXPECT_ERROR(r, 400, code);
    sh_resp_free(r);
}

static void test_bad_parameters(void **state)
{
    (void)state;
    sh_server *s = instance(NULL);
    const char *windows[] = {"0", "0.5", "abc", "31536001", "-1", "1.2345"};
    const char *methods[] = {"GET", "HEAD", "PUT", "DELETE", "PATCH"};
    char path[128];
    for (size_t i = 0; i < sizeof windows / sizeof *windows; i++) {
        snprintf(path, sizeof path, "/v1/cache/bad/k?window=%s", windows[i]);
        for (size_t m = 0; m < sizeof methods / sizeof *methods; m++) {
            sh_resp *r = call(s, methods[m], path, NULL, NULL, NULL, NULL, NULL);
            SH_EXPECT_STATUS(r, 400);
            if (m != 1) /* HEAD: no body */
                assert_true(sh_resp_is_error(r, "bad_window"));
            sh_resp_free(r);
        }
    }
    expect_bad(s, "PUT", "/v1/cache/bad/k?grace=abc", "bad_grace");
    expect_bad(s, "PUT", "/v1/cache/bad/k?grace=-1", "bad_grace");
    expect_bad(s, "PUT", "/v1/cache/bad/k?grace=2592001", "bad_grace");
    expect_bad(s, "PUT", "/v1/cache/bad/k?stale_if_error=1e3", "bad_stale_if_error");
    expect_bad(s, "PUT", "/v1/cache/bad/k?beta=101", "bad_beta");
    expect_bad(s, "PUT", "/v1/cache/bad/k?beta=-1", "bad_beta");
    expect_bad(s, "PUT", "/v1/cache/bad/k?beta=nan", "bad_beta");
    expect_bad(s, "PUT", "/v1/cache/bad/k?compute_time=1.2345", "bad_compute_time");
    expect_bad(s, "PUT", "/v1/cache/bad/k?compute_time=86401", "bad_compute_time");
    sh_resp *r =
        call(s, "POST", "/v1/cache/bad/_mset", NULL,
             "{\"items\":[{\"key\":\"a\",\"value\":\"x\",\"beta\":200}]}", NULL, NULL, NULL);
    SH_EXPECT_ERROR(r, 400, "bad_item");
    assert_non_null(strstr(r->body, "beta"));
    sh_resp_free(r);
    r = call(s, "POST", "/v1/cache/bad/_mset", NULL,
             "{\"items\":[{\"key\":\"a\",\"value\":\"x\",\"ttl\":1,\"grace\":30,"
             "\"stale_if_error\":60.5,\"compute_time\":0.25,\"beta\":3}]}",
             NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    sh_resp_free(r);
    r = call(s, "GET", "/v1/cache/bad/a", NULL, NULL, NULL, NULL, NULL);
    assert_string_equal(cc_windows(r), ", stale-while-revalidate=30, stale-if-error=60");
    sh_resp_free(r);
    /* Nothing was written by the refused ones. */
    r = call(s, "GET", "/v1/cache/bad/k", NULL, NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 404);
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(s), 0);
}

/* ---- tokens that are not the holder's ----------------------------------------------------- */

static void test_forged_token_on_error_put(void **state)
{
    (void)state;
    sh_server *s = instance(NULL);
    const char *path = "/v1/cache/fg/k";
    sh_resp *r = call(s, "PUT", "/v1/cache/fg/k?ttl=1&grace=30", "acme", "old", NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    sh_sleep_ms(1500);
    r = lease_get(s, path, "acme");
    SH_EXPECT_HEADER(r, "X-Cache", "STALE");
    char token[64];
    snprintf(token, sizeof token, "%s", token_of(r));
    assert_int_equal(strlen(token), 22);
    sh_resp_free(r);
    r = fill(s, path, "acme", "AAAAAAAAAAAAAAAAAAAAAA", "boom", 1);
    SH_EXPECT_ERROR(r, 409, "lease_not_held");
    sh_resp_free(r);
    r = fill(s, path, "other", token, "boom", 1);
    SH_EXPECT_ERROR(r, 409, "lease_not_held");
    sh_resp_free(r);
    /* Nothing changed: still the stale value, the lease still held. */
    r = lease_get(s, path, "acme");
    SH_EXPECT_STATUS(r, 200);
    SH_EXPECT_HEADER(r, "X-Cache", "STALE");
    SH_EXPECT_HEADER(r, "X-Cache-Lease-Token", NULL);
    assert_string_equal(r->body, "old");
    sh_resp_free(r);
    r = call(s, "GET", path, "other", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 404);
    sh_resp_free(r);
    assert_int_equal(lease_stat(s, "stale_kept") + lease_stat(s, "errors_stored"), 0);
    r = fill(s, path, "acme", token, "boom", 1); /* the holder's own: the copy is kept */
    SH_EXPECT_STATUS(r, 204);
    SH_EXPECT_HEADER(r, "X-Cache", "STALE");
    sh_resp_free(r);
    assert_int_equal(lease_stat(s, "stale_kept"), 1);
    assert_int_equal(sh_stop_check(s), 0);
}

/* ---- Redis down --------------------------------------------------------------------------- */

static void test_redis_down_stale_single_flight(void **state)
{
    (void)state;
    sh_server *s = instance(NULL);
    assert_int_equal(rh_kill(redis), 0);
    long until = sh_now_ms() + 5000;
    while (stat_of(s, "l2", "coherent")) { /* the link is lost, L1 emptied: then write */
        assert_true(sh_now_ms() < until);
        sh_sleep_ms(20);
    }
    const char *path = "/v1/cache/rd/k";
    sh_resp *r = call(s, "PUT", "/v1/cache/rd/k?ttl=1&grace=30", NULL, "mine", NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 204);
    SH_EXPECT_HEADER(r, "X-Cache-Write", "l1-only");
    sh_resp_free(r);
    sh_sleep_ms(1500);
    sh_resp *got[CROWD];
    crowd(s, s, path, CROWD, got);
    int holder = -1;
    for (int i = 0; i < CROWD; i++) {
        SH_EXPECT_STATUS(got[i], 200);
        SH_EXPECT_HEADER(got[i], "X-Cache", "STALE");
        assert_string_equal(got[i]->body, "mine");
        if (token_of(got[i])[0] != '\0') {
            assert_int_equal(holder, -1); /* one per instance */
            holder = i;
        }
    }
    assert_int_not_equal(holder, -1);
    r = fill(s, path, NULL, token_of(got[holder]), "fresh", 0);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    for (int i = 0; i < CROWD; i++)
        sh_resp_free(got[i]);
    r = lease_get(s, path, NULL);
    SH_EXPECT_STATUS(r, 200);
    SH_EXPECT_HEADER(r, "X-Cache", "HIT-L1");
    assert_string_equal(r->body, "fresh");
    sh_resp_free(r);
    /* A failed refresh keeps the copy in this instance alone, and says so. */
    r = call(s, "PUT", "/v1/cache/rd/e?ttl=1&stale_if_error=30", NULL, "old", NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    sh_sleep_ms(1500);
    r = lease_get(s, "/v1/cache/rd/e", NULL); /* past its TTL, within stale-if-error: compute */
    SH_EXPECT_STATUS(r, 404);
    char token[64];
    snprintf(token, sizeof token, "%s", token_of(r));
    assert_int_not_equal(token[0], '\0');
    sh_resp_free(r);
    r = fill(s, "/v1/cache/rd/e", NULL, token, "boom", 1);
    SH_EXPECT_STATUS(r, 204);
    SH_EXPECT_HEADER(r, "X-Cache", "STALE");
    SH_EXPECT_HEADER(r, "X-Cache-Write", "l1-only");
    sh_resp_free(r);
    assert_true(lease_stat(s, "local") > 0);
    assert_int_equal(sh_stop_check(s), 0);
    assert_int_equal(rh_restart(redis), 0);
}

int main(void)
{
    SH_TEST_FILTER();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grace_stale_one_token_across_instances),
        cmocka_unit_test(test_stale_if_error_keeps_the_old_value),
        cmocka_unit_test(test_error_without_a_copy),
        cmocka_unit_test(test_xfetch_gives_one_early_token),
        cmocka_unit_test(test_namespace_settings),
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_bad_parameters),
        cmocka_unit_test(test_forged_token_on_error_put),
        cmocka_unit_test(test_redis_down_stale_single_flight),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
