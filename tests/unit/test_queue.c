/* Queue store tests: record format, recovery after crashes and damage,
 * writers that grow and move, the journal and group commit, run against
 * the real reactor in a mkdtemp directory. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "core/queue.h"
#include "core/queue_admin.h"
#include "core/queue_internal.h"
#include "core/queue_record.h"
#include "core/reactor.h"

/* Room for one full batch of QUEUE_BATCH_MAX_COMMITS and a few more. */
#define MAX_MSGS 300
#define SMALL_SEGMENT (256u * 1024)

struct fixture {
    char root[256];              /* mkdtemp directory */
    char dir[PATH_MAX];          /* queue directory below root */
    struct reactor *reactor;
    struct queue *queue;
    enum queue_durability durability;
    uint32_t batch_wait_us;
    uint64_t segment_size;
    uint64_t max_size;
    uint64_t min_free;
    struct queue_msg *ready[MAX_MSGS]; /* referenced by the test */
    size_t ready_count;
    int done_status[MAX_MSGS];
    char done_id[MAX_MSGS][QUEUE_ID_LEN + 1];
    size_t done_count;
    size_t done_target;          /* stop the reactor at this count */
    bool timed_out;
    struct reactor_timer guard;
};

static struct fixture fx;

static void on_ready(void *arg, struct queue_msg *msg)
{
    struct fixture *f = arg;

    cr_assert_lt(f->ready_count, MAX_MSGS);
    queue_msg_ref(msg);
    f->ready[f->ready_count++] = msg;
}

static void on_done(void *arg, int status, const char *id)
{
    struct fixture *f = arg;

    cr_assert_lt(f->done_count, MAX_MSGS);
    f->done_status[f->done_count] = status;
    if (id != NULL) {
        snprintf(f->done_id[f->done_count], QUEUE_ID_LEN + 1, "%s", id);
    }
    f->done_count++;
    if (f->done_count >= f->done_target) {
        reactor_stop(f->reactor);
    }
}

static void on_guard(struct reactor_timer *timer)
{
    struct fixture *f = timer->owner;

    f->timed_out = true;
    reactor_stop(f->reactor);
}

/* run_until_done runs the reactor until done() has run count times in
 * all, or five seconds pass. */
static void run_until_done(size_t count)
{
    fx.done_target = count;
    fx.guard.fire = on_guard;
    fx.guard.owner = &fx;
    reactor_timer_set(fx.reactor, &fx.guard, 5000);
    cr_assert_eq(reactor_run(fx.reactor), 0);
    reactor_timer_cancel(fx.reactor, &fx.guard);
    cr_assert_not(fx.timed_out, "reactor timed out waiting for commits");
    cr_assert_eq(fx.done_count, count);
}

/* run_for runs the reactor for ms milliseconds without a commit to wait
 * for. */
static void run_for(uint64_t ms)
{
    fx.done_target = SIZE_MAX;
    fx.guard.fire = on_guard;
    fx.guard.owner = &fx;
    reactor_timer_set(fx.reactor, &fx.guard, ms);
    cr_assert_eq(reactor_run(fx.reactor), 0);
    fx.timed_out = false;
}

/* run_briefly runs the reactor for 50 ms, so end-of-turn hooks run. */
static void run_briefly(void)
{
    run_for(50);
}

static void release_ready(void)
{
    for (size_t i = 0; i < fx.ready_count; i++) {
        queue_msg_unref(fx.queue, fx.ready[i]);
    }
    fx.ready_count = 0;
}

