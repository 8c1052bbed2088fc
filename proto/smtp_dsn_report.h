/* Delivery status notifications (RFC 3464): the bytes of a bounce or
 * delay report about one message, in the form the queue stores a DATA
 * body (CRLF line endings, dot-stuffed, without the final ".CRLF").
 *
 * The report is multipart/report; report-type=delivery-status with three
 * parts: a text/plain explanation, the message/delivery-status fields and
 * the original message, as text/rfc822-headers (the header section only)
 * or as message/rfc822 (the whole message). */
#ifndef RINGRELAY_PROTO_SMTP_DSN_REPORT_H
#define RINGRELAY_PROTO_SMTP_DSN_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* The Action field of one recipient. */
enum smtp_dsn_action {
    SMTP_DSN_ACTION_FAILED,
    SMTP_DSN_ACTION_DELAYED,
};

/* The per-recipient fields of a report. Strings must not be NULL unless
 * stated. */
struct smtp_dsn_report_rcpt {
    const char *address;         /* Final-Recipient, without brackets */
    const char *orcpt;           /* "addr-type;address" decoded, "" if none */
    enum smtp_dsn_action action;
    const char *status;          /* "X.Y.Z", such as "5.1.1" */
    const char *diagnostic;      /* last reply, "550 5.1.1 ..."; "" if none */
    const char *remote_mta;      /* host name of the next hop; "" if none */
    time_t last_attempt;         /* wall clock, seconds */
    time_t retry_until;          /* delayed only: end of the queue
                                  * lifetime */
};

/* What the original message returns in the report. */
enum smtp_dsn_return {
    SMTP_DSN_RETURN_HEADERS,     /* text/rfc822-headers */
    SMTP_DSN_RETURN_FULL,        /* message/rfc822, when it fits */
};

struct smtp_dsn_report {
    const char *reporting_mta;   /* host name of this relay */
    const char *sender;          /* the original reverse path, To: */
    const char *envid;           /* decoded ENVID; "" or NULL if none */
    const char *message_id;      /* Message-ID value without brackets */
    time_t arrival;              /* Arrival-Date of the original */
    time_t now;                  /* Date: of the report */
    const struct smtp_dsn_report_rcpt *rcpts;
    size_t rcpt_count;           /* at least 1 */
    enum smtp_dsn_return ret;
    size_t full_max;             /* maximum original returned whole, in
                                  * bytes; a longer one returns headers */

    /* The original as the queue stores it: wire form, or raw octets when
     * binary is set. A binary original always returns headers only,
     * because message/rfc822 must not carry binary content. */
    const char *original;
    size_t original_len;
    bool binary;
};

/* smtp_dsn_report_build writes the report into a new buffer, *out (free
 * with free()), *out_len bytes without a NUL. Text from a remote reply
 * has its control characters replaced by spaces, so it cannot end a
 * field or a line. Bytes of the original are copied unchanged: an 8-bit
 * original makes an 8-bit report. Returns 0, or -1 with errno ENOMEM. */
int smtp_dsn_report_build(const struct smtp_dsn_report *report, char **out,
                          size_t *out_len);

/* smtp_dsn_status_from_reply returns the enhanced status code at the
 * start of reply text "CODE X.Y.Z ..." in out (at least 16 bytes), or
 * "4.0.0" or "5.0.0" by the reply code when the text has none. */
void smtp_dsn_status_from_reply(const char *reply, char *out,
                                size_t out_size);

#endif
