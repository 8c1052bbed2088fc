#include "dns/dns_flight.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/reactor.h"
#include "dns/dns_cache.h"
#include "dns/dns_chase.h"

struct dns_flight {
    struct dns_chase_env *env;
    struct dns_flight *prev; /* in the bucket of (name, type) */
    struct dns_flight *next;
    struct dns_query *query; /* NULL once the answer has come */
    struct dns_flight_waiter *waiters;
    bool delivering; /* the answer is being handed to the waiters */
    uint16_t type;
    char name[DNS_NAME_TEXT_MAX];
};

/* FNV-1a over the name and the type. */
static size_t dns_flight_bucket(const char *name, uint16_t type)
{
    uint64_t hash = 14695981039346656037u;

    for (const char *p = name; *p != '\0'; p++) {
        hash = (hash ^ (unsigned char)*p) * 1099511628211u;
    }
    hash = (hash ^ type) * 1099511628211u;
    return (size_t)hash & (DNS_FLIGHT_BUCKETS - 1);
}

static struct dns_flight *dns_flight_find(struct dns_chase_env *env,
                                          const char *name, uint16_t type)
{
    struct dns_flight *flight = env->flights[dns_flight_bucket(name, type)];

    while (flight != NULL) {
        if (flight->type == type && strcmp(flight->name, name) == 0) {
            return flight;
        }
        flight = flight->next;
    }
    return NULL;
}

static void dns_flight_unlink(struct dns_flight *flight)
{
    struct dns_chase_env *env = flight->env;

    if (flight->prev != NULL) {
        flight->prev->next = flight->next;
    } else {
        env->flights[dns_flight_bucket(flight->name, flight->type)] =
            flight->next;
    }
    if (flight->next != NULL) {
        flight->next->prev = flight->prev;
    }
    flight->prev = NULL;
    flight->next = NULL;
}

/* dns_flight_pop removes waiter from its flight's queue. */
static void dns_flight_pop(struct dns_flight_waiter *waiter)
{
    struct dns_flight *flight = waiter->flight;

    if (waiter->prev != NULL) {
        waiter->prev->next = waiter->next;
    } else {
        flight->waiters = waiter->next;
    }
    if (waiter->next != NULL) {
        waiter->next->prev = waiter->prev;
    }
    waiter->prev = NULL;
    waiter->next = NULL;
    waiter->flight = NULL;
}

/* dns_flight_on_answer caches the answer, then hands it to each waiter.
 * A waiter's callback may make others leave, or free the resolver, which
 * makes every one leave, so the queue is read afresh each time and the
 * flight, out of the table already, is freed only at the end. */
static void dns_flight_on_answer(void *arg, const struct dns_answer *answer)
{
    struct dns_flight *flight = arg;
    struct dns_chase_env *env = flight->env;
    struct dns_flight_waiter *waiter;
    int rc;

    flight->query = NULL;
    flight->delivering = true;
    dns_flight_unlink(flight);
    rc = dns_cache_put(env->cache, flight->name, flight->type, answer,
                       reactor_now_ms(env->reactor));
    if (rc < 0) {
        log_warning("event=dns-cache name=%s error=\"cache store failed: "
                    "%s\"", flight->name, strerror(-rc));
    }

    while ((waiter = flight->waiters) != NULL) {
        dns_query_fn fn = waiter->fn;
        void *waiter_arg = waiter->arg;

        dns_flight_pop(waiter);
        fn(waiter_arg, answer);
    }
    free(flight);
}

/* dns_flight_start starts the query of a new flight and enters it in
 * the table. */
static int dns_flight_start(struct dns_chase_env *env, const char *name,
                            uint16_t type, struct dns_flight **out)
{
    struct dns_flight *flight;
    size_t bucket = dns_flight_bucket(name, type);
    int rc;

    if (strlen(name) >= sizeof(flight->name)) {
        return -EINVAL;
    }
    flight = calloc(1, sizeof(*flight));
    if (flight == NULL) {
        return -ENOMEM;
    }
    flight->env = env;
    flight->type = type;
    strcpy(flight->name, name);
    rc = dns_query_start(&flight->query, env->reactor, env->opts,
                         env->limit, name, type, dns_flight_on_answer,
                         flight);
    if (rc < 0) {
        free(flight);
        return rc;
    }

    flight->next = env->flights[bucket];
    if (flight->next != NULL) {
        flight->next->prev = flight;
    }
    env->flights[bucket] = flight;
    *out = flight;
    return 0;
}

int dns_flight_join(struct dns_chase_env *env, const char *name,
                    uint16_t type, struct dns_flight_waiter *waiter,
                    dns_query_fn fn, void *arg)
{
    struct dns_flight *flight = dns_flight_find(env, name, type);
    int rc;

    if (flight == NULL) {
        rc = dns_flight_start(env, name, type, &flight);
        if (rc < 0) {
            return rc;
        }
    }
    waiter->fn = fn;
    waiter->arg = arg;
    waiter->flight = flight;
    waiter->prev = NULL;
    waiter->next = flight->waiters;
    if (flight->waiters != NULL) {
        flight->waiters->prev = waiter;
    }
    flight->waiters = waiter;
    return 0;
}

void dns_flight_leave(struct dns_flight_waiter *waiter)
{
    struct dns_flight *flight = waiter->flight;

    if (flight == NULL) {
        return;
    }
    dns_flight_pop(waiter);
    if (flight->waiters != NULL || flight->delivering) {
        return;
    }
    dns_query_cancel(flight->query);
    dns_flight_unlink(flight);
    free(flight);
}
