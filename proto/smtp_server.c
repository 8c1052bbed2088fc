/* SMTP server session: input framing, DATA, pausing and the life cycle.
 * The command table and handlers are in smtp_commands.c, BDAT chunk data
 * in smtp_chunk.c. */
#include "proto/smtp_server.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp_server_internal.h"

/* Parsing pauses while more than this many reply bytes wait to be sent,
 * so a client that pipelines without reading cannot grow the queue. */
#define SMTP_SERVER_OUTPUT_PAUSE (64u * 1024u)

/* Input held while parsing is paused. A client that sends more than this
 * without reading its replies is dropped with 421. */
#define SMTP_SERVER_HELD_MAX (1024u * 1024u)

/* A reply line: SMTP_REPLY_MAX of text plus the CRLF. */
#define SMTP_SERVER_LINE_MAX (SMTP_REPLY_MAX + 2)

/* RFC 5321 section 4.5.3.1.4: the command line limit when none is set. */
#define SMTP_SERVER_DEFAULT_LINE 512

static size_t session_run(struct smtp_server *s, const char *data,
                          size_t len);

static int session_body_write(void *ctx, const char *data, size_t len)
{
    struct smtp_server *s = ctx;

    int rc;

    if (s->hooks->data_write == NULL) {
        return 0;
    }
    rc = s->hooks->data_write(s->ctx, data, len);
    if (rc == SMTP_HOOK_NO_SPACE) {
        return SMTP_BODY_NO_SPACE;
    }
    return rc < 0 ? -1 : 0;
}

struct smtp_server *smtp_server_new(const struct smtp_server_options *opts,
                                    const struct smtp_server_hooks *hooks,
                                    void *ctx)
{
    struct smtp_server *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        return NULL;
    }
    s->opts = opts;
    s->hooks = hooks;
    s->ctx = ctx;
    s->state = SMTP_STATE_CONNECTED;
    smtp_outq_init(&s->out);
    return s;
}

void smtp_server_free(struct smtp_server *s)
{
    if (s == NULL) {
        return;
    }
    if (s->state == SMTP_STATE_BODY && s->hooks->data_abort != NULL) {
        s->hooks->data_abort(s->ctx, NULL);
    }
    smtp_server_end_transaction(s);
    smtp_sasl_clear(&s->sasl);
    smtp_outq_cleanup(&s->out);
    free(s->held);
    free(s);
}

static void session_queue_line(struct smtp_server *s, const char *fmt,
                               va_list args)
{
    char line[SMTP_SERVER_LINE_MAX + 1];
    int n = vsnprintf(line, sizeof(line) - 2, fmt, args);
    size_t len;

    if (n < 0) {
        return;
    }
    len = (size_t)n < sizeof(line) - 3 ? (size_t)n : sizeof(line) - 3;
    memcpy(line + len, "\r\n", 2);
    if (smtp_outq_append(&s->out, line, len + 2) < 0) {
        /* The reply cannot be sent, so the dialogue cannot go on. */
        s->closing = true;
    }
}

void smtp_server_reply(struct smtp_server *s, const char *fmt, ...)
{
    va_list args;

    va_start(args, fmt);
    session_queue_line(s, fmt, args);
    va_end(args);
}

/* session_count_error counts one reply toward max_errors; at the limit it
 * queues 421 after it and closes. */
static void session_count_error(struct smtp_server *s)
{
    s->errors++;
    if (s->opts->max_errors != 0 && s->errors >= s->opts->max_errors) {
        smtp_server_reply(s, "421 4.7.0 %s Error: too many errors, "
                          "closing connection", s->opts->hostname);
        smtp_server_close(s, "too many errors");
    }
}

void smtp_server_reject(struct smtp_server *s, const char *fmt, ...)
{
    va_list args;

    va_start(args, fmt);
    session_queue_line(s, fmt, args);
    va_end(args);
    session_count_error(s);
}

bool smtp_server_count_junk(struct smtp_server *s)
{
    s->junk_commands++;
    if (s->opts->max_junk_commands == 0 ||
        s->junk_commands <= s->opts->max_junk_commands) {
        return false;
    }
    smtp_server_reply(s, "421 4.7.0 %s Error: too many commands without "
                      "mail, closing connection", s->opts->hostname);
    smtp_server_close(s, "too many commands without mail");
    return true;
}

