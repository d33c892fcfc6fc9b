/* cache/reason.c: why the last call a thread completed was answered by L1 alone.
 *
 * A call's status says that it was (STRATA_OK_L1_ONLY); the reason is beside it, per thread like
 * errno, so that no call needs another out-parameter and no callback another argument: a call
 * clears it when it starts, a fallback sets it, and an operation sets its own just before its
 * callback runs (on the loop's thread, where the caller reads it).
 */
#include <strata/cache.h>
#include <strata/errors.h>

#include "cache/cache_internal.h"

static _Thread_local int reason;

int strata_fallback_reason(void)
{
    return reason;
}

void strata__reason_set(int r)
{
    reason = r;
}

int strata__reason_of(tier t, int failure)
{
    switch (failure) {
    case STRATA_EREADONLY:
        return STRATA_REASON_READ_ONLY;
    case STRATA_ETIMEDOUT:
        return STRATA_REASON_TIMEOUT;
    case STRATA_ENOMEM:
        return STRATA_REASON_OUT_OF_MEMORY;
    case STRATA_EUNAVAILABLE:
        return t.ops != NULL && t.ops->down(t.self) ? STRATA_REASON_BREAKER_OPEN
                                                    : STRATA_REASON_REDIS_DOWN;
    default:
        return STRATA_REASON_REDIS_ERROR;
    }
}
