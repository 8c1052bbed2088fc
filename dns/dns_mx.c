#include "dns/dns_mx.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "dns/dns_query.h"

bool dns_mx_is_null(const struct dns_answer *answer)
{
    return answer->count == 1 && answer->records[0].preference == 0 &&
           answer->records[0].name[0] == '\0';
}

/* dns_mx_sort orders index[] by preference, then shuffles each run of
 * equal preference with Fisher-Yates. Insertion sort suffices because an
 * answer has at most DNS_ANSWER_MAX_RECORDS records. */
static void dns_mx_sort(const struct dns_answer *answer, size_t *index,
                        size_t count)
{
    for (size_t i = 1; i < count; i++) {
        size_t moving = index[i];
        size_t j = i;

        while (j > 0 && answer->records[index[j - 1]].preference >
                            answer->records[moving].preference) {
            index[j] = index[j - 1];
            j--;
        }
        index[j] = moving;
    }

    for (size_t start = 0; start < count;) {
        uint16_t preference = answer->records[index[start]].preference;
        size_t end = start + 1;

        while (end < count &&
               answer->records[index[end]].preference == preference) {
            end++;
        }
        for (size_t i = end - 1; i > start; i--) {
            size_t j = start + dns_random_below((uint32_t)(i - start + 1));
            size_t swap = index[i];

            index[i] = index[j];
            index[j] = swap;
        }
        start = end;
    }
}

static bool dns_mx_has_host(const struct dns_mx_result *result,
                            const char *name)
{
    for (size_t i = 0; i < result->host_count; i++) {
        if (strcmp(result->hosts[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

void dns_mx_select(const struct dns_answer *answer,
                   struct dns_mx_result *result)
{
    size_t index[DNS_ANSWER_MAX_RECORDS];
    size_t count = 0;

    result->host_count = 0;
    for (size_t i = 0; i < answer->count; i++) {
        if (answer->records[i].name[0] != '\0') {
            index[count++] = i;
        }
    }
    dns_mx_sort(answer, index, count);

    for (size_t i = 0; i < count; i++) {
        const struct dns_record *record = &answer->records[index[i]];
        struct dns_mx_host *host;

        if (result->host_count == DNS_MAX_MX_HOSTS) {
            break;
        }
        if (dns_mx_has_host(result, record->name)) {
            continue;
        }
        host = &result->hosts[result->host_count];
        memset(host, 0, sizeof(*host));
        strcpy(host->name, record->name);
        host->preference = record->preference;
        result->host_count++;
    }
}

static void dns_mx_add_v4(struct dns_mx_host *host, const uint8_t *addr)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)
                                  &host->addrs[host->addr_count];

    memset(&host->addrs[host->addr_count], 0, sizeof(host->addrs[0]));
    sin->sin_family = AF_INET;
    memcpy(&sin->sin_addr, addr, 4);
    host->addr_count++;
}

static void dns_mx_add_v6(struct dns_mx_host *host, const uint8_t *addr)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)
                                    &host->addrs[host->addr_count];

    memset(&host->addrs[host->addr_count], 0, sizeof(host->addrs[0]));
    sin6->sin6_family = AF_INET6;
    memcpy(&sin6->sin6_addr, addr, 16);
    host->addr_count++;
}

void dns_mx_fill_addresses(struct dns_mx_host *host,
                           const uint8_t (*v4)[16], size_t v4_count,
                           const uint8_t (*v6)[16], size_t v6_count)
{
    size_t v4_room = DNS_MAX_ADDRS / 2;
    size_t v4_take;
    size_t v6_take;

    /* IPv4 gets the room that IPv6 leaves unused, and the reverse. */
    if (v6_count < DNS_MAX_ADDRS - v4_room) {
        v4_room = DNS_MAX_ADDRS - v6_count;
    }
    v4_take = v4_count < v4_room ? v4_count : v4_room;
    v6_take = v6_count < DNS_MAX_ADDRS - v4_take ? v6_count
                                                 : DNS_MAX_ADDRS - v4_take;

    host->addr_count = 0;
    for (size_t i = 0; i < v4_take; i++) {
        dns_mx_add_v4(host, v4[i]);
    }
    for (size_t i = 0; i < v6_take; i++) {
        dns_mx_add_v6(host, v6[i]);
    }
}

/* dns_ipv4_loops_back checks 127.0.0.0/8 and 0.0.0.0/8 by the first
 * byte of an IPv4 address. */
static bool dns_ipv4_loops_back(uint8_t first)
{
    return first == 127 || first == 0;
}

bool dns_addr_loops_back(const struct sockaddr_storage *addr)
{
    const struct in6_addr *in6;

    if (addr->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;

        return dns_ipv4_loops_back((uint8_t)(ntohl(sin->sin_addr.s_addr) >>
                                             24));
    }
    if (addr->ss_family != AF_INET6) {
        return false;
    }
    in6 = &((const struct sockaddr_in6 *)addr)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(in6) || IN6_IS_ADDR_UNSPECIFIED(in6)) {
        return true;
    }
    return IN6_IS_ADDR_V4MAPPED(in6) && dns_ipv4_loops_back(in6->s6_addr[12]);
}

void dns_mx_limit(struct dns_mx_result *result, size_t max_hosts,
                  size_t max_addrs)
{
    size_t kept = 0;
    size_t addrs = 0;

    for (size_t i = 0; i < result->host_count; i++) {
        struct dns_mx_host *host = &result->hosts[i];

        if (kept == max_hosts || addrs == max_addrs) {
            break;
        }
        if (host->addr_count == 0) {
            continue;
        }
        if (host->addr_count > max_addrs - addrs) {
            host->addr_count = max_addrs - addrs;
        }
        addrs += host->addr_count;
        if (kept != i) {
            result->hosts[kept] = *host;
        }
        kept++;
    }
    result->host_count = kept;
}