void smtp_server_hook_reply(struct smtp_server *s, const char *reply)
{
    /* A CR or LF in the hook's text would split the reply in two. A NULL
     * or empty reply is a hook bug, answered as a temporary failure. */
    size_t len = reply != NULL ? strcspn(reply, "\r\n") : 0;

    if (reply == NULL || len == 0) {
        smtp_server_reply(s, "451 4.3.0 Error: request failed, try again "
                          "later");
        return;
    }
    smtp_server_reply(s, "%.*s", (int)len, reply);
    if (strncmp(reply, "421", 3) == 0) {
        smtp_server_close(s, "421 reply");
    }
}

void smtp_server_hook_refusal(struct smtp_server *s, const char *reply,
                               int rc)
{
    smtp_server_hook_reply(s, reply);
    if (rc == SMTP_HOOK_REJECT_COUNTED && !s->closing) {
        session_count_error(s);
    }
}

void smtp_server_abort_storage(struct smtp_server *s, const char *reply)
{
    if (s->storing) {
        s->storing = false;
        if (s->hooks->data_abort != NULL) {
            s->hooks->data_abort(s->ctx, reply);
        }
    }
}

void smtp_server_end_transaction(struct smtp_server *s)
{
    /* A BDAT chunk read outside a transaction leaves the state it was
     * sent in. */
    enum smtp_server_state state =
        s->state == SMTP_STATE_CHUNK ? s->chunk.after : s->state;

    smtp_server_abort_storage(s, NULL);
    if ((state & SMTP_STATE_TRANSACTION) != 0 && s->hooks->reset != NULL) {
        s->hooks->reset(s->ctx);
    }
    s->state = state == SMTP_STATE_CONNECTED ? SMTP_STATE_CONNECTED
                                             : SMTP_STATE_READY;
    s->rcpt_count = 0;
    s->rcpt_tried = false;
    s->smtputf8 = false;
    s->binarymime = false;
    s->bdat_used = false;
    s->bdat_failed = false;
}

void smtp_server_close(struct smtp_server *s, const char *reason)
{
    /* The reason is set first, so that data_abort() can read it. */
    s->closing = true;
    s->close_reason = reason;
    s->discarding = false;
    if (s->state == SMTP_STATE_BODY && s->hooks->data_abort != NULL) {
        s->hooks->data_abort(s->ctx, NULL);
    }

    /* During a commit the transaction belongs to the owner until
     * smtp_server_data_done() ends it. */
    if (s->state != SMTP_STATE_COMMIT) {
        smtp_server_end_transaction(s);
    }
}

void smtp_server_start_body(struct smtp_server *s)
{
    smtp_body_start(&s->body, s->opts->max_message_size,
                    s->binarymime ? 0 : s->opts->max_text_line,
                    session_body_write, s);

    /* DATA is refused in a BINARYMIME transaction, so only BDAT data is
     * ever raw, and a binary body has no lines to measure. */
    s->body.raw = s->binarymime;

    /* The header section is text even in a binary body, so the hop limit
     * applies to raw data too. */
    s->body.max_hops = s->opts->max_hops;
}

void smtp_server_begin_body(struct smtp_server *s)
{
    s->state = SMTP_STATE_BODY;
    smtp_server_start_body(s);
}

void smtp_server_greet(struct smtp_server *s)
{
    smtp_server_reply(s, "220 %s ESMTP ringrelay", s->opts->hostname);
    s->greeting_deferred = false;
    smtp_server_resume(s);
}

void smtp_server_greet_reply(struct smtp_server *s, const char *reply)
{
    smtp_server_hook_reply(s, reply);
    if (reply[0] != '2') {
        s->refused = true;
    }
    s->greeting_deferred = false;
    smtp_server_resume(s);
}

void smtp_server_defer_greeting(struct smtp_server *s)
{
    s->greeting_deferred = true;
}

