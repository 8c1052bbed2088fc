#include "bench/sink_session.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/bench_net.h"
#include "bench/sink_account.h"
#include "bench/sink_session_internal.h"
#include "bench/sink_tls.h"
#include "proto/smtp_outq.h"
#include "tls/tls_session.h"

/* Time a session gets to drain its 421 after an idle timeout before the
 * connection is cut, in milliseconds. */
#define SINK_CLOSE_GRACE_MS 10000

/* Envelope bytes per recipient in a stored file: "RCPT TO:<>\r\n" plus
 * the longest path. */
#define SINK_RCPT_LINE_MAX (SMTP_PATH_MAX + 16)

/* Bytes of the "TLS: VERSION CIPHER" envelope line: BoringSSL's version
 * and cipher names are far shorter. */
#define SINK_TLS_LINE_MAX 256

static void sink_session_step(struct sink_session *s);

/* Send reply for the finished body and let the session parse on. A
 * body that is not accepted was refused by the store or by a fault. */
static void sink_session_reply(struct sink_session *s, const char *reply,
                               bool accepted)
{
    if (accepted && smtp_server_encrypted(s->smtp)) {
        s->server->messages_tls++;
    }
    if (accepted) {
        sink_account_message(s->server, &s->headers, s->rcpt_ids,
                             s->rcpt_count, s->body_bytes, s->received_us);
    }
    s->commit = SINK_COMMIT_NONE;
    s->body_bytes = 0;
    sink_message_clear(&s->message);
    smtp_server_data_done(s->smtp, reply);
    smtp_server_resume(s->smtp);
}

static void sink_session_store_failed(struct sink_session *s,
                                      const char *step, int err)
{
    char reply[SMTP_REPLY_MAX];

    s->server->store_failures++;
    fprintf(stderr, "sink: cannot store a message in %s: %s failed: %s\n",
            sink_store_dir(s->server->store), step, strerror(-err));
    snprintf(reply, sizeof(reply),
             "451 4.3.0 Error: cannot store message: %s", strerror(-err));
    sink_session_reply(s, reply, false);
}

/* Rename the written file into place and reply with its number, or
 * with the 2xx text of a --data-reply when one was drawn. */
static void sink_session_finish_store(struct sink_session *s)
{
    char reply[SMTP_REPLY_MAX];
    uint64_t number;
    int rc;

    rc = sink_store_commit(s->server->store, &s->file, &number);
    if (rc < 0) {
        sink_session_store_failed(s, "rename", rc);
        return;
    }
    if (s->accept_reply != NULL) {
        sink_session_reply(s, s->accept_reply, true);
        return;
    }
    snprintf(reply, sizeof(reply), "250 2.0.0 Ok: stored as %08" PRIu64,
             number);
    sink_session_reply(s, reply, true);
}

static void sink_session_on_fsync(struct reactor_op *op, int result)
{
    struct sink_session *s = op->owner;

    if (result < 0) {
        sink_store_discard(s->server->store, &s->file);
        sink_session_store_failed(s, "fsync", result);
    } else {
        sink_session_finish_store(s);
    }
    sink_session_step(s);
}

/* Reply to every body whose final dot has arrived. A reply lets the
 * session parse held-back pipelined input, which may finish another
 * body, hence the loop. */
static void sink_session_commit(struct sink_session *s)
{
    struct sink_store *store = s->server->store;
    struct sink_fault_rule *rule;
    int rc;

    while (s->commit == SINK_COMMIT_PENDING) {
        rule = sink_fault_draw(&s->server->faults, SINK_STAGE_DATA,
                               &s->random);
        s->accept_reply = rule != NULL ? rule->reply : NULL;
        if (rule != NULL && rule->code >= 300) {
            /* A refused body is neither stored nor counted. */
            s->server->rejected++;
            sink_session_reply(s, rule->reply, false);
            continue;
        }
        if (store == NULL) {
            sink_session_reply(s, rule != NULL ? rule->reply
                                               : "250 2.0.0 Ok: queued",
                               true);
            continue;
        }

        /* NOTE: open, write, close and rename run synchronously on the
         * reactor thread, so a storing sink is far slower than a
         * counting one; only the fsync is asynchronous. */
        rc = sink_store_write(store, &s->message, &s->file);
        if (rc < 0) {
            sink_session_store_failed(s, "write", rc);
            continue;
        }
        if (!sink_store_with_fsync(store)) {
            sink_session_finish_store(s);
            continue;
        }

        rc = reactor_fsync(s->server->reactor, &s->fsync_op, s->file.fd,
                           false);
        if (rc < 0) {
            sink_store_discard(store, &s->file);
            sink_session_store_failed(s, "fsync", rc);
            continue;
        }
        s->commit = SINK_COMMIT_SYNCING;
    }
}

