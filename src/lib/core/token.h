/* core/token.h: unguessable tokens: 128 bits from OpenSSL's CSPRNG, URL-safe base64, 22 bytes.
 *
 * Session ids (features/session.c) and lease tokens (features/lease.c) are both such tokens; this
 * is the one generator and the one check of their form. */
#ifndef STRATA_CORE_TOKEN_H
#define STRATA_CORE_TOKEN_H

#define STRATA__TOKEN_LEN 22

/* Fills out with a new token (NUL-terminated). Returns 0 or STRATA_ENOMEM (no randomness). */
int strata__token_new(char out[STRATA__TOKEN_LEN + 1]);

/* A new token that carries a mark (mark 1) or not (0), for issuers that must tell their tokens
 * apart (leases: granted by this process alone, or by Redis). The mark is a padding bit of the
 * last character (base64 of 128 bits leaves 4 unused there): the 128 random bits are whole. */
int strata__token_new_marked(char out[STRATA__TOKEN_LEN + 1], int mark);
/* The mark of a token of the right form: 1 or 0. */
int strata__token_mark(const char *token);

/* 0 when s has a token's form (22 bytes of the URL-safe base64 alphabet), STRATA_EINVAL
 * otherwise (NULL included). */
int strata__token_check(const char *s);

#endif
