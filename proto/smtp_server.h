/* SMTP server session: the protocol state of one inbound connection.
 *
 * It does no I/O. The caller feeds received bytes with smtp_server_feed(),
 * sends what the session queued in its output queue, and supplies a set of
 * hooks that decide on senders and recipients and store the message. The
 * daemon's hooks write into the queue store; the bench sink's hooks count
 * or write files.
 *
 * Commands are parsed in place: a command line that arrived whole is
 * parsed straight from the caller's buffer; only a partial line, or input
 * that arrives while the session waits (for a DATA commit or for output to
 * drain), is copied into the session's own buffer. Parsing waits while
 * more than 64 KiB of replies are queued; more than 1 MiB of input held
 * back gets "421 4.7.0" and the session closes.
 *
 * A command line must end with CRLF: a line ending in a bare LF, or with
 * a NUL or CR inside, gets 500 5.5.2. A line longer than max_line gets
 * 500 5.5.6 once its LF arrives, and none of it is run. Replies 500, 501,
 * 502, 503, 553 and 555 count toward max_errors; policy refusals from
 * hooks do not, unless the rcpt hook returns SMTP_HOOK_REJECT_COUNTED.
 * NOOP, RSET, VRFY, HELP, EHLO and HELO count toward max_junk_commands,
 * and the first one past it gets 421 4.7.0 in place of its reply. Known
 * verbs that are not implemented (EXPN, TURN, ETRN, ATRN, SEND, SOML,
 * SAML) get 502 5.5.1, and so do AUTH without an auth hook and STARTTLS
 * when it is not offered.
 *
 * AUTH (RFC 4954, mechanisms PLAIN and LOGIN, smtp_sasl.h) is offered in
 * the EHLO reply when the auth hook is set and the session is encrypted
 * (smtp_server_tls_started()) or options.auth_plaintext is true.
 * Otherwise AUTH gets 538 5.7.11, the RFC 4954 reply for a mechanism that
 * needs encryption. AUTH before EHLO, after HELO, after a successful AUTH
 * or inside a mail transaction gets 503 5.5.1, and an unknown mechanism
 * 504 5.5.4. While the exchange runs, each client line is a SASL response
 * (up to 12288 bytes with CRLF, or max_line when larger), never a
 * command: "*" cancels with 501 5.0.0, bad base64 gets 501 5.5.2. With
 * the credentials decoded the session calls the auth hook and parses
 * nothing more until smtp_server_auth_done() answers; the default replies
 * are 235 2.7.0 and 535 5.7.8. Every refusal that the session sends
 * itself (501, 502, 503, 504, 538, and the 535 for a PLAIN authzid that
 * differs from the user) counts toward max_errors. The owner's answer
 * does not, because the owner limits failed attempts itself.
 *
 * STARTTLS (RFC 3207) is offered in the EHLO reply when opts->starttls is
 * set, the starttls hook exists and the session is not encrypted yet. It
 * needs EHLO or HELO first (503 5.5.1 before) and no open transaction
 * (503 5.5.1), takes no argument (501 5.5.4), and gets 554 5.5.1 once
 * TLS is active. When the hook accepts, the session replies "220 2.0.0
 * Ready to start TLS" and discards every byte that follows the STARTTLS
 * line, in the same feed, held, or fed later, until the owner calls
 * smtp_server_tls_started(). So plaintext that a client pipelined after
 * STARTTLS is never run as a command of the encrypted session.
 *
 * DATA: body bytes reach hooks->data_write() in wire form (CRLF,
 * dot-stuffed as received), without the final ".CRLF". A bare CR or LF
 * or a NUL anywhere in the body rejects the message with 550 5.6.0 once
 * the final CRLF.CRLF arrives. A body over the size limit gets 552
 * 5.3.4, and a line of the wire form longer than max_text_line gets 554
 * 5.6.0. A message whose header section has more than max_hops
 * Received: fields gets 554 5.4.6 (smtp_hops.h says what counts). In
 * each case hooks->data_abort() runs and the session returns to the
 * state after EHLO (no transaction open).
 *
 * BDAT (RFC 3030 CHUNKING): each chunk's octets are read by count. They
 * reach hooks->data_write() in the same wire form as DATA: dot-stuffed,
 * and with a CRLF added when the message does not end with one. The
 * first chunk calls data_begin(), each chunk but LAST gets "250 2.0.0
 * <n> octets received", and LAST ends like DATA with data_end(). A bare
 * CR or LF or a NUL gets 550 5.6.0, an oversize message 552 5.3.4 and
 * a line over max_text_line 554 5.6.0, at the end of the chunk where it
 * shows. Then data_abort() runs, and every later chunk up to LAST is read
 * and gets the same reply. A chunk sent without a recipient is read and
 * discarded, and then gets 503 5.5.1. DATA after BDAT in one transaction
 * gets 503 5.5.1.
 *
 * BINARYMIME (RFC 3030): after MAIL ... BODY=BINARYMIME the body may
 * only come with BDAT, so DATA gets 503 5.5.1. The chunk octets reach
 * data_write() exactly as received: no dot-stuffing, no CRLF added and
 * no check for bare CR, bare LF, NUL or line length, because the body is
 * binary. The hop limit still applies, because the header section is
 * text. max_message_size then counts these octets, while for other
 * bodies it counts the wire form. */
