/* llm_sse.c: streamed answers recorded into one completion, and completions replayed as
 * streams (llm_sse.h). The chunk shapes are OpenAI's: chat.completion.chunk with per-choice
 * deltas (role, content, tool_calls by index, finish_reason) and a last chunk with "choices": []
 * and "usage"; text_completion chunks with "text". Fields strata does not know are kept from the
 * first chunk (id, created, model, system_fingerprint) or dropped.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "llm_request.h"
#include "llm_sse.h"
#include "llm_text.h"

#define CHOICES_MAX  128 /* choices one answer may have ("n") */
#define REPLAY_PIECE 96  /* bytes of content per replayed chunk, at most */

typedef struct choice {
    long long index;
    llm_text content;
    int has_content;
    json_t *role;          /* a string, or NULL */
    json_t *tool_calls;    /* array of {id, type, function: {name, arguments}}, or NULL */
    json_t *finish_reason; /* a string, or NULL */
} choice;

struct llm_sse_rec {
    int kind;
    int failed, done;
    size_t max, seen;
    llm_text pending; /* bytes of an event not yet ended */
    json_t *head;     /* id, created, model, system_fingerprint of the first chunk */
    json_t *usage;
    choice *choices;
    size_t nchoices;
};

llm_sse_rec *llm_sse_rec_new(int kind, size_t max)
{
    llm_sse_rec *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->kind = kind;
    r->max = max;
    return r;
}

void llm_sse_rec_free(llm_sse_rec *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nchoices; i++) {
        choice *c = &r->choices[i];
        free(c->content.p);
        json_decref(c->role);
        json_decref(c->tool_calls);
        json_decref(c->finish_reason);
    }
    free(r->choices);
    free(r->pending.p);
    json_decref(r->head);
    json_decref(r->usage);
    free(r);
}

/* ---- recording ---------------------------------------------------------------------------- */

static choice *choice_of(llm_sse_rec *r, long long index)
{
    for (size_t i = 0; i < r->nchoices; i++)
        if (r->choices[i].index == index)
            return &r->choices[i];
    if (index < 0 || r->nchoices >= CHOICES_MAX)
        return NULL;
    choice *np = realloc(r->choices, (r->nchoices + 1) * sizeof *np);
    if (np == NULL)
        return NULL;
    r->choices = np;
    choice *c = &r->choices[r->nchoices++];
    memset(c, 0, sizeof *c);
    c->index = index;
    return c;
}

/* A streamed tool call's piece: the first names the call (id, type, function name), the
 * others add to its arguments. */
