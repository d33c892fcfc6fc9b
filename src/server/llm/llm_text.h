/* llm_text.h: a growing string, what the LLM gateway's pieces write answers and events into
 * (llm_sse.c's events and recorder, llm_embeddings.c's answers). Always NUL-terminated once
 * anything was added; the caller frees p.
 *
 *     llm_text t = {0};
 *     if (llm_text_add(&t, "data: ", 6) != 0) ... // out of memory: t keeps what it had
 *     free(t.p);
 */
#ifndef STRATA_SERVER_LLM_TEXT_H
#define STRATA_SERVER_LLM_TEXT_H

#include <stddef.h>

typedef struct llm_text {
    char *p;
    size_t len, cap;
} llm_text;

/* Appends s[0..n). Returns 0, or -1 when out of memory. */
int llm_text_add(llm_text *t, const char *s, size_t n);
/* Makes room for n more bytes at once (a size known ahead: no copies while growing). Returns 0,
 * or -1 when out of memory. */
int llm_text_reserve(llm_text *t, size_t n);

#endif
