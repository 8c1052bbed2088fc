/* Client sessions kept for resumption, keyed by the server name the
 * session expected (tls_session_new's server_name), so a session is only
 * offered to the host it was made with. A resumed session keeps the
 * verification result and peer chain of its full handshake, which was
 * checked against the same name and the same context's CA file. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tls/tls_context_internal.h"
#include "tls/tls_session_internal.h"

/* tls_client_cache_store keeps session for the server name that the
 * SSL's tls_session expected. It
 * runs when BoringSSL has a new session, which for TLS 1.3 is when the
 * server's ticket arrives after the handshake. Returns 1 when it took the
 * reference, 0 when it did not. */
static int tls_client_cache_store(SSL *ssl, SSL_SESSION *session)
{
    struct tls_context *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    const struct tls_session *owner = SSL_get_app_data(ssl);
    const char *name = owner != NULL ? tls_session_expected_host(owner)
                                     : NULL;
    struct tls_client_cache_entry *entry = NULL;

    if (ctx == NULL || ctx->cache == NULL || name == NULL) {
        return 0;
    }
    for (size_t i = 0; i < TLS_CLIENT_CACHE_SIZE; i++) {
        if (ctx->cache[i].name != NULL &&
            strcasecmp(ctx->cache[i].name, name) == 0) {
            entry = &ctx->cache[i];
            break;
        }
    }
    if (entry == NULL) {
        char *copy = strdup(name);

        if (copy == NULL) {
            return 0;
        }
        entry = &ctx->cache[ctx->cache_next];
        ctx->cache_next = (ctx->cache_next + 1) % TLS_CLIENT_CACHE_SIZE;
        free(entry->name);
        entry->name = copy;
    }
    SSL_SESSION_free(entry->session);
    entry->session = session;
    return 1;
}

int tls_client_cache_init(struct tls_context *ctx)
{
    ctx->cache = calloc(TLS_CLIENT_CACHE_SIZE, sizeof(*ctx->cache));
    if (ctx->cache == NULL) {
        return -1;
    }
    SSL_CTX_set_app_data(ctx->ssl_ctx, ctx);
    SSL_CTX_set_session_cache_mode(ctx->ssl_ctx, SSL_SESS_CACHE_CLIENT);
    SSL_CTX_sess_set_new_cb(ctx->ssl_ctx, tls_client_cache_store);
    return 0;
}

SSL_SESSION *tls_client_cache_find(const struct tls_context *ctx,
                                   const char *name)
{
    if (ctx->cache == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < TLS_CLIENT_CACHE_SIZE; i++) {
        if (ctx->cache[i].name != NULL &&
            strcasecmp(ctx->cache[i].name, name) == 0) {
            return ctx->cache[i].session;
        }
    }
    return NULL;
}

void tls_client_cache_free(struct tls_context *ctx)
{
    if (ctx->cache == NULL) {
        return;
    }
    for (size_t i = 0; i < TLS_CLIENT_CACHE_SIZE; i++) {
        free(ctx->cache[i].name);
        SSL_SESSION_free(ctx->cache[i].session);
    }
    free(ctx->cache);
    ctx->cache = NULL;
}
