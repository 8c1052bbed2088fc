/* Transcript tests for the SMTP client session: server replies go in,
 * and the exact command bytes that come out are checked. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include "proto/smtp_client.h"

#define HELO_NAME "relay.test"

#define EHLO_PIPELINING "250-mx.test Hello\r\n250-PIPELINING\r\n" \
                        "250-8BITMIME\r\n250 SIZE 1000000\r\n"
#define EHLO_PLAIN "250-mx.test Hello\r\n250 8BITMIME\r\n"

static const char *const rcpts[] = {
    "b@example.com",
    "c@example.com",
    "d@example.com",
};

static const char body[] = "Subject: test\r\n\r\nhello\r\n..dot\r\n";

static struct smtp_client_message message(size_t rcpt_count)
{
    return (struct smtp_client_message){
        .sender = "a@example.org",
        .rcpts = rcpts,
        .rcpt_count = rcpt_count,
        .body = body,
        .body_len = sizeof(body) - 1,
    };
}

static void feed(struct smtp_client *c, const char *text)
{
    smtp_client_feed(c, text, strlen(text));
}

/* take_output moves every queued byte into buf as a string. */
static void take_output(struct smtp_client *c, char *buf, size_t size)
{
    struct smtp_outq *q = smtp_client_output(c);
    struct iovec iov[64];
    size_t len = 0;
    int count = smtp_outq_peek(q, iov, 64);

    for (int i = 0; i < count; i++) {
        cr_assert_lt(len + iov[i].iov_len, size, "output too long");
        memcpy(buf + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    buf[len] = '\0';
    smtp_outq_consume(q, len);
    cr_expect_eq(q->len, 0, "more than 64 iovecs queued");
}

static void expect_output(struct smtp_client *c, const char *expected)
{
    char buf[4096];

    take_output(c, buf, sizeof(buf));
    cr_expect_str_eq(buf, expected);
}

static void expect_result(struct smtp_client *c, size_t i, int code,
                          const char *text)
{
    const struct smtp_client_result *r = smtp_client_result(c, i);

    cr_assert_not_null(r);
    cr_expect_eq(r->code, code, "recipient %zu: code %d", i, r->code);
    cr_expect_str_eq(r->text, text, "recipient %zu", i);
}

static void expect_done(struct smtp_client *c)
{
    cr_expect_eq(smtp_client_state(c), SMTP_CLIENT_DONE);
}

static void expect_running(struct smtp_client *c)
{
    cr_expect_eq(smtp_client_state(c), SMTP_CLIENT_RUNNING);
}

/* start creates a session and runs it through the greeting and EHLO. */
static struct smtp_client *start(const struct smtp_client_message *msg,
                                 const char *ehlo_reply)
{
    struct smtp_client *c = smtp_client_new(HELO_NAME, msg);

    cr_assert_not_null(c);
    expect_running(c);
    expect_output(c, "");
    feed(c, "220 mx.test ESMTP\r\n");
    expect_output(c, "EHLO " HELO_NAME "\r\n");
    feed(c, ehlo_reply);
    return c;
}

/* expect_body checks that the body goes out by reference from the
 * message, followed by the end of data. */
static void expect_body(struct smtp_client *c)
{
    struct smtp_outq *q = smtp_client_output(c);
    struct iovec iov[8];
    int count = smtp_outq_peek(q, iov, 8);

    cr_assert_eq(count, 2);
    cr_expect_eq(iov[0].iov_base, (void *)body);
    cr_expect_eq(iov[0].iov_len, sizeof(body) - 1);
    cr_expect_eq(iov[1].iov_len, 3);
    cr_expect(memcmp(iov[1].iov_base, ".\r\n", 3) == 0);
    smtp_outq_consume(q, q->len);
}

Test(smtp_client, pipelined_delivery)
{
    struct smtp_client_message msg = message(2);
    struct smtp_client *c;

    msg.eight_bit = true;
    c = start(&msg, EHLO_PIPELINING);
    expect_output(c, "MAIL FROM:<a@example.org> BODY=8BITMIME SIZE=31\r\n"
                     "RCPT TO:<b@example.com>\r\n"
                     "RCPT TO:<c@example.com>\r\n"
                     "DATA\r\n");

    feed(c, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n"
            "354 go ahead\r\n");
    expect_running(c);
    expect_body(c);

    feed(c, "250 2.0.0 queued as 42\r\n");
    expect_done(c);
    expect_result(c, 0, 250, "250 2.0.0 queued as 42");
    expect_result(c, 1, 250, "250 2.0.0 queued as 42");
    expect_output(c, "QUIT\r\n");
    cr_expect_not(smtp_client_quit_answered(c));

    feed(c, "221 2.0.0 bye\r\n");
    cr_expect(smtp_client_quit_answered(c));
    cr_expect_null(smtp_client_result(c, 2));
    smtp_client_free(c);
}

Test(smtp_client, one_at_a_time_delivery)
{
    struct smtp_client_message msg = message(2);
    struct smtp_client *c = start(&msg, EHLO_PLAIN);

    expect_output(c, "MAIL FROM:<a@example.org>\r\n");
    feed(c, "250 ok\r\n");
    expect_output(c, "RCPT TO:<b@example.com>\r\n");
    feed(c, "250 ok\r\n");
    expect_output(c, "RCPT TO:<c@example.com>\r\n");
    feed(c, "250 ok\r\n");
    expect_output(c, "DATA\r\n");
    feed(c, "354 go ahead\r\n");
    expect_body(c);
    expect_running(c);

    feed(c, "250 queued\r\n");
    expect_done(c);
    expect_result(c, 0, 250, "250 queued");
    expect_result(c, 1, 250, "250 queued");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

Test(smtp_client, ehlo_rejected_falls_back_to_helo)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c;

    msg.eight_bit = true;
    c = start(&msg, "502 5.5.1 EHLO not implemented\r\n");
    expect_output(c, "HELO " HELO_NAME "\r\n");
    feed(c, "250 mx.test\r\n");
    expect_output(c, "MAIL FROM:<a@example.org>\r\n");
    feed(c, "250 ok\r\n");
    expect_output(c, "RCPT TO:<b@example.com>\r\n");
    smtp_client_free(c);
}

Test(smtp_client, helo_rejected)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = start(&msg, "500 what\r\n");

    expect_output(c, "HELO " HELO_NAME "\r\n");
    feed(c, "550 go away\r\n");
    expect_done(c);
    expect_result(c, 0, 550, "550 go away");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

Test(smtp_client, ehlo_temporary_failure)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = start(&msg, "450 busy\r\n");

    expect_done(c);
    expect_result(c, 0, 450, "450 busy");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

Test(smtp_client, greeting_554)
{
    struct smtp_client_message msg = message(2);
    struct smtp_client *c = smtp_client_new(HELO_NAME, &msg);

    cr_assert_not_null(c);
    feed(c, "554 5.7.1 no service for you\r\n");
    expect_done(c);
    expect_result(c, 0, 554, "554 5.7.1 no service for you");
    expect_result(c, 1, 554, "554 5.7.1 no service for you");
    expect_output(c, "QUIT\r\n");
    feed(c, "221 bye\r\n");
    cr_expect(smtp_client_quit_answered(c));
    smtp_client_free(c);
}

Test(smtp_client, greeting_not_220)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = smtp_client_new(HELO_NAME, &msg);

    cr_assert_not_null(c);
    feed(c, "250 hello\r\n");
    expect_done(c);
    expect_result(c, 0, 451, "451 4.5.0 Unexpected reply: 250 hello");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

Test(smtp_client, mail_rejected)
{
    struct smtp_client_message msg = message(2);
    struct smtp_client *c = start(&msg, EHLO_PLAIN);

    expect_output(c, "MAIL FROM:<a@example.org>\r\n");
    feed(c, "550 5.7.1 sender denied\r\n");
    expect_done(c);
    expect_result(c, 0, 550, "550 5.7.1 sender denied");
    expect_result(c, 1, 550, "550 5.7.1 sender denied");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

/* With the batch in flight, QUIT waits for the DATA reply. */
Test(smtp_client, pipelined_mail_rejected)
{
    struct smtp_client_message msg = message(2);
    struct smtp_client *c = start(&msg, EHLO_PIPELINING);

    expect_output(c, "MAIL FROM:<a@example.org> SIZE=31\r\n"
                     "RCPT TO:<b@example.com>\r\n"
                     "RCPT TO:<c@example.com>\r\n"
                     "DATA\r\n");
    feed(c, "451 4.3.0 try later\r\n");
    expect_done(c);
    expect_result(c, 0, 451, "451 4.3.0 try later");
    expect_result(c, 1, 451, "451 4.3.0 try later");
    expect_output(c, "");

    feed(c, "503 need MAIL\r\n503 need MAIL\r\n");
    expect_output(c, "");
    feed(c, "503 need RCPT\r\n");
    expect_output(c, "QUIT\r\n");
    expect_result(c, 0, 451, "451 4.3.0 try later");
    smtp_client_free(c);
}

Test(smtp_client, one_rcpt_of_three_rejected)
{
    struct smtp_client_message msg = message(3);
    struct smtp_client *c = start(&msg, EHLO_PIPELINING);

    expect_output(c, "MAIL FROM:<a@example.org> SIZE=31\r\n"
                     "RCPT TO:<b@example.com>\r\n"
                     "RCPT TO:<c@example.com>\r\n"
                     "RCPT TO:<d@example.com>\r\n"
                     "DATA\r\n");
    feed(c, "250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n250 ok\r\n");
    expect_result(c, 1, 550, "550 5.1.1 no such user");
    expect_result(c, 0, 0, "");
    expect_running(c);

    feed(c, "354 go\r\n");
    expect_body(c);
    feed(c, "250 2.0.0 ok\r\n");
    expect_done(c);
    expect_result(c, 0, 250, "250 2.0.0 ok");
    expect_result(c, 1, 550, "550 5.1.1 no such user");
    expect_result(c, 2, 250, "250 2.0.0 ok");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

Test(smtp_client, all_rcpts_rejected_pipelined)
{
    struct smtp_client_message msg = message(2);
    struct smtp_client *c = start(&msg, EHLO_PIPELINING);

    take_output(c, (char[1024]){0}, 1024);
    feed(c, "250 ok\r\n550 no\r\n");
    expect_running(c);
    feed(c, "452 full\r\n");
    expect_done(c);
    expect_result(c, 0, 550, "550 no");
    expect_result(c, 1, 452, "452 full");
    expect_output(c, "");

    feed(c, "554 5.5.1 no valid recipients\r\n");
    expect_output(c, "QUIT\r\n");
    expect_result(c, 0, 550, "550 no");
    smtp_client_free(c);
}

/* A server that answers DATA with 354 although no RCPT succeeded gets an
 * empty message, and its final reply delivers nothing. */
Test(smtp_client, data_354_without_recipients)
{
    struct smtp_client_message msg = message(2);
    struct smtp_client *c = start(&msg, EHLO_PIPELINING);

    take_output(c, (char[1024]){0}, 1024);
    feed(c, "250 ok\r\n550 no\r\n550 no\r\n354 go\r\n");
    expect_done(c);
    expect_output(c, ".\r\n");
    feed(c, "250 2.0.0 queued\r\n");
    expect_result(c, 0, 550, "550 no");
    expect_result(c, 1, 550, "550 no");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

Test(smtp_client, all_rcpts_rejected_one_at_a_time)
{
    struct smtp_client_message msg = message(2);
    struct smtp_client *c = start(&msg, EHLO_PLAIN);

    expect_output(c, "MAIL FROM:<a@example.org>\r\n");
    feed(c, "250 ok\r\n");
    expect_output(c, "RCPT TO:<b@example.com>\r\n");
    feed(c, "550 no\r\n");
    expect_output(c, "RCPT TO:<c@example.com>\r\n");
    feed(c, "551 no\r\n");
    expect_done(c);
    expect_result(c, 0, 550, "550 no");
    expect_result(c, 1, 551, "551 no");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

Test(smtp_client, data_rejected)
{
    struct smtp_client_message msg = message(2);
    struct smtp_client *c = start(&msg, EHLO_PIPELINING);

    take_output(c, (char[1024]){0}, 1024);
    feed(c, "250 ok\r\n550 no\r\n250 ok\r\n554 5.3.0 no DATA\r\n");
    expect_done(c);
    expect_result(c, 0, 550, "550 no");
    expect_result(c, 1, 554, "554 5.3.0 no DATA");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

Test(smtp_client, final_reply_451)
{
    struct smtp_client_message msg = message(2);
    struct smtp_client *c = start(&msg, EHLO_PIPELINING);

    take_output(c, (char[1024]){0}, 1024);
    feed(c, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    expect_body(c);
    feed(c, "451 4.3.0 disk full\r\n");
    expect_done(c);
    expect_result(c, 0, 451, "451 4.3.0 disk full");
    expect_result(c, 1, 451, "451 4.3.0 disk full");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

Test(smtp_client, timeout_after_end_of_data)
{
    struct smtp_client_message msg = message(2);
    struct smtp_client *c = start(&msg, EHLO_PIPELINING);

    take_output(c, (char[1024]){0}, 1024);
    feed(c, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    expect_body(c);
    cr_expect_not(smtp_client_end_unanswered(c));
    smtp_client_fail(c, 451, "451 4.4.2 Timed out waiting for the relay");
    expect_done(c);
    expect_result(c, 0, 451, "451 4.4.2 Timed out waiting for the relay");
    cr_expect(smtp_client_end_unanswered(c));
    smtp_client_free(c);
}

Test(smtp_client, timeout_before_end_of_data)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = start(&msg, EHLO_PIPELINING);

    take_output(c, (char[1024]){0}, 1024);
    feed(c, "250 ok\r\n250 ok\r\n");
    smtp_client_fail(c, 451, "451 4.4.2 Timed out waiting for the relay");
    expect_done(c);
    cr_expect_not(smtp_client_end_unanswered(c));
    smtp_client_free(c);
}

Test(smtp_client, final_reply_451_answers_end)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = start(&msg, EHLO_PIPELINING);

    take_output(c, (char[1024]){0}, 1024);
    feed(c, "250 ok\r\n250 ok\r\n354 go\r\n");
    expect_body(c);
    feed(c, "451 4.3.0 disk full\r\n");
    smtp_client_fail(c, 451, "451 4.4.2 Connection lost");
    cr_expect_not(smtp_client_end_unanswered(c));
    smtp_client_free(c);
}

Test(smtp_client, service_closing_421)
{
    struct smtp_client_message msg = message(3);
    struct smtp_client *c = start(&msg, EHLO_PLAIN);

    expect_output(c, "MAIL FROM:<a@example.org>\r\n");
    feed(c, "250 ok\r\n");
    expect_output(c, "RCPT TO:<b@example.com>\r\n");
    feed(c, "550 no\r\n");
    expect_output(c, "RCPT TO:<c@example.com>\r\n");
    feed(c, "421 4.4.2 closing\r\n250 late\r\n");
    expect_done(c);
    expect_result(c, 0, 550, "550 no");
    expect_result(c, 1, 421, "421 4.4.2 closing");
    expect_result(c, 2, 421, "421 4.4.2 closing");
    expect_output(c, "");
    cr_expect(smtp_client_quit_answered(c));
    smtp_client_free(c);
}

Test(smtp_client, greeting_421)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = smtp_client_new(HELO_NAME, &msg);

    cr_assert_not_null(c);
    feed(c, "421 4.3.2 too busy\r\n");
    expect_done(c);
    expect_result(c, 0, 421, "421 4.3.2 too busy");
    expect_output(c, "");
    smtp_client_free(c);
}

Test(smtp_client, garbage_reply)
{
    struct smtp_client_message msg = message(2);
    struct smtp_client *c = start(&msg, "hello there\r\n");

    expect_done(c);
    expect_result(c, 0, 451, "451 4.5.0 Invalid reply from the server");
    expect_result(c, 1, 451, "451 4.5.0 Invalid reply from the server");
    expect_output(c, "QUIT\r\n");

    feed(c, "221 bye\r\n");
    expect_output(c, "");
    smtp_client_free(c);
}

Test(smtp_client, garbage_after_partial_reply)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = start(&msg, "250-mx\r\n");

    expect_running(c);
    feed(c, "251 mismatched\r\n");
    expect_result(c, 0, 451, "451 4.5.0 Invalid reply from the server");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

Test(smtp_client, reply_too_long)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = start(&msg, "250-mx\r\n");
    char line[512];

    memset(line, 'x', sizeof(line) - 1);
    memcpy(line, "250-", 4);
    memcpy(line + sizeof(line) - 3, "\r\n", 3);

    /* A bounded number of feeds: the client must give up before the
     * reply reaches 16 KiB plus one line. */
    for (int i = 0; i < 40 && smtp_client_state(c) != SMTP_CLIENT_DONE;
         i++) {
        feed(c, line);
    }
    expect_result(c, 0, 451, "451 4.5.0 Invalid reply from the server");
    smtp_client_free(c);
}

Test(smtp_client, input_after_quit_ignored)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = smtp_client_new(HELO_NAME, &msg);

    cr_assert_not_null(c);
    feed(c, "554 no\r\n221 bye\r\n250 extra\r\nnot a reply\r\n");
    expect_result(c, 0, 554, "554 no");
    cr_expect(smtp_client_quit_answered(c));
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

Test(smtp_client, smtputf8_missing)
{
    struct smtp_client_message msg = message(2);
    struct smtp_client *c;

    msg.smtputf8 = true;
    c = start(&msg, EHLO_PIPELINING);
    expect_done(c);
    expect_result(c, 0, 553, "553 5.6.7 The message needs SMTPUTF8 but the "
                             "peer does not support SMTPUTF8");
    expect_result(c, 1, 553, "553 5.6.7 The message needs SMTPUTF8 but the "
                             "peer does not support SMTPUTF8");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

Test(smtp_client, smtputf8_offered)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c;

    msg.smtputf8 = true;
    msg.eight_bit = true;
    c = start(&msg, "250-mx\r\n250-SMTPUTF8\r\n250 8BITMIME\r\n");
    expect_output(c, "MAIL FROM:<a@example.org> BODY=8BITMIME SMTPUTF8\r\n");
    smtp_client_free(c);
}

Test(smtp_client, eight_bit_not_offered)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c;

    msg.eight_bit = true;
    c = start(&msg, "250-mx\r\n250 SIZE\r\n");
    expect_output(c, "MAIL FROM:<a@example.org> SIZE=31\r\n");
    smtp_client_free(c);
}

Test(smtp_client, null_sender)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c;

    msg.sender = "";
    c = start(&msg, EHLO_PLAIN);
    expect_output(c, "MAIL FROM:<>\r\n");
    smtp_client_free(c);
}

Test(smtp_client, body_by_reference)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = start(&msg, EHLO_PIPELINING);
    char out[1024];

    take_output(c, out, sizeof(out));
    feed(c, "250 ok\r\n250 ok\r\n354 go\r\n");
    expect_body(c);

    /* The same reply again with the bytes checked, not only pointers. */
    smtp_client_free(c);
    c = start(&msg, EHLO_PIPELINING);
    take_output(c, out, sizeof(out));
    feed(c, "250 ok\r\n250 ok\r\n354 go\r\n");
    take_output(c, out, sizeof(out));
    cr_expect_str_eq(out, "Subject: test\r\n\r\nhello\r\n..dot\r\n.\r\n");
    smtp_client_free(c);
}

Test(smtp_client, empty_body)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c;

    msg.body = "";
    msg.body_len = 0;
    c = start(&msg, EHLO_PIPELINING);
    expect_output(c, "MAIL FROM:<a@example.org> SIZE=0\r\n"
                     "RCPT TO:<b@example.com>\r\nDATA\r\n");
    feed(c, "250 ok\r\n250 ok\r\n354 go\r\n");
    expect_output(c, ".\r\n");
    feed(c, "250 ok\r\n");
    expect_result(c, 0, 250, "250 ok");
    smtp_client_free(c);
}

Test(smtp_client, body_without_final_crlf)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c;

    msg.body = "hello";
    msg.body_len = 5;
    c = start(&msg, EHLO_PIPELINING);
    take_output(c, (char[1024]){0}, 1024);
    feed(c, "250 ok\r\n250 ok\r\n354 go\r\n");
    expect_output(c, "hello\r\n.\r\n");
    smtp_client_free(c);
}

/* A whole pipelined session fed one byte at a time produces the same
 * commands and results as whole replies do. */
Test(smtp_client, replies_split_byte_by_byte)
{
    static const char *const replies[] = {
        "220 mx.test ESMTP\r\n",
        EHLO_PIPELINING,
        "250 ok\r\n250 ok\r\n550 5.1.1 no\r\n250 ok\r\n354 go\r\n",
        "250-2.0.0 queued\r\n250 2.0.0 as 42\r\n",
        "221 bye\r\n",
    };
    static const char *const outputs[] = {
        "EHLO " HELO_NAME "\r\n",
        "MAIL FROM:<a@example.org> SIZE=31\r\nRCPT TO:<b@example.com>\r\n"
        "RCPT TO:<c@example.com>\r\nRCPT TO:<d@example.com>\r\nDATA\r\n",
        "Subject: test\r\n\r\nhello\r\n..dot\r\n.\r\n",
        "QUIT\r\n",
        "",
    };
    struct smtp_client_message msg = message(3);
    struct smtp_client *c = smtp_client_new(HELO_NAME, &msg);

    cr_assert_not_null(c);
    for (size_t r = 0; r < sizeof(replies) / sizeof(replies[0]); r++) {
        for (size_t i = 0; replies[r][i] != '\0'; i++) {
            smtp_client_feed(c, &replies[r][i], 1);
        }
        expect_output(c, outputs[r]);
    }
    expect_result(c, 0, 250, "250 2.0.0 as 42");
    expect_result(c, 1, 550, "550 5.1.1 no");
    expect_result(c, 2, 250, "250 2.0.0 as 42");
    cr_expect(smtp_client_quit_answered(c));
    smtp_client_free(c);
}

Test(smtp_client, reply_split_across_batch)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = start(&msg, EHLO_PIPELINING);

    take_output(c, (char[1024]){0}, 1024);
    feed(c, "250 ok\r\n25");
    feed(c, "0 ok\r\n354 g");
    expect_output(c, "");
    feed(c, "o\r\n");
    expect_body(c);
    smtp_client_free(c);
}

