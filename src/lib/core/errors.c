/* errors.c: strata_strerror(), strata_err_name() and the reasons' names, generated from the
 * tables in include/strata/errors.h so that a code cannot exist without its message. */
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

const char *strata_reason_name(int reason)
{
    switch (reason) {
#define STRATA_REASON_WIRE(name, value, wire, msg)                                                 \
    case STRATA_REASON_##name:                                                                     \
        return wire;
        STRATA_REASON_MAP(STRATA_REASON_WIRE)
#undef STRATA_REASON_WIRE
    }
    return "unknown";
}

const char *strata_reason_message(int reason)
{
    switch (reason) {
#define STRATA_REASON_MSG(name, value, wire, msg)                                                  \
    case STRATA_REASON_##name:                                                                     \
        return msg;
        STRATA_REASON_MAP(STRATA_REASON_MSG)
#undef STRATA_REASON_MSG
    }
    return "unknown";
}

const char *strata_version(void)
{
    return STRATA_VERSION_STRING;
}
