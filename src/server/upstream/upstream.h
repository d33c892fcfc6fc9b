/* upstream.h: an HTTP/1.1 client for origins, on one event loop: keep-alive pools, deadlines,
 * TLS, responses streamed with backpressure. It knows no routes, no cache and no JSON.
 *
 * The idea (h2o's proxy client, libuv's handles): an origin is what a URL and its options say,
 * made once and immutable (several loops may share it); a pool belongs to one event loop and
 * holds, per origin, the connections it opened, the idle ones kept alive, and a bounded queue of
 * requests waiting for a connection. A request is handed to the pool with the caller's
 * callbacks, and its response comes back in three steps: on_head (status and headers; the
 * caller decides to go on), on_body (pieces as they are parsed; the caller may pause, which
 * stops reading the origin's socket until it resumes), on_done (once, with a status code). The
 * framing is the server's (../http/http_msg.h, with HTTP_RESPONSE).
 *
 * Ownership, stated once: arguments are borrowed for the call and copied if kept (a request's
 * method, target, headers and body are formatted into the request at once). The caller owns an
 * origin (upstream_origin_free, after every pool using it is freed) and a pool
 * (upstream_pool_free). The pool owns requests: one lives from upstream_request until on_done
 * returns or upstream_req_cancel is called, whichever comes first; the pointer must not be used
 * after that. What a callback is given (the head, a body piece, an error text) is valid during
 * the callback only.
 *
 * Status codes: 0 or a negative UPSTREAM_E* of the table below (upstream_strerror,
 * upstream_err_name). A call that fails never fires a callback, and no callback ever fires
 * during the call that started the request.
 *
 * Threads: a pool, its connections and its requests belong to the thread running its loop.
 *
 *     upstream_origin *o;
 *     char err[256];
 *     if (upstream_origin_new("https://api.example.com/v1", NULL, err, sizeof err, &o) != 0)
 *         die(err);
 *     upstream_pool *p = upstream_pool_new(base);
 *     upstream_request_spec rq = {.method = "GET", .target = "/models"};
 *     upstream_callbacks cb = {.on_head = on_head, .on_body = on_body, .on_done = on_done};
 *     upstream_req *r;
 *     int rc = upstream_request(p, o, &rq, &cb, ctx, &r); // 0: on_done will be called
 */
#ifndef STRATA_SERVER_UPSTREAM_H
#define STRATA_SERVER_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

/* ---- status codes ------------------------------------------------------------------------- */

#define UPSTREAM_ERRNO_MAP(X)                                                                      \
    X(EINVAL, -1, "invalid argument")                                                              \
    X(ENOMEM, -2, "out of memory")                                                                 \
    X(EDNS, -3, "the origin's name did not resolve")                                               \
    X(ECONNECT, -4, "connecting to the origin failed")                                             \
    X(ETLS, -5, "the TLS handshake with the origin failed")                                        \
    X(ETLSVERIFY, -6, "the origin's certificate was not verified")                                 \
    X(ETIMEDOUT_CONNECT, -7, "connecting to the origin timed out")                                 \
    X(ETIMEDOUT_FIRST_BYTE, -8, "the origin sent no response in time")                             \
    X(ETIMEDOUT_TOTAL, -9, "the request took longer than its total timeout")                       \
    X(ERESET, -10, "the origin closed or reset the connection before the response ended")          \
    X(EBADRESPONSE, -11, "the origin's response is not valid HTTP/1.x")                            \
    X(EQUEUEFULL, -12, "too many requests are waiting for a connection to the origin")             \
    X(ECLOSED, -13, "the pool was freed before the response ended")

enum upstream_status {
    UPSTREAM_OK = 0,
#define UPSTREAM_ENUM_(name, code, msg) UPSTREAM_##name = (code),
    UPSTREAM_ERRNO_MAP(UPSTREAM_ENUM_)
#undef UPSTREAM_ENUM_
};

/* "connecting to the origin timed out", or "unknown status" */
const char *upstream_strerror(int status);
/* "ETIMEDOUT_CONNECT", or "UNKNOWN" */
const char *upstream_err_name(int status);

/* ---- origins ------------------------------------------------------------------------------ */

typedef struct upstream_origin upstream_origin;

