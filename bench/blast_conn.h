/* One client connection of the load generator: a closed loop that sends
 * its share of messages back to back on one SMTP session. */
#ifndef RINGRELAY_BENCH_BLAST_CONN_H
#define RINGRELAY_BENCH_BLAST_CONN_H

#include <stdint.h>

#include "bench/bench_net.h"
#include "bench/bench_stats.h"
#include "bench/blast_message.h"
#include "core/reactor.h"

/* blast_run: settings and results that all connections share. */
struct blast_run {
    struct reactor *reactor;
    struct bench_endpoint server;
    struct blast_message message;
    const char *helo;
    const char *from;
    const char *to;
    unsigned rcpts;            /* RCPT commands per message */
    uint64_t next_seq;         /* X-Blast-Seq of the last body sent */
    unsigned active;           /* connections started and not closed */
    unsigned errors_printed;

    /* Results. Every message requested ends in exactly one of accepted,
     * rejected and failed, or stays unfinished when the run times out. */
    uint64_t sent;             /* bodies sent after a 354 */
    uint64_t accepted;         /* 2xx after the body */
    uint64_t failed;           /* lost with their connection */
    uint64_t bytes_accepted;   /* header and body bytes of accepted ones */
    uint64_t connection_failures;
    struct bench_code_tally rejected;      /* per message: the code that
                                            * ended its transaction */
    struct bench_code_tally rcpt_rejected; /* per RCPT command */
};

struct blast_conn;

/* blast_conn_new creates connection number index that will send
 * messages messages. Returns NULL when out of memory. */
struct blast_conn *blast_conn_new(struct blast_run *run, unsigned index,
                                  uint64_t messages);

/* blast_conn_start opens the socket and starts connecting. On failure
 * the connection counts as failed with all its messages, and it is not
 * counted in run->active. */
void blast_conn_start(struct blast_conn *conn);

/* blast_conn_free closes the socket if still open and frees conn; NULL
 * is accepted. Call it after reactor_free(), or once the connection has
 * closed. */
void blast_conn_free(struct blast_conn *conn);

#endif
