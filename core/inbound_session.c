#include "core/inbound_session.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/daemon.h"
#include "core/inbound.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "core/queue.h"
#include "core/reactor.h"
#include "core/relay_access.h"
#include "proto/smtp_server.h"
#include "proto/smtp_trace.h"

/* RFC 5321 section 4.5.3.2.7: a server waits at least 5 minutes for the
 * next command or DATA block before it gives up on a client. */
#define INBOUND_IDLE_TIMEOUT_MS (300u * 1000u)

static void session_recv_done(struct reactor_op *op, int result);
static void session_send_done(struct reactor_op *op, int result);
static void session_timer_fired(struct reactor_timer *timer);
static void session_flush(struct inbound_session *s);
static void session_stop_reading(struct inbound_session *s);
static void session_settle(struct inbound_session *s);

static struct daemon *session_daemon(const struct inbound_session *s)
{
    return inbound_daemon(s->inbound);
}

static void session_clear_transaction(struct inbound_session *s)
{
    free(s->sender);
    s->sender = NULL;
    for (size_t i = 0; i < s->rcpt_count; i++) {
        free(s->rcpts[i]);
    }
    s->rcpt_count = 0;
    s->env_flags = 0;
    s->size_hint = 0;
    s->body_bytes = 0;
}

static int session_hook_mail(void *ctx, const struct smtp_path *from,
                             const struct smtp_mail_params *params,
                             char *reply)
{
    struct inbound_session *s = ctx;

    session_clear_transaction(s);
    s->sender = strdup(from->address);
    if (s->sender == NULL) {
        snprintf(reply, SMTP_REPLY_MAX,
                 "452 4.3.0 Error: out of memory, try again later");
        return -1;
    }
    s->size_hint = params->size;
    if (params->body == SMTP_BODY_8BITMIME) {
        s->env_flags |= QUEUE_ENV_8BITMIME;
    }
    if (params->body == SMTP_BODY_BINARYMIME) {
        s->env_flags |= QUEUE_ENV_BINARYMIME;
    }
    if (params->smtputf8) {
        s->env_flags |= QUEUE_ENV_SMTPUTF8;
    }
    return 0;
}

/* session_rcpt_policy decides whether this client may send to `to`. */
static int session_rcpt_policy(struct inbound_session *s,
                               const struct smtp_path *to, char *reply)
{
    const struct config *config = session_daemon(s)->config;
    char logged[LOG_PATH_MAX];

    if (to->domain[0] == '\0') {
        /* TODO: route <postmaster> and other local parts without a domain
         * to a configured address, because this relay has no mailboxes. */
        snprintf(reply, SMTP_REPLY_MAX,
                 "550 5.1.1 <%s>: no local mailboxes on this relay",
                 to->address);
        return -1;
    }
    if (s->relay_client ||
        relay_access_accepted_domain(config, to->domain)) {
        return 0;
    }
    log_info("session=%" PRIu64 " event=reject client=%s to=%s "
             "reason=\"relay access denied\"",
             s->id, s->client_ip,
             log_path(logged, sizeof(logged), to->address));
    snprintf(reply, SMTP_REPLY_MAX,
             "554 5.7.1 <%s>: Relay access denied", to->address);
    return -1;
}

static int session_hook_rcpt(void *ctx, const struct smtp_path *to,
                             char *reply)
{
    struct inbound_session *s = ctx;
    char *copy;

    if (session_rcpt_policy(s, to, reply) < 0) {
        return -1;
    }
    for (size_t i = 0; i < s->rcpt_count; i++) {
        if (strcmp(s->rcpts[i], to->address) == 0) {
            /* A repeated recipient is accepted but stored once, so it
             * gets one copy. */
            return 0;
        }
    }
    if (s->rcpt_count == s->rcpt_capacity) {
        size_t capacity = s->rcpt_capacity ? s->rcpt_capacity * 2 : 8;
        char **grown = realloc(s->rcpts, capacity * sizeof(*grown));

        if (grown == NULL) {
            goto out_of_memory;
        }
        s->rcpts = grown;
        s->rcpt_capacity = capacity;
    }
    copy = strdup(to->address);
    if (copy == NULL) {
        goto out_of_memory;
    }
    s->rcpts[s->rcpt_count++] = copy;
    return 0;

out_of_memory:
    snprintf(reply, SMTP_REPLY_MAX,
             "452 4.3.0 Error: out of memory, try again later");
    return -1;
}

