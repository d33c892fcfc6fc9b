/* proxy_record.c: the byte layout of a stored HTTP response (proxy_record.h): writing it field by
 * field and reading it back strictly, so what decodes is exactly what some encoder wrote.
 */
#include <string.h>

#include "proxy_record.h"

static const char magic[4] = {'\0', 'S', 'P', 'R'};

/* The facts' fixed part: flags, the Cache-Control flags and six values, eight times. */
enum { FACTS_FIXED = 4 + 4 + 6 * 8 + 8 * 8 };
enum { FIXED = 4 + 1 + 1 + 2 + 4 + 4 + FACTS_FIXED + 1 + 1 + 4 + 2 };

/* RFC 9110 5.6.2: the characters of a token (a header's name). */
static int tchar(unsigned char c)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && c < 128 && memchr(extra, c, sizeof extra - 1) != NULL);
}

/* Checked on every hit (what is stored goes to clients as it is): names byte by byte (short),
 * values with memchr. */
int proxy_record_head_ok(const char *head, size_t len)
{
    if (len == 0)
        return 1; /* a Vary marker's head, NULL */
    const unsigned char *p = (const unsigned char *)head, *end = p + len;
    while (p < end) {
        const unsigned char *name = p;
        while (p < end && tchar(*p))
            p++;
        if (p == name || p == end || *p != ':')
            return 0;
        const unsigned char *cr = memchr(p, '\r', (size_t)(end - p));
        if (cr == NULL || cr + 1 == end || cr[1] != '\n' || memchr(p, '\n', (size_t)(cr - p)) ||
            memchr(p, '\0', (size_t)(cr - p)))
            return 0;
        p = cr + 2;
    }
    return 1;
}

/* ---- writing ------------------------------------------------------------------------------ */

typedef struct wbuf {
    char *p;
    size_t n, cap;
} wbuf;

static void put(wbuf *b, const void *src, size_t len)
{
    if (b->n + len <= b->cap && len > 0)
        memcpy(b->p + b->n, src, len);
    b->n += len;
}

static void put_u(wbuf *b, uint64_t v, int bytes)
{
    unsigned char t[8];
    for (int i = 0; i < bytes; i++)
        t[i] = (unsigned char)(v >> (8 * i));
    put(b, t, (size_t)bytes);
}

static void put_facts(wbuf *b, const hc_facts *f)
{
    put_u(b, f->flags, 4);
    put_u(b, f->cc.flags, 4);
    const int64_t cc[6] = {f->cc.max_age,   f->cc.s_maxage, f->cc.min_fresh,
                           f->cc.max_stale, f->cc.swr,      f->cc.sie};
    for (int i = 0; i < 6; i++)
        put_u(b, (uint64_t)cc[i], 8);
    const int64_t t[8] = {f->date,         f->expires,       f->last_mod, f->age,
                          f->request_time, f->response_time, f->lifetime, f->corrected_initial_age};
    for (int i = 0; i < 8; i++)
        put_u(b, (uint64_t)t[i], 8);
}

static int record_ok(const proxy_record *r, size_t etag_len, size_t lm_len)
{
    return (r->kind == PROXY_RECORD_RESPONSE || r->kind == PROXY_RECORD_VARY) && r->status >= 100 &&
           r->status <= 599 && r->head_len <= PROXY_RECORD_HEAD_MAX &&
           r->vary_len <= PROXY_RECORD_VARY_MAX && etag_len < HC_ETAG_MAX &&
           lm_len < HC_DATE_TEXT_MAX && r->flags <= 0xff && r->facts.status == r->status &&
           (r->head_len == 0 || r->head != NULL) && (r->vary_len == 0 || r->vary != NULL) &&
           (r->body_len == 0 || r->body != NULL) && proxy_record_head_ok(r->head, r->head_len);
}

static long write_record(const proxy_record *r, wbuf *b)
{
    size_t etag_len = strnlen(r->facts.etag, HC_ETAG_MAX);
    size_t lm_len = strnlen(r->facts.last_mod_text, HC_DATE_TEXT_MAX);
    if (!record_ok(r, etag_len, lm_len))
        return -1;
    put(b, magic, 4);
    put_u(b, PROXY_RECORD_VERSION, 1);
    put_u(b, (uint64_t)r->kind, 1);
    put_u(b, (uint64_t)r->status, 2);
    put_u(b, r->origin_ms, 4);
    put_u(b, r->flags, 4);
    put_facts(b, &r->facts);
    put_u(b, etag_len, 1);
    put(b, r->facts.etag, etag_len);
    put_u(b, lm_len, 1);
    put(b, r->facts.last_mod_text, lm_len);
    put_u(b, r->head_len, 4);
    put(b, r->head, r->head_len);
    put_u(b, r->vary_len, 2);
    put(b, r->vary, r->vary_len);
    put(b, r->body, r->body_len);
    return (long)b->n;
}

size_t proxy_record_size(const proxy_record *r)
{
    wbuf b = {NULL, 0, 0};
    long n = write_record(r, &b);
    return n < 0 ? 0 : (size_t)n;
}

long proxy_record_encode(const proxy_record *r, char *out, size_t cap)
{
    wbuf b = {out, 0, cap};
    long n = write_record(r, &b);
    return n < 0 || (size_t)n > cap ? -1 : n;
}

/* ---- reading ------------------------------------------------------------------------------ */

typedef struct rbuf {
    const char *p;
    size_t n, at;
    int bad;
} rbuf;

