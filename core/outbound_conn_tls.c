#include "core/outbound_conn_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/daemon.h"
#include "core/log.h"
#include "core/outbound_dest.h"
#include "core/outbound_job.h"
#include "core/outbound_tls.h"
#include "core/queue.h"
#include "core/reactor.h"
#include "dns/dns_mx.h"
#include "dns/resolver.h"
#include "proto/smtp_client.h"
#include "tls/tls_session.h"

/* Ciphertext buffer of a TLS connection, and the plaintext encrypted
 * ahead of the send: one buffer's worth, so that a large body is
 * encrypted and sent in 64 KiB steps. */
#define OUTBOUND_TLS_BUF (64u * 1024u)

/* Plaintext per TLS record, the TLS maximum (RFC 8446 section 5.1). */
#define OUTBOUND_TLS_RECORD (16u * 1024u)

static struct daemon *conn_daemon(const struct outbound_conn *conn)
{
    return outbound_daemon(conn->dest->outbound);
}

static struct reactor *conn_reactor(const struct outbound_conn *conn)
{
    return conn_daemon(conn)->reactor;
}

/* conn_is_ip is true for a host given as an IPv4 or IPv6 address, which
 * has no TLSA records. */
static bool conn_is_ip(const char *host)
{
    unsigned char addr[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, host, addr) == 1 ||
           inet_pton(AF_INET6, host, addr) == 1;
}

static void conn_tlsa_done(void *arg, const struct dns_tlsa_result *result)
{
    struct outbound_conn *conn = arg;

    conn->tlsa_dns = NULL;
    if (conn->tlsa == NULL) {
        conn->tlsa = malloc(sizeof(*conn->tlsa));
    }
    if (conn->tlsa != NULL) {
        memcpy(conn->tlsa, result, sizeof(*result));
    }
    conn->tlsa_host = conn->job->host_cursor + 1;
    outbound_conn_connect_next(conn);
}

bool outbound_conn_tls_lookup(struct outbound_conn *conn)
{
    struct outbound_job *job = conn->job;
    const struct dns_mx_host *host;
    int rc;

    if (conn->profile_policy != TLS_POLICY_DANE) {
        return false;
    }
    while (job->host_cursor < job->hops->host_count &&
           job->addr_cursor >= job->hops->hosts[job->host_cursor].addr_count) {
        job->host_cursor++;
        job->addr_cursor = 0;
    }
    if (job->host_cursor >= job->hops->host_count ||
        conn->tlsa_host == job->host_cursor + 1) {
        return false;
    }
    host = &job->hops->hosts[job->host_cursor];
    if (host->name[0] == '\0' || conn_is_ip(host->name)) {
        return false;
    }
    rc = dns_resolve_tlsa(conn_daemon(conn)->resolver, host->name, job->port,
                          conn_tlsa_done, conn, &conn->tlsa_dns);
    if (rc < 0) {
        /* Recorded as a failed lookup, so dane skips the host. */
        conn->tlsa_dns = NULL;
        free(conn->tlsa);
        conn->tlsa = NULL;
        conn->tlsa_host = job->host_cursor + 1;
        log_error("id=%s event=tlsa-lookup-failed host=%s error=\"%s\"",
                  job->msg->id, host->name, strerror(-rc));
        return false;
    }
    return true;
}

int outbound_conn_tls_choose(struct outbound_conn *conn,
                             const char *host_name)
{
    struct outbound_job *job = conn->job;
    enum tls_policy policy = conn->profile_policy;
    enum tls_policy_tlsa tlsa = TLS_POLICY_TLSA_INSECURE;

    if (policy == TLS_POLICY_DANE) {
        if (conn->tlsa_host == job->host_cursor + 1) {
            tlsa = conn->tlsa != NULL ? outbound_tls_classify(conn->tlsa)
                                      : TLS_POLICY_TLSA_FAILED;
        } else {
            conn->tlsa_host = 0;
        }
        if (tls_policy_for_host(policy, tlsa, &policy) < 0) {
            snprintf(job->last_error, sizeof(job->last_error),
                     "451 4.7.5 TLSA lookup of %.255s failed", host_name);
            log_info("id=%s event=tlsa-lookup-failed dest=%s host=%s "
                     "action=\"skip this host\"",
                     job->msg->id, conn->dest->name, host_name);
            return -1;
        }
    }
    if (conn->plain_retry) {
        policy = TLS_POLICY_NONE;
        conn->plain_retry = false;
    }
    conn->tls_policy = policy;
    return 0;
}

