/* Queue writers: one record being written into a reserved region.
 *
 * A writer owns a contiguous region of a segment. The region header is
 * written at reservation, the envelope right after it, and body bytes are
 * appended in place. A body that outgrows its region extends it in place
 * while it is the last region of its segment, and otherwise moves to a
 * region twice as large, leaving the old one flagged abandoned. */
#include "core/queue.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/crc32c.h"
#include "core/log.h"
#include "core/queue_internal.h"

struct queue_writer {
    struct queue *queue;
    struct queue_segment *seg;         /* segment of the region */
    uint64_t offset;                   /* region offset in seg */
    struct queue_region_header header; /* as written to the mapping */
    uint32_t crc;                      /* CRC32C of envelope and body */
    char id[QUEUE_ID_LEN + 1];
};

static uint64_t queue_writer_used(const struct queue_writer *writer)
{
    return QUEUE_REGION_HEADER_LEN + writer->header.envelope_len +
           writer->header.body_len;
}

static void queue_writer_write_header(struct queue_writer *writer)
{
    queue_region_header_encode(writer->seg->map + writer->offset,
                               &writer->header);
}

static int queue_new_segment(struct queue *queue, uint64_t size,
                             struct queue_segment **out)
{
    if (queue_space_segment_check(queue, size) != 0) {
        return -1;
    }
    if (queue_segment_create(out, queue->dir_fd, queue->next_segment,
                             size) != 0) {
        return -1;
    }
    queue->next_segment++;
    queue_segment_add(queue, *out);

    /* The new file's directory entry must be durable before any record
     * in it is acknowledged. */
    queue->dir_dirty = true;
    return 0;
}

/* queue_replace_active starts a new active segment and retires the old
 * one, which stays while messages or writers use it. */
static int queue_replace_active(struct queue *queue)
{
    struct queue_segment *old = queue->active;
    struct queue_segment *seg;

    if (queue_new_segment(queue, queue->segment_size, &seg) != 0) {
        return -1;
    }
    seg->active = true;
    queue->active = seg;

    if (old != NULL) {
        old->active = false;
        queue_segment_reclaim(queue, old);
    }
    return 0;
}

/* queue_reserve takes len bytes (a multiple of QUEUE_REGION_ALIGN) at the
 * tail of the active segment, of a new active segment, or of a segment of
 * its own when len exceeds a regular segment. */
int queue_reserve(struct queue *queue, uint64_t len,
                  struct queue_segment **seg_out, uint64_t *offset)
{
    uint64_t capacity = queue->segment_size - QUEUE_SEGMENT_HEADER_LEN;
    struct queue_segment *seg;

    if (queue_space_reserve_check(queue, len) != 0) {
        return -1;
    }
    if (len > capacity) {
        uint64_t size = queue_align_up(QUEUE_SEGMENT_HEADER_LEN + len, 4096);

        if (queue_new_segment(queue, size, &seg) != 0) {
            return -1;
        }
    } else {
        if (queue->active == NULL ||
            queue->active->size - queue->active->tail < len) {
            if (queue_replace_active(queue) != 0) {
                return -1;
            }
        }
        seg = queue->active;
    }

    if (!queue_segment_reserve(seg, len, offset)) {
        errno = ENOSPC;
        return -1;
    }
    seg->writers++;
    queue->space_used += len;
    *seg_out = seg;
    return 0;
}

/* queue_writer_leave flags the writer's region abandoned, gives back the
 * bytes never written when it is the last region, and lets the segment go
 * when nothing else uses it. */
static void queue_writer_leave(struct queue_writer *writer)
{
    struct queue_segment *seg = writer->seg;
    uint64_t used = queue_align_up(queue_writer_used(writer),
                                   QUEUE_REGION_ALIGN);

    writer->queue->space_used -= writer->header.region_len;
    writer->header.flags |= QUEUE_REGION_ABANDONED;
    if (queue_segment_resize(seg, writer->offset, used)) {
        writer->header.region_len = used;
    }
    queue_writer_write_header(writer);

    seg->writers--;
    queue_segment_reclaim(writer->queue, seg);
    writer->seg = NULL;
}

/* queue_writer_log_failure logs a reservation that failed with errno
 * set. A full queue is a warning: queue_max_size at work (EDQUOT), or no
 * room for a new segment (ENOSPC), whose cause the segment check or the
 * segment creation logged already. Anything else is an error. errno is
 * kept. */
static void queue_writer_log_failure(const struct queue_writer *writer,
                                     const char *event)
{
    int saved = errno;

    if (saved == EDQUOT || saved == ENOSPC) {
        log_warning("id=%s event=%s region_size=%" PRIu64 " body_size=%"
                    PRIu64 " reason=%s", writer->id, event,
                    writer->header.region_len, writer->header.body_len,
                    saved == EDQUOT ? "queue_max_size" : "no_space");
    } else {
        log_error("id=%s event=%s region_size=%" PRIu64 " body_size=%"
                  PRIu64 " error=\"%s\"", writer->id, event,
                  writer->header.region_len, writer->header.body_len,
                  strerror(saved));
    }
    errno = saved;
}

