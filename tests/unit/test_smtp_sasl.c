/* Tests for SASL PLAIN and LOGIN (proto/smtp_sasl.h) and for the AUTH
 * exchange of the server session (proto/smtp_server.h). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp_outq.h"
#include "proto/smtp_sasl.h"
#include "proto/smtp_server.h"

static long decode(const char *text, char *out, size_t size)
{
    return smtp_base64_decode(text, strlen(text), (unsigned char *)out,
                              size);
}

Test(base64, decodes_canonical_text)
{
    char out[32];

    cr_assert_eq(decode("", out, sizeof(out)), 0);
    cr_assert_eq(decode("YQ==", out, sizeof(out)), 1);
    cr_assert_eq(out[0], 'a');
    cr_assert_eq(decode("YWI=", out, sizeof(out)), 2);
    cr_assert_eq(memcmp(out, "ab", 2), 0);
    cr_assert_eq(decode("YWJj", out, sizeof(out)), 3);
    cr_assert_eq(memcmp(out, "abc", 3), 0);
    cr_assert_eq(decode("+/+/", out, sizeof(out)), 3);
}

Test(base64, encodes_with_padding)
{
    static const unsigned char plain[] = "\0alice\0pw";
    char out[32];
    char small[4];

    cr_assert_eq(smtp_base64_encode((const unsigned char *)"", 0, out,
                                    sizeof(out)), 0);
    cr_assert_str_eq(out, "");
    cr_assert_eq(smtp_base64_encode((const unsigned char *)"a", 1, out,
                                    sizeof(out)), 4);
    cr_assert_str_eq(out, "YQ==");
    cr_assert_eq(smtp_base64_encode((const unsigned char *)"ab", 2, out,
                                    sizeof(out)), 4);
    cr_assert_str_eq(out, "YWI=");
    cr_assert_eq(smtp_base64_encode(plain, sizeof(plain) - 1, out,
                                    sizeof(out)), 12);
    cr_assert_str_eq(out, "AGFsaWNlAHB3");
    cr_assert_eq(smtp_base64_encode((const unsigned char *)"abc", 3, small,
                                    sizeof(small)), 0);
}

Test(base64, rejects_bad_text)
{
    const char *bad[] = {
        "YQ",        /* no padding */
        "YQ=",       /* short padding */
        "Y===",      /* three pad characters */
        "YQ==YQ==",  /* padding inside */
        "YR==",      /* bits left over after the last byte */
        "YWJ=",      /* the same with one pad character */
        "YW J",      /* blank */
        "YWJ\n",     /* line break */
        "YW-j",      /* base64url alphabet */
        "=YWJ",      /* padding first */
        "*",
    };
    char out[32];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_expect_eq(decode(bad[i], out, sizeof(out)), -1, "\"%s\"",
                     bad[i]);
    }
}

Test(base64, rejects_output_overflow)
{
    char out[2];

    cr_assert_eq(decode("YWJj", out, sizeof(out)), -1);
}

Test(sasl, mechanism_names)
{
    enum smtp_sasl_mech mech;

    cr_assert_eq(smtp_sasl_mech_parse("plain", 5, &mech), 0);
    cr_assert_eq(mech, SMTP_SASL_PLAIN);
    cr_assert_eq(smtp_sasl_mech_parse("LOGIN", 5, &mech), 0);
    cr_assert_eq(mech, SMTP_SASL_LOGIN);
    cr_assert_eq(smtp_sasl_mech_parse("CRAM-MD5", 8, &mech), -1);
    cr_assert_eq(smtp_sasl_mech_parse("PLAINX", 6, &mech), -1);
    cr_assert_eq(smtp_sasl_mech_parse("", 0, &mech), -1);
}

static enum smtp_sasl_result start(struct smtp_sasl *sasl,
                                   enum smtp_sasl_mech mech,
                                   const char *initial)
{
    return smtp_sasl_start(sasl, mech, initial,
                           initial != NULL ? strlen(initial) : 0);
}

static enum smtp_sasl_result step(struct smtp_sasl *sasl, const char *line)
{
    return smtp_sasl_step(sasl, line, strlen(line));
}

