/* http_cache.c: a response's cache facts, a request's cache directives, and the decisions of a
 * shared cache on them: may it be stored (RFC 9111 §3), how fresh is it (§4.2), may it answer a
 * request and how (§4, RFC 5861).
 *
 * The facts are computed once per response (hc_facts_compute) so a hit pays for no header
 * parsing: hc_decide reads integers and flags only. Every time is a parameter. Where the RFCs
 * leave the cache a choice, the choice is written beside the code and in docs/architecture.md
 * ("HTTP caching rules (RFC 9111)"). */
#include <string.h>
#include <strings.h>

#include "proxy/http_cache_internal.h"

#define THIRTY_DAYS (30LL * 86400) /* the entry's longest grace / stale-if-error (l1.h) */

static int64_t sat(int64_t v)
{
    return v < 0 ? 0 : v > HC_MAX_DELTA ? HC_MAX_DELTA : v;
}

int hc_status_heuristic(int status)
{
    switch (status) {
    case 200:
    case 203:
    case 204:
    case 206:
    case 300:
    case 301:
    case 308:
    case 404:
    case 405:
    case 410:
    case 414:
    case 501:
        return 1;
    }
    return 0;
}

/* The final statuses this cache knows how to reuse (§3: "understands the status code"). 206 is
 * left out (no range combination here), 304 only updates a stored response. */
static int status_understood(int status)
{
    switch (status) {
    case 302:
    case 303:
    case 307:
        return 1;
    case 206:
        return 0;
    }
    return hc_status_heuristic(status);
}

/* Every line of a field, and whether they all say the same thing. Returns the first value, or
 * NULL; *lines is how many there were. */
static const char *field_lines(const upstream_header *h, size_t n, const char *name, int *lines,
                               int *same)
{
    const char *first = NULL;
    *lines = 0;
    *same = 1;
    for (size_t i = 0; i < n; i++) {
        if (!h[i].name || !h[i].value || strcasecmp(h[i].name, name) != 0)
            continue;
        if (!first)
            first = h[i].value;
        else if (strcmp(first, h[i].value) != 0)
            *same = 0;
        (*lines)++;
    }
    return first;
}

static void copy_trimmed(const char *v, char *dst, size_t cap, int *fits)
{
    const char *p = v, *end = v + strlen(v);
    while (p < end && hc__ows(*p))
        p++;
    while (end > p && hc__ows(end[-1]))
        end--;
    size_t len = (size_t)(end - p);
    *fits = len < cap;
    if (*fits) {
        memcpy(dst, p, len);
        dst[len] = '\0';
    } else {
        dst[0] = '\0';
    }
}

static void read_vary(const upstream_header *h, size_t n, hc_facts *f)
{
    hc__span seen[HC_MAX_VARY];
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        if (!h[i].name || !h[i].value || strcasecmp(h[i].name, "vary") != 0)
            continue;
        const char *p = h[i].value, *end = p + strlen(p);
        hc__span e;
        while (hc__list_next(&p, end, &e)) {
            if (e.len == 1 && e.p[0] == '*') {
                f->flags |= HC_F_VARY_STAR;
                continue;
            }
            int dup = 0;
            for (int k = 0; k < count && !dup; k++)
                dup = seen[k].len == e.len && strncasecmp(seen[k].p, e.p, e.len) == 0;
            if (dup)
                continue;
            if (count == HC_MAX_VARY) {
                f->flags |= HC_F_VARY_TOO_MANY;
                continue;
            }
            seen[count++] = e;
        }
    }
    if (count > 0)
        f->flags |= HC_F_VARY;
}

static int64_t heuristic(const hc_facts *f, const hc_options *opt)
{
    unsigned pct = opt && opt->heuristic_percent ? opt->heuristic_percent : 10;
    int64_t cap = opt && opt->heuristic_max ? opt->heuristic_max : 86400;
    if (cap < 0 || !(f->flags & HC_F_LAST_MODIFIED) || f->date <= f->last_mod)
        return 0;
    int64_t since = f->date - f->last_mod;
    int64_t life = since / 100 * (int64_t)pct + since % 100 * (int64_t)pct / 100;
    return life > cap ? cap : life;
}

