/* test_llm_request.c: the LLM cache's request rules (src/server/llm/llm_request.c): what shares
 * a key and what never does, the cache controls taken out of the body, embedding inputs in each
 * of their forms, and hostile bodies refused with a reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "llm/llm_request.h"

static llm_request parse_ok(int kind, const char *body)
{
    llm_request r;
    char err[256];
    if (llm_request_parse(kind, body, strlen(body), &r, err, sizeof err) != 0)
        fail_msg("%s: refused: %s", body, err);
    return r;
}

static void expect_refused(int kind, const char *body, const char *why)
{
    llm_request r;
    char err[256] = "";
    if (llm_request_parse(kind, body, strlen(body), &r, err, sizeof err) == 0)
        fail_msg("%s: parsed, expected \"%s\"", body, why);
    if (strstr(err, why) == NULL)
        fail_msg("%s: \"%s\", expected \"%s\"", body, err, why);
}

/* The chat key of body. */
static void key(const char *body, char *out)
{
    llm_request r = parse_ok(LLM_CHAT, body);
    memcpy(out, r.key, sizeof r.key);
    llm_request_free(&r);
}

#define MSG "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

static void test_same_answer_same_key(void **state)
{
    (void)state;
    char a[LLM_KEY_HEX + 1], b[LLM_KEY_HEX + 1];
    key("{\"model\":\"m\"," MSG ",\"temperature\":0}", a);
    assert_int_equal(strlen(a), LLM_KEY_HEX);
    /* order of members, spacing, 0 vs 0.0, stream, stream_options, user, metadata, store and
     * strata's cache member do not change the answer */
    const char *same[] = {
        ("{\"temperature\":0.0,\"model\":\"m\"," MSG "}"),
        ("{ \"model\" : \"m\" , " MSG " , \"temperature\" : 0e0 }"),
        ("{\"model\":\"m\"," MSG ",\"temperature\":0,\"stream\":true,"
         "\"stream_options\":{\"include_usage\":true}}"),
        ("{\"model\":\"m\"," MSG ",\"temperature\":0,\"user\":\"u1\",\"metadata\":{\"a\":1},"
         "\"store\":false}"),
        ("{\"model\":\"m\"," MSG ",\"temperature\":0,\"cache\":{\"ttl\":60}}"),
        "{\"model\":\"m\",\"messages\":[{\"content\":\"hi\",\"role\":\"user\"}],\"temperature\":0}",
        ("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\\u0068i\"}],"
         "\"temperature\":0}"),
    };
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        key(same[i], b);
        if (strcmp(a, b) != 0)
            fail_msg("%s: another key than the plain request's", same[i]);
    }
}

static void test_other_answer_other_key(void **state)
{
    (void)state;
    char a[LLM_KEY_HEX + 1], b[LLM_KEY_HEX + 1];
    key("{\"model\":\"m\"," MSG ",\"temperature\":0}", a);
    const char *other[] = {
        ("{\"model\":\"m2\"," MSG ",\"temperature\":0}"),
        ("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi!\"}],"
         "\"temperature\":0}"),
        ("{\"model\":\"m\"," MSG ",\"temperature\":0.5}"),
        ("{\"model\":\"m\"," MSG ",\"temperature\":0,\"seed\":1}"),
        ("{\"model\":\"m\"," MSG ",\"temperature\":0,\"max_tokens\":10}"),
        ("{\"model\":\"m\"," MSG ",\"temperature\":0,\"tools\":[]}"),
        ("{\"model\":\"m\"," MSG ",\"temperature\":0,\"n\":2}"),
        ("{\"model\":\"m\"," MSG
         ",\"temperature\":0,\"response_format\":{\"type\":\"json_object\"}}"),
        ("{\"model\":\"m\"," MSG "}"),
    };
    for (size_t i = 0; i < sizeof other / sizeof *other; i++) {
        key(other[i], b);
        if (strcmp(a, b) == 0)
            fail_msg("%s: the plain request's key", other[i]);
    }
}