/* base64 of "\0user\0secret" and its variants. */
#define PLAIN_USER "AHVzZXIAc2VjcmV0"
#define PLAIN_AUTHZID_SAME "dXNlcgB1c2VyAHNlY3JldA==" /* user\0user\0secret */
#define PLAIN_AUTHZID_OTHER "YWRtaW4AdXNlcgBzZWNyZXQ=" /* admin\0user\0... */
#define PLAIN_ONE_NUL "dXNlcgBzZWNyZXQ="               /* user\0secret */
#define PLAIN_NO_USER "AABzZWNyZXQ="                   /* \0\0secret */
#define PLAIN_NO_PASSWORD "AHVzZXIA"                   /* \0user\0 */
#define PLAIN_THREE_NULS "AHVzZXIAc2VjcmV0AA=="        /* ...secret\0 */
#define PLAIN_CR_IN_USER "AHUNcgBzZWNyZXQ="            /* \0u\rr\0secret */

Test(sasl, plain_initial_response)
{
    struct smtp_sasl sasl;

    cr_assert_eq(start(&sasl, SMTP_SASL_PLAIN, PLAIN_USER), SMTP_SASL_DONE);
    cr_assert_str_eq(sasl.user, "user");
    cr_assert_str_eq(sasl.password, "secret");
    smtp_sasl_clear(&sasl);
    cr_assert_str_eq(sasl.password, "");
}

Test(sasl, plain_after_empty_challenge)
{
    struct smtp_sasl sasl;

    cr_assert_eq(start(&sasl, SMTP_SASL_PLAIN, NULL), SMTP_SASL_CHALLENGE);
    cr_assert_str_eq(sasl.challenge, "");
    cr_assert_eq(step(&sasl, PLAIN_USER), SMTP_SASL_DONE);
    cr_assert_str_eq(sasl.user, "user");
    cr_assert_str_eq(sasl.password, "secret");
}

Test(sasl, plain_authzid)
{
    struct smtp_sasl sasl;

    cr_assert_eq(start(&sasl, SMTP_SASL_PLAIN, PLAIN_AUTHZID_SAME),
                 SMTP_SASL_DONE);
    cr_assert_str_eq(sasl.user, "user");
    cr_assert_eq(start(&sasl, SMTP_SASL_PLAIN, PLAIN_AUTHZID_OTHER),
                 SMTP_SASL_AUTHZID);
}

Test(sasl, plain_malformed_messages)
{
    const char *bad[] = {PLAIN_ONE_NUL, PLAIN_NO_USER, PLAIN_NO_PASSWORD,
                         PLAIN_THREE_NULS, PLAIN_CR_IN_USER, "="};
    struct smtp_sasl sasl;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_expect_eq(start(&sasl, SMTP_SASL_PLAIN, bad[i]),
                     SMTP_SASL_MALFORMED, "%s", bad[i]);
    }
}

Test(sasl, plain_bad_base64)
{
    struct smtp_sasl sasl;

    cr_assert_eq(start(&sasl, SMTP_SASL_PLAIN, "AHVzZXIAc2VjcmV0="),
                 SMTP_SASL_BAD_BASE64);
    cr_assert_eq(start(&sasl, SMTP_SASL_PLAIN, NULL), SMTP_SASL_CHALLENGE);
    cr_assert_eq(step(&sasl, "not base64!"), SMTP_SASL_BAD_BASE64);
}

/* The longest user name and password decode; one byte more is
 * malformed. */
Test(sasl, plain_length_limits)
{
    unsigned char msg[2 * SMTP_SASL_NAME_MAX + 4];
    char text[4 * sizeof(msg)];
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    struct smtp_sasl sasl;

    for (size_t user = SMTP_SASL_NAME_MAX; user <= SMTP_SASL_NAME_MAX + 1;
         user++) {
        size_t len = 0;
        size_t out = 0;

        msg[len++] = 0;
        memset(msg + len, 'u', user);
        len += user;
        msg[len++] = 0;
        memset(msg + len, 'p', SMTP_SASL_NAME_MAX);
        len += SMTP_SASL_NAME_MAX;
        for (size_t i = 0; i < len; i += 3) {
            unsigned long bits = (unsigned long)msg[i] << 16;

            bits |= i + 1 < len ? (unsigned long)msg[i + 1] << 8 : 0;
            bits |= i + 2 < len ? msg[i + 2] : 0;
            text[out++] = alphabet[bits >> 18 & 63];
            text[out++] = alphabet[bits >> 12 & 63];
            text[out++] = i + 1 < len ? alphabet[bits >> 6 & 63] : '=';
            text[out++] = i + 2 < len ? alphabet[bits & 63] : '=';
        }
        text[out] = '\0';
        cr_expect_eq(start(&sasl, SMTP_SASL_PLAIN, text),
                     user == SMTP_SASL_NAME_MAX ? SMTP_SASL_DONE
                                                : SMTP_SASL_MALFORMED,
                     "user of %zu bytes", user);
    }
}

