/* Accounting of each accepted message: counters, delivery latency from
 * X-Blast-Sent, and loss and duplicates by X-Blast-Seq. */
#ifndef RINGRELAY_BENCH_SINK_ACCOUNT_H
#define RINGRELAY_BENCH_SINK_ACCOUNT_H

#include <stddef.h>
#include <stdint.h>

#include "bench/sink_headers.h"
#include "bench/sink_session.h"

/* sink_account_message records one message accepted with 2xx: bytes of
 * body in wire form, its blast headers, the ids of its envelope
 * recipients from sink_track_rcpt_id (reordered here) and received_us,
 * the wall clock when its final dot arrived. */
void sink_account_message(struct sink_server *server,
                          const struct sink_headers *headers,
                          uint64_t *rcpt_ids, size_t rcpt_count,
                          uint64_t bytes, uint64_t received_us);

#endif
