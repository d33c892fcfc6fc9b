/* server_harness.c: starts and watches `strata serve` processes, and talks HTTP to them.
 *
 * A server is a child process: fork, PR_SET_PDEATHSIG(SIGKILL), a clean environment, stdout and
 * stderr to server.log in its temp dir, exec STRATA_BINARY serve. The port is reserved by a
 * SO_REUSEPORT socket bound (not listening) to 127.0.0.1:0 that the harness holds until the
 * server answers on it: strata serve binds with SO_REUSEPORT too, so it can join, while no other
 * process can be handed that port meanwhile. Every handle sits in a registry that an atexit()
 * handler empties (SIGKILL, reap, remove the dir), only in the process that created it.
 */
#include "server_harness.h"
#include "it_tmp.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#ifndef STRATA_BINARY
#error "STRATA_BINARY must name the strata executable"
#endif

#define SH_HOST     "127.0.0.1"
#define SH_MAX_ARGS 64
#define SH_MAX_ENV  64
#define SH_STOP_MS  15000

struct sh_server {
    int port;
    int reserve_fd; /* holds the port until the server listens; -1 after */
    char *dir;
    char *log;
    pid_t pid;  /* -1 once reaped */
    int status; /* exit status once reaped: code, or 128 + signal */
    pid_t owner;
    sh_server *next;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static sh_server *registry;
static pthread_once_t atexit_once = PTHREAD_ONCE_INIT;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

long sh_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void sh_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "server_harness: out of memory\n");
        abort();
    }
    return p;
}

static int sanitized(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return 1;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return 1;
#else
    return 0;
#endif
#else
    return 0;
#endif
}

/* ---- registry ---------------------------------------------------------------------------- */

