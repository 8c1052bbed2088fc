/* Relay access policy: who may send mail to which domains. Relaying to
 * any domain is allowed only for clients in relay_networks; mail for
 * relay_domains is accepted from anyone; everything else is refused. */
#ifndef RINGRELAY_CORE_RELAY_ACCESS_H
#define RINGRELAY_CORE_RELAY_ACCESS_H

#include <stdbool.h>
#include <sys/socket.h>

struct config;

/* relay_access_trusted_client reports whether addr is in relay_networks. */
bool relay_access_trusted_client(const struct config *config,
                                 const struct sockaddr *addr);

/* relay_access_accepted_domain reports whether domain is one of
 * relay_domains (case-insensitive, a trailing dot ignored). */
bool relay_access_accepted_domain(const struct config *config,
                                  const char *domain);

struct netaddr_cidr;

/* Shortest prefixes of a relay_networks entry that do not count as
 * "everyone": an IPv4 /8 is 1/256 of the address space, and an IPv6 /16
 * is at least as wide as any allocation to one organisation. */
#define RELAY_ACCESS_MIN_PREFIX_IPV4 8
#define RELAY_ACCESS_MIN_PREFIX_IPV6 16

/* relay_access_network_too_wide reports whether net covers so much of
 * the Internet that trusting it makes an open relay: an IPv4 prefix
 * shorter than /8, an IPv6 prefix shorter than /16, or an IPv6 network
 * that covers an IPv4-mapped (::ffff:0:0/96) range shorter than /8. */
bool relay_access_network_too_wide(const struct netaddr_cidr *net);

struct smtp_path;

/* relay_access_postmaster reports whether path is a postmaster address
 * that RFC 5321 section 4.5.1 requires every server to accept: a bare
 * <postmaster>, or an unquoted local part "postmaster" (any case) at the
 * configured hostname (case-insensitive). */
bool relay_access_postmaster(const struct config *config,
                             const struct smtp_path *path);

/* relay_access_sender_owned reports whether an authenticated user may
 * use path as its MAIL FROM under auth_sender_match: the null path, the
 * user name itself when it contains '@' (the domain compared without
 * case), or, for a user name without '@', any address whose local part
 * is the user name. */
bool relay_access_sender_owned(const char *user,
                               const struct smtp_path *path);

#endif
