/* Queue administration for the control socket and ringrelay-queue:
 * finding and walking the messages in memory, and the operator's hold,
 * release and delete, each recorded in the journal.
 *
 * Return convention: a count of recipients changed, or -1 with errno
 * set, unless stated otherwise. */
#ifndef RINGRELAY_CORE_QUEUE_ADMIN_H
#define RINGRELAY_CORE_QUEUE_ADMIN_H

#include <stddef.h>

#include "core/queue.h"

/* These functions see only durable messages: recovered ones and those
 * whose commit has synced. A message still waiting for its sync has not
 * got its 250, and its pending commit points at it, so a delete must not
 * free it. */

/* queue_find returns the message whose queue ID is id (QUEUE_ID_LEN hex
 * digits, either case), or NULL with errno ENOENT. */
struct queue_msg *queue_find(struct queue *queue, const char *id);

/* queue_first and queue_next walk the durable messages in queue ID
 * order; they return NULL at the end. */
struct queue_msg *queue_first(struct queue *queue);
struct queue_msg *queue_next(struct queue *queue, const struct queue_msg *msg);

/* queue_hold writes a HELD entry for every QUEUED recipient of msg that
 * is not held yet and sets its held flag. */
int queue_hold(struct queue *queue, struct queue_msg *msg);

/* queue_release writes a RELEASED entry for every held recipient of msg,
 * clears the flag and makes the recipient due now (next_attempt 0). */
int queue_release(struct queue *queue, struct queue_msg *msg);

/* queue_delete gives every QUEUED recipient of msg the final state
 * QUEUE_RCPT_DELETED. Like queue_mark(), the queue drops its own
 * reference when no recipient is left QUEUED, so a caller that uses msg
 * afterwards must hold a reference of its own. */
int queue_delete(struct queue *queue, struct queue_msg *msg);

/* queue_note_error keeps text as the last error of recipient rcpt, in
 * memory only (a copy; replaces the previous one). Returns 0 or -1. */
int queue_note_error(struct queue *queue, struct queue_msg *msg, size_t rcpt,
                     const char *text);

#endif