static int decode_status(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

static void reap_blocking(sh_server *s)
{
    int st;
    pid_t r;
    do {
        r = waitpid(s->pid, &st, 0);
    } while (r < 0 && errno == EINTR);
    s->status = r == s->pid ? decode_status(st) : -1;
    s->pid = -1;
}

static void kill_all_at_exit(void)
{
    pthread_mutex_lock(&registry_lock);
    sh_server **pp = &registry;
    while (*pp != NULL) {
        sh_server *s = *pp;
        if (s->owner != getpid()) {
            pp = &s->next;
            continue;
        }
        *pp = s->next;
        if (s->pid > 0) {
            kill(s->pid, SIGKILL);
            reap_blocking(s);
        }
        if (s->reserve_fd >= 0)
            close(s->reserve_fd);
        it_remove_tree(s->dir);
        free(s->dir);
        free(s->log);
        free(s);
    }
    pthread_mutex_unlock(&registry_lock);
}

static void register_atexit(void)
{
    atexit(kill_all_at_exit);
}

static void registry_add(sh_server *s)
{
    pthread_once(&atexit_once, register_atexit);
    pthread_mutex_lock(&registry_lock);
    s->next = registry;
    registry = s;
    pthread_mutex_unlock(&registry_lock);
}

static void registry_remove(sh_server *s)
{
    pthread_mutex_lock(&registry_lock);
    for (sh_server **pp = &registry; *pp != NULL; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&registry_lock);
}

/* ---- files ------------------------------------------------------------------------------- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return it_xstrdup("");
    size_t cap = 4096, len = 0;
    char *buf = xmalloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return it_xstrdup("");
            }
            buf = nb;
        }
    }
    buf[len] = '\0';
    fclose(f);
    return buf;
}

/* ---- ports ------------------------------------------------------------------------------- */

/* A SO_REUSEPORT socket bound to 127.0.0.1:0: the port stays ours while it is open. */
static int reserve_port(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

/* ---- the process ------------------------------------------------------------------------- */

static char *subst_port(const char *s, int port)
{
    const char *p = strstr(s, "{PORT}");
    if (p == NULL || port <= 0)
        return it_xstrdup(s);
    return it_xasprintf("%.*s%d%s", (int)(p - s), s, port, p + 6);
}

typedef struct strlist {
    char *v[SH_MAX_ARGS + SH_MAX_ENV + 8];
    size_t n;
} strlist;

static void strlist_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    l->n = 0;
}

/* Builds argv and envp; port > 0: substitute {PORT} and add --listen unless given. */
static int build(const char *const *env, const char *const *args, int port, strlist *argv,
                 strlist *envp)
{
    argv->n = envp->n = 0;
    size_t nargs = 0, nenv = 0;
    while (args != NULL && args[nargs] != NULL)
        nargs++;
    while (env != NULL && env[nenv] != NULL)
        nenv++;
    if (nargs > SH_MAX_ARGS || nenv > SH_MAX_ENV) {
        fprintf(stderr, "server_harness: too many arguments or variables\n");
        return -1;
    }
    argv->v[argv->n++] = it_xstrdup(STRATA_BINARY);
    argv->v[argv->n++] = it_xstrdup("serve");
    int has_listen = 0;
    for (size_t i = 0; i < nargs; i++)
        has_listen |= strcmp(args[i], "--listen") == 0;
    if (port > 0 && !has_listen) {
        argv->v[argv->n++] = it_xstrdup("--listen");
        argv->v[argv->n++] = it_xasprintf(SH_HOST ":%d", port);
    }
    for (size_t i = 0; i < nargs; i++)
        argv->v[argv->n++] = subst_port(args[i], port);
    argv->v[argv->n] = NULL;
    static const char *const keep[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"};
    for (size_t i = 0; i < sizeof keep / sizeof *keep; i++) {
        const char *v = getenv(keep[i]);
        if (v != NULL)
            envp->v[envp->n++] = it_xasprintf("%s=%s", keep[i], v);
    }
    for (size_t i = 0; i < nenv; i++)
        envp->v[envp->n++] = subst_port(env[i], port);
    envp->v[envp->n] = NULL;
    return 0;
}

static struct rlimit next_nofile; /* for the next child; rlim_max 0: inherited */

void sh_next_nofile(unsigned soft, unsigned hard)
{
    next_nofile.rlim_cur = soft;
    next_nofile.rlim_max = hard;
}

/* Forks and execs; stdout/stderr appended to logpath. Returns the pid, or -1. */
static pid_t spawn(strlist *argv, strlist *envp, const char *logpath)
{
    int logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (logfd < 0) {
        fprintf(stderr, "server_harness: open %s: %s\n", logpath, strerror(errno));
        return -1;
    }
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nullfd < 0) {
        close(logfd);
        return -1;
    }
    pid_t parent = getpid();
    struct rlimit nofile = next_nofile;
    next_nofile.rlim_max = 0;
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "server_harness: fork: %s\n", strerror(errno));
        close(logfd);
        close(nullfd);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
            _exit(127);
        if (close_range(3, ~0u, 0) != 0)
            for (int fd = 3; fd < 1024; fd++)
                close(fd);
        if (nofile.rlim_max != 0 && setrlimit(RLIMIT_NOFILE, &nofile) != 0)
            _exit(127);
        execve(argv->v[0], argv->v, envp->v);
        _exit(127);
    }
    close(logfd);
    close(nullfd);
    return pid;
}

int sh_exited(sh_server *s)
{
    if (s->pid <= 0)
        return 1;
    int st;
    pid_t r = waitpid(s->pid, &st, WNOHANG);
    if (r == s->pid) {
        s->status = decode_status(st);
        s->pid = -1;
        return 1;
    }
    return 0;
}

int sh_wait_exit(sh_server *s, int timeout_ms)
{
    long deadline = sh_now_ms() + timeout_ms;
    for (;;) {
        if (sh_exited(s))
            return s->status;
        if (sh_now_ms() >= deadline)
            return -1;
        sh_sleep_ms(5);
    }
}

static void print_log(const char *path)
{
    char *log = read_file(path);
    size_t n = strlen(log);
    const char *from = n > 16384 ? log + n - 16384 : log;
    fprintf(stderr, "server_harness: --- %s ---\n%s%s--- end of log ---\n", path, from,
            n && log[n - 1] != '\n' ? "\n" : "");
    free(log);
}

