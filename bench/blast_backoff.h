/* Reconnect policy of the load generator: how long a connection slot
 * waits before it connects again, and when it gives up. */
#ifndef RINGRELAY_BENCH_BLAST_BACKOFF_H
#define RINGRELAY_BENCH_BLAST_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

/* First and maximum wait after a connection that made no progress, in
 * milliseconds. The wait doubles after each such connection. */
#define BLAST_BACKOFF_FIRST_MS 10
#define BLAST_BACKOFF_MAX_MS 1000

/* Connections in a row that made no progress, while no other connection
 * of the run made any either, after which a slot gives up its work. */
#define BLAST_BACKOFF_TRIES_MAX 5

/* blast_backoff: the retry state of one connection slot. */
struct blast_backoff {
    uint64_t wait_ms;      /* wait before the next connect; 0 at first */
    unsigned failures;     /* connections in a row without progress */
};

/* blast_backoff_record updates b after a connection that broke.
 * progress: the connection finished a message (by a reply, or by
 * losing it in flight). run_progress: some other connection of the run
 * finished a message since this one was opened, so the server is up and
 * only busy. Returns the wait in milliseconds before the next connect,
 * or -1 when the slot should give up. */
int64_t blast_backoff_record(struct blast_backoff *b, bool progress,
                             bool run_progress);

#endif
