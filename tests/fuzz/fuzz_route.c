/* fuzz_route.c: request routing and path parameters (src/server/route.c) on arbitrary paths.
 *
 * The path comes straight from the network. Whatever its bytes, route_match must not read past
 * the path's NUL or write past the route struct, and what it accepts must hold its promises: a
 * matched key is non-empty, at most the key limit, valid UTF-8 without control characters, and
 * NUL-terminated at its length; a matched namespace is a valid name. Percent-decoding must be
 * strict (every '%' followed by two hex digits) and round-trip through re-encoding. The same
 * input also feeds the parameter parsers (codec.c): ttl, Cache-Control max-age, tag lists,
 * If-Match / If-None-Match lists, base64 values.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "route.h"
#include "fuzz_check.h"

static void check_route(const char *path, size_t key_max)
{
    route r;
    route_match(path, key_max, &r);
    CHECK(r.id >= 0 && r.id < R_COUNT);
    CHECK(route_name(r.id) != NULL);
    if (r.id == R_NOT_FOUND || r.error != NULL) {
        CHECK(r.error == NULL || r.error_code != NULL);
        CHECK(r.error == NULL || route_error_status(&r) == 400 || route_error_status(&r) == 414);
        return;
    }
    CHECK(r.methods != 0);
    if (r.id == R_KV || r.id == R_INSPECT) {
        CHECK(r.key_len > 0 && r.key_len <= key_max);
        CHECK(r.key[r.key_len] == '\0');
        CHECK(route_text_ok(r.key, r.key_len));
    }
    if (r.id == R_KV || r.id == R_INSPECT || r.id == R_MGET || r.id == R_MSET)
        CHECK(strata_name_check(r.ns) == 0);
}

static void check_decode(const char *s, size_t n)
{
    char out[512], again[1600];
    long len = route_percent_decode(s, n, out, sizeof out);
    if (len < 0)
        return;
    CHECK((size_t)len < sizeof out && out[len] == '\0');
    /* Re-encode every byte and decode again: the same bytes come back. */
    size_t o = 0;
    for (long i = 0; i < len; i++)
        o += (size_t)snprintf(again + o, sizeof again - o, "%%%02X", (unsigned char)out[i]);
    char back[512];
    CHECK(route_percent_decode(again, o, back, sizeof back) == len);
    CHECK(memcmp(back, out, (size_t)len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *path = malloc(size + 1);
    memcpy(path, data, size);
    path[size] = '\0';
    size_t key_max = size > 0 ? (size_t)(data[0] % 64) + 1 : 512;
    check_route(path, key_max);
    check_route(path, 512);
    check_decode(path, size < 400 ? size : 400);
    route_text_ok(path, size);
    route_utf8_ok(path, size);

    uint64_t ms;
    if (codec_ttl(path, &ms) == 0)
        CHECK(ms >= 1000 && ms % 1000 == 0);
    if (codec_max_age(path, &ms) == 0 && ms != 0)
        CHECK(ms >= 1000);
    codec_etag_listed(path, "\"0123456789abcdef\"");
    char *copy = strdup(path);
    const char *tags[32];
    int n = codec_split_tags(copy, tags, 32);
    CHECK(n >= -1 && n <= 32);
    for (int i = 0; i < n; i++)
        CHECK(tags[i][0] != '\0' && strchr(tags[i], ',') == NULL);
    free(copy);
    unsigned char *bin;
    size_t blen;
    if (codec_b64_decode(path, size, &bin, &blen) == 0) {
        CHECK(blen <= size / 4 * 3);
        free(bin);
    }
    free(path);
    return 0;
}
