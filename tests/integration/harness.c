/* harness.c: starts, controls and cleans up real redis-server processes for integration tests.
 *
 * A server is a child process: fork, PR_SET_PDEATHSIG(SIGKILL), stdout/stderr to the log in its
 * temp dir, exec redis-server in the foreground. Readiness is "PING answers PONG on the TCP port
 * and INFO says process_id is our child", so a server that lost the port to another process is
 * never mistaken for ours: ours exits with "Address already in use" and is started again on a
 * new port. Every handle sits in a registry that an atexit() handler empties (kill, reap, remove
 * the dir, free), but only in the process that started the server, so a forked test child that
 * exits does not kill its parent's servers.
 *
 * The topologies (STRATA_TEST_REDIS_TOPOLOGY): a tls server is such a server with TLS arguments
 * added; a cluster handle holds an rc_cluster (cluster_harness.c, whose nodes are such servers)
 * and hands its commands and faults to the nodes.
 */
#include "harness.h"
#include "cluster_harness.h"
#include "it_tmp.h"
#include "origin_harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RH_HOST        "127.0.0.1"
#define RH_START_MS    5000 /* how long rh_start / rh_restart wait for PING */
#define RH_STOP_MS     3000 /* SIGTERM grace before SIGKILL */
#define RH_PORT_TRIES  20   /* fresh ports tried when another process steals ours */
#define RH_CMD_TIMEOUT 2    /* rh_command timeout, seconds */
#define RH_MAX_EXTRA   64

/* Relative to this file: tests/integration/../../scripts/deps.sh. */
#define RH_DEPS_REL "/../../scripts/deps.sh"

struct rh_server {
    int external;
    char host[256];
    int port;
    char url[300];
    char *dir;    /* temp dir, NULL if external */
    char *sock;   /* dir/redis.sock */
    char *log;    /* dir/redis.log */
    char *conf;   /* rh_start_sentinel: dir/sentinel.conf, else NULL */
    char **extra; /* deep copy, NULL-terminated, or NULL */
    pid_t pid;    /* -1 while not running */
    pid_t owner;  /* getpid() of the process that created the handle */
    int paused;
    int tls_port;        /* rh_start_tls, topology tls: the TLS port, else 0 */
    char tls_url[300];   /* "rediss://127.0.0.1:TLS_PORT" */
    const char *tls_ca;  /* topology tls: the CA that signed its certificate, else NULL */
    rc_cluster *cluster; /* topology cluster: its nodes (the handle is not registered), or NULL */
    rh_server *next;     /* registry link */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static rh_server *registry;
static pthread_once_t atexit_once = PTHREAD_ONCE_INIT;

static pthread_mutex_t bin_lock = PTHREAD_MUTEX_INITIALIZER;
static char redis_bin[PATH_MAX];
static int deps_tried;

uint64_t rh_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int rh_wait_for(int (*cond)(void *), void *arg, int timeout_ms)
{
    uint64_t deadline = rh_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        if (cond(arg))
            return 1;
        if (rh_now_ms() >= deadline)
            return cond(arg) ? 1 : 0;
        sleep_ms(2);
    }
}

/* ---- registry and atexit cleanup --------------------------------------------------------- */

static pid_t reap(pid_t pid)
{
    pid_t r;
    do {
        r = waitpid(pid, NULL, 0);
    } while (r < 0 && errno == EINTR);
    return r;
}

static void free_server(rh_server *s)
{
    if (s->extra != NULL) {
        for (char **a = s->extra; *a != NULL; a++)
            free(*a);
        free(s->extra);
    }
    free(s->dir);
    free(s->sock);
    free(s->log);
    free(s->conf);
    free(s);
}

static void kill_all_at_exit(void)
{
    pthread_mutex_lock(&registry_lock);
    rh_server **pp = &registry;
    int killed = 0;
    while (*pp != NULL) {
        rh_server *s = *pp;
        if (s->owner != getpid()) { /* a forked child exiting: not ours to clean */
            pp = &s->next;
            continue;
        }
        *pp = s->next;
        if (!s->external && s->pid > 0) {
            kill(s->pid, SIGKILL);
            reap(s->pid);
            killed++;
        }
        it_remove_tree(s->dir);
        free_server(s);
    }
    pthread_mutex_unlock(&registry_lock);
    if (killed > 0)
        fprintf(stderr, "harness: killed %d redis-server(s) still running at exit of process %d\n",
                killed, (int)getpid());
}

static void register_atexit(void)
{
    atexit(kill_all_at_exit);
}

static void registry_add(rh_server *s)
{
    pthread_once(&atexit_once, register_atexit);
    pthread_mutex_lock(&registry_lock);
    s->next = registry;
    registry = s;
    pthread_mutex_unlock(&registry_lock);
}

