/* request.h: a request being answered, as handlers see it, and the ways to answer it.
 *
 * Handlers use these and never the HTTP layer directly: what a handler says is independent of
 * how the bytes travel. Every reply_* sends the answer, records it (metrics, access log) and ends
 * the request: q must not be used afterwards.
 */
#ifndef STRATA_SERVER_REQUEST_H
#define STRATA_SERVER_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <strata/strata.h>

#include "route.h"
#include "server.h"

/* A request being answered: the HTTP layer's context of the request (http_conn_ctx). Lives from
 * its head until its reply is sent, which may be in a later callback (an asynchronous cache call,
 * an offloaded job). */
typedef struct req req;
struct req {
    http_conn *conn;
    worker *w;
    unsigned method;                  /* one M_* bit */
    int close;                        /* close the connection after the answer */
    char tenant[STRATA_NAME_MAX + 1]; /* the tenant the request acts in */
    int role;                         /* the caller's role */
    int tenant_bound;                 /* the token is bound to tenant */
    struct evkeyvalq *query;          /* parsed lazily */
    uint64_t start_ns;
    int status;
    size_t bytes_out;
    const char *tier; /* "l1", "l2", "miss" or NULL, for metrics */
    size_t out_hlen;
    char *hdr_spill; /* the headers once they outgrew out_hdr (a long X-Cache-Key), or NULL */
    size_t hdr_cap;  /* hdr_spill's size */
    void *px;        /* the caching proxy's state of the request (proxy.c), or NULL */
    /* An answer written in pieces may go on (the client took what was queued), or NULL. */
    void (*on_writable)(req *q);
    /* Called once when q ends (answered by anyone, or abandoned), or NULL: a handler's state
     * that a reply made elsewhere (a 429, a refusal) would otherwise leave behind. */
    void (*on_end)(req *q);
    /* Not zeroed per request (the fields above are): */
    char out_hdr[1024]; /* headers added by add_header, "Name: value\r\n" each */
    route r;            /* its 4 KiB key buffer */
};

/* ---- answering (reply.c) ------------------------------------------------------------------ */

void reply_json(req *q, int status, json_t *body); /* steals body */
void reply_error(req *q, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void reply_empty(req *q, int status);
/* The value's bytes as the body, without copying (the value is released when sent). */
void reply_value(req *q, int status, strata_value *v);
void reply_text(req *q, int status, const char *content_type, const char *body, size_t len);
/* body[0..len), malloc'd, taken over (freed once sent, or on failure): no copy. */
void reply_take(req *q, int status, const char *content_type, char *body, size_t len);
/* body[0..len) (copied), with the headers added so far and nothing else. */
void reply_bytes(req *q, int status, const void *body, size_t len);
/* body[0..len), which lives as long as the process (a file compiled in), sent without a copy,
 * with the headers added so far and nothing else. */
void reply_static(req *q, int status, const void *body, size_t len);
/* Maps a library status to an HTTP error reply. */
void reply_status(req *q, int rc);

/* The bytes body[0..len) of v as the body, without copying; v is released when sent. */
void reply_value_part(req *q, int status, strata_value *v, const void *body, size_t len);

/* An answer in pieces (a response streamed from an origin): reply_start sends the status and
 * the headers added so far, with content_length (-1: unknown, chunked); reply_write queues a
 * piece (copied) and returns an enum http_write_result (HTTP_WRITE_FULL: stop until
 * q->on_writable); reply_end finishes q; reply_cut finishes q with the answer cut short (the
 * connection is closed, so the client sees it incomplete). */
int reply_start(req *q, int status, long long content_length);
int reply_write(req *q, const void *data, size_t len);
void reply_end(req *q);
void reply_cut(req *q);

void add_header(req *q, const char *name, const char *value);
/* Adds header lines as they are ("Name: value\r\n" each, checked by the caller). */
void add_header_lines(req *q, const char *lines, size_t len);
/* X-Cache-Reason: why the answer came from this instance's memory alone (a STRATA_REASON_*,
 * read with strata_fallback_reason() right after the call or in its callback); NONE adds
 * nothing. */
void add_reason(req *q, int reason);
const char *get_header(req *q, const char *name);
/* A query parameter (decoded), or NULL. */
const char *get_query(req *q, const char *name);
/* The request body (contiguous), or NULL with *len 0. */
const char *get_body(req *q, size_t *len);
/* The request's path, still percent-encoded, without the query. */
const char *get_path(req *q);
/* The client's address, as text. */
const char *get_peer(req *q);

/* Releases what q holds and counts it out, for a request that ends without a reply (its body
 * never came). */
void request_abandon(req *q);

/* Runs fn(arg), a call of one round trip (stats' INFO), on the quick lane in q's tenant's turn,
 * then done(arg) back on q's worker loop. Always accepted: a connection holds one request at a
 * time, so these are bounded by the connections. Out of memory: both run at once, here, so the
 * caller still gets its answer. */
static inline void offload(req *q, void (*fn)(void *), void (*done)(void *), void *arg)
{
    if (offload_submit(&q->w->srv->quick, q->w->base, q->tenant, 1, fn, done, arg) != 0) {
        fn(arg);
        done(arg);
    }
}

/* Runs fn(arg) on lane (&q->w->srv->bulk or quick) in q's tenant's turn, then done(arg) back on
 * q's worker loop. Returns 0; or -1 when q's tenant or the lane has as many jobs waiting as
 * STRATA_ADMIN_QUEUE allows: then q was answered 503 admin_busy with Retry-After, nothing runs,
 * and arg is still the caller's to free. */
static inline int offload_bounded(req *q, offload_lane *lane, void (*fn)(void *),
                                  void (*done)(void *), void *arg)
{
    if (offload_submit(lane, q->w->base, q->tenant, 0, fn, done, arg) == 0)
        return 0;
    add_header(q, "Retry-After", "1");
    reply_error(q, 503, "admin_busy",
                "too much admin work is waiting (for this tenant or in all): retry later");
    return -1;
}

#endif
