/* The daemon's parts, shared by the inbound sessions, the outbound engine
 * and main. One instance per process; nothing here is global. */
#ifndef RINGRELAY_CORE_DAEMON_H
#define RINGRELAY_CORE_DAEMON_H

#include <stdbool.h>

struct config;
struct reactor;
struct queue;
struct dns_resolver;
struct inbound;
struct outbound;
struct control;
struct auth_users;
struct auth_worker;
struct tls_context;

struct daemon {
    const struct config *config;
    struct reactor *reactor;
    struct queue *queue;          /* NULL until queue_open() returned */
    struct dns_resolver *resolver;
    struct inbound *inbound;
    struct outbound *outbound;
    struct control *control;      /* NULL until the queue is open */
    struct auth_users *auth_users; /* NULL: AUTH is not offered */
    struct auth_worker *auth_worker; /* set when auth_users is */
    struct tls_context *tls;      /* inbound TLS; NULL when not
                                   * configured. SIGHUP replaces it. */
    bool stopping;                /* SIGTERM/SIGINT seen */
};

#endif
