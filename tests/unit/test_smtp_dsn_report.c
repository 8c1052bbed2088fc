/* Tests for the delivery status report builder and the status code taken
 * from a reply. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp_dsn_report.h"

#define ORIGINAL_HEADERS "Received: from client\r\nSubject: hi\r\n\r\n"
#define ORIGINAL ORIGINAL_HEADERS "line one\r\n..dot line\r\n"

/* A report with one failed recipient about ORIGINAL. */
static struct smtp_dsn_report_rcpt rcpt;
static struct smtp_dsn_report report;

static void report_setup(void)
{
    rcpt = (struct smtp_dsn_report_rcpt){
        .address = "x@bad.test",
        .orcpt = "rfc822;orig@bad.test",
        .action = SMTP_DSN_ACTION_FAILED,
        .status = "5.1.1",
        .diagnostic = "550 5.1.1 no such user",
        .remote_mta = "mx.bad.test",
        .last_attempt = 1700000000,
    };
    report = (struct smtp_dsn_report){
        .reporting_mta = "relay.test",
        .sender = "sender@client.test",
        .envid = "ENV1",
        .message_id = "0123456789ABCDEF@relay.test",
        .arrival = 1700000000,
        .now = 1700000060,
        .rcpts = &rcpt,
        .rcpt_count = 1,
        .ret = SMTP_DSN_RETURN_HEADERS,
        .full_max = 1 << 20,
        .original = ORIGINAL,
        .original_len = strlen(ORIGINAL),
    };
}

/* Builds the report into a NUL-terminated string. */
static char *build(void)
{
    char *out = NULL;
    size_t len = 0;
    char *text;

    cr_assert_eq(smtp_dsn_report_build(&report, &out, &len), 0);
    text = malloc(len + 1);
    cr_assert_not_null(text);
    memcpy(text, out, len);
    text[len] = '\0';
    free(out);
    return text;
}

TestSuite(smtp_dsn_report, .init = report_setup);

Test(smtp_dsn_report, headers_and_fields)
{
    char *text = build();

    cr_expect_not_null(strstr(text, "From: Mail Delivery System "
                                    "<MAILER-DAEMON@relay.test>\r\n"));
    cr_expect_not_null(strstr(text, "To: <sender@client.test>\r\n"));
    cr_expect_not_null(strstr(text, "Auto-Submitted: auto-replied\r\n"));
    cr_expect_not_null(strstr(text, "Message-ID: "
                                    "<0123456789ABCDEF@relay.test>\r\n"));
    cr_expect_not_null(strstr(text, "Date: Tue, 14 Nov 2023 22:14:20 "
                                    "+0000\r\n"));
    cr_expect_not_null(strstr(text, "multipart/report; "
                                    "report-type=delivery-status"));
    cr_expect_not_null(strstr(text, "Reporting-MTA: dns; relay.test\r\n"));
    cr_expect_not_null(strstr(text, "Original-Envelope-Id: ENV1\r\n"));
    cr_expect_not_null(strstr(text, "Original-Recipient: "
                                    "rfc822;orig@bad.test\r\n"));
    cr_expect_not_null(strstr(text, "Final-Recipient: rfc822; "
                                    "x@bad.test\r\n"));
    cr_expect_not_null(strstr(text, "Action: failed\r\n"));
    cr_expect_not_null(strstr(text, "Status: 5.1.1\r\n"));
    cr_expect_not_null(strstr(text, "Remote-MTA: dns; mx.bad.test\r\n"));
    cr_expect_not_null(strstr(text, "Diagnostic-Code: smtp; 550 5.1.1 no "
                                    "such user\r\n"));
    cr_expect_null(strstr(text, "Will-Retry-Until"));
    free(text);
}

Test(smtp_dsn_report, headers_only_by_default)
{
    char *text = build();

    cr_expect_not_null(strstr(text, "Content-Type: text/rfc822-headers\r\n"
                                    "\r\n" ORIGINAL_HEADERS));
    cr_expect_null(strstr(text, "line one"));
    free(text);
}

