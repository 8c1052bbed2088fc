/* Completion reactor on io_uring.
 *
 * Each SQE that starts an operation carries the reactor_op pointer as its
 * user_data. Cancel requests carry REACTOR_TAG_CANCEL instead, so their
 * completions never reach an op. Ops are caller memory: after an op's
 * final callback (more == false) the reactor never touches it again,
 * because the callback may free or re-arm it.
 *
 * One turn: submit and wait in the kernel, dispatch the completions that
 * are ready, return the provided buffers they used, re-arm multishot ops
 * that the kernel stopped, fire due timers, run deferred hooks. */
#include "core/reactor.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <liburing.h>

#include "core/log.h"
#include "core/uring_compat.h"

#define REACTOR_DEFAULT_ENTRIES 1024u
#define REACTOR_DEFAULT_RECV_BUFFERS 512u
#define REACTOR_DEFAULT_RECV_BUFFER_SIZE (16u * 1024u)

/* Multishot operations post many completions per submission, so the
 * completion queue is larger than the submission queue. The kernel clamps
 * it to its own maximum (IORING_SETUP_CLAMP). */
#define REACTOR_CQ_FACTOR 8u

#define REACTOR_BUFFER_GROUP 0

/* user_data of cancel requests. Ops are pointers to aligned structs, so no
 * op has this address. */
#define REACTOR_TAG_CANCEL ((uint64_t)1)

/* user_data of the request that cancels everything in reactor_free(). */
#define REACTOR_TAG_CANCEL_ALL ((uint64_t)2)

/* How long reactor_free() waits for cancelled requests to complete. */
#define REACTOR_FREE_WAIT_MS 500
#define REACTOR_FREE_ROUNDS 64

/* How long reactor_shutdown() waits for the final completions. Cancelled
 * socket and pipe requests end at once. A cancel of an fsync that already
 * runs fails with EALREADY (io_uring_prep_cancel(3)), and the fsync ends
 * when the device has written the data. So the bound only keeps a stuck
 * device from holding up the stop forever. */
#define REACTOR_SHUTDOWN_WAIT_MS 5000u

enum reactor_op_kind {
    REACTOR_OP_ACCEPT = 1,
    REACTOR_OP_RECV_MULTISHOT,
    REACTOR_OP_RECV,
    REACTOR_OP_READ,
    REACTOR_OP_SEND,
    REACTOR_OP_SENDV,
    REACTOR_OP_CONNECT,
    REACTOR_OP_FSYNC,
};

struct reactor {
    struct io_uring ring;
    bool ring_ready;
    unsigned cq_entries;

    /* Provided-buffer ring: buffer i starts at buffers + i * buffer_size.
     * buffers_returned counts buffers added since the last advance. */
    struct io_uring_buf_ring *buf_ring;
    char *buffers;
    size_t buffers_bytes;
    unsigned buffer_count;
    unsigned buffer_size;
    unsigned buffers_returned;

    /* Multishot ops the kernel stopped during the current batch. */
    struct reactor_op *rearm_head;

    /* Timer min-heap on deadline_us, 1-based: heap[1] is the earliest and
     * heap[i]->heap_slot == i. */
    struct reactor_timer **heap;
    size_t heap_len;
    size_t heap_cap;

    /* Hooks for the end of this turn, in the order they were deferred,
     * and the rest of the list reactor_run_hooks() is running. */
    struct reactor_hook *hooks_head;
    struct reactor_hook *hooks_tail;
    struct reactor_hook *hooks_running;

    uint64_t now_us;      /* monotonic clock, read once per turn */
    bool stopping;

    /* Number of ops started and not yet finished. reactor_shutdown()
     * waits for it to reach 0. */
    size_t armed_ops;
    bool shut_down;      /* set by reactor_shutdown(), so no op starts */
};

