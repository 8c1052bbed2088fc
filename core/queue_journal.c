#include "core/queue_journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

/* How long and how often queue_journal_lock() retries while the holder
 * of the lock cannot be identified, in milliseconds. */
#define QUEUE_JOURNAL_LOCK_WAIT_MS 5000u
#define QUEUE_JOURNAL_LOCK_RETRY_MS 50u

/* Entries read per pread during replay. */
#define QUEUE_JOURNAL_READ_ENTRIES 1024u

/* queue_journal_lock_holder looks up the PID that holds the flock on fd
 * in /proc/locks, matched by device and inode. Returns 0 when none is
 * found, such as when the holder runs in another PID namespace, which
 * /proc/locks shows as PID 0. */
static long queue_journal_lock_holder(int fd)
{
    struct stat st;
    char line[256];
    long holder = 0;
    FILE *locks;

    if (fstat(fd, &st) != 0) {
        return 0;
    }
    locks = fopen("/proc/locks", "re");
    if (locks == NULL) {
        return 0;
    }
    while (holder == 0 && fgets(line, sizeof(line), locks) != NULL) {
        unsigned major;
        unsigned minor;
        unsigned long inode;
        long pid;

        /* "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF", with the
         * device numbers in hex. Waiters start with "->" and do not
         * match. */
        if (sscanf(line, "%*d: FLOCK %*s %*s %ld %x:%x:%lu", &pid, &major,
                   &minor, &inode) == 4 &&
            major == major(st.st_dev) && minor == minor(st.st_dev) &&
            inode == (unsigned long)st.st_ino) {
            holder = pid;
        }
    }
    fclose(locks);
    return holder;
}

/* queue_journal_log_locked logs that another process holds the lock, with
 * the lock file and the holder's PID, or "unknown" when holder is 0. */
static void queue_journal_log_locked(long holder, const char *dir)
{
    char pid[32] = "unknown";
    const char *error = "the queue directory is locked by a process that "
                        "could not be identified";

    if (holder > 0) {
        snprintf(pid, sizeof(pid), "%ld", holder);
        error = "the queue directory is locked by another ringrelay process";
    }
    log_error("event=queue_locked dir=%s lock_file=%s/%s holder_pid=%s "
              "error=\"%s\" hint=\"stop that process or set another "
              "queue_dir\"", dir, dir, QUEUE_JOURNAL_NAME, pid, error);
}

/* queue_journal_lock takes the exclusive lock on the journal. A process
 * killed with SIGKILL can keep its lock for a moment after it has been
 * reaped, because the kernel closes the files of its io_uring instance
 * later, and /proc/locks then shows no PID. So while no holder can be
 * identified, the lock is retried for up to QUEUE_JOURNAL_LOCK_WAIT_MS. */
static int queue_journal_lock(struct queue_journal *journal, const char *dir)
{
    const struct timespec pause = {
        .tv_nsec = QUEUE_JOURNAL_LOCK_RETRY_MS * 1000000L,
    };
    unsigned waited_ms = 0;
    long holder;

    while (flock(journal->fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) {
            log_error("event=queue_journal_lock_failed dir=%s error=\"%s\"",
                      dir, strerror(errno));
            return -1;
        }
        holder = queue_journal_lock_holder(journal->fd);

        /* In the initial PID namespace /proc/locks keeps showing the PID
         * of a process that has exited, so only a live one counts. */
        if (holder > 0 && kill((pid_t)holder, 0) != 0 && errno == ESRCH) {
            holder = 0;
        }
        if (holder > 0 || waited_ms >= QUEUE_JOURNAL_LOCK_WAIT_MS) {
            queue_journal_log_locked(holder, dir);
            errno = EWOULDBLOCK;
            return -1;
        }
        if (waited_ms == 0) {
            log_warning("event=queue_lock_wait dir=%s lock_file=%s/%s "
                        "holder_pid=unknown max_wait_ms=%u reason=\"%s\"",
                        dir, dir, QUEUE_JOURNAL_NAME,
                        QUEUE_JOURNAL_LOCK_WAIT_MS, "waiting for a holder "
                        "that is not running or could not be identified, "
                        "such as a killed process whose files are still "
                        "being closed");
        }
        nanosleep(&pause, NULL);
        waited_ms += QUEUE_JOURNAL_LOCK_RETRY_MS;
    }
    if (waited_ms > 0) {
        log_info("event=queue_lock_taken dir=%s waited_ms=%u", dir,
                 waited_ms);
    }
    return 0;
}

/* queue_journal_adopt_new renames journal.new to journal when journal
 * is missing. A compaction renames journal.new over journal, so a
 * journal.new alone comes from a lost or moved journal, not from an
 * interrupted compaction. It contains every entry still needed when it
 * was written. Returns 0 when it was adopted or is absent, and -1 on an
 * error it has logged. */
