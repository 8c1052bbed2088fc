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

const char *log_quote(char *buf, size_t size, const char *text, size_t len)
{
    size_t out = 0;

    if (size < 3) {
        if (size > 0) {
            buf[0] = '\0';
        }
        return buf;
    }
    buf[out++] = '"';
    for (size_t i = 0; i < len && out + 3 < size; i++) {
        unsigned char c = (unsigned char)text[i];

        if (c == '"' || c == '\\') {
            buf[out++] = '\\';
            buf[out++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            buf[out++] = '?';
        } else {
            buf[out++] = (char)c;
        }
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
