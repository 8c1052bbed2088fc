#include "dns/dns_query.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "core/log.h"
#include "core/reactor.h"
#include "dns/dns_limit.h"
#include "dns/dns_tcp.h"
#include "dns/resolver.h"

/* Large enough for any UDP answer to a query that advertises
 * DNS_EDNS_UDP_SIZE; a longer datagram is cut and fails to parse. */
#define DNS_UDP_BUFFER_SIZE 4096

#define DNS_DEFAULT_TIMEOUT_MS 2000u
#define DNS_DEFAULT_ATTEMPTS 2u

/* dns_udp: the socket of one try. It outlives its query when the query
 * ends while a send or recv is still armed: detached (query == NULL), it
 * frees itself at the final completion of its last armed op. */
struct dns_udp {
    struct dns_query *query;
    struct reactor *reactor;
    int fd;
    uint8_t *wire;
    size_t wire_len;
    struct reactor_op send_op;
    struct reactor_op recv_op;
    uint8_t buf[DNS_UDP_BUFFER_SIZE];
};

struct dns_query {
    struct reactor *reactor;
    const struct dns_options *opts;
    struct dns_question question;
    dns_query_fn fn;
    void *arg;
    struct reactor_timer timer; /* try timeout, or 0 ms to the next try */
    struct dns_udp *udp;        /* the current try's socket, or NULL */
    struct dns_tcp *tcp;        /* the current try's TCP retry, or NULL */
    unsigned tries_started;
    unsigned tries_max;
    const char *last_failure; /* why the last try failed, for the log */
    struct dns_limit *limit;  /* NULL: no cap */
    struct dns_limit_entry slot;
    uint64_t queued_ms;       /* when the query had to wait for a slot */
};

static void dns_query_next_try(struct dns_query *query);
static void dns_query_retry_tcp(struct dns_query *query);

uint32_t dns_random_below(uint32_t bound)
{
    uint32_t limit = UINT32_MAX - UINT32_MAX % bound;
    uint32_t value;

    /* Values at or above limit would favour small results. */
    do {
        RAND_bytes((uint8_t *)&value, sizeof(value));
    } while (value >= limit);
    return value % bound;
}

/* dns_server_text writes server index's address for log lines. */
static const char *dns_server_text(const struct dns_options *opts,
                                   size_t index, char *buf, size_t size)
{
    const struct sockaddr_storage *ss = &opts->servers[index];
    const void *addr = &((const struct sockaddr_in *)ss)->sin_addr;

    if (ss->ss_family == AF_INET6) {
        addr = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    }
    if (inet_ntop(ss->ss_family, addr, buf, (socklen_t)size) == NULL) {
        snprintf(buf, size, "unknown");
    }
    return buf;
}

/* ---- The socket of one try --------------------------------------------- */

static void dns_udp_release(struct dns_udp *udp)
{
    if (udp->fd >= 0 && close(udp->fd) < 0) {
        log_warning("event=dns-close error=\"close failed: %s\"",
                    strerror(errno));
    }
    free(udp->wire);
    free(udp);
}

static void dns_udp_cancel_op(struct dns_udp *udp, struct reactor_op *op)
{
    int rc;

    if (!op->armed) {
        return;
    }
    rc = reactor_cancel(udp->reactor, op);
    if (rc < 0) {
        /* Shutting the socket down also ends a pending recv, with 0. */
        log_warning("event=dns-cancel error=\"reactor_cancel failed: %s\"",
                    strerror(-rc));
        if (shutdown(udp->fd, SHUT_RDWR) < 0) {
            log_warning("event=dns-cancel error=\"shutdown failed: %s\"",
                        strerror(errno));
        }
    }
}

/* dns_udp_detach cuts udp from its query; udp is freed now, or at the
 * final completion of its armed ops. */
static void dns_udp_detach(struct dns_udp *udp)
{
    if (udp == NULL) {
        return;
    }
    udp->query = NULL;
    dns_udp_cancel_op(udp, &udp->send_op);
    dns_udp_cancel_op(udp, &udp->recv_op);
    if (!udp->send_op.armed && !udp->recv_op.armed) {
        dns_udp_release(udp);
    }
}

/* dns_udp_orphan_done handles a completion of a detached socket. */
static void dns_udp_orphan_done(struct dns_udp *udp)
{
    if (!udp->send_op.armed && !udp->recv_op.armed) {
        dns_udp_release(udp);
    }
}

