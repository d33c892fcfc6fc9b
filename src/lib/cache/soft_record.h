/* cache/soft_record.h: a tag's soft record as Redis stores it (soft_record.c). */
#ifndef STRATA_CACHE_SOFT_RECORD_H
#define STRATA_CACHE_SOFT_RECORD_H

#include <stddef.h>

#include "l1/tags.h"

/* The longest stored record: the version, then " <version>@<ms>" per retirement. */
#define SOFT_TAG_RECORD_MAX (16 + STRATA_TAG_SOFT_MAX * (1 + 16 + 1 + 20) + 1)

/* Writes r as text, readable in redis-cli ("<cur> <retired>@<ms> ..."; versions as 16 hex
 * digits, times in decimal ms), into buf (SOFT_TAG_RECORD_MAX bytes); returns its length. */
size_t strata__soft_tag_format(const tag_soft *r, char *buf);

/* Parses what strata__soft_tag_format wrote. Returns 0, or STRATA_EFORMAT (*r is then empty:
 * a record that cannot be read makes the entries it spoke for invalid, never fresh). */
int strata__soft_tag_parse(const char *s, size_t len, tag_soft *r);

#endif
