#include "core/relay_access.h"

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
