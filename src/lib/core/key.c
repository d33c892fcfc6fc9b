/* core/key.c: names, stored keys and their parsing; the one place a key for Redis is built.
 *
 * The stored key is <prefix>:<ns>:<tenant>:<key>. Names are restricted to an alphabet without
 * ':' so the layout is unambiguous and parsing never guesses: see include/strata/key.h.
 */
#include <stdio.h>
#include <string.h>

#include <strata/errors.h>
#include <strata/key.h>

#include "core/slot.h"
#include "core/tag_key.h"

static int name_byte_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

/* Length of a valid name in s[0..len), or 0 if it is not one. */
static size_t name_span(const char *s, size_t len)
{
    if (len == 0 || len > STRATA_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!name_byte_ok((unsigned char)s[i]))
            return 0;
    return len;
}

int strata_name_check(const char *name)
{
    if (name == NULL)
        return STRATA_EBADNAME;
    size_t len = strnlen(name, STRATA_NAME_MAX + 1);
    return name_span(name, len) ? 0 : STRATA_EBADNAME;
}

int strata_prefix_check(const char *prefix)
{
    if (prefix == NULL)
        return STRATA_EBADNAME;
    size_t len = strnlen(prefix, STRATA_PREFIX_MAX + 1);
    return name_span(prefix, len) ? 0 : STRATA_EBADNAME;
}

int strata_key_build(const char *prefix, const strata_key *k, size_t key_max, char *buf, size_t cap,
                     size_t *out_len)
{
    if (k == NULL || buf == NULL || out_len == NULL)
        return STRATA_EINVAL;
    if (key_max == 0)
        key_max = STRATA_KEY_MAX_DEFAULT;
    const char *tenant = k->tenant ? k->tenant : STRATA_DEFAULT_TENANT;
    if (strata_prefix_check(prefix) != 0 || strata_name_check(k->ns) != 0 ||
        strata_name_check(tenant) != 0)
        return STRATA_EBADNAME;
    if (k->len == 0 || k->key == NULL)
        return STRATA_EKEYEMPTY;
    if (k->len > key_max)
        return STRATA_EKEYLONG;

    size_t pl = strlen(prefix), nl = strlen(k->ns), tl = strlen(tenant);
    size_t need = pl + nl + tl + 3 + k->len;
    if (need > cap)
        return STRATA_ERANGE;
    char *p = buf;
    memcpy(p, prefix, pl), p += pl, *p++ = ':';
    memcpy(p, k->ns, nl), p += nl, *p++ = ':';
    memcpy(p, tenant, tl), p += tl, *p++ = ':';
    memcpy(p, k->key, k->len);
    *out_len = need;
    return 0;
}

/* Reads one name ending at a ':' from s[0..len); returns the bytes consumed including the ':',
 * or 0 when there is no valid name there. */
static size_t take_name(const char *s, size_t len, const char **name, size_t *name_len)
{
    const char *colon = memchr(s, ':', len < STRATA_NAME_MAX + 1 ? len : STRATA_NAME_MAX + 1);
    if (colon == NULL || name_span(s, (size_t)(colon - s)) == 0)
        return 0;
    *name = s;
    *name_len = (size_t)(colon - s);
    return *name_len + 1;
}

int strata_key_parse(const char *prefix, const char *stored, size_t len, strata_key_parts *out)
{
    if (prefix == NULL || stored == NULL || out == NULL)
        return STRATA_EINVAL;
    size_t pl = strlen(prefix);
    if (len <= pl || memcmp(stored, prefix, pl) != 0 || stored[pl] != ':')
        return STRATA_EINVAL;
    size_t off = pl + 1, n;
    if ((n = take_name(stored + off, len - off, &out->ns, &out->ns_len)) == 0)
        return STRATA_EINVAL;
    off += n;
    if ((n = take_name(stored + off, len - off, &out->tenant, &out->tenant_len)) == 0)
        return STRATA_EINVAL;
    off += n;
    if (off >= len)
        return STRATA_EINVAL;
    out->key = stored + off;
    out->key_len = len - off;
    return 0;
}

/* Tag version keys: <prefix>:!tag:<tenant>:<tag> (and soft records: <prefix>:!stag:...). '!' is
 * outside the name alphabet, so no (namespace, tenant, key) address can ever produce one, and
 * strata_key_parse rejects them. */
static int tag_key_build(const char *prefix, const char *kind, const char *tenant, const char *tag,
                         char *buf, size_t cap, size_t *out_len)
{
    if (tenant == NULL)
        tenant = STRATA_DEFAULT_TENANT;
    if (strata_prefix_check(prefix) != 0 || strata_name_check(tenant) != 0)
        return STRATA_EBADNAME;
    int n = snprintf(buf, cap, "%s:!%s:%s:%s", prefix, kind, tenant, tag);
    if (n < 0 || (size_t)n >= cap)
        return STRATA_ERANGE;
    *out_len = (size_t)n;
    return 0;
}

int strata__tag_key_build(const char *prefix, const char *tenant, const char *tag, char *buf,
                          size_t cap, size_t *out_len)
{
    return tag_key_build(prefix, "tag", tenant, tag, buf, cap, out_len);
}

