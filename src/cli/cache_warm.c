/* cache_warm.c: `strata cache warm FILE`: bulk-loads JSON lines through POST /v1/cache/{ns}/_mset.
 *
 * Each line is one entry: {"namespace","key","value"|"value_b64","ttl","tags","content_type"}.
 * Lines are grouped by namespace (the batch route is per namespace) and sent 500 at a time (or
 * less when a batch nears 4 MiB), on one kept-alive connection.
 *
 * The server refuses a whole _mset batch when one item is invalid, so one bad line must never
 * reach it: every line is checked here first, with the server's own checks where it has them
 * (route_text_ok for keys, codec_b64_decode for value_b64, strata_name_check for namespaces), so
 * the rules cannot drift apart. Should the server still refuse an item (a server configured with
 * smaller limits), the answer names it: that line is reported and the rest of the batch is sent
 * again; a batch over the server's body limit (413) is split in two. Bad lines are reported by
 * number and skipped, never fatal; only an answer that refuses everything (a bad token, a
 * server that cannot be reached or fails) stops the run, after the summary of what was loaded.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <strata/strata.h>

#include "cache_cmd.h"
#include "codec.h"
#include "route.h"

#define BATCH_DEFAULT 500
#define BODY_SOFT_MAX (4u << 20)
#define KEY_MAX       512
#define VALUE_MAX     (1u << 20)
#define TTL_MAX       (10ll * 365 * 86400)
#define ERRORS_SHOWN  50
#define ERRORS_KEPT   1000
#define RETRIES_429   10
#define DRAW_EVERY_MS 100

typedef struct batch {
    char ns[STRATA_NAME_MAX + 1];
    json_t *items; /* _mset items, in file order */
    long *lines;   /* the line each item came from */
    size_t *sizes; /* each item's value bytes */
    size_t n, cap, body;
    struct batch *next;
} batch;

typedef struct warm {
    const cli_opts *o;
    cli_http *h;
    const char *file;
    size_t batch_max;
    uint64_t total, done; /* bytes of the file (0: unknown) and read so far */
    size_t lines, loaded, skipped, l1_only, namespaces;
    uint64_t value_bytes;
    batch *batches;
    json_t *errors;
    int rc; /* the exit code that stopped the run, or 0 */
    long start_ms, drawn_ms;
    int drawn; /* a progress line is on stderr */
} warm;

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---- progress ----------------------------------------------------------------------------- */

static void progress_clear(warm *w)
{
    if (w->drawn)
        fputs("\r\033[K", stderr);
    w->drawn = 0;
}

static void progress_draw(warm *w, int force)
{
    long t = now_ms();
    if (!w->o->err_tty || (!force && t - w->drawn_ms < DRAW_EVERY_MS))
        return;
    char l[32], ok[32], sk[32];
    w->drawn_ms = t;
    fputs("\r\033[K", stderr);
    if (w->total > 0) {
        int pct = (int)(w->done * 100 / w->total), fill = pct * 30 / 100;
        fprintf(stderr, "[%.*s%*s] %3d%%  ", fill, "##############################", 30 - fill, "",
                pct);
    }
    fprintf(stderr, "%s lines  %s loaded  %s skipped", cli_fmt_count(l, w->lines),
            cli_fmt_count(ok, w->loaded), cli_fmt_count(sk, w->skipped));
    fflush(stderr);
    w->drawn = 1;
}

/* ---- bad lines ---------------------------------------------------------------------------- */

