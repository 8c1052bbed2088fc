#include "core/inbound_session.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/inbound_auth.h"
#include "core/config.h"
#include "core/daemon.h"
#include "core/inbound.h"
#include "core/inbound_tls.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "core/queue.h"
#include "core/reactor.h"
#include "core/relay_access.h"
#include "proto/smtp_sasl.h"
#include "proto/smtp_server.h"
#include "proto/smtp_trace.h"
#include "tls/tls_session.h"

static void session_recv_done(struct reactor_op *op, int result);
static void session_send_done(struct reactor_op *op, int result);
static void session_timer_fired(struct reactor_timer *timer);
static void session_flush(struct inbound_session *s);
static void session_stop_reading(struct inbound_session *s);
static void session_settle(struct inbound_session *s);
static uint64_t session_timeout_ms(const struct inbound_session *s);

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
        free(s->rcpt_dsn[i].orcpt);
    }
    s->rcpt_count = 0;
    s->env_flags = 0;
    s->dsn_ret = QUEUE_DSN_RET_UNSET;
    free(s->envid);
    s->envid = NULL;
    s->size_hint = 0;
    s->body_bytes = 0;
}

/* session_store_mail_dsn keeps RET= and ENVID= for the queue record. */
static int session_store_mail_dsn(struct inbound_session *s,
                                  const struct smtp_mail_params *params)
{
    if (params->ret == SMTP_DSN_RET_FULL) {
        s->dsn_ret = QUEUE_DSN_RET_FULL;
    } else if (params->ret == SMTP_DSN_RET_HDRS) {
        s->dsn_ret = QUEUE_DSN_RET_HDRS;
    }
    if (params->envid[0] != '\0') {
        s->envid = strdup(params->envid);
        if (s->envid == NULL) {
            return -1;
        }
    }
    if (s->dsn_ret != QUEUE_DSN_RET_UNSET || s->envid != NULL) {
        s->env_flags |= QUEUE_ENV_DSN;
    }
    return 0;
}

/* session_storage_full rejects MAIL with 452 4.3.1 while the queue is at
 * its size limit or its file system at the free-space floor, or has no
 * room for the size declared with SIZE= (RFC 1870, section 6.1), so a
 * client retries later without sending a body that could not be
 * stored. */
static bool session_storage_full(struct inbound_session *s,
                                 uint64_t size_hint, char *reply)
{
    const char *shortage = queue_space_shortage(session_daemon(s)->queue,
                                                size_hint);

    if (shortage == NULL) {
        return false;
    }
    log_warning("session=%" PRIu64 " event=mail-rejected client=%s "
                "reason=%s reply=\"452 4.3.1\"", s->id, s->client_ip,
                shortage);
    snprintf(reply, SMTP_REPLY_MAX, "452 4.3.1 Insufficient system storage");
    return true;
}

/* session_sender_not_owned applies auth_sender_match: an authenticated
 * client may use only a sender address of its own login. Returns true
 * after writing the 553 into reply. */
static bool session_sender_not_owned(struct inbound_session *s,
                                     const struct smtp_path *from,
                                     char *reply)
{
    const struct config *config = session_daemon(s)->config;
    const char *user = smtp_server_auth_user(s->smtp);
    char logged[LOG_PATH_MAX];
    char quoted[2 * SMTP_SASL_NAME_MAX + 8];

    if (!config->auth_sender_match || user == NULL ||
        relay_access_sender_owned(user, from)) {
        return false;
    }
    log_path(logged, sizeof(logged), from->address);
    log_quote(quoted, sizeof(quoted), user, strlen(user));
    log_info("session=%" PRIu64 " event=reject client=%s from=%s user=%s "
             "reason=\"sender address does not belong to the login\"",
             s->id, s->client_ip, logged, quoted);
    snprintf(reply, SMTP_REPLY_MAX, "553 5.7.1 <%s>: Sender address "
             "rejected: not owned by the authenticated user",
             from->address);
    return true;
}

