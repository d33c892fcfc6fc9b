/* fuzz_upstream.c: the upstream client's response path (src/server/upstream) end to end, over a
 * real loopback connection: every input is one origin's answer.
 *
 * Each input: a pool on its own loop sends a request to a listener of this process; the
 * connection is accepted here, the request read, and the input's bytes written back as the
 * origin's response, in pieces with loop turns between them, so the head, chunk lines and bodies
 * are cut anywhere; then the origin closes. What the client does with it all runs for real:
 * upstream_conn.c's reading and framing (http_msg with HTTP_RESPONSE), 1xx skipping, pausing
 * and resuming, the end-of-stream rules, the pool taking the connection back or closing it.
 *
 * Input layout: byte 0: the write pieces' size (low nibble: 1 byte .. all at once); byte 1:
 * flags (F_* below); the rest: the response.
 *
 * Checked, beside ASan and UBSan: on_done is called exactly once (never after an abort), with 0
 * or a code of the table; on_head at most once, before any body byte; the body handed on is
 * never longer than what was written; after a HEAD no body at all; once done, the pool holds
 * no connection busy and, freed, everything is released.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "upstream/upstream.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
    F_HEAD = 1,      /* the request is a HEAD */
    F_PAUSE = 2,     /* on_body pauses after every piece; resumed on the next turn */
    F_ABORT = 4,     /* on_body aborts at the second piece */
    F_ABORT_HEAD = 8 /* on_head aborts */
};

static int listener = -1;
static int port;

typedef struct state {
    upstream_req *r;
    int flags, heads, dones, status, paused, aborted;
    size_t body;
} state;

static int on_head(upstream_req *r, const upstream_head *h, void *arg)
{
    (void)r;
    state *s = arg;
    if (s->heads++ != 0 || s->body != 0 || s->dones != 0)
        abort();
    int st = upstream_head_status(h);
    if (st < 100 || st > 999)
        abort();
    for (size_t i = 0; i < upstream_head_count(h); i++) {
        upstream_header x = upstream_head_at(h, i);
        if (x.name == NULL || x.value == NULL || upstream_head_header(h, x.name) == NULL)
            abort();
    }
    if (s->flags & F_ABORT_HEAD) {
        s->aborted = 1;
        s->r = NULL; /* gone when this returns */
        return UPSTREAM_ABORT;
    }
    return UPSTREAM_GO;
}

static int on_body(upstream_req *r, const char *data, size_t len, void *arg)
{
    (void)r;
    state *s = arg;
    if (s->heads != 1 || s->dones != 0 || (s->flags & F_HEAD) || len == 0)
        abort();
    volatile char sum = 0;
    for (size_t i = 0; i < len; i++)
        sum ^= data[i]; /* every byte handed on is readable */
    (void)sum;
    s->body += len;
    if ((s->flags & F_ABORT) && len < s->body) { /* the second piece */
        s->aborted = 1;
        s->r = NULL;
        return UPSTREAM_ABORT;
    }
    if (s->flags & F_PAUSE) {
        s->paused = 1;
        return UPSTREAM_PAUSE;
    }
    return UPSTREAM_GO;
}

static void on_done(upstream_req *r, int status, void *arg)
{
    (void)r;
    state *s = arg;
    s->dones++;
    s->status = status;
    s->r = NULL;
    if (status > 0 || (status < 0 && strcmp(upstream_err_name(status), "UNKNOWN") == 0))
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (bind(listener, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(listener, (struct sockaddr *)&sa, &len) != 0 || listen(listener, 16) != 0)
        abort();
    port = ntohs(sa.sin_port);
    return 0;
}

static void turns(struct event_base *base, state *s, int n)
{
    for (int i = 0; i < n; i++) {
        if (s->paused && s->r != NULL) {
            s->paused = 0;
            upstream_req_resume(s->r);
        }
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
}

static void drain(int fd)
{
    char buf[4096];
    while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t piece = (size_t)1 << (data[0] & 0x0f);
    state s = {.flags = data[1]};
    data += 2;
    size -= 2;

    struct event_base *base = event_base_new();
    upstream_pool *pool = upstream_pool_new(base);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    upstream_origin *o = NULL;
    upstream_options opt = {.first_byte_timeout_ms = 2000, .total_timeout_ms = 4000};
    if (upstream_origin_new(url, &opt, NULL, 0, &o) != 0)
        abort();
    upstream_request_spec rq = {(s.flags & F_HEAD) ? "HEAD" : "GET", "/f", NULL, 0, NULL, 0};
    upstream_callbacks cb = {on_head, on_body, on_done};
    if (upstream_request(pool, o, &rq, &cb, &s, &s.r) != 0)
        abort();
    if (s.dones != 0)
        abort(); /* never during the call */

    /* The origin's side: accept, read the request, answer with the input. */
    int fd = -1;
    for (int i = 0; i < 2000 && fd < 0; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        struct pollfd p = {listener, POLLIN, 0};
        if (poll(&p, 1, 1) == 1)
            fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    }
    if (fd < 0)
        abort();
    for (size_t off = 0; off < size && s.dones == 0;) {
        size_t n = size - off < piece ? size - off : piece;
        turns(base, &s, 1);
        drain(fd);
        ssize_t w = send(fd, data + off, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0)
            off += (size_t)w;
        else if (w < 0 && errno != EAGAIN)
            break;
        turns(base, &s, 2);
    }
    turns(base, &s, 4);
    drain(fd);
    close(fd);
    /* The close ends whatever was left: done, within the deadlines at worst. */
    for (int i = 0; i < 100000 && s.dones == 0 && !s.aborted; i++) {
        turns(base, &s, 1);
        if (i > 1000)
            event_base_loop(base, EVLOOP_ONCE);
    }
    if (s.dones != (s.aborted ? 0 : 1) || s.body > size)
        abort(); /* exactly one on_done, none after an abort */
    if ((s.flags & F_HEAD) && s.body != 0)
        abort();
    upstream_pool_stats st;
    upstream_pool_stats_get(pool, o, &st);
    if (st.open > st.idle || st.queued != 0)
        abort();
    upstream_pool_free(pool);
    upstream_origin_free(o);
    event_base_free(base);
    return 0;
}
