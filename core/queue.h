/* Queue store: messages in memory-mapped, preallocated segment files.
 *
 * A message record is appended to a segment as header, envelope and body.
 * The body is stored in wire form (CRLF line endings, dot-stuffed, without
 * the final ".CRLF"), so relaying sends the stored bytes unchanged, straight
 * from the mapping. A BINARYMIME message (QUEUE_ENV_BINARYMIME) stores its
 * raw octets instead, which go out with BDAT. Per-recipient results go to
 * an append-only journal.
 *
 * Durability: queue_writer_commit() reports success only after the record
 * is on stable storage. Commits that arrive in one reactor turn share one
 * fdatasync per touched file (group commit). Durability batch also waits
 * up to batch_wait_us for commits of later turns to join.
 *
 * Return convention: 0 or -1 with errno set, unless stated otherwise. */
#ifndef RINGRELAY_CORE_QUEUE_H
#define RINGRELAY_CORE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct reactor;
struct queue;
struct queue_writer;

/* Queue IDs are 16 upper-case hex digits. */
#define QUEUE_ID_LEN 16

enum queue_durability {
    QUEUE_DURABILITY_FSYNC, /* sync before every acknowledgement */
    QUEUE_DURABILITY_BATCH, /* sync, waiting briefly to gather more */
    QUEUE_DURABILITY_NONE,  /* never sync: benchmarks and sinks only */
};

enum queue_rcpt_state {
    QUEUE_RCPT_QUEUED = 0,   /* not yet delivered */
    QUEUE_RCPT_DELIVERED = 1,
    QUEUE_RCPT_BOUNCED = 2,
    QUEUE_RCPT_DELETED = 4,  /* removed by an operator; final, no DSN */
};

/* Envelope flags, stored with the message. QUEUE_ENV_DSN means the
 * envelope carries DSN fields. A record without it, such as every record
 * written before DSN support, reads back with none. */
#define QUEUE_ENV_8BITMIME 0x1u
#define QUEUE_ENV_SMTPUTF8 0x2u
/* BODY=BINARYMIME (RFC 3030): the body is the raw octets received with
 * BDAT, after the Received: header, and goes out only with BDAT. */
#define QUEUE_ENV_BINARYMIME 0x4u
#define QUEUE_ENV_DSN 0x8u
/* The client authenticated with SMTP AUTH; the envelope ends with the
 * user name. A record without it, such as every record written before
 * AUTH support, reads back with auth_user "". */
#define QUEUE_ENV_AUTH 0x10u

/* RET= of the message (RFC 3461), as stored. */
enum queue_dsn_ret {
    QUEUE_DSN_RET_UNSET = 0,
    QUEUE_DSN_RET_FULL = 1,
    QUEUE_DSN_RET_HDRS = 2,
};

/* NOTIFY= bits of one recipient (RFC 3461) as stored, 0 when absent. */
#define QUEUE_DSN_NOTIFY_SUCCESS 0x1u
#define QUEUE_DSN_NOTIFY_FAILURE 0x2u
#define QUEUE_DSN_NOTIFY_DELAY 0x4u
#define QUEUE_DSN_NOTIFY_NEVER 0x8u

/* The DSN request of one recipient. */
struct queue_dsn_rcpt {
    unsigned notify;           /* QUEUE_DSN_NOTIFY_* bits */
    const char *orcpt;         /* "addr-type;address" decoded, "" if none */
};

/* With durability batch, a batch starts without waiting out batch_wait_us
 * once this many commits are pending: the fsync of a larger batch has
 * more dirty pages to write, so waiting longer mostly adds latency.
 * NOTE: 256 is an estimate, not measured; 100 connections never reach it. */
#define QUEUE_BATCH_MAX_COMMITS 256

struct queue_options {
    const char *dir;               /* created when missing */
    enum queue_durability durability;
    uint32_t batch_wait_us;        /* durability batch: how long the first
                                    * pending commit waits for others
                                    * before the syncs start, microseconds;
                                    * 0 starts them at the end of the turn
                                    * like fsync */
    uint64_t segment_size;         /* bytes; 0 picks the default */
    uint64_t max_size;             /* bytes of records the queue holds,
                                    * queued and being written; 0 for no
                                    * limit */
    uint64_t min_free;             /* bytes that must stay free on the
                                    * queue's file system; 0 for none */
    bool read_only;                /* inspect only: no lock, no writes,
                                    * no ready() calls; reactor may be
                                    * NULL */
};

/* queue_envelope: what a session knows when DATA starts. Strings are
 * addresses without angle brackets; "" is the null reverse path. */
struct queue_envelope {
    const char *sender;
    const char *const *rcpts;
    size_t rcpt_count;
    uint32_t flags;            /* QUEUE_ENV_* */

    /* Read only with QUEUE_ENV_DSN set, and then dsn_rcpts has
     * rcpt_count entries. */
    enum queue_dsn_ret dsn_ret;
    const char *envid;         /* decoded ENVID, "" or NULL if none */
    const struct queue_dsn_rcpt *dsn_rcpts;
    const char *auth_user;     /* read only with QUEUE_ENV_AUTH set */
};

