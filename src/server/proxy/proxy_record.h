/* proxy_record.h: a cached HTTP response as the proxy stores it in a cache value: its status,
 * its cache facts, its headers ready to send, and its body, in one versioned byte layout.
 *
 * The idea: a hit must cost a lookup and a write, not a parse. So a record keeps the response's
 * headers as the "Name: value\r\n" lines the client is sent (hop-by-hop fields already removed),
 * the hc_facts computed when it was stored (with the route's overrides applied), and the body
 * after them: answering is reading a few fixed fields and handing two spans to the HTTP layer.
 * The library stores the record as any value (both tiers, tags, leases, grace and
 * stale-if-error windows); only the proxy reads inside it.
 *
 * A response with Vary is stored in two records: a marker under the request's primary key that
 * names the Vary fields, and the response under a secondary key per variant (proxy.c).
 *
 * Layout (version 1, little-endian): "\0SPR", version, kind, status (u16), origin_ms (u32), the
 * facts field by field (never a struct's bytes: two builds may pad differently), the head (u32
 * length), the vary text (u16 length), then the body to the end. A decoder of a later version
 * reads version 1 too (rolling upgrades); this one refuses versions it does not know, which the
 * proxy treats as a miss.
 *
 * Pure functions: no allocation, no clock. Decoded records point into the bytes they came from.
 */
#ifndef STRATA_SERVER_PROXY_RECORD_H
#define STRATA_SERVER_PROXY_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "http_cache.h"

#define PROXY_RECORD_VERSION  1
#define PROXY_RECORD_HEAD_MAX (64u << 10) /* bytes of stored header lines */
#define PROXY_RECORD_VARY_MAX 4096        /* bytes of a vary text */

enum proxy_record_kind {
    PROXY_RECORD_RESPONSE = 1, /* a response (vary: its secondary key, "" without Vary) */
    PROXY_RECORD_VARY = 2,     /* a Vary marker (vary: the Vary header's value; no body) */
};

enum proxy_record_flag {
    PROXY_RECORD_ERROR = 1u << 0, /* an error status kept for the route's error_ttl */
};

typedef struct proxy_record {
    int kind;           /* enum proxy_record_kind */
    int status;         /* 100..599 */
    unsigned flags;     /* enum proxy_record_flag */
    uint32_t origin_ms; /* how long the origin took to answer it */
    hc_facts facts;     /* facts.status is status */
    const char *head;   /* "Name: value\r\n" lines */
    size_t head_len;
    const char *vary;
    size_t vary_len;
    const char *body;
    size_t body_len;
} proxy_record;

/* The bytes proxy_record_encode writes for r. */
size_t proxy_record_size(const proxy_record *r);

/* Writes r into out (cap >= proxy_record_size(r)). Returns the length, or -1 when r is not
 * valid (a status out of range, a head over PROXY_RECORD_HEAD_MAX or not made of header lines,
 * a vary over PROXY_RECORD_VARY_MAX, an ETag or date text too long) or cap is too small. */
long proxy_record_encode(const proxy_record *r, char *out, size_t cap);

/* Reads a record from p[0..n): 0 and *r pointing into p, or -1 (not a record, a version this
 * build does not know, a length past the end, a head that is not header lines). A record that
 * decodes re-encodes to the same bytes. */
int proxy_record_decode(const char *p, size_t n, proxy_record *r);

/* 1 if head[0..len) is "Name: value\r\n" lines: a token name, ':' and a value without CR, LF
 * or NUL. */
int proxy_record_head_ok(const char *head, size_t len);

/* Splits a record's head into header pairs: the lines are copied into buf (bufcap bytes) with
 * their names and values NUL-terminated, and out[i] points there. Returns the count, or -1 when
 * out (cap entries) or buf is too small. */
long proxy_record_headers(const proxy_record *r, upstream_header *out, size_t cap, char *buf,
                          size_t bufcap);

/* Writes h[0..n) as header lines into out (cap bytes). Returns the length, or -1 when it does
 * not fit or a name or value cannot be a header line. */
long proxy_head_format(const upstream_header *h, size_t n, char *out, size_t cap);

#endif
