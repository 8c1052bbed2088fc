/* Resolver tests against a real name server (ldns-testns), through the
 * real reactor. tests/integration/dns_live.sh starts the server with
 * tests/integration/resolver_zone.data in a private network namespace and
 * sets RINGRELAY_TEST_DNS=ADDRESS:PORT, and RINGRELAY_TEST_DNS_LOG to the
 * server's log of queries; without them every test is skipped. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/reactor.h"
#include "dns/resolver.h"

/* Upper bound for one resolution against the local test server. */
#define LIVE_GUARD_MS 5000

struct live {
    struct reactor *reactor;
    struct dns_resolver *resolver;
    struct reactor_timer guard;
    struct dns_mx_result result;
    struct dns_tlsa_result tlsa;
    int calls;
    bool timed_out;
};

static struct live live;

static void live_guard_fire(struct reactor_timer *timer)
{
    (void)timer;
    live.timed_out = true;
    reactor_stop(live.reactor);
}

static void live_done(void *arg, const struct dns_mx_result *result)
{
    (void)arg;
    live.result = *result;
    live.calls++;
    reactor_stop(live.reactor);
}

static void live_tlsa_done(void *arg, const struct dns_tlsa_result *result)
{
    (void)arg;
    live.tlsa = *result;
    live.calls++;
    reactor_stop(live.reactor);
}

static void live_server(struct dns_options *opts)
{
    const char *env = getenv("RINGRELAY_TEST_DNS");
    char host[64];
    const char *colon;
    struct sockaddr_in *sin = (struct sockaddr_in *)&opts->servers[0];

    if (env == NULL) {
        cr_skip_test("RINGRELAY_TEST_DNS is not set");
    }
    colon = strrchr(env, ':');
    cr_assert_not_null(colon, "RINGRELAY_TEST_DNS=%s needs ADDRESS:PORT",
                       env);
    cr_assert_lt((size_t)(colon - env), sizeof(host));
    memcpy(host, env, (size_t)(colon - env));
    host[colon - env] = '\0';

    memset(opts, 0, sizeof(*opts));
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)atoi(colon + 1));
    cr_assert_eq(inet_pton(AF_INET, host, &sin->sin_addr), 1,
                 "RINGRELAY_TEST_DNS=%s is not IPv4", env);
    opts->server_lens[0] = sizeof(*sin);
    opts->server_count = 1;
    opts->timeout_ms = 500;
    opts->attempts = 2;
}

static void live_setup(void)
{
    struct dns_options opts;

    live_server(&opts);
    cr_assert_eq(reactor_new(&live.reactor, NULL), 0);
    cr_assert_eq(dns_resolver_new(&live.resolver, live.reactor, &opts), 0);
    live.guard.fire = live_guard_fire;
}

/* live_teardown lets the reactor deliver cancellations of sockets still
 * open, so their memory is freed before the reactor goes. */
static void live_teardown(void)
{
    if (live.reactor == NULL) {
        return;
    }
    dns_resolver_free(live.resolver);
    reactor_timer_set(live.reactor, &live.guard, 50);
    reactor_run(live.reactor);
    reactor_timer_cancel(live.reactor, &live.guard);
    reactor_free(live.reactor);
}

/* live_wait runs the reactor until the callback or the guard. */
static void live_wait(void)
{
    reactor_timer_set(live.reactor, &live.guard, LIVE_GUARD_MS);
    cr_assert_eq(reactor_run(live.reactor), 0);
    reactor_timer_cancel(live.reactor, &live.guard);
    cr_assert(!live.timed_out, "no result within %d ms", LIVE_GUARD_MS);
}

static void live_resolve_mx(const char *domain)
{
    live.calls = 0;
    cr_assert_eq(dns_resolve_mx(live.resolver, domain, live_done, NULL,
                                NULL), 0);
    cr_assert_eq(live.calls, 0, "callback ran inside dns_resolve_mx");
    live_wait();
    cr_assert_eq(live.calls, 1);
}

