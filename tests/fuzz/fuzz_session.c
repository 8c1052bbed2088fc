/* The fuzz harness session: hooks that record and check, and the output
 * reader that checks every reply line. With policy_hooks, the first
 * letter of an address picks what a hook does. 'r' rejects the address
 * with 550, and 'c' accepts it with a 250 reply of the hook's own. 'q'
 * replies 421, which closes the session. After a sender starting with
 * 'n', data_begin() fails with 452. */
#include "tests/fuzz/fuzz_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "proto/smtp_outq.h"

/* Bounds fuzz_session_settle(). Each round completes one commit or reads
 * one batch of replies, so an input of a few MiB needs far fewer rounds.
 * Reaching the bound means the session never stops producing work. */
#define FUZZ_SETTLE_ROUNDS (1u << 20)

/* iovecs read from the output queue per peek. */
#define FUZZ_PEEK_IOVECS 16

_Noreturn void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, what);
    abort();
}

static void buffer_append(struct fuzz_buffer *b, const char *data, size_t len)
{
    if (len == 0) {
        return;
    }
    if (b->len + len > b->capacity) {
        size_t capacity = b->capacity != 0 ? b->capacity : 4096;
        char *grown;

        while (capacity < b->len + len) {
            capacity *= 2;
        }
        grown = realloc(b->data, capacity);
        FUZZ_CHECK(grown != NULL);
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

static void log_event(struct fuzz_session *fs, const char *text, size_t len)
{
    buffer_append(&fs->events, text, len);
}

static void buffer_free(struct fuzz_buffer *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->capacity = 0;
}

bool fuzz_text_is_bad(const char *data, size_t len)
{
    if (len > 0 && memchr(data, '\0', len) != NULL) {
        return true;
    }
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\r' && (i + 1 == len || data[i + 1] != '\n')) {
            return true;
        }
        if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r')) {
            return true;
        }
    }
    return false;
}

/* policy_reply writes the reply that policy_hooks give to an address
 * starting with letter. Returns -1 to reject, or 0 to accept, where reply
 * may stay empty. */
static int policy_reply(const struct fuzz_session *fs, char letter, char *reply)
{
    if (!fs->policy_hooks) {
        return 0;
    }
    switch (letter) {
    case 'r':
        snprintf(reply, SMTP_REPLY_MAX,
                 "550 5.7.1 Error: address refused "
                 "by policy");
        return -1;
    case 'c':
        snprintf(reply, SMTP_REPLY_MAX, "250 2.1.0 Ok: accepted by policy");
        return 0;
    case 'q':
        snprintf(reply, SMTP_REPLY_MAX,
                 "421 4.3.0 fuzz.test Error: "
                 "closing by policy");
        return -1;
    default:
        return 0;
    }
}

static void check_path(const struct smtp_path *path)
{
    size_t len = strnlen(path->address, sizeof(path->address));

    FUZZ_CHECK(len <= SMTP_PATH_MAX);
    FUZZ_CHECK(path->domain >= path->address &&
               path->domain <= path->address + len);
}

static int hook_mail(void *ctx, const struct smtp_path *from,
                     const struct smtp_mail_params *params, char *reply)
{
    struct fuzz_session *fs = ctx;
    int rc;

    FUZZ_CHECK(!fs->refused);
    FUZZ_CHECK(!fs->in_transaction);
    FUZZ_CHECK(!fs->in_body && !fs->committing);
    check_path(from);

    rc = policy_reply(fs, from->address[0], reply);
    log_event(fs, rc == 0 ? "M" : "-M", rc == 0 ? 1 : 2);
    log_event(fs, from->address, strlen(from->address) + 1);
    if (rc == 0) {
        fs->in_transaction = true;
        fs->rcpts = 0;
        fs->nodata_sender = fs->policy_hooks && from->address[0] == 'n';
        fs->text_body = params->body == SMTP_BODY_7BIT ||
                        params->body == SMTP_BODY_8BITMIME;
    }
    return rc;
}

static int hook_rcpt(void *ctx, const struct smtp_path *to,
                     const struct smtp_rcpt_params *params, char *reply)
{
    struct fuzz_session *fs = ctx;
    int rc;

    (void)params;
    FUZZ_CHECK(!fs->refused);
    FUZZ_CHECK(fs->in_transaction);
    FUZZ_CHECK(!fs->in_body && !fs->committing);
    FUZZ_CHECK(!to->is_null);
    FUZZ_CHECK(fs->opts.max_rcpts == 0 || fs->rcpts < fs->opts.max_rcpts);
    check_path(to);

    rc = policy_reply(fs, to->address[0], reply);
    log_event(fs, rc == 0 ? "R" : "-R", rc == 0 ? 1 : 2);
    log_event(fs, to->address, strlen(to->address) + 1);
    if (rc == 0) {
        fs->rcpts++;
    }
    return rc;
}

