/* Unit tests for the io_uring reactor, over loopback TCP and temporary
 * files. Every test runs the loop under a safety timer that stops it after
 * SAFETY_MS, so a missing completion fails the test instead of hanging. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/reactor.h"

#define SAFETY_MS 3000

struct harness {
    struct reactor *reactor;
    struct reactor_timer safety;
    bool timed_out;
};

static void safety_fired(struct reactor_timer *timer)
{
    struct harness *h = timer->owner;

    h->timed_out = true;
    reactor_stop(h->reactor);
}

static void harness_start(struct harness *h,
                          const struct reactor_options *opts)
{
    memset(h, 0, sizeof(*h));
    cr_assert_eq(reactor_new(&h->reactor, opts), 0);
    h->safety.fire = safety_fired;
    h->safety.owner = h;
    reactor_timer_set(h->reactor, &h->safety, SAFETY_MS);
}

static void harness_run(struct harness *h)
{
    cr_assert_eq(reactor_run(h->reactor), 0);
    cr_assert(!h->timed_out, "the loop ran into the %d ms safety timer",
              SAFETY_MS);
}

/* listen_loopback opens a listening socket on 127.0.0.1 with an ephemeral
 * port and stores its address in addr. */
static int listen_loopback(struct sockaddr_in *addr)
{
    socklen_t len = sizeof(*addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)addr, sizeof(*addr)), 0,
                 "bind: %s", strerror(errno));
    cr_assert_eq(listen(fd, 16), 0, "listen: %s", strerror(errno));
    cr_assert_eq(getsockname(fd, (struct sockaddr *)addr, &len), 0,
                 "getsockname: %s", strerror(errno));
    return fd;
}

/* tcp_pair connects two loopback TCP sockets: fds[0] the client side,
 * fds[1] the accepted side. */
static void tcp_pair(int fds[2])
{
    struct sockaddr_in addr;
    int listener = listen_loopback(&addr);

    fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fds[0], 0, "socket: %s", strerror(errno));
    cr_assert_eq(connect(fds[0], (struct sockaddr *)&addr, sizeof(addr)), 0,
                 "connect: %s", strerror(errno));
    fds[1] = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(fds[1], 0, "accept: %s", strerror(errno));
    close(listener);
}

Test(reactor, backend_name)
{
    struct reactor *reactor = NULL;

    cr_assert_eq(reactor_new(&reactor, NULL), 0);
    cr_assert_str_eq(reactor_backend_name(reactor), "io_uring");
    reactor_free(reactor);
    reactor_free(NULL);
}

Test(reactor, options_reject_uneven_ring)
{
    struct reactor_options opts = {.recv_buffers = 3};
    struct reactor *reactor = NULL;

    cr_assert_eq(reactor_new(&reactor, &opts), -EINVAL);
    cr_assert_null(reactor);
}

/* ---- TCP echo: accept, multishot recv, send ----------------------------- */

#define ECHO_TEXT "hello over io_uring, echo me back"

struct echo {
    struct harness *h;
    int server_fd;
    struct reactor_op accept_op;
    struct reactor_op server_recv;
    struct reactor_op server_send;
    char echo_buf[256];
    int client_fd;
    struct reactor_op client_send;
    struct reactor_op client_recv;
    char received[256];
    size_t received_len;
    int accepted;
};

static void echo_server_sent(struct reactor_op *op, int result)
{
    struct echo *e = op->owner;

    cr_assert_gt(result, 0, "server send: %s", strerror(-result));
    (void)e;
}

static void echo_server_received(struct reactor_op *op, int result)
{
    struct echo *e = op->owner;

    if (result <= 0) {
        cr_assert_eq(op->more, false);
        return;
    }
    cr_assert(op->more);
    cr_assert_leq((size_t)result, sizeof(e->echo_buf));
    memcpy(e->echo_buf, op->data, (size_t)result);
    cr_assert_eq(reactor_send(e->h->reactor, &e->server_send, e->server_fd,
                              e->echo_buf, (size_t)result), 0);
}

static void echo_accepted(struct reactor_op *op, int result)
{
    struct echo *e = op->owner;

    cr_assert_geq(result, 0, "accept: %s", strerror(-result));
    cr_assert(op->more);
    e->accepted++;
    e->server_fd = result;
    cr_assert_eq(reactor_recv_multishot(e->h->reactor, &e->server_recv,
                                        e->server_fd), 0);
}

static void echo_client_received(struct reactor_op *op, int result)
{
    struct echo *e = op->owner;

    cr_assert_gt(result, 0, "client recv: %d", result);
    cr_assert_leq(e->received_len + (size_t)result, sizeof(e->received));
    memcpy(e->received + e->received_len, op->data, (size_t)result);
    e->received_len += (size_t)result;
    if (e->received_len == strlen(ECHO_TEXT)) {
        reactor_stop(e->h->reactor);
    }
}