int strata__soft_tag_key_build(const char *prefix, const char *tenant, const char *tag, char *buf,
                               size_t cap, size_t *out_len)
{
    return tag_key_build(prefix, "stag", tenant, tag, buf, cap, out_len);
}

/* Keys of state no instance caches or waits on: <prefix>!<kind>:<tenant>:<key>. */
int strata__untracked_key_build(const char *prefix, const char *kind, const char *tenant,
                                const void *key, size_t klen, char *buf, size_t cap,
                                size_t *out_len)
{
    if (tenant == NULL)
        tenant = STRATA_DEFAULT_TENANT;
    if (strata_prefix_check(prefix) != 0 || strata_name_check(tenant) != 0)
        return STRATA_EBADNAME;
    int n = snprintf(buf, cap, "%s!%s:%s:", prefix, kind, tenant);
    if (n < 0 || (size_t)n + klen > cap)
        return STRATA_ERANGE;
    memcpy(buf + n, key, klen);
    *out_len = (size_t)n + klen;
    return 0;
}

/* Lease keys: see core/tag_key.h for the three forms and why each keeps the value key's slot. */
int strata__lease_key_build(const char *prefix, const char *vkey, size_t vlen, char *buf,
                            size_t cap, size_t *out_len)
{
    if (strata_prefix_check(prefix) != 0)
        return STRATA_EBADNAME;
    char head[16] = "{", tag[12];
    const char *tail = "}"; /* <prefix>!lease:{<value key>} */
    size_t off, tlen;
    if (strata__hash_tag(vkey, vlen, &off, &tlen)) {
        head[0] = '\0', tail = ""; /* the value key's own tag comes first */
    } else if (memchr(vkey, '}', vlen) != NULL) {
        strata__slot_tag(strata__key_slot(vkey, vlen), tag);
        snprintf(head, sizeof head, "{%s}", tag), tail = "";
    }
    int n = snprintf(buf, cap, "%s!lease:%s", prefix, head);
    size_t tl = strlen(tail);
    if (n < 0 || (size_t)n + vlen + tl > cap)
        return STRATA_ERANGE;
    memcpy(buf + n, vkey, vlen);
    memcpy(buf + n + vlen, tail, tl);
    *out_len = (size_t)n + vlen + tl;
    return 0;
}

int strata__lease_channel_build(const char *prefix, char *buf, size_t cap, size_t *out_len)
{
    if (strata_prefix_check(prefix) != 0)
        return STRATA_EBADNAME;
    int n = snprintf(buf, cap, "%s!lease", prefix);
    if (n < 0 || (size_t)n >= cap)
        return STRATA_ERANGE;
    *out_len = (size_t)n;
    return 0;
}

void strata__scan_match_build(const char *prefix, const char *ns, const char *tenant,
                              const char *pattern, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s:%s:%s:%s", prefix, ns ? ns : "*", tenant ? tenant : "*",
             pattern && strlen(pattern) < 900 ? pattern : "*");
}

static int tag_key_parse(const char *prefix, const char *marker, const char *stored, size_t len,
                         const char **tenant, size_t *tenant_len, const char **tag, size_t *tag_len)
{
    size_t pl = strlen(prefix), ml = strlen(marker);
    if (len <= pl + ml || memcmp(stored, prefix, pl) != 0 || memcmp(stored + pl, marker, ml) != 0)
        return STRATA_EINVAL;
    const char *p = stored + pl + ml, *end = stored + len;
    size_t n = take_name(p, (size_t)(end - p), tenant, tenant_len);
    if (n == 0 || p + n >= end)
        return STRATA_EINVAL;
    *tag = p + n;
    *tag_len = (size_t)(end - *tag);
    return 0;
}

int strata__tag_key_parse(const char *prefix, const char *stored, size_t len, const char **tenant,
                          size_t *tenant_len, const char **tag, size_t *tag_len)
{
    return tag_key_parse(prefix, ":!tag:", stored, len, tenant, tenant_len, tag, tag_len);
}

int strata__soft_tag_key_parse(const char *prefix, const char *stored, size_t len,
                               const char **tenant, size_t *tenant_len, const char **tag,
                               size_t *tag_len)
{
    return tag_key_parse(prefix, ":!stag:", stored, len, tenant, tenant_len, tag, tag_len);
}

int strata_key_window(const void *key, size_t len, uint64_t window_ms, uint64_t now_ms, char *buf,
                      size_t cap, size_t *out_len, uint64_t *left_ms)
{
    if (window_ms == 0 || buf == NULL || out_len == NULL || (key == NULL && len > 0))
        return STRATA_EINVAL;
    if (len == 0)
        return STRATA_EKEYEMPTY;
    char n[24];
    int w = snprintf(n, sizeof n, "@%llu", (unsigned long long)(now_ms / window_ms));
    if (len + (size_t)w > cap)
        return STRATA_ERANGE;
    memcpy(buf, key, len);
    memcpy(buf + len, n, (size_t)w);
    *out_len = len + (size_t)w;
    if (left_ms != NULL)
        *left_ms = window_ms - now_ms % window_ms;
    return 0;
}
