/* TLS session over memory buffers: one connection's TLS state, fed with
 * the ciphertext its owner received and drained of the ciphertext its
 * owner must send. It does no I/O, so the reactor (or a test) moves the
 * bytes.
 *
 * Use: tls_session_input() with received bytes, then
 * tls_session_handshake() until it returns TLS_OK, then
 * tls_session_read() for plaintext and tls_session_write() for
 * plaintext to send. After each call, send what tls_session_output()
 * returns, because the handshake, reads and writes all produce output.
 * Functions that fail leave a reason in tls_session_error().
 *
 * A client (outbound STARTTLS) makes its session after the server's 220
 * to STARTTLS with tls_session_new(ctx, host), host being the MX host or
 * the next hop's host, and runs the handshake as above. Once it returns
 * TLS_OK the policy decides: "may" and "encrypt" check nothing, "verify"
 * calls tls_session_verify_peer(), and "dane" calls tls_dane_check()
 * (tls/tls_dane.h). A failed check ends the session before any
 * command is sent inside TLS. */
#ifndef RINGRELAY_TLS_TLS_SESSION_H
#define RINGRELAY_TLS_TLS_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "tls/tls_context.h"

struct tls_session;

enum tls_status {
    TLS_OK = 0,
    TLS_WANT_INPUT = -1,          /* feed more received bytes */
    TLS_CLOSED = -2,              /* the peer sent close_notify */
    TLS_FAILED = -3,              /* see tls_session_error() */
};

/* tls_session_new starts a session in the role of ctx, holding a
 * reference to ctx. server_name is the host a client expects (the MX
 * host name, or an IP address for a next hop given as one): it is the
 * name that tls_session_verify_peer() checks and the key of the session
 * cache, and a host name is sent as SNI. It must be NULL for a server.
 * Returns NULL when out of memory. */
struct tls_session *tls_session_new(struct tls_context *ctx,
                                    const char *server_name);

/* tls_session_free frees the session; NULL is accepted. */
void tls_session_free(struct tls_session *session);

/* tls_session_input stores len received bytes for the next handshake or
 * read step. Returns TLS_OK, or TLS_FAILED when out of memory. */
int tls_session_input(struct tls_session *session, const void *data,
                      size_t len);

/* tls_session_handshake advances the handshake with the input stored so
 * far. Returns TLS_OK once it is complete (and at every later call),
 * TLS_WANT_INPUT, or TLS_FAILED. */
int tls_session_handshake(struct tls_session *session);

/* tls_session_established is true once the handshake is complete. */
bool tls_session_established(const struct tls_session *session);

/* tls_session_read decrypts up to size bytes into buf. Returns the byte
 * count (> 0), TLS_WANT_INPUT when no whole record is stored, TLS_CLOSED,
 * or TLS_FAILED. */
int tls_session_read(struct tls_session *session, void *buf, size_t size);

/* tls_session_write encrypts all of data[0..len) into the output. Returns
 * TLS_OK or TLS_FAILED. */
int tls_session_write(struct tls_session *session, const void *data,
                      size_t len);

/* tls_session_close queues a close_notify alert in the output. */
void tls_session_close(struct tls_session *session);

/* tls_session_output_len returns the ciphertext bytes waiting to be
 * sent. */
size_t tls_session_output_len(const struct tls_session *session);

/* tls_session_output moves up to size bytes of ciphertext to send into
 * buf and returns how many it moved. */
size_t tls_session_output(struct tls_session *session, void *buf,
                          size_t size);

/* tls_session_error returns why the last step failed, as BoringSSL's
 * error text, or "" when nothing failed. */
const char *tls_session_error(const struct tls_session *session);

/* After the handshake: the protocol name ("TLSv1.3"), the cipher suite
 * in OpenSSL's naming ("TLS_AES_128_GCM_SHA256",
 * "ECDHE-RSA-AES256-GCM-SHA384"), its secret key bits, whether an
 * earlier session was resumed, and the SNI host name (NULL when none was
 * sent). */
const char *tls_session_version(const struct tls_session *session);
const char *tls_session_cipher(const struct tls_session *session);
int tls_session_cipher_bits(const struct tls_session *session);
bool tls_session_reused(const struct tls_session *session);
const char *tls_session_server_name(const struct tls_session *session);

/* tls_session_peer_name writes the common name of the peer's certificate
 * into buf[0..size) and returns buf, or returns NULL when the peer sent
 * no certificate or it has no common name. */
const char *tls_session_peer_name(const struct tls_session *session,
                                  char *buf, size_t size);

/* tls_session_verify_peer checks, after a client handshake, that the
 * server's chain verified against the context's CA file and that the
 * leaf certificate names the server_name given to tls_session_new()
 * (subjectAltName DNS entries, or the common name without them).
 * Returns 0, or -1 after writing why into err[0..err_size), for example
 * "certificate of mx.example.com failed verification: Hostname
 * mismatch". A context without a CA file never verifies. */
int tls_session_verify_peer(const struct tls_session *session, char *err,
                            size_t err_size);

#endif
