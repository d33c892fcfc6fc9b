/* http_cache.h: the rules of a shared HTTP cache (RFC 9111, RFC 5861, RFC 9211 and the
 * conditional requests of RFC 9110 §13), as pure functions: no socket, no cache, no clock.
 *
 * The idea: the proxy parses a response's headers once into an hc_facts (its freshness
 * lifetime, dates, validators and Cache-Control flags) and keeps it beside the stored response;
 * a request is parsed once into an hc_request. Every decision is then a function of those two
 * and of `now`, the caller's wall clock in seconds since the epoch (tests drive a fake one):
 * may it be stored (hc_storable), how old and how fresh is it (hc_current_age, hc_ttl), may it
 * answer this request and how (hc_decide, hc_decide_on_error), which variant is it (hc_vary_key),
 * how to revalidate it (hc_validators, hc_304_selects, hc_merge_304), does a client's conditional
 * request get a 304 (hc_client_conditional), which URIs an unsafe method invalidates
 * (hc_invalidations), which headers are kept (hc_headers_to_store), and what the answer says
 * about it (hc_xcache_name, hc_cache_status_format).
 *
 * Headers are (name, value) arrays as the upstream client hands them over (upstream_header:
 * NUL-terminated strings, names compared case-insensitively; a field sent on several lines is
 * several entries, read as one comma-joined value). Nothing here allocates: bounds are fixed
 * (HC_MAX_VARY fields in a Vary, HC_MAX_LISTED names in no-cache="..."/private="...", an ETag
 * of HC_ETAG_MAX bytes), results go into buffers the caller gives or point into its input.
 *
 * Status codes: 0 (HC_OK), a positive value where a success must be told apart (HC_VARY_NEVER),
 * or a negative HC_E* from the table below (hc_strerror, hc_err_name).
 *
 *     hc_facts f;
 *     hc_request rq;
 *     hc_request_parse("GET", req_h, nreq, &rq);
 *     hc_facts_compute(200, resp_h, nresp, t_sent, t_received, NULL, &f);
 *     if (hc_storable(&rq, &f) == HC_STORE_OK)
 *         store(...);                          // with hc_headers_to_store, hc_vary_key
 *     ...
 *     switch (hc_decide(&rq, &f, now)) {       // later, for a request that found it
 *     case HC_FRESH: answer(...); break;       // Age: hc_current_age(&f, now)
 *     case HC_MUST_REVALIDATE: ...             // hc_validators -> conditional GET
 *     }
 */
#ifndef STRATA_SERVER_PROXY_HTTP_CACHE_H
#define STRATA_SERVER_PROXY_HTTP_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "upstream/upstream.h"

/* ---- bounds and status codes -------------------------------------------------------------- */

#define HC_MAX_VARY      32  /* field names in a stored response's Vary (more: not stored) */
#define HC_MAX_LISTED    16  /* names in no-cache="..." and private="..." together */
#define HC_ETAG_MAX      128 /* an ETag kept in hc_facts, W/ and quotes included (longer: none) */
#define HC_DATE_TEXT_MAX 64  /* Last-Modified kept as received, for If-Modified-Since */
#define HC_DATE_LEN      29  /* "Sun, 06 Nov 1994 08:49:37 GMT" */
#define HC_MAX_DELTA     2147483648LL /* delta-seconds saturate here (RFC 9111 §1.2.2) */

#define HC_ERRNO_MAP(X)                                                                            \
    X(EINVAL, -1, "invalid argument or syntax")                                                    \
    X(ENOSPACE, -2, "the output buffer or array is too small")                                     \
    X(ETOOMANY, -3, "more fields than the fixed bound")

enum hc_status {
    HC_OK = 0,
    HC_VARY_NEVER = 1, /* hc_vary_key: the response has Vary: *, no request matches it */
#define HC_ENUM_(name, code, msg) HC_##name = (code),
    HC_ERRNO_MAP(HC_ENUM_)
#undef HC_ENUM_
};

/* "the output buffer or array is too small", or "unknown status" */
const char *hc_strerror(int status);
/* "ENOSPACE", "OK", "VARY_NEVER", or "UNKNOWN" */
const char *hc_err_name(int status);

/* ---- Cache-Control ------------------------------------------------------------------------ */

/* Directives seen (bits of hc_cc.flags). Request and response directives share the struct;
 * each function reads the ones that apply to its side. */
