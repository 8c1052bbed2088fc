#include "dns/dns_tcp.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/reactor.h"

/* A DNS message over TCP is at most 65535 bytes behind its prefix. */
#define DNS_TCP_PREFIX 2u
#define DNS_TCP_BUFFER_SIZE (DNS_TCP_PREFIX + 65535u)

/* dns_tcp: the socket of one exchange. Its operations run one at a time
 * (connect, sends, receives), so at most one is armed. Detached
 * (fn == NULL), it frees itself at the final completion of that op. */
struct dns_tcp {
    struct reactor *reactor;
    int fd;
    dns_tcp_fn fn;
    void *arg;
    struct reactor_op connect_op;
    struct reactor_op send_op;
    struct reactor_op recv_op;
    uint8_t *out;        /* the query behind its length prefix */
    size_t out_len;
    size_t out_sent;
    uint8_t *in;         /* DNS_TCP_BUFFER_SIZE bytes */
    size_t in_len;
};

static void dns_tcp_release(struct dns_tcp *tcp)
{
    if (tcp->fd >= 0 && close(tcp->fd) < 0) {
        log_warning("event=dns-close transport=tcp error=\"close failed: "
                    "%s\"", strerror(errno));
    }
    free(tcp->out);
    free(tcp->in);
    free(tcp);
}

static bool dns_tcp_armed(const struct dns_tcp *tcp)
{
    return tcp->connect_op.armed || tcp->send_op.armed ||
           tcp->recv_op.armed;
}

static void dns_tcp_cancel_op(struct dns_tcp *tcp, struct reactor_op *op)
{
    int rc;

    if (!op->armed) {
        return;
    }
    rc = reactor_cancel(tcp->reactor, op);
    if (rc < 0) {
        /* Shutting the socket down also ends a pending connect or recv. */
        log_warning("event=dns-cancel transport=tcp error=\"reactor_cancel "
                    "failed: %s\"", strerror(-rc));
        if (shutdown(tcp->fd, SHUT_RDWR) < 0) {
            log_warning("event=dns-cancel transport=tcp error=\"shutdown "
                        "failed: %s\"", strerror(errno));
        }
    }
}

void dns_tcp_detach(struct dns_tcp *tcp)
{
    if (tcp == NULL) {
        return;
    }
    tcp->fn = NULL;
    dns_tcp_cancel_op(tcp, &tcp->connect_op);
    dns_tcp_cancel_op(tcp, &tcp->send_op);
    dns_tcp_cancel_op(tcp, &tcp->recv_op);
    if (!dns_tcp_armed(tcp)) {
        dns_tcp_release(tcp);
    }
}

/* dns_tcp_end calls fn once and frees tcp; no op may be armed. */
static void dns_tcp_end(struct dns_tcp *tcp, const uint8_t *message,
                        size_t len, int error)
{
    dns_tcp_fn fn = tcp->fn;

    tcp->fn = NULL;
    fn(tcp->arg, message, len, error);
    dns_tcp_release(tcp);
}

/* dns_tcp_orphaned frees a detached tcp at its final completion and
 * returns true; a live one returns false. */
static bool dns_tcp_orphaned(struct dns_tcp *tcp)
{
    if (tcp->fn != NULL) {
        return false;
    }
    if (!dns_tcp_armed(tcp)) {
        dns_tcp_release(tcp);
    }
    return true;
}

static void dns_tcp_send_more(struct dns_tcp *tcp)
{
    int rc = reactor_send(tcp->reactor, &tcp->send_op, tcp->fd,
                          tcp->out + tcp->out_sent,
                          tcp->out_len - tcp->out_sent);

    if (rc < 0) {
        dns_tcp_end(tcp, NULL, 0, rc);
    }
}

static void dns_tcp_recv_more(struct dns_tcp *tcp)
{
    int rc = reactor_recv(tcp->reactor, &tcp->recv_op, tcp->fd,
                          tcp->in + tcp->in_len,
                          DNS_TCP_BUFFER_SIZE - tcp->in_len);

    if (rc < 0) {
        dns_tcp_end(tcp, NULL, 0, rc);
    }
}

