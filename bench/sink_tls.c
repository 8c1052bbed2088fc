#include "bench/sink_tls.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bench/sink_session_internal.h"
#include "proto/smtp_server.h"
#include "tls/tls_session.h"

/* Replies are encrypted only while less than this much ciphertext waits,
 * so unsent replies stay in the SMTP output queue, whose size pauses
 * the parser of a client that does not read. */
#define SINK_TLS_OUTPUT_HIGH (64u * 1024u)

/* One TLS record carries at most 16 KiB of plaintext. */
#define SINK_TLS_CHUNK (16u * 1024u)

#define SINK_TLS_FAIL_REPLY \
    "454 4.7.0 TLS not available due to temporary reason (--tls-fail)"

static void sink_tls_print_failure(struct sink_session *s, const char *step)
{
    s->server->tls_failures++;
    fprintf(stderr, "sink: TLS %s failed: %s\n", step,
            tls_session_error(s->tls));
}

int sink_tls_starttls(void *ctx, char *reply)
{
    struct sink_session *s = ctx;

    if (s->server->tls_fail) {
        s->server->tls_refused++;
        snprintf(reply, SMTP_REPLY_MAX, "%s", SINK_TLS_FAIL_REPLY);
        return -1;
    }
    s->tls = tls_session_new(s->server->tls, NULL);
    if (s->tls == NULL) {
        fprintf(stderr, "sink: out of memory for a TLS session\n");
        snprintf(reply, SMTP_REPLY_MAX, "454 4.7.0 TLS not available: "
                 "out of memory");
        return -1;
    }
    return 0;
}

int sink_tls_receive(struct sink_session *s, const char *data, size_t len)
{
    char plain[SINK_TLS_CHUNK];

    if (tls_session_input(s->tls, data, len) != TLS_OK) {
        sink_tls_print_failure(s, "input");
        return -1;
    }
    if (!tls_session_established(s->tls)) {
        int rc = tls_session_handshake(s->tls);

        if (rc == TLS_WANT_INPUT) {
            return 0;
        }
        if (rc != TLS_OK) {
            sink_tls_print_failure(s, "handshake");
            return -1;
        }
        s->server->tls_sessions++;
        smtp_server_tls_started(s->smtp);
    }

    /* Input after the session closed is left undecrypted, as the plain
     * path drops it too. */
    while (!smtp_server_closing(s->smtp)) {
        int n = tls_session_read(s->tls, plain, sizeof(plain));

        if (n == TLS_WANT_INPUT) {
            return 0;
        }
        if (n == TLS_CLOSED) {
            return 1;
        }
        if (n < 0) {
            sink_tls_print_failure(s, "read");
            return -1;
        }
        smtp_server_feed(s->smtp, plain, (size_t)n);
    }
    return 0;
}

/* sink_tls_encrypt_replies moves replies from the SMTP output queue into
 * the TLS session while the ciphertext backlog is small. A delay holds
 * back every reply from hold_len bytes on, so no more is encrypted. */
static int sink_tls_encrypt_replies(struct sink_session *s)
{
    struct smtp_outq *plain = smtp_server_output(s->smtp);

    while (plain->len > 0 && s->tls_out.len < SINK_TLS_OUTPUT_HIGH) {
        struct iovec iov[SINK_IOV_MAX];
        size_t limit = s->holding ? s->hold_len : SIZE_MAX;
        int count = smtp_outq_peek(plain, iov, SINK_IOV_MAX);
        size_t done = 0;

        for (int i = 0; i < count && done < limit; i++) {
            size_t part = iov[i].iov_len;

            if (part > limit - done) {
                part = limit - done;
            }
            if (tls_session_write(s->tls, iov[i].iov_base, part) != TLS_OK) {
                sink_tls_print_failure(s, "write");
                return -1;
            }
            done += part;
        }
        if (done == 0) {
            break;
        }
        smtp_outq_consume(plain, done);
        if (s->holding) {
            s->hold_len -= done;
        }
    }
    return 0;
}

static int sink_tls_collect_output(struct sink_session *s)
{
    char cipher[SINK_TLS_CHUNK];
    size_t n;

    while ((n = tls_session_output(s->tls, cipher, sizeof(cipher))) > 0) {
        if (smtp_outq_append(&s->tls_out, cipher, n) < 0) {
            fprintf(stderr, "sink: out of memory for TLS output\n");
            return -1;
        }
    }
    return 0;
}

struct smtp_outq *sink_tls_output(struct sink_session *s)
{
    struct smtp_outq *plain = smtp_server_output(s->smtp);

    if (!tls_session_established(s->tls) && plain->len > 0) {
        /* Only replies up to the 220 to STARTTLS are here, because the
         * session parses nothing until the handshake completes. */
        return plain;
    }
    if (tls_session_established(s->tls) && sink_tls_encrypt_replies(s) < 0) {
        return NULL;
    }
    if (sink_tls_collect_output(s) < 0) {
        return NULL;
    }
    return &s->tls_out;
}

void sink_tls_free(struct sink_session *s)
{
    tls_session_free(s->tls);
    s->tls = NULL;
    smtp_outq_cleanup(&s->tls_out);
}