int hc_facts_compute(int status, const upstream_header *h, size_t n, int64_t request_time,
                     int64_t response_time, const hc_options *opt, hc_facts *f)
{
    if (!f || (!h && n))
        return HC_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!h[i].name || !h[i].value)
            return HC_EINVAL;
    memset(f, 0, sizeof *f);
    f->status = status;
    f->request_time = request_time;
    f->response_time = response_time;
    hc_cc_from_headers(h, n, &f->cc);

    int lines, same, fits;
    int64_t t;
    const char *v = field_lines(h, n, "date", &lines, &same);
    f->date = response_time; /* RFC 9110 §6.6.1: no Date, the time it was received */
    if (v && hc_date_parse(v, strlen(v), response_time, &t) == 0) {
        f->date = t;
        f->flags |= HC_F_DATE;
    }
    v = field_lines(h, n, "expires", &lines, &same);
    if (v) {
        f->flags |= HC_F_EXPIRES;
        /* an invalid date, "0" among them, is in the past (§5.3); two different Expires lines
         * are "invalid freshness information" (§4.2.1): stale as well */
        if (!same || hc_date_parse(v, strlen(v), response_time, &t) != 0)
            f->flags |= HC_F_EXPIRES_BAD;
        else
            f->expires = t;
    }
    v = field_lines(h, n, "last-modified", &lines, &same);
    if (v && hc_date_parse(v, strlen(v), response_time, &t) == 0) {
        f->last_mod = t;
        f->flags |= HC_F_LAST_MODIFIED;
        copy_trimmed(v, f->last_mod_text, sizeof f->last_mod_text, &fits);
        if (!fits)
            hc_date_format(t, f->last_mod_text, sizeof f->last_mod_text);
    }
    v = field_lines(h, n, "etag", &lines, &same);
    hc_etag e;
    if (v && hc_etag_parse(v, strlen(v), &e) == 0) {
        copy_trimmed(v, f->etag, sizeof f->etag, &fits);
        if (fits)
            f->flags |= HC_F_ETAG | (e.weak ? HC_F_ETAG_WEAK : 0);
    }
    v = field_lines(h, n, "age", &lines, &same);
    if (v) {
        const char *p = v, *end = v + strlen(v);
        while (p < end && hc__ows(*p))
            p++;
        while (end > p && hc__ows(end[-1]))
            end--;
        if (hc__delta(p, (size_t)(end - p), &t) == 0)
            f->age = t;
        else
            f->flags |= HC_F_AGE_BAD; /* §5.1: not delta-seconds, ignored */
    }
    read_vary(h, n, f);

    /* §4.2.1, for a shared cache: s-maxage, max-age, Expires, heuristic. */
    uint32_t cc = f->cc.flags;
    if (cc & (HC_CC_S_MAXAGE | HC_CC_MAX_AGE | HC_CC_INVALID_FRESHNESS) || f->flags & HC_F_EXPIRES)
        f->flags |= HC_F_EXPLICIT;
    if (cc & HC_CC_INVALID_FRESHNESS)
        f->lifetime = 0;
    else if (cc & HC_CC_S_MAXAGE)
        f->lifetime = f->cc.s_maxage;
    else if (cc & HC_CC_MAX_AGE)
        f->lifetime = f->cc.max_age;
    else if (f->flags & HC_F_EXPIRES)
        f->lifetime = (f->flags & HC_F_EXPIRES_BAD) ? 0 : sat(f->expires - f->date);
    else if (hc_status_heuristic(status) || (cc & HC_CC_PUBLIC)) {
        f->lifetime = heuristic(f, opt);
        f->flags |= HC_F_HEURISTIC;
    }

    /* §4.2.3 */
    int64_t apparent_age = sat(response_time - f->date);
    int64_t response_delay = sat(response_time - request_time);
    int64_t corrected_age_value = sat(f->age + response_delay);
    f->corrected_initial_age =
        apparent_age > corrected_age_value ? apparent_age : corrected_age_value;
    return 0;
}

int64_t hc_current_age(const hc_facts *f, int64_t now)
{
    int64_t resident = now - f->response_time;
    return sat(f->corrected_initial_age + (resident > 0 ? resident : 0));
}

int64_t hc_ttl(const hc_facts *f, int64_t now)
{
    return f->lifetime - hc_current_age(f, now);
}

int hc_is_fresh(const hc_facts *f, int64_t now)
{
    return f->lifetime > hc_current_age(f, now);
}

/* ---- requests ----------------------------------------------------------------------------- */

int hc_method_of(const char *m)
{
    static const struct {
        const char *name;
        int method;
    } methods[] = {{"GET", HC_M_GET},         {"HEAD", HC_M_HEAD},     {"POST", HC_M_POST},
                   {"PUT", HC_M_PUT},         {"DELETE", HC_M_DELETE}, {"PATCH", HC_M_PATCH},
                   {"OPTIONS", HC_M_OPTIONS}, {"TRACE", HC_M_TRACE}};
    for (size_t i = 0; m && i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(m, methods[i].name) == 0)
            return methods[i].method;
    return HC_M_OTHER;
}

int hc_method_safe(int method)
{
    return method == HC_M_GET || method == HC_M_HEAD || method == HC_M_OPTIONS ||
           method == HC_M_TRACE;
}

