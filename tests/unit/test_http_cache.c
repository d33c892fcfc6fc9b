/* test_http_cache.c: the shared-cache rules of src/server/proxy/http_cache*.c (RFC 9111, RFC 5861,
 * RFC 9211, RFC 9110 §13), table by table; each row names the section it checks. No network, no
 * clock: every time is a number in the tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/http_cache.h"

#define T0       784111777LL /* Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example date */
#define D0       "Sun, 06 Nov 1994 08:49:37 GMT"
#define D_P100   "Sun, 06 Nov 1994 08:51:17 GMT" /* T0 + 100 */
#define D_M100   "Sun, 06 Nov 1994 08:47:57 GMT" /* T0 - 100 */
#define D_P50    "Sun, 06 Nov 1994 08:50:27 GMT" /* T0 + 50 */
#define D_M50    "Sun, 06 Nov 1994 08:48:47 GMT" /* T0 - 50 */
#define D_M10    "Sun, 06 Nov 1994 08:49:27 GMT" /* T0 - 10 */
#define D_P10    "Sun, 06 Nov 1994 08:49:47 GMT" /* T0 + 10 */
#define D_M5DAYS "Tue, 01 Nov 1994 08:49:37 GMT"
#define D_M10DAY "Thu, 27 Oct 1994 08:49:37 GMT"
#define D_M30DAY "Fri, 07 Oct 1994 08:49:37 GMT"

/* Headers from "Name: value\nName: value": the test's own storage. */
typedef struct hs {
    upstream_header h[80];
    char buf[8192];
    size_t n;
} hs;

static hs *hs_set(hs *s, const char *spec)
{
    s->n = 0;
    if (!spec)
        return s;
    size_t len = strlen(spec);
    assert_true(len < sizeof s->buf);
    memcpy(s->buf, spec, len + 1);
    char *p = s->buf;
    while (*p) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        char *colon = strchr(p, ':');
        assert_non_null(colon);
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ')
            v++;
        assert_true(s->n < 80);
        s->h[s->n++] = (upstream_header){p, v};
        if (!nl)
            break;
        p = nl + 1;
    }
    return s;
}

static void facts_of(int status, const char *spec, hc_facts *f)
{
    hs s;
    hs_set(&s, spec);
    assert_int_equal(hc_facts_compute(status, s.h, s.n, T0, T0, NULL, f), 0);
}

static void request_of(const char *method, const char *spec, hc_request *rq)
{
    hs s;
    hs_set(&s, spec);
    assert_int_equal(hc_request_parse(method, s.h, s.n, rq), 0);
}

/* ---- Cache-Control ------------------------------------------------------------------------ */

static const struct {
    const char *in;
    uint32_t flags; /* exactly these */
    int64_t max_age, s_maxage, min_fresh, max_stale, swr, sie;
    const char *rfc;
} CC[] = {
    {"max-age=60", HC_CC_MAX_AGE, 60, 0, 0, 0, 0, 0, "9111 §5.2.2.1"},
    {"MAX-AGE=60", HC_CC_MAX_AGE, 60, 0, 0, 0, 0, 0, "§5.2: names case-insensitive"},
    {"max-age=\"60\"", HC_CC_MAX_AGE, 60, 0, 0, 0, 0, 0, "§5.2: quoted-string argument"},
    {"  max-age = 60 ,", HC_CC_MAX_AGE, 60, 0, 0, 0, 0, 0, "tolerant whitespace, empty element"},
    {"max-age=60, max-age=60", HC_CC_MAX_AGE, 60, 0, 0, 0, 0, 0, "§4.2.1: same duplicate"},
    {"max-age=60, max-age=30", HC_CC_MAX_AGE | HC_CC_INVALID_FRESHNESS, 60, 0, 0, 0, 0, 0,
     "§4.2.1: conflicting duplicates -> stale"},
    {"max-age=abc", HC_CC_MAX_AGE | HC_CC_INVALID_FRESHNESS, 0, 0, 0, 0, 0, 0,
     "§4.2.1: non-integer max-age -> stale"},
    {"max-age", HC_CC_MAX_AGE | HC_CC_INVALID_FRESHNESS, 0, 0, 0, 0, 0, 0,
     "§5.2.2.1: argument required"},
    {"max-age=5 6", HC_CC_MAX_AGE | HC_CC_INVALID_FRESHNESS, 0, 0, 0, 0, 0, 0,
     "garbage after the number"},
    {"max-age=-5", HC_CC_MAX_AGE | HC_CC_INVALID_FRESHNESS, 0, 0, 0, 0, 0, 0, "§1.2.2: no sign"},
    {"max-age=99999999999999999999", HC_CC_MAX_AGE, HC_MAX_DELTA, 0, 0, 0, 0, 0,
     "§1.2.2: saturates at 2^31"},
    {"s-maxage=10, max-age=60", HC_CC_S_MAXAGE | HC_CC_MAX_AGE, 60, 10, 0, 0, 0, 0, "§5.2.2.10"},
    {"no-cache", HC_CC_NO_CACHE, 0, 0, 0, 0, 0, 0, "§5.2.2.4 unqualified"},
    {"no-cache=\"Set-Cookie, X-Foo\", max-age=5", HC_CC_NO_CACHE_FIELDS | HC_CC_MAX_AGE, 5, 0, 0, 0,
     0, 0, "§5.2.2.4 qualified: the quoted comma does not split"},
    {"no-cache=Set-Cookie", HC_CC_NO_CACHE_FIELDS, 0, 0, 0, 0, 0, 0, "§5.2: token form accepted"},
    {"private", HC_CC_PRIVATE, 0, 0, 0, 0, 0, 0, "§5.2.2.7 unqualified"},
    {"private=\"Authorization\"", HC_CC_PRIVATE_FIELDS, 0, 0, 0, 0, 0, 0, "§5.2.2.7 qualified"},
    {"Public, Must-Revalidate, proxy-revalidate, no-store, no-transform, immutable, "
     "only-if-cached, must-understand",
     HC_CC_PUBLIC | HC_CC_MUST_REVALIDATE | HC_CC_PROXY_REVALIDATE | HC_CC_NO_STORE |
         HC_CC_NO_TRANSFORM | HC_CC_IMMUTABLE | HC_CC_ONLY_IF_CACHED | HC_CC_MUST_UNDERSTAND,
     0, 0, 0, 0, 0, 0, "§5.2.2.x flags, RFC 8246"},
    {"max-stale", HC_CC_MAX_STALE_ANY, 0, 0, 0, 0, 0, 0, "§5.2.1.2 without a value: any"},
    {"max-stale=30", HC_CC_MAX_STALE, 0, 0, 0, 30, 0, 0, "§5.2.1.2"},
    {"max-stale=soon", 0, 0, 0, 0, 0, 0, 0, "§5.2.1.2: a bad value is not 'any'"},
    {"min-fresh=20", HC_CC_MIN_FRESH, 0, 0, 20, 0, 0, 0, "§5.2.1.3"},
    {"min-fresh=x", 0, 0, 0, 0, 0, 0, 0, "§5.2.1.3 bad value ignored"},
    {"stale-while-revalidate=30, stale-if-error=\"600\"", HC_CC_SWR | HC_CC_SIE, 0, 0, 0, 0, 30,
     600, "RFC 5861 §3, §4"},
    {"stale-if-error=600, stale-if-error=5", HC_CC_SIE, 0, 0, 0, 0, 0, 600,
     "duplicate: first kept"},
    {"foo=bar, x-ext=\"a,b\", public", HC_CC_PUBLIC, 0, 0, 0, 0, 0, 0,
     "§5.2.3: extensions ignored"},
    {",,, ,", 0, 0, 0, 0, 0, 0, 0, "only empty elements"},
    {"=5, \"q\", public", HC_CC_PUBLIC, 0, 0, 0, 0, 0, 0, "no name: skipped"},
    {"no-cache=\"unterminated, max-age=5", HC_CC_NO_CACHE_FIELDS, 0, 0, 0, 0, 0, 0,
     "an unterminated quote runs to the end"},
};

