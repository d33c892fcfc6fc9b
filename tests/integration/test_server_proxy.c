/* test_server_proxy.c: strata serve as a caching reverse proxy, against the test origin
 * (tests/origin/strata_test_origin.c), a real process whose answers the requests' X-Origin-*
 * headers shape (the proxy forwards them) and which counts the heads it receives.
 *
 * What a cache must do, one instance, memory only: strata's own endpoints win over the proxy's
 * catch-all; the forwarding headers reach the origin and strata's own do not; a miss is stored
 * and the next request is a hit the origin never sees (with Age and Cache-Status); what RFC 9111
 * forbids storing is streamed and never reused; max-age, s-maxage and Expires end a response's
 * freshness; an ETag is revalidated with If-None-Match and a 304 refreshes the stored headers;
 * a client's conditional request is answered 304 from the cache; Vary keeps one entry per
 * variant; stale-while-revalidate answers at once and refreshes in the background; an unsafe
 * request drops what it changes (its URL, and an invalidation rule's tags, the origin's
 * Surrogate-Key / Cache-Tag among them); tenants do not share entries; a large response streams
 * whole and is not stored, a chunked one is stored.
 *
 * Freshness is decided in whole seconds: tests of max-age=1 start just after a second begins
 * (px_align_second), so "right after" and "1.2 s later" fall in the same and the next second.
 * Failures, concurrency and reloads are in test_server_proxy_cluster.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "it_tmp.h"
#include "proxy_harness.h"

#define CC1  "X-Origin-Header: Cache-Control: max-age=1"
#define CC60 "X-Origin-Header: Cache-Control: max-age=60"

static oh_origin *origin; /* shared: each test reads its counter before and after */
static char *dir;

/* The origin's request count now minus before. */
static unsigned long asked_since(unsigned long before)
{
    return px_origin_requests(origin) - before;
}

static long header_long(const sh_resp *r, const char *name)
{
    const char *v = sh_resp_header(r, name);
    if (v == NULL)
        fail_msg("%s: no %s header", r->what, name);
    return strtol(v, NULL, 10);
}

/* ---- 1. precedence and forwarding ---------------------------------------------------------- */

static void test_own_endpoints_win_and_forwarded_headers(void **state)
{
    (void)state;
    sh_server *s = px_start_upstream(origin, NULL);
    assert_non_null(s);
    unsigned long before = px_origin_requests(origin);
    const char *const own[] = {"/cache/health", "/livez", "/metrics"};
    for (size_t i = 0; i < sizeof own / sizeof *own; i++) {
        sh_resp *r = px_get(s, "GET", own[i], (const char *)NULL);
        SH_EXPECT_STATUS(r, 200);
        SH_EXPECT_HEADER(r, "X-Cache", NULL);
        SH_EXPECT_HEADER(r, "Via", NULL);
        sh_resp_free(r);
    }
    assert_int_equal(asked_since(before), 0);

    /* anything else goes to the origin, and its answer comes back through strata */
    sh_resp *r = px_get(s, "GET", "/anything/at/all?x=1", "X-Origin-Body: from the origin",
                        (const char *)NULL);
    px_expect_body(r, "from the origin");
    assert_true(px_header_has(r, "Via", "1.1 strata"));
    assert_non_null(sh_resp_header(r, "X-Origin-Conn"));
    sh_resp_free(r);
    assert_int_equal(asked_since(before), 1);

    /* what the origin saw (GET /__echo answers the request's head) */
    r = px_get(s, "GET", "/__echo/forwarded", "Authorization: Bearer origin-secret-1",
               "X-Strata-Token: strata-secret-2", "X-Tenant: acme", (const char *)NULL);
    SH_EXPECT_STATUS(r, 200);
    char *host = it_xasprintf("X-Forwarded-Host: 127.0.0.1:%d\r\n", sh_port(s));
    const char *const seen[] = {"GET /__echo/forwarded HTTP/1.1\r\n",
                                "\r\nX-Forwarded-For: 127.0.0.1\r\n",
                                "\r\nX-Forwarded-Proto: http\r\n",
                                host,
                                "\r\nVia: 1.1 strata\r\n",
                                "\r\nAuthorization: Bearer origin-secret-1\r\n"};
    for (size_t i = 0; i < sizeof seen / sizeof *seen; i++)
        if (!px_contains_ci(r->body, r->body_len, seen[i]))
            fail_msg("the origin did not see \"%s\"; it saw:\n%s", seen[i], r->body);
    const char *const unseen[] = {"strata-secret-2", "X-Strata-Token", "X-Tenant", "acme"};
    for (size_t i = 0; i < sizeof unseen / sizeof *unseen; i++)
        if (px_contains_ci(r->body, r->body_len, unseen[i]))
            fail_msg("the origin saw \"%s\"; it saw:\n%s", unseen[i], r->body);
    free(host);
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(s), 0);
}

/* ---- 2. miss, hit, Age, HEAD --------------------------------------------------------------- */

