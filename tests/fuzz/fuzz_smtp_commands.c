/* libFuzzer target: arbitrary bytes as the client side of an SMTP server
 * session, with the checks of fuzz_session.h. Each input runs twice, fed
 * in the pieces that the header sets and fed whole, and both runs must
 * send the same replies and make the same hook calls.
 *
 * Input: a 7-byte header, then the bytes fed to the session. A shorter
 * input counts as header bytes of 0 and no session bytes.
 *   byte 0: bits 0-4 disabled_extensions; bit 5 max_line 64 (else the
 *           default 512); bit 6 no max_errors (else 5); bit 7 call
 *           data_done() inside data_end() (else after the feed call)
 *   byte 1: bit 0 max_message_size 100 (else none); bit 1 max_rcpts 2
 *           (else none); bit 2 read replies only at the end; bit 3 refuse
 *           the greeting with 554; bit 4 policy hooks (fuzz_session.c);
 *           bit 5 fail the first data_write(); bit 6 time the session out
 *           after the input; bit 7 shut it down after the first piece
 *   bytes 2-5: lengths of the feed() pieces, cycled, 0 for the rest
 *   byte 6: bit 0 no hooks at all (NULL in every hook field); bit 1
 *           max_line 1024, as the daemon sets it; bits 2 and 3 both set,
 *           with bit 2 of byte 1: feed the input COMMANDS_REPEAT times,
 *           so that a reader that does not read can pass the 1 MiB limit
 *           of held input. Three bits make such slow inputs rare. Bit 4
 *           disables BINARYMIME too, bit 5 DSN; bit 6 max_text_line 40
 *           (else none); bit 7 auth_plaintext, so AUTH is offered. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tests/fuzz/fuzz_session.h"

#define COMMANDS_HEADER 7
#define COMMANDS_REPEAT 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void commands_configure(struct fuzz_session *fs,
                               const uint8_t header[COMMANDS_HEADER])
{
    fs->opts.disabled_extensions = header[0] & 0x1fu;
    fs->opts.max_line = (header[0] & 0x20u) != 0 ? 64 : 0;
    fs->opts.max_errors = (header[0] & 0x40u) != 0 ? 0 : 5;
    fs->commit_in_hook = (header[0] & 0x80u) != 0;

    fs->opts.max_message_size = (header[1] & 0x01u) != 0 ? 100 : 0;
    fs->opts.max_rcpts = (header[1] & 0x02u) != 0 ? 2 : 0;
    fs->slow_reader = (header[1] & 0x04u) != 0;
    fs->policy_hooks = (header[1] & 0x10u) != 0;
    fs->fail_write_at = (header[1] & 0x20u) != 0 ? 1 : 0;

    if ((header[6] & 0x01u) != 0) {
        memset(&fs->hooks, 0, sizeof(fs->hooks));
    }
    if ((header[6] & 0x02u) != 0) {
        fs->opts.max_line = 1024;
    }
    if ((header[6] & 0x10u) != 0) {
        fs->opts.disabled_extensions |= SMTP_EXT_BINARYMIME;
    }
    if ((header[6] & 0x20u) != 0) {
        fs->opts.disabled_extensions |= SMTP_EXT_DSN;
    }
    fs->opts.max_text_line = (header[6] & 0x40u) != 0 ? 40 : 0;
    fs->opts.auth_plaintext = (header[6] & 0x80u) != 0;
}

/* commands_run runs one session over the input, fed in pieces of
 * lengths[], and leaves fs finished but not cleaned up. */
static void commands_run(struct fuzz_session *fs,
                         const uint8_t header[COMMANDS_HEADER],
                         const char *input, size_t input_len,
                         const uint8_t lengths[FUZZ_SPLIT_COUNT])
{
    bool repeated = (header[6] & 0x0cu) == 0x0cu && (header[1] & 0x04u) != 0;
    unsigned repeat = repeated ? COMMANDS_REPEAT : 1;

    fuzz_session_init(fs);
    commands_configure(fs, header);
    fuzz_session_start(fs, (header[1] & 0x08u) != 0);

    /* The shutdown comes after as many bytes as the first piece has, in
     * both runs, so that the runs stay comparable. */
    if ((header[1] & 0x80u) != 0) {
        size_t first = header[2] < input_len ? header[2] : input_len;

        fuzz_session_feed(fs, input, first, lengths);
        smtp_server_shutdown(fs->server);
        input += first;
        input_len -= first;
    }
    for (unsigned i = 0; i < repeat; i++) {
        fuzz_session_feed(fs, input, input_len, lengths);
    }
    if ((header[1] & 0x40u) != 0) {
        smtp_server_timeout(fs->server);
    }
    fuzz_session_finish(fs);
}

static bool buffers_equal(const struct fuzz_buffer *a,
                          const struct fuzz_buffer *b)
{
    return a->len == b->len &&
           (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t whole[FUZZ_SPLIT_COUNT] = {0};
    uint8_t header[COMMANDS_HEADER] = {0};
    size_t header_len = size < COMMANDS_HEADER ? size : COMMANDS_HEADER;
    const char *input = (const char *)data + header_len;
    size_t input_len = size - header_len;
    struct fuzz_session split;
    struct fuzz_session unsplit;

    memcpy(header, data, header_len);
    commands_run(&split, header, input, input_len, header + 2);

    /* Where the feed calls cut the input must not change what the
     * session replies, or what reaches the hooks. */
    commands_run(&unsplit, header, input, input_len, whole);
    FUZZ_CHECK(buffers_equal(&split.output, &unsplit.output));
    FUZZ_CHECK(buffers_equal(&split.events, &unsplit.events));

    fuzz_session_cleanup(&split);
    fuzz_session_cleanup(&unsplit);
    return 0;
}
