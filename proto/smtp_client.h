/* SMTP client session: the protocol state of one outbound transaction.
 *
 * It does no I/O. The caller feeds the server's bytes with
 * smtp_client_feed() and sends what the session queued in its output
 * queue. The body goes out by reference from the caller's memory (the
 * queue mapping), never copied. When the server offers PIPELINING, MAIL,
 * every RCPT and DATA are sent in one batch and the replies are matched in
 * order (RFC 2920).
 *
 * A binary message (RFC 3030 BINARYMIME) goes out with MAIL ...
 * BODY=BINARYMIME and BDAT chunks of at most SMTP_CLIENT_CHUNK_MAX bytes
 * in place of DATA, pipelined with MAIL and RCPT when the server offers
 * PIPELINING. A server that does not offer both CHUNKING and BINARYMIME
 * cannot take it: every recipient gets 554 5.6.3 before MAIL is sent.
 *
 * Results: every recipient ends with the reply that decided it: its RCPT
 * reply when that was not 2xx, otherwise the reply to the end of data
 * (or to BDAT LAST), or the reply that ended the session early
 * (greeting, EHLO, MAIL, DATA, a failed BDAT chunk). */
#ifndef RINGRELAY_PROTO_SMTP_CLIENT_H
#define RINGRELAY_PROTO_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/smtp_dsn.h"
#include "proto/smtp_outq.h"

struct smtp_client;

#define SMTP_CLIENT_TEXT_MAX 512

/* Bytes of body per BDAT chunk. */
#define SMTP_CLIENT_CHUNK_MAX (1024u * 1024u)

/* smtp_client_message: borrowed by the session for its whole life. */
struct smtp_client_message {
    const char *sender;           /* "" for the null path */
    const char *const *rcpts;     /* mailboxes without angle brackets */
    size_t rcpt_count;
    const char *body;             /* wire form, without the final ".CRLF";
                                   * raw octets when binary is set */
    size_t body_len;
    bool eight_bit;               /* send BODY=8BITMIME when offered */
    bool smtputf8;                /* needs a peer that offers SMTPUTF8 */
    bool binary;                  /* BODY=BINARYMIME: sent with BDAT only */

    /* The DSN request (RFC 3461), sent only to a peer that offers DSN:
     * RET= and ENVID= on MAIL, NOTIFY= and ORCPT= on each RCPT. ENVID and
     * the ORCPT addresses are given decoded and sent as xtext. */
    enum smtp_dsn_ret dsn_ret;
    const char *envid;            /* NULL or "" when none */
    const unsigned *notify;       /* smtp_dsn_notify bits per recipient
                                   * (0: none), or NULL */
    const char *const *orcpt;     /* "addr-type;address" per recipient
                                   * (NULL or "": none), or NULL */
};

enum smtp_client_state {
    SMTP_CLIENT_RUNNING, /* waiting for the server */
    /* Every recipient has its result. QUIT is queued, or will be once
     * the replies still due to a pipelined batch arrive. No QUIT is sent
     * after a 421 or smtp_client_fail(). */
    SMTP_CLIENT_DONE,
};

struct smtp_client_result {
    int code;                         /* 0 until decided */
    char text[SMTP_CLIENT_TEXT_MAX];  /* the reply, one line, no CRLF */
};

/* smtp_client_new creates a session that will send EHLO helo_name after
 * the greeting (helo_name is copied). The sender and each recipient are
 * checked with smtp_mailbox_split (UTF-8 only when smtputf8 is set) and
 * sent as "<address>". A sender that does not parse decides every
 * recipient with 553, and a recipient that does not parse gets 553
 * alone. Neither is sent. Returns NULL when out of memory. */
struct smtp_client *smtp_client_new(const char *helo_name,
                                    const struct smtp_client_message *msg);

void smtp_client_free(struct smtp_client *client);

/* smtp_client_feed consumes bytes from the server; the caller's buffer
 * may be reused when it returns. */
void smtp_client_feed(struct smtp_client *client, const char *data,
                      size_t len);

/* smtp_client_output returns the queue of bytes to send. */
struct smtp_outq *smtp_client_output(struct smtp_client *client);

enum smtp_client_state smtp_client_state(const struct smtp_client *client);

/* smtp_client_fail ends the session after a network error or timeout:
 * every undecided recipient gets code (4xx for a retry) and text, and
 * later input is ignored. text is stored as given when it starts with the
 * code ("451 4.4.2 Connection lost"), else as "code text". */
void smtp_client_fail(struct smtp_client *client, int code,
                      const char *text);

/* smtp_client_end_unanswered is true when smtp_client_fail() ended the
 * session after the end of data (the final dot, or BDAT LAST) was queued
 * and before its reply came. The server may then have accepted the
 * message, so sending it to another host could deliver it twice
 * (RFC 5321 section 6.1). */
