/* cache_cmd.c: `strata cache`: the command line that operates a strata server over its HTTP API.
 *
 *   strata cache [options] stats | health | clear | keys | get | set | del | warm | purge [args]
 *
 * Every subcommand is one or a few HTTP requests (cache_http.c) and a way of showing the answer:
 * for people, aligned rows with units, coloured on a terminal (cache_out.c); with --json, the
 * server's own JSON, unchanged, for scripts. Options come from the environment first (STRATA_URL,
 * STRATA_TOKEN, STRATA_TENANT, STRATA_TIMEOUT), then from flags, which may stand before or after
 * the subcommand. The exit code says who failed: 0 done, 1 the server said no (4xx), 2 bad usage
 * (nothing was sent), 3 the server could not be reached or failed (5xx). `warm` lives in
 * cache_warm.c, `purge` in cache_purge.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cache_cmd.h"
#include "codec.h"
#include "route.h"

#define DEFAULT_URL     "http://127.0.0.1:8080"
#define PAGE_MAX        1000
#define TTL_MAX_SECONDS (10L * 365 * 86400)
#define ARGS_ANY        (-1) /* never equal to a count of arguments */

/* ---- usage -------------------------------------------------------------------------------- */

void cache_usage(FILE *f)
{
    fprintf(
        f,
        "usage: strata cache [options] COMMAND [arguments]\n"
        "\n"
        "Operates a running strata server over its HTTP API.\n"
        "\n"
        "commands:\n"
        "  stats [--namespace N]          hit rates, keys, memory, Redis state (admin token);\n"
        "                                 with --namespace, that namespace's settings, L1 and\n"
        "                                 requests; with --tenant, that tenant's requests\n"
        "  stats --watch [SECONDS] [--count N]\n"
        "                                 a live view refreshed every SECONDS (1): requests/s,\n"
        "                                 hit ratio, latency, L1 memory, Redis (read token); one\n"
        "                                 line per tick when stdout is not a terminal\n"
        "  top                            the same as stats --watch\n"
        "  health                         healthy / degraded / unhealthy, with details (read "
        "token)\n"
        "  clear [--namespace N] [--pattern P] [--force]\n"
        "                                 remove keys of one tenant (admin token); asks first on\n"
        "                                 a terminal, refuses without --force otherwise\n"
        "  keys [--namespace N] [--pattern P] [--limit N]\n"
        "                                 list keys, every page (admin token)\n"
        "  get NAMESPACE/KEY [-o FILE]    print a value, byte for byte (read token); a value that\n"
        "                                 is not text goes to a terminal only with -o FILE\n"
        "                                 (--output) or through a pipe\n"
        "  set NAMESPACE/KEY [VALUE] [--ttl SECONDS] [--tags T1,T2] [--content-type TYPE]\n"
        "                                 store a value: VALUE, or stdin when absent or '-'\n"
        "                                 (write token)\n"
        "  del NAMESPACE/KEY              delete a key (write token)\n"
        "  warm FILE [--batch N]          bulk-load JSON lines from FILE ('-': stdin), N per\n"
        "                                 request (default 500, at most 1000) (write token):\n"
        "      {\"namespace\":\"ns\",\"key\":\"k\",\"value\":\"text\" | \"value_b64\":\"...\",\n"
        "       \"ttl\":60,\"tags\":[\"t\"],\"content_type\":\"...\"}\n"
        "      bad lines are reported by number and skipped\n"
        "  purge [URL...] [--tag TAG]... [--pattern GLOB]... [--soft]\n"
        "                                 drop what the caching proxy stored, in one request\n"
        "                                 (write token): each URL (/PATH: on the host of --url;\n"
        "                                 else http://HOST/PATH, every query string), each tag,\n"
        "                                 each key matching a glob ('GET api.example.com/t/*');\n"
        "                                 --soft marks them stale instead. URLs are arguments,\n"
        "                                 not a flag: --url is always the server\n"
        "\n"
        "options (before or after the command):\n"
        "  --url URL          the server (STRATA_URL, default " DEFAULT_URL ")\n"
        "  --token TOKEN      bearer token (STRATA_TOKEN; prefer the variable: arguments are\n"
        "                     visible to other users in ps)\n"
        "  --tenant TENANT    act in this tenant: X-Tenant (STRATA_TENANT, default: the token's\n"
        "                     tenant, else \"default\")\n"
        "  --timeout SECONDS  per request (STRATA_TIMEOUT, default 30)\n"
        "  --json             print the server's JSON instead of text\n"
        "  --help             this text\n"
        "\n"
        "Output is coloured only on a terminal and never when NO_COLOR is set.\n"
        "A key may contain '/': everything after the first '/' is the key.\n"
        "\n"
        "exit codes:\n"
        "  0  done\n"
        "  1  the server said no (4xx: missing key, bad token or role, invalid input)\n"
        "  2  usage error, or a clear that was not confirmed (nothing was sent)\n"
        "  3  cannot reach the server, a timeout, or a server error (5xx)\n"
        "\n"
        "The server itself: strata serve --help. More: man strata.\n");
}

/* ---- options ------------------------------------------------------------------------------ */

enum {
    OPT_PATTERN = 1 << 0,
    OPT_NS = 1 << 1,
    OPT_LIMIT = 1 << 2,
    OPT_FORCE = 1 << 3,
    OPT_TTL = 1 << 4,
    OPT_TAGS = 1 << 5,
    OPT_CTYPE = 1 << 6,
    OPT_BATCH = 1 << 7,
    OPT_OUTPUT = 1 << 8,
    OPT_TAG = 1 << 9,
    OPT_SOFT = 1 << 10,
    OPT_WATCH = 1 << 11,
};

typedef struct command {
    const char *name;
    unsigned opts;          /* OPT_* it takes besides the global options */
    int min_args, max_args; /* max_args ARGS_ANY: no bound */
    int (*run)(const cli_opts *o, cli_http *h);
} command;

typedef struct option_def {
    const char *name;
    int has_value;
    unsigned bit; /* 0: global */
} option_def;

