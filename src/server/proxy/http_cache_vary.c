/* http_cache_vary.c: the secondary cache key of RFC 9111 §4.1: which stored variant a request
 * selects, as bytes to compare.
 *
 * A stored response's Vary names request fields; a later request selects it only if those
 * fields match the original request's. Rather than keep the original request's headers and
 * compare field by field, both requests are reduced to the same normal form (the fields sorted by
 * name, each value with the whitespace and line splits that carry no meaning removed) and the
 * bytes are compared, or hashed into the cache key by the caller. Vary: * never matches. */
#include <string.h>
#include <strings.h>

#include "proxy/http_cache_internal.h"

typedef struct out {
    char *buf;
    size_t cap, len;
    int overflow;
} out;

static void put(out *o, char c)
{
    if (o->len < o->cap)
        o->buf[o->len] = c;
    else
        o->overflow = 1;
    o->len++;
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static int tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_token(const hc__span *s)
{
    for (size_t i = 0; i < s->len; i++)
        if (!tchar(s->p[i]))
            return 0;
    return s->len > 0;
}

/* Case-insensitive order of two names. */
static int name_cmp(const hc__span *a, const hc__span *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    for (size_t i = 0; i < n; i++) {
        char x = lower(a->p[i]), y = lower(b->p[i]);
        if (x != y)
            return (unsigned char)x < (unsigned char)y ? -1 : 1;
    }
    return a->len < b->len ? -1 : a->len > b->len ? 1 : 0;
}

/* Values compared case-insensitively by their definitions (RFC 9110 §12.5.2-12.5.4: codings,
 * charsets and language tags are case-insensitive). */
static int value_ci(const hc__span *name)
{
    return hc__ieq(name->p, name->len, "accept-encoding") ||
           hc__ieq(name->p, name->len, "accept-language") ||
           hc__ieq(name->p, name->len, "accept-charset");
}

/* State of the value normaliser across the lines of one field. */
typedef struct norm {
    int emitted;  /* bytes of the value written */
    int last_sep; /* the last byte written was ',' */
    int space;    /* whitespace seen since the last byte written */
    int in_quote, escaped;
} norm;

static void norm_char(out *o, norm *s, char c, int ci)
{
    if ((unsigned char)c < 0x20 || c == 0x7f)
        c = ' '; /* no control byte in a key, and never a '\n' that would end the line */
    if (s->in_quote) {
        put(o, c);
        s->emitted = 1;
        s->last_sep = 0;
        if (s->escaped)
            s->escaped = 0;
        else if (c == '\\')
            s->escaped = 1;
        else if (c == '"')
            s->in_quote = 0;
        return;
    }
    if (c == ' ' || c == '\t') {
        s->space = 1;
        return;
    }
    if (c == ',') {
        s->space = 0;
        if (s->emitted && !s->last_sep) {
            put(o, ',');
            s->last_sep = 1;
        }
        return;
    }
    if (s->space && s->emitted && !s->last_sep)
        put(o, ' ');
    s->space = 0;
    put(o, ci ? lower(c) : c);
    s->emitted = 1;
    s->last_sep = 0;
    if (c == '"')
        s->in_quote = 1;
}

int hc_vary_key(const upstream_header *resp, size_t nresp, const upstream_header *req, size_t nreq,
                char *buf, size_t cap, size_t *len)
{
    if ((!resp && nresp) || (!req && nreq) || (!buf && cap) || !len)
        return HC_EINVAL;
    hc__span names[HC_MAX_VARY];
    int count = 0;
    for (size_t i = 0; i < nresp; i++) {
        if (!resp[i].name || !resp[i].value || strcasecmp(resp[i].name, "vary") != 0)
            continue;
        const char *p = resp[i].value, *end = p + strlen(p);
        hc__span e;
        while (hc__list_next(&p, end, &e)) {
            if (e.len == 1 && e.p[0] == '*')
                return HC_VARY_NEVER;
            if (!is_token(&e))
                continue; /* not a field name: nothing in a request can be named so */
            int at = count;
            int dup = 0;
            /* insertion into the sorted list, duplicates dropped */
            for (int k = 0; k < count; k++) {
                int c = name_cmp(&e, &names[k]);
                if (c == 0) {
                    dup = 1;
                    break;
                }
                if (c < 0) {
                    at = k;
                    break;
                }
            }
            if (dup)
                continue;
            if (count == HC_MAX_VARY)
                return HC_ETOOMANY;
            memmove(&names[at + 1], &names[at], (size_t)(count - at) * sizeof names[0]);
            names[at] = e;
            count++;
        }
    }
    out o = {buf, cap, 0, 0};
    for (int k = 0; k < count; k++) {
        for (size_t i = 0; i < names[k].len; i++)
            put(&o, lower(names[k].p[i]));
        int ci = value_ci(&names[k]), present = 0;
        norm s = {0};
        for (size_t i = 0; i < nreq; i++) {
            const char *name = req[i].name, *v = req[i].value;
            if (!name || !v || strlen(name) != names[k].len ||
                strncasecmp(name, names[k].p, names[k].len) != 0)
                continue;
            if (!present)
                put(&o, ':');
            else
                norm_char(&o, &s, ',', ci); /* RFC 9110 §5.3: lines join with commas */
            present = 1;
            s.in_quote = s.escaped = 0; /* a quote does not run across lines */
            for (; *v; v++)
                norm_char(&o, &s, *v, ci);
        }
        if (present && s.last_sep)
            o.len--; /* a trailing comma only ended an empty element */
        put(&o, '\n');
    }
    *len = o.len;
    return o.overflow ? HC_ENOSPACE : HC_OK;
}