static uint64_t reactor_clock_us(void)
{
    struct timespec ts;

    /* clock_gettime fails only for an invalid clock or pointer. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t reactor_clock_ms(void)
{
    return reactor_clock_us() / 1000u;
}

/* ---- Set-up and teardown ---------------------------------------------- */

static int reactor_ring_init(struct reactor *reactor, unsigned entries)
{
    struct io_uring_params params;
    int rc;

    memset(&params, 0, sizeof(params));
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                   IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
    params.cq_entries = entries * REACTOR_CQ_FACTOR;
    rc = io_uring_queue_init_params(entries, &reactor->ring, &params);
    if (rc == -EINVAL) {
        /* Kernels before 6.1 lack DEFER_TASKRUN. CQSIZE (5.5) and CLAMP
         * (5.6) stay. */
        memset(&params, 0, sizeof(params));
        params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        params.cq_entries = entries * REACTOR_CQ_FACTOR;
        rc = io_uring_queue_init_params(entries, &reactor->ring, &params);
    }
    if (rc < 0) {
        /* TODO: fall back to the epoll backend here once it exists. Until
         * then a rejected io_uring_setup stops the daemon. */
        log_error("event=reactor-init error=\"io_uring_setup failed: %s\"",
                  strerror(-rc));
        return rc;
    }

    reactor->ring_ready = true;
    reactor->cq_entries = params.cq_entries;
    return 0;
}

static int reactor_buffers_init(struct reactor *reactor, unsigned count,
                                unsigned size)
{
    int mask = io_uring_buf_ring_mask(count);
    void *mem;
    int rc;

    reactor->buffers_bytes = (size_t)count * size;
    mem = mmap(NULL, reactor->buffers_bytes, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        rc = -errno;
        log_error("event=reactor-init bytes=%zu error=\"mmap of receive "
                  "buffers failed: %s\"", reactor->buffers_bytes,
                  strerror(-rc));
        return rc;
    }
    reactor->buffers = mem;
    reactor->buffer_count = count;
    reactor->buffer_size = size;

    rc = uring_compat_setup_buf_ring(&reactor->ring, count,
                                     REACTOR_BUFFER_GROUP,
                                     &reactor->buf_ring);
    if (rc < 0) {
        log_error("event=reactor-init buffers=%u error=\"registering the "
                  "buffer ring failed: %s\"", count, strerror(-rc));
        return rc;
    }

    for (unsigned i = 0; i < count; i++) {
        io_uring_buf_ring_add(reactor->buf_ring,
                              reactor->buffers + (size_t)i * size, size,
                              (unsigned short)i, mask, (int)i);
    }
    io_uring_buf_ring_advance(reactor->buf_ring, (int)count);
    return 0;
}

static int reactor_check_options(unsigned entries, unsigned count,
                                 unsigned size)
{
    if (count > URING_COMPAT_BUF_RING_MAX || (count & (count - 1)) != 0) {
        log_error("event=reactor-init recv_buffers=%u error=\"invalid "
                  "buffer count: use a power of two up to %u\"", count,
                  URING_COMPAT_BUF_RING_MAX);
        return -EINVAL;
    }
    if (size > INT_MAX / count) {
        log_error("event=reactor-init recv_buffers=%u recv_buffer_size=%u "
                  "error=\"receive buffers too large: keep their total "
                  "below 2 GiB\"", count, size);
        return -EINVAL;
    }
    if (entries > 32768u) {
        log_error("event=reactor-init entries=%u error=\"invalid "
                  "submission queue size: the maximum is 32768\"", entries);
        return -EINVAL;
    }
    return 0;
}

int reactor_new(struct reactor **out, const struct reactor_options *opts)
{
    struct reactor_options o = {0};
    struct reactor *reactor;
    int rc;

    *out = NULL;
    if (opts != NULL) {
        o = *opts;
    }
    o.entries = o.entries ? o.entries : REACTOR_DEFAULT_ENTRIES;
    o.recv_buffers = o.recv_buffers ? o.recv_buffers
                                    : REACTOR_DEFAULT_RECV_BUFFERS;
    o.recv_buffer_size = o.recv_buffer_size
                             ? o.recv_buffer_size
                             : REACTOR_DEFAULT_RECV_BUFFER_SIZE;
    rc = reactor_check_options(o.entries, o.recv_buffers,
                               o.recv_buffer_size);
    if (rc < 0) {
        return rc;
    }

    reactor = calloc(1, sizeof(*reactor));
    if (reactor == NULL) {
        return -ENOMEM;
    }
    rc = reactor_ring_init(reactor, o.entries);
    if (rc == 0) {
        rc = reactor_buffers_init(reactor, o.recv_buffers,
                                  o.recv_buffer_size);
    }
    if (rc < 0) {
        reactor_free(reactor);
        return rc;
    }

    reactor->now_us = reactor_clock_us();
    *out = reactor;
    return 0;
}

static int reactor_get_sqe(struct reactor *reactor,
                           struct io_uring_sqe **out);

/* Return true when the completions in the queue include the end of the
 * cancel-all request, and consume them all without running callbacks. */
static bool reactor_drain_until_cancel_all(struct reactor *reactor)
{
    struct io_uring_cqe *cqe;
    unsigned head;
    unsigned seen = 0;
    bool done = false;

    io_uring_for_each_cqe(&reactor->ring, head, cqe) {
        if (cqe->user_data == REACTOR_TAG_CANCEL_ALL) {
            done = true;
        }
        seen++;
    }
    io_uring_cq_advance(&reactor->ring, seen);
    return done;
}

/* Cancel every request still in the kernel and wait, bounded, for them to
 * complete. Exiting the ring would cancel them too, but the kernel does
 * that after the process may have exited, so a listening socket would
 * stay bound for a moment and a restart could fail with EADDRINUSE. The
 * completions are discarded: the ops' owners may be freed by now. */
static void reactor_cancel_all(struct reactor *reactor)
{
    struct __kernel_timespec wait = {
        .tv_sec = 0,
        .tv_nsec = REACTOR_FREE_WAIT_MS * 1000000L,
    };
    struct io_uring_cqe *cqe;
    struct io_uring_sqe *sqe;
    int rc;

    if (reactor_get_sqe(reactor, &sqe) < 0) {
        return;
    }
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data64(sqe, REACTOR_TAG_CANCEL_ALL);

    /* Each wait returns completions or times out. The round limit only
     * guards against a request that keeps posting after the cancel. */
    for (unsigned round = 0; round < REACTOR_FREE_ROUNDS; round++) {
        rc = io_uring_submit_and_wait_timeout(&reactor->ring, &cqe, 1,
                                              &wait, NULL);
        if (rc < 0 && rc != -EINTR) {
            if (rc != -ETIME) {
                log_warning("event=reactor-free error=\"waiting for "
                            "cancelled requests failed: %s\"",
                            strerror(-rc));
            }
            return;
        }
        if (reactor_drain_until_cancel_all(reactor)) {
            break;
        }
    }

    /* Completions of the cancelled requests posted with the cancel's own
     * are consumed above; run deferred task work once more for the rest. */
    io_uring_get_events(&reactor->ring);
    reactor_drain_until_cancel_all(reactor);
}

void reactor_free(struct reactor *reactor)
{
    int rc;

    if (reactor == NULL) {
        return;
    }

    /* Ops still armed, which reactor_shutdown() did not reach or which
     * ran past its wait, are abandoned: their requests are cancelled and
     * their completions discarded, never delivered. */
    if (reactor->ring_ready) {
        reactor_cancel_all(reactor);
        rc = uring_compat_free_buf_ring(&reactor->ring, reactor->buf_ring,
                                        reactor->buffer_count,
                                        REACTOR_BUFFER_GROUP);
        if (rc < 0) {
            log_warning("event=reactor-free error=\"unregistering the "
                        "buffer ring failed: %s\"", strerror(-rc));
        }
        io_uring_queue_exit(&reactor->ring);
    }
    if (reactor->buffers != NULL) {
        munmap(reactor->buffers, reactor->buffers_bytes);
    }
    free(reactor->heap);
    free(reactor);
}

const char *reactor_backend_name(const struct reactor *reactor)
{
    (void)reactor;
    return "io_uring";
}

uint64_t reactor_now_ms(const struct reactor *reactor)
{
    return reactor->now_us / 1000u;
}

uint64_t reactor_now_us(const struct reactor *reactor)
{
    return reactor->now_us;
}

void reactor_stop(struct reactor *reactor)
{
    reactor->stopping = true;
}

/* ---- Submission -------------------------------------------------------- */

/* reactor_get_sqe returns a free submission entry, submitting the queued
 * ones first when the queue is full. */
static int reactor_get_sqe(struct reactor *reactor,
                           struct io_uring_sqe **out)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&reactor->ring);
    int rc;

    if (sqe == NULL) {
        rc = io_uring_submit(&reactor->ring);
        if (rc < 0) {
            log_error("event=reactor-submit error=\"io_uring_submit "
                      "failed: %s\"", strerror(-rc));
            return rc;
        }
        sqe = io_uring_get_sqe(&reactor->ring);
        if (sqe == NULL) {
            log_error("event=reactor-submit error=\"submission queue "
                      "still full after submit: %s\"", strerror(EBUSY));
            return -EBUSY;
        }
    }
    *out = sqe;
    return 0;
}

