#include "bench/blast_report.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench_json.h"
#include "bench/bench_stats.h"
#include "bench/blast_idle_report.h"
#include "bench/blast_signal.h"
#include "core/reactor.h"

/* Percentiles reported for every latency, with their names. */
static const struct {
    double percentile;
    const char *text;   /* in the summary's table */
    const char *key;    /* in JSON and the stats file */
} blast_percentiles[] = {
    {50, "p50", "p50_ms"},
    {90, "p90", "p90_ms"},
    {99, "p99", "p99_ms"},
    {99.9, "p99.9", "p999_ms"},
    {100, "max", "max_ms"},
};

#define BLAST_PERCENTILE_COUNT \
    (sizeof(blast_percentiles) / sizeof(blast_percentiles[0]))

static double blast_ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static double blast_elapsed_s(const struct blast_run *run)
{
    return (double)(run->end_ns - run->start_ns) / 1e9;
}

static uint64_t blast_rejected(const struct blast_run *run)
{
    return bench_code_tally_total(&run->results.rejected);
}

/* Messages issued that ended in none of accepted, rejected and failed,
 * and those never issued. */
static uint64_t blast_not_finished(const struct blast_run *run)
{
    const struct blast_results *r = &run->results;
    uint64_t requested = blast_run_requested(run);
    uint64_t finished = r->accepted + blast_rejected(run) + r->failed;

    return requested > finished ? requested - finished : 0;
}

/* Messages the run ended before starting: never handed out (except the
 * given-up ones, which count as failed), or handed out but dropped
 * before their MAIL was sent. They are part of not finished. A
 * closed-loop --duration has none (see blast_run_requested). */
static uint64_t blast_not_started(const struct blast_run *run)
{
    const struct blast_results *r = &run->results;
    uint64_t requested = blast_run_requested(run);
    uint64_t handed = run->issued + r->given_up;

    if (run->total == UINT64_MAX) {
        return 0;
    }
    return (requested > handed ? requested - handed : 0) + r->not_started;
}

/* Microseconds since the epoch of a monotonic time, 0 when unset. */
static uint64_t blast_wall_or_zero(const struct blast_run *run, uint64_t ns)
{
    return ns == 0 ? 0 : blast_run_wall_us(run, ns);
}

static void blast_print_schedule(const struct blast_run *run, FILE *out)
{
    const struct blast_options *o = run->options;

    if (o->duration_s != 0) {
        fprintf(out, "%" PRIu64 " s", o->duration_s);
    } else {
        fprintf(out, "%" PRIu64 " messages", o->messages);
    }
    if (o->body_dir != NULL) {
        fprintf(out, " from %s (%zu files)", o->body_dir,
                run->message.body_count);
    } else {
        fprintf(out, " of about %" PRIu64 " bytes", o->size);
    }
    fprintf(out, " to %s over %u connections", o->server_text,
            run->conn_count);
    if (o->per_connection != 0) {
        fprintf(out, ", %" PRIu64 " per connection", o->per_connection);
    }
    if (run->open_loop) {
        fprintf(out, ", open loop at %" PRIu64 "/s", o->rate);
    } else {
        fputs(", closed loop", out);
    }
    fprintf(out, " (%s backend)\n", reactor_backend_name(run->reactor));
}

/* A histogram without values has no percentiles: they print as "n/a"
 * and go to JSON as null. */
static void blast_print_latency(const char *name,
                                const struct bench_histogram *h, FILE *out)
{
    fprintf(out, "    %-12s", name);
    for (size_t i = 0; i < BLAST_PERCENTILE_COUNT; i++) {
        if (h->count == 0) {
            fprintf(out, " %9s", "n/a");
            continue;
        }
        fprintf(out, " %9.3f",
                blast_ms(bench_histogram_percentile(
                    h, blast_percentiles[i].percentile)));
    }
    fprintf(out, " %9" PRIu64 "\n", h->count);
}

