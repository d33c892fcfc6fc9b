/* llm_embed.c: embeddings' vectors found, stored and encoded (llm_embed.h).
 *
 * The scanner reads JSON text with bounds checks at every step and no recursion deeper than the
 * answer's shape needs (a value nested deeper than SCAN_DEPTH is refused), so any bytes are safe
 * to hand it (fuzz_llm_embed).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "llm_embed.h"

#define SCAN_DEPTH 32
#define DIMS_MAX   65536 /* floats in one vector */

/* ---- the scanner -------------------------------------------------------------------------- */

typedef struct scan {
    const char *p;
    size_t len, at;
} scan;

static void ws(scan *s)
{
    while (s->at < s->len && (s->p[s->at] == ' ' || s->p[s->at] == '\t' || s->p[s->at] == '\n' ||
                              s->p[s->at] == '\r'))
        s->at++;
}

static int eat(scan *s, char c)
{
    ws(s);
    if (s->at < s->len && s->p[s->at] == c) {
        s->at++;
        return 1;
    }
    return 0;
}

/* A string; its content's span (escapes kept) into *o, *l. */
static int string(scan *s, size_t *o, size_t *l)
{
    ws(s);
    if (s->at >= s->len || s->p[s->at] != '"')
        return -1;
    size_t start = ++s->at;
    while (s->at < s->len && s->p[s->at] != '"') {
        if (s->p[s->at] == '\\')
            s->at++;
        s->at++;
    }
    if (s->at >= s->len)
        return -1;
    if (o)
        *o = start, *l = s->at - start;
    s->at++;
    return 0;
}

static int number(scan *s)
{
    ws(s);
    size_t start = s->at;
    while (s->at < s->len && strchr("+-0123456789.eE", s->p[s->at]) != NULL && s->p[s->at])
        s->at++;
    return s->at > start ? 0 : -1;
}

static int value(scan *s, int depth);

static int array(scan *s, int depth, int numbers_only)
{
    if (!eat(s, '['))
        return -1;
    if (eat(s, ']'))
        return 0;
    do {
        if (numbers_only ? number(s) != 0 : value(s, depth + 1) != 0)
            return -1;
    } while (eat(s, ','));
    return eat(s, ']') ? 0 : -1;
}

static int object(scan *s, int depth)
{
    if (!eat(s, '{'))
        return -1;
    if (eat(s, '}'))
        return 0;
    do {
        if (string(s, NULL, NULL) != 0 || !eat(s, ':') || value(s, depth + 1) != 0)
            return -1;
    } while (eat(s, ','));
    return eat(s, '}') ? 0 : -1;
}

static int value(scan *s, int depth)
{
    ws(s);
    if (depth > SCAN_DEPTH || s->at >= s->len)
        return -1;
    char c = s->p[s->at];
    if (c == '"')
        return string(s, NULL, NULL);
    if (c == '[')
        return array(s, depth, 0);
    if (c == '{')
        return object(s, depth);
    const char *lits[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(lits[i]);
        if (s->len - s->at >= n && memcmp(s->p + s->at, lits[i], n) == 0) {
            s->at += n;
            return 0;
        }
    }
    return number(s);
}

static int key_is(const scan *s, size_t o, size_t l, const char *k)
{
    return l == strlen(k) && memcmp(s->p + o, k, l) == 0;
}

