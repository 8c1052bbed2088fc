/* MX sets: null MX detection, preference order, and the addresses of one
 * host. */
#ifndef RINGRELAY_DNS_MX_H
#define RINGRELAY_DNS_MX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dns/dns_packet.h"
#include "dns/resolver.h"

/* dns_mx_is_null returns whether an MX answer is a null MX (RFC 7505): one
 * record, preference 0, target the root name. */
bool dns_mx_is_null(const struct dns_answer *answer);

/* dns_mx_select writes the MX hosts of answer into result: sorted by
 * preference, equal preferences shuffled, root targets and repeated
 * names dropped, at most DNS_MAX_MX_HOSTS. Addresses are left empty. */
void dns_mx_select(const struct dns_answer *answer,
                   struct dns_mx_result *result);

/* dns_mx_fill_addresses sets host's addresses (port 0): IPv4 first, then
 * IPv6. When both families have more than fit, each gets half of
 * DNS_MAX_ADDRS. */
void dns_mx_fill_addresses(struct dns_mx_host *host,
                           const uint8_t (*v4)[16], size_t v4_count,
                           const uint8_t (*v6)[16], size_t v6_count);

/* dns_addr_loops_back returns whether addr is a loopback or unspecified
 * address, where a connection reaches this host or fails: 127.0.0.0/8,
 * 0.0.0.0/8, ::1, ::, and the IPv4-mapped forms of the IPv4 ranges. */
bool dns_addr_loops_back(const struct sockaddr_storage *addr);

/* dns_mx_limit keeps, in order, at most max_hosts hosts and max_addrs
 * addresses in total, and drops hosts left without an address. */
void dns_mx_limit(struct dns_mx_result *result, size_t max_hosts,
                  size_t max_addrs);

#endif