/* reactor_op_start claims a submission entry for op and marks op armed.
 * The caller prepares the entry, then tags it with reactor_op_tag(). */
static int reactor_op_start(struct reactor *reactor, struct reactor_op *op,
                            enum reactor_op_kind kind, int fd,
                            struct io_uring_sqe **sqe)
{
    int rc;

    if (op->armed) {
        return -EBUSY;
    }
    if (reactor->shut_down) {
        return -ECANCELED;
    }
    rc = reactor_get_sqe(reactor, sqe);
    if (rc < 0) {
        return rc;
    }

    op->kind = (uint8_t)kind;
    op->fd = fd;
    op->data = NULL;
    op->more = false;
    op->armed = true;
    op->cancelling = false;
    op->rearm_pending = false;
    op->rearm_next = NULL;
    reactor->armed_ops++;
    return 0;
}

static void reactor_op_tag(struct io_uring_sqe *sqe, struct reactor_op *op)
{
    /* Set after the prep call so no prep helper can overwrite it. */
    io_uring_sqe_set_data(sqe, op);
}

/* Lengths beyond INT_MAX could not be reported in an int result, and the
 * kernel caps a single transfer lower still (MAX_RW_COUNT). */
static unsigned reactor_clamp_len(size_t len)
{
    return len > INT_MAX ? (unsigned)INT_MAX : (unsigned)len;
}

