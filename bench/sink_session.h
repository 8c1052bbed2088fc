/* One inbound SMTP connection of the sink: the protocol session from
 * proto/smtp_server.h driven by reactor operations, with hooks that accept
 * every sender and recipient, count messages and optionally store them. */
#ifndef RINGRELAY_BENCH_SINK_SESSION_H
#define RINGRELAY_BENCH_SINK_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "bench/bench_histogram.h"
#include "bench/sink_fault.h"
#include "bench/sink_track.h"
#include "core/reactor.h"
#include "proto/smtp_server.h"

struct sink_session;
struct sink_store;
struct tls_context;

/* sink_server: what all sessions of one sink share. */
struct sink_server {
    struct reactor *reactor;
    struct sink_store *store;  /* NULL: count messages, keep nothing */
    struct tls_context *tls;   /* NULL: STARTTLS not offered */
    bool tls_fail;             /* offer STARTTLS but answer it 454 */
    struct smtp_server_options smtp_options;
    uint64_t idle_timeout_ms;
    struct sink_session *sessions; /* open sessions, for cleanup */
    struct sink_faults faults;
    struct sink_track track;   /* loss and duplicates by X-Blast-Seq */
    struct bench_histogram latency;      /* delivery latency, whole run */
    struct bench_histogram latency_tick; /* since the last report tick */

    /* Counters since start. */
    uint64_t messages;         /* accepted with 2xx */
    uint64_t bytes;            /* body bytes of those, in wire form */
    uint64_t rcpts;            /* envelope recipients of those */
    uint64_t untracked;        /* of those, without blast headers */
    uint64_t bad_headers;      /* of those, with invalid blast headers */
    uint64_t track_failures;   /* of those, not tracked for lack of memory */
    uint64_t rejected;         /* bodies rejected by a --data-reply */
    uint64_t aborted;          /* bodies dropped: rejected or cut off */
    uint64_t store_failures;   /* bodies answered 451 by the store */
    uint64_t sessions_total;
    uint64_t tls_sessions;     /* STARTTLS handshakes completed */
    uint64_t tls_failures;     /* handshakes or TLS records that failed */
    uint64_t tls_refused;      /* STARTTLS answered 454 by --tls-fail */
    uint64_t messages_tls;     /* of messages, received over TLS */
    uint64_t sessions_open;
    uint64_t sessions_peak;    /* most sessions open at once */
    uint64_t command_reads;    /* reads outside message data */
    uint64_t pipelined_reads;  /* of those, with two or more command
                                * lines: a pipelined batch (RFC 2920) */
    uint64_t first_message_ns; /* CLOCK_MONOTONIC of the first 2xx, or 0 */
    uint64_t last_message_ns;  /* CLOCK_MONOTONIC of the latest 2xx */
    uint64_t first_message_wall_us; /* wall clock of the first, or 0 */
    uint64_t last_message_wall_us;
};

/* sink_session_start takes over connected descriptor fd, sends the
 * greeting and serves the session until it ends; the session then frees
 * itself. On failure fd is closed and -errno returned. */
int sink_session_start(struct sink_server *server, int fd);

/* sink_session_free_all frees the sessions still open. Call it only after
 * reactor_free(), because it abandons their operations without waiting. */
void sink_session_free_all(struct sink_server *server);

#endif
