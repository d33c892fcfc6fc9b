/* http_server.h: a lean HTTP/1.1 server layer on a libevent loop: connections in, requests out
 * to callbacks, answers back. It knows no routes, no JSON and no metrics.
 *
 * The idea (libuv's uv_listen, h2o's generators): whoever serves requests hands the layer its
 * limits and a set of callbacks, and the layer does the protocol: accepting, framing
 * (http_msg.h), keep-alive and pipelining, 100-continue, the head, body and lingering-close
 * deadlines, refusals of what breaks the framing or the limits, and writing with backpressure.
 *
 * A request flows: on_head (the request line and headers are in, no body byte read, no
 * 100 Continue sent) decides: answer at once (a refusal, a route not found, a bad token: then no
 * body is read and no 100 is sent), gather the body whole, or stream it to on_body as it
 * arrives; on_request is called once the whole message is in. The owner answers with one call
 * (http_conn_respond) or in pieces (http_conn_start, http_conn_write, http_conn_end: a write
 * reports a slow client, and on_writable says when to go on), then calls http_conn_done.
 *
 * Ownership: a server owns its listener and every connection it accepted (http_server_free
 * closes them). One request at a time per connection: its head, body and context stay valid, in
 * place, until http_conn_done; pointers from the accessors are valid until then.
 *
 * Threads: a server and its connections belong to one event loop's thread.
 */
#ifndef STRATA_SERVER_HTTP_SERVER_H
#define STRATA_SERVER_HTTP_SERVER_H

#include <stddef.h>

struct event_base;
struct sockaddr;

typedef struct http_server http_server;
typedef struct http_conn http_conn;

typedef struct http_limits {
    size_t max_headers;       /* bytes of a request head: 431 past it */
    size_t max_body;          /* bytes of one request body: 413 past it (before it is read
                                 when the length is announced) */
    size_t body_budget;       /* bytes of bodies held at once by the server: 503 past it;
                                 0: 4 * max_body */
    unsigned max_connections; /* open connections: 503 at accept past it, and no accepting at
                                 http_server_most_open() of them; 0: no limit */
    unsigned idle_timeout_s;  /* an idle keep-alive connection, a client not reading its
                                 answers, and a head's deadline from its first byte */
    unsigned body_timeout_s;  /* a body's deadline from the end of its head; 0: idle */
    unsigned linger_ms;       /* the longest lingering close; 0: 5000 */
    size_t ctx_size;          /* bytes of the owner's context of each request (http_conn_ctx) */
} http_limits;

/* What on_head decides. */
enum http_head_verdict {
    HTTP_HEAD_GATHER = 0,   /* read the whole body (in place), then on_request */
    HTTP_HEAD_STREAM = 1,   /* hand body pieces to on_body as they arrive, then on_request */
    HTTP_HEAD_ANSWERED = 2, /* answered already (respond + done): no body is read, no 100 sent,
                               and the connection closes if a body was announced */
};

/* What http_conn_write says. */
enum http_write_result {
    HTTP_WRITE_OK = 0,   /* go on */
    HTTP_WRITE_FULL = 1, /* queued, but the client is slow: stop until on_writable */
    HTTP_WRITE_GONE = -1 /* the client left or the answer was cut: stop, then http_conn_done */
};

typedef struct http_callbacks {
    void *arg; /* passed to every callback */
    /* Required. The head is complete (and valid); returns an enum http_head_verdict. Called for
     * every request, with or without a body. */
    int (*on_head)(http_conn *c, void *arg);
    /* HTTP_HEAD_STREAM: a piece of the body, as parsed (chunked framing removed). Returns 0, or
     * -1 to stop reading the body (the connection is closed once the request is done). */
    int (*on_body)(http_conn *c, const char *data, size_t len, void *arg);
    /* Required. The whole request is in (with HTTP_HEAD_GATHER, http_conn_body has it). */
    void (*on_request)(http_conn *c, void *arg);
    /* Optional: the layer refuses a message (bad framing, a limit, a deadline). Writes the
     * body of the refusal (at most cap bytes) into body and returns its length, setting
     * *content_type; the place to count and log refusals. Without it: a text/plain body. */
    size_t (*on_refusal)(http_conn *c, int status, const char *code, const char *why, char *body,
                         size_t cap, const char **content_type, void *arg);
    /* Optional: a request whose head was accepted will not be completed: its body was refused
     * (a limit, a deadline, bad framing) or its client left. With HTTP_HEAD_GATHER the request
     * is over (no on_request, no http_conn_done): release what its context holds. With
     * HTTP_HEAD_STREAM the owner still calls http_conn_done. */
    void (*on_drop)(http_conn *c, void *arg);
    /* Optional: an answer written in pieces may go on (after HTTP_WRITE_FULL). */
    void (*on_writable)(http_conn *c, void *arg);
    /* Optional: accepting failed (err: EMFILE, ENFILE, ...) failures times since the last call;
     * the layer pauses accepting a moment each time and calls this at most every 10 s. */
    void (*on_accept_error)(int err, unsigned long failures, void *arg);
} http_callbacks;