static void reactor_prep_multishot(struct io_uring_sqe *sqe,
                                   struct reactor_op *op)
{
    if (op->kind == REACTOR_OP_ACCEPT) {
        io_uring_prep_multishot_accept(sqe, op->fd, NULL, NULL,
                                       SOCK_CLOEXEC);
    } else {
        io_uring_prep_recv_multishot(sqe, op->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = REACTOR_BUFFER_GROUP;
    }
    reactor_op_tag(sqe, op);
}

/* ---- Operations -------------------------------------------------------- */

int reactor_accept(struct reactor *reactor, struct reactor_op *op,
                   int listen_fd)
{
    struct io_uring_sqe *sqe;
    int rc = reactor_op_start(reactor, op, REACTOR_OP_ACCEPT, listen_fd,
                              &sqe);

    if (rc < 0) {
        return rc;
    }
    reactor_prep_multishot(sqe, op);
    return 0;
}

int reactor_recv_multishot(struct reactor *reactor, struct reactor_op *op,
                           int fd)
{
    struct io_uring_sqe *sqe;
    int rc = reactor_op_start(reactor, op, REACTOR_OP_RECV_MULTISHOT, fd,
                              &sqe);

    if (rc < 0) {
        return rc;
    }
    reactor_prep_multishot(sqe, op);
    return 0;
}

int reactor_recv(struct reactor *reactor, struct reactor_op *op, int fd,
                 void *buf, size_t len)
{
    struct io_uring_sqe *sqe;
    int rc = reactor_op_start(reactor, op, REACTOR_OP_RECV, fd, &sqe);

    if (rc < 0) {
        return rc;
    }
    io_uring_prep_recv(sqe, fd, buf, reactor_clamp_len(len), 0);
    reactor_op_tag(sqe, op);
    return 0;
}

int reactor_read(struct reactor *reactor, struct reactor_op *op, int fd,
                 void *buf, size_t len)
{
    struct io_uring_sqe *sqe;
    int rc = reactor_op_start(reactor, op, REACTOR_OP_READ, fd, &sqe);

    if (rc < 0) {
        return rc;
    }

    /* Offset -1 reads at the file position, as read(2) does, which is
     * what pipes and signalfds need. */
    io_uring_prep_read(sqe, fd, buf, reactor_clamp_len(len), (uint64_t)-1);
    reactor_op_tag(sqe, op);
    return 0;
}

int reactor_send(struct reactor *reactor, struct reactor_op *op, int fd,
                 const void *buf, size_t len)
{
    struct io_uring_sqe *sqe;
    int rc = reactor_op_start(reactor, op, REACTOR_OP_SEND, fd, &sqe);

    if (rc < 0) {
        return rc;
    }
    io_uring_prep_send(sqe, fd, buf, reactor_clamp_len(len), MSG_NOSIGNAL);
    reactor_op_tag(sqe, op);
    return 0;
}

int reactor_sendv(struct reactor *reactor, struct reactor_op *op, int fd,
                  const struct iovec *iov, int count)
{
    struct io_uring_sqe *sqe;
    int rc;

    if (count < 0) {
        return -EINVAL;
    }
    rc = reactor_op_start(reactor, op, REACTOR_OP_SENDV, fd, &sqe);
    if (rc < 0) {
        return rc;
    }

    /* The kernel reads the header when it issues the request, which may
     * be after this call returns, so it lives in the op. */
    memset(&op->msg, 0, sizeof(op->msg));
    op->msg.msg_iov = (struct iovec *)iov;
    op->msg.msg_iovlen = (size_t)count;
    io_uring_prep_sendmsg(sqe, fd, &op->msg, MSG_NOSIGNAL);
    reactor_op_tag(sqe, op);
    return 0;
}

int reactor_connect(struct reactor *reactor, struct reactor_op *op, int fd,
                    const struct sockaddr *addr, socklen_t len)
{
    struct io_uring_sqe *sqe;
    int rc;

    if (len > sizeof(op->addr)) {
        return -EINVAL;
    }
    rc = reactor_op_start(reactor, op, REACTOR_OP_CONNECT, fd, &sqe);
    if (rc < 0) {
        return rc;
    }

    memcpy(&op->addr, addr, len);
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&op->addr, len);
    reactor_op_tag(sqe, op);
    return 0;
}