int hc_request_parse(const char *method, const upstream_header *h, size_t n, hc_request *rq)
{
    if (!rq || (!h && n))
        return HC_EINVAL;
    memset(rq, 0, sizeof *rq);
    rq->method = hc_method_of(method);
    if (hc_cc_from_headers(h, n, &rq->cc))
        rq->flags |= HC_RQ_CC;
    for (size_t i = 0; i < n; i++) {
        const char *name = h[i].name, *v = h[i].value;
        if (!name || !v)
            return HC_EINVAL;
        if (strcasecmp(name, "authorization") == 0)
            rq->flags |= HC_RQ_AUTHORIZATION;
        else if (strcasecmp(name, "if-none-match") == 0 ||
                 strcasecmp(name, "if-modified-since") == 0 || strcasecmp(name, "if-match") == 0 ||
                 strcasecmp(name, "if-unmodified-since") == 0)
            rq->flags |= HC_RQ_CONDITIONAL;
        else if (strcasecmp(name, "range") == 0)
            rq->flags |= HC_RQ_RANGE;
        else if (strcasecmp(name, "pragma") == 0 && !(rq->flags & HC_RQ_CC)) {
            const char *p = v, *end = v + strlen(v);
            hc__span e;
            while (hc__list_next(&p, end, &e))
                if (hc__ieq(e.p, e.len, "no-cache"))
                    rq->flags |= HC_RQ_PRAGMA_NO_CACHE;
        }
    }
    return 0;
}

/* ---- storing ------------------------------------------------------------------------------ */

int hc_storable(const hc_request *rq, const hc_facts *f)
{
    uint32_t cc = f->cc.flags;
    if (!rq || rq->method != HC_M_GET)
        return HC_STORE_METHOD;
    if (!status_understood(f->status))
        return HC_STORE_STATUS;
    if (rq->cc.flags & HC_CC_NO_STORE)
        return HC_STORE_REQUEST_NO_STORE;
    /* §5.2.2.3: must-understand with a status the cache understands overrides no-store */
    if ((cc & HC_CC_NO_STORE) && !(cc & HC_CC_MUST_UNDERSTAND))
        return HC_STORE_NO_STORE;
    if (cc & HC_CC_PRIVATE)
        return HC_STORE_PRIVATE;
    if ((rq->flags & HC_RQ_AUTHORIZATION) &&
        !(cc & (HC_CC_PUBLIC | HC_CC_S_MAXAGE | HC_CC_MUST_REVALIDATE)))
        return HC_STORE_AUTHORIZATION;
    if (!(cc & (HC_CC_PUBLIC | HC_CC_S_MAXAGE | HC_CC_MAX_AGE)) && !(f->flags & HC_F_EXPIRES) &&
        !hc_status_heuristic(f->status))
        return HC_STORE_NO_FRESHNESS;
    if (f->flags & HC_F_VARY_STAR)
        return HC_STORE_VARY_STAR;
    if (f->flags & HC_F_VARY_TOO_MANY)
        return HC_STORE_VARY_TOO_MANY;
    return HC_STORE_OK;
}

const char *hc_store_reason_text(int reason)
{
    static const char *const text[] = {
#define HC_SR_TEXT_(name, msg) msg,
        HC_STORE_REASONS(HC_SR_TEXT_)
#undef HC_SR_TEXT_
    };
    if (reason < 0 || (size_t)reason >= sizeof text / sizeof text[0])
        return "unknown reason";
    return text[reason];
}

/* ---- reusing ------------------------------------------------------------------------------ */

const char *hc_outcome_name(int outcome)
{
    static const char *const names[] = {
#define HC_OUT_NAME_(name, msg) #name,
        HC_OUTCOMES(HC_OUT_NAME_)
#undef HC_OUT_NAME_
    };
    if (outcome < 0 || (size_t)outcome >= sizeof names / sizeof names[0])
        return "UNKNOWN";
    return names[outcome];
}

