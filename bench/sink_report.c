#include "bench/sink_report.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench_stats.h"

/* The percentiles every report gives, and their names in the stats
 * file and the JSON. */
static const struct {
    double percentile;
    const char *name;
} report_percentiles[] = {
    {50, "p50"}, {90, "p90"}, {99, "p99"}, {99.9, "p999"},
};

#define REPORT_PERCENTILES \
    (sizeof(report_percentiles) / sizeof(report_percentiles[0]))

void sink_report_init(struct sink_report *report, const char *json_path,
                      const char *stats_path, uint64_t start_ms)
{
    memset(report, 0, sizeof(*report));
    report->json_path = json_path;
    report->stats_path = stats_path;
    report->start_ms = start_ms;
    report->tick_ms = start_ms;
}

void sink_report_cleanup(struct sink_report *report)
{
    free(report->series);
    report->series = NULL;
}

static double report_ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static double report_percentile_ms(const struct bench_histogram *histogram,
                                   double percentile)
{
    return report_ms(bench_histogram_percentile(histogram, percentile));
}

bool sink_report_rate(const struct sink_server *server, double *rate)
{
    uint64_t span_ns = server->last_message_ns - server->first_message_ns;

    *rate = 0;
    if (server->messages < 2 || span_ns < SINK_REPORT_RATE_MIN_NS) {
        return false;
    }
    *rate = bench_rate((double)server->messages, (double)span_ns / 1e9);
    return true;
}

static void report_add_point(struct sink_report *report,
                             const struct sink_report_point *point)
{
    if (report->series_len == report->series_cap) {
        size_t cap = report->series_cap != 0 ? report->series_cap * 2 : 64;
        struct sink_report_point *grown;

        if (report->series_cap >= SINK_REPORT_SERIES_MAX) {
            report->series_full = true;
            return;
        }
        grown = realloc(report->series, cap * sizeof(*grown));
        if (grown == NULL) {
            report->series_full = true;
            return;
        }
        report->series = grown;
        report->series_cap = cap;
    }
    report->series[report->series_len++] = *point;
}

/* Describe the time since the last tick. */
static void report_point(const struct sink_report *report,
                         const struct sink_server *server,
                         struct sink_report_point *point)
{
    uint64_t now = reactor_now_ms(server->reactor);
    uint64_t delta = server->messages - report->tick_messages;
    double seconds = (double)(now - report->tick_ms) / 1000.0;

    *point = (struct sink_report_point){
        .t = (double)(now - report->start_ms) / 1000.0,
        .messages = delta,
        .rate = bench_rate((double)delta, seconds),
        .latency_p99_ms = server->latency_tick.count == 0
                          ? NAN
                          : report_percentile_ms(&server->latency_tick, 99),
    };
}

void sink_report_finish(struct sink_report *report,
                        const struct sink_server *server)
{
    struct sink_report_point point;

    report_point(report, server, &point);
    if (point.messages > 0) {
        report_add_point(report, &point);
    }
}

void sink_report_tick(struct sink_report *report,
                      struct sink_server *server)
{
    uint64_t now = reactor_now_ms(server->reactor);
    struct sink_report_point point;

    report_point(report, server, &point);
    if (point.messages > 0 || server->sessions_open > 0) {
        char p99[32] = "n/a";

        if (isfinite(point.latency_p99_ms)) {
            snprintf(p99, sizeof(p99), "%.1f ms", point.latency_p99_ms);
        }
        fprintf(stderr,
                "sink: %.0f messages/s, %" PRIu64 " total, p99 %s, "
                "lost %" PRIu64 ", duplicates %" PRIu64 ", %" PRIu64
                " sessions open\n",
                point.rate, server->messages, p99,
                sink_track_lost(&server->track),
                server->track.duplicates, server->sessions_open);
    }
    if (server->messages > 0) {
        report_add_point(report, &point);
    }
    report->tick_messages = server->messages;
    report->tick_ms = now;
    bench_histogram_init(&server->latency_tick);
    if (report->stats_path != NULL) {
        sink_report_write_stats(report, server);
    }
}

static void report_stats_lines(FILE *out, const struct sink_server *server)
{
    const struct bench_histogram *latency = &server->latency;
    double rate;

    fprintf(out, "messages=%" PRIu64 "\n", server->messages);
    fprintf(out, "bytes=%" PRIu64 "\n", server->bytes);
    fprintf(out, "rcpts=%" PRIu64 "\n", server->rcpts);
    fprintf(out, "lost=%" PRIu64 "\n", sink_track_lost(&server->track));
    fprintf(out, "duplicates=%" PRIu64 "\n", server->track.duplicates);
    fprintf(out, "copies=%" PRIu64 "\n", server->track.pairs_seen);
    fprintf(out, "sessions_total=%" PRIu64 "\n", server->sessions_total);
    fprintf(out, "sessions_open=%" PRIu64 "\n", server->sessions_open);
    fprintf(out, "sessions_peak=%" PRIu64 "\n", server->sessions_peak);
    fprintf(out, "command_reads=%" PRIu64 "\n", server->command_reads);
    fprintf(out, "pipelined_reads=%" PRIu64 "\n", server->pipelined_reads);
    fprintf(out, "tls_sessions=%" PRIu64 "\n", server->tls_sessions);
    fprintf(out, "messages_tls=%" PRIu64 "\n", server->messages_tls);
    fprintf(out, "first_message_wall_us=%" PRIu64 "\n",
            server->first_message_wall_us);
    fprintf(out, "last_message_wall_us=%" PRIu64 "\n",
            server->last_message_wall_us);
    /* 0 when the summary prints n/a, because the file has numbers only. */
    (void)sink_report_rate(server, &rate);
    fprintf(out, "msgs_per_s=%.1f\n", rate);
    /* Without a latency the keys are left out, as the file has numbers
     * only; ringrelay-bench run then reports n/a. */
    if (latency->count == 0) {
        return;
    }
    for (size_t i = 0; i < REPORT_PERCENTILES; i++) {
        fprintf(out, "latency_%s_ms=%.3f\n", report_percentiles[i].name,
                report_percentile_ms(latency,
                                     report_percentiles[i].percentile));
    }
    fprintf(out, "latency_max_ms=%.3f\n", report_ms(latency->max_ns));
}

int sink_report_write_stats(struct sink_report *report,
                            const struct sink_server *server)
{
    char tmp[4096];
    const char *step = "open";
    FILE *out;
    int n;

    n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", report->stats_path,
                 (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        goto fail;
    }
    out = fopen(tmp, "w");
    if (out == NULL) {
        goto fail;
    }
    report_stats_lines(out, server);
    step = "write";
    if (ferror(out)) {
        n = errno != 0 ? errno : EIO;
        (void)fclose(out);
        errno = n;
        goto fail_unlink;
    }
    if (fclose(out) != 0) {
        goto fail_unlink;
    }
    step = "rename";
    if (rename(tmp, report->stats_path) < 0) {
        goto fail_unlink;
    }
    report->stats_failed = false;
    return 0;

fail_unlink:
    n = errno;
    unlink(tmp);
    errno = n;
fail:
    /* Printed once until a write succeeds again, since it repeats every
     * second. */
    if (!report->stats_failed) {
        fprintf(stderr, "sink: writing the stats file %s failed: %s: %s\n",
                report->stats_path, step, strerror(errno));
    }
    report->stats_failed = true;
    return -1;
}