static void sink_session_cancel(struct sink_session *s,
                                struct reactor_op *op)
{
    int rc = reactor_cancel(s->server->reactor, op);

    if (rc < 0 && rc != -ENOENT && rc != -EALREADY) {
        fprintf(stderr, "sink: cancelling a session's I/O failed: %s\n",
                strerror(-rc));
    }
}

/* Cut the connection: pending operations complete with errors, queued
 * output is dropped, and the session frees itself once they finished. */
static void sink_session_abort(struct sink_session *s)
{
    s->send_failed = true;
    if (shutdown(s->fd, SHUT_RDWR) < 0 && errno != ENOTCONN) {
        fprintf(stderr, "sink: shutdown of a session failed: %s\n",
                strerror(errno));
    }
    sink_session_cancel(s, &s->recv_op);
    sink_session_cancel(s, &s->send_op);
}

/* Cut iov[0..count) down to limit bytes and return how many are left. */
static int sink_session_trim_iov(struct iovec *iov, int count, size_t limit)
{
    for (int i = 0; i < count; i++) {
        if (iov[i].iov_len >= limit) {
            iov[i].iov_len = limit;
            return limit > 0 ? i + 1 : i;
        }
        limit -= iov[i].iov_len;
    }
    return count;
}

static void sink_session_flush(struct sink_session *s)
{
    struct smtp_outq *plain = smtp_server_output(s->smtp);
    struct smtp_outq *out = plain;
    int count;
    int rc;

    if (s->send_op.armed || s->send_failed) {
        return;
    }
    if (s->tls != NULL) {
        out = sink_tls_output(s);
        if (out == NULL) {
            sink_session_abort(s);
            return;
        }
    }
    /* Held replies are never encrypted, so only the plaintext queue
     * needs trimming. */
    if (out->len == 0 || (out == plain && s->holding && s->hold_len == 0)) {
        return;
    }
    count = smtp_outq_peek(out, s->iov, SINK_IOV_MAX);
    if (out == plain && s->holding) {
        count = sink_session_trim_iov(s->iov, count, s->hold_len);
    }
    s->send_queue = out;
    rc = reactor_sendv(s->server->reactor, &s->send_op, s->fd, s->iov,
                       count);
    if (rc < 0) {
        fprintf(stderr, "sink: starting a send failed: %s\n",
                strerror(-rc));
        sink_session_abort(s);
    }
}

/* After the last reply went out, send FIN and stop receiving. */
static void sink_session_close_when_drained(struct sink_session *s)
{
    if (s->write_shut || !smtp_server_closing(s->smtp)
        || s->send_op.armed || s->commit != SINK_COMMIT_NONE
        || (s->holding && !s->send_failed)
        || ((smtp_server_output(s->smtp)->len != 0 || s->tls_out.len != 0)
            && !s->send_failed)) {
        return;
    }
    /* A TLS client expects close_notify before the end of the stream,
     * so it goes out first and the next step shuts down. */
    if (s->tls != NULL && !s->tls_closed && !s->send_failed
        && tls_session_established(s->tls)) {
        s->tls_closed = true;
        tls_session_close(s->tls);
        sink_session_flush(s);
        if (s->send_op.armed) {
            return;
        }
    }
    s->write_shut = true;
    if (shutdown(s->fd, SHUT_WR) < 0 && errno != ENOTCONN) {
        fprintf(stderr, "sink: shutdown of a session failed: %s\n",
                strerror(errno));
    }
    sink_session_cancel(s, &s->recv_op);
}

/* Release everything of s. reactor_alive is false after reactor_free(),
 * when the timer must not be touched through the reactor. */
