#include "bench/run_report.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench/bench_json.h"

const char *const run_report_percentiles[5] = {
    "p50", "p90", "p99", "p999", "max",
};

static const char *const run_sink_latency_keys[5] = {
    "latency_p50_ms", "latency_p90_ms", "latency_p99_ms",
    "latency_p999_ms", "latency_max_ms",
};

static const char *const run_blast_data_keys[5] = {
    "data_p50_ms", "data_p90_ms", "data_p99_ms", "data_p999_ms",
    "data_max_ms",
};

void run_report_compute(struct run_report *report,
                        const struct run_stats *blast,
                        const struct run_stats *sink)
{
    double first_send_us = run_stats_value(blast, "first_send_wall_us", 0);
    double last_message_us =
        run_stats_value(sink, "last_message_wall_us", 0);
    double last_reply_us = run_stats_value(blast, "last_reply_wall_us", 0);

    report->sent = run_stats_value(blast, "sent", 0);
    report->accepted = run_stats_value(blast, "accepted", 0);
    report->rejected = run_stats_value(blast, "rejected", 0);
    report->failed = run_stats_value(blast, "failed", 0);
    report->connection_failures =
        run_stats_value(blast, "connection_failures", 0);
    report->blast_elapsed_s = run_stats_value(blast, "elapsed_s", 0);
    report->accepted_per_s = run_stats_value(blast, "msgs_per_s", 0);
    /* Stats files written before these keys existed: one recipient a
     * message, and copies are the messages less the duplicates. */
    report->accepted_rcpts =
        run_stats_value(blast, "accepted_rcpts", report->accepted);
    report->transactions = run_stats_value(sink, "messages", 0);
    report->lost = run_stats_value(sink, "lost", 0);
    report->duplicates = run_stats_value(sink, "duplicates", 0);
    report->delivered =
        run_stats_value(sink, "copies",
                        report->transactions - report->duplicates);
    report->missing = report->accepted_rcpts > report->delivered
                      ? report->accepted_rcpts - report->delivered
                      : 0;
    /* Both timestamps are CLOCK_REALTIME on the same machine, so their
     * difference is the end-to-end time of the whole run. */
    report->delivered_per_s = 0;
    if (first_send_us > 0 && last_message_us > first_send_us) {
        report->delivered_per_s =
            report->delivered / ((last_message_us - first_send_us) / 1e6);
    }
    /* How long deliveries went on after blast had its last reply. A
     * relay may deliver a message before its reply reaches blast, so the
     * difference can be negative, which counts as 0. */
    report->last_delivery_ms = 0;
    if (last_reply_us > 0 && last_message_us > last_reply_us) {
        report->last_delivery_ms = (last_message_us - last_reply_us) / 1e3;
    }
    /* blast and the sink leave the latency keys out when they measured
     * none; NAN then prints as n/a and goes to JSON as null. */
    for (int i = 0; i < 5; i++) {
        report->latency_ms[i] =
            run_stats_value(sink, run_sink_latency_keys[i], NAN);
        report->data_ms[i] =
            run_stats_value(blast, run_blast_data_keys[i], NAN);
    }
    report->relay_cpu_s_per_1000 = NAN;
    if (report->relay.measured && report->accepted > 0) {
        report->relay_cpu_s_per_1000 =
            report->relay.cpu_seconds / (report->accepted / 1000.0);
    }
}

bool run_report_ok(const struct run_report *report)
{
    char reason[128];

    return !run_report_failure(report, 0, reason, sizeof(reason));
}

