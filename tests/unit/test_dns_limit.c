/* The cap on DNS queries in flight: the queue of dns_limit.c alone, then
 * whole resolvers against a name server inside the test. That server is
 * a UDP socket on 127.0.0.1 with a port the kernel picks. It answers
 * every A query with one address and every AAAA query with no records,
 * each after a set delay, and it counts the queries it has received and
 * not answered yet. A resolver's queries in flight include those, so
 * their count must stay within the resolver's max_queries. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/reactor.h"
#include "dns/dns_limit.h"
#include "dns/resolver.h"

/* ---- The queue alone --------------------------------------------------- */

struct limit_record {
    struct dns_limit_entry *started[8];
    size_t count;
};

static struct limit_record record;

static void record_start(struct dns_limit_entry *entry)
{
    cr_assert_lt(record.count, 8);
    record.started[record.count++] = entry;
}

Test(dns_limit, slots_then_queue_in_order)
{
    struct dns_limit limit;
    struct dns_limit_entry entries[5];

    memset(&record, 0, sizeof(record));
    memset(entries, 0, sizeof(entries));
    dns_limit_init(&limit, 2);
    cr_assert(dns_limit_enter(&limit, &entries[0], record_start, NULL));
    cr_assert(dns_limit_enter(&limit, &entries[1], record_start, NULL));
    for (size_t i = 2; i < 5; i++) {
        cr_assert_not(dns_limit_enter(&limit, &entries[i], record_start,
                                      NULL));
    }
    cr_expect_eq(limit.running, 2);
    cr_expect_eq(limit.queued, 3);

    dns_limit_leave(&limit, &entries[1]);
    cr_assert_eq(record.count, 1);
    cr_expect_eq(record.started[0], &entries[2]);
    dns_limit_leave(&limit, &entries[0]);
    cr_assert_eq(record.count, 2);
    cr_expect_eq(record.started[1], &entries[3]);
    cr_expect_eq(limit.running, 2);
    cr_expect_eq(limit.queued, 1);
}

Test(dns_limit, leaving_queue_starts_nothing)
{
    struct dns_limit limit;
    struct dns_limit_entry entries[4];

    memset(&record, 0, sizeof(record));
    memset(entries, 0, sizeof(entries));
    dns_limit_init(&limit, 1);
    cr_assert(dns_limit_enter(&limit, &entries[0], record_start, NULL));
    for (size_t i = 1; i < 4; i++) {
        cr_assert_not(dns_limit_enter(&limit, &entries[i], record_start,
                                      NULL));
    }

    /* The middle, then the newest entry leave the queue. */
    dns_limit_leave(&limit, &entries[2]);
    dns_limit_leave(&limit, &entries[3]);
    cr_expect_eq(record.count, 0);
    cr_expect_eq(limit.queued, 1);
    cr_expect_eq(entries[2].state, DNS_LIMIT_IDLE);

    dns_limit_leave(&limit, &entries[0]);
    cr_assert_eq(record.count, 1);
    cr_expect_eq(record.started[0], &entries[1]);
    dns_limit_leave(&limit, &entries[1]);
    cr_expect_eq(record.count, 1);
    cr_expect_eq(limit.running, 0);
    cr_expect_eq(limit.queued, 0);
    cr_expect_null(limit.head);
    cr_expect_null(limit.tail);

    /* An idle entry is accepted and changes nothing. */
    dns_limit_leave(&limit, &entries[1]);
    cr_expect_eq(limit.running, 0);
}

Test(dns_limit, zero_max_is_one)
{
    struct dns_limit limit;
    struct dns_limit_entry entries[2];

    memset(entries, 0, sizeof(entries));
    dns_limit_init(&limit, 0);
    cr_expect(dns_limit_enter(&limit, &entries[0], record_start, NULL));
    cr_expect_not(dns_limit_enter(&limit, &entries[1], record_start, NULL));
}

/* ---- Resolvers against a name server in the test ----------------------- */

#define FAKE_MAX_PENDING 64
#define FAKE_TICK_MS 2
#define FAKE_GUARD_MS 10000
#define FAKE_HOSTS 20

struct fake_query {
    uint8_t wire[512];
    size_t len;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    uint64_t received_ms;
};

struct fake {
    struct reactor *reactor;
    struct dns_resolver *resolver;
    int fd;
    struct sockaddr_in addr;
    struct reactor_timer tick;
    struct reactor_timer guard;
    uint64_t delay_ms;          /* before each answer */
    struct fake_query pending[FAKE_MAX_PENDING];
    size_t pending_count;       /* received, not answered */
    size_t max_pending;
    size_t received;
    void (*on_first_query)(void);
    bool timed_out;