/* conn_tls_encrypt moves the client's output into the TLS session,
 * encrypting the body straight from the queue mapping, until a buffer's
 * worth of ciphertext waits. Returns 0, or -1 when TLS failed. */
static int conn_tls_encrypt(struct outbound_conn *conn)
{
    struct smtp_outq *out = smtp_client_output(conn->client);

    while (out->len > 0 &&
           tls_session_output_len(conn->tls) < OUTBOUND_TLS_BUF) {
        struct iovec iov;
        size_t n;

        if (smtp_outq_peek(out, &iov, 1) < 1) {
            break;
        }
        n = iov.iov_len < OUTBOUND_TLS_RECORD ? iov.iov_len
                                              : OUTBOUND_TLS_RECORD;
        if (tls_session_write(conn->tls, iov.iov_base, n) != TLS_OK) {
            return -1;
        }
        smtp_outq_consume(out, n);
    }
    return 0;
}

void outbound_conn_tls_flush(struct outbound_conn *conn)
{
    int rc;

    if (conn->tls_buf_off == conn->tls_buf_len) {
        if (tls_session_established(conn->tls) &&
            conn_tls_encrypt(conn) < 0) {
            log_info("event=tls-outbound-failed dest=%s relay=%s "
                     "stage=write error=\"%s\"", conn->dest->name,
                     conn->relay, tls_session_error(conn->tls));
            smtp_client_fail(conn->client, 451,
                             "451 4.4.2 TLS encryption failed");
            return;
        }
        conn->tls_buf_off = 0;
        conn->tls_buf_len = tls_session_output(conn->tls, conn->tls_buf,
                                               OUTBOUND_TLS_BUF);
        if (conn->tls_buf_len == 0) {
            return;
        }
    }
    conn->send_iov[0].iov_base = conn->tls_buf + conn->tls_buf_off;
    conn->send_iov[0].iov_len = conn->tls_buf_len - conn->tls_buf_off;
    conn->send_tls = true;
    rc = reactor_sendv(conn_reactor(conn), &conn->send_op, conn->fd,
                       conn->send_iov, 1);
    if (rc < 0) {
        smtp_client_fail(conn->client, 451, "451 4.4.2 Send failed");
    }
}

bool outbound_conn_tls_idle(const struct outbound_conn *conn)
{
    return conn->tls == NULL ||
           (conn->tls_buf_off == conn->tls_buf_len &&
            tls_session_output_len(conn->tls) == 0);
}

void outbound_conn_tls_reset(struct outbound_conn *conn)
{
    tls_session_free(conn->tls);
    conn->tls = NULL;
    conn->tls_buf_len = 0;
    conn->tls_buf_off = 0;
    conn->tls_version[0] = '\0';
}

bool outbound_conn_tls_fail(struct outbound_conn *conn, const char *stage,
                            const char *reason)
{
    struct outbound_job *job = conn->job;
    bool retry_plain = conn->tls_policy == TLS_POLICY_MAY &&
                       strcmp(stage, "handshake") == 0;
    char quoted[512];
    unsigned char alert[256];
    size_t n;

    log_info("id=%s event=tls-outbound-failed dest=%s relay=%s policy=%s "
             "stage=%s error=%s action=%s",
             job->msg->id, conn->dest->name, conn->relay,
             tls_policy_name(conn->tls_policy), stage,
             log_quote(quoted, sizeof(quoted), reason, strlen(reason)),
             retry_plain ? "retry-plaintext" : "next-address");
    if (conn->tls != NULL && !conn->send_op.armed) {
        /* Best effort: the close_notify is a few dozen bytes, and the
         * socket is closed right after whether it went out or not. */
        tls_session_close(conn->tls);
        n = tls_session_output(conn->tls, alert, sizeof(alert));
        if (n > 0 && send(conn->fd, alert, n, MSG_DONTWAIT | MSG_NOSIGNAL) <
                         0) {
            log_debug("event=tls-close-notify-failed relay=%s error=\"%s\"",
                      conn->relay, strerror(errno));
        }
    }
    if (retry_plain) {
        conn->plain_retry = true;
        job->addr_cursor--;
    }
    snprintf(job->last_error, sizeof(job->last_error),
             "451 4.7.5 TLS with %.200s failed (%s): %.200s",
             conn->relay, stage, reason);
    outbound_conn_close(conn, OUTBOUND_NEXT_ADDRESS);
    return false;
}