static int tool_call_add(choice *c, json_t *tc)
{
    json_t *ix = json_object_get(tc, "index");
    json_t *fn = json_object_get(tc, "function");
    if (!json_is_integer(ix) || (fn != NULL && !json_is_object(fn)))
        return -1;
    if (c->tool_calls == NULL && (c->tool_calls = json_array()) == NULL)
        return -1;
    json_t *slot = NULL;
    for (size_t i = 0; i < json_array_size(c->tool_calls); i++) {
        json_t *v = json_array_get(c->tool_calls, i);
        if (json_integer_value(json_object_get(v, "index")) == json_integer_value(ix))
            slot = v;
    }
    if (slot == NULL) {
        if (json_array_size(c->tool_calls) >= CHOICES_MAX)
            return -1;
        slot = json_pack("{s:O,s:{s:s,s:s}}", "index", ix, "function", "name", "", "arguments", "");
        if (slot == NULL || json_array_append_new(c->tool_calls, slot) != 0)
            return -1;
    }
    const char *keys[] = {"id", "type"};
    for (int k = 0; k < 2; k++) {
        json_t *s = json_object_get(tc, keys[k]);
        if (json_is_string(s))
            json_object_set(slot, keys[k], s);
    }
    json_t *sfn = json_object_get(slot, "function");
    const char *parts[] = {"name", "arguments"};
    for (int k = 0; fn != NULL && k < 2; k++) {
        json_t *add = json_object_get(fn, parts[k]), *have = json_object_get(sfn, parts[k]);
        if (!json_is_string(add))
            continue;
        size_t hl = json_string_length(have), al = json_string_length(add);
        char *b = malloc(hl + al + 1);
        if (b == NULL)
            return -1;
        memcpy(b, json_string_value(have), hl);
        memcpy(b + hl, json_string_value(add), al);
        int rc = json_object_set_new(sfn, parts[k], json_stringn(b, hl + al));
        free(b);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int choice_add(llm_sse_rec *r, json_t *ch)
{
    json_t *ix = json_object_get(ch, "index");
    choice *c = json_is_integer(ix) ? choice_of(r, json_integer_value(ix)) : NULL;
    if (c == NULL)
        return -1;
    json_t *piece = r->kind == LLM_CHAT ? json_object_get(ch, "delta") : ch;
    if (!json_is_object(piece))
        return -1;
    json_t *s = json_object_get(piece, r->kind == LLM_CHAT ? "content" : "text");
    if (json_is_string(s)) {
        c->has_content = 1;
        if (llm_text_add(&c->content, json_string_value(s), json_string_length(s)) != 0)
            return -1;
    }
    json_t *role = json_object_get(piece, "role");
    if (json_is_string(role) && c->role == NULL)
        c->role = json_incref(role);
    json_t *tcs = json_object_get(piece, "tool_calls");
    for (size_t i = 0; json_is_array(tcs) && i < json_array_size(tcs); i++) {
        json_t *tc = json_array_get(tcs, i);
        if (!json_is_object(tc) || tool_call_add(c, tc) != 0)
            return -1;
    }
    json_t *fr = json_object_get(ch, "finish_reason");
    if (json_is_string(fr)) {
        json_decref(c->finish_reason);
        c->finish_reason = json_incref(fr);
    }
    return 0;
}

static int chunk(llm_sse_rec *r, const char *data, size_t len)
{
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        r->done = 1;
        return 0;
    }
    if (r->done)
        return -1; /* nothing comes after [DONE] */
    json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
    int rc = -1;
    json_t *choices = json_object_get(j, "choices");
    if (!json_is_object(j) || json_object_get(j, "error") != NULL ||
        (choices != NULL && !json_is_array(choices)))
        goto out;
    if (r->head == NULL) {
        r->head = json_object();
        const char *keep[] = {"id", "created", "model", "system_fingerprint"};
        for (int k = 0; r->head && k < 4; k++)
            if (json_object_get(j, keep[k]) != NULL)
                json_object_set(r->head, keep[k], json_object_get(j, keep[k]));
        if (r->head == NULL)
            goto out;
    }
    json_t *usage = json_object_get(j, "usage");
    if (json_is_object(usage)) {
        json_decref(r->usage);
        r->usage = json_incref(usage);
    }
    for (size_t i = 0; i < json_array_size(choices); i++) {
        json_t *ch = json_array_get(choices, i);
        if (!json_is_object(ch) || choice_add(r, ch) != 0)
            goto out;
    }
    rc = 0;
out:
    json_decref(j);
    return rc;
}

/* One event (its lines, without the blank line that ended it): its data lines joined. */
static int event(llm_sse_rec *r, const char *p, size_t len)
{
    llm_text data = {0};
    int rc = 0, any = 0;
    while (len > 0 && rc == 0) {
        const char *nl = memchr(p, '\n', len);
        size_t ll = nl ? (size_t)(nl - p) : len;
        size_t line = ll > 0 && p[ll - 1] == '\r' ? ll - 1 : ll;
        if (line >= 5 && memcmp(p, "data:", 5) == 0) {
            size_t off = line > 5 && p[5] == ' ' ? 6 : 5;
            if ((any && llm_text_add(&data, "\n", 1) != 0) ||
                llm_text_add(&data, p + off, line - off) != 0)
                rc = -1;
            any = 1;
        } else if (line >= 6 && memcmp(p, "event:", 6) == 0) {
            const char *v = p + 6;
            size_t vl = line - 6;
            while (vl > 0 && *v == ' ')
                v++, vl--;
            if (!(vl == 7 && memcmp(v, "message", 7) == 0))
                rc = -1; /* "event: error" and the like: not an answer to keep */
        }
        p += nl ? ll + 1 : ll;
        len -= nl ? ll + 1 : ll;
    }
    if (rc == 0 && any)
        rc = chunk(r, data.p ? data.p : "", data.len);
    free(data.p);
    return rc;
}

int llm_sse_rec_feed(llm_sse_rec *r, const char *data, size_t len)
{
    if (r->failed)
        return -1;
    r->seen += len;
    if (r->seen > r->max || llm_text_add(&r->pending, data, len) != 0) {
        r->failed = 1;
        return -1;
    }
    /* Each event ends with a blank line: "\n\n" (or with CRs). */
    size_t start = 0;
    char *p = r->pending.p;
    for (size_t i = 0; i + 1 < r->pending.len; i++) {
        size_t end = 0;
        if (p[i] == '\n' && p[i + 1] == '\n')
            end = 2;
        else if (p[i] == '\n' && p[i + 1] == '\r' && i + 2 < r->pending.len && p[i + 2] == '\n')
            end = 3;
        if (end == 0)
            continue;
        if (event(r, p + start, i + 1 - start) != 0) {
            r->failed = 1;
            return -1;
        }
        start = i + end;
        i = start - 1;
    }
    memmove(p, p + start, r->pending.len - start);
    r->pending.len -= start;
    return 0;
}

static json_t *choice_json(const llm_sse_rec *r, const choice *c)
{
    json_t *o;
    if (r->kind == LLM_CHAT) {
        json_t *role = c->role ? json_incref(c->role) : json_string("assistant");
        json_t *msg = json_pack("{s:o,s:s%}", "role", role, "content",
                                c->content.p ? c->content.p : "", c->content.len);
        if (msg != NULL && !c->has_content)
            json_object_set_new(msg, "content", json_null());
        if (msg != NULL && c->tool_calls != NULL) {
            /* A plain answer's tool calls have no index: their place in the array is it. */
            json_t *calls = json_deep_copy(c->tool_calls);
            for (size_t i = 0; i < json_array_size(calls); i++)
                json_object_del(json_array_get(calls, i), "index");
            json_object_set_new(msg, "tool_calls", calls);
        }
        o = json_pack("{s:I,s:o,s:n,s:O}", "index", c->index, "message", msg, "logprobs",
                      "finish_reason", c->finish_reason);
    } else {
        o = json_pack("{s:s%,s:I,s:n,s:O}", "text", c->content.p ? c->content.p : "",
                      c->content.len, "index", c->index, "logprobs", "finish_reason",
                      c->finish_reason);
    }
    return o;
}

/* head's fields with "object" second, in the order OpenAI writes them (id, object, created,
 * model, system_fingerprint). */
static json_t *with_object(json_t *head, const char *object)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_t *id = json_object_get(head, "id");
    if (id != NULL)
        json_object_set(o, "id", id);
    json_object_set_new(o, "object", json_string(object));
    const char *rest[] = {"created", "model", "system_fingerprint"};
    for (int k = 0; k < 3; k++)
        if (json_object_get(head, rest[k]) != NULL)
            json_object_set(o, rest[k], json_object_get(head, rest[k]));
    return o;
}