static const option_def option_defs[] = {
    {"--url", 1, 0},
    {"--token", 1, 0},
    {"--tenant", 1, 0},
    {"--timeout", 1, 0},
    {"--json", 0, 0},
    {"--pattern", 1, OPT_PATTERN},
    {"--namespace", 1, OPT_NS},
    {"--limit", 1, OPT_LIMIT},
    {"--force", 0, OPT_FORCE},
    {"--ttl", 1, OPT_TTL},
    {"--tags", 1, OPT_TAGS},
    {"--content-type", 1, OPT_CTYPE},
    {"--batch", 1, OPT_BATCH},
    {"--output", 1, OPT_OUTPUT},
    {"--tag", 1, OPT_TAG},
    {"--soft", 0, OPT_SOFT},
    {"--watch", 0, OPT_WATCH},
    {"--count", 1, OPT_WATCH},
};

/* A whole number from lo to hi, or -1. */
static long parse_long(const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || v < lo || v > hi)
        return -1;
    return v;
}

static const option_def *find_option(const char *arg, const char **value)
{
    if (strcmp(arg, "-o") == 0) /* the one short option: what curl and cc call it */
        arg = "--output";
    size_t n = strcspn(arg, "=");
    *value = arg[n] == '=' ? arg + n + 1 : NULL;
    for (size_t i = 0; i < sizeof option_defs / sizeof *option_defs; i++)
        if (strlen(option_defs[i].name) == n && strncmp(option_defs[i].name, arg, n) == 0)
            return &option_defs[i];
    return NULL;
}

/* Stores one option's value. Returns 0, or CLI_USAGE after saying why. */
static int set_option(cli_opts *o, const char *name, const char *v)
{
    const struct {
        const char *name;
        long *dst, lo, hi;
    } numbers[] = {{"--limit", &o->limit, 1, 1000000000L},
                   {"--ttl", &o->ttl, 1, TTL_MAX_SECONDS},
                   {"--batch", &o->batch, 1, PAGE_MAX},
                   {"--count", &o->count, 1, 1000000000L},
                   {"--timeout", &o->timeout_ms, 1, 3600}};
    for (size_t i = 0; i < sizeof numbers / sizeof *numbers; i++)
        if (strcmp(name, numbers[i].name) == 0) {
            *numbers[i].dst = parse_long(v, numbers[i].lo, numbers[i].hi);
            if (*numbers[i].dst < 0) {
                char why[96];
                snprintf(why, sizeof why, "%s needs a whole number from %ld to %ld", name,
                         numbers[i].lo, numbers[i].hi);
                return cli_usage_error("%s", why);
            }
            if (numbers[i].dst == &o->timeout_ms)
                o->timeout_ms *= 1000;
            return 0;
        }
    const char **strings[] = {&o->url, &o->token, &o->tenant,       &o->pattern,
                              &o->ns,  &o->tags,  &o->content_type, &o->output};
    const char *names[] = {"--url",       "--token", "--tenant",       "--pattern",
                           "--namespace", "--tags",  "--content-type", "--output"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(name, names[i]) == 0)
            *strings[i] = v;
    if (strcmp(name, "--pattern") == 0) /* purge takes several; clear and keys the last */
        o->pattern_list[o->npatterns++] = v;
    else if (strcmp(name, "--tag") == 0)
        o->tag_list[o->ntags++] = v;
    return 0;
}

/* --watch[=SECONDS] or --watch [SECONDS]: the interval, 1 s when no number follows (stats takes
 * no other argument, so a number after it can only be the interval). Returns 0 or CLI_USAGE. */
static int take_watch(cli_opts *o, int argc, char **argv, int *i, const char *value)
{
    const char *next = *i + 1 < argc ? argv[*i + 1] : "";
    if (value == NULL && next[0] != '\0' && strspn(next, "0123456789") == strlen(next))
        value = argv[++*i];
    o->watch = value ? parse_long(value, 1, 3600) : 1;
    return o->watch > 0 ? 0 : cli_usage_error("%s", "--watch takes whole seconds from 1 to 3600");
}

/* One "--name[=value]" argument (its value may be the next one). Returns 0 or CLI_USAGE. */
static int take_option(cli_opts *o, int argc, char **argv, int *i, unsigned *seen)
{
    const char *value;
    const option_def *d = find_option(argv[*i], &value);
    if (d == NULL)
        return cli_usage_error("unknown option %s", argv[*i]);
    *seen |= d->bit;
    if (!d->has_value) {
        if (value != NULL && strcmp(d->name, "--watch") != 0)
            return cli_usage_error("%s takes no value", d->name);
        if (strcmp(d->name, "--watch") == 0)
            return take_watch(o, argc, argv, i, value);
        if (strcmp(d->name, "--json") == 0)
            o->json = 1;
        else if (strcmp(d->name, "--soft") == 0)
            o->soft = 1;
        else
            o->force = 1;
        return 0;
    }
    if (value == NULL) {
        if (*i + 1 >= argc)
            return cli_usage_error("%s needs a value", d->name);
        value = argv[++*i];
    }
    return set_option(o, d->name, value);
}

static void defaults(cli_opts *o)
{
    memset(o, 0, sizeof *o);
    const char *v;
    o->url = (v = getenv("STRATA_URL")) && *v ? v : DEFAULT_URL;
    o->token = (v = getenv("STRATA_TOKEN")) && *v ? v : NULL;
    o->tenant = (v = getenv("STRATA_TENANT")) && *v ? v : NULL;
    o->timeout_ms = 30000;
    o->limit = o->ttl = o->batch = o->count = -1;
    const char *no_color = getenv("NO_COLOR");
    int colour_ok = no_color == NULL || no_color[0] == '\0';
    o->color = colour_ok && isatty(STDOUT_FILENO);
    o->err_tty = isatty(STDERR_FILENO);
    o->err_color = colour_ok && o->err_tty;
}

/* ---- showing answers ---------------------------------------------------------------------- */

static void add_query(cli_http *h, cli_buf *path, const char *name, const char *value)
{
    if (value == NULL)
        return;
    char *e = cli_escape(h, value, strlen(value));
    cli_buf_addf(path, "%c%s=%s", strchr(path->s, '?') ? '&' : '?', name, e);
    free(e);
}

/* Requests method path; on success prints the JSON (--json) or show()s it. Returns the exit code.
 */
