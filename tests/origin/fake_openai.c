/* fake_openai.c: the test origin's OpenAI-compatible API (fake_openai.h). Deterministic: the
 * same request gets the same content and vectors, only the id counts, so a test can tell a
 * cached answer from a fresh one.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "fake_openai.h"

static atomic_ulong n_chat, n_completions, n_embeddings, n_inputs, n_streams, n_answers;
static atomic_long n_open;
static char last_auth[512], last_body[8192];
static _Atomic int auth_lock;

static int ends_with(const char *s, size_t len, const char *suffix)
{
    size_t sl = strlen(suffix);
    return len >= sl && memcmp(s + len - sl, suffix, sl) == 0;
}

static fake_answer json_answer(int status, json_t *j)
{
    fake_answer a = {.status = status, .content_type = "application/json"};
    a.body = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    a.len = a.body ? strlen(a.body) : 0;
    json_decref(j);
    return a;
}

static fake_answer error_answer(int status, const char *msg)
{
    return json_answer(status,
                       json_pack("{s:{s:s,s:s,s:n}}", "error", "message", msg, "type",
                                 status == 429 ? "rate_limit_error" : "server_error", "code"));
}

/* "Echo: " and the text, padded with " lorem" to size bytes when size is larger. */
static char *echo(const char *text, long size)
{
    size_t tl = strlen(text), n = 6 + tl;
    size_t want = size > (long)n ? (size_t)size : n;
    char *s = malloc(want + 1);
    if (s == NULL)
        return NULL;
    memcpy(s, "Echo: ", 6);
    memcpy(s + 6, text, tl);
    for (size_t i = n; i < want; i++)
        s[i] = " lorem"[(i - n) % 6];
    s[want] = '\0';
    return s;
}

static const char *last_content(json_t *req, int chat)
{
    if (!chat) {
        json_t *p = json_object_get(req, "prompt");
        return json_is_string(p) ? json_string_value(p) : "";
    }
    json_t *msgs = json_object_get(req, "messages");
    json_t *m = json_array_get(msgs, json_array_size(msgs) - 1);
    json_t *c = json_object_get(m, "content");
    return json_is_string(c) ? json_string_value(c) : "";
}

static json_t *usage_of(size_t prompt, size_t completion)
{
    return json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)(prompt / 4 + 1),
                     "completion_tokens", (json_int_t)(completion / 4 + 1), "total_tokens",
                     (json_int_t)(prompt / 4 + completion / 4 + 2));
}

static void add_event(char **out, size_t *len, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : strdup("[DONE]");
    json_decref(j);
    size_t sl = s ? strlen(s) : 0;
    char *n = realloc(*out, *len + sl + 9);
    if (n == NULL || s == NULL) {
        free(s);
        return;
    }
    *out = n;
    *len += (size_t)sprintf(n + *len, "data: %s\n\n", s);
    free(s);
}

/* The events of a streamed answer: role, content in pieces of 7 bytes, finish, usage, [DONE]. */
static fake_answer stream_answer(int chat, const char *id, const char *model, const char *content,
                                 int finish, int cut, int include_usage, size_t prompt)
{
    fake_answer a = {.status = 200, .content_type = "text/event-stream", .stream = 1};
    const char *object = chat ? "chat.completion.chunk" : "text_completion";
    size_t cl = strlen(content);
    if (chat)
        add_event(&a.body, &a.len,
                  json_pack("{s:s,s:s,s:i,s:s,s:[{s:i,s:{s:s,s:s},s:n}]}", "id", id, "object",
                            object, "created", 1700000000, "model", model, "choices", "index", 0,
                            "delta", "role", "assistant", "content", "", "finish_reason"));
    for (size_t off = 0; off < cl; off += 7) {
        size_t n = cl - off < 7 ? cl - off : 7;
        json_t *choice = chat ? json_pack("{s:i,s:{s:s%},s:n}", "index", 0, "delta", "content",
                                          content + off, n, "finish_reason")
                              : json_pack("{s:i,s:s%,s:n}", "index", 0, "text", content + off, n,
                                          "finish_reason");
        add_event(&a.body, &a.len,
                  json_pack("{s:s,s:s,s:i,s:s,s:[o]}", "id", id, "object", object, "created",
                            1700000000, "model", model, "choices", choice));
    }
    if (finish)
        add_event(&a.body, &a.len,
                  json_pack("{s:s,s:s,s:i,s:s,s:[{s:i,s:{},s:s}]}", "id", id, "object", object,
                            "created", 1700000000, "model", model, "choices", "index", 0,
                            chat ? "delta" : "logprobs", "finish_reason", "stop"));
    if (include_usage)
        add_event(&a.body, &a.len,
                  json_pack("{s:s,s:s,s:i,s:s,s:[],s:o}", "id", id, "object", object, "created",
                            1700000000, "model", model, "choices", "usage", usage_of(prompt, cl)));
    if (!cut)
        add_event(&a.body, &a.len, NULL);
    return a;
}

