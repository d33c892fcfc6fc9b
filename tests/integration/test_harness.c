/* test_harness.c: the integration-test harness itself, against real redis-server processes.
 *
 * Every other integration test trusts the harness to hand it a live, private Redis and to kill,
 * pause and restart it on request, so each of those promises is checked here: PING over TCP and
 * over the unix socket, kill → unreachable → restart on the same port, pause → a client times
 * out → resume, a replica following a primary, distinct ports for concurrent servers, the temp
 * dir removed by rh_stop, the external-server mode, and no server (nor, eventually, its dir)
 * surviving the test process, whether it exits normally or crashes.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

/* Starts a server or fails the test. */
static rh_server *start(const char *const *extra)
{
    rh_server *s = rh_start(extra);
    assert_non_null(s);
    return s;
}

/* A test that needs a process of its own skips on an external server. */
static void skip_if_external(rh_server *s)
{
    if (rh_is_external(s)) {
        rh_stop(s);
        skip();
    }
}

static int pings(rh_server *s)
{
    redisReply *r = rh_command(s, "PING");
    int ok = r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    if (r != NULL)
        freeReplyObject(r);
    return ok;
}

static void set_key(rh_server *s, const char *key, const char *val)
{
    redisReply *r = rh_command(s, "SET %s %s", key, val);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    assert_string_equal(r->str, "OK");
    freeReplyObject(r);
}

/* 1 if GET key returns val; 0 if nil or something else. */
static int key_is(rh_server *s, const char *key, const char *val)
{
    redisReply *r = rh_command(s, "GET %s", key);
    int ok = r != NULL && r->type == REDIS_REPLY_STRING && strcmp(r->str, val) == 0;
    if (r != NULL)
        freeReplyObject(r);
    return ok;
}

static int path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void key_name(char *buf, size_t n, const char *what)
{
    snprintf(buf, n, "strata-it:harness:%d:%s", (int)getpid(), what);
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_start_ping(void **state)
{
    (void)state;
    rh_server *s = start(NULL);
    assert_true(rh_port(s) > 0 && rh_port(s) < 65536);
    char url[64];
    snprintf(url, sizeof url, "redis://%s:%d", rh_host(s), rh_port(s));
    assert_string_equal(rh_url(s), url);
    assert_true(pings(s));

    char key[96];
    key_name(key, sizeof key, "start");
    set_key(s, key, "v1");
    assert_true(key_is(s, key, "v1"));
    redisReply *r = rh_command(s, "DEL %s", key);
    assert_non_null(r);
    freeReplyObject(r);

    if (!rh_is_external(s)) {
        assert_string_equal(rh_host(s), "127.0.0.1");
        assert_true(rh_pid(s) > 0);
        /* The defaults the harness promises: nothing persisted. */
        r = rh_command(s, "CONFIG GET save");
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_int_equal(r->elements, 2);
        assert_string_equal(r->element[1]->str, "");
        freeReplyObject(r);
        r = rh_command(s, "CONFIG GET appendonly");
        assert_non_null(r);
        assert_int_equal(r->elements, 2);
        assert_string_equal(r->element[1]->str, "no");
        freeReplyObject(r);
    }
    rh_stop(s);
}

static void test_unix_socket(void **state)
{
    (void)state;
    rh_server *s = start(NULL);
    skip_if_external(s);
    assert_non_null(rh_unix_path(s));
    assert_true(strncmp(rh_unix_path(s), rh_dir(s), strlen(rh_dir(s))) == 0);

    redisContext *c = redisConnectUnix(rh_unix_path(s));
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    redisReply *r = redisCommand(c, "PING");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
    /* The same server as over TCP: a key set on one is read on the other. */
    r = redisCommand(c, "SET via-unix 1");
    assert_non_null(r);
    freeReplyObject(r);
    redisFree(c);
    assert_true(key_is(s, "via-unix", "1"));
    rh_stop(s);
}

static void test_kill_restart_same_port(void **state)
{
    (void)state;
    rh_server *s = start(NULL);
    skip_if_external(s);
    int port = rh_port(s);
    pid_t pid = rh_pid(s);
    set_key(s, "before-kill", "x");

    assert_int_equal(rh_kill(s), 0);
    assert_int_equal(rh_pid(s), -1);
    assert_false(pings(s));
    assert_int_equal(rh_kill(s), 0); /* already dead: a no-op */

    assert_int_equal(rh_restart(s), 0);
    assert_int_equal(rh_port(s), port);
    assert_true(rh_pid(s) > 0);
    assert_int_not_equal(rh_pid(s), pid);
    assert_true(pings(s));
    /* Nothing was persisted across the crash. */
    redisReply *r = rh_command(s, "GET before-kill");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);

    /* Restart of a running server kills it first. */
    pid = rh_pid(s);
    assert_int_equal(rh_restart(s), 0);
    assert_int_not_equal(rh_pid(s), pid);
    assert_int_equal(rh_port(s), port);
    assert_true(pings(s));
    rh_stop(s);
}

