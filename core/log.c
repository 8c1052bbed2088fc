#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum log_level log_min_level = LOG_LEVEL_INFO;

static const char *const log_level_names[] = {
    [LOG_LEVEL_DEBUG] = "debug",
    [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_WARNING] = "warning",
    [LOG_LEVEL_ERROR] = "error",
};

void log_set_level(enum log_level level)
{
    log_min_level = level;
}

int log_parse_level(const char *name, enum log_level *level)
{
    for (size_t i = 0; i < sizeof(log_level_names) / sizeof(*log_level_names);
         i++) {
        if (strcmp(name, log_level_names[i]) == 0) {
            *level = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

bool log_enabled(enum log_level level)
{
    return level >= log_min_level;
}

void log_event(enum log_level level, const char *fmt, ...)
{
    char line[2048];
    struct timeval now;
    struct tm tm;
    va_list ap;
    size_t used;
    int n;

    if (!log_enabled(level)) {
        return;
    }
    gettimeofday(&now, NULL);
    gmtime_r(&now.tv_sec, &tm);
    used = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(line + used, sizeof(line) - used, ".%03ldZ level=%s ",
                 (long)(now.tv_usec / 1000), log_level_names[level]);
    used += (size_t)n;

    va_start(ap, fmt);
    n = vsnprintf(line + used, sizeof(line) - used - 1, fmt, ap);
    va_end(ap);
    if (n < 0) {
        n = 0;
    }
    if ((size_t)n >= sizeof(line) - used - 1) {
        n = (int)(sizeof(line) - used - 2);
    }
    for (size_t i = used; i < used + (size_t)n; i++) {
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) {
            line[i] = '?';
        }
    }
    used += (size_t)n;
    line[used++] = '\n';

    /* One write per line keeps lines whole when several processes share
     * stderr. A failed log write has nowhere to be reported. */
    if (write(STDERR_FILENO, line, used) < 0) {
        return;
    }
}

size_t log_utf8_length(const unsigned char *text, size_t len)
{
    unsigned char c = text[0];
    size_t need;
    unsigned min;
    unsigned code;

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
        code = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        code = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        code = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len < need) {
        return 0;
    }
    for (size_t i = 1; i < need; i++) {
        if ((text[i] & 0xc0) != 0x80) {
            return 0;
        }
        code = (code << 6) | (text[i] & 0x3f);
    }
    /* RFC 3629 section 3: no overlong forms, no surrogates, nothing past
     * U+10FFFF. */
    if (code < min || (code >= 0xd800 && code <= 0xdfff) ||
        code > 0x10ffff) {
        return 0;
    }
    return need;
}

/* Appends the escaped form of text[i], or of the UTF-8 sequence starting
 * there, to buf when it fits before the closing quote. Returns the number
 * of input bytes taken, or 0 when out of room. */
static size_t quote_one(char *buf, size_t size, size_t *out,
                        const unsigned char *text, size_t len)
{
    unsigned char c = text[0];
    size_t run = log_utf8_length(text, len);
    size_t room = size - *out - 2; /* the closing quote and the NUL */

    if (c == '"' || c == '\\') {
        if (room < 2) {
            return 0;
        }
        buf[(*out)++] = '\\';
        buf[(*out)++] = (char)c;
        return 1;
    }
    if (c < 0x20 || c == 0x7f) {
        if (room < 1) {
            return 0;
        }
        buf[(*out)++] = '?';
        return 1;
    }
    if (run == 0) {
        if (room < 4) {
            return 0;
        }
        snprintf(buf + *out, 5, "\\x%02X", c);
        *out += 4;
        return 1;
    }
    if (room < run) {
        return 0;
    }
    memcpy(buf + *out, text, run);
    *out += run;
    return run;
}

const char *log_quote(char *buf, size_t size, const char *text, size_t len)
{
    const unsigned char *bytes = (const unsigned char *)text;
    size_t out = 0;
    size_t i = 0;

    if (size < 3) {
        if (size > 0) {
            buf[0] = '\0';
        }
        return buf;
    }
    buf[out++] = '"';
    while (i < len) {
        size_t taken = quote_one(buf, size, &out, bytes + i, len - i);

        if (taken == 0) {
            break;
        }
        i += taken;
    }
    buf[out++] = '"';
    buf[out] = '\0';
    return buf;
}

/* Return true when text can be logged without quotes: it is printable
 * ASCII with no space, quote, backslash or '=', which key=value readers
 * split on. */
static bool log_bare_safe(const char *text)
{
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        if (*c <= 0x20 || *c >= 0x7f || *c == '"' || *c == '\\'
            || *c == '=') {
            return false;
        }
    }
    return true;
}

const char *log_path(char *buf, size_t size, const char *address)
{
    char bracketed[LOG_PATH_MAX];
    int len;

    len = snprintf(bracketed, sizeof(bracketed), "<%s>", address);
    if (len < 0) {
        len = 0;
        bracketed[0] = '\0';
    } else if ((size_t)len >= sizeof(bracketed)) {
        len = (int)sizeof(bracketed) - 1;
    }
    if (log_bare_safe(address) && (size_t)len < size) {
        memcpy(buf, bracketed, (size_t)len + 1);
        return buf;
    }
    return log_quote(buf, size, bracketed, (size_t)len);
}