static int session_hook_mail(void *ctx, const struct smtp_path *from,
                             const struct smtp_mail_params *params,
                             char *reply)
{
    struct inbound_session *s = ctx;

    session_clear_transaction(s);
    if (session_sender_not_owned(s, from, reply)) {
        return -1;
    }
    if (session_storage_full(s, params->size, reply)) {
        return -1;
    }
    s->sender = strdup(from->address);
    if (s->sender == NULL) {
        snprintf(reply, SMTP_REPLY_MAX,
                 "452 4.3.0 Error: out of memory, try again later");
        return -1;
    }
    s->size_hint = params->size;
    if (session_store_mail_dsn(s, params) < 0) {
        snprintf(reply, SMTP_REPLY_MAX,
                 "452 4.3.0 Error: out of memory, try again later");
        return -1;
    }
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

/* session_rcpt_policy decides whether this client may send to `to`, and
 * sets *address to the recipient to store. Returns 0, -1, or
 * SMTP_HOOK_REJECT_COUNTED for a relay denial, because only clients
 * outside relay_networks get it and they could send it without end. */
static int session_rcpt_policy(struct inbound_session *s,
                               const struct smtp_path *to,
                               const char **address, char *reply)
{
    const struct config *config = session_daemon(s)->config;
    bool postmaster = relay_access_postmaster(config, to);
    char logged[LOG_PATH_MAX];

    *address = to->address;
    if (postmaster && config->postmaster != NULL) {
        /* RFC 5321 section 4.5.1: <postmaster> must be accepted from
         * every client, so no relay check applies. */
        *address = config->postmaster;
        return 0;
    }
    if (postmaster) {
        log_info("session=%" PRIu64 " event=reject client=%s to=%s "
                 "reason=\"no postmaster address is configured\"",
                 s->id, s->client_ip,
                 log_path(logged, sizeof(logged), to->address));
        snprintf(reply, SMTP_REPLY_MAX,
                 "550 5.1.1 <%s>: this relay has no local mailboxes and no "
                 "postmaster address is configured", to->address);
        return -1;
    }
    if (to->domain[0] == '\0') {
        snprintf(reply, SMTP_REPLY_MAX,
                 "550 5.1.1 <%s>: no local mailboxes on this relay",
                 to->address);
        return -1;
    }
    /* An authenticated client may relay anywhere, like one in
     * relay_networks. */
    if (s->relay_client || smtp_server_auth_user(s->smtp) != NULL ||
        relay_access_accepted_domain(config, to->domain)) {
        return 0;
    }
    log_info("session=%" PRIu64 " event=reject client=%s to=%s "
             "reason=\"relay access denied\"",
             s->id, s->client_ip,
             log_path(logged, sizeof(logged), to->address));
    snprintf(reply, SMTP_REPLY_MAX,
             "554 5.7.1 <%s>: Relay access denied", to->address);
    return SMTP_HOOK_REJECT_COUNTED;
}

/* session_grow_rcpts makes room for one more recipient. */
static int session_grow_rcpts(struct inbound_session *s)
{
    size_t capacity = s->rcpt_capacity ? s->rcpt_capacity * 2 : 8;
    struct inbound_rcpt_dsn *dsn;
    char **grown;

    if (s->rcpt_count < s->rcpt_capacity) {
        return 0;
    }
    grown = realloc(s->rcpts, capacity * sizeof(*grown));
    if (grown == NULL) {
        return -1;
    }
    s->rcpts = grown;
    dsn = realloc(s->rcpt_dsn, capacity * sizeof(*dsn));
    if (dsn == NULL) {
        return -1;
    }
    s->rcpt_dsn = dsn;
    s->rcpt_capacity = capacity;
    return 0;
}

static unsigned session_queue_notify(unsigned notify)
{
    unsigned bits = 0;

    if ((notify & SMTP_DSN_NOTIFY_SUCCESS) != 0) {
        bits |= QUEUE_DSN_NOTIFY_SUCCESS;
    }
    if ((notify & SMTP_DSN_NOTIFY_FAILURE) != 0) {
        bits |= QUEUE_DSN_NOTIFY_FAILURE;
    }
    if ((notify & SMTP_DSN_NOTIFY_DELAY) != 0) {
        bits |= QUEUE_DSN_NOTIFY_DELAY;
    }
    if ((notify & SMTP_DSN_NOTIFY_NEVER) != 0) {
        bits |= QUEUE_DSN_NOTIFY_NEVER;
    }
    return bits;
}

static int session_hook_rcpt(void *ctx, const struct smtp_path *to,
                             const struct smtp_rcpt_params *params,
                             char *reply)
{
    struct inbound_session *s = ctx;
    struct inbound_rcpt_dsn dsn = {session_queue_notify(params->notify),
                                   NULL};
    const char *address;
    char *copy;
    int rc = session_rcpt_policy(s, to, &address, reply);

    if (rc < 0) {
        return rc;
    }
    for (size_t i = 0; i < s->rcpt_count; i++) {
        if (strcmp(s->rcpts[i], address) == 0) {
            /* A repeated recipient is accepted but stored once, so it
             * gets one copy and the DSN request of its first RCPT. */
            return 0;
        }
    }
    if (session_grow_rcpts(s) < 0) {
        goto out_of_memory;
    }
    if (params->orcpt[0] != '\0') {
        dsn.orcpt = strdup(params->orcpt);
        if (dsn.orcpt == NULL) {
            goto out_of_memory;
        }
    }
    copy = strdup(address);
    if (copy == NULL) {
        free(dsn.orcpt);
        goto out_of_memory;
    }
    if (dsn.notify != 0 || dsn.orcpt != NULL) {
        s->env_flags |= QUEUE_ENV_DSN;
    }
    s->rcpt_dsn[s->rcpt_count] = dsn;
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
        .authenticated = smtp_server_auth_user(s->smtp) != NULL,
        .auth_user = config->auth_received_header
                         ? smtp_server_auth_user(s->smtp)
                         : NULL,
    };
    char header[1024];
    size_t len;

    if (inbound_tls_established(s)) {
        trace.tls_version = tls_session_version(s->tls);
        trace.tls_cipher = tls_session_cipher(s->tls);
        trace.tls_bits = tls_session_cipher_bits(s->tls);
    }

    len = smtp_trace_received(&trace, header, sizeof(header));
    if (len == 0) {
        errno = ENOBUFS;
        return -1;
    }
    return queue_writer_append(s->writer, header, len);
}

