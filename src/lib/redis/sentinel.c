/* redis/sentinel.c: the primary, asked of the sentinels and followed (sentinel.h).
 *
 * One thread, two connections to sentinels at most, both on redis/sock.c (this thread may
 * wait; no event loop ever does):
 * - `ask`: SENTINEL get-master-addr-by-name <master>, tried on each sentinel in turn until one
 *   answers, on a connection kept for the next time (a sentinel that fails is closed and the
 *   next one tried). Every second, and soon after the client asks (strata__sentinel_ask).
 * - `sub`: SUBSCRIBE +switch-master on one sentinel; a message
 *       +switch-master <master> <old-ip> <old-port> <new-ip> <new-port>
 *   for our master is published at once. A PING every second (answered ["pong", ""] while
 *   subscribed) finds a sentinel that went silent; the next one is then subscribed to.
 * The subscription makes a failover visible within a round trip of the sentinels deciding it;
 * the periodic question covers a message lost while `sub` was being replaced. Every sentinel
 * is a name or an address resolved here, with getaddrinfo, on every connect (this thread may
 * block): a sentinel whose name moves is followed like the primary.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata/errors.h>

#include "core/clock.h"
#include "redis/sentinel.h"
#include "redis/sock.h"
#include "redis/waker.h"

#define SENTINEL_PING_MS 1000
#define ASK_MIN_GAP_MS   100

struct redis_sentinel {
    sentinel_deps d;
    sentinel_addr list[SENTINELS_MAX];
    size_t n;
    char master[129];
    char password[REDIS_URL_PART_MAX];
    redis_waker w;   /* the thread; asked: ask the sentinels again soon */
    redis_sock *q;   /* the `ask` connection, to list[qi] */
    redis_sock *sub; /* the subscription, to list[si] */
    size_t qi, si;
    uint64_t asked_at;
};

/* ---- the list ------------------------------------------------------------------------------ */

static int bad(const char **why, const char *msg)
{
    if (why != NULL)
        *why = msg;
    return STRATA_EBADURL;
}

int strata__sentinels_parse(const char *list, sentinel_addr *out, size_t *n, const char **why)
{
    size_t count = 0;
    const char *p = list;
    if (p == NULL)
        return bad(why, "expected host:port,host:port,...");
    for (;;) {
        while (*p == ' ')
            p++;
        const char *h = p, *he;
        if (*p == '[') { /* [v6]:port */
            he = strchr(p, ']');
            if (he == NULL)
                return bad(why, "an IPv6 sentinel needs its closing bracket: [::1]:26379");
            h = p + 1;
            p = he + 1;
        } else {
            p += strcspn(p, ":, ");
            he = p;
        }
        if (he == h)
            return bad(why, "a sentinel's host is empty (expected host:port,host:port,...)");
        if ((size_t)(he - h) >= REDIS_URL_PART_MAX)
            return bad(why, "a sentinel's host is too long");
        if (*p != ':')
            return bad(why, "each sentinel needs its port: host:port (Sentinel's is often 26379)");
        p++;
        long port = 0;
        const char *ps = p;
        while (*p >= '0' && *p <= '9' && port <= 65535)
            port = port * 10 + (*p++ - '0');
        if (p == ps || port < 1 || port > 65535 || (*p >= '0' && *p <= '9'))
            return bad(why, "a sentinel's port must be a number from 1 to 65535");
        while (*p == ' ')
            p++;
        if (*p != ',' && *p != '\0')
            return bad(why, "expected a comma between sentinels: host:port,host:port");
        if (count == SENTINELS_MAX)
            return bad(why, "at most 16 sentinels");
        if (out != NULL) {
            memcpy(out[count].host, h, (size_t)(he - h));
            out[count].host[he - h] = '\0';
            out[count].port = (int)port;
        }
        count++;
        if (*p == '\0')
            break;
        p++;
    }
    if (n != NULL)
        *n = count;
    return 0;
}

int strata__sentinel_master_check(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > 128)
        return STRATA_EINVAL;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] <= ' ' || name[i] == 0x7f)
            return STRATA_EINVAL;
    return 0;
}

