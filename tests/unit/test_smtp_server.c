/* Tests for the SMTP server session (proto/smtp_server.h) and its output
 * queue. Every transcript runs twice: fed whole and fed one byte at a
 * time, and both runs must give the same replies, hook calls and body. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp_outq.h"
#include "proto/smtp_server.h"

#define GREETING "220 mx.test ESMTP ringrelay"
#define EHLO_REPLY                                                    \
    "250-mx.test|250-PIPELINING|250-SIZE 1000|250-8BITMIME|"          \
    "250-SMTPUTF8|250-CHUNKING|250-BINARYMIME|250-DSN|"              \
    "250 ENHANCEDSTATUSCODES"
#define QUEUED "250 2.0.0 Ok: queued as TEST"

/* Bounds every drain loop in these tests. */
#define DRAIN_ROUNDS_MAX 100000

/* Hook calls are logged as words: M<sender> R<recipient> B (data_begin)
 * E (data_end) A (data_abort) X (reset). */
struct recorder {
    char events[4096];
    size_t events_len;
    char *body;
    size_t body_len;
    size_t writes;
    char abort_reply[SMTP_REPLY_MAX]; /* of the last data_abort() */
    bool refuse_data;     /* set by a sender starting with "nodata" */
    bool fail_write;
    bool no_space;        /* data_write returns SMTP_HOOK_NO_SPACE */
    bool commit_in_hook;  /* call data_done from inside data_end() */
    bool reject_tls;      /* the starttls hook rejects with 454 */
    struct smtp_server *server;
};

struct harness {
    struct smtp_server_options opts;
    struct recorder rec;
    struct smtp_server *server;
    char *out;
    size_t out_len;
    bool auto_commit;     /* call data_done after each feed */
};

static void record(struct recorder *r, const char *fmt, ...)
{
    va_list args;
    size_t room = sizeof(r->events) - r->events_len;
    int n;

    va_start(args, fmt);
    n = vsnprintf(r->events + r->events_len, room, fmt, args);
    va_end(args);
    cr_assert(n >= 0 && (size_t)n < room, "event log overflow");
    r->events_len += (size_t)n;
}

/* The mail and rcpt hooks act on how the address starts. "busy" and
 * "deny" are refused, and "empty" is refused without reply text. "split"
 * is refused with a CRLF inside the reply, and "bye" with 421. "counted"
 * is refused with SMTP_HOOK_REJECT_COUNTED. "custom" is accepted with a
 * reply of the hook's own. */
static bool address_is(const struct smtp_path *path, const char *word)
{
    return strncmp(path->address, word, strlen(word)) == 0;
}

static int hook_mail(void *ctx, const struct smtp_path *from,
                     const struct smtp_mail_params *params, char *reply)
{
    struct recorder *r = ctx;

    (void)params;
    if (address_is(from, "busy")) {
        snprintf(reply, SMTP_REPLY_MAX, "450 4.7.1 Error: try again later");
        return -1;
    }
    record(r, "%sM<%s>", r->events_len ? " " : "", from->address);
    r->refuse_data = address_is(from, "nodata");
    if (address_is(from, "custom")) {
        snprintf(reply, SMTP_REPLY_MAX, "250 2.1.0 Sender custom-ok");
    }
    return 0;
}

static int hook_rcpt(void *ctx, const struct smtp_path *to,
                     const struct smtp_rcpt_params *params, char *reply)
{
    struct recorder *r = ctx;

    (void)params;
    if (address_is(to, "deny")) {
        snprintf(reply, SMTP_REPLY_MAX, "554 5.7.1 <%s>: Relay access denied",
                 to->address);
        return -1;
    }
    if (address_is(to, "counted")) {
        snprintf(reply, SMTP_REPLY_MAX, "554 5.7.1 <%s>: Relay access denied",
                 to->address);
        return SMTP_HOOK_REJECT_COUNTED;
    }
    if (address_is(to, "empty")) {
        return -1;
    }
    if (address_is(to, "split")) {
        snprintf(reply, SMTP_REPLY_MAX, "554 5.7.1 first line\r\n"
                 "250 2.0.0 injected");
        return -1;
    }
    if (address_is(to, "bye")) {
        snprintf(reply, SMTP_REPLY_MAX, "421 4.3.2 mx.test closing");
        return -1;
    }
    record(r, "%sR<%s>", r->events_len ? " " : "", to->address);
    if (address_is(to, "custom")) {
        snprintf(reply, SMTP_REPLY_MAX, "251 2.1.5 User not local; will "
                 "forward");
    }
    return 0;
}

static int hook_data_begin(void *ctx, char *reply)
{
    struct recorder *r = ctx;

    if (r->refuse_data) {
        snprintf(reply, SMTP_REPLY_MAX, "452 4.3.1 Error: no storage");
        return -1;
    }
    record(r, " B");
    return 0;
}

static int hook_data_write(void *ctx, const char *data, size_t len)
{
    struct recorder *r = ctx;

    if (r->fail_write) {
        return -1;
    }
    if (r->no_space) {
        return SMTP_HOOK_NO_SPACE;
    }
    r->body = realloc(r->body, r->body_len + len);
    cr_assert_not_null(r->body);
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->writes++;
    return 0;
}

static void hook_data_end(void *ctx)
{
    struct recorder *r = ctx;

    record(r, " E");
    if (r->commit_in_hook) {
        smtp_server_data_done(r->server, QUEUED);
    }
}

static void hook_data_abort(void *ctx, const char *reply)
{
    struct recorder *r = ctx;

    record(r, " A");
    snprintf(r->abort_reply, sizeof(r->abort_reply), "%s",
             reply != NULL ? reply : "(null)");
}

static void hook_reset(void *ctx)
{
    record(ctx, " X");
}

static const struct smtp_server_hooks test_hooks = {
    .mail = hook_mail,
    .rcpt = hook_rcpt,
    .data_begin = hook_data_begin,
    .data_write = hook_data_write,
    .data_end = hook_data_end,
    .data_abort = hook_data_abort,
    .reset = hook_reset,
};

static void harness_start(struct harness *h)
{
    h->server = smtp_server_new(&h->opts, &test_hooks, &h->rec);
    cr_assert_not_null(h->server);
    h->rec.server = h->server;
    smtp_server_greet(h->server);
}

static void harness_init(struct harness *h)
{
    memset(h, 0, sizeof(*h));
    h->opts.hostname = "mx.test";
    h->opts.max_message_size = 1000;
    h->opts.max_line = 512;
    h->opts.max_rcpts = 3;
    h->opts.max_errors = 5;
    h->auto_commit = true;
    harness_start(h);
}

static void harness_cleanup(struct harness *h)
{
    smtp_server_free(h->server);
    free(h->rec.body);
    free(h->out);
}

/* harness_send captures and consumes what is queued, as a completed
 * send would. Returns false when nothing was queued. */
static bool harness_send(struct harness *h)
{
    struct smtp_outq *q = smtp_server_output(h->server);
    struct iovec iov[8];
    int count = smtp_outq_peek(q, iov, 8);
    size_t sent = 0;

    if (count == 0) {
        cr_assert_eq(q->len, 0, "queue has %zu bytes but peek found none",
                     q->len);
        return false;
    }
    for (int i = 0; i < count; i++) {
        h->out = realloc(h->out, h->out_len + iov[i].iov_len + 1);
        cr_assert_not_null(h->out);
        memcpy(h->out + h->out_len, iov[i].iov_base, iov[i].iov_len);
        h->out_len += iov[i].iov_len;
        h->out[h->out_len] = '\0';
        sent += iov[i].iov_len;
    }
    smtp_outq_consume(q, sent);
    return true;
}

/* harness_drain sends everything queued, as the daemon does: send, then
 * resume, until nothing is left. */
static void harness_drain(struct harness *h)
{
    for (int round = 0; round < DRAIN_ROUNDS_MAX; round++) {
        if (!harness_send(h)) {
            return;
        }
        smtp_server_resume(h->server);
    }
    cr_assert_fail("output did not drain in %d rounds", DRAIN_ROUNDS_MAX);
}

/* harness_commit calls smtp_server_data_done() while the session waits,
 * because held input may finish one more body each time. */
static void harness_commit(struct harness *h)
{
    for (int round = 0; round < DRAIN_ROUNDS_MAX; round++) {
        if (!h->auto_commit || !smtp_server_waiting(h->server)) {
            return;
        }
        smtp_server_data_done(h->server, QUEUED);
    }
    cr_assert_fail("still waiting after %d commits", DRAIN_ROUNDS_MAX);
}

/* harness_feed feeds data in pieces of step bytes (all of it when step
 * is 0), sending the output and committing bodies after each piece. */
static void harness_feed(struct harness *h, const char *data, size_t len,
                         size_t step)
{
    size_t pos = 0;

    harness_drain(h);
    while (pos < len) {
        size_t n = step == 0 || step > len - pos ? len - pos : step;

        smtp_server_feed(h->server, data + pos, n);
        harness_commit(h);
        harness_drain(h);
        pos += n;
    }
}

/* replies_match checks that out has exactly the lines of want, a list of
 * line prefixes separated by '|'. */
static bool replies_match(const char *out, const char *want)
{
    for (;;) {
        const char *bar = strchr(want, '|');
        size_t prefix = bar != NULL ? (size_t)(bar - want) : strlen(want);
        const char *eol = strstr(out, "\r\n");

        if (eol == NULL || (size_t)(eol - out) < prefix ||
            strncmp(out, want, prefix) != 0) {
            return false;
        }
        out = eol + 2;
        if (bar == NULL) {
            return *out == '\0';
        }
        want = bar + 1;
    }
}

static void expect_replies(const char *name, const char *out,
                           const char *want)
{
    cr_expect(replies_match(out, want), "%s:\n got: %s\nwant: %s", name,
              out, want);
}

struct transcript_case {
    const char *name;
    const char *input;
    size_t input_len;     /* 0 for strlen(input) */
    const char *replies;  /* after the greeting */
    const char *events;   /* NULL to skip the check */
    const char *body;     /* NULL to skip the check */
};

#define HI "EHLO client.test\r\n"
#define MAIL_OK "MAIL FROM:<a@b.test>\r\n"
#define RCPT_OK "RCPT TO:<c@d.test>\r\n"

/* "jos\u00e9" and "b\u00fccher.test" in UTF-8. */
#define UTF8_LOCAL "jos\xc3\xa9"
#define UTF8_DOMAIN "b\xc3\xbc" "cher.test"

/* Bodies with a NUL byte, which RFC 5322 text excludes. */
#define NUL_IN_DATA HI MAIL_OK RCPT_OK "DATA\r\nab\0cd\r\n.\r\nNOOP\r\n"
#define NUL_AT_LINE_START HI MAIL_OK RCPT_OK "DATA\r\nx\r\n\0\r\n.\r\n" \
    MAIL_OK
#define NUL_AFTER_DOT HI MAIL_OK RCPT_OK "DATA\r\n.\0\r\n.\r\n"