static void echo_client_sent(struct reactor_op *op, int result)
{
    cr_assert_eq(result, (int)strlen(ECHO_TEXT));
    cr_assert_not(op->armed);
}

Test(reactor, tcp_echo)
{
    struct harness h;
    struct sockaddr_in addr;
    struct echo e = {.h = &h, .server_fd = -1};
    int listener;

    harness_start(&h, NULL);
    listener = listen_loopback(&addr);
    e.accept_op = (struct reactor_op){.done = echo_accepted, .owner = &e};
    e.server_recv =
        (struct reactor_op){.done = echo_server_received, .owner = &e};
    e.server_send =
        (struct reactor_op){.done = echo_server_sent, .owner = &e};
    e.client_send =
        (struct reactor_op){.done = echo_client_sent, .owner = &e};
    e.client_recv =
        (struct reactor_op){.done = echo_client_received, .owner = &e};
    cr_assert_eq(reactor_accept(h.reactor, &e.accept_op, listener), 0);
    cr_assert(e.accept_op.armed);

    e.client_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(e.client_fd, 0);
    cr_assert_eq(connect(e.client_fd, (struct sockaddr *)&addr,
                         sizeof(addr)), 0, "connect: %s", strerror(errno));
    cr_assert_eq(reactor_send(h.reactor, &e.client_send, e.client_fd,
                              ECHO_TEXT, strlen(ECHO_TEXT)), 0);
    cr_assert_eq(reactor_send(h.reactor, &e.client_send, e.client_fd,
                              ECHO_TEXT, 1), -EBUSY,
                 "an armed op must not be armed twice");
    cr_assert_eq(reactor_recv_multishot(h.reactor, &e.client_recv,
                                        e.client_fd), 0);
    harness_run(&h);

    cr_assert_eq(e.accepted, 1);
    cr_assert_eq(e.received_len, strlen(ECHO_TEXT));
    cr_assert_arr_eq(e.received, ECHO_TEXT, strlen(ECHO_TEXT));
    cr_assert(e.accept_op.armed, "multishot accept stays armed");
    reactor_free(h.reactor);
    close(e.client_fd);
    close(e.server_fd);
    close(listener);
}

/* ---- sendv and single-shot recv ----------------------------------------- */

struct transfer {
    struct harness *h;
    int fd;
    struct reactor_op op;
    char buf[64];
    size_t len;
    size_t expected;
    int result;
    int calls;
};

static void transfer_sent(struct reactor_op *op, int result)
{
    struct transfer *t = op->owner;

    t->result = result;
    t->calls++;
}

static void transfer_received(struct reactor_op *op, int result)
{
    struct transfer *t = op->owner;

    cr_assert_gt(result, 0, "recv: %d", result);
    t->len += (size_t)result;
    if (t->len == t->expected) {
        reactor_stop(t->h->reactor);
        return;
    }
    cr_assert_eq(reactor_recv(t->h->reactor, op, t->fd, t->buf + t->len,
                              sizeof(t->buf) - t->len), 0);
}

Test(reactor, sendv_three_iovecs)
{
    struct harness h;
    struct iovec iov[3] = {
        {.iov_base = "abc", .iov_len = 3},
        {.iov_base = "defg", .iov_len = 4},
        {.iov_base = "hi", .iov_len = 2},
    };
    struct transfer sender = {.h = &h};
    struct transfer receiver = {.h = &h, .expected = 9};
    int fds[2];

    harness_start(&h, NULL);
    tcp_pair(fds);
    sender.fd = fds[0];
    receiver.fd = fds[1];
    sender.op = (struct reactor_op){.done = transfer_sent, .owner = &sender};
    receiver.op =
        (struct reactor_op){.done = transfer_received, .owner = &receiver};
    cr_assert_eq(reactor_sendv(h.reactor, &sender.op, fds[0], iov, 3), 0);
    cr_assert_eq(reactor_recv(h.reactor, &receiver.op, fds[1], receiver.buf,
                              sizeof(receiver.buf)), 0);
    harness_run(&h);

    cr_assert_eq(sender.calls, 1);
    cr_assert_eq(sender.result, 9);
    cr_assert_eq(receiver.len, 9);
    cr_assert_arr_eq(receiver.buf, "abcdefghi", 9);
    reactor_free(h.reactor);
    close(fds[0]);
    close(fds[1]);
}

/* ---- connect ------------------------------------------------------------ */

struct connecting {
    struct harness *h;
    struct reactor_op op;
    int result;
    int calls;
};

static void connect_done(struct reactor_op *op, int result)
{
    struct connecting *c = op->owner;

    c->result = result;
    c->calls++;
    cr_assert_not(op->more);
    cr_assert_not(op->armed);
    reactor_stop(c->h->reactor);
}