/* Write the reason of check into buf; false when check passed. */
static bool run_report_check(const struct run_report *report,
                             unsigned check, char *buf, size_t size)
{
    switch (check) {
    case 0:
        return report->sent == 0 && report->rejected == 0
               && report->failed == 0
               && snprintf(buf, size, "blast sent no message") > 0;
    case 1:
        return report->rejected > 0
               && snprintf(buf, size, "blast had %.0f messages rejected",
                           report->rejected) > 0;
    case 2:
        return report->failed > 0
               && snprintf(buf, size, "blast had %.0f messages fail with "
                           "their connection", report->failed) > 0;
    case 3:
        /* Messages that blast did not finish, for example. */
        return report->rejected == 0 && report->failed == 0
               && report->accepted < report->sent
               && snprintf(buf, size, "%.0f of %.0f messages sent were "
                           "not accepted", report->sent - report->accepted,
                           report->sent) > 0;
    case 4:
        return report->missing > 0
               && snprintf(buf, size, "%.0f accepted recipient copies did "
                           "not reach the sink", report->missing) > 0;
    case 5:
        return report->lost > 0
               && snprintf(buf, size, "the sink counted %.0f recipient "
                           "copies lost", report->lost) > 0;
    case 6:
        return report->duplicates > 0
               && snprintf(buf, size, "the sink received %.0f duplicate "
                           "recipient copies", report->duplicates) > 0;
    case 7:
        return !report->drained
               && snprintf(buf, size, "the sink did not get every accepted "
                           "copy within --drain-timeout") > 0;
    }
    return false;
}

#define RUN_REPORT_CHECKS 8

bool run_report_failure(const struct run_report *report, unsigned index,
                        char *buf, size_t size)
{
    unsigned found = 0;

    for (unsigned check = 0; check < RUN_REPORT_CHECKS; check++) {
        if (run_report_check(report, check, buf, size)) {
            if (found == index) {
                return true;
            }
            found++;
        }
    }
    return false;
}

void run_report_print_failures(const struct run_report *report, FILE *out)
{
    char reason[128];

    for (unsigned i = 0; run_report_failure(report, i, reason,
                                            sizeof(reason)); i++) {
        fprintf(out, "run: failed: %s\n", reason);
    }
}

/* Width of the label column of the text report. */
#define RUN_REPORT_LABEL_WIDTH 31

static void run_print_label(FILE *out, const char *label)
{
    fprintf(out, "  %-*s ", RUN_REPORT_LABEL_WIDTH, label);
}

static void run_print_latencies(FILE *out, const char *label,
                                const double values[5])
{
    run_print_label(out, label);
    if (!isfinite(values[0])) {
        fprintf(out, "n/a (none measured)\n");
        return;
    }
    for (int i = 0; i < 5; i++) {
        fprintf(out, "%s%s %.2f", i > 0 ? " " : "",
                run_report_percentiles[i], values[i]);
    }
    fprintf(out, " ms\n");
}

static void run_print_relay(const struct run_report *report, FILE *out)
{
    if (!report->relay.measured) {
        run_print_label(out, "relay CPU and memory:");
        fprintf(out, "not measured (--target)\n");
        return;
    }
    run_print_label(out, "relay CPU s per 1,000:");
    if (isfinite(report->relay_cpu_s_per_1000)) {
        fprintf(out, "%.4f (%.2f s in total)\n",
                report->relay_cpu_s_per_1000, report->relay.cpu_seconds);
    } else {
        fprintf(out, "n/a, no message accepted (%.2f s in total)\n",
                report->relay.cpu_seconds);
    }
    run_print_label(out, "relay peak memory (VmHWM):");
    fprintf(out, "%.1f MiB\n", (double)report->relay.peak_kib / 1024.0);
}

void run_report_print(const struct run_report *report, FILE *out)
{
    fprintf(out, "run report (target %s)\n", report->target);
    run_print_label(out, "sent:");
    fprintf(out, "%.0f messages\n", report->sent);
    run_print_label(out, "accepted:");
    fprintf(out, "%.0f messages (rejected %.0f, failed %.0f, connection "
            "failures %.0f)\n", report->accepted, report->rejected,
            report->failed, report->connection_failures);
    run_print_label(out, "accepted recipients:");
    fprintf(out, "%.0f (the sink is due one copy for each)\n",
            report->accepted_rcpts);
    run_print_label(out, "accepted/s:");
    fprintf(out, "%.0f messages\n", report->accepted_per_s);
    run_print_label(out, "delivered:");
    fprintf(out, "%.0f distinct recipient copies in %.0f "
            "transactions%s\n", report->delivered, report->transactions,
            report->drained ? "" : " (drain timed out)");
    run_print_label(out, "duplicates:");
    fprintf(out, "%.0f recipient copies delivered again\n",
            report->duplicates);
    run_print_label(out, "delivered/s:");
    fprintf(out, "%.0f recipient copies (first send to last "
            "delivery)\n", report->delivered_per_s);
    run_print_label(out, "missing:");
    fprintf(out, "%.0f recipient copies (sink counted lost %.0f)\n",
            report->missing, report->lost);
    run_print_label(out, "last delivery after last reply:");
    fprintf(out, "%.2f ms\n", report->last_delivery_ms);
    run_print_latencies(out, "end-to-end latency:", report->latency_ms);
    run_print_latencies(out, "DATA reply latency:", report->data_ms);
    run_print_relay(report, out);
}