static const struct transcript_case transcript_cases[] = {
    {"ehlo", HI, 0, EHLO_REPLY, "", NULL},
    {"ehlo lowercase", "ehlo client.test\r\n", 0, EHLO_REPLY, NULL, NULL},
    {"ehlo address literal", "EHLO [127.0.0.1]\r\n", 0, EHLO_REPLY, NULL,
     NULL},
    {"ehlo trailing blanks", "EHLO client.test  \r\n", 0, EHLO_REPLY, NULL,
     NULL},
    {"ehlo without name", "EHLO\r\n", 0, "501 5.5.4 Syntax: EHLO hostname",
     NULL, NULL},
    {"ehlo two names", "EHLO a b\r\n", 0, "501 5.5.4", NULL, NULL},
    {"helo", "HELO client.test\r\n", 0, "250 mx.test", NULL, NULL},
    {"helo bad name", "HELO <x>\r\n", 0, "501 5.5.4", NULL, NULL},
    {"mail before helo", MAIL_OK, 0, "503 5.5.1", "", NULL},
    {"mail", HI MAIL_OK, 0, EHLO_REPLY "|250 2.1.0 Ok", "M<a@b.test>",
     NULL},
    {"mail after helo", "HELO c.test\r\n" MAIL_OK, 0, "250 mx.test|250 2.1.0",
     NULL, NULL},
    {"mail null path", HI "MAIL FROM:<>\r\n", 0, EHLO_REPLY "|250 2.1.0",
     "M<>", NULL},
    {"mail lowercase", HI "mail from:<a@b.test>\r\n", 0,
     EHLO_REPLY "|250 2.1.0", NULL, NULL},
    {"mail blank after colon", HI "MAIL FROM: <a@b.test>\r\n", 0,
     EHLO_REPLY "|250 2.1.0", NULL, NULL},
    {"mail size and body", HI "MAIL FROM:<a@b.test> SIZE=1000 "
     "body=8bitmime\r\n", 0, EHLO_REPLY "|250 2.1.0", NULL, NULL},
    {"mail body 7bit", HI "MAIL FROM:<a@b.test> BODY=7BIT\r\n", 0,
     EHLO_REPLY "|250 2.1.0", NULL, NULL},
    {"mail size over limit", HI "MAIL FROM:<a@b.test> SIZE=1001\r\n", 0,
     EHLO_REPLY "|552 5.3.4", "", NULL},
    {"mail size overflow", HI "MAIL FROM:<a@b.test> "
     "SIZE=99999999999999999999\r\n", 0, EHLO_REPLY "|555 5.5.4", NULL,
     NULL},
    {"mail size not a number", HI "MAIL FROM:<a@b.test> SIZE=1x\r\n", 0,
     EHLO_REPLY "|555 5.5.4", NULL, NULL},
    {"mail size without value", HI "MAIL FROM:<a@b.test> SIZE\r\n", 0,
     EHLO_REPLY "|555 5.5.4", NULL, NULL},
    {"mail unknown parameter", HI "MAIL FROM:<a@b.test> FOO=bar\r\n", 0,
     EHLO_REPLY "|555 5.5.4", NULL, NULL},
    {"mail bad body value", HI "MAIL FROM:<a@b.test> BODY=8BIT\r\n",
     0, EHLO_REPLY "|555 5.5.4", NULL, NULL},
    {"mail smtputf8", HI "MAIL FROM:<a@b.test> SMTPUTF8\r\n", 0,
     EHLO_REPLY "|250 2.1.0", "M<a@b.test>", NULL},
    {"mail smtputf8 with value", HI "MAIL FROM:<a@b.test> SMTPUTF8=yes\r\n",
     0, EHLO_REPLY "|555 5.5.4", "", NULL},
    {"mail smtputf8 empty value", HI "MAIL FROM:<a@b.test> SMTPUTF8=\r\n",
     0, EHLO_REPLY "|555 5.5.4", "", NULL},
    {"mail smtputf8 repeated", HI "MAIL FROM:<a@b.test> SMTPUTF8 "
     "smtputf8\r\n", 0, EHLO_REPLY "|555 5.5.4", "", NULL},
    {"mail utf-8 sender", HI "MAIL FROM:<" UTF8_LOCAL "@" UTF8_DOMAIN "> "
     "SMTPUTF8\r\n", 0, EHLO_REPLY "|250 2.1.0",
     "M<" UTF8_LOCAL "@" UTF8_DOMAIN ">", NULL},
    {"mail utf-8 sender without smtputf8", HI "MAIL FROM:<" UTF8_LOCAL
     "@b.test>\r\n", 0, EHLO_REPLY "|553 5.6.7 Error: non-ASCII sender "
     "address needs SMTPUTF8", "", NULL},
    {"mail utf-8 sender with other parameter", HI "MAIL FROM:<a@"
     UTF8_DOMAIN "> SIZE=10\r\n", 0, EHLO_REPLY "|553 5.6.7", "", NULL},
    {"mail invalid utf-8 sender", HI "MAIL FROM:<\xc3@b.test> SMTPUTF8\r\n",
     0, EHLO_REPLY "|501 5.1.7", "", NULL},
    {"mail utf-8 in address literal", HI "MAIL FROM:<a@[192.0.2."
     "\xc3\xa9]> SMTPUTF8\r\n", 0, EHLO_REPLY "|501 5.1.7 Error: bad "
     "sender address syntax", "", NULL},
    {"rcpt utf-8 in quoted pair", HI "MAIL FROM:<a@b.test> SMTPUTF8\r\n"
     "RCPT TO:<\"\\\xc3\xa9\"@d.test>\r\n", 0, EHLO_REPLY "|250 2.1.0|"
     "501 5.1.3 Error: bad recipient address syntax", "M<a@b.test>", NULL},
    {"mail overlong utf-8 sender", HI "MAIL FROM:<\xc0\xaf@b.test> "
     "SMTPUTF8\r\n", 0, EHLO_REPLY "|501 5.1.7", "", NULL},
    {"rcpt utf-8 with smtputf8", HI "MAIL FROM:<a@b.test> SMTPUTF8\r\n"
     "RCPT TO:<" UTF8_LOCAL "@" UTF8_DOMAIN ">\r\n", 0,
     EHLO_REPLY "|250 2.1.0|250 2.1.5",
     "M<a@b.test> R<" UTF8_LOCAL "@" UTF8_DOMAIN ">", NULL},
    {"rcpt utf-8 without smtputf8", HI MAIL_OK "RCPT TO:<" UTF8_LOCAL
     "@d.test>\r\n", 0, EHLO_REPLY "|250 2.1.0|553 5.6.7 Error: non-ASCII "
     "recipient address needs SMTPUTF8", "M<a@b.test>", NULL},
    {"smtputf8 ends with the transaction", HI "MAIL FROM:<a@b.test> "
     "SMTPUTF8\r\nRSET\r\n" MAIL_OK "RCPT TO:<" UTF8_LOCAL "@d.test>\r\n",
     0, EHLO_REPLY "|250 2.1.0|250 2.0.0|250 2.1.0|553 5.6.7", NULL, NULL},
    {"smtputf8 ends after data", HI "MAIL FROM:<a@b.test> SMTPUTF8\r\n"
     RCPT_OK "DATA\r\nx\r\n.\r\n" MAIL_OK "RCPT TO:<" UTF8_LOCAL
     "@d.test>\r\n", 0, EHLO_REPLY "|250 2.1.0|250 2.1.5|354|" QUEUED
     "|250 2.1.0|553 5.6.7", NULL, NULL},
    {"ehlo u-label", "EHLO " UTF8_DOMAIN "\r\n", 0, EHLO_REPLY, NULL,
     NULL},
    {"ehlo invalid utf-8", "EHLO b\xc3r.test\r\n", 0, "501 5.5.4", NULL,
     NULL},
    {"ehlo utf-8 not a domain", "EHLO \xc3\xa4@x\r\n", 0, "501 5.5.4",
     NULL, NULL},
    {"helo u-label", "HELO " UTF8_DOMAIN "\r\n", 0, "250 mx.test", NULL,
     NULL},
    {"mail repeated parameter", HI "MAIL FROM:<a@b.test> SIZE=1 SIZE=2\r\n",
     0, EHLO_REPLY "|555 5.5.4", NULL, NULL},
    {"mail without from", HI "MAIL <a@b.test>\r\n", 0,
     EHLO_REPLY "|501 5.5.4 Syntax: MAIL FROM:<address>", NULL, NULL},
    {"mail without brackets", HI "MAIL FROM:a@b.test\r\n", 0,
     EHLO_REPLY "|501 5.1.7", NULL, NULL},
    {"mail junk after path", HI "MAIL FROM:<a@b.test>x\r\n", 0,
     EHLO_REPLY "|501 5.5.4", NULL, NULL},
    {"mail postmaster", HI "MAIL FROM:<postmaster>\r\n", 0,
     EHLO_REPLY "|501 5.1.7", NULL, NULL},
    {"mail 8-bit address", HI "MAIL FROM:<\xc3\xbc@b.test>\r\n", 0,
     EHLO_REPLY "|553 5.6.7", NULL, NULL},
    {"mail nested", HI MAIL_OK MAIL_OK, 0,
     EHLO_REPLY "|250 2.1.0|503 5.5.1 Error: nested MAIL command",
     "M<a@b.test>", NULL},
    {"rcpt before mail", HI RCPT_OK, 0,
     EHLO_REPLY "|503 5.5.1 Error: need MAIL command", "", NULL},
    {"rcpt", HI MAIL_OK RCPT_OK, 0, EHLO_REPLY "|250 2.1.0|250 2.1.5 Ok",
     "M<a@b.test> R<c@d.test>", NULL},
    {"rcpt postmaster", HI MAIL_OK "RCPT TO:<Postmaster>\r\n", 0,
     EHLO_REPLY "|250 2.1.0|250 2.1.5", "M<a@b.test> R<Postmaster>", NULL},
    {"rcpt null path", HI MAIL_OK "RCPT TO:<>\r\n", 0,
     EHLO_REPLY "|250 2.1.0|501 5.1.3", NULL, NULL},
    {"rcpt two at signs", HI MAIL_OK "RCPT TO:<a@b@c>\r\n", 0,
     EHLO_REPLY "|250 2.1.0|501 5.1.3", NULL, NULL},
    {"rcpt without to", HI MAIL_OK "RCPT <c@d.test>\r\n", 0,
     EHLO_REPLY "|250 2.1.0|501 5.5.4 Syntax: RCPT TO:<address>", NULL,
     NULL},
    {"rcpt unknown parameter", HI MAIL_OK "RCPT TO:<c@d.test> FOO=bar\r\n",
     0, EHLO_REPLY "|250 2.1.0|555 5.5.4", NULL, NULL},
    {"rcpt too many", HI MAIL_OK RCPT_OK RCPT_OK RCPT_OK RCPT_OK, 0,
     EHLO_REPLY "|250 2.1.0|250 2.1.5|250 2.1.5|250 2.1.5|452 4.5.3", NULL,
     NULL},
    {"rcpt refused by hook", HI MAIL_OK "RCPT TO:<deny@d.test>\r\nDATA\r\n",
     0, EHLO_REPLY "|250 2.1.0|554 5.7.1 <deny@d.test>: Relay access denied"
     "|554 5.5.1 Error: no valid recipients", "M<a@b.test>", NULL},
    {"data before mail", HI "DATA\r\n", 0,
     EHLO_REPLY "|503 5.5.1 Error: need MAIL command", NULL, NULL},
    {"data before rcpt", HI MAIL_OK "DATA\r\n", 0,
     EHLO_REPLY "|250 2.1.0|503 5.5.1 Error: need RCPT command", NULL,
     NULL},
    {"data with argument", HI MAIL_OK RCPT_OK "DATA x\r\n", 0,
     EHLO_REPLY "|250 2.1.0|250 2.1.5|501 5.5.4 Syntax: DATA", NULL, NULL},
    {"data refused by hook", HI "MAIL FROM:<nodata@b.test>\r\n" RCPT_OK
     "DATA\r\nNOOP\r\n", 0, EHLO_REPLY "|250 2.1.0|250 2.1.5|452 4.3.1"
     "|250 2.0.0", NULL, NULL},
    {"rset", HI MAIL_OK "RSET\r\n" RCPT_OK, 0,
     EHLO_REPLY "|250 2.1.0|250 2.0.0 Ok|503 5.5.1", "M<a@b.test> X", NULL},
    {"rset before helo", "RSET\r\nMAIL FROM:<a@b.test>\r\n", 0,
     "250 2.0.0|503 5.5.1 Error: send HELO/EHLO first", "", NULL},
    {"rset with argument", HI "RSET x\r\n", 0, EHLO_REPLY "|501 5.5.4",
     NULL, NULL},
    {"ehlo ends transaction", HI MAIL_OK HI RCPT_OK, 0,
     EHLO_REPLY "|250 2.1.0|" EHLO_REPLY "|503 5.5.1", "M<a@b.test> X",
     NULL},
    {"noop", "NOOP\r\nnoop some text\r\n", 0, "250 2.0.0 Ok|250 2.0.0 Ok",
     NULL, NULL},
    {"quit", "QUIT\r\nNOOP\r\n", 0, "221 2.0.0", NULL, NULL},
    {"quit ends transaction", HI MAIL_OK "QUIT\r\n", 0,
     EHLO_REPLY "|250 2.1.0|221 2.0.0", "M<a@b.test> X", NULL},
    {"quit with argument", "QUIT now\r\n", 0, "501 5.5.4", NULL, NULL},
    {"vrfy", "VRFY someone\r\n", 0, "252 2.5.0", NULL, NULL},
    {"vrfy without argument", "VRFY\r\n", 0, "501 5.5.4", NULL, NULL},
    {"help", "HELP\r\nHELP MAIL\r\n", 0,
     "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT "
     "VRFY HELP|214 2.0.0", NULL, NULL},
    {"unknown command", "FROB\r\n", 0,
     "500 5.5.2 Error: command not recognized", NULL, NULL},
    {"verb with colon", "NOOP:\r\n", 0, "500 5.5.2", NULL, NULL},
    {"verb with digit", "NOOP1\r\n", 0, "500 5.5.2", NULL, NULL},
    {"empty line", "\r\n", 0, "500 5.5.2", NULL, NULL},
    {"leading blank", " NOOP\r\n", 0, "500 5.5.2", NULL, NULL},
    {"nul byte", "NO\0OP\r\nNOOP\r\n", 13,
     "500 5.5.2 Error: NUL byte in command line|250 2.0.0", NULL, NULL},
    {"bare lf", "NOOP\nNOOP\r\n", 0,
     "500 5.5.2 Error: command line must end with CRLF|250 2.0.0", NULL,
     NULL},
    {"bare cr", "NO\rOP\r\n", 0, "500 5.5.2 Error: bare CR in command line",
     NULL, NULL},
    {"transaction", HI MAIL_OK RCPT_OK "DATA\r\nSubject: x\r\n\r\nhello\r\n"
     ".\r\nQUIT\r\n", 0, EHLO_REPLY "|250 2.1.0|250 2.1.5|354 End data with "
     "<CR><LF>.<CR><LF>|" QUEUED "|221 2.0.0",
     "M<a@b.test> R<c@d.test> B E X", "Subject: x\r\n\r\nhello\r\n"},
    {"empty body", HI MAIL_OK RCPT_OK "DATA\r\n.\r\nNOOP\r\n", 0,
     EHLO_REPLY "|250 2.1.0|250 2.1.5|354|" QUEUED "|250 2.0.0",
     "M<a@b.test> R<c@d.test> B E X", ""},
    {"dot-stuffed lines", HI MAIL_OK RCPT_OK "DATA\r\n..\r\n..a\r\nb.\r\n"
     "...\r\n. x\r\n.\r\n", 0, EHLO_REPLY "|250 2.1.0|250 2.1.5|354|"
     QUEUED, NULL, "..\r\n..a\r\nb.\r\n...\r\n. x\r\n"},
    {"body without final crlf before dot", HI MAIL_OK RCPT_OK "DATA\r\nab."
     "\r\n.\r\n", 0, EHLO_REPLY "|250 2.1.0|250 2.1.5|354|" QUEUED, NULL,
     "ab.\r\n"},
    {"nul in data", NUL_IN_DATA, sizeof(NUL_IN_DATA) - 1,
     EHLO_REPLY "|250 2.1.0|250 2.1.5|354|550 5.6.0 Error: NUL byte in the "
     "message is not allowed|250 2.0.0", "M<a@b.test> R<c@d.test> B A X",
     NULL},
    {"nul at line start", NUL_AT_LINE_START, sizeof(NUL_AT_LINE_START) - 1,
     EHLO_REPLY "|250 2.1.0|250 2.1.5|354|550 5.6.0 Error: NUL byte|"
     "250 2.1.0", "M<a@b.test> R<c@d.test> B A X M<a@b.test>", NULL},
    {"nul after leading dot", NUL_AFTER_DOT, sizeof(NUL_AFTER_DOT) - 1,
     EHLO_REPLY "|250 2.1.0|250 2.1.5|354|550 5.6.0 Error: NUL byte",
     "M<a@b.test> R<c@d.test> B A X", NULL},
    {"second transaction", HI MAIL_OK RCPT_OK "DATA\r\none\r\n.\r\n"
     "MAIL FROM:<e@f.test>\r\n" RCPT_OK "DATA\r\ntwo\r\n.\r\n", 0,
     EHLO_REPLY "|250 2.1.0|250 2.1.5|354|" QUEUED "|250 2.1.0|250 2.1.5|"
     "354|" QUEUED, "M<a@b.test> R<c@d.test> B E X M<e@f.test> R<c@d.test> "
     "B E X", "one\r\ntwo\r\n"},
    /* Only an EHLO reply offers extensions (RFC 5321 section 4.1.1.1). */
    {"helo offers no parameters", "HELO c.test\r\n"
     "MAIL FROM:<a@b.test> SIZE=10\r\n"
     "MAIL FROM:<a@b.test> BODY=8BITMIME\r\n"
     "MAIL FROM:<" UTF8_LOCAL "@b.test> SMTPUTF8\r\n", 0,
     "250 mx.test|555 5.5.4 Error: MAIL parameter not offered: SIZE=10|"
     "555 5.5.4 Error: MAIL parameter not offered: BODY=8BITMIME|"
     "553 5.6.7", "", NULL},
    {"helo then bdat", "HELO c.test\r\n" MAIL_OK RCPT_OK
     "BDAT 3 LAST\r\nabcNOOP\r\n", 0,
     "250 mx.test|250 2.1.0|250 2.1.5|503 5.5.1 Error: BDAT needs EHLO, "
     "not HELO|250 2.0.0", "M<a@b.test> R<c@d.test>", NULL},
    {"data after rcpt syntax error", HI MAIL_OK "RCPT TO:<bad>\r\nDATA\r\n",
     0, EHLO_REPLY "|250 2.1.0|501 5.1.3|554 5.5.1 Error: no valid "
     "recipients", NULL, NULL},
};

