/* expiry.c: the per-shard expiry heap.
 *
 * Entries with a TTL sit in a binary min-heap keyed by their deadline (expiry plus grace), each
 * remembering its index so delete and touch are O(log n). Maintenance pops from the top while the
 * deadline has passed: finding all dead entries costs only as much as there are, so expired entries
 * do not sit in memory waiting for a read that never comes. A timer wheel would be O(1) but needs
 * a tick; the heap is exact and the shards keep each one small.
 */
#include <malloc.h>
#include <stdlib.h>

#include "l1/expiry.h"

static void place(expiry_heap *h, size_t i, struct strata_value *e)
{
    h->items[i] = e;
    e->heap_idx = (int32_t)i;
}

static void sift_up(expiry_heap *h, size_t i)
{
    struct strata_value *e = h->items[i];
    uint64_t d = entry_deadline(e);
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (entry_deadline(h->items[parent]) <= d)
            break;
        place(h, i, h->items[parent]);
        i = parent;
    }
    place(h, i, e);
}

static void sift_down(expiry_heap *h, size_t i)
{
    struct strata_value *e = h->items[i];
    uint64_t d = entry_deadline(e);
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->len)
            break;
        if (child + 1 < h->len &&
            entry_deadline(h->items[child + 1]) < entry_deadline(h->items[child]))
            child++;
        if (d <= entry_deadline(h->items[child]))
            break;
        place(h, i, h->items[child]);
        i = child;
    }
    place(h, i, e);
}

int strata__expiry_push(expiry_heap *h, struct strata_value *e)
{
    if (h->len == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        struct strata_value **items = realloc(h->items, cap * sizeof *items);
        if (items == NULL)
            return -1;
        h->items = items;
        h->cap = cap;
        h->bytes = malloc_usable_size(items) + sizeof(size_t);
    }
    h->items[h->len++] = e;
    sift_up(h, h->len - 1);
    return 0;
}

void strata__expiry_remove(expiry_heap *h, struct strata_value *e)
{
    size_t i = (size_t)e->heap_idx;
    e->heap_idx = -1;
    struct strata_value *last = h->items[--h->len];
    if (i == h->len)
        return;
    place(h, i, last);
    sift_up(h, i);
    sift_down(h, (size_t)last->heap_idx);
}

void strata__expiry_update(expiry_heap *h, struct strata_value *e)
{
    sift_up(h, (size_t)e->heap_idx);
    sift_down(h, (size_t)e->heap_idx);
}

void strata__expiry_free(expiry_heap *h)
{
    free(h->items);
    h->items = NULL;
    h->len = h->cap = h->bytes = 0;
}
