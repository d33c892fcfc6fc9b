/* core/token.h: unguessable tokens: 128 bits from OpenSSL's CSPRNG, URL-safe base64, 22 bytes.
 *
 * Session ids (features/session.c) and lease tokens (features/lease.c) are both such tokens; this
 * is the one generator and the one check of their form. */
#ifndef STRATA_CORE_TOKEN_H
#define STRATA_CORE_TOKEN_H

#define STRATA__TOKEN_LEN 22

/* Fills out with a new token (NUL-terminated). Returns 0 or STRATA_ENOMEM (no randomness). */
int strata__token_new(char out[STRATA__TOKEN_LEN + 1]);

/* 0 when s has a token's form (22 bytes of the URL-safe base64 alphabet), STRATA_EINVAL
 * otherwise (NULL included). */
int strata__token_check(const char *s);

#endif