enum hc_cc_flag {
    HC_CC_MAX_AGE = 1u << 0,
    HC_CC_S_MAXAGE = 1u << 1,
    HC_CC_NO_STORE = 1u << 2,
    HC_CC_NO_CACHE = 1u << 3,        /* unqualified: every reuse is revalidated */
    HC_CC_NO_CACHE_FIELDS = 1u << 4, /* no-cache="f1, f2": those fields are not reused */
    HC_CC_PRIVATE = 1u << 5,         /* unqualified: a shared cache does not store it */
    HC_CC_PRIVATE_FIELDS = 1u << 6,  /* private="f1": a shared cache drops those fields */
    HC_CC_PUBLIC = 1u << 7,
    HC_CC_MUST_REVALIDATE = 1u << 8,
    HC_CC_PROXY_REVALIDATE = 1u << 9,
    HC_CC_MIN_FRESH = 1u << 10,
    HC_CC_MAX_STALE = 1u << 11,     /* with a value (hc_cc.max_stale) */
    HC_CC_MAX_STALE_ANY = 1u << 12, /* without a value: any staleness */
    HC_CC_ONLY_IF_CACHED = 1u << 13,
    HC_CC_SWR = 1u << 14, /* stale-while-revalidate (RFC 5861 §3) */
    HC_CC_SIE = 1u << 15, /* stale-if-error (RFC 5861 §4) */
    HC_CC_NO_TRANSFORM = 1u << 16,
    HC_CC_IMMUTABLE = 1u << 17, /* RFC 8246 */
    HC_CC_MUST_UNDERSTAND = 1u << 18,
    /* max-age or s-maxage had an argument that is not delta-seconds, or appeared twice with
     * different values: the response is treated as stale (RFC 9111 §4.2.1, "invalid freshness
     * information"); a request's max-age is then 0. */
    HC_CC_INVALID_FRESHNESS = 1u << 19,
};

/* A parsed Cache-Control (every line of it). Seconds are saturated at HC_MAX_DELTA; a value is
 * meaningful only when its flag is set. */
typedef struct hc_cc {
    uint32_t flags;
    int64_t max_age, s_maxage, min_fresh, max_stale, swr, sie;
} hc_cc;

/* Starts an empty hc_cc; hc_cc_parse then adds one field line to it (call it for each line, in
 * order). Tolerant as RFC 9111 §5.2 asks: names are case-insensitive, arguments may be tokens
 * or quoted strings ("max-age=\"5\""), whitespace and empty list elements are skipped, unknown
 * directives ignored. A duplicate keeps the first value; a duplicate max-age or s-maxage with
 * another value, or one whose argument is not a number, sets HC_CC_INVALID_FRESHNESS
 * (§4.2.1). A bad min-fresh, max-stale, stale-while-revalidate or stale-if-error argument makes
 * that directive absent (for max-stale, the safer reading than "any staleness").
 *
 *     hc_cc cc;
 *     hc_cc_init(&cc);
 *     hc_cc_parse(&cc, "public, max-age=60, stale-if-error=\"300\"", 40);
 */
void hc_cc_init(hc_cc *cc);
void hc_cc_parse(hc_cc *cc, const char *s, size_t len);
/* hc_cc_init, then hc_cc_parse of every Cache-Control line of h[0..n). Returns 1 if there was
 * at least one such line, 0 otherwise. */
int hc_cc_from_headers(const upstream_header *h, size_t n, hc_cc *cc);

/* ---- dates, entity tags ------------------------------------------------------------------- */

/* Parses an HTTP date (RFC 9110 §5.6.7): IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), and the
 * obsolete RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37 1994")
 * forms. The weekday is not checked against the date (recipients may ignore it); surrounding
 * whitespace is allowed. A two-digit year more than 50 years after `now` is taken as the last
 * such year in the past (§5.6.7). Returns 0 and *out (seconds since the epoch) or HC_EINVAL. */
int hc_date_parse(const char *s, size_t len, int64_t now, int64_t *out);
/* Writes t as IMF-fixdate into buf (at least HC_DATE_LEN + 1 bytes), NUL-terminated. Returns
 * HC_DATE_LEN, HC_ENOSPACE, or HC_EINVAL for a year outside 0..9999. */
int hc_date_format(int64_t t, char *buf, size_t cap);

