/* auth.h: bearer tokens, roles and tenants for strata serve. */
#ifndef STRATA_SERVER_AUTH_H
#define STRATA_SERVER_AUTH_H

#include <stddef.h>

#include <strata/key.h>

enum auth_role { ROLE_NONE = 0, ROLE_READ = 1, ROLE_WRITE = 2, ROLE_ADMIN = 3 };

typedef struct auth_table auth_table;

/* Parses "TOKEN:ROLE[:TENANT],..." (spec may be NULL or empty) plus, if path is not NULL, a file
 * with one TOKEN:ROLE[:TENANT] per line ('#' comments and blank lines allowed). Returns the
 * table, or NULL with a message in err naming the entry and what is wrong. Tokens are 8..256
 * visible ASCII bytes without ':' or ','. */
auth_table *auth_load(const char *spec, const char *path, char *err, size_t errcap);
void auth_free(auth_table *t);

/* Number of tokens configured. */
size_t auth_count(const auth_table *t);

/* Looks a presented token up in constant time per configured token (every entry is compared,
 * whatever matches), so response time does not reveal how much of a token was right. Returns the
 * role (ROLE_NONE if unknown) and sets *tenant to the bound tenant or NULL. */
int auth_check(const auth_table *t, const char *token, size_t len, const char **tenant);

const char *auth_role_name(int role);

/* The token of an Authorization header value ("Bearer <token>", the scheme's name in any case,
 * RFC 9110 11.1), or NULL when it is not the Bearer scheme. Points into header. */
const char *auth_bearer(const char *header);

#endif
