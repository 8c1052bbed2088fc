/* The AUTH command (RFC 4954): the exchange of 334 challenges and client
 * responses around a SASL mechanism, and the reply once the owner has
 * checked the credentials. */
#include <stdio.h>
#include <string.h>

#include "proto/smtp_chars.h"
#include "proto/smtp_server_internal.h"

/* auth_built reports whether AUTH exists for this session at all. */
static bool auth_built(const struct smtp_server *s)
{
    return s->hooks->auth != NULL &&
           (s->opts->disabled_extensions & SMTP_EXT_AUTH) == 0;
}

bool smtp_auth_offered(const struct smtp_server *s)
{
    return auth_built(s) && (s->tls_active || s->opts->auth_plaintext);
}

static void auth_end_exchange(struct smtp_server *s)
{
    smtp_sasl_clear(&s->sasl);
    s->state = SMTP_STATE_READY;
}

/* auth_check hands the decoded credentials to the owner. The password is
 * wiped when the hook returns; the user name stays until the answer. */
static void auth_check(struct smtp_server *s)
{
    s->state = SMTP_STATE_AUTH_CHECK;
    explicit_bzero(s->auth_user, sizeof(s->auth_user));
    memcpy(s->auth_user, s->sasl.user, sizeof(s->auth_user));
    s->hooks->auth(s->ctx, smtp_sasl_mech_name(s->sasl.mech), s->sasl.user,
                   s->sasl.password);
    explicit_bzero(s->sasl.password, sizeof(s->sasl.password));
}

/* auth_report tells the owner why the exchange failed, while the user
 * name decoded so far is still in s->sasl. */
static void auth_report(struct smtp_server *s, const char *reason)
{
    if (s->hooks->auth_failed != NULL) {
        s->hooks->auth_failed(s->ctx, smtp_sasl_mech_name(s->sasl.mech),
                              s->sasl.user, reason);
    }
}

/* auth_continue replies to one step of the mechanism. */
static void auth_continue(struct smtp_server *s,
                          enum smtp_sasl_result result)
{
    const char *mech = smtp_sasl_mech_name(s->sasl.mech);

    switch (result) {
    case SMTP_SASL_CHALLENGE:
        s->state = SMTP_STATE_AUTH;
        smtp_server_reply(s, "334 %s", s->sasl.challenge);
        return;
    case SMTP_SASL_DONE:
        auth_check(s);
        return;
    case SMTP_SASL_CANCELLED:
        auth_report(s, "cancelled by the client");
        auth_end_exchange(s);
        smtp_server_reject(s, "501 5.0.0 Authentication cancelled");
        return;
    case SMTP_SASL_BAD_BASE64:
        auth_report(s, "invalid base64");
        auth_end_exchange(s);
        smtp_server_reject(s, "501 5.5.2 Error: invalid base64 in the "
                           "authentication response");
        return;
    case SMTP_SASL_MALFORMED:
        auth_report(s, "malformed response");
        auth_end_exchange(s);
        smtp_server_reject(s, "501 5.5.2 Error: malformed %s response: "
                           "user name and password must be 1 to %d bytes "
                           "without control characters", mech,
                           SMTP_SASL_NAME_MAX);
        return;
    case SMTP_SASL_AUTHZID:
        auth_report(s, "authorization identity differs from the user name");
        auth_end_exchange(s);
        smtp_server_reject(s, "535 5.7.8 Error: the authorization "
                           "identity must be empty or equal to the user "
                           "name");
        return;
    }
}

/* auth_refused replies when the session may not start AUTH now. Returns
 * true when it did. */
static bool auth_refused(struct smtp_server *s)
{
    if (!auth_built(s)) {
        smtp_server_reject(s, "502 5.5.1 Error: command not implemented");
    } else if (s->state == SMTP_STATE_CONNECTED || !s->esmtp) {
        smtp_server_reject(s, "503 5.5.1 Error: send EHLO first");
    } else if (s->authenticated) {
        smtp_server_reject(s, "503 5.5.1 Error: already authenticated");
    } else if (s->state != SMTP_STATE_READY) {
        smtp_server_reject(s, "503 5.5.1 Error: AUTH is not allowed "
                           "during a mail transaction");
    } else if (!smtp_auth_offered(s)) {
        smtp_server_reject(s, "538 5.7.11 Encryption required for "
                           "requested authentication mechanism");
    } else {
        return false;
    }
    return true;
}

void smtp_auth_command(struct smtp_server *s, const char *text, size_t len)
{
    enum smtp_sasl_mech mech;
    const char *initial = NULL;
    size_t mech_len = 0;
    size_t initial_len = 0;

    if (auth_refused(s)) {
        return;
    }
    while (mech_len < len && !smtp_char_is(text[mech_len], SMTP_CHAR_BLANK)) {
        mech_len++;
    }
    if (mech_len < len) {
        initial = text + mech_len;
        while (smtp_char_is(*initial, SMTP_CHAR_BLANK)) {
            initial++;
        }
        initial_len = (size_t)(text + len - initial);
    }
    if (mech_len == 0 ||
        (initial != NULL && memchr(initial, ' ', initial_len) != NULL) ||
        (initial != NULL && memchr(initial, '\t', initial_len) != NULL)) {
        smtp_server_reject(s, "501 5.5.4 Syntax: AUTH mechanism "
                           "[initial-response]");
        return;
    }
    if (smtp_sasl_mech_parse(text, mech_len, &mech) < 0) {
        smtp_server_reject(s, "504 5.5.4 Error: unrecognized "
                           "authentication mechanism; use PLAIN or LOGIN");
        return;
    }
    auth_continue(s, smtp_sasl_start(&s->sasl, mech, initial, initial_len));
}

void smtp_auth_response(struct smtp_server *s, const char *line, size_t len)
{
    /* Like a command line, a response must end with CRLF and hold no NUL
     * or CR; base64 has neither, so check_line's replies are not
     * needed. */
    if (len < 2 || line[len - 2] != '\r') {
        auth_continue(s, SMTP_SASL_BAD_BASE64);
        return;
    }
    auth_continue(s, smtp_sasl_step(&s->sasl, line, len - 2));
}

void smtp_server_auth_done(struct smtp_server *s, bool success,
                           const char *reply)
{
    if (s->state != SMTP_STATE_AUTH_CHECK) {
        return;
    }
    auth_end_exchange(s);
    if (success) {
        s->authenticated = true;
    } else {
        explicit_bzero(s->auth_user, sizeof(s->auth_user));
    }
    if (!s->closing) {
        if (reply != NULL) {
            smtp_server_hook_reply(s, reply);
        } else if (success) {
            smtp_server_reply(s, "235 2.7.0 Authentication successful");
        } else {
            smtp_server_reply(s, "535 5.7.8 Error: authentication "
                              "credentials invalid");
        }
    }
    smtp_server_resume(s);
}

const char *smtp_server_auth_user(const struct smtp_server *s)
{
    return s->authenticated ? s->auth_user : NULL;
}
