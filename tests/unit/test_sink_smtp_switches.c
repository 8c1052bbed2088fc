/* The SMTP server switches that the bench sink uses: extensions left out
 * of EHLO, a chosen greeting, 2xx texts from hooks and 421 closing. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "proto/smtp_outq.h"
#include "proto/smtp_server.h"

/* Bounds every drain loop in these tests. */
#define DRAIN_ROUNDS_MAX 1000

struct switches {
    struct smtp_server_options opts;
    struct smtp_server *server;
    const char *mail_reply;  /* written by the mail hook, or NULL */
    int mail_result;         /* the mail hook's return value */
    char out[8192];          /* replies so far, CRLF turned into '|' */
    size_t out_len;
};

static int hook_mail(void *ctx, const struct smtp_path *from,
                     const struct smtp_mail_params *params, char *reply)
{
    struct switches *t = ctx;

    (void)from;
    (void)params;
    if (t->mail_reply != NULL) {
        snprintf(reply, SMTP_REPLY_MAX, "%s", t->mail_reply);
    }
    return t->mail_result;
}

static int hook_rcpt(void *ctx, const struct smtp_path *to, char *reply)
{
    (void)ctx;
    if (strncmp(to->address, "custom", 6) == 0) {
        snprintf(reply, SMTP_REPLY_MAX, "250 2.1.5 custom text");
    }
    return 0;
}

/* The tests reply to each body with smtp_server_data_done(). */
static void hook_data_end(void *ctx)
{
    (void)ctx;
}

static const struct smtp_server_hooks switch_hooks = {
    .mail = hook_mail,
    .rcpt = hook_rcpt,
    .data_end = hook_data_end,
};

static void drain(struct switches *t)
{
    struct smtp_outq *out = smtp_server_output(t->server);

    for (int round = 0; out->len > 0 && round < DRAIN_ROUNDS_MAX; round++) {
        struct iovec iov[8];
        int count = smtp_outq_peek(out, iov, 8);
        size_t total = 0;

        for (int i = 0; i < count; i++) {
            for (size_t j = 0; j < iov[i].iov_len; j++) {
                char c = ((const char *)iov[i].iov_base)[j];

                cr_assert_lt(t->out_len, sizeof(t->out) - 1);
                if (c == '\r') {
                    continue;
                }
                t->out[t->out_len++] = c == '\n' ? '|' : c;
            }
            total += iov[i].iov_len;
        }
        smtp_outq_consume(out, total);
    }
    t->out[t->out_len] = '\0';
}

static void start(struct switches *t, unsigned disabled)
{
    memset(t, 0, sizeof(*t));
    t->opts = (struct smtp_server_options){
        .hostname = "mx.test",
        .max_message_size = 1000,
        .max_errors = 20,
        .disabled_extensions = disabled,
    };
    t->server = smtp_server_new(&t->opts, &switch_hooks, t);
    cr_assert_not_null(t->server);
}

/* Feed text and return the replies it produced. */
static const char *say(struct switches *t, const char *text)
{
    size_t before = t->out_len;

    smtp_server_feed(t->server, text, strlen(text));
    drain(t);
    return t->out + before;
}

Test(sink_smtp_switches, ehlo_without_pipelining)
{
    struct switches t;

    start(&t, SMTP_EXT_PIPELINING);
    cr_assert_str_eq(say(&t, "EHLO c.test\r\n"),
                     "250-mx.test|250-SIZE 1000|250-8BITMIME|"
                     "250-SMTPUTF8|250-CHUNKING|250-BINARYMIME|"
                     "250 ENHANCEDSTATUSCODES|");
    smtp_server_free(t.server);
}

Test(sink_smtp_switches, ehlo_without_any)
{
    struct switches t;

    start(&t, SMTP_EXT_PIPELINING | SMTP_EXT_SIZE | SMTP_EXT_8BITMIME |
                  SMTP_EXT_SMTPUTF8 | SMTP_EXT_CHUNKING);
    cr_assert_str_eq(say(&t, "EHLO c.test\r\n"),
                     "250-mx.test|250 ENHANCEDSTATUSCODES|");
    smtp_server_free(t.server);
}

