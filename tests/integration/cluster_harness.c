/* cluster_harness.c: a real Redis Cluster for the integration tests (cluster_harness.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "cluster_harness.h"

#define RC_JOIN_MS 30000

struct rc_cluster {
    rh_server *node[RC_NODES_MAX];
    int tls_port[RC_NODES_MAX]; /* rc_start_tls: each node's; else 0 */
    int n;
    char seeds[64];
    char ca[512]; /* rc_start_tls: the CA redis-cli verifies the nodes with */
};

/* Whether 127.0.0.1:port can be bound now. */
static int port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* A free port from 20000 to 44999 whose cluster bus port (10000 above it: the port must be 55535
 * or less) is free too: the kernel's free ports are mostly above that, so they are picked here. */
static int pick_port(void)
{
    static unsigned seed;
    if (seed == 0)
        seed = (unsigned)getpid();
    for (int tries = 0; tries < 200; tries++) {
        int port = 20000 + (int)(rand_r(&seed) % 25000);
        if (port_free(port) && port_free(port + 10000))
            return port;
    }
    return -1;
}

/* A node on such a port; with tls_args (NULL-terminated, "--tls-port" and its value first), the
 * TLS port is picked the same way (with tls-cluster, the bus is 10000 above the TLS port). */
static rh_server *start_node(const char *const *args, int tls, const char *const *tls_args,
                             int *tls_port)
{
    for (int tries = 0; tries < 20; tries++) {
        const char *all[48];
        int n = 0;
        char tport[16];
        for (const char *const *a = args; *a != NULL && n < 30; a++)
            all[n++] = *a;
        if (tls) {
            *tls_port = pick_port();
            snprintf(tport, sizeof tport, "%d", *tls_port);
            all[n++] = "--tls-port";
            all[n++] = tport;
            for (const char *const *a = tls_args; *a != NULL && n < 46; a++)
                all[n++] = *a;
        }
        all[n] = NULL;
        int port = pick_port();
        if (port < 0 || (tls && *tls_port < 0))
            return NULL;
        rh_server *s = rh_start_at("127.0.0.1", port, all);
        if (s != NULL)
            return s;
    }
    return NULL;
}

int rc_size(const rc_cluster *c)
{
    return c->n;
}

rh_server *rc_node(rc_cluster *c, int i)
{
    return c->node[i];
}

const char *rc_seeds(const rc_cluster *c)
{
    return c->seeds;
}

static int node_ok(rh_server *s)
{
    redisReply *r = rh_command(s, "CLUSTER INFO");
    int ok =
        r != NULL && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok") != NULL;
    if (r != NULL)
        freeReplyObject(r);
    return ok;
}

rh_server *rc_slot_owner(rc_cluster *c, unsigned slot)
{
    for (int i = 0; i < c->n; i++) {
        if (rh_pid(c->node[i]) < 0)
            continue;
        redisReply *r = rh_command(c->node[i], "CLUSTER SLOTS");
        int port = -1;
        for (size_t k = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && k < r->elements; k++) {
            redisReply *e = r->element[k];
            if (e->type == REDIS_REPLY_ARRAY && e->elements >= 3 &&
                (unsigned)e->element[0]->integer <= slot &&
                slot <= (unsigned)e->element[1]->integer)
                port = (int)e->element[2]->element[1]->integer;
        }
        if (r != NULL)
            freeReplyObject(r);
        for (int j = 0; port > 0 && j < c->n; j++)
            if (rh_port(c->node[j]) == port)
                return c->node[j];
    }
    return NULL;
}

rh_server *rc_owner(rc_cluster *c, const char *key)
{
    for (int i = 0; i < c->n; i++) {
        if (rh_pid(c->node[i]) < 0)
            continue;
        redisReply *r = rh_command(c->node[i], "CLUSTER KEYSLOT %s", key);
        long long slot = r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        if (r != NULL)
            freeReplyObject(r);
        if (slot >= 0)
            return rc_slot_owner(c, (unsigned)slot);
    }
    return NULL;
}

int rc_ok(void *arg)
{
    rc_cluster *c = arg;
    int running = 0;
    for (int i = 0; i < c->n; i++) {
        if (rh_pid(c->node[i]) < 0)
            continue;
        running++;
        if (!node_ok(c->node[i]))
            return 0;
    }
    return running > 0 && rc_slot_owner(c, 0) != NULL && rh_pid(rc_slot_owner(c, 0)) > 0;
}