static int queue_journal_adopt_new(int dir_fd, const char *dir)
{
    int rc = renameat2(dir_fd, QUEUE_JOURNAL_NEW_NAME, dir_fd,
                       QUEUE_JOURNAL_NAME, RENAME_NOREPLACE);

    if (rc != 0 && errno == EINVAL) {
        /* The file system lacks RENAME_NOREPLACE; journal was missing a
         * moment ago, and the lock is not taken yet either way. */
        rc = renameat(dir_fd, QUEUE_JOURNAL_NEW_NAME, dir_fd,
                      QUEUE_JOURNAL_NAME);
    }
    if (rc == 0) {
        log_warning("event=queue_journal_adopted file=%s/%s to=%s/%s "
                    "reason=\"journal missing, so the journal that a "
                    "compaction wrote is used\"", dir,
                    QUEUE_JOURNAL_NEW_NAME, dir, QUEUE_JOURNAL_NAME);
        return 0;
    }
    if (errno == ENOENT || errno == EEXIST) {
        return 0;
    }
    log_error("event=queue_journal_adopt_failed file=%s/%s error=\"%s\"",
              dir, QUEUE_JOURNAL_NEW_NAME, strerror(errno));
    return -1;
}

int queue_journal_open(struct queue_journal *journal, int dir_fd,
                       const char *dir)
{
    journal->fd = -1;
    journal->tail = 0;
    journal->dirty = false;
    journal->read_only = false;

    journal->created = false;

    /* Opening without O_CREAT first separates a new journal from an old
     * one, so recovery can warn when segments exist without it. */
    journal->fd = openat(dir_fd, QUEUE_JOURNAL_NAME, O_RDWR | O_CLOEXEC);
    if (journal->fd < 0 && errno == ENOENT) {
        if (queue_journal_adopt_new(dir_fd, dir) != 0) {
            return -1;
        }
        journal->fd = openat(dir_fd, QUEUE_JOURNAL_NAME, O_RDWR | O_CLOEXEC);
    }
    if (journal->fd < 0 && errno == ENOENT) {
        journal->created = true;
        journal->fd = openat(dir_fd, QUEUE_JOURNAL_NAME,
                             O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    }
    if (journal->fd < 0) {
        log_error("event=queue_journal_open_failed file=%s/%s error=\"%s\"",
                  dir, QUEUE_JOURNAL_NAME, strerror(errno));
        return -1;
    }

    if (queue_journal_lock(journal, dir) != 0) {
        int saved = errno;

        close(journal->fd);
        journal->fd = -1;
        errno = saved;
        return -1;
    }
    return 0;
}

int queue_journal_open_read_only(struct queue_journal *journal, int dir_fd,
                                 const char *dir)
{
    const char *name = QUEUE_JOURNAL_NAME;

    journal->tail = 0;
    journal->dirty = false;
    journal->read_only = true;

    journal->fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (journal->fd < 0 && errno == ENOENT) {
        /* The daemon adopts journal.new at its next start. */
        name = QUEUE_JOURNAL_NEW_NAME;
        journal->fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
        if (journal->fd >= 0) {
            log_warning("event=queue_journal_adopted file=%s/%s "
                        "reason=\"journal missing, so the journal that a "
                        "compaction wrote is read\"", dir, name);
        }
    }
    if (journal->fd < 0 && errno != ENOENT) {
        log_error("event=queue_journal_open_failed file=%s/%s "
                  "error=\"%s\"", dir, name, strerror(errno));
        return -1;
    }
    return 0;
}

bool queue_dir_locked(const char *dir)
{
    char path[4096];
    bool locked = false;
    int fd;

    if (snprintf(path, sizeof(path), "%s/%s", dir, QUEUE_JOURNAL_NAME) >=
        (int)sizeof(path)) {
        return false;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }

    /* The daemon holds LOCK_EX, so a shared attempt fails only while it
     * runs. NOTE: a daemon that starts between the two flock calls finds
     * the lock taken and exits with event=queue_locked. */
    if (flock(fd, LOCK_SH | LOCK_NB) != 0) {
        locked = errno == EWOULDBLOCK;
    } else if (flock(fd, LOCK_UN) != 0) {
        log_warning("event=queue_unlock_failed dir=%s error=\"%s\"", dir,
                    strerror(errno));
    }
    close(fd);
    return locked;
}

/* queue_journal_scan_chunk decodes count entries read from offset and
 * advances *valid_end past each valid one. */
static void queue_journal_scan_chunk(const uint8_t *buf, size_t count,
                                     uint64_t offset, uint64_t *valid_end,
                                     queue_journal_apply_fn apply, void *arg,
                                     struct queue_journal_stats *stats)
{
    struct queue_journal_entry entry;

    for (size_t i = 0; i < count; i++) {
        uint64_t at = offset + (uint64_t)i * QUEUE_JOURNAL_ENTRY_LEN;

        if (queue_journal_entry_decode(buf + i * QUEUE_JOURNAL_ENTRY_LEN,
                                       &entry) != 0) {
            continue;
        }

        /* Invalid entries between the last valid one and this one sit in
         * the middle of the file: count them as corrupt, not torn. */
        stats->corrupt += (size_t)((at - *valid_end) /
                                   QUEUE_JOURNAL_ENTRY_LEN);
        *valid_end = at + QUEUE_JOURNAL_ENTRY_LEN;
        stats->entries++;
        if (entry.id > stats->max_id) {
            stats->max_id = entry.id;
        }
        apply(arg, &entry);
    }
}

static int queue_journal_read_all(struct queue_journal *journal,
                                  uint64_t size, uint64_t *valid_end,
                                  queue_journal_apply_fn apply, void *arg,
                                  struct queue_journal_stats *stats)
{
    size_t chunk = QUEUE_JOURNAL_READ_ENTRIES * QUEUE_JOURNAL_ENTRY_LEN;
    uint8_t *buf = malloc(chunk);
    uint64_t offset = 0;
    int rc = -1;

    if (buf == NULL) {
        log_error("event=queue_journal_read_failed error=\"%s\"",
                  strerror(errno));
        return -1;
    }

    while (size - offset >= QUEUE_JOURNAL_ENTRY_LEN) {
        uint64_t want = size - offset < chunk ? size - offset : chunk;
        ssize_t got = pread(journal->fd, buf, (size_t)want, (off_t)offset);

        if (got < (ssize_t)QUEUE_JOURNAL_ENTRY_LEN) {
            log_error("event=queue_journal_read_failed offset=%" PRIu64
                      " error=\"%s\"", offset,
                      got < 0 ? strerror(errno) : "short read");
            errno = got < 0 ? errno : EIO;
            goto out;
        }
        queue_journal_scan_chunk(buf, (size_t)got / QUEUE_JOURNAL_ENTRY_LEN,
                                 offset, valid_end, apply, arg, stats);
        offset += (uint64_t)got / QUEUE_JOURNAL_ENTRY_LEN *
                  QUEUE_JOURNAL_ENTRY_LEN;
    }
    rc = 0;

out:
    free(buf);
    return rc;
}

int queue_journal_replay(struct queue_journal *journal,
                         queue_journal_apply_fn apply, void *arg,
                         struct queue_journal_stats *stats)
{
    uint64_t valid_end = 0;
    struct stat st;

    memset(stats, 0, sizeof(*stats));
    if (journal->fd < 0 && journal->read_only) {
        return 0;
    }
    if (fstat(journal->fd, &st) != 0) {
        log_error("event=queue_journal_stat_failed error=\"%s\"",
                  strerror(errno));
        return -1;
    }

    if (queue_journal_read_all(journal, (uint64_t)st.st_size, &valid_end,
                               apply, arg, stats) != 0) {
        return -1;
    }

    /* Everything after the last valid entry was never synced, because the
     * journal is only appended to: cut it off so new entries follow
     * valid ones. */
    if ((uint64_t)st.st_size > valid_end) {
        stats->torn = (size_t)(((uint64_t)st.st_size - valid_end +
                                QUEUE_JOURNAL_ENTRY_LEN - 1) /
                               QUEUE_JOURNAL_ENTRY_LEN);
        if (!journal->read_only &&
            ftruncate(journal->fd, (off_t)valid_end) != 0) {
            log_error("event=queue_journal_truncate_failed error=\"%s\"",
                      strerror(errno));
            return -1;
        }
    }
    journal->tail = valid_end;
    return 0;
}

int queue_journal_append(struct queue_journal *journal,
                         const struct queue_journal_entry *entry)
{
    uint8_t bytes[QUEUE_JOURNAL_ENTRY_LEN];
    ssize_t written;

    queue_journal_entry_encode(bytes, entry);

    /* NOTE: a blocking write on the reactor thread; 32 bytes into the page
     * cache, so it waits only on memory, never on the disk. */
    written = pwrite(journal->fd, bytes, sizeof(bytes),
                     (off_t)journal->tail);
    if (written != (ssize_t)sizeof(bytes)) {
        if (written >= 0) {
            errno = EIO;
        }
        return -1;
    }

    journal->tail += sizeof(bytes);
    journal->dirty = true;
    return 0;
}

int queue_journal_truncate(struct queue_journal *journal)
{
    if (ftruncate(journal->fd, 0) != 0 || fdatasync(journal->fd) != 0) {
        log_error("event=queue_journal_truncate_failed error=\"%s\"",
                  strerror(errno));
        return -1;
    }
    journal->tail = 0;
    journal->dirty = false;
    return 0;
}

void queue_journal_close(struct queue_journal *journal)
{
    if (journal->fd >= 0 && close(journal->fd) != 0) {
        log_error("event=queue_journal_close_failed error=\"%s\"",
                  strerror(errno));
    }
    journal->fd = -1;
}