static int connect_through_reactor(struct sockaddr_in *addr)
{
    struct harness h;
    struct connecting c = {.h = &h, .result = 1};
    struct sockaddr_in target = *addr;
    int fd;

    harness_start(&h, NULL);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    c.op = (struct reactor_op){.done = connect_done, .owner = &c};
    cr_assert_eq(reactor_connect(h.reactor, &c.op, fd,
                                 (struct sockaddr *)&target, sizeof(target)),
                 0);

    /* The reactor copied the address, so clobbering ours must not matter. */
    memset(&target, 0, sizeof(target));
    harness_run(&h);
    cr_assert_eq(c.calls, 1);
    reactor_free(h.reactor);
    close(fd);
    return c.result;
}

Test(reactor, connect_success)
{
    struct sockaddr_in addr;
    int listener = listen_loopback(&addr);

    cr_assert_eq(connect_through_reactor(&addr), 0);
    close(listener);
}

Test(reactor, connect_refused)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof(addr);
    int bound = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    /* A bound socket that never listens keeps the port ours and closed. */
    cr_assert_geq(bound, 0);
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(bound, (struct sockaddr *)&addr, sizeof(addr)), 0);
    cr_assert_eq(getsockname(bound, (struct sockaddr *)&addr, &len), 0);
    cr_assert_eq(connect_through_reactor(&addr), -ECONNREFUSED);
    close(bound);
}

/* ---- timers ------------------------------------------------------------- */

struct timer_log {
    struct harness *h;
    struct reactor_timer timers[3];
    int order[8];
    uint64_t fired_ms[3];
    uint64_t fired_us[3];
    int count;
    int stop_after;
};

static void timer_log_fired(struct reactor_timer *timer)
{
    struct timer_log *log = timer->owner;
    int index = (int)(timer - log->timers);

    cr_assert_not(reactor_timer_armed(timer));
    cr_assert_lt(log->count, 8);
    log->order[log->count++] = index;
    log->fired_ms[index] = reactor_now_ms(log->h->reactor);
    log->fired_us[index] = reactor_now_us(log->h->reactor);
    if (log->count == log->stop_after) {
        reactor_stop(log->h->reactor);
    }
}

static void timer_log_start(struct timer_log *log, struct harness *h,
                            int stop_after)
{
    memset(log, 0, sizeof(*log));
    log->h = h;
    log->stop_after = stop_after;
    for (int i = 0; i < 3; i++) {
        log->timers[i].fire = timer_log_fired;
        log->timers[i].owner = log;
    }
}

Test(reactor, timers_fire_in_deadline_order)
{
    struct harness h;
    struct timer_log log;
    uint64_t start;

    harness_start(&h, NULL);
    timer_log_start(&log, &h, 3);
    start = reactor_now_ms(h.reactor);
    reactor_timer_set(h.reactor, &log.timers[0], 30);
    reactor_timer_set(h.reactor, &log.timers[1], 10);
    reactor_timer_set(h.reactor, &log.timers[2], 20);
    cr_assert(reactor_timer_armed(&log.timers[0]));
    harness_run(&h);

    cr_assert_eq(log.count, 3);
    cr_assert_eq(log.order[0], 1);
    cr_assert_eq(log.order[1], 2);
    cr_assert_eq(log.order[2], 0);
    cr_assert_geq(log.fired_ms[1], start + 10);
    cr_assert_geq(log.fired_ms[0], start + 30);
    reactor_free(h.reactor);
}

/* Deadlines inside one millisecond keep their order, and none fires
 * before its deadline on the microsecond clock. */
Test(reactor, timers_microsecond_deadlines)
{
    struct harness h;
    struct timer_log log;
    uint64_t start;

    harness_start(&h, NULL);
    timer_log_start(&log, &h, 3);
    start = reactor_now_us(h.reactor);
    reactor_timer_set_us(h.reactor, &log.timers[0], 1500);
    reactor_timer_set_us(h.reactor, &log.timers[1], 600);
    reactor_timer_set_us(h.reactor, &log.timers[2], 200);
    harness_run(&h);

    cr_assert_eq(log.count, 3);
    cr_assert_eq(log.order[0], 2);
    cr_assert_eq(log.order[1], 1);
    cr_assert_eq(log.order[2], 0);
    cr_assert_geq(log.fired_us[2], start + 200);
    cr_assert_geq(log.fired_us[1], start + 600);
    cr_assert_geq(log.fired_us[0], start + 1500);
    cr_assert_eq(log.fired_ms[0], log.fired_us[0] / 1000);
    reactor_free(h.reactor);
}

Test(reactor, timer_rearm_moves_deadline)
{
    struct harness h;
    struct timer_log log;
    uint64_t start;

    harness_start(&h, NULL);
    timer_log_start(&log, &h, 2);
    start = reactor_now_ms(h.reactor);
    reactor_timer_set(h.reactor, &log.timers[0], 10);
    reactor_timer_set(h.reactor, &log.timers[1], 30);
    reactor_timer_set(h.reactor, &log.timers[0], 60);
    harness_run(&h);

    cr_assert_eq(log.count, 2);
    cr_assert_eq(log.order[0], 1);
    cr_assert_eq(log.order[1], 0);
    cr_assert_geq(log.fired_ms[0], start + 60);
    reactor_free(h.reactor);
}

