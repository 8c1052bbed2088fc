#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/conf_parse.h"
#include "core/config_dest_name.h"
#include "core/control_proto.h"
#include "dns/resolver.h"
#include "proto/smtp_address.h"

/* A configuration file larger than this is rejected before parsing. */
#define CONFIG_FILE_MAX (1024 * 1024)

#define CONFIG_MESSAGE_SIZE_MIN 1024ULL
#define CONFIG_MESSAGE_SIZE_MAX (2048ULL * 1024 * 1024)
#define CONFIG_MESSAGE_SIZE_DEFAULT (10ULL * 1024 * 1024)

/* Inbound limit defaults; README.md's Configuration table explains each
 * choice. */
#define CONFIG_MAX_RECIPIENTS_DEFAULT 1000
#define CONFIG_MAX_LINE_LENGTH_DEFAULT 1024
#define CONFIG_MAX_TEXT_LINE_LENGTH_DEFAULT 1000
#define CONFIG_MAX_CONNECTIONS_DEFAULT 1000
#define CONFIG_MAX_CONNECTIONS_PER_IP_DEFAULT 50
#define CONFIG_MAX_ERRORS_DEFAULT 20
#define CONFIG_MAX_HOPS_DEFAULT 100
#define CONFIG_MAX_JUNK_COMMANDS_DEFAULT 100
#define CONFIG_TIMEOUT_COMMAND_DEFAULT 300
#define CONFIG_TIMEOUT_DATA_DEFAULT 180
#define CONFIG_GREETING_DELAY_DEFAULT 1
#define CONFIG_AUTH_MAX_FAILURES_DEFAULT 3
/* With bcrypt cost 12 (about 0.2 s a check) a full queue of 32 delays a
 * login by about 6 s at most. */
#define CONFIG_AUTH_MAX_PENDING_DEFAULT 32
#define CONFIG_AUTH_MAX_PENDING_PER_IP_DEFAULT 4
#define CONFIG_RETRY_INTERVAL_DEFAULT 60
#define CONFIG_RETRY_MAX_INTERVAL_DEFAULT 3600
/* Each unreachable address can cost the 30-second connect timeout, so 10
 * addresses bound the connect waits of one attempt to 5 minutes. */
#define CONFIG_MAX_MX_HOSTS_DEFAULT 5
#define CONFIG_MAX_MX_ADDRESSES_DEFAULT 10
#define CONFIG_QUEUE_LIFETIME_DEFAULT (5 * 86400)

/* Outbound connections over all destinations. A cap below the number
 * of destinations that get mail at the same time makes nearly every
 * message close another destination's idle connection and open its
 * own. With 1,000 busy destinations and a cap of 500,
 * bench/delivery-domains made 43,000 to 49,000 connections for 50,000
 * messages, at about half the rate. 1,000 keeps one connection each for
 * that many destinations, or 50 at delivery_max_connections (20) each.
 * With the default inbound max_connections it needs an open-file limit
 * above 2,000, which the daemon gets by raising its soft limit to the
 * hard one (often 4,096 or more). */
#define CONFIG_DELIVERY_MAX_CONNECTIONS_TOTAL_DEFAULT 1000

/* Durability batch waits at most 1 ms by default, so a 250 comes at
 * most 1 ms later than with fsync. */
#define CONFIG_BATCH_WAIT_DEFAULT 1000
#define CONFIG_BATCH_WAIT_MAX 100000

/* Queue space: a limit, when set, of at least 1 MiB, and a floor of free
 * space that keeps room for the journal and for other programs. */
#define CONFIG_QUEUE_SPACE_MIN (1024ULL * 1024)
#define CONFIG_QUEUE_SPACE_MAX (1ULL << 50)
#define CONFIG_QUEUE_MIN_FREE_DEFAULT (64ULL * 1024 * 1024)

/* Segment files: the queue store's bounds (core/queue_internal.h). */
#define CONFIG_SEGMENT_SIZE_DEFAULT (64ULL * 1024 * 1024)
#define CONFIG_SEGMENT_SIZE_MIN (256ULL * 1024)
#define CONFIG_SEGMENT_SIZE_MAX (1ULL << 40)

/* Debian's and Ubuntu's system CA bundle (package ca-certificates). */
#define CONFIG_OUTBOUND_TLS_CA_FILE_DEFAULT \
    "/etc/ssl/certs/ca-certificates.crt"

#define CONFIG_RESOLVER_PORT 53
#define CONFIG_SMTP_PORT 25

/* config_loader: the state of one config_load call. */
struct config_loader {
    const char *path;
    const char *key;            /* top-level key being applied */
    char *err;
    size_t err_size;
    struct config *next;        /* receives the new values */
};

struct config_key {
    const char *name;
    int (*apply)(struct config_loader *loader, const struct conf_node *node);
};

/* config_number: the bounds of a numeric key whose value is an unsigned
 * field of struct config at offset. */
struct config_number {
    const char *name;
    int64_t min;
    int64_t max;
    size_t offset;
    bool zero_off;              /* 0 is valid too and turns the limit off */
};

static const struct config_number config_numbers[] = {
    /* RFC 5321 section 4.5.3.1.8: a server must accept 100 recipients. */
    {"max_recipients", 100, 100000, offsetof(struct config, max_recipients),
     false},
    /* Section 4.5.3.1.4: a command line may be 512 bytes long. */
    {"max_line_length", 512, 65536, offsetof(struct config, max_line_length),
     false},
    /* Section 4.5.3.1.6: a text line may be 1000 bytes long. */
    {"max_text_line_length", 1000, 1024 * 1024,
     offsetof(struct config, max_text_line_length), true},
    {"max_connections", 1, 100000, offsetof(struct config, max_connections),
     false},
    {"max_connections_per_ip", 1, 100000,
     offsetof(struct config, max_connections_per_ip), false},
    {"max_errors", 1, 1000, offsetof(struct config, max_errors), false},
    /* RFC 5321 section 6.3: a loop limit should be at least 100 hops. */
    {"max_hops", 1, 1000, offsetof(struct config, max_hops), false},
    {"max_junk_commands", 1, 1000000,
     offsetof(struct config, max_junk_commands), false},
    {"timeout_command", 1, 3600, offsetof(struct config, timeout_command),
     false},
    {"timeout_data", 1, 3600, offsetof(struct config, timeout_data), false},
    {"greeting_delay", 0, 60, offsetof(struct config, greeting_delay),
     false},
    {"auth_max_failures", 1, 100, offsetof(struct config, auth_max_failures),
     false},
    {"auth_max_pending", 1, 10000,
     offsetof(struct config, auth_max_pending), false},
    {"auth_max_pending_per_ip", 1, 10000,
     offsetof(struct config, auth_max_pending_per_ip), false},
    {"retry_interval", 1, 86400, offsetof(struct config, retry_interval),
     false},
    {"retry_max_interval", 1, 7 * 86400,
     offsetof(struct config, retry_max_interval), false},
    {"queue_lifetime", 1, 365 * 86400,
     offsetof(struct config, queue_lifetime), false},
    /* 0 is the default and turns delay warnings off. */
    {"delay_warning", 0, 365 * 86400,
     offsetof(struct config, delay_warning), false},
    {"batch_wait", 0, CONFIG_BATCH_WAIT_MAX,
     offsetof(struct config, batch_wait), false},
    /* The resolver keeps at most DNS_MAX_MX_HOSTS hosts with at most
     * DNS_MAX_ADDRS addresses each. */
    {"max_mx_hosts", 1, DNS_MAX_MX_HOSTS,
     offsetof(struct config, max_mx_hosts), false},
    {"max_mx_addresses", 1, DNS_MAX_MX_HOSTS * DNS_MAX_ADDRS,
     offsetof(struct config, max_mx_addresses), false},
    {"delivery_max_connections_total", 1, 100000,
     offsetof(struct config, delivery_max_connections_total), false},
    {"resolver_max_queries", 1, 100000,
     offsetof(struct config, resolver_max_queries), false},
};

