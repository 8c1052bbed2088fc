/* Queue store: open and close, messages in memory, the journal and group
 * commit. Writers are in queue_writer.c, start-up recovery in
 * queue_recover.c, the on-disk layout in queue_record.h. */
#include "core/queue.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/queue_internal.h"

static const char *const queue_durability_names[] = {
    [QUEUE_DURABILITY_FSYNC] = "fsync",
    [QUEUE_DURABILITY_BATCH] = "batch",
    [QUEUE_DURABILITY_NONE] = "none",
};

void queue_format_id(char *buf, uint64_t id)
{
    snprintf(buf, QUEUE_ID_LEN + 1, "%016" PRIX64, id);
}

uint64_t queue_next_id(struct queue *queue)
{
    struct timeval now;
    uint64_t id;

    /* 2^52 microseconds reach the year 2112, so the shifted value fits in
     * 64 bits; the low 12 bits count IDs issued within one microsecond. */
    gettimeofday(&now, NULL);
    id = ((uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_usec) << 12;
    if (id <= queue->last_id) {
        id = queue->last_id + 1;
    }
    queue->last_id = id;
    return id;
}

static struct queue_item *queue_item_of(struct queue_msg *msg)
{
    return (struct queue_item *)msg;
}

void queue_item_link(struct queue *queue, struct queue_item *item)
{
    struct queue_item *after = queue->items_tail;

    while (after != NULL && after->id > item->id) {
        after = after->prev;
    }

    item->prev = after;
    item->next = after != NULL ? after->next : queue->items;
    if (item->next != NULL) {
        item->next->prev = item;
    } else {
        queue->items_tail = item;
    }
    if (after != NULL) {
        after->next = item;
    } else {
        queue->items = item;
    }
    queue->item_count++;
}

static void queue_item_unlink(struct queue *queue, struct queue_item *item)
{
    if (item->prev != NULL) {
        item->prev->next = item->next;
    } else {
        queue->items = item->next;
    }
    if (item->next != NULL) {
        item->next->prev = item->prev;
    } else {
        queue->items_tail = item->prev;
    }
    queue->item_count--;
}

struct queue_item *queue_item_new(struct queue *queue,
                                  struct queue_segment *seg, uint64_t offset,
                                  const struct queue_region_header *header)
{
    const uint8_t *envelope = seg->map + offset + QUEUE_REGION_HEADER_LEN;
    struct queue_envelope_info info;
    struct queue_item *item;
    size_t rcpts_size;

    if (queue_envelope_check(envelope, header->envelope_len, &info) != 0) {
        errno = EBADMSG;
        return NULL;
    }

    rcpts_size = (size_t)info.rcpt_count * sizeof(struct queue_rcpt);
    item = calloc(1, sizeof(*item) + rcpts_size + info.string_bytes);
    if (item == NULL) {
        return NULL;
    }

    item->msg.rcpts = (struct queue_rcpt *)(item + 1);
    item->msg.rcpt_count = info.rcpt_count;
    queue_envelope_decode(envelope, (char *)item->msg.rcpts + rcpts_size,
                          &item->msg);
    queue_format_id(item->msg.id, header->id);
    item->msg.arrival = (time_t)header->arrival;
    item->msg.flags = info.flags;
    item->msg.body = (const char *)envelope + header->envelope_len;
    item->msg.body_len = header->body_len;

    item->seg = seg;
    item->offset = offset;
    item->id = header->id;
    item->region_len = header->region_len;
    queue->space_used += item->region_len;
    item->refs = 1;
    item->queued = info.rcpt_count;
    seg->live++;
    seg->live_bytes += item->region_len;
    queue_item_link(queue, item);
    return item;
}

void queue_item_unref(struct queue *queue, struct queue_item *item)
{
    struct queue_segment *seg = item->seg;

    if (--item->refs > 0) {
        return;
    }

    queue_item_unlink(queue, item);
    queue->space_used -= item->region_len;
    seg->live_bytes -= item->region_len;
    queue_item_free(item);
    seg->live--;
    queue_segment_reclaim(queue, seg);
}

void queue_msg_ref(struct queue_msg *msg)
{
    queue_item_of(msg)->refs++;
}

bool queue_msg_in_flight(const struct queue_msg *msg)
{
    return queue_item_of((struct queue_msg *)msg)->busy > 0;
}

void queue_msg_busy(struct queue_msg *msg, bool busy)
{
    struct queue_item *item = queue_item_of(msg);

    if (busy) {
        item->busy++;
    } else if (item->busy > 0) {
        item->busy--;
    }
}

void queue_msg_unref(struct queue *queue, struct queue_msg *msg)
{
    if (msg != NULL) {
        queue_item_unref(queue, queue_item_of(msg));
    }
}

void queue_segment_add(struct queue *queue, struct queue_segment *seg)
{
    struct queue_segment **link = &queue->segments;

    while (*link != NULL && (*link)->number < seg->number) {
        link = &(*link)->next;
    }
    seg->next = *link;
    *link = seg;
}

void queue_segment_reclaim(struct queue *queue, struct queue_segment *seg)
{
    struct queue_segment **link = &queue->segments;

    if (seg->active || seg->live > 0 || seg->writers > 0 || seg->syncing) {
        return;
    }

    while (*link != NULL && *link != seg) {
        link = &(*link)->next;
    }
    if (*link == seg) {
        *link = seg->next;
    }

    /* Journal entries of the segment's messages name IDs that are never
     * issued again, so they stay harmless in the journal until compaction
     * drops them. A failed unlink only leaves a file that the next open
     * removes. A read-only queue removes nothing. A damaged segment goes
     * to corrupt/, and its finished messages keep their journal entries
     * in case an operator repairs the file and moves it back. */
    if (queue->read_only) {
        /* Nothing to change on disk. */
    } else if (seg->quarantine != NULL) {
        queue_orphan_add_tombstones(queue, seg);
        queue_quarantine_segment(queue, seg->name, seg->quarantine);
    } else {
        queue_segment_unlink(seg, queue->dir_fd);
    }
    queue_segment_free(seg);
}

/* queue_announce calls ready() with a reference held for the call. */
static void queue_announce(struct queue *queue, struct queue_item *item)
{
    item->refs++;
    queue->ready(queue->ready_arg, &item->msg);
    queue_item_unref(queue, item);
}

/* queue_abandon_region flags a record whose commit failed, so that a
 * later recovery drops it instead of delivering a message whose client got
 * a failure reply. Best effort: the flag may not reach the disk. */
static void queue_abandon_region(struct queue_item *item)
{
    uint8_t *bytes = item->seg->map + item->offset;
    struct queue_region_header header;

    if (queue_region_header_decode(bytes, &header) == 0) {
        header.flags |= QUEUE_REGION_ABANDONED;
        queue_region_header_encode(bytes, &header);
    }
}

/* queue_journal_sync_due returns true when the next batch syncs the
 * journal: whenever it is dirty, but with durability batch only once
 * its interval (QUEUE_JOURNAL_SYNC_INTERVAL_US) has passed. */
static bool queue_journal_sync_due(const struct queue *queue)
{
    if (!queue->journal.dirty) {
        return false;
    }
    return queue->durability != QUEUE_DURABILITY_BATCH || queue->journal_due;
}

/* queue_journal_schedule keeps the journal timer of durability batch in
 * step with the journal. The timer is armed from the first entry that
 * waits for a sync and cancelled once the journal is clean, which a sync
 * or a compaction makes it. */
static void queue_journal_schedule(struct queue *queue)
{
    if (queue->durability != QUEUE_DURABILITY_BATCH) {
        return;
    }
    if (!queue->journal.dirty) {
        queue->journal_due = false;
        reactor_timer_cancel(queue->reactor, &queue->journal_timer);
        return;
    }
    if (!queue->journal_due &&
        !reactor_timer_armed(&queue->journal_timer)) {
        reactor_timer_set_us(queue->reactor, &queue->journal_timer,
                             QUEUE_JOURNAL_SYNC_INTERVAL_US);
    }
}

static bool queue_needs_sync(const struct queue *queue)
{
    if (queue->pending != NULL || queue_journal_sync_due(queue) ||
        queue->dir_dirty) {
        return true;
    }
    for (const struct queue_segment *seg = queue->segments; seg != NULL;
         seg = seg->next) {
        if (seg->dirty) {
            return true;
        }
    }
    return false;
}

/* queue_finish_batch reports every commit of the finished batch: all
 * done() callbacks first, then ready() for each message. */
static void queue_finish_batch(struct queue *queue)
{
    struct queue_commit *batch = queue->batch;
    int error = queue->batch_error;
    struct queue_commit *next;

    queue->batch = NULL;
    if (batch != NULL) {
        queue->stat_batches++;
    }
    for (struct queue_commit *c = batch; c != NULL; c = c->next) {
        if (error == 0) {
            queue->stat_commits++;
        }
        c->done(c->arg, error, error == 0 ? c->item->msg.id : NULL);
    }

    for (struct queue_commit *c = batch; c != NULL; c = next) {
        next = c->next;
        if (error == 0) {
            c->item->durable = true;
            queue_announce(queue, c->item);
        } else {
            log_error("id=%s event=queue_commit_failed error=\"%s\"",
                      c->item->msg.id, strerror(-error));
            queue_abandon_region(c->item);
            queue_item_unref(queue, c->item);
        }
        free(c);
    }

    queue_compact_maybe(queue);
    queue_move_maybe(queue);
    queue_journal_schedule(queue);
    if (queue_needs_sync(queue)) {
        queue_schedule_sync(queue);
    }
}

static void queue_sync_done(struct reactor_op *op, int result)
{
    struct queue_sync *sync = op->owner;
    struct queue *queue = sync->queue;
    struct queue_segment *seg = sync->seg;
    struct queue_sync **link;

    if (queue == NULL) {
        free(sync);
        return;
    }

    if (result == -ECANCELED) {
        /* Only reactor_shutdown() cancels a sync. The batch fails, so no
         * commit of it gets a 250 reply, and queue_close() syncs the data
         * blocking. */
        log_warning("event=queue_sync_cancelled file=%s "
                    "reason=\"reactor shutdown\"", sync->file);
    } else if (result < 0) {
        log_error("event=queue_sync_failed file=%s error=\"%s\"", sync->file,
                  strerror(-result));
    }
    if (result < 0) {
        if (queue->batch_error == 0) {
            queue->batch_error = result;
        }
    }

    link = &queue->syncs;
    while (*link != sync) {
        link = &(*link)->next;
    }
    *link = sync->next;
    free(sync);

    /* Reclaim before finishing the batch: finishing may free seg. */
    if (seg != NULL) {
        seg->syncing = false;
        queue_segment_reclaim(queue, seg);
    }
    if (--queue->syncs_in_flight == 0) {
        queue_finish_batch(queue);
    }
}

/* queue_sync_blocking is the fallback when the reactor cannot take the
 * fsync. */
static void queue_sync_blocking(struct queue *queue, int fd, bool datasync,
                                const char *file)
{
    int rc = datasync ? fdatasync(fd) : fsync(fd);

    if (rc != 0) {
        log_error("event=queue_sync_failed file=%s error=\"%s\"", file,
                  strerror(errno));
        if (queue->batch_error == 0) {
            queue->batch_error = -errno;
        }
    }
}

static void queue_sync_start(struct queue *queue, struct queue_segment *seg,
                             int fd, bool datasync, const char *file)
{
    struct queue_sync *sync = calloc(1, sizeof(*sync));
    int rc;

    queue->stat_fsyncs++;
    if (sync == NULL) {
        queue_sync_blocking(queue, fd, datasync, file);
        return;
    }
    sync->op.done = queue_sync_done;
    sync->op.owner = sync;
    sync->queue = queue;
    sync->seg = seg;
    sync->file = file;

    rc = reactor_fsync(queue->reactor, &sync->op, fd, datasync);
    if (rc < 0) {
        log_warning("event=queue_sync_submit_failed file=%s error=\"%s\" "
                    "fallback=blocking", file, strerror(-rc));
        free(sync);
        queue_sync_blocking(queue, fd, datasync, file);
        return;
    }

    sync->next = queue->syncs;
    queue->syncs = sync;
    queue->syncs_in_flight++;
    if (seg != NULL) {
        seg->syncing = true;
    }
}

/* queue_start_batch takes every pending commit into a new batch and
 * starts one sync per dirty file, the journal only when its sync is due.
 * Durability none completes the batch at once, which is still from the
 * hook, never from inside commit. */
static void queue_start_batch(struct queue *queue)
{
    bool sync = queue->durability != QUEUE_DURABILITY_NONE;

    queue->batch = queue->pending;
    queue->pending = NULL;
    queue->pending_tail = &queue->pending;
    queue->pending_count = 0;
    queue->pending_since_us = 0;
    reactor_timer_cancel(queue->reactor, &queue->batch_timer);
    queue->batch_error = 0;

    for (struct queue_segment *seg = queue->segments; seg != NULL;
         seg = seg->next) {
        if (seg->dirty && sync) {
            queue_sync_start(queue, seg, seg->fd, true, seg->name);
        }
        seg->dirty = false;
    }
    if (queue_journal_sync_due(queue)) {
        if (sync) {
            queue_sync_start(queue, NULL, queue->journal.fd, true,
                             QUEUE_JOURNAL_NAME);
        }
        queue->journal.dirty = false;
        queue->journal_due = false;
        reactor_timer_cancel(queue->reactor, &queue->journal_timer);
    }
    if (queue->dir_dirty && sync) {
        queue_sync_start(queue, NULL, queue->dir_fd, false, queue->dir);
    }
    queue->dir_dirty = false;

    if (queue->syncs_in_flight == 0) {
        queue_finish_batch(queue);
    }
}

/* queue_batch_waits decides, for durability batch, whether the pending
 * commits wait for others. The wait counts from the first turn that saw
 * them pending, so time spent behind a batch in flight counts too. A
 * journal whose interval has passed waits only when commits wait, and
 * then joins their batch. Arms the batch timer for the rest of the wait
 * and returns true, or returns false when the batch may start. */
static bool queue_batch_waits(struct queue *queue)
{
    uint64_t now = reactor_now_us(queue->reactor);
    uint64_t waited;

    if (queue->durability != QUEUE_DURABILITY_BATCH ||
        queue->pending == NULL || queue->batch_wait_us == 0 ||
        queue->pending_count >= QUEUE_BATCH_MAX_COMMITS) {
        return false;
    }
    if (queue->pending_since_us == 0) {
        queue->pending_since_us = now;
    }
    waited = now - queue->pending_since_us;
    if (waited >= queue->batch_wait_us) {
        return false;
    }
    reactor_timer_set_us(queue->reactor, &queue->batch_timer,
                         queue->batch_wait_us - waited);
    return true;
}

static void queue_hook_run(struct reactor_hook *hook)
{
    struct queue *queue = hook->owner;

    queue->hook_queued = false;
    queue_journal_schedule(queue);
    if (!queue_needs_sync(queue) || queue_batch_waits(queue)) {
        return;
    }

    /* A batch in flight starts the next one when its last sync ends. */
    if (queue->syncs_in_flight == 0) {
        queue_start_batch(queue);
    }
}

/* queue_upkeep_fired runs segment moves and journal compaction, which a
 * queue that takes no new mail never reaches from the commit path, and
 * re-arms itself. The compaction check, which normally waits until the
 * journal doubles, runs again whenever the journal grew since the last
 * upkeep, so a quiet queue still compacts after its last deliveries. */
static void queue_upkeep_fired(struct reactor_timer *timer)
{
    struct queue *queue = timer->owner;

    if (queue->syncs_in_flight == 0) {
        if (queue->journal.tail != queue->upkeep_journal_tail) {
            queue->compact_check_at = 0;
        }
        queue_compact_maybe(queue);
        queue->upkeep_journal_tail = queue->journal.tail;
        queue_move_maybe(queue);
        queue_journal_schedule(queue);
    }
    reactor_timer_set(queue->reactor, &queue->upkeep_timer,
                      QUEUE_UPKEEP_INTERVAL_MS);
}

/* queue_batch_timer_fired ends the wait of durability batch. A batch still
 * in flight leaves the start to its end, whose hook finds the wait over. */
static void queue_batch_timer_fired(struct reactor_timer *timer)
{
    struct queue *queue = timer->owner;

    if (queue->syncs_in_flight == 0) {
        queue_start_batch(queue);
    }
}

/* queue_journal_timer_fired ends the journal's interval. The hook then
 * starts a batch for it, or leaves it to the batch in flight or to the
 * commits that wait. */
static void queue_journal_timer_fired(struct reactor_timer *timer)
{
    struct queue *queue = timer->owner;

    queue->journal_due = true;
    queue_schedule_sync(queue);
}

void queue_schedule_sync(struct queue *queue)
{
    queue->hook_queued = true;
    reactor_defer(queue->reactor, &queue->hook);
}

/* queue_attempts_stored caps an attempt count at the journal's u16 max. */
static uint16_t queue_attempts_stored(uint32_t attempts)
{
    return attempts > UINT16_MAX ? UINT16_MAX : (uint16_t)attempts;
}

/* queue_check_change returns 0 when recipient rcpt of msg is still QUEUED
 * and the queue can write. It fails with EROFS on a read-only queue and
 * with EINVAL for a bad index or a finished recipient. A recipient that
 * an operator deleted fails with ECANCELED, because an attempt that was
 * in flight then has nothing to record. */
static int queue_check_change(const struct queue *queue,
                              const struct queue_msg *msg, size_t rcpt,
                              const char *event)
{
    if (queue->read_only) {
        errno = EROFS;
        return -1;
    }
    if (rcpt < msg->rcpt_count &&
        msg->rcpts[rcpt].state == QUEUE_RCPT_DELETED) {
        log_info("id=%s event=%s rcpt=%zu reason=deleted", msg->id, event,
                 rcpt);
        errno = ECANCELED;
        return -1;
    }
    if (rcpt >= msg->rcpt_count ||
        msg->rcpts[rcpt].state != QUEUE_RCPT_QUEUED) {
        log_error("id=%s event=%s rcpt=%zu reason=not_queued", msg->id,
                  event, rcpt);
        errno = EINVAL;
        return -1;
    }
    return 0;
}

int queue_defer(struct queue *queue, struct queue_msg *msg, size_t rcpt,
                uint32_t attempts, time_t next_attempt)
{
    struct queue_item *item = queue_item_of(msg);
    struct queue_journal_entry entry;

    if (queue_check_change(queue, msg, rcpt, "queue_defer_invalid") != 0) {
        return -1;
    }
    if (attempts == 0) {
        log_error("id=%s event=queue_defer_invalid rcpt=%zu "
                  "attempts=%" PRIu32, msg->id, rcpt, attempts);
        errno = EINVAL;
        return -1;
    }

    /* The schedule is kept in memory even when the write fails, so only a
     * restart loses it. A held recipient stays held. */
    msg->rcpts[rcpt].attempts = attempts;
    msg->rcpts[rcpt].next_attempt = next_attempt;

    entry.id = item->id;
    entry.rcpt = (uint32_t)rcpt;
    entry.state = QUEUE_JOURNAL_DEFERRED;
    entry.attempts = queue_attempts_stored(attempts);
    entry.time = (int64_t)next_attempt;
    if (queue_journal_append(&queue->journal, &entry) != 0) {
        log_error("id=%s event=queue_journal_write_failed rcpt=%zu "
                  "error=\"%s\"", msg->id, rcpt, strerror(errno));
        return -1;
    }
    queue_schedule_sync(queue);
    return 0;
}

int queue_mark(struct queue *queue, struct queue_msg *msg, size_t rcpt,
               enum queue_rcpt_state state)
{
    struct queue_item *item = queue_item_of(msg);
    struct queue_journal_entry entry;
    int journaled;
    int saved_errno = 0;

    if (queue_check_change(queue, msg, rcpt, "queue_mark_invalid") != 0) {
        return -1;
    }
    if (state != QUEUE_RCPT_DELIVERED && state != QUEUE_RCPT_BOUNCED) {
        log_error("id=%s event=queue_mark_invalid rcpt=%zu state=%d",
                  msg->id, rcpt, (int)state);
        errno = EINVAL;
        return -1;
    }

    entry.id = item->id;
    entry.rcpt = (uint32_t)rcpt;
    entry.state = (uint16_t)state;
    entry.attempts = queue_attempts_stored(msg->rcpts[rcpt].attempts);
    entry.time = (int64_t)time(NULL);
    journaled = queue_journal_append(&queue->journal, &entry);
    if (journaled != 0) {
        saved_errno = errno;
        log_error("id=%s event=queue_journal_write_failed rcpt=%zu "
                  "error=\"%s\" effect=\"kept in memory only; a restart "
                  "repeats this recipient\"", msg->id, rcpt,
                  strerror(errno));
    }

    /* The result is kept in memory even when the journal write failed:
     * the attempt did happen, and a recipient left QUEUED would be sent
     * again at once, over and over. An attempt that started before an
     * operator's hold has also delivered or bounced, so it ends the
     * hold. */
    msg->rcpts[rcpt].state = state;
    msg->rcpts[rcpt].held = false;
    queue_schedule_sync(queue);

    /* The queue keeps its reference only while a recipient is QUEUED. */
    item->queued--;
    if (item->queued == 0) {
        queue_item_unref(queue, item);
    }
    if (journaled != 0) {
        errno = saved_errno;
        return -1;
    }
    return 0;
}

/* The journal timer is left out: a journal entry gates no reply, and the
 * queue_sync_now() of a stop syncs the journal. */
bool queue_sync_pending(const struct queue *queue)
{
    return queue->syncs_in_flight > 0 || queue->hook_queued ||
           reactor_timer_armed(&queue->batch_timer);
}

void queue_get_stats(const struct queue *queue, struct queue_stats *stats)
{
    memset(stats, 0, sizeof(*stats));
    stats->messages = queue->item_count;
    stats->writers = queue->writers;
    stats->recovered_messages = queue->recovered_messages;
    stats->recovered_dropped = queue->recovered_dropped;
    stats->space_used = queue->space_used;
    stats->commits = queue->stat_commits;
    stats->batches = queue->stat_batches;
    stats->fsyncs = queue->stat_fsyncs;
    for (const struct queue_segment *seg = queue->segments; seg != NULL;
         seg = seg->next) {
        stats->segments++;
    }
}

static int queue_sync_fd(struct queue *queue, int fd, bool datasync,
                         const char *file)
{
    int rc;

    if (fd < 0) {
        return 0;
    }
    queue->stat_fsyncs++;
    rc = datasync ? fdatasync(fd) : fsync(fd);
    if (rc != 0) {
        log_error("event=queue_sync_failed file=%s error=\"%s\"", file,
                  strerror(errno));
    }
    return rc;
}

int queue_sync_now(struct queue *queue)
{
    int saved = 0;

    if (queue->read_only) {
        return 0;
    }

    /* On Linux, bytes written through a MAP_SHARED mapping are page-cache
     * pages of the file, so fdatasync writes them back and no msync is
     * needed. Every file is tried even after an error. */
    for (struct queue_segment *seg = queue->segments; seg != NULL;
         seg = seg->next) {
        if (queue_sync_fd(queue, seg->fd, true, seg->name) != 0) {
            saved = errno;
        }
    }

    /* With the journal on disk, durability batch has no journal sync
     * left to schedule. */
    if (queue_sync_fd(queue, queue->journal.fd, true,
                      QUEUE_JOURNAL_NAME) != 0) {
        saved = errno;
    } else {
        queue->journal.dirty = false;
        queue->journal_due = false;
        if (queue->reactor != NULL) {
            reactor_timer_cancel(queue->reactor, &queue->journal_timer);
        }
    }
    if (queue_sync_fd(queue, queue->dir_fd, false, queue->dir) != 0) {
        saved = errno;
    }

    if (saved != 0) {
        errno = saved;
        return -1;
    }
    return 0;
}

void queue_log_sync_stats(const struct queue *queue)
{
    log_info("event=queue_sync_stats dir=%s durability=%s commits=%" PRIu64
             " batches=%" PRIu64 " fsyncs=%" PRIu64, queue->dir,
             queue_durability_names[queue->durability], queue->stat_commits,
             queue->stat_batches, queue->stat_fsyncs);
}

/* queue_drop_commits frees commits whose done() will never run. */
static void queue_drop_commits(struct queue_commit *list)
{
    struct queue_commit *next;

    for (struct queue_commit *c = list; c != NULL; c = next) {
        next = c->next;
        log_warning("id=%s event=queue_commit_dropped reason=queue_closed",
                    c->item->msg.id);
        free(c);
    }
}

/* queue_detach_reactor leaves the syncs in flight to free themselves at
 * their completion. NOTE: a sync that is still armed at reactor_free(),
 * because the caller skipped reactor_shutdown() or its wait ran out, gets
 * no completion and leaks its struct. */
static void queue_detach_reactor(struct queue *queue)
{
    for (struct queue_sync *sync = queue->syncs; sync != NULL;
         sync = sync->next) {
        sync->queue = NULL;
        sync->seg = NULL;
    }
    queue->syncs = NULL;
    reactor_defer_cancel(queue->reactor, &queue->hook);
    queue->hook_queued = false;
    reactor_timer_cancel(queue->reactor, &queue->batch_timer);
    reactor_timer_cancel(queue->reactor, &queue->journal_timer);
    reactor_timer_cancel(queue->reactor, &queue->upkeep_timer);
}

void queue_close(struct queue *queue)
{
    struct queue_segment *seg_next;
    struct queue_item *item_next;

    if (queue == NULL) {
        return;
    }
    if (queue->writers > 0) {
        log_error("event=queue_close_with_writers writers=%zu",
                  queue->writers);
    }

    if (!queue->read_only) {
        queue_sync_now(queue);
    }
    if (queue->reactor != NULL) {
        queue_detach_reactor(queue);
    }
    queue_drop_commits(queue->pending);
    queue_drop_commits(queue->batch);

    for (struct queue_item *item = queue->items; item != NULL;
         item = item_next) {
        item_next = item->next;
        queue_item_free(item);
    }
    for (struct queue_segment *seg = queue->segments; seg != NULL;
         seg = seg_next) {
        seg_next = seg->next;
        queue_segment_free(seg);
    }

    free(queue->orphans);
    queue_journal_close(&queue->journal);
    if (queue->dir_fd >= 0 && close(queue->dir_fd) != 0) {
        log_error("event=queue_close_failed dir=%s error=\"%s\"", queue->dir,
                  strerror(errno));
    }
    free(queue->dir);
    free(queue);
}

/* queue_mkdir_p creates path and its missing parents, mode 0700. */
static int queue_mkdir_p(const char *path)
{
    char *copy = strdup(path);
    int rc = -1;

    if (copy == NULL) {
        return -1;
    }

    for (char *p = copy + 1; ; p++) {
        if (*p != '/' && *p != '\0') {
            continue;
        }
        char saved = *p;

        *p = '\0';
        if (mkdir(copy, 0700) != 0 && errno != EEXIST) {
            log_error("event=queue_mkdir_failed dir=%s error=\"%s\"", copy,
                      strerror(errno));
            goto out;
        }
        *p = saved;
        if (saved == '\0') {
            break;
        }
    }
    rc = 0;

out:
    free(copy);
    return rc;
}

static int queue_check_options(const struct queue_options *opts,
                               uint64_t *segment_size)
{
    uint64_t size = opts->segment_size;

    if (size == 0) {
        size = QUEUE_DEFAULT_SEGMENT_SIZE;
    }
    if (opts->dir == NULL || opts->dir[0] == '\0' ||
        (unsigned)opts->durability > QUEUE_DURABILITY_NONE ||
        size < QUEUE_MIN_SEGMENT_SIZE || size > ((uint64_t)1 << 40)) {
        log_error("event=queue_options_invalid dir=%s segment_size=%" PRIu64
                  " hint=%s", opts->dir != NULL ? opts->dir : "-", size,
                  "segment_size_must_be_256KiB_to_1TiB");
        errno = EINVAL;
        return -1;
    }

    *segment_size = queue_align_up(size, 4096);
    return 0;
}

static struct queue *queue_alloc(struct reactor *reactor,
                                 const struct queue_options *opts,
                                 queue_ready_fn ready, void *ready_arg)
{
    struct queue *queue = calloc(1, sizeof(*queue));

    if (queue == NULL) {
        return NULL;
    }
    queue->reactor = reactor;
    queue->dir_fd = -1;
    queue->journal.fd = -1;
    queue->durability = opts->durability;
    queue->ready = ready;
    queue->ready_arg = ready_arg;
    queue->pending_tail = &queue->pending;
    queue->next_segment = 1;

    queue->hook.run = queue_hook_run;
    queue->hook.owner = queue;
    queue->read_only = opts->read_only;
    queue->batch_wait_us = opts->batch_wait_us;
    queue->max_size = opts->max_size;
    queue->min_free = opts->min_free;
    queue->move_min_age_ms = QUEUE_MOVE_MIN_AGE_MS;
    queue->batch_timer.fire = queue_batch_timer_fired;
    queue->batch_timer.owner = queue;
    queue->journal_timer.fire = queue_journal_timer_fired;
    queue->journal_timer.owner = queue;
    queue->upkeep_timer.fire = queue_upkeep_fired;
    queue->upkeep_timer.owner = queue;
    queue->dir = strdup(opts->dir);
    if (queue->dir == NULL) {
        queue_close(queue);
        return NULL;
    }
    return queue;
}

/* queue_open_dir_read_only opens an existing directory and its journal
 * without creating, locking or syncing anything. */
static int queue_open_dir_read_only(struct queue *queue)
{
    queue->dir_fd = open(queue->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (queue->dir_fd < 0) {
        log_error("event=queue_open_failed dir=%s error=\"%s\"", queue->dir,
                  strerror(errno));
        return -1;
    }
    return queue_journal_open_read_only(&queue->journal, queue->dir_fd,
                                        queue->dir);
}

/* queue_check_dir_mode warns when others than the owner may read or
 * enter the queue directory: the messages in it are private mail. A
 * directory the daemon creates has mode 0700. */
static void queue_check_dir_mode(const struct queue *queue)
{
    struct stat st;

    if (fstat(queue->dir_fd, &st) != 0) {
        log_warning("event=queue_dir_stat_failed dir=%s error=\"%s\"",
                    queue->dir, strerror(errno));
        return;
    }
    if ((st.st_mode & 077) != 0) {
        log_warning("event=queue_dir_mode dir=%s mode=%04o "
                    "hint=\"chmod 700 %s: other users can read the queued "
                    "mail\"", queue->dir, (unsigned)(st.st_mode & 07777),
                    queue->dir);
    }
}

/* queue_open_dir creates and opens the directory and its journal. The
 * directory is synced once so a newly created journal survives a
 * crash. */
static int queue_open_dir(struct queue *queue)
{
    if (queue->read_only) {
        return queue_open_dir_read_only(queue);
    }
    if (queue_mkdir_p(queue->dir) != 0) {
        return -1;
    }

    queue->dir_fd = open(queue->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (queue->dir_fd < 0) {
        log_error("event=queue_open_failed dir=%s error=\"%s\"", queue->dir,
                  strerror(errno));
        return -1;
    }
    queue_check_dir_mode(queue);

    if (queue_journal_open(&queue->journal, queue->dir_fd, queue->dir) != 0) {
        return -1;
    }
    if (fsync(queue->dir_fd) != 0) {
        log_error("event=queue_sync_failed file=%s error=\"%s\"", queue->dir,
                  strerror(errno));
        return -1;
    }
    return 0;
}

static void queue_log_opened(const struct queue *queue,
                             const struct queue_recovery_stats *stats)
{
    log_info("event=queue_opened dir=%s durability=%s batch_wait_us=%" PRIu32
             " segment_size=%" PRIu64
             " segments=%zu messages=%zu recipients=%zu dropped=%zu "
             "abandoned=%zu removed_segments=%zu quarantined=%zu "
             "read_only=%s", queue->dir,
             queue_durability_names[queue->durability], queue->batch_wait_us,
             queue->segment_size,
             stats->segments, stats->messages, stats->recipients,
             stats->dropped, stats->abandoned, stats->removed_segments,
             stats->quarantined, queue->read_only ? "yes" : "no");

    if (queue->durability == QUEUE_DURABILITY_NONE && !queue->read_only) {
        log_warning("event=queue_durability_none dir=%s note=%s", queue->dir,
                    "acknowledged_messages_are_lost_on_a_crash");
    }
}

int queue_open(struct queue **out, struct reactor *reactor,
               const struct queue_options *opts, queue_ready_fn ready,
               void *ready_arg)
{
    struct queue_recovery_stats stats = { 0 };
    struct queue_item *item;
    struct queue_item *next;
    struct queue *queue;
    uint64_t segment_size;
    int saved;

    if (queue_check_options(opts, &segment_size) != 0) {
        return -1;
    }
    queue = queue_alloc(reactor, opts, ready, ready_arg);
    if (queue == NULL) {
        log_error("event=queue_open_failed dir=%s error=\"%s\"", opts->dir,
                  strerror(errno));
        return -1;
    }
    queue->segment_size = segment_size;

    if (queue_open_dir(queue) != 0 || queue_recover(queue, &stats) != 0) {
        goto fail;
    }
    queue->recovered_messages = stats.messages;
    queue->recovered_dropped = stats.dropped;
    queue_log_opened(queue, &stats);
    *out = queue;
    if (queue->read_only) {
        return 0;
    }
    if (queue->reactor != NULL) {
        queue->upkeep_journal_tail = queue->journal.tail;
        reactor_timer_set(queue->reactor, &queue->upkeep_timer,
                          QUEUE_UPKEEP_INTERVAL_MS);
    }

    /* The extra reference keeps item alive while ready() runs, so its
     * successor can still be read afterwards. */
    for (item = queue->items; item != NULL; item = next) {
        item->refs++;
        queue->ready(queue->ready_arg, &item->msg);
        next = item->next;
        queue_item_unref(queue, item);
    }
    return 0;

fail:
    saved = errno;
    queue_close(queue);
    errno = saved;
    return -1;
}
