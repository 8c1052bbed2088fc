/* Tests for the SMTP reply parser, EHLO keyword lookup and the Received:
 * trace header. */
#include <criterion/criterion.h>
#include <string.h>

#include "proto/smtp_reply.h"
#include "proto/smtp_trace.h"

#define LINE_MAX_TEST 512

struct parse_case {
    const char *input;
    enum smtp_reply_result result;
    int code;
    const char *text;   /* last line's text, on COMPLETE */
    size_t len;         /* bytes consumed, on COMPLETE */
};

static const struct parse_case parse_cases[] = {
    {"250 OK\r\n", SMTP_REPLY_COMPLETE, 250, "OK", 8},
    {"250\r\n", SMTP_REPLY_COMPLETE, 250, "", 5},
    {"250 \r\n", SMTP_REPLY_COMPLETE, 250, "", 6},
    {"220 mx.example.com ESMTP\r\n", SMTP_REPLY_COMPLETE, 220,
     "mx.example.com ESMTP", 26},
    {"250-mx\r\n250-SIZE 100\r\n250 PIPELINING\r\n", SMTP_REPLY_COMPLETE,
     250, "PIPELINING", 38},
    {"250-\r\n250 done\r\n", SMTP_REPLY_COMPLETE, 250, "done", 16},
    {"550 5.1.1 no\r\n250 OK\r\n", SMTP_REPLY_COMPLETE, 550, "5.1.1 no",
     14},
    {"554 x\r\n", SMTP_REPLY_COMPLETE, 554, "x", 7},
    {"", SMTP_REPLY_INCOMPLETE, 0, NULL, 0},
    {"2", SMTP_REPLY_INCOMPLETE, 0, NULL, 0},
    {"250", SMTP_REPLY_INCOMPLETE, 0, NULL, 0},
    {"250 OK", SMTP_REPLY_INCOMPLETE, 0, NULL, 0},
    {"250 OK\r", SMTP_REPLY_INCOMPLETE, 0, NULL, 0},
    {"250-a\r\n", SMTP_REPLY_INCOMPLETE, 0, NULL, 0},
    {"250-a\r\n25", SMTP_REPLY_INCOMPLETE, 0, NULL, 0},
    {"250-a\r\n250 b", SMTP_REPLY_INCOMPLETE, 0, NULL, 0},
    {"x", SMTP_REPLY_INVALID, 0, NULL, 0},
    {"2x", SMTP_REPLY_INVALID, 0, NULL, 0},
    {"199 low\r\n", SMTP_REPLY_INVALID, 0, NULL, 0},
    {"600 high\r\n", SMTP_REPLY_INVALID, 0, NULL, 0},
    {"260 second digit\r\n", SMTP_REPLY_INVALID, 0, NULL, 0},
    {"599 x\r\n", SMTP_REPLY_INVALID, 0, NULL, 0},
    {"25a\r\n", SMTP_REPLY_INVALID, 0, NULL, 0},
    {"250x\r\n", SMTP_REPLY_INVALID, 0, NULL, 0},
    {"2500 OK\r\n", SMTP_REPLY_INVALID, 0, NULL, 0},
    {"250 OK\n", SMTP_REPLY_INVALID, 0, NULL, 0},
    {"250 O\rK\r\n", SMTP_REPLY_INVALID, 0, NULL, 0},
    {"250-a\r\n251 b\r\n", SMTP_REPLY_INVALID, 0, NULL, 0},
    {"250-a\r\n25", SMTP_REPLY_INCOMPLETE, 0, NULL, 0},
    {"250-a\r\n2", SMTP_REPLY_INCOMPLETE, 0, NULL, 0},
    {"250-a\r\n240", SMTP_REPLY_INVALID, 0, NULL, 0},
    {"259 ok\r\n", SMTP_REPLY_COMPLETE, 259, "ok", 8},
    {"250-a\r\n550 b\r\n", SMTP_REPLY_INVALID, 0, NULL, 0},
    {" 250 OK\r\n", SMTP_REPLY_INVALID, 0, NULL, 0},
};