static void assert_loopback(const struct dns_mx_host *host)
{
    const struct sockaddr_in *sin =
        (const struct sockaddr_in *)&host->addrs[0];

    cr_assert_eq(host->addr_count, 1);
    cr_assert_eq(sin->sin_family, AF_INET);
    cr_assert_eq(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
    cr_assert_eq(sin->sin_port, 0);
}

TestSuite(dns_live, .init = live_setup, .fini = live_teardown);

Test(dns_live, mx_host_and_address)
{
    live_resolve_mx("example.test");
    cr_assert_eq(live.result.status, DNS_OK);
    cr_assert(!live.result.implicit);
    cr_assert_eq(live.result.host_count, 1);
    cr_assert_str_eq(live.result.hosts[0].name, "mx1.example.test");
    cr_assert_eq(live.result.hosts[0].preference, 10);
    assert_loopback(&live.result.hosts[0]);
}

Test(dns_live, second_lookup_same_result)
{
    live_resolve_mx("Example.Test.");
    cr_assert_eq(live.result.status, DNS_OK);
    live_resolve_mx("example.test");
    cr_assert_eq(live.result.status, DNS_OK);
    cr_assert_str_eq(live.result.hosts[0].name, "mx1.example.test");
    assert_loopback(&live.result.hosts[0]);
}

Test(dns_live, implicit_mx)
{
    live_resolve_mx("implicit.test");
    cr_assert_eq(live.result.status, DNS_OK);
    cr_assert(live.result.implicit);
    cr_assert_eq(live.result.host_count, 1);
    cr_assert_str_eq(live.result.hosts[0].name, "implicit.test");
    assert_loopback(&live.result.hosts[0]);
}

Test(dns_live, null_mx)
{
    live_resolve_mx("nullmx.test");
    cr_assert_eq(live.result.status, DNS_NULLMX);
    cr_assert_eq(live.result.host_count, 0);
}

Test(dns_live, nxdomain_not_found)
{
    live_resolve_mx("nx.test");
    cr_assert_eq(live.result.status, DNS_NOTFOUND);
}

Test(dns_live, servfail_tempfail)
{
    live_resolve_mx("servfail.test");
    cr_assert_eq(live.result.status, DNS_TEMPFAIL);
}

Test(dns_live, truncated_answer_retried_over_tcp)
{
    live_resolve_mx("truncated.test");
    cr_assert_eq(live.result.status, DNS_OK);
    cr_assert_eq(live.result.host_count, 1);
    cr_assert_str_eq(live.result.hosts[0].name, "mx1.example.test");
    cr_assert_eq(live.result.hosts[0].preference, 10);
    assert_loopback(&live.result.hosts[0]);
}

Test(dns_live, truncated_over_tcp_tempfail)
{
    live_resolve_mx("alwaystc.test");
    cr_assert_eq(live.result.status, DNS_TEMPFAIL);
}

Test(dns_live, resolve_host)
{
    live.calls = 0;
    cr_assert_eq(dns_resolve_host(live.resolver, "mx1.example.test",
                                  live_done, NULL, NULL), 0);
    live_wait();
    cr_assert_eq(live.calls, 1);
    cr_assert_eq(live.result.status, DNS_OK);
    cr_assert(live.result.implicit);
    cr_assert_str_eq(live.result.hosts[0].name, "mx1.example.test");
    assert_loopback(&live.result.hosts[0]);
}

Test(dns_live, cancelled_request_never_calls)
{
    struct dns_request *request = NULL;

    live.calls = 0;
    cr_assert_eq(dns_resolve_mx(live.resolver, "example.test", live_done,
                                NULL, &request), 0);
    cr_assert_not_null(request);
    dns_request_cancel(request);

    /* Nothing may call back; the guard ends the run. */
    reactor_timer_set(live.reactor, &live.guard, 300);
    cr_assert_eq(reactor_run(live.reactor), 0);
    cr_assert(live.timed_out);
    cr_assert_eq(live.calls, 0);
}

Test(dns_live, free_with_pending_requests)
{
    live.calls = 0;
    cr_assert_eq(dns_resolve_mx(live.resolver, "example.test", live_done,
                                NULL, NULL), 0);
    cr_assert_eq(dns_resolve_mx(live.resolver, "implicit.test", live_done,
                                NULL, NULL), 0);

    /* The first turn starts the requests and the second their queries,
     * so sockets are open at the free. */
    for (int turn = 0; turn < 2; turn++) {
        reactor_timer_set(live.reactor, &live.guard, 0);
        cr_assert_eq(reactor_run(live.reactor), 0);
    }
    cr_assert_eq(live.calls, 0);
    dns_resolver_free(live.resolver);
    live.resolver = NULL;

    reactor_timer_set(live.reactor, &live.guard, 300);
    cr_assert_eq(reactor_run(live.reactor), 0);
    cr_assert_eq(live.calls, 0);
}

/* ---- Preferences, CNAMEs, negative caching and TLSA ------------------ */

static void live_resolve_tlsa(const char *host)
{
    live.calls = 0;
    cr_assert_eq(dns_resolve_tlsa(live.resolver, host, 25, live_tlsa_done,
                                  NULL, NULL), 0);
    cr_assert_eq(live.calls, 0, "callback ran inside dns_resolve_tlsa");
    live_wait();
    cr_assert_eq(live.calls, 1);
}

/* count_queries returns how many queries for "NAME.\tIN\tTYPE" the name
 * server logged. */
static int count_queries(const char *name, const char *type)
{
    const char *path = getenv("RINGRELAY_TEST_DNS_LOG");
    char needle[300];
    char line[1024];
    int count = 0;
    FILE *log;

    cr_assert_not_null(path, "RINGRELAY_TEST_DNS_LOG is not set");
    snprintf(needle, sizeof(needle), ": %s.\tIN\t%s\n", name, type);
    log = fopen(path, "r");
    cr_assert_not_null(log, "cannot open %s: %s", path, strerror(errno));
    while (fgets(line, sizeof(line), log) != NULL) {
        if (strncmp(line, "query ", 6) == 0 && strstr(line, needle)) {
            count++;
        }
    }
    fclose(log);
    return count;
}

static void assert_ipv4(const struct sockaddr_storage *addr, const char *ip)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;
    struct in_addr expected;

    cr_assert_eq(inet_pton(AF_INET, ip, &expected), 1);
    cr_assert_eq(sin->sin_family, AF_INET);
    cr_assert_eq(sin->sin_addr.s_addr, expected.s_addr, "expected %s", ip);
}