void smtp_server_refuse(struct smtp_server *s, const char *reply,
                        const char *reason)
{
    if (s->closing) {
        return;
    }
    smtp_server_hook_reply(s, reply);
    smtp_server_close(s, reason);
}

bool smtp_server_receiving_data(const struct smtp_server *s)
{
    return s->state == SMTP_STATE_BODY || s->state == SMTP_STATE_CHUNK;
}

static size_t session_max_line(const struct smtp_server *s)
{
    size_t max_line = s->opts->max_line != 0 ? s->opts->max_line
                                             : SMTP_SERVER_DEFAULT_LINE;

    if (s->state == SMTP_STATE_AUTH && max_line < SMTP_SASL_LINE_MAX) {
        return SMTP_SASL_LINE_MAX;
    }
    return max_line;
}

static bool session_paused(const struct smtp_server *s)
{
    if (s->closing || s->greeting_deferred || s->tls_pending ||
        s->state == SMTP_STATE_COMMIT ||
        s->state == SMTP_STATE_AUTH_CHECK) {
        return true;
    }

    /* A body or chunk produces no replies until its end, so it is never
     * held back for output. */
    return s->state != SMTP_STATE_BODY && s->state != SMTP_STATE_CHUNK &&
           s->out.len > SMTP_SERVER_OUTPUT_PAUSE;
}

void smtp_server_body_error(const struct smtp_server *s, char *reply)
{
    const struct smtp_body *b = &s->body;

    if (b->bare_eol) {
        snprintf(reply, SMTP_REPLY_MAX, "550 5.6.0 Error: bare CR or LF "
                 "in the message is not allowed; end every line with CRLF");
    } else if (b->nul) {
        snprintf(reply, SMTP_REPLY_MAX, "550 5.6.0 Error: NUL byte in the "
                 "message is not allowed");
    } else if (b->too_big) {
        snprintf(reply, SMTP_REPLY_MAX, "552 5.3.4 Error: message size "
                 "exceeds the fixed maximum of %" PRIu64 " bytes",
                 s->opts->max_message_size);
    } else if (b->line_too_long) {
        /* RFC 3463 has no code for line length, so the reply uses X.6.0
         * (other or undefined media error) with 554 (transaction
         * failed). */
        snprintf(reply, SMTP_REPLY_MAX, "554 5.6.0 Error: message has a "
                 "line longer than %zu bytes with its CRLF; wrap long "
                 "lines or send them in base64 or quoted-printable",
                 s->opts->max_text_line);
    } else if (b->too_many_hops) {
        /* RFC 3463 X.4.6: routing loop detected. */
        snprintf(reply, SMTP_REPLY_MAX, "554 5.4.6 Error: too many hops "
                 "(%zu Received: headers), mail loop?", b->hops.count);
    } else if (b->no_space) {
        snprintf(reply, SMTP_REPLY_MAX, "452 4.3.1 Insufficient system "
                 "storage");
    } else {
        snprintf(reply, SMTP_REPLY_MAX, "451 4.3.0 Error: storing the "
                 "message failed, try again later");
    }
}

void smtp_server_end_body(struct smtp_server *s)
{
    char reply[SMTP_REPLY_MAX];

    s->command_waits++;
    if (!smtp_body_failed(&s->body)) {
        s->state = SMTP_STATE_COMMIT;
        if (s->hooks->data_end != NULL) {
            s->hooks->data_end(s->ctx);
        } else {
            smtp_server_data_done(s, "250 2.0.0 Ok");
        }
        return;
    }

    smtp_server_body_error(s, reply);
    if (s->hooks->data_abort != NULL) {
        s->hooks->data_abort(s->ctx, reply);
    }
    smtp_server_reply(s, "%s", reply);
    smtp_server_end_transaction(s);
}

static size_t session_body_input(struct smtp_server *s, const char *data,
                                 size_t len)
{
    bool done = false;
    size_t used = smtp_body_scan(&s->body, data, len, &done);

    if (done) {
        smtp_server_end_body(s);
    }
    return used;
}

/* session_reject_long_line rejects a line over the limit. One sent as an
 * AUTH response also ends the exchange, so the next line is a command. */