static int config_error(struct config_loader *loader, unsigned line,
                        const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int config_error(struct config_loader *loader, unsigned line,
                        const char *fmt, ...)
{
    char reason[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    snprintf(loader->err, loader->err_size, "%s:%u: %s", loader->path, line,
             reason);
    return -1;
}

/* Writes "FILE:LINE: invalid value for 'KEY': reason" for node. */
static int config_invalid(struct config_loader *loader,
                          const struct conf_node *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int config_invalid(struct config_loader *loader,
                          const struct conf_node *node, const char *fmt, ...)
{
    char reason[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    return config_error(loader, node->line, "invalid value for '%s': %s",
                        loader->key, reason);
}

static int config_expect(struct config_loader *loader,
                         const struct conf_node *node, enum conf_type type)
{
    const char *article = type == CONF_ARRAY || type == CONF_OBJECT ? "an"
                                                                    : "a";

    if (node->type == type) {
        return 0;
    }
    return config_invalid(loader, node, "expected %s %s, found %s", article,
                          conf_type_name(type), conf_type_name(node->type));
}

static void config_free_tls_sni(struct config_tls_sni *sni, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(sni[i].host);
        free(sni[i].cert);
        free(sni[i].key);
    }
    free(sni);
}

/* config_free_routes frees routes[0..count) and their strings; a route
 * that failed to parse half-way is freed too. */
static void config_free_routes(struct config_route *routes, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(routes[i].domain);
        free(routes[i].auth_user);
        free(routes[i].auth_password);
    }
    free(routes);
}

/* Frees each owned field of config that keep does not share. With a
 * zeroed keep it frees them all. */
static void config_free_fields(struct config *config,
                               const struct config *keep)
{
    if (config->queue_dir != keep->queue_dir) {
        free(config->queue_dir);
    }
    if (config->hostname != keep->hostname) {
        free(config->hostname);
    }
    if (config->relay_networks != keep->relay_networks) {
        free(config->relay_networks);
    }
    if (config->relay_domains != keep->relay_domains) {
        for (size_t i = 0; i < config->relay_domain_count; i++) {
            free(config->relay_domains[i]);
        }
        free(config->relay_domains);
    }
    if (config->postmaster != keep->postmaster) {
        free(config->postmaster);
    }
    if (config->auth_users_file != keep->auth_users_file) {
        free(config->auth_users_file);
    }
    if (config->tls_cert != keep->tls_cert) {
        free(config->tls_cert);
    }
    if (config->tls_key != keep->tls_key) {
        free(config->tls_key);
    }
    if (config->tls_ciphers != keep->tls_ciphers) {
        free(config->tls_ciphers);
    }
    if (config->tls_sni != keep->tls_sni) {
        config_free_tls_sni(config->tls_sni, config->tls_sni_count);
    }
    if (config->outbound_tls_ca_file != keep->outbound_tls_ca_file) {
        free(config->outbound_tls_ca_file);
    }
    if (config->smarthost_auth_user != keep->smarthost_auth_user) {
        free(config->smarthost_auth_user);
    }
    if (config->smarthost_auth_password != keep->smarthost_auth_password) {
        free(config->smarthost_auth_password);
    }
    if (config->routes != keep->routes) {
        config_free_routes(config->routes, config->route_count);
    }
    if (config->destinations != keep->destinations) {
        for (size_t i = 0; i < config->destination_count; i++) {
            free(config->destinations[i].name);
        }
        free(config->destinations);
    }
}

void config_cleanup(struct config *config)
{
    struct config none;

    if (config == NULL) {
        return;
    }
    memset(&none, 0, sizeof(none));
    config_free_fields(config, &none);
    memset(config, 0, sizeof(*config));
}

/* Stores the system host name, or "localhost" when it is unavailable or
 * not a valid host name (an SMTP greeting needs one). */
static int config_default_hostname(struct config *config)
{
    char name[256];

    if (gethostname(name, sizeof(name)) < 0) {
        name[0] = '\0';
    }
    name[sizeof(name) - 1] = '\0';
    if (!netaddr_is_hostname(name)) {
        snprintf(name, sizeof(name), "localhost");
    }
    config->hostname = strdup(name);
    return config->hostname != NULL ? 0 : -1;
}

int config_init(struct config *config)
{
    memset(config, 0, sizeof(*config));
    if (netaddr_parse_hostport("127.0.0.1:2525", 0, &config->listen[0]) <
        0) {
        return -1;
    }
    config->listen_count = 1;

    config->queue_dir = strdup("./var/queue");
    config->relay_networks = calloc(1, sizeof(*config->relay_networks));
    config->outbound_tls_ca_file =
        strdup(CONFIG_OUTBOUND_TLS_CA_FILE_DEFAULT);
    if (config->queue_dir == NULL || config->relay_networks == NULL ||
        config->outbound_tls_ca_file == NULL ||
        config_default_hostname(config) < 0 ||
        netaddr_parse_cidr("127.0.0.1/32", &config->relay_networks[0]) < 0) {
        config_cleanup(config);
        return -1;
    }
    config->relay_network_count = 1;

    config->durability = QUEUE_DURABILITY_FSYNC;
    config->batch_wait = CONFIG_BATCH_WAIT_DEFAULT;
    config->queue_max_size = 0;
    config->queue_min_free = CONFIG_QUEUE_MIN_FREE_DEFAULT;
    config->segment_size = CONFIG_SEGMENT_SIZE_DEFAULT;
    config->max_message_size = CONFIG_MESSAGE_SIZE_DEFAULT;
    config->max_recipients = CONFIG_MAX_RECIPIENTS_DEFAULT;
    config->max_line_length = CONFIG_MAX_LINE_LENGTH_DEFAULT;
    config->max_text_line_length = CONFIG_MAX_TEXT_LINE_LENGTH_DEFAULT;
    config->max_connections = CONFIG_MAX_CONNECTIONS_DEFAULT;
    config->max_connections_per_ip = CONFIG_MAX_CONNECTIONS_PER_IP_DEFAULT;
    config->max_errors = CONFIG_MAX_ERRORS_DEFAULT;
    config->max_hops = CONFIG_MAX_HOPS_DEFAULT;
    config->max_junk_commands = CONFIG_MAX_JUNK_COMMANDS_DEFAULT;
    config->timeout_command = CONFIG_TIMEOUT_COMMAND_DEFAULT;
    config->timeout_data = CONFIG_TIMEOUT_DATA_DEFAULT;
    config->greeting_delay = CONFIG_GREETING_DELAY_DEFAULT;
    config->retry_interval = CONFIG_RETRY_INTERVAL_DEFAULT;
    config->retry_max_interval = CONFIG_RETRY_MAX_INTERVAL_DEFAULT;
    config->queue_lifetime = CONFIG_QUEUE_LIFETIME_DEFAULT;
    config->delay_warning = 0;
    config->reject_early_talkers = true;
    config->auth_max_failures = CONFIG_AUTH_MAX_FAILURES_DEFAULT;
    config->auth_max_pending = CONFIG_AUTH_MAX_PENDING_DEFAULT;
    config->auth_max_pending_per_ip = CONFIG_AUTH_MAX_PENDING_PER_IP_DEFAULT;
    config->auth_received_header = true;
    config->resolver_max_queries = DNS_DEFAULT_MAX_QUERIES;
    config->max_mx_hosts = CONFIG_MAX_MX_HOSTS_DEFAULT;
    config->max_mx_addresses = CONFIG_MAX_MX_ADDRESSES_DEFAULT;
    config_delivery_defaults(&config->delivery);
    config->delivery_max_connections_total =
        CONFIG_DELIVERY_MAX_CONNECTIONS_TOTAL_DEFAULT;
    config->log_level = LOG_LEVEL_INFO;
    config->outbound_tls = TLS_POLICY_MAY;
    return 0;
}

/* Returns the length of domain without one trailing dot. */
static size_t config_domain_length(const char *domain)
{
    size_t len = strlen(domain);

    return len > 0 && domain[len - 1] == '.' ? len - 1 : len;
}

const struct config_route *config_route_entry(
    const struct config *config, const char *domain)
{
    size_t len = config_domain_length(domain);

    for (size_t i = 0; i < config->route_count; i++) {
        const struct config_route *route = &config->routes[i];

        if (strlen(route->domain) == len &&
            strncasecmp(route->domain, domain, len) == 0) {
            return route;
        }
    }
    return NULL;
}

enum tls_policy config_tls_policy_for(const struct config *config,
                                      const char *domain)
{
    const struct config_route *route = config_route_entry(config, domain);

    return route != NULL && route->has_tls ? route->tls
                                           : config->outbound_tls;
}

const struct netaddr_hostport *config_route_for(const struct config *config,
                                                const char *domain)
{
    const struct config_route *route = config_route_entry(config, domain);

    if (route != NULL) {
        return &route->hop;
    }
    return config->has_smarthost ? &config->smarthost : NULL;
}

/* Checks that node is a string or an array of strings and stores how many
 * strings it holds. They are node itself, or its array items. */
static int config_string_list(struct config_loader *loader,
                              const struct conf_node *node, size_t *count)
{
    if (node->type == CONF_STRING) {
        *count = 1;
        return 0;
    }
    if (node->type != CONF_ARRAY) {
        return config_invalid(loader, node,
                              "expected a string or an array of strings, "
                              "found %s", conf_type_name(node->type));
    }
    for (const struct conf_node *item = node->first; item != NULL;
         item = item->next) {
        if (config_expect(loader, item, CONF_STRING) < 0) {
            return -1;
        }
    }
    *count = node->child_count;
    return 0;
}

static const struct conf_node *config_list_first(const struct conf_node *node)
{
    return node->type == CONF_ARRAY ? node->first : node;
}

/* Copies a domain in lower case without its trailing dot. Returns NULL
 * only when out of memory, so the caller still validates the copy. */
static char *config_domain_normalize(const char *text)
{
    char *domain = strndup(text, config_domain_length(text));

    for (char *p = domain; p != NULL && *p != '\0'; p++) {
        *p = (char)tolower((unsigned char)*p);
    }
    return domain;
}

static int config_out_of_memory(struct config_loader *loader,
                                const struct conf_node *node)
{
    return config_error(loader, node->line, "out of memory");
}

/* Parses a string or list of IP:PORT into listen[0..*count). */
static int config_parse_listen(struct config_loader *loader,
                               const struct conf_node *node,
                               struct netaddr_hostport *listen,
                               size_t *count)
{
    const struct conf_node *item = config_list_first(node);

    if (config_string_list(loader, node, count) < 0) {
        return -1;
    }
    if (*count > CONFIG_MAX_LISTEN) {
        return config_invalid(loader, node, "more than %d addresses",
                              CONFIG_MAX_LISTEN);
    }

    for (size_t i = 0; i < *count; i++, item = item->next) {
        if (netaddr_parse_hostport(item->text, 0, &listen[i]) < 0 ||
            listen[i].is_name) {
            return config_invalid(loader, item,
                                  "'%s' is not IP:PORT or [IPv6]:PORT "
                                  "with an IP address", item->text);
        }
        for (size_t j = 0; j < i; j++) {
            if (listen[j].addr_len == listen[i].addr_len &&
                memcmp(&listen[j].addr, &listen[i].addr,
                       listen[i].addr_len) == 0) {
                return config_invalid(loader, item, "'%s' is listed twice",
                                      item->text);
            }
        }
    }
    return 0;
}

static int config_apply_listen(struct config_loader *loader,
                               const struct conf_node *node)
{
    struct netaddr_hostport listen[CONFIG_MAX_LISTEN];
    size_t count;

    if (config_parse_listen(loader, node, listen, &count) < 0) {
        return -1;
    }
    if (count == 0) {
        return config_invalid(loader, node, "at least one address is "
                                            "required");
    }
    memcpy(loader->next->listen, listen, count * sizeof(listen[0]));
    loader->next->listen_count = count;
    return 0;
}

/* tls_listen may be an empty list: no implicit TLS listener. */
static int config_apply_tls_listen(struct config_loader *loader,
                                   const struct conf_node *node)
{
    struct netaddr_hostport listen[CONFIG_MAX_LISTEN];
    size_t count;

    if (config_parse_listen(loader, node, listen, &count) < 0) {
        return -1;
    }
    memcpy(loader->next->tls_listen, listen, count * sizeof(listen[0]));
    loader->next->tls_listen_count = count;
    return 0;
}

static int config_apply_queue_dir(struct config_loader *loader,
                                  const struct conf_node *node)
{
    char *dir;

    if (config_expect(loader, node, CONF_STRING) < 0) {
        return -1;
    }
    if (node->text[0] == '\0') {
        return config_invalid(loader, node,
                              "the directory name must not be empty");
    }
    dir = strdup(node->text);
    if (dir == NULL) {
        return config_out_of_memory(loader, node);
    }
    loader->next->queue_dir = dir;
    return 0;
}

static int config_apply_hostname(struct config_loader *loader,
                                 const struct conf_node *node)
{
    char *hostname;

    if (config_expect(loader, node, CONF_STRING) < 0) {
        return -1;
    }
    if (!netaddr_is_hostname(node->text)) {
        return config_invalid(loader, node, "'%s' is not a host name",
                              node->text);
    }
    hostname = strdup(node->text);
    if (hostname == NULL) {
        return config_out_of_memory(loader, node);
    }
    loader->next->hostname = hostname;
    return 0;
}

static int config_apply_relay_networks(struct config_loader *loader,
                                       const struct conf_node *node)
{
    const struct conf_node *item = config_list_first(node);
    struct netaddr_cidr *networks = NULL;
    size_t count;

    if (config_string_list(loader, node, &count) < 0) {
        return -1;
    }
    if (count > 0) {
        networks = calloc(count, sizeof(*networks));
        if (networks == NULL) {
            return config_out_of_memory(loader, node);
        }
    }

    for (size_t i = 0; i < count; i++, item = item->next) {
        if (netaddr_parse_cidr(item->text, &networks[i]) < 0) {
            free(networks);
            return config_invalid(loader, item,
                                  "'%s' is not an IP address or a network "
                                  "such as 10.0.0.0/8", item->text);
        }
    }
    loader->next->relay_networks = networks;
    loader->next->relay_network_count = count;
    return 0;
}

static void config_free_strings(char **strings, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(strings[i]);
    }
    free(strings);
}

static int config_apply_relay_domains(struct config_loader *loader,
                                      const struct conf_node *node)
{
    const struct conf_node *item = config_list_first(node);
    char **domains = NULL;
    size_t count;
    size_t done = 0;
    int rc = -1;

    if (config_string_list(loader, node, &count) < 0) {
        return -1;
    }
    if (count > 0) {
        domains = calloc(count, sizeof(*domains));
        if (domains == NULL) {
            return config_out_of_memory(loader, node);
        }
    }

    for (; done < count; done++, item = item->next) {
        domains[done] = config_domain_normalize(item->text);
        if (domains[done] == NULL) {
            config_out_of_memory(loader, item);
            goto out;
        }
        if (!netaddr_is_hostname(domains[done])) {
            config_invalid(loader, item, "'%s' is not a domain name",
                           item->text);
            goto out;
        }
    }
    loader->next->relay_domains = domains;
    loader->next->relay_domain_count = count;
    domains = NULL;
    rc = 0;

out:
    if (domains != NULL) {
        /* calloc left the entries not yet filled NULL. */
        config_free_strings(domains, count);
    }
    return rc;
}

/* Parses a next hop, "HOST" or "HOST:PORT", with the given default port.
 * With ip_only set the host must be an IP address. */
static int config_parse_hop(struct config_loader *loader,
                            const struct conf_node *node,
                            uint16_t default_port, bool ip_only,
                            struct netaddr_hostport *hop)
{
    if (config_expect(loader, node, CONF_STRING) < 0) {
        return -1;
    }
    if (netaddr_parse_hostport(node->text, default_port, hop) < 0 ||
        (ip_only && hop->is_name)) {
        return config_invalid(loader, node, "'%s' is not %s", node->text,
                              ip_only ? "IP or IP:PORT"
                                      : "HOST or HOST:PORT");
    }
    return 0;
}

static int config_apply_resolver(struct config_loader *loader,
                                 const struct conf_node *node)
{
    struct netaddr_hostport hop;

    if (config_parse_hop(loader, node, CONFIG_RESOLVER_PORT, true, &hop) <
        0) {
        return -1;
    }
    loader->next->resolver = hop;
    loader->next->has_resolver = true;
    return 0;
}

static int config_apply_smarthost(struct config_loader *loader,
                                  const struct conf_node *node)
{
    struct netaddr_hostport hop;

    if (config_parse_hop(loader, node, CONFIG_SMTP_PORT, false, &hop) < 0) {
        return -1;
    }
    loader->next->smarthost = hop;
    loader->next->has_smarthost = true;
    return 0;
}

/* config_parse_tls_policy reads a policy name into *policy. */
static int config_parse_tls_policy(struct config_loader *loader,
                                   const struct conf_node *node,
                                   enum tls_policy *policy)
{
    if (config_expect(loader, node, CONF_STRING) < 0) {
        return -1;
    }
    if (tls_policy_parse(node->text, policy) < 0) {
        return config_invalid(loader, node, "'%s' is not a TLS policy; "
                              "use none, may, encrypt, verify or dane",
                              node->text);
    }
    return 0;
}

/* config_parse_secret copies a string value for AUTH: 1 to 255 bytes,
 * no control bytes, because it is sent in AUTH PLAIN. */
static int config_parse_secret(struct config_loader *loader,
                               const struct conf_node *node, char **out)
{
    size_t len;

    if (config_expect(loader, node, CONF_STRING) < 0) {
        return -1;
    }
    len = strlen(node->text);
    if (len == 0 || len > 255) {
        return config_invalid(loader, node, "'%s' must be 1 to 255 bytes",
                              node->key);
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)node->text[i];

        if (c < 0x20 || c == 0x7f) {
            return config_invalid(loader, node, "'%s' contains a control "
                                  "character", node->key);
        }
    }
    free(*out);
    *out = strdup(node->text);
    return *out != NULL ? 0 : config_out_of_memory(loader, node);
}

