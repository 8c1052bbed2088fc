/* Internals of the SMTP server session, shared by smtp_server.c (input
 * framing, DATA, life cycle), smtp_commands.c (command table and
 * handlers) and smtp_chunk.c (BDAT chunk data). Nothing outside proto/
 * includes this header. */
#ifndef RINGRELAY_PROTO_SMTP_SERVER_INTERNAL_H
#define RINGRELAY_PROTO_SMTP_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/smtp_body.h"
#include "proto/smtp_sasl.h"
#include "proto/smtp_server.h"

/* RFC 5321 section 4.5.3.1.2: a domain name has at most 255 octets. */
#define SMTP_HELO_MAX 255

/* Room for an IPv6 address text with a zone index. */
#define SMTP_CLIENT_IP_MAX 64

/* Session states, one bit each so a command lists where it is allowed as
 * a mask. */
enum smtp_server_state {
    SMTP_STATE_CONNECTED = 1u << 0, /* before HELO or EHLO */
    SMTP_STATE_READY = 1u << 1,     /* greeted, no transaction open */
    SMTP_STATE_MAIL = 1u << 2,      /* MAIL accepted, no recipient yet */
    SMTP_STATE_RCPT = 1u << 3,      /* at least one recipient accepted */
    SMTP_STATE_BODY = 1u << 4,      /* receiving the DATA body */
    SMTP_STATE_COMMIT = 1u << 5,    /* data_end() called, reply pending */
    SMTP_STATE_CHUNK = 1u << 6,     /* receiving the data of one BDAT */
    SMTP_STATE_AUTH = 1u << 7,      /* AUTH sent 334, reading a response */
    SMTP_STATE_AUTH_CHECK = 1u << 8, /* auth() called, reply pending */
};

/* States in which a line is read as a command. */
#define SMTP_STATE_COMMANDS                                         \
    (SMTP_STATE_CONNECTED | SMTP_STATE_READY | SMTP_STATE_MAIL |    \
     SMTP_STATE_RCPT)

/* States in which a mail transaction is open. */
#define SMTP_STATE_TRANSACTION                                      \
    (SMTP_STATE_MAIL | SMTP_STATE_RCPT | SMTP_STATE_BODY |          \
     SMTP_STATE_COMMIT | SMTP_STATE_CHUNK)

/* The BDAT command being received: its chunk is read in state
 * SMTP_STATE_CHUNK, stored or discarded, and replied to at its end. */
struct smtp_chunk {
    uint64_t left;        /* octets of the chunk still to read */
    uint64_t size;        /* octets in the whole chunk */
    bool last;            /* the chunk carried LAST */
    bool discard;         /* drop the octets, then send reply */
    bool counts_error;    /* reply is a 503 that counts toward max_errors */
    enum smtp_server_state after; /* state once the chunk is discarded */
    char reply[SMTP_REPLY_MAX];   /* the reply to a discarded chunk */
};

struct smtp_server {
    const struct smtp_server_options *opts;
    const struct smtp_server_hooks *hooks;
    void *ctx;
    enum smtp_server_state state;
    struct smtp_outq out;
    struct smtp_body body;

    /* Input not yet parsed: a partial command line, or input that arrived
     * while parsing was paused. Bounded by SMTP_SERVER_HELD_MAX. */
    char *held;
    size_t held_len;
    size_t held_capacity;

    bool greeting_deferred; /* hold input until the greeting is queued */
    bool discarding; /* dropping an over-long line up to its LF */
    bool closing;    /* nothing more is read; close once output is sent */
    const char *close_reason; /* static text, set with closing */
    bool running;    /* inside the parse loop, so hooks cannot re-enter */
    bool esmtp;      /* the client sent EHLO */
    bool smtputf8;   /* the transaction uses SMTPUTF8 */
    bool binarymime; /* MAIL had BODY=BINARYMIME, so BDAT only, raw data */
    bool bdat_used;  /* the transaction had a BDAT, so DATA gets 503 */
    bool storing;    /* data_begin() accepted BDAT data, not yet ended */
    bool bdat_failed; /* a chunk failed: discard until BDAT LAST */
    struct smtp_chunk chunk;
    bool refused;    /* the greeting refused service: 503 until QUIT */
    bool tls_pending; /* STARTTLS accepted: discard input until the owner
                       * calls smtp_server_tls_started() */
    bool tls_active; /* the connection is encrypted */
    uint64_t tls_discarded; /* bytes discarded while tls_pending */
    unsigned errors; /* bad commands so far */
    unsigned junk_commands; /* NOOP, RSET, VRFY, HELP, EHLO and HELO so far */
    uint64_t command_waits; /* see smtp_server_command_waits() */
    size_t rcpt_count;
    bool rcpt_tried; /* a RCPT was given in this transaction */
    char helo[SMTP_HELO_MAX + 1];
    char client_ip[SMTP_CLIENT_IP_MAX];

