/* Queue administration tests: operator hold, release and delete, the
 * read-only open, journal compaction, segment recycling and the list,
 * show and stats reports, run against the real reactor in a mkdtemp
 * directory. JSON output is checked with Python's json module. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "core/queue.h"
#include "core/queue_admin.h"
#include "core/queue_journal.h"
#include "core/queue_record.h"
#include "core/queue_report.h"
#include "core/queue_report_escape.h"
#include "core/reactor.h"
#include "tests/unit/test_queue_fixture.h"

#define SMALL_SEGMENT (256u * 1024)
#define MAX_FILES 32

/* run_reactor runs until done() has run target times in all, or until ms
 * milliseconds pass. */
static void run_reactor(size_t target, unsigned ms)
{
    fx.done_target = target;
    fx.timed_out = false;
    fx.guard.fire = on_guard;
    fx.guard.owner = &fx;
    reactor_timer_set(fx.reactor, &fx.guard, ms);
    cr_assert_eq(reactor_run(fx.reactor), 0);
    reactor_timer_cancel(fx.reactor, &fx.guard);
}

/* run_briefly lets the end-of-turn hooks run, journal syncs included. */
static void run_briefly(void)
{
    run_reactor(SIZE_MAX, 50);
}

static int open_queue(void)
{
    struct queue_options opts = {
        .dir = fx.dir,
        .durability = QUEUE_DURABILITY_FSYNC,
        .segment_size = fx.segment_size,
    };

    return queue_open(&fx.queue, fx.reactor, &opts, on_ready, &fx);
}

static struct queue *open_read_only(void)
{
    struct queue_options opts = {
        .dir = fx.dir,
        .durability = QUEUE_DURABILITY_FSYNC,
        .segment_size = fx.segment_size,
        .read_only = true,
    };
    struct queue *queue = NULL;

    cr_assert_eq(queue_open(&queue, NULL, &opts, NULL, NULL), 0,
                 "read-only queue_open: %s", strerror(errno));
    return queue;
}

static void close_queue(void)
{
    release_ready();
    queue_close(fx.queue);
    fx.queue = NULL;
}

static void reopen_queue(void)
{
    close_queue();
    cr_assert_eq(open_queue(), 0, "queue_open: %s", strerror(errno));
}

static void setup(void)
{
    memset(&fx, 0, sizeof(fx));
    snprintf(fx.root, sizeof(fx.root), "/tmp/test_queue_admin.XXXXXX");
    cr_assert_not_null(mkdtemp(fx.root));
    snprintf(fx.dir, sizeof(fx.dir), "%s/queue", fx.root);
    fx.segment_size = SMALL_SEGMENT * 4;
    cr_assert_eq(reactor_new(&fx.reactor, NULL), 0);
}

static void teardown(void)
{
    char command[PATH_MAX + 16];

    close_queue();
    reactor_free(fx.reactor);
    snprintf(command, sizeof(command), "rm -rf '%s'", fx.root);
    cr_assert_eq(system(command), 0);
}

static const char *const two_rcpts[] = { "a@example.org", "b@Example.NET" };

static const struct queue_envelope test_env = {
    .sender = "sender@example.com",
    .rcpts = two_rcpts,
    .rcpt_count = 2,
};

static const char test_body[] =
    "Subject: test\r\nFrom: <sender@example.com>\r\n\r\nbody line\r\n";

/* store_env writes, commits and waits for one message, and returns it
 * with the test's reference. */
static struct queue_msg *store_env(const struct queue_envelope *env,
                                   const char *body, size_t len)
{
    struct queue_writer *writer = NULL;
    size_t done_before = fx.done_count;
    size_t ready_before = fx.ready_count;

    cr_assert_eq(queue_writer_begin(fx.queue, &writer, env, len), 0,
                 "queue_writer_begin: %s", strerror(errno));
    cr_assert_eq(queue_writer_append(writer, body, len), 0);
    cr_assert_eq(queue_writer_commit(writer, on_done, &fx), 0);
    run_reactor(done_before + 1, 5000);
    cr_assert_not(fx.timed_out, "commit timed out");
    cr_assert_eq(fx.last_status, 0);
    cr_assert_eq(fx.ready_count, ready_before + 1);
    return fx.ready[ready_before];
}

static struct queue_msg *store(void)
{
    return store_env(&test_env, test_body, sizeof(test_body) - 1);
}

static struct queue_msg *find_ready(const char *id)
{
    for (size_t i = 0; i < fx.ready_count; i++) {
        if (strcmp(fx.ready[i]->id, id) == 0) {
            return fx.ready[i];
        }
    }
    return NULL;
}

static void dir_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", fx.dir, name);
}

static off_t file_size(const char *name)
{
    char path[PATH_MAX * 2];
    struct stat st;

    dir_path(path, sizeof(path), name);
    cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
    return st.st_size;
}

static bool file_exists(const char *name)
{
    char path[PATH_MAX * 2];
    struct stat st;

    dir_path(path, sizeof(path), name);
    return stat(path, &st) == 0;
}

static size_t count_segment_files(void)
{
    DIR *dir = opendir(fx.dir);
    struct dirent *entry;
    size_t count = 0;

    cr_assert_not_null(dir);
    while ((entry = readdir(dir)) != NULL) {
        if (strncmp(entry->d_name, "seg-", 4) == 0) {
            count++;
        }
    }
    closedir(dir);
    return count;
}

/* ---- hold, release, delete ------------------------------------------ */

TestSuite(queue_admin, .init = setup, .fini = teardown);

