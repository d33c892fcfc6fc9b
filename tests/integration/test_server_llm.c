/* test_server_llm.c: strata serve as a caching gateway to an OpenAI-compatible API
 * (--llm-upstream, routes of kind openai), against the test origin's fake API
 * (tests/origin/fake_openai.c), with and without a real Redis, over two instances.
 *
 * What is proved: a deterministic chat or completion is answered once by the upstream and then
 * from the cache (the same id, X-Cache HIT-*, X-Cache-Tokens-Saved); a streamed and a plain request
 * share one entry both ways (a streamed miss streams and is stored; a stored answer is replayed as
 * events that rebuild the same content); sampled requests, no-store, incomplete answers, cut
 * streams and the provider's errors are never stored; no-cache refreshes; strata's "cache" body
 * member never goes upstream; tenants, namespaces and provider keys never share entries; with
 * OPENAI_API_KEY the SDK's api_key is a strata token and the provider's key goes upstream; a bad
 * body is a 400 in OpenAI's shape and never forwarded; embeddings are cached per input (a batch
 * sends only its misses upstream, the answer is in order, each vector the fresh answer's bytes, or
 * the same float32s in the other encoding); 100 identical requests over two instances
 * sharing Redis make one upstream call; what strata does not cache passes through.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "it_tmp.h"
#include "proxy_harness.h"

#define JSON_CT "Content-Type: application/json"

/* ---- helpers ------------------------------------------------------------------------------ */

static sh_server *start_llm(const oh_origin *o, const char *const *env)
{
    static const char *const dflt[] = {"STRATA_WORKERS=2", NULL};
    char *url = it_xasprintf("http://127.0.0.1:%d/v1", oh_port(o));
    const char *args[] = {"--llm-upstream", url, NULL};
    sh_server *s = sh_start(env ? env : dflt, args);
    free(url);
    return s;
}

/* strata serve --config FILE, FILE's text fmt with the origin's port for its %d, in a temp dir of
 * its own (*dir, which stop_llm removes). */
static sh_server *start_llm_file(const oh_origin *o, const char *fmt, const char *const *env,
                                 char **dir)
{
    *dir = it_make_temp_dir("llm-config");
    char *yaml = it_xasprintf(fmt, oh_port(o));
    char *path = px_write_file(*dir, "strata.yaml", yaml);
    sh_server *s = px_start_config(path, env);
    free(yaml);
    free(path);
    return s;
}

/* Stops s (its exit and log checked), the origin, and removes dir (NULL: none). */
static void stop_llm(sh_server *s, oh_origin *o, char *dir)
{
    assert_int_equal(sh_stop_check(s), 0);
    oh_stop(o);
    if (dir != NULL) {
        it_remove_tree(dir);
        free(dir);
    }
}

/* POST path with body and headers (NULL-terminated, JSON_CT added). */
static sh_resp *post(const sh_server *s, const char *path, const char *body, ...)
{
    const char *h[16] = {JSON_CT};
    size_t n = 1;
    va_list ap;
    va_start(ap, body);
    for (const char *v; (v = va_arg(ap, const char *)) != NULL && n < 15;)
        h[n++] = v;
    va_end(ap);
    h[n] = NULL;
    return px_send(s, "POST", path, body, 0, h);
}

/* The fake upstream's counters (GET /__openai). The caller json_decrefs. */
static json_t *upstream_counters(const oh_origin *o)
{
    sh_resp *r = sh_request_port(oh_port(o), "GET", "/__openai", NULL, NULL, 0, 0);
    SH_EXPECT_STATUS(r, 200);
    json_t *j = sh_resp_json(r);
    assert_non_null(j);
    sh_resp_free(r);
    return j;
}

static long long counter(const oh_origin *o, const char *name)
{
    json_t *j = upstream_counters(o);
    long long v = json_integer_value(json_object_get(j, name));
    json_decref(j);
    return v;
}

/* A chat request for content, deterministic unless extra says otherwise. */
static char *chat_body(const char *content, const char *extra)
{
    return it_xasprintf(
        "{\"model\":\"gpt-test\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]"
        "%s%s}",
        content, extra ? "," : "", extra ? extra : "");
}

/* The answer's id and first choice's content (a plain answer). */
static void answer_of(const sh_resp *r, char *id, size_t idcap, char *content, size_t ccap)
{
    SH_EXPECT_STATUS(r, 200);
    json_t *j = sh_resp_json(r);
    assert_non_null(j);
    json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
    json_t *msg = json_object_get(c0, "message");
    json_t *text = msg ? json_object_get(msg, "content") : json_object_get(c0, "text");
    assert_true(json_is_string(text));
    assert_true(json_is_string(json_object_get(c0, "finish_reason")));
    snprintf(id, idcap, "%s", json_string_value(json_object_get(j, "id")));
    snprintf(content, ccap, "%s", json_string_value(text));
    json_decref(j);
}

/* A stream's events rebuilt: the id, the content joined, the finish reason, whether a usage
 * chunk came, and that it ended with [DONE]. */
typedef struct streamed {
    char id[64], content[8192], finish[32];
    int usage, done, events;
} streamed;

static void read_stream(const sh_resp *r, streamed *out)
{
    SH_EXPECT_STATUS(r, 200);
    assert_true(px_header_has(r, "Content-Type", "text/event-stream"));
    memset(out, 0, sizeof *out);
    const char *p = r->body;
    while ((p = strstr(p, "data: ")) != NULL) {
        p += 6;
        const char *end = strstr(p, "\n\n");
        assert_non_null(end);
        out->events++;
        if ((size_t)(end - p) == 6 && memcmp(p, "[DONE]", 6) == 0) {
            out->done = 1;
            p = end;
            continue;
        }
        assert_false(out->done); /* nothing after [DONE] */
        json_t *j = json_loadb(p, (size_t)(end - p), 0, NULL);
        assert_non_null(j);
        snprintf(out->id, sizeof out->id, "%s", json_string_value(json_object_get(j, "id")));
        assert_string_equal(json_string_value(json_object_get(j, "object")),
                            "chat.completion.chunk");
        if (json_is_object(json_object_get(j, "usage")))
            out->usage = 1;
        json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
        json_t *content = json_object_get(json_object_get(c0, "delta"), "content");
        if (json_is_string(content))
            strncat(out->content, json_string_value(content),
                    sizeof out->content - strlen(out->content) - 1);
        json_t *fr = json_object_get(c0, "finish_reason");
        if (json_is_string(fr))
            snprintf(out->finish, sizeof out->finish, "%s", json_string_value(fr));
        json_decref(j);
        p = end;
    }
}

