/* test_llm_memo.c: request bodies remembered by their bytes (src/server/llm/llm_memo.c): a body
 * seen again gets exactly what parsing it gives (model, flags, controls, the chat key, every
 * embedding input's key) without a parse; other bytes or another kind never share an entry;
 * bodies with strata's own "cache" member, failed parses and bodies over the size bound are not
 * kept; the bytes held stay under LLM_MEMO_BYTES however many bodies pass.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "llm/llm_memo.h"

static const char chat[] = "{\"model\":\"gpt-4o-mini\",\"temperature\":0,\"stream\":true,"
                           "\"stream_options\":{\"include_usage\":true},"
                           "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

static llm_request parse(int kind, const char *body)
{
    llm_request r;
    char err[256];
    if (llm_request_parse(kind, body, strlen(body), &r, err, sizeof err) != 0)
        fail_msg("%s: refused: %s", body, err);
    return r;
}

static llm_request memo_parse(llm_memo *m, int kind, const char *body)
{
    llm_request r;
    char err[256];
    if (llm_memo_parse(m, kind, body, strlen(body), &r, err, sizeof err) != 0)
        fail_msg("%s: refused: %s", body, err);
    return r;
}

static llm_memo_stats stats(const llm_memo *m)
{
    llm_memo_stats s;
    llm_memo_stats_get(m, &s);
    return s;
}

/* Every field a caller reads, equal. */
static void expect_same(const llm_request *a, const llm_request *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_string_equal(a->model, b->model);
    assert_int_equal(a->stream, b->stream);
    assert_int_equal(a->include_usage, b->include_usage);
    assert_int_equal(a->deterministic, b->deterministic);
    assert_memory_equal(&a->ctl, &b->ctl, sizeof a->ctl);
    assert_string_equal(a->key, b->key);
    assert_int_equal(a->ninputs, b->ninputs);
    assert_int_equal(a->input_was_list, b->input_was_list);
    assert_int_equal(a->dimensions, b->dimensions);
    assert_int_equal(a->base64, b->base64);
    for (size_t i = 0; i < a->ninputs; i++) {
        char ka[LLM_KEY_HEX + 1], kb[LLM_KEY_HEX + 1];
        assert_int_equal(llm_input_key(a, i, ka), 0);
        assert_int_equal(llm_input_key(b, i, kb), 0);
        assert_string_equal(ka, kb);
    }
}

static void test_chat_remembered(void **state)
{
    (void)state;
    llm_memo *m = llm_memo_new();
    assert_non_null(m);
    llm_request fresh = parse(LLM_CHAT, chat);
    llm_request first = memo_parse(m, LLM_CHAT, chat);
    assert_non_null(first.body); /* parsed the first time */
    llm_request again = memo_parse(m, LLM_CHAT, chat);
    assert_null(again.body); /* remembered: nothing parsed */
    assert_null(again.upstream);
    assert_int_equal(stats(m).hits, 1);
    assert_int_equal(stats(m).misses, 1);
    expect_same(&fresh, &first);
    expect_same(&fresh, &again);
    assert_int_equal(again.stream, 1);
    assert_int_equal(again.include_usage, 1);
    assert_int_equal(again.deterministic, 1);
    llm_request_free(&fresh);
    llm_request_free(&first);
    llm_request_free(&again);
    llm_memo_free(m);
}

static void test_other_bytes_or_kind_never_share(void **state)
{
    (void)state;
    llm_memo *m = llm_memo_new();
    llm_request a = memo_parse(m, LLM_CHAT, chat);
    /* one byte apart, same length: another prompt, another key */
    char other[sizeof chat];
    memcpy(other, chat, sizeof chat);
    *strstr(other, "hi") = 'H';
    llm_request b = memo_parse(m, LLM_CHAT, other);
    assert_non_null(b.body);
    assert_string_not_equal(a.key, b.key);
    llm_request fresh = parse(LLM_CHAT, other);
    expect_same(&fresh, &b);
    /* the same bytes with the model in the path (Azure): parsed as that kind */
    llm_request c = memo_parse(m, LLM_CHAT | LLM_MODEL_IN_PATH, chat);
    assert_non_null(c.body);
    assert_int_equal(stats(m).hits, 0);
    llm_request_free(&a);
    llm_request_free(&b);
    llm_request_free(&c);
    llm_request_free(&fresh);
    llm_memo_free(m);
}