/* session_write_trace puts the Received: header in front of the body. */
static int session_write_trace(struct inbound_session *s)
{
    const struct config *config = session_daemon(s)->config;
    struct smtp_trace trace = {
        .helo = smtp_server_helo(s->smtp),
        .client_ip = s->client_ip,
        .hostname = config->hostname,
        .esmtp = smtp_server_used_esmtp(s->smtp),
        .smtputf8 = (s->env_flags & QUEUE_ENV_SMTPUTF8) != 0,
        .queue_id = queue_writer_id(s->writer),
        .rcpt = s->rcpt_count == 1 ? s->rcpts[0] : NULL,
        .when = time(NULL),
    };
    char header[1024];
    size_t len;

    len = smtp_trace_received(&trace, header, sizeof(header));
    if (len == 0) {
        errno = ENOBUFS;
        return -1;
    }
    return queue_writer_append(s->writer, header, len);
}

static int session_hook_data_begin(void *ctx, char *reply)
{
    struct inbound_session *s = ctx;
    struct daemon *daemon = session_daemon(s);
    struct queue_envelope env = {
        .sender = s->sender,
        .rcpts = (const char *const *)s->rcpts,
        .rcpt_count = s->rcpt_count,
        .flags = s->env_flags,
    };

    if (queue_writer_begin(daemon->queue, &s->writer, &env, s->size_hint) <
        0) {
        log_error("session=%" PRIu64 " error=\"queue write failed: %s\"",
                  s->id, strerror(errno));
        snprintf(reply, SMTP_REPLY_MAX, "452 4.3.1 Error: %s",
                 errno == ENOSPC ? "insufficient system storage"
                                 : "queue unavailable, try again later");
        return -1;
    }
    if (session_write_trace(s) < 0) {
        log_error("id=%s session=%" PRIu64 " error=\"queue write failed: "
                  "%s\"",
                  queue_writer_id(s->writer), s->id, strerror(errno));
        queue_writer_abort(s->writer);
        s->writer = NULL;
        snprintf(reply, SMTP_REPLY_MAX,
                 "451 4.3.0 Error: queue write failed, try again later");
        return -1;
    }
    s->data_started_ms = reactor_now_ms(daemon->reactor);
    return 0;
}

static int session_hook_data_write(void *ctx, const char *data, size_t len)
{
    struct inbound_session *s = ctx;

    if (queue_writer_append(s->writer, data, len) < 0) {
        log_error("id=%s session=%" PRIu64 " error=\"queue write failed: "
                  "%s\"",
                  queue_writer_id(s->writer), s->id, strerror(errno));
        return -1;
    }
    s->body_bytes += len;
    return 0;
}

static void session_commit_done(void *arg, int status, const char *id)
{
    struct inbound_session *s = arg;
    char reply[SMTP_REPLY_MAX];
    char logged[LOG_PATH_MAX];

    s->commit_pending = false;
    if (status == 0) {
        log_info("id=%s event=accepted from=%s rcpts=%zu size=%" PRIu64
                 " client=%s session=%" PRIu64,
                 id, log_path(logged, sizeof(logged),
                              s->sender ? s->sender : ""),
                 s->rcpt_count,
                 s->body_bytes, s->client_ip, s->id);
        snprintf(reply, sizeof(reply), "250 2.0.0 Ok: queued as %s", id);
    } else {
        log_error("session=%" PRIu64 " error=\"queue commit failed: %s\"",
                  s->id, strerror(-status));
        snprintf(reply, sizeof(reply),
                 "451 4.3.0 Error: queue write failed, try again later");
    }
    if (!s->closing) {
        smtp_server_data_done(s->smtp, reply);
        if (s->stop_pending) {
            smtp_server_shutdown(s->smtp);
        }
        session_flush(s);
    }
    session_settle(s);
}

/* session_hook_data_end runs inside smtp_server_feed(), so a failure is
 * answered in place and the session is not settled here. */
