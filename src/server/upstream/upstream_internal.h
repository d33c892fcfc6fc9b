/* upstream_internal.h: what the files of the upstream layer share: the origin, the request, and
 * the contract between a connection (upstream_conn.c) and the pool that owns it (pool.c).
 *
 * A connection knows nothing of pools: the pool hands it a table of functions (conn_ops) and
 * hears back through them when a request ends (with what the connection can still be used for)
 * and when an idle connection closes. A connection calls a request's own callbacks (on_head,
 * on_body) itself; on_done is the pool's to call, since only the pool knows whether the request
 * is retried instead.
 */
#ifndef STRATA_SERVER_UPSTREAM_INTERNAL_H
#define STRATA_SERVER_UPSTREAM_INTERNAL_H

#include <stdint.h>
#include <time.h>

/* OpenSSL's err.h uses INT_MAX without including <limits.h>, and in this target <limits.h> is
 * src/server/limits.h (src/server is on the include path): the compiler's own value. */
#ifndef INT_MAX
#define INT_MAX __INT_MAX__
#endif

#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/ssl.h>

#include "upstream.h"

struct evdns_base;

enum {
    UPSTREAM_MAX_HEAD = 32 * 1024,  /* bytes of a response head: a bad response past it */
    UPSTREAM_READ_HIGH = 64 * 1024, /* a connection's input buffer stops reading past it */
    UPSTREAM_ERRSTR = 192,          /* bytes of a request's error detail */
    UPSTREAM_AUTHORITY = 300,       /* bytes of "host:port" */
};

struct upstream_origin {
    char scheme[8];
    char *host;      /* without brackets */
    char *base_path; /* "" or "/api" */
    char *name;      /* SNI and verified name (server_name, else host) */
    char authority[UPSTREAM_AUTHORITY];
    unsigned port;
    int tls, name_is_ip; /* https; the verified name is an IP address (no SNI then) */
    upstream_options opt;
    SSL_CTX *ssl_ctx; /* https only; shared by every pool (OpenSSL allows SSL_new from threads) */
};

typedef struct upstream_conn upstream_conn;
struct upstream_slot;

struct upstream_req {
    upstream_pool *pool;
    struct upstream_slot *slot;
    upstream_conn *conn; /* the connection it is on, or NULL (queued, or between tries) */
    upstream_req *next;  /* in the slot's queue of requests waiting for a connection */
    upstream_callbacks cb;
    void *arg;
    char *wire; /* head and body as sent, formatted once: a retry sends it again */
    size_t wire_len;
    struct event timer;                /* the first-byte and total deadlines */
    uint64_t total_at_ms;              /* monotonic; 0: none */
    uint64_t first_byte_at_ms;         /* set once the request is written; 0: not yet */
    upstream_req *all_prev, *all_next; /* the pool's requests not done */
    unsigned idempotent : 1, head_only : 1, retried : 1, reused : 1;
    unsigned in_cb : 1, cancelled : 1, paused : 1, byte_seen : 1, done : 1;
    char errstr[UPSTREAM_ERRSTR];
};

/* What a connection tells its owner. */
typedef struct upstream_conn_ops {
    /* r's response ended (status 0) or failed; reusable: the connection may carry another
     * request; retryable: it failed before any response byte on a reused connection. The
     * connection no longer refers to r. */
    void (*finished)(void *owner, upstream_conn *c, upstream_req *r, int status, int reusable,
                     int retryable);
    /* An idle connection was closed by the origin or its idle timeout: free it. */
    void (*idle_closed)(void *owner, upstream_conn *c);
} upstream_conn_ops;

/* Opens a connection to o (name, TCP, TLS under the connect timeout), for r, which is sent once
 * connected. NULL when out of memory or the socket could not be made (r untouched). */
upstream_conn *upstream__conn_open(struct event_base *base, struct evdns_base *dns,
                                   const upstream_origin *o, const upstream_conn_ops *ops,
                                   void *owner, upstream_req *r);
/* Sends r on an idle connection c. */
void upstream__conn_send(upstream_conn *c, upstream_req *r);
/* c is idle: kept open, watched for the origin closing it, closed after idle_ms. */
void upstream__conn_park(upstream_conn *c, unsigned idle_ms);
/* r (on c) may be read again after a pause. */
void upstream__conn_resume(upstream_conn *c);
/* Bytes c holds that were read and not handed on. */
size_t upstream__conn_buffered(const upstream_conn *c);
/* Closes and frees c; NULL is a no-op. Calls nothing. */
void upstream__conn_free(upstream_conn *c);
/* The slot's list link (the pool's; the connection never reads it). */
upstream_conn **upstream__conn_next(upstream_conn *c);

/* Monotonic milliseconds. */
static inline uint64_t upstream__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Arms r's timer for its nearest deadline: the first byte (while none came) or the total. */
static inline void upstream__req_arm(upstream_req *r)
{
    uint64_t at = r->total_at_ms;
    if (!r->byte_seen && r->first_byte_at_ms && (at == 0 || r->first_byte_at_ms < at))
        at = r->first_byte_at_ms;
    if (at == 0) {
        event_del(&r->timer);
        return;
    }
    uint64_t now = upstream__now_ms(), left = at > now ? at - now : 0;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
    event_add(&r->timer, &tv);
}

#endif
