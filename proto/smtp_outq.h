/* Output queue for one SMTP connection: text the protocol code wrote plus
 * borrowed byte ranges (a message body in a queue mapping), sent in order.
 *
 * Bytes handed out by smtp_outq_peek() are never moved or changed by later
 * appends, so a send may be in flight while the protocol keeps writing. */
#ifndef RINGRELAY_PROTO_SMTP_OUTQ_H
#define RINGRELAY_PROTO_SMTP_OUTQ_H

#include <stddef.h>
#include <sys/uio.h>

struct smtp_outq_chunk;

struct smtp_outq {
    struct smtp_outq_chunk *head;
    struct smtp_outq_chunk *tail;
    size_t len;              /* bytes queued and not yet consumed */
};

void smtp_outq_init(struct smtp_outq *q);
void smtp_outq_cleanup(struct smtp_outq *q);

/* smtp_outq_append copies len bytes. Returns 0, or -1 when out of memory. */
int smtp_outq_append(struct smtp_outq *q, const char *data, size_t len);

/* smtp_outq_printf appends formatted text. Returns 0 or -1. */
int smtp_outq_printf(struct smtp_outq *q, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* smtp_outq_append_ref queues data without copying; it must stay valid
 * until consumed. Returns 0 or -1. */
int smtp_outq_append_ref(struct smtp_outq *q, const char *data, size_t len);

/* smtp_outq_peek fills up to max iovecs with the oldest bytes and returns
 * how many it filled. */
int smtp_outq_peek(struct smtp_outq *q, struct iovec *iov, int max);

/* smtp_outq_consume drops n bytes from the front, after they were sent. */
void smtp_outq_consume(struct smtp_outq *q, size_t n);

#endif
