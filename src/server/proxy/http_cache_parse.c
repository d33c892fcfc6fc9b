/* http_cache_parse.c: the field parsers of the HTTP cache rules: Cache-Control, HTTP dates,
 * entity tags, lists and delta-seconds.
 *
 * Everything reads a (pointer, length) span and never past it: the values come from origins and
 * clients, and a header value is not trusted to be NUL-terminated where it is a span of a larger
 * buffer. The parsers are tolerant where RFC 9110/9111 ask recipients to be (case, whitespace,
 * quoted arguments, empty list elements, obsolete date forms) and strict where a lenient reading
 * would make a response look fresher than it is (a bad max-age is "stale", not "absent"). */
#include <string.h>
#include <strings.h>

#include "proxy/http_cache_internal.h"

/* ---- small helpers ------------------------------------------------------------------------ */

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

int hc__ows(char c)
{
    return c == ' ' || c == '\t';
}

static int digit(char c)
{
    return c >= '0' && c <= '9';
}

int hc__ieq(const char *s, size_t len, const char *lit)
{
    size_t i = 0;
    for (; i < len; i++)
        if (lit[i] == '\0' || lower(s[i]) != lit[i])
            return 0;
    return lit[i] == '\0';
}

const char *hc__header(const upstream_header *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (h[i].name && h[i].value && strcasecmp(h[i].name, name) == 0)
            return h[i].value;
    return NULL;
}

int hc__span_listed(const char *name, const hc__span *list, int count)
{
    size_t len = strlen(name);
    for (int i = 0; i < count; i++)
        if (list[i].len == len && strncasecmp(list[i].p, name, len) == 0)
            return 1;
    return 0;
}

/* Past a quoted string starting at p (on its '"'): after the closing quote, or end when it is
 * unterminated. A backslash escapes the next byte (quoted-pair). */
static const char *skip_quoted(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\') {
            if (++p >= end)
                return end;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return end;
}

int hc__list_next(const char **pp, const char *end, hc__span *out)
{
    const char *p = *pp;
    for (;;) {
        while (p < end && (hc__ows(*p) || *p == ','))
            p++;
        if (p >= end) {
            *pp = p;
            return 0;
        }
        const char *start = p;
        while (p < end && *p != ',')
            p = (*p == '"') ? skip_quoted(p, end) : p + 1;
        const char *stop = p;
        while (stop > start && hc__ows(stop[-1]))
            stop--;
        *pp = p;
        if (stop > start) {
            out->p = start;
            out->len = (size_t)(stop - start);
            return 1;
        }
    }
}

int hc__directive_next(const char **pp, const char *end, hc__span *name, hc__span *arg,
                       int *has_arg)
{
    const char *p = *pp;
    for (;;) {
        while (p < end && (hc__ows(*p) || *p == ','))
            p++;
        if (p >= end) {
            *pp = p;
            return 0;
        }
        const char *start = p;
        while (p < end && *p != '=' && *p != ',' && !hc__ows(*p) && *p != '"')
            p++;
        name->p = start;
        name->len = (size_t)(p - start);
        arg->p = p;
        arg->len = 0;
        *has_arg = 0;
        while (p < end && hc__ows(*p))
            p++;
        if (p < end && *p == '=') {
            p++;
            while (p < end && hc__ows(*p))
                p++;
            *has_arg = 1;
            if (p < end && *p == '"') {
                const char *q = skip_quoted(p, end);
                arg->p = p + 1;
                /* without the closing quote when there is one */
                arg->len = (size_t)(q - (p + 1)) - ((q > p + 1 && q[-1] == '"') ? 1 : 0);
                p = q;
            } else {
                const char *a = p;
                while (p < end && *p != ',' && !hc__ows(*p) && *p != '"')
                    p++;
                arg->p = a;
                arg->len = (size_t)(p - a);
            }
        }
        /* anything else up to the next comma is garbage: skipped, quotes respected */
        int garbage = 0;
        while (p < end && *p != ',') {
            if (!hc__ows(*p))
                garbage = 1;
            p = (*p == '"') ? skip_quoted(p, end) : p + 1;
        }
        *pp = p;
        if (name->len == 0)
            continue; /* "=5" or a stray quoted string: not a directive */
        if (garbage && *has_arg) {
            /* "max-age=5 6": the argument is not what the directive says; make it unreadable
             * so a numeric directive is treated as invalid rather than as 5 */
            arg->len = (size_t)(p - arg->p);
        }
        return 1;
    }
}

int hc__delta(const char *s, size_t len, int64_t *out)
{
    if (len == 0)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!digit(s[i]))
            return -1;
        if (v < HC_MAX_DELTA)
            v = v * 10 + (s[i] - '0');
    }
    *out = v > HC_MAX_DELTA ? HC_MAX_DELTA : v;
    return 0;
}