char *llm_sse_rec_finish(llm_sse_rec *r, size_t *len)
{
    if (r->failed || !r->done || r->nchoices == 0 || r->head == NULL)
        return NULL;
    for (size_t i = 0; i < r->nchoices; i++)
        if (r->choices[i].finish_reason == NULL)
            return NULL;
    json_t *out = with_object(r->head, r->kind == LLM_CHAT ? "chat.completion" : "text_completion");
    json_t *choices = json_array();
    char *s = NULL;
    if (out == NULL || choices == NULL)
        goto done;
    for (size_t i = 0; i < r->nchoices; i++)
        if (json_array_append_new(choices, choice_json(r, &r->choices[i])) != 0)
            goto done;
    json_object_set(out, "choices", choices);
    if (r->usage != NULL)
        json_object_set(out, "usage", r->usage);
    s = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s != NULL)
        *len = strlen(s);
done:
    json_decref(choices);
    json_decref(out);
    return s;
}

/* ---- plain answers ------------------------------------------------------------------------ */

int llm_answer_complete(int kind, const char *body, size_t len)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    json_t *choices = json_object_get(j, "choices");
    int ok = json_is_array(choices) && json_array_size(choices) > 0;
    size_t i;
    json_t *c;
    json_array_foreach(choices, i, c)
    {
        json_t *fr = json_object_get(c, "finish_reason");
        if (!json_is_string(fr) || json_string_length(fr) == 0)
            ok = 0;
        if (kind == LLM_CHAT && !json_is_object(json_object_get(c, "message")))
            ok = 0;
    }
    json_decref(j);
    return ok;
}

