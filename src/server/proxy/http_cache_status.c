/* http_cache_status.c: what an answer says about how the cache made it: the X-Cache value and
 * the Cache-Status member (RFC 9211), both from the one table in http_cache.h.
 *
 * X-Cache keeps the values the KV API already sends (HIT-L1, HIT-L2, HIT-COALESCED, STALE,
 * REVALIDATED, MISS, BYPASS) so one table in docs/api.md describes every mode; Cache-Status is
 * the standard field a CDN or a browser's tools read. The table row gives both, so they cannot
 * disagree. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "proxy/http_cache_internal.h"

static const struct {
    const char *xcache, *params;
} ROWS[] = {
#define HC_XC_ROW_(name, xcache, cs) {xcache, cs},
    HC_XCACHE_TABLE(HC_XC_ROW_)
#undef HC_XC_ROW_
};

#define NROWS ((int)(sizeof ROWS / sizeof ROWS[0]))

const char *hc_xcache_name(int xc)
{
    return xc >= 0 && xc < NROWS ? ROWS[xc].xcache : "UNKNOWN";
}

static const char *fwd_name(int fwd)
{
    switch (fwd) {
    case HC_FWD_BYPASS:
        return "bypass";
    case HC_FWD_METHOD:
        return "method";
    case HC_FWD_URI_MISS:
        return "uri-miss";
    case HC_FWD_VARY_MISS:
        return "vary-miss";
    case HC_FWD_MISS:
        return "miss";
    case HC_FWD_REQUEST:
        return "request";
    case HC_FWD_STALE:
        return "stale";
    }
    return NULL;
}

typedef struct out {
    char *buf;
    size_t cap, len;
} out;

static void add(out *o, const char *s, size_t n)
{
    if (o->len < o->cap)
        memcpy(o->buf + o->len, s, n < o->cap - o->len ? n : o->cap - o->len);
    o->len += n;
}

static void adds(out *o, const char *s)
{
    add(o, s, strlen(s));
}

/* name then v in decimal (no printf: this is on every cache hit's path). */
static void add_num(out *o, const char *name, int64_t v)
{
    char num[24];
    size_t n = sizeof num;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do
        num[--n] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        num[--n] = '-';
    adds(o, name);
    add(o, num + n, sizeof num - n);
}

/* A structured-field token (RFC 8941 §3.3.4) as is, anything else as a quoted string. */
static void add_detail(out *o, const char *d)
{
    int token = (d[0] >= 'a' && d[0] <= 'z') || (d[0] >= 'A' && d[0] <= 'Z') || d[0] == '*';
    for (const char *c = d; token && *c; c++)
        token = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                strchr("!#$%&'*+-.^_`|~:/", *c) != NULL;
    adds(o, "; detail=");
    if (token) {
        adds(o, d);
        return;
    }
    add(o, "\"", 1);
    for (const char *c = d; *c; c++) {
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            continue;
        if (*c == '"' || *c == '\\')
            add(o, "\\", 1);
        add(o, c, 1);
    }
    add(o, "\"", 1);
}

int hc_cache_status_format(const hc_cache_status *cs, char *buf, size_t cap)
{
    if (!cs || !buf || cs->xcache < 0 || cs->xcache >= NROWS)
        return HC_EINVAL;
    out o = {buf, cap, 0};
    const char *params = ROWS[cs->xcache].params;
    int hit = strncmp(params, "hit", 3) == 0;
    adds(&o, "strata; ");
    if (hit && cs->xcache == HC_XC_STALE && cs->fwd_status) {
        /* served stale after the origin failed: it went forward, so not a hit (RFC 9211 §2.1) */
        adds(&o, "fwd=stale");
        hit = 0;
    } else if (!hit && fwd_name(cs->fwd)) {
        /* the table's "fwd=<reason>[; more]" with the caller's reason */
        const char *rest = strchr(params, ';');
        adds(&o, "fwd=");
        adds(&o, fwd_name(cs->fwd));
        if (rest)
            adds(&o, rest);
    } else {
        adds(&o, params);
    }
    if (!hit && cs->fwd_status > 0)
        add_num(&o, "; fwd-status=", cs->fwd_status);
    if (cs->stored)
        adds(&o, "; stored");
    if (cs->has_ttl)
        add_num(&o, "; ttl=", cs->ttl);
    if (cs->detail && cs->detail[0])
        add_detail(&o, cs->detail);
    if (o.len >= cap)
        return HC_ENOSPACE;
    buf[o.len] = '\0';
    return (int)o.len;
}