#define TXN HI MAIL_OK RCPT_OK
#define TXN_REPLY EHLO_REPLY "|250 2.1.0|250 2.1.5"
#define TXN_EVENTS "M<a@b.test> R<c@d.test>"

#define BDAT_NUL TXN "BDAT 3\r\na\0bBDAT 1 LAST\r\nxNOOP\r\n"

/* BDAT transcripts: chunks are read by count, pipelined with the
 * envelope and with each other in one feed (and again bytewise). */
static const struct transcript_case bdat_cases[] = {
    {"bdat one chunk", TXN "BDAT 8 LAST\r\nab\r\ncd\r\n", 0,
     TXN_REPLY "|" QUEUED, TXN_EVENTS " B E X", "ab\r\ncd\r\n"},
    {"bdat without final crlf", TXN "BDAT 5 LAST\r\nab\r\nc", 0,
     TXN_REPLY "|" QUEUED, TXN_EVENTS " B E X", "ab\r\nc\r\n"},
    {"bdat dot-stuffing", TXN "BDAT 5\r\nab\r\n.BDAT 8 LAST\r\nx\r\n"
     "..\r\n.", 0, TXN_REPLY "|250 2.0.0 5 octets received|" QUEUED,
     TXN_EVENTS " B E X", "ab\r\n..x\r\n...\r\n..\r\n"},
    {"bdat dot inside line", TXN "BDAT 6 LAST\r\na.\r\nb.", 0,
     TXN_REPLY "|" QUEUED, NULL, "a.\r\nb.\r\n"},
    {"bdat 0 last", TXN "BDAT 0 LAST\r\nNOOP\r\n", 0,
     TXN_REPLY "|" QUEUED "|250 2.0.0 Ok", TXN_EVENTS " B E X", ""},
    {"bdat empty chunks", TXN "BDAT 0\r\nBDAT 3\r\nabcBDAT 0 LAST\r\n",
     0, TXN_REPLY "|250 2.0.0 0 octets received|250 2.0.0 3 octets "
     "received|" QUEUED, TXN_EVENTS " B E X", "abc\r\n"},
    {"bdat crlf split between chunks", TXN "BDAT 3\r\nab\rBDAT 4 LAST\r\n"
     "\n.z\n", 0, TXN_REPLY "|250 2.0.0 3 octets received|550 5.6.0",
     TXN_EVENTS " B A X", NULL},
    {"bdat crlf pair split", TXN "BDAT 3\r\nab\rBDAT 5 LAST\r\n\n.z\r\n",
     0, TXN_REPLY "|250 2.0.0 3 octets received|" QUEUED,
     TXN_EVENTS " B E X", "ab\r\n..z\r\n"},
    {"bdat chunk holds commands", TXN "BDAT 12 LAST\r\nQUIT\r\nRSET\r\n"
     "NOOP\r\n", 0, TXN_REPLY "|" QUEUED "|250 2.0.0 Ok",
     TXN_EVENTS " B E X", "QUIT\r\nRSET\r\n"},
    {"bdat chunk holds crlf dot crlf", TXN "BDAT 7 LAST\r\na\r\n.\r\nb",
     0, TXN_REPLY "|" QUEUED, TXN_EVENTS " B E X", "a\r\n..\r\nb\r\n"},
    {"bdat last lowercase", TXN "bdat 2 last\r\nab", 0,
     TXN_REPLY "|" QUEUED, NULL, "ab\r\n"},
    {"bdat then second transaction", TXN "BDAT 3 LAST\r\none"
     "MAIL FROM:<e@f.test>\r\n" RCPT_OK "DATA\r\ntwo\r\n.\r\n", 0,
     TXN_REPLY "|" QUEUED "|250 2.1.0|250 2.1.5|354|" QUEUED,
     TXN_EVENTS " B E X M<e@f.test> R<c@d.test> B E X",
     "one\r\ntwo\r\n"},
    {"data after bdat", TXN "BDAT 2\r\nabDATA\r\nBDAT 0 LAST\r\n", 0,
     TXN_REPLY "|250 2.0.0 2 octets received|503 5.5.1 Error: DATA after "
     "BDAT|" QUEUED, TXN_EVENTS " B E X", "ab\r\n"},
    {"rcpt after bdat", TXN "BDAT 2\r\nab" RCPT_OK, 0,
     TXN_REPLY "|250 2.0.0 2 octets received|503 5.5.1 Error: RCPT after "
     "BDAT", NULL, NULL},
    {"mail after bdat", TXN "BDAT 2\r\nab" MAIL_OK, 0,
     TXN_REPLY "|250 2.0.0 2 octets received|503 5.5.1 Error: nested MAIL",
     NULL, NULL},
    {"rset after bdat", TXN "BDAT 2\r\nabRSET\r\n" RCPT_OK, 0,
     TXN_REPLY "|250 2.0.0 2 octets received|250 2.0.0 Ok|503 5.5.1",
     TXN_EVENTS " B A X", NULL},
    {"quit after bdat", TXN "BDAT 2\r\nabQUIT\r\n", 0,
     TXN_REPLY "|250 2.0.0 2 octets received|221 2.0.0",
     TXN_EVENTS " B A X", NULL},
    {"bdat before helo", "BDAT 6\r\nQUIT\r\nNOOP\r\n", 0,
     "503 5.5.1 Error: send HELO/EHLO first|250 2.0.0 Ok", "", NULL},
    {"bdat before mail", HI "BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n", 0,
     EHLO_REPLY "|503 5.5.1 Error: need MAIL command|250 2.0.0 Ok", "",
     NULL},
    {"bdat before rcpt", HI MAIL_OK "BDAT 6\r\nQUIT\r\n" RCPT_OK
     "BDAT 1 LAST\r\nx", 0, EHLO_REPLY "|250 2.1.0|503 5.5.1 Error: need "
     "RCPT command|250 2.1.5|" QUEUED, TXN_EVENTS " B E X", "x\r\n"},
    {"bdat after denied rcpt", HI MAIL_OK "RCPT TO:<deny@d.test>\r\n"
     "BDAT 4 LAST\r\nNOOPNOOP\r\n", 0, EHLO_REPLY "|250 2.1.0|554 5.7.1|"
     "554 5.5.1 Error: no valid recipients|250 2.0.0 Ok", "M<a@b.test>",
     NULL},
    {"bdat refused by hook", HI "MAIL FROM:<nodata@b.test>\r\n" RCPT_OK
     "BDAT 3\r\nabcBDAT 2 LAST\r\nxyNOOP\r\n", 0,
     EHLO_REPLY "|250 2.1.0|250 2.1.5|452 4.3.1|452 4.3.1|250 2.0.0 Ok",
     "M<nodata@b.test> R<c@d.test> X", NULL},
    {"bdat bare lf", TXN "BDAT 4\r\na\nb\rBDAT 3 LAST\r\n\nxyNOOP\r\n",
     0, TXN_REPLY "|550 5.6.0 Error: bare CR or LF|550 5.6.0|250 2.0.0 Ok",
     TXN_EVENTS " B A X", NULL},
    {"bdat bare lf in last chunk", TXN "BDAT 3 LAST\r\na\nbNOOP\r\n", 0,
     TXN_REPLY "|550 5.6.0|250 2.0.0 Ok", TXN_EVENTS " B A X", NULL},
    {"bdat bare cr", TXN "BDAT 3 LAST\r\na\rb", 0, TXN_REPLY "|550 5.6.0",
     TXN_EVENTS " B A X", NULL},
    {"bdat cr at the end", TXN "BDAT 3 LAST\r\nab\r", 0,
     TXN_REPLY "|550 5.6.0", TXN_EVENTS " B A X", NULL},
    {"bdat nul", BDAT_NUL, sizeof(BDAT_NUL) - 1,
     TXN_REPLY "|550 5.6.0 Error: NUL byte in the message is not allowed|"
     "550 5.6.0 Error: NUL byte|250 2.0.0 Ok", TXN_EVENTS " B A X", NULL},
    {"bdat without size", TXN "BDAT\r\n", 0,
     TXN_REPLY "|501 5.5.4 Syntax: BDAT chunk-size [LAST]", NULL, NULL},
    {"bdat bad size", TXN "BDAT 1x\r\nBDAT -1\r\n"
     "BDAT 99999999999999999999\r\n", 0,
     TXN_REPLY "|501 5.5.4|501 5.5.4|501 5.5.4", NULL, NULL},
    {"bdat bad end marker", TXN "BDAT 2 FIRST\r\nBDAT 2LAST\r\n"
     "BDAT 2 LAST x\r\n", 0, TXN_REPLY "|501 5.5.4|501 5.5.4|501 5.5.4",
     NULL, NULL},
    {"mail body binarymime", HI "MAIL FROM:<a@b.test> BODY=BINARYMIME\r\n",
     0, EHLO_REPLY "|250 2.1.0", "M<a@b.test>", NULL},
};

struct transcript_result {
    char *out;
    char events[4096];
    char *body;
    size_t body_len;
};

static void run_transcript(const struct transcript_case *c, size_t step,
                           struct transcript_result *result)
{
    struct harness h;
    size_t len = c->input_len ? c->input_len : strlen(c->input);

    harness_init(&h);
    harness_feed(&h, c->input, len, step);
    result->out = h.out;
    h.out = NULL;
    memcpy(result->events, h.rec.events, h.rec.events_len + 1);
    result->body = h.rec.body;
    result->body_len = h.rec.body_len;
    h.rec.body = NULL;
    harness_cleanup(&h);
}

static void check_transcript(const struct transcript_case *c)
{
    /* A rejected body may reach data_write in part, and how much
     * depends on where the pieces split, so bodies are compared only
     * when the case names one. */
    struct transcript_result whole = {0};
    struct transcript_result bytes = {0};
    char want[4096];

    snprintf(want, sizeof(want), "%s|%s", GREETING, c->replies);
    run_transcript(c, 0, &whole);
    run_transcript(c, 1, &bytes);

    expect_replies(c->name, whole.out, want);
    cr_expect_str_eq(bytes.out, whole.out, "%s: fed bytewise got\n%s\n"
                     "fed whole got\n%s", c->name, bytes.out, whole.out);
    if (c->events != NULL) {
        cr_expect_str_eq(whole.events, c->events, "%s: events got \"%s\", "
                         "want \"%s\"", c->name, whole.events, c->events);
    }
    cr_expect_str_eq(bytes.events, whole.events, "%s: events bytewise "
                     "\"%s\", whole \"%s\"", c->name, bytes.events,
                     whole.events);
    if (c->body != NULL) {
        cr_expect(whole.body_len == strlen(c->body) &&
                  (whole.body_len == 0 ||
                   memcmp(whole.body, c->body, whole.body_len) == 0),
                  "%s: body got \"%.*s\", want \"%s\"", c->name,
                  (int)whole.body_len, whole.body ? whole.body : "",
                  c->body);
    }
    if (c->body != NULL) {
        cr_expect(bytes.body_len == whole.body_len &&
                  (whole.body_len == 0 ||
                   memcmp(bytes.body, whole.body, whole.body_len) == 0),
                  "%s: body differs when fed bytewise", c->name);
    }
    free(whole.out);
    free(whole.body);
    free(bytes.out);
    free(bytes.body);
}

