/* Queue reports for ringrelay-queue: list, show and stats, as text for
 * people or JSON for scripts. The same code serves the running daemon
 * (over the control socket) and a read-only open of a stopped queue. */
#ifndef RINGRELAY_CORE_QUEUE_REPORT_H
#define RINGRELAY_CORE_QUEUE_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

struct queue;
struct queue_msg;

enum queue_report_format {
    QUEUE_REPORT_TEXT,
    QUEUE_REPORT_JSON,
};

/* queue_report_list writes one entry per message: queue ID, size, age,
 * sender, and each recipient with its state and next attempt. Returns 0
 * or -1 with errno set when writing fails. */
int queue_report_list(struct queue *queue, FILE *out,
                      enum queue_report_format format);

/* The wait of a queued recipient beyond its stored next attempt. Only
 * the outbound engine of a running daemon has this state. */
struct queue_report_wait {
    bool breaker;    /* its destination's circuit breaker is not closed,
                      * so it waits for the breaker's probe */
    time_t probe;    /* wall clock time the breaker lets the probe
                      * through, 0 when it may go or is under way now */
};

/* queue_report_wait_fn stores in *wait the wait of recipient index of
 * msg. arg is the one given to queue_report_list_waits(). */
typedef void (*queue_report_wait_fn)(void *arg, const struct queue_msg *msg,
                                     size_t index,
                                     struct queue_report_wait *wait);

/* queue_report_list_waits is queue_report_list() that also writes, for
 * each queued recipient that is not held, the wait that wait_fn reports.
 * A NULL wait_fn writes none. */
int queue_report_list_waits(struct queue *queue, FILE *out,
                            enum queue_report_format format,
                            queue_report_wait_fn wait_fn, void *wait_arg);

/* queue_report_show writes the envelope, the header section and the last
 * error of each recipient of message id. Fails with errno ENOENT when no
 * such message is queued. */
int queue_report_show(struct queue *queue, const char *id, FILE *out,
                      enum queue_report_format format);

/* queue_report_stats writes recipient counts by state and by
 * destination domain. */
int queue_report_stats(struct queue *queue, FILE *out,
                       enum queue_report_format format);

#endif
