/* Tests for the per-address session counts behind max_connections_per_ip
 * (core/inbound_clients.h). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "core/inbound_clients.h"

static struct sockaddr_storage address(const char *ip)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

        sin6->sin6_family = AF_INET6;
        cr_assert_eq(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1, "%s", ip);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

        sin->sin_family = AF_INET;
        cr_assert_eq(inet_pton(AF_INET, ip, &sin->sin_addr), 1, "%s", ip);
    }
    return ss;
}

static int add(struct inbound_clients *clients, const char *ip,
               unsigned limit, struct inbound_client **out)
{
    struct sockaddr_storage ss = address(ip);

    return inbound_clients_add(clients, (const struct sockaddr *)&ss, limit,
                               out);
}

Test(inbound_clients, limit_per_address)
{
    struct inbound_clients clients;
    struct inbound_client *first;
    struct inbound_client *again;
    struct inbound_client *other;

    cr_assert_eq(inbound_clients_init(&clients, 10), 0);
    cr_expect_eq(add(&clients, "192.0.2.1", 2, &first), 0);
    cr_expect_eq(add(&clients, "192.0.2.1", 2, &again), 0);
    cr_expect_eq(again, first, "one entry per address");
    cr_expect_eq(first->sessions, 2);
    cr_expect_eq(add(&clients, "192.0.2.1", 2, &again), 1,
                 "third session over a limit of 2");
    cr_expect_eq(first->sessions, 2, "a refused session is not counted");
    cr_expect_eq(add(&clients, "192.0.2.2", 2, &other), 0);
    cr_expect_neq(other, first);
    cr_expect_eq(clients.count, 2);

    inbound_clients_remove(&clients, first);
    cr_expect_eq(add(&clients, "192.0.2.1", 2, &again), 0,
                 "a closed session frees its place");
    inbound_clients_cleanup(&clients);
}

Test(inbound_clients, mapped_ipv4_is_same_client)
{
    struct inbound_clients clients;
    struct inbound_client *v4;
    struct inbound_client *mapped;

    cr_assert_eq(inbound_clients_init(&clients, 10), 0);
    cr_expect_eq(add(&clients, "198.51.100.7", 2, &v4), 0);
    cr_expect_eq(add(&clients, "::ffff:198.51.100.7", 2, &mapped), 0);
    cr_expect_eq(mapped, v4);
    cr_expect_eq(add(&clients, "198.51.100.7", 2, &v4), 1);
    inbound_clients_cleanup(&clients);
}

Test(inbound_clients, ipv6_counted_exactly)
{
    struct inbound_clients clients;
    struct inbound_client *a;
    struct inbound_client *b;

    cr_assert_eq(inbound_clients_init(&clients, 10), 0);
    cr_expect_eq(add(&clients, "2001:db8::1", 1, &a), 0);
    cr_expect_eq(add(&clients, "2001:db8::2", 1, &b), 0,
                 "same /64, other address");
    cr_expect_eq(add(&clients, "2001:db8::1", 1, &a), 1);
    inbound_clients_cleanup(&clients);
}

/* Many clients in a small table: every count returns to zero and every
 * entry is freed once its sessions close. */
Test(inbound_clients, open_close_rounds_stay_exact)
{
    struct inbound_clients clients;
    static struct inbound_client *held[3000];

    cr_assert_eq(inbound_clients_init(&clients, 16), 0);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 3000; i++) {
            char ip[32];

            /* 1000 addresses with three sessions each. */
            snprintf(ip, sizeof(ip), "10.0.%d.%d", i % 1000 / 256,
                     i % 1000 % 256);
            cr_assert_eq(add(&clients, ip, 3, &held[i]), 0, "%s", ip);
        }
        cr_expect_eq(clients.count, 1000, "round %d: %zu clients", round,
                     clients.count);
        for (int i = 0; i < 3000; i++) {
            inbound_clients_remove(&clients, held[i]);
        }
        cr_expect_eq(clients.count, 0, "round %d: %zu left", round,
                     clients.count);
    }
    inbound_clients_cleanup(&clients);
}

Test(inbound_clients, other_family_rejected)
{
    struct inbound_clients clients;
    struct inbound_client *client;
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_UNIX;
    cr_assert_eq(inbound_clients_init(&clients, 10), 0);
    cr_expect_eq(inbound_clients_add(&clients, (const struct sockaddr *)&ss,
                                     5, &client), -1);
    cr_expect_eq(clients.count, 0);
    inbound_clients_cleanup(&clients);
}
