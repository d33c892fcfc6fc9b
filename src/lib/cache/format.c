/* format.c: how an entry is stored in Redis: a small versioned binary header, then the value.
 *
 *   offset  size  field
 *   0       1     format version (1)
 *   1       1     flags (STRATA_VALUE_*)
 *   2       8     created, ms since the epoch        (all integers little-endian)
 *   10      8     expires, ms since the epoch (0: never)
 *   18      8     grace, ms
 *   26      1     content type length n (<= 255)
 *   27      n     content type
 *   ..      1     tag count t (<= 32)
 *   ..            t times: name length (1 byte, 1..255), name, version (8 bytes)
 *   ..            the value, to the end
 *
 * Times are absolute so every instance computes the same remaining TTL from one write (TTLs agree
 * across tiers), and a value promoted from L2 keeps the expiry it was written with. Tag versions
 * travel with the entry because checking them is a separate read (a tag check is not an atomic
 * multi-key operation: tags live in other hash slots). A version byte this code does not know
 * reads as STRATA_EFORMAT, which callers treat as a miss: an older strata never serves a newer
 * format as garbage.
 */
#include <string.h>

#include <strata/errors.h>

#include "cache/format.h"

static void put64(char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (char)(v >> (8 * i));
}

static uint64_t get64(const char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | (unsigned char)p[i];
    return v;
}

void strata__format_times(uint64_t created_ms, uint64_t expires_ms, char out[16])
{
    put64(out, created_ms);
    put64(out + 8, expires_ms);
}

size_t strata__format_size(const format_view *v)
{
    size_t n = 27 + v->content_type_len + 1 + v->value_len;
    for (size_t i = 0; i < v->ntags; i++)
        n += 1 + v->tags[i].name_len + 8;
    return n;
}

size_t strata__format_encode(const format_view *v, char *buf)
{
    char *p = buf;
    *p++ = STRATA_FORMAT_VERSION;
    *p++ = (char)v->flags;
    strata__format_times(v->created_ms, v->expires_ms, p), p += 16;
    put64(p, v->grace_ms), p += 8;
    *p++ = (char)v->content_type_len;
    memcpy(p, v->content_type, v->content_type_len), p += v->content_type_len;
    *p++ = (char)v->ntags;
    for (size_t i = 0; i < v->ntags; i++) {
        *p++ = (char)v->tags[i].name_len;
        memcpy(p, v->tags[i].name, v->tags[i].name_len), p += v->tags[i].name_len;
        put64(p, v->tags[i].version), p += 8;
    }
    if (v->value_len > 0)
        memcpy(p, v->value, v->value_len);
    p += v->value_len;
    return (size_t)(p - buf);
}

/* Text fields must be what strata_l1_set would accept, or the entry could not be promoted. */
static int text_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

int strata__format_decode(const char *buf, size_t len, format_view *out)
{
    const char *p = buf, *end = buf + len;
    if (len < 28 || (unsigned char)p[0] != STRATA_FORMAT_VERSION)
        return STRATA_EFORMAT;
    out->flags = (unsigned char)p[1];
    out->created_ms = get64(p + 2);
    out->expires_ms = get64(p + 10);
    out->grace_ms = get64(p + 18);
    out->content_type_len = (unsigned char)p[26];
    p += 27;
    if ((size_t)(end - p) < out->content_type_len + 1)
        return STRATA_EFORMAT;
    out->content_type = p;
    if (!text_ok(p, out->content_type_len))
        return STRATA_EFORMAT;
    p += out->content_type_len;
    out->ntags = (unsigned char)*p++;
    if (out->ntags > STRATA_TAGS_MAX_PER_ENTRY)
        return STRATA_EFORMAT;
    for (size_t i = 0; i < out->ntags; i++) {
        if (end - p < 1)
            return STRATA_EFORMAT;
        size_t n = (unsigned char)*p++;
        if (n == 0 || (size_t)(end - p) < n + 8 || !text_ok(p, n))
            return STRATA_EFORMAT;
        out->tags[i].name = p;
        out->tags[i].name_len = n;
        out->tags[i].version = get64(p + n);
        p += n + 8;
    }
    out->value = p;
    out->value_len = (size_t)(end - p);
    return 0;
}
