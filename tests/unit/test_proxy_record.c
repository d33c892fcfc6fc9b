/* test_proxy_record.c: the stored layout of a cached HTTP response (src/server/proxy/
 * proxy_record.c): records built from real hc_facts round-trip exactly, every malformed or cut
 * byte string is refused (or, cut inside the body, is the same record with less body), and the
 * header lines are split and written back as the HTTP layer needs them. Every decode reads from
 * an exact-size heap copy, so the sanitizer build sees any read past the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/proxy_record.h"

#define T0     784111777LL /* Sun, 06 Nov 1994 08:49:37 GMT */
#define D0     "Sun, 06 Nov 1994 08:49:37 GMT"
#define D_M100 "Sun, 06 Nov 1994 08:47:57 GMT" /* T0 - 100 */

/* Where the etag's length byte sits: magic, version, kind, status, origin_ms, flags, then the
 * facts' fixed part (two u32 and fourteen i64). */
#define AT_ETAG_LEN (4 + 1 + 1 + 2 + 4 + 4 + 4 + 4 + 14 * 8)
#define AT_VERSION  4
#define AT_KIND     5
#define AT_STATUS   6
#define AT_FLAGS    12

/* Headers from "Name: value\nName: value": the test's own storage. */
typedef struct hs {
    upstream_header h[32];
    char buf[4096];
    size_t n;
} hs;

static hs *hs_set(hs *s, const char *spec)
{
    s->n = 0;
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
        assert_true(s->n < 32);
        s->h[s->n++] = (upstream_header){p, v};
        if (!nl)
            break;
        p = nl + 1;
    }
    return s;
}

/* A response as the proxy stores it: facts from hc_facts_compute, head from proxy_head_format. */
#define RESP_HEADERS                                                                               \
    "Date: " D0 "\n"                                                                               \
    "ETag: W/\"v1-abc\"\n"                                                                         \
    "Last-Modified: " D_M100 "\n"                                                                  \
    "Cache-Control: public, max-age=60, stale-while-revalidate=30, stale-if-error=300\n"           \
    "Content-Type: text/plain"
#define RESP_HEAD                                                                                  \
    "Date: " D0 "\r\n"                                                                             \
    "ETag: W/\"v1-abc\"\r\n"                                                                       \
    "Last-Modified: " D_M100 "\r\n"                                                                \
    "Cache-Control: public, max-age=60, stale-while-revalidate=30, stale-if-error=300\r\n"         \
    "Content-Type: text/plain\r\n"
#define RESP_BODY "hello, cached world\n"

typedef struct fixture {
    proxy_record r;
    char head[1024];
} fixture;

static void response_record(fixture *fx)
{
    hs s;
    hs_set(&s, RESP_HEADERS);
    memset(fx, 0, sizeof *fx);
    assert_int_equal(hc_facts_compute(200, s.h, s.n, T0 - 1, T0, NULL, &fx->r.facts), 0);
    long hl = proxy_head_format(s.h, s.n, fx->head, sizeof fx->head);
    assert_int_equal(hl, (long)strlen(RESP_HEAD));
    assert_memory_equal(fx->head, RESP_HEAD, (size_t)hl);
    fx->r.kind = PROXY_RECORD_RESPONSE;
    fx->r.status = 200;
    fx->r.origin_ms = 1234;
    fx->r.head = fx->head;
    fx->r.head_len = (size_t)hl;
    fx->r.vary = "";
    fx->r.vary_len = 0;
    fx->r.body = RESP_BODY;
    fx->r.body_len = strlen(RESP_BODY);
}

static void vary_record(proxy_record *r)
{
    memset(r, 0, sizeof *r);
    hs s;
    hs_set(&s, "Date: " D0 "\nVary: Accept-Encoding, Accept-Language\nCache-Control: max-age=5");
    assert_int_equal(hc_facts_compute(200, s.h, s.n, T0, T0, NULL, &r->facts), 0);
    r->kind = PROXY_RECORD_VARY;
    r->status = 200;
    r->vary = "Accept-Encoding, Accept-Language";
    r->vary_len = strlen(r->vary);
}

