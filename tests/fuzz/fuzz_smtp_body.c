/* libFuzzer target: the DATA body scanner (proto/smtp_body.c) and the
 * BDAT chunk path (proto/smtp_chunk.c), behind a session that already
 * has a recipient, checked against a plain reference reading of the
 * same bytes on top of the checks of fuzz_session.h.
 *
 * Input: an 8-byte header, then the message data. A shorter input counts
 * as header bytes of 0 and empty data.
 *   byte 0: bit 0 send the data in BDAT chunks (else after DATA); bit 1
 *           max_message_size 256 (else none); bit 2 end with a separate
 *           "BDAT 0 LAST" (else LAST goes on the last chunk); bit 3
 *           call data_done() inside data_end(); bit 4 fail the second
 *           data_write()
 *   bytes 1-4: lengths of the feed() pieces, cycled, 0 for the rest
 *   bytes 5-7: BDAT chunk sizes, cycled, 0 for the rest
 *
 * DATA: the data follows "DATA\r\n" as sent, so the body ends at the
 * first CRLF "." CRLF (the data start counts as after a CRLF), and the
 * bytes after it run as commands. BDAT: the target frames the data in
 * chunks itself, so every byte is message data. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_session.h"

#define BODY_HEADER 8
#define BODY_CHUNK_SIZES 3

/* The session before the data: four replies (220, EHLO, MAIL, RCPT). */
#define BODY_PREFIX "EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"
#define BODY_PREFIX_REPLIES 4

/* Room for "BDAT <20 digits> LAST\r\n". */
#define BODY_BDAT_LINE_MAX 40

#define BODY_SMALL_MAX 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct body_case {
    struct fuzz_session fs;
    const char *data; /* the message data after the header */
    size_t len;
    uint8_t header[BODY_HEADER];
    bool fail_write;
};

static bool reply_is(const char *line, size_t len, const char *expected)
{
    return line != NULL && len == strlen(expected) &&
           memcmp(line, expected, len) == 0;
}

static bool reply_starts(const char *line, size_t len, const char *prefix)
{
    size_t prefix_len = strlen(prefix);

    return line != NULL && len >= prefix_len &&
           memcmp(line, prefix, prefix_len) == 0;
}

/* data_body_len finds where the DATA body ends. Returns true and stores
 * the body length (its final CRLF included) when the data contains the
 * end of the body. */
static bool data_body_len(const char *data, size_t len, size_t *body_len)
{
    const char *end;

    if (len >= 3 && memcmp(data, ".\r\n", 3) == 0) {
        *body_len = 0;
        return true;
    }
    end = len >= 5 ? memmem(data, len, "\r\n.\r\n", 5) : NULL;
    if (end == NULL) {
        return false;
    }
    *body_len = (size_t)(end - data) + 2;
    return true;
}

static void run_data(struct body_case *c)
{
    struct fuzz_session *fs = &c->fs;
    size_t prefix_len = strlen(BODY_PREFIX "DATA\r\n");
    size_t stream_len = prefix_len + c->len;
    char *stream = malloc(stream_len);
    uint64_t max = fs->opts.max_message_size;
    size_t body_len = 0;
    const char *reply;
    size_t reply_len = 0;
    bool bad;
    bool big;

    FUZZ_CHECK(stream != NULL);
    memcpy(stream, BODY_PREFIX "DATA\r\n", prefix_len);
    memcpy(stream + prefix_len, c->data, c->len);
    fuzz_session_feed(fs, stream, stream_len, c->header + 1);
    fuzz_session_settle(fs);
    free(stream);

    if (!data_body_len(c->data, c->len, &body_len)) {
        FUZZ_CHECK(fs->first_outcome == FUZZ_OUTCOME_NONE);
        return;
    }
    bad = fuzz_text_is_bad(c->data, body_len);
    big = max != 0 && body_len > max;
    FUZZ_CHECK(fs->first_outcome != FUZZ_OUTCOME_NONE);
    if (fs->first_outcome == FUZZ_OUTCOME_ACCEPTED) {
        FUZZ_CHECK(!bad && !big && !fs->write_failed);
        FUZZ_CHECK(fs->first_body.len == body_len);
        FUZZ_CHECK(body_len == 0 ||
                   memcmp(fs->first_body.data, c->data, body_len) == 0);
    }
    if (c->fail_write) {
        return;
    }

    reply = fuzz_session_final_reply(fs, BODY_PREFIX_REPLIES, &reply_len);
    FUZZ_CHECK(reply_starts(reply, reply_len, "354 "));
    reply = fuzz_session_final_reply(fs, BODY_PREFIX_REPLIES + 1, &reply_len);
    if (bad) {
        FUZZ_CHECK(fs->first_outcome == FUZZ_OUTCOME_ABORTED);
        FUZZ_CHECK(reply_starts(reply, reply_len, "550 5.6.0 "));
    } else if (big) {
        FUZZ_CHECK(fs->first_outcome == FUZZ_OUTCOME_ABORTED);
        FUZZ_CHECK(reply_starts(reply, reply_len, "552 5.3.4 "));
    } else {
        FUZZ_CHECK(fs->first_outcome == FUZZ_OUTCOME_ACCEPTED);
        FUZZ_CHECK(reply_is(reply, reply_len, FUZZ_QUEUED_REPLY));
    }
}

