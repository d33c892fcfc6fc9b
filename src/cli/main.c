/* main.c: the strata command line: one binary, subcommands.
 *
 *   strata serve [options]      the HTTP server (src/server)
 *   strata --version | --help
 */
#include <stdio.h>
#include <string.h>

#include <strata/strata.h>

int serve_main(int argc, char **argv);

static void usage(FILE *f)
{
    fprintf(f, "usage: strata <command> [options]\n"
               "\n"
               "commands:\n"
               "  serve      run the HTTP cache server (strata serve --help)\n"
               "\n"
               "  --version  print the version\n"
               "  --help     this text\n");
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
    fprintf(stderr, "strata: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