static void session_reject_long_line(struct smtp_server *s)
{
    if (s->state == SMTP_STATE_AUTH) {
        smtp_sasl_clear(&s->sasl);
        s->state = SMTP_STATE_READY;
    }
    smtp_server_reject(s, "500 5.5.6 Error: line too long");
}

/* session_line_input runs the command line at the start of data. Returns
 * the bytes consumed, or 0 when data holds only part of a line. */
static size_t session_line_input(struct smtp_server *s, const char *data,
                                 size_t len)
{
    const char *lf = memchr(data, '\n', len);
    size_t max_line = session_max_line(s);
    size_t used;

    if (s->discarding) {
        if (lf == NULL) {
            return len;
        }
        s->command_waits++;
        s->discarding = false;
        session_reject_long_line(s);
        return (size_t)(lf + 1 - data);
    }
    if (lf == NULL) {
        if (len < max_line) {
            return 0;
        }
        s->discarding = true;
        return len;
    }

    used = (size_t)(lf + 1 - data);
    s->command_waits++;
    if (used > max_line) {
        session_reject_long_line(s);
    } else if (s->state == SMTP_STATE_AUTH) {
        smtp_auth_response(s, data, used);
    } else {
        smtp_commands_execute(s, data, used);
    }
    return used;
}

/* session_run parses data[0..len) in place until it is used up, parsing
 * pauses, or only a partial command line is left. Returns the bytes
 * consumed. */
static size_t session_run(struct smtp_server *s, const char *data,
                          size_t len)
{
    bool was_running = s->running;
    size_t pos = 0;

    s->running = true;
    while (pos < len && !session_paused(s)) {
        size_t used;

        if (s->state == SMTP_STATE_BODY) {
            used = session_body_input(s, data + pos, len - pos);
        } else if (s->state == SMTP_STATE_CHUNK) {
            used = smtp_chunk_input(s, data + pos, len - pos);
        } else {
            used = session_line_input(s, data + pos, len - pos);
        }
        if (used == 0) {
            break;
        }
        pos += used;
    }
    s->running = was_running;
    return pos;
}

static int session_held_reserve(struct smtp_server *s, size_t extra)
{
    size_t need = s->held_len + extra;
    size_t capacity = s->held_capacity != 0 ? s->held_capacity : 1024;
    char *grown;

    if (need <= s->held_capacity) {
        return 0;
    }
    while (capacity < need) {
        capacity *= 2;
    }
    grown = realloc(s->held, capacity);
    if (grown == NULL) {
        return -1;
    }
    s->held = grown;
    s->held_capacity = capacity;
    return 0;
}

/* session_hold copies input that cannot be parsed now. */
static void session_hold(struct smtp_server *s, const char *data,
                         size_t len)
{
    if (s->tls_pending) {
        s->tls_discarded += len;
        return;
    }
    if (len == 0 || s->closing) {
        return;
    }
    if (s->held_len + len > SMTP_SERVER_HELD_MAX) {
        smtp_server_reply(s, "421 4.7.0 %s Error: too much input sent "
                          "without reading replies, closing connection",
                          s->opts->hostname);
        smtp_server_close(s, "too much input without reading replies");
        return;
    }
    if (session_held_reserve(s, len) < 0) {
        smtp_server_reply(s, "421 4.3.0 %s Error: out of memory, closing "
                          "connection", s->opts->hostname);
        smtp_server_close(s, "out of memory");
        return;
    }
    memcpy(s->held + s->held_len, data, len);
    s->held_len += len;
}

/* session_complete_line adds data up to the first LF to the partial line
 * in the held buffer and runs that line. Returns the bytes of data used. */
static size_t session_complete_line(struct smtp_server *s, const char *data,
                                    size_t len)
{
    const char *lf = memchr(data, '\n', len);
    size_t used = lf != NULL ? (size_t)(lf + 1 - data) : len;
    size_t max_line = session_max_line(s);
    size_t total = s->held_len + used;

    if (lf == NULL && total >= max_line) {
        s->held_len = 0;
        s->discarding = true;
        return len;
    }
    if (lf != NULL && total > max_line) {
        s->command_waits++;
        s->held_len = 0;
        session_reject_long_line(s);
        return used;
    }

    session_hold(s, data, used);
    if (lf != NULL && !s->closing) {
        session_run(s, s->held, s->held_len);
        s->held_len = 0;
    }
    return used;
}