static int hook_data_begin(void *ctx, char *reply)
{
    struct fuzz_session *fs = ctx;

    FUZZ_CHECK(!fs->refused);
    FUZZ_CHECK(fs->in_transaction && fs->rcpts > 0);
    FUZZ_CHECK(!fs->in_body && !fs->committing);
    if (fs->nodata_sender) {
        log_event(fs, "-B", 2);
        snprintf(reply, SMTP_REPLY_MAX, "452 4.3.1 Error: no storage");
        return -1;
    }
    log_event(fs, "B", 1);
    fs->in_body = true;
    fs->writes = 0;
    fs->body.len = 0;
    return 0;
}

static int hook_data_write(void *ctx, const char *data, size_t len)
{
    struct fuzz_session *fs = ctx;

    FUZZ_CHECK(fs->in_body);
    FUZZ_CHECK(len > 0);
    fs->writes++;
    if (fs->writes == fs->fail_write_at) {
        if (fs->messages == 0) {
            fs->write_failed = true;
        }
        return -1;
    }
    buffer_append(&fs->body, data, len);
    return 0;
}

/* end_message records the outcome of the first message and keeps its
 * body. */
static void end_message(struct fuzz_session *fs, enum fuzz_outcome outcome)
{
    fs->in_body = false;
    if (fs->messages == 0) {
        struct fuzz_buffer swap = fs->first_body;

        fs->first_outcome = outcome;
        fs->first_body = fs->body;
        fs->body = swap;
    }
    fs->body.len = 0;
    fs->messages++;
}

/* fuzz_longest_line returns the length of the longest line of
 * data[0..len), its LF included. */
static size_t fuzz_longest_line(const char *data, size_t len)
{
    size_t longest = 0;
    size_t start = 0;

    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n' || i + 1 == len) {
            size_t line = i + 1 - start;

            longest = line > longest ? line : longest;
            start = i + 1;
        }
    }
    return longest;
}

static void check_accepted_body(const struct fuzz_session *fs)
{
    const char *body = fs->body.data;
    size_t len = fs->body.len;
    uint64_t max = fs->opts.max_message_size;

    FUZZ_CHECK(fs->fail_write_at == 0 || fs->writes < fs->fail_write_at);
    FUZZ_CHECK(max == 0 || len <= max);
    if (!fs->text_body) {
        return;
    }
    FUZZ_CHECK(!fuzz_text_is_bad(body, len));
    FUZZ_CHECK(len == 0 ||
               (len >= 2 && memcmp(body + len - 2, "\r\n", 2) == 0));
    FUZZ_CHECK(fs->opts.max_text_line == 0 ||
               fuzz_longest_line(body, len) <= fs->opts.max_text_line);

    /* A line that is a single "." would end the body when the message is
     * relayed with DATA, so a second message could hide behind it. */
    FUZZ_CHECK(len < 3 || memcmp(body, ".\r\n", 3) != 0);
    FUZZ_CHECK(len < 5 || memmem(body, len, "\r\n.\r\n", 5) == NULL);
}

static void hook_data_end(void *ctx)
{
    struct fuzz_session *fs = ctx;

    FUZZ_CHECK(fs->in_body);
    check_accepted_body(fs);
    log_event(fs, "E", 1);
    log_event(fs, (const char *)&fs->body.len, sizeof(fs->body.len));
    log_event(fs, fs->body.data, fs->body.len);
    end_message(fs, FUZZ_OUTCOME_ACCEPTED);
    fs->committing = true;
    if (fs->commit_in_hook) {
        fs->committing = false;
        smtp_server_data_done(fs->server, FUZZ_QUEUED_REPLY);
    }
}

static void hook_data_abort(void *ctx, const char *reply)
{
    struct fuzz_session *fs = ctx;

    (void)reply;
    FUZZ_CHECK(fs->in_body);
    log_event(fs, "A", 1);
    end_message(fs, FUZZ_OUTCOME_ABORTED);
}

static void hook_reset(void *ctx)
{
    struct fuzz_session *fs = ctx;

    FUZZ_CHECK(fs->in_transaction);
    FUZZ_CHECK(!fs->in_body);
    log_event(fs, "X", 1);
    fs->in_transaction = false;
    fs->rcpts = 0;
}

