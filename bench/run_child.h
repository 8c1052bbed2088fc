/* Child processes of `ringrelay-bench run`: start, wait with a deadline,
 * stop by PID. Every child is started with PR_SET_PDEATHSIG, so it gets
 * SIGTERM if the run process dies without stopping it. */
#ifndef RINGRELAY_BENCH_RUN_CHILD_H
#define RINGRELAY_BENCH_RUN_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

/* run_child: one started process. pid is 0 before the start and after
 * the child was reaped. */
struct run_child {
    const char *name;     /* for messages: "sink", "relay", "blast" */
    pid_t pid;
    int status;           /* wait status once reaped */
    struct rusage usage;  /* resources of the child once reaped */
};

/* run_child_start runs argv[0] (a path, not searched in PATH) with argv.
 * Standard input is /dev/null. Standard output goes to stdout_path and
 * standard error to stderr_path, each created or truncated, or inherited
 * when the path is NULL. Equal paths share one file. Returns 0, or -1
 * after printing why to stderr. */
int run_child_start(struct run_child *child, const char *name,
                    char *const argv[], const char *stdout_path,
                    const char *stderr_path);

/* run_child_wait reaps the child if it exits before deadline_ns
 * (CLOCK_MONOTONIC) or before *interrupted becomes nonzero. Returns 1
 * when reaped, 0 on the deadline or interruption, -1 on a wait error
 * (printed). A child that is not running counts as reaped. */
int run_child_wait(struct run_child *child, uint64_t deadline_ns,
                   const volatile int *interrupted);

/* run_child_poll reaps the child if it has exited, without waiting.
 * Returns 1 when it is reaped (now or before), 0 while it runs, -1 on a
 * wait error (printed). */
int run_child_poll(struct run_child *child);

/* run_child_stop sends SIGTERM, waits up to grace_ms, then sends SIGKILL
 * and reaps the child. Returns 0 when reaped, -1 on an error (printed). */
int run_child_stop(struct run_child *child, unsigned grace_ms);

/* run_child_exited_ok tells whether a reaped child exited with status 0. */
bool run_child_exited_ok(const struct run_child *child);

/* run_child_cpu_seconds returns user plus system CPU time of a reaped
 * child. */
double run_child_cpu_seconds(const struct run_child *child);

/* run_child_describe_status writes "exit status N" or "killed by SIG"
 * for a reaped child into buf. Returns buf. */
const char *run_child_describe_status(const struct run_child *child,
                                      char *buf, size_t size);

#endif
