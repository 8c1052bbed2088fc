/* The sink's final reports: the summary on stdout and the --json file.
 * Both give the same numbers. */
#include "bench/sink_report.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "bench/bench_json.h"
#include "bench/bench_stats.h"
#include "bench/sink_store.h"

static double summary_ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static double summary_elapsed(const struct sink_report *report,
                              const struct sink_server *server)
{
    return (double)(reactor_now_ms(server->reactor) - report->start_ms)
           / 1000.0;
}

static void summary_print_rate(const struct sink_server *server,
                               FILE *out)
{
    double rate;

    if (sink_report_rate(server, &rate)) {
        fprintf(out, "  messages/s:         %.0f (from first to last "
                "message)\n", rate);
    } else {
        fprintf(out, "  messages/s:         n/a (fewer than 2 messages, or "
                "less than %u ms from first to last)\n",
                SINK_REPORT_RATE_MIN_NS / 1000000u);
    }
}

/* The rate, or NaN (written as null) where the summary prints n/a. */
static double summary_rate(const struct sink_server *server)
{
    double rate;

    return sink_report_rate(server, &rate) ? rate : NAN;
}

static void summary_print_faults(const struct sink_faults *faults,
                                 FILE *out)
{
    for (int stage = 0; stage < SINK_STAGE_COUNT; stage++) {
        const struct sink_fault_stage_rules *rules = &faults->stages[stage];
        const char *name = sink_fault_stage_name(stage);

        for (size_t i = 0; i < rules->count; i++) {
            const struct sink_fault_rule *rule = &rules->rules[i];

            fprintf(out, "  %s reply \"%s\" (p=%g): %" PRIu64 "\n", name,
                    rule->reply, rule->probability, rule->fired);
        }
        if (rules->delay_ms != 0) {
            fprintf(out, "  %s delay %" PRIu64 " ms: %" PRIu64
                    " replies\n", name, rules->delay_ms, rules->delayed);
        }
    }
    if (faults->disconnect_in_data > 0) {
        fprintf(out, "  disconnects in DATA (p=%g): %" PRIu64 "\n",
                faults->disconnect_in_data, faults->disconnects);
    }
    if (faults->max_connections != 0) {
        fprintf(out, "  over --max-connections %" PRIu64 ": %" PRIu64 "\n",
                faults->max_connections, faults->over_limit);
    }
}

void sink_report_print_summary(const struct sink_report *report,
                               const struct sink_server *server, FILE *out)
{
    const struct bench_histogram *latency = &server->latency;
    const struct sink_track *track = &server->track;

    fprintf(out, "sink summary\n");
    fprintf(out, "  messages accepted:  %" PRIu64 "\n", server->messages);
    fprintf(out, "  body bytes:         %" PRIu64 "\n", server->bytes);
    fprintf(out, "  recipients:         %" PRIu64 "\n", server->rcpts);
    fprintf(out, "  sessions:           %" PRIu64 "\n",
            server->sessions_total);
    fprintf(out, "  bodies aborted:     %" PRIu64 "\n", server->aborted);
    fprintf(out, "  bodies rejected:    %" PRIu64 " (by --data-reply)\n",
            server->rejected);
    fprintf(out, "  store failures:     %" PRIu64 "\n",
            server->store_failures);
    fprintf(out, "  TLS sessions:       %" PRIu64 " (%" PRIu64 " failed, %"
            PRIu64 " refused by --tls-fail); messages over TLS: %" PRIu64
            "\n", server->tls_sessions, server->tls_failures,
            server->tls_refused, server->messages_tls);
    fprintf(out, "  elapsed:            %.3f s\n",
            summary_elapsed(report, server));
    summary_print_rate(server, out);
    fprintf(out, "  without blast headers: %" PRIu64 " (%" PRIu64
            " with invalid ones)\n", server->untracked,
            server->bad_headers);
    if (latency->count == 0) {
        fprintf(out, "  latency ms:         n/a (0 messages)\n");
    } else {
        fprintf(out, "  latency ms:         p50 %.3f  p90 %.3f  p99 %.3f  "
                "p99.9 %.3f  max %.3f (%" PRIu64 " messages)\n",
                summary_ms(bench_histogram_percentile(latency, 50)),
                summary_ms(bench_histogram_percentile(latency, 90)),
                summary_ms(bench_histogram_percentile(latency, 99)),
                summary_ms(bench_histogram_percentile(latency, 99.9)),
                summary_ms(latency->max_ns), latency->count);
    }
    fprintf(out, "  lost:               %" PRIu64 "\n",
            sink_track_lost(track));
    fprintf(out, "  duplicates:         %" PRIu64 "\n", track->duplicates);
    fprintf(out, "  outside seq range:  %" PRIu64 "\n", track->unexpected);
    if (server->track_failures != 0) {
        fprintf(out, "  not tracked (out of memory): %" PRIu64 "\n",
                server->track_failures);
    }
    fprintf(out, "  fault seed:         %" PRIu64 "\n", server->faults.seed);
    summary_print_faults(&server->faults, out);
    if (server->store != NULL) {
        fprintf(out, "  stored in:          %s\n",
                sink_store_dir(server->store));
    }
    fflush(out);
}

