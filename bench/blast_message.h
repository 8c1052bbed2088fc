/* Test messages of the load generator.
 *
 * A message is a header block that differs per message, followed by a
 * body that all messages share: printable lines ending in CRLF, none
 * starting with '.', so the body is sent without dot-stuffing. */
#ifndef RINGRELAY_BENCH_BLAST_MESSAGE_H
#define RINGRELAY_BENCH_BLAST_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

/* Room for a formatted header block with 256-octet addresses and a
 * 255-octet domain. */
#define BLAST_HEADER_MAX 2048

struct blast_message {
    const char *from;    /* borrowed; used in From: */
    const char *to;      /* borrowed; used in To: */
    const char *domain;  /* borrowed; right side of Message-ID */
    char *body;
    size_t body_len;
};

/* blast_message_init builds the shared body so that a message totals
 * about size bytes (header and body, without the final ".\r\n"); a size
 * smaller than the header gives an empty body. Returns 0, or -1 when out
 * of memory. */
int blast_message_init(struct blast_message *message, const char *from,
                       const char *to, const char *domain, size_t size);

void blast_message_cleanup(struct blast_message *message);

/* blast_message_header formats the header block of message number seq
 * sent at sent_us (microseconds since the Unix epoch), ending with the
 * empty line, into buf[0..BLAST_HEADER_MAX). Returns its length. */
size_t blast_message_header(const struct blast_message *message,
                            uint64_t seq, uint64_t sent_us, char *buf);

#endif
