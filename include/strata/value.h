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
};

/* The value bytes and their length (the bytes are not NUL-terminated). */
const void *strata_value_data(const strata_value *v);
size_t strata_value_len(const strata_value *v);

/* The content type given at write time, or "" if none; owned by v. */
const char *strata_value_content_type(const strata_value *v);

/* Wall-clock milliseconds since the epoch when the value was written. */
uint64_t strata_value_created_ms(const strata_value *v);

/* When the value stops being fresh (0: never), and how long it may be kept after that for
 * stale serving (the grace period). */
uint64_t strata_value_expires_ms(const strata_value *v);
uint64_t strata_value_grace_ms(const strata_value *v);

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
