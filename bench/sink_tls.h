/* STARTTLS in the sink's sessions: the starttls hook, and the layer
 * between the socket and the SMTP session once the client sent
 * STARTTLS. Ciphertext from the socket goes into the session's
 * tls_session, plaintext goes to the SMTP session, and its replies come
 * back out encrypted. Used by sink_session.c and sink_hooks.c only. */
#ifndef RINGRELAY_BENCH_SINK_TLS_H
#define RINGRELAY_BENCH_SINK_TLS_H

#include <stddef.h>

#include "proto/smtp_outq.h"

struct sink_session;

/* sink_tls_starttls is the session's starttls hook: it creates the TLS
 * session, or with --tls-fail writes a 454 into reply and returns -1. */
int sink_tls_starttls(void *ctx, char *reply);

/* sink_tls_receive takes received ciphertext, advances the handshake and
 * feeds decrypted input to the SMTP session. Returns 0, 1 when the
 * client sent close_notify, or -1 after printing a failure; then the
 * connection must be cut. */
int sink_tls_receive(struct sink_session *s, const char *data, size_t len);

/* sink_tls_output returns the queue the next send takes bytes from.
 * Before the handshake that is the plaintext reply queue (the 220 to
 * STARTTLS). Afterwards replies are encrypted into s->tls_out, no more
 * than a delay's hold_len allows, and tls_out is returned. Returns NULL
 * after printing a failure. */
struct smtp_outq *sink_tls_output(struct sink_session *s);

/* sink_tls_free releases the TLS state of s; a session without one is
 * accepted. */
void sink_tls_free(struct sink_session *s);

#endif
