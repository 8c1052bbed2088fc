/* Received: header (RFC 5321 section 4.4, date-time from RFC 5322
 * section 3.3).
 *
 * The header is built from tokens. A token goes on the current line when
 * the line stays within TRACE_LINE_MAX, else the header folds before it
 * (CRLF and a tab). Fields from the network are filtered to a safe
 * character set and capped, so they cannot end a line or start a new
 * header, and the whole header stays under about 1 KiB.
 *
 * A HELO name with U-labels is written as A-labels (libidn2), with or
 * without SMTPUTF8. The header must stay 7-bit for a message relayed
 * with plain DATA, and A-labels are valid in an SMTPUTF8 message too.
 * A name that libidn2 rejects, or whose A-label form is longer than
 * TRACE_HELO_MAX, is left out ("from unknown"), and the client IP still
 * identifies the sender. */
#include "proto/smtp_trace.h"

#include <ctype.h>
#include <idn2.h>
#include <stdio.h>
#include <string.h>

/* RFC 5322 2.1.1: lines SHOULD be at most 78 characters before CRLF. */
#define TRACE_LINE_MAX 78

#define TRACE_HELO_MAX 64
#define TRACE_HOSTNAME_MAX 255
#define TRACE_IP_MAX 64
#define TRACE_ID_MAX 64

/* RFC 5321 4.5.3.1.3: a path is at most 256 octets with its brackets. */
#define TRACE_RCPT_MAX 254

/* The longest user name written; a longer one is left out rather than
 * cut, since a cut name would be a wrong one. */
#define TRACE_USER_MAX 128

/* Buffer size for one token. The longest is "<rcpt>;". */
#define TRACE_TOKEN_MAX 320

struct trace_writer {
    char *buf;
    size_t size;
    size_t len;
    size_t line_len;    /* characters on the current line */
    bool overflow;
};

enum trace_charset {
    TRACE_CHARS_NAME,    /* letters, digits, "-._:[]" */
    TRACE_CHARS_ADDRESS, /* printable ASCII and UTF-8 bytes, and spaces
                          * only inside a quoted local part */
    TRACE_CHARS_COMMENT, /* printable ASCII but space, parentheses and
                          * backslash */
};

static bool trace_name_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9')) {
        return true;
    }
    return c != '\0' && strchr("-._:[]", c) != NULL;
}

/* trace_clean copies at most max bytes of src into dst (size max + 1),
 * replacing bytes outside charset with '?'. Returns the length. A space
 * inside a quoted local part, as in "x y"@example.test, is kept, because
 * RFC 5321 allows it there and the angle brackets still delimit the
 * path. */
static size_t trace_clean(char *dst, const char *src, size_t max,
                          enum trace_charset charset)
{
    bool quoted = false;
    bool escaped = false;
    size_t len = 0;

    for (; src[len] != '\0' && len < max; len++) {
        unsigned char c = (unsigned char)src[len];
        bool ok;

        if (charset == TRACE_CHARS_NAME) {
            ok = trace_name_char(c);
        } else if (charset == TRACE_CHARS_COMMENT) {
            ok = c > 0x20 && c < 0x7f && strchr("()\\", c) == NULL;
        } else {
            ok = (c > 0x20 || (c == 0x20 && quoted)) && c != 0x7f;
            if (escaped) {
                escaped = false;
            } else if (quoted && c == '\\') {
                escaped = true;
            } else if (c == '"') {
                quoted = !quoted;
            }
        }
        dst[len] = ok ? (char)c : '?';
    }
    dst[len] = '\0';
    return len;
}

static void trace_write(struct trace_writer *w, const char *data,
                        size_t len)
{
    if (w->overflow || w->size - w->len <= len) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->len, data, len);
    w->len += len;
    w->line_len += len;
}

/* trace_token appends token after a space, or after a fold when the line
 * would grow past TRACE_LINE_MAX or fold_before is set. The first token
 * of a line is never folded away, so an over-long token overflows its
 * line instead. */
static void trace_token(struct trace_writer *w, const char *token,
                        bool fold_before)
{
    size_t len = strlen(token);

    if (w->line_len == 0) {
        trace_write(w, token, len);
        return;
    }
    if (fold_before || w->line_len + 1 + len > TRACE_LINE_MAX) {
        trace_write(w, "\r\n\t", 3);
        w->line_len = 1;
    } else {
        trace_write(w, " ", 1);
    }
    trace_write(w, token, len);
}

