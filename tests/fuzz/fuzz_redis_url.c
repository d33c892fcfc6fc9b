/* fuzz_redis_url.c: the REDIS_URL parser (src/lib/redis_url.c), which reads configuration text.
 *
 * Whatever the bytes, it must answer 0 or STRATA_EBADURL, say why when it refuses, and when it
 * accepts, fill every field within bounds (NUL-terminated parts, a port in 1..65535, a db >= 0).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <strata/errors.h>

#include "redis/redis_url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    redis_url u;
    const char *why = NULL;
    int rc = strata__redis_url_parse(s, &u, &why);
    if (rc == 0) {
        if (memchr(u.host, '\0', sizeof u.host) == NULL ||
            memchr(u.path, '\0', sizeof u.path) == NULL ||
            memchr(u.user, '\0', sizeof u.user) == NULL ||
            memchr(u.password, '\0', sizeof u.password) == NULL)
            abort();
        if (u.port < 1 || u.port > 65535 || u.db < 0 || (u.host[0] == '\0') == (u.path[0] == '\0'))
            abort();
    } else if (rc != STRATA_EBADURL || why == NULL || why[0] == '\0') {
        abort();
    }
    free(s);
    return 0;
}
