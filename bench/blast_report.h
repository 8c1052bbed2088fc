/* Reports of the load generator: the summary for people, JSON for
 * scripts, and the key=value stats file that ringrelay-bench run reads. */
#ifndef RINGRELAY_BENCH_BLAST_REPORT_H
#define RINGRELAY_BENCH_BLAST_REPORT_H

#include <stdio.h>

#include "bench/blast_run.h"

/* blast_report_print writes the summary of a finished run to out. */
void blast_report_print(const struct blast_run *run, FILE *out);

/* blast_report_json writes the summary and the per-second series as one
 * JSON object to path. Returns 0, or -1 after printing why. */
int blast_report_json(const struct blast_run *run, const char *path);

/* blast_report_stats_file writes the totals as key=value lines to path,
 * atomically: into a temporary file in the same directory, renamed over
 * path. The keys, in order: sent accepted rejected failed
 * connection_failures elapsed_s msgs_per_s mb_per_s data_p50_ms
 * data_p90_ms data_p99_ms data_p999_ms data_max_ms first_send_wall_us
 * last_reply_wall_us not_finished connections_opened; with --idle
 * those of blast_idle_report_stats instead. Returns 0, or -1 after
 * printing why. */
int blast_report_stats_file(const struct blast_run *run, const char *path);

#endif
