#include "core/outbound_conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "core/daemon.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "core/outbound_job.h"
#include "core/queue.h"
#include "core/reactor.h"
#include "dns/dns_mx.h"
#include "dns/resolver.h"
#include "proto/smtp_client.h"

#define OUTBOUND_SMTP_PORT 25

/* Timeouts. RFC 5321 section 4.5.3.2 asks clients to wait 5 minutes for
 * most replies and 10 minutes after the final dot; one 5-minute limit per
 * step is used for every stage of the session. */
#define OUTBOUND_CONNECT_TIMEOUT_MS (30u * 1000u)
#define OUTBOUND_REPLY_TIMEOUT_MS (300u * 1000u)
#define OUTBOUND_QUIT_TIMEOUT_MS (10u * 1000u)

static void conn_dns_done(void *arg, const struct dns_mx_result *result);
static void conn_connect_next(struct outbound_job *job);
static void conn_connect_done(struct reactor_op *op, int result);
static void conn_recv_done(struct reactor_op *op, int result);
static void conn_send_done(struct reactor_op *op, int result);
static void conn_timer_fired(struct reactor_timer *timer);
static void conn_close(struct outbound_job *job,
                       enum outbound_after_close after);

static struct daemon *conn_daemon(struct outbound_job *job)
{
    return outbound_daemon(job->outbound);
}

static void conn_fail_all(struct outbound_job *job, int code,
                          const char *fmt, const char *arg)
{
    char text[SMTP_CLIENT_TEXT_MAX];

    snprintf(text, sizeof(text), fmt, arg);
    outbound_record_all(job, code, text);
    outbound_job_finished(job);
}

/* conn_use_route fills the hops from a route whose host is an address. */
static void conn_use_route(struct outbound_job *job,
                           const struct netaddr_hostport *route)
{
    struct dns_mx_host *host = &job->hops->hosts[0];

    job->hops->status = DNS_OK;
    job->hops->host_count = 1;
    snprintf(host->name, sizeof(host->name), "%s", route->host);
    host->addr_count = 1;
    memcpy(&host->addrs[0], &route->addr, sizeof(route->addr));
}

/* conn_use_literal fills the hops with the IP of an address literal. The
 * host name stays empty, so the relay is logged as "[IP]:25". */
static void conn_use_literal(struct outbound_job *job)
{
    struct dns_mx_host *host = &job->hops->hosts[0];

    job->hops->status = DNS_OK;
    job->hops->host_count = 1;
    host->addr_count = 1;
    memcpy(&host->addrs[0], &job->literal, sizeof(job->literal));
}

/* conn_route returns the configured next hop of the job, or NULL. Routes
 * are keyed by domain name, so an address literal takes only the
 * smarthost. */
static const struct netaddr_hostport *conn_route(struct outbound_job *job)
{
    const struct config *config = conn_daemon(job)->config;

    if (job->target == OUTBOUND_TARGET_LITERAL) {
        return config->has_smarthost ? &config->smarthost : NULL;
    }
    return config_route_for(config, job->domain);
}

void outbound_conn_begin(struct outbound_job *job)
{
    struct daemon *daemon = conn_daemon(job);
    const struct netaddr_hostport *route;
    int rc;

    /* NOTE: no test reaches this branch, because the server stores only
     * addresses that parse. */
    if (job->target == OUTBOUND_TARGET_INVALID) {
        conn_fail_all(job, 553, "553 5.1.3 %s",
                      "Invalid recipient address syntax in the queue");
        return;
    }
    route = conn_route(job);
    job->port = route != NULL ? route->port : OUTBOUND_SMTP_PORT;
    job->host_cursor = 0;
    job->addr_cursor = 0;
    snprintf(job->last_error, sizeof(job->last_error),
             "451 4.4.1 No next hop for %s was reachable", job->domain);
    job->hops = calloc(1, sizeof(*job->hops));
    if (job->hops == NULL) {
        conn_fail_all(job, 451, "451 4.3.0 %s", "Out of memory");
        return;
    }
    if (route == NULL && job->target == OUTBOUND_TARGET_LITERAL) {
        conn_use_literal(job);
        conn_connect_next(job);
        return;
    }
    if (route != NULL && !route->is_name) {
        conn_use_route(job, route);
        conn_connect_next(job);
        return;
    }

    job->state = OUTBOUND_JOB_RESOLVING;
    if (route != NULL) {
        rc = dns_resolve_host(daemon->resolver, route->host, conn_dns_done,
                              job, &job->dns);
    } else {
        rc = dns_resolve_mx(daemon->resolver, job->domain, conn_dns_done,
                            job, &job->dns);
    }
    if (rc < 0) {
        job->dns = NULL;
        conn_fail_all(job, 451, "451 4.4.3 DNS lookup failed: %s",
                      strerror(-rc));
    }
}

