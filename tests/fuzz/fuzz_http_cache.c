/* fuzz_http_cache.c: the HTTP cache rules (src/server/proxy/http_cache*.c) on arbitrary headers.
 *
 * Cache-Control, dates, ETags and Vary come from origins and clients. The span parsers are fed
 * an exact-size heap copy without a NUL, so ASan sees any read past the input. The same bytes,
 * cut into "name: value" lines, are then a response and a request: every decision must run, and
 * the results must agree with each other: a lifetime is never negative, what is FRESH is fresh,
 * a no-store response is not storable, Vary: * is never a key, the same request gives the same
 * key twice, a formatted date parses back to itself, the headers kept are a subset of the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/http_cache.h"
#include "fuzz_check.h"

#define T0     784111777LL
#define MAX_H  64
#define KEYCAP 1024

static void spans(const uint8_t *data, size_t size)
{
    char *s = malloc(size ? size : 1);
    if (!s)
        return;
    memcpy(s, data, size);

    hc_cc cc;
    hc_cc_init(&cc);
    hc_cc_parse(&cc, s, size);
    if ((cc.flags & HC_CC_MAX_AGE) && !(cc.flags & HC_CC_INVALID_FRESHNESS))
        CHECK(cc.max_age >= 0 && cc.max_age <= HC_MAX_DELTA);
    if (cc.flags & HC_CC_SWR)
        CHECK(cc.swr >= 0 && cc.swr <= HC_MAX_DELTA);

    int64_t t;
    if (hc_date_parse(s, size, T0, &t) == 0) {
        char buf[HC_DATE_LEN + 1];
        int64_t back;
        if (hc_date_format(t, buf, sizeof buf) == HC_DATE_LEN) {
            CHECK(hc_date_parse(buf, HC_DATE_LEN, T0, &back) == 0);
            CHECK(back == t);
        }
    }
    hc_etag e;
    if (hc_etag_parse(s, size, &e) == 0) {
        CHECK(e.opaque >= s && e.opaque + e.len <= s + size);
        CHECK(hc_etag_weak_eq(&e, &e));
        CHECK(hc_etag_strong_eq(&e, &e) == !e.weak);
    }
    free(s);
}

/* "name: value" lines, NUL-terminated in buf. */
static size_t lines(char *buf, upstream_header *h)
{
    size_t n = 0;
    char *p = buf;
    while (*p && n < MAX_H) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        char *colon = strchr(p, ':');
        if (colon) {
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ')
                v++;
            h[n++] = (upstream_header){p, v};
        }
        if (!nl)
            break;
        p = nl + 1;
    }
    return n;
}