Test(smtp_dsn_report, full_keeps_stuffing)
{
    char *text;

    report.ret = SMTP_DSN_RETURN_FULL;
    text = build();
    cr_expect_not_null(strstr(text, "Content-Type: message/rfc822\r\n\r\n"
                                    ORIGINAL));
    free(text);
}

Test(smtp_dsn_report, full_over_cap_returns_headers)
{
    char *text;

    report.ret = SMTP_DSN_RETURN_FULL;
    report.full_max = 20;
    text = build();
    cr_expect_not_null(strstr(text, "text/rfc822-headers"));
    cr_expect_null(strstr(text, "message/rfc822"));
    free(text);
}

Test(smtp_dsn_report, binary_returns_stuffed_headers)
{
    static const char raw[] = "Subject: bin\n.Dot: x\r\n\r\n\x00\x01\xff";
    char *text;

    report.ret = SMTP_DSN_RETURN_FULL;
    report.binary = true;
    report.original = raw;
    report.original_len = sizeof(raw) - 1;
    text = build();
    cr_expect_not_null(strstr(text, "text/rfc822-headers\r\n\r\n"
                                    "Subject: bin\r\n..Dot: x\r\n\r\n"));
    free(text);
}

Test(smtp_dsn_report, reply_crlf_cannot_add_fields)
{
    char *text;

    rcpt.diagnostic = "550 5.1.1 bad\r\nAction: delivered\r\n.";
    text = build();
    cr_expect_null(strstr(text, "\r\nAction: delivered"));
    cr_expect_not_null(strstr(text, "Diagnostic-Code: smtp; 550 5.1.1 bad  "
                                    "Action: delivered  .\r\n"));
    free(text);
}

Test(smtp_dsn_report, delayed_has_retry_until)
{
    char *text;

    rcpt.action = SMTP_DSN_ACTION_DELAYED;
    rcpt.status = "4.2.0";
    rcpt.retry_until = 1700432000;
    text = build();
    cr_expect_not_null(strstr(text, "Action: delayed\r\n"));
    cr_expect_not_null(strstr(text, "Will-Retry-Until: Sun, 19 Nov 2023 "
                                    "22:13:20 +0000\r\n"));
    cr_expect_not_null(strstr(text, "Subject: Delayed Mail"));
    free(text);
}

Test(smtp_dsn_report, eight_bit_original_marked)
{
    static const char original[] = "Subject: caf\xc3\xa9\r\n\r\nbody\r\n";
    char *text;

    report.original = original;
    report.original_len = sizeof(original) - 1;
    text = build();
    cr_expect_not_null(strstr(text, "Content-Transfer-Encoding: 8bit\r\n"));
    free(text);
}

Test(smtp_dsn_report, boundary_avoids_original)
{
    static const char original[] =
        "X: --=_report_0123456789ABCDEFrelaytest_0\r\n\r\n";
    char *text;

    report.original = original;
    report.original_len = sizeof(original) - 1;
    text = build();
    cr_expect_not_null(strstr(text,
                              "boundary=\"=_report_0123456789ABCDEF"
                              "relaytest_1\""));
    free(text);
}

struct status_case {
    const char *reply;
    const char *status;
};

static const struct status_case status_cases[] = {
    {"550 5.1.1 no such user", "5.1.1"},
    {"451 4.4.1 Connect failed", "4.4.1"},
    {"552 5.3.4", "5.3.4"},
    {"550 no such user", "5.0.0"},
    {"450 try later", "4.0.0"},
    {"550 4.1.1 class mismatch", "5.0.0"},
    {"550 5.1234.1 too long", "5.0.0"},
    {"550 5.1.1x", "5.0.0"},
    {"", "4.0.0"},
};

Test(smtp_dsn_status, from_reply)
{
    for (size_t i = 0; i < sizeof(status_cases) / sizeof(status_cases[0]);
         i++) {
        char status[16];

        smtp_dsn_status_from_reply(status_cases[i].reply, status,
                                   sizeof(status));
        cr_expect_str_eq(status, status_cases[i].status, "reply '%s'",
                         status_cases[i].reply);
    }
}
