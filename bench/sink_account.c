#include "bench/sink_account.h"

#include <stdio.h>

#include "bench/bench_stats.h"

static void account_blast(struct sink_server *server,
                          const struct sink_headers *headers,
                          uint64_t *rcpt_ids, size_t rcpt_count,
                          uint64_t received_us)
{
    uint64_t latency_ns = 0;

    /* Clocks of sender and sink may disagree by a little; a message
     * that seems to arrive before it was sent counts as latency 0. */
    if (received_us > headers->sent_us) {
        latency_ns = (received_us - headers->sent_us) * 1000u;
    }
    bench_histogram_record(&server->latency, latency_ns);
    bench_histogram_record(&server->latency_tick, latency_ns);

    sink_track_number_ids(rcpt_ids, rcpt_count);
    if (sink_track_deliver(&server->track, headers->seq, headers->rcpts,
                           rcpt_ids, rcpt_count) < 0) {
        if (server->track_failures == 0) {
            fprintf(stderr, "sink: out of memory for the loss and "
                    "duplicate accounting; those counts are incomplete\n");
        }
        server->track_failures++;
    }
}

void sink_account_message(struct sink_server *server,
                          const struct sink_headers *headers,
                          uint64_t *rcpt_ids, size_t rcpt_count,
                          uint64_t bytes, uint64_t received_us)
{
    server->last_message_ns = bench_monotonic_ns();
    server->last_message_wall_us = received_us;
    if (server->messages == 0) {
        server->first_message_ns = server->last_message_ns;
        server->first_message_wall_us = received_us;
    }
    server->messages++;
    server->bytes += bytes;
    server->rcpts += rcpt_count;

    switch (sink_headers_status(headers)) {
    case SINK_HEADERS_OK:
        account_blast(server, headers, rcpt_ids, rcpt_count, received_us);
        break;
    case SINK_HEADERS_BAD:
        server->bad_headers++;
        server->untracked++;
        break;
    case SINK_HEADERS_NONE:
        server->untracked++;
        break;
    }
}
