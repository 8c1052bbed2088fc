/* DATA body scanner: finds the end of a DATA body (RFC 5321 section
 * 4.1.1.4) in a byte stream fed in pieces of any size, and passes the body
 * on in wire form, dot-stuffing kept, without the final ".CRLF". The same
 * state turns BDAT chunk data (RFC 3030) into that wire form.
 *
 * Only CR LF "." CR LF ends the body; the start of the body counts as
 * following a CRLF. A CR or LF that is not part of a CRLF pair marks the
 * body as bad, so a different reading of the end (LF.LF, CR.CR, LF.CRLF,
 * CRLF.LF, CR.CRLF) can never hide a second message in this one. A NUL
 * byte marks the body as bad too, because neither RFC 5322 text nor 8bit
 * data (RFC 2045 section 2.8) may contain one.
 *
 * Line lengths are measured in the wire form passed on, CRLF included,
 * because that is the form the relay sends on after DATA. */
#ifndef RINGRELAY_PROTO_SMTP_BODY_H
#define RINGRELAY_PROTO_SMTP_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/smtp_hops.h"

/* Receives body bytes; returns 0, or -1 when storing them failed. */
/* A write function returns 0, -1 when storing failed, or
 * SMTP_BODY_NO_SPACE when storage is full. */
#define SMTP_BODY_NO_SPACE (-3)
typedef int smtp_body_write_fn(void *ctx, const char *data, size_t len);

enum smtp_body_state {
    SMTP_BODY_LINE_START, /* after CRLF, or at the start of the body */
    SMTP_BODY_LINE,       /* inside a line */
    SMTP_BODY_CR,         /* after a CR inside a line */
    SMTP_BODY_DOT,        /* after "." at the start of a line */
    SMTP_BODY_DOT_CR,     /* after ".CR" at the start of a line */
};

struct smtp_body {
    enum smtp_body_state state;
    size_t held;          /* bytes of ".CR" kept from earlier pieces */
    uint64_t size;        /* bytes counted against max_size */
    uint64_t max_size;    /* 0 for no limit */
    size_t line_len;      /* bytes passed on since the last LF */
    size_t max_line;      /* line limit, CRLF included; 0 for none */
    bool bare_eol;        /* a CR or LF outside a CRLF pair was seen */
    bool nul;             /* a NUL byte was seen */
    bool too_big;         /* the body went over max_size */
    bool line_too_long;   /* a line went over max_line */
    bool write_failed;    /* write returned -1 or SMTP_BODY_NO_SPACE */
    bool no_space;        /* write returned SMTP_BODY_NO_SPACE */
    bool raw;             /* BINARYMIME: BDAT data passes unchanged */
    struct smtp_hops hops; /* Received: fields in the header section */
    size_t max_hops;      /* Received: fields allowed; 0 for no limit */
    bool too_many_hops;   /* hops.count went over max_hops */
    smtp_body_write_fn *write;
    void *ctx;
};

/* smtp_body_start prepares b for a new body of at most max_size bytes
 * with lines of at most max_line bytes, with raw off and no hop limit.
 * Once the body turns out bad, too big, too long in a line, looping or
 * unstorable, no more bytes are passed to write. */
void smtp_body_start(struct smtp_body *b, uint64_t max_size,
                     size_t max_line, smtp_body_write_fn *write, void *ctx);

/* smtp_body_failed is true once the body can no longer be accepted. */
bool smtp_body_failed(const struct smtp_body *b);

/* smtp_body_scan consumes data[0..len) up to the end of the body. Returns
 * the bytes consumed, and sets *done when the final ".CRLF" was among
 * them; then the bytes after it are not part of the body. */
size_t smtp_body_scan(struct smtp_body *b, const char *data, size_t len,
                      bool *done);

/* smtp_body_stuff passes BDAT data[0..len) on in wire form: a '.' at the
 * start of a line gets a second '.'. A CR or LF outside a CRLF pair, or a
 * NUL, marks the body as bad, as in DATA; a CRLF may be split between
 * calls. With b->raw set the bytes pass unchanged and only the size
 * limit applies. */
void smtp_body_stuff(struct smtp_body *b, const char *data, size_t len);

/* smtp_body_finish_stuffed ends a body fed with smtp_body_stuff(). A
 * body whose last line has no CRLF gets one, so that the stored wire form
 * can be sent after DATA; a CR at the very end is a bare CR. A raw body
 * is left as it is. */
void smtp_body_finish_stuffed(struct smtp_body *b);

#endif
