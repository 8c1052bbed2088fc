/* Tests for the ESMTP parameter table (proto/smtp_params.c): the DSN
 * parameters of RFC 3461, the generic checks every parameter gets, and
 * the 502 reply to known verbs that are not implemented. Each test feeds
 * one session and compares the reply to its last command. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "proto/smtp_outq.h"
#include "proto/smtp_server.h"

/* Bounds every drain loop in these tests. */
#define DRAIN_ROUNDS_MAX 1000

struct session {
    struct smtp_server_options opts;
    struct smtp_server *server;
    struct smtp_mail_params mail;  /* what the mail hook saw last */
    struct smtp_rcpt_params rcpt;  /* what the rcpt hook saw last */
    int mail_calls;
    int rcpt_calls;
    char out[16384];               /* every reply, CRLF kept */
    size_t out_len;
};

static int hook_mail(void *ctx, const struct smtp_path *from,
                     const struct smtp_mail_params *params, char *reply)
{
    struct session *t = ctx;

    (void)from;
    (void)reply;
    t->mail = *params;
    t->mail_calls++;
    return 0;
}

static int hook_rcpt(void *ctx, const struct smtp_path *to,
                     const struct smtp_rcpt_params *params, char *reply)
{
    struct session *t = ctx;

    (void)to;
    (void)reply;
    t->rcpt = *params;
    t->rcpt_calls++;
    return 0;
}

static const struct smtp_server_hooks param_hooks = {
    .mail = hook_mail,
    .rcpt = hook_rcpt,
};

static void drain(struct session *t)
{
    struct smtp_outq *out = smtp_server_output(t->server);

    for (int round = 0; out->len > 0 && round < DRAIN_ROUNDS_MAX; round++) {
        struct iovec iov[8];
        int count = smtp_outq_peek(out, iov, 8);
        size_t sent = 0;

        for (int i = 0; i < count; i++) {
            cr_assert_lt(t->out_len + iov[i].iov_len, sizeof(t->out));
            memcpy(t->out + t->out_len, iov[i].iov_base, iov[i].iov_len);
            t->out_len += iov[i].iov_len;
            sent += iov[i].iov_len;
        }
        t->out[t->out_len] = '\0';
        smtp_outq_consume(out, sent);
        smtp_server_resume(t->server);
    }
}

static void start(struct session *t, unsigned disabled)
{
    memset(t, 0, sizeof(*t));
    t->opts.hostname = "mx.test";
    t->opts.max_message_size = 1000;
    t->opts.max_line = 2048;
    t->opts.max_errors = 50;
    t->opts.disabled_extensions = disabled;
    t->server = smtp_server_new(&t->opts, &param_hooks, t);
    cr_assert_not_null(t->server);
    smtp_server_greet(t->server);
    drain(t);
}

static void stop(struct session *t)
{
    smtp_server_free(t->server);
}

/* say feeds text and returns the replies it produced. */
static const char *say(struct session *t, const char *text)
{
    size_t before = t->out_len;

    smtp_server_feed(t->server, text, strlen(text));
    drain(t);
    return t->out + before;
}

/* mail_reply greets and returns the reply to "MAIL FROM:<a@b.test>"
 * with params appended. */
static const char *mail_reply(struct session *t, const char *params)
{
    char line[1200];

    say(t, "EHLO c.test\r\n");
    snprintf(line, sizeof(line), "MAIL FROM:<a@b.test>%s\r\n", params);
    return say(t, line);
}

/* rcpt_reply opens a transaction and returns the reply to
 * "RCPT TO:<c@d.test>" with params appended. */
static const char *rcpt_reply(struct session *t, const char *params)
{
    char line[1200];

    say(t, "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\n");
    snprintf(line, sizeof(line), "RCPT TO:<c@d.test>%s\r\n", params);
    return say(t, line);
}

static bool starts_with(const char *text, const char *prefix)
{
    return strncmp(text, prefix, strlen(prefix)) == 0;
}