/* The slowest, median and fastest whole second, by accepted messages. */
static void blast_print_seconds(const struct blast_run *run, FILE *out)
{
    double low = 0;
    double high = 0;
    size_t whole = 0;

    for (size_t i = 0; i < run->series_len; i++) {
        double rate = run->series[i].rate;

        /* The last entry is a partial second unless the run ended on a
         * tick; it is left out when shorter than half a second. */
        if (i + 1 == run->series_len && i > 0
            && run->series[i].t - run->series[i - 1].t < 0.5) {
            break;
        }
        if (whole == 0 || rate < low) {
            low = rate;
        }
        if (whole == 0 || rate > high) {
            high = rate;
        }
        whole++;
    }
    if (whole > 1) {
        fprintf(out, "  messages/s per second: lowest %.1f, highest %.1f "
                     "(%zu seconds)\n", low, high, whole);
    }
}

void blast_report_print(const struct blast_run *run, FILE *out)
{
    const struct blast_results *r = &run->results;
    double elapsed = blast_elapsed_s(run);
    uint64_t rejected = blast_rejected(run);
    uint64_t rcpt_total = bench_code_tally_total(&r->rcpt_codes);
    uint64_t rcpt_ok = 0;

    if (run->hold) {
        blast_idle_report_print(run, out);
        return;
    }
    for (int code = 200; code < 300; code++) {
        rcpt_ok += r->rcpt_codes.count[code - BENCH_CODE_MIN];
    }
    fputs("blast: ", out);
    blast_print_schedule(run, out);
    fprintf(out, "  messages sent:        %" PRIu64 "\n", r->sent);
    fprintf(out, "  accepted (2xx):       %" PRIu64 "\n", r->accepted);
    fprintf(out, "  rejected:             %" PRIu64 "\n", rejected);
    bench_code_tally_print(&r->rejected, "    rejected with", out);
    fprintf(out, "  recipients rejected:  %" PRIu64 "\n",
            rcpt_total - rcpt_ok);
    fprintf(out, "  failed (connection):  %" PRIu64 "\n", r->failed);
    if (r->given_up != 0) {
        fprintf(out, "    never sent, the connection gave up: %" PRIu64
                     "\n", r->given_up);
    }
    fprintf(out, "  not finished:         %" PRIu64 "\n",
            blast_not_finished(run));
    if (blast_not_started(run) != 0) {
        fprintf(out, "    not started:        %" PRIu64 "\n",
                blast_not_started(run));
    }
    if (run->interrupted > 0) {
        fprintf(out, "  interrupted by:       %s\n",
                blast_signal_name(run->interrupted));
    }
    fprintf(out, "  connections opened:   %" PRIu64 "\n",
            r->connections_opened);
    fprintf(out, "  connection failures:  %" PRIu64 "\n",
            r->connection_failures);
    if (run->options->starttls) {
        fprintf(out, "  TLS sessions:         %" PRIu64 "\n",
                r->tls_sessions);
    }
    if (r->idle_closed != 0) {
        fprintf(out, "  idle, closed by the server: %" PRIu64 "\n",
                r->idle_closed);
    }
    if (r->closed_after_421 != 0) {
        fprintf(out, "  closed after a 421:   %" PRIu64 "\n",
                r->closed_after_421);
    }
    fprintf(out, "  elapsed:              %.3f s\n", elapsed);
    fprintf(out, "  messages/s:           %.1f\n",
            bench_rate((double)r->accepted, elapsed));
    fprintf(out, "  MB/s:                 %.2f (accepted header and body "
                 "bytes, 1 MB = 10^6 bytes)\n",
            bench_rate((double)r->bytes_accepted, elapsed) / 1e6);
    blast_print_seconds(run, out);
    fprintf(out, "  latency (ms)%s:\n",
            run->open_loop ? ", from each message's due time" : "");
    fprintf(out, "    %-12s", "");
    for (size_t i = 0; i < BLAST_PERCENTILE_COUNT; i++) {
        fprintf(out, " %9s", blast_percentiles[i].text);
    }
    fprintf(out, " %9s\n", "count");
    blast_print_latency("connect", &r->connect, out);
    blast_print_latency("MAIL", &r->mail, out);
    blast_print_latency("RCPT", &r->rcpt, out);
    blast_print_latency("end of data", &r->data, out);
    fputs("  reply codes:\n", out);
    bench_code_tally_print(&r->mail_codes, "    MAIL", out);
    bench_code_tally_print(&r->rcpt_codes, "    RCPT", out);
    bench_code_tally_print(&r->data_codes, "    DATA", out);
    bench_code_tally_print(&r->body_codes, "    end of data", out);
    fflush(out);
}