/* r encoded into a fresh heap buffer of exactly its size. */
static char *encoded(const proxy_record *r, size_t *n)
{
    *n = proxy_record_size(r);
    assert_true(*n > 0);
    char *p = malloc(*n);
    assert_non_null(p);
    assert_int_equal(proxy_record_encode(r, p, *n), (long)*n);
    return p;
}

/* decode from an exact-size heap copy of p[0..n); the copy is kept in *copy for the pointers. */
static int decode_copy(const char *p, size_t n, proxy_record *r, char **copy)
{
    *copy = malloc(n ? n : 1);
    assert_non_null(*copy);
    if (n)
        memcpy(*copy, p, n);
    return proxy_record_decode(*copy, n, r);
}

static int decodes(const char *p, size_t n)
{
    proxy_record r;
    char *copy;
    int rc = decode_copy(p, n, &r, &copy);
    free(copy);
    return rc;
}

static void assert_facts_equal(const hc_facts *a, const hc_facts *b)
{
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->cc.flags, b->cc.flags);
    assert_int_equal(a->cc.max_age, b->cc.max_age);
    assert_int_equal(a->cc.s_maxage, b->cc.s_maxage);
    assert_int_equal(a->cc.min_fresh, b->cc.min_fresh);
    assert_int_equal(a->cc.max_stale, b->cc.max_stale);
    assert_int_equal(a->cc.swr, b->cc.swr);
    assert_int_equal(a->cc.sie, b->cc.sie);
    assert_int_equal(a->date, b->date);
    assert_int_equal(a->expires, b->expires);
    assert_int_equal(a->last_mod, b->last_mod);
    assert_int_equal(a->age, b->age);
    assert_int_equal(a->request_time, b->request_time);
    assert_int_equal(a->response_time, b->response_time);
    assert_int_equal(a->lifetime, b->lifetime);
    assert_int_equal(a->corrected_initial_age, b->corrected_initial_age);
    assert_string_equal(a->etag, b->etag);
    assert_string_equal(a->last_mod_text, b->last_mod_text);
}

static void assert_span(const char *a, size_t alen, const char *b, size_t blen)
{
    assert_int_equal(alen, blen);
    if (alen)
        assert_memory_equal(a, b, alen);
}

/* Everything but the body. */
static void assert_head_equal(const proxy_record *a, const proxy_record *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->origin_ms, b->origin_ms);
    assert_facts_equal(&a->facts, &b->facts);
    assert_span(a->head, a->head_len, b->head, b->head_len);
    assert_span(a->vary, a->vary_len, b->vary, b->vary_len);
}

static void assert_record_equal(const proxy_record *a, const proxy_record *b)
{
    assert_head_equal(a, b);
    assert_span(a->body, a->body_len, b->body, b->body_len);
}

/* ---- round trips -------------------------------------------------------------------------- */