sh_server *sh_start(const char *const *env, const char *const *args)
{
    sh_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->pid = -1;
    s->owner = getpid();
    s->reserve_fd = reserve_port(&s->port);
    if (s->reserve_fd < 0) {
        fprintf(stderr, "server_harness: no free port: %s\n", strerror(errno));
        free(s);
        return NULL;
    }
    s->dir = it_make_temp_dir("strata-sh");
    if (s->dir == NULL) {
        close(s->reserve_fd);
        free(s);
        return NULL;
    }
    s->log = it_xasprintf("%s/server.log", s->dir);
    registry_add(s);
    strlist argv, envp;
    if (build(env, args, s->port, &argv, &envp) != 0) {
        sh_free(s);
        return NULL;
    }
    s->pid = spawn(&argv, &envp, s->log);
    strlist_free(&argv);
    strlist_free(&envp);
    if (s->pid < 0) {
        sh_free(s);
        return NULL;
    }
    long deadline = sh_now_ms() + (sanitized() ? 10000 : 5000);
    for (;;) {
        if (sh_exited(s)) {
            fprintf(stderr, "server_harness: strata serve exited during startup (status %d)\n",
                    s->status);
            print_log(s->log);
            sh_free(s);
            return NULL;
        }
        sh_resp *r = sh_request_port(s->port, "GET", "/livez", NULL, NULL, 0, 500);
        long status = r->status;
        sh_resp_free(r);
        if (status == 200)
            break;
        if (sh_now_ms() >= deadline) {
            fprintf(stderr, "server_harness: strata serve did not answer /livez on port %d\n",
                    s->port);
            print_log(s->log);
            sh_free(s);
            return NULL;
        }
        sh_sleep_ms(10);
    }
    close(s->reserve_fd);
    s->reserve_fd = -1;
    return s;
}

int sh_port(const sh_server *s)
{
    return s->port;
}

pid_t sh_pid(const sh_server *s)
{
    return s->pid;
}

const char *sh_dir(const sh_server *s)
{
    return s->dir;
}

const char *sh_log_path(const sh_server *s)
{
    return s->log;
}

int sh_signal(sh_server *s, int sig)
{
    if (s->pid <= 0)
        return -1;
    return kill(s->pid, sig);
}

int sh_stop(sh_server *s)
{
    if (s->pid <= 0)
        return s->status;
    kill(s->pid, SIGTERM);
    int st = sh_wait_exit(s, SH_STOP_MS);
    if (st < 0) {
        fprintf(stderr, "server_harness: strata serve did not exit %d ms after SIGTERM\n",
                SH_STOP_MS);
        kill(s->pid, SIGKILL);
        reap_blocking(s);
        st = s->status;
    }
    return st;
}

void sh_free(sh_server *s)
{
    if (s == NULL)
        return;
    registry_remove(s);
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        reap_blocking(s);
    }
    if (s->reserve_fd >= 0)
        close(s->reserve_fd);
    it_remove_tree(s->dir);
    free(s->dir);
    free(s->log);
    free(s);
}

char *sh_log(const sh_server *s)
{
    return read_file(s->log);
}

int sh_log_contains(const sh_server *s, const char *needle)
{
    char *log = sh_log(s);
    int found = strstr(log, needle) != NULL;
    free(log);
    return found;
}

int sh_log_clean(const sh_server *s)
{
    char *log = sh_log(s);
    int dirty = strstr(log, "ERROR: AddressSanitizer") != NULL ||
                strstr(log, "ERROR: LeakSanitizer") != NULL ||
                strstr(log, "runtime error:") != NULL;
    free(log);
    if (dirty) {
        fprintf(stderr, "server_harness: sanitizer report in the server log\n");
        print_log(s->log);
    }
    return !dirty;
}

int sh_healthy(sh_server *s)
{
    if (sh_exited(s)) {
        fprintf(stderr, "server_harness: strata serve is gone (status %d)\n", s->status);
        print_log(s->log);
        return 0;
    }
    sh_resp *r = sh_request_port(s->port, "GET", "/livez", NULL, NULL, 0, 5000);
    long status = r->status;
    if (status != 200)
        fprintf(stderr, "server_harness: /livez answered %ld (%s)\n", status, r->err);
    sh_resp_free(r);
    return status == 200 && sh_log_clean(s);
}

int sh_stop_check(sh_server *s)
{
    int st = sh_stop(s);
    int clean = sh_log_clean(s);
    if (st != 0) {
        fprintf(stderr, "server_harness: strata serve exited with status %d after SIGTERM\n", st);
        if (clean)
            print_log(s->log);
    }
    sh_free(s);
    return st == 0 && clean ? 0 : -1;
}

