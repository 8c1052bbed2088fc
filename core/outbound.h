/* Outbound engine: takes ready messages from the queue, groups their
 * recipients by next hop (a route, the smarthost, the MX set of their
 * domain or an address literal), finds the next hop's address (a
 * configured route, the smarthost, the MX hosts or the literal's IP),
 * relays the stored bytes with an SMTP client session and records each
 * recipient's result in the queue journal. */
#ifndef RINGRELAY_CORE_OUTBOUND_H
#define RINGRELAY_CORE_OUTBOUND_H

#include <stddef.h>

struct daemon;
struct outbound;
struct queue_msg;

struct outbound *outbound_new(struct daemon *daemon);

/* outbound_enqueue is the queue's ready callback: it takes a reference to
 * msg and schedules every QUEUED recipient. arg is the outbound engine. */
void outbound_enqueue(void *arg, struct queue_msg *msg);

/* outbound_flush cancels the retry wait of every waiting job of msg, or
 * of every message when msg is NULL, and makes those jobs ready now.
 * Returns how many jobs it made ready. */
size_t outbound_flush(struct outbound *outbound, const struct queue_msg *msg);

/* outbound_release schedules the QUEUED recipients of msg that are not
 * held, after queue_release(): recipients that no job has any more get a
 * new job, and the waiting jobs of msg are made ready. Returns how many
 * recipients it added to new jobs. */
size_t outbound_release(struct outbound *outbound, struct queue_msg *msg);

/* outbound_stop starts no new attempts; attempts in flight go on. */
void outbound_stop(struct outbound *outbound);

/* outbound_active_count returns attempts in flight (DNS or SMTP). */
size_t outbound_active_count(const struct outbound *outbound);

/* outbound_free drops every job; NULL is accepted. Call it only after the
 * reactor stopped and before the queue is closed. */
void outbound_free(struct outbound *outbound);

#endif