static void test_round_trip_response(void **state)
{
    (void)state;
    fixture fx;
    response_record(&fx);
    /* the facts are the real ones: validators, dates as text, RFC 5861 windows */
    assert_string_equal(fx.r.facts.etag, "W/\"v1-abc\"");
    assert_string_equal(fx.r.facts.last_mod_text, D_M100);
    assert_true(fx.r.facts.flags & HC_F_ETAG_WEAK);
    assert_true(fx.r.facts.flags & HC_F_LAST_MODIFIED);
    assert_true(fx.r.facts.cc.flags & HC_CC_SWR);
    assert_true(fx.r.facts.cc.flags & HC_CC_SIE);
    assert_int_equal(fx.r.facts.cc.swr, 30);
    assert_int_equal(fx.r.facts.cc.sie, 300);
    assert_int_equal(fx.r.facts.lifetime, 60);
    assert_int_equal(fx.r.facts.last_mod, T0 - 100);
    assert_int_equal(fx.r.facts.status, 200);

    size_t n;
    char *p = encoded(&fx.r, &n);
    assert_memory_equal(p, "\0SPR\1\1", 6);
    assert_int_equal((unsigned char)p[AT_STATUS], 200);
    assert_int_equal(n, AT_ETAG_LEN + 1 + strlen(fx.r.facts.etag) + 1 +
                            strlen(fx.r.facts.last_mod_text) + 4 + fx.r.head_len + 2 +
                            fx.r.vary_len + fx.r.body_len);

    proxy_record d;
    char *copy;
    assert_int_equal(decode_copy(p, n, &d, &copy), 0);
    assert_record_equal(&d, &fx.r);
    /* decoded spans point into the bytes, the body runs to their end */
    assert_true(d.head > copy && d.head + d.head_len <= copy + n);
    assert_ptr_equal(d.body + d.body_len, copy + n);
    assert_null(d.vary);

    /* a decoded record re-encodes to the same bytes */
    size_t n2;
    char *p2 = encoded(&d, &n2);
    assert_int_equal(n2, n);
    assert_memory_equal(p2, p, n);
    free(p2);
    free(copy);
    free(p);
}

static void test_round_trip_error_flag(void **state)
{
    (void)state;
    proxy_record r;
    memset(&r, 0, sizeof r);
    hs s;
    hs_set(&s, "Date: " D0 "\nContent-Type: text/html");
    assert_int_equal(hc_facts_compute(503, s.h, s.n, T0, T0, NULL, &r.facts), 0);
    r.kind = PROXY_RECORD_RESPONSE;
    r.status = 503;
    r.flags = PROXY_RECORD_ERROR;
    r.origin_ms = UINT32_MAX;
    r.vary = "accept-encoding:gzip\n";
    r.vary_len = strlen(r.vary);
    size_t n;
    char *p = encoded(&r, &n);
    proxy_record d;
    char *copy;
    assert_int_equal(decode_copy(p, n, &d, &copy), 0);
    assert_record_equal(&d, &r);
    assert_int_equal(d.flags, PROXY_RECORD_ERROR);
    assert_int_equal(d.origin_ms, UINT32_MAX);
    assert_null(d.head);
    assert_null(d.body);
    free(copy);
    free(p);
}

static void test_round_trip_vary(void **state)
{
    (void)state;
    proxy_record r;
    vary_record(&r);
    assert_true(r.facts.flags & HC_F_VARY);
    size_t n;
    char *p = encoded(&r, &n);
    assert_int_equal((unsigned char)p[AT_KIND], PROXY_RECORD_VARY);
    proxy_record d;
    char *copy;
    assert_int_equal(decode_copy(p, n, &d, &copy), 0);
    assert_record_equal(&d, &r);
    assert_int_equal(d.kind, PROXY_RECORD_VARY);
    assert_int_equal(d.body_len, 0);
    assert_null(d.body);
    assert_null(d.head);
    assert_ptr_equal(d.vary + d.vary_len, copy + n);

    size_t n2;
    char *p2 = encoded(&d, &n2);
    assert_int_equal(n2, n);
    assert_memory_equal(p2, p, n);
    free(p2);
    free(copy);
    free(p);
}

/* The smallest record: no texts, no head, no vary, no body. */
static void test_minimal(void **state)
{
    (void)state;
    proxy_record r;
    memset(&r, 0, sizeof r);
    r.kind = PROXY_RECORD_RESPONSE;
    r.status = r.facts.status = 204;
    size_t n;
    char *p = encoded(&r, &n);
    assert_int_equal(n, AT_ETAG_LEN + 1 + 1 + 4 + 2);
    proxy_record d;
    char *copy;
    assert_int_equal(decode_copy(p, n, &d, &copy), 0);
    assert_record_equal(&d, &r);
    free(copy);
    free(p);
}

/* ---- decode refuses ----------------------------------------------------------------------- */

