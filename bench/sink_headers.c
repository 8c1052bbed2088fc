#include "bench/sink_headers.h"

#include <string.h>
#include <strings.h>

/* A uint64_t has at most 20 decimal digits. */
#define SINK_HEADERS_DIGITS_MAX 20

void sink_headers_reset(struct sink_headers *headers)
{
    memset(headers, 0, sizeof(*headers));
    headers->rcpts = 1;
}

static bool headers_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Parse "[blanks] digits [blanks]" in text[0..len). Returns 0 or -1. */
static int headers_parse_number(const char *text, size_t len,
                                uint64_t *value)
{
    size_t pos = 0;
    size_t digits = 0;
    uint64_t number = 0;

    while (pos < len && headers_is_blank(text[pos])) {
        pos++;
    }
    while (pos < len && text[pos] >= '0' && text[pos] <= '9') {
        uint64_t digit = (uint64_t)(text[pos] - '0');

        if (++digits > SINK_HEADERS_DIGITS_MAX
            || number > (UINT64_MAX - digit) / 10) {
            return -1;
        }
        number = number * 10 + digit;
        pos++;
    }
    while (pos < len && headers_is_blank(text[pos])) {
        pos++;
    }
    if (digits == 0 || pos != len) {
        return -1;
    }
    *value = number;
    return 0;
}

/* Match "name[blanks]:" at the start of line; returns the offset after
 * the colon, or 0 when the line is another header. */
static size_t headers_match_name(const char *line, size_t len,
                                 const char *name)
{
    size_t name_len = strlen(name);
    size_t pos = name_len;

    if (len <= name_len || strncasecmp(line, name, name_len) != 0) {
        return 0;
    }
    while (pos < len && headers_is_blank(line[pos])) {
        pos++;
    }
    return pos < len && line[pos] == ':' ? pos + 1 : 0;
}

/* Store one header value; a repeat or an out-of-range value marks the
 * message bad, because its counts could not be trusted. */
static void headers_store(struct sink_headers *headers, bool *seen,
                          const char *text, size_t len, uint64_t min,
                          uint64_t max, uint64_t *out)
{
    uint64_t value;

    if (*seen || headers->line_cut
        || headers_parse_number(text, len, &value) < 0 || value < min
        || value > max) {
        headers->bad = true;
        return;
    }
    *seen = true;
    *out = value;
}

static void headers_line(struct sink_headers *headers)
{
    const char *line = headers->line;
    size_t len = headers->line_len;
    uint64_t rcpts = 1;
    size_t value;

    if (len > 0 && line[len - 1] == '\r' && !headers->line_cut) {
        len--;
    }
    if (len == 0 && !headers->line_cut) {
        headers->done = true;
        return;
    }
    if ((value = headers_match_name(line, len, "X-Blast-Seq")) != 0) {
        headers_store(headers, &headers->has_seq, line + value,
                      len - value, 1, UINT64_MAX, &headers->seq);
    } else if ((value = headers_match_name(line, len, "X-Blast-Sent"))
               != 0) {
        headers_store(headers, &headers->has_sent, line + value,
                      len - value, 0, UINT64_MAX, &headers->sent_us);
    } else if ((value = headers_match_name(line, len, "X-Blast-Rcpts"))
               != 0) {
        headers_store(headers, &headers->has_rcpts, line + value,
                      len - value, 1, SINK_HEADERS_RCPTS_MAX, &rcpts);
        headers->rcpts = (uint32_t)rcpts;
    }
}

void sink_headers_feed(struct sink_headers *headers, const char *data,
                       size_t len)
{
    while (len > 0 && !headers->done) {
        const char *lf = memchr(data, '\n', len);
        size_t used = lf != NULL ? (size_t)(lf - data) + 1 : len;
        size_t room = SINK_HEADERS_LINE_MAX - headers->line_len;
        size_t keep = lf != NULL ? used - 1 : used;

        if (keep > room) {
            keep = room;
            headers->line_cut = true;
        }
        memcpy(headers->line + headers->line_len, data, keep);
        headers->line_len += keep;
        headers->scanned += used;
        if (lf != NULL) {
            headers_line(headers);
            headers->line_len = 0;
            headers->line_cut = false;
        }
        if (headers->scanned >= SINK_HEADERS_SCAN_MAX) {
            headers->done = true;
        }
        data += used;
        len -= used;
    }
}

enum sink_headers_status
sink_headers_status(const struct sink_headers *headers)
{
    if (!headers->has_seq && !headers->has_sent && !headers->has_rcpts
        && !headers->bad) {
        return SINK_HEADERS_NONE;
    }
    if (headers->bad || !headers->has_seq || !headers->has_sent) {
        return SINK_HEADERS_BAD;
    }
    return SINK_HEADERS_OK;
}
