/* Segment moves: copy the live records of a sparse segment into the
 * active segment, so one long-deferred message no longer keeps a whole
 * segment file on disk.
 *
 * A segment is sparse when its live region bytes are below
 * 1/QUEUE_MOVE_SPARSE_DIVISOR of its size and it was first seen inactive
 * at least move_min_age_ms ago. It must also have the regular segment
 * size and no writer or sync using it. The age keeps a segment that
 * just filled up from being moved while most of its messages are still on
 * their first attempt. A message is moved only when it is durable and
 * not busy (see queue_msg_busy()), because an attempt sends its body from
 * the mapping.
 *
 * Crash safety: the copy is written and synced before any message in
 * memory points at it. Only after that is the old record flagged
 * abandoned, and the old file removed once its last live message has
 * moved. A crash at any point leaves the old copy, the new copy, or both.
 * Both copies have the same envelope and body under the same queue ID,
 * and recovery applies journal entries by ID, so either copy recovers the
 * same message with the same state. When both are valid, recovery keeps
 * the first in file order and flags the other abandoned
 * (queue_move_drop_copy()), so a stale copy cannot come back after the
 * kept one is finished and compacted out of the journal.
 *
 * The fdatasync of the new segment blocks the reactor. Each run copies at
 * most QUEUE_MOVE_MAX_BYTES and QUEUE_MOVE_MAX_RECORDS, from up to
 * QUEUE_MOVE_MAX_SOURCES sparse segments into one target with one sync,
 * and runs start at most once per QUEUE_MOVE_INTERVAL_MS.
 * NOTE: a run of 256 records of 8 KiB blocked 16 to 76 ms, measured once
 * with an ad-hoc timer on a 2-core VM with ext4 while builds ran, so the
 * bounds are a guess at an acceptable stall, not tuned. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "core/log.h"
#include "core/queue_internal.h"

#define QUEUE_MOVE_INTERVAL_MS 1000u
#define QUEUE_MOVE_MAX_BYTES (8u * 1024 * 1024)
#define QUEUE_MOVE_MAX_RECORDS 256u
/* Sparse segments one run takes records from. The copies of a run share
 * one target and one sync, so more sources add no sync. */
#define QUEUE_MOVE_MAX_SOURCES 16u

/* queue_move: one copied record waiting for its sync. */
struct queue_move {
    struct queue_item *item;
    struct queue_segment *from;
    uint64_t offset;                   /* new region offset in run->to */
    struct queue_region_header header; /* as written at offset */
};

/* queue_move_source: a sparse segment that a run took records from. */
struct queue_move_source {
    struct queue_segment *seg;
    size_t count;                      /* records copied from seg */
    uint64_t bytes;                    /* region bytes copied from seg */
};

struct queue_move_run {
    struct queue *queue;
    struct queue_segment *from;        /* the source being collected */
    struct queue_segment *to;          /* NULL until the first copy */
    struct queue_move moves[QUEUE_MOVE_MAX_RECORDS];
    size_t count;
    uint64_t bytes;                    /* region bytes copied */
    struct queue_move_source sources[QUEUE_MOVE_MAX_SOURCES];
    size_t source_count;
    bool full;                         /* a budget or the target ran out */
};

static bool queue_move_sparse(const struct queue *queue,
                              struct queue_segment *seg, uint64_t now)
{
    if (seg->active) {
        return false;
    }

    /* The age counts from the first run that saw the segment inactive,
     * which is at most one interval after it was retired or recovered. */
    if (seg->retired_ms == 0) {
        seg->retired_ms = now;
    }
    if (seg->writers > 0 || seg->syncing || seg->live == 0 ||
        seg->size != queue->segment_size ||
        now - seg->retired_ms < queue->move_min_age_ms) {
        return false;
    }
    return seg->live_bytes < seg->size / QUEUE_MOVE_SPARSE_DIVISOR;
}

/* queue_move_abandon flags the region at offset abandoned in the mapping,
 * best effort: the flag reaches the disk with the next sync of seg. */
static void queue_move_abandon(struct queue_segment *seg, uint64_t offset)
{
    struct queue_region_header header;
    uint8_t *bytes = seg->map + offset;

    if (queue_region_header_decode(bytes, &header) == 0) {
        header.flags |= QUEUE_REGION_ABANDONED;
        queue_region_header_encode(bytes, &header);
    }
}

/* queue_move_fits returns false when the record of len bytes would not
 * go into the segment of the earlier copies, which ends the run, so all
 * copies of one run share one target and one sync. */
static bool queue_move_fits(const struct queue_move_run *run, uint64_t len)
{
    const struct queue_segment *to = run->to;

    if (to == NULL) {
        return true;
    }
    return run->queue->active == to && to->size - to->tail >= len;
}

