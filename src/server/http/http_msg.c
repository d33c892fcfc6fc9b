/* http_msg.c: HTTP/1.x framing with http-parser over a flat buffer (http_msg.h says why
 * offsets).
 *
 * http-parser calls back with the target, each header and the body, possibly in several pieces
 * when they straddle reads; each callback extends a span measured from the message's first byte.
 * The checks an origin server owes the framing (RFC 7230) are made here, once the head is
 * complete and before any of the body is parsed, so a refusal never depends on how the bytes
 * were cut: whitespace before a colon, folded values, one Host, the head and body limits.
 */
#include <string.h>
#include <strings.h>

#include "http_msg.h"

static uint32_t rel(const http_msg *m, const char *at)
{
    return (uint32_t)(at - m->base);
}

/* Grows s to cover [at, at + len): callbacks may deliver one item in several pieces. */
static void extend(http_msg *m, http_span *s, int fresh, const char *at, size_t len)
{
    if (fresh)
        s->off = rel(m, at);
    s->len = rel(m, at) + (uint32_t)len - s->off;
}

static int refuse(http_msg *m, int status, const char *code, const char *msg)
{
    m->fail_status = status;
    m->fail_code = code;
    m->fail_msg = msg;
    return -1; /* the parser stops with HPE_CB_* */
}

/* http-parser skips CR/LF between messages without calling on_message_begin, so nothing of the
 * last message may look current until then: fuzz_http found its body offsets applied to the
 * next one. Hence one reset, called when a message begins and when the owner is done with one. */
void http_msg_reset(http_msg *m)
{
    m->url.len = 0;
    m->nhdr = 0;
    m->hdr_state = 0;
    m->body.len = 0;
    m->body_seen = 0;
    m->head_len = 0;
    m->on_piece = NULL;
    m->headers_done = 0;
    m->body_started = 0;
    m->complete = 0;
    m->has_body = 0;
}

static int on_message_begin(http_parser *p)
{
    http_msg_reset(p->data);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    http_msg *m = p->data;
    extend(m, &m->url, m->url.len == 0, at, len);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    http_msg *m = p->data;
    if (m->headers_done)
        return 0; /* a chunked body's trailer: not used */
    if (m->hdr_state != 1) {
        if (m->nhdr == HTTP_MSG_MAX_HEADERS)
            return refuse(m, 431, "headers_too_large", "too many header lines");
        m->value[m->nhdr].len = 0;
        m->nhdr++;
    }
    extend(m, &m->name[m->nhdr - 1], m->hdr_state != 1, at, len);
    m->hdr_state = 1;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    http_msg *m = p->data;
    if (m->headers_done)
        return 0;
    extend(m, &m->value[m->nhdr - 1], m->hdr_state != 2, at, len);
    m->hdr_state = 2;
    return 0;
}

/* NUL-terminates the target, names and values in the buffer: the bytes after each (' ', ':',
 * '\r') were already read by the parser, which never looks back. */
static void terminate_in_place(http_msg *m)
{
    char *b = m->base;
    if (m->url.len)
        b[m->url.off + m->url.len] = '\0';
    for (unsigned i = 0; i < m->nhdr; i++) {
        b[m->name[i].off + m->name[i].len] = '\0';
        http_span *v = &m->value[i];
        while (v->len > 0 && (b[v->off + v->len - 1] == ' ' || b[v->off + v->len - 1] == '\t'))
            v->len--;
        if (v->len > 0)
            b[v->off + v->len] = '\0';
    }
}

/* The size of the message's head, up to its last header (http-parser resets its own count). */
static size_t head_size(const http_msg *m)
{
    size_t end = m->url.off + m->url.len;
    if (m->nhdr > 0) {
        const http_span *n = &m->name[m->nhdr - 1], *v = &m->value[m->nhdr - 1];
        end = v->len ? v->off + v->len : n->off + n->len;
    }
    return end;
}

