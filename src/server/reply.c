/* reply.c: answering requests: JSON bodies, errors, values without copies, and the bookkeeping
 * every reply does (metrics, access log, handing the connection back to the HTTP layer).
 *
 * Handlers only use these functions and get_header / get_query / get_body, never the HTTP layer
 * (http/http_server.h) directly: what a handler says is independent of how the bytes travel.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <strings.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "http/http_server.h"
#include "log.h"
#include "metrics.h"
#include "request.h"

#define HDR_MAX (64u << 10) /* the most header bytes an answer carries */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *method_name(unsigned m)
{
    switch (m) {
    case M_GET:
        return "GET";
    case M_HEAD:
        return "HEAD";
    case M_PUT:
        return "PUT";
    case M_POST:
        return "POST";
    case M_DELETE:
        return "DELETE";
    case M_PATCH:
        return "PATCH";
    case M_OPTIONS:
        return "OPTIONS";
    default:
        return "OTHER";
    }
}

/* What q holds beyond the request itself, released; q counted out of the worker's in-flight. */
static void release(req *q)
{
    if (q->on_end != NULL) {
        void (*end)(req *) = q->on_end;
        q->on_end = NULL;
        end(q);
    }
    free(q->hdr_spill);
    q->hdr_spill = NULL;
    if (q->query != NULL) {
        evhttp_clear_headers(q->query);
        free(q->query);
        q->query = NULL;
    }
    atomic_fetch_sub(&q->w->inflight, 1);
}

void request_abandon(req *q)
{
    release(q);
}

/* What a call of the cache API counts as in its namespace's and tenant's usage (usage.h). */
static int usage_what(const req *q, int status, int tier)
{
    if (status >= 500)
        return USAGE_ERRORS;
    if (tier >= 0) /* 0 l1, 1 l2, 2 miss: the order of the counters */
        return USAGE_L1 + tier;
    if (status < 300 && q->r.id == R_KV && (q->method == M_PUT || q->method == M_DELETE))
        return q->method == M_PUT ? USAGE_WRITES : USAGE_DELETES;
    return USAGE_REQUESTS;
}

/* Everything a reply does once it is queued: metrics, the access log, then the connection
 * goes on (q is not used afterwards). */
static void finish(req *q, int status)
{
    uint64_t us = (mono_ns() - q->start_ns) / 1000;
    int tier = q->tier == NULL ? -1 : q->tier[1] == '1' ? 0 : q->tier[1] == '2' ? 1 : 2;
    metrics_record(q->w->metrics, q->r.id, status, us, tier);
    /* Calls that got past authentication (a tenant is set, the token was good). */
    if ((q->r.id == R_KV || q->r.id == R_MGET || q->r.id == R_MSET) && q->tenant[0] != '\0' &&
        status != 401 && status != 403)
        usage_record(q->w->metrics->usage, strata_cache_l1(q->w->srv->cache), q->r.ns, q->tenant,
                     usage_what(q, status, tier));
    if (q->w->srv->cfg.access_log)
        /* The route name, not the path: keys may be sensitive; tokens never appear. */
        log_msg(LOG_INFO, "access method=%s route=%s tenant=%s status=%d bytes=%zu us=%llu",
                method_name(q->method), route_name(q->r.id), q->tenant[0] ? q->tenant : "-", status,
                q->bytes_out, (unsigned long long)us);
    release(q);
    http_conn_done(q->conn);
}

static void release_value(const void *data, size_t len, void *arg)
{
    (void)data, (void)len;
    strata_value_release(arg);
}

/* Sends the answer, body[0..len) (copied when done is NULL, else by reference and done(body, len,
 * arg) once written), and finishes q. */
static void respond(req *q, int status, const void *body, size_t len, http_release_cb done,
                    void *arg)
{
    q->status = status;
    q->bytes_out = q->method == M_HEAD ? 0 : len;
    if (q->close)
        http_conn_close_after(q->conn);
    const char *hdr = q->hdr_spill ? q->hdr_spill : q->out_hdr; /* copied by the HTTP layer */
    http_conn_respond(q->conn, status, hdr, q->out_hlen, body, len, done, arg);
    finish(q, status);
}