Test(queue_admin, find_and_walk_in_id_order)
{
    struct queue_msg *first;
    struct queue_msg *second;
    char lower[QUEUE_ID_LEN + 1];

    cr_assert_eq(open_queue(), 0);
    first = store();
    second = store();

    cr_assert_eq(queue_first(fx.queue), first);
    cr_assert_eq(queue_next(fx.queue, first), second);
    cr_assert_null(queue_next(fx.queue, second));

    for (size_t i = 0; i <= QUEUE_ID_LEN; i++) {
        char c = second->id[i];

        lower[i] = (char)(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
    }
    cr_assert_eq(queue_find(fx.queue, second->id), second);
    cr_assert_eq(queue_find(fx.queue, lower), second);

    errno = 0;
    cr_assert_null(queue_find(fx.queue, "0123"));
    cr_assert_eq(errno, ENOENT);
    cr_assert_null(queue_find(fx.queue, "0x23456789ABCDEF0"));
    cr_assert_null(queue_find(fx.queue, "FFFFFFFFFFFFFFFF"));
}

Test(queue_admin, walk_in_id_order_after_late_commit)
{
    struct queue_writer *early = NULL;
    struct queue_writer *late = NULL;

    cr_assert_eq(open_queue(), 0);
    cr_assert_eq(queue_writer_begin(fx.queue, &early, &test_env, 0), 0);
    cr_assert_eq(queue_writer_begin(fx.queue, &late, &test_env, 0), 0);
    cr_assert_eq(queue_writer_append(late, "b\r\n", 3), 0);
    cr_assert_eq(queue_writer_commit(late, on_done, &fx), 0);
    run_reactor(1, 5000);
    cr_assert_eq(queue_writer_append(early, "a\r\n", 3), 0);
    cr_assert_eq(queue_writer_commit(early, on_done, &fx), 0);
    run_reactor(2, 5000);
    cr_assert_eq(fx.ready_count, 2);

    /* The first writer got the lower ID but committed second. */
    cr_assert_eq(queue_first(fx.queue), fx.ready[1]);
    cr_assert_eq(queue_next(fx.queue, fx.ready[1]), fx.ready[0]);
    cr_assert_null(queue_next(fx.queue, fx.ready[0]));
    cr_assert_lt(strcmp(fx.ready[1]->id, fx.ready[0]->id), 0);
}

Test(queue_admin, pending_commit_hidden_until_durable)
{
    struct queue_writer *writer = NULL;
    char id[QUEUE_ID_LEN + 1];
    struct queue_msg *stored;

    cr_assert_eq(open_queue(), 0);
    stored = store();

    /* A commit waiting for its sync has no 250 yet and its pending entry
     * points at the message, so an operator must not see or delete it. */
    cr_assert_eq(queue_writer_begin(fx.queue, &writer, &test_env, 0), 0);
    snprintf(id, sizeof(id), "%s", queue_writer_id(writer));
    cr_assert_eq(queue_writer_append(writer, "a\r\n", 3), 0);
    cr_assert_eq(queue_writer_commit(writer, on_done, &fx), 0);
    cr_expect_null(queue_find(fx.queue, id));
    cr_expect_eq(queue_first(fx.queue), stored);
    cr_expect_null(queue_next(fx.queue, stored));

    run_reactor(fx.done_count + 1, 5000);
    cr_assert_eq(fx.last_status, 0);
    cr_expect_not_null(queue_find(fx.queue, id));
    cr_expect_not_null(queue_next(fx.queue, stored));
}

Test(queue_admin, hold_release_delete_survive_reopen)
{
    char held_id[QUEUE_ID_LEN + 1];
    char deleted_id[QUEUE_ID_LEN + 1];
    struct queue_msg *msg;

    cr_assert_eq(open_queue(), 0);
    msg = store();
    snprintf(held_id, sizeof(held_id), "%s", msg->id);
    cr_assert_eq(queue_defer(fx.queue, msg, 1, 2, 1900000000), 0);
    cr_assert_eq(queue_hold(fx.queue, msg), 2);
    cr_assert_eq(queue_hold(fx.queue, msg), 0, "second hold changes none");
    msg = store();
    snprintf(deleted_id, sizeof(deleted_id), "%s", msg->id);
    cr_assert_eq(queue_delete(fx.queue, msg), 2);
    cr_assert_eq(msg->rcpts[0].state, QUEUE_RCPT_DELETED);
    run_briefly();

    reopen_queue();
    cr_assert_eq(fx.ready_count, 1);
    cr_assert_null(find_ready(deleted_id));
    msg = find_ready(held_id);
    cr_assert_not_null(msg);
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq(msg->rcpts[i].state, QUEUE_RCPT_QUEUED);
        cr_assert(msg->rcpts[i].held, "rcpt %zu not held", i);
    }
    cr_assert_eq(msg->rcpts[0].attempts, 0, "a hold adds no attempt");
    cr_assert_eq(msg->rcpts[1].attempts, 2);
    cr_assert_eq(msg->rcpts[1].next_attempt, 1900000000);

    cr_assert_eq(queue_release(fx.queue, msg), 2);
    cr_assert_eq(msg->rcpts[1].next_attempt, 0);
    run_briefly();
    reopen_queue();
    msg = find_ready(held_id);
    cr_assert_not_null(msg);
    cr_assert_not(msg->rcpts[0].held);
    cr_assert_not(msg->rcpts[1].held);
    cr_assert_eq(msg->rcpts[1].attempts, 2);
    cr_assert_eq(msg->rcpts[1].next_attempt, 0, "release makes it due");
}

Test(queue_admin, mark_and_defer_with_hold_and_delete)
{
    struct queue_msg *msg;

    cr_assert_eq(open_queue(), 0);
    msg = store();
    cr_assert_eq(queue_hold(fx.queue, msg), 2);

    /* An attempt that was in flight at the hold still records its
     * result, and a deferral keeps the hold. */
    cr_assert_eq(queue_mark(fx.queue, msg, 0, QUEUE_RCPT_DELIVERED), 0);
    cr_assert_not(msg->rcpts[0].held);
    cr_assert_eq(queue_defer(fx.queue, msg, 1, 1, 1900000000), 0);
    cr_assert(msg->rcpts[1].held);

    cr_assert_eq(queue_mark(fx.queue, msg, 1, QUEUE_RCPT_DELETED), -1);
    cr_assert_eq(errno, EINVAL, "DELETED goes through queue_delete");
    cr_assert_eq(queue_delete(fx.queue, msg), 1);

    cr_assert_eq(queue_mark(fx.queue, msg, 1, QUEUE_RCPT_DELIVERED), -1);
    cr_assert_eq(errno, ECANCELED);
    cr_assert_eq(queue_defer(fx.queue, msg, 1, 2, 1900000000), -1);
    cr_assert_eq(errno, ECANCELED);
    cr_assert_eq(queue_mark(fx.queue, msg, 0, QUEUE_RCPT_BOUNCED), -1);
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(msg->rcpts[1].state, QUEUE_RCPT_DELETED);
}