/* config_parse_transport reads transport = "smtp" | "discard". */
static int config_parse_transport(struct config_loader *loader,
                                  const struct conf_node *node,
                                  struct config_route *route)
{
    if (config_expect(loader, node, CONF_STRING) < 0) {
        return -1;
    }
    if (strcmp(node->text, "smtp") != 0 &&
        strcmp(node->text, "discard") != 0) {
        return config_invalid(loader, node, "'%s' is not a transport; use "
                              "smtp or discard", node->text);
    }
    route->discard = strcmp(node->text, "discard") == 0;
    return 0;
}

/* config_parse_route_field reads one field of a route object. */
static int config_parse_route_field(struct config_loader *loader,
                                    const struct conf_node *field,
                                    struct config_route *route)
{
    if (strcmp(field->key, "host") == 0) {
        return config_parse_hop(loader, field, CONFIG_SMTP_PORT, false,
                                &route->hop);
    }
    if (strcmp(field->key, "tls") == 0) {
        route->has_tls = true;
        return config_parse_tls_policy(loader, field, &route->tls);
    }
    if (strcmp(field->key, "transport") == 0) {
        return config_parse_transport(loader, field, route);
    }
    if (strcmp(field->key, "auth_user") == 0) {
        return config_parse_secret(loader, field, &route->auth_user);
    }
    return config_parse_secret(loader, field, &route->auth_password);
}