/* One data[] entry: {"index": N, "embedding": [...] | "...", ...}. */
static int entry(scan *s, llm_span *sp)
{
    int have_index = 0, have_vec = 0;
    if (!eat(s, '{'))
        return -1;
    if (eat(s, '}'))
        return -1;
    do {
        size_t o, l;
        if (string(s, &o, &l) != 0 || !eat(s, ':'))
            return -1;
        ws(s);
        size_t start = s->at;
        if (key_is(s, o, l, "index")) {
            if (number(s) != 0)
                return -1;
            char buf[24], *end;
            size_t n = s->at - start;
            if (n >= sizeof buf)
                return -1;
            memcpy(buf, s->p + start, n);
            buf[n] = '\0';
            sp->index = strtoll(buf, &end, 10);
            if (*end != '\0' || sp->index < 0)
                return -1;
            have_index = 1;
        } else if (key_is(s, o, l, "embedding")) {
            int rc = s->at < s->len && s->p[s->at] == '"' ? string(s, NULL, NULL) : array(s, 0, 1);
            if (rc != 0)
                return -1;
            sp->off = start;
            sp->len = s->at - start;
            have_vec = 1;
        } else if (value(s, 2) != 0) {
            return -1;
        }
    } while (eat(s, ','));
    return eat(s, '}') && have_index && have_vec ? 0 : -1;
}

long llm_embedding_spans(const char *body, size_t len, llm_span *out, size_t cap)
{
    scan s = {body, len, 0};
    long n = -1;
    if (!eat(&s, '{') || eat(&s, '}'))
        return -1;
    do {
        size_t o, l;
        if (string(&s, &o, &l) != 0 || !eat(&s, ':'))
            return -1;
        if (!key_is(&s, o, l, "data")) {
            if (value(&s, 1) != 0)
                return -1;
            continue;
        }
        if (n >= 0 || !eat(&s, '['))
            return -1; /* a second data member */
        n = 0;
        if (!eat(&s, ']')) {
            do {
                if ((size_t)n >= cap || entry(&s, &out[n]) != 0)
                    return -1;
                n++;
            } while (eat(&s, ','));
            if (!eat(&s, ']'))
                return -1;
        }
    } while (eat(&s, ','));
    if (!eat(&s, '}'))
        return -1;
    ws(&s);
    return s.at == s.len ? n : -1;
}

/* ---- records ------------------------------------------------------------------------------ */

/* "f" or "b", a space, the tokens, a space, the raw text. */
char *llm_vector_record(const char *raw, size_t len, int64_t tokens, size_t *out_len)
{
    if (len < 2 ||
        !((raw[0] == '[' && raw[len - 1] == ']') || (raw[0] == '"' && raw[len - 1] == '"')))
        return NULL;
    char head[32];
    int hl = snprintf(head, sizeof head, "%c %" PRId64 " ", raw[0] == '"' ? 'b' : 'f',
                      tokens < 0 ? 0 : tokens);
    char *r = malloc((size_t)hl + len);
    if (r == NULL)
        return NULL;
    memcpy(r, head, (size_t)hl);
    memcpy(r + hl, raw, len);
    *out_len = (size_t)hl + len;
    return r;
}

int llm_vector_decode(const char *rec, size_t len, llm_vector *v)
{
    if (len < 4 || (rec[0] != 'f' && rec[0] != 'b') || rec[1] != ' ')
        return -1;
    size_t i = 2;
    int64_t t = 0;
    while (i < len && rec[i] >= '0' && rec[i] <= '9' && t < INT64_MAX / 10)
        t = t * 10 + (rec[i++] - '0');
    if (i == 2 || i >= len || rec[i] != ' ')
        return -1;
    i++;
    v->base64 = rec[0] == 'b';
    v->tokens = t;
    v->raw = rec + i;
    v->raw_len = len - i;
    char open = v->base64 ? '"' : '[', close = v->base64 ? '"' : ']';
    if (v->raw_len < 2 || v->raw[0] != open || v->raw[v->raw_len - 1] != close)
        return -1;
    return 0;
}

/* ---- encodings ---------------------------------------------------------------------------- */