int reactor_fsync(struct reactor *reactor, struct reactor_op *op, int fd,
                  bool datasync)
{
    struct io_uring_sqe *sqe;
    int rc = reactor_op_start(reactor, op, REACTOR_OP_FSYNC, fd, &sqe);

    if (rc < 0) {
        return rc;
    }
    io_uring_prep_fsync(sqe, fd, datasync ? IORING_FSYNC_DATASYNC : 0);
    reactor_op_tag(sqe, op);
    return 0;
}

int reactor_cancel(struct reactor *reactor, struct reactor_op *op)
{
    struct io_uring_sqe *sqe;
    int rc;

    if (!op->armed || op->cancelling) {
        return 0;
    }

    /* An op waiting for its re-arm has no request in the kernel, so
     * reactor_rearm_stopped() finishes it with -ECANCELED instead. */
    op->cancelling = true;
    if (op->rearm_pending) {
        return 0;
    }

    rc = reactor_get_sqe(reactor, &sqe);
    if (rc < 0) {
        op->cancelling = false;
        return rc;
    }
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
    io_uring_sqe_set_data64(sqe, REACTOR_TAG_CANCEL);
    return 0;
}

/* ---- Completions ------------------------------------------------------- */

/* reactor_finish delivers op's final completion. The callback may free or
 * re-arm op, so nothing touches op afterwards. */
static void reactor_finish(struct reactor *reactor, struct reactor_op *op,
                           int result)
{
    reactor->armed_ops--;
    op->armed = false;
    op->more = false;
    op->data = NULL;
    op->cancelling = false;
    op->done(op, result);
}

static void reactor_queue_rearm(struct reactor *reactor,
                                struct reactor_op *op)
{
    op->rearm_pending = true;
    op->rearm_next = reactor->rearm_head;
    reactor->rearm_head = op;
}

/* reactor_return_buffer puts buffer bid back in the ring. The kernel can
 * use it once reactor_publish_buffers() runs after the batch. */
static void reactor_return_buffer(struct reactor *reactor, unsigned bid)
{
    io_uring_buf_ring_add(reactor->buf_ring,
                          reactor->buffers +
                              (size_t)bid * reactor->buffer_size,
                          reactor->buffer_size, (unsigned short)bid,
                          io_uring_buf_ring_mask(reactor->buffer_count),
                          (int)reactor->buffers_returned);
    reactor->buffers_returned++;
}

static void reactor_publish_buffers(struct reactor *reactor)
{
    if (reactor->buffers_returned > 0) {
        io_uring_buf_ring_advance(reactor->buf_ring,
                                  (int)reactor->buffers_returned);
        reactor->buffers_returned = 0;
    }
}

/* A multishot recv stops (no IORING_CQE_F_MORE) when the buffer ring ran
 * dry (-ENOBUFS) or, with data, when the kernel could not post more
 * completions. Neither ends the stream, so both are re-armed. */
static void reactor_complete_recv(struct reactor *reactor,
                                  struct reactor_op *op, int result,
                                  unsigned flags)
{
    bool kernel_more = (flags & IORING_CQE_F_MORE) != 0;
    bool has_buffer = (flags & IORING_CQE_F_BUFFER) != 0;
    unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;

    if (has_buffer && bid >= reactor->buffer_count) {
        log_error("event=reactor-recv buffer=%u error=\"kernel returned an "
                  "unknown buffer id: %s\"", bid, strerror(EIO));
        has_buffer = false;
        result = result > 0 ? -EIO : result;
    }
    if (result > 0 && !has_buffer) {
        result = -EIO;
    }

    if (result > 0) {
        if (!kernel_more) {
            reactor_queue_rearm(reactor, op);
        }
        op->data = reactor->buffers + (size_t)bid * reactor->buffer_size;
        op->more = true;
        op->done(op, result);
        op->data = NULL;
        reactor_return_buffer(reactor, bid);
        return;
    }

    if (has_buffer) {
        reactor_return_buffer(reactor, bid);
    }
    if (kernel_more) {
        op->more = true;
        op->done(op, result);
    } else if (result == -ENOBUFS) {
        reactor_queue_rearm(reactor, op);
    } else {
        reactor_finish(reactor, op, result);
    }
}

/* Multishot accept stops without an error when the kernel could not post
 * more completions, and that stop is re-armed like recv's. */
static void reactor_complete_accept(struct reactor *reactor,
                                    struct reactor_op *op, int result,
                                    unsigned flags)
{
    bool kernel_more = (flags & IORING_CQE_F_MORE) != 0;

    if (!kernel_more && result >= 0) {
        reactor_queue_rearm(reactor, op);
        kernel_more = true;
    }
    if (kernel_more) {
        op->more = true;
        op->done(op, result);
        return;
    }
    reactor_finish(reactor, op, result);
}

