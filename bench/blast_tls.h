/* The TLS layer of one blast connection after STARTTLS: plaintext
 * commands go in, ciphertext for the socket comes out, and received
 * ciphertext is decrypted into replies. It does no I/O and keeps no
 * reference to the connection, so blast_conn.c stays the only owner of
 * the socket. */
#ifndef RINGRELAY_BENCH_BLAST_TLS_H
#define RINGRELAY_BENCH_BLAST_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/smtp_outq.h"

struct tls_context;
struct tls_session;

struct blast_tls {
    struct tls_session *session;  /* NULL: the connection is plaintext */
    struct smtp_outq out;         /* ciphertext waiting to be sent */
};

/* blast_tls_deliver_fn takes decrypted input; it returns false when the
 * connection stopped reading (it failed or closes). */
typedef bool (*blast_tls_deliver_fn)(void *owner, const char *data,
                                     size_t len);

void blast_tls_init(struct blast_tls *tls);

/* blast_tls_start creates a client session from ctx and queues its
 * ClientHello in tls->out. Returns 0, or -1 with the reason in err. */
int blast_tls_start(struct blast_tls *tls, struct tls_context *ctx,
                    char *err, size_t err_size);

/* blast_tls_receive takes received ciphertext, advances the handshake
 * (setting *done_now when this call completed it) and hands decrypted
 * input to deliver. Returns 0, or -1 with the reason in err. */
int blast_tls_receive(struct blast_tls *tls, const char *data, size_t len,
                      bool *done_now, blast_tls_deliver_fn deliver,
                      void *owner, char *err, size_t err_size);

/* blast_tls_encrypt moves bytes of plain into the session once the
 * handshake is complete, until plain is empty or about 256 KiB of
 * ciphertext wait in tls->out, and collects the session's ciphertext
 * there. *moved is the plaintext byte count taken from plain. Returns 0,
 * or -1 with the reason in err. */
int blast_tls_encrypt(struct blast_tls *tls, struct smtp_outq *plain,
                      size_t *moved, char *err, size_t err_size);

/* blast_tls_reset frees the session and drops queued ciphertext, ready
 * for the next connection of the slot. */
void blast_tls_reset(struct blast_tls *tls);

#endif