/* config_parse_route_options reads the object form of a route,
 * { host = "HOST:PORT"; tls = "POLICY"; auth_user = "U";
 * auth_password = "P"; transport = "smtp"; }, where host is required
 * unless transport is "discard". */
static int config_parse_route_options(struct config_loader *loader,
                                      const struct conf_node *member,
                                      struct config_route *route)
{
    static const char *const keys[] = {"host", "tls", "transport",
                                       "auth_user", "auth_password"};
    bool seen[5] = {false};

    for (const struct conf_node *field = member->first; field != NULL;
         field = field->next) {
        size_t k = 0;

        while (k < 5 && strcmp(field->key, keys[k]) != 0) {
            k++;
        }
        if (k == 5 || seen[k]) {
            return config_invalid(loader, field, "'%s' in the route for "
                                  "'%s' is %s; give host, tls, transport, "
                                  "auth_user and auth_password once each",
                                  field->key, route->domain,
                                  k < 5 ? "repeated" : "unknown");
        }
        seen[k] = true;
        if (config_parse_route_field(loader, field, route) < 0) {
            return -1;
        }
    }
    if (!seen[0] && !route->discard) {
        return config_invalid(loader, member, "the route for '%s' needs "
                              "host", route->domain);
    }
    if (route->discard && (seen[0] || seen[1] || seen[3])) {
        return config_invalid(loader, member, "the route for '%s' has "
                              "transport discard, which makes no "
                              "connection; remove host, tls and the AUTH "
                              "keys", route->domain);
    }
    if (seen[3] != seen[4]) {
        return config_invalid(loader, member, "the route for '%s' needs "
                              "both auth_user and auth_password",
                              route->domain);
    }
    return 0;
}

/* Fills route from one member of the routes object. The duplicate check
 * compares it with routes[0..count), the routes parsed before it. */
static int config_parse_route(struct config_loader *loader,
                              const struct conf_node *member,
                              const struct config_route *routes,
                              size_t count, struct config_route *route)
{
    route->domain = config_domain_normalize(member->key);
    if (route->domain == NULL) {
        return config_out_of_memory(loader, member);
    }
    if (!netaddr_is_hostname(route->domain)) {
        return config_invalid(loader, member, "'%s' is not a domain name",
                              member->key);
    }
    for (size_t i = 0; i < count; i++) {
        if (strcmp(routes[i].domain, route->domain) == 0) {
            return config_invalid(loader, member, "duplicate route for "
                                                  "'%s'", route->domain);
        }
    }
    if (member->type == CONF_OBJECT) {
        return config_parse_route_options(loader, member, route);
    }
    return config_parse_hop(loader, member, CONFIG_SMTP_PORT, false,
                            &route->hop);
}

