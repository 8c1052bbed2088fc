#include "core/queue_report_escape.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* queue_report_utf8_len returns the length of the valid UTF-8 sequence
 * that starts at bytes[0], or 0 when it is invalid: a stray continuation
 * byte, a truncated or overlong sequence, a surrogate, or a code point
 * above U+10FFFF (RFC 3629). */
static size_t queue_report_utf8_len(const unsigned char *bytes, size_t len,
                                    uint32_t *code_out)
{
    unsigned char c = bytes[0];
    uint32_t min;
    uint32_t code;
    size_t count;

    if (c >= 0xc2 && c <= 0xdf) {
        count = 2;
        min = 0x80;
        code = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        count = 3;
        min = 0x800;
        code = c & 0x0fu;
    } else if (c >= 0xf0 && c <= 0xf4) {
        count = 4;
        min = 0x10000;
        code = c & 0x07u;
    } else {
        return 0;
    }
    if (count > len) {
        return 0;
    }

    for (size_t i = 1; i < count; i++) {
        if ((bytes[i] & 0xc0) != 0x80) {
            return 0;
        }
        code = code << 6 | (bytes[i] & 0x3fu);
    }
    if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
        return 0;
    }
    *code_out = code;
    return count;
}

/* queue_report_unsafe_code returns true for code points that change how
 * a terminal shows the text around them: the C1 controls, the line and
 * paragraph separators and the bidirectional formatting characters. */
static bool queue_report_unsafe_code(uint32_t code)
{
    return (code >= 0x80 && code <= 0x9f) ||
           (code >= 0x200e && code <= 0x200f) ||
           (code >= 0x2028 && code <= 0x202e) ||
           (code >= 0x2066 && code <= 0x2069);
}

void queue_report_text(FILE *out, const char *bytes, size_t len)
{
    const unsigned char *p = (const unsigned char *)bytes;
    size_t i = 0;

    while (i < len) {
        unsigned char c = p[i];
        uint32_t code = 0;
        size_t seq;

        if (c == '\\') {
            fputs("\\\\", out);
            i++;
        } else if (c == '\t' || (c >= 0x20 && c <= 0x7e)) {
            fputc(c, out);
            i++;
        } else if (c >= 0x80 &&
                   (seq = queue_report_utf8_len(p + i, len - i, &code)) > 0 &&
                   !queue_report_unsafe_code(code)) {
            fwrite(p + i, 1, seq, out);
            i += seq;
        } else {
            fprintf(out, "\\x%02X", c);
            i++;
        }
    }
}

void queue_report_json(FILE *out, const char *bytes, size_t len)
{
    const unsigned char *p = (const unsigned char *)bytes;
    size_t i = 0;

    fputc('"', out);
    while (i < len) {
        unsigned char c = p[i];
        uint32_t code;
        size_t seq;

        if (c == '"' || c == '\\') {
            fprintf(out, "\\%c", c);
            i++;
        } else if (c >= 0x20 && c < 0x7f) {
            fputc(c, out);
            i++;
        } else if (c >= 0x80 && (seq = queue_report_utf8_len(p + i, len - i,
                                                             &code)) > 0) {
            fwrite(p + i, 1, seq, out);
            i += seq;
        } else {
            fprintf(out, "\\u%04X", c);
            i++;
        }
    }
    fputc('"', out);
}

void queue_report_json_str(FILE *out, const char *text)
{
    if (text == NULL) {
        fputs("null", out);
        return;
    }
    queue_report_json(out, text, strlen(text));
}

void queue_report_iso_time(char *buf, size_t size, time_t t)
{
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL ||
        strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(buf, size, "invalid");
    }
}

void queue_report_age(char *buf, size_t size, long long seconds)
{
    if (seconds < 0) {
        seconds = 0;
    }
    if (seconds < 60) {
        snprintf(buf, size, "%llds", seconds);
    } else if (seconds < 3600) {
        snprintf(buf, size, "%lldm", seconds / 60);
    } else if (seconds < 86400) {
        snprintf(buf, size, "%lldh", seconds / 3600);
    } else {
        snprintf(buf, size, "%lldd", seconds / 86400);
    }
}