/* The number after `"name":` within u[0..len) (the usage object's text), or 0. */
static long long member_number(const char *u, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i + nl + 2 < len; i++) {
        if (u[i] != '"' || memcmp(u + i + 1, name, nl) != 0 || u[i + 1 + nl] != '"')
            continue;
        size_t k = i + nl + 2;
        while (k < len && (u[k] == ' ' || u[k] == '\n' || u[k] == '\r' || u[k] == '\t'))
            k++;
        if (k >= len || u[k++] != ':')
            continue;
        while (k < len && (u[k] == ' ' || u[k] == '\n' || u[k] == '\r' || u[k] == '\t'))
            k++;
        long long v = 0;
        size_t digits = 0;
        for (; k < len && u[k] >= '0' && u[k] <= '9' && digits < 15; k++, digits++)
            v = v * 10 + (u[k] - '0');
        return digits ? v : 0;
    }
    return 0;
}

/* On every hit: the stored answer is not parsed whole (most of a hit's time was that), only the
 * last "usage": {...} of its text is read. Inside a JSON string a quote is escaped, so the bytes
 * `"usage"` followed by `:` and `{` are a member's name; the last one is the answer's own (the
 * providers and the recorder write usage last, after the choices). */
void llm_answer_usage(const char *body, size_t len, long long *prompt, long long *completion)
{
    static const char key[] = "\"usage\"";
    size_t kl = sizeof key - 1;
    *prompt = *completion = 0;
    for (size_t i = len >= kl ? len - kl + 1 : 0; i-- > 0;) {
        if (memcmp(body + i, key, kl) != 0)
            continue;
        size_t k = i + kl;
        while (k < len && (body[k] == ' ' || body[k] == '\n' || body[k] == '\r' || body[k] == '\t'))
            k++;
        if (k >= len || body[k] != ':')
            continue;
        k++;
        while (k < len && (body[k] == ' ' || body[k] == '\n' || body[k] == '\r' || body[k] == '\t'))
            k++;
        if (k >= len || body[k] != '{')
            continue;
        size_t e = k, depth = 0; /* to its closing brace (it nests *_tokens_details) */
        for (; e < len; e++) {
            depth += body[e] == '{';
            if (body[e] == '}' && --depth == 0)
                break;
        }
        size_t ul = e - k;
        *prompt = member_number(body + k, ul, "prompt_tokens");
        *completion = member_number(body + k, ul, "completion_tokens");
        return;
    }
}

/* ---- replay ------------------------------------------------------------------------------- */