int sh_run(const char *const *env, const char *const *args, int timeout_ms, char **output,
           long *elapsed_ms)
{
    char *dir = it_make_temp_dir("strata-sh");
    if (dir == NULL)
        return -1;
    char *log = it_xasprintf("%s/run.log", dir);
    strlist argv, envp;
    int status = -1;
    long t0 = sh_now_ms();
    if (build(env, args, 0, &argv, &envp) == 0) {
        sh_server tmp = {.pid = spawn(&argv, &envp, log), .reserve_fd = -1};
        strlist_free(&argv);
        strlist_free(&envp);
        if (tmp.pid > 0) {
            status = sh_wait_exit(&tmp, timeout_ms);
            if (status < 0) {
                kill(tmp.pid, SIGKILL);
                reap_blocking(&tmp);
                status = -1;
            }
        }
    }
    if (elapsed_ms != NULL)
        *elapsed_ms = sh_now_ms() - t0;
    if (output != NULL)
        *output = read_file(log);
    it_remove_tree(dir);
    free(dir);
    free(log);
    return status;
}

/* ---- HTTP -------------------------------------------------------------------------------- */

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct growbuf {
    char *p;
    size_t len, cap;
} growbuf;

static void grow_add(growbuf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            fprintf(stderr, "server_harness: out of memory\n");
            abort();
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    grow_add(arg, data, size * nmemb);
    return size * nmemb;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    sh_resp *r = arg;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) { /* a new response (after a 100): restart */
        for (size_t i = 0; i < r->nheaders; i++)
            free(r->headers[i].name), free(r->headers[i].value);
        r->nheaders = 0;
        return n;
    }
    const char *colon = memchr(data, ':', n);
    if (colon == NULL)
        return n;
    size_t nl = (size_t)(colon - data);
    const char *v = colon + 1, *end = data + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    sh_header *h = realloc(r->headers, (r->nheaders + 1) * sizeof *h);
    if (h == NULL)
        abort();
    r->headers = h;
    h[r->nheaders].name = xmalloc(nl + 1);
    memcpy(h[r->nheaders].name, data, nl);
    h[r->nheaders].name[nl] = '\0';
    h[r->nheaders].value = xmalloc((size_t)(end - v) + 1);
    memcpy(h[r->nheaders].value, v, (size_t)(end - v));
    h[r->nheaders].value[end - v] = '\0';
    r->nheaders++;
    return n;
}

sh_resp *sh_request_port(int port, const char *method, const char *path, const char *const *headers,
                         const void *body, size_t body_len, long timeout_ms)
{
    pthread_once(&curl_once, curl_init_once);
    sh_resp *r = calloc(1, sizeof *r);
    if (r == NULL)
        abort();
    growbuf b = {0};
    grow_add(&b, "", 0);
    CURL *c = curl_easy_init();
    if (c == NULL)
        abort();
    char *url = it_xasprintf("http://" SH_HOST ":%d%s", port, path);
    struct curl_slist *hl = NULL;
    int has_ct = 0;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        hl = curl_slist_append(hl, headers[i]);
        has_ct |= strncasecmp(headers[i], "Content-Type:", 13) == 0;
    }
    if (!has_ct)
        hl = curl_slist_append(hl, "Content-Type:");
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 10000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(method, "GET") != 0)
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        if (body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body != NULL ? (const char *)body : "");
        }
    }
    snprintf(r->what, sizeof r->what, "%s %.180s", method, path);
    long t0 = sh_now_ms();
    CURLcode rc = curl_easy_perform(c);
    r->elapsed_ms = sh_now_ms() - t0;
    r->curl_code = (int)rc;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    } else {
        r->status = 0;
        snprintf(r->err, sizeof r->err, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
    r->body = b.p;
    r->body_len = b.len;
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    free(url);
    return r;
}

sh_resp *sh_request(const sh_server *s, const char *method, const char *path,
                    const char *const *headers, const void *body, size_t body_len)
{
    return sh_request_port(s->port, method, path, headers, body, body_len, 0);
}

sh_resp *sh_call(const sh_server *s, const char *method, const char *path, const char *token,
                 const char *tenant, const char *content_type, const char *body)
{
    char *h[4] = {NULL, NULL, NULL, NULL};
    size_t n = 0;
    if (token != NULL)
        h[n++] = it_xasprintf("Authorization: Bearer %s", token);
    if (tenant != NULL)
        h[n++] = it_xasprintf("X-Tenant: %s", tenant);
    if (content_type != NULL)
        h[n++] = it_xasprintf("Content-Type: %s", content_type);
    sh_resp *r =
        sh_request(s, method, path, (const char *const *)h, body, body != NULL ? strlen(body) : 0);
    for (size_t i = 0; i < n; i++)
        free(h[i]);
    return r;
}

void sh_resp_free(sh_resp *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nheaders; i++)
        free(r->headers[i].name), free(r->headers[i].value);
    free(r->headers);
    free(r->body);
    free(r);
}