/* check_credential checks a user name or password from AUTH: 1 to 255
 * bytes without control bytes, as proto/smtp_sasl.h promises. */
static void check_credential(const char *text)
{
    size_t len = strlen(text);

    FUZZ_CHECK(len >= 1 && len <= 255);
    for (size_t i = 0; i < len; i++) {
        FUZZ_CHECK((unsigned char)text[i] >= 0x20 && text[i] != 0x7f);
    }
}

/* hook_auth accepts user "u" with password "p" and answers at once. */
static void hook_auth(void *ctx, const char *mechanism, const char *user,
                      const char *password)
{
    struct fuzz_session *fs = ctx;
    bool ok = strcmp(user, "u") == 0 && strcmp(password, "p") == 0;

    FUZZ_CHECK(!fs->in_transaction);
    FUZZ_CHECK(fs->opts.auth_plaintext);
    FUZZ_CHECK(strcmp(mechanism, "PLAIN") == 0 ||
               strcmp(mechanism, "LOGIN") == 0);
    check_credential(user);
    check_credential(password);
    log_event(fs, "U", 1);
    log_event(fs, user, strlen(user) + 1);
    smtp_server_auth_done(fs->server, ok, NULL);
    FUZZ_CHECK((smtp_server_auth_user(fs->server) != NULL) == ok);
}

void fuzz_session_init(struct fuzz_session *fs)
{
    memset(fs, 0, sizeof(*fs));
    fs->opts.hostname = "fuzz.test";
    fs->continued_code = -1;
    fs->hooks.mail = hook_mail;
    fs->hooks.rcpt = hook_rcpt;
    fs->hooks.data_begin = hook_data_begin;
    fs->hooks.data_write = hook_data_write;
    fs->hooks.data_end = hook_data_end;
    fs->hooks.data_abort = hook_data_abort;
    fs->hooks.auth = hook_auth;
    fs->hooks.reset = hook_reset;
}

static void add_final(struct fuzz_session *fs, size_t offset)
{
    if (fs->finals_len == fs->finals_capacity) {
        size_t capacity =
            fs->finals_capacity != 0 ? fs->finals_capacity * 2 : 64;
        size_t *grown = realloc(fs->finals, capacity * sizeof(*grown));

        FUZZ_CHECK(grown != NULL);
        fs->finals = grown;
        fs->finals_capacity = capacity;
    }
    fs->finals[fs->finals_len++] = offset;
}

/* check_reply_line checks one output line, line[0..len) without CRLF,
 * that starts at offset in the output. */
static void check_reply_line(struct fuzz_session *fs, const char *line,
                             size_t len, size_t offset)
{
    int code;

    FUZZ_CHECK(!fs->ended);
    FUZZ_CHECK(len >= 4 && len <= SMTP_REPLY_MAX);
    FUZZ_CHECK(line[0] >= '2' && line[0] <= '5');
    FUZZ_CHECK(line[1] >= '0' && line[1] <= '5');
    FUZZ_CHECK(line[2] >= '0' && line[2] <= '9');
    FUZZ_CHECK(line[3] == ' ' || line[3] == '-');
    FUZZ_CHECK(memchr(line, '\r', len) == NULL);
    FUZZ_CHECK(memchr(line, '\n', len) == NULL);
    FUZZ_CHECK(memchr(line, '\0', len) == NULL);

    code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    FUZZ_CHECK(fs->continued_code < 0 || code == fs->continued_code);
    if (line[3] == '-') {
        fs->continued_code = code;
        return;
    }
    fs->continued_code = -1;

    /* After a refused greeting only QUIT is served, and a session may
     * still be closed with 421. */
    FUZZ_CHECK(!fs->refused || fs->finals_len == 0 || code / 100 == 5 ||
               code == 221 || code == 421);
    add_final(fs, offset);
    fs->ended = code == 221 || code == 421;
}

/* read_output moves every queued reply byte into fs->output and checks
 * the complete lines among them. */
