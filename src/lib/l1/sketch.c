/* sketch.c: the frequency sketch behind W-TinyLFU admission (after Caffeine's FrequencySketch).
 *
 * Each item maps to four 4-bit counters, one in each of four words chosen by differently seeded
 * hashes, all in the same 16-counter group; its frequency is the smallest of the four, so
 * collisions can only overestimate. When the number of increments reaches ten times the width,
 * every counter is halved ("aging"), so the sketch tracks recent popularity, not all-time
 * popularity, and a once-hot key cannot squat forever. 4 bits cap a count at 15: admission only
 * needs to compare, and small counters keep the sketch to 8 bytes per 16 counters.
 */
#include <malloc.h>
#include <stdlib.h>

#include "l1/sketch.h"

static const uint64_t seeds[4] = {0xc3a5c85c97cb3127ULL, 0xb492b66fbe98f273ULL,
                                  0x9ae16a3b2f90404fULL, 0xcbf29ce484222325ULL};

int strata__sketch_ensure(sketch *s, size_t entries)
{
    size_t words = 64;
    while (words < entries && words < ((size_t)1 << 26))
        words <<= 1;
    if (s->table != NULL && words <= s->mask + 1)
        return 0;
    uint64_t *t = calloc(words, sizeof *t);
    if (t == NULL)
        return -1;
    free(s->table);
    s->table = t;
    s->mask = words - 1;
    s->size = 0;
    s->sample = 10 * words;
    s->bytes = malloc_usable_size(t) + sizeof(size_t);
    return 0;
}

void strata__sketch_free(sketch *s)
{
    free(s->table);
    s->table = NULL;
    s->bytes = 0;
}

static size_t index_of(const sketch *s, uint64_t hash, int i)
{
    uint64_t h = (hash + seeds[i]) * seeds[i];
    h += h >> 32;
    return (size_t)h & s->mask;
}

static uint64_t spread(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 33);
}

static void age(sketch *s)
{
    size_t odd = 0;
    for (size_t i = 0; i <= s->mask; i++) {
        odd += (size_t)__builtin_popcountll(s->table[i] & 0x1111111111111111ULL);
        s->table[i] = (s->table[i] >> 1) & 0x7777777777777777ULL;
    }
    s->size = (s->size >> 1) - (odd >> 2);
}

void strata__sketch_increment(sketch *s, uint64_t hash)
{
    if (s->table == NULL)
        return;
    uint64_t h = spread(hash);
    unsigned start = (unsigned)(h & 3) << 2;
    int added = 0;
    for (int i = 0; i < 4; i++) {
        size_t idx = index_of(s, h, i);
        unsigned shift = (start + (unsigned)i) << 2;
        uint64_t mask = 0xfULL << shift;
        if ((s->table[idx] & mask) != mask) {
            s->table[idx] += 1ULL << shift;
            added = 1;
        }
    }
    if (added && ++s->size >= s->sample)
        age(s);
}

unsigned strata__sketch_frequency(const sketch *s, uint64_t hash)
{
    if (s->table == NULL)
        return 0;
    uint64_t h = spread(hash);
    unsigned start = (unsigned)(h & 3) << 2, freq = 15;
    for (int i = 0; i < 4; i++) {
        size_t idx = index_of(s, h, i);
        unsigned c = (unsigned)(s->table[idx] >> ((start + (unsigned)i) << 2)) & 0xfu;
        if (c < freq)
            freq = c;
    }
    return freq;
}
