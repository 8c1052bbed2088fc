#include "bench/bench_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Split text into host and port strings. Returns 0 or -1 with error. */
static int bench_split_hostport(const char *text, uint16_t default_port,
                                char *host, size_t host_size, char *port,
                                size_t port_size, char *error,
                                size_t error_size)
{
    const char *host_start = text;
    const char *host_end;
    const char *port_text = NULL;

    if (text[0] == '[') {
        host_start = text + 1;
        host_end = strchr(host_start, ']');
        if (host_end == NULL || (host_end[1] != '\0' && host_end[1] != ':')) {
            snprintf(error, error_size, "expected [IPV6]:PORT");
            return -1;
        }
        port_text = host_end[1] == ':' ? host_end + 2 : NULL;
    } else {
        host_end = strchr(text, ':');
        if (host_end != NULL && strchr(host_end + 1, ':') != NULL) {
            snprintf(error, error_size,
                     "an IPv6 address needs brackets, as in [::1]:2525");
            return -1;
        }
        if (host_end == NULL) {
            host_end = text + strlen(text);
        } else {
            port_text = host_end + 1;
        }
    }

    if (host_end == host_start
        || (size_t)(host_end - host_start) >= host_size) {
        snprintf(error, error_size, "missing or over-long host");
        return -1;
    }
    memcpy(host, host_start, (size_t)(host_end - host_start));
    host[host_end - host_start] = '\0';

    if (port_text == NULL) {
        snprintf(port, port_size, "%u", (unsigned)default_port);
    } else {
        snprintf(port, port_size, "%s", port_text);
    }
    return 0;
}

int bench_endpoint_parse(const char *text, uint16_t default_port,
                         struct bench_endpoint *out, char *error,
                         size_t error_size)
{
    struct addrinfo hints = {0};
    struct addrinfo *found = NULL;
    char host[256];
    char port[16];
    int rc;

    if (bench_split_hostport(text, default_port, host, sizeof(host), port,
                             sizeof(port), error, error_size) < 0) {
        return -1;
    }

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &found);
    if (rc != 0) {
        snprintf(error, error_size, "cannot resolve \"%s\" port \"%s\": %s",
                 host, port, gai_strerror(rc));
        return -1;
    }

    memcpy(&out->addr, found->ai_addr, found->ai_addrlen);
    out->addr_len = found->ai_addrlen;
    snprintf(out->text, sizeof(out->text), "%s", text);
    freeaddrinfo(found);
    return 0;
}

int bench_endpoint_port_check(const char *text)
{
    const char *colon = strrchr(text, ':');
    const char *bracket = strrchr(text, ']');
    unsigned long port = 0;
    char *end = NULL;

    if (colon == NULL
        || (text[0] == '[' && (bracket == NULL || colon < bracket))) {
        return 0;
    }
    if (text[0] != '[' && strchr(text, ':') != colon) {
        return 1;
    }
    if (colon[1] >= '0' && colon[1] <= '9') {
        errno = 0;
        port = strtoul(colon + 1, &end, 10);
    }
    if (end == NULL || *end != '\0' || errno != 0 || port == 0
        || port > 65535) {
        return -1;
    }
    return 1;
}

int bench_listen(const struct bench_endpoint *endpoint)
{
    int family = endpoint->addr.ss_family;
    int one = 1;
    int fd;
    int err;

    fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
        goto fail;
    }
    if (bind(fd, (const struct sockaddr *)&endpoint->addr,
             endpoint->addr_len) < 0) {
        goto fail;
    }
    if (listen(fd, SOMAXCONN) < 0) {
        goto fail;
    }
    return fd;

fail:
    err = errno;
    close(fd);
    return -err;
}

int bench_socket_connected(int fd)
{
    int one = 1;
    int flags;

    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        return -errno;
    }
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        return -errno;
    }
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
        return -errno;
    }
    return 0;
}

const char *bench_format_ip(const struct sockaddr *addr, char *buf,
                            size_t size)
{
    const void *raw;

    if (addr->sa_family == AF_INET) {
        raw = &((const struct sockaddr_in *)addr)->sin_addr;
    } else if (addr->sa_family == AF_INET6) {
        raw = &((const struct sockaddr_in6 *)addr)->sin6_addr;
    } else {
        snprintf(buf, size, "unknown");
        return buf;
    }
    if (inet_ntop(addr->sa_family, raw, buf, (socklen_t)size) == NULL) {
        snprintf(buf, size, "unknown");
    }
    return buf;
}

uint64_t bench_raise_open_files(void)
{
    struct rlimit limit;
    struct rlimit raised;

    if (getrlimit(RLIMIT_NOFILE, &limit) < 0) {
        return 0;
    }
    raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (raised.rlim_cur > limit.rlim_cur
        && setrlimit(RLIMIT_NOFILE, &raised) == 0) {
        return (uint64_t)raised.rlim_cur;
    }
    return (uint64_t)limit.rlim_cur;
}
