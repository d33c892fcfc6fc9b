/* auth.c: the token table: which bearer token may do what, in which tenant.
 *
 * A token has a role (read < write < admin: each includes the ones before) and is optionally
 * bound to one tenant, in which case it always acts there (DESIGN.md, "Tenants"). The table is
 * immutable once loaded; SIGHUP builds a new one and swaps it in (server.c), so a request always
 * sees one consistent table. Tokens never leave this file: logs and errors name entries by their
 * position, never by their text.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"

#define TOKEN_MIN 8
#define TOKEN_MAX 256

typedef struct auth_entry {
    char token[TOKEN_MAX + 1];
    size_t len;
    int role;
    char tenant[STRATA_NAME_MAX + 1]; /* "" when unbound */
} auth_entry;

struct auth_table {
    auth_entry *e;
    size_t n, cap;
};

static int parse_role(const char *s, size_t n)
{
    if (n == 4 && memcmp(s, "read", 4) == 0)
        return ROLE_READ;
    if (n == 5 && memcmp(s, "write", 5) == 0)
        return ROLE_WRITE;
    if (n == 5 && memcmp(s, "admin", 5) == 0)
        return ROLE_ADMIN;
    return ROLE_NONE;
}

/* Parses one TOKEN:ROLE[:TENANT] entry s[0..n). */
static int add_entry(auth_table *t, const char *s, size_t n, const char *where, char *err,
                     size_t errcap)
{
    const char *c1 = memchr(s, ':', n);
    if (c1 == NULL) {
        snprintf(err, errcap, "%s: expected TOKEN:ROLE[:TENANT]", where);
        return -1;
    }
    size_t tl = (size_t)(c1 - s);
    const char *rest = c1 + 1;
    size_t rl = n - tl - 1;
    const char *c2 = memchr(rest, ':', rl);
    size_t rolel = c2 ? (size_t)(c2 - rest) : rl;
    if (tl < TOKEN_MIN || tl > TOKEN_MAX) {
        snprintf(err, errcap, "%s: a token must be %d to %d characters", where, TOKEN_MIN,
                 TOKEN_MAX);
        return -1;
    }
    for (size_t i = 0; i < tl; i++)
        if (!isgraph((unsigned char)s[i])) {
            snprintf(err, errcap, "%s: a token must be visible ASCII without spaces", where);
            return -1;
        }
    int role = parse_role(rest, rolel);
    if (role == ROLE_NONE) {
        snprintf(err, errcap, "%s: role must be read, write or admin", where);
        return -1;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        auth_entry *e = realloc(t->e, cap * sizeof *e);
        if (e == NULL) {
            snprintf(err, errcap, "out of memory");
            return -1;
        }
        t->e = e, t->cap = cap;
    }
    auth_entry *e = &t->e[t->n];
    memset(e, 0, sizeof *e);
    memcpy(e->token, s, tl);
    e->len = tl;
    e->role = role;
    if (c2 != NULL) {
        size_t nl = rl - rolel - 1;
        if (nl == 0 || nl > STRATA_NAME_MAX) {
            snprintf(err, errcap, "%s: bad tenant name", where);
            return -1;
        }
        memcpy(e->tenant, c2 + 1, nl);
        if (strata_name_check(e->tenant) != 0) {
            snprintf(err, errcap, "%s: tenant must be 1-64 characters of A-Z a-z 0-9 _ . -", where);
            return -1;
        }
    }
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].len == tl && memcmp(t->e[i].token, s, tl) == 0) {
            snprintf(err, errcap, "%s: the same token appears twice", where);
            return -1;
        }
    t->n++;
    return 0;
}

static int load_spec(auth_table *t, const char *spec, char *err, size_t errcap)
{
    const char *p = spec;
    for (int i = 1; *p != '\0'; i++) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char where[64];
        snprintf(where, sizeof where, "STRATA_TOKENS entry %d", i);
        if (n > 0 && add_entry(t, p, n, where, err, errcap) != 0)
            return -1;
        p += n + (comma != NULL);
    }
    return 0;
}

static int load_file(auth_table *t, const char *path, char *err, size_t errcap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errcap, "tokens file %s: cannot open", path);
        return -1;
    }
    char line[1024];
    int rc = 0;
    for (int ln = 1; rc == 0 && fgets(line, sizeof line, f) != NULL; ln++) {
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
            line[--n] = '\0';
        size_t skip = strspn(line, " \t");
        if (line[skip] == '\0' || line[skip] == '#')
            continue;
        char where[300];
        snprintf(where, sizeof where, "tokens file %.200s line %d", path, ln);
        rc = add_entry(t, line + skip, n - skip, where, err, errcap);
    }
    fclose(f);
    return rc;
}

auth_table *auth_load(const char *spec, const char *path, char *err, size_t errcap)
{
    auth_table *t = calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    if ((spec != NULL && load_spec(t, spec, err, errcap) != 0) ||
        (path != NULL && load_file(t, path, err, errcap) != 0)) {
        auth_free(t);
        return NULL;
    }
    return t;
}

void auth_free(auth_table *t)
{
    if (t == NULL)
        return;
    if (t->e != NULL)
        memset(t->e, 0, t->cap * sizeof *t->e); /* no tokens left in freed memory */
    free(t->e);
    free(t);
}

size_t auth_count(const auth_table *t)
{
    return t ? t->n : 0;
}

/* Compares without an early exit: the time depends on the lengths, never on the contents. */
static int same(const char *a, size_t al, const char *b, size_t bl)
{
    unsigned char diff = al != bl;
    for (size_t i = 0; i < TOKEN_MAX; i++) {
        unsigned char x = i < al ? (unsigned char)a[i] : 0;
        unsigned char y = i < bl ? (unsigned char)b[i] : 0;
        diff |= x ^ y;
    }
    return diff == 0;
}

int auth_check(const auth_table *t, const char *token, size_t len, const char **tenant)
{
    int role = ROLE_NONE;
    *tenant = NULL;
    if (t == NULL || len > TOKEN_MAX)
        return ROLE_NONE;
    for (size_t i = 0; i < t->n; i++) {
        int match = same(t->e[i].token, t->e[i].len, token, len);
        /* Keep scanning after a match, so the position of the token is not timed either. */
        if (match) {
            role = t->e[i].role;
            *tenant = t->e[i].tenant[0] ? t->e[i].tenant : NULL;
        }
    }
    return role;
}

const char *auth_role_name(int role)
{
    switch (role) {
    case ROLE_READ:
        return "read";
    case ROLE_WRITE:
        return "write";
    case ROLE_ADMIN:
        return "admin";
    default:
        return "none";
    }
}

const char *auth_bearer(const char *header)
{
    return header != NULL && strncasecmp(header, "Bearer ", 7) == 0 ? header + 7 : NULL;
}
