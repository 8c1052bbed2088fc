/* The users file of SMTP AUTH: one "user:crypt-hash" line per user, '#'
 * comments and blank lines allowed.
 *
 * Only hashes of yescrypt ($y$), bcrypt ($2b$, $2y$) and SHA-512 crypt
 * ($6$) are accepted. Any other hash (DES, MD5 $1$, SHA-256 $5$, ...) or
 * a malformed line fails the load with "FILE:LINE: reason". Passwords
 * are checked with crypt_rn() from libxcrypt, and every comparison runs
 * in time that does not depend on where the bytes differ. */
#ifndef RINGRELAY_CORE_AUTH_USERS_H
#define RINGRELAY_CORE_AUTH_USERS_H

#include <stdbool.h>
#include <stddef.h>

struct auth_users;
struct crypt_data;

/* auth_users_load reads path, which must name at least one user. On
 * error it writes "FILE:LINE: reason" (or "FILE: reason") into err and
 * returns -1. */
int auth_users_load(const char *path, struct auth_users **out, char *err,
                    size_t err_size);

/* auth_users_free frees the table; NULL is accepted. */
void auth_users_free(struct auth_users *users);

/* auth_users_count returns the number of users. */
size_t auth_users_count(const struct auth_users *users);

/* auth_users_hash returns the hash of user and sets *known. For an
 * unknown user it returns the hash of the file's first user with *known
 * false, so checking it costs as much time as checking a real user of
 * the same hash type and cost. The lookup compares every name in the
 * table in full. */
const char *auth_users_hash(const struct auth_users *users,
                            const char *user, bool *known);

/* auth_users_verify hashes password with the setting of hash and
 * compares the result with hash in constant time. Safe to call from any
 * thread: data is the caller's scratch space for crypt_rn(). */
bool auth_users_verify(const char *hash, const char *password,
                       struct crypt_data *data);

#endif