Test(smtp_server, command_transcripts)
{
    size_t count = sizeof(transcript_cases) / sizeof(transcript_cases[0]);

    for (size_t i = 0; i < count; i++) {
        check_transcript(&transcript_cases[i]);
    }
}

Test(smtp_server, bdat_transcripts)
{
    size_t count = sizeof(bdat_cases) / sizeof(bdat_cases[0]);

    for (size_t i = 0; i < count; i++) {
        check_transcript(&bdat_cases[i]);
    }
}

/* One BDAT transaction fed in two pieces, split at every offset. */
Test(smtp_server, bdat_split_everywhere)
{
    static const char input[] = TXN "BDAT 6\r\n.a\r\nb\rBDAT 5 LAST\r\n"
                                "\nc\r\n.NOOP\r\n";
    const char *want = GREETING "|" TXN_REPLY "|250 2.0.0 6 octets "
                       "received|" QUEUED "|250 2.0.0 Ok";
    const char body[] = "..a\r\nb\r\nc\r\n..\r\n";
    size_t len = sizeof(input) - 1;

    for (size_t split = 1; split < len; split++) {
        struct harness h;

        harness_init(&h);
        harness_feed(&h, input, split, 0);
        harness_feed(&h, input + split, len - split, 0);
        cr_expect(replies_match(h.out, want), "split at %zu:\n got: %s",
                  split, h.out);
        cr_expect_str_eq(h.rec.events, TXN_EVENTS " B E X",
                         "split at %zu", split);
        cr_expect(h.rec.body_len == sizeof(body) - 1 &&
                  memcmp(h.rec.body, body, sizeof(body) - 1) == 0,
                  "split at %zu: body \"%.*s\"", split,
                  (int)h.rec.body_len, h.rec.body ? h.rec.body : "");
        harness_cleanup(&h);
    }
}

/* A chunk that takes the message over max_message_size (1000) fails the
 * transaction; every later chunk is read and gets the same 552. */
Test(smtp_server, bdat_over_size_limit)
{
    char input[4096];
    char chunk[600];
    struct transcript_case c = {
        .name = "bdat over size limit",
        .input = input,
        .replies = TXN_REPLY "|250 2.0.0 600 octets received|"
                   "552 5.3.4 Error: message size exceeds the fixed maximum "
                   "of 1000 bytes|552 5.3.4|250 2.0.0 Ok",
        .events = TXN_EVENTS " B A X",
    };
    int n;

    memset(chunk, 'x', sizeof(chunk));
    n = snprintf(input, sizeof(input), "%sBDAT 600\r\n%.600sBDAT 600\r\n"
                 "%.600sBDAT 10 LAST\r\n%.10sNOOP\r\n", TXN, chunk, chunk,
                 chunk);
    cr_assert(n > 0 && (size_t)n < sizeof(input));
    check_transcript(&c);
}

/* A large chunk reaches data_write in a few large writes, not per byte,
 * and is not held back for output. */
Test(smtp_server, bdat_large_chunk_few_writes)
{
    static char input[70000];
    struct harness h;
    int n;

    harness_init(&h);
    h.opts.max_message_size = 0;
    n = snprintf(input, sizeof(input), "%sBDAT 65536 LAST\r\n", TXN);
    cr_assert(n > 0);
    memset(input + n, 'y', 65536);
    harness_feed(&h, input, (size_t)n + 65536, 0);
    cr_expect_not_null(strstr(h.out, "\r\n250 2.1.5 Ok\r\n" QUEUED "\r\n"),
                       "got: %s", h.out);
    cr_expect_eq(h.rec.body_len, 65536 + 2);
    cr_expect_leq(h.rec.writes, 2);
    harness_cleanup(&h);
}

/* BINARYMIME (RFC 3030): MAIL with BODY=BINARYMIME, one recipient. */
#define BIN_MAIL "MAIL FROM:<a@b.test> BODY=BINARYMIME\r\n"
#define BIN_TXN HI BIN_MAIL RCPT_OK

/* feed_binary runs input through a new session, whole when step is 0,
 * else step bytes at a time, with extensions in disabled left out. */
static void feed_binary(struct harness *h, const char *input, size_t len,
                        size_t step, unsigned disabled)
{
    harness_init(h);
    h->opts.disabled_extensions = disabled;
    harness_feed(h, input, len, step);
}

static void expect_body_bytes(const struct harness *h, const char *want,
                              size_t want_len, const char *name)
{
    cr_expect_eq(h->rec.body_len, want_len, "%s: body has %zu bytes, "
                 "want %zu", name, h->rec.body_len, want_len);
    cr_expect(h->rec.body_len == want_len &&
              (want_len == 0 || memcmp(h->rec.body, want, want_len) == 0),
              "%s: body bytes differ", name);
}

Test(smtp_server, binarymime_offered_with_chunking)
{
    struct harness h;

    feed_binary(&h, HI BIN_MAIL, strlen(HI BIN_MAIL), 0, 0);
    expect_replies("binarymime offered", h.out,
                   GREETING "|" EHLO_REPLY "|250 2.1.0 Ok");
    cr_expect_not_null(strstr(h.out, "250-CHUNKING\r\n250-BINARYMIME\r\n"),
                       "got: %s", h.out);
    harness_cleanup(&h);
}

Test(smtp_server, binarymime_not_offered_without_chunking)
{
    struct harness h;

    feed_binary(&h, HI BIN_MAIL, strlen(HI BIN_MAIL), 0,
                SMTP_EXT_CHUNKING);
    cr_expect_null(strstr(h.out, "250-BINARYMIME"), "got: %s", h.out);
    cr_expect_null(strstr(h.out, "CHUNKING"), "got: %s", h.out);
    cr_expect_not_null(strstr(h.out, "\r\n555 5.5.4 Error: invalid MAIL "
                              "parameter BODY=BINARYMIME: expected 7BIT or "
                              "8BITMIME\r\n"),
                       "got: %s", h.out);
    cr_expect_str_eq(h.rec.events, "");
    harness_cleanup(&h);
}

Test(smtp_server, binarymime_switched_off)
{
    static const char input[] = HI BIN_MAIL
                                "MAIL FROM:<a@b.test> BODY=8BITMIME\r\n";
    struct harness h;

    feed_binary(&h, input, sizeof(input) - 1, 0, SMTP_EXT_BINARYMIME);
    cr_expect_null(strstr(h.out, "250-BINARYMIME"), "got: %s", h.out);
    cr_expect_not_null(strstr(h.out, "250-CHUNKING\r\n"), "got: %s", h.out);
    cr_expect_not_null(strstr(h.out, "\r\n555 5.5.4 Error: invalid MAIL "
                              "parameter BODY=BINARYMIME: expected 7BIT or "
                              "8BITMIME\r\n"
                              "250 2.1.0 Ok\r\n"),
                       "got: %s", h.out);
    harness_cleanup(&h);
}

/* BINARYMIME gives BODY= a meaning of its own, so BODY=BINARYMIME and
 * BODY=7BIT work without 8BITMIME, but BODY=8BITMIME does not. */
Test(smtp_server, binarymime_without_8bitmime)
{
    static const char input[] = HI
        "MAIL FROM:<a@b.test> BODY=8BITMIME\r\n"
        BIN_MAIL "RSET\r\n"
        "MAIL FROM:<a@b.test> BODY=7BIT\r\n";
    struct harness h;

    feed_binary(&h, input, sizeof(input) - 1, 0, SMTP_EXT_8BITMIME);
    cr_expect_null(strstr(h.out, "250-8BITMIME"), "got: %s", h.out);
    cr_expect_not_null(strstr(h.out, "250-BINARYMIME\r\n"), "got: %s",
                       h.out);
    cr_expect_not_null(strstr(h.out, "\r\n555 5.5.4 Error: invalid MAIL "
                              "parameter BODY=8BITMIME: expected 7BIT or "
                              "BINARYMIME\r\n"
                              "250 2.1.0 Ok\r\n250 2.0.0 Ok\r\n"
                              "250 2.1.0 Ok\r\n"),
                       "got: %s", h.out);
    harness_cleanup(&h);
}

/* RFC 3030 section 3: a BINARYMIME body needs BDAT. DATA gets 503 and
 * the session stays in the transaction, so BDAT still works. */
Test(smtp_server, binarymime_data_gets_503)
{
    static const char input[] = BIN_TXN "DATA\r\nBDAT 3 LAST\r\na\nb";
    struct harness h;

    for (size_t step = 0; step <= 1; step++) {
        feed_binary(&h, input, sizeof(input) - 1, step, 0);
        expect_replies("binarymime data", h.out,
                       GREETING "|" TXN_REPLY "|503 5.5.1 Error: "
                       "BODY=BINARYMIME requires BDAT, not DATA|" QUEUED);
        cr_expect_str_eq(h.rec.events, TXN_EVENTS " B E X");
        expect_body_bytes(&h, "a\nb", 3, "binarymime data");
        harness_cleanup(&h);
    }
}

/* Binary chunk data is stored as received: bare LF, bare CR, NUL and a
 * '.' at the start of a line pass unchanged, no CRLF is added at the
 * end, and CRLF.CRLF inside a chunk ends nothing. */
Test(smtp_server, binarymime_bdat_keeps_bare_lf)
{
    static const char chunk1[] = "x\ny\rz\0\n.dot\r\n.\r\n";
    static const char chunk2[] = "..\n\r\r\n\0";
    char input[512];
    char body[64];
    size_t body_len = 0;
    int n;

    n = snprintf(input, sizeof(input), "%sBDAT %zu\r\n", BIN_TXN,
                 sizeof(chunk1) - 1);
    cr_assert(n > 0 && (size_t)n < sizeof(input));
    memcpy(input + n, chunk1, sizeof(chunk1) - 1);
    n += (int)sizeof(chunk1) - 1;
    n += snprintf(input + n, sizeof(input) - (size_t)n, "BDAT %zu LAST\r\n",
                  sizeof(chunk2) - 1);
    memcpy(input + n, chunk2, sizeof(chunk2) - 1);
    n += (int)sizeof(chunk2) - 1;
    memcpy(input + n, "NOOP\r\n", 6);
    n += 6;

    memcpy(body, chunk1, sizeof(chunk1) - 1);
    body_len += sizeof(chunk1) - 1;
    memcpy(body + body_len, chunk2, sizeof(chunk2) - 1);
    body_len += sizeof(chunk2) - 1;

    for (size_t step = 0; step <= 1; step++) {
        struct harness h;
        char want[256];

        snprintf(want, sizeof(want), "%s|%s|250 2.0.0 %zu octets "
                 "received|%s|250 2.0.0 Ok", GREETING, TXN_REPLY,
                 sizeof(chunk1) - 1, QUEUED);
        feed_binary(&h, input, (size_t)n, step, 0);
        expect_replies("binarymime bare lf", h.out, want);
        cr_expect_str_eq(h.rec.events, TXN_EVENTS " B E X");
        expect_body_bytes(&h, body, body_len, "binarymime bare lf");
        harness_cleanup(&h);
    }
}

/* One BINARYMIME transaction fed in two pieces, split at every offset,
 * including between the CR and LF of every command line. */
Test(smtp_server, binarymime_bdat_split_everywhere)
{
    static const char input[] = BIN_TXN "BDAT 4\r\n.\r\n\nBDAT 3 LAST\r\n"
                                "\r.\rNOOP\r\n";
    static const char body[] = ".\r\n\n\r.\r";
    const char *want = GREETING "|" TXN_REPLY "|250 2.0.0 4 octets "
                       "received|" QUEUED "|250 2.0.0 Ok";
    size_t len = sizeof(input) - 1;

    for (size_t split = 1; split < len; split++) {
        struct harness h;

        harness_init(&h);
        harness_feed(&h, input, split, 0);
        harness_feed(&h, input + split, len - split, 0);
        cr_expect(replies_match(h.out, want), "split at %zu:\n got: %s",
                  split, h.out);
        expect_body_bytes(&h, body, sizeof(body) - 1, "binarymime split");
        harness_cleanup(&h);
    }
}

/* max_message_size (1000 here) counts the octets as received. 1000
 * octets that would grow past the limit by dot-stuffing still fit, and
 * one octet more gets 552 like any other body. */
Test(smtp_server, binarymime_size_limit_counts_raw_octets)
{
    static char input[3000];
    char chunk[1001];
    struct harness h;
    int n;

    for (size_t i = 0; i < sizeof(chunk); i++) {
        chunk[i] = i % 2 == 0 ? '.' : '\n';
    }
    n = snprintf(input, sizeof(input), "%sBDAT 1000 LAST\r\n", BIN_TXN);
    cr_assert(n > 0);
    memcpy(input + n, chunk, 1000);
    feed_binary(&h, input, (size_t)n + 1000, 0, 0);
    expect_replies("binarymime at the limit", h.out,
                   GREETING "|" TXN_REPLY "|" QUEUED);
    expect_body_bytes(&h, chunk, 1000, "binarymime at the limit");
    harness_cleanup(&h);

    n = snprintf(input, sizeof(input), "%sBDAT 1001 LAST\r\n", BIN_TXN);
    cr_assert(n > 0);
    memcpy(input + n, chunk, 1001);
    feed_binary(&h, input, (size_t)n + 1001, 0, 0);
    expect_replies("binarymime over the limit", h.out,
                   GREETING "|" TXN_REPLY "|552 5.3.4 Error: message size "
                   "exceeds the fixed maximum of 1000 bytes");
    cr_expect_str_eq(h.rec.events, TXN_EVENTS " B A X");
    harness_cleanup(&h);
}

/* BINARYMIME lasts one transaction: after it, and after RSET, BDAT data
 * is dot-stuffed and checked again, and DATA is allowed. */