    struct dns_request *requests[FAKE_HOSTS];
    struct dns_mx_result results[FAKE_HOSTS];
    int calls[FAKE_HOSTS];
    size_t done;                /* requests called back */
    size_t expected;            /* done at which the reactor stops */
};

static struct fake fake;

/* fake_question_end returns the length of the header and question of
 * wire, or 0 when the question does not parse. */
static size_t fake_question_end(const uint8_t *wire, size_t len)
{
    size_t at = 12;

    while (at < len && wire[at] != 0) {
        if (wire[at] >= 64) {
            return 0;
        }
        at += 1u + wire[at];
    }
    at += 1 + 4; /* the root label, QTYPE, QCLASS */
    return at <= len ? at : 0;
}

/* fake_answer sends the answer to one query: an A record of 127.0.0.2
 * for type A, no records for any other type. */
static void fake_answer(const struct fake_query *query)
{
    static const uint8_t a_record[] = {
        0xc0, 0x0c,             /* the name of the question */
        0x00, 0x01, 0x00, 0x01, /* A, IN */
        0x00, 0x00, 0x00, 0x3c, /* TTL 60 s */
        0x00, 0x04, 127, 0, 0, 2,
    };
    uint8_t reply[512 + sizeof(a_record)];
    size_t end = fake_question_end(query->wire, query->len);
    bool is_a;

    cr_assert_gt(end, 0, "query without a valid question");
    is_a = query->wire[end - 4] == 0 && query->wire[end - 3] == 1;
    memcpy(reply, query->wire, end);
    reply[2] = 0x80 | (query->wire[2] & 0x01); /* QR, and RD as asked */
    reply[3] = 0x80;                           /* RA, NOERROR */
    memset(reply + 6, 0, 6);                   /* AN, NS, AR counts */
    if (is_a) {
        reply[7] = 1;
        memcpy(reply + end, a_record, sizeof(a_record));
        end += sizeof(a_record);
    }
    cr_assert_eq(sendto(fake.fd, reply, end, 0,
                        (const struct sockaddr *)&query->peer,
                        query->peer_len), (ssize_t)end,
                 "sendto failed: %s", strerror(errno));
}

static void fake_receive(void)
{
    for (;;) {
        struct fake_query *query;
        ssize_t got;

        cr_assert_lt(fake.pending_count, FAKE_MAX_PENDING);
        query = &fake.pending[fake.pending_count];
        query->peer_len = sizeof(query->peer);
        got = recvfrom(fake.fd, query->wire, sizeof(query->wire), 0,
                       (struct sockaddr *)&query->peer, &query->peer_len);
        if (got < 0) {
            cr_assert_eq(errno, EAGAIN, "recvfrom failed: %s",
                         strerror(errno));
            return;
        }
        query->len = (size_t)got;
        query->received_ms = reactor_now_ms(fake.reactor);
        fake.pending_count++;
        fake.received++;
        if (fake.pending_count > fake.max_pending) {
            fake.max_pending = fake.pending_count;
        }
        if (fake.received == 1 && fake.on_first_query != NULL) {
            fake.on_first_query();
        }
    }
}

/* fake_tick reads every query that came, then answers those that have
 * waited delay_ms, oldest first. */
static void fake_tick(struct reactor_timer *timer)
{
    uint64_t now = reactor_now_ms(fake.reactor);
    size_t still_waiting = 0;

    fake_receive();
    for (size_t i = 0; i < fake.pending_count; i++) {
        if (now - fake.pending[i].received_ms >= fake.delay_ms) {
            fake_answer(&fake.pending[i]);
        } else {
            fake.pending[still_waiting++] = fake.pending[i];
        }
    }
    fake.pending_count = still_waiting;
    reactor_timer_set(fake.reactor, timer, FAKE_TICK_MS);
}

static void fake_guard_fire(struct reactor_timer *timer)
{
    (void)timer;
    fake.timed_out = true;
    reactor_stop(fake.reactor);
}

static void fake_setup(void)
{
    socklen_t len = sizeof(fake.addr);

    memset(&fake, 0, sizeof(fake));
    fake.fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert_geq(fake.fd, 0, "socket failed: %s", strerror(errno));
    fake.addr.sin_family = AF_INET;
    fake.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fake.fd, (struct sockaddr *)&fake.addr,
                      sizeof(fake.addr)), 0,
                 "bind failed: %s", strerror(errno));
    cr_assert_eq(getsockname(fake.fd, (struct sockaddr *)&fake.addr, &len),
                 0, "getsockname failed: %s", strerror(errno));
    cr_assert_eq(reactor_new(&fake.reactor, NULL), 0);
    fake.tick.fire = fake_tick;
    fake.guard.fire = fake_guard_fire;
    reactor_timer_set(fake.reactor, &fake.tick, FAKE_TICK_MS);
}

