/* fuzz_proxy_record.c: the decoder of stored HTTP responses (src/server/proxy/proxy_record.c).
 *
 * A record is read back from a cache value, and the L2 tier is a shared Redis: anything may sit
 * under a key (another strata version, redis-cli, a bug). The decoder must never read past the
 * bytes it is given (an exact-size heap copy, so ASan sees it), and whatever it accepts must
 * re-encode to exactly the same bytes (so it cannot half-understand a record). The head of an
 * accepted record must split into header lines with a buffer of its own size, and when each line
 * is written "Name: value" (one space, the form proxy_head_format writes) the lines must be
 * written back to the same bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy_record.h"
#include "fuzz_check.h"

/* 1 if every line of a valid head is "Name: value" with exactly one space after the colon: the
 * value proxy_record_headers gives (leading blanks dropped) is then the whole rest of the line. */
static int canonical(const char *head, size_t len)
{
    size_t i = 0;
    while (i < len) {
        const char *colon = memchr(head + i, ':', len - i);
        const char *end = memchr(head + i, '\r', len - i);
        if (colon == NULL || end == NULL || colon + 1 >= end || colon[1] != ' ' ||
            colon[2] == ' ' || colon[2] == '\t')
            return 0;
        i = (size_t)(end - head) + 2;
    }
    return 1;
}

static void headers(const proxy_record *r)
{
    /* the shortest line is "A:\r\n" */
    size_t cap = r->head_len / 4 + 1, lines = 0;
    upstream_header *h = malloc(cap * sizeof *h);
    char *buf = malloc(r->head_len ? r->head_len : 1);
    char *back = malloc(r->head_len * 2 + 1);
    CHECK(h && buf && back);
    for (size_t i = 0; i < r->head_len; i++)
        lines += r->head[i] == '\n';

    long n = proxy_record_headers(r, h, cap, buf, r->head_len);
    CHECK(n >= 0 && (size_t)n == lines);
    for (long i = 0; i < n; i++) {
        CHECK(h[i].name >= buf && h[i].name < buf + r->head_len);
        CHECK(h[i].value >= buf && h[i].value < buf + r->head_len);
        CHECK(h[i].name[0] != '\0' && strchr(h[i].name, ':') == NULL);
        CHECK(strpbrk(h[i].value, "\r\n") == NULL);
    }

    long w = proxy_head_format(h, (size_t)n, back, r->head_len * 2 + 1);
    if (canonical(r->head, r->head_len)) {
        CHECK(w == (long)r->head_len);
        CHECK(w == 0 || memcmp(back, r->head, r->head_len) == 0);
    } else {
        /* a blank dropped or added: never more than one space per line added */
        CHECK(w >= 0 && (size_t)w <= r->head_len + (size_t)n);
    }
    /* last: a refused split leaves buf half written, and h pointing into it */
    if (n > 0)
        CHECK(proxy_record_headers(r, h, (size_t)n - 1, buf, r->head_len) == -1);
    free(back);
    free(buf);
    free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p = malloc(size ? size : 1);
    if (!p)
        return 0;
    memcpy(p, data, size);
    proxy_record r;
    if (proxy_record_decode(p, size, &r) == 0) {
        CHECK(r.kind == PROXY_RECORD_RESPONSE || r.kind == PROXY_RECORD_VARY);
        CHECK(r.status >= 100 && r.status <= 599 && r.facts.status == r.status);
        CHECK(r.head_len == 0 || (r.head > p && r.head + r.head_len <= p + size));
        CHECK(r.vary_len == 0 || (r.vary > p && r.vary + r.vary_len <= p + size));
        CHECK(r.body_len == 0 || r.body + r.body_len == p + size);
        CHECK(proxy_record_head_ok(r.head, r.head_len));

        size_t n = proxy_record_size(&r);
        CHECK(n == size);
        char *out = malloc(n);
        CHECK(out != NULL);
        CHECK(proxy_record_encode(&r, out, n) == (long)n);
        CHECK(memcmp(out, p, n) == 0);
        CHECK(proxy_record_encode(&r, out, n - 1) == -1);
        free(out);
        headers(&r);
    }
    free(p);
    return 0;
}