static int decide_stored(const hc_request *rq, const hc_facts *f, int64_t now)
{
    static const hc_cc none;
    const hc_cc *rcc = rq ? &rq->cc : &none;
    uint32_t cc = f->cc.flags, rf = rcc->flags;
    int64_t age = hc_current_age(f, now), life = f->lifetime;
    int fresh = life > age;

    /* §5.2.2.4: no-cache in the response, §5.2.1.4 in the request (or Pragma, §5.4) */
    if ((cc & HC_CC_NO_CACHE) || (rf & HC_CC_NO_CACHE) ||
        (rq && (rq->flags & HC_RQ_PRAGMA_NO_CACHE)))
        return HC_MUST_REVALIDATE;
    /* §5.2.1.1: an invalid request max-age is read as 0, the most restrictive */
    if (rf & HC_CC_MAX_AGE) {
        int64_t max_age = (rf & HC_CC_INVALID_FRESHNESS) ? 0 : rcc->max_age;
        /* RFC 8246: a fresh immutable response is not revalidated on a reload's max-age=0 */
        if (age > max_age && !(fresh && (cc & HC_CC_IMMUTABLE)))
            return HC_MUST_REVALIDATE;
    }
    if (fresh) {
        /* §5.2.1.3 */
        if ((rf & HC_CC_MIN_FRESH) && life - age < rcc->min_fresh)
            return HC_MUST_REVALIDATE;
        return HC_FRESH;
    }
    int64_t staleness = age - life;
    /* §4.2.4, §5.2.2.2, §5.2.2.8: never served stale without validation */
    if (cc & (HC_CC_MUST_REVALIDATE | HC_CC_PROXY_REVALIDATE))
        return HC_MUST_REVALIDATE;
    /* §5.2.1.2; s-maxage implies proxy-revalidate (§5.2.2.10): a client's max-stale does not
     * override it */
    if (!(cc & HC_CC_S_MAXAGE)) {
        if (rf & HC_CC_MAX_STALE_ANY)
            return HC_STALE_ALLOWED;
        if ((rf & HC_CC_MAX_STALE) && staleness <= rcc->max_stale)
            return HC_STALE_ALLOWED;
    }
    /* RFC 5861 §3: the origin's own window; not when the client asked for an age or a
     * freshness it cannot have */
    if ((cc & HC_CC_SWR) && staleness <= f->cc.swr && !(rf & (HC_CC_MAX_AGE | HC_CC_MIN_FRESH)))
        return HC_STALE_REVALIDATE_IN_BACKGROUND;
    return HC_MUST_REVALIDATE;
}

int hc_decide(const hc_request *rq, const hc_facts *f, int64_t now)
{
    int only_if_cached = rq && (rq->cc.flags & HC_CC_ONLY_IF_CACHED);
    if (!f)
        return only_if_cached ? HC_ONLY_IF_CACHED_MISS : HC_MISS;
    int r = decide_stored(rq, f, now);
    /* §5.2.1.7: answer with a stored response or 504, never contact the origin */
    if (r == HC_MUST_REVALIDATE && only_if_cached)
        return HC_ONLY_IF_CACHED_MISS;
    return r;
}

int hc_decide_on_error(const hc_request *rq, const hc_facts *f, int origin_status, int64_t now)
{
    if (!f)
        return HC_ERROR;
    if (origin_status != 0 && origin_status != 500 && origin_status != 502 &&
        origin_status != 503 && origin_status != 504)
        return HC_ERROR;
    /* RFC 9111 §4.2.4 beats RFC 5861's "regardless of other freshness information": the
     * origin's explicit must-revalidate, proxy-revalidate and no-cache forbid it */
    if (f->cc.flags & (HC_CC_MUST_REVALIDATE | HC_CC_PROXY_REVALIDATE | HC_CC_NO_CACHE))
        return HC_ERROR;
    int64_t window = -1;
    if (f->cc.flags & HC_CC_SIE)
        window = f->cc.sie;
    if (rq && (rq->cc.flags & HC_CC_SIE) && rq->cc.sie > window)
        window = rq->cc.sie;
    int64_t staleness = hc_current_age(f, now) - f->lifetime;
    if (window < 0 || staleness > window)
        return HC_ERROR;
    return HC_STALE_IF_ERROR_ALLOWED;
}

void hc_entry_times_of(const hc_facts *f, int64_t now, int64_t keep_stale, hc_entry_times *out)
{
    int64_t left = hc_ttl(f, now);
    int no_stale =
        (f->cc.flags & (HC_CC_MUST_REVALIDATE | HC_CC_PROXY_REVALIDATE | HC_CC_NO_CACHE)) != 0;
    int64_t grace = (!no_stale && (f->cc.flags & HC_CC_SWR)) ? f->cc.swr : 0;
    int64_t sie = (!no_stale && (f->cc.flags & HC_CC_SIE)) ? f->cc.sie : 0;
    if (keep_stale > sie && (f->flags & (HC_F_ETAG | HC_F_LAST_MODIFIED)))
        sie = keep_stale;
    out->ttl_ms = left > 0 ? (uint64_t)left * 1000 : 1;
    out->grace_ms = (uint64_t)(grace > THIRTY_DAYS ? THIRTY_DAYS : grace) * 1000;
    out->stale_if_error_ms = (uint64_t)(sie > THIRTY_DAYS ? THIRTY_DAYS : sie) * 1000;
}
