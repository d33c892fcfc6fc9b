/* conns.h: counting a worker's open HTTP connections, for the connection limit. */
#ifndef STRATA_SERVER_CONNS_H
#define STRATA_SERVER_CONNS_H

#include <stddef.h>

/* A set of connection pointers (one worker's; not thread-safe). */
typedef struct conns {
    void **slots; /* NULL: empty; TOMBSTONE: removed */
    size_t cap, count, used;
} conns;

/* Records c. Returns 1 if it was new, 0 if already known, -1 on out of memory. */
int conns_add(conns *s, void *c);
void conns_remove(conns *s, void *c);
void conns_free(conns *s);

#endif