static void session_hook_data_end(void *ctx)
{
    struct inbound_session *s = ctx;
    struct queue_writer *writer = s->writer;

    s->writer = NULL;
    s->commit_pending = true;
    if (queue_writer_commit(writer, session_commit_done, s) < 0) {
        s->commit_pending = false;
        log_error("session=%" PRIu64 " error=\"queue commit failed: %s\"",
                  s->id, strerror(errno));
        smtp_server_data_done(s->smtp, "451 4.3.0 Error: queue write "
                                       "failed, try again later");
    }
}

static void session_hook_data_abort(void *ctx)
{
    struct inbound_session *s = ctx;

    queue_writer_abort(s->writer);
    s->writer = NULL;
}

static void session_hook_reset(void *ctx)
{
    session_clear_transaction(ctx);
}

static const struct smtp_server_hooks session_hooks = {
    .mail = session_hook_mail,
    .rcpt = session_hook_rcpt,
    .data_begin = session_hook_data_begin,
    .data_write = session_hook_data_write,
    .data_end = session_hook_data_end,
    .data_abort = session_hook_data_abort,
    .reset = session_hook_reset,
};

static struct smtp_server *session_protocol_new(struct inbound_session *s)
{
    return smtp_server_new(inbound_smtp_options(s->inbound), &session_hooks,
                           s);
}

static int session_identify_peer(struct inbound_session *s)
{
    socklen_t len = sizeof(s->peer);

    if (getpeername(s->fd, (struct sockaddr *)&s->peer, &len) < 0) {
        /* A client that resets at once is gone before this runs. */
        log_info("session=%" PRIu64 " event=disconnect "
                 "error=\"getpeername failed: %s\"",
                 s->id, strerror(errno));
        return -1;
    }
    netaddr_format((const struct sockaddr *)&s->peer, s->client_ip,
                   sizeof(s->client_ip));
    s->relay_client = relay_access_trusted_client(
        session_daemon(s)->config, (const struct sockaddr *)&s->peer);
    return 0;
}

void inbound_session_start(struct inbound *inbound, int fd)
{
    struct daemon *daemon = inbound_daemon(inbound);
    struct inbound_session *s;
    int rc;

    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        log_error("error=\"out of memory for a new session\"");
        close(fd);
        return;
    }
    s->inbound = inbound;
    s->fd = fd;
    s->id = inbound_attach(inbound, s);
    s->recv_op.done = session_recv_done;
    s->recv_op.owner = s;
    s->send_op.done = session_send_done;
    s->send_op.owner = s;
    s->timer.fire = session_timer_fired;
    s->timer.owner = s;

    if (session_identify_peer(s) < 0) {
        goto fail;
    }
    s->smtp = session_protocol_new(s);
    if (s->smtp == NULL) {
        log_error("session=%" PRIu64 " error=\"out of memory\"", s->id);
        goto fail;
    }
    smtp_server_set_client(s->smtp, s->client_ip);
    log_info("session=%" PRIu64 " event=connect client=%s relay=%s", s->id,
             s->client_ip, s->relay_client ? "yes" : "no");

    rc = reactor_recv_multishot(daemon->reactor, &s->recv_op, fd);
    if (rc < 0) {
        log_error("session=%" PRIu64 " error=\"recv failed: %s\"", s->id,
                  strerror(-rc));
        goto fail;
    }
    reactor_timer_set(daemon->reactor, &s->timer, INBOUND_IDLE_TIMEOUT_MS);
    smtp_server_greet(s->smtp);
    session_flush(s);
    return;

fail:
    session_stop_reading(s);
    session_settle(s);
}

static void session_recv_done(struct reactor_op *op, int result)
{
    struct inbound_session *s = op->owner;
    struct reactor *reactor = session_daemon(s)->reactor;

    if (result > 0 && !s->closing) {
        reactor_timer_set(reactor, &s->timer, INBOUND_IDLE_TIMEOUT_MS);
        smtp_server_feed(s->smtp, op->data, (size_t)result);
        if (s->stop_pending && s->writer == NULL && !s->commit_pending) {
            smtp_server_shutdown(s->smtp);
        }
        session_flush(s);
    } else if (result < 0 && result != -ECANCELED &&
               result != -ECONNRESET) {
        log_info("session=%" PRIu64 " event=recv-error error=\"%s\"",
                 s->id, strerror(-result));
    }
    if (!op->more) {
        if (result == 0) {
            /* A half-close still expects replies to everything it sent,
             * the 250 of a message being committed included. */
            s->peer_eof = true;
        } else {
            session_stop_reading(s);
        }
    }
    session_settle(s);
}