static fake_answer completion(json_t *req, int chat, long size, int finish, int cut)
{
    atomic_fetch_add(chat ? &n_chat : &n_completions, 1);
    char id[64];
    snprintf(id, sizeof id, "%s-%lu", chat ? "chatcmpl" : "cmpl",
             atomic_fetch_add(&n_answers, 1) + 1);
    json_t *m = json_object_get(req, "model");
    const char *model = json_is_string(m) ? json_string_value(m) : "fake-model";
    const char *last = last_content(req, chat);
    char *content = echo(last, size);
    if (content == NULL)
        return error_answer(500, "out of memory");
    size_t prompt = strlen(last);
    fake_answer a;
    if (json_is_true(json_object_get(req, "stream"))) {
        atomic_fetch_add(&n_streams, 1);
        json_t *so = json_object_get(req, "stream_options");
        a = stream_answer(chat, id, model, content, finish, cut,
                          json_is_true(json_object_get(so, "include_usage")), prompt);
    } else {
        json_t *choice =
            chat ? json_pack("{s:i,s:{s:s,s:s},s:n,s:o}", "index", 0, "message", "role",
                             "assistant", "content", content, "logprobs", "finish_reason",
                             finish ? json_string("stop") : json_null())
                 : json_pack("{s:i,s:s,s:n,s:o}", "index", 0, "text", content, "logprobs",
                             "finish_reason", finish ? json_string("stop") : json_null());
        a = json_answer(200, json_pack("{s:s,s:s,s:i,s:s,s:[o],s:o}", "id", id, "object",
                                       chat ? "chat.completion" : "text_completion", "created",
                                       1700000000, "model", model, "choices", choice, "usage",
                                       usage_of(prompt, strlen(content))));
    }
    free(content);
    return a;
}

/* An input's vector: dims floats from its bytes, exact in float32. */
static void vector_of(const char *s, size_t len, long dims, float *out)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    for (long j = 0; j < dims; j++) {
        h = h * 1103515245u + 12345u;
        out[j] = (float)((int)(h >> 16 & 0x3ff) - 512) / 1024.0f;
    }
}

static json_t *embedding(json_t *input, long dims, int b64, size_t index)
{
    char *text = NULL;
    if (json_is_string(input))
        text = strdup(json_string_value(input));
    else
        text = json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY);
    float v[4096];
    vector_of(text ? text : "", text ? strlen(text) : 0, dims, v);
    free(text);
    json_t *e;
    if (b64) {
        char enc[4096 * 4 * 4 / 3 + 8];
        EVP_EncodeBlock((unsigned char *)enc, (const unsigned char *)v, (int)(dims * 4));
        e = json_string(enc);
    } else {
        e = json_array();
        for (long j = 0; j < dims; j++)
            json_array_append_new(e, json_real(v[j]));
    }
    return json_pack("{s:s,s:I,s:o}", "object", "embedding", "index", (json_int_t)index,
                     "embedding", e);
}

