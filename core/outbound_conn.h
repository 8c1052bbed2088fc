/* Outbound connections: the next-hop lookup, the connection to each MX
 * address in turn (or to an address literal's IP), and the SMTP client
 * session. A connection belongs to one destination and carries one job's
 * transaction at a time; between transactions it may wait idle for the
 * next message to the same destination. Private to the outbound engine. */
#ifndef RINGRELAY_CORE_OUTBOUND_CONN_H
#define RINGRELAY_CORE_OUTBOUND_CONN_H

#include <stdbool.h>
#include <sys/uio.h>

#include "core/outbound_job.h"
#include "core/reactor.h"
#include "core/tls_policy.h"
#include "proto/smtp_client.h"

struct config;
struct dns_request;
struct dns_tlsa_result;
struct outbound_dest;
struct outbound_job;
struct tls_session;

#define OUTBOUND_SEND_IOVS 16

enum outbound_conn_state {
    OUTBOUND_CONN_OPENING,   /* DNS lookup or TCP connect in flight */
    OUTBOUND_CONN_TALKING,   /* a transaction runs */
    OUTBOUND_CONN_IDLE,      /* waiting for the next message */
    OUTBOUND_CONN_QUITTING,  /* QUIT sent, no job */
    OUTBOUND_CONN_CLOSING,   /* waiting for socket ops to end */
};

/* What to do once the socket is fully closed. */
enum outbound_after_close {
    OUTBOUND_NEXT_ADDRESS,   /* try the job's next MX address */
    OUTBOUND_FINISH,         /* results are recorded; end the attempt */
    OUTBOUND_RECONNECT,      /* a reused connection was dead: the job
                              * starts again on a new connection */
    OUTBOUND_RELEASE,        /* no job: free the connection */
    OUTBOUND_REQUEUE,        /* the next hop refused one more session:
                              * the job waits for a working one */
};

struct outbound_conn {
    struct outbound_dest *dest;
    struct outbound_conn *prev;  /* the destination's connections */
    struct outbound_conn *next;
    struct outbound_job *job;    /* NULL when idle or quitting */
    enum outbound_conn_state state;
    enum outbound_after_close after_close;
    int fd;
    struct reactor_op connect_op;
    struct reactor_op recv_op;
    struct reactor_op send_op;
    struct iovec send_iov[OUTBOUND_SEND_IOVS];
    struct reactor_timer timer;  /* the current timeout */
    struct smtp_client *client;
    struct smtp_client_message client_msg;
    unsigned messages;           /* transactions started on the socket */
    bool reused;                 /* this transaction is not the first */
    bool got_reply;              /* bytes arrived in this transaction */
    bool tried;                  /* a connect was attempted */
    bool reached;                /* a session got past EHLO */
    char relay[320];             /* "host[ip]:port" for logs */
    struct outbound_conn *idle_prev; /* idle list of outbound_slots.h */
    struct outbound_conn *idle_next;
    bool idle_listed;            /* in that list */
    bool reclaimed;              /* quitting to free a slot for another
                                  * destination */

    /* Outbound TLS. Over TLS the client's output is encrypted into
     * tls_buf, body bytes straight from the queue mapping, and received
     * bytes are decrypted before they reach the client. */
    /* The job's configured TLS policy and AUTH user name and password
     * (borrowed from the configuration). Routes of one destination may
     * differ in them, so an idle connection takes only jobs that match. */
    enum tls_policy profile_policy;
    const char *profile_user;
    const char *profile_password;
    enum tls_policy tls_policy;  /* what this host gets (dane resolved) */
    struct tls_session *tls;     /* from the 220 to STARTTLS on */
    char tls_host[256];          /* SNI and the name that verify checks */
    char tls_version[32];        /* "" without TLS */
    unsigned char *tls_buf;      /* ciphertext to send */
    size_t tls_buf_len;
    size_t tls_buf_off;          /* bytes of tls_buf already sent */
    bool send_tls;               /* the send in flight is from tls_buf */
    bool plain_retry;            /* the next connect skips STARTTLS: the
                                  * handshake failed under "may" */
    struct dns_tlsa_result *tlsa; /* dane: the records of tlsa_host */
    size_t tlsa_host;            /* index + 1 in the job's hops, 0: none */
    struct dns_request *tlsa_dns;
};

/* outbound_conn_open starts job's attempt on a new connection of dest;
 * the attempt ends with outbound_job_finished(), also when out of
 * memory. */
void outbound_conn_open(struct outbound_dest *dest, struct outbound_job *job);

/* outbound_conn_reuse starts job's transaction on the idle conn. */
void outbound_conn_reuse(struct outbound_conn *conn,
                         struct outbound_job *job);

/* The TLS policy and AUTH credentials that apply to a next hop, borrowed
 * from the configuration. */
struct outbound_profile {
    enum tls_policy policy;
    const char *user;      /* NULL: no AUTH */
    const char *password;
};

/* outbound_profile fills profile for a recipient domain (lower case) or
 * literal of the given target kind: its route's tls and credentials, or
 * the smarthost's credentials and outbound_tls. */
void outbound_profile(const struct config *config,
                      enum outbound_target target, const char *domain,
                      struct outbound_profile *profile);

/* outbound_profile_equal is true when a and b may share a transaction
 * and a connection. Credentials compare by pointer, because each comes
 * from one configuration entry. */
bool outbound_profile_equal(const struct outbound_profile *a,
                            const struct outbound_profile *b);

/* outbound_conn_fits is true when job has the TLS policy and AUTH
 * credentials that the connection was opened with, so it may reuse it. */
bool outbound_conn_fits(const struct outbound_conn *conn,
                        const struct outbound_job *job);

/* outbound_conn_quit ends an idle connection with QUIT. */
void outbound_conn_quit(struct outbound_conn *conn);

/* outbound_conn_free closes the socket and frees conn without callbacks,
 * for teardown after the reactor stopped. */
void outbound_conn_free(struct outbound_conn *conn);

#endif
