/* Queue start-up recovery: scan every segment region by region, rebuild
 * the messages, apply the journal and remove segments with nothing left
 * to deliver. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "core/log.h"
#include "core/queue_internal.h"

/* Scratch state of one recovery. */
struct queue_recovery {
    struct queue *queue;
    struct queue_recovery_stats *stats;
    struct queue_item **index;   /* every item, ascending id */
    size_t count;
    size_t unknown;              /* journal entries for unknown ids */
};

static int queue_compare_numbers(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

/* queue_list_segments returns the numbers of the segment files in the
 * queue directory, ascending, in a malloc'd array. */
static int queue_list_segments(struct queue *queue, uint64_t **out,
                               size_t *count)
{
    DIR *dir = opendir(queue->dir);
    uint64_t *numbers = NULL;
    size_t capacity = 0;
    struct dirent *entry;
    uint64_t number;

    *count = 0;
    if (dir == NULL) {
        log_error("event=queue_dir_read_failed dir=%s error=\"%s\"", queue->dir,
                  strerror(errno));
        return -1;
    }

    while ((entry = readdir(dir)) != NULL) {
        if (!queue_segment_parse_name(entry->d_name, &number)) {
            continue;
        }
        if (*count == capacity) {
            size_t grown = capacity == 0 ? 16 : capacity * 2;
            uint64_t *bigger = realloc(numbers, grown * sizeof(*numbers));

            if (bigger == NULL) {
                free(numbers);
                closedir(dir);
                return -1;
            }
            numbers = bigger;
            capacity = grown;
        }
        numbers[(*count)++] = number;
    }
    closedir(dir);

    if (*count > 0) {
        qsort(numbers, *count, sizeof(*numbers), queue_compare_numbers);
    }
    *out = numbers;
    return 0;
}

/* queue_check_record returns why a committed region cannot be delivered,
 * or NULL when its lengths and CRC are valid. */
static const char *queue_check_record(const struct queue_segment *seg,
                                      uint64_t offset,
                                      const struct queue_region_header *h)
{
    const uint8_t *payload = seg->map + offset + QUEUE_REGION_HEADER_LEN;
    uint32_t crc;

    if (h->body_len > h->region_len || h->record_len > h->region_len ||
        h->record_len != QUEUE_REGION_HEADER_LEN + h->envelope_len +
                         h->body_len) {
        return "invalid_length";
    }

    crc = crc32c_update(0, payload, h->envelope_len + h->body_len);
    if (queue_region_crc_finish(crc, h) != h->crc) {
        return "checksum_mismatch";
    }
    return NULL;
}

/* queue_recover_region turns one region into a message, or counts it as
 * abandoned or dropped. Fails only when memory runs out. */
static int queue_recover_region(struct queue *queue, struct queue_segment *seg,
                                uint64_t offset,
                                const struct queue_region_header *header,
                                struct queue_recovery_stats *stats)
{
    struct queue_item *item = NULL;
    const char *reason = NULL;
    char id[QUEUE_ID_LEN + 1];

    queue_format_id(id, header->id);
    if (header->id > queue->last_id) {
        queue->last_id = header->id;
    }
    if ((header->flags & QUEUE_REGION_ABANDONED) != 0) {
        stats->abandoned++;
        return 0;
    }

    if ((header->flags & QUEUE_REGION_COMMITTED) == 0) {
        reason = "uncommitted";
    } else {
        reason = queue_check_record(seg, offset, header);
    }
    if (reason == NULL) {
        item = queue_item_new(queue, seg, offset, header);
    }
    if (item != NULL) {
        item->durable = true;
    } else if (reason == NULL) {
        if (errno != EBADMSG) {
            log_error("id=%s event=queue_recover_failed error=\"%s\"", id,
                      strerror(errno));
            return -1;
        }
        reason = "invalid_envelope";
    }

    if (reason != NULL) {
        log_warning("id=%s event=queue_record_dropped segment=%s offset=%"
                    PRIu64 " reason=%s", id, seg->name, offset, reason);
        stats->dropped++;
    }

    /* An uncommitted region is a write that a crash cut short, not
     * damage, so only the other reasons keep the file for an operator. */
    if (reason != NULL && strcmp(reason, "uncommitted") != 0) {
        seg->quarantine = "record_dropped";
    }
    return 0;
}

/* queue_scan_segment walks the regions of seg until the first offset
 * without a valid region header, which ends the segment's data. */
static int queue_scan_segment(struct queue *queue, struct queue_segment *seg,
                              struct queue_recovery_stats *stats)
{
    uint64_t offset = QUEUE_SEGMENT_HEADER_LEN;
    struct queue_region_header header;

    while (seg->size - offset >= QUEUE_REGION_HEADER_LEN) {
        if (queue_region_header_decode(seg->map + offset, &header) != 0 ||
            header.nonce != seg->nonce) {
            break;
        }
        if (header.region_len < QUEUE_REGION_HEADER_LEN ||
            header.region_len % QUEUE_REGION_ALIGN != 0 ||
            header.region_len > seg->size - offset) {
            log_warning("event=queue_region_invalid segment=%s offset=%"
                        PRIu64 " region_size=%" PRIu64
                        " action=ignore_rest_of_segment", seg->name, offset,
                        header.region_len);
            stats->dropped++;
            seg->quarantine = "region_invalid";
            break;
        }

        if (queue_recover_region(queue, seg, offset, &header, stats) != 0) {
            return -1;
        }
        offset += header.region_len;
    }

    /* Appends continue here when this segment becomes the active one
     * again (queue_reuse_last_segment()). */
    seg->tail = offset;
    if (seg->truncated) {
        log_warning("event=queue_segment_truncated segment=%s size=%" PRIu64
                    " header_size=%" PRIu64 " records_end=%" PRIu64
                    " action=recover_records_before_the_cut", seg->name,
                    seg->size, seg->header_size, offset);
        seg->quarantine = "truncated";
    }
    return 0;
}

/* queue_recover_invalid handles a segment whose header failed its
 * check: it stays out of recovery and moves to corrupt/, and journal
 * entries of unknown IDs are kept from now on. */
static void queue_recover_invalid(struct queue *queue, const char *name,
                                  const char *problem)
{
    queue->keep_orphans = true;
    if (queue->read_only) {
        log_error("event=queue_segment_invalid segment=%s reason=%s "
                  "action=skip", name, problem);
        return;
    }
    log_error("event=queue_segment_invalid segment=%s reason=%s "
              "action=quarantine", name, problem);
    if (queue_quarantine_segment(queue, name, problem) != 0) {
        log_error("event=queue_segment_invalid segment=%s reason=%s "
                  "action=skip hint=%s", name, problem,
                  "move_the_file_out_of_the_queue_directory");
    }
}

/* queue_recover_segment opens and scans one segment file. A file of
 * zero bytes only is an interrupted creation without records, so it is
 * removed. A file with an invalid or short header goes to corrupt/. */
static int queue_recover_segment(struct queue *queue, uint64_t number,
                                 struct queue_recovery_stats *stats)
{
    char name[QUEUE_SEGMENT_NAME_MAX];
    struct queue_segment *seg;
    const char *problem = NULL;

    queue_segment_name(name, sizeof(name), number);
    if (queue_segment_open(&seg, queue->dir_fd, name, number,
                           queue->read_only, &problem) != 0) {
        if (errno == ENODATA && queue->read_only) {
            log_warning("event=queue_segment_empty segment=%s reason=%s "
                        "action=skip", name, problem);
            return 0;
        }
        if (errno == ENODATA) {
            log_warning("event=queue_segment_empty segment=%s reason=%s "
                        "action=remove", name, problem);
            if (unlinkat(queue->dir_fd, name, 0) != 0) {
                log_error("event=queue_segment_unlink_failed segment=%s "
                          "error=\"%s\"", name, strerror(errno));
            }
            return 0;
        }
        if (errno == EBADMSG) {
            stats->quarantined++;
            queue_recover_invalid(queue, name, problem);
            return 0;
        }
        return -1;
    }

    queue_segment_add(queue, seg);
    stats->segments++;
    if (queue_scan_segment(queue, seg, stats) != 0) {
        return -1;
    }
    if (seg->quarantine != NULL) {
        queue->keep_orphans = true;
    }
    return 0;
}

/* queue_compare_items orders by ID, then by position in the files. */
static int queue_compare_items(const void *a, const void *b)
{
    const struct queue_item *x = *(const struct queue_item *const *)a;
    const struct queue_item *y = *(const struct queue_item *const *)b;

    if (x->id != y->id) {
        return (x->id > y->id) - (x->id < y->id);
    }
    if (x->seg->number != y->seg->number) {
        return (x->seg->number > y->seg->number) -
               (x->seg->number < y->seg->number);
    }
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static int queue_compare_key(const void *key, const void *element)
{
    uint64_t id = *(const uint64_t *)key;
    const struct queue_item *item = *(const struct queue_item *const *)element;

    return (id > item->id) - (id < item->id);
}

/* queue_build_index sorts the recovered items by ID into rec->index and
 * relinks queue->items in that order. Of two records with one ID, which
 * a crash during a segment move leaves (core/queue_move.c), the first in
 * file order is kept, and the other is flagged abandoned. */
static int queue_build_index(struct queue_recovery *rec)
{
    struct queue *queue = rec->queue;
    size_t total = 0;
    size_t kept = 0;

    for (struct queue_item *item = queue->items; item != NULL;
         item = item->next) {
        total++;
    }
    rec->index = malloc((total > 0 ? total : 1) * sizeof(*rec->index));
    if (rec->index == NULL) {
        return -1;
    }
    for (struct queue_item *item = queue->items; item != NULL;
         item = item->next) {
        rec->index[rec->count++] = item;
    }
    qsort(rec->index, rec->count, sizeof(*rec->index), queue_compare_items);

    queue->items = NULL;
    queue->items_tail = NULL;
    queue->item_count = 0;
    for (size_t i = 0; i < rec->count; i++) {
        struct queue_item *item = rec->index[i];

        if (kept > 0 && rec->index[kept - 1]->id == item->id) {
            log_warning("id=%s event=queue_record_dropped segment=%s "
                        "offset=%" PRIu64 " reason=duplicate_id",
                        item->msg.id, item->seg->name, item->offset);
            rec->stats->dropped++;
            if (!queue->read_only) {
                queue_move_drop_copy(queue, item->seg, item->offset);
            }
            item->seg->live--;
            item->seg->live_bytes -= item->region_len;
            queue->space_used -= item->region_len;
            free(item);
            continue;
        }
        queue_item_link(queue, item);
        rec->index[kept++] = item;
    }
    rec->count = kept;
    return 0;
}

static bool queue_entry_state_known(uint16_t state)
{
    switch (state) {
    case QUEUE_RCPT_DELIVERED:
    case QUEUE_RCPT_BOUNCED:
    case QUEUE_RCPT_DELETED:
    case QUEUE_JOURNAL_DEFERRED:
    case QUEUE_JOURNAL_HELD:
    case QUEUE_JOURNAL_RELEASED:
        return true;
    default:
        return false;
    }
}

static void queue_apply_entry(void *arg,
                              const struct queue_journal_entry *entry)
{
    struct queue_recovery *rec = arg;
    struct queue_item **found;
    struct queue_item *item;
    struct queue_rcpt *rcpt;

    found = bsearch(&entry->id, rec->index, rec->count, sizeof(*rec->index),
                    queue_compare_key);
    if (found == NULL) {
        rec->unknown++;
        if (rec->queue->keep_orphans) {
            queue_orphan_add(rec->queue, entry);
        }
        return;
    }

    item = *found;
    if (entry->rcpt >= item->msg.rcpt_count ||
        !queue_entry_state_known(entry->state)) {
        log_warning("id=%s event=queue_journal_entry_invalid rcpt=%" PRIu32
                    " state=%u", item->msg.id, entry->rcpt,
                    (unsigned)entry->state);
        return;
    }

    rcpt = &item->msg.rcpts[entry->rcpt];
    if (rcpt->state != QUEUE_RCPT_QUEUED) {
        return;
    }

    /* Entries are in file order, so the last DEFERRED entry sets the
     * schedule and the last HELD or RELEASED entry the hold. Hold entries
     * carry the attempt count too, but 0 in them would decode as 1, so
     * they leave attempts alone. */
    switch (entry->state) {
    case QUEUE_JOURNAL_HELD:
        rcpt->held = true;
        return;
    case QUEUE_JOURNAL_RELEASED:
        rcpt->held = false;
        rcpt->next_attempt = 0;
        return;
    case QUEUE_JOURNAL_DEFERRED:
        rcpt->attempts = entry->attempts;
        rcpt->next_attempt = (time_t)entry->time;
        return;
    default:
        break;
    }
    rcpt->attempts = entry->attempts;
    rcpt->state = entry->state;
    rcpt->held = false;
    item->queued--;
}

static int queue_replay_journal(struct queue_recovery *rec)
{
    struct queue *queue = rec->queue;
    struct queue_journal_stats stats;

    if (queue_journal_replay(&queue->journal, queue_apply_entry, rec,
                             &stats) != 0) {
        return -1;
    }

    /* Entries of removed segments still name IDs; new IDs must not meet
     * them. */
    if (stats.max_id > queue->last_id) {
        queue->last_id = stats.max_id;
    }
    if (stats.corrupt > 0) {
        log_warning("event=queue_journal_corrupt entries=%zu "
                    "action=skipped", stats.corrupt);
    }
    log_info("event=queue_journal_replayed entries=%zu unknown_ids=%zu "
             "torn=%zu", stats.entries, rec->unknown, stats.torn);
    if (queue->keep_orphans && rec->unknown > 0) {
        log_warning("event=queue_journal_orphans_kept entries=%zu "
                    "reason=damaged_segments dir=%s/%s note=%s",
                    queue->orphan_count, queue->dir, QUEUE_CORRUPT_DIR,
                    "kept_until_a_start_finds_no_damaged_segment");
    }
    return 0;
}

/* queue_count_segments counts the segments, only those flagged for
 * corrupt/ when damaged is set. */
static size_t queue_count_segments(const struct queue *queue, bool damaged)
{
    size_t count = 0;

    for (const struct queue_segment *seg = queue->segments; seg != NULL;
         seg = seg->next) {
        count += !damaged || seg->quarantine != NULL;
    }
    return count;
}

static bool queue_no_tombstones(const struct queue *queue)
{
    for (const struct queue_segment *seg = queue->segments; seg != NULL;
         seg = seg->next) {
        if (seg->tombstones != NULL) {
            return false;
        }
    }
    return true;
}

/* queue_release_finished frees messages with no QUEUED recipient, removes
 * segments with no message left, or moves them to corrupt/ when damaged,
 * and empties the journal when no message is left at all. */
static int queue_release_finished(struct queue *queue,
                                  struct queue_recovery_stats *stats)
{
    size_t before = queue_count_segments(queue, false);
    size_t damaged_before = queue_count_segments(queue, true);
    size_t damaged_gone;
    struct queue_segment *seg_next;
    struct queue_item *item_next;

    for (struct queue_item *item = queue->items; item != NULL;
         item = item_next) {
        item_next = item->next;
        if (item->queued == 0) {
            queue_item_unref(queue, item);
        } else {
            stats->messages++;
            stats->recipients += item->queued;
        }
    }
    for (struct queue_segment *seg = queue->segments; seg != NULL;
         seg = seg_next) {
        seg_next = seg->next;
        queue_segment_reclaim(queue, seg);
    }
    damaged_gone = damaged_before - queue_count_segments(queue, true);
    stats->quarantined += damaged_gone;
    stats->removed_segments = before - queue_count_segments(queue, false) -
                              damaged_gone;
    if (queue->read_only) {
        return 0;
    }

    /* The removals must be durable before the journal entries that
     * finished those messages are cut. */
    if (before - queue_count_segments(queue, false) > 0 &&
        fsync(queue->dir_fd) != 0) {
        log_error("event=queue_sync_failed file=%s error=\"%s\"", queue->dir,
                  strerror(errno));
        return -1;
    }
    if (queue->items == NULL && queue_no_tombstones(queue) &&
        queue->orphan_count == 0 && !queue->orphans_lost &&
        queue->journal.tail > 0) {
        return queue_journal_truncate(&queue->journal);
    }
    return 0;
}

/* queue_compact_at_start rewrites the journal when replay read any entry
 * that recovery does not need. */
static int queue_compact_at_start(struct queue *queue)
{
    uint64_t entries = queue->journal.tail / QUEUE_JOURNAL_ENTRY_LEN;

    if (queue->read_only || entries <= queue_compact_needed(queue)) {
        return 0;
    }

    /* A failed compaction leaves the old journal complete and in use, so
     * the queue still opens. */
    if (queue_compact(queue) != 0) {
        log_warning("event=queue_journal_compact_skipped dir=%s "
                    "reason=\"compaction failed\"", queue->dir);
    }
    return 0;
}

/* queue_reuse_last_segment makes the newest recovered segment active
 * again when it has room, so each restart does not start a new file. Its
 * scan ended at the first offset without a valid region header, and the
 * rest of a preallocated file is zero, so appends start there. A damaged
 * or truncated segment, or one of another size, is not reused. */
static void queue_reuse_last_segment(struct queue *queue)
{
    struct queue_segment *last = NULL;
    uint64_t smallest = QUEUE_REGION_HEADER_LEN + QUEUE_MIN_BODY_RESERVE;

    for (struct queue_segment *seg = queue->segments; seg != NULL;
         seg = seg->next) {
        last = seg;
    }
    if (queue->read_only || last == NULL ||
        last->number + 1 != queue->next_segment ||
        last->size != queue->segment_size || last->quarantine != NULL ||
        last->truncated || last->tail > last->size - smallest) {
        return;
    }
    last->active = true;
    queue->active = last;
    log_info("event=queue_segment_reused segment=%s free=%" PRIu64,
             last->name, last->size - last->tail);
}

int queue_recover(struct queue *queue, struct queue_recovery_stats *stats)
{
    struct queue_recovery rec = { .queue = queue, .stats = stats };
    uint64_t *numbers = NULL;
    size_t count = 0;
    int rc = -1;

    if (!queue->read_only && queue_compact_remove_leftover(queue) != 0) {
        return -1;
    }
    if (queue_list_segments(queue, &numbers, &count) != 0) {
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        if (queue_recover_segment(queue, numbers[i], stats) != 0) {
            goto out;
        }
    }
    if (count > 0) {
        queue->next_segment = numbers[count - 1] + 1;
    }
    if (count > 0 && (queue->journal.created ||
                      (queue->read_only && queue->journal.fd < 0))) {
        log_warning("event=queue_journal_missing file=%s/%s segments=%zu "
                    "effect=\"%s\"", queue->dir, QUEUE_JOURNAL_NAME, count,
                    "holds, deletes, deliveries and retry times of the "
                    "stored messages are lost, so they are all delivered "
                    "again");
    }
    if (!queue->keep_orphans && queue_quarantine_present(queue)) {
        queue->keep_orphans = true;
    }

    if (queue_build_index(&rec) != 0 || queue_replay_journal(&rec) != 0 ||
        queue_release_finished(queue, stats) != 0 ||
        queue_compact_at_start(queue) != 0) {
        goto out;
    }
    queue_reuse_last_segment(queue);
    rc = 0;

out:
    free(rec.index);
    free(numbers);
    return rc;
}
