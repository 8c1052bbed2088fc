#include "core/netaddr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#define NETADDR_NAME_MAX 253
#define NETADDR_LABEL_MAX 63

/* The first 12 bytes of an IPv4-mapped IPv6 address, ::ffff:0:0/96. */
static const uint8_t netaddr_mapped_prefix[12] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
};

/* Parses a decimal number of 1 to max_digits digits, no sign. */
static int netaddr_parse_decimal(const char *text, size_t max_digits,
                                 unsigned long *out)
{
    size_t len = strlen(text);
    unsigned long value = 0;

    if (len == 0 || len > max_digits) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)text[i])) {
            return -1;
        }
        value = value * 10 + (unsigned long)(text[i] - '0');
    }
    *out = value;
    return 0;
}

static int netaddr_parse_port(const char *text, uint16_t *port)
{
    unsigned long value;

    if (netaddr_parse_decimal(text, 5, &value) < 0 || value == 0 ||
        value > 65535) {
        return -1;
    }
    *port = (uint16_t)value;
    return 0;
}

static bool netaddr_label_ok(const char *label, size_t len)
{
    if (len == 0 || len > NETADDR_LABEL_MAX) {
        return false;
    }
    if (label[0] == '-' || label[len - 1] == '-') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)label[i];

        if (!isalnum(c) && c != '-') {
            return false;
        }
    }
    return true;
}

bool netaddr_is_hostname(const char *name)
{
    size_t len = strlen(name);
    const char *label = name;
    bool last_all_digits = true;

    if (len == 0 || len > NETADDR_NAME_MAX) {
        return false;
    }
    for (;;) {
        const char *dot = strchr(label, '.');
        size_t label_len = dot != NULL ? (size_t)(dot - label)
                                       : strlen(label);

        if (!netaddr_label_ok(label, label_len)) {
            return false;
        }
        if (dot == NULL) {
            last_all_digits = strspn(label, "0123456789") == label_len;
            break;
        }
        label = dot + 1;
    }
    return !last_all_digits;
}

/* Fills out->addr from the IP literal in host, with out->port. Returns -1
 * when host is not an IP literal. IPv4 is tried only when allow_v4 is set. */
static int netaddr_fill_ip(struct netaddr_hostport *out, const char *host,
                           bool allow_v4)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->addr;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->addr;

    memset(&out->addr, 0, sizeof(out->addr));
    if (allow_v4 && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(out->port);
        out->addr_len = sizeof(*sin);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(out->port);
        out->addr_len = sizeof(*sin6);
        return 0;
    }
    return -1;
}

/* Splits text into host and port text, and sets *bracketed for "[host]"
 * forms. The port text is "" when text has no port. */
static int netaddr_split_hostport(const char *text, char *host,
                                  size_t host_size, const char **port,
                                  bool *bracketed)
{
    const char *host_start = text;
    const char *host_end;
    const char *colon;

    *bracketed = text[0] == '[';
    if (*bracketed) {
        host_start = text + 1;
        host_end = strchr(host_start, ']');
        if (host_end == NULL) {
            return -1;
        }
        *port = host_end[1] == ':' ? host_end + 2 : host_end + 1;
        if (host_end[1] == ':' && **port == '\0') {
            return -1;
        }
        if (host_end[1] != ':' && **port != '\0') {
            return -1;
        }
    } else {
        colon = strchr(text, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            /* Two colons or more: a bare IPv6 literal with no port. */
            colon = NULL;
        }
        host_end = colon != NULL ? colon : text + strlen(text);
        *port = colon != NULL ? colon + 1 : host_end;
        if (colon != NULL && **port == '\0') {
            return -1;
        }
    }

    if (host_end == host_start || (size_t)(host_end - host_start) >=
                                      host_size) {
        return -1;
    }
    memcpy(host, host_start, (size_t)(host_end - host_start));
    host[host_end - host_start] = '\0';
    return 0;
}

int netaddr_parse_hostport(const char *text, uint16_t default_port,
                           struct netaddr_hostport *out)
{
    struct netaddr_hostport result;
    const char *port_text;
    bool bracketed;

