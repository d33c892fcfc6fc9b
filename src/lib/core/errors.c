/* errors.c: strata_strerror() and strata_err_name(), generated from the one status table in
 * include/strata/errors.h so that a code cannot exist without its message. */
#include <strata/errors.h>
#include <strata/version.h>

const char *strata_strerror(int status)
{
    switch (status) {
#define STRATA_STATUS_MSG(name, value, msg)                                                        \
    case STRATA_##name:                                                                            \
        return msg;
        STRATA_STATUS_MAP(STRATA_STATUS_MSG)
#undef STRATA_STATUS_MSG
    }
    return "unknown status";
}

const char *strata_err_name(int status)
{
    switch (status) {
#define STRATA_STATUS_NAME(name, value, msg)                                                       \
    case STRATA_##name:                                                                            \
        return "STRATA_" #name;
        STRATA_STATUS_MAP(STRATA_STATUS_NAME)
#undef STRATA_STATUS_NAME
    }
    return "STRATA_UNKNOWN";
}

const char *strata_version(void)
{
    return STRATA_VERSION_STRING;
}
