/* One run of the load generator: the schedule that hands messages to
 * connections, the connection slots, the timers, and the results.
 *
 * Schedules:
 * - closed loop, shares (--messages without --per-connection or --rate):
 *   connection i of C sends its share, N/C plus one for the first N mod C,
 *   back to back on one session; a connection that breaks is opened
 *   again for the rest of its share.
 * - closed loop, shared pool (--per-connection, or --duration): each of
 *   the C slots keeps a connection open; a connection takes the next
 *   message when its last one is answered (with PIPELINING: once its body
 *   is sent), up to M, then QUITs and its slot opens a new one. Messages
 *   run out at N, or when --duration has passed.
 * - open loop (--rate R): message i is due at start + i/R seconds. A due
 *   message goes to an idle connection, or to a new one when fewer than C
 *   are open, or else waits until a connection becomes free. Its
 *   latencies count from its due time, so a slow server cannot slow the
 *   schedule down (no coordinated omission). With --duration D there are
 *   D * R messages, and those not started when D seconds have passed are
 *   not sent: they count as not started, part of not finished.
 *
 * Every connection is opened for work it already holds: its share, or
 * the message that made it open. When a connection breaks, the messages
 * in flight on it fail, and its slot connects again for the rest: at
 * once if it finished a message, else after a wait that grows from
 * 10 ms to 1 s (bench/blast_backoff.h). After 5 connections in a row
 * without progress in a run where no other connection made any, the slot
 * gives up: its work counts as failed, and the slot stays closed. So a
 * server that is down ends the run in well under a second.
 *
 * --idle (hold) issues no messages. The slots connect in slot order,
 * at most BLAST_HOLD_CONNECTING_MAX at a time, so that a burst of SYNs
 * does not overflow the server's listen backlog (a dropped SYN is sent
 * again only after a second). Each reads the greeting, sends EHLO and
 * then waits on the idle list until
 * --duration ends or a signal comes; then each held connection QUITs. A
 * connection that fails or that the server closes is not opened again,
 * so the run ends early when none is left. */
#ifndef RINGRELAY_BENCH_BLAST_RUN_H
#define RINGRELAY_BENCH_BLAST_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/bench_histogram.h"
#include "bench/bench_stats.h"
#include "bench/blast_message.h"
#include "bench/blast_options.h"
#include "bench/blast_template.h"
#include "core/reactor.h"

struct blast_conn;

/* --idle: connections that may be connecting or waiting for their
 * greeting or EHLO reply at once. */
#define BLAST_HOLD_CONNECTING_MAX 512

/* Seconds that messages in flight get to finish after an interrupt. */
#define BLAST_RUN_DRAIN_S 5

/* blast_msg: a message handed to a connection. */
struct blast_msg {
    uint64_t seq;       /* X-Blast-Seq, 1-based, unique in the run */
    uint64_t start_ns;  /* monotonic; open loop: due time, else set when
                         * its MAIL is queued */
};

/* blast_second: one entry of the per-second series. */
struct blast_second {
    double t;                 /* seconds since the start, interval end */
    uint64_t sent;            /* bodies sent in the interval */
    uint64_t accepted;        /* 2xx after the body in the interval */
    uint64_t bytes;           /* header and body bytes of those */
    uint64_t failed;          /* messages lost with their connection */
    double rate;              /* accepted per second of the interval */
    uint64_t data_replies;    /* final replies to a body in the interval */
    /* End of data to final reply, in the interval: p50, p90, p99 and
     * p99.9 in nanoseconds. */
    uint64_t data_p50_ns;
    uint64_t data_p90_ns;
    uint64_t data_p99_ns;
    uint64_t data_p999_ns;
};

/* blast_results: what the connections measured. Every message issued
 * ends in exactly one of accepted, rejected and failed, or stays not
 * finished when the run stops early. Failed messages were in flight
 * when their connection broke, except given_up ones, which count as
 * failed without being issued. */
struct tls_context;

struct blast_results {
    uint64_t sent;                 /* bodies sent after a 354 */
    uint64_t accepted;             /* 2xx after the body */
    uint64_t failed;               /* lost with their connection */
    uint64_t given_up;             /* of failed: never sent, because their
                                    * slot gave up reconnecting */
    uint64_t not_started;          /* handed out, but the run stopped
                                    * before their MAIL was sent */
    uint64_t bytes_accepted;       /* header and body bytes */
    uint64_t accepted_rcpts;       /* recipients of accepted messages */
    uint64_t connections_opened;
    uint64_t connection_failures;
    uint64_t idle_closed;          /* idle connections the server closed */
    uint64_t closed_after_421;     /* connections closed after a 421 */
    uint64_t tls_sessions;         /* STARTTLS handshakes completed */
    /* --idle only. */
    uint64_t held_max;             /* connections held at once, max */
    uint64_t held_at_end;          /* held when the run stopped */
    uint64_t quit_replied;         /* QUITs that got a reply */
    uint64_t all_held_ns;          /* when every slot was held; 0 never */
    uint64_t first_start_ns;       /* first MAIL queued (closed loop) or
                                    * first due time (open loop); 0 none */
    uint64_t last_reply_ns;        /* last reply to the end of data */
    struct bench_code_tally rejected;    /* per message: the code that
                                          * ended its transaction */
    struct bench_code_tally mail_codes;  /* every reply, per command */
    struct bench_code_tally rcpt_codes;
    struct bench_code_tally data_codes;
    struct bench_code_tally body_codes;  /* replies to the end of data */
    struct bench_histogram connect;      /* connect to greeting */
    struct bench_histogram mail;         /* MAIL to its reply */
    struct bench_histogram rcpt;         /* RCPT to its reply */
    struct bench_histogram data;         /* end of data to final reply */
};