static void test_pause_resume(void **state)
{
    (void)state;
    rh_server *s = start(NULL);
    skip_if_external(s);
    assert_int_equal(rh_pause(s), 0);
    assert_int_equal(rh_pause(s), 0); /* idempotent */

    uint64_t t0 = rh_now_ms();
    struct timeval tv = {0, 200 * 1000};
    redisContext *c = redisConnectWithTimeout(rh_host(s), rh_port(s), tv);
    assert_non_null(c);
    redisReply *r = NULL;
    if (c->err == 0) { /* the kernel still accepts connections for a stopped process */
        assert_int_equal(redisSetTimeout(c, tv), REDIS_OK);
        r = redisCommand(c, "PING");
    }
    uint64_t elapsed = rh_now_ms() - t0;
    assert_null(r);
    assert_int_not_equal(c->err, 0);
    redisFree(c);
    assert_true(elapsed < 1000);

    assert_int_equal(rh_resume(s), 0);
    assert_int_equal(rh_resume(s), 0); /* not paused: a no-op */
    assert_true(pings(s));

    /* rh_stop of a paused server does not hang. */
    assert_int_equal(rh_pause(s), 0);
    t0 = rh_now_ms();
    rh_stop(s);
    assert_true(rh_now_ms() - t0 < 2000);
}

struct replica_wait {
    rh_server *replica;
    const char *key;
    const char *val;
};

static int replica_link_up(void *arg)
{
    struct replica_wait *w = arg;
    redisReply *r = rh_command(w->replica, "INFO replication");
    int up = r != NULL && r->type == REDIS_REPLY_STRING &&
             strstr(r->str, "master_link_status:up") != NULL;
    if (r != NULL)
        freeReplyObject(r);
    return up;
}

static int replica_has_key(void *arg)
{
    struct replica_wait *w = arg;
    return key_is(w->replica, w->key, w->val);
}

static void test_replica(void **state)
{
    (void)state;
    rh_server *primary = start(NULL);
    skip_if_external(primary);
    char port[16];
    snprintf(port, sizeof port, "%d", rh_port(primary));
    const char *const args[] = {"--replicaof", rh_host(primary), port, NULL};
    rh_server *replica = start(args);
    assert_int_not_equal(rh_port(replica), rh_port(primary));

    redisReply *r = rh_command(replica, "INFO replication");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_non_null(strstr(r->str, "role:slave"));
    freeReplyObject(r);

    struct replica_wait w = {replica, "replicated", "yes"};
    assert_true(rh_wait_for(replica_link_up, &w, 5000));
    set_key(primary, "replicated", "yes");
    assert_true(rh_wait_for(replica_has_key, &w, 5000));

    /* The extra arguments survive a restart: it is still a replica. */
    assert_int_equal(rh_restart(replica), 0);
    r = rh_command(replica, "INFO replication");
    assert_non_null(r);
    assert_non_null(strstr(r->str, "role:slave"));
    freeReplyObject(r);
    assert_true(rh_wait_for(replica_has_key, &w, 5000));

    rh_stop(replica);
    rh_stop(primary);
}

