/* Journal compaction: rewrite the journal with only the entries that
 * recovery needs, so it stops growing by one entry per change.
 *
 * The new journal covers every message whose record is still in a
 * segment file. A finished recipient gets one entry with its final state.
 * A queued recipient that was attempted gets its last DEFERRED entry
 * (attempts and next attempt), and a held one a HELD entry. Messages in
 * memory supply their state directly, and finished messages that left
 * memory supply it from the tombstones of their segment.
 *
 * Crash safety: the new journal is written to journal.new and synced
 * before rename(2) replaces the journal, and rename is atomic, so the
 * name "journal" always refers to a complete file, the old one up to the
 * rename and the new one after it. The directory is synced before as
 * well, so a segment removal can never be undone by a crash after the
 * entries that finished its messages are gone.
 *
 * Running compaction blocks the reactor for the writes and three syncs.
 * Its work is proportional to the messages still in segment files, not to
 * the journal's length, and the bound below keeps it rare. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/queue_internal.h"

/* A running queue compacts when the journal is larger than both
 * QUEUE_COMPACT_MIN_BYTES and QUEUE_COMPACT_RATIO times the entries
 * needed. 1 MiB is 32768 entries, which a restart replayed and compacted
 * in 2 to 4 ms on a 2-core VM with ext4, so a smaller journal is not
 * worth a rewrite. */
#define QUEUE_COMPACT_MIN_BYTES (1024u * 1024)
#define QUEUE_COMPACT_RATIO 4u

/* Entries buffered per write. */
#define QUEUE_COMPACT_BATCH 1024u

struct queue_compact_out {
    int fd;
    uint8_t buf[QUEUE_COMPACT_BATCH * QUEUE_JOURNAL_ENTRY_LEN];
    size_t used;          /* bytes in buf */
    uint64_t offset;      /* file offset of buf */
    int64_t now;          /* time of the rewritten final entries */
};

void queue_tombstone_add(const struct queue_item *item)
{
    struct queue_segment *seg = item->seg;
    size_t count = item->msg.rcpt_count;
    struct queue_tombstone *stone;

    stone = malloc(sizeof(*stone) + count);
    if (stone == NULL) {
        log_error("id=%s event=queue_tombstone_lost segment=%s error=\"%s\" "
                  "effect=\"journal compaction off until the segment is "
                  "removed\"", item->msg.id, seg->name, strerror(errno));
        seg->tombstones_lost = true;
        return;
    }
    stone->id = item->id;
    stone->rcpt_count = (uint32_t)count;
    for (size_t i = 0; i < count; i++) {
        stone->states[i] = (uint8_t)item->msg.rcpts[i].state;
    }
    stone->next = seg->tombstones;
    seg->tombstones = stone;
}

/* queue_compact_rcpt_entries returns the entries one recipient needs. */
static size_t queue_compact_rcpt_entries(const struct queue_rcpt *rcpt)
{
    if (rcpt->state != QUEUE_RCPT_QUEUED) {
        return 1;
    }
    return (rcpt->attempts > 0 ? 1u : 0u) + (rcpt->held ? 1u : 0u);
}

size_t queue_compact_needed(const struct queue *queue)
{
    size_t needed = 0;

    for (const struct queue_item *item = queue->items; item != NULL;
         item = item->next) {
        for (size_t i = 0; i < item->msg.rcpt_count; i++) {
            needed += queue_compact_rcpt_entries(&item->msg.rcpts[i]);
        }
    }
    for (const struct queue_segment *seg = queue->segments; seg != NULL;
         seg = seg->next) {
        for (const struct queue_tombstone *t = seg->tombstones; t != NULL;
             t = t->next) {
            needed += t->rcpt_count;
        }
    }
    return needed + queue->orphan_count;
}

static int queue_compact_flush(struct queue_compact_out *out)
{
    size_t done = 0;

    while (done < out->used) {
        ssize_t n = pwrite(out->fd, out->buf + done, out->used - done,
                           (off_t)(out->offset + done));

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            if (n == 0) {
                errno = EIO;
            }
            return -1;
        }
        done += (size_t)n;
    }
    out->offset += out->used;
    out->used = 0;
    return 0;
}