Test(sink_smtp_switches, size_parameter_needs_size)
{
    struct switches t;

    start(&t, SMTP_EXT_SIZE);
    say(&t, "EHLO c.test\r\n");
    cr_assert(strncmp(say(&t, "MAIL FROM:<a@c.test> SIZE=10\r\n"),
                      "555 5.5.4", 9) == 0, "%s", t.out);
    cr_assert_str_eq(say(&t, "MAIL FROM:<a@c.test> BODY=8BITMIME\r\n"),
                     "250 2.1.0 Ok|");
    smtp_server_free(t.server);
}

Test(sink_smtp_switches, body_parameter_needs_8bitmime)
{
    struct switches t;

    start(&t, SMTP_EXT_8BITMIME);
    say(&t, "EHLO c.test\r\n");
    cr_assert(strncmp(say(&t, "MAIL FROM:<a@c.test> BODY=8BITMIME\r\n"),
                      "555 5.5.4", 9) == 0, "%s", t.out);
    cr_assert_str_eq(say(&t, "MAIL FROM:<a@c.test> SIZE=10\r\n"),
                     "250 2.1.0 Ok|");
    smtp_server_free(t.server);
}

Test(sink_smtp_switches, smtputf8_switched_off)
{
    struct switches t;

    start(&t, SMTP_EXT_SMTPUTF8);
    cr_assert_str_eq(say(&t, "EHLO c.test\r\n"),
                     "250-mx.test|250-PIPELINING|250-SIZE 1000|"
                     "250-8BITMIME|250-CHUNKING|250-BINARYMIME|"
                     "250 ENHANCEDSTATUSCODES|");
    cr_assert(strncmp(say(&t, "MAIL FROM:<a@c.test> SMTPUTF8\r\n"),
                      "555 5.5.4", 9) == 0, "%s", t.out);
    cr_assert(strncmp(say(&t, "MAIL FROM:<\xc3\xa4@c.test>\r\n"),
                      "553 5.6.7", 9) == 0, "%s", t.out);
    cr_assert(strncmp(say(&t, "EHLO b\xc3\xa4r.test\r\n"),
                      "501 5.5.4", 9) == 0, "%s", t.out);
    smtp_server_free(t.server);
}

Test(sink_smtp_switches, chunking_switched_off)
{
    struct switches t;

    start(&t, SMTP_EXT_CHUNKING);
    cr_assert_str_eq(say(&t, "EHLO c.test\r\n"),
                     "250-mx.test|250-PIPELINING|250-SIZE 1000|"
                     "250-8BITMIME|250-SMTPUTF8|250 ENHANCEDSTATUSCODES|");
    say(&t, "MAIL FROM:<a@c.test>\r\nRCPT TO:<b@c.test>\r\n");
    cr_assert(strncmp(say(&t, "BDAT 0 LAST\r\n"), "500 5.5.2", 9) == 0,
              "%s", t.out);
    smtp_server_free(t.server);
}

/* --no-binarymime: CHUNKING stays, BODY=BINARYMIME gets 555. */
Test(sink_smtp_switches, binarymime_switched_off)
{
    struct switches t;

    start(&t, SMTP_EXT_BINARYMIME);
    cr_assert_str_eq(say(&t, "EHLO c.test\r\n"),
                     "250-mx.test|250-PIPELINING|250-SIZE 1000|"
                     "250-8BITMIME|250-SMTPUTF8|250-CHUNKING|"
                     "250 ENHANCEDSTATUSCODES|");
    cr_assert(strncmp(say(&t, "MAIL FROM:<a@c.test> BODY=BINARYMIME\r\n"),
                      "555 5.5.4", 9) == 0, "%s", t.out);
    cr_assert_str_eq(say(&t, "MAIL FROM:<a@c.test> BODY=8BITMIME\r\n"),
                     "250 2.1.0 Ok|");
    smtp_server_free(t.server);
}

