/* One inbound SMTP connection: the socket, its protocol session and the
 * queue writer of the message being received. */
#ifndef RINGRELAY_CORE_INBOUND_SESSION_H
#define RINGRELAY_CORE_INBOUND_SESSION_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "core/reactor.h"
#include "proto/smtp_outq.h"

struct auth_check;
struct daemon;
struct inbound;
struct inbound_client;
struct queue_writer;
struct smtp_server;
struct smtp_server_options;
struct tls_session;

#define INBOUND_SEND_IOVS 16

/* The DSN request given with one RCPT. */
struct inbound_rcpt_dsn {
    unsigned notify;              /* QUEUE_DSN_NOTIFY_* bits */
    char *orcpt;                  /* "addr-type;address", NULL if none */
};

struct inbound_session {
    struct inbound *inbound;
    struct inbound_session *prev; /* list of open sessions */
    struct inbound_session *next;
    uint64_t id;                  /* for "session=N" in logs */
    int fd;                       /* -1 once closed */
    struct smtp_server *smtp;
    struct reactor_op recv_op;
    struct reactor_op send_op;
    struct reactor_timer timer;   /* the greeting delay, then the command
                                   * or data timeout, or the delay of a
                                   * failed AUTH reply; the only timer */
    struct iovec send_iov[INBOUND_SEND_IOVS]; /* borrowed by send_op */
    bool closing;                 /* no more input is read */
    bool peer_eof;                /* the client half-closed: answer what
                                   * it sent, then close */
    bool stop_pending;            /* say 421 once the message being
                                   * received is answered */
    bool commit_pending;          /* a queue commit will call back */
    struct sockaddr_storage peer;
    char client_ip[INET6_ADDRSTRLEN];
    bool relay_client;            /* peer is in relay_networks */
    struct inbound_client *client; /* counted toward the limits; NULL
                                    * for a refused session */
    bool greeting_pending;        /* in the greeting delay */
    bool refused;                 /* refused at connect: its reject line
                                   * replaces the disconnect line */

    /* SMTP AUTH. */
    struct auth_check *auth_check; /* the password check in the worker */
    unsigned auth_failures;       /* failed attempts in this session */
    bool auth_delay;              /* the timer delays a failure reply */
    const char *auth_mechanism;   /* "PLAIN" or "LOGIN" of the attempt */
    char auth_user[256];          /* user name of the attempt, for logs */
    /* TLS (inbound_tls.c). */
    struct tls_session *tls;      /* NULL while the connection is
                                   * plaintext */
    unsigned tls_mode;            /* enum inbound_tls_mode */
    struct smtp_outq tls_out;     /* ciphertext waiting to be sent */
    struct smtp_outq *send_queue; /* the queue send_op sends from */
    const char *tls_end_reason;   /* static text when TLS ended the
                                   * connection, for the disconnect line */
    bool tls_failure_logged;      /* event=tls-failed was written */

    /* The open transaction. */
    char *sender;
    char **rcpts;
    struct inbound_rcpt_dsn *rcpt_dsn; /* one per rcpts entry */
    size_t rcpt_count;
    size_t rcpt_capacity;
    uint32_t env_flags;           /* QUEUE_ENV_* */
    unsigned dsn_ret;             /* enum queue_dsn_ret from RET= */
    char *envid;                  /* decoded ENVID=, NULL when absent */
    uint64_t size_hint;           /* SIZE= from MAIL, bytes */
    struct queue_writer *writer;
    uint64_t body_bytes;
    uint64_t data_started_ms;
};

/* inbound_session_start takes a connected socket and greets the client,
 * after a TLS handshake when implicit_tls is set; on failure it closes
 * fd. */
void inbound_session_start(struct inbound *inbound, int fd,
                           bool implicit_tls);

/* inbound_session_answered restarts the command timer and sends the
 * queued replies after a reply that came from outside the reactor's
 * input path (an AUTH result), then frees the session when it is done.
 * Nothing may touch the session after the call. */
void inbound_session_answered(struct inbound_session *session);

/* inbound_session_shutdown says 421 and closes once the reply is sent. */
void inbound_session_shutdown(struct inbound_session *session);

/* inbound_session_free releases everything at once, for teardown after
 * the reactor stopped. */
void inbound_session_free(struct inbound_session *session);

/* inbound_admission: whether a new session fits the connection
 * limits. */
enum inbound_admission {
    INBOUND_ADMITTED,
    INBOUND_REFUSED_TOTAL,        /* max_connections reached */
    INBOUND_REFUSED_PER_IP,       /* max_connections_per_ip reached */
    INBOUND_REFUSED_MEMORY,       /* no memory to count the client */
};

/* Shared state kept by inbound.c. inbound_admit counts a session whose
 * peer is known toward the connection limits, and inbound_detach removes
 * it from the counts. */
struct daemon *inbound_daemon(struct inbound *inbound);
const struct smtp_server_options *inbound_smtp_options(struct inbound *inbound);
uint64_t inbound_attach(struct inbound *inbound,
                        struct inbound_session *session);
enum inbound_admission inbound_admit(struct inbound *inbound,
                                     struct inbound_session *session);
void inbound_detach(struct inbound *inbound, struct inbound_session *session);

#endif