Test(queue_admin, deleted_message_segment_removed)
{
    struct queue_msg *msg;

    cr_assert_eq(open_queue(), 0);
    msg = store();
    cr_assert_eq(queue_delete(fx.queue, msg), 2);
    run_briefly();
    release_ready();
    cr_assert_eq(count_segment_files(), 1, "the active segment stays");

    reopen_queue();
    cr_assert_eq(fx.ready_count, 0);
    cr_assert_eq(count_segment_files(), 0);
    cr_assert_eq(file_size("journal"), 0);
}

Test(queue_admin, note_error_kept_and_replaced)
{
    struct queue_msg *msg;

    cr_assert_eq(open_queue(), 0);
    msg = store();
    cr_assert_null(msg->rcpts[0].last_error);
    cr_assert_eq(queue_note_error(fx.queue, msg, 0, "451 4.3.0 busy"), 0);
    cr_assert_eq(queue_note_error(fx.queue, msg, 0, "452 4.2.2 full"), 0);
    cr_assert_str_eq(msg->rcpts[0].last_error, "452 4.2.2 full");
    cr_assert_eq(queue_note_error(fx.queue, msg, 2, "x"), -1);
    cr_assert_eq(errno, EINVAL);

    /* The copy is freed with the message; ASan reports a leak if not. */
    cr_assert_eq(queue_delete(fx.queue, msg), 2);
}

Test(queue_admin, segment_recycled_while_running)
{
    size_t len = 60 * 1024;
    char *body = malloc(len);
    struct queue_msg *msgs[6];

    cr_assert_not_null(body);
    memset(body, 'x', len);
    fx.segment_size = SMALL_SEGMENT;
    cr_assert_eq(open_queue(), 0);

    /* Four bodies of 60 KiB fill a 256 KiB segment, so the fifth and
     * sixth go to segment 2. */
    for (size_t i = 0; i < 6; i++) {
        msgs[i] = store_env(&test_env, body, len);
    }
    cr_assert(file_exists("seg-00000001"));
    cr_assert(file_exists("seg-00000002"));

    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(queue_mark(fx.queue, msgs[i], 0, QUEUE_RCPT_DELIVERED),
                     0);
        cr_assert_eq(queue_delete(fx.queue, msgs[i]), 1);
    }
    release_ready();
    run_briefly();
    cr_assert_not(file_exists("seg-00000001"), "finished segment stays");
    cr_assert_eq(count_segment_files(), 1);

    for (size_t i = 0; i < 4; i++) {
        store_env(&test_env, body, len);
    }
    cr_assert_not(file_exists("seg-00000001"), "old number reused");
    cr_assert(file_exists("seg-00000003"), "no new segment for new mail");
    free(body);
}

/* ---- read-only open -------------------------------------------------- */

struct file_print {
    char name[256];
    off_t size;
    struct timespec mtime;
    uint32_t crc;
};

/* snapshot records name, size, mtime and CRC32C of every file in the
 * queue directory, sorted by name, and returns the count. */
static size_t snapshot(struct file_print *prints)
{
    struct dirent **names = NULL;
    int count = scandir(fx.dir, &names, NULL, alphasort);
    size_t file_count = 0;

    cr_assert_geq(count, 0);
    for (int i = 0; i < count; i++) {
        char path[PATH_MAX * 2];
        struct stat st;
        char buf[65536];
        ssize_t got;
        int fd;

        if (names[i]->d_name[0] != '.') {
            struct file_print *print = &prints[file_count];

            cr_assert_lt(file_count, MAX_FILES);
            dir_path(path, sizeof(path), names[i]->d_name);
            cr_assert_eq(stat(path, &st), 0);
            snprintf(print->name, sizeof(print->name), "%s",
                     names[i]->d_name);
            print->size = st.st_size;
            print->mtime = st.st_mtim;
            print->crc = 0;
            fd = open(path, O_RDONLY);
            cr_assert_geq(fd, 0);
            while ((got = read(fd, buf, sizeof(buf))) > 0) {
                print->crc = crc32c_update(print->crc, buf, (size_t)got);
            }
            close(fd);
            file_count++;
        }
        free(names[i]);
    }
    free(names);
    return file_count;
}

static void assert_same_files(const struct file_print *before, size_t count)
{
    struct file_print after[MAX_FILES];
    size_t after_count = snapshot(after);

    cr_assert_eq(after_count, count, "files added or removed");
    for (size_t i = 0; i < count; i++) {
        cr_assert_str_eq(after[i].name, before[i].name);
        cr_assert_eq(after[i].size, before[i].size, "%s size", after[i].name);
        cr_assert_eq(after[i].crc, before[i].crc, "%s bytes", after[i].name);
        cr_assert_eq(after[i].mtime.tv_sec, before[i].mtime.tv_sec);
        cr_assert_eq(after[i].mtime.tv_nsec, before[i].mtime.tv_nsec,
                     "%s mtime", after[i].name);
    }
}

static void append_bytes(const char *name, const char *bytes, size_t len)
{
    char path[PATH_MAX * 2];
    int fd;

    dir_path(path, sizeof(path), name);
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, bytes, len), (ssize_t)len);
    close(fd);
}

