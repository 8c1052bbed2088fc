#include "tls/tls_context.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls/tls_context_internal.h"

/* Session ID context of the default server context: BoringSSL resumes
 * a session only under the context that issued it. The SNI contexts get
 * values of their own (tls_context_separate_sni_sessions). */
static const unsigned char tls_session_id_context[] = "ringrelay";

/* Server-side cache entries for TLS 1.2 clients that resume by session
 * ID; tickets need no server memory. */
#define TLS_SESSION_CACHE_SIZE 20000

/* tls_error_text writes BoringSSL's oldest queued error, or fallback when
 * the queue is empty, and clears the queue. */
static void tls_error_text(char *buf, size_t size, const char *fallback)
{
    uint32_t code = ERR_get_error();

    if (code == 0) {
        snprintf(buf, size, "%s", fallback);
    } else {
        ERR_error_string_n(code, buf, size);
    }
    ERR_clear_error();
}

/* tls_check_readable opens path to report a missing or unreadable file
 * with its errno text, which BoringSSL's PEM errors do not give. */
static int tls_check_readable(const char *what, const char *path, char *err,
                              size_t err_size)
{
    FILE *file = fopen(path, "r");

    if (file == NULL) {
        snprintf(err, err_size, "%s %s: cannot open: %s", what, path,
                 strerror(errno));
        return -1;
    }
    fclose(file);
    return 0;
}

static int tls_load_pair(SSL_CTX *ssl_ctx, const char *cert_file,
                         const char *key_file, char *err, size_t err_size)
{
    char reason[256];

    if (tls_check_readable("certificate file", cert_file, err, err_size) <
            0 ||
        tls_check_readable("key file", key_file, err, err_size) < 0) {
        return -1;
    }
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ssl_ctx, cert_file) != 1) {
        tls_error_text(reason, sizeof(reason), "unknown error");
        snprintf(err, err_size, "certificate file %s: not a valid PEM "
                 "certificate chain (%s)", cert_file, reason);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ssl_ctx, key_file, SSL_FILETYPE_PEM) !=
        1) {
        tls_error_text(reason, sizeof(reason), "unknown error");
        snprintf(err, err_size, "key file %s: not a valid PEM private key "
                 "for the certificate in %s (%s)", key_file, cert_file,
                 reason);
        return -1;
    }
    if (SSL_CTX_check_private_key(ssl_ctx) != 1) {
        tls_error_text(reason, sizeof(reason), "unknown error");
        snprintf(err, err_size, "key file %s: does not match the "
                 "certificate in %s (%s)", key_file, cert_file, reason);
        return -1;
    }
    return 0;
}

/* tls_new_ssl_ctx makes an SSL_CTX with the protocol settings of opts
 * but no certificate. */
