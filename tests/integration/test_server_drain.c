/* test_server_drain.c: SIGTERM while clients write. strata serve stops accepting, finishes what
 * is in flight and exits 0 within its drain timeout (10 s); every PUT that was acknowledged (2xx)
 * is in Redis afterwards (DESIGN.md: "a cache write is acknowledged once it is readable ...
 * Nothing acknowledged is silently dropped"), and no client sees a 5xx during the drain (a
 * refused or reset connection once it stopped accepting is fine: nothing was acknowledged). A
 * DEBUG SLEEP in Redis at the moment of the signal keeps writes in flight during the drain. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "server_harness.h"

#define THREADS        6
#define MAX_PER_THREAD 20000
#define DRAIN_LIMIT_MS 12000 /* the 10 s drain timeout, with a margin */

static rh_server *redis;

typedef struct writer {
    int id;
    int port;
    int n;             /* requests made */
    char (*acked)[48]; /* keys acknowledged with a 2xx */
    int nacked;
    int after_term; /* 2xx answers that arrived after the signal */
    int fivexx;
    char last5xx[512];
    int other;     /* other HTTP statuses */
    int transport; /* no HTTP answer */
} writer;

static atomic_int stop_all;
static atomic_long term_at;

static void *write_loop(void *arg)
{
    writer *w = arg;
    int refused_in_a_row = 0;
    while (!atomic_load(&stop_all) && w->n < MAX_PER_THREAD) {
        char key[48], path[96];
        snprintf(key, sizeof key, "w%d-%d", w->id, w->n);
        snprintf(path, sizeof path, "/v1/cache/drain/%s", key);
        w->n++;
        sh_resp *r = sh_request_port(w->port, "PUT", path, NULL, key, strlen(key), 15000);
        if (r->status >= 200 && r->status < 300) {
            snprintf(w->acked[w->nacked++], 48, "%s", key);
            if (atomic_load(&term_at) != 0)
                w->after_term++;
            refused_in_a_row = 0;
        } else if (r->status >= 500) {
            w->fivexx++;
            snprintf(w->last5xx, sizeof w->last5xx, "%ld %.400s", r->status, r->body);
        } else if (r->status != 0) {
            w->other++;
        } else {
            w->transport++;
            /* Once the server is gone for good, stop. */
            if (atomic_load(&term_at) != 0 && ++refused_in_a_row >= 20) {
                sh_resp_free(r);
                break;
            }
            sh_sleep_ms(2);
        }
        sh_resp_free(r);
    }
    return NULL;
}

typedef struct sleeper {
    rh_server *r;
} sleeper;

static void *redis_sleep(void *arg)
{
    sleeper *s = arg;
    redisReply *r = rh_command(s->r, "DEBUG SLEEP 0.4");
    if (r != NULL)
        freeReplyObject(r);
    return NULL;
}