static int run_json(const cli_opts *o, cli_http *h, const char *method, const char *path,
                    const char *what,
                    void (*show)(const cli_opts *, const json_t *, const cli_resp *))
{
    cli_resp r;
    cli_request(h, method, path, NULL, 0, NULL, &r);
    int rc = cli_exit_code(&r);
    if (rc != CLI_OK) {
        rc = cli_fail(o, &r, what);
    } else if (o->json) {
        fwrite(r.body, 1, r.len, stdout);
    } else {
        json_t *j = cli_resp_json(o, &r);
        if (j != NULL)
            show(o, j, &r);
        rc = j != NULL ? CLI_OK : CLI_UNREACHABLE;
        json_decref(j);
    }
    cli_resp_free(&r);
    return rc;
}

static void heading(const cli_opts *o, const char *title)
{
    printf("%s%s%s\n", cli_c(o, "bold"), title, cli_c(o, "reset"));
}

static void row_count(const cli_opts *o, const char *label, const json_t *j, const char *name)
{
    char b[32];
    cli_row(o, 2, label, "%s", cli_fmt_count(b, cli_ju(j, name)));
}

static void row_rate(const cli_opts *o, const json_t *j)
{
    char h[32], m[32];
    uint64_t hits = cli_ju(j, "hits"), misses = cli_ju(j, "misses");
    cli_row(o, 2, "hit rate", "%s%.1f %%%s  (%s hit%s, %s miss%s)", cli_c(o, "bold"),
            cli_jf(j, "hit_rate") * 100.0, cli_c(o, "reset"), cli_fmt_count(h, hits),
            hits == 1 ? "" : "s", cli_fmt_count(m, misses), misses == 1 ? "" : "es");
}

static void show_l1(const cli_opts *o, const json_t *l1)
{
    char used[32], max[32];
    uint64_t u = cli_ju(l1, "memory_bytes"), m = cli_ju(l1, "max_memory_bytes");
    heading(o, "L1 (memory)");
    row_rate(o, l1);
    row_count(o, "keys", l1, "keys");
    if (json_object_get(l1, "max_memory_bytes") == NULL) /* one namespace: no bound of its own */
        cli_row(o, 2, "memory", "%s", cli_fmt_bytes(used, u));
    else
        cli_row(o, 2, "memory", "%s of %s (%.1f %%)", cli_fmt_mib(used, u), cli_fmt_mib(max, m),
                m ? 100.0 * (double)u / (double)m : 0.0);
    const char *counters[] = {"sets",        "deletes",    "evictions",
                              "expirations", "rejections", "invalidations"};
    for (size_t i = 0; i < sizeof counters / sizeof *counters; i++)
        row_count(o, counters[i], l1, counters[i]);
}

static void show_redis_info(const cli_opts *o, const json_t *r)
{
    char used[32], max[32], n[32], c[32];
    uint64_t maxmem = cli_ju(r, "maxmemory");
    cli_row(o, 2, "redis", "%s (%s)", cli_js(r, "version"), cli_js(r, "role"));
    cli_row(o, 2, "redis memory", "%s used, %s%s, %s", cli_fmt_mib(used, cli_ju(r, "used_memory")),
            maxmem ? "maxmemory " : "no maxmemory", maxmem ? cli_fmt_mib(max, maxmem) : "",
            cli_js(r, "maxmemory_policy"));
    cli_row(o, 2, "redis keys", "%s (%s clients)", cli_fmt_count(n, cli_ju(r, "keys")),
            cli_fmt_count(c, cli_ju(r, "connected_clients")));
}

static void show_l2(const cli_opts *o, const json_t *l2)
{
    heading(o, "L2 (Redis)");
    if (!cli_jb(l2, "configured")) {
        cli_row(o, 2, "state", "not configured: memory only (REDIS_URL on the server adds it)");
        return;
    }
    int up = cli_jb(l2, "available");
    cli_row(o, 2, "state", "%s%s%s, breaker %s%s%s", cli_c(o, up ? "green" : "red"),
            up ? "available" : "unavailable", cli_c(o, "reset"), cli_js(l2, "breaker"),
            cli_jb(l2, "readonly") ? ", read-only" : "",
            cli_jb(l2, "coherent") ? ", coherent" : ", not coherent");
    row_rate(o, l2);
    const char *counters[] = {"errors", "fallbacks", "breaker_opens", "invalidations"};
    const char *labels[] = {"errors", "fallbacks", "breaker opens", "invalidations"};
    for (size_t i = 0; i < sizeof counters / sizeof *counters; i++)
        row_count(o, labels[i], l2, counters[i]);
    if (cli_js(l2, "last_error")[0])
        cli_row(o, 2, "last error", "%s", cli_js(l2, "last_error"));
    if (json_is_object(json_object_get(l2, "redis")))
        show_redis_info(o, json_object_get(l2, "redis"));
}

/* The settings of one namespace, as STRATA_NAMESPACES names them. */
static void show_settings(const cli_opts *o, const json_t *st)
{
    char quota[32] = "none", max[32] = "none", ttl[32] = "never expires";
    if (cli_ju(st, "quota") > 0)
        cli_fmt_bytes(quota, cli_ju(st, "quota"));
    if (cli_ju(st, "max_ttl") > 0)
        snprintf(max, sizeof max, "%llu s", (unsigned long long)cli_ju(st, "max_ttl"));
    if (cli_ju(st, "ttl") > 0)
        snprintf(ttl, sizeof ttl, "%llu s", (unsigned long long)cli_ju(st, "ttl"));
    cli_row(o, 2, "ttl", "%s (max %s, errors %llu s, jitter %.0f %%)", ttl, max,
            (unsigned long long)cli_ju(st, "error_ttl"), cli_jf(st, "jitter") * 100.0);
    cli_row(o, 2, "tenant quota", "%s", quota);
}

