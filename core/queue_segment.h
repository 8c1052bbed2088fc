/* Queue segment files: creation, mapping and the bookkeeping of reserved
 * space. The record layout inside a segment is in core/queue_record.h.
 *
 * Space is handed out from the tail only and never reused inside a
 * segment, except that the last region may grow or give back bytes that
 * were never written. */
#ifndef RINGRELAY_CORE_QUEUE_SEGMENT_H
#define RINGRELAY_CORE_QUEUE_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QUEUE_SEGMENT_NAME_MAX 32

/* queue_tombstone: the final recipient states of a finished message whose
 * record is still in a segment file, kept so journal compaction can write
 * them again (core/queue_compact.c). */
struct queue_tombstone {
    struct queue_tombstone *next;
    uint64_t id;
    uint32_t rcpt_count;
    uint8_t states[];            /* enum queue_rcpt_state per recipient */
};

struct queue_segment {
    struct queue_segment *next;  /* the queue's list, ascending number */
    char name[QUEUE_SEGMENT_NAME_MAX]; /* "seg-NNNNNNNN" */
    uint64_t number;
    int fd;
    uint8_t *map;                /* MAP_SHARED mapping of the whole file */
    uint64_t size;               /* file and mapping size, bytes */
    uint64_t nonce;              /* from the segment header */
    uint64_t tail;               /* offset of the first unreserved byte */
    uint64_t last_region;        /* offset of the last region; 0 if none */
    size_t live;                 /* messages in memory pointing into map */
    uint64_t live_bytes;         /* region bytes of those messages */
    uint64_t retired_ms;         /* reactor clock when queue_move first
                                  * saw the segment inactive; 0 before */
    size_t writers;              /* writers holding a region here */
    bool active;                 /* takes new reservations */
    bool dirty;                  /* committed records not yet synced */
    bool syncing;                /* an fsync of fd is in flight */
    bool read_only;              /* opened O_RDONLY, mapped PROT_READ */
    struct queue_tombstone *tombstones; /* finished messages in the file */
    bool tombstones_lost;        /* a tombstone could not be allocated */
    bool truncated;              /* file shorter than header_size */
    uint64_t header_size;        /* size the segment header records */
    const char *quarantine;      /* why the file goes to corrupt/ instead
                                  * of being removed; NULL if it does not */
};

/* queue_segment_name formats the file name of segment number. */
void queue_segment_name(char *buf, size_t size, uint64_t number);

/* queue_segment_parse_name returns true when name is a segment file name
 * and stores its number. */
bool queue_segment_parse_name(const char *name, uint64_t *number);

/* queue_segment_create creates, preallocates and maps a new segment file
 * of size bytes in dir_fd and writes its header. Fails with ENOSPC when the
 * file system has no room; a partly created file is removed. */
int queue_segment_create(struct queue_segment **out, int dir_fd,
                         uint64_t number, uint64_t size);

/* queue_segment_open maps an existing segment and checks its header,
 * read-only (O_RDONLY, PROT_READ) when read_only is set.
 * Fails with ENODATA when every byte of the file is zero, length 0
 * included, because its creation was interrupted. Fails with EBADMSG
 * when the file is shorter than a header, or its header is all zero,
 * invalid, does not match the file name, or records a smaller size than
 * the file's. *problem then names the check that failed. A file
 * shorter than the recorded size opens with seg->truncated set. tail is
 * set to the end of the header; the caller scans the regions. */
int queue_segment_open(struct queue_segment **out, int dir_fd,
                       const char *name, uint64_t number, bool read_only,
                       const char **problem);

/* queue_segment_free unmaps, closes and frees the tombstones; NULL is
 * accepted. The file stays. */
void queue_segment_free(struct queue_segment *seg);

/* queue_segment_unlink removes the segment's file from dir_fd; the mapping
 * stays valid until queue_segment_free(). */
int queue_segment_unlink(struct queue_segment *seg, int dir_fd);

/* queue_segment_reserve takes len bytes at the tail. Returns false when
 * they do not fit. */
bool queue_segment_reserve(struct queue_segment *seg, uint64_t len,
                           uint64_t *offset);

/* queue_segment_resize sets the length of the region at offset to len,
 * which is allowed only while it is the last region and len fits in the
 * file. Returns false otherwise. */
bool queue_segment_resize(struct queue_segment *seg, uint64_t offset,
                          uint64_t len);

#endif
