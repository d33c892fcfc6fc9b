/* main.c: the strata command line: one binary, subcommands.
 *
 *   strata serve [options]                the HTTP server (src/server)
 *   strata cache [options] COMMAND ...    operate a running server over HTTP (cache_cmd.c)
 *   strata --version | --help
 *
 * Each subcommand owns its options and its own --help; this file only dispatches and gives the
 * overview, every command and environment variable in one screen (docs/strata.1 says it at
 * length).
 */
#include <stdio.h>
#include <string.h>

#include <strata/strata.h>

#include "cache_cmd.h"

int serve_main(int argc, char **argv);

static void usage(FILE *f)
{
    fprintf(
        f, "usage: strata <command> [options]\n"
           "\n"
           "commands:\n"
           "  serve      run the HTTP cache server             (strata serve --help):\n"
           "               [--listen HOST:PORT] [--workers N] [--tokens-file PATH] [--insecure]\n"
           "               [--access-log] [--log-level LEVEL] [--metrics-auth] [--require-redis]\n"
           "  cache      operate a running server over HTTP    (strata cache --help):\n"
           "               stats, health, clear, keys, get, set, del, warm, purge\n"
           "\n"
           "  --version  print the version\n"
           "  --help     this text\n"
           "\n"
           "strata cache reads:\n"
           "  STRATA_URL       the server (default http://127.0.0.1:8080)\n"
           "  STRATA_TOKEN     bearer token          STRATA_TENANT   tenant (X-Tenant)\n"
           "  STRATA_TIMEOUT   seconds per request   NO_COLOR        no colours\n"
           "  exit codes: 0 ok, 1 the server said no (4xx), 2 usage, 3 unreachable or 5xx\n"
           "\n"
           "strata serve reads (flags win):\n"
           "  STRATA_LISTEN STRATA_WORKERS STRATA_TOKENS STRATA_TOKENS_FILE STRATA_INSECURE\n"
           "  STRATA_ACCESS_LOG STRATA_LOG_LEVEL STRATA_METRICS_AUTH STRATA_REQUIRE_REDIS\n"
           "  STRATA_MAX_BODY STRATA_MAX_CONNECTIONS STRATA_IDLE_TIMEOUT STRATA_RATE_LIMITS\n"
           "  STRATA_RATELIMIT_FALLBACK STRATA_INSTANCES STRATA_NAMESPACES\n"
           "  and for the cache: REDIS_URL (unset: memory only) REDIS_ENABLED\n"
           "  REDIS_HOST REDIS_PORT REDIS_DB REDIS_USERNAME REDIS_PASSWORD (instead of REDIS_URL)\n"
           "  REDIS_MAX_CONNECTIONS REDIS_CONNECT_TIMEOUT REDIS_SOCKET_TIMEOUT REDIS_READONLY\n"
           "  REDIS_TLS REDIS_TLS_CA_CERT REDIS_TLS_CERT REDIS_TLS_KEY REDIS_TLS_SERVER_NAME\n"
           "  REDIS_TLS_INSECURE (rediss:// URLs: TLS)\n"
           "  REDIS_SENTINELS REDIS_SENTINEL_MASTER REDIS_SENTINEL_PASSWORD (Sentinel, instead\n"
           "  of REDIS_URL)\n"
           "  REDIS_CLUSTER (a Redis Cluster's seed nodes, instead of REDIS_URL)\n"
           "  STRATA_L1_MAX_MEMORY STRATA_PREFIX CACHE_TTL\n"
           "\n"
           "More: man strata, docs/operations.md, docs/api.md.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("strata %s\n", strata_version());
        return 0;
    }
    if (strcmp(argv[1], "serve") == 0)
        return serve_main(argc - 2, argv + 2);
    if (strcmp(argv[1], "cache") == 0)
        return cache_main(argc - 2, argv + 2);
    fprintf(stderr, "strata: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
