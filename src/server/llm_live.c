/* llm_live.c: streamed answers in flight on this instance, which identical streamed requests join:
 * a joiner is sent what has arrived so far, then the rest as it comes, from the one upstream
 * stream, whichever worker it is on.
 *
 * A live stream belongs to the request that leads it (on its worker's loop). It is opened when
 * the leader goes to look its key up, before any upstream byte, so that requests that come while
 * the upstream is still thinking (an LLM's first token takes a while) join it too. The leader's
 * response starts it (its head), and each piece it sends its own client is appended; each piece
 * wakes the joiners, each on its own worker's loop (event_base_once, safe across threads), which
 * copy what is new into their clients' answers. The leader ends it whole (the joiners' answers
 * end) or cut (theirs are cut too, as its own client's). A stream that ends before it started
 * (the leader was answered from the cache or failed before a byte) hands its joiners back to
 * the gateway, which looks each up again. The table (in the proxy's model) holds the streams by
 * key while they run; a stream is freed when its leader and its last joiner are done with it.
 *
 *   leader: run() -> llm_live_join: 0, *lead -> lookup / fetch
 *           hooks.recorded -> llm_live_start (first piece) / llm_live_append -> wake joiners
 *           complete / answer / free -> llm_live_end(whole or not)
 *   joiner: run() -> llm_live_join: 1 -> wake: its answer starts (cb->started), pieces follow;
 *           the stream ended unstarted -> cb->alone
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
    char *head; /* the response's header lines; NULL until it started */
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
    const llm_live_cb *cb;
    size_t sent;
    int started;   /* its answer started (from the stream's head) */
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

/* Starts j's answer from the stream's head (the table's lock held). */
static void start_answer(joiner *j)
{
    llm_live *l = j->live;
    proxy_req *px = j->px;
    add_header_lines(px->q, l->head, l->head_len);
    proxy_cache_headers(px, HC_XC_HIT_COALESCED, NULL, l->status, 0);
    reply_start(px->q, l->status, -1);
    proxy_count_answer(px, HC_XC_HIT_COALESCED, 0);
    j->started = 1;
}

/* On the joiner's loop: its answer starts once the stream did, what is new goes to its client,
 * and the end ends its answer (or, before a start, hands it back). */
static void wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    joiner *j = arg;
    llm_lives *t = j->live->table;
    pthread_mutex_lock(&t->lock);
    j->scheduled = 0;
    proxy_req *px = j->px;
    int state = j->live->state, began = 0, alone = 0;
    if (px != NULL && px->q != NULL && !j->started && j->live->head != NULL) {
        start_answer(j);
        began = 1;
    }
    if (px != NULL && px->q != NULL && j->started && j->sent < j->live->len) {
        reply_write(px->q, j->live->buf + j->sent, j->live->len - j->sent);
        j->sent = j->live->len;
    }
    if (px != NULL && state != LIVE_RUNNING) {
        j->px = NULL; /* the request ends (or goes on alone) below, after the lock */
        alone = !j->started;
        if (alone) { /* the request is no longer this stream's: its reference goes too */
            ((llm_state *)px->hook_arg)->joined = NULL;
            joiner_unref(j);
        }
    }
    const llm_live_cb *cb = j->cb;
    joiner_unref(j); /* the wake's */
    pthread_mutex_unlock(&t->lock);
    if (began)
        cb->started(px);
    if (px == NULL || state == LIVE_RUNNING)
        return;
    if (alone) {
        cb->alone(px); /* on px's own loop: it looks its key up again */
        return;
    }
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

/* A new stream of k[0..kl) that px leads, in the table (the table's lock held), or NULL. */
static llm_live *open_locked(llm_lives *t, const char *k, size_t kl, size_t max)
{
    llm_live *l = calloc(1, sizeof *l);
    if (l == NULL || (l->key = malloc(kl)) == NULL) {
        free(l);
        return NULL;
    }
    memcpy(l->key, k, kl);
    l->key_len = kl;
    l->max = max;
    l->table = t;
    l->refs = 1;
    l->next = t->list;
    t->list = l;
    return l;
}

int llm_live_join(llm_lives *t, proxy_req *px, const char *tenant, const char *key, size_t len,
                  int may_join, size_t max, const llm_live_cb *cb, llm_live **lead)
{
    char k[PROXY_KEY_CAP + STRATA_NAME_MAX + 2];
    size_t tl = strlen(tenant);
    *lead = NULL;
    if (t == NULL || tl + 1 + len > sizeof k)
        return 0;
    memcpy(k, tenant, tl + 1);
    memcpy(k + tl + 1, key, len);
    joiner *j = calloc(1, sizeof *j);
    if (j == NULL)
        return 0;
    pthread_mutex_lock(&t->lock);
    llm_live *l = find(t, k, tl + 1 + len); /* only running streams are in the table */
    if (l == NULL || !may_join) {
        if (l == NULL) /* with one running, a request that may not join leads none */
            *lead = open_locked(t, k, tl + 1 + len, max);
        pthread_mutex_unlock(&t->lock);
        free(j);
        return 0;
    }
    *j = (joiner){.live = l, .px = px, .w = px->w, .cb = cb, .refs = 1, .next = l->joiners};
    l->joiners = j;
    l->refs++;
    ((llm_state *)px->hook_arg)->joined = j;
    if (l->head != NULL)
        schedule(j); /* started: its answer starts now, with what has come so far */
    pthread_mutex_unlock(&t->lock);
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

static void end_locked(llm_live *l, int whole)
{
    if (l->state != LIVE_RUNNING)
        return;
    l->state = whole ? LIVE_WHOLE : LIVE_CUT;
    unlink_live(l->table, l);
    for (joiner *j = l->joiners; j != NULL; j = j->next)
        schedule(j);
}

void llm_live_start(llm_live *l, const char *head, size_t head_len, int status)
{
    char *h = malloc(head_len + 1);
    pthread_mutex_lock(&l->table->lock);
    if (h == NULL) {
        end_locked(l, 0);
    } else if (l->state == LIVE_RUNNING && l->head == NULL) {
        memcpy(h, head, head_len);
        l->head = h;
        h = NULL;
        l->head_len = head_len;
        l->status = status;
        for (joiner *j = l->joiners; j != NULL; j = j->next)
            schedule(j);
    }
    pthread_mutex_unlock(&l->table->lock);
    free(h);
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