static SSL_CTX *tls_new_ssl_ctx(const struct tls_context_options *opts,
                                char *err, size_t err_size)
{
    uint16_t min = opts->min_version == TLS_VERSION_1_3 ? TLS1_3_VERSION
                                                        : TLS1_2_VERSION;
    char reason[256];
    SSL_CTX *ssl_ctx = SSL_CTX_new(TLS_method());

    if (ssl_ctx == NULL) {
        snprintf(err, err_size, "out of memory for a TLS context");
        return NULL;
    }
    if (SSL_CTX_set_min_proto_version(ssl_ctx, min) != 1 ||
        SSL_CTX_set_max_proto_version(ssl_ctx, TLS1_3_VERSION) != 1) {
        snprintf(err, err_size, "cannot set the TLS protocol versions");
        goto fail;
    }
    if (opts->ciphers != NULL &&
        SSL_CTX_set_strict_cipher_list(ssl_ctx, opts->ciphers) != 1) {
        tls_error_text(reason, sizeof(reason), "unknown error");
        snprintf(err, err_size, "invalid TLS 1.2 cipher list '%s' (%s)",
                 opts->ciphers, reason);
        goto fail;
    }
    if (opts->role == TLS_ROLE_SERVER) {
        SSL_CTX_set_session_cache_mode(ssl_ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(ssl_ctx, TLS_SESSION_CACHE_SIZE);
        if (SSL_CTX_set_session_id_context(
                ssl_ctx, tls_session_id_context,
                sizeof(tls_session_id_context) - 1) != 1) {
            snprintf(err, err_size, "cannot set the session ID context");
            goto fail;
        }
    }
    return ssl_ctx;

fail:
    ERR_clear_error();
    SSL_CTX_free(ssl_ctx);
    return NULL;
}

/* tls_host_matches compares the SNI name with a configured host, which
 * may be "*.domain" for one label in front of domain. */
static bool tls_host_matches(const char *pattern, const char *name)
{
    const char *dot;

    if (strcasecmp(pattern, name) == 0) {
        return true;
    }
    if (strncmp(pattern, "*.", 2) != 0) {
        return false;
    }
    dot = strchr(name, '.');
    return dot != NULL && dot != name && strcasecmp(dot + 1, pattern + 2) == 0;
}

/* tls_servername_cb switches a server session to the certificate whose
 * host matches the SNI name. Without a match, or without SNI, the
 * default certificate stays, as a client that sends a name the relay
 * does not know still gets a TLS session. */
static int tls_servername_cb(SSL *ssl, int *alert, void *arg)
{
    const struct tls_context *ctx = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

    (void)alert;
    if (name == NULL) {
        return SSL_TLSEXT_ERR_OK;
    }
    for (size_t i = 0; i < ctx->sni_count; i++) {
        if (tls_host_matches(ctx->sni[i].host, name)) {
            SSL_set_SSL_CTX(ssl, ctx->sni[i].ssl_ctx);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

static int tls_add_sni(struct tls_context *ctx,
                       const struct tls_context_options *opts,
                       const struct tls_sni_certificate *cert, char *err,
                       size_t err_size)
{
    struct tls_sni_entry *entry = &ctx->sni[ctx->sni_count];

    entry->host = strdup(cert->host);
    if (entry->host == NULL) {
        snprintf(err, err_size, "out of memory for a TLS context");
        return -1;
    }
    ctx->sni_count++;
    entry->ssl_ctx = tls_new_ssl_ctx(opts, err, err_size);
    if (entry->ssl_ctx == NULL) {
        return -1;
    }
    if (tls_load_pair(entry->ssl_ctx, cert->cert_file, cert->key_file, err,
                      err_size) < 0) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

static int tls_setup_server(struct tls_context *ctx,
                            const struct tls_context_options *opts,
                            char *err, size_t err_size)
{
    if (opts->cert_file == NULL || opts->key_file == NULL) {
        snprintf(err, err_size, "a TLS server needs a certificate file "
                 "and a key file");
        return -1;
    }
    if (tls_load_pair(ctx->ssl_ctx, opts->cert_file, opts->key_file, err,
                      err_size) < 0) {
        return -1;
    }
    if (opts->sni_count == 0) {
        return 0;
    }
    ctx->sni = calloc(opts->sni_count, sizeof(*ctx->sni));
    if (ctx->sni == NULL) {
        snprintf(err, err_size, "out of memory for a TLS context");
        return -1;
    }
    for (size_t i = 0; i < opts->sni_count; i++) {
        if (tls_add_sni(ctx, opts, &opts->sni[i], err, err_size) < 0) {
            return -1;
        }
    }
    SSL_CTX_set_tlsext_servername_callback(ctx->ssl_ctx, tls_servername_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx->ssl_ctx, ctx);
    return 0;
}

/* tls_setup_client loads the CA file. Verification stays non-fatal
 * (SSL_VERIFY_NONE, which on a BoringSSL client still verifies and
 * stores the result), because the policy decides what a failed check
 * means: nothing for "may" and "encrypt", the end of the session for
 * "verify". */
static int tls_setup_client(struct tls_context *ctx,
                            const struct tls_context_options *opts,
                            char *err, size_t err_size)
{
    char reason[256];

    SSL_CTX_set_verify(ctx->ssl_ctx, SSL_VERIFY_NONE, NULL);
    if (tls_client_cache_init(ctx) < 0) {
        snprintf(err, err_size, "out of memory for a TLS context");
        return -1;
    }
    if (opts->ca_file == NULL) {
        return 0;
    }
    if (tls_check_readable("CA file", opts->ca_file, err, err_size) < 0) {
        return -1;
    }
    ERR_clear_error();
    if (SSL_CTX_load_verify_locations(ctx->ssl_ctx, opts->ca_file, NULL) !=
        1) {
        tls_error_text(reason, sizeof(reason), "unknown error");
        snprintf(err, err_size, "CA file %s: no valid PEM certificate (%s)",
                 opts->ca_file, reason);
        return -1;
    }
    ctx->has_ca = true;
    return 0;
}

int tls_context_new(struct tls_context **out,
                    const struct tls_context_options *opts, char *err,
                    size_t err_size)
{
    struct tls_context *ctx = calloc(1, sizeof(*ctx));

    *out = NULL;
    if (ctx == NULL) {
        snprintf(err, err_size, "out of memory for a TLS context");
        return -1;
    }
    ctx->refs = 1;
    ctx->role = opts->role;
    ctx->ssl_ctx = tls_new_ssl_ctx(opts, err, err_size);
    if (ctx->ssl_ctx == NULL) {
        goto fail;
    }
    if (opts->role == TLS_ROLE_SERVER &&
        tls_setup_server(ctx, opts, err, err_size) < 0) {
        goto fail;
    }
    if (opts->role == TLS_ROLE_CLIENT &&
        tls_setup_client(ctx, opts, err, err_size) < 0) {
        goto fail;
    }
    *out = ctx;
    return 0;

fail:
    tls_context_unref(ctx);
    return -1;
}

struct tls_context *tls_context_ref(struct tls_context *ctx)
{
    ctx->refs++;
    return ctx;
}

void tls_context_unref(struct tls_context *ctx)
{
    if (ctx == NULL || --ctx->refs > 0) {
        return;
    }
    for (size_t i = 0; i < ctx->sni_count; i++) {
        SSL_CTX_free(ctx->sni[i].ssl_ctx);
        free(ctx->sni[i].host);
    }
    free(ctx->sni);
    tls_client_cache_free(ctx);
    SSL_CTX_free(ctx->ssl_ctx);
    free(ctx);
}

int tls_version_parse(const char *text, enum tls_version *version)
{
    if (strcmp(text, "1.2") == 0) {
        *version = TLS_VERSION_1_2;
        return 0;
    }
    if (strcmp(text, "1.3") == 0) {
        *version = TLS_VERSION_1_3;
        return 0;
    }
    return -1;
}

int tls_context_separate_sni_sessions(struct tls_context *ctx)
{
    /* SSL_set_SSL_CTX() in the SNI callback gives the connection the
     * session ID context of the SNI certificate's SSL_CTX, and BoringSSL
     * resumes a TLS 1.2 session (by ID or ticket) only under the context
     * that issued it. Each SNI certificate thus gets a context of its
     * own, so a session of one name never resumes under another. */
    for (size_t i = 0; i < ctx->sni_count; i++) {
        unsigned char id[SSL_MAX_SID_CTX_LENGTH];
        int len = snprintf((char *)id, sizeof(id), "ringrelay-sni-%zu", i);

        if (len < 0 || (size_t)len >= sizeof(id) ||
            SSL_CTX_set_session_id_context(ctx->sni[i].ssl_ctx, id,
                                           (size_t)len) != 1) {
            ERR_clear_error();
            return -1;
        }
    }
    return 0;
}