void strata__sentinel_url(const strata_redis_config *cfg, redis_url *out)
{
    memset(out, 0, sizeof *out);
    if (cfg->username != NULL)
        snprintf(out->user, sizeof out->user, "%s", cfg->username);
    if (cfg->password != NULL)
        snprintf(out->password, sizeof out->password, "%s", cfg->password);
    out->db = (int)cfg->db;
    out->tls = cfg->tls;
}

/* ---- talking to sentinels ---------------------------------------------------------------- */

static void say(redis_sentinel *s, int level, const char *fmt, const char *a, const char *b)
{
    char line[400];
    snprintf(line, sizeof line, fmt, a, b);
    if (level < 0)
        s->d.note_error(s->d.arg, line);
    else
        s->d.log(s->d.arg, level, line);
}

/* Resolves host to a numeric address (blocking: this thread may). 0, or -1 with err set. */
static int resolve(const char *host, char *out, size_t cap, char *err, size_t errcap)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(err, errcap, "cannot resolve %.100s: %s", host, gai_strerror(rc));
        return -1;
    }
    rc = getnameinfo(res->ai_addr, res->ai_addrlen, out, (socklen_t)cap, NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(res);
    if (rc != 0)
        snprintf(err, errcap, "cannot resolve %.100s", host);
    return rc == 0 ? 0 : -1;
}

/* A connection to sentinel i, authenticated with REDIS_SENTINEL_PASSWORD, or NULL with err. */
static redis_sock *connect_to(redis_sentinel *s, size_t i, char *err, size_t cap)
{
    const sentinel_addr *a = &s->list[i];
    redis_url u;
    memset(&u, 0, sizeof u);
    char why[200];
    if (resolve(a->host, u.host, sizeof u.host, why, sizeof why) != 0) {
        snprintf(err, cap, "sentinel %.100s:%d: %.150s", a->host, a->port, why);
        return NULL;
    }
    u.port = a->port;
    redis_sock *sk =
        strata__sock_connect(&u, s->d.tls, a->host, s->d.connect_timeout_ms, why, sizeof why);
    if (sk == NULL) {
        snprintf(err, cap, "sentinel %.100s:%d: %.150s", a->host, a->port, why);
        return NULL;
    }
    if (s->password[0]) {
        redis_cmd auth = {
            .argc = 2, .argv = {"AUTH", s->password}, .argvlen = {4, strlen(s->password)}};
        redisReply *r = NULL;
        if (strata__sock_exchange(sk, &auth, 1, &r, s->d.socket_timeout_ms) != 0) {
            snprintf(err, cap, "sentinel %.100s:%d: AUTH: %.100s", a->host, a->port,
                     strata__sock_error(sk));
            strata__sock_close(sk);
            return NULL;
        }
        int refused = r->type == REDIS_REPLY_ERROR;
        if (refused)
            snprintf(err, cap, "sentinel %.100s:%d refused AUTH: %.100s", a->host, a->port, r->str);
        freeReplyObject(r);
        if (refused) {
            strata__sock_close(sk);
            return NULL;
        }
    }
    return sk;
}

/* Hands the primary name:port to the client, resolved to an address here. */
static void publish(redis_sentinel *s, const char *name, size_t len, const char *port_s)
{
    char host[REDIS_URL_PART_MAX], addr[REDIS_URL_PART_MAX], why[200];
    long port = strtol(port_s, NULL, 10);
    if (len == 0 || len >= sizeof host || port < 1 || port > 65535)
        return;
    memcpy(host, name, len);
    host[len] = '\0';
    if (resolve(host, addr, sizeof addr, why, sizeof why) != 0) {
        say(s, -1, "the primary the sentinels name: %s%s", why, "");
        return;
    }
    s->d.primary(s->d.arg, host, addr, (int)port);
}

/* Asks one sentinel after the other (starting with the one that answered last) where the
 * primary is. 0 once one answered and the answer was published, -1 when none did. */