/* conn_tls_read decrypts the records the session has and feeds them to the
 * client. Returns false when conn started closing. */
static bool conn_tls_read(struct outbound_conn *conn)
{
    char buf[OUTBOUND_TLS_RECORD];

    for (;;) {
        int n = tls_session_read(conn->tls, buf, sizeof(buf));

        if (n > 0) {
            if (outbound_conn_note_reply(conn, buf, (size_t)n)) {
                return false;
            }
            smtp_client_feed(conn->client, buf, (size_t)n);
            continue;
        }
        if (n == TLS_WANT_INPUT) {
            break;
        }
        log_info("event=tls-outbound-closed dest=%s relay=%s error=\"%s\"",
                 conn->dest->name, conn->relay,
                 n == TLS_CLOSED ? "close_notify from the peer"
                                 : tls_session_error(conn->tls));
        outbound_conn_lost(conn,
                           "451 4.4.2 TLS session ended by the next hop");
        return false;
    }
    return outbound_conn_check_done(conn);
}

/* conn_tls_step advances the handshake. Once it is done it checks the
 * peer as the policy requires and lets the client send EHLO again. Returns
 * false when conn started closing. */
static bool conn_tls_step(struct outbound_conn *conn)
{
    struct outbound_job *job = conn->job;
    const struct dns_tlsa_result *tlsa = NULL;
    char err[512];
    int rc = tls_session_handshake(conn->tls);

    if (rc == TLS_WANT_INPUT) {
        outbound_conn_flush(conn);
        return true;
    }
    if (rc != TLS_OK) {
        return outbound_conn_tls_fail(conn, "handshake",
                                      tls_session_error(conn->tls));
    }
    if (conn->tlsa_host == job->host_cursor + 1) {
        tlsa = conn->tlsa;
    }
    if (outbound_tls_check_peer(conn->tls, conn->tls_policy, conn->tls_host,
                                tlsa, err, sizeof(err)) < 0) {
        return outbound_conn_tls_fail(conn, "verification", err);
    }
    snprintf(conn->tls_version, sizeof(conn->tls_version), "%s",
             tls_session_version(conn->tls));
    snprintf(job->tls, sizeof(job->tls), "%s", conn->tls_version);
    log_info("id=%s event=tls-outbound dest=%s relay=%s policy=%s "
             "tls_version=%s cipher=%s bits=%d resumed=%s sni=%s",
             job->msg->id, conn->dest->name, conn->relay,
             tls_policy_name(conn->tls_policy), conn->tls_version,
             tls_session_cipher(conn->tls),
             tls_session_cipher_bits(conn->tls),
             tls_session_reused(conn->tls) ? "yes" : "no",
             tls_session_server_name(conn->tls) != NULL
                 ? tls_session_server_name(conn->tls)
                 : "none");
    smtp_client_tls_started(conn->client);
    return conn_tls_read(conn);
}

bool outbound_conn_tls_start(struct outbound_conn *conn)
{
    struct tls_context *ctx = outbound_tls_client(conn->dest->outbound);

    if (ctx == NULL) {
        return outbound_conn_tls_fail(conn, "setup", "no TLS client context");
    }
    conn->tls = tls_session_new(ctx, conn->tls_host);
    if (conn->tls_buf == NULL) {
        conn->tls_buf = malloc(OUTBOUND_TLS_BUF);
    }
    if (conn->tls == NULL || conn->tls_buf == NULL) {
        return outbound_conn_tls_fail(conn, "setup", "out of memory");
    }
    conn->tls_buf_len = 0;
    conn->tls_buf_off = 0;
    reactor_timer_set(conn_reactor(conn), &conn->timer,
                      (uint64_t)conn->dest->limits.timeout_command * 1000u);
    return conn_tls_step(conn);
}

bool outbound_conn_tls_feed(struct outbound_conn *conn, const char *data,
                            size_t len)
{
    if (tls_session_input(conn->tls, data, len) != TLS_OK) {
        outbound_conn_lost(conn, "451 4.3.0 Out of memory for TLS input");
        return false;
    }
    if (!tls_session_established(conn->tls)) {
        return conn_tls_step(conn);
    }
    return conn_tls_read(conn);
}