bool smtp_client_end_unanswered(const struct smtp_client *client);

/* smtp_client_result returns recipient i's result (code 0: undecided),
 * or NULL when i is out of range. */
const struct smtp_client_result *
smtp_client_result(const struct smtp_client *client, size_t i);

/* smtp_client_quit_answered is true once the server answered QUIT, or
 * once it sent 421, because such a server closes the connection and gets
 * no QUIT. */
bool smtp_client_quit_answered(const struct smtp_client *client);

/* Connection reuse. smtp_client_keep_open makes the session stop after
 * the transaction without QUIT. Once smtp_client_idle() is true the
 * caller may start the next message on the same connection with
 * smtp_client_next(), or end it with smtp_client_quit(). */
void smtp_client_keep_open(struct smtp_client *client);

/* smtp_client_idle is true when the session kept open has decided every
 * recipient, has no reply due and can carry another transaction: not
 * after 421, an invalid reply, a failed RSET or smtp_client_fail(). */
bool smtp_client_idle(const struct smtp_client *client);

/* smtp_client_next creates the session of the next message on prev's
 * connection: no greeting or EHLO, the extensions prev learned, and RSET
 * first when prev's transaction may still be open (a rejected DATA, or
 * every RCPT rejected without PIPELINING). With PIPELINING, RSET, MAIL,
 * RCPT and DATA go in one batch. The new session keeps the connection
 * open too. prev must be idle and may be freed afterwards. Returns NULL
 * when prev is not idle or when out of memory. */
struct smtp_client *smtp_client_next(const struct smtp_client *prev,
                                     const struct smtp_client_message *msg);

/* smtp_client_quit queues QUIT unless it is queued or the input closed. */
void smtp_client_quit(struct smtp_client *client);

/* smtp_client_greeted is true once EHLO or HELO got a 2xx reply. */
bool smtp_client_greeted(const struct smtp_client *client);

/* The reply the session waits for, to pick its timeout (RFC 5321
 * section 4.5.3.2 gives each its own). */
enum smtp_client_wait {
    SMTP_CLIENT_WAIT_NONE,     /* no reply due */
    SMTP_CLIENT_WAIT_GREETING, /* the 220 */
    SMTP_CLIENT_WAIT_COMMAND,  /* EHLO, HELO, RSET, MAIL, RCPT, QUIT */
    SMTP_CLIENT_WAIT_DATA,     /* DATA's 354, or a BDAT chunk's reply */
    SMTP_CLIENT_WAIT_FINAL,    /* the reply to the end of data */
};

enum smtp_client_wait smtp_client_waiting(const struct smtp_client *client);

/* STARTTLS (RFC 3207). The session does no TLS itself: after the 220 to
 * STARTTLS it stops reading (smtp_client_tls_ready() turns true and any
 * bytes fed after the 220 are dropped), the owner runs the handshake,
 * then calls smtp_client_tls_started() and from then on feeds decrypted
 * bytes and encrypts the output. Nothing is pipelined behind STARTTLS. */
enum smtp_client_tls {
    SMTP_CLIENT_TLS_OFF,     /* never send STARTTLS */
    SMTP_CLIENT_TLS_TRY,     /* STARTTLS when offered, else plaintext */
    SMTP_CLIENT_TLS_REQUIRE, /* without STARTTLS every recipient gets
                              * 451 4.7.4 and the session ends */
};

/* smtp_client_set_tls sets the mode; call it before the greeting. The
 * default is SMTP_CLIENT_TLS_OFF. */
void smtp_client_set_tls(struct smtp_client *client,
                         enum smtp_client_tls mode);

/* smtp_client_tls_ready is true once the server answered 220 to
 * STARTTLS and the handshake may start. */
bool smtp_client_tls_ready(const struct smtp_client *client);

/* smtp_client_tls_started records the finished handshake and queues EHLO
 * again: the extensions from before TLS are forgotten. */
void smtp_client_tls_started(struct smtp_client *client);

/* smtp_client_tls_active is true once smtp_client_tls_started() ran on
 * this connection, this session or the one it followed. */
bool smtp_client_tls_active(const struct smtp_client *client);

/* smtp_client_set_auth makes the session send AUTH PLAIN with user and
 * password (copied; each at most 255 bytes) after EHLO inside TLS. They
 * are never sent without TLS: a session that has no TLS active after
 * EHLO, or whose server offers no AUTH, decides every recipient with
 * 451 4.7.x. A failed AUTH does the same, the server's reply included.
 * Call it before the greeting. Returns 0, or -1 when a value is too long
 * or out of memory. */
int smtp_client_set_auth(struct smtp_client *client, const char *user,
                         const char *password);

#endif
