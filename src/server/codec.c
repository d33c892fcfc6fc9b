/* codec.c: base64 (OpenSSL's, not hand-written), ETags and the parameter formats of the API. */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <xxhash.h>

#include "codec.h"
#include "route.h"

int codec_put_value(json_t *obj, const void *data, size_t len)
{
    if (route_utf8_ok(data, len))
        return json_object_set_new(obj, "value", json_stringn(data, len));
    size_t cap = 4 * ((len + 2) / 3) + 1;
    char *b64 = malloc(cap);
    if (b64 == NULL)
        return -1;
    EVP_EncodeBlock((unsigned char *)b64, data, (int)len);
    int rc = json_object_set_new(obj, "value_b64", json_string(b64));
    free(b64);
    return rc;
}

/* A base64 digit's value, or -1. */
static int b64_digit(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Canonical standard base64 (RFC 4648 4): digits only, '=' only as the last one or two
 * characters, and no bits set past the data in the last digit. OpenSSL's EVP_DecodeBlock alone
 * takes "====" for one NUL byte, "AA=A" for two bytes and skips whitespace: what a client meant
 * cannot be guessed, so such input is refused, not stored as other bytes. */
static int b64_canonical(const char *s, size_t n)
{
    size_t pad = n >= 1 && s[n - 1] == '=' ? (n >= 2 && s[n - 2] == '=' ? 2 : 1) : 0;
    for (size_t i = 0; i < n - pad; i++)
        if (b64_digit((unsigned char)s[i]) < 0)
            return 0;
    if (pad == 0)
        return 1;
    int last = b64_digit((unsigned char)s[n - pad - 1]);
    return (last & (pad == 2 ? 0x0F : 0x03)) == 0;
}

int codec_b64_decode(const char *s, size_t n, unsigned char **out, size_t *out_len)
{
    if (n % 4 != 0 || n > (size_t)1 << 30 || !b64_canonical(s, n))
        return -1;
    unsigned char *buf = malloc(n / 4 * 3 + 1);
    if (buf == NULL)
        return -1;
    int len = n ? EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n) : 0;
    if (len < 0) {
        free(buf);
        return -1;
    }
    /* EVP_DecodeBlock counts padding as data: take it back off. */
    if (n >= 1 && s[n - 1] == '=')
        len--;
    if (n >= 2 && s[n - 2] == '=')
        len--;
    *out = buf;
    *out_len = (size_t)len;
    return 0;
}

void codec_etag(const strata_value *v, char out[20])
{
    uint64_t h =
        XXH3_64bits_withSeed(strata_value_data(v), strata_value_len(v), strata_value_created_ms(v));
    static const char hex[] = "0123456789abcdef";
    out[0] = '"';
    for (int i = 0; i < 16; i++)
        out[1 + i] = hex[(h >> (60 - 4 * i)) & 15];
    out[17] = '"';
    out[18] = '\0';
}

int codec_etag_listed(const char *header, const char *etag)
{
    if (header == NULL)
        return 0;
    size_t el = strlen(etag);
    for (const char *p = header; *p;) {
        p += strspn(p, " ,\t");
        if (*p == '\0')
            break;
        size_t n = strcspn(p, ",");
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        const char *t = p;
        if (n > 2 && t[0] == 'W' && t[1] == '/') /* weak comparison for If-None-Match */
            t += 2, n -= 2;
        if ((n == 1 && *t == '*') || (n == el && memcmp(t, etag, el) == 0))
            return 1;
        p += strcspn(p, ",");
    }
    return 0;
}

int codec_ttl(const char *s, uint64_t *ms)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || v == 0 || v > CODEC_TTL_MAX_S)
        return -1;
    *ms = v * 1000;
    return 0;
}

int codec_seconds(const char *s, uint64_t lo_ms, uint64_t hi_ms, uint64_t *ms)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++)
        if ((v = v * 10 + (uint64_t)(*s - '0')) > hi_ms / 1000 + 1)
            return -1; /* before it can overflow */
    v *= 1000;
    if (*s == '.') {
        uint64_t scale = 100;
        for (s++; *s >= '0' && *s <= '9' && scale > 0; s++, scale /= 10)
            v += (uint64_t)(*s - '0') * scale;
        if (scale == 100) /* "1.": no digit */
            return -1;
    }
    if (*s != '\0' || v < lo_ms || v > hi_ms)
        return -1;
    *ms = v;
    return 0;
}

int codec_max_age(const char *cc, uint64_t *ms)
{
    *ms = 0;
    if (cc == NULL)
        return 0;
    const char *p = strstr(cc, "max-age=");
    if (p == NULL)
        return 0;
    char num[24];
    size_t n = strspn(p + 8, "0123456789");
    if (n == 0 || n >= sizeof num)
        return -1;
    memcpy(num, p + 8, n);
    num[n] = '\0';
    return codec_ttl(num, ms);
}

int codec_split_tags(char *buf, const char **tags, int max)
{
    int n = 0;
    for (char *p = buf; *p != '\0' || n == 0;) {
        char *comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        if (*p == '\0' || n == max)
            return -1;
        tags[n++] = p;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return n;
}
