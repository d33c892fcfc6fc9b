/* log.c: one line per event, with a level and a UTC timestamp, to stderr.
 *
 * Lines are written with a single write(2) each, so lines from worker threads never interleave.
 * Nothing here ever sees a token or a session id: callers pass what may be shown.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int level_max = LOG_INFO;

void log_set_level(int level)
{
    level_max = level;
}

static void emit(int level, const char *msg)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    char line[1200];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, names[level & 3], msg);
    if (n > (int)sizeof line - 1)
        n = (int)sizeof line - 1, line[n - 1] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void log_msg(int level, const char *fmt, ...)
{
    if (level > level_max)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    emit(level, msg);
}

void log_from_lib(int level, const char *msg, void *arg)
{
    (void)arg;
    if (level <= level_max)
        emit(level, msg);
}
