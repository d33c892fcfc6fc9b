/* strata_test_origin.c: an HTTP/1.1 origin for the tests, answering each request as the
 * request's own headers tell it to.
 *
 * The idea: a test drives the upstream client against a real process on a real socket, and
 * needs the origin to misbehave on cue (slow heads, slow bodies, resets, closes, stale
 * keep-alive connections) and to say what it saw (connections, requests, the TLS server name).
 * A process, not a thread of the test, so the harness can SIGKILL it, SIGSTOP it, and start it
 * again on the same port. Each connection is a thread with blocking I/O: simple beats fast here.
 *
 *     strata_test_origin --port 7701 [--cert server.pem --key server.key]
 *
 * Controls, as request headers (all optional):
 *     X-Origin-Status: 503              the status (200)
 *     X-Origin-Body: text               the body; or
 *     X-Origin-Body-Size: 1048576       that many bytes, byte i = 'a' + i % 26
 *     X-Origin-Header: Name: value      a header to add (repeatable)
 *     X-Origin-Delay-Ms: 500            wait before the head
 *     X-Origin-Chunk-Size: 1000         write the body in pieces this big ...
 *     X-Origin-Chunk-Delay-Ms: 10       ... with this pause between them
 *     X-Origin-Chunked: 1               Transfer-Encoding: chunked
 *     X-Origin-No-Length: 1             no length: the body runs to the close
 *     X-Origin-Close: 1                 Connection: close, then close
 *     X-Origin-Close-After-Head: 1      send the head (with its length), then close
 *     X-Origin-Reset-After: 5000        send the head and that many body bytes, then a reset
 *     X-Origin-Drop-Next: 1             answer this one; then read the connection's next
 *                                       request and close without answering (a stale
 *                                       keep-alive connection, as the client sees it)
 *     X-Origin-Bad: 1                   answer bytes that are not HTTP
 * Every answer carries X-Origin-Conn (the connection's number, from 1), X-Origin-Req (the
 * request's number on it, from 1) and, under TLS, X-Origin-SNI (the server name the client sent,
 * or "-").
 *
 * Special targets: GET /__count answers "connections=C requests=R\n" (heads received, itself not
 * counted); GET /__echo answers the request's head and body as received; an OpenAI-compatible
 * API's paths (.../chat/completions, .../embeddings, GET /__openai, ...) are fake_openai.h's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "fake_openai.h"

enum { HEAD_MAX = 65536 };

static SSL_CTX *tls_ctx;
static atomic_ulong n_conns, n_reqs;

typedef struct io {
    int fd;
    SSL *ssl;
    unsigned long id;
    char sni[256];
    char buf[HEAD_MAX + 1];
    size_t len; /* bytes in buf */
} io;

static ssize_t io_read(io *c, void *p, size_t n)
{
    if (c->ssl != NULL) {
        int r = SSL_read(c->ssl, p, (int)n);
        return r > 0 ? r : -1;
    }
    ssize_t r;
    do
        r = recv(c->fd, p, n, 0);
    while (r < 0 && errno == EINTR);
    return r > 0 ? r : -1;
}

