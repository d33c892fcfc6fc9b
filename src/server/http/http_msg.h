/* http_msg.h: one HTTP/1.x message framed by http-parser over a flat buffer: offsets, not
 * pointers.
 *
 * The idea: the bytes of a message stay where they were read. The parser's callbacks record
 * spans (offsets from the message's first byte) for the target, each header name and value and
 * the body, so the buffer may grow or move between reads; once the head is complete, names and
 * values are NUL-terminated in place. A body is either joined in place (chunk framing squeezed
 * out: the destination never runs ahead of the source) or handed out piece by piece as it is
 * parsed (streaming), and then takes no room. Nothing here knows a socket or a connection: the
 * same framing serves a server's requests and, with HTTP_RESPONSE, a client's responses.
 *
 * Feeding stops (the parser pauses) after a head that announces a body, so the owner can decide
 * about the body before any of it is parsed, and after each complete message, so pipelined
 * messages are taken one at a time.
 */
#ifndef STRATA_SERVER_HTTP_MSG_H
#define STRATA_SERVER_HTTP_MSG_H

#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

enum { HTTP_MSG_MAX_HEADERS = 100 };

/* Bytes of the buffer, counted from the start of the message. */
typedef struct http_span {
    uint32_t off, len;
} http_span;

/* What http_msg_feed stopped at. */
enum http_msg_event {
    HTTP_MSG_MORE = 0,  /* everything given was parsed: more bytes are needed */
    HTTP_MSG_HEAD = 1,  /* a head that announces a body is complete; no body byte parsed */
    HTTP_MSG_DONE = 2,  /* the message is complete */
    HTTP_MSG_ERROR = 3, /* refused: status, code and why in the message */
};

/* A body piece, when streaming: return 0 to go on, -1 to refuse the message. */
typedef int (*http_msg_piece_cb)(void *arg, const char *data, size_t len);

typedef struct http_msg {
    http_parser parser;
    char *base;          /* the message's first byte, set by http_msg_feed */
    const char *fed_end; /* the end of the bytes being fed */
    size_t max_headers, max_body;
    http_span url, name[HTTP_MSG_MAX_HEADERS], value[HTTP_MSG_MAX_HEADERS];
    unsigned nhdr;
    int hdr_state;              /* 0 none yet, 1 in a name, 2 in a value */
    http_span body;             /* joined in place (not when streaming) */
    uint64_t body_seen;         /* body bytes parsed, streamed or not */
    uint32_t head_len;          /* the head's size, once complete */
    http_msg_piece_cb on_piece; /* set: body pieces go there instead of being kept */
    void *piece_arg;
    int fail_status; /* HTTP_MSG_ERROR: the answer this deserves (-1: on_piece refused it) */
    const char *fail_code, *fail_msg;
    unsigned headers_done : 1, body_started : 1, complete : 1, has_body : 1, skip_body : 1;
} http_msg;

/* Prepares m for a stream of requests (HTTP_REQUEST) or responses (HTTP_RESPONSE), with the
 * limits on a head's and a body's size in bytes. */
void http_msg_init(http_msg *m, enum http_parser_type type, size_t max_headers, size_t max_body);
/* Forgets the message before (called between messages). */
void http_msg_reset(http_msg *m);
/* Parses data[0..len), which lies in the buffer after base, the first byte of the current
 * message. Sets *used to the bytes parsed and returns where it stopped (enum http_msg_event).
 * After HTTP_MSG_HEAD or HTTP_MSG_DONE, feed the rest again from data + *used. */
int http_msg_feed(http_msg *m, char *base, const char *data, size_t len, size_t *used);

/* A header's value (case-insensitive name; "" when empty), or NULL; base as for feed. */
const char *http_msg_header(const http_msg *m, const char *base, const char *name);
/* The message's target (requests), NUL-terminated in place. */
char *http_msg_url(const http_msg *m, char *base);
/* 1 once the head says the connection stays open after this message. */
int http_msg_keep_alive(const http_msg *m);
/* The announced body length, or -1 (chunked, or none announced). */
long long http_msg_content_length(const http_msg *m);
/* 1 if the body is chunked. */
int http_msg_chunked(const http_msg *m);

#endif
