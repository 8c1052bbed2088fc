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
#include "core/outbound_dest.h"
#include "core/outbound_group.h"
#include "core/outbound_conn_tls.h"
#include "core/outbound_job.h"
#include "core/outbound_slots.h"
#include "core/outbound_tls.h"
#include "core/queue.h"
#include "core/reactor.h"
#include "dns/dns_mx.h"
#include "dns/resolver.h"
#include "proto/smtp_client.h"
#include "tls/tls_session.h"

#define OUTBOUND_SMTP_PORT 25

/* The wait for the reply to QUIT, after which the socket is closed
 * anyway: every result is recorded by then. */
#define OUTBOUND_QUIT_TIMEOUT_MS (10u * 1000u)

static void conn_dns_done(void *arg, const struct dns_mx_result *result);
static void conn_connect_next(struct outbound_conn *conn);
static void conn_connect_done(struct reactor_op *op, int result);
static void conn_recv_done(struct reactor_op *op, int result);
static void conn_send_done(struct reactor_op *op, int result);
static void conn_timer_fired(struct reactor_timer *timer);
static void conn_close(struct outbound_conn *conn,
                       enum outbound_after_close after);
static bool conn_check_done(struct outbound_conn *conn);
static void conn_lost(struct outbound_conn *conn, const char *text);
static void conn_flush(struct outbound_conn *conn);

static struct daemon *conn_daemon(const struct outbound_conn *conn)
{
    return outbound_daemon(conn->dest->outbound);
}

static struct reactor *conn_reactor(const struct outbound_conn *conn)
{
    return conn_daemon(conn)->reactor;
}

/* conn_unlink takes conn off its destination and frees it. */
static void conn_unlink(struct outbound_conn *conn)
{
    struct outbound_dest *dest = conn->dest;

    if (conn->prev != NULL) {
        conn->prev->next = conn->next;
    } else {
        dest->conns = conn->next;
    }
    if (conn->next != NULL) {
        conn->next->prev = conn->prev;
    }
    dest->conn_count--;
    outbound_slots_conn_closed(conn);
    reactor_timer_cancel(conn_reactor(conn), &conn->timer);
    smtp_client_free(conn->client);
    tls_session_free(conn->tls);
    free(conn->tls_buf);
    dns_request_cancel(conn->tlsa_dns);
    free(conn->tlsa);
    free(conn);
}

/* conn_release frees conn; its destination may then start a waiting job
 * or go away. */
static void conn_release(struct outbound_conn *conn)
{
    struct outbound_dest *dest = conn->dest;

    conn_unlink(conn);
    outbound_dest_kick(dest);
    outbound_dest_release(dest);
}

/* conn_end_attempt ends the job's attempt on this connection: a new
 * connection that never reached a greeted session counts as a failure
 * of the destination. The connection is released unless it stays open
 * for the next message. */
static void conn_end_attempt(struct outbound_conn *conn, bool keep)
{
    struct outbound_job *job = conn->job;

    conn->job = NULL;
    job->conn = NULL;
    if (conn->tried && !conn->reached && !conn->reused) {
        outbound_dest_note(conn->dest, false);
    }
    outbound_job_finished(job);
    if (!keep) {
        conn_release(conn);
    }
}

static void conn_fail_all(struct outbound_conn *conn, int code,
                          const char *fmt, const char *arg)
{
    char text[SMTP_CLIENT_TEXT_MAX];

    snprintf(text, sizeof(text), fmt, arg);
    outbound_record_all(conn->job, code, text);
    conn_end_attempt(conn, false);
}

/* conn_wait_for_working checks whether the job of a new connection that
 * never reached a greeted session should wait for the destination's
 * working sessions instead of failing: a next hop that refuses one more
 * session (often with a 421 greeting) while others work limits
 * connections, it is not down. The destination's connection limit is
 * lowered for a while, and the failure does not count toward the
 * breaker. */
static bool conn_wait_for_working(struct outbound_conn *conn)
{
    size_t working;

    if (conn->reached || conn->reused || conn->job == NULL) {
        return false;
    }
    working = outbound_dest_working_conns(conn->dest, conn);
    if (working == 0) {
        return false;
    }
    log_info("id=%s event=requeued dest=%s relay=%s reply=\"%s\" "
             "reason=\"next hop refused one more session; waiting for "
             "one of %zu working\"", conn->job->msg->id, conn->dest->name,
             conn->relay, conn->job->last_error, working);
    outbound_dest_lower_limit(conn->dest, working);
    return true;
}

/* conn_requeue hands the job back to its destination's ready list and
 * releases the closed connection. */
