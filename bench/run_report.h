/* The report of `ringrelay-bench run`: numbers derived from blast's and
 * the sink's stats files and from the relay process, printed as text and
 * written as JSON. */
#ifndef RINGRELAY_BENCH_RUN_REPORT_H
#define RINGRELAY_BENCH_RUN_REPORT_H

#include <stdbool.h>
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
    double delivered;            /* messages the sink received */
    double delivered_per_s;      /* from blast's first send to the last
                                  * message at the sink */
    double missing;              /* accepted but not at the sink */
    double lost;                 /* as the sink counted them */
    double duplicates;           /* as the sink counted them */
    double latency_ms[5];        /* end to end: p50 p90 p99 p99.9 max */
    double data_ms[5];           /* end of DATA to reply, from blast */
    bool drained;                /* sink had every accepted message */
    double last_delivery_ms;     /* from blast's last reply to the last
                                  * message at the sink; 0 if earlier */
    struct run_relay_usage relay;
    double relay_cpu_s_per_1000; /* relay CPU seconds per 1,000
                                  * accepted messages */
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
 * was accepted and reached the sink once. */
bool run_report_ok(const struct run_report *report);

#endif