static void test_cache_control(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof CC / sizeof CC[0]; i++) {
        hc_cc cc;
        hc_cc_init(&cc);
        hc_cc_parse(&cc, CC[i].in, strlen(CC[i].in));
        if (cc.flags != CC[i].flags)
            fail_msg("%s (%s): flags %#x, expected %#x", CC[i].in, CC[i].rfc, cc.flags,
                     CC[i].flags);
        if (cc.flags & HC_CC_MAX_AGE && !(cc.flags & HC_CC_INVALID_FRESHNESS))
            assert_int_equal(cc.max_age, CC[i].max_age);
        if (cc.flags & HC_CC_S_MAXAGE)
            assert_int_equal(cc.s_maxage, CC[i].s_maxage);
        if (cc.flags & HC_CC_MIN_FRESH)
            assert_int_equal(cc.min_fresh, CC[i].min_fresh);
        if (cc.flags & HC_CC_MAX_STALE)
            assert_int_equal(cc.max_stale, CC[i].max_stale);
        if (cc.flags & HC_CC_SWR)
            assert_int_equal(cc.swr, CC[i].swr);
        if (cc.flags & HC_CC_SIE)
            assert_int_equal(cc.sie, CC[i].sie);
    }
    /* several lines are one list (RFC 9110 §5.3), and a span is not read past its length */
    hs s;
    hc_cc cc;
    hs_set(&s, "Cache-Control: public\nX-Other: max-age=1\ncache-control: max-age=5");
    assert_int_equal(hc_cc_from_headers(s.h, s.n, &cc), 1);
    assert_int_equal(cc.flags, HC_CC_PUBLIC | HC_CC_MAX_AGE);
    assert_int_equal(cc.max_age, 5);
    assert_int_equal(hc_cc_from_headers(s.h, 0, &cc), 0);
    hc_cc_init(&cc);
    hc_cc_parse(&cc, "max-age=12345", 9); /* "max-age=1" */
    assert_int_equal(cc.max_age, 1);
}

/* ---- dates -------------------------------------------------------------------------------- */

static const struct {
    const char *in;
    int ok;
    int64_t t;
    const char *rfc;
} DATES[] = {
    {D0, 1, T0, "9110 §5.6.7 IMF-fixdate"},
    {"  " D0 " ", 1, T0, "surrounding whitespace"},
    {"Sunday, 06-Nov-94 08:49:37 GMT", 1, T0, "§5.6.7 obsolete RFC 850"},
    {"Sun Nov  6 08:49:37 1994", 1, T0, "§5.6.7 obsolete asctime"},
    {"Sun Nov 06 08:49:37 1994", 1, T0, "asctime with a 2-digit day"},
    {"sun, 06 nov 1994 08:49:37 gmt", 1, T0, "case"},
    {"Thu, 01 Jan 1970 00:00:00 GMT", 1, 0, "the epoch"},
    {"Tue, 29 Feb 2000 12:00:00 GMT", 1, 951825600, "leap day of a century leap year"},
    {"0", 0, 0, "9111 §5.3: \"0\" is invalid (already expired)"},
    {"", 0, 0, "empty"},
    {"Sun, 06 Nov 1994 08:49:37 PST", 0, 0, "only GMT"},
    {"Sun, 06 Nov 1994 08:49:37", 0, 0, "no zone"},
    {"Sun, 31 Nov 1994 08:49:37 GMT", 0, 0, "no 31 November"},
    {"Wed, 29 Feb 1995 08:49:37 GMT", 0, 0, "no leap day in 1995"},
    {"Sun, 06 Nov 1994 24:00:00 GMT", 0, 0, "hour 24"},
    {"Sun, 06 Nov 1994 08:49:37 GMT x", 0, 0, "trailing bytes"},
    {"Funday, 06 Nov 1994 08:49:37 GMT", 0, 0, "not a day name"},
    {"Sun, 06 Foo 1994 08:49:37 GMT", 0, 0, "not a month"},
    {"Sun, 06 Nov 1994 8:49:37 GMT", 0, 0, "one-digit hour"},
};

static void test_dates(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof DATES / sizeof DATES[0]; i++) {
        int64_t t = -1;
        int rc = hc_date_parse(DATES[i].in, strlen(DATES[i].in), T0, &t);
        if ((rc == 0) != DATES[i].ok)
            fail_msg("'%s' (%s): rc %d", DATES[i].in, DATES[i].rfc, rc);
        if (DATES[i].ok)
            assert_int_equal(t, DATES[i].t);
    }
    /* RFC 9110 §5.6.7: a two-digit year more than 50 years ahead is in the past century */
    int64_t t, now2030 = 1893456000; /* 2030-01-01 */
    assert_int_equal(hc_date_parse("Monday, 01-Jan-79 00:00:00 GMT", 30, now2030, &t), 0);
    assert_int_equal(t, 3439756800LL); /* 2079 is 49 years ahead: kept... */
    assert_int_equal(hc_date_parse("Monday, 01-Jan-79 00:00:00 GMT", 30, T0, &t), 0);
    assert_int_equal(t, 283996800); /* ...and from 1994, 1979 */
    assert_int_equal(hc_date_parse("Friday, 01-Jan-99 00:00:00 GMT", 30, now2030, &t), 0);
    assert_int_equal(t, 915148800); /* 2099 is 69 years ahead: 1999 */
    /* IMF-fixdate out, and back */
    char buf[HC_DATE_LEN + 1];
    assert_int_equal(hc_date_format(T0, buf, sizeof buf), HC_DATE_LEN);
    assert_string_equal(buf, D0);
    assert_int_equal(hc_date_format(951825600, buf, sizeof buf), HC_DATE_LEN);
    assert_string_equal(buf, "Tue, 29 Feb 2000 12:00:00 GMT");
    assert_int_equal(hc_date_format(T0, buf, HC_DATE_LEN), HC_ENOSPACE);
}

/* ---- entity tags -------------------------------------------------------------------------- */

static void test_etags(void **state)
{
    (void)state;
    /* RFC 9110 §8.8.3.2's table */
    static const struct {
        const char *a, *b;
        int strong, weak;
    } cmp[] = {
        {"W/\"1\"", "W/\"1\"", 0, 1}, {"W/\"1\"", "W/\"2\"", 0, 0}, {"W/\"1\"", "\"1\"", 0, 1},
        {"\"1\"", "\"1\"", 1, 1},     {"\"\"", "\"\"", 1, 1},
    };
    for (size_t i = 0; i < sizeof cmp / sizeof cmp[0]; i++) {
        hc_etag a, b;
        assert_int_equal(hc_etag_parse(cmp[i].a, strlen(cmp[i].a), &a), 0);
        assert_int_equal(hc_etag_parse(cmp[i].b, strlen(cmp[i].b), &b), 0);
        assert_int_equal(hc_etag_strong_eq(&a, &b), cmp[i].strong);
        assert_int_equal(hc_etag_weak_eq(&a, &b), cmp[i].weak);
    }
    static const char *const bad[] = {"xyz",     "\"a",     "a\"", "w/\"a\"", "\"a\"b",
                                      "\"a b\"", "\"a\"\"", "W/",  ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hc_etag e;
        if (hc_etag_parse(bad[i], strlen(bad[i]), &e) != HC_EINVAL)
            fail_msg("'%s' parsed", bad[i]);
    }
    hc_etag e;
    assert_int_equal(hc_etag_parse(" W/\"v1\" ", 8, &e), 0);
    assert_int_equal(e.weak, 1);
    assert_int_equal(e.len, 2);
    assert_memory_equal(e.opaque, "v1", 2);
}

/* ---- freshness lifetime ------------------------------------------------------------------- */