static int open_queue(void)
{
    struct queue_options opts = {
        .dir = fx.dir,
        .durability = fx.durability,
        .batch_wait_us = fx.batch_wait_us,
        .segment_size = fx.segment_size,
        .max_size = fx.max_size,
        .min_free = fx.min_free,
    };

    return queue_open(&fx.queue, fx.reactor, &opts, on_ready, &fx);
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
    snprintf(fx.root, sizeof(fx.root), "/tmp/test_queue.XXXXXX");
    cr_assert_not_null(mkdtemp(fx.root));
    snprintf(fx.dir, sizeof(fx.dir), "%s/var/queue", fx.root);
    fx.durability = QUEUE_DURABILITY_FSYNC;
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

static const char *const two_rcpts[] = { "a@example.org", "b@example.net" };

static const struct queue_envelope test_env = {
    .sender = "sender@example.com",
    .rcpts = two_rcpts,
    .rcpt_count = 2,
    .flags = QUEUE_ENV_8BITMIME,
};

/* make_body returns len bytes of a pattern that depends on seed, so two
 * bodies or two offsets rarely hold the same bytes. */
static char *make_body(size_t len, unsigned seed)
{
    char *body = malloc(len);

    cr_assert_not_null(body);
    for (size_t i = 0; i < len; i++) {
        body[i] = (char)((i * 7 + (i >> 8) * 13 + (i >> 16) + seed) & 0xff);
    }
    return body;
}

static struct queue_writer *begin(uint64_t hint)
{
    struct queue_writer *writer = NULL;

    cr_assert_eq(queue_writer_begin(fx.queue, &writer, &test_env, hint), 0,
                 "queue_writer_begin: %s", strerror(errno));
    return writer;
}

static void append(struct queue_writer *writer, const void *data,
                   size_t len)
{
    cr_assert_eq(queue_writer_append(writer, data, len), 0,
                 "queue_writer_append: %s", strerror(errno));
}

static void commit(struct queue_writer *writer)
{
    cr_assert_eq(queue_writer_commit(writer, on_done, &fx), 0);
}

/* store_message writes, commits and waits for one message; returns its
 * index in fx.ready. */
static size_t store_message(const void *body, size_t len)
{
    struct queue_writer *writer = begin(len);
    size_t done_before = fx.done_count;
    size_t ready_before = fx.ready_count;

    append(writer, body, len);
    commit(writer);
    run_until_done(done_before + 1);
    cr_assert_eq(fx.done_status[done_before], 0);
    cr_assert_eq(fx.ready_count, ready_before + 1);
    return ready_before;
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

static void assert_body(const struct queue_msg *msg, const char *body,
                        size_t len)
{
    cr_assert_eq(msg->body_len, len);
    cr_assert_eq(memcmp(msg->body, body, len), 0, "id=%s body differs",
                 msg->id);
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

static struct queue_stats stats(void)
{
    struct queue_stats s;

    queue_get_stats(fx.queue, &s);
    return s;
}

/* crash_child runs fn in a child process that exits without closing
 * anything, leaving the files as a crash or kill -9 would. The child has
 * a reactor of its own and reports failure through its exit status. */
static void crash_child(int (*fn)(void))
{
    pid_t pid = fork();
    int status;

    cr_assert_neq(pid, -1);
    if (pid == 0) {
        fx.queue = NULL;
        if (reactor_new(&fx.reactor, NULL) != 0 || open_queue() != 0) {
            _exit(2);
        }
        _exit(fn() == 0 ? 0 : 3);
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child failed with status %d", status);
}

TestSuite(queue, .init = setup, .fini = teardown);

Test(queue, crc32c_known_vectors)
{
    static const uint8_t zeros[32];

    cr_assert_eq(crc32c_update(0, "123456789", 9), 0xE3069283u);
    cr_assert_eq(crc32c_update(0, zeros, sizeof(zeros)), 0x8A9136AAu);
    cr_assert_eq(crc32c_update(crc32c_update(0, "1234", 4), "56789", 5),
                 0xE3069283u);
}

Test(queue, envelope_round_trip)
{
    size_t len = queue_envelope_encoded_len(&test_env);
    struct queue_envelope_info info;
    struct queue_rcpt rcpts[2];
    struct queue_msg msg = {.rcpts = rcpts};
    uint8_t *bytes;
    char *strings;

    cr_assert_gt(len, 0);
    bytes = malloc(len);
    queue_envelope_encode(bytes, &test_env);
    cr_assert_eq(queue_envelope_check(bytes, len, &info), 0);
    cr_assert_eq(info.rcpt_count, 2);
    cr_assert_eq(info.flags, QUEUE_ENV_8BITMIME);

    strings = malloc(info.string_bytes);
    queue_envelope_decode(bytes, strings, &msg);
    cr_assert_str_eq(msg.sender, "sender@example.com");
    cr_assert_str_eq(rcpts[0].address, "a@example.org");
    cr_assert_str_eq(rcpts[1].address, "b@example.net");
    cr_assert_eq(rcpts[1].state, QUEUE_RCPT_QUEUED);

    /* One byte short, one byte long, or a NUL inside an address. */
    cr_assert_eq(queue_envelope_check(bytes, len - 1, &info), -1);
    bytes[10] = 0;
    cr_assert_eq(queue_envelope_check(bytes, len, &info), -1);
    free(strings);
    free(bytes);
}

static const struct queue_dsn_rcpt test_dsn_rcpts[] = {
    {QUEUE_DSN_NOTIFY_SUCCESS | QUEUE_DSN_NOTIFY_DELAY,
     "rfc822;A+B@example.org"},
    {0, ""},
};

/* test_env with every DSN field set, the second recipient without any. */
static const struct queue_envelope test_dsn_env = {
    .sender = "sender@example.com",
    .rcpts = two_rcpts,
    .rcpt_count = 2,
    .flags = QUEUE_ENV_8BITMIME | QUEUE_ENV_DSN,
    .dsn_ret = QUEUE_DSN_RET_HDRS,
    .envid = "QQ 314159",
    .dsn_rcpts = test_dsn_rcpts,
};

/* decode_envelope checks and decodes bytes into msg with storage owned by
 * the caller: rcpts (room for 2) and *strings, to free. */
static void decode_envelope(const uint8_t *bytes, size_t len,
                            struct queue_msg *msg, struct queue_rcpt *rcpts,
                            char **strings)
{
    struct queue_envelope_info info;

    cr_assert_eq(queue_envelope_check(bytes, len, &info), 0);
    cr_assert_eq(info.rcpt_count, 2);
    *strings = malloc(info.string_bytes);
    cr_assert_not_null(*strings);
    memset(msg, 0, sizeof(*msg));
    msg->rcpts = rcpts;
    msg->rcpt_count = info.rcpt_count;
    msg->flags = info.flags;
    queue_envelope_decode(bytes, *strings, msg);
}

Test(queue, envelope_dsn_round_trip)
{
    size_t len = queue_envelope_encoded_len(&test_dsn_env);
    struct queue_envelope_info info;
    struct queue_rcpt rcpts[2];
    struct queue_msg msg;
    char *strings;
    uint8_t *bytes;

    cr_assert_gt(len, queue_envelope_encoded_len(&test_env));
    bytes = malloc(len);
    cr_assert_not_null(bytes);
    queue_envelope_encode(bytes, &test_dsn_env);
    decode_envelope(bytes, len, &msg, rcpts, &strings);

    cr_assert_eq(msg.flags, QUEUE_ENV_8BITMIME | QUEUE_ENV_DSN);
    cr_assert_eq(msg.dsn_ret, QUEUE_DSN_RET_HDRS);
    cr_assert_str_eq(msg.envid, "QQ 314159");
    cr_assert_str_eq(msg.sender, "sender@example.com");
    cr_assert_str_eq(rcpts[0].address, "a@example.org");
    cr_assert_eq(rcpts[0].dsn_notify,
                 QUEUE_DSN_NOTIFY_SUCCESS | QUEUE_DSN_NOTIFY_DELAY);
    cr_assert_str_eq(rcpts[0].orcpt, "rfc822;A+B@example.org");
    cr_assert_str_eq(rcpts[1].address, "b@example.net");
    cr_assert_eq(rcpts[1].dsn_notify, 0);
    cr_assert_str_eq(rcpts[1].orcpt, "");

    /* The DSN fields must end the envelope exactly. */
    cr_assert_eq(queue_envelope_check(bytes, len - 1, &info), -1);
    free(strings);
    free(bytes);
}

/* The bytes of test_env as written before DSN support: flags 0x1, two
 * recipients, and no DSN fields. */
static const uint8_t old_envelope[] = {
    0x01, 0, 0, 0, 0x02, 0, 0, 0,
    18, 0, 's', 'e', 'n', 'd', 'e', 'r', '@', 'e', 'x', 'a', 'm', 'p', 'l',
    'e', '.', 'c', 'o', 'm',
    13, 0, 'a', '@', 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'o', 'r', 'g',
    13, 0, 'b', '@', 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'n', 'e', 't',
};

Test(queue, envelope_old_format_read)
{
    uint8_t encoded[sizeof(old_envelope)];
    struct queue_rcpt rcpts[2];
    struct queue_msg msg;
    char *strings;

    /* The current encoder still writes a message without DSN fields in
     * the old layout, byte for byte. */
    cr_assert_eq(queue_envelope_encoded_len(&test_env), sizeof(encoded));
    queue_envelope_encode(encoded, &test_env);
    cr_assert_arr_eq(encoded, old_envelope, sizeof(encoded));

    decode_envelope(old_envelope, sizeof(old_envelope), &msg, rcpts,
                    &strings);
    cr_assert_eq(msg.flags, QUEUE_ENV_8BITMIME);
    cr_assert_eq(msg.dsn_ret, QUEUE_DSN_RET_UNSET);
    cr_assert_str_eq(msg.envid, "");
    cr_assert_str_eq(msg.sender, "sender@example.com");
    cr_assert_str_eq(rcpts[1].address, "b@example.net");
    cr_assert_eq(rcpts[0].dsn_notify, 0);
    cr_assert_str_eq(rcpts[0].orcpt, "");
    cr_assert_str_eq(rcpts[1].orcpt, "");
    free(strings);
}

/* The AUTH user follows the DSN fields, or the recipients without them,
 * and ends the envelope. */
Test(queue, envelope_auth_round_trip)
{
    struct queue_envelope env = test_dsn_env;
    struct queue_envelope_info info;
    struct queue_rcpt rcpts[2];
    struct queue_msg msg;
    char *strings;
    uint8_t *bytes;
    size_t len;

    for (int dsn = 0; dsn < 2; dsn++) {
        env.flags = QUEUE_ENV_AUTH | (dsn ? QUEUE_ENV_DSN : 0);
        env.auth_user = "alice@example.org";
        len = queue_envelope_encoded_len(&env);
        cr_assert_gt(len, 0);
        bytes = malloc(len);
        cr_assert_not_null(bytes);
        queue_envelope_encode(bytes, &env);
        decode_envelope(bytes, len, &msg, rcpts, &strings);

        cr_assert_eq(msg.flags, env.flags);
        cr_assert_str_eq(msg.auth_user, "alice@example.org");
        cr_assert_str_eq(msg.envid, dsn ? "QQ 314159" : "");
        cr_assert_str_eq(rcpts[1].address, "b@example.net");
        cr_assert_eq(queue_envelope_check(bytes, len - 1, &info), -1);
        free(strings);
        free(bytes);
    }

    /* The flag without a user cannot be stored. */
    env.auth_user = NULL;
    cr_assert_eq(queue_envelope_encoded_len(&env), 0);
}

Test(queue, envelope_without_auth_reads_empty_user)
{
    struct queue_rcpt rcpts[2];
    struct queue_msg msg;
    char *strings;

    decode_envelope(old_envelope, sizeof(old_envelope), &msg, rcpts,
                    &strings);
    cr_assert_str_eq(msg.auth_user, "");
    free(strings);
}

Test(queue, envelope_dsn_invalid_rejected)
{
    static const struct queue_dsn_rcpt bad_notify[] = {
        {0x10, ""}, {0, ""},
    };
    struct queue_envelope env = test_dsn_env;
    struct queue_envelope_info info;
    uint8_t *bytes;
    size_t len;

    env.dsn_rcpts = NULL;
    cr_assert_eq(queue_envelope_encoded_len(&env), 0);
    cr_assert_eq(errno, EINVAL);
    env.dsn_rcpts = bad_notify;
    cr_assert_eq(queue_envelope_encoded_len(&env), 0);
    env.dsn_rcpts = test_dsn_rcpts;
    env.dsn_ret = (enum queue_dsn_ret)3;
    cr_assert_eq(queue_envelope_encoded_len(&env), 0);

    /* A stored RET past HDRS fails the check. The RET field follows the
     * 8-byte head and the three addresses. */
    len = queue_envelope_encoded_len(&test_dsn_env);
    bytes = malloc(len);
    cr_assert_not_null(bytes);
    queue_envelope_encode(bytes, &test_dsn_env);
    cr_assert_eq(queue_envelope_check(bytes, len, &info), 0);
    bytes[8 + 20 + 15 + 15] = 3;
    cr_assert_eq(queue_envelope_check(bytes, len, &info), -1);
    free(bytes);
}

Test(queue, dsn_fields_survive_reopen)
{
    const char body[] = "Subject: dsn\r\n\r\nhello\r\n";
    struct queue_writer *writer = NULL;
    struct queue_msg *msg;

    cr_assert_eq(open_queue(), 0);
    cr_assert_eq(queue_writer_begin(fx.queue, &writer, &test_dsn_env,
                                    sizeof(body)), 0,
                 "queue_writer_begin: %s", strerror(errno));
    append(writer, body, sizeof(body) - 1);
    commit(writer);
    run_until_done(1);
    cr_assert_eq(fx.done_status[0], 0);
    msg = fx.ready[0];
    cr_assert_str_eq(msg->envid, "QQ 314159");

    reopen_queue();
    cr_assert_eq(fx.ready_count, 1);
    msg = fx.ready[0];
    cr_assert_eq(msg->flags, QUEUE_ENV_8BITMIME | QUEUE_ENV_DSN);
    cr_assert_eq(msg->dsn_ret, QUEUE_DSN_RET_HDRS);
    cr_assert_str_eq(msg->envid, "QQ 314159");
    cr_assert_eq(msg->rcpts[0].dsn_notify,
                 QUEUE_DSN_NOTIFY_SUCCESS | QUEUE_DSN_NOTIFY_DELAY);
    cr_assert_str_eq(msg->rcpts[0].orcpt, "rfc822;A+B@example.org");
    cr_assert_str_eq(msg->rcpts[1].orcpt, "");
    assert_body(msg, body, sizeof(body) - 1);
    cr_assert_eq(stats().recovered_dropped, 0);
}

Test(queue, record_without_dsn_recovers_with_none)
{
    const char body[] = "Subject: plain\r\n\r\nhello\r\n";
    struct queue_msg *msg;

    cr_assert_eq(open_queue(), 0);
    store_message(body, sizeof(body) - 1);

    reopen_queue();
    cr_assert_eq(fx.ready_count, 1);
    msg = fx.ready[0];
    cr_assert_eq(msg->flags, QUEUE_ENV_8BITMIME);
    cr_assert_eq(msg->dsn_ret, QUEUE_DSN_RET_UNSET);
    cr_assert_str_eq(msg->envid, "");
    cr_assert_eq(msg->rcpts[0].dsn_notify, 0);
    cr_assert_str_eq(msg->rcpts[1].orcpt, "");
}

Test(queue, headers_round_trip)
{
    struct queue_region_header in = {
        .flags = QUEUE_REGION_COMMITTED, .region_len = 4096,
        .nonce = 0x0123456789abcdefu, .id = 42, .arrival = -5,
        .body_len = 1000, .envelope_len = 77, .crc = 0xdeadbeef,
        .record_len = 1141,
    };
    struct queue_journal_entry entry = {
        .id = 7, .rcpt = 3, .state = QUEUE_RCPT_BOUNCED, .time = 1700000000,
    };
    struct queue_journal_entry entry_out;
    struct queue_region_header out;
    uint8_t bytes[64];

    queue_region_header_encode(bytes, &in);
    cr_assert_eq(queue_region_header_decode(bytes, &out), 0);
    cr_assert_eq(out.flags, in.flags);
    cr_assert_eq(out.region_len, in.region_len);
    cr_assert_eq(out.nonce, in.nonce);
    cr_assert_eq(out.id, in.id);
    cr_assert_eq(out.arrival, in.arrival);
    cr_assert_eq(out.body_len, in.body_len);
    cr_assert_eq(out.envelope_len, in.envelope_len);
    cr_assert_eq(out.crc, in.crc);
    cr_assert_eq(out.record_len, in.record_len);
    bytes[0] ^= 1;
    cr_assert_eq(queue_region_header_decode(bytes, &out), -1);

    queue_journal_entry_encode(bytes, &entry);
    cr_assert_eq(queue_journal_entry_decode(bytes, &entry_out), 0);
    cr_assert_eq(entry_out.id, 7);
    cr_assert_eq(entry_out.rcpt, 3);
    cr_assert_eq(entry_out.state, QUEUE_RCPT_BOUNCED);
    cr_assert_eq(entry_out.time, 1700000000);
    bytes[9] ^= 1;
    cr_assert_eq(queue_journal_entry_decode(bytes, &entry_out), -1);
}

Test(queue, journal_deferred_entry_round_trip)
{
    struct queue_journal_entry entry = {
        .id = 9, .rcpt = 1, .state = QUEUE_JOURNAL_DEFERRED,
        .attempts = 3, .time = 1700000480,
    };
    struct queue_journal_entry entry_out;
    uint8_t bytes[QUEUE_JOURNAL_ENTRY_LEN];

    queue_journal_entry_encode(bytes, &entry);
    cr_assert_eq(bytes[26], 3, "attempt count belongs at offset 26");
    cr_assert_eq(bytes[27], 0);
    cr_assert_eq(queue_journal_entry_decode(bytes, &entry_out), 0);
    cr_assert_eq(entry_out.id, 9);
    cr_assert_eq(entry_out.rcpt, 1);
    cr_assert_eq(entry_out.state, QUEUE_JOURNAL_DEFERRED);
    cr_assert_eq(entry_out.attempts, 3);
    cr_assert_eq(entry_out.time, 1700000480);

    /* The count is covered by the CRC. */
    bytes[26] ^= 1;
    cr_assert_eq(queue_journal_entry_decode(bytes, &entry_out), -1);
}

Test(queue, journal_old_entry_reads_attempt_one)
{
    struct queue_journal_entry entry_out;
    uint8_t bytes[QUEUE_JOURNAL_ENTRY_LEN] = {
        'R', 'R', 'J', 'E',          /* magic */
        2, 0, 0, 0,                  /* recipient index */
        5, 0, 0, 0, 0, 0, 0, 0,      /* queue ID */
        0x00, 0xf1, 0x53, 0x65, 0, 0, 0, 0, /* time 1700000000 */
        QUEUE_RCPT_DELIVERED, 0,     /* state */
        0, 0,                        /* zero before attempt counts */
    };
    uint32_t crc = crc32c_update(0, bytes, 28);

    for (size_t i = 0; i < 4; i++) {
        bytes[28 + i] = (uint8_t)(crc >> (8 * i));
    }
    cr_assert_eq(queue_journal_entry_decode(bytes, &entry_out), 0);
    cr_assert_eq(entry_out.rcpt, 2);
    cr_assert_eq(entry_out.id, 5);
    cr_assert_eq(entry_out.time, 1700000000);
    cr_assert_eq(entry_out.state, QUEUE_RCPT_DELIVERED);
    cr_assert_eq(entry_out.attempts, 1);
}

Test(queue, envelope_invalid_rejected)
{
    static const char *const with_nul_free[] = { "x@example.org" };
    struct queue_envelope env = test_env;
    struct queue_writer *writer = NULL;

    cr_assert_eq(open_queue(), 0);
    env.rcpt_count = 0;
    cr_assert_eq(queue_writer_begin(fx.queue, &writer, &env, 0), -1);
    cr_assert_eq(errno, EINVAL);

    env.rcpts = with_nul_free;
    env.rcpt_count = 1;
    env.flags = 0x80;
    cr_assert_eq(queue_writer_begin(fx.queue, &writer, &env, 0), -1);
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(stats().writers, 0);
}

Test(queue, commit_waits_for_sync)
{
    struct queue_writer *writer;

    cr_assert_eq(open_queue(), 0);
    writer = begin(0);
    append(writer, "Subject: x\r\n\r\nhello\r\n", 21);
    commit(writer);
    cr_assert_eq(fx.done_count, 0, "done() ran inside commit");
    cr_assert_eq(fx.ready_count, 0, "ready() ran inside commit");

    run_until_done(1);
    cr_assert_eq(fx.done_status[0], 0);
    cr_assert_eq(strlen(fx.done_id[0]), QUEUE_ID_LEN);
    cr_assert_eq(fx.ready_count, 1);
    cr_assert_str_eq(fx.ready[0]->id, fx.done_id[0]);
}

Test(queue, message_survives_reopen)
{
    const char body[] = "Subject: test\r\n\r\n..dot-stuffed\r\nend\r\n";
    char id[QUEUE_ID_LEN + 1];
    struct queue_msg *msg;

    cr_assert_eq(open_queue(), 0);
    store_message(body, sizeof(body) - 1);
    snprintf(id, sizeof(id), "%s", fx.done_id[0]);

    reopen_queue();
    cr_assert_eq(fx.ready_count, 1);
    msg = fx.ready[0];
    cr_assert_str_eq(msg->id, id);
    cr_assert_str_eq(msg->sender, "sender@example.com");
    cr_assert_eq(msg->rcpt_count, 2);
    cr_assert_str_eq(msg->rcpts[0].address, "a@example.org");
    cr_assert_str_eq(msg->rcpts[1].address, "b@example.net");
    cr_assert_eq(msg->flags, QUEUE_ENV_8BITMIME);
    cr_assert_gt(msg->arrival, 0);
    assert_body(msg, body, sizeof(body) - 1);
    cr_assert_eq(stats().recovered_messages, 1);
    cr_assert_eq(stats().recovered_dropped, 0);
}

/* A BINARYMIME message keeps its flag and its raw body (NUL, bare LF,
 * bare CR, a leading dot, no final CRLF) across a reopen. */
Test(queue, binarymime_flag_survives_reopen)
{
    static const char body[] = "Subject: b\r\n\r\n\0x\ny\r.z\r\n.";
    static const char *const rcpt[] = {"c@example.org"};
    const struct queue_envelope env = {
        .sender = "s@example.com",
        .rcpts = rcpt,
        .rcpt_count = 1,
        .flags = QUEUE_ENV_BINARYMIME,
    };
    struct queue_writer *writer = NULL;
    struct queue_msg *msg;

    cr_assert_eq(open_queue(), 0);
    cr_assert_eq(queue_writer_begin(fx.queue, &writer, &env,
                                    sizeof(body) - 1), 0,
                 "queue_writer_begin: %s", strerror(errno));
    append(writer, body, sizeof(body) - 1);
    commit(writer);
    run_until_done(1);
    cr_assert_eq(fx.done_status[0], 0);

    reopen_queue();
    cr_assert_eq(fx.ready_count, 1);
    msg = fx.ready[0];
    cr_assert_eq(msg->flags, QUEUE_ENV_BINARYMIME);
    assert_body(msg, body, sizeof(body) - 1);
    cr_assert_eq(stats().recovered_dropped, 0);
}

/* flip_byte_after finds marker in the segment files and flips the byte
 * that follows it. */
static void flip_byte_after(const char *marker)
{
    DIR *dir = opendir(fx.dir);
    struct dirent *entry;
    bool flipped = false;

    cr_assert_not_null(dir);
    while (!flipped && (entry = readdir(dir)) != NULL) {
        char path[PATH_MAX * 2];
        struct stat st;
        char *data;
        char *hit;
        int fd;

        if (strncmp(entry->d_name, "seg-", 4) != 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", fx.dir, entry->d_name);
        fd = open(path, O_RDWR);
        cr_assert_geq(fd, 0);
        cr_assert_eq(fstat(fd, &st), 0);
        data = malloc((size_t)st.st_size);
        cr_assert_eq(pread(fd, data, (size_t)st.st_size, 0), st.st_size);
        hit = memmem(data, (size_t)st.st_size, marker, strlen(marker));
        if (hit != NULL) {
            char *target = hit + strlen(marker);

            *target ^= 0x20;
            cr_assert_eq(pwrite(fd, target, 1, target - data), 1);
            flipped = true;
        }
        free(data);
        close(fd);
    }
    closedir(dir);
    cr_assert(flipped, "marker %s not found", marker);
}

Test(queue, checksum_mismatch_dropped)
{
    const char good[] = "Subject: good\r\n\r\nkeep me\r\n";
    const char bad[] = "Subject: bad\r\n\r\nMARKER-7Qx body\r\n";

    cr_assert_eq(open_queue(), 0);
    store_message(good, sizeof(good) - 1);
    store_message(bad, sizeof(bad) - 1);
    close_queue();

    flip_byte_after("MARKER-7Q");
    cr_assert_eq(open_queue(), 0);
    cr_assert_eq(fx.ready_count, 1);
    assert_body(fx.ready[0], good, sizeof(good) - 1);
    cr_assert_eq(stats().recovered_messages, 1);
    cr_assert_eq(stats().recovered_dropped, 1);
}

static int write_committed_then_torn(void)
{
    const struct queue_envelope *env = &test_env;
    struct queue_writer *writer;

    if (queue_writer_begin(fx.queue, &writer, env, 0) != 0 ||
        queue_writer_append(writer, "first\r\n", 7) != 0 ||
        queue_writer_commit(writer, on_done, &fx) != 0) {
        return -1;
    }
    fx.done_target = 1;
    fx.guard.fire = on_guard;
    fx.guard.owner = &fx;
    reactor_timer_set(fx.reactor, &fx.guard, 5000);
    if (reactor_run(fx.reactor) != 0 || fx.done_count != 1 ||
        fx.done_status[0] != 0) {
        return -1;
    }

    /* The second record is reserved and partly written, then the process
     * dies before commit. */
    if (queue_writer_begin(fx.queue, &writer, env, 0) != 0 ||
        queue_writer_append(writer, "never committed", 15) != 0) {
        return -1;
    }
    return queue_sync_now(fx.queue);
}

Test(queue, torn_tail_dropped)
{
    crash_child(write_committed_then_torn);

    cr_assert_eq(open_queue(), 0);
    cr_assert_eq(fx.ready_count, 1);
    assert_body(fx.ready[0], "first\r\n", 7);
    cr_assert_eq(stats().recovered_dropped, 1);
}

Test(queue, interleaved_writers_recovered)
{
    char *body_a = make_body(40000, 1);
    char *body_b = make_body(50000, 2);
    struct queue_writer *a;
    struct queue_writer *b;
    char id_a[QUEUE_ID_LEN + 1];
    char id_b[QUEUE_ID_LEN + 1];

    cr_assert_eq(open_queue(), 0);
    a = begin(0);
    b = begin(0);
    snprintf(id_a, sizeof(id_a), "%s", queue_writer_id(a));
    snprintf(id_b, sizeof(id_b), "%s", queue_writer_id(b));
    cr_assert_str_neq(id_a, id_b);
    for (size_t off = 0; off < 50000; off += 1000) {
        if (off < 40000) {
            append(a, body_a + off, 1000);
        }
        append(b, body_b + off, 1000);
    }
    commit(b);
    commit(a);
    run_until_done(2);
    cr_assert_eq(fx.done_status[0], 0);
    cr_assert_eq(fx.done_status[1], 0);
    cr_assert_str_eq(fx.done_id[0], id_b);
    cr_assert_eq(count_segment_files(), 1);

    reopen_queue();
    cr_assert_eq(fx.ready_count, 2);
    cr_assert_not_null(find_ready(id_a));
    cr_assert_not_null(find_ready(id_b));
    assert_body(find_ready(id_a), body_a, 40000);
    assert_body(find_ready(id_b), body_b, 50000);
    free(body_a);
    free(body_b);
}

Test(queue, outgrown_region_moves)
{
    size_t len = 300 * 1024;
    char *body = make_body(len, 3);
    struct queue_writer *big;
    struct queue_writer *small;
    char id[QUEUE_ID_LEN + 1];

    cr_assert_eq(open_queue(), 0);

    /* small follows big, so big cannot grow in place and must move. */
    big = begin(0);
    small = begin(0);
    snprintf(id, sizeof(id), "%s", queue_writer_id(big));
    append(small, "small\r\n", 7);
    for (size_t off = 0; off < len; off += 4096) {
        size_t n = len - off < 4096 ? len - off : 4096;

        append(big, body + off, n);
    }
    commit(big);
    commit(small);
    run_until_done(2);

    reopen_queue();
    cr_assert_eq(fx.ready_count, 2);
    cr_assert_not_null(find_ready(id));
    assert_body(find_ready(id), body, len);
    cr_assert_eq(stats().recovered_dropped, 0);
    free(body);
}

Test(queue, last_region_grows_in_place)
{
    size_t len = 200 * 1024;
    char *body = make_body(len, 4);
    struct queue_writer *writer;
    void *space;
    size_t room = 0;

    cr_assert_eq(open_queue(), 0);
    writer = begin(0);

    /* Write through prepare/advance, as a recv into the mapping would. */
    for (size_t off = 0; off < len; off += 8192) {
        space = queue_writer_prepare(writer, 8192, &room);
        cr_assert_not_null(space);
        cr_assert_geq(room, 8192);
        memcpy(space, body + off, 8192);
        cr_assert_eq(queue_writer_advance(writer, 8192), 0);
    }
    cr_assert_eq(queue_writer_advance(writer, room + 1), -1);
    commit(writer);
    run_until_done(1);

    reopen_queue();
    cr_assert_eq(fx.ready_count, 1);
    assert_body(fx.ready[0], body, len);
    free(body);
}

Test(queue, message_larger_than_segment)
{
    size_t len = 3 * SMALL_SEGMENT + 12345;
    char *body = make_body(len, 5);
    char *small = make_body(1000, 6);

    fx.segment_size = SMALL_SEGMENT;
    cr_assert_eq(open_queue(), 0);
    store_message(small, 1000);
    store_message(body, len);

    /* The active segment and the large message's own segment; segments
     * the large record passed through while growing are gone. */
    cr_assert_eq(count_segment_files(), 2);

    reopen_queue();
    cr_assert_eq(fx.ready_count, 2);
    assert_body(fx.ready[0], small, 1000);
    assert_body(fx.ready[1], body, len);
    free(body);
    free(small);
}

Test(queue, large_message_without_hint_moves)
{
    size_t len = 2 * SMALL_SEGMENT;
    char *body = make_body(len, 7);
    struct queue_writer *writer;

    fx.segment_size = SMALL_SEGMENT;
    cr_assert_eq(open_queue(), 0);
    writer = begin(0);
    for (size_t off = 0; off < len; off += 10000) {
        append(writer, body + off, len - off < 10000 ? len - off : 10000);
    }
    commit(writer);
    run_until_done(1);
    cr_assert_eq(count_segment_files(), 2);

    reopen_queue();
    cr_assert_eq(fx.ready_count, 1);
    assert_body(fx.ready[0], body, len);
    free(body);
}

Test(queue, journal_replay_keeps_queued_rcpt)
{
    struct queue_msg *msg;

    cr_assert_eq(open_queue(), 0);
    store_message("body\r\n", 6);
    cr_assert_eq(queue_mark(fx.queue, fx.ready[0], 0, QUEUE_RCPT_DELIVERED),
                 0);
    cr_assert_eq(fx.ready[0]->rcpts[0].state, QUEUE_RCPT_DELIVERED);
    run_briefly();

    reopen_queue();
    cr_assert_eq(fx.ready_count, 1);
    msg = fx.ready[0];
    cr_assert_eq(msg->rcpts[0].state, QUEUE_RCPT_DELIVERED);
    cr_assert_eq(msg->rcpts[1].state, QUEUE_RCPT_QUEUED);
}

Test(queue, journal_replay_keeps_retry_schedule)
{
    struct queue_msg *msg;

    cr_assert_eq(open_queue(), 0);
    store_message("body\r\n", 6);
    cr_assert_eq(queue_defer(fx.queue, fx.ready[0], 0, 2, 1700000120), 0);
    cr_assert_eq(queue_defer(fx.queue, fx.ready[0], 0, 3, 1700000480), 0);
    cr_assert_eq(fx.ready[0]->rcpts[0].state, QUEUE_RCPT_QUEUED);
    cr_assert_eq(fx.ready[0]->rcpts[0].attempts, 3);
    cr_assert_eq(fx.ready[0]->rcpts[0].next_attempt, 1700000480);
    run_briefly();

    reopen_queue();
    cr_assert_eq(fx.ready_count, 1);
    msg = fx.ready[0];
    cr_assert_eq(msg->rcpts[0].state, QUEUE_RCPT_QUEUED);
    cr_assert_eq(msg->rcpts[0].attempts, 3, "the last DEFERRED entry wins");
    cr_assert_eq(msg->rcpts[0].next_attempt, 1700000480);
    cr_assert_eq(msg->rcpts[1].state, QUEUE_RCPT_QUEUED);
    cr_assert_eq(msg->rcpts[1].attempts, 0);
    cr_assert_eq(msg->rcpts[1].next_attempt, 0);
}

Test(queue, journal_replay_final_after_deferred)
{
    cr_assert_eq(open_queue(), 0);
    store_message("body\r\n", 6);
    cr_assert_eq(queue_defer(fx.queue, fx.ready[0], 1, 1, 1700000060), 0);
    cr_assert_eq(queue_mark(fx.queue, fx.ready[0], 1, QUEUE_RCPT_DELIVERED),
                 0);
    run_briefly();

    reopen_queue();
    cr_assert_eq(fx.ready_count, 1);
    cr_assert_eq(fx.ready[0]->rcpts[1].state, QUEUE_RCPT_DELIVERED);
    cr_assert_eq(fx.ready[0]->rcpts[0].state, QUEUE_RCPT_QUEUED);
    cr_assert_eq(fx.ready[0]->rcpts[0].attempts, 0);
}

Test(queue, defer_rejects_invalid_requests)
{
    cr_assert_eq(open_queue(), 0);
    store_message("body\r\n", 6);

    cr_assert_eq(queue_defer(fx.queue, fx.ready[0], 2, 1, 1700000060), -1);
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(queue_defer(fx.queue, fx.ready[0], 0, 0, 1700000060), -1);
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(queue_mark(fx.queue, fx.ready[0], 0, QUEUE_RCPT_BOUNCED),
                 0);
    cr_assert_eq(queue_defer(fx.queue, fx.ready[0], 0, 1, 1700000060), -1);
    cr_assert_eq(errno, EINVAL);
    run_briefly();
}

Test(queue, mark_rejects_invalid_requests)
{
    cr_assert_eq(open_queue(), 0);
    store_message("body\r\n", 6);

    cr_assert_eq(queue_mark(fx.queue, fx.ready[0], 2, QUEUE_RCPT_DELIVERED),
                 -1);
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(queue_mark(fx.queue, fx.ready[0], 0, QUEUE_RCPT_QUEUED),
                 -1);
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(queue_mark(fx.queue, fx.ready[0], 0, QUEUE_RCPT_BOUNCED),
                 0);
    cr_assert_eq(queue_mark(fx.queue, fx.ready[0], 0, QUEUE_RCPT_DELIVERED),
                 -1);
    cr_assert_eq(errno, EINVAL);
    run_briefly();
}

Test(queue, all_delivered_segment_removed)
{
    char path[PATH_MAX * 2];
    struct stat st;

    cr_assert_eq(open_queue(), 0);
    store_message("body\r\n", 6);
    cr_assert_eq(queue_mark(fx.queue, fx.ready[0], 0, QUEUE_RCPT_DELIVERED),
                 0);
    cr_assert_eq(queue_mark(fx.queue, fx.ready[0], 1, QUEUE_RCPT_BOUNCED),
                 0);
    run_briefly();

    /* The test's reference keeps the message until released. */
    cr_assert_eq(stats().messages, 1);
    release_ready();
    cr_assert_eq(stats().messages, 0);
    cr_assert_eq(count_segment_files(), 1, "the active segment stays");

    reopen_queue();
    cr_assert_eq(fx.ready_count, 0);
    cr_assert_eq(count_segment_files(), 0);
    snprintf(path, sizeof(path), "%s/journal", fx.dir);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_size, 0, "journal not emptied");
}

Test(queue, finished_large_message_frees_segment)
{
    size_t len = 2 * SMALL_SEGMENT;
    char *body = make_body(len, 8);

    fx.segment_size = SMALL_SEGMENT;
    cr_assert_eq(open_queue(), 0);
    store_message("small\r\n", 7);
    store_message(body, len);
    cr_assert_eq(count_segment_files(), 2);

    cr_assert_eq(queue_mark(fx.queue, fx.ready[1], 0, QUEUE_RCPT_DELIVERED),
                 0);
    cr_assert_eq(queue_mark(fx.queue, fx.ready[1], 1, QUEUE_RCPT_DELIVERED),
                 0);
    queue_msg_unref(fx.queue, fx.ready[1]);
    fx.ready_count = 1;
    cr_assert_eq(count_segment_files(), 1);
    cr_assert_eq(stats().segments, 1);
    run_briefly();
    free(body);
}

Test(queue, ids_unique_across_reopen)
{
    char ids[6][QUEUE_ID_LEN + 1];

    cr_assert_eq(open_queue(), 0);
    for (int i = 0; i < 3; i++) {
        store_message("x\r\n", 3);
        snprintf(ids[i], sizeof(ids[i]), "%s", fx.done_id[i]);
    }
    reopen_queue();
    cr_assert_eq(fx.ready_count, 3);
    for (int i = 3; i < 6; i++) {
        store_message("y\r\n", 3);
        snprintf(ids[i], sizeof(ids[i]), "%s", fx.done_id[i]);
    }

    for (int i = 0; i < 6; i++) {
        cr_assert_eq(strspn(ids[i], "0123456789ABCDEF"), QUEUE_ID_LEN,
                     "bad id %s", ids[i]);
        for (int j = 0; j < i; j++) {
            cr_assert_lt(strcmp(ids[j], ids[i]), 0, "ids %s and %s",
                         ids[j], ids[i]);
        }
    }
}

Test(queue, aborted_writer_not_recovered)
{
    struct queue_writer *writer;

    cr_assert_eq(open_queue(), 0);
    writer = begin(0);
    append(writer, "dropped\r\n", 9);
    queue_writer_abort(writer);
    queue_writer_abort(NULL);
    cr_assert_eq(stats().writers, 0);
    store_message("kept\r\n", 6);

    reopen_queue();
    cr_assert_eq(fx.ready_count, 1);
    assert_body(fx.ready[0], "kept\r\n", 6);
    cr_assert_eq(stats().recovered_dropped, 0);
}

Test(queue, durability_none_completes_from_hook)
{
    struct queue_writer *writer;

    fx.durability = QUEUE_DURABILITY_NONE;
    cr_assert_eq(open_queue(), 0);
    writer = begin(0);
    append(writer, "fast\r\n", 6);
    commit(writer);
    cr_assert_eq(fx.done_count, 0, "done() ran inside commit");
    run_until_done(1);
    cr_assert_eq(fx.done_status[0], 0);
    cr_assert_eq(fx.ready_count, 1);
}

Test(queue, commits_in_one_turn_share_batch)
{
    struct queue_writer *writers[10];

    cr_assert_eq(open_queue(), 0);
    for (int i = 0; i < 10; i++) {
        writers[i] = begin(0);
        append(writers[i], "batched\r\n", 9);
    }
    for (int i = 0; i < 10; i++) {
        commit(writers[i]);
    }
    run_until_done(10);
    cr_assert_eq(fx.ready_count, 10);
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(fx.done_status[i], 0);
    }
}

Test(queue, journal_torn_tail_ignored)
{
    char path[PATH_MAX * 2];
    int fd;

    cr_assert_eq(open_queue(), 0);
    store_message("body\r\n", 6);
    cr_assert_eq(queue_mark(fx.queue, fx.ready[0], 1, QUEUE_RCPT_DELIVERED),
                 0);
    close_queue();

    /* A partial entry, as a crash in the middle of an append leaves. */
    snprintf(path, sizeof(path), "%s/journal", fx.dir);
    fd = open(path, O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "RRJE\x01\x02\x03", 7), 7);
    close(fd);

    cr_assert_eq(open_queue(), 0);
    cr_assert_eq(fx.ready_count, 1);
    cr_assert_eq(fx.ready[0]->rcpts[0].state, QUEUE_RCPT_QUEUED);
    cr_assert_eq(fx.ready[0]->rcpts[1].state, QUEUE_RCPT_DELIVERED);

    /* Entries written after the cut tail are read back. */
    cr_assert_eq(queue_mark(fx.queue, fx.ready[0], 0, QUEUE_RCPT_DELIVERED),
                 0);
    release_ready();
    run_briefly();
    reopen_queue();
    cr_assert_eq(fx.ready_count, 0);
    cr_assert_eq(count_segment_files(), 0);
}

Test(queue, second_open_locked_out)
{
    struct queue_options opts = { .dir = fx.dir };
    struct queue *second = NULL;

    cr_assert_eq(open_queue(), 0);
    cr_assert_eq(queue_open(&second, fx.reactor, &opts, on_ready, &fx), -1);
    cr_assert_eq(errno, EWOULDBLOCK);
}

/* open_second_logged opens fx.dir a second time with stderr, where the
 * log goes, in a file, and copies what was logged into log. Returns
 * queue_open's result, with errno kept. */
static int open_second_logged(char *log, size_t log_size)
{
    struct queue_options opts = { .dir = fx.dir };
    struct queue *second = NULL;
    char path[PATH_MAX + 8];
    int saved_stderr;
    int log_fd;
    int rc;
    int saved_errno;
    ssize_t got;

    snprintf(path, sizeof(path), "%s.log", fx.dir);
    log_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    cr_assert_geq(log_fd, 0, "open %s: %s", path, strerror(errno));
    saved_stderr = dup(STDERR_FILENO);
    cr_assert_geq(saved_stderr, 0, "dup: %s", strerror(errno));
    cr_assert_eq(dup2(log_fd, STDERR_FILENO), STDERR_FILENO);

    rc = queue_open(&second, fx.reactor, &opts, on_ready, &fx);
    saved_errno = errno;

    cr_assert_eq(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
    close(saved_stderr);
    got = pread(log_fd, log, log_size - 1, 0);
    cr_assert_geq(got, 0, "pread %s: %s", path, strerror(errno));
    log[got] = '\0';
    close(log_fd);
    unlink(path);
    errno = saved_errno;
    return rc;
}

Test(queue, second_open_logs_lock_holder)
{
    char log[4096];
    char want[PATH_MAX + 64];

    cr_assert_eq(open_queue(), 0);
    cr_assert_eq(open_second_logged(log, sizeof(log)), -1);
    cr_assert_eq(errno, EWOULDBLOCK);

    cr_expect_not_null(strstr(log, "event=queue_locked "), "log: %s", log);
    cr_expect_not_null(strstr(log, "error=\"the queue directory is locked "
                              "by another ringrelay process\""),
                       "log: %s", log);
    snprintf(want, sizeof(want), "lock_file=%s/journal ", fx.dir);
    cr_expect_not_null(strstr(log, want), "want %s in log: %s", want, log);
    /* This process holds the first lock, and /proc/locks names it. */
    snprintf(want, sizeof(want), "holder_pid=%ld ", (long)getpid());
    cr_expect_not_null(strstr(log, want), "want %s in log: %s", want, log);
    cr_expect_null(strstr(log, "Resource temporarily unavailable"),
                   "log: %s", log);
}

Test(queue, small_segment_size_rejected)
{
    fx.segment_size = 4096;
    cr_assert_eq(open_queue(), -1);
    cr_assert_eq(errno, EINVAL);
}

/* ---- shutdown with a sync in flight ------------------------------------- */

static void stop_hook_run(struct reactor_hook *hook)
{
    reactor_stop(hook->owner);
}

/* One reactor turn starts the batch's fsyncs from the queue's hook, and a
 * hook deferred after it stops the loop before any fsync is reaped. The
 * commit must still end, and its outcome decides what a reopen finds: a
 * finished fsync keeps the message, a cancelled one drops it, because its
 * client never got 250. */
Test(queue, shutdown_ends_sync_in_flight)
{
    struct reactor_hook stop = {.run = stop_hook_run};
    struct queue_writer *writer;
    int status;

    cr_assert_eq(open_queue(), 0);
    writer = begin(0);
    append(writer, "Subject: x\r\n\r\nhello\r\n", 21);
    commit(writer);
    stop.owner = fx.reactor;
    reactor_defer(fx.reactor, &stop);
    cr_assert_eq(reactor_run(fx.reactor), 0);
    cr_assert_eq(fx.done_count, 0, "the fsync was reaped in the first turn");
    cr_assert(queue_sync_pending(fx.queue));

    cr_assert_eq(reactor_shutdown(fx.reactor), 0);
    cr_assert_eq(fx.done_count, 1, "done() ran %zu times", fx.done_count);
    status = fx.done_status[0];
    cr_assert(status == 0 || status == -ECANCELED, "commit status: %s",
              strerror(-status));
    cr_assert_not(queue_sync_pending(fx.queue));

    reopen_queue();
    cr_assert_eq(fx.ready_count, status == 0 ? 1 : 0,
                 "status %d, %zu messages recovered", status,
                 fx.ready_count);
}

/* A queue_mark() defers the group-commit hook. Closing before the turn
 * ends must take the hook off the reactor, or the next turn runs it on
 * the freed queue. */
Test(queue, close_cancels_deferred_hook)
{
    cr_assert_eq(open_queue(), 0);
    store_message("body\r\n", 6);
    cr_assert_eq(queue_mark(fx.queue, fx.ready[0], 0, QUEUE_RCPT_DELIVERED),
                 0);
    cr_assert(queue_sync_pending(fx.queue));
    close_queue();
    run_briefly();
}

/* late_commit: a writer committed from a timer, so in a later reactor
 * turn than the commits made before reactor_run(). A hook deferred after
 * the commits arms the timer, so it runs after the queue's hook and reads
 * the clock of the first turn, not the stale one from before it. */
struct late_commit {
    struct reactor_hook arm;
    struct reactor_timer timer;
    struct queue_writer *writer;
};

static void late_commit_fired(struct reactor_timer *timer)
{
    struct late_commit *late = timer->owner;

    commit(late->writer);
}

static void late_commit_arm(struct reactor_hook *hook)
{
    struct late_commit *late = hook->owner;

    reactor_timer_set(fx.reactor, &late->timer, 5);
}

/* commit_two_turns commits one message now and one 5 ms later, and
 * returns the number of batches that made them durable. */
static uint64_t commit_two_turns(void)
{
    struct late_commit late = {
        .arm = {.run = late_commit_arm},
        .timer = {.fire = late_commit_fired},
    };
    struct queue_writer *first;

    late.arm.owner = &late;
    late.timer.owner = &late;
    cr_assert_eq(open_queue(), 0);
    first = begin(0);
    append(first, "first\r\n", 7);
    late.writer = begin(0);
    append(late.writer, "second\r\n", 8);
    commit(first);
    reactor_defer(fx.reactor, &late.arm);
    run_until_done(2);
    cr_assert_eq(fx.done_status[0], 0);
    cr_assert_eq(fx.done_status[1], 0);
    cr_assert_eq(fx.ready_count, 2);
    cr_assert_eq(stats().commits, 2);
    return stats().batches;
}

Test(queue, batch_joins_later_turn)
{
    fx.durability = QUEUE_DURABILITY_BATCH;
    fx.batch_wait_us = 100000;
    cr_assert_eq(commit_two_turns(), 1);
}

Test(queue, fsync_syncs_each_turn)
{
    cr_assert_eq(commit_two_turns(), 2);
}

/* The first batch of a fresh queue syncs the new segment and the
 * directory that got its entry, the second only the segment. */
Test(queue, sync_stats_count_fsyncs)
{
    cr_assert_eq(open_queue(), 0);
    store_message("one\r\n", 5);
    cr_assert_eq(stats().commits, 1);
    cr_assert_eq(stats().batches, 1);
    cr_assert_eq(stats().fsyncs, 2);
    store_message("two\r\n", 5);
    cr_assert_eq(stats().commits, 2);
    cr_assert_eq(stats().batches, 2);
    cr_assert_eq(stats().fsyncs, 3);
}

Test(queue, sync_stats_none_no_fsyncs)
{
    fx.durability = QUEUE_DURABILITY_NONE;
    cr_assert_eq(open_queue(), 0);
    store_message("one\r\n", 5);
    cr_assert_eq(stats().commits, 1);
    cr_assert_eq(stats().batches, 1);
    cr_assert_eq(stats().fsyncs, 0);
}

/* commit_many begins and commits count writers in one turn. */
static void commit_many(size_t count)
{
    struct queue_writer *writers[MAX_MSGS];

    cr_assert_leq(count, MAX_MSGS);
    for (size_t i = 0; i < count; i++) {
        writers[i] = begin(0);
        append(writers[i], "many\r\n", 6);
    }
    for (size_t i = 0; i < count; i++) {
        commit(writers[i]);
    }
}

/* A full batch starts at once: with a wait of 100 s, only the count can
 * end it within run_until_done()'s five seconds. */
Test(queue, batch_full_starts_at_once)
{
    fx.durability = QUEUE_DURABILITY_BATCH;
    fx.batch_wait_us = 100000000;
    fx.segment_size = SMALL_SEGMENT * 16;
    cr_assert_eq(open_queue(), 0);
    commit_many(QUEUE_BATCH_MAX_COMMITS);
    run_until_done(QUEUE_BATCH_MAX_COMMITS);
    cr_assert_eq(stats().batches, 1);
    cr_assert_eq(stats().commits, QUEUE_BATCH_MAX_COMMITS);
}

Test(queue, batch_below_max_waits)
{
    fx.durability = QUEUE_DURABILITY_BATCH;
    fx.batch_wait_us = 100000000;
    cr_assert_eq(open_queue(), 0);
    commit_many(3);
    run_briefly();
    cr_assert_eq(fx.done_count, 0, "the batch did not wait");
    cr_assert(queue_sync_pending(fx.queue));
}

/* Commits still waiting in a batch at shutdown get no done(), as
 * queue_close() promises, but close syncs them, so a reopen finds them.
 * The loop that runs after close must not fire the cancelled timer. */
Test(queue, close_with_batch_waiting)
{
    fx.durability = QUEUE_DURABILITY_BATCH;
    fx.batch_wait_us = 100000000;
    cr_assert_eq(open_queue(), 0);
    commit_many(3);
    run_briefly();
    cr_assert(queue_sync_pending(fx.queue));
    cr_assert_eq(reactor_shutdown(fx.reactor), 0);
    close_queue();
    cr_assert_eq(fx.done_count, 0);

    reactor_free(fx.reactor);
    cr_assert_eq(reactor_new(&fx.reactor, NULL), 0);
    cr_assert_eq(open_queue(), 0);
    cr_assert_eq(fx.ready_count, 3);
}

/* A body that would take the queue past max_size fails with EDQUOT, the
 * messages already queued stay, and delivering them frees the space. */
Test(queue, max_size_rejects_growth)
{
    char *body = make_body(16 * 1024, 3);
    struct queue_writer *writer;
    size_t stored = 0;

    fx.max_size = 64 * 1024;
    cr_assert_eq(open_queue(), 0);
    cr_assert_null(queue_space_shortage(fx.queue, 0));
    for (;;) {
        writer = begin(0);
        if (queue_writer_append(writer, body, 16 * 1024) != 0) {
            break;
        }
        commit(writer);
        run_until_done(++stored);
        cr_assert_lt(stored, 8, "max_size never reached");
    }
    cr_assert_eq(errno, EDQUOT);
    queue_writer_abort(writer);
    cr_assert_geq(stored, 2);
    cr_assert_leq(stats().space_used, fx.max_size);
    cr_assert_eq(fx.ready_count, stored);

    for (size_t i = 0; i < stored; i++) {
        assert_body(fx.ready[i], body, 16 * 1024);
        cr_assert_eq(queue_mark(fx.queue, fx.ready[i], 0,
                                QUEUE_RCPT_DELIVERED), 0);
        cr_assert_eq(queue_mark(fx.queue, fx.ready[i], 1,
                                QUEUE_RCPT_DELIVERED), 0);
    }
    release_ready();
    cr_assert_eq(stats().space_used, 0);
    store_message(body, 16 * 1024);
    free(body);
}

Test(queue, max_size_full_reports_shortage)
{
    struct queue_writer *writer;

    fx.max_size = 8 * 1024;
    cr_assert_eq(open_queue(), 0);
    writer = begin(4 * 1024);
    cr_assert_str_eq(queue_space_shortage(fx.queue, 0), "queue_max_size");
    queue_writer_abort(writer);
    cr_assert_null(queue_space_shortage(fx.queue, 0));
    cr_assert_eq(stats().space_used, 0);
}

/* No file system has 2^60 bytes free, so the floor is always reached:
 * the queue reports the shortage and creates no segment. */
Test(queue, min_free_floor_rejects)
{
    struct queue_writer *writer = NULL;

    fx.min_free = (uint64_t)1 << 60;
    cr_assert_eq(open_queue(), 0);
    cr_assert_str_eq(queue_space_shortage(fx.queue, 0), "queue_min_free");
    cr_assert_eq(queue_writer_begin(fx.queue, &writer, &test_env, 0), -1);
    cr_assert_eq(errno, ENOSPC);
    cr_assert_null(writer);
    cr_assert_eq(count_segment_files(), 0);
}

/* free_bytes returns the bytes free for unprivileged users below root. */
static uint64_t free_bytes(void)
{
    struct statvfs info;

    cr_assert_eq(statvfs(fx.root, &info), 0);
    return (uint64_t)info.f_bavail * info.f_frsize;
}

/* A new segment is preallocated whole, so MAIL is refused when the floor
 * would not hold after it. The margins of 128 MiB and 1 GiB allow for
 * other programs writing to the file system meanwhile. */
Test(queue, min_free_counts_new_segment)
{
    uint64_t segment = 256u * 1024 * 1024;
    uint64_t available = free_bytes();

    cr_assert_gt(available, 2 * segment + ((uint64_t)1 << 30),
                 "too little free space for the test");
    fx.segment_size = segment;
    fx.min_free = available - segment / 2;
    cr_assert_eq(open_queue(), 0);
    cr_assert_str_eq(queue_space_shortage(fx.queue, 0), "queue_min_free");
    close_queue();

    fx.min_free = available - segment - ((uint64_t)1 << 30);
    cr_assert_eq(open_queue(), 0);
    cr_assert_null(queue_space_shortage(fx.queue, 0));
}

/* Without SIZE=, an active segment with a few KB of room does not count
 * when no new segment fits. The free space is set in the cache, so the
 * test does not depend on other programs' use of the file system. */
Test(queue, min_free_unsized_needs_room)
{
    size_t len = SMALL_SEGMENT * 4 - 160u * 1024;
    char *body = make_body(len, 1);
    uint64_t room;

    fx.min_free = 4u * 1024 * 1024;
    cr_assert_eq(open_queue(), 0);
    store_message(body, len);
    free(body);
    room = fx.queue->active->size - fx.queue->active->tail;
    cr_assert_gt(room, 64u * 1024, "room %" PRIu64, room);
    cr_assert_lt(room, 256u * 1024, "room %" PRIu64, room);

    /* Above the floor, but below it after a new 1 MiB segment. */
    fx.queue->free_bytes = fx.min_free + 512u * 1024;
    fx.queue->free_known = true;
    fx.queue->free_checked_ms = reactor_now_ms(fx.reactor);
    cr_assert_str_eq(queue_space_shortage(fx.queue, 0), "queue_min_free");
    cr_assert_null(queue_space_shortage(fx.queue, 32u * 1024));
    cr_assert_str_eq(queue_space_shortage(fx.queue, room + 4096),
                     "queue_min_free");
}

/* MAIL's SIZE= is checked against the room left below max_size. */
Test(queue, max_size_checks_size_hint)
{
    fx.max_size = 1024 * 1024;
    cr_assert_eq(open_queue(), 0);
    cr_assert_null(queue_space_shortage(fx.queue, 512 * 1024));
    cr_assert_str_eq(queue_space_shortage(fx.queue, 2 * 1024 * 1024),
                     "queue_max_size");
}

/* ---- journal syncs ------------------------------------------------------ */

/* The journal interval in milliseconds, and twice that: long enough for
 * the journal timer to fire and its fsync to end. */
#define JOURNAL_INTERVAL_MS (QUEUE_JOURNAL_SYNC_INTERVAL_US / 1000)
#define JOURNAL_WAIT_MS (2 * JOURNAL_INTERVAL_MS)

/* journal_datasyncs counts fdatasync() calls on a file named "journal".
 * This definition replaces the C library's for the queue code linked into
 * the test and still syncs, so a test can tell that a blocking sync, such
 * as the one of queue_close(), reached the journal. Syncs submitted to
 * io_uring do not pass through it. */
static size_t journal_datasyncs;

int fdatasync(int fd)
{
    char link[32];
    char path[PATH_MAX];
    const char *base;
    ssize_t len;

    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    len = readlink(link, path, sizeof(path) - 1);
    if (len > 0) {
        path[len] = '\0';
        base = strrchr(path, '/');
        if (base != NULL && strcmp(base + 1, "journal") == 0) {
            journal_datasyncs++;
        }
    }
    return (int)syscall(SYS_fdatasync, fd);
}

/* store_and_mark stores one message and marks its first recipient
 * delivered, which leaves one journal entry unsynced. The first batch
 * of a fresh queue syncs the segment and the directory. */
static void store_and_mark(void)
{
    store_message("first\r\n", 7);
    cr_assert_eq(stats().fsyncs, 2);
    cr_assert_eq(queue_mark(fx.queue, fx.ready[0], 0, QUEUE_RCPT_DELIVERED),
                 0);
}

/* commit_second commits one more message and waits for its batch. */
static void commit_second(void)
{
    struct queue_writer *writer = begin(0);

    append(writer, "second\r\n", 8);
    commit(writer);
    run_until_done(2);
    cr_assert_eq(fx.done_status[1], 0);
    cr_assert_eq(stats().batches, 2);
}

/* A delivery's journal entry is synced within the interval by a batch of
 * its own when no mail arrives, and a stop does not wait for it. */
Test(queue, batch_journal_synced_without_commits)
{
    fx.durability = QUEUE_DURABILITY_BATCH;
    fx.batch_wait_us = 1000;
    cr_assert_eq(open_queue(), 0);
    store_and_mark();
    run_for(JOURNAL_INTERVAL_MS / 2);
    cr_assert_eq(stats().fsyncs, 2, "the journal was synced too early");
    cr_assert_not(queue_sync_pending(fx.queue),
                  "a stop would wait for the journal");

    run_for(JOURNAL_WAIT_MS);
    cr_assert_eq(stats().fsyncs, 3, "the journal was not synced");
    cr_assert_eq(stats().batches, 1);
    cr_assert_not(queue_sync_pending(fx.queue));
}

/* A batch of commits inside the journal's interval syncs only the
 * segment, and the journal follows when the interval ends. */
Test(queue, batch_commit_skips_journal_sync)
{
    fx.durability = QUEUE_DURABILITY_BATCH;
    fx.batch_wait_us = 1000;
    cr_assert_eq(open_queue(), 0);
    store_and_mark();
    commit_second();
    cr_assert_eq(stats().fsyncs, 3, "the batch synced the journal too");

    run_for(JOURNAL_WAIT_MS);
    cr_assert_eq(stats().fsyncs, 4, "the journal was not synced");
}

Test(queue, fsync_commit_syncs_journal)
{
    cr_assert_eq(open_queue(), 0);
    store_and_mark();
    commit_second();
    cr_assert_eq(stats().fsyncs, 4, "segment and journal, one each");
}

/* queue_sync_now() syncs the journal and stops its timer, so the
 * interval's end syncs nothing more. */
Test(queue, batch_sync_now_syncs_journal)
{
    size_t before;
    uint64_t fsyncs;

    fx.durability = QUEUE_DURABILITY_BATCH;
    cr_assert_eq(open_queue(), 0);
    store_and_mark();
    run_briefly();
    before = journal_datasyncs;
    cr_assert_eq(queue_sync_now(fx.queue), 0);
    cr_assert_eq(journal_datasyncs, before + 1);

    fsyncs = stats().fsyncs;
    run_for(JOURNAL_WAIT_MS);
    cr_assert_eq(stats().fsyncs, fsyncs, "the clean journal was synced");
}

/* A clean stop inside the interval syncs the journal, and the reopened
 * queue has the delivery. The loop after close must not fire the
 * cancelled journal timer. */
Test(queue, batch_close_syncs_journal)
{
    size_t before;

    fx.durability = QUEUE_DURABILITY_BATCH;
    cr_assert_eq(open_queue(), 0);
    store_and_mark();
    run_briefly();
    before = journal_datasyncs;
    cr_assert_eq(reactor_shutdown(fx.reactor), 0);
    close_queue();
    cr_assert_eq(journal_datasyncs, before + 1);

    reactor_free(fx.reactor);
    cr_assert_eq(reactor_new(&fx.reactor, NULL), 0);
    cr_assert_eq(open_queue(), 0);
    cr_assert_eq(fx.ready_count, 1);
    cr_assert_eq(fx.ready[0]->rcpts[0].state, QUEUE_RCPT_DELIVERED);
    cr_assert_eq(fx.ready[0]->rcpts[1].state, QUEUE_RCPT_QUEUED);
}

Test(queue, failed_journal_write_keeps_result)
{
    int full;

    cr_assert_eq(open_queue(), 0);
    store_message("body\r\n", 6);

    /* /dev/full fails every write with ENOSPC, as a full disk does. */
    full = open("/dev/full", O_WRONLY);
    cr_assert_geq(full, 0);
    cr_assert_geq(dup2(full, fx.queue->journal.fd), 0);
    close(full);

    cr_assert_eq(queue_mark(fx.queue, fx.ready[0], 0, QUEUE_RCPT_DELIVERED),
                 -1);
    cr_assert_eq(errno, ENOSPC);
    cr_assert_eq(fx.ready[0]->rcpts[0].state, QUEUE_RCPT_DELIVERED);
    cr_assert_eq(fx.ready[0]->rcpts[1].state, QUEUE_RCPT_QUEUED);
}

/* segment_path writes the path of segment file name below the queue
 * directory, or below its corrupt/ subdirectory. */
static void segment_path(char *buf, size_t size, const char *name,
                         bool corrupt)
{
    snprintf(buf, size, "%s/%s%s", fx.dir, corrupt ? "corrupt/" : "",
             name);
}

static bool file_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

/* xor_segment_bytes flips every bit of len bytes at offset of seg-1. */
static void xor_segment_bytes(off_t offset, size_t len, bool corrupt)
{
    char path[PATH_MAX * 2];
    uint8_t bytes[16];
    int fd;

    cr_assert_leq(len, sizeof(bytes));
    segment_path(path, sizeof(path), "seg-00000001", corrupt);
    fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    cr_assert_eq(pread(fd, bytes, len, offset), (ssize_t)len);
    for (size_t i = 0; i < len; i++) {
        bytes[i] ^= 0xff;
    }
    cr_assert_eq(pwrite(fd, bytes, len, offset), (ssize_t)len);
    close(fd);
}

Test(queue, invalid_header_quarantined_keeps_hold)
{
    char queued[PATH_MAX * 2];
    char corrupt[PATH_MAX * 2];

    cr_assert_eq(open_queue(), 0);
    store_message("held body\r\n", 11);
    cr_assert_eq(queue_hold(fx.queue, fx.ready[0]), 2);
    run_briefly();
    close_queue();

    /* Bytes 4-7 are the format version and reserved bytes. */
    xor_segment_bytes(4, 4, false);
    cr_assert_eq(open_queue(), 0);
    cr_assert_eq(fx.ready_count, 0);
    segment_path(queued, sizeof(queued), "seg-00000001", false);
    segment_path(corrupt, sizeof(corrupt), "seg-00000001", true);
    cr_assert_not(file_exists(queued), "invalid segment left in place");
    cr_assert(file_exists(corrupt), "invalid segment not in corrupt/");
    reopen_queue();
    close_queue();

    /* The operator repairs the file and moves it back. */
    xor_segment_bytes(4, 4, true);
    cr_assert_eq(rename(corrupt, queued), 0);
    cr_assert_eq(open_queue(), 0);
    cr_assert_eq(fx.ready_count, 1);
    cr_assert(fx.ready[0]->rcpts[0].held, "hold lost");
    cr_assert(fx.ready[0]->rcpts[1].held, "hold lost");
}

/* write_segment_zeros replaces seg-1 with len zero bytes from offset
 * 0 when whole is set, or zeroes its first len bytes otherwise. */
static void write_segment_zeros(size_t len, bool whole)
{
    char path[PATH_MAX * 2];
    uint8_t zeros[4096] = { 0 };
    int fd;

    cr_assert_leq(len, sizeof(zeros));
    segment_path(path, sizeof(path), "seg-00000001", false);
    fd = open(path, O_RDWR | (whole ? O_TRUNC : 0));
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    cr_assert_eq(pwrite(fd, zeros, len, 0), (ssize_t)len);
    close(fd);
}

Test(queue, zeroed_header_quarantined_keeps_hold)
{
    char queued[PATH_MAX * 2];
    char corrupt[PATH_MAX * 2];
    uint8_t header[QUEUE_SEGMENT_HEADER_LEN];
    int fd;

    cr_assert_eq(open_queue(), 0);
    store_message("held body\r\n", 11);
    cr_assert_eq(queue_hold(fx.queue, fx.ready[0]), 2);
    run_briefly();
    close_queue();

    segment_path(queued, sizeof(queued), "seg-00000001", false);
    segment_path(corrupt, sizeof(corrupt), "seg-00000001", true);
    fd = open(queued, O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(read(fd, header, sizeof(header)), (ssize_t)sizeof(header));
    close(fd);
    write_segment_zeros(sizeof(header), false);

    cr_assert_eq(open_queue(), 0);
    cr_assert_eq(fx.ready_count, 0);
    cr_assert_not(file_exists(queued), "zeroed segment left in place");
    cr_assert(file_exists(corrupt), "zeroed segment not in corrupt/");
    reopen_queue();
    close_queue();

    /* The operator restores the header and moves the file back. */
    fd = open(corrupt, O_WRONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, header, sizeof(header)), (ssize_t)sizeof(header));
    close(fd);
    cr_assert_eq(rename(corrupt, queued), 0);
    cr_assert_eq(open_queue(), 0);
    cr_assert_eq(fx.ready_count, 1);
    cr_assert(fx.ready[0]->rcpts[0].held, "hold lost");
    cr_assert(fx.ready[0]->rcpts[1].held, "hold lost");
}

Test(queue, short_segment_with_data_quarantined)
{
    char queued[PATH_MAX * 2];
    char corrupt[PATH_MAX * 2];

    cr_assert_eq(open_queue(), 0);
    store_message("body\r\n", 6);
    close_queue();

    /* The first 10 bytes hold the magic, which is not zero. */
    segment_path(queued, sizeof(queued), "seg-00000001", false);
    segment_path(corrupt, sizeof(corrupt), "seg-00000001", true);
    cr_assert_eq(truncate(queued, 10), 0);
    cr_assert_eq(open_queue(), 0);
    cr_assert_eq(fx.ready_count, 0);
    cr_assert_not(file_exists(queued), "short segment left in place");
    cr_assert(file_exists(corrupt), "short segment not in corrupt/");
}

Test(queue, all_zero_segment_removed)
{
    static const size_t lengths[] = { 0, 10, 4096 };
    char queued[PATH_MAX * 2];
    char corrupt[PATH_MAX * 2];

    segment_path(queued, sizeof(queued), "seg-00000001", false);
    segment_path(corrupt, sizeof(corrupt), "seg-00000001", true);
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        cr_assert_eq(open_queue(), 0);
        store_message("body\r\n", 6);
        close_queue();

        /* A creation cut before its header leaves only zero bytes. */
        write_segment_zeros(lengths[i], true);
        cr_assert_eq(open_queue(), 0);
        cr_assert_eq(fx.ready_count, 0);
        cr_assert_not(file_exists(queued), "length %zu: not removed",
                      lengths[i]);
        cr_assert_not(file_exists(corrupt), "length %zu: quarantined",
                      lengths[i]);
        close_queue();
    }
}

Test(queue, journal_new_without_journal_adopted)
{
    char journal[PATH_MAX * 2];
    char journal_new[PATH_MAX * 2];

    cr_assert_eq(open_queue(), 0);
    store_message("held body\r\n", 11);
    cr_assert_eq(queue_hold(fx.queue, fx.ready[0]), 2);
    run_briefly();
    close_queue();

    snprintf(journal, sizeof(journal), "%s/journal", fx.dir);
    snprintf(journal_new, sizeof(journal_new), "%s/journal.new", fx.dir);
    cr_assert_eq(rename(journal, journal_new), 0);
    cr_assert_eq(open_queue(), 0);
    cr_assert_eq(fx.ready_count, 1);
    cr_assert(fx.ready[0]->rcpts[0].held, "hold lost");
    cr_assert(fx.ready[0]->rcpts[1].held, "hold lost");
    cr_assert(file_exists(journal), "journal.new not renamed");
    cr_assert_not(file_exists(journal_new), "journal.new left behind");
}

Test(queue, truncated_segment_keeps_intact_records)
{
    char *bodies[3];
    char queued[PATH_MAX * 2];
    char corrupt[PATH_MAX * 2];
    struct stat st;

    cr_assert_eq(open_queue(), 0);
    for (unsigned i = 0; i < 3; i++) {
        bodies[i] = make_body(30000, i);
        store_message(bodies[i], 30000);
    }
    close_queue();

    /* Cut the file inside the third record. */
    segment_path(queued, sizeof(queued), "seg-00000001", false);
    cr_assert_eq(truncate(queued, 80000), 0);
    cr_assert_eq(open_queue(), 0);
    cr_assert_eq(fx.ready_count, 2);
    assert_body(fx.ready[0], bodies[0], 30000);
    assert_body(fx.ready[1], bodies[1], 30000);
    cr_assert_eq(stats().recovered_dropped, 1);

    /* Once both are delivered, the file goes to corrupt/ whole. */
    for (size_t m = 0; m < 2; m++) {
        for (size_t r = 0; r < 2; r++) {
            cr_assert_eq(queue_mark(fx.queue, fx.ready[m], r,
                                    QUEUE_RCPT_DELIVERED), 0);
        }
    }
    run_briefly();
    release_ready();
    segment_path(corrupt, sizeof(corrupt), "seg-00000001", true);
    cr_assert_not(file_exists(queued), "truncated segment left in place");
    cr_assert_eq(stat(corrupt, &st), 0, "truncated segment not kept");
    cr_assert_eq(st.st_size, 80000);
    for (unsigned i = 0; i < 3; i++) {
        free(bodies[i]);
    }
}

Test(queue, dropped_record_segment_quarantined)
{
    const char good[] = "Subject: good\r\n\r\nkeep me\r\n";
    const char bad[] = "Subject: bad\r\n\r\nMARKER-8Qy body\r\n";
    char corrupt[PATH_MAX * 2];

    cr_assert_eq(open_queue(), 0);
    store_message(good, sizeof(good) - 1);
    store_message(bad, sizeof(bad) - 1);
    close_queue();

    flip_byte_after("MARKER-8Q");
    cr_assert_eq(open_queue(), 0);
    cr_assert_eq(fx.ready_count, 1);
    cr_assert_eq(queue_delete(fx.queue, fx.ready[0]), 2);
    run_briefly();
    release_ready();
    segment_path(corrupt, sizeof(corrupt), "seg-00000001", true);
    cr_assert(file_exists(corrupt), "segment with a dropped record removed");
    cr_assert_eq(count_segment_files(), 0);
}

Test(queue, quarantine_name_taken_gets_suffix)
{
    char corrupt[PATH_MAX * 2];

    cr_assert_eq(open_queue(), 0);
    store_message("one\r\n", 5);
    close_queue();
    xor_segment_bytes(0, 4, false);
    segment_path(corrupt, sizeof(corrupt), "", true);
    cr_assert_eq(mkdir(corrupt, 0700), 0);
    segment_path(corrupt, sizeof(corrupt), "seg-00000001", true);
    cr_assert_eq(close(open(corrupt, O_CREAT | O_WRONLY, 0600)), 0);
    cr_assert_eq(open_queue(), 0);
    segment_path(corrupt, sizeof(corrupt), "seg-00000001.1", true);
    cr_assert(file_exists(corrupt), "second copy not kept as .1");
    cr_assert_eq(count_segment_files(), 0);
}

/* capture_stderr sends stderr to a temporary file until restore_stderr()
 * copies what was written into log. */
static int capture_stderr(FILE **file)
{
    int saved = dup(STDERR_FILENO);

    fflush(stderr);
    *file = tmpfile();
    cr_assert_not_null(*file);
    cr_assert_geq(dup2(fileno(*file), STDERR_FILENO), 0);
    return saved;
}

static void restore_stderr(int saved, FILE *file, char *log, size_t size)
{
    size_t len;

    fflush(stderr);
    cr_assert_geq(dup2(saved, STDERR_FILENO), 0);
    close(saved);
    rewind(file);
    len = fread(log, 1, size - 1, file);
    log[len] = '\0';
    fclose(file);
}

Test(queue, missing_journal_warned)
{
    char path[PATH_MAX * 2];
    static char log[16384];
    FILE *file;
    int saved;

    cr_assert_eq(open_queue(), 0);
    store_message("body\r\n", 6);
    close_queue();
    snprintf(path, sizeof(path), "%s/journal", fx.dir);
    cr_assert_eq(unlink(path), 0);

    saved = capture_stderr(&file);
    cr_assert_eq(open_queue(), 0);
    restore_stderr(saved, file, log, sizeof(log));
    cr_assert_not_null(strstr(log, "level=warning event=queue_journal_missing"
                                   " file="), "log: %s", log);
    cr_assert_eq(fx.ready_count, 1);

    /* The journal exists from now on, so the next start is quiet. */
    reopen_queue();
    saved = capture_stderr(&file);
    reopen_queue();
    restore_stderr(saved, file, log, sizeof(log));
    cr_assert_null(strstr(log, "queue_journal_missing"), "log: %s", log);
}

Test(queue, open_dir_mode_warned)
{
    static char log[16384];
    FILE *file;
    int saved;

    cr_assert_eq(open_queue(), 0);
    close_queue();
    cr_assert_eq(chmod(fx.dir, 0755), 0);
    saved = capture_stderr(&file);
    cr_assert_eq(open_queue(), 0);
    restore_stderr(saved, file, log, sizeof(log));
    cr_assert_not_null(strstr(log, "level=warning event=queue_dir_mode "),
                       "log: %s", log);
    cr_assert_not_null(strstr(log, " mode=0755 "), "log: %s", log);
    cr_assert_not_null(strstr(log, " batch_wait_us="), "log: %s", log);
}

Test(queue, failed_open_logs_no_sync_stats)
{
    struct queue *second = NULL;
    struct queue_options opts = { .dir = fx.dir };
    static char log[16384];
    FILE *file;
    int saved;

    cr_assert_eq(open_queue(), 0);
    saved = capture_stderr(&file);
    cr_assert_eq(queue_open(&second, fx.reactor, &opts, on_ready, &fx), -1);
    restore_stderr(saved, file, log, sizeof(log));
    cr_assert_not_null(strstr(log, "event=queue_locked "), "log: %s", log);
    cr_assert_null(strstr(log, "queue_sync_stats"), "log: %s", log);
}

Test(queue, restart_reuses_last_segment)
{
    cr_assert_eq(open_queue(), 0);
    store_message("first\r\n", 7);
    reopen_queue();
    cr_assert_eq(fx.ready_count, 1);
    store_message("second\r\n", 8);
    cr_assert_eq(count_segment_files(), 1, "restart started a new file");
    reopen_queue();
    cr_assert_eq(fx.ready_count, 2);
    assert_body(fx.ready[0], "first\r\n", 7);
    assert_body(fx.ready[1], "second\r\n", 8);
    cr_assert_eq(stats().recovered_dropped, 0);
}

Test(queue, cut_segment_counted_as_quarantined)
{
    char *body = make_body(30000, 1);
    char queued[PATH_MAX * 2];
    char corrupt[PATH_MAX * 2];
    static char log[16384];
    FILE *file;
    int saved;

    cr_assert_eq(open_queue(), 0);
    store_message(body, 30000);
    free(body);
    close_queue();

    /* The header stays, but the only record is cut. */
    segment_path(queued, sizeof(queued), "seg-00000001", false);
    segment_path(corrupt, sizeof(corrupt), "seg-00000001", true);
    cr_assert_eq(truncate(queued, 5000), 0);
    saved = capture_stderr(&file);
    cr_assert_eq(open_queue(), 0);
    restore_stderr(saved, file, log, sizeof(log));
    cr_assert(file_exists(corrupt), "cut segment not in corrupt/");
    cr_assert_not_null(strstr(log, " removed_segments=0 quarantined=1"),
                       "log: %s", log);
}

Test(queue, failed_begin_keeps_id)
{
    struct queue_writer *first;
    struct queue_writer *second = NULL;
    static char log[16384];
    char expected[64];
    FILE *file;
    int saved;

    fx.max_size = 8 * 1024;
    cr_assert_eq(open_queue(), 0);
    first = begin(4 * 1024);
    cr_assert_null(queue_failed_writer_id(fx.queue));
    saved = capture_stderr(&file);
    cr_assert_eq(queue_writer_begin(fx.queue, &second, &test_env, 0), -1);
    restore_stderr(saved, file, log, sizeof(log));
    cr_assert_eq(errno, EDQUOT);
    cr_assert_not_null(queue_failed_writer_id(fx.queue));
    cr_assert_eq(strlen(queue_failed_writer_id(fx.queue)), QUEUE_ID_LEN);
    snprintf(expected, sizeof(expected), "id=%s event=queue_reserve_failed",
             queue_failed_writer_id(fx.queue));
    cr_assert_not_null(strstr(log, expected), "log: %s", log);

    /* A later begin that works clears it. */
    queue_writer_abort(first);
    first = begin(0);
    cr_assert_null(queue_failed_writer_id(fx.queue));
    queue_writer_abort(first);
}
