/* Retry jitter of the outbound engine: a fraction in [0, 1) derived
 * from a message's queue ID and a recipient's attempt number. */
#ifndef RINGRELAY_CORE_OUTBOUND_JITTER_H
#define RINGRELAY_CORE_OUTBOUND_JITTER_H

#include <stdint.h>

/* outbound_retry_jitter returns the fraction of the 20% retry jitter for
 * the recipients of message queue_id whose attempt number is attempt.
 * It depends on nothing else, so recipients of one message with the
 * same attempt count retry at the same time even when they went out in
 * several transactions, while other messages and other attempts get
 * other values. */
double outbound_retry_jitter(const char *queue_id, uint32_t attempt);

#endif