Test(reactor, timer_cancel_prevents_firing)
{
    struct harness h;
    struct timer_log log;

    harness_start(&h, NULL);
    timer_log_start(&log, &h, 1);
    reactor_timer_set(h.reactor, &log.timers[0], 10);
    reactor_timer_set(h.reactor, &log.timers[2], 5);
    reactor_timer_set(h.reactor, &log.timers[1], 50);
    reactor_timer_cancel(h.reactor, &log.timers[0]);
    reactor_timer_cancel(h.reactor, &log.timers[2]);
    reactor_timer_cancel(h.reactor, &log.timers[2]);
    cr_assert_not(reactor_timer_armed(&log.timers[0]));
    cr_assert_not(reactor_timer_armed(&log.timers[2]));
    harness_run(&h);

    cr_assert_eq(log.count, 1);
    cr_assert_eq(log.order[0], 1);
    reactor_free(h.reactor);
}

/* ---- deferred hooks ----------------------------------------------------- */

struct hook_test {
    struct harness *h;
    struct reactor_hook hook;
    struct reactor_timer kick;
    struct reactor_timer between;
    char events[16];
    int event_count;
    int runs;
};

static void hook_test_record(struct hook_test *t, char event)
{
    cr_assert_lt(t->event_count, 15);
    t->events[t->event_count++] = event;
}

static void hook_test_between(struct reactor_timer *timer)
{
    hook_test_record(timer->owner, 'T');
}

/* The hook's first run arms a zero-delay timer and defers itself again.
 * Run in the next turn, it comes after that timer; run again in the same
 * turn, it would come before it. */
static void hook_test_run(struct reactor_hook *hook)
{
    struct hook_test *t = hook->owner;

    hook_test_record(t, 'H');
    t->runs++;
    if (t->runs == 1) {
        reactor_timer_set(t->h->reactor, &t->between, 0);
        reactor_defer(t->h->reactor, hook);
    } else {
        reactor_stop(t->h->reactor);
    }
}

static void hook_test_kick(struct reactor_timer *timer)
{
    struct hook_test *t = timer->owner;

    reactor_defer(t->h->reactor, &t->hook);
    reactor_defer(t->h->reactor, &t->hook);
}

Test(reactor, defer_runs_once_per_turn)
{
    struct harness h;
    struct hook_test t;
    uint64_t start;

    harness_start(&h, NULL);
    memset(&t, 0, sizeof(t));
    t.h = &h;
    t.hook.run = hook_test_run;
    t.hook.owner = &t;
    t.kick.fire = hook_test_kick;
    t.kick.owner = &t;
    t.between.fire = hook_test_between;
    t.between.owner = &t;
    start = reactor_now_ms(h.reactor);
    reactor_timer_set(h.reactor, &t.kick, 10);
    harness_run(&h);

    cr_assert_eq(t.runs, 2);
    cr_assert_str_eq(t.events, "HTH");

    /* The re-deferred hook must not wait for I/O or the safety timer. */
    cr_assert_lt(reactor_now_ms(h.reactor) - start, 1000);
    reactor_free(h.reactor);
}

/* ---- fsync -------------------------------------------------------------- */

struct sync_test {
    struct harness *h;
    struct reactor_op op;
    int fd;
    int results[2];
    int calls;
};

static void sync_done(struct reactor_op *op, int result)
{
    struct sync_test *s = op->owner;

    s->results[s->calls++] = result;
    if (s->calls == 1) {
        cr_assert_eq(reactor_fsync(s->h->reactor, op, s->fd, true), 0);
    } else {
        reactor_stop(s->h->reactor);
    }
}

Test(reactor, fsync_and_fdatasync)
{
    struct harness h;
    struct sync_test s = {.h = &h};
    char dir[] = "/tmp/ringrelay-reactor-XXXXXX";
    char path[64];

    harness_start(&h, NULL);
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    snprintf(path, sizeof(path), "%s/data", dir);
    s.fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    cr_assert_geq(s.fd, 0, "open: %s", strerror(errno));
    cr_assert_eq(write(s.fd, "record\n", 7), 7);
    s.op = (struct reactor_op){.done = sync_done, .owner = &s};
    cr_assert_eq(reactor_fsync(h.reactor, &s.op, s.fd, false), 0);
    harness_run(&h);

    cr_assert_eq(s.calls, 2);
    cr_assert_eq(s.results[0], 0, "fsync: %s", strerror(-s.results[0]));
    cr_assert_eq(s.results[1], 0, "fdatasync: %s", strerror(-s.results[1]));
    reactor_free(h.reactor);
    close(s.fd);
    unlink(path);
    rmdir(dir);
}

