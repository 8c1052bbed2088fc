#include "proto/smtp_dsn_report.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Maximum remote text copied into one field, in bytes. With the field
 * name it stays under the 998-byte line limit of RFC 5322. */
#define REPORT_TEXT_MAX 900

/* Maximum generated line, in bytes without the CRLF. */
#define REPORT_LINE_MAX 1000

struct report_buf {
    char *data;
    size_t len;
    size_t cap;
    bool failed;                /* out of memory: later appends do nothing */
};

static void buf_append(struct report_buf *buf, const char *data, size_t len)
{
    if (buf->failed) {
        return;
    }
    if (buf->len + len > buf->cap) {
        size_t cap = buf->cap > 0 ? buf->cap : 4096;
        char *grown;

        while (cap < buf->len + len) {
            cap *= 2;
        }
        grown = realloc(buf->data, cap);
        if (grown == NULL) {
            buf->failed = true;
            return;
        }
        buf->data = grown;
        buf->cap = cap;
    }
    memcpy(buf->data + buf->len, data, len);
    buf->len += len;
}

/* buf_line appends one generated line with its CRLF, dot-stuffed like a
 * DATA body. A line longer than REPORT_LINE_MAX is cut. */
static void buf_line(struct report_buf *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void buf_line(struct report_buf *buf, const char *fmt, ...)
{
    char line[REPORT_LINE_MAX + 1];
    va_list ap;
    int len;

    va_start(ap, fmt);
    len = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (len < 0) {
        buf->failed = true;
        return;
    }
    if ((size_t)len > REPORT_LINE_MAX) {
        len = REPORT_LINE_MAX;
    }
    if (line[0] == '.') {
        buf_append(buf, ".", 1);
    }
    buf_append(buf, line, (size_t)len);
    buf_append(buf, "\r\n", 2);
}

/* report_clean copies text into out with every control character
 * replaced by a space, so a CR or LF from a remote reply cannot end a
 * field, and cuts it at REPORT_TEXT_MAX bytes. */
static const char *report_clean(const char *text, char *out, size_t size)
{
    size_t used = 0;

    for (size_t i = 0; text != NULL && text[i] != '\0' && used + 1 < size &&
                       used < REPORT_TEXT_MAX;
         i++) {
        unsigned char c = (unsigned char)text[i];

        out[used++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    out[used] = '\0';
    return out;
}

/* report_date formats when as an RFC 5322 date-time in UTC. */
static const char *report_date(time_t when, char *out, size_t size)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu",
                                     "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;

    /* Names come from tables, not strftime, so the locale cannot change
     * them. */
    if (gmtime_r(&when, &tm) == NULL) {
        snprintf(out, size, "Thu, 01 Jan 1970 00:00:00 +0000");
        return out;
    }
    snprintf(out, size, "%s, %02d %s %04d %02d:%02d:%02d +0000",
             days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return out;
}

/* report_header_length returns the length of the original's header
 * section with the empty line that ends it, or the whole length when
 * there is no empty line. */
static size_t report_header_length(const char *data, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (data[i] != '\n') {
            continue;
        }
        if (data[i + 1] == '\n') {
            return i + 2;
        }
        if (data[i + 1] == '\r' && i + 2 < len && data[i + 2] == '\n') {
            return i + 3;
        }
    }
    return len;
}

static bool report_has_8bit(const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)data[i] >= 0x80) {
            return true;
        }
    }
    return false;
}

/* report_copy_raw appends raw octets line by line, ending each line with
 * CRLF and dot-stuffing it, so bare CR or LF in a binary original cannot
 * break the report's structure. */
static void report_copy_raw(struct report_buf *buf, const char *data,
                            size_t len)
{
    size_t start = 0;

    while (start < len) {
        size_t end = start;
        size_t next;

        while (end < len && data[end] != '\n' && data[end] != '\r') {
            end++;
        }
        next = end;
        if (next < len && data[next] == '\r') {
            next++;
        }
        if (next < len && data[next] == '\n') {
            next++;
        }
        if (end > start && data[start] == '.') {
            buf_append(buf, ".", 1);
        }
        buf_append(buf, data + start, end - start);
        buf_append(buf, "\r\n", 2);
        start = next;
    }
}

/* report_copy_original appends the returned part of the original. Wire
 * form is dot-stuffed already, so it is copied as it is, with a final
 * CRLF when it lacks one. */
static void report_copy_original(struct report_buf *buf,
                                 const struct smtp_dsn_report *report,
                                 size_t len)
{
    if (report->binary) {
        report_copy_raw(buf, report->original, len);
        return;
    }
    buf_append(buf, report->original, len);
    if (len > 0 && report->original[len - 1] != '\n') {
        buf_append(buf, "\r\n", 2);
    }
}

