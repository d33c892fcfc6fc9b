/* llm_embeddings.c: an embeddings request served per input: each input's vector looked up under
 * its own key, the inputs that missed asked of the upstream in one request (in their order), each
 * vector it sends stored as its own entry, and the answer put together in the client's order and
 * encoding, with usage counting every input's tokens.
 *
 *   llm_embeddings_run -> a lookup per input (L1 at once, else L2, all in flight together)
 *     -> every input found -> answer (HIT-L1 / HIT-L2), nothing sent upstream
 *     -> some missed -> proxy_fetch with "input": [the misses] (PX_BUFFER, must_buffer when some
 *        hit) -> complete(): the vectors found in the answer's text (llm/llm_embed.h), stored,
 *        the answer made -> answer (MISS)
 * Vectors are stored as the upstream sent them: an answer in that encoding carries the same
 * bytes as a fresh one; the other encoding is made at float32 precision.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm_embed.h"
#include "llm/llm_text.h"
#include "llm_internal.h"
#include "log.h"

/* What one input's lookup callback is handed. */
typedef struct llm_lookup {
    proxy_req *px;
    size_t i;
} llm_lookup;

/* The largest upstream answer held whole (bytes): 2048 inputs of 3072 floats in base64 fit. */
#define EMBED_MAX_BUFFER (64u * 1024 * 1024)

static llm_state *state_of(proxy_req *px)
{
    return px->hook_arg;
}

/* Input i's key: the job's prefix and the input's digest. */
static strata_key input_key(proxy_req *px, size_t i, char *buf, size_t cap)
{
    llm_state *st = state_of(px);
    llm_embed_job *e = st->emb;
    strata_key k = {LLM_NS, px->tenant, buf, 0};
    if (e->prefix_len + LLM_KEY_HEX + 1 > cap || llm_input_key(&st->r, i, buf + e->prefix_len) != 0)
        return k; /* len 0: never found, never stored */
    memcpy(buf, e->prefix, e->prefix_len);
    k.len = e->prefix_len + LLM_KEY_HEX;
    return k;
}

/* ---- the answer --------------------------------------------------------------------------- */

/* ,{"object":"embedding","index":I,"embedding": (no comma before the first) into out (at least
 * 96 bytes); its length. By hand rather than snprintf: it runs for every input of every answer. */
static size_t entry_head(char *out, size_t i)
{
    static const char open[] = "{\"object\":\"embedding\",\"index\":";
    static const char close[] = ",\"embedding\":";
    size_t at = 0;
    if (i > 0)
        out[at++] = ',';
    memcpy(out + at, open, sizeof open - 1);
    at += sizeof open - 1;
    char digits[24];
    size_t nd = 0;
    do
        digits[nd++] = (char)('0' + i % 10);
    while ((i /= 10) > 0);
    while (nd > 0)
        out[at++] = digits[--nd];
    memcpy(out + at, close, sizeof close - 1);
    return at + sizeof close - 1;
}

/* The answer of every input in the client's order: vec[i] each (found, or from the upstream's
 * answer), encoded as asked. Malloc'd, or NULL. *tokens: the sum of their tokens. */
static char *assemble(llm_state *st, const llm_vector *vec, size_t n, int64_t *tokens,
                      size_t *out_len)
{
    char head[96];
    llm_text b = {0};
    size_t size = 256 + strlen(st->r.model);
    for (size_t i = 0; i < n; i++) /* exact when every vector goes as it is stored */
        size += sizeof head + vec[i].raw_len;
    int ok = llm_text_reserve(&b, size) == 0 &&
             llm_text_add(&b, "{\"object\":\"list\",\"data\":[", 25) == 0;
    *tokens = 0;
    for (size_t i = 0; ok && i < n; i++) {
        ok = llm_text_add(&b, head, entry_head(head, i)) == 0;
        if (ok && !!vec[i].base64 == !!st->r.base64) { /* as stored: no conversion, one copy */
            ok = llm_text_add(&b, vec[i].raw, vec[i].raw_len) == 0;
        } else if (ok) {
            size_t el = 0;
            char *e = llm_vector_encode(&vec[i], st->r.base64, &el);
            ok = e != NULL && llm_text_add(&b, e, el) == 0;
            free(e);
        }
        ok = ok && llm_text_add(&b, "}", 1) == 0;
        *tokens += vec[i].tokens;
    }
    json_t *model = json_string(st->r.model);
    char *m = model ? json_dumps(model, JSON_ENCODE_ANY) : NULL;
    json_decref(model);
    char tail[128];
    int tl =
        snprintf(tail, sizeof tail, ",\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}",
                 (long long)*tokens, (long long)*tokens);
    ok = ok && m != NULL && llm_text_add(&b, "],\"model\":", 10) == 0 &&
         llm_text_add(&b, m, strlen(m)) == 0 && llm_text_add(&b, tail, (size_t)tl) == 0;
    free(m);
    if (!ok) {
        free(b.p);
        return NULL;
    }
    *out_len = b.len;
    return b.p;
}

