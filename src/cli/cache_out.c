/* cache_out.c: how `strata cache` talks to people: colours, aligned rows, numbers with units.
 *
 * Colour is decided once (cache_cmd.c): only when the stream is a terminal and NO_COLOR is not
 * set (https://no-color.org), so anything piped or captured gets plain text. Rows put labels in
 * one column and values in the next, at a fixed offset, so a screenful reads as a table; numbers
 * carry their unit (%, MiB, ms) and large counts have thousands separators. Also here: a small
 * growable string, and lenient readers of the server's JSON (a missing member reads as zero, so
 * an older or newer server prints what it has instead of failing).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_cmd.h"

#define LABEL_COLUMN 18

/* ---- growable strings ---------------------------------------------------------------------- */

static void buf_reserve(cli_buf *b, size_t extra)
{
    if (b->s != NULL && b->len + extra < b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap <= b->len + extra)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (s == NULL) {
        fprintf(stderr, "strata: out of memory\n");
        exit(CLI_UNREACHABLE);
    }
    b->s = s, b->cap = cap;
}

void cli_buf_add(cli_buf *b, const void *data, size_t n)
{
    buf_reserve(b, n);
    if (n > 0)
        memcpy(b->s + b->len, data, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void cli_buf_addf(cli_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void cli_buf_free(cli_buf *b)
{
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}

/* ---- colour and messages ------------------------------------------------------------------- */

static const char *sequence(const char *name)
{
    static const struct {
        const char *name, *seq;
    } table[] = {{"bold", "\033[1m"},   {"dim", "\033[2m"},     {"red", "\033[31m"},
                 {"green", "\033[32m"}, {"yellow", "\033[33m"}, {"cyan", "\033[36m"},
                 {"reset", "\033[0m"}};
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (strcmp(table[i].name, name) == 0)
            return table[i].seq;
    return "";
}

const char *cli_c(const cli_opts *o, const char *name)
{
    return o != NULL && o->color ? sequence(name) : "";
}

/* "strata:" and the label (" warning:", or nothing for an error) in bold and the colour, both
 * set before the text they colour and reset after it. */
static void message(const cli_opts *o, const char *what, const char *colour, const char *fmt,
                    va_list ap)
{
    int c = o != NULL && o->err_color;
    fprintf(stderr, "%s%sstrata:%s%s ", c ? sequence("bold") : "", c ? sequence(colour) : "", what,
            c ? sequence("reset") : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_err(const cli_opts *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    message(o, "", "red", fmt, ap);
    va_end(ap);
}

void cli_warn(const cli_opts *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    message(o, " warning:", "yellow", fmt, ap);
    va_end(ap);
}

void cli_row(const cli_opts *o, int indent, const char *label, const char *fmt, ...)
{
    (void)o;
    int pad = LABEL_COLUMN - indent - (int)strlen(label);
    printf("%*s%s%*s", indent, "", label, pad > 1 ? pad : 1, "");
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* ---- numbers ------------------------------------------------------------------------------- */

char *cli_fmt_count(char *buf, uint64_t n)
{
    char digits[24];
    int len = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n);
    char *p = buf;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            *p++ = ',';
        *p++ = digits[i];
    }
    *p = '\0';
    return buf;
}

char *cli_fmt_mib(char *buf, uint64_t bytes)
{
    snprintf(buf, 32, "%.2f MiB", (double)bytes / (1024.0 * 1024.0));
    return buf;
}

char *cli_fmt_bytes(char *buf, uint64_t bytes)
{
    if (bytes < 1024)
        snprintf(buf, 32, "%llu B", (unsigned long long)bytes);
    else if (bytes < 1024 * 1024)
        snprintf(buf, 32, "%.1f KiB", (double)bytes / 1024.0);
    else if (bytes < 1024ull * 1024 * 1024)
        return cli_fmt_mib(buf, bytes);
    else
        snprintf(buf, 32, "%.2f GiB", (double)bytes / (1024.0 * 1024.0 * 1024.0));
    return buf;
}

char *cli_fmt_duration(char *buf, uint64_t s)
{
    unsigned long long v = s;
    if (v < 60)
        snprintf(buf, 32, "%llu s", v);
    else if (v < 3600)
        snprintf(buf, 32, "%llu min %02llu s", v / 60, v % 60);
    else if (v < 86400)
        snprintf(buf, 32, "%llu h %02llu min", v / 3600, v % 3600 / 60);
    else
        snprintf(buf, 32, "%llu d %02llu h", v / 86400, v % 86400 / 3600);
    return buf;
}

/* ---- reading the server's JSON -------------------------------------------------------------- */

uint64_t cli_ju(const json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

double cli_jf(const json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    return json_is_number(v) ? json_number_value(v) : 0.0;
}

const char *cli_js(const json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    return json_is_string(v) ? json_string_value(v) : "";
}

int cli_jb(const json_t *o, const char *name)
{
    return json_is_true(json_object_get(o, name));
}

int cli_usage_error(const char *fmt, const char *arg)
{
    fputs("strata cache: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n  (strata cache --help lists the commands and options)\n", stderr);
    return CLI_USAGE;
}
