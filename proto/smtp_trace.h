/* Trace header (RFC 5321 section 4.4) that a relay writes in front of each
 * message it accepts. */
#ifndef RINGRELAY_PROTO_SMTP_TRACE_H
#define RINGRELAY_PROTO_SMTP_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct smtp_trace {
    const char *helo;        /* the client's EHLO/HELO name, may be "" */
    const char *client_ip;   /* textual address */
    const char *hostname;    /* this relay's name */
    bool esmtp;              /* EHLO was used */
    bool smtputf8;           /* the MAIL command had SMTPUTF8 */
    bool authenticated;      /* the client used AUTH */
    const char *auth_user;   /* the user to name, or NULL to name none */
    const char *queue_id;
    const char *rcpt;        /* the single recipient, or NULL when several */
    time_t when;
    const char *tls_version; /* "TLSv1.3", or NULL without TLS */
    const char *tls_cipher;  /* cipher suite name when tls_version is set */
    int tls_bits;            /* secret key bits of the cipher */
};

/* smtp_trace_received writes a folded "Received: ..." header ending in
 * CRLF into buf, NUL-terminated. Returns its length, or 0 when buf is too
 * small (1024 bytes always suffice). Header lines never start with '.',
 * so the result needs no dot-stuffing. Fields are capped, and characters
 * that could end a line or a token become '?'. A HELO name with U-labels
 * is written as A-labels, or as "unknown" when it has no valid A-label
 * form. An rcpt longer than a valid address leaves out the "for"
 * clause. With TLS the protocol is ESMTPS or UTF8SMTPS (RFC 3848, RFC
 * 6531), and a comment "(TLSv1.3 cipher NAME 256 bits)" follows it. An
 * authenticated session adds "A" to the protocol (ESMTPA, ESMTPSA,
 * UTF8SMTPA, UTF8SMTPSA) and, with auth_user set, the comment
 * "(authenticated as USER)" after the client address. A user name of
 * more than 128 bytes is left out, and bytes other than printable ASCII,
 * parentheses and backslashes become '?'. */
size_t smtp_trace_received(const struct smtp_trace *trace, char *buf,
                           size_t size);

#endif
