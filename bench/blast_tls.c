#include "bench/blast_tls.h"

#include <stdio.h>
#include <sys/uio.h>

#include "tls/tls_session.h"

/* One TLS record carries at most 16 KiB of plaintext. */
#define BLAST_TLS_CHUNK (16u * 1024u)

/* Plaintext encrypted per step, and the ciphertext backlog at which
 * encryption pauses until the socket takes some. */
#define BLAST_TLS_STEP (64u * 1024u)
#define BLAST_TLS_OUTPUT_HIGH (256u * 1024u)

void blast_tls_init(struct blast_tls *tls)
{
    tls->session = NULL;
    smtp_outq_init(&tls->out);
}

static int blast_tls_collect(struct blast_tls *tls, char *err,
                             size_t err_size)
{
    char cipher[BLAST_TLS_CHUNK];
    size_t n;

    while ((n = tls_session_output(tls->session, cipher, sizeof(cipher)))
           > 0) {
        if (smtp_outq_append(&tls->out, cipher, n) < 0) {
            snprintf(err, err_size, "out of memory for TLS output");
            return -1;
        }
    }
    return 0;
}

int blast_tls_start(struct blast_tls *tls, struct tls_context *ctx,
                    char *err, size_t err_size)
{
    /* No SNI: --server is usually an IP address, which SNI may not
     * carry, and blast checks no certificate. */
    tls->session = tls_session_new(ctx, NULL);
    if (tls->session == NULL) {
        snprintf(err, err_size, "out of memory for a TLS session");
        return -1;
    }
    if (tls_session_handshake(tls->session) == TLS_FAILED) {
        snprintf(err, err_size, "TLS handshake failed: %s",
                 tls_session_error(tls->session));
        return -1;
    }
    return blast_tls_collect(tls, err, err_size);
}

int blast_tls_receive(struct blast_tls *tls, const char *data, size_t len,
                      bool *done_now, blast_tls_deliver_fn deliver,
                      void *owner, char *err, size_t err_size)
{
    char plain[BLAST_TLS_CHUNK];

    *done_now = false;
    if (tls_session_input(tls->session, data, len) != TLS_OK) {
        snprintf(err, err_size, "%s", tls_session_error(tls->session));
        return -1;
    }
    if (!tls_session_established(tls->session)) {
        int rc = tls_session_handshake(tls->session);

        if (rc == TLS_FAILED) {
            snprintf(err, err_size, "TLS handshake failed: %s",
                     tls_session_error(tls->session));
            return -1;
        }
        if (blast_tls_collect(tls, err, err_size) < 0) {
            return -1;
        }
        if (rc == TLS_WANT_INPUT) {
            return 0;
        }
        *done_now = true;
    }
    for (;;) {
        int n = tls_session_read(tls->session, plain, sizeof(plain));

        if (n == TLS_WANT_INPUT) {
            break;
        }
        if (n == TLS_CLOSED) {
            snprintf(err, err_size, "the server closed the TLS session");
            return -1;
        }
        if (n < 0) {
            snprintf(err, err_size, "TLS read failed: %s",
                     tls_session_error(tls->session));
            return -1;
        }
        if (!deliver(owner, plain, (size_t)n)) {
            break;
        }
    }
    /* Reading can produce output too, such as the reply to a TLS 1.3 key
     * update. */
    return blast_tls_collect(tls, err, err_size);
}

int blast_tls_encrypt(struct blast_tls *tls, struct smtp_outq *plain,
                      size_t *moved, char *err, size_t err_size)
{
    *moved = 0;

    /* Only as much is encrypted as keeps the ciphertext backlog small,
     * so a large body is not copied whole into tls->out. */
    while (tls_session_established(tls->session) && plain->len > 0
           && tls->out.len < BLAST_TLS_OUTPUT_HIGH) {
        struct iovec iov;
        size_t part;

        smtp_outq_peek(plain, &iov, 1);
        part = iov.iov_len < BLAST_TLS_STEP ? iov.iov_len : BLAST_TLS_STEP;
        if (tls_session_write(tls->session, iov.iov_base, part) != TLS_OK) {
            snprintf(err, err_size, "TLS write failed: %s",
                     tls_session_error(tls->session));
            return -1;
        }
        smtp_outq_consume(plain, part);
        *moved += part;
        if (blast_tls_collect(tls, err, err_size) < 0) {
            return -1;
        }
    }
    return blast_tls_collect(tls, err, err_size);
}

void blast_tls_reset(struct blast_tls *tls)
{
    tls_session_free(tls->session);
    tls->session = NULL;
    smtp_outq_cleanup(&tls->out);
    smtp_outq_init(&tls->out);
}