#define assert_reply(got, want)                                        \
    cr_assert(starts_with((got), (want)), "reply \"%s\", want \"%s\"", \
              (got), (want))

/* ---- EHLO -------------------------------------------------------- */

Test(smtp_params, ehlo_offers_dsn)
{
    struct session t;

    start(&t, 0);
    cr_assert_not_null(strstr(say(&t, "EHLO c.test\r\n"), "250-DSN\r\n"));
    stop(&t);
}

Test(smtp_params, ehlo_without_dsn_leaves_it_out)
{
    struct session t;

    start(&t, SMTP_EXT_DSN);
    cr_assert_null(strstr(say(&t, "EHLO c.test\r\n"), "DSN"));
    stop(&t);
}

/* ---- RET --------------------------------------------------------- */

Test(smtp_params, dsn_ret_full_accepted)
{
    struct session t;

    start(&t, 0);
    assert_reply(mail_reply(&t, " RET=FULL"), "250 2.1.0");
    cr_assert_eq(t.mail.ret, SMTP_DSN_RET_FULL);
    stop(&t);
}

Test(smtp_params, dsn_ret_hdrs_any_case_accepted)
{
    struct session t;

    start(&t, 0);
    assert_reply(mail_reply(&t, " ret=hDrS"), "250 2.1.0");
    cr_assert_eq(t.mail.ret, SMTP_DSN_RET_HDRS);
    stop(&t);
}

Test(smtp_params, dsn_ret_absent_is_unset)
{
    struct session t;

    start(&t, 0);
    assert_reply(mail_reply(&t, ""), "250 2.1.0");
    cr_assert_eq(t.mail.ret, SMTP_DSN_RET_UNSET);
    cr_assert_str_eq(t.mail.envid, "");
    stop(&t);
}

Test(smtp_params, dsn_ret_other_value_gets_501)
{
    struct session t;

    start(&t, 0);
    assert_reply(mail_reply(&t, " RET=BODY"), "501 5.5.4 Error: invalid "
                 "MAIL parameter RET=BODY: expected FULL or HDRS");
    cr_assert_eq(t.mail_calls, 0);
    stop(&t);
}

Test(smtp_params, dsn_ret_without_value_gets_555)
{
    struct session t;

    start(&t, 0);
    assert_reply(mail_reply(&t, " RET"),
                 "555 5.5.4 Error: MAIL parameter RET needs a value: RET");
    stop(&t);
}

Test(smtp_params, dsn_ret_repeated_gets_555)
{
    struct session t;

    start(&t, 0);
    assert_reply(mail_reply(&t, " RET=FULL RET=HDRS"),
                 "555 5.5.4 Error: repeated MAIL parameter: RET=HDRS");
    cr_assert_eq(t.mail_calls, 0);
    stop(&t);
}

Test(smtp_params, dsn_ret_on_rcpt_gets_555)
{
    struct session t;

    start(&t, 0);
    assert_reply(rcpt_reply(&t, " RET=FULL"),
                 "555 5.5.4 Error: unsupported RCPT parameter: RET=FULL");
    stop(&t);
}

/* ---- ENVID ------------------------------------------------------- */

Test(smtp_params, dsn_envid_xtext_decoded)
{
    struct session t;

    start(&t, 0);
    assert_reply(mail_reply(&t, " ENVID=QQ+2B314159+20x"), "250 2.1.0");
    cr_assert_str_eq(t.mail.envid, "QQ+314159 x");
    stop(&t);
}

Test(smtp_params, dsn_envid_100_chars_accepted)
{
    char params[128];
    struct session t;

    snprintf(params, sizeof(params), " ENVID=%0100d", 7);
    start(&t, 0);
    assert_reply(mail_reply(&t, params), "250 2.1.0");
    cr_assert_eq(strlen(t.mail.envid), 100);
    stop(&t);
}

