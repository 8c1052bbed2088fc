/* Tests for blast's messages: wire form of --body-dir files, header
 * blocks, and synthetic sizes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/blast_message.h"

static void expect_wire(const char *text, const char *want)
{
    char *out = NULL;
    size_t len = 0;

    cr_assert_eq(blast_body_to_wire(text, strlen(text), &out, &len), 0);
    cr_assert_eq(len, strlen(want), "\"%s\": got %zu bytes \"%.*s\"", text,
                 len, (int)len, out);
    cr_assert_eq(memcmp(out, want, len), 0, "\"%s\": got \"%.*s\"", text,
                 (int)len, out);
    free(out);
}

Test(blast_message, wire_form)
{
    expect_wire("", "");
    expect_wire("a\nb\n", "a\r\nb\r\n");
    expect_wire("a\r\nb\r\n", "a\r\nb\r\n");
    expect_wire("a\rb", "a\r\nb\r\n");
    expect_wire("mixed\r\nends\nhere", "mixed\r\nends\r\nhere\r\n");
    expect_wire("\r\r\n", "\r\n\r\n");
    expect_wire(".\n", "..\r\n");
    expect_wire(".leading\n..two\nno dot.\n",
                "..leading\r\n...two\r\nno dot.\r\n");
    expect_wire("x\n.\r\n.", "x\r\n..\r\n..\r\n");
    expect_wire("\n\n", "\r\n\r\n");
}

Test(blast_message, synthetic_size_and_header)
{
    struct blast_message message;
    struct blast_header_fields fields = {
        .seq = 1000,
        .sent_us = UINT64_C(1700000000123456),
        .rcpts = 3,
        .from = "s@example.test",
        .to = "r@example.test",
    };
    char header[BLAST_HEADER_MAX];
    const struct blast_body *body;
    size_t len;

    cr_assert_eq(blast_message_init_synthetic(&message, "blast.test", 2000,
                                              &fields),
                 0);
    body = blast_message_body(&message, 1000);
    len = blast_message_header(&message, body, &fields, header);
    cr_assert_eq(len + body->len, 2000);
    cr_assert_eq(memcmp(body->data + body->len - 2, "\r\n", 2), 0);
    cr_assert(strstr(header, "X-Blast-Seq: 1000\r\n") != NULL);
    cr_assert(strstr(header, "X-Blast-Sent: 1700000000123456\r\n") != NULL);
    cr_assert(strstr(header, "X-Blast-Rcpts: 3\r\n") != NULL);
    cr_assert(strstr(header, "From: <s@example.test>\r\n") == header);
    cr_assert(strstr(header, "To: <r@example.test>\r\n") != NULL);
    cr_assert_str_eq(header + len - 4, "\r\n\r\n");
    blast_message_cleanup(&message);

    /* A size below the header gives an empty body. */
    cr_assert_eq(blast_message_init_synthetic(&message, "blast.test", 10,
                                              &fields),
                 0);
    cr_assert_eq(message.bodies[0].len, 0);
    blast_message_cleanup(&message);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

Test(blast_message, body_dir)
{
    char dir[] = "/tmp/test_blast_message.XXXXXX";
    char sub[600];
    char command[700];
    struct blast_message message;
    struct blast_header_fields fields = {.seq = 2, .sent_us = 7, .rcpts = 1};
    char header[BLAST_HEADER_MAX];
    char error[256];
    size_t skipped;
    const struct blast_body *body;

    cr_assert_not_null(mkdtemp(dir));
    write_file(dir, "b.eml", "Subject: b\n\n.dot\n");
    write_file(dir, "a.eml", "Subject: a\n\nbody\n");
    write_file(dir, "c.txt", "no header here\n");
    write_file(dir, ".hidden", "Subject: hidden\n\n");
    snprintf(sub, sizeof(sub), "%s/subdir", dir);
    cr_assert_eq(mkdir(sub, 0700), 0);

    cr_assert_eq(blast_message_init_dir(&message, dir, &skipped, error,
                                        sizeof(error)),
                 0, "%s", error);
    cr_assert_eq(message.body_count, 2);
    cr_assert_eq(skipped, 1);

    /* Sorted by name, round robin by sequence number. */
    body = blast_message_body(&message, 1);
    cr_assert_eq(body->len, strlen("Subject: a\r\n\r\nbody\r\n"));
    cr_assert(body->has_header);
    body = blast_message_body(&message, 2);
    cr_assert_eq(memcmp(body->data, "Subject: b\r\n\r\n..dot\r\n",
                        body->len), 0);
    cr_assert_eq(blast_message_header(&message, body, &fields, header),
                 strlen("X-Blast-Seq: 2\r\nX-Blast-Sent: 7\r\n"
                        "X-Blast-Rcpts: 1\r\n"));
    cr_assert_str_eq(header, "X-Blast-Seq: 2\r\nX-Blast-Sent: 7\r\n"
                             "X-Blast-Rcpts: 1\r\n");

    /* c.txt, without a header, is skipped, so seq 3 gets a.eml again. */
    cr_assert_eq(blast_message_body(&message, 3), blast_message_body(&message,
                                                                     1));
    blast_message_cleanup(&message);

    /* An empty directory, one with only files without a header, and a
     * missing one are errors. */
    write_file(sub, "README.md", "# not a message\n");
    cr_assert_eq(blast_message_init_dir(&message, sub, &skipped, error,
                                        sizeof(error)),
                 -1);
    cr_assert(strstr(error, "none of its regular files starts with a header")
              != NULL, "%s", error);
    blast_message_cleanup(&message);
    snprintf(command, sizeof(command), "rm '%s/README.md'", sub);
    cr_assert_eq(system(command), 0);
    cr_assert_eq(blast_message_init_dir(&message, sub, &skipped, error,
                                        sizeof(error)),
                 -1);
    cr_assert(strstr(error, "no regular files") != NULL, "%s", error);
    blast_message_cleanup(&message);
    cr_assert_eq(blast_message_init_dir(&message, "/nonexistent-blast-dir",
                                        &skipped, error, sizeof(error)),
                 -1);
    cr_assert(strstr(error, "cannot open") != NULL, "%s", error);
    blast_message_cleanup(&message);

    snprintf(command, sizeof(command), "rm -rf '%s'", dir);
    cr_assert_eq(system(command), 0);
}