Test(smtp_reply, parse_table)
{
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]);
         i++) {
        const struct parse_case *t = &parse_cases[i];
        struct smtp_reply reply = {0};
        enum smtp_reply_result result;

        result = smtp_reply_parse(t->input, strlen(t->input), LINE_MAX_TEST,
                                  &reply);
        cr_expect_eq(result, t->result, "case %zu \"%s\": result %d",
                     i, t->input, (int)result);
        if (result != SMTP_REPLY_COMPLETE ||
            t->result != SMTP_REPLY_COMPLETE) {
            continue;
        }
        cr_expect_eq(reply.code, t->code, "case %zu: code %d", i,
                     reply.code);
        cr_expect_eq(reply.len, t->len, "case %zu: len %zu", i, reply.len);
        cr_expect_eq(reply.text_len, strlen(t->text), "case %zu", i);
        cr_expect(memcmp(reply.text, t->text, reply.text_len) == 0,
                  "case %zu: text \"%.*s\"", i, (int)reply.text_len,
                  reply.text);
        cr_expect_eq(reply.first, t->input, "case %zu", i);
    }
}

/* Every proper prefix of a valid reply is INCOMPLETE, and the reply is
 * COMPLETE once its last byte arrives. */
Test(smtp_reply, split_at_each_byte)
{
    static const char *const replies[] = {
        "250 OK\r\n",
        "250\r\n",
        "250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 1000\r\n"
        "250 8BITMIME\r\n",
    };

    for (size_t r = 0; r < sizeof(replies) / sizeof(replies[0]); r++) {
        const char *input = replies[r];
        size_t len = strlen(input);
        struct smtp_reply reply;

        for (size_t cut = 0; cut < len; cut++) {
            cr_expect_eq(smtp_reply_parse(input, cut, LINE_MAX_TEST, &reply),
                         SMTP_REPLY_INCOMPLETE, "reply %zu cut at %zu", r,
                         cut);
        }
        cr_assert_eq(smtp_reply_parse(input, len, LINE_MAX_TEST, &reply),
                     SMTP_REPLY_COMPLETE, "reply %zu", r);
        cr_expect_eq(reply.len, len);
    }
}

Test(smtp_reply, trailing_bytes_not_consumed)
{
    const char *input = "354 go ahead\r\n250 OK\r\n";
    struct smtp_reply reply;

    cr_assert_eq(smtp_reply_parse(input, strlen(input), LINE_MAX_TEST,
                                  &reply),
                 SMTP_REPLY_COMPLETE);
    cr_expect_eq(reply.code, 354);
    cr_expect_eq(reply.len, 14);
}

/* max_line counts the CRLF: a line of exactly max_line bytes passes. */
Test(smtp_reply, line_length_limit)
{
    char line[64];
    struct smtp_reply reply;

    memset(line, 'a', sizeof(line));
    memcpy(line, "250 ", 4);
    memcpy(line + 18, "\r\n", 2);

    cr_expect_eq(smtp_reply_parse(line, 20, 20, &reply),
                 SMTP_REPLY_COMPLETE);
    cr_expect_eq(smtp_reply_parse(line, 20, 19, &reply), SMTP_REPLY_INVALID);
}

Test(smtp_reply, long_line_without_crlf)
{
    char line[64];
    struct smtp_reply reply;

    memset(line, 'a', sizeof(line));
    memcpy(line, "250 ", 4);

    cr_expect_eq(smtp_reply_parse(line, 19, 20, &reply),
                 SMTP_REPLY_INCOMPLETE);
    cr_expect_eq(smtp_reply_parse(line, 20, 20, &reply), SMTP_REPLY_INVALID);
    cr_expect_eq(smtp_reply_parse(line, sizeof(line), 20, &reply),
                 SMTP_REPLY_INVALID);
}

