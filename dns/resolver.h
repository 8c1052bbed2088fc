/* Asynchronous stub resolver over the reactor.
 *
 * Queries go over UDP to the configured name servers, and over TCP when
 * an answer comes back truncated. ldns builds and parses the packets, with
 * only its wire-format and record functions (see DESIGN.md for the ldns
 * functions that must never be called). Query IDs
 * come from BoringSSL's RAND_bytes. Answers are cached by TTL, negative
 * ones by their SOA (RFC 2308), and CNAME chains are followed across
 * queries (dns_chase.h). The resolver validates no DNSSEC signature: it
 * asks with the AD bit and reports whether the name server set it.
 *
 * At most max_queries queries of one resolver are in flight at once, and
 * the rest wait in order (dns_limit.h). Lookups answered from the cache,
 * or that share a query already running for the same (name, type), never
 * wait.
 *
 * Return convention: 0 or a negative errno. */
#ifndef RINGRELAY_DNS_RESOLVER_H
#define RINGRELAY_DNS_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct reactor;
struct dns_resolver;
struct dns_request;

#define DNS_MAX_SERVERS 3
#define DNS_MAX_MX_HOSTS 10
#define DNS_MAX_ADDRS 8
#define DNS_MAX_TLSA_RECORDS 16
#define DNS_TLSA_DATA_BYTES 256 /* as DNS_TLSA_DATA_MAX of dns_packet.h */

/* Queries one resolver has in flight at once, by default. Divided by the
 * round trip to the name server, it bounds the query rate: 5,000 queries
 * per second at 20 ms. A burst of lookups to new domains queues beyond
 * it instead of overflowing the server's receive buffer. */
#define DNS_DEFAULT_MAX_QUERIES 100u

struct dns_options {
    struct sockaddr_storage servers[DNS_MAX_SERVERS];
    socklen_t server_lens[DNS_MAX_SERVERS];
    size_t server_count;
    uint32_t timeout_ms;   /* per try; 0 picks 2000 */
    unsigned attempts;     /* tries per server; 0 picks 2 */
    unsigned max_queries;  /* queries in flight, the rest queue; 0 picks
                            * DNS_DEFAULT_MAX_QUERIES */
};

enum dns_status {
    DNS_OK,        /* hosts[] has at least one address; TLSA: records */
    DNS_TEMPFAIL,  /* timeout, SERVFAIL, REFUSED, network error, CNAME
                    * loop or chain too long: retry later */
    DNS_NOTFOUND,  /* NXDOMAIN, or no MX and no address; TLSA: none */
    DNS_NULLMX,    /* RFC 7505 null MX: the domain takes no mail */
};

struct dns_mx_host {
    char name[256];            /* host name without the trailing dot */
    uint16_t preference;
    size_t addr_count;
    struct sockaddr_storage addrs[DNS_MAX_ADDRS]; /* port 0 */
};

/* dns_mx_result: hosts sorted by preference, equal preferences in random
 * order. implicit is true when the domain had no MX and its own addresses
 * are used. authenticated is true when the MX answer (every answer of its
 * CNAME chain) had the AD bit set by the name server. With DNS_NOTFOUND,
 * missing_hosts counts the MX hosts that had no address records although
 * the domain has MX records, and missing_host names the first of them;
 * both are empty when the domain itself was not found. */
struct dns_mx_result {
    enum dns_status status;
    bool implicit;
    bool authenticated;
    size_t missing_hosts;
    char missing_host[256];
    size_t host_count;
    struct dns_mx_host hosts[DNS_MAX_MX_HOSTS];
};

/* dns_mx_fn receives the result; it is valid only during the call. */
typedef void (*dns_mx_fn)(void *arg, const struct dns_mx_result *result);

/* dns_tlsa_record: one TLSA record (RFC 6698 section 2.1), fields as on
 * the wire. */
struct dns_tlsa_record {
    uint8_t usage;         /* 3: DANE-EE, 2: DANE-TA (RFC 7218) */
    uint8_t selector;      /* 0: certificate, 1: SubjectPublicKeyInfo */
    uint8_t matching_type; /* 0: full, 1: SHA-256, 2: SHA-512 */
    uint16_t data_len;
    uint8_t data[DNS_TLSA_DATA_BYTES];
};

/* dns_tlsa_result: the TLSA records of _PORT._tcp.HOST. status is DNS_OK
 * when the name has TLSA records, even if none could be kept (skipped
 * counts the records that were malformed or held more than
 * DNS_TLSA_DATA_BYTES bytes of data), DNS_NOTFOUND when it has none
 * (NXDOMAIN or NODATA), DNS_TEMPFAIL otherwise. authenticated is true
 * when every answer behind the result had the AD bit set; whether that
 * bit can be trusted (a validating resolver on a trusted path) is the
 * configuration's business, RFC 7672 section 2.1. */
struct dns_tlsa_result {
    enum dns_status status;
    bool authenticated;
    size_t skipped;
    size_t count;
    struct dns_tlsa_record records[DNS_MAX_TLSA_RECORDS];
};

/* dns_tlsa_fn receives the result; it is valid only during the call. */
typedef void (*dns_tlsa_fn)(void *arg,
                            const struct dns_tlsa_result *result);

/* dns_options_from_resolv_conf reads "nameserver" lines (IPv4 or IPv6,
 * port 53, at most DNS_MAX_SERVERS) and the "timeout:" and "attempts:"
 * options; other fields of opts are left as they are. No nameserver line
 * leaves server_count at 0. */
int dns_options_from_resolv_conf(struct dns_options *opts, const char *path);

int dns_resolver_new(struct dns_resolver **out, struct reactor *reactor,
                     const struct dns_options *opts);

/* dns_resolver_free cancels outstanding requests without calling them
 * back; NULL is accepted. The reactor must still exist. The socket of a
 * query still waiting for an answer is freed when the reactor delivers its
 * cancellation, so run the reactor for one more turn before reactor_free,
 * or that memory is lost. */
void dns_resolver_free(struct dns_resolver *resolver);

/* dns_resolve_mx looks up the MX hosts of domain and their A and AAAA
 * addresses; with no MX, the domain's own addresses (implicit MX). fn is
 * called exactly once, never from inside this call, unless the request is
 * cancelled first. *request (may be NULL) can cancel it. */
int dns_resolve_mx(struct dns_resolver *resolver, const char *domain,
                   dns_mx_fn fn, void *arg, struct dns_request **request);

/* dns_resolve_host looks up the A and AAAA addresses of one host; the
 * result has one host (or none) and implicit set. */
int dns_resolve_host(struct dns_resolver *resolver, const char *host,
                     dns_mx_fn fn, void *arg, struct dns_request **request);

/* dns_resolve_tlsa looks up the TLSA records of _PORT._tcp.HOST for DANE
 * (RFC 7672 section 2.2.3; port 25 for SMTP), following CNAMEs. fn is
 * called exactly once, never from inside this call, unless the request
 * is cancelled first. *request (may be NULL) can cancel it. */
int dns_resolve_tlsa(struct dns_resolver *resolver, const char *host,
                     uint16_t port, dns_tlsa_fn fn, void *arg,
                     struct dns_request **request);

/* dns_request_cancel drops a pending request; fn will not be called.
 * NULL is accepted. A request is no longer pending once fn has run. */
void dns_request_cancel(struct dns_request *request);

#endif