#ifndef RINGRELAY_PROTO_SMTP_SERVER_H
#define RINGRELAY_PROTO_SMTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/smtp_address.h"
#include "proto/smtp_dsn.h"
#include "proto/smtp_outq.h"

struct smtp_server;

/* The longest decoded AUTH= value of MAIL: a path of 256 octets (RFC
 * 5321 section 4.5.3.1.3). */
#define SMTP_AUTH_PARAM_MAX 256

/* Reply buffer size for hooks, without CRLF. */
#define SMTP_REPLY_MAX 512

enum smtp_body_type {
    SMTP_BODY_7BIT,
    SMTP_BODY_8BITMIME,
    SMTP_BODY_BINARYMIME, /* RFC 3030: binary body, sent with BDAT only */
};

struct smtp_mail_params {
    uint64_t size;             /* SIZE=, 0 when absent */
    enum smtp_body_type body;  /* BODY= */
    bool smtputf8;             /* SMTPUTF8 */
    enum smtp_dsn_ret ret;     /* RET= */
    char envid[SMTP_ENVID_MAX + 1]; /* ENVID= xtext-decoded, "" when
                                     * absent */
    /* AUTH= (RFC 4954 section 5) xtext-decoded: "<>" or a mailbox, ""
     * when absent. Only a client that AUTH authenticated may set it;
     * from any other client it is accepted and stored as "<>". */
    char auth[SMTP_AUTH_PARAM_MAX + 1];
};

struct smtp_rcpt_params {
    unsigned notify;           /* smtp_dsn_notify bits, 0 when absent */
    /* ORCPT= as "addr-type;address" with the address xtext-decoded and
     * the addr-type as sent; "" when absent. */
    char orcpt[SMTP_ORCPT_MAX + 1];
};

/* Return value of a rcpt hook for a refusal that counts toward
 * max_errors; see struct smtp_server_hooks. */
#define SMTP_HOOK_REJECT_COUNTED (-2)

/* data_write returns SMTP_HOOK_NO_SPACE in place of -1 when storage is
 * full, so the message gets 452 4.3.1 rather than 451 4.3.0. */
#define SMTP_HOOK_NO_SPACE (-3)