static int io_write(io *c, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w;
        if (c->ssl != NULL) {
            int r = SSL_write(c->ssl, s, (int)n);
            w = r > 0 ? r : -1;
        } else {
            do
                w = send(c->fd, s, n, MSG_NOSIGNAL);
            while (w < 0 && errno == EINTR);
        }
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static void sleep_ms(long ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* The value of a header in a head (NUL-terminated lines kept as read), the nth one, or NULL. */
static const char *header(const char *head, const char *name, int nth, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    const char *p = strstr(head, "\r\n");
    while (p != NULL && p[2] != '\r') {
        const char *line = p + 2;
        p = strstr(line, "\r\n");
        if (p == NULL)
            break;
        if ((size_t)(p - line) > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            if (nth-- > 0)
                continue;
            const char *v = line + nlen + 1;
            while (*v == ' ')
                v++;
            size_t vlen = (size_t)(p - v);
            if (vlen >= cap)
                vlen = cap - 1;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return out;
        }
    }
    return NULL;
}

static long num(const char *head, const char *name, long dflt)
{
    char v[64];
    return header(head, name, 0, v, sizeof v) ? strtol(v, NULL, 10) : dflt;
}

/* Reads one request: its head (returned, NUL-terminated, in c->buf) and body (skipped after
 * being counted, or kept after the head for /__echo). Returns the total size, or -1. */
static long read_request(io *c, size_t *head_len)
{
    char *end;
    for (;;) {
        c->buf[c->len] = '\0';
        if ((end = strstr(c->buf, "\r\n\r\n")) != NULL)
            break;
        if (c->len >= HEAD_MAX)
            return -1;
        ssize_t n = io_read(c, c->buf + c->len, HEAD_MAX - c->len);
        if (n <= 0)
            return -1;
        c->len += (size_t)n;
    }
    *head_len = (size_t)(end + 4 - c->buf);
    char v[32];
    long body = header(c->buf, "Content-Length", 0, v, sizeof v) ? strtol(v, NULL, 10) : 0;
    if (body < 0 || *head_len + (size_t)body > HEAD_MAX)
        return -1;
    while (c->len < *head_len + (size_t)body) {
        ssize_t n = io_read(c, c->buf + c->len, HEAD_MAX - c->len);
        if (n <= 0)
            return -1;
        c->len += (size_t)n;
    }
    return (long)(*head_len + (size_t)body);
}

static void reset(io *c)
{
    struct linger l = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

/* Writes the body: len bytes of data (or the pattern when data is NULL), in pieces. Returns -1
 * when the connection is to be dropped (reset_after reached, or a write failed). */
static int write_body(io *c, const char *data, size_t len, int chunked, long piece, long delay,
                      long reset_after)
{
    static const char *const pattern = "abcdefghijklmnopqrstuvwxyz";
    char tmp[16384];
    size_t off = 0;
    if (piece <= 0 || piece > (long)sizeof tmp)
        piece = sizeof tmp;
    while (off < len) {
        size_t n = len - off < (size_t)piece ? len - off : (size_t)piece;
        if (reset_after >= 0 && off + n > (size_t)reset_after)
            n = (size_t)reset_after - off;
        if (n == 0)
            break;
        const char *p = tmp;
        if (data != NULL)
            p = data + off;
        else
            for (size_t i = 0; i < n; i++)
                tmp[i] = pattern[(off + i) % 26];
        char size[32];
        int sl = snprintf(size, sizeof size, "%zx\r\n", n);
        if ((chunked && io_write(c, size, (size_t)sl) != 0) || io_write(c, p, n) != 0 ||
            (chunked && io_write(c, "\r\n", 2) != 0))
            return -1;
        off += n;
        if (off < len)
            sleep_ms(delay);
    }
    if (reset_after >= 0 && (size_t)reset_after < len) {
        reset(c);
        return -1;
    }
    if (chunked && io_write(c, "0\r\n\r\n", 5) != 0)
        return -1;
    return 0;
}

static const char *header1(const char *head, const char *name, char *out, size_t cap)
{
    return header(head, name, 0, out, cap);
}

/* Answers with the fake OpenAI API's answer a (freed): a plain body, or events, one chunk each,
 * X-Origin-Chunk-Delay-Ms apart. Returns 0, or -1 to close the connection. */
static int answer_api(io *c, const char *head, fake_answer *a, unsigned long nreq)
{
    char out[1024];
    int n = snprintf(out, sizeof out,
                     "HTTP/1.1 %d Status\r\nX-Origin-Conn: %lu\r\nX-Origin-Req: %lu\r\n"
                     "Content-Type: %s\r\n",
                     a->status, c->id, nreq, a->content_type);
    if (a->stream)
        n += snprintf(out + n, sizeof out - (size_t)n, "Transfer-Encoding: chunked\r\n\r\n");
    else
        n += snprintf(out + n, sizeof out - (size_t)n, "Content-Length: %zu\r\n\r\n", a->len);
    int rc = io_write(c, out, (size_t)n);
    if (rc == 0 && !a->stream)
        rc = io_write(c, a->body, a->len);
    long delay = num(head, "X-Origin-Chunk-Delay-Ms", 0);
    if (a->stream)
        fake_openai_streaming(1);
    for (size_t off = 0; rc == 0 && a->stream && off < a->len;) {
        const char *e = strstr(a->body + off, "\n\n");
        size_t len = e ? (size_t)(e + 2 - (a->body + off)) : a->len - off;
        char size[32];
        int sl = snprintf(size, sizeof size, "%zx\r\n", len);
        if (io_write(c, size, (size_t)sl) != 0 || io_write(c, a->body + off, len) != 0 ||
            io_write(c, "\r\n", 2) != 0)
            rc = -1;
        off += len;
        if (off < a->len)
            sleep_ms(delay);
    }
    if (rc == 0 && a->stream)
        rc = io_write(c, "0\r\n\r\n", 5);
    if (a->stream)
        fake_openai_streaming(-1);
    free(a->body);
    return rc;
}

/* Answers one request; returns 0 to go on with the connection, -1 to close it. */
static int answer(io *c, const char *head, const char *body, size_t body_len, unsigned long nreq,
                  int *drop_next)
{
    char out[8192], v[4096];
    int is_head = strncmp(head, "HEAD ", 5) == 0;
    if (strncmp(head, "GET /__count ", 13) == 0) {
        atomic_fetch_sub(&n_conns, 1); /* this connection was the count's, not a client's */
        char b[128];
        int bl =
            snprintf(b, sizeof b, "connections=%lu requests=%lu\n",
                     (unsigned long)atomic_load(&n_conns), (unsigned long)atomic_load(&n_reqs));
        int n =
            snprintf(out, sizeof out,
                     "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", bl, b);
        io_write(c, out, (size_t)n);
        return -1;
    }
    atomic_fetch_add(&n_reqs, 1);
    if (num(head, "X-Origin-Bad", 0)) {
        io_write(c, "HTTP/1.1 2OO OK\r\nbroken\r\n\r\n", 27);
        return -1;
    }
    sleep_ms(num(head, "X-Origin-Delay-Ms", 0));
    fake_answer fa;
    if (fake_openai(head, body, body_len, header1, &fa))
        return answer_api(c, head, &fa, nreq);
    int status = (int)num(head, "X-Origin-Status", 200);
    int chunked = num(head, "X-Origin-Chunked", 0) != 0;
    int no_length = num(head, "X-Origin-No-Length", 0) != 0;
    int close_after = num(head, "X-Origin-Close", 0) != 0 || no_length;
    long reset_after = num(head, "X-Origin-Reset-After", -1);
    *drop_next = num(head, "X-Origin-Drop-Next", 0) != 0;
    const char *data = NULL;
    size_t len = 0;
    char text[4096];
    char *echo = NULL;
    if (strncmp(head, "GET /__echo", 11) == 0 || strncmp(head, "POST /__echo", 12) == 0) {
        len = (size_t)(body - head) + body_len; /* head and body are contiguous in the buffer */
        echo = malloc(len);
        if (echo == NULL)
            return -1;
        memcpy(echo, head, len);
        echo[body - head - 2] = '\r'; /* serve() cut the head there */
        data = echo;
    } else if (header(head, "X-Origin-Body", 0, text, sizeof text) != NULL) {
        data = text;
        len = strlen(text);
    } else {
        len = (size_t)num(head, "X-Origin-Body-Size", 0);
    }
    int n = snprintf(out, sizeof out,
                     "HTTP/1.1 %d Status\r\nX-Origin-Conn: %lu\r\n"
                     "X-Origin-Req: %lu\r\n",
                     status, c->id, nreq);
    if (c->ssl != NULL)
        n += snprintf(out + n, sizeof out - (size_t)n, "X-Origin-SNI: %s\r\n",
                      c->sni[0] ? c->sni : "-");
    for (int i = 0; header(head, "X-Origin-Header", i, v, sizeof v) != NULL && n < 4096; i++)
        n += snprintf(out + n, sizeof out - (size_t)n, "%s\r\n", v);
    if (chunked)
        n += snprintf(out + n, sizeof out - (size_t)n, "Transfer-Encoding: chunked\r\n");
    else if (!no_length)
        n += snprintf(out + n, sizeof out - (size_t)n, "Content-Length: %zu\r\n", len);
    if (close_after)
        n += snprintf(out + n, sizeof out - (size_t)n, "Connection: close\r\n");
    n += snprintf(out + n, sizeof out - (size_t)n, "\r\n");
    int no_body = is_head || status == 204 || status == 304 || status / 100 == 1;
    int rc = io_write(c, out, (size_t)n);
    if (rc == 0 && num(head, "X-Origin-Close-After-Head", 0))
        rc = -1;
    if (rc == 0 && !no_body)
        rc = write_body(c, data, len, chunked, num(head, "X-Origin-Chunk-Size", 0),
                        num(head, "X-Origin-Chunk-Delay-Ms", 0), reset_after);
    free(echo);
    return rc != 0 || close_after ? -1 : 0;
}

static void *serve(void *arg)
{
    io *c = arg;
    if (tls_ctx != NULL) {
        c->ssl = SSL_new(tls_ctx);
        SSL_set_fd(c->ssl, c->fd);
        if (SSL_accept(c->ssl) != 1)
            goto out;
        const char *sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
        snprintf(c->sni, sizeof c->sni, "%s", sni ? sni : "");
    }
    int drop_next = 0;
    for (unsigned long nreq = 1;; nreq++) {
        size_t head_len;
        long total = read_request(c, &head_len);
        if (total < 0)
            break;
        if (drop_next) { /* the stale connection: the request is read, never answered */
            atomic_fetch_add(&n_reqs, 1);
            break;
        }
        c->buf[head_len - 2] = '\0'; /* the head, ending with its last header's CR LF */
        int rc = answer(c, c->buf, c->buf + head_len, (size_t)total - head_len, nreq, &drop_next);
        c->buf[head_len - 2] = '\r';
        memmove(c->buf, c->buf + total, c->len - (size_t)total);
        c->len -= (size_t)total;
        if (rc != 0)
            break;
    }
out:
    if (c->ssl != NULL) {
        SSL_set_quiet_shutdown(c->ssl, 1);
        SSL_free(c->ssl);
    }
    close(c->fd);
    free(c);
    return NULL;
}

int main(int argc, char **argv)
{
    int port = 0;
    const char *cert = NULL, *key = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--cert") == 0)
            cert = argv[i + 1];
        else if (strcmp(argv[i], "--key") == 0)
            key = argv[i + 1];
    }
    signal(SIGPIPE, SIG_IGN);
    if (cert != NULL) {
        tls_ctx = SSL_CTX_new(TLS_server_method());
        if (tls_ctx == NULL || SSL_CTX_use_certificate_chain_file(tls_ctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(tls_ctx, key, SSL_FILETYPE_PEM) != 1) {
            fprintf(stderr, "origin: cannot load %s / %s\n", cert, key);
            ERR_print_errors_fp(stderr);
            return 1;
        }
    }
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 128) != 0) {
        fprintf(stderr, "origin: cannot listen on %d: %s\n", port, strerror(errno));
        return 1;
    }
    fprintf(stderr, "origin: listening on 127.0.0.1:%d%s\n", port, cert ? " (TLS)" : "");
    for (;;) {
        int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            sleep_ms(10);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        io *c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->id = atomic_fetch_add(&n_conns, 1) + 1;
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, serve, c) != 0) {
            close(fd);
            free(c);
        }
        pthread_attr_destroy(&attr);
    }
}