/* What the cache API was asked in a namespace or by a tenant, on this server since start. */
static void show_requests(const cli_opts *o, const json_t *j)
{
    const json_t *rq = json_object_get(j, "requests");
    char a[32], b[32], c[32];
    heading(o, "requests (this server, since start)");
    uint64_t hits = cli_ju(rq, "l1") + cli_ju(rq, "l2"), misses = cli_ju(rq, "misses");
    cli_row(o, 2, "hit rate", "%s%.1f %%%s  (%s hit%s, %s miss%s)", cli_c(o, "bold"),
            cli_jf(rq, "hit_rate") * 100.0, cli_c(o, "reset"), cli_fmt_count(a, hits),
            hits == 1 ? "" : "s", cli_fmt_count(b, misses), misses == 1 ? "" : "es");
    cli_row(o, 2, "reads from", "L1 %s, L2 %s", cli_fmt_count(a, cli_ju(rq, "l1")),
            cli_fmt_count(c, cli_ju(rq, "l2")));
    const char *counters[] = {"writes", "deletes", "errors", "total"};
    for (size_t i = 0; i < sizeof counters / sizeof *counters; i++)
        row_count(o, counters[i], rq, counters[i]);
    if (json_is_false(json_object_get(j, "complete")))
        cli_warn(o, "some of this tenant's requests may be missing: a worker of the server "
                    "tracks a bounded number of namespace-tenant pairs and counts the others "
                    "together");
}

/* stats --namespace / --tenant: the server's answer about one scope. */
static void show_scope(const cli_opts *o, const json_t *j)
{
    const char *ns = cli_js(j, "namespace"), *tenant = cli_js(j, "tenant");
    if (*tenant)
        printf("%stenant %s%s%s%s\n", cli_c(o, "bold"), tenant, *ns ? " in namespace " : "", ns,
               cli_c(o, "reset"));
    else
        printf("%snamespace %s%s\n", cli_c(o, "bold"), ns, cli_c(o, "reset"));
    if (json_is_object(json_object_get(j, "settings")))
        show_settings(o, json_object_get(j, "settings"));
    if (json_is_object(json_object_get(j, "l1")))
        show_l1(o, json_object_get(j, "l1"));
    show_requests(o, j);
}

/* The LLM gateway's rows (route, model, tenant): what the cache answered and what it saved. */
static void show_llm(const cli_opts *o, const json_t *proxy)
{
    const json_t *rows = json_object_get(proxy, "llm");
    if (json_array_size(rows) == 0)
        return;
    heading(o, "LLM gateway (route / model / tenant)");
    for (size_t i = 0; i < json_array_size(rows); i++) {
        const json_t *w = json_array_get(rows, i);
        char label[200], a[32], b[32], c[32];
        snprintf(label, sizeof label, "%s / %s / %s", cli_js(w, "route"), cli_js(w, "model"),
                 cli_js(w, "tenant"));
        uint64_t tokens = cli_ju(w, "prompt_tokens_saved") + cli_ju(w, "completion_tokens_saved");
        cli_row(o, 2, label, "%s requests, %s hits (%llu coalesced), %llu passed through",
                cli_fmt_count(a, cli_ju(w, "requests")),
                cli_fmt_count(b, cli_ju(w, "hits") + cli_ju(w, "coalesced")),
                (unsigned long long)cli_ju(w, "coalesced"),
                (unsigned long long)cli_ju(w, "bypass"));
        cli_row(o, 4, "saved", "%s tokens, $%.4f", cli_fmt_count(c, tokens),
                cli_jf(w, "usd_saved"));
        if (cli_ju(w, "embedding_inputs"))
            cli_row(o, 4, "embeddings", "%s of %s inputs from the cache",
                    cli_fmt_count(a, cli_ju(w, "embedding_inputs_cached")),
                    cli_fmt_count(b, cli_ju(w, "embedding_inputs")));
    }
}

static void show_stats(const cli_opts *o, const json_t *j, const cli_resp *r)
{
    (void)r;
    char up[32];
    if (json_object_get(j, "namespace") != NULL || json_object_get(j, "tenant") != NULL) {
        show_scope(o, j);
        return;
    }
    const json_t *srv = json_object_get(j, "server");
    show_l1(o, json_object_get(j, "l1"));
    show_l2(o, json_object_get(j, "l2"));
    heading(o, "server");
    cli_row(o, 2, "uptime", "%s", cli_fmt_duration(up, cli_ju(srv, "uptime_s")));
    cli_row(o, 2, "workers", "%llu", (unsigned long long)cli_ju(srv, "workers"));
    show_llm(o, json_object_get(j, "proxy"));
}

static int cmd_stats(const cli_opts *o, cli_http *h)
{
    if (o->watch > 0)
        return cache_watch(o, h);
    cli_buf path = {0};
    cli_buf_addf(&path, "/cache/stats");
    add_query(h, &path, "namespace", o->ns);
    add_query(h, &path, "tenant", o->tenant);
    int rc = run_json(o, h, "GET", path.s, "stats", show_stats);
    cli_buf_free(&path);
    return rc;
}

/* ---- health ------------------------------------------------------------------------------- */

/* A row per Redis node: its address, in use as a primary or not, a cluster primary's slots, the
 * last health check's round trip, its errors. */
static void show_health_nodes(const cli_opts *o, const json_t *nodes)
{
    for (size_t i = 0; i < json_array_size(nodes); i++) {
        const json_t *n = json_array_get(nodes, i);
        char slots[48] = "", latency[32] = "not pinged yet";
        if (json_is_integer(json_object_get(n, "slots")))
            snprintf(slots, sizeof slots, ", %llu slots", (unsigned long long)cli_ju(n, "slots"));
        if (json_is_number(json_object_get(n, "latency_ms")))
            snprintf(latency, sizeof latency, "%.2f ms", cli_jf(n, "latency_ms"));
        uint64_t errors = cli_ju(n, "errors");
        cli_row(o, 2, i == 0 ? "nodes" : "", "%s %s%s, %s, %llu error%s", cli_js(n, "addr"),
                cli_jb(n, "primary") ? "primary" : "not in use", slots, latency,
                (unsigned long long)errors, errors == 1 ? "" : "s");
    }
}