static void test_miss_then_hit_age_and_head(void **state)
{
    (void)state;
    sh_server *s = px_start_upstream(origin, NULL);
    assert_non_null(s);
    unsigned long before = px_origin_requests(origin);
    /* Ages are whole seconds: the exchange starts early in a second so that it ends in it (a
     * loaded machine that crossed a second boundary would see ttl=59 and Age: 1). */
    px_align_second();
    sh_resp *r = px_get(s, "GET", "/hit/a", CC60, "X-Origin-Body: first", (const char *)NULL);
    px_expect_body(r, "first");
    px_expect_xcache(r, "MISS");
    SH_EXPECT_HEADER(r, "Cache-Status", "strata; fwd=uri-miss; fwd-status=200; stored; ttl=60");
    SH_EXPECT_HEADER(r, "Age", "0");
    assert_true(px_header_has(r, "Cache-Control", "max-age=60"));
    sh_resp_free(r);
    assert_int_equal(asked_since(before), 1);

    /* the stored answer, whatever the origin would say now */
    r = px_get(s, "GET", "/hit/a", CC60, "X-Origin-Body: second", (const char *)NULL);
    px_expect_body(r, "first");
    px_expect_xcache(r, "HIT-L1");
    assert_true(px_header_has(r, "Cache-Status", "strata; hit; ttl="));
    long ttl = strtol(strstr(sh_resp_header(r, "Cache-Status"), "ttl=") + 4, NULL, 10);
    assert_in_range(ttl, 58, 60);
    long age0 = header_long(r, "Age");
    assert_in_range(age0, 0, 1);
    assert_true(px_header_has(r, "Via", "1.1 strata"));
    sh_resp_free(r);
    assert_int_equal(asked_since(before), 1);

    sh_sleep_ms(1100);
    r = px_get(s, "GET", "/hit/a", (const char *)NULL);
    px_expect_body(r, "first");
    px_expect_xcache(r, "HIT-L1");
    long age1 = header_long(r, "Age"); /* at least a second more: it grows */
    assert_in_range(age1, age0 + 1, age0 + 2);
    sh_resp_free(r);

    /* HEAD from the stored GET: its head, no body, a hit */
    r = px_get(s, "HEAD", "/hit/a", (const char *)NULL);
    SH_EXPECT_STATUS(r, 200);
    px_expect_xcache(r, "HIT-L1");
    assert_int_equal(r->body_len, 0);
    SH_EXPECT_HEADER(r, "Content-Length", "5");
    sh_resp_free(r);
    assert_int_equal(asked_since(before), 1);

    assert_int_equal(sh_stop_check(s), 0);
}

/* ---- 3. what is not stored ----------------------------------------------------------------- */