Test(smtp_server, binarymime_ends_with_transaction)
{
    static const char input[] = BIN_TXN "BDAT 2 LAST\r\n.\n"
                                MAIL_OK RCPT_OK "BDAT 5 LAST\r\n.a\r\nb"
                                BIN_MAIL "RSET\r\n" MAIL_OK RCPT_OK
                                "DATA\r\nz\r\n.\r\n"
                                MAIL_OK RCPT_OK "BDAT 2 LAST\r\n\n\n";
    static const char body[] = ".\n..a\r\nb\r\nz\r\n";
    struct harness h;

    feed_binary(&h, input, sizeof(input) - 1, 0, 0);
    expect_replies("binarymime one transaction", h.out,
                   GREETING "|" TXN_REPLY "|" QUEUED "|250 2.1.0|250 2.1.5|"
                   QUEUED "|250 2.1.0|250 2.0.0 Ok|250 2.1.0|250 2.1.5|"
                   "354|" QUEUED "|250 2.1.0|250 2.1.5|550 5.6.0");
    expect_body_bytes(&h, body, sizeof(body) - 1,
                      "binarymime one transaction");
    harness_cleanup(&h);
}

/* Each line end that is not CRLF.CRLF must not end the body; the rest of
 * the input is then body text up to the real end, and the message is
 * rejected as a whole. */
Test(smtp_server, smuggling_variants_rejected)
{
    static const char *const variants[] = {
        "\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", "\r.\r\n", "\r\n.\r",
        "\n", "\r", "\r\r\n",
    };
    static const char tail[] = "MAIL FROM:<evil@x.test>\r\n"
                               "RCPT TO:<victim@d.test>\r\n"
                               "DATA\r\nsmuggled\r\n.\r\nNOOP\r\n";

    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        char input[512];
        char name[64];
        struct transcript_case c = {
            .name = name,
            .input = input,
            .replies = EHLO_REPLY "|250 2.1.0|250 2.1.5|354|"
                       "550 5.6.0 Error: bare CR or LF|250 2.0.0",
            .events = "M<a@b.test> R<c@d.test> B A X",
        };

        snprintf(name, sizeof(name), "variant %zu", i);
        snprintf(input, sizeof(input), "%s%s%sDATA\r\nhi%s%s", HI, MAIL_OK,
                 RCPT_OK, variants[i], tail);
        check_transcript(&c);
    }
}

Test(smtp_server, pipelined_batch_one_pass)
{
    static const char input[] = HI MAIL_OK RCPT_OK RCPT_OK "NOOP\r\n"
                                "RSET\r\n";
    struct harness h;

    harness_init(&h);
    harness_drain(&h);
    smtp_server_feed(h.server, input, sizeof(input) - 1);

    /* Every reply is queued by the one feed, before anything is sent. */
    harness_drain(&h);
    expect_replies("pipelined batch", h.out, GREETING "|" EHLO_REPLY
                   "|250 2.1.0|250 2.1.5|250 2.1.5|250 2.0.0|250 2.0.0");
    harness_cleanup(&h);
}

Test(smtp_server, long_line_then_command)
{
    char input[2100];
    struct transcript_case c = {
        .name = "2000-byte line",
        .input = input,
        .replies = "500 5.5.6 Error: line too long|250 2.0.0",
    };

    memset(input, 'X', 2000);
    strcpy(input + 2000, "\r\nNOOP\r\n");
    check_transcript(&c);

    /* The tail of a long line that looks like a command is not run. */
    memset(input, 'X', 2000);
    strcpy(input + 2000, "QUIT\r\nNOOP\r\n");
    c.name = "long line ending in QUIT";
    check_transcript(&c);
}

Test(smtp_server, line_length_boundary)
{
    char input[1200];
    struct transcript_case c = {.input = input};

    /* max_line is 512 with the CRLF. */
    memcpy(input, "NOOP ", 5);
    memset(input + 5, 'a', 505);
    strcpy(input + 510, "\r\nNOOP ");
    memset(input + 517, 'a', 506);
    strcpy(input + 1023, "\r\n");
    c.name = "512 and 513 bytes";
    c.replies = "250 2.0.0|500 5.5.6";
    check_transcript(&c);
}

Test(smtp_server, error_limit_closes)
{
    struct transcript_case c = {
        .name = "five bad commands",
        .input = "FROB\r\nFROB\r\nFROB\r\nFROB\r\nFROB\r\nNOOP\r\n",
        .replies = "500 5.5.2|500 5.5.2|500 5.5.2|500 5.5.2|500 5.5.2|"
                   "421 4.7.0 mx.test Error: too many errors",
    };
    struct harness h;

    check_transcript(&c);
    harness_init(&h);
    harness_feed(&h, c.input, strlen(c.input), 0);
    cr_expect(smtp_server_closing(h.server),
              "session should close after the error limit");
    harness_cleanup(&h);
}

/* A pipelining client whose recipients are all refused still sends DATA;
 * that must not count toward the error limit of 5 in these tests. */
Test(smtp_server, junk_command_limit_closes)
{
    static const char input[] = HI "NOOP\r\nRSET\r\nVRFY x\r\nHELP\r\n"
                                MAIL_OK "NOOP\r\nNOOP\r\nQUIT\r\n";
    struct harness h;

    /* The EHLO counts too: six junk commands, then the seventh. */
    harness_init(&h);
    h.opts.max_junk_commands = 6;
    harness_feed(&h, input, sizeof(input) - 1, 0);
    expect_replies("junk limit", h.out, GREETING "|" EHLO_REPLY
                   "|250 2.0.0|250 2.0.0|252 2.5.0|214 2.0.0|250 2.1.0|"
                   "250 2.0.0|421 4.7.0 mx.test Error: too many commands "
                   "without mail, closing connection");
    cr_expect(smtp_server_closing(h.server),
              "session should close past max_junk_commands");
    cr_expect_str_eq(smtp_server_close_reason(h.server),
                     "too many commands without mail");
    cr_expect_str_eq(h.rec.events, "M<a@b.test> X",
                     "MAIL does not reset the count");
    harness_cleanup(&h);
}

/* A client that repeats EHLO or HELO moves no mail either. */
Test(smtp_server, repeated_greeting_is_junk)
{
    static const char input[] = "HELO c.test\r\nHELO c.test\r\n"
                                "EHLO c.test\r\nNOOP\r\n";
    struct harness h;

    harness_init(&h);
    h.opts.max_junk_commands = 3;
    harness_feed(&h, input, sizeof(input) - 1, 0);
    expect_replies("repeated greeting", h.out, GREETING "|250 mx.test|"
                   "250 mx.test|" EHLO_REPLY "|421 4.7.0 mx.test Error: too "
                   "many commands without mail, closing connection");
    cr_expect(smtp_server_closing(h.server),
              "session should close past max_junk_commands");
    harness_cleanup(&h);
}

/* command_waits changes once per complete command line and once per
 * body, never for a partial line. */
Test(smtp_server, command_waits_per_line)
{
    struct harness h;
    uint64_t start;

    harness_init(&h);
    start = smtp_server_command_waits(h.server);
    harness_feed(&h, "NO", 2, 0);
    harness_feed(&h, "O", 1, 0);
    cr_expect_eq(smtp_server_command_waits(h.server), start,
                 "a partial line must not count");
    harness_feed(&h, "P\r\n", 3, 0);
    cr_expect_eq(smtp_server_command_waits(h.server), start + 1);

    harness_feed(&h, HI MAIL_OK RCPT_OK "DATA\r\n", 66, 0);
    cr_expect_eq(smtp_server_command_waits(h.server), start + 5);
    harness_feed(&h, "body\r\n", 6, 0);
    cr_expect_eq(smtp_server_command_waits(h.server), start + 5,
                 "body lines must not count");
    harness_feed(&h, ".\r\n", 3, 0);
    cr_expect_eq(smtp_server_command_waits(h.server), start + 6,
                 "the end of the body must count");

    /* An over-long line counts once, at its LF. */
    for (int i = 0; i < 3; i++) {
        harness_feed(&h, "x", 1, 0);
        for (int j = 0; j < 300; j++) {
            harness_feed(&h, "yy", 2, 0);
        }
    }
    cr_expect_eq(smtp_server_command_waits(h.server), start + 6);
    harness_feed(&h, "\r\n", 2, 0);
    cr_expect_eq(smtp_server_command_waits(h.server), start + 7);
    cr_expect(strstr(h.out, "500 5.5.6") != NULL, "long line gets 500");
    harness_cleanup(&h);
}

/* A refusal returned as SMTP_HOOK_REJECT_COUNTED counts toward
 * max_errors (5 here), a plain -1 refusal does not. */
Test(smtp_server, counted_rcpt_refusal_closes)
{
    struct harness h;
    const char *input = HI MAIL_OK "RCPT TO:<deny@x.test>\r\n"
                        "RCPT TO:<deny@x.test>\r\n"
                        "RCPT TO:<counted@x.test>\r\n"
                        "RCPT TO:<counted@x.test>\r\n"
                        "FROB\r\n"
                        "RCPT TO:<counted@x.test>\r\n"
                        "RCPT TO:<counted@x.test>\r\n"
                        "RCPT TO:<counted@x.test>\r\n";

    harness_init(&h);
    harness_feed(&h, input, strlen(input), 0);
    expect_replies("counted refusals", h.out, GREETING "|" EHLO_REPLY
                   "|250 2.1.0|554 5.7.1|554 5.7.1|554 5.7.1|554 5.7.1|"
                   "500 5.5.2|554 5.7.1|554 5.7.1 <counted@x.test>|"
                   "421 4.7.0 mx.test Error: too many errors");
    cr_expect_str_eq(smtp_server_close_reason(h.server), "too many errors");
    harness_cleanup(&h);
}

Test(smtp_server, refused_rcpt_data_not_error)
{
    const char *round = "MAIL FROM:<a@b.test>\r\nRCPT TO:<deny@d.test>\r\n"
                        "DATA\r\nRSET\r\n";
    struct harness h;

    harness_init(&h);
    harness_feed(&h, HI, strlen(HI), 0);
    for (int i = 0; i < 8; i++) {
        harness_feed(&h, round, strlen(round), 0);
    }
    cr_expect(!smtp_server_closing(h.server),
              "refused recipients followed by DATA closed the session");
    cr_expect(strstr(h.out, "554 5.5.1 Error: no valid recipients") != NULL,
              "DATA after refused recipients should get 554 5.5.1");
    cr_expect(strstr(h.out, "421") == NULL, "unexpected 421 in %s", h.out);
    harness_cleanup(&h);
}

Test(smtp_server, body_reaches_data_write_in_large_ranges)
{
    struct harness h;
    char *input = malloc(20000);
    size_t len;
    char *body;

    cr_assert_not_null(input);
    harness_init(&h);
    h.opts.max_message_size = 100000;
    len = (size_t)sprintf(input, HI MAIL_OK RCPT_OK "DATA\r\n");
    body = input + len;
    for (int i = 0; i < 100; i++) {
        len += (size_t)sprintf(input + len, "%s%078d\r\n",
                               i % 10 == 0 ? ".." : "", i);
    }
    size_t body_len = (size_t)(input + len - body);
    len += (size_t)sprintf(input + len, ".\r\n");

    harness_feed(&h, input, len, 0);
    cr_expect_eq(h.rec.body_len, body_len, "body got %zu bytes, want %zu",
                 h.rec.body_len, body_len);
    cr_expect(memcmp(h.rec.body, body, body_len) == 0,
              "body bytes changed on the way to data_write");

    /* One range per dot-stuffed line start, plus the first. */
    cr_expect_leq(h.rec.writes, 11, "data_write called %zu times",
                  h.rec.writes);
    free(input);
    harness_cleanup(&h);
}

/* hops_message writes a header of count Received: fields, a body line
 * that looks like one more, and for DATA the final dot. */
static size_t hops_message(char *out, size_t size, int count, bool data)
{
    size_t len = 0;

    for (int i = 0; i < count; i++) {
        len += (size_t)snprintf(out + len, size - len,
                                "Received: from h%d\r\n", i);
    }
    len += (size_t)snprintf(out + len, size - len, "Subject: loop\r\n\r\n"
                            "Received: in the body\r\n%s",
                            data ? ".\r\n" : "");
    cr_assert_lt(len, size);
    return len;
}

/* hops_run sends one message with count Received: fields by DATA, or
 * by BDAT in a BINARYMIME transaction, with max_hops 100, and returns
 * the reply to the message. */
static void hops_run(int count, bool data, size_t step, char *reply,
                     size_t reply_size)
{
    static char message[4096];
    static char input[8192];
    size_t message_len = hops_message(message, sizeof(message), count,
                                      data);
    size_t len;
    struct harness h;
    const char *line;

    if (data) {
        len = (size_t)snprintf(input, sizeof(input), "%sDATA\r\n",
                               HI MAIL_OK RCPT_OK);
    } else {
        len = (size_t)snprintf(input, sizeof(input), "%sBDAT %zu LAST\r\n",
                               BIN_TXN, message_len);
    }
    memcpy(input + len, message, message_len);
    len += message_len;

    harness_init(&h);
    h.opts.max_message_size = 100000;
    h.opts.max_hops = 100;
    harness_feed(&h, input, len, step);
    line = strrchr(h.out, '\n');
    cr_assert_not_null(line);
    while (line > h.out && line[-1] != '\n') {
        line--;
    }
    snprintf(reply, reply_size, "%s", line);
    harness_cleanup(&h);
}

Test(smtp_server, max_hops_boundary)
{
    static const char rejected[] = "554 5.4.6 Error: too many hops (101 "
                                   "Received: headers), mail loop?\r\n";
    char reply[SMTP_REPLY_MAX + 3];

    for (int mode = 0; mode < 2; mode++) {
        bool data = mode == 0;
        const char *name = data ? "DATA" : "BDAT BINARYMIME";

        for (size_t step = 0; step <= 7; step += 7) {
            hops_run(100, data, step, reply, sizeof(reply));
            cr_expect_str_eq(reply, QUEUED "\r\n", "%s step %zu: 100 "
                             "fields must be accepted", name, step);
            hops_run(101, data, step, reply, sizeof(reply));
            cr_expect_str_eq(reply, rejected, "%s step %zu: 101 fields "
                             "must be rejected", name, step);
        }
    }
}

