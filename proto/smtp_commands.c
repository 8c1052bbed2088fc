/* The SMTP command table and its handlers. A command is one table row:
 * verb, the states that allow it, the grammar of its argument and the
 * handler that runs once the argument parsed. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proto/smtp_chars.h"
#include "proto/smtp_params.h"
#include "proto/smtp_server_internal.h"

enum smtp_grammar {
    SMTP_ARGS_NONE,   /* nothing after the verb */
    SMTP_ARGS_TEXT,   /* optional free text */
    SMTP_ARGS_DOMAIN, /* a domain or an address literal */
    SMTP_ARGS_PATH,   /* keyword, path, then ESMTP parameters */
};

/* smtp_args: the parsed argument, pointing into the command line. */
struct smtp_args {
    const char *text;   /* the argument, blanks around it trimmed */
    size_t len;
    struct smtp_path path;  /* SMTP_ARGS_PATH only */
    bool path_utf8;         /* the path has UTF-8, allowed if SMTPUTF8 */
    struct smtp_param_values params; /* SMTP_ARGS_PATH only */
};

struct smtp_command {
    const char *verb;
    unsigned states;          /* mask of smtp_server_state */
    enum smtp_grammar grammar;
    const char *keyword;      /* SMTP_ARGS_PATH: "FROM:" or "TO:" */
    const char *path_status;  /* enhanced code for a bad path */
    const char *path_role;    /* "sender" or "recipient" */
    enum smtp_param_verb params; /* ESMTP parameters accepted after the
                                  * path (smtp_params.c) */
    const char *usage;        /* argument syntax for a 501 reply */
    void (*handler)(struct smtp_server *s, const struct smtp_args *args);
};

static void command_ehlo(struct smtp_server *s, const struct smtp_args *a);
static void command_helo(struct smtp_server *s, const struct smtp_args *a);
static void command_mail(struct smtp_server *s, const struct smtp_args *a);
static void command_rcpt(struct smtp_server *s, const struct smtp_args *a);
static void command_data(struct smtp_server *s, const struct smtp_args *a);
static void command_bdat(struct smtp_server *s, const struct smtp_args *a);
static void command_rset(struct smtp_server *s, const struct smtp_args *a);
static void command_noop(struct smtp_server *s, const struct smtp_args *a);
static void command_quit(struct smtp_server *s, const struct smtp_args *a);
static void command_vrfy(struct smtp_server *s, const struct smtp_args *a);
static void command_help(struct smtp_server *s, const struct smtp_args *a);
static void command_auth(struct smtp_server *s, const struct smtp_args *a);
static void command_starttls(struct smtp_server *s,
                             const struct smtp_args *a);
static void command_not_implemented(struct smtp_server *s,
                                    const struct smtp_args *a);