static const char *take(rbuf *b, size_t len)
{
    if (b->bad || b->n - b->at < len) {
        b->bad = 1;
        return NULL;
    }
    const char *s = b->p + b->at;
    b->at += len;
    return s;
}

/* A little-endian number of 1, 2, 4 or 8 bytes (every hit decodes a record: no loop per byte). */
static uint64_t le(const unsigned char *s, int bytes)
{
    uint64_t v = s[0];
    if (bytes >= 2)
        v |= (uint64_t)s[1] << 8;
    if (bytes >= 4)
        v |= (uint64_t)s[2] << 16 | (uint64_t)s[3] << 24;
    if (bytes == 8)
        v |= (uint64_t)s[4] << 32 | (uint64_t)s[5] << 40 | (uint64_t)s[6] << 48 |
             (uint64_t)s[7] << 56;
    return v;
}

static uint64_t take_u(rbuf *b, int bytes)
{
    const unsigned char *s = (const unsigned char *)take(b, (size_t)bytes);
    return s != NULL ? le(s, bytes) : 0;
}

/* The facts' fixed part, taken at once. */
static void take_facts(rbuf *b, hc_facts *f)
{
    const unsigned char *s = (const unsigned char *)take(b, FACTS_FIXED);
    if (s == NULL)
        return;
    f->flags = (uint32_t)le(s, 4);
    f->cc.flags = (uint32_t)le(s + 4, 4);
    int64_t *v[14] = {&f->cc.max_age,   &f->cc.s_maxage,
                      &f->cc.min_fresh, &f->cc.max_stale,
                      &f->cc.swr,       &f->cc.sie,
                      &f->date,         &f->expires,
                      &f->last_mod,     &f->age,
                      &f->request_time, &f->response_time,
                      &f->lifetime,     &f->corrected_initial_age};
    for (int i = 0; i < 14; i++)
        *v[i] = (int64_t)le(s + 8 + 8 * i, 8);
}

/* A text of at most cap - 1 bytes into out, NUL-terminated; no NUL inside. */
static void take_text(rbuf *b, char *out, size_t cap)
{
    size_t len = (size_t)take_u(b, 1);
    const char *s = len < cap ? take(b, len) : NULL;
    if (s == NULL || memchr(s, '\0', len) != NULL) {
        b->bad = 1;
        out[0] = '\0';
        return;
    }
    memcpy(out, s, len);
    out[len] = '\0';
}

int proxy_record_decode(const char *p, size_t n, proxy_record *r)
{
    memset(r, 0, sizeof *r);
    if (n < FIXED || memcmp(p, magic, 4) != 0 || (unsigned char)p[4] != PROXY_RECORD_VERSION)
        return -1;
    rbuf b = {p, n, 5, 0};
    r->kind = (int)take_u(&b, 1);
    r->status = (int)take_u(&b, 2);
    r->origin_ms = (uint32_t)take_u(&b, 4);
    r->flags = (unsigned)take_u(&b, 4);
    take_facts(&b, &r->facts);
    r->facts.status = r->status;
    take_text(&b, r->facts.etag, sizeof r->facts.etag);
    take_text(&b, r->facts.last_mod_text, sizeof r->facts.last_mod_text);
    r->head_len = (size_t)take_u(&b, 4);
    r->head = take(&b, r->head_len);
    r->vary_len = (size_t)take_u(&b, 2);
    r->vary = take(&b, r->vary_len);
    if (b.bad)
        return -1;
    r->body = p + b.at;
    r->body_len = n - b.at;
    if (r->body_len == 0)
        r->body = NULL;
    if (r->head_len == 0)
        r->head = NULL;
    if (r->vary_len == 0)
        r->vary = NULL;
    return record_ok(r, strlen(r->facts.etag), strlen(r->facts.last_mod_text)) ? 0 : -1;
}

/* ---- header lines ------------------------------------------------------------------------- */

long proxy_record_headers(const proxy_record *r, upstream_header *out, size_t cap, char *buf,
                          size_t bufcap)
{
    if (r->head_len > bufcap)
        return -1;
    if (r->head_len > 0)
        memcpy(buf, r->head, r->head_len);
    long count = 0;
    size_t i = 0;
    while (i < r->head_len) {
        char *line = buf + i, *colon = memchr(line, ':', r->head_len - i);
        char *cr = colon ? memchr(colon, '\r', r->head_len - (size_t)(colon - buf)) : NULL;
        if (colon == NULL || cr == NULL || (size_t)count == cap)
            return -1;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        *cr = '\0';
        out[count++] = (upstream_header){line, v};
        i = (size_t)(cr - buf) + 2;
    }
    return count;
}

/* Checked pair by pair: the written head being header lines is not enough, since a value
 * "a\r\nX: y" writes two well-formed lines and a name "a:b" one that reads as name a. */
static int pair_ok(const char *name, size_t nl, const char *value)
{
    for (size_t i = 0; i < nl; i++)
        if (!tchar((unsigned char)name[i]))
            return 0;
    return nl > 0 && strpbrk(value, "\r\n") == NULL;
}

long proxy_head_format(const upstream_header *h, size_t n, char *out, size_t cap)
{
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(h[i].name), vl = strlen(h[i].value);
        if (!pair_ok(h[i].name, nl, h[i].value) || at + nl + vl + 4 > cap)
            return -1;
        memcpy(out + at, h[i].name, nl);
        memcpy(out + at + nl, ": ", 2);
        memcpy(out + at + nl + 2, h[i].value, vl);
        memcpy(out + at + nl + 2 + vl, "\r\n", 2);
        at += nl + vl + 4;
    }
    return (long)at;
}
