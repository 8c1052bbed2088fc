/* Queries in flight, shared by every lookup of the same (name, type).
 *
 * When a bulk run starts, many messages to one domain look it up at
 * once, before the first answer can reach the cache. A lookup that finds
 * a query for its (name, type) already running waits for that query's
 * answer instead of sending its own, so the name server sees one query.
 * The answer is stored in the cache once, then handed to each waiter.
 *
 * Return convention: 0 or a negative errno. */
#ifndef RINGRELAY_DNS_FLIGHT_H
#define RINGRELAY_DNS_FLIGHT_H

#include <stdbool.h>
#include <stdint.h>

#include "dns/dns_query.h"

struct dns_chase_env;
struct dns_flight;

/* Buckets of the table of queries in flight, a power of two. */
#define DNS_FLIGHT_BUCKETS 256

/* dns_flight_waiter: one lookup's place in the queue of a query in
 * flight, owned by the lookup and kept in place while it waits. */
struct dns_flight_waiter {
    struct dns_flight *flight; /* NULL unless waiting */
    struct dns_flight_waiter *prev;
    struct dns_flight_waiter *next;
    dns_query_fn fn;
    void *arg;
};

/* dns_flight_join makes waiter wait for the answer to (name, type),
 * joining the query in flight or starting one. fn is called once with
 * the answer, never from inside this call, unless the waiter leaves
 * first. */
int dns_flight_join(struct dns_chase_env *env, const char *name,
                    uint16_t type, struct dns_flight_waiter *waiter,
                    dns_query_fn fn, void *arg);

/* dns_flight_leave stops waiter's wait without calling fn; the query is
 * cancelled when no other waiter is left. A waiter that is not waiting
 * is accepted. */
void dns_flight_leave(struct dns_flight_waiter *waiter);

#endif
