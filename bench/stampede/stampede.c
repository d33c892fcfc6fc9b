/* stampede.c: N concurrent misses on one cold key, fired at once, and what each caller waited.
 *
 * The load client of bench/stampede. It opens N connections first (spread round-robin over one
 * or more servers: strata instances or caching proxies), waits until every one is connected and
 * the servers have had time to accept them, then writes the N GETs of one key back to back and
 * measures each request from its own write to the answer that gives it the value. One thread, one
 * event_base, plain non-blocking sockets and a minimal HTTP/1.1 reader (Content-Length bodies
 * only, which is all strata, Varnish and nginx send here).
 *
 * Modes (what a caller does on a miss):
 *   lease  GET with X-Cache-Lease and X-Cache-Wait. The caller answered 404 with a
 *          X-Cache-Lease-Token computes (a timer of --compute-ms, no CPU), then PUTs the value
 *          with the token; every other caller is a waiter, done at its 200 (HIT-COALESCED).
 *   naive  plain GET; on a 404, compute (the same timer) and PUT, then it is done: the
 *          cache-aside client without a lease, every caller that misses computes.
 *   proxy  plain GET through a caching proxy; the origin computes (and counts), not the client.
 *
 * Output: key=value lines, e.g. `computations=1 waiters=999 p50_ms=101.2 p99_ms=104.9 ...`.
 * In lease mode the computing caller's latency is left out of the waiters' figures (it is the
 * one that does the work); in naive and proxy mode every caller is a waiter.
 *
 * Every request's Host header is its target's HOST:PORT, or the one --host NAME: two instances
 * behind one name, as a load balancer shows them (a caching proxy's key holds the host).
 *
 *   bench_stampede --mode lease --n 1000 --path /v1/cache/stampede/k1 127.0.0.1:7401 127.0.0.1:7402
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { MODE_LEASE, MODE_NAIVE, MODE_PROXY };

enum state {
    ST_CONNECTING,
    ST_READY,   /* connected, request not yet written */
    ST_GET,     /* GET written, reading its answer */
    ST_COMPUTE, /* computing (timer) */
    ST_PUT,     /* PUT written, reading its answer */
    ST_DONE,
    ST_FAILED
};

#define BUF_MAX 16384

struct conn {
    int fd;
    int target;
    enum state state;
    struct event *ev;
    struct event *timer;
    double t_send;   /* when its GET was written */
    double t_done;   /* when it had the value */
    double t_got;    /* when its GET was answered (a computing caller's GET: the miss) */
    double t_put;    /* when it wrote its PUT */
    int computed;    /* it computed the value (lease holder, or a naive miss) */
    int status;      /* of the GET */
    char xcache[32]; /* X-Cache of the GET's answer */
    char token[128]; /* X-Cache-Lease-Token */
    char buf[BUF_MAX];
    size_t len;
};

static struct {
    enum mode mode;
    int n;
    const char *path;
    const char *lease;
    const char *wait;
    int compute_ms;
    int settle_ms;
    int timeout_ms;
    int ntargets;
    struct sockaddr_in targets[16];
    const char *hosts[16];
    const char *host; /* --host: every request's Host header, else its target's HOST:PORT */
} opt = {MODE_LEASE, 10, NULL, "5", "5", 100, 200, 15000, 0, {{0}}, {0}, NULL};

static struct event_base *base;
static struct conn *conns;
static int connected, failed_connect, finished;
static double t_release;
static int errors;
static char first_error[256];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void note_error(struct conn *c, const char *what)
{
    errors++;
    if (!first_error[0])
        snprintf(first_error, sizeof first_error, "conn %d: %s", (int)(c - conns), what);
}

static void finish(struct conn *c, enum state st)
{
    c->state = st;
    if (st == ST_DONE)
        c->t_done = now_ms();
    event_del(c->ev);
    finished++;
    if (finished + failed_connect == opt.n)
        event_base_loopbreak(base);
}

static void fail(struct conn *c, const char *what)
{
    note_error(c, what);
    finish(c, ST_FAILED);
}

/* send_all: requests are a few hundred bytes into an empty socket buffer: one write does it. */
static int send_all(struct conn *c, const char *req, size_t len)
{
    ssize_t w = send(c->fd, req, len, MSG_NOSIGNAL);
    return w == (ssize_t)len ? 0 : -1;
}

static void send_get(struct conn *c)
{
    char req[512];
    int len;
    const char *host = opt.host ? opt.host : opt.hosts[c->target];
    if (opt.mode == MODE_LEASE)
        len =
            snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nX-Cache-Lease: %s\r\nX-Cache-Wait: %s\r\n\r\n",
                     opt.path, host, opt.lease, opt.wait);
    else
        len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", opt.path, host);
    c->len = 0;
    c->t_send = now_ms();
    if (send_all(c, req, (size_t)len) != 0) {
        fail(c, "GET not written");
        return;
    }
    c->state = ST_GET;
}