Test(smtp_reply, long_continuation_line)
{
    const char *input = "250-ok\r\n250 aaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    struct smtp_reply reply;

    cr_expect_eq(smtp_reply_parse(input, strlen(input), 20, &reply),
                 SMTP_REPLY_INVALID);
    cr_expect_eq(smtp_reply_parse(input, strlen(input), 64, &reply),
                 SMTP_REPLY_COMPLETE);
}

static struct smtp_reply parse_ok(const char *input)
{
    struct smtp_reply reply = {0};

    cr_assert_eq(smtp_reply_parse(input, strlen(input), LINE_MAX_TEST,
                                  &reply),
                 SMTP_REPLY_COMPLETE, "\"%s\"", input);
    return reply;
}

Test(smtp_reply, keyword_found)
{
    struct smtp_reply reply = parse_ok("250-mx.example.com Hello\r\n"
                                       "250-pipelining\r\n"
                                       "250-SIZE 10240000\r\n"
                                       "250-8BITMIME\r\n"
                                       "250 SMTPUTF8\r\n");

    cr_expect(smtp_reply_has_keyword(&reply, "PIPELINING"));
    cr_expect(smtp_reply_has_keyword(&reply, "SIZE"));
    cr_expect(smtp_reply_has_keyword(&reply, "8bitmime"));
    cr_expect(smtp_reply_has_keyword(&reply, "SMTPUTF8"));
}

Test(smtp_reply, keyword_not_found)
{
    struct smtp_reply reply = parse_ok("250-PIPELINING.example Hello\r\n"
                                       "250-SIZEX\r\n"
                                       "250-AUTH=LOGIN\r\n"
                                       "250 CHUNKING\r\n");

    /* The first line is the server's domain, not a keyword. */
    cr_expect_not(smtp_reply_has_keyword(&reply, "PIPELINING.example"));
    cr_expect_not(smtp_reply_has_keyword(&reply, "PIPELINING"));
    cr_expect_not(smtp_reply_has_keyword(&reply, "SIZE"));
    cr_expect_not(smtp_reply_has_keyword(&reply, "AUTH"));
    cr_expect_not(smtp_reply_has_keyword(&reply, "CHUNK"));
    cr_expect_not(smtp_reply_has_keyword(&reply, ""));
    cr_expect(smtp_reply_has_keyword(&reply, "CHUNKING"));
}

Test(smtp_reply, keyword_single_line_reply)
{
    struct smtp_reply reply = parse_ok("250 PIPELINING\r\n");

    cr_expect_not(smtp_reply_has_keyword(&reply, "PIPELINING"));
}

Test(smtp_reply, keyword_bare_code_line)
{
    struct smtp_reply reply = parse_ok("250-mx\r\n250-\r\n250 SIZE\r\n");

    cr_expect(smtp_reply_has_keyword(&reply, "SIZE"));
}

/* 2025-03-04 09:05:00 UTC, a Tuesday. */
#define TRACE_TIME ((time_t)1741079100)

static struct smtp_trace trace_example(void)
{
    return (struct smtp_trace){
        .helo = "client.example.org",
        .client_ip = "192.0.2.7",
        .hostname = "relay.example.net",
        .esmtp = true,
        .queue_id = "0123456789ABCDEF",
        .rcpt = "bob@example.com",
        .when = TRACE_TIME,
    };
}

static void expect_lines_short(const char *header)
{
    const char *line = header;
    const char *crlf;

    while ((crlf = strstr(line, "\r\n")) != NULL) {
        cr_expect_leq((size_t)(crlf - line), 78, "line \"%.*s\"",
                      (int)(crlf - line), line);
        line = crlf + 2;
    }
    cr_expect_eq(*line, '\0', "header ends in CRLF");
}

