/* Tests for the command line of ringrelay-bench blast: every option with
 * good and bad values, and the combinations that are refused. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bench/blast_options.h"
#include "tests/unit/test_argv.h"

struct parsed {
    enum blast_options_result result;
    struct blast_options options;
    char error[1024];
    struct test_argv args;
};

/* Parse "blast" followed by the NULL-terminated arguments. */
static void parse(struct parsed *p, ...)
{
    va_list ap;

    memset(p, 0, sizeof(*p));
    va_start(ap, p);
    test_argv_build(&p->args, "blast", ap);
    va_end(ap);
    p->result = blast_options_parse(p->args.argc, p->args.argv,
                                    &p->options, p->error,
                                    sizeof(p->error));
}

static void parsed_free(struct parsed *p)
{
    test_argv_free(&p->args);
}

/* Expect a usage error whose message contains each of the strings. */
static void expect_error(struct parsed *p, const char *want1,
                         const char *want2)
{
    cr_assert_eq(p->result, BLAST_OPTIONS_ERROR, "accepted; options "
                 "parsed without error");
    cr_assert(strchr(p->error, '\n') == NULL, "error has a newline: %s",
              p->error);
    cr_assert(strstr(p->error, want1) != NULL, "error \"%s\" lacks \"%s\"",
              p->error, want1);
    if (want2 != NULL) {
        cr_assert(strstr(p->error, want2) != NULL,
                  "error \"%s\" lacks \"%s\"", p->error, want2);
    }
    cr_assert(strstr(p->error, "expected") != NULL,
              "error \"%s\" does not say what is expected", p->error);
    parsed_free(p);
}

static void expect_ok(struct parsed *p)
{
    cr_assert_eq(p->result, BLAST_OPTIONS_RUN, "refused: %s", p->error);
}

Test(blast_options, defaults)
{
    struct parsed p;

    parse(&p, NULL);
    expect_ok(&p);
    cr_assert_str_eq(p.options.server_text, "127.0.0.1:2525");
    cr_assert_eq(p.options.server.addr.ss_family, AF_INET);
    cr_assert_eq(p.options.connections, 10);
    cr_assert_eq(p.options.messages, 1000);
    cr_assert_eq(p.options.duration_s, 0);
    cr_assert_eq(p.options.per_connection, 0);
    cr_assert_eq(p.options.rate, 0);
    cr_assert_eq(p.options.size, 1024);
    cr_assert_eq(p.options.rcpts, 1);
    cr_assert_eq(p.options.domains, 1);
    cr_assert_eq(p.options.timeout_s, 300);
    cr_assert(p.options.pipelining);
    cr_assert_str_eq(p.options.helo, "blast.example.test");
    cr_assert_str_eq(p.options.from, "blast@example.test");
    cr_assert_str_eq(p.options.to, "user@example.test");
    cr_assert_null(p.options.body_dir);
    cr_assert_null(p.options.json_path);
    cr_assert_null(p.options.stats_path);
    parsed_free(&p);
}

Test(blast_options, help)
{
    struct parsed p;

    parse(&p, "--connections", "5", "--help", NULL);
    cr_assert_eq(p.result, BLAST_OPTIONS_HELP);
    parsed_free(&p);
    parse(&p, "-h", NULL);
    cr_assert_eq(p.result, BLAST_OPTIONS_HELP);
    parsed_free(&p);
}

/* One numeric option: its name, the values at both ends of its range,
 * and where the parsed value lands. */
struct number_case {
    const char *option;
    const char *min;
    const char *max;
    const char *below;     /* NULL when min is 0 */
    const char *above;
    size_t offset;
};

static const struct number_case number_cases[] = {
    {"--connections", "1", "100000", "0", "100001",
     offsetof(struct blast_options, connections)},
    {"--messages", "1", "1099511627776", "0", "1099511627777",
     offsetof(struct blast_options, messages)},
    {"--duration", "1", "604800", "0", "604801",
     offsetof(struct blast_options, duration_s)},
    {"--per-connection", "1", "1099511627776", "0", "1099511627777",
     offsetof(struct blast_options, per_connection)},
    {"--rate", "1", "10000000", "0", "10000001",
     offsetof(struct blast_options, rate)},
    {"--size", "0", "1073741824", NULL, "1073741825",
     offsetof(struct blast_options, size)},
    {"--rcpts", "1", "1000", "0", "1001",
     offsetof(struct blast_options, rcpts)},
    {"--timeout", "1", "604800", "0", "604801",
     offsetof(struct blast_options, timeout_s)},
};

static uint64_t field(const struct blast_options *o, size_t offset)
{
    return *(const uint64_t *)((const char *)o + offset);
}