static int config_apply_routes(struct config_loader *loader,
                               const struct conf_node *node)
{
    const struct conf_node *member;
    struct config_route *routes = NULL;
    size_t count = 0;

    if (config_expect(loader, node, CONF_OBJECT) < 0) {
        return -1;
    }
    if (node->child_count > 0) {
        routes = calloc(node->child_count, sizeof(*routes));
        if (routes == NULL) {
            return config_out_of_memory(loader, node);
        }
    }

    for (member = node->first; member != NULL; member = member->next) {
        int rc = config_parse_route(loader, member, routes, count,
                                    &routes[count]);

        count++;
        if (rc < 0) {
            config_free_routes(routes, count);
            return -1;
        }
    }
    loader->next->routes = routes;
    loader->next->route_count = count;
    return 0;
}

static int config_apply_durability(struct config_loader *loader,
                                   const struct conf_node *node)
{
    static const struct {
        const char *name;
        enum queue_durability value;
    } modes[] = {
        {"fsync", QUEUE_DURABILITY_FSYNC},
        {"batch", QUEUE_DURABILITY_BATCH},
        {"none", QUEUE_DURABILITY_NONE},
    };

    if (config_expect(loader, node, CONF_STRING) < 0) {
        return -1;
    }
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (strcmp(node->text, modes[i].name) == 0) {
            loader->next->durability = modes[i].value;
            return 0;
        }
    }
    return config_invalid(loader, node,
                          "'%s' is not fsync, batch or none", node->text);
}

/* Names what node is, for "expected ..., found ..." messages. */
static const char *config_found(const struct conf_node *node)
{
    const char *text = node->text;

    if (node->type == CONF_NUMBER && node->duration) {
        return "a duration";
    }

    /* An unquoted "1.5" is no number to the parser, which makes it a
     * string, so name what the user wrote. */
    if (node->type == CONF_STRING && !node->quoted && text != NULL &&
        strspn(text, "0123456789") > 0 &&
        text[strspn(text, "0123456789")] == '.') {
        return "a fraction";
    }
    return conf_type_name(node->type);
}

/* Returns the config_numbers row of the key being applied. Every key
 * whose apply function calls this has a row. */
static const struct config_number *config_number_def(
    const struct config_loader *loader)
{
    size_t i = 0;

    while (strcmp(config_numbers[i].name, loader->key) != 0) {
        i++;
    }
    return &config_numbers[i];
}

static void config_store_number(struct config_loader *loader,
                                const struct config_number *def,
                                int64_t value)
{
    unsigned *field = (unsigned *)(void *)((char *)loader->next +
                                           def->offset);

    *field = (unsigned)value;
}

/* Stores a whole number within the key's bounds, or 0 for a key that
 * 0 turns off. */
static int config_apply_count(struct config_loader *loader,
                              const struct conf_node *node)
{
    const struct config_number *def = config_number_def(loader);
    bool off = def->zero_off && node->type == CONF_NUMBER &&
               node->number == 0;

    if (node->type != CONF_NUMBER || node->duration) {
        return config_invalid(loader, node, "expected a whole number, "
                                            "found %s", config_found(node));
    }
    if (!off && (node->number < def->min || node->number > def->max)) {
        return config_invalid(loader, node, "%s is outside %lld..%lld%s",
                              node->text, (long long)def->min,
                              (long long)def->max,
                              def->zero_off ? " (0 turns the check off)"
                                            : "");
    }
    config_store_number(loader, def, node->number);
    return 0;
}

/* Writes seconds as "Ns", "Nmin", "Nh" or "Nd", the largest unit that
 * divides it. */
static const char *config_format_seconds(int64_t seconds, char *buf,
                                         size_t size)
{
    if (seconds != 0 && seconds % 86400 == 0) {
        snprintf(buf, size, "%lldd", (long long)(seconds / 86400));
    } else if (seconds != 0 && seconds % 3600 == 0) {
        snprintf(buf, size, "%lldh", (long long)(seconds / 3600));
    } else if (seconds != 0 && seconds % 60 == 0) {
        snprintf(buf, size, "%lldmin", (long long)(seconds / 60));
    } else {
        snprintf(buf, size, "%llds", (long long)seconds);
    }
    return buf;
}

/* Stores a number of seconds, plain or with a time suffix, within the
 * key's bounds. */
static int config_apply_seconds(struct config_loader *loader,
                                const struct conf_node *node)
{
    const struct config_number *def = config_number_def(loader);
    char min[32];
    char max[32];
    size_t len;
    bool mega;

    if (node->type != CONF_NUMBER) {
        return config_invalid(loader, node, "expected a number of seconds "
                                            "such as 30 or 5min, found %s",
                              conf_type_name(node->type));
    }
    if (node->number >= def->min && node->number <= def->max) {
        config_store_number(loader, def, node->number);
        return 0;
    }

    /* "5m" is 5,000,000 like a size, so point to "5min". */
    len = strlen(node->text);
    mega = !node->duration && len > 0 &&
           tolower((unsigned char)node->text[len - 1]) == 'm';
    return config_invalid(loader, node, "%s is outside %s..%s%s",
                          node->text,
                          config_format_seconds(def->min, min, sizeof(min)),
                          config_format_seconds(def->max, max, sizeof(max)),
                          mega ? " (m multiplies by 1000000; write min for "
                                 "minutes)"
                               : "");
}

static int config_apply_reject_early_talkers(struct config_loader *loader,
                                             const struct conf_node *node)
{
    if (config_expect(loader, node, CONF_BOOL) < 0) {
        return -1;
    }
    loader->next->reject_early_talkers = node->boolean;
    return 0;
}

/* Stores auth_plaintext, auth_sender_match or auth_received_header. */
static int config_apply_auth_flag(struct config_loader *loader,
                                  const struct conf_node *node)
{
    if (config_expect(loader, node, CONF_BOOL) < 0) {
        return -1;
    }
    if (strcmp(loader->key, "auth_plaintext") == 0) {
        loader->next->auth_plaintext = node->boolean;
    } else if (strcmp(loader->key, "auth_sender_match") == 0) {
        loader->next->auth_sender_match = node->boolean;
    } else {
        loader->next->auth_received_header = node->boolean;
    }
    return 0;
}

static int config_apply_auth_users_file(struct config_loader *loader,
                                        const struct conf_node *node)
{
    char *path;

    if (config_expect(loader, node, CONF_STRING) < 0) {
        return -1;
    }
    if (node->text[0] == '\0') {
        return config_invalid(loader, node, "the file name must not be "
                                            "empty; leave the key out to "
                                            "turn AUTH off");
    }
    path = strdup(node->text);
    if (path == NULL) {
        return config_out_of_memory(loader, node);
    }
    loader->next->auth_users_file = path;
    return 0;
}

static int config_apply_mx_allow_loopback(struct config_loader *loader,
                                          const struct conf_node *node)
{
    if (config_expect(loader, node, CONF_BOOL) < 0) {
        return -1;
    }
    loader->next->mx_allow_loopback = node->boolean;
    return 0;
}

static int config_apply_max_message_size(struct config_loader *loader,
                                         const struct conf_node *node)
{
    if (node->type != CONF_NUMBER || node->duration) {
        return config_invalid(loader, node, "expected a number of bytes "
                                            "such as 10mb, found %s",
                              config_found(node));
    }
    if (node->number < (int64_t)CONFIG_MESSAGE_SIZE_MIN ||
        node->number > (int64_t)CONFIG_MESSAGE_SIZE_MAX) {
        return config_invalid(loader, node,
                              "%s is outside 1kb..2gb (1024..%llu bytes)",
                              node->text, CONFIG_MESSAGE_SIZE_MAX);
    }
    loader->next->max_message_size = (uint64_t)node->number;
    return 0;
}

