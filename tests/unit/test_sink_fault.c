/* Fault specs of the bench sink: parsing good and bad --*-reply values,
 * probabilities, and the seeded draws. */
#include <criterion/criterion.h>
#include <string.h>

#include "bench/sink_fault.h"

static int parse(struct sink_faults *faults, enum sink_fault_stage stage,
                 const char *spec, char *error)
{
    return sink_fault_parse_rule(faults, stage, spec, error, 256);
}

Test(sink_fault, parses_code_text_probability)
{
    struct sink_faults faults = {0};
    char error[256] = "";
    const struct sink_fault_rule *rule;

    cr_assert_eq(parse(&faults, SINK_STAGE_RCPT, "451 4.3.0 try later:0.1",
                       error), 0, "%s", error);
    cr_assert_eq(faults.stages[SINK_STAGE_RCPT].count, 1);
    rule = &faults.stages[SINK_STAGE_RCPT].rules[0];
    cr_assert_eq(rule->code, 451);
    cr_assert_str_eq(rule->reply, "451 4.3.0 try later");
    cr_assert_float_eq(rule->probability, 0.1, 1e-12);
}

Test(sink_fault, text_may_contain_colons)
{
    struct sink_faults faults = {0};
    char error[256] = "";

    cr_assert_eq(parse(&faults, SINK_STAGE_MAIL,
                       "550 5.7.1 policy: no thanks:1", error), 0, "%s",
                 error);
    cr_assert_str_eq(faults.stages[SINK_STAGE_MAIL].rules[0].reply,
                     "550 5.7.1 policy: no thanks");
    cr_assert_float_eq(faults.stages[SINK_STAGE_MAIL].rules[0].probability,
                       1.0, 1e-12);
}

Test(sink_fault, bare_code_is_accepted)
{
    struct sink_faults faults = {0};
    char error[256] = "";

    cr_assert_eq(parse(&faults, SINK_STAGE_CONNECT, "421:0.5", error), 0,
                 "%s", error);
    cr_assert_str_eq(faults.stages[SINK_STAGE_CONNECT].rules[0].reply,
                     "421");
    cr_assert_eq(faults.stages[SINK_STAGE_CONNECT].rules[0].code, 421);
}

Test(sink_fault, probabilities_add_up_to_one)
{
    struct sink_faults faults = {0};
    char error[256] = "";

    cr_assert_eq(parse(&faults, SINK_STAGE_DATA, "451 a:0.7", error), 0);
    cr_assert_eq(parse(&faults, SINK_STAGE_DATA, "554 b:0.3", error), 0,
                 "%s", error);
    cr_assert_neq(parse(&faults, SINK_STAGE_DATA, "452 c:0.01", error), 0);
    cr_assert(strstr(error, "add up to more than 1") != NULL, "%s", error);
    cr_assert_eq(faults.stages[SINK_STAGE_DATA].count, 2);

    /* Another stage has its own budget. */
    cr_assert_eq(parse(&faults, SINK_STAGE_RCPT, "452 c:1", error), 0);
}

