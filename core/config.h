/* Daemon configuration: defaults for every key, read from a file in UCL
 * syntax.
 *
 * Every key has a default, so a daemon without a file listens on
 * 127.0.0.1:2525, queues under ./var/queue, relays for 127.0.0.1 only and
 * delivers by MX. Unknown keys and invalid values are errors that name the
 * file, the line and the reason. */
#ifndef RINGRELAY_CORE_CONFIG_H
#define RINGRELAY_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/config_delivery.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "core/queue.h"
#include "core/tls_policy.h"

#define CONFIG_MAX_LISTEN 16

/* config_tls_sni: a certificate that the server presents to clients that
 * ask for host by SNI. */
struct config_tls_sni {
    char *host;                   /* host name or "*.domain", lower case */
    char *cert;                   /* PEM chain file */
    char *key;                    /* PEM private key file */
};

/* config_route: mail for one domain goes to one next hop. */
struct config_route {
    char *domain;                 /* lower case, no trailing dot */
    struct netaddr_hostport hop;
    bool has_tls;                 /* tls given: it replaces outbound_tls */
    enum tls_policy tls;
    bool discard;                 /* transport = "discard": no hop, every
                                   * recipient is delivered at once */
    char *auth_user;              /* AUTH PLAIN to hop; NULL: none */
    char *auth_password;
};

struct config {
    struct netaddr_hostport listen[CONFIG_MAX_LISTEN]; /* IP literals */
    size_t listen_count;
    char *queue_dir;
    char *hostname;               /* greeting, EHLO, Received: */
    struct netaddr_cidr *relay_networks;
    size_t relay_network_count;
    char **relay_domains;         /* lower case, no trailing dot */
    size_t relay_domain_count;
    bool has_resolver;
    struct netaddr_hostport resolver; /* IP literal; else resolv.conf */
    unsigned resolver_max_queries; /* DNS queries in flight at once */
    bool has_smarthost;
    struct netaddr_hostport smarthost;
    char *smarthost_auth_user;    /* AUTH PLAIN to the smarthost */
    char *smarthost_auth_password;
    struct config_route *routes;
    size_t route_count;

    /* Next hops from DNS. The loopback check skips routes and the
     * smarthost, which are trusted; the limits also cut the addresses of
     * a route or smarthost given by name. */
    bool mx_allow_loopback;       /* use MX addresses that loop back */
    unsigned max_mx_hosts;        /* MX hosts tried per attempt */
    unsigned max_mx_addresses;    /* addresses tried per attempt, over
                                   * all hosts */
    unsigned delivery_max_connections_total; /* outbound connections over
                                              * all destinations */
    enum queue_durability durability;
    unsigned batch_wait;          /* durability batch: microseconds a
                                   * commit waits for others */
    uint64_t queue_max_size;      /* bytes of queued records; 0: none */
    uint64_t segment_size;        /* bytes of each queue segment file */
    uint64_t queue_min_free;      /* bytes the queue's file system keeps
                                   * free; 0: no floor */
    uint64_t max_message_size;    /* bytes */

    /* Inbound limits. Lengths are in bytes with the CRLF, durations in
     * seconds. */
    unsigned max_recipients;      /* per message */
    unsigned max_line_length;     /* command line */
    unsigned max_text_line_length; /* line of message data, 0 for no
                                    * limit */
    unsigned max_connections;     /* open sessions in total */
    unsigned max_connections_per_ip; /* open sessions per client address */
    unsigned max_errors;          /* invalid commands before 421 */
    unsigned max_hops;            /* Received: fields a message may have */
    unsigned max_junk_commands;   /* NOOP, RSET, VRFY, HELP, EHLO and
                                   * HELO per session before 421 */
    unsigned timeout_command;     /* deadline for each whole command line */
    unsigned timeout_data;        /* wait for more DATA or BDAT data,
                                   * restarted by every received block */
    unsigned greeting_delay;      /* wait before the 220 for clients
                                   * outside relay_networks */
    bool reject_early_talkers;    /* 554 for input before the greeting */

    /* Retry schedule, seconds: the first retry after retry_interval, each
     * wait twice the last up to retry_max_interval, plus up to 20%
     * jitter. */
    unsigned retry_interval;
    unsigned retry_max_interval;

    /* Seconds after arrival: a recipient still deferred after
     * queue_lifetime is bounced, and one deferred after delay_warning
     * (0: never) gets one delay report. */
    unsigned queue_lifetime;
    unsigned delay_warning;
    /* Outbound delivery limits: the global ones, and the destinations
     * that override some of them. */
    struct config_delivery delivery;
    struct config_destination *destinations;
    size_t destination_count;
    enum log_level log_level;
    char *postmaster;             /* RCPT TO:<postmaster> goes here;
                                   * NULL: rejected */

    /* SMTP AUTH. Without a users file AUTH is not offered. */
    char *auth_users_file;        /* user:crypt-hash lines; NULL: none */
    bool auth_plaintext;          /* offer AUTH without TLS */
    unsigned auth_max_failures;   /* failed AUTHs before 421 and close */
    unsigned auth_max_pending;    /* password checks queued, overall */
    unsigned auth_max_pending_per_ip; /* the same per client address */
    bool auth_received_header;    /* name the user in Received: */
    bool auth_sender_match;       /* MAIL FROM must belong to the login */
    /* Inbound TLS. STARTTLS is offered when tls_cert and tls_key are
     * set; config_load rejects one without the other, and tls_listen or
     * tls_sni without both. The files are read when the daemon builds its
     * TLS context, not here. */
    char *tls_cert;               /* PEM chain file, NULL: no TLS */
    char *tls_key;                /* PEM private key file */
    struct netaddr_hostport tls_listen[CONFIG_MAX_LISTEN]; /* implicit
                                   * TLS (RFC 8314) listeners */
    size_t tls_listen_count;
    bool tls_min_version_1_3;     /* tls_min_version "1.3"; else "1.2" */
    char *tls_ciphers;            /* TLS 1.2 cipher list; NULL: default */
    struct config_tls_sni *tls_sni;
    size_t tls_sni_count;

    /* Outbound TLS, stored for the outbound engine. The CA file is read
     * when the engine builds its client context, not here. */
    enum tls_policy outbound_tls; /* default for every next hop */
    char *outbound_tls_ca_file;   /* PEM CA bundle for "verify" */
};

/* config_init fills every key with its default. Returns 0, or -1 when out
 * of memory. */
int config_init(struct config *config);

/* config_load reads path over the defaults already in config; a key in
 * the file replaces the whole value, lists included. On error it writes
 * "FILE:LINE: reason" (or "FILE: reason" when the file cannot be read)
 * into err, leaves config unchanged and returns -1. */
int config_load(struct config *config, const char *path, char *err,
                size_t err_size);

void config_cleanup(struct config *config);

/* config_tls_policy_for returns the tls setting of domain's route, or
 * outbound_tls when the domain has no route or its route sets no tls. */
enum tls_policy config_tls_policy_for(const struct config *config,
                                      const char *domain);

/* config_route_entry returns the route of domain (case-insensitive), or
 * NULL. */
const struct config_route *config_route_entry(const struct config *config,
                                              const char *domain);

/* config_route_for returns the route of domain (case-insensitive), the
 * smarthost when there is no route, or NULL: deliver by MX. */
const struct netaddr_hostport *config_route_for(const struct config *config,
                                                const char *domain);

#endif