static void send_put(struct conn *c)
{
    static const char body[] = "the value, computed once";
    char req[768];
    int len;
    const char *host = opt.host ? opt.host : opt.hosts[c->target];
    if (opt.mode == MODE_LEASE)
        len = snprintf(req, sizeof req,
                       "PUT %s?ttl=600 HTTP/1.1\r\nHost: %s\r\nX-Cache-Lease-Token: %s\r\n"
                       "Content-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s",
                       opt.path, host, c->token, sizeof body - 1, body);
    else
        len = snprintf(req, sizeof req,
                       "PUT %s?ttl=600 HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\n"
                       "Content-Length: %zu\r\n\r\n%s",
                       opt.path, host, sizeof body - 1, body);
    c->len = 0;
    c->t_put = now_ms();
    if (send_all(c, req, (size_t)len) != 0) {
        fail(c, "PUT not written");
        return;
    }
    c->state = ST_PUT;
}

static void on_computed(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    send_put(arg);
}

/* header VALUE of NAME in the head [h, end), copied into out (trimmed), or "" */
static void header(const char *h, const char *end, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    out[0] = '\0';
    for (const char *p = h; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            size_t vl = (size_t)(eol - v);
            while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
                vl--;
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return;
        }
        p = eol + 1;
    }
}

/* one whole answer in c->buf? returns its status (and fills the headers asked for), 0 if not
 * complete yet, -1 if it cannot be read */
static int parse_answer(struct conn *c)
{
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end)
        return c->len >= BUF_MAX ? -1 : 0;
    size_t head = (size_t)(end - c->buf) + 4;
    if (c->len < 12 || strncmp(c->buf, "HTTP/1.", 7) != 0)
        return -1;
    int status = atoi(c->buf + 9);
    char cl[32];
    header(c->buf, end, "Content-Length", cl, sizeof cl);
    size_t body = cl[0] ? strtoul(cl, NULL, 10) : 0;
    if (c->len < head + body)
        return c->len >= BUF_MAX ? -1 : 0;
    if (c->state == ST_GET) {
        header(c->buf, end, "X-Cache", c->xcache, sizeof c->xcache);
        header(c->buf, end, "X-Cache-Lease-Token", c->token, sizeof c->token);
    }
    return status;
}

static void on_answer(struct conn *c, int status)
{
    char what[96];
    if (c->state == ST_PUT) {
        if (status != 204 && status != 200) {
            snprintf(what, sizeof what, "PUT answered %d", status);
            fail(c, what);
            return;
        }
        finish(c, ST_DONE);
        return;
    }
    c->status = status;
    c->t_got = now_ms();
    if (status == 200) {
        finish(c, ST_DONE);
        return;
    }
    if (status == 404 && (opt.mode == MODE_NAIVE || (opt.mode == MODE_LEASE && c->token[0]))) {
        c->computed = 1;
        c->state = ST_COMPUTE;
        struct timeval tv = {opt.compute_ms / 1000, (opt.compute_ms % 1000) * 1000};
        c->timer = evtimer_new(base, on_computed, c);
        evtimer_add(c->timer, &tv);
        return;
    }
    snprintf(what, sizeof what, "GET answered %d (X-Cache: %s)", status, c->xcache);
    fail(c, what);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)what;
    for (;;) {
        if (c->len >= BUF_MAX) {
            fail(c, "answer too large");
            return;
        }
        ssize_t r = recv(fd, c->buf + c->len, BUF_MAX - c->len, 0);
        if (r > 0) {
            c->len += (size_t)r;
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (r < 0 && errno == EINTR)
            continue;
        if (c->state == ST_COMPUTE || c->state == ST_DONE)
            return;
        fail(c, r == 0 ? "closed by the server" : strerror(errno));
        return;
    }
    if (c->state != ST_GET && c->state != ST_PUT)
        return;
    int status = parse_answer(c);
    if (status < 0)
        fail(c, "unreadable answer");
    else if (status > 0)
        on_answer(c, status);
}

/* release: writes the GETs, RELEASE_BATCH at a time, returning to the event loop in between so an
 * answer that is already there (the lease holder's 404) is read at once, as a separate client
 * process would, instead of after the last of N writes. release_ev has a lower priority than the
 * sockets' events: libevent polls (epoll_wait, timeout 0) and runs every ready socket before the
 * next batch (the base is configured to poll after each callback of priority 1; a zero timeout,
 * or an event re-activated by its own callback, would run at once without polling; a timeout of
 * 1 us would wait a whole millisecond). */
