/* Output escaping for queue reports. Addresses, ENVIDs, header lines and
 * reply texts come from remote peers, so every byte that could end a line
 * in text output or a string in JSON is escaped. */
#ifndef RINGRELAY_CORE_QUEUE_REPORT_ESCAPE_H
#define RINGRELAY_CORE_QUEUE_REPORT_ESCAPE_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>

/* Size of a buffer for queue_report_iso_time(): "YYYY-MM-DDTHH:MM:SSZ"
 * with its NUL, and room for years past 9999. */
#define QUEUE_REPORT_ISO_MAX 32

/* queue_report_text writes len bytes with printable ASCII (0x20 to 0x7e),
 * tabs and valid UTF-8 unchanged, except the backslash, which becomes
 * "\\". Every other byte is written as "\xHH": control bytes, invalid
 * UTF-8, and the UTF-8 of C1 controls, line separators and bidirectional
 * formatting characters, which could disguise a report line. */
void queue_report_text(FILE *out, const char *bytes, size_t len);

/* queue_report_json writes len bytes as a JSON string with its quotes.
 * Valid UTF-8 sequences stay, '"', '\\' and control bytes are escaped,
 * and each byte of invalid UTF-8 becomes "\u00HH", the code point of
 * the same number, so the output is always valid JSON. */
void queue_report_json(FILE *out, const char *bytes, size_t len);

/* queue_report_json_str is queue_report_json() for a NUL-terminated
 * string, and writes null for NULL. */
void queue_report_json_str(FILE *out, const char *text);

/* queue_report_iso_time formats t as ISO 8601 UTC, such as
 * "2026-12-04T21:05:00Z". */
void queue_report_iso_time(char *buf, size_t size, time_t t);

/* queue_report_age formats an age in seconds in its largest whole unit
 * (s, m, h or d), rounded down, such as "45s", "12m", "3h" or "5d". A
 * negative age, from a clock set back, is "0s". */
void queue_report_age(char *buf, size_t size, long long seconds);

#endif
