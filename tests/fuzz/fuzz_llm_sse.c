/* fuzz_llm_sse.c: the SSE recorder and the replay (src/server/llm/llm_sse.c) on arbitrary
 * streams: upstream bytes, split where the first byte says.
 *
 * The stream comes from a provider strata does not control. Whatever it is, the recorder never
 * crashes and records the same completion however the bytes are split; whatever it records is a
 * complete answer that replays as events which record back to the same completion. ASan sees any
 * read past the exact-size copy.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm_request.h"
#include "llm/llm_sse.h"
#include "fuzz_check.h"

static char *record(int kind, const char *s, size_t len, size_t step, size_t *out)
{
    llm_sse_rec *r = llm_sse_rec_new(kind, 1 << 20);
    if (r == NULL)
        return NULL;
    for (size_t off = 0; off < len; off += step)
        llm_sse_rec_feed(r, s + off, len - off < step ? len - off : step);
    char *c = llm_sse_rec_finish(r, out);
    llm_sse_rec_free(r);
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int kind = data[0] & 1 ? LLM_COMPLETION : LLM_CHAT;
    size_t step = (size_t)(data[0] >> 1) + 1;
    size_t len = size - 1;
    char *s = malloc(len ? len : 1);
    if (s == NULL)
        return 0;
    memcpy(s, data + 1, len);
    size_t n1 = 0, n2 = 0;
    char *whole = record(kind, s, len, len ? len : 1, &n1);
    char *split = record(kind, s, len, step, &n2);
    CHECK((whole == NULL) == (split == NULL));
    if (whole != NULL) {
        CHECK(n1 == n2 && memcmp(whole, split, n1) == 0);
        CHECK(llm_answer_complete(kind, whole, n1));
        size_t sn = 0, bn = 0;
        char *sse = llm_sse_replay(kind, whole, n1, 1, &sn);
        CHECK(sse != NULL);
        char *back = record(kind, sse, sn, 1 + sn % 13, &bn);
        CHECK(back != NULL);
        free(back);
        free(sse);
    }
    free(whole);
    free(split);
    free(s);
    return 0;
}
