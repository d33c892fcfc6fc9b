/* harness.h: real redis-server processes for strata's integration tests.
 *
 * The idea is memcached's new_memcached() and hiredis' test.sh: every test talks to a real Redis
 * that the test started itself, never a mock. rh_start() picks a free 127.0.0.1 port, makes a
 * fresh temp dir, and runs redis-server in the foreground with persistence off, listening on that
 * port and on a unix socket in the dir; it returns once the server answers PING. A test then
 * kills, pauses, resumes and restarts it to drive strata through Redis failures. Each server has
 * its own port and dir, so test binaries can run in parallel (ctest -j). Nothing is left behind:
 * every server is registered and killed by an atexit() handler (which also runs after a failed
 * cmocka assertion), and the server dies with the test process if that crashes
 * (PR_SET_PDEATHSIG); the dir of a crashed test is removed by the next rh_start() anywhere.
 *
 * With STRATA_TEST_REDIS_URL=redis://host:port in the environment, rh_start(NULL) returns a
 * handle on that external server instead (memcached's T_MEMD_USE_DAEMON). The calls that need a
 * process of our own (rh_kill, rh_restart, rh_pause, rh_resume) then print "skipped: external
 * server" and fail, so a test can skip():
 *
 *     rh_server *s = rh_start(NULL);
 *     assert_non_null(s);
 *     if (rh_is_external(s)) { rh_stop(s); skip(); }
 *
 * Tests on an external server share its keyspace: use keys of their own, never FLUSHALL.
 *
 * Not thread-safe per handle; distinct handles may be used from distinct threads. Start servers
 * from a thread that outlives them (normally the main thread): PR_SET_PDEATHSIG fires when the
 * *thread* that forked the server exits.
 */
#ifndef STRATA_TESTS_HARNESS_H
#define STRATA_TESTS_HARNESS_H

#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>
#include <strata/strata.h>

typedef struct rh_server rh_server;

/* Starts redis-server on a free 127.0.0.1 port and on a unix socket, in a fresh dir
 * $TMPDIR/strata-it-XXXXXX (or /tmp/...), with
 *     --save '' --appendonly no --daemonize no --repl-diskless-sync-delay 0
 *     --enable-debug-command local --proc-title-template "{title} {listen-addr} {unixsocket} ..."
 * (so a replica syncs at once, DEBUG SLEEP can simulate a slow server, and `pgrep -f strata-it-`
 * finds our servers by their temp dir), stdout and stderr appended to redis.log in that dir
 * (which also holds "owner", this process' pid, and the socket redis.sock).
 * Waits up to 5 s until PING answers (from this very process: the answer's INFO process_id is
 * checked). The free port is found by binding port 0 and closing it; if another process takes
 * it first, another port is tried.
 *
 * extra: a NULL-terminated list of further arguments, appended after the defaults (so they win),
 * copied (the caller keeps ownership); or NULL. Example:
 *     const char *const args[] = {"--replicaof", "127.0.0.1", port_str, NULL};
 *     rh_server *replica = rh_start(args);
 * With "--requirepass", "PW" among them, the readiness check and rh_command AUTH first.
 *
 * If STRATA_TEST_REDIS_URL is set and extra is NULL, no process is started: the handle points
 * at that server (which must answer PING). If redis-server is not installed, scripts/deps.sh is
 * run once per process and the lookup retried.
 *
 * Returns a handle to release with rh_stop(), or NULL with a message (and the server log's tail)
 * on stderr. */
rh_server *rh_start(const char *const *extra);

/* rh_start, and the server also listens with TLS on a second free port: its certificate cert
 * and key, client certificates checked against ca and required when auth_clients. The plain
 * port stays (the readiness check and rh_command use it); strata is pointed at rh_tls_url():
 *     oh_tls t;  oh_make_tls(&t);                       // origin_harness.h
 *     rh_server *s = rh_start_tls(t.cert, t.key, t.ca, 0);
 *     cfg.redis.url = rh_tls_url(s); cfg.redis.tls_ca_cert = t.ca;
 * Never the external server. NULL with a message on failure. */
rh_server *rh_start_tls(const char *cert, const char *key, const char *ca, int auth_clients);
/* The TLS port and "rediss://127.0.0.1:PORT" (rh_start_tls only). */
int rh_tls_port(const rh_server *s);
const char *rh_tls_url(const rh_server *s);

/* rh_start on host (a loopback address: 127.0.0.2 is as local as 127.0.0.1) and that port
 * (0: a free one), so two servers can share a port on two addresses (a name moved from one to
 * the other keeps its port). One try: a port that is taken fails. */