static void blast_json_latency(struct bench_json *json, const char *key,
                               const struct bench_histogram *h)
{
    bench_json_key(json, key);
    bench_json_object_begin(json);
    bench_json_key_u64(json, "count", h->count);
    for (size_t i = 0; i < BLAST_PERCENTILE_COUNT; i++) {
        double ms = h->count == 0
                    ? NAN
                    : blast_ms(bench_histogram_percentile(
                          h, blast_percentiles[i].percentile));

        bench_json_key_double(json, blast_percentiles[i].key, ms);
    }
    bench_json_object_end(json);
}

static void blast_json_codes(struct bench_json *json, const char *key,
                             const struct bench_code_tally *tally)
{
    char code[8];

    bench_json_key(json, key);
    bench_json_object_begin(json);
    for (int i = 0; i <= BENCH_CODE_MAX - BENCH_CODE_MIN; i++) {
        if (tally->count[i] != 0) {
            snprintf(code, sizeof(code), "%d", i + BENCH_CODE_MIN);
            bench_json_key_u64(json, code, tally->count[i]);
        }
    }
    if (tally->other != 0) {
        bench_json_key_u64(json, "other", tally->other);
    }
    bench_json_object_end(json);
}

static void blast_json_options(struct bench_json *json,
                               const struct blast_run *run)
{
    const struct blast_options *o = run->options;

    bench_json_key(json, "options");
    bench_json_object_begin(json);
    bench_json_key_string(json, "server", o->server_text);
    bench_json_key_u64(json, "connections", o->connections);
    bench_json_key_u64(json, "messages", blast_run_requested(run));
    bench_json_key_u64(json, "duration_s", o->duration_s);
    bench_json_key_u64(json, "per_connection", o->per_connection);
    bench_json_key_u64(json, "rate", o->rate);
    bench_json_key_string(json, "loop", run->open_loop ? "open" : "closed");
    bench_json_key(json, "idle");
    bench_json_bool(json, o->idle);
    if (o->body_dir != NULL) {
        bench_json_key_string(json, "body_dir", o->body_dir);
    } else {
        bench_json_key_u64(json, "size", o->size);
    }
    bench_json_key_u64(json, "rcpts", o->rcpts);
    bench_json_key_u64(json, "domains", o->domains);
    bench_json_key_string(json, "from", o->from);
    bench_json_key_string(json, "to", o->to);
    bench_json_key(json, "pipelining");
    bench_json_bool(json, o->pipelining);
    bench_json_key_u64(json, "timeout_s", o->timeout_s);
    bench_json_object_end(json);
}

