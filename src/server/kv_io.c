/* kv_io.c: what the key/value routes read from a request and how they answer it (kv_io.h).
 *
 * One description of a value (ETag, X-Cache, Age, Cache-Control, Content-Type, X-Cache-Error),
 * of a miss and of a write's outcome, whichever route answers: a plain GET, a waiter of the lease
 * protocol, a PUT, a lease's fill.
 */
#include <stdio.h>
#include <string.h>

#include "codec.h"
#include "kv_io.h"

strata_key kv_key_of(req *q)
{
    strata_key k = {q->r.ns, q->tenant, q->r.key, q->r.key_len};
    return k;
}

static void header_u64(req *q, const char *name, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    add_header(q, name, buf);
}

void kv_send_value(req *q, strata_value *v, const char *tier, const char *label)
{
    char etag[20];
    uint64_t now = strata_now_ms();
    q->tier = tier;
    codec_etag(v, etag);
    add_header(q, "ETag", etag);
    add_header(q, "X-Cache", label);
    uint64_t created = strata_value_created_ms(v);
    header_u64(q, "Age", now > created ? (now - created) / 1000 : 0);
    uint64_t left = strata_value_ttl_left_ms(v, now);
    if (left != UINT64_MAX) {
        char cc[48];
        snprintf(cc, sizeof cc, "max-age=%llu", (unsigned long long)(left / 1000));
        add_header(q, "Cache-Control", cc);
    }
    /* A client must be able to tell a cached failure from a result without reading the body. */
    if (strata_value_flags(v) & STRATA_VALUE_ERROR)
        add_header(q, "X-Cache-Error", "1");
    if (codec_etag_listed(get_header(q, "If-None-Match"), etag)) {
        strata_value_release(v);
        reply_empty(q, 304);
        return;
    }
    const char *ct = strata_value_content_type(v);
    add_header(q, "Content-Type", ct[0] ? ct : "application/octet-stream");
    reply_value(q, 200, v);
}

void kv_send_miss(req *q, int reason)
{
    q->tier = "miss";
    add_header(q, "X-Cache", "MISS");
    add_reason(q, reason); /* a miss of this instance's memory: Redis was not asked */
    reply_error(q, 404, "not_found", "no such key");
}

void kv_on_written(int status, void *arg)
{
    req *q = arg;
    if (status == STRATA_OK_L1_ONLY) {
        add_header(q, "X-Cache-Write", "l1-only");
        add_reason(q, strata_fallback_reason());
    }
    if (status == STRATA_OK || status == STRATA_OK_L1_ONLY)
        reply_empty(q, 204);
    else
        reply_status(q, status);
}

/* ?tags=: 1 to 32 names. Returns 0, or answers 400 and returns -1. */
static int put_tags(req *q, kv_put_opts *p, const char *tags)
{
    int n = -1;
    if (strlen(tags) < sizeof p->tagbuf) {
        strcpy(p->tagbuf, tags);
        n = codec_split_tags(p->tagbuf, p->tags, STRATA_TAGS_MAX_PER_ENTRY);
    }
    if (n < 0) {
        reply_error(q, 400, "bad_tags", "tags must be 1 to 32 non-empty names, comma-separated");
        return -1;
    }
    p->opts.tags = p->tags;
    p->opts.ntags = (size_t)n;
    return 0;
}

/* X-Cache-Error: 1 stores the body as an error result (the namespace's error TTL applies, or the
 * write's own TTL when shorter); 0 or no header, a result. */
static int put_error_flag(req *q, kv_put_opts *p)
{
    const char *e = get_header(q, "X-Cache-Error");
    if (e == NULL || strcmp(e, "0") == 0)
        return 0;
    if (strcmp(e, "1") != 0) {
        reply_error(q, 400, "bad_request", "X-Cache-Error must be 1 or 0");
        return -1;
    }
    p->opts.flags |= STRATA_VALUE_ERROR;
    return 0;
}

int kv_put_options(req *q, kv_put_opts *p)
{
    const char *ttl = get_query(q, "ttl"), *tags = get_query(q, "tags");
    if (ttl != NULL && codec_ttl(ttl, &p->opts.ttl_ms) != 0) {
        reply_error(q, 400, "bad_ttl", "ttl must be " CODEC_TTL_RANGE);
        return -1;
    }
    if (ttl == NULL && codec_max_age(get_header(q, "Cache-Control"), &p->opts.ttl_ms) != 0) {
        reply_error(q, 400, "bad_ttl", "Cache-Control max-age must be " CODEC_TTL_RANGE);
        return -1;
    }
    if (tags != NULL && put_tags(q, p, tags) != 0)
        return -1;
    const char *ct = get_header(q, "Content-Type");
    if (ct != NULL) {
        if (strlen(ct) > STRATA_CONTENT_TYPE_MAX) {
            reply_error(q, 400, "bad_content_type", "Content-Type is longer than 255 bytes");
            return -1;
        }
        strcpy(p->ctype, ct);
        p->opts.content_type = p->ctype;
    }
    if (put_error_flag(q, p) != 0)
        return -1;
    if (codec_etag_listed(get_header(q, "If-None-Match"), "\"*\"") ||
        (get_header(q, "If-None-Match") && strcmp(get_header(q, "If-None-Match"), "*") == 0))
        p->opts.flags |= STRATA_SET_NX;
    return 0;
}