static void test_stop_removes_dir(void **state)
{
    (void)state;
    rh_server *s = start(NULL);
    skip_if_external(s);
    char *dir = strdup(rh_dir(s));
    assert_non_null(dir);
    char log[4096];
    snprintf(log, sizeof log, "%s/redis.log", dir);
    assert_true(path_exists(dir));
    assert_true(path_exists(log));
    assert_true(path_exists(rh_unix_path(s)));
    pid_t pid = rh_pid(s);

    rh_stop(s);
    int exists = path_exists(dir);
    int err = errno;
    free(dir);
    assert_false(exists);
    assert_int_equal(err, ENOENT);
    int alive = kill(pid, 0) == 0;
    err = errno;
    assert_false(alive); /* reaped, not even a zombie */
    assert_int_equal(err, ESRCH);

    rh_stop(NULL); /* a no-op */
}

static void test_two_servers_two_ports(void **state)
{
    (void)state;
    rh_server *a = start(NULL);
    skip_if_external(a);
    rh_server *b = start(NULL);
    assert_int_not_equal(rh_port(a), rh_port(b));
    assert_int_not_equal(rh_pid(a), rh_pid(b));
    assert_string_not_equal(rh_dir(a), rh_dir(b));
    assert_string_not_equal(rh_unix_path(a), rh_unix_path(b));
    assert_true(pings(a));
    assert_true(pings(b));
    /* Truly separate: a key in one is not in the other. */
    set_key(a, "only-in-a", "1");
    redisReply *r = rh_command(b, "EXISTS only-in-a");
    assert_non_null(r);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    rh_stop(b);
    rh_stop(a);
}

static void test_external_url(void **state)
{
    (void)state;
    const char *const none[] = {NULL}; /* an empty list: never external */
    rh_server *real = start(none);
    assert_false(rh_is_external(real));
    char *saved = getenv("STRATA_TEST_REDIS_URL");
    saved = saved ? strdup(saved) : NULL;

    assert_int_equal(setenv("STRATA_TEST_REDIS_URL", rh_url(real), 1), 0);
    rh_server *ext = start(NULL);
    assert_true(rh_is_external(ext));
    assert_int_equal(rh_port(ext), rh_port(real));
    assert_string_equal(rh_url(ext), rh_url(real));
    assert_null(rh_unix_path(ext));
    assert_null(rh_dir(ext));
    assert_int_equal(rh_pid(ext), -1);
    assert_true(pings(ext));
    assert_int_equal(rh_kill(ext), -1);
    assert_int_equal(rh_restart(ext), -1);
    assert_int_equal(rh_pause(ext), -1);
    assert_int_equal(rh_resume(ext), -1);
    rh_stop(ext);
    assert_true(pings(real)); /* rh_stop left the external server alone */

    /* With extra arguments a private server is started anyway. */
    const char *const args[] = {"--maxmemory", "64mb", NULL};
    rh_server *own = start(args);
    assert_false(rh_is_external(own));
    assert_int_not_equal(rh_port(own), rh_port(real));
    rh_stop(own);

    /* An external URL that does not answer → NULL. */
    rh_kill(real);
    assert_null(rh_start(NULL));
    assert_int_equal(setenv("STRATA_TEST_REDIS_URL", "http://nope", 1), 0);
    assert_null(rh_start(NULL));

    if (saved != NULL)
        setenv("STRATA_TEST_REDIS_URL", saved, 1);
    else
        unsetenv("STRATA_TEST_REDIS_URL");
    free(saved);
    rh_stop(real);
}

/* Runs in a forked child: starts a server, reports its pid and dir on fd, then leaves by
 * exit(0) (atexit cleanup) or by SIGKILL (only PR_SET_PDEATHSIG can help). */
