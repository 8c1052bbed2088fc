/* Values of the DSN parameters (RFC 3461): the xtext coding of ENVID and
 * ORCPT, and the NOTIFY and RET keywords. The server parses them from
 * MAIL and RCPT, and the outbound client writes them again for a next
 * hop that offers DSN. */
#ifndef RINGRELAY_PROTO_SMTP_DSN_H
#define RINGRELAY_PROTO_SMTP_DSN_H

#include <stdbool.h>
#include <stddef.h>

/* Maximum lengths of the ENVID and ORCPT values (RFC 3461) in
 * characters. They apply to the value as sent (xtext-encoded), and a
 * decoded value is never longer. */
#define SMTP_ENVID_MAX 100
#define SMTP_ORCPT_MAX 500

/* RET= of MAIL (RFC 3461). */
enum smtp_dsn_ret {
    SMTP_DSN_RET_UNSET, /* no RET=: the bounce code picks */
    SMTP_DSN_RET_FULL,  /* return the whole message in a DSN */
    SMTP_DSN_RET_HDRS,  /* return the headers only */
};

/* NOTIFY= of RCPT (RFC 3461), as bits. NEVER is never set
 * together with another bit. */
enum smtp_dsn_notify {
    SMTP_DSN_NOTIFY_SUCCESS = 1u << 0,
    SMTP_DSN_NOTIFY_FAILURE = 1u << 1,
    SMTP_DSN_NOTIFY_DELAY = 1u << 2,
    SMTP_DSN_NOTIFY_NEVER = 1u << 3,
};

/* Negative results of smtp_xtext_decode. */
enum smtp_xtext_error {
    SMTP_XTEXT_INVALID = -1,   /* not xtext, or the result does not fit */
    SMTP_XTEXT_CONTROL = -2,   /* "+XX" decodes to 0x00-0x1F or 0x7F */
    SMTP_XTEXT_NON_ASCII = -3, /* "+XX" decodes to 0x80-0xFF */
    SMTP_XTEXT_BAD_HEX = -4,   /* "+" without two upper-case hex digits */
};

/* smtp_xtext_decode decodes xtext in[0..len) into out, which has room for
 * out_size bytes with the NUL. "+XX" (two upper-case hex digits) is one
 * byte, and every other byte must be an xchar: '!' to '~' except '+' and
 * '='. A decoded byte outside ' ' to '~' is rejected, so the value can go
 * into a DSN header field as it is. Returns the decoded length, or a
 * negative enum smtp_xtext_error. */
long smtp_xtext_decode(const char *in, size_t len, char *out,
                       size_t out_size);

/* smtp_xtext_error_reason returns the reply text for a negative result
 * of smtp_xtext_decode. */
const char *smtp_xtext_error_reason(long error);

/* smtp_dsn_check_utf8_addr checks the escapes of a decoded utf-8 ORCPT
 * address (RFC 6533 utf-8-addr-xtext): each backslash must start
 * "\x{HEX}" with 1 to 6 hex digits (either case) that name a Unicode
 * scalar value, so no surrogate (D800-DFFF) and nothing above 10FFFF.
 * Returns NULL, or the reason the address is invalid. NOTE: only the code
 * point is checked, so an escape that the stricter HEXPOINT rule of RFC
 * 6533 may reject, such as one with a leading zero, is accepted. */
const char *smtp_dsn_check_utf8_addr(const char *address);

/* smtp_xtext_encode writes text as xtext into out[0..out_size) with a
 * NUL. Returns the encoded length, or -1 when it does not fit. */
long smtp_xtext_encode(const char *text, char *out, size_t out_size);

/* smtp_dsn_parse_notify parses a NOTIFY= value into smtp_dsn_notify bits.
 * Returns NULL, or the reason the value is invalid. */
const char *smtp_dsn_parse_notify(const char *text, size_t len,
                                  unsigned *notify);

/* smtp_dsn_format_notify writes the NOTIFY= value for notify bits (not
 * 0), e.g. "SUCCESS,FAILURE", into out[0..out_size). */
void smtp_dsn_format_notify(unsigned notify, char *out, size_t out_size);

/* smtp_dsn_ret_name returns "FULL" or "HDRS", or NULL when unset. */
const char *smtp_dsn_ret_name(enum smtp_dsn_ret ret);

#endif
