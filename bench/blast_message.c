#include "bench/blast_message.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Body line length in bytes, CRLF included, within the 78 characters
 * RFC 5322 2.1.1 recommends. */
#define BLAST_LINE_LEN 80

/* Fill body[0..len) with CRLF-terminated lines of letters. len must not
 * be 1, because a line needs at least its CRLF. */
static void blast_fill_body(char *body, size_t len)
{
    size_t pos = 0;
    unsigned line = 0;

    while (pos < len) {
        size_t left = len - pos;
        size_t line_len = left < BLAST_LINE_LEN ? left : BLAST_LINE_LEN;

        /* Never leave a single byte for the last line. */
        if (left - line_len == 1) {
            line_len--;
        }
        for (size_t i = 0; i + 2 < line_len; i++) {
            body[pos + i] = (char)('a' + (line + i) % 26);
        }
        body[pos + line_len - 2] = '\r';
        body[pos + line_len - 1] = '\n';
        pos += line_len;
        line++;
    }
}

int blast_message_init(struct blast_message *message, const char *from,
                       const char *to, const char *domain, size_t size)
{
    char header[BLAST_HEADER_MAX];
    size_t header_len;

    message->from = from;
    message->to = to;
    message->domain = domain;
    message->body = NULL;
    message->body_len = 0;

    /* Header lengths differ by a few bytes between messages (sequence
     * digits), so one sample header sets the body length for all. Its
     * time has the 16 digits of every time from 2001 to 2286. */
    header_len = blast_message_header(message, 1,
                                      UINT64_C(1000000000000000), header);
    if (size > header_len) {
        message->body_len = size - header_len;
    }
    if (message->body_len == 1) {
        message->body_len = 2;
    }

    message->body = malloc(message->body_len + 1);
    if (message->body == NULL) {
        return -1;
    }
    blast_fill_body(message->body, message->body_len);
    return 0;
}

void blast_message_cleanup(struct blast_message *message)
{
    free(message->body);
    message->body = NULL;
    message->body_len = 0;
}

size_t blast_message_header(const struct blast_message *message,
                            uint64_t seq, uint64_t sent_us, char *buf)
{
    time_t seconds = (time_t)(sent_us / 1000000u);
    char date[64] = "Thu, 01 Jan 1970 00:00:00 +0000";
    struct tm tm;
    int len;

    if (gmtime_r(&seconds, &tm) != NULL) {
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    }
    len = snprintf(buf, BLAST_HEADER_MAX,
                   "From: <%s>\r\n"
                   "To: <%s>\r\n"
                   "Subject: ringrelay-bench blast message %" PRIu64 "\r\n"
                   "Date: %s\r\n"
                   "Message-ID: <%" PRIu64 ".%" PRIu64 "@%s>\r\n"
                   "X-Blast-Seq: %" PRIu64 "\r\n"
                   "X-Blast-Sent: %" PRIu64 "\r\n"
                   "\r\n",
                   message->from, message->to, seq, date, seq, sent_us,
                   message->domain, seq, sent_us);

    /* Callers limit addresses and domain to SMTP sizes, so the block
     * fits; the clamp only keeps a mistake from reading past buf. */
    if (len < 0 || len >= BLAST_HEADER_MAX) {
        return len < 0 ? 0 : BLAST_HEADER_MAX - 1;
    }
    return (size_t)len;
}
