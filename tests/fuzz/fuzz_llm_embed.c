/* fuzz_llm_embed.c: the embeddings scanner and the vector records (src/server/llm/llm_embed.c)
 * on arbitrary upstream answers.
 *
 * The answer comes from a provider strata does not control. Whatever it is, the scanner stays in
 * bounds and every span it gives lies inside the body and starts as a vector does; each span
 * makes a record that reads back to the same text and tokens, and encodes in both encodings
 * without crashing (its own encoding: its own bytes). ASan sees any read past the exact-size
 * copy.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm_embed.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = malloc(size ? size : 1);
    if (body == NULL)
        return 0;
    memcpy(body, data, size);
    llm_span sp[8];
    long n = llm_embedding_spans(body, size, sp, 8);
    CHECK(n >= -1 && n <= 8);
    for (long i = 0; i < n; i++) {
        CHECK(sp[i].off + sp[i].len <= size && sp[i].len >= 2);
        CHECK(body[sp[i].off] == '[' || body[sp[i].off] == '"');
        size_t rl, el;
        char *rec = llm_vector_record(body + sp[i].off, sp[i].len, (int64_t)i, &rl);
        CHECK(rec != NULL);
        llm_vector v;
        CHECK(llm_vector_decode(rec, rl, &v) == 0);
        CHECK(v.raw_len == sp[i].len && memcmp(v.raw, body + sp[i].off, v.raw_len) == 0);
        CHECK(v.tokens == i);
        for (int b64 = 0; b64 < 2; b64++) {
            char *e = llm_vector_encode(&v, b64, &el);
            if (b64 == v.base64)
                CHECK(e != NULL && el == v.raw_len && memcmp(e, v.raw, el) == 0);
            free(e);
        }
        free(rec);
    }
    free(body);
    return 0;
}
