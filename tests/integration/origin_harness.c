/* origin_harness.c: the test origin as a child process, and a test CA (origin_harness.h).
 *
 * The TLS files are made with the openssl command line (Debian's openssl package, which
 * libssl's tools come in): a few lines of shell where the OpenSSL API would take a page per
 * certificate, and the same commands an operator would type to make a private CA.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "it_tmp.h"
#include "origin_harness.h"

#ifndef STRATA_TEST_ORIGIN
#error "STRATA_TEST_ORIGIN (the test origin's path) is set by CMakeLists.txt"
#endif

struct oh_origin {
    pid_t pid, owner;
    int port;
    char *dir, *log, *cert, *key;
    oh_origin *next;
};

static oh_origin *all;

static void kill_all(void)
{
    for (oh_origin *o = all; o != NULL; o = o->next)
        if (o->owner == getpid() && o->pid > 0) {
            kill(o->pid, SIGKILL);
            waitpid(o->pid, NULL, 0);
            o->pid = 0;
        }
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int spawn(oh_origin *o)
{
    char port[16];
    snprintf(port, sizeof port, "%d", o->port);
    const char *argv[] = {
        STRATA_TEST_ORIGIN, "--port", port, "--cert", o->cert, "--key", o->key, NULL};
    if (o->cert == NULL)
        argv[3] = NULL;
    int logfd = open(o->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (logfd < 0)
        return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(logfd);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
            _exit(127);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(logfd);
    o->pid = pid;
    /* Ready once it accepts (5 s at most). */
    for (int i = 0; i < 500; i++) {
        int fd = connect_to(o->port);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            o->pid = 0;
            fprintf(stderr, "origin_harness: the origin exited (see %s)\n", o->log);
            return -1;
        }
        sleep_ms(10);
    }
    fprintf(stderr, "origin_harness: the origin does not accept on %d\n", o->port);
    return -1;
}

oh_origin *oh_start(const oh_tls *t)
{
    oh_origin *o = calloc(1, sizeof *o);
    if (o == NULL)
        return NULL;
    o->dir = it_make_temp_dir("strata-or");
    if (o->dir == NULL) {
        free(o);
        return NULL;
    }
    o->log = it_xasprintf("%s/origin.log", o->dir);
    if (t != NULL) {
        o->cert = it_xstrdup(t->cert);
        o->key = it_xstrdup(t->key);
    }
    o->owner = getpid();
    if (all == NULL)
        atexit(kill_all);
    o->next = all;
    all = o;
    for (int tries = 0; tries < 5; tries++) {
        o->port = free_port();
        if (o->port > 0 && spawn(o) == 0)
            return o;
        if (o->pid > 0) {
            kill(o->pid, SIGKILL);
            waitpid(o->pid, NULL, 0);
            o->pid = 0;
        }
    }
    oh_stop(o);
    return NULL;
}

int oh_port(const oh_origin *o)
{
    return o->port;
}

int oh_kill(oh_origin *o)
{
    if (o->pid <= 0)
        return -1;
    kill(o->pid, SIGCONT);
    kill(o->pid, SIGKILL);
    waitpid(o->pid, NULL, 0);
    o->pid = 0;
    return 0;
}

int oh_restart(oh_origin *o)
{
    if (o->pid > 0)
        oh_kill(o);
    for (int tries = 0; tries < 50; tries++) { /* the port may linger a moment */
        if (spawn(o) == 0)
            return 0;
        sleep_ms(50);
    }
    return -1;
}

static int wait_state(pid_t pid, int flag)
{
    int st;
    pid_t r;
    do
        r = waitpid(pid, &st, flag);
    while (r < 0 && errno == EINTR);
    return r == pid ? 0 : -1;
}

int oh_pause(oh_origin *o)
{
    if (o->pid <= 0 || kill(o->pid, SIGSTOP) != 0)
        return -1;
    return wait_state(o->pid, WUNTRACED);
}

int oh_resume(oh_origin *o)
{
    if (o->pid <= 0 || kill(o->pid, SIGCONT) != 0)
        return -1;
    return wait_state(o->pid, WCONTINUED);
}

int oh_count(const oh_origin *o, unsigned long *connections, unsigned long *requests)
{
    int fd = connect_to(o->port);
    if (fd < 0)
        return -1;
    const char req[] = "GET /__count HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n";
    char buf[1024];
    size_t got = 0;
    ssize_t n;
    int rc = -1;
    if (write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1)) {
        while (got < sizeof buf - 1 && (n = read(fd, buf + got, sizeof buf - 1 - got)) > 0)
            got += (size_t)n;
        buf[got] = '\0';
        const char *p = strstr(buf, "connections=");
        if (p != NULL && sscanf(p, "connections=%lu requests=%lu", connections, requests) == 2)
            rc = 0;
    }
    close(fd);
    return rc;
}

void oh_stop(oh_origin *o)
{
    if (o == NULL)
        return;
    if (o->pid > 0)
        oh_kill(o);
    for (oh_origin **pp = &all; *pp != NULL; pp = &(*pp)->next)
        if (*pp == o) {
            *pp = o->next;
            break;
        }
    it_remove_tree(o->dir);
    free(o->dir);
    free(o->log);
    free(o->cert);
    free(o->key);
    free(o);
}

/* ---- the test CA -------------------------------------------------------------------------- */

int oh_make_tls(oh_tls *t)
{
    memset(t, 0, sizeof *t);
    t->dir = it_make_temp_dir("strata-ca");
    if (t->dir == NULL)
        return -1;
    t->ca = it_xasprintf("%s/ca.pem", t->dir);
    t->cert = it_xasprintf("%s/server.pem", t->dir);
    t->key = it_xasprintf("%s/server.key", t->dir);
    t->other_ca = it_xasprintf("%s/other-ca.pem", t->dir);
    t->client_cert = it_xasprintf("%s/client.pem", t->dir);
    t->client_key = it_xasprintf("%s/client.key", t->dir);
    char *cmd = it_xasprintf(
        "set -e; cd '%s'; "
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=strata test CA' "
        "  -keyout ca.key -out ca.pem; "
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=strata other CA' "
        "  -keyout other-ca.key -out other-ca.pem; "
        "openssl req -newkey rsa:2048 -nodes -subj '/CN=localhost' -keyout server.key "
        "  -out server.csr; "
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' "
        "  > ext.cnf; "
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "  -extfile ext.cnf -out server.pem; "
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "  -subj '/CN=strata test client' -keyout client.key -out client.csr; "
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "  -out client.pem; chmod 644 server.key client.key",
        t->dir);
    char *full = it_xasprintf("(%s) > '%s/openssl.log' 2>&1", cmd, t->dir);
    int rc = system(full);
    free(cmd);
    free(full);
    if (rc != 0) {
        fprintf(stderr, "origin_harness: making the test CA failed (see %s/openssl.log)\n", t->dir);
        return -1;
    }
    return 0;
}

void oh_free_tls(oh_tls *t)
{
    it_remove_tree(t->dir);
    free(t->dir);
    free(t->ca);
    free(t->cert);
    free(t->key);
    free(t->other_ca);
    free(t->client_cert);
    free(t->client_key);
    memset(t, 0, sizeof *t);
}
