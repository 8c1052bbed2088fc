/* Queue store internals shared by queue.c, queue_writer.c and
 * queue_recover.c. Nothing outside the queue store includes this. */
#ifndef RINGRELAY_CORE_QUEUE_INTERNAL_H
#define RINGRELAY_CORE_QUEUE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/queue.h"
#include "core/queue_journal.h"
#include "core/queue_record.h"
#include "core/queue_segment.h"
#include "core/reactor.h"

#define QUEUE_DEFAULT_SEGMENT_SIZE (64u * 1024 * 1024)

/* Minimum segment size in bytes: room for several minimum reservations. */
#define QUEUE_MIN_SEGMENT_SIZE (256u * 1024)

/* Body space reserved for a writer when the size hint is smaller. Small
 * reservations keep concurrent messages on few pages: with 64 KiB each,
 * every message dirtied pages of its own and fdatasync batches took about
 * 50 ms; with 4 KiB, 500 blast connections ran 4x faster (bench/RESULTS.md).
 * A larger body moves to a region twice the size. */
#define QUEUE_MIN_BODY_RESERVE (4u * 1024)

/* With durability batch, a journal entry waits for its sync until this
 * interval, in microseconds, has passed since the first entry not yet
 * synced, so batches of new messages sync the journal at most once per
 * interval. queue_sync_now() and compaction sync it as well. Journal
 * entries gate no 250 reply, so only the segments need a sync in every
 * batch. The trade: a power loss, not a process crash, may undo the
 * journal entries of the last interval, so those deliveries are repeated
 * and those operator holds and deletes are lost. After a SIGKILL the page
 * cache still holds the entries, so nothing is lost. 100 ms equals the
 * maximum batch_wait. At about 300 batches/s it adds about 10 journal
 * syncs a second, an estimate from the batch rate in bench/RESULTS.md. */
#define QUEUE_JOURNAL_SYNC_INTERVAL_US 100000u
/* Interval of the upkeep timer, in milliseconds. Every batch of commits
 * also runs moves and compaction; the timer covers a queue that takes no
 * new mail. A sparse segment is then moved at most this long after its
 * QUEUE_MOVE_MIN_AGE_MS. */
#define QUEUE_UPKEEP_INTERVAL_MS 10000u

/* queue_item: one stored message in memory. The recipient array and the
 * address strings follow the struct in the same allocation. */
struct queue_item {
    struct queue_msg msg;         /* first: callers hold &item->msg */
    struct queue_item *prev;      /* queue->items, a doubly linked list */
    struct queue_item *next;
    struct queue_segment *seg;    /* the mapping msg.body points into */
    uint64_t offset;              /* region offset in seg */
    uint64_t id;
    uint64_t region_len;          /* bytes counted in queue->space_used */
    unsigned refs;                /* the queue's own reference included */
    bool durable;                 /* recovered, or its commit synced; the
                                   * operator sees and changes only such
                                   * messages, since a pending commit
                                   * still points at the item */
    size_t queued;                /* recipients still QUEUED */
    unsigned busy;                /* attempts sending msg.body, see
                                   * queue_msg_busy(); never moved while
                                   * nonzero */
};

/* queue_commit: a sealed record waiting for its batch's syncs. */
struct queue_commit {
    struct queue_commit *next;
    struct queue_item *item;
    queue_commit_fn done;
    void *arg;
};

/* queue_sync: one fsync in flight. It lives apart from its segment so the
 * queue can close while the reactor still owns the op: queue_close() sets
 * queue to NULL and the completion then only frees the struct. That needs
 * the completion to be delivered, by reactor_run() or reactor_shutdown(). */
struct queue_sync {
    struct reactor_op op;
    struct queue *queue;          /* NULL once the queue closed */
    struct queue_segment *seg;    /* NULL for the journal or directory */
    const char *file;             /* file name for log lines */
    struct queue_sync *next;      /* queue->syncs */
};

struct queue {
    struct reactor *reactor;
    char *dir;
    int dir_fd;
    enum queue_durability durability;
    uint64_t segment_size;        /* bytes, for regular segments */
    queue_ready_fn ready;
    void *ready_arg;

    struct queue_segment *segments; /* ascending number */
    struct queue_segment *active;   /* NULL until the first reservation */
    uint64_t next_segment;          /* number of the next segment */
    uint64_t last_id;               /* highest queue ID issued or seen */
    char failed_id[QUEUE_ID_LEN + 1]; /* of the last failed writer, or "" */
    struct queue_journal journal;
    bool dir_dirty;                 /* a segment was created, not synced */
    size_t writers;