static void test_decode_refuses_fields(void **state)
{
    (void)state;
    fixture fx;
    response_record(&fx);
    size_t n;
    char *p = encoded(&fx.r, &n);
    char *q = malloc(n);
    assert_non_null(q);
    assert_int_equal(decodes(p, n), 0);

    for (int i = 0; i < 4; i++) { /* each byte of the magic */
        memcpy(q, p, n);
        q[i] ^= 0x20;
        assert_int_equal(decodes(q, n), -1);
    }
    static const unsigned char versions[] = {0, 2, 255};
    for (size_t i = 0; i < sizeof versions; i++) {
        memcpy(q, p, n);
        q[AT_VERSION] = (char)versions[i];
        assert_int_equal(decodes(q, n), -1);
    }
    static const unsigned char kinds[] = {0, 3, 255};
    for (size_t i = 0; i < sizeof kinds; i++) {
        memcpy(q, p, n);
        q[AT_KIND] = (char)kinds[i];
        assert_int_equal(decodes(q, n), -1);
    }
    memcpy(q, p, n);
    q[AT_KIND] = PROXY_RECORD_VARY; /* a known kind decodes */
    assert_int_equal(decodes(q, n), 0);

    static const struct {
        unsigned status;
        int rc;
    } statuses[] = {{0, -1}, {99, -1}, {100, 0}, {599, 0}, {600, -1}, {65535, -1}};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        memcpy(q, p, n);
        q[AT_STATUS] = (char)(statuses[i].status & 0xff);
        q[AT_STATUS + 1] = (char)(statuses[i].status >> 8);
        assert_int_equal(decodes(q, n), statuses[i].rc);
    }
    /* flags are kept in four bytes, only the low eight bits may be set */
    memcpy(q, p, n);
    q[AT_FLAGS + 1] = 1;
    assert_int_equal(decodes(q, n), -1);
    memcpy(q, p, n);
    q[AT_FLAGS + 3] = (char)0x80;
    assert_int_equal(decodes(q, n), -1);

    /* a head length past the end, a vary length past the end */
    memcpy(q, p, n);
    size_t at_head = n - fx.r.body_len - 2 - fx.r.head_len - 4;
    q[at_head + 3] = 0x7f;
    assert_int_equal(decodes(q, n), -1);
    memcpy(q, p, n);
    size_t at_vary = n - fx.r.body_len - 2;
    q[at_vary] = (char)(fx.r.body_len + 1);
    assert_int_equal(decodes(q, n), -1);
    /* a vary length within the bytes is the body's first bytes as vary: still a record */
    q[at_vary] = 3;
    proxy_record d;
    char *copy;
    assert_int_equal(decode_copy(q, n, &d, &copy), 0);
    assert_span(d.vary, d.vary_len, RESP_BODY, 3);
    assert_span(d.body, d.body_len, &RESP_BODY[3], strlen(RESP_BODY) - 3);
    free(copy);

    assert_int_equal(proxy_record_decode(NULL, 0, &d), -1);
    free(q);
    free(p);
}

/* Every prefix: cut before the body it is refused, cut inside the body it is the same record
 * with the body's first bytes. */
static void check_prefixes(const proxy_record *r)
{
    size_t n;
    char *p = encoded(r, &n);
    size_t body_at = n - r->body_len;
    for (size_t len = 0; len <= n; len++) {
        proxy_record d;
        char *copy;
        int rc = decode_copy(p, len, &d, &copy);
        if (len < body_at) {
            assert_int_equal(rc, -1);
        } else {
            assert_int_equal(rc, 0);
            assert_head_equal(&d, r);
            assert_span(d.body, d.body_len, r->body, len - body_at);
            if (len == body_at)
                assert_null(d.body);
        }
        free(copy);
    }
    free(p);
}

static void test_decode_every_prefix_refused_before_the_body(void **state)
{
    (void)state;
    fixture fx;
    response_record(&fx);
    check_prefixes(&fx.r);
    proxy_record v;
    vary_record(&v);
    check_prefixes(&v);
}