static const struct {
    int status;
    const char *headers;
    int64_t lifetime;
    uint32_t has, lacks; /* hc_facts flags */
    const char *rfc;
} LIFE[] = {
    {200, "Date: " D0 "\nCache-Control: max-age=60", 60, HC_F_EXPLICIT | HC_F_DATE, HC_F_HEURISTIC,
     "9111 §4.2.1 max-age"},
    {200, "Date: " D0 "\nCache-Control: s-maxage=30, max-age=60", 30, HC_F_EXPLICIT, 0,
     "§4.2.1: s-maxage first in a shared cache"},
    {200, "Date: " D0 "\nExpires: " D_P100, 100, HC_F_EXPLICIT | HC_F_EXPIRES, 0,
     "§4.2.1: Expires - Date"},
    {200, "Date: " D0 "\nExpires: " D_M100, 0, HC_F_EXPIRES, HC_F_EXPIRES_BAD,
     "§4.2.1: Expires in the past"},
    {200, "Date: " D0 "\nExpires: 0", 0, HC_F_EXPIRES | HC_F_EXPIRES_BAD | HC_F_EXPLICIT,
     HC_F_HEURISTIC, "§5.3: an invalid Expires is in the past, and is explicit"},
    {200, "Date: " D0 "\nExpires: " D_P100 "\nExpires: " D_P50, 0, HC_F_EXPIRES_BAD, 0,
     "§4.2.1: two different Expires -> stale"},
    {200, "Date: " D0 "\nCache-Control: max-age=60\nExpires: " D_M100, 60, HC_F_EXPLICIT, 0,
     "§5.3: max-age wins over Expires"},
    {200, "Expires: " D_P50, 50, HC_F_EXPLICIT, HC_F_DATE,
     "9110 §6.6.1: no Date, the time received"},
    {200, "Date: garbage\nExpires: " D_P50, 50, HC_F_EXPLICIT, HC_F_DATE, "invalid Date as absent"},
    {200, "Date: " D0 "\nLast-Modified: " D_M5DAYS, 43200, HC_F_HEURISTIC | HC_F_LAST_MODIFIED,
     HC_F_EXPLICIT, "§4.2.2: 10% of 5 days"},
    {200, "Date: " D0 "\nLast-Modified: " D_M30DAY, 86400, HC_F_HEURISTIC, 0,
     "§4.2.2: capped at 24 h"},
    {404, "Date: " D0 "\nLast-Modified: " D_M10DAY, 86400, HC_F_HEURISTIC, 0,
     "9110 §15.1: 404 heuristically cacheable"},
    {302, "Date: " D0 "\nLast-Modified: " D_M10DAY, 0, 0, HC_F_HEURISTIC,
     "§4.2.2: 302 is not heuristically cacheable"},
    {302, "Date: " D0 "\nCache-Control: public\nLast-Modified: " D_M10DAY, 86400, HC_F_HEURISTIC, 0,
     "§4.2.2: public makes it explicitly cacheable"},
    {200, "Date: " D0 "\nExpires: " D_P10 "\nLast-Modified: " D_M30DAY, 10, HC_F_EXPLICIT,
     HC_F_HEURISTIC, "§4.2.2: no heuristic with explicit expiration"},
    {200, "Date: " D0, 0, HC_F_HEURISTIC, 0, "§4.2.2: no Last-Modified, no heuristic lifetime"},
    {200, "Date: " D0 "\nLast-Modified: " D_P10, 0, HC_F_HEURISTIC, 0,
     "Last-Modified after Date: nothing"},
    {200, "Date: " D0 "\nCache-Control: max-age=x\nLast-Modified: " D_M30DAY, 0, HC_F_EXPLICIT,
     HC_F_HEURISTIC, "§4.2.1: invalid max-age -> stale, and no heuristic"},
    {500, "Date: " D0 "\nLast-Modified: " D_M30DAY, 0, 0, HC_F_HEURISTIC, "500: not heuristic"},
};

static void test_lifetime(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof LIFE / sizeof LIFE[0]; i++) {
        hc_facts f;
        facts_of(LIFE[i].status, LIFE[i].headers, &f);
        if (f.lifetime != LIFE[i].lifetime || (f.flags & LIFE[i].has) != LIFE[i].has ||
            (f.flags & LIFE[i].lacks))
            fail_msg("row %zu (%s): lifetime %lld flags %#x", i, LIFE[i].rfc, (long long)f.lifetime,
                     f.flags);
    }
    /* the heuristic's fraction and cap are options */
    hs s;
    hc_facts f;
    hs_set(&s, "Date: " D0 "\nLast-Modified: " D_M5DAYS);
    hc_options o = {.heuristic_percent = 20, .heuristic_max = 1000};
    hc_facts_compute(200, s.h, s.n, T0, T0, &o, &f);
    assert_int_equal(f.lifetime, 1000);
    o = (hc_options){.heuristic_percent = 1, .heuristic_max = 1000000};
    hc_facts_compute(200, s.h, s.n, T0, T0, &o, &f);
    assert_int_equal(f.lifetime, 4320);
    o = (hc_options){.heuristic_max = -1}; /* off */
    hc_facts_compute(200, s.h, s.n, T0, T0, &o, &f);
    assert_int_equal(f.lifetime, 0);
    /* a NULL header is refused */
    upstream_header bad = {"Date", NULL};
    assert_int_equal(hc_facts_compute(200, &bad, 1, T0, T0, NULL, &f), HC_EINVAL);
}

/* ---- age ---------------------------------------------------------------------------------- */

static const struct {
    const char *headers;
    int64_t request_time, response_time, now, age;
    const char *rfc;
} AGE[] = {
    {"Date: " D0, T0, T0, T0 + 10, 10, "9111 §4.2.3: resident time"},
    {"Date: " D0 "\nAge: 100", T0, T0, T0 + 10, 110, "§4.2.3: Age + resident"},
    {"Date: " D0 "\nAge: 10", T0 - 5, T0, T0, 15, "§4.2.3: Age + response delay"},
    {"Date: " D_M50 "\nAge: 10", T0, T0, T0, 50, "§4.2.3: apparent age larger than Age"},
    {"Date: " D_P100, T0, T0, T0 + 1, 1, "§4.2.3: a Date in the future: apparent age 0"},
    {"Date: " D0 "\nAge: abc", T0, T0, T0, 0, "§5.1: an invalid Age is ignored"},
    {"Age: 7", T0, T0, T0, 7, "no Date"},
    {"Date: " D0 "\nAge: 99999999999999", T0, T0, T0 + 5, HC_MAX_DELTA, "§1.2.2: saturated"},
    {"Date: " D0, T0, T0 + 10, T0, 10, "now before the response time: no negative resident"},
};

static void test_age(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof AGE / sizeof AGE[0]; i++) {
        hs s;
        hc_facts f;
        hs_set(&s, AGE[i].headers);
        assert_int_equal(
            hc_facts_compute(200, s.h, s.n, AGE[i].request_time, AGE[i].response_time, NULL, &f),
            0);
        if (hc_current_age(&f, AGE[i].now) != AGE[i].age)
            fail_msg("row %zu (%s): age %lld", i, AGE[i].rfc,
                     (long long)hc_current_age(&f, AGE[i].now));
    }
    /* an Age larger than the lifetime: stale when received (§4.2.3) */
    hc_facts f;
    facts_of(200, "Date: " D0 "\nCache-Control: max-age=60\nAge: 120", &f);
    assert_false(hc_is_fresh(&f, T0));
    assert_int_equal(hc_ttl(&f, T0), -60);
    facts_of(200, "Date: " D0 "\nCache-Control: max-age=60\nAge: 20", &f);
    assert_true(hc_is_fresh(&f, T0 + 39));
    assert_false(hc_is_fresh(&f, T0 + 40)); /* fresh only while lifetime > age */
    assert_int_equal(hc_ttl(&f, T0 + 10), 30);
}

/* ---- storing ------------------------------------------------------------------------------ */

static char vary33[2048];

