/* format.h: the stored value format in the shared tier (L2). */
#ifndef STRATA_FORMAT_H
#define STRATA_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include <strata/l1.h>

/* The newest version written; versions 1 to this one are read. */
#define STRATA_FORMAT_VERSION 2

/* A decoded stored value: pointers into the encoded bytes (valid while they are). */
typedef struct format_view {
    unsigned flags;
    uint64_t created_ms, expires_ms, grace_ms;
    uint64_t stale_if_error_ms, compute_ms; /* version 2 (0 in version 1) */
    unsigned beta_centi;                    /* version 2: XFetch beta in hundredths */
    const char *content_type;               /* not NUL-terminated */
    size_t content_type_len;
    size_t ntags;
    struct {
        const char *name;
        size_t name_len;
        uint64_t version;
    } tags[STRATA_TAGS_MAX_PER_ENTRY];
    const char *value;
    size_t value_len;
} format_view;

/* Bytes strata__format_encode needs for v. */
size_t strata__format_size(const format_view *v);

/* Where the created and expires fields sit in a stored entry (16 bytes, little-endian), and
 * those bytes for given times: what a touch rewrites in place (touch.c); then how long past
 * expiry the entry is kept (8 bytes): the same offsets in every version. */
#define STRATA_FORMAT_TIMES_OFF 2
#define STRATA_FORMAT_KEEP_OFF  18
void strata__format_times(uint64_t created_ms, uint64_t expires_ms, char out[16]);

/* Encodes v into buf (at least strata__format_size(v) bytes); returns the length. */
size_t strata__format_encode(const format_view *v, char *buf);

/* Decodes buf[0..len). Returns 0, or STRATA_EFORMAT for an unknown version, a truncated or
 * oversized field, trailing garbage or a malformed text field: never reads past len. */
int strata__format_decode(const char *buf, size_t len, format_view *out);

#endif