static const struct smtp_command smtp_commands[] = {
    {"EHLO", SMTP_STATE_COMMANDS, SMTP_ARGS_DOMAIN, NULL, NULL, NULL,
     SMTP_PARAM_NONE, "EHLO hostname", command_ehlo},
    {"HELO", SMTP_STATE_COMMANDS, SMTP_ARGS_DOMAIN, NULL, NULL, NULL,
     SMTP_PARAM_NONE, "HELO hostname", command_helo},
    {"MAIL", SMTP_STATE_READY, SMTP_ARGS_PATH, "FROM:", "5.1.7", "sender",
     SMTP_PARAM_MAIL, "MAIL FROM:<address>", command_mail},
    {"RCPT", SMTP_STATE_MAIL | SMTP_STATE_RCPT, SMTP_ARGS_PATH, "TO:",
     "5.1.3", "recipient", SMTP_PARAM_RCPT, "RCPT TO:<address>",
     command_rcpt},
    {"DATA", SMTP_STATE_RCPT, SMTP_ARGS_NONE, NULL, NULL, NULL,
     SMTP_PARAM_NONE, "DATA", command_data},
    /* BDAT is allowed in every command state, because its chunk must be
     * read even when the command is out of sequence. The handler checks
     * the state. */
    {"BDAT", SMTP_STATE_COMMANDS, SMTP_ARGS_TEXT, NULL, NULL, NULL,
     SMTP_PARAM_NONE, "BDAT chunk-size [LAST]", command_bdat},
    {"RSET", SMTP_STATE_COMMANDS, SMTP_ARGS_NONE, NULL, NULL, NULL,
     SMTP_PARAM_NONE, "RSET", command_rset},
    {"NOOP", SMTP_STATE_COMMANDS, SMTP_ARGS_TEXT, NULL, NULL, NULL,
     SMTP_PARAM_NONE, "NOOP", command_noop},
    {"QUIT", SMTP_STATE_COMMANDS, SMTP_ARGS_NONE, NULL, NULL, NULL,
     SMTP_PARAM_NONE, "QUIT", command_quit},
    {"VRFY", SMTP_STATE_COMMANDS, SMTP_ARGS_TEXT, NULL, NULL, NULL,
     SMTP_PARAM_NONE, "VRFY address", command_vrfy},
    {"HELP", SMTP_STATE_COMMANDS, SMTP_ARGS_TEXT, NULL, NULL, NULL,
     SMTP_PARAM_NONE, "HELP", command_help},
    /* STARTTLS checks its argument and state itself, so that it gets
     * 502 whenever it is not offered. */
    {"STARTTLS", SMTP_STATE_COMMANDS, SMTP_ARGS_TEXT, NULL, NULL, NULL,
     SMTP_PARAM_NONE, "STARTTLS", command_starttls},
    /* AUTH is allowed in every command state so that its handler can
     * name the reason of a refusal (smtp_auth.c). */
    {"AUTH", SMTP_STATE_COMMANDS, SMTP_ARGS_TEXT, NULL, NULL, NULL,
     SMTP_PARAM_NONE, "AUTH mechanism [initial-response]", command_auth},
    /* Known verbs without an implementation get 502 rather than the 500
     * of an unknown verb. */
    {"EXPN", SMTP_STATE_COMMANDS, SMTP_ARGS_TEXT, NULL, NULL, NULL,
     SMTP_PARAM_NONE, "EXPN list", command_not_implemented},
    {"TURN", SMTP_STATE_COMMANDS, SMTP_ARGS_TEXT, NULL, NULL, NULL,
     SMTP_PARAM_NONE, "TURN", command_not_implemented},
    {"ETRN", SMTP_STATE_COMMANDS, SMTP_ARGS_TEXT, NULL, NULL, NULL,
     SMTP_PARAM_NONE, "ETRN domain", command_not_implemented},
    {"ATRN", SMTP_STATE_COMMANDS, SMTP_ARGS_TEXT, NULL, NULL, NULL,
     SMTP_PARAM_NONE, "ATRN domain", command_not_implemented},
    {"SEND", SMTP_STATE_COMMANDS, SMTP_ARGS_TEXT, NULL, NULL, NULL,
     SMTP_PARAM_NONE, "SEND FROM:<address>", command_not_implemented},
    {"SOML", SMTP_STATE_COMMANDS, SMTP_ARGS_TEXT, NULL, NULL, NULL,
     SMTP_PARAM_NONE, "SOML FROM:<address>", command_not_implemented},
    {"SAML", SMTP_STATE_COMMANDS, SMTP_ARGS_TEXT, NULL, NULL, NULL,
     SMTP_PARAM_NONE, "SAML FROM:<address>", command_not_implemented},
};

#define SMTP_COMMAND_COUNT (sizeof(smtp_commands) / sizeof(smtp_commands[0]))