static void run_drain(int with_sleep)
{
    redisReply *fr = rh_command(redis, "FLUSHALL");
    assert_non_null(fr);
    freeReplyObject(fr);
    char url[320];
    snprintf(url, sizeof url, "REDIS_URL=%s", rh_url(redis));
    const char *env[] = {url, "STRATA_WORKERS=2", "REDIS_SOCKET_TIMEOUT=2", NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    atomic_store(&stop_all, 0);
    atomic_store(&term_at, 0);
    writer w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].id = i;
        w[i].port = sh_port(s);
        w[i].acked = calloc(MAX_PER_THREAD, sizeof *w[i].acked);
        assert_int_equal(pthread_create(&th[i], NULL, write_loop, &w[i]), 0);
    }
    sh_sleep_ms(500);
    pthread_t sl;
    sleeper sa = {redis};
    if (with_sleep) {
        assert_int_equal(pthread_create(&sl, NULL, redis_sleep, &sa), 0);
        sh_sleep_ms(100); /* writes pile up behind the sleeping Redis */
    }
    long t0 = sh_now_ms();
    atomic_store(&term_at, t0);
    assert_int_equal(sh_signal(s, SIGTERM), 0);
    int st = sh_wait_exit(s, DRAIN_LIMIT_MS);
    long took = sh_now_ms() - t0;
    atomic_store(&stop_all, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    if (with_sleep)
        pthread_join(sl, NULL);

    int total = 0, acked = 0, after = 0, fivexx = 0, other = 0, transport = 0, missing = 0;
    for (int i = 0; i < THREADS; i++) {
        total += w[i].n, acked += w[i].nacked, after += w[i].after_term;
        fivexx += w[i].fivexx, other += w[i].other, transport += w[i].transport;
        if (w[i].fivexx)
            fprintf(stderr, "writer %d saw %d 5xx, last: %s\n", i, w[i].fivexx, w[i].last5xx);
        for (int k = 0; k < w[i].nacked; k++) {
            redisReply *r = rh_command(redis, "EXISTS strata:drain:default:%s", w[i].acked[k]);
            assert_non_null(r);
            if (r->integer != 1) {
                if (missing < 10)
                    fprintf(stderr, "acknowledged but not in Redis: %s\n", w[i].acked[k]);
                missing++;
            }
            freeReplyObject(r);
        }
        free(w[i].acked);
    }
    fprintf(stderr,
            "drain%s: %d requests, %d acknowledged (%d after SIGTERM), %d 5xx, %d other, %d "
            "without an answer; exit %d after %ld ms\n",
            with_sleep ? " (Redis asleep)" : "", total, acked, after, fivexx, other, transport, st,
            took);
    int clean = sh_log_clean(s);
    if (st != 0) {
        char *log = sh_log(s);
        fprintf(stderr, "server log:\n%s\n", log);
        free(log);
    }
    sh_free(s);
    assert_true(acked > 0);
    assert_int_equal(missing, 0);
    assert_int_equal(fivexx, 0);
    assert_int_equal(other, 0);
    assert_int_equal(st, 0);
    assert_true(took <= DRAIN_LIMIT_MS);
    assert_true(clean);
}

static void test_sigterm_under_load(void **state)
{
    (void)state;
    run_drain(0);
}

static void test_sigterm_with_writes_pending(void **state)
{
    (void)state;
    run_drain(1);
}

/* A PUT waiting on Redis when SIGTERM arrives still gets its 204 (and is in Redis), and an idle
 * keep-alive connection does not hold the drain up until its timeout. */
