#include "core/inbound_clients.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Stores addr as 16 bytes, IPv4 in its IPv4-mapped IPv6 form. Returns 0,
 * or -1 for another family. */
static int clients_key(const struct sockaddr *addr, uint8_t key[16])
{
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const void *)addr;

        memset(key, 0, 10);
        key[10] = 0xff;
        key[11] = 0xff;
        memcpy(key + 12, &sin->sin_addr, 4);
        return 0;
    }
    if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const void *)addr;

        memcpy(key, &sin6->sin6_addr, 16);
        return 0;
    }
    return -1;
}

/* FNV-1a over the seed and the key. */
static size_t clients_bucket(const struct inbound_clients *clients,
                             const uint8_t key[16])
{
    uint64_t hash = 14695981039346656037ULL ^ clients->seed;

    for (size_t i = 0; i < 16; i++) {
        hash ^= key[i];
        hash *= 1099511628211ULL;
    }
    return (size_t)(hash ^ (hash >> 32)) & clients->bucket_mask;
}

int inbound_clients_init(struct inbound_clients *clients, size_t expected)
{
    size_t count = 16;

    memset(clients, 0, sizeof(*clients));
    while (count < expected && count < (1u << 20)) {
        count *= 2;
    }
    clients->buckets = calloc(count, sizeof(*clients->buckets));
    if (clients->buckets == NULL) {
        return -1;
    }
    clients->bucket_mask = count - 1;
    if (getrandom(&clients->seed, sizeof(clients->seed), GRND_NONBLOCK) !=
        (ssize_t)sizeof(clients->seed)) {
        /* A guessable seed only makes chains longer, never counts wrong. */
        clients->seed = (uint64_t)time(NULL) * 2654435761u;
    }
    return 0;
}

int inbound_clients_add(struct inbound_clients *clients,
                        const struct sockaddr *addr, unsigned limit,
                        struct inbound_client **out)
{
    struct inbound_client *client;
    uint8_t key[16];
    size_t bucket;

    if (clients_key(addr, key) < 0) {
        return -1;
    }
    bucket = clients_bucket(clients, key);
    for (client = clients->buckets[bucket]; client != NULL;
         client = client->next) {
        if (memcmp(client->address, key, sizeof(key)) == 0) {
            break;
        }
    }

    if (client == NULL && limit == 0) {
        *out = NULL;
        return 1;
    }
    if (client == NULL) {
        client = calloc(1, sizeof(*client));
        if (client == NULL) {
            return -1;
        }
        memcpy(client->address, key, sizeof(key));
        client->next = clients->buckets[bucket];
        clients->buckets[bucket] = client;
        clients->count++;
    }
    *out = client;
    if (client->sessions >= limit) {
        return 1;
    }
    client->sessions++;
    return 0;
}

void inbound_clients_remove(struct inbound_clients *clients,
                            struct inbound_client *client)
{
    struct inbound_client **link;

    if (--client->sessions > 0) {
        return;
    }
    link = &clients->buckets[clients_bucket(clients, client->address)];
    while (*link != client) {
        link = &(*link)->next;
    }
    *link = client->next;
    clients->count--;
    free(client);
}

void inbound_clients_cleanup(struct inbound_clients *clients)
{
    for (size_t i = 0; clients->buckets != NULL &&
                       i <= clients->bucket_mask; i++) {
        while (clients->buckets[i] != NULL) {
            struct inbound_client *next = clients->buckets[i]->next;

            free(clients->buckets[i]);
            clients->buckets[i] = next;
        }
    }
    free(clients->buckets);
    memset(clients, 0, sizeof(*clients));
}
