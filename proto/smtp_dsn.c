#include "proto/smtp_dsn.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *keyword;
    unsigned bit;
} smtp_dsn_notify_keywords[] = {
    {"SUCCESS", SMTP_DSN_NOTIFY_SUCCESS},
    {"FAILURE", SMTP_DSN_NOTIFY_FAILURE},
    {"DELAY", SMTP_DSN_NOTIFY_DELAY},
    {"NEVER", SMTP_DSN_NOTIFY_NEVER},
};

#define SMTP_DSN_NOTIFY_COUNT                                        \
    (sizeof(smtp_dsn_notify_keywords) / sizeof(smtp_dsn_notify_keywords[0]))

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static bool xtext_is_xchar(char c)
{
    return c >= '!' && c <= '~' && c != '+' && c != '=';
}

long smtp_xtext_decode(const char *in, size_t len, char *out,
                       size_t out_size)
{
    size_t used = 0;

    if (out_size == 0) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        char c = in[i];

        if (c == '+') {
            int high = i + 1 < len ? hex_value(in[i + 1]) : -1;
            int low = i + 2 < len ? hex_value(in[i + 2]) : -1;
            int byte = high * 16 + low;

            if (high < 0 || low < 0) {
                return SMTP_XTEXT_BAD_HEX;
            }
            i += 2;
            if (byte < ' ' || byte == 0x7f) {
                return SMTP_XTEXT_CONTROL;
            }
            if (byte > 0x7f) {
                return SMTP_XTEXT_NON_ASCII;
            }
            c = (char)byte;
        } else if (!xtext_is_xchar(c)) {
            return SMTP_XTEXT_INVALID;
        }
        if (used + 1 >= out_size) {
            return SMTP_XTEXT_INVALID;
        }
        out[used++] = c;
    }
    out[used] = '\0';
    return (long)used;
}

const char *smtp_xtext_error_reason(long error)
{
    switch (error) {
    case SMTP_XTEXT_CONTROL:
        return "xtext decodes to a control character";
    case SMTP_XTEXT_NON_ASCII:
        return "xtext decodes to a non-ASCII byte";
    case SMTP_XTEXT_BAD_HEX:
        /* RFC 3461 section 4: hexchar is "+" and two of 0-9 and A-F. */
        return "'+' must be followed by two hex digits in upper case";
    default:
        return "invalid xtext";
    }
}

/* utf8_escape_end parses "\x{HEX}" at text, which starts with the
 * backslash. Returns the escape's length, or 0 with *reason set when the
 * escape is invalid. */
static size_t utf8_escape_end(const char *text, const char **reason)
{
    unsigned long code_point = 0;
    size_t digits = 0;

    *reason = "expected \\x{HEX} with 1 to 6 hex digits after a "
              "backslash";
    if (text[1] != 'x' || text[2] != '{') {
        return 0;
    }
    for (; digits < 7; digits++) {
        char c = text[3 + digits];
        int value = hex_value(c >= 'a' && c <= 'f' ? c - 'a' + 'A' : c);

        if (value < 0) {
            break;
        }
        code_point = code_point * 16 + (unsigned long)value;
    }
    if (digits == 0 || digits > 6 || text[3 + digits] != '}') {
        return 0;
    }
    if (code_point >= 0xD800 && code_point <= 0xDFFF) {
        *reason = "\\x{...} names a surrogate (D800 to DFFF), not a "
                  "Unicode scalar value";
        return 0;
    }
    if (code_point > 0x10FFFF) {
        *reason = "\\x{...} is above 10FFFF, the maximum Unicode code "
                  "point";
        return 0;
    }
    return 3 + digits + 1;
}

const char *smtp_dsn_check_utf8_addr(const char *address)
{
    const char *reason = NULL;

    for (size_t i = 0; address[i] != '\0'; i++) {
        size_t end;

        if (address[i] != '\\') {
            continue;
        }
        end = utf8_escape_end(address + i, &reason);
        if (end == 0) {
            return reason;
        }
        i += end - 1;
    }
    return NULL;
}

long smtp_xtext_encode(const char *text, char *out, size_t out_size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t used = 0;

    for (const char *p = text; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;

        if (xtext_is_xchar((char)c)) {
            if (used + 1 >= out_size) {
                return -1;
            }
            out[used++] = (char)c;
            continue;
        }
        if (used + 3 >= out_size) {
            return -1;
        }
        out[used++] = '+';
        out[used++] = hex[c >> 4];
        out[used++] = hex[c & 0xf];
    }
    if (out_size == 0) {
        return -1;
    }
    out[used] = '\0';
    return (long)used;
}

static unsigned notify_keyword_bit(const char *text, size_t len)
{
    for (size_t i = 0; i < SMTP_DSN_NOTIFY_COUNT; i++) {
        const char *keyword = smtp_dsn_notify_keywords[i].keyword;

        if (strlen(keyword) == len && strncasecmp(keyword, text, len) == 0) {
            return smtp_dsn_notify_keywords[i].bit;
        }
    }
    return 0;
}

const char *smtp_dsn_parse_notify(const char *text, size_t len,
                                  unsigned *notify)
{
    unsigned bits = 0;
    size_t pos = 0;

    while (pos <= len) {
        const char *comma = memchr(text + pos, ',', len - pos);
        size_t end = comma != NULL ? (size_t)(comma - text) : len;
        unsigned bit = notify_keyword_bit(text + pos, end - pos);

        if (bit == 0) {
            return "expected NEVER or a list of SUCCESS, FAILURE and DELAY";
        }
        if ((bits & bit) != 0) {
            return "a keyword is repeated";
        }
        bits |= bit;
        pos = end + 1;
    }
    if ((bits & SMTP_DSN_NOTIFY_NEVER) != 0 &&
        bits != SMTP_DSN_NOTIFY_NEVER) {
        return "NEVER must not be combined with other keywords";
    }
    *notify = bits;
    return NULL;
}

void smtp_dsn_format_notify(unsigned notify, char *out, size_t out_size)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < SMTP_DSN_NOTIFY_COUNT; i++) {
        int n;

        if ((notify & smtp_dsn_notify_keywords[i].bit) == 0) {
            continue;
        }
        n = snprintf(out + used, out_size - used, "%s%s",
                     used > 0 ? "," : "",
                     smtp_dsn_notify_keywords[i].keyword);
        if (n < 0 || (size_t)n >= out_size - used) {
            return;
        }
        used += (size_t)n;
    }
}

const char *smtp_dsn_ret_name(enum smtp_dsn_ret ret)
{
    switch (ret) {
    case SMTP_DSN_RET_FULL:
        return "FULL";
    case SMTP_DSN_RET_HDRS:
        return "HDRS";
    case SMTP_DSN_RET_UNSET:
        break;
    }
    return NULL;
}