/* dns_query_try_failed ends the current try at once; the next try starts
 * from the timer, so no try recurses into another. */
static void dns_query_try_failed(struct dns_query *query, const char *why)
{
    query->last_failure = why;
    dns_udp_detach(query->udp);
    query->udp = NULL;
    dns_tcp_detach(query->tcp);
    query->tcp = NULL;
    reactor_timer_set(query->reactor, &query->timer, 0);
}

static void dns_udp_send_done(struct reactor_op *op, int result)
{
    struct dns_udp *udp = op->owner;
    struct dns_query *query = udp->query;

    if (query == NULL) {
        dns_udp_orphan_done(udp);
        return;
    }
    if (result >= 0 && (size_t)result == udp->wire_len) {
        return;
    }

    log_debug("event=dns-send name=%s error=\"%s\"", query->question.name,
              result < 0 ? strerror(-result) : "short send");
    dns_query_try_failed(query, "send failed");
}

/* ---- Answers and the end of a query ------------------------------------ */

/* dns_query_finish frees query, then calls its callback, which may cancel
 * or free anything, so nothing of query is touched after it. */
static void dns_query_finish(struct dns_query *query,
                             const struct dns_answer *answer)
{
    dns_query_fn fn = query->fn;
    void *arg = query->arg;

    reactor_timer_cancel(query->reactor, &query->timer);
    dns_udp_detach(query->udp);
    dns_tcp_detach(query->tcp);
    if (query->limit != NULL) {
        dns_limit_leave(query->limit, &query->slot);
    }
    free(query);
    fn(arg, answer);
}

static void dns_query_fail(struct dns_query *query, const char *reason)
{
    struct dns_answer answer;

    log_warning("event=dns-failed name=%s type=%s tries=%u reason=\"%s\"",
                query->question.name, dns_type_name(query->question.type),
                query->tries_started, reason);
    memset(&answer, 0, offsetof(struct dns_answer, records));
    answer.status = DNS_ANSWER_TEMPFAIL;
    dns_query_finish(query, &answer);
}

static void dns_query_on_answer(struct dns_query *query,
                                const struct dns_answer *answer)
{
    switch (answer->status) {
    case DNS_ANSWER_SERVER_FAILURE:
        /* Another server may answer, so this only ends the try. */
        log_debug("event=dns-server-failure name=%s type=%s",
                  query->question.name, dns_type_name(query->question.type));
        dns_query_try_failed(query, "server failure or refusal");
        return;
    case DNS_ANSWER_TRUNCATED:
        dns_query_retry_tcp(query);
        return;
    default:
        dns_query_finish(query, answer);
        return;
    }
}

static void dns_udp_recv_done(struct reactor_op *op, int result)
{
    struct dns_udp *udp = op->owner;
    struct dns_query *query = udp->query;
    struct dns_answer answer;
    int rc;

    if (query == NULL) {
        dns_udp_orphan_done(udp);
        return;
    }
    if (result < 0) {
        /* ECONNREFUSED: an ICMP port unreachable came back. */
        log_debug("event=dns-recv name=%s error=\"%s\"",
                  query->question.name, strerror(-result));
        dns_query_try_failed(query, "receive failed");
        return;
    }

    rc = dns_packet_parse(udp->buf, (size_t)result, &query->question,
                          &answer);
    if (rc == 0) {
        dns_query_on_answer(query, &answer);
        return;
    }

    /* A datagram that does not answer the question is dropped, and the
     * try keeps waiting until its timeout. */
    log_debug("event=dns-ignored name=%s bytes=%d reason=\"%s\"",
              query->question.name, result,
              rc == -ENOMSG ? "not an answer to the question" : "malformed");
    rc = reactor_recv(udp->reactor, &udp->recv_op, udp->fd, udp->buf,
                      sizeof(udp->buf));
    if (rc < 0) {
        log_warning("event=dns-recv error=\"reactor_recv failed: %s\"",
                    strerror(-rc));
        dns_query_try_failed(query, "receive failed");
    }
}

/* ---- TCP retry of a truncated answer ---------------------------------- */

