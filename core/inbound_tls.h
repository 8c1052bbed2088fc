/* The TLS layer of an inbound session: ciphertext from the socket goes
 * in, plaintext goes to the SMTP session, and its replies come back out
 * encrypted. Used by inbound_session.c only. */
#ifndef RINGRELAY_CORE_INBOUND_TLS_H
#define RINGRELAY_CORE_INBOUND_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct inbound_session;
struct smtp_outq;

/* The way a TLS session started, for logs. */
enum inbound_tls_mode {
    INBOUND_TLS_STARTTLS,
    INBOUND_TLS_IMPLICIT,         /* a tls_listen connection */
};

/* Called with decrypted input, in order. */
typedef void (*inbound_tls_deliver_fn)(struct inbound_session *session,
                                       const char *data, size_t len);

/* inbound_tls_start creates the session's TLS state from the daemon's
 * current context. Returns 0, or -1 when out of memory. */
int inbound_tls_start(struct inbound_session *session,
                      enum inbound_tls_mode mode);

/* inbound_tls_receive takes received ciphertext. It advances the
 * handshake, and once it completes logs the event=tls line and calls
 * smtp_server_tls_started(). Decrypted input goes to deliver. Returns 0,
 * 1 when the client sent close_notify, or -1 after logging a failure;
 * then the connection must close. */
int inbound_tls_receive(struct inbound_session *session, const char *data,
                        size_t len, inbound_tls_deliver_fn deliver);

/* inbound_tls_log_unfinished logs event=tls-failed with reason for a
 * session that ends while its handshake is unfinished (the client closed
 * the connection, a timeout, a shutdown), unless a failure was already
 * logged. */
void inbound_tls_log_unfinished(struct inbound_session *session,
                                const char *reason);

/* inbound_tls_established is true once the handshake is complete. */
bool inbound_tls_established(const struct inbound_session *session);

/* inbound_tls_output returns the queue that the next send takes bytes
 * from. Before the handshake completes, replies already queued (the 220
 * to STARTTLS) go out as plaintext first; then handshake records follow.
 * Afterwards replies are encrypted into the TLS output queue as room
 * allows. Returns NULL after logging a failure; then the connection must
 * close. */
struct smtp_outq *inbound_tls_output(struct inbound_session *session);

/* inbound_tls_free releases the TLS state; it accepts a session without
 * one. */
void inbound_tls_free(struct inbound_session *session);

#endif