Test(smtp_client, fail_network_error)
{
    struct smtp_client_message msg = message(2);
    struct smtp_client *c = start(&msg, EHLO_PIPELINING);

    take_output(c, (char[1024]){0}, 1024);
    feed(c, "250 ok\r\n550 no\r\n");
    smtp_client_fail(c, 451, "451 4.4.2 Connection lost");
    expect_done(c);
    expect_result(c, 0, 550, "550 no");
    expect_result(c, 1, 451, "451 4.4.2 Connection lost");

    feed(c, "250 ok\r\n354 go\r\n");
    expect_output(c, "");
    cr_expect_not(smtp_client_quit_answered(c));
    smtp_client_free(c);
}

Test(smtp_client, fail_text_without_code)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = smtp_client_new(HELO_NAME, &msg);

    cr_assert_not_null(c);
    smtp_client_fail(c, 451, "4.4.1 Timed out");
    expect_result(c, 0, 451, "451 4.4.1 Timed out");
    smtp_client_free(c);
}

Test(smtp_client, long_reply_text_truncated)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = smtp_client_new(HELO_NAME, &msg);
    char reply[1100];
    const struct smtp_client_result *r;

    memset(reply, 'x', sizeof(reply));
    memcpy(reply, "554 ", 4);
    memcpy(reply + sizeof(reply) - 3, "\r\n", 3);
    cr_assert_not_null(c);
    feed(c, reply);

    r = smtp_client_result(c, 0);
    cr_expect_eq(r->code, 554);
    cr_expect_eq(strlen(r->text), SMTP_CLIENT_TEXT_MAX - 1);
    cr_expect(strncmp(r->text, "554 xxx", 7) == 0);
    smtp_client_free(c);
}

