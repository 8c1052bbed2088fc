/* Hop counter: counts the Received: header fields of a message as its
 * bytes pass, to stop mail loops (RFC 5321 section 6.3).
 *
 * Only the header section counts, which ends at the first empty line. A
 * field counts when a line starts with "Received", in any case, followed
 * by optional spaces or tabs and a colon (RFC 5322 obs-optional allows the
 * blanks). A continuation line starts with a space or tab, so it never
 * counts. A line ends at LF, so a CRLF or a bare LF both end it; the body
 * scanner rejects the bare one separately. The bytes may come in pieces
 * cut anywhere. */
#ifndef RINGRELAY_PROTO_SMTP_HOPS_H
#define RINGRELAY_PROTO_SMTP_HOPS_H

#include <stddef.h>

enum smtp_hops_state {
    SMTP_HOPS_LINE_START, /* at the start of a header line */
    SMTP_HOPS_NAME,       /* matched part of "Received" */
    SMTP_HOPS_BLANKS,     /* after "Received", before the colon */
    SMTP_HOPS_EMPTY_CR,   /* a line that so far is a lone CR */
    SMTP_HOPS_SKIP,       /* rest of a line that is not a Received: */
    SMTP_HOPS_DONE,       /* past the header section */
};

struct smtp_hops {
    enum smtp_hops_state state;
    size_t matched;       /* bytes of "received" matched in NAME */
    size_t count;         /* Received: fields seen so far */
};

/* smtp_hops_start prepares h for a new message. */
void smtp_hops_start(struct smtp_hops *h);

/* smtp_hops_scan counts the fields that data[0..len) completes. The
 * bytes are the message as stored (DATA dot-stuffing is harmless, since a
 * header line does not start with a dot). */
void smtp_hops_scan(struct smtp_hops *h, const char *data, size_t len);

#endif