/* queue_move_copy copies the record of item into a new region and checks
 * the copy against the old record's CRC. Returns 0 when the copy is made,
 * 1 when the run must end, or -1 when this record stays where it is. */
static int queue_move_copy(struct queue_move_run *run,
                           struct queue_item *item)
{
    struct queue *queue = run->queue;
    struct queue_move *move = &run->moves[run->count];
    const uint8_t *old = run->from->map + item->offset;
    struct queue_region_header header;
    struct queue_segment *to;
    uint64_t len;
    uint32_t crc;

    if (queue_region_header_decode(old, &header) != 0) {
        log_error("id=%s event=queue_move_failed segment=%s reason=%s",
                  item->msg.id, run->from->name, "invalid_region_header");
        return -1;
    }
    len = queue_align_up(header.record_len, QUEUE_REGION_ALIGN);
    if (!queue_move_fits(run, len) ||
        run->bytes + len > QUEUE_MOVE_MAX_BYTES) {
        return 1;
    }

    /* The move adds no queued bytes, so max_size is checked without the
     * old region, which stays counted as long as the item uses it. */
    queue->space_used -= item->region_len;
    if (queue_reserve(queue, len, &to, &move->offset) != 0) {
        queue->space_used += item->region_len;
        log_error("id=%s event=queue_move_failed segment=%s size=%" PRIu64
                  " error=\"%s\"", item->msg.id, run->from->name, len,
                  strerror(errno));
        return 1;
    }
    run->to = to;
    memcpy(to->map + move->offset + QUEUE_REGION_HEADER_LEN,
           old + QUEUE_REGION_HEADER_LEN,
           header.record_len - QUEUE_REGION_HEADER_LEN);

    /* The CRC of the copy, checked against the old header, proves the
     * copy equal to what was committed. Only the header part of the CRC
     * differs for the new region. */
    crc = crc32c_update(0, to->map + move->offset + QUEUE_REGION_HEADER_LEN,
                        header.record_len - QUEUE_REGION_HEADER_LEN);
    move->header = header;
    move->header.region_len = len;
    move->header.nonce = to->nonce;
    if (queue_region_crc_finish(crc, &header) != header.crc) {
        log_error("id=%s event=queue_move_failed segment=%s reason=%s",
                  item->msg.id, run->from->name, "checksum_mismatch");
        move->header.flags = QUEUE_REGION_ABANDONED;
        queue_region_header_encode(to->map + move->offset, &move->header);
        to->writers--;
        queue->space_used -= len;
        queue->space_used += item->region_len;
        return -1;
    }
    move->header.flags = QUEUE_REGION_COMMITTED;
    move->header.crc = queue_region_crc_finish(crc, &move->header);
    queue_region_header_encode(to->map + move->offset, &move->header);

    move->item = item;
    move->from = run->from;
    run->count++;
    run->bytes += len;
    return 0;
}

/* queue_move_sync makes the copies and the target's directory entry
 * durable, blocking. Durability none syncs nothing, as for commits. */
static int queue_move_sync(struct queue *queue, struct queue_segment *to)
{
    if (queue->durability == QUEUE_DURABILITY_NONE) {
        return 0;
    }

    queue->stat_fsyncs++;
    if (fdatasync(to->fd) != 0) {
        log_error("event=queue_sync_failed file=%s error=\"%s\"", to->name,
                  strerror(errno));
        return -1;
    }
    if (queue->dir_dirty) {
        queue->stat_fsyncs++;
        if (fsync(queue->dir_fd) != 0) {
            log_error("event=queue_sync_failed file=%s error=\"%s\"",
                      queue->dir, strerror(errno));
            return -1;
        }
        queue->dir_dirty = false;
    }
    return 0;
}

/* queue_move_apply points every moved item at its synced copy and flags
 * the old record abandoned. The flag keeps the old copy from coming back
 * at a restart after the message finished and its journal entries were
 * compacted away. It reaches the disk with the next batch, which syncs
 * the old segment because it is marked dirty here. */
static void queue_move_apply(struct queue_move_run *run)
{
    for (size_t i = 0; i < run->count; i++) {
        struct queue_move *move = &run->moves[i];
        struct queue_item *item = move->item;
        uint64_t len = move->header.region_len;

        move->from->live--;
        move->from->live_bytes -= item->region_len;
        move->from->dirty = true;
        run->to->live++;
        run->to->live_bytes += len;
        run->to->writers--;

        queue_move_abandon(move->from, item->offset);
        log_info("id=%s event=queue_record_moved segment=%s to=%s",
                 item->msg.id, move->from->name, run->to->name);
        item->seg = run->to;
        item->offset = move->offset;
        item->region_len = len;
        item->msg.body = (const char *)run->to->map + move->offset +
                         QUEUE_REGION_HEADER_LEN + move->header.envelope_len;
    }
    queue_schedule_sync(run->queue);
}