Test(smtp_params, dsn_envid_101_chars_gets_501)
{
    char params[128];
    struct session t;

    snprintf(params, sizeof(params), " ENVID=%0101d", 7);
    start(&t, 0);
    assert_reply(mail_reply(&t, params), "501 5.5.4 Error: invalid MAIL "
                 "parameter ENVID=");
    cr_assert_not_null(strstr(t.out, "longer than 100 characters"));
    stop(&t);
}

Test(smtp_params, dsn_envid_lowercase_hex_gets_501)
{
    struct session t;

    start(&t, 0);
    assert_reply(mail_reply(&t, " ENVID=a+2bc"), "501 5.5.4 Error: invalid "
                 "MAIL parameter ENVID=a+2bc: '+' must be followed by two hex "
                 "digits in upper case");
    stop(&t);
}

Test(smtp_params, dsn_envid_cut_hexchar_gets_501)
{
    struct session t;

    start(&t, 0);
    assert_reply(mail_reply(&t, " ENVID=abc+2"), "501 5.5.4");
    stop(&t);
}

Test(smtp_params, dsn_envid_control_byte_gets_501)
{
    struct session t;

    start(&t, 0);
    assert_reply(mail_reply(&t, " ENVID=a+0Ab"), "501 5.5.4");
    assert_reply(say(&t, "MAIL FROM:<a@b.test> ENVID=a+00b\r\n"),
                 "501 5.5.4");
    assert_reply(say(&t, "MAIL FROM:<a@b.test> ENVID=a+C3b\r\n"),
                 "501 5.5.4");
    cr_assert_eq(t.mail_calls, 0);
    stop(&t);
}

Test(smtp_params, dsn_envid_empty_value_gets_555)
{
    struct session t;

    start(&t, 0);
    assert_reply(mail_reply(&t, " ENVID="), "555 5.5.4 Error: invalid MAIL "
                 "parameter syntax: ENVID=");
    stop(&t);
}

/* ---- NOTIFY ------------------------------------------------------ */

Test(smtp_params, dsn_notify_never_accepted)
{
    struct session t;

    start(&t, 0);
    assert_reply(rcpt_reply(&t, " NOTIFY=NEVER"), "250 2.1.5");
    cr_assert_eq(t.rcpt.notify, SMTP_DSN_NOTIFY_NEVER);
    stop(&t);
}

Test(smtp_params, dsn_notify_list_accepted)
{
    struct session t;

    start(&t, 0);
    assert_reply(rcpt_reply(&t, " notify=delay,Success,FAILURE"),
                 "250 2.1.5");
    cr_assert_eq(t.rcpt.notify, SMTP_DSN_NOTIFY_SUCCESS |
                 SMTP_DSN_NOTIFY_FAILURE | SMTP_DSN_NOTIFY_DELAY);
    stop(&t);
}

Test(smtp_params, dsn_notify_absent_is_zero)
{
    struct session t;

    start(&t, 0);
    assert_reply(rcpt_reply(&t, ""), "250 2.1.5");
    cr_assert_eq(t.rcpt.notify, 0);
    cr_assert_str_eq(t.rcpt.orcpt, "");
    stop(&t);
}

Test(smtp_params, dsn_notify_never_with_success_gets_501)
{
    struct session t;

    start(&t, 0);
    assert_reply(rcpt_reply(&t, " NOTIFY=NEVER,SUCCESS"),
                 "501 5.5.4 Error: invalid RCPT parameter "
                 "NOTIFY=NEVER,SUCCESS: NEVER must not be combined with "
                 "other keywords");
    cr_assert_eq(t.rcpt_calls, 0);
    stop(&t);
}

Test(smtp_params, dsn_notify_success_then_never_gets_501)
{
    struct session t;

    start(&t, 0);
    assert_reply(rcpt_reply(&t, " NOTIFY=SUCCESS,NEVER"), "501 5.5.4");
    stop(&t);
}

