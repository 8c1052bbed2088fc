/* Derived numbers of the `ringrelay-bench run` report, from stats laid
 * out as blast and sink write them. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/run_report.h"

static void parse(const char *text, struct run_stats *stats)
{
    run_stats_parse_text(text, strlen(text), stats);
    cr_assert_eq(stats->invalid_lines, 0);
}

static const char blast_text[] =
    "sent=2000\naccepted=2000\nrejected=0\nfailed=0\n"
    "connection_failures=0\nelapsed_s=0.5\nmsgs_per_s=4000\n"
    "data_p50_ms=1\ndata_p90_ms=2\ndata_p99_ms=3\ndata_p999_ms=4\n"
    "data_max_ms=5\nfirst_send_wall_us=1000000\n"
    "last_reply_wall_us=1500000\n";

Test(run_report, complete_delivery)
{
    struct run_stats blast;
    struct run_stats sink;
    struct run_report report = {
        .drained = true,
        .relay = {.measured = true, .cpu_seconds = 0.3},
    };

    parse(blast_text, &blast);
    parse("messages=2000\nlost=0\nduplicates=0\n"
          "last_message_wall_us=2000000\nlatency_p50_ms=6\n"
          "latency_p90_ms=7\nlatency_p99_ms=8\nlatency_p999_ms=9\n"
          "latency_max_ms=10\n", &sink);
    run_report_compute(&report, &blast, &sink);
    cr_expect_eq(report.accepted, 2000);
    cr_expect_eq(report.accepted_per_s, 4000);
    /* 2000 messages from the first send at 1 s to the last at 2 s. */
    cr_expect_float_eq(report.delivered_per_s, 2000, 1e-9);
    cr_expect_eq(report.missing, 0);
    cr_expect_float_eq(report.relay_cpu_s_per_1000, 0.15, 1e-9);
    cr_expect_eq(report.latency_ms[0], 6);
    cr_expect_eq(report.latency_ms[4], 10);
    cr_expect_eq(report.data_ms[2], 3);
    /* Last reply at 1.5 s, last delivery at 2 s. */
    cr_expect_float_eq(report.last_delivery_ms, 500, 1e-9);
    cr_expect(run_report_ok(&report));
}

Test(run_report, delivery_before_last_reply)
{
    struct run_stats blast;
    struct run_stats sink;
    struct run_report report = {.drained = true};

    parse(blast_text, &blast);
    /* The relay delivered the last message 0.2 ms before blast read its
     * reply, which counts as 0 rather than a negative time. */
    parse("messages=2000\nlast_message_wall_us=1499800\n", &sink);
    run_report_compute(&report, &blast, &sink);
    cr_expect_eq(report.last_delivery_ms, 0);
}

Test(run_report, delivery_without_timestamps)
{
    struct run_stats blast;
    struct run_stats sink;
    struct run_report report = {.drained = true};

    parse("sent=1\naccepted=1\n", &blast);
    parse("messages=1\nlast_message_wall_us=1000000\n", &sink);
    run_report_compute(&report, &blast, &sink);
    cr_expect_eq(report.last_delivery_ms, 0);
}

Test(run_report, text_labels)
{
    struct run_stats blast;
    struct run_stats sink;
    struct run_report report = {.target = "127.0.0.1:2525", .drained = true};
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);

    cr_assert_not_null(out);
    parse(blast_text, &blast);
    parse("messages=2000\nlast_message_wall_us=1501200\n", &sink);
    run_report_compute(&report, &blast, &sink);
    run_report_print(&report, out);
    cr_assert_eq(fclose(out), 0);
    cr_expect_not_null(strstr(text, "  last delivery after last reply: "
                                    "1.20 ms\n"));
    cr_expect_null(strstr(text, "drain"));
    cr_expect_not_null(strstr(text, "  sent:                           "
                                    "2000 messages\n"));
    cr_expect_not_null(strstr(text, "  delivered:                      "
                                    "2000 distinct recipient copies in "
                                    "2000 transactions\n"));
    free(text);
}

Test(run_report, missing_and_duplicates)
{
    struct run_stats blast;
    struct run_stats sink;
    struct run_report report = {.drained = true};

    parse(blast_text, &blast);
    /* 1990 arrived, 5 of them twice: 15 accepted messages are missing. */
    parse("messages=1990\nlost=15\nduplicates=5\n"
          "last_message_wall_us=3000000\n", &sink);
    run_report_compute(&report, &blast, &sink);
    cr_expect_eq(report.missing, 15);
    cr_expect_eq(report.lost, 15);
    cr_expect_eq(report.duplicates, 5);
    cr_expect(isnan(report.relay_cpu_s_per_1000));
    cr_expect_not(run_report_ok(&report));
}

