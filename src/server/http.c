/* http.c: answering requests: JSON bodies, errors, values without copies, and the bookkeeping
 * every reply does (metrics, access log, freeing the request).
 *
 * Handlers only use these functions and get_header / get_query / get_body, never evhttp
 * directly, so the HTTP layer can be replaced (issue "HTTP performance") without touching them.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
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

/* Everything a reply does after evhttp has it: metrics, the access log, freeing q. */
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
    free(q);
}

/* Reason phrases evhttp 2.1 does not know (it would say "Client Error"). */
static const char *phrase(int status)
{
    switch (status) {
    case 412:
        return "Precondition Failed";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 429:
        return "Too Many Requests";
    case 507:
        return "Insufficient Storage";
    default:
        return NULL; /* evhttp's standard phrase */
    }
}

static void send_reply(req *q, int status, struct evbuffer *body)
{
    q->status = status;
    q->bytes_out = body && q->method != M_HEAD ? evbuffer_get_length(body) : 0;
    const char *reason = phrase(status);
    if (q->method == M_HEAD && body != NULL) {
        /* HEAD: the headers of a GET, no body (evhttp keeps Content-Length as given). */
        char len[24];
        snprintf(len, sizeof len, "%zu", evbuffer_get_length(body));
        evhttp_add_header(evhttp_request_get_output_headers(q->ev), "Content-Length", len);
        evbuffer_drain(body, evbuffer_get_length(body));
    }
    evhttp_send_reply(q->ev, status, reason, body);
    finish(q, status);
}

void add_header(req *q, const char *name, const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(q->ev), name, value);
}

const char *get_header(req *q, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(q->ev), name);
}

const char *get_query(req *q, const char *name)
{
    if (q->query == NULL) {
        q->query = calloc(1, sizeof *q->query);
        if (q->query == NULL)
            return NULL;
        q->query->tqh_first = NULL; /* TAILQ_INIT, spelled out: sys/queue.h is not C11 */
        q->query->tqh_last = &q->query->tqh_first;
        const char *raw = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(q->ev));
        if (raw != NULL)
            evhttp_parse_query_str(raw, q->query);
    }
    return evhttp_find_header(q->query, name);
}

const char *get_body(req *q, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(q->ev);
    *len = evbuffer_get_length(in);
    return *len ? (const char *)evbuffer_pullup(in, -1) : NULL;
}

void reply_json(req *q, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(body);
    struct evbuffer *out = evbuffer_new();
    if (text != NULL) {
        evbuffer_add(out, text, strlen(text));
        evbuffer_add(out, "\n", 1);
    }
    free(text);
    add_header(q, "Content-Type", "application/json");
    send_reply(q, status, out);
    evbuffer_free(out);
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
    send_reply(q, status, NULL);
}

static void release_value(const void *data, size_t len, void *arg)
{
    (void)data, (void)len;
    strata_value_release(arg);
}

void reply_value(req *q, int status, strata_value *v)
{
    struct evbuffer *out = evbuffer_new();
    /* Zero copy: the socket sends the cache's own bytes; the value is released once sent. */
    if (strata_value_len(v) == 0 ||
        evbuffer_add_reference(out, strata_value_data(v), strata_value_len(v), release_value, v) !=
            0)
        strata_value_release(v);
    send_reply(q, status, out);
    evbuffer_free(out);
}

void reply_text(req *q, int status, const char *content_type, const char *body, size_t len)
{
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, body, len);
    add_header(q, "Content-Type", content_type);
    send_reply(q, status, out);
    evbuffer_free(out);
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