/* A server on base with limits and callbacks (both copied). Returns NULL when out of memory. */
http_server *http_server_new(struct event_base *base, const http_limits *limits,
                             const http_callbacks *cb);
/* Changes the limits: head and body sizes for connections accepted from now on, the others at
 * once; ctx_size cannot change (the spares were made for it). */
void http_server_set_limits(http_server *s, const http_limits *limits);
/* Starts accepting on the listening socket fd (owned from now on). Returns 0, or -1 with the
 * reason in err (fd is closed). */
int http_server_listen(http_server *s, int fd, char *err, size_t errcap);
/* Serves the connected, non-blocking socket fd (owned from now on); sa is the peer's address
 * (may be NULL). What the listener does for each connection; tests hand it a socketpair. */
void http_server_adopt(http_server *s, int fd, const struct sockaddr *sa);
/* Stops accepting (a drain); open connections are still served. */
void http_server_stop_listening(http_server *s);
/* 1 if some connection still has answer bytes its client has not taken. */
int http_server_unsent(const http_server *s);
/* Open connections, and connections not yet freed (a closed one waits for its request). */
unsigned http_server_open(const http_server *s);
unsigned http_server_alive(const http_server *s);
/* Bytes of request bodies held now (within limits.body_budget). */
size_t http_server_body_held(const http_server *s);
/* The most sockets a server with this connection limit holds open (0: no limit): the limit,
 * and room past it to tell a few more they are refused (503) instead of leaving them unanswered
 * in the kernel's queue; past that, accepting waits until one closes. */
unsigned http_server_most_open(unsigned max_connections);
/* Accepts that failed since the server started (each was followed by a pause). */
unsigned long http_server_accept_failures(const http_server *s);
/* Bytes of input buffers the connections hold now (they grow with what arrives). */
size_t http_server_buffered(const http_server *s);
/* Closes every connection and the listener, and frees s (the loop has stopped). NULL is a
 * no-op. */
void http_server_free(http_server *s);

/* ---- the request ---------------------------------------------------------------------------- */

/* The owner's context of the request: limits.ctx_size bytes, not zeroed, kept between requests
 * (reused, not freed), so fields the owner does not reset keep their last values. */
void *http_conn_ctx(http_conn *c);
/* The method (http-parser's enum http_method). */
unsigned http_conn_method(const http_conn *c);
/* 1 for an HTTP/1.0 client. */
int http_conn_http10(const http_conn *c);
/* The target's path, still percent-encoded (absolute-form reduced to its path). */
const char *http_conn_path(const http_conn *c);
/* The raw query string (after '?', still percent-encoded), or NULL. */
const char *http_conn_query(const http_conn *c);
/* A header's value (case-insensitive name), or NULL. */
const char *http_conn_header(const http_conn *c, const char *name);
/* The request's header lines, in order: how many, and line i's name and value (NUL-terminated;
 * i out of range: NULL). A proxy forwards them all. */
unsigned http_conn_header_count(const http_conn *c);
const char *http_conn_header_at(const http_conn *c, unsigned i, const char **value);
/* The gathered body (contiguous, chunks joined), or NULL with *len 0. */
const char *http_conn_body(const http_conn *c, size_t *len);
/* The client's address, as text ("?" when unknown). */
const char *http_conn_peer(const http_conn *c);

/* ---- answering ------------------------------------------------------------------------------ */

/* Called with data, its length and arg once bytes given by reference were written (or dropped). */
typedef void (*http_release_cb)(const void *data, size_t len, void *arg);

/* The answer will end with the connection ("Connection: close"). */
void http_conn_close_after(http_conn *c);
/* Queues the whole answer: status line, Date, Content-Length, hdrs (hlen bytes of
 * "Name: value\r\n" lines), Connection, then the body (none for HEAD, 1xx, 204, 304): len bytes
 * at body, copied; or, when release is not NULL, sent by reference and release(body, len, arg)
 * called once written or dropped. The fast path: a small body is copied beside the head. */
void http_conn_respond(http_conn *c, int status, const char *hdrs, size_t hlen, const char *body,
                       size_t len, http_release_cb release, void *arg);
/* Starts an answer whose body follows in pieces: content_length bytes, or -1 when unknown
 * (chunked to HTTP/1.1 clients; to HTTP/1.0 ones, ended by closing). Returns an
 * enum http_write_result. */
int http_conn_start(http_conn *c, int status, const char *hdrs, size_t hlen,
                    long long content_length);
/* Queues a piece of that body (copied). Returns an enum http_write_result. */
int http_conn_write(http_conn *c, const void *data, size_t len);
/* Ends that body (the last chunk, when chunked). */
void http_conn_end(http_conn *c);
/* The request is over: the connection sends what is queued and goes on with the next one.
 * c's request (and its context) must not be used afterwards. */
void http_conn_done(http_conn *c);

/* The standard reason phrase of a status. */
const char *http_reason(int status);

#endif