/* Hooks return 0 to accept. To refuse, they write a full reply line
 * ("554 5.7.1 ...", no CRLF) into reply[0..SMTP_REPLY_MAX) and return -1.
 * The mail and rcpt hooks may also accept with a 2xx reply line of their
 * own: they write it and return 0, and it replaces the default 250. A
 * reply with code 421 closes the session once it is queued (RFC 5321
 * section 3.8), from a hook and from smtp_server_data_done() alike.
 * ctx is the value given to smtp_server_new(). A NULL hook accepts (or,
 * for data_write, discards the bytes); with no data_end the session
 * replies "250 2.0.0 Ok" at once. Hooks must not call
 * smtp_server_feed() or smtp_server_free().
 *
 * The rcpt hook may refuse with SMTP_HOOK_REJECT_COUNTED in place of -1:
 * its reply then counts toward max_errors like that of an invalid
 * command, for refusals that a client could repeat without end, such as
 * a relay denial. */
struct smtp_server_hooks {
    /* mail: a valid MAIL FROM. */
    int (*mail)(void *ctx, const struct smtp_path *from,
                const struct smtp_mail_params *params, char *reply);

    /* rcpt: a valid RCPT TO; the place for relay policy. */
    int (*rcpt)(void *ctx, const struct smtp_path *to,
                const struct smtp_rcpt_params *params, char *reply);

    /* data_begin: DATA accepted; open storage for the body. The hook
     * writes any trace header itself through data_write(). */
    int (*data_begin)(void *ctx, char *reply);

    /* data_write: body bytes in wire form. Returns 0, or -1 when storage
     * failed, or SMTP_HOOK_NO_SPACE when storage is full. The session
     * then discards the rest of the body and replies 451 4.3.0 (452 4.3.1
     * for no space) at the end, unless the body also has a bare CR or LF
     * (550) or goes over the size limit (552). */
    int (*data_write)(void *ctx, const char *data, size_t len);

    /* data_end: the final ".CRLF" arrived and the body was accepted. The
     * session stops parsing until the caller answers with
     * smtp_server_data_done(), which may be called from inside this
     * hook. */
    void (*data_end)(void *ctx);

    /* data_abort: drop the stored body. reply is the reply line (no
     * CRLF) that rejects the message, or NULL when the message was given
     * up without one: the client went away, the session closed (see
     * smtp_server_close_reason()), or RSET, HELO or EHLO came between
     * BDAT chunks. */
    void (*data_abort)(void *ctx, const char *reply);

    /* auth: AUTH decoded the credentials of user. mechanism is "PLAIN"
     * or "LOGIN"; user and password are NUL-terminated, without control
     * bytes, and valid only during the call, so the hook copies what it
     * keeps. The session waits until the owner answers with
     * smtp_server_auth_done(), which may be called from inside this hook.
     * NULL leaves AUTH unimplemented (502). */
    void (*auth)(void *ctx, const char *mechanism, const char *user,
                 const char *password);

    /* auth_failed: an AUTH exchange ended before the credentials reached
     * the auth hook (the client cancelled it, or sent bad base64, a
     * malformed response or a foreign PLAIN authorization identity).
     * user is the user name decoded so far, or "" when none was; reason
     * is a short phrase for the log. May be NULL. */
    void (*auth_failed)(void *ctx, const char *mechanism, const char *user,
                        const char *reason);

    /* reset: the transaction that an accepted MAIL opened ended (RSET,
     * EHLO/HELO, QUIT, the end of DATA, a close, smtp_server_free());
     * forget sender and recipients. */
    void (*reset)(void *ctx);

    /* starttls: a valid STARTTLS; prepare the TLS session. Once the 220
     * that follows is sent, the owner runs the handshake on the raw
     * connection and then calls smtp_server_tls_started(). To refuse,
     * write a reply such as "454 4.7.0 TLS not available due to
     * temporary reason" and return -1. */
    int (*starttls)(void *ctx, char *reply);
};

