/* core/token.c: unguessable tokens (session ids, lease tokens): see core/token.h.
 *
 * 128 bits from RAND_bytes (OpenSSL's CSPRNG: guessing a live token is as hard as guessing a
 * random 128-bit number), written in the URL-safe base64 alphabet without padding, so a token
 * travels in a URL path, a header or a Redis key unescaped: 21 characters of 6 bits and one of 2.
 */
#include <string.h>

#include <openssl/rand.h>
#include <strata/errors.h>

#include "core/token.h"

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int strata__token_new(char out[STRATA__TOKEN_LEN + 1])
{
    return strata__token_new_marked(out, 0);
}

int strata__token_new_marked(char out[STRATA__TOKEN_LEN + 1], int mark)
{
    unsigned char raw[17] = {0}; /* 128 bits, padded to a multiple of 3 bytes for encoding */
    if (RAND_bytes(raw, 16) != 1)
        return STRATA_ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < 15; i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
        out[o++] = b64url[v & 63];
    }
    out[o++] = b64url[raw[15] >> 2];
    out[o++] = b64url[(raw[15] & 3) << 4 | (mark ? 1 : 0)];
    out[o] = '\0';
    return 0;
}

int strata__token_check(const char *s)
{
    if (s == NULL || strnlen(s, STRATA__TOKEN_LEN + 1) != STRATA__TOKEN_LEN)
        return STRATA_EINVAL;
    for (size_t i = 0; i < STRATA__TOKEN_LEN; i++)
        if (strchr(b64url, s[i]) == NULL)
            return STRATA_EINVAL;
    return 0;
}

int strata__token_mark(const char *token)
{
    const char *at = strchr(b64url, token[STRATA__TOKEN_LEN - 1]);
    return at != NULL && ((at - b64url) & 1);
}