/* ---- cancel and end of stream ------------------------------------------- */

struct recv_test {
    struct harness *h;
    struct reactor_op op;
    struct reactor_timer timer;
    int calls;
    int final_calls;
    int last_result;
};

static void recv_test_done(struct reactor_op *op, int result)
{
    struct recv_test *r = op->owner;

    r->calls++;
    r->last_result = result;
    if (!op->more) {
        r->final_calls++;
        cr_assert_not(op->armed);
    }
}

static void recv_test_cancel(struct reactor_timer *timer)
{
    struct recv_test *r = timer->owner;

    cr_assert(r->op.armed);
    cr_assert_eq(reactor_cancel(r->h->reactor, &r->op), 0);
    cr_assert_eq(reactor_cancel(r->h->reactor, &r->op), 0);

    /* Give any stray completion time to show up before stopping. */
    r->timer.fire = safety_fired;
    r->timer.owner = r->h;
    reactor_timer_set(r->h->reactor, &r->timer, 100);
}

static void stop_fired(struct reactor_timer *timer)
{
    reactor_stop(timer->owner);
}

Test(reactor, cancel_multishot_recv)
{
    struct harness h;
    struct recv_test r = {.h = &h};
    int fds[2];

    harness_start(&h, NULL);
    tcp_pair(fds);
    r.op = (struct reactor_op){.done = recv_test_done, .owner = &r};
    r.timer.fire = recv_test_cancel;
    r.timer.owner = &r;
    cr_assert_eq(reactor_cancel(h.reactor, &r.op), 0,
                 "cancelling an unarmed op is a no-op");
    cr_assert_eq(reactor_recv_multishot(h.reactor, &r.op, fds[1]), 0);
    reactor_timer_set(h.reactor, &r.timer, 20);
    reactor_run(h.reactor);

    /* The 100 ms wait ends through safety_fired, which sets timed_out. */
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.final_calls, 1);
    cr_assert_eq(r.last_result, -ECANCELED);
    cr_assert_not(r.op.more);
    cr_assert_not(r.op.armed);
    reactor_free(h.reactor);
    close(fds[0]);
    close(fds[1]);
}

static void run_until_final(struct harness *h, struct recv_test *r)
{
    struct reactor_timer stop = {.fire = stop_fired, .owner = h->reactor};

    while (r->final_calls == 0 && !h->timed_out) {
        reactor_timer_set(h->reactor, &stop, 20);
        cr_assert_eq(reactor_run(h->reactor), 0);
    }
    reactor_timer_cancel(h->reactor, &stop);
    cr_assert_not(h->timed_out, "no final completion within %d ms",
                  SAFETY_MS);
}

Test(reactor, recv_returns_zero_on_close)
{
    struct harness h;
    struct recv_test r = {.h = &h, .last_result = 1};
    char buf[16];
    int fds[2];

    harness_start(&h, NULL);
    tcp_pair(fds);
    r.op = (struct reactor_op){.done = recv_test_done, .owner = &r};
    cr_assert_eq(reactor_recv(h.reactor, &r.op, fds[1], buf, sizeof(buf)),
                 0);
    close(fds[0]);
    run_until_final(&h, &r);

    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.last_result, 0);
    reactor_free(h.reactor);
    close(fds[1]);
}

Test(reactor, multishot_recv_zero_on_close)
{
    struct harness h;
    struct recv_test r = {.h = &h, .last_result = 1};
    int fds[2];

    harness_start(&h, NULL);
    tcp_pair(fds);
    r.op = (struct reactor_op){.done = recv_test_done, .owner = &r};
    cr_assert_eq(reactor_recv_multishot(h.reactor, &r.op, fds[1]), 0);
    close(fds[0]);
    run_until_final(&h, &r);

    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.final_calls, 1);
    cr_assert_eq(r.last_result, 0);
    reactor_free(h.reactor);
    close(fds[1]);
}

/* ---- a tiny buffer ring: the -ENOBUFS re-arm path ----------------------- */

#define STREAM_BYTES (64 * 1024)

struct stream {
    struct harness *h;
    int send_fd;
    struct reactor_op send_op;
    size_t sent;
    struct reactor_op recv_op;
    unsigned char *received;
    size_t received_len;
    int chunks;
    int final_result;
    bool finished;
    bool oversized_chunk;
    bool more_missing;
};

static unsigned char stream_byte(size_t i)
{
    return (unsigned char)((i * 7u + i / 251u) & 0xffu);
}

static unsigned char stream_pattern[STREAM_BYTES];

static void stream_send_rest(struct stream *s)
{
    cr_assert_eq(reactor_send(s->h->reactor, &s->send_op, s->send_fd,
                              stream_pattern + s->sent,
                              STREAM_BYTES - s->sent), 0);
}