/* Stores queue_max_size or queue_min_free: 0, or bytes with an optional
 * size suffix within 1 MiB..1 PiB. */
static int config_apply_queue_space(struct config_loader *loader,
                                    const struct conf_node *node)
{
    uint64_t *field = strcmp(loader->key, "queue_max_size") == 0
                          ? &loader->next->queue_max_size
                          : &loader->next->queue_min_free;

    if (node->type != CONF_NUMBER || node->duration) {
        return config_invalid(loader, node, "expected a number of bytes "
                                            "such as 512mb, found %s",
                              config_found(node));
    }
    if (node->number != 0 &&
        (node->number < (int64_t)CONFIG_QUEUE_SPACE_MIN ||
         node->number > (int64_t)CONFIG_QUEUE_SPACE_MAX)) {
        return config_invalid(loader, node,
                              "%s is outside 1mb..1048576gb (0 turns the "
                              "check off)", node->text);
    }
    *field = (uint64_t)node->number;
    return 0;
}

static int config_apply_segment_size(struct config_loader *loader,
                                     const struct conf_node *node)
{
    if (node->type != CONF_NUMBER || node->duration) {
        return config_invalid(loader, node, "expected a number of bytes "
                                            "such as 64mb, found %s",
                              config_found(node));
    }
    if (node->number < (int64_t)CONFIG_SEGMENT_SIZE_MIN ||
        node->number > (int64_t)CONFIG_SEGMENT_SIZE_MAX) {
        return config_invalid(loader, node, "%s is outside 256kb..1024gb",
                              node->text);
    }
    loader->next->segment_size = (uint64_t)node->number;
    return 0;
}

static int config_apply_log_level(struct config_loader *loader,
                                  const struct conf_node *node)
{
    if (config_expect(loader, node, CONF_STRING) < 0) {
        return -1;
    }
    if (log_parse_level(node->text, &loader->next->log_level) < 0) {
        return config_invalid(loader, node,
                              "'%s' is not debug, info, warning or error",
                              node->text);
    }
    return 0;
}

/* Accepts local@domain as RCPT TO takes it, ASCII only, without angle
 * brackets. The parser of RCPT TO decides, so the configured address is
 * one the outbound side accepts; a bare postmaster has no domain to
 * deliver to. */
static bool config_is_address(const char *text)
{
    struct smtp_mailbox mailbox;

    return smtp_mailbox_split(text, false, &mailbox) == SMTP_PATH_OK &&
           mailbox.domain[0] != '\0';
}

static int config_apply_postmaster(struct config_loader *loader,
                                   const struct conf_node *node)
{
    char *address;

    if (config_expect(loader, node, CONF_STRING) < 0) {
        return -1;
    }
    if (!config_is_address(node->text)) {
        return config_invalid(loader, node, "'%s' is not an address such "
                                            "as admin@example.com",
                              node->text);
    }
    address = strdup(node->text);
    if (address == NULL) {
        return config_out_of_memory(loader, node);
    }
    loader->next->postmaster = address;
    return 0;
}

/* Stores a non-empty file name; relative names are relative to the
 * directory the daemon starts in. */
static int config_file_name(struct config_loader *loader,
                            const struct conf_node *node, char **out)
{
    if (config_expect(loader, node, CONF_STRING) < 0) {
        return -1;
    }
    if (node->text[0] == '\0') {
        return config_invalid(loader, node, "the file name must not be "
                                            "empty");
    }
    *out = strdup(node->text);
    return *out != NULL ? 0 : config_out_of_memory(loader, node);
}

static int config_apply_tls_cert(struct config_loader *loader,
                                 const struct conf_node *node)
{
    return config_file_name(loader, node, &loader->next->tls_cert);
}

static int config_apply_tls_key(struct config_loader *loader,
                                const struct conf_node *node)
{
    return config_file_name(loader, node, &loader->next->tls_key);
}

static int config_apply_tls_min_version(struct config_loader *loader,
                                        const struct conf_node *node)
{
    /* An unquoted 1.2 is read as a string atom, since it is no
     * integer. */
    if (config_expect(loader, node, CONF_STRING) < 0) {
        return -1;
    }
    if (strcmp(node->text, "1.2") != 0 && strcmp(node->text, "1.3") != 0) {
        return config_invalid(loader, node, "'%s' is not 1.2 or 1.3",
                              node->text);
    }
    loader->next->tls_min_version_1_3 = strcmp(node->text, "1.3") == 0;
    return 0;
}

/* The list itself is checked by BoringSSL when the daemon builds its
 * TLS context. */
static int config_apply_tls_ciphers(struct config_loader *loader,
                                    const struct conf_node *node)
{
    char *ciphers;

    if (config_expect(loader, node, CONF_STRING) < 0) {
        return -1;
    }
    if (node->text[0] == '\0') {
        return config_invalid(loader, node, "the cipher list must not be "
                                            "empty");
    }
    ciphers = strdup(node->text);
    if (ciphers == NULL) {
        return config_out_of_memory(loader, node);
    }
    loader->next->tls_ciphers = ciphers;
    return 0;
}

/* Accepts a host name, or "*." and a host name. */
static bool config_is_sni_host(const char *host)
{
    if (strncmp(host, "*.", 2) == 0) {
        host += 2;
    }
    return strchr(host, '*') == NULL && netaddr_is_hostname(host);
}

/* Fills sni from one member "host { cert = FILE; key = FILE; }" of
 * tls_sni. The duplicate check compares it with earlier[0..count). */
static int config_parse_tls_sni(struct config_loader *loader,
                                const struct conf_node *member,
                                const struct config_tls_sni *earlier,
                                size_t count, struct config_tls_sni *sni)
{
    if (config_expect(loader, member, CONF_OBJECT) < 0) {
        return -1;
    }
    sni->host = config_domain_normalize(member->key);
    if (sni->host == NULL) {
        return config_out_of_memory(loader, member);
    }
    if (!config_is_sni_host(sni->host)) {
        return config_invalid(loader, member, "'%s' is not a host name or "
                              "*.domain", member->key);
    }
    for (size_t i = 0; i < count; i++) {
        if (strcmp(earlier[i].host, sni->host) == 0) {
            return config_invalid(loader, member, "'%s' is listed twice",
                                  sni->host);
        }
    }
    for (const struct conf_node *field = member->first; field != NULL;
         field = field->next) {
        char **slot = strcmp(field->key, "cert") == 0  ? &sni->cert
                      : strcmp(field->key, "key") == 0 ? &sni->key
                                                       : NULL;

        if (slot == NULL || *slot != NULL) {
            return config_invalid(loader, field, "'%s' in '%s' is %s; "
                                  "give cert and key once each",
                                  field->key, sni->host,
                                  slot == NULL ? "unknown" : "repeated");
        }
        if (config_file_name(loader, field, slot) < 0) {
            return -1;
        }
    }
    if (sni->cert == NULL || sni->key == NULL) {
        return config_invalid(loader, member, "'%s' needs both cert and "
                              "key", sni->host);
    }
    return 0;
}

static int config_apply_tls_sni(struct config_loader *loader,
                                const struct conf_node *node)
{
    struct config_tls_sni *sni = NULL;
    size_t count = 0;

    if (config_expect(loader, node, CONF_OBJECT) < 0) {
        return -1;
    }
    if (node->child_count > 0) {
        sni = calloc(node->child_count, sizeof(*sni));
        if (sni == NULL) {
            return config_out_of_memory(loader, node);
        }
    }
    for (const struct conf_node *member = node->first; member != NULL;
         member = member->next) {
        int rc = config_parse_tls_sni(loader, member, sni, count,
                                      &sni[count]);

        count++;
        if (rc < 0) {
            config_free_tls_sni(sni, count);
            return -1;
        }
    }
    loader->next->tls_sni = sni;
    loader->next->tls_sni_count = count;
    return 0;
}