static void read_output(struct fuzz_session *fs)
{
    struct smtp_outq *q = smtp_server_output(fs->server);

    while (q->len > 0) {
        struct iovec iov[FUZZ_PEEK_IOVECS];
        int count = smtp_outq_peek(q, iov, FUZZ_PEEK_IOVECS);
        size_t total = 0;

        FUZZ_CHECK(count > 0);
        for (int i = 0; i < count; i++) {
            buffer_append(&fs->output, iov[i].iov_base, iov[i].iov_len);
            total += iov[i].iov_len;
        }
        smtp_outq_consume(q, total);
    }

    for (;;) {
        const char *start = fs->output.data + fs->checked;
        size_t rest = fs->output.len - fs->checked;
        const char *end = rest >= 2 ? memmem(start, rest, "\r\n", 2) : NULL;

        if (end == NULL) {
            break;
        }
        check_reply_line(fs, start, (size_t)(end - start), fs->checked);
        fs->checked += (size_t)(end - start) + 2;
    }
}

void fuzz_session_start(struct fuzz_session *fs, bool refuse)
{
    fs->server = smtp_server_new(&fs->opts, &fs->hooks, fs);
    FUZZ_CHECK(fs->server != NULL);
    smtp_server_set_client(fs->server, "127.0.0.1");
    if (refuse) {
        fs->refused = true;
        smtp_server_greet_reply(fs->server, "554 5.3.2 fuzz.test Error: "
                                            "service refused");
    } else {
        smtp_server_greet(fs->server);
    }
}

/* answer_commit calls smtp_server_data_done() for every data_end() that
 * is pending, including those of messages that held input completes
 * meanwhile, so that where the feed calls cut the input does not decide
 * which commits are answered before a timeout or shutdown. */
static void answer_commit(struct fuzz_session *fs)
{
    unsigned round;

    for (round = 0; round < FUZZ_SETTLE_ROUNDS; round++) {
        if (!fs->committing || !smtp_server_waiting(fs->server)) {
            return;
        }
        fs->committing = false;
        smtp_server_data_done(fs->server, FUZZ_QUEUED_REPLY);
    }
    FUZZ_CHECK(round < FUZZ_SETTLE_ROUNDS);
}

void fuzz_session_settle(struct fuzz_session *fs)
{
    struct smtp_outq *q = smtp_server_output(fs->server);
    unsigned round;

    for (round = 0; round < FUZZ_SETTLE_ROUNDS; round++) {
        answer_commit(fs);
        read_output(fs);
        smtp_server_resume(fs->server);
        if (q->len == 0 && !smtp_server_waiting(fs->server)) {
            break;
        }
    }
    FUZZ_CHECK(round < FUZZ_SETTLE_ROUNDS);
}

void fuzz_session_feed(struct fuzz_session *fs, const char *data, size_t len,
                       const uint8_t lengths[FUZZ_SPLIT_COUNT])
{
    struct smtp_outq *q = smtp_server_output(fs->server);
    size_t pos = 0;

    for (size_t i = 0; pos < len; i++) {
        size_t piece = lengths[i % FUZZ_SPLIT_COUNT];
        bool was_closing = smtp_server_closing(fs->server);
        size_t queued = q->len;

        if (piece == 0 || piece > len - pos) {
            piece = len - pos;
        }
        smtp_server_feed(fs->server, data + pos, piece);
        FUZZ_CHECK(!was_closing || q->len == queued);
        pos += piece;

        answer_commit(fs);
        if (!fs->slow_reader) {
            fuzz_session_settle(fs);
        }
    }
}

const char *fuzz_session_final_reply(const struct fuzz_session *fs, size_t i,
                                     size_t *len)
{
    const char *line;
    const char *end;

    if (i >= fs->finals_len) {
        return NULL;
    }
    line = fs->output.data + fs->finals[i];
    end = memmem(line, fs->output.len - fs->finals[i], "\r\n", 2);
    FUZZ_CHECK(end != NULL);
    *len = (size_t)(end - line);
    return line;
}

void fuzz_session_finish(struct fuzz_session *fs)
{
    fuzz_session_settle(fs);
    FUZZ_CHECK(fs->checked == fs->output.len);
    FUZZ_CHECK(fs->continued_code < 0);
    if (fs->finals_len > 0) {
        const char *first = fs->output.data + fs->finals[0];

        FUZZ_CHECK(memcmp(first, fs->refused ? "554" : "220", 3) == 0);
    }

    smtp_server_free(fs->server);
    fs->server = NULL;
    FUZZ_CHECK(!fs->in_body);
    FUZZ_CHECK(!fs->in_transaction);
}

void fuzz_session_cleanup(struct fuzz_session *fs)
{
    buffer_free(&fs->body);
    buffer_free(&fs->first_body);
    buffer_free(&fs->output);
    buffer_free(&fs->events);
    free(fs->finals);
    fs->finals = NULL;
}
