/* session.c: session ids and where sessions live (see include/strata/session.h).
 *
 * Reading, writing and sliding a session are cache calls on strata_session_key() with
 * STRATA_SET_PINNED, so they get everything the cache does (both tiers, the async path, the
 * fallback); what is session-specific is only here: ids that cannot be guessed and the reserved
 * namespace, which HTTP clients cannot name and unnamed clears and listings skip. Ids are
 * core/token.c's tokens, the same generator as lease tokens.
 */
#include <string.h>

#include <strata/errors.h>
#include <strata/session.h>

#include "core/token.h"

_Static_assert(STRATA_SESSION_ID_LEN == STRATA__TOKEN_LEN, "session ids are core/token.c's tokens");

int strata_session_new_id(char id[STRATA_SESSION_ID_LEN + 1])
{
    return strata__token_new(id);
}

int strata_session_id_check(const char *id)
{
    return strata__token_check(id);
}

strata_key strata_session_key(const char *tenant, const char *id)
{
    strata_key k = {STRATA_SESSION_NS, tenant, id, id ? strlen(id) : 0};
    return k;
}