#define RELEASE_BATCH 32
static int next_release;
static struct event *release_ev;
static double t_last_send;

static void release(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (next_release == 0)
        t_release = now_ms();
    int sent = 0;
    for (; next_release < opt.n && sent < RELEASE_BATCH; next_release++) {
        struct conn *c = &conns[next_release];
        if (c->state != ST_READY)
            continue;
        event_assign(c->ev, base, c->fd, EV_READ | EV_PERSIST, on_read, c);
        event_add(c->ev, NULL);
        send_get(c);
        sent++;
    }
    t_last_send = now_ms();
    if (next_release < opt.n)
        event_active(release_ev, EV_TIMEOUT, 1);
}

static void on_connect(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    int err = 0;
    socklen_t len = sizeof err;
    (void)what;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        fprintf(stderr, "stampede: connect to %s: %s\n", opt.hosts[c->target], strerror(err));
        c->state = ST_FAILED;
        failed_connect++;
        errors++;
    } else {
        c->state = ST_READY;
        connected++;
    }
    if (connected + failed_connect == opt.n) {
        /* every connection is up: give the servers settle_ms to accept them all, then fire */
        struct timeval tv = {opt.settle_ms / 1000, (opt.settle_ms % 1000) * 1000};
        event_add(release_ev, &tv);
    }
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    event_base_loopbreak(base);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* nearest-rank percentile of sorted v[0..n) */
static double pct(const double *v, int n, double p)
{
    if (n == 0)
        return 0;
    int k = (int)(p / 100.0 * n + 0.999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

static void raise_nofile(int need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < (rlim_t)need) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)need)
            fprintf(stderr, "stampede: RLIMIT_NOFILE %llu is below %d connections\n",
                    (unsigned long long)rl.rlim_cur, need);
    }
}

