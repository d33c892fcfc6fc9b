/* fuzz_check.h: what the fuzz targets share: CHECK(c), which aborts (a crash libFuzzer keeps,
 * with the input) naming the condition that failed, and the entry point's prototype. */
#ifndef STRATA_TESTS_FUZZ_CHECK_H
#define STRATA_TESTS_FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "check failed: %s\n", #c);                                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