int rc_is_primary(rh_server *n)
{
    if (rh_pid(n) < 0)
        return 0;
    redisReply *r = rh_command(n, "ROLE");
    int yes = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
              strcmp(r->element[0]->str, "master") == 0;
    if (r != NULL)
        freeReplyObject(r);
    return yes;
}

rh_server *rc_other_primary(rc_cluster *c, rh_server *not_this)
{
    for (int i = 0; i < c->n; i++)
        if (c->node[i] != not_this && rc_is_primary(c->node[i]))
            return c->node[i];
    return NULL;
}

int rc_exists(rh_server *node, const char *stored)
{
    redisReply *r = rh_command(node, "EXISTS %s", stored);
    int yes = r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (r != NULL)
        freeReplyObject(r);
    return yes;
}

long long rc_dbsize(rh_server *node)
{
    redisReply *r = rh_command(node, "DBSIZE");
    long long n = r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r != NULL)
        freeReplyObject(r);
    return n;
}

int rc_node_id(rc_cluster *c, rh_server *node, char *id)
{
    (void)c;
    redisReply *r = rh_command(node, "CLUSTER MYID");
    int ok = r != NULL && r->type == REDIS_REPLY_STRING && r->len == 40;
    if (ok)
        memcpy(id, r->str, 41);
    if (r != NULL)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

/* ---- commands for the whole cluster (rc_command_argv) ------------------------------------ */

#define RC_MAX_HOPS 5

/* Whether the command word w (n bytes) is name, case aside. */
static int is(const char *w, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(w, name, n) == 0;
}

/* A reply made from its RESP text, as hiredis would have read it from a server. */
static redisReply *reply_from(const char *resp, size_t n)
{
    redisReader *rd = redisReaderCreate();
    void *out = NULL;
    if (rd != NULL && redisReaderFeed(rd, resp, n) == REDIS_OK)
        redisReaderGetReply(rd, &out);
    redisReaderFree(rd);
    return out;
}

static redisReply *error_reply(const char *msg)
{
    char buf[300];
    int n = snprintf(buf, sizeof buf, "-ERR harness: %s\r\n", msg);
    return reply_from(buf, (size_t)n);
}

static redisReply *integer_reply(long long v)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, ":%lld\r\n", v);
    return reply_from(buf, (size_t)n);
}

static int is_error(const redisReply *r, const char *prefix)
{
    return r != NULL && r->type == REDIS_REPLY_ERROR &&
           strncmp(r->str, prefix, strlen(prefix)) == 0;
}

/* The node listening on port (a MOVED or ASK target), or NULL. */
static rh_server *node_on(rc_cluster *c, int port)
{
    for (int i = 0; i < c->n; i++)
        if (rh_port(c->node[i]) == port)
            return c->node[i];
    return NULL;
}

/* The first running primary, or else the first running node, or NULL. */
static rh_server *first_node(rc_cluster *c)
{
    for (int i = 0; i < c->n; i++)
        if (rc_is_primary(c->node[i]))
            return c->node[i];
    for (int i = 0; i < c->n; i++)
        if (rh_pid(c->node[i]) > 0)
            return c->node[i];
    return NULL;
}

/* A command with a key: to any node, then where MOVED and ASK say. */
static redisReply *route(rc_cluster *c, int argc, const char **argv, const size_t *len)
{
    rh_server *node = first_node(c);
    if (node == NULL)
        return NULL; /* the cluster is down */
    int asking = 0;
    for (int hop = 0; node != NULL && hop <= RC_MAX_HOPS; hop++) {
        redisReply *r = rh_command_argv(node, asking, argc, argv, len);
        int moved = is_error(r, "MOVED "), ask = is_error(r, "ASK ");
        if (!moved && !ask)
            return r;
        const char *colon = strrchr(r->str, ':'); /* "MOVED 3999 127.0.0.1:6381" */
        node = colon != NULL ? node_on(c, atoi(colon + 1)) : NULL;
        asking = ask;
        freeReplyObject(r);
    }
    return error_reply("a redirection to no node of the cluster, or too many");
}