/* The answer's counts and headers; the client's request, to answer with body[0..len). */
static req *answer_head(proxy_req *px, int x, size_t len, int64_t saved, int fwd_status)
{
    llm_embed_job *e = state_of(px)->emb;
    char h[64];
    proxy_count_answer(px, x, x == HC_XC_MISS ? 0 : len);
    snprintf(h, sizeof h, "%lld", (long long)saved);
    add_header(px->q, "X-Cache-Tokens-Saved", h);
    snprintf(h, sizeof h, "hits=%zu misses=%zu", e->n - e->nmiss, e->nmiss);
    add_header(px->q, "X-Cache-Inputs", h);
    proxy_cache_headers(px, x, NULL, fwd_status, e->nmiss > 0);
    return proxy_take_client(px);
}

/* Every input was found: the answer from the cache alone. */
static void answer_hits(proxy_req *px)
{
    llm_state *st = state_of(px);
    llm_embed_job *e = st->emb;
    llm_vector *vec = calloc(e->n, sizeof *vec);
    int l2 = 0;
    for (size_t i = 0; vec != NULL && i < e->n; i++) {
        l2 |= e->tier[i] == 2;
        if (llm_vector_decode(strata_value_data(e->found[i]), strata_value_len(e->found[i]),
                              &vec[i]) != 0) {
            free(vec);
            vec = NULL;
        }
    }
    int64_t tokens = 0;
    size_t len = 0;
    char *body = vec ? assemble(st, vec, e->n, &tokens, &len) : NULL;
    free(vec);
    if (body == NULL) {
        llm_error(px, 503, "out_of_memory", "strata could not put the answer together");
    } else {
        int x = l2 ? HC_XC_HIT_L2 : HC_XC_HIT_L1;
        llm_count(px, x, tokens, 0);
        reply_take(answer_head(px, x, len, tokens, 0), 200, "application/json", body, len);
    }
    proxy_req_free(px);
}

/* ---- the upstream's answer ---------------------------------------------------------------- */

typedef struct vec_write {
    char *rec;
} vec_write;

static void vector_written(int status, void *arg)
{
    (void)status; /* a vector not stored is asked for again next time */
    vec_write *w = arg;
    free(w->rec);
    free(w);
}

/* Stores vector text raw (the upstream's) with tokens under input i's key. */
static void store_vector(proxy_req *px, size_t i, const char *raw, size_t len, int64_t tokens)
{
    char kb[PROXY_KEY_CAP];
    strata_key k = input_key(px, i, kb, sizeof kb);
    vec_write *w = malloc(sizeof *w);
    size_t rl = 0;
    if (w == NULL || k.len == 0 || (w->rec = llm_vector_record(raw, len, tokens, &rl)) == NULL) {
        free(w);
        return;
    }
    llm_state *st = state_of(px);
    uint64_t ttl =
        st->r.ctl.ttl_s > 0 ? (uint64_t)st->r.ctl.ttl_s * 1000 : px->route->embedding_ttl_ms;
    strata_set_opts o = {.ttl_ms = ttl, .content_type = "application/x-strata-vector"};
    int rc = strata_cache_set_async(px->w->loop, &k, w->rec, rl, &o, vector_written, w);
    if (rc != STRATA_PENDING)
        vector_written(rc, w);
}

/* An input's weight for its share of the tokens: its bytes, or its token ids. */
static size_t weight_of(const llm_input *in)
{
    return in->text ? in->len : json_array_size(in->tokens) * 4;
}

/* Reads the upstream's answer to the misses: stores each vector, and puts the client's answer
 * together into px->buf (or, when nothing was found in the cache, leaves the upstream's own).
 * Returns -1 always: the batch itself is never stored, its vectors are. */
