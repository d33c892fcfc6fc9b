/* fuzz_format.c: the decoder of stored values read from Redis (src/lib/format.c).
 *
 * Redis is shared: anything may sit under a strata key (another version of strata, redis-cli, a
 * bug). The decoder must never read past the bytes it is given, and whatever it accepts must
 * re-encode to exactly the same bytes (so it cannot half-understand a value).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A heap copy of exactly size bytes, so ASan sees any read past the end. */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    format_view v;
    if (strata__format_decode(buf, size, &v) == 0) {
        size_t n = strata__format_size(&v);
        char *out = malloc(n ? n : 1);
        if (n != size || strata__format_encode(&v, out) != size || memcmp(out, buf, size) != 0)
            abort();
        free(out);
    }
    free(buf);
    return 0;
}
