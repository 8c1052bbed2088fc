/* Queue journal: append-only per-recipient state changes, one 32-byte
 * entry each (layout in core/queue_record.h). The journal file also
 * carries the lock that keeps two processes out of one queue directory. */
#ifndef RINGRELAY_CORE_QUEUE_JOURNAL_H
#define RINGRELAY_CORE_QUEUE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/queue_record.h"

#define QUEUE_JOURNAL_NAME "journal"

/* The file journal compaction writes before renaming it over the
 * journal; one found at open is a leftover of a crash and is removed. */
#define QUEUE_JOURNAL_NEW_NAME "journal.new"

struct queue_journal {
    int fd;
    uint64_t tail;     /* offset of the next entry; entries end here */
    bool dirty;        /* entries written since the last sync */
    bool read_only;    /* opened O_RDONLY and unlocked; fd -1 if absent */
    bool created;      /* queue_journal_open() found no journal file */
};

struct queue_journal_stats {
    size_t entries;    /* valid entries read */
    size_t corrupt;    /* invalid entries followed by valid ones, skipped */
    size_t torn;       /* invalid entries or bytes at the end, cut off */
    uint64_t max_id;   /* highest queue ID named by any valid entry */
};

typedef void (*queue_journal_apply_fn)(void *arg,
                                       const struct queue_journal_entry *e);

/* queue_journal_open opens or creates the journal in dir_fd, the queue
 * directory dir, and takes an exclusive lock on it. Fails with EWOULDBLOCK
 * when another process holds the lock, after logging event=queue_locked
 * with the lock file and the holder's PID when /proc/locks shows it. */
int queue_journal_open(struct queue_journal *journal, int dir_fd,
                       const char *dir);

/* queue_journal_open_read_only opens the journal O_RDONLY without a lock.
 * A missing journal is no error: fd stays -1 and replay finds nothing. */
int queue_journal_open_read_only(struct queue_journal *journal, int dir_fd,
                                 const char *dir);

/* queue_dir_locked returns true when a process, normally a running
 * daemon, holds the lock of the queue directory dir. It tries a shared
 * lock without waiting and drops it at once. A directory without a
 * journal counts as not locked. */
bool queue_dir_locked(const char *dir);

/* queue_journal_replay calls apply() for every valid entry in file order,
 * then cuts off a torn tail so appends continue after the last valid
 * entry. A read-only journal keeps its tail. */
int queue_journal_replay(struct queue_journal *journal,
                         queue_journal_apply_fn apply, void *arg,
                         struct queue_journal_stats *stats);

/* queue_journal_append writes one entry at the tail with a blocking
 * pwrite and marks the journal dirty. On failure the tail stays, so a
 * partial entry is overwritten by the next append. */
int queue_journal_append(struct queue_journal *journal,
                         const struct queue_journal_entry *entry);

/* queue_journal_truncate empties the journal and syncs it. */
int queue_journal_truncate(struct queue_journal *journal);

/* queue_journal_close closes the file, which releases the lock. */
void queue_journal_close(struct queue_journal *journal);

#endif