/* Appends "data: <chunk>\n\n" (the chunk: head's fields, object, and choices or more). */
static int emit(llm_text *out, json_t *head, const char *object, json_t *choices, json_t *usage)
{
    json_t *c = with_object(head, object);
    if (c == NULL)
        return -1;
    json_object_set_new(c, "choices", choices);
    if (usage != NULL)
        json_object_set(c, "usage", usage);
    char *s = json_dumps(c, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(c);
    int rc = s == NULL || llm_text_add(out, "data: ", 6) != 0 ||
                     llm_text_add(out, s, strlen(s)) != 0 || llm_text_add(out, "\n\n", 2) != 0
                 ? -1
                 : 0;
    free(s);
    return rc;
}

/* How many bytes of s[0..len) make a piece of at most REPLAY_PIECE that ends on a character. */
static size_t piece_len(const char *s, size_t len)
{
    if (len <= REPLAY_PIECE)
        return len;
    size_t n = REPLAY_PIECE;
    while (n > 1 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

static int replay_choice(llm_text *out, int kind, json_t *head, const char *object, json_t *c)
{
    json_t *ix = json_object_get(c, "index"), *fr = json_object_get(c, "finish_reason");
    json_t *msg = kind == LLM_CHAT ? json_object_get(c, "message") : c;
    if (!json_is_integer(ix) || !json_is_object(msg))
        return -1;
    json_t *content = json_object_get(msg, kind == LLM_CHAT ? "content" : "text");
    const char *field = kind == LLM_CHAT ? "content" : "text";
    if (kind == LLM_CHAT) {
        /* The role chunk: content "" before text, null before tool calls (as OpenAI sends). */
        json_t *role = json_object_get(msg, "role");
        if (emit(out, head, object,
                 json_pack("[{s:O,s:{s:O,s:o},s:n,s:n}]", "index", ix, "delta", "role",
                           json_is_string(role) ? role : json_null(), "content",
                           json_is_string(content) ? json_string("") : json_null(), "logprobs",
                           "finish_reason"),
                 NULL) != 0)
            return -1;
    }
    const char *s = json_is_string(content) ? json_string_value(content) : "";
    size_t len = json_is_string(content) ? json_string_length(content) : 0;
    while (len > 0) {
        size_t n = piece_len(s, len);
        json_t *piece = kind == LLM_CHAT
                            ? json_pack("[{s:O,s:{s:s%},s:n,s:n}]", "index", ix, "delta", field, s,
                                        n, "logprobs", "finish_reason")
                            : json_pack("[{s:s%,s:O,s:n,s:n}]", field, s, n, "index", ix,
                                        "logprobs", "finish_reason");
        if (emit(out, head, object, piece, NULL) != 0)
            return -1;
        s += n;
        len -= n;
    }
    json_t *tcs = json_object_get(msg, "tool_calls");
    if (kind == LLM_CHAT && json_is_array(tcs) && json_array_size(tcs) > 0) {
        json_t *calls = json_array();
        size_t i;
        json_t *tc;
        json_array_foreach(tcs, i, tc)
        {
            json_t *t = json_deep_copy(tc);
            if (t != NULL && json_object_get(t, "index") == NULL)
                json_object_set_new(t, "index", json_integer((json_int_t)i));
            json_array_append_new(calls, t);
        }
        if (emit(out, head, object,
                 json_pack("[{s:O,s:{s:o},s:n,s:n}]", "index", ix, "delta", "tool_calls", calls,
                           "logprobs", "finish_reason"),
                 NULL) != 0)
            return -1;
    }
    json_t *fin = kind == LLM_CHAT ? json_pack("[{s:O,s:{},s:n,s:O}]", "index", ix, "delta",
                                               "logprobs", "finish_reason", fr)
                                   : json_pack("[{s:s,s:O,s:n,s:O}]", "text", "", "index", ix,
                                               "logprobs", "finish_reason", fr);
    return emit(out, head, object, fin, NULL);
}

char *llm_sse_replay(int kind, const char *body, size_t len, int include_usage, size_t *out_len)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    json_t *choices = json_object_get(j, "choices"), *usage = json_object_get(j, "usage");
    llm_text out = {0};
    json_t *head = json_object();
    const char *object = kind == LLM_CHAT ? "chat.completion.chunk" : "text_completion";
    int ok = json_is_array(choices) && head != NULL;
    const char *keep[] = {"id", "created", "model", "system_fingerprint"};
    for (int k = 0; ok && k < 4; k++)
        if (json_object_get(j, keep[k]) != NULL)
            json_object_set(head, keep[k], json_object_get(j, keep[k]));
    for (size_t i = 0; ok && i < json_array_size(choices); i++)
        ok = replay_choice(&out, kind, head, object, json_array_get(choices, i)) == 0;
    if (ok && include_usage && json_is_object(usage))
        ok = emit(&out, head, object, json_array(), usage) == 0;
    if (ok)
        ok = llm_text_add(&out, "data: [DONE]\n\n", 14) == 0;
    json_decref(head);
    json_decref(j);
    if (!ok) {
        free(out.p);
        return NULL;
    }
    *out_len = out.len;
    return out.p;
}
