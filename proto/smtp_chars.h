/* Byte classes for the SMTP parsers: one 256-entry table, indexed by an
 * unsigned byte, whose entries are sets of SMTP_CHAR_* flags. The
 * character sets are the ABNF rules of RFC 5321 section 4.1.2. */
#ifndef RINGRELAY_PROTO_SMTP_CHARS_H
#define RINGRELAY_PROTO_SMTP_CHARS_H

#include <stdbool.h>
#include <stdint.h>

enum {
    SMTP_CHAR_ALPHA = 1 << 0,    /* A-Z a-z */
    SMTP_CHAR_DIGIT = 1 << 1,    /* 0-9 */
    SMTP_CHAR_ATEXT = 1 << 2,    /* atext (RFC 5322), ASCII only */
    SMTP_CHAR_QTEXT = 1 << 3,    /* qtextSMTP: %d32-33 / %d35-91 / %d93-126 */
    SMTP_CHAR_DCONTENT = 1 << 4, /* dcontent: %d33-90 / %d94-126 */
    SMTP_CHAR_XVALUE = 1 << 5,   /* esmtp-value: %d33-60 / %d62-126 */
    SMTP_CHAR_LDH = 1 << 6,      /* letter, digit or hyphen */
    SMTP_CHAR_EOL = 1 << 7,      /* CR or LF */
    SMTP_CHAR_LINE_BAD = 1 << 8, /* rejected inside a command line: NUL, CR */
    SMTP_CHAR_8BIT = 1 << 9,     /* 0x80-0xff */
    SMTP_CHAR_BLANK = 1 << 10,   /* SP or HTAB */
};

extern const uint16_t smtp_char_class[256];

static inline bool smtp_char_is(char c, unsigned classes)
{
    return (smtp_char_class[(unsigned char)c] & classes) != 0;
}

#endif