/* bdat_chunk_len returns the size of chunk i starting at pos. */
static size_t bdat_chunk_len(const struct body_case *c, size_t i, size_t pos)
{
    size_t chunk = c->header[5 + i % BODY_CHUNK_SIZES];

    return chunk == 0 || chunk > c->len - pos ? c->len - pos : chunk;
}

/* bdat_chunk_count returns the number of BDAT commands the data takes. */
static size_t bdat_chunk_count(const struct body_case *c, bool separate_last)
{
    size_t count = 0;

    for (size_t pos = 0; pos < c->len; count++) {
        pos += bdat_chunk_len(c, count, pos);
    }
    return separate_last || c->len == 0 ? count + 1 : count;
}

/* bdat_stream frames the data as the BDAT commands after the prefix and
 * stores the stream's length. */
static char *bdat_stream(const struct body_case *c, size_t chunks,
                         size_t *stream_len)
{
    size_t prefix_len = strlen(BODY_PREFIX);
    size_t capacity = prefix_len + c->len + chunks * BODY_BDAT_LINE_MAX;
    char *stream = malloc(capacity);
    size_t used = prefix_len;
    size_t pos = 0;

    FUZZ_CHECK(stream != NULL);
    memcpy(stream, BODY_PREFIX, prefix_len);
    for (size_t i = 0; i < chunks; i++) {
        size_t chunk = pos < c->len ? bdat_chunk_len(c, i, pos) : 0;
        bool last = i + 1 == chunks;
        int n = snprintf(stream + used, BODY_BDAT_LINE_MAX, "BDAT %zu%s\r\n",
                         chunk, last ? " LAST" : "");

        FUZZ_CHECK(n > 0 && n < BODY_BDAT_LINE_MAX);
        used += (size_t)n;
        memcpy(stream + used, c->data + pos, chunk);
        used += chunk;
        pos += chunk;
    }
    FUZZ_CHECK(pos == c->len && used <= capacity);
    *stream_len = used;
    return stream;
}

/* bad_text_seen returns the index of the byte at which the BDAT reading
 * first detects a NUL or a bare CR or LF. That is the NUL or LF itself,
 * or the byte after a lone CR (len for a CR at the very end). Returns
 * SIZE_MAX when there is none. */
static size_t bad_text_seen(const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\0') {
            return i;
        }
        if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r')) {
            return i;
        }
        if (data[i] == '\r' && (i + 1 == len || data[i + 1] != '\n')) {
            return i + 1;
        }
    }
    return SIZE_MAX;
}

/* bdat_expected_body returns the data dot-stuffed and ended with CRLF,
 * as the session stores an accepted BDAT message, and its length. */
static char *bdat_expected_body(const struct body_case *c, size_t *len)
{
    char *body = malloc(c->len * 2 + 2);
    size_t used = 0;

    FUZZ_CHECK(body != NULL);
    for (size_t i = 0; i < c->len; i++) {
        if (c->data[i] == '.' && (i == 0 || c->data[i - 1] == '\n')) {
            body[used++] = '.';
        }
        body[used++] = c->data[i];
    }
    if (c->len > 0 && c->data[c->len - 1] != '\n') {
        body[used++] = '\r';
        body[used++] = '\n';
    }
    *len = used;
    return body;
}

/* bdat_stuffed_len returns the stored size of data[0..end) before the
 * CRLF that the end of the message may add. */
static uint64_t bdat_stuffed_len(const struct body_case *c, size_t end)
{
    uint64_t len = end;

    for (size_t i = 0; i < end; i++) {
        if (c->data[i] == '.' && (i == 0 || c->data[i - 1] == '\n')) {
            len++;
        }
    }
    return len;
}