/* conn_drop_loopback removes the MX addresses that loop back to this
 * host, logging each, and returns how many it removed. */
static size_t conn_drop_loopback(struct outbound_job *job)
{
    char ip[INET6_ADDRSTRLEN];
    size_t dropped = 0;

    for (size_t i = 0; i < job->hops->host_count; i++) {
        struct dns_mx_host *host = &job->hops->hosts[i];
        size_t kept = 0;

        for (size_t a = 0; a < host->addr_count; a++) {
            if (!dns_addr_loops_back(&host->addrs[a])) {
                host->addrs[kept++] = host->addrs[a];
                continue;
            }
            netaddr_format((const struct sockaddr *)&host->addrs[a], ip,
                           sizeof(ip));
            log_warning("id=%s event=mx-address-skipped domain=%s host=%s "
                        "address=%s reason=\"loopback or unspecified "
                        "address; set mx_allow_loopback to use it\"",
                        job->msg->id, job->domain, host->name, ip);
            dropped++;
        }
        host->addr_count = kept;
    }
    return dropped;
}

/* conn_use_hops takes the next hops of a DNS result. A name server
 * controls MX records, so MX addresses that loop back are dropped unless
 * mx_allow_loopback is set. Routes and the smarthost come from the
 * configuration and keep theirs. With no address left the recipients are
 * deferred, because the MX record may be fixed before a later retry. */
static void conn_use_hops(struct outbound_job *job,
                          const struct dns_mx_result *result)
{
    const struct config *config = conn_daemon(job)->config;
    size_t dropped = 0;

    memcpy(job->hops, result, sizeof(*result));
    if (conn_route(job) == NULL && !config->mx_allow_loopback) {
        dropped = conn_drop_loopback(job);
    }
    dns_mx_limit(job->hops, config->max_mx_hosts, config->max_mx_addresses);
    if (job->hops->host_count == 0 && dropped > 0) {
        conn_fail_all(job, 451, "451 4.4.6 Mail for %s loops back to this "
                      "host: every MX address is loopback or unspecified",
                      job->domain);
        return;
    }
    conn_connect_next(job);
}

static void conn_dns_done(void *arg, const struct dns_mx_result *result)
{
    struct outbound_job *job = arg;

    job->dns = NULL;
    switch (result->status) {
    case DNS_OK:
        conn_use_hops(job, result);
        return;
    case DNS_NOTFOUND:
        conn_fail_all(job, 550,
                      "550 5.1.2 %s: host or domain name not found",
                      job->domain);
        return;
    case DNS_NULLMX:
        conn_fail_all(job, 556,
                      "556 5.1.10 %s does not accept mail (null MX)",
                      job->domain);
        return;
    case DNS_TEMPFAIL:
    default:
        conn_fail_all(job, 451,
                      "451 4.4.3 DNS lookup of %s failed temporarily",
                      job->domain);
        return;
    }
}