/* Asserts a JSON error in OpenAI's shape: {"error": {"message", "type", "code"}}. */
static void expect_openai_error(const sh_resp *r, long status, const char *code)
{
    SH_EXPECT_STATUS(r, status);
    json_t *j = sh_resp_json(r), *e = json_object_get(j, "error");
    assert_true(json_is_string(json_object_get(e, "message")));
    assert_true(json_is_string(json_object_get(e, "type")));
    if (code != NULL)
        assert_string_equal(json_string_value(json_object_get(e, "code")), code);
    json_decref(j);
}

#define CHAT "/v1/chat/completions"

/* ---- plain answers ------------------------------------------------------------------------ */

static void test_chat_cached_once(void **state)
{
    (void)state;
    oh_origin *o = oh_start(NULL);
    sh_server *s = start_llm(o, NULL);
    assert_non_null(s);
    char *b = chat_body("what is a cache", "\"temperature\":0");
    char id1[64], id2[64], c1[256], c2[256];
    sh_resp *r = post(s, CHAT, b, NULL);
    answer_of(r, id1, sizeof id1, c1, sizeof c1);
    px_expect_xcache(r, "MISS");
    assert_true(px_header_has(r, "Cache-Status", "stored"));
    sh_resp_free(r);
    /* The same request spelt otherwise (key order, 0.0 for 0, a user and stream false): a hit. */
    r = post(s, CHAT,
             "{\"temperature\":0.0,\"stream\":false,\"user\":\"u1\",\"messages\":[{\"content\":"
             "\"what is a cache\",\"role\":\"user\"}],\"model\":\"gpt-test\"}",
             NULL);
    answer_of(r, id2, sizeof id2, c2, sizeof c2);
    px_expect_xcache(r, "HIT-L1");
    assert_string_equal(id1, id2);
    assert_string_equal(c1, c2);
    assert_string_equal(c1, "Echo: what is a cache");
    const char *saved = sh_resp_header(r, "X-Cache-Tokens-Saved");
    assert_non_null(saved);
    assert_true(atol(saved) > 0);
    sh_resp_free(r);
    assert_int_equal(counter(o, "chat"), 1);
    /* Another message is another entry. */
    free(b);
    b = chat_body("what is a cache?", "\"seed\":7");
    r = post(s, CHAT, b, NULL);
    px_expect_xcache(r, "MISS");
    sh_resp_free(r);
    assert_int_equal(counter(o, "chat"), 2);
    /* Legacy completions too. */
    const char *cb = "{\"model\":\"m\",\"prompt\":\"say hi\",\"temperature\":0}";
    r = post(s, "/v1/completions", cb, NULL);
    answer_of(r, id1, sizeof id1, c1, sizeof c1);
    px_expect_xcache(r, "MISS");
    sh_resp_free(r);
    r = post(s, "/v1/completions", cb, NULL);
    answer_of(r, id2, sizeof id2, c2, sizeof c2);
    px_expect_xcache(r, "HIT-L1");
    assert_string_equal(id1, id2);
    assert_string_equal(c2, "Echo: say hi");
    sh_resp_free(r);
    assert_int_equal(counter(o, "completions"), 1);
    free(b);
    stop_llm(s, o, NULL);
}

/* ---- streams ------------------------------------------------------------------------------ */