static void blast_json_summary(struct bench_json *json,
                               const struct blast_run *run)
{
    const struct blast_results *r = &run->results;
    double elapsed = blast_elapsed_s(run);

    bench_json_key(json, "summary");
    bench_json_object_begin(json);
    bench_json_key_string(json, "backend",
                          reactor_backend_name(run->reactor));
    if (run->hold) {
        blast_idle_report_json(run, json);
        bench_json_object_end(json);
        return;
    }
    bench_json_key_u64(json, "sent", r->sent);
    bench_json_key_u64(json, "accepted", r->accepted);
    bench_json_key_u64(json, "rejected", blast_rejected(run));
    bench_json_key_u64(json, "failed", r->failed);
    bench_json_key_u64(json, "failed_never_sent", r->given_up);
    bench_json_key_u64(json, "not_finished", blast_not_finished(run));
    bench_json_key_u64(json, "not_started", blast_not_started(run));
    bench_json_key_u64(json, "connections_opened", r->connections_opened);
    bench_json_key_u64(json, "connection_failures", r->connection_failures);
    bench_json_key_u64(json, "idle_closed", r->idle_closed);
    bench_json_key_u64(json, "closed_after_421", r->closed_after_421);
    bench_json_key_u64(json, "tls_sessions", r->tls_sessions);
    bench_json_key(json, "timed_out");
    bench_json_bool(json, run->timed_out);
    bench_json_key(json, "interrupted");
    bench_json_bool(json, run->interrupted != 0);
    bench_json_key_double(json, "elapsed_s", elapsed);
    bench_json_key_double(json, "msgs_per_s",
                          bench_rate((double)r->accepted, elapsed));
    bench_json_key_double(
        json, "mb_per_s",
        bench_rate((double)r->bytes_accepted, elapsed) / 1e6);
    bench_json_key_u64(json, "bytes_accepted", r->bytes_accepted);
    bench_json_key_u64(json, "first_send_wall_us",
                       blast_wall_or_zero(run, r->first_start_ns));
    bench_json_key_u64(json, "last_reply_wall_us",
                       blast_wall_or_zero(run, r->last_reply_ns));
    bench_json_object_end(json);
}

/* A percentile of second s in milliseconds, or NAN (null in JSON) when
 * no end of data got its reply in that second. */
static double blast_second_ms(const struct blast_second *s, uint64_t ns)
{
    return s->data_replies == 0 ? NAN : blast_ms(ns);
}

static void blast_json_series(struct bench_json *json,
                              const struct blast_run *run)
{
    bench_json_key(json, "series");
    bench_json_array_begin(json);
    for (size_t i = 0; i < run->series_len; i++) {
        const struct blast_second *s = &run->series[i];

        bench_json_object_begin(json);
        bench_json_key_double(json, "t", s->t);
        bench_json_key_u64(json, "sent", s->sent);
        bench_json_key_u64(json, "accepted", s->accepted);
        bench_json_key_u64(json, "bytes", s->bytes);
        bench_json_key_u64(json, "failed", s->failed);
        bench_json_key_double(json, "rate", s->rate);
        bench_json_key_double(json, "data_p50_ms",
                              blast_second_ms(s, s->data_p50_ns));
        bench_json_key_double(json, "data_p90_ms",
                              blast_second_ms(s, s->data_p90_ns));
        bench_json_key_double(json, "data_p99_ms",
                              blast_second_ms(s, s->data_p99_ns));
        bench_json_key_double(json, "data_p999_ms",
                              blast_second_ms(s, s->data_p999_ns));
        bench_json_object_end(json);
    }
    bench_json_array_end(json);
}

int blast_report_json(const struct blast_run *run, const char *path)
{
    const struct blast_results *r = &run->results;
    struct bench_json json;
    FILE *out = fopen(path, "w");

    if (out == NULL) {
        fprintf(stderr, "blast: cannot write --json \"%s\": %s\n", path,
                strerror(errno));
        return -1;
    }
    bench_json_init(&json, out);
    bench_json_object_begin(&json);
    bench_json_key_string(&json, "tool", "ringrelay-bench blast");
    blast_json_options(&json, run);
    blast_json_summary(&json, run);
    bench_json_key(&json, "latency_ms");
    bench_json_object_begin(&json);
    blast_json_latency(&json, "connect", &r->connect);
    blast_json_latency(&json, "mail", &r->mail);
    blast_json_latency(&json, "rcpt", &r->rcpt);
    blast_json_latency(&json, "data", &r->data);
    bench_json_object_end(&json);
    bench_json_key(&json, "reply_codes");
    bench_json_object_begin(&json);
    blast_json_codes(&json, "mail", &r->mail_codes);
    blast_json_codes(&json, "rcpt", &r->rcpt_codes);
    blast_json_codes(&json, "data", &r->data_codes);
    blast_json_codes(&json, "end_of_data", &r->body_codes);
    blast_json_codes(&json, "rejected", &r->rejected);
    bench_json_object_end(&json);
    blast_json_series(&json, run);
    bench_json_object_end(&json);
    fputc('\n', out);
    if (ferror(out) | (fclose(out) != 0)) {
        fprintf(stderr, "blast: writing --json \"%s\" failed: %s\n", path,
                strerror(errno));
        return -1;
    }
    return 0;
}

