/* dns_options_from_resolv_conf: the resolv.conf(5) lines a stub resolver
 * needs, "nameserver" and the "timeout:" and "attempts:" options. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "dns/resolver.h"

/* glibc's caps on the options, from resolv.conf(5). */
#define DNS_CONF_TIMEOUT_MAX_S 30u
#define DNS_CONF_ATTEMPTS_MAX 5u

#define DNS_CONF_SEPARATORS " \t\r\n"

/* dns_conf_add_server appends a numeric IPv4 or IPv6 address (with an
 * optional %scope) at port 53. Servers past DNS_MAX_SERVERS are ignored,
 * as glibc does. */
static void dns_conf_add_server(struct dns_options *opts, const char *text,
                                const char *path)
{
    struct addrinfo hints = {
        .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_DGRAM,
    };
    struct addrinfo *info = NULL;
    int rc;

    if (opts->server_count == DNS_MAX_SERVERS) {
        log_debug("event=resolv-conf path=%s server=%s reason=\"more than "
                  "%d name servers; ignored\"", path, text, DNS_MAX_SERVERS);
        return;
    }

    /* Numeric host and service: getaddrinfo parses only, with no
     * lookup. */
    rc = getaddrinfo(text, "53", &hints, &info);
    if (rc != 0 || info == NULL ||
        info->ai_addrlen > sizeof(opts->servers[0])) {
        log_warning("event=resolv-conf path=%s server=%s error=\"invalid "
                    "name server address: %s\"", path, text,
                    rc != 0 ? gai_strerror(rc) : "unusable");
        goto out;
    }
    memset(&opts->servers[opts->server_count], 0, sizeof(opts->servers[0]));
    memcpy(&opts->servers[opts->server_count], info->ai_addr,
           info->ai_addrlen);
    opts->server_lens[opts->server_count] = info->ai_addrlen;
    opts->server_count++;

out:
    if (info != NULL) {
        freeaddrinfo(info);
    }
}

static void dns_conf_read_option(struct dns_options *opts, const char *text)
{
    unsigned long value;
    char *end;

    if (strncmp(text, "timeout:", 8) == 0) {
        value = strtoul(text + 8, &end, 10);
        if (*end == '\0' && value > 0) {
            if (value > DNS_CONF_TIMEOUT_MAX_S) {
                value = DNS_CONF_TIMEOUT_MAX_S;
            }
            opts->timeout_ms = (uint32_t)value * 1000u;
        }
    } else if (strncmp(text, "attempts:", 9) == 0) {
        value = strtoul(text + 9, &end, 10);
        if (*end == '\0' && value > 0) {
            if (value > DNS_CONF_ATTEMPTS_MAX) {
                value = DNS_CONF_ATTEMPTS_MAX;
            }
            opts->attempts = (unsigned)value;
        }
    }
}

static void dns_conf_read_line(struct dns_options *opts, char *line,
                               const char *path)
{
    char *save = NULL;
    char *key = strtok_r(line, DNS_CONF_SEPARATORS, &save);
    char *value;

    if (key == NULL || key[0] == '#' || key[0] == ';') {
        return;
    }
    if (strcmp(key, "nameserver") == 0) {
        value = strtok_r(NULL, DNS_CONF_SEPARATORS, &save);
        if (value != NULL) {
            dns_conf_add_server(opts, value, path);
        }
        return;
    }
    if (strcmp(key, "options") == 0) {
        while ((value = strtok_r(NULL, DNS_CONF_SEPARATORS, &save)) !=
               NULL) {
            dns_conf_read_option(opts, value);
        }
    }
}

int dns_options_from_resolv_conf(struct dns_options *opts, const char *path)
{
    FILE *file = fopen(path, "re");
    char *line = NULL;
    size_t capacity = 0;
    int rc = 0;

    if (file == NULL) {
        rc = -errno;
        log_warning("event=resolv-conf path=%s error=\"open failed: %s\"",
                    path, strerror(errno));
        return rc;
    }

    opts->server_count = 0;
    errno = 0;
    while (getline(&line, &capacity, file) >= 0) {
        dns_conf_read_line(opts, line, path);
    }
    if (ferror(file)) {
        rc = errno != 0 ? -errno : -EIO;
        log_warning("event=resolv-conf path=%s error=\"read failed: %s\"",
                    path, strerror(-rc));
    }

    free(line);
    if (fclose(file) != 0 && rc == 0) {
        rc = -errno;
    }
    return rc;
}