Test(smtp_trace, format_with_rcpt)
{
    struct smtp_trace trace = trace_example();
    char buf[1024];
    size_t len = smtp_trace_received(&trace, buf, sizeof(buf));

    cr_assert_gt(len, 0);
    cr_expect_str_eq(buf,
                     "Received: from client.example.org ([192.0.2.7])\r\n"
                     "\tby relay.example.net (ringrelay) with ESMTP id "
                     "0123456789ABCDEF\r\n"
                     "\tfor <bob@example.com>; Tue, 4 Mar 2025 09:05:00 "
                     "+0000\r\n");
    cr_expect_eq(len, strlen(buf));
    expect_lines_short(buf);
}

Test(smtp_trace, format_without_rcpt)
{
    struct smtp_trace trace = trace_example();
    char buf[1024];

    trace.rcpt = NULL;
    trace.esmtp = false;
    cr_assert_gt(smtp_trace_received(&trace, buf, sizeof(buf)), 0);
    cr_expect_str_eq(buf,
                     "Received: from client.example.org ([192.0.2.7])\r\n"
                     "\tby relay.example.net (ringrelay) with SMTP id "
                     "0123456789ABCDEF;\r\n"
                     "\tTue, 4 Mar 2025 09:05:00 +0000\r\n");
    expect_lines_short(buf);
}

Test(smtp_trace, ipv6_and_empty_helo)
{
    struct smtp_trace trace = trace_example();
    char buf[1024];

    trace.helo = "";
    trace.client_ip = "::1";
    cr_assert_gt(smtp_trace_received(&trace, buf, sizeof(buf)), 0);
    cr_expect(strncmp(buf, "Received: from unknown ([IPv6:::1])\r\n",
                      37) == 0, "%s", buf);
}

Test(smtp_trace, hostile_helo_sanitised)
{
    struct smtp_trace trace = trace_example();
    const char *expected = "Received: from evil??X-Injected:?yes??by?x???"
                           "Mon??1?Jan?2024 ([192.0.2.7])\r\n";
    char buf[1024];
    char *crlf;

    trace.helo = "evil\r\nX-Injected: yes (by x); Mon, 1 Jan 2024";
    cr_assert_gt(smtp_trace_received(&trace, buf, sizeof(buf)), 0);

    cr_expect_null(strstr(buf, "\r\nX-Injected"));
    crlf = strstr(buf, "\r\n");
    cr_assert_not_null(crlf);
    for (const char *p = buf + 15; p < crlf; p++) {
        cr_expect((*p >= 0x21 && *p < 0x7f) || *p == ' ', "byte %d", *p);
    }
    cr_expect(strncmp(buf, expected, strlen(expected)) == 0, "%s", buf);

    /* Only the tokens this code writes may contain ';' or '('. */
    cr_expect_eq(strchr(buf, ';'), strrchr(buf, ';'));
    expect_lines_short(buf);
}

/* A HELO name with U-labels goes into the header as A-labels, so the
 * header stays 7-bit for a message relayed with plain DATA. */
Test(smtp_trace, utf8_helo_as_alabels)
{
    static const char *const names[] = {
        "b\xc3\xbc" "cher.example",     /* bücher.example */
        "B\xc3\x9c" "CHER.example",     /* BÜCHER.example, mapped to
                                         * lower case by UTS #46 */
    };
    const char *expected = "Received: from xn--bcher-kva.example "
                           "([192.0.2.7])\r\n";

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct smtp_trace trace = trace_example();
        char buf[1024];

        trace.helo = names[i];
        cr_assert_gt(smtp_trace_received(&trace, buf, sizeof(buf)), 0);
        cr_expect(strncmp(buf, expected, strlen(expected)) == 0,
                  "HELO %s: %s", names[i], buf);
        for (const char *p = buf; *p != '\0'; p++) {
            cr_expect((unsigned char)*p < 0x80, "HELO %s: byte 0x%02x",
                      names[i], (unsigned char)*p);
        }
        expect_lines_short(buf);
    }
}