/* conn_next_address picks the next untried address, or returns NULL. */
static const struct sockaddr_storage *
conn_next_address(struct outbound_job *job, const char **host_name)
{
    while (job->host_cursor < job->hops->host_count) {
        const struct dns_mx_host *host = &job->hops->hosts[job->host_cursor];

        if (job->addr_cursor < host->addr_count) {
            *host_name = host->name;
            return &host->addrs[job->addr_cursor++];
        }
        job->host_cursor++;
        job->addr_cursor = 0;
    }
    return NULL;
}

static int conn_open_socket(struct outbound_job *job,
                            const struct sockaddr_storage *where,
                            struct sockaddr_storage *target)
{
    memcpy(target, where, sizeof(*target));
    if (target->ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)target)->sin6_port = htons(job->port);
    } else {
        ((struct sockaddr_in *)target)->sin_port = htons(job->port);
    }
    job->fd = socket(target->ss_family,
                     SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    return job->fd < 0 ? -errno : 0;
}

static void conn_connect_next(struct outbound_job *job)
{
    struct reactor *reactor = conn_daemon(job)->reactor;
    const struct sockaddr_storage *where;
    struct sockaddr_storage target;
    const char *host_name = "";
    char ip[INET6_ADDRSTRLEN];
    int rc;

    where = conn_next_address(job, &host_name);
    if (where == NULL) {
        outbound_record_all(job, atoi(job->last_error), job->last_error);
        outbound_job_finished(job);
        return;
    }
    netaddr_format((const struct sockaddr *)where, ip, sizeof(ip));
    snprintf(job->relay, sizeof(job->relay), "%s[%s]:%u", host_name, ip,
             (unsigned)job->port);

    job->state = OUTBOUND_JOB_CONNECTING;
    rc = conn_open_socket(job, where, &target);
    if (rc == 0) {
        job->connect_op.done = conn_connect_done;
        job->connect_op.owner = job;
        rc = reactor_connect(reactor, &job->connect_op, job->fd,
                             (const struct sockaddr *)&target,
                             target.ss_family == AF_INET6
                                 ? sizeof(struct sockaddr_in6)
                                 : sizeof(struct sockaddr_in));
    }
    if (rc < 0) {
        log_error("id=%s relay=%s error=\"connect failed: %s\"",
                  job->msg->id, job->relay, strerror(-rc));
        conn_close(job, OUTBOUND_NEXT_ADDRESS);
        return;
    }
    job->timer.fire = conn_timer_fired;
    reactor_timer_set(reactor, &job->timer, OUTBOUND_CONNECT_TIMEOUT_MS);
}

static enum smtp_dsn_ret conn_smtp_ret(enum queue_dsn_ret ret)
{
    switch (ret) {
    case QUEUE_DSN_RET_FULL:
        return SMTP_DSN_RET_FULL;
    case QUEUE_DSN_RET_HDRS:
        return SMTP_DSN_RET_HDRS;
    case QUEUE_DSN_RET_UNSET:
        break;
    }
    return SMTP_DSN_RET_UNSET;
}

/* TODO: send a "relayed" DSN (RFC 3461) for NOTIFY=SUCCESS when the next
 * hop does not offer DSN, once the bounce code can write DSN messages. */
static int conn_start_session(struct outbound_job *job)
{
    struct daemon *daemon = conn_daemon(job);
    struct queue_msg *msg = job->msg;

    job->client_msg = (struct smtp_client_message){
        .sender = msg->sender,
        .rcpts = job->attempt_rcpts,
        .rcpt_count = job->attempt_count,
        .body = msg->body,
        .body_len = msg->body_len,
        .eight_bit = (msg->flags & QUEUE_ENV_8BITMIME) != 0,
        .smtputf8 = (msg->flags & QUEUE_ENV_SMTPUTF8) != 0,
        .binary = (msg->flags & QUEUE_ENV_BINARYMIME) != 0,
        .dsn_ret = conn_smtp_ret(msg->dsn_ret),
        .envid = msg->envid,
        .notify = job->attempt_notify,
        .orcpt = job->attempt_orcpt,
    };
    job->client = smtp_client_new(daemon->config->hostname,
                                  &job->client_msg);
    if (job->client == NULL) {
        return -ENOMEM;
    }
    job->recv_op.done = conn_recv_done;
    job->recv_op.owner = job;
    job->send_op.done = conn_send_done;
    job->send_op.owner = job;
    job->state = OUTBOUND_JOB_TALKING;
    reactor_timer_set(daemon->reactor, &job->timer,
                      OUTBOUND_REPLY_TIMEOUT_MS);
    return reactor_recv_multishot(daemon->reactor, &job->recv_op, job->fd);
}