static const struct smtp_command *command_find(const char *verb, size_t len)
{
    for (size_t i = 0; i < SMTP_COMMAND_COUNT; i++) {
        const struct smtp_command *cmd = &smtp_commands[i];

        if (strlen(cmd->verb) == len &&
            strncasecmp(cmd->verb, verb, len) == 0) {
            return cmd;
        }
    }
    return NULL;
}

static bool smtputf8_offered(const struct smtp_server *s)
{
    return (s->opts->disabled_extensions & SMTP_EXT_SMTPUTF8) == 0;
}

static bool binarymime_offered(unsigned disabled)
{
    return (smtp_extensions_offered(disabled) & SMTP_EXT_BINARYMIME) != 0;
}

static bool starttls_offered(const struct smtp_server *s)
{
    return s->opts->starttls && s->hooks->starttls != NULL &&
           !s->tls_active;
}

static size_t skip_blanks(const char *text, size_t pos, size_t len)
{
    while (pos < len && smtp_char_is(text[pos], SMTP_CHAR_BLANK)) {
        pos++;
    }
    return pos;
}

/* reject_sequence replies 503 to a command sent in a state that does not
 * allow it, naming the step the client skipped. */
static void reject_sequence(struct smtp_server *s,
                            const struct smtp_command *cmd)
{
    if (s->state == SMTP_STATE_CONNECTED) {
        smtp_server_reject(s, "503 5.5.1 Error: send HELO/EHLO first");
    } else if (cmd->states == SMTP_STATE_READY) {
        smtp_server_reject(s, "503 5.5.1 Error: nested %s command",
                           cmd->verb);
    } else if (s->state == SMTP_STATE_READY) {
        smtp_server_reject(s, "503 5.5.1 Error: need MAIL command");
    } else if (s->rcpt_tried) {
        /* A pipelining client sends DATA before it sees its RCPT replies
         * (RFC 2920), so this is no client error to count. */
        smtp_server_reply(s, "554 5.5.1 Error: no valid recipients");
    } else {
        smtp_server_reject(s, "503 5.5.1 Error: need RCPT command");
    }
}

static void reject_path(struct smtp_server *s, const struct smtp_command *cmd,
                        enum smtp_path_result rc)
{
    switch (rc) {
    case SMTP_PATH_TOO_LONG:
        smtp_server_reject(s, "501 %s Error: %s address too long",
                           cmd->path_status, cmd->path_role);
        break;
    case SMTP_PATH_8BIT:
        smtp_server_reject(s, "553 5.6.7 Error: non-ASCII %s address "
                           "needs SMTPUTF8", cmd->path_role);
        break;
    case SMTP_PATH_OK:
    case SMTP_PATH_SYNTAX:
        smtp_server_reject(s, "501 %s Error: bad %s address syntax",
                           cmd->path_status, cmd->path_role);
        break;
    }
}

/* parse_path_args parses "FROM:<path> params" or "TO:<path> params".
 * Returns 0, or -1 after queueing the error reply. */
static int parse_path_args(struct smtp_server *s,
                           const struct smtp_command *cmd,
                           struct smtp_args *args)
{
    size_t keyword_len = strlen(cmd->keyword);
    enum smtp_path_result rc;
    size_t pos;
    size_t end = 0;

    if (args->len < keyword_len ||
        strncasecmp(args->text, cmd->keyword, keyword_len) != 0) {
        smtp_server_reject(s, "501 5.5.4 Syntax: %s", cmd->usage);
        return -1;
    }

    /* RFC 5321 has no blank after the colon, but many clients send one. */
    pos = skip_blanks(args->text, keyword_len, args->len);

    rc = smtp_path_parse(args->text + pos, args->len - pos, s->smtputf8,
                         &args->path, &end);