static fake_answer embeddings(json_t *req)
{
    atomic_fetch_add(&n_embeddings, 1);
    json_t *in = json_object_get(req, "input"), *d = json_object_get(req, "dimensions");
    json_t *fmt = json_object_get(req, "encoding_format"), *m = json_object_get(req, "model");
    long dims = json_is_integer(d) ? (long)json_integer_value(d) : 8;
    if (dims < 1 || dims > 4096)
        return error_answer(400, "dimensions out of range");
    int b64 = json_is_string(fmt) && strcmp(json_string_value(fmt), "base64") == 0;
    json_t *data = json_array();
    size_t n = 0, chars = 0;
    /* One input: a string, or an array of token ids; else a list of either. */
    int single =
        json_is_string(in) || (json_is_array(in) && json_is_integer(json_array_get(in, 0)));
    if (single) {
        json_array_append_new(data, embedding(in, dims, b64, 0));
        n = 1;
        chars = json_is_string(in) ? json_string_length(in) : json_array_size(in) * 4;
    } else {
        size_t i;
        json_t *v;
        json_array_foreach(in, i, v)
        {
            json_array_append_new(data, embedding(v, dims, b64, i));
            chars += json_is_string(v) ? json_string_length(v) : json_array_size(v) * 4;
        }
        n = json_array_size(in);
    }
    atomic_fetch_add(&n_inputs, n);
    return json_answer(200, json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data,
                                      "model", json_is_string(m) ? json_string_value(m) : "fake",
                                      "usage", "prompt_tokens", (json_int_t)(chars / 4 + n),
                                      "total_tokens", (json_int_t)(chars / 4 + n)));
}

void fake_openai_streaming(int delta)
{
    atomic_fetch_add(&n_open, delta);
}

static fake_answer counters(void)
{
    while (atomic_exchange(&auth_lock, 1))
        ;
    json_t *j = json_pack("{s:I,s:I,s:I,s:I,s:I,s:s}", "chat", (json_int_t)atomic_load(&n_chat),
                          "completions", (json_int_t)atomic_load(&n_completions), "embeddings",
                          (json_int_t)atomic_load(&n_embeddings), "embedding_inputs",
                          (json_int_t)atomic_load(&n_inputs), "streams",
                          (json_int_t)atomic_load(&n_streams), "last_authorization", last_auth);
    json_object_set_new(j, "last_body", json_string(last_body));
    json_object_set_new(j, "streams_open", json_integer(atomic_load(&n_open)));
    atomic_store(&auth_lock, 0);
    return json_answer(200, j);
}

int fake_openai(const char *head, const char *body, size_t body_len,
                const char *(*header)(const char *head, const char *name, char *out, size_t cap),
                fake_answer *a)
{
    const char *sp = strchr(head, ' ');
    const char *end = sp ? strpbrk(sp + 1, " ?") : NULL;
    if (sp == NULL || end == NULL)
        return 0;
    const char *target = sp + 1;
    size_t tlen = (size_t)(end - target);
    int post = strncmp(head, "POST ", 5) == 0, get = strncmp(head, "GET ", 4) == 0;
    if (get && tlen == 9 && memcmp(target, "/__openai", 9) == 0)
        return *a = counters(), 1;
    int chat = post && ends_with(target, tlen, "/chat/completions");
    int compl = post && !chat && ends_with(target, tlen, "/completions");
    int emb = post && ends_with(target, tlen, "/embeddings");
    int models = get && ends_with(target, tlen, "/models");
    if (!chat && !compl &&!emb && !models)
        return 0;
    char v[512];
    while (atomic_exchange(&auth_lock, 1))
        ;
    snprintf(last_auth, sizeof last_auth, "%s",
             header(head, "Authorization", v, sizeof v) ? v : "");
    snprintf(last_body, sizeof last_body, "%.*s", (int)(body_len < 8000 ? body_len : 8000), body);
    atomic_store(&auth_lock, 0);
    if (header(head, "X-Origin-Status", v, sizeof v) && atoi(v) != 200)
        return *a = error_answer(atoi(v), "the fake upstream was told to fail"), 1;
    if (models)
        return *a = json_answer(200, json_pack("{s:s,s:[{s:s,s:s}]}", "object", "list", "data",
                                               "id", "fake-model", "object", "model")),
               1;
    json_t *req = json_loadb(body, body_len, 0, NULL);
    if (!json_is_object(req)) {
        json_decref(req);
        return *a = error_answer(400, "the body is not a JSON object"), 1;
    }
    if (emb) {
        *a = embeddings(req);
    } else {
        long size = header(head, "X-Origin-Completion-Size", v, sizeof v) ? atol(v) : 0;
        int finish = !(header(head, "X-Origin-No-Finish", v, sizeof v) && atoi(v));
        int cut = header(head, "X-Origin-Stream-Cut", v, sizeof v) && atoi(v);
        *a = completion(req, chat, size, finish, cut);
    }
    json_decref(req);
    return 1;
}