static void reactor_complete(struct reactor *reactor, uint64_t user_data,
                             int result, unsigned flags)
{
    struct reactor_op *op;

    if (user_data == REACTOR_TAG_CANCEL) {
        /* ENOENT: the op had already finished. EALREADY: it is running
         * and will finish by itself. */
        if (result < 0 && result != -ENOENT && result != -EALREADY) {
            log_warning("event=reactor-cancel error=\"cancel request "
                        "failed: %s\"", strerror(-result));
        }
        return;
    }
    if (user_data == REACTOR_TAG_CANCEL_ALL) {
        /* The result is the number of requests cancelled. ENOENT means
         * that none was left in the kernel. */
        if (result < 0 && result != -ENOENT) {
            log_warning("event=reactor-shutdown error=\"cancelling every "
                        "request failed: %s\"", strerror(-result));
        }
        return;
    }
    if (user_data == LIBURING_UDATA_TIMEOUT || user_data == 0) {
        return;
    }

    op = (struct reactor_op *)(uintptr_t)user_data;
    switch (op->kind) {
    case REACTOR_OP_RECV_MULTISHOT:
        reactor_complete_recv(reactor, op, result, flags);
        break;
    case REACTOR_OP_ACCEPT:
        reactor_complete_accept(reactor, op, result, flags);
        break;
    default:
        reactor_finish(reactor, op, result);
        break;
    }
}

/* reactor_rearm_stopped restarts the multishot ops stopped during the
 * batch, after reactor_publish_buffers() gave the kernel buffers again. */
static void reactor_rearm_stopped(struct reactor *reactor)
{
    struct reactor_op *op = reactor->rearm_head;
    struct io_uring_sqe *sqe;
    int rc;

    reactor->rearm_head = NULL;
    while (op != NULL) {
        struct reactor_op *next = op->rearm_next;

        op->rearm_next = NULL;
        op->rearm_pending = false;
        if (op->cancelling || reactor->shut_down) {
            reactor_finish(reactor, op, -ECANCELED);
        } else {
            rc = reactor_get_sqe(reactor, &sqe);
            if (rc < 0) {
                reactor_finish(reactor, op, rc);
            } else {
                reactor_prep_multishot(sqe, op);
            }
        }
        op = next;
    }
}

/* reactor_dispatch handles the completions that are ready, at most one
 * completion queue's worth, and advances the queue once for all. */
static void reactor_dispatch(struct reactor *reactor)
{
    struct io_uring_cqe *cqe;
    unsigned head;
    unsigned seen = 0;

    io_uring_for_each_cqe(&reactor->ring, head, cqe) {
        reactor_complete(reactor, cqe->user_data, cqe->res, cqe->flags);
        seen++;
        if (seen == reactor->cq_entries) {
            break;
        }
    }
    io_uring_cq_advance(&reactor->ring, seen);

    reactor_publish_buffers(reactor);
    reactor_rearm_stopped(reactor);
}

/* ---- Timers ------------------------------------------------------------ */

static void reactor_heap_place(struct reactor *reactor, size_t slot,
                               struct reactor_timer *timer)
{
    reactor->heap[slot] = timer;
    timer->heap_slot = slot;
}

static void reactor_heap_sift_up(struct reactor *reactor, size_t slot)
{
    struct reactor_timer *timer = reactor->heap[slot];

    while (slot > 1) {
        struct reactor_timer *parent = reactor->heap[slot / 2];

        if (parent->deadline_us <= timer->deadline_us) {
            break;
        }
        reactor_heap_place(reactor, slot, parent);
        slot /= 2;
    }
    reactor_heap_place(reactor, slot, timer);
}

static void reactor_heap_sift_down(struct reactor *reactor, size_t slot)
{
    struct reactor_timer *timer = reactor->heap[slot];

    for (;;) {
        size_t child = slot * 2;

        if (child > reactor->heap_len) {
            break;
        }
        if (child < reactor->heap_len &&
            reactor->heap[child + 1]->deadline_us <
                reactor->heap[child]->deadline_us) {
            child++;
        }
        if (timer->deadline_us <= reactor->heap[child]->deadline_us) {
            break;
        }
        reactor_heap_place(reactor, slot, reactor->heap[child]);
        slot = child;
    }
    reactor_heap_place(reactor, slot, timer);
}

/* reactor_heap_reserve makes room for one more timer. reactor_timer_set()
 * returns void, so it cannot report running out of memory. A timer that
 * silently never fires would hang its session, so this aborts instead. */
static void reactor_heap_reserve(struct reactor *reactor)
{
    struct reactor_timer **heap;
    size_t cap;

    if (reactor->heap_len + 1 < reactor->heap_cap) {
        return;
    }
    cap = reactor->heap_cap ? reactor->heap_cap * 2 : 256;
    heap = realloc(reactor->heap, cap * sizeof(*heap));
    if (heap == NULL) {
        log_error("event=reactor-timer timers=%zu error=\"growing the "
                  "timer heap failed: %s\"", reactor->heap_len,
                  strerror(ENOMEM));
        abort();
    }
    reactor->heap = heap;
    reactor->heap_cap = cap;
}