static void show_health_redis(const cli_opts *o, const json_t *j)
{
    if (!cli_jb(j, "redis_configured")) {
        cli_row(o, 0, "redis", "not configured (memory only)");
        return;
    }
    int up = cli_jb(j, "redis_available");
    char latency[32] = "", topo[400] = "";
    if (json_is_number(json_object_get(j, "redis_latency_ms")))
        snprintf(latency, sizeof latency, ", %.2f ms", cli_jf(j, "redis_latency_ms"));
    /* Where Redis is ({"topology", "primary", "tls"}; a server from before it has none). */
    const json_t *where = json_object_get(j, "redis");
    if (json_is_object(where)) {
        const char *primary = cli_js(where, "primary");
        snprintf(topo, sizeof topo, ", %s, primary %s, TLS %s", cli_js(where, "topology"),
                 primary[0] ? primary : "not known yet", cli_jb(where, "tls") ? "on" : "off");
    }
    cli_row(o, 0, "redis", "%s%s%s%s%s, breaker %s%s%s", cli_c(o, up ? "green" : "red"),
            up ? "available" : "unavailable", cli_c(o, "reset"), topo, latency,
            cli_js(j, "breaker"), cli_jb(j, "readonly") ? ", read-only" : "",
            cli_jb(j, "coherent") ? ", coherent" : ", not coherent");
    show_health_nodes(o, json_is_object(where) ? json_object_get(where, "node_list") : NULL);
    /* The server keeps the last error after Redis recovered: on a healthy server it is history,
     * and printed beside "healthy" it would read as a current fault. */
    if (cli_js(j, "last_error")[0] && strcmp(cli_js(j, "status"), "healthy") != 0)
        cli_row(o, 0, "last error", "%s", cli_js(j, "last_error"));
}

static void show_health(const cli_opts *o, const json_t *j, const cli_resp *r)
{
    (void)r;
    const char *s = cli_js(j, "status");
    const char *colour = strcmp(s, "healthy") == 0    ? "green"
                         : strcmp(s, "degraded") == 0 ? "yellow"
                                                      : "red";
    cli_row(o, 0, "status", "%s%s%s%s", cli_c(o, "bold"), cli_c(o, colour), s, cli_c(o, "reset"));
    if (json_object_get(j, "redis_configured") == NULL) {
        printf("%s(details need a read token: STRATA_TOKEN or --token)%s\n", cli_c(o, "dim"),
               cli_c(o, "reset"));
        return;
    }
    show_health_redis(o, j);
    char n[32], b[32];
    uint64_t entries = cli_ju(j, "l1_entries");
    cli_row(o, 0, "L1", "%s key%s, %s", cli_fmt_count(n, entries), entries == 1 ? "" : "s",
            cli_fmt_mib(b, cli_ju(j, "l1_bytes")));
    json_t *w = json_object_get(j, "warnings");
    for (size_t i = 0; i < json_array_size(w); i++)
        cli_row(o, 0, i == 0 ? "warnings" : "", "%s%s%s", cli_c(o, "yellow"),
                json_string_value(json_array_get(w, i)), cli_c(o, "reset"));
}

/* health: a 503 "unhealthy" still has a body worth showing; the exit code is then 3. */
static int cmd_health(const cli_opts *o, cli_http *h)
{
    cli_resp r;
    cli_request(h, "GET", "/cache/health", NULL, 0, NULL, &r);
    json_t *j = r.status == 200 || r.status == 503 ? json_loadb(r.body, r.len, 0, NULL) : NULL;
    int rc = cli_exit_code(&r);
    if (!json_is_string(json_object_get(j, "status"))) {
        if (rc == CLI_OK)
            cli_err(o, "health: the answer has no status\n  Is STRATA_URL the address of a "
                       "strata server?");
        rc = rc == CLI_OK ? CLI_UNREACHABLE : cli_fail(o, &r, "health");
    } else {
        if (o->json)
            fwrite(r.body, 1, r.len, stdout);
        else
            show_health(o, j, &r);
        if (rc != CLI_OK)
            cli_err(o,
                    "health: the server reports %s (%ld)\n  It needs Redis (--require-redis) "
                    "and Redis does not answer: check Redis and the server's log.",
                    cli_js(j, "status"), r.status);
    }
    json_decref(j);
    cli_resp_free(&r);
    return rc;
}

/* ---- clear -------------------------------------------------------------------------------- */

/* "keys matching 'a*' in namespace demo of tenant default" */
static void describe_scope(const cli_opts *o, cli_buf *b)
{
    if (o->pattern != NULL)
        cli_buf_addf(b, "keys matching '%s'", o->pattern);
    else
        cli_buf_addf(b, "all keys");
    if (o->ns != NULL)
        cli_buf_addf(b, " in namespace %s", o->ns);
    else
        cli_buf_addf(b, " in every namespace");
    if (o->tenant != NULL)
        cli_buf_addf(b, " of tenant %s", o->tenant);
    else if (o->token != NULL)
        cli_buf_addf(b, " of the token's tenant (default when it is bound to none)");
    else
        cli_buf_addf(b, " of tenant default");
}

/* Asks on the terminal. Returns 1 for yes. */
static int confirmed(const cli_opts *o)
{
    cli_buf what = {0};
    describe_scope(o, &what);
    fprintf(stderr, "Remove %s from %s? [y/N] ", what.s, o->url);
    fflush(stderr);
    cli_buf_free(&what);
    char line[32];
    if (fgets(line, sizeof line, stdin) == NULL)
        return 0;
    return strcmp(line, "y\n") == 0 || strcmp(line, "yes\n") == 0 || strcmp(line, "Y\n") == 0;
}

static void show_cleared(const cli_opts *o, const json_t *j, const cli_resp *r)
{
    char n[32];
    cli_buf what = {0};
    describe_scope(o, &what);
    printf("removed %s%s%s key%s (%s)\n", cli_c(o, "bold"), cli_fmt_count(n, cli_ju(j, "removed")),
           cli_c(o, "reset"), cli_ju(j, "removed") == 1 ? "" : "s", what.s);
    cli_buf_free(&what);
    if (strcmp(r->write, "l1-only") == 0)
        cli_warn(o, "Redis could not be reached: only this instance's memory was cleared");
}

static int cmd_clear(const cli_opts *o, cli_http *h)
{
    if (!o->force && !isatty(STDIN_FILENO)) {
        cli_err(o, "clear: refusing to clear without confirmation (stdin is not a terminal)\n"
                   "  Pass --force to clear from a script.");
        return CLI_USAGE;
    }
    if (!o->force && !confirmed(o)) {
        cli_err(o, "clear: not confirmed; nothing was cleared");
        return CLI_USAGE;
    }
    cli_buf path = {0};
    cli_buf_addf(&path, "/cache/clear");
    add_query(h, &path, "namespace", o->ns);
    add_query(h, &path, "pattern", o->pattern);
    int rc = run_json(o, h, "POST", path.s, "clear", show_cleared);
    cli_buf_free(&path);
    return rc;
}