static void stream_sent(struct reactor_op *op, int result)
{
    struct stream *s = op->owner;

    cr_assert_gt(result, 0, "send: %s", strerror(-result));
    s->sent += (size_t)result;
    if (s->sent == STREAM_BYTES) {
        cr_assert_eq(shutdown(s->send_fd, SHUT_WR), 0);
        return;
    }
    stream_send_rest(s);
}

static void stream_received(struct reactor_op *op, int result)
{
    struct stream *s = op->owner;

    if (result > 0) {
        s->oversized_chunk |= result > 64;
        s->more_missing |= !op->more;
        cr_assert_leq(s->received_len + (size_t)result, STREAM_BYTES);
        memcpy(s->received + s->received_len, op->data, (size_t)result);
        s->received_len += (size_t)result;
        s->chunks++;
        return;
    }
    cr_assert_not(op->more);
    s->final_result = result;
    s->finished = true;
    reactor_stop(s->h->reactor);
}

Test(reactor, tiny_ring_delivers_everything)
{
    struct reactor_options opts = {.recv_buffers = 2,
                                   .recv_buffer_size = 64};
    struct harness h;
    struct stream s = {.h = &h};
    int fds[2];

    harness_start(&h, &opts);
    tcp_pair(fds);
    s.send_fd = fds[0];
    s.received = malloc(STREAM_BYTES);
    cr_assert_not_null(s.received);
    s.send_op = (struct reactor_op){.done = stream_sent, .owner = &s};
    s.recv_op = (struct reactor_op){.done = stream_received, .owner = &s};
    for (size_t i = 0; i < STREAM_BYTES; i++) {
        stream_pattern[i] = stream_byte(i);
    }
    cr_assert_eq(reactor_recv_multishot(h.reactor, &s.recv_op, fds[1]), 0);
    stream_send_rest(&s);
    harness_run(&h);

    cr_assert(s.finished);
    cr_assert_eq(s.final_result, 0, "final result %d (%s)", s.final_result,
                 strerror(-s.final_result));
    cr_assert_not(s.oversized_chunk);
    cr_assert_not(s.more_missing);
    cr_assert_eq(s.sent, STREAM_BYTES);
    cr_assert_eq(s.received_len, STREAM_BYTES);
    cr_assert_geq(s.chunks, STREAM_BYTES / 64);
    for (size_t i = 0; i < STREAM_BYTES; i++) {
        cr_assert_eq(s.received[i], stream_byte(i), "byte %zu differs", i);
    }
    free(s.received);
    reactor_free(h.reactor);
    close(fds[0]);
    close(fds[1]);
}

/* Cancelling from the first data callback while the tiny ring runs dry
 * covers both cancel paths: a request still in the kernel, and a
 * multishot recv waiting for its re-arm after -ENOBUFS. */
static void cancel_on_first_chunk(struct reactor_op *op, int result)
{
    struct stream *s = op->owner;

    if (op->more) {
        cr_assert_gt(result, 0);
        s->chunks++;
        cr_assert_eq(reactor_cancel(s->h->reactor, op), 0);
        return;
    }
    cr_assert_not(s->finished, "a second final completion arrived");
    cr_assert_not(op->armed);
    s->final_result = result;
    s->finished = true;
}

Test(reactor, cancel_while_ring_dry)
{
    struct reactor_options opts = {.recv_buffers = 2,
                                   .recv_buffer_size = 64};
    struct reactor_timer stop = {.fire = stop_fired};
    struct harness h;
    struct stream s = {.h = &h};
    int fds[2];

    harness_start(&h, &opts);
    tcp_pair(fds);
    s.send_fd = fds[0];
    s.recv_op =
        (struct reactor_op){.done = cancel_on_first_chunk, .owner = &s};
    cr_assert_eq(send(fds[0], stream_pattern, 4096, 0), 4096);
    cr_assert_eq(reactor_recv_multishot(h.reactor, &s.recv_op, fds[1]), 0);
    stop.owner = h.reactor;
    reactor_timer_set(h.reactor, &stop, 100);
    harness_run(&h);

    cr_assert(s.finished);
    cr_assert_eq(s.final_result, -ECANCELED);
    cr_assert_geq(s.chunks, 1);
    cr_assert_lt(s.chunks, 4096 / 64, "the cancel did not stop the recv");
    reactor_free(h.reactor);
    close(fds[0]);
    close(fds[1]);
}

/* ---- read from a pipe --------------------------------------------------- */

Test(reactor, read_from_pipe)
{
    struct harness h;
    struct recv_test r = {.h = &h, .last_result = -1};
    char buf[16] = {0};
    int fds[2];

    harness_start(&h, NULL);
    cr_assert_eq(pipe2(fds, O_CLOEXEC), 0, "pipe2: %s", strerror(errno));
    r.op = (struct reactor_op){.done = recv_test_done, .owner = &r};
    cr_assert_eq(reactor_read(h.reactor, &r.op, fds[0], buf, sizeof(buf)),
                 0);
    cr_assert_eq(write(fds[1], "ping", 4), 4);
    run_until_final(&h, &r);

    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.last_result, 4);
    cr_assert_str_eq(buf, "ping");
    reactor_free(h.reactor);
    close(fds[0]);
    close(fds[1]);
}