static void sink_session_destroy(struct sink_session *s, bool reactor_alive)
{
    struct sink_server *server = s->server;

    if (reactor_alive) {
        reactor_timer_cancel(server->reactor, &s->timer);
    }
    if (s->commit == SINK_COMMIT_DELAYED) {
        /* The connection failed while the body waited for its reply. */
        server->aborted++;
    }
    smtp_server_free(s->smtp);
    sink_tls_free(s);
    free(s->rcpt_ids);
    if (s->file.fd >= 0) {
        sink_store_discard(server->store, &s->file);
    }
    sink_message_cleanup(&s->message);
    if (close(s->fd) < 0) {
        fprintf(stderr, "sink: closing a session failed: %s\n",
                strerror(errno));
    }

    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        server->sessions = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    server->sessions_open--;
    free(s);
}

/* Move the session on after any event; it may free s, so callers must
 * not touch s afterwards. */
static void sink_session_step(struct sink_session *s)
{
    sink_session_commit(s);

    /* Any body write may have chosen to cut the connection, also one
     * run by smtp_server_resume() after a send or a reply. */
    if (s->cut_now) {
        s->cut_now = false;
        s->cut_in_data = false;
        s->server->faults.disconnects++;
        sink_session_abort(s);
    }
    sink_session_flush(s);
    sink_session_close_when_drained(s);

    /* A client that half-closed after pipelining its commands still
     * gets the replies that a delay holds back. */
    if (s->input_ended && !s->recv_op.armed && !s->send_op.armed
        && !s->fsync_op.armed
        && (s->send_failed
            || (!s->holding && s->commit != SINK_COMMIT_DELAYED))) {
        sink_session_destroy(s, true);
    }
}

/* sink_session_count_read counts a read of commands, and whether it
 * carried more than one line, which only a pipelining client sends. */
static void sink_session_count_read(struct sink_session *s,
                                    const char *data, size_t len)
{
    const char *first;

    if (smtp_server_receiving_data(s->smtp)) {
        return;
    }
    s->server->command_reads++;
    first = memchr(data, '\n', len);
    if (first != NULL &&
        memchr(first + 1, '\n', len - (size_t)(first + 1 - data)) != NULL) {
        s->server->pipelined_reads++;
    }
}

static void sink_session_on_recv(struct reactor_op *op, int result)
{
    struct sink_session *s = op->owner;

    /* Input that was already received when the connection was cut is
     * dropped: its replies cannot be sent, and parsing it would count a
     * pipelined transaction that the client never saw accepted. */
    if (result > 0 && !smtp_server_closing(s->smtp) && !s->send_failed) {
        if (!s->timed_out) {
            s->idle_deadline_ms = reactor_now_ms(s->server->reactor)
                                  + s->server->idle_timeout_ms;
            sink_session_arm_timer(s);
        }
        if (s->tls == NULL) {
            /* Reads are counted as command reads only in plaintext,
             * where one read is one batch of the client's commands. */
            sink_session_count_read(s, op->data, (size_t)result);
            smtp_server_feed(s->smtp, op->data, (size_t)result);
        } else if (sink_tls_receive(s, op->data, (size_t)result) != 0) {
            /* A failed handshake or close_notify ends the session. */
            sink_session_abort(s);
        }
    }
    /* End of stream, a reset by the peer and our own cancel are the
     * normal ends of a session, so none of them is reported. */
    if (!op->more) {
        s->input_ended = true;
    }
    sink_session_step(s);
}

static void sink_session_on_send(struct reactor_op *op, int result)
{
    struct sink_session *s = op->owner;

    if (result < 0) {
        sink_session_abort(s);
    } else {
        size_t sent = (size_t)result;

        if (s->holding && s->send_queue == smtp_server_output(s->smtp)) {
            s->hold_len -= sent < s->hold_len ? sent : s->hold_len;
        }
        smtp_outq_consume(s->send_queue, sent);
        smtp_server_resume(s->smtp);
    }
    sink_session_step(s);
}

void sink_session_arm_timer(struct sink_session *s)
{
    struct reactor *reactor = s->server->reactor;
    uint64_t now = reactor_now_ms(reactor);
    uint64_t deadline = s->idle_deadline_ms;

    if (s->holding && s->hold_until_ms < deadline) {
        deadline = s->hold_until_ms;
    }
    if (s->commit == SINK_COMMIT_DELAYED && s->commit_at_ms < deadline) {
        deadline = s->commit_at_ms;
    }
    reactor_timer_set(reactor, &s->timer,
                      deadline > now ? deadline - now : 0);
}