Test(smtp_server, body_over_size_limit)
{
    char input[2000];
    size_t len = (size_t)sprintf(input, HI MAIL_OK RCPT_OK "DATA\r\n");
    struct transcript_case c = {
        .name = "1500-byte body",
        .input = input,
        .replies = EHLO_REPLY "|250 2.1.0|250 2.1.5|354|552 5.3.4|250 2.0.0",
        .events = "M<a@b.test> R<c@d.test> B A X",
    };

    for (int i = 0; i < 30; i++) {
        len += (size_t)sprintf(input + len, "%048d\r\n", i);
    }
    sprintf(input + len, ".\r\nNOOP\r\n");
    check_transcript(&c);
}

Test(smtp_server, data_write_failure)
{
    static const char input[] = HI MAIL_OK RCPT_OK "DATA\r\nbody\r\n.\r\n"
                                "NOOP\r\n";
    struct harness h;

    harness_init(&h);
    h.rec.fail_write = true;
    harness_feed(&h, input, sizeof(input) - 1, 0);
    expect_replies("write failure", h.out, GREETING "|" EHLO_REPLY
                   "|250 2.1.0|250 2.1.5|354|451 4.3.0|250 2.0.0");
    cr_expect_str_eq(h.rec.events, "M<a@b.test> R<c@d.test> B A X");
    harness_cleanup(&h);
}

Test(smtp_server, data_write_no_space)
{
    static const char input[] = HI MAIL_OK RCPT_OK "DATA\r\nbody\r\n.\r\n"
                                "NOOP\r\n";
    struct harness h;

    harness_init(&h);
    h.rec.no_space = true;
    harness_feed(&h, input, sizeof(input) - 1, 0);
    expect_replies("no space", h.out, GREETING "|" EHLO_REPLY
                   "|250 2.1.0|250 2.1.5|354|452 4.3.1|250 2.0.0");
    cr_expect_str_eq(h.rec.abort_reply, "452 4.3.1 Insufficient system "
                                        "storage");
    harness_cleanup(&h);
}

Test(smtp_server, data_done_resumes_pipelined_input)
{
    static const char input[] = HI MAIL_OK RCPT_OK "DATA\r\nbody\r\n.\r\n"
                                "MAIL FROM:<n@b.test>\r\nNOOP\r\n";
    struct harness h;

    harness_init(&h);
    h.auto_commit = false;
    harness_feed(&h, input, sizeof(input) - 1, 0);
    expect_replies("before data_done", h.out,
                   GREETING "|" EHLO_REPLY "|250 2.1.0|250 2.1.5|354");
    cr_expect(smtp_server_waiting(h.server), "session should wait");
    cr_expect_str_eq(h.rec.events, "M<a@b.test> R<c@d.test> B E");

    /* More input while waiting is held too. */
    smtp_server_feed(h.server, "NOOP\r\n", 6);
    harness_drain(&h);
    cr_expect(!strstr(h.out, QUEUED), "no reply before data_done");

    smtp_server_data_done(h.server, QUEUED);
    harness_drain(&h);
    expect_replies("after data_done", h.out,
                   GREETING "|" EHLO_REPLY "|250 2.1.0|250 2.1.5|354|"
                   QUEUED "|250 2.1.0|250 2.0.0|250 2.0.0");
    cr_expect(!smtp_server_waiting(h.server), "session should not wait");
    cr_expect_str_eq(h.rec.events,
                     "M<a@b.test> R<c@d.test> B E X M<n@b.test>");
    harness_cleanup(&h);
}

Test(smtp_server, data_done_inside_data_end_hook)
{
    static const char input[] = HI MAIL_OK RCPT_OK "DATA\r\nbody\r\n.\r\n"
                                "NOOP\r\n";
    static const size_t steps[] = {0, 1, 7};

    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        struct harness h;

        harness_init(&h);
        h.auto_commit = false;
        h.rec.commit_in_hook = true;
        harness_feed(&h, input, sizeof(input) - 1, steps[i]);
        expect_replies("commit inside hook", h.out, GREETING "|" EHLO_REPLY
                       "|250 2.1.0|250 2.1.5|354|" QUEUED "|250 2.0.0");
        harness_cleanup(&h);
    }
}

Test(smtp_server, output_backlog_pauses_parsing)
{
    const size_t count = 6000;
    char *input = malloc(count * 6);
    struct harness h;
    struct smtp_outq *q;
    size_t replies = 0;

    cr_assert_not_null(input);
    for (size_t i = 0; i < count; i++) {
        memcpy(input + i * 6, "NOOP\r\n", 6);
    }
    harness_init(&h);
    harness_drain(&h);
    smtp_server_feed(h.server, input, count * 6);
    q = smtp_server_output(h.server);
    cr_expect_gt(q->len, 64 * 1024, "queue %zu bytes", q->len);
    cr_expect_leq(q->len, 64 * 1024 + 14, "queue %zu bytes, not paused",
                  q->len);

    /* Sent, but the caller feeds again before calling resume. */
    for (int i = 0; i < DRAIN_ROUNDS_MAX && harness_send(&h); i++) {
    }
    smtp_server_feed(h.server, "NOOP\r\n", 6);

    harness_drain(&h);
    for (const char *p = h.out; (p = strstr(p, "250 2.0.0")) != NULL; p++) {
        replies++;
    }
    cr_expect_eq(replies, count + 1, "got %zu replies, want %zu", replies,
                 count + 1);
    cr_expect(strstr(h.out, "500 ") == NULL, "held commands were rejected");
    free(input);
    harness_cleanup(&h);
}

Test(smtp_server, held_input_limit)
{
    static const char input[] = HI MAIL_OK RCPT_OK "DATA\r\nx\r\n.\r\n";
    char chunk[4096];
    struct harness h;

    memset(chunk, 'n', sizeof(chunk));
    harness_init(&h);
    h.auto_commit = false;
    harness_feed(&h, input, sizeof(input) - 1, 0);
    for (int i = 0; i < 300 && !smtp_server_closing(h.server); i++) {
        smtp_server_feed(h.server, chunk, sizeof(chunk));
    }
    cr_expect(smtp_server_closing(h.server),
              "1.2 MB of held input should close the session");
    harness_drain(&h);
    cr_expect(strstr(h.out, "421 4.7.0") != NULL, "got %s", h.out);

    /* The answer to the commit no longer goes out. */
    smtp_server_data_done(h.server, QUEUED);
    harness_drain(&h);
    cr_expect(strstr(h.out, QUEUED) == NULL, "got %s", h.out);
    cr_expect_str_eq(h.rec.events, "M<a@b.test> R<c@d.test> B E X");
    harness_cleanup(&h);
}

Test(smtp_server, timeout_and_shutdown)
{
    static const char input[] = HI MAIL_OK RCPT_OK "DATA\r\npart";
    struct harness h;

    harness_init(&h);
    harness_feed(&h, input, sizeof(input) - 1, 0);
    smtp_server_timeout(h.server);
    harness_drain(&h);
    cr_expect(smtp_server_closing(h.server), "timeout should close");
    expect_replies("timeout", h.out, GREETING "|" EHLO_REPLY "|250 2.1.0|"
                   "250 2.1.5|354|421 4.4.2 mx.test");
    cr_expect_str_eq(h.rec.events, "M<a@b.test> R<c@d.test> B A X");
    smtp_server_feed(h.server, "NOOP\r\n", 6);
    harness_drain(&h);
    cr_expect(strstr(h.out, "250 2.0.0") == NULL, "input after closing "
              "should be ignored");
    harness_cleanup(&h);

    harness_init(&h);
    smtp_server_shutdown(h.server);
    harness_drain(&h);
    expect_replies("shutdown", h.out, GREETING "|421 4.3.2 mx.test");
    cr_expect(smtp_server_closing(h.server), "shutdown should close");
    harness_cleanup(&h);
}

#define DATA_NUL TXN "DATA\r\na\0b\r\n.\r\n"

/* data_abort() gets the reply that rejected the message, or NULL when
 * the message was given up without a reply. */
Test(smtp_server, data_abort_gets_reply)
{
    static const struct {
        const char *name;
        const char *input;
        size_t len;
        const char *reply;
    } cases[] = {
        {"DATA bare LF", TXN "DATA\r\na\nb\r\n.\r\n", 0,
         "550 5.6.0 Error: bare CR or LF"},
        {"DATA NUL", DATA_NUL, sizeof(DATA_NUL) - 1,
         "550 5.6.0 Error: NUL byte"},
        {"DATA too big", NULL, 0, "552 5.3.4 Error: message size"},
        {"BDAT NUL", BDAT_NUL, sizeof(BDAT_NUL) - 1,
         "550 5.6.0 Error: NUL byte"},
        {"BDAT then RSET", TXN "BDAT 2\r\nabRSET\r\n", 0, "(null)"},
        {"timeout in DATA", TXN "DATA\r\npartial", 0, "(null)"},
    };
    static char big[3000];
    size_t big_len = (size_t)snprintf(big, sizeof(big), "%s",
                                      TXN "DATA\r\n");

    for (int i = 0; i < 30; i++) {
        big_len += (size_t)snprintf(big + big_len, sizeof(big) - big_len,
                                    "%048d\r\n", i);
    }
    big_len += (size_t)snprintf(big + big_len, sizeof(big) - big_len,
                                ".\r\n");

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *input = cases[i].input != NULL ? cases[i].input : big;
        size_t len = cases[i].len != 0 ? cases[i].len : strlen(input);
        struct harness h;

        harness_init(&h);
        harness_feed(&h, input, len, 0);
        if (strncmp(cases[i].name, "timeout", 7) == 0) {
            smtp_server_timeout(h.server);
        }
        cr_expect(strstr(h.rec.events, " A") != NULL,
                  "%s: no data_abort in %s", cases[i].name, h.rec.events);
        cr_expect(strncmp(h.rec.abort_reply, cases[i].reply,
                          strlen(cases[i].reply)) == 0,
                  "%s: data_abort got %s, want %s", cases[i].name,
                  h.rec.abort_reply, cases[i].reply);
        harness_cleanup(&h);
    }
}

Test(smtp_server, free_during_body_aborts)
{
    static const char input[] = HI MAIL_OK RCPT_OK "DATA\r\npartial";
    struct harness h;
    char events[4096];

    harness_init(&h);
    harness_feed(&h, input, sizeof(input) - 1, 0);
    smtp_server_free(h.server);
    h.server = NULL;
    memcpy(events, h.rec.events, h.rec.events_len + 1);
    cr_expect_str_eq(events, "M<a@b.test> R<c@d.test> B A X");
    harness_cleanup(&h);
}

Test(smtp_server, helo_name_and_esmtp)
{
    struct harness h;

    harness_init(&h);
    cr_expect_str_eq(smtp_server_helo(h.server), "");
    harness_feed(&h, "HELO old.test\r\n", 15, 0);
    cr_expect_str_eq(smtp_server_helo(h.server), "old.test");
    cr_expect(!smtp_server_used_esmtp(h.server), "HELO is not ESMTP");
    harness_feed(&h, "EHLO New.Test\r\n", 15, 0);
    cr_expect_str_eq(smtp_server_helo(h.server), "New.Test");
    cr_expect(smtp_server_used_esmtp(h.server), "EHLO is ESMTP");
    harness_cleanup(&h);
}

/* check_case runs one transcript, fed whole and fed bytewise. */
static void check_case(const char *name, const char *input,
                       const char *replies, const char *events)
{
    struct transcript_case c = {
        .name = name,
        .input = input,
        .replies = replies,
        .events = events,
    };

    check_transcript(&c);
}

/* harness_greet_with replaces the harness's session by a new one whose
 * greeting is reply instead of the 220. */
static void harness_greet_with(struct harness *h, const char *reply)
{
    smtp_server_free(h->server);
    h->server = smtp_server_new(&h->opts, &test_hooks, &h->rec);
    cr_assert_not_null(h->server);
    h->rec.server = h->server;
    smtp_server_greet_reply(h->server, reply);
}

Test(smtp_server, hook_refusal_without_text)
{
    check_case("rcpt hook without reply text", HI MAIL_OK
               "RCPT TO:<empty@d.test>\r\nNOOP\r\n", EHLO_REPLY
               "|250 2.1.0|451 4.3.0 Error: request failed, try again "
               "later|250 2.0.0", "M<a@b.test>");
}

Test(smtp_server, hook_reply_cut_at_crlf)
{
    /* The text after the CRLF must not go out as a reply of its own. */
    check_case("rcpt hook reply with crlf", HI MAIL_OK
               "RCPT TO:<split@d.test>\r\nNOOP\r\n", EHLO_REPLY
               "|250 2.1.0|554 5.7.1 first line|250 2.0.0", "M<a@b.test>");
}

Test(smtp_server, hook_421_closes_session)
{
    static const char input[] = HI MAIL_OK "RCPT TO:<bye@d.test>\r\n"
                                "NOOP\r\n";
    struct harness h;

    check_case("rcpt hook 421", input, EHLO_REPLY "|250 2.1.0|"
               "421 4.3.2 mx.test closing", "M<a@b.test> X");
    harness_init(&h);
    harness_feed(&h, input, sizeof(input) - 1, 0);
    cr_expect(smtp_server_closing(h.server), "a 421 reply should close");
    cr_expect_str_eq(smtp_server_close_reason(h.server), "421 reply");
    harness_cleanup(&h);
}