static const struct {
    const char *method, *req;
    int status;
    const char *resp;
    int reason;
    const char *rfc;
} STORE[] = {
    {"GET", NULL, 200, "Cache-Control: max-age=60", HC_STORE_OK, "9111 §3"},
    {"GET", NULL, 200, "", HC_STORE_OK, "§3: heuristically cacheable status"},
    {"HEAD", NULL, 200, "Cache-Control: max-age=60", HC_STORE_METHOD, "HEAD: answered from a GET"},
    {"POST", NULL, 200, "Cache-Control: max-age=60", HC_STORE_METHOD, "§3: POST not stored here"},
    {"GET", NULL, 206, "Cache-Control: max-age=60", HC_STORE_STATUS, "§3.3: no ranges combined"},
    {"GET", NULL, 304, "Cache-Control: max-age=60", HC_STORE_STATUS, "§4.3.4: 304 updates only"},
    {"GET", NULL, 500, "Cache-Control: max-age=60", HC_STORE_STATUS, "status not understood"},
    {"GET", NULL, 302, "", HC_STORE_NO_FRESHNESS, "§3: 302 needs explicit freshness"},
    {"GET", NULL, 302, "Cache-Control: max-age=60", HC_STORE_OK, "§3: ... and has it"},
    {"GET", NULL, 307, "Expires: " D_P100, HC_STORE_OK, "§3: Expires is explicit"},
    {"GET", NULL, 200, "Cache-Control: no-store, max-age=60", HC_STORE_NO_STORE, "§5.2.2.5"},
    {"GET", NULL, 200, "Cache-Control: no-store, must-understand, max-age=60", HC_STORE_OK,
     "§5.2.2.3: must-understand beats no-store for an understood status"},
    {"GET", "Cache-Control: no-store", 200, "Cache-Control: max-age=60", HC_STORE_REQUEST_NO_STORE,
     "§5.2.1.5"},
    {"GET", NULL, 200, "Cache-Control: private, max-age=60", HC_STORE_PRIVATE, "§5.2.2.7"},
    {"GET", NULL, 200, "Cache-Control: private=\"Set-Cookie\", max-age=60", HC_STORE_OK,
     "§5.2.2.7: qualified private: stored without the field"},
    {"GET", NULL, 200, "Cache-Control: no-cache, max-age=60", HC_STORE_OK,
     "§5.2.2.4: no-cache is stored, revalidated each time"},
    {"GET", "Authorization: Bearer x", 200, "Cache-Control: max-age=60", HC_STORE_AUTHORIZATION,
     "§3.5"},
    {"GET", "Authorization: Bearer x", 200, "", HC_STORE_AUTHORIZATION, "§3.5: heuristic is not"},
    {"GET", "Authorization: Bearer x", 200, "Cache-Control: public, max-age=60", HC_STORE_OK,
     "§3.5: public"},
    {"GET", "Authorization: Bearer x", 200, "Cache-Control: s-maxage=60", HC_STORE_OK,
     "§3.5: s-maxage"},
    {"GET", "Authorization: Bearer x", 200, "Cache-Control: must-revalidate, max-age=60",
     HC_STORE_OK, "§3.5: must-revalidate"},
    {"GET", NULL, 200, "Cache-Control: max-age=60\nVary: *", HC_STORE_VARY_STAR,
     "§4.1: Vary: * never matches"},
    {"GET", NULL, 200, NULL /* vary33 */, HC_STORE_VARY_TOO_MANY, "bound: 32 Vary fields"},
};

static void test_storable(void **state)
{
    (void)state;
    int o = snprintf(vary33, sizeof vary33, "Cache-Control: max-age=60\nVary: ");
    for (int i = 0; i < HC_MAX_VARY + 1; i++)
        o += snprintf(vary33 + o, sizeof vary33 - (size_t)o, "%sX-F%d", i ? ", " : "", i);
    for (size_t i = 0; i < sizeof STORE / sizeof STORE[0]; i++) {
        hc_request rq;
        hc_facts f;
        request_of(STORE[i].method, STORE[i].req, &rq);
        facts_of(STORE[i].status, STORE[i].resp ? STORE[i].resp : vary33, &f);
        int r = hc_storable(&rq, &f);
        if (r != STORE[i].reason)
            fail_msg("row %zu (%s): %s", i, STORE[i].rfc, hc_store_reason_text(r));
    }
    assert_string_equal(hc_store_reason_text(HC_STORE_PRIVATE), "the response said private");
    assert_string_equal(hc_store_reason_text(99), "unknown reason");
}

static void test_headers_to_store(void **state)
{
    (void)state;
    hs s;
    upstream_header out[80];
    /* §3.1: hop-by-hop (RFC 9110 §7.6.1) and the fields named by no-cache= / private= */
    hs_set(&s, "Connection: close, X-Hop\nKeep-Alive: timeout=5\nTransfer-Encoding: chunked\n"
               "X-Hop: 1\nContent-Type: text/plain\n"
               "Cache-Control: max-age=60, private=\"Set-Cookie\", no-cache=\"x-debug\"\n"
               "Set-Cookie: a=1\nX-Debug: y\nETag: \"v\"\nAge: 3");
    int n = hc_headers_to_store(s.h, s.n, out, 80);
    assert_int_equal(n, 4);
    assert_string_equal(out[0].name, "Content-Type");
    assert_string_equal(out[1].name, "Cache-Control");
    assert_string_equal(out[2].name, "ETag");
    assert_string_equal(out[3].name, "Age");
    assert_int_equal(hc_headers_to_store(s.h, s.n, out, 3), HC_ENOSPACE);
    /* more listed names than the bound: the caller should not store */
    char spec[1024];
    int o = snprintf(spec, sizeof spec, "Cache-Control: no-cache=\"");
    for (int i = 0; i < HC_MAX_LISTED + 1; i++)
        o += snprintf(spec + o, sizeof spec - (size_t)o, "%sx-%d", i ? "," : "", i);
    snprintf(spec + o, sizeof spec - (size_t)o, "\"");
    hs_set(&s, spec);
    assert_int_equal(hc_headers_to_store(s.h, s.n, out, 80), HC_ETOOMANY);
}

/* ---- reusing ------------------------------------------------------------------------------ */

static const struct {
    const char *req, *resp;
    int64_t after; /* now - response time */
    int outcome;
    const char *rfc;
} DECIDE[] = {
    {NULL, "Cache-Control: max-age=60", 10, HC_FRESH, "9111 §4.2"},
    {NULL, "Cache-Control: max-age=60", 60, HC_MUST_REVALIDATE, "§4.2: age == lifetime is stale"},
    {NULL, "Cache-Control: max-age=0", 0, HC_MUST_REVALIDATE, "max-age=0: stale at once"},
    {NULL, "Cache-Control: no-cache, max-age=60", 0, HC_MUST_REVALIDATE,
     "§5.2.2.4: no-cache even when fresh"},
    {"Cache-Control: max-stale", "Cache-Control: max-age=0", 5, HC_STALE_ALLOWED,
     "max-age=0 may be served stale when the client accepts it..."},
    {"Cache-Control: max-stale", "Cache-Control: no-cache", 5, HC_MUST_REVALIDATE,
     "...no-cache never (§5.2.2.4)"},
    {NULL, "Cache-Control: max-age=0, stale-while-revalidate=30", 5,
     HC_STALE_REVALIDATE_IN_BACKGROUND, "RFC 5861 §3 on max-age=0"},
    {NULL, "Cache-Control: no-cache, stale-while-revalidate=30", 5, HC_MUST_REVALIDATE,
     "no-cache beats stale-while-revalidate"},
    {"Cache-Control: no-cache", "Cache-Control: max-age=60", 1, HC_MUST_REVALIDATE, "§5.2.1.4"},
    {"Pragma: no-cache", "Cache-Control: max-age=60", 1, HC_MUST_REVALIDATE,
     "§5.4: Pragma without Cache-Control"},
    {"Pragma: no-cache\nCache-Control: max-stale", "Cache-Control: max-age=60", 1, HC_FRESH,
     "§5.4: Pragma ignored beside Cache-Control"},
    {NULL, "Pragma: no-cache\nCache-Control: max-age=60", 1, HC_FRESH,
     "§5.4: Pragma in a response means nothing"},
    {"Cache-Control: max-age=5", "Cache-Control: max-age=60", 10, HC_MUST_REVALIDATE,
     "§5.2.1.1: older than the client's max-age"},
    {"Cache-Control: max-age=5", "Cache-Control: max-age=60", 3, HC_FRESH, "§5.2.1.1"},
    {"Cache-Control: max-age=0", "Cache-Control: max-age=60, immutable", 10, HC_FRESH,
     "RFC 8246: a reload does not revalidate an immutable fresh response"},
    {"Cache-Control: no-cache", "Cache-Control: max-age=60, immutable", 10, HC_MUST_REVALIDATE,
     "RFC 8246: but no-cache does"},
    {"Cache-Control: max-age=\"x\"", "Cache-Control: max-age=60", 1, HC_MUST_REVALIDATE,
     "an invalid request max-age is 0"},
    {"Cache-Control: min-fresh=30", "Cache-Control: max-age=60", 10, HC_FRESH, "§5.2.1.3: 50 left"},
    {"Cache-Control: min-fresh=55", "Cache-Control: max-age=60", 10, HC_MUST_REVALIDATE,
     "§5.2.1.3: 50 left < 55"},
    {"Cache-Control: max-stale", "Cache-Control: max-age=60", 1060, HC_STALE_ALLOWED,
     "§5.2.1.2 without a value: any staleness"},
    {"Cache-Control: max-stale=30", "Cache-Control: max-age=60", 80, HC_STALE_ALLOWED,
     "§5.2.1.2: 20 s stale"},
    {"Cache-Control: max-stale=30", "Cache-Control: max-age=60", 100, HC_MUST_REVALIDATE,
     "§5.2.1.2: 40 s stale"},
    {"Cache-Control: max-stale", "Cache-Control: max-age=60, must-revalidate", 100,
     HC_MUST_REVALIDATE, "§5.2.2.2"},
    {"Cache-Control: max-stale", "Cache-Control: max-age=60, proxy-revalidate", 100,
     HC_MUST_REVALIDATE, "§5.2.2.8"},
    {"Cache-Control: max-stale", "Cache-Control: s-maxage=60", 100, HC_MUST_REVALIDATE,
     "§5.2.2.10: s-maxage implies proxy-revalidate"},
    {NULL, "Cache-Control: s-maxage=10, max-age=100", 50, HC_MUST_REVALIDATE,
     "§4.2.1: s-maxage overrides max-age"},
    {NULL, "Cache-Control: max-age=60, stale-while-revalidate=30", 70,
     HC_STALE_REVALIDATE_IN_BACKGROUND, "RFC 5861 §3"},
    {NULL, "Cache-Control: max-age=60, stale-while-revalidate=30", 100, HC_MUST_REVALIDATE,
     "RFC 5861 §3: past the window"},
    {NULL, "Cache-Control: max-age=60, stale-while-revalidate=30, must-revalidate", 70,
     HC_MUST_REVALIDATE, "§4.2.4: must-revalidate beats the window"},
    {"Cache-Control: max-age=600", "Cache-Control: max-age=60, stale-while-revalidate=30", 70,
     HC_MUST_REVALIDATE, "§5.2.1.1: the client does not wish a stale response"},
    {"Cache-Control: only-if-cached", "Cache-Control: max-age=60", 10, HC_FRESH, "§5.2.1.7"},
    {"Cache-Control: only-if-cached", "Cache-Control: max-age=60", 70, HC_ONLY_IF_CACHED_MISS,
     "§5.2.1.7: stale -> 504"},
    {"Cache-Control: only-if-cached, max-stale", "Cache-Control: max-age=60", 70, HC_STALE_ALLOWED,
     "§5.2.1.7 with max-stale"},
    {NULL, "Date: " D0 "\nExpires: " D_M100, 0, HC_MUST_REVALIDATE, "§5.3: Expires in the past"},
    {NULL, "Date: " D0 "\nExpires: 0", 0, HC_MUST_REVALIDATE, "§5.3: invalid Expires"},
    {NULL, "Cache-Control: max-age=60\nAge: 120", 0, HC_MUST_REVALIDATE,
     "§4.2.3: Age larger than the lifetime"},
    {NULL, "Cache-Control: max-age=60, max-age=120", 0, HC_MUST_REVALIDATE,
     "§4.2.1: conflicting max-age -> stale"},
};