static void accept_must_not_complete(struct reactor_op *op, int result)
{
    (void)op;
    cr_assert_fail("an abandoned accept completed with %d", result);
}

/* Listen on addr with a pending multishot accept, free the reactor and
 * exit, as a server does when it stops. Runs in a child process. */
static void serve_then_exit(const struct sockaddr_in *addr)
{
    struct reactor *reactor = NULL;
    struct reactor_op accept_op = {.done = accept_must_not_complete};
    struct reactor_timer stop = {.fire = stop_fired};
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (listener < 0 || reactor_new(&reactor, NULL) != 0 ||
        bind(listener, (const struct sockaddr *)addr, sizeof(*addr)) != 0 ||
        listen(listener, 16) != 0 ||
        reactor_accept(reactor, &accept_op, listener) != 0) {
        _exit(2);
    }
    stop.owner = reactor;
    reactor_timer_set(reactor, &stop, 20);
    if (reactor_run(reactor) != 0) {
        _exit(3);
    }
    reactor_free(reactor);
    close(listener);
    _exit(0);
}

/* reactor_free() must cancel a pending multishot accept before it
 * returns. Otherwise the kernel cancels it only after the process has
 * exited, the listening socket lingers, and a restarted server cannot
 * bind the same port at once. */
Test(reactor, free_releases_listener)
{
    struct sockaddr_in addr;
    int listener = listen_loopback(&addr);
    int status = 0;
    int again;
    pid_t child;

    /* Free the port for the child; the address keeps the port number. */
    cr_assert_eq(close(listener), 0);
    child = fork();
    cr_assert_geq(child, 0, "fork: %s", strerror(errno));
    if (child == 0) {
        serve_then_exit(&addr);
    }
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the serving child failed with status %d", status);

    again = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(again, 0, "socket: %s", strerror(errno));
    cr_assert_eq(bind(again, (struct sockaddr *)&addr, sizeof(addr)), 0,
                 "bind right after the server exited: %s", strerror(errno));
    close(again);
}

/* ---- shutdown ------------------------------------------------------------ */

/* owned_op: an op whose owner frees itself in the final callback, as the
 * queue's fsyncs and detached DNS sockets do. Without that callback at
 * shutdown, LeakSanitizer reports the struct. */
struct owned_op {
    struct reactor_op op;
    int *calls;
    int *result;
};

static void owned_op_done(struct reactor_op *op, int result)
{
    struct owned_op *owned = op->owner;

    cr_assert_not(op->more);
    cr_assert_not(op->armed);
    (*owned->calls)++;
    *owned->result = result;
    free(owned);
}

static struct owned_op *owned_op_new(int *calls, int *result)
{
    struct owned_op *owned = calloc(1, sizeof(*owned));

    cr_assert_not_null(owned);
    owned->op = (struct reactor_op){.done = owned_op_done, .owner = owned};
    owned->calls = calls;
    owned->result = result;
    return owned;
}

Test(reactor, shutdown_cancels_pipe_read)
{
    struct reactor *reactor = NULL;
    struct owned_op *owned;
    struct reactor_op late = {.done = owned_op_done};
    char buf[16];
    int calls = 0;
    int result = 1;
    int fds[2];

    cr_assert_eq(reactor_new(&reactor, NULL), 0);
    cr_assert_eq(pipe2(fds, O_CLOEXEC), 0, "pipe2: %s", strerror(errno));
    owned = owned_op_new(&calls, &result);
    cr_assert_eq(reactor_read(reactor, &owned->op, fds[0], buf,
                              sizeof(buf)), 0);

    cr_assert_eq(reactor_shutdown(reactor), 0);
    cr_assert_eq(calls, 1, "the pending read got %d callbacks", calls);
    cr_assert_eq(result, -ECANCELED, "read result: %d", result);

    /* Nothing starts after a shutdown, and the loop does not run. */
    cr_assert_eq(reactor_read(reactor, &late, fds[0], buf, sizeof(buf)),
                 -ECANCELED);
    cr_assert_not(late.armed);
    cr_assert_eq(reactor_run(reactor), -ECANCELED);
    cr_assert_eq(reactor_shutdown(reactor), 0);
    reactor_free(reactor);
    close(fds[0]);
    close(fds[1]);
}

/* An fsync that was never reaped by reactor_run() still reaches its owner:
 * cancelled before it started, or with its own result when it ran. */