static void assert_ipv6(const struct sockaddr_storage *addr, const char *ip)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)addr;
    struct in6_addr expected;

    cr_assert_eq(inet_pton(AF_INET6, ip, &expected), 1);
    cr_assert_eq(sin6->sin6_family, AF_INET6);
    cr_assert_eq(memcmp(&sin6->sin6_addr, &expected, sizeof(expected)), 0,
                 "expected %s", ip);
}

Test(dns_live, preferences_ordered_ties_shuffled)
{
    bool first_seen[3] = {false, false, false};
    int distinct = 0;

    /* Each lookup shuffles again, though all but the first come from the
     * cache (TTL 300 seconds). The same b host comes first in all 30
     * lookups with probability 3 * (1/3)^30, about 1.5e-14. */
    for (int round = 0; round < 30; round++) {
        const struct dns_mx_host *hosts = live.result.hosts;

        live_resolve_mx("prefs.test");
        cr_assert_eq(live.result.status, DNS_OK);
        cr_assert_eq(live.result.host_count, 5);
        cr_assert_str_eq(hosts[0].name, "a.prefs.test");
        cr_assert_eq(hosts[0].preference, 10);
        for (int i = 1; i <= 3; i++) {
            cr_assert_eq(hosts[i].preference, 20);
            cr_assert_eq(strncmp(hosts[i].name, "b", 1), 0);
        }
        cr_assert_str_eq(hosts[4].name, "c.prefs.test");
        cr_assert_eq(hosts[4].preference, 30);
        first_seen[hosts[1].name[1] - '1'] = true;
    }
    for (int i = 0; i < 3; i++) {
        distinct += first_seen[i];
    }
    cr_assert_geq(distinct, 2, "equal preferences were never shuffled");
}