    /* MAIL FROM comes before the SMTPUTF8 parameter that allows UTF-8 in
     * it, so command_mail() decides once the parameters are parsed. */
    if (rc == SMTP_PATH_8BIT && cmd->handler == command_mail &&
        (smtp_session_offered(s) & SMTP_EXT_SMTPUTF8) != 0) {
        rc = smtp_path_parse(args->text + pos, args->len - pos, true,
                             &args->path, &end);
        args->path_utf8 = true;
    }
    if (rc != SMTP_PATH_OK) {
        reject_path(s, cmd, rc);
        return -1;
    }
    pos += end;
    if (pos < args->len &&
        !smtp_char_is(args->text[pos], SMTP_CHAR_BLANK)) {
        smtp_server_reject(s, "501 5.5.4 Syntax: %s", cmd->usage);
        return -1;
    }
    pos = skip_blanks(args->text, pos, args->len);
    return smtp_params_parse(s, cmd->params, args->text + pos,
                             args->len - pos, &args->params);
}

/* parse_args checks the argument against the command's grammar. Returns 0,
 * or -1 after queueing the error reply. */
static int parse_args(struct smtp_server *s, const struct smtp_command *cmd,
                      struct smtp_args *args)
{
    switch (cmd->grammar) {
    case SMTP_ARGS_NONE:
        if (args->len != 0) {
            smtp_server_reject(s, "501 5.5.4 Syntax: %s", cmd->usage);
            return -1;
        }
        return 0;
    case SMTP_ARGS_TEXT:
        return 0;
    case SMTP_ARGS_DOMAIN:
        /* RFC 6531: with SMTPUTF8 offered, the EHLO name
         * may hold U-labels. */
        if (!smtp_domain_valid(args->text, args->len,
                               smtputf8_offered(s))) {
            smtp_server_reject(s, "501 5.5.4 Syntax: %s", cmd->usage);
            return -1;
        }
        return 0;
    case SMTP_ARGS_PATH:
        return parse_path_args(s, cmd, args);
    }
    return -1;
}

/* check_line rejects a line that is not plain command text. Returns 0, or
 * -1 after queueing the error reply. */
static int check_line(struct smtp_server *s, const char *line, size_t len)
{
    /* Bare LF line ends are rejected, so a command always ends with the
     * same CRLF that ends a DATA body. */
    if (len < 2 || line[len - 2] != '\r') {
        smtp_server_reject(s, "500 5.5.2 Error: command line must end "
                           "with CRLF");
        return -1;
    }
    for (size_t i = 0; i < len - 2; i++) {
        if (smtp_char_is(line[i], SMTP_CHAR_LINE_BAD)) {
            smtp_server_reject(s, "500 5.5.2 Error: %s in command line",
                               line[i] == '\0' ? "NUL byte" : "bare CR");
            return -1;
        }
    }
    return 0;
}

/* command_is_junk reports whether cmd moves no mail: a client may repeat
 * such commands only max_junk_commands times, since otherwise it could
 * hold a session open for ever. A repeated EHLO or HELO counts too. */
static bool command_is_junk(const struct smtp_command *cmd)
{
    return cmd->handler == command_noop || cmd->handler == command_rset ||
           cmd->handler == command_vrfy || cmd->handler == command_help ||
           cmd->handler == command_ehlo || cmd->handler == command_helo;
}