static void dns_query_on_tcp(void *arg, const uint8_t *message, size_t len,
                             int error)
{
    struct dns_query *query = arg;
    struct dns_answer answer;
    int rc;

    query->tcp = NULL;
    if (error < 0) {
        log_debug("event=dns-recv name=%s transport=tcp error=\"%s\"",
                  query->question.name, strerror(-error));
        dns_query_try_failed(query, "TCP query failed");
        return;
    }

    /* Over TCP one connection carries one answer, so a message that does
     * not parse or match ends the try, unlike a stray UDP datagram. */
    rc = dns_packet_parse(message, len, &query->question, &answer);
    if (rc < 0) {
        log_debug("event=dns-ignored name=%s transport=tcp bytes=%zu "
                  "reason=\"%s\"", query->question.name, len,
                  rc == -ENOMSG ? "not an answer to the question"
                                : "malformed");
        dns_query_try_failed(query, "TCP answer invalid");
        return;
    }
    if (answer.status == DNS_ANSWER_TRUNCATED) {
        dns_query_try_failed(query, "answer truncated over TCP");
        return;
    }
    dns_query_on_answer(query, &answer);
}

/* dns_query_retry_tcp repeats the current try over TCP to the same server
 * (RFC 7766 section 5) with the same ID, under a fresh try timeout. */
static void dns_query_retry_tcp(struct dns_query *query)
{
    const struct dns_options *opts = query->opts;
    size_t server = (query->tries_started - 1) % opts->server_count;
    uint32_t timeout = opts->timeout_ms ? opts->timeout_ms
                                        : DNS_DEFAULT_TIMEOUT_MS;
    int rc;

    log_debug("event=dns-truncated name=%s type=%s try=%u",
              query->question.name, dns_type_name(query->question.type),
              query->tries_started);
    rc = dns_tcp_start(&query->tcp, query->reactor,
                       (const struct sockaddr *)&opts->servers[server],
                       opts->server_lens[server], query->udp->wire,
                       query->udp->wire_len, dns_query_on_tcp, query);
    if (rc < 0) {
        query->tcp = NULL;
        log_warning("event=dns-tcp name=%s error=\"TCP setup failed: %s\"",
                    query->question.name, strerror(-rc));
        dns_query_try_failed(query, "TCP setup failed");
        return;
    }
    dns_udp_detach(query->udp);
    query->udp = NULL;
    reactor_timer_set(query->reactor, &query->timer, timeout);
}

/* ---- Tries ------------------------------------------------------------- */