struct queue_rcpt {
    const char *address;
    unsigned dsn_notify;         /* QUEUE_DSN_NOTIFY_* bits, 0 if none */
    const char *orcpt;           /* "addr-type;address", "" if none */
    enum queue_rcpt_state state;
    uint32_t attempts;           /* delivery attempts so far */
    time_t next_attempt;         /* wall clock, seconds; 0 means now */
    bool held;                   /* QUEUED but kept from delivery by an
                                  * operator until released */
    const char *last_error;      /* last failed reply, in memory only;
                                  * NULL when none */
};

/* queue_msg: a stored message as the outbound engine sees it. Pointers
 * point into the segment mapping or into the message's own memory and stay
 * valid while the caller holds a reference. */
struct queue_msg {
    char id[QUEUE_ID_LEN + 1];
    time_t arrival;              /* wall clock, seconds */
    uint32_t flags;              /* QUEUE_ENV_* */
    const char *sender;
    enum queue_dsn_ret dsn_ret;
    const char *envid;           /* decoded ENVID, "" if none */
    const char *auth_user;       /* SMTP AUTH user, "" if none */
    struct queue_rcpt *rcpts;
    size_t rcpt_count;
    const char *body;            /* wire form, in the mapping; raw
                                  * octets with QUEUE_ENV_BINARYMIME */
    size_t body_len;
};

/* queue_ready_fn is called once for every message that becomes ready for
 * delivery: after its commit, and for each recovered message with at least
 * one QUEUED recipient during queue_open(). The queue holds a reference
 * for the duration of the call only; take one with queue_msg_ref() to keep
 * the message. */
typedef void (*queue_ready_fn)(void *arg, struct queue_msg *msg);

/* queue_commit_fn reports the end of a commit: status 0 when the message
 * is durable (and then id is its queue ID), or a negative errno. */
typedef void (*queue_commit_fn)(void *arg, int status, const char *id);

/* queue_open opens or creates the queue directory, scans its segments and
 * journal, and calls ready() for each message still to deliver, held ones
 * included. Logs what was recovered and what was dropped. Fails with errno
 * EWOULDBLOCK when another process holds the directory's lock.
 *
 * With opts->read_only the directory must exist (ENOENT otherwise). The
 * open takes no lock, so it works beside a running daemon. It opens the
 * files O_RDONLY, cuts no torn tail, removes no segment or leftover, and
 * compacts and syncs nothing. It never calls ready(), so ready and
 * reactor may be NULL. Everything that would write fails with EROFS. The
 * queue shows the state on disk at the open, without a daemon's later
 * changes. */
int queue_open(struct queue **out, struct reactor *reactor,
               const struct queue_options *opts, queue_ready_fn ready,
               void *ready_arg);

/* queue_close syncs and closes; NULL is accepted. Writers must be gone;
 * message references still held become invalid. Call it after
 * reactor_shutdown(), which ends the fsyncs in flight. A commit whose
 * fsync was cancelled gets done() with -ECANCELED, and the next
 * queue_open() drops its record. Commits still waiting for their sync
 * never get done(), but close synced their records, so the next
 * queue_open() recovers them. */
void queue_close(struct queue *queue);

/* queue_writer_begin reserves space for a new record and assigns its
 * queue ID; size_hint is the expected body size in bytes (0 if unknown).
 * The envelope is copied. Fails with ENOSPC when the disk has no room and
 * with EDQUOT when queue_max_size would be passed. */
int queue_writer_begin(struct queue *queue, struct queue_writer **out,
                       const struct queue_envelope *env, uint64_t size_hint);

/* queue_writer_id returns the writer's queue ID (QUEUE_ID_LEN digits). */
const char *queue_writer_id(const struct queue_writer *writer);

/* queue_failed_writer_id returns the queue ID that the last failed
 * queue_writer_begin() issued and logged, or NULL when it failed before
 * issuing one, so the caller's log line names the same message. */
const char *queue_failed_writer_id(const struct queue *queue);

/* queue_writer_append copies body bytes (wire form, or raw octets for
 * QUEUE_ENV_BINARYMIME) into the mapping. Fails with ENOSPC when the
 * disk or segment space cannot grow, and with EDQUOT at queue_max_size. */
int queue_writer_append(struct queue_writer *writer, const void *data,
                        size_t len);

/* queue_writer_prepare returns space for at least min_len more body bytes
 * at the end of the record, growing or moving the record when needed, and
 * stores the space available (>= min_len) in *len. The pointer is valid
 * until the next call on this writer, so a recv can write the body
 * straight into the mapping. Returns NULL with errno set (ENOSPC when the
 * disk or segment space cannot grow, EDQUOT at queue_max_size). */
void *queue_writer_prepare(struct queue_writer *writer, size_t min_len,
                           size_t *len);