/* fake_start_resolver makes a resolver that queries the fake server. */
static void fake_start_resolver(unsigned max_queries, uint32_t timeout_ms)
{
    struct dns_options opts;

    memset(&opts, 0, sizeof(opts));
    memcpy(&opts.servers[0], &fake.addr, sizeof(fake.addr));
    opts.server_lens[0] = sizeof(fake.addr);
    opts.server_count = 1;
    opts.timeout_ms = timeout_ms;
    opts.attempts = 1;
    opts.max_queries = max_queries;
    cr_assert_eq(dns_resolver_new(&fake.resolver, fake.reactor, &opts), 0);
}

/* fake_teardown lets the reactor deliver the cancellations of sockets
 * still open, so their memory is freed before the reactor goes. */
static void fake_teardown(void)
{
    if (fake.reactor == NULL) {
        return;
    }
    dns_resolver_free(fake.resolver);
    reactor_timer_cancel(fake.reactor, &fake.tick);
    reactor_timer_set(fake.reactor, &fake.guard, 50);
    reactor_run(fake.reactor);
    reactor_timer_cancel(fake.reactor, &fake.guard);
    reactor_free(fake.reactor);
    close(fake.fd);
}

static void fake_done(void *arg, const struct dns_mx_result *result)
{
    size_t index = (size_t)(uintptr_t)arg;

    fake.results[index] = *result;
    fake.calls[index]++;
    fake.requests[index] = NULL;
    fake.done++;
    if (fake.done == fake.expected) {
        reactor_stop(fake.reactor);
    }
}

/* fake_resolve_hosts starts host lookups of h0.test ... h(count-1).test,
 * distinct names, so no two lookups share a query. */
static void fake_resolve_hosts(size_t count)
{
    char host[32];

    cr_assert_leq(count, FAKE_HOSTS);
    for (size_t i = 0; i < count; i++) {
        snprintf(host, sizeof(host), "h%zu.test", i);
        cr_assert_eq(dns_resolve_host(fake.resolver, host, fake_done,
                                      (void *)(uintptr_t)i,
                                      &fake.requests[i]), 0);
    }
}

/* fake_run runs the reactor until expected requests are done. */
static void fake_run(size_t expected)
{
    fake.expected = expected;
    reactor_timer_set(fake.reactor, &fake.guard, FAKE_GUARD_MS);
    cr_assert_eq(reactor_run(fake.reactor), 0);
    reactor_timer_cancel(fake.reactor, &fake.guard);
    cr_assert_not(fake.timed_out, "%zu of %zu lookups done after %d ms",
                  fake.done, expected, FAKE_GUARD_MS);
}

static void assert_answered(size_t index)
{
    const struct sockaddr_in *sin =
        (const struct sockaddr_in *)&fake.results[index].hosts[0].addrs[0];

    cr_assert_eq(fake.calls[index], 1, "lookup %zu called %d times", index,
                 fake.calls[index]);
    cr_assert_eq(fake.results[index].status, DNS_OK, "lookup %zu status %d",
                 index, (int)fake.results[index].status);
    cr_assert_eq(fake.results[index].host_count, 1);
    cr_assert_eq(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK + 1);
}

/* capture_stderr sends the log to a new file and returns the saved
 * stderr; capture_read restores it and returns the file's text. */
static int capture_stderr(char *path, size_t size)
{
    int saved = dup(STDERR_FILENO);
    int fd;

    snprintf(path, size, "/tmp/test_dns_limit.XXXXXX");
    fd = mkstemp(path);
    cr_assert_geq(fd, 0, "mkstemp failed: %s", strerror(errno));
    cr_assert_geq(saved, 0, "dup failed: %s", strerror(errno));
    cr_assert_geq(dup2(fd, STDERR_FILENO), 0, "dup2 failed: %s",
                  strerror(errno));
    close(fd);
    return saved;
}

static char *capture_read(int saved, const char *path)
{
    static char text[1 << 20];
    FILE *file;
    size_t got;

    cr_assert_geq(dup2(saved, STDERR_FILENO), 0, "dup2 failed: %s",
                  strerror(errno));
    close(saved);
    file = fopen(path, "r");
    cr_assert_not_null(file, "fopen %s failed: %s", path, strerror(errno));
    got = fread(text, 1, sizeof(text) - 1, file);
    text[got] = '\0';
    fclose(file);
    unlink(path);
    return text;
}

