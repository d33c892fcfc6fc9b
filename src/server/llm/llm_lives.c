/* llm_lives.c: the table of streams in flight (llm_lives.h). */
#include <stdlib.h>

#include "llm_lives.h"

llm_lives *llm_lives_new(void)
{
    llm_lives *t = calloc(1, sizeof *t);
    if (t != NULL)
        pthread_mutex_init(&t->lock, NULL);
    return t;
}

void llm_lives_free(llm_lives *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t);
}