Test(blast_options, numbers_in_range)
{
    for (size_t i = 0; i < sizeof(number_cases) / sizeof(number_cases[0]);
         i++) {
        const struct number_case *c = &number_cases[i];
        /* --duration excludes the default --messages only when given;
         * it needs a longer --timeout than itself. */
        const char *extra = strcmp(c->option, "--duration") == 0
                                ? "--timeout"
                                : NULL;
        const char *values[] = {c->min, c->max};

        for (size_t v = 0; v < 2; v++) {
            struct parsed p;

            if (extra != NULL) {
                parse(&p, c->option, values[v], extra, "604800", NULL);
                if (v == 1) {
                    /* The largest duration leaves no room for a longer
                     * timeout. */
                    expect_error(&p, "--timeout", "--duration");
                    continue;
                }
            } else {
                parse(&p, c->option, values[v], NULL);
            }
            expect_ok(&p);
            cr_assert_eq(field(&p.options, c->offset),
                         strtoull(values[v], NULL, 10), "%s %s",
                         c->option, values[v]);
            parsed_free(&p);
        }
    }
}

Test(blast_options, numbers_out_of_range_or_malformed)
{
    for (size_t i = 0; i < sizeof(number_cases) / sizeof(number_cases[0]);
         i++) {
        const struct number_case *c = &number_cases[i];
        const char *bad[] = {c->above, c->below, "-1", "+5", "abc", "10x",
                             "", " 5", "1.5", "99999999999999999999999"};

        for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
            struct parsed p;
            char value[64];

            if (bad[b] == NULL) {
                continue;
            }
            parse(&p, c->option, bad[b], NULL);
            snprintf(value, sizeof(value), "\"%s\"", bad[b]);
            expect_error(&p, c->option, value);
        }
    }
}

Test(blast_options, domains)
{
    struct parsed p;

    parse(&p, "--domains", "1000000", "--to", "u@d%d.example.test", NULL);
    expect_ok(&p);
    cr_assert_eq(p.options.domains, 1000000);
    parsed_free(&p);

    parse(&p, "--domains", "0", NULL);
    expect_error(&p, "--domains", "\"0\"");
    parse(&p, "--domains", "1000001", NULL);
    expect_error(&p, "--domains", "\"1000001\"");

    /* Without %d, --domains would do nothing. */
    parse(&p, "--domains", "10", NULL);
    expect_error(&p, "--domains 10", "%d");
    parse(&p, "--domains", "1", NULL);
    expect_ok(&p);
    parsed_free(&p);
}

Test(blast_options, messages_and_duration_exclude_each_other)
{
    struct parsed p;

    parse(&p, "--messages", "100", "--duration", "10", NULL);
    expect_error(&p, "--messages 100", "--duration 10");
}

Test(blast_options, duration_sets_timeout)
{
    struct parsed p;

    parse(&p, "--duration", "60", NULL);
    expect_ok(&p);
    cr_assert_eq(p.options.messages, 0);
    cr_assert_eq(p.options.duration_s, 60);
    cr_assert_eq(p.options.timeout_s, 360);
    parsed_free(&p);

    parse(&p, "--duration", "60", "--timeout", "61", NULL);
    expect_ok(&p);
    cr_assert_eq(p.options.timeout_s, 61);
    parsed_free(&p);

    parse(&p, "--duration", "60", "--timeout", "60", NULL);
    expect_error(&p, "--timeout 60", "--duration 60");
}

Test(blast_options, rate_and_duration_bounded)
{
    struct parsed p;

    /* 10^7 per second for 2 * 10^5 seconds is more than 2^40. */
    parse(&p, "--rate", "10000000", "--duration", "200000", "--timeout",
          "604800", NULL);
    expect_error(&p, "--rate 10000000", "--duration 200000");
    parse(&p, "--rate", "1000", "--duration", "10", NULL);
    expect_ok(&p);
    parsed_free(&p);
}

Test(blast_options, pipelining)
{
    struct parsed p;

    parse(&p, "--pipelining", "off", NULL);
    expect_ok(&p);
    cr_assert_not(p.options.pipelining);
    parsed_free(&p);
    parse(&p, "--pipelining", "on", NULL);
    expect_ok(&p);
    cr_assert(p.options.pipelining);
    parsed_free(&p);

    parse(&p, "--pipelining", "maybe", NULL);
    expect_error(&p, "--pipelining", "\"maybe\"");
    parse(&p, "--pipelining", "ON", NULL);
    expect_error(&p, "--pipelining", "\"ON\"");
    parse(&p, "--pipelining", "", NULL);
    expect_error(&p, "--pipelining", "on or off");
}