/* EXISTS k1 k2 ... (DEL, UNLINK, TOUCH): each key on its own node, the counts summed. */
static redisReply *per_key(rc_cluster *c, int argc, const char **argv, const size_t *len)
{
    long long sum = 0;
    for (int i = 1; i < argc; i++) {
        const char *one[2] = {argv[0], argv[i]};
        size_t one_len[2] = {len[0], len[i]};
        redisReply *r = route(c, 2, one, one_len);
        if (r == NULL || r->type != REDIS_REPLY_INTEGER)
            return r;
        sum += r->integer;
        freeReplyObject(r);
    }
    return integer_reply(sum);
}

/* The command on every running node (primaries only with primaries): integer replies summed,
 * else the first error, else the first reply; NULL if a node did not answer. */
static redisReply *on_every_node(rc_cluster *c, int primaries, int argc, const char **argv,
                                 const size_t *len)
{
    redisReply *first = NULL, *err = NULL;
    long long sum = 0;
    int integers = 1, failed = 0;
    for (int i = 0; i < c->n; i++) {
        if (rh_pid(c->node[i]) < 0 || (primaries && !rc_is_primary(c->node[i])))
            continue;
        redisReply *r = rh_command_argv(c->node[i], 0, argc, argv, len);
        if (r == NULL) {
            failed = 1;
            continue;
        }
        integers = integers && r->type == REDIS_REPLY_INTEGER;
        sum += r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        if (r->type == REDIS_REPLY_ERROR && err == NULL)
            err = r;
        else if (first == NULL)
            first = r;
        else
            freeReplyObject(r);
    }
    if (failed || (first == NULL && err == NULL)) {
        freeReplyObject(first), freeReplyObject(err);
        return NULL;
    }
    if (err != NULL) {
        freeReplyObject(first);
        return err;
    }
    if (integers) {
        freeReplyObject(first);
        return integer_reply(sum);
    }
    return first;
}

/* KEYS pattern on every primary, the names in one array. */
static redisReply *keys(rc_cluster *c, int argc, const char **argv, const size_t *len)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    if (out == NULL)
        return NULL;
    size_t total = 0;
    int failed = 0;
    for (int i = 0; i < c->n && !failed; i++) {
        if (!rc_is_primary(c->node[i]))
            continue;
        redisReply *r = rh_command_argv(c->node[i], 0, argc, argv, len);
        failed = r == NULL || r->type != REDIS_REPLY_ARRAY;
        for (size_t k = 0; !failed && k < r->elements; k++, total++)
            fprintf(out, "$%zu\r\n%.*s\r\n", r->element[k]->len, (int)r->element[k]->len,
                    r->element[k]->str);
        freeReplyObject(r);
    }
    fclose(out);
    redisReply *merged = NULL;
    if (!failed) {
        char head[32];
        int hn = snprintf(head, sizeof head, "*%zu\r\n", total);
        char *all = malloc((size_t)hn + size);
        if (all != NULL) {
            memcpy(all, head, (size_t)hn);
            memcpy(all + hn, buf, size);
            merged = reply_from(all, (size_t)hn + size);
            free(all);
        }
    }
    free(buf);
    return merged;
}

redisReply *rc_command_argv(rc_cluster *c, int argc, const char **argv, const size_t *len)
{
    const char *w = argv[0];
    size_t n = len[0];
    if (is(w, n, "DBSIZE"))
        return on_every_node(c, 1, argc, argv, len);
    if (is(w, n, "KEYS"))
        return keys(c, argc, argv, len);
    if (is(w, n, "FLUSHALL") || is(w, n, "FLUSHDB"))
        return on_every_node(c, 1, argc, argv, len);
    if (is(w, n, "SCRIPT") || is(w, n, "ACL") || is(w, n, "CONFIG") || is(w, n, "CLIENT"))
        return on_every_node(c, 0, argc, argv, len);
    if (is(w, n, "INFO") || is(w, n, "SELECT") || is(w, n, "SCAN") || is(w, n, "RANDOMKEY") ||
        is(w, n, "MONITOR") || is(w, n, "SUBSCRIBE"))
        return error_reply("this command is about one server: ask each node (rh_node)");
    if ((is(w, n, "EXISTS") || is(w, n, "DEL") || is(w, n, "UNLINK") || is(w, n, "TOUCH")) &&
        argc > 2)
        return per_key(c, argc, argv, len);
    if (argc < 2 || is(w, n, "PING") || is(w, n, "ECHO") || is(w, n, "TIME")) {
        rh_server *node = first_node(c);
        return node != NULL ? rh_command_argv(node, 0, argc, argv, len) : NULL;
    }
    return route(c, argc, argv, len);
}

