/* namespaces.h: STRATA_NAMESPACES, the settings of each namespace, applied to L1.
 *
 * Parsed and applied once at start; a bad entry stops the server with the entry named. */
#ifndef STRATA_SERVER_NAMESPACES_H
#define STRATA_SERVER_NAMESPACES_H

#include <stddef.h>

#include <strata/strata.h>

/* Applies spec ("llm:ttl=86400,max_ttl=604800;api:ttl=30,quota=64M"; NULL or "" is nothing).
 * Returns 0, or -1 with the reason in err. */
int namespaces_apply(strata_l1 *l1, const char *spec, char *err, size_t cap);

#endif
