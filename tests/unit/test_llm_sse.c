/* test_llm_sse.c: streamed answers recorded into one completion, and completions replayed as
 * streams (src/server/llm/llm_sse.c): a provider's stream split at every byte records the same
 * completion; a replay records back to the completion it came from (content, tool calls, usage,
 * several choices, multi-byte characters across pieces); streams that did not end, error events
 * and streams past the bound are not recorded; a plain answer is complete only with finish
 * reasons.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "llm/llm_request.h"
#include "llm/llm_sse.h"

/* A provider's stream as OpenAI sends it: role, content pieces, a tool call in pieces, finish,
 * usage, [DONE]. */
static const char provider_stream[] =
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
    "\"finish_reason\":null}]}\n\n"
    ": a comment line\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\r\n\r\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\u00e9t\\u00e9\"},"
    "\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\","
    "\"type\":\"function\",\"function\":{\"name\":\"get\",\"arguments\":\"{\\\"a\\\"\"}}]},"
    "\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
    "{\"arguments\":\":1}\"}}]},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\","
    "\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\n"
    "data: [DONE]\n\n";

/* Records s[0..len) fed in pieces of step bytes; the completion or NULL. */
static char *record(int kind, const char *s, size_t len, size_t step, size_t max, size_t *out)
{
    llm_sse_rec *r = llm_sse_rec_new(kind, max);
    assert_non_null(r);
    for (size_t off = 0; off < len; off += step)
        llm_sse_rec_feed(r, s + off, len - off < step ? len - off : step);
    char *c = llm_sse_rec_finish(r, out);
    llm_sse_rec_free(r);
    return c;
}

static json_t *parse(const char *s, size_t len)
{
    json_t *j = json_loadb(s, len, 0, NULL);
    assert_non_null(j);
    return j;
}

static void test_provider_stream_recorded_at_every_split(void **state)
{
    (void)state;
    size_t len = sizeof provider_stream - 1, n0 = 0;
    char *whole = record(LLM_CHAT, provider_stream, len, len, 1 << 20, &n0);
    assert_non_null(whole);
    json_t *j = parse(whole, n0);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "chat.completion");
    assert_string_equal(json_string_value(json_object_get(j, "id")), "c1");
    json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
    json_t *msg = json_object_get(c0, "message");
    assert_string_equal(json_string_value(json_object_get(msg, "content")),
                        "Hello \xc3\xa9t\xc3\xa9");
    assert_string_equal(json_string_value(json_object_get(c0, "finish_reason")), "tool_calls");
    json_t *tc = json_array_get(json_object_get(msg, "tool_calls"), 0);
    assert_string_equal(json_string_value(json_object_get(tc, "id")), "call_1");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(tc, "function"), "arguments")),
        "{\"a\":1}");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "usage"), "total_tokens")), 7);
    assert_true(llm_answer_complete(LLM_CHAT, whole, n0));
    long long up, uc;
    llm_answer_usage(whole, n0, &up, &uc);
    assert_int_equal(up + uc, 7);
    json_decref(j);
    for (size_t step = 1; step < 64; step++) {
        size_t n = 0;
        char *c = record(LLM_CHAT, provider_stream, len, step, 1 << 20, &n);
        assert_non_null(c);
        assert_int_equal(n, n0);
        assert_memory_equal(c, whole, n);
        free(c);
    }
    free(whole);
}