static int embed_complete(proxy_req *px)
{
    llm_state *st = state_of(px);
    llm_embed_job *e = st->emb;
    llm_span *sp = malloc((e->nmiss ? e->nmiss : 1) * sizeof *sp);
    long got = sp ? llm_embedding_spans(px->buf, px->len, sp, e->nmiss) : -1;
    json_t *j = got >= 0 ? json_loadb(px->buf, px->len, 0, NULL) : NULL;
    json_t *pt = json_object_get(json_object_get(j, "usage"), "prompt_tokens");
    int64_t total = json_is_integer(pt) ? (int64_t)json_integer_value(pt) : 0;
    json_decref(j);
    if (got != (long)e->nmiss) {
        log_msg(LOG_WARN,
                "llm: route %s: an embeddings answer with %ld vectors for %zu inputs: "
                "not stored",
                px->route->name, got, e->nmiss);
        e->failed = e->nmiss < e->n; /* a part cannot be put together with the rest */
        free(sp);
        return -1;
    }
    size_t *w = malloc(e->nmiss * sizeof *w);
    int64_t *tok = malloc(e->nmiss * sizeof *tok);
    llm_vector *vec = calloc(e->n, sizeof *vec);
    int ok = w && tok && vec;
    for (size_t m = 0; ok && m < e->nmiss; m++)
        w[m] = weight_of(&st->r.inputs[e->miss[m]]);
    if (ok)
        llm_tokens_split(total, w, e->nmiss, tok);
    for (long s = 0; ok && s < got; s++) {
        size_t m = (size_t)sp[s].index;
        if (m >= e->nmiss || vec[e->miss[m]].raw != NULL) {
            ok = 0; /* an index out of range, or twice */
            break;
        }
        const char *raw = px->buf + sp[s].off;
        vec[e->miss[m]] = (llm_vector){raw[0] == '"', tok[m], raw, sp[s].len};
        store_vector(px, e->miss[m], raw, sp[s].len, tok[m]);
    }
    for (size_t i = 0; ok && i < e->n; i++)
        if (e->found[i] != NULL && llm_vector_decode(strata_value_data(e->found[i]),
                                                     strata_value_len(e->found[i]), &vec[i]) != 0)
            ok = 0;
    if (ok && e->nmiss < e->n) {
        int64_t tokens;
        size_t len = 0;
        char *body = assemble(st, vec, e->n, &tokens, &len);
        if (body != NULL) {
            free(px->buf);
            px->buf = body;
            px->len = px->cap = len;
        }
        ok = body != NULL;
    }
    e->failed = !ok && e->nmiss < e->n;
    free(w);
    free(tok);
    free(vec);
    free(sp);
    return -1;
}

/* The upstream's answer to the misses (put together by embed_complete), or its error as it
 * came. */
static void embed_answer(proxy_req *px, strata_value *v, const proxy_record *rec, int x,
                         int fwd_status, int stored)
{
    (void)x, (void)stored;
    llm_embed_job *e = state_of(px)->emb;
    if (e->failed) {
        strata_value_release(v);
        llm_error(px, 502, "bad_upstream_answer",
                  "the upstream's embeddings answer does not match the inputs sent");
        return;
    }
    int64_t saved = 0;
    for (size_t i = 0; i < e->n; i++) {
        llm_vector vec;
        if (e->found[i] != NULL && llm_vector_decode(strata_value_data(e->found[i]),
                                                     strata_value_len(e->found[i]), &vec) == 0)
            saved += vec.tokens;
    }
    if (rec->status != 200) { /* the provider's error, as it sent it */
        add_header_lines(px->q, rec->head, rec->head_len);
        proxy_count_answer(px, HC_XC_MISS, 0);
        proxy_cache_headers(px, HC_XC_MISS, NULL, fwd_status, 0);
        reply_bytes(proxy_take_client(px), rec->status, rec->body, rec->body_len);
    } else {
        llm_count(px, HC_XC_MISS, saved, 0);
        req *q = answer_head(px, HC_XC_MISS, rec->body_len, saved, fwd_status);
        reply_text(q, 200, "application/json", rec->body, rec->body_len);
    }
    strata_value_release(v);
}

static const proxy_hooks embed_hooks = {
    .complete = embed_complete, .answer = embed_answer, .error = llm_error, .free = llm_state_free};

/* ---- the lookups -------------------------------------------------------------------------- */

