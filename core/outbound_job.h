/* One delivery job: the recipients of one message that share a domain
 * or address literal, and the attempt in flight for them. Private to the
 * outbound engine. */
#ifndef RINGRELAY_CORE_OUTBOUND_JOB_H
#define RINGRELAY_CORE_OUTBOUND_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "core/reactor.h"
#include "dns/resolver.h"
#include "proto/smtp_client.h"

struct outbound;
struct outbound_bounce;
struct queue_msg;

#define OUTBOUND_SEND_IOVS 16

enum outbound_job_state {
    OUTBOUND_JOB_WAITING,    /* in the ready list or waiting to retry */
    OUTBOUND_JOB_RESOLVING,  /* DNS request in flight */
    OUTBOUND_JOB_CONNECTING, /* TCP connect in flight */
    OUTBOUND_JOB_TALKING,    /* SMTP session running */
    OUTBOUND_JOB_CLOSING,    /* waiting for socket ops to end */
};

/* The kind of next hop a job delivers to. */
enum outbound_target {
    OUTBOUND_TARGET_DOMAIN,  /* a route, the smarthost or the MX hosts */
    OUTBOUND_TARGET_LITERAL, /* the smarthost, else the literal's IP */
    OUTBOUND_TARGET_INVALID, /* stored addresses that do not parse */
};

/* What to do once the connection is fully closed. */
enum outbound_after_close {
    OUTBOUND_NEXT_ADDRESS,   /* try the next MX address */
    OUTBOUND_FINISH,         /* results are recorded; retry or free */
};

struct outbound_job {
    struct outbound *outbound;
    struct outbound_job *prev;   /* list of all jobs */
    struct outbound_job *next;
    struct outbound_job *ready_next; /* ready list, when queued there */
    bool in_ready_list;
    struct queue_msg *msg;       /* one reference held by the job */
    enum outbound_target target;
    char domain[256];            /* a name in lower case, a literal as
                                  * stored, "" for INVALID */
    struct sockaddr_storage literal; /* a literal's IP, port 0 */
    size_t *rcpt_index;          /* indices into msg->rcpts */
    size_t rcpt_count;           /* recipients of this domain */
    const char **attempt_rcpts;  /* addresses still queued this attempt */
    unsigned *attempt_notify;    /* their NOTIFY= (smtp_dsn_notify bits) */
    const char **attempt_orcpt;  /* their ORCPT= ("" when none) */
    size_t *attempt_index;       /* their indices into msg->rcpts */
    size_t attempt_count;
    uint32_t attempt;            /* 1 for the first attempt */
    enum outbound_job_state state;
    enum outbound_after_close after_close;
    struct reactor_timer timer;  /* retry wait, or the current timeout */
    struct dns_request *dns;
    struct dns_mx_result *hops;  /* next hops of this attempt */
    uint16_t port;
    size_t host_cursor;          /* next host in hops to try */
    size_t addr_cursor;          /* next address of that host */
    char last_error[SMTP_CLIENT_TEXT_MAX]; /* reply used for deferral */
    int fd;
    struct reactor_op connect_op;
    struct reactor_op recv_op;
    struct reactor_op send_op;
    struct iovec send_iov[OUTBOUND_SEND_IOVS];
    struct smtp_client *client;
    struct smtp_client_message client_msg;
    bool results_recorded;
    bool attempt_deferred;       /* a recipient of this attempt got 4xx */
    char relay[320];             /* "host[ip]:port" for logs */
    struct outbound_bounce *bounce; /* report being collected, or NULL */
};

/* Engine functions the connection code calls (outbound.c). */
struct daemon *outbound_daemon(struct outbound *outbound);
bool outbound_record_result(struct outbound_job *job, size_t i, int code,
                            const char *text);
void outbound_record_all(struct outbound_job *job, int code,
                         const char *text);
void outbound_job_finished(struct outbound_job *job);

/* outbound_job_in_flight_sibling returns another job of job's message
 * whose attempt is in flight, or NULL. */
struct outbound_job *outbound_job_in_flight_sibling(
    const struct outbound_job *job);

#endif