/* An entity tag (RFC 9110 §8.8.3): opaque points into the input, quotes excluded. */
typedef struct hc_etag {
    int weak;
    const char *opaque;
    size_t len;
} hc_etag;

/* Parses one entity tag (`"xyz"` or `W/"xyz"`, whitespace around allowed) from s[0..len).
 * Returns 0, or HC_EINVAL (no quotes, a character outside etagc, bytes after it). */
int hc_etag_parse(const char *s, size_t len, hc_etag *out);
/* Strong comparison (both strong, same opaque) and weak comparison (same opaque), §8.8.3.2. */
int hc_etag_strong_eq(const hc_etag *a, const hc_etag *b);
int hc_etag_weak_eq(const hc_etag *a, const hc_etag *b);

/* ---- a response's cache facts ------------------------------------------------------------- */

/* The choices RFC 9111 leaves to the cache. NULL: the defaults in brackets. */
typedef struct hc_options {
    unsigned heuristic_percent; /* heuristic lifetime: this % of (Date - Last-Modified) [10] */
    int64_t heuristic_max;      /* ... at most this many seconds [86400]; <0: no heuristic */
} hc_options;

/* What hc_facts.flags says. */
enum hc_fact_flag {
    HC_F_DATE = 1u << 0,          /* a valid Date header (else date = response_time) */
    HC_F_EXPIRES = 1u << 1,       /* an Expires header, valid or not */
    HC_F_EXPIRES_BAD = 1u << 2,   /* ... that was invalid ("0"): already expired (§5.3) */
    HC_F_LAST_MODIFIED = 1u << 3, /* a valid Last-Modified */
    HC_F_ETAG = 1u << 4,          /* an ETag that parsed and fits in HC_ETAG_MAX */
    HC_F_ETAG_WEAK = 1u << 5,
    HC_F_EXPLICIT = 1u << 6,  /* explicit expiration: s-maxage, max-age or Expires */
    HC_F_HEURISTIC = 1u << 7, /* the lifetime is heuristic (§4.2.2) */
    HC_F_VARY = 1u << 8,      /* a Vary header naming at least one field */
    HC_F_VARY_STAR = 1u << 9, /* Vary: * */
    HC_F_VARY_TOO_MANY = 1u << 10,
    HC_F_AGE_BAD = 1u << 11, /* an Age that is not delta-seconds (ignored) */
};

/* A response's cache facts: computed once from its status and headers (hc_facts_compute), kept
 * with the stored response (a plain struct, copyable byte for byte), recomputed after a 304
 * merged new headers into it. Times are seconds since the epoch. */
typedef struct hc_facts {
    int status;
    uint32_t flags;   /* enum hc_fact_flag */
    hc_cc cc;         /* the response's Cache-Control */
    int64_t date;     /* Date, or response_time when absent or invalid (RFC 9110 §6.6.1) */
    int64_t expires;  /* Expires when valid (HC_F_EXPIRES and not _BAD) */
    int64_t last_mod; /* Last-Modified when HC_F_LAST_MODIFIED */
    int64_t age;      /* the Age header's value, 0 when absent */
    int64_t request_time, response_time; /* when the request went out, the response came */
    int64_t lifetime;                    /* freshness lifetime, seconds (§4.2.1), >= 0 */
    int64_t corrected_initial_age; /* §4.2.3, so current age = this + (now - response_time) */
    char etag[HC_ETAG_MAX];        /* the ETag as received (W/"..."), "" when none */
    char last_mod_text[HC_DATE_TEXT_MAX]; /* Last-Modified as received, "" when none */
} hc_facts;

/* Fills f from a response's status and headers h[0..n), received at response_time for a request
 * sent at request_time. The lifetime (§4.2.1), for a shared cache: s-maxage, else max-age, else
 * Expires - Date (an invalid Expires: 0), else, only without any of those and only for a
 * heuristically cacheable status (hc_status_heuristic) or a `public` response, the heuristic
 * (§4.2.2): opt->heuristic_percent of (Date - Last-Modified), capped at opt->heuristic_max (0
 * without Last-Modified). An invalid max-age/s-maxage gives 0. Returns 0 or HC_EINVAL (f or a
 * header NULL). */
int hc_facts_compute(int status, const upstream_header *h, size_t n, int64_t request_time,
                     int64_t response_time, const hc_options *opt, hc_facts *f);