    /* SMTP AUTH (smtp_auth.c). */
    bool authenticated; /* an AUTH succeeded; auth_user is the user */
    struct smtp_sasl sasl; /* the exchange in states AUTH, AUTH_CHECK */
    char auth_user[SMTP_SASL_NAME_MAX + 1];
};

/* smtp_server_reply queues one reply line; the CRLF is added. */
void smtp_server_reply(struct smtp_server *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* smtp_server_reject queues the reply to a bad command and counts it
 * toward max_errors; at the limit it also queues 421 and closes. */
void smtp_server_reject(struct smtp_server *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* smtp_server_count_junk counts a NOOP, RSET, VRFY, HELP, EHLO or HELO
 * toward max_junk_commands. Past the limit it queues 421, closes and
 * returns true, and the command is not run. */
bool smtp_server_count_junk(struct smtp_server *s);

/* smtp_server_hook_reply queues the reply line a hook wrote when it
 * refused. */
void smtp_server_hook_reply(struct smtp_server *s, const char *reply);

/* smtp_server_end_transaction calls reset() when a transaction is open
 * and returns the session to the greeted state. */
void smtp_server_end_transaction(struct smtp_server *s);

/* smtp_server_close stops reading; replies already queued still go out.
 * reason is a static string for the owner's log line. */
void smtp_server_close(struct smtp_server *s, const char *reason);

/* smtp_server_begin_body switches to receiving the DATA body. */
void smtp_server_begin_body(struct smtp_server *s);

/* smtp_server_start_body starts the body scanner that passes DATA or
 * BDAT data to data_write(), in raw mode for a BINARYMIME transaction. */
void smtp_server_start_body(struct smtp_server *s);

/* smtp_server_body_error writes the reply for a failed body (bare CR or
 * LF, NUL, too big, storage failed) into reply[0..SMTP_REPLY_MAX). */
void smtp_server_body_error(const struct smtp_server *s, char *reply);

/* smtp_server_end_body hands the complete DATA or BDAT body to
 * data_end(), or rejects it with the reply for its failure. */
void smtp_server_end_body(struct smtp_server *s);

/* smtp_server_hook_refusal queues the reply of a hook that returned rc
 * < 0, and counts it toward max_errors when rc is
 * SMTP_HOOK_REJECT_COUNTED. */
void smtp_server_hook_refusal(struct smtp_server *s, const char *reply,
                              int rc);

/* smtp_server_abort_storage calls data_abort() with reply (NULL when the
 * message is given up without one) for BDAT data stored so far, when any
 * is. */
void smtp_server_abort_storage(struct smtp_server *s, const char *reply);

/* smtp_chunk_begin starts the chunk of "BDAT size [LAST]" after the
 * command line was parsed. */
void smtp_chunk_begin(struct smtp_server *s, uint64_t size, bool last);

/* smtp_chunk_input consumes chunk octets at the start of data[0..len).
 * Returns the bytes consumed, at least 1. */
size_t smtp_chunk_input(struct smtp_server *s, const char *data,
                        size_t len);

/* smtp_auth_offered is true when EHLO offers AUTH to this session. */
bool smtp_auth_offered(const struct smtp_server *s);

/* smtp_auth_command runs "AUTH mechanism [initial-response]" with the
 * argument text[0..len), blanks around it trimmed. */
void smtp_auth_command(struct smtp_server *s, const char *text, size_t len);

/* smtp_auth_response takes one client line in state SMTP_STATE_AUTH;
 * line[0..len) ends with its LF. */
void smtp_auth_response(struct smtp_server *s, const char *line,
                        size_t len);

/* smtp_commands_execute parses and runs one command line; line[0..len)
 * ends with its LF. */
void smtp_commands_execute(struct smtp_server *s, const char *line,
                           size_t len);

#endif
