/* Test messages of the load generator.
 *
 * A message is a header block that differs per message, followed by a
 * body in wire form (CRLF line endings, dot-stuffed, ending in CRLF) that
 * is sent by reference without copying.
 *
 * Two kinds of bodies:
 * - synthetic (--size): one shared body of printable lines, none starting
 *   with '.'; the header block is a full RFC 5322 header (From, To,
 *   Subject, Date, Message-ID) plus the X-Blast fields and the empty line.
 * - files (--body-dir): every regular file of a directory, converted to
 *   wire form at load time and used round robin by sequence number; the
 *   header block is only the X-Blast fields, which join the file's own
 *   header.
 *
 * Every message carries X-Blast-Seq (its 1-based sequence number),
 * X-Blast-Sent (its scheduled send time, microseconds since the Unix
 * epoch) and X-Blast-Rcpts (its number of envelope recipients). The sink
 * reads these three to compute delivery latency, loss and duplicates. */
#ifndef RINGRELAY_BENCH_BLAST_MESSAGE_H
#define RINGRELAY_BENCH_BLAST_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room for a formatted header block with 256-octet addresses and a
 * 255-octet domain. */
#define BLAST_HEADER_MAX 2048

/* blast_body: one body in wire form. */
struct blast_body {
    char *data;
    size_t len;
    bool has_header;     /* starts with a header field, so the X-Blast
                          * fields join it; else an empty line follows
                          * them. Always true for a file body, because
                          * blast_message_init_dir skips the others. */
};

struct blast_message {
    const char *domain;        /* borrowed; right side of Message-ID */
    bool from_files;           /* bodies came from --body-dir */
    struct blast_body *bodies;
    size_t body_count;
    uint64_t date_second;      /* second of date */
    char date[40];             /* Date: value, "" until first used */
};

/* blast_header_fields: what differs per message. */
struct blast_header_fields {
    uint64_t seq;
    uint64_t sent_us;          /* microseconds since the Unix epoch */
    unsigned rcpts;
    const char *from;          /* synthetic bodies only: From: */
    const char *to;            /* synthetic bodies only: To: */
};

/* blast_message_init_synthetic builds the shared body so that a message
 * with header fields like sample totals about size bytes (header and
 * body, without the final ".\r\n"); a size smaller than the header gives
 * an empty body. Returns 0, or -1 when out of memory. */
int blast_message_init_synthetic(struct blast_message *message,
                                 const char *domain, size_t size,
                                 const struct blast_header_fields *sample);

/* blast_message_init_dir loads every regular file of dir (sorted by
 * name; entries starting with '.' are skipped) that starts with a header
 * field ("Name: value") as a body. Files that do not, such as a README,
 * are skipped and counted in *skipped. On failure, which includes a dir
 * with no file left, it writes the reason into error[0..error_size).
 * Returns 0 or -1. */
int blast_message_init_dir(struct blast_message *message, const char *dir,
                           size_t *skipped, char *error, size_t error_size);

/* blast_message_cleanup frees the bodies; a zeroed message is accepted. */
void blast_message_cleanup(struct blast_message *message);

/* blast_message_body returns the body of message number seq (1-based). */
const struct blast_body *blast_message_body(const struct blast_message *m,
                                            uint64_t seq);

/* blast_message_header formats the header block of the message described
 * by fields, to go before body, into buf[0..BLAST_HEADER_MAX), NUL-
 * terminated. Returns its length. It caches the Date: text in message. */
size_t blast_message_header(struct blast_message *message,
                            const struct blast_body *body,
                            const struct blast_header_fields *fields,
                            char *buf);

/* blast_body_to_wire converts text[0..len) to wire form: bare LF and bare
 * CR become CRLF, a '.' that starts a line is doubled, and a missing final
 * line ending is added. The result is malloc'd into *out (owned by the
 * caller) with its length in *out_len. Returns 0, or -1 when out of
 * memory. */
int blast_body_to_wire(const char *text, size_t len, char **out,
                       size_t *out_len);

#endif