static size_t count_lines(const char *text, const char *needle)
{
    size_t count = 0;

    for (const char *at = strstr(text, needle); at != NULL;
         at = strstr(at + 1, needle)) {
        count++;
    }
    return count;
}

TestSuite(dns_limit_resolver, .init = fake_setup, .fini = fake_teardown);

Test(dns_limit_resolver, many_lookups_within_cap)
{
    char path[64];
    int saved;
    char *log;

    fake.delay_ms = 5;
    fake_start_resolver(2, 2000);
    log_set_level(LOG_LEVEL_DEBUG);
    saved = capture_stderr(path, sizeof(path));
    fake_resolve_hosts(FAKE_HOSTS);
    fake_run(FAKE_HOSTS);
    log = capture_read(saved, path);
    log_set_level(LOG_LEVEL_INFO);

    for (size_t i = 0; i < FAKE_HOSTS; i++) {
        assert_answered(i);
    }
    cr_expect_eq(fake.received, 2 * FAKE_HOSTS);
    cr_expect_eq(fake.max_pending, 2, "%zu queries in flight at once",
                 fake.max_pending);

    /* Each lookup makes an A and an AAAA query: 2 are sent at once, and
     * the other 38 wait. */
    cr_expect_eq(count_lines(log, "event=dns-query-waited"),
                 2 * FAKE_HOSTS - 2, "log:\n%s", log);
    cr_expect_neq(strstr(log, "max_queries=2"), NULL);
    cr_expect_eq(strstr(log, "event=dns-failed"), NULL, "log:\n%s", log);
}

Test(dns_limit_resolver, default_cap_sends_at_once)
{
    fake.delay_ms = 20;
    fake_start_resolver(0, 2000);
    fake_resolve_hosts(FAKE_HOSTS);
    fake_run(FAKE_HOSTS);

    for (size_t i = 0; i < FAKE_HOSTS; i++) {
        assert_answered(i);
    }
    cr_expect_eq(fake.received, 2 * FAKE_HOSTS);
    cr_expect_eq(fake.max_pending, 2 * FAKE_HOSTS);
}

/* With one slot, 10 queries of 40 ms each take 400 ms in a row, so a
 * timeout of 150 ms counted from the queueing would fail most of them. */
Test(dns_limit_resolver, timeout_counts_from_send)
{
    fake.delay_ms = 40;
    fake_start_resolver(1, 150);
    fake_resolve_hosts(5);
    fake_run(5);

    for (size_t i = 0; i < 5; i++) {
        assert_answered(i);
    }
    cr_expect_eq(fake.received, 10);
    cr_expect_eq(fake.max_pending, 1);
}

static void cancel_first_three(void)
{
    for (size_t i = 0; i < 3; i++) {
        dns_request_cancel(fake.requests[i]);
        fake.requests[i] = NULL;
    }
}

/* Lookup 0's A query is in flight when the first query reaches the
 * server; its AAAA query and lookups 1 to 3 wait. Cancelling lookups 0
 * to 2 frees the slot and drops their queued queries. */
Test(dns_limit_resolver, cancel_running_and_queued)
{
    fake.delay_ms = 10;
    fake.on_first_query = cancel_first_three;
    fake_start_resolver(1, 2000);
    fake_resolve_hosts(4);
    fake_run(1);

    for (size_t i = 0; i < 3; i++) {
        cr_expect_eq(fake.calls[i], 0, "cancelled lookup %zu called back",
                     i);
    }
    assert_answered(3);
    cr_expect_eq(fake.received, 3, "%zu queries sent", fake.received);

    /* Lookup 0's A query is still unanswered when lookup 3's arrives. */
    cr_expect_eq(fake.max_pending, 2);
}

static void stop_reactor(void)
{
    reactor_stop(fake.reactor);
}

/* The sanitizer build reports any queued query that is not freed. */
Test(dns_limit_resolver, free_with_queued_queries)
{
    fake.delay_ms = 10;
    fake.on_first_query = stop_reactor;
    fake_start_resolver(1, 2000);
    fake_resolve_hosts(FAKE_HOSTS);
    fake_run(0);

    dns_resolver_free(fake.resolver);
    fake.resolver = NULL;
    for (size_t i = 0; i < FAKE_HOSTS; i++) {
        cr_expect_eq(fake.calls[i], 0);
    }
    cr_expect_eq(fake.received, 1);
}
