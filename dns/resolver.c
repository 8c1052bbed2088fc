/* MX and host lookups built from single queries (dns_query.c), with the
 * answer cache in front of them.
 *
 * A request runs in two steps: the MX query of the domain, then A and
 * AAAA queries for every MX host in parallel. Each request starts from a
 * zero-delay timer, so its callback never runs inside dns_resolve_*, even
 * when every answer is cached. */
#include "dns/resolver.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/reactor.h"
#include "dns/dns_cache.h"
#include "dns/dns_mx.h"
#include "dns/dns_packet.h"
#include "dns/dns_query.h"

#define DNS_CACHE_MAX_ENTRIES 4096

struct dns_resolver {
    struct reactor *reactor;
    struct dns_options opts;
    struct dns_cache *cache;
    struct dns_request *requests; /* pending, for dns_resolver_free */
};

/* dns_addr_lookup: the A or AAAA lookup of one host of a request. */
struct dns_addr_lookup {
    struct dns_request *request;
    struct dns_query *query; /* NULL unless a query is running */
    uint16_t type;
    enum dns_answer_status status;
    size_t count;
    uint8_t addrs[DNS_MAX_ADDRS][16];
};

/* DNS_ADDR_TYPES: the lookups of one host, A first. */
#define DNS_ADDR_TYPES 2

struct dns_request {
    struct dns_resolver *resolver;
    struct dns_request *prev;
    struct dns_request *next;
    dns_mx_fn fn;
    void *arg;
    bool host_only; /* dns_resolve_host: no MX step */
    char domain[DNS_NAME_TEXT_MAX];
    struct reactor_timer start_timer;
    struct dns_query *mx_query;
    size_t pending; /* address queries still running */
    struct dns_addr_lookup lookups[DNS_MAX_MX_HOSTS][DNS_ADDR_TYPES];
    struct dns_mx_result result;
};

static void dns_request_lookup_addresses(struct dns_request *request);

int dns_resolver_new(struct dns_resolver **out, struct reactor *reactor,
                     const struct dns_options *opts)
{
    struct dns_resolver *resolver;
    int rc;

    if (reactor == NULL || opts == NULL ||
        opts->server_count > DNS_MAX_SERVERS) {
        return -EINVAL;
    }
    resolver = calloc(1, sizeof(*resolver));
    if (resolver == NULL) {
        return -ENOMEM;
    }
    rc = dns_cache_new(&resolver->cache, DNS_CACHE_MAX_ENTRIES);
    if (rc < 0) {
        free(resolver);
        return rc;
    }
    resolver->reactor = reactor;
    resolver->opts = *opts;
    *out = resolver;
    return 0;
}

void dns_resolver_free(struct dns_resolver *resolver)
{
    if (resolver == NULL) {
        return;
    }
    while (resolver->requests != NULL) {
        dns_request_cancel(resolver->requests);
    }
    dns_cache_free(resolver->cache);
    free(resolver);
}

/* ---- Request life cycle ------------------------------------------------ */

static void dns_request_unlink(struct dns_request *request)
{
    struct dns_resolver *resolver = request->resolver;

    if (request->prev != NULL) {
        request->prev->next = request->next;
    } else {
        resolver->requests = request->next;
    }
    if (request->next != NULL) {
        request->next->prev = request->prev;
    }
    request->prev = NULL;
    request->next = NULL;
}

/* dns_request_finish unlinks and frees request after its callback. The
 * callback may cancel other requests or free the resolver, so neither is
 * touched after it. */
static void dns_request_finish(struct dns_request *request,
                               enum dns_status status)
{
    request->result.status = status;
    if (status != DNS_OK) {
        request->result.host_count = 0;
    }
    log_debug("event=dns-result domain=%s status=%d hosts=%zu implicit=%d",
              request->domain, (int)status, request->result.host_count,
              (int)request->result.implicit);

    dns_request_unlink(request);
    request->fn(request->arg, &request->result);
    free(request);
}

void dns_request_cancel(struct dns_request *request)
{
    struct dns_resolver *resolver;

    if (request == NULL) {
        return;
    }
    resolver = request->resolver;
    reactor_timer_cancel(resolver->reactor, &request->start_timer);
    dns_query_cancel(request->mx_query);
    for (size_t i = 0; i < DNS_MAX_MX_HOSTS; i++) {
        for (size_t t = 0; t < DNS_ADDR_TYPES; t++) {
            dns_query_cancel(request->lookups[i][t].query);
        }
    }
    dns_request_unlink(request);
    free(request);
}

