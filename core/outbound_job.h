/* One delivery job: the recipients of one message that share a next hop
 * (a destination, see outbound_dest.h), and the attempt in flight for
 * them. Private to the outbound engine. */
#ifndef RINGRELAY_CORE_OUTBOUND_JOB_H
#define RINGRELAY_CORE_OUTBOUND_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "core/reactor.h"
#include "dns/resolver.h"
#include "proto/smtp_client.h"

struct outbound;
struct outbound_bounce;
struct outbound_conn;
struct outbound_dest;
struct outbound_group;
struct queue_msg;
struct smtp_mailbox;

enum outbound_job_state {
    OUTBOUND_JOB_WAITING,    /* in the ready list or waiting to retry */
    OUTBOUND_JOB_RUNNING,    /* an attempt runs on a connection */
};

/* The kind of next hop a job delivers to. */
enum outbound_target {
    OUTBOUND_TARGET_DOMAIN,  /* a route, the smarthost or the MX hosts */
    OUTBOUND_TARGET_LITERAL, /* the smarthost, else the literal's IP */
    OUTBOUND_TARGET_INVALID, /* stored addresses that do not parse */
};

struct outbound_job {
    struct outbound *outbound;
    struct outbound_job *prev;   /* list of all jobs */
    struct outbound_job *next;
    struct outbound_job *ready_next; /* destination's ready list */
    bool in_ready_list;
    bool suspended;              /* parked by an open breaker */
    bool lookup_failed;          /* the group's MX lookup of the domain
                                  * failed temporarily: the next attempt
                                  * defers without looking up again */
    bool grouped;                /* dest is an MX set (outbound_group.h):
                                  * looked up again before each retry */
    struct outbound_dest *dest;  /* the next hop; one reference */
    struct outbound_conn *conn;  /* while an attempt runs */
    bool reuse_retried;          /* this attempt lost a reused connection
                                  * and moved to a new one */
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
    uint32_t *attempt_number;    /* each one's attempt, 1 for its first */
    size_t attempt_count;
    time_t *rcpt_due;            /* by index into msg->rcpts: when that
                                  * recipient may be tried again, 0 for
                                  * now */
    time_t round_deferred;       /* end of the first transaction that
                                  * deferred a recipient since the job
                                  * last armed its retry timer, or 0.
                                  * The transactions since that timer
                                  * form one round, which a breaker
                                  * suspension ends too. */
    uint32_t attempt;            /* transactions started by this job */
    enum outbound_job_state state;
    struct reactor_timer timer;  /* retry wait */
    struct dns_request *dns;
    struct dns_mx_result *hops;  /* next hops of this attempt */
    uint16_t port;
    size_t host_cursor;          /* next host in hops to try */
    size_t addr_cursor;          /* next address of that host */
    char last_error[SMTP_CLIENT_TEXT_MAX]; /* reply used for deferral */
    bool results_recorded;
    bool attempt_deferred;       /* a recipient of this attempt got 4xx */
    char relay[320];             /* "host[ip]:port" for logs */
    char tls[32];                /* TLS version of the connection, or ""
                                  * for none, for logs */
    struct outbound_bounce *bounce; /* report being collected, or NULL */
};

/* Engine functions the connection code calls (outbound.c). */
struct daemon *outbound_daemon(struct outbound *outbound);
bool outbound_record_result(struct outbound_job *job, size_t i, int code,
                            const char *text);
void outbound_record_all(struct outbound_job *job, int code,
                         const char *text);

/* outbound_attempt_drop takes entry i, whose result is recorded, out of
 * the attempt's recipients; the entries after it move down by one. */
void outbound_attempt_drop(struct outbound_job *job, size_t i);
void outbound_job_finished(struct outbound_job *job);

/* outbound_job_requeue ends an attempt that recorded no result and puts
 * the job back in its destination's ready list: no attempt is counted
 * and nothing is journaled. */
void outbound_job_requeue(struct outbound_job *job);

/* outbound_job_suspend parks a ready job for delay_ms without an
 * attempt, while its destination's breaker is open: no attempt is
 * counted, no deferral is journaled, and its recipients keep their
 * retry schedule on disk. reason is logged. */
void outbound_job_suspend(struct outbound_job *job, uint64_t delay_ms,
                          const char *reason);

/* outbound_wake_suspended makes every job that dest's breaker parked
 * ready again, once the breaker has closed. */
void outbound_wake_suspended(struct outbound *outbound,
                             const struct outbound_dest *dest);

/* outbound_job_start takes the job out of the ready state for an
 * attempt: it lists up to the destination's recipient limit of the
 * recipients that are due. Returns false when none is due, after the job
 * started waiting for the next one or was freed with nothing left. */
bool outbound_job_start(struct outbound_job *job);

/* outbound_job_list returns the head of the engine's jobs. */
struct outbound_job *outbound_job_list(struct outbound *outbound);

/* outbound_rcpt_mailbox parses a stored recipient of msg with the
 * server's parser. Returns NULL when it does not parse or has no
 * domain. */
const struct smtp_mailbox *outbound_rcpt_mailbox(
    const struct queue_msg *msg, const char *address,
    struct smtp_mailbox *mailbox);

/* outbound_make_jobs puts msg's recipients index[0..count) that are
 * still queued and not held into new jobs by destination, and starts or
 * schedules the jobs. group (may be NULL) renames the destinations of
 * domains that share an MX set. */
void outbound_make_jobs(struct outbound *outbound, struct queue_msg *msg,
                        const size_t *index, size_t count,
                        const struct outbound_group *group);

/* outbound_groups returns the head of the engine's groups waiting for
 * MX lookups. */
struct outbound_group **outbound_groups(struct outbound *outbound);

/* outbound_dest_list returns the head of the engine's destinations. */
struct outbound_dest **outbound_dest_list(struct outbound *outbound);

/* outbound_dest_index returns the engine's OUTBOUND_DEST_BUCKETS chains
 * of destinations by name hash. */
struct outbound_dest **outbound_dest_index(struct outbound *outbound);

/* outbound_slots_of returns the engine's cap on connections over all
 * destinations. */
struct outbound_slots *outbound_slots_of(struct outbound *outbound);
/* outbound_tls_client returns the engine's TLS client context, or NULL
 * when it could not be built. */
struct tls_context *outbound_tls_client(struct outbound *outbound);

/* outbound_stopping is true once outbound_stop() ran. */
bool outbound_stopping(const struct outbound *outbound);

/* outbound_job_in_flight_sibling returns another job of job's message
 * whose attempt is in flight, or NULL. */
struct outbound_job *outbound_job_in_flight_sibling(
    const struct outbound_job *job);

#endif
