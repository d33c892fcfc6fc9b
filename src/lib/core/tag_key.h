/* tag_key.h: the stored keys of tag versions in the shared tier (built in key.c). */
#ifndef STRATA_TAG_KEY_H
#define STRATA_TAG_KEY_H

#include <stddef.h>

#include <strata/l1.h>

#define STRATA_TAG_KEY_MAX (STRATA_PREFIX_MAX + STRATA_NAME_MAX + STRATA_TAG_MAX + 8)

/* <prefix>:!tag:<tenant>:<tag>. Returns 0, STRATA_EBADNAME or STRATA_ERANGE. */
int strata__tag_key_build(const char *prefix, const char *tenant, const char *tag, char *buf,
                          size_t cap, size_t *out_len);

/* The tenant and tag of a tag key (pointing into stored), or STRATA_EINVAL if it is not one. */
int strata__tag_key_parse(const char *prefix, const char *stored, size_t len, const char **tenant,
                          size_t *tenant_len, const char **tag, size_t *tag_len);

#endif
