/* cache_purge.c: `strata cache purge`: drops what the caching proxy stored, in one POST
 * /cache/purge.
 *
 *   strata cache purge [URL...] [--tag TAG]... [--pattern GLOB]... [--soft]
 *
 * Everything the command line names goes in one request, {"urls": the arguments, "tags": each
 * --tag, "patterns": each --pattern, "soft": --soft}, and the answer's counts come back as one
 * line ("purged: 2 tags, 1 url, 0 keys (soft)"), or as the server's JSON with --json.
 *
 * URLs are the arguments, never a flag: --url is the server's address for every subcommand, and a
 * second URL flag beside it (--purge-url) would be one slip away from sending the purge to another
 * server. A "/PATH" is purged on the host the CLI reaches the server at (the server takes a bare
 * path on the request's Host, and ours is --url's); a proxy that clients reach under another name
 * needs http://HOST/PATH. An argument that is neither is refused, with the hint that a bare word
 * is more likely a tag.
 *
 * The server refuses a whole purge for one bad member, and may have acted on the tags before it
 * (it purges them one by one), so every member is checked here first with the server's own rules
 * (route_text_ok, its URL forms, the tag length, at most 1000 per list): a bad one is a usage
 * error, and nothing is sent.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <strata/strata.h>

#include "cache_cmd.h"
#include "route.h"

#define PURGE_MAX 1000 /* the server's bound on each list */
#define HOST_MAX  255  /* the longest host the server takes in a URL */

/* 1 if u is a URL the server takes: "/PATH", or "http://HOST[/PATH]", "https://HOST[/PATH]". */
static int url_ok(const char *u)
{
    if (u[0] == '/')
        return 1;
    size_t skip = strncasecmp(u, "http://", 7) == 0    ? 7
                  : strncasecmp(u, "https://", 8) == 0 ? 8
                                                       : 0;
    size_t host = skip > 0 ? strcspn(u + skip, "/?#") : 0;
    return host > 0 && host <= HOST_MAX;
}

/* Why v is not a member of the list what ("URL", "tag", "pattern"), in why; or 0 if it is one. */
static int bad_member(const char *v, const char *what, cli_buf *why)
{
    size_t n = strlen(v);
    if (n == 0)
        cli_buf_addf(why, "purge: an empty %s", what);
    else if (!route_text_ok(v, n)) /* not echoed: it may hold terminal controls */
        cli_buf_addf(why, "purge: a %s that is not UTF-8 text without control characters", what);
    else if (strcmp(what, "tag") == 0 && n > STRATA_TAG_MAX)
        cli_buf_addf(why, "purge: a tag of %zu bytes (at most %d)", n, STRATA_TAG_MAX);
    else if (strcmp(what, "URL") == 0 && !url_ok(v))
        cli_buf_addf(why,
                     "purge: '%s' is not a URL: /PATH, http://HOST/PATH or https://HOST/PATH "
                     "(a tag is --tag %s)",
                     v, v);
    return why->len > 0;
}

/* Checks one list. Returns 0, or CLI_USAGE after saying why. */
static int check_list(const char *const *v, int n, const char *what)
{
    cli_buf why = {0};
    if (n > PURGE_MAX)
        cli_buf_addf(&why, "purge: at most %d %ss in one purge (got %d): split them", PURGE_MAX,
                     what, n);
    for (int i = 0; why.len == 0 && i < n; i++)
        bad_member(v[i], what, &why);
    int rc = why.len > 0 ? cli_usage_error("%s", why.s) : CLI_OK;
    cli_buf_free(&why);
    return rc;
}

static json_t *strings(const char *const *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* The request's body (to free()), or NULL on out of memory. */
static char *purge_body(const cli_opts *o)
{
    json_t *b = json_pack("{s:b}", "soft", o->soft);
    if (b == NULL)
        return NULL;
    if (o->nargs > 0)
        json_object_set_new(b, "urls", strings(o->args, o->nargs));
    if (o->ntags > 0)
        json_object_set_new(b, "tags", strings(o->tag_list, o->ntags));
    if (o->npatterns > 0)
        json_object_set_new(b, "patterns", strings(o->pattern_list, o->npatterns));
    char *text = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return text;
}

/* "purged: 2 tags, 1 url, 0 keys (soft)": tags and URLs invalidated, keys a pattern removed or
 * made stale. */
static void show_purged(const cli_opts *o, const json_t *j)
{
    const char *names[] = {"tag", "url", "key"}, *members[] = {"tags", "urls", "keys"};
    fputs("purged:", stdout);
    for (size_t i = 0; i < 3; i++) {
        char n[32];
        uint64_t v = cli_ju(j, members[i]);
        printf("%s %s%s%s %s%s", i ? "," : "", cli_c(o, "bold"), cli_fmt_count(n, v),
               cli_c(o, "reset"), names[i], v == 1 ? "" : "s");
    }
    puts(cli_jb(j, "soft") ? " (soft)" : "");
}

/* POST /cache/purge {"tags": [..], "urls": [..], "patterns": [..], "soft": false} */
int cache_purge(const cli_opts *o, cli_http *h)
{
    if (o->nargs == 0 && o->ntags == 0 && o->npatterns == 0)
        return cli_usage_error("%s", "purge: what? give URLs, --tag TAG or --pattern GLOB");
    int rc = check_list(o->args, o->nargs, "URL");
    if (rc == CLI_OK)
        rc = check_list(o->tag_list, o->ntags, "tag");
    if (rc == CLI_OK)
        rc = check_list(o->pattern_list, o->npatterns, "pattern");
    if (rc != CLI_OK)
        return rc;
    char *body = purge_body(o);
    if (body == NULL) {
        cli_err(o, "purge: out of memory");
        return CLI_UNREACHABLE;
    }
    cli_resp r;
    cli_request(h, "POST", "/cache/purge", body, strlen(body), "application/json", &r);
    free(body);
    rc = cli_exit_code(&r);
    json_t *j = rc == CLI_OK ? cli_resp_json(o, &r) : NULL;
    if (rc != CLI_OK) {
        rc = cli_fail(o, &r, "purge");
    } else if (j == NULL) {
        rc = CLI_UNREACHABLE;
    } else if (!json_is_integer(json_object_get(j, "tags")) ||
               !json_is_integer(json_object_get(j, "urls")) ||
               !json_is_integer(json_object_get(j, "keys"))) {
        cli_err(o, "purge: the answer has no counts\n  Is STRATA_URL the address of a strata "
                   "server with the caching proxy?");
        rc = CLI_UNREACHABLE;
    } else {
        if (o->json)
            fwrite(r.body, 1, r.len, stdout);
        else
            show_purged(o, j);
        if (strcmp(r.write, "l1-only") == 0)
            cli_warn(o, "Redis could not be reached: only this instance's memory has the change");
    }
    json_decref(j);
    cli_resp_free(&r);
    return rc;
}
