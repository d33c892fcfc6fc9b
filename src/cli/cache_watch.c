/* cache_watch.c: `strata cache stats --watch [SECONDS]` and `strata cache top`: the server's
 * figures, live, like varnishstat or redis-cli --stat.
 *
 *   strata cache stats --watch [SECONDS] [--count N]      (top: the same, every second)
 *
 * Each tick asks GET /cache/stats/history?since=T for the seconds since the last one (the read
 * role is enough) and shows the newest: on a terminal a block redrawn in place (requests/s, hit
 * ratio by tier, latency percentiles, L1 memory against its bound, evictions and expirations,
 * Redis, rate limits, the LLM gateway), else one plain line per second the server counted, for
 * logs and pipes. --count N stops after N ticks; otherwise it runs until interrupted. A server
 * that does not answer is said once per tick, and the watch goes on.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cache_cmd.h"

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void sleep_s(long s)
{
    struct timespec ts = {s, 0};
    while (!interrupted && nanosleep(&ts, &ts) != 0) {
    }
}

/* One second of the server as one line (not a terminal). */
static void line(const json_t *p)
{
    const json_t *rd = json_object_get(p, "reads"), *lat = json_object_get(p, "latency_ms");
    const json_t *l1 = json_object_get(p, "l1"), *rs = json_object_get(p, "redis");
    char t[32];
    time_t when = (time_t)cli_ju(p, "t");
    strftime(t, sizeof t, "%H:%M:%S", localtime(&when));
    printf("%s requests=%llu hit_ratio=%.3f l1=%llu l2=%llu misses=%llu p50_ms=%.3f p99_ms=%.3f "
           "l1_bytes=%llu l1_max_bytes=%llu evictions=%llu redis=%s errors_5xx=%llu\n",
           t, (unsigned long long)cli_ju(p, "requests"), cli_jf(rd, "hit_ratio"),
           (unsigned long long)cli_ju(rd, "l1"), (unsigned long long)cli_ju(rd, "l2"),
           (unsigned long long)cli_ju(rd, "misses"), cli_jf(lat, "p50"), cli_jf(lat, "p99"),
           (unsigned long long)cli_ju(l1, "bytes"), (unsigned long long)cli_ju(l1, "max_bytes"),
           (unsigned long long)cli_ju(l1, "evictions"),
           !cli_jb(rs, "configured") ? "none"
           : cli_jb(rs, "available") ? "up"
                                     : "down",
           (unsigned long long)cli_ju(p, "errors_5xx"));
}

/* The newest second as a block, redrawn in place (a terminal). */
static void block(const cli_opts *o, const json_t *p, long interval)
{
    const json_t *rd = json_object_get(p, "reads"), *lat = json_object_get(p, "latency_ms");
    const json_t *l1 = json_object_get(p, "l1"), *rs = json_object_get(p, "redis");
    const json_t *rl = json_object_get(p, "ratelimit"), *llm = json_object_get(p, "llm");
    char a[32], b[32], c[32];
    printf("\033[H\033[2J%sstrata %s%s  (every %ld s; Ctrl-C to stop)\n\n", cli_c(o, "bold"),
           o->url, cli_c(o, "reset"), interval);
    cli_row(o, 2, "requests/s", "%s (4xx %s, 5xx %s)", cli_fmt_count(a, cli_ju(p, "requests")),
            cli_fmt_count(b, cli_ju(p, "errors_4xx")), cli_fmt_count(c, cli_ju(p, "errors_5xx")));
    cli_row(o, 2, "hit ratio", "%s%.1f %%%s  (L1 %s, L2 %s, misses %s)", cli_c(o, "bold"),
            cli_jf(rd, "hit_ratio") * 100.0, cli_c(o, "reset"), cli_fmt_count(a, cli_ju(rd, "l1")),
            cli_fmt_count(b, cli_ju(rd, "l2")), cli_fmt_count(c, cli_ju(rd, "misses")));
    cli_row(o, 2, "latency", "p50 %.3g ms, p90 %.3g ms, p99 %.3g ms", cli_jf(lat, "p50"),
            cli_jf(lat, "p90"), cli_jf(lat, "p99"));
    uint64_t used = cli_ju(l1, "bytes"), max = cli_ju(l1, "max_bytes");
    cli_row(o, 2, "L1 memory", "%s of %s (%.1f %%), %s entries", cli_fmt_bytes(a, used),
            cli_fmt_bytes(b, max), max ? 100.0 * (double)used / (double)max : 0.0,
            cli_fmt_count(c, cli_ju(l1, "entries")));
    cli_row(o, 2, "evictions/s", "%s (expirations %s)", cli_fmt_count(a, cli_ju(l1, "evictions")),
            cli_fmt_count(b, cli_ju(l1, "expirations")));
    if (!cli_jb(rs, "configured"))
        cli_row(o, 2, "redis", "not configured (memory only)");
    else
        cli_row(o, 2, "redis", "%s%s%s, breaker %s, errors/s %llu",
                cli_c(o, cli_jb(rs, "available") ? "green" : "red"),
                cli_jb(rs, "available") ? "available" : "unavailable", cli_c(o, "reset"),
                cli_js(rs, "breaker"), (unsigned long long)cli_ju(rs, "errors"));
    cli_row(o, 2, "rate limits/s", "%s allowed, %s limited",
            cli_fmt_count(a, cli_ju(rl, "allowed")), cli_fmt_count(b, cli_ju(rl, "limited")));
    if (cli_ju(llm, "hits") || cli_ju(llm, "tokens_saved"))
        cli_row(o, 2, "LLM gateway/s", "%s hits, %s tokens saved",
                cli_fmt_count(a, cli_ju(llm, "hits")),
                cli_fmt_count(b, cli_ju(llm, "tokens_saved")));
    fflush(stdout);
}

int cache_watch(const cli_opts *o, cli_http *h)
{
    int tty = isatty(STDOUT_FILENO);
    long long since = 0;
    int rc = 0;
    signal(SIGINT, on_interrupt);
    signal(SIGTERM, on_interrupt);
    for (long tick = 0; !interrupted && (o->count < 0 || tick < o->count); tick++) {
        if (tick > 0)
            sleep_s(o->watch);
        if (interrupted)
            break;
        cli_buf path = {0};
        cli_buf_addf(&path, "/cache/stats/history?since=%lld", since);
        cli_resp r;
        cli_request(h, "GET", path.s, NULL, 0, NULL, &r);
        cli_buf_free(&path);
        json_t *j = r.status == 200 ? cli_resp_json(o, &r) : NULL;
        if (j == NULL) {
            rc = cli_fail(o, &r, "stats history"); /* said; the watch goes on */
            cli_resp_free(&r);
            continue;
        }
        rc = 0;
        const json_t *pts = json_object_get(j, "points");
        size_t n = json_array_size(pts);
        if (o->json) {
            for (size_t i = 0; i < n; i++) {
                char *s = json_dumps(json_array_get(pts, i), JSON_COMPACT);
                printf("%s\n", s ? s : "{}");
                free(s);
            }
        } else if (tty && n > 0) {
            block(o, json_array_get(pts, n - 1), o->watch);
        } else {
            /* the first tick: the newest second, not the minutes the server kept */
            for (size_t i = since == 0 && n > 0 ? n - 1 : 0; i < n; i++)
                line(json_array_get(pts, i));
        }
        if (n > 0)
            since = (long long)cli_ju(json_array_get(pts, n - 1), "t");
        fflush(stdout);
        json_decref(j);
        cli_resp_free(&r);
    }
    return rc;
}