/* Sends the answer (body: len bytes, or v's bytes when v is not NULL) and finishes q. */
static void send_reply(req *q, int status, const char *body, size_t len, strata_value *v)
{
    if (v != NULL)
        respond(q, status, strata_value_data(v), strata_value_len(v), release_value, v);
    else
        respond(q, status, body, len, NULL, NULL);
}

void reply_value_part(req *q, int status, strata_value *v, const void *body, size_t len)
{
    respond(q, status, body, len, release_value, v);
}

int reply_start(req *q, int status, long long content_length)
{
    q->status = status;
    if (q->close)
        http_conn_close_after(q->conn);
    const char *hdr = q->hdr_spill ? q->hdr_spill : q->out_hdr;
    return http_conn_start(q->conn, status, hdr, q->out_hlen, content_length);
}

int reply_write(req *q, const void *data, size_t len)
{
    q->bytes_out += len;
    return http_conn_write(q->conn, data, len);
}

void reply_end(req *q)
{
    http_conn_end(q->conn);
    finish(q, q->status);
}

void reply_cut(req *q)
{
    http_conn_close_after(q->conn);
    finish(q, q->status);
}

void add_reason(req *q, int reason)
{
    /* Once: a session's read and then its write may both fall back. */
    if (reason != STRATA_REASON_NONE &&
        !memmem(q->hdr_spill ? q->hdr_spill : q->out_hdr, q->out_hlen, "X-Cache-Reason:", 15))
        add_header(q, "X-Cache-Reason", strata_reason_name(reason));
}

/* Room for need more header bytes (out_hdr, then the heap up to HDR_MAX); NULL when past it. */
static char *header_room(req *q, size_t need)
{
    need += q->out_hlen;
    char *buf = q->hdr_spill ? q->hdr_spill : q->out_hdr;
    if (need <= (q->hdr_spill ? q->hdr_cap : sizeof q->out_hdr))
        return buf + q->out_hlen;
    size_t cap = need * 2 < HDR_MAX ? need * 2 : HDR_MAX;
    char *grown = need <= HDR_MAX ? realloc(q->hdr_spill, cap) : NULL;
    if (grown == NULL)
        return NULL;
    if (q->hdr_spill == NULL)
        memcpy(grown, q->out_hdr, q->out_hlen);
    q->hdr_spill = grown;
    q->hdr_cap = cap;
    return grown + q->out_hlen;
}

void add_header_lines(req *q, const char *lines, size_t len)
{
    char *p = header_room(q, len);
    if (p == NULL) {
        log_msg(LOG_ERROR, "%zu bytes of response headers dropped: over %zu bytes", len,
                (size_t)HDR_MAX);
        return;
    }
    memcpy(p, lines, len);
    q->out_hlen += len;
}

void add_header(req *q, const char *name, const char *value)
{
    size_t nl = strlen(name);
    /* The length first: an L1 hit adds five headers, none of them Connection. */
    if (nl == 10 && strcasecmp(name, "Connection") == 0) { /* the HTTP layer writes this one */
        q->close |= strcasecmp(value, "close") == 0;
        return;
    }
    size_t vl = strlen(value);
    char *p = header_room(q, nl + vl + 4);
    if (p == NULL) {
        log_msg(LOG_ERROR, "response header %s dropped: the headers are over %zu bytes", name,
                (size_t)HDR_MAX);
        return;
    }
    memcpy(p, name, nl);
    memcpy(p + nl, ": ", 2);
    memcpy(p + nl + 2, value, vl);
    memcpy(p + nl + 2 + vl, "\r\n", 2);
    q->out_hlen += nl + vl + 4;
}

const char *get_header(req *q, const char *name)
{
    return http_conn_header(q->conn, name);
}