static void test_not_cacheable_reaches_origin_every_time(void **state)
{
    (void)state;
    sh_server *s = px_start_upstream(origin, NULL);
    assert_non_null(s);
    static const struct {
        const char *path, *hdr;
    } cases[] = {
        {"/nc/plain", "X-Origin-Header: X-Nothing: 1"}, /* no Cache-Control, no Last-Modified */
        {"/nc/no-store", "X-Origin-Header: Cache-Control: no-store, max-age=60"},
        {"/nc/private", "X-Origin-Header: Cache-Control: private, max-age=60"},
        {"/nc/cookie", "X-Origin-Header: Set-Cookie: session=abc"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        unsigned long before = px_origin_requests(origin);
        for (int k = 0; k < 3; k++) {
            const char *extra = i == 3 ? CC60 : "X-Origin-Header: X-Other: 1";
            sh_resp *r = px_get(s, "GET", cases[i].path, cases[i].hdr, extra,
                                "X-Origin-Body: fresh every time", (const char *)NULL);
            px_expect_body(r, "fresh every time");
            assert_true(px_xcache_in(r, "MISS", "BYPASS", (const char *)NULL));
            const char *cs = sh_resp_header(r, "Cache-Status");
            if (cs != NULL && strstr(cs, "stored") != NULL)
                fail_msg("%s: Cache-Status says stored: %s", cases[i].path, cs);
            sh_resp_free(r);
        }
        if (asked_since(before) != 3)
            fail_msg("%s: the origin was asked %lu times for 3 requests", cases[i].path,
                     asked_since(before));
    }

    /* the request's no-store: not stored, so a plain request after it misses; then it is */
    unsigned long before = px_origin_requests(origin);
    for (int k = 0; k < 2; k++)
        PX_GET_EXPECT(s, "/nc/request-no-store", "x", "MISS", "Cache-Control: no-store", CC60,
                      "X-Origin-Body: x");
    assert_int_equal(asked_since(before), 2);
    PX_GET_EXPECT(s, "/nc/request-no-store", "x", "MISS", CC60, "X-Origin-Body: x");
    PX_GET_EXPECT(s, "/nc/request-no-store", "x", "HIT-L1", CC60, "X-Origin-Body: y");
    assert_int_equal(asked_since(before), 3);
    assert_int_equal(sh_stop_check(s), 0);
}

/* ---- 4. freshness ends --------------------------------------------------------------------- */

static void test_max_age_s_maxage_expires(void **state)
{
    (void)state;
    sh_server *s = px_start_upstream(origin, NULL);
    assert_non_null(s);
    char date[64], expires[64], past[64];
    px_align_second();
    time_t now = time(NULL);
    struct tm tm;
    strftime(date, sizeof date, "X-Origin-Header: Date: %a, %d %b %Y %H:%M:%S GMT",
             gmtime_r(&now, &tm));
    time_t later = now + 1, before_now = now - 60;
    strftime(expires, sizeof expires, "X-Origin-Header: Expires: %a, %d %b %Y %H:%M:%S GMT",
             gmtime_r(&later, &tm));
    strftime(past, sizeof past, "X-Origin-Header: Expires: %a, %d %b %Y %H:%M:%S GMT",
             gmtime_r(&before_now, &tm));
    unsigned long before = px_origin_requests(origin);
    /* stored, then a hit within the second */
    PX_GET_EXPECT(s, "/fr/max-age", "1", "MISS", CC1, "X-Origin-Body: 1");
    PX_GET_EXPECT(s, "/fr/s-maxage", "1", "MISS",
                  "X-Origin-Header: Cache-Control: max-age=60, s-maxage=1", "X-Origin-Body: 1");
    PX_GET_EXPECT(s, "/fr/expires", "1", "MISS", date, expires, "X-Origin-Body: 1");
    PX_GET_EXPECT(s, "/fr/max-age", "1", "HIT-L1", CC1, "X-Origin-Body: 2");
    PX_GET_EXPECT(s, "/fr/s-maxage", "1", "HIT-L1",
                  "X-Origin-Header: Cache-Control: max-age=60, s-maxage=1", "X-Origin-Body: 2");
    PX_GET_EXPECT(s, "/fr/expires", "1", "HIT-L1", date, expires, "X-Origin-Body: 2");
    assert_int_equal(asked_since(before), 3);
    /* an Expires in the past is stale on arrival: never reused */
    PX_GET_EXPECT(s, "/fr/expired", "e", "MISS", date, past, "X-Origin-Body: e");
    PX_GET_EXPECT(s, "/fr/expired", "e", "MISS", date, past, "X-Origin-Body: e");
    assert_int_equal(asked_since(before), 5);

    /* 1.2 s later all three are stale (s-maxage wins over max-age in a shared cache) */
    sh_sleep_ms(1200);
    PX_GET_EXPECT(s, "/fr/max-age", "2", "MISS", CC60, "X-Origin-Body: 2");
    PX_GET_EXPECT(s, "/fr/s-maxage", "2", "MISS", CC60, "X-Origin-Body: 2");
    PX_GET_EXPECT(s, "/fr/expires", "2", "MISS", CC60, "X-Origin-Body: 2");
    assert_int_equal(asked_since(before), 8);
    /* and what came back is stored again */
    PX_GET_EXPECT(s, "/fr/max-age", "2", "HIT-L1", "X-Origin-Body: 3");
    assert_int_equal(asked_since(before), 8);
    assert_int_equal(sh_stop_check(s), 0);
}

/* ---- 5. revalidation with the origin ------------------------------------------------------- */

#define ETAG_V1 "X-Origin-Header: ETag: \"v1\""
#define SIE60   "X-Origin-Header: Cache-Control: max-age=1, stale-if-error=60"

/* GET path once stale (4 s at most): the origin answers 304 (with extra, e.g. a length) and a new
 * header; strata answers the stored body with the refreshed headers. Returns the answer. */
static sh_resp *revalidated(const sh_server *s, const char *path, const char *extra)
{
    const char *const h[] = {
        SIE60, ETAG_V1, "X-Origin-Status: 304", "X-Origin-Header: X-Refreshed: yes", extra, NULL};
    sh_resp *r = px_send(s, "GET", path, NULL, 4000, h);
    px_expect_body(r, "stored body");
    px_expect_xcache(r, "REVALIDATED");
    assert_true(px_header_has(r, "Cache-Status", "fwd=stale; fwd-status=304"));
    SH_EXPECT_HEADER(r, "X-Refreshed", "yes");
    SH_EXPECT_HEADER(r, "ETag", "\"v1\"");
    return r;
}

/* Stored with an ETag and a stale-if-error window (which keeps the stale copy): once stale,
 * strata sends its validators (the 304 is taken as a revalidation only when it did), and a 304
 * refreshes the stored headers, which the next hit carries. */
static void test_etag_revalidated_with_304(void **state)
{
    (void)state;
    sh_server *s = px_start_upstream(origin, NULL);
    assert_non_null(s);
    unsigned long before = px_origin_requests(origin);
    px_align_second();
    PX_GET_EXPECT(s, "/rv/window", "stored body", "MISS", SIE60, ETAG_V1,
                  "X-Origin-Body: stored body");
    sh_sleep_ms(1200);
    sh_resp_free(revalidated(s, "/rv/window", "X-Origin-Header: X-Nothing: 1"));
    assert_int_equal(asked_since(before), 2);
    sh_resp *r = px_get(s, "GET", "/rv/window", "X-Origin-Body: not this", (const char *)NULL);
    px_expect_body(r, "stored body");
    px_expect_xcache(r, "HIT-L1");
    SH_EXPECT_HEADER(r, "X-Refreshed", "yes");
    sh_resp_free(r);
    assert_int_equal(asked_since(before), 2);
    assert_int_equal(sh_stop_check(s), 0);
}

/* ETag and max-age=1, no stale window: once expired, the copy is still kept for its validators,
 * and strata asks with If-None-Match (RFC 9111 §4.3.1). /__echo/...: the origin answers the
 * request's head, so the body shows what it saw. */
static void test_etag_revalidated_after_plain_expiry(void **state)
{
    (void)state;
    sh_server *s = px_start_upstream(origin, NULL);
    assert_non_null(s);
    px_align_second();
    sh_resp *r = px_get(s, "GET", "/__echo/rv-plain", CC1, ETAG_V1, (const char *)NULL);
    SH_EXPECT_STATUS(r, 200);
    px_expect_xcache(r, "MISS");
    assert_false(px_contains_ci(r->body, r->body_len, "If-None-Match"));
    sh_resp_free(r);
    sh_sleep_ms(1200);
    r = px_get(s, "GET", "/__echo/rv-plain", CC1, ETAG_V1, (const char *)NULL);
    SH_EXPECT_STATUS(r, 200);
    if (!px_contains_ci(r->body, r->body_len, "\r\nIf-None-Match: \"v1\"\r\n"))
        fail_msg("the request after expiry carried no If-None-Match: \"v1\"; the origin saw:\n%s",
                 r->body);
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(s), 0);
}

/* ---- 6. a client's conditional request ----------------------------------------------------- */

static void test_client_conditionals_answered_from_cache(void **state)
{
    (void)state;
    sh_server *s = px_start_upstream(origin, NULL);
    assert_non_null(s);
    const char *lm = "X-Origin-Header: Last-Modified: Wed, 01 Jan 2020 00:00:00 GMT";
    const char *et = "X-Origin-Header: ETag: \"e1\"";
    unsigned long before = px_origin_requests(origin);
    PX_GET_EXPECT(s, "/cond/a", "conditional", "MISS", CC60, lm, et, "X-Origin-Body: conditional");
    static const struct {
        const char *hdr;
        long status;
    } cases[] = {
        {"If-None-Match: \"e1\"", 304},
        {"If-None-Match: W/\"e1\"", 304}, /* weak comparison */
        {"If-None-Match: \"other\"", 200},
        {"If-Modified-Since: Wed, 01 Jan 2020 00:00:00 GMT", 304},
        {"If-Modified-Since: Thu, 01 Jan 2015 00:00:00 GMT", 200},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sh_resp *r = px_get(s, "GET", "/cond/a", cases[i].hdr, (const char *)NULL);
        SH_EXPECT_STATUS(r, cases[i].status);
        px_expect_xcache(r, "HIT-L1");
        if (cases[i].status == 304) {
            assert_int_equal(r->body_len, 0);
            SH_EXPECT_HEADER(r, "ETag", "\"e1\"");
        } else {
            px_expect_body(r, "conditional");
        }
        sh_resp_free(r);
    }
    assert_int_equal(asked_since(before), 1);
    assert_int_equal(sh_stop_check(s), 0);
}