Test(smtp_server, mail_hook_refusal)
{
    check_case("mail hook 450", HI "MAIL FROM:<busy@b.test>\r\n" MAIL_OK,
               EHLO_REPLY "|450 4.7.1 Error: try again later|250 2.1.0",
               "M<a@b.test>");
}

Test(smtp_server, hook_refusals_not_errors)
{
    /* Six refusals against a limit of five bad commands. */
    check_case("six mail hook refusals", HI
               "MAIL FROM:<busy@b.test>\r\nMAIL FROM:<busy@b.test>\r\n"
               "MAIL FROM:<busy@b.test>\r\nMAIL FROM:<busy@b.test>\r\n"
               "MAIL FROM:<busy@b.test>\r\nMAIL FROM:<busy@b.test>\r\n"
               "NOOP\r\n", EHLO_REPLY "|450 4.7.1|450 4.7.1|450 4.7.1|"
               "450 4.7.1|450 4.7.1|450 4.7.1|250 2.0.0", "");
}

Test(smtp_server, hook_own_2xx_reply)
{
    check_case("hooks reply 250 and 251", HI "MAIL FROM:<custom@b.test>\r\n"
               "RCPT TO:<custom@d.test>\r\n", EHLO_REPLY "|250 2.1.0 Sender "
               "custom-ok|251 2.1.5 User not local; will forward",
               "M<custom@b.test> R<custom@d.test>");
}

Test(smtp_server, data_done_421_closes_session)
{
    static const char input[] = HI MAIL_OK RCPT_OK "DATA\r\nbody\r\n.\r\n"
                                "NOOP\r\n";
    struct harness h;

    harness_init(&h);
    h.auto_commit = false;
    harness_feed(&h, input, sizeof(input) - 1, 0);
    smtp_server_data_done(h.server, "421 4.3.0 mx.test queue unavailable");
    harness_drain(&h);
    expect_replies("data_done 421", h.out, GREETING "|" EHLO_REPLY
                   "|250 2.1.0|250 2.1.5|354|421 4.3.0 mx.test queue");
    cr_expect(smtp_server_closing(h.server), "a 421 commit should close");
    cr_expect_str_eq(h.rec.events, "M<a@b.test> R<c@d.test> B E X");
    harness_cleanup(&h);
}

Test(smtp_server, refused_greeting_503_until_quit)
{
    static const char input[] = HI MAIL_OK "NOOP\r\nQUIT\r\n";
    struct harness h;

    harness_init(&h);
    harness_greet_with(&h, "554 5.3.2 mx.test no service");
    harness_feed(&h, input, sizeof(input) - 1, 0);
    expect_replies("refused greeting", h.out, "554 5.3.2 mx.test no service"
                   "|503 5.5.1 Error: service not available, send QUIT"
                   "|503 5.5.1|503 5.5.1|221 2.0.0");
    cr_expect_str_eq(h.rec.events, "", "no hook may run");
    harness_cleanup(&h);
}

Test(smtp_server, refused_greeting_bdat_discarded)
{
    /* The chunk "QUIT\r\n" is read as data and dropped, not run. */
    static const char input[] = "BDAT 6\r\nQUIT\r\nQUIT\r\n";
    struct harness h;

    harness_init(&h);
    harness_greet_with(&h, "554 5.3.2 mx.test no service");
    harness_feed(&h, input, sizeof(input) - 1, 1);
    expect_replies("bdat after refused greeting", h.out,
                   "554 5.3.2|503 5.5.1 Error: service not available, send "
                   "QUIT|221 2.0.0");
    harness_cleanup(&h);
}

Test(smtp_server, greeting_421_closes)
{
    struct harness h;

    harness_init(&h);
    harness_greet_with(&h, "421 4.3.2 mx.test busy");
    harness_feed(&h, "NOOP\r\n", 6, 0);
    expect_replies("421 greeting", h.out, "421 4.3.2 mx.test busy");
    cr_expect(smtp_server_closing(h.server), "a 421 greeting should close");
    harness_cleanup(&h);
}

/* long_path writes "<local@domain>" of 266 octets, over the 256-octet
 * path limit, with every part within its own limit. */
static void long_path(char *out)
{
    char *p = out;

    *p++ = '<';
    memset(p, 'l', 64);
    p += 64;
    *p++ = '@';
    for (int i = 0; i < 3; i++) {
        memset(p, 'd', 62);
        p += 62;
        *p++ = '.';
    }
    memcpy(p, "example.ab>", 12);
}

Test(smtp_server, mail_path_too_long)
{
    char path[300];
    char input[400];

    long_path(path);
    cr_assert_eq(strlen(path), 266);
    snprintf(input, sizeof(input), HI "MAIL FROM:%s\r\n", path);
    check_case("sender path of 266 octets", input,
               EHLO_REPLY "|501 5.1.7 Error: sender address too long", "");
}

Test(smtp_server, rcpt_path_too_long)
{
    char path[300];
    char input[400];

    long_path(path);
    snprintf(input, sizeof(input), HI MAIL_OK "RCPT TO:%s\r\n", path);
    check_case("recipient path of 266 octets", input, EHLO_REPLY
               "|250 2.1.0|501 5.1.3 Error: recipient address too long",
               "M<a@b.test>");
}

Test(smtp_server, ehlo_name_too_long)
{
    char input[400];
    char *p = input + sprintf(input, "EHLO ");

    /* Labels of 63, 63, 63, 62 and 1 octets: 256 octets, one over RFC
     * 5321's 255 for a domain. */
    for (int i = 0; i < 3; i++) {
        memset(p, 'h', 63);
        p += 63;
        *p++ = '.';
    }
    memset(p, 'h', 62);
    p += 62;
    strcpy(p, ".h\r\n");
    cr_assert_eq(strlen(input), 5 + 256 + 2);
    check_case("ehlo name of 256 octets", input,
               "501 5.5.4 Syntax: EHLO hostname", NULL);
}

/* check_disabled feeds input whole and bytewise to a session that
 * leaves out the extensions in disabled, and checks the replies. */
static void check_disabled(const char *name, unsigned disabled,
                           const char *input, const char *replies)
{
    char want[4096];

    snprintf(want, sizeof(want), "%s|%s", GREETING, replies);
    for (size_t step = 0; step < 2; step++) {
        struct harness h;

        harness_init(&h);
        h.opts.disabled_extensions = disabled;
        harness_feed(&h, input, strlen(input), step);
        expect_replies(name, h.out, want);
        harness_cleanup(&h);
    }
}

Test(smtp_server, size_not_offered)
{
    check_disabled("SIZE= without SIZE", SMTP_EXT_SIZE,
                   HI "MAIL FROM:<a@b.test> SIZE=10\r\n",
                   "250-mx.test|250-PIPELINING|250-8BITMIME|250-SMTPUTF8|"
                   "250-CHUNKING|250-BINARYMIME|250-DSN|"
                   "250 ENHANCEDSTATUSCODES|555 5.5.4 Error: "
                   "MAIL parameter not offered: SIZE=10");
}

/* BODY=7BIT stays valid, because BINARYMIME still gives BODY= a
 * meaning. */
Test(smtp_server, 8bitmime_not_offered)
{
    check_disabled("BODY= without 8BITMIME", SMTP_EXT_8BITMIME,
                   HI "MAIL FROM:<a@b.test> BODY=8BITMIME\r\n"
                   "MAIL FROM:<a@b.test> BODY=7BIT\r\n",
                   "250-mx.test|250-PIPELINING|250-SIZE 1000|250-SMTPUTF8|"
                   "250-CHUNKING|250-BINARYMIME|250-DSN|"
                   "250 ENHANCEDSTATUSCODES|555 5.5.4|250 2.1.0 Ok");
}

Test(smtp_server, smtputf8_not_offered)
{
    check_disabled("SMTPUTF8 not offered", SMTP_EXT_SMTPUTF8,
                   HI "MAIL FROM:<a@b.test> SMTPUTF8\r\n"
                   "MAIL FROM:<" UTF8_LOCAL "@b.test> SMTPUTF8\r\n"
                   "EHLO " UTF8_DOMAIN "\r\n",
                   "250-mx.test|250-PIPELINING|250-SIZE 1000|250-8BITMIME|"
                   "250-CHUNKING|250-BINARYMIME|250-DSN|"
                   "250 ENHANCEDSTATUSCODES|555 5.5.4|553 5.6.7 Error: "
                   "non-ASCII sender address needs SMTPUTF8|"
                   "501 5.5.4 Syntax: EHLO hostname");
}

Test(smtp_outq, small_appends_coalesce)
{
    struct smtp_outq q;
    struct iovec iov[4];

    smtp_outq_init(&q);
    cr_assert_eq(smtp_outq_append(&q, "abc", 3), 0);
    cr_assert_eq(smtp_outq_printf(&q, "%d-%s", 42, "x"), 0);
    cr_expect_eq(q.len, 7);
    cr_expect_eq(smtp_outq_peek(&q, iov, 4), 1, "want one chunk");
    cr_expect(iov[0].iov_len == 7 && memcmp(iov[0].iov_base, "abc42-x", 7)
              == 0, "got \"%.*s\"", (int)iov[0].iov_len,
              (char *)iov[0].iov_base);
    smtp_outq_cleanup(&q);
}

Test(smtp_outq, peeked_bytes_stay_put)
{
    struct smtp_outq q;
    struct iovec first[4];
    struct iovec again[4];
    char big[10000];

    memset(big, 'b', sizeof(big));
    smtp_outq_init(&q);
    cr_assert_eq(smtp_outq_append(&q, "hello", 5), 0);
    cr_assert_eq(smtp_outq_peek(&q, first, 4), 1);
    cr_assert_eq(smtp_outq_append(&q, " world", 6), 0);
    cr_assert_eq(smtp_outq_append(&q, big, sizeof(big)), 0);

    cr_assert_eq(smtp_outq_peek(&q, again, 4), 3);
    cr_expect_eq(again[0].iov_base, first[0].iov_base,
                 "peeked bytes moved");
    cr_expect_eq(again[0].iov_len, 5, "peeked chunk grew after peek");
    cr_expect_eq(q.len, 5 + 6 + sizeof(big));

    smtp_outq_consume(&q, 3);
    cr_assert_eq(smtp_outq_peek(&q, again, 4), 3);
    cr_expect(again[0].iov_len == 2 &&
              memcmp(again[0].iov_base, "lo", 2) == 0,
              "after consuming 3 got \"%.*s\"", (int)again[0].iov_len,
              (char *)again[0].iov_base);

    smtp_outq_consume(&q, 2 + 6 + 100);
    cr_assert_eq(smtp_outq_peek(&q, again, 4), 1);
    cr_expect_eq(again[0].iov_len, sizeof(big) - 100);
    smtp_outq_consume(&q, 1u << 20);
    cr_expect_eq(q.len, 0);
    cr_expect_eq(smtp_outq_peek(&q, again, 4), 0);
    cr_expect_null(q.head);
    cr_expect_null(q.tail);
    smtp_outq_cleanup(&q);
}

Test(smtp_outq, append_ref_borrows)
{
    static const char body[] = "borrowed body";
    struct smtp_outq q;
    struct iovec iov[4];

    smtp_outq_init(&q);
    cr_assert_eq(smtp_outq_append(&q, "A", 1), 0);
    cr_assert_eq(smtp_outq_append_ref(&q, body, sizeof(body) - 1), 0);
    cr_assert_eq(smtp_outq_append(&q, "Z", 1), 0);
    cr_assert_eq(smtp_outq_peek(&q, iov, 4), 3);
    cr_expect_eq(iov[1].iov_base, (void *)body, "append_ref copied");
    cr_expect_eq(iov[1].iov_len, sizeof(body) - 1);
    cr_expect_eq(*(char *)iov[2].iov_base, 'Z');

    /* A peek with room for fewer iovecs returns the oldest ones. */
    cr_expect_eq(smtp_outq_peek(&q, iov, 1), 1);
    cr_expect_eq(*(char *)iov[0].iov_base, 'A');
    smtp_outq_cleanup(&q);
}

/* Text line limit of 20 bytes with the CRLF, measured in the stored wire
 * form. */
#define TEXT_LINE_MAX 20
#define LINE_18 "xxxxxxxxxxxxxxxxxx"
#define LINE_19 LINE_18 "x"
#define TOO_LONG "554 5.6.0 Error: message has a line longer than 20 bytes"