static void decisions(const uint8_t *data, size_t size)
{
    if (size < 4)
        return;
    int status = 100 + (data[0] % 5) * 100 + data[1] % 20; /* 1xx..5xx, a few codes each */
    int64_t after = (int64_t)(data[2] * 7) - 100;          /* now from before to after */
    int method = data[3] % (HC_M_OTHER + 1);
    const uint8_t c0 = data[0], c1 = data[1];
    data += 4;
    size -= 4;
    char *buf = malloc(size + 1);
    if (!buf)
        return;
    memcpy(buf, data, size);
    buf[size] = '\0';
    upstream_header h[MAX_H];
    size_t n = lines(buf, h);
    static const char *const names[] = {"GET",   "HEAD",    "POST",  "PUT",  "DELETE",
                                        "PATCH", "OPTIONS", "TRACE", "PURGE"};
    int64_t now = T0 + after;

    hc_facts f;
    hc_request rq;
    CHECK(hc_facts_compute(status, h, n, T0 - 1, T0, NULL, &f) == 0);
    CHECK(hc_request_parse(names[method], h, n, &rq) == 0);
    CHECK(f.lifetime >= 0 && f.lifetime <= HC_MAX_DELTA);
    CHECK(f.corrected_initial_age >= 0);
    CHECK(hc_current_age(&f, now) >= 0);
    CHECK(strlen(f.etag) < HC_ETAG_MAX && strlen(f.last_mod_text) < HC_DATE_TEXT_MAX);

    int store = hc_storable(&rq, &f);
    CHECK(hc_store_reason_text(store) != NULL);
    if ((f.cc.flags & HC_CC_NO_STORE) && !(f.cc.flags & HC_CC_MUST_UNDERSTAND))
        CHECK(store != HC_STORE_OK);
    if (f.cc.flags & HC_CC_PRIVATE)
        CHECK(store != HC_STORE_OK);
    if (store == HC_STORE_OK)
        CHECK(rq.method == HC_M_GET && !(f.flags & HC_F_VARY_STAR));

    int d = hc_decide(&rq, &f, now);
    CHECK(strcmp(hc_outcome_name(d), "UNKNOWN") != 0);
    if (d == HC_FRESH)
        CHECK(hc_is_fresh(&f, now) && !(f.cc.flags & HC_CC_NO_CACHE));
    if (d == HC_STALE_ALLOWED || d == HC_STALE_REVALIDATE_IN_BACKGROUND)
        CHECK(!hc_is_fresh(&f, now) &&
              !(f.cc.flags & (HC_CC_MUST_REVALIDATE | HC_CC_PROXY_REVALIDATE | HC_CC_NO_CACHE)));
    if (d == HC_ONLY_IF_CACHED_MISS)
        CHECK(rq.cc.flags & HC_CC_ONLY_IF_CACHED);
    int e = hc_decide_on_error(&rq, &f, c0 % 2 ? 503 : 0, now);
    CHECK(e == HC_ERROR || e == HC_STALE_IF_ERROR_ALLOWED);
    if (e == HC_STALE_IF_ERROR_ALLOWED)
        CHECK(!(f.cc.flags & (HC_CC_MUST_REVALIDATE | HC_CC_PROXY_REVALIDATE | HC_CC_NO_CACHE)));
    hc_entry_times et;
    hc_entry_times_of(&f, now, 60, &et);
    CHECK(et.ttl_ms > 0);

    /* the same request twice gives the same key */
    char k1[KEYCAP], k2[KEYCAP];
    size_t l1 = 0, l2 = 0;
    int r1 = hc_vary_key(h, n, h, n, k1, sizeof k1, &l1);
    int r2 = hc_vary_key(h, n, h, n, k2, sizeof k2, &l2);
    CHECK(r1 == r2);
    if (r1 == HC_OK) {
        CHECK(l1 == l2 && l1 <= sizeof k1 && memcmp(k1, k2, l1) == 0);
        CHECK(l1 == 0 || k1[l1 - 1] == '\n');
    }
    if (r1 == HC_VARY_NEVER)
        CHECK(f.flags & HC_F_VARY_STAR);

    upstream_header out[MAX_H * 2];
    int kept = hc_headers_to_store(h, n, out, MAX_H);
    CHECK(kept == HC_ETOOMANY || (kept >= 0 && (size_t)kept <= n));
    for (int i = 0; i < kept; i++) {
        int found = 0;
        for (size_t j = 0; j < n && !found; j++)
            found = out[i].name == h[j].name && out[i].value == h[j].value;
        CHECK(found);
    }
    int merged = hc_merge_304(h, n, h, n, out, MAX_H * 2);
    CHECK(merged == HC_ETOOMANY || (merged >= 0 && (size_t)merged <= 2 * n));
    upstream_header v[2];
    CHECK(hc_validators(&f, v, 2) >= 0);
    CHECK(hc_304_selects(&f, &f) == 1); /* a response always selects itself */
    int c = hc_client_conditional(h, n, rq.method, &f, now);
    CHECK(c == HC_COND_FULL || c == HC_COND_NOT_MOD || c == HC_COND_FAILED);

    const char *uris[3];
    char ubuf[4096];
    const char *loc = NULL, *cl = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(h[i].name, "location") == 0)
            loc = h[i].value;
        else if (strcasecmp(h[i].name, "content-location") == 0)
            cl = h[i].value;
    }
    int u = hc_invalidations(rq.method, status, "http", "api:8080", "/a/b?c", loc, cl, uris, ubuf,
                             sizeof ubuf);
    CHECK(u >= 0 && u <= 3);
    for (int i = 0; i < u; i++)
        CHECK(uris[i][0] == '/' && uris[i] >= ubuf && uris[i] < ubuf + sizeof ubuf);

    char cs[256];
    hc_cache_status st = {.xcache = c0 % 7,
                          .fwd = c1 % 8,
                          .fwd_status = status,
                          .has_ttl = 1,
                          .ttl = hc_ttl(&f, now),
                          .detail = n ? h[0].value : NULL};
    int len = hc_cache_status_format(&st, cs, sizeof cs);
    CHECK(len == HC_ENOSPACE || (len > 0 && (size_t)len == strlen(cs)));
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    spans(data, size);
    decisions(data, size);
    return 0;
}
