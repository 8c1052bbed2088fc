/* Tests for the command line of ringrelay-bench sink: defaults, the
 * extension switches, fault rules and delays, and the values and
 * combinations it rejects. Usage errors go to stderr, which is
 * redirected, so each test checks the return value and the fields. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bench/sink_options.h"
#include "proto/smtp_server.h"
#include "tests/unit/test_argv.h"

struct parsed {
    int result;
    struct sink_options options;
    struct test_argv args;
};

/* Parse "sink" followed by the NULL-terminated arguments. */
static void parse(struct parsed *p, ...)
{
    va_list ap;

    memset(p, 0, sizeof(*p));
    va_start(ap, p);
    test_argv_build(&p->args, "sink", ap);
    va_end(ap);
    p->result = sink_parse_options(p->args.argc, p->args.argv,
                                   &p->options);
}

static void parsed_free(struct parsed *p)
{
    test_argv_free(&p->args);
}

/* Expect a usage error for the arguments. */
static void expect_error(struct parsed *p)
{
    cr_assert_eq(p->result, -1, "accepted; expected a usage error");
    parsed_free(p);
}

static void redirect_output(void)
{
    cr_redirect_stdout();
    cr_redirect_stderr();
}

TestSuite(sink_options, .init = redirect_output);

Test(sink_options, defaults)
{
    struct parsed p;

    parse(&p, NULL);
    cr_assert_eq(p.result, 0);
    cr_assert_str_eq(p.options.listen, "127.0.0.1:2526");
    cr_assert_eq(p.options.endpoint.addr.ss_family, AF_INET);
    cr_assert_null(p.options.store_dir);
    cr_assert_null(p.options.json_path);
    cr_assert_null(p.options.stats_path);
    cr_assert(!p.options.with_fsync);
    cr_assert(!p.options.has_seed);
    cr_assert_eq(p.options.max_seconds, 0);
    cr_assert_eq(p.options.idle_seconds, 300);
    cr_assert_eq(p.options.expect, 0);
    cr_assert_eq(p.options.max_size, 64u << 20);
    cr_assert_eq(p.options.max_errors, 0);
    cr_assert_eq(p.options.disabled_extensions, 0);
    cr_assert_eq(p.options.faults.max_connections, 0);
    cr_assert_null(p.options.tls_cert);
    cr_assert_null(p.options.tls_key);
    cr_assert(!p.options.tls_fail);
    parsed_free(&p);
}

Test(sink_options, server_and_report_values)
{
    struct parsed p;

    parse(&p, "--listen", "[::1]:2600", "--store", "/tmp", "--fsync",
          "--max-seconds", "30", "--idle-timeout", "5", "--expect", "100",
          "--max-size", "2048", "--max-errors", "3", NULL);
    cr_assert_eq(p.result, 0);
    cr_assert_eq(p.options.endpoint.addr.ss_family, AF_INET6);
    cr_assert_str_eq(p.options.store_dir, "/tmp");
    cr_assert(p.options.with_fsync);
    cr_assert_eq(p.options.max_seconds, 30);
    cr_assert_eq(p.options.idle_seconds, 5);
    cr_assert_eq(p.options.expect, 100);
    cr_assert_eq(p.options.max_size, 2048);
    cr_assert_eq(p.options.max_errors, 3);
    parsed_free(&p);
}

Test(sink_options, extension_switches)
{
    struct parsed p;

    parse(&p, "--no-pipelining", "--no-8bitmime", "--no-size",
          "--no-smtputf8", "--no-chunking", NULL);
    cr_assert_eq(p.result, 0);
    cr_assert_eq(p.options.disabled_extensions,
                 SMTP_EXT_PIPELINING | SMTP_EXT_8BITMIME | SMTP_EXT_SIZE
                     | SMTP_EXT_SMTPUTF8 | SMTP_EXT_CHUNKING);
    parsed_free(&p);
}

