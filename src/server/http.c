/* http.c: answering requests: JSON bodies, errors, values without copies, and the bookkeeping
 * every reply does (metrics, access log, handing the connection back).
 *
 * Handlers only use these functions and get_header / get_query / get_body, never the connection
 * layer (conn.c) directly: what a handler says is independent of how the bytes travel.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <strings.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "server.h"

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

/* Everything a reply does once it is queued: metrics, the access log, then the connection
 * goes on (q is not used afterwards). */
static void finish(req *q, int status)
{
    uint64_t us = (mono_ns() - q->start_ns) / 1000;
    int tier = q->tier == NULL ? -1 : q->tier[1] == '1' ? 0 : q->tier[1] == '2' ? 1 : 2;
    metrics_record(q->w->metrics, q->r.id, status, us, tier);
    if (q->w->srv->cfg.access_log)
        /* The route name, not the path: keys may be sensitive; tokens never appear. */
        log_msg(LOG_INFO, "access method=%s route=%s tenant=%s status=%d bytes=%zu us=%llu",
                method_name(q->method), route_name(q->r.id), q->tenant[0] ? q->tenant : "-", status,
                q->bytes_out, (unsigned long long)us);
    if (q->query != NULL) {
        evhttp_clear_headers(q->query);
        free(q->query);
    }
    atomic_fetch_sub(&q->w->inflight, 1);
    conn_done(q);
}

const char *http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 507:
        return "Insufficient Storage";
    default:
        return status < 300   ? "OK"
               : status < 400 ? "Redirect"
               : status < 500 ? "Client Error"
                              : "Server Error";
    }
}

/* Sends the answer (body: len bytes, or v's bytes when v is not NULL) and finishes q. */
static void send_reply(req *q, int status, const char *body, size_t len, strata_value *v)
{
    q->status = status;
    q->bytes_out = q->method == M_HEAD ? 0 : v ? strata_value_len(v) : len;
    conn_respond(q, status, body, len, v);
    finish(q, status);
}

void add_header(req *q, const char *name, const char *value)
{
    if (strcasecmp(name, "Connection") == 0) { /* the connection layer writes this one */
        q->close |= strcasecmp(value, "close") == 0;
        return;
    }
    size_t nl = strlen(name), vl = strlen(value);
    if (q->out_hlen + nl + vl + 4 > sizeof q->out_hdr) {
        log_msg(LOG_ERROR, "response header %s dropped: the headers are over %zu bytes", name,
                sizeof q->out_hdr);
        return;
    }
    char *p = q->out_hdr + q->out_hlen;
    memcpy(p, name, nl);
    memcpy(p + nl, ": ", 2);
    memcpy(p + nl + 2, value, vl);
    memcpy(p + nl + 2 + vl, "\r\n", 2);
    q->out_hlen += nl + vl + 4;
}

const char *get_header(req *q, const char *name)
{
    return conn_header(q, name);
}

const char *get_query(req *q, const char *name)
{
    if (q->query == NULL) {
        q->query = calloc(1, sizeof *q->query);
        if (q->query == NULL)
            return NULL;
        q->query->tqh_first = NULL; /* TAILQ_INIT, spelled out: sys/queue.h is not C11 */
        q->query->tqh_last = &q->query->tqh_first;
        const char *raw = conn_query(q);
        if (raw != NULL)
            evhttp_parse_query_str(raw, q->query);
    }
    return evhttp_find_header(q->query, name);
}

const char *get_body(req *q, size_t *len)
{
    return conn_body(q, len);
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