static void run_json_latencies(struct bench_json *json, const char *key,
                               const double values[5])
{
    bench_json_key(json, key);
    bench_json_object_begin(json);
    for (int i = 0; i < 5; i++) {
        bench_json_key_double(json, run_report_percentiles[i], values[i]);
    }
    bench_json_object_end(json);
}

static void run_json_failures(const struct run_report *report,
                              struct bench_json *json)
{
    char reason[128];

    bench_json_key(json, "failures");
    bench_json_array_begin(json);
    for (unsigned i = 0; run_report_failure(report, i, reason,
                                            sizeof(reason)); i++) {
        bench_json_string(json, reason);
    }
    bench_json_array_end(json);
}

static void run_json_body(const struct run_report *report,
                          struct bench_json *json)
{
    bench_json_object_begin(json);
    bench_json_key_string(json, "target", report->target);
    bench_json_key_double(json, "sent", report->sent);
    bench_json_key_double(json, "accepted", report->accepted);
    bench_json_key_double(json, "rejected", report->rejected);
    bench_json_key_double(json, "failed", report->failed);
    bench_json_key_double(json, "connection_failures",
                          report->connection_failures);
    bench_json_key_double(json, "blast_elapsed_s", report->blast_elapsed_s);
    bench_json_key_double(json, "accepted_per_s", report->accepted_per_s);
    bench_json_key_double(json, "accepted_rcpts", report->accepted_rcpts);
    bench_json_key_double(json, "transactions", report->transactions);
    bench_json_key_double(json, "delivered", report->delivered);
    bench_json_key_string(json, "delivered_unit", "recipient copies");
    bench_json_key_double(json, "delivered_per_s",
                          report->delivered_per_s);
    bench_json_key_double(json, "missing", report->missing);
    bench_json_key_double(json, "lost", report->lost);
    bench_json_key_double(json, "duplicates", report->duplicates);
    bench_json_key(json, "drained");
    bench_json_bool(json, report->drained);
    bench_json_key_double(json, "last_delivery_after_reply_ms",
                          report->last_delivery_ms);
    run_json_latencies(json, "latency_ms", report->latency_ms);
    run_json_latencies(json, "data_latency_ms", report->data_ms);
    bench_json_key(json, "relay");
    bench_json_object_begin(json);
    bench_json_key(json, "measured");
    bench_json_bool(json, report->relay.measured);
    if (report->relay.measured) {
        bench_json_key_double(json, "cpu_s", report->relay.cpu_seconds);
        bench_json_key_double(json, "cpu_s_per_1000",
                              report->relay_cpu_s_per_1000);
        bench_json_key_u64(json, "peak_kib", report->relay.peak_kib);
    }
    bench_json_object_end(json);
    bench_json_key(json, "ok");
    bench_json_bool(json, run_report_ok(report));
    run_json_failures(report, json);
    bench_json_object_end(json);
}

int run_report_write_json(const struct run_report *report,
                          const char *path)
{
    struct bench_json json;
    FILE *out = fopen(path, "w");
    int rc = 0;

    if (out == NULL) {
        fprintf(stderr, "run: creating %s failed: %s\n", path,
                strerror(errno));
        return -1;
    }
    bench_json_init(&json, out);
    run_json_body(report, &json);
    if (ferror(out)) {
        rc = -1;
    }
    if (fclose(out) != 0) {
        rc = -1;
    }
    if (rc < 0) {
        fprintf(stderr, "run: writing %s failed: %s\n", path,
                strerror(errno));
    }
    return rc;
}
