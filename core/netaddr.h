/* Network address helpers: HOST:PORT values and CIDR networks. */
#ifndef RINGRELAY_CORE_NETADDR_H
#define RINGRELAY_CORE_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* netaddr_hostport: "HOST:PORT", "[IPV6]:PORT". When host is an IP
 * literal, addr holds it with the port; otherwise is_name is set and the
 * caller resolves host. */
struct netaddr_hostport {
    char host[256];
    uint16_t port;
    bool is_name;
    struct sockaddr_storage addr;
    socklen_t addr_len;
};

/* netaddr_cidr: an IPv4 or IPv6 network, "127.0.0.1/32" or "::1/128"; a
 * bare address means a single host. */
struct netaddr_cidr {
    int family;                  /* AF_INET or AF_INET6 */
    uint8_t bytes[16];
    unsigned prefix;
};

/* netaddr_parse_hostport parses text; default_port is used when text has
 * no port (0: a port is required). The port must be 1..65535, a name must
 * pass netaddr_is_hostname, and host stores an IPv6 literal without its
 * brackets. A bare IPv6 literal such as "::1" is accepted only without a
 * port. Returns 0 or -1. */
int netaddr_parse_hostport(const char *text, uint16_t default_port,
                           struct netaddr_hostport *out);

/* netaddr_parse_cidr parses text. The prefix must be 0..32 for IPv4 and
 * 0..128 for IPv6. Host bits below the prefix are allowed and kept, and
 * matching ignores them. Returns 0 or -1. */
int netaddr_parse_cidr(const char *text, struct netaddr_cidr *out);

/* netaddr_cidr_match reports whether addr lies in net. An IPv4 address and
 * its IPv4-mapped IPv6 form (::ffff:a.b.c.d) are the same client, so each
 * matches IPv4 networks and IPv6 networks that cover ::ffff:0:0/96. */
bool netaddr_cidr_match(const struct netaddr_cidr *net,
                        const struct sockaddr *addr);

/* netaddr_is_hostname reports whether name is a host name of at most 253
 * bytes with no leading or trailing dot. Its labels are 1 to 63 letters,
 * digits and '-', with no '-' at either end. The last label must not be all
 * digits, so "127.0.0.300" is not a name. */
bool netaddr_is_hostname(const char *name);

/* netaddr_format writes "IP" (no port) into buf, or "unknown" for a
 * family other than AF_INET and AF_INET6. Returns buf. */
const char *netaddr_format(const struct sockaddr *addr, char *buf,
                           size_t size);

#endif
