/* log.h: strata serve's log: one line per message on stderr, filtered by level.
 *
 * The library logs through a callback (log_from_lib) so that it never writes to stderr itself;
 * the HTTP layer does not log at all (its refusals reach dispatch.c's on_refusal). */
#ifndef STRATA_SERVER_LOG_H
#define STRATA_SERVER_LOG_H

enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

void log_set_level(int level);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The library's log callback. */
void log_from_lib(int level, const char *msg, void *arg);

#endif