/* ---- Cache-Control ------------------------------------------------------------------------ */

void hc_cc_init(hc_cc *cc)
{
    memset(cc, 0, sizeof *cc);
}

/* A directive whose argument is delta-seconds and is required. Returns 1 when read. */
static int read_delta(hc_cc *cc, uint32_t flag, int64_t *slot, const hc__span *arg, int has_arg,
                      int freshness)
{
    int64_t v;
    if (!has_arg || hc__delta(arg->p, arg->len, &v) != 0) {
        if (freshness)
            cc->flags |= HC_CC_INVALID_FRESHNESS | flag;
        return 0;
    }
    if (cc->flags & flag) {
        /* a duplicate: the first is kept (§4.2.1); a different max-age or s-maxage makes the
         * freshness information invalid */
        if (freshness && *slot != v)
            cc->flags |= HC_CC_INVALID_FRESHNESS;
        return 0;
    }
    cc->flags |= flag;
    *slot = v;
    return 1;
}

void hc_cc_parse(hc_cc *cc, const char *s, size_t len)
{
    if (!cc || !s)
        return;
    const char *p = s, *end = s + len;
    hc__span name, arg;
    int has_arg;
    while (hc__directive_next(&p, end, &name, &arg, &has_arg)) {
        const char *n = name.p;
        size_t l = name.len;
        if (hc__ieq(n, l, "max-age"))
            read_delta(cc, HC_CC_MAX_AGE, &cc->max_age, &arg, has_arg, 1);
        else if (hc__ieq(n, l, "s-maxage"))
            read_delta(cc, HC_CC_S_MAXAGE, &cc->s_maxage, &arg, has_arg, 1);
        else if (hc__ieq(n, l, "min-fresh"))
            read_delta(cc, HC_CC_MIN_FRESH, &cc->min_fresh, &arg, has_arg, 0);
        else if (hc__ieq(n, l, "stale-while-revalidate"))
            read_delta(cc, HC_CC_SWR, &cc->swr, &arg, has_arg, 0);
        else if (hc__ieq(n, l, "stale-if-error"))
            read_delta(cc, HC_CC_SIE, &cc->sie, &arg, has_arg, 0);
        else if (hc__ieq(n, l, "max-stale")) {
            if (!has_arg)
                cc->flags |= HC_CC_MAX_STALE_ANY;
            else
                read_delta(cc, HC_CC_MAX_STALE, &cc->max_stale, &arg, 1, 0);
        } else if (hc__ieq(n, l, "no-cache"))
            cc->flags |= has_arg ? HC_CC_NO_CACHE_FIELDS : HC_CC_NO_CACHE;
        else if (hc__ieq(n, l, "private"))
            cc->flags |= has_arg ? HC_CC_PRIVATE_FIELDS : HC_CC_PRIVATE;
        else if (hc__ieq(n, l, "no-store"))
            cc->flags |= HC_CC_NO_STORE;
        else if (hc__ieq(n, l, "public"))
            cc->flags |= HC_CC_PUBLIC;
        else if (hc__ieq(n, l, "must-revalidate"))
            cc->flags |= HC_CC_MUST_REVALIDATE;
        else if (hc__ieq(n, l, "proxy-revalidate"))
            cc->flags |= HC_CC_PROXY_REVALIDATE;
        else if (hc__ieq(n, l, "only-if-cached"))
            cc->flags |= HC_CC_ONLY_IF_CACHED;
        else if (hc__ieq(n, l, "no-transform"))
            cc->flags |= HC_CC_NO_TRANSFORM;
        else if (hc__ieq(n, l, "immutable"))
            cc->flags |= HC_CC_IMMUTABLE;
        else if (hc__ieq(n, l, "must-understand"))
            cc->flags |= HC_CC_MUST_UNDERSTAND;
        /* anything else: an extension this cache does not know, ignored (§5.2.3) */
    }
}

int hc_cc_from_headers(const upstream_header *h, size_t n, hc_cc *cc)
{
    int seen = 0;
    hc_cc_init(cc);
    for (size_t i = 0; h && i < n; i++) {
        if (h[i].name && h[i].value && strcasecmp(h[i].name, "cache-control") == 0) {
            hc_cc_parse(cc, h[i].value, strlen(h[i].value));
            seen = 1;
        }
    }
    return seen;
}