Test(sink_fault, bad_specs_are_rejected)
{
    static const struct {
        const char *spec;
        const char *reason;
    } cases[] = {
        {"451 4.3.0 try later", "missing \":PROB\""},
        {"199 too low:0.1", "code from 200 to 599"},
        {"600 too high:0.1", "code from 200 to 599"},
        {"45 short:0.1", "code from 200 to 599"},
        {"abc text:0.1", "code from 200 to 599"},
        {"4510 text:0.1", "followed by a space"},
        {"451 text:", "invalid probability"},
        {"451 text:1.5", "invalid probability"},
        {"451 text:-0.1", "invalid probability"},
        {"451 text:nan", "invalid probability"},
        {"451 text:inf", "invalid probability"},
        {"451 text:0x1", "invalid probability"},
        {"451 text:0.1x", "invalid probability"},
        {"451 text: 0.1", "invalid probability"},
        {"451 tab\there:0.1", "printable ASCII"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sink_faults faults = {0};
        char error[256] = "";

        cr_expect_eq(parse(&faults, SINK_STAGE_RCPT, cases[i].spec, error),
                     -1, "spec '%s' was accepted", cases[i].spec);
        cr_expect(strstr(error, cases[i].reason) != NULL,
                  "spec '%s': error \"%s\" lacks \"%s\"", cases[i].spec,
                  error, cases[i].reason);
        cr_expect_eq(faults.stages[SINK_STAGE_RCPT].count, 0);
    }
}

Test(sink_fault, long_reply_is_rejected)
{
    struct sink_faults faults = {0};
    char spec[SMTP_REPLY_MAX + 16];
    char error[256] = "";

    memset(spec, 'x', sizeof(spec));
    memcpy(spec, "451 ", 4);
    memcpy(spec + sizeof(spec) - 5, ":0.1", 5);
    cr_assert_eq(parse(&faults, SINK_STAGE_RCPT, spec, error), -1);
    cr_assert(strstr(error, "longer than") != NULL, "%s", error);
}

Test(sink_fault, too_many_rules_are_rejected)
{
    struct sink_faults faults = {0};
    char error[256] = "";

    for (int i = 0; i < SINK_FAULT_RULES_MAX; i++) {
        cr_assert_eq(parse(&faults, SINK_STAGE_MAIL, "451 x:0.01", error),
                     0, "%s", error);
    }
    cr_assert_eq(parse(&faults, SINK_STAGE_MAIL, "451 x:0.01", error), -1);
    cr_assert(strstr(error, "more than") != NULL, "%s", error);
}

Test(sink_fault, probability_parser_edges)
{
    double value = -1;

    cr_assert_eq(sink_fault_parse_probability("0", &value), 0);
    cr_assert_float_eq(value, 0.0, 1e-12);
    cr_assert_eq(sink_fault_parse_probability("1", &value), 0);
    cr_assert_float_eq(value, 1.0, 1e-12);
    cr_assert_eq(sink_fault_parse_probability(".25", &value), 0);
    cr_assert_float_eq(value, 0.25, 1e-12);
    cr_assert_eq(sink_fault_parse_probability("1e-3", &value), 0);
    cr_assert_float_eq(value, 0.001, 1e-12);
    cr_assert_eq(sink_fault_parse_probability("", &value), -1);
    cr_assert_eq(sink_fault_parse_probability("+0.5", &value), -1);
    cr_assert_eq(sink_fault_parse_probability("1.0000001", &value), -1);
}

/* Over many draws each rule fires at about its probability. */
Test(sink_fault, draws_follow_probabilities)
{
    struct sink_faults faults = {0};
    struct sink_fault_random random;
    char error[256] = "";
    const int draws = 100000;
    int hits[3] = {0};

    cr_assert_eq(parse(&faults, SINK_STAGE_RCPT, "451 a:0.1", error), 0);
    cr_assert_eq(parse(&faults, SINK_STAGE_RCPT, "550 b:0.3", error), 0);
    sink_fault_random_init(&random, 42, 0);
    for (int i = 0; i < draws; i++) {
        const struct sink_fault_rule *rule =
            sink_fault_draw(&faults, SINK_STAGE_RCPT, &random);

        if (rule == NULL) {
            hits[2]++;
        } else if (rule->code == 451) {
            hits[0]++;
        } else {
            hits[1]++;
        }
    }
    cr_assert_eq(faults.stages[SINK_STAGE_RCPT].rules[0].fired,
                 (uint64_t)hits[0]);
    cr_assert_eq(faults.stages[SINK_STAGE_RCPT].rules[1].fired,
                 (uint64_t)hits[1]);
    cr_assert(hits[0] > 9500 && hits[0] < 10500, "451: %d", hits[0]);
    cr_assert(hits[1] > 29000 && hits[1] < 31000, "550: %d", hits[1]);
    cr_assert(hits[2] > 59000 && hits[2] < 61000, "none: %d", hits[2]);
}

Test(sink_fault, same_seed_same_draws)
{
    struct sink_fault_random a;
    struct sink_fault_random b;
    struct sink_fault_random other;
    int differ = 0;

    sink_fault_random_init(&a, 7, 3);
    sink_fault_random_init(&b, 7, 3);
    sink_fault_random_init(&other, 7, 4);
    for (int i = 0; i < 1000; i++) {
        double x = sink_fault_random_next(&a);

        cr_assert_eq(x, sink_fault_random_next(&b));
        cr_assert(x >= 0 && x < 1);
        differ += x != sink_fault_random_next(&other);
    }
    cr_assert_gt(differ, 990, "sessions 3 and 4 share draws");
}

Test(sink_fault, stage_without_rules_does_not_draw)
{
    struct sink_faults faults = {0};
    struct sink_fault_random random;
    struct sink_fault_random untouched;

    sink_fault_random_init(&random, 1, 0);
    untouched = random;
    cr_assert_null(sink_fault_draw(&faults, SINK_STAGE_MAIL, &random));
    cr_assert_eq(random.state, untouched.state);
    cr_assert_not(sink_fault_chance(&random, 0));
    cr_assert_eq(random.state, untouched.state);
    cr_assert(sink_fault_chance(&random, 1));
}