static const struct transcript_case text_line_cases[] = {
    {"data line at the limit", TXN "DATA\r\n" LINE_18 "\r\n.\r\n", 0,
     TXN_REPLY "|354|" QUEUED, TXN_EVENTS " B E X", LINE_18 "\r\n"},
    {"data line over the limit", TXN "DATA\r\n" LINE_19 "\r\n.\r\nNOOP\r\n",
     0, TXN_REPLY "|354|" TOO_LONG "|250 2.0.0", TXN_EVENTS " B A X", NULL},
    {"data dot-stuffed line counts its dot", TXN "DATA\r\n.." LINE_18
     "\r\n.\r\n", 0, TXN_REPLY "|354|" TOO_LONG, TXN_EVENTS " B A X", NULL},
    {"data many short lines", TXN "DATA\r\nabc\r\nabc\r\nabc\r\nabc\r\n"
     "abc\r\nabc\r\n.\r\n", 0, TXN_REPLY "|354|" QUEUED, NULL, NULL},
    {"data then second transaction", TXN "DATA\r\n" LINE_19 "\r\n.\r\n"
     MAIL_OK RCPT_OK "DATA\r\nok\r\n.\r\n", 0, TXN_REPLY "|354|" TOO_LONG
     "|250 2.1.0|250 2.1.5|354|" QUEUED, TXN_EVENTS " B A X M<a@b.test> "
     "R<c@d.test> B E X", NULL},
    {"bdat line at the limit", TXN "BDAT 20 LAST\r\n" LINE_18 "\r\n", 0,
     TXN_REPLY "|" QUEUED, TXN_EVENTS " B E X", LINE_18 "\r\n"},
    {"bdat line over the limit", TXN "BDAT 21 LAST\r\n" LINE_19 "\r\n", 0,
     TXN_REPLY "|" TOO_LONG, TXN_EVENTS " B A X", NULL},
    {"bdat added dot counts", TXN "BDAT 20 LAST\r\n." LINE_19, 0,
     TXN_REPLY "|" TOO_LONG, TXN_EVENTS " B A X", NULL},
    {"bdat added crlf counts", TXN "BDAT 19 LAST\r\n" LINE_19, 0,
     TXN_REPLY "|" TOO_LONG, TXN_EVENTS " B A X", NULL},
    {"bdat line across chunks", TXN "BDAT 10\r\nxxxxxxxxxx"
     "BDAT 11 LAST\r\nxxxxxxxxx\r\n", 0,
     TXN_REPLY "|250 2.0.0 10 octets received|" TOO_LONG,
     TXN_EVENTS " B A X", NULL},
    {"bdat failed chunk fails last", TXN "BDAT 21\r\n" LINE_19 "\r\n"
     "BDAT 0 LAST\r\nNOOP\r\n", 0,
     TXN_REPLY "|" TOO_LONG "|" TOO_LONG "|250 2.0.0", TXN_EVENTS " B A X",
     NULL},
};

static void run_text_line_case(const struct transcript_case *c, size_t step,
                               struct harness *h)
{
    size_t len = c->input_len ? c->input_len : strlen(c->input);

    harness_init(h);
    h->opts.max_text_line = TEXT_LINE_MAX;
    harness_feed(h, c->input, len, step);
}

Test(smtp_server, text_line_limit)
{
    static const size_t steps[] = {0, 1, 7};

    for (size_t i = 0; i < sizeof(text_line_cases) /
                           sizeof(text_line_cases[0]); i++) {
        const struct transcript_case *c = &text_line_cases[i];

        for (size_t j = 0; j < sizeof(steps) / sizeof(steps[0]); j++) {
            struct harness h;
            char want[4096];

            run_text_line_case(c, steps[j], &h);
            snprintf(want, sizeof(want), "%s|%s", GREETING, c->replies);
            cr_expect(replies_match(h.out, want), "%s (step %zu):\n got: "
                      "%s\nwant: %s", c->name, steps[j], h.out, want);
            if (c->events != NULL) {
                cr_expect_str_eq(h.rec.events, c->events, "%s (step %zu)",
                                 c->name, steps[j]);
            }
            if (c->body != NULL) {
                cr_expect(h.rec.body_len == strlen(c->body) &&
                          memcmp(h.rec.body, c->body, h.rec.body_len) == 0,
                          "%s (step %zu): body \"%.*s\"", c->name, steps[j],
                          (int)h.rec.body_len, h.rec.body);
            }
            harness_cleanup(&h);
        }
    }
}

Test(smtp_server, deferred_greeting_holds_input)
{
    struct harness h;

    memset(&h, 0, sizeof(h));
    h.opts.hostname = "mx.test";
    h.opts.max_errors = 5;
    h.server = smtp_server_new(&h.opts, &test_hooks, &h.rec);
    cr_assert_not_null(h.server);
    smtp_server_defer_greeting(h.server);
    smtp_server_feed(h.server, "NOOP\r\nNOOP\r\n", 12);
    cr_expect(!harness_send(&h), "replied before the greeting: %s", h.out);

    smtp_server_greet(h.server);
    harness_drain(&h);
    expect_replies("after the greeting", h.out,
                   GREETING "|250 2.0.0|250 2.0.0");
    harness_cleanup(&h);
}

Test(smtp_server, refuse_closes)
{
    static const char *const replies[] = {
        "421 4.7.0 mx.test Error: too many connections",
        "554 5.5.0 mx.test Error: talked before greeting",
    };

    for (size_t i = 0; i < 2; i++) {
        struct harness h;
        char want[128];

        memset(&h, 0, sizeof(h));
        h.opts.hostname = "mx.test";
        h.server = smtp_server_new(&h.opts, &test_hooks, &h.rec);
        cr_assert_not_null(h.server);
        smtp_server_refuse(h.server, replies[i], "refused");
        smtp_server_feed(h.server, "NOOP\r\n", 6);
        harness_drain(&h);
        snprintf(want, sizeof(want), "%s", replies[i]);
        expect_replies("refusal", h.out, want);
        cr_expect(smtp_server_closing(h.server), "%s", replies[i]);
        cr_expect_str_eq(smtp_server_close_reason(h.server), "refused");
        harness_cleanup(&h);
    }
}

Test(smtp_server, receiving_data_by_state)
{
    struct harness h;

    harness_init(&h);
    cr_expect(!smtp_server_receiving_data(h.server), "before EHLO");
    harness_feed(&h, TXN, strlen(TXN), 0);
    cr_expect(!smtp_server_receiving_data(h.server), "after RCPT");
    harness_feed(&h, "DATA\r\npart", 10, 0);
    cr_expect(smtp_server_receiving_data(h.server), "inside DATA");
    harness_feed(&h, "\r\n.\r\n", 5, 0);
    cr_expect(!smtp_server_receiving_data(h.server), "after DATA");
    harness_feed(&h, MAIL_OK RCPT_OK "BDAT 5\r\nab",
                 strlen(MAIL_OK RCPT_OK "BDAT 5\r\nab"), 0);
    cr_expect(smtp_server_receiving_data(h.server), "inside a BDAT chunk");
    harness_feed(&h, "cde", 3, 0);
    cr_expect(!smtp_server_receiving_data(h.server), "after the chunk");
    harness_cleanup(&h);
}

/* A binary body has no lines, so max_text_line does not apply to it. */
Test(smtp_server, binarymime_ignores_text_line_limit)
{
    static const char input[] = BIN_TXN "BDAT 30 LAST\r\n"
                                "012345678901234567890123456789";
    struct harness h;

    harness_init(&h);
    h.opts.max_text_line = TEXT_LINE_MAX;
    harness_feed(&h, input, sizeof(input) - 1, 0);
    expect_replies("binarymime long line", h.out,
                   GREETING "|" TXN_REPLY "|" QUEUED);
    expect_body_bytes(&h, input + sizeof(input) - 31, 30,
                      "binarymime long line");
    harness_cleanup(&h);
}

/* ---------------------------------------------------------------------
 * STARTTLS */

static int hook_starttls(void *ctx, char *reply)
{
    struct recorder *r = ctx;

    if (r->reject_tls) {
        snprintf(reply, SMTP_REPLY_MAX, "454 4.7.0 TLS not available due "
                 "to temporary reason");
        return -1;
    }
    record(r, "%sT", r->events_len ? " " : "");
    return 0;
}

static const struct smtp_server_hooks tls_hooks = {
    .mail = hook_mail,
    .rcpt = hook_rcpt,
    .data_begin = hook_data_begin,
    .data_write = hook_data_write,
    .data_end = hook_data_end,
    .data_abort = hook_data_abort,
    .reset = hook_reset,
    .starttls = hook_starttls,
};

#define EHLO_TLS_REPLY                                                \
    "250-mx.test|250-PIPELINING|250-SIZE 1000|250-8BITMIME|"          \
    "250-SMTPUTF8|250-CHUNKING|250-BINARYMIME|250-DSN|250-STARTTLS|"  \
    "250 ENHANCEDSTATUSCODES"

/* tls_harness_init starts a session that offers STARTTLS. */
static void tls_harness_init(struct harness *h)
{
    harness_init(h);
    smtp_server_free(h->server);
    free(h->out);
    h->out = NULL;
    h->out_len = 0;
    h->opts.starttls = true;
    h->server = smtp_server_new(&h->opts, &tls_hooks, &h->rec);
    cr_assert_not_null(h->server);
    h->rec.server = h->server;
    smtp_server_greet(h->server);
}

static void feed_text(struct harness *h, const char *text, size_t step)
{
    harness_feed(h, text, strlen(text), step);
}

Test(smtp_server, starttls_not_offered)
{
    struct harness h;

    harness_init(&h);
    feed_text(&h, HI "STARTTLS\r\nHELP\r\n", 0);
    expect_replies("not offered", h.out, GREETING "|" EHLO_REPLY
                   "|502 5.5.1|214 2.0.0 Commands: EHLO HELO MAIL RCPT "
                   "DATA BDAT RSET NOOP QUIT VRFY HELP");
    cr_assert_not(smtp_server_starttls_pending(h.server));
    harness_cleanup(&h);
}

/* check_starttls_discards replays the command injection of CVE-2011-0411
 * (Postfix): commands sent in plaintext after STARTTLS must never run. */
static void check_starttls_discards(size_t step)
{
    static const char after[] = "RSET\r\nMAIL FROM:<x@y.test>\r\n";
    struct harness h;
    uint64_t discarded;

    tls_harness_init(&h);
    feed_text(&h, HI "STARTTLS\r\n", 0);
    feed_text(&h, after, step);
    expect_replies("starttls", h.out, GREETING "|" EHLO_TLS_REPLY
                   "|220 2.0.0 Ready to start TLS");
    cr_assert(smtp_server_starttls_pending(h.server));
    cr_assert_str_eq(h.rec.events, "T");

    discarded = smtp_server_tls_started(h.server);
    cr_assert_eq(discarded, strlen(after), "discarded %llu bytes",
                 (unsigned long long)discarded);
    cr_assert(smtp_server_encrypted(h.server));
    cr_assert_not(smtp_server_starttls_pending(h.server));
    cr_assert_str_eq(smtp_server_helo(h.server), "");
    cr_assert_not(smtp_server_used_esmtp(h.server));
    harness_cleanup(&h);
}

Test(smtp_server, starttls_discards_pipelined)
{
    check_starttls_discards(0);
    check_starttls_discards(1);
}

Test(smtp_server, starttls_same_feed_discarded)
{
    static const char input[] = HI "STARTTLS\r\nRSET\r\nQUIT\r\n";
    struct harness h;

    tls_harness_init(&h);
    feed_text(&h, input, 0);
    expect_replies("one feed", h.out, GREETING "|" EHLO_TLS_REPLY
                   "|220 2.0.0 Ready to start TLS");
    cr_assert_eq(smtp_server_tls_started(h.server), strlen("RSET\r\n"
                                                           "QUIT\r\n"));
    cr_assert_not(smtp_server_closing(h.server));
    harness_cleanup(&h);
}

Test(smtp_server, starttls_resets_session)
{
    struct harness h;

    tls_harness_init(&h);
    feed_text(&h, HI "STARTTLS\r\n", 0);
    smtp_server_tls_started(h.server);
    free(h.out);
    h.out = NULL;
    h.out_len = 0;
    feed_text(&h, MAIL_OK HI "STARTTLS\r\nHELP\r\n", 0);
    expect_replies("after tls", h.out, "503 5.5.1 Error: send HELO/EHLO "
                   "first|" EHLO_REPLY "|554 5.5.1 Error: TLS already "
                   "active|214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA "
                   "BDAT RSET NOOP QUIT VRFY HELP");
    harness_cleanup(&h);
}

Test(smtp_server, starttls_bad_sequence)
{
    struct harness h;

    tls_harness_init(&h);
    feed_text(&h, "STARTTLS\r\n" HI "STARTTLS now\r\n" MAIL_OK
              "STARTTLS\r\n" RCPT_OK "STARTTLS\r\nHELP\r\n", 0);
    expect_replies("sequence", h.out, GREETING "|503 5.5.1 Error: send "
                   "EHLO first|" EHLO_TLS_REPLY "|501 5.5.4 Syntax: "
                   "STARTTLS|250 2.1.0|503 5.5.1 Error: MAIL transaction "
                   "in progress|250 2.1.5|503 5.5.1 Error: MAIL "
                   "transaction in progress|214 2.0.0 Commands: EHLO HELO "
                   "MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS");
    cr_assert_not(smtp_server_starttls_pending(h.server));
    harness_cleanup(&h);
}

Test(smtp_server, starttls_after_helo)
{
    struct harness h;

    tls_harness_init(&h);
    feed_text(&h, "HELO client.test\r\nSTARTTLS\r\nNOOP\r\n", 0);
    expect_replies("after helo", h.out, GREETING "|250 mx.test|503 5.5.1 "
                   "Error: send EHLO first|250 2.0.0 Ok");
    cr_assert_not(smtp_server_starttls_pending(h.server));
    cr_assert_str_eq(h.rec.events, "");
    harness_cleanup(&h);
}

Test(smtp_server, starttls_hook_refuses)
{
    struct harness h;

    tls_harness_init(&h);
    h.rec.reject_tls = true;
    feed_text(&h, HI "STARTTLS\r\nNOOP\r\n", 0);
    expect_replies("refused", h.out, GREETING "|" EHLO_TLS_REPLY
                   "|454 4.7.0 TLS not available|250 2.0.0 Ok");
    cr_assert_not(smtp_server_starttls_pending(h.server));
    harness_cleanup(&h);
}

Test(smtp_server, starttls_implicit_before_greeting)
{
    struct harness h;

    /* An implicit TLS connection is marked before the greeting. */
    harness_init(&h);
    smtp_server_free(h.server);
    free(h.out);
    h.out = NULL;
    h.out_len = 0;
    h.opts.starttls = true;
    h.server = smtp_server_new(&h.opts, &tls_hooks, &h.rec);
    cr_assert_eq(smtp_server_tls_started(h.server), 0);
    smtp_server_greet(h.server);
    feed_text(&h, HI, 0);
    expect_replies("implicit", h.out, GREETING "|" EHLO_REPLY);
    harness_cleanup(&h);
}