int hc__cc_listed(const upstream_header *h, size_t n, hc__span *out)
{
    int count = 0;
    for (size_t i = 0; h && i < n; i++) {
        if (!h[i].name || !h[i].value || strcasecmp(h[i].name, "cache-control") != 0)
            continue;
        const char *p = h[i].value, *end = p + strlen(p);
        hc__span name, arg;
        int has_arg;
        while (hc__directive_next(&p, end, &name, &arg, &has_arg)) {
            if (!has_arg ||
                !(hc__ieq(name.p, name.len, "no-cache") || hc__ieq(name.p, name.len, "private")))
                continue;
            const char *q = arg.p, *qend = arg.p + arg.len;
            hc__span field;
            while (hc__list_next(&q, qend, &field)) {
                if (count == HC_MAX_LISTED)
                    return HC_ETOOMANY;
                out[count++] = field;
            }
        }
    }
    return count;
}

/* ---- HTTP dates --------------------------------------------------------------------------- */

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's algorithm):
 * no timegm, which reads the TZ environment on some libcs and is not C11. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static const char *const MONTHS[12] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const WDAYS[7] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
static const char *const MONTHS_OUT[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

typedef struct cursor {
    const char *p, *end;
} cursor;

static void skip_sp(cursor *c)
{
    while (c->p < c->end && hc__ows(*c->p))
        c->p++;
}

static int eat(cursor *c, char ch)
{
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* 1..max digits; returns the count read (0: none). */
static int number(cursor *c, int max, int *out)
{
    int n = 0, v = 0;
    while (n < max && c->p < c->end && digit(*c->p)) {
        v = v * 10 + (*c->p - '0');
        c->p++;
        n++;
    }
    *out = v;
    return n;
}

static int alpha_word(cursor *c, hc__span *w)
{
    w->p = c->p;
    while (c->p < c->end && ((*c->p >= 'a' && *c->p <= 'z') || (*c->p >= 'A' && *c->p <= 'Z')))
        c->p++;
    w->len = (size_t)(c->p - w->p);
    return w->len > 0;
}

static int month_of(const hc__span *w)
{
    if (w->len != 3)
        return -1;
    for (int i = 0; i < 12; i++)
        if (hc__ieq(w->p, 3, MONTHS[i]))
            return i + 1;
    return -1;
}

static int weekday_ok(const hc__span *w)
{
    static const char *const names[7][2] = {
        {"mon", "monday"}, {"tue", "tuesday"},  {"wed", "wednesday"}, {"thu", "thursday"},
        {"fri", "friday"}, {"sat", "saturday"}, {"sun", "sunday"}};
    for (int i = 0; i < 7; i++)
        if (hc__ieq(w->p, w->len, names[i][0]) || hc__ieq(w->p, w->len, names[i][1]))
            return 1;
    return 0;
}

/* hh:mm:ss */
static int clock_of(cursor *c, int *h, int *m, int *s)
{
    if (number(c, 2, h) != 2 || !eat(c, ':') || number(c, 2, m) != 2 || !eat(c, ':') ||
        number(c, 2, s) != 2)
        return -1;
    return (*h <= 23 && *m <= 59 && *s <= 60) ? 0 : -1;
}

static int gmt(cursor *c)
{
    hc__span w;
    return alpha_word(c, &w) && hc__ieq(w.p, w.len, "gmt") ? 0 : -1;
}

static int year_of_now(int64_t now)
{
    int64_t y;
    unsigned m, d;
    int64_t days = now / 86400 - (now % 86400 < 0);
    civil_from_days(days, &y, &m, &d);
    return (int)y;
}

int hc_date_parse(const char *s, size_t len, int64_t now, int64_t *out)
{
    if (!s || !out)
        return HC_EINVAL;
    cursor c = {s, s + len};
    int day, year, hh, mm, ss, digits, mon;
    hc__span w;
    skip_sp(&c);
    if (!alpha_word(&c, &w) || !weekday_ok(&w))
        return HC_EINVAL;
    if (eat(&c, ',')) {
        skip_sp(&c);
        if (number(&c, 2, &day) < 1)
            return HC_EINVAL;
        if (eat(&c, '-')) { /* RFC 850: 06-Nov-94 */
            if (!alpha_word(&c, &w) || (mon = month_of(&w)) < 0 || !eat(&c, '-'))
                return HC_EINVAL;
            digits = number(&c, 4, &year);
        } else { /* IMF-fixdate: 06 Nov 1994 */
            skip_sp(&c);
            if (!alpha_word(&c, &w) || (mon = month_of(&w)) < 0)
                return HC_EINVAL;
            skip_sp(&c);
            digits = number(&c, 4, &year);
        }
        skip_sp(&c);
        if ((digits != 2 && digits != 4) || clock_of(&c, &hh, &mm, &ss) != 0)
            return HC_EINVAL;
        skip_sp(&c);
        if (gmt(&c) != 0)
            return HC_EINVAL;
    } else { /* asctime: Sun Nov  6 08:49:37 1994 */
        skip_sp(&c);
        if (!alpha_word(&c, &w) || (mon = month_of(&w)) < 0)
            return HC_EINVAL;
        skip_sp(&c);
        if (number(&c, 2, &day) < 1)
            return HC_EINVAL;
        skip_sp(&c);
        if (clock_of(&c, &hh, &mm, &ss) != 0)
            return HC_EINVAL;
        skip_sp(&c);
        if ((digits = number(&c, 4, &year)) != 4)
            return HC_EINVAL;
    }
    skip_sp(&c);
    if (c.p != c.end)
        return HC_EINVAL;
    if (digits == 2) {
        /* RFC 9110 §5.6.7: more than 50 years ahead means the last such year in the past */
        int ny = year_of_now(now);
        year += ny - ny % 100;
        if (year > ny + 50)
            year -= 100;
    }
    static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day < 1 || (unsigned)day > mdays[mon - 1] || (mon == 2 && day == 29 && !leap))
        return HC_EINVAL;
    *out = days_from_civil(year, (unsigned)mon, (unsigned)day) * 86400 + hh * 3600 + mm * 60 + ss;
    return 0;
}

int hc_date_format(int64_t t, char *buf, size_t cap)
{
    if (!buf || cap < HC_DATE_LEN + 1)
        return HC_ENOSPACE;
    int64_t days = t / 86400 - (t % 86400 < 0), secs = t - days * 86400, y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999)
        return HC_EINVAL;
    int64_t wd = days % 7;
    if (wd < 0)
        wd += 7;
    /* snprintf would do, but this is on the answer path and the format is fixed */
    char *o = buf;
    memcpy(o, WDAYS[wd], 3);
    o += 3;
    *o++ = ',';
    *o++ = ' ';
    *o++ = (char)('0' + d / 10);
    *o++ = (char)('0' + d % 10);
    *o++ = ' ';
    memcpy(o, MONTHS_OUT[m - 1], 3);
    o += 3;
    *o++ = ' ';
    *o++ = (char)('0' + y / 1000);
    *o++ = (char)('0' + y / 100 % 10);
    *o++ = (char)('0' + y / 10 % 10);
    *o++ = (char)('0' + y % 10);
    *o++ = ' ';
    int hms[3] = {(int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60)};
    for (int i = 0; i < 3; i++) {
        *o++ = (char)('0' + hms[i] / 10);
        *o++ = (char)('0' + hms[i] % 10);
        if (i < 2)
            *o++ = ':';
    }
    memcpy(o, " GMT", 5);
    return HC_DATE_LEN;
}