/* session_begin_record reserves the queue record for the envelope. The
 * DSN fields are copied into it, so their array lives only for the call.
 * Returns 0, or -1 with errno set. */
static int session_begin_record(struct inbound_session *s)
{
    struct daemon *daemon = session_daemon(s);
    struct queue_dsn_rcpt *dsn = NULL;
    struct queue_envelope env = {
        .sender = s->sender,
        .rcpts = (const char *const *)s->rcpts,
        .rcpt_count = s->rcpt_count,
        .flags = s->env_flags,
        .dsn_ret = (enum queue_dsn_ret)s->dsn_ret,
        .envid = s->envid,
        .auth_user = smtp_server_auth_user(s->smtp),
    };
    int rc;

    /* The authenticated user goes with the message, whatever AUTH= the
     * client gave. TODO: send AUTH= to next hops that offer AUTH; the
     * outbound client reads no AUTH keyword from EHLO yet. */
    if (env.auth_user != NULL) {
        env.flags |= QUEUE_ENV_AUTH;
    }

    if ((s->env_flags & QUEUE_ENV_DSN) != 0) {
        dsn = calloc(s->rcpt_count, sizeof(*dsn));
        if (dsn == NULL) {
            return -1;
        }
        for (size_t i = 0; i < s->rcpt_count; i++) {
            dsn[i].notify = s->rcpt_dsn[i].notify;
            dsn[i].orcpt = s->rcpt_dsn[i].orcpt;
        }
        env.dsn_rcpts = dsn;
    }
    rc = queue_writer_begin(daemon->queue, &s->writer, &env, s->size_hint);
    free(dsn);
    return rc;
}

/* session_queue_full tells a full queue (the disk, ENOSPC, or
 * queue_max_size, EDQUOT), which gets 452 4.3.1, from other failures. */
static bool session_queue_full(int error)
{
    return error == ENOSPC || error == EDQUOT;
}

/* session_log_write_failed logs a failed queue write with errno set; id
 * is the queue ID, or NULL before the record has one. */
static void session_log_write_failed(const struct inbound_session *s,
                                     const char *id)
{
    int saved = errno;

    if (saved == EDQUOT || saved == ENOSPC) {
        log_warning("id=%s session=%" PRIu64 " event=queue-full "
                    "reason=%s", id != NULL ? id : "none", s->id,
                    saved == EDQUOT ? "queue_max_size" : "no_space");
    } else {
        log_error("id=%s session=%" PRIu64 " error=\"queue write failed: "
                  "%s\"", id != NULL ? id : "none", s->id, strerror(saved));
    }
    errno = saved;
}

