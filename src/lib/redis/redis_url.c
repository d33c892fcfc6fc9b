/* redis_url.c: parsing REDIS_URL strictly, so a typo is an error at start-up that says what is
 * wrong, never a silent connection to the wrong place; and the same connection composed from the
 * split settings some services use instead (REDIS_HOST, REDIS_PORT, REDIS_DB, ...).
 *
 * Hand-written because hiredis 0.14 has no URL parser and the forms are small:
 *   redis://[[user]:password@]host[:port][/db]      (port 6379, db 0 by default)
 *   rediss://...                                    (the same, over TLS)
 *   unix://[[user]:password@]/path/to/socket[?db=N]
 * Only user and password are percent-decoded (passwords often hold '@' or ':').
 */
#include <stdlib.h>
#include <string.h>

#include <strata/errors.h>

#include "redis/redis_url.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Copies s[0..n) into out, percent-decoding; 0, or -1 on a bad escape, a NUL or overflow. */
static int decode_part(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(s[i + 1]);
            int lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0' || o + 1 >= REDIS_URL_PART_MAX)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* Parses a whole decimal number in s[0..n) within [lo, hi]. */
static int parse_int(const char *s, size_t n, long lo, long hi, int *out)
{
    if (n == 0 || n > 10)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* Splits "[user]:password@" off the front of *s, if there. */
static int parse_userinfo(const char **s, const char *end, redis_url *out)
{
    const char *at = memchr(*s, '@', (size_t)(end - *s));
    if (at == NULL)
        return 0;
    const char *colon = memchr(*s, ':', (size_t)(at - *s));
    if (colon == NULL) /* "user@" alone is not a credential form Redis knows */
        return -1;
    if (decode_part(*s, (size_t)(colon - *s), out->user) != 0 ||
        decode_part(colon + 1, (size_t)(at - colon - 1), out->password) != 0)
        return -1;
    *s = at + 1;
    return 0;
}

static int fail(const char **why, const char *msg)
{
    if (why != NULL)
        *why = msg;
    return STRATA_EBADURL;
}

static int parse_unix(const char *s, const char *end, redis_url *out, const char **why)
{
    if (parse_userinfo(&s, end, out) != 0)
        return fail(why, "malformed user:password@ part");
    const char *q = memchr(s, '?', (size_t)(end - s));
    const char *pend = q ? q : end;
    if (pend == s || *s != '/' || (size_t)(pend - s) >= REDIS_URL_PART_MAX)
        return fail(why, "unix:// needs an absolute socket path");
    memcpy(out->path, s, (size_t)(pend - s));
    out->path[pend - s] = '\0';
    if (q != NULL) {
        if (strncmp(q, "?db=", 4) != 0 ||
            parse_int(q + 4, (size_t)(end - q - 4), 0, 65535, &out->db) != 0)
            return fail(why, "unix:// accepts only ?db=N with N a number");
    }
    return 0;
}

/* A host holds none of the bytes that end it in a URL, nor spaces or controls. */
static int host_chars_ok(const char *h, const char *he)
{
    for (const char *p = h; p < he; p++)
        if (*p == '@' || *p == '/' || *p == '?' || *p == '#' || (unsigned char)*p <= ' ')
            return 0;
    return 1;
}

static int parse_tcp(const char *s, const char *end, redis_url *out, const char **why)
{
    if (parse_userinfo(&s, end, out) != 0)
        return fail(why, "malformed user:password@ part");
    const char *slash = memchr(s, '/', (size_t)(end - s));
    const char *hend = slash ? slash : end;
    const char *port = NULL;
    const char *h = s, *he;
    if (h < hend && *h == '[') { /* [ipv6]:port */
        const char *rb = memchr(h, ']', (size_t)(hend - h));
        if (rb == NULL)
            return fail(why, "unterminated [ipv6] host");
        h++, he = rb;
        if (rb + 1 < hend) {
            if (rb[1] != ':')
                return fail(why, "unexpected bytes after [ipv6] host");
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(h, ':', (size_t)(hend - h));
        he = colon ? colon : hend;
        port = colon ? colon + 1 : NULL;
    }
    if (he == h || (size_t)(he - h) >= REDIS_URL_PART_MAX)
        return fail(why, "missing host");
    if (!host_chars_ok(h, he))
        return fail(why, "invalid character in host");
    memcpy(out->host, h, (size_t)(he - h));
    out->host[he - h] = '\0';
    if (port != NULL && parse_int(port, (size_t)(hend - port), 1, 65535, &out->port) != 0)
        return fail(why, "port must be a number from 1 to 65535");
    if (slash != NULL && slash + 1 < end &&
        parse_int(slash + 1, (size_t)(end - slash - 1), 0, 65535, &out->db) != 0)
        return fail(why, "database must be a number (redis://host:port/DB)");
    return 0;
}

int strata__redis_url_parse(const char *url, redis_url *out, const char **why)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (url == NULL)
        return fail(why, "no URL");
    size_t n = strlen(url);
    const char *end = url + n;
    if (strncmp(url, "redis://", 8) == 0)
        return parse_tcp(url + 8, end, out, why);
    if (strncmp(url, "rediss://", 9) == 0) {
        out->tls = 1;
        return parse_tcp(url + 9, end, out, why);
    }
    if (strncmp(url, "unix://", 7) == 0)
        return parse_unix(url + 7, end, out, why);
    return fail(why, "scheme must be redis://, rediss:// (TLS) or unix://");
}

/* REDIS_HOST's text without the brackets of "[v6]": [*h, *he). */
static int host_span(const char *host, const char **h, const char **he, const char **why)
{
    size_t n = strlen(host);
    *h = host, *he = host + n;
    if (n > 0 && host[0] == '[') {
        if (host[n - 1] != ']')
            return fail(why, "unterminated [ipv6] host");
        *h = host + 1, *he = host + n - 1;
    }
    if (*he == *h || (size_t)(*he - *h) >= REDIS_URL_PART_MAX)
        return fail(why, "missing host");
    if (**h == '/')
        return fail(why,
                    "a unix socket goes in REDIS_URL (unix:///path/to/socket), not REDIS_HOST");
    const char *colon = memchr(*h, ':', (size_t)(*he - *h));
    if (colon != NULL && memchr(colon + 1, ':', (size_t)(*he - colon - 1)) == NULL)
        return fail(why, "REDIS_HOST is a host name or address: the port goes in REDIS_PORT");
    if (!host_chars_ok(*h, *he))
        return fail(why, "invalid character in host");
    return 0;
}

int strata__redis_host_check(const char *host, const char **why)
{
    const char *h, *he;
    if (host == NULL)
        return fail(why, "missing host");
    return host_span(host, &h, &he, why);
}

int strata__redis_url_compose(const char *host, unsigned port, unsigned db, const char *user,
                              const char *password, int tls, redis_url *out, const char **why)
{
    const char *h, *he;
    memset(out, 0, sizeof *out);
    if (host == NULL)
        return fail(why, "missing host");
    int rc = host_span(host, &h, &he, why);
    if (rc != 0)
        return rc;
    if (port > 65535)
        return fail(why, "port must be a number from 1 to 65535");
    if (db > 65535)
        return fail(why, "database must be a number from 0 to 65535");
    if ((user && strlen(user) >= REDIS_URL_PART_MAX) ||
        (password && strlen(password) >= REDIS_URL_PART_MAX))
        return fail(why, "user or password too long");
    memcpy(out->host, h, (size_t)(he - h));
    out->port = port ? (int)port : 6379;
    out->db = (int)db;
    out->tls = tls != 0;
    if (user != NULL)
        memcpy(out->user, user, strlen(user) + 1);
    if (password != NULL)
        memcpy(out->password, password, strlen(password) + 1);
    return 0;
}
