#include "core/config_dest_name.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/netaddr.h"
#include "core/mx_set_name.h"
#include "dns/resolver.h"
#include "proto/smtp_address.h"

/* One host of an MX-set name and its preference position: the number of
 * ';' before it. */
struct dest_mx_host {
    char name[256];
    size_t rank;
};

static bool dest_is_ip(const char *text, int family)
{
    unsigned char addr[16];

    return inet_pton(family, text, addr) == 1;
}

/* dest_split_hostport splits "HOST:PORT" at its last ':' and checks
 * both parts: a port from 1 to 65535, and a host name or IP address as
 * host. On failure it writes the reason into reason and returns false. */
static bool dest_split_hostport(const char *text, char *host,
                                size_t host_size, char *reason,
                                size_t reason_size)
{
    const char *colon = strrchr(text, ':');
    size_t host_len = colon != NULL ? (size_t)(colon - text) : 0;
    char *end = NULL;
    unsigned long port;

    if (colon == NULL || host_len == 0 || host_len >= host_size) {
        snprintf(reason, reason_size, "expected HOST:PORT");
        return false;
    }
    memcpy(host, text, host_len);
    host[host_len] = '\0';
    port = strtoul(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || port == 0 ||
        port > 65535) {
        snprintf(reason, reason_size, "port '%.20s' is not a number from 1 "
                 "to 65535", colon + 1);
        return false;
    }
    if (!netaddr_is_hostname(host) && !dest_is_ip(host, AF_INET) &&
        !dest_is_ip(host, AF_INET6)) {
        snprintf(reason, reason_size, "'%.60s' is neither a host name nor "
                 "an IP address", host);
        return false;
    }
    return true;
}

/* dest_check_mx_set checks the hosts after "mx:": host names separated
 * by ',' within one preference and ';' between preferences. */
static bool dest_check_mx_set(const char *hosts, char *reason,
                              size_t reason_size)
{
    const char *start = hosts;

    if (*hosts == '\0') {
        snprintf(reason, reason_size, "missing MX host names after 'mx:'");
        return false;
    }
    for (;;) {
        size_t len = strcspn(start, ",;");
        char host[256];

        if (len == 0 || len >= sizeof(host)) {
            snprintf(reason, reason_size, "an MX set lists host names "
                     "separated by ',' and ';', with none empty");
            return false;
        }
        memcpy(host, start, len);
        host[len] = '\0';
        if (!netaddr_is_hostname(host)) {
            snprintf(reason, reason_size, "MX host '%.60s' is not a valid "
                     "host name", host);
            return false;
        }
        if (start[len] == '\0') {
            return true;
        }
        start += len + 1;
    }
}

enum config_dest_kind config_dest_name_kind(const char *name, char *reason,
                                            size_t reason_size)
{
    size_t len = strlen(name);
    size_t prefix = strlen(MX_SET_NAME_PREFIX);
    char host[256];

    if (dest_is_ip(name, AF_INET)) {
        return CONFIG_DEST_BARE_IP;
    }
    if (name[0] == '[') {
        if (smtp_domain_valid(name, len, false)) {
            return CONFIG_DEST_LITERAL;
        }
        snprintf(reason, reason_size, "not a valid address literal such "
                 "as [192.0.2.1] or [IPv6:2001:db8::1]");
        return CONFIG_DEST_INVALID;
    }

    /* "mx:25" is the host "mx" on port 25, not an MX set, but "mx:"
     * alone is an MX set without hosts. */
    if (strncasecmp(name, MX_SET_NAME_PREFIX, prefix) == 0 &&
        (len == prefix ||
         strspn(name + prefix, "0123456789") != len - prefix)) {
        return dest_check_mx_set(name + prefix, reason, reason_size)
                   ? CONFIG_DEST_MX_SET
                   : CONFIG_DEST_INVALID;
    }
    if (strchr(name, ':') != NULL) {
        if (dest_split_hostport(name, host, sizeof(host), reason,
                                reason_size)) {
            return CONFIG_DEST_HOSTPORT;
        }
        return dest_is_ip(name, AF_INET6) ? CONFIG_DEST_BARE_IP
                                          : CONFIG_DEST_INVALID;
    }
    if (smtp_domain_valid(name, len, true)) {
        return CONFIG_DEST_DOMAIN;
    }
    snprintf(reason, reason_size, "not a domain, HOST:PORT, mx:HOSTS or "
             "address literal");
    return CONFIG_DEST_INVALID;
}

/* dest_hop_of_host returns the route or smarthost next hop whose host is
 * name, or NULL. */
static const struct netaddr_hostport *dest_hop_of_host(
    const struct config *config, const char *name)
{
    for (size_t i = 0; i < config->route_count; i++) {
        const struct config_route *route = &config->routes[i];

        if (!route->discard && strcasecmp(route->hop.host, name) == 0) {
            return &route->hop;
        }
    }
    if (config->has_smarthost &&
        strcasecmp(config->smarthost.host, name) == 0) {
        return &config->smarthost;
    }
    return NULL;
}

/* dest_is_hop reports whether name is "HOST:PORT" of a route or the
 * smarthost, the only next hops named that way. */
static bool dest_is_hop(const struct config *config, const char *name)
{
    char hop_name[300];

    for (size_t i = 0; i < config->route_count; i++) {
        const struct config_route *route = &config->routes[i];

        snprintf(hop_name, sizeof(hop_name), "%s:%u", route->hop.host,
                 (unsigned)route->hop.port);
        if (!route->discard && strcasecmp(hop_name, name) == 0) {
            return true;
        }
    }
    snprintf(hop_name, sizeof(hop_name), "%s:%u", config->smarthost.host,
             (unsigned)config->smarthost.port);
    return config->has_smarthost && strcasecmp(hop_name, name) == 0;
}