static void test_stream_and_plain_share_an_entry(void **state)
{
    (void)state;
    oh_origin *o = oh_start(NULL);
    sh_server *s = start_llm(o, NULL);
    assert_non_null(s);
    /* A streamed miss streams (events as the upstream sends them) and is stored ... */
    char *b = chat_body("tell me a long story about caches", "\"seed\":1,\"stream\":true");
    sh_resp *r = post(s, CHAT, b, "X-Origin-Chunk-Delay-Ms: 5", NULL);
    streamed st;
    read_stream(r, &st);
    px_expect_xcache(r, "MISS");
    assert_true(st.done);
    assert_true(st.events > 4);
    assert_string_equal(st.content, "Echo: tell me a long story about caches");
    assert_string_equal(st.finish, "stop");
    sh_resp_free(r);
    /* ... so the plain request is a hit with the same answer. */
    free(b);
    b = chat_body("tell me a long story about caches", "\"seed\":1");
    char id[64], content[256];
    r = post(s, CHAT, b, NULL);
    answer_of(r, id, sizeof id, content, sizeof content);
    px_expect_xcache(r, "HIT-L1");
    assert_string_equal(id, st.id);
    assert_string_equal(content, st.content);
    sh_resp_free(r);
    assert_int_equal(counter(o, "chat"), 1);
    assert_int_equal(counter(o, "streams"), 1);

    /* A plain miss, then a streamed hit replayed as events, usage included when asked. */
    free(b);
    b = chat_body("a plain question", "\"temperature\":0");
    r = post(s, CHAT, b, NULL);
    answer_of(r, id, sizeof id, content, sizeof content);
    sh_resp_free(r);
    free(b);
    b = chat_body("a plain question",
                  "\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    r = post(s, CHAT, b, NULL);
    read_stream(r, &st);
    px_expect_xcache(r, "HIT-L1");
    assert_true(st.done);
    assert_true(st.usage);
    assert_string_equal(st.id, id);
    assert_string_equal(st.content, content);
    assert_string_equal(st.finish, "stop");
    sh_resp_free(r);
    /* Without include_usage: no usage chunk. */
    free(b);
    b = chat_body("a plain question", "\"temperature\":0,\"stream\":true");
    r = post(s, CHAT, b, NULL);
    read_stream(r, &st);
    assert_false(st.usage);
    assert_true(st.done);
    sh_resp_free(r);
    assert_int_equal(counter(o, "chat"), 2);
    free(b);
    stop_llm(s, o, NULL);
}

/* Sends a streamed chat request for body on a connection of its own (closed after the answer). */
static int stream_open(const sh_server *s, const char *body, const char *extra)
{
    int fd = sh_raw_connect(sh_port(s));
    assert_true(fd >= 0);
    char *req = it_xasprintf("POST " CHAT " HTTP/1.1\r\nHost: strata\r\nContent-Type: "
                             "application/json\r\nConnection: close\r\n%sContent-Length: %zu"
                             "\r\n\r\n%s",
                             extra, strlen(body), body);
    assert_int_equal(sh_raw_send(fd, req, strlen(req)), 0);
    free(req);
    return fd;
}

/* Reads fd until its bytes hold needle (or 10 s pass); appends to *buf. Returns 1 if they do. */
static int read_until(int fd, char **buf, size_t *len, const char *needle)
{
    long deadline = sh_now_ms() + 10000;
    while (strstr(*buf, needle) == NULL && sh_now_ms() < deadline) {
        size_t n = 0;
        int eof = 0;
        char *more = sh_raw_read_all(fd, 50, &n, &eof);
        *buf = realloc(*buf, *len + n + 1);
        memcpy(*buf + *len, more, n + 1);
        *len += n;
        free(more);
        if (eof)
            break;
    }
    return strstr(*buf, needle) != NULL;
}

/* The body of a chunked answer (after its head), its chunks joined. */
static char *dechunk(const char *raw)
{
    const char *p = strstr(raw, "\r\n\r\n");
    assert_non_null(p);
    p += 4;
    char *out = calloc(1, strlen(p) + 1);
    size_t n = 0;
    for (;;) {
        char *end;
        unsigned long size = strtoul(p, &end, 16);
        if (end == p || size == 0 || strncmp(end, "\r\n", 2) != 0)
            break;
        memcpy(out + n, end + 2, size);
        n += size;
        p = end + 2 + size + 2;
    }
    return out;
}

static void test_stream_joiners_share_the_upstream_stream(void **state)
{
    (void)state;
    oh_origin *o = oh_start(NULL);
    sh_server *s = start_llm(o, NULL);
    assert_non_null(s);
    char *b = chat_body("join me", "\"temperature\":0,\"stream\":true");
    /* The leader: a slow stream (about 45 events, 60 ms apart). */
    int lead =
        stream_open(s, b, "X-Origin-Completion-Size: 300\r\nX-Origin-Chunk-Delay-Ms: 60\r\n");
    char *lbuf = calloc(1, 1);
    size_t llen = 0;
    assert_true(read_until(lead, &lbuf, &llen, "data: "));
    /* Joiners, on either worker: each gets the stream from its start, live: its first events
     * come while the upstream is still writing. */
    enum { J = 6 };
    int fd[J];
    char *jbuf[J];
    size_t jlen[J];
    int live = 0;
    for (int i = 0; i < J; i++) {
        fd[i] = stream_open(s, b, "");
        jbuf[i] = calloc(1, 1);
        jlen[i] = 0;
        assert_true(read_until(fd[i], &jbuf[i], &jlen[i], "data: "));
        live += counter(o, "streams_open") == 1;
    }
    assert_true(live > 0);
    assert_true(read_until(lead, &lbuf, &llen, "data: [DONE]"));
    char *leader = dechunk(lbuf);
    for (int i = 0; i < J; i++) {
        assert_true(read_until(fd[i], &jbuf[i], &jlen[i], "\r\n0\r\n\r\n"));
        assert_non_null(strstr(jbuf[i], "X-Cache: HIT-COALESCED"));
        char *mine = dechunk(jbuf[i]);
        if (strcmp(mine, leader) != 0)
            fail_msg("joiner %d got:\n%s\nthe leader got:\n%s", i, mine, leader);
        free(mine);
        free(jbuf[i]);
        close(fd[i]);
    }
    assert_non_null(strstr(leader, "data: [DONE]"));
    assert_int_equal(counter(o, "streams"), 1);
    assert_int_equal(counter(o, "chat"), 1);
    /* Once it ended, the stored answer answers (replayed). */
    sh_resp *r = post(s, CHAT, b, NULL);
    px_expect_xcache(r, "HIT-L1");
    sh_resp_free(r);
    free(leader);
    free(lbuf);
    close(lead);
    free(b);
    stop_llm(s, o, NULL);
}

/* Requests that come while the leader still waits for the upstream's first byte (an LLM's first
 * token takes a while) join its stream too: they get it live, not the whole answer after it. */
static void test_stream_joiners_before_the_first_byte(void **state)
{
    (void)state;
    oh_origin *o = oh_start(NULL);
    sh_server *s = start_llm(o, NULL);
    assert_non_null(s);
    char *b = chat_body("join me early", "\"temperature\":0,\"stream\":true");
    /* The upstream thinks 1.5 s, then streams about 45 events 100 ms apart (every request says
     * so: whichever strata takes first leads). */
    const char *slow = "X-Origin-Delay-Ms: 1500\r\nX-Origin-Completion-Size: 300\r\n"
                       "X-Origin-Chunk-Delay-Ms: 100\r\n";
    int lead = stream_open(s, b, slow);
    enum { J = 4 };
    int fd[J];
    char *jbuf[J];
    size_t jlen[J];
    for (int i = 0; i < J; i++) /* at once: well before the upstream's head */
        fd[i] = stream_open(s, b, slow);
    assert_int_equal(counter(o, "streams"), 0); /* the upstream has not answered yet */
    for (int i = 0; i < J; i++) {
        jbuf[i] = calloc(1, 1);
        jlen[i] = 0;
        assert_true(read_until(fd[i], &jbuf[i], &jlen[i], "data: "));
        /* its first event came while the upstream was still streaming: live, not a replay */
        assert_int_equal(counter(o, "streams_open"), 1);
    }
    char *lbuf = calloc(1, 1);
    size_t llen = 0;
    assert_true(read_until(lead, &lbuf, &llen, "data: [DONE]"));
    char *leader = dechunk(lbuf);
    int coalesced = strstr(lbuf, "X-Cache: HIT-COALESCED") != NULL;
    for (int i = 0; i < J; i++) {
        assert_true(read_until(fd[i], &jbuf[i], &jlen[i], "\r\n0\r\n\r\n"));
        coalesced += strstr(jbuf[i], "X-Cache: HIT-COALESCED") != NULL;
        char *mine = dechunk(jbuf[i]);
        if (strcmp(mine, leader) != 0)
            fail_msg("joiner %d got:\n%s\nthe leader got:\n%s", i, mine, leader);
        free(mine);
        free(jbuf[i]);
        close(fd[i]);
    }
    assert_int_equal(coalesced, J); /* all but the one strata took first joined it */
    assert_int_equal(counter(o, "streams"), 1);
    assert_int_equal(counter(o, "chat"), 1);
    /* Joiners of a stream that ends before it starts are handed back: here the leader's request
     * is answered from the cache, and so is everyone who came with it. */
    int again[J];
    for (int i = 0; i < J; i++)
        again[i] = stream_open(s, b, "");
    for (int i = 0; i < J; i++) {
        char *buf = calloc(1, 1);
        size_t len = 0;
        assert_true(read_until(again[i], &buf, &len, "data: [DONE]"));
        assert_true(strstr(buf, "X-Cache: HIT-L1") != NULL ||
                    strstr(buf, "X-Cache: HIT-COALESCED") != NULL);
        free(buf);
        close(again[i]);
    }
    assert_int_equal(counter(o, "chat"), 1);
    free(leader);
    free(lbuf);
    close(lead);
    free(b);
    stop_llm(s, o, NULL);
}

/* ---- what is never stored ------------------------------------------------------------------ */

/* Sends b twice (with header h, or none) and asserts the upstream was asked both times. */
static void expect_not_stored(sh_server *s, oh_origin *o, const char *b, const char *h,
                              const char *xcache)
{
    long long before = counter(o, "chat");
    for (int i = 0; i < 2; i++) {
        sh_resp *r = post(s, CHAT, b, h, NULL);
        if (xcache != NULL)
            px_expect_xcache(r, xcache);
        sh_resp_free(r);
    }
    assert_int_equal(counter(o, "chat"), before + 2);
}

static void test_never_stored(void **state)
{
    (void)state;
    oh_origin *o = oh_start(NULL);
    sh_server *s = start_llm(o, NULL);
    assert_non_null(s);
    char *b = chat_body("sampled", "\"temperature\":0.7");
    expect_not_stored(s, o, b, NULL, "BYPASS"); /* sampled: each its own answer */
    free(b);
    b = chat_body("no default temperature", NULL);
    expect_not_stored(s, o, b, NULL, "BYPASS"); /* the provider's default is 1: sampled */
    free(b);
    b = chat_body("told not to", "\"temperature\":0");
    expect_not_stored(s, o, b, "Cache-Control: no-store", "BYPASS");
    free(b);
    b = chat_body("told in the body", "\"temperature\":0,\"cache\":{\"no-store\":true}");
    expect_not_stored(s, o, b, NULL, "BYPASS");
    /* strata's member never reaches the provider. */
    json_t *c = upstream_counters(o);
    const char *last = json_string_value(json_object_get(c, "last_body"));
    assert_non_null(strstr(last, "told in the body"));
    assert_null(strstr(last, "\"cache\""));
    json_decref(c);
    free(b);
    b = chat_body("unfinished", "\"temperature\":0");
    expect_not_stored(s, o, b, "X-Origin-No-Finish: 1", "MISS");
    free(b);
    b = chat_body("cut stream", "\"temperature\":0,\"stream\":true");
    expect_not_stored(s, o, b, "X-Origin-Stream-Cut: 1", "MISS");
    free(b);
    /* The provider's errors pass through as it sent them, never stored. */
    b = chat_body("rate limited", "\"temperature\":0");
    long long before = counter(o, "chat");
    for (int i = 0; i < 2; i++) {
        sh_resp *r = post(s, CHAT, b, "X-Origin-Status: 429", NULL);
        expect_openai_error(r, 429, NULL);
        assert_true(px_contains_ci(r->body, r->body_len, "the fake upstream was told to fail"));
        sh_resp_free(r);
    }
    (void)before; /* the fake counts errors it was told to make before the API's counters */
    sh_resp *r = post(s, CHAT, b, NULL);
    px_expect_xcache(r, "MISS"); /* the 429s left nothing behind */
    sh_resp_free(r);
    free(b);
    stop_llm(s, o, NULL);
}

static void test_no_cache_refreshes_and_max_age(void **state)
{
    (void)state;
    oh_origin *o = oh_start(NULL);
    sh_server *s = start_llm(o, NULL);
    assert_non_null(s);
    char *b = chat_body("refresh me", "\"temperature\":0");
    char id1[64], id2[64], id3[64], c[256];
    sh_resp *r = post(s, CHAT, b, NULL);
    answer_of(r, id1, sizeof id1, c, sizeof c);
    sh_resp_free(r);
    r = post(s, CHAT, b, "Cache-Control: no-cache", NULL);
    answer_of(r, id2, sizeof id2, c, sizeof c);
    px_expect_xcache(r, "MISS");
    sh_resp_free(r);
    assert_string_not_equal(id1, id2);
    r = post(s, CHAT, b, NULL); /* the refreshed entry */
    answer_of(r, id3, sizeof id3, c, sizeof c);
    px_expect_xcache(r, "HIT-L1");
    assert_string_equal(id2, id3);
    sh_resp_free(r);
    /* max-age=N: this entry's TTL. */
    free(b);
    b = chat_body("short lived", "\"temperature\":0");
    r = post(s, CHAT, b, "Cache-Control: max-age=1", NULL);
    assert_true(px_header_has(r, "Cache-Status", "ttl=1"));
    sh_resp_free(r);
    sh_sleep_ms(2100);
    r = post(s, CHAT, b, NULL);
    px_expect_xcache(r, "MISS");
    sh_resp_free(r);
    free(b);
    stop_llm(s, o, NULL);
}

/* ---- keys ---------------------------------------------------------------------------------- */

static void test_keys_tenants_namespaces_provider_keys(void **state)
{
    (void)state;
    oh_origin *o = oh_start(NULL);
    sh_server *s = start_llm(o, NULL);
    assert_non_null(s);
    char *b = chat_body("shared?", "\"temperature\":0");
    const char *who[][2] = {{"X-Tenant: acme", NULL},
                            {"X-Tenant: globex", NULL},
                            {"X-Tenant: acme", "X-Cache-Namespace: experiment"},
                            {"X-Tenant: acme", "Authorization: Bearer sk-other"}};
    for (size_t i = 0; i < 4; i++) {
        sh_resp *r = post(s, CHAT, b, who[i][0], who[i][1], NULL);
        px_expect_xcache(r, "MISS");
        sh_resp_free(r);
    }
    for (size_t i = 0; i < 4; i++) {
        sh_resp *r = post(s, CHAT, b, who[i][0], who[i][1], NULL);
        px_expect_xcache(r, "HIT-L1");
        sh_resp_free(r);
    }
    assert_int_equal(counter(o, "chat"), 4);
    /* Without a provider key configured, the client's own goes upstream untouched. */
    json_t *c = upstream_counters(o);
    assert_string_equal(json_string_value(json_object_get(c, "last_authorization")),
                        "Bearer sk-other");
    json_decref(c);
    free(b);
    stop_llm(s, o, NULL);
}

static void test_provider_key_and_strata_tokens(void **state)
{
    (void)state;
    oh_origin *o = oh_start(NULL);
    const char *env[] = {"STRATA_WORKERS=2", "OPENAI_API_KEY=sk-provider-secret",
                         "STRATA_TOKENS=reader-token-1:read:acme,writer-token-1:write", NULL};
    sh_server *s = start_llm(o, env);
    assert_non_null(s);
    char *b = chat_body("who pays", "\"temperature\":0");
    sh_resp *r = post(s, CHAT, b, NULL); /* no token: strata's key is not for anyone */
    SH_EXPECT_STATUS(r, 401);
    sh_resp_free(r);
    r = post(s, CHAT, b, "Authorization: Bearer not-a-token", NULL);
    SH_EXPECT_STATUS(r, 401);
    sh_resp_free(r);
    assert_int_equal(counter(o, "chat"), 0);
    r = post(s, CHAT, b, "Authorization: Bearer reader-token-1", NULL);
    px_expect_xcache(r, "MISS");
    sh_resp_free(r);
    json_t *c = upstream_counters(o);
    assert_string_equal(json_string_value(json_object_get(c, "last_authorization")),
                        "Bearer sk-provider-secret");
    json_decref(c);
    /* The token's tenant keys the entry: acme's answer is not the default tenant's. */
    r = post(s, CHAT, b, "Authorization: Bearer writer-token-1", NULL);
    px_expect_xcache(r, "MISS");
    sh_resp_free(r);
    r = post(s, CHAT, b, "Authorization: Bearer reader-token-1", NULL);
    px_expect_xcache(r, "HIT-L1");
    sh_resp_free(r);
    /* The secret never reaches the log. */
    assert_false(sh_log_contains(s, "sk-provider-secret"));
    free(b);
    stop_llm(s, o, NULL);
}

static void test_azure_deployments_in_the_path(void **state)
{
    (void)state;
    oh_origin *o = oh_start(NULL);
    char *d;
    const char *env[] = {"STRATA_WORKERS=2", "AZURE_KEY=azure-secret", NULL};
    sh_server *s =
        start_llm_file(o,
                       "origins: [{name: azure, url: \"http://127.0.0.1:%d\", token_env: "
                       "AZURE_KEY, token_header: api-key}]\n"
                       "routes: [{name: aoai, kind: openai, match: {path: '/openai/*'}}]\n",
                       env, &d);
    assert_non_null(s);
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"az\"}],\"temperature\":0}";
    const char *gpt4 = "/openai/deployments/gpt4/chat/completions?api-version=2024-02-01";
    const char *gpt35 = "/openai/deployments/gpt35/chat/completions?api-version=2024-02-01";
    sh_resp *r = post(s, gpt4, body, "api-key: the-client-key", NULL);
    px_expect_xcache(r, "MISS");
    sh_resp_free(r);
    r = post(s, gpt4, body, "api-key: the-client-key", NULL);
    px_expect_xcache(r, "HIT-L1");
    sh_resp_free(r);
    r = post(s, gpt35, body, NULL); /* another deployment: another entry */
    px_expect_xcache(r, "MISS");
    sh_resp_free(r);
    assert_int_equal(counter(o, "chat"), 2);
    stop_llm(s, o, d);
}

/* ---- errors -------------------------------------------------------------------------------- */

static void test_bad_bodies_and_unreachable_upstream(void **state)
{
    (void)state;
    oh_origin *o = oh_start(NULL);
    sh_server *s = start_llm(o, NULL);
    assert_non_null(s);
    const char *bad[] = {"not json",
                         "[1,2]",
                         "{\"model\":\"m\",\"messages\":\"hi\"}",
                         "{\"model\":\"m\",\"model\":\"n\",\"messages\":[]}",
                         "{\"model\":7,\"messages\":[]}",
                         "{\"model\":\"m\",\"messages\":[],\"cache\":{\"ttl\":\"x\"}}",
                         ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sh_resp *r = post(s, CHAT, bad[i], NULL);
        expect_openai_error(r, 400, "invalid_request");
        sh_resp_free(r);
        assert_true(sh_healthy(s));
    }
    char *b = chat_body("x", "\"temperature\":0");
    sh_resp *r = post(s, CHAT, b, "X-Cache-Namespace: bad name!", NULL);
    expect_openai_error(r, 400, "invalid_request");
    sh_resp_free(r);
    assert_int_equal(counter(o, "chat"), 0); /* none of them went upstream */
    oh_kill(o);
    r = post(s, CHAT, b, NULL);
    expect_openai_error(r, 502, "origin_unavailable");
    sh_resp_free(r);
    free(b);
    stop_llm(s, o, NULL);
}

/* ---- embeddings per input ------------------------------------------------------------------ */

#define EMB "/v1/embeddings"

/* {"model": "emb", "input": [inputs[from..to) as strings "text-<i>"], "encoding_format": fmt} */
static char *emb_body(int from, int to, const char *fmt)
{
    char *in = it_xstrdup("");
    for (int i = from; i < to; i++) {
        char *n = it_xasprintf("%s%s\"text-%d\"", in, i > from ? "," : "", i);
        free(in);
        in = n;
    }
    char *b = it_xasprintf("{\"model\":\"emb\",\"input\":[%s]%s%s%s}", in,
                           fmt ? ",\"encoding_format\":\"" : "", fmt ? fmt : "", fmt ? "\"" : "");
    free(in);
    return b;
}

/* The answer's data[i].embedding as JSON text (compact), to free. */
static char *vector_text(const sh_resp *r, size_t i)
{
    json_t *j = sh_resp_json(r);
    json_t *e = json_object_get(json_array_get(json_object_get(j, "data"), i), "embedding");
    assert_non_null(e);
    char *s = json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    return s;
}

static void test_embeddings_per_input(void **state)
{
    (void)state;
    oh_origin *o = oh_start(NULL);
    sh_server *s = start_llm(o, NULL);
    assert_non_null(s);
    /* The fresh answer for 16 inputs, asked of the upstream itself. */
    char *all = emb_body(0, 16, NULL);
    const char *h[] = {JSON_CT, NULL};
    sh_resp *fresh = sh_request_port(oh_port(o), "POST", EMB, h, all, strlen(all), 0);
    SH_EXPECT_STATUS(fresh, 200);
    long long inputs0 = counter(o, "embedding_inputs");
    /* 8 of them through strata: stored one by one. */
    char *half = emb_body(0, 8, NULL);
    sh_resp *r = post(s, EMB, half, NULL);
    px_expect_xcache(r, "MISS");
    assert_true(px_header_has(r, "X-Cache-Inputs", "hits=0 misses=8"));
    sh_resp_free(r);
    assert_int_equal(counter(o, "embedding_inputs"), inputs0 + 8);
    /* The 16: only the 8 misses go upstream, in one request, and the answer is in order, each
     * vector the very bytes of the fresh answer's. */
    r = post(s, EMB, all, NULL);
    SH_EXPECT_STATUS(r, 200);
    assert_true(px_header_has(r, "X-Cache-Inputs", "hits=8 misses=8"));
    assert_int_equal(counter(o, "embedding_inputs"), inputs0 + 16);
    assert_int_equal(counter(o, "embeddings"), 3);
    json_t *c = upstream_counters(o);
    assert_non_null(strstr(json_string_value(json_object_get(c, "last_body")), "text-8"));
    assert_null(strstr(json_string_value(json_object_get(c, "last_body")), "text-7\""));
    json_decref(c);
    json_t *j = sh_resp_json(r);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 16);
    for (size_t i = 0; i < 16; i++) {
        json_t *d = json_array_get(json_object_get(j, "data"), i);
        assert_int_equal(json_integer_value(json_object_get(d, "index")), (json_int_t)i);
        char *mine = vector_text(r, i), *theirs = vector_text(fresh, i);
        assert_string_equal(mine, theirs);
        assert_non_null(strstr(r->body, theirs)); /* the same bytes, not just the same numbers */
        free(mine);
        free(theirs);
    }
    /* usage counts every input; the hits' share is what was saved. */
    json_t *u = json_object_get(j, "usage");
    assert_true(json_integer_value(json_object_get(u, "prompt_tokens")) > 0);
    assert_true(atol(sh_resp_header(r, "X-Cache-Tokens-Saved")) > 0);
    json_decref(j);
    sh_resp_free(r);
    /* All cached now: nothing goes upstream. */
    r = post(s, EMB, all, NULL);
    px_expect_xcache(r, "HIT-L1");
    assert_true(px_header_has(r, "X-Cache-Inputs", "hits=16 misses=0"));
    sh_resp_free(r);
    assert_int_equal(counter(o, "embedding_inputs"), inputs0 + 16);
    /* The other encoding: base64 of the same float32s. */
    char *b64 = emb_body(0, 16, "base64");
    r = post(s, EMB, b64, NULL);
    px_expect_xcache(r, "HIT-L1");
    j = sh_resp_json(r);
    json_t *fj = sh_resp_json(fresh);
    for (size_t i = 0; i < 16; i++) {
        const char *e = json_string_value(
            json_object_get(json_array_get(json_object_get(j, "data"), i), "embedding"));
        json_t *fv = json_object_get(json_array_get(json_object_get(fj, "data"), i), "embedding");
        size_t n;
        unsigned char *bytes = sh_b64_decode(e, &n);
        assert_non_null(bytes);
        assert_int_equal(n, 4 * json_array_size(fv));
        for (size_t k = 0; k < json_array_size(fv); k++) {
            float f;
            memcpy(&f, bytes + 4 * k, 4);
            assert_true(f == (float)json_real_value(json_array_get(fv, k)));
        }
        free(bytes);
    }
    json_decref(fj);
    json_decref(j);
    sh_resp_free(r);
    /* Token ids and a single string are inputs too; dimensions key apart. */
    const char *tok = "{\"model\":\"emb\",\"input\":[[1,2,3],[4,5]]}";
    r = post(s, EMB, tok, NULL);
    px_expect_xcache(r, "MISS");
    sh_resp_free(r);
    r = post(s, EMB, "{\"model\":\"emb\",\"input\":[4,5]}", NULL);
    px_expect_xcache(r, "HIT-L1");
    sh_resp_free(r);
    r = post(s, EMB, "{\"model\":\"emb\",\"input\":[4,5],\"dimensions\":4}", NULL);
    px_expect_xcache(r, "MISS");
    json_t *d4 = sh_resp_json(r);
    assert_int_equal(json_array_size(json_object_get(json_array_get(json_object_get(d4, "data"), 0),
                                                     "embedding")),
                     4);
    json_decref(d4);
    sh_resp_free(r);
    /* The upstream's error passes through and nothing is stored. */
    char *err = emb_body(100, 102, NULL);
    r = post(s, EMB, err, "X-Origin-Status: 500", NULL);
    SH_EXPECT_STATUS(r, 500);
    sh_resp_free(r);
    /* The same bytes again: the worker remembers the body (llm/llm_memo.h) and parses it only
     * now, to send its misses upstream. */
    long long before = counter(o, "embedding_inputs");
    r = post(s, EMB, err, NULL);
    SH_EXPECT_STATUS(r, 200);
    assert_true(px_header_has(r, "X-Cache-Inputs", "hits=0 misses=2"));
    assert_int_equal(json_array_size(json_object_get(j = sh_resp_json(r), "data")), 2);
    json_decref(j);
    sh_resp_free(r);
    assert_int_equal(counter(o, "embedding_inputs"), before + 2);
    c = upstream_counters(o);
    assert_non_null(strstr(json_string_value(json_object_get(c, "last_body")), "\"text-101\""));
    json_decref(c);
    free(err);
    free(b64);
    free(half);
    free(all);
    sh_resp_free(fresh);
    stop_llm(s, o, NULL);
}

