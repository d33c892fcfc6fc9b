/* conns.c: the set of a worker's open connections.
 *
 * libevent 2.1's evhttp gives no hook when it accepts a connection (evhttp_set_newreqcb came in
 * 2.2), so a connection is counted at its first request and uncounted by its close callback. A
 * small open-addressing set of pointers answers "seen it already?" in O(1); tombstones keep
 * probing correct after removals, and the table is rebuilt when they pile up.
 */
#include <stdint.h>
#include <stdlib.h>

#include "conns.h"

static char tombstone_mark;
#define TOMBSTONE ((void *)&tombstone_mark)

static size_t slot_of(const conns *s, void *c)
{
    uintptr_t h = (uintptr_t)c;
    h ^= h >> 17;
    h *= 0xed5ad4bbu;
    h ^= h >> 11;
    return (size_t)h & (s->cap - 1);
}

static int rebuild(conns *s, size_t cap)
{
    void **old = s->slots;
    size_t old_cap = s->cap;
    s->slots = calloc(cap, sizeof *s->slots);
    if (s->slots == NULL) {
        s->slots = old;
        return -1;
    }
    s->cap = cap;
    s->count = s->used = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i] != NULL && old[i] != TOMBSTONE)
            conns_add(s, old[i]);
    free(old);
    return 0;
}

int conns_add(conns *s, void *c)
{
    if ((s->used + 1) * 2 > s->cap) {
        size_t cap = 64; /* a power of two: slots are picked with cap - 1 as a mask */
        while (cap < s->count * 4)
            cap *= 2;
        if (rebuild(s, cap) != 0)
            return -1;
    }
    size_t i = slot_of(s, c), free_at = SIZE_MAX;
    for (;; i = (i + 1) & (s->cap - 1)) {
        if (s->slots[i] == c)
            return 0;
        if (s->slots[i] == TOMBSTONE && free_at == SIZE_MAX)
            free_at = i;
        if (s->slots[i] == NULL)
            break;
    }
    if (free_at == SIZE_MAX) {
        free_at = i;
        s->used++;
    }
    s->slots[free_at] = c;
    s->count++;
    return 1;
}

void conns_remove(conns *s, void *c)
{
    if (s->cap == 0)
        return;
    for (size_t i = slot_of(s, c); s->slots[i] != NULL; i = (i + 1) & (s->cap - 1))
        if (s->slots[i] == c) {
            s->slots[i] = TOMBSTONE;
            s->count--;
            return;
        }
}

void conns_free(conns *s)
{
    free(s->slots);
    s->slots = NULL;
    s->cap = s->count = s->used = 0;
}