Test(smtp_trace, utf8_helo_smtputf8_as_alabels)
{
    struct smtp_trace trace = trace_example();
    char buf[1024];

    trace.helo = "b\xc3\xbc" "cher.example";
    trace.smtputf8 = true;
    cr_assert_gt(smtp_trace_received(&trace, buf, sizeof(buf)), 0);
    cr_expect_str_eq(buf,
                     "Received: from xn--bcher-kva.example ([192.0.2.7])\r\n"
                     "\tby relay.example.net (ringrelay) with UTF8SMTP id "
                     "0123456789ABCDEF\r\n"
                     "\tfor <bob@example.com>; Tue, 4 Mar 2025 09:05:00 "
                     "+0000\r\n");
}

/* A name without a valid A-label form, or whose A-label form is longer
 * than the 64 characters kept of a HELO name, is left out. The client IP
 * stays. */
Test(smtp_trace, utf8_helo_without_alabels_left_out)
{
    static const char *const names[] = {
        "a\xe2\x98\x83.example",        /* U+2603, disallowed in IDNA2008 */
        "\xff.example",                 /* not UTF-8 */
        "ab--c\xc3\xbc.example",        /* "--" in the third and fourth
                                         * positions */
        "b\xc3\xbc" "cher.b\xc3\xbc" "cher.b\xc3\xbc" "cher.b\xc3\xbc"
        "cher.b\xc3\xbc" "cher.example", /* 77 characters as A-labels */
        "x\xc2\xa0y.example",           /* U+00A0, which TR46 maps to a
                                         * space */
        "x\xe3\x80\x80y.example",       /* U+3000 IDEOGRAPHIC SPACE */
    };
    const char *expected = "Received: from unknown ([192.0.2.7])\r\n";

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct smtp_trace trace = trace_example();
        char buf[1024];

        trace.helo = names[i];
        cr_assert_gt(smtp_trace_received(&trace, buf, sizeof(buf)), 0);
        cr_expect(strncmp(buf, expected, strlen(expected)) == 0,
                  "case %zu: %s", i, buf);
        for (const char *p = buf; *p != '\0'; p++) {
            cr_expect((unsigned char)*p < 0x80, "case %zu: byte 0x%02x", i,
                      (unsigned char)*p);
        }
    }
}

Test(smtp_trace, long_helo_capped)
{
    struct smtp_trace trace = trace_example();
    char helo[300];
    char buf[1024];
    const char *run;

    memset(helo, 'h', sizeof(helo) - 1);
    helo[sizeof(helo) - 1] = '\0';
    trace.helo = helo;
    cr_assert_gt(smtp_trace_received(&trace, buf, sizeof(buf)), 0);

    run = strchr(buf, 'h');
    cr_assert_not_null(run);
    cr_expect_eq(strspn(run, "h"), 64, "%s", buf);
    expect_lines_short(buf);
}

Test(smtp_trace, rcpt_with_control_bytes)
{
    struct smtp_trace trace = trace_example();
    char buf[1024];

    trace.rcpt = "bob@example.com\r\nBcc: x";
    cr_assert_gt(smtp_trace_received(&trace, buf, sizeof(buf)), 0);
    cr_expect_not_null(strstr(buf, "for <bob@example.com??Bcc:?x>;"), "%s",
                       buf);
}

Test(smtp_trace, rcpt_quoted_space_kept)
{
    struct smtp_trace trace = trace_example();
    char buf[1024];

    trace.rcpt = "\"x y\"@example.test";
    cr_assert_gt(smtp_trace_received(&trace, buf, sizeof(buf)), 0);
    cr_expect_not_null(strstr(buf, "for <\"x y\"@example.test>;"), "%s",
                       buf);

    trace.rcpt = "\"a\\\" b\"@example.test c";
    cr_assert_gt(smtp_trace_received(&trace, buf, sizeof(buf)), 0);
    cr_expect_not_null(strstr(buf, "for <\"a\\\" b\"@example.test?c>;"),
                       "%s", buf);
}

