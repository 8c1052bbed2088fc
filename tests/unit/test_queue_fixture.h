/* Shared fixture of the queue tests that open a real queue directory on a
 * reactor: the state, the queue's callbacks and the reactor guard. Each
 * test program includes it once; the functions are static so that every
 * program gets its own copy. */
#ifndef RINGRELAY_TESTS_TEST_QUEUE_FIXTURE_H
#define RINGRELAY_TESTS_TEST_QUEUE_FIXTURE_H

#include <criterion/criterion.h>

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/queue.h"
#include "core/reactor.h"

#define MAX_MSGS 64

struct fixture {
    char root[256];              /* mkdtemp directory */
    char dir[PATH_MAX];          /* queue directory below root */
    struct reactor *reactor;
    struct queue *queue;
    uint64_t segment_size;       /* bytes; 0 where a test uses a constant */
    struct queue_msg *ready[MAX_MSGS]; /* referenced by the test */
    size_t ready_count;
    size_t done_count;
    size_t done_target;          /* stop the reactor at this count */
    int last_status;
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

    (void)id;
    f->last_status = status;
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

/* release_ready drops the test's references to the messages it got. */
static void release_ready(void)
{
    for (size_t i = 0; i < fx.ready_count; i++) {
        queue_msg_unref(fx.queue, fx.ready[i]);
    }
    fx.ready_count = 0;
}

#endif