Test(run_report, rejected_message_fails)
{
    struct run_stats blast;
    struct run_stats sink;
    struct run_report report = {.drained = true};

    parse("sent=10\naccepted=9\nrejected=1\nfirst_send_wall_us=1\n",
          &blast);
    parse("messages=9\nlast_message_wall_us=1000001\n", &sink);
    run_report_compute(&report, &blast, &sink);
    cr_expect_eq(report.missing, 0);
    cr_expect_float_eq(report.delivered_per_s, 9, 1e-9);
    cr_expect_not(run_report_ok(&report));
}

Test(run_report, no_timestamps_no_rate)
{
    struct run_stats blast;
    struct run_stats sink;
    struct run_report report = {.drained = false};

    parse("sent=10\naccepted=10\n", &blast);
    parse("messages=10\n", &sink);
    run_report_compute(&report, &blast, &sink);
    cr_expect_eq(report.delivered_per_s, 0);
    cr_expect_not(run_report_ok(&report));
}

Test(run_report, json_fields)
{
    struct run_stats blast;
    struct run_stats sink;
    struct run_report report = {
        .target = "127.0.0.1:2525",
        .drained = true,
        .relay = {.measured = true, .cpu_seconds = 0.3, .peak_kib = 2048},
    };
    char path[] = "/tmp/test_run_report.XXXXXX";
    char text[4096];
    size_t len;
    FILE *file;
    int fd = mkstemp(path);

    cr_assert_geq(fd, 0);
    parse(blast_text, &blast);
    parse("messages=2000\nlast_message_wall_us=2000000\n", &sink);
    run_report_compute(&report, &blast, &sink);
    cr_assert_eq(run_report_write_json(&report, path), 0);
    file = fdopen(fd, "r");
    cr_assert_not_null(file);
    len = fread(text, 1, sizeof(text) - 1, file);
    text[len] = '\0';
    cr_assert_eq(fclose(file), 0);
    cr_assert_eq(unlink(path), 0);
    cr_expect_not_null(strstr(text, "\"target\":\"127.0.0.1:2525\""));
    cr_expect_not_null(strstr(text, "\"accepted\":2000"));
    cr_expect_not_null(strstr(text, "\"delivered_per_s\":2000"));
    cr_expect_not_null(strstr(text, "\"peak_kib\":2048"));
    cr_expect_not_null(strstr(text,
                              "\"last_delivery_after_reply_ms\":500"));
    cr_expect_null(strstr(text, "drain_s"));
    cr_expect_not_null(strstr(text, "\"ok\":true"));
    cr_expect_eq(text[len - 1], '\n');
}

Test(run_report, duplicates_not_delivered)
{
    struct run_stats blast;
    struct run_stats sink;
    struct run_report report = {.drained = true};
    char reason[128];

    parse("sent=100\naccepted=100\naccepted_rcpts=100\n", &blast);
    /* Each of the 100 copies arrived twice. */
    parse("messages=200\ncopies=100\nduplicates=100\nlost=0\n", &sink);
    run_report_compute(&report, &blast, &sink);
    cr_expect_eq(report.delivered, 100);
    cr_expect_eq(report.transactions, 200);
    cr_expect_eq(report.duplicates, 100);
    cr_expect_eq(report.missing, 0);
    cr_expect_not(run_report_ok(&report));
    cr_assert(run_report_failure(&report, 0, reason, sizeof(reason)));
    cr_expect_str_eq(reason, "the sink received 100 duplicate recipient "
                             "copies");
    cr_expect_not(run_report_failure(&report, 1, reason, sizeof(reason)));
}

Test(run_report, copies_per_recipient)
{
    struct run_stats blast;
    struct run_stats sink;
    struct run_report report = {.drained = true};

    /* 300 messages with 3 recipients, delivered one transaction per
     * recipient. */
    parse("sent=300\naccepted=300\naccepted_rcpts=900\n", &blast);
    parse("messages=900\ncopies=900\nduplicates=0\nlost=0\n", &sink);
    run_report_compute(&report, &blast, &sink);
    cr_expect_eq(report.accepted_rcpts, 900);
    cr_expect_eq(report.delivered, 900);
    cr_expect_eq(report.missing, 0);
    cr_expect(run_report_ok(&report));
}

