/* Reports of a blast --idle run, which keeps connections open and sends no
 * messages: what the summary, the JSON report and the stats file contain
 * in place of the message counts. */
#ifndef RINGRELAY_BENCH_BLAST_IDLE_REPORT_H
#define RINGRELAY_BENCH_BLAST_IDLE_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bench/bench_json.h"
#include "bench/blast_run.h"

/* blast_idle_succeeded reports whether every slot was held at once and
 * still held when the run stopped, and every held connection got a
 * reply to its QUIT. */
bool blast_idle_succeeded(const struct blast_run *run);

/* blast_idle_peak_rss_kib reads VmHWM, the peak resident set size of
 * this process, from /proc/self/status. Returns KiB, or 0 when it cannot
 * be read. */
uint64_t blast_idle_peak_rss_kib(void);

/* blast_idle_report_print writes the summary of a finished run to out. */
void blast_idle_report_print(const struct blast_run *run, FILE *out);

/* blast_idle_report_json writes the keys of the "summary" object. */
void blast_idle_report_json(const struct blast_run *run,
                            struct bench_json *json);

/* blast_idle_report_stats writes the stats file's lines: connections
 * opened, held_max, held_at_end, quit_replied, idle_closed,
 * connection_failures, all_held_s (-1 when never), elapsed_s and
 * vmhwm_kib. */
void blast_idle_report_stats(const struct blast_run *run, FILE *out);

#endif
