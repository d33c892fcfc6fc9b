/* fuzz_http.c: strata serve's HTTP/1.1 layer (src/server/http/) end to end, in-process.
 *
 * Every input is one client connection: a socketpair whose one end is handed to
 * http_server_adopt on a
 * real worker (its own event_base, metrics, strata_loop on a memory-only cache, the two admin
 * lanes), the other end driven from here. The bytes arrive in pieces, with loop iterations in
 * between, so the parser callbacks see URLs, headers and chunked bodies cut anywhere, and
 * requests pipelined behind one still in flight. Everything behind the layer runs for real:
 * routing, handlers, the cache, the offloaded admin jobs.
 *
 * Input layout: byte 0 chooses the write pieces (low nibble: the size, from 1 byte to all at
 * once; bits 4-6: nonzero makes sizes vary around it; bit 7: S_SETTLE); byte 1 is a set of
 * flags (F_* below); the rest is the client's stream. With F_EXPAND, "\xff K L <L bytes>" in the
 * stream stands for those L bytes repeated (K + 1) * 16 times, so 4 KiB inputs reach the real
 * limits (16 KiB of headers, 64 KiB bodies), grow and shrink the connection's buffer and pipeline
 * thousands of requests.
 *
 * Every other request is read with HTTP_HEAD_STREAM instead of the server's HTTP_HEAD_GATHER
 * (its body handed to on_body and dropped, the handler then finds none), so the layer's
 * streamed bodies are cut and pipelined the same ways as gathered ones.
 *
 * Checked, beside ASan and UBSan:
 * - the stream read back is a sequence of responses: "HTTP/1.1 ddd reason\r\n", header lines of
 *   a token, ": " and a value without control characters, an empty line; a 1xx is exactly
 *   "HTTP/1.1 100 Continue\r\n\r\n"; every final one has a Date and, unless 204 or 304, one
 *   Content-Length whose bytes follow (or none: a HEAD's answer; both framings are tried);
 * - nothing follows a response saying "Connection: close";
 * - no more final responses than requests could fit (one per 16 bytes sent: "GET * HTTP/1.0\n\n");
 * - with S_SETTLE, once the server has settled (nothing moves) before the client's end of
 *   stream, the end of stream brings no answer, except the refusal of a message too large to
 *   fit: every complete request was answered without waiting for it;
 * - the server ends the connection once the client is done (half-close, or close), without a
 *   hang (a bound on loop turns without progress): afterwards the worker has no connection left
 *   (no connection open or waiting to be freed), no request in flight and no offload job queued.
 *
 * The admin lanes' threads are replaced by running the queued jobs on this thread between loop
 * turns, exactly as a lane's thread does (fn, then done from the worker's loop): a crash reproduces
 * with the same interleaving every time. The cache (L1) lives across inputs; it is bounded.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "dispatch.h"
#include "log.h"
#include "server.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

enum {
    F_EXPAND = 1 << 0,     /* "\xff K L bytes" repeats bytes */
    F_SMALL_BODY = 1 << 1, /* STRATA_MAX_BODY at its minimum, 1 KiB, instead of 64 KiB */
    F_SMALL_BUF = 1 << 2,  /* tiny socket buffers: partial writes, the server waits for EV_WRITE */
    F_LAZY_READ = 1 << 3,  /* read answers only when a write would block, and at the end */
    F_LATE_JOBS = 1 << 4,  /* offloaded jobs run only once everything is written */
    F_CLOSE = 1 << 5,      /* end with close() (answers unread: a reset) instead of SHUT_WR */
    F_OVER_LIMIT = 1 << 6, /* another connection is open and the limit is 1: answered 503 */
    F_BIG_BUF = 1 << 7,    /* a large server send buffer: a whole batch of answers fits */
};

/* Byte 0: the pieces' size (low nibble), their variation (bits 4-6), and: */
enum {
    S_SETTLE = 1 << 7, /* before ending, wait until the server settles, and check it answered
                          everything it could without the client's end of stream */
};

