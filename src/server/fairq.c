/* fairq.c: per-tenant FIFOs served round-robin, with bounds (fairq.h).
 *
 * The ring holds only tenants with items waiting or running, so looking a tenant up is a walk of
 * at most max_waiting + threads records: no table to size, nothing left behind by a tenant that
 * came once.
 */
#include <stdlib.h>
#include <string.h>

#include "fairq.h"

void fairq_init(fairq *f, unsigned max_waiting, unsigned max_per_tenant, unsigned max_running)
{
    memset(f, 0, sizeof *f);
    f->max_waiting = max_waiting ? max_waiting : 1;
    f->max_per_tenant = max_per_tenant ? max_per_tenant : 1;
    f->max_running = max_running ? max_running : 1;
}

static fairq_tenant *find(fairq *f, const char *name)
{
    fairq_tenant *t = f->turn;
    if (t != NULL)
        do {
            if (strcmp(t->name, name) == 0)
                return t;
            t = t->next;
        } while (t != f->turn);
    return NULL;
}

/* A new tenant joins at the end of the current turn: just before the one served next. */
static fairq_tenant *join(fairq *f, const char *name)
{
    fairq_tenant *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    size_t n = strlen(name);
    if (n > STRATA_NAME_MAX)
        n = STRATA_NAME_MAX;
    memcpy(t->name, name, n);
    if (f->turn == NULL) {
        t->prev = t->next = t;
        f->turn = t;
    } else {
        t->next = f->turn;
        t->prev = f->turn->prev;
        t->prev->next = t;
        f->turn->prev = t;
    }
    return t;
}

/* Drops t from the ring once it has nothing waiting or running. */
static void leave_if_idle(fairq *f, fairq_tenant *t)
{
    if (t->waiting > 0 || t->running > 0)
        return;
    if (t->next == t) {
        f->turn = NULL;
    } else {
        t->prev->next = t->next;
        t->next->prev = t->prev;
        if (f->turn == t)
            f->turn = t->next;
    }
    free(t);
}

int fairq_put(fairq *f, const char *tenant, fairq_item *it, int force)
{
    char name[STRATA_NAME_MAX + 1];
    size_t n = strlen(tenant);
    memcpy(name, tenant, n > STRATA_NAME_MAX ? STRATA_NAME_MAX : n);
    name[n > STRATA_NAME_MAX ? STRATA_NAME_MAX : n] = '\0';
    fairq_tenant *t = find(f, name);
    if (!force && (f->waiting >= f->max_waiting || (t != NULL && t->waiting >= f->max_per_tenant)))
        return FAIRQ_FULL;
    if (t == NULL && (t = join(f, name)) == NULL)
        return FAIRQ_NOMEM;
    it->next = NULL;
    it->owner = t;
    if (t->tail != NULL)
        t->tail->next = it;
    else
        t->head = it;
    t->tail = it;
    t->waiting++;
    f->waiting++;
    return 0;
}

fairq_item *fairq_take(fairq *f)
{
    fairq_tenant *t = f->turn;
    if (t == NULL || f->waiting == 0)
        return NULL;
    do {
        if (t->head != NULL && t->running < f->max_running) {
            fairq_item *it = t->head;
            if ((t->head = it->next) == NULL)
                t->tail = NULL;
            it->next = NULL;
            t->waiting--;
            f->waiting--;
            t->running++;
            f->turn = t->next; /* the next tenant's turn */
            return it;
        }
        t = t->next;
    } while (t != f->turn);
    return NULL;
}

void fairq_done(fairq *f, fairq_item *it)
{
    fairq_tenant *t = it->owner;
    t->running--;
    leave_if_idle(f, t);
}