int queue_writer_begin(struct queue *queue, struct queue_writer **out,
                       const struct queue_envelope *env, uint64_t size_hint)
{
    uint64_t capacity = queue->segment_size - QUEUE_SEGMENT_HEADER_LEN;
    size_t envelope_len = queue_envelope_encoded_len(env);
    uint64_t reserve = size_hint;
    struct queue_writer *writer;
    uint8_t *envelope;

    queue->failed_id[0] = '\0';
    if (queue->read_only) {
        errno = EROFS;
        return -1;
    }
    if (envelope_len == 0 || envelope_len > UINT32_MAX) {
        log_error("event=queue_envelope_invalid rcpts=%zu", env->rcpt_count);
        errno = EINVAL;
        return -1;
    }

    /* The hint only sizes the first reservation; a larger body moves. */
    if (reserve > capacity) {
        reserve = capacity;
    }
    if (reserve < QUEUE_MIN_BODY_RESERVE) {
        reserve = QUEUE_MIN_BODY_RESERVE;
    }

    writer = calloc(1, sizeof(*writer));
    if (writer == NULL) {
        log_error("event=queue_writer_alloc_failed error=\"%s\"",
                  strerror(errno));
        return -1;
    }
    writer->queue = queue;
    writer->header.id = queue_next_id(queue);
    queue_format_id(writer->id, writer->header.id);
    writer->header.region_len = queue_align_up(
        QUEUE_REGION_HEADER_LEN + envelope_len + reserve, QUEUE_REGION_ALIGN);

    if (queue_reserve(queue, writer->header.region_len, &writer->seg,
                      &writer->offset) != 0) {
        queue_writer_log_failure(writer, "queue_reserve_failed");
        memcpy(queue->failed_id, writer->id, sizeof(queue->failed_id));
        free(writer);
        return -1;
    }

    writer->header.nonce = writer->seg->nonce;
    writer->header.arrival = (int64_t)time(NULL);
    writer->header.envelope_len = (uint32_t)envelope_len;
    queue_writer_write_header(writer);

    envelope = writer->seg->map + writer->offset + QUEUE_REGION_HEADER_LEN;
    queue_envelope_encode(envelope, env);
    writer->crc = crc32c_update(0, envelope, envelope_len);

    queue->writers++;
    log_debug("id=%s event=queue_writer_begin segment=%s offset=%" PRIu64,
              writer->id, writer->seg->name, writer->offset);
    *out = writer;
    return 0;
}

const char *queue_writer_id(const struct queue_writer *writer)
{
    return writer->id;
}

const char *queue_failed_writer_id(const struct queue *queue)
{
    return queue->failed_id[0] != '\0' ? queue->failed_id : NULL;
}

/* queue_writer_move copies the record so far into a new region of at
 * least need bytes and twice the old length, then leaves the old
 * region. */
static int queue_writer_move(struct queue_writer *writer, uint64_t need)
{
    uint64_t used = queue_writer_used(writer);
    uint64_t len = writer->header.region_len * 2;
    struct queue_segment *seg;
    uint64_t offset;

    if (len < need) {
        len = need;
    }
    len = queue_align_up(len, QUEUE_REGION_ALIGN);
    if (queue_reserve(writer->queue, len, &seg, &offset) != 0) {
        return -1;
    }

    memcpy(seg->map + offset + QUEUE_REGION_HEADER_LEN,
           writer->seg->map + writer->offset + QUEUE_REGION_HEADER_LEN,
           used - QUEUE_REGION_HEADER_LEN);
    log_debug("id=%s event=queue_record_moved from=%s:%" PRIu64
              " to=%s:%" PRIu64 " size=%" PRIu64, writer->id,
              writer->seg->name, writer->offset, seg->name, offset, len);
    queue_writer_leave(writer);

    writer->seg = seg;
    writer->offset = offset;
    writer->header.flags = 0;
    writer->header.region_len = len;
    writer->header.nonce = seg->nonce;
    queue_writer_write_header(writer);
    return 0;
}

/* queue_writer_grow makes the region at least need bytes long, in place
 * when it is the last region of its segment and the segment has room. */