/* RFC 9112 2.2: a bare LF may be taken as a line end, but an intermediary that does not (or a
 * backend behind the coming proxy) would see other lines than we do; requests are refused with
 * one rather than risk that. The head is scanned from its target to its empty line, all of
 * which the parser has read by now (it stops at the first bare LF if any). Chunk lines in a
 * body are left to http-parser, which takes a bare LF there: a body strata keeps or forwards
 * is re-framed, so no later hop parses the client's chunk framing. */
static int bare_lf(const http_msg *m)
{
    const char *b = m->base, *p = b + m->url.off;
    for (;;) {
        p = memchr(p, '\n', (size_t)(m->fed_end - p));
        if (p == NULL || p[-1] != '\r')
            return 1;
        if (p[-2] == '\n')
            return 0; /* CR LF CR LF: the end of the head */
        p++;
    }
}

/* RFC 7230 3.2.4: whitespace before the colon must be refused (a proxy that reads
 * "Content-Length : 5" differently from us could smuggle a request), and a folded value
 * (obs-fold) may be: we do, rather than carry its CR LF into the value. RFC 7230 5.4: an
 * HTTP/1.1 request without Host, or any with two, is answered 400. RFC 9112 6.1: an HTTP/1.0
 * message with Transfer-Encoding has faulty framing (1.0 has no chunked coding, and a 1.0 hop
 * would read it by Content-Length or to the close): refused, which closes the connection. */
static int check_headers(http_msg *m)
{
    const char *b = m->base;
    int http10 = m->parser.http_minor == 0;
    unsigned hosts = 0, codings = 0;
    for (unsigned i = 0; i < m->nhdr; i++) {
        if (strpbrk(b + m->name[i].off, " \t") != NULL ||
            (m->value[i].len && memchr(b + m->value[i].off, '\n', m->value[i].len) != NULL))
            return refuse(m, 400, "bad_request", "malformed header line");
        hosts += strcasecmp(b + m->name[i].off, "Host") == 0;
        codings += http10 && strcasecmp(b + m->name[i].off, "Transfer-Encoding") == 0;
    }
    if (m->parser.type != HTTP_REQUEST)
        return 0;
    if (hosts > 1 || (hosts == 0 && m->parser.http_minor >= 1))
        return refuse(m, 400, "bad_request", "an HTTP/1.1 request needs one Host header");
    if (codings > 0)
        return refuse(m, 400, "bad_request",
                      "Transfer-Encoding in an HTTP/1.0 request: its framing cannot be trusted");
    return 0;
}

static int body_follows(const http_parser *p)
{
    if (p->flags & F_CHUNKED)
        return 1;
    if (p->content_length != UINT64_MAX)
        return p->content_length > 0;
    /* A response without a length runs to the close, unless its status has no body (RFC 9112
     * 6.3; a response to HEAD is the owner's to say: skip_body). */
    unsigned st = p->status_code;
    return p->type == HTTP_RESPONSE && st / 100 != 1 && st != 204 && st != 304;
}

