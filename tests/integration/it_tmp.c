/* it_tmp.c: temp dirs and small helpers shared by the integration-test harnesses (it_tmp.h). */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "it_tmp.h"

char *it_xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL) {
        fprintf(stderr, "test harness: out of memory\n");
        abort();
    }
    return p;
}

char *it_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *p = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (n < 0) {
        fprintf(stderr, "test harness: out of memory\n");
        abort();
    }
    return p;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        fprintf(stderr, "test harness: cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

void it_remove_tree(const char *dir)
{
    if (dir != NULL)
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *it_temp_base(void)
{
    const char *base = getenv("TMPDIR");
    struct sockaddr_un un;
    if (base == NULL || base[0] == '\0' ||
        strlen(base) + sizeof "/strata-it-XXXXXX/redis.sock" > sizeof un.sun_path)
        base = "/tmp";
    return base;
}

/* Each dir names its test process in "owner"; a dir without that file (being created right now,
 * or someone else's) is left alone. */
static void sweep_dead_dirs(const char *tag)
{
    const char *base = it_temp_base();
    size_t tl = strlen(tag);
    DIR *d = opendir(base);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, tag, tl) != 0 || e->d_name[tl] != '-' || strlen(e->d_name) != tl + 7)
            continue;
        char *owner = it_xasprintf("%s/%s/owner", base, e->d_name);
        FILE *f = fopen(owner, "r");
        long pid = 0;
        if (f != NULL) {
            if (fscanf(f, "%ld", &pid) != 1)
                pid = 0;
            fclose(f);
        }
        free(owner);
        if (pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            char *dir = it_xasprintf("%s/%s", base, e->d_name);
            it_remove_tree(dir);
            free(dir);
        }
    }
    closedir(d);
}

char *it_make_temp_dir(const char *tag)
{
    sweep_dead_dirs(tag);
    char *tmpl = it_xasprintf("%s/%s-XXXXXX", it_temp_base(), tag);
    if (mkdtemp(tmpl) == NULL) {
        fprintf(stderr, "test harness: mkdtemp %s: %s\n", tmpl, strerror(errno));
        free(tmpl);
        return NULL;
    }
    char *owner = it_xasprintf("%s/owner", tmpl);
    FILE *f = fopen(owner, "w");
    if (f != NULL) {
        fprintf(f, "%ld\n", (long)getpid());
        fclose(f);
    }
    free(owner);
    return tmpl;
}