Test(dns_live, ipv4_then_ipv6_addresses)
{
    live_resolve_mx("prefs.test");
    cr_assert_eq(live.result.status, DNS_OK);
    cr_assert_eq(live.result.hosts[0].addr_count, 2);
    assert_ipv4(&live.result.hosts[0].addrs[0], "192.0.2.1");
    assert_ipv6(&live.result.hosts[0].addrs[1], "2001:db8::1");

    for (size_t i = 1; i < 4; i++) {
        const struct dns_mx_host *host = &live.result.hosts[i];

        cr_assert_eq(host->addr_count, 1, "%s", host->name);
        if (strcmp(host->name, "b3.prefs.test") == 0) {
            assert_ipv6(&host->addrs[0], "2001:db8::23");
        }
    }
}

Test(dns_live, cname_chain_in_one_answer)
{
    live_resolve_mx("chain.test");
    cr_assert_eq(live.result.status, DNS_OK);
    cr_assert_eq(live.result.host_count, 1);
    cr_assert_str_eq(live.result.hosts[0].name, "alias.chain.test");
    assert_loopback(&live.result.hosts[0]);
}

Test(dns_live, cname_chased_across_queries)
{
    live_resolve_mx("split.test");
    cr_assert_eq(live.result.status, DNS_OK);
    cr_assert(!live.result.implicit, "the domain's CNAME target has MX");
    cr_assert_eq(live.result.host_count, 1);
    cr_assert_str_eq(live.result.hosts[0].name, "hop.split.test");
    assert_loopback(&live.result.hosts[0]);
    cr_assert_eq(count_queries("target.split.test", "MX"), 1);
    cr_assert_eq(count_queries("end.split.test", "A"), 1);
}

Test(dns_live, cname_loop_tempfail)
{
    live_resolve_mx("loop.test");
    cr_assert_eq(live.result.status, DNS_TEMPFAIL);
    cr_assert_eq(live.result.host_count, 0);
}

Test(dns_live, refused_tempfail)
{
    live_resolve_mx("refused.test");
    cr_assert_eq(live.result.status, DNS_TEMPFAIL);
}

Test(dns_live, nxdomain_cached)
{
    live_resolve_mx("nxcache.test");
    cr_assert_eq(live.result.status, DNS_NOTFOUND);
    live_resolve_mx("nxcache.test");
    cr_assert_eq(live.result.status, DNS_NOTFOUND);
    cr_assert_eq(count_queries("nxcache.test", "MX"), 1,
                 "the second lookup comes from the negative cache");
}

Test(dns_live, nodata_cached)
{
    live_resolve_mx("nodatacache.test");
    cr_assert_eq(live.result.status, DNS_OK);
    cr_assert(live.result.implicit);
    live_resolve_mx("nodatacache.test");
    cr_assert_eq(live.result.status, DNS_OK);
    cr_assert(live.result.implicit);
    cr_assert_eq(count_queries("nodatacache.test", "MX"), 1,
                 "the second lookup comes from the negative cache");
    cr_assert_eq(count_queries("nodatacache.test", "A"), 1);
}

Test(dns_live, tlsa_records_with_ad)
{
    const struct dns_tlsa_record *records = live.tlsa.records;

    live_resolve_tlsa("mx1.example.test");
    cr_assert_eq(live.tlsa.status, DNS_OK);
    cr_assert(live.tlsa.authenticated);
    cr_assert_eq(live.tlsa.count, 2);
    cr_assert_eq(live.tlsa.skipped, 0);
    cr_assert_eq(records[0].usage, 3);
    cr_assert_eq(records[0].selector, 1);
    cr_assert_eq(records[0].matching_type, 1);
    cr_assert_eq(records[0].data_len, 32);
    cr_assert_eq(records[0].data[0], 0x01);
    cr_assert_eq(records[1].usage, 2);
    cr_assert_eq(records[1].selector, 0);
    cr_assert_eq(records[1].matching_type, 2);
    cr_assert_eq(records[1].data_len, 64);
}

