/* llm_counters.c: the LLM gateway's bounded table of counters (llm_counters.h). Rows are made
 * under the table's lock into a fixed array and published by its count, so readers and counters
 * never lock.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_counters.h"

#define NAME 65

typedef struct row {
    char route[NAME], model[NAME], tenant[NAME];
    llm_counts n;
} row;

struct llm_counters {
    pthread_mutex_t lock;
    size_t cap;
    _Atomic size_t used; /* rows[0..used) are made and never change their names */
    row other;
    row rows[];
};

llm_counters *llm_counters_new(size_t cap)
{
    llm_counters *c = calloc(1, sizeof *c + cap * sizeof(row));
    if (c == NULL)
        return NULL;
    pthread_mutex_init(&c->lock, NULL);
    c->cap = cap;
    snprintf(c->other.route, NAME, "(other)");
    snprintf(c->other.model, NAME, "(other)");
    snprintf(c->other.tenant, NAME, "(other)");
    return c;
}

void llm_counters_free(llm_counters *c)
{
    if (c == NULL)
        return;
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static row *find(llm_counters *c, size_t from, size_t to, const char *route, const char *model,
                 const char *tenant)
{
    for (size_t i = from; i < to; i++) {
        row *r = &c->rows[i];
        if (strncmp(r->route, route, NAME - 1) == 0 && strncmp(r->model, model, NAME - 1) == 0 &&
            strncmp(r->tenant, tenant, NAME - 1) == 0)
            return r;
    }
    return NULL;
}

llm_counts *llm_counters_row(llm_counters *c, const char *route, const char *model,
                             const char *tenant)
{
    size_t used = atomic_load_explicit(&c->used, memory_order_acquire);
    row *r = find(c, 0, used, route, model, tenant);
    if (r != NULL)
        return &r->n;
    pthread_mutex_lock(&c->lock);
    size_t now = atomic_load_explicit(&c->used, memory_order_relaxed);
    r = find(c, used, now, route, model, tenant); /* made meanwhile by another thread */
    if (r == NULL && now < c->cap) {
        r = &c->rows[now];
        snprintf(r->route, NAME, "%s", route);
        snprintf(r->model, NAME, "%s", model);
        snprintf(r->tenant, NAME, "%s", tenant);
        atomic_store_explicit(&c->used, now + 1, memory_order_release);
    }
    pthread_mutex_unlock(&c->lock);
    return r != NULL ? &r->n : &c->other.n;
}

void llm_counters_each(llm_counters *c,
                       void (*fn)(const char *route, const char *model, const char *tenant,
                                  const llm_counts *n, void *arg),
                       void *arg)
{
    size_t used = atomic_load_explicit(&c->used, memory_order_acquire);
    for (size_t i = 0; i < used; i++)
        fn(c->rows[i].route, c->rows[i].model, c->rows[i].tenant, &c->rows[i].n, arg);
    if (atomic_load(&c->other.n.requests) > 0)
        fn(c->other.route, c->other.model, c->other.tenant, &c->other.n, arg);
}
