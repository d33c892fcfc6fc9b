/* test_llm_embed.c: embeddings' vectors found in answers, stored and encoded
 * (src/server/llm/llm_embed.c): each data[] entry's index and the exact text of its embedding,
 * whatever the spacing and member order; answers that are not embeddings refused; a record
 * read back; a vector in its own encoding is its own bytes, in the other equal at float32
 * precision both ways; tokens split by weight sum to the total.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "llm/llm_embed.h"

static void test_spans_are_the_exact_text(void **state)
{
    (void)state;
    const char *body = "{\n  \"object\": \"list\",\n  \"data\": [\n    {\"object\": \"embedding\", "
                       "\"index\": 0, \"embedding\": [0.0023064255, -0.009327292, 1e-3]},\n"
                       "    {\"embedding\": \"AACAPwAAAEA=\", \"index\": 1, \"extra\": {\"a\": [1, "
                       "{\"b\": null}]}}\n  ],\n  \"model\": \"m\", \"usage\": {\"prompt_tokens\": "
                       "5, \"total_tokens\": 5}\n}\n";
    llm_span sp[4];
    long n = llm_embedding_spans(body, strlen(body), sp, 4);
    assert_int_equal(n, 2);
    assert_int_equal(sp[0].index, 0);
    assert_int_equal(sp[0].len, strlen("[0.0023064255, -0.009327292, 1e-3]"));
    assert_memory_equal(body + sp[0].off, "[0.0023064255, -0.009327292, 1e-3]", sp[0].len);
    assert_int_equal(sp[1].index, 1);
    assert_memory_equal(body + sp[1].off, "\"AACAPwAAAEA=\"", sp[1].len);
    /* Not embeddings answers. */
    const char *bad[] = {"",
                         "[]",
                         "{}",
                         "{\"data\": 1}",
                         "{\"data\": [{\"index\": 0}]}",
                         "{\"data\": [{\"embedding\": [1]}]}",
                         "{\"data\": [{\"index\": -1, \"embedding\": [1]}]}",
                         "{\"data\": [{\"index\": 0, \"embedding\": [\"x\"]}]}",
                         "{\"data\": [{\"index\": 0, \"embedding\": [1]}]} trailing",
                         "{\"data\": [], \"data\": []}",
                         "{\"data\": [{\"index\": 0, \"embedding\": [1]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(llm_embedding_spans(bad[i], strlen(bad[i]), sp, 4), -1);
    /* More entries than room. */
    const char *three = "{\"data\": [{\"index\": 0, \"embedding\": [1]}, {\"index\": 1, "
                        "\"embedding\": [2]}, {\"index\": 2, \"embedding\": [3]}]}";
    assert_int_equal(llm_embedding_spans(three, strlen(three), sp, 2), -1);
    assert_int_equal(llm_embedding_spans(three, strlen(three), sp, 3), 3);
}

static void test_records_and_encodings(void **state)
{
    (void)state;
    const char *floats = "[0.0023064255,-0.5,1e-3]";
    size_t rl, n;
    char *rec = llm_vector_record(floats, strlen(floats), 7, &rl);
    assert_non_null(rec);
    llm_vector v;
    assert_int_equal(llm_vector_decode(rec, rl, &v), 0);
    assert_false(v.base64);
    assert_int_equal(v.tokens, 7);
    /* Its own encoding: the very bytes. */
    char *same = llm_vector_encode(&v, 0, &n);
    assert_int_equal(n, strlen(floats));
    assert_memory_equal(same, floats, n);
    free(same);
    /* base64 of little-endian float32, then back: the same float32s. */
    char *b64 = llm_vector_encode(&v, 1, &n);
    assert_non_null(b64);
    assert_true(b64[0] == '"' && b64[n - 1] == '"');
    char *rec2 = llm_vector_record(b64, n, 7, &rl);
    llm_vector v2;
    assert_int_equal(llm_vector_decode(rec2, rl, &v2), 0);
    assert_true(v2.base64);
    char *back = llm_vector_encode(&v2, 0, &n);
    assert_non_null(back);
    float a[3] = {0.0023064255f, -0.5f, 1e-3f}, b[3];
    assert_int_equal(sscanf(back, "[%g,%g,%g]", &b[0], &b[1], &b[2]), 3);
    assert_memory_equal(a, b, sizeof a);
    free(back);
    free(rec2);
    free(b64);
    free(rec);
    /* 1.0f and 2.0f, little-endian. */
    const char *known = "\"AACAPwAAAEA=\"";
    rec = llm_vector_record(known, strlen(known), 0, &rl);
    assert_int_equal(llm_vector_decode(rec, rl, &v), 0);
    back = llm_vector_encode(&v, 0, &n);
    assert_string_equal(back, "[1,2]");
    free(back);
    free(rec);
    /* Not vectors, not records. */
    assert_null(llm_vector_record("{}", 2, 0, &rl));
    assert_null(llm_vector_record("[", 1, 0, &rl));
    assert_int_equal(llm_vector_decode("x 1 [1]", 7, &v), -1);
    assert_int_equal(llm_vector_decode("f x [1]", 7, &v), -1);
    assert_int_equal(llm_vector_decode("f 1 \"a\"", 7, &v), -1);
    const char *odd = "\"AAA=\""; /* 2 bytes: not whole float32s */
    rec = llm_vector_record(odd, strlen(odd), 0, &rl);
    assert_int_equal(llm_vector_decode(rec, rl, &v), 0);
    assert_null(llm_vector_encode(&v, 0, &n));
    free(rec);
}

static void test_tokens_split(void **state)
{
    (void)state;
    size_t w[3] = {10, 20, 30};
    int64_t t[3];
    llm_tokens_split(61, w, 3, t);
    assert_int_equal(t[0] + t[1] + t[2], 61);
    assert_int_equal(t[0], 10);
    assert_int_equal(t[1], 20);
    size_t z[2] = {0, 0};
    llm_tokens_split(5, z, 2, t);
    assert_int_equal(t[0] + t[1], 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spans_are_the_exact_text),
        cmocka_unit_test(test_records_and_encodings),
        cmocka_unit_test(test_tokens_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
