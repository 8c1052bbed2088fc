/* Tests for blast's address templates: placeholders, expansion and the
 * round robin of domain numbers. */
#include <criterion/criterion.h>
#include <string.h>

#include "bench/blast_template.h"

static void expect_expansion(const char *template, uint64_t seq,
                             uint64_t rcpt, uint64_t domain,
                             const char *want)
{
    struct blast_template_vars vars = {.seq = seq, .rcpt = rcpt,
                                       .domain = domain};
    char out[256];
    size_t len = 0;

    cr_assert_eq(blast_template_expand(template, &vars, out, sizeof(out),
                                       &len),
                 0, "%s", template);
    cr_assert_str_eq(out, want, "%s", template);
    cr_assert_eq(len, strlen(want));
}

Test(blast_template, expands_placeholders)
{
    expect_expansion("user@example.test", 5, 2, 3, "user@example.test");
    expect_expansion("user%n.%r@d%d.example.test", 42, 3, 7,
                     "user42.3@d7.example.test");
    expect_expansion("%n%n@x.test", 12, 1, 1, "1212@x.test");
    expect_expansion("a%%n@x.test", 12, 1, 1, "a%n@x.test");
    expect_expansion("%%%n@x.test", 9, 1, 1, "%9@x.test");
    expect_expansion("u%n@x.test", UINT64_C(1099511627776), 1, 1,
                     "u1099511627776@x.test");
    expect_expansion("", 1, 1, 1, "");
}

Test(blast_template, refuses_output_that_does_not_fit)
{
    struct blast_template_vars vars = {.seq = 123456, .rcpt = 1,
                                       .domain = 1};
    char out[8];
    size_t len;

    cr_assert_eq(blast_template_expand("ab%ncd", &vars, out, sizeof(out),
                                       &len),
                 -1);
    cr_assert_eq(blast_template_expand("abcdefgh", &vars, out, sizeof(out),
                                       &len),
                 -1);
    cr_assert_eq(blast_template_expand("abcdefg", &vars, out, sizeof(out),
                                       &len),
                 0);
    cr_assert_str_eq(out, "abcdefg");
    cr_assert_eq(blast_template_expand("a%n", &vars, out, sizeof(out),
                                       &len),
                 0);
    cr_assert_str_eq(out, "a123456");
}

Test(blast_template, checks_placeholders)
{
    char error[256];

    cr_assert_eq(blast_template_check("to", "u%n.%r@d%d.x%%", true, error,
                                      sizeof(error)),
                 0);
    cr_assert_eq(blast_template_check("from", "u%n@d%d.x", false, error,
                                      sizeof(error)),
                 0);

    cr_assert_eq(blast_template_check("from", "u%r@x", false, error,
                                      sizeof(error)),
                 -1);
    cr_assert(strstr(error, "--from \"u%r@x\"") != NULL, "%s", error);
    cr_assert(strstr(error, "only for --to") != NULL, "%s", error);

    cr_assert_eq(blast_template_check("to", "u%q@x", true, error,
                                      sizeof(error)),
                 -1);
    cr_assert(strstr(error, "unknown placeholder %q") != NULL, "%s", error);
    cr_assert(strstr(error, "expected %n, %r, %d or %%") != NULL, "%s",
              error);

    cr_assert_eq(blast_template_check("to", "u@x%", true, error,
                                      sizeof(error)),
                 -1);
    cr_assert(strstr(error, "lone %") != NULL, "%s", error);
}

Test(blast_template, reports_use)
{
    cr_assert(blast_template_uses("u%n@d%d.x", 'd'));
    cr_assert(blast_template_uses("u%n@d%d.x", 'n'));
    cr_assert_not(blast_template_uses("u%n@d%d.x", 'r'));
    cr_assert_not(blast_template_uses("u%%d@x", 'd'));
    cr_assert_not(blast_template_uses("plain@x", 'n'));
}

Test(blast_template, domains_round_robin)
{
    /* Recipients of consecutive messages cycle through 1..D. */
    uint64_t want = 1;

    for (uint64_t seq = 1; seq <= 5; seq++) {
        for (uint64_t rcpt = 1; rcpt <= 3; rcpt++) {
            cr_assert_eq(blast_template_domain(seq, rcpt, 3, 4), want,
                         "seq %llu rcpt %llu", (unsigned long long)seq,
                         (unsigned long long)rcpt);
            want = want % 4 + 1;
        }
    }
    /* Senders cycle per message. */
    cr_assert_eq(blast_template_domain(1, 0, 3, 4), 1);
    cr_assert_eq(blast_template_domain(4, 0, 3, 4), 4);
    cr_assert_eq(blast_template_domain(5, 0, 3, 4), 1);
    /* One domain, and sequence numbers far beyond D * R. */
    cr_assert_eq(blast_template_domain(999, 7, 10, 1), 1);
    cr_assert_eq(blast_template_domain(UINT64_C(1) << 40, 1000, 1000,
                                       1000000),
                 ((((UINT64_C(1) << 40) - 1) * 1000 + 999) % 1000000) + 1);
}