static void test_replay_records_back(void **state)
{
    (void)state;
    /* Two choices, a long multi-byte content (pieces never split a character), tool calls. */
    char content[2048] = "";
    for (int i = 0; i < 150; i++)
        strcat(content, "\xe2\x82\xac-caf\xc3\xa9 ");
    json_t *c = json_pack(
        "{s:s,s:s,s:i,s:s,s:[{s:i,s:{s:s,s:s},s:n,s:s},{s:i,s:{s:s,s:n,s:[{s:s,s:s,s:{s:s,s:s}}]},"
        "s:n,s:s}],s:{s:i,s:i,s:i}}",
        "id", "x9", "object", "chat.completion", "created", 9, "model", "m", "choices", "index", 0,
        "message", "role", "assistant", "content", content, "logprobs", "finish_reason", "stop",
        "index", 1, "message", "role", "assistant", "content", "tool_calls", "id", "call_9", "type",
        "function", "function", "name", "f", "arguments", "{}", "logprobs", "finish_reason",
        "tool_calls", "usage", "prompt_tokens", 1, "completion_tokens", 2, "total_tokens", 3);
    char *body = json_dumps(c, JSON_COMPACT);
    size_t sn = 0, rn = 0;
    char *sse = llm_sse_replay(LLM_CHAT, body, strlen(body), 1, &sn);
    assert_non_null(sse);
    assert_true(sn > 14 && memcmp(sse + sn - 14, "data: [DONE]\n\n", 14) == 0);
    char *back = record(LLM_CHAT, sse, sn, 7, 1 << 20, &rn);
    assert_non_null(back);
    json_t *j = parse(back, rn);
    assert_true(json_equal(json_object_get(j, "choices"), json_object_get(c, "choices")) ||
                (fprintf(stderr, "%s\n%s\n", back, body), 0));
    assert_true(json_equal(json_object_get(j, "usage"), json_object_get(c, "usage")));
    json_decref(j);
    free(back);
    free(sse);
    /* Without include_usage: no usage chunk, and so none recorded. */
    sse = llm_sse_replay(LLM_CHAT, body, strlen(body), 0, &sn);
    assert_null(strstr(sse, "\"usage\""));
    free(sse);
    free(body);
    json_decref(c);
    /* Completions too. */
    const char *tc = "{\"id\":\"t\",\"object\":\"text_completion\",\"created\":1,\"model\":\"m\","
                     "\"choices\":[{\"text\":\"hi there\",\"index\":0,\"logprobs\":null,"
                     "\"finish_reason\":\"length\"}]}";
    sse = llm_sse_replay(LLM_COMPLETION, tc, strlen(tc), 1, &sn);
    assert_non_null(sse);
    back = record(LLM_COMPLETION, sse, sn, 3, 1 << 20, &rn);
    assert_non_null(back);
    j = parse(back, rn);
    json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(c0, "text")), "hi there");
    assert_string_equal(json_string_value(json_object_get(c0, "finish_reason")), "length");
    json_decref(j);
    free(back);
    free(sse);
    /* Not a completion: nothing to replay. */
    assert_null(llm_sse_replay(LLM_CHAT, "[1]", 3, 1, &sn));
    assert_null(llm_sse_replay(LLM_CHAT, "{\"choices\":[{\"message\":{}}]}", 28, 1, &sn));
}

static void test_streams_not_recorded(void **state)
{
    (void)state;
    size_t len = sizeof provider_stream - 1, n;
    /* No [DONE]: cut short. */
    const char *done = strstr(provider_stream, "data: [DONE]");
    assert_null(
        record(LLM_CHAT, provider_stream, (size_t)(done - provider_stream), 5, 1 << 20, &n));
    /* Past the bound. */
    assert_null(record(LLM_CHAT, provider_stream, len, 5, 100, &n));
    /* No finish reason. */
    const char *nofin =
        "data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n"
        "data: [DONE]\n\n";
    assert_null(record(LLM_CHAT, nofin, strlen(nofin), 4, 1 << 20, &n));
    /* An error event, an event that is not JSON, something after [DONE]. */
    const char *bad[] = {
        "event: error\ndata: {\"error\":{\"message\":\"x\"}}\n\ndata: [DONE]\n\n",
        "data: {\"error\":{\"message\":\"overloaded\"}}\n\ndata: [DONE]\n\n",
        "data: not json\n\ndata: [DONE]\n\n",
        ("data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},"
         "\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\ndata: {\"id\":\"b\"}\n\n"),
        "data: {\"id\":\"a\",\"choices\":\"no\"}\n\ndata: [DONE]\n\n",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_null(record(LLM_CHAT, bad[i], strlen(bad[i]), 3, 1 << 20, &n));
    /* A plain answer is complete only with finish reasons. */
    const char *ok = "{\"choices\":[{\"message\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}";
    const char *open = "{\"choices\":[{\"message\":{\"content\":\"x\"},\"finish_reason\":null}]}";
    assert_true(llm_answer_complete(LLM_CHAT, ok, strlen(ok)));
    assert_false(llm_answer_complete(LLM_CHAT, open, strlen(open)));
    assert_false(llm_answer_complete(LLM_CHAT, "{\"choices\":[]}", 14));
    assert_false(llm_answer_complete(LLM_CHAT, "nope", 4));
    long long np, nc;
    llm_answer_usage("nope", 4, &np, &nc);
    assert_int_equal(np + nc, 0);
    /* A hit reads the usage without parsing the answer: OpenAI's nested details, spacing, and a
     * "usage" inside a string (escaped quotes) are not taken for it. */
    const char *nested =
        "{\"choices\":[{\"message\":{\"content\":\"the \\\"usage\\\": {\\\"prompt_tokens\\\": "
        "99}\"}}],\n"
        "  \"usage\" : {\"prompt_tokens_details\": {\"cached_tokens\": 5}, \"prompt_tokens\": 19,\n"
        "  \"completion_tokens\": 10, \"total_tokens\": 29, \"completion_tokens_details\": {}}}";
    long long p, c;
    llm_answer_usage(nested, strlen(nested), &p, &c);
    assert_int_equal(p, 19);
    assert_int_equal(c, 10);
    llm_answer_usage("{\"id\":\"x\"}", 10, &p, &c);
    assert_int_equal(p + c, 0);
    llm_answer_usage("\"usage\":{", 9, &p, &c); /* cut short */
    assert_int_equal(p + c, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_provider_stream_recorded_at_every_split),
        cmocka_unit_test(test_replay_records_back),
        cmocka_unit_test(test_streams_not_recorded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