/* redis-cli --cluster create (over TLS for a TLS cluster), its output into the first node's dir. */
static int create(rc_cluster *c, int replicas)
{
    char cmd[2048];
    int off = snprintf(cmd, sizeof cmd, "redis-cli");
    if (c->ca[0])
        off += snprintf(cmd + off, sizeof cmd - (size_t)off, " --tls --cacert %s", c->ca);
    off += snprintf(cmd + off, sizeof cmd - (size_t)off, " --cluster create");
    for (int i = 0; i < c->n; i++)
        off += snprintf(cmd + off, sizeof cmd - (size_t)off, " %s:%d", rh_host(c->node[i]),
                        c->tls_port[i] ? c->tls_port[i] : rh_port(c->node[i]));
    snprintf(cmd + off, sizeof cmd - (size_t)off,
             " --cluster-replicas %d --cluster-yes > %s/cluster-create.log 2>&1", replicas,
             rh_dir(c->node[0]));
    int st = system(cmd);
    if (st != 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "cluster_harness: %s failed (see %s/cluster-create.log)\n", cmd,
                rh_dir(c->node[0]));
        return -1;
    }
    return 0;
}

static rc_cluster *start(int primaries, int replicas, const char *const *extra,
                         const char *const *tls_args, const char *ca)
{
    rc_cluster *c = calloc(1, sizeof *c);
    int n = primaries * (1 + replicas);
    if (c == NULL || n > RC_NODES_MAX || primaries < 3) {
        free(c);
        return NULL; /* redis-cli --cluster create wants three primaries at least */
    }
    if (ca != NULL)
        snprintf(c->ca, sizeof c->ca, "%s", ca);
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", RC_NODE_TIMEOUT_MS);
    const char *args[32] = {
        "--cluster-enabled",      "yes",   "--cluster-config-file",           "nodes.conf",
        "--cluster-node-timeout", timeout, "--cluster-require-full-coverage", "no"};
    int na = 8;
    for (const char *const *a = extra; a != NULL && *a != NULL && na < 31; a++)
        args[na++] = *a;
    args[na] = NULL;
    for (c->n = 0; c->n < n; c->n++)
        if ((c->node[c->n] = start_node(args, tls_args != NULL, tls_args, &c->tls_port[c->n])) ==
            NULL) {
            rc_stop(c);
            return NULL;
        }
    for (int i = 0; i < 2; i++)
        snprintf(c->seeds + strlen(c->seeds), sizeof c->seeds - strlen(c->seeds), "%s%s:%d",
                 i ? "," : "", rh_host(c->node[i]),
                 c->tls_port[i] ? c->tls_port[i] : rh_port(c->node[i]));
    if (create(c, replicas) != 0 || !rh_wait_for(rc_ok, c, RC_JOIN_MS)) {
        fprintf(stderr, "cluster_harness: the cluster did not become ok\n");
        rc_stop(c);
        return NULL;
    }
    return c;
}

rc_cluster *rc_start(int primaries, int replicas, const char *const *extra)
{
    return start(primaries, replicas, extra, NULL, NULL);
}

rc_cluster *rc_start_tls(int primaries, int replicas, const char *cert, const char *key,
                         const char *ca)
{
    const char *const tls_args[] = {"--tls-cert-file",
                                    cert,
                                    "--tls-key-file",
                                    key,
                                    "--tls-ca-cert-file",
                                    ca,
                                    "--tls-auth-clients",
                                    "optional",
                                    "--tls-cluster",
                                    "yes",
                                    "--tls-replication",
                                    "yes",
                                    NULL};
    return start(primaries, replicas, NULL, tls_args, ca);
}

int rc_tls_port(const rc_cluster *c, int i)
{
    return c->tls_port[i];
}

void rc_stop(rc_cluster *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < c->n; i++)
        rh_stop(c->node[i]);
    free(c);
}
