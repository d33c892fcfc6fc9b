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
 * STRATA_TEST_REDIS_TOPOLOGY=plain|tls|cluster (unset: plain) picks what rh_start() starts, so
 * the same L2 suite runs against each (ctest registers its tests again as integration/tls/<name>
 * and integration/cluster/<name>; docs/architecture.md, "Build, tests, CI"):
 * - plain: one redis-server on TCP, as described above.
 * - tls: one redis-server that also listens with TLS (a CA and certificate made once per test
 *   process by origin_harness' oh_make_tls); rh_command and the other harness calls keep using
 *   its plain port, strata is pointed at the TLS port and verifies the certificate against the CA.
 * - cluster: a Redis Cluster of 3 primaries (cluster_harness.c, rc_start). rh_command routes
 *   each command to the node serving its key (following MOVED and ASK), splits multi-key EXISTS
 *   and DEL per key, and runs whole-keyspace commands on every primary: DBSIZE is the sum, KEYS
 *   the union, FLUSHALL / FLUSHDB / SCRIPT / ACL / CONFIG / CLIENT run on every node (integer
 *   replies summed). Per-server facts (INFO) are asked of each node: rh_nodes / rh_node.
 *   rh_kill, rh_pause, rh_resume and rh_restart act on every node (a whole cluster down is what
 *   "Redis is down" means to the suite); rh_resume and rh_restart return once the cluster says
 *   cluster_state:ok again.
 * Tests never build strata's Redis settings themselves: rh_apply(s, &cfg.redis) fills them in for
 * the topology (a URL, or the cluster's seeds; TLS and its CA). A test whose meaning needs one
 * plain server (SELECT, a replica of its own) skips under the other topologies, saying why:
 *
 *     if (rh_topology() == RH_CLUSTER) { print_message("skipped: ...\n"); skip(); }
 *
 * Not thread-safe per handle; distinct handles may be used from distinct threads. Start servers
 * from a thread that outlives them (normally the main thread): PR_SET_PDEATHSIG fires when the
 * *thread* that forked the server exits.
 */
#ifndef STRATA_TESTS_HARNESS_H
#define STRATA_TESTS_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>
#include <strata/strata.h>

typedef struct rh_server rh_server;

/* STRATA_TEST_REDIS_TOPOLOGY (see above). */
typedef enum { RH_PLAIN = 0, RH_TLS = 1, RH_CLUSTER = 2 } rh_topology_kind;

/* The topology rh_start() starts, from STRATA_TEST_REDIS_TOPOLOGY: RH_PLAIN when unset or empty,
 * and with STRATA_TEST_REDIS_URL set (an external server is one plain server); -1 (with a message
 * on stderr) for anything but plain, tls or cluster. */
int rh_topology(void);
/* "plain", "tls" or "cluster": rh_topology()'s name, for messages. */
const char *rh_topology_name(void);

/* Under the plain topology (the default; the tls and cluster topologies are described at the top):
 * starts redis-server on a free 127.0.0.1 port and on a unix socket, in a fresh dir
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
 * Under tls, extra is given to the server too (with the TLS arguments after it); under cluster,
 * to every node ("--replicaof" there is refused: a cluster node cannot follow another server).
 *
 * If STRATA_TEST_REDIS_URL is set and extra is NULL, no process is started: the handle points
 * at that server (which must answer PING), whatever the topology. If redis-server is not
 * installed, scripts/deps.sh is run once per process and the lookup retried.
 *
 * Returns a handle to release with rh_stop(), or NULL with a message (and the server log's tail)
 * on stderr. */
rh_server *rh_start(const char *const *extra);

/* Points strata's Redis settings r at s, for s's topology: r->url (rh_url, or rh_tls_url with
 * r->tls_ca_cert the CA that signed the server's certificate), or, for a cluster, r->cluster (its
 * seed nodes) and r->url NULL. The strings are owned by s (or the harness) and outlive it only
 * as long as s does. */
void rh_apply(const rh_server *s, strata_redis_config *r);

/* rh_apply for a server of the current topology that the test places itself at 127.0.0.1:port
 * (e.g. a port where nothing answers): a redis:// or rediss:// URL (with the CA), or that one
 * seed node. The strings are written to buf (cap bytes, 64 is enough) or owned by the harness. */
void rh_apply_port(int port, strata_redis_config *r, char *buf, size_t cap);

/* The servers behind s: 1 and s itself for one server; for a cluster, its primaries (as started:
 * a killed one is still counted). For checks of per-server facts, summed over the nodes (INFO). */
int rh_nodes(rh_server *s);
rh_server *rh_node(rh_server *s, int i);

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

/* The TCP port; stays the same across rh_restart(). For a cluster: the first node's (rh_host,
 * rh_url, rh_unix_path and rh_dir too), for the harness' own use; strata is given rh_apply. */
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

/* The redis-server process id; -1 if it is not running (after rh_kill) or external. For a
 * cluster: the first node's while every node runs, else -1. */
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

/* rh_command with the arguments given as argv (argc strings of the lengths len), on one server
 * (never a cluster handle); with asking, ASKING is sent first on the same connection. For
 * cluster_harness.c's routing. */
redisReply *rh_command_argv(rh_server *s, int asking, int argc, const char **argv,
                            const size_t *len);

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