static void usage(void)
{
    fprintf(
        stderr,
        "usage: bench_stampede --mode lease|naive|proxy --n N --path PATH [--lease S] [--wait S]\n"
        "       [--compute-ms MS] [--settle-ms MS] [--timeout-ms MS] [--host NAME] HOST:PORT...\n");
    exit(2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') {
            char host[64];
            const char *colon = strrchr(a, ':');
            if (!colon || opt.ntargets == 16 || (size_t)(colon - a) >= sizeof host)
                usage();
            memcpy(host, a, (size_t)(colon - a));
            host[colon - a] = '\0';
            struct sockaddr_in *sa = &opt.targets[opt.ntargets];
            sa->sin_family = AF_INET;
            sa->sin_port = htons((uint16_t)atoi(colon + 1));
            if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
                usage();
            opt.hosts[opt.ntargets++] = a;
            continue;
        }
        if (!v)
            usage();
        if (strcmp(a, "--mode") == 0)
            opt.mode = strcmp(v, "lease") == 0   ? MODE_LEASE
                       : strcmp(v, "naive") == 0 ? MODE_NAIVE
                       : strcmp(v, "proxy") == 0 ? MODE_PROXY
                                                 : (usage(), MODE_LEASE);
        else if (strcmp(a, "--n") == 0)
            opt.n = atoi(v);
        else if (strcmp(a, "--path") == 0)
            opt.path = v;
        else if (strcmp(a, "--host") == 0)
            opt.host = v;
        else if (strcmp(a, "--lease") == 0)
            opt.lease = v;
        else if (strcmp(a, "--wait") == 0)
            opt.wait = v;
        else if (strcmp(a, "--compute-ms") == 0)
            opt.compute_ms = atoi(v);
        else if (strcmp(a, "--settle-ms") == 0)
            opt.settle_ms = atoi(v);
        else if (strcmp(a, "--timeout-ms") == 0)
            opt.timeout_ms = atoi(v);
        else
            usage();
        i++;
    }
    if (opt.n < 1 || !opt.path || opt.ntargets == 0 || strlen(opt.path) > 300)
        usage();
    raise_nofile(opt.n + 64);

    /* at priority 1 (release_ev) run one callback per loop iteration, then poll again */
    struct event_config *cfg = event_config_new();
    if (cfg)
        event_config_set_max_dispatch_interval(cfg, NULL, 1, 1);
    base = cfg ? event_base_new_with_config(cfg) : NULL;
    if (cfg)
        event_config_free(cfg);
    conns = calloc((size_t)opt.n, sizeof *conns);
    if (!base || !conns || event_base_priority_init(base, 2) != 0) {
        fprintf(stderr, "stampede: out of memory\n");
        return 1;
    }
    release_ev = event_new(base, -1, 0, release, NULL);
    event_priority_set(release_ev, 1);
    for (int i = 0; i < opt.n; i++) {
        struct conn *c = &conns[i];
        c->target = i % opt.ntargets;
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (c->fd < 0) {
            fprintf(stderr, "stampede: socket: %s\n", strerror(errno));
            return 1;
        }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->ev = event_new(base, c->fd, EV_WRITE, on_connect, c);
        if (connect(c->fd, (struct sockaddr *)&opt.targets[c->target], sizeof opt.targets[0]) !=
                0 &&
            errno != EINPROGRESS) {
            fprintf(stderr, "stampede: connect: %s\n", strerror(errno));
            return 1;
        }
        event_add(c->ev, NULL);
    }
    struct timeval tv = {opt.timeout_ms / 1000, (opt.timeout_ms % 1000) * 1000};
    struct event *deadline = evtimer_new(base, on_timeout, NULL);
    evtimer_add(deadline, &tv);
    event_base_dispatch(base);

    /* figures */
    double *lat = calloc((size_t)opt.n, sizeof *lat);
    int nw = 0, computations = 0, coalesced = 0, hits = 0, timedout = 0;
    double last = t_release, holder_ms = 0, holder_get_ms = 0, holder_put_ms = 0;
    double holder_put_at = 0;
    for (int i = 0; i < opt.n; i++) {
        struct conn *c = &conns[i];
        if (c->computed)
            computations++;
        if (c->state != ST_DONE) {
            if (c->state != ST_FAILED) {
                timedout++;
                note_error(c, "no answer before the deadline");
            }
            continue;
        }
        if (c->t_done > last)
            last = c->t_done;
        if (opt.mode == MODE_LEASE && c->computed) {
            holder_ms = c->t_done - c->t_send;
            holder_get_ms = c->t_got - c->t_send;
            holder_put_ms = c->t_done - c->t_put;
            holder_put_at = c->t_put;
            continue;
        }
        if (strcmp(c->xcache, "HIT-COALESCED") == 0)
            coalesced++;
        else if (c->status == 200)
            hits++;
        lat[nw++] = c->t_done - c->t_send;
    }
    qsort(lat, (size_t)nw, sizeof *lat, cmp_double);
    double sum = 0;
    for (int i = 0; i < nw; i++)
        sum += lat[i];
    printf("mode=%s n=%d targets=%d connected=%d\n",
           opt.mode == MODE_LEASE   ? "lease"
           : opt.mode == MODE_NAIVE ? "naive"
                                    : "proxy",
           opt.n, opt.ntargets, connected);
    printf("computations=%d\nwaiters=%d\ncoalesced=%d\nother_hits=%d\nerrors=%d\ntimedout=%d\n",
           computations, nw, coalesced, hits, errors, timedout);
    printf("p50_ms=%.3f\np99_ms=%.3f\nmax_ms=%.3f\nmin_ms=%.3f\nmean_ms=%.3f\n", pct(lat, nw, 50),
           pct(lat, nw, 99), nw ? lat[nw - 1] : 0, nw ? lat[0] : 0, nw ? sum / nw : 0);
    /* lease: the computing caller's GET (the miss that gave it the token), its PUT (stored,
     * waiters answered) and the whole */
    printf("holder_ms=%.3f\nholder_get_ms=%.3f\nholder_put_ms=%.3f\nspan_ms=%.3f\n", holder_ms,
           holder_get_ms, holder_put_ms, last - t_release);
    /* how long the client took to write the N GETs: the spread of the stampede's start */
    printf("send_spread_ms=%.3f\n", t_last_send - t_release);
    /* lease: from the holder's PUT to the last waiter's answer: how long the servers and this
     * client take to hand the value to every waiter */
    printf("drain_ms=%.3f\n", holder_put_at > 0 ? last - holder_put_at : 0);
    /* the same instants on CLOCK_MONOTONIC (ms), to line them up with `perf record -k
     * CLOCK_MONOTONIC` samples of the servers and this client */
    printf("clock_release_ms=%.3f\nclock_last_send_ms=%.3f\nclock_holder_put_ms=%.3f\n"
           "clock_last_done_ms=%.3f\n",
           t_release, t_last_send, holder_put_at, last);
    if (first_error[0])
        printf("first_error=%s\n", first_error);
    for (int i = 0; i < opt.n; i++) {
        if (conns[i].timer)
            event_free(conns[i].timer);
        event_free(conns[i].ev);
        close(conns[i].fd);
    }
    event_free(deadline);
    event_free(release_ev);
    free(lat);
    free(conns);
    event_base_free(base);
    return 0;
}