rh_server *rh_start_at(const char *host, int port, const char *const *extra);

/* Starts a redis-sentinel (Debian's redis-sentinel) monitoring primary as master, with the
 * same options and readiness check as rh_start (it answers PING; INFO names our child), its
 * sentinel.conf in its own dir:
 *     sentinel monitor <master> <primary's host> <port> <quorum>
 *     sentinel down-after-milliseconds <master> <down_after_ms>
 *     sentinel failover-timeout <master> <failover_timeout_ms>
 * rh_command sends it SENTINEL commands; rh_kill, rh_stop work as for a server. Never the
 * external server. NULL with a message on failure (redis-sentinel not installed included). */
rh_server *rh_start_sentinel(const char *master, const rh_server *primary, int quorum,
                             int down_after_ms, int failover_timeout_ms);
/* The same with the sentinel's own password (its requirepass: clients AUTH with it before
 * anything; the readiness check and rh_command do). */
rh_server *rh_start_sentinel_auth(const char *master, const rh_server *primary, int quorum,
                                  int down_after_ms, int failover_timeout_ms, const char *password);

/* The TCP port; stays the same across rh_restart(). */
int rh_port(const rh_server *s);

/* The host to connect to: "127.0.0.1" (or the external server's host). Owned by s. */
const char *rh_host(const rh_server *s);

/* "redis://127.0.0.1:PORT", the form REDIS_URL takes. Owned by s. */
const char *rh_url(const rh_server *s);

/* The unix socket path (inside the temp dir); NULL for an external server. Owned by s. */
const char *rh_unix_path(const rh_server *s);

/* The server's temp dir (holding redis.log and the socket); NULL for an external server. Owned
 * by s; removed by rh_stop(). */
const char *rh_dir(const rh_server *s);

/* The redis-server process id; -1 if it is not running (after rh_kill) or external. */
pid_t rh_pid(const rh_server *s);

/* 1 if s points at the STRATA_TEST_REDIS_URL server rather than a process of our own. */
int rh_is_external(const rh_server *s);

/* SIGKILL and reap the server: no shutdown, no goodbye to clients, like a crash or a pulled
 * plug. Already dead → 0. Returns 0, or -1 for an external server. */
int rh_kill(rh_server *s);

/* Starts the server again on the same port, in the same dir, with the same extra arguments
 * (killing it first if it is still running), and waits up to 5 s for PING. Data is gone: nothing
 * is persisted. Returns 0, or -1 (message on stderr) if the port was taken meanwhile, the server
 * did not come up, or s is external. */
int rh_restart(rh_server *s);

/* SIGSTOP the server and wait until it is stopped: connections still open (the kernel accepts
 * them) but nothing is answered, like a hung or overloaded Redis. Returns 0, or -1 if it is not
 * running or external. */
int rh_pause(rh_server *s);

/* SIGCONT a paused server and wait until it runs. Not paused → 0. Returns 0, or -1 if it is not
 * running or external. */
int rh_resume(rh_server *s);

/* Stops the server (SIGCONT first if paused; SIGTERM, SIGKILL after 3 s), reaps it, removes its
 * temp dir and frees s. An external server is left alone; only the handle is freed. NULL is a
 * no-op. */
void rh_stop(rh_server *s);

/* Runs one command (hiredis redisCommand format) on a fresh connection over TCP with a 2 s
 * connect and command timeout (after AUTH when the server has --requirepass), then closes it.
 * Returns the reply, which the caller frees with
 * freeReplyObject(), or NULL if the server could not be reached or did not answer in time.
 * A SIGPIPE from a server that dies mid-command is swallowed. Example:
 *     redisReply *r = rh_command(s, "SET %s %b", key, val, len);
 *     assert_int_equal(r->type, REDIS_REPLY_STATUS);
 *     freeReplyObject(r); */
redisReply *rh_command(rh_server *s, const char *fmt, ...);

/* Polls cond(arg) every 2 ms until it returns non-zero or timeout_ms has passed (cond is tried
 * once more at the deadline). Returns 1 if it became true, 0 on timeout. */
int rh_wait_for(int (*cond)(void *), void *arg, int timeout_ms);

/* Monotonic milliseconds (CLOCK_MONOTONIC), for measuring deadlines in tests. */
uint64_t rh_now_ms(void);

/* A strata log callback that drops every line (for caches whose tests provoke errors). */
void rh_log_quiet(int level, const char *msg, void *arg);
/* 1 once cache (a strata_cache *) has its invalidation link up; for rh_wait_for. */
int rh_cache_coherent(void *cache);

#endif
