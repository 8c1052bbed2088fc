/* The layout of struct tls_context, shared by tls_context.c and
 * tls_session.c only. */
#ifndef RINGRELAY_TLS_TLS_CONTEXT_INTERNAL_H
#define RINGRELAY_TLS_TLS_CONTEXT_INTERNAL_H

#include <stdbool.h>

#include <openssl/ssl.h>

#include "tls/tls_context.h"

struct tls_sni_entry {
    char *host;                   /* as configured, "*." prefix kept */
    SSL_CTX *ssl_ctx;             /* same settings, this certificate */
};

struct tls_context {
    unsigned refs;
    enum tls_role role;
    SSL_CTX *ssl_ctx;             /* default certificate; it also keeps
                                   * the ticket keys and session cache
                                   * for every SNI certificate */
    struct tls_sni_entry *sni;
    size_t sni_count;
    bool has_ca;                  /* client: a CA file is loaded */
};

#endif