static int ask_all(redis_sentinel *s)
{
    char err[300] = "";
    redis_cmd cmd = {.argc = 3,
                     .argv = {"SENTINEL", "get-master-addr-by-name", s->master},
                     .argvlen = {8, 23, strlen(s->master)}};
    for (size_t k = 0; k < s->n; k++) {
        size_t i = (s->qi + k) % s->n;
        if (s->q != NULL && i != s->qi)
            strata__sock_close(s->q), s->q = NULL;
        if (s->q == NULL && (s->q = connect_to(s, i, err, sizeof err)) == NULL)
            continue;
        s->qi = i;
        redisReply *r = NULL;
        if (strata__sock_exchange(s->q, &cmd, 1, &r, s->d.socket_timeout_ms) != 0) {
            snprintf(err, sizeof err, "sentinel %.100s:%d: %.100s", s->list[i].host,
                     s->list[i].port, strata__sock_error(s->q));
            strata__sock_close(s->q), s->q = NULL;
            continue;
        }
        int ok = r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                 r->element[0]->type == REDIS_REPLY_STRING &&
                 r->element[1]->type == REDIS_REPLY_STRING;
        if (ok)
            publish(s, r->element[0]->str, r->element[0]->len, r->element[1]->str);
        else if (r->type == REDIS_REPLY_NIL)
            snprintf(err, sizeof err, "sentinel %.100s:%d does not know the master \"%.64s\"",
                     s->list[i].host, s->list[i].port, s->master);
        else
            snprintf(err, sizeof err, "sentinel %.100s:%d: %.100s", s->list[i].host,
                     s->list[i].port, r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        if (ok)
            return 0;
        strata__sock_close(s->q), s->q = NULL; /* a sentinel that cannot tell: the next one */
    }
    say(s, -1, "no sentinel named the primary (%s)%s", err, "");
    return -1;
}

/* Subscribes to +switch-master on the next sentinel that takes it. 0, or -1 (none did). */
static int subscribe(redis_sentinel *s)
{
    char err[300] = "";
    redis_cmd cmd = {.argc = 2, .argv = {"SUBSCRIBE", "+switch-master"}, .argvlen = {9, 14}};
    for (size_t k = 0; k < s->n; k++) {
        size_t i = (s->si + 1 + k) % s->n;
        redis_sock *sk = connect_to(s, i, err, sizeof err);
        if (sk == NULL)
            continue;
        redisReply *r = NULL;
        if (strata__sock_exchange(sk, &cmd, 1, &r, s->d.socket_timeout_ms) == 0 &&
            r->type == REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            s->sub = sk, s->si = i;
            return 0;
        }
        if (r != NULL)
            freeReplyObject(r);
        strata__sock_close(sk);
    }
    say(s, -1, "no sentinel took the +switch-master subscription (%s)%s", err, "");
    return -1;
}

/* A message on the subscription: ["message", "+switch-master", "<master> <old> <oldport>
 * <new> <newport>"], or ["pong", ""]. Returns 1 for the pong. */
static int on_message(redis_sentinel *s, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    if (strcmp(r->element[0]->str, "pong") == 0)
        return 1;
    if (strcmp(r->element[0]->str, "message") != 0 || r->elements != 3 ||
        r->element[2]->type != REDIS_REPLY_STRING)
        return 0;
    char buf[600], *save = NULL;
    snprintf(buf, sizeof buf, "%s", r->element[2]->str);
    char *name = strtok_r(buf, " ", &save);
    char *old = strtok_r(NULL, " ", &save), *oldport = strtok_r(NULL, " ", &save);
    char *neu = strtok_r(NULL, " ", &save), *newport = strtok_r(NULL, " ", &save);
    if (name == NULL || strcmp(name, s->master) != 0 || newport == NULL)
        return 0;
    char line[400];
    snprintf(line, sizeof line, "sentinel: %s failed over from %s:%s to %s:%s", name, old, oldport,
             neu, newport);
    s->d.log(s->d.arg, 2, line);
    publish(s, neu, strlen(neu), newport);
    return 0;
}

/* ---- the thread ---------------------------------------------------------------------------- */

static void *watch(void *arg)
{
    redis_sentinel *s = arg;
    uint64_t next_ask = 0, ping_sent = 0, next_ping = 0, backoff = 100;
    while (!strata__waker_stopping(&s->w)) {
        uint64_t now = strata__mono_ms();
        if (s->sub == NULL && subscribe(s) == 0)
            next_ask = now, ping_sent = 0, next_ping = now + SENTINEL_PING_MS;
        if ((strata__waker_pending(&s->w) && now - s->asked_at >= ASK_MIN_GAP_MS) ||
            now >= next_ask) {
            strata__waker_asked(&s->w);
            s->asked_at = now;
            int ok = ask_all(s) == 0;
            backoff = ok ? 100 : (backoff * 2 > SENTINEL_ASK_MS ? SENTINEL_ASK_MS : backoff * 2);
            next_ask = strata__mono_ms() + (ok ? SENTINEL_ASK_MS : backoff);
        }
        now = strata__mono_ms();
        if (s->sub != NULL && ping_sent != 0 && now - ping_sent > s->d.socket_timeout_ms + 100) {
            say(s, -1, "sentinel subscription silent: %s%s", "resubscribing", "");
            strata__sock_close(s->sub), s->sub = NULL;
            continue;
        }
        if (s->sub != NULL && ping_sent == 0 && now >= next_ping) {
            redis_cmd ping = {.argc = 1, .argv = {"PING"}, .argvlen = {4}};
            if (strata__sock_send(s->sub, &ping, s->d.socket_timeout_ms) != 0) {
                strata__sock_close(s->sub), s->sub = NULL;
                continue;
            }
            ping_sent = now, next_ping = now + SENTINEL_PING_MS;
        }
        uint64_t until = next_ask;
        if (strata__waker_pending(&s->w))
            until = s->asked_at + ASK_MIN_GAP_MS;
        if (s->sub == NULL && until > now + backoff)
            until = now + backoff; /* try to subscribe again */
        if (s->sub != NULL && until > now + 50)
            until = now + 50; /* the keep-alive's bound */
        int readable = strata__waker_sleep(&s->w, until > now ? (int)(until - now) : 0,
                                           s->sub ? strata__sock_fd(s->sub) : -1);
        if (s->sub == NULL || !readable)
            continue;
        int broken = strata__sock_read(s->sub) != 0;
        redisReply *r = NULL;
        while (!broken && strata__sock_reply(s->sub, &r) == 0 && r != NULL) {
            if (on_message(s, r))
                ping_sent = 0;
            freeReplyObject(r);
        }
        if (broken) {
            say(s, -1, "sentinel subscription lost: %s%s", strata__sock_error(s->sub), "");
            strata__sock_close(s->sub), s->sub = NULL;
        }
    }
    return NULL;
}

int strata__sentinel_start(const sentinel_deps *d, const strata_redis_config *cfg,
                           redis_sentinel **out)
{
    *out = NULL;
    redis_sentinel *s = calloc(1, sizeof *s);
    if (s == NULL)
        return STRATA_ENOMEM;
    s->d = *d;
    if (s->d.socket_timeout_ms == 0)
        s->d.socket_timeout_ms = 250;
    if (s->d.connect_timeout_ms == 0)
        s->d.connect_timeout_ms = 500;
    if (strata__sentinels_parse(cfg->sentinels, s->list, &s->n, NULL) != 0 ||
        strata__sentinel_master_check(cfg->sentinel_master) != 0) {
        free(s);
        return STRATA_EBADURL;
    }
    snprintf(s->master, sizeof s->master, "%s", cfg->sentinel_master);
    if (cfg->sentinel_password != NULL)
        snprintf(s->password, sizeof s->password, "%s", cfg->sentinel_password);
    s->si = s->n - 1; /* the first subscription goes to the first sentinel */
    int rc = strata__waker_start(&s->w, watch, s);
    if (rc != 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void strata__sentinel_stop(redis_sentinel *s)
{
    if (s == NULL)
        return;
    strata__waker_stop(&s->w);
    strata__sock_close(s->q);
    strata__sock_close(s->sub);
    free(s);
}

void strata__sentinel_ask(redis_sentinel *s)
{
    if (s != NULL)
        strata__waker_ask(&s->w);
}
