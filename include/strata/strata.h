/* strata.h: the umbrella header of libstrata, a two-tier cache (memory in front of Redis). */
#ifndef STRATA_H
#define STRATA_H

#include <strata/version.h>
#include <strata/errors.h>
#include <strata/key.h>
#include <strata/value.h>
#include <strata/stats.h>
#include <strata/l1.h>
#include <strata/cache.h>
#include <strata/ratelimit.h>
#include <strata/lease.h>
#include <strata/remember.h>
#include <strata/session.h>

#endif