Test(reactor, shutdown_reaps_fsync)
{
    struct reactor *reactor = NULL;
    char dir[] = "/tmp/ringrelay-reactor-XXXXXX";
    char path[64];
    int calls = 0;
    int result = 1;
    int fd;

    cr_assert_eq(reactor_new(&reactor, NULL), 0);
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    snprintf(path, sizeof(path), "%s/data", dir);
    fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0, "open: %s", strerror(errno));
    cr_assert_eq(write(fd, "record\n", 7), 7);
    cr_assert_eq(reactor_fsync(reactor, &owned_op_new(&calls, &result)->op,
                               fd, true), 0);

    cr_assert_eq(reactor_shutdown(reactor), 0);
    cr_assert_eq(calls, 1, "the fsync got %d callbacks", calls);
    cr_assert(result == 0 || result == -ECANCELED, "fsync result: %s",
              strerror(-result));
    reactor_free(reactor);
    close(fd);
    unlink(path);
    rmdir(dir);
}

/* A multishot recv and a multishot accept each end with one final
 * callback. */
Test(reactor, shutdown_ends_multishot_ops)
{
    struct reactor *reactor = NULL;
    struct recv_test r = {.last_result = 1};
    struct recv_test a = {.last_result = 1};
    struct sockaddr_in addr;
    int listener = listen_loopback(&addr);
    int fds[2];

    cr_assert_eq(reactor_new(&reactor, NULL), 0);
    tcp_pair(fds);
    r.op = (struct reactor_op){.done = recv_test_done, .owner = &r};
    a.op = (struct reactor_op){.done = recv_test_done, .owner = &a};
    cr_assert_eq(reactor_recv_multishot(reactor, &r.op, fds[1]), 0);
    cr_assert_eq(reactor_accept(reactor, &a.op, listener), 0);

    cr_assert_eq(reactor_shutdown(reactor), 0);
    cr_assert_eq(r.final_calls, 1);
    cr_assert_eq(r.last_result, -ECANCELED);
    cr_assert_not(r.op.armed);
    cr_assert_eq(a.final_calls, 1);
    cr_assert_eq(a.last_result, -ECANCELED);
    reactor_free(reactor);
    close(fds[0]);
    close(fds[1]);
    close(listener);
}

Test(reactor, shutdown_without_ops)
{
    struct reactor *reactor = NULL;

    cr_assert_eq(reactor_shutdown(NULL), 0);
    cr_assert_eq(reactor_new(&reactor, NULL), 0);
    cr_assert_eq(reactor_shutdown(reactor), 0);
    reactor_free(reactor);
}

/* ---- cancelling a deferred hook ----------------------------------------- */

struct hook_count {
    struct reactor *reactor;
    int runs;
};

static void hook_count_run(struct reactor_hook *hook)
{
    struct hook_count *count = hook->owner;

    count->runs++;
    reactor_stop(count->reactor);
}

Test(reactor, defer_cancel_removes_hook)
{
    struct harness h;
    struct hook_count first = {0};
    struct hook_count middle = {0};
    struct hook_count last = {0};
    struct reactor_hook hooks[3] = {
        {.run = hook_count_run, .owner = &first},
        {.run = hook_count_run, .owner = &middle},
        {.run = hook_count_run, .owner = &last},
    };

    harness_start(&h, NULL);
    first.reactor = middle.reactor = last.reactor = h.reactor;
    for (int i = 0; i < 3; i++) {
        reactor_defer(h.reactor, &hooks[i]);
    }
    reactor_defer_cancel(h.reactor, &hooks[1]);
    reactor_defer_cancel(h.reactor, &hooks[2]);
    reactor_defer_cancel(h.reactor, &hooks[2]);

    /* The tail moved back to the first hook, so a new one follows it. */
    reactor_defer(h.reactor, &hooks[2]);
    harness_run(&h);
    cr_assert_eq(first.runs, 1);
    cr_assert_eq(middle.runs, 0);
    cr_assert_eq(last.runs, 1);
    reactor_free(h.reactor);
}

struct hook_pair {
    struct harness *h;
    struct reactor_hook first;
    struct reactor_hook second;
};

static void hook_pair_cancel_second(struct reactor_hook *hook)
{
    struct hook_pair *pair = hook->owner;

    reactor_defer_cancel(pair->h->reactor, &pair->second);
    reactor_stop(pair->h->reactor);
}

static void hook_must_not_run(struct reactor_hook *hook)
{
    (void)hook;
    cr_assert_fail("a cancelled hook ran");
}

/* A hook may cancel a hook deferred after it in the same turn. */
Test(reactor, defer_cancel_from_hook)
{
    struct harness h;
    struct hook_pair pair = {.h = &h};

    harness_start(&h, NULL);
    pair.first = (struct reactor_hook){.run = hook_pair_cancel_second,
                                       .owner = &pair};
    pair.second = (struct reactor_hook){.run = hook_must_not_run};
    reactor_defer(h.reactor, &pair.first);
    reactor_defer(h.reactor, &pair.second);
    harness_run(&h);
    cr_assert_not(pair.second.queued);
    reactor_free(h.reactor);
}
