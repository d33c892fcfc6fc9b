/* llm_request.c: parsing an OpenAI-compatible request, its cache controls, and its keys
 * (llm_request.h).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "llm_request.h"

/* Members that do not change the answer: left out of the key. */
static const char *const not_keyed[] = {"stream", "stream_options", "user", "metadata",
                                        "store",  "cache",          NULL};

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- canonical JSON ----------------------------------------------------------------------- */

/* A copy of v with integral reals as integers (0.0 and 0 are one number), or NULL. */
static json_t *normalised(const json_t *v)
{
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d == floor(d) && fabs(d) < 9007199254740992.0) /* 2^53: exact as an integer */
            return json_integer((json_int_t)d);
        return json_real(d);
    }
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)v, k, m)
        {
            json_t *c = normalised(m);
            if (o == NULL || c == NULL || json_object_set_new(o, k, c) != 0) {
                json_decref(c);
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    if (json_is_array(v)) {
        json_t *a = json_array();
        for (size_t i = 0; a != NULL && i < json_array_size(v); i++) {
            json_t *c = normalised(json_array_get(v, i));
            if (c == NULL || json_array_append_new(a, c) != 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    return json_deep_copy(v);
}

char *llm_canonical(const json_t *v)
{
    json_t *n = normalised(v);
    char *s =
        n ? json_dumps(n, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17))
          : NULL;
    json_decref(n);
    return s;
}

/* The SHA-256 of v's canonical JSON in hex into out. Returns 0 or -1. */
static int key_of(const json_t *v, char *out)
{
    char *s = llm_canonical(v);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    int ok = s != NULL && EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL) == 1 && n == 32;
    free(s);
    if (!ok)
        return -1;
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* ---- the cache member --------------------------------------------------------------------- */

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return s[0] != '_';
}

/* {"no-cache": bool, "no-store": bool, "ttl": seconds, "namespace": name}; other members (a
 * newer client's) are ignored. */
static int cache_ctl(json_t *c, llm_cache_ctl *ctl, char *err, size_t cap)
{
    ctl->ttl_s = -1;
    if (c == NULL)
        return 0;
    if (!json_is_object(c))
        return fail(err, cap,
                    "cache must be an object: {\"no-cache\", \"no-store\", \"ttl\", "
                    "\"namespace\"}");
    ctl->given = 1;
    json_t *nc = json_object_get(c, "no-cache"), *ns = json_object_get(c, "no-store");
    json_t *ttl = json_object_get(c, "ttl"), *name = json_object_get(c, "namespace");
    if ((nc && !json_is_boolean(nc)) || (ns && !json_is_boolean(ns)))
        return fail(err, cap, "cache.no-cache and cache.no-store are booleans");
    ctl->no_cache = nc && json_is_true(nc);
    ctl->no_store = ns && json_is_true(ns);
    if (ttl != NULL) {
        if (!json_is_integer(ttl) || json_integer_value(ttl) < 0 ||
            json_integer_value(ttl) > 315360000)
            return fail(err, cap, "cache.ttl is whole seconds from 0 to 315360000");
        ctl->ttl_s = json_integer_value(ttl);
    }
    if (name != NULL) {
        if (!json_is_string(name) || !name_ok(json_string_value(name)))
            return fail(err, cap,
                        "cache.namespace is 1-64 characters of A-Z a-z 0-9 _ . -, not "
                        "starting with _");
        snprintf(ctl->ns, sizeof ctl->ns, "%s", json_string_value(name));
    }
    return 0;
}

/* ---- chat and completions ----------------------------------------------------------------- */

static int generation(llm_request *r, char *err, size_t cap)
{
    json_t *b = r->body;
    json_t *what = json_object_get(b, r->kind == LLM_CHAT ? "messages" : "prompt");
    if (r->kind == LLM_CHAT && !json_is_array(what))
        return fail(err, cap, "messages must be an array");
    if (r->kind == LLM_COMPLETION && !json_is_string(what) && !json_is_array(what))
        return fail(err, cap, "prompt must be a string or an array");
    json_t *stream = json_object_get(b, "stream"), *so = json_object_get(b, "stream_options");
    if (stream != NULL && !json_is_boolean(stream))
        return fail(err, cap, "stream must be a boolean");
    r->stream = stream && json_is_true(stream);
    if (so != NULL && !json_is_object(so))
        return fail(err, cap, "stream_options must be an object");
    json_t *iu = so ? json_object_get(so, "include_usage") : NULL;
    r->include_usage = iu && json_is_true(iu);
    json_t *t = json_object_get(b, "temperature"), *seed = json_object_get(b, "seed");
    r->deterministic = (t != NULL && json_is_number(t) && json_number_value(t) == 0) ||
                       (seed != NULL && json_is_integer(seed));
    /* The key: the request without what does not change the answer. */
    json_t *keyed = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(b, k, v)
    {
        int skip = 0;
        for (int i = 0; not_keyed[i] && !skip; i++)
            skip = strcmp(k, not_keyed[i]) == 0;
        if (!skip && keyed != NULL)
            json_object_set(keyed, k, v);
    }
    int rc = keyed != NULL ? key_of(keyed, r->key) : -1;
    json_decref(keyed);
    return rc == 0 ? 0 : fail(err, cap, "out of memory");
}

/* ---- embeddings --------------------------------------------------------------------------- */

static int token_ids(const json_t *a)
{
    if (!json_is_array(a) || json_array_size(a) == 0)
        return 0;
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!json_is_integer(json_array_get(a, i)))
            return 0;
    return 1;
}

static int embeddings(llm_request *r, char *err, size_t cap)
{
    json_t *b = r->body, *in = json_object_get(b, "input");
    json_t *dim = json_object_get(b, "dimensions"), *fmt = json_object_get(b, "encoding_format");
    r->dimensions = -1;
    if (dim != NULL) {
        if (!json_is_integer(dim) || json_integer_value(dim) < 1 || json_integer_value(dim) > 65536)
            return fail(err, cap, "dimensions must be a whole number from 1 to 65536");
        r->dimensions = json_integer_value(dim);
    }
    if (fmt != NULL && (!json_is_string(fmt) || (strcmp(json_string_value(fmt), "float") != 0 &&
                                                 strcmp(json_string_value(fmt), "base64") != 0)))
        return fail(err, cap, "encoding_format must be \"float\" or \"base64\"");
    r->base64 = fmt != NULL && strcmp(json_string_value(fmt), "base64") == 0;
    /* a string, token ids, or a list of either */
    int one = json_is_string(in) || token_ids(in);
    size_t n = one ? 1 : json_is_array(in) ? json_array_size(in) : 0;
    if (n == 0)
        return fail(err, cap,
                    "input must be a string, an array of strings, an array of token "
                    "ids or an array of token arrays, not empty");
    if (n > LLM_INPUTS_MAX)
        return fail(err, cap, "input has more than %d items", LLM_INPUTS_MAX);
    r->input_was_list = !json_is_string(in);
    r->inputs = calloc(n, sizeof *r->inputs);
    if (r->inputs == NULL)
        return fail(err, cap, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *item = one ? in : json_array_get(in, i);
        if (json_is_string(item))
            r->inputs[i] = (llm_input){json_string_value(item), json_string_length(item), NULL};
        else if (token_ids(item))
            r->inputs[i] = (llm_input){NULL, 0, item};
        else
            return fail(err, cap, "input[%zu] must be a string or an array of token ids", i);
    }
    r->ninputs = n;
    return 0;
}

/* An input's key is hashed from its parts directly, not from a JSON document made of them: on
 * an embedding hit that was half of the CPU (a batch makes one per input). Every part is length-
 * prefixed, so no two inputs' bytes run into each other: "embedding\n", the model, the
 * dimensions ("-": none), then "t" and the text (decoded: the escapes a client chose do not
 * matter), or "i" and the token ids in decimal. */
int llm_input_key(const llm_request *r, size_t i, char *out)
{
    static const char hex[] = "0123456789abcdef";
    if (i >= r->ninputs)
        return -1;
    if (r->input_keys != NULL) {
        memcpy(out, r->input_keys[i], LLM_KEY_HEX + 1);
        return 0;
    }
    if (r->inputs == NULL)
        return -1;
    const llm_input *in = &r->inputs[i];
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    char head[LLM_MODEL_MAX + 64];
    int hl = snprintf(head, sizeof head, "embedding\n%zu:%s\n%lld\n%c", strlen(r->model), r->model,
                      (long long)r->dimensions, in->text ? 't' : 'i');
    int ok = c != NULL && hl > 0 && (size_t)hl < sizeof head &&
             EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(c, head, (size_t)hl) == 1;
    if (ok && in->text != NULL) {
        char n[24];
        int nl = snprintf(n, sizeof n, "%zu:", in->len);
        ok = EVP_DigestUpdate(c, n, (size_t)nl) == 1 && EVP_DigestUpdate(c, in->text, in->len) == 1;
    }
    for (size_t k = 0; ok && in->text == NULL && k < json_array_size(in->tokens); k++) {
        char n[32];
        int nl = snprintf(n, sizeof n, "%lld,",
                          (long long)json_integer_value(json_array_get(in->tokens, k)));
        ok = EVP_DigestUpdate(c, n, (size_t)nl) == 1;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdl = 0;
    ok = ok && EVP_DigestFinal_ex(c, md, &mdl) == 1 && mdl == 32;
    EVP_MD_CTX_free(c);
    if (!ok)
        return -1;
    for (unsigned k = 0; k < 32; k++) {
        out[2 * k] = hex[md[k] >> 4];
        out[2 * k + 1] = hex[md[k] & 15];
    }
    out[LLM_KEY_HEX] = '\0';
    return 0;
}

int llm_input_keys(llm_request *r)
{
    if (r->input_keys != NULL || r->ninputs == 0)
        return 0;
    char(*k)[LLM_KEY_HEX + 1] = malloc(r->ninputs * sizeof *k);
    for (size_t i = 0; k != NULL && i < r->ninputs; i++)
        if (llm_input_key(r, i, k[i]) != 0) {
            free(k);
            k = NULL;
        }
    r->input_keys = k;
    return k != NULL ? 0 : -1;
}

/* ---- the request -------------------------------------------------------------------------- */

int llm_request_parse(int kind, const char *body, size_t len, llm_request *out, char *err,
                      size_t cap)
{
    memset(out, 0, sizeof *out);
    int model_in_path = kind & LLM_MODEL_IN_PATH;
    kind &= ~LLM_MODEL_IN_PATH;
    out->kind = kind;
    out->ctl.ttl_s = -1;
    json_error_t je;
    out->body = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &je) : NULL;
    if (out->body == NULL)
        return fail(err, cap, "the body is not JSON: %s", body ? je.text : "empty");
    if (!json_is_object(out->body)) {
        llm_request_free(out);
        return fail(err, cap, "the body must be a JSON object");
    }
    out->upstream = out->body;
    json_t *model = json_object_get(out->body, "model");
    int rc;
    if (model == NULL && model_in_path)
        rc = 0; /* then the cache member and the request's own rules, below */
    else if (!json_is_string(model) || json_string_length(model) == 0 ||
             json_string_length(model) >= LLM_MODEL_MAX ||
             strlen(json_string_value(model)) != json_string_length(model))
        rc = fail(err, cap, "model must be a non-empty string of at most %d bytes",
                  LLM_MODEL_MAX - 1);
    else
        rc = 0;
    if (rc == 0 && (rc = cache_ctl(json_object_get(out->body, "cache"), &out->ctl, err, cap)) == 0)
        rc = kind == LLM_EMBEDDINGS ? embeddings(out, err, cap) : generation(out, err, cap);
    if (rc == 0) {
        snprintf(out->model, sizeof out->model, "%s", model ? json_string_value(model) : "");
        json_object_del(out->body, "cache"); /* strata's: never sent upstream */
        return 0;
    }
    llm_request_free(out);
    return -1;
}

void llm_request_free(llm_request *r)
{
    free(r->inputs);
    free(r->input_keys);
    json_decref(r->body);
    memset(r, 0, sizeof *r);
}