/* queue_move_undo abandons the copies after a failed sync. The items keep
 * their old records. The target is marked dirty so the abandoned flags
 * reach the disk with the next batch. */
static void queue_move_undo(struct queue_move_run *run)
{
    for (size_t i = 0; i < run->count; i++) {
        struct queue_move *move = &run->moves[i];

        queue_move_abandon(run->to, move->offset);
        run->to->writers--;
        run->queue->space_used += move->item->region_len;
        run->queue->space_used -= move->header.region_len;
    }
    run->to->dirty = true;
    queue_schedule_sync(run->queue);
}

/* queue_move_collect copies the movable records of run->from. */
static void queue_move_collect(struct queue_move_run *run)
{
    for (struct queue_item *item = run->queue->items; item != NULL;
         item = item->next) {
        if (item->seg != run->from || !item->durable || item->busy > 0) {
            continue;
        }
        if (run->count == QUEUE_MOVE_MAX_RECORDS ||
            queue_move_copy(run, item) > 0) {
            run->full = true;
            break;
        }
    }
}

/* queue_move_next_source returns the first sparse segment that the run
 * has not taken records from yet, or NULL. The list is walked from its
 * head each time, because a reservation can retire and free the active
 * segment, which a saved next pointer could point to. */
static struct queue_segment *queue_move_next_source(
    struct queue_move_run *run, uint64_t now)
{
    for (struct queue_segment *seg = run->queue->segments; seg != NULL;
         seg = seg->next) {
        bool already_source = false;

        for (size_t i = 0; i < run->source_count; i++) {
            if (run->sources[i].seg == seg) {
                already_source = true;
            }
        }
        if (!already_source && queue_move_sparse(run->queue, seg, now)) {
            return seg;
        }
    }
    return NULL;
}

/* queue_move_finish logs each source and frees the sources whose last
 * live message moved. Their tombstones go with the file, and with them
 * the finished records they describe. A message moved before it
 * finished keeps its tombstone in the segment it moved to. */
static void queue_move_finish(struct queue_move_run *run)
{
    for (size_t i = 0; i < run->source_count; i++) {
        struct queue_move_source *source = &run->sources[i];

        if (source->count == 0) {
            continue;
        }
        log_info("event=queue_segment_moved segment=%s records=%zu bytes=%"
                 PRIu64 " to=%s live=%zu", source->seg->name, source->count,
                 source->bytes, run->to->name, source->seg->live);
        queue_segment_reclaim(run->queue, source->seg);
    }
}

int queue_move_run(struct queue *queue)
{
    uint64_t now = reactor_now_ms(queue->reactor);
    struct queue_move_run run;

    if (queue->read_only) {
        return 0;
    }
    memset(&run, 0, sizeof(run));
    run.queue = queue;

    /* A segment whose live messages are all busy yields to the next
     * sparse one. */
    while (!run.full && run.source_count < QUEUE_MOVE_MAX_SOURCES) {
        struct queue_move_source *source = &run.sources[run.source_count];
        size_t count_before = run.count;
        uint64_t bytes_before = run.bytes;

        source->seg = queue_move_next_source(&run, now);
        if (source->seg == NULL) {
            break;
        }
        run.source_count++;
        run.from = source->seg;
        queue_move_collect(&run);
        source->count = run.count - count_before;
        source->bytes = run.bytes - bytes_before;
    }
    if (run.count == 0) {
        return 0;
    }
    if (queue_move_sync(queue, run.to) != 0) {
        queue_move_undo(&run);
        return -1;
    }
    queue_move_apply(&run);
    queue_move_finish(&run);
    return (int)run.count;
}

void queue_move_maybe(struct queue *queue)
{
    uint64_t now;

    if (queue->read_only || queue->reactor == NULL ||
        queue->syncs_in_flight > 0) {
        return;
    }
    now = reactor_now_ms(queue->reactor);
    if (now < queue->move_next_ms) {
        return;
    }
    queue->move_next_ms = now + QUEUE_MOVE_INTERVAL_MS;
    queue_move_run(queue);
}

void queue_move_drop_copy(struct queue *queue, struct queue_segment *seg,
                          uint64_t offset)
{
    queue_move_abandon(seg, offset);
    if (queue->durability != QUEUE_DURABILITY_NONE &&
        fdatasync(seg->fd) != 0) {
        log_error("event=queue_sync_failed file=%s error=\"%s\" "
                  "effect=\"the duplicate may be recovered again\"",
                  seg->name, strerror(errno));
    }
}
