/* One lookup of (name, type) over UDP through the reactor, with a timeout
 * per try and tries across the configured name servers. A try whose UDP
 * answer is truncated is repeated over TCP to the same server
 * (dns_tcp.c) under a new timeout.
 *
 * Each try uses a fresh connected UDP socket, so the kernel picks a new
 * source port and drops datagrams from any address but the server's, and
 * a fresh random query ID from BoringSSL's RAND_bytes.
 *
 * Return convention: 0 or a negative errno. */
#ifndef RINGRELAY_DNS_QUERY_H
#define RINGRELAY_DNS_QUERY_H

#include <stdint.h>

#include "dns/dns_packet.h"

struct reactor;
struct dns_options;
struct dns_query;
struct dns_limit;

/* dns_query_fn receives the final answer: RECORDS, NODATA or NXDOMAIN
 * from a server, or TEMPFAIL after every try failed or timed out. The
 * query is already freed; answer is valid only during the call. */
typedef void (*dns_query_fn)(void *arg, const struct dns_answer *answer);

/* dns_query_start begins a lookup of name (normalized, see
 * dns_name_normalize) for type. opts and limit must outlive the query.
 * When every slot of limit is taken, the query waits in limit's queue.
 * Its first try, and so the try timeout, starts when it gets a slot. A
 * NULL limit sends at once. fn is called exactly once and never from
 * inside this call, unless the query is cancelled first. */
int dns_query_start(struct dns_query **out, struct reactor *reactor,
                    const struct dns_options *opts, struct dns_limit *limit,
                    const char *name, uint16_t type, dns_query_fn fn,
                    void *arg);

/* dns_query_cancel stops a query without calling fn, queued or not, and
 * frees its slot of the limit; NULL is accepted.
 * Its socket is closed once the reactor has delivered the cancellation of
 * the socket's pending operations. */
void dns_query_cancel(struct dns_query *query);

/* dns_random_below returns a uniformly random number in [0, bound) from
 * RAND_bytes; bound must be above zero. */
uint32_t dns_random_below(uint32_t bound);

#endif