static void conn_connect_done(struct reactor_op *op, int result)
{
    struct outbound_job *job = op->owner;
    int rc;

    if (job->state == OUTBOUND_JOB_CLOSING) {
        conn_close(job, job->after_close);
        return;
    }
    if (result < 0) {
        const char *reason = result == -ECANCELED ? "connection timed out"
                                                  : strerror(-result);

        log_info("id=%s event=connect-failed relay=%s error=\"%s\"",
                 job->msg->id, job->relay, reason);
        snprintf(job->last_error, sizeof(job->last_error),
                 "451 4.4.1 Connect to %s failed: %s", job->relay, reason);
        conn_close(job, OUTBOUND_NEXT_ADDRESS);
        return;
    }
    rc = conn_start_session(job);
    if (rc < 0) {
        log_error("id=%s relay=%s error=\"session start failed: %s\"",
                  job->msg->id, job->relay, strerror(-rc));
        conn_close(job, OUTBOUND_NEXT_ADDRESS);
    }
}

static void conn_flush(struct outbound_job *job)
{
    struct reactor *reactor = conn_daemon(job)->reactor;
    struct smtp_outq *out = smtp_client_output(job->client);
    int count;
    int rc;

    if (job->send_op.armed || out->len == 0 ||
        job->state != OUTBOUND_JOB_TALKING) {
        return;
    }
    count = smtp_outq_peek(out, job->send_iov, OUTBOUND_SEND_IOVS);
    rc = reactor_sendv(reactor, &job->send_op, job->fd, job->send_iov,
                       count);
    if (rc < 0) {
        smtp_client_fail(job->client, 451, "451 4.4.2 Send failed");
    }
}

/* conn_all_temporary reports whether every recipient got a 4xx, the case
 * where the next MX host may do better. */
static bool conn_all_temporary(struct outbound_job *job)
{
    for (size_t i = 0; i < job->attempt_count; i++) {
        int code = smtp_client_result(job->client, i)->code;

        if (code < 400 || code >= 500) {
            return false;
        }
    }
    return true;
}

/* conn_check_done records results once the client has them all. */
static void conn_check_done(struct outbound_job *job)
{
    bool more_hosts;

    if (smtp_client_state(job->client) != SMTP_CLIENT_DONE) {
        conn_flush(job);
        return;
    }
    if (!job->results_recorded) {
        more_hosts = job->host_cursor < job->hops->host_count;
        if (more_hosts && conn_all_temporary(job)) {
            snprintf(job->last_error, sizeof(job->last_error), "%s",
                     smtp_client_result(job->client, 0)->text);
            log_info("id=%s event=try-next-host relay=%s reply=\"%s\"",
                     job->msg->id, job->relay, job->last_error);
            conn_close(job, OUTBOUND_NEXT_ADDRESS);
            return;
        }
        for (size_t i = 0; i < job->attempt_count; i++) {
            const struct smtp_client_result *r =
                smtp_client_result(job->client, i);

            outbound_record_result(job, i, r->code, r->text);
        }
        job->results_recorded = true;
        reactor_timer_set(conn_daemon(job)->reactor, &job->timer,
                          OUTBOUND_QUIT_TIMEOUT_MS);
    }
    if (smtp_client_quit_answered(job->client)) {
        conn_close(job, OUTBOUND_FINISH);
        return;
    }
    conn_flush(job);
}

