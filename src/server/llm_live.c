/* llm_live.c: streamed answers in flight on this instance, which identical streamed requests join:
 * a joiner is sent what has arrived so far, then the rest as it comes, from the one upstream
 * stream, whichever worker it is on.
 *
 * A live stream belongs to the request that records it (the leader, on its worker's loop): it
 * publishes the response's head and appends each piece as it goes to its own client; each piece
 * wakes the joiners, each on its own worker's loop (event_base_once, safe across threads), which
 * copy what is new into their clients' answers. The leader ends it whole (the joiners' answers
 * end) or cut (theirs are cut too, as its own client's). The table (in the proxy's model) holds
 * the streams by key while they run; a stream is freed when its leader and its last joiner are
 * done with it.
 *
 *   leader: hooks.recorded -> llm_live_publish / llm_live_append -> wake joiners
 *           complete / free -> llm_live_end(whole or not)
 *   joiner: run() -> llm_live_join: 1 (it answers from here on) or 0 (look up as usual)
 */
#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "llm_internal.h"
#include "log.h"

enum { LIVE_RUNNING = 0, LIVE_WHOLE, LIVE_CUT };

typedef struct joiner joiner;

struct llm_live {
    llm_lives *table;
    char *key; /* tenant, NUL, key */
    size_t key_len;
    char *head; /* the response's header lines */
    size_t head_len;
    int status;
    char *buf; /* every piece so far */
    size_t len, cap, max;
    int state;
    unsigned refs; /* the leader, and each joiner (under the table's lock) */
    joiner *joiners;
    llm_live *next;
};

struct joiner {
    llm_live *live;
    proxy_req *px; /* NULL once its client went away */
    worker *w;
    size_t sent;
    int scheduled; /* a wake is on its loop's queue */
    unsigned refs; /* its request, and a scheduled wake (under the table's lock) */
    joiner *next;
};

/* The stream of key, or NULL (the table's lock held). */
static llm_live *find(llm_lives *t, const char *key, size_t len)
{
    for (llm_live *l = t->list; l != NULL; l = l->next)
        if (l->key_len == len && memcmp(l->key, key, len) == 0)
            return l;
    return NULL;
}

static void unlink_live(llm_lives *t, llm_live *l)
{
    for (llm_live **p = &t->list; *p != NULL; p = &(*p)->next)
        if (*p == l) {
            *p = l->next;
            return;
        }
}

/* Drops a reference (the table's lock held); frees the stream with the last. */
static void live_unref(llm_live *l)
{
    if (--l->refs > 0)
        return;
    free(l->key);
    free(l->head);
    free(l->buf);
    free(l);
}

/* ---- joiners ------------------------------------------------------------------------------ */

static void wake(evutil_socket_t fd, short what, void *arg);

/* Puts a wake for j on its loop's queue, unless one is there (the table's lock held). */
static void schedule(joiner *j)
{
    if (j->scheduled || j->px == NULL)
        return;
    j->scheduled = 1;
    j->refs++;
    if (event_base_once(j->w->base, -1, EV_TIMEOUT, wake, j, NULL) != 0) {
        j->scheduled = 0; /* the loop is gone (a stop): nothing will run there */
        j->refs--;
    }
}

/* Drops a reference of j (the table's lock held); frees it with the last. */
static void joiner_unref(joiner *j)
{
    if (--j->refs > 0)
        return;
    llm_live *l = j->live;
    for (joiner **p = &l->joiners; *p != NULL; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            break;
        }
    free(j);
    live_unref(l);
}

/* On the joiner's loop: what is new goes to its client; the end ends its answer. */
static void wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    joiner *j = arg;
    llm_lives *t = j->live->table;
    pthread_mutex_lock(&t->lock);
    j->scheduled = 0;
    proxy_req *px = j->px;
    int state = j->live->state;
    if (px != NULL && px->q != NULL && j->sent < j->live->len) {
        reply_write(px->q, j->live->buf + j->sent, j->live->len - j->sent);
        j->sent = j->live->len;
    }
    if (px != NULL && state != LIVE_RUNNING)
        j->px = NULL; /* the request ends below, after the lock */
    joiner_unref(j);
    pthread_mutex_unlock(&t->lock);
    if (px == NULL || state == LIVE_RUNNING)
        return;
    req *q = px->q;
    if (q != NULL) {
        px->q = NULL;
        q->px = NULL;
        q->on_writable = NULL;
        if (state == LIVE_WHOLE)
            reply_end(q);
        else
            reply_cut(q);
    }
    proxy_req_free(px); /* its state's free drops the request's reference */
}

