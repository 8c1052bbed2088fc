/* Quarantine of damaged segment files and the journal entries that may
 * still belong to them.
 *
 * A damaged segment moves into the corrupt/ subdirectory of the queue
 * instead of being removed: one whose header is invalid, one that is
 * truncated, or one that lost a record to a failed check. An operator
 * can then inspect it, repair it and move it back. Recovery never reads
 * corrupt/.
 *
 * While corrupt/ contains any file, or a damaged segment is still in the
 * queue directory, journal entries whose queue ID matches no recovered
 * message (orphans) are kept in memory and written again by every
 * compaction. A repaired file that is moved back then gets its holds,
 * deletes, deliveries and attempt counts back instead of being delivered
 * again from scratch. Once corrupt/ is empty, the next start drops them. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/queue_internal.h"

/* Names tried when corrupt/ already contains a file of that name. */
#define QUEUE_QUARANTINE_NAME_TRIES 100

/* queue_quarantine_open_dir creates corrupt/ when missing and opens it. */
static int queue_quarantine_open_dir(struct queue *queue)
{
    int fd;

    if (mkdirat(queue->dir_fd, QUEUE_CORRUPT_DIR, 0700) != 0 &&
        errno != EEXIST) {
        log_error("event=queue_quarantine_failed dir=%s/%s step=mkdir "
                  "error=\"%s\"", queue->dir, QUEUE_CORRUPT_DIR,
                  strerror(errno));
        return -1;
    }
    fd = openat(queue->dir_fd, QUEUE_CORRUPT_DIR,
                O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        log_error("event=queue_quarantine_failed dir=%s/%s step=open "
                  "error=\"%s\"", queue->dir, QUEUE_CORRUPT_DIR,
                  strerror(errno));
    }
    return fd;
}

/* queue_quarantine_link links name into corrupt/ under name, or name.N
 * when that is taken, and stores the chosen name in target. linkat(2)
 * never replaces a file, unlike rename(2). */
static int queue_quarantine_link(struct queue *queue, int corrupt_fd,
                                 const char *name, char *target,
                                 size_t target_size)
{
    snprintf(target, target_size, "%s", name);
    for (int i = 1; i <= QUEUE_QUARANTINE_NAME_TRIES; i++) {
        if (linkat(queue->dir_fd, name, corrupt_fd, target, 0) == 0) {
            return 0;
        }
        if (errno != EEXIST) {
            break;
        }
        snprintf(target, target_size, "%s.%d", name, i);
    }
    log_error("event=queue_quarantine_failed segment=%s step=link "
              "error=\"%s\"", name, strerror(errno));
    return -1;
}

int queue_quarantine_segment(struct queue *queue, const char *name,
                             const char *reason)
{
    char target[QUEUE_SEGMENT_NAME_MAX + 8];
    int corrupt_fd = queue_quarantine_open_dir(queue);
    int rc = -1;

    if (corrupt_fd < 0) {
        return -1;
    }
    if (queue_quarantine_link(queue, corrupt_fd, name, target,
                              sizeof(target)) != 0) {
        goto out;
    }
    if (fsync(corrupt_fd) != 0) {
        log_error("event=queue_sync_failed file=%s/%s error=\"%s\"",
                  queue->dir, QUEUE_CORRUPT_DIR, strerror(errno));
        goto out;
    }

    /* The copy in corrupt/ is durable, so the queue's name can go. A crash
     * before the unlink leaves both names, and the next start moves the
     * file again under name.N. */
    if (unlinkat(queue->dir_fd, name, 0) != 0) {
        log_error("event=queue_quarantine_failed segment=%s step=unlink "
                  "error=\"%s\"", name, strerror(errno));
        goto out;
    }
    queue->keep_orphans = true;
    log_warning("event=queue_segment_quarantined segment=%s file=%s/%s/%s "
                "reason=%s", name, queue->dir, QUEUE_CORRUPT_DIR, target,
                reason);
    rc = 0;

out:
    close(corrupt_fd);
    return rc;
}

bool queue_quarantine_present(struct queue *queue)
{
    int fd = openat(queue->dir_fd, QUEUE_CORRUPT_DIR,
                    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct dirent *entry;
    bool found = false;
    DIR *dir;

    if (fd < 0 && errno == ENOENT) {
        return false;
    }
    dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (dir == NULL) {
        /* Unreadable: assume files are there, which only keeps entries. */
        log_warning("event=queue_quarantine_unreadable dir=%s/%s "
                    "error=\"%s\"", queue->dir, QUEUE_CORRUPT_DIR,
                    strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return true;
    }
    while (!found && (entry = readdir(dir)) != NULL) {
        found = strcmp(entry->d_name, ".") != 0 &&
                strcmp(entry->d_name, "..") != 0;
    }
    closedir(dir);
    return found;
}

void queue_orphan_add(struct queue *queue,
                      const struct queue_journal_entry *entry)
{
    if (queue->orphan_count == queue->orphan_capacity) {
        size_t grown = queue->orphan_capacity == 0 ?
                       64 : queue->orphan_capacity * 2;
        struct queue_journal_entry *bigger;

        bigger = realloc(queue->orphans, grown * sizeof(*bigger));
        if (bigger == NULL) {
            if (!queue->orphans_lost) {
                log_error("event=queue_orphans_lost error=\"%s\" "
                          "effect=\"journal compaction off until "
                          "restart\"", strerror(errno));
            }
            queue->orphans_lost = true;
            return;
        }
        queue->orphans = bigger;
        queue->orphan_capacity = grown;
    }
    queue->orphans[queue->orphan_count++] = *entry;
}

void queue_orphan_add_tombstones(struct queue *queue,
                                 const struct queue_segment *seg)
{
    struct queue_journal_entry entry = { .time = (int64_t)time(NULL) };

    for (const struct queue_tombstone *t = seg->tombstones; t != NULL;
         t = t->next) {
        entry.id = t->id;
        for (uint32_t i = 0; i < t->rcpt_count; i++) {
            entry.rcpt = i;
            entry.state = t->states[i];
            queue_orphan_add(queue, &entry);
        }
    }
    if (seg->tombstones_lost) {
        queue->orphans_lost = true;
    }
}
