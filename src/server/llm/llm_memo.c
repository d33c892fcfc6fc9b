/* llm_memo.c: request bodies remembered by their bytes (llm_memo.h): a direct-mapped table of
 * entries, each the body's bytes and what llm_request_parse made of them, bounded in bytes.
 */
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "llm_memo.h"

typedef struct memo_entry {
    uint64_t hash; /* XXH3 of the body, seeded with the kind */
    int kind;      /* llm_request_parse's, flags included */
    size_t len;    /* the body's bytes */
    size_t bytes;  /* what it counts against LLM_MEMO_BYTES */
    llm_request r; /* the parse's fields; body, upstream and inputs NULL; input_keys owned */
    char body[];
} memo_entry;

struct llm_memo {
    memo_entry *slot[LLM_MEMO_SLOTS];
    size_t entries, bytes;
    size_t hand; /* the next slot to empty while over the bound */
    uint64_t hits, misses;
};

llm_memo *llm_memo_new(void)
{
    return calloc(1, sizeof(llm_memo));
}

static void drop(llm_memo *m, size_t i)
{
    memo_entry *e = m->slot[i];
    if (e == NULL)
        return;
    m->slot[i] = NULL;
    m->entries--;
    m->bytes -= e->bytes;
    free(e->r.input_keys);
    free(e);
}

void llm_memo_free(llm_memo *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < LLM_MEMO_SLOTS; i++)
        drop(m, i);
    free(m);
}

static size_t keys_size(const llm_request *r)
{
    return r->input_keys != NULL ? r->ninputs * sizeof *r->input_keys : 0;
}

/* out = e's fields, with a copy of its keys. Returns 0, or -1 (out of memory: parse instead). */
static int recall(const memo_entry *e, llm_request *out)
{
    *out = e->r;
    if (e->r.input_keys == NULL)
        return 0;
    if ((out->input_keys = malloc(keys_size(&e->r))) == NULL)
        return -1;
    memcpy(out->input_keys, e->r.input_keys, keys_size(&e->r));
    return 0;
}

/* Keeps body and r's fields in slot i (its occupant goes), then empties other slots while over
 * the bound. Out of memory: nothing kept. */
static void remember(llm_memo *m, size_t i, uint64_t h, int kind, const char *body, size_t len,
                     const llm_request *r)
{
    size_t ks = keys_size(r);
    memo_entry *e = malloc(sizeof *e + len);
    if (e == NULL)
        return;
    *e = (memo_entry){.hash = h, .kind = kind, .len = len, .bytes = sizeof *e + len + ks, .r = *r};
    memcpy(e->body, body, len);
    e->r.body = e->r.upstream = NULL;
    e->r.inputs = NULL;
    e->r.input_keys = NULL;
    if (ks > 0) {
        if ((e->r.input_keys = malloc(ks)) == NULL) {
            free(e);
            return;
        }
        memcpy(e->r.input_keys, r->input_keys, ks);
    }
    drop(m, i);
    m->slot[i] = e;
    m->entries++;
    m->bytes += e->bytes;
    while (m->bytes > LLM_MEMO_BYTES) {
        size_t j = m->hand++ % LLM_MEMO_SLOTS;
        if (j != i)
            drop(m, j);
    }
}

int llm_memo_parse(llm_memo *m, int kind, const char *body, size_t len, llm_request *out, char *err,
                   size_t cap)
{
    if (m == NULL || body == NULL)
        return llm_request_parse(kind, body, len, out, err, cap);
    uint64_t h = XXH3_64bits_withSeed(body, len, (uint64_t)kind);
    size_t i = (size_t)(h & (LLM_MEMO_SLOTS - 1));
    const memo_entry *e = m->slot[i];
    if (e != NULL && e->hash == h && e->kind == kind && e->len == len &&
        memcmp(e->body, body, len) == 0 && recall(e, out) == 0) {
        m->hits++;
        return 0;
    }
    m->misses++;
    if (llm_request_parse(kind, body, len, out, err, cap) != 0)
        return -1;
    int keys_ok = (out->kind != LLM_EMBEDDINGS || llm_input_keys(out) == 0);
    if (keys_ok && !out->ctl.given && len <= LLM_MEMO_BODY_MAX)
        remember(m, i, h, kind, body, len, out);
    return 0;
}

void llm_memo_stats_get(const llm_memo *m, llm_memo_stats *out)
{
    *out = (llm_memo_stats){m->hits, m->misses, m->entries, m->bytes};
}