/* ---- keys --------------------------------------------------------------------------------- */

/* Fetches one page of at most want keys and appends it to acc ({"keys", "cursor", "tenant"}).
 * Returns the exit code. */
static int keys_page(const cli_opts *o, cli_http *h, size_t want, json_t *acc)
{
    cli_buf path = {0};
    char limit[24];
    snprintf(limit, sizeof limit, "%zu", want < PAGE_MAX ? want : (size_t)PAGE_MAX);
    cli_buf_addf(&path, "/cache/keys");
    add_query(h, &path, "limit", limit);
    add_query(h, &path, "cursor", cli_js(acc, "cursor"));
    add_query(h, &path, "namespace", o->ns);
    add_query(h, &path, "pattern", o->pattern);
    cli_resp r;
    cli_request(h, "GET", path.s, NULL, 0, NULL, &r);
    cli_buf_free(&path);
    int rc = cli_exit_code(&r);
    json_t *j = rc == CLI_OK ? cli_resp_json(o, &r) : NULL;
    if (rc != CLI_OK) {
        rc = cli_fail(o, &r, "keys");
    } else if (j == NULL) {
        rc = CLI_UNREACHABLE;
    } else if (!json_is_array(json_object_get(j, "keys")) || cli_js(j, "cursor")[0] == '\0') {
        cli_err(o, "keys: the answer has no keys or no cursor");
        rc = CLI_UNREACHABLE;
    } else {
        json_array_extend(json_object_get(acc, "keys"), json_object_get(j, "keys"));
        json_object_set(acc, "cursor", json_object_get(j, "cursor"));
        json_object_set(acc, "tenant", json_object_get(j, "tenant"));
    }
    json_decref(j);
    cli_resp_free(&r);
    return rc;
}

static void show_keys(const cli_opts *o, const json_t *keys, const char *tenant)
{
    size_t width = 9, n = json_array_size(keys);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(cli_js(json_array_get(keys, i), "namespace"));
        width = l > width ? l : width;
    }
    int tty = isatty(STDOUT_FILENO);
    if (tty)
        printf("%s%-*s  KEY%s\n", cli_c(o, "bold"), (int)width, "NAMESPACE", cli_c(o, "reset"));
    for (size_t i = 0; i < n; i++) {
        json_t *k = json_array_get(keys, i);
        if (json_is_string(json_object_get(k, "key")))
            printf("%-*s  %s\n", (int)width, cli_js(k, "namespace"), cli_js(k, "key"));
        else /* bytes that are not text, written through the C library */
            printf("%-*s  %sbase64:%s%s\n", (int)width, cli_js(k, "namespace"), cli_c(o, "dim"),
                   cli_c(o, "reset"), cli_js(k, "key_b64"));
    }
    if (tty) {
        char c[32];
        printf("%s%s key%s in tenant %s%s\n", cli_c(o, "dim"), cli_fmt_count(c, n),
               n == 1 ? "" : "s", tenant, cli_c(o, "reset"));
    }
}

/* keys: follows the cursor until the listing ends or --limit keys were printed. */
static int cmd_keys(const cli_opts *o, cli_http *h)
{
    size_t max = o->limit > 0 ? (size_t)o->limit : SIZE_MAX;
    json_t *acc = json_pack("{s:[],s:s,s:s}", "keys", "cursor", "0", "tenant", "");
    json_t *keys = json_object_get(acc, "keys");
    int rc;
    do
        rc = keys_page(o, h, max - json_array_size(keys), acc);
    while (rc == CLI_OK && strcmp(cli_js(acc, "cursor"), "0") != 0 && json_array_size(keys) < max);
    while (json_array_size(keys) > max) /* a page may hold a few more than asked */
        json_array_remove(keys, json_array_size(keys) - 1);
    if (rc == CLI_OK && o->json) {
        char *text = json_dumps(acc, JSON_COMPACT);
        puts(text ? text : "{}");
        free(text);
    } else if (rc == CLI_OK) {
        show_keys(o, keys, cli_js(acc, "tenant"));
    }
    json_decref(acc);
    return rc;
}

/* ---- get, set, del ------------------------------------------------------------------------ */

/* Splits NAMESPACE/KEY (the key may hold more '/') into an encoded path under prefix. */
static int address_path(const cli_opts *o, cli_http *h, const char *prefix, cli_buf *path)
{
    const char *a = o->args[0], *slash = strchr(a, '/');
    if (slash == NULL || slash == a || slash[1] == '\0')
        return cli_usage_error("expected NAMESPACE/KEY (e.g. demo/greeting), got '%s'", a);
    char *ns = cli_escape(h, a, (size_t)(slash - a));
    char *key = cli_escape(h, slash + 1, strlen(slash + 1));
    cli_buf_addf(path, "%s/%s/%s", prefix, ns, key);
    free(ns);
    free(key);
    return CLI_OK;
}

static void print_get_json(const cli_opts *o, const cli_resp *r)
{
    const char *a = o->args[0], *slash = strchr(a, '/');
    json_t *j = json_object();
    json_object_set_new(j, "namespace", json_stringn(a, (size_t)(slash - a)));
    json_object_set_new(j, "key", json_string(slash + 1));
    codec_put_value(j, r->body, r->len);
    json_object_set_new(j, "content_type", json_string(r->content_type));
    json_object_set_new(j, "size", json_integer((json_int_t)r->len));
    const char *ma = strstr(r->cache_control, "max-age=");
    json_object_set_new(j, "ttl", ma ? json_integer(atoll(ma + 8)) : json_null());
    json_object_set_new(j, "age", json_integer(atoll(r->age)));
    json_object_set_new(j, "etag", json_string(r->etag));
    json_object_set_new(j, "cache", json_string(r->x_cache));
    char *text = json_dumps(j, JSON_COMPACT);
    if (text != NULL)
        puts(text);
    free(text);
    json_decref(j);
}

