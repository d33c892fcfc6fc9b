/* headers.c: what a proxy changes in the headers it passes on, both ways (RFC 9110 7.6): pure
 * functions over arrays of (name, value), no I/O.
 *
 * Hop-by-hop headers describe one connection, not the message: Connection, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, and every name the Connection
 * header lists; a proxy drops them before forwarding (the client's framing is not the origin's,
 * and the origin's is not the client's). Towards the origin it says who asked
 * (X-Forwarded-For, appended to, so a chain of proxies keeps the chain), how (X-Forwarded-Proto)
 * and under which name (X-Forwarded-Host): those two are replaced, never trusted from the
 * client, because the proxy is the one that knows. Both ways it appends itself to Via.
 *
 * The inputs are never modified: the results are new arrays whose names and values point into
 * the input or into a buffer the caller gives, so nothing is allocated.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "upstream.h"

static const char *const hop_names[] = {
    "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
};

/* 1 if the comma-separated list holds token (case-insensitive, spaces around items ignored). */
static int list_has(const char *list, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = list;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p != '\0' && *p != ',')
            p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if ((size_t)(end - start) == tlen && tlen > 0 && strncasecmp(start, token, tlen) == 0)
            return 1;
    }
    return 0;
}

int upstream_hop_by_hop(const char *name, const upstream_header *h, size_t n)
{
    for (size_t i = 0; i < sizeof hop_names / sizeof hop_names[0]; i++)
        if (strcasecmp(name, hop_names[i]) == 0)
            return 1;
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(h[i].name, "Connection") == 0 && list_has(h[i].value, name))
            return 1;
    return 0;
}

int upstream_headers_strip_hop(const upstream_header *h, size_t n, upstream_header *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (upstream_hop_by_hop(h[i].name, h, n))
            continue;
        if (k == cap)
            return -1;
        out[k++] = h[i];
    }
    return (int)k;
}

/* A growing string in the caller's buffer. */
typedef struct sbuf {
    char *buf;
    size_t cap, used;
    int overflow;
} sbuf;

/* Starts a string in b; returns it (valid once sb_end says so). */
static char *sb_begin(sbuf *b)
{
    return b->buf + b->used;
}

static void sb_add(sbuf *b, const char *s)
{
    size_t len = strlen(s);
    if (b->overflow || b->cap - b->used < len + 1) {
        b->overflow = 1;
        return;
    }
    memcpy(b->buf + b->used, s, len);
    b->used += len;
}

static void sb_end(sbuf *b)
{
    if (b->overflow || b->used == b->cap) {
        b->overflow = 1;
        return;
    }
    b->buf[b->used++] = '\0';
}

/* Every value of name in h[0..n), joined with ", ", then last; the result lives in b. */
static const char *joined(sbuf *b, const upstream_header *h, size_t n, const char *name,
                          const char *last)
{
    char *s = sb_begin(b);
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(h[i].name, name) != 0 || h[i].value[0] == '\0')
            continue;
        if (!first)
            sb_add(b, ", ");
        sb_add(b, h[i].value);
        first = 0;
    }
    if (!first)
        sb_add(b, ", ");
    sb_add(b, last);
    sb_end(b);
    return s;
}

static int push(upstream_header *out, size_t cap, size_t *k, const char *name, const char *value)
{
    if (*k == cap)
        return -1;
    out[*k].name = name;
    out[*k].value = value;
    (*k)++;
    return 0;
}

static const char VIA[] = "1.1 strata";

int upstream_headers_to_origin(const upstream_header *h, size_t n, const upstream_forward *f,
                               upstream_header *out, size_t cap, char *buf, size_t bufcap)
{
    int kept = upstream_headers_strip_hop(h, n, out, cap);
    if (kept < 0)
        return -1;
    /* The forwarding headers are rebuilt at the end from what the client sent (the end-to-end
     * ones, out[0..kept)); the copies among the kept ones go. */
    sbuf b = {buf, bufcap, 0, 0};
    const char *xff = joined(&b, out, (size_t)kept, "X-Forwarded-For",
                             f != NULL && f->client_addr != NULL ? f->client_addr : "unknown");
    const char *via = joined(&b, out, (size_t)kept, "Via", VIA);
    if (b.overflow)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < (size_t)kept; i++) {
        const char *name = out[i].name;
        if (strcasecmp(name, "X-Forwarded-For") == 0 ||
            strcasecmp(name, "X-Forwarded-Proto") == 0 ||
            strcasecmp(name, "X-Forwarded-Host") == 0 || strcasecmp(name, "Via") == 0)
            continue;
        out[k++] = out[i];
    }
    if (push(out, cap, &k, "X-Forwarded-For", xff) != 0)
        return -1;
    if (f != NULL && f->proto != NULL && push(out, cap, &k, "X-Forwarded-Proto", f->proto) != 0)
        return -1;
    if (f != NULL && f->host != NULL && push(out, cap, &k, "X-Forwarded-Host", f->host) != 0)
        return -1;
    if (push(out, cap, &k, "Via", via) != 0)
        return -1;
    return (int)k;
}

int upstream_headers_to_client(const upstream_header *h, size_t n, upstream_header *out, size_t cap,
                               char *buf, size_t bufcap)
{
    int kept = upstream_headers_strip_hop(h, n, out, cap);
    if (kept < 0)
        return -1;
    sbuf b = {buf, bufcap, 0, 0};
    const char *via = joined(&b, out, (size_t)kept, "Via", VIA);
    if (b.overflow)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < (size_t)kept; i++)
        if (strcasecmp(out[i].name, "Via") != 0)
            out[k++] = out[i];
    if (push(out, cap, &k, "Via", via) != 0)
        return -1;
    return (int)k;
}