/* The request for the misses alone: the client's, with "input" the missed inputs in order. */
static int misses_body(proxy_req *px)
{
    llm_state *st = state_of(px);
    llm_embed_job *e = st->emb;
    if (e->nmiss == e->n && st->body_out == NULL)
        return 0; /* every input: the client's own body goes */
    json_t *body = json_deep_copy(st->r.upstream), *in = json_array();
    for (size_t m = 0; in != NULL && m < e->nmiss; m++) {
        const llm_input *x = &st->r.inputs[e->miss[m]];
        json_array_append_new(in, x->text ? json_stringn(x->text, x->len) : json_incref(x->tokens));
    }
    if (body == NULL || in == NULL) {
        json_decref(body);
        json_decref(in);
        return -1;
    }
    json_object_set_new(body, "input", in);
    free(st->body_out);
    st->body_out = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (st->body_out == NULL)
        return -1;
    px->body_out = st->body_out;
    px->body_out_len = strlen(st->body_out);
    return 0;
}

static void looked_up(proxy_req *px)
{
    llm_state *st = state_of(px);
    llm_embed_job *e = st->emb;
    e->nmiss = 0;
    for (size_t i = 0; i < e->n; i++)
        if (e->found[i] == NULL)
            e->miss[e->nmiss++] = i;
    if (st->n != NULL) {
        atomic_fetch_add_explicit(&st->n->inputs, e->n, memory_order_relaxed);
        atomic_fetch_add_explicit(&st->n->inputs_cached, e->n - e->nmiss, memory_order_relaxed);
    }
    if (e->nmiss == 0) {
        answer_hits(px);
        return;
    }
    if (llm_state_body(px) != 0 || misses_body(px) != 0) {
        llm_error(px, 503, "out_of_memory", "strata is out of memory");
        proxy_req_free(px);
        return;
    }
    px->cacheable = 1; /* PX_BUFFER: complete() reads the vectors */
    px->store_ok = 1;
    px->max_buffer = EMBED_MAX_BUFFER;
    px->must_buffer = e->nmiss < e->n; /* a part of the answer is of no use alone */
    proxy_fetch(px, 0);
}

/* Input i was looked up. */
static void got(proxy_req *px, size_t i, int rc, strata_value *v, int tier)
{
    llm_embed_job *e = state_of(px)->emb;
    llm_vector vec;
    if ((rc == STRATA_OK || rc == STRATA_OK_L1_ONLY) &&
        llm_vector_decode(strata_value_data(v), strata_value_len(v), &vec) == 0) {
        e->found[i] = v;
        e->tier[i] = tier;
    } else {
        strata_value_release(v);
    }
    if (--e->pending == 0)
        looked_up(px);
}

static void on_got(int status, strata_value *v, void *arg)
{
    llm_lookup *l = arg;
    got(l->px, l->i, status, v, 2);
}

static int job_new(proxy_req *px, llm_state *st)
{
    llm_embed_job *e = st->emb = calloc(1, sizeof *e);
    size_t n = st->r.ninputs;
    if (e == NULL || n == 0)
        return -1;
    e->n = n;
    e->found = calloc(n, sizeof *e->found);
    e->tier = calloc(n, sizeof *e->tier);
    e->ctx = calloc(n, sizeof *e->ctx);
    e->miss = calloc(n, sizeof *e->miss);
    if (!e->found || !e->tier || !e->ctx || !e->miss)
        return -1;
    /* The request's key (llm_gateway.c: ORIGIN:NS:KEYHASH:PATHHASH:embedding:) is every
     * input's prefix; each adds its own digest. */
    if (px->key_len == 0 || px->key_len >= sizeof e->prefix || px->key[px->key_len - 1] != ':')
        return -1;
    memcpy(e->prefix, px->key, px->key_len);
    e->prefix_len = px->key_len;
    return 0;
}

void llm_embeddings_run(proxy_req *px)
{
    llm_state *st = state_of(px);
    px->hooks = &embed_hooks;
    px->ns = LLM_NS;
    if (job_new(px, st) != 0) {
        llm_error(px, 503, "out_of_memory", "strata is out of memory");
        proxy_req_free(px);
        return;
    }
    llm_embed_job *e = st->emb;
    e->pending = e->n + 1; /* the loop's own count: no answer before every lookup is out */
    for (size_t i = 0; i < e->n; i++) {
        if (st->r.ctl.no_cache) { /* ask the upstream for all of them, and store them again */
            e->pending--;
            continue;
        }
        char kb[PROXY_KEY_CAP];
        strata_key k = input_key(px, i, kb, sizeof kb);
        strata_value *v = NULL;
        e->ctx[i] = (llm_lookup){px, i};
        int rc = k.len ? strata_cache_get_async(px->w->loop, &k, on_got, &e->ctx[i], &v)
                       : STRATA_ENOTFOUND;
        if (rc != STRATA_PENDING)
            got(px, i, rc, v, 1);
    }
    if (--e->pending == 0)
        looked_up(px);
}