static void test_decide(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof DECIDE / sizeof DECIDE[0]; i++) {
        hc_request rq;
        hc_facts f;
        request_of("GET", DECIDE[i].req, &rq);
        facts_of(200, DECIDE[i].resp, &f);
        int r = hc_decide(&rq, &f, T0 + DECIDE[i].after);
        if (r != DECIDE[i].outcome)
            fail_msg("row %zu (%s): %s, expected %s", i, DECIDE[i].rfc, hc_outcome_name(r),
                     hc_outcome_name(DECIDE[i].outcome));
    }
    /* nothing stored (or no variant matched) */
    hc_request rq;
    request_of("GET", NULL, &rq);
    assert_int_equal(hc_decide(&rq, NULL, T0), HC_MISS);
    request_of("GET", "Cache-Control: only-if-cached", &rq);
    assert_int_equal(hc_decide(&rq, NULL, T0), HC_ONLY_IF_CACHED_MISS);
    /* HEAD is answered from a stored GET: the decision does not depend on the method */
    hc_facts f;
    facts_of(200, "Cache-Control: max-age=60", &f);
    request_of("HEAD", NULL, &rq);
    assert_int_equal(rq.method, HC_M_HEAD);
    assert_int_equal(hc_decide(&rq, &f, T0 + 1), HC_FRESH);
    assert_string_equal(hc_outcome_name(HC_STALE_IF_ERROR_ALLOWED), "STALE_IF_ERROR_ALLOWED");
    assert_string_equal(hc_outcome_name(-1), "UNKNOWN");
}

static const struct {
    const char *req, *resp;
    int origin_status;
    int64_t after;
    int outcome;
    const char *rfc;
} ON_ERROR[] = {
    {NULL, "Cache-Control: max-age=60, stale-if-error=300", 503, 160, HC_STALE_IF_ERROR_ALLOWED,
     "RFC 5861 §4"},
    {NULL, "Cache-Control: max-age=60, stale-if-error=300", 0, 160, HC_STALE_IF_ERROR_ALLOWED,
     "unreachable origin"},
    {NULL, "Cache-Control: max-age=60, stale-if-error=300", 500, 360, HC_STALE_IF_ERROR_ALLOWED,
     "the window's last second"},
    {NULL, "Cache-Control: max-age=60, stale-if-error=300", 504, 361, HC_ERROR, "past the window"},
    {NULL, "Cache-Control: max-age=60, stale-if-error=300", 404, 160, HC_ERROR,
     "a 404 is the origin's answer"},
    {NULL, "Cache-Control: max-age=60", 503, 61, HC_ERROR, "no window"},
    {"Cache-Control: stale-if-error=600", "Cache-Control: max-age=60", 502, 161,
     HC_STALE_IF_ERROR_ALLOWED, "RFC 5861 §4: the request's window"},
    {NULL, "Cache-Control: max-age=60, stale-if-error=300, must-revalidate", 503, 160, HC_ERROR,
     "9111 §4.2.4: must-revalidate beats it"},
    {NULL, "Cache-Control: no-cache, stale-if-error=300", 503, 10, HC_ERROR, "no-cache beats it"},
    {NULL, "Cache-Control: s-maxage=60, stale-if-error=300", 503, 160, HC_STALE_IF_ERROR_ALLOWED,
     "the origin's explicit window beats s-maxage's implied proxy-revalidate"},
};

static void test_decide_on_error(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof ON_ERROR / sizeof ON_ERROR[0]; i++) {
        hc_request rq;
        hc_facts f;
        request_of("GET", ON_ERROR[i].req, &rq);
        facts_of(200, ON_ERROR[i].resp, &f);
        int r = hc_decide_on_error(&rq, &f, ON_ERROR[i].origin_status, T0 + ON_ERROR[i].after);
        if (r != ON_ERROR[i].outcome)
            fail_msg("row %zu (%s): %s", i, ON_ERROR[i].rfc, hc_outcome_name(r));
    }
    assert_int_equal(hc_decide_on_error(NULL, NULL, 503, T0), HC_ERROR);
}

static void test_entry_times(void **state)
{
    (void)state;
    hc_facts f;
    hc_entry_times t;
    facts_of(200, "Cache-Control: max-age=60, stale-while-revalidate=30, stale-if-error=600", &f);
    hc_entry_times_of(&f, T0 + 10, 0, &t);
    assert_int_equal(t.ttl_ms, 50000);
    assert_int_equal(t.grace_ms, 30000);
    assert_int_equal(t.stale_if_error_ms, 600000);
    hc_entry_times_of(&f, T0 + 100, 0, &t);
    assert_int_equal(t.ttl_ms, 1); /* stale: never 0, which means "never expires" */
    facts_of(200, "Cache-Control: max-age=60, stale-while-revalidate=30, must-revalidate", &f);
    hc_entry_times_of(&f, T0, 0, &t);
    assert_int_equal(t.grace_ms, 0);
    /* kept for a 304 only when it has a validator */
    facts_of(200, "Cache-Control: max-age=60\nETag: \"v\"", &f);
    hc_entry_times_of(&f, T0, 3600, &t);
    assert_int_equal(t.stale_if_error_ms, 3600000);
    facts_of(200, "Cache-Control: max-age=60", &f);
    hc_entry_times_of(&f, T0, 3600, &t);
    assert_int_equal(t.stale_if_error_ms, 0);
    facts_of(200, "Cache-Control: max-age=60, stale-if-error=99999999", &f);
    hc_entry_times_of(&f, T0, 0, &t);
    assert_int_equal(t.stale_if_error_ms, 30ULL * 86400 * 1000); /* l1.h's bound */
}