/* A record whose head bytes (same length as the valid one) are replaced by bad. */
static void check_bad_head(const char *bad, size_t len)
{
    char head[64];
    assert_true(len < sizeof head);
    memset(head, 'a', len);
    memcpy(head, "A:", 2);
    memcpy(head + len - 2, "\r\n", 2);
    assert_true(proxy_record_head_ok(head, len));
    proxy_record r;
    memset(&r, 0, sizeof r);
    r.kind = PROXY_RECORD_RESPONSE;
    r.status = r.facts.status = 200;
    r.head = head;
    r.head_len = len;
    r.body = "body";
    r.body_len = 4;
    size_t n;
    char *p = encoded(&r, &n);
    assert_int_equal(decodes(p, n), 0);
    memcpy(p + n - 4 - 2 - len, bad, len);
    assert_int_equal(decodes(p, n), -1);
    free(p);
}

#define BAD_HEAD(s) check_bad_head(s, sizeof s - 1)

static void test_decode_bad_head(void **state)
{
    (void)state;
    BAD_HEAD("A: b\n\n");       /* a bare LF ends the line */
    BAD_HEAD("A: b\r\nC: d\n"); /* ... on the last line */
    BAD_HEAD("A: b\rc\r\n");    /* a bare CR inside a value */
    BAD_HEAD("A: \0b\r\n");     /* a NUL in a value */
    BAD_HEAD("A\0: b\r\n");     /* a NUL in a name */
    BAD_HEAD("Abcd\r\n");       /* no ':' */
    BAD_HEAD("A b: c\r\n");     /* a space in the name */
    BAD_HEAD("A : c\r\n");      /* ... before the colon */
    BAD_HEAD(": abc\r\n");      /* an empty name */
    BAD_HEAD("A: b\r\n c\r\n"); /* obs-fold is not kept */
    BAD_HEAD("A: bcdefg");      /* no CRLF at the end */
    BAD_HEAD("A: bcdef\r");     /* half of one */
    BAD_HEAD("A: b\r\n\r\n");   /* an empty line */
    BAD_HEAD("(A): b\r\n");     /* a separator in the name */
}

/* A record with an ETag (which 0) or Last-Modified text (which 1) of len bytes of fill, a NUL
 * at nul_at unless it is -1, written by hand. */
static char *with_text(int which, size_t len, char fill, int nul_at, size_t *n)
{
    proxy_record r;
    memset(&r, 0, sizeof r);
    r.kind = PROXY_RECORD_RESPONSE;
    r.status = r.facts.status = 200;
    size_t base;
    char *p = encoded(&r, &base); /* both texts empty: their length bytes are 0 */
    *n = base + len;
    char *q = malloc(*n);
    assert_non_null(q);
    size_t at = AT_ETAG_LEN + (size_t)which;
    memcpy(q, p, at);
    q[at] = (char)len;
    memset(q + at + 1, fill, len);
    if (nul_at >= 0)
        q[at + 1 + nul_at] = '\0';
    memcpy(q + at + 1 + len, p + at + 1, base - at - 1);
    free(p);
    return q;
}

