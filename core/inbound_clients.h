/* Open inbound sessions per client address, for max_connections_per_ip.
 *
 * An IPv4 address and its IPv4-mapped IPv6 form (::ffff:a.b.c.d) are one
 * client. Any other IPv6 address is its own client: addresses are not
 * grouped by /64. */
#ifndef RINGRELAY_CORE_INBOUND_CLIENTS_H
#define RINGRELAY_CORE_INBOUND_CLIENTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* inbound_client: one client address with at least one open session. */
struct inbound_client {
    uint8_t address[16];          /* IPv6, or IPv4-mapped IPv6 */
    unsigned sessions;
    struct inbound_client *next;  /* in its hash bucket */
};

struct inbound_clients {
    struct inbound_client **buckets;
    size_t bucket_mask;           /* bucket count - 1, a power of two */
    uint64_t seed;                /* random, so clients cannot choose
                                   * addresses that share a bucket */
    size_t count;                 /* clients in the table */
};

/* inbound_clients_init sizes the table for about expected clients.
 * Returns 0, or -1 when out of memory. */
int inbound_clients_init(struct inbound_clients *clients, size_t expected);

/* inbound_clients_add counts one more session of addr unless it has limit
 * sessions already. Returns 0 and stores the client in *out, 1 when addr
 * is at the limit (nothing is counted), or -1 when out of memory or addr
 * is neither IPv4 nor IPv6. */
int inbound_clients_add(struct inbound_clients *clients,
                        const struct sockaddr *addr, unsigned limit,
                        struct inbound_client **out);

/* inbound_clients_remove counts one session of client less, and frees
 * the client after its last session. */
void inbound_clients_remove(struct inbound_clients *clients,
                            struct inbound_client *client);

/* inbound_clients_cleanup frees every client and the table. */
void inbound_clients_cleanup(struct inbound_clients *clients);

#endif
