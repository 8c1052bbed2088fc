/* Tests for the command line of ringrelay-bench run: defaults, blast's
 * options after "--", and the values and combinations it rejects.
 * Usage errors go to stderr, which is redirected, so each test checks
 * the return value and the fields. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bench/run_options.h"
#include "tests/unit/test_argv.h"

struct parsed {
    int result;
    struct run_options options;
    struct test_argv args;
};

/* Parse "run" followed by the NULL-terminated arguments. */
static void parse(struct parsed *p, ...)
{
    va_list ap;

    memset(p, 0, sizeof(*p));
    va_start(ap, p);
    test_argv_build(&p->args, "run", ap);
    va_end(ap);
    p->result = run_parse_options(p->args.argc, p->args.argv,
                                  &p->options);
}

static void parsed_free(struct parsed *p)
{
    test_argv_free(&p->args);
}

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

static uint16_t port_of(const struct bench_endpoint *endpoint)
{
    const struct sockaddr_in *in4 =
        (const struct sockaddr_in *)&endpoint->addr;

    return ntohs(in4->sin_port);
}

TestSuite(run_options, .init = redirect_output);

Test(run_options, defaults)
{
    struct parsed p;

    parse(&p, NULL);
    cr_assert_eq(p.result, 0);
    cr_assert_null(p.options.relay_path);
    cr_assert_null(p.options.target);
    cr_assert_null(p.options.durability);
    cr_assert_null(p.options.json_path);
    cr_assert_null(p.options.resolver);
    cr_assert_str_eq(p.options.listen, "127.0.0.1:2525");
    cr_assert_str_eq(p.options.sink_listen, "127.0.0.1:2526");
    cr_assert_eq(port_of(&p.options.target_endpoint), 2525);
    cr_assert_eq(port_of(&p.options.sink_endpoint), 2526);
    cr_assert_eq(p.options.timeout, 600);
    cr_assert_eq(p.options.drain_timeout, 60);
    cr_assert(!p.options.keep_dir);
    cr_assert_eq(p.options.blast_argc, 0);
    parsed_free(&p);
}

Test(run_options, blast_options_after_dashes)
{
    struct parsed p;

    parse(&p, "--durability", "none", "--keep-dir", "--", "--connections",
          "50", "--messages", "20000", NULL);
    cr_assert_eq(p.result, 0);
    cr_assert_str_eq(p.options.durability, "none");
    cr_assert(p.options.keep_dir);
    cr_assert_eq(p.options.blast_argc, 4);
    cr_assert_str_eq(p.options.blast_argv[0], "--connections");
    cr_assert_str_eq(p.options.blast_argv[3], "20000");
    parsed_free(&p);
}

Test(run_options, target_replaces_relay)
{
    struct parsed p;

    parse(&p, "--target", "127.0.0.1:2700", "--sink-listen",
          "127.0.0.1:2701", NULL);
    cr_assert_eq(p.result, 0);
    cr_assert_eq(port_of(&p.options.target_endpoint), 2700);
    cr_assert_eq(port_of(&p.options.sink_endpoint), 2701);
    parsed_free(&p);

    parse(&p, "--target", "127.0.0.1:2700", "--durability", "fsync", NULL);
    expect_error(&p);
    parse(&p, "--target", "127.0.0.1:2700", "--relay", "/bin/true", NULL);
    expect_error(&p);
}

Test(run_options, resolver)
{
    struct parsed p;

    parse(&p, "--resolver", "127.0.0.1:53", "--sink-listen", "0.0.0.0:25",
          NULL);
    cr_assert_eq(p.result, 0);
    cr_assert_str_eq(p.options.resolver, "127.0.0.1:53");
    cr_assert_eq(port_of(&p.options.sink_endpoint), 25);
    parsed_free(&p);

    parse(&p, "--resolver", "[::1]:5353", NULL);
    cr_assert_eq(p.result, 0);
    parsed_free(&p);

    /* The relay needs the name server's IP address. */
    parse(&p, "--resolver", "localhost:53", NULL);
    expect_error(&p);
    parse(&p, "--resolver", "127.0.0.1:99999", NULL);
    expect_error(&p);
    parse(&p, "--target", "127.0.0.1:2700", "--resolver", "127.0.0.1:53",
          NULL);
    expect_error(&p);
}

Test(run_options, rejected_values)
{
    struct parsed p;

    parse(&p, "--durability", "sometimes", NULL);
    expect_error(&p);
    parse(&p, "--timeout", "0", NULL);
    expect_error(&p);
    parse(&p, "--drain-timeout", "1h", NULL);
    expect_error(&p);
    parse(&p, "--relay", "/nonexistent/ringrelay", NULL);
    expect_error(&p);
    parse(&p, "--json", "/tmp", NULL);
    expect_error(&p);
    /* getaddrinfo() alone would wrap 99999 to 34463. */
    parse(&p, "--target", "127.0.0.1:99999", NULL);
    expect_error(&p);
    parse(&p, "--sink-listen", "127.0.0.1:", NULL);
    expect_error(&p);
}

Test(run_options, rejected_combinations)
{
    struct parsed p;

    /* blast would reach the sink instead of the relay. */
    parse(&p, "--listen", "127.0.0.1:2526", NULL);
    expect_error(&p);
    parse(&p, "--", "--server", "127.0.0.1:2525", NULL);
    expect_error(&p);
    parse(&p, "--", "--stats-file=/tmp/s", NULL);
    expect_error(&p);
    parse(&p, "leftover", NULL);
    expect_error(&p);
    parse(&p, "--bogus", NULL);
    expect_error(&p);
}

Test(run_options, help)
{
    struct parsed p;

    parse(&p, "--keep-dir", "--help", NULL);
    cr_assert_eq(p.result, 1);
    parsed_free(&p);
}
