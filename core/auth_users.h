/* The users file of SMTP AUTH: one "user:crypt-hash" line per user, '#'
 * comments and blank lines allowed.
 *
 * Only hashes of yescrypt ($y$), bcrypt ($2b$, $2a$, $2y$) and SHA-512
 * crypt ($6$) are accepted. A hash that starts with '!' or '*', as a
 * locked account in /etc/shadow, marks a disabled user, whose logins
 * always fail. Any other hash (DES, MD5 $1$, SHA-256 $5$, ...) or a
 * malformed line fails the load with "FILE:LINE: reason". Passwords
 * are checked with crypt_rn() from libxcrypt, and every comparison runs
 * in time that does not depend on where the bytes differ. */
#ifndef RINGRELAY_CORE_AUTH_USERS_H
#define RINGRELAY_CORE_AUTH_USERS_H

#include <stdbool.h>
#include <stddef.h>

struct auth_users;
struct crypt_data;

/* Bytes of the longest hash accepted, without the NUL: a SHA-512 crypt
 * with "rounds=999999999$" and a 16-byte salt takes 123 bytes. */
#define AUTH_USERS_HASH_MAX 160

/* auth_users_load reads path, which must name at least one user. On
 * error it writes "FILE:LINE: reason" (or "FILE: reason") into err and
 * returns -1. */
int auth_users_load(const char *path, struct auth_users **out, char *err,
                    size_t err_size);

/* auth_users_free frees the table; NULL is accepted. */
void auth_users_free(struct auth_users *users);

/* auth_users_count returns the number of users. */
size_t auth_users_count(const struct auth_users *users);

/* auth_users_disabled_count returns the number of disabled users. */
size_t auth_users_disabled_count(const struct auth_users *users);

/* auth_users_file_mode returns the permission bits of the file when it
 * was loaded, such as 0600. */
unsigned auth_users_file_mode(const struct auth_users *users);

/* auth_users_hash returns the hash of user and sets *known. For an
 * unknown user it returns the hash of the file's first enabled user with
 * *known false, so checking it costs as much time as checking a real user
 * of the same hash type and cost. A disabled user gets the same hash with
 * *known true and *disabled true; the caller must fail the login. The
 * lookup compares every name in the table in full. */
const char *auth_users_hash(const struct auth_users *users,
                            const char *user, bool *known, bool *disabled);

/* auth_users_verify hashes password with the setting of hash and
 * compares the result with hash in constant time. Safe to call from any
 * thread: data is the caller's scratch space for crypt_rn(). */
bool auth_users_verify(const char *hash, const char *password,
                       struct crypt_data *data);

#endif