Test(smtp_params, dsn_notify_repeated_keyword_gets_501)
{
    struct session t;

    start(&t, 0);
    assert_reply(rcpt_reply(&t, " NOTIFY=DELAY,delay"),
                 "501 5.5.4 Error: invalid RCPT parameter "
                 "NOTIFY=DELAY,delay: a keyword is repeated");
    stop(&t);
}

Test(smtp_params, dsn_notify_unknown_keyword_gets_501)
{
    struct session t;

    start(&t, 0);
    assert_reply(rcpt_reply(&t, " NOTIFY=ALWAYS"), "501 5.5.4");
    stop(&t);
}

Test(smtp_params, dsn_notify_empty_item_gets_501)
{
    struct session t;

    start(&t, 0);
    assert_reply(rcpt_reply(&t, " NOTIFY=SUCCESS,"), "501 5.5.4");
    assert_reply(say(&t, "RCPT TO:<c@d.test> NOTIFY=,SUCCESS\r\n"),
                 "501 5.5.4");
    assert_reply(say(&t, "RCPT TO:<c@d.test> NOTIFY=SUCCESS,,DELAY\r\n"),
                 "501 5.5.4");
    cr_assert_eq(t.rcpt_calls, 0);
    stop(&t);
}

Test(smtp_params, dsn_notify_repeated_parameter_gets_555)
{
    struct session t;

    start(&t, 0);
    assert_reply(rcpt_reply(&t, " NOTIFY=NEVER NOTIFY=NEVER"),
                 "555 5.5.4 Error: repeated RCPT parameter: NOTIFY=NEVER");
    stop(&t);
}

Test(smtp_params, dsn_notify_on_mail_gets_555)
{
    struct session t;

    start(&t, 0);
    assert_reply(mail_reply(&t, " NOTIFY=NEVER"),
                 "555 5.5.4 Error: unsupported MAIL parameter: "
                 "NOTIFY=NEVER");
    stop(&t);
}

/* ---- ORCPT ------------------------------------------------------- */

Test(smtp_params, dsn_orcpt_address_decoded)
{
    struct session t;

    start(&t, 0);
    assert_reply(rcpt_reply(&t, " ORCPT=rfc822;a+2Bb@x.test"), "250 2.1.5");
    cr_assert_str_eq(t.rcpt.orcpt, "rfc822;a+b@x.test");
    stop(&t);
}

Test(smtp_params, dsn_orcpt_utf8_type_kept)
{
    struct session t;

    start(&t, 0);
    assert_reply(rcpt_reply(&t, " ORCPT=utf-8;jos\\x{E9}@x.test"),
                 "250 2.1.5");
    cr_assert_str_eq(t.rcpt.orcpt, "utf-8;jos\\x{E9}@x.test");
    stop(&t);
}

Test(smtp_params, dsn_orcpt_with_notify_accepted)
{
    struct session t;

    start(&t, 0);
    assert_reply(rcpt_reply(&t, " NOTIFY=FAILURE ORCPT=rfc822;c@d.test"),
                 "250 2.1.5");
    cr_assert_eq(t.rcpt.notify, SMTP_DSN_NOTIFY_FAILURE);
    cr_assert_str_eq(t.rcpt.orcpt, "rfc822;c@d.test");
    stop(&t);
}

Test(smtp_params, dsn_orcpt_without_type_gets_501)
{
    struct session t;

    start(&t, 0);
    assert_reply(rcpt_reply(&t, " ORCPT=c@d.test"),
                 "501 5.5.4 Error: invalid RCPT parameter ORCPT=c@d.test: "
                 "expected addr-type;address");
    stop(&t);
}

Test(smtp_params, dsn_orcpt_empty_type_gets_501)
{
    struct session t;

    start(&t, 0);
    assert_reply(rcpt_reply(&t, " ORCPT=;c@d.test"), "501 5.5.4");
    stop(&t);
}

Test(smtp_params, dsn_orcpt_type_not_atom_gets_501)
{
    struct session t;

    start(&t, 0);
    assert_reply(rcpt_reply(&t, " ORCPT=rfc.822;c@d.test"), "501 5.5.4");
    stop(&t);
}