    memset(&result, 0, sizeof(result));
    if (netaddr_split_hostport(text, result.host, sizeof(result.host),
                               &port_text, &bracketed) < 0) {
        return -1;
    }

    if (port_text[0] == '\0') {
        if (default_port == 0) {
            return -1;
        }
        result.port = default_port;
    } else if (netaddr_parse_port(port_text, &result.port) < 0) {
        return -1;
    }

    if (netaddr_fill_ip(&result, result.host, !bracketed) == 0) {
        result.is_name = false;
    } else if (!bracketed && netaddr_is_hostname(result.host)) {
        result.is_name = true;
    } else {
        return -1;
    }
    *out = result;
    return 0;
}

int netaddr_parse_cidr(const char *text, struct netaddr_cidr *out)
{
    struct netaddr_cidr result;
    char ip[INET6_ADDRSTRLEN];
    const char *slash = strchr(text, '/');
    size_t ip_len = slash != NULL ? (size_t)(slash - text) : strlen(text);
    unsigned long prefix;
    unsigned max_prefix;

    memset(&result, 0, sizeof(result));
    if (ip_len == 0 || ip_len >= sizeof(ip)) {
        return -1;
    }
    memcpy(ip, text, ip_len);
    ip[ip_len] = '\0';

    if (inet_pton(AF_INET, ip, result.bytes) == 1) {
        result.family = AF_INET;
        max_prefix = 32;
    } else if (inet_pton(AF_INET6, ip, result.bytes) == 1) {
        result.family = AF_INET6;
        max_prefix = 128;
    } else {
        return -1;
    }

    prefix = max_prefix;
    if (slash != NULL &&
        (netaddr_parse_decimal(slash + 1, 3, &prefix) < 0 ||
         prefix > max_prefix)) {
        return -1;
    }
    result.prefix = (unsigned)prefix;
    *out = result;
    return 0;
}

/* Writes the 16-byte IPv6 form of addr (IPv4 as ::ffff:a.b.c.d). */
static bool netaddr_to_v6(const struct sockaddr *addr, uint8_t bytes[16])
{
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;

        memcpy(bytes, netaddr_mapped_prefix, 12);
        memcpy(bytes + 12, &sin->sin_addr, 4);
        return true;
    }
    if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)addr;

        memcpy(bytes, &sin6->sin6_addr, 16);
        return true;
    }
    return false;
}

static bool netaddr_prefix_equal(const uint8_t *a, const uint8_t *b,
                                 unsigned prefix)
{
    unsigned full = prefix / 8;
    unsigned rest = prefix % 8;
    uint8_t mask;

    if (memcmp(a, b, full) != 0) {
        return false;
    }
    if (rest == 0) {
        return true;
    }
    mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

bool netaddr_cidr_match(const struct netaddr_cidr *net,
                        const struct sockaddr *addr)
{
    uint8_t client[16];
    uint8_t network[16];
    unsigned prefix = net->prefix;

    if (addr == NULL || !netaddr_to_v6(addr, client)) {
        return false;
    }

    /* Compare in IPv6 form so that both spellings of an IPv4 client match
     * the same networks. */
    if (net->family == AF_INET) {
        memcpy(network, netaddr_mapped_prefix, 12);
        memcpy(network + 12, net->bytes, 4);
        prefix += 96;
    } else if (net->family == AF_INET6) {
        memcpy(network, net->bytes, 16);
    } else {
        return false;
    }
    return netaddr_prefix_equal(client, network, prefix);
}

const char *netaddr_format(const struct sockaddr *addr, char *buf,
                           size_t size)
{
    const void *src = NULL;
    socklen_t len = size > INET6_ADDRSTRLEN ? INET6_ADDRSTRLEN
                                            : (socklen_t)size;

    if (size == 0) {
        return buf;
    }
    if (addr != NULL && addr->sa_family == AF_INET) {
        src = &((const struct sockaddr_in *)addr)->sin_addr;
    } else if (addr != NULL && addr->sa_family == AF_INET6) {
        src = &((const struct sockaddr_in6 *)addr)->sin6_addr;
    }
    if (src == NULL || inet_ntop(addr->sa_family, src, buf, len) == NULL) {
        snprintf(buf, size, "unknown");
    }
    return buf;
}