Test(smtp_trace, long_rcpt_folds_date)
{
    struct smtp_trace trace = trace_example();
    char rcpt[80];
    char buf[1024];

    memset(rcpt, 'r', sizeof(rcpt) - 1);
    rcpt[sizeof(rcpt) - 1] = '\0';
    trace.rcpt = rcpt;
    cr_assert_gt(smtp_trace_received(&trace, buf, sizeof(buf)), 0);
    cr_expect_not_null(strstr(buf, "r>;\r\n\tTue, 4 Mar 2025"), "%s", buf);
}

/* Every field at its cap, plus hostile bytes, still fits in 1 KiB. */
Test(smtp_trace, largest_header_fits)
{
    struct smtp_trace trace = trace_example();
    char helo[400];
    char ip[400];
    char host[400];
    char id[400];
    char rcpt[255];
    char buf[1024];

    memset(helo, '(', sizeof(helo) - 1);
    memset(ip, ':', sizeof(ip) - 1);
    memset(host, 'h', sizeof(host) - 1);
    memset(id, '\n', sizeof(id) - 1);
    memset(rcpt, 'r', sizeof(rcpt) - 1);
    helo[sizeof(helo) - 1] = '\0';
    ip[sizeof(ip) - 1] = '\0';
    host[sizeof(host) - 1] = '\0';
    id[sizeof(id) - 1] = '\0';
    rcpt[sizeof(rcpt) - 1] = '\0';
    trace.helo = helo;
    trace.client_ip = ip;
    trace.hostname = host;
    trace.queue_id = id;
    trace.rcpt = rcpt;

    cr_expect_gt(smtp_trace_received(&trace, buf, sizeof(buf)), 0);
    cr_expect_not_null(strstr(buf, "\tfor\r\n\t<rrr"));
}

Test(smtp_trace, buffer_too_small)
{
    struct smtp_trace trace = trace_example();
    char buf[1024];
    size_t len = smtp_trace_received(&trace, buf, sizeof(buf));

    cr_assert_gt(len, 0);
    cr_expect_eq(smtp_trace_received(&trace, buf, len), 0);
    cr_expect_eq(smtp_trace_received(&trace, buf, len + 1), len);
    cr_expect_eq(smtp_trace_received(&trace, buf, 0), 0);
}

Test(smtp_trace, authenticated_user)
{
    struct smtp_trace trace = trace_example();
    char buf[1024];

    trace.authenticated = true;
    trace.auth_user = "alice";
    cr_assert_gt(smtp_trace_received(&trace, buf, sizeof(buf)), 0);
    cr_expect_str_eq(buf,
                     "Received: from client.example.org ([192.0.2.7]) "
                     "(authenticated as alice)\r\n"
                     "\tby relay.example.net (ringrelay) with ESMTPA id "
                     "0123456789ABCDEF\r\n"
                     "\tfor <bob@example.com>; Tue, 4 Mar 2025 09:05:00 "
                     "+0000\r\n");
    expect_lines_short(buf);
}

Test(smtp_trace, authenticated_without_user_name)
{
    struct smtp_trace trace = trace_example();
    char buf[1024];

    trace.authenticated = true;
    trace.smtputf8 = true;
    cr_assert_gt(smtp_trace_received(&trace, buf, sizeof(buf)), 0);
    cr_expect_null(strstr(buf, "authenticated"), "%s", buf);
    cr_expect_not_null(strstr(buf, " with UTF8SMTPA id "), "%s", buf);
}

Test(smtp_trace, hostile_user_sanitised)
{
    struct smtp_trace trace = trace_example();
    char buf[1024];

    trace.authenticated = true;
    trace.auth_user = "a) b\\c\r\nX-Injected: \xc3\xa9";
    cr_assert_gt(smtp_trace_received(&trace, buf, sizeof(buf)), 0);
    cr_expect_not_null(strstr(buf, "(authenticated as"), "%s", buf);
    cr_expect_not_null(strstr(buf, "\ta?\?b?c?\?X-Injected:?\?\?)"), "%s",
                       buf);
    expect_lines_short(buf);
}