/* current_age (§4.2.3): corrected_initial_age + (now - response_time), >= 0, capped at
 * HC_MAX_DELTA: the value of the Age header to send. */
int64_t hc_current_age(const hc_facts *f, int64_t now);
/* Remaining freshness: lifetime - current_age; negative when stale (Cache-Status ttl=). */
int64_t hc_ttl(const hc_facts *f, int64_t now);
/* 1 if fresh: lifetime > current_age (§4.2). */
int hc_is_fresh(const hc_facts *f, int64_t now);

/* 1 for the status codes heuristically cacheable by default (RFC 9110 §15.1: 200, 203, 204,
 * 206, 300, 301, 308, 404, 405, 410, 414, 501). */
int hc_status_heuristic(int status);

/* ---- requests ----------------------------------------------------------------------------- */

enum hc_method {
    HC_M_GET,
    HC_M_HEAD,
    HC_M_POST,
    HC_M_PUT,
    HC_M_DELETE,
    HC_M_PATCH,
    HC_M_OPTIONS,
    HC_M_TRACE,
    HC_M_OTHER, /* CONNECT, PURGE, unknown: unsafe (§4.4: "methods whose safety is unknown") */
};

enum hc_request_flag {
    HC_RQ_CC = 1u << 0,              /* the request had a Cache-Control */
    HC_RQ_PRAGMA_NO_CACHE = 1u << 1, /* Pragma: no-cache and no Cache-Control (RFC 7234 §5.4) */
    HC_RQ_AUTHORIZATION = 1u << 2,
    HC_RQ_CONDITIONAL = 1u << 3, /* If-None-Match, If-Modified-Since, If-Match or
                                    If-Unmodified-Since */
    HC_RQ_RANGE = 1u << 4,
};

typedef struct hc_request {
    int method;     /* enum hc_method */
    uint32_t flags; /* enum hc_request_flag */
    hc_cc cc;
} hc_request;

/* The method by name (case-sensitive, RFC 9110 §9.1), HC_M_OTHER when unknown or NULL. */
int hc_method_of(const char *method);
/* 1 for GET, HEAD, OPTIONS, TRACE (RFC 9110 §9.2.1). */
int hc_method_safe(int method);
/* Fills rq from a request's method and headers. Pragma: no-cache counts only in a request
 * without Cache-Control (RFC 9111 §5.4 deprecates Pragma; HTTP/1.0 clients still send it) and
 * never in a response. Returns 0 or HC_EINVAL. */
int hc_request_parse(const char *method, const upstream_header *h, size_t n, hc_request *rq);

/* ---- storing ------------------------------------------------------------------------------ */

#define HC_STORE_REASONS(X)                                                                        \
    X(OK, "storable")                                                                              \
    X(METHOD, "the request method is not GET")                                                     \
    X(STATUS, "the status code is not one the cache stores")                                       \
    X(REQUEST_NO_STORE, "the request said no-store")                                               \
    X(NO_STORE, "the response said no-store")                                                      \
    X(PRIVATE, "the response said private")                                                        \
    X(AUTHORIZATION, "the request had Authorization and the response no public, s-maxage or "      \
                     "must-revalidate")                                                            \
    X(NO_FRESHNESS, "no explicit freshness, and the status is not heuristically cacheable")        \
    X(VARY_STAR, "Vary: *")                                                                        \
    X(VARY_TOO_MANY, "Vary names more fields than the bound")

enum hc_store_reason {
#define HC_SR_ENUM_(name, msg) HC_STORE_##name,
    HC_STORE_REASONS(HC_SR_ENUM_)
#undef HC_SR_ENUM_
};

/* May a shared cache store this response to this request (RFC 9111 §3)? Returns HC_STORE_OK or
 * the first reason it may not. Rules: GET only (a HEAD is answered from a stored GET; POST
 * responses are not stored); a final status the cache understands — 200, 203, 204, 300, 301,
 * 302, 303, 307, 308, 404, 405, 410, 414, 501 (206 is not: strata does not combine ranges; 304
 * only updates, hc_merge_304); no no-store in the request or the response (a response's
 * must-understand with an understood status overrides its no-store, §5.2.2.3); no unqualified
 * private; a request with Authorization only with public, s-maxage or must-revalidate (§3.5);
 * and public, s-maxage, max-age, Expires or a heuristically cacheable status. Vary: * and a Vary
 * past HC_MAX_VARY are not stored either: no request could ever match them here. */