Test(smtp_params, dsn_orcpt_empty_address_gets_501)
{
    struct session t;

    start(&t, 0);
    assert_reply(rcpt_reply(&t, " ORCPT=rfc822;"),
                 "501 5.5.4 Error: invalid RCPT parameter ORCPT=rfc822;: "
                 "the address is empty");
    stop(&t);
}

Test(smtp_params, dsn_orcpt_bad_xtext_gets_501)
{
    struct session t;

    start(&t, 0);
    assert_reply(rcpt_reply(&t, " ORCPT=rfc822;c+zz@d.test"),
                 "501 5.5.4 Error: invalid RCPT parameter "
                 "ORCPT=rfc822;c+zz@d.test: '+' must be followed by two hex "
                 "digits in upper case");
    stop(&t);
}

/* Valid xtext whose "+XX" decodes to a byte a DSN header cannot carry
 * gets a reason that names the byte's class, not "invalid xtext". */
static const struct {
    const char *value;
    const char *reason;
} xtext_byte_cases[] = {
    {"a+0Ab", "xtext decodes to a control character"},
    {"a+00b", "xtext decodes to a control character"},
    {"a+1Fb", "xtext decodes to a control character"},
    {"a+7Fb", "xtext decodes to a control character"},
    {"a+80b", "xtext decodes to a non-ASCII byte"},
    {"a+C3b", "xtext decodes to a non-ASCII byte"},
    {"a+FFb", "xtext decodes to a non-ASCII byte"},
};

#define XTEXT_BYTE_CASE_COUNT \
    (sizeof(xtext_byte_cases) / sizeof(xtext_byte_cases[0]))

Test(smtp_params, dsn_envid_decoded_byte_reason)
{
    for (size_t i = 0; i < XTEXT_BYTE_CASE_COUNT; i++) {
        struct session t;
        char params[200];
        char want[300];

        snprintf(params, sizeof(params), " ENVID=%s",
                 xtext_byte_cases[i].value);
        snprintf(want, sizeof(want), "501 5.5.4 Error: invalid MAIL "
                 "parameter ENVID=%s: %s\r\n", xtext_byte_cases[i].value,
                 xtext_byte_cases[i].reason);
        start(&t, 0);
        cr_assert_str_eq(mail_reply(&t, params), want);
        cr_assert_eq(t.mail_calls, 0, "ENVID=%s reached the hook",
                     xtext_byte_cases[i].value);
        stop(&t);
    }
}

Test(smtp_params, dsn_orcpt_decoded_byte_reason)
{
    for (size_t i = 0; i < XTEXT_BYTE_CASE_COUNT; i++) {
        struct session t;
        char params[200];
        char want[300];

        snprintf(params, sizeof(params), " ORCPT=rfc822;%s@x.test",
                 xtext_byte_cases[i].value);
        snprintf(want, sizeof(want), "501 5.5.4 Error: invalid RCPT "
                 "parameter ORCPT=rfc822;%s@x.test: %s\r\n",
                 xtext_byte_cases[i].value, xtext_byte_cases[i].reason);
        start(&t, 0);
        cr_assert_str_eq(rcpt_reply(&t, params), want);
        cr_assert_eq(t.rcpt_calls, 0, "ORCPT with %s reached the hook",
                     xtext_byte_cases[i].value);
        stop(&t);
    }
}

#define UTF8_ESCAPE_SYNTAX \
    "expected \\x{HEX} with 1 to 6 hex digits after a backslash"
#define UTF8_ESCAPE_SURROGATE \
    "\\x{...} names a surrogate (D800 to DFFF), not a Unicode scalar value"
#define UTF8_ESCAPE_TOO_HIGH \
    "\\x{...} is above 10FFFF, the maximum Unicode code point"

/* Local parts of utf-8 ORCPT addresses with an invalid RFC 6533 escape,
 * and the reason each one gets. */
