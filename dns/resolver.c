/* MX, host and TLSA lookups built from lookups of one (name, type) each
 * (dns_chase.c), which go through the answer cache and follow CNAMEs.
 *
 * An MX request runs in two steps: the MX lookup of the domain, then A
 * and AAAA lookups for every MX host in parallel. A TLSA request is one
 * lookup. Each request starts from a zero-delay timer, so its callback
 * never runs inside dns_resolve_*, even when every answer is cached. */
#include "dns/resolver.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include "core/log.h"
#include "core/reactor.h"
#include "dns/dns_cache.h"
#include "dns/dns_chase.h"
#include "dns/dns_limit.h"
#include "dns/dns_mx.h"
#include "dns/dns_packet.h"
#include "dns/dns_query.h"

#define DNS_CACHE_MAX_ENTRIES 4096

_Static_assert(DNS_TLSA_DATA_BYTES == DNS_TLSA_DATA_MAX,
               "a TLSA result must hold every record an answer keeps");

struct dns_resolver {
    struct reactor *reactor;
    struct dns_options opts;
    struct dns_cache *cache;
    struct dns_limit limit;   /* queries in flight, and those queued */
    struct dns_chase_env env; /* points at the four above */
    struct dns_request *requests; /* pending, for dns_resolver_free */
};

/* dns_addr_lookup: the A or AAAA lookup of one host of a request. */
struct dns_addr_lookup {
    struct dns_request *request;
    struct dns_chase chase;
    uint16_t type;
    enum dns_answer_status status;
    size_t count;
    uint8_t addrs[DNS_MAX_ADDRS][16];
};

/* DNS_ADDR_TYPES: the lookups of one host, A first. */
#define DNS_ADDR_TYPES 2

enum dns_request_kind {
    DNS_REQUEST_MX,   /* dns_resolve_mx */
    DNS_REQUEST_HOST, /* dns_resolve_host: no MX step */
    DNS_REQUEST_TLSA, /* dns_resolve_tlsa */
};