Test(queue_admin, read_only_sees_messages_changes_nothing)
{
    struct file_print before[MAX_FILES];
    char ids[3][QUEUE_ID_LEN + 1];
    struct queue_writer *writer = NULL;
    struct queue_msg *msg;
    struct queue *ro;
    size_t count;
    size_t seen = 0;

    cr_assert_eq(open_queue(), 0);
    for (size_t i = 0; i < 3; i++) {
        msg = store();
        snprintf(ids[i], sizeof(ids[i]), "%s", msg->id);
    }
    cr_assert_eq(queue_defer(fx.queue, fx.ready[0], 0, 3, 1900000000), 0);
    cr_assert_eq(queue_hold(fx.queue, fx.ready[1]), 2);
    cr_assert_eq(queue_mark(fx.queue, fx.ready[2], 0, QUEUE_RCPT_BOUNCED),
                 0);
    run_briefly();
    close_queue();

    /* A torn journal tail and a compaction leftover are what a writable
     * open would cut and remove. */
    append_bytes("journal", "torn", 4);
    append_bytes(QUEUE_JOURNAL_NEW_NAME, "left", 4);
    count = snapshot(before);

    /* A write in the same clock tick as the snapshot could keep the mtime
     * on a file system with coarse timestamps. */
    sleep(1);

    ro = open_read_only();
    for (msg = queue_first(ro); msg != NULL; msg = queue_next(ro, msg)) {
        cr_assert_lt(seen, 3);
        cr_assert_str_eq(msg->id, ids[seen]);
        seen++;
    }
    cr_assert_eq(seen, 3);
    msg = queue_find(ro, ids[0]);
    cr_assert_eq(msg->rcpts[0].attempts, 3);
    cr_assert_eq(msg->rcpts[0].next_attempt, 1900000000);
    cr_assert(queue_find(ro, ids[1])->rcpts[1].held);
    cr_assert_eq(queue_find(ro, ids[2])->rcpts[0].state, QUEUE_RCPT_BOUNCED);

    cr_assert_eq(queue_mark(ro, msg, 1, QUEUE_RCPT_DELIVERED), -1);
    cr_assert_eq(errno, EROFS);
    cr_assert_eq(queue_hold(ro, msg), -1);
    cr_assert_eq(errno, EROFS);
    cr_assert_eq(queue_delete(ro, msg), -1);
    cr_assert_eq(errno, EROFS);
    cr_assert_eq(queue_writer_begin(ro, &writer, &test_env, 0), -1);
    cr_assert_eq(errno, EROFS);
    queue_close(ro);

    assert_same_files(before, count);
}

Test(queue_admin, read_only_while_daemon_holds_lock)
{
    struct queue_msg *msg;
    struct queue *ro;

    cr_assert_not(queue_dir_locked(fx.dir), "missing queue is unlocked");
    cr_assert_eq(open_queue(), 0);
    msg = store();
    cr_assert(queue_dir_locked(fx.dir));

    ro = open_read_only();
    cr_assert_not_null(queue_find(ro, msg->id));
    queue_close(ro);

    /* The probe must not leave a lock behind that blocks a writer. */
    cr_assert(queue_dir_locked(fx.dir));
    close_queue();
    cr_assert_not(queue_dir_locked(fx.dir));
    cr_assert_eq(open_queue(), 0);
}

Test(queue_admin, read_only_missing_dir_fails)
{
    struct queue_options opts = {
        .dir = "/nonexistent/ringrelay-test-queue",
        .read_only = true,
    };
    struct queue *queue = NULL;

    cr_assert_eq(queue_open(&queue, NULL, &opts, NULL, NULL), -1);
    cr_assert_eq(errno, ENOENT);
    cr_assert_null(queue);
}

/* ---- compaction ------------------------------------------------------ */

Test(queue_admin, compaction_at_start_keeps_states)
{
    char ids[3][QUEUE_ID_LEN + 1];
    struct queue_msg *msg;

    cr_assert_eq(open_queue(), 0);
    for (size_t i = 0; i < 3; i++) {
        msg = store();
        snprintf(ids[i], sizeof(ids[i]), "%s", msg->id);
    }

    /* Message 0: one recipient delivered, one deferred many times.
     * Message 1: held. Message 2: finished, but its record shares the
     * segment with the others, so its final states must stay. */
    cr_assert_eq(queue_mark(fx.queue, fx.ready[0], 0, QUEUE_RCPT_DELIVERED),
                 0);
    for (uint32_t a = 1; a <= 20; a++) {
        cr_assert_eq(queue_defer(fx.queue, fx.ready[0], 1, a,
                                 1900000000 + a), 0);
    }
    cr_assert_eq(queue_hold(fx.queue, fx.ready[1]), 2);
    cr_assert_eq(queue_release(fx.queue, fx.ready[1]), 2);
    cr_assert_eq(queue_hold(fx.queue, fx.ready[1]), 2);
    cr_assert_eq(queue_mark(fx.queue, fx.ready[2], 0, QUEUE_RCPT_DELIVERED),
                 0);
    cr_assert_eq(queue_mark(fx.queue, fx.ready[2], 1, QUEUE_RCPT_BOUNCED),
                 0);
    run_briefly();
    cr_assert_eq(file_size("journal"), 29 * QUEUE_JOURNAL_ENTRY_LEN);

    /* Two entries for each message: 1 final + 1 deferred, 2 held, 2
     * final. */
    reopen_queue();
    cr_assert_eq(file_size("journal"), 6 * QUEUE_JOURNAL_ENTRY_LEN);
    reopen_queue();
    cr_assert_eq(file_size("journal"), 6 * QUEUE_JOURNAL_ENTRY_LEN);

    cr_assert_eq(fx.ready_count, 2);
    cr_assert_null(find_ready(ids[2]), "finished message came back");
    msg = find_ready(ids[0]);
    cr_assert_not_null(msg);
    cr_assert_eq(msg->rcpts[0].state, QUEUE_RCPT_DELIVERED);
    cr_assert_eq(msg->rcpts[1].state, QUEUE_RCPT_QUEUED);
    cr_assert_eq(msg->rcpts[1].attempts, 20);
    cr_assert_eq(msg->rcpts[1].next_attempt, 1900000020);
    msg = find_ready(ids[1]);
    cr_assert_not_null(msg);
    cr_assert(msg->rcpts[0].held);
    cr_assert(msg->rcpts[1].held);
    cr_assert_eq(msg->rcpts[0].attempts, 0);
}

