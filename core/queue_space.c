/* Queue space limits: the size limit on the records in the queue and
 * the floor of free space on its file system.
 *
 * The size counts whole regions, header and unused reserved tail
 * included, of the messages in memory and of the writers. A record that
 * moved to another segment (queue_move.c) is counted in its new region
 * only. The size leaves out abandoned regions, the unreserved rest of
 * preallocated segments and finished records in segments still in use.
 * So the disk has up to one segment more than it, plus the inactive
 * segments that are at least 1/QUEUE_MOVE_SPARSE_DIVISOR live or wait
 * for their move. */
#include "core/queue.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/statvfs.h>

#include "core/log.h"
#include "core/queue_internal.h"

/* The cached free space is at most this old when MAIL is checked. */
#define QUEUE_SPACE_RECHECK_MS 1000u

/* Room that a MAIL without SIZE= needs in the active segment to count on
 * it rather than on a new segment, capped at a segment's capacity. With
 * less, and no room for a new segment, MAIL gets 452 instead of DATA.
 * NOTE: a larger message still gets its 452 at the end of DATA. */
#define QUEUE_SPACE_UNSIZED_ROOM (256u * 1024)

/* queue_space_read_free stores the bytes free for unprivileged users.
 * Returns 0, or -1 (logged) when statvfs fails. */
static int queue_space_read_free(struct queue *queue, uint64_t *free_bytes)
{
    struct statvfs info;

    if (fstatvfs(queue->dir_fd, &info) != 0) {
        log_error("event=queue_statvfs_failed dir=%s error=\"%s\"",
                  queue->dir, strerror(errno));
        return -1;
    }
    *free_bytes = (uint64_t)info.f_bavail * (uint64_t)info.f_frsize;
    return 0;
}

/* queue_space_free_low returns true when the last known free space is
 * below the floor. A failed statvfs keeps the previous result, so an
 * unreadable file system neither blocks nor frees mail by itself. */
static bool queue_space_free_low(struct queue *queue)
{
    uint64_t now = queue->reactor != NULL ? reactor_now_ms(queue->reactor)
                                          : 0;
    uint64_t free_bytes;

    if (queue->min_free == 0) {
        return false;
    }
    if (!queue->free_known ||
        now - queue->free_checked_ms >= QUEUE_SPACE_RECHECK_MS) {
        queue->free_checked_ms = now;
        if (queue_space_read_free(queue, &free_bytes) == 0) {
            queue->free_bytes = free_bytes;
            queue->free_known = true;
        }
    }
    return queue->free_known && queue->free_bytes < queue->min_free;
}

/* queue_space_segment_needed returns the size of the segment file that a
 * region of len bytes would make the writer create, or 0 when it fits in
 * the active segment. Mirrors queue_reserve(). */
static uint64_t queue_space_segment_needed(const struct queue *queue,
                                           uint64_t len)
{
    uint64_t capacity = queue->segment_size - QUEUE_SEGMENT_HEADER_LEN;
    const struct queue_segment *active = queue->active;

    if (len > capacity) {
        return queue_align_up(QUEUE_SEGMENT_HEADER_LEN + len, 4096);
    }
    if (active == NULL || active->size - active->tail < len) {
        return queue->segment_size;
    }
    return 0;
}

const char *queue_space_shortage(struct queue *queue, uint64_t size_hint)
{
    /* The smallest record a writer reserves: without room for it, DATA
     * would fail anyway. The envelope is not known yet and is left out. */
    uint64_t body = size_hint > QUEUE_MIN_BODY_RESERVE ?
                    size_hint : QUEUE_MIN_BODY_RESERVE;
    uint64_t len = queue_align_up(QUEUE_REGION_HEADER_LEN + body,
                                  QUEUE_REGION_ALIGN);
    uint64_t capacity = queue->segment_size - QUEUE_SEGMENT_HEADER_LEN;
    uint64_t room = len;
    uint64_t segment;

    if (queue->max_size != 0 && queue_space_reserve_check(queue, len) != 0) {
        return "queue_max_size";
    }
    if (queue_space_free_low(queue)) {
        return "queue_min_free";
    }

    /* A new segment is preallocated whole, so it needs its size free on
     * top of the floor; queue_space_segment_check() would refuse it. */
    if (size_hint == 0 && room < QUEUE_SPACE_UNSIZED_ROOM) {
        room = QUEUE_SPACE_UNSIZED_ROOM < capacity ? QUEUE_SPACE_UNSIZED_ROOM
                                                   : capacity;
    }
    segment = queue_space_segment_needed(queue, room);
    if (segment > 0 && queue->min_free != 0 && queue->free_known &&
        (queue->free_bytes < segment ||
         queue->free_bytes - segment < queue->min_free)) {
        return "queue_min_free";
    }
    return NULL;
}

int queue_space_reserve_check(struct queue *queue, uint64_t len)
{
    if (queue->max_size != 0 && (len > queue->max_size ||
                                 queue->space_used > queue->max_size - len)) {
        errno = EDQUOT;
        return -1;
    }
    return 0;
}

int queue_space_segment_check(struct queue *queue, uint64_t size)
{
    uint64_t free_bytes;

    if (queue->min_free == 0) {
        return 0;
    }
    if (queue_space_read_free(queue, &free_bytes) != 0) {
        return 0;
    }
    queue->free_bytes = free_bytes;
    queue->free_known = true;
    queue->free_checked_ms = queue->reactor != NULL
                                 ? reactor_now_ms(queue->reactor)
                                 : 0;
    if (free_bytes < size || free_bytes - size < queue->min_free) {
        log_warning("event=queue_segment_refused dir=%s size=%" PRIu64
                    " free=%" PRIu64 " min_free=%" PRIu64, queue->dir, size,
                    free_bytes, queue->min_free);
        errno = ENOSPC;
        return -1;
    }
    return 0;
}
