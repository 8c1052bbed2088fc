/* Checks of the names in the destinations object. A destination name is
 * what the outbound engine calls a next hop: "HOST:PORT" of a route or
 * the smarthost, "mx:HOST,...;HOST" of a shared MX set, a domain, or an
 * address literal "[IP]" or "[IPv6:...]". A name of no such form can
 * never match, and neither can a domain that a route or the smarthost
 * sends elsewhere, so its limits would silently apply to nothing. The
 * same holds for an MX set spelled otherwise than the relay builds it. */
#ifndef RINGRELAY_CORE_CONFIG_DEST_NAME_H
#define RINGRELAY_CORE_CONFIG_DEST_NAME_H

#include <stdbool.h>
#include <stddef.h>

struct config;

enum config_dest_kind {
    CONFIG_DEST_INVALID = -1,
    CONFIG_DEST_HOSTPORT,         /* a route or the smarthost */
    CONFIG_DEST_MX_SET,           /* "mx:" and MX host names */
    CONFIG_DEST_DOMAIN,
    CONFIG_DEST_LITERAL,          /* "[192.0.2.1]", "[IPv6:2001:db8::1]" */
    CONFIG_DEST_BARE_IP,          /* an IP address without port or
                                   * brackets, which no next hop is
                                   * called */
};

/* config_dest_name_kind returns the form of name. For a name of no form
 * it returns CONFIG_DEST_INVALID and writes the reason into reason. */
enum config_dest_kind config_dest_name_kind(const char *name, char *reason,
                                            size_t reason_size);

/* config_dest_name_advice writes into advice why no delivery under
 * config uses the destination called name, and which name its limits
 * should use instead. Returns false, with advice untouched, when the
 * name can match. */
bool config_dest_name_advice(const struct config *config, const char *name,
                             char *advice, size_t advice_size);

#endif