void reactor_timer_set(struct reactor *reactor, struct reactor_timer *timer,
                       uint64_t delay_ms)
{
    uint64_t delay_us = delay_ms > UINT64_MAX / 1000u ? UINT64_MAX
                                                      : delay_ms * 1000u;

    reactor_timer_set_us(reactor, timer, delay_us);
}

void reactor_timer_set_us(struct reactor *reactor,
                          struct reactor_timer *timer, uint64_t delay_us)
{
    uint64_t old = timer->deadline_us;
    size_t slot = timer->heap_slot;

    timer->deadline_us = delay_us > UINT64_MAX - reactor->now_us
                             ? UINT64_MAX
                             : reactor->now_us + delay_us;
    if (slot != 0) {
        if (timer->deadline_us < old) {
            reactor_heap_sift_up(reactor, slot);
        } else {
            reactor_heap_sift_down(reactor, slot);
        }
        return;
    }

    reactor_heap_reserve(reactor);
    reactor->heap_len++;
    reactor_heap_place(reactor, reactor->heap_len, timer);
    reactor_heap_sift_up(reactor, reactor->heap_len);
}

void reactor_timer_cancel(struct reactor *reactor,
                          struct reactor_timer *timer)
{
    size_t slot = timer->heap_slot;
    struct reactor_timer *last;

    if (slot == 0) {
        return;
    }
    timer->heap_slot = 0;
    last = reactor->heap[reactor->heap_len];
    reactor->heap_len--;
    if (last == timer) {
        return;
    }

    /* The last timer fills the hole and moves whichever way it must. */
    reactor_heap_place(reactor, slot, last);
    if (slot > 1 &&
        reactor->heap[slot / 2]->deadline_us > last->deadline_us) {
        reactor_heap_sift_up(reactor, slot);
    } else {
        reactor_heap_sift_down(reactor, slot);
    }
}

bool reactor_timer_armed(const struct reactor_timer *timer)
{
    return timer->heap_slot != 0;
}

/* reactor_fire_timers fires the timers due at the turn's clock. A timer
 * re-armed with delay 0 inside fire() is due again at once. So one turn
 * fires at most as many timers as were armed when this step began, and
 * the rest fire next turn, whose wait then does not block. */
static void reactor_fire_timers(struct reactor *reactor)
{
    size_t budget = reactor->heap_len;

    while (budget > 0 && reactor->heap_len > 0 &&
           reactor->heap[1]->deadline_us <= reactor->now_us) {
        struct reactor_timer *timer = reactor->heap[1];

        reactor_timer_cancel(reactor, timer);
        timer->fire(timer);
        budget--;
    }
}

/* ---- Hooks and the loop ------------------------------------------------ */

void reactor_defer(struct reactor *reactor, struct reactor_hook *hook)
{
    if (hook->queued) {
        return;
    }
    hook->queued = true;
    hook->next = NULL;
    if (reactor->hooks_tail != NULL) {
        reactor->hooks_tail->next = hook;
    } else {
        reactor->hooks_head = hook;
    }
    reactor->hooks_tail = hook;
}

/* reactor_hook_unlink removes hook from the list at *link when it is
 * there. Returns the hook before it (NULL when it was first); without a
 * match the result is the last hook and means nothing. */
static struct reactor_hook *reactor_hook_unlink(struct reactor_hook **link,
                                                struct reactor_hook *hook)
{
    struct reactor_hook *prev = NULL;

    while (*link != NULL && *link != hook) {
        prev = *link;
        link = &prev->next;
    }
    if (*link == hook) {
        *link = hook->next;
    }
    return prev;
}

void reactor_defer_cancel(struct reactor *reactor, struct reactor_hook *hook)
{
    struct reactor_hook *prev;

    if (!hook->queued) {
        return;
    }
    reactor_hook_unlink(&reactor->hooks_running, hook);
    prev = reactor_hook_unlink(&reactor->hooks_head, hook);
    if (reactor->hooks_tail == hook) {
        reactor->hooks_tail = prev;
    }
    hook->next = NULL;
    hook->queued = false;
}

/* reactor_run_hooks runs the hooks deferred before this step. Hooks
 * deferred while it runs join a fresh list for the next turn. */
static void reactor_run_hooks(struct reactor *reactor)
{
    struct reactor_hook *hook;

    /* The list being run lives in the reactor, so a hook may cancel one
     * that has not run yet. */
    reactor->hooks_running = reactor->hooks_head;
    reactor->hooks_head = NULL;
    reactor->hooks_tail = NULL;
    while ((hook = reactor->hooks_running) != NULL) {
        reactor->hooks_running = hook->next;
        hook->next = NULL;
        hook->queued = false;
        hook->run(hook);
    }
}

