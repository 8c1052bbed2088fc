/* The report of `ringrelay-bench run`: numbers derived from blast's and
 * the sink's stats files and from the relay process, printed as text and
 * written as JSON. */
#ifndef RINGRELAY_BENCH_RUN_REPORT_H
#define RINGRELAY_BENCH_RUN_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bench/run_stats.h"

/* run_relay_usage: what was measured of a relay that the run started. */
struct run_relay_usage {
    bool measured;        /* false with --target: the relay is not ours */
    double cpu_seconds;   /* user + system, from wait4 */
    uint64_t peak_kib;    /* VmHWM before the stop, else ru_maxrss */
};

/* run_report: one run, in the units its names end with. Latencies are
 * milliseconds and rates are messages per second. */
struct run_report {
    const char *target;          /* HOST:PORT blast sent to */
    double sent;
    double accepted;
    double rejected;
    double failed;
    double connection_failures;
    double blast_elapsed_s;
    double accepted_per_s;
    double accepted_rcpts;       /* recipient copies blast got accepted:
                                  * 2xx RCPTs of accepted messages */
    double transactions;         /* messages (SMTP transactions) the
                                  * sink received, duplicates included */
    double delivered;            /* unique (seq, recipient) copies at the
                                  * sink */
    double delivered_per_s;      /* copies per second, from blast's
                                  * first send to the last message at the
                                  * sink */
    double missing;              /* accepted copies not at the sink */
    double lost;                 /* copies, as the sink counted them */
    double duplicates;           /* copies delivered more than once */
    double latency_ms[5];        /* end to end: p50 p90 p99 p99.9 max;
                                  * NAN when none was measured */
    double data_ms[5];           /* end of DATA to reply, from blast;
                                  * NAN when none was measured */
    bool drained;                /* sink had every accepted message */
    double last_delivery_ms;     /* from blast's last reply to the last
                                  * message at the sink; 0 if earlier */
    struct run_relay_usage relay;
    double relay_cpu_s_per_1000; /* relay CPU seconds per 1,000
                                  * accepted messages; NAN when none */
};

/* Labels of the five latency values, in latency_ms order. */
extern const char *const run_report_percentiles[5];

/* run_report_compute fills the derived fields of report from blast's and
 * the sink's final stats. Absent keys count as 0. */
void run_report_compute(struct run_report *report,
                        const struct run_stats *blast,
                        const struct run_stats *sink);

/* run_report_print writes the report for people to out. */
void run_report_print(const struct run_report *report, FILE *out);

/* run_report_write_json writes the report as one JSON object to path.
 * Returns 0, or -1 after printing why. */
int run_report_write_json(const struct run_report *report,
                          const char *path);

/* run_report_ok tells whether the run is a success: every message sent
 * was accepted and each of its accepted recipients got one copy. */
bool run_report_ok(const struct run_report *report);

/* run_report_failure writes the index-th reason why the run is not a
 * success, as a phrase, into buf. Returns false when there are fewer
 * reasons than index + 1. */
bool run_report_failure(const struct run_report *report, unsigned index,
                        char *buf, size_t size);

/* run_report_print_failures writes "run: failed: REASON" to out for each
 * reason. */
void run_report_print_failures(const struct run_report *report, FILE *out);

#endif