/* 1 if s[0..n) can be shown on a terminal as it is: UTF-8 text whose only control characters
 * are tab and line ends. Anything else (NUL, ESC, C1 controls, bytes that are not UTF-8) would
 * be garbage at best and terminal commands at worst. */
static int terminal_text(const char *s, size_t n)
{
    if (!route_utf8_ok(s, n))
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f ||
            (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] < 0xa0))
            return 0;
    }
    return 1;
}

/* The value as get prints it: to -o FILE, or to stdout unless that is a terminal and the value
 * is not text. Returns the exit code. */
static int print_value(const cli_opts *o, const cli_resp *r, FILE *out)
{
    char size[32];
    if (out != NULL) {
        int bad = fwrite(r->body, 1, r->len, out) != r->len;
        bad |= fclose(out) != 0;
        if (bad) {
            cli_err(o, "get: cannot write %s: %s", o->output, strerror(errno));
            return CLI_USAGE;
        }
        if (!o->json)
            printf("wrote %s to %s\n", cli_fmt_bytes(size, r->len), o->output);
        return CLI_OK;
    }
    int tty = isatty(STDOUT_FILENO);
    if (tty && !terminal_text(r->body, r->len)) {
        cli_warn(o,
                 "%s is binary (%s, %s): not written to the terminal\n  Write it to a file "
                 "with -o FILE, or pipe it (strata cache get %s > FILE).",
                 o->args[0], cli_fmt_bytes(size, r->len),
                 r->content_type[0] ? r->content_type : "no content type", o->args[0]);
        return CLI_OK;
    }
    fwrite(r->body, 1, r->len, stdout);
    if (tty && r->len > 0 && r->body[r->len - 1] != '\n')
        putchar('\n');
    return CLI_OK;
}

/* The -o file checked before the request (probe), truncated for the value once it came; when
 * none came, a file get created is removed again. Returns the stream to write, or NULL. */
static FILE *reopen_output(const cli_opts *o, FILE *probe, int existed, int found)
{
    if (probe == NULL)
        return NULL;
    fclose(probe);
    FILE *out = found ? fopen(o->output, "wb") : NULL;
    if (out == NULL && !existed)
        unlink(o->output);
    return out;
}

static int cmd_get(const cli_opts *o, cli_http *h)
{
    cli_buf path = {0}, what = {0};
    if (address_path(o, h, "/v1/cache", &path) != CLI_OK)
        return CLI_USAGE;
    /* Opened first without truncating, so a file that cannot be written is a usage error with
     * nothing sent, and a file that was there is left as it was when there is no value. */
    int existed = o->output != NULL && access(o->output, F_OK) == 0;
    FILE *out = o->output != NULL ? fopen(o->output, "ab") : NULL;
    if (o->output != NULL && out == NULL) {
        cli_buf_free(&path);
        return cli_usage_error("get: cannot open the output file: %s", strerror(errno));
    }
    cli_buf_addf(&what, "get %s", o->args[0]);
    cli_resp r;
    cli_request(h, "GET", path.s, NULL, 0, NULL, &r);
    int rc = cli_exit_code(&r);
    out = reopen_output(o, out, existed, rc == CLI_OK);
    if (rc != CLI_OK) {
        rc = cli_fail(o, &r, what.s);
    } else if (o->output != NULL && out == NULL) {
        cli_err(o, "get: cannot write %s: %s", o->output, strerror(errno));
        rc = CLI_USAGE;
    } else {
        if (o->json)
            print_get_json(o, &r);
        if (!o->json || out != NULL)
            rc = print_value(o, &r, out);
    }
    cli_resp_free(&r);
    cli_buf_free(&path);
    cli_buf_free(&what);
    return rc;
}

/* The value: the second argument, or stdin. Returns 0 or CLI_USAGE. */
static int read_value(const cli_opts *o, cli_buf *v)
{
    if (o->nargs == 2 && strcmp(o->args[1], "-") != 0) {
        cli_buf_add(v, o->args[1], strlen(o->args[1]));
        return CLI_OK;
    }
    if (o->nargs < 2 && isatty(STDIN_FILENO))
        return cli_usage_error("set: give the value as an argument, or on stdin (%s)",
                               "e.g. echo hi | strata cache set demo/k");
    char chunk[65536];
    size_t n;
    cli_buf_add(v, "", 0);
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        cli_buf_add(v, chunk, n);
    if (ferror(stdin))
        return cli_usage_error("set: cannot read stdin: %s", strerror(errno));
    return CLI_OK;
}

/* The answer of a successful write or delete: text, or a small JSON object (the server's answer
 * is an empty 204). */
static void show_written(const cli_opts *o, const cli_resp *r, const char *verb, size_t size)
{
    const char *a = o->args[0], *slash = strchr(a, '/');
    int l1_only = strcmp(r->write, "l1-only") == 0;
    if (o->json) {
        json_t *j = json_pack("{s:s%,s:s,s:b,s:b}", "namespace", a, (size_t)(slash - a), "key",
                              slash + 1, verb, 1, "l1_only", l1_only);
        if (strcmp(verb, "stored") == 0)
            json_object_set_new(j, "size", json_integer((json_int_t)size));
        char *text = json_dumps(j, JSON_COMPACT);
        puts(text ? text : "{}");
        free(text);
        json_decref(j);
    } else if (strcmp(verb, "stored") == 0) {
        char b[32];
        printf("stored %s (%s", a, cli_fmt_bytes(b, size));
        if (o->ttl > 0)
            printf(", ttl %ld s", o->ttl);
        if (o->tags != NULL)
            printf(", tags %s", o->tags);
        printf(")\n");
    } else {
        printf("deleted %s\n", a);
    }
    if (l1_only)
        cli_warn(o, "Redis could not be reached: only this instance's memory has the change");
}