Test(queue_admin, leftover_journal_new_removed)
{
    struct queue_msg *msg;
    char id[QUEUE_ID_LEN + 1];

    cr_assert_eq(open_queue(), 0);
    msg = store();
    snprintf(id, sizeof(id), "%s", msg->id);
    cr_assert_eq(queue_defer(fx.queue, msg, 0, 1, 1900000000), 0);
    run_briefly();
    close_queue();

    /* A crash between writing journal.new and the rename leaves it with
     * any content; the journal itself is the one that counts. */
    append_bytes(QUEUE_JOURNAL_NEW_NAME, "partial compaction", 18);
    cr_assert_eq(open_queue(), 0);
    cr_assert_not(file_exists(QUEUE_JOURNAL_NEW_NAME));
    msg = find_ready(id);
    cr_assert_not_null(msg);
    cr_assert_eq(msg->rcpts[0].attempts, 1);
    cr_assert_eq(msg->rcpts[0].next_attempt, 1900000000);
}

Test(queue_admin, compaction_while_running_at_bound)
{
    /* Past 1 MiB and 4 times the two entries needed. */
    uint32_t defers = 33000;
    struct queue *second = NULL;
    struct queue_options opts = { .dir = fx.dir };
    struct queue_msg *msg;
    char id[QUEUE_ID_LEN + 1];

    cr_assert_eq(open_queue(), 0);
    msg = store();
    snprintf(id, sizeof(id), "%s", msg->id);
    cr_assert_eq(queue_mark(fx.queue, msg, 0, QUEUE_RCPT_DELIVERED), 0);
    for (uint32_t a = 1; a <= defers; a++) {
        cr_assert_eq(queue_defer(fx.queue, msg, 1, a, 1900000000), 0);
    }
    cr_assert_eq(file_size("journal"),
                 (off_t)(defers + 1) * QUEUE_JOURNAL_ENTRY_LEN);

    /* The sync that ends the batch, then the compaction, may take longer
     * than one brief run on a loaded machine or under the sanitizers. */
    for (int i = 0; i < 40 && file_size("journal") != 2 *
                                   QUEUE_JOURNAL_ENTRY_LEN; i++) {
        run_briefly();
    }
    cr_assert_eq(file_size("journal"), 2 * QUEUE_JOURNAL_ENTRY_LEN,
                 "journal not compacted");
    cr_assert_not(file_exists(QUEUE_JOURNAL_NEW_NAME));

    /* The new journal carries the lock, and appends go to it. */
    cr_assert(queue_dir_locked(fx.dir));
    cr_assert_eq(queue_open(&second, fx.reactor, &opts, on_ready, &fx), -1);
    cr_assert_eq(errno, EWOULDBLOCK);
    cr_assert_eq(queue_hold(fx.queue, msg), 1);
    run_briefly();
    cr_assert_eq(file_size("journal"), 3 * QUEUE_JOURNAL_ENTRY_LEN);

    reopen_queue();
    msg = find_ready(id);
    cr_assert_not_null(msg);
    cr_assert_eq(msg->rcpts[0].state, QUEUE_RCPT_DELIVERED);
    cr_assert_eq(msg->rcpts[1].attempts, defers);
    cr_assert(msg->rcpts[1].held);
}

/* ---- reports --------------------------------------------------------- */

/* Addresses a hostile client could get stored: quotes, a line break that
 * imitates a report line, a control byte, invalid UTF-8 and valid UTF-8,
 * which must stay as it is. */
static const char hostile_sender[] =
    "evil\"},{\"id\":\"X\"\n0000000000000000 1 1s <forged>\x01\xff@x.org";
static const char *const hostile_rcpts[] = {
    "j\xc3\xb6rg@Example.DE",
    "line\r\n    <fake@recipient> delivered@example.org",
};

static const struct queue_envelope hostile_env = {
    .sender = hostile_sender,
    .rcpts = hostile_rcpts,
    .rcpt_count = 2,
};

static const char hostile_body[] =
    "Subject: hi\x1b[2J\r\n..dotted: yes\r\nX-Bin: \xfe\r\n\r\nsecret body\r\n";

/* report_to_file writes one report into a file below fx.root and returns
 * its path in path. */
static void report_to_file(char *path, size_t size, const char *name,
                           int (*fn)(struct queue *, FILE *,
                                     enum queue_report_format),
                           enum queue_report_format format)
{
    FILE *out;

    snprintf(path, size, "%s/%s", fx.root, name);
    out = fopen(path, "w");
    cr_assert_not_null(out);
    cr_assert_eq(fn(fx.queue, out, format), 0);
    cr_assert_eq(fclose(out), 0);
}

static int show_first(struct queue *queue, FILE *out,
                      enum queue_report_format format)
{
    return queue_report_show(queue, queue_first(queue)->id, out, format);
}

/* python_check runs a Python snippet with the report's path as argv[1]
 * and returns its exit status. */
static int python_check(const char *path, const char *code)
{
    char script[PATH_MAX * 2];
    char command[PATH_MAX * 5];
    FILE *file;

    snprintf(script, sizeof(script), "%s/check.py", fx.root);
    file = fopen(script, "w");
    cr_assert_not_null(file);
    fputs("import json, sys\n"
          "data = json.load(open(sys.argv[1], encoding='utf-8'))\n", file);
    fputs(code, file);
    cr_assert_eq(fclose(file), 0);
    snprintf(command, sizeof(command), "python3 '%s' '%s'", script, path);
    return system(command);
}

