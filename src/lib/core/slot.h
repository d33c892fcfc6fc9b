/* core/slot.h: Redis Cluster's hash slots: which of the 16384 slots a key lives in.
 *
 * Redis Cluster hashes a key by the content of its first "{...}" when that is not empty (the hash
 * tag), else by the whole key: slot = CRC16(that) mod 16384, CRC16 being CRC-16/XMODEM (Redis'
 * crc16.c). Keys that must be used together by one script are given the same slot this way. */
#ifndef STRATA_CORE_SLOT_H
#define STRATA_CORE_SLOT_H

#include <stddef.h>
#include <stdint.h>

#define STRATA__SLOTS 16384

/* CRC-16/XMODEM (poly 0x1021, init 0, no reflection): crc16("123456789") = 0x31C3. */
uint16_t strata__crc16(const void *buf, size_t len);

/* The hash tag of key[0..len): 1 with *off and *tag_len set (the content of the first "{...}",
 * non-empty), or 0 when the key has none (Redis then hashes the whole key). */
int strata__hash_tag(const char *key, size_t len, size_t *off, size_t *tag_len);

/* The slot Redis Cluster puts key[0..len) in. */
unsigned strata__key_slot(const char *key, size_t len);

/* A short decimal string whose slot is slot (0..16383): the smallest number with that slot, so a
 * key "{<it>}..." lands in slot. From a table built once, on first use (thread-safe). Returns
 * the string's length (written to out, NUL-terminated). */
size_t strata__slot_tag(unsigned slot, char out[12]);

#endif
