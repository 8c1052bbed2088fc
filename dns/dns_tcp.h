/* One DNS exchange over TCP through the reactor (RFC 1035 section 4.2.2,
 * RFC 7766): connect, send the query behind a 2-byte length, and read the
 * length-prefixed answer. The caller owns the timeout.
 *
 * Return convention: 0 or a negative errno. */
#ifndef RINGRELAY_DNS_TCP_H
#define RINGRELAY_DNS_TCP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct reactor;
struct dns_tcp;

/* dns_tcp_fn receives the answer message without its length prefix
 * (error 0), or error < 0 with message NULL. message is valid only during
 * the call; the exchange frees itself after the call returns, so the
 * callback must not pass it to dns_tcp_detach. */
typedef void (*dns_tcp_fn)(void *arg, const uint8_t *message, size_t len,
                           int error);

/* dns_tcp_start connects to server and sends query (query_len at most
 * 65535). fn is called exactly once, never from inside this call, unless
 * the exchange is detached first. */
int dns_tcp_start(struct dns_tcp **out, struct reactor *reactor,
                  const struct sockaddr *server, socklen_t server_len,
                  const uint8_t *query, size_t query_len, dns_tcp_fn fn,
                  void *arg);

/* dns_tcp_detach ends an exchange without calling fn; NULL is accepted.
 * Its socket is closed once the reactor has delivered the cancellation of
 * the pending operation. */
void dns_tcp_detach(struct dns_tcp *tcp);

#endif