Test(queue_admin, report_json_valid_with_hostile_addresses)
{
    char path[PATH_MAX * 2];
    struct queue_msg *msg;

    cr_assert_eq(open_queue(), 0);
    msg = store_env(&hostile_env, hostile_body, sizeof(hostile_body) - 1);
    cr_assert_eq(queue_defer(fx.queue, msg, 1, 2, 1900000000), 0);
    cr_assert_eq(queue_note_error(fx.queue, msg, 1, "451 \"busy\"\n\x7f"),
                 0);
    store();

    report_to_file(path, sizeof(path), "list.json", queue_report_list,
                   QUEUE_REPORT_JSON);
    cr_assert_eq(python_check(path,
        "m = data['messages']\n"
        "assert data['count'] == 2 and len(m) == 2\n"
        "assert m[0]['sender'].startswith('evil\"},{')\n"
        "assert '\\n0000' in m[0]['sender']\n"
        "assert m[0]['sender'].endswith('\\x01\\xff@x.org')\n"
        "r = m[0]['recipients']\n"
        "assert r[0]['address'] == 'j\\u00f6rg@Example.DE'\n"
        "assert r[0]['state'] == 'queued'\n"
        "assert r[0]['next_attempt'] == 0\n"
        "assert r[0]['next_attempt_iso'] is None\n"
        "assert r[1]['state'] == 'deferred' and r[1]['attempts'] == 2\n"
        "assert r[1]['next_attempt_iso'] == '2030-03-17T17:46:40Z'\n"
        "assert m[0]['size'] == 57\n"
        "assert m[1]['sender'] == 'sender@example.com'\n"), 0);

    report_to_file(path, sizeof(path), "show.json", show_first,
                   QUEUE_REPORT_JSON);
    cr_assert_eq(python_check(path,
        "r = data['recipients']\n"
        "assert r[1]['last_error'] == '451 \"busy\"\\n\\x7f'\n"
        "assert r[0]['last_error'] is None\n"
        "assert data['headers'].startswith('Subject: hi\\x1b[2J\\r\\n')\n"
        "assert data['headers'].endswith('X-Bin: \\xfe\\r\\n\\r\\n')\n"
        "assert 'secret' not in data['headers']\n"
        "assert data['headers_truncated'] is False\n"
        "assert data['dsn_ret'] is None\n"), 0);

    report_to_file(path, sizeof(path), "stats.json", queue_report_stats,
                   QUEUE_REPORT_JSON);
    cr_assert_eq(python_check(path,
        "assert data['messages'] == 2\n"
        "c = data['recipients']\n"
        "assert c['queued'] == 3 and c['deferred'] == 1, c\n"
        "d = {e['domain']: e['recipients'] for e in data['queued_by_domain']}\n"
        "assert d == {'example.org': 2, 'example.de': 1,"
        " 'example.net': 1}, d\n"), 0);
}

/* count_lines returns the newlines in the file at path. */
static size_t count_lines(const char *path, char *text, size_t size)
{
    FILE *file = fopen(path, "r");
    size_t len;
    size_t lines = 0;

    cr_assert_not_null(file);
    len = fread(text, 1, size - 1, file);
    text[len] = '\0';
    fclose(file);
    for (size_t i = 0; i < len; i++) {
        lines += text[i] == '\n';
    }
    return lines;
}

/* wait_first_rcpt is a queue_report_wait_fn that puts recipient 0 of
 * every message behind a breaker with its probe at 1900000000, and
 * counts its calls in *arg. */
static void wait_first_rcpt(void *arg, const struct queue_msg *msg,
                            size_t index, struct queue_report_wait *wait)
{
    (void)msg;
    (*(unsigned *)arg)++;
    if (index == 0) {
        wait->breaker = true;
        wait->probe = 1900000000;
    }
}

static unsigned wait_calls;

static int list_with_waits(struct queue *queue, FILE *out,
                           enum queue_report_format format)
{
    return queue_report_list_waits(queue, out, format, wait_first_rcpt,
                                   &wait_calls);
}

Test(queue_admin, report_list_shows_breaker_wait)
{
    char path[PATH_MAX * 2];
    static char text[4096];
    struct queue_msg *msg;

    cr_assert_eq(open_queue(), 0);
    msg = store();
    cr_assert_eq(queue_defer(fx.queue, msg, 0, 1, 1800000000), 0);
    msg = store();
    cr_assert_eq(queue_hold(fx.queue, msg), 2);

    /* A held recipient waits for its release, not for a breaker, so
     * wait_fn is called only for the two of the first message. */
    wait_calls = 0;
    report_to_file(path, sizeof(path), "waits.txt", list_with_waits,
                   QUEUE_REPORT_TEXT);
    cr_assert_eq(wait_calls, 2);
    /* Title, two messages with two recipients each, count. */
    cr_assert_eq(count_lines(path, text, sizeof(text)), 8, "%s", text);
    cr_assert_not_null(strstr(text, "<a@example.org> deferred attempts=1 "
                                    "next=2027-01-15T08:00:00Z "
                                    "waiting=breaker "
                                    "probe=2030-03-17T17:46:40Z\n"),
                       "%s", text);
    cr_assert_not_null(strstr(text, "<b@Example.NET> queued attempts=0 "
                                    "next=now\n"), "%s", text);
    cr_assert_not_null(strstr(text, "<a@example.org> held attempts=0 "
                                    "next=-\n"), "%s", text);

    wait_calls = 0;
    report_to_file(path, sizeof(path), "waits.json", list_with_waits,
                   QUEUE_REPORT_JSON);
    cr_assert_eq(wait_calls, 2);
    cr_assert_eq(python_check(path,
        "m = data['messages']\n"
        "r = m[0]['recipients']\n"
        "assert r[0]['waiting'] == 'breaker', r[0]\n"
        "assert r[0]['probe'] == 1900000000, r[0]\n"
        "assert r[0]['probe_iso'] == '2030-03-17T17:46:40Z', r[0]\n"
        "assert 'waiting' not in r[1], r[1]\n"
        "assert all('waiting' not in x for x in m[1]['recipients'])\n"),
        0);

    /* Without wait_fn, as for a stopped daemon's queue, no wait shows. */
    report_to_file(path, sizeof(path), "plain.txt", queue_report_list,
                   QUEUE_REPORT_TEXT);
    count_lines(path, text, sizeof(text));
    cr_assert_null(strstr(text, "waiting="), "%s", text);
}