/* trace_format_date writes an RFC 5322 date-time in UTC, in English
 * whatever the locale, e.g. "Tue, 4 Mar 2025 09:05:00 +0000". */
static void trace_format_date(char *buf, size_t size, time_t when)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu",
                                    "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May",
                                       "Jun", "Jul", "Aug", "Sep", "Oct",
                                       "Nov", "Dec"};
    struct tm tm;

    if (gmtime_r(&when, &tm) == NULL) {
        when = 0;
        gmtime_r(&when, &tm);
    }
    snprintf(buf, size, "%s, %d %s %d %02d:%02d:%02d +0000",
             days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static bool trace_is_ascii(const char *text)
{
    for (; *text != '\0'; text++) {
        if ((unsigned char)*text >= 0x80) {
            return false;
        }
    }
    return true;
}

/* trace_is_hostname reports whether name has only letters, digits, '-'
 * and '.'. TR46 maps some characters, such as U+00A0 NO-BREAK SPACE, to
 * ASCII that no host name has, and libidn2 2.3.3 passes them through. */
static bool trace_is_hostname(const char *name)
{
    for (const char *p = name; *p != '\0'; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.') {
            return false;
        }
    }
    return true;
}

/* trace_helo_name writes into helo (TRACE_HELO_MAX + 1 bytes) the name to
 * put after "from": the cleaned HELO name, its A-label form when it has
 * non-ASCII bytes, or "unknown" when it is empty or cannot be converted. */
static void trace_helo_name(char *helo, const char *name)
{
    char *alabels = NULL;
    size_t len = 0;

    if (name != NULL && trace_is_ascii(name)) {
        len = trace_clean(helo, name, TRACE_HELO_MAX, TRACE_CHARS_NAME);
    } else if (name != NULL &&
               idn2_to_ascii_8z(name, &alabels, IDN2_NFC_INPUT |
                                IDN2_NONTRANSITIONAL) == IDN2_OK &&
               strlen(alabels) <= TRACE_HELO_MAX &&
               trace_is_hostname(alabels)) {
        len = trace_clean(helo, alabels, TRACE_HELO_MAX, TRACE_CHARS_NAME);
    }
    idn2_free(alabels);
    if (len == 0) {
        snprintf(helo, TRACE_HELO_MAX + 1, "unknown");
    }
}

/* trace_write_user writes "(authenticated as USER)" for an
 * authenticated session that names its user. */
static void trace_write_user(struct trace_writer *w,
                             const struct smtp_trace *trace)
{
    char user[TRACE_USER_MAX + 1];
    char token[TRACE_TOKEN_MAX];

    if (!trace->authenticated || trace->auth_user == NULL ||
        trace->auth_user[0] == '\0' ||
        strlen(trace->auth_user) > TRACE_USER_MAX) {
        return;
    }
    trace_clean(user, trace->auth_user, TRACE_USER_MAX, TRACE_CHARS_COMMENT);
    trace_token(w, "(authenticated", false);
    trace_token(w, "as", false);
    snprintf(token, sizeof(token), "%s)", user);
    trace_token(w, token, false);
}

/* trace_write_from writes "Received: from HELO ([IP])". An IPv6 address
 * gets the "IPv6:" tag of an RFC 5321 address literal. */
static void trace_write_from(struct trace_writer *w,
                             const struct smtp_trace *trace)
{
    char helo[TRACE_HELO_MAX + 1];
    char ip[TRACE_IP_MAX + 1];
    char token[TRACE_TOKEN_MAX];
    const char *client_ip = trace->client_ip ? trace->client_ip : "";

    trace_helo_name(helo, trace->helo);
    trace_clean(ip, client_ip, TRACE_IP_MAX, TRACE_CHARS_NAME);

    trace_token(w, "Received:", false);
    trace_token(w, "from", false);
    trace_token(w, helo, false);
    snprintf(token, sizeof(token), "([%s%s])",
             strchr(ip, ':') != NULL ? "IPv6:" : "", ip);
    trace_token(w, token, false);
    trace_write_user(w, trace);
}