/* ---- Vary --------------------------------------------------------------------------------- */

static const struct {
    const char *resp, *req;
    int rc;
    const char *key;
    const char *rfc;
} VARY[] = {
    {"Content-Type: x", "Accept-Encoding: gzip", HC_OK, "", "no Vary: no secondary key"},
    {"Vary: Accept-Encoding", "Accept-Encoding: gzip", HC_OK, "accept-encoding:gzip\n", "§4.1"},
    {"Vary: Accept-Encoding", "", HC_OK, "accept-encoding\n", "§4.1: absent matches only absent"},
    {"Vary: Accept-Encoding", "Accept-Encoding:", HC_OK, "accept-encoding:\n",
     "present but empty is not absent"},
    {"Vary: accept-encoding", "Accept-Encoding: GZIP ,  br", HC_OK, "accept-encoding:gzip,br\n",
     "§4.1: whitespace and case (codings are case-insensitive)"},
    {"Vary: Accept-Encoding", "Accept-Encoding: gzip\nAccept-Encoding: br", HC_OK,
     "accept-encoding:gzip,br\n", "§4.1: lines combined"},
    {"Vary: Accept-Encoding", "Accept-Encoding: gzip,, ,br,", HC_OK, "accept-encoding:gzip,br\n",
     "empty list elements"},
    {"Vary: Accept-Language, Accept-Encoding", "Accept-Encoding: br\nAccept-Language: en", HC_OK,
     "accept-encoding:br\naccept-language:en\n", "fields sorted"},
    {"Vary: Accept-Encoding\nVary: accept-language, ACCEPT-ENCODING",
     "Accept-Language: EN\nAccept-Encoding: br", HC_OK, "accept-encoding:br\naccept-language:en\n",
     "several Vary lines, duplicates dropped"},
    {"Vary: User-Agent", "User-Agent:  Mozilla/5.0   (X11;  Linux) ", HC_OK,
     "user-agent:Mozilla/5.0 (X11; Linux)\n", "whitespace runs; case kept"},
    {"Vary: X-Q", "X-Q: \"a  B\" ,c", HC_OK, "x-q:\"a  B\",c\n", "quoted strings kept as is"},
    {"Vary: *", "Accept: x", HC_VARY_NEVER, NULL, "§4.1: Vary: * never matches"},
    {"Vary: Accept, *", "Accept: x", HC_VARY_NEVER, NULL, "§4.1: * anywhere"},
    {"Vary: Bad Name, Accept", "Accept: x", HC_OK, "accept:x\n", "not a field name: skipped"},
};

static void test_vary(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof VARY / sizeof VARY[0]; i++) {
        hs a, b;
        char buf[256];
        size_t len = 0;
        hs_set(&a, VARY[i].resp);
        hs_set(&b, VARY[i].req[0] ? VARY[i].req : NULL);
        int rc = hc_vary_key(a.h, a.n, b.h, b.n, buf, sizeof buf, &len);
        if (rc != VARY[i].rc)
            fail_msg("row %zu (%s): rc %d", i, VARY[i].rfc, rc);
        if (rc == HC_OK && (len != strlen(VARY[i].key) || memcmp(buf, VARY[i].key, len) != 0))
            fail_msg("row %zu (%s): '%.*s'", i, VARY[i].rfc, (int)len, buf);
    }
    /* two requests, one without the field: they select different variants */
    hs resp, r1, r2;
    char k1[64], k2[64];
    size_t l1, l2;
    hs_set(&resp, "Vary: Accept-Language");
    hs_set(&r1, "Accept-Language: fr");
    hs_set(&r2, "Accept: */*");
    assert_int_equal(hc_vary_key(resp.h, resp.n, r1.h, r1.n, k1, sizeof k1, &l1), HC_OK);
    assert_int_equal(hc_vary_key(resp.h, resp.n, r2.h, r2.n, k2, sizeof k2, &l2), HC_OK);
    assert_false(l1 == l2 && memcmp(k1, k2, l1) == 0);
    /* bounds */
    assert_int_equal(hc_vary_key(resp.h, resp.n, r1.h, r1.n, k1, 5, &l1), HC_ENOSPACE);
    hs big;
    char spec[1024];
    int o = snprintf(spec, sizeof spec, "Vary: ");
    for (int i = 0; i < HC_MAX_VARY + 1; i++)
        o += snprintf(spec + o, sizeof spec - (size_t)o, "%sX-F%d", i ? "," : "", i);
    hs_set(&big, spec);
    assert_int_equal(hc_vary_key(big.h, big.n, r1.h, r1.n, k1, sizeof k1, &l1), HC_ETOOMANY);
}

/* ---- revalidation ------------------------------------------------------------------------- */

static void test_validators(void **state)
{
    (void)state;
    hc_facts f;
    upstream_header v[2];
    /* §4.3.1: If-None-Match from the ETag, If-Modified-Since from Last-Modified as received */
    facts_of(200, "ETag: W/\"v1\"\nLast-Modified: Sunday, 06-Nov-94 08:49:37 GMT", &f);
    assert_int_equal(hc_validators(&f, v, 2), 2);
    assert_string_equal(v[0].name, "If-None-Match");
    assert_string_equal(v[0].value, "W/\"v1\"");
    assert_string_equal(v[1].name, "If-Modified-Since");
    assert_string_equal(v[1].value, "Sunday, 06-Nov-94 08:49:37 GMT");
    assert_int_equal(hc_validators(&f, v, 1), HC_ENOSPACE);
    facts_of(200, "Cache-Control: max-age=1", &f);
    assert_int_equal(hc_validators(&f, v, 2), 0);
    facts_of(200, "ETag: not-quoted", &f); /* an invalid ETag is no validator */
    assert_int_equal(hc_validators(&f, v, 2), 0);
}

static const struct {
    const char *stored, *upd;
    int selects;
    const char *rfc;
} SELECTS[] = {
    {"ETag: \"a\"", "ETag: \"a\"", 1, "9111 §4.3.4: the same strong validator"},
    {"ETag: \"a\"", "ETag: \"b\"", 0, "§4.3.4: another strong validator: no update"},
    {"ETag: \"a\"", "ETag: W/\"a\"", 1, "§4.3.4: a weak validator, weakly equal"},
    {"ETag: W/\"a\"", "ETag: \"a\"", 0, "a strong validator never matches a weak one"},
    {"Last-Modified: " D0, "Last-Modified: " D0, 1, "§4.3.4: Last-Modified"},
    {"Last-Modified: " D0, "Last-Modified: " D_M10, 0, "another Last-Modified"},
    {"Cache-Control: max-age=1", "Date: " D0, 1, "§4.3.4: no validators on either side"},
    {"ETag: \"a\"", "Date: " D0, 0, "§4.3.4: the stored response has one, the 304 none"},
};

static void test_304(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof SELECTS / sizeof SELECTS[0]; i++) {
        hc_facts s, u;
        facts_of(200, SELECTS[i].stored, &s);
        facts_of(304, SELECTS[i].upd, &u);
        if (hc_304_selects(&s, &u) != SELECTS[i].selects)
            fail_msg("row %zu (%s)", i, SELECTS[i].rfc);
    }
    /* §3.2, §4.3.4: the merge */
    hs stored, upd;
    upstream_header out[40];
    hs_set(&stored, "Content-Type: text/plain\nContent-Length: 5\nContent-Encoding: gzip\n"
                    "ETag: \"a\"\nCache-Control: max-age=10\nDate: " D_M100 "\nX-Old: 1\n"
                    "X-Multi: 1\nX-Multi: 2");
    hs_set(&upd, "Cache-Control: max-age=60, private=\"X-Secret\"\nDate: " D0 "\n"
                 "Content-Length: 0\nContent-Encoding: br\nConnection: close, X-Conn\n"
                 "Keep-Alive: timeout=1\nX-Conn: 1\nETag: \"a\"\nX-Multi: 3\nX-New: 2\n"
                 "X-Secret: s");
    int n = hc_merge_304(stored.h, stored.n, upd.h, upd.n, out, 40);
    static const char *const want[][2] = {
        {"Content-Type", "text/plain"},
        {"Content-Length", "5"},      /* §3.2: never updated */
        {"Content-Encoding", "gzip"}, /* describes the stored bytes */
        {"X-Old", "1"},
        {"Cache-Control", "max-age=60, private=\"X-Secret\""},
        {"Date", D0},
        {"ETag", "\"a\""},
        {"X-Multi", "3"}, /* replaces all the stored lines */
        {"X-New", "2"},
    };
    assert_int_equal(n, (int)(sizeof want / sizeof want[0]));
    for (int i = 0; i < n; i++) {
        assert_string_equal(out[i].name, want[i][0]);
        assert_string_equal(out[i].value, want[i][1]);
    }
    assert_int_equal(hc_merge_304(stored.h, stored.n, upd.h, upd.n, out, 3), HC_ENOSPACE);
    /* the facts recomputed from the merged headers, at the revalidation's times */
    hc_facts f;
    assert_int_equal(hc_facts_compute(200, out, (size_t)n, T0, T0, NULL, &f), 0);
    assert_int_equal(f.lifetime, 60);
    assert_true(hc_is_fresh(&f, T0 + 59));
}