/* The floats of v's text (malloc'd, *n), or NULL. */
static float *floats_of(const llm_vector *v, size_t *n)
{
    if (v->base64) {
        size_t b64 = v->raw_len - 2;
        if (b64 % 4 != 0 || b64 / 4 * 3 > DIMS_MAX * 4)
            return NULL;
        unsigned char *bytes = malloc(b64 / 4 * 3 + 1);
        if (bytes == NULL)
            return NULL;
        int got = EVP_DecodeBlock(bytes, (const unsigned char *)v->raw + 1, (int)b64);
        size_t pad =
            b64 >= 2 ? (v->raw[v->raw_len - 2] == '=') + (v->raw[v->raw_len - 3] == '=') : 0;
        if (got < 0 || ((size_t)got - pad) % 4 != 0) {
            free(bytes);
            return NULL;
        }
        *n = ((size_t)got - pad) / 4;
        float *f = malloc(*n ? *n * sizeof *f : 1);
        if (f != NULL)
            for (size_t i = 0; i < *n; i++) { /* little-endian float32 */
                uint32_t u = (uint32_t)bytes[4 * i] | (uint32_t)bytes[4 * i + 1] << 8 |
                             (uint32_t)bytes[4 * i + 2] << 16 | (uint32_t)bytes[4 * i + 3] << 24;
                memcpy(&f[i], &u, 4);
            }
        free(bytes);
        return f;
    }
    json_t *a = json_loadb(v->raw, v->raw_len, 0, NULL);
    if (!json_is_array(a) || json_array_size(a) > DIMS_MAX) {
        json_decref(a);
        return NULL;
    }
    *n = json_array_size(a);
    float *f = malloc(*n ? *n * sizeof *f : 1);
    int ok = f != NULL;
    for (size_t i = 0; ok && i < *n; i++) {
        json_t *x = json_array_get(a, i);
        ok = json_is_number(x);
        if (ok)
            f[i] = (float)json_number_value(x);
    }
    json_decref(a);
    if (!ok) {
        free(f);
        return NULL;
    }
    return f;
}

char *llm_vector_encode(const llm_vector *v, int base64, size_t *out_len)
{
    char *out;
    if (!!base64 == !!v->base64) {
        if ((out = malloc(v->raw_len + 1)) != NULL) {
            memcpy(out, v->raw, v->raw_len);
            out[v->raw_len] = '\0';
            *out_len = v->raw_len;
        }
        return out;
    }
    size_t n = 0;
    float *f = floats_of(v, &n);
    if (f == NULL)
        return NULL;
    if (base64) {
        unsigned char *bytes = malloc(n * 4 + 1);
        out = bytes ? malloc((n * 4 + 2) / 3 * 4 + 3) : NULL;
        if (out != NULL) {
            for (size_t i = 0; i < n; i++) {
                uint32_t u;
                memcpy(&u, &f[i], 4);
                for (int b = 0; b < 4; b++)
                    bytes[4 * i + (size_t)b] = (unsigned char)(u >> (8 * b));
            }
            out[0] = '"';
            int w = EVP_EncodeBlock((unsigned char *)out + 1, bytes, (int)(n * 4));
            out[w + 1] = '"';
            out[w + 2] = '\0';
            *out_len = (size_t)w + 2;
        }
        free(bytes);
    } else {
        out = malloc(n * 18 + 3);
        if (out != NULL) {
            size_t at = 0;
            out[at++] = '[';
            for (size_t i = 0; i < n; i++) {
                /* 9 significant digits give the same float32 back; non-finite is not JSON */
                double d = isfinite(f[i]) ? (double)f[i] : 0.0;
                at += (size_t)snprintf(out + at, 18, "%s%.9g", i ? "," : "", d);
            }
            out[at++] = ']';
            out[at] = '\0';
            *out_len = at;
        }
    }
    free(f);
    return out;
}

void llm_tokens_split(int64_t total, const size_t *weights, size_t n, int64_t *out)
{
    if (n == 0)
        return;
    long double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (long double)weights[i];
    int64_t given = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = sum > 0 ? (int64_t)floorl((long double)total * weights[i] / sum) : 0;
        given += out[i];
    }
    out[n - 1] += total - given;
}