/* ---- 7. Vary ------------------------------------------------------------------------------- */

static void test_vary_keeps_one_entry_per_variant(void **state)
{
    (void)state;
    sh_server *s = px_start_upstream(origin, NULL);
    assert_non_null(s);
    const char *vary = "X-Origin-Header: Vary: Accept-Language";
    unsigned long before = px_origin_requests(origin);
    PX_GET_EXPECT(s, "/vary", "english", "MISS", CC60, vary, "Accept-Language: en",
                  "X-Origin-Body: english");
    PX_GET_EXPECT(s, "/vary", "english", "HIT-L1", CC60, vary, "Accept-Language: en",
                  "X-Origin-Body: wrong");
    PX_GET_EXPECT(s, "/vary", "francais", "MISS", CC60, vary, "Accept-Language: fr",
                  "X-Origin-Body: francais");
    PX_GET_EXPECT(s, "/vary", "francais", "HIT-L1", CC60, vary, "Accept-Language: fr",
                  "X-Origin-Body: wrong");
    PX_GET_EXPECT(s, "/vary", "english", "HIT-L1", "Accept-Language: EN", "X-Origin-Body: wrong");
    assert_int_equal(asked_since(before), 2);
    PX_GET_EXPECT(s, "/vary", "deutsch", "MISS", CC60, vary, "Accept-Language: de",
                  "X-Origin-Body: deutsch");
    assert_int_equal(asked_since(before), 3);
    /* no Accept-Language at all is a variant of its own */
    PX_GET_EXPECT(s, "/vary", "none", "MISS", CC60, vary, "X-Origin-Body: none");
    PX_GET_EXPECT(s, "/vary", "none", "HIT-L1", "X-Origin-Body: wrong");
    PX_GET_EXPECT(s, "/vary", "francais", "HIT-L1", "Accept-Language: fr");
    assert_int_equal(asked_since(before), 4);
    assert_int_equal(sh_stop_check(s), 0);
}

/* ---- 8. stale-while-revalidate ------------------------------------------------------------- */

static int origin_reached(void *arg)
{
    return px_origin_requests(origin) >= *(unsigned long *)arg;
}

static void test_stale_while_revalidate(void **state)
{
    (void)state;
    sh_server *s = px_start_upstream(origin, NULL);
    assert_non_null(s);
    const char *swr = "X-Origin-Header: Cache-Control: max-age=1, stale-while-revalidate=30";
    unsigned long before = px_origin_requests(origin);
    px_align_second();
    PX_GET_EXPECT(s, "/swr", "old", "MISS", swr, "X-Origin-Body: old");
    sh_sleep_ms(1200);
    /* stale: answered without waiting for the refresh, which the origin takes 3 s to answer
     * (and which comes back with max-age=60, so the poll below sees it fresh): an answer that
     * waited for it would come after 3 s, not within the 2 s the client gives it */
    const char *const h[] = {CC60, "X-Origin-Body: new", "X-Origin-Delay-Ms: 3000", NULL};
    sh_resp *r = px_send(s, "GET", "/swr", NULL, 2000, h);
    if (r->status == 0)
        fail_msg("the stale answer did not come within 2 s: it waited for the refresh (%s)",
                 r->err);
    px_expect_body(r, "old");
    px_expect_xcache(r, "STALE");
    assert_true(px_header_has(r, "Cache-Status", "strata; hit; ttl="));
    sh_resp_free(r);
    /* the refresh reaches the origin once, in the background */
    unsigned long want = before + 2;
    long t0 = sh_now_ms();
    while (!origin_reached(&want) && sh_now_ms() - t0 < 5000)
        sh_sleep_ms(10);
    assert_int_equal(asked_since(before), 2);
    /* once it is stored, the new body is a hit */
    t0 = sh_now_ms();
    for (;;) {
        r = px_get(s, "GET", "/swr", "X-Origin-Body: newer", (const char *)NULL);
        SH_EXPECT_STATUS(r, 200);
        int done = strcmp(r->body, "new") == 0;
        if (done) {
            px_expect_xcache(r, "HIT-L1");
            sh_resp_free(r);
            break;
        }
        px_expect_xcache(r, "STALE"); /* the refresh is not stored yet */
        sh_resp_free(r);
        if (sh_now_ms() - t0 > 10000)
            fail_msg("the background refresh never stored the new body");
        sh_sleep_ms(50);
    }
    assert_int_equal(asked_since(before), 2);
    assert_int_equal(sh_stop_check(s), 0);
}

/* ---- 12. tenants --------------------------------------------------------------------------- */

static void test_tenants_do_not_share_entries(void **state)
{
    (void)state;
    sh_server *s = px_start_upstream(origin, NULL);
    assert_non_null(s);
    unsigned long before = px_origin_requests(origin);
    PX_GET_EXPECT(s, "/tenant", "for a", "MISS", CC60, "X-Tenant: a", "X-Origin-Body: for a");
    PX_GET_EXPECT(s, "/tenant", "for b", "MISS", CC60, "X-Tenant: b", "X-Origin-Body: for b");
    PX_GET_EXPECT(s, "/tenant", "for a", "HIT-L1", "X-Tenant: a", "X-Origin-Body: wrong");
    PX_GET_EXPECT(s, "/tenant", "for b", "HIT-L1", "X-Tenant: b", "X-Origin-Body: wrong");
    assert_int_equal(asked_since(before), 2);
    PX_GET_EXPECT(s, "/tenant", "default", "MISS", CC60, "X-Origin-Body: default");
    assert_int_equal(asked_since(before), 3);
    assert_int_equal(sh_stop_check(s), 0);
}