Test(smtp_client, reply_text_control_bytes)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = smtp_client_new(HELO_NAME, &msg);
    const char reply[] = "554 bad\tbyte\x01 \xc3\xa9\r\n";

    cr_assert_not_null(c);
    feed(c, reply);
    expect_result(c, 0, 554, "554 bad?byte? ??");
    smtp_client_free(c);
}

Test(smtp_client, address_with_crlf_not_sent)
{
    static const char *const bad_rcpts[] = {
        "b@example.com",
        "x@example.com>\r\nRSET",
    };
    struct smtp_client_message msg = message(2);
    struct smtp_client *c;

    msg.rcpts = bad_rcpts;
    c = start(&msg, EHLO_PIPELINING);
    expect_result(c, 1, 553, "553 5.1.3 Invalid recipient address syntax");
    expect_output(c, "MAIL FROM:<a@example.org> SIZE=31\r\n"
                     "RCPT TO:<b@example.com>\r\nDATA\r\n");
    smtp_client_free(c);
}

Test(smtp_client, sender_with_crlf)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c;

    msg.sender = "a@example.org>\r\nRCPT TO:<x@y";
    c = smtp_client_new(HELO_NAME, &msg);
    cr_assert_not_null(c);
    expect_done(c);
    expect_result(c, 0, 553, "553 5.1.7 Invalid sender address syntax");
    feed(c, "220 hi\r\n");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