/* The longest value of every field still fits in 1024 bytes; a user name
 * over 128 bytes is left out. */
Test(smtp_trace, longest_fields_fit)
{
    struct smtp_trace trace = trace_example();
    char helo[65];
    char host[256];
    char rcpt[255];
    char user[130];
    char buf[1024];

    memset(helo, 'h', sizeof(helo) - 1);
    helo[sizeof(helo) - 1] = '\0';
    memset(host, 'n', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    memset(rcpt, 'r', sizeof(rcpt) - 1);
    rcpt[sizeof(rcpt) - 1] = '\0';
    rcpt[100] = '@';
    memset(user, 'u', sizeof(user) - 1);
    user[sizeof(user) - 1] = '\0';
    trace.helo = helo;
    trace.hostname = host;
    trace.rcpt = rcpt;
    trace.client_ip = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
    trace.authenticated = true;
    trace.smtputf8 = true;
    trace.auth_user = user;
    cr_assert_gt(smtp_trace_received(&trace, buf, sizeof(buf)), 0);
    cr_expect_null(strstr(buf, "(authenticated"), "%s", buf);
    user[128] = '\0';
    cr_assert_gt(smtp_trace_received(&trace, buf, sizeof(buf)), 0);
    cr_expect_not_null(strstr(buf, "(authenticated"), "%s", buf);
    cr_expect_not_null(strstr(buf, "uuuu)"), "%s", buf);
}

Test(smtp_trace, tls_comment_and_protocol)
{
    struct smtp_trace trace = trace_example();
    char buf[1024];

    trace.tls_version = "TLSv1.3";
    trace.tls_cipher = "TLS_AES_256_GCM_SHA384";
    trace.tls_bits = 256;
    cr_assert_gt(smtp_trace_received(&trace, buf, sizeof(buf)), 0);
    cr_expect_str_eq(buf,
                     "Received: from client.example.org ([192.0.2.7])\r\n"
                     "\tby relay.example.net (ringrelay) with ESMTPS "
                     "(TLSv1.3 cipher\r\n"
                     "\tTLS_AES_256_GCM_SHA384 256 bits) id "
                     "0123456789ABCDEF\r\n"
                     "\tfor <bob@example.com>; Tue, 4 Mar 2025 09:05:00 "
                     "+0000\r\n");
    expect_lines_short(buf);

    trace.smtputf8 = true;
    cr_assert_gt(smtp_trace_received(&trace, buf, sizeof(buf)), 0);
    cr_expect(strstr(buf, " with UTF8SMTPS (TLSv1.3") != NULL, "%s", buf);
    trace.smtputf8 = false;
    trace.esmtp = false;
    cr_assert_gt(smtp_trace_received(&trace, buf, sizeof(buf)), 0);
    cr_expect(strstr(buf, " with SMTP (TLSv1.3") != NULL, "%s", buf);
}

Test(smtp_trace, longest_fields_fit_1024)
{
    char helo[300];
    char host[300];
    char rcpt[300];
    char id[100];
    char cipher[100];
    struct smtp_trace trace = trace_example();
    char buf[1024];

    memset(helo, 'h', sizeof(helo) - 1);
    helo[sizeof(helo) - 1] = '\0';
    memset(host, 'n', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    memset(rcpt, 'r', 250);
    memcpy(rcpt + 250, "@a.b", 5);
    memset(id, 'I', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    memset(cipher, 'C', sizeof(cipher) - 1);
    cipher[sizeof(cipher) - 1] = '\0';
    trace.helo = helo;
    trace.hostname = host;
    trace.rcpt = rcpt;
    trace.queue_id = id;
    trace.client_ip = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
    trace.tls_version = cipher;
    trace.tls_cipher = cipher;
    trace.tls_bits = 256;
    cr_assert_gt(smtp_trace_received(&trace, buf, sizeof(buf)), 0);
}
