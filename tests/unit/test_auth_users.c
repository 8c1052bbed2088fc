/* Tests for the SMTP AUTH users file (core/auth_users.h): each accepted
 * hash family checks its password, and every bad line stops the load
 * with the file, the line number and the reason. Files are written into
 * a mkdtemp directory. */
#include <crypt.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/auth_users.h"

/* Hashes of "secret", made with Python's crypt.crypt() over libxcrypt
 * 4.4.33. */
#define HASH_YESCRYPT                                                 \
    "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$"                                  \
    "GmcwIgvdUC9qLWcKCi6gklUa1dM3ziD43YxYNURLKy0"
#define HASH_BCRYPT_2B                                                \
    "$2b$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a"
#define HASH_BCRYPT_2Y                                                \
    "$2y$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a"
#define HASH_BCRYPT_2A                                                \
    "$2a$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a"
#define HASH_SHA512                                                   \
    "$6$saltsaltsalt$PMWE8DTlam1JU37Piyk43bHcMxTJq6sgu5DKB0/tGPjanN35j" \
    "cY68QkpDfPFUGPWX5uCxIQkSPzMmqEiVNgts."
#define HASH_SHA512_ROUNDS                                            \
    "$6$rounds=1000$saltsalt$LAV5VE5Y7w1d73x1mFNspYWUpazfmwv2SoepNXNKJ" \
    "/otop/Zok96Hr8Q13LEv0DRY/x8v0/crpIjl8NJSAqXV/"
#define HASH_SHA256 "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA"
#define HASH_MD5 "$1$saltsalt$9xy1btjgzLYfb7hivXtC//"
#define HASH_DES "abNANd1rDfiNc"

static char dir[64];
static char path[128];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/test_auth_users.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/users", dir);
}

static void remove_dir(void)
{
    unlink(path);
    rmdir(dir);
}

TestSuite(auth_users, .init = make_dir, .fini = remove_dir);

static void write_users(const char *text)
{
    FILE *file = fopen(path, "w");

    cr_assert_not_null(file);
    cr_assert_eq(fputs(text, file) >= 0, true);
    cr_assert_eq(fclose(file), 0);
}

static struct auth_users *load_ok(const char *text)
{
    struct auth_users *users = NULL;
    char err[512] = "";

    write_users(text);
    cr_assert_eq(auth_users_load(path, &users, err, sizeof(err)), 0,
                 "load failed: %s", err);
    return users;
}

/* load_fail returns the reason after "FILE:LINE: ", checking the line. */
static const char *load_fail(const char *text, unsigned line)
{
    static char err[512];
    struct auth_users *users = NULL;
    char prefix[160];

    write_users(text);
    cr_assert_eq(auth_users_load(path, &users, err, sizeof(err)), -1,
                 "load of \"%s\" succeeded", text);
    cr_assert_null(users);
    snprintf(prefix, sizeof(prefix), "%s:%u: ", path, line);
    cr_assert(strncmp(err, prefix, strlen(prefix)) == 0,
              "error \"%s\" does not start with \"%s\"", err, prefix);
    return err + strlen(prefix);
}

static bool check(const struct auth_users *users, const char *user,
                  const char *password)
{
    struct crypt_data *data = malloc(sizeof(*data));
    bool known;
    bool disabled;
    const char *hash = auth_users_hash(users, user, &known, &disabled);
    bool ok;

    cr_assert_not_null(data);
    ok = auth_users_verify(hash, password, data) && known && !disabled;
    free(data);
    return ok;
}

Test(auth_users, each_hash_family)
{
    struct auth_users *users = load_ok(
        "# comment line\n"
        "\n"
        "yes:" HASH_YESCRYPT "\n"
        "   # indented comment\n"
        "b2b:" HASH_BCRYPT_2B "\n"
        "b2y:" HASH_BCRYPT_2Y "\r\n"
        "sha:" HASH_SHA512 "\n"
        "rounds:" HASH_SHA512_ROUNDS);
    const char *names[] = {"yes", "b2b", "b2y", "sha", "rounds"};

    cr_assert_eq(auth_users_count(users), 5);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        cr_expect(check(users, names[i], "secret"), "%s", names[i]);
        cr_expect(!check(users, names[i], "Secret"), "%s", names[i]);
        cr_expect(!check(users, names[i], ""), "%s", names[i]);
    }
    auth_users_free(users);
}

Test(auth_users, unknown_user_gets_dummy_hash)
{
    struct auth_users *users = load_ok("first:" HASH_SHA512 "\n"
                                       "second:" HASH_YESCRYPT "\n");
    bool known = true;
    bool disabled = true;
    const char *hash = auth_users_hash(users, "nobody", &known, &disabled);

    cr_assert_not(known);
    cr_assert_not(disabled);
    cr_assert_str_eq(hash, HASH_SHA512);
    /* The dummy hash matches, but the user does not exist. */
    cr_assert_not(check(users, "nobody", "secret"));
    cr_assert_not(check(users, "firs", "secret"));
    cr_assert_not(check(users, "first2", "secret"));
    cr_assert_not(check(users, "FIRST", "secret"));
    cr_assert(check(users, "second", "secret"));
    auth_users_free(users);
}

