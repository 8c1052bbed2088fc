/* Loading and checking the SMTP AUTH users file. */
#include "core/auth_users.h"

#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proto/smtp_sasl.h"

#define AUTH_HASH_MAX AUTH_USERS_HASH_MAX

/* Lines longer than this are rejected rather than split. */
#define AUTH_LINE_MAX 1024

struct auth_user {
    /* Zero-padded, so every lookup compares the same number of bytes. */
    char name[SMTP_SASL_NAME_MAX + 1];
    char hash[AUTH_HASH_MAX + 1];
    bool disabled;              /* a '!' or '*' hash: logins always fail */
};

struct auth_users {
    struct auth_user *entries;
    size_t count;
    size_t capacity;
    size_t disabled_count;
    size_t dummy;               /* the first enabled user, for unknown ones */
    unsigned file_mode;         /* permission bits of the file */
};

/* auth_equal compares a[0..len) with b[0..len) in time that depends only
 * on len. */
static bool auth_equal(const char *a, const char *b, size_t len)
{
    unsigned char diff = 0;

    for (size_t i = 0; i < len; i++) {
        diff |= (unsigned char)(a[i] ^ b[i]);
    }
    return diff == 0;
}

static bool auth_is_crypt64(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '/';
}

/* auth_checksum_valid checks that text[0..len) is crypt's base64. */
static bool auth_checksum_valid(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!auth_is_crypt64(text[i])) {
            return false;
        }
    }
    return true;
}

/* auth_hash_problem returns why hash is not accepted, or NULL. The
 * lengths are those of libxcrypt 4.4 output: 43 characters of checksum
 * for yescrypt, 86 for SHA-512 crypt, 60 bytes in all for bcrypt. */
static const char *auth_hash_problem(const char *hash)
{
    const char *last = strrchr(hash, '$');
    size_t len = strlen(hash);
    size_t checksum = last != NULL ? strlen(last + 1) : 0;

    if (strncmp(hash, "$y$", 3) != 0 && strncmp(hash, "$6$", 3) != 0 &&
        strncmp(hash, "$2b$", 4) != 0 && strncmp(hash, "$2a$", 4) != 0 &&
        strncmp(hash, "$2y$", 4) != 0) {
        return "unsupported hash type: use yescrypt ($y$), bcrypt ($2b$, "
               "$2a$ or $2y$) or SHA-512 crypt ($6$), or '!' or '*' in "
               "front to disable the user";
    }
    if (len > AUTH_HASH_MAX || crypt_checksalt(hash) != CRYPT_SALT_OK) {
        return "malformed hash";
    }
    if (hash[1] == 'y' && checksum == 43 &&
        auth_checksum_valid(last + 1, checksum)) {
        return NULL;
    }
    if (hash[1] == '6' && checksum == 86 &&
        auth_checksum_valid(last + 1, checksum)) {
        return NULL;
    }
    if (hash[1] == '2' && len == 60 && checksum == 53 &&
        auth_checksum_valid(last + 1, checksum)) {
        return NULL;
    }
    return "malformed hash: the checksum has the wrong length or "
           "characters";
}

static const char *auth_name_problem(const char *name, size_t len)
{
    if (len == 0) {
        return "empty user name";
    }
    if (len > SMTP_SASL_NAME_MAX) {
        return "user name longer than 255 bytes";
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f) {
            return "control character in the user name";
        }
    }
    return NULL;
}

static int auth_grow(struct auth_users *users)
{
    size_t capacity = users->capacity != 0 ? users->capacity * 2 : 16;
    struct auth_user *grown;

    if (users->count < users->capacity) {
        return 0;
    }
    grown = realloc(users->entries, capacity * sizeof(*grown));
    if (grown == NULL) {
        return -1;
    }
    users->entries = grown;
    users->capacity = capacity;
    return 0;
}

static bool auth_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* auth_add_line parses one line, without its LF, into users. Returns
 * NULL, or the reason the line is rejected. */
static const char *auth_add_line(struct auth_users *users, char *line)
{
    size_t len = strlen(line);
    struct auth_user *entry;
    const char *problem;
    char *colon;
    bool known;
    bool disabled;
    bool other_disabled;

    while (len > 0 && auth_blank(line[len - 1])) {
        line[--len] = '\0';
    }
    while (auth_blank(*line)) {
        line++;
    }
    if (*line == '\0' || *line == '#') {
        return NULL;
    }
    colon = strchr(line, ':');
    if (colon == NULL) {
        return "expected user:hash";
    }
    *colon = '\0';
    /* A locked account of /etc/shadow: "!", "*", or a hash after '!'.
     * What follows the marker is kept but never used. */
    disabled = colon[1] == '!' || colon[1] == '*';
    problem = auth_name_problem(line, (size_t)(colon - line));
    if (problem == NULL && strlen(colon + 1) > AUTH_HASH_MAX) {
        problem = "malformed hash: longer than 160 bytes";
    }
    if (problem == NULL && !disabled) {
        problem = auth_hash_problem(colon + 1);
    }
    if (problem != NULL) {
        return problem;
    }
    if (users->count > 0) {
        auth_users_hash(users, line, &known, &other_disabled);
        if (known) {
            return "duplicate user name";
        }
    }
    if (auth_grow(users) < 0) {
        return "out of memory";
    }
    entry = &users->entries[users->count++];
    memset(entry, 0, sizeof(*entry));
    memcpy(entry->name, line, (size_t)(colon - line));
    snprintf(entry->hash, sizeof(entry->hash), "%s", colon + 1);
    entry->disabled = disabled;
    if (disabled) {
        users->disabled_count++;
    }
    return NULL;
}