Test(sink_smtp_switches, refused_greeting_reads_bdat_chunk)
{
    struct switches t;

    start(&t, 0);
    smtp_server_greet_reply(t.server, "554 5.3.2 not now");
    drain(&t);
    cr_assert_str_eq(say(&t, "BDAT 6\r\nQUIT\r\nNOOP\r\n"),
                     "503 5.5.1 Error: service not available, send QUIT|"
                     "503 5.5.1 Error: service not available, send QUIT|");
    cr_assert_not(smtp_server_closing(t.server));
    smtp_server_free(t.server);
}

Test(sink_smtp_switches, refusing_greeting_allows_only_quit)
{
    struct switches t;

    start(&t, 0);
    smtp_server_greet_reply(t.server, "554 5.3.2 not now");
    drain(&t);
    cr_assert_str_eq(t.out, "554 5.3.2 not now|");
    cr_assert(strncmp(say(&t, "EHLO c.test\r\n"), "503 5.5.1", 9) == 0,
              "%s", t.out);
    cr_assert(strncmp(say(&t, "MAIL FROM:<a@c.test>\r\n"), "503 5.5.1", 9)
              == 0, "%s", t.out);
    cr_assert_not(smtp_server_closing(t.server));
    cr_assert_str_eq(say(&t, "QUIT\r\n"), "221 2.0.0 Bye|");
    cr_assert(smtp_server_closing(t.server));
    smtp_server_free(t.server);
}

Test(sink_smtp_switches, greeting_421_closes)
{
    struct switches t;

    start(&t, 0);
    smtp_server_greet_reply(t.server, "421 4.7.0 too many connections");
    drain(&t);
    cr_assert_str_eq(t.out, "421 4.7.0 too many connections|");
    cr_assert(smtp_server_closing(t.server));
    smtp_server_free(t.server);
}

Test(sink_smtp_switches, hooks_accept_with_own_text)
{
    struct switches t;

    start(&t, 0);
    t.mail_reply = "250 2.1.0 sender fine";
    say(&t, "EHLO c.test\r\n");
    cr_assert_str_eq(say(&t, "MAIL FROM:<a@c.test>\r\n"),
                     "250 2.1.0 sender fine|");
    cr_assert_str_eq(say(&t, "RCPT TO:<custom@c.test>\r\n"),
                     "250 2.1.5 custom text|");
    cr_assert_str_eq(say(&t, "RCPT TO:<plain@c.test>\r\n"),
                     "250 2.1.5 Ok|");
    cr_assert_str_eq(say(&t, "DATA\r\n"),
                     "354 End data with <CR><LF>.<CR><LF>|");
    smtp_server_free(t.server);
}

Test(sink_smtp_switches, hook_421_closes)
{
    struct switches t;

    start(&t, 0);
    t.mail_reply = "421 4.3.0 going away";
    t.mail_result = -1;
    say(&t, "EHLO c.test\r\n");
    cr_assert_str_eq(say(&t, "MAIL FROM:<a@c.test>\r\nNOOP\r\n"),
                     "421 4.3.0 going away|");
    cr_assert(smtp_server_closing(t.server));
    smtp_server_free(t.server);
}

Test(sink_smtp_switches, data_done_421_closes)
{
    struct switches t;

    start(&t, 0);
    say(&t, "EHLO c.test\r\nMAIL FROM:<a@c.test>\r\nRCPT TO:<b@c.test>\r\n"
            "DATA\r\n");
    say(&t, "Subject: x\r\n\r\nhi\r\n.\r\nNOOP\r\n");
    cr_assert(smtp_server_waiting(t.server));
    smtp_server_data_done(t.server, "421 4.3.2 shutting down");
    drain(&t);
    cr_assert(strstr(t.out, "|421 4.3.2 shutting down|") != NULL, "%s",
              t.out);
    cr_assert_null(strstr(t.out, "shutting down|250"),
                   "NOOP after the 421 was answered: %s", t.out);
    cr_assert(smtp_server_closing(t.server));
    smtp_server_free(t.server);
}