Test(queue_admin, report_text_escapes_hostile_addresses)
{
    char path[PATH_MAX * 2];
    static char text[65536];
    struct queue_msg *msg;

    cr_assert_eq(open_queue(), 0);
    msg = store_env(&hostile_env, hostile_body, sizeof(hostile_body) - 1);
    cr_assert_eq(queue_hold(fx.queue, msg), 2);

    /* Title, message, two recipients, count. */
    report_to_file(path, sizeof(path), "list.txt", queue_report_list,
                   QUEUE_REPORT_TEXT);
    cr_assert_eq(count_lines(path, text, sizeof(text)), 5, "%s", text);
    /* Spaces and '>' inside an address are escaped too, so a forged
     * list line stays inside the one address word. */
    cr_assert_not_null(strstr(text, "\\x0A0000000000000000\\x201\\x201s"
                                    "\\x20<forged\\x3E\\x01\\xFF@x.org>"),
                       "%s", text);
    cr_assert_not_null(strstr(text, "<j\xC3\xB6rg@Example.DE> held"),
                       "%s", text);
    cr_assert_not_null(strstr(text, "line\\x0D\\x0A\\x20\\x20\\x20\\x20"
                                    "<fake@recipient\\x3E"));
    for (const char *p = text; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;

        /* The only bytes above 0x7e are those of the valid UTF-8 in
         * "jörg". */
        cr_assert((c >= 0x20 && c <= 0x7e) || c == '\n' || c == 0xC3 ||
                  c == 0xB6, "raw byte 0x%02x in text report", c);
    }

    /* 9 lines of envelope, 2 per recipient, then a title and 4 header
     * lines, the empty one included and the stuffed dot removed. */
    report_to_file(path, sizeof(path), "show.txt", show_first,
                   QUEUE_REPORT_TEXT);
    cr_assert_eq(count_lines(path, text, sizeof(text)), 18, "%s", text);
    cr_assert_not_null(strstr(text, "\n    Subject: hi\\x1B[2J\n"));
    cr_assert_not_null(strstr(text, "\n    .dotted: yes\n"));
    cr_assert_not_null(strstr(text, "\n    X-Bin: \\xFE\n"));
    cr_assert_null(strstr(text, "secret"));

    report_to_file(path, sizeof(path), "stats.txt", queue_report_stats,
                   QUEUE_REPORT_TEXT);
    count_lines(path, text, sizeof(text));
    cr_assert_not_null(strstr(text, "    held       2\n"), "%s", text);
    cr_assert_not_null(strstr(text, "1 example.de\n"), "%s", text);
}

Test(queue_admin, report_show_unknown_id)
{
    char id[QUEUE_ID_LEN + 1] = "0000000000000001";
    FILE *out = tmpfile();

    cr_assert_not_null(out);
    cr_assert_eq(open_queue(), 0);
    cr_assert_eq(queue_report_show(fx.queue, id, out, QUEUE_REPORT_TEXT),
                 -1);
    cr_assert_eq(errno, ENOENT);
    fclose(out);
}

/* text_escaped returns what queue_report_text() writes for len bytes. */
static const char *text_escaped(const char *bytes, size_t len)
{
    static char out[256];
    FILE *file = fmemopen(out, sizeof(out), "w");

    cr_assert_not_null(file);
    queue_report_text(file, bytes, len);
    cr_assert_eq(fclose(file), 0);
    return out;
}

Test(queue_admin, report_text_keeps_utf8_and_tabs)
{
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"Subject:\tfolded", "Subject:\tfolded"},
        {"J\xC3\xBCrgen", "J\xC3\xBCrgen"},
        {"\xF0\x9F\x93\xA7 mail", "\xF0\x9F\x93\xA7 mail"},
        {"bad \xFE byte", "bad \\xFE byte"},
        {"cut \xC3", "cut \\xC3"},
        {"c1 \xC2\x85", "c1 \\xC2\\x85"},
        {"bidi \xE2\x80\xAE", "bidi \\xE2\\x80\\xAE"},
        {"esc \x1B[2J", "esc \\x1B[2J"},
        {"back\\slash", "back\\\\slash"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cr_expect_str_eq(text_escaped(cases[i].in, strlen(cases[i].in)),
                         cases[i].out, "case %zu", i);
    }
}

Test(queue_admin, report_age_units)
{
    static const struct {
        long long seconds;
        const char *text;
    } cases[] = {
        {-5, "0s"}, {0, "0s"}, {45, "45s"}, {59, "59s"}, {60, "1m"},
        {12 * 60 + 30, "12m"}, {3599, "59m"}, {3600, "1h"},
        {3 * 3600 + 59, "3h"}, {86399, "23h"}, {86400, "1d"},
        {432000, "5d"},
    };
    char buf[32];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        queue_report_age(buf, sizeof(buf), cases[i].seconds);
        cr_expect_str_eq(buf, cases[i].text, "%lld s", cases[i].seconds);
    }
}

Test(queue_admin, report_headers_capped)
{
    size_t len = 100 * 1024;
    char *body = malloc(len);
    char path[PATH_MAX * 2];
    static char text[200 * 1024];

    cr_assert_not_null(body);
    memset(body, 'h', len);
    cr_assert_eq(open_queue(), 0);
    store_env(&test_env, body, len);
    report_to_file(path, sizeof(path), "big.json", show_first,
                   QUEUE_REPORT_JSON);
    cr_assert_eq(python_check(path,
        "assert data['headers_truncated'] is True\n"
        "assert data['headers_size'] == 102400\n"
        "assert len(data['headers']) == 65536\n"), 0);
    report_to_file(path, sizeof(path), "big.txt", show_first,
                   QUEUE_REPORT_TEXT);
    count_lines(path, text, sizeof(text));
    cr_assert_not_null(strstr(text, "\nheaders (102400 bytes, the first "
                                    "65536 shown):\n"), "%.2000s", text);
    free(body);
}

/* compact_then_crash builds a journal past the compaction bound in a
 * child process, lets the running compaction happen and exits without
 * closing anything, as kill -9 would. */