Test(sink_options, faults_and_delays)
{
    const struct sink_fault_stage_rules *mail;
    struct parsed p;

    parse(&p, "--seed", "7", "--mail-reply", "421 4.3.2 bye:0.25",
          "--mail-reply", "451 4.3.0 later:0.5", "--rcpt-delay", "20",
          "--disconnect-in-data", "0.1", "--max-connections", "5", NULL);
    cr_assert_eq(p.result, 0);
    cr_assert(p.options.has_seed);
    cr_assert_eq(p.options.faults.seed, 7);
    mail = &p.options.faults.stages[SINK_STAGE_MAIL];
    cr_assert_eq(mail->count, 2);
    cr_assert_eq(mail->rules[0].code, 421);
    cr_assert_eq(mail->rules[1].code, 451);
    cr_assert_eq(p.options.faults.stages[SINK_STAGE_RCPT].delay_ms, 20);
    cr_assert_float_eq(p.options.faults.disconnect_in_data, 0.1, 1e-9);
    cr_assert_eq(p.options.faults.max_connections, 5);
    parsed_free(&p);
}

Test(sink_options, bad_values)
{
    struct parsed p;

    parse(&p, "--max-seconds", "0", NULL);
    expect_error(&p);
    parse(&p, "--expect", "-1", NULL);
    expect_error(&p);
    parse(&p, "--max-size", "12k", NULL);
    expect_error(&p);
    parse(&p, "--rcpt-reply", "99 too low:0.5", NULL);
    expect_error(&p);
    parse(&p, "--data-reply", "451 4.3.0 later:1.5", NULL);
    expect_error(&p);
    parse(&p, "--disconnect-in-data", "2", NULL);
    expect_error(&p);
    /* getaddrinfo() alone would wrap 99999 to 34463 and take an empty
     * port as 0. */
    parse(&p, "--listen", "127.0.0.1:99999", NULL);
    expect_error(&p);
    parse(&p, "--listen", "127.0.0.1:", NULL);
    expect_error(&p);
    /* Without a port the sink would pick one the user did not choose. */
    parse(&p, "--listen", "127.0.0.1", NULL);
    expect_error(&p);
    parse(&p, "--listen", "[::1]", NULL);
    expect_error(&p);
}

Test(sink_options, tls_values)
{
    struct parsed p;

    parse(&p, "--tls-cert", "/etc/sink.crt", "--tls-key", "/etc/sink.key",
          NULL);
    cr_assert_eq(p.result, 0);
    cr_assert_str_eq(p.options.tls_cert, "/etc/sink.crt");
    cr_assert_str_eq(p.options.tls_key, "/etc/sink.key");
    cr_assert(!p.options.tls_fail);
    parsed_free(&p);

    /* --tls-fail needs no certificate, because no handshake runs. */
    parse(&p, "--tls-fail", NULL);
    cr_assert_eq(p.result, 0);
    cr_assert(p.options.tls_fail);
    cr_assert_null(p.options.tls_cert);
    parsed_free(&p);
}

Test(sink_options, tls_half_pair_rejected)
{
    struct parsed p;

    parse(&p, "--tls-cert", "/etc/sink.crt", NULL);
    expect_error(&p);
    parse(&p, "--tls-key", "/etc/sink.key", NULL);
    expect_error(&p);
}

Test(sink_options, rejected_combinations)
{
    struct parsed p;

    parse(&p, "--fsync", NULL);
    expect_error(&p);
    parse(&p, "--json", "/tmp", NULL);
    expect_error(&p);
    parse(&p, "--bogus", NULL);
    expect_error(&p);
    parse(&p, "leftover", NULL);
    expect_error(&p);
}

Test(sink_options, help)
{
    struct parsed p;

    parse(&p, "--max-seconds", "5", "--help", NULL);
    cr_assert_eq(p.result, 1);
    parsed_free(&p);
}
