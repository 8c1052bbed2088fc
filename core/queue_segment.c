#include "core/queue_segment.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/queue_record.h"

#define QUEUE_SEGMENT_PREFIX "seg-"

void queue_segment_name(char *buf, size_t size, uint64_t number)
{
    snprintf(buf, size, QUEUE_SEGMENT_PREFIX "%08" PRIu64, number);
}

bool queue_segment_parse_name(const char *name, uint64_t *number)
{
    size_t prefix = strlen(QUEUE_SEGMENT_PREFIX);
    const char *digits = name + prefix;
    size_t count = strspn(digits, "0123456789");
    char canonical[QUEUE_SEGMENT_NAME_MAX];

    if (strncmp(name, QUEUE_SEGMENT_PREFIX, prefix) != 0 || count < 8 ||
        count > 19 || digits[count] != '\0') {
        return false;
    }

    /* Only the canonical spelling counts, so "seg-000000001" (nine
     * digits) is not taken for segment 1. */
    *number = strtoull(digits, NULL, 10);
    queue_segment_name(canonical, sizeof(canonical), *number);
    return strcmp(canonical, name) == 0;
}

static struct queue_segment *queue_segment_alloc(uint64_t number)
{
    struct queue_segment *seg = calloc(1, sizeof(*seg));

    if (seg == NULL) {
        log_error("event=queue_segment_alloc_failed error=\"%s\"",
                  strerror(errno));
        return NULL;
    }
    seg->fd = -1;
    seg->number = number;
    queue_segment_name(seg->name, sizeof(seg->name), number);
    return seg;
}