static const struct {
    const char *local;
    const char *reason;
} utf8_escape_cases[] = {
    {"a\\x{D800}", UTF8_ESCAPE_SURROGATE},
    {"a\\x{DFFF}", UTF8_ESCAPE_SURROGATE},
    {"a\\x{dabc}", UTF8_ESCAPE_SURROGATE},
    {"a\\x{110000}", UTF8_ESCAPE_TOO_HIGH},
    {"a\\x{FFFFFF}", UTF8_ESCAPE_TOO_HIGH},
    {"a\\x{}", UTF8_ESCAPE_SYNTAX},
    {"a\\x", UTF8_ESCAPE_SYNTAX},
    {"a\\", UTF8_ESCAPE_SYNTAX},
    {"a\\y{41}", UTF8_ESCAPE_SYNTAX},
    {"a\\x41", UTF8_ESCAPE_SYNTAX},
    {"a\\x{E9", UTF8_ESCAPE_SYNTAX},
    {"a\\x{0000E9}\\x{G}", UTF8_ESCAPE_SYNTAX},
    {"a\\x{10000E9}", UTF8_ESCAPE_SYNTAX},
};

#define UTF8_ESCAPE_CASE_COUNT \
    (sizeof(utf8_escape_cases) / sizeof(utf8_escape_cases[0]))

Test(smtp_params, dsn_orcpt_utf8_bad_escape_gets_501)
{
    for (size_t i = 0; i < UTF8_ESCAPE_CASE_COUNT; i++) {
        struct session t;
        char params[200];
        char want[300];

        snprintf(params, sizeof(params), " ORCPT=utf-8;%s@x.test",
                 utf8_escape_cases[i].local);
        snprintf(want, sizeof(want), "501 5.5.4 Error: invalid RCPT "
                 "parameter ORCPT=utf-8;%s@x.test: %s\r\n",
                 utf8_escape_cases[i].local, utf8_escape_cases[i].reason);
        start(&t, 0);
        cr_assert_str_eq(rcpt_reply(&t, params), want);
        cr_assert_eq(t.rcpt_calls, 0, "ORCPT with %s reached the hook",
                     utf8_escape_cases[i].local);
        stop(&t);
    }
}

Test(smtp_params, dsn_orcpt_utf8_good_escape_accepted)
{
    static const char *const locals[] = {
        "\\x{0}", "\\x{e9}", "\\x{D7FF}", "\\x{E000}", "\\x{1F600}",
        "\\x{10FFFF}", "\\x{00E9}j\\x{E9}",
    };

    for (size_t i = 0; i < sizeof(locals) / sizeof(locals[0]); i++) {
        struct session t;
        char params[200];
        char want[200];

        snprintf(params, sizeof(params), " ORCPT=UTF-8;%s@x.test", locals[i]);
        snprintf(want, sizeof(want), "UTF-8;%s@x.test", locals[i]);
        start(&t, 0);
        assert_reply(rcpt_reply(&t, params), "250 2.1.5");
        cr_assert_str_eq(t.rcpt.orcpt, want);
        stop(&t);
    }
}

Test(smtp_params, dsn_orcpt_rfc822_backslash_kept)
{
    struct session t;

    start(&t, 0);
    assert_reply(rcpt_reply(&t, " ORCPT=rfc822;a\\x{D800}@x.test"),
                 "250 2.1.5");
    cr_assert_str_eq(t.rcpt.orcpt, "rfc822;a\\x{D800}@x.test");
    stop(&t);
}

/* orcpt_of_length writes " ORCPT=rfc822;" and an address padded to make
 * the value len characters long. */
static void orcpt_of_length(char *out, size_t out_size, size_t len)
{
    size_t prefix = strlen("rfc822;");
    size_t local = len - prefix - strlen("@d.test");

    snprintf(out, out_size, " ORCPT=rfc822;%0*d@d.test", (int)local, 1);
}

