/* format.c: how an entry is stored in Redis: a small versioned binary header, then the value.
 *
 *   offset  size  field
 *   0       1     format version (1 or 2)
 *   1       1     flags (STRATA_VALUE_*)
 *   2       8     created, ms since the epoch        (all integers little-endian)
 *   10      8     expires, ms since the epoch (0: never)
 *   18      8     keep, ms: how long past expiry the entry is stored (version 1: its grace)
 *   version 2 only:
 *   26      8     grace, ms (served stale while one caller refreshes)
 *   34      8     stale-if-error, ms (served when the refresh fails)
 *   42      4     compute time, ms (what the value took to compute; 0: unknown)
 *   46      2     XFetch beta, hundredths (0: never refreshed early)
 *   then, in both versions (offsets from 26 in version 1, from 48 in version 2):
 *   +0      1     content type length n (<= 255)
 *   +1      n     content type
 *   ..      1     tag count t (<= 32)
 *   ..            t times: name length (1 byte, 1..255), name, version (8 bytes)
 *   ..            the value, to the end
 *
 * Times are absolute so every instance computes the same remaining TTL from one write (TTLs agree
 * across tiers), and a value promoted from L2 keeps the expiry it was written with. Tag versions
 * travel with the entry because checking them is a separate read (a tag check is not an atomic
 * multi-key operation: tags live in other hash slots). A version byte this code does not know
 * reads as STRATA_EFORMAT, which callers treat as a miss: an older strata never serves a newer
 * format as garbage. Version 2 carries freshness (stale windows, compute time, beta) and is
 * written only for entries that have any besides a plain grace: every other entry is written as
 * version 1, so instances of an older strata sharing the Redis keep reading them during an
 * upgrade, and an entry costs no more bytes than before. The fields a Lua script reads (times,
 * keep) sit at the same offsets in both versions.
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

/* Version 1 says all a view holds: no freshness beyond a grace. */
static int plain(const format_view *v)
{
    return v->stale_if_error_ms == 0 && v->compute_ms == 0 && v->beta_centi == 0;
}

static uint64_t keep_of(const format_view *v)
{
    return v->grace_ms > v->stale_if_error_ms ? v->grace_ms : v->stale_if_error_ms;
}

size_t strata__format_size(const format_view *v)
{
    size_t n = (plain(v) ? 27 : 49) + v->content_type_len + 1 + v->value_len;
    for (size_t i = 0; i < v->ntags; i++)
        n += 1 + v->tags[i].name_len + 8;
    return n;
}

size_t strata__format_encode(const format_view *v, char *buf)
{
    char *p = buf;
    int v1 = plain(v);
    *p++ = v1 ? 1 : 2;
    *p++ = (char)v->flags;
    strata__format_times(v->created_ms, v->expires_ms, p), p += 16;
    put64(p, keep_of(v)), p += 8;
    if (!v1) {
        put64(p, v->grace_ms), p += 8;
        put64(p, v->stale_if_error_ms), p += 8;
        uint64_t compute = v->compute_ms < UINT32_MAX ? v->compute_ms : UINT32_MAX;
        for (int i = 0; i < 4; i++)
            *p++ = (char)(compute >> (8 * i));
        unsigned beta = v->beta_centi < UINT16_MAX ? v->beta_centi : UINT16_MAX;
        *p++ = (char)beta, *p++ = (char)(beta >> 8);
    }
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
    unsigned version = len > 0 ? (unsigned char)p[0] : 0;
    if ((version != 1 || len < 28) && (version != 2 || len < 50))
        return STRATA_EFORMAT;
    out->flags = (unsigned char)p[1];
    out->created_ms = get64(p + 2);
    out->expires_ms = get64(p + 10);
    out->grace_ms = get64(p + 18);
    out->stale_if_error_ms = out->compute_ms = 0;
    out->beta_centi = 0;
    p += 26;
    if (version == 2) {
        uint64_t keep = out->grace_ms;
        out->grace_ms = get64(p);
        out->stale_if_error_ms = get64(p + 8);
        out->compute_ms = get64(p + 16) & 0xffffffffu;
        out->beta_centi = (unsigned char)p[20] | (unsigned)(unsigned char)p[21] << 8;
        if (keep != keep_of(out) || plain(out))
            return STRATA_EFORMAT; /* windows that disagree with what Redis keeps, or what
                                      version 1 says: not what an encoder writes */
        p += 22;
    }
    out->content_type_len = (unsigned char)*p++;
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