    struct queue_item *items;       /* every message in memory */
    struct queue_item *items_tail;

    /* Group commit: commits wait in pending until the end-of-turn hook
     * moves them to batch and starts the syncs. At most one batch is in
     * flight, so a segment has at most one sync armed. */
    struct queue_commit *pending;
    struct queue_commit **pending_tail;
    size_t pending_count;
    uint64_t pending_since_us;      /* reactor clock when the hook first
                                     * saw pending commits; 0 if none */
    uint32_t batch_wait_us;
    struct reactor_timer batch_timer; /* durability batch: ends the wait */
    struct queue_commit *batch;
    size_t syncs_in_flight;
    int batch_error;                /* first failed sync of the batch */
    struct queue_sync *syncs;
    struct reactor_timer journal_timer; /* durability batch: ends the
                                         * journal's interval */
    bool journal_due;               /* that interval has passed */
    struct reactor_timer upkeep_timer; /* moves and compaction on a quiet
                                        * queue; see queue_upkeep_fired() */
    uint64_t upkeep_journal_tail;   /* journal.tail at the last upkeep */
    struct reactor_hook hook;       /* starts the next batch */
    bool hook_queued;               /* deferred and not yet run */
    size_t item_count;              /* items in queue->items */
    size_t recovered_messages;
    size_t recovered_dropped;
    bool read_only;                 /* queue_options.read_only */
    uint64_t compact_check_at;      /* journal bytes; see queue_compact.c */
    uint64_t move_next_ms;          /* reactor clock of the next move
                                     * check; see queue_move.c */
    uint64_t move_min_age_ms;       /* QUEUE_MOVE_MIN_AGE_MS, lowered by
                                     * tests */

    /* Space limits, see queue_space.c. space_used is the region bytes of
     * the messages in memory and of the writers' reservations. */
    uint64_t max_size;              /* bytes; 0 for no limit */
    uint64_t min_free;              /* bytes; 0 for no floor */
    uint64_t space_used;
    uint64_t free_bytes;            /* last statvfs result */
    uint64_t free_checked_ms;       /* reactor clock of that statvfs */
    bool free_known;                /* free_bytes is valid */

    /* Journal entries of unknown queue IDs kept for damaged segments;
     * see queue_quarantine.c. */
    bool keep_orphans;
    bool orphans_lost;              /* an orphan could not be stored */
    struct queue_journal_entry *orphans;
    size_t orphan_count;
    size_t orphan_capacity;
    uint64_t stat_commits;          /* see struct queue_stats */
    uint64_t stat_batches;
    uint64_t stat_fsyncs;
};

/* Recovery counts logged by queue_open(). */
struct queue_recovery_stats {
    size_t segments;
    size_t messages;
    size_t recipients;              /* still QUEUED */
    size_t dropped;                 /* invalid or uncommitted records */
    size_t abandoned;               /* regions a writer left */
    size_t removed_segments;
    size_t quarantined;             /* invalid segments moved to corrupt/ */
};

/* queue_format_id writes the QUEUE_ID_LEN-digit form of id. */
void queue_format_id(char *buf, uint64_t id);

/* queue_next_id returns a queue ID greater than every one issued or
 * recovered: microseconds since the epoch in the high bits, so IDs keep
 * growing across restarts. */
uint64_t queue_next_id(struct queue *queue);

/* queue_item_new builds the in-memory message for the region at offset,
 * whose header is already decoded and checked. Fails with EBADMSG when the
 * envelope is invalid. The item starts with the queue's reference. */
struct queue_item *queue_item_new(struct queue *queue,
                                  struct queue_segment *seg, uint64_t offset,
                                  const struct queue_region_header *header);

/* queue_item_link inserts item into queue->items by queue ID, searching
 * from the tail because commits arrive nearly in ID order. */
void queue_item_link(struct queue *queue, struct queue_item *item);

/* queue_item_unref drops one reference and frees the item at zero. */
void queue_item_unref(struct queue *queue, struct queue_item *item);

/* queue_segment_add inserts seg into the queue's list by number. */
void queue_segment_add(struct queue *queue, struct queue_segment *seg);

/* queue_segment_reclaim unlinks and frees seg when nothing uses it any
 * more: not active, no live message, no writer, no sync in flight. */
