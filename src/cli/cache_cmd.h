/* cache_cmd.h: what the pieces of `strata cache` share: the options every subcommand takes, the
 * HTTP client (cache_http.c), the presentation helpers (cache_out.c) and the subcommands
 * (cache_cmd.c, cache_warm.c, cache_purge.c). Internal to the strata binary. */
#ifndef STRATA_CLI_CACHE_CMD_H
#define STRATA_CLI_CACHE_CMD_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* Exit codes scripts can trust (documented in docs/strata.1 and `strata cache --help`). */
enum {
    CLI_OK = 0,          /* done */
    CLI_REFUSED = 1,     /* the server said no (4xx) */
    CLI_USAGE = 2,       /* bad usage, or a clear that was not confirmed: nothing was sent */
    CLI_UNREACHABLE = 3, /* no answer, a timeout, a 5xx or an answer that makes no sense */
};

/* Everything the command line said, after the environment (flags win). */
typedef struct cli_opts {
    const char *url;    /* base URL without a trailing slash (STRATA_URL, --url) */
    const char *token;  /* bearer token (STRATA_TOKEN, --token), or NULL */
    const char *tenant; /* X-Tenant (STRATA_TENANT, --tenant), or NULL */
    long timeout_ms;    /* whole request (STRATA_TIMEOUT, --timeout seconds) */
    int json;           /* --json: the server's JSON on stdout */
    int color;          /* stdout is a terminal and NO_COLOR is not set */
    int err_color;      /* the same for stderr */
    int err_tty;        /* stderr is a terminal (progress bar) */
    /* subcommand options; NULL / -1 when not given (pattern: the last --pattern) */
    const char *pattern, *ns, *tags, *content_type, *output;
    long limit, ttl, batch;
    long watch, count; /* stats --watch [SECONDS] (0: not watching), --count N ticks (-1: on) */
    int force, soft;
    /* positional arguments, and every --tag and --pattern in order (purge takes several); each
     * array has a slot per word of the command line and points into argv */
    const char **args, **tag_list, **pattern_list;
    int nargs, ntags, npatterns;
} cli_opts;

/* ---- growable strings (cache_out.c) ---------------------------------------------------------- */

typedef struct cli_buf {
    char *s; /* NUL-terminated; NULL until something is added */
    size_t len, cap;
} cli_buf;

void cli_buf_add(cli_buf *b, const void *data, size_t n);
void cli_buf_addf(cli_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_buf_free(cli_buf *b);

/* ---- HTTP (cache_http.c) ------------------------------------------------------------------ */

typedef struct cli_http cli_http;

/* One answer. body is NUL-terminated (not counted in len). */
typedef struct cli_resp {
    long status;   /* 0: no HTTP answer (curl_msg says why) */
    int curl_code; /* CURLcode */
    char curl_msg[256];
    char *body;
    size_t len;
    char content_type[256], etag[80], x_cache[32], cache_control[128], age[32], write[32];
    long retry_after; /* seconds, from Retry-After; 0 if absent */
} cli_resp;

/* Opens a client (one connection kept alive across requests). Returns NULL on out of memory. */
cli_http *cli_http_open(const cli_opts *o);
void cli_http_close(cli_http *h);

/* Percent-encodes s[0..n) for a path segment or a query value ('/' included). Caller frees
 * with free(). */
char *cli_escape(cli_http *h, const char *s, size_t n);

/* Sends METHOD url+path (path already encoded, query included) with the token and tenant
 * headers; body may be NULL. content_type NULL sends none. Fills r (free with cli_resp_free). */
void cli_request(cli_http *h, const char *method, const char *path, const void *body, size_t len,
                 const char *content_type, cli_resp *r);
void cli_resp_free(cli_resp *r);

/* The exit code an answer means: 2xx 0, 4xx 1, anything else 3. */
int cli_exit_code(const cli_resp *r);

/* Reports a failed answer (what: "demo/k", "stats", ...) on stderr with what to do about it; in
 * --json mode also prints the server's error body on stdout. Returns the exit code. */
int cli_fail(const cli_opts *o, const cli_resp *r, const char *what);

/* The body as JSON (NULL, after reporting it, when it is not). */
json_t *cli_resp_json(const cli_opts *o, const cli_resp *r);

/* ---- output (cache_out.c) ------------------------------------------------------------------ */

/* An ANSI sequence when colour is on, else "". Names: "bold", "dim", "red", "green",
 * "yellow", "cyan", "reset". */
const char *cli_c(const cli_opts *o, const char *name);

/* "strata: " + message on stderr (coloured on a terminal). */
void cli_err(const cli_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_warn(const cli_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "  label           " then the formatted value and a newline, labels aligned. */
void cli_row(const cli_opts *o, int indent, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Formats into buf (at least 32 bytes): "1,234,567"; "12.34 MiB"; bytes in the best unit;
 * a duration in seconds as "3 d 04 h", "2 h 05 min", "45 s". Each returns buf. */
char *cli_fmt_count(char *buf, uint64_t n);
char *cli_fmt_mib(char *buf, uint64_t bytes);
char *cli_fmt_bytes(char *buf, uint64_t bytes);
char *cli_fmt_duration(char *buf, uint64_t seconds);

/* Reads an integer / real / string / boolean member (0, 0.0, "" or 0 when absent). */
uint64_t cli_ju(const json_t *o, const char *name);
double cli_jf(const json_t *o, const char *name);
const char *cli_js(const json_t *o, const char *name);
int cli_jb(const json_t *o, const char *name);

/* "strata cache: " + fmt (one %s: arg) on stderr, then the hint to --help. Returns CLI_USAGE
 * (cache_out.c). Example: return cli_usage_error("unknown option %s", argv[i]); */
int cli_usage_error(const char *fmt, const char *arg);

/* ---- subcommands ---------------------------------------------------------------------------- */

int cache_main(int argc, char **argv);
void cache_usage(FILE *f);
int cache_warm(const cli_opts *o, cli_http *h);
int cache_purge(const cli_opts *o, cli_http *h);
int cache_watch(const cli_opts *o, cli_http *h);

#endif