static int queue_writer_grow(struct queue_writer *writer, uint64_t need)
{
    struct queue_segment *seg = writer->seg;
    uint64_t room = seg->size - writer->offset;
    uint64_t len = writer->header.region_len * 2;

    if (len < need) {
        len = need;
    }
    len = queue_align_up(len, QUEUE_REGION_ALIGN);

    /* Taking the rest of the segment is harmless for the last region:
     * commit gives back what stays unused. */
    if (len > room) {
        len = room;
    }

    if (len >= need) {
        /* Near max_size the region grows only by what this write needs. */
        uint64_t old = writer->header.region_len;

        if (len > need && queue_space_reserve_check(writer->queue,
                                                    len - old) != 0) {
            len = queue_align_up(need, QUEUE_REGION_ALIGN);
        }
        if (queue_space_reserve_check(writer->queue, len - old) != 0) {
            return -1;
        }
    }
    if (len >= need && queue_segment_resize(seg, writer->offset, len)) {
        writer->queue->space_used += len - writer->header.region_len;
        writer->header.region_len = len;
        queue_writer_write_header(writer);
        return 0;
    }
    return queue_writer_move(writer, need);
}

void *queue_writer_prepare(struct queue_writer *writer, size_t min_len,
                           size_t *len)
{
    uint64_t used = queue_writer_used(writer);

    /* A request this large cannot be met; the bound keeps the sums below
     * from overflowing. */
    if (min_len > UINT64_MAX / 4 - used) {
        errno = ENOSPC;
        return NULL;
    }

    if (used + min_len > writer->header.region_len &&
        queue_writer_grow(writer, used + min_len) != 0) {
        queue_writer_log_failure(writer, "queue_writer_grow_failed");
        return NULL;
    }

    *len = (size_t)(writer->header.region_len - used);
    return writer->seg->map + writer->offset + used;
}

int queue_writer_advance(struct queue_writer *writer, size_t len)
{
    uint64_t used = queue_writer_used(writer);

    if (len > writer->header.region_len - used) {
        errno = EINVAL;
        return -1;
    }

    writer->crc = crc32c_update(writer->crc, writer->seg->map +
                                writer->offset + used, len);
    writer->header.body_len += len;
    return 0;
}

int queue_writer_append(struct queue_writer *writer, const void *data,
                        size_t len)
{
    size_t room;
    void *dest;

    if (len == 0) {
        return 0;
    }
    dest = queue_writer_prepare(writer, len, &room);
    if (dest == NULL) {
        return -1;
    }
    memcpy(dest, data, len);
    return queue_writer_advance(writer, len);
}

/* queue_writer_seal gives back the unused tail when the region is still
 * the last one and fills in lengths, flags and CRC, without writing the
 * header to the mapping yet. */
static void queue_writer_seal(struct queue_writer *writer)
{
    uint64_t used = queue_writer_used(writer);
    uint64_t len = queue_align_up(used, QUEUE_REGION_ALIGN);

    if (queue_segment_resize(writer->seg, writer->offset, len)) {
        writer->queue->space_used -= writer->header.region_len - len;
        writer->header.region_len = len;
    }
    writer->header.flags = QUEUE_REGION_COMMITTED;
    writer->header.record_len = used;
    writer->header.crc = queue_region_crc_finish(writer->crc,
                                                 &writer->header);
}

int queue_writer_commit(struct queue_writer *writer, queue_commit_fn done,
                        void *arg)
{
    struct queue *queue = writer->queue;
    struct queue_segment *seg = writer->seg;
    struct queue_commit *commit = calloc(1, sizeof(*commit));
    struct queue_item *item = NULL;

    queue_writer_seal(writer);

    /* The item counts the region from here on, or the abort below does
     * not count it twice. */
    queue->space_used -= writer->header.region_len;
    if (commit != NULL) {
        item = queue_item_new(queue, seg, writer->offset, &writer->header);
    }
    if (item == NULL) {
        queue->space_used += writer->header.region_len;
    }
    if (item == NULL) {
        int saved = errno;

        log_error("id=%s event=queue_commit_failed error=\"%s\"", writer->id,
                  strerror(saved));
        free(commit);
        writer->header.flags = 0;
        queue_writer_abort(writer);
        errno = saved;
        return -1;
    }

    /* The header goes into the mapping only now, so a record whose
     * commit failed above never looks committed on disk. */
    queue_writer_write_header(writer);
    seg->writers--;
    seg->dirty = true;
    queue->writers--;

    commit->item = item;
    commit->done = done;
    commit->arg = arg;
    *queue->pending_tail = commit;
    queue->pending_tail = &commit->next;
    queue->pending_count++;
    queue_schedule_sync(queue);

    log_debug("id=%s event=queue_writer_commit size=%" PRIu64 " rcpts=%zu",
              writer->id, writer->header.body_len, item->msg.rcpt_count);
    free(writer);
    return 0;
}

void queue_writer_abort(struct queue_writer *writer)
{
    if (writer == NULL) {
        return;
    }

    log_debug("id=%s event=queue_writer_abort size=%" PRIu64, writer->id,
              writer->header.body_len);
    writer->queue->writers--;
    queue_writer_leave(writer);
    free(writer);
}
