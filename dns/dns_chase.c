#include "dns/dns_chase.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/reactor.h"
#include "dns/dns_cache.h"
#include "dns/dns_query.h"

static void dns_chase_on_query(void *arg, const struct dns_answer *answer);

/* dns_chase_release frees the list of names queried. */
static void dns_chase_release(struct dns_chase *chase)
{
    free(chase->queried_names);
    chase->queried_names = NULL;
    chase->queried_count = 0;
}

/* dns_chase_was_queried returns whether name was queried already. */
static bool dns_chase_was_queried(const struct dns_chase *chase,
                                  const char *name)
{
    for (size_t i = 0; i < chase->queried_count; i++) {
        if (strcmp(chase->queried_names[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* dns_chase_bad ends the lookup as a bad chain, logged once here. */
static void dns_chase_bad(struct dns_chase *chase, struct dns_answer *answer,
                          const char *reason)
{
    log_warning("event=dns-bad-cname name=%s type=%s at=%s hops=%u "
                "reason=\"%s\"", chase->name, dns_type_name(chase->type),
                chase->current, chase->hops, reason);
    memset(answer, 0, offsetof(struct dns_answer, records));
    answer->status = DNS_ANSWER_BAD_CNAME;
}

/* dns_chase_follow moves the chase to the target of a CNAME answer.
 * Returns false, with answer set to BAD_CNAME, when it may not. */
static bool dns_chase_follow(struct dns_chase *chase,
                             struct dns_answer *answer)
{
    const char *target = answer->records[0].name;

    if (chase->queried_names == NULL) {
        chase->queried_names = calloc(DNS_CNAME_MAX_HOPS + 1,
                                    sizeof(*chase->queried_names));
        if (chase->queried_names == NULL) {
            dns_chase_bad(chase, answer, "out of memory");
            answer->status = DNS_ANSWER_TEMPFAIL;
            return false;
        }
        strcpy(chase->queried_names[0], chase->current);
        chase->queried_count = 1;
    }
    if (dns_chase_was_queried(chase, target)) {
        dns_chase_bad(chase, answer, "CNAME loop");
        return false;
    }
    /* hops grows by at least one per name, so queried_names stays in bounds. */
    strcpy(chase->queried_names[chase->queried_count++], target);
    strcpy(chase->current, target);
    return true;
}

/* dns_chase_step folds one answer, for chase->current, into the chase.
 * Returns true when the chase moved on to another name, false when
 * answer is final: its TTL and AD bit then cover the whole chain. */
static bool dns_chase_step(struct dns_chase *chase, struct dns_answer *answer)
{
    chase->hops += answer->cname_hops;
    chase->authenticated = chase->authenticated && answer->authenticated;
    if (answer->ttl < chase->ttl) {
        chase->ttl = answer->ttl;
    }

    if (chase->hops > DNS_CNAME_MAX_HOPS) {
        dns_chase_bad(chase, answer, "CNAME chain too long");
        return false;
    }
    switch (answer->status) {
    case DNS_ANSWER_CNAME:
        return dns_chase_follow(chase, answer);
    case DNS_ANSWER_BAD_CNAME:
        dns_chase_bad(chase, answer, "CNAME loop or chain too long in "
                      "one answer");
        return false;
    default:
        answer->ttl = chase->ttl;
        answer->authenticated = chase->authenticated;
        answer->cname_hops = (uint8_t)chase->hops;
        return false;
    }
}

/* dns_chase_run follows the chain through the cache as far as it
 * reaches, then joins or starts a query. Returns 1 when a query runs, 0
 * with *answer final. */
static int dns_chase_run(struct dns_chase *chase, struct dns_answer *answer)
{
    struct dns_chase_env *env = chase->env;
    int rc;

    for (;;) {
        if (!dns_cache_get(env->cache, chase->current, chase->type,
                           reactor_now_ms(env->reactor), answer)) {
            break;
        }
        if (!dns_chase_step(chase, answer)) {
            return 0;
        }
    }

    rc = dns_flight_join(env, chase->current, chase->type, &chase->waiter,
                         dns_chase_on_query, chase);
    if (rc < 0) {
        log_warning("event=dns-query name=%s error=\"query start failed: "
                    "%s\"", chase->current, strerror(-rc));
        memset(answer, 0, offsetof(struct dns_answer, records));
        answer->status = DNS_ANSWER_TEMPFAIL;
        return 0;
    }
    return 1;
}

/* dns_chase_on_query takes the answer of a query in flight, which
 * dns_flight.c has already stored in the cache. */
static void dns_chase_on_query(void *arg, const struct dns_answer *result)
{
    struct dns_chase *chase = arg;
    struct dns_answer answer = *result;

    if (dns_chase_step(chase, &answer) && dns_chase_run(chase, &answer)) {
        return;
    }
    dns_chase_release(chase);
    chase->fn(chase->arg, &answer);
}

int dns_chase_start(struct dns_chase *chase, struct dns_chase_env *env,
                    const char *name, uint16_t type, dns_chase_fn fn,
                    void *arg, struct dns_answer *answer)
{
    int rc;

    if (strlen(name) >= sizeof(chase->name)) {
        return -EINVAL;
    }
    chase->env = env;
    chase->fn = fn;
    chase->arg = arg;
    chase->type = type;
    strcpy(chase->name, name);
    strcpy(chase->current, name);
    chase->hops = 0;
    chase->ttl = UINT32_MAX;
    chase->authenticated = true;
    chase->queried_count = 0;
    chase->queried_names = NULL;
    memset(&chase->waiter, 0, sizeof(chase->waiter));

    rc = dns_chase_run(chase, answer);
    if (rc == 0) {
        dns_chase_release(chase);
    }
    return rc;
}

void dns_chase_cancel(struct dns_chase *chase)
{
    dns_flight_leave(&chase->waiter);
    dns_chase_release(chase);
}