enum {
    EXPANDED_MAX = 128 * 1024, /* the stream after expansion */
    PIECES_MAX = 512,          /* writes per input */
    OUT_KEEP = 8 << 20,        /* answer bytes kept for checking; more are read and dropped */
    STALL_MAX = 20000,         /* loop turns without progress that make a hang */
};

static server srv;
static worker *w;

/* ---- streamed bodies: every other request --------------------------------------------------- */

static http_callbacks server_cb; /* dispatch.c's */
static unsigned heads;           /* requests seen in this input */
static http_conn *streamed;      /* the connection whose request is streamed now */

static int stream_on_head(http_conn *c, void *arg)
{
    int v = server_cb.on_head(c, arg);
    if (v == HTTP_HEAD_GATHER && (heads++ & 1)) {
        streamed = c;
        return HTTP_HEAD_STREAM;
    }
    return v;
}

static int stream_on_body(http_conn *c, const char *data, size_t len, void *arg)
{
    (void)c, (void)data, (void)len, (void)arg;
    return 0;
}

static void stream_on_request(http_conn *c, void *arg)
{
    if (c == streamed)
        streamed = NULL;
    server_cb.on_request(c, arg);
}

/* The server's on_drop counts the request out; a streamed one is also the owner's to end. */
static void stream_on_drop(http_conn *c, void *arg)
{
    server_cb.on_drop(c, arg);
    if (c == streamed) {
        streamed = NULL;
        http_conn_done(c);
    }
}

static void callbacks(http_callbacks *cb, http_limits *limits)
{
    w->main_listener = (listener){w, LISTEN_ALL};
    dispatch_setup(&w->main_listener, cb, limits);
    server_cb = *cb;
    cb->on_head = stream_on_head;
    cb->on_body = stream_on_body;
    cb->on_request = stream_on_request;
    cb->on_drop = stream_on_drop;
}

/* ---- the server ---------------------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_ERROR);
    serve_config *c = &srv.cfg;
    /* strata serve's defaults, but one worker; max_body and max_connections vary per input
     * (F_SMALL_BODY, F_OVER_LIMIT) */
    serve_defaults(c);
    c->workers = 1;
    c->log_level = LOG_ERROR;
    c->max_body = 64u << 10;
    /* Memory only, whatever the environment says; no maintenance thread. */
    strata_cache_config_init(&c->cache, NULL);
    c->cache.redis.url = NULL;
    c->cache.redis.enabled = 0;
    c->cache.l1.max_memory = 4u << 20;
    c->cache.l1.shards = 0;
    c->cache.l1.prefix = NULL;
    c->cache.l1.maintenance_interval_ms = 0;
    c->cache.default_ttl_ms = 0;
    c->cache.log = log_from_lib;

    char err[256];
    pthread_rwlock_init(&srv.auth_lock, NULL);
    offload_init(&srv.bulk, "bulk", 1, 64, 16, 1);
    offload_init(&srv.quick, "quick", 1, 64, 16, 1);
    srv.started_ms = strata_now_ms();
    srv.auth = auth_load(NULL, NULL, err, sizeof err); /* no tokens: every caller is admin */
    CHECK(srv.auth != NULL && auth_count(srv.auth) == 0);
    CHECK(limits_parse(NULL, &srv.rules, err, sizeof err) == 0);
    CHECK(strata_cache_new(&c->cache, &srv.cache) == 0);
    CHECK(strata_ratelimiter_new(srv.cache, &srv.rl) == 0); /* as serve.c's start() */
    CHECK(strata_leases_new(srv.cache, &srv.leases) == 0);

    pthread_mutex_init(&srv.proxy_lock, NULL); /* no proxy: proxy_match finds no model */
    srv.workers = calloc(1, sizeof *srv.workers);
    CHECK(srv.workers != NULL);
    w = &srv.workers[0];
    w->srv = &srv;
    w->metrics = metrics_new();
    w->base = event_base_new();
    CHECK(w->metrics != NULL && w->base != NULL);
    CHECK(strata_loop_new(srv.cache, w->base, &w->loop) == 0);
    http_callbacks cb;
    http_limits limits;
    callbacks(&cb, &limits);
    w->http = http_server_new(w->base, &limits, &cb);
    CHECK(w->http != NULL);
    return 0;
}