static void dns_tcp_connect_done(struct reactor_op *op, int result)
{
    struct dns_tcp *tcp = op->owner;

    if (dns_tcp_orphaned(tcp)) {
        return;
    }
    if (result < 0) {
        dns_tcp_end(tcp, NULL, 0, result);
        return;
    }
    dns_tcp_send_more(tcp);
}

static void dns_tcp_send_done(struct reactor_op *op, int result)
{
    struct dns_tcp *tcp = op->owner;

    if (dns_tcp_orphaned(tcp)) {
        return;
    }
    if (result <= 0) {
        dns_tcp_end(tcp, NULL, 0, result < 0 ? result : -EPIPE);
        return;
    }

    tcp->out_sent += (size_t)result;
    if (tcp->out_sent < tcp->out_len) {
        dns_tcp_send_more(tcp);
        return;
    }
    dns_tcp_recv_more(tcp);
}

static void dns_tcp_recv_done(struct reactor_op *op, int result)
{
    struct dns_tcp *tcp = op->owner;
    size_t need;

    if (dns_tcp_orphaned(tcp)) {
        return;
    }
    if (result <= 0) {
        /* 0: the server closed before the whole answer arrived. */
        dns_tcp_end(tcp, NULL, 0, result < 0 ? result : -ECONNRESET);
        return;
    }

    tcp->in_len += (size_t)result;
    if (tcp->in_len < DNS_TCP_PREFIX) {
        dns_tcp_recv_more(tcp);
        return;
    }
    need = DNS_TCP_PREFIX + ((size_t)tcp->in[0] << 8 | tcp->in[1]);
    if (tcp->in_len < need) {
        dns_tcp_recv_more(tcp);
        return;
    }
    dns_tcp_end(tcp, tcp->in + DNS_TCP_PREFIX, need - DNS_TCP_PREFIX, 0);
}

static int dns_tcp_socket(const struct sockaddr *server)
{
    int fd = socket(server->sa_family,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        int rc = -errno;

        log_warning("event=dns-socket transport=tcp error=\"socket failed: "
                    "%s\"", strerror(errno));
        return rc;
    }
    return fd;
}

static struct dns_tcp *dns_tcp_new(struct reactor *reactor,
                                   const uint8_t *query, size_t query_len)
{
    struct dns_tcp *tcp = calloc(1, sizeof(*tcp));

    if (tcp == NULL) {
        return NULL;
    }
    tcp->reactor = reactor;
    tcp->fd = -1;
    tcp->out_len = DNS_TCP_PREFIX + query_len;
    tcp->out = malloc(tcp->out_len);
    tcp->in = malloc(DNS_TCP_BUFFER_SIZE);
    if (tcp->out == NULL || tcp->in == NULL) {
        dns_tcp_release(tcp);
        return NULL;
    }
    tcp->out[0] = (uint8_t)(query_len >> 8);
    tcp->out[1] = (uint8_t)query_len;
    memcpy(tcp->out + DNS_TCP_PREFIX, query, query_len);
    tcp->connect_op.done = dns_tcp_connect_done;
    tcp->connect_op.owner = tcp;
    tcp->send_op.done = dns_tcp_send_done;
    tcp->send_op.owner = tcp;
    tcp->recv_op.done = dns_tcp_recv_done;
    tcp->recv_op.owner = tcp;
    return tcp;
}

int dns_tcp_start(struct dns_tcp **out, struct reactor *reactor,
                  const struct sockaddr *server, socklen_t server_len,
                  const uint8_t *query, size_t query_len, dns_tcp_fn fn,
                  void *arg)
{
    struct dns_tcp *tcp;
    int rc;

    if (query_len > DNS_TCP_BUFFER_SIZE - DNS_TCP_PREFIX || fn == NULL) {
        return -EINVAL;
    }
    tcp = dns_tcp_new(reactor, query, query_len);
    if (tcp == NULL) {
        return -ENOMEM;
    }

    tcp->fd = dns_tcp_socket(server);
    if (tcp->fd < 0) {
        rc = tcp->fd;
        goto fail;
    }
    rc = reactor_connect(reactor, &tcp->connect_op, tcp->fd, server,
                         server_len);
    if (rc < 0) {
        goto fail;
    }
    tcp->fn = fn;
    tcp->arg = arg;
    *out = tcp;
    return 0;

fail:
    dns_tcp_detach(tcp);
    return rc;
}