static int on_headers_complete(http_parser *p)
{
    http_msg *m = p->data;
    int request = p->type == HTTP_REQUEST;
    if (head_size(m) > m->max_headers)
        return refuse(m, 431, "headers_too_large", "the request headers are too large");
    if (p->http_major != 1)
        return refuse(m, 400, "bad_request", "only HTTP/1.0 and HTTP/1.1 are spoken");
    if (request && m->url.len == 0)
        return refuse(m, 400, "bad_request", "the request has no target");
    if (request && bare_lf(m))
        return refuse(m, 400, "bad_request", "a line of the request head ends in LF without CR");
    terminate_in_place(m);
    if (check_headers(m) != 0)
        return -1;
    int chunked = (p->flags & F_CHUNKED) != 0;
    /* RFC 9112 6.3: 1xx, 204 and 304 responses end with their head, whatever Content-Length or
     * Transfer-Encoding say (a 304 may carry the length of the body it stands for). */
    unsigned st = p->status_code;
    int bodiless = !request && (st / 100 == 1 || st == 204 || st == 304);
    if (!chunked && !bodiless && p->content_length != UINT64_MAX && p->content_length > m->max_body)
        return refuse(m, 413, "body_too_large", "the request body is over STRATA_MAX_BODY");
    m->headers_done = 1;
    m->head_len = (uint32_t)head_size(m);
    if (m->skip_body || bodiless)
        return 1; /* a response to HEAD (the owner knows), or a status without a body */
    if (body_follows(p)) {
        /* Stop before the body: its owner decides what becomes of it (kept, streamed or
         * refused) before a byte of it is parsed. */
        m->has_body = 1;
        http_parser_pause(p, 1);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    http_msg *m = p->data;
    if (!m->body_started) {
        m->body.off = rel(m, at);
        m->body_started = 1;
    }
    if (m->body_seen + len > m->max_body)
        return refuse(m, 413, "body_too_large", "the request body is over STRATA_MAX_BODY");
    m->body_seen += len;
    if (m->on_piece != NULL)
        return m->on_piece(m->piece_arg, at, len) == 0 ? 0 : refuse(m, -1, "refused", NULL);
    /* Joins chunks in place: the destination never runs ahead of at (chunk framing only adds
     * bytes), and everything before at was already read by the parser. */
    char *dst = m->base + m->body.off + m->body.len;
    if (dst != at)
        memmove(dst, at, len);
    m->body.len += (uint32_t)len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_msg *m = p->data;
    m->complete = 1;
    http_parser_pause(p, 1); /* one message at a time: answers leave in order */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void http_msg_init(http_msg *m, enum http_parser_type type, size_t max_headers, size_t max_body)
{
    memset(m, 0, sizeof *m);
    http_parser_init(&m->parser, type);
    m->parser.data = m;
    m->max_headers = max_headers;
    m->max_body = max_body;
}

int http_msg_feed(http_msg *m, char *base, const char *data, size_t len, size_t *used)
{
    m->base = base;
    m->fed_end = data + len;
    size_t n = http_parser_execute(&m->parser, &settings, data, len);
    *used = n;
    enum http_errno e = HTTP_PARSER_ERRNO(&m->parser);
    if (e == HPE_PAUSED) {
        http_parser_pause(&m->parser, 0);
        return m->complete ? HTTP_MSG_DONE : HTTP_MSG_HEAD;
    }
    if (e != HPE_OK) {
        if (m->fail_status == 0) {
            int length = e == HPE_INVALID_CONTENT_LENGTH || e == HPE_UNEXPECTED_CONTENT_LENGTH;
            refuse(m, 400, "bad_request", length ? "bad Content-Length" : "malformed HTTP request");
        }
        return HTTP_MSG_ERROR;
    }
    if (!m->headers_done && (size_t)(data + n - base) > m->max_headers) {
        refuse(m, 431, "headers_too_large", "the request headers are too large");
        return HTTP_MSG_ERROR;
    }
    return HTTP_MSG_MORE;
}

/* A request looks up several names, each against every header: the lengths are compared first,
 * so a lookup costs one comparison of two integers per header that cannot match. */
const char *http_msg_header(const http_msg *m, const char *base, const char *name)
{
    size_t n = strlen(name);
    for (unsigned i = 0; i < m->nhdr; i++)
        if (m->name[i].len == n && strncasecmp(base + m->name[i].off, name, n) == 0)
            return m->value[i].len ? base + m->value[i].off : "";
    return NULL;
}

char *http_msg_url(const http_msg *m, char *base)
{
    return base + m->url.off;
}

int http_msg_keep_alive(const http_msg *m)
{
    return http_should_keep_alive(&m->parser) != 0;
}

long long http_msg_content_length(const http_msg *m)
{
    if ((m->parser.flags & F_CHUNKED) || m->parser.content_length == UINT64_MAX)
        return -1;
    return (long long)m->parser.content_length;
}

int http_msg_chunked(const http_msg *m)
{
    return (m->parser.flags & F_CHUNKED) != 0;
}
