/* SMTP client session (RFC 5321, PIPELINING from RFC 2920).
 *
 * Every command sent is recorded in a FIFO of pending commands, and each
 * reply is matched to the oldest one, so the pipelined and the one-at-a-
 * time paths share the reply handlers. Once every recipient is decided
 * the handlers only drain the replies still due, and QUIT is queued when
 * none is left: QUIT never follows a DATA whose reply is unknown, because
 * a 354 would turn it into body text. */
#include "proto/smtp_client.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp_address.h"
#include "proto/smtp_reply.h"
#include "proto/smtp_sasl.h"

/* Reply line limit, CRLF included. RFC 5321 4.5.3.1.5 sets 512, but
 * servers with longer lines exist and are harmless to accept. */
#define CLIENT_LINE_MAX 2048

/* Whole-reply limit, CRLFs included. It leaves room for multi-line
 * replies far longer than an EHLO reply with every common extension. */
#define CLIENT_REPLY_MAX 16384

/* Initial size of the buffer for a reply split across feeds. */
#define CLIENT_INPUT_INITIAL 512

enum client_command {
    CLIENT_CMD_GREETING,
    CLIENT_CMD_EHLO,
    CLIENT_CMD_HELO,
    CLIENT_CMD_MAIL,
    CLIENT_CMD_RCPT,
    CLIENT_CMD_DATA,
    CLIENT_CMD_CHUNK, /* a BDAT without LAST */
    CLIENT_CMD_BODY, /* the reply to the end of data, or to BDAT LAST */
    CLIENT_CMD_QUIT,
    CLIENT_CMD_RSET,
    CLIENT_CMD_STARTTLS,
    CLIENT_CMD_AUTH,
};

/* Commands pushed in one session: greeting, EHLO, HELO, STARTTLS, EHLO
 * again inside TLS, AUTH, RSET, MAIL, one RCPT per recipient, DATA, the
 * end of data and QUIT. A binary message pushes one BDAT per chunk in
 * place of DATA, the last one as the end of data. */
#define CLIENT_FIXED_COMMANDS 11

struct client_pending {
    enum client_command command;
    size_t rcpt; /* recipient index, for CLIENT_CMD_RCPT */
};

enum client_extension {
    CLIENT_EXT_PIPELINING = 1u << 0,
    CLIENT_EXT_8BITMIME = 1u << 1,
    CLIENT_EXT_SMTPUTF8 = 1u << 2,
    CLIENT_EXT_SIZE = 1u << 3,
    CLIENT_EXT_CHUNKING = 1u << 4,
    CLIENT_EXT_BINARYMIME = 1u << 5,
    CLIENT_EXT_DSN = 1u << 6,
    CLIENT_EXT_STARTTLS = 1u << 7,
    CLIENT_EXT_AUTH = 1u << 8,
};

struct smtp_client {
    const struct smtp_client_message *msg;
    char *helo_name;
    struct smtp_outq out;
    struct smtp_client_result *results; /* one per recipient */
    bool *accepted;                     /* RCPT got 2xx */
    size_t accepted_count;
    size_t undecided;                   /* results with code 0 */
    size_t next_rcpt;                   /* next RCPT without pipelining */
    size_t body_sent;                   /* body bytes queued after BDAT */
    unsigned extensions;                /* enum client_extension bits */

    /* Commands awaiting a reply, oldest at head. Each command is pushed
     * at most once per session, so the array never wraps. */
    struct client_pending *pending;
    size_t pending_head;
    size_t pending_tail;
    size_t pending_cap;

    bool quit_queued;
    bool quit_answered;
    bool end_unanswered; /* failed while the end of data awaited a reply */
    bool input_closed; /* later input is ignored */

    /* Connection reuse: with keep_open no QUIT is queued once the
     * transaction ends, so smtp_client_next() can send the next MAIL. */
    bool keep_open;
    bool greeted;      /* EHLO or HELO got 2xx */
    bool needs_rset;   /* MAIL was sent and the transaction may be open */
    bool broken;       /* RSET failed: the connection is not reused */

    /* STARTTLS (RFC 3207) and AUTH PLAIN (RFC 4954, RFC 4616). */
    enum smtp_client_tls tls_mode;
    bool tls_declined; /* STARTTLS not offered or refused under TRY */
    bool tls_ready;    /* 220 to STARTTLS: the owner runs the handshake */
    bool tls_active;   /* the owner finished the handshake */
    char *auth_user;   /* NULL: no AUTH */
    char *auth_password;
    bool authenticated;

    /* A reply split across feeds; empty when none is partial. */
    char *input;
    size_t input_len;
    size_t input_cap;
};

/* client_store_text appends text to r->text, truncating at the buffer
 * end. Bytes other than printable ASCII become '?', so a result is always
 * one printable line. Returns the new length. */
