/* redis/sock.c: a Redis connection for threads that may wait (sock.h). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/util.h>
#include <strata/errors.h>

#include "core/clock.h"
#include "redis/sock.h"
#include "redis/tls.h"

struct redis_sock {
    int fd;
    SSL *ssl; /* NULL: plain TCP */
    redisReader *reader;
    char err[160];
};

static int fail(redis_sock *s, const char *what, int e)
{
    snprintf(s->err, sizeof s->err, "%s: %s", what, e ? strerror(e) : "closed by the server");
    return -1;
}

static int fail_tls(redis_sock *s, const char *what, const char *why)
{
    snprintf(s->err, sizeof s->err, "%.40s: %.110s", what, why);
    return -1;
}

/* Waits for events on s until deadline (monotonic ms). Returns 1 ready, 0 timed out, -1 error. */
static int wait_until(redis_sock *s, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = strata__mono_ms();
        if (now >= deadline)
            return 0;
        struct pollfd p = {.fd = s->fd, .events = events};
        int n = poll(&p, 1, (int)(deadline - now));
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

int strata__redis_sockaddr(const redis_url *u, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    if (u->path[0]) {
        struct sockaddr_un *un = (struct sockaddr_un *)ss;
        if (strlen(u->path) >= sizeof un->sun_path)
            return -1;
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, u->path, strlen(u->path) + 1);
        *len = sizeof *un;
        return 0;
    }
    char spec[300];
    int n = (int)sizeof *ss;
    snprintf(spec, sizeof spec, strchr(u->host, ':') ? "[%s]:%d" : "%s:%d", u->host, u->port);
    if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)ss, &n) != 0)
        return -1;
    *len = (socklen_t)n;
    return 0;
}

/* The TLS handshake on the connected socket, within the connect deadline. 0, or -1 (s->err). */
static int start_tls(redis_sock *s, const redis_tls *tls, const char *name, uint64_t deadline)
{
    char why[128];
    if ((s->ssl = strata__tls_session(tls, s->fd, name, why, sizeof why)) == NULL)
        return fail_tls(s, "connect to redis", why);
    for (;;) {
        int rc = strata__tls_handshake(s->ssl, why, sizeof why);
        if (rc == 1)
            return 0;
        if (rc == REDIS_TLS_FAILED)
            return fail_tls(s, "TLS handshake with redis failed", why);
        int w = wait_until(s, rc == REDIS_TLS_WANT_READ ? POLLIN : POLLOUT, deadline);
        if (w == 0)
            return fail_tls(s, "TLS handshake with redis", "timed out");
        if (w < 0)
            return fail(s, "TLS handshake with redis", errno);
    }
}

redis_sock *strata__sock_connect(const redis_url *u, const redis_tls *tls, const char *tls_name,
                                 unsigned connect_ms, char *err, size_t cap)
{
    uint64_t deadline = strata__mono_ms() + connect_ms;
    struct sockaddr_storage ss;
    socklen_t len;
    if (strata__redis_sockaddr(u, &ss, &len) != 0) {
        snprintf(err, cap, "connect to redis: the address is not numeric (it did not resolve)");
        return NULL;
    }
    redis_sock *s = calloc(1, sizeof *s);
    if (s == NULL || (s->reader = redisReaderCreate()) == NULL) {
        free(s);
        snprintf(err, cap, "connect to redis: out of memory");
        return NULL;
    }
    s->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = s->fd < 0 ? fail(s, "connect to redis", errno) : 0;
    if (rc == 0 && connect(s->fd, (struct sockaddr *)&ss, len) != 0) {
        int e = 0, w = errno == EINPROGRESS ? 1 : -1;
        socklen_t el = sizeof e;
        if (w < 0)
            rc = fail(s, "connect to redis", errno);
        else if ((w = wait_until(s, POLLOUT, deadline)) == 0)
            rc = -1, snprintf(s->err, sizeof s->err, "connect to redis: timed out");
        else if (w < 0)
            rc = fail(s, "connect to redis", errno);
        else if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0 || e != 0)
            rc = fail(s, "connect to redis", e ? e : errno);
    }
    if (rc == 0 && !u->path[0]) {
        int one = 1;
        setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(s->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    }
    if (rc == 0 && tls != NULL)
        rc = start_tls(s, tls, tls_name, deadline);
    if (rc != 0) {
        snprintf(err, cap, "%s", s->err);
        strata__sock_close(s);
        return NULL;
    }
    return s;
}

void strata__sock_close(redis_sock *s)
{
    if (s == NULL)
        return;
    SSL_free(s->ssl); /* no close_notify: Redis drops the connection either way */
    if (s->fd >= 0)
        close(s->fd);
    redisReaderFree(s->reader);
    free(s);
}

