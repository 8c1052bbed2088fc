/* The TLS side of an outbound connection: the TLS policy of each host
 * (with the TLSA lookup for dane), the STARTTLS handshake and the peer
 * check, and the ciphertext moved between the socket and the SMTP
 * client. Private to the outbound engine. */
#ifndef RINGRELAY_CORE_OUTBOUND_CONN_TLS_H
#define RINGRELAY_CORE_OUTBOUND_CONN_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/outbound_conn.h"

/* outbound_conn_tls_lookup starts the TLSA lookup of the next host under
 * the dane policy, once per host. Returns true when a lookup runs, whose
 * callback connects. */
bool outbound_conn_tls_lookup(struct outbound_conn *conn);

/* outbound_conn_tls_choose sets the TLS policy of the host about to be
 * tried. Returns -1 when dane makes the host unreachable because its
 * TLSA lookup failed (see tls_policy_for_host). */
int outbound_conn_tls_choose(struct outbound_conn *conn,
                             const char *host_name);

/* outbound_conn_tls_start begins the handshake after the 220 to
 * STARTTLS. The wait for it is the command timeout. Returns false when
 * conn started closing. */
bool outbound_conn_tls_start(struct outbound_conn *conn);

/* outbound_conn_tls_feed takes received ciphertext: it advances the
 * handshake or decrypts replies for the client. Returns false when conn
 * started closing. */
bool outbound_conn_tls_feed(struct outbound_conn *conn, const char *data,
                            size_t len);

/* outbound_conn_tls_flush sends the ciphertext that waits: the
 * handshake's, or the client's output once encrypted. */
void outbound_conn_tls_flush(struct outbound_conn *conn);

/* outbound_conn_tls_idle is true when no ciphertext waits to be sent. */
bool outbound_conn_tls_idle(const struct outbound_conn *conn);

/* outbound_conn_tls_reset drops the TLS state before the next address. */
void outbound_conn_tls_reset(struct outbound_conn *conn);

/* outbound_conn_tls_fail ends a connection whose TLS failed, before any
 * command went out inside it, and moves to the next address. Under "may"
 * a failed handshake retries the same address once in plaintext,
 * because a next hop with a broken TLS stack would otherwise never get
 * mail. A stricter policy never retries without TLS. Returns false
 * because conn is closing. */
bool outbound_conn_tls_fail(struct outbound_conn *conn, const char *stage,
                            const char *reason);

/* Functions of outbound_conn.c that the TLS side calls. */
void outbound_conn_connect_next(struct outbound_conn *conn);
void outbound_conn_close(struct outbound_conn *conn,
                         enum outbound_after_close after);
void outbound_conn_lost(struct outbound_conn *conn, const char *text);
bool outbound_conn_check_done(struct outbound_conn *conn);
void outbound_conn_flush(struct outbound_conn *conn);

/* outbound_conn_note_reply records that reply bytes (plaintext) arrived
 * in this transaction. Returns true when they start with a 421 on a
 * reused connection: conn is then closing, and the job moves to a new
 * connection. */
bool outbound_conn_note_reply(struct outbound_conn *conn, const char *data,
                              size_t len);

#endif
