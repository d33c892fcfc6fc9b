/* session.c: session ids and where sessions live (see include/strata/session.h).
 *
 * Reading, writing and sliding a session are cache calls on strata_session_key() with
 * STRATA_SET_PINNED, so they get everything the cache does (both tiers, the async path, the
 * fallback); what is session-specific is only here: ids that cannot be guessed and the reserved
 * namespace, which HTTP clients cannot name and unnamed clears and listings skip.
 */
#include <string.h>

#include <openssl/rand.h>
#include <strata/errors.h>
#include <strata/session.h>

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int strata_session_new_id(char id[STRATA_SESSION_ID_LEN + 1])
{
    unsigned char raw[17] = {0}; /* 128 bits, padded to a multiple of 3 bytes for encoding */
    if (RAND_bytes(raw, 16) != 1)
        return STRATA_ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < 15; i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
        id[o++] = b64url[v >> 18 & 63];
        id[o++] = b64url[v >> 12 & 63];
        id[o++] = b64url[v >> 6 & 63];
        id[o++] = b64url[v & 63];
    }
    id[o++] = b64url[raw[15] >> 2];
    id[o++] = b64url[(raw[15] & 3) << 4];
    id[o] = '\0';
    return 0;
}

int strata_session_id_check(const char *id)
{
    if (id == NULL || strlen(id) != STRATA_SESSION_ID_LEN)
        return STRATA_EINVAL;
    for (size_t i = 0; i < STRATA_SESSION_ID_LEN; i++)
        if (strchr(b64url, id[i]) == NULL || id[i] == '\0')
            return STRATA_EINVAL;
    return 0;
}

strata_key strata_session_key(const char *tenant, const char *id)
{
    strata_key k = {STRATA_SESSION_NS, tenant, id, id ? strlen(id) : 0};
    return k;
}