static void compact_then_crash(void)
{
    struct queue_msg *msg;

    fx.ready_count = 0;
    fx.queue = NULL;
    if (reactor_new(&fx.reactor, NULL) != 0 || open_queue() != 0) {
        _exit(2);
    }
    msg = store();
    if (queue_mark(fx.queue, msg, 0, QUEUE_RCPT_BOUNCED) != 0) {
        _exit(3);
    }
    for (uint32_t a = 1; a <= 33000; a++) {
        if (queue_defer(fx.queue, msg, 1, a, 1900000000) != 0) {
            _exit(4);
        }
    }
    /* The compaction follows the batch's journal sync, which can take
     * longer than one brief run under the sanitizers: wait up to 5 s. */
    for (int i = 0; i < 100 &&
                    file_size("journal") != 2 * QUEUE_JOURNAL_ENTRY_LEN;
         i++) {
        run_briefly();
    }
    _exit(file_size("journal") == 2 * QUEUE_JOURNAL_ENTRY_LEN ? 0 : 5);
}

Test(queue_admin, compacted_journal_survives_crash)
{
    struct queue_msg *msg;
    pid_t pid = fork();
    int status;

    cr_assert_neq(pid, -1);
    if (pid == 0) {
        compact_then_crash();
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child failed with status %d", status);

    cr_assert_eq(open_queue(), 0);
    cr_assert_eq(fx.ready_count, 1);
    msg = fx.ready[0];
    cr_assert_eq(msg->rcpts[0].state, QUEUE_RCPT_BOUNCED);
    cr_assert_eq(msg->rcpts[1].attempts, 33000);
    cr_assert_eq(msg->rcpts[1].next_attempt, 1900000000);
}

Test(queue_admin, failed_compaction_keeps_old_journal)
{
    char path[PATH_MAX * 2];
    struct queue_msg *msg;
    char id[QUEUE_ID_LEN + 1];

    cr_assert_eq(open_queue(), 0);
    msg = store();
    snprintf(id, sizeof(id), "%s", msg->id);

    /* A directory in the way makes creating journal.new fail. */
    dir_path(path, sizeof(path), QUEUE_JOURNAL_NEW_NAME);
    cr_assert_eq(mkdir(path, 0700), 0);
    for (uint32_t a = 1; a <= 33000; a++) {
        cr_assert_eq(queue_defer(fx.queue, msg, 0, a, 1900000000), 0);
    }
    run_briefly();
    cr_assert_eq(file_size("journal"), 33000 * QUEUE_JOURNAL_ENTRY_LEN);
    cr_assert_eq(queue_defer(fx.queue, msg, 1, 1, 1900000001), 0);
    run_briefly();
    cr_assert_eq(file_size("journal"), 33001 * QUEUE_JOURNAL_ENTRY_LEN,
                 "appends stopped after the failed compaction");

    cr_assert_eq(rmdir(path), 0);
    reopen_queue();
    msg = find_ready(id);
    cr_assert_not_null(msg);
    cr_assert_eq(msg->rcpts[0].attempts, 33000);
    cr_assert_eq(msg->rcpts[1].next_attempt, 1900000001);
    cr_assert_eq(file_size("journal"), 2 * QUEUE_JOURNAL_ENTRY_LEN,
                 "start-up compaction did not run");
}

/* A held recipient shows no next attempt, whether or not the journal
 * kept a retry time for it, so a restart does not change the report. */
Test(queue_admin, report_held_has_no_next)
{
    char path[PATH_MAX * 2];
    static char text[16384];
    struct queue_msg *msg;

    cr_assert_eq(open_queue(), 0);
    msg = store();
    cr_assert_eq(queue_defer(fx.queue, msg, 1, 1, 1900000000), 0);
    cr_assert_eq(queue_hold(fx.queue, msg), 2);

    report_to_file(path, sizeof(path), "list.txt", queue_report_list,
                   QUEUE_REPORT_TEXT);
    count_lines(path, text, sizeof(text));
    cr_assert_not_null(strstr(text, " held attempts=0 next=-\n"), "%s",
                       text);
    cr_assert_not_null(strstr(text, " held attempts=1 next=-\n"), "%s",
                       text);
    report_to_file(path, sizeof(path), "list.json", queue_report_list,
                   QUEUE_REPORT_JSON);
    cr_assert_eq(python_check(path,
        "r = data['messages'][0]['recipients']\n"
        "assert [x['state'] for x in r] == ['held', 'held']\n"
        "assert [x['next_attempt'] for x in r] == [None, None]\n"
        "assert [x['next_attempt_iso'] for x in r] == [None, None]\n"),
        0);
}

Test(queue_admin, report_list_in_flight_and_final)
{
    char path[PATH_MAX * 2];
    static char text[16384];
    struct queue_msg *msg;

    cr_assert_eq(open_queue(), 0);
    msg = store();
    cr_assert_eq(queue_mark(fx.queue, msg, 0, QUEUE_RCPT_DELIVERED), 0);
    queue_msg_busy(msg, true);

    report_to_file(path, sizeof(path), "list.txt", queue_report_list,
                   QUEUE_REPORT_TEXT);
    count_lines(path, text, sizeof(text));
    cr_assert_not_null(strstr(text, "> (delivery under way)\n"), "%s", text);
    cr_assert_not_null(strstr(text, " delivered attempts=0 next=-\n"), "%s",
                       text);
    cr_assert_not_null(strstr(text, " queued attempts=0 next=now\n"), "%s",
                       text);
    report_to_file(path, sizeof(path), "list.json", queue_report_list,
                   QUEUE_REPORT_JSON);
    cr_assert_eq(python_check(path,
        "assert data['messages'][0]['in_flight'] is True\n"), 0);

    queue_msg_busy(msg, false);
    report_to_file(path, sizeof(path), "idle.txt", queue_report_list,
                   QUEUE_REPORT_TEXT);
    count_lines(path, text, sizeof(text));
    cr_assert_null(strstr(text, "under way"), "%s", text);
}
