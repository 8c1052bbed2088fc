/* Socket helpers for the bench subcommands: HOST:PORT endpoints,
 * listeners and per-connection socket options. */
#ifndef RINGRELAY_BENCH_NET_H
#define RINGRELAY_BENCH_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* bench_endpoint: a resolved TCP address and the text it came from. */
struct bench_endpoint {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char text[300];
};

/* bench_endpoint_parse parses "HOST:PORT", "[IPV6]:PORT" or a bare HOST
 * (then default_port applies) and resolves HOST with getaddrinfo(), which
 * may block on DNS for a name. The first address returned is used. On
 * failure it writes the reason into error[0..error_size). Returns 0 or
 * -1. */
int bench_endpoint_parse(const char *text, uint16_t default_port,
                         struct bench_endpoint *out, char *error,
                         size_t error_size);

/* bench_endpoint_port_check checks the port of a "HOST:PORT" or
 * "[IPV6]:PORT" text: 1 to 65535 in decimal digits. getaddrinfo() takes
 * an empty port as 0 and wraps 99999 to 34463, so bench_endpoint_parse()
 * alone accepts both. Returns 1 for a valid port, 0 when the text has no
 * port, and -1 for an invalid one. An IPv6 address without brackets
 * counts as valid here, because bench_endpoint_parse() rejects it. */
int bench_endpoint_port_check(const char *text);

/* bench_listen opens a non-blocking listening TCP socket on endpoint with
 * SO_REUSEADDR. Returns the descriptor, or -errno. */
int bench_listen(const struct bench_endpoint *endpoint);

/* bench_socket_connected prepares a connected TCP socket for SMTP:
 * non-blocking, close-on-exec, and TCP_NODELAY, because SMTP replies and
 * pipelined command groups are small writes that Nagle's algorithm would
 * hold back for the peer's delayed ACK. Returns 0 or -errno. */
int bench_socket_connected(int fd);

/* bench_format_ip writes the textual IP of addr (no port) into buf.
 * Returns buf; "unknown" for an unsupported family. */
const char *bench_format_ip(const struct sockaddr *addr, char *buf,
                            size_t size);

/* bench_raise_open_files raises the soft RLIMIT_NOFILE to the hard limit
 * so that thousands of connections fit. Returns the soft limit now in
 * effect. */
uint64_t bench_raise_open_files(void);

#endif