/* Extensions that the EHLO reply can leave out, as bits of
 * smtp_server_options.disabled_extensions. Without SIZE the MAIL
 * parameter SIZE= gets 555 and without 8BITMIME so does BODY=8BITMIME,
 * because RFC 1870 and RFC 6152 allow them only when offered. The limit
 * max_message_size applies either way. BODY=7BIT needs 8BITMIME or
 * BINARYMIME. Without PIPELINING, commands sent ahead still get
 * their replies in order. Without SMTPUTF8 the MAIL parameter SMTPUTF8
 * gets 555 and a non-ASCII address or EHLO name is rejected. Without
 * CHUNKING the BDAT command gets 500 like an unknown one. BINARYMIME is
 * offered only with CHUNKING, because a binary body needs BDAT. Without
 * either of them BODY=BINARYMIME gets 555. Without DSN the parameters
 * RET=, ENVID=, NOTIFY= and ORCPT= get 555. Without AUTH the AUTH
 * command gets 502 and the MAIL parameter AUTH= gets 555. */
enum smtp_server_extension {
    SMTP_EXT_PIPELINING = 1u << 0,
    SMTP_EXT_SIZE = 1u << 1,
    SMTP_EXT_8BITMIME = 1u << 2,
    SMTP_EXT_SMTPUTF8 = 1u << 3,
    SMTP_EXT_CHUNKING = 1u << 4,
    SMTP_EXT_BINARYMIME = 1u << 5,
    SMTP_EXT_DSN = 1u << 6,
    SMTP_EXT_AUTH = 1u << 7, /* offered only under TLS or with
                              * auth_plaintext */
};

/* A limit of 0 means none, except max_line, where 0 means 512. */
struct smtp_server_options {
    const char *hostname;        /* for the greeting and EHLO */
    uint64_t max_message_size;   /* bytes, advertised with SIZE */
    size_t max_line;             /* command line limit, CRLF included */
    size_t max_text_line;        /* DATA and BDAT line limit in wire
                                  * form, CRLF included */
    size_t max_rcpts;            /* per transaction */
    unsigned max_errors;         /* bad commands before 421 and close */
    size_t max_hops;             /* Received: fields a message may have */
    unsigned max_junk_commands;  /* NOOP, RSET, VRFY, HELP, EHLO and
                                  * HELO per session before 421 and
                                  * close */
    unsigned disabled_extensions; /* smtp_server_extension bits; 0 offers
                                   * all */
    bool auth_plaintext;         /* offer AUTH on unencrypted sessions */
    bool starttls;               /* offer STARTTLS; needs hooks->starttls */
};

/* smtp_server_new creates a session; hooks and opts are borrowed and must
 * outlive it. Returns NULL when out of memory. */
struct smtp_server *smtp_server_new(const struct smtp_server_options *opts,
                                    const struct smtp_server_hooks *hooks,
                                    void *ctx);

/* smtp_server_free frees the session; NULL is accepted. A body being
 * received is aborted through data_abort(), and an open transaction ends
 * with reset(). */
void smtp_server_free(struct smtp_server *session);

/* smtp_server_greet queues the 220 greeting. */
void smtp_server_greet(struct smtp_server *session);

/* smtp_server_greet_reply queues reply (a full reply line without CRLF)
 * in place of the 220 greeting. A 421 closes the session. Any other code
 * than 2xx refuses service as RFC 5321 section 3.1 describes for 554:
 * the session replies 503 to every command but QUIT. */
void smtp_server_greet_reply(struct smtp_server *session, const char *reply);

/* smtp_server_defer_greeting makes the session hold input until
 * smtp_server_greet() or smtp_server_greet_reply() runs, for a caller
 * that sends the greeting late. Without it, input fed before the greeting
 * is parsed at once. */
void smtp_server_defer_greeting(struct smtp_server *session);

/* smtp_server_feed consumes received bytes; the caller's buffer may be
 * reused when it returns. */
void smtp_server_feed(struct smtp_server *session, const char *data,
                      size_t len);

/* smtp_server_output returns the queue of bytes to send; consume what was
 * sent with smtp_outq_consume(), then call smtp_server_resume(). */
struct smtp_outq *smtp_server_output(struct smtp_server *session);

/* smtp_server_resume parses input held back while output was piling up
 * or a commit was pending. */
void smtp_server_resume(struct smtp_server *session);

