/* test_codec.c: the server's text formats (src/server/codec.c): base64 of values is taken only
 * when canonical, so what is stored is what the client encoded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"

static int decodes(const char *s, const char *want, size_t want_len)
{
    unsigned char *out = NULL;
    size_t len = 0;
    if (codec_b64_decode(s, strlen(s), &out, &len) != 0)
        return 0;
    int same = len == want_len && memcmp(out, want, len) == 0;
    free(out);
    return same;
}

static int refused(const char *s)
{
    unsigned char *out = NULL;
    size_t len = 0;
    int rc = codec_b64_decode(s, strlen(s), &out, &len);
    free(out);
    return rc != 0;
}

static void test_canonical_base64_decodes(void **state)
{
    (void)state;
    assert_true(decodes("", "", 0));
    assert_true(decodes("aGk=", "hi", 2));
    assert_true(decodes("aGk/", "hi?", 3));
    assert_true(decodes("AA==", "\0", 1));
    assert_true(decodes("+/+/", "\xfb\xff\xbf", 3));
}

/* What OpenSSL's decoder alone accepted and stored as other bytes (hardening issue, item 8). */
static void test_malformed_base64_is_refused(void **state)
{
    (void)state;
    assert_true(refused("===="));     /* was one NUL byte */
    assert_true(refused("AA=A"));     /* was two bytes */
    assert_true(refused("AA==AA==")); /* was four */
    assert_true(refused("aGk=\t\t\t\t"));
    assert_true(refused("aG k"));
    assert_true(refused("AB==")); /* bits past the data: not what any encoder writes */
    assert_true(refused("aGl=")); /* the same with one '=' */
    assert_true(refused("aGk"));  /* padding required */
    assert_true(refused("aG-_")); /* the URL-safe alphabet is not this one */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_base64_decodes),
        cmocka_unit_test(test_malformed_base64_is_refused),
    };
    return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
