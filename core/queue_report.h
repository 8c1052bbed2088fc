/* Queue reports for ringrelay-queue: list, show and stats, as text for
 * people or JSON for scripts. The same code serves the running daemon
 * (over the control socket) and a read-only open of a stopped queue. */
#ifndef RINGRELAY_CORE_QUEUE_REPORT_H
#define RINGRELAY_CORE_QUEUE_REPORT_H

#include <stdio.h>

struct queue;

enum queue_report_format {
    QUEUE_REPORT_TEXT,
    QUEUE_REPORT_JSON,
};

/* queue_report_list writes one entry per message: queue ID, size, age,
 * sender, and each recipient with its state and next attempt. Returns 0
 * or -1 with errno set when writing fails. */
int queue_report_list(struct queue *queue, FILE *out,
                      enum queue_report_format format);

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
