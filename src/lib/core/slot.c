/* core/slot.c: Redis Cluster's hash slots (see core/slot.h), and a short tag for every slot.
 *
 * Why a tag per slot: a key that must share a slot with another key is written
 * "...{<tag>}..." with the other key's tag. When the other key has no tag of its own and cannot
 * be written inside braces (it holds a '}'), its slot is known but no substring reaches it; any
 * string with the same CRC16 does. The table holds, for each slot, the smallest decimal number
 * hashing to it: 0, 1, 2, ... hashed in turn until every slot has one (a few hundred thousand
 * CRC16s of at most 7 bytes, once per process, only when such a key first appears).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/slot.h"

uint16_t strata__crc16(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = crc & 0x8000 ? (uint16_t)(crc << 1 ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

int strata__hash_tag(const char *key, size_t len, size_t *off, size_t *tag_len)
{
    const char *open = memchr(key, '{', len);
    if (open == NULL)
        return 0;
    size_t start = (size_t)(open - key) + 1;
    const char *close = memchr(key + start, '}', len - start);
    if (close == NULL || close == key + start)
        return 0; /* no '}' after the '{', or "{}": the whole key is hashed */
    *off = start;
    *tag_len = (size_t)(close - key) - start;
    return 1;
}

unsigned strata__key_slot(const char *key, size_t len)
{
    size_t off, n;
    if (strata__hash_tag(key, len, &off, &n))
        return strata__crc16(key + off, n) & (STRATA__SLOTS - 1);
    return strata__crc16(key, len) & (STRATA__SLOTS - 1);
}

static uint32_t slot_tags[STRATA__SLOTS];
static pthread_once_t slot_tags_once = PTHREAD_ONCE_INIT;

static void build_slot_tags(void)
{
    static unsigned char seen[STRATA__SLOTS];
    unsigned left = STRATA__SLOTS;
    char s[12];
    /* Every slot is reached well before 10^7 (about 180,000 numbers in practice). */
    for (uint32_t n = 0; left > 0 && n < 10000000; n++) {
        int len = snprintf(s, sizeof s, "%u", n);
        unsigned slot = strata__crc16(s, (size_t)len) & (STRATA__SLOTS - 1);
        if (!seen[slot]) {
            seen[slot] = 1;
            slot_tags[slot] = n;
            left--;
        }
    }
}

size_t strata__slot_tag(unsigned slot, char out[12])
{
    pthread_once(&slot_tags_once, build_slot_tags);
    return (size_t)snprintf(out, 12, "%u", slot_tags[slot & (STRATA__SLOTS - 1)]);
}
