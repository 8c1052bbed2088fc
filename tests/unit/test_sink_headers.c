/* The bench sink's scanner for X-Blast-* headers in a body in wire
 * form, fed whole and in chunks of every size. */
#include <criterion/criterion.h>
#include <string.h>

#include "bench/sink_headers.h"

static void scan(struct sink_headers *headers, const char *body,
                 size_t chunk)
{
    size_t len = strlen(body);

    sink_headers_reset(headers);
    for (size_t pos = 0; pos < len; pos += chunk) {
        size_t n = len - pos < chunk ? len - pos : chunk;

        sink_headers_feed(headers, body + pos, n);
    }
}

static const char blast_body[] =
    "From: <blast@example.test>\r\n"
    "Subject: ringrelay-bench blast message 12\r\n"
    "x-blast-seq: 12\r\n"
    "X-Blast-Sent:  1796400802321429 \r\n"
    "X-Blast-Rcpts: 3\r\n"
    "\r\n"
    "X-Blast-Seq: 99\r\n";

Test(sink_headers, parses_in_any_chunking)
{
    for (size_t chunk = 1; chunk <= sizeof(blast_body); chunk++) {
        struct sink_headers headers;

        scan(&headers, blast_body, chunk);
        cr_assert_eq(sink_headers_status(&headers), SINK_HEADERS_OK,
                     "chunk %zu", chunk);
        cr_assert_eq(headers.seq, 12, "chunk %zu: the body's line counted",
                     chunk);
        cr_assert_eq(headers.sent_us, 1796400802321429ull);
        cr_assert_eq(headers.rcpts, 3);
        cr_assert(headers.done);
    }
}

Test(sink_headers, missing_rcpts_means_one)
{
    struct sink_headers headers;

    scan(&headers, "X-Blast-Seq: 5\r\nX-Blast-Sent: 10\r\n\r\nbody\r\n",
         1000);
    cr_assert_eq(sink_headers_status(&headers), SINK_HEADERS_OK);
    cr_assert_eq(headers.rcpts, 1);
}

Test(sink_headers, message_without_blast_headers)
{
    struct sink_headers headers;

    scan(&headers, "Subject: hello\r\nX-Blast-Other: 1\r\n\r\nhi\r\n", 7);
    cr_assert_eq(sink_headers_status(&headers), SINK_HEADERS_NONE);
}

Test(sink_headers, bad_values_are_reported)
{
    static const char *const bodies[] = {
        "X-Blast-Seq: 0\r\nX-Blast-Sent: 1\r\n\r\n",
        "X-Blast-Seq: 12a\r\nX-Blast-Sent: 1\r\n\r\n",
        "X-Blast-Seq: 1\r\nX-Blast-Sent: 1\r\nX-Blast-Seq: 2\r\n\r\n",
        "X-Blast-Seq: 1\r\n\r\n",
        "X-Blast-Sent: 1\r\n\r\n",
        "X-Blast-Seq: 99999999999999999999999\r\nX-Blast-Sent: 1\r\n\r\n",
        "X-Blast-Seq: 1\r\nX-Blast-Sent: 1\r\nX-Blast-Rcpts: 0\r\n\r\n",
        "X-Blast-Seq: 1\r\nX-Blast-Sent: 1\r\nX-Blast-Rcpts:\r\n\r\n",
    };

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct sink_headers headers;

        scan(&headers, bodies[i], 3);
        cr_expect_eq(sink_headers_status(&headers), SINK_HEADERS_BAD,
                     "body %zu: %s", i, bodies[i]);
    }
}

Test(sink_headers, long_lines_are_skipped)
{
    char body[4096];
    struct sink_headers headers;

    memset(body, 0, sizeof(body));
    strcpy(body, "Subject: ");
    memset(body + 9, 'x', 1000);
    strcat(body, "\r\nX-Blast-Seq: 3\r\nX-Blast-Sent: 4\r\n\r\n");
    scan(&headers, body, 61);
    cr_assert_eq(sink_headers_status(&headers), SINK_HEADERS_OK);
    cr_assert_eq(headers.seq, 3);
}

Test(sink_headers, scan_stops_after_limit)
{
    static char body[SINK_HEADERS_SCAN_MAX + 64];
    struct sink_headers headers;
    size_t pos = 0;

    while (pos + 8 < SINK_HEADERS_SCAN_MAX) {
        memcpy(body + pos, "A: b\r\n", 6);
        pos += 6;
    }
    strcpy(body + pos, "X-Blast-Seq: 1\r\nX-Blast-Sent: 1\r\n\r\n");
    scan(&headers, body, 4096);
    cr_assert(headers.done);
    cr_assert_eq(sink_headers_status(&headers), SINK_HEADERS_NONE);
}