static void session_flush(struct inbound_session *s)
{
    struct reactor *reactor = session_daemon(s)->reactor;
    struct smtp_outq *out = smtp_server_output(s->smtp);
    int count;
    int rc;

    if (s->send_op.armed || s->fd < 0 || out->len == 0) {
        return;
    }
    count = smtp_outq_peek(out, s->send_iov, INBOUND_SEND_IOVS);
    rc = reactor_sendv(reactor, &s->send_op, s->fd, s->send_iov, count);
    if (rc < 0) {
        log_error("session=%" PRIu64 " error=\"send failed: %s\"", s->id,
                  strerror(-rc));
        session_stop_reading(s);
    }
}

static void session_send_done(struct reactor_op *op, int result)
{
    struct inbound_session *s = op->owner;

    if (result < 0) {
        if (result != -EPIPE && result != -ECONNRESET) {
            log_info("session=%" PRIu64 " event=send-error error=\"%s\"",
                     s->id, strerror(-result));
        }
        session_stop_reading(s);
    } else if (!s->closing) {
        smtp_outq_consume(smtp_server_output(s->smtp), (size_t)result);
        smtp_server_resume(s->smtp);
        session_flush(s);
    }
    session_settle(s);
}

static void session_timer_fired(struct reactor_timer *timer)
{
    struct inbound_session *s = timer->owner;

    log_info("session=%" PRIu64 " event=timeout client=%s", s->id,
             s->client_ip);
    smtp_server_timeout(s->smtp);
    session_flush(s);
    session_settle(s);
}

void inbound_session_shutdown(struct inbound_session *s)
{
    if (s->closing) {
        return;
    }
    if (s->writer != NULL || s->commit_pending) {
        /* A message in progress may still finish within the drain time
         * and get its 250 before the 421. */
        s->stop_pending = true;
        return;
    }
    smtp_server_shutdown(s->smtp);
    session_flush(s);
    session_settle(s);
}

/* session_stop_reading ends the conversation: no more input is read and
 * nothing more is sent. session_settle() frees the session later. */
static void session_stop_reading(struct inbound_session *s)
{
    if (s->closing) {
        return;
    }
    s->closing = true;
    reactor_timer_cancel(session_daemon(s)->reactor, &s->timer);
    if (s->fd >= 0) {
        shutdown(s->fd, SHUT_RDWR);
    }
}

/* Return why the conversation ended, for the disconnect line. */
static const char *session_end_reason(const struct inbound_session *s)
{
    const char *reason = NULL;

    if (s->smtp != NULL) {
        reason = smtp_server_close_reason(s->smtp);
    }
    if (reason != NULL) {
        return reason;
    }
    return s->peer_eof ? "client closed the connection" : "connection error";
}

/* session_settle is the one place that frees a session, so every entry
 * point (completion, timer, commit) calls it last and touches nothing
 * after it. It ends a conversation whose client said QUIT or half-closed
 * once every reply is sent, then waits until no operation and no queue
 * commit can call back. */
static void session_settle(struct inbound_session *s)
{
    struct reactor *reactor = session_daemon(s)->reactor;

    if (!s->closing) {
        bool drained = s->smtp == NULL ||
                       (smtp_server_output(s->smtp)->len == 0 &&
                        !s->send_op.armed);
        bool finished = s->smtp == NULL || s->peer_eof ||
                        smtp_server_closing(s->smtp);

        if (!drained || !finished || s->commit_pending) {
            return;
        }
        session_stop_reading(s);
    }
    if (s->recv_op.armed) {
        reactor_cancel(reactor, &s->recv_op);
        return;
    }
    if (s->send_op.armed || s->commit_pending) {
        return;
    }
    log_info("session=%" PRIu64 " event=disconnect client=%s reason=\"%s\"",
             s->id, s->client_ip, session_end_reason(s));
    inbound_session_free(s);
}

void inbound_session_free(struct inbound_session *s)
{
    reactor_timer_cancel(session_daemon(s)->reactor, &s->timer);
    inbound_detach(s->inbound, s);
    smtp_server_free(s->smtp);
    queue_writer_abort(s->writer);
    session_clear_transaction(s);
    free(s->rcpts);
    if (s->fd >= 0) {
        close(s->fd);
    }
    free(s);
}
