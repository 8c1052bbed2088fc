/* Segment move tests: live records of a sparse segment move to the
 * active segment, the old file goes, and the moved messages recover with
 * their journal state, also after a crash in the middle of a move. Run
 * against the real reactor in a mkdtemp directory. */
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
#include <time.h>
#include <unistd.h>

#include "core/queue.h"
#include "core/queue_admin.h"
#include "core/queue_internal.h"
#include "core/reactor.h"
#include "tests/unit/test_queue_fixture.h"

#define SEGMENT_SIZE (256u * 1024)
#define FILLER_LEN (60u * 1024)

static int open_queue(void)
{
    struct queue_options opts = {
        .dir = fx.dir,
        .durability = QUEUE_DURABILITY_FSYNC,
        .segment_size = SEGMENT_SIZE,
    };
    int rc = queue_open(&fx.queue, fx.reactor, &opts, on_ready, &fx);

    /* Tests start moves by calling queue_move_run(), and want them at
     * once, without the age of a real run. The group-commit trigger stays
     * off unless a test resets move_next_ms. */
    if (rc == 0) {
        fx.queue->move_min_age_ms = 0;
        fx.queue->move_next_ms = UINT64_MAX;
    }
    return rc;
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
    snprintf(fx.root, sizeof(fx.root), "/tmp/test_queue_move.XXXXXX");
    cr_assert_not_null(mkdtemp(fx.root));
    snprintf(fx.dir, sizeof(fx.dir), "%s/queue", fx.root);
    cr_assert_eq(reactor_new(&fx.reactor, NULL), 0);
    cr_assert_eq(open_queue(), 0, "queue_open: %s", strerror(errno));
}

static void teardown(void)
{
    char command[PATH_MAX + 16];

    close_queue();
    reactor_free(fx.reactor);
    snprintf(command, sizeof(command), "rm -rf '%s'", fx.root);
    cr_assert_eq(system(command), 0);
}

static const char *const two_rcpts[] = { "a@example.org", "b@example.net" };

static const struct queue_envelope test_env = {
    .sender = "sender@example.com",
    .rcpts = two_rcpts,
    .rcpt_count = 2,
};

/* make_body returns len bytes of a pattern that depends on seed. */
static char *make_body(size_t len, unsigned seed)
{
    char *body = malloc(len);

    cr_assert_not_null(body);
    for (size_t i = 0; i < len; i++) {
        body[i] = (char)((i * 7 + (i >> 8) * 13 + seed) & 0xff);
    }
    return body;
}

/* store_message writes, commits and waits for one message and returns
 * it, referenced by fx.ready. */
static struct queue_msg *store_message(const char *body, size_t len)
{
    struct queue_writer *writer = NULL;
    size_t ready_before = fx.ready_count;

    cr_assert_eq(queue_writer_begin(fx.queue, &writer, &test_env, len), 0,
                 "queue_writer_begin: %s", strerror(errno));
    cr_assert_eq(queue_writer_append(writer, body, len), 0,
                 "queue_writer_append: %s", strerror(errno));
    cr_assert_eq(queue_writer_commit(writer, on_done, &fx), 0);

    fx.done_target = fx.done_count + 1;
    fx.guard.fire = on_guard;
    fx.guard.owner = &fx;
    reactor_timer_set(fx.reactor, &fx.guard, 5000);
    cr_assert_eq(reactor_run(fx.reactor), 0);
    reactor_timer_cancel(fx.reactor, &fx.guard);
    cr_assert_not(fx.timed_out, "reactor timed out waiting for a commit");
    cr_assert_eq(fx.last_status, 0);
    cr_assert_eq(fx.ready_count, ready_before + 1);
    return fx.ready[ready_before];
}

/* finish delivers both recipients of msg. The test's reference stays. */
static void finish(struct queue_msg *msg)
{
    cr_assert_eq(queue_mark(fx.queue, msg, 0, QUEUE_RCPT_DELIVERED), 0);
    cr_assert_eq(queue_mark(fx.queue, msg, 1, QUEUE_RCPT_DELIVERED), 0);
}