static void conn_recv_done(struct reactor_op *op, int result)
{
    struct outbound_job *job = op->owner;

    if (job->state == OUTBOUND_JOB_TALKING && result > 0) {
        if (!job->results_recorded) {
            reactor_timer_set(conn_daemon(job)->reactor, &job->timer,
                              OUTBOUND_REPLY_TIMEOUT_MS);
        }
        smtp_client_feed(job->client, op->data, (size_t)result);
        conn_check_done(job);
    }
    if (op->more) {
        return;
    }
    if (job->state == OUTBOUND_JOB_TALKING) {
        if (smtp_client_state(job->client) != SMTP_CLIENT_DONE) {
            smtp_client_fail(job->client, 451,
                             "451 4.4.2 Connection lost during the session");
            conn_check_done(job);
        }
        if (job->state == OUTBOUND_JOB_TALKING) {
            conn_close(job, OUTBOUND_FINISH);
        }
        return;
    }
    if (job->state == OUTBOUND_JOB_CLOSING) {
        conn_close(job, job->after_close);
    }
}

static void conn_send_done(struct reactor_op *op, int result)
{
    struct outbound_job *job = op->owner;

    if (job->state == OUTBOUND_JOB_CLOSING) {
        conn_close(job, job->after_close);
        return;
    }
    if (result < 0) {
        log_info("id=%s event=send-failed relay=%s error=\"%s\"",
                 job->msg->id, job->relay, strerror(-result));
        smtp_client_fail(job->client, 451, "451 4.4.2 Connection lost");
        conn_check_done(job);
        if (job->state == OUTBOUND_JOB_TALKING) {
            conn_close(job, OUTBOUND_FINISH);
        }
        return;
    }
    smtp_outq_consume(smtp_client_output(job->client), (size_t)result);
    conn_flush(job);
}

static void conn_timer_fired(struct reactor_timer *timer)
{
    struct outbound_job *job = timer->owner;
    struct reactor *reactor = conn_daemon(job)->reactor;

    switch (job->state) {
    case OUTBOUND_JOB_CONNECTING:
        reactor_cancel(reactor, &job->connect_op);
        return;
    case OUTBOUND_JOB_TALKING:
        if (!job->results_recorded) {
            log_info("id=%s event=timeout relay=%s", job->msg->id,
                     job->relay);
            smtp_client_fail(job->client, 451,
                             "451 4.4.2 Timed out waiting for the relay");
            conn_check_done(job);
        }
        if (job->state == OUTBOUND_JOB_TALKING) {
            conn_close(job, OUTBOUND_FINISH);
        }
        return;
    default:
        return;
    }
}

/* conn_close tears the connection down; once no operation can call back,
 * it closes the socket and moves on to `after`. Runs again from each
 * completion that arrives while closing. */
static void conn_close(struct outbound_job *job,
                       enum outbound_after_close after)
{
    struct reactor *reactor = conn_daemon(job)->reactor;

    if (job->state != OUTBOUND_JOB_CLOSING) {
        job->state = OUTBOUND_JOB_CLOSING;
        job->after_close = after;
        reactor_timer_cancel(reactor, &job->timer);
        if (job->fd >= 0) {
            shutdown(job->fd, SHUT_RDWR);
        }
    }
    if (job->connect_op.armed || job->recv_op.armed ||
        job->send_op.armed) {
        reactor_cancel(reactor, &job->connect_op);
        reactor_cancel(reactor, &job->recv_op);
        return;
    }
    if (job->fd >= 0) {
        close(job->fd);
        job->fd = -1;
    }
    smtp_client_free(job->client);
    job->client = NULL;
    if (job->after_close == OUTBOUND_NEXT_ADDRESS) {
        conn_connect_next(job);
        return;
    }
    if (!job->results_recorded) {
        outbound_record_all(job, 451, job->last_error);
    }
    outbound_job_finished(job);
}

void outbound_conn_abandon(struct outbound_job *job)
{
    if (job->fd >= 0) {
        close(job->fd);
        job->fd = -1;
    }
}
