/* SMTP reply parser (RFC 5321 section 4.2).
 *
 * Grammar accepted, per line: Reply-code = %x32-35 %x30-35 %x30-39, then
 * '-' (more lines follow), ' ' or nothing (last line), then text and CRLF.
 * A bare CR or bare LF is INVALID, so a reply always ends on CRLF. */
#include "proto/smtp_reply.h"

#include <stdbool.h>
#include <string.h>

struct reply_line {
    int code;
    bool last;          /* no '-' after the code */
    size_t text_offset; /* from the start of the line */
    size_t text_len;
    size_t len;         /* bytes of the line, CRLF included */
};

/* reply_check_code validates the code digits present in line[0..avail)
 * and, once all three are there, stores the code. expected is the code of
 * the reply's first line, or 0 on the first line. */
static enum smtp_reply_result reply_check_code(const char *line,
                                               size_t avail, int expected,
                                               int *code)
{
    static const char lowest[3] = {'2', '0', '0'};
    static const char highest[3] = {'5', '5', '9'};
    size_t digits = avail < 3 ? avail : 3;

    for (size_t i = 0; i < digits; i++) {
        if (line[i] < lowest[i] || line[i] > highest[i]) {
            return SMTP_REPLY_INVALID;
        }
    }
    if (digits < 3) {
        return SMTP_REPLY_INCOMPLETE;
    }

    *code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (expected != 0 && *code != expected) {
        return SMTP_REPLY_INVALID;
    }
    return SMTP_REPLY_COMPLETE;
}

/* reply_find_crlf finds the CRLF that ends the line, scanning from start.
 * On COMPLETE, *end is the offset of the CR. */
static enum smtp_reply_result reply_find_crlf(const char *line,
                                              size_t avail, size_t start,
                                              size_t max_line, size_t *end)
{
    size_t limit = avail < max_line ? avail : max_line;

    for (size_t i = start; i < limit; i++) {
        if (line[i] == '\n') {
            return SMTP_REPLY_INVALID;
        }
        if (line[i] != '\r') {
            continue;
        }
        if (i + 1 >= limit) {
            break;
        }
        if (line[i + 1] != '\n') {
            return SMTP_REPLY_INVALID;
        }
        *end = i;
        return SMTP_REPLY_COMPLETE;
    }

    /* No CRLF yet. Once max_line bytes have arrived without one, the line
     * can only end past the limit. */
    if (avail >= max_line) {
        return SMTP_REPLY_INVALID;
    }
    return SMTP_REPLY_INCOMPLETE;
}

static enum smtp_reply_result reply_parse_line(const char *line,
                                               size_t avail,
                                               size_t max_line,
                                               int expected,
                                               struct reply_line *out)
{
    enum smtp_reply_result result;
    size_t text_start;
    size_t end;

    result = reply_check_code(line, avail, expected, &out->code);
    if (result != SMTP_REPLY_COMPLETE) {
        return result;
    }
    if (avail < 4) {
        return avail >= max_line ? SMTP_REPLY_INVALID
                                 : SMTP_REPLY_INCOMPLETE;
    }

    if (line[3] == '-' || line[3] == ' ') {
        out->last = line[3] == ' ';
        text_start = 4;
    } else if (line[3] == '\r') {
        out->last = true;
        text_start = 3;
    } else {
        return SMTP_REPLY_INVALID;
    }

    result = reply_find_crlf(line, avail, 3, max_line, &end);
    if (result != SMTP_REPLY_COMPLETE) {
        return result;
    }
    out->text_offset = text_start;
    out->text_len = end - text_start;
    out->len = end + 2;
    return SMTP_REPLY_COMPLETE;
}

enum smtp_reply_result smtp_reply_parse(const char *data, size_t len,
                                        size_t max_line,
                                        struct smtp_reply *reply)
{
    struct reply_line line = {0};
    enum smtp_reply_result result;
    size_t pos = 0;
    int expected = 0;

    if (len == 0) {
        return SMTP_REPLY_INCOMPLETE;
    }

    /* The loop ends because every COMPLETE line advances pos by at least
     * five bytes and pos never passes len. */
    for (;;) {
        result = reply_parse_line(data + pos, len - pos, max_line, expected,
                                  &line);
        if (result != SMTP_REPLY_COMPLETE) {
            return result;
        }
        expected = line.code;
        if (line.last) {
            break;
        }
        pos += line.len;
        if (pos == len) {
            return SMTP_REPLY_INCOMPLETE;
        }
    }

    reply->code = line.code;
    reply->text = data + pos + line.text_offset;
    reply->text_len = line.text_len;
    reply->first = data;
    reply->len = pos + line.len;
    return SMTP_REPLY_COMPLETE;
}

static char reply_ascii_upper(char c)
{
    if (c >= 'a' && c <= 'z') {
        return (char)(c - 'a' + 'A');
    }
    return c;
}

/* reply_text_has_keyword matches keyword at the start of
 * text[0..len), followed by a space or the end of the text. */
static bool reply_text_has_keyword(const char *text, size_t len,
                                   const char *keyword, size_t keyword_len)
{
    if (len < keyword_len) {
        return false;
    }
    for (size_t i = 0; i < keyword_len; i++) {
        if (reply_ascii_upper(text[i]) != reply_ascii_upper(keyword[i])) {
            return false;
        }
    }
    return len == keyword_len || text[keyword_len] == ' ';
}

int smtp_reply_has_keyword(const struct smtp_reply *reply,
                           const char *keyword)
{
    size_t keyword_len = strlen(keyword);
    const char *line = reply->first;
    const char *end = reply->first + reply->len;
    bool first_line = true;

    if (keyword_len == 0) {
        return 0;
    }

    /* The reply was parsed already, so every line has a code and ends in
     * CRLF. */
    while (line + 5 <= end) {
        const char *cr = memchr(line, '\r', (size_t)(end - line));
        const char *text = line + 4;
        size_t text_len;

        if (cr == NULL) {
            break;
        }
        text_len = cr > text ? (size_t)(cr - text) : 0;
        if (!first_line &&
            reply_text_has_keyword(text, text_len, keyword, keyword_len)) {
            return 1;
        }
        first_line = false;
        line = cr + 2;
    }
    return 0;
}
