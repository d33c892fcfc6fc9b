/* config.h: parsing of settings given as text (environment variables, flags). */
#ifndef STRATA_CONFIG_H
#define STRATA_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* Parses a byte size: digits with an optional K, M, G (or KiB, MiB, GiB; powers of 1024) suffix,
 * e.g. "67108864", "64M", "64MiB". Returns 0 and sets *out, or STRATA_ERANGE for anything else,
 * zero, or overflow. */
int strata__parse_size(const char *s, size_t *out);

/* Why strata__parse_size refused s, as one line naming the part at fault ("\"MB\" is not a
 * size suffix: ..."), written to buf (cap bytes). */
void strata__size_why(const char *s, char *buf, size_t cap);

/* true/false, 1/0, yes/no, on/off (any case). Returns 0 or STRATA_ERANGE. */
int strata__parse_bool(const char *s, int *out);

/* Seconds with an optional fraction ("0.2", "5") into milliseconds, within (0, max_s]; a
 * non-zero value below 1 ms is 1 ms. Returns 0 or STRATA_ERANGE. */
int strata__parse_seconds(const char *s, double max_s, unsigned *out_ms);

/* A whole number within [lo, hi]. Returns 0 or STRATA_ERANGE. */
int strata__parse_uint(const char *s, unsigned long lo, unsigned long hi, unsigned long *out);

#endif
