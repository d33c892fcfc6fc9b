/* llm_counters.c: the LLM gateway's bounded table of counters (llm_counters.h). Rows are made
 * under the table's lock into a fixed array; an open-addressed index (twice the rows, a row's
 * number + 1 per slot, published with release) finds a row in a probe or two, so every request
 * finds its row without a lock and without a walk over the rows.
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
    size_t cap, slots;
    _Atomic size_t used;     /* rows[0..used) are made and never change their names */
    _Atomic uint32_t *index; /* slots entries: 0 empty, else a row's number + 1 */
    row other;
    row rows[];
};

static uint64_t hash3(const char *a, const char *b, const char *c)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a over the three names, NUL-separated */
    const char *parts[3] = {a, b, c};
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; parts[k][i] && i < NAME - 1; i++)
            h = (h ^ (unsigned char)parts[k][i]) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull;
    }
    return h;
}

static int is(const row *r, const char *route, const char *model, const char *tenant)
{
    return strncmp(r->route, route, NAME - 1) == 0 && strncmp(r->model, model, NAME - 1) == 0 &&
           strncmp(r->tenant, tenant, NAME - 1) == 0;
}

/* The row of the names, or NULL; *slot: where the probe stopped (an empty slot when NULL). */
static row *find(llm_counters *c, uint64_t h, const char *route, const char *model,
                 const char *tenant, size_t *slot)
{
    for (size_t i = 0; i < c->slots; i++) {
        size_t s = (size_t)(h + i) % c->slots;
        uint32_t v = atomic_load_explicit(&c->index[s], memory_order_acquire);
        *slot = s;
        if (v == 0)
            return NULL;
        if (is(&c->rows[v - 1], route, model, tenant))
            return &c->rows[v - 1];
    }
    return NULL;
}

llm_counters *llm_counters_new(size_t cap)
{
    llm_counters *c = calloc(1, sizeof *c + cap * sizeof(row));
    if (c == NULL || (c->index = calloc(2 * cap + 1, sizeof *c->index)) == NULL) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    c->cap = cap;
    c->slots = 2 * cap + 1; /* at most half full: probes stay short */
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
    free((void *)c->index);
    free(c);
}

llm_counts *llm_counters_row(llm_counters *c, const char *route, const char *model,
                             const char *tenant)
{
    uint64_t h = hash3(route, model, tenant);
    size_t slot;
    row *r = find(c, h, route, model, tenant, &slot);
    if (r != NULL)
        return &r->n;
    pthread_mutex_lock(&c->lock);
    size_t now = atomic_load_explicit(&c->used, memory_order_relaxed);
    r = find(c, h, route, model, tenant, &slot); /* made meanwhile by another thread? */
    if (r == NULL && now < c->cap) {
        r = &c->rows[now];
        snprintf(r->route, NAME, "%s", route);
        snprintf(r->model, NAME, "%s", model);
        snprintf(r->tenant, NAME, "%s", tenant);
        atomic_store_explicit(&c->used, now + 1, memory_order_release);
        atomic_store_explicit(&c->index[slot], (uint32_t)now + 1, memory_order_release);
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