struct blast_run {
    const struct blast_options *options;
    struct reactor *reactor;
    struct blast_message message;
    struct blast_template from;    /* --from */
    struct blast_template to;      /* --to */
    unsigned rcpts;                /* recipients per message */
    /* "EHLO name\r\n" and "HELO name\r\n"; the name has at most 255
     * octets (checked by the options parser). */
    char ehlo_line[264];
    char helo_line[264];
    /* "AUTH PLAIN <base64>\r\n" for --auth, else empty. The base64 text
     * of "\0USER\0PASS" has at most 4 * 171 characters. */
    char auth_line[720];
    struct tls_context *tls;       /* client context for --starttls */

    /* Schedule. */
    bool open_loop;                /* --rate */
    bool shares;                   /* fixed shares, see above */
    bool hold;                     /* --idle: no messages, see above */
    unsigned hold_next;            /* --idle: next slot to open */
    uint64_t total;                /* messages to issue; UINT64_MAX for
                                    * a closed-loop --duration */
    uint64_t issued;               /* messages handed out, = last seq */
    bool stopping;                 /* --duration passed or interrupted:
                                    * issue no more */
    bool timed_out;
    int interrupted;               /* signal that stopped the run, -1 for
                                    * a failed signal read, 0 none */
    bool drain_expired;            /* messages still in flight
                                    * BLAST_RUN_DRAIN_S after it */
    uint64_t start_ns;             /* monotonic start of the run */
    uint64_t start_wall_us;        /* wall clock at start_ns */
    uint64_t end_ns;
    uint64_t now_ns;               /* monotonic, read once per event */

    /* Connections: one per slot, reused after it closes. */
    struct blast_conn **conns;
    unsigned conn_count;
    unsigned active;               /* sockets open */
    unsigned *free_slots;          /* stack of slots without a socket */
    unsigned free_count;
    struct blast_conn **idle;      /* open loop: connections waiting for
                                    * a due message */
    unsigned idle_count;
    unsigned retrying;             /* slots waiting to connect again */
    unsigned dead_count;           /* slots that gave up */
    unsigned errors_printed;

    struct reactor_timer timeout_timer;
    struct reactor_timer deadline_timer;  /* --duration */
    struct reactor_timer pacer_timer;     /* open loop: next due time */
    struct reactor_timer tick_timer;      /* one progress line a second */
    struct reactor_timer drain_timer;     /* end of the wait after an
                                           * interrupt */
    struct reactor_hook refill_hook;      /* reopen free slots */

    /* Per-second series. */
    struct blast_second *series;
    size_t series_len;
    size_t series_cap;
    uint64_t tick_ns;                     /* end of the last interval */
    struct blast_second tick_base;        /* totals at tick_ns */
    struct bench_histogram second_data;   /* data latency this interval */

    struct blast_results results;
};

/* blast_run_init prepares run for options: builds the message bodies,
 * creates the reactor and the connection slots. On failure it prints
 * the reason. Returns 0, -1, or -2 when --body-dir has no usable files
 * (a usage error); call blast_run_cleanup either way. */
int blast_run_init(struct blast_run *run, const struct blast_options *opts);

/* blast_run_execute opens the connections and runs the reactor until
 * every message is finished or the run timed out. Returns 0, or -1 when
 * the reactor itself failed (printed). */
int blast_run_execute(struct blast_run *run);

void blast_run_cleanup(struct blast_run *run);

/* blast_run_interrupt stops the run as SIGINT or SIGTERM asks: no new
 * message starts, and the reactor stops once the messages in flight are
 * answered or BLAST_RUN_DRAIN_S have passed. signo is the signal, or 0
 * when reading signals failed. */
void blast_run_interrupt(struct blast_run *run, int signo);

/* blast_run_requested returns the messages the run was to finish: N,
 * or with a closed-loop --duration those issued and not dropped
 * unstarted at its end. */
uint64_t blast_run_requested(const struct blast_run *run);

/* blast_run_wall_us converts a monotonic time of the run to microseconds
 * since the Unix epoch. */
uint64_t blast_run_wall_us(const struct blast_run *run, uint64_t ns);

/* ---- For blast_conn.c ---------------------------------------------- */

/* blast_run_take hands out the next message if one is available now.
 * The caller has checked its own per-connection limit. */
bool blast_run_take(struct blast_run *run, struct blast_msg *msg);

/* blast_run_more_later reports whether a connection that found no
 * message should wait idle for one (open loop) instead of QUITting. */
bool blast_run_more_later(const struct blast_run *run);

/* blast_run_conn_closed returns the slot of a connection whose socket
 * was closed (or never opened), so it may be reused at the end of the
 * turn, and stops the run when nothing is left to do. */
void blast_run_conn_closed(struct blast_run *run, unsigned slot);

/* blast_run_holding reports whether a connection that has finished
 * EHLO should be held idle (--idle, before the run stops). */
bool blast_run_holding(const struct blast_run *run);

/* blast_run_conn_held counts a connection that was just put on the idle
 * list to be held. */
void blast_run_conn_held(struct blast_run *run);

/* blast_run_conn_dead counts a slot that gave up, which takes no more
 * work, and stops the run when nothing is left to do. */
void blast_run_conn_dead(struct blast_run *run);

/* blast_run_progress returns how many messages have finished by a reply
 * or in flight; a change shows that some connection got through. */
uint64_t blast_run_progress(const struct blast_run *run);

/* blast_run_record_body counts the final reply to a message's body,
 * received at run->now_ns, latency_ns after the end of its data (or its
 * due time in open loop). bytes is its header and body size and rcpts
 * the number of its recipients that got a 2xx RCPT reply. */
void blast_run_record_body(struct blast_run *run, int code,
                           uint64_t latency_ns, size_t bytes,
                           unsigned rcpts);

#endif