const char *get_query(req *q, const char *name)
{
    if (q->query == NULL) {
        q->query = calloc(1, sizeof *q->query);
        if (q->query == NULL)
            return NULL;
        q->query->tqh_first = NULL; /* TAILQ_INIT, spelled out: sys/queue.h is not C11 */
        q->query->tqh_last = &q->query->tqh_first;
        const char *raw = http_conn_query(q->conn);
        if (raw != NULL)
            evhttp_parse_query_str(raw, q->query);
    }
    return evhttp_find_header(q->query, name);
}

const char *get_body(req *q, size_t *len)
{
    return http_conn_body(q->conn, len);
}

const char *get_path(req *q)
{
    return http_conn_path(q->conn);
}

const char *get_peer(req *q)
{
    return http_conn_peer(q->conn);
}

void reply_json(req *q, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(body);
    size_t len = text ? strlen(text) : 0;
    if (text != NULL)
        text[len++] = '\n'; /* json_dumps's NUL becomes the final newline: no copy */
    add_header(q, "Content-Type", "application/json");
    send_reply(q, status, text, len, NULL);
    free(text);
}

void reply_error(req *q, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (status == 401)
        add_header(q, "WWW-Authenticate", "Bearer realm=\"strata\"");
    reply_json(
        q, status,
        json_pack("{s:{s:s,s:s,s:i}}", "error", "code", code, "message", msg, "status", status));
}

void reply_empty(req *q, int status)
{
    send_reply(q, status, NULL, 0, NULL);
}

void reply_value(req *q, int status, strata_value *v)
{
    send_reply(q, status, NULL, 0, v);
}

void reply_text(req *q, int status, const char *content_type, const char *body, size_t len)
{
    add_header(q, "Content-Type", content_type);
    send_reply(q, status, body, len, NULL);
}

void reply_bytes(req *q, int status, const void *body, size_t len)
{
    send_reply(q, status, body, len, NULL);
}

static void release_free(const void *data, size_t len, void *arg)
{
    (void)data, (void)len;
    free(arg);
}

void reply_take(req *q, int status, const char *content_type, char *body, size_t len)
{
    add_header(q, "Content-Type", content_type);
    respond(q, status, body, len, release_free, body);
}

static void release_nothing(const void *data, size_t len, void *arg)
{
    (void)data, (void)len, (void)arg;
}

void reply_static(req *q, int status, const void *body, size_t len)
{
    respond(q, status, body, len, release_nothing, NULL);
}

void reply_status(req *q, int rc)
{
    switch (rc) {
    case STRATA_ENOTFOUND:
        reply_error(q, 404, "not_found", "no such key");
        break;
    case STRATA_EEXISTS:
        reply_error(q, 412, "precondition_failed", "the key already exists");
        break;
    case STRATA_EKEYEMPTY:
        reply_error(q, 400, "bad_key", "key is empty");
        break;
    case STRATA_EKEYLONG:
        reply_error(q, 414, "key_too_long", "key is longer than the limit");
        break;
    case STRATA_EVALUELARGE:
    case STRATA_ETOOBIG:
        reply_error(q, 413, "value_too_large", "%s", strata_strerror(rc));
        break;
    case STRATA_EQUOTA:
        reply_error(q, 507, "quota_exceeded", "the tenant's memory quota is full");
        break;
    case STRATA_EBADNAME:
        reply_error(q, 400, "bad_name", "%s", strata_strerror(rc));
        break;
    case STRATA_EBADTEXT:
    case STRATA_ETOOMANYTAGS:
    case STRATA_EINVAL:
    case STRATA_ERANGE:
        reply_error(q, 400, "bad_request", "%s", strata_strerror(rc));
        break;
    case STRATA_ELIMIT:
        reply_error(q, 507, "limit_reached", "%s", strata_strerror(rc));
        break;
    case STRATA_EUNAVAILABLE:
    case STRATA_ETIMEDOUT:
    case STRATA_EPROTO:
        reply_error(q, 503, "redis_unavailable", "%s", strata_strerror(rc));
        break;
    default:
        reply_error(q, 500, "internal", "%s", strata_strerror(rc));
    }
}