static size_t client_store_text(struct smtp_client_result *r, size_t pos,
                                const char *text, size_t len)
{
    for (size_t i = 0; i < len && pos + 1 < sizeof(r->text); i++) {
        unsigned char c = (unsigned char)text[i];

        r->text[pos++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    r->text[pos] = '\0';
    return pos;
}

/* client_make_result fills r with code and the line "head text", where
 * head is usually the code itself. */
static void client_make_result(struct smtp_client_result *r, int code,
                               const char *head, const char *text,
                               size_t text_len)
{
    size_t pos;

    r->code = code;
    pos = client_store_text(r, 0, head, strlen(head));
    if (text_len > 0) {
        pos = client_store_text(r, pos, " ", 1);
        client_store_text(r, pos, text, text_len);
    }
}

/* client_result_from_reply stores the reply as a result. A reply that
 * should decide a failure but is not 4xx or 5xx becomes a 451, so a
 * protocol error never reads as a delivery. So does 503, bad sequence of
 * commands, because it means the two sides disagree on the session
 * state. That is no verdict on the recipient, so the message is retried
 * rather than bounced. */
static void client_result_from_reply(struct smtp_client_result *r,
                                     const struct smtp_reply *reply,
                                     bool success_allowed)
{
    char head[64];
    int class = reply->code / 100;

    if (reply->code != 503 &&
        (class == 4 || class == 5 || (class == 2 && success_allowed))) {
        snprintf(head, sizeof(head), "%d", reply->code);
        client_make_result(r, reply->code, head, reply->text,
                           reply->text_len);
        return;
    }
    snprintf(head, sizeof(head), "451 4.5.0 Unexpected reply: %d",
             reply->code);
    client_make_result(r, 451, head, reply->text, reply->text_len);
}

static void client_decide(struct smtp_client *c, size_t i,
                          const struct smtp_client_result *r)
{
    if (c->results[i].code != 0) {
        return;
    }
    c->results[i] = *r;
    c->undecided--;
}

static void client_decide_undecided(struct smtp_client *c,
                                    const struct smtp_client_result *r)
{
    for (size_t i = 0; i < c->msg->rcpt_count && c->undecided > 0; i++) {
        client_decide(c, i, r);
    }
}

/* client_fail_all decides every undecided recipient and stops reading.
 * text is stored as given when it already starts with code, else it is
 * prefixed with code. */
static void client_fail_all(struct smtp_client *c, int code,
                            const char *text)
{
    struct smtp_client_result r;
    char head[16];
    size_t text_len = strlen(text);

    snprintf(head, sizeof(head), "%d", code);
    if (strncmp(text, head, 3) == 0 && (text[3] == ' ' || text[3] == '\0')) {
        r.code = code;
        client_store_text(&r, 0, text, text_len);
    } else {
        client_make_result(&r, code, head, text, text_len);
    }
    client_decide_undecided(c, &r);
    c->input_closed = true;
}

static void client_out_of_memory(struct smtp_client *c)
{
    client_fail_all(c, 451, "451 4.3.0 Out of memory in the SMTP client");
}

static int client_expect(struct smtp_client *c, enum client_command command,
                         size_t rcpt)
{
    if (c->pending_tail == c->pending_cap) {
        return -1;
    }
    c->pending[c->pending_tail].command = command;
    c->pending[c->pending_tail].rcpt = rcpt;
    c->pending_tail++;
    return 0;
}

/* client_send queues one command line (given without CRLF) and records
 * that its reply is due. Returns 0, or -1 after failing the session. */
static int client_send(struct smtp_client *c, enum client_command command,
                       size_t rcpt, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int client_send(struct smtp_client *c, enum client_command command,
                       size_t rcpt, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int len;

    va_start(ap, fmt);
    len = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof(line) - 2) {
        client_fail_all(c, 451, "451 4.3.0 SMTP command line too long");
        return -1;
    }

    memcpy(line + len, "\r\n", 2);
    if (smtp_outq_append(&c->out, line, (size_t)len + 2) < 0 ||
        client_expect(c, command, rcpt) < 0) {
        client_out_of_memory(c);
        return -1;
    }
    return 0;
}

static void client_send_quit(struct smtp_client *c)
{
    if (client_send(c, CLIENT_CMD_QUIT, 0, "QUIT") == 0) {
        c->quit_queued = true;
    }
}

/* client_format_mail_dsn writes " RET=... ENVID=..." for a peer that
 * offers DSN, or "". RFC 3461 passes the DSN parameters on only to a
 * next hop that offers DSN. */
static void client_format_mail_dsn(const struct smtp_client *c, char *out,
                                   size_t out_size)
{
    const struct smtp_client_message *msg = c->msg;
    const char *ret = smtp_dsn_ret_name(msg->dsn_ret);
    char envid[3 * SMTP_ENVID_MAX + 1] = "";
    int n = 0;

    out[0] = '\0';
    if ((c->extensions & CLIENT_EXT_DSN) == 0) {
        return;
    }
    if (ret != NULL) {
        n = snprintf(out, out_size, " RET=%s", ret);
    }
    if (n >= 0 && (size_t)n < out_size && msg->envid != NULL &&
        msg->envid[0] != '\0' &&
        smtp_xtext_encode(msg->envid, envid, sizeof(envid)) >= 0) {
        snprintf(out + n, out_size - (size_t)n, " ENVID=%s", envid);
    }
}

/* client_format_rcpt_dsn writes " NOTIFY=... ORCPT=..." of recipient i
 * for a peer that offers DSN, or "". An ORCPT without ';' is left out. */
static void client_format_rcpt_dsn(const struct smtp_client *c, size_t i,
                                   char *out, size_t out_size)
{
    const struct smtp_client_message *msg = c->msg;
    const char *orcpt = msg->orcpt != NULL ? msg->orcpt[i] : NULL;
    const char *semicolon = orcpt != NULL ? strchr(orcpt, ';') : NULL;
    char address[3 * SMTP_ORCPT_MAX + 1];
    char notify[40] = "";
    int n = 0;

    out[0] = '\0';
    if ((c->extensions & CLIENT_EXT_DSN) == 0) {
        return;
    }
    if (msg->notify != NULL && msg->notify[i] != 0) {
        smtp_dsn_format_notify(msg->notify[i], notify, sizeof(notify));
        n = snprintf(out, out_size, " NOTIFY=%s", notify);
    }
    if (n >= 0 && (size_t)n < out_size && semicolon != NULL &&
        smtp_xtext_encode(semicolon + 1, address, sizeof(address)) >= 0) {
        snprintf(out + n, out_size - (size_t)n, " ORCPT=%.*s;%s",
                 (int)(semicolon - orcpt), orcpt, address);
    }
}

/* client_send_mail sends MAIL FROM with the parameters the message needs
 * and the peer offers. */
static int client_send_mail(struct smtp_client *c)
{
    const struct smtp_client_message *msg = c->msg;
    const char *body = "";
    const char *utf8 = "";
    char size[32] = "";
    char dsn[400];

    /* NOTE: an 8-bit body goes out without BODY=8BITMIME when the peer
     * lacks 8BITMIME. RFC 6152 calls for converting it to 7 bits or
     * bouncing it instead. */
    if (msg->binary) {
        body = " BODY=BINARYMIME";
    } else if (msg->eight_bit &&
               (c->extensions & CLIENT_EXT_8BITMIME) != 0) {
        body = " BODY=8BITMIME";
    }
    if (msg->smtputf8) {
        utf8 = " SMTPUTF8";
    }
    if ((c->extensions & CLIENT_EXT_SIZE) != 0) {
        snprintf(size, sizeof(size), " SIZE=%zu", msg->body_len);
    }
    client_format_mail_dsn(c, dsn, sizeof(dsn));
    c->needs_rset = true;
    return client_send(c, CLIENT_CMD_MAIL, 0, "MAIL FROM:<%s>%s%s%s%s",
                       msg->sender, body, utf8, size, dsn);
}

static int client_send_rcpt(struct smtp_client *c, size_t i)
{
    char dsn[3 * SMTP_ORCPT_MAX + 64];

    client_format_rcpt_dsn(c, i, dsn, sizeof(dsn));
    return client_send(c, CLIENT_CMD_RCPT, i, "RCPT TO:<%s>%s",
                       c->msg->rcpts[i], dsn);
}

/* client_chunk_count returns the number of BDAT commands for the body:
 * an empty body still needs "BDAT 0 LAST". */
static size_t client_chunk_count(size_t body_len)
{
    if (body_len == 0) {
        return 1;
    }
    return (body_len + SMTP_CLIENT_CHUNK_MAX - 1) / SMTP_CLIENT_CHUNK_MAX;
}

/* client_send_chunk sends the next BDAT with its chunk of the body, by
 * reference. The chunk that ends the body carries LAST, and its reply
 * decides the recipients like the reply to the end of data. Returns 0, or
 * -1 after failing the session. */
static int client_send_chunk(struct smtp_client *c)
{
    const struct smtp_client_message *msg = c->msg;
    size_t left = msg->body_len - c->body_sent;
    size_t len = left < SMTP_CLIENT_CHUNK_MAX ? left : SMTP_CLIENT_CHUNK_MAX;
    bool last = len == left;
    int rc;

    if (last) {
        rc = client_send(c, CLIENT_CMD_BODY, 0, "BDAT %zu LAST", len);
    } else {
        rc = client_send(c, CLIENT_CMD_CHUNK, 0, "BDAT %zu", len);
    }
    if (rc < 0) {
        return -1;
    }
    if (len > 0 &&
        smtp_outq_append_ref(&c->out, msg->body + c->body_sent, len) < 0) {
        client_out_of_memory(c);
        return -1;
    }
    c->body_sent += len;
    return 0;
}

/* client_send_all_chunks pipelines every BDAT of the body behind MAIL
 * and RCPT, as the example in RFC 3030 section 4.2 does.
 * NOTE: RFC 3030 section 2 states that BDAT follows once the MAIL and RCPT
 * replies are processed, and a server that relies on that pause would
 * misread this batch. */
static void client_send_all_chunks(struct smtp_client *c)
{
    size_t count = client_chunk_count(c->msg->body_len);

    for (size_t i = 0; i < count; i++) {
        if (client_send_chunk(c) < 0) {
            return;
        }
    }
}

/* client_send_content starts the message content after the recipients:
 * DATA, or for a binary message the first BDAT. */
static void client_send_content(struct smtp_client *c)
{
    if (!c->msg->binary) {
        client_send(c, CLIENT_CMD_DATA, 0, "DATA");
    } else if ((c->extensions & CLIENT_EXT_PIPELINING) != 0) {
        client_send_all_chunks(c);
    } else {
        client_send_chunk(c);
    }
}

/* client_send_next_rcpt sends the next RCPT without pipelining, or DATA
 * (or BDAT) after the last one when a recipient was accepted. Recipients
 * decided before their RCPT (invalid addresses) are skipped. */
static void client_send_next_rcpt(struct smtp_client *c)
{
    size_t count = c->msg->rcpt_count;

    while (c->next_rcpt < count && c->results[c->next_rcpt].code != 0) {
        c->next_rcpt++;
    }
    if (c->next_rcpt < count) {
        client_send_rcpt(c, c->next_rcpt++);
        return;
    }
    if (c->accepted_count > 0) {
        client_send_content(c);
    }
}

/* client_send_batch sends MAIL, every RCPT and DATA (or every BDAT) in
 * one batch (RFC 2920). */
static void client_send_batch(struct smtp_client *c)
{
    if (client_send_mail(c) < 0) {
        return;
    }
    for (size_t i = 0; i < c->msg->rcpt_count; i++) {
        if (c->results[i].code == 0 && client_send_rcpt(c, i) < 0) {
            return;
        }
    }
    client_send_content(c);
}

/* client_takes_binary is true when the peer accepts a BINARYMIME body.
 * RFC 3030 forbids sending binary data to any other peer, and this relay
 * cannot convert it, so such a message fails permanently there. */
static bool client_takes_binary(const struct smtp_client *c)
{
    unsigned both = CLIENT_EXT_CHUNKING | CLIENT_EXT_BINARYMIME;

    return (c->extensions & both) == both;
}

static void client_begin_transaction(struct smtp_client *c)
{
    struct smtp_client_result r;

    if (c->msg->smtputf8 && (c->extensions & CLIENT_EXT_SMTPUTF8) == 0) {
        client_make_result(&r, 553, "553 5.6.7 The message needs SMTPUTF8 "
                           "but the peer does not support SMTPUTF8", "", 0);
        client_decide_undecided(c, &r);
        return;
    }
    if (c->msg->binary && !client_takes_binary(c)) {
        client_make_result(&r, 554, "554 5.6.3 Conversion required but "
                           "not supported: the message is binary "
                           "(BINARYMIME) and the peer does not offer "
                           "CHUNKING and BINARYMIME", "", 0);
        client_decide_undecided(c, &r);
        return;
    }
    if ((c->extensions & CLIENT_EXT_PIPELINING) != 0) {
        client_send_batch(c);
        return;
    }
    client_send_mail(c);
}

static void client_record_extensions(struct smtp_client *c,
                                     const struct smtp_reply *reply)
{
    static const struct {
        const char *keyword;
        enum client_extension bit;
    } known[] = {
        {"PIPELINING", CLIENT_EXT_PIPELINING},
        {"8BITMIME", CLIENT_EXT_8BITMIME},
        {"SMTPUTF8", CLIENT_EXT_SMTPUTF8},
        {"SIZE", CLIENT_EXT_SIZE},
        {"CHUNKING", CLIENT_EXT_CHUNKING},
        {"BINARYMIME", CLIENT_EXT_BINARYMIME},
        {"DSN", CLIENT_EXT_DSN},
        {"STARTTLS", CLIENT_EXT_STARTTLS},
        {"AUTH", CLIENT_EXT_AUTH},
    };

    c->extensions = 0;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (smtp_reply_has_keyword(reply, known[i].keyword)) {
            c->extensions |= known[i].bit;
        }
    }
}

static void client_fail_with_reply(struct smtp_client *c,
                                   const struct smtp_reply *reply)
{
    struct smtp_client_result r;

    client_result_from_reply(&r, reply, false);
    client_decide_undecided(c, &r);
}

/* client_refuse decides every recipient with text (a 4xx that the
 * session itself chose) and ends the connection with QUIT, because it
 * may not carry mail. */
static void client_refuse(struct smtp_client *c, const char *text)
{
    struct smtp_client_result r;

    client_make_result(&r, atoi(text), text, "", 0);
    client_decide_undecided(c, &r);
    c->broken = true;
}

/* client_refuse_reply is client_refuse with "head CODE text", where CODE
 * and text are the server's reply. */
static void client_refuse_reply(struct smtp_client *c, const char *head,
                                const struct smtp_reply *reply)
{
    struct smtp_client_result r;
    char line[SMTP_CLIENT_TEXT_MAX];

    snprintf(line, sizeof(line), "%s %d", head, reply->code);
    client_make_result(&r, atoi(head), line, reply->text, reply->text_len);
    client_decide_undecided(c, &r);
    c->broken = true;
}

/* client_send_auth sends AUTH PLAIN with the initial response, the
 * base64 of "NUL user NUL password" (RFC 4616, no authorization id). */
static void client_send_auth(struct smtp_client *c)
{
    unsigned char raw[2 * SMTP_SASL_NAME_MAX + 2];
    char encoded[sizeof(raw) / 3 * 4 + 8];
    size_t user_len = strlen(c->auth_user);
    size_t password_len = strlen(c->auth_password);
    size_t raw_len = user_len + password_len + 2;

    raw[0] = '\0';
    memcpy(raw + 1, c->auth_user, user_len);
    raw[1 + user_len] = '\0';
    memcpy(raw + 2 + user_len, c->auth_password, password_len);
    smtp_base64_encode(raw, raw_len, encoded, sizeof(encoded));
    client_send(c, CLIENT_CMD_AUTH, 0, "AUTH PLAIN %s", encoded);
    explicit_bzero(raw, sizeof(raw));
    explicit_bzero(encoded, sizeof(encoded));
}

/* client_after_hello runs after a 2xx to EHLO or HELO: STARTTLS first
 * when the mode asks for it, then AUTH, then the transaction. Nothing is
 * pipelined behind STARTTLS, because plaintext sent before the handshake
 * must not reach the TLS session, and credentials never go out before
 * TLS is active. */
static void client_after_hello(struct smtp_client *c)
{
    bool offered = (c->extensions & CLIENT_EXT_STARTTLS) != 0;

    if (c->tls_mode != SMTP_CLIENT_TLS_OFF && !c->tls_active &&
        !c->tls_declined) {
        if (offered) {
            client_send(c, CLIENT_CMD_STARTTLS, 0, "STARTTLS");
            return;
        }
        if (c->tls_mode == SMTP_CLIENT_TLS_REQUIRE) {
            client_refuse(c, "451 4.7.4 TLS is required for this next "
                          "hop, but it does not offer STARTTLS");
            return;
        }
        c->tls_declined = true;
    }
    if (c->auth_user != NULL && !c->authenticated) {
        if (!c->tls_active) {
            client_refuse(c, "451 4.7.10 AUTH credentials for this next "
                          "hop are sent only over TLS, and TLS did not "
                          "come up");
            return;
        }
        if ((c->extensions & CLIENT_EXT_AUTH) == 0) {
            client_refuse(c, "451 4.7.4 AUTH credentials are configured "
                          "for this next hop, but it does not offer AUTH");
            return;
        }
        client_send_auth(c);
        return;
    }
    client_begin_transaction(c);
}

/* client_on_starttls handles the reply to STARTTLS. After 220 the
 * session stops reading until the owner's handshake is done. */
static void client_on_starttls(struct smtp_client *c,
                               const struct smtp_reply *reply)
{
    if (reply->code == 220) {
        c->tls_ready = true;
        return;
    }
    if (c->tls_mode == SMTP_CLIENT_TLS_REQUIRE) {
        client_refuse_reply(c, "451 4.7.4 TLS is required for this next "
                            "hop, but STARTTLS failed:", reply);
        return;
    }
    c->tls_declined = true;
    client_after_hello(c);
}

/* client_on_auth handles the reply to AUTH. Any failure defers: a
 * rejected password is a fault of this relay's configuration, not of the
 * recipients. */
static void client_on_auth(struct smtp_client *c,
                           const struct smtp_reply *reply)
{
    if (reply->code == 235) {
        c->authenticated = true;
        client_begin_transaction(c);
        return;
    }
    client_refuse_reply(c, "451 4.7.0 AUTH to the next hop failed "
                        "(check the configured credentials):", reply);
}

static void client_on_greeting(struct smtp_client *c,
                               const struct smtp_reply *reply)
{
    if (reply->code != 220) {
        client_fail_with_reply(c, reply);
        return;
    }
    client_send(c, CLIENT_CMD_EHLO, 0, "EHLO %s", c->helo_name);
}

static void client_on_hello(struct smtp_client *c,
                            enum client_command command,
                            const struct smtp_reply *reply)
{
    if (reply->code / 100 == 2) {
        if (command == CLIENT_CMD_EHLO) {
            client_record_extensions(c, reply);
        }
        c->greeted = true;
        client_after_hello(c);
        return;
    }
    if (command == CLIENT_CMD_EHLO && reply->code / 100 == 5 &&
        !c->tls_active) {
        client_send(c, CLIENT_CMD_HELO, 0, "HELO %s", c->helo_name);
        return;
    }
    client_fail_with_reply(c, reply);
}

static void client_on_mail(struct smtp_client *c,
                           const struct smtp_reply *reply)
{
    if (reply->code / 100 != 2) {
        c->needs_rset = false;
        client_fail_with_reply(c, reply);
        return;
    }
    if ((c->extensions & CLIENT_EXT_PIPELINING) == 0) {
        client_send_next_rcpt(c);
    }
}

/* client_on_rset handles the reply to the RSET that clears a failed
 * transaction before the next MAIL on a reused connection. */
static void client_on_rset(struct smtp_client *c,
                           const struct smtp_reply *reply)
{
    if (reply->code / 100 != 2) {
        c->broken = true;
        client_fail_with_reply(c, reply);
        return;
    }
    /* With PIPELINING the MAIL behind this RSET went out in the same
     * batch and marked its own transaction open, so the mark stays. */
    if ((c->extensions & CLIENT_EXT_PIPELINING) == 0) {
        c->needs_rset = false;
        client_begin_transaction(c);
    }
}

static void client_on_rcpt(struct smtp_client *c, size_t i,
                           const struct smtp_reply *reply)
{
    struct smtp_client_result r;

    if (reply->code / 100 == 2) {
        c->accepted[i] = true;
        c->accepted_count++;
    } else {
        client_result_from_reply(&r, reply, false);
        client_decide(c, i, &r);
    }
    if ((c->extensions & CLIENT_EXT_PIPELINING) == 0) {
        client_send_next_rcpt(c);
    }
}

/* client_send_body queues the body by reference and the end of data. With
 * no recipient undecided (none accepted, or MAIL failed in a pipelined
 * batch) only ".CRLF" goes out, ending the transaction empty. */
static void client_send_body(struct smtp_client *c)
{
    const char *body = c->msg->body;
    size_t len = c->msg->body_len;
    int rc = 0;

    if (c->undecided > 0 && len > 0) {
        rc = smtp_outq_append_ref(&c->out, body, len);

        /* A body that does not end in CRLF would swallow the final dot
         * into its last line, so the line is ended here. */
        if (rc == 0 && (len < 2 || memcmp(body + len - 2, "\r\n", 2))) {
            rc = smtp_outq_append(&c->out, "\r\n", 2);
        }
    }
    if (rc == 0) {
        rc = smtp_outq_append(&c->out, ".\r\n", 3);
    }
    if (rc < 0 || client_expect(c, CLIENT_CMD_BODY, 0) < 0) {
        client_out_of_memory(c);
    }
}

static void client_on_data(struct smtp_client *c,
                           const struct smtp_reply *reply)
{
    if (reply->code == 354) {
        client_send_body(c);
        return;
    }
    client_fail_with_reply(c, reply);
}

/* client_on_chunk handles the reply to a BDAT without LAST. A failed
 * chunk fails the whole transaction (RFC 3030), so no more chunks are
 * sent, and the replies to those already pipelined are only drained. */
static void client_on_chunk(struct smtp_client *c,
                            const struct smtp_reply *reply)
{
    if (reply->code / 100 != 2) {
        client_fail_with_reply(c, reply);
        return;
    }
    if ((c->extensions & CLIENT_EXT_PIPELINING) == 0) {
        client_send_chunk(c);
    }
}

static void client_on_body(struct smtp_client *c,
                           const struct smtp_reply *reply)
{
    struct smtp_client_result r;

    /* The reply to the end of data ends the transaction, whatever its
     * code. */
    c->needs_rset = false;
    client_result_from_reply(&r, reply, true);
    client_decide_undecided(c, &r);
}

/* client_on_service_closing handles 421: the server closes the
 * connection, so no QUIT is sent and none will be answered. */
static void client_on_service_closing(struct smtp_client *c,
                                      const struct smtp_reply *reply)
{
    client_fail_with_reply(c, reply);
    c->input_closed = true;
    c->quit_answered = true;
}

static void client_on_invalid_reply(struct smtp_client *c)
{
    client_fail_all(c, 451, "451 4.5.0 Invalid reply from the server");
    if (!c->quit_queued) {
        client_send_quit(c);
    }
}

/* client_dispatch runs the handler for the oldest pending command. With
 * every recipient decided, only DATA (354 needs an end of data) and QUIT
 * replies still matter. */
static void client_dispatch(struct smtp_client *c,
                            struct client_pending pending,
                            const struct smtp_reply *reply)
{
    bool open = c->undecided > 0;

    switch (pending.command) {
    case CLIENT_CMD_GREETING:
        if (open) {
            client_on_greeting(c, reply);
        }
        break;
    case CLIENT_CMD_EHLO:
    case CLIENT_CMD_HELO:
        if (open) {
            client_on_hello(c, pending.command, reply);
        }
        break;
    case CLIENT_CMD_MAIL:
        if (open) {
            client_on_mail(c, reply);
        }
        break;
    case CLIENT_CMD_RCPT:
        if (open) {
            client_on_rcpt(c, pending.rcpt, reply);
        }
        break;
    case CLIENT_CMD_DATA:
        client_on_data(c, reply);
        break;
    case CLIENT_CMD_CHUNK:
        if (open) {
            client_on_chunk(c, reply);
        }
        break;
    case CLIENT_CMD_BODY:
        client_on_body(c, reply);
        break;
    case CLIENT_CMD_QUIT:
        c->quit_answered = true;
        c->input_closed = true;
        break;
    case CLIENT_CMD_RSET:
        if (open) {
            client_on_rset(c, reply);
        }
        break;
    case CLIENT_CMD_STARTTLS:
        if (open) {
            client_on_starttls(c, reply);
        }
        break;
    case CLIENT_CMD_AUTH:
        if (open) {
            client_on_auth(c, reply);
        }
        break;
    }
}

static void client_handle_reply(struct smtp_client *c,
                                const struct smtp_reply *reply)
{
    struct client_pending pending;

    if (c->pending_head == c->pending_tail) {
        if (reply->code == 421) {
            client_on_service_closing(c, reply);
        } else {
            client_on_invalid_reply(c);
        }
        return;
    }

    pending = c->pending[c->pending_head++];
    if (reply->code == 421 && pending.command != CLIENT_CMD_QUIT) {
        client_on_service_closing(c, reply);
        return;
    }
    client_dispatch(c, pending, reply);

    if (c->undecided == 0 && c->pending_head == c->pending_tail &&
        !c->quit_queued && !c->input_closed && !c->keep_open) {
        client_send_quit(c);
    }
}

static int client_grow_input(struct smtp_client *c, size_t need)
{
    size_t cap = c->input_cap == 0 ? CLIENT_INPUT_INITIAL : c->input_cap;
    char *grown;

    if (need <= c->input_cap) {
        return 0;
    }
    while (cap < need) {
        cap *= 2;
    }
    grown = realloc(c->input, cap);
    if (grown == NULL) {
        return -1;
    }
    c->input = grown;
    c->input_cap = cap;
    return 0;
}

/* client_feed_buffered appends to the partial reply and handles it once
 * it is complete. Returns the bytes of data used. */
static size_t client_feed_buffered(struct smtp_client *c, const char *data,
                                   size_t len)
{
    size_t old_len = c->input_len;
    size_t room = CLIENT_REPLY_MAX - old_len;
    size_t take = len < room ? len : room;
    struct smtp_reply reply;
    enum smtp_reply_result result;

    if (client_grow_input(c, old_len + take) < 0) {
        client_out_of_memory(c);
        return len;
    }
    memcpy(c->input + old_len, data, take);
    c->input_len += take;

    result = smtp_reply_parse(c->input, c->input_len, CLIENT_LINE_MAX,
                              &reply);
    if (result == SMTP_REPLY_COMPLETE) {
        c->input_len = 0;
        client_handle_reply(c, &reply);
        return reply.len - old_len;
    }
    if (result == SMTP_REPLY_INVALID || c->input_len == CLIENT_REPLY_MAX) {
        c->input_len = 0;
        client_on_invalid_reply(c);
        return len;
    }
    return take;
}

/* client_feed_direct parses a reply straight from the caller's buffer,
 * or copies a partial one. Returns the bytes of data used. */
static size_t client_feed_direct(struct smtp_client *c, const char *data,
                                 size_t len)
{
    struct smtp_reply reply;
    enum smtp_reply_result result;

    result = smtp_reply_parse(data, len, CLIENT_LINE_MAX, &reply);
    if (result == SMTP_REPLY_COMPLETE && reply.len <= CLIENT_REPLY_MAX) {
        client_handle_reply(c, &reply);
        return reply.len;
    }
    if (result != SMTP_REPLY_INCOMPLETE || len >= CLIENT_REPLY_MAX) {
        client_on_invalid_reply(c);
        return len;
    }

    if (client_grow_input(c, len) < 0) {
        client_out_of_memory(c);
        return len;
    }
    memcpy(c->input, data, len);
    c->input_len = len;
    return len;
}

void smtp_client_feed(struct smtp_client *client, const char *data,
                      size_t len)
{
    size_t used;

    /* Each pass uses at least one byte: a complete reply has five or
     * more, and every other outcome uses some or all of data. */
    while (len > 0 && !client->input_closed && !client->tls_ready) {
        if (client->input_len > 0) {
            used = client_feed_buffered(client, data, len);
        } else {
            used = client_feed_direct(client, data, len);
        }
        data += used;
        len -= used;
    }
}

/* client_sender_problem returns the reply that decides every recipient
 * when the sender must not be sent, or NULL when it may. The null path is
 * stored as "". A bare "postmaster" is a recipient only. */
static const char *client_sender_problem(const struct smtp_client_message *msg)
{
    struct smtp_mailbox mailbox;

    if (msg->sender == NULL) {
        return "553 5.1.7 Missing sender address";
    }
    if (msg->sender[0] == '\0') {
        return NULL;
    }
    switch (smtp_mailbox_split(msg->sender, msg->smtputf8, &mailbox)) {
    case SMTP_PATH_OK:
        break;
    case SMTP_PATH_TOO_LONG:
        return "553 5.1.7 Sender address too long";
    case SMTP_PATH_8BIT:
        return "553 5.6.7 Non-ASCII sender address needs SMTPUTF8";
    case SMTP_PATH_SYNTAX:
    default:
        return "553 5.1.7 Invalid sender address syntax";
    }
    if (mailbox.kind == SMTP_DOMAIN_NONE) {
        return "553 5.1.7 Invalid sender address syntax";
    }
    return NULL;
}

/* client_rcpt_problem returns the reply that decides a recipient that
 * must not be sent, or NULL when it may. */
static const char *client_rcpt_problem(const struct smtp_client_message *msg,
                                       const char *address)
{
    struct smtp_mailbox mailbox;

    if (address == NULL) {
        return "553 5.1.3 Missing recipient address";
    }
    switch (smtp_mailbox_split(address, msg->smtputf8, &mailbox)) {
    case SMTP_PATH_OK:
        return NULL;
    case SMTP_PATH_TOO_LONG:
        return "553 5.1.3 Recipient address too long";
    case SMTP_PATH_8BIT:
        return "553 5.6.7 Non-ASCII recipient address needs SMTPUTF8";
    case SMTP_PATH_SYNTAX:
    default:
        return "553 5.1.3 Invalid recipient address syntax";
    }
}

/* client_check_addresses checks the sender and every recipient with the
 * server's path parser before anything is sent. An address that does not
 * parse is decided at once with 553 and never sent, so a stored CR or LF
 * cannot inject a command. */
static void client_check_addresses(struct smtp_client *c)
{
    const struct smtp_client_message *msg = c->msg;
    struct smtp_client_result r;
    const char *problem = client_sender_problem(msg);

    if (problem != NULL) {
        client_make_result(&r, 553, problem, "", 0);
        client_decide_undecided(c, &r);
        return;
    }
    for (size_t i = 0; i < msg->rcpt_count; i++) {
        problem = client_rcpt_problem(msg, msg->rcpts[i]);
        if (problem != NULL) {
            client_make_result(&r, 553, problem, "", 0);
            client_decide(c, i, &r);
        }
    }
}

/* client_alloc creates a session with no command sent or expected. */
static struct smtp_client *client_alloc(const char *helo_name,
                                        const struct smtp_client_message *msg)
{
    struct smtp_client *c = calloc(1, sizeof(*c));
    size_t count = msg->rcpt_count;

    if (c == NULL) {
        return NULL;
    }
    smtp_outq_init(&c->out);
    c->msg = msg;
    c->undecided = count;
    c->pending_cap = count + CLIENT_FIXED_COMMANDS;
    if (msg->binary) {
        c->pending_cap += client_chunk_count(msg->body_len);
    }
    c->helo_name = strdup(helo_name);
    c->results = calloc(count + 1, sizeof(*c->results));
    c->accepted = calloc(count + 1, sizeof(*c->accepted));
    c->pending = calloc(c->pending_cap, sizeof(*c->pending));
    if (c->helo_name == NULL || c->results == NULL || c->accepted == NULL ||
        c->pending == NULL) {
        smtp_client_free(c);
        return NULL;
    }
    client_check_addresses(c);
    return c;
}

struct smtp_client *smtp_client_new(const char *helo_name,
                                    const struct smtp_client_message *msg)
{
    struct smtp_client *c = client_alloc(helo_name, msg);

    if (c != NULL && client_expect(c, CLIENT_CMD_GREETING, 0) < 0) {
        smtp_client_free(c);
        return NULL;
    }
    return c;
}

struct smtp_client *smtp_client_next(const struct smtp_client *prev,
                                     const struct smtp_client_message *msg)
{
    struct smtp_client *c;

    if (!smtp_client_idle(prev)) {
        return NULL;
    }
    c = client_alloc(prev->helo_name, msg);
    if (c == NULL) {
        return NULL;
    }
    c->extensions = prev->extensions;
    c->greeted = true;
    c->tls_mode = prev->tls_mode;
    c->tls_declined = prev->tls_declined;
    c->tls_active = prev->tls_active;
    c->authenticated = prev->authenticated;
    c->keep_open = true;
    c->needs_rset = prev->needs_rset;
    if (c->undecided == 0) {
        return c;
    }

    /* RFC 2920 lets RSET open a pipelined batch; without PIPELINING the
     * transaction begins once RSET is answered. */
    if (c->needs_rset &&
        client_send(c, CLIENT_CMD_RSET, 0, "RSET") < 0) {
        return c;
    }
    if (!c->needs_rset || (c->extensions & CLIENT_EXT_PIPELINING) != 0) {
        client_begin_transaction(c);
    }
    return c;
}

void smtp_client_keep_open(struct smtp_client *client)
{
    client->keep_open = true;
}

bool smtp_client_idle(const struct smtp_client *client)
{
    return client->keep_open && client->greeted && !client->broken &&
           client->undecided == 0 &&
           client->pending_head == client->pending_tail &&
           !client->quit_queued && !client->input_closed &&
           !client->tls_ready && client->input_len == 0;
}

void smtp_client_quit(struct smtp_client *client)
{
    if (!client->quit_queued && !client->input_closed) {
        client_send_quit(client);
    }
}

bool smtp_client_greeted(const struct smtp_client *client)
{
    return client->greeted;
}

enum smtp_client_wait smtp_client_waiting(const struct smtp_client *client)
{
    if (client->pending_head == client->pending_tail) {
        return SMTP_CLIENT_WAIT_NONE;
    }
    switch (client->pending[client->pending_head].command) {
    case CLIENT_CMD_GREETING:
        return SMTP_CLIENT_WAIT_GREETING;
    case CLIENT_CMD_DATA:
    case CLIENT_CMD_CHUNK:
        return SMTP_CLIENT_WAIT_DATA;
    case CLIENT_CMD_BODY:
        return SMTP_CLIENT_WAIT_FINAL;
    default:
        return SMTP_CLIENT_WAIT_COMMAND;
    }
}

void smtp_client_free(struct smtp_client *client)
{
    if (client == NULL) {
        return;
    }
    smtp_outq_cleanup(&client->out);
    free(client->helo_name);
    free(client->results);
    free(client->accepted);
    free(client->pending);
    free(client->input);
    free(client->auth_user);
    if (client->auth_password != NULL) {
        explicit_bzero(client->auth_password, strlen(client->auth_password));
        free(client->auth_password);
    }
    free(client);
}

struct smtp_outq *smtp_client_output(struct smtp_client *client)
{
    return &client->out;
}

enum smtp_client_state smtp_client_state(const struct smtp_client *client)
{
    return client->undecided == 0 ? SMTP_CLIENT_DONE : SMTP_CLIENT_RUNNING;
}

/* client_end_pending reports whether the end of data (the final dot, or
 * BDAT LAST) was queued and its reply has not arrived. */
static bool client_end_pending(const struct smtp_client *c)
{
    for (size_t i = c->pending_head; i < c->pending_tail; i++) {
        if (c->pending[i].command == CLIENT_CMD_BODY) {
            return true;
        }
    }
    return false;
}

void smtp_client_fail(struct smtp_client *client, int code,
                      const char *text)
{
    if (client->undecided > 0 && client_end_pending(client)) {
        client->end_unanswered = true;
    }
    client_fail_all(client, code, text);
}

bool smtp_client_end_unanswered(const struct smtp_client *client)
{
    return client->end_unanswered;
}

const struct smtp_client_result *
smtp_client_result(const struct smtp_client *client, size_t i)
{
    if (i >= client->msg->rcpt_count) {
        return NULL;
    }
    return &client->results[i];
}

bool smtp_client_quit_answered(const struct smtp_client *client)
{
    return client->quit_answered;
}

void smtp_client_set_tls(struct smtp_client *client,
                         enum smtp_client_tls mode)
{
    client->tls_mode = mode;
}

int smtp_client_set_auth(struct smtp_client *client, const char *user,
                         const char *password)
{
    if (strlen(user) > SMTP_SASL_NAME_MAX ||
        strlen(password) > SMTP_SASL_NAME_MAX) {
        return -1;
    }
    client->auth_user = strdup(user);
    client->auth_password = strdup(password);
    return client->auth_user != NULL && client->auth_password != NULL
               ? 0
               : -1;
}

bool smtp_client_tls_ready(const struct smtp_client *client)
{
    return client->tls_ready;
}

void smtp_client_tls_started(struct smtp_client *client)
{
    client->tls_ready = false;
    client->tls_active = true;
    client->extensions = 0;
    client->input_len = 0;
    client_send(client, CLIENT_CMD_EHLO, 0, "EHLO %s", client->helo_name);
}

bool smtp_client_tls_active(const struct smtp_client *client)
{
    return client->tls_active;
}