static void registry_remove(rh_server *s)
{
    pthread_mutex_lock(&registry_lock);
    for (rh_server **pp = &registry; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

/* ---- finding redis-server ---------------------------------------------------------------- */

static int executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Looks redis-server up in $PATH, then in the usual Debian places. */
static int find_in_path(char *out, size_t n)
{
    const char *path = getenv("PATH");
    if (path != NULL) {
        const char *p = path;
        while (*p != '\0') {
            const char *end = strchr(p, ':');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            if (len > 0) {
                snprintf(out, n, "%.*s/redis-server", (int)len, p);
                if (executable(out))
                    return 0;
            }
            p += len;
            if (*p == ':')
                p++;
        }
    }
    static const char *const fixed[] = {"/usr/bin/redis-server", "/usr/local/bin/redis-server",
                                        "/usr/sbin/redis-server"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        if (executable(fixed[i])) {
            snprintf(out, n, "%s", fixed[i]);
            return 0;
        }
    }
    return -1;
}

/* Finds redis-server, running scripts/deps.sh once per process if it is missing. */
static const char *redis_server_path(void)
{
    const char *found = NULL;
    pthread_mutex_lock(&bin_lock);
    if (redis_bin[0] != '\0' || find_in_path(redis_bin, sizeof redis_bin) == 0) {
        found = redis_bin;
    } else if (!deps_tried) {
        deps_tried = 1;
        const char *file = __FILE__;
        const char *slash = strrchr(file, '/');
        char deps[PATH_MAX];
        if (slash != NULL)
            snprintf(deps, sizeof deps, "%.*s" RH_DEPS_REL, (int)(slash - file), file);
        else
            snprintf(deps, sizeof deps, "." RH_DEPS_REL);
        fprintf(stderr, "harness: redis-server not found, running %s\n", deps);
        char *cmd = it_xasprintf("bash '%s' >&2", deps);
        int rc = system(cmd);
        free(cmd);
        if (rc != 0)
            fprintf(stderr, "harness: %s failed (status %d)\n", deps, rc);
        if (find_in_path(redis_bin, sizeof redis_bin) == 0)
            found = redis_bin;
        else
            redis_bin[0] = '\0';
    }
    pthread_mutex_unlock(&bin_lock);
    if (found == NULL)
        fprintf(stderr, "harness: redis-server is not installed (apt-get install redis-server)\n");
    return found;
}

/* ---- ports, dirs, logs ------------------------------------------------------------------- */

/* A port the kernel just handed out for 127.0.0.1; free now, probably still free in a moment. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    socklen_t len = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* Reads the log from offset from (at most the last cap bytes) into a NUL-terminated buffer. */
static char *read_log(const char *path, off_t from, size_t cap)
{
    char *buf = calloc(1, cap + 1);
    if (buf == NULL)
        return NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return buf;
    off_t size = lseek(fd, 0, SEEK_END);
    if (size - from > (off_t)cap)
        from = size - (off_t)cap;
    size_t got = 0;
    if (from >= 0 && lseek(fd, from, SEEK_SET) == from) {
        ssize_t n;
        while (got < cap && (n = read(fd, buf + got, cap - got)) > 0)
            got += (size_t)n;
    }
    buf[got] = '\0';
    close(fd);
    return buf;
}

static void print_log_tail(const rh_server *s, off_t from)
{
    char *tail = read_log(s->log, from, 2048);
    if (tail != NULL && tail[0] != '\0')
        fprintf(stderr, "harness: --- %s ---\n%s%s--- end of log ---\n", s->log, tail,
                tail[strlen(tail) - 1] == '\n' ? "" : "\n");
    free(tail);
}

/* ---- the process ------------------------------------------------------------------------- */

/* redis-sentinel beside redis-server (Debian's redis-sentinel package), or NULL. */
static const char *redis_sentinel_path(void)
{
    static char path[PATH_MAX];
    const char *server = redis_server_path();
    const char *slash = server ? strrchr(server, '/') : NULL;
    if (slash == NULL)
        return NULL;
    snprintf(path, sizeof path, "%.*s/redis-sentinel", (int)(slash - server), server);
    if (executable(path))
        return path;
    fprintf(stderr,
            "harness: %s is not installed (apt-get install redis-sentinel; "
            "scripts/deps.sh does)\n",
            path);
    return NULL;
}

/* Forks and execs redis-server for s on s->port. Everything the child needs is prepared before
 * fork(), because after it only async-signal-safe calls are allowed (the test may have
 * threads). Returns 0 with s->pid set, or -1. */
static int spawn(rh_server *s)
{
    const char *bin = s->conf ? redis_sentinel_path() : redis_server_path();
    if (bin == NULL)
        return -1;

    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    const char *argv[32 + RH_MAX_EXTRA];
    size_t n = 0;
    argv[n++] = bin;
    if (s->conf != NULL) /* a sentinel: its config file first, the same options after it */
        argv[n++] = s->conf;
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--bind";
    argv[n++] = s->host;
    argv[n++] = "--unixsocket";
    argv[n++] = s->sock;
    argv[n++] = "--unixsocketperm";
    argv[n++] = "700";
    argv[n++] = "--dir";
    argv[n++] = s->dir;
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--daemonize";
    argv[n++] = "no";
    argv[n++] = "--repl-diskless-sync-delay";
    argv[n++] = "0";
    argv[n++] = "--enable-debug-command";
    argv[n++] = "local";
    /* Redis rewrites its process title; keep the socket path (so the temp dir) in it, so that
     * `pgrep -f strata-it-` finds servers that outlived their test. */
    argv[n++] = "--proc-title-template";
    argv[n++] = "{title} {listen-addr} {unixsocket} {server-mode}";
    for (char **a = s->extra; a != NULL && *a != NULL; a++)
        argv[n++] = *a;
    argv[n] = NULL;

    int logfd = open(s->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (logfd < 0) {
        fprintf(stderr, "harness: open %s: %s\n", s->log, strerror(errno));
        return -1;
    }
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nullfd < 0) {
        fprintf(stderr, "harness: open /dev/null: %s\n", strerror(errno));
        close(logfd);
        return -1;
    }
    char banner[128];
    int blen =
        snprintf(banner, sizeof banner, "=== harness: starting redis-server on port %s\n", port);
    if (write(logfd, banner, (size_t)blen) < 0) {
        /* only a marker for whoever reads the log */
    }

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        close(logfd);
        close(nullfd);
        return -1;
    }
    if (pid == 0) {
        /* Die with the test, even if it crashes; the test may have died before prctl. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        /* Undo what the test may have set and exec would keep: a blocked mask, ignored
         * SIGTERM/SIGINT (rh_stop relies on SIGTERM), its descriptors (a listening socket
         * inherited by redis would outlive the test's close()). */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
            _exit(127);
        if (close_range(3, ~0u, 0) != 0) {
            for (int fd = 3; fd < 1024; fd++)
                close(fd);
        }
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(logfd);
    close(nullfd);
    s->pid = pid;
    s->paused = 0;
    return 0;
}

/* The password of a server started with "--requirepass", or NULL. */
static const char *requirepass(const rh_server *s)
{
    for (size_t i = 0; s->extra != NULL && s->extra[i] != NULL; i++)
        if (strcmp(s->extra[i], "--requirepass") == 0 && s->extra[i + 1] != NULL)
            return s->extra[i + 1];
    return NULL;
}

/* AUTH with the server's --requirepass, if it has one: 0, or -1 if refused or not answered. */
static int auth(const rh_server *s, redisContext *c)
{
    const char *pw = requirepass(s);
    if (pw == NULL)
        return 0;
    redisReply *r = redisCommand(c, "AUTH %s", pw);
    int ok = r != NULL && r->type == REDIS_REPLY_STATUS;
    if (r != NULL)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

/* 1 if host:port answers PING and (for our own process) INFO names s->pid; 0 otherwise. */
static int answers_ping(const rh_server *s)
{
    struct timeval tv = {0, 250 * 1000};
    redisContext *c = redisConnectWithTimeout(s->host, s->port, tv);
    if (c == NULL)
        return 0;
    int ok = 0;
    if (c->err == 0 && redisSetTimeout(c, tv) == REDIS_OK && auth(s, c) == 0) {
        redisReply *r = redisCommand(c, "PING");
        ok = r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        if (r != NULL)
            freeReplyObject(r);
        if (ok && !s->external) {
            r = redisCommand(c, "INFO server");
            const char *p = NULL;
            if (r != NULL && r->type == REDIS_REPLY_STRING)
                p = strstr(r->str, "process_id:");
            ok = p != NULL && atol(p + strlen("process_id:")) == (long)s->pid;
            if (r != NULL)
                freeReplyObject(r);
        }
    }
    redisFree(c);
    return ok;
}

enum { READY = 0, PORT_TAKEN = 1, FAILED = -1 };

/* Waits until the freshly spawned server answers, it exits, or deadline passes. On anything but
 * READY the child is gone (reaped) and s->pid is -1. log_from: the log size before the spawn, so
 * a message from an earlier run is not read as this one's. */
static int wait_ready(rh_server *s, uint64_t deadline, off_t log_from, int quiet_port_taken)
{
    for (;;) {
        int status;
        pid_t r = waitpid(s->pid, &status, WNOHANG);
        if (r == s->pid) {
            s->pid = -1;
            char *log = read_log(s->log, log_from, 8192);
            int taken = log != NULL && strstr(log, "Address already in use") != NULL;
            free(log);
            if (taken && quiet_port_taken)
                return PORT_TAKEN;
            if (taken)
                fprintf(stderr, "harness: port %d is taken by another process\n", s->port);
            else if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
                fprintf(stderr, "harness: could not exec redis-server\n");
            else
                fprintf(stderr, "harness: redis-server on port %d exited during startup\n",
                        s->port);
            print_log_tail(s, log_from);
            return taken ? PORT_TAKEN : FAILED;
        }
        if (answers_ping(s))
            return READY;
        if (rh_now_ms() >= deadline) {
            fprintf(stderr, "harness: redis-server on port %d did not answer PING in %d ms\n",
                    s->port, RH_START_MS);
            kill(s->pid, SIGKILL);
            reap(s->pid);
            s->pid = -1;
            print_log_tail(s, log_from);
            return FAILED;
        }
        sleep_ms(5);
    }
}

/* ---- public API -------------------------------------------------------------------------- */

/* Parses redis://host[:port][/db] into s; ignores a db suffix. Returns 0 or -1. */
static int parse_url(rh_server *s, const char *url)
{
    static const char scheme[] = "redis://";
    if (strncmp(url, scheme, sizeof scheme - 1) != 0)
        return -1;
    const char *h = url + sizeof scheme - 1;
    const char *at = strchr(h, '@');
    if (at != NULL)
        return -1; /* credentials are not supported */
    size_t hlen = strcspn(h, ":/");
    if (hlen == 0 || hlen >= sizeof s->host)
        return -1;
    memcpy(s->host, h, hlen);
    s->host[hlen] = '\0';
    s->port = 6379;
    if (h[hlen] == ':') {
        char *end;
        long p = strtol(h + hlen + 1, &end, 10);
        if (end == h + hlen + 1 || (*end != '\0' && *end != '/') || p <= 0 || p > 65535)
            return -1;
        s->port = (int)p;
    }
    return 0;
}

static rh_server *start_external(const char *url)
{
    rh_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->external = 1;
    s->pid = -1;
    s->owner = getpid();
    if (parse_url(s, url) != 0) {
        fprintf(stderr, "harness: STRATA_TEST_REDIS_URL=%s is not redis://host:port\n", url);
        free(s);
        return NULL;
    }
    snprintf(s->url, sizeof s->url, "redis://%s:%d", s->host, s->port);
    if (!answers_ping(s)) {
        fprintf(stderr, "harness: external server %s (STRATA_TEST_REDIS_URL) does not answer\n",
                s->url);
        free(s);
        return NULL;
    }
    registry_add(s);
    return s;
}

static rh_server *start_with(const char *const *extra, const char *conf, const char *host,
                             int port);

int rh_topology(void)
{
    const char *t = getenv("STRATA_TEST_REDIS_TOPOLOGY"), *url = getenv("STRATA_TEST_REDIS_URL");
    if (t == NULL || t[0] == '\0' || strcmp(t, "plain") == 0 || (url != NULL && url[0] != '\0'))
        return RH_PLAIN; /* an external server is one plain server, whatever the switch says */
    if (strcmp(t, "tls") == 0)
        return RH_TLS;
    if (strcmp(t, "cluster") == 0)
        return RH_CLUSTER;
    fprintf(stderr, "harness: STRATA_TEST_REDIS_TOPOLOGY=%s is not plain, tls or cluster\n", t);
    return -1;
}

const char *rh_topology_name(void)
{
    static const char *const names[] = {"plain", "tls", "cluster"};
    int t = rh_topology();
    return t < 0 ? "invalid" : names[t];
}

/* The topology tls' certificates: made once per process, removed at its exit. */
static pthread_mutex_t tls_lock = PTHREAD_MUTEX_INITIALIZER;
static oh_tls topo_tls;
static int topo_tls_state; /* 0 not tried, 1 made, -1 failed */

static void free_topo_tls(void)
{
    oh_free_tls(&topo_tls);
}

static const oh_tls *topology_tls(void)
{
    pthread_mutex_lock(&tls_lock);
    if (topo_tls_state == 0) {
        topo_tls_state = oh_make_tls(&topo_tls) == 0 ? 1 : -1;
        atexit(free_topo_tls);
    }
    int ok = topo_tls_state == 1;
    pthread_mutex_unlock(&tls_lock);
    return ok ? &topo_tls : NULL;
}

static rh_server *start_tls_with(const char *const *extra, const char *cert, const char *key,
                                 const char *ca, int auth_clients);

/* The suite's cluster: 3 primaries, no replicas. Replicas would add 3 processes per cluster and
 * nothing the suite asserts (its faults are the whole cluster's); worse, a whole cluster paused
 * or killed with replicas in it may fail over when it comes back, moving primaries under a test
 * that is not about failovers (test_redis_cluster is, with 3+3). For the same reason the node
 * timeout is long: a test pausing every node for seconds must not make the nodes mark each
 * other failed when they resume. */
#define RH_SUITE_PRIMARIES     3
#define RH_SUITE_NODE_TIMEOUT  "60000"
#define RH_SUITE_CLUSTER_OK_MS 30000

static rh_server *start_cluster(const char *const *extra)
{
    const char *args[RH_MAX_EXTRA + 3];
    size_t n = 0;
    for (const char *const *a = extra; a != NULL && *a != NULL && n < RH_MAX_EXTRA; a++) {
        if (strcmp(*a, "--replicaof") == 0 || strcmp(*a, "--slaveof") == 0) {
            fprintf(stderr, "harness: %s has no meaning for a cluster's nodes\n", *a);
            return NULL;
        }
        args[n++] = *a;
    }
    args[n++] = "--cluster-node-timeout";
    args[n++] = RH_SUITE_NODE_TIMEOUT;
    args[n] = NULL;
    rc_cluster *c = rc_start(RH_SUITE_PRIMARIES, 0, args);
    if (c == NULL)
        return NULL;
    rh_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        rc_stop(c);
        return NULL;
    }
    s->cluster = c;
    s->owner = getpid();
    rh_server *first = rc_node(c, 0);
    snprintf(s->host, sizeof s->host, "%s", first->host);
    s->port = first->port;
    snprintf(s->url, sizeof s->url, "%s", first->url);
    return s;
}

rh_server *rh_start(const char *const *extra)
{
    const char *url = getenv("STRATA_TEST_REDIS_URL");
    if (extra == NULL && url != NULL && url[0] != '\0')
        return start_external(url);
    switch (rh_topology()) {
    case RH_PLAIN:
        return start_with(extra, NULL, RH_HOST, 0);
    case RH_TLS: {
        const oh_tls *t = topology_tls();
        if (t == NULL)
            return NULL;
        rh_server *s = start_tls_with(extra, t->cert, t->key, t->ca, 0);
        if (s != NULL)
            s->tls_ca = t->ca;
        return s;
    }
    case RH_CLUSTER:
        return start_cluster(extra);
    default:
        return NULL;
    }
}

void rh_apply(const rh_server *s, strata_redis_config *r)
{
    if (s->cluster != NULL) {
        r->url = NULL;
        r->cluster = rc_seeds(s->cluster);
    } else if (s->tls_ca != NULL) {
        r->url = s->tls_url;
        r->tls_ca_cert = s->tls_ca;
    } else {
        r->url = s->url;
    }
}

void rh_apply_port(int port, strata_redis_config *r, char *buf, size_t cap)
{
    int t = rh_topology();
    if (t == RH_CLUSTER) {
        snprintf(buf, cap, "%s:%d", RH_HOST, port);
        r->url = NULL;
        r->cluster = buf;
        return;
    }
    const oh_tls *tls = t == RH_TLS ? topology_tls() : NULL;
    snprintf(buf, cap, "%s://%s:%d", tls ? "rediss" : "redis", RH_HOST, port);
    r->url = buf;
    if (tls != NULL)
        r->tls_ca_cert = tls->ca;
}

int rh_nodes(rh_server *s)
{
    return s->cluster != NULL ? rc_size(s->cluster) : 1;
}

rh_server *rh_node(rh_server *s, int i)
{
    return s->cluster != NULL ? rc_node(s->cluster, i) : s;
}

rh_server *rh_start_at(const char *host, int port, const char *const *extra)
{
    return start_with(extra, NULL, host, port);
}

rh_server *rh_start_sentinel(const char *master, const rh_server *primary, int quorum,
                             int down_after_ms, int failover_timeout_ms)
{
    char *conf = it_xasprintf("sentinel monitor %s %s %d %d\n"
                              "sentinel down-after-milliseconds %s %d\n"
                              "sentinel failover-timeout %s %d\n"
                              "sentinel parallel-syncs %s 1\n",
                              master, primary->host, primary->port, quorum, master, down_after_ms,
                              master, failover_timeout_ms, master);
    rh_server *s = start_with(NULL, conf, RH_HOST, 0);
    free(conf);
    return s;
}

rh_server *rh_start_sentinel_auth(const char *master, const rh_server *primary, int quorum,
                                  int down_after_ms, int failover_timeout_ms, const char *password)
{
    char *conf = it_xasprintf("sentinel monitor %s %s %d %d\n"
                              "sentinel down-after-milliseconds %s %d\n"
                              "sentinel failover-timeout %s %d\n",
                              master, primary->host, primary->port, quorum, master, down_after_ms,
                              master, failover_timeout_ms);
    const char *const extra[] = {"--requirepass", password, NULL};
    rh_server *s = start_with(extra, conf, RH_HOST, 0);
    free(conf);
    return s;
}

/* Starts a server (conf NULL) or a sentinel with the config conf, written to dir/sentinel.conf
 * (the sentinel rewrites it as it learns). */
static rh_server *start_with(const char *const *extra, const char *conf, const char *host, int port)
{
    size_t nextra = 0;
    while (extra != NULL && extra[nextra] != NULL)
        nextra++;
    if (nextra > RH_MAX_EXTRA) {
        fprintf(stderr, "harness: more than %d extra arguments\n", RH_MAX_EXTRA);
        return NULL;
    }

    rh_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->pid = -1;
    s->owner = getpid();
    snprintf(s->host, sizeof s->host, "%s", host);
    if (extra != NULL) {
        s->extra = calloc(nextra + 1, sizeof *s->extra);
        if (s->extra == NULL) {
            free(s);
            return NULL;
        }
        for (size_t i = 0; i < nextra; i++)
            s->extra[i] = it_xstrdup(extra[i]);
    }
    s->dir = it_make_temp_dir("strata-it");
    if (s->dir == NULL) {
        free_server(s);
        return NULL;
    }
    s->sock = it_xasprintf("%s/redis.sock", s->dir);
    s->log = it_xasprintf("%s/redis.log", s->dir);
    if (conf != NULL) {
        s->conf = it_xasprintf("%s/sentinel.conf", s->dir);
        FILE *f = fopen(s->conf, "w");
        int bad = f == NULL || fputs(conf, f) < 0;
        if ((f != NULL && fclose(f) != 0) || bad) {
            fprintf(stderr, "harness: cannot write %s: %s\n", s->conf, strerror(errno));
            rh_stop(s);
            return NULL;
        }
    }
    /* Registered before the first fork, so the atexit handler covers it from the start. */
    registry_add(s);

    int rc = FAILED;
    for (int attempt = 0; attempt < (port ? 1 : RH_PORT_TRIES); attempt++) {
        s->port = port ? port : free_port();
        if (s->port <= 0) {
            fprintf(stderr, "harness: no free port: %s\n", strerror(errno));
            break;
        }
        off_t log_from = file_size(s->log);
        if (spawn(s) != 0)
            break;
        rc = wait_ready(s, rh_now_ms() + RH_START_MS, log_from,
                        !port && attempt + 1 < RH_PORT_TRIES);
        if (rc != PORT_TAKEN)
            break;
    }
    if (rc != READY) {
        fprintf(stderr, "harness: could not start redis-server\n");
        rh_stop(s);
        return NULL;
    }
    snprintf(s->url, sizeof s->url, "redis://%s:%d", s->host, s->port);
    return s;
}

rh_server *rh_start_tls(const char *cert, const char *key, const char *ca, int auth_clients)
{
    return start_tls_with(NULL, cert, key, ca, auth_clients);
}

/* start_with, extra first and the TLS arguments after it. */
static rh_server *start_tls_with(const char *const *extra, const char *cert, const char *key,
                                 const char *ca, int auth_clients)
{
    int port = free_port();
    if (port <= 0) {
        fprintf(stderr, "harness: no free port for TLS: %s\n", strerror(errno));
        return NULL;
    }
    char tls_port[16];
    snprintf(tls_port, sizeof tls_port, "%d", port);
    const char *const tls_args[] = {"--tls-port",
                                    tls_port,
                                    "--tls-cert-file",
                                    cert,
                                    "--tls-key-file",
                                    key,
                                    "--tls-ca-cert-file",
                                    ca,
                                    "--tls-auth-clients",
                                    auth_clients ? "yes" : "no",
                                    NULL};
    const char *args[RH_MAX_EXTRA + 1];
    size_t n = 0;
    for (const char *const *a = extra; a != NULL && *a != NULL && n < RH_MAX_EXTRA - 10; a++)
        args[n++] = *a;
    for (const char *const *a = tls_args; *a != NULL; a++)
        args[n++] = *a;
    args[n] = NULL;
    rh_server *s = start_with(args, NULL, RH_HOST, 0);
    if (s != NULL) {
        s->tls_port = port;
        snprintf(s->tls_url, sizeof s->tls_url, "rediss://%s:%d", s->host, port);
    }
    return s;
}

int rh_tls_port(const rh_server *s)
{
    return s->tls_port;
}

const char *rh_tls_url(const rh_server *s)
{
    return s->tls_url;
}

int rh_port(const rh_server *s)
{
    return s->port;
}

const char *rh_host(const rh_server *s)
{
    return s->host;
}

const char *rh_url(const rh_server *s)
{
    return s->url;
}

const char *rh_unix_path(const rh_server *s)
{
    return s->cluster != NULL ? rc_node(s->cluster, 0)->sock : s->sock;
}

const char *rh_dir(const rh_server *s)
{
    return s->cluster != NULL ? rc_node(s->cluster, 0)->dir : s->dir;
}

pid_t rh_pid(const rh_server *s)
{
    if (s->cluster == NULL)
        return s->pid;
    for (int i = 0; i < rc_size(s->cluster); i++)
        if (rc_node(s->cluster, i)->pid < 0)
            return -1;
    return rc_node(s->cluster, 0)->pid;
}

int rh_is_external(const rh_server *s)
{
    return s->external;
}

static int refuse_external(const rh_server *s)
{
    if (!s->external)
        return 0;
    fprintf(stderr, "skipped: external server\n");
    return 1;
}

/* The cluster's nodes back to cluster_state:ok (after rh_resume, rh_restart): 0 or -1. */
static int cluster_ok(rh_server *s)
{
    if (rh_wait_for(rc_ok, s->cluster, RH_SUITE_CLUSTER_OK_MS))
        return 0;
    fprintf(stderr, "harness: the cluster did not say cluster_state:ok within %d ms\n",
            RH_SUITE_CLUSTER_OK_MS);
    return -1;
}

/* op on every node of s' cluster: 0 if it succeeded on each. */
static int each_node(rh_server *s, int (*op)(rh_server *))
{
    int rc = 0;
    for (int i = 0; i < rc_size(s->cluster); i++)
        rc |= op(rc_node(s->cluster, i));
    return rc;
}

int rh_kill(rh_server *s)
{
    if (s->cluster != NULL)
        return each_node(s, rh_kill);
    if (refuse_external(s))
        return -1;
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        reap(s->pid);
        s->pid = -1;
    }
    s->paused = 0;
    return 0;
}

int rh_restart(rh_server *s)
{
    if (s->cluster != NULL) {
        /* Every node killed first, then started again: their nodes.conf (kept in their dirs)
         * joins them into the same cluster, each primary with its slots, and empty. */
        each_node(s, rh_kill);
        return each_node(s, rh_restart) != 0 ? -1 : cluster_ok(s);
    }
    if (refuse_external(s))
        return -1;
    rh_kill(s);
    /* The port may be held for a moment by a client socket of another process (it was free
     * while our server was down): keep trying while a try still has time to succeed. */
    uint64_t deadline = rh_now_ms() + RH_START_MS;
    int rc;
    off_t log_from;
    for (;;) {
        log_from = file_size(s->log);
        if (spawn(s) != 0)
            return -1;
        rc = wait_ready(s, deadline, log_from, 1);
        if (rc != PORT_TAKEN || rh_now_ms() + 1000 > deadline)
            break;
        sleep_ms(50);
    }
    if (rc == READY)
        return 0;
    if (rc == PORT_TAKEN) {
        fprintf(stderr, "harness: port %d is taken by another process\n", s->port);
        print_log_tail(s, log_from);
    }
    fprintf(stderr, "harness: could not restart redis-server on port %d\n", s->port);
    return -1;
}

int rh_pause(rh_server *s)
{
    if (s->cluster != NULL)
        return each_node(s, rh_pause);
    if (refuse_external(s) || s->pid <= 0)
        return -1;
    if (s->paused)
        return 0;
    if (kill(s->pid, SIGSTOP) != 0)
        return -1;
    /* kill() only queues the signal: wait until the child has actually stopped. */
    int status;
    pid_t r;
    do {
        r = waitpid(s->pid, &status, WUNTRACED);
    } while (r < 0 && errno == EINTR);
    if (r != s->pid || !WIFSTOPPED(status)) {
        if (r == s->pid)
            s->pid = -1; /* it died instead */
        return -1;
    }
    s->paused = 1;
    return 0;
}

int rh_resume(rh_server *s)
{
    if (s->cluster != NULL)
        return each_node(s, rh_resume) != 0 ? -1 : cluster_ok(s);
    if (refuse_external(s) || s->pid <= 0)
        return -1;
    if (!s->paused)
        return 0;
    if (kill(s->pid, SIGCONT) != 0)
        return -1;
    int status;
    pid_t r;
    do {
        r = waitpid(s->pid, &status, WCONTINUED);
    } while (r < 0 && errno == EINTR);
    if (r != s->pid || !WIFCONTINUED(status)) {
        if (r == s->pid)
            s->pid = -1;
        return -1;
    }
    s->paused = 0;
    return 0;
}

void rh_stop(rh_server *s)
{
    if (s == NULL)
        return;
    if (s->cluster != NULL) {
        rc_stop(s->cluster);
        free(s);
        return;
    }
    registry_remove(s);
    if (!s->external && s->pid > 0) {
        if (s->paused)
            kill(s->pid, SIGCONT);
        kill(s->pid, SIGTERM);
        uint64_t deadline = rh_now_ms() + RH_STOP_MS;
        for (;;) {
            pid_t r = waitpid(s->pid, NULL, WNOHANG);
            if (r == s->pid || (r < 0 && errno != EINTR))
                break;
            if (rh_now_ms() >= deadline) {
                fprintf(stderr, "harness: redis-server %d ignored SIGTERM, killing it\n",
                        (int)s->pid);
                kill(s->pid, SIGKILL);
                reap(s->pid);
                break;
            }
            sleep_ms(2);
        }
        s->pid = -1;
    }
    it_remove_tree(s->dir);
    free_server(s);
}

static redisReply *one_command(rh_server *s, int asking, int argc, const char **argv,
                               const size_t *len, const char *fmt, va_list *ap);

/* Splits a command formatted as RESP (an array of bulk strings, as redisvFormatCommand makes
 * it) into argv and len, pointing into cmd. Returns argc, or -1. */
static int split_resp(char *cmd, const char **argv, size_t *len, int max)
{
    char *p = cmd, *end;
    if (*p++ != '*')
        return -1;
    long argc = strtol(p, &end, 10);
    if (argc <= 0 || argc > max || end[0] != '\r')
        return -1;
    p = end + 2;
    for (long i = 0; i < argc; i++) {
        if (*p++ != '$')
            return -1;
        long n = strtol(p, &end, 10);
        if (n < 0 || end[0] != '\r')
            return -1;
        argv[i] = end + 2;
        len[i] = (size_t)n;
        p = end + 2 + n + 2;
    }
    return (int)argc;
}

/* A cluster handle's rh_command: formatted, split, and routed by cluster_harness.c. */
static redisReply *cluster_command(rh_server *s, const char *fmt, va_list ap)
{
    char *cmd = NULL;
    if (redisvFormatCommand(&cmd, fmt, ap) < 0 || cmd == NULL)
        return NULL;
    enum { MAX_ARGS = 256 };
    const char *argv[MAX_ARGS];
    size_t len[MAX_ARGS];
    int argc = split_resp(cmd, argv, len, MAX_ARGS);
    redisReply *r = argc > 0 ? rc_command_argv(s->cluster, argc, argv, len) : NULL;
    redisFreeCommand(cmd);
    return r;
}

redisReply *rh_command(rh_server *s, const char *fmt, ...)
{
    if (s == NULL)
        return NULL;
    if (s->cluster != NULL) {
        va_list ap;
        va_start(ap, fmt);
        redisReply *r = cluster_command(s, fmt, ap);
        va_end(ap);
        return r;
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = one_command(s, 0, 0, NULL, NULL, fmt, &ap);
    va_end(ap);
    return r;
}

redisReply *rh_command_argv(rh_server *s, int asking, int argc, const char **argv,
                            const size_t *len)
{
    return one_command(s, asking, argc, argv, len, NULL, NULL);
}

/* One command on one server, on a fresh connection: argv (with len) when given, else fmt, ap;
 * ASKING first with asking. */
static redisReply *one_command(rh_server *s, int asking, int argc, const char **argv,
                               const size_t *len, const char *fmt, va_list *ap)
{
    /* hiredis 0.14 writes with write(): a server dying mid-command would raise SIGPIPE. Block it
     * in this thread and discard one we caused, leaving the process' disposition alone (the
     * library under test must cope with SIGPIPE on its own). */
    sigset_t pipe_set, old_mask, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGPIPE);

    redisReply *reply = NULL;
    struct timeval tv = {RH_CMD_TIMEOUT, 0};
    redisContext *c = redisConnectWithTimeout(s->host, s->port, tv);
    if (c != NULL && c->err == 0 && redisSetTimeout(c, tv) == REDIS_OK && auth(s, c) == 0) {
        redisReply *ok = asking ? redisCommand(c, "ASKING") : NULL;
        if (!asking || (ok != NULL && ok->type == REDIS_REPLY_STATUS))
            reply =
                argv != NULL ? redisCommandArgv(c, argc, argv, len) : redisvCommand(c, fmt, *ap);
        if (ok != NULL)
            freeReplyObject(ok);
    }
    if (c != NULL)
        redisFree(c);

    if (!was_pending) {
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE)) {
            struct timespec zero = {0, 0};
            sigtimedwait(&pipe_set, NULL, &zero);
        }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    return reply;
}

void rh_log_quiet(int level, const char *msg, void *arg)
{
    (void)level, (void)msg, (void)arg;
}

int rh_cache_coherent(void *cache)
{
    strata_l2_stats st;
    strata_cache_l2_stats(cache, &st);
    return st.coherent;
}