/* ---- a client's conditional request ------------------------------------------------------- */

static const struct {
    const char *req;
    int method;
    const char *stored;
    int64_t now_after;
    int cond;
    const char *rfc;
} COND[] = {
    {"If-None-Match: \"a\"", HC_M_GET, "ETag: \"a\"", 0, HC_COND_NOT_MOD, "9110 §13.1.2"},
    {"If-None-Match: W/\"a\"", HC_M_GET, "ETag: \"a\"", 0, HC_COND_NOT_MOD,
     "§13.1.2: weak comparison"},
    {"If-None-Match: \"a\"", HC_M_GET, "ETag: W/\"a\"", 0, HC_COND_NOT_MOD, "weak stored"},
    {"If-None-Match: \"b\"", HC_M_GET, "ETag: \"a\"", 0, HC_COND_FULL, "no match"},
    {"If-None-Match: \"x\", \"a\"", HC_M_GET, "ETag: \"a\"", 0, HC_COND_NOT_MOD, "a list"},
    {"If-None-Match: \"x\"\nIf-None-Match: \"a\"", HC_M_GET, "ETag: \"a\"", 0, HC_COND_NOT_MOD,
     "several lines"},
    {"If-None-Match: *", HC_M_GET, "Cache-Control: max-age=1", 0, HC_COND_NOT_MOD,
     "§13.1.2: * matches any current representation"},
    {"If-None-Match: \"a\"", HC_M_HEAD, "ETag: \"a\"", 0, HC_COND_NOT_MOD, "HEAD"},
    {"If-None-Match: \"a\"", HC_M_PUT, "ETag: \"a\"", 0, HC_COND_FAILED, "§13.1.2: else 412"},
    {"If-None-Match: \"b\"\nIf-Modified-Since: " D0, HC_M_GET,
     "ETag: \"a\"\nLast-Modified: " D_M100, 0, HC_COND_FULL,
     "§13.1.3: If-Modified-Since ignored beside If-None-Match"},
    {"If-Modified-Since: " D0, HC_M_GET, "Last-Modified: " D_M100, 0, HC_COND_NOT_MOD, "§13.1.3"},
    {"If-Modified-Since: " D0, HC_M_GET, "Last-Modified: " D0, 0, HC_COND_NOT_MOD,
     "§13.1.3: equal is not modified"},
    {"If-Modified-Since: " D_M100, HC_M_GET, "Last-Modified: " D0, 0, HC_COND_FULL,
     "§13.1.3: modified since"},
    {"If-Modified-Since: yesterday", HC_M_GET, "Last-Modified: " D_M100, 0, HC_COND_FULL,
     "§13.1.3: an invalid date is ignored"},
    {"If-Modified-Since: " D_P100, HC_M_GET, "Last-Modified: " D_M100, 0, HC_COND_FULL,
     "§13.1.3: a date after now is ignored"},
    {"If-Modified-Since: " D_P10, HC_M_GET, "Date: " D0, 50, HC_COND_NOT_MOD,
     "9111 §4.3.2: no Last-Modified: the stored Date"},
    {"If-Modified-Since: " D0, HC_M_POST, "Last-Modified: " D_M100, 0, HC_COND_FULL,
     "§13.1.3: GET and HEAD only"},
    {"If-Match: \"a\"", HC_M_GET, "ETag: \"a\"", 0, HC_COND_FULL, "§13.1.1"},
    {"If-Match: W/\"a\"", HC_M_GET, "ETag: \"a\"", 0, HC_COND_FAILED, "§13.1.1: strong comparison"},
    {"If-Match: \"b\"", HC_M_GET, "ETag: \"a\"", 0, HC_COND_FAILED, "§13.1.1"},
    {"If-Match: *", HC_M_GET, "Cache-Control: max-age=1", 0, HC_COND_FULL, "§13.1.1: *"},
    {"If-Unmodified-Since: " D_M100, HC_M_GET, "Last-Modified: " D0, 0, HC_COND_FAILED, "§13.1.4"},
    {"If-Unmodified-Since: " D0, HC_M_GET, "Last-Modified: " D0, 0, HC_COND_FULL, "§13.1.4"},
    {"If-Match: \"a\"\nIf-Unmodified-Since: " D_M100, HC_M_GET, "ETag: \"a\"\nLast-Modified: " D0,
     0, HC_COND_FULL, "§13.2.2: If-Unmodified-Since only without If-Match"},
    {"If-Match: \"b\"\nIf-None-Match: \"a\"", HC_M_GET, "ETag: \"a\"", 0, HC_COND_FAILED,
     "§13.2.2: If-Match first"},
    {"Accept: */*", HC_M_GET, "ETag: \"a\"", 0, HC_COND_FULL, "not conditional"},
};

static void test_client_conditional(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof COND / sizeof COND[0]; i++) {
        hs r;
        hc_facts f;
        hs_set(&r, COND[i].req);
        facts_of(200, COND[i].stored, &f);
        int c = hc_client_conditional(r.h, r.n, COND[i].method, &f, T0 + COND[i].now_after);
        if (c != COND[i].cond)
            fail_msg("row %zu (%s): %d", i, COND[i].rfc, c);
    }
}

/* ---- unsafe methods ----------------------------------------------------------------------- */

static const struct {
    int method, status;
    const char *location, *content_location;
    const char *uris[3];
    const char *rfc;
} INVAL[] = {
    {HC_M_PUT, 204, NULL, NULL, {"/tasks/7?x=1"}, "9111 §4.4: the target"},
    {HC_M_GET, 200, "/tasks/8", NULL, {NULL}, "§4.4: safe methods invalidate nothing"},
    {HC_M_POST, 500, NULL, NULL, {NULL}, "§4.4: only non-error statuses"},
    {HC_M_POST, 404, NULL, NULL, {NULL}, "§4.4: 4xx is an error"},
    {HC_M_POST, 302, NULL, NULL, {"/tasks/7?x=1"}, "3xx is not"},
    {HC_M_OTHER, 200, NULL, NULL, {"/tasks/7?x=1"}, "§4.4: unknown methods are unsafe (PURGE)"},
    {HC_M_POST, 201, "/tasks/8", NULL, {"/tasks/7?x=1", "/tasks/8"}, "§4.4: Location"},
    {HC_M_POST,
     201,
     "http://api:8080/tasks/8",
     "http://API:8080/list#top",
     {"/tasks/7?x=1", "/tasks/8", "/list"},
     "§4.4: absolute, same origin (host case)"},
    {HC_M_DELETE,
     200,
     "http://other.example/tasks/8",
     NULL,
     {"/tasks/7?x=1"},
     "§4.4: never another host"},
    {HC_M_DELETE,
     200,
     "https://api:8080/tasks/8",
     NULL,
     {"/tasks/7?x=1"},
     "§4.4: another scheme is another origin"},
    {HC_M_DELETE, 200, "http://api/tasks/8", NULL, {"/tasks/7?x=1"}, "another port"},
    {HC_M_PUT, 200, "//api:8080/y", NULL, {"/tasks/7?x=1", "/y"}, "network-path reference"},
    {HC_M_PUT, 200, "//evil:8080/y", NULL, {"/tasks/7?x=1"}, "network-path to another host"},
    {HC_M_PUT,
     200,
     "8",
     "../users/1",
     {"/tasks/7?x=1", "/tasks/8", "/users/1"},
     "RFC 3986 §5.2: relative references"},
    {HC_M_PUT,
     200,
     "./a/../b?q=1#frag",
     NULL,
     {"/tasks/7?x=1", "/tasks/b?q=1"},
     "dot segments, fragment"},
    {HC_M_PUT, 200, "/tasks/7?x=1", "/tasks/7?x=1", {"/tasks/7?x=1"}, "the same URI once"},
    {HC_M_PUT, 200, "/../../etc", NULL, {"/tasks/7?x=1", "/etc"}, "no climbing above the root"},
    {HC_M_PUT, 200, "mailto:a@b", "javascript:x", {"/tasks/7?x=1"}, "not http URIs"},
    {HC_M_PUT, 200, "/a b", NULL, {"/tasks/7?x=1"}, "not a URI reference"},
    {HC_M_PUT, 200, "http://user@api:8080/u", NULL, {"/tasks/7?x=1", "/u"}, "userinfo dropped"},
};

