/* redis/cluster_map.c: key slots, CLUSTER SLOTS and redirections (cluster_map.h). */
#include <stdlib.h>
#include <string.h>

#include <strata/errors.h>

#include "core/slot.h"
#include "redis/cluster_map.h"

/* The index of addr among the map's primaries, added when new; -1 when the map is full. */
static int primary_index(cluster_map *m, const cluster_addr *addr)
{
    for (unsigned i = 0; i < m->nprimaries; i++)
        if (m->primary[i].port == addr->port && strcmp(m->primary[i].host, addr->host) == 0)
            return (int)i;
    if (m->nprimaries == CLUSTER_PRIMARIES)
        return -1;
    m->primary[m->nprimaries] = *addr;
    return (int)m->nprimaries++;
}

static int fail(const char **why, const char *msg)
{
    if (why != NULL)
        *why = msg;
    return STRATA_EPROTO;
}

/* A node entry of CLUSTER SLOTS: [host, port, id, ...]. */
static int read_node(const redisReply *n, const char *asked_host, cluster_addr *out,
                     const char **why)
{
    if (n->type != REDIS_REPLY_ARRAY || n->elements < 2 ||
        n->element[0]->type != REDIS_REPLY_STRING || n->element[1]->type != REDIS_REPLY_INTEGER)
        return fail(why, "CLUSTER SLOTS: a node is not [host, port, ...]");
    const char *host = n->element[0]->str;
    if (n->element[0]->len == 0 || strcmp(host, "?") == 0)
        host = asked_host;
    if (strlen(host) >= sizeof out->host || memchr(n->element[0]->str, '\0', n->element[0]->len))
        return fail(why, "CLUSTER SLOTS: a node's host is too long or not text");
    long long port = n->element[1]->integer;
    if (port < 1 || port > 65535)
        return fail(why, "CLUSTER SLOTS: a node's port is not 1-65535");
    memcpy(out->host, host, strlen(host) + 1);
    out->port = (int)port;
    return 0;
}

int strata__cluster_map_parse(const redisReply *r, const char *asked_host, cluster_map *out,
                              const char **why)
{
    memset(out->slot, CLUSTER_NO_NODE, sizeof out->slot);
    out->nprimaries = 0;
    out->covered = 0;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return fail(why, "CLUSTER SLOTS: the answer is not an array");
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER)
            return fail(why, "CLUSTER SLOTS: a range is not [start, end, primary, ...]");
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        if (lo < 0 || hi < lo || hi >= CLUSTER_SLOTS)
            return fail(why, "CLUSTER SLOTS: a range is outside 0-16383");
        cluster_addr a;
        int rc = read_node(e->element[2], asked_host, &a, why);
        if (rc != 0)
            return rc;
        int idx = primary_index(out, &a);
        if (idx < 0)
            return fail(why, "CLUSTER SLOTS: more primaries than strata follows (64)");
        for (long long s = lo; s <= hi; s++) {
            if (out->slot[s] == CLUSTER_NO_NODE)
                out->covered++;
            out->slot[s] = (uint8_t)idx;
        }
    }
    return 0;
}

int strata__cluster_redirect(const redisReply *r, int *ask, unsigned *slot, cluster_addr *to)
{
    if (r == NULL || r->type != REDIS_REPLY_ERROR || r->str == NULL)
        return 0;
    const char *p;
    if (strncmp(r->str, "MOVED ", 6) == 0)
        *ask = 0, p = r->str + 6;
    else if (strncmp(r->str, "ASK ", 4) == 0)
        *ask = 1, p = r->str + 4;
    else
        return 0;
    char *end;
    unsigned long s = strtoul(p, &end, 10);
    if (end == p || *end != ' ' || s >= CLUSTER_SLOTS)
        return 0;
    const char *addr = end + 1, *colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= sizeof to->host)
        return 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || port < 1 || port > 65535)
        return 0;
    memcpy(to->host, addr, (size_t)(colon - addr));
    to->host[colon - addr] = '\0';
    to->port = (int)port;
    *slot = (unsigned)s;
    return 1;
}

/* ---- the routing table -------------------------------------------------------------------- */

void strata__cluster_table_init(cluster_table *t)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->add_lock, NULL);
    for (unsigned s = 0; s < CLUSTER_SLOTS; s++)
        atomic_init(&t->slot[s], CLUSTER_NO_NODE);
}

void strata__cluster_table_destroy(cluster_table *t)
{
    pthread_mutex_destroy(&t->add_lock);
}

static int find_node(const cluster_table *t, unsigned n, const cluster_addr *addr)
{
    for (unsigned i = 0; i < n; i++)
        if (t->node[i].port == addr->port && strcmp(t->node[i].host, addr->host) == 0)
            return (int)i;
    return -1;
}

int strata__cluster_table_node(cluster_table *t, const cluster_addr *addr)
{
    int i = find_node(t, atomic_load_explicit(&t->nnodes, memory_order_acquire), addr);
    if (i >= 0)
        return i;
    pthread_mutex_lock(&t->add_lock);
    unsigned n = atomic_load_explicit(&t->nnodes, memory_order_relaxed);
    if ((i = find_node(t, n, addr)) < 0 && n < CLUSTER_NODES_MAX) {
        t->node[n] = *addr; /* written before the count that publishes it */
        atomic_store_explicit(&t->nnodes, n + 1, memory_order_release);
        i = (int)n;
    }
    pthread_mutex_unlock(&t->add_lock);
    return i;
}

int strata__cluster_table_install(cluster_table *t, const cluster_map *m)
{
    int index[CLUSTER_PRIMARIES] = {0}, changed = 0;
    for (unsigned i = 0; i < m->nprimaries; i++)
        if ((index[i] = strata__cluster_table_node(t, &m->primary[i])) < 0)
            return -1;
    for (unsigned s = 0; s < CLUSTER_SLOTS; s++) {
        unsigned char want =
            m->slot[s] == CLUSTER_NO_NODE ? CLUSTER_NO_NODE : (unsigned char)index[m->slot[s]];
        if (atomic_load_explicit(&t->slot[s], memory_order_relaxed) != want) {
            atomic_store_explicit(&t->slot[s], want, memory_order_release); /* after node[] */
            changed = 1;
        }
    }
    unsigned before = atomic_load(&t->nprimaries);
    changed |= before != m->nprimaries;
    for (unsigned i = 0; i < m->nprimaries; i++) {
        changed |= i >= before || atomic_load(&t->primary[i]) != index[i];
        atomic_store(&t->primary[i], (unsigned char)index[i]);
    }
    atomic_store(&t->nprimaries, m->nprimaries);
    return changed;
}

int strata__cluster_table_route(const cluster_table *t, unsigned slot)
{
    unsigned char n =
        atomic_load_explicit(&t->slot[slot & (CLUSTER_SLOTS - 1)], memory_order_acquire);
    return n == CLUSTER_NO_NODE ? -1 : n;
}

const cluster_addr *strata__cluster_table_addr(const cluster_table *t, int i)
{
    return &t->node[i];
}

unsigned strata__cluster_table_primaries(const cluster_table *t, int *out, unsigned cap)
{
    unsigned n = atomic_load(&t->nprimaries);
    for (unsigned i = 0; i < n && i < cap; i++)
        out[i] = atomic_load(&t->primary[i]);
    return n;
}