/* bdat_check_replies checks the reply to each chunk against the reference:
 * 250 "octets received" until a chunk fails, that chunk's error for it and
 * every later chunk, and the queued reply for a LAST that did not fail.
 * Returns true when the message failed. */
static bool bdat_check_replies(const struct body_case *c, size_t chunks,
                               size_t expected_len)
{
    const struct fuzz_session *fs = &c->fs;
    uint64_t max = fs->opts.max_message_size;
    size_t seen = bad_text_seen(c->data, c->len);
    const char *failure = NULL;
    size_t failure_len = 0;
    size_t pos = 0;

    for (size_t i = 0; i < chunks; i++) {
        size_t chunk = pos < c->len ? bdat_chunk_len(c, i, pos) : 0;
        bool last = i + 1 == chunks;
        size_t len = 0;
        const char *reply =
            fuzz_session_final_reply(fs, BODY_PREFIX_REPLIES + i, &len);
        uint64_t stored =
            last ? expected_len : bdat_stuffed_len(c, pos + chunk);
        char octets[SMTP_REPLY_MAX];

        pos += chunk;
        FUZZ_CHECK(reply != NULL);
        if (failure != NULL) {
            FUZZ_CHECK(len == failure_len && memcmp(reply, failure, len) == 0);
            continue;
        }
        if (seen < pos || (last && seen != SIZE_MAX)) {
            FUZZ_CHECK(reply_starts(reply, len, "550 5.6.0 "));
        } else if (max != 0 && stored > max) {
            FUZZ_CHECK(reply_starts(reply, len, "552 5.3.4 "));
        } else if (last) {
            FUZZ_CHECK(reply_is(reply, len, FUZZ_QUEUED_REPLY));
            continue;
        } else {
            snprintf(octets, sizeof(octets), "250 2.0.0 %zu octets received",
                     chunk);
            FUZZ_CHECK(reply_is(reply, len, octets));
            continue;
        }
        failure = reply;
        failure_len = len;
    }
    return failure != NULL;
}

static void run_bdat(struct body_case *c)
{
    struct fuzz_session *fs = &c->fs;
    bool separate_last = (c->header[0] & 0x04u) != 0;
    size_t chunks = bdat_chunk_count(c, separate_last);
    size_t stream_len = 0;
    char *stream = bdat_stream(c, chunks, &stream_len);
    size_t expected_len = 0;
    char *expected = bdat_expected_body(c, &expected_len);
    bool failed;

    fuzz_session_feed(fs, stream, stream_len, c->header + 1);
    fuzz_session_settle(fs);
    free(stream);

    FUZZ_CHECK(fs->messages == 1);
    if (fs->first_outcome == FUZZ_OUTCOME_ACCEPTED) {
        FUZZ_CHECK(!fs->write_failed);
        FUZZ_CHECK(fs->first_body.len == expected_len);
        FUZZ_CHECK(expected_len == 0 ||
                   memcmp(fs->first_body.data, expected, expected_len) == 0);
    }
    if (!c->fail_write) {
        FUZZ_CHECK(fs->finals_len == BODY_PREFIX_REPLIES + chunks);
        failed = bdat_check_replies(c, chunks, expected_len);
        FUZZ_CHECK(fs->first_outcome ==
                   (failed ? FUZZ_OUTCOME_ABORTED : FUZZ_OUTCOME_ACCEPTED));
    }
    free(expected);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t header_len = size < BODY_HEADER ? size : BODY_HEADER;
    struct body_case c;

    memset(&c, 0, sizeof(c));
    memcpy(c.header, data, header_len);
    c.data = (const char *)data + header_len;
    c.len = size - header_len;
    c.fail_write = (c.header[0] & 0x10u) != 0;

    fuzz_session_init(&c.fs);
    c.fs.opts.max_message_size =
        (c.header[0] & 0x02u) != 0 ? BODY_SMALL_MAX : 0;
    c.fs.commit_in_hook = (c.header[0] & 0x08u) != 0;
    c.fs.fail_write_at = c.fail_write ? 2 : 0;
    fuzz_session_start(&c.fs, false);

    if ((c.header[0] & 0x01u) != 0) {
        run_bdat(&c);
    } else {
        run_data(&c);
    }

    fuzz_session_finish(&c.fs);
    fuzz_session_cleanup(&c.fs);
    return 0;
}