/* A lane thread's body, on this thread, for both lanes. Returns the number of jobs run. */
static int run_jobs(void)
{
    int n = 0;
    offload_lane *lanes[] = {&srv.bulk, &srv.quick};
    for (int i = 0; i < 2; i++) {
        offload_job *j;
        while ((j = offload_take(lanes[i])) != NULL) {
            offload_run(lanes[i], j);
            n++;
        }
    }
    return n;
}

/* ---- the client ---------------------------------------------------------------------------- */

typedef struct client {
    int fd;
    int closed; /* we closed fd (F_CLOSE): what was read may be cut short */
    int flags;
    int jobs_ok; /* offloaded jobs may run */
    int eof;     /* the server's end is shut */
    char *out;   /* what the server sent (the first OUT_KEEP bytes) */
    size_t out_len, out_cap, out_total;
} client;

/* Reads what the server sent so far. Returns the number of bytes read. */
static size_t drain(client *cl)
{
    size_t got = 0;
    char buf[16384];
    while (!cl->closed && !cl->eof) {
        ssize_t n = recv(cl->fd, buf, sizeof buf, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (n <= 0) { /* a reset is the server's right too: it counts as the end */
            cl->eof = 1;
            break;
        }
        got += (size_t)n;
        cl->out_total += (size_t)n;
        size_t keep = cl->out_len < OUT_KEEP ? OUT_KEEP - cl->out_len : 0;
        if (keep > (size_t)n)
            keep = (size_t)n;
        if (keep > 0) {
            if (cl->out_len + keep > cl->out_cap) {
                size_t cap = cl->out_cap ? cl->out_cap * 2 : 65536;
                while (cap < cl->out_len + keep)
                    cap *= 2;
                cl->out = realloc(cl->out, cap);
                CHECK(cl->out != NULL);
                cl->out_cap = cap;
            }
            memcpy(cl->out + cl->out_len, buf, keep);
            cl->out_len += keep;
        }
    }
    return got;
}

/* One turn of the worker's loop, then the offload jobs (when they may run, or force), then
 * (unless lazy, or read) the answers. Returns nonzero if anything happened that we can see. */
static size_t turn(client *cl, int read_now, int force)
{
    unsigned before = http_server_open(w->http);
    event_base_loop(w->base, EVLOOP_NONBLOCK);
    size_t progress = cl->jobs_ok || force ? (size_t)run_jobs() : 0;
    if (read_now || !(cl->flags & F_LAZY_READ))
        progress += drain(cl);
    return progress + (http_server_open(w->http) != before);
}

static void send_all(client *cl, const char *p, size_t len)
{
    unsigned stall = 0;
    while (len > 0) {
        ssize_t n = send(cl->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n, len -= (size_t)n;
            stall = 0;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return; /* the server closed: it may (after an answer saying so) */
        /* Full: the server must read; it may first need its answers read, or the request it
         * is busy with answered (F_LATE_JOBS or not, a job is run when nothing else moves). */
        if (turn(cl, 1, stall > 0) == 0)
            CHECK(++stall < STALL_MAX); /* neither side moves: a hang */
        else
            stall = 0;
    }
}

/* Expands "\xff K L <L bytes>" (F_EXPAND) into buf. Returns the length. */
static size_t expand(const uint8_t *p, size_t n, int on, char *buf, size_t cap)
{
    size_t len = 0;
    for (size_t i = 0; i < n && len < cap; i++) {
        if (!on || p[i] != 0xff || i + 2 >= n) {
            buf[len++] = (char)p[i];
            continue;
        }
        size_t times = ((size_t)p[i + 1] + 1) * 16, l = p[i + 2];
        const uint8_t *unit = p + i + 3;
        if (l > n - (i + 3))
            l = n - (i + 3);
        for (size_t t = 0; t < times && l > 0 && len < cap; t++) {
            size_t k = l < cap - len ? l : cap - len;
            memcpy(buf + len, unit, k);
            len += k;
        }
        i += 2 + l;
    }
    return len;
}

/* ---- the checks ---------------------------------------------------------------------------- */

typedef struct response {
    int status;
    size_t head_end; /* offset just past the empty line */
    size_t body_len; /* Content-Length, or 0 */
    int close;       /* Connection: close */
} response;

static int is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* Parses the head of a response at out[at]. Returns 1 with *r filled, 0 if out does not hold
 * a whole head there (truncated), -1 if what is there is malformed. */
static int parse_head(const char *out, size_t len, size_t at, response *r)
{
    const char *s = out + at, *end = out + len;
    if ((size_t)(end - s) < 13)
        return memcmp(s, "HTTP/1.1 ", (size_t)(end - s) < 9 ? (size_t)(end - s) : 9) == 0 ? 0 : -1;
    if (memcmp(s, "HTTP/1.1 ", 9) != 0 || s[9] < '1' || s[9] > '5' || s[10] < '0' || s[10] > '9' ||
        s[11] < '0' || s[11] > '9' || s[12] != ' ')
        return -1;
    memset(r, 0, sizeof *r);
    r->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    const char *line = s;
    int first = 1, has_date = 0, lengths = 0;
    for (;;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        if (nl == NULL)
            return 0;
        if (nl == line || nl[-1] != '\r')
            return -1; /* a bare LF */
        size_t ll = (size_t)(nl - 1 - line);
        if (ll == 0) {
            r->head_end = (size_t)(nl + 1 - out);
            break;
        }
        for (size_t i = 0; i < ll; i++) {
            unsigned char ch = (unsigned char)line[i];
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return -1; /* CR, LF, NUL or another control byte inside a line */
        }
        if (!first) {
            size_t nl_len = 0;
            while (nl_len < ll && is_tchar((unsigned char)line[nl_len]))
                nl_len++;
            if (nl_len == 0 || nl_len + 2 > ll || line[nl_len] != ':' || line[nl_len + 1] != ' ')
                return -1;
            const char *v = line + nl_len + 2;
            size_t vl = ll - nl_len - 2;
            if (nl_len == 4 && strncasecmp(line, "Date", 4) == 0)
                has_date = 1;
            if (nl_len == 10 && strncasecmp(line, "Connection", 10) == 0 && vl == 5 &&
                strncasecmp(v, "close", 5) == 0)
                r->close = 1;
            if (nl_len == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
                size_t n = 0;
                if (vl == 0 || vl > 12)
                    return -1;
                for (size_t i = 0; i < vl; i++) {
                    if (v[i] < '0' || v[i] > '9')
                        return -1;
                    n = n * 10 + (size_t)(v[i] - '0');
                }
                r->body_len = n;
                lengths++;
            }
        }
        first = 0;
        line = nl + 1;
    }
    if (r->status < 200) {
        size_t hl = r->head_end - at;
        if (r->status != 100 || hl != 25 || memcmp(s, "HTTP/1.1 100 Continue\r\n\r\n", 25) != 0)
            return -1;
        return 1;
    }
    if (!has_date)
        return -1;
    if (r->status == 204 || r->status == 304 ? lengths != 0 : lengths != 1)
        return -1;
    return 1;
}

/* The answers read: is out[at..) a sequence of responses? ok[] memoises positions (0 unknown,
 * 1 yes, 2 no): an answer with a Content-Length may be a HEAD's, without its body, so both
 * framings are tried. complete: nothing was cut off at the end. */
typedef struct answers {
    const char *out;
    size_t len;
    int complete;
    unsigned char *ok;
} answers;

static int good_from(const answers *a, size_t at)
{
    if (at == a->len)
        return 1;
    if (a->ok[at])
        return a->ok[at] == 1;
    response r;
    int h = parse_head(a->out, a->len, at, &r), good;
    size_t with_body = h > 0 ? r.head_end + r.body_len : 0;
    if (h <= 0)
        good = h == 0 && !a->complete;
    else if (r.close) /* the last one, with its body or without (HEAD) */
        good = with_body == a->len || r.head_end == a->len || (!a->complete && with_body > a->len);
    else if (r.body_len > 0 && with_body > a->len && !a->complete)
        good = 1;
    else
        good = (r.body_len > 0 && with_body <= a->len && good_from(a, with_body)) ||
               good_from(a, r.head_end);
    a->ok[at] = good ? 1 : 2;
    return good;
}

/* The final responses along the first framing that works (bodies preferred). */
static size_t count_finals(const answers *a)
{
    size_t at = 0, finals = 0;
    response r;
    while (at < a->len && parse_head(a->out, a->len, at, &r) > 0) {
        finals += r.status >= 200;
        size_t with_body = r.head_end + r.body_len;
        if (r.close || (r.body_len > 0 && with_body > a->len))
            break;
        at = r.body_len > 0 && good_from(a, with_body) ? with_body : r.head_end;
    }
    return finals;
}

static void check_output(const client *cl, size_t sent)
{
    if (getenv("FUZZ_HTTP_DUMP") != NULL) { /* for triage: what the server answered */
        fprintf(stderr, "---- %zu answer bytes (%zu kept), eof %d\n", cl->out_total, cl->out_len,
                cl->eof);
        fwrite(cl->out, 1, cl->out_len, stderr);
        fprintf(stderr, "\n----\n");
    }
    if (cl->out_len == 0)
        return;
    answers a = {cl->out, cl->out_len, cl->eof && !cl->closed && cl->out_len == cl->out_total,
                 calloc(cl->out_len + 1, 1)};
    CHECK(a.ok != NULL);
    if (!good_from(&a, 0)) {
        fprintf(stderr, "malformed answer stream (%zu bytes):\n%.*s\n", cl->out_len,
                (int)(cl->out_len < 4096 ? cl->out_len : 4096), cl->out);
        CHECK(!"the answers are a sequence of well-formed HTTP/1.1 responses");
    }
    CHECK(count_finals(&a) <= sent / 16 + 1);
    free(a.ok);
}

/* ---- one input ----------------------------------------------------------------------------- */

static const size_t piece_sizes[16] = {0,  1,  2,  3,  4,   5,   7,    8,
                                       13, 16, 31, 64, 100, 255, 1024, 4096};

static void set_buffers(int fd, int size)
{
    /* The kernel doubles it, then applies its own minimum and maximum. */
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
}

/* Turns the loop until nothing moves any more: no answer bytes, no job, no connection
 * closed, and the server's unread bytes unchanged, for several turns in a row. */
static void settle_down(client *cl, int server_fd)
{
    int last = -1;
    for (unsigned quiet = 0; quiet < 8;) {
        size_t moved = turn(cl, 1, 1);
        int unread = 0;
        if (ioctl(server_fd, FIONREAD, &unread) != 0)
            unread = 0; /* closed */
        quiet = moved == 0 && unread == last ? quiet + 1 : 0;
        last = unread;
    }
}

/* What the server sent after the client's end of stream, beyond what it had sent when it had
 * settled: nothing, or a refusal of a message that could not fit (only a read finds that out).
 * Anything else is an answer it held back until the end of stream. */
static void check_after_settled(const client *cl, size_t settled)
{
    if (cl->out_total == settled || cl->out_len != cl->out_total)
        return;
    response r;
    int h = parse_head(cl->out, cl->out_len, settled, &r);
    if (h <= 0 || !r.close || (r.status != 413 && r.status != 431)) {
        fprintf(stderr, "answers held back until the end of stream: %zu of %zu bytes:\n%.*s\n",
                cl->out_total - settled, cl->out_total,
                (int)(cl->out_len - settled < 2048 ? cl->out_len - settled : 2048),
                cl->out + settled);
        CHECK(!"the server answers every complete request without waiting for the client's EOF");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t split = size > 0 ? data[0] : 0, flags = size > 1 ? data[1] : 0;
    const uint8_t *body = size > 2 ? data + 2 : data;
    size_t body_len = size > 2 ? size - 2 : 0;
    static char stream[EXPANDED_MAX];
    size_t len = expand(body, body_len, flags & F_EXPAND, stream, sizeof stream);

    srv.cfg.max_body = flags & F_SMALL_BODY ? 1024 : 64u << 10;
    srv.cfg.max_connections = flags & F_OVER_LIMIT ? 1 : 10000;
    http_callbacks cb;
    http_limits limits;
    callbacks(&cb, &limits);
    http_server_set_limits(w->http, &limits);
    heads = 0;

    int other[2] = {-1, -1};
    if (flags & F_OVER_LIMIT) { /* an idle connection takes the one place */
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, other) == 0);
        http_server_adopt(w->http, other[0], NULL);
    }
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    if (flags & F_SMALL_BUF) {
        set_buffers(sv[0], 4096);
        set_buffers(sv[1], 4096);
    } else if (flags & F_BIG_BUF) {
        set_buffers(sv[0], 1 << 20);
    }
    client cl = {.fd = sv[1], .flags = flags, .jobs_ok = !(flags & F_LATE_JOBS)};
    http_server_adopt(w->http, sv[0], NULL);

    size_t piece = piece_sizes[split & 15];
    if (piece == 0 || piece > len)
        piece = len;
    if (piece > 0 && len / piece > PIECES_MAX)
        piece = len / PIECES_MAX + 1;
    uint32_t rnd = (split >> 4) & 7;
    for (size_t off = 0; off < len;) {
        size_t n = piece;
        if ((split >> 4) & 7) { /* vary around the size: 1 .. 2 * piece */
            rnd = rnd * 1103515245u + 12345u;
            n = 1 + (rnd >> 16) % (2 * piece);
        }
        if (n > len - off)
            n = len - off;
        send_all(&cl, stream + off, n);
        off += n;
        turn(&cl, 0, 0);
    }
    cl.jobs_ok = 1;

    size_t settled = SIZE_MAX;
    if (split & S_SETTLE) {
        settle_down(&cl, sv[0]);
        settled = cl.out_total;
    }
    /* Done sending: the server must answer what it can and close. */
    if (flags & F_CLOSE) {
        close(cl.fd);
        cl.closed = 1;
    } else {
        shutdown(cl.fd, SHUT_WR);
    }
    if (other[1] >= 0) {
        close(other[1]);
        other[1] = -1;
    }
    unsigned stall = 0;
    while (!(cl.eof || cl.closed) || http_server_alive(w->http) != 0) {
        if (turn(&cl, 1, 1) == 0) {
            if (++stall == STALL_MAX) {
                fprintf(stderr, "hang: %u connections open, %zu answer bytes read, eof %d\n",
                        http_server_open(w->http), cl.out_total, cl.eof);
                CHECK(!"the server ends the connection once the client is done");
            }
        } else {
            stall = 0;
        }
    }
    /* Answers of jobs still queued would have nowhere to go. */
    CHECK(srv.bulk.q.turn == NULL && srv.quick.q.turn == NULL);
    CHECK(http_server_alive(w->http) == 0 && http_server_open(w->http) == 0);
    CHECK(http_server_body_held(w->http) == 0);
    CHECK(streamed == NULL); /* every streamed request ended */
    CHECK(atomic_load(&w->inflight) == 0);
    check_output(&cl, len);
    if (settled != SIZE_MAX && !cl.closed)
        check_after_settled(&cl, settled);
    if (!cl.closed)
        close(cl.fd);
    free(cl.out);
    return 0;
}