/* queue_writer_advance adds len bytes, written at the pointer from
 * queue_writer_prepare(), to the body. Fails with EINVAL when len exceeds
 * the space prepared. */
int queue_writer_advance(struct queue_writer *writer, size_t len);

/* queue_writer_commit seals the record and frees the writer. done() runs
 * later, from the reactor, once the record is durable or has failed; it
 * is never called from inside queue_writer_commit(). On failure (-1, only
 * when memory runs out) the record is dropped, the writer is freed as
 * well and done() is never called. */
int queue_writer_commit(struct queue_writer *writer, queue_commit_fn done,
                        void *arg);

/* queue_writer_abort drops the record and frees the writer; NULL is
 * accepted. */
void queue_writer_abort(struct queue_writer *writer);

void queue_msg_ref(struct queue_msg *msg);

/* queue_msg_busy marks msg busy (true) while an attempt sends msg->body
 * from the mapping, and not busy (false) once it ends. Calls are counted,
 * so each true needs one false. The queue never moves the record of a
 * busy message to another segment, because that would change msg->body
 * under the sender. */
void queue_msg_busy(struct queue_msg *msg, bool busy);

/* queue_msg_in_flight returns true while a delivery attempt marked msg
 * busy with queue_msg_busy(). */
bool queue_msg_in_flight(const struct queue_msg *msg);

/* queue_msg_unref drops a reference; the message is freed when nothing
 * holds it and every recipient is final. */
void queue_msg_unref(struct queue *queue, struct queue_msg *msg);

/* queue_mark records a final state, QUEUE_RCPT_DELIVERED or
 * QUEUE_RCPT_BOUNCED, for one QUEUED recipient in the journal, and ends
 * an operator's hold on it, because the attempt did happen. Fails with
 * ECANCELED when an operator deleted the recipient meanwhile (nothing is
 * written and the recipient stays deleted), with EROFS on a read-only
 * queue and with EINVAL for any other state. When only the journal write
 * fails (for example ENOSPC), the state still changes in memory, so the
 * recipient is not tried again before a restart, and -1 is returned with
 * errno from the write. The journal is synced at
 * the end of the reactor turn, or with durability batch up to
 * QUEUE_JOURNAL_SYNC_INTERVAL_US (100 ms) later, and by
 * queue_sync_now(). */
int queue_mark(struct queue *queue, struct queue_msg *msg, size_t rcpt,
               enum queue_rcpt_state state);

/* queue_defer records in the journal that recipient rcpt, still QUEUED,
 * failed its attempt number attempts (at least 1) and waits until
 * next_attempt (wall clock, seconds), and stores both in msg->rcpts[rcpt].
 * A held recipient stays held. Counts above 65535 are stored as 65535.
 * Fails like queue_mark(), and the journal is synced like after it. */
int queue_defer(struct queue *queue, struct queue_msg *msg, size_t rcpt,
                uint32_t attempts, time_t next_attempt);

/* queue_stats: counts for metrics and tests. */
struct queue_stats {
    size_t messages;           /* in memory, QUEUED recipients or held */
    size_t segments;           /* segment files mapped */
    size_t writers;            /* records being written */
    size_t recovered_messages; /* found by queue_open() */
    size_t recovered_dropped;  /* records queue_open() dropped */
    uint64_t space_used;       /* bytes counted against max_size */

    /* Group commit since queue_open(). fsyncs counts every fsync and
     * fdatasync call of segments, journal and directory, the journal syncs
     * of deliveries included, so commits / fsyncs is messages per sync. */
    uint64_t commits;          /* records made durable and acknowledged */
    uint64_t batches;          /* batches with at least one commit */
    uint64_t fsyncs;
};

/* queue_log_sync_stats logs the group-commit counters as
 * event=queue_sync_stats, from which a benchmark computes messages per
 * fsync and per batch. The daemon calls it at a stop after a complete
 * start only. */
void queue_log_sync_stats(const struct queue *queue);

/* queue_sync_pending returns true while fsyncs are in flight or the
 * group-commit hook waits for the end of the turn, so a stop can wait
 * for them. */
bool queue_sync_pending(const struct queue *queue);

/* queue_space_shortage returns NULL when the queue may take a new
 * message of about size_hint bytes (0 when unknown), or the name of the
 * limit reached. "queue_max_size" means max_size has no room for the
 * writer's reservation. "queue_min_free" means the file system has less
 * than min_free bytes free, or the message needs a new segment and less
 * than its size plus min_free is free. Without size_hint, a message
 * needs a new segment when the active one has less than 256 KiB room.
 * The free space is read with statvfs at most once a second. */
const char *queue_space_shortage(struct queue *queue, uint64_t size_hint);

/* queue_get_stats fills stats. */
void queue_get_stats(const struct queue *queue, struct queue_stats *stats);

/* queue_sync_now flushes the journal and segments synchronously; used at
 * shutdown. */
int queue_sync_now(struct queue *queue);

#endif