int hc_storable(const hc_request *rq, const hc_facts *f);
/* "the response said private", or "unknown reason" */
const char *hc_store_reason_text(int reason);

/* The headers to store: h[0..n) without hop-by-hop fields (upstream_hop_by_hop) and without the
 * fields named by the response's no-cache="..." and private="..." (§5.2.2.4, §5.2.2.7; a shared
 * cache drops them rather than revalidating each time). Names and values point into h. Returns
 * the count written to out (cap entries), HC_ENOSPACE or HC_ETOOMANY (more listed names than
 * HC_MAX_LISTED: the caller should not store). */
int hc_headers_to_store(const upstream_header *h, size_t n, upstream_header *out, size_t cap);

/* ---- reusing: the decision ---------------------------------------------------------------- */

/* What to do with a request, given what is stored for it (hc_decide) and, once the origin was
 * asked and failed, whether a stale copy may answer (hc_decide_on_error). */
#define HC_OUTCOMES(X)                                                                             \
    X(FRESH, "fresh: answer from the cache")                                                       \
    X(STALE_REVALIDATE_IN_BACKGROUND, "stale within stale-while-revalidate: answer it, refresh")   \
    X(STALE_ALLOWED, "stale, accepted by the request's max-stale: answer it")                      \
    X(MUST_REVALIDATE, "not usable without a successful validation: conditional request")          \
    X(STALE_IF_ERROR_ALLOWED, "the origin failed; stale within stale-if-error: answer it")         \
    X(ERROR, "the origin failed and no stale copy may answer: pass the error (502/504)")           \
    X(MISS, "nothing stored: forward")                                                             \
    X(ONLY_IF_CACHED_MISS, "only-if-cached and nothing usable without the origin: 504")

enum hc_outcome {
#define HC_OUT_ENUM_(name, msg) HC_##name,
    HC_OUTCOMES(HC_OUT_ENUM_)
#undef HC_OUT_ENUM_
};

/* "FRESH", "MUST_REVALIDATE", ... or "UNKNOWN" */
const char *hc_outcome_name(int outcome);

/* May the stored response f (NULL: nothing stored, or no variant matched) answer rq at now
 * (RFC 9111 §4, §4.2.4; RFC 5861)? In order:
 *   - nothing stored: MISS (ONLY_IF_CACHED_MISS with only-if-cached);
 *   - the response's unqualified no-cache, the request's no-cache (or Pragma), an age past the
 *     request's max-age: MUST_REVALIDATE (a fresh `immutable` response ignores the request's
 *     max-age, the reload case of RFC 8246);
 *   - fresh, with the request's min-fresh left: FRESH;
 *   - stale: must-revalidate, proxy-revalidate (and, for max-stale, s-maxage, which implies it)
 *     forbid serving it; else the request's max-stale (any, or at least the staleness):
 *     STALE_ALLOWED; else within the response's stale-while-revalidate and the request set no
 *     max-age/min-fresh: STALE_REVALIDATE_IN_BACKGROUND; else MUST_REVALIDATE.
 * With only-if-cached, MUST_REVALIDATE becomes ONLY_IF_CACHED_MISS (§5.2.1.7: answer 504). */
int hc_decide(const hc_request *rq, const hc_facts *f, int64_t now);
/* The origin was asked (to revalidate or refetch f) and failed: origin_status is its 5xx
 * status (500, 502, 503 or 504), or 0 when it could not be reached or timed out. Returns
 * STALE_IF_ERROR_ALLOWED when the response or the request has a stale-if-error window (RFC 5861
 * §4; the larger counts), f's staleness is within it (a fresh f always is) and nothing forbids
 * it (must-revalidate, proxy-revalidate, unqualified no-cache); ERROR otherwise (also for any
 * other status: it is the origin's answer). f NULL: ERROR. */
int hc_decide_on_error(const hc_request *rq, const hc_facts *f, int origin_status, int64_t now);

/* How long strata keeps a response just stored or revalidated at now, in the entry's terms
 * (include/strata/l1.h): ttl = the freshness left (at least 1 ms: an entry's 0 means "never
 * expires"), grace = stale-while-revalidate, stale_if_error = stale-if-error. keep_stale
 * (seconds, the route's choice) extends stale_if_error for a response with a validator, so it
 * can still be revalidated with a 304 after its windows. */