Test(smtp_client, quoted_at_and_literals_sent)
{
    static const char *const odd_rcpts[] = {
        "\"a@b\"@example.com",
        "u@[127.0.0.1]",
        "v@[IPv6:::1]",
        "postmaster",
    };
    struct smtp_client_message msg = message(4);
    struct smtp_client *c;

    msg.rcpts = odd_rcpts;
    c = start(&msg, EHLO_PIPELINING);
    expect_running(c);
    expect_output(c, "MAIL FROM:<a@example.org> SIZE=31\r\n"
                     "RCPT TO:<\"a@b\"@example.com>\r\n"
                     "RCPT TO:<u@[127.0.0.1]>\r\n"
                     "RCPT TO:<v@[IPv6:::1]>\r\n"
                     "RCPT TO:<postmaster>\r\nDATA\r\n");
    smtp_client_free(c);
}

Test(smtp_client, invalid_recipients_not_sent)
{
    static const char *const bad_rcpts[] = {
        "a@b@example.com",
        "user",
        "",
        "u@[300.0.0.1]",
        "<u@example.com>",
        "jos\xc3\xa9@example.com",
        "ok@example.com",
    };
    struct smtp_client_message msg = message(7);
    struct smtp_client *c;

    msg.rcpts = bad_rcpts;
    c = start(&msg, EHLO_PIPELINING);
    for (size_t i = 0; i < 5; i++) {
        expect_result(c, i, 553,
                      "553 5.1.3 Invalid recipient address syntax");
    }
    expect_result(c, 5, 553,
                  "553 5.6.7 Non-ASCII recipient address needs SMTPUTF8");
    expect_output(c, "MAIL FROM:<a@example.org> SIZE=31\r\n"
                     "RCPT TO:<ok@example.com>\r\nDATA\r\n");
    smtp_client_free(c);
}

Test(smtp_client, recipient_too_long)
{
    static char long_rcpt[300];
    static const char *rcpt_list[1] = {long_rcpt};
    struct smtp_client_message msg = message(1);
    struct smtp_client *c;

    /* 64 + '@' + 190 is 255 bytes, one more than a path leaves. */
    memset(long_rcpt, 'a', 64);
    long_rcpt[64] = '@';
    memset(long_rcpt + 65, 'b', 60);
    long_rcpt[125] = '.';
    memset(long_rcpt + 126, 'c', 60);
    long_rcpt[186] = '.';
    memset(long_rcpt + 187, 'd', 68);
    long_rcpt[187 + 63] = '.';
    long_rcpt[255] = '\0';
    msg.rcpts = rcpt_list;
    c = smtp_client_new(HELO_NAME, &msg);
    cr_assert_not_null(c);
    expect_done(c);
    expect_result(c, 0, 553, "553 5.1.3 Recipient address too long");
    smtp_client_free(c);
}

Test(smtp_client, sender_bare_postmaster)
{
    struct smtp_client_message msg = message(2);
    struct smtp_client *c;

    msg.sender = "postmaster";
    c = smtp_client_new(HELO_NAME, &msg);
    cr_assert_not_null(c);
    expect_done(c);
    expect_result(c, 0, 553, "553 5.1.7 Invalid sender address syntax");
    expect_result(c, 1, 553, "553 5.1.7 Invalid sender address syntax");
    smtp_client_free(c);
}

Test(smtp_client, sender_utf8_without_smtputf8)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c;

    msg.sender = "s\xc3\xa9nder@example.org";
    c = smtp_client_new(HELO_NAME, &msg);
    cr_assert_not_null(c);
    expect_done(c);
    expect_result(c, 0, 553,
                  "553 5.6.7 Non-ASCII sender address needs SMTPUTF8");
    smtp_client_free(c);
}

Test(smtp_client, null_sender_sent)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c;

    msg.sender = "";
    c = start(&msg, EHLO_PIPELINING);
    expect_output(c, "MAIL FROM:<> SIZE=31\r\n"
                     "RCPT TO:<b@example.com>\r\nDATA\r\n");
    smtp_client_free(c);
}