/* Stores a global delivery limit, a key named delivery_FIELD. */
static int config_apply_delivery(struct config_loader *loader,
                                 const struct conf_node *node)
{
    int field = config_delivery_find(loader->key + strlen("delivery_"));
    char reason[160];

    if (config_delivery_store(&loader->next->delivery, field, node, reason,
                              sizeof(reason)) < 0) {
        return config_invalid(loader, node, "%s", reason);
    }
    return 0;
}

/* Fills dest from one member of the destinations object, an object of
 * delivery limits named without the delivery_ prefix. */
static int config_parse_destination(struct config_loader *loader,
                                    const struct conf_node *member,
                                    const struct config_destination *dests,
                                    size_t count,
                                    struct config_destination *dest)
{
    char reason[160];

    dest->name = config_domain_normalize(member->key);
    if (dest->name == NULL) {
        return config_out_of_memory(loader, member);
    }
    if (dest->name[0] == '\0') {
        return config_invalid(loader, member, "empty destination name");
    }
    dest->line = member->line;
    if (config_dest_name_kind(dest->name, reason, sizeof(reason)) ==
        CONFIG_DEST_INVALID) {
        return config_invalid(loader, member, "destination '%.80s': %s",
                              member->key, reason);
    }
    for (size_t i = 0; i < count; i++) {
        if (strcmp(dests[i].name, dest->name) == 0) {
            return config_invalid(loader, member, "duplicate destination "
                                                  "'%s'", dest->name);
        }
    }
    if (config_expect(loader, member, CONF_OBJECT) < 0) {
        return -1;
    }
    for (const struct conf_node *limit = member->first; limit != NULL;
         limit = limit->next) {
        int field = config_delivery_find(limit->key);

        if (field < 0) {
            return config_invalid(loader, limit, "unknown delivery limit "
                                  "'%.60s' for destination '%s'",
                                  limit->key, dest->name);
        }
        if (config_delivery_store(&dest->limits, field, limit, reason,
                                  sizeof(reason)) < 0) {
            return config_invalid(loader, limit, "destination '%s': %s",
                                  dest->name, reason);
        }
        dest->set |= 1u << field;
    }
    return 0;
}

static int config_apply_destinations(struct config_loader *loader,
                                     const struct conf_node *node)
{
    struct config_destination *dests = NULL;
    size_t count = 0;

    if (config_expect(loader, node, CONF_OBJECT) < 0) {
        return -1;
    }
    if (node->child_count > 0) {
        dests = calloc(node->child_count, sizeof(*dests));
        if (dests == NULL) {
            return config_out_of_memory(loader, node);
        }
    }
    for (const struct conf_node *member = node->first; member != NULL;
         member = member->next) {
        int rc = config_parse_destination(loader, member, dests, count,
                                          &dests[count]);

        count++;
        if (rc < 0) {
            for (size_t i = 0; i < count; i++) {
                free(dests[i].name);
            }
            free(dests);
            return -1;
        }
    }
    loader->next->destinations = dests;
    loader->next->destination_count = count;
    return 0;
}

static int config_apply_outbound_tls(struct config_loader *loader,
                                     const struct conf_node *node)
{
    return config_parse_tls_policy(loader, node, &loader->next->outbound_tls);
}

static int config_apply_outbound_tls_ca_file(struct config_loader *loader,
                                             const struct conf_node *node)
{
    return config_file_name(loader, node,
                            &loader->next->outbound_tls_ca_file);
}

static int config_apply_smarthost_auth(struct config_loader *loader,
                                       const struct conf_node *node)
{
    if (strcmp(node->key, "smarthost_auth_user") == 0) {
        return config_parse_secret(loader, node,
                                   &loader->next->smarthost_auth_user);
    }
    return config_parse_secret(loader, node,
                               &loader->next->smarthost_auth_password);
}

static const struct config_key config_keys[] = {
    {"listen", config_apply_listen},
    {"queue_dir", config_apply_queue_dir},
    {"hostname", config_apply_hostname},
    {"relay_networks", config_apply_relay_networks},
    {"relay_domains", config_apply_relay_domains},
    {"resolver", config_apply_resolver},
    {"smarthost", config_apply_smarthost},
    {"routes", config_apply_routes},
    {"smarthost_auth_user", config_apply_smarthost_auth},
    {"smarthost_auth_password", config_apply_smarthost_auth},
    {"durability", config_apply_durability},
    {"batch_wait", config_apply_count},
    {"queue_max_size", config_apply_queue_space},
    {"queue_min_free", config_apply_queue_space},
    {"segment_size", config_apply_segment_size},
    {"max_message_size", config_apply_max_message_size},
    {"max_recipients", config_apply_count},
    {"max_line_length", config_apply_count},
    {"max_text_line_length", config_apply_count},
    {"max_connections", config_apply_count},
    {"max_connections_per_ip", config_apply_count},
    {"max_errors", config_apply_count},
    {"max_hops", config_apply_count},
    {"max_junk_commands", config_apply_count},
    {"timeout_command", config_apply_seconds},
    {"timeout_data", config_apply_seconds},
    {"greeting_delay", config_apply_seconds},
    {"retry_interval", config_apply_seconds},
    {"retry_max_interval", config_apply_seconds},
    {"queue_lifetime", config_apply_seconds},
    {"delay_warning", config_apply_seconds},
    {"reject_early_talkers", config_apply_reject_early_talkers},
    {"mx_allow_loopback", config_apply_mx_allow_loopback},
    {"resolver_max_queries", config_apply_count},
    {"max_mx_hosts", config_apply_count},
    {"max_mx_addresses", config_apply_count},
    {"log_level", config_apply_log_level},
    {"postmaster", config_apply_postmaster},
    {"auth_users_file", config_apply_auth_users_file},
    {"auth_plaintext", config_apply_auth_flag},
    {"auth_max_failures", config_apply_count},
    {"auth_max_pending", config_apply_count},
    {"auth_max_pending_per_ip", config_apply_count},
    {"auth_received_header", config_apply_auth_flag},
    {"auth_sender_match", config_apply_auth_flag},
    {"tls_cert", config_apply_tls_cert},
    {"tls_key", config_apply_tls_key},
    {"tls_listen", config_apply_tls_listen},
    {"tls_min_version", config_apply_tls_min_version},
    {"tls_ciphers", config_apply_tls_ciphers},
    {"tls_sni", config_apply_tls_sni},
    {"destinations", config_apply_destinations},
    {"delivery_max_connections", config_apply_delivery},
    {"delivery_max_connections_total", config_apply_count},
    {"delivery_max_messages_per_connection", config_apply_delivery},
    {"delivery_max_rcpts_per_transaction", config_apply_delivery},
    {"delivery_max_messages_per_second", config_apply_delivery},
    {"delivery_connect_timeout", config_apply_delivery},
    {"delivery_timeout_greeting", config_apply_delivery},
    {"delivery_timeout_command", config_apply_delivery},
    {"delivery_timeout_data", config_apply_delivery},
    {"delivery_timeout_final", config_apply_delivery},
    {"delivery_connection_idle_timeout", config_apply_delivery},
    {"delivery_breaker_failures", config_apply_delivery},
    {"delivery_breaker_wait", config_apply_delivery},
    {"outbound_tls", config_apply_outbound_tls},
    {"outbound_tls_ca_file", config_apply_outbound_tls_ca_file},
};