static void test_deterministic_stream_and_controls(void **state)
{
    (void)state;
    llm_request r = parse_ok(LLM_CHAT, "{\"model\":\"m\"," MSG ",\"temperature\":0}");
    assert_true(r.deterministic);
    assert_false(r.stream);
    assert_false(r.ctl.given);
    assert_int_equal(r.ctl.ttl_s, -1);
    assert_string_equal(r.model, "m");
    llm_request_free(&r);
    r = parse_ok(LLM_CHAT, "{\"model\":\"m\"," MSG ",\"seed\":7,\"stream\":true,"
                           "\"stream_options\":{\"include_usage\":true}}");
    assert_true(r.deterministic);
    assert_true(r.stream);
    assert_true(r.include_usage);
    llm_request_free(&r);
    r = parse_ok(LLM_CHAT, "{\"model\":\"m\"," MSG ",\"temperature\":0.7}");
    assert_false(r.deterministic);
    llm_request_free(&r);
    r = parse_ok(LLM_CHAT, "{\"model\":\"m\"," MSG ",\"cache\":{\"no-cache\":true,\"no-store\":"
                           "false,\"ttl\":600,\"namespace\":\"eval\",\"s-maxage\":5}}");
    assert_true(r.ctl.given);
    assert_true(r.ctl.no_cache);
    assert_false(r.ctl.no_store);
    assert_int_equal(r.ctl.ttl_s, 600);
    assert_string_equal(r.ctl.ns, "eval");
    /* strata's member never goes upstream; the rest does, untouched */
    assert_null(json_object_get(r.upstream, "cache"));
    assert_non_null(json_object_get(r.upstream, "messages"));
    llm_request_free(&r);
    r = parse_ok(LLM_COMPLETION, "{\"model\":\"m\",\"prompt\":\"say hi\",\"temperature\":0}");
    assert_true(r.deterministic);
    assert_int_equal(strlen(r.key), LLM_KEY_HEX);
    llm_request_free(&r);
}

static void test_embedding_inputs(void **state)
{
    (void)state;
    llm_request r = parse_ok(LLM_EMBEDDINGS, "{\"model\":\"e\",\"input\":\"one\"}");
    assert_int_equal(r.ninputs, 1);
    assert_false(r.input_was_list);
    assert_int_equal(r.dimensions, -1);
    assert_false(r.base64);
    char k1[LLM_KEY_HEX + 1], k2[LLM_KEY_HEX + 1];
    assert_int_equal(llm_input_key(&r, 0, k1), 0);
    assert_int_equal(llm_input_key(&r, 1, k2), -1);
    llm_request_free(&r);
    /* the same input in a batch, asked for in base64: the same key */
    r = parse_ok(LLM_EMBEDDINGS, "{\"model\":\"e\",\"input\":[\"zero\",\"one\"],"
                                 "\"encoding_format\":\"base64\"}");
    assert_int_equal(r.ninputs, 2);
    assert_true(r.input_was_list);
    assert_true(r.base64);
    assert_int_equal(llm_input_key(&r, 1, k2), 0);
    assert_string_equal(k1, k2);
    assert_int_equal(llm_input_key(&r, 0, k2), 0);
    assert_string_not_equal(k1, k2);
    llm_request_free(&r);
    /* dimensions and model tell inputs apart */
    r = parse_ok(LLM_EMBEDDINGS, "{\"model\":\"e\",\"input\":\"one\",\"dimensions\":256}");
    assert_int_equal(r.dimensions, 256);
    assert_int_equal(llm_input_key(&r, 0, k2), 0);
    assert_string_not_equal(k1, k2);
    llm_request_free(&r);
    /* token ids: one array, or a list of them; not the text's key */
    r = parse_ok(LLM_EMBEDDINGS, "{\"model\":\"e\",\"input\":[1,2,3]}");
    assert_int_equal(r.ninputs, 1);
    assert_null(r.inputs[0].text);
    assert_int_equal(llm_input_key(&r, 0, k2), 0);
    assert_string_not_equal(k1, k2);
    llm_request_free(&r);
    r = parse_ok(LLM_EMBEDDINGS, "{\"model\":\"e\",\"input\":[[1,2,3],[4]]}");
    assert_int_equal(r.ninputs, 2);
    char k3[LLM_KEY_HEX + 1];
    assert_int_equal(llm_input_key(&r, 0, k3), 0);
    assert_string_equal(k2, k3);
    llm_request_free(&r);
}