static int queue_compact_put(struct queue_compact_out *out, uint64_t id,
                             size_t rcpt, uint16_t state, uint32_t attempts,
                             int64_t time)
{
    struct queue_journal_entry entry = {
        .id = id,
        .rcpt = (uint32_t)rcpt,
        .state = state,
        .attempts = attempts > UINT16_MAX ? UINT16_MAX : (uint16_t)attempts,
        .time = time,
    };

    if (out->used == sizeof(out->buf) && queue_compact_flush(out) != 0) {
        return -1;
    }
    queue_journal_entry_encode(out->buf + out->used, &entry);
    out->used += QUEUE_JOURNAL_ENTRY_LEN;
    return 0;
}

/* queue_compact_put_item writes the entries of one message in memory. The
 * DEFERRED entry comes before HELD so replay ends with the hold set. */
static int queue_compact_put_item(struct queue_compact_out *out,
                                  const struct queue_item *item)
{
    for (size_t i = 0; i < item->msg.rcpt_count; i++) {
        const struct queue_rcpt *rcpt = &item->msg.rcpts[i];
        int rc = 0;

        if (rcpt->state != QUEUE_RCPT_QUEUED) {
            rc = queue_compact_put(out, item->id, i, (uint16_t)rcpt->state,
                                   rcpt->attempts, out->now);
        } else if (rcpt->attempts > 0) {
            rc = queue_compact_put(out, item->id, i, QUEUE_JOURNAL_DEFERRED,
                                   rcpt->attempts,
                                   (int64_t)rcpt->next_attempt);
        }
        if (rc == 0 && rcpt->state == QUEUE_RCPT_QUEUED && rcpt->held) {
            rc = queue_compact_put(out, item->id, i, QUEUE_JOURNAL_HELD,
                                   rcpt->attempts, out->now);
        }
        if (rc != 0) {
            return -1;
        }
    }
    return 0;
}

static int queue_compact_write_all(struct queue *queue,
                                   struct queue_compact_out *out)
{
    for (const struct queue_item *item = queue->items; item != NULL;
         item = item->next) {
        if (queue_compact_put_item(out, item) != 0) {
            return -1;
        }
    }
    for (const struct queue_segment *seg = queue->segments; seg != NULL;
         seg = seg->next) {
        for (const struct queue_tombstone *t = seg->tombstones; t != NULL;
             t = t->next) {
            for (uint32_t i = 0; i < t->rcpt_count; i++) {
                if (queue_compact_put(out, t->id, i, t->states[i], 0,
                                      out->now) != 0) {
                    return -1;
                }
            }
        }
    }
    for (size_t i = 0; i < queue->orphan_count; i++) {
        const struct queue_journal_entry *e = &queue->orphans[i];

        if (queue_compact_put(out, e->id, e->rcpt, e->state, e->attempts,
                              e->time) != 0) {
            return -1;
        }
    }
    return queue_compact_flush(out);
}

static bool queue_compact_possible(const struct queue *queue)
{
    for (const struct queue_segment *seg = queue->segments; seg != NULL;
         seg = seg->next) {
        if (seg->tombstones_lost) {
            return false;
        }
    }
    return !queue->read_only && !queue->orphans_lost;
}

/* queue_compact_write creates journal.new with the needed entries, syncs
 * it and locks it. Returns the new descriptor, or -1 after removing the
 * file. */
static int queue_compact_write(struct queue *queue, uint64_t *size)
{
    struct queue_compact_out *out = calloc(1, sizeof(*out));
    const char *step = "open";
    int fd = -1;

    if (out == NULL) {
        log_error("event=queue_journal_compact_failed step=alloc "
                  "error=\"%s\"", strerror(errno));
        return -1;
    }
    fd = openat(queue->dir_fd, QUEUE_JOURNAL_NEW_NAME,
                O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        goto fail;
    }
    out->fd = fd;
    out->now = (int64_t)time(NULL);

    step = "write";
    if (queue_compact_write_all(queue, out) != 0) {
        goto fail;
    }
    step = "sync";
    if (fdatasync(fd) != 0) {
        goto fail;
    }

    /* Nothing else opens journal.new, so the lock is free. It is taken
     * before the rename so "journal" is never an unlocked file. */
    step = "lock";
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        goto fail;
    }
    *size = out->offset;
    free(out);
    return fd;

fail:
    log_error("event=queue_journal_compact_failed step=%s file=%s "
              "error=\"%s\"", step, QUEUE_JOURNAL_NEW_NAME, strerror(errno));
    if (fd >= 0) {
        close(fd);
        if (unlinkat(queue->dir_fd, QUEUE_JOURNAL_NEW_NAME, 0) != 0) {
            log_error("event=queue_journal_unlink_failed file=%s "
                      "error=\"%s\"", QUEUE_JOURNAL_NEW_NAME,
                      strerror(errno));
        }
    }
    free(out);
    return -1;
}