Test(smtp_client, no_recipients)
{
    struct smtp_client_message msg = message(0);
    struct smtp_client *c = smtp_client_new(HELO_NAME, &msg);

    cr_assert_not_null(c);
    expect_done(c);
    feed(c, "220 hi\r\n");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

Test(smtp_client, free_null)
{
    smtp_client_free(NULL);
}

/* ---- BINARYMIME messages (RFC 3030): BDAT only ---- */

#define EHLO_BINARY "250-mx.test Hello\r\n250-PIPELINING\r\n" \
                    "250-CHUNKING\r\n250-BINARYMIME\r\n250 SIZE\r\n"
#define EHLO_BINARY_PLAIN "250-mx.test Hello\r\n250-CHUNKING\r\n" \
                          "250 BINARYMIME\r\n"
#define NO_BINARY "554 5.6.3 Conversion required but not supported: the " \
                  "message is binary (BINARYMIME) and the peer does not "  \
                  "offer CHUNKING and BINARYMIME"

/* Three chunks: two full ones and a half one. */
#define BIG_BODY_LEN (2 * SMTP_CLIENT_CHUNK_MAX + SMTP_CLIENT_CHUNK_MAX / 2)

static const char binary_body[] = "Subject: bin\r\n\r\n\0a\nb\r.\r\n.\r\nend";

static struct smtp_client_message binary_message(size_t rcpt_count)
{
    struct smtp_client_message msg = message(rcpt_count);

    msg.body = binary_body;
    msg.body_len = sizeof(binary_body) - 1;
    msg.binary = true;
    return msg;
}

/* expect_chunk checks that the next queued bytes are line (command
 * lines queued together share one buffer) and then body_part[0..len) by
 * reference, and consumes them. */
static void expect_chunk(struct smtp_client *c, const char *line,
                         const char *body_part, size_t len)
{
    struct smtp_outq *q = smtp_client_output(c);
    struct iovec iov[4];
    size_t line_len = strlen(line);
    int count = smtp_outq_peek(q, iov, 4);
    int want = len > 0 ? 2 : 1;

    cr_assert_geq(count, want, "%s: %d iovecs queued", line, count);
    cr_expect_eq(iov[0].iov_len, line_len, "%s: line is %zu bytes", line,
                 iov[0].iov_len);
    cr_expect(iov[0].iov_len == line_len &&
              memcmp(iov[0].iov_base, line, line_len) == 0,
              "%s: got \"%.*s\"", line, (int)iov[0].iov_len,
              (const char *)iov[0].iov_base);
    if (len > 0) {
        cr_expect_eq(iov[1].iov_base, (void *)body_part,
                     "%s: chunk not sent by reference", line);
        cr_expect_eq(iov[1].iov_len, len, "%s: chunk is %zu bytes", line,
                     iov[1].iov_len);
    }
    smtp_outq_consume(q, line_len + len);
}

Test(smtp_client, binary_pipelined_bdat)
{
    struct smtp_client_message msg = binary_message(2);
    struct smtp_client *c = start(&msg, EHLO_BINARY);

    expect_chunk(c, "MAIL FROM:<a@example.org> BODY=BINARYMIME SIZE=30\r\n"
                    "RCPT TO:<b@example.com>\r\n"
                    "RCPT TO:<c@example.com>\r\n"
                    "BDAT 30 LAST\r\n", binary_body, msg.body_len);
    expect_output(c, "");

    feed(c, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n");
    expect_running(c);
    feed(c, "250 2.0.0 queued as 7\r\n");
    expect_done(c);
    expect_result(c, 0, 250, "250 2.0.0 queued as 7");
    expect_result(c, 1, 250, "250 2.0.0 queued as 7");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

/* The whole pipelined batch, compared byte for byte: envelope, BDAT line
 * and the binary chunk with its NUL byte. */
Test(smtp_client, binary_pipelined_bytes)
{
    struct smtp_client_message msg = binary_message(1);
    struct smtp_client *c = start(&msg, EHLO_BINARY);
    char out[1024];
    char want[1024];
    int n;

    n = snprintf(want, sizeof(want), "MAIL FROM:<a@example.org> "
                 "BODY=BINARYMIME SIZE=%zu\r\nRCPT TO:<b@example.com>\r\n"
                 "BDAT %zu LAST\r\n", msg.body_len, msg.body_len);
    cr_assert(n > 0);
    memcpy(want + n, binary_body, msg.body_len);
    take_output(c, out, sizeof(out));
    cr_expect(memcmp(out, want, (size_t)n + msg.body_len) == 0,
              "got \"%s\"", out);
    smtp_client_free(c);
}

Test(smtp_client, binary_chunks_pipelined)
{
    static char big[BIG_BODY_LEN];
    struct smtp_client_message msg = message(1);
    struct smtp_client *c;
    char line[256];

    msg.body = big;
    msg.body_len = sizeof(big);
    msg.binary = true;
    c = start(&msg, EHLO_BINARY);
    snprintf(line, sizeof(line), "MAIL FROM:<a@example.org> "
             "BODY=BINARYMIME SIZE=%zu\r\nRCPT TO:<b@example.com>\r\n"
             "BDAT %u\r\n", sizeof(big), SMTP_CLIENT_CHUNK_MAX);
    expect_chunk(c, line, big, SMTP_CLIENT_CHUNK_MAX);
    snprintf(line, sizeof(line), "BDAT %u\r\n", SMTP_CLIENT_CHUNK_MAX);
    expect_chunk(c, line, big + SMTP_CLIENT_CHUNK_MAX,
                 SMTP_CLIENT_CHUNK_MAX);
    snprintf(line, sizeof(line), "BDAT %u LAST\r\n",
             SMTP_CLIENT_CHUNK_MAX / 2);
    expect_chunk(c, line, big + 2 * SMTP_CLIENT_CHUNK_MAX,
                 SMTP_CLIENT_CHUNK_MAX / 2);
    expect_output(c, "");

    feed(c, "250 ok\r\n250 ok\r\n250 2.0.0 1048576 octets received\r\n"
            "250 2.0.0 1048576 octets received\r\n");
    expect_running(c);
    expect_output(c, "");
    feed(c, "250 2.0.0 queued as 8\r\n");
    expect_done(c);
    expect_result(c, 0, 250, "250 2.0.0 queued as 8");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

Test(smtp_client, binary_chunks_one_at_a_time)
{
    static char big[BIG_BODY_LEN];
    struct smtp_client_message msg = message(1);
    struct smtp_client *c;
    char line[256];

    msg.body = big;
    msg.body_len = sizeof(big);
    msg.binary = true;
    c = start(&msg, EHLO_BINARY_PLAIN);
    expect_output(c, "MAIL FROM:<a@example.org> BODY=BINARYMIME\r\n");
    feed(c, "250 ok\r\n");
    expect_output(c, "RCPT TO:<b@example.com>\r\n");
    feed(c, "250 ok\r\n");

    snprintf(line, sizeof(line), "BDAT %u\r\n", SMTP_CLIENT_CHUNK_MAX);
    expect_chunk(c, line, big, SMTP_CLIENT_CHUNK_MAX);
    expect_output(c, "");
    feed(c, "250 2.0.0 1048576 octets received\r\n");
    expect_chunk(c, line, big + SMTP_CLIENT_CHUNK_MAX,
                 SMTP_CLIENT_CHUNK_MAX);
    expect_output(c, "");
    feed(c, "250 2.0.0 1048576 octets received\r\n");
    snprintf(line, sizeof(line), "BDAT %u LAST\r\n",
             SMTP_CLIENT_CHUNK_MAX / 2);
    expect_chunk(c, line, big + 2 * SMTP_CLIENT_CHUNK_MAX,
                 SMTP_CLIENT_CHUNK_MAX / 2);
    expect_running(c);
    feed(c, "250 2.0.0 queued as 9\r\n");
    expect_done(c);
    expect_result(c, 0, 250, "250 2.0.0 queued as 9");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

/* One chunk exactly SMTP_CLIENT_CHUNK_MAX long goes out as one BDAT
 * LAST, not followed by an empty one. */
Test(smtp_client, binary_chunk_boundary)
{
    static char body_max[SMTP_CLIENT_CHUNK_MAX];
    struct smtp_client_message msg = message(1);
    struct smtp_client *c;
    char line[256];

    msg.body = body_max;
    msg.body_len = sizeof(body_max);
    msg.binary = true;
    c = start(&msg, EHLO_BINARY);
    snprintf(line, sizeof(line), "MAIL FROM:<a@example.org> "
             "BODY=BINARYMIME SIZE=%zu\r\nRCPT TO:<b@example.com>\r\n"
             "BDAT %u LAST\r\n", sizeof(body_max), SMTP_CLIENT_CHUNK_MAX);
    expect_chunk(c, line, body_max, sizeof(body_max));
    expect_output(c, "");
    smtp_client_free(c);
}

Test(smtp_client, binary_empty_body)
{
    struct smtp_client_message msg = binary_message(1);
    struct smtp_client *c;

    msg.body = "";
    msg.body_len = 0;
    c = start(&msg, EHLO_BINARY);
    expect_output(c, "MAIL FROM:<a@example.org> BODY=BINARYMIME SIZE=0\r\n"
                     "RCPT TO:<b@example.com>\r\nBDAT 0 LAST\r\n");
    feed(c, "250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n");
    expect_done(c);
    expect_result(c, 0, 250, "250 2.0.0 queued");
    smtp_client_free(c);
}

Test(smtp_client, binary_peer_without_binarymime)
{
    struct smtp_client_message msg = binary_message(2);
    struct smtp_client *c =
        start(&msg, "250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n");

    expect_done(c);
    expect_result(c, 0, 554, NO_BINARY);
    expect_result(c, 1, 554, NO_BINARY);
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

Test(smtp_client, binary_peer_without_chunking)
{
    struct smtp_client_message msg = binary_message(1);
    struct smtp_client *c =
        start(&msg, "250-mx.test\r\n250-8BITMIME\r\n250 BINARYMIME\r\n");

    expect_done(c);
    expect_result(c, 0, 554, NO_BINARY);
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

/* HELO offers no extension at all, so a binary message cannot go. */
Test(smtp_client, binary_after_helo_fallback)
{
    struct smtp_client_message msg = binary_message(1);
    struct smtp_client *c = start(&msg, "502 5.5.1 no EHLO\r\n");

    expect_output(c, "HELO " HELO_NAME "\r\n");
    feed(c, "250 mx.test\r\n");
    expect_done(c);
    expect_result(c, 0, 554, NO_BINARY);
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

/* A failed chunk fails the transaction. The replies to the chunks already
 * pipelined are only drained, and QUIT waits for them. */
Test(smtp_client, binary_chunk_rejected_pipelined)
{
    static char big[BIG_BODY_LEN];
    struct smtp_client_message msg = message(1);
    struct smtp_client *c;

    msg.body = big;
    msg.body_len = sizeof(big);
    msg.binary = true;
    c = start(&msg, EHLO_BINARY);
    smtp_outq_consume(smtp_client_output(c), smtp_client_output(c)->len);
    feed(c, "250 ok\r\n250 ok\r\n452 4.3.1 no space\r\n");
    expect_done(c);
    expect_result(c, 0, 452, "452 4.3.1 no space");
    expect_output(c, "");
    feed(c, "452 4.3.1 no space\r\n");
    expect_output(c, "");
    feed(c, "452 4.3.1 no space\r\n");
    expect_output(c, "QUIT\r\n");
    expect_result(c, 0, 452, "452 4.3.1 no space");
    smtp_client_free(c);
}

Test(smtp_client, binary_chunk_rejected_one_at_a_time)
{
    static char big[BIG_BODY_LEN];
    struct smtp_client_message msg = message(1);
    struct smtp_client *c;
    char line[256];

    msg.body = big;
    msg.body_len = sizeof(big);
    msg.binary = true;
    c = start(&msg, EHLO_BINARY_PLAIN);
    expect_output(c, "MAIL FROM:<a@example.org> BODY=BINARYMIME\r\n");
    feed(c, "250 ok\r\n");
    expect_output(c, "RCPT TO:<b@example.com>\r\n");
    feed(c, "250 ok\r\n");
    snprintf(line, sizeof(line), "BDAT %u\r\n", SMTP_CLIENT_CHUNK_MAX);
    expect_chunk(c, line, big, SMTP_CLIENT_CHUNK_MAX);
    feed(c, "552 5.3.4 too big\r\n");
    expect_done(c);
    expect_result(c, 0, 552, "552 5.3.4 too big");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

Test(smtp_client, binary_all_rcpts_rejected_pipelined)
{
    struct smtp_client_message msg = binary_message(1);
    struct smtp_client *c = start(&msg, EHLO_BINARY);

    smtp_outq_consume(smtp_client_output(c), smtp_client_output(c)->len);
    feed(c, "250 ok\r\n550 5.1.1 no such user\r\n");
    expect_done(c);
    expect_output(c, "");
    feed(c, "554 5.5.1 Error: no valid recipients\r\n");
    expect_result(c, 0, 550, "550 5.1.1 no such user");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

/* A message that is not binary keeps DATA even where BDAT is offered. */
Test(smtp_client, text_message_keeps_data)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = start(&msg, EHLO_BINARY);

    expect_output(c, "MAIL FROM:<a@example.org> SIZE=31\r\n"
                     "RCPT TO:<b@example.com>\r\nDATA\r\n");
    smtp_client_free(c);
}

/* ---- DSN parameters ---- */

#define EHLO_DSN "250-mx.test Hello\r\n250-PIPELINING\r\n250 DSN\r\n"

static const unsigned dsn_notify[] = {
    SMTP_DSN_NOTIFY_SUCCESS | SMTP_DSN_NOTIFY_FAILURE,
    0,
};

static const char *const dsn_orcpt[] = {
    "rfc822;b+x=y @example.com",
    "",
};

/* dsn_message is message(2) with every DSN field set. Its ENVID and
 * first ORCPT contain '+', '=' and a blank, which xtext must encode. */
static struct smtp_client_message dsn_message(void)
{
    struct smtp_client_message msg = message(2);

    msg.dsn_ret = SMTP_DSN_RET_HDRS;
    msg.envid = "id+1=2 x";
    msg.notify = dsn_notify;
    msg.orcpt = dsn_orcpt;
    return msg;
}

Test(smtp_client, dsn_params_sent_when_offered)
{
    struct smtp_client_message msg = dsn_message();
    struct smtp_client *c = start(&msg, EHLO_DSN);

    expect_output(c, "MAIL FROM:<a@example.org> RET=HDRS "
                  "ENVID=id+2B1+3D2+20x\r\n"
                  "RCPT TO:<b@example.com> NOTIFY=SUCCESS,FAILURE "
                  "ORCPT=rfc822;b+2Bx+3Dy+20@example.com\r\n"
                  "RCPT TO:<c@example.com>\r\n"
                  "DATA\r\n");
    smtp_client_free(c);
}

Test(smtp_client, dsn_params_dropped_without_dsn)
{
    struct smtp_client_message msg = dsn_message();
    struct smtp_client *c = start(&msg, EHLO_PIPELINING);

    expect_output(c, "MAIL FROM:<a@example.org> SIZE=31\r\n"
                  "RCPT TO:<b@example.com>\r\n"
                  "RCPT TO:<c@example.com>\r\n"
                  "DATA\r\n");
    smtp_client_free(c);
}

Test(smtp_client, dsn_never_and_ret_only)
{
    static const unsigned never[] = {SMTP_DSN_NOTIFY_NEVER};
    struct smtp_client_message msg = message(1);
    struct smtp_client *c;

    msg.dsn_ret = SMTP_DSN_RET_FULL;
    msg.notify = never;
    c = start(&msg, EHLO_DSN);
    expect_output(c, "MAIL FROM:<a@example.org> RET=FULL\r\n"
                  "RCPT TO:<b@example.com> NOTIFY=NEVER\r\n"
                  "DATA\r\n");
    smtp_client_free(c);
}

Test(smtp_client, dsn_one_at_a_time)
{
    struct smtp_client_message msg = dsn_message();
    struct smtp_client *c = start(&msg, "250-mx.test\r\n250 DSN\r\n");

    expect_output(c, "MAIL FROM:<a@example.org> RET=HDRS "
                  "ENVID=id+2B1+3D2+20x\r\n");
    feed(c, "250 2.1.0 Ok\r\n");
    expect_output(c, "RCPT TO:<b@example.com> NOTIFY=SUCCESS,FAILURE "
                  "ORCPT=rfc822;b+2Bx+3Dy+20@example.com\r\n");
    smtp_client_free(c);
}

/* ---------------------------------------------------------------------
 * Connection reuse: keep_open, smtp_client_next and RSET */

static const char *const other_rcpts[] = {"e@example.net"};

static struct smtp_client_message other_message(void)
{
    return (struct smtp_client_message){
        .sender = "f@example.org",
        .rcpts = other_rcpts,
        .rcpt_count = 1,
        .body = body,
        .body_len = sizeof(body) - 1,
    };
}

/* finish_pipelined answers a sent batch of MAIL, rcpt_count RCPTs and
 * DATA with success, checks the body and accepts it. */
static void finish_pipelined(struct smtp_client *c, size_t rcpt_count)
{
    char replies[256] = "250 ok\r\n";

    for (size_t i = 0; i < rcpt_count; i++) {
        strcat(replies, "250 ok\r\n");
    }
    strcat(replies, "354 go\r\n");
    feed(c, replies);
    expect_body(c);
    feed(c, "250 2.0.0 queued\r\n");
    expect_done(c);
}

Test(smtp_client, kept_open_sends_no_quit)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = smtp_client_new(HELO_NAME, &msg);

    cr_assert_not_null(c);
    smtp_client_keep_open(c);
    cr_expect_eq(smtp_client_waiting(c), SMTP_CLIENT_WAIT_GREETING);
    feed(c, "220 mx.test ESMTP\r\n");
    expect_output(c, "EHLO " HELO_NAME "\r\n");
    cr_expect_eq(smtp_client_waiting(c), SMTP_CLIENT_WAIT_COMMAND);
    cr_expect_not(smtp_client_greeted(c));
    feed(c, EHLO_PIPELINING);
    cr_expect(smtp_client_greeted(c));
    take_output(c, (char[1024]){0}, 1024);
    cr_expect_eq(smtp_client_waiting(c), SMTP_CLIENT_WAIT_COMMAND);
    feed(c, "250 ok\r\n250 ok\r\n");
    cr_expect_eq(smtp_client_waiting(c), SMTP_CLIENT_WAIT_DATA);
    feed(c, "354 go\r\n");
    cr_expect_eq(smtp_client_waiting(c), SMTP_CLIENT_WAIT_FINAL);
    expect_body(c);
    cr_expect_not(smtp_client_idle(c));
    feed(c, "250 2.0.0 queued\r\n");
    expect_done(c);
    expect_result(c, 0, 250, "250 2.0.0 queued");
    expect_output(c, "");
    cr_expect(smtp_client_idle(c));
    cr_expect_eq(smtp_client_waiting(c), SMTP_CLIENT_WAIT_NONE);

    smtp_client_quit(c);
    expect_output(c, "QUIT\r\n");
    cr_expect_not(smtp_client_idle(c));
    feed(c, "221 bye\r\n");
    cr_expect(smtp_client_quit_answered(c));
    smtp_client_free(c);
}

Test(smtp_client, next_message_pipelined)
{
    struct smtp_client_message msg = message(2);
    struct smtp_client_message msg2 = other_message();
    struct smtp_client *c = smtp_client_new(HELO_NAME, &msg);
    struct smtp_client *next;

    cr_assert_not_null(c);
    smtp_client_keep_open(c);
    feed(c, "220 mx.test ESMTP\r\n");
    take_output(c, (char[1024]){0}, 1024);
    feed(c, EHLO_PIPELINING);
    take_output(c, (char[1024]){0}, 1024);
    finish_pipelined(c, 2);
    cr_assert(smtp_client_idle(c));

    next = smtp_client_next(c, &msg2);
    smtp_client_free(c);
    cr_assert_not_null(next);
    expect_running(next);
    expect_output(next, "MAIL FROM:<f@example.org> SIZE=31\r\n"
                        "RCPT TO:<e@example.net>\r\n"
                        "DATA\r\n");
    finish_pipelined(next, 1);
    expect_result(next, 0, 250, "250 2.0.0 queued");
    expect_output(next, "");
    cr_expect(smtp_client_idle(next));
    smtp_client_free(next);
}

/* Every RCPT rejected and DATA answered 554 leaves the transaction open
 * at the server, so the next one starts with RSET in the same batch. */
Test(smtp_client, next_after_rejected_data_sends_rset)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client_message msg2 = other_message();
    struct smtp_client *c = smtp_client_new(HELO_NAME, &msg);
    struct smtp_client *next;

    cr_assert_not_null(c);
    smtp_client_keep_open(c);
    feed(c, "220 mx.test ESMTP\r\n");
    take_output(c, (char[1024]){0}, 1024);
    feed(c, EHLO_PIPELINING);
    take_output(c, (char[1024]){0}, 1024);
    feed(c, "250 ok\r\n550 5.1.1 unknown\r\n");
    expect_done(c);
    cr_expect_not(smtp_client_idle(c), "DATA reply still due");
    feed(c, "554 5.5.1 no valid recipients\r\n");
    expect_output(c, "");
    expect_result(c, 0, 550, "550 5.1.1 unknown");
    cr_assert(smtp_client_idle(c));

    next = smtp_client_next(c, &msg2);
    smtp_client_free(c);
    cr_assert_not_null(next);
    expect_output(next, "RSET\r\n"
                        "MAIL FROM:<f@example.org> SIZE=31\r\n"
                        "RCPT TO:<e@example.net>\r\n"
                        "DATA\r\n");
    feed(next, "250 2.0.0 reset\r\n");
    finish_pipelined(next, 1);
    expect_result(next, 0, 250, "250 2.0.0 queued");
    smtp_client_free(next);
}

/* A second transaction that fails the same way, after a pipelined RSET,
 * leaves the server's transaction open again, so the third one also
 * starts with RSET. */
Test(smtp_client, rset_again_after_second_rejected_data)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client_message msg2 = other_message();
    struct smtp_client_message msg3 = other_message();
    struct smtp_client *c = smtp_client_new(HELO_NAME, &msg);
    struct smtp_client *second;
    struct smtp_client *third;

    cr_assert_not_null(c);
    smtp_client_keep_open(c);
    feed(c, "220 mx.test ESMTP\r\n");
    take_output(c, (char[1024]){0}, 1024);
    feed(c, EHLO_PIPELINING);
    take_output(c, (char[1024]){0}, 1024);
    feed(c, "250 ok\r\n451 4.3.0 later\r\n554 5.5.1 no valid rcpts\r\n");
    cr_assert(smtp_client_idle(c));

    second = smtp_client_next(c, &msg2);
    smtp_client_free(c);
    cr_assert_not_null(second);
    take_output(second, (char[1024]){0}, 1024);
    feed(second, "250 2.0.0 reset\r\n250 ok\r\n451 4.3.0 later\r\n"
                 "554 5.5.1 no valid rcpts\r\n");
    expect_result(second, 0, 451, "451 4.3.0 later");
    cr_assert(smtp_client_idle(second));

    third = smtp_client_next(second, &msg3);
    smtp_client_free(second);
    cr_assert_not_null(third);
    expect_output(third, "RSET\r\n"
                         "MAIL FROM:<f@example.org> SIZE=31\r\n"
                         "RCPT TO:<e@example.net>\r\n"
                         "DATA\r\n");
    smtp_client_free(third);
}

/* A 503 to MAIL means the server saw a command out of sequence, so the
 * recipients are deferred, not bounced. */
Test(smtp_client, bad_sequence_reply_defers)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = smtp_client_new(HELO_NAME, &msg);
    char out[1024];

    cr_assert_not_null(c);
    feed(c, "220 mx.test ESMTP\r\n");
    take_output(c, out, sizeof(out));
    feed(c, EHLO_PIPELINING);
    take_output(c, out, sizeof(out));
    feed(c, "503 5.5.1 Error: nested MAIL command\r\n"
            "503 5.5.1 need MAIL\r\n503 5.5.1 need RCPT\r\n");
    expect_result(c, 0, 451,
                  "451 4.5.0 Unexpected reply: 503 5.5.1 Error: nested MAIL "
                  "command");
    smtp_client_free(c);
}

/* After a delivered message the next MAIL follows with no RSET, and after
 * a final 5xx too: the reply to the end of data ends the transaction. */
Test(smtp_client, next_after_final_reply_no_rset)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client_message msg2 = other_message();
    struct smtp_client *c = smtp_client_new(HELO_NAME, &msg);
    struct smtp_client *next;

    cr_assert_not_null(c);
    smtp_client_keep_open(c);
    feed(c, "220 mx.test ESMTP\r\n");
    take_output(c, (char[1024]){0}, 1024);
    feed(c, EHLO_PIPELINING);
    take_output(c, (char[1024]){0}, 1024);
    feed(c, "250 ok\r\n250 ok\r\n354 go\r\n");
    expect_body(c);
    feed(c, "554 5.7.1 content rejected\r\n");
    expect_result(c, 0, 554, "554 5.7.1 content rejected");
    cr_assert(smtp_client_idle(c));

    next = smtp_client_next(c, &msg2);
    smtp_client_free(c);
    cr_assert_not_null(next);
    expect_output(next, "MAIL FROM:<f@example.org> SIZE=31\r\n"
                        "RCPT TO:<e@example.net>\r\n"
                        "DATA\r\n");
    smtp_client_free(next);
}

/* Without PIPELINING, RSET is answered before MAIL goes out. */
Test(smtp_client, next_one_at_a_time_waits_for_rset)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client_message msg2 = other_message();
    struct smtp_client *c = smtp_client_new(HELO_NAME, &msg);
    struct smtp_client *next;

    cr_assert_not_null(c);
    smtp_client_keep_open(c);
    feed(c, "220 mx.test ESMTP\r\n");
    take_output(c, (char[1024]){0}, 1024);
    feed(c, EHLO_PLAIN);
    expect_output(c, "MAIL FROM:<a@example.org>\r\n");
    feed(c, "250 ok\r\n");
    expect_output(c, "RCPT TO:<b@example.com>\r\n");
    feed(c, "550 5.1.1 unknown\r\n");
    expect_done(c);
    expect_output(c, "");
    cr_assert(smtp_client_idle(c));

    next = smtp_client_next(c, &msg2);
    smtp_client_free(c);
    cr_assert_not_null(next);
    expect_output(next, "RSET\r\n");
    feed(next, "250 ok\r\n");
    expect_output(next, "MAIL FROM:<f@example.org>\r\n");
    feed(next, "250 ok\r\n");
    expect_output(next, "RCPT TO:<e@example.net>\r\n");
    feed(next, "250 ok\r\n");
    expect_output(next, "DATA\r\n");
    smtp_client_free(next);
}

Test(smtp_client, rset_rejected_fails_transaction)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client_message msg2 = other_message();
    struct smtp_client *c = smtp_client_new(HELO_NAME, &msg);
    struct smtp_client *next;

    cr_assert_not_null(c);
    smtp_client_keep_open(c);
    feed(c, "220 mx.test ESMTP\r\n");
    take_output(c, (char[1024]){0}, 1024);
    feed(c, EHLO_PLAIN);
    take_output(c, (char[1024]){0}, 1024);
    feed(c, "250 ok\r\n");
    take_output(c, (char[1024]){0}, 1024);
    feed(c, "550 5.1.1 unknown\r\n");
    cr_assert(smtp_client_idle(c));

    next = smtp_client_next(c, &msg2);
    smtp_client_free(c);
    cr_assert_not_null(next);
    expect_output(next, "RSET\r\n");
    feed(next, "451 4.3.0 try later\r\n");
    expect_done(next);
    expect_result(next, 0, 451, "451 4.3.0 try later");
    cr_expect_not(smtp_client_idle(next), "a failed RSET ends reuse");
    smtp_client_free(next);
}

Test(smtp_client, idle_lost_after_421)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = smtp_client_new(HELO_NAME, &msg);

    cr_assert_not_null(c);
    smtp_client_keep_open(c);
    feed(c, "220 mx.test ESMTP\r\n");
    take_output(c, (char[1024]){0}, 1024);
    feed(c, EHLO_PIPELINING);
    take_output(c, (char[1024]){0}, 1024);
    finish_pipelined(c, 1);
    cr_assert(smtp_client_idle(c));
    feed(c, "421 4.4.2 idle too long\r\n");
    cr_expect_not(smtp_client_idle(c));
    cr_expect_null(smtp_client_next(c, &msg));
    expect_output(c, "");
    smtp_client_free(c);
}

Test(smtp_client, not_idle_without_keep_open)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = start(&msg, EHLO_PIPELINING);

    take_output(c, (char[1024]){0}, 1024);
    finish_pipelined(c, 1);
    expect_output(c, "QUIT\r\n");
    cr_expect_not(smtp_client_idle(c));
    cr_expect_null(smtp_client_next(c, &msg));
    smtp_client_free(c);
}