static int session_hook_data_begin(void *ctx, char *reply)
{
    struct inbound_session *s = ctx;
    struct daemon *daemon = session_daemon(s);

    if (session_begin_record(s) < 0) {
        session_log_write_failed(s, queue_failed_writer_id(daemon->queue));
        if (session_queue_full(errno)) {
            snprintf(reply, SMTP_REPLY_MAX,
                     "452 4.3.1 Insufficient system storage");
        } else {
            snprintf(reply, SMTP_REPLY_MAX,
                     "451 4.3.0 Error: queue unavailable, try again later");
        }
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
        session_log_write_failed(s, queue_writer_id(s->writer));
        return session_queue_full(errno) ? SMTP_HOOK_NO_SPACE : -1;
    }
    s->body_bytes += len;
    return 0;
}

/* session_user_field returns " user=NAME" (quoted as log_quote does)
 * for an authenticated session, or "". */
static const char *session_user_field(const struct inbound_session *s,
                                      char *buf, size_t size)
{
    const char *user = smtp_server_auth_user(s->smtp);
    char quoted[2 * 256 + 8];

    if (user == NULL) {
        return "";
    }
    log_quote(quoted, sizeof(quoted), user, strlen(user));
    snprintf(buf, size, " user=%s", quoted);
    return buf;
}