typedef struct hc_entry_times {
    uint64_t ttl_ms, grace_ms, stale_if_error_ms;
} hc_entry_times;
void hc_entry_times_of(const hc_facts *f, int64_t now, int64_t keep_stale, hc_entry_times *out);

/* ---- Vary: the secondary key -------------------------------------------------------------- */

/* The secondary key of a request for a stored response (RFC 9111 §4.1): for the fields the
 * response's Vary lines name (resp[0..nresp)), the request's values, as bytes in buf (cap):
 * one line per field, sorted by lower-cased name and without duplicates,
 * "name:value\n" when the request has the field and "name\n" when it has none (an absent field
 * matches only an absent field). Values are normalised as §4.1 allows without knowing a field's
 * grammar: several lines joined with ",", whitespace around list commas and at the ends removed,
 * runs of whitespace outside quoted strings made one space, and for the fields whose values are
 * case-insensitive (Accept-Encoding, Accept-Language, Accept-Charset) lower-cased; control
 * characters become spaces. No Vary: HC_OK with *len 0. The key is computed from the original
 * request when storing and from each new request when looking up; equal bytes mean a match.
 * Returns HC_OK and *len, HC_VARY_NEVER (Vary: *), HC_ETOOMANY (more than HC_MAX_VARY fields) or
 * HC_ENOSPACE.
 *
 *     // Vary: Accept-Encoding, Accept-Language; request: Accept-Encoding: GZIP ,br
 *     // -> "accept-encoding:gzip,br\naccept-language\n"
 */
int hc_vary_key(const upstream_header *resp, size_t nresp, const upstream_header *req, size_t nreq,
                char *buf, size_t cap, size_t *len);

/* ---- revalidation with the origin --------------------------------------------------------- */

/* The validators for a conditional request to the origin (§4.3.1): If-None-Match with the
 * stored ETag, and If-Modified-Since with the stored Last-Modified exactly as received (RFC 9110
 * §13.1.3). Names are literals, values point into f. Returns how many (0, 1 or 2) were written
 * to out (cap entries), or HC_ENOSPACE. */
int hc_validators(const hc_facts *f, upstream_header *out, size_t cap);

/* Does a 304 (its facts upd) update the stored response f (§4.3.4)? A strong ETag in the 304
 * selects f only if f's ETag is strongly equal; a weak one, if weakly equal; else a
 * Last-Modified, if f's is the same; a 304 without validators selects f only if f has none
 * either. Returns 1 or 0. */
int hc_304_selects(const hc_facts *stored, const hc_facts *upd);
/* The stored headers after a 304 (§3.2, §4.3.4): every field of upd[0..nupd) replaces all the
 * stored lines of that name, except the ones never updated: hop-by-hop fields, Content-Length
 * (the stored body's), Content-Encoding and Content-Range (they describe the stored bytes), and
 * the fields named by no-cache="..." or private="..." in either message. The stored order is
 * kept, updated fields follow. Pointers go into stored and upd. Returns the count written to out
 * (cap entries) or HC_ENOSPACE. Recompute the facts from the result (hc_facts_compute) with the
 * revalidation's request and response times. */
int hc_merge_304(const upstream_header *stored, size_t nstored, const upstream_header *upd,
                 size_t nupd, upstream_header *out, size_t cap);

/* ---- a client's conditional request, answered from the cache ------------------------------ */

enum hc_cond {
    HC_COND_FULL = 200,    /* answer the stored response (or HEAD: its head only) */
    HC_COND_NOT_MOD = 304, /* answer 304 Not Modified */
    HC_COND_FAILED = 412,  /* If-Match / If-Unmodified-Since failed: 412 */
};

/* Evaluates the request's preconditions against the stored response (RFC 9110 §13.2.2, in its
 * order): If-Match (strong comparison; `*` matches), else If-Unmodified-Since; then
 * If-None-Match (weak comparison; `*` matches any stored response) -> 304 for GET/HEAD, else
 * (without If-None-Match) If-Modified-Since for GET/HEAD, compared with Last-Modified or, when
 * the stored response has none, its Date (RFC 9111 §4.3.2); a date that does not parse or lies
 * after now is ignored. If-Range is not evaluated (no ranges are served). Returns an enum
 * hc_cond. */
int hc_client_conditional(const upstream_header *req, size_t nreq, int method, const hc_facts *f,
                          int64_t now);