/* forget drops the test's reference to msg from fx.ready. */
static void forget(struct queue_msg *msg)
{
    for (size_t i = 0; i < fx.ready_count; i++) {
        if (fx.ready[i] == msg) {
            fx.ready[i] = fx.ready[--fx.ready_count];
            queue_msg_unref(fx.queue, msg);
            return;
        }
    }
    cr_assert_fail("message %s not referenced", msg->id);
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

static bool segment_exists(const char *name)
{
    char path[PATH_MAX * 2];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", fx.dir, name);
    return stat(path, &st) == 0;
}

/* segment_bytes returns the total size of the segment files and stores
 * their count. */
static uint64_t segment_bytes(size_t *count)
{
    DIR *dir = opendir(fx.dir);
    struct dirent *entry;
    uint64_t total = 0;

    cr_assert_not_null(dir);
    *count = 0;
    while ((entry = readdir(dir)) != NULL) {
        char path[PATH_MAX * 2];
        struct stat st;

        if (strncmp(entry->d_name, "seg-", 4) != 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", fx.dir, entry->d_name);
        cr_assert_eq(stat(path, &st), 0);
        total += (uint64_t)st.st_size;
        (*count)++;
    }
    closedir(dir);
    return total;
}

static struct queue_stats stats(void)
{
    struct queue_stats s;

    queue_get_stats(fx.queue, &s);
    return s;
}

/* fill_first_segment stores deferred_msg (deferred_len bytes, for the
 * test to defer) and small (12 bytes), then fillers until segment 1 is
 * full and one more message went to segment 2. The fillers are delivered
 * and forgotten, so segment 1 is left sparse with two live messages. */
static void fill_first_segment(const char *deferred_body, size_t deferred_len,
                               struct queue_msg **deferred_msg,
                               struct queue_msg **small)
{
    char *filler = make_body(FILLER_LEN, 7);

    *deferred_msg = store_message(deferred_body, deferred_len);
    *small = store_message("small body\r\n", 12);
    while (!segment_exists("seg-00000002")) {
        struct queue_msg *msg = store_message(filler, FILLER_LEN);

        finish(msg);
        forget(msg);
    }
    cr_assert(segment_exists("seg-00000001"));
    free(filler);
}

TestSuite(queue_move, .init = setup, .fini = teardown);

Test(queue_move, sparse_segment_removed_state_kept)
{
    char *body = make_body(30 * 1024, 1);
    time_t next = time(NULL) + 3600;
    struct queue_msg *deferred_msg;
    struct queue_msg *small;
    char deferred_id[QUEUE_ID_LEN + 1];
    uint64_t used_before;

    fill_first_segment(body, 30 * 1024, &deferred_msg, &small);
    snprintf(deferred_id, sizeof(deferred_id), "%s", deferred_msg->id);
    cr_assert_eq(queue_defer(fx.queue, deferred_msg, 0, 3, next), 0);
    cr_assert_eq(queue_hold(fx.queue, deferred_msg), 2);
    finish(small);
    forget(small);
    used_before = stats().space_used;

    cr_assert_eq(queue_move_run(fx.queue), 1);
    cr_assert_not(segment_exists("seg-00000001"), "sparse segment stays");
    cr_assert_eq(deferred_msg->body_len, 30 * 1024);
    cr_assert_eq(memcmp(deferred_msg->body, body, 30 * 1024), 0,
                 "body differs after the move");
    cr_assert_leq(stats().space_used, used_before,
                  "moved region counted twice");

    reopen_queue();
    cr_assert_eq(stats().recovered_dropped, 0, "moved record dropped");
    cr_assert_eq(fx.ready_count, 1);
    deferred_msg = find_ready(deferred_id);
    cr_assert_not_null(deferred_msg, "moved message %s not recovered",
                       deferred_id);
    cr_assert_eq(memcmp(deferred_msg->body, body, 30 * 1024), 0);
    cr_assert_eq(deferred_msg->rcpts[0].attempts, 3);
    cr_assert_eq(deferred_msg->rcpts[0].next_attempt, next);
    cr_assert(deferred_msg->rcpts[0].held);
    cr_assert(deferred_msg->rcpts[1].held);
    cr_assert_eq(deferred_msg->rcpts[1].attempts, 0);
    free(body);
}

/* fill_until stores fillers, delivered and forgotten at once, until the
 * segment file name exists. */
static void fill_until(const char *name)
{
    char *filler = make_body(FILLER_LEN, 7);

    while (!segment_exists(name)) {
        struct queue_msg *msg = store_message(filler, FILLER_LEN);

        finish(msg);
        forget(msg);
    }
    free(filler);
}

Test(queue_move, one_run_moves_several_segments)
{
    time_t next = time(NULL) + 3600;
    struct queue_msg *first = store_message("first body\r\n", 12);
    struct queue_msg *second;

    fill_until("seg-00000002");
    second = store_message("second body\r\n", 13);
    fill_until("seg-00000003");
    cr_assert_eq(queue_defer(fx.queue, first, 0, 1, next), 0);
    cr_assert_eq(queue_defer(fx.queue, second, 0, 1, next), 0);
    cr_assert(segment_exists("seg-00000001"));
    cr_assert(segment_exists("seg-00000002"));

    cr_assert_eq(queue_move_run(fx.queue), 2);
    cr_assert_not(segment_exists("seg-00000001"), "first segment stays");
    cr_assert_not(segment_exists("seg-00000002"), "second segment stays");
    cr_assert_eq(memcmp(first->body, "first body\r\n", 12), 0);
    cr_assert_eq(memcmp(second->body, "second body\r\n", 13), 0);

    reopen_queue();
    cr_assert_eq(fx.ready_count, 2);
    cr_assert_eq(stats().recovered_dropped, 0);
}

Test(queue_move, busy_message_not_moved)
{
    char *body = make_body(30 * 1024, 2);
    struct queue_msg *deferred_msg;
    struct queue_msg *small;

    fill_first_segment(body, 30 * 1024, &deferred_msg, &small);
    finish(small);
    forget(small);

    queue_msg_busy(deferred_msg, true);
    cr_assert_eq(queue_move_run(fx.queue), 0);
    cr_assert(segment_exists("seg-00000001"), "busy message moved");
    cr_assert_eq(memcmp(deferred_msg->body, body, 30 * 1024), 0);

    queue_msg_busy(deferred_msg, false);
    cr_assert_eq(queue_move_run(fx.queue), 1);
    cr_assert_not(segment_exists("seg-00000001"));
    free(body);
}

Test(queue_move, young_segment_not_moved)
{
    char *body = make_body(30 * 1024, 6);
    struct queue_msg *deferred_msg;
    struct queue_msg *small;

    fill_first_segment(body, 30 * 1024, &deferred_msg, &small);
    fx.queue->move_min_age_ms = QUEUE_MOVE_MIN_AGE_MS;
    cr_assert_eq(queue_move_run(fx.queue), 0, "segment retired just now");
    cr_assert(segment_exists("seg-00000001"));

    fx.queue->move_min_age_ms = 0;
    cr_assert_eq(queue_move_run(fx.queue), 2);
    cr_assert_not(segment_exists("seg-00000001"));
    cr_assert_eq(memcmp(deferred_msg->body, body, 30 * 1024), 0);
    free(body);
}

Test(queue_move, dense_segment_not_moved)
{
    char *filler = make_body(FILLER_LEN, 3);
    struct queue_msg *msgs[4];

    /* Four fillers fill segment 1 and a fifth goes to segment 2. With
     * two of them live segment 1 is about half live, with one 2.5 KiB
     * less than a quarter, so sparse. */
    for (size_t i = 0; i < 4; i++) {
        msgs[i] = store_message(filler, FILLER_LEN);
    }
    store_message(filler, FILLER_LEN);
    cr_assert(segment_exists("seg-00000002"));
    finish(msgs[0]);
    finish(msgs[1]);
    release_ready();
    cr_assert_eq(queue_move_run(fx.queue), 0, "dense segment moved");
    cr_assert(segment_exists("seg-00000001"));

    finish(msgs[2]);
    cr_assert_eq(queue_move_run(fx.queue), 1);
    cr_assert_not(segment_exists("seg-00000001"));
    free(filler);
}

/* first_record_abandoned returns whether the first record of segment 1
 * is flagged abandoned, and clears the flag in the file when clear is
 * set. */
static bool first_record_abandoned(bool clear)
{
    char path[PATH_MAX * 2];
    uint8_t bytes[QUEUE_REGION_HEADER_LEN];
    struct queue_region_header header;
    bool abandoned;
    int fd;

    snprintf(path, sizeof(path), "%s/seg-00000001", fx.dir);
    fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    cr_assert_eq(pread(fd, bytes, sizeof(bytes), QUEUE_SEGMENT_HEADER_LEN),
                 (ssize_t)sizeof(bytes));
    cr_assert_eq(queue_region_header_decode(bytes, &header), 0);
    abandoned = (header.flags & QUEUE_REGION_ABANDONED) != 0;
    if (clear) {
        header.flags &= (uint16_t)~QUEUE_REGION_ABANDONED;
        queue_region_header_encode(bytes, &header);
        cr_assert_eq(pwrite(fd, bytes, sizeof(bytes),
                            QUEUE_SEGMENT_HEADER_LEN),
                     (ssize_t)sizeof(bytes));
    }
    cr_assert_eq(close(fd), 0);
    return abandoned;
}

/* move_then_crash runs in a child that opened the queue anew. It stores
 * a message, so the copy lands in a segment with another live record,
 * moves the deferred message while the small one is busy, so segment 1
 * stays, and exits without closing anything. */
static int move_then_crash(const char *small_id)
{
    struct queue_msg *small = find_ready(small_id);

    if (small == NULL) {
        return -1;
    }
    store_message("new body\r\n", 10);
    queue_msg_busy(small, true);
    return queue_move_run(fx.queue) == 1 ? 0 : -1;
}

Test(queue_move, crash_after_copy_one_copy)
{
    char *body = make_body(30 * 1024, 4);
    struct queue_msg *deferred_msg;
    struct queue_msg *small;
    char deferred_id[QUEUE_ID_LEN + 1];
    char small_id[QUEUE_ID_LEN + 1];
    size_t files;
    pid_t pid;
    int status;

    fill_first_segment(body, 30 * 1024, &deferred_msg, &small);
    snprintf(deferred_id, sizeof(deferred_id), "%s", deferred_msg->id);
    snprintf(small_id, sizeof(small_id), "%s", small->id);
    cr_assert_eq(queue_defer(fx.queue, deferred_msg, 1, 2, time(NULL) + 60), 0);
    close_queue();

    pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        if (reactor_new(&fx.reactor, NULL) != 0 || open_queue() != 0) {
            _exit(2);
        }
        _exit(move_then_crash(small_id) == 0 ? 0 : 3);
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child failed with status %d", status);
    cr_assert(segment_exists("seg-00000001"), "old copy removed");
    segment_bytes(&files);
    cr_assert_eq(files, 2, "copy not in segment 3");

    /* The old record is flagged abandoned, so only the copy recovers. */
    cr_assert(first_record_abandoned(false),
              "old record not flagged abandoned");
    cr_assert_eq(open_queue(), 0, "queue_open: %s", strerror(errno));
    cr_assert_eq(fx.ready_count, 3);
    cr_assert_eq(stats().recovered_dropped, 0);
    cr_assert_not_null(find_ready(deferred_id));
    close_queue();

    /* A power loss can lose that flag, which is not synced at once, so
     * clearing it makes the duplicate such a crash leaves. */
    cr_assert(first_record_abandoned(true));
    cr_assert_not(first_record_abandoned(false));

    cr_assert_eq(open_queue(), 0, "queue_open: %s", strerror(errno));
    cr_assert_eq(fx.ready_count, 3);
    cr_assert_eq(stats().recovered_dropped, 1, "duplicate not dropped");
    deferred_msg = find_ready(deferred_id);
    cr_assert_not_null(deferred_msg);
    cr_assert_eq(memcmp(deferred_msg->body, body, 30 * 1024), 0);
    cr_assert_eq(deferred_msg->rcpts[1].attempts, 2);

    /* The dropped copy was flagged abandoned, so it stays dropped. */
    reopen_queue();
    cr_assert_eq(fx.ready_count, 3);
    cr_assert_eq(stats().recovered_dropped, 0, "duplicate came back");

    /* Now nothing is busy: both records move and segment 1 goes. */
    cr_assert_eq(queue_move_run(fx.queue), 2);
    cr_assert_not(segment_exists("seg-00000001"));
    reopen_queue();
    cr_assert_eq(fx.ready_count, 3);
    cr_assert_eq(stats().recovered_dropped, 0);
    cr_assert_not_null(find_ready(deferred_id));
    cr_assert_not_null(find_ready(small_id));
    free(body);
}

Test(queue_move, disk_use_bounded)
{
    size_t len = 8 * 1024;
    char *body = make_body(len, 5);
    size_t deferred = 0;
    uint64_t bytes = 0;
    size_t files = 0;

    /* 120 messages of 8 KiB fill about four segments of 256 KiB. Every
     * 20th stays deferred, and the rest are delivered at once. The moves
     * run from the group commit that follows each message. */
    for (size_t i = 0; i < 120; i++) {
        struct queue_msg *msg;

        fx.queue->move_next_ms = 0;
        msg = store_message(body, len);
        if (i % 20 == 0) {
            cr_assert_eq(queue_defer(fx.queue, msg, 0, 1,
                                     time(NULL) + 600), 0);
            deferred++;
        } else {
            finish(msg);
            forget(msg);
        }

        /* The bound of queue_move.c: the active segment, plus inactive
         * ones that are each at least 1/4 live. The commit of this
         * message already moved the segment it retired. */
        bytes = segment_bytes(&files);
        cr_assert_leq(bytes, 4 * stats().space_used + SEGMENT_SIZE,
                      "after %zu messages: %llu bytes of segments for "
                      "%llu live", i + 1, (unsigned long long)bytes,
                      (unsigned long long)stats().space_used);
    }
    cr_assert_geq(stats().segments, 1);
    cr_assert_eq(fx.ready_count, deferred);
    cr_assert_eq(files, 1, "%zu segment files remain", files);

    reopen_queue();
    cr_assert_eq(fx.ready_count, deferred);
    cr_assert_eq(stats().recovered_dropped, 0);
    for (size_t i = 0; i < fx.ready_count; i++) {
        cr_assert_eq(memcmp(fx.ready[i]->body, body, len), 0);
        cr_assert_eq(fx.ready[i]->rcpts[0].attempts, 1);
    }
    free(body);
}

/* run_reactor runs the reactor for ms milliseconds. With upkeep set, the
 * queue's upkeep timer fires at once instead of after
 * QUEUE_UPKEEP_INTERVAL_MS. */
static void run_reactor(uint64_t ms, bool upkeep)
{
    struct reactor_timer guard = { .fire = on_guard, .owner = &fx };

    if (upkeep) {
        reactor_timer_set(fx.reactor, &fx.queue->upkeep_timer, 10);
    }
    fx.done_target = SIZE_MAX;
    reactor_timer_set(fx.reactor, &guard, ms);
    cr_assert_eq(reactor_run(fx.reactor), 0);
    reactor_timer_cancel(fx.reactor, &guard);
    fx.timed_out = false;
}

Test(queue_move, quiet_queue_moves_on_timer)
{
    char *body = make_body(30 * 1024, 1);
    struct queue_msg *deferred_msg;
    struct queue_msg *small;

    fill_first_segment(body, 30 * 1024, &deferred_msg, &small);
    cr_assert_eq(queue_defer(fx.queue, deferred_msg, 0, 1,
                             time(NULL) + 3600), 0);
    finish(small);
    forget(small);
    run_reactor(100, false);
    cr_assert(segment_exists("seg-00000001"));

    /* The journal was synced above, so no batch follows, and only the
     * timer can start the move. */
    fx.queue->move_next_ms = 0;
    run_reactor(300, true);
    cr_assert_not(segment_exists("seg-00000001"), "sparse segment stays");
    cr_assert_eq(memcmp(deferred_msg->body, body, 30 * 1024), 0);
    free(body);
}

Test(queue_move, quiet_queue_compacts_on_timer)
{
    char path[PATH_MAX * 2];
    struct queue_msg *msg = store_message("body\r\n", 6);
    time_t next = time(NULL) + 3600;
    struct stat st;

    /* 40000 entries of 32 bytes pass the 1 MiB bound of compaction. The
     * batch that syncs them checks no compaction, as when the check
     * waits for the journal to double. */
    fx.queue->compact_check_at = UINT64_MAX;
    for (uint32_t i = 1; i <= 40000; i++) {
        cr_assert_eq(queue_defer(fx.queue, msg, 0, i % 1000 + 1, next), 0);
    }
    run_reactor(100, false);
    snprintf(path, sizeof(path), "%s/journal", fx.dir);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_gt(st.st_size, 1024 * 1024);

    run_reactor(300, true);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_leq(st.st_size, 32, "journal of %lld bytes not compacted",
                  (long long)st.st_size);
    cr_assert_eq(msg->rcpts[0].attempts, 40000 % 1000 + 1);
}
