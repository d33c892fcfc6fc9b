/* llm_text.c: a growing string (llm_text.h). */
#include <stdlib.h>
#include <string.h>

#include "llm_text.h"

static int grow(llm_text *t, size_t cap)
{
    char *np = realloc(t->p, cap);
    if (np == NULL)
        return -1;
    t->p = np;
    t->cap = cap;
    return 0;
}

int llm_text_reserve(llm_text *t, size_t n)
{
    return t->len + n + 1 > t->cap ? grow(t, t->len + n + 1) : 0;
}

int llm_text_add(llm_text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        while (cap < t->len + n + 1)
            cap *= 2;
        if (grow(t, cap) != 0)
            return -1;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
    return 0;
}
