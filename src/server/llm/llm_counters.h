/* llm_counters.h: the LLM gateway's counters per (route, model, tenant): requests, answers from
 * the cache, coalesced waits, requests passed through, and the tokens and money the cache saved.
 *
 * A bounded table (rows made on first use, then never moved or freed until the table goes), so
 * a worker that counts holds a row pointer and adds to atomics with no lock; only making a row
 * takes the table's lock. Past its bound every new (route, model, tenant) counts in one row,
 * "(other)", so a client sending a new model name per request cannot grow it.
 *
 *     llm_counters *c = llm_counters_new(1024);
 *     llm_counts *n = llm_counters_row(c, "llm", "gpt-4o-mini", "acme");
 *     atomic_fetch_add(&n->hits, 1);
 *     llm_counters_each(c, print_row, NULL);
 *     llm_counters_free(c);
 */
#ifndef STRATA_SERVER_LLM_COUNTERS_H
#define STRATA_SERVER_LLM_COUNTERS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct llm_counts {
    _Atomic uint64_t requests;     /* every request of the row's route, model and tenant */
    _Atomic uint64_t hits;         /* answered from the cache */
    _Atomic uint64_t coalesced;    /* ... after waiting for another request's answer */
    _Atomic uint64_t bypass;       /* passed through uncached (sampled, no-store, other APIs) */
    _Atomic uint64_t prompt_saved; /* tokens the cache's answers would have cost */
    _Atomic uint64_t completion_saved;
    _Atomic uint64_t inputs;         /* embedding inputs asked for */
    _Atomic uint64_t inputs_cached;  /* ... found in the cache */
    _Atomic uint64_t nano_usd_saved; /* with a price for the model: money saved, in 1e-9 USD */
} llm_counts;

typedef struct llm_counters llm_counters;

/* A table of at most cap rows (and the "(other)" row). NULL when out of memory. */
llm_counters *llm_counters_new(size_t cap);
void llm_counters_free(llm_counters *c);
/* The row of (route, model, tenant) (each cut to 64 bytes), made on first use; past the bound,
 * or out of memory, the "(other)" row. Never NULL for a table. Thread-safe. */
llm_counts *llm_counters_row(llm_counters *c, const char *route, const char *model,
                             const char *tenant);
/* Calls fn for each row made so far (the "(other)" row last, when it counted anything). */
void llm_counters_each(llm_counters *c,
                       void (*fn)(const char *route, const char *model, const char *tenant,
                                  const llm_counts *n, void *arg),
                       void *arg);

#endif
