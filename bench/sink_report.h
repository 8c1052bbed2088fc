/* Reports of the sink: a progress line per second on stderr, the
 * summary on stdout, the --stats-file rewritten every second and the
 * --json file at exit. */
#ifndef RINGRELAY_BENCH_SINK_REPORT_H
#define RINGRELAY_BENCH_SINK_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bench/sink_session.h"

/* Shortest span from the first to the last message over which the sink
 * reports a rate. Over a shorter one the rate mostly reflects when two
 * single messages happened to arrive. */
#define SINK_REPORT_RATE_MIN_NS 10000000u

/* Seconds of the per-second series kept for --json: about 28 hours. */
#define SINK_REPORT_SERIES_MAX 100000

/* sink_report_point: one second of the series. */
struct sink_report_point {
    double t;              /* seconds since the sink started */
    uint64_t messages;     /* accepted during the second */
    double rate;           /* messages per second during it */
    double latency_p99_ms; /* of the deliveries during it; NAN if none */
};

struct sink_report {
    const char *json_path;   /* NULL: no --json */
    const char *stats_path;  /* NULL: no --stats-file */
    uint64_t start_ms;       /* reactor time at start */
    uint64_t tick_ms;        /* reactor time of the last tick */
    uint64_t tick_messages;  /* server->messages at the last tick */
    struct sink_report_point *series;
    size_t series_len;
    size_t series_cap;
    bool series_full;        /* points past SINK_REPORT_SERIES_MAX dropped */
    bool stats_failed;       /* a stats file error was printed */
};

void sink_report_init(struct sink_report *report, const char *json_path,
                      const char *stats_path, uint64_t start_ms);

void sink_report_cleanup(struct sink_report *report);

/* sink_report_tick ends one second: prints the progress line while
 * messages arrive or sessions are open, adds a series point once the
 * first message arrived, rewrites the stats file and restarts
 * server->latency_tick. */
void sink_report_tick(struct sink_report *report,
                      struct sink_server *server);

/* sink_report_finish adds the last, partial second to the series when
 * messages arrived in it. */
void sink_report_finish(struct sink_report *report,
                        const struct sink_server *server);

/* sink_report_write_stats replaces the --stats-file through a temporary
 * file in the same directory. Returns 0 or -1 after printing why. */
int sink_report_write_stats(struct sink_report *report,
                            const struct sink_server *server);

/* sink_report_rate stores in *rate the messages per second from the
 * first to the last accepted message. Returns false, with *rate 0, when
 * fewer than 2 messages arrived or they span less than
 * SINK_REPORT_RATE_MIN_NS. */
bool sink_report_rate(const struct sink_server *server, double *rate);

/* sink_report_print_summary writes the summary for people to out. */
void sink_report_print_summary(const struct sink_report *report,
                               const struct sink_server *server, FILE *out);

/* sink_report_write_json writes the summary and the series to --json.
 * Returns 0 or -1 after printing why. */
int sink_report_write_json(const struct sink_report *report,
                           const struct sink_server *server);

#endif