/* An origin's options; zeroed fields take the default in brackets. */
typedef struct upstream_options {
    unsigned connect_timeout_ms;    /* name, TCP connect and TLS handshake [5000] */
    unsigned first_byte_timeout_ms; /* the request written -> the response's first byte [30000] */
    unsigned total_timeout_ms;      /* upstream_request -> the response's end; 0: none */
    unsigned max_conns;             /* connections per origin in one pool [64] */
    unsigned max_queue;             /* requests waiting for a connection per pool [256] */
    unsigned max_idle;              /* idle keep-alive connections kept per pool [max_conns] */
    unsigned idle_timeout_ms;       /* an idle connection is closed after [30000] */
    const char *ca_file;            /* PEM CA certificates to verify with; NULL: the system's */
    const char *server_name;        /* SNI and the name verified; NULL: the URL's host */
    int tls_insecure;               /* 1: no certificate or name verification (tests only) */
} upstream_options;

/* Makes an origin from url ("http://host[:port][/base]" or "https://..."; a base path is put
 * before every request's target) and opts (NULL: defaults; copied). For https it loads the CA
 * store now, so a bad ca_file is refused here. Returns 0 and sets *out, or UPSTREAM_EINVAL /
 * UPSTREAM_ENOMEM with the reason in err (errcap bytes, may be 0).
 *
 *     upstream_origin_new("http://127.0.0.1:8080/api", &(upstream_options){.max_conns = 8},
 *                         err, sizeof err, &o);
 */
int upstream_origin_new(const char *url, const upstream_options *opts, char *err, size_t errcap,
                        upstream_origin **out);
/* NULL is a no-op. Every pool that used o must be freed first. */
void upstream_origin_free(upstream_origin *o);
/* What the URL said: "http" or "https", the host (without brackets), the port, the base path
 * ("" or "/api", never ending in '/'), and the Host header sent ("h", "h:8080", "[::1]:8080"). */
const char *upstream_origin_scheme(const upstream_origin *o);
const char *upstream_origin_host(const upstream_origin *o);
unsigned upstream_origin_port(const upstream_origin *o);
const char *upstream_origin_base_path(const upstream_origin *o);
const char *upstream_origin_authority(const upstream_origin *o);

/* ---- pools and requests ------------------------------------------------------------------- */

typedef struct upstream_pool upstream_pool;
typedef struct upstream_req upstream_req;
typedef struct upstream_head upstream_head;

/* A header line: name and value, NUL-terminated. */
typedef struct upstream_header {
    const char *name, *value;
} upstream_header;

typedef struct upstream_request_spec {
    const char *method; /* "GET", "POST", ... */
    const char *target; /* path and query, appended to the origin's base path: "/v1/x?a=1" */
    const upstream_header *headers; /* the caller's (already filtered: upstream_headers_*);
                                       Host is added unless given; Content-Length,
                                       Transfer-Encoding and Connection are the client's and
                                       dropped */
    size_t nheaders;
    const void *body; /* the whole body (copied), or NULL */
    size_t body_len;
} upstream_request_spec;

/* What on_head and on_body return. */
enum upstream_verdict {
    UPSTREAM_GO = 0,    /* go on */
    UPSTREAM_PAUSE = 1, /* on_body: stop reading until upstream_req_resume */
    UPSTREAM_ABORT = 2, /* stop: as upstream_req_cancel (no more callbacks, not even on_done) */
};

typedef struct upstream_callbacks {
    /* Required. The response's head (1xx interim answers are skipped). Returns UPSTREAM_GO or
     * UPSTREAM_ABORT. */
    int (*on_head)(upstream_req *r, const upstream_head *h, void *arg);
    /* Optional (without it the body is read and dropped). A piece of the body, chunk framing
     * removed. Returns UPSTREAM_GO, UPSTREAM_PAUSE or UPSTREAM_ABORT. */
    int (*on_body)(upstream_req *r, const char *data, size_t len, void *arg);
    /* Required. Called once: 0 after the whole response, or a negative UPSTREAM_E* (before or
     * after on_head). upstream_req_errstr says more. The request is freed when it returns. */
    void (*on_done)(upstream_req *r, int status, void *arg);
} upstream_callbacks;

/* A pool for the loop base. Returns NULL when out of memory. */
upstream_pool *upstream_pool_new(struct event_base *base);
/* Calls on_done(UPSTREAM_ECLOSED) for every request not done, closes every connection and frees
 * p. NULL is a no-op. Not from inside one of p's callbacks: free it from the loop's own code
 * (a worker's shutdown), once its callbacks have returned. */
void upstream_pool_free(upstream_pool *p);

/* Sends a request to o through p: on an idle kept-alive connection, a new one (up to
 * max_conns), or after waiting for one (up to max_queue waiting). cb is copied; arg is passed
 * to every callback. Returns 0 and sets *out (the callbacks will be called, never during this
 * call), or UPSTREAM_EINVAL (no method, target not starting with '/', bad header text),
 * UPSTREAM_EQUEUEFULL or UPSTREAM_ENOMEM, and no callback is called.
 *
 * Retries: a request that fails on a reused connection before any byte of the response came
 * is sent again once on a new connection if its method is idempotent (GET, HEAD, PUT, DELETE,
 * OPTIONS, TRACE); never a POST or PATCH, never once a response byte arrived. */