/* auth_read_lines parses every line of file. Returns 0, or -1 after
 * writing the error. */
static int auth_read_lines(struct auth_users *users, FILE *file,
                           const char *path, char *err, size_t err_size)
{
    char line[AUTH_LINE_MAX + 2];
    unsigned number = 0;

    while (fgets(line, sizeof(line), file) != NULL) {
        size_t len = strlen(line);
        const char *problem;

        number++;
        if (len > 0 && line[len - 1] == '\n') {
            line[--len] = '\0';
        } else if (!feof(file)) {
            snprintf(err, err_size, "%s:%u: line longer than %d bytes",
                     path, number, AUTH_LINE_MAX);
            return -1;
        }
        if (memchr(line, '\0', len) != NULL) {
            snprintf(err, err_size, "%s:%u: NUL byte in the line", path,
                     number);
            return -1;
        }
        problem = auth_add_line(users, line);
        if (problem != NULL) {
            snprintf(err, err_size, "%s:%u: %s", path, number, problem);
            return -1;
        }
    }
    if (ferror(file)) {
        snprintf(err, err_size, "%s: cannot read: %s", path,
                 strerror(errno));
        return -1;
    }
    return 0;
}

int auth_users_load(const char *path, struct auth_users **out, char *err,
                    size_t err_size)
{
    struct auth_users *users = calloc(1, sizeof(*users));
    FILE *file = NULL;
    struct stat st;
    int rc = -1;

    if (users == NULL) {
        snprintf(err, err_size, "%s: out of memory", path);
        goto out;
    }
    file = fopen(path, "re");
    if (file == NULL) {
        snprintf(err, err_size, "%s: cannot open: %s", path,
                 strerror(errno));
        goto out;
    }
    if (fstat(fileno(file), &st) < 0) {
        snprintf(err, err_size, "%s: cannot stat: %s", path,
                 strerror(errno));
        goto out;
    }
    users->file_mode = (unsigned)(st.st_mode & 07777);
    if (auth_read_lines(users, file, path, err, err_size) < 0) {
        goto out;
    }
    if (users->count == 0) {
        snprintf(err, err_size, "%s: no users in the file; add a "
                 "user:hash line or remove auth_users_file", path);
        goto out;
    }
    /* With every user disabled, the dummy hash is a marker, which
     * crypt_rn() rejects at once; no login can succeed then anyway. */
    while (users->dummy + 1 < users->count &&
           users->entries[users->dummy].disabled) {
        users->dummy++;
    }
    *out = users;
    users = NULL;
    rc = 0;

out:
    if (file != NULL) {
        fclose(file);
    }
    auth_users_free(users);
    return rc;
}

void auth_users_free(struct auth_users *users)
{
    if (users == NULL) {
        return;
    }
    if (users->entries != NULL) {
        explicit_bzero(users->entries,
                       users->count * sizeof(*users->entries));
    }
    free(users->entries);
    free(users);
}

size_t auth_users_count(const struct auth_users *users)
{
    return users->count;
}

size_t auth_users_disabled_count(const struct auth_users *users)
{
    return users->disabled_count;
}

unsigned auth_users_file_mode(const struct auth_users *users)
{
    return users->file_mode;
}

const char *auth_users_hash(const struct auth_users *users,
                            const char *user, bool *known, bool *disabled)
{
    char padded[SMTP_SASL_NAME_MAX + 1] = {0};
    const char *dummy = users->entries[users->dummy].hash;
    const char *hash = dummy;

    bool too_long = strnlen(user, sizeof(padded)) > SMTP_SASL_NAME_MAX;

    *known = false;
    *disabled = false;
    strncpy(padded, user, SMTP_SASL_NAME_MAX);
    for (size_t i = 0; i < users->count; i++) {
        if (auth_equal(users->entries[i].name, padded, sizeof(padded)) &&
            !too_long) {
            *known = true;
            *disabled = users->entries[i].disabled;
            hash = *disabled ? dummy : users->entries[i].hash;
        }
    }
    return hash;
}

bool auth_users_verify(const char *hash, const char *password,
                       struct crypt_data *data)
{
    size_t len = strlen(hash);
    const char *output;

    memset(data, 0, sizeof(*data));
    output = crypt_rn(password, hash, data, (int)sizeof(*data));
    if (output == NULL || strlen(output) != len) {
        return false;
    }
    return auth_equal(output, hash, len);
}