/* ---- unsafe methods ----------------------------------------------------------------------- */

/* The URIs a response to an unsafe request invalidates (§4.4): when method is unsafe and the
 * status non-error (2xx, 3xx), the target itself, then Location and Content-Location when they
 * resolve to the same origin (scheme, host, port) as the target — never another origin's.
 * References are resolved against the target (RFC 3986 §5.2, dot segments removed); fragments
 * are dropped. scheme ("http"/"https") and authority ("host[:port]", case-insensitive, default
 * port optional) are the target's origin, target its path and query ("/tasks/7?x=1"). Each URI
 * is written to buf as a NUL-terminated path and query, and out[i] points to it. Returns the
 * count (0 to 3), or HC_ENOSPACE. Location and Content-Location may be NULL.
 *
 *     const char *uri[3];
 *     char buf[3 * 2048];
 *     int n = hc_invalidations(HC_M_PUT, 204, "http", "api:8080", "/tasks/7", loc, NULL,
 *                              uri, buf, sizeof buf);   // uri[0] = "/tasks/7", ...
 */
int hc_invalidations(int method, int status, const char *scheme, const char *authority,
                     const char *target, const char *location, const char *content_location,
                     const char *out[3], char *buf, size_t cap);

/* ---- what the answer says: X-Cache and Cache-Status --------------------------------------- */

/* The one table of how an answer was made: the X-Cache value (the same values the KV API
 * sends) and the Cache-Status parameters (RFC 9211 §2) that go with it. */
#define HC_XCACHE_TABLE(X)                                                                         \
    X(HIT_L1, "HIT-L1", "hit")                                                                     \
    X(HIT_L2, "HIT-L2", "hit")                                                                     \
    X(HIT_COALESCED, "HIT-COALESCED", "fwd=uri-miss; collapsed")                                   \
    X(STALE, "STALE", "hit")                                                                       \
    X(REVALIDATED, "REVALIDATED", "fwd=stale")                                                     \
    X(MISS, "MISS", "fwd=uri-miss")                                                                \
    X(BYPASS, "BYPASS", "fwd=bypass")

enum hc_xcache {
#define HC_XC_ENUM_(name, xcache, cs) HC_XC_##name,
    HC_XCACHE_TABLE(HC_XC_ENUM_)
#undef HC_XC_ENUM_
};

/* "HIT-L1", ..., or "UNKNOWN" */
const char *hc_xcache_name(int xc);

/* Why a request went forward, when not the table's own reason (RFC 9211 §2.2). */
enum hc_fwd {
    HC_FWD_DEFAULT = 0, /* the table's */
    HC_FWD_BYPASS,
    HC_FWD_METHOD,
    HC_FWD_URI_MISS,
    HC_FWD_VARY_MISS,
    HC_FWD_MISS,
    HC_FWD_REQUEST,
    HC_FWD_STALE,
};

/* What one Cache-Status member says beyond the table's parameters. */
typedef struct hc_cache_status {
    int xcache;     /* enum hc_xcache */
    int fwd;        /* enum hc_fwd: overrides the table's fwd= (not for hits) */
    int fwd_status; /* the origin's status when it was asked (0: none), e.g. 304 or 503 */
    int stored;     /* 1: the response was stored now */
    int has_ttl;    /* 1: ttl= (remaining freshness, negative when stale) */
    int64_t ttl;
    const char *detail; /* a token for detail= (e.g. "stale-if-error"), or NULL */
} hc_cache_status;

/* Writes the Cache-Status member for this cache into buf (cap bytes, NUL-terminated):
 *     "strata; hit; ttl=376"
 *     "strata; fwd=uri-miss; fwd-status=200; stored; ttl=60"
 *     "strata; fwd=stale; fwd-status=304; ttl=60"              (REVALIDATED)
 *     "strata; hit; ttl=-5; detail=stale-while-revalidate"    (STALE, in the background)
 *     "strata; fwd=stale; fwd-status=503; ttl=-30; detail=stale-if-error"
 * A STALE answer given after the origin failed (fwd_status set) is "fwd=stale", not a hit. An
 * upstream cache's own Cache-Status is kept and this member goes after it (the caller joins them
 * with ", "). Returns the length, or HC_ENOSPACE. */
int hc_cache_status_format(const hc_cache_status *cs, char *buf, size_t cap);

#endif
