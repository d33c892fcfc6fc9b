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

/* X-Cache-Lease and X-Cache-Wait: seconds with up to three decimals, within a range. */
static void test_seconds(void **state)
{
    (void)state;
    uint64_t ms = 7;
    assert_int_equal(codec_seconds("30", 1, 300000, &ms), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(codec_seconds("0.5", 1, 300000, &ms), 0);
    assert_int_equal(ms, 500);
    assert_int_equal(codec_seconds("1.25", 1, 300000, &ms), 0);
    assert_int_equal(ms, 1250);
    assert_int_equal(codec_seconds("0.001", 1, 300000, &ms), 0);
    assert_int_equal(ms, 1);
    assert_int_equal(codec_seconds("300", 1, 300000, &ms), 0);
    assert_int_equal(codec_seconds("0", 0, 60000, &ms), 0);
    assert_int_equal(ms, 0);
    const char *bad[] = {"0",
                         "300.001",
                         "301",
                         "1.2345",
                         "-1",
                         "1.",
                         ".5",
                         "1e3",
                         "",
                         " 1",
                         "1 ",
                         "abc",
                         "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ms = 7;
        assert_int_equal(codec_seconds(bad[i], 1, 300000, &ms), -1);
        assert_int_equal(ms, 7); /* untouched */
    }
    assert_int_equal(codec_seconds(NULL, 0, 1000, &ms), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_base64_decodes),
        cmocka_unit_test(test_malformed_base64_is_refused),
        cmocka_unit_test(test_seconds),
    };
    return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