/* ---- 13. large and chunked ----------------------------------------------------------------- */

static void test_large_streamed_and_chunked_stored(void **state)
{
    (void)state;
    sh_server *s = px_start_upstream(origin, NULL);
    assert_non_null(s);
    unsigned long before = px_origin_requests(origin);
    const char *const big[] = {"X-Origin-Body-Size: 3000000", "X-Origin-Chunked: 1"};
    /* with a length, and chunked (no length: it grows past what is stored while it comes) */
    for (int chunked = 0; chunked < 2; chunked++) {
        const char *path = chunked ? "/large/chunked" : "/large/length";
        for (int k = 0; k < 2; k++) {
            sh_resp *r =
                px_get(s, "GET", path, CC60, big[0],
                       chunked ? big[1] : "X-Origin-Chunk-Size: 16384", (const char *)NULL);
            SH_EXPECT_STATUS(r, 200);
            assert_int_equal(r->curl_code, 0);
            assert_int_equal(r->body_len, 3000000);
            assert_true(px_is_pattern(r->body, r->body_len));
            px_expect_xcache(r, "MISS");
            sh_resp_free(r);
        }
        assert_int_equal(asked_since(before), 2 * (unsigned long)(chunked + 1));
    }
    /* a chunked answer of a size that is stored: stored, and served whole */
    unsigned long mid = px_origin_requests(origin);
    for (int k = 0; k < 2; k++) {
        sh_resp *r = px_get(s, "GET", "/large/chunked-small", CC60, "X-Origin-Body-Size: 100000",
                            "X-Origin-Chunked: 1", "X-Origin-Chunk-Size: 7000", (const char *)NULL);
        SH_EXPECT_STATUS(r, 200);
        assert_int_equal(r->body_len, 100000);
        assert_true(px_is_pattern(r->body, r->body_len));
        px_expect_xcache(r, k == 0 ? "MISS" : "HIT-L1");
        if (k == 1)
            SH_EXPECT_HEADER(r, "Content-Length", "100000");
        sh_resp_free(r);
    }
    assert_int_equal(px_origin_requests(origin) - mid, 1);
    assert_int_equal(sh_stop_check(s), 0);
}

/* ---- what the proxy gets wrong today ---------------------------------------------------- */

/* A HEAD that misses is fetched as a GET, so that the GET it stores answers the next GET and
 * HEAD. */
static void test_head_miss_fetches_and_stores_the_get(void **state)
{
    (void)state;
    sh_server *s = px_start_upstream(origin, NULL);
    assert_non_null(s);
    unsigned long before = px_origin_requests(origin);
    sh_resp *r =
        px_get(s, "HEAD", "/head/miss", CC60, "X-Origin-Body: body of the GET", (const char *)NULL);
    SH_EXPECT_STATUS(r, 200);
    px_expect_xcache(r, "MISS");
    assert_int_equal(r->body_len, 0);
    SH_EXPECT_HEADER(r, "Content-Length", "15");
    assert_true(px_header_has(r, "Cache-Status", "stored"));
    sh_resp_free(r);
    assert_int_equal(asked_since(before), 1);
    PX_GET_EXPECT(s, "/head/miss", "body of the GET", "HIT-L1", "X-Origin-Body: not this");
    r = px_get(s, "HEAD", "/head/miss", (const char *)NULL);
    SH_EXPECT_STATUS(r, 200);
    px_expect_xcache(r, "HIT-L1");
    sh_resp_free(r);
    assert_int_equal(asked_since(before), 1);
    assert_int_equal(sh_stop_check(s), 0);
}

/* A 304 may carry Content-Length (the length of the selected representation, RFC 9110 §8.6) but
 * never a body (RFC 9112 §6.3): the revalidation must not wait for one. */
static void test_304_with_content_length_has_no_body(void **state)
{
    (void)state;
    sh_server *s = px_start_upstream(origin, NULL);
    assert_non_null(s);
    px_align_second();
    PX_GET_EXPECT(s, "/rv/length", "stored body", "MISS", SIE60, ETAG_V1,
                  "X-Origin-Body: stored body");
    sh_sleep_ms(1200);
    /* the origin's 304 says Content-Length: 11 (the X-Origin-Body's) and sends no body */
    sh_resp_free(revalidated(s, "/rv/length", "X-Origin-Body: ignored 304"));
    assert_int_equal(sh_stop_check(s), 0);
}

/* Each revalidation makes the stored head again: strata's Via is in it once, not once more per
 * 304. */
static void test_revalidation_adds_via_once(void **state)
{
    (void)state;
    sh_server *s = px_start_upstream(origin, NULL);
    assert_non_null(s);
    px_align_second();
    PX_GET_EXPECT(s, "/rv/via", "stored body", "MISS", SIE60, ETAG_V1,
                  "X-Origin-Body: stored body");
    for (int i = 0; i < 2; i++) {
        sh_sleep_ms(1200);
        sh_resp *r = revalidated(s, "/rv/via", "X-Origin-Header: X-Nothing: 1");
        SH_EXPECT_HEADER(r, "Via", "1.1 strata");
        sh_resp_free(r);
    }
    assert_int_equal(sh_stop_check(s), 0);
}

/* An unsafe request's answer comes after what it invalidates is gone: the client's next GET
 * misses (read your writes), every time. */