Test(blast_options, server)
{
    const char *good[] = {"127.0.0.1:25", "[::1]:2525", "127.0.0.1:65535",
                          "localhost:25"};
    const char *bad[] = {"127.0.0.1", "localhost", "[::1]", "127.0.0.1:",
                         "127.0.0.1:0", "127.0.0.1:65536",
                         "127.0.0.1:99999", "127.0.0.1:abc",
                         "127.0.0.1:-5", "[::1", "[::1]:", "[::1]x",
                         "::1:25", ":25", ""};

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct parsed p;

        parse(&p, "--server", good[i], NULL);
        expect_ok(&p);
        cr_assert_str_eq(p.options.server_text, good[i]);
        parsed_free(&p);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct parsed p;
        char value[64];

        parse(&p, "--server", bad[i], NULL);
        snprintf(value, sizeof(value), "\"%s\"", bad[i]);
        expect_error(&p, "--server", value);
    }
}

Test(blast_options, helo)
{
    struct parsed p;
    char long_name[300];

    parse(&p, "--helo", "[192.0.2.1]", NULL);
    expect_ok(&p);
    cr_assert_str_eq(p.options.helo, "[192.0.2.1]");
    parsed_free(&p);

    parse(&p, "--helo", "bad name", NULL);
    expect_error(&p, "--helo", "\"bad name\"");
    parse(&p, "--helo", "", NULL);
    expect_error(&p, "--helo", "domain name");
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    parse(&p, "--helo", long_name, NULL);
    expect_error(&p, "--helo", "at most 255");
}

Test(blast_options, templates)
{
    struct parsed p;

    parse(&p, "--from", "b%n@s%d.example.test", "--to",
          "user%n.%r@d%d.example.test", "--domains", "10", "--rcpts", "3",
          NULL);
    expect_ok(&p);
    cr_assert_str_eq(p.options.to, "user%n.%r@d%d.example.test");
    parsed_free(&p);

    parse(&p, "--to", "a%%b@example.test", NULL);
    expect_ok(&p);
    parsed_free(&p);

    parse(&p, "--to", "user%x@example.test", NULL);
    expect_error(&p, "--to", "%x");
    parse(&p, "--to", "user@example.test%", NULL);
    expect_error(&p, "--to", "lone %");
    parse(&p, "--from", "user%r@example.test", NULL);
    expect_error(&p, "--from", "only for --to");
    parse(&p, "--from", "user%x@example.test", NULL);
    expect_error(&p, "--from", "%x");
}

Test(blast_options, addresses_checked_after_expansion)
{
    struct parsed p;
    char local[80];
    char address[200];

    parse(&p, "--to", "nobody", NULL);
    expect_error(&p, "--to", "\"nobody\"");
    parse(&p, "--from", "", NULL);
    expect_error(&p, "--from", "local@domain");
    parse(&p, "--to", "a b@example.test", NULL);
    expect_error(&p, "--to", "local@domain");
    parse(&p, "--from", "user%n", NULL);
    expect_error(&p, "--from", "expands to");

    /* A local part of 64 octets is the limit (RFC 5321 4.5.3.1.1); with
     * 60 letters, %n fits for --messages 999 but not 99999. */
    memset(local, 'a', 60);
    local[60] = '\0';
    snprintf(address, sizeof(address), "%s%%n@example.test", local);
    parse(&p, "--to", address, "--messages", "999", NULL);
    expect_ok(&p);
    parsed_free(&p);
    parse(&p, "--to", address, "--messages", "99999", NULL);
    expect_error(&p, "--to", "%n=99999");
}

Test(blast_options, body_dir)
{
    struct parsed p;

    parse(&p, "--body-dir", "/tmp", NULL);
    expect_ok(&p);
    cr_assert_str_eq(p.options.body_dir, "/tmp");
    parsed_free(&p);

    parse(&p, "--body-dir", "/tmp", "--size", "100", NULL);
    expect_error(&p, "--size 100", "--body-dir \"/tmp\"");
    parse(&p, "--body-dir", "/nonexistent-blast-dir", NULL);
    expect_error(&p, "--body-dir", "\"/nonexistent-blast-dir\"");
    parse(&p, "--body-dir", "/dev/null", NULL);
    expect_error(&p, "--body-dir", "directory");
}