static void test_error_ttl_keeps_provider_errors_briefly(void **state)
{
    (void)state;
    oh_origin *o = oh_start(NULL);
    char *d;
    sh_server *s = start_llm_file(o,
                                  "origins: [{name: up, url: \"http://127.0.0.1:%d/v1\"}]\n"
                                  "routes: [{name: llm, kind: openai, match: {path: '/v1/*'}, "
                                  "strip_prefix: /v1, error_ttl: 2s}]\n",
                                  NULL, &d);
    assert_non_null(s);
    char *b = chat_body("overloaded", "\"temperature\":0,\"stream\":true");
    sh_resp *r = post(s, CHAT, b, "X-Origin-Status: 429", NULL);
    expect_openai_error(r, 429, NULL);
    px_expect_xcache(r, "MISS");
    sh_resp_free(r);
    /* Within error_ttl the provider is not asked again: the 429 is answered from the cache. */
    r = post(s, CHAT, b, NULL);
    expect_openai_error(r, 429, NULL);
    px_expect_xcache(r, "HIT-L1");
    sh_resp_free(r);
    assert_int_equal(counter(o, "chat"), 0); /* the fake counts answers, not the errors it made */
    sh_sleep_ms(3100);
    r = post(s, CHAT, b, NULL);
    SH_EXPECT_STATUS(r, 200);
    px_expect_xcache(r, "MISS");
    sh_resp_free(r);
    assert_int_equal(counter(o, "chat"), 1);
    free(b);
    stop_llm(s, o, d);
}