/* ---- The MX step ------------------------------------------------------- */

static void dns_request_use_mx(struct dns_request *request,
                               const struct dns_answer *answer)
{
    struct dns_mx_result *result = &request->result;

    switch (answer->status) {
    case DNS_ANSWER_RECORDS:
        if (dns_mx_is_null(answer)) {
            dns_request_finish(request, DNS_NULLMX);
            return;
        }
        dns_mx_select(answer, result);
        if (result->host_count == 0) {
            dns_request_finish(request, DNS_NOTFOUND);
            return;
        }
        dns_request_lookup_addresses(request);
        return;
    case DNS_ANSWER_NODATA:
        /* RFC 5321 section 5.1: with no MX, the domain itself is the
         * only host, at preference 0. */
        result->implicit = true;
        result->host_count = 1;
        strcpy(result->hosts[0].name, request->domain);
        dns_request_lookup_addresses(request);
        return;
    case DNS_ANSWER_NXDOMAIN:
        dns_request_finish(request, DNS_NOTFOUND);
        return;
    default:
        dns_request_finish(request, DNS_TEMPFAIL);
        return;
    }
}

static void dns_request_on_mx(void *arg, const struct dns_answer *answer)
{
    struct dns_request *request = arg;
    struct dns_resolver *resolver = request->resolver;
    int rc;

    request->mx_query = NULL;
    rc = dns_cache_put(resolver->cache, request->domain, DNS_TYPE_MX, answer,
                       reactor_now_ms(resolver->reactor));
    if (rc < 0) {
        log_warning("event=dns-cache name=%s error=\"cache store failed: "
                    "%s\"", request->domain, strerror(-rc));
    }
    dns_request_use_mx(request, answer);
}

static void dns_request_fire(struct reactor_timer *timer)
{
    struct dns_request *request = timer->owner;
    struct dns_resolver *resolver = request->resolver;
    struct dns_answer answer;
    int rc;

    if (request->host_only) {
        request->result.implicit = true;
        request->result.host_count = 1;
        strcpy(request->result.hosts[0].name, request->domain);
        dns_request_lookup_addresses(request);
        return;
    }

    if (dns_cache_get(resolver->cache, request->domain, DNS_TYPE_MX,
                      reactor_now_ms(resolver->reactor), &answer)) {
        dns_request_use_mx(request, &answer);
        return;
    }
    rc = dns_query_start(&request->mx_query, resolver->reactor,
                         &resolver->opts, request->domain, DNS_TYPE_MX,
                         dns_request_on_mx, request);
    if (rc < 0) {
        log_warning("event=dns-query name=%s error=\"query start failed: "
                    "%s\"", request->domain, strerror(-rc));
        dns_request_finish(request, DNS_TEMPFAIL);
    }
}

/* ---- The address step -------------------------------------------------- */

static void dns_addr_lookup_store(struct dns_addr_lookup *lookup,
                                  const struct dns_answer *answer)
{
    size_t want = lookup->type == DNS_TYPE_A ? 4 : 16;

    lookup->status = answer->status;
    lookup->count = 0;
    for (size_t i = 0; i < answer->count; i++) {
        const struct dns_record *record = &answer->records[i];

        if (lookup->count == DNS_MAX_ADDRS) {
            break;
        }
        if (record->addr_len == want) {
            memcpy(lookup->addrs[lookup->count], record->addr, want);
            lookup->count++;
        }
    }
}

/* dns_request_complete_addresses keeps the hosts that have an address,
 * in MX order, and decides the request's status. */
static void dns_request_complete_addresses(struct dns_request *request)
{
    struct dns_mx_result *result = &request->result;
    size_t kept = 0;
    bool tempfail = false;

    for (size_t i = 0; i < result->host_count; i++) {
        struct dns_addr_lookup *v4 = &request->lookups[i][0];
        struct dns_addr_lookup *v6 = &request->lookups[i][1];
        struct dns_mx_host *host = &result->hosts[i];

        if (v4->status == DNS_ANSWER_TEMPFAIL ||
            v6->status == DNS_ANSWER_TEMPFAIL) {
            tempfail = true;
        }
        dns_mx_fill_addresses(host, v4->addrs, v4->count, v6->addrs,
                              v6->count);
        if (host->addr_count == 0) {
            continue;
        }
        if (kept != i) {
            result->hosts[kept] = *host;
        }
        kept++;
    }
    result->host_count = kept;

    /* A host whose lookup failed may yet have addresses, so the domain
     * counts as not found only when every lookup was definite. */
    if (kept > 0) {
        dns_request_finish(request, DNS_OK);
    } else if (tempfail) {
        dns_request_finish(request, DNS_TEMPFAIL);
    } else {
        dns_request_finish(request, DNS_NOTFOUND);
    }
}

