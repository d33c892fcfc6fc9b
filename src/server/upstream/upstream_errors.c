/* upstream_errors.c: the names and messages of the upstream layer's status codes, generated
 * from the one table in upstream.h (UPSTREAM_ERRNO_MAP), as the library's errors.c does for
 * STRATA_E*. */
#include "upstream.h"

const char *upstream_strerror(int status)
{
    switch (status) {
    case UPSTREAM_OK:
        return "ok";
#define UPSTREAM_MSG_(name, code, msg)                                                             \
    case UPSTREAM_##name:                                                                          \
        return msg;
        UPSTREAM_ERRNO_MAP(UPSTREAM_MSG_)
#undef UPSTREAM_MSG_
    }
    return "unknown status";
}

const char *upstream_err_name(int status)
{
    switch (status) {
    case UPSTREAM_OK:
        return "OK";
#define UPSTREAM_NAME_(name, code, msg)                                                            \
    case UPSTREAM_##name:                                                                          \
        return #name;
        UPSTREAM_ERRNO_MAP(UPSTREAM_NAME_)
#undef UPSTREAM_NAME_
    }
    return "UNKNOWN";
}