int upstream_request(upstream_pool *p, const upstream_origin *o, const upstream_request_spec *rq,
                     const upstream_callbacks *cb, void *arg, upstream_req **out);
/* The caller does not want the response any more (its client went away): no callback is called
 * from now on and r is freed. The connection is closed, not kept, since the response was not
 * read to its end. Allowed inside r's own callbacks too (as returning UPSTREAM_ABORT). */
void upstream_req_cancel(upstream_req *r);
/* Reading resumes after on_body returned UPSTREAM_PAUSE; the next on_body comes from the loop,
 * never during this call. A no-op when not paused. */
void upstream_req_resume(upstream_req *r);
/* The last error's detail ("certificate verify failed: unable to get local issuer
 * certificate"), or "". */
const char *upstream_req_errstr(const upstream_req *r);
/* 1 if the request was sent on a kept-alive connection; 1 if it was retried once. */
int upstream_req_reused(const upstream_req *r);
int upstream_req_retried(const upstream_req *r);

/* The head given to on_head: the status, the HTTP minor version, headers by name
 * (case-insensitive; "" when empty, NULL when absent) or by index (0 .. count-1). */
int upstream_head_status(const upstream_head *h);
int upstream_head_http_minor(const upstream_head *h);
const char *upstream_head_header(const upstream_head *h, const char *name);
size_t upstream_head_count(const upstream_head *h);
upstream_header upstream_head_at(const upstream_head *h, size_t i);
/* The announced body length, or -1 (chunked, or to the close). */
long long upstream_head_content_length(const upstream_head *h);

/* What a pool holds for an origin now, and has done (for tests and metrics). */
typedef struct upstream_pool_stats {
    unsigned open;      /* connections open (connecting, busy or idle) */
    unsigned idle;      /* of which idle */
    unsigned queued;    /* requests waiting for a connection */
    unsigned most_open; /* the most open at once */
    uint64_t connects;  /* connections opened */
    uint64_t reuses;    /* requests sent on a kept-alive connection */
    uint64_t retries;   /* requests sent again after a stale connection */
    uint64_t refused;   /* requests refused with UPSTREAM_EQUEUEFULL */
    size_t buffered;    /* bytes read from the origin and not yet handed on */
} upstream_pool_stats;

void upstream_pool_stats_get(const upstream_pool *p, const upstream_origin *o,
                             upstream_pool_stats *out);

/* ---- headers (pure functions) ------------------------------------------------------------- */

/* 1 if name is hop-by-hop in a message whose headers are h[0..n): Connection, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, or a name listed in a Connection
 * header. */
int upstream_hop_by_hop(const char *name, const upstream_header *h, size_t n);
/* Copies h[0..n) to out (cap entries, not overlapping h) without its hop-by-hop headers, in
 * order. Returns how many, or -1 when out is too small. */
int upstream_headers_strip_hop(const upstream_header *h, size_t n, upstream_header *out,
                               size_t cap);

/* What the proxy knows of the client's request, for the forwarding headers. */
typedef struct upstream_forward {
    const char *client_addr; /* the client's address, "203.0.113.7" or "2001:db8::1" */
    const char *proto;       /* "http" or "https": how the client reached strata */
    const char *host;        /* the client's Host header, or NULL */
} upstream_forward;

/* The headers to send to the origin: h[0..n) without hop-by-hop headers, with X-Forwarded-For
 * appended to (", addr"), X-Forwarded-Proto and X-Forwarded-Host set (any the client sent are
 * replaced: they are the proxy's to say), and Via appended to ("1.1 strata"). Names and values
 * point into h or into buf (bufcap bytes) where built; at most cap go to out. Returns the count,
 * or -1 when out or buf is too small.
 *
 *     upstream_header out[110];
 *     char buf[1024];
 *     int n = upstream_headers_to_origin(h, nh, &(upstream_forward){"10.0.0.1", "http", host},
 *                                        out, 110, buf, sizeof buf);
 */
int upstream_headers_to_origin(const upstream_header *h, size_t n, const upstream_forward *f,
                               upstream_header *out, size_t cap, char *buf, size_t bufcap);
/* The headers to send back to the client: the response's h[0..n) without hop-by-hop headers and
 * with Via appended to. Same conventions as upstream_headers_to_origin. */
int upstream_headers_to_client(const upstream_header *h, size_t n, upstream_header *out, size_t cap,
                               char *buf, size_t bufcap);

#endif
