/* The logs of the children of `ringrelay-bench run`: the end of a log
 * for a child that failed, the last line as a reason, and blast's
 * stderr, copied to ours while it grows. */
#ifndef RINGRELAY_BENCH_RUN_LOG_H
#define RINGRELAY_BENCH_RUN_LOG_H

#include <stddef.h>

/* run_log_show_tail prints the last 2 KiB of the log at path to stderr,
 * under a line that names the child; nothing when it cannot be opened. */
void run_log_show_tail(const char *name, const char *path);

/* run_log_forward copies what was appended to the log open at fd since
 * the last call to stderr; path is for messages. Returns -1 after
 * printing a read error, else 0. */
int run_log_forward(int fd, const char *path);

/* run_log_last_line stores the last non-empty line of the file at path,
 * without its line end, in line; "" when there is none. */
void run_log_last_line(const char *path, char *line, size_t size);

/* run_log_last_error stores in line the last line of blast's log at
 * path that is not a progress line, without its line end. Progress lines
 * contain " elapsed=". line is "" when no such line exists. */
void run_log_last_error(const char *path, char *line, size_t size);

#endif
