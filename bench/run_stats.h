/* Reader for the key=value stats files that blast and sink write with
 * --stats-file: one "key=value" pair a line, values decimal numbers.
 *
 * Keys blast writes at exit: sent accepted rejected failed
 * connection_failures elapsed_s msgs_per_s mb_per_s data_p50_ms
 * data_p90_ms data_p99_ms data_p999_ms data_max_ms first_send_wall_us
 * last_reply_wall_us not_finished connections_opened accepted_rcpts.
 *
 * Keys sink writes every second and at exit: messages bytes rcpts lost
 * duplicates copies sessions_total sessions_open sessions_peak
 * command_reads pipelined_reads tls_sessions messages_tls
 * first_message_wall_us last_message_wall_us msgs_per_s latency_p50_ms
 * latency_p90_ms latency_p99_ms latency_p999_ms latency_max_ms. */
#ifndef RINGRELAY_BENCH_RUN_STATS_H
#define RINGRELAY_BENCH_RUN_STATS_H

#include <stdbool.h>
#include <stddef.h>

#define RUN_STATS_MAX_ENTRIES 64
#define RUN_STATS_KEY_MAX 48 /* bytes of a key, terminator included */

struct run_stats_entry {
    char key[RUN_STATS_KEY_MAX];
    double value;
};

/* run_stats: the pairs of one file, in file order. A key that appears
 * twice keeps its last value. */
struct run_stats {
    struct run_stats_entry entries[RUN_STATS_MAX_ENTRIES];
    size_t count;
    unsigned invalid_lines; /* lines skipped as malformed */
};

/* run_stats_parse_text reads pairs from text[0..len). Empty lines are
 * ignored; a line without '=', with an empty or over-long key, or with a
 * value that is not a finite number is counted in invalid_lines and
 * skipped. Pairs past RUN_STATS_MAX_ENTRIES count as invalid too. */
void run_stats_parse_text(const char *text, size_t len,
                          struct run_stats *stats);

/* run_stats_read_file reads and parses the file at path. Returns 0, or
 * -1 with errno set when it cannot be opened or read. */
int run_stats_read_file(const char *path, struct run_stats *stats);

/* run_stats_get stores the value of key in *value. Returns false, and
 * leaves *value unchanged, when the key is absent. */
bool run_stats_get(const struct run_stats *stats, const char *key,
                   double *value);

/* run_stats_value returns the value of key, or fallback when absent. */
double run_stats_value(const struct run_stats *stats, const char *key,
                       double fallback);

#endif