Test(sasl, login_two_prompts)
{
    struct smtp_sasl sasl;

    cr_assert_eq(start(&sasl, SMTP_SASL_LOGIN, NULL), SMTP_SASL_CHALLENGE);
    cr_assert_str_eq(sasl.challenge, "VXNlcm5hbWU6");
    cr_assert_eq(step(&sasl, "dXNlcg=="), SMTP_SASL_CHALLENGE);
    cr_assert_str_eq(sasl.challenge, "UGFzc3dvcmQ6");
    cr_assert_eq(step(&sasl, "c2VjcmV0"), SMTP_SASL_DONE);
    cr_assert_str_eq(sasl.user, "user");
    cr_assert_str_eq(sasl.password, "secret");
}

Test(sasl, login_initial_response_is_user)
{
    struct smtp_sasl sasl;

    cr_assert_eq(start(&sasl, SMTP_SASL_LOGIN, "dXNlcg=="),
                 SMTP_SASL_CHALLENGE);
    cr_assert_str_eq(sasl.challenge, "UGFzc3dvcmQ6");
    cr_assert_eq(step(&sasl, "c2VjcmV0"), SMTP_SASL_DONE);
    cr_assert_str_eq(sasl.user, "user");
}

Test(sasl, login_empty_or_nul_names)
{
    struct smtp_sasl sasl;

    cr_assert_eq(start(&sasl, SMTP_SASL_LOGIN, "="), SMTP_SASL_MALFORMED);
    cr_assert_eq(start(&sasl, SMTP_SASL_LOGIN, NULL), SMTP_SASL_CHALLENGE);
    cr_assert_eq(step(&sasl, ""), SMTP_SASL_MALFORMED);
    cr_assert_eq(start(&sasl, SMTP_SASL_LOGIN, NULL), SMTP_SASL_CHALLENGE);
    cr_assert_eq(step(&sasl, "dQBy"), SMTP_SASL_MALFORMED); /* u\0r */
    cr_assert_eq(start(&sasl, SMTP_SASL_LOGIN, NULL), SMTP_SASL_CHALLENGE);
    cr_assert_eq(step(&sasl, "dXNlcg=="), SMTP_SASL_CHALLENGE);
    cr_assert_eq(step(&sasl, "="), SMTP_SASL_MALFORMED);
}

Test(sasl, cancel_at_any_step)
{
    struct smtp_sasl sasl;

    cr_assert_eq(start(&sasl, SMTP_SASL_PLAIN, NULL), SMTP_SASL_CHALLENGE);
    cr_assert_eq(step(&sasl, "*"), SMTP_SASL_CANCELLED);
    cr_assert_eq(start(&sasl, SMTP_SASL_LOGIN, NULL), SMTP_SASL_CHALLENGE);
    cr_assert_eq(step(&sasl, "dXNlcg=="), SMTP_SASL_CHALLENGE);
    cr_assert_eq(step(&sasl, "*"), SMTP_SASL_CANCELLED);
}

/* ---- The AUTH exchange of a server session ---------------------------- */

/* The hook accepts user:secret. With defer set it leaves the answer to
 * the test. */
struct auth_recorder {
    struct smtp_server *server;
    char user[SMTP_SASL_NAME_MAX + 1];
    char mechanism[8];
    int calls;
    bool defer;
    char mail_auth[SMTP_AUTH_PARAM_MAX + 1]; /* AUTH= of the last MAIL */
};

static void hook_auth(void *ctx, const char *mechanism, const char *user,
                      const char *password)
{
    struct auth_recorder *r = ctx;

    r->calls++;
    snprintf(r->user, sizeof(r->user), "%s", user);
    snprintf(r->mechanism, sizeof(r->mechanism), "%s", mechanism);
    if (!r->defer) {
        bool ok = strcmp(user, "user") == 0 && strcmp(password, "secret") == 0;

        smtp_server_auth_done(r->server, ok, NULL);
    }
}