Test(smtp_params, dsn_orcpt_500_chars_accepted)
{
    char params[600];
    struct session t;

    orcpt_of_length(params, sizeof(params), 500);
    start(&t, 0);
    assert_reply(rcpt_reply(&t, params), "250 2.1.5");
    cr_assert_eq(strlen(t.rcpt.orcpt), 500);
    stop(&t);
}

Test(smtp_params, dsn_orcpt_501_chars_gets_501)
{
    char params[600];
    struct session t;

    orcpt_of_length(params, sizeof(params), 501);
    start(&t, 0);
    assert_reply(rcpt_reply(&t, params), "501 5.5.4");
    cr_assert_not_null(strstr(t.out, "longer than 500 characters"));
    stop(&t);
}

Test(smtp_params, dsn_orcpt_repeated_gets_555)
{
    struct session t;

    start(&t, 0);
    assert_reply(rcpt_reply(&t, " ORCPT=rfc822;c@d.test "
                            "ORCPT=rfc822;e@d.test"),
                 "555 5.5.4 Error: repeated RCPT parameter");
    stop(&t);
}

/* ---- DSN switched off -------------------------------------------- */

Test(smtp_params, dsn_params_not_offered_get_555)
{
    struct session t;

    start(&t, SMTP_EXT_DSN);
    assert_reply(mail_reply(&t, " RET=FULL"),
                 "555 5.5.4 Error: MAIL parameter not offered: RET=FULL");
    assert_reply(say(&t, "MAIL FROM:<a@b.test> ENVID=x\r\n"), "555 5.5.4");
    assert_reply(say(&t, "MAIL FROM:<a@b.test>\r\n"), "250 2.1.0");
    assert_reply(say(&t, "RCPT TO:<c@d.test> NOTIFY=NEVER\r\n"),
                 "555 5.5.4 Error: RCPT parameter not offered: "
                 "NOTIFY=NEVER");
    assert_reply(say(&t, "RCPT TO:<c@d.test> ORCPT=rfc822;c@d.test\r\n"),
                 "555 5.5.4");
    cr_assert_eq(t.rcpt_calls, 0);
    stop(&t);
}

/* ---- Every parameter --------------------------------------------- */

Test(smtp_params, param_unknown_gets_555_naming_it)
{
    struct session t;

    start(&t, 0);
    assert_reply(mail_reply(&t, " SIZE=10 X-FOO=bar"),
                 "555 5.5.4 Error: unsupported MAIL parameter: X-FOO=bar");
    assert_reply(say(&t, "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test> "
                     "X-FOO\r\n"), "250 2.1.0 Ok\r\n555 5.5.4 Error: "
                 "unsupported RCPT parameter: X-FOO");
    stop(&t);
}

Test(smtp_params, param_of_other_verb_gets_555)
{
    struct session t;

    start(&t, 0);
    assert_reply(rcpt_reply(&t, " SIZE=10"),
                 "555 5.5.4 Error: unsupported RCPT parameter: SIZE=10");
    assert_reply(say(&t, "RCPT TO:<c@d.test> SMTPUTF8\r\n"), "555 5.5.4");
    stop(&t);
}

Test(smtp_params, param_leading_hyphen_gets_555)
{
    struct session t;

    start(&t, 0);
    assert_reply(mail_reply(&t, " -SIZE=10"),
                 "555 5.5.4 Error: invalid MAIL parameter syntax: -SIZE=10");
    stop(&t);
}

Test(smtp_params, param_bad_character_gets_555)
{
    struct session t;

    start(&t, 0);
    assert_reply(mail_reply(&t, " SIZE=1=2"),
                 "555 5.5.4 Error: invalid MAIL parameter syntax: SIZE=1=2");
    assert_reply(say(&t, "MAIL FROM:<a@b.test> SI_ZE=1\r\n"), "555 5.5.4");
    stop(&t);
}

