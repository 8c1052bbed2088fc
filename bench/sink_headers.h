/* Incremental scanner for the blast headers of a received message.
 *
 * blast marks every message with "X-Blast-Seq: N" (1-based sequence
 * number), "X-Blast-Sent: US" (microseconds since the Unix epoch when it
 * was scheduled) and "X-Blast-Rcpts: R" (envelope recipients of the
 * message). The scanner reads the body in wire form, in chunks split
 * anywhere, and stops at the empty line that ends the header section. */
#ifndef RINGRELAY_BENCH_SINK_HEADERS_H
#define RINGRELAY_BENCH_SINK_HEADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Maximum bytes of a header line kept; a blast header fits with room. */
#define SINK_HEADERS_LINE_MAX 128

/* Header bytes scanned before giving up on finding the empty line. */
#define SINK_HEADERS_SCAN_MAX (64u * 1024u)

/* Largest X-Blast-Rcpts value accepted. */
#define SINK_HEADERS_RCPTS_MAX 100000u

enum sink_headers_status {
    SINK_HEADERS_NONE,  /* no X-Blast-Seq header */
    SINK_HEADERS_OK,    /* seq and sent parsed, rcpts defaulted to 1 */
    SINK_HEADERS_BAD,   /* a blast header with an invalid value */
};

struct sink_headers {
    uint64_t seq;
    uint64_t sent_us;
    uint32_t rcpts;    /* 1 when the header is missing */
    bool has_seq;
    bool has_sent;
    bool has_rcpts;
    bool bad;          /* a blast header was invalid or repeated */
    bool done;         /* the header section has ended */
    size_t scanned;    /* header bytes seen so far */
    size_t line_len;   /* bytes of the current line in line[] */
    bool line_cut;     /* the current line was longer than line[] */
    char line[SINK_HEADERS_LINE_MAX];
};

/* sink_headers_reset prepares headers for a new message. */
void sink_headers_reset(struct sink_headers *headers);

/* sink_headers_feed scans body bytes in wire form (dot-stuffed, CRLF). */
void sink_headers_feed(struct sink_headers *headers, const char *data,
                       size_t len);

/* sink_headers_status classifies what the scan found: a message is
 * tracked only when X-Blast-Seq and X-Blast-Sent are both valid. */
enum sink_headers_status
sink_headers_status(const struct sink_headers *headers);

#endif