/* ---- counters ------------------------------------------------------------------------------ */

/* The llm row of /cache/stats for (route, model, tenant), or NULL (json_decref the stats). */
static json_t *llm_row(json_t *stats, const char *route, const char *model, const char *tenant)
{
    json_t *rows = json_object_get(json_object_get(stats, "proxy"), "llm");
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *r = json_array_get(rows, i);
        if (strcmp(json_string_value(json_object_get(r, "route")), route) == 0 &&
            strcmp(json_string_value(json_object_get(r, "model")), model) == 0 &&
            strcmp(json_string_value(json_object_get(r, "tenant")), tenant) == 0)
            return r;
    }
    return NULL;
}

static long long field(json_t *row, const char *name)
{
    assert_non_null(row);
    return json_integer_value(json_object_get(row, name));
}

static void test_counters_tokens_and_money_saved(void **state)
{
    (void)state;
    oh_origin *o = oh_start(NULL);
    char *d;
    sh_server *s =
        start_llm_file(o,
                       "origins: [{name: up, url: \"http://127.0.0.1:%d/v1\"}]\n"
                       "routes: [{name: chat, kind: openai, match: {path: '/v1/*'}, "
                       "strip_prefix: /v1}]\n"
                       "prices: {gpt-te: {input: 1000, output: 2000}, other: {input: 1}}\n",
                       NULL, &d);
    assert_non_null(s);
    char *b = chat_body("count me", "\"temperature\":0");
    for (int i = 0; i < 3; i++) /* a miss, then two hits */
        sh_resp_free(post(s, CHAT, b, "X-Tenant: acme", NULL));
    char *sampled = chat_body("count me", "\"temperature\":1");
    sh_resp_free(post(s, CHAT, sampled, "X-Tenant: acme", NULL));
    /* What one answer costs, from the upstream itself. */
    const char *h[] = {JSON_CT, NULL};
    sh_resp *fresh = sh_request_port(oh_port(o), "POST", CHAT, h, b, strlen(b), 0);
    json_t *fj = sh_resp_json(fresh), *u = json_object_get(fj, "usage");
    long long prompt = json_integer_value(json_object_get(u, "prompt_tokens"));
    long long completion = json_integer_value(json_object_get(u, "completion_tokens"));
    json_decref(fj);
    sh_resp_free(fresh);
    sh_resp *r = sh_call(s, "GET", "/cache/stats", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    json_t *st = sh_resp_json(r);
    json_t *row = llm_row(st, "chat", "gpt-test", "acme");
    assert_int_equal(field(row, "requests"), 4);
    assert_int_equal(field(row, "hits"), 2);
    assert_int_equal(field(row, "bypass"), 1);
    assert_int_equal(field(row, "prompt_tokens_saved"), 2 * prompt);
    assert_int_equal(field(row, "completion_tokens_saved"), 2 * completion);
    double usd = json_real_value(json_object_get(row, "usd_saved"));
    double want = 2.0 * (double)(prompt * 1000 + completion * 2000) / 1e6;
    assert_true(usd > want - 1e-6 && usd < want + 1e-6);
    assert_null(llm_row(st, "chat", "gpt-test", "default")); /* tenants apart */
    json_decref(st);
    sh_resp_free(r);
    r = sh_call(s, "GET", "/metrics", NULL, NULL, NULL, NULL);
    assert_non_null(strstr(r->body, "strata_llm_requests_total{route=\"chat\",model=\"gpt-test\","
                                    "tenant=\"acme\",result=\"hit\"} 2"));
    assert_non_null(strstr(r->body, "strata_llm_requests_total{route=\"chat\",model=\"gpt-test\","
                                    "tenant=\"acme\",result=\"miss\"} 1"));
    assert_non_null(strstr(r->body, "strata_llm_usd_saved_total{route=\"chat\",model=\"gpt-test\","
                                    "tenant=\"acme\"}"));
    sh_resp_free(r);
    /* strata cache stats shows the row. */
    char *cmd = it_xasprintf("STRATA_URL=http://127.0.0.1:%d NO_COLOR=1 %s cache stats 2>&1",
                             sh_port(s), STRATA_BINARY);
    FILE *p = popen(cmd, "r");
    char out[16384] = "", line[1024];
    while (p != NULL && fgets(line, sizeof line, p) != NULL)
        if (strlen(out) + strlen(line) < sizeof out)
            strcat(out, line);
    assert_int_equal(pclose(p), 0);
    if (strstr(out, "chat / gpt-test / acme") == NULL || strstr(out, "4 requests, 2 hits") == NULL)
        fail_msg("strata cache stats:\n%s", out);
    free(cmd);
    free(sampled);
    free(b);
    stop_llm(s, o, d);
}

/* ---- what passes through ------------------------------------------------------------------ */

static void test_passthrough_and_own_routes(void **state)
{
    (void)state;
    oh_origin *o = oh_start(NULL);
    sh_server *s = start_llm(o, NULL);
    assert_non_null(s);
    sh_resp *r = px_get(s, "GET", "/v1/models", (const char *)NULL);
    SH_EXPECT_STATUS(r, 200);
    px_expect_xcache(r, "BYPASS");
    assert_true(px_contains_ci(r->body, r->body_len, "fake-model"));
    sh_resp_free(r);
    /* strata's own /v1/cache keeps winning over the route's /v1 paths. */
    r = sh_call(s, "PUT", "/v1/cache/default/k", NULL, NULL, "text/plain", "v");
    assert_true(r->status == 200 || r->status == 201 || r->status == 204);
    sh_resp_free(r);
    r = sh_call(s, "GET", "/v1/cache/default/k", NULL, NULL, NULL, NULL);
    SH_EXPECT_STATUS(r, 200);
    assert_string_equal(r->body, "v");
    sh_resp_free(r);
    assert_int_equal(counter(o, "chat"), 0);
    stop_llm(s, o, NULL);
}

/* ---- one upstream call across instances ---------------------------------------------------- */

typedef struct crowd {
    sh_server *s[2];
    const char *body;
    atomic_int ok, hits;
    char first_id[64];
} crowd;

static void *crowd_client(void *arg)
{
    crowd *c = arg;
    static atomic_int n;
    int i = atomic_fetch_add(&n, 1);
    sh_resp *r = post(c->s[i % 2], CHAT, c->body, "X-Origin-Delay-Ms: 400", NULL);
    /* A stream must be whole too: the events end with [DONE]. */
    int whole = strstr(c->body, "\"stream\":true") == NULL || strstr(r->body, "data: [DONE]");
    if (r->status == 200 && strstr(r->body, c->first_id) != NULL && whole)
        atomic_fetch_add(&c->ok, 1);
    sh_resp_free(r);
    return NULL;
}

static void test_one_upstream_call_over_two_instances(void **state)
{
    (void)state;
    rh_server *redis = rh_start(NULL);
    assert_non_null(redis);
    oh_origin *o = oh_start(NULL);
    char *url = it_xasprintf("REDIS_URL=%s", rh_url(redis));
    const char *env[] = {"STRATA_WORKERS=2", url, NULL};
    crowd c = {.s = {start_llm(o, env), start_llm(o, env)}};
    assert_non_null(c.s[0]);
    assert_non_null(c.s[1]);
    char *b = chat_body("one call for all", "\"temperature\":0");
    c.body = b;
    /* The id the fake will give its next answer: the one all 100 must get. */
    json_t *j = upstream_counters(o);
    snprintf(c.first_id, sizeof c.first_id, "\"chatcmpl-%lld\"",
             json_integer_value(json_object_get(j, "chat")) + 1);
    json_decref(j);
    pthread_t t[100];
    for (int i = 0; i < 100; i++)
        assert_int_equal(pthread_create(&t[i], NULL, crowd_client, &c), 0);
    for (int i = 0; i < 100; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&c.ok), 100);
    assert_int_equal(counter(o, "chat"), 1);
    /* Streamed requests too: one upstream stream; the others get its answer, live or replayed.
     * On the instance that does not ask upstream, its first request waits on the other's lease
     * while the rest join its stream, unstarted; that request is then answered from the store,
     * and they are handed back (llm_live_cb.alone) and look up again. */
    char *sb = chat_body("one stream for all", "\"temperature\":0,\"stream\":true");
    c.body = sb;
    atomic_store(&c.ok, 0);
    j = upstream_counters(o);
    snprintf(c.first_id, sizeof c.first_id, "\"chatcmpl-%lld\"",
             json_integer_value(json_object_get(j, "chat")) + 1);
    json_decref(j);
    for (int i = 0; i < 40; i++)
        assert_int_equal(pthread_create(&t[i], NULL, crowd_client, &c), 0);
    for (int i = 0; i < 40; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&c.ok), 40);
    assert_int_equal(counter(o, "chat"), 2);
    assert_int_equal(counter(o, "streams"), 1);
    free(sb);
    /* A third instance starts cold and answers from Redis. */
    sh_server *third = start_llm(o, env);
    assert_non_null(third);
    sh_resp *r = post(third, CHAT, b, NULL);
    px_expect_xcache(r, "HIT-L2");
    sh_resp_free(r);
    assert_int_equal(counter(o, "chat"), 2);
    free(b);
    assert_int_equal(sh_stop_check(third), 0);
    assert_int_equal(sh_stop_check(c.s[0]), 0);
    assert_int_equal(sh_stop_check(c.s[1]), 0);
    free(url);
    oh_stop(o);
    rh_stop(redis);
}

int main(void)
{
    SH_TEST_FILTER();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_cached_once),
        cmocka_unit_test(test_stream_and_plain_share_an_entry),
        cmocka_unit_test(test_stream_joiners_share_the_upstream_stream),
        cmocka_unit_test(test_stream_joiners_before_the_first_byte),
        cmocka_unit_test(test_never_stored),
        cmocka_unit_test(test_no_cache_refreshes_and_max_age),
        cmocka_unit_test(test_keys_tenants_namespaces_provider_keys),
        cmocka_unit_test(test_provider_key_and_strata_tokens),
        cmocka_unit_test(test_azure_deployments_in_the_path),
        cmocka_unit_test(test_embeddings_per_input),
        cmocka_unit_test(test_counters_tokens_and_money_saved),
        cmocka_unit_test(test_error_ttl_keeps_provider_errors_briefly),
        cmocka_unit_test(test_bad_bodies_and_unreachable_upstream),
        cmocka_unit_test(test_passthrough_and_own_routes),
        cmocka_unit_test(test_one_upstream_call_over_two_instances),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