Test(smtp_params, param_value_not_expected_gets_555)
{
    struct session t;

    start(&t, 0);
    assert_reply(mail_reply(&t, " SMTPUTF8=yes"), "555 5.5.4 Error: MAIL "
                 "parameter SMTPUTF8 takes no value: SMTPUTF8=yes");
    stop(&t);
}

Test(smtp_params, param_bad_size_keeps_555)
{
    struct session t;

    start(&t, 0);
    assert_reply(mail_reply(&t, " SIZE=12k"), "555 5.5.4 Error: invalid "
                 "MAIL parameter SIZE=12k: expected a number of octets");
    stop(&t);
}

Test(smtp_params, param_long_text_quoted_shortly)
{
    char params[400];
    struct session t;

    memset(params, 'A', sizeof(params));
    params[0] = ' ';
    params[sizeof(params) - 1] = '\0';
    start(&t, 0);
    assert_reply(mail_reply(&t, params), "555 5.5.4 Error: unsupported MAIL "
                 "parameter: AAAA");
    cr_assert_lt(strlen(t.out), 2048, "the reply quotes the whole line");
    stop(&t);
}

Test(smtp_params, param_quote_stops_at_8bit_byte)
{
    struct session t;

    start(&t, 0);
    assert_reply(mail_reply(&t, " SIZE=1\xc3\xa9x"), "555 5.5.4 Error: "
                 "invalid MAIL parameter syntax: SIZE=1\r\n");
    stop(&t);
}

Test(smtp_params, params_with_tabs_and_blanks_accepted)
{
    struct session t;

    start(&t, 0);
    assert_reply(mail_reply(&t, " RET=HDRS \t ENVID=e1  SIZE=5"),
                 "250 2.1.0");
    cr_assert_eq(t.mail.ret, SMTP_DSN_RET_HDRS);
    cr_assert_str_eq(t.mail.envid, "e1");
    cr_assert_eq(t.mail.size, 5);
    stop(&t);
}

/* ---- Verbs that are not implemented ------------------------------ */

Test(smtp_params, unimplemented_verbs_get_502)
{
    static const char *const verbs[] = {
        "EXPN staff", "TURN", "ETRN example.com", "ATRN example.com",
        "STARTTLS", "AUTH PLAIN", "SEND FROM:<a@b.test>",
        "SOML FROM:<a@b.test>", "SAML FROM:<a@b.test>", "starttls",
    };
    struct session t;

    start(&t, 0);
    say(&t, "EHLO c.test\r\n");
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        char line[64];

        snprintf(line, sizeof(line), "%s\r\n", verbs[i]);
        cr_expect(starts_with(say(&t, line), "502 5.5.1 Error: command not "
                              "implemented\r\n"), "%s got \"%s\"", verbs[i],
                  t.out);
    }
    stop(&t);
}

Test(smtp_params, unimplemented_verb_before_helo_gets_502)
{
    struct session t;

    start(&t, 0);
    assert_reply(say(&t, "EXPN staff\r\n"), "502 5.5.1");
    stop(&t);
}

Test(smtp_params, unimplemented_verbs_count_as_errors)
{
    struct session t;

    start(&t, 0);
    t.opts.max_errors = 2;
    assert_reply(say(&t, "TURN\r\n"), "502 5.5.1");
    assert_reply(say(&t, "TURN\r\n"), "502 5.5.1 Error: command not "
                 "implemented\r\n421 4.7.0");
    stop(&t);
}

Test(smtp_params, unknown_verb_still_gets_500)
{
    struct session t;

    start(&t, 0);
    assert_reply(say(&t, "EXPNX staff\r\n"), "500 5.5.2");
    stop(&t);
}

Test(smtp_params, help_leaves_out_unimplemented_verbs)
{
    struct session t;

    start(&t, 0);
    assert_reply(say(&t, "HELP\r\n"), "214 2.0.0 Commands: EHLO HELO MAIL "
                 "RCPT DATA BDAT RSET NOOP QUIT VRFY HELP\r\n");
    stop(&t);
}