static void test_decode_texts(void **state)
{
    (void)state;
    static const struct {
        int which;
        size_t len;
        int nul_at, rc;
    } rows[] = {
        {0, 1, -1, 0},
        {0, HC_ETAG_MAX - 1, -1, 0},
        {0, HC_ETAG_MAX, -1, -1}, /* would not fit in hc_facts.etag with its NUL */
        {0, HC_ETAG_MAX + 1, -1, -1},
        {0, 255, -1, -1},
        {0, 5, 2, -1}, /* a NUL inside */
        {0, 5, 4, -1},
        {1, HC_DATE_TEXT_MAX - 1, -1, 0},
        {1, HC_DATE_TEXT_MAX, -1, -1},
        {1, 4, 0, -1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t n;
        char *q = with_text(rows[i].which, rows[i].len, 'x', rows[i].nul_at, &n);
        proxy_record d;
        char *copy;
        assert_int_equal(decode_copy(q, n, &d, &copy), rows[i].rc);
        if (rows[i].rc == 0) {
            const char *t = rows[i].which ? d.facts.last_mod_text : d.facts.etag;
            assert_int_equal(strlen(t), rows[i].len);
            size_t n2;
            char *p2 = encoded(&d, &n2);
            assert_int_equal(n2, n);
            assert_memory_equal(p2, q, n);
            free(p2);
        }
        free(copy);
        free(q);
    }
}

/* ---- encode refuses ----------------------------------------------------------------------- */

static void assert_refused(const proxy_record *r)
{
    char out[512];
    assert_int_equal(proxy_record_size(r), 0);
    assert_int_equal(proxy_record_encode(r, out, sizeof out), -1);
}

static void test_encode_refuses(void **state)
{
    (void)state;
    fixture fx;
    proxy_record r;

    response_record(&fx);
    r = fx.r;
    r.status = 304; /* facts.status says 200 */
    assert_refused(&r);
    r.facts.status = 304;
    assert_int_equal(proxy_record_encode(&r, NULL, 0), -1); /* valid, but no room */
    assert_true(proxy_record_size(&r) > 0);
    static const int statuses[] = {0, 99, 600, -200};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        r.status = r.facts.status = statuses[i];
        assert_refused(&r);
    }
    r = fx.r;
    r.kind = 0;
    assert_refused(&r);
    r.kind = 3;
    assert_refused(&r);
    r = fx.r;
    r.flags = 0x100;
    assert_refused(&r);

    r = fx.r;
    static const char *const bad_heads[] = {"A b: c\r\n", "A: b",      "A: b\n",
                                            "A: b\r\nC",  "A: \r\r\n", ":\r\n"};
    for (size_t i = 0; i < sizeof bad_heads / sizeof bad_heads[0]; i++) {
        r.head = bad_heads[i];
        r.head_len = strlen(bad_heads[i]);
        assert_refused(&r);
    }
    r.head = NULL; /* a length without bytes */
    r.head_len = 4;
    assert_refused(&r);
    r = fx.r;
    r.body = NULL;
    assert_refused(&r);

    /* the head and vary bounds */
    char *big = malloc(PROXY_RECORD_HEAD_MAX + 8);
    assert_non_null(big);
    r = fx.r;
    r.vary = big;
    memset(big, 'v', PROXY_RECORD_VARY_MAX + 1);
    r.vary_len = PROXY_RECORD_VARY_MAX + 1;
    assert_refused(&r);
    r.vary_len = PROXY_RECORD_VARY_MAX;
    assert_int_equal(proxy_record_size(&r), proxy_record_size(&fx.r) + PROXY_RECORD_VARY_MAX);
    r = fx.r;
    memset(big, 'h', PROXY_RECORD_HEAD_MAX + 8);
    memcpy(big, "X:", 2);
    memcpy(big + PROXY_RECORD_HEAD_MAX - 2, "\r\n", 2);
    r.head = big;
    r.head_len = PROXY_RECORD_HEAD_MAX;
    assert_true(proxy_record_size(&r) > PROXY_RECORD_HEAD_MAX);
    big[PROXY_RECORD_HEAD_MAX - 2] = 'h';
    memcpy(big + PROXY_RECORD_HEAD_MAX - 1, "\r\n", 2);
    r.head_len = PROXY_RECORD_HEAD_MAX + 1;
    assert_true(proxy_record_head_ok(r.head, r.head_len));
    assert_refused(&r);
    free(big);

    /* texts too long for the facts they come from (not NUL-terminated in their array) */
    r = fx.r;
    memset(r.facts.etag, 'e', sizeof r.facts.etag);
    assert_refused(&r);
    r = fx.r;
    memset(r.facts.last_mod_text, 'l', sizeof r.facts.last_mod_text);
    assert_refused(&r);

    /* cap: one byte short is refused and nothing is claimed written */
    size_t n = proxy_record_size(&fx.r);
    char *out = malloc(n);
    assert_non_null(out);
    for (size_t cap = 0; cap < n; cap += (cap < 8 || cap + 8 > n) ? 1 : 7)
        assert_int_equal(proxy_record_encode(&fx.r, out, cap), -1);
    assert_int_equal(proxy_record_encode(&fx.r, out, n), (long)n);
    free(out);
}