/* trace_protocol returns the "with" keyword: RFC 6531 names
 * UTF8SMTP for a transaction that used SMTPUTF8. RFC 3848 adds "S" for
 * TLS and "A" when the client authenticated, and RFC 6531 registers the
 * same forms of UTF8SMTP. The registry has no TLS form of plain SMTP
 * (HELO), so that stays SMTP and only the TLS comment shows it. */
static const char *trace_protocol(const struct smtp_trace *trace)
{
    bool tls = trace->tls_version != NULL;

    if (trace->smtputf8) {
        if (trace->authenticated) {
            return tls ? "UTF8SMTPSA" : "UTF8SMTPA";
        }
        return tls ? "UTF8SMTPS" : "UTF8SMTP";
    }
    if (!trace->esmtp) {
        return "SMTP";
    }
    if (trace->authenticated) {
        return tls ? "ESMTPSA" : "ESMTPA";
    }
    return tls ? "ESMTPS" : "ESMTP";
}

/* trace_write_tls writes the comment "(TLSv1.3 cipher NAME 256 bits)"
 * that names the protocol version and cipher of the connection. */
static void trace_write_tls(struct trace_writer *w,
                            const struct smtp_trace *trace)
{
    char version[TRACE_ID_MAX + 1];
    char cipher[TRACE_ID_MAX + 1];
    char token[TRACE_TOKEN_MAX];

    trace_clean(version, trace->tls_version, TRACE_ID_MAX,
                TRACE_CHARS_NAME);
    trace_clean(cipher, trace->tls_cipher != NULL ? trace->tls_cipher : "",
                TRACE_ID_MAX, TRACE_CHARS_NAME);
    snprintf(token, sizeof(token), "(%s", version);
    trace_token(w, token, false);
    trace_token(w, "cipher", false);
    trace_token(w, cipher, false);
    snprintf(token, sizeof(token), "%d", trace->tls_bits);
    trace_token(w, token, false);
    trace_token(w, "bits)", false);
}

/* trace_write_by writes "by HOST (ringrelay) with ESMTP id ID", with ';'
 * after the ID when no "for" clause follows. */
static void trace_write_by(struct trace_writer *w,
                           const struct smtp_trace *trace, bool semicolon)
{
    char host[TRACE_HOSTNAME_MAX + 1];
    char id[TRACE_ID_MAX + 1];
    char token[TRACE_TOKEN_MAX];
    const char *hostname = trace->hostname ? trace->hostname : "";
    const char *queue_id = trace->queue_id ? trace->queue_id : "";

    if (trace_clean(host, hostname, TRACE_HOSTNAME_MAX, TRACE_CHARS_NAME) ==
        0) {
        snprintf(host, sizeof(host), "localhost");
    }
    trace_clean(id, queue_id, TRACE_ID_MAX, TRACE_CHARS_NAME);

    trace_token(w, "by", true);
    trace_token(w, host, false);
    trace_token(w, "(ringrelay)", false);
    trace_token(w, "with", false);
    trace_token(w, trace_protocol(trace), false);
    if (trace->tls_version != NULL) {
        trace_write_tls(w, trace);
    }
    trace_token(w, "id", false);
    snprintf(token, sizeof(token), "%s%s", id, semicolon ? ";" : "");
    trace_token(w, token, false);
}

size_t smtp_trace_received(const struct smtp_trace *trace, char *buf,
                           size_t size)
{
    struct trace_writer w = {.buf = buf, .size = size};
    char rcpt[TRACE_RCPT_MAX + 1];
    char token[TRACE_TOKEN_MAX];
    char date[64];
    bool with_for = trace->rcpt != NULL &&
                    strlen(trace->rcpt) <= TRACE_RCPT_MAX;

    /* A recipient too long to be valid is left out rather than cut, since
     * "for" is optional and a cut address would be a wrong one. */
    trace_write_from(&w, trace);
    trace_write_by(&w, trace, !with_for);
    if (with_for) {
        trace_clean(rcpt, trace->rcpt, TRACE_RCPT_MAX, TRACE_CHARS_ADDRESS);
        snprintf(token, sizeof(token), "<%s>;", rcpt);
        trace_token(&w, "for", true);
        trace_token(&w, token, false);
    }

    trace_format_date(date, sizeof(date), trace->when);
    trace_token(&w, date, false);
    trace_write(&w, "\r\n", 2);
    if (w.overflow) {
        return 0;
    }
    buf[w.len] = '\0';
    return w.len;
}
