/* core/export.h: what libstrata.so exports: every function declared in the public headers
 * (include/strata/), and nothing else.
 *
 * The library is compiled with -fvisibility=hidden, so its internals (strata__*, and anything
 * else not declared in a public header) stay inside libstrata.so: calls to them bind directly,
 * and they cannot become ABI by accident. CMake force-includes this header ahead of every source
 * of the library (`-include`), and it declares the public API under default visibility. The
 * first declaration of a function fixes its visibility, so each public function is exported
 * where it is defined, without a marking on each declaration: a function added to a public
 * header is exported by being declared there (a public header must be included by strata.h).
 * tests/install/check_exports.py fails the build's tests if the exported symbols and the
 * declared functions ever differ.
 */
#ifndef STRATA_CORE_EXPORT_H
#define STRATA_CORE_EXPORT_H

#pragma GCC visibility push(default)
#include <strata/strata.h>
#pragma GCC visibility pop

#endif