Test(blast_options, output_files)
{
    struct parsed p;

    parse(&p, "--json", "/tmp/blast.json", "--stats-file",
          "/tmp/blast.stats", NULL);
    expect_ok(&p);
    cr_assert_str_eq(p.options.json_path, "/tmp/blast.json");
    cr_assert_str_eq(p.options.stats_path, "/tmp/blast.stats");
    parsed_free(&p);

    parse(&p, "--json", "/nonexistent-dir/blast.json", NULL);
    expect_error(&p, "--json", "\"/nonexistent-dir/blast.json\"");
    parse(&p, "--stats-file", "/nonexistent-dir/stats", NULL);
    expect_error(&p, "--stats-file", "\"/nonexistent-dir/stats\"");
    parse(&p, "--stats-file", "", NULL);
    expect_error(&p, "--stats-file", "file name");
    parse(&p, "--json", "/tmp", NULL);
    expect_error(&p, "--json \"/tmp\"", "Is a directory");
    parse(&p, "--stats-file", "/tmp/", NULL);
    expect_error(&p, "--stats-file \"/tmp/\"", "Is a directory");
    parse(&p, "--json", "/dev/null/blast.json", NULL);
    expect_error(&p, "--json \"/dev/null/blast.json\"", "\"/dev/null\"");
}

Test(blast_options, idle_with_duration)
{
    struct parsed p;

    parse(&p, "--idle", "--connections", "10000", "--duration", "5",
          "--helo", "hold.example.test", "--pipelining", "off", NULL);
    expect_ok(&p);
    cr_assert(p.options.idle);
    cr_assert_eq(p.options.connections, 10000);
    cr_assert_eq(p.options.duration_s, 5);
    cr_assert_eq(p.options.messages, 0);
    cr_assert_eq(p.options.timeout_s, 305);
    cr_assert_str_eq(p.options.helo, "hold.example.test");
    parsed_free(&p);
}

Test(blast_options, idle_needs_duration)
{
    struct parsed p;

    parse(&p, "--idle", NULL);
    expect_error(&p, "--idle needs --duration", NULL);
    parse(&p, "--idle", "--connections", "5", NULL);
    expect_error(&p, "--idle needs --duration", NULL);
}

/* Each option that shapes messages is refused with --idle, by name. */
Test(blast_options, idle_refuses_message_options)
{
    static const char *const cases[][2] = {
        {"--messages", "10"},   {"--per-connection", "1"},
        {"--rate", "100"},      {"--size", "2048"},
        {"--rcpts", "2"},       {"--domains", "3"},
        {"--from", "a@example.test"}, {"--to", "b@example.test"},
        {"--body-dir", "/tmp"},
    };
    struct parsed p;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char want[64];

        snprintf(want, sizeof(want), "%s has no effect with --idle",
                 cases[i][0]);
        parse(&p, "--idle", "--duration", "5", cases[i][0], cases[i][1],
              NULL);
        expect_error(&p, want, NULL);
    }
}

Test(blast_options, idle_not_default)
{
    struct parsed p;

    parse(&p, "--duration", "5", NULL);
    expect_ok(&p);
    cr_assert(!p.options.idle);
    parsed_free(&p);
}

Test(blast_options, starttls_and_auth)
{
    struct parsed p;

    parse(&p, NULL);
    expect_ok(&p);
    cr_assert(!p.options.starttls);
    cr_assert_null(p.options.auth);
    parsed_free(&p);

    parse(&p, "--starttls", "--auth", "user:se:cret", NULL);
    expect_ok(&p);
    cr_assert(p.options.starttls);
    cr_assert_str_eq(p.options.auth, "user:se:cret");
    parsed_free(&p);

    /* An empty password is the server's business. */
    parse(&p, "--auth", "user:", NULL);
    expect_ok(&p);
    parsed_free(&p);
}

Test(blast_options, auth_invalid)
{
    struct parsed p;
    char long_user[300];

    parse(&p, "--auth", "user", NULL);
    expect_error(&p, "--auth", "expected USER:PASS");
    parse(&p, "--auth", ":secret", NULL);
    expect_error(&p, "--auth", "non-empty USER");
    memset(long_user, 'u', 256);
    snprintf(long_user + 256, sizeof(long_user) - 256, ":pw");
    parse(&p, "--auth", long_user, NULL);
    expect_error(&p, "--auth", "at most 255 bytes each");
}

Test(blast_options, unknown_missing_and_extra)
{
    struct parsed p;

    parse(&p, "--bogus", NULL);
    expect_error(&p, "--bogus", "--help");
    parse(&p, "--messages", NULL);
    expect_error(&p, "--messages", "needs a value");
    parse(&p, "--messages", "5", "leftover", NULL);
    expect_error(&p, "\"leftover\"", "options only");
}

/* getopt keeps state between calls; parsing twice must not depend on the
 * first call. */
Test(blast_options, parses_twice)
{
    struct parsed p;

    parse(&p, "--connections", "7", "--messages", "3", NULL);
    expect_ok(&p);
    parsed_free(&p);
    parse(&p, "--messages", "4", NULL);
    expect_ok(&p);
    cr_assert_eq(p.options.connections, 10);
    cr_assert_eq(p.options.messages, 4);
    parsed_free(&p);
}
