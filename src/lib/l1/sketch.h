/* sketch.h: a count-min sketch of 4-bit counters, the frequency filter of W-TinyLFU. */
#ifndef STRATA_SKETCH_H
#define STRATA_SKETCH_H

#include <stddef.h>
#include <stdint.h>

typedef struct sketch {
    uint64_t *table; /* 16 four-bit counters per word */
    size_t mask;     /* words - 1 */
    size_t size;     /* increments since the last aging */
    size_t sample;   /* age (halve every counter) after this many increments */
    size_t bytes;    /* allocation charged to the owner's memory bound */
} sketch;

/* Sizes the sketch for about `entries` items (at least 64 words). Keeps the old table on
 * allocation failure; a resize starts counts from zero, as Caffeine does. Returns 0 or -1. */
int strata__sketch_ensure(sketch *s, size_t entries);
void strata__sketch_free(sketch *s);
void strata__sketch_increment(sketch *s, uint64_t hash);
unsigned strata__sketch_frequency(const sketch *s, uint64_t hash);

#endif