static void test_write_then_read_misses(void **state)
{
    (void)state;
    sh_server *s = px_start_upstream(origin, NULL);
    assert_non_null(s);
    int stale = 0;
    for (int i = 0; i < 30; i++) {
        char path[32];
        snprintf(path, sizeof path, "/rw/%d", i);
        PX_GET_EXPECT(s, path, "before", "MISS", CC60, "X-Origin-Body: before");
        sh_resp *r =
            px_get(s, i % 2 ? "PUT" : "DELETE", path, "X-Origin-Status: 204", (const char *)NULL);
        SH_EXPECT_STATUS(r, 204);
        sh_resp_free(r);
        r = px_get(s, "GET", path, CC60, "X-Origin-Body: after", (const char *)NULL);
        SH_EXPECT_STATUS(r, 200);
        stale += strcmp(r->body, "after") != 0;
        sh_resp_free(r);
    }
    if (stale > 0)
        fail_msg("%d of 30 GETs right after a successful PUT/DELETE got the entry it invalidates",
                 stale);
    /* a write in tenant a invalidates a's entry only */
    PX_GET_EXPECT(s, "/rw/tenant", "for a", "MISS", CC60, "X-Tenant: a", "X-Origin-Body: for a");
    PX_GET_EXPECT(s, "/rw/tenant", "for b", "MISS", CC60, "X-Tenant: b", "X-Origin-Body: for b");
    sh_resp *r = px_get(s, "PUT", "/rw/tenant", "X-Tenant: a", (const char *)NULL);
    SH_EXPECT_STATUS(r, 200);
    sh_resp_free(r);
    PX_GET_EXPECT(s, "/rw/tenant", "for b", "HIT-L1", "X-Tenant: b", "X-Origin-Body: wrong");
    PX_GET_EXPECT(s, "/rw/tenant", "a2", "MISS", CC60, "X-Tenant: a", "X-Origin-Body: a2");
    assert_int_equal(sh_stop_check(s), 0);
}

/* A successful unsafe request drops its URL with every query, and Location's URL. */
static void test_unsafe_method_invalidates_its_url(void **state)
{
    (void)state;
    sh_server *s = px_start_upstream(origin, NULL);
    assert_non_null(s);
    unsigned long before = px_origin_requests(origin);
    const char *const paths[] = {"/tasks/7", "/tasks/7?a=1", "/tasks/7?b=2", "/tasks/8",
                                 "/tasks/9"};
    for (size_t i = 0; i < 5; i++) {
        PX_GET_EXPECT(s, paths[i], "v1", "MISS", CC60, "X-Origin-Body: v1");
        PX_GET_EXPECT(s, paths[i], "v1", "HIT-L1", CC60, "X-Origin-Body: v2");
    }
    assert_int_equal(asked_since(before), 5);
    /* a failed PUT changes nothing */
    sh_resp *r = px_get(s, "PUT", "/tasks/7", "X-Origin-Status: 500", (const char *)NULL);
    SH_EXPECT_STATUS(r, 500);
    sh_resp_free(r);
    PX_GET_EXPECT(s, "/tasks/7", "v1", "HIT-L1", CC60, "X-Origin-Body: v2");
    /* a PUT that succeeds drops the URL with every query; the others stay */
    r = px_get(s, "PUT", "/tasks/7", "X-Origin-Status: 204", (const char *)NULL);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    assert_int_equal(asked_since(before), 7);
    PX_GET_EXPECT(s, "/tasks/7", "v2", "MISS", CC60, "X-Origin-Body: v2");
    PX_GET_EXPECT(s, "/tasks/7?a=1", "v2", "MISS", CC60, "X-Origin-Body: v2");
    PX_GET_EXPECT(s, "/tasks/7?b=2", "v2", "MISS", CC60, "X-Origin-Body: v2");
    PX_GET_EXPECT(s, "/tasks/8", "v1", "HIT-L1", CC60, "X-Origin-Body: v2");
    assert_int_equal(asked_since(before), 10);
    /* a POST whose answer names another URL of the origin in Location drops that one too */
    r = px_get(s, "POST", "/tasks/8", "X-Origin-Status: 201", "X-Origin-Header: Location: /tasks/9",
               (const char *)NULL);
    SH_EXPECT_STATUS(r, 201);
    sh_resp_free(r);
    PX_GET_EXPECT(s, "/tasks/8", "v2", "MISS", CC60, "X-Origin-Body: v2");
    PX_GET_EXPECT(s, "/tasks/9", "v2", "MISS", CC60, "X-Origin-Body: v2");
    assert_int_equal(asked_since(before), 13);
    assert_int_equal(sh_stop_check(s), 0);
}

/* An invalidation rule drops its tags (another route's entries), and the origin's tags
 * (Surrogate-Key, Cache-Tag, xkey) are what a rule naming them drops. */