static void test_inflight_answered(void **state)
{
    (void)state;
    char url[320];
    snprintf(url, sizeof url, "REDIS_URL=%s", rh_url(redis));
    const char *env[] = {url, "STRATA_WORKERS=1", "REDIS_SOCKET_TIMEOUT=3", NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    int idle = sh_raw_connect(sh_port(s));
    assert_true(idle >= 0);
    const char ka[] = "GET /livez HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(sh_raw_send(idle, ka, sizeof ka - 1), 0);
    size_t n = 0;
    int eof = 0;
    free(sh_raw_read_responses(idle, 1, 3000, &n, &eof));
    /* A write held up by a sleeping Redis. */
    pthread_t sl;
    sleeper sa = {redis};
    assert_int_equal(pthread_create(&sl, NULL, redis_sleep, &sa), 0);
    sh_sleep_ms(100);
    int fd = sh_raw_connect(sh_port(s));
    assert_true(fd >= 0);
    const char put[] = "PUT /v1/cache/drain/inflight HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
                       "\r\nok";
    assert_int_equal(sh_raw_send(fd, put, sizeof put - 1), 0);
    sh_sleep_ms(50);
    long t0 = sh_now_ms();
    assert_int_equal(sh_signal(s, SIGTERM), 0);
    char *out = sh_raw_read_responses(fd, 1, 8000, &n, &eof);
    int code = 0;
    sscanf(out, "HTTP/1.%*d %d", &code);
    if (code != 204)
        fprintf(stderr, "in-flight PUT during the drain: %.300s\n", out);
    free(out);
    close(fd);
    int st = sh_wait_exit(s, DRAIN_LIMIT_MS);
    long took = sh_now_ms() - t0;
    pthread_join(sl, NULL);
    close(idle);
    int clean = sh_log_clean(s);
    sh_free(s);
    assert_int_equal(code, 204);
    redisReply *r = rh_command(redis, "EXISTS strata:drain:default:inflight");
    assert_non_null(r);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    assert_int_equal(st, 0);
    /* The idle connection held nothing up: well before the 10 s drain timeout. */
    assert_true(took < 5000);
    assert_true(clean);
}

/* Reads fd until EOF (or timeout_ms): the bytes, and how many. */
static char *read_to_eof(int fd, long timeout_ms, size_t *len)
{
    size_t cap = 16u << 20, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    long deadline = sh_now_ms() + timeout_ms;
    while (n < cap && sh_now_ms() < deadline) {
        struct timeval tv = {0, 200000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ssize_t got = recv(fd, buf + n, cap - n, 0);
        if (got == 0)
            break;
        if (got > 0)
            n += (size_t)got;
    }
    *len = n;
    return buf;
}

/* Complete responses at the start of buf (Content-Length framing), and whether the data ends
 * exactly after the last one (nothing cut). */
static int whole_responses(const char *buf, size_t len, int *ends_clean)
{
    size_t off = 0;
    int count = 0;
    while (off < len) {
        const char *end = memmem(buf + off, len - off, "\r\n\r\n", 4);
        const char *cl =
            end ? memmem(buf + off, (size_t)(end - buf) - off, "Content-Length: ", 16) : NULL;
        size_t body = cl ? strtoul(cl + 16, NULL, 10) : 0;
        if (end == NULL || (size_t)(end + 4 - buf) + body > len)
            break;
        off = (size_t)(end + 4 - buf) + body;
        count++;
    }
    *ends_clean = off == len;
    return count;
}

/* A slow reader of large answers when SIGTERM arrives: the answers queued for it are sent whole
 * before the worker stops (the drain waits for them, up to its timeout), never cut mid-body. */
static void test_slow_reader_gets_whole_answers(void **state)
{
    (void)state;
    const char *env[] = {"STRATA_WORKERS=1", NULL};
    sh_server *s = sh_start(env, NULL);
    assert_non_null(s);
    size_t vlen = 1u << 20;
    char *value = malloc(vlen);
    memset(value, 'v', vlen);
    sh_resp *r = sh_request(s, "PUT", "/v1/cache/drain/big", NULL, value, vlen);
    SH_EXPECT_STATUS(r, 204);
    sh_resp_free(r);
    free(value);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sh_port(s))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char reqs[8 * 48];
    size_t o = 0;
    for (int i = 0; i < 8; i++)
        o += (size_t)snprintf(reqs + o, sizeof reqs - o,
                              "GET /v1/cache/drain/big HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(sh_raw_send(fd, reqs, o), 0);
    sh_sleep_ms(300); /* answers pile up: the client reads nothing yet */
    long t0 = sh_now_ms();
    assert_int_equal(sh_signal(s, SIGTERM), 0);
    sh_sleep_ms(300);
    size_t n = 0;
    char *out = read_to_eof(fd, 9000, &n);
    close(fd);
    int st = sh_wait_exit(s, DRAIN_LIMIT_MS);
    long took = sh_now_ms() - t0;
    int clean_end = 0, whole = whole_responses(out, n, &clean_end);
    if (whole < 1 || !clean_end)
        fprintf(stderr, "slow reader: %zu bytes, %d whole answers, ends clean %d\n", n, whole,
                clean_end);
    free(out);
    int clean = sh_log_clean(s);
    sh_free(s);
    assert_true(whole >= 1);
    assert_true(clean_end);
    assert_int_equal(st, 0);
    assert_true(took <= DRAIN_LIMIT_MS);
    assert_true(clean);
}

static int setup(void **state)
{
    (void)state;
    redis = rh_start(NULL);
    return redis ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    rh_stop(redis);
    redis = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigterm_under_load),
        cmocka_unit_test(test_sigterm_with_writes_pending),
        cmocka_unit_test(test_inflight_answered),
        cmocka_unit_test(test_slow_reader_gets_whole_answers),
    };
    SH_TEST_FILTER();
    return cmocka_run_group_tests(tests, setup, teardown);
}