/* queue_compact_switch makes fd, already renamed over the journal, the
 * journal in use. The old descriptor's lock is on an unlinked file now,
 * so closing it frees no lock that another process could take. */
static void queue_compact_switch(struct queue *queue, int fd, uint64_t size)
{
    queue_journal_close(&queue->journal);
    queue->journal.fd = fd;
    queue->journal.tail = size;
    queue->journal.dirty = false;
}

int queue_compact(struct queue *queue)
{
    uint64_t before = queue->journal.tail / QUEUE_JOURNAL_ENTRY_LEN;
    uint64_t size = 0;
    int fd;

    if (!queue_compact_possible(queue)) {
        log_warning("event=queue_journal_compact_failed step=check "
                    "reason=\"%s\"", queue->read_only ? "read-only queue" :
                    "finished or orphan journal states were lost");
        errno = queue->read_only ? EROFS : ENOMEM;
        return -1;
    }
    if (fsync(queue->dir_fd) != 0) {
        log_error("event=queue_sync_failed file=%s error=\"%s\"", queue->dir,
                  strerror(errno));
        return -1;
    }

    fd = queue_compact_write(queue, &size);
    if (fd < 0) {
        return -1;
    }
    if (renameat(queue->dir_fd, QUEUE_JOURNAL_NEW_NAME, queue->dir_fd,
                 QUEUE_JOURNAL_NAME) != 0) {
        log_error("event=queue_journal_compact_failed step=rename "
                  "error=\"%s\"", strerror(errno));
        close(fd);
        if (unlinkat(queue->dir_fd, QUEUE_JOURNAL_NEW_NAME, 0) != 0) {
            log_error("event=queue_journal_unlink_failed file=%s "
                      "error=\"%s\"", QUEUE_JOURNAL_NEW_NAME,
                      strerror(errno));
        }
        return -1;
    }

    /* From here "journal" names the new file, so it is the one to append
     * to even when the directory sync fails. */
    queue_compact_switch(queue, fd, size);
    if (fsync(queue->dir_fd) != 0) {
        log_error("event=queue_sync_failed file=%s error=\"%s\" "
                  "effect=\"a crash may bring back the old journal\"",
                  queue->dir, strerror(errno));
        return -1;
    }
    log_info("event=queue_journal_compacted entries_before=%" PRIu64
             " entries_after=%" PRIu64, before,
             size / QUEUE_JOURNAL_ENTRY_LEN);
    return 0;
}

void queue_compact_maybe(struct queue *queue)
{
    uint64_t tail = queue->journal.tail;
    uint64_t needed_bytes;

    if (queue->read_only || queue->syncs_in_flight > 0 ||
        tail < QUEUE_COMPACT_MIN_BYTES || tail < queue->compact_check_at) {
        return;
    }

    needed_bytes = (uint64_t)queue_compact_needed(queue) *
                   QUEUE_JOURNAL_ENTRY_LEN;
    /* A failed compaction was logged and left the old journal in use,
     * which stays correct, only long. */
    if (tail > QUEUE_COMPACT_RATIO * needed_bytes &&
        queue_compact(queue) != 0) {
        log_warning("event=queue_journal_compact_skipped dir=%s "
                    "entries=%" PRIu64, queue->dir,
                    tail / QUEUE_JOURNAL_ENTRY_LEN);
    }

    /* Counting the needed entries walks every message, so the next check
     * waits until the journal doubles, which keeps the cost per entry
     * constant. */
    queue->compact_check_at = 2 * queue->journal.tail;
}

int queue_compact_remove_leftover(struct queue *queue)
{
    if (unlinkat(queue->dir_fd, QUEUE_JOURNAL_NEW_NAME, 0) == 0) {
        log_warning("event=queue_journal_leftover_removed file=%s "
                    "reason=\"compaction interrupted before its rename\"",
                    QUEUE_JOURNAL_NEW_NAME);
        return 0;
    }
    if (errno == ENOENT) {
        return 0;
    }
    log_error("event=queue_journal_unlink_failed file=%s error=\"%s\"",
              QUEUE_JOURNAL_NEW_NAME, strerror(errno));
    return -1;
}
