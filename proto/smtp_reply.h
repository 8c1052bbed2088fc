/* SMTP reply parser for the client side (RFC 5321 section 4.2), used by
 * the outbound engine and the load generator. Works on the receive buffer
 * in place. */
#ifndef RINGRELAY_PROTO_SMTP_REPLY_H
#define RINGRELAY_PROTO_SMTP_REPLY_H

#include <stddef.h>

enum smtp_reply_result {
    SMTP_REPLY_COMPLETE,   /* a whole (possibly multi-line) reply */
    SMTP_REPLY_INCOMPLETE, /* more bytes needed */
    SMTP_REPLY_INVALID,    /* not an SMTP reply */
};

/* smtp_reply: one reply. text points into the parsed buffer (the last
 * line, after the code and separator) and is not NUL-terminated. */
struct smtp_reply {
    int code;             /* 200..599 */
    const char *text;
    size_t text_len;
    const char *first;    /* start of the whole reply */
    size_t len;           /* bytes of the whole reply, CRLFs included */
};

/* smtp_reply_parse parses the reply starting at data[0..len). On
 * SMTP_REPLY_COMPLETE, reply->len bytes were consumed. Lines longer than
 * max_line bytes, CRLF included, are INVALID (RFC 5321 4.5.3.1.5 sets
 * 512), as soon as max_line bytes arrived without a CRLF. */
enum smtp_reply_result smtp_reply_parse(const char *data, size_t len,
                                        size_t max_line,
                                        struct smtp_reply *reply);

/* smtp_reply_has_keyword reports whether a multi-line EHLO reply at
 * reply->first advertises keyword (case-insensitive), e.g. "PIPELINING":
 * a line after the first starts with it, followed by a space or the end
 * of the line. The first line carries the server's domain, not a
 * keyword. */
int smtp_reply_has_keyword(const struct smtp_reply *reply,
                           const char *keyword);

#endif