static void test_hostile_bodies_refused(void **state)
{
    (void)state;
    expect_refused(LLM_CHAT, "", "not JSON");
    expect_refused(LLM_CHAT, "[1]", "must be a JSON object");
    expect_refused(LLM_CHAT, "{\"model\":\"m\",\"model\":\"n\"," MSG "}", "not JSON");
    expect_refused(LLM_CHAT, "{" MSG "}", "model must be");
    /* Azure's body leaves the model out (the deployment is in the path): allowed when asked. */
    llm_request az = parse_ok(LLM_CHAT | LLM_MODEL_IN_PATH, "{" MSG ",\"temperature\":0}");
    assert_string_equal(az.model, "");
    assert_int_equal(az.kind, LLM_CHAT);
    assert_true(az.deterministic);
    llm_request_free(&az);
    expect_refused(LLM_CHAT | LLM_MODEL_IN_PATH, "{\"model\":\"\"," MSG "}", "model must be");
    expect_refused(LLM_CHAT, "{\"model\":\"\"," MSG "}", "model must be");
    expect_refused(LLM_CHAT, "{\"model\":\"m\\u0000x\"," MSG "}", "not JSON"); /* NUL */
    expect_refused(LLM_CHAT, "{\"model\":\"m\",\"messages\":\"hi\"}", "messages must be an array");
    expect_refused(LLM_CHAT, "{\"model\":\"m\"," MSG ",\"stream\":\"yes\"}", "stream must be");
    expect_refused(LLM_CHAT, "{\"model\":\"m\"," MSG ",\"cache\":true}", "cache must be");
    expect_refused(LLM_CHAT, "{\"model\":\"m\"," MSG ",\"cache\":{\"ttl\":-1}}", "cache.ttl");
    expect_refused(LLM_CHAT, "{\"model\":\"m\"," MSG ",\"cache\":{\"namespace\":\"_x\"}}",
                   "cache.namespace");
    expect_refused(LLM_COMPLETION, "{\"model\":\"m\",\"prompt\":5}", "prompt must be");
    expect_refused(LLM_EMBEDDINGS, "{\"model\":\"e\",\"input\":[]}", "input must be");
    expect_refused(LLM_EMBEDDINGS, "{\"model\":\"e\",\"input\":[\"a\",1]}", "input[1]");
    expect_refused(LLM_EMBEDDINGS, "{\"model\":\"e\",\"input\":[[1],[\"x\"]]}", "input[1]");
    expect_refused(LLM_EMBEDDINGS, "{\"model\":\"e\",\"input\":\"a\",\"dimensions\":0}",
                   "dimensions");
    expect_refused(LLM_EMBEDDINGS, "{\"model\":\"e\",\"input\":\"a\",\"encoding_format\":\"hex\"}",
                   "encoding_format");
    /* more inputs than the bound */
    size_t n = LLM_INPUTS_MAX + 1, at = 0;
    char *big = malloc(n * 4 + 64);
    at += (size_t)sprintf(big, "{\"model\":\"e\",\"input\":[");
    for (size_t i = 0; i < n; i++)
        at += (size_t)sprintf(big + at, "%s\"x\"", i ? "," : "");
    strcpy(big + at, "]}");
    expect_refused(LLM_EMBEDDINGS, big, "more than 2048");
    free(big);
}

static void test_canonical(void **state)
{
    (void)state;
    json_t *v = json_loads("{\"b\":[1.0,2.5,{\"d\":0,\"c\":-0.0}],\"a\":\"x\"}", 0, NULL);
    char *s = llm_canonical(v);
    assert_string_equal(s, "{\"a\":\"x\",\"b\":[1,2.5,{\"c\":0,\"d\":0}]}");
    free(s);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_answer_same_key),
        cmocka_unit_test(test_other_answer_other_key),
        cmocka_unit_test(test_deterministic_stream_and_controls),
        cmocka_unit_test(test_embedding_inputs),
        cmocka_unit_test(test_hostile_bodies_refused),
        cmocka_unit_test(test_canonical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