#define EHLO_STARTTLS "250-mx.test Hello\r\n250-PIPELINING\r\n" \
                      "250 STARTTLS\r\n"
#define EHLO_AUTH "250-mx.test Hello\r\n250-PIPELINING\r\n" \
                  "250 AUTH PLAIN LOGIN\r\n"
#define BATCH_ONE "MAIL FROM:<a@example.org>\r\n" \
                  "RCPT TO:<b@example.com>\r\nDATA\r\n"

/* start_tls creates a session with the TLS mode and runs the greeting. */
static struct smtp_client *start_tls(const struct smtp_client_message *msg,
                                     enum smtp_client_tls mode)
{
    struct smtp_client *c = smtp_client_new(HELO_NAME, msg);

    cr_assert_not_null(c);
    smtp_client_set_tls(c, mode);
    feed(c, "220 mx.test ESMTP\r\n");
    expect_output(c, "EHLO " HELO_NAME "\r\n");
    return c;
}

Test(smtp_client, starttls_sent_alone_then_ehlo_again)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = start_tls(&msg, SMTP_CLIENT_TLS_TRY);

    feed(c, EHLO_STARTTLS);
    expect_output(c, "STARTTLS\r\n");
    cr_expect(!smtp_client_tls_ready(c));

    /* Bytes after the 220 are plaintext the handshake must not see. */
    feed(c, "220 2.0.0 Ready\r\n250 injected\r\n");
    cr_expect(smtp_client_tls_ready(c));
    expect_output(c, "");
    expect_running(c);

    smtp_client_tls_started(c);
    cr_expect(smtp_client_tls_active(c));
    expect_output(c, "EHLO " HELO_NAME "\r\n");
    feed(c, "250-mx.test Hello\r\n250 PIPELINING\r\n");
    expect_output(c, BATCH_ONE);
    smtp_client_free(c);
}