/* reactor_wait submits queued entries and blocks in the kernel until a
 * completion arrives or the next timer is due. With DEFER_TASKRUN,
 * completions only appear while the thread waits in the kernel, so it
 * never polls the queue from user space. */
static int reactor_wait(struct reactor *reactor)
{
    struct __kernel_timespec ts = {0};
    struct __kernel_timespec *timeout = NULL;
    struct io_uring_cqe *cqe;
    int rc;

    if (reactor->hooks_head != NULL || reactor->stopping) {
        timeout = &ts;
    } else if (reactor->heap_len > 0) {
        uint64_t now = reactor_clock_us();
        uint64_t deadline = reactor->heap[1]->deadline_us;
        uint64_t wait_us = deadline > now ? deadline - now : 0;

        ts.tv_sec = (long long)(wait_us / 1000000u);
        ts.tv_nsec = (long long)(wait_us % 1000000u) * 1000;
        timeout = &ts;
    }

    rc = io_uring_submit_and_wait_timeout(&reactor->ring, &cqe, 1, timeout,
                                          NULL);
    if (rc >= 0 || rc == -ETIME || rc == -EINTR || rc == -EAGAIN ||
        rc == -EBUSY) {
        /* EBUSY means the completion queue overflowed, and dispatching
         * drains it. */
        return 0;
    }
    log_error("event=reactor-wait error=\"io_uring_submit_and_wait_timeout "
              "failed: %s\"", strerror(-rc));
    return rc;
}

int reactor_run(struct reactor *reactor)
{
    int rc = 0;

    if (reactor->shut_down) {
        return -ECANCELED;
    }
    reactor->now_us = reactor_clock_us();
    while (rc == 0) {
        rc = reactor_wait(reactor);
        if (rc < 0) {
            break;
        }
        reactor->now_us = reactor_clock_us();
        reactor_dispatch(reactor);
        reactor_fire_timers(reactor);
        reactor_run_hooks(reactor);
        if (reactor->stopping) {
            break;
        }
    }
    reactor->stopping = false;
    return rc;
}

/* ---- Shutdown ---------------------------------------------------------- */

/* reactor_shutdown_wait waits in the kernel until a completion arrives or
 * the deadline passes. Returns false when waiting failed. */
static bool reactor_shutdown_wait(struct reactor *reactor,
                                  uint64_t deadline_ms)
{
    uint64_t now = reactor_clock_ms();
    uint64_t wait_ms = deadline_ms > now ? deadline_ms - now : 0;
    struct __kernel_timespec ts = {
        .tv_sec = (long long)(wait_ms / 1000u),
        .tv_nsec = (long long)(wait_ms % 1000u) * 1000000,
    };
    struct io_uring_cqe *cqe;
    int rc;

    rc = io_uring_submit_and_wait_timeout(&reactor->ring, &cqe, 1, &ts,
                                          NULL);
    if (rc >= 0 || rc == -ETIME || rc == -EINTR || rc == -EAGAIN ||
        rc == -EBUSY) {
        return true;
    }
    log_error("event=reactor-shutdown error=\"waiting for cancelled "
              "requests failed: %s\"", strerror(-rc));
    return false;
}

int reactor_shutdown(struct reactor *reactor)
{
    uint64_t deadline_ms;
    struct io_uring_sqe *sqe;
    int rc;

    if (reactor == NULL || !reactor->ring_ready) {
        return 0;
    }
    reactor->shut_down = true;
    if (reactor->armed_ops == 0) {
        return 0;
    }

    rc = reactor_get_sqe(reactor, &sqe);
    if (rc < 0) {
        return rc;
    }
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data64(sqe, REACTOR_TAG_CANCEL_ALL);

    /* Callbacks run as in reactor_run(), but timers and hooks do not:
     * the owners are about to free them. */
    deadline_ms = reactor_clock_ms() + REACTOR_SHUTDOWN_WAIT_MS;
    while (reactor->armed_ops > 0 && reactor_clock_ms() < deadline_ms) {
        if (!reactor_shutdown_wait(reactor, deadline_ms)) {
            break;
        }
        reactor->now_us = reactor_clock_us();
        reactor_dispatch(reactor);
    }

    if (reactor->armed_ops > 0) {
        log_warning("event=reactor-shutdown armed=%zu wait_ms=%u "
                    "error=\"operations still running after the wait; "
                    "their owners get no callback\"", reactor->armed_ops,
                    REACTOR_SHUTDOWN_WAIT_MS);
        return -ETIMEDOUT;
    }
    return 0;
}