struct dns_request {
    struct dns_resolver *resolver;
    struct dns_request *prev;
    struct dns_request *next;
    enum dns_request_kind kind;
    dns_mx_fn fn;
    dns_tlsa_fn tlsa_fn;
    void *arg;
    char domain[DNS_NAME_TEXT_MAX]; /* TLSA: the _PORT._tcp name */
    struct reactor_timer start_timer;
    struct dns_chase chase; /* the MX or TLSA lookup */
    size_t pending; /* address lookups still running */
    struct dns_addr_lookup lookups[DNS_MAX_MX_HOSTS][DNS_ADDR_TYPES];
    struct dns_mx_result result;
    struct dns_tlsa_result tlsa;
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
    resolver->env.reactor = reactor;
    resolver->env.opts = &resolver->opts;
    resolver->env.cache = resolver->cache;
    dns_limit_init(&resolver->limit, opts->max_queries
                                         ? opts->max_queries
                                         : DNS_DEFAULT_MAX_QUERIES);
    resolver->env.limit = &resolver->limit;
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

static const char *dns_status_name(enum dns_status status)
{
    switch (status) {
    case DNS_OK:
        return "ok";
    case DNS_TEMPFAIL:
        return "tempfail";
    case DNS_NOTFOUND:
        return "notfound";
    case DNS_NULLMX:
        return "nullmx";
    }
    return "unknown";
}

/* dns_answer_definite tells answers that settle a lookup from failures
 * that a later retry may not repeat. */
static bool dns_answer_definite(enum dns_answer_status status)
{
    return status == DNS_ANSWER_RECORDS || status == DNS_ANSWER_NODATA ||
           status == DNS_ANSWER_NXDOMAIN;
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
    log_debug("event=dns-result domain=%s status=%s hosts=%zu implicit=%d "
              "ad=%d", request->domain, dns_status_name(status),
              request->result.host_count, (int)request->result.implicit,
              (int)request->result.authenticated);

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
    dns_chase_cancel(&request->chase);
    for (size_t i = 0; i < DNS_MAX_MX_HOSTS; i++) {
        for (size_t t = 0; t < DNS_ADDR_TYPES; t++) {
            dns_chase_cancel(&request->lookups[i][t].chase);
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

    result->authenticated = answer->authenticated;
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
    dns_request_use_mx(arg, answer);
}

/* ---- The TLSA lookup --------------------------------------------------- */

static void dns_request_finish_tlsa(struct dns_request *request,
                                    enum dns_status status)
{
    struct dns_tlsa_result *tlsa = &request->tlsa;

    tlsa->status = status;
    log_debug("event=dns-tlsa name=%s status=%s records=%zu skipped=%zu "
              "ad=%d", request->domain, dns_status_name(status),
              tlsa->count, tlsa->skipped, (int)tlsa->authenticated);

    dns_request_unlink(request);
    request->tlsa_fn(request->arg, tlsa);
    free(request);
}

static void dns_request_use_tlsa(struct dns_request *request,
                                 const struct dns_answer *answer)
{
    struct dns_tlsa_result *tlsa = &request->tlsa;

    tlsa->authenticated = answer->authenticated;
    switch (answer->status) {
    case DNS_ANSWER_RECORDS:
        tlsa->skipped = answer->skipped;
        for (size_t i = 0; i < answer->count; i++) {
            const struct dns_record *record = &answer->records[i];
            struct dns_tlsa_record *out = &tlsa->records[tlsa->count];

            if (tlsa->count == DNS_MAX_TLSA_RECORDS) {
                tlsa->skipped += answer->count - i;
                break;
            }
            out->usage = record->tlsa_usage;
            out->selector = record->tlsa_selector;
            out->matching_type = record->tlsa_matching_type;
            out->data_len = record->data_len;
            memcpy(out->data, record->data, record->data_len);
            tlsa->count++;
        }
        dns_request_finish_tlsa(request, DNS_OK);
        return;
    case DNS_ANSWER_NODATA:
    case DNS_ANSWER_NXDOMAIN:
        dns_request_finish_tlsa(request, DNS_NOTFOUND);
        return;
    default:
        dns_request_finish_tlsa(request, DNS_TEMPFAIL);
        return;
    }
}

static void dns_request_on_tlsa(void *arg, const struct dns_answer *answer)
{
    dns_request_use_tlsa(arg, answer);
}

/* ---- Starting the first step ------------------------------------------- */

static void dns_request_fire(struct reactor_timer *timer)
{
    struct dns_request *request = timer->owner;
    struct dns_resolver *resolver = request->resolver;
    bool tlsa = request->kind == DNS_REQUEST_TLSA;
    struct dns_answer answer;
    int rc;

    if (request->kind == DNS_REQUEST_HOST) {
        request->result.implicit = true;
        request->result.host_count = 1;
        strcpy(request->result.hosts[0].name, request->domain);
        dns_request_lookup_addresses(request);
        return;
    }

    rc = dns_chase_start(&request->chase, &resolver->env, request->domain,
                         tlsa ? DNS_TYPE_TLSA : DNS_TYPE_MX,
                         tlsa ? dns_request_on_tlsa : dns_request_on_mx,
                         request, &answer);
    if (rc == 1) {
        return;
    }
    if (rc < 0) {
        memset(&answer, 0, offsetof(struct dns_answer, records));
        answer.status = DNS_ANSWER_TEMPFAIL;
    }
    if (tlsa) {
        dns_request_use_tlsa(request, &answer);
    } else {
        dns_request_use_mx(request, &answer);
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
    size_t listed = result->host_count;
    size_t kept = 0;
    bool tempfail = false;

    for (size_t i = 0; i < result->host_count; i++) {
        struct dns_addr_lookup *v4 = &request->lookups[i][0];
        struct dns_addr_lookup *v6 = &request->lookups[i][1];
        struct dns_mx_host *host = &result->hosts[i];

        if (!dns_answer_definite(v4->status) ||
            !dns_answer_definite(v6->status)) {
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
        /* With no host kept, hosts[0] still is the first MX host. */
        if (!result->implicit && listed > 0) {
            result->missing_hosts = listed;
            snprintf(result->missing_host, sizeof(result->missing_host),
                     "%s", result->hosts[0].name);
        }
        dns_request_finish(request, DNS_NOTFOUND);
    }
}

static void dns_request_on_addr(void *arg, const struct dns_answer *answer)
{
    struct dns_addr_lookup *lookup = arg;
    struct dns_request *request = lookup->request;

    dns_addr_lookup_store(lookup, answer);
    request->pending--;
    if (request->pending == 0) {
        dns_request_complete_addresses(request);
    }
}

/* dns_addr_lookup_start answers lookup from the cache or starts its
 * queries; a lookup that cannot start counts as a temporary failure. */
static void dns_addr_lookup_start(struct dns_request *request,
                                  struct dns_addr_lookup *lookup,
                                  const char *name)
{
    struct dns_answer answer;
    int rc;

    rc = dns_chase_start(&lookup->chase, &request->resolver->env, name,
                         lookup->type, dns_request_on_addr, lookup,
                         &answer);
    if (rc == 1) {
        request->pending++;
        return;
    }
    if (rc < 0) {
        memset(&answer, 0, offsetof(struct dns_answer, records));
        answer.status = DNS_ANSWER_TEMPFAIL;
    }
    dns_addr_lookup_store(lookup, &answer);
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
                           enum dns_request_kind kind, void *arg,
                           struct dns_request **out)
{
    struct dns_request *request;
    char normalized[DNS_NAME_TEXT_MAX];

    if (resolver == NULL || name == NULL ||
        dns_name_normalize(normalized, name) < 0) {
        return -EINVAL;
    }
    request = calloc(1, sizeof(*request));
    if (request == NULL) {
        return -ENOMEM;
    }
    request->resolver = resolver;
    request->kind = kind;
    request->arg = arg;
    strcpy(request->domain, normalized);
    request->start_timer.fire = dns_request_fire;
    request->start_timer.owner = request;

    request->next = resolver->requests;
    if (resolver->requests != NULL) {
        resolver->requests->prev = request;
    }
    resolver->requests = request;
    reactor_timer_set(resolver->reactor, &request->start_timer, 0);
    *out = request;
    return 0;
}

int dns_resolve_mx(struct dns_resolver *resolver, const char *domain,
                   dns_mx_fn fn, void *arg, struct dns_request **request)
{
    struct dns_request *made;
    int rc;

    if (fn == NULL) {
        return -EINVAL;
    }
    rc = dns_request_new(resolver, domain, DNS_REQUEST_MX, arg, &made);
    if (rc == 0) {
        made->fn = fn;
        if (request != NULL) {
            *request = made;
        }
    }
    return rc;
}

int dns_resolve_host(struct dns_resolver *resolver, const char *host,
                     dns_mx_fn fn, void *arg, struct dns_request **request)
{
    struct dns_request *made;
    int rc;

    if (fn == NULL) {
        return -EINVAL;
    }
    rc = dns_request_new(resolver, host, DNS_REQUEST_HOST, arg, &made);
    if (rc == 0) {
        made->fn = fn;
        if (request != NULL) {
            *request = made;
        }
    }
    return rc;
}

int dns_resolve_tlsa(struct dns_resolver *resolver, const char *host,
                     uint16_t port, dns_tlsa_fn fn, void *arg,
                     struct dns_request **request)
{
    char name[DNS_NAME_TEXT_MAX + 16];
    struct dns_request *made;
    int rc;

    if (fn == NULL || host == NULL || port == 0) {
        return -EINVAL;
    }
    /* RFC 6698 section 3: the TLSA owner name is _PORT._tcp.HOST. */
    rc = snprintf(name, sizeof(name), "_%u._tcp.%s", (unsigned)port, host);
    if (rc < 0 || (size_t)rc >= sizeof(name)) {
        return -EINVAL;
    }
    rc = dns_request_new(resolver, name, DNS_REQUEST_TLSA, arg, &made);
    if (rc == 0) {
        made->tlsa_fn = fn;
        if (request != NULL) {
            *request = made;
        }
    }
    return rc;
}