static bool dest_advise_bare_ip(const char *name, char *advice,
                                size_t advice_size)
{
    bool v6 = strchr(name, ':') != NULL;

    snprintf(advice, advice_size, "'%s' is an IP address without a port, "
             "which names no destination; a route or smarthost to it is "
             "called '%s:25' (with its port), and address literal mail "
             "to it '[%s%s]'", name, name, v6 ? "IPv6:" : "", name);
    return true;
}

/* dest_mx_split lists the distinct hosts of text, the valid host list
 * of an MX-set name, in hosts[] (lower case). A repeated host keeps its
 * first, most preferred place, as dns_mx_select() keeps it. Returns the
 * number of hosts, max + 1 when there are more than max. */
static size_t dest_mx_split(const char *text, struct dest_mx_host *hosts,
                            size_t max)
{
    size_t count = 0;
    size_t rank = 0;

    for (const char *start = text; count <= max;) {
        size_t len = strcspn(start, ",;");
        struct dest_mx_host *host = &hosts[count];
        bool seen = false;

        for (size_t i = 0; i < len; i++) {
            host->name[i] = (char)tolower((unsigned char)start[i]);
        }
        host->name[len] = '\0';
        host->rank = rank;
        for (size_t i = 0; i < count; i++) {
            seen = seen || strcmp(hosts[i].name, host->name) == 0;
        }
        count += seen ? 0 : 1;

        if (start[len] == '\0') {
            break;
        }
        rank += start[len] == ';' ? 1 : 0;
        start += len + 1;
    }
    return count;
}

/* dest_mx_spelling writes into out the name that the relay gives the MX
 * set of name, a valid "mx:" name. Returns false when no delivery can use
 * the set's name: it needs more than out_size bytes, or the set has
 * DNS_MAX_MX_HOSTS hosts or more. The relay never names such a full
 * list, because it may be cut through a shuffled preference level. */
static bool dest_mx_spelling(const char *name, char *out, size_t out_size,
                             size_t *count)
{
    struct dest_mx_host hosts[DNS_MAX_MX_HOSTS + 1];
    struct mx_set_host ranked[DNS_MAX_MX_HOSTS];

    *count = dest_mx_split(name + strlen(MX_SET_NAME_PREFIX), hosts,
                           DNS_MAX_MX_HOSTS);
    if (*count >= DNS_MAX_MX_HOSTS) {
        return false;
    }
    for (size_t i = 0; i < *count; i++) {
        ranked[i].name = hosts[i].name;
        ranked[i].rank = hosts[i].rank;
    }
    return mx_set_name_write(ranked, *count, out, out_size);
}

/* dest_advise_mx_set writes advice for an MX-set name that the relay
 * never builds: hosts of equal preference out of name order, a repeated
 * host, too many hosts or a name too long. */
static bool dest_advise_mx_set(const char *name, char *advice,
                               size_t advice_size)
{
    char spelling[MX_SET_NAME_SIZE];
    size_t count;

    if (!dest_mx_spelling(name, spelling, sizeof(spelling), &count)) {
        snprintf(advice, advice_size, "the relay names only MX sets of "
                 "fewer than %d hosts and at most %d characters, so a "
                 "domain whose MX set is %s keeps its own name as "
                 "destination", DNS_MAX_MX_HOSTS,
                 MX_SET_NAME_SIZE - 1,
                 count >= DNS_MAX_MX_HOSTS ? "this large" : "this long");
        return true;
    }
    if (strcmp(spelling, name) == 0) {
        return false;
    }
    snprintf(advice, advice_size, "the relay spells this MX set '%s' "
             "(each host once, hosts of equal preference sorted by "
             "name); use that name", spelling);
    return true;
}

bool config_dest_name_advice(const struct config *config, const char *name,
                             char *advice, size_t advice_size)
{
    char reason[160];
    enum config_dest_kind kind =
        config_dest_name_kind(name, reason, sizeof(reason));
    const struct config_route *route = NULL;
    const struct netaddr_hostport *hop = NULL;

    if (kind == CONFIG_DEST_BARE_IP) {
        return dest_advise_bare_ip(name, advice, advice_size);
    }
    if (kind == CONFIG_DEST_DOMAIN) {
        route = config_route_entry(config, name);
        hop = dest_hop_of_host(config, name);
    }
    if (route != NULL && !route->discard) {
        snprintf(advice, advice_size, "mail to '%s' goes over its route, "
                 "so the destination is '%s:%u'; use that name for its "
                 "limits", name, route->hop.host, (unsigned)route->hop.port);
        return true;
    }
    if (route == NULL && kind != CONFIG_DEST_HOSTPORT &&
        config->has_smarthost) {
        snprintf(advice, advice_size, "all mail without a route goes to "
                 "the smarthost, so no destination is called '%s'; use "
                 "'%s:%u' for the smarthost's limits", name,
                 config->smarthost.host, (unsigned)config->smarthost.port);
        return true;
    }
    if (route == NULL && hop != NULL) {
        snprintf(advice, advice_size, "'%s' is also the host of a route "
                 "or the smarthost; the limits of that next hop need the "
                 "name '%s:%u'", name, hop->host, (unsigned)hop->port);
        return true;
    }
    if (kind == CONFIG_DEST_MX_SET) {
        return dest_advise_mx_set(name, advice, advice_size);
    }
    if (kind == CONFIG_DEST_HOSTPORT && !dest_is_hop(config, name)) {
        snprintf(advice, advice_size, "no route or smarthost is '%s', and "
                 "only those next hops have HOST:PORT names; check the "
                 "host and port against routes and smarthost", name);
        return true;
    }
    return false;
}