static const struct config_key *config_find_key(const char *name)
{
    for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]);
         i++) {
        if (strcmp(config_keys[i].name, name) == 0) {
            return &config_keys[i];
        }
    }
    return NULL;
}

/* Applies every top-level member of root to loader->next. Keys match
 * case-sensitively, and each may appear once. */
static int config_apply(struct config_loader *loader,
                        const struct conf_node *root)
{
    for (const struct conf_node *member = root->first; member != NULL;
         member = member->next) {
        const struct config_key *key = config_find_key(member->key);
        const struct conf_node *first = root->first;

        if (key == NULL) {
            return config_error(loader, member->line, "unknown key '%.60s'",
                                member->key);
        }
        while (strcmp(first->key, member->key) != 0) {
            first = first->next;
        }
        if (first != member) {
            return config_error(loader, member->line,
                                "duplicate key '%s' (first set at line %u)",
                                key->name, first->line);
        }
        loader->key = key->name;
        if (key->apply(loader, member) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Reads the whole file at path into *text (NUL-terminated, *len bytes). */
static int config_read_file(const char *path, char **text, size_t *len,
                            char *err, size_t err_size)
{
    char *buf = NULL;
    size_t used = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = -1;

    if (fd < 0) {
        snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    buf = malloc(CONFIG_FILE_MAX + 1);
    if (buf == NULL) {
        snprintf(err, err_size, "%s: out of memory", path);
        goto out;
    }

    for (;;) {
        ssize_t n = read(fd, buf + used, CONFIG_FILE_MAX + 1 - used);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            snprintf(err, err_size, "%s: cannot read: %s", path,
                     strerror(errno));
            goto out;
        }
        if (n == 0) {
            break;
        }
        used += (size_t)n;
        if (used > CONFIG_FILE_MAX) {
            snprintf(err, err_size, "%s: file is larger than %d bytes",
                     path, CONFIG_FILE_MAX);
            goto out;
        }
    }
    buf[used] = '\0';
    *text = buf;
    *len = used;
    buf = NULL;
    rc = 0;

out:
    free(buf);
    close(fd);
    return rc;
}

/* config_check_tls rejects TLS keys that need tls_cert and tls_key
 * without them, and a tls_listen address that listen has too. */
static int config_check_tls(struct config_loader *loader)
{
    const struct config *config = loader->next;
    bool has_pair = config->tls_cert != NULL && config->tls_key != NULL;
    const char *needs = NULL;

    if ((config->tls_cert != NULL) != (config->tls_key != NULL)) {
        needs = config->tls_cert != NULL ? "tls_cert" : "tls_key";
    } else if (!has_pair && config->tls_listen_count > 0) {
        needs = "tls_listen";
    } else if (!has_pair && config->tls_sni_count > 0) {
        needs = "tls_sni";
    }
    if (needs != NULL) {
        snprintf(loader->err, loader->err_size, "%s: %s needs both tls_cert "
                 "and tls_key", loader->path, needs);
        return -1;
    }
    for (size_t i = 0; i < config->tls_listen_count; i++) {
        const struct netaddr_hostport *tls = &config->tls_listen[i];

        for (size_t j = 0; j < config->listen_count; j++) {
            if (config->listen[j].addr_len == tls->addr_len &&
                memcmp(&config->listen[j].addr, &tls->addr,
                       tls->addr_len) == 0) {
                snprintf(loader->err, loader->err_size, "%s: %s:%u is in "
                         "both listen and tls_listen", loader->path,
                         tls->host, (unsigned)tls->port);
                return -1;
            }
        }
    }
    return 0;
}

/* config_check_auth_tls rejects AUTH credentials for a next hop whose
 * TLS policy is none, because they are sent only over TLS. */
static int config_check_auth_tls(struct config_loader *loader)
{
    const struct config *config = loader->next;

    for (size_t i = 0; i < config->route_count; i++) {
        const struct config_route *route = &config->routes[i];

        if (route->auth_user != NULL &&
            config_tls_policy_for(config, route->domain) ==
                TLS_POLICY_NONE) {
            snprintf(loader->err, loader->err_size, "%s: the route for "
                     "'%s' has AUTH credentials with TLS policy none; they "
                     "are sent only over TLS, so use encrypt, verify or "
                     "dane", loader->path, route->domain);
            return -1;
        }
    }
    if (config->smarthost_auth_user != NULL &&
        config->outbound_tls == TLS_POLICY_NONE) {
        snprintf(loader->err, loader->err_size, "%s: smarthost_auth_user "
                 "is set with outbound_tls = \"none\"; the credentials "
                 "are sent only over TLS, so use encrypt, verify or dane",
                 loader->path);
        return -1;
    }
    return 0;
}

/* config_check refuses combinations of keys that each are valid alone. */
static int config_check(struct config_loader *loader)
{
    const struct config *config = loader->next;
    struct sockaddr_un control;
    socklen_t control_len;

    if (config->retry_max_interval < config->retry_interval) {
        snprintf(loader->err, loader->err_size, "%s: retry_max_interval "
                 "(%us) is shorter than retry_interval (%us); raise "
                 "retry_max_interval too", loader->path,
                 config->retry_max_interval, config->retry_interval);
        return -1;
    }

    /* A message the limit can never hold would get 452, a temporary
     * failure, at every try of its sender. */
    if (config->queue_max_size != 0 &&
        config->queue_max_size < config->max_message_size) {
        snprintf(loader->err, loader->err_size, "%s: queue_max_size (%"
                 PRIu64 " bytes) is smaller than max_message_size (%"
                 PRIu64 " bytes); raise queue_max_size or lower "
                 "max_message_size", loader->path, config->queue_max_size,
                 config->max_message_size);
        return -1;
    }

    if (config_check_auth_tls(loader) < 0) {
        return -1;
    }
    if ((config->smarthost_auth_user != NULL) !=
            (config->smarthost_auth_password != NULL) ||
        (config->smarthost_auth_user != NULL && !config->has_smarthost)) {
        snprintf(loader->err, loader->err_size, "%s: smarthost_auth_user "
                 "and smarthost_auth_password go together, with "
                 "smarthost", loader->path);
        return -1;
    }

    /* The daemon would fail at start, after creating the queue. */
    if (control_socket_address(config->queue_dir, &control,
                               &control_len) < 0) {
        snprintf(loader->err, loader->err_size, "%s: queue_dir is too long: "
                 "the control socket %s/%s must fit in %zu bytes",
                 loader->path, config->queue_dir, CONTROL_SOCKET_NAME,
                 sizeof(control.sun_path) - 1);
        return -1;
    }
    return config_check_tls(loader);
}

int config_load(struct config *config, const char *path, char *err,
                size_t err_size)
{
    struct config next = *config;
    struct config_loader loader = {path, "", err, err_size, &next};
    struct conf_node *root = NULL;
    struct conf_error parse_err;
    char *text = NULL;
    size_t len;
    int rc = -1;

    if (config_read_file(path, &text, &len, err, err_size) < 0) {
        goto out;
    }
    if (conf_parse(text, len, &root, &parse_err) < 0) {
        config_error(&loader, parse_err.line, "%s", parse_err.reason);
        goto out;
    }
    if (config_apply(&loader, root) < 0 || config_check(&loader) < 0) {
        goto out;
    }

    /* Only now do the replaced defaults or earlier values go away, so a
     * failed load (a bad SIGHUP reload) leaves config as it was. */
    config_free_fields(config, &next);
    *config = next;
    rc = 0;

out:
    if (rc < 0) {
        config_free_fields(&next, config);
    }
    conf_node_free(root);
    free(text);
    return rc;
}