static void test_invalidation_rules_and_origin_tags(void **state)
{
    (void)state;
    char *yaml = it_xasprintf(
        "origins: [{name: api, url: 'http://127.0.0.1:%d'}]\n"
        "routes:\n"
        "  - {name: tasks, match: {methods: ['*'], path: '/tasks/{id}'}, tags: ['task:{id}']}\n"
        "  - {name: lists, match: {path: '/lists/*'}, tags: ['tasks:list']}\n"
        "  - {name: rest, match: {methods: ['*'], path: '/*'}}\n"
        "invalidations:\n"
        "  - name: task-update\n"
        "    match: {methods: [PUT, PATCH, DELETE], path: '/tasks/{id}'}\n"
        "    tags: ['task:{id}', 'tasks:list']\n"
        "  - {name: groups, match: {methods: [POST], path: '/groups/{g}'}, tags: ['{g}']}\n",
        oh_port(origin));
    char *path = px_write_file(dir, "rules.yaml", yaml);
    sh_server *s = px_start_config(path, NULL);
    assert_non_null(s);
    unsigned long before = px_origin_requests(origin);
    PX_GET_EXPECT(s, "/lists/all", "list", "MISS", CC60, "X-Origin-Body: list");
    PX_GET_EXPECT(s, "/lists/open?page=2", "list", "MISS", CC60, "X-Origin-Body: list");
    PX_GET_EXPECT(s, "/other/sk", "sk", "MISS", CC60, "X-Origin-Body: sk",
                  "X-Origin-Header: Surrogate-Key: grp-one grp-two");
    PX_GET_EXPECT(s, "/other/ct", "ct", "MISS", CC60, "X-Origin-Body: ct",
                  "X-Origin-Header: Cache-Tag: grp-three,grp-four");
    PX_GET_EXPECT(s, "/other/xk", "xk", "MISS", CC60, "X-Origin-Body: xk",
                  "X-Origin-Header: xkey: grp-five");
    PX_GET_EXPECT(s, "/other/plain", "pl", "MISS", CC60, "X-Origin-Body: pl");
    assert_int_equal(asked_since(before), 6);

    /* PUT /tasks/7: the rule drops the lists (another path) and nothing else */
    sh_resp *r = px_get(s, "PUT", "/tasks/7", (const char *)NULL);
    SH_EXPECT_STATUS(r, 200);
    sh_resp_free(r);
    PX_GET_EXPECT(s, "/lists/all", "list2", "MISS", CC60, "X-Origin-Body: list2");
    PX_GET_EXPECT(s, "/lists/open?page=2", "list2", "MISS", CC60, "X-Origin-Body: list2");
    PX_GET_EXPECT(s, "/other/sk", "sk", "HIT-L1", "X-Origin-Body: wrong");
    assert_int_equal(asked_since(before), 9);

    /* the origin's tags: each name of Surrogate-Key, Cache-Tag (comma-separated) and xkey */
    const char *const groups[] = {"/groups/grp-two", "/groups/grp-four", "/groups/grp-five"};
    const char *const tagged[] = {"/other/sk", "/other/ct", "/other/xk"};
    for (size_t i = 0; i < 3; i++) {
        PX_GET_EXPECT(s, tagged[i],
                      i == 0   ? "sk"
                      : i == 1 ? "ct"
                               : "xk",
                      "HIT-L1", "X-Origin-Body: wrong");
        r = px_get(s, "POST", groups[i], (const char *)NULL);
        SH_EXPECT_STATUS(r, 200);
        sh_resp_free(r);
        PX_GET_EXPECT(s, tagged[i], "again", "MISS", CC60, "X-Origin-Body: again");
    }
    PX_GET_EXPECT(s, "/other/plain", "pl", "HIT-L1", "X-Origin-Body: wrong");
    assert_int_equal(asked_since(before), 9 + 6);
    assert_int_equal(sh_stop_check(s), 0);
    free(path);
    free(yaml);
}

/* An https origin: verified against the CA the route's origin names (made at test time), with
 * the URL's host as SNI; a CA that signed nothing is a 502 that says why, never a request. */
static void test_https_origin_verified(void **state)
{
    (void)state;
    oh_tls tls;
    assert_int_equal(oh_make_tls(&tls), 0);
    oh_origin *o = oh_start(&tls);
    assert_non_null(o);
    char *yaml =
        it_xasprintf("origins:\n"
                     "  - {name: good, url: 'https://localhost:%d', tls: {ca_file: '%s'}}\n"
                     "  - {name: bad, url: 'https://localhost:%d', tls: {ca_file: '%s'}}\n"
                     "routes:\n"
                     "  - {name: bad, match: {path: '/bad/*'}, origin: bad}\n"
                     "  - {name: good, match: {path: '/*'}, origin: good}\n",
                     oh_port(o), tls.ca, oh_port(o), tls.other_ca);
    char *path = px_write_file(dir, "tls.yaml", yaml);
    sh_server *s = px_start_config(path, NULL);
    assert_non_null(s);
    sh_resp *r = px_get(s, "GET", "/secure", CC60, "X-Origin-Body: over tls", (const char *)NULL);
    SH_EXPECT_STATUS(r, 200);
    px_expect_xcache(r, "MISS");
    assert_string_equal(r->body, "over tls");
    assert_true(px_header_has(r, "X-Origin-SNI", "localhost"));
    sh_resp_free(r);
    r = px_get(s, "GET", "/secure", "X-Origin-Body: not this", (const char *)NULL);
    px_expect_xcache(r, "HIT-L1");
    assert_string_equal(r->body, "over tls");
    sh_resp_free(r);
    r = px_get(s, "GET", "/bad/x", CC60, (const char *)NULL);
    SH_EXPECT_ERROR(r, 502, "origin_unavailable");
    assert_true(px_contains_ci(r->body, r->body_len, "certificate"));
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(s), 0);
    oh_stop(o);
    oh_free_tls(&tls);
    free(path);
    free(yaml);
}

/* A free port on 127.0.0.1 (bound, then closed: the admin listener takes it next). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static long status_of(sh_resp *r)
{
    long st = r->status;
    sh_resp_free(r);
    return st;
}

/* Tokens on proxied routes: strata's in X-Strata-Token (Authorization is the origin's); a route
 * with auth needs the role; X-Tenant needs a token; PURGE the write role; max_object; and
 * STRATA_ADMIN_LISTEN: strata's own API on its own address, every path proxied on --listen. */