static int hook_mail(void *ctx, const struct smtp_path *from,
                     const struct smtp_mail_params *params, char *reply)
{
    struct auth_recorder *r = ctx;

    (void)from;
    (void)reply;
    snprintf(r->mail_auth, sizeof(r->mail_auth), "%s", params->auth);
    return 0;
}

static const struct smtp_server_hooks auth_hooks = {.mail = hook_mail,
                                                    .auth = hook_auth};

struct auth_session {
    struct smtp_server_options opts;
    struct auth_recorder rec;
    struct smtp_server *server;
};

static void auth_session_new(struct auth_session *a, bool plaintext)
{
    memset(a, 0, sizeof(*a));
    a->opts.hostname = "mx.test";
    a->opts.max_message_size = 1000;
    a->opts.auth_plaintext = plaintext;
    a->server = smtp_server_new(&a->opts, &auth_hooks, &a->rec);
    cr_assert_not_null(a->server);
    a->rec.server = a->server;
}

/* feed sends text and returns the replies it got, joined by '|' without
 * CRLFs. The result is static, valid until the next call. */
static const char *feed(struct auth_session *a, const char *text)
{
    static char replies[8192];
    struct smtp_outq *out = smtp_server_output(a->server);
    size_t used = 0;

    smtp_server_feed(a->server, text, strlen(text));
    while (out->len > 0) {
        struct iovec iov[8];
        int count = smtp_outq_peek(out, iov, 8);
        size_t taken = 0;

        for (int i = 0; i < count; i++) {
            cr_assert_lt(used + iov[i].iov_len, sizeof(replies));
            memcpy(replies + used, iov[i].iov_base, iov[i].iov_len);
            used += iov[i].iov_len;
            taken += iov[i].iov_len;
        }
        smtp_outq_consume(out, taken);
    }
    replies[used] = '\0';
    for (char *p = replies; (p = strstr(p, "\r\n")) != NULL;) {
        memmove(p + 1, p + 2, strlen(p + 2) + 1);
        *p = p[1] == '\0' ? '\0' : '|';
    }
    return replies;
}

Test(auth_session, ehlo_offers_auth_with_plaintext)
{
    struct auth_session a;

    auth_session_new(&a, true);
    cr_assert(strstr(feed(&a, "EHLO c.test\r\n"), "|250-AUTH PLAIN LOGIN|")
              != NULL);
    smtp_server_free(a.server);
}

Test(auth_session, plaintext_off_gives_538)
{
    struct auth_session a;

    auth_session_new(&a, false);
    cr_assert_null(strstr(feed(&a, "EHLO c.test\r\n"), "AUTH"));
    cr_assert_str_eq(feed(&a, "AUTH PLAIN " PLAIN_USER "\r\n"),
                     "538 5.7.11 Encryption required for requested "
                     "authentication mechanism");
    cr_assert_eq(a.rec.calls, 0);

    /* Once the session runs over TLS the same client may authenticate. */
    smtp_server_tls_started(a.server);
    cr_assert(strstr(feed(&a, "EHLO c.test\r\n"), "250-AUTH PLAIN LOGIN")
              != NULL);
    cr_assert_str_eq(feed(&a, "AUTH PLAIN " PLAIN_USER "\r\n"),
                     "235 2.7.0 Authentication successful");
    smtp_server_free(a.server);
}

Test(auth_session, plain_and_second_auth)
{
    struct auth_session a;

    auth_session_new(&a, true);
    feed(&a, "EHLO c.test\r\n");
    cr_assert_null(smtp_server_auth_user(a.server));
    cr_assert_str_eq(feed(&a, "AUTH PLAIN " PLAIN_USER "\r\n"),
                     "235 2.7.0 Authentication successful");
    cr_assert_str_eq(a.rec.mechanism, "PLAIN");
    cr_assert_str_eq(smtp_server_auth_user(a.server), "user");
    cr_assert_str_eq(feed(&a, "AUTH PLAIN " PLAIN_USER "\r\n"),
                     "503 5.5.1 Error: already authenticated");
    smtp_server_free(a.server);
}