static void session_commit_done(void *arg, int status, const char *id)
{
    struct inbound_session *s = arg;
    char reply[SMTP_REPLY_MAX];
    char logged[LOG_PATH_MAX];
    char user[2 * 256 + 16];

    s->commit_pending = false;
    if (status == 0) {
        log_info("id=%s event=accepted from=%s rcpts=%zu size=%" PRIu64
                 " client=%s session=%" PRIu64 "%s",
                 id, log_path(logged, sizeof(logged),
                              s->sender ? s->sender : ""),
                 s->rcpt_count,
                 s->body_bytes, s->client_ip, s->id,
                 session_user_field(s, user, sizeof(user)));
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

        /* The session waits for a command again, so that wait gets the
         * whole timeout_command. */
        if (!smtp_server_closing(s->smtp)) {
            reactor_timer_set(session_daemon(s)->reactor, &s->timer,
                              session_timeout_ms(s));
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

/* session_abort_reason returns why a message was given up without a
 * reply. */
static const char *session_abort_reason(const struct inbound_session *s)
{
    const char *closed = smtp_server_close_reason(s->smtp);

    if (closed != NULL) {
        return closed;
    }
    if (s->closing) {
        return s->peer_eof ? "client closed the connection"
                           : "connection error";
    }
    return "transaction reset before BDAT LAST";
}

/* session_hook_data_abort logs the rejected or abandoned message, which
 * has no other line, and drops what was stored of it. */
static void session_hook_data_abort(void *ctx, const char *reply)
{
    struct inbound_session *s = ctx;
    const char *id = s->writer != NULL ? queue_writer_id(s->writer) : "-";
    char logged[LOG_PATH_MAX];
    char quoted[2 * SMTP_REPLY_MAX];
    const char *text = reply != NULL ? reply : session_abort_reason(s);

    log_path(logged, sizeof(logged), s->sender != NULL ? s->sender : "");
    log_quote(quoted, sizeof(quoted), text, strlen(text));
    log_info("id=%s session=%" PRIu64 " event=%s client=%s from=%s "
             "rcpts=%zu %s=%s",
             id, s->id,
             reply != NULL ? "message-rejected" : "message-aborted",
             s->client_ip, logged, s->rcpt_count, reply != NULL ? "reply" : "reason", quoted);
    queue_writer_abort(s->writer);
    s->writer = NULL;
}

static void session_hook_reset(void *ctx)
{
    session_clear_transaction(ctx);
}

/* session_hook_starttls prepares the TLS session; every byte received
 * from now on is ciphertext. */
static int session_hook_starttls(void *ctx, char *reply)
{
    struct inbound_session *s = ctx;

    if (inbound_tls_start(s, INBOUND_TLS_STARTTLS) < 0) {
        snprintf(reply, SMTP_REPLY_MAX, "454 4.7.0 TLS not available due "
                 "to temporary reason");
        return -1;
    }
    return 0;
}

static const struct smtp_server_hooks session_hooks = {
    .mail = session_hook_mail,
    .rcpt = session_hook_rcpt,
    .data_begin = session_hook_data_begin,
    .data_write = session_hook_data_write,
    .data_end = session_hook_data_end,
    .data_abort = session_hook_data_abort,
    .reset = session_hook_reset,
    .starttls = session_hook_starttls,
};

/* The same with AUTH, for a daemon with an auth_users_file. */
static const struct smtp_server_hooks session_auth_hooks = {
    .mail = session_hook_mail,
    .rcpt = session_hook_rcpt,
    .data_begin = session_hook_data_begin,
    .data_write = session_hook_data_write,
    .data_end = session_hook_data_end,
    .data_abort = session_hook_data_abort,
    .auth = inbound_auth_hook,
    .auth_failed = inbound_auth_failed_hook,
    .reset = session_hook_reset,
    .starttls = session_hook_starttls,
};

static struct smtp_server *session_protocol_new(struct inbound_session *s)
{
    const struct smtp_server_hooks *hooks =
        session_daemon(s)->auth_users != NULL ? &session_auth_hooks
                                              : &session_hooks;

    return smtp_server_new(inbound_smtp_options(s->inbound), hooks, s);
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

/* Returns the wait for the client's next bytes in ms: timeout_data
 * inside DATA or BDAT data, timeout_command otherwise. timeout_data is
 * restarted by every received block, as RFC 5321 section 4.5.3.2.5 has
 * the client wait for each block. timeout_command is a deadline for a
 * whole command line, see session_restart_timer(). */
static uint64_t session_timeout_ms(const struct inbound_session *s)
{
    const struct config *config = session_daemon(s)->config;
    unsigned seconds = smtp_server_receiving_data(s->smtp)
                           ? config->timeout_data
                           : config->timeout_command;

    return (uint64_t)seconds * 1000u;
}

/* Queues a 421 in place of the greeting when the session does not fit
 * the connection limits. Returns true when it did. */
static bool session_reject_over_limit(struct inbound_session *s)
{
    const struct config *config = session_daemon(s)->config;
    enum inbound_admission admission = inbound_admit(s->inbound, s);
    char reply[SMTP_REPLY_MAX];
    const char *key = "max_connections";
    unsigned limit = config->max_connections;

    if (admission == INBOUND_ADMITTED) {
        return false;
    }
    if (admission == INBOUND_REFUSED_MEMORY) {
        log_error("session=%" PRIu64 " client=%s error=\"out of memory\"",
                  s->id, s->client_ip);
        snprintf(reply, sizeof(reply), "421 4.3.0 %s Error: out of memory, "
                 "closing connection", config->hostname);
    } else {
        if (admission == INBOUND_REFUSED_PER_IP) {
            key = "max_connections_per_ip";
            limit = config->max_connections_per_ip;
        }
        log_info("session=%" PRIu64 " event=reject client=%s "
                 "reason=\"too many connections\" limit=%s max=%u",
                 s->id, s->client_ip, key, limit);
        snprintf(reply, sizeof(reply), "421 4.7.0 %s Error: too many "
                 "connections%s, closing connection", config->hostname,
                 admission == INBOUND_REFUSED_PER_IP ? " from your address"
                                                     : "");
    }
    s->refused = true;
    smtp_server_refuse(s->smtp, reply, "too many connections");
    return true;
}

/* Greets the client now, or arms the greeting delay for a client outside
 * relay_networks. */
static void session_greet_or_delay(struct inbound_session *s)
{
    struct daemon *daemon = session_daemon(s);
    unsigned delay = daemon->config->greeting_delay;

    if (delay > 0 && !s->relay_client) {
        s->greeting_pending = true;
        smtp_server_defer_greeting(s->smtp);
        reactor_timer_set(daemon->reactor, &s->timer,
                          (uint64_t)delay * 1000u);
        return;
    }
    smtp_server_greet(s->smtp);
    reactor_timer_set(daemon->reactor, &s->timer, session_timeout_ms(s));
}

void inbound_session_start(struct inbound *inbound, int fd,
                           bool implicit_tls)
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
    smtp_outq_init(&s->tls_out);

    if (session_identify_peer(s) < 0) {
        goto fail;
    }
    s->smtp = session_protocol_new(s);
    if (s->smtp == NULL) {
        log_error("session=%" PRIu64 " error=\"out of memory\"", s->id);
        goto fail;
    }
    smtp_server_set_client(s->smtp, s->client_ip);
    if (session_reject_over_limit(s)) {
        /* Nothing is read: the 421 goes out and the session closes. */
        session_flush(s);
        session_settle(s);
        return;
    }
    log_info("session=%" PRIu64 " event=connect client=%s relay=%s%s",
             s->id, s->client_ip, s->relay_client ? "yes" : "no",
             implicit_tls ? " tls=implicit" : "");
    if (implicit_tls && inbound_tls_start(s, INBOUND_TLS_IMPLICIT) < 0) {
        goto fail;
    }

    rc = reactor_recv_multishot(daemon->reactor, &s->recv_op, fd);
    if (rc < 0) {
        log_error("session=%" PRIu64 " error=\"recv failed: %s\"", s->id,
                  strerror(-rc));
        goto fail;
    }
    if (implicit_tls) {
        /* RFC 8314: the handshake comes first, then the greeting. The
         * command timeout bounds the handshake. Input that comes with
         * the client's last handshake flight waits for the greeting. */
        smtp_server_defer_greeting(s->smtp);
        reactor_timer_set(daemon->reactor, &s->timer,
                          (uint64_t)daemon->config->timeout_command * 1000u);
    } else {
        session_greet_or_delay(s);
    }
    session_flush(s);
    return;

fail:
    session_stop_reading(s);
    session_settle(s);
}

/* Handles input that arrived during the greeting delay. With
 * reject_early_talkers the client gets 554 and is closed, because RFC
 * 5321 section 3.1 makes 554 the reply that refuses service in place of
 * the greeting. Otherwise the input waits in the protocol session until
 * the greeting is sent. */
static void session_early_input(struct inbound_session *s, const char *data,
                                size_t len)
{
    struct daemon *daemon = session_daemon(s);
    char reply[SMTP_REPLY_MAX];

    if (!daemon->config->reject_early_talkers) {
        smtp_server_feed(s->smtp, data, len);
        return;
    }
    s->greeting_pending = false;
    reactor_timer_cancel(daemon->reactor, &s->timer);
    log_info("session=%" PRIu64 " event=reject client=%s "
             "reason=\"talked before greeting\"", s->id, s->client_ip);
    snprintf(reply, sizeof(reply), "554 5.5.0 %s Error: talked before "
             "greeting, closing connection", daemon->config->hostname);
    smtp_server_refuse(s->smtp, reply, "talked before greeting");
}

/* session_restart_timer restarts the timer after input was parsed:
 * inside DATA or BDAT data on every block, else only when the session
 * started to wait for a new command line since waits was read. So a
 * client that sends a command one byte at a time still times out. */
static void session_restart_timer(struct inbound_session *s,
                                  uint64_t waits)
{
    struct reactor *reactor = session_daemon(s)->reactor;

    if (smtp_server_closing(s->smtp)) {
        return;
    }
    if (smtp_server_receiving_data(s->smtp) ||
        smtp_server_command_waits(s->smtp) != waits) {
        reactor_timer_set(reactor, &s->timer, session_timeout_ms(s));
    }
}

/* session_input passes plaintext input, received or decrypted, to the
 * SMTP session. */
static void session_input(struct inbound_session *s, const char *data,
                          size_t len)
{
    uint64_t waits;

    if (s->closing) {
        return;
    }
    if (s->greeting_pending) {
        session_early_input(s, data, len);
        return;
    }
    waits = smtp_server_command_waits(s->smtp);
    smtp_server_feed(s->smtp, data, len);
    if (s->stop_pending && s->writer == NULL && !s->commit_pending) {
        smtp_server_shutdown(s->smtp);
    }
    session_restart_timer(s, waits);
}

/* session_tls_input runs received ciphertext through the TLS layer. A
 * completed handshake restarts the command timer, and on an implicit TLS
 * connection it is when the greeting comes. */
static void session_tls_input(struct inbound_session *s, const char *data,
                              size_t len)
{
    bool was_established = inbound_tls_established(s);
    int rc = inbound_tls_receive(s, data, len, session_input);

    if (rc < 0) {
        s->tls_end_reason = was_established ? "TLS error"
                                            : "TLS handshake failed";
        session_stop_reading(s);
        return;
    }
    if (!was_established && inbound_tls_established(s)) {
        if (s->tls_mode == INBOUND_TLS_IMPLICIT) {
            session_greet_or_delay(s);
        } else {
            reactor_timer_set(session_daemon(s)->reactor, &s->timer,
                              session_timeout_ms(s));
        }
    }
    if (rc > 0) {
        /* close_notify: reply to what was sent, then close. */
        s->peer_eof = true;
    }
}

static void session_recv_done(struct reactor_op *op, int result)
{
    struct inbound_session *s = op->owner;

    if (result > 0 && !s->closing && s->tls != NULL) {
        session_tls_input(s, op->data, (size_t)result);
        session_flush(s);
    } else if (result > 0 && !s->closing) {
        session_input(s, op->data, (size_t)result);
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

    if (s->send_op.armed || s->fd < 0) {
        return;
    }
    if (s->tls != NULL) {
        out = inbound_tls_output(s);
        if (out == NULL) {
            s->tls_end_reason = "TLS error";
            session_stop_reading(s);
            return;
        }
    }
    if (out->len == 0) {
        return;
    }
    s->send_queue = out;
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
        uint64_t waits = smtp_server_command_waits(s->smtp);

        /* Input held while output piled up may be parsed now. */
        smtp_outq_consume(s->send_queue, (size_t)result);
        smtp_server_resume(s->smtp);
        if (!s->greeting_pending) {
            session_restart_timer(s, waits);
        }
        session_flush(s);
    }
    session_settle(s);
}

static void session_timer_fired(struct reactor_timer *timer)
{
    struct inbound_session *s = timer->owner;
    struct reactor *reactor = session_daemon(s)->reactor;

    if (s->auth_delay) {
        inbound_auth_delay_over(s);
        inbound_session_answered(s);
        return;
    }
    if (s->greeting_pending) {
        /* The greeting parses any input held while it was delayed. A
         * session shut down meanwhile has sent its 421 instead. */
        s->greeting_pending = false;
        if (!smtp_server_closing(s->smtp)) {
            smtp_server_greet(s->smtp);
            reactor_timer_set(reactor, &s->timer, session_timeout_ms(s));
        }
        session_flush(s);
        session_settle(s);
        return;
    }
    if (s->tls != NULL && !inbound_tls_established(s)) {
        /* A 421 in plaintext would only corrupt the handshake. */
        log_info("session=%" PRIu64 " event=timeout client=%s "
                 "waiting=tls-handshake", s->id, s->client_ip);
        s->tls_end_reason = "timeout";
        session_stop_reading(s);
        session_settle(s);
        return;
    }
    log_info("session=%" PRIu64 " event=timeout client=%s waiting=%s",
             s->id, s->client_ip,
             smtp_server_receiving_data(s->smtp) ? "data" : "command");
    smtp_server_timeout(s->smtp);
    session_flush(s);
    session_settle(s);
}

void inbound_session_answered(struct inbound_session *s)
{
    if (!s->closing) {
        if (!smtp_server_closing(s->smtp)) {
            reactor_timer_set(session_daemon(s)->reactor, &s->timer,
                              session_timeout_ms(s));
        }
        session_flush(s);
    }
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
    if (s->tls != NULL && !inbound_tls_established(s)) {
        s->tls_end_reason = "shutdown";
        session_stop_reading(s);
        session_settle(s);
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
    if (s->tls_end_reason != NULL) {
        return s->tls_end_reason;
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
                        s->tls_out.len == 0 && !s->send_op.armed);
        bool finished = s->smtp == NULL || s->peer_eof ||
                        smtp_server_closing(s->smtp);

        if (!drained || !finished || s->commit_pending ||
            inbound_auth_pending(s)) {
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
    inbound_tls_log_unfinished(s, session_end_reason(s));
    if (!s->refused) {
        log_info("session=%" PRIu64 " event=disconnect client=%s "
                 "reason=\"%s\"",
                 s->id, s->client_ip, session_end_reason(s));
    }
    inbound_session_free(s);
}

void inbound_session_free(struct inbound_session *s)
{
    reactor_timer_cancel(session_daemon(s)->reactor, &s->timer);
    inbound_auth_cancel(s);
    inbound_detach(s->inbound, s);
    smtp_server_free(s->smtp);
    inbound_tls_free(s);
    queue_writer_abort(s->writer);
    session_clear_transaction(s);
    free(s->rcpts);
    free(s->rcpt_dsn);
    if (s->fd >= 0) {
        close(s->fd);
    }
    free(s);
}