Test(smtp_client, starttls_required_but_not_offered)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = start_tls(&msg, SMTP_CLIENT_TLS_REQUIRE);

    feed(c, EHLO_PIPELINING);
    expect_done(c);
    expect_result(c, 0, 451, "451 4.7.4 TLS is required for this next "
                  "hop, but it does not offer STARTTLS");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

Test(smtp_client, starttls_required_but_refused)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = start_tls(&msg, SMTP_CLIENT_TLS_REQUIRE);

    feed(c, EHLO_STARTTLS);
    expect_output(c, "STARTTLS\r\n");
    feed(c, "454 4.7.0 TLS not available\r\n");
    expect_done(c);
    expect_result(c, 0, 451, "451 4.7.4 TLS is required for this next "
                  "hop, but STARTTLS failed: 454 4.7.0 TLS not available");
    smtp_client_free(c);
}

Test(smtp_client, starttls_refused_under_try_goes_plain)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = start_tls(&msg, SMTP_CLIENT_TLS_TRY);

    feed(c, EHLO_STARTTLS);
    expect_output(c, "STARTTLS\r\n");
    feed(c, "454 4.7.0 TLS not available\r\n");
    expect_output(c, BATCH_ONE);
    cr_expect(!smtp_client_tls_active(c));
    smtp_client_free(c);
}