static void test_tokens_max_object_and_admin_listener(void **state)
{
    (void)state;
    char *yaml = it_xasprintf("origins: [{name: api, url: 'http://127.0.0.1:%d'}]\n"
                              "routes:\n"
                              "  - {name: private, match: {path: '/private/*'}, auth: read}\n"
                              "  - {name: small, match: {path: '/small/*'}, max_object: 1000}\n"
                              "  - {name: rest, match: {methods: ['*'], path: '/*'}}\n",
                              oh_port(origin));
    char *path = px_write_file(dir, "auth.yaml", yaml);
    int admin = free_port();
    char *admin_env = it_xasprintf("STRATA_ADMIN_LISTEN=127.0.0.1:%d", admin);
    const char *env[] = {"STRATA_WORKERS=2", "STRATA_TOKENS=readtok123:read,writetok123:write",
                         admin_env, NULL};
    sh_server *s = px_start_config(path, env);
    assert_non_null(s);

    /* a public route: anyone; X-Tenant only with a token */
    PX_GET_EXPECT(s, "/pub/a", "a", "MISS", CC60, "X-Origin-Body: a");
    PX_GET_EXPECT(s, "/pub/a", "a", "HIT-L1", "X-Origin-Body: wrong");
    sh_resp *r = px_get(s, "GET", "/pub/a", "X-Tenant: other", (const char *)NULL);
    SH_EXPECT_ERROR(r, 403, "forbidden");
    sh_resp_free(r);
    PX_GET_EXPECT(s, "/pub/a", "other", "MISS", CC60, "X-Origin-Body: other", "X-Tenant: other",
                  "X-Strata-Token: readtok123");

    /* a route with auth: read: X-Strata-Token, not Authorization (which the origin gets) */
    assert_int_equal(status_of(px_get(s, "GET", "/private/p", (const char *)NULL)), 401);
    assert_int_equal(
        status_of(px_get(s, "GET", "/private/p", "Authorization: Bearer readtok123", NULL)), 401);
    PX_GET_EXPECT(s, "/private/p", "p", "MISS", CC60, "X-Origin-Body: p",
                  "X-Strata-Token: readtok123");

    /* PURGE: the write role */
    assert_int_equal(status_of(px_get(s, "PURGE", "/pub/a", (const char *)NULL)), 401);
    assert_int_equal(status_of(px_get(s, "PURGE", "/pub/a", "X-Strata-Token: readtok123", NULL)),
                     403);
    assert_int_equal(status_of(px_get(s, "PURGE", "/pub/a", "X-Strata-Token: writetok123", NULL)),
                     200);
    PX_GET_EXPECT(s, "/pub/a", "a2", "MISS", CC60, "X-Origin-Body: a2");

    /* max_object: a body past it streams and is not stored; one within it is */
    const char *big = "X-Origin-Body-Size: 2000", *fits = "X-Origin-Body-Size: 900";
    unsigned long before = px_origin_requests(origin);
    for (int i = 0; i < 2; i++) {
        r = px_get(s, "GET", "/small/big", CC60, big, (const char *)NULL);
        SH_EXPECT_STATUS(r, 200);
        assert_int_equal(r->body_len, 2000);
        px_expect_xcache(r, "MISS");
        sh_resp_free(r);
    }
    r = px_get(s, "GET", "/small/fits", CC60, fits, (const char *)NULL);
    px_expect_xcache(r, "MISS");
    sh_resp_free(r);
    r = px_get(s, "GET", "/small/fits", CC60, fits, (const char *)NULL);
    px_expect_xcache(r, "HIT-L1");
    assert_int_equal(r->body_len, 900);
    sh_resp_free(r);
    assert_int_equal(asked_since(before), 3);

    /* the admin listener: strata's own API there; on --listen, /cache/health is the origin's */
    r = sh_request_port(admin, "GET", "/cache/health", NULL, NULL, 0, 0);
    SH_EXPECT_STATUS(r, 200);
    assert_non_null(strstr(r->body, "\"status\""));
    assert_null(sh_resp_header(r, "X-Cache"));
    sh_resp_free(r);
    assert_int_equal(status_of(sh_request_port(admin, "GET", "/pub/a", NULL, NULL, 0, 0)), 404);
    PX_GET_EXPECT(s, "/cache/health", "from the origin", "MISS", CC60,
                  "X-Origin-Body: from the origin");
    const char *purge[] = {"Authorization: Bearer writetok123", "Content-Type: application/json",
                           NULL};
    const char body[] = "{\"urls\":[\"http://127.0.0.1/cache/health\"]}";
    r = sh_request_port(admin, "POST", "/cache/purge", purge, body, sizeof body - 1, 0);
    SH_EXPECT_STATUS(r, 200);
    sh_resp_free(r);
    assert_int_equal(sh_stop_check(s), 0);
    free(admin_env);
    free(path);
    free(yaml);
}

static int setup(void **state)
{
    (void)state;
    dir = it_make_temp_dir("strata-px");
    origin = oh_start(NULL);
    return dir != NULL && origin != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    oh_stop(origin);
    it_remove_tree(dir);
    free(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_endpoints_win_and_forwarded_headers),
        cmocka_unit_test(test_miss_then_hit_age_and_head),
        cmocka_unit_test(test_not_cacheable_reaches_origin_every_time),
        cmocka_unit_test(test_max_age_s_maxage_expires),
        cmocka_unit_test(test_etag_revalidated_with_304),
        cmocka_unit_test(test_etag_revalidated_after_plain_expiry),
        cmocka_unit_test(test_client_conditionals_answered_from_cache),
        cmocka_unit_test(test_vary_keeps_one_entry_per_variant),
        cmocka_unit_test(test_stale_while_revalidate),
        cmocka_unit_test(test_tenants_do_not_share_entries),
        cmocka_unit_test(test_large_streamed_and_chunked_stored),
        /* the proxy gets these wrong today */
        cmocka_unit_test(test_head_miss_fetches_and_stores_the_get),
        cmocka_unit_test(test_304_with_content_length_has_no_body),
        cmocka_unit_test(test_revalidation_adds_via_once),
        cmocka_unit_test(test_write_then_read_misses),
        cmocka_unit_test(test_unsafe_method_invalidates_its_url),
        cmocka_unit_test(test_invalidation_rules_and_origin_tags),
        cmocka_unit_test(test_https_origin_verified),
        cmocka_unit_test(test_tokens_max_object_and_admin_listener),
    };
    SH_TEST_FILTER();
    return cmocka_run_group_tests(tests, setup, teardown);
}
