/* Harness shared by the libFuzzer targets: one proto/smtp_server session
 * with hooks that accept, count and check what the session does.
 *
 * Every check that fails prints what went wrong and calls abort(), which
 * libFuzzer reports as a crash and saves the input for. The checks:
 * - every reply line is "DDD" plus SP or "-" and text, within
 *   SMTP_REPLY_MAX, with no CR, LF or NUL inside. A "DDD-" line is
 *   followed by a line with the same code, and no line follows 221 or
 *   421;
 * - hooks come in order: mail outside a transaction, rcpt and data_begin
 *   inside one, data_write, data_end and data_abort only while a body is
 *   open, reset only for an open transaction. After a refused greeting no
 *   hook runs, and every later reply is 5xx, 221 or 421;
 * - an accepted body fits max_message_size. A 7BIT or 8BITMIME body also
 *   has CRLF line ends only, is empty or ends with CRLF, and contains no
 *   line that is a single ".";
 * - auth() runs only outside a transaction and with auth_plaintext, with
 *   PLAIN or LOGIN and a user name and password of 1 to 255 bytes
 *   without control bytes. It accepts user "u" with password "p";
 * - a session that is closing adds no replies when fed. */
#ifndef RINGRELAY_TESTS_FUZZ_FUZZ_SESSION_H
#define RINGRELAY_TESTS_FUZZ_FUZZ_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/smtp_server.h"

/* The reply that the harness gives to every data_end(). */
#define FUZZ_QUEUED_REPLY "250 2.0.0 Ok: queued as FUZZ"

/* Splits of one input into smtp_server_feed() calls: piece i is
 * lengths[i % FUZZ_SPLIT_COUNT] bytes long, and 0 means the rest. */
#define FUZZ_SPLIT_COUNT 4

/* What happened to the first message of a session. */
enum fuzz_outcome {
    FUZZ_OUTCOME_NONE,     /* no data_end() or data_abort() yet */
    FUZZ_OUTCOME_ACCEPTED, /* data_end() */
    FUZZ_OUTCOME_ABORTED,  /* data_abort() */
};

struct fuzz_buffer {
    char *data;
    size_t len;
    size_t capacity;
};

struct fuzz_session {
    struct smtp_server_options opts;
    struct smtp_server_hooks hooks;
    struct smtp_server *server;

    /* Behaviour, set before fuzz_session_start(). */
    bool commit_in_hook;    /* call data_done() inside data_end() */
    bool slow_reader;       /* read replies only in fuzz_session_finish() */
    bool policy_hooks;      /* refuse or rewrite by the address's first
                             * letter, see fuzz_session.c */
    unsigned fail_write_at; /* fail that data_write() call (1-based),
                             * 0 for never */

    /* Hook state. */
    bool refused;        /* the greeting refused service */
    bool in_transaction; /* mail() accepted, reset() not yet called */
    bool in_body;        /* data_begin() accepted, body not ended */
    bool committing;     /* data_end() called, data_done() pending */
    bool nodata_sender;  /* policy: data_begin() refuses */
    bool text_body;      /* MAIL had BODY=7BIT or 8BITMIME (or none) */
    size_t rcpts;        /* recipients accepted in this transaction */
    unsigned writes;     /* data_write() calls in this body */
    bool write_failed;   /* a data_write() of the first message failed */
    unsigned messages;   /* bodies ended by data_end() or data_abort() */
    struct fuzz_buffer body;

    /* Hook calls in order, to compare two runs of one input: "M" and "R"
     * with the address and a NUL, "B", "E" with the body length and
     * body, "A", "X", "U" with the AUTH user and a NUL, and "-" for a
     * hook that rejected. Writes are not
     * logged one by one, because the feed pieces decide how data_write()
     * calls cut the body. */
    struct fuzz_buffer events;

    /* The first message, for the body target's reference checks. */
    enum fuzz_outcome first_outcome;
    struct fuzz_buffer first_body;

    /* Every reply byte the session sent, and the offsets of the final
     * line of each reply (the line with SP after the code). */
    struct fuzz_buffer output;
    size_t checked;     /* output bytes already checked */
    int continued_code; /* code of an open "DDD-" reply, or -1 */
    bool ended;         /* a 221 or 421 reply was sent */
    size_t *finals;
    size_t finals_len;
    size_t finals_capacity;
};

/* FUZZ_CHECK aborts with the failed condition and its location. */
#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fuzz_fail(__FILE__, __LINE__, #cond);                              \
        }                                                                      \
    } while (0)

/* fuzz_fail prints the failed check to stderr and aborts. */
_Noreturn void fuzz_fail(const char *file, int line, const char *what);

/* fuzz_session_init sets default options (hostname "fuzz.test", no size
 * limit, default line limit) and clears all state. */
void fuzz_session_init(struct fuzz_session *fs);

/* fuzz_session_start creates the server session, then queues the 220
 * greeting, or a 554 refusal when refuse is true. */
void fuzz_session_start(struct fuzz_session *fs, bool refuse);

/* fuzz_session_feed feeds data[0..len) in pieces cut by lengths[]. After
 * each piece it calls smtp_server_data_done() for a pending data_end()
 * and, unless slow_reader, reads the replies. */
void fuzz_session_feed(struct fuzz_session *fs, const char *data, size_t len,
                       const uint8_t lengths[FUZZ_SPLIT_COUNT]);

/* fuzz_session_settle calls smtp_server_data_done() for a pending
 * data_end(), reads all replies and resumes parsing, until no held input
 * can run. */
void fuzz_session_settle(struct fuzz_session *fs);

/* fuzz_session_final_reply returns the final line of reply i (0 is the
 * greeting) and stores its length without CRLF, or returns NULL past the
 * last reply. */
const char *fuzz_session_final_reply(const struct fuzz_session *fs, size_t i,
                                     size_t *len);

/* fuzz_session_finish settles, frees the server session and checks that
 * it ended every open body and transaction. The recorded output and first
 * body stay until fuzz_session_cleanup(). */
void fuzz_session_finish(struct fuzz_session *fs);

/* fuzz_session_cleanup frees the harness buffers. */
void fuzz_session_cleanup(struct fuzz_session *fs);

/* fuzz_text_is_bad reports whether data[0..len) has a NUL, or a CR or LF
 * that is not part of a CRLF pair: what makes a text body fail. */
bool fuzz_text_is_bad(const char *data, size_t len);

#endif
