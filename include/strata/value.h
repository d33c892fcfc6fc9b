/* value.h: a cached value handed out by a read, shared and reference-counted.
 *
 * A read (strata_l1_get, strata_cache_get, the async callbacks) gives the caller a reference to
 * the stored entry itself rather than a copy: the server can hand the bytes straight to the
 * socket. The caller owns that one reference and gives it back with strata_value_release();
 * the bytes stay valid and unchanged until then, even if the entry is overwritten, deleted or
 * evicted meanwhile (that only drops the cache's own reference). Values are immutable.
 */
#ifndef STRATA_VALUE_H
#define STRATA_VALUE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct strata_value strata_value;

/* Entry flags, stored with the value. */
enum strata_value_flags {
    STRATA_VALUE_ERROR = 1u << 0, /* an error response cached with the namespace's error TTL */
    STRATA_VALUE_STALE = 1u << 1, /* a stale copy kept, for the namespace's error TTL, because its
                                     refresh failed (stale-if-error): answer it marked stale */
};

/* The value bytes and their length (the bytes are not NUL-terminated). */
const void *strata_value_data(const strata_value *v);
size_t strata_value_len(const strata_value *v);

/* The content type given at write time, or "" if none; owned by v. */
const char *strata_value_content_type(const strata_value *v);

/* Wall-clock milliseconds since the epoch when the value was written. */
uint64_t strata_value_created_ms(const strata_value *v);

/* When the value stops being fresh (0: never); how long past that it may be served stale while
 * one caller refreshes it (grace, stale-while-revalidate); and how long past that it may be
 * served when its refresh fails (stale-if-error). The entry is kept for the longer of the two. */
uint64_t strata_value_expires_ms(const strata_value *v);
uint64_t strata_value_grace_ms(const strata_value *v);
uint64_t strata_value_stale_if_error_ms(const strata_value *v);

/* How long the value took to compute, as its writer said (0: unknown), and the XFetch beta it was
 * written with (0: never refreshed early; also when no compute time was given): what
 * strata_value_freshness weighs. */
uint64_t strata_value_compute_ms(const strata_value *v);
double strata_value_beta(const strata_value *v);

/* What a value is worth at now_ms, for a reader deciding whether to serve it and whether to
 * refresh it. */
enum strata_freshness {
    STRATA_FRESH = 0,          /* before its expiry */
    STRATA_FRESH_EARLY = 1,    /* before its expiry, and this reader is the one chosen to refresh it
                                  early (XFetch, Vattani et al. 2015: now - compute * beta * ln(u) >=
                                  expiry): hot keys are refreshed before they go cold */
    STRATA_STALE = 2,          /* past its expiry, within its grace: served marked stale while one
                                  caller refreshes it */
    STRATA_STALE_IF_ERROR = 3, /* past its grace, within its stale-if-error window: served only
                                  when the refresh fails */
    STRATA_EXPIRED = 4         /* past both: a miss */
};

/* v's freshness at now_ms. u is a uniform random number in (0, 1] drawn by the caller for the
 * early-refresh draw (1: never early; the draw is the caller's so tests can choose it). */
int strata_value_freshness(const strata_value *v, uint64_t now_ms, double u);

/* Milliseconds of freshness left at now_ms (0 if expired); UINT64_MAX if it never expires. */
uint64_t strata_value_ttl_left_ms(const strata_value *v, uint64_t now_ms);

unsigned strata_value_flags(const strata_value *v);

/* The tags the value was written with: count, and the i-th name (NUL-terminated, owned by v). */
size_t strata_value_tag_count(const strata_value *v);
const char *strata_value_tag(const strata_value *v, size_t i);

/* Takes one more reference (for handing the value to a second owner). */
strata_value *strata_value_retain(strata_value *v);

/* Gives back one reference; the last one frees the value. NULL is a no-op. */
void strata_value_release(strata_value *v);

#ifdef __cplusplus
}
#endif
#endif
