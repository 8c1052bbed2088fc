/* The outbound engine's waits for ringrelay-queue list: which queued
 * recipients wait for a destination's circuit breaker, and until when.
 * This state is in memory only, so only a running daemon reports it. */
#ifndef RINGRELAY_CORE_OUTBOUND_WAITS_H
#define RINGRELAY_CORE_OUTBOUND_WAITS_H

#include <stddef.h>

#include "core/queue_report.h"

struct outbound;
struct outbound_waits;

/* outbound_waits_collect takes a snapshot of the jobs that wait for a
 * breaker. Returns NULL with errno set when out of memory. The snapshot
 * is valid until the reactor runs again. */
struct outbound_waits *outbound_waits_collect(struct outbound *outbound);

/* outbound_waits_lookup is the queue_report_wait_fn of a snapshot: arg
 * is the outbound_waits. */
void outbound_waits_lookup(void *arg, const struct queue_msg *msg,
                           size_t index, struct queue_report_wait *wait);

/* outbound_waits_free frees a snapshot; NULL is accepted. */
void outbound_waits_free(struct outbound_waits *waits);

#endif