/* A percentile of latency in milliseconds; NAN, written as null, when
 * latency has no value. */
static double summary_percentile_ms(const struct bench_histogram *latency,
                                    double percentile)
{
    if (latency->count == 0) {
        return NAN;
    }
    return summary_ms(bench_histogram_percentile(latency, percentile));
}

static void summary_json_latency(struct bench_json *json,
                                 const struct bench_histogram *latency)
{
    bench_json_key(json, "latency_ms");
    bench_json_object_begin(json);
    bench_json_key_u64(json, "count", latency->count);
    bench_json_key_double(json, "p50", summary_percentile_ms(latency, 50));
    bench_json_key_double(json, "p90", summary_percentile_ms(latency, 90));
    bench_json_key_double(json, "p99", summary_percentile_ms(latency, 99));
    bench_json_key_double(json, "p999",
                          summary_percentile_ms(latency, 99.9));
    bench_json_key_double(json, "max",
                          latency->count == 0
                              ? NAN
                              : summary_ms(latency->max_ns));
    bench_json_object_end(json);
}

static void summary_json_stage(struct bench_json *json,
                               const struct sink_fault_stage_rules *rules)
{
    bench_json_object_begin(json);
    bench_json_key_u64(json, "delay_ms", rules->delay_ms);
    bench_json_key_u64(json, "delayed", rules->delayed);
    bench_json_key(json, "replies");
    bench_json_array_begin(json);
    for (size_t i = 0; i < rules->count; i++) {
        const struct sink_fault_rule *rule = &rules->rules[i];

        bench_json_object_begin(json);
        bench_json_key_string(json, "reply", rule->reply);
        bench_json_key_u64(json, "code", (uint64_t)rule->code);
        bench_json_key_double(json, "probability", rule->probability);
        bench_json_key_u64(json, "count", rule->fired);
        bench_json_object_end(json);
    }
    bench_json_array_end(json);
    bench_json_object_end(json);
}

static void summary_json_faults(struct bench_json *json,
                                const struct sink_faults *faults)
{
    bench_json_key(json, "faults");
    bench_json_object_begin(json);
    bench_json_key_u64(json, "seed", faults->seed);
    for (int stage = 0; stage < SINK_STAGE_COUNT; stage++) {
        bench_json_key(json, sink_fault_stage_name(stage));
        summary_json_stage(json, &faults->stages[stage]);
    }
    bench_json_key_double(json, "disconnect_in_data_probability",
                          faults->disconnect_in_data);
    bench_json_key_u64(json, "disconnects_in_data", faults->disconnects);
    bench_json_key_u64(json, "max_connections", faults->max_connections);
    bench_json_key_u64(json, "over_max_connections", faults->over_limit);
    bench_json_object_end(json);
}

