#include "bench/blast_idle_report.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bench/blast_signal.h"
#include "core/reactor.h"

static double blast_idle_elapsed_s(const struct blast_run *run)
{
    return (double)(run->end_ns - run->start_ns) / 1e9;
}

/* Seconds from the start until every slot was held, or -1 if never. */
static double blast_idle_all_held_s(const struct blast_run *run)
{
    if (run->results.all_held_ns == 0) {
        return -1;
    }
    return (double)(run->results.all_held_ns - run->start_ns) / 1e9;
}

bool blast_idle_succeeded(const struct blast_run *run)
{
    const struct blast_results *r = &run->results;

    return !run->timed_out && r->held_max == run->conn_count
           && r->held_at_end == run->conn_count
           && r->quit_replied == r->held_at_end;
}

uint64_t blast_idle_peak_rss_kib(void)
{
    char line[256];
    uint64_t kib = 0;
    FILE *status = fopen("/proc/self/status", "r");

    if (status == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), status) != NULL) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kib = strtoull(line + 6, NULL, 10);
            break;
        }
    }
    fclose(status);
    return kib;
}

void blast_idle_report_print(const struct blast_run *run, FILE *out)
{
    const struct blast_results *r = &run->results;
    const struct bench_histogram *connect = &r->connect;
    double all_held = blast_idle_all_held_s(run);

    fprintf(out, "blast: %u idle connections to %s for %" PRIu64 " s (%s "
                 "backend)\n",
            run->conn_count, run->options->server_text,
            run->options->duration_s, reactor_backend_name(run->reactor));
    fprintf(out, "  connections opened:   %" PRIu64 "\n",
            r->connections_opened);
    if (run->options->starttls) {
        fprintf(out, "  TLS sessions:         %" PRIu64 "\n",
                r->tls_sessions);
    }
    fprintf(out, "  held at once (max):   %" PRIu64 "\n", r->held_max);
    if (all_held >= 0) {
        fprintf(out, "  all held after:       %.3f s\n", all_held);
    } else {
        fputs("  all held after:       never\n", out);
    }
    fprintf(out, "  held at the end:      %" PRIu64 "\n", r->held_at_end);
    fprintf(out, "  closed with QUIT:     %" PRIu64 "\n", r->quit_replied);
    fprintf(out, "  closed by the server: %" PRIu64 "\n", r->idle_closed);
    fprintf(out, "  connection failures:  %" PRIu64 "\n",
            r->connection_failures);
    if (run->interrupted > 0) {
        fprintf(out, "  ended by:             %s\n",
                blast_signal_name(run->interrupted));
    }
    fprintf(out, "  elapsed:              %.3f s\n", blast_idle_elapsed_s(run));
    fprintf(out, "  peak RSS (VmHWM):     %.1f MiB\n",
            (double)blast_idle_peak_rss_kib() / 1024);
    fprintf(out, "  connect to greeting (ms): p50 %.3f, p99 %.3f, max %.3f "
                 "(%" PRIu64 " connections)\n",
            (double)bench_histogram_percentile(connect, 50) / 1e6,
            (double)bench_histogram_percentile(connect, 99) / 1e6,
            (double)bench_histogram_percentile(connect, 100) / 1e6,
            connect->count);
    fflush(out);
}

void blast_idle_report_json(const struct blast_run *run,
                            struct bench_json *json)
{
    const struct blast_results *r = &run->results;

    bench_json_key_u64(json, "connections_opened", r->connections_opened);
    bench_json_key_u64(json, "tls_sessions", r->tls_sessions);
    bench_json_key_u64(json, "held_max", r->held_max);
    bench_json_key_u64(json, "held_at_end", r->held_at_end);
    bench_json_key_u64(json, "quit_replied", r->quit_replied);
    bench_json_key_u64(json, "idle_closed", r->idle_closed);
    bench_json_key_u64(json, "connection_failures", r->connection_failures);
    bench_json_key_double(json, "all_held_s", blast_idle_all_held_s(run));
    bench_json_key_double(json, "elapsed_s", blast_idle_elapsed_s(run));
    bench_json_key_u64(json, "vmhwm_kib", blast_idle_peak_rss_kib());
    bench_json_key(json, "interrupted");
    bench_json_bool(json, run->interrupted != 0);
}

void blast_idle_report_stats(const struct blast_run *run, FILE *out)
{
    const struct blast_results *r = &run->results;

    fprintf(out, "connections_opened=%" PRIu64 "\n", r->connections_opened);
    fprintf(out, "held_max=%" PRIu64 "\n", r->held_max);
    fprintf(out, "held_at_end=%" PRIu64 "\n", r->held_at_end);
    fprintf(out, "quit_replied=%" PRIu64 "\n", r->quit_replied);
    fprintf(out, "idle_closed=%" PRIu64 "\n", r->idle_closed);
    fprintf(out, "connection_failures=%" PRIu64 "\n",
            r->connection_failures);
    fprintf(out, "all_held_s=%.3f\n", blast_idle_all_held_s(run));
    fprintf(out, "elapsed_s=%.3f\n", blast_idle_elapsed_s(run));
    fprintf(out, "vmhwm_kib=%" PRIu64 "\n", blast_idle_peak_rss_kib());
}
