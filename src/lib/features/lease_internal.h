/* features/lease_internal.h: what unit tests set on a leases object beyond its public API. */
#ifndef STRATA_FEATURES_LEASE_INTERNAL_H
#define STRATA_FEATURES_LEASE_INTERNAL_H

#include <stddef.h>

#include <strata/lease.h>

/* Replaces the local table with an empty one of at most max leases (STRATA_LEASE_LOCAL_MAX by
 * default), so a test reaches the bound with a few keys. Call before use. Returns 0 or
 * STRATA_ENOMEM. */
int strata__leases_local_max(strata_leases *ls, size_t max);

#endif
