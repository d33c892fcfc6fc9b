/* fuzz_cluster_slots.c: what strata reads of a Redis Cluster node's answers
 * (src/lib/redis/cluster_map.c): CLUSTER SLOTS into a slot map, and MOVED / ASK redirections.
 * The bytes are RESP, read by hiredis as the client reads them.
 *
 * Whatever the answer, the map is either refused with a reason or within bounds: every slot
 * names a primary the map has (or none), the covered count matches, every host is terminated and
 * every port in 1..65535; a redirection names a slot below 16384 and a port in 1..65535.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <strata/errors.h>

#include "redis/cluster_map.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_map(const cluster_map *m)
{
    unsigned covered = 0;
    for (unsigned s = 0; s < CLUSTER_SLOTS; s++) {
        if (m->slot[s] == CLUSTER_NO_NODE)
            continue;
        if (m->slot[s] >= m->nprimaries)
            abort();
        covered++;
    }
    if (covered != m->covered || m->nprimaries > CLUSTER_PRIMARIES)
        abort();
    for (unsigned i = 0; i < m->nprimaries; i++)
        if (memchr(m->primary[i].host, '\0', sizeof m->primary[i].host) == NULL ||
            m->primary[i].port < 1 || m->primary[i].port > 65535)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cluster_map m;
    redisReader *rd = redisReaderCreate();
    redisReaderFeed(rd, (const char *)data, size);
    void *r = NULL;
    while (redisReaderGetReply(rd, &r) == REDIS_OK && r != NULL) {
        const char *why = NULL;
        int rc = strata__cluster_map_parse(r, "127.0.0.1", &m, &why);
        if (rc == 0)
            check_map(&m);
        else if (rc != STRATA_EPROTO || why == NULL)
            abort();
        int ask;
        unsigned slot;
        cluster_addr to;
        if (strata__cluster_redirect(r, &ask, &slot, &to) == 1 &&
            (slot >= CLUSTER_SLOTS || to.port < 1 || to.port > 65535 ||
             memchr(to.host, '\0', sizeof to.host) == NULL))
            abort();
        freeReplyObject(r);
        r = NULL;
    }
    redisReaderFree(rd);
    return 0;
}
