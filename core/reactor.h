/* Single-threaded completion reactor.
 *
 * Callers start operations (accept, recv, send, connect, fsync) and get one
 * callback per completion. The interface speaks of completions, not of
 * io_uring, so an epoll backend can implement it without changes to its
 * callers.
 *
 * Return convention: every function that can fail returns 0 or a negative
 * errno value. Completion results follow the same rule: result >= 0 is the
 * system call's result, result < 0 is -errno.
 *
 * Lifetime: a struct reactor_op belongs to its caller and must stay valid
 * and untouched until its final completion, the one with op->more == false.
 * An op is armed at most once at a time. To stop an armed op early, call
 * reactor_cancel(); its callback still runs once more (usually with
 * -ECANCELED), and only then may the op's memory be freed.
 *
 * Shutdown: after reactor_run() returns, reactor_shutdown() cancels every
 * armed op and runs each final callback while the owners still exist, so
 * an owner that frees itself in its callback is freed. Owners then
 * release their timers and hooks and free themselves, and reactor_free()
 * comes last. */
#ifndef RINGRELAY_CORE_REACTOR_H
#define RINGRELAY_CORE_REACTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

struct reactor;
struct reactor_op;

typedef void (*reactor_op_fn)(struct reactor_op *op, int result);

struct reactor_op {
    reactor_op_fn done;  /* called once per completion */
    void *owner;         /* the caller's object, for done() */
    const char *data;    /* multishot recv: received bytes, valid only
                          * while done() runs */
    bool more;           /* true when further completions will follow */
    bool armed;          /* true from start until the final completion */

    /* Private to the reactor. */
    uint8_t kind;
    bool cancelling;      /* reactor_cancel() ran for this arming */
    bool rearm_pending;   /* multishot stopped, re-armed after the batch */
    int fd;               /* multishot: the descriptor to re-arm on */
    struct reactor_op *rearm_next;
    union {
        struct msghdr msg;             /* sendv: header over the iovecs */
        struct sockaddr_storage addr;  /* connect: copy of the address */
    };
};

/* reactor_timer: one deadline. Embed it in its owner, zeroed before its
 * first use; it is armed at most once at a time, and re-arming moves the
 * deadline. */
struct reactor_timer {
    void (*fire)(struct reactor_timer *timer);
    void *owner;
    uint64_t deadline_us; /* monotonic microseconds; private */
    size_t heap_slot;     /* private; 0 when not armed */
};

/* reactor_hook: work to run once at the end of the current turn, after
 * every completion of the turn has been dispatched. The queue uses it to
 * share one fsync among all messages that ended in the same turn. */
struct reactor_hook {
    void (*run)(struct reactor_hook *hook);
    void *owner;
    struct reactor_hook *next; /* private */
    bool queued;               /* private */
};

/* Zero in any field picks its default. */
struct reactor_options {
    unsigned entries;       /* submission queue size; 0 picks a default */
    unsigned recv_buffers;  /* buffers in the provided-buffer ring, a power
                             * of two up to 32768 */
    unsigned recv_buffer_size; /* bytes per ring buffer */
};

/* reactor_new creates a reactor; opts may be NULL for defaults. */
int reactor_new(struct reactor **out, const struct reactor_options *opts);

/* reactor_free releases the reactor; NULL is accepted. Ops still armed
 * are cancelled and abandoned without callbacks, so memory that an owner
 * frees only in its callback leaks: call reactor_shutdown() first. */
void reactor_free(struct reactor *reactor);

/* reactor_shutdown cancels every armed op and dispatches completions until
 * each op had its final callback, waiting at most 5 seconds. The result is
 * -ECANCELED for a cancelled op, or the op's own result when it finished
 * first (an fsync already running cannot be cancelled). Timers do not fire
 * and deferred hooks do not run. Afterwards every op start fails with
 * -ECANCELED and reactor_run() returns -ECANCELED. Call it after
 * reactor_run() returned, never from a callback. NULL is accepted.
 * Returns 0, or -ETIMEDOUT (logged) when ops were still armed at the end
 * of the wait. Those ops get no callback, so their owners must keep their
 * memory until reactor_free(). */
int reactor_shutdown(struct reactor *reactor);