/* report_boundary picks a MIME boundary that the returned bytes do not
 * contain. */
static void report_boundary(const struct smtp_dsn_report *report,
                            size_t returned, char *out, size_t size)
{
    char base[64];
    size_t used = 0;

    for (const char *p = report->message_id;
         *p != '\0' && used + 1 < sizeof(base); p++) {
        if ((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') ||
            (*p >= 'a' && *p <= 'z')) {
            base[used++] = *p;
        }
    }
    base[used] = '\0';
    for (unsigned n = 0;; n++) {
        snprintf(out, size, "=_report_%s_%u", base, n);
        if (memmem(report->original, returned, out, strlen(out)) == NULL) {
            return;
        }
    }
}

static bool report_any_failed(const struct smtp_dsn_report *report)
{
    for (size_t i = 0; i < report->rcpt_count; i++) {
        if (report->rcpts[i].action == SMTP_DSN_ACTION_FAILED) {
            return true;
        }
    }
    return false;
}

static void report_write_headers(struct report_buf *buf,
                                 const struct smtp_dsn_report *report,
                                 const char *boundary, bool eight_bit)
{
    char date[64];

    buf_line(buf, "From: Mail Delivery System <MAILER-DAEMON@%s>",
             report->reporting_mta);
    buf_line(buf, "To: <%s>", report->sender);
    buf_line(buf, "Subject: %s",
             report_any_failed(report)
                 ? "Undelivered Mail Returned to Sender"
                 : "Delayed Mail (still being retried)");
    buf_line(buf, "Date: %s", report_date(report->now, date, sizeof(date)));
    buf_line(buf, "Message-ID: <%s>", report->message_id);
    buf_line(buf, "Auto-Submitted: auto-replied");
    buf_line(buf, "MIME-Version: 1.0");
    buf_line(buf, "Content-Type: multipart/report; "
                  "report-type=delivery-status;");
    buf_line(buf, "\tboundary=\"%s\"", boundary);
    buf_line(buf, "Content-Transfer-Encoding: %s",
             eight_bit ? "8bit" : "7bit");
    buf_line(buf, "%s", "");
    buf_line(buf, "This is a MIME-encapsulated delivery status "
                  "notification.");
    buf_line(buf, "%s", "");
}

static void report_write_text(struct report_buf *buf,
                              const struct smtp_dsn_report *report)
{
    char clean[REPORT_TEXT_MAX + 1];
    char date[64];

    buf_line(buf, "Content-Type: text/plain; charset=us-ascii");
    buf_line(buf, "%s", "");
    buf_line(buf, "This report comes from the mail relay %s.",
             report->reporting_mta);
    buf_line(buf, "%s", "");
    for (size_t i = 0; i < report->rcpt_count; i++) {
        const struct smtp_dsn_report_rcpt *rcpt = &report->rcpts[i];

        if (rcpt->action == SMTP_DSN_ACTION_FAILED) {
            buf_line(buf, "Delivery to <%s> failed permanently.",
                     report_clean(rcpt->address, clean, sizeof(clean)));
        } else {
            buf_line(buf, "Delivery to <%s> is delayed. The relay keeps "
                          "trying until %s,",
                     report_clean(rcpt->address, clean, sizeof(clean)),
                     report_date(rcpt->retry_until, date, sizeof(date)));
            buf_line(buf, "so you need not send the message again.");
        }
        if (rcpt->diagnostic[0] != '\0') {
            buf_line(buf, "    Last reply: %s",
                     report_clean(rcpt->diagnostic, clean, sizeof(clean)));
        }
        buf_line(buf, "%s", "");
    }
}

static void report_write_rcpt_fields(struct report_buf *buf,
                                     const struct smtp_dsn_report_rcpt *rcpt)
{
    char clean[REPORT_TEXT_MAX + 1];
    char date[64];

    buf_line(buf, "%s", "");
    if (rcpt->orcpt != NULL && rcpt->orcpt[0] != '\0') {
        buf_line(buf, "Original-Recipient: %s",
                 report_clean(rcpt->orcpt, clean, sizeof(clean)));
    }
    /* NOTE: an SMTPUTF8 address goes out as rfc822 too, where RFC 6533
     * would use utf-8 in message/global-delivery-status. */
    buf_line(buf, "Final-Recipient: rfc822; %s",
             report_clean(rcpt->address, clean, sizeof(clean)));
    buf_line(buf, "Action: %s",
             rcpt->action == SMTP_DSN_ACTION_FAILED ? "failed" : "delayed");
    buf_line(buf, "Status: %s",
             report_clean(rcpt->status, clean, sizeof(clean)));
    if (rcpt->remote_mta[0] != '\0') {
        buf_line(buf, "Remote-MTA: dns; %s",
                 report_clean(rcpt->remote_mta, clean, sizeof(clean)));
    }
    if (rcpt->diagnostic[0] != '\0') {
        buf_line(buf, "Diagnostic-Code: smtp; %s",
                 report_clean(rcpt->diagnostic, clean, sizeof(clean)));
    }
    buf_line(buf, "Last-Attempt-Date: %s",
             report_date(rcpt->last_attempt, date, sizeof(date)));
    if (rcpt->action == SMTP_DSN_ACTION_DELAYED) {
        buf_line(buf, "Will-Retry-Until: %s",
                 report_date(rcpt->retry_until, date, sizeof(date)));
    }
}

static void report_write_status(struct report_buf *buf,
                                const struct smtp_dsn_report *report)
{
    char clean[REPORT_TEXT_MAX + 1];
    char date[64];

    buf_line(buf, "Content-Type: message/delivery-status");
    buf_line(buf, "%s", "");
    buf_line(buf, "Reporting-MTA: dns; %s", report->reporting_mta);
    if (report->envid != NULL && report->envid[0] != '\0') {
        buf_line(buf, "Original-Envelope-Id: %s",
                 report_clean(report->envid, clean, sizeof(clean)));
    }
    buf_line(buf, "Arrival-Date: %s",
             report_date(report->arrival, date, sizeof(date)));
    for (size_t i = 0; i < report->rcpt_count; i++) {
        report_write_rcpt_fields(buf, &report->rcpts[i]);
    }
    buf_line(buf, "%s", "");
}

int smtp_dsn_report_build(const struct smtp_dsn_report *report, char **out,
                          size_t *out_len)
{
    struct report_buf buf = {0};
    size_t headers = report_header_length(report->original,
                                          report->original_len);
    bool full = report->ret == SMTP_DSN_RETURN_FULL && !report->binary &&
                report->original_len <= report->full_max;
    size_t returned = full ? report->original_len : headers;
    bool eight_bit = report_has_8bit(report->original, returned);
    char boundary[128];

    /* A header section without an end is cut like a whole message. */
    if (returned > report->full_max) {
        returned = report->full_max;
    }
    report_boundary(report, returned, boundary, sizeof(boundary));
    report_write_headers(&buf, report, boundary, eight_bit);

    buf_line(&buf, "--%s", boundary);
    report_write_text(&buf, report);
    buf_line(&buf, "--%s", boundary);
    report_write_status(&buf, report);
    buf_line(&buf, "--%s", boundary);
    buf_line(&buf, "Content-Type: %s",
             full ? "message/rfc822" : "text/rfc822-headers");
    if (eight_bit) {
        buf_line(&buf, "Content-Transfer-Encoding: 8bit");
    }
    buf_line(&buf, "%s", "");
    report_copy_original(&buf, report, returned);
    buf_line(&buf, "%s", "");
    buf_line(&buf, "--%s--", boundary);

    if (buf.failed) {
        free(buf.data);
        errno = ENOMEM;
        return -1;
    }
    *out = buf.data;
    *out_len = buf.len;
    return 0;
}

static bool status_digits(const char *p, size_t min, size_t max,
                          size_t *len)
{
    size_t n = 0;

    while (n < max && p[n] >= '0' && p[n] <= '9') {
        n++;
    }
    *len = n;
    return n >= min && (p[n] < '0' || p[n] > '9');
}

void smtp_dsn_status_from_reply(const char *reply, char *out,
                                size_t out_size)
{
    const char *p = reply;
    size_t subject;
    size_t detail;

    /* RFC 3463: class "2", "4" or "5", subject 1-3 digits, detail 1-3
     * digits, and the class matches the reply code. */
    if (strlen(reply) >= 4 && reply[3] == ' ') {
        p = reply + 4;
        if ((p[0] == '2' || p[0] == '4' || p[0] == '5') &&
            p[0] == reply[0] && p[1] == '.' &&
            status_digits(p + 2, 1, 3, &subject) &&
            p[2 + subject] == '.' &&
            status_digits(p + 3 + subject, 1, 3, &detail) &&
            (p[3 + subject + detail] == ' ' ||
             p[3 + subject + detail] == '\0')) {
            snprintf(out, out_size, "%.*s", (int)(3 + subject + detail), p);
            return;
        }
    }
    snprintf(out, out_size, "%s", reply[0] == '5' ? "5.0.0" : "4.0.0");
}
