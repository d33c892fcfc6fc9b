/* expiry.h: a min-heap of entries by deadline, one per shard, for active expiry. */
#ifndef STRATA_EXPIRY_H
#define STRATA_EXPIRY_H

#include <stddef.h>
#include <stdint.h>

#include "l1/entry.h"

typedef struct expiry_heap {
    struct strata_value **items;
    size_t len, cap;
    size_t bytes; /* the items array, charged to the shard */
} expiry_heap;

/* Adds e (entry_deadline(e) must be finite). Returns 0, or -1 when the heap cannot grow. */
int strata__expiry_push(expiry_heap *h, struct strata_value *e);
/* Removes e, wherever it is. */
void strata__expiry_remove(expiry_heap *h, struct strata_value *e);
/* Restores order after e's deadline changed. */
void strata__expiry_update(expiry_heap *h, struct strata_value *e);
/* The entry with the earliest deadline, or NULL. */
static inline struct strata_value *strata__expiry_peek(const expiry_heap *h)
{
    return h->len ? h->items[0] : NULL;
}
void strata__expiry_free(expiry_heap *h);

#endif