/* ---- header lines ------------------------------------------------------------------------- */

static void test_headers(void **state)
{
    (void)state;
    static const char head[] = "Content-Type: text/plain\r\n"
                               "Empty:\r\n"
                               "Empty-Sp: \r\n"
                               "Lead:    spaced\r\n"
                               "Tab:\t\t tabbed \r\n"
                               "X-Colon: a: b\r\n"
                               "Obs: caf\xc3\xa9\r\n";
    static const struct {
        const char *name, *value;
    } want[] = {{"Content-Type", "text/plain"},
                {"Empty", ""},
                {"Empty-Sp", ""},
                {"Lead", "spaced"},
                {"Tab", "tabbed "},
                {"X-Colon", "a: b"},
                {"Obs", "caf\xc3\xa9"}};
    const size_t count = sizeof want / sizeof want[0];
    proxy_record r;
    memset(&r, 0, sizeof r);
    r.head = head;
    r.head_len = sizeof head - 1;
    assert_true(proxy_record_head_ok(r.head, r.head_len));

    upstream_header h[16];
    char *buf = malloc(r.head_len); /* the head's own size is enough */
    assert_non_null(buf);
    assert_int_equal(proxy_record_headers(&r, h, 16, buf, r.head_len), (long)count);
    for (size_t i = 0; i < count; i++) {
        assert_string_equal(h[i].name, want[i].name);
        assert_string_equal(h[i].value, want[i].value);
        assert_true(h[i].name >= buf && h[i].value < buf + r.head_len);
    }
    assert_int_equal(proxy_record_headers(&r, h, count, buf, r.head_len), (long)count);
    assert_int_equal(proxy_record_headers(&r, h, count - 1, buf, r.head_len), -1);
    assert_int_equal(proxy_record_headers(&r, h, 0, buf, r.head_len), -1);
    assert_int_equal(proxy_record_headers(&r, h, 16, buf, r.head_len - 1), -1);
    assert_int_equal(proxy_record_headers(&r, h, 16, buf, 0), -1);
    free(buf);

    /* an empty head has no lines, whatever the room */
    memset(&r, 0, sizeof r);
    assert_int_equal(proxy_record_headers(&r, h, 0, NULL, 0), 0);

    /* a decoded record's head, split */
    fixture fx;
    response_record(&fx);
    size_t n;
    char *p = encoded(&fx.r, &n);
    proxy_record d;
    char *copy;
    assert_int_equal(decode_copy(p, n, &d, &copy), 0);
    char hb[1024];
    assert_int_equal(proxy_record_headers(&d, h, 16, hb, sizeof hb), 5);
    assert_string_equal(h[1].name, "ETag");
    assert_string_equal(h[1].value, "W/\"v1-abc\"");
    assert_string_equal(h[4].value, "text/plain");
    /* and written back, the same head */
    char back[1024];
    assert_int_equal(proxy_head_format(h, 5, back, sizeof back), (long)d.head_len);
    assert_memory_equal(back, d.head, d.head_len);
    free(copy);
    free(p);
}