void smtp_commands_execute(struct smtp_server *s, const char *line,
                           size_t len)
{
    const struct smtp_command *cmd;
    struct smtp_args args = {0};
    size_t verb_len = 0;
    size_t end;

    if (check_line(s, line, len) < 0) {
        return;
    }
    end = len - 2;
    while (verb_len < end &&
           smtp_char_is(line[verb_len], SMTP_CHAR_ALPHA)) {
        verb_len++;
    }
    cmd = command_find(line, verb_len);
    if (cmd == NULL || (verb_len < end &&
                        !smtp_char_is(line[verb_len], SMTP_CHAR_BLANK))) {
        smtp_server_reject(s, "500 5.5.2 Error: command not recognized");
        return;
    }
    if (command_is_junk(cmd) && smtp_server_count_junk(s)) {
        return;
    }
    if (s->refused && cmd->handler != command_quit &&
        cmd->handler != command_bdat) {
        smtp_server_reject(s, "503 5.5.1 Error: service not available, "
                           "send QUIT");
        return;
    }
    if ((cmd->states & (unsigned)s->state) == 0) {
        reject_sequence(s, cmd);
        return;
    }

    /* A RCPT refused for its syntax is as refused as one a hook
     * rejected, so DATA after it gets the same 554 (see
     * reject_sequence). */
    if (cmd->handler == command_rcpt) {
        s->rcpt_tried = true;
    }

    while (end > verb_len && smtp_char_is(line[end - 1], SMTP_CHAR_BLANK)) {
        end--;
    }
    args.text = line + skip_blanks(line, verb_len, end);
    args.len = (size_t)(line + end - args.text);
    if (parse_args(s, cmd, &args) < 0) {
        return;
    }
    cmd->handler(s, &args);
}

static void greet_reset(struct smtp_server *s, const struct smtp_args *a,
                        bool esmtp)
{
    /* RFC 5321 section 4.1.4: EHLO or HELO ends an open transaction. */
    smtp_server_end_transaction(s);
    s->state = SMTP_STATE_READY;
    memcpy(s->helo, a->text, a->len);
    s->helo[a->len] = '\0';
    s->esmtp = esmtp;
}

static void command_ehlo(struct smtp_server *s, const struct smtp_args *a)
{
    unsigned disabled = s->opts->disabled_extensions;

    greet_reset(s, a, true);
    smtp_server_reply(s, "250-%s", s->opts->hostname);
    if ((disabled & SMTP_EXT_PIPELINING) == 0) {
        smtp_server_reply(s, "250-PIPELINING");
    }
    if ((disabled & SMTP_EXT_SIZE) == 0) {
        smtp_server_reply(s, "250-SIZE %" PRIu64,
                          s->opts->max_message_size);
    }
    if ((disabled & SMTP_EXT_8BITMIME) == 0) {
        smtp_server_reply(s, "250-8BITMIME");
    }
    if ((disabled & SMTP_EXT_SMTPUTF8) == 0) {
        smtp_server_reply(s, "250-SMTPUTF8");
    }
    if ((disabled & SMTP_EXT_CHUNKING) == 0) {
        smtp_server_reply(s, "250-CHUNKING");
    }
    if (binarymime_offered(disabled)) {
        smtp_server_reply(s, "250-BINARYMIME");
    }
    if ((disabled & SMTP_EXT_DSN) == 0) {
        smtp_server_reply(s, "250-DSN");
    }
    if (starttls_offered(s)) {
        smtp_server_reply(s, "250-STARTTLS");
    }
    if (smtp_auth_offered(s)) {
        smtp_server_reply(s, "250-AUTH PLAIN LOGIN");
    }
    smtp_server_reply(s, "250 ENHANCEDSTATUSCODES");
}

static void command_helo(struct smtp_server *s, const struct smtp_args *a)
{
    greet_reset(s, a, false);
    smtp_server_reply(s, "250 %s", s->opts->hostname);
}

static void command_mail(struct smtp_server *s, const struct smtp_args *a)
{
    const struct smtp_mail_params *params = &a->params.mail;
    uint64_t limit = s->opts->max_message_size;
    char reply[SMTP_REPLY_MAX] = "";

    if (a->path.is_postmaster) {
        smtp_server_reject(s, "501 5.1.7 Error: bad sender address syntax");
        return;
    }
    if (a->path_utf8 && !params->smtputf8) {
        smtp_server_reject(s, "553 5.6.7 Error: non-ASCII sender address "
                           "needs SMTPUTF8");
        return;
    }
    if (limit != 0 && params->size > limit) {
        smtp_server_reply(s, "552 5.3.4 Error: message size exceeds the "
                          "fixed maximum of %" PRIu64 " bytes", limit);
        return;
    }
    if (s->hooks->mail != NULL &&
        s->hooks->mail(s->ctx, &a->path, params, reply) < 0) {
        smtp_server_hook_reply(s, reply);
        return;
    }
    s->state = SMTP_STATE_MAIL;
    s->smtputf8 = params->smtputf8;
    s->binarymime = params->body == SMTP_BODY_BINARYMIME;
    s->rcpt_count = 0;
    if (reply[0] != '\0') {
        smtp_server_hook_reply(s, reply);
        return;
    }
    smtp_server_reply(s, "250 2.1.0 Ok");
}