static void child_start_and_leave(int fd, int crash)
{
    unsetenv("STRATA_TEST_REDIS_URL");
    rh_server *s = rh_start(NULL);
    char msg[4200];
    int n = s ? snprintf(msg, sizeof msg, "%d %s", (int)rh_pid(s), rh_dir(s))
              : snprintf(msg, sizeof msg, "0 -");
    if (write(fd, msg, (size_t)n) != n)
        _exit(3);
    close(fd);
    if (crash)
        kill(getpid(), SIGKILL);
    exit(0); /* s is deliberately not stopped */
}

/* Forks a child that starts a server and leaves; returns the server's pid, dir in dir. */
static pid_t run_child(int crash, char *dir, size_t dirlen, int *child_status)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(fds[0]);
        child_start_and_leave(fds[1], crash);
    }
    close(fds[1]);
    char msg[4200];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof msg - 1 && (n = read(fds[0], msg + got, sizeof msg - 1 - got)) > 0)
        got += (size_t)n;
    msg[got] = '\0';
    close(fds[0]);
    assert_int_equal(waitpid(child, child_status, 0), child);
    int pid = 0;
    char path[4200];
    assert_int_equal(sscanf(msg, "%d %4199s", &pid, path), 2);
    assert_true(pid > 0);
    snprintf(dir, dirlen, "%s", path);
    return (pid_t)pid;
}

static void test_no_server_left_after_exit(void **state)
{
    (void)state;
    char dir[4200];
    int status;
    pid_t pid = run_child(0, dir, sizeof dir, &status);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The child's atexit handler killed and reaped its server and removed the dir. */
    int alive = kill(pid, 0) == 0;
    int err = errno;
    assert_false(alive);
    assert_int_equal(err, ESRCH);
    assert_false(path_exists(dir));
}

static void test_no_server_left_after_crash(void **state)
{
    (void)state;
    /* The orphaned server is re-parented to us, so we can see how it died and reap it. */
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    char dir[4200];
    int status;
    pid_t pid = run_child(1, dir, sizeof dir, &status);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    uint64_t deadline = rh_now_ms() + 3000;
    pid_t r;
    while ((r = waitpid(pid, &status, WNOHANG)) == 0 && rh_now_ms() < deadline)
        usleep(2000);
    if (r != pid) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    prctl(PR_SET_CHILD_SUBREAPER, 0);
    assert_int_equal(r, pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    /* Nobody was left to remove the dir: the next rh_start() does, its owner being dead. (Not
     * asserted to exist first: a test running in parallel may already have swept it.) */
    rh_stop(start(NULL));
    assert_false(path_exists(dir));
}

static int always_false(void *arg)
{
    int *calls = arg;
    (*calls)++;
    return 0;
}

static int true_on_third(void *arg)
{
    int *calls = arg;
    return ++*calls >= 3;
}

static void test_wait_for(void **state)
{
    (void)state;
    int calls = 0;
    uint64_t t0 = rh_now_ms();
    assert_int_equal(rh_wait_for(always_false, &calls, 50), 0);
    uint64_t elapsed = rh_now_ms() - t0;
    assert_true(elapsed >= 50);
    assert_true(elapsed < 1000);
    assert_true(calls >= 2);

    calls = 0;
    assert_int_equal(rh_wait_for(true_on_third, &calls, 5000), 1);
    assert_int_equal(calls, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wait_for),
        cmocka_unit_test(test_start_ping),
        cmocka_unit_test(test_unix_socket),
        cmocka_unit_test(test_kill_restart_same_port),
        cmocka_unit_test(test_pause_resume),
        cmocka_unit_test(test_replica),
        cmocka_unit_test(test_stop_removes_dir),
        cmocka_unit_test(test_two_servers_two_ports),
        cmocka_unit_test(test_external_url),
        cmocka_unit_test(test_no_server_left_after_exit),
        cmocka_unit_test(test_no_server_left_after_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