static int cmd_set(const cli_opts *o, cli_http *h)
{
    cli_buf path = {0}, value = {0}, what = {0};
    int rc = address_path(o, h, "/v1/cache", &path);
    if (rc == CLI_OK)
        rc = read_value(o, &value);
    if (rc == CLI_OK) {
        char ttl[24];
        snprintf(ttl, sizeof ttl, "%ld", o->ttl);
        add_query(h, &path, "ttl", o->ttl > 0 ? ttl : NULL);
        add_query(h, &path, "tags", o->tags);
        cli_buf_addf(&what, "set %s", o->args[0]);
        cli_resp r;
        cli_request(h, "PUT", path.s, value.s, value.len, o->content_type, &r);
        rc = cli_exit_code(&r);
        if (rc == CLI_OK)
            show_written(o, &r, "stored", value.len);
        else
            rc = cli_fail(o, &r, what.s);
        cli_resp_free(&r);
    }
    cli_buf_free(&path);
    cli_buf_free(&value);
    cli_buf_free(&what);
    return rc;
}

static int cmd_del(const cli_opts *o, cli_http *h)
{
    cli_buf path = {0}, what = {0};
    if (address_path(o, h, "/v1/cache", &path) != CLI_OK)
        return CLI_USAGE;
    cli_buf_addf(&what, "del %s", o->args[0]);
    cli_resp r;
    cli_request(h, "DELETE", path.s, NULL, 0, NULL, &r);
    int rc = cli_exit_code(&r);
    if (rc == CLI_OK)
        show_written(o, &r, "deleted", 0);
    else
        rc = cli_fail(o, &r, what.s);
    cli_resp_free(&r);
    cli_buf_free(&path);
    cli_buf_free(&what);
    return rc;
}

/* strata cache top: stats --watch (its interval, 1 s unless --watch says). */
static int cmd_top(const cli_opts *o, cli_http *h)
{
    cli_opts w = *o;
    if (w.watch <= 0)
        w.watch = 1;
    return cache_watch(&w, h);
}

/* ---- dispatch ----------------------------------------------------------------------------- */

static const command commands[] = {
    {"stats", OPT_NS | OPT_WATCH, 0, 0, cmd_stats},
    {"top", OPT_WATCH, 0, 0, cmd_top},
    {"health", 0, 0, 0, cmd_health},
    {"clear", OPT_NS | OPT_PATTERN | OPT_FORCE, 0, 0, cmd_clear},
    {"keys", OPT_NS | OPT_PATTERN | OPT_LIMIT, 0, 0, cmd_keys},
    {"get", OPT_OUTPUT, 1, 1, cmd_get},
    {"set", OPT_TTL | OPT_TAGS | OPT_CTYPE, 1, 2, cmd_set},
    {"del", 0, 1, 1, cmd_del},
    {"warm", OPT_BATCH, 1, 1, cache_warm},
    {"purge", OPT_TAG | OPT_PATTERN | OPT_SOFT, 0, ARGS_ANY, cache_purge},
};

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* Parses argv into o, *cmd and *seen (the OPT_* given). Returns 0, CLI_USAGE, or -1 when
 * --help was shown. */
static int parse(int argc, char **argv, cli_opts *o, const command **cmd, unsigned *seen)
{
    int only_args = 0;
    *cmd = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!only_args && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            cache_usage(stdout);
            return -1;
        } else if (!only_args && strcmp(a, "--") == 0) {
            only_args = 1;
        } else if (!only_args && a[0] == '-' && a[1] != '\0') {
            if (take_option(o, argc, argv, &i, seen) != 0)
                return CLI_USAGE;
        } else if (*cmd == NULL) {
            if ((*cmd = find_command(a)) == NULL)
                return cli_usage_error("unknown command '%s'", a);
        } else if (o->nargs == (*cmd)->max_args) {
            return cli_usage_error("unexpected argument '%s'", a);
        } else {
            o->args[o->nargs++] = a;
        }
    }
    return 0;
}

static int check(const cli_opts *o, const command *cmd, unsigned seen)
{
    if (cmd == NULL)
        return cli_usage_error(
            "%s", "which command? stats, health, clear, keys, get, set, del, warm, purge");
    for (size_t i = 0; i < sizeof option_defs / sizeof *option_defs; i++)
        if (seen & option_defs[i].bit & ~cmd->opts)
            return cli_usage_error("this command takes no %s option", option_defs[i].name);
    if (o->nargs < cmd->min_args)
        return cli_usage_error("%s: missing argument", cmd->name);
    if (o->url[0] == '/') /* --url is the server; what purge drops are its arguments */
        return cli_usage_error("--url is the server, http:// or https:// (got '%s'); a URL to "
                               "purge is an argument: strata cache purge /PATH",
                               o->url);
    if (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0)
        return cli_usage_error("the server URL must start with http:// or https:// (got '%s')",
                               o->url);
    return CLI_OK;
}

/* Parses, checks and runs the command on o (its arrays allocated). Returns the exit code. */
static int cache_run(int argc, char **argv, cli_opts *o)
{
    const command *cmd;
    unsigned seen = 0;
    int rc = parse(argc, argv, o, &cmd, &seen);
    if (rc != 0)
        return rc < 0 ? CLI_OK : rc;
    if ((rc = check(o, cmd, seen)) != CLI_OK)
        return rc;
    char *url = strdup(o->url);
    if (url == NULL)
        return CLI_UNREACHABLE;
    for (size_t n = strlen(url); n > 0 && url[n - 1] == '/'; n--)
        url[n - 1] = '\0';
    o->url = url;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    cli_http *h = cli_http_open(o);
    rc = h ? cmd->run(o, h) : CLI_UNREACHABLE;
    cli_http_close(h);
    curl_global_cleanup();
    free(url);
    fflush(stdout);
    return rc;
}

int cache_main(int argc, char **argv)
{
    cli_opts o;
    defaults(&o);
    const char *timeout = getenv("STRATA_TIMEOUT");
    if (timeout != NULL && *timeout != '\0') {
        o.timeout_ms = parse_long(timeout, 1, 3600) * 1000;
        if (o.timeout_ms < 0)
            return cli_usage_error(
                "STRATA_TIMEOUT=%s: needs a whole number of seconds from 1 to 3600", timeout);
    }
    /* A slot per word for the arguments and for each list: purge takes any number of each. */
    size_t words = (size_t)argc + 1;
    const char **slots = calloc(3 * words, sizeof *slots);
    if (slots == NULL)
        return CLI_UNREACHABLE;
    o.args = slots, o.tag_list = slots + words, o.pattern_list = slots + 2 * words;
    int rc = cache_run(argc, argv, &o);
    free(slots);
    return rc;
}
