/* Scripted faults of the sink: chosen replies with a probability at each
 * SMTP stage, delays, and cut connections, drawn from a seeded generator
 * so that a run can be repeated. */
#ifndef RINGRELAY_BENCH_SINK_FAULT_H
#define RINGRELAY_BENCH_SINK_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/smtp_server.h"

/* Replies one stage may be given with --*-reply. */
#define SINK_FAULT_RULES_MAX 16

enum sink_fault_stage {
    SINK_STAGE_CONNECT,
    SINK_STAGE_MAIL,
    SINK_STAGE_RCPT,
    SINK_STAGE_DATA,   /* the reply to the end of data */
    SINK_STAGE_COUNT,
};

/* One --*-reply: send reply instead of the normal one with probability. */
struct sink_fault_rule {
    int code;                      /* 200..599 */
    double probability;            /* 0..1 */
    char reply[SMTP_REPLY_MAX];    /* "CODE TEXT", no CRLF */
    uint64_t fired;                /* times it was chosen */
};

struct sink_fault_stage_rules {
    struct sink_fault_rule rules[SINK_FAULT_RULES_MAX];
    size_t count;
    double total;                  /* sum of the probabilities, <= 1 */
    /* NOTE: counted on the reactor's millisecond clock, read once per
     * turn, so a delay may end up to a millisecond or so early. */
    uint64_t delay_ms;             /* before the stage's reply */
    uint64_t delayed;              /* replies that were delayed */
};

struct sink_faults {
    struct sink_fault_stage_rules stages[SINK_STAGE_COUNT];
    double disconnect_in_data;     /* probability per DATA */
    uint64_t disconnects;          /* connections cut in DATA */
    uint64_t max_connections;      /* 0: no limit */
    uint64_t over_limit;           /* connections rejected with 421 */
    uint64_t seed;
};

/* sink_fault_random: the generator of one session, seeded from the
 * sink's seed and the session's number, so a session's draws do not
 * depend on how other sessions interleave. */
struct sink_fault_random {
    uint64_t state;
};

/* sink_fault_stage_name returns "connect", "mail", "rcpt" or "data". */
const char *sink_fault_stage_name(enum sink_fault_stage stage);

/* sink_fault_parse_rule parses spec "CODE TEXT:PROB" (TEXT may be empty
 * and may contain colons; the last colon starts PROB) and adds it to the
 * stage. On a bad spec it writes the reason to error[0..error_len) and
 * returns -1; otherwise 0. */
int sink_fault_parse_rule(struct sink_faults *faults,
                          enum sink_fault_stage stage, const char *spec,
                          char *error, size_t error_len);

/* sink_fault_parse_probability parses a decimal number from 0 to 1.
 * Returns 0, or -1 when text is not one. */
int sink_fault_parse_probability(const char *text, double *out);

void sink_fault_random_init(struct sink_fault_random *random, uint64_t seed,
                            uint64_t session);

/* sink_fault_random_next returns a uniform value in [0, 1). */
double sink_fault_random_next(struct sink_fault_random *random);

/* sink_fault_draw picks the rule for one reply at stage, counting it as
 * fired, or returns NULL for the normal reply. It draws from random only
 * when the stage has rules, so configuring one stage leaves the draws of
 * a run without rules unchanged. */
struct sink_fault_rule *sink_fault_draw(struct sink_faults *faults,
                                        enum sink_fault_stage stage,
                                        struct sink_fault_random *random);

/* sink_fault_chance draws once and returns true with probability. */
bool sink_fault_chance(struct sink_fault_random *random, double probability);

/* sink_fault_any is true when any fault or delay is configured. */
bool sink_fault_any(const struct sink_faults *faults);

#endif