/* Writes len bytes by deadline. Returns 1 written, 0 timed out, -1 failed. */
static int write_all(redis_sock *s, const char *p, size_t len, uint64_t deadline)
{
    while (len > 0 && s->ssl != NULL) {
        char why[128];
        long n = strata__tls_write(s->ssl, p, len, why, sizeof why);
        if (n > 0) {
            p += n, len -= (size_t)n;
            continue;
        }
        if (n == 0 || n == REDIS_TLS_FAILED)
            return fail_tls(s, "write to redis", n == 0 ? "closed by the server" : why);
        int w = wait_until(s, n == REDIS_TLS_WANT_READ ? POLLIN : POLLOUT, deadline);
        if (w <= 0)
            return w < 0 ? fail(s, "write to redis", errno) : 0;
    }
    while (len > 0) {
        ssize_t n = send(s->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n, len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return fail(s, "write to redis", errno);
        int w = wait_until(s, POLLOUT, deadline);
        if (w <= 0)
            return w < 0 ? fail(s, "write to redis", errno) : 0;
    }
    return 1;
}

static int send_cmds(redis_sock *s, const redis_cmd *cmds, size_t n, uint64_t deadline)
{
    for (size_t i = 0; i < n; i++) {
        char *buf;
        long len = strata__cmd_format(&cmds[i], &buf);
        if (len < 0) {
            snprintf(s->err, sizeof s->err, "out of memory formatting a redis command");
            return -1;
        }
        int w = write_all(s, buf, (size_t)len, deadline);
        strata__cmd_free(buf);
        if (w <= 0)
            return w;
    }
    return 1;
}

/* strata__sock_read over TLS: until OpenSSL wants the socket again, so nothing it decrypted is
 * left in its buffers where poll() cannot see it. */
static int read_tls(redis_sock *s)
{
    char buf[16 * 1024], why[128];
    for (;;) {
        long n = strata__tls_read(s->ssl, buf, sizeof buf, why, sizeof why);
        if (n > 0) {
            if (redisReaderFeed(s->reader, buf, (size_t)n) != REDIS_OK)
                return fail(s, "redis reply buffer", ENOMEM);
            continue;
        }
        if (n == REDIS_TLS_WANT_READ || n == REDIS_TLS_WANT_WRITE)
            return 0;
        return n == 0 ? fail(s, "read from redis", 0) : fail_tls(s, "read from redis", why);
    }
}

int strata__sock_read(redis_sock *s)
{
    char buf[16 * 1024];
    if (s->ssl != NULL)
        return read_tls(s);
    for (;;) {
        ssize_t n = recv(s->fd, buf, sizeof buf, 0);
        if (n > 0) {
            if (redisReaderFeed(s->reader, buf, (size_t)n) != REDIS_OK)
                return fail(s, "redis reply buffer", ENOMEM);
            if ((size_t)n < sizeof buf)
                return 0;
            continue;
        }
        if (n == 0)
            return fail(s, "read from redis", 0);
        if (errno == EAGAIN)
            return 0;
        if (errno != EINTR)
            return fail(s, "read from redis", errno);
    }
}

int strata__sock_reply(redis_sock *s, redisReply **r)
{
    void *reply = NULL;
    if (redisReaderGetReply(s->reader, &reply) != REDIS_OK) {
        snprintf(s->err, sizeof s->err, "protocol error in a redis reply");
        return -1;
    }
    *r = reply;
    return 0;
}

int strata__sock_exchange(redis_sock *s, const redis_cmd *cmds, size_t n, redisReply **replies,
                          unsigned timeout_ms)
{
    uint64_t deadline = strata__mono_ms() + timeout_ms;
    int w = send_cmds(s, cmds, n, deadline);
    size_t got = 0;
    while (w > 0 && got < n) {
        if (strata__sock_reply(s, &replies[got]) != 0) {
            w = -1;
        } else if (replies[got] != NULL) {
            got++;
        } else if ((w = wait_until(s, POLLIN, deadline)) > 0 && strata__sock_read(s) != 0) {
            w = -1;
        } else if (w < 0) {
            fail(s, "read from redis", errno);
        }
    }
    if (got == n)
        return 0;
    for (size_t i = 0; i < got; i++)
        freeReplyObject(replies[i]);
    if (w == 0)
        snprintf(s->err, sizeof s->err, "redis did not answer within the socket timeout");
    return w == 0 ? STRATA_ETIMEDOUT : STRATA_EUNAVAILABLE;
}

int strata__sock_send(redis_sock *s, const redis_cmd *cmd, unsigned timeout_ms)
{
    return send_cmds(s, cmd, 1, strata__mono_ms() + timeout_ms) > 0 ? 0 : -1;
}

int strata__sock_fd(const redis_sock *s)
{
    return s->fd;
}

const char *strata__sock_error(const redis_sock *s)
{
    return s->err;
}
