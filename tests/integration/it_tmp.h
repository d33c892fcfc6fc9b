/* it_tmp.h: what both test harnesses (harness.c for redis-server, server_harness.c for strata
 * serve) need from the file system: allocation that never fails quietly, temp dirs owned by the
 * test process, and their removal. */
#ifndef STRATA_TESTS_IT_TMP_H
#define STRATA_TESTS_IT_TMP_H

/* strdup / asprintf that abort on out of memory (a test harness has nothing better to do). */
char *it_xstrdup(const char *s);
char *it_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* $TMPDIR, or /tmp when unset or too long for a unix socket path inside a temp dir. */
const char *it_temp_base(void);

/* A fresh dir <base>/<tag>-XXXXXX (tag: 9 characters, e.g. "strata-it") holding a file "owner"
 * with this process' pid. First removes the <tag>-* dirs whose owner process is gone (a test
 * killed by a signal cannot clean up after itself). NULL with a message on failure. */
char *it_make_temp_dir(const char *tag);

/* rm -rf dir; NULL is a no-op. */
void it_remove_tree(const char *dir);

#endif