/* The stats file's lines of a run that sent messages. */
static void blast_report_stats_lines(const struct blast_run *run, FILE *out)
{
    const struct blast_results *r = &run->results;
    double elapsed = blast_elapsed_s(run);

    fprintf(out, "sent=%" PRIu64 "\n", r->sent);
    fprintf(out, "accepted=%" PRIu64 "\n", r->accepted);
    fprintf(out, "rejected=%" PRIu64 "\n", blast_rejected(run));
    fprintf(out, "failed=%" PRIu64 "\n", r->failed);
    fprintf(out, "connection_failures=%" PRIu64 "\n", r->connection_failures);
    fprintf(out, "elapsed_s=%.3f\n", elapsed);
    fprintf(out, "msgs_per_s=%.1f\n", bench_rate((double)r->accepted,
                                                 elapsed));
    fprintf(out, "mb_per_s=%.3f\n",
            bench_rate((double)r->bytes_accepted, elapsed) / 1e6);
    /* Without a value the keys are left out, because the file has
     * numbers only; ringrelay-bench run then reports n/a. */
    for (size_t i = 0; r->data.count > 0 && i < BLAST_PERCENTILE_COUNT;
         i++) {
        fprintf(out, "data_%s=%.3f\n", blast_percentiles[i].key,
                blast_ms(bench_histogram_percentile(
                    &r->data, blast_percentiles[i].percentile)));
    }
    fprintf(out, "first_send_wall_us=%" PRIu64 "\n",
            blast_wall_or_zero(run, r->first_start_ns));
    fprintf(out, "last_reply_wall_us=%" PRIu64 "\n",
            blast_wall_or_zero(run, r->last_reply_ns));
    /* Keys only go at the end: ringrelay-bench run reads the ones
     * above. */
    fprintf(out, "not_finished=%" PRIu64 "\n", blast_not_finished(run));
    fprintf(out, "connections_opened=%" PRIu64 "\n", r->connections_opened);
    fprintf(out, "accepted_rcpts=%" PRIu64 "\n", r->accepted_rcpts);
}

int blast_report_stats_file(const struct blast_run *run, const char *path)
{
    char temp[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int dir_len = slash == NULL ? 0 : (int)(slash - path + 1);
    FILE *out;
    int fd;

    if (snprintf(temp, sizeof(temp), "%.*s.blast-stats.XXXXXX", dir_len,
                 path) >= (int)sizeof(temp)) {
        fprintf(stderr, "blast: --stats-file \"%s\": path too long\n", path);
        return -1;
    }
    /* mkstemp creates the file for its owner only; the stats are not
     * secret, so others may read them as they could a plain file. */
    fd = mkstemp(temp);
    if (fd < 0 || fchmod(fd, 0644) < 0 || (out = fdopen(fd, "w")) == NULL) {
        fprintf(stderr, "blast: cannot write --stats-file \"%s\": %s\n",
                path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(temp);
        }
        return -1;
    }
    if (run->hold) {
        blast_idle_report_stats(run, out);
    } else {
        blast_report_stats_lines(run, out);
    }
    if (ferror(out) | (fclose(out) != 0)) {
        fprintf(stderr, "blast: writing --stats-file \"%s\" failed: %s\n",
                path, strerror(errno));
        unlink(temp);
        return -1;
    }
    if (rename(temp, path) < 0) {
        fprintf(stderr, "blast: renaming %s to --stats-file \"%s\" failed: "
                        "%s\n", temp, path, strerror(errno));
        unlink(temp);
        return -1;
    }
    return 0;
}