static int queue_segment_preallocate(struct queue_segment *seg,
                                     uint64_t size)
{
    int err;

    if (fallocate(seg->fd, 0, 0, (off_t)size) == 0) {
        return 0;
    }
    if (errno != EOPNOTSUPP) {
        return -1;
    }

    /* File systems without fallocate(2) (tmpfs before 3.5, some network
     * file systems) still get their blocks from posix_fallocate. */
    err = posix_fallocate(seg->fd, 0, (off_t)size);
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

static int queue_segment_map(struct queue_segment *seg)
{
    int prot = seg->read_only ? PROT_READ : PROT_READ | PROT_WRITE;
    void *map = mmap(NULL, seg->size, prot, MAP_SHARED, seg->fd, 0);

    if (map == MAP_FAILED) {
        log_error("event=queue_segment_map_failed segment=%s size=%" PRIu64
                  " error=\"%s\"", seg->name, seg->size, strerror(errno));
        return -1;
    }
    seg->map = map;
    return 0;
}

static int queue_segment_write_header(struct queue_segment *seg)
{
    struct queue_segment_header header = {
        .number = seg->number,
        .size = seg->size,
    };

    if (getrandom(&header.nonce, sizeof(header.nonce), 0) !=
        (ssize_t)sizeof(header.nonce)) {
        log_error("event=queue_segment_nonce_failed segment=%s error=\"%s\"",
                  seg->name, strerror(errno));
        return -1;
    }

    seg->nonce = header.nonce;
    queue_segment_header_encode(seg->map, &header);
    seg->tail = QUEUE_SEGMENT_HEADER_LEN;
    return 0;
}

int queue_segment_create(struct queue_segment **out, int dir_fd,
                         uint64_t number, uint64_t size)
{
    struct queue_segment *seg = queue_segment_alloc(number);
    bool created = false;
    int saved;

    if (seg == NULL) {
        return -1;
    }
    seg->size = size;

    seg->fd = openat(dir_fd, seg->name,
                     O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (seg->fd < 0) {
        log_error("event=queue_segment_create_failed segment=%s error=\"%s\"",
                  seg->name, strerror(errno));
        goto fail;
    }
    created = true;

    if (queue_segment_preallocate(seg, size) != 0) {
        log_error("event=queue_segment_create_failed segment=%s size=%"
                  PRIu64 " error=\"%s\"", seg->name, size, strerror(errno));
        goto fail;
    }

    if (queue_segment_map(seg) != 0 ||
        queue_segment_write_header(seg) != 0) {
        goto fail;
    }

    log_info("event=queue_segment_created segment=%s size=%" PRIu64,
             seg->name, size);
    *out = seg;
    return 0;

fail:
    saved = errno;
    if (created && unlinkat(dir_fd, seg->name, 0) != 0) {
        log_error("event=queue_segment_unlink_failed segment=%s error=\"%s\"",
                  seg->name, strerror(errno));
    }
    queue_segment_free(seg);
    errno = saved;
    return -1;
}

static bool queue_segment_all_zero(const uint8_t *bytes, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (bytes[i] != 0) {
            return false;
        }
    }
    return true;
}

/* queue_segment_check_short sets errno and *problem for a file of len
 * bytes, shorter than a header: ENODATA when every byte is zero (an
 * interrupted creation), EBADMSG when any is not or it cannot be read. */
static void queue_segment_check_short(const struct queue_segment *seg,
                                      const char *name, size_t len,
                                      const char **problem)
{
    uint8_t bytes[QUEUE_SEGMENT_HEADER_LEN];
    ssize_t got = pread(seg->fd, bytes, len, 0);

    if (got < 0) {
        log_error("event=queue_segment_read_failed segment=%s error=\"%s\"",
                  name, strerror(errno));
    }
    if (got == (ssize_t)len && queue_segment_all_zero(bytes, len)) {
        *problem = "file_all_zero";
        errno = ENODATA;
        return;
    }
    *problem = "shorter_than_header";
    errno = EBADMSG;
}

/* queue_segment_check_header validates the mapped header against the file
 * name and size and sets *problem on failure; see queue_segment_open()
 * for the errno values. A file shorter than its header says is accepted
 * with seg->truncated set, because the records before the cut are
 * intact and the scan stops at the end of the mapping. */
static int queue_segment_check_header(struct queue_segment *seg,
                                      const char **problem)
{
    struct queue_segment_header header;

    if (queue_segment_all_zero(seg->map, QUEUE_SEGMENT_HEADER_LEN)) {
        /* Creation preallocates zeros and then writes the header, so
         * only a file without any non-zero byte can be an interrupted
         * creation. Anything else may hold records. */
        if (queue_segment_all_zero(seg->map, seg->size)) {
            *problem = "file_all_zero";
            errno = ENODATA;
        } else {
            *problem = "header_all_zero";
            errno = EBADMSG;
        }
        return -1;
    }
    if (queue_segment_header_decode(seg->map, &header) != 0) {
        *problem = queue_segment_header_problem(seg->map);
        errno = EBADMSG;
        return -1;
    }
    if (header.number != seg->number) {
        *problem = "number_differs_from_file_name";
        errno = EBADMSG;
        return -1;
    }
    if (header.size < seg->size) {
        *problem = "file_larger_than_header_size";
        errno = EBADMSG;
        return -1;
    }

    seg->truncated = header.size > seg->size;
    seg->header_size = header.size;
    seg->nonce = header.nonce;
    seg->tail = QUEUE_SEGMENT_HEADER_LEN;
    return 0;
}

int queue_segment_open(struct queue_segment **out, int dir_fd,
                       const char *name, uint64_t number, bool read_only,
                       const char **problem)
{
    struct queue_segment *seg = queue_segment_alloc(number);
    struct stat st;
    int saved;

    if (seg == NULL) {
        return -1;
    }

    *problem = "open_or_map_failed";
    seg->read_only = read_only;
    seg->fd = openat(dir_fd, name,
                     (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (seg->fd < 0 || fstat(seg->fd, &st) != 0) {
        log_error("event=queue_segment_open_failed segment=%s error=\"%s\"",
                  name, strerror(errno));
        goto fail;
    }
    if (st.st_size < (off_t)QUEUE_SEGMENT_HEADER_LEN) {
        queue_segment_check_short(seg, name, (size_t)st.st_size, problem);
        goto fail;
    }
    seg->size = (uint64_t)st.st_size;

    if (queue_segment_map(seg) != 0 ||
        queue_segment_check_header(seg, problem) != 0) {
        goto fail;
    }
    *out = seg;
    return 0;

fail:
    saved = errno;
    queue_segment_free(seg);
    errno = saved;
    return -1;
}

void queue_segment_free(struct queue_segment *seg)
{
    struct queue_tombstone *next;

    if (seg == NULL) {
        return;
    }

    for (struct queue_tombstone *t = seg->tombstones; t != NULL; t = next) {
        next = t->next;
        free(t);
    }

    if (seg->map != NULL && munmap(seg->map, seg->size) != 0) {
        log_error("event=queue_segment_unmap_failed segment=%s error=\"%s\"",
                  seg->name, strerror(errno));
    }
    if (seg->fd >= 0 && close(seg->fd) != 0) {
        log_error("event=queue_segment_close_failed segment=%s error=\"%s\"",
                  seg->name, strerror(errno));
    }
    free(seg);
}

int queue_segment_unlink(struct queue_segment *seg, int dir_fd)
{
    if (unlinkat(dir_fd, seg->name, 0) != 0) {
        log_error("event=queue_segment_unlink_failed segment=%s error=\"%s\"",
                  seg->name, strerror(errno));
        return -1;
    }
    log_info("event=queue_segment_removed segment=%s", seg->name);
    return 0;
}

bool queue_segment_reserve(struct queue_segment *seg, uint64_t len,
                           uint64_t *offset)
{
    if (len > seg->size || seg->tail > seg->size - len) {
        return false;
    }

    *offset = seg->tail;
    seg->last_region = seg->tail;
    seg->tail += len;
    return true;
}

bool queue_segment_resize(struct queue_segment *seg, uint64_t offset,
                          uint64_t len)
{
    if (seg->last_region != offset || offset > seg->size ||
        len > seg->size - offset) {
        return false;
    }

    seg->tail = offset + len;
    return true;
}