static void conn_requeue(struct outbound_conn *conn)
{
    struct outbound_job *job = conn->job;

    conn->job = NULL;
    job->conn = NULL;
    outbound_job_requeue(job);
    conn_release(conn);
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
static const struct netaddr_hostport *conn_route(struct outbound_conn *conn)
{
    const struct config *config = conn_daemon(conn)->config;

    if (conn->job->target == OUTBOUND_TARGET_LITERAL) {
        return config->has_smarthost ? &config->smarthost : NULL;
    }
    return config_route_for(config, conn->job->domain);
}

/* conn_new adds a connection without a socket to dest. */
static struct outbound_conn *conn_new(struct outbound_dest *dest)
{
    struct outbound_conn *conn = calloc(1, sizeof(*conn));

    if (conn == NULL) {
        return NULL;
    }
    conn->dest = dest;
    conn->fd = -1;
    conn->timer.owner = conn;
    conn->timer.fire = conn_timer_fired;
    conn->state = OUTBOUND_CONN_OPENING;
    conn->next = dest->conns;
    if (dest->conns != NULL) {
        dest->conns->prev = conn;
    }
    dest->conns = conn;
    dest->conn_count++;
    outbound_slots_conn_opened(conn);
    return conn;
}

/* conn_discard delivers every recipient of a route whose transport is
 * "discard": no connection, for load tests. */
static bool conn_discard(struct outbound_conn *conn)
{
    const struct config *config = conn_daemon(conn)->config;
    const struct config_route *entry;

    if (conn->job->target != OUTBOUND_TARGET_DOMAIN) {
        return false;
    }
    entry = config_route_entry(config, conn->job->domain);
    if (entry == NULL || !entry->discard) {
        return false;
    }
    snprintf(conn->job->relay, sizeof(conn->job->relay), "discard");
    outbound_record_all(conn->job, 250,
                        "250 2.0.0 Discarded by the discard transport");
    conn_end_attempt(conn, false);
    return true;
}

void outbound_profile(const struct config *config,
                      enum outbound_target target, const char *domain,
                      struct outbound_profile *profile)
{
    const struct config_route *entry = NULL;

    profile->policy = config_tls_policy_for(config, domain);
    profile->user = NULL;
    profile->password = NULL;
    if (target == OUTBOUND_TARGET_DOMAIN) {
        entry = config_route_entry(config, domain);
    }
    if (entry != NULL) {
        profile->user = entry->auth_user;
        profile->password = entry->auth_password;
    } else if (config->has_smarthost && target != OUTBOUND_TARGET_INVALID) {
        profile->user = config->smarthost_auth_user;
        profile->password = config->smarthost_auth_password;
    }
}

bool outbound_profile_equal(const struct outbound_profile *a,
                            const struct outbound_profile *b)
{
    return a->policy == b->policy && a->user == b->user &&
           a->password == b->password;
}

/* conn_profile finds the configured TLS policy of job and the AUTH
 * credentials of its route, or of the smarthost when that is its next
 * hop. */
static void conn_profile(const struct config *config,
                         const struct outbound_job *job,
                         enum tls_policy *policy, const char **user,
                         const char **password)
{
    struct outbound_profile profile;

    outbound_profile(config, job->target, job->domain, &profile);
    *policy = profile.policy;
    *user = profile.user;
    *password = profile.password;
}

bool outbound_conn_fits(const struct outbound_conn *conn,
                        const struct outbound_job *job)
{
    enum tls_policy policy;
    const char *user;
    const char *password;

    conn_profile(conn_daemon(conn)->config, job, &policy, &user, &password);
    return policy == conn->profile_policy && user == conn->profile_user &&
           password == conn->profile_password;
}

/* conn_begin looks up the job's next hops and connects to the first. */
static void conn_begin(struct outbound_conn *conn)
{
    struct daemon *daemon = conn_daemon(conn);
    struct outbound_job *job = conn->job;
    const struct netaddr_hostport *route;
    int rc;

    /* NOTE: no test reaches this branch, because the server stores only
     * addresses that parse. */
    if (job->target == OUTBOUND_TARGET_INVALID) {
        conn_fail_all(conn, 553, "553 5.1.3 %s",
                      "Invalid recipient address syntax in the queue");
        return;
    }
    if (conn_discard(conn)) {
        return;
    }
    conn_profile(daemon->config, job, &conn->profile_policy,
                 &conn->profile_user, &conn->profile_password);
    route = conn_route(conn);
    job->port = route != NULL ? route->port : OUTBOUND_SMTP_PORT;
    job->host_cursor = 0;
    job->addr_cursor = 0;
    snprintf(job->last_error, sizeof(job->last_error),
             "451 4.4.1 No next hop for %s was reachable", job->domain);
    job->hops = calloc(1, sizeof(*job->hops));
    if (job->hops == NULL) {
        conn_fail_all(conn, 451, "451 4.3.0 %s", "Out of memory");
        return;
    }
    if (route == NULL && job->target == OUTBOUND_TARGET_LITERAL) {
        conn_use_literal(job);
        conn_connect_next(conn);
        return;
    }
    if (route != NULL && !route->is_name) {
        conn_use_route(job, route);
        conn_connect_next(conn);
        return;
    }
    if (route == NULL && job->lookup_failed) {
        /* The lookup made moments ago for the destination failed and
         * was logged: asking again would only double the wait. */
        job->lookup_failed = false;
        conn_fail_all(conn, 451,
                      "451 4.4.3 DNS lookup of %s failed temporarily",
                      job->domain);
        return;
    }

    if (route != NULL) {
        rc = dns_resolve_host(daemon->resolver, route->host, conn_dns_done,
                              conn, &job->dns);
    } else {
        rc = dns_resolve_mx(daemon->resolver, job->domain, conn_dns_done,
                            conn, &job->dns);
    }
    if (rc < 0) {
        job->dns = NULL;
        conn_fail_all(conn, 451, "451 4.4.3 DNS lookup failed: %s",
                      strerror(-rc));
    }
}

void outbound_conn_open(struct outbound_dest *dest, struct outbound_job *job)
{
    struct outbound_conn *conn = conn_new(dest);

    if (conn == NULL) {
        outbound_record_all(job, 451, "451 4.3.0 Out of memory");
        outbound_job_finished(job);
        return;
    }
    conn->job = job;
    job->conn = conn;
    conn_begin(conn);
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
static void conn_use_hops(struct outbound_conn *conn,
                          const struct dns_mx_result *result)
{
    const struct config *config = conn_daemon(conn)->config;
    struct outbound_job *job = conn->job;
    size_t dropped = 0;

    memcpy(job->hops, result, sizeof(*result));
    if (conn_route(conn) == NULL && !config->mx_allow_loopback) {
        dropped = conn_drop_loopback(job);
    }
    dns_mx_limit(job->hops, config->max_mx_hosts, config->max_mx_addresses);
    if (job->hops->host_count == 0 && dropped > 0) {
        conn_fail_all(conn, 451, "451 4.4.6 Mail for %s loops back to this "
                      "host: every MX address is loopback or unspecified",
                      job->domain);
        return;
    }
    conn_connect_next(conn);
}

/* conn_host_not_found fails the recipients whose next hop has no
 * address. A route's or the smarthost's host name comes from the
 * configuration, so its absence is a local fault that an operator can
 * fix: the mail is deferred, never bounced. */
static void conn_host_not_found(struct outbound_conn *conn,
                                const struct dns_mx_result *result)
{
    const struct netaddr_hostport *route = conn_route(conn);
    char text[SMTP_CLIENT_TEXT_MAX];

    if (route != NULL) {
        conn_fail_all(conn, 451, "451 4.4.4 Next hop %s not found in DNS: "
                      "check routes and smarthost", route->host);
        return;
    }
    if (result->missing_hosts == 0) {
        conn_fail_all(conn, 550,
                      "550 5.1.2 %s: host or domain name not found",
                      conn->job->domain);
        return;
    }

    /* The domain exists but none of its MX hosts does: RFC 3463 5.4.4,
     * unable to route. */
    snprintf(text, sizeof(text),
             "550 5.4.4 %.200s: MX host %.200s not found%s",
             conn->job->domain, result->missing_host,
             result->missing_hosts > 1 ? ", nor any other MX host" : "");
    conn_fail_all(conn, 550, "%s", text);
}

/* conn_same_mx_set reports whether result, the MX lookup of a job of a
 * shared destination, still names the destination's MX set. */
static bool conn_same_mx_set(struct outbound_conn *conn,
                             const struct dns_mx_result *result)
{
    char key[sizeof(conn->dest->name)];

    outbound_group_key(conn_daemon(conn)->config, conn->job->domain,
                       result, key, sizeof(key));
    return strcmp(key, conn->dest->name) == 0;
}

static void conn_dns_done(void *arg, const struct dns_mx_result *result)
{
    struct outbound_conn *conn = arg;
    const char *domain = conn->job->domain;

    conn->job->dns = NULL;
    if (conn->job->grouped && !conn_same_mx_set(conn, result)) {
        /* The lookup that made the shared destination found other MX
         * hosts. The job may carry other domains of the set, and the
         * destination's idle connections serve them all, so nothing
         * goes to these hosts and nothing bounces on one domain's
         * answer: the retry looks each domain up again on its own. */
        log_info("id=%s event=mx-set-changed domain=%s dest=%s",
                 conn->job->msg->id, domain, conn->dest->name);
        conn_fail_all(conn, 451, "451 4.4.3 MX records of %s changed "
                      "during delivery", domain);
        return;
    }
    switch (result->status) {
    case DNS_OK:
        conn_use_hops(conn, result);
        return;
    case DNS_NOTFOUND:
        conn_host_not_found(conn, result);
        return;
    case DNS_NULLMX:
        conn_fail_all(conn, 556,
                      "556 5.1.10 %s does not accept mail (null MX)",
                      domain);
        return;
    case DNS_TEMPFAIL:
    default:
        conn_fail_all(conn, 451,
                      "451 4.4.3 DNS lookup of %s failed temporarily",
                      domain);
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

static int conn_open_socket(struct outbound_conn *conn,
                            const struct sockaddr_storage *where,
                            struct sockaddr_storage *target)
{
    uint16_t port = conn->job->port;

    memcpy(target, where, sizeof(*target));
    if (target->ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)target)->sin6_port = htons(port);
    } else {
        ((struct sockaddr_in *)target)->sin_port = htons(port);
    }
    conn->fd = socket(target->ss_family,
                      SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    return conn->fd < 0 ? -errno : 0;
}

static void conn_connect_next(struct outbound_conn *conn)
{
    struct reactor *reactor = conn_reactor(conn);
    struct outbound_job *job = conn->job;
    const struct sockaddr_storage *where;
    struct sockaddr_storage target;
    const char *host_name = "";
    char ip[INET6_ADDRSTRLEN];
    int rc;

    if (outbound_conn_tls_lookup(conn)) {
        return;
    }
    where = conn_next_address(job, &host_name);
    if (where == NULL && conn_wait_for_working(conn)) {
        conn_requeue(conn);
        return;
    }
    if (where == NULL) {
        outbound_record_all(job, atoi(job->last_error), job->last_error);
        conn_end_attempt(conn, false);
        return;
    }
    if (outbound_conn_tls_choose(conn, host_name) < 0) {
        job->host_cursor++;
        job->addr_cursor = 0;
        conn_connect_next(conn);
        return;
    }
    netaddr_format((const struct sockaddr *)where, ip, sizeof(ip));
    snprintf(conn->relay, sizeof(conn->relay), "%s[%s]:%u", host_name, ip,
             (unsigned)job->port);
    snprintf(job->relay, sizeof(job->relay), "%s", conn->relay);
    snprintf(conn->tls_host, sizeof(conn->tls_host), "%s",
             host_name[0] != '\0' ? host_name : ip);
    job->tls[0] = '\0';

    conn->state = OUTBOUND_CONN_OPENING;
    conn->tried = true;
    rc = conn_open_socket(conn, where, &target);
    if (rc == 0) {
        conn->connect_op.done = conn_connect_done;
        conn->connect_op.owner = conn;
        rc = reactor_connect(reactor, &conn->connect_op, conn->fd,
                             (const struct sockaddr *)&target,
                             target.ss_family == AF_INET6
                                 ? sizeof(struct sockaddr_in6)
                                 : sizeof(struct sockaddr_in));
    }
    if (rc < 0) {
        log_error("id=%s relay=%s error=\"connect failed: %s\"",
                  job->msg->id, conn->relay, strerror(-rc));
        conn_close(conn, OUTBOUND_NEXT_ADDRESS);
        return;
    }
    reactor_timer_set(reactor, &conn->timer,
                      (uint64_t)conn->dest->limits.connect_timeout * 1000u);
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

/* conn_fill_message points the client message at the job's attempt and
 * at the body in the queue mapping, which is sent from there, never
 * copied. */
static void conn_fill_message(struct outbound_conn *conn)
{
    struct outbound_job *job = conn->job;
    struct queue_msg *msg = job->msg;

    conn->client_msg = (struct smtp_client_message){
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
}

/* conn_arm_reply_timer sets the timeout of the reply the session waits
 * for; the wait for the final reply also covers sending the body,
 * because each send completion re-arms it. */
static void conn_arm_reply_timer(struct outbound_conn *conn)
{
    const struct config_delivery *limits = &conn->dest->limits;
    unsigned seconds;

    switch (smtp_client_waiting(conn->client)) {
    case SMTP_CLIENT_WAIT_GREETING:
        seconds = limits->timeout_greeting;
        break;
    case SMTP_CLIENT_WAIT_DATA:
        seconds = limits->timeout_data;
        break;
    case SMTP_CLIENT_WAIT_FINAL:
        seconds = limits->timeout_final;
        break;
    case SMTP_CLIENT_WAIT_COMMAND:
        seconds = limits->timeout_command;
        break;
    case SMTP_CLIENT_WAIT_NONE:
    default:
        return;
    }
    reactor_timer_set(conn_reactor(conn), &conn->timer,
                      (uint64_t)seconds * 1000u);
}

/* conn_set_auth gives the client the AUTH credentials of the job's
 * route or smarthost. */
static int conn_set_auth(struct outbound_conn *conn)
{
    if (conn->profile_user == NULL || conn->profile_password == NULL) {
        return 0;
    }
    return smtp_client_set_auth(conn->client, conn->profile_user,
                                conn->profile_password);
}

/* TODO: send a "relayed" DSN (RFC 3461) for NOTIFY=SUCCESS when the next
 * hop does not offer DSN, once the bounce code can write DSN messages. */
static int conn_start_session(struct outbound_conn *conn)
{
    struct daemon *daemon = conn_daemon(conn);

    conn_fill_message(conn);
    conn->client = smtp_client_new(daemon->config->hostname,
                                   &conn->client_msg);
    if (conn->client == NULL) {
        return -ENOMEM;
    }
    smtp_client_keep_open(conn->client);
    smtp_client_set_tls(conn->client, outbound_tls_mode(conn->tls_policy));
    if (conn_set_auth(conn) < 0) {
        return -ENOMEM;
    }
    conn->messages = 1;
    conn->recv_op.done = conn_recv_done;
    conn->recv_op.owner = conn;
    conn->send_op.done = conn_send_done;
    conn->send_op.owner = conn;
    conn->state = OUTBOUND_CONN_TALKING;
    conn_arm_reply_timer(conn);
    return reactor_recv_multishot(daemon->reactor, &conn->recv_op, conn->fd);
}

static void conn_connect_done(struct reactor_op *op, int result)
{
    struct outbound_conn *conn = op->owner;
    int rc;

    if (conn->state == OUTBOUND_CONN_CLOSING) {
        conn_close(conn, conn->after_close);
        return;
    }
    if (result < 0) {
        const char *reason = result == -ECANCELED ? "connection timed out"
                                                  : strerror(-result);

        log_info("id=%s event=connect-failed relay=%s dest=%s "
                 "error=\"%s\"",
                 conn->job->msg->id, conn->relay, conn->dest->name, reason);
        snprintf(conn->job->last_error, sizeof(conn->job->last_error),
                 "451 4.4.1 Connect to %s failed: %s", conn->relay, reason);
        conn_close(conn, OUTBOUND_NEXT_ADDRESS);
        return;
    }
    rc = conn_start_session(conn);
    if (rc < 0) {
        log_error("id=%s relay=%s error=\"session start failed: %s\"",
                  conn->job->msg->id, conn->relay, strerror(-rc));
        conn_close(conn, OUTBOUND_NEXT_ADDRESS);
    }
}

static void conn_flush(struct outbound_conn *conn)
{
    struct smtp_outq *out = smtp_client_output(conn->client);
    int count;
    int rc;

    if (conn->send_op.armed ||
        (conn->state != OUTBOUND_CONN_TALKING &&
         conn->state != OUTBOUND_CONN_QUITTING)) {
        return;
    }
    if (conn->tls != NULL) {
        outbound_conn_tls_flush(conn);
        return;
    }
    if (out->len == 0) {
        return;
    }
    count = smtp_outq_peek(out, conn->send_iov, OUTBOUND_SEND_IOVS);
    conn->send_tls = false;
    rc = reactor_sendv(conn_reactor(conn), &conn->send_op, conn->fd,
                       conn->send_iov, count);
    if (rc < 0) {
        smtp_client_fail(conn->client, 451, "451 4.4.2 Send failed");
    }
}

/* conn_feed passes received bytes to the client, through TLS once it
 * started. Returns false when conn started closing. */
static bool conn_feed(struct outbound_conn *conn, const char *data,
                      size_t len)
{
    if (conn->tls != NULL) {
        return outbound_conn_tls_feed(conn, data, len);
    }
    smtp_client_feed(conn->client, data, len);
    if (smtp_client_tls_ready(conn->client) && conn->job != NULL) {
        return outbound_conn_tls_start(conn);
    }
    return conn_check_done(conn);
}

/* conn_rest_temporary reports whether every recipient got 4xx or a
 * final reply (5xx, or 2xx with delivered_ok), and at least one got 4xx:
 * another host or connection may do better for those. */
static bool conn_rest_temporary(struct outbound_conn *conn,
                                bool delivered_ok)
{
    bool temporary = false;

    for (size_t i = 0; i < conn->job->attempt_count; i++) {
        int code = smtp_client_result(conn->client, i)->code;

        if (code < 200 || code >= 600 || (code < 400 && !delivered_ok)) {
            return false;
        }
        temporary = temporary || (code >= 400 && code < 500);
    }
    return temporary;
}

/* conn_refused_one_more reports whether a session that never got a
 * greeted EHLO or HELO ended with the peer's 421, the reply of a next
 * hop that limits its sessions. */
static bool conn_refused_one_more(struct outbound_conn *conn)
{
    return conn->job->attempt_count > 0 &&
           smtp_client_result(conn->client, 0)->code == 421;
}

/* conn_can_keep reports whether the connection may wait for the next
 * message once this transaction is over. The slot check comes last
 * because a true answer there commits conn to QUIT. */
static bool conn_can_keep(struct outbound_conn *conn)
{
    const struct config_delivery *limits = &conn->dest->limits;

    return limits->connection_idle_timeout > 0 &&
           conn->messages < limits->max_messages_per_connection &&
           !outbound_stopping(conn->dest->outbound) &&
           smtp_client_idle(conn->client) &&
           smtp_client_output(conn->client)->len == 0 &&
           outbound_conn_tls_idle(conn) && !conn->send_op.armed &&
           !outbound_slots_conn_yields(conn);
}

/* conn_go_idle ends the job's attempt and keeps the connection for the
 * next message to the destination. */
static void conn_go_idle(struct outbound_conn *conn)
{
    struct outbound_dest *dest = conn->dest;

    conn->state = OUTBOUND_CONN_IDLE;
    outbound_slots_conn_idle(conn);
    reactor_timer_set(conn_reactor(conn), &conn->timer,
                      (uint64_t)dest->limits.connection_idle_timeout *
                          1000u);
    conn_end_attempt(conn, true);
    outbound_dest_kick(dest);
}

/* conn_lost_reused reports whether the transaction failed because the
 * reused connection was dead before any reply came: the peer closed it
 * while idle. Such a job moves once to a new connection rather than
 * being deferred. */
static bool conn_lost_reused(const struct outbound_conn *conn)
{
    return conn->reused && !conn->got_reply && !conn->job->reuse_retried;
}

/* conn_address_left reports whether the job has an MX or route address
 * that it has not tried yet. */
static bool conn_address_left(const struct outbound_job *job)
{
    size_t host = job->host_cursor;

    if (job->hops == NULL || host >= job->hops->host_count) {
        return false;
    }
    if (job->addr_cursor < job->hops->hosts[host].addr_count) {
        return true;
    }
    for (host++; host < job->hops->host_count; host++) {
        if (job->hops->hosts[host].addr_count > 0) {
            return true;
        }
    }
    return false;
}

/* conn_end_unsent reports whether bytes of the message, the final dot
 * or BDAT LAST among them, were still waiting to be sent when the session
 * failed, as after a send that failed half-way through the body. The
 * peer cannot have the whole message then. NOTE: a send completion not
 * yet processed in the same reactor turn counts as unsent. */
static bool conn_end_unsent(struct outbound_conn *conn)
{
    return smtp_client_output(conn->client)->len > 0 ||
           !outbound_conn_tls_idle(conn);
}

/* conn_record_final records the recipients that got a reply other than
 * 4xx and takes them out of the attempt, which moves on for the rest.
 * From the last index down, so that the client's result index still
 * matches the attempt's. */
static void conn_record_final(struct outbound_conn *conn)
{
    struct outbound_job *job = conn->job;

    for (size_t i = job->attempt_count; i-- > 0;) {
        const struct smtp_client_result *r =
            smtp_client_result(conn->client, i);

        if (r->code < 400 || r->code >= 500) {
            outbound_record_result(job, i, r->code, r->text);
            outbound_attempt_drop(job, i);
        }
    }
}

/* conn_session_failed handles a connection that never reached a greeted
 * session: a greeting other than 220, EHLO and HELO refused, a timeout,
 * a cut or a reply that is not SMTP. Such a failure is about the host,
 * not the recipients, so a 5xx is not a bounce: the next MX address
 * takes the attempt, and with none left every recipient is deferred.
 * Returns false when the connection closed for the next host or the
 * job went back to wait for the destination's working sessions. */
static bool conn_session_failed(struct outbound_conn *conn, bool more_hosts)
{
    struct outbound_job *job = conn->job;
    const char *text = smtp_client_result(conn->client, 0)->text;

    if (text[0] == '4') {
        snprintf(job->last_error, sizeof(job->last_error), "%s", text);
    } else {
        snprintf(job->last_error, sizeof(job->last_error),
                 "451 4.4.0 %.120s refused the session: %.200s",
                 conn->relay, text);
    }
    if (conn_refused_one_more(conn) && conn_wait_for_working(conn)) {
        conn_close(conn, OUTBOUND_REQUEUE);
        return false;
    }
    if (more_hosts) {
        log_info("id=%s event=try-next-host relay=%s reply=\"%s\"",
                 job->msg->id, conn->relay, job->last_error);
        conn_close(conn, OUTBOUND_NEXT_ADDRESS);
        return false;
    }
    outbound_record_all(job, 451, job->last_error);
    job->results_recorded = true;
    return true;
}

/* conn_retry_fresh reports whether recipients that got 4xx on a reused
 * connection may move to a new one: once per attempt, and only by MX,
 * where the new connection may reach another host. */
static bool conn_retry_fresh(struct outbound_conn *conn)
{
    return conn->reused && !conn->job->reuse_retried &&
           conn->job->target == OUTBOUND_TARGET_DOMAIN &&
           conn_route(conn) == NULL;
}

/* conn_record records every recipient's result, or moves the attempt to
 * the next MX host for the recipients that got 4xx from this one when
 * the others got 5xx. On a reused connection the move is to a new
 * connection, once per attempt, and also after others were delivered.
 * A session lost or timed out once the end of data was sent never moves
 * on, because this host may have accepted the message. Returns false
 * when the connection closed for the next host. */
static bool conn_record(struct outbound_conn *conn)
{
    struct outbound_job *job = conn->job;
    bool more_hosts = !conn->reused && conn_address_left(job);
    bool end_sent = smtp_client_end_unanswered(conn->client) &&
                    !conn_end_unsent(conn);

    if (!conn->reached && !conn->reused) {
        return conn_session_failed(conn, more_hosts);
    }
    if (!end_sent && ((more_hosts && conn_rest_temporary(conn, false)) ||
                      (conn_retry_fresh(conn) &&
                       conn_rest_temporary(conn, true)))) {
        for (size_t i = 0; i < job->attempt_count; i++) {
            const struct smtp_client_result *r =
                smtp_client_result(conn->client, i);

            if (r->code >= 400 && r->code < 500) {
                snprintf(job->last_error, sizeof(job->last_error), "%s",
                         r->text);
                break;
            }
        }
        conn_record_final(conn);
        log_info("id=%s event=try-next-host relay=%s reply=\"%s\"",
                 job->msg->id, conn->relay, job->last_error);

        /* A reused connection has no list of other hosts. A new one
         * looks the MX hosts up again and starts at the most preferred,
         * which may be back while this one is a backup. */
        conn_close(conn, conn->reused ? OUTBOUND_RECONNECT
                                      : OUTBOUND_NEXT_ADDRESS);
        return false;
    }
    for (size_t i = 0; i < job->attempt_count; i++) {
        const struct smtp_client_result *r =
            smtp_client_result(conn->client, i);

        outbound_record_result(job, i, r->code, r->text);
    }
    job->results_recorded = true;
    return true;
}

/* conn_check_done records results once the client has them all, then
 * keeps the connection idle or ends it with QUIT. Returns false when it
 * started closing the connection, which may have freed conn. */
static bool conn_check_done(struct outbound_conn *conn)
{
    if (!conn->reached && smtp_client_greeted(conn->client)) {
        conn->reached = true;
        outbound_dest_note(conn->dest, true);
    }
    if (conn->state == OUTBOUND_CONN_QUITTING) {
        if (smtp_client_quit_answered(conn->client)) {
            conn_close(conn, OUTBOUND_RELEASE);
            return false;
        }
        conn_flush(conn);
        return true;
    }
    if (smtp_client_state(conn->client) != SMTP_CLIENT_DONE) {
        conn_flush(conn);
        conn_arm_reply_timer(conn);
        return true;
    }
    if (!conn->job->results_recorded) {
        if (!conn_record(conn)) {
            return false;
        }
        if (conn_can_keep(conn)) {
            conn_go_idle(conn);
            return true;
        }
        smtp_client_quit(conn->client);
        reactor_timer_set(conn_reactor(conn), &conn->timer,
                          OUTBOUND_QUIT_TIMEOUT_MS);
    }
    if (smtp_client_quit_answered(conn->client)) {
        conn_close(conn, OUTBOUND_FINISH);
        return false;
    }
    conn_flush(conn);
    return true;
}

/* conn_lost handles the end of the stream or a failed send during a
 * transaction. */
static void conn_lost(struct outbound_conn *conn, const char *text)
{
    if (conn->tls != NULL && !tls_session_established(conn->tls) &&
        conn->job != NULL && conn->state == OUTBOUND_CONN_TALKING) {
        (void)outbound_conn_tls_fail(conn, "handshake", text);
        return;
    }
    if (conn->job != NULL && !conn->job->results_recorded &&
        conn_lost_reused(conn)) {
        log_info("id=%s event=reused-connection-lost dest=%s relay=%s "
                 "reason=\"closed before a reply\" "
                 "action=\"retry on a new connection\"",
                 conn->job->msg->id, conn->dest->name, conn->relay);
        conn_close(conn, OUTBOUND_RECONNECT);
        return;
    }
    if (smtp_client_state(conn->client) != SMTP_CLIENT_DONE) {
        smtp_client_fail(conn->client, 451, text);
        if (!conn_check_done(conn)) {
            return;
        }
    }
    if (conn->state == OUTBOUND_CONN_TALKING ||
        conn->state == OUTBOUND_CONN_QUITTING ||
        conn->state == OUTBOUND_CONN_IDLE) {
        conn_close(conn, conn->job != NULL ? OUTBOUND_FINISH
                                           : OUTBOUND_RELEASE);
    }
}

static void conn_recv_done(struct reactor_op *op, int result)
{
    struct outbound_conn *conn = op->owner;

    if (conn->state == OUTBOUND_CONN_IDLE && result >= 0) {
        /* An idle peer sends nothing but 421 before it closes. */
        log_info("event=idle-connection-closed dest=%s relay=%s "
                 "reason=\"closed or sent data while idle\"",
                 conn->dest->name, conn->relay);
        conn_close(conn, OUTBOUND_RELEASE);
        return;
    }
    /* Over TLS the bytes are ciphertext: the TLS side checks the
     * decrypted reply. */
    if (conn->tls == NULL && result > 0 &&
        outbound_conn_note_reply(conn, op->data, (size_t)result)) {
        return;
    }
    if ((conn->state == OUTBOUND_CONN_TALKING ||
         conn->state == OUTBOUND_CONN_QUITTING) && result > 0) {
        if (!conn_feed(conn, op->data, (size_t)result)) {
            return;
        }
    }
    if (op->more) {
        return;
    }
    if (conn->state == OUTBOUND_CONN_CLOSING) {
        conn_close(conn, conn->after_close);
        return;
    }
    conn_lost(conn, "451 4.4.2 Connection lost during the session");
}

static void conn_send_done(struct reactor_op *op, int result)
{
    struct outbound_conn *conn = op->owner;

    if (conn->state == OUTBOUND_CONN_CLOSING) {
        conn_close(conn, conn->after_close);
        return;
    }
    if (result < 0) {
        log_info("id=%s event=send-failed relay=%s error=\"%s\"",
                 conn->job != NULL ? conn->job->msg->id : "-", conn->relay,
                 strerror(-result));
        conn_lost(conn, "451 4.4.2 Connection lost");
        return;
    }
    if (conn->send_tls) {
        conn->tls_buf_off += (size_t)result;
    } else {
        smtp_outq_consume(smtp_client_output(conn->client), (size_t)result);
    }
    if (conn->state == OUTBOUND_CONN_TALKING) {
        conn_arm_reply_timer(conn);
    }
    conn_flush(conn);
}

static void conn_timer_fired(struct reactor_timer *timer)
{
    struct outbound_conn *conn = timer->owner;

    switch (conn->state) {
    case OUTBOUND_CONN_OPENING:
        reactor_cancel(conn_reactor(conn), &conn->connect_op);
        return;
    case OUTBOUND_CONN_TALKING:
        if (conn->tls != NULL && !tls_session_established(conn->tls)) {
            (void)outbound_conn_tls_fail(conn, "handshake",
                                         "timed out in the TLS handshake");
            return;
        }
        if (!conn->job->results_recorded) {
            log_info("id=%s event=timeout dest=%s relay=%s",
                     conn->job->msg->id, conn->dest->name, conn->relay);
            smtp_client_fail(conn->client, 451,
                             "451 4.4.2 Timed out waiting for the relay");
            if (!conn_check_done(conn)) {
                return;
            }
        }
        if (conn->state == OUTBOUND_CONN_TALKING) {
            conn_close(conn, OUTBOUND_FINISH);
        }
        return;
    case OUTBOUND_CONN_IDLE:
        outbound_conn_quit(conn);
        return;
    case OUTBOUND_CONN_QUITTING:
        conn_close(conn, OUTBOUND_RELEASE);
        return;
    default:
        return;
    }
}

void outbound_conn_reuse(struct outbound_conn *conn, struct outbound_job *job)
{
    struct smtp_client *next;

    reactor_timer_cancel(conn_reactor(conn), &conn->timer);
    conn->job = job;
    job->conn = conn;
    snprintf(job->relay, sizeof(job->relay), "%s", conn->relay);
    snprintf(job->tls, sizeof(job->tls), "%s", conn->tls_version);

    /* The old session reads only its own state in smtp_client_next(), so
     * the message it borrowed may be replaced first. */
    conn_fill_message(conn);
    next = smtp_client_next(conn->client, &conn->client_msg);
    if (next == NULL) {
        log_error("id=%s dest=%s error=\"out of memory for the next "
                  "session\"", job->msg->id, conn->dest->name);
        conn->state = OUTBOUND_CONN_TALKING;
        conn_close(conn, OUTBOUND_RECONNECT);
        return;
    }
    smtp_client_free(conn->client);
    conn->client = next;
    conn->messages++;
    conn->reused = true;
    conn->got_reply = false;
    conn->state = OUTBOUND_CONN_TALKING;
    log_debug("id=%s event=connection-reused dest=%s relay=%s "
              "message=%u",
              job->msg->id, conn->dest->name, conn->relay, conn->messages);
    (void)conn_check_done(conn);
}

void outbound_conn_quit(struct outbound_conn *conn)
{
    conn->state = OUTBOUND_CONN_QUITTING;
    smtp_client_quit(conn->client);
    reactor_timer_set(conn_reactor(conn), &conn->timer,
                      OUTBOUND_QUIT_TIMEOUT_MS);
    conn_flush(conn);
}

/* conn_after_close moves on once the socket is closed. */
static void conn_after_close(struct outbound_conn *conn)
{
    struct outbound_job *job = conn->job;
    struct outbound_dest *dest = conn->dest;

    switch (conn->after_close) {
    case OUTBOUND_NEXT_ADDRESS:
        smtp_client_free(conn->client);
        conn->client = NULL;
        outbound_conn_tls_reset(conn);
        conn_connect_next(conn);
        return;
    case OUTBOUND_RECONNECT:
        conn->job = NULL;
        job->conn = NULL;
        job->reuse_retried = true;
        job->results_recorded = false;
        conn_release(conn);
        outbound_conn_open(dest, job);
        return;
    case OUTBOUND_RELEASE:
        conn_release(conn);
        return;
    case OUTBOUND_REQUEUE:
        conn_requeue(conn);
        return;
    case OUTBOUND_FINISH:
    default:
        if (!job->results_recorded && conn_wait_for_working(conn)) {
            conn_requeue(conn);
            return;
        }
        if (!job->results_recorded) {
            outbound_record_all(job, 451, job->last_error);
        }
        conn_end_attempt(conn, false);
        return;
    }
}

/* conn_close tears the connection down; once no operation can call back,
 * it closes the socket and moves on to `after`. Runs again from each
 * completion that arrives while closing. */
static void conn_close(struct outbound_conn *conn,
                       enum outbound_after_close after)
{
    struct reactor *reactor = conn_reactor(conn);

    if (conn->state != OUTBOUND_CONN_CLOSING) {
        conn->state = OUTBOUND_CONN_CLOSING;
        conn->after_close = after;
        reactor_timer_cancel(reactor, &conn->timer);
        if (conn->fd >= 0) {
            shutdown(conn->fd, SHUT_RDWR);
        }
    }
    if (conn->connect_op.armed || conn->recv_op.armed ||
        conn->send_op.armed) {
        reactor_cancel(reactor, &conn->connect_op);
        reactor_cancel(reactor, &conn->recv_op);
        return;
    }
    if (conn->fd >= 0) {
        close(conn->fd);
        conn->fd = -1;
    }
    conn_after_close(conn);
}

void outbound_conn_free(struct outbound_conn *conn)
{
    if (conn->fd >= 0) {
        close(conn->fd);
        conn->fd = -1;
    }
    if (conn->job != NULL) {
        conn->job->conn = NULL;
        conn->job = NULL;
    }
    conn_unlink(conn);
}

bool outbound_conn_note_reply(struct outbound_conn *conn, const char *data,
                              size_t len)
{
    if (conn->state == OUTBOUND_CONN_TALKING && len >= 3 &&
        conn_lost_reused(conn) && memcmp(data, "421", 3) == 0) {
        /* A 421 as the first reply on a reused connection is the peer
         * closing a session it kept idle too long, not a verdict on the
         * message. */
        log_info("id=%s event=reused-connection-lost dest=%s relay=%s "
                 "reason=\"421 on a reused connection\" "
                 "action=\"retry on a new connection\"",
                 conn->job->msg->id, conn->dest->name, conn->relay);
        conn_close(conn, OUTBOUND_RECONNECT);
        return true;
    }
    conn->got_reply = true;
    return false;
}

/* Entry points for outbound_conn_tls.c. */
void outbound_conn_connect_next(struct outbound_conn *conn)
{
    conn_connect_next(conn);
}

void outbound_conn_close(struct outbound_conn *conn,
                         enum outbound_after_close after)
{
    conn_close(conn, after);
}

void outbound_conn_lost(struct outbound_conn *conn, const char *text)
{
    conn_lost(conn, text);
}

bool outbound_conn_check_done(struct outbound_conn *conn)
{
    return conn_check_done(conn);
}

void outbound_conn_flush(struct outbound_conn *conn)
{
    conn_flush(conn);
}