static void command_rcpt(struct smtp_server *s, const struct smtp_args *a)
{
    size_t limit = s->opts->max_rcpts;
    char reply[SMTP_REPLY_MAX] = "";
    int rc = 0;

    if (a->path.is_null) {
        smtp_server_reject(s, "501 5.1.3 Error: the null path <> is not "
                           "a valid recipient");
        return;
    }
    if (s->bdat_used) {
        smtp_server_reject(s, "503 5.5.1 Error: RCPT after BDAT in the "
                           "same transaction");
        return;
    }
    if (limit != 0 && s->rcpt_count >= limit) {
        smtp_server_reply(s, "452 4.5.3 Error: too many recipients");
        return;
    }
    if (s->hooks->rcpt != NULL) {
        rc = s->hooks->rcpt(s->ctx, &a->path, &a->params.rcpt, reply);
    }
    if (rc < 0) {
        smtp_server_hook_refusal(s, reply, rc);
        return;
    }
    s->rcpt_count++;
    s->state = SMTP_STATE_RCPT;
    if (reply[0] != '\0') {
        smtp_server_hook_reply(s, reply);
        return;
    }
    smtp_server_reply(s, "250 2.1.5 Ok");
}

static void command_data(struct smtp_server *s, const struct smtp_args *a)
{
    char reply[SMTP_REPLY_MAX] = "";

    (void)a;
    if (s->bdat_used) {
        /* RFC 3030: DATA and BDAT do not mix in one transaction. */
        smtp_server_reject(s, "503 5.5.1 Error: DATA after BDAT in the "
                           "same transaction");
        return;
    }
    if (s->binarymime) {
        /* RFC 3030 section 3: a BINARYMIME body needs BDAT. */
        smtp_server_reject(s, "503 5.5.1 Error: BODY=BINARYMIME requires "
                           "BDAT, not DATA");
        return;
    }
    if (s->hooks->data_begin != NULL &&
        s->hooks->data_begin(s->ctx, reply) < 0) {
        smtp_server_hook_reply(s, reply);
        return;
    }
    smtp_server_reply(s, "354 End data with <CR><LF>.<CR><LF>");
    smtp_server_begin_body(s);
}

/* command_bdat parses "chunk-size [LAST]" (RFC 3030) and reads
 * the chunk. A BDAT that does not parse gets 501 and its octets are read
 * as commands, because their count is unknown. */
static void command_bdat(struct smtp_server *s, const struct smtp_args *a)
{
    size_t digits = 0;
    size_t pos;
    uint64_t size;
    bool last = false;

    if ((s->opts->disabled_extensions & SMTP_EXT_CHUNKING) != 0) {
        smtp_server_reject(s, "500 5.5.2 Error: command not recognized");
        return;
    }
    while (digits < a->len && smtp_char_is(a->text[digits],
                                           SMTP_CHAR_DIGIT)) {
        digits++;
    }
    pos = skip_blanks(a->text, digits, a->len);
    if (pos > digits && a->len - pos == 4 &&
        strncasecmp(a->text + pos, "LAST", 4) == 0) {
        last = true;
        pos = a->len;
    }
    if (pos != a->len || smtp_parse_size(a->text, digits, &size) < 0) {
        smtp_server_reject(s, "501 5.5.4 Syntax: BDAT chunk-size [LAST]");
        return;
    }
    smtp_chunk_begin(s, size, last);
}

