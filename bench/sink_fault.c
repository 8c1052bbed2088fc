#include "bench/sink_fault.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tolerance when checking that the probabilities of a stage add up to
 * at most 1, so "0.7" plus "0.3" passes despite rounding. */
#define SINK_FAULT_EPSILON 1e-9

static const char *const sink_fault_stage_names[SINK_STAGE_COUNT] = {
    "connect", "mail", "rcpt", "data",
};

const char *sink_fault_stage_name(enum sink_fault_stage stage)
{
    return sink_fault_stage_names[stage];
}

int sink_fault_parse_probability(const char *text, double *out)
{
    char *end;
    double value;

    /* strtod also takes "nan", "inf", hex and a leading sign or blank;
     * only plain decimals are meant here. */
    if (!((text[0] >= '0' && text[0] <= '9') || text[0] == '.')) {
        return -1;
    }
    errno = 0;
    value = strtod(text, &end);
    if (errno != 0 || *end != '\0' || end == text || !isfinite(value)
        || value < 0 || value > 1 || strchr(text, 'x') != NULL
        || strchr(text, 'X') != NULL) {
        return -1;
    }
    *out = value;
    return 0;
}

/* Check the "CODE[ TEXT]" part of a spec, text[0..len). */
static int fault_check_reply(const char *text, size_t len, int *code,
                             char *error, size_t error_len)
{
    if (len < 3 || text[0] < '2' || text[0] > '5' || text[1] < '0'
        || text[1] > '9' || text[2] < '0' || text[2] > '9') {
        snprintf(error, error_len,
                 "the reply must start with a code from 200 to 599");
        return -1;
    }
    if (len > 3 && text[3] != ' ') {
        snprintf(error, error_len,
                 "the code must be followed by a space and the text");
        return -1;
    }
    if (len >= SMTP_REPLY_MAX) {
        snprintf(error, error_len, "the reply is longer than %d bytes",
                 SMTP_REPLY_MAX - 1);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];

        if (c < 0x20 || c > 0x7e) {
            snprintf(error, error_len,
                     "the reply text must be printable ASCII");
            return -1;
        }
    }
    *code = (text[0] - '0') * 100 + (text[1] - '0') * 10 + (text[2] - '0');
    return 0;
}

int sink_fault_parse_rule(struct sink_faults *faults,
                          enum sink_fault_stage stage, const char *spec,
                          char *error, size_t error_len)
{
    struct sink_fault_stage_rules *rules = &faults->stages[stage];
    const char *colon = strrchr(spec, ':');
    struct sink_fault_rule *rule;
    size_t reply_len;
    double probability;
    int code;

    if (colon == NULL) {
        snprintf(error, error_len,
                 "missing \":PROB\" after the reply, as in "
                 "'451 4.3.0 try later:0.1'");
        return -1;
    }
    reply_len = (size_t)(colon - spec);
    if (fault_check_reply(spec, reply_len, &code, error, error_len) < 0) {
        return -1;
    }
    if (sink_fault_parse_probability(colon + 1, &probability) < 0) {
        snprintf(error, error_len,
                 "invalid probability \"%s\": expected a number from 0 "
                 "to 1", colon + 1);
        return -1;
    }
    if (rules->count == SINK_FAULT_RULES_MAX) {
        snprintf(error, error_len, "more than %d replies for one stage",
                 SINK_FAULT_RULES_MAX);
        return -1;
    }
    if (rules->total + probability > 1 + SINK_FAULT_EPSILON) {
        snprintf(error, error_len,
                 "the probabilities of the %s replies add up to more "
                 "than 1", sink_fault_stage_name(stage));
        return -1;
    }
    rule = &rules->rules[rules->count++];
    *rule = (struct sink_fault_rule){.code = code,
                                     .probability = probability};
    memcpy(rule->reply, spec, reply_len);
    rule->reply[reply_len] = '\0';
    rules->total += probability;
    return 0;
}

/* splitmix64: a small generator whose every seed gives a full-period
 * sequence, with outputs that pass common statistical tests. */
static uint64_t fault_random_u64(struct sink_fault_random *random)
{
    uint64_t z = (random->state += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

void sink_fault_random_init(struct sink_fault_random *random, uint64_t seed,
                            uint64_t session)
{
    random->state = seed;
    random->state = fault_random_u64(random) ^ session;
}

double sink_fault_random_next(struct sink_fault_random *random)
{
    /* The top 53 bits fill a double's mantissa exactly. */
    return (double)(fault_random_u64(random) >> 11) * 0x1.0p-53;
}

bool sink_fault_chance(struct sink_fault_random *random, double probability)
{
    if (probability <= 0) {
        return false;
    }
    return sink_fault_random_next(random) < probability;
}

struct sink_fault_rule *sink_fault_draw(struct sink_faults *faults,
                                        enum sink_fault_stage stage,
                                        struct sink_fault_random *random)
{
    struct sink_fault_stage_rules *rules = &faults->stages[stage];
    double value;
    double edge = 0;

    if (rules->count == 0) {
        return NULL;
    }
    value = sink_fault_random_next(random);
    for (size_t i = 0; i < rules->count; i++) {
        edge += rules->rules[i].probability;
        if (value < edge) {
            rules->rules[i].fired++;
            return &rules->rules[i];
        }
    }
    return NULL;
}

bool sink_fault_any(const struct sink_faults *faults)
{
    for (int i = 0; i < SINK_STAGE_COUNT; i++) {
        if (faults->stages[i].count != 0
            || faults->stages[i].delay_ms != 0) {
            return true;
        }
    }
    return faults->disconnect_in_data > 0 || faults->max_connections != 0;
}