static void test_head_format(void **state)
{
    (void)state;
    const upstream_header h[] = {{"Content-Type", "text/plain"}, {"X-Empty", ""}, {"A", "b: c"}};
    static const char want[] = "Content-Type: text/plain\r\nX-Empty: \r\nA: b: c\r\n";
    const long len = (long)sizeof want - 1;
    char out[128];
    assert_int_equal(proxy_head_format(h, 3, out, sizeof out), len);
    assert_memory_equal(out, want, (size_t)len);
    assert_int_equal(proxy_head_format(h, 3, out, (size_t)len), len);
    assert_int_equal(proxy_head_format(h, 3, out, (size_t)len - 1), -1);
    assert_int_equal(proxy_head_format(h, 0, NULL, 0), 0);
    assert_int_equal(proxy_head_format(h, 1, out, 0), -1);

    /* what cannot be a header line */
    static const upstream_header bad[] = {
        {"X", "a\rb"},     {"X", "a\nb"}, {"X", "a\r"}, {"X", "a\n"},
        {"Bad Name", "v"}, {"", "v"},     {"N(", "v"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(proxy_head_format(&bad[i], 1, out, sizeof out), -1);
}

/* A value with "\r\n" inside wrote a second, well-formed line, which the whole-head check let
 * through: a header injected into every answer from the cache. */
static void test_head_format_refuses_crlf_in_value(void **state)
{
    (void)state;
    char out[128];
    const upstream_header h[] = {{"X-Note", "a\r\nSet-Cookie: session=evil"}};
    assert_int_equal(proxy_head_format(h, 1, out, sizeof out), -1);
    const upstream_header two[] = {{"A", "b"}, {"X", "c\r\nLocation: /elsewhere"}};
    assert_int_equal(proxy_head_format(two, 2, out, sizeof out), -1);
}

/* A name with ':' in it wrote a line that reads as another name and value ("a:b: c" is a, "b:
 * c"), which proxy_record_headers then split differently from what was given. */
static void test_head_format_refuses_colon_in_name(void **state)
{
    (void)state;
    char out[128];
    static const upstream_header bad[] = {{"a:b", "c"}, {"Host:", "x"}, {":", "x"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(proxy_head_format(&bad[i], 1, out, sizeof out), -1);
}

static void test_head_ok(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len;
        int ok;
    } rows[] = {
        {"", 0, 1},
        {"A: b\r\n", 6, 1},
        {"A:\r\n", 4, 1},
        {"A:b\r\nC:  d \r\n", 13, 1},
        {"A: \t\x80\xff\r\n", 8, 1}, /* tab and obs-text in a value */
        {"!#$%&'*+-.^_`|~09az: v\r\n", 24, 1},
        {"A: b\r\n", 5, 0}, /* cut inside the CRLF */
        {"A: b", 4, 0},
        {"A", 1, 0},
        {"A:", 2, 0},
        {"\r\n", 2, 0},
        {":\r\n", 3, 0},
        {"A b: c\r\n", 8, 0},
        {"A\t: c\r\n", 7, 0},
        {"A: b\n", 5, 0},
        {"A: b\r\r\n", 7, 0},
        {"A: \0\r\n", 6, 0},
        {"A\"B: c\r\n", 8, 0},
        {"\x80: c\r\n", 6, 0},
        {"A: b\r\n\r\n", 8, 0},
    };
    assert_true(proxy_record_head_ok(NULL, 0));
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        /* an exact-size copy: no NUL after the bytes */
        char *s = malloc(rows[i].len ? rows[i].len : 1);
        assert_non_null(s);
        memcpy(s, rows[i].s, rows[i].len);
        if (proxy_record_head_ok(s, rows[i].len) != rows[i].ok)
            fail_msg("row %zu: \"%s\" should be %s", i, rows[i].s, rows[i].ok ? "ok" : "refused");
        free(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_response),
        cmocka_unit_test(test_round_trip_error_flag),
        cmocka_unit_test(test_round_trip_vary),
        cmocka_unit_test(test_minimal),
        cmocka_unit_test(test_decode_refuses_fields),
        cmocka_unit_test(test_decode_every_prefix_refused_before_the_body),
        cmocka_unit_test(test_decode_bad_head),
        cmocka_unit_test(test_decode_texts),
        cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_head_format),
        cmocka_unit_test(test_head_format_refuses_crlf_in_value),
        cmocka_unit_test(test_head_format_refuses_colon_in_name),
        cmocka_unit_test(test_head_ok),
    };
    return cmocka_run_group_tests_name("proxy_record", tests, NULL, NULL);
}