static void dns_request_on_addr(void *arg, const struct dns_answer *answer)
{
    struct dns_addr_lookup *lookup = arg;
    struct dns_request *request = lookup->request;
    struct dns_resolver *resolver = request->resolver;
    size_t host = (size_t)(lookup - &request->lookups[0][0]) /
                  DNS_ADDR_TYPES;
    int rc;

    lookup->query = NULL;
    dns_addr_lookup_store(lookup, answer);
    rc = dns_cache_put(resolver->cache, request->result.hosts[host].name,
                       lookup->type, answer,
                       reactor_now_ms(resolver->reactor));
    if (rc < 0) {
        log_warning("event=dns-cache name=%s error=\"cache store failed: "
                    "%s\"", request->result.hosts[host].name, strerror(-rc));
    }

    request->pending--;
    if (request->pending == 0) {
        dns_request_complete_addresses(request);
    }
}

/* dns_addr_lookup_start answers lookup from the cache or starts its
 * query; a query that cannot start counts as a temporary failure. */
static void dns_addr_lookup_start(struct dns_request *request,
                                  struct dns_addr_lookup *lookup,
                                  const char *name)
{
    struct dns_resolver *resolver = request->resolver;
    struct dns_answer answer;
    int rc;

    if (dns_cache_get(resolver->cache, name, lookup->type,
                      reactor_now_ms(resolver->reactor), &answer)) {
        dns_addr_lookup_store(lookup, &answer);
        return;
    }
    rc = dns_query_start(&lookup->query, resolver->reactor, &resolver->opts,
                         name, lookup->type, dns_request_on_addr, lookup);
    if (rc < 0) {
        log_warning("event=dns-query name=%s error=\"query start failed: "
                    "%s\"", name, strerror(-rc));
        lookup->query = NULL;
        lookup->status = DNS_ANSWER_TEMPFAIL;
        return;
    }
    request->pending++;
}

static void dns_request_lookup_addresses(struct dns_request *request)
{
    static const uint16_t types[DNS_ADDR_TYPES] = {
        DNS_TYPE_A, DNS_TYPE_AAAA,
    };

    for (size_t i = 0; i < request->result.host_count; i++) {
        for (size_t t = 0; t < DNS_ADDR_TYPES; t++) {
            struct dns_addr_lookup *lookup = &request->lookups[i][t];

            lookup->request = request;
            lookup->type = types[t];
            dns_addr_lookup_start(request, lookup,
                                  request->result.hosts[i].name);
        }
    }

    /* With everything cached no query runs, and the request ends now;
     * this runs from a timer or a query callback, never from
     * dns_resolve_*. */
    if (request->pending == 0) {
        dns_request_complete_addresses(request);
    }
}

/* ---- Starting requests ------------------------------------------------- */

static int dns_request_new(struct dns_resolver *resolver, const char *name,
                           bool host_only, dns_mx_fn fn, void *arg,
                           struct dns_request **out)
{
    struct dns_request *request;
    char normalized[DNS_NAME_TEXT_MAX];

    if (resolver == NULL || name == NULL || fn == NULL ||
        dns_name_normalize(normalized, name) < 0) {
        return -EINVAL;
    }
    request = calloc(1, sizeof(*request));
    if (request == NULL) {
        return -ENOMEM;
    }
    request->resolver = resolver;
    request->fn = fn;
    request->arg = arg;
    request->host_only = host_only;
    strcpy(request->domain, normalized);
    request->start_timer.fire = dns_request_fire;
    request->start_timer.owner = request;

    request->next = resolver->requests;
    if (resolver->requests != NULL) {
        resolver->requests->prev = request;
    }
    resolver->requests = request;
    reactor_timer_set(resolver->reactor, &request->start_timer, 0);

    if (out != NULL) {
        *out = request;
    }
    return 0;
}

int dns_resolve_mx(struct dns_resolver *resolver, const char *domain,
                   dns_mx_fn fn, void *arg, struct dns_request **request)
{
    return dns_request_new(resolver, domain, false, fn, arg, request);
}

int dns_resolve_host(struct dns_resolver *resolver, const char *host,
                     dns_mx_fn fn, void *arg, struct dns_request **request)
{
    return dns_request_new(resolver, host, true, fn, arg, request);
}
