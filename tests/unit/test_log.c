/* Quoting of log values: quotes and backslashes escaped, control bytes
 * replaced, valid UTF-8 kept and every other high byte written as \xHH. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/log.h"

static const char *quote(char *buf, size_t size, const char *text)
{
    return log_quote(buf, size, text, strlen(text));
}

Test(log_quote, ascii_and_escapes)
{
    char buf[64];

    cr_assert_str_eq(quote(buf, sizeof(buf), "a b"), "\"a b\"");
    cr_assert_str_eq(quote(buf, sizeof(buf), "say \"hi\\\""),
                     "\"say \\\"hi\\\\\\\"\"");
    cr_assert_str_eq(quote(buf, sizeof(buf), "a\r\nb\x7f"), "\"a??b?\"");
}

Test(log_quote, utf8_kept)
{
    char buf[64];

    cr_assert_str_eq(quote(buf, sizeof(buf), "\xc3\xa9t\xc3\xa9"),
                     "\"\xc3\xa9t\xc3\xa9\"");
    /* A 3-byte and a 4-byte sequence: U+20AC and U+1F600. */
    cr_assert_str_eq(quote(buf, sizeof(buf), "\xe2\x82\xac\xf0\x9f\x98\x80"),
                     "\"\xe2\x82\xac\xf0\x9f\x98\x80\"");
}

Test(log_quote, invalid_bytes_escaped)
{
    char buf[64];

    cr_assert_str_eq(quote(buf, sizeof(buf), "\xff\xfe\xc3\xa9t\xc3\xa9"),
                     "\"\\xFF\\xFE\xc3\xa9t\xc3\xa9\"");
    /* A lone continuation byte and a truncated sequence. */
    cr_assert_str_eq(quote(buf, sizeof(buf), "a\x80" "b\xe2\x82"),
                     "\"a\\x80b\\xE2\\x82\"");
}

Test(log_quote, non_shortest_forms_escaped)
{
    char buf[64];

    /* Overlong '/', a UTF-16 surrogate and U+110000. */
    cr_assert_str_eq(quote(buf, sizeof(buf), "\xc0\xaf"),
                     "\"\\xC0\\xAF\"");
    cr_assert_str_eq(quote(buf, sizeof(buf), "\xed\xa0\x80"),
                     "\"\\xED\\xA0\\x80\"");
    cr_assert_str_eq(quote(buf, sizeof(buf), "\xf4\x90\x80\x80"),
                     "\"\\xF4\\x90\\x80\\x80\"");
}

Test(log_quote, truncates_whole_escapes)
{
    char buf[8];

    /* Room for the quotes and 5 bytes: "ab" and one \xHH escape fits
     * only when whole. */
    cr_assert_str_eq(quote(buf, sizeof(buf), "ab\xff\xff"), "\"ab\"");
    cr_assert_str_eq(quote(buf, sizeof(buf), "a\xff\xff"), "\"a\\xFF\"");
    cr_assert_str_eq(quote(buf, sizeof(buf), "abc\xf0\x9f\x98\x80"),
                     "\"abc\"");
}

Test(log_path, high_bytes_quoted)
{
    char buf[LOG_PATH_MAX];

    cr_assert_str_eq(log_path(buf, sizeof(buf), "a@b.test"), "<a@b.test>");
    cr_assert_str_eq(log_path(buf, sizeof(buf), "\xff@b.test"),
                     "\"<\\xFF@b.test>\"");
}
