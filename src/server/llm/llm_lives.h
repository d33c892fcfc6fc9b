/* llm_lives.h: the table of the LLM gateway's streams in flight on this instance: a lock and a
 * list, owned by the proxy's model (made and freed with it), read and changed only by
 * src/server/llm_live.c under the lock.
 */
#ifndef STRATA_SERVER_LLM_LIVES_H
#define STRATA_SERVER_LLM_LIVES_H

#include <pthread.h>

typedef struct llm_lives {
    pthread_mutex_t lock;
    struct llm_live *list; /* a few at a time: the streams in flight */
} llm_lives;

/* An empty table, or NULL when out of memory. */
llm_lives *llm_lives_new(void);
/* Frees t (NULL is a no-op); no stream may be in it. */
void llm_lives_free(llm_lives *t);

#endif
