#include "core/inbound_tls.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/daemon.h"
#include "core/inbound.h"
#include "core/inbound_session.h"
#include "core/log.h"
#include "proto/smtp_outq.h"
#include "proto/smtp_server.h"
#include "tls/tls_session.h"

/* Replies are encrypted only while less than this much ciphertext waits,
 * so unsent replies stay in the SMTP output queue, whose size pauses
 * the parser of a client that does not read. */
#define INBOUND_TLS_OUTPUT_HIGH (64u * 1024u)

/* One TLS record carries at most 16 KiB of plaintext. */
#define INBOUND_TLS_CHUNK (16u * 1024u)

static const char *tls_mode_name(const struct inbound_session *s)
{
    return s->tls_mode == INBOUND_TLS_IMPLICIT ? "implicit" : "starttls";
}

static void tls_log_failure(struct inbound_session *s, const char *stage)
{
    const char *reason = tls_session_error(s->tls);
    char quoted[600];

    s->tls_failure_logged = true;
    log_quote(quoted, sizeof(quoted), reason, strlen(reason));
    log_info("session=%" PRIu64 " event=tls-failed client=%s mode=%s "
             "stage=%s error=%s", s->id, s->client_ip, tls_mode_name(s),
             stage, quoted);
}

int inbound_tls_start(struct inbound_session *s, enum inbound_tls_mode mode)
{
    struct daemon *daemon = inbound_daemon(s->inbound);

    s->tls = tls_session_new(daemon->tls, NULL);
    if (s->tls == NULL) {
        log_error("session=%" PRIu64 " client=%s error=\"out of memory for "
                  "a TLS session\"", s->id, s->client_ip);
        return -1;
    }
    s->tls_mode = mode;
    return 0;
}

bool inbound_tls_established(const struct inbound_session *s)
{
    return s->tls != NULL && tls_session_established(s->tls);
}

/* tls_established writes the one line per connection that names the
 * protocol and cipher, then resets the SMTP session as RFC 3207 requires. */
static void tls_established(struct inbound_session *s)
{
    const char *sni = tls_session_server_name(s->tls);
    char sni_text[300];
    uint64_t discarded;

    log_quote(sni_text, sizeof(sni_text), sni != NULL ? sni : "",
              sni != NULL ? strlen(sni) : 0);
    discarded = smtp_server_tls_started(s->smtp);
    log_info("session=%" PRIu64 " event=tls client=%s mode=%s "
             "tls_version=%s cipher=%s bits=%d resumed=%s sni=%s "
             "discarded_bytes=%" PRIu64,
             s->id, s->client_ip, tls_mode_name(s),
             tls_session_version(s->tls), tls_session_cipher(s->tls),
             tls_session_cipher_bits(s->tls),
             tls_session_reused(s->tls) ? "yes" : "no", sni_text,
             discarded);
}

void inbound_tls_log_unfinished(struct inbound_session *s,
                                const char *reason)
{
    char quoted[200];

    if (s->tls == NULL || s->tls_failure_logged ||
        tls_session_established(s->tls)) {
        return;
    }
    s->tls_failure_logged = true;
    log_quote(quoted, sizeof(quoted), reason, strlen(reason));
    log_info("session=%" PRIu64 " event=tls-failed client=%s mode=%s "
             "stage=handshake error=%s", s->id, s->client_ip,
             tls_mode_name(s), quoted);
}

int inbound_tls_receive(struct inbound_session *s, const char *data,
                        size_t len, inbound_tls_deliver_fn deliver)
{
    char plain[INBOUND_TLS_CHUNK];

    if (tls_session_input(s->tls, data, len) != TLS_OK) {
        tls_log_failure(s, "input");
        return -1;
    }
    if (!tls_session_established(s->tls)) {
        int rc = tls_session_handshake(s->tls);

        if (rc == TLS_WANT_INPUT) {
            return 0;
        }
        if (rc != TLS_OK) {
            tls_log_failure(s, "handshake");
            return -1;
        }
        tls_established(s);
    }

    /* The owner stops reading once the SMTP session closes, so input
     * after that is left undecrypted. */
    while (!s->closing && !smtp_server_closing(s->smtp)) {
        int n = tls_session_read(s->tls, plain, sizeof(plain));

        if (n == TLS_WANT_INPUT) {
            return 0;
        }
        if (n == TLS_CLOSED) {
            return 1;
        }
        if (n < 0) {
            tls_log_failure(s, "read");
            return -1;
        }
        deliver(s, plain, (size_t)n);
    }
    return 0;
}

/* tls_encrypt_replies moves replies from the SMTP output queue into the
 * TLS session while the ciphertext backlog is small. */
static int tls_encrypt_replies(struct inbound_session *s)
{
    struct smtp_outq *plain = smtp_server_output(s->smtp);

    while (plain->len > 0 && s->tls_out.len < INBOUND_TLS_OUTPUT_HIGH) {
        struct iovec iov[INBOUND_SEND_IOVS];
        int count = smtp_outq_peek(plain, iov, INBOUND_SEND_IOVS);
        size_t done = 0;

        for (int i = 0; i < count; i++) {
            if (tls_session_write(s->tls, iov[i].iov_base,
                                  iov[i].iov_len) != TLS_OK) {
                tls_log_failure(s, "write");
                return -1;
            }
            done += iov[i].iov_len;
        }
        smtp_outq_consume(plain, done);
    }
    return 0;
}

/* tls_collect_output appends the session's pending ciphertext to
 * tls_out. */
static int tls_collect_output(struct inbound_session *s)
{
    char cipher[INBOUND_TLS_CHUNK];
    size_t n;

    while ((n = tls_session_output(s->tls, cipher, sizeof(cipher))) > 0) {
        if (smtp_outq_append(&s->tls_out, cipher, n) < 0) {
            log_error("session=%" PRIu64 " client=%s error=\"out of memory "
                      "for TLS output\"", s->id, s->client_ip);
            return -1;
        }
    }
    return 0;
}

struct smtp_outq *inbound_tls_output(struct inbound_session *s)
{
    struct smtp_outq *plain = smtp_server_output(s->smtp);

    if (!tls_session_established(s->tls) && plain->len > 0) {
        /* Only the replies up to the 220 to STARTTLS are here, because
         * the session parses nothing until the handshake completes. */
        return plain;
    }
    if (tls_session_established(s->tls) && tls_encrypt_replies(s) < 0) {
        return NULL;
    }
    if (tls_collect_output(s) < 0) {
        return NULL;
    }
    return &s->tls_out;
}

void inbound_tls_free(struct inbound_session *s)
{
    tls_session_free(s->tls);
    s->tls = NULL;
    smtp_outq_cleanup(&s->tls_out);
}