Test(run_report, every_failure_named)
{
    struct run_stats blast;
    struct run_stats sink;
    struct run_report report = {.drained = false};
    char reason[128];

    /* Two bodies sent but without a final reply: neither rejected nor
     * failed. */
    parse("sent=10\naccepted=8\naccepted_rcpts=8\n", &blast);
    parse("messages=7\ncopies=6\nduplicates=1\nlost=2\n", &sink);
    run_report_compute(&report, &blast, &sink);
    cr_assert(run_report_failure(&report, 0, reason, sizeof(reason)));
    cr_expect_str_eq(reason, "2 of 10 messages sent were not accepted");
    /* Then the sink's counts, in the order of the text report. */
    cr_assert(run_report_failure(&report, 1, reason, sizeof(reason)));
    cr_expect_str_eq(reason, "2 accepted recipient copies did not reach "
                             "the sink");
    cr_assert(run_report_failure(&report, 2, reason, sizeof(reason)));
    cr_expect_str_eq(reason, "the sink counted 2 recipient copies lost");
    cr_assert(run_report_failure(&report, 3, reason, sizeof(reason)));
    cr_expect_str_eq(reason, "the sink received 1 duplicate recipient "
                             "copies");
    cr_assert(run_report_failure(&report, 4, reason, sizeof(reason)));
    cr_expect_str_eq(reason, "the sink did not get every accepted copy "
                             "within --drain-timeout");
    cr_expect_not(run_report_failure(&report, 5, reason, sizeof(reason)));
}

Test(run_report, nothing_sent_fails)
{
    struct run_stats blast;
    struct run_stats sink;
    struct run_report report = {.drained = true};
    char reason[128];

    parse("sent=0\naccepted=0\n", &blast);
    parse("messages=0\n", &sink);
    run_report_compute(&report, &blast, &sink);
    cr_assert(run_report_failure(&report, 0, reason, sizeof(reason)));
    cr_expect_str_eq(reason, "blast sent no message");
}

Test(run_report, rejected_and_failed_named)
{
    struct run_stats blast;
    struct run_stats sink;
    struct run_report report = {.drained = true};
    char reason[128];

    /* Rejected at RCPT, so no body was sent. */
    parse("sent=0\naccepted=0\nrejected=20\nfailed=3\n", &blast);
    parse("messages=0\n", &sink);
    run_report_compute(&report, &blast, &sink);
    cr_assert(run_report_failure(&report, 0, reason, sizeof(reason)));
    cr_expect_str_eq(reason, "blast had 20 messages rejected");
    cr_assert(run_report_failure(&report, 1, reason, sizeof(reason)));
    cr_expect_str_eq(reason, "blast had 3 messages fail with their "
                             "connection");
    cr_expect_not(run_report_failure(&report, 2, reason, sizeof(reason)));
}

Test(run_report, nothing_measured_prints_na)
{
    struct run_stats blast;
    struct run_stats sink;
    struct run_report report = {
        .target = "127.0.0.1:2525",
        .relay = {.measured = true, .cpu_seconds = 0.01},
    };
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);

    cr_assert_not_null(out);
    /* Every message rejected: blast and the sink wrote no latency. */
    parse("sent=0\naccepted=0\nrejected=20\n", &blast);
    parse("messages=0\nlost=0\nduplicates=0\n", &sink);
    run_report_compute(&report, &blast, &sink);
    cr_expect(isnan(report.latency_ms[0]));
    cr_expect(isnan(report.data_ms[4]));
    cr_expect(isnan(report.relay_cpu_s_per_1000));
    run_report_print(&report, out);
    cr_assert_eq(fclose(out), 0);
    cr_expect_not_null(strstr(text, "  end-to-end latency:             "
                                    "n/a (none measured)\n"), "%s", text);
    cr_expect_not_null(strstr(text, "  DATA reply latency:             "
                                    "n/a (none measured)\n"), "%s", text);
    cr_expect_not_null(strstr(text, "  relay CPU s per 1,000:          "
                                    "n/a, no message accepted"), "%s", text);
    cr_expect_null(strstr(text, "0.0000"), "%s", text);
    free(text);
}

Test(run_report, nothing_measured_json_null)
{
    struct run_stats blast;
    struct run_stats sink;
    struct run_report report = {
        .target = "127.0.0.1:2525",
        .relay = {.measured = true, .cpu_seconds = 0.01},
    };
    char path[] = "/tmp/test_run_report.XXXXXX";
    char text[4096];
    int fd = mkstemp(path);
    FILE *in;
    size_t len;

    cr_assert_geq(fd, 0);
    close(fd);
    parse("sent=0\naccepted=0\nrejected=20\n", &blast);
    parse("messages=0\n", &sink);
    run_report_compute(&report, &blast, &sink);
    cr_assert_eq(run_report_write_json(&report, path), 0);
    in = fopen(path, "r");
    cr_assert_not_null(in);
    len = fread(text, 1, sizeof(text) - 1, in);
    text[len] = '\0';
    fclose(in);
    unlink(path);
    cr_expect_not_null(strstr(text, "\"latency_ms\":{\"p50\":null"), "%s",
                       text);
    cr_expect_not_null(strstr(text, "\"cpu_s_per_1000\":null"), "%s", text);
}
