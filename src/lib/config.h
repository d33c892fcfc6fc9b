/* config.h: parsing of settings given as text (environment variables, flags). */
#ifndef STRATA_CONFIG_H
#define STRATA_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* Parses a byte size: digits with an optional K, M, G (or KiB, MiB, GiB; powers of 1024) suffix,
 * e.g. "67108864", "64M", "64MiB". Returns 0 and sets *out, or STRATA_ERANGE for anything else,
 * zero, or overflow. */
int strata__parse_size(const char *s, size_t *out);

#endif
