/* The sink's session object, shared by sink_session.c (I/O, timers,
 * replies to bodies, life cycle) and sink_hooks.c (the protocol hooks:
 * envelope, body, faults). Nothing else includes this header. */
#ifndef RINGRELAY_BENCH_SINK_SESSION_INTERNAL_H
#define RINGRELAY_BENCH_SINK_SESSION_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "bench/sink_fault.h"
#include "bench/sink_headers.h"
#include "bench/sink_session.h"
#include "bench/sink_store.h"
#include "proto/smtp_outq.h"

/* iovecs per send; the output queue rarely contains more chunks. */
#define SINK_IOV_MAX 16

enum sink_commit {
    SINK_COMMIT_NONE,     /* no message waiting for its reply */
    SINK_COMMIT_DELAYED,  /* data_end() ran, waiting out --data-delay */
    SINK_COMMIT_PENDING,  /* data_end() ran, reply not yet given */
    SINK_COMMIT_SYNCING,  /* stored file is being fsynced */
};

struct sink_session {
    struct sink_server *server;
    struct sink_session *prev;
    struct sink_session *next;
    struct smtp_server *smtp;
    int fd;

    struct reactor_op recv_op;
    struct reactor_op send_op;
    struct reactor_op fsync_op;
    /* The session's one timer serves the earliest of idle_deadline_ms,
     * hold_until_ms and commit_at_ms. */
    struct reactor_timer timer;
    struct iovec iov[SINK_IOV_MAX]; /* in flight while send_op is armed */
    struct smtp_outq *send_queue;   /* the queue iov points into */

    /* STARTTLS: NULL until the client sends it. tls_out holds ciphertext
     * waiting to be sent. */
    struct tls_session *tls;
    struct smtp_outq tls_out;
    bool tls_closed;                /* close_notify queued */

    struct sink_message message;    /* used only with a store */
    struct sink_store_file file;    /* open while SINK_COMMIT_SYNCING */
    struct sink_headers headers;    /* blast headers of the current body */
    struct sink_fault_random random;
    uint64_t *rcpt_ids;             /* accepted recipients, for tracking */
    size_t rcpt_count;
    size_t rcpt_capacity;
    uint64_t body_bytes;            /* wire bytes of the current body */
    uint64_t received_us;           /* wall clock of the final dot */
    const char *accept_reply;       /* a drawn 2xx --data-reply, or NULL */
    enum sink_commit commit;

    /* A delayed reply holds back all output from hold_len bytes on (the
     * queue length when the delay began) until hold_until_ms. */
    uint64_t idle_deadline_ms;
    uint64_t hold_until_ms;         /* valid while holding */
    uint64_t commit_at_ms;          /* valid while SINK_COMMIT_DELAYED */
    size_t hold_len;
    bool holding;

    bool in_body;       /* between an accepted DATA and the body's end */
    bool cut_in_data;   /* --disconnect-in-data chose this body */
    bool cut_now;       /* cut the connection once feeding returns */
    bool input_ended;   /* the receive op finished for good */
    bool send_failed;   /* output can no longer be delivered */
    bool write_shut;    /* shutdown(SHUT_WR) done after the last reply */
    bool timed_out;
};

/* sink_hooks: the protocol hooks of every sink session; ctx is the
 * struct sink_session. */
extern const struct smtp_server_hooks sink_hooks;

/* sink_hooks_greet queues the session's greeting. */
void sink_hooks_greet(struct sink_session *s);

/* sink_session_arm_timer points the session's timer at the earliest of
 * its deadlines. */
void sink_session_arm_timer(struct sink_session *s);

#endif