Test(auth_users, bcrypt_2a_accepted)
{
    struct auth_users *users = load_ok("a2a:" HASH_BCRYPT_2A "\n");

    cr_assert(check(users, "a2a", "secret"));
    cr_assert_not(check(users, "a2a", "Secret"));
    auth_users_free(users);
}

Test(auth_users, locked_users_disabled)
{
    /* Markers of a locked account in /etc/shadow; the first user is
     * disabled, so unknown users get the second one's hash. */
    struct auth_users *users = load_ok(
        "bang:!" HASH_SHA512 "\n"
        "ok:" HASH_YESCRYPT "\n"
        "star:*\n"
        "lone:!\n"
        "double:!!\n"
        "starhash:*" HASH_YESCRYPT "\n");
    const char *names[] = {"bang", "star", "lone", "double", "starhash"};
    bool known = false;
    bool disabled = false;
    const char *hash;

    cr_assert_eq(auth_users_count(users), 6);
    cr_assert_eq(auth_users_disabled_count(users), 5);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        hash = auth_users_hash(users, names[i], &known, &disabled);
        cr_expect(known, "%s", names[i]);
        cr_expect(disabled, "%s", names[i]);
        cr_expect_str_eq(hash, HASH_YESCRYPT, "%s", names[i]);
        cr_expect_not(check(users, names[i], "secret"), "%s", names[i]);
    }
    hash = auth_users_hash(users, "nobody", &known, &disabled);
    cr_expect_str_eq(hash, HASH_YESCRYPT);
    cr_expect(check(users, "ok", "secret"));
    auth_users_free(users);
}

Test(auth_users, file_mode_recorded)
{
    struct auth_users *users = NULL;
    char err[512] = "";

    write_users("ok:" HASH_YESCRYPT "\n");
    cr_assert_eq(chmod(path, 0640), 0);
    cr_assert_eq(auth_users_load(path, &users, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(auth_users_file_mode(users), 0640);
    auth_users_free(users);
}

Test(auth_users, rejected_hash_types)
{
    const char *hashes[] = {HASH_SHA256, HASH_MD5, HASH_DES,
                            "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA"};

    for (size_t i = 0; i < sizeof(hashes) / sizeof(hashes[0]); i++) {
        char text[256];

        snprintf(text, sizeof(text), "ok:%s\nbad:%s\n", HASH_SHA512,
                 hashes[i]);
        cr_expect(strncmp(load_fail(text, 2), "unsupported hash type", 21)
                      == 0, "%s", hashes[i]);
    }
}

Test(auth_users, malformed_hashes)
{
    const char *hashes[] = {
        "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$GmcwIgvd",      /* short */
        "$6$saltsaltsalt$short",
        "$2b$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuT",  /* short */
        "$2b$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0!",
        "$6$saltsaltsalt$PMWE8DTlam1JU37Piyk43bHcMxTJq6sgu5DKB0/tGPjanN35j"
        "cY68QkpDfPFUGPWX5uCxIQkSPzMmqEiVNgts. trailing",
        "$y$",
        "",
    };

    for (size_t i = 0; i < sizeof(hashes) / sizeof(hashes[0]); i++) {
        char text[512];

        snprintf(text, sizeof(text), "user:%s\n", hashes[i]);
        cr_expect(strncmp(load_fail(text, 1), "malformed hash", 14) == 0 ||
                      strncmp(load_fail(text, 1), "unsupported hash", 16) ==
                          0,
                  "\"%s\": %s", hashes[i], load_fail(text, 1));
    }
}

Test(auth_users, bad_lines)
{
    cr_expect_str_eq(load_fail("user " HASH_SHA512 "\n", 1),
                     "expected user:hash");
    cr_expect_str_eq(load_fail("# c\n:" HASH_SHA512 "\n", 2),
                     "empty user name");
    cr_expect_str_eq(load_fail("a:" HASH_SHA512 "\na:" HASH_YESCRYPT "\n",
                               2),
                     "duplicate user name");
    cr_expect_str_eq(load_fail("u\x01:" HASH_SHA512 "\n", 1),
                     "control character in the user name");
}

Test(auth_users, long_user_name)
{
    char text[512];

    memset(text, 'u', 256);
    snprintf(text + 256, sizeof(text) - 256, ":%s\n", HASH_SHA512);
    cr_expect_str_eq(load_fail(text, 1), "user name longer than 255 bytes");
    memmove(text + 1, text + 2, strlen(text + 2) + 1);
    auth_users_free(load_ok(text));
}

Test(auth_users, empty_or_missing_file)
{
    struct auth_users *users = NULL;
    char err[512];

    write_users("# nobody yet\n\n");
    cr_assert_eq(auth_users_load(path, &users, err, sizeof(err)), -1);
    cr_assert(strstr(err, "no users in the file") != NULL, "%s", err);
    unlink(path);
    cr_assert_eq(auth_users_load(path, &users, err, sizeof(err)), -1);
    cr_assert(strstr(err, "cannot open: No such file or directory") != NULL,
              "%s", err);
}