/* First idle expiry: send 421 and close. Second expiry: the client did
 * not take the 421 within the grace period, so cut the connection. */
static void sink_session_on_idle(struct sink_session *s, uint64_t now)
{
    if (!s->timed_out) {
        s->timed_out = true;
        smtp_server_timeout(s->smtp);
        s->idle_deadline_ms = now + SINK_CLOSE_GRACE_MS;
    } else {
        s->idle_deadline_ms = UINT64_MAX;
        sink_session_abort(s);
    }
}

static void sink_session_on_timer(struct reactor_timer *timer)
{
    struct sink_session *s = timer->owner;
    uint64_t now = reactor_now_ms(s->server->reactor);

    bool delay_ended = false;

    if (s->holding && s->hold_until_ms <= now) {
        s->holding = false;
        delay_ended = true;
    }
    if (s->commit == SINK_COMMIT_DELAYED && s->commit_at_ms <= now) {
        s->commit = SINK_COMMIT_PENDING;
        delay_ended = true;
    }
    /* A delay is the sink's own wait, so the idle time starts again
     * when it ends. */
    if (delay_ended && !s->timed_out) {
        s->idle_deadline_ms = now + s->server->idle_timeout_ms;
    }
    if (!s->holding && s->commit != SINK_COMMIT_DELAYED
        && s->idle_deadline_ms <= now) {
        sink_session_on_idle(s, now);
    }
    sink_session_arm_timer(s);
    sink_session_step(s);
}

static struct sink_session *sink_session_new(struct sink_server *server,
                                             int fd)
{
    const struct smtp_server_options *options = &server->smtp_options;
    struct sink_session *s = calloc(1, sizeof(*s));
    size_t max_len;

    if (s == NULL) {
        return NULL;
    }
    s->server = server;
    s->fd = fd;
    s->file.fd = -1;
    smtp_outq_init(&s->tls_out);
    s->recv_op = (struct reactor_op){.done = sink_session_on_recv,
                                     .owner = s};
    s->send_op = (struct reactor_op){.done = sink_session_on_send,
                                     .owner = s};
    s->fsync_op = (struct reactor_op){.done = sink_session_on_fsync,
                                      .owner = s};
    s->timer.fire = sink_session_on_timer;
    s->timer.owner = s;
    sink_fault_random_init(&s->random, server->faults.seed,
                           server->sessions_total);

    /* A stored file is never longer than the envelope (with its TLS
     * line) plus the body in wire form, and the session rejects larger
     * bodies. */
    max_len = SMTP_PATH_MAX + 16 + SINK_TLS_LINE_MAX + 2
              + options->max_message_size
              + options->max_rcpts * SINK_RCPT_LINE_MAX;
    sink_message_init(&s->message, max_len);

    s->smtp = smtp_server_new(options, &sink_hooks, s);
    if (s->smtp == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

int sink_session_start(struct sink_server *server, int fd)
{
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof(peer);
    struct sink_session *s;
    char ip[64];
    int rc;

    rc = bench_socket_connected(fd);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    s = sink_session_new(server, fd);
    if (s == NULL) {
        close(fd);
        return -ENOMEM;
    }
    if (getpeername(fd, (struct sockaddr *)&peer, &peer_len) == 0) {
        smtp_server_set_client(s->smtp,
                               bench_format_ip((struct sockaddr *)&peer,
                                               ip, sizeof(ip)));
    }

    s->next = server->sessions;
    if (s->next != NULL) {
        s->next->prev = s;
    }
    server->sessions = s;
    server->sessions_open++;
    server->sessions_total++;
    if (server->sessions_open > server->sessions_peak) {
        server->sessions_peak = server->sessions_open;
    }

    rc = reactor_recv_multishot(server->reactor, &s->recv_op, fd);
    if (rc < 0) {
        sink_session_destroy(s, true);
        return rc;
    }
    s->idle_deadline_ms = reactor_now_ms(server->reactor)
                          + server->idle_timeout_ms;
    sink_hooks_greet(s);
    sink_session_arm_timer(s);
    sink_session_step(s);
    return 0;
}

void sink_session_free_all(struct sink_server *server)
{
    while (server->sessions != NULL) {
        sink_session_destroy(server->sessions, false);
    }
}
