/* The stats-file reader of `ringrelay-bench run`, on files laid out as
 * blast and sink write them with --stats-file. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/run_stats.h"

static const char blast_file[] =
    "sent=1000\n"
    "accepted=998\n"
    "rejected=2\n"
    "failed=0\n"
    "connection_failures=0\n"
    "elapsed_s=0.512\n"
    "msgs_per_s=1949.2\n"
    "mb_per_s=2.01\n"
    "data_p50_ms=0.41\n"
    "data_p90_ms=0.9\n"
    "data_p99_ms=2.5\n"
    "data_p999_ms=4.75\n"
    "data_max_ms=5.1\n"
    "first_send_wall_us=1796380800000000\n"
    "last_reply_wall_us=1796380800512000\n";

static const char sink_file[] =
    "messages=998\n"
    "bytes=1021952\n"
    "rcpts=998\n"
    "lost=0\n"
    "duplicates=1\n"
    "sessions_total=11\n"
    "sessions_open=0\n"
    "first_message_wall_us=1796380800001000\n"
    "last_message_wall_us=1796380800600000\n"
    "msgs_per_s=1666\n"
    "latency_p50_ms=1.5\n"
    "latency_p90_ms=3\n"
    "latency_p99_ms=7.25\n"
    "latency_p999_ms=9\n"
    "latency_max_ms=12.5\n";

static double value_of(const struct run_stats *stats, const char *key)
{
    double value = -1;

    cr_assert(run_stats_get(stats, key, &value), "key %s missing", key);
    return value;
}

Test(run_stats, blast_contract_keys)
{
    struct run_stats stats;

    run_stats_parse_text(blast_file, strlen(blast_file), &stats);
    cr_expect_eq(stats.count, 15);
    cr_expect_eq(stats.invalid_lines, 0);
    cr_expect_eq(value_of(&stats, "sent"), 1000);
    cr_expect_eq(value_of(&stats, "accepted"), 998);
    cr_expect_eq(value_of(&stats, "rejected"), 2);
    cr_expect_float_eq(value_of(&stats, "elapsed_s"), 0.512, 1e-9);
    cr_expect_float_eq(value_of(&stats, "data_p999_ms"), 4.75, 1e-9);
    cr_expect_eq(value_of(&stats, "first_send_wall_us"),
                 1796380800000000.0);
    cr_expect_eq(value_of(&stats, "last_reply_wall_us"),
                 1796380800512000.0);
}

Test(run_stats, sink_contract_keys)
{
    struct run_stats stats;

    run_stats_parse_text(sink_file, strlen(sink_file), &stats);
    cr_expect_eq(stats.count, 15);
    cr_expect_eq(stats.invalid_lines, 0);
    cr_expect_eq(value_of(&stats, "messages"), 998);
    cr_expect_eq(value_of(&stats, "duplicates"), 1);
    cr_expect_eq(value_of(&stats, "sessions_open"), 0);
    cr_expect_float_eq(value_of(&stats, "latency_p99_ms"), 7.25, 1e-9);
    cr_expect_float_eq(value_of(&stats, "latency_max_ms"), 12.5, 1e-9);
}

Test(run_stats, absent_key_keeps_value)
{
    struct run_stats stats;
    double value = 42;

    run_stats_parse_text(sink_file, strlen(sink_file), &stats);
    cr_expect_not(run_stats_get(&stats, "accepted", &value));
    cr_expect_eq(value, 42);
    cr_expect_eq(run_stats_value(&stats, "accepted", 7), 7);
    cr_expect_not(run_stats_get(&stats, "message", &value));
}

Test(run_stats, malformed_lines_skipped)
{
    static const char text[] =
        "good=1\n"
        "no equals sign\n"
        "=5\n"
        "empty=\n"
        "word=abc\n"
        "trailing=3x\n"
        "spaced= 4\n"
        "nan=nan\n"
        "inf=inf\n"
        "\n"
        "also_good=2.5\n";
    struct run_stats stats;

    run_stats_parse_text(text, strlen(text), &stats);
    cr_expect_eq(stats.count, 2);
    cr_expect_eq(stats.invalid_lines, 8);
    cr_expect_eq(value_of(&stats, "good"), 1);
    cr_expect_float_eq(value_of(&stats, "also_good"), 2.5, 1e-9);
}

Test(run_stats, crlf_and_no_final_newline)
{
    static const char text[] = "messages=3\r\nbytes=12";
    struct run_stats stats;

    run_stats_parse_text(text, strlen(text), &stats);
    cr_expect_eq(stats.invalid_lines, 0);
    cr_expect_eq(value_of(&stats, "messages"), 3);
    cr_expect_eq(value_of(&stats, "bytes"), 12);
}

Test(run_stats, repeated_key_keeps_last)
{
    static const char text[] = "messages=3\nmessages=9\n";
    struct run_stats stats;

    run_stats_parse_text(text, strlen(text), &stats);
    cr_expect_eq(stats.count, 1);
    cr_expect_eq(value_of(&stats, "messages"), 9);
}

Test(run_stats, long_key_rejected)
{
    char text[RUN_STATS_KEY_MAX + 8];
    struct run_stats stats;

    memset(text, 'k', RUN_STATS_KEY_MAX);
    memcpy(text + RUN_STATS_KEY_MAX, "=1\n", 4);
    run_stats_parse_text(text, strlen(text), &stats);
    cr_expect_eq(stats.count, 0);
    cr_expect_eq(stats.invalid_lines, 1);
}

Test(run_stats, too_many_keys_counted)
{
    char text[RUN_STATS_MAX_ENTRIES * 16 + 32];
    size_t used = 0;
    struct run_stats stats;

    for (int i = 0; i <= RUN_STATS_MAX_ENTRIES; i++) {
        used += (size_t)snprintf(text + used, sizeof(text) - used,
                                 "key%d=%d\n", i, i);
    }
    run_stats_parse_text(text, used, &stats);
    cr_expect_eq(stats.count, RUN_STATS_MAX_ENTRIES);
    cr_expect_eq(stats.invalid_lines, 1);
    cr_expect_eq(value_of(&stats, "key0"), 0);
}

Test(run_stats, read_file)
{
    char path[] = "/tmp/test_run_stats.XXXXXX";
    struct run_stats stats;
    int fd = mkstemp(path);

    cr_assert_geq(fd, 0, "mkstemp failed: %s", strerror(errno));
    cr_assert_eq(write(fd, sink_file, strlen(sink_file)),
                 (ssize_t)strlen(sink_file));
    cr_assert_eq(close(fd), 0);
    cr_expect_eq(run_stats_read_file(path, &stats), 0);
    cr_expect_eq(value_of(&stats, "messages"), 998);
    cr_assert_eq(unlink(path), 0);
}

Test(run_stats, missing_file_sets_errno)
{
    struct run_stats stats;

    errno = 0;
    cr_expect_eq(run_stats_read_file("/nonexistent/run/stats", &stats),
                 -1);
    cr_expect_eq(errno, ENOENT);
}