static void summary_json_series(struct bench_json *json,
                                const struct sink_report *report)
{
    bench_json_key(json, "series");
    bench_json_array_begin(json);
    for (size_t i = 0; i < report->series_len; i++) {
        const struct sink_report_point *point = &report->series[i];

        bench_json_object_begin(json);
        bench_json_key_double(json, "t", point->t);
        bench_json_key_u64(json, "messages", point->messages);
        bench_json_key_double(json, "rate", point->rate);
        bench_json_key_double(json, "latency_p99_ms",
                              point->latency_p99_ms);
        bench_json_object_end(json);
    }
    bench_json_array_end(json);
    bench_json_key(json, "series_truncated");
    bench_json_bool(json, report->series_full);
}

static void summary_json(struct bench_json *json,
                         const struct sink_report *report,
                         const struct sink_server *server)
{
    const struct sink_track *track = &server->track;

    bench_json_object_begin(json);
    bench_json_key_string(json, "tool", "ringrelay-bench sink");
    bench_json_key_double(json, "elapsed_s",
                          summary_elapsed(report, server));
    bench_json_key_u64(json, "messages", server->messages);
    bench_json_key_u64(json, "bytes", server->bytes);
    bench_json_key_u64(json, "rcpts", server->rcpts);
    bench_json_key_double(json, "msgs_per_s", summary_rate(server));
    bench_json_key_u64(json, "sessions_total", server->sessions_total);
    bench_json_key_u64(json, "sessions_peak", server->sessions_peak);
    bench_json_key_u64(json, "command_reads", server->command_reads);
    bench_json_key_u64(json, "pipelined_reads", server->pipelined_reads);
    bench_json_key_u64(json, "bodies_aborted", server->aborted);
    bench_json_key_u64(json, "bodies_rejected", server->rejected);
    bench_json_key_u64(json, "store_failures", server->store_failures);
    bench_json_key_u64(json, "tls_sessions", server->tls_sessions);
    bench_json_key_u64(json, "tls_failures", server->tls_failures);
    bench_json_key_u64(json, "tls_refused", server->tls_refused);
    bench_json_key_u64(json, "messages_tls", server->messages_tls);
    bench_json_key_u64(json, "first_message_wall_us",
                       server->first_message_wall_us);
    bench_json_key_u64(json, "last_message_wall_us",
                       server->last_message_wall_us);
    bench_json_key_u64(json, "untracked", server->untracked);
    bench_json_key_u64(json, "bad_headers", server->bad_headers);
    bench_json_key_u64(json, "track_failures", server->track_failures);
    bench_json_key_u64(json, "expect", track->expect);
    bench_json_key_u64(json, "lost", sink_track_lost(track));
    bench_json_key_u64(json, "duplicates", track->duplicates);
    bench_json_key_u64(json, "copies", track->pairs_seen);
    bench_json_key_u64(json, "outside_seq_range", track->unexpected);
    summary_json_latency(json, &server->latency);
    summary_json_faults(json, &server->faults);
    summary_json_series(json, report);
    bench_json_object_end(json);
}

int sink_report_write_json(const struct sink_report *report,
                           const struct sink_server *server)
{
    struct bench_json json;
    FILE *out = fopen(report->json_path, "w");
    bool failed;

    if (out == NULL) {
        fprintf(stderr, "sink: opening --json %s failed: %s\n",
                report->json_path, strerror(errno));
        return -1;
    }
    bench_json_init(&json, out);
    summary_json(&json, report, server);
    fputc('\n', out);
    failed = ferror(out) != 0;
    if (fclose(out) != 0 || failed) {
        fprintf(stderr, "sink: writing --json %s failed: %s\n",
                report->json_path, strerror(errno != 0 ? errno : EIO));
        return -1;
    }
    return 0;
}