Test(smtp_client, starttls_off_ignores_offer)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = start_tls(&msg, SMTP_CLIENT_TLS_OFF);

    feed(c, EHLO_STARTTLS);
    expect_output(c, BATCH_ONE);
    smtp_client_free(c);
}

/* start_auth runs a session with credentials up to the EHLO inside TLS. */
static struct smtp_client *start_auth(const struct smtp_client_message *msg)
{
    struct smtp_client *c = start_tls(msg, SMTP_CLIENT_TLS_REQUIRE);

    cr_assert_eq(smtp_client_set_auth(c, "alice", "pw"), 0);
    feed(c, EHLO_STARTTLS);
    expect_output(c, "STARTTLS\r\n");
    feed(c, "220 go ahead\r\n");
    smtp_client_tls_started(c);
    expect_output(c, "EHLO " HELO_NAME "\r\n");
    return c;
}

Test(smtp_client, auth_plain_inside_tls)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = start_auth(&msg);

    feed(c, EHLO_AUTH);
    /* base64 of "\0alice\0pw" */
    expect_output(c, "AUTH PLAIN AGFsaWNlAHB3\r\n");
    feed(c, "235 2.7.0 Authentication successful\r\n");
    expect_output(c, BATCH_ONE);
    smtp_client_free(c);
}

Test(smtp_client, auth_rejected_defers)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = start_auth(&msg);

    feed(c, EHLO_AUTH);
    expect_output(c, "AUTH PLAIN AGFsaWNlAHB3\r\n");
    feed(c, "535 5.7.8 Authentication credentials invalid\r\n");
    expect_done(c);
    expect_result(c, 0, 451, "451 4.7.0 AUTH to the next hop failed "
                  "(check the configured credentials): 535 5.7.8 "
                  "Authentication credentials invalid");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

Test(smtp_client, auth_not_offered_defers)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = start_auth(&msg);

    feed(c, EHLO_PIPELINING);
    expect_done(c);
    expect_result(c, 0, 451, "451 4.7.4 AUTH credentials are configured "
                  "for this next hop, but it does not offer AUTH");
    smtp_client_free(c);
}

Test(smtp_client, auth_never_sent_without_tls)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = start_tls(&msg, SMTP_CLIENT_TLS_TRY);

    cr_assert_eq(smtp_client_set_auth(c, "alice", "pw"), 0);
    feed(c, EHLO_AUTH);
    expect_done(c);
    expect_result(c, 0, 451, "451 4.7.10 AUTH credentials for this next "
                  "hop are sent only over TLS, and TLS did not come up");
    expect_output(c, "QUIT\r\n");
    smtp_client_free(c);
}

Test(smtp_client, tls_state_carries_to_next_session)
{
    struct smtp_client_message msg = message(1);
    struct smtp_client *c = start_auth(&msg);
    struct smtp_client *next;

    smtp_client_keep_open(c);
    feed(c, EHLO_AUTH);
    expect_output(c, "AUTH PLAIN AGFsaWNlAHB3\r\n");
    feed(c, "235 ok\r\n");
    expect_output(c, BATCH_ONE);
    feed(c, "250 ok\r\n250 ok\r\n354 go\r\n");
    smtp_outq_consume(smtp_client_output(c),
                      smtp_client_output(c)->len);
    feed(c, "250 queued\r\n");
    cr_assert(smtp_client_idle(c));

    /* The next message on the connection needs no STARTTLS or AUTH. */
    next = smtp_client_next(c, &msg);
    cr_assert_not_null(next);
    cr_expect(smtp_client_tls_active(next));
    expect_output(next, BATCH_ONE);
    smtp_client_free(next);
    smtp_client_free(c);
}
