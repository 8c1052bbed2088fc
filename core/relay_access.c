#include "core/relay_access.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/netaddr.h"
#include "proto/smtp_address.h"

bool relay_access_trusted_client(const struct config *config,
                                 const struct sockaddr *addr)
{
    for (size_t i = 0; i < config->relay_network_count; i++) {
        if (netaddr_cidr_match(&config->relay_networks[i], addr)) {
            return true;
        }
    }
    return false;
}

/* Returns true when the first `bits` bits of a and b are equal. */
static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8;
    unsigned rest = bits % 8;
    uint8_t mask = (uint8_t)(0xff00u >> rest);

    if (memcmp(a, b, whole) != 0) {
        return false;
    }
    return rest == 0 || ((a[whole] ^ b[whole]) & mask) == 0;
}

bool relay_access_network_too_wide(const struct netaddr_cidr *net)
{
    static const uint8_t mapped[16] = {[10] = 0xff, [11] = 0xff};
    const unsigned mapped_bits = 96;
    unsigned compared;

    if (net->family == AF_INET) {
        return net->prefix < RELAY_ACCESS_MIN_PREFIX_IPV4;
    }
    if (net->prefix < RELAY_ACCESS_MIN_PREFIX_IPV6) {
        return true;
    }
    /* ::ffff:a.b.c.d matches IPv4 clients too (netaddr_cidr_match), so
     * ::/80 or ::ffff:0:0/100 trusts as much as 0.0.0.0/4. */
    if (net->prefix >= mapped_bits + RELAY_ACCESS_MIN_PREFIX_IPV4) {
        return false;
    }
    compared = net->prefix < mapped_bits ? net->prefix : mapped_bits;
    return prefix_equal(net->bytes, mapped, compared);
}

bool relay_access_accepted_domain(const struct config *config,
                                  const char *domain)
{
    size_t len = strlen(domain);

    if (len > 0 && domain[len - 1] == '.') {
        len--;
    }
    for (size_t i = 0; i < config->relay_domain_count; i++) {
        const char *accepted = config->relay_domains[i];

        if (strlen(accepted) == len &&
            strncasecmp(accepted, domain, len) == 0) {
            return true;
        }
    }
    return false;
}

bool relay_access_postmaster(const struct config *config,
                             const struct smtp_path *path)
{
    size_t local_len;

    if (path->is_postmaster) {
        return true;
    }
    if (path->domain[0] == '\0' || config->hostname == NULL) {
        return false;
    }
    local_len = (size_t)(path->domain - path->address) - 1;
    if (local_len != 10 ||
        strncasecmp(path->address, "postmaster", 10) != 0) {
        return false;
    }
    return strcasecmp(path->domain, config->hostname) == 0;
}

bool relay_access_sender_owned(const char *user, const struct smtp_path *path)
{
    const char *at = strrchr(user, '@');
    size_t local_len;

    if (path->is_null) {
        return true;
    }
    if (path->domain == NULL || path->domain[0] == '\0') {
        return false;
    }
    local_len = (size_t)(path->domain - path->address) - 1;
    if (at == NULL) {
        return strlen(user) == local_len &&
               strncmp(user, path->address, local_len) == 0;
    }
    return (size_t)(at - user) == local_len &&
           strncmp(user, path->address, local_len) == 0 &&
           strcasecmp(at + 1, path->domain) == 0;
}
