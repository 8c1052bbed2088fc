/* Tests for the DATA body scanner (proto/smtp_body.h) on its own. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <string.h>

#include "proto/smtp_body.h"

/* Records write calls; fails every one when fail is set. */
struct body_sink {
    bool fail;
    size_t calls;
    size_t bytes;
};

static int sink_write(void *ctx, const char *data, size_t len)
{
    struct body_sink *sink = ctx;

    (void)data;
    sink->calls++;
    if (sink->fail) {
        return -1;
    }
    sink->bytes += len;
    return 0;
}

static size_t scan_text(struct smtp_body *b, const char *text, bool *done)
{
    return smtp_body_scan(b, text, strlen(text), done);
}

Test(smtp_body, oversize_after_failed_write_is_too_big)
{
    struct body_sink sink = {.fail = true};
    struct smtp_body b;
    bool done = false;

    smtp_body_start(&b, 10, 0, sink_write, &sink);
    scan_text(&b, "abcd", &done);
    cr_assert_not(done);
    cr_assert(b.write_failed);
    cr_assert_eq(sink.calls, 1);

    scan_text(&b, "efghijklmn\r\n.\r\n", &done);
    cr_assert(done);
    cr_assert(b.too_big, "a body over max_size must be too big even "
              "after a failed write");
    cr_assert_eq(sink.calls, 1, "no write after the failed one");
}

Test(smtp_body, oversize_in_one_piece_is_too_big)
{
    struct body_sink sink = {.fail = true};
    struct smtp_body b;
    bool done = false;

    smtp_body_start(&b, 10, 0, sink_write, &sink);
    scan_text(&b, "abcdefghijklmn\r\n.\r\n", &done);
    cr_assert(done);
    cr_assert(b.too_big);
    cr_assert_not(b.write_failed);
    cr_assert_eq(sink.calls, 0);
}

Test(smtp_body, failed_write_within_limit_is_not_too_big)
{
    struct body_sink sink = {.fail = true};
    struct smtp_body b;
    bool done = false;

    smtp_body_start(&b, 100, 0, sink_write, &sink);
    scan_text(&b, "abcd", &done);
    scan_text(&b, "efgh\r\n.\r\n", &done);
    cr_assert(done);
    cr_assert(b.write_failed);
    cr_assert_not(b.too_big);
    cr_assert_eq(sink.calls, 1);
}

/* A long line does not stop the count either: cut anywhere, the body
 * over max_size is too big, and the long line alone is only too long. */
Test(smtp_body, oversize_after_long_line_is_too_big)
{
    struct body_sink sink = {.fail = false};
    struct smtp_body b;
    bool done = false;

    smtp_body_start(&b, 20, 8, sink_write, &sink);
    scan_text(&b, "abcdefghij", &done);
    cr_assert(b.line_too_long);
    scan_text(&b, "klmnopqrstuvwxyz\r\n.\r\n", &done);
    cr_assert(done);
    cr_assert(b.too_big, "a body over max_size must be too big even "
              "after a long line");
}

Test(smtp_body, long_line_within_limit_is_only_too_long)
{
    struct body_sink sink = {.fail = false};
    struct smtp_body b;
    bool done = false;

    smtp_body_start(&b, 100, 8, sink_write, &sink);
    scan_text(&b, "abcdefghij\r\nok\r\n.\r\n", &done);
    cr_assert(done);
    cr_assert(b.line_too_long);
    cr_assert_not(b.too_big);
}