static void bad_line(warm *w, long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bad_line(warm *w, long line, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    w->skipped++;
    if (w->skipped <= ERRORS_SHOWN) {
        progress_clear(w);
        cli_err(w->o, "%s:%ld: %s (skipped)", w->file, line, why);
    } else if (w->skipped == ERRORS_SHOWN + 1) {
        progress_clear(w);
        cli_err(w->o, "more bad lines: only counted from here on");
    }
    if (json_array_size(w->errors) < ERRORS_KEPT)
        json_array_append_new(w->errors,
                              json_pack("{s:I,s:s}", "line", (json_int_t)line, "error", why));
}

/* ---- checking a line ---------------------------------------------------------------------- */

static const char *check_namespace(json_t *ns)
{
    if (!json_is_string(ns))
        return "\"namespace\" must be a string";
    const char *s = json_string_value(ns);
    if (json_string_length(ns) > STRATA_NAME_MAX || strata_name_check(s) != 0)
        return "\"namespace\" must be 1-64 characters of A-Z a-z 0-9 _ . -";
    if (s[0] == '_')
        return "namespaces starting with _ are reserved";
    return NULL;
}

static const char *check_key(json_t *k)
{
    if (!json_is_string(k))
        return "\"key\" must be a string";
    size_t n = json_string_length(k);
    if (n == 0)
        return "\"key\" is empty";
    if (n > KEY_MAX)
        return "\"key\" is longer than 512 bytes";
    if (!route_text_ok(json_string_value(k), n))
        return "\"key\" must be UTF-8 text without control characters";
    return NULL;
}

/* Exactly one of value / value_b64; *size gets the value's bytes. */
static const char *check_value(json_t *line, size_t *size)
{
    json_t *v = json_object_get(line, "value"), *b64 = json_object_get(line, "value_b64");
    if ((v != NULL) == (b64 != NULL))
        return "give exactly one of \"value\" and \"value_b64\"";
    if (v != NULL && !json_is_string(v))
        return "\"value\" must be a string (value_b64 carries bytes)";
    if (v != NULL) {
        *size = json_string_length(v);
    } else {
        unsigned char *bytes = NULL;
        if (!json_is_string(b64) ||
            codec_b64_decode(json_string_value(b64), json_string_length(b64), &bytes, size) != 0)
            return "\"value_b64\" must be standard base64 with padding";
        free(bytes);
    }
    return *size > VALUE_MAX ? "the value is larger than 1 MiB" : NULL;
}

static int text_ok(const char *s, size_t n, size_t max, int allow_empty)
{
    if (n > max || (n == 0 && !allow_empty))
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

/* ttl, tags and content_type, all optional. */
static const char *check_options(json_t *line)
{
    json_t *ttl = json_object_get(line, "ttl"), *tags = json_object_get(line, "tags");
    json_t *ct = json_object_get(line, "content_type");
    if (ttl != NULL &&
        (!json_is_integer(ttl) || json_integer_value(ttl) < 1 || json_integer_value(ttl) > TTL_MAX))
        return "\"ttl\" must be a whole number of seconds from 1 to 315360000";
    if (tags != NULL && (!json_is_array(tags) || json_array_size(tags) > STRATA_TAGS_MAX_PER_ENTRY))
        return "\"tags\" must be an array of at most 32 strings";
    for (size_t i = 0; i < json_array_size(tags); i++) {
        json_t *t = json_array_get(tags, i);
        if (!json_is_string(t) ||
            !text_ok(json_string_value(t), json_string_length(t), STRATA_TAG_MAX, 0))
            return "\"tags\" must hold non-empty strings of at most 255 bytes without control "
                   "characters";
    }
    if (ct != NULL &&
        (!json_is_string(ct) ||
         !text_ok(json_string_value(ct), json_string_length(ct), STRATA_CONTENT_TYPE_MAX, 1)))
        return "\"content_type\" must be a string of at most 255 bytes without control "
               "characters";
    return NULL;
}

/* The _mset item for a line (its namespace in ns, value bytes in *size), or NULL after
 * reporting why the line is skipped. */
static json_t *check_line(warm *w, long n, const char *text, size_t len, char *ns, size_t *size)
{
    json_error_t err;
    json_t *line = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    const char *why = NULL;
    if (line == NULL) {
        bad_line(w, n, "not JSON: %s", err.text);
        return NULL;
    }
    if (!json_is_object(line))
        why = "not a JSON object";
    else if ((why = check_namespace(json_object_get(line, "namespace"))) == NULL &&
             (why = check_key(json_object_get(line, "key"))) == NULL &&
             (why = check_value(line, size)) == NULL)
        why = check_options(line);
    json_t *item = NULL;
    if (why != NULL) {
        bad_line(w, n, "%s", why);
    } else {
        strcpy(ns, json_string_value(json_object_get(line, "namespace")));
        item = json_object();
        const char *fields[] = {"key", "value", "value_b64", "ttl", "tags", "content_type"};
        for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
            if (json_object_get(line, fields[i]) != NULL)
                json_object_set(item, fields[i], json_object_get(line, fields[i]));
    }
    json_decref(line);
    return item;
}

/* ---- sending batches ---------------------------------------------------------------------- */

enum { POST_DONE, POST_BAD_ITEM, POST_TOO_BIG, POST_FATAL };

/* Counts a 200 answer: one status per item of b[lo, hi). */
static void account(warm *w, batch *b, size_t lo, size_t hi, const json_t *answer)
{
    json_t *items = json_object_get(answer, "items");
    for (size_t i = lo; i < hi; i++) {
        const char *st = cli_js(json_array_get(items, i - lo), "status");
        if (strcmp(st, "ok") == 0 || strcmp(st, "l1-only") == 0) {
            w->loaded++;
            w->value_bytes += b->sizes[i];
            w->l1_only += st[0] == 'l';
        } else {
            bad_line(w, b->lines[i], "the server did not store it: %s",
                     st[0] ? st : "no status in its answer");
        }
    }
}

/* "items[3]: why" → 3 and why; -1 if the message is not that. */
static long bad_index(const cli_resp *r, char *why, size_t cap)
{
    json_t *j = json_loadb(r->body, r->len, 0, NULL);
    json_t *e = json_object_get(j, "error");
    const char *msg = cli_js(e, "message");
    long i = -1;
    int used = 0;
    if (r->status == 400 && strcmp(cli_js(e, "code"), "bad_item") == 0 &&
        sscanf(msg, "items[%ld]:%n", &i, &used) == 1 && used > 0) {
        snprintf(why, cap, "the server refused it:%s", msg + used);
    } else {
        i = -1;
    }
    json_decref(j);
    return i;
}

/* POSTs b[lo, hi) as one _mset into r, again after a 429 (rate limited) up to 10 times. */
static void request_range(warm *w, batch *b, size_t lo, size_t hi, cli_resp *r)
{
    json_t *slice = json_array();
    for (size_t i = lo; i < hi; i++)
        json_array_append(slice, json_array_get(b->items, i));
    json_t *body = json_pack("{s:o}", "items", slice);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    cli_buf path = {0};
    char *ns = cli_escape(w->h, b->ns, strlen(b->ns));
    cli_buf_addf(&path, "/v1/cache/%s/_mset", ns);
    free(ns);
    for (int tries = 0;; tries++) {
        cli_request(w->h, "POST", path.s, text, text ? strlen(text) : 0, "application/json", r);
        if (r->status != 429 || tries == RETRIES_429)
            break;
        sleep((unsigned)(r->retry_after > 0 && r->retry_after < 60 ? r->retry_after : 1));
        cli_resp_free(r);
    }
    free(text);
    cli_buf_free(&path);
}

/* Sends b[lo, hi) and counts the answer. POST_BAD_ITEM: *bad is the item the server refused
 * and why says why; POST_FATAL: w->rc is set. */
static int post(warm *w, batch *b, size_t lo, size_t hi, size_t *bad, char *why, size_t cap)
{
    cli_resp r;
    request_range(w, b, lo, hi, &r);
    int rc = POST_FATAL;
    long i;
    json_t *answer = r.status == 200 ? json_loadb(r.body, r.len, 0, NULL) : NULL;
    if (json_is_object(answer)) {
        account(w, b, lo, hi, answer);
        rc = POST_DONE;
    } else if ((i = bad_index(&r, why, cap)) >= 0 && (size_t)i < hi - lo) {
        *bad = lo + (size_t)i;
        rc = POST_BAD_ITEM;
    } else if (r.status == 413) {
        rc = POST_TOO_BIG;
    } else if (r.status == 200) {
        progress_clear(w);
        json_decref(cli_resp_json(w->o, &r)); /* says what is wrong with the answer */
        w->rc = CLI_UNREACHABLE;
    } else {
        progress_clear(w);
        w->rc = cli_fail(w->o, &r, "warm");
    }
    json_decref(answer);
    cli_resp_free(&r);
    return rc;
}

/* Sends b[lo, hi): a refused item is reported and the rest sent again; a body too large for
 * the server is split in two. */
static void send_range(warm *w, batch *b, size_t lo, size_t hi)
{
    char why[512];
    while (lo < hi && w->rc == 0) {
        size_t bad = 0;
        int rc = post(w, b, lo, hi, &bad, why, sizeof why);
        if (rc == POST_DONE || rc == POST_FATAL)
            return;
        if (rc == POST_TOO_BIG && hi - lo > 1) {
            send_range(w, b, lo, lo + (hi - lo) / 2);
            lo += (hi - lo) / 2;
            continue;
        }
        if (rc == POST_TOO_BIG) {
            bad_line(w, b->lines[lo], "too large for the server's request body limit");
            return;
        }
        bad_line(w, b->lines[bad], "%s", why);
        send_range(w, b, lo, bad); /* those passed the server's checks */
        lo = bad + 1;
    }
}

static void flush(warm *w, batch *b)
{
    if (b->n > 0 && w->rc == 0)
        send_range(w, b, 0, b->n);
    json_array_clear(b->items);
    b->n = b->body = 0;
    progress_draw(w, 0);
}

static batch *batch_for(warm *w, const char *ns)
{
    for (batch *b = w->batches; b != NULL; b = b->next)
        if (strcmp(b->ns, ns) == 0)
            return b;
    batch *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    strcpy(b->ns, ns);
    b->items = json_array();
    b->next = w->batches;
    w->batches = b;
    w->namespaces++;
    return b;
}

/* Queues item (stolen) from line n; sends the batch when it is full. */
static void add(warm *w, const char *ns, json_t *item, long n, size_t size, size_t key_len)
{
    batch *b = batch_for(w, ns);
    if (b != NULL && b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        long *lines = realloc(b->lines, cap * sizeof *lines);
        size_t *sizes = lines ? realloc(b->sizes, cap * sizeof *sizes) : NULL;
        if (lines != NULL)
            b->lines = lines;
        if (sizes != NULL)
            b->sizes = sizes, b->cap = cap;
    }
    if (b == NULL || b->n == b->cap) {
        json_decref(item);
        bad_line(w, n, "out of memory");
        return;
    }
    json_array_append_new(b->items, item);
    b->lines[b->n] = n;
    b->sizes[b->n++] = size;
    b->body += size * 4 / 3 + key_len + 128;
    if (b->n >= w->batch_max || b->body >= BODY_SOFT_MAX)
        flush(w, b);
}

/* ---- the run ------------------------------------------------------------------------------ */

static void read_lines(warm *w, FILE *in)
{
    char *line = NULL, ns[STRATA_NAME_MAX + 1];
    size_t cap = 0, size = 0;
    ssize_t len;
    while (w->rc == 0 && (len = getline(&line, &cap, in)) >= 0) {
        w->lines++;
        w->done += (uint64_t)len;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (strspn(line, " \t") == (size_t)len)
            continue; /* blank lines are not entries */
        json_t *item = check_line(w, (long)w->lines, line, (size_t)len, ns, &size);
        if (item != NULL)
            add(w, ns, item, (long)w->lines, size,
                json_string_length(json_object_get(item, "key")));
        progress_draw(w, 0);
    }
    free(line);
    for (batch *b = w->batches; b != NULL; b = b->next)
        flush(w, b);
}

static void summary_json(const warm *w, double seconds)
{
    json_t *j =
        json_pack("{s:I,s:I,s:I,s:f,s:I,s:I,s:I,s:b,s:O}", "loaded", (json_int_t)w->loaded,
                  "skipped", (json_int_t)w->skipped, "bytes", (json_int_t)w->value_bytes, "seconds",
                  seconds, "lines", (json_int_t)w->lines, "namespaces", (json_int_t)w->namespaces,
                  "l1_only", (json_int_t)w->l1_only, "complete", w->rc == 0, "errors", w->errors);
    char *text = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
    puts(text ? text : "{}");
    free(text);
    json_decref(j);
}

static void summary(const warm *w)
{
    double s = (double)(now_ms() - w->start_ms) / 1000.0;
    char a[32], b[32], c[32], d[32];
    if (w->o->json) {
        summary_json(w, s);
        return;
    }
    const cli_opts *o = w->o;
    cli_row(o, 0, "loaded", "%s%s%s key%s in %s namespace%s", cli_c(o, "bold"),
            cli_fmt_count(a, w->loaded), cli_c(o, "reset"), w->loaded == 1 ? "" : "s",
            cli_fmt_count(b, w->namespaces), w->namespaces == 1 ? "" : "s");
    cli_row(o, 0, "skipped", "%s%s%s line%s", cli_c(o, w->skipped ? "yellow" : "reset"),
            cli_fmt_count(c, w->skipped), cli_c(o, "reset"), w->skipped == 1 ? "" : "s");
    cli_row(o, 0, "bytes", "%s of values", cli_fmt_bytes(c, w->value_bytes));
    cli_row(o, 0, "time", "%.2f s (%s keys/s)", s,
            cli_fmt_count(d, s > 0 ? (uint64_t)((double)w->loaded / s) : 0));
    if (w->l1_only > 0)
        cli_warn(o, "%zu keys reached only the server's memory: Redis could not be reached",
                 w->l1_only);
    if (w->rc != 0)
        cli_err(o,
                "warm stopped after reading %zu lines: only the keys counted as loaded above "
                "were loaded",
                w->lines);
}

static FILE *open_input(const cli_opts *o, const char *file, uint64_t *total)
{
    FILE *in = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
    struct stat st;
    if (in == NULL)
        cli_err(o, "warm: cannot open %s: %s", file, strerror(errno));
    else if (fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode))
        *total = (uint64_t)st.st_size;
    return in;
}

int cache_warm(const cli_opts *o, cli_http *h)
{
    warm w = {.o = o, .h = h, .file = o->args[0], .errors = json_array()};
    w.batch_max = o->batch > 0 ? (size_t)o->batch : BATCH_DEFAULT;
    FILE *in = open_input(o, w.file, &w.total);
    if (in == NULL) {
        json_decref(w.errors);
        return CLI_USAGE;
    }
    w.start_ms = now_ms();
    read_lines(&w, in);
    if (in != stdin)
        fclose(in);
    progress_clear(&w);
    summary(&w);
    for (batch *b = w.batches, *next; b != NULL; b = next) {
        next = b->next;
        json_decref(b->items);
        free(b->lines);
        free(b->sizes);
        free(b);
    }
    json_decref(w.errors);
    return w.rc;
}