/* reactor_run dispatches completions, timers and end-of-turn hooks until
 * reactor_stop() is called. Returns 0, or a negative errno on a failure of
 * the reactor itself. */
int reactor_run(struct reactor *reactor);

/* reactor_stop makes reactor_run() return after the current turn. */
void reactor_stop(struct reactor *reactor);

/* reactor_now_ms returns the monotonic clock in milliseconds, read once
 * per turn. */
uint64_t reactor_now_ms(const struct reactor *reactor);

/* reactor_now_us returns the same per-turn clock in microseconds. */
uint64_t reactor_now_us(const struct reactor *reactor);

/* reactor_backend_name returns "io_uring" or "epoll". */
const char *reactor_backend_name(const struct reactor *reactor);

/* reactor_accept starts a multishot accept on a listening socket. Each
 * completion carries a new connected descriptor (result >= 0, owned by the
 * callback) or an error. */
int reactor_accept(struct reactor *reactor, struct reactor_op *op,
                   int listen_fd);

/* reactor_recv_multishot receives into reactor-owned buffers. Each
 * completion has result > 0 bytes at op->data (valid only during the
 * callback), 0 on end of stream, or -errno. The reactor re-arms on its own
 * when its buffers ran dry; op->more is false only on end of stream, error
 * or cancel. */
int reactor_recv_multishot(struct reactor *reactor, struct reactor_op *op,
                           int fd);

/* reactor_recv receives once into the caller's buffer, which must stay
 * valid until the completion. */
int reactor_recv(struct reactor *reactor, struct reactor_op *op, int fd,
                 void *buf, size_t len);

/* reactor_read reads once from any descriptor (a signalfd, a pipe) into
 * the caller's buffer, which must stay valid until the completion. */
int reactor_read(struct reactor *reactor, struct reactor_op *op, int fd,
                 void *buf, size_t len);

/* reactor_send sends once from the caller's buffer; the completion gives
 * the number of bytes sent, which may be fewer than len. */
int reactor_send(struct reactor *reactor, struct reactor_op *op, int fd,
                 const void *buf, size_t len);

/* reactor_sendv sends once from iov[0..count), which must stay valid until
 * the completion; the result may be a partial count. */
int reactor_sendv(struct reactor *reactor, struct reactor_op *op, int fd,
                  const struct iovec *iov, int count);

/* reactor_connect connects a non-blocking stream socket; addr is copied. */
int reactor_connect(struct reactor *reactor, struct reactor_op *op, int fd,
                    const struct sockaddr *addr, socklen_t len);

/* reactor_fsync flushes fd to stable storage (fdatasync when datasync). */
int reactor_fsync(struct reactor *reactor, struct reactor_op *op, int fd,
                  bool datasync);

/* reactor_cancel asks an armed op to finish early. Its callback runs once
 * more with its final result. Returns 0 when the op is not armed. */
int reactor_cancel(struct reactor *reactor, struct reactor_op *op);

/* reactor_timer_set arms timer to fire delay_ms from now, replacing any
 * earlier deadline. */
void reactor_timer_set(struct reactor *reactor, struct reactor_timer *timer,
                       uint64_t delay_ms);

/* reactor_timer_set_us arms timer to fire delay_us microseconds from the
 * turn's clock. The wait in the kernel has microsecond resolution, but a
 * timer fires only between turns, so a busy turn delays it. */
void reactor_timer_set_us(struct reactor *reactor,
                          struct reactor_timer *timer, uint64_t delay_us);

/* reactor_timer_cancel disarms timer; a disarmed timer is accepted. */
void reactor_timer_cancel(struct reactor *reactor,
                          struct reactor_timer *timer);

bool reactor_timer_armed(const struct reactor_timer *timer);

/* reactor_defer queues hook to run at the end of the current turn; a hook
 * already queued stays queued once. A hook may defer itself again. */
void reactor_defer(struct reactor *reactor, struct reactor_hook *hook);

/* reactor_defer_cancel takes a queued hook off the list, so its memory
 * may be freed. A hook that is not queued is accepted. */
void reactor_defer_cancel(struct reactor *reactor, struct reactor_hook *hook);

#endif