static int dns_udp_socket(const struct dns_options *opts, size_t server)
{
    const struct sockaddr *addr = (const struct sockaddr *)
                                      &opts->servers[server];
    int fd = socket(addr->sa_family,
                    SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc;

    if (fd < 0) {
        rc = -errno;
        log_warning("event=dns-socket error=\"socket failed: %s\"",
                    strerror(errno));
        return rc;
    }

    /* A connected UDP socket receives only from the server's address and
     * port; connect sends nothing, so it does not block. */
    if (connect(fd, addr, opts->server_lens[server]) < 0) {
        rc = -errno;
        log_warning("event=dns-socket error=\"connect failed: %s\"",
                    strerror(errno));
        close(fd);
        return rc;
    }
    return fd;
}

/* dns_udp_open starts one try: a new socket, a new ID, send and recv. */
static int dns_udp_open(struct dns_query *query, size_t server)
{
    struct dns_udp *udp = calloc(1, sizeof(*udp));
    int rc;

    if (udp == NULL) {
        return -ENOMEM;
    }
    udp->reactor = query->reactor;
    udp->send_op.done = dns_udp_send_done;
    udp->send_op.owner = udp;
    udp->recv_op.done = dns_udp_recv_done;
    udp->recv_op.owner = udp;
    udp->fd = dns_udp_socket(query->opts, server);
    if (udp->fd < 0) {
        rc = udp->fd;
        goto fail;
    }

    RAND_bytes((uint8_t *)&query->question.id, sizeof(query->question.id));
    rc = dns_packet_build_query(&query->question, &udp->wire, &udp->wire_len);
    if (rc < 0) {
        goto fail;
    }
    rc = reactor_send(udp->reactor, &udp->send_op, udp->fd, udp->wire,
                      udp->wire_len);
    if (rc < 0) {
        goto fail;
    }
    rc = reactor_recv(udp->reactor, &udp->recv_op, udp->fd, udp->buf,
                      sizeof(udp->buf));
    if (rc < 0) {
        goto fail;
    }
    udp->query = query;
    query->udp = udp;
    return 0;

fail:
    dns_udp_detach(udp);
    return rc;
}

static void dns_query_timer_fire(struct reactor_timer *timer)
{
    struct dns_query *query = timer->owner;

    if (query->udp != NULL) {
        log_debug("event=dns-timeout name=%s type=%s try=%u",
                  query->question.name, dns_type_name(query->question.type),
                  query->tries_started);
        dns_udp_detach(query->udp);
        query->udp = NULL;
        query->last_failure = "timed out";
    }
    if (query->tcp != NULL) {
        log_debug("event=dns-timeout name=%s type=%s try=%u transport=tcp",
                  query->question.name, dns_type_name(query->question.type),
                  query->tries_started);
        dns_tcp_detach(query->tcp);
        query->tcp = NULL;
        query->last_failure = "TCP query timed out";
    }
    dns_query_next_try(query);
}

/* dns_query_next_try starts the next try, going round the servers once
 * per attempt, or ends the query when no try is left. */
static void dns_query_next_try(struct dns_query *query)
{
    const struct dns_options *opts = query->opts;
    uint32_t timeout = opts->timeout_ms ? opts->timeout_ms
                                        : DNS_DEFAULT_TIMEOUT_MS;
    char server_text[INET6_ADDRSTRLEN];

    while (query->tries_started < query->tries_max) {
        size_t server = query->tries_started % opts->server_count;
        int rc;

        query->tries_started++;
        rc = dns_udp_open(query, server);
        if (rc == 0) {
            reactor_timer_set(query->reactor, &query->timer, timeout);
            return;
        }
        query->last_failure = "socket setup failed";
        log_warning("event=dns-try name=%s server=%s error=\"%s\"",
                    query->question.name,
                    dns_server_text(opts, server, server_text,
                                    sizeof(server_text)),
                    strerror(-rc));
    }

    if (opts->server_count == 0) {
        dns_query_fail(query, "no name server configured");
    } else {
        dns_query_fail(query, query->last_failure);
    }
}

/* dns_query_on_slot starts a query that waited for a slot. Its first
 * try starts from the timer, whose timeout then counts from the send. */
static void dns_query_on_slot(struct dns_limit_entry *slot)
{
    struct dns_query *query = slot->owner;

    log_debug("event=dns-query-waited name=%s type=%s wait_ms=%llu "
              "queued=%zu max_queries=%u", query->question.name,
              dns_type_name(query->question.type),
              (unsigned long long)(reactor_now_ms(query->reactor) -
                                   query->queued_ms),
              query->limit->queued, query->limit->max_running);
    reactor_timer_set(query->reactor, &query->timer, 0);
}

int dns_query_start(struct dns_query **out, struct reactor *reactor,
                    const struct dns_options *opts, struct dns_limit *limit,
                    const char *name, uint16_t type, dns_query_fn fn,
                    void *arg)
{
    struct dns_query *query;
    unsigned attempts = opts->attempts ? opts->attempts
                                       : DNS_DEFAULT_ATTEMPTS;

    if (strlen(name) >= sizeof(query->question.name)) {
        return -EINVAL;
    }
    query = calloc(1, sizeof(*query));
    if (query == NULL) {
        return -ENOMEM;
    }
    query->reactor = reactor;
    query->opts = opts;
    strcpy(query->question.name, name);
    query->question.type = type;
    query->fn = fn;
    query->arg = arg;
    query->timer.fire = dns_query_timer_fire;
    query->timer.owner = query;
    query->tries_max = (unsigned)opts->server_count * attempts;
    query->limit = limit;
    *out = query;

    if (limit != NULL &&
        !dns_limit_enter(limit, &query->slot, dns_query_on_slot, query)) {
        query->queued_ms = reactor_now_ms(reactor);
        return 0;
    }

    /* The first try starts from the timer too, so a failure to open a
     * socket cannot reach fn from inside this call. */
    reactor_timer_set(reactor, &query->timer, 0);
    return 0;
}

void dns_query_cancel(struct dns_query *query)
{
    if (query == NULL) {
        return;
    }
    reactor_timer_cancel(query->reactor, &query->timer);
    dns_udp_detach(query->udp);
    dns_tcp_detach(query->tcp);
    if (query->limit != NULL) {
        dns_limit_leave(query->limit, &query->slot);
    }
    free(query);
}