/* smtp_server_data_done answers a data_end(): reply is a full reply line
 * without CRLF, e.g. "250 2.0.0 Ok: queued as ID". It calls reset() and
 * parses input held meanwhile. Once the session is closing the reply is
 * not sent. */
void smtp_server_data_done(struct smtp_server *session, const char *reply);

/* smtp_server_refuse queues reply (a full reply line without CRLF) and
 * ends the session. reason is a static string for
 * smtp_server_close_reason(). It serves a refusal before or in place of
 * the greeting, such as a 421 for too many connections. */
void smtp_server_refuse(struct smtp_server *session, const char *reply,
                        const char *reason);

/* smtp_server_receiving_data is true while the session reads DATA or BDAT
 * data, which the caller may time out differently from commands. */
bool smtp_server_receiving_data(const struct smtp_server *session);

/* smtp_server_timeout queues "421 4.4.2 ... timeout" and ends the
 * session; a body being received is aborted. */
void smtp_server_timeout(struct smtp_server *session);

/* smtp_server_shutdown queues "421 4.3.2 ... shutting down" and ends the
 * session. */
void smtp_server_shutdown(struct smtp_server *session);

/* smtp_server_closing is true once the session has nothing more to read:
 * close the connection after the output queue is empty. */
bool smtp_server_closing(const struct smtp_server *session);

/* smtp_server_close_reason returns why the session closed itself ("quit",
 * "timeout", "too many errors", ...), or NULL while it is open. */
const char *smtp_server_close_reason(const struct smtp_server *session);

/* smtp_server_command_waits returns how many times the session has
 * started to wait for a new command line: after each complete command
 * line, valid or not, and after each DATA body or BDAT chunk. Partial
 * input does not change it, so a caller restarts its command timer when
 * the value changes and a client cannot keep the session open by sending
 * a line one byte at a time. */
uint64_t smtp_server_command_waits(const struct smtp_server *session);

/* smtp_server_waiting is true while a data_end() is unanswered. */
bool smtp_server_waiting(const struct smtp_server *session);

/* smtp_server_set_client records the peer for the Received: header and
 * logs: ip is the textual address. */
void smtp_server_set_client(struct smtp_server *session, const char *ip);

/* smtp_server_helo returns the EHLO/HELO name given ("" before it). */
const char *smtp_server_helo(const struct smtp_server *session);

/* smtp_server_used_esmtp is true when the client sent EHLO. */
bool smtp_server_used_esmtp(const struct smtp_server *session);

/* smtp_server_auth_done answers an auth() call. With success the session
 * is authenticated as the user given to auth(). reply is a full reply
 * line without CRLF, or NULL for "235 2.7.0 Authentication successful"
 * or "535 5.7.8 Error: authentication credentials invalid". A 421 reply
 * closes the session. Ignored when no auth() call is unanswered. */
void smtp_server_auth_done(struct smtp_server *session, bool success,
                           const char *reply);

/* smtp_server_auth_user returns the user that AUTH authenticated, or
 * NULL. */
const char *smtp_server_auth_user(const struct smtp_server *session);

/* smtp_server_starttls_pending is true from an accepted STARTTLS until
 * smtp_server_tls_started(); meanwhile all input is discarded. */
bool smtp_server_starttls_pending(const struct smtp_server *session);

/* smtp_server_tls_started marks the session encrypted after a TLS
 * handshake and resets it to its state after the greeting, as RFC 3207
 * section 4.2 requires. The EHLO name, the ESMTP flag, any open
 * transaction and any held input are forgotten, so the client must send
 * EHLO again. Call it after a STARTTLS handshake, and before the greeting
 * on an implicit TLS connection. Returns the number of plaintext bytes
 * discarded since STARTTLS. */
uint64_t smtp_server_tls_started(struct smtp_server *session);

/* smtp_server_encrypted is true once smtp_server_tls_started() ran. */
bool smtp_server_encrypted(const struct smtp_server *session);

#endif
