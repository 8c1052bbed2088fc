/* Resolver tests against a real name server (ldns-testns), through the
 * real reactor. tests/integration/dns_live.sh starts the server in a
 * private network namespace and sets RINGRELAY_TEST_DNS=ADDRESS:PORT;
 * without it every test is skipped. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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
