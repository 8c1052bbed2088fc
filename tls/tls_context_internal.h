/* The layout of struct tls_context, shared by the tls/ sources
 * only. */
#ifndef RINGRELAY_TLS_TLS_CONTEXT_INTERNAL_H
#define RINGRELAY_TLS_TLS_CONTEXT_INTERNAL_H

#include <stdbool.h>

#include <openssl/ssl.h>

#include "tls/tls_context.h"

struct tls_sni_entry {
    char *host;                   /* as configured, "*." prefix kept */
    SSL_CTX *ssl_ctx;             /* same settings, this certificate */
};

/* One cached client session, for resumption with the same server name. */
struct tls_client_cache_entry {
    char *name;                   /* server name, as given; NULL: free */
    SSL_SESSION *session;         /* one reference */
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
    struct tls_client_cache_entry *cache; /* client: TLS_CLIENT_CACHE_SIZE
                                   * entries */
    size_t cache_next;            /* entry the next new name replaces */
};

/* Sessions a client context keeps, one per server name. When full, a
 * new name replaces the name added longest ago. */
#define TLS_CLIENT_CACHE_SIZE 1024

/* tls_client_cache_init sets up the cache and the callback that fills
 * it. Returns 0, or -1 when out of memory. */
int tls_client_cache_init(struct tls_context *ctx);

/* tls_client_cache_find returns the session cached for name, or NULL.
 * The reference stays with the cache. */
SSL_SESSION *tls_client_cache_find(const struct tls_context *ctx,
                                   const char *name);

/* tls_client_cache_free drops every cached session. */
void tls_client_cache_free(struct tls_context *ctx);

#endif