Test(auth_session, login_exchange)
{
    struct auth_session a;

    auth_session_new(&a, true);
    feed(&a, "EHLO c.test\r\n");
    cr_assert_str_eq(feed(&a, "AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6");
    /* A line that looks like a command is a response here. */
    cr_assert_str_eq(feed(&a, "MAIL FROM:<a@b.test>\r\n"),
                     "501 5.5.2 Error: invalid base64 in the "
                     "authentication response");
    cr_assert_str_eq(feed(&a, "AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6");
    cr_assert_str_eq(feed(&a, "dXNlcg==\r\n"), "334 UGFzc3dvcmQ6");
    cr_assert_str_eq(feed(&a, "d3Jvbmc=\r\n"),
                     "535 5.7.8 Error: authentication credentials invalid");
    cr_assert_null(smtp_server_auth_user(a.server));
    cr_assert_str_eq(feed(&a, "AUTH login dXNlcg==\r\n"),
                     "334 UGFzc3dvcmQ6");
    cr_assert_str_eq(feed(&a, "c2VjcmV0\r\n"),
                     "235 2.7.0 Authentication successful");
    cr_assert_str_eq(a.rec.mechanism, "LOGIN");
    smtp_server_free(a.server);
}

Test(auth_session, sequence_errors)
{
    struct auth_session a;

    auth_session_new(&a, true);
    cr_assert_str_eq(feed(&a, "AUTH PLAIN " PLAIN_USER "\r\n"),
                     "503 5.5.1 Error: send EHLO first");
    feed(&a, "HELO c.test\r\n");
    cr_assert_str_eq(feed(&a, "AUTH PLAIN " PLAIN_USER "\r\n"),
                     "503 5.5.1 Error: send EHLO first");
    feed(&a, "EHLO c.test\r\n");
    feed(&a, "MAIL FROM:<a@b.test>\r\n");
    cr_assert_str_eq(feed(&a, "AUTH PLAIN " PLAIN_USER "\r\n"),
                     "503 5.5.1 Error: AUTH is not allowed during a mail "
                     "transaction");
    feed(&a, "RSET\r\n");
    cr_assert_str_eq(feed(&a, "AUTH CRAM-MD5\r\n"),
                     "504 5.5.4 Error: unrecognized authentication "
                     "mechanism; use PLAIN or LOGIN");
    cr_assert_str_eq(feed(&a, "AUTH PLAIN a b\r\n"),
                     "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
    cr_assert_eq(a.rec.calls, 0);
    smtp_server_free(a.server);
}

Test(auth_session, cancel_bad_base64_and_empty)
{
    struct auth_session a;

    auth_session_new(&a, true);
    feed(&a, "EHLO c.test\r\n");
    cr_assert_str_eq(feed(&a, "AUTH PLAIN\r\n"), "334 ");
    cr_assert_str_eq(feed(&a, "*\r\n"), "501 5.0.0 Authentication cancelled");
    cr_assert_str_eq(feed(&a, "AUTH PLAIN AHVzZXI=c2Vj\r\n"),
                     "501 5.5.2 Error: invalid base64 in the "
                     "authentication response");
    cr_assert(strncmp(feed(&a, "AUTH PLAIN =\r\n"),
                      "501 5.5.2 Error: malformed PLAIN response", 41) == 0);
    cr_assert_str_eq(feed(&a, "AUTH PLAIN " PLAIN_AUTHZID_OTHER "\r\n"),
                     "535 5.7.8 Error: the authorization identity must be "
                     "empty or equal to the user name");
    cr_assert_eq(a.rec.calls, 0);
    cr_assert_str_eq(feed(&a, "NOOP\r\n"), "250 2.0.0 Ok");
    smtp_server_free(a.server);
}

Test(auth_session, deferred_answer_holds_input)
{
    struct auth_session a;

    auth_session_new(&a, true);
    a.rec.defer = true;
    feed(&a, "EHLO c.test\r\n");
    /* The NOOP pipelined after the credentials waits for the answer. */
    cr_assert_str_eq(feed(&a, "AUTH PLAIN " PLAIN_USER "\r\nNOOP\r\n"), "");
    cr_assert_eq(a.rec.calls, 1);
    cr_assert_str_eq(a.rec.user, "user");
    smtp_server_auth_done(a.server, false,
                          "421 4.7.0 mx.test Error: too many failed "
                          "authentication attempts");
    cr_assert_str_eq(feed(&a, ""), "421 4.7.0 mx.test Error: too many "
                     "failed authentication attempts");
    cr_assert(smtp_server_closing(a.server));
    smtp_server_free(a.server);
}

Test(auth_session, deferred_success_then_input)
{
    struct auth_session a;

    auth_session_new(&a, true);
    a.rec.defer = true;
    feed(&a, "EHLO c.test\r\n");
    feed(&a, "AUTH PLAIN " PLAIN_USER "\r\nNOOP\r\n");
    smtp_server_auth_done(a.server, true, NULL);
    cr_assert_str_eq(feed(&a, ""), "235 2.7.0 Authentication successful|"
                     "250 2.0.0 Ok");
    smtp_server_free(a.server);
}

Test(auth_session, long_response_line)
{
    struct auth_session a;
    size_t len = 13000;
    char *line = malloc(len + 3);

    cr_assert_not_null(line);
    memset(line, 'A', len);
    memcpy(line + len, "\r\n", 3);
    auth_session_new(&a, true);
    feed(&a, "EHLO c.test\r\n");
    cr_assert_str_eq(feed(&a, "AUTH PLAIN\r\n"), "334 ");
    cr_assert_str_eq(feed(&a, line), "500 5.5.6 Error: line too long");
    /* The exchange ended, so the next line is a command again. */
    cr_assert_str_eq(feed(&a, "NOOP\r\n"), "250 2.0.0 Ok");
    /* 12 KiB of valid base64 fits the line but not the mechanism. */
    line[12000] = '\0';
    strcat(line, "\r\n");
    cr_assert_str_eq(feed(&a, "AUTH PLAIN\r\n"), "334 ");
    cr_assert(strncmp(feed(&a, line), "501 5.5.2 Error: malformed", 26) ==
              0);
    free(line);
    smtp_server_free(a.server);
}

Test(auth_session, no_hook_gives_502)
{
    struct smtp_server_options opts = {.hostname = "mx.test",
                                       .auth_plaintext = true};
    static const struct smtp_server_hooks none = {0};
    struct auth_session a;

    memset(&a, 0, sizeof(a));
    a.server = smtp_server_new(&opts, &none, NULL);
    cr_assert_null(strstr(feed(&a, "EHLO c.test\r\n"), "AUTH"));
    cr_assert_str_eq(feed(&a, "AUTH PLAIN " PLAIN_USER "\r\n"),
                     "502 5.5.1 Error: command not implemented");
    smtp_server_free(a.server);
}

Test(auth_session, mail_auth_parameter)
{
    struct auth_session a;

    auth_session_new(&a, true);
    feed(&a, "EHLO c.test\r\n");

    /* Before AUTH the parameter is accepted but counts as <>. */
    cr_assert_str_eq(feed(&a, "MAIL FROM:<a@b.test> AUTH=a@b.test\r\n"),
                     "250 2.1.0 Ok");
    cr_assert_str_eq(a.rec.mail_auth, "<>");
    feed(&a, "RSET\r\n");
    feed(&a, "AUTH PLAIN " PLAIN_USER "\r\n");

    cr_assert_str_eq(feed(&a, "MAIL FROM:<a@b.test> AUTH=a+2Bx@b.test\r\n"),
                     "250 2.1.0 Ok");
    cr_assert_str_eq(a.rec.mail_auth, "a+x@b.test");
    feed(&a, "RSET\r\n");
    cr_assert_str_eq(feed(&a, "MAIL FROM:<a@b.test> AUTH=<>\r\n"),
                     "250 2.1.0 Ok");
    cr_assert_str_eq(a.rec.mail_auth, "<>");
    feed(&a, "RSET\r\n");
    cr_assert_str_eq(feed(&a, "MAIL FROM:<a@b.test>\r\n"), "250 2.1.0 Ok");
    cr_assert_str_eq(a.rec.mail_auth, "");
    feed(&a, "RSET\r\n");
    cr_assert(strncmp(feed(&a, "MAIL FROM:<a@b.test> AUTH=not-a-mailbox\r\n"),
                      "501 5.5.4 Error: invalid MAIL parameter "
                      "AUTH=not-a-mailbox: expected <>", 68) == 0);
    cr_assert(strncmp(feed(&a, "MAIL FROM:<a@b.test> AUTH=a+2@b.test\r\n"),
                      "501 5.5.4 ", 10) == 0);
    smtp_server_free(a.server);
}

Test(auth_session, mail_auth_not_offered)
{
    struct auth_session a;

    auth_session_new(&a, false);
    feed(&a, "EHLO c.test\r\n");
    cr_assert_str_eq(feed(&a, "MAIL FROM:<a@b.test> AUTH=<>\r\n"),
                     "555 5.5.4 Error: MAIL parameter not offered: AUTH=<>");
    smtp_server_free(a.server);
}