/* ---- entity tags -------------------------------------------------------------------------- */

int hc_etag_parse(const char *s, size_t len, hc_etag *out)
{
    if (!s || !out)
        return HC_EINVAL;
    const char *p = s, *end = s + len;
    while (p < end && hc__ows(*p))
        p++;
    while (end > p && hc__ows(end[-1]))
        end--;
    int weak = 0;
    if (end - p >= 2 && p[0] == 'W' && p[1] == '/') {
        weak = 1;
        p += 2;
    }
    if (end - p < 2 || p[0] != '"' || end[-1] != '"')
        return HC_EINVAL;
    for (const char *q = p + 1; q < end - 1; q++) {
        unsigned char ch = (unsigned char)*q;
        if (ch == '"' || ch < 0x21 || ch == 0x7f) /* etagc = %x21 / %x23-7E / obs-text */
            return HC_EINVAL;
    }
    out->weak = weak;
    out->opaque = p + 1;
    out->len = (size_t)(end - p - 2);
    return 0;
}

int hc_etag_strong_eq(const hc_etag *a, const hc_etag *b)
{
    return !a->weak && !b->weak && a->len == b->len && memcmp(a->opaque, b->opaque, a->len) == 0;
}

int hc_etag_weak_eq(const hc_etag *a, const hc_etag *b)
{
    return a->len == b->len && memcmp(a->opaque, b->opaque, a->len) == 0;
}

/* ---- status codes ------------------------------------------------------------------------- */

const char *hc_strerror(int status)
{
    switch (status) {
    case HC_OK:
        return "ok";
    case HC_VARY_NEVER:
        return "the response varies on everything (Vary: *)";
#define HC_MSG_(name, code, msg)                                                                   \
    case HC_##name:                                                                                \
        return msg;
        HC_ERRNO_MAP(HC_MSG_)
#undef HC_MSG_
    }
    return "unknown status";
}

const char *hc_err_name(int status)
{
    switch (status) {
    case HC_OK:
        return "OK";
    case HC_VARY_NEVER:
        return "VARY_NEVER";
#define HC_NAME_(name, code, msg)                                                                  \
    case HC_##name:                                                                                \
        return #name;
        HC_ERRNO_MAP(HC_NAME_)
#undef HC_NAME_
    }
    return "UNKNOWN";
}