int llm_live_join(llm_lives *t, proxy_req *px, const char *tenant, const char *key, size_t len)
{
    char k[PROXY_KEY_CAP + STRATA_NAME_MAX + 2];
    size_t tl = strlen(tenant);
    if (t == NULL || tl + 1 + len > sizeof k)
        return 0;
    memcpy(k, tenant, tl + 1);
    memcpy(k + tl + 1, key, len);
    joiner *j = calloc(1, sizeof *j);
    if (j == NULL)
        return 0;
    pthread_mutex_lock(&t->lock);
    llm_live *l = find(t, k, tl + 1 + len);
    if (l == NULL || l->state != LIVE_RUNNING) {
        pthread_mutex_unlock(&t->lock);
        free(j);
        return 0;
    }
    *j = (joiner){.live = l, .px = px, .w = px->w, .refs = 1, .next = l->joiners};
    l->joiners = j;
    l->refs++;
    ((llm_state *)px->hook_arg)->joined = j;
    /* The answer starts now, from the leader's head; what has come so far follows at once. */
    add_header_lines(px->q, l->head, l->head_len);
    proxy_cache_headers(px, HC_XC_HIT_COALESCED, NULL, l->status, 0);
    reply_start(px->q, l->status, -1);
    schedule(j);
    pthread_mutex_unlock(&t->lock);
    proxy_count_answer(px, HC_XC_HIT_COALESCED, 0);
    return 1;
}

void llm_live_leave(joiner *j)
{
    llm_lives *t = j->live->table;
    pthread_mutex_lock(&t->lock);
    j->px = NULL;
    joiner_unref(j);
    pthread_mutex_unlock(&t->lock);
}

/* ---- the leader --------------------------------------------------------------------------- */

llm_live *llm_live_publish(llm_lives *t, const char *tenant, const char *key, size_t len,
                           const char *head, size_t head_len, int status, size_t max)
{
    size_t tl = strlen(tenant);
    llm_live *l = calloc(1, sizeof *l);
    if (t == NULL || l == NULL || (l->key = malloc(tl + 1 + len)) == NULL ||
        (l->head = malloc(head_len + 1)) == NULL) {
        if (l != NULL)
            free(l->key);
        free(l);
        return NULL;
    }
    memcpy(l->key, tenant, tl + 1);
    memcpy(l->key + tl + 1, key, len);
    l->key_len = tl + 1 + len;
    memcpy(l->head, head, head_len);
    l->head_len = head_len;
    l->status = status;
    l->max = max;
    l->table = t;
    l->refs = 1;
    pthread_mutex_lock(&t->lock);
    if (find(t, l->key, l->key_len) != NULL) { /* another request of this key streams already */
        pthread_mutex_unlock(&t->lock);
        live_unref(l);
        return NULL;
    }
    l->next = t->list;
    t->list = l;
    pthread_mutex_unlock(&t->lock);
    return l;
}

static void end_locked(llm_live *l, int whole)
{
    if (l->state != LIVE_RUNNING)
        return;
    l->state = whole ? LIVE_WHOLE : LIVE_CUT;
    unlink_live(l->table, l);
    for (joiner *j = l->joiners; j != NULL; j = j->next)
        schedule(j);
}

void llm_live_append(llm_live *l, const char *data, size_t len)
{
    pthread_mutex_lock(&l->table->lock);
    if (l->state == LIVE_RUNNING) {
        if (l->len + len > l->max) {
            end_locked(l, 0); /* past the bound no one can join, and the joiners are cut */
        } else {
            if (l->len + len > l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 4096;
                while (cap < l->len + len)
                    cap *= 2;
                char *b = realloc(l->buf, cap);
                if (b == NULL) {
                    end_locked(l, 0);
                    pthread_mutex_unlock(&l->table->lock);
                    return;
                }
                l->buf = b;
                l->cap = cap;
            }
            memcpy(l->buf + l->len, data, len);
            l->len += len;
            for (joiner *j = l->joiners; j != NULL; j = j->next)
                schedule(j);
        }
    }
    pthread_mutex_unlock(&l->table->lock);
}

void llm_live_end(llm_live *l, int whole)
{
    llm_lives *t = l->table;
    pthread_mutex_lock(&t->lock);
    end_locked(l, whole);
    live_unref(l);
    pthread_mutex_unlock(&t->lock);
}
