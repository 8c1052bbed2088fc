/* Inbound side of the daemon: listening sockets and the SMTP server
 * sessions on them, with the hooks that apply relay policy and write each
 * message into the queue store. */
#ifndef RINGRELAY_CORE_INBOUND_H
#define RINGRELAY_CORE_INBOUND_H

#include <stddef.h>

struct daemon;
struct inbound;

/* inbound_new binds every configured listener and starts accepting.
 * Returns NULL after logging the reason. */
struct inbound *inbound_new(struct daemon *daemon);

/* inbound_stop closes the listeners and asks every session to end with
 * 421; sessions waiting for a queue commit finish it first. */
void inbound_stop(struct inbound *inbound);

/* inbound_session_count returns the sessions still open. */
size_t inbound_session_count(const struct inbound *inbound);

/* inbound_free frees what is left; NULL is accepted. Call it only after
 * the reactor stopped. */
void inbound_free(struct inbound *inbound);

#endif