Test(dns_live, tlsa_records_without_ad)
{
    live_resolve_tlsa("a.prefs.test");
    cr_assert_eq(live.tlsa.status, DNS_OK);
    cr_assert(!live.tlsa.authenticated);
    cr_assert_eq(live.tlsa.count, 1);
    cr_assert_eq(live.tlsa.records[0].data[0], 0xfe);
}

Test(dns_live, tlsa_none_not_found)
{
    live_resolve_tlsa("c.prefs.test");
    cr_assert_eq(live.tlsa.status, DNS_NOTFOUND);
    cr_assert_eq(live.tlsa.count, 0);
}

Test(dns_live, mx_without_ad)
{
    live_resolve_mx("example.test");
    cr_assert_eq(live.result.status, DNS_OK);
    cr_assert(!live.result.authenticated);
}

/* live_count_done stops the reactor after *arg callbacks. */
static void live_count_done(void *arg, const struct dns_mx_result *result)
{
    const int *expected = arg;

    live.result = *result;
    live.calls++;
    cr_assert_eq(result->status, DNS_OK);
    if (live.calls == *expected) {
        reactor_stop(live.reactor);
    }
}

Test(dns_live, concurrent_lookups_share_query)
{
    int expected = 5;

    live.calls = 0;
    for (int i = 0; i < expected; i++) {
        cr_assert_eq(dns_resolve_mx(live.resolver, "Coalesce.Test",
                                    live_count_done, &expected, NULL), 0);
    }
    live_wait();
    cr_assert_eq(live.calls, expected);
    cr_assert_str_eq(live.result.hosts[0].name, "mx1.example.test");
    cr_assert_eq(count_queries("coalesce.test", "MX"), 1,
                 "the lookups in flight together sent one query");
}

Test(dns_live, cancel_keeps_shared_query)
{
    struct dns_request *first = NULL;
    int expected = 1;

    live.calls = 0;
    cr_assert_eq(dns_resolve_mx(live.resolver, "shared.test",
                                live_count_done, &expected, &first), 0);
    cr_assert_eq(dns_resolve_mx(live.resolver, "shared.test",
                                live_count_done, &expected, NULL), 0);

    /* After one turn both requests wait for the same query. */
    reactor_timer_set(live.reactor, &live.guard, 0);
    cr_assert_eq(reactor_run(live.reactor), 0);
    live.timed_out = false;
    cr_assert_eq(live.calls, 0);
    dns_request_cancel(first);

    live_wait();
    cr_assert_eq(live.calls, 1);
    cr_assert_eq(live.result.status, DNS_OK);
    cr_assert_eq(count_queries("shared.test", "MX"), 1);
}

/* With one query in flight at a time, MX lookups of five domains (one
 * retried over TCP, one through a CNAME, one of five MX hosts) queue
 * their queries and all end with their answer. */
Test(dns_live, one_query_in_flight_answers_all)
{
    static const char *const domains[] = {
        "example.test", "implicit.test", "chain.test", "prefs.test",
        "truncated.test",
    };
    int expected = (int)(sizeof(domains) / sizeof(domains[0]));
    struct dns_options opts;

    live_server(&opts);
    opts.max_queries = 1;
    dns_resolver_free(live.resolver);
    cr_assert_eq(dns_resolver_new(&live.resolver, live.reactor, &opts), 0);

    live.calls = 0;
    for (int i = 0; i < expected; i++) {
        cr_assert_eq(dns_resolve_mx(live.resolver, domains[i],
                                    live_count_done, &expected, NULL), 0);
    }
    live_wait();
    cr_assert_eq(live.calls, expected);
}
