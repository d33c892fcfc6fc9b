/* fuzz_llm_request.c: the LLM cache's request rules (src/server/llm/llm_request.c) on arbitrary
 * bodies, as chat, completion and embeddings requests, and the worker's memo of them
 * (llm_memo.c): a body parsed through the memo, then found in it, gives what the parse gives.
 *
 * Bodies come from clients. Whatever parses must give stable keys: the body's canonical form
 * (the upstream body, written back as canonical JSON) parses again to the same key, the key is 64
 * hex digits, every embedding input has a key and inputs equal as JSON have equal keys; whatever
 * is refused says why. ASan sees any read past the exact-size copy.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm_memo.h"
#include "llm/llm_request.h"
#include "fuzz_check.h"

static int hex64(const char *k)
{
    if (strlen(k) != LLM_KEY_HEX)
        return 0;
    for (const char *p = k; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

static void one(int kind, const char *body, size_t size)
{
    llm_request r;
    char err[256] = "";
    if (llm_request_parse(kind, body, size, &r, err, sizeof err) != 0) {
        CHECK(err[0] != '\0');
        return;
    }
    CHECK(json_object_get(r.upstream, "cache") == NULL);
    char *canon = llm_canonical(r.upstream);
    CHECK(canon != NULL);
    llm_request again;
    /* The canonical upstream body is a request of the same kind, with the same key. */
    CHECK(llm_request_parse(kind, canon, strlen(canon), &again, err, sizeof err) == 0);
    if (kind != LLM_EMBEDDINGS) {
        CHECK(hex64(r.key));
        CHECK(strcmp(r.key, again.key) == 0);
        CHECK(r.deterministic == again.deterministic && r.stream == again.stream);
    } else {
        CHECK(r.ninputs == again.ninputs && r.ninputs > 0 && r.ninputs <= LLM_INPUTS_MAX);
        char k1[LLM_KEY_HEX + 1], k2[LLM_KEY_HEX + 1];
        for (size_t i = 0; i < r.ninputs && i < 64; i++) {
            CHECK(llm_input_key(&r, i, k1) == 0 && llm_input_key(&again, i, k2) == 0);
            CHECK(hex64(k1) && strcmp(k1, k2) == 0);
        }
        CHECK(llm_input_key(&r, r.ninputs, k1) == -1);
    }
    llm_request_free(&again);
    free(canon);
    llm_request_free(&r);
}

/* Through the memo twice (parsed, then remembered when kept): the same verdict and the same
 * fields as a parse. */
static void memo(llm_memo *m, int kind, const char *body, size_t size)
{
    llm_request r, a, b;
    char err[256] = "";
    int rc = llm_request_parse(kind, body, size, &r, err, sizeof err);
    for (int pass = 0; pass < 2; pass++) {
        llm_request *x = pass ? &b : &a;
        CHECK(llm_memo_parse(m, kind, body, size, x, err, sizeof err) == rc);
        if (rc != 0)
            continue;
        CHECK(strcmp(x->key, r.key) == 0 && strcmp(x->model, r.model) == 0);
        CHECK(x->stream == r.stream && x->deterministic == r.deterministic);
        CHECK(x->include_usage == r.include_usage && x->ninputs == r.ninputs);
        CHECK(memcmp(&x->ctl, &r.ctl, sizeof r.ctl) == 0);
        char k1[LLM_KEY_HEX + 1], k2[LLM_KEY_HEX + 1];
        for (size_t i = 0; i < r.ninputs && i < 64; i++) {
            CHECK(llm_input_key(&r, i, k1) == 0 && llm_input_key(x, i, k2) == 0);
            CHECK(strcmp(k1, k2) == 0);
        }
    }
    if (rc == 0) {
        llm_request_free(&a);
        llm_request_free(&b);
        llm_request_free(&r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = malloc(size ? size : 1);
    if (body == NULL)
        return 0;
    memcpy(body, data, size);
    static llm_memo *m; /* one for the run, as a worker's: bodies meet others' entries */
    if (m == NULL)
        m = llm_memo_new();
    for (int kind = LLM_CHAT; kind <= LLM_EMBEDDINGS; kind++) {
        one(kind, body, size);
        memo(m, kind, body, size);
    }
    free(body);
    return 0;
}
