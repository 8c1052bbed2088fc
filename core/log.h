/* Event log: one line per event on stderr, as key=value pairs.
 *
 * Every line starts with a UTC timestamp and "level=..."; the caller's text
 * follows. Lines about a message start their text with "id=QUEUEID", lines
 * about a session with "session=N", so operators can grep either. Values
 * that may contain spaces (reply text, error strings) are written through
 * log_quote(). */
#ifndef RINGRELAY_CORE_LOG_H
#define RINGRELAY_CORE_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level {
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARNING,
    LOG_LEVEL_ERROR,
};

/* log_set_level sets the lowest level that is written. */
void log_set_level(enum log_level level);

/* log_parse_level maps "debug", "info", "warning" or "error" to a level.
 * Returns 0, or -1 for any other name. */
int log_parse_level(const char *name, enum log_level *level);

bool log_enabled(enum log_level level);

/* log_event writes one line. The text must not contain a newline; any
 * control byte in it is written as '?'. */
void log_event(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* log_quote copies text into buf as a double-quoted value: quotes and
 * backslashes get a backslash, control bytes become '?', valid UTF-8 is
 * kept and any other byte of 0x80 or more becomes \xHH, so the log stays
 * valid UTF-8. It truncates to fit, never inside an escape or a UTF-8
 * sequence. Returns buf. */
const char *log_quote(char *buf, size_t size, const char *text, size_t len);

/* log_utf8_length returns the length of the valid UTF-8 sequence
 * (RFC 3629) that starts text[0..len), 1 for ASCII, or 0 when the bytes
 * there are not valid UTF-8. len must be at least 1. */
size_t log_utf8_length(const unsigned char *text, size_t len);

/* Room for log_path() of any address up to 512 octets, every byte
 * escaped as \xHH. */
#define LOG_PATH_MAX 2064

/* log_path writes address as "<address>" when it is safe to log bare,
 * and otherwise as a quoted value (log_quote) of "<address>", so a quoted
 * local part with spaces, quotes or '=' cannot forge key=value fields.
 * Returns buf, which should have LOG_PATH_MAX bytes. */
const char *log_path(char *buf, size_t size, const char *address);

#define log_debug(...) log_event(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_event(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warning(...) log_event(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_error(...) log_event(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