static void command_rset(struct smtp_server *s, const struct smtp_args *a)
{
    (void)a;
    smtp_server_end_transaction(s);
    smtp_server_reply(s, "250 2.0.0 Ok");
}

static void command_noop(struct smtp_server *s, const struct smtp_args *a)
{
    (void)a;
    smtp_server_reply(s, "250 2.0.0 Ok");
}

static void command_quit(struct smtp_server *s, const struct smtp_args *a)
{
    (void)a;
    smtp_server_end_transaction(s);
    smtp_server_reply(s, "221 2.0.0 Bye");
    smtp_server_close(s, "quit");
}

static void command_vrfy(struct smtp_server *s, const struct smtp_args *a)
{
    if (a->len == 0) {
        smtp_server_reject(s, "501 5.5.4 Syntax: VRFY address");
        return;
    }

    /* RFC 5321 section 3.5.3: 252 when the address is not checked. */
    smtp_server_reply(s, "252 2.5.0 Address not verified; send MAIL and "
                      "RCPT to find out whether it is accepted");
}

static void command_help(struct smtp_server *s, const struct smtp_args *a)
{
    char verbs[SMTP_COMMAND_COUNT * 5 + 1];
    size_t used = 0;

    (void)a;
    for (size_t i = 0; i < SMTP_COMMAND_COUNT; i++) {
        int n;

        if (smtp_commands[i].handler == command_not_implemented ||
            (smtp_commands[i].handler == command_auth &&
             s->hooks->auth == NULL) ||
            (smtp_commands[i].handler == command_bdat &&
             (s->opts->disabled_extensions & SMTP_EXT_CHUNKING) != 0) ||
            (smtp_commands[i].handler == command_starttls &&
             !starttls_offered(s))) {
            continue;
        }
        n = snprintf(verbs + used, sizeof(verbs) - used, " %s",
                     smtp_commands[i].verb);

        if (n < 0 || (size_t)n >= sizeof(verbs) - used) {
            break;
        }
        used += (size_t)n;
    }
    smtp_server_reply(s, "214 2.0.0 Commands:%s", verbs);
}

static void command_not_implemented(struct smtp_server *s,
                                    const struct smtp_args *a)
{
    (void)a;
    smtp_server_reject(s, "502 5.5.1 Error: command not implemented");
}

static void command_auth(struct smtp_server *s, const struct smtp_args *a)
{
    smtp_auth_command(s, a->text, a->len);
}

/* command_starttls accepts STARTTLS (RFC 3207) and discards the input
 * after it until the owner finished the handshake; see smtp_server.h. */
static void command_starttls(struct smtp_server *s,
                             const struct smtp_args *a)
{
    char reply[SMTP_REPLY_MAX] = "";

    if (s->tls_active) {
        smtp_server_reject(s, "554 5.5.1 Error: TLS already active");
        return;
    }
    if (!starttls_offered(s)) {
        smtp_server_reject(s, "502 5.5.1 Error: command not implemented");
        return;
    }
    if (a->len != 0) {
        smtp_server_reject(s, "501 5.5.4 Syntax: STARTTLS");
        return;
    }
    /* Only the EHLO reply offers STARTTLS, so a HELO client gets the
     * same 503 as one that sent no greeting. */
    if (s->state == SMTP_STATE_CONNECTED || !s->esmtp) {
        smtp_server_reject(s, "503 5.5.1 Error: send EHLO first");
        return;
    }
    if (s->state != SMTP_STATE_READY) {
        smtp_server_reject(s, "503 5.5.1 Error: MAIL transaction in "
                           "progress");
        return;
    }
    if (s->hooks->starttls(s->ctx, reply) < 0) {
        smtp_server_hook_reply(s, reply);
        return;
    }
    smtp_server_reply(s, "220 2.0.0 Ready to start TLS");
    s->tls_pending = true;
}
