/* One lookup of (name, type) through the answer cache and queries,
 * following CNAME answers (RFC 1034 section 3.6.2) to further queries
 * when a server did not chase the chain itself.
 *
 * Queries go through dns_flight.c, so lookups of one (name, type) share
 * one query. Every answer is cached under the name it was queried for,
 * CNAME answers included, so a chain spread over several queries is
 * cached link by link. The chain is bounded by DNS_CNAME_MAX_HOPS links
 * over all its answers, and a name queried twice is a loop. Both end the
 * lookup as DNS_ANSWER_BAD_CNAME.
 *
 * Return convention: 0 or a negative errno, unless stated. */
#ifndef RINGRELAY_DNS_CHASE_H
#define RINGRELAY_DNS_CHASE_H

#include <stdbool.h>
#include <stdint.h>

#include "dns/dns_flight.h"
#include "dns/dns_packet.h"

struct reactor;
struct dns_options;
struct dns_cache;
struct dns_limit;

/* dns_chase_env: what every lookup of a resolver shares. */
struct dns_chase_env {
    struct reactor *reactor;
    const struct dns_options *opts;
    struct dns_cache *cache;
    struct dns_limit *limit; /* queries in flight; NULL: no cap */
    struct dns_flight *flights[DNS_FLIGHT_BUCKETS]; /* dns_flight.c */
};

/* dns_chase_fn receives the final answer of a lookup that had to query;
 * answer is valid only during the call. */
typedef void (*dns_chase_fn)(void *arg, const struct dns_answer *answer);

/* dns_chase: the state of one lookup, owned by the caller, which must not
 * move it while a query runs. */
struct dns_chase {
    struct dns_chase_env *env;
    dns_chase_fn fn;
    void *arg;
    uint16_t type;
    char name[DNS_NAME_TEXT_MAX];    /* the name looked up first */
    char current[DNS_NAME_TEXT_MAX]; /* the name of the running query */
    unsigned hops;          /* CNAME links so far */
    uint32_t ttl;           /* smallest TTL of the links so far */
    bool authenticated;     /* every answer so far had AD set */
    size_t queried_count;          /* names in queried_names */
    char (*queried_names)[DNS_NAME_TEXT_MAX]; /* names queried, from the
                                             * first CNAME answer on */
    struct dns_flight_waiter waiter; /* waiting unless answered */
};

/* dns_chase_start looks up name (normalized) for type. It returns 0 with
 * the final answer in *answer when the cache held the whole chain, or
 * with TEMPFAIL when no query could start. It returns 1 when a query
 * runs: fn will then be called exactly once, never from inside this
 * call, unless the chase is cancelled first. */
int dns_chase_start(struct dns_chase *chase, struct dns_chase_env *env,
                    const char *name, uint16_t type, dns_chase_fn fn,
                    void *arg, struct dns_answer *answer);

/* dns_chase_cancel stops a running chase without calling fn and frees
 * what it holds; a chase that is not running is accepted. */
void dns_chase_cancel(struct dns_chase *chase);

#endif