const char *sh_resp_header(const sh_resp *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

json_t *sh_resp_json(const sh_resp *r)
{
    if (r->body == NULL || r->body_len == 0)
        return NULL;
    json_error_t err;
    return json_loadb(r->body, r->body_len, 0, &err);
}

int sh_resp_is_error(const sh_resp *r, const char *code)
{
    const char *ct = sh_resp_header(r, "Content-Type");
    json_t *j = sh_resp_json(r);
    json_t *e = json_object_get(j, "error");
    json_t *jc = json_object_get(e, "code"), *jm = json_object_get(e, "message"),
           *js = json_object_get(e, "status");
    const char *why = NULL;
    if (ct == NULL || strncmp(ct, "application/json", 16) != 0)
        why = "Content-Type is not application/json";
    else if (j == NULL)
        why = "the body is not JSON";
    else if (!json_is_object(e))
        why = "no \"error\" object";
    else if (!json_is_string(jc) || !json_is_string(jm) || !json_is_integer(js))
        why = "error.code/message/status missing or of the wrong type";
    else if (json_integer_value(js) != r->status)
        why = "error.status differs from the HTTP status";
    else if (code != NULL && strcmp(json_string_value(jc), code) != 0)
        why = "error.code is not the expected one";
    if (why != NULL)
        fprintf(stderr, "server_harness: not an API error (%s, expected code %s): HTTP %ld %s\n",
                why, code ? code : "any", r->status, r->body ? r->body : "");
    json_decref(j);
    return why == NULL;
}

char *sh_urlencode(const void *data, size_t n)
{
    const unsigned char *s = data;
    char *out = xmalloc(3 * n + 1), *o = out;
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (isalnum(c) || c == '_' || c == '.' || c == '~' || c == '-') {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *sh_b64_encode(const void *data, size_t n)
{
    const unsigned char *s = data;
    char *out = xmalloc(4 * ((n + 2) / 3) + 1), *o = out;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? s[i + 2] : 0);
        *o++ = b64chars[v >> 18 & 63];
        *o++ = b64chars[v >> 12 & 63];
        *o++ = i + 1 < n ? b64chars[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? b64chars[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

unsigned char *sh_b64_decode(const char *s, size_t *len)
{
    size_t n = strlen(s);
    if (n % 4 != 0)
        return NULL;
    unsigned char *out = xmalloc(n / 4 * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        unsigned v = 0;
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            const char *p = s[i + k] ? strchr(b64chars, s[i + k]) : NULL;
            if (s[i + k] == '=' && i + 4 == n && k >= 2) {
                pad++;
                v <<= 6;
                continue;
            }
            if (p == NULL || pad) {
                free(out);
                return NULL;
            }
            v = v << 6 | (unsigned)(p - b64chars);
        }
        out[o++] = (unsigned char)(v >> 16);
        if (pad < 2)
            out[o++] = (unsigned char)(v >> 8);
        if (pad < 1)
            out[o++] = (unsigned char)v;
    }
    *len = o;
    return out;
}

/* ---- raw TCP ----------------------------------------------------------------------------- */

int sh_raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int sh_raw_send(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads once, waiting up to wait_ms. Returns >0 bytes, 0 on EOF/reset, -1 on timeout. */
static ssize_t read_some(int fd, char *buf, size_t cap, long wait_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    int pr;
    do {
        pr = poll(&p, 1, (int)(wait_ms > 0 ? wait_ms : 0));
    } while (pr < 0 && errno == EINTR);
    if (pr <= 0)
        return -1;
    ssize_t n;
    do {
        n = recv(fd, buf, cap, 0);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? 0 : n; /* a reset counts as the peer closing */
}

int sh_raw_readable(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) > 0;
}

char *sh_raw_read_all(int fd, int timeout_ms, size_t *len, int *eof)
{
    growbuf b = {0};
    grow_add(&b, "", 0);
    long deadline = sh_now_ms() + timeout_ms;
    int closed = 0;
    char buf[8192];
    for (;;) {
        long left = deadline - sh_now_ms();
        if (left <= 0)
            break;
        ssize_t n = read_some(fd, buf, sizeof buf, left);
        if (n < 0)
            break;
        if (n == 0) {
            closed = 1;
            break;
        }
        grow_add(&b, buf, (size_t)n);
    }
    if (len != NULL)
        *len = b.len;
    if (eof != NULL)
        *eof = closed;
    return b.p;
}

/* How many complete responses p[0..n) holds (Content-Length framing). */
static int complete_responses(const char *p, size_t n)
{
    int count = 0;
    size_t off = 0;
    while (off < n) {
        const char *start = p + off;
        const char *end = memmem(start, n - off, "\r\n\r\n", 4);
        if (end == NULL)
            break;
        size_t hlen = (size_t)(end - start) + 4;
        int status = 0;
        if (sscanf(start, "HTTP/1.%*d %d", &status) != 1)
            break;
        size_t clen = 0;
        for (const char *h = start; h < end;) {
            const char *eol = memmem(h, (size_t)(end - h) + 2, "\r\n", 2);
            if (eol == NULL)
                break;
            if ((size_t)(eol - h) > 15 && strncasecmp(h, "Content-Length:", 15) == 0)
                clen = strtoul(h + 15, NULL, 10);
            h = eol + 2;
        }
        if (status == 204 || status == 304 || (status >= 100 && status < 200))
            clen = 0;
        if (off + hlen + clen > n)
            break;
        off += hlen + clen;
        count++;
    }
    return count;
}

char *sh_raw_read_responses(int fd, int want, int timeout_ms, size_t *len, int *eof)
{
    growbuf b = {0};
    grow_add(&b, "", 0);
    long deadline = sh_now_ms() + timeout_ms;
    int closed = 0;
    char buf[8192];
    while (complete_responses(b.p, b.len) < want) {
        long left = deadline - sh_now_ms();
        if (left <= 0)
            break;
        ssize_t n = read_some(fd, buf, sizeof buf, left);
        if (n < 0)
            break;
        if (n == 0) {
            closed = 1;
            break;
        }
        grow_add(&b, buf, (size_t)n);
    }
    if (len != NULL)
        *len = b.len;
    if (eof != NULL)
        *eof = closed;
    return b.p;
}

char *sh_raw_exchange(int port, const void *data, size_t len, int timeout_ms, size_t *out_len,
                      int *eof)
{
    int fd = sh_raw_connect(port);
    if (fd < 0) {
        if (out_len != NULL)
            *out_len = 0;
        if (eof != NULL)
            *eof = 1;
        return it_xstrdup("");
    }
    sh_raw_send(fd, data, len); /* the server may close before taking it all */
    char *out = sh_raw_read_all(fd, timeout_ms, out_len, eof);
    close(fd);
    return out;
}

int sh_put_shared(const sh_server *s, const char *path, const char *value)
{
    sh_resp *r = sh_call(s, "PUT", path, NULL, NULL, "text/plain", value);
    int ok = r->status == 204 && sh_resp_header(r, "X-Cache-Write") == NULL;
    sh_resp_free(r);
    return ok;
}

int sh_get_is(const sh_server *s, const char *path, const char *want)
{
    sh_resp *r = sh_call(s, "GET", path, NULL, NULL, NULL, NULL);
    int ok = r->status == 200 && strcmp(r->body, want) == 0;
    if (!ok) {
        const char *why = sh_resp_header(r, "X-Cache-Reason");
        fprintf(stderr, "GET %s: %ld %s (want %s; reason %s)\n", path, r->status, r->body, want,
                why ? why : "none");
    }
    sh_resp_free(r);
    return ok;
}