static void test_embedding_keys_remembered(void **state)
{
    (void)state;
    const char *body = "{\"model\":\"emb\",\"dimensions\":8,\"encoding_format\":\"base64\","
                       "\"input\":[\"one\",\"two\",[1,2,3],\"one\"]}";
    llm_memo *m = llm_memo_new();
    llm_request fresh = parse(LLM_EMBEDDINGS, body);
    llm_request first = memo_parse(m, LLM_EMBEDDINGS, body);
    assert_non_null(first.input_keys); /* made once, with the parse */
    llm_request again = memo_parse(m, LLM_EMBEDDINGS, body);
    assert_null(again.body);
    assert_null(again.inputs);
    assert_int_equal(again.ninputs, 4);
    expect_same(&fresh, &first);
    expect_same(&fresh, &again);
    /* the same input twice in a batch: one key */
    assert_string_equal(again.input_keys[0], again.input_keys[3]);
    assert_string_not_equal(again.input_keys[0], again.input_keys[1]);
    llm_request_free(&fresh);
    llm_request_free(&first);
    llm_request_free(&again);
    llm_memo_free(m);
}

static void test_not_kept(void **state)
{
    (void)state;
    llm_memo *m = llm_memo_new();
    /* strata's own member: the body sent upstream is not the client's, so it is parsed each time */
    const char *own = "{\"model\":\"m\",\"temperature\":0,\"messages\":[],\"cache\":{\"ttl\":60}}";
    for (int i = 0; i < 2; i++) {
        llm_request r = memo_parse(m, LLM_CHAT, own);
        assert_non_null(r.body);
        assert_int_equal(r.ctl.ttl_s, 60);
        assert_null(json_object_get(r.upstream, "cache"));
        llm_request_free(&r);
    }
    /* refused bodies: refused again, with the reason */
    for (int i = 0; i < 2; i++) {
        llm_request r;
        char err[256] = "";
        assert_int_equal(llm_memo_parse(m, LLM_CHAT, "{\"model\":3}", 11, &r, err, sizeof err), -1);
        assert_non_null(strstr(err, "model"));
    }
    /* a body over the bound */
    size_t big = LLM_MEMO_BODY_MAX + 1024;
    char *b = malloc(big + 1);
    int n =
        snprintf(b, big + 1, "{\"model\":\"m\",\"temperature\":0,\"messages\":[{\"content\":\"");
    memset(b + n, 'x', big - (size_t)n - 4);
    memcpy(b + big - 4, "\"}]}", 5);
    for (int i = 0; i < 2; i++) {
        llm_request r = memo_parse(m, LLM_CHAT, b);
        assert_non_null(r.body);
        llm_request_free(&r);
    }
    free(b);
    assert_int_equal(stats(m).hits, 0);
    assert_int_equal(stats(m).entries, 0);
    llm_memo_free(m);
}

/* Far more bodies than it holds: the bytes stay bounded, and every answer is still the parse's. */
static void test_bounded(void **state)
{
    (void)state;
    llm_memo *m = llm_memo_new();
    char *pad = malloc(8192);
    memset(pad, 'p', 8191);
    pad[8191] = '\0';
    size_t cap = 8192 + 256;
    char *body = malloc(cap);
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 1200; i++) { /* 10 MB of bodies a round: more than the bound */
            snprintf(body, cap,
                     "{\"model\":\"m\",\"seed\":%d,\"messages\":[{\"role\":\"user\","
                     "\"content\":\"%s\"}]}",
                     i, pad);
            llm_request r = memo_parse(m, LLM_CHAT, body), fresh = parse(LLM_CHAT, body);
            expect_same(&fresh, &r);
            llm_request_free(&r);
            llm_request_free(&fresh);
            llm_memo_stats s = stats(m);
            assert_true(s.bytes <= LLM_MEMO_BYTES);
            assert_true(s.entries <= LLM_MEMO_SLOTS);
        }
    assert_true(stats(m).entries > 0);
    free(body);
    free(pad);
    llm_memo_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_remembered),
        cmocka_unit_test(test_other_bytes_or_kind_never_share),
        cmocka_unit_test(test_embedding_keys_remembered),
        cmocka_unit_test(test_not_kept),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