void queue_segment_reclaim(struct queue *queue, struct queue_segment *seg);

/* queue_schedule_sync defers the group-commit hook to the end of the
 * current reactor turn. */
void queue_schedule_sync(struct queue *queue);

/* queue_item_free frees item with its last_error strings, and keeps a
 * tombstone in its segment when every recipient is final. */
void queue_item_free(struct queue_item *item);

/* queue_tombstone_add records the final states of item in its segment.
 * When memory runs out it sets seg->tombstones_lost, which stops
 * compaction while the segment exists. */
void queue_tombstone_add(const struct queue_item *item);

/* queue_compact rewrites the journal with only the entries needed to
 * recover the current state (core/queue_compact.c). */
int queue_compact(struct queue *queue);

/* queue_compact_maybe compacts a running queue's journal once it grows
 * past the bound of queue_compact.c. Call it only while no sync is in
 * flight. */
void queue_compact_maybe(struct queue *queue);

/* queue_compact_remove_leftover removes a journal.new that a compaction
 * interrupted by a crash left behind. It was never renamed, so the
 * journal itself is complete. */
int queue_compact_remove_leftover(struct queue *queue);

/* queue_compact_needed returns the number of entries compaction would
 * write. */
size_t queue_compact_needed(const struct queue *queue);
/* queue_space_reserve_check fails with EDQUOT when len more bytes of
 * regions would pass max_size, so callers can tell the configured limit
 * from a full disk (ENOSPC). */
int queue_space_reserve_check(struct queue *queue, uint64_t len);

/* queue_space_segment_check fails with ENOSPC when a new segment file of
 * size bytes would leave less than min_free bytes free. It calls statvfs
 * every time, because segments are created rarely. */
int queue_space_segment_check(struct queue *queue, uint64_t size);

/* queue_reserve takes len bytes (a multiple of QUEUE_REGION_ALIGN) for a
 * region, counts them in space_used and in seg->writers; see
 * queue_writer.c. */
int queue_reserve(struct queue *queue, uint64_t len,
                  struct queue_segment **seg_out, uint64_t *offset);

/* Segment moves (core/queue_move.c): a segment that has been inactive
 * for at least QUEUE_MOVE_MIN_AGE_MS and whose live region bytes are
 * below 1/QUEUE_MOVE_SPARSE_DIVISOR of its size has its live records
 * copied into the active segment, so the old file can be removed. */
#define QUEUE_MOVE_MIN_AGE_MS 60000u
#define QUEUE_MOVE_SPARSE_DIVISOR 4u

/* queue_move_maybe runs one move at most once per QUEUE_MOVE_INTERVAL_MS
 * of the reactor clock. Call it only while no sync is in flight. */
void queue_move_maybe(struct queue *queue);

/* queue_move_run moves the live records of the first sparse segment,
 * at most QUEUE_MOVE_MAX_BYTES of them, and returns the number moved,
 * or -1 when the copy could not be made durable. */
int queue_move_run(struct queue *queue);

/* queue_move_drop_copy flags a recovered duplicate record abandoned and
 * syncs its segment, so that copy can never be recovered once the kept
 * copy's segment is gone. */
void queue_move_drop_copy(struct queue *queue, struct queue_segment *seg,
                          uint64_t offset);

/* Quarantine (core/queue_quarantine.c). */
#define QUEUE_CORRUPT_DIR "corrupt"
/* queue_quarantine_segment moves the segment file name into corrupt/,
 * as name.N when that name is taken, and sets keep_orphans. On failure
 * the file stays where it is. */
int queue_quarantine_segment(struct queue *queue, const char *name,
                             const char *reason);
/* queue_quarantine_present returns true when corrupt/ contains a file or
 * cannot be read. */
bool queue_quarantine_present(struct queue *queue);
/* queue_orphan_add keeps a copy of a journal entry for compaction to
 * write again; when memory runs out it sets orphans_lost instead. */
void queue_orphan_add(struct queue *queue,
                      const struct queue_journal_entry *entry);
/* queue_orphan_add_tombstones keeps the final states of the finished
 * messages of seg, whose file goes to corrupt/, as orphans. */
void queue_orphan_add_tombstones(struct queue *queue,
                                 const struct queue_segment *seg);
/* queue_recover scans segments and journal and builds queue->items. */
int queue_recover(struct queue *queue, struct queue_recovery_stats *stats);

#endif