static void test_invalidations(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof INVAL / sizeof INVAL[0]; i++) {
        const char *out[3] = {0};
        char buf[512];
        int n =
            hc_invalidations(INVAL[i].method, INVAL[i].status, "http", "api:8080", "/tasks/7?x=1#f",
                             INVAL[i].location, INVAL[i].content_location, out, buf, sizeof buf);
        int want = 0;
        while (want < 3 && INVAL[i].uris[want])
            want++;
        if (n != want)
            fail_msg("row %zu (%s): %d URIs", i, INVAL[i].rfc, n);
        for (int k = 0; k < n; k++)
            if (strcmp(out[k], INVAL[i].uris[k]) != 0)
                fail_msg("row %zu (%s): '%s'", i, INVAL[i].rfc, out[k]);
    }
    /* the default port is the same origin */
    const char *out[3];
    char buf[64];
    assert_int_equal(hc_invalidations(HC_M_POST, 200, "http", "api", "/a", "http://api:80/b", NULL,
                                      out, buf, sizeof buf),
                     2);
    assert_string_equal(out[1], "/b");
    assert_int_equal(hc_invalidations(HC_M_POST, 200, "https", "api:443", "/a", "https://api/c",
                                      NULL, out, buf, sizeof buf),
                     2);
    assert_string_equal(out[1], "/c");
    assert_int_equal(hc_invalidations(HC_M_POST, 200, "http", "api", "/a", "/bbbbbbbbbbbbbbbbbb",
                                      NULL, out, buf, 8),
                     HC_ENOSPACE);
}

/* ---- X-Cache and Cache-Status ------------------------------------------------------------- */

static const struct {
    hc_cache_status cs;
    const char *xcache, *want;
    const char *rfc;
} STATUS[] = {
    {{.xcache = HC_XC_HIT_L1, .has_ttl = 1, .ttl = 376},
     "HIT-L1",
     "strata; hit; ttl=376",
     "9211 §2.1, §2.4"},
    {{.xcache = HC_XC_HIT_L2, .has_ttl = 1, .ttl = 5}, "HIT-L2", "strata; hit; ttl=5", "§2.1"},
    {{.xcache = HC_XC_HIT_COALESCED, .fwd_status = 200, .stored = 1},
     "HIT-COALESCED",
     "strata; fwd=uri-miss; collapsed; fwd-status=200; stored",
     "§2.6 collapsed"},
    {{.xcache = HC_XC_STALE, .has_ttl = 1, .ttl = -5, .detail = "stale-while-revalidate"},
     "STALE",
     "strata; hit; ttl=-5; detail=stale-while-revalidate",
     "§2.1: a stale hit"},
    {{.xcache = HC_XC_STALE,
      .fwd_status = 503,
      .has_ttl = 1,
      .ttl = -30,
      .detail = "stale-if-error"},
     "STALE",
     "strata; fwd=stale; fwd-status=503; ttl=-30; detail=stale-if-error",
     "§2.2: went forward, not a hit"},
    {{.xcache = HC_XC_REVALIDATED, .fwd_status = 304, .has_ttl = 1, .ttl = 60},
     "REVALIDATED",
     "strata; fwd=stale; fwd-status=304; ttl=60",
     "§2.2, §2.3"},
    {{.xcache = HC_XC_MISS, .fwd_status = 200, .stored = 1, .has_ttl = 1, .ttl = 60},
     "MISS",
     "strata; fwd=uri-miss; fwd-status=200; stored; ttl=60",
     "§2.2, §2.5"},
    {{.xcache = HC_XC_MISS, .fwd = HC_FWD_VARY_MISS, .fwd_status = 200},
     "MISS",
     "strata; fwd=vary-miss; fwd-status=200",
     "§2.2 vary-miss"},
    {{.xcache = HC_XC_MISS, .fwd = HC_FWD_REQUEST, .fwd_status = 200},
     "MISS",
     "strata; fwd=request; fwd-status=200",
     "§2.2 request"},
    {{.xcache = HC_XC_BYPASS, .fwd_status = 201},
     "BYPASS",
     "strata; fwd=bypass; fwd-status=201",
     "§2.2 bypass"},
    {{.xcache = HC_XC_BYPASS, .fwd = HC_FWD_METHOD, .fwd_status = 201, .detail = "a \"b\""},
     "BYPASS",
     "strata; fwd=method; fwd-status=201; detail=\"a \\\"b\\\"\"",
     "§2.2 method; §2.8 detail as a string"},
};

static void test_cache_status(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof STATUS / sizeof STATUS[0]; i++) {
        char buf[160];
        int n = hc_cache_status_format(&STATUS[i].cs, buf, sizeof buf);
        assert_string_equal(hc_xcache_name(STATUS[i].cs.xcache), STATUS[i].xcache);
        if (n < 0 || strcmp(buf, STATUS[i].want) != 0)
            fail_msg("row %zu (%s): '%s'", i, STATUS[i].rfc, n < 0 ? "error" : buf);
        assert_int_equal(n, (int)strlen(STATUS[i].want));
    }
    char small[8];
    hc_cache_status cs = {.xcache = HC_XC_HIT_L1};
    assert_int_equal(hc_cache_status_format(&cs, small, sizeof small), HC_ENOSPACE);
    cs.xcache = 99;
    assert_int_equal(hc_cache_status_format(&cs, small, sizeof small), HC_EINVAL);
    assert_string_equal(hc_xcache_name(99), "UNKNOWN");
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(hc_err_name(HC_ENOSPACE), "ENOSPACE");
    assert_string_equal(hc_err_name(HC_VARY_NEVER), "VARY_NEVER");
    assert_string_equal(hc_err_name(-99), "UNKNOWN");
    assert_string_equal(hc_strerror(HC_ETOOMANY), "more fields than the fixed bound");
    assert_string_equal(hc_strerror(-99), "unknown status");
    assert_int_equal(hc_method_of("GET"), HC_M_GET);
    assert_int_equal(hc_method_of("get"), HC_M_OTHER); /* methods are case-sensitive */
    assert_int_equal(hc_method_of("PURGE"), HC_M_OTHER);
    assert_int_equal(hc_method_of(NULL), HC_M_OTHER);
    assert_true(hc_method_safe(HC_M_OPTIONS));
    assert_false(hc_method_safe(HC_M_OTHER));
    hc_request rq;
    request_of("GET", "Authorization: x\nIf-None-Match: \"a\"\nRange: bytes=0-1", &rq);
    assert_int_equal(rq.flags, HC_RQ_AUTHORIZATION | HC_RQ_CONDITIONAL | HC_RQ_RANGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_control),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_etags),
        cmocka_unit_test(test_lifetime),
        cmocka_unit_test(test_age),
        cmocka_unit_test(test_storable),
        cmocka_unit_test(test_headers_to_store),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_decide_on_error),
        cmocka_unit_test(test_entry_times),
        cmocka_unit_test(test_vary),
        cmocka_unit_test(test_validators),
        cmocka_unit_test(test_304),
        cmocka_unit_test(test_client_conditional),
        cmocka_unit_test(test_invalidations),
        cmocka_unit_test(test_cache_status),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