void smtp_server_feed(struct smtp_server *s, const char *data, size_t len)
{
    size_t used;

    if (s->closing || len == 0) {
        return;
    }
    if (s->tls_pending) {
        s->tls_discarded += len;
        return;
    }

    /* Input held back for output that has drained since is parsed first,
     * in case the caller feeds before calling smtp_server_resume(). */
    smtp_server_resume(s);
    if (session_paused(s)) {
        session_hold(s, data, len);
        return;
    }

    /* After resume, held input is at most one partial command line. */
    if (s->held_len > 0) {
        used = session_complete_line(s, data, len);
        data += used;
        len -= used;
        if (len == 0 || s->closing) {
            return;
        }
        if (session_paused(s)) {
            session_hold(s, data, len);
            return;
        }
    }

    used = session_run(s, data, len);
    session_hold(s, data + used, len - used);
}

struct smtp_outq *smtp_server_output(struct smtp_server *s)
{
    return &s->out;
}

void smtp_server_resume(struct smtp_server *s)
{
    size_t used;

    if (s->running || s->held_len == 0 || session_paused(s)) {
        return;
    }
    used = session_run(s, s->held, s->held_len);
    if (s->tls_pending) {
        s->tls_discarded += s->held_len - used;
    }
    if (s->closing || s->tls_pending) {
        s->held_len = 0;
        return;
    }
    memmove(s->held, s->held + used, s->held_len - used);
    s->held_len -= used;
}

void smtp_server_data_done(struct smtp_server *s, const char *reply)
{
    if (s->state != SMTP_STATE_COMMIT) {
        return;
    }
    if (!s->closing) {
        smtp_server_hook_reply(s, reply);
    }
    smtp_server_end_transaction(s);
    smtp_server_resume(s);
}

void smtp_server_timeout(struct smtp_server *s)
{
    if (s->closing) {
        return;
    }
    smtp_server_reply(s, "421 4.4.2 %s Error: timeout exceeded, closing "
                      "connection", s->opts->hostname);
    smtp_server_close(s, "timeout");
}

void smtp_server_shutdown(struct smtp_server *s)
{
    if (s->closing) {
        return;
    }
    smtp_server_reply(s, "421 4.3.2 %s Service shutting down, closing "
                      "connection", s->opts->hostname);
    smtp_server_close(s, "shutdown");
}

const char *smtp_server_close_reason(const struct smtp_server *s)
{
    return s->closing ? s->close_reason : NULL;
}

bool smtp_server_closing(const struct smtp_server *s)
{
    return s->closing;
}

uint64_t smtp_server_command_waits(const struct smtp_server *s)
{
    return s->command_waits;
}

bool smtp_server_waiting(const struct smtp_server *s)
{
    return s->state == SMTP_STATE_COMMIT;
}

void smtp_server_set_client(struct smtp_server *s, const char *ip)
{
    snprintf(s->client_ip, sizeof(s->client_ip), "%s", ip);
}

const char *smtp_server_helo(const struct smtp_server *s)
{
    return s->helo;
}

bool smtp_server_used_esmtp(const struct smtp_server *s)
{
    return s->esmtp;
}

bool smtp_server_starttls_pending(const struct smtp_server *s)
{
    return s->tls_pending;
}

uint64_t smtp_server_tls_started(struct smtp_server *s)
{
    uint64_t discarded = s->tls_discarded;

    smtp_server_end_transaction(s);
    s->state = SMTP_STATE_CONNECTED;
    s->tls_pending = false;
    s->tls_active = true;
    s->tls_discarded = 0;
    s->held_len = 0;
    s->discarding = false;
    s->helo[0] = '\0';
    s->esmtp = false;

    /* RFC 3207 section 4.2 also voids an AUTH that came before TLS. */
    s->authenticated = false;
    s->auth_user[0] = '\0';
    return discarded;
}

bool smtp_server_encrypted(const struct smtp_server *s)
{
    return s->tls_active;
}
