/* conn.h: strata serve's HTTP/1.1 connections: accepting, reading, parsing (http-parser),
 * writing, keep-alive, pipelining, limits and timeouts, on a worker's libevent loop.
 *
 * Ownership: a worker owns its listener and every connection it accepted (conn_close_all frees
 * them). A connection owns the one request it is answering (req): the request, its headers and
 * its body live in the connection's buffers until the request is answered (conn_respond, then
 * conn_done); pointers from conn_header / conn_query / conn_body are valid until then.
 */
#ifndef STRATA_SERVER_CONN_H
#define STRATA_SERVER_CONN_H

#include <stddef.h>

#include <strata/value.h>

typedef struct worker worker;
typedef struct req req;

/* What a worker keeps between requests for its connections to reuse: read buffers and request
 * contexts (conn.c says why). Zeroed with the worker; freed by conn_close_all. */
typedef struct conn_spares {
    struct conn_spare *in, *q;
    unsigned nin, nq;
} conn_spares;

/* Starts accepting on the listening socket fd (owned from now on). Returns 0, or -1 with the
 * reason in err. */
int conn_listen(worker *w, int fd, char *err, size_t errcap);
/* Serves the connected, non-blocking socket fd (owned from now on) from w's loop; sa is the
 * peer's address (may be NULL). What the listener calls for each accepted connection; the HTTP
 * fuzz target hands it one end of a socketpair. */
struct sockaddr;
void conn_adopt(worker *w, int fd, const struct sockaddr *sa);
/* Stops accepting (drain); open connections keep being served. */
void conn_stop_listening(worker *w);
/* 1 if some connection of w still has answer bytes the client has not taken (drain waits). */
int conn_unsent(worker *w);
/* Closes and frees the listener and every connection (the loop has stopped). */
void conn_close_all(worker *w);

/* ---- the request being answered ----------------------------------------------------------- */

/* A request header's value (case-insensitive name), or NULL. */
const char *conn_header(req *q, const char *name);
/* The raw query string (after '?', still percent-encoded), or NULL. */
const char *conn_query(req *q);
/* The body (contiguous, chunked bodies already joined), or NULL with *len 0. */
const char *conn_body(req *q, size_t *len);
/* The client's address, as text. */
const char *conn_peer(req *q);

/* ---- answering ---------------------------------------------------------------------------- */

/* Queues q's response: status line, Date, Content-Length, q->out_hdr, Connection, then the body
 * (none for HEAD, 204, 304). The body is len bytes at body, copied; or, when v is not NULL, v's
 * bytes, sent without a copy when large (v is released in every case). */
void conn_respond(req *q, int status, const char *body, size_t len, strata_value *v);
/* The request is over: the connection sends what is queued and goes on with the next one. q must
 * not be used afterwards. */
void conn_done(req *q);

#endif
