#include "tls/tls_session.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls/tls_context_internal.h"
#include "tls/tls_session_internal.h"

struct tls_session {
    struct tls_context *ctx;      /* one reference */
    SSL *ssl;
    BIO *in;                      /* received ciphertext, owned by ssl */
    BIO *out;                     /* ciphertext to send, owned by ssl */
    bool established;
    char *expected_host;          /* client: server_name, or NULL */
    char error[256];
};

/* tls_record_error keeps the reason of a failed step: BoringSSL's
 * oldest queued error, or a text for the SSL_get_error() code. */
static void tls_record_error(struct tls_session *s, int code)
{
    uint32_t packed = ERR_get_error();

    if (packed != 0) {
        ERR_error_string_n(packed, s->error, sizeof(s->error));
    } else if (code == SSL_ERROR_SYSCALL || code == SSL_ERROR_ZERO_RETURN) {
        snprintf(s->error, sizeof(s->error), "connection closed during the "
                 "TLS handshake");
    } else {
        snprintf(s->error, sizeof(s->error), "TLS error code %d", code);
    }
    ERR_clear_error();
}

static bool tls_is_ip_literal(const char *name)
{
    struct in6_addr addr;

    return inet_pton(AF_INET, name, &addr) == 1 ||
           inet_pton(AF_INET6, name, &addr) == 1;
}

/* tls_expect_host makes the chain check compare the certificate's names
 * with name, sends name as SNI and offers the session cached for it.
 * BoringSSL lets a wildcard match one whole left-most label only, so
 * "*.example.com" matches "mx.example.com" but "m*.example.com" matches
 * nothing. An IP address is matched against the certificate's IP
 * entries and not sent as SNI, which RFC 6066 section 3 allows only for
 * host names. */
static int tls_expect_host(struct tls_session *s, const char *name)
{
    X509_VERIFY_PARAM *param = SSL_get0_param(s->ssl);
    SSL_SESSION *cached = tls_client_cache_find(s->ctx, name);

    s->expected_host = strdup(name);
    if (s->expected_host == NULL) {
        return -1;
    }
    SSL_set_app_data(s->ssl, s);
    if (tls_is_ip_literal(name)) {
        if (X509_VERIFY_PARAM_set1_ip_asc(param, name) != 1) {
            return -1;
        }
    } else if (SSL_set_tlsext_host_name(s->ssl, name) != 1 ||
               X509_VERIFY_PARAM_set1_host(param, name, strlen(name)) !=
                   1) {
        return -1;
    }
    if (cached != NULL && SSL_set_session(s->ssl, cached) != 1) {
        return -1;
    }
    return 0;
}

struct tls_session *tls_session_new(struct tls_context *ctx,
                                    const char *server_name)
{
    struct tls_session *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        return NULL;
    }
    s->ssl = SSL_new(ctx->ssl_ctx);
    s->in = BIO_new(BIO_s_mem());
    s->out = BIO_new(BIO_s_mem());
    if (s->ssl == NULL || s->in == NULL || s->out == NULL) {
        goto fail;
    }

    /* An empty input buffer means "wait for more", not end of stream. */
    BIO_set_mem_eof_return(s->in, -1);
    SSL_set_bio(s->ssl, s->in, s->out);
    s->ctx = tls_context_ref(ctx);
    if (ctx->role == TLS_ROLE_SERVER) {
        SSL_set_accept_state(s->ssl);
    } else {
        SSL_set_connect_state(s->ssl);
        if (server_name != NULL && tls_expect_host(s, server_name) < 0) {
            /* The SSL object owns both BIOs since SSL_set_bio(). */
            tls_session_free(s);
            ERR_clear_error();
            return NULL;
        }
    }
    return s;

fail:
    if (s->ssl != NULL) {
        SSL_free(s->ssl);
    }
    BIO_free(s->in);
    BIO_free(s->out);
    free(s);
    ERR_clear_error();
    return NULL;
}

void tls_session_free(struct tls_session *s)
{
    if (s == NULL) {
        return;
    }
    SSL_free(s->ssl);
    tls_context_unref(s->ctx);
    free(s->expected_host);
    free(s);
}

int tls_session_input(struct tls_session *s, const void *data, size_t len)
{
    while (len > 0) {
        int part = len > INT_MAX ? INT_MAX : (int)len;
        int n = BIO_write(s->in, data, part);

        if (n <= 0) {
            snprintf(s->error, sizeof(s->error), "out of memory for TLS "
                     "input");
            ERR_clear_error();
            return TLS_FAILED;
        }
        data = (const char *)data + n;
        len -= (size_t)n;
    }
    return TLS_OK;
}

int tls_session_handshake(struct tls_session *s)
{
    int rc;
    int code;

    if (s->established) {
        return TLS_OK;
    }
    ERR_clear_error();
    rc = SSL_do_handshake(s->ssl);
    if (rc == 1) {
        s->established = true;
        return TLS_OK;
    }
    code = SSL_get_error(s->ssl, rc);
    if (code == SSL_ERROR_WANT_READ) {
        return TLS_WANT_INPUT;
    }
    tls_record_error(s, code);
    return TLS_FAILED;
}

bool tls_session_established(const struct tls_session *s)
{
    return s->established;
}

int tls_session_read(struct tls_session *s, void *buf, size_t size)
{
    int part = size > INT_MAX ? INT_MAX : (int)size;
    int rc;
    int code;

    ERR_clear_error();
    rc = SSL_read(s->ssl, buf, part);
    if (rc > 0) {
        return rc;
    }
    code = SSL_get_error(s->ssl, rc);
    if (code == SSL_ERROR_WANT_READ) {
        return TLS_WANT_INPUT;
    }
    if (code == SSL_ERROR_ZERO_RETURN) {
        return TLS_CLOSED;
    }
    tls_record_error(s, code);
    return TLS_FAILED;
}

int tls_session_write(struct tls_session *s, const void *data, size_t len)
{
    ERR_clear_error();
    while (len > 0) {
        int part = len > INT_MAX ? INT_MAX : (int)len;

        /* A memory BIO grows as needed, so SSL_write does not stop with
         * SSL_ERROR_WANT_WRITE. */
        int rc = SSL_write(s->ssl, data, part);

        if (rc <= 0) {
            tls_record_error(s, SSL_get_error(s->ssl, rc));
            return TLS_FAILED;
        }
        data = (const char *)data + rc;
        len -= (size_t)rc;
    }
    return TLS_OK;
}

void tls_session_close(struct tls_session *s)
{
    if (s->established) {
        SSL_shutdown(s->ssl);
    }
    ERR_clear_error();
}

size_t tls_session_output_len(const struct tls_session *s)
{
    return BIO_ctrl_pending(s->out);
}

size_t tls_session_output(struct tls_session *s, void *buf, size_t size)
{
    int part = size > INT_MAX ? INT_MAX : (int)size;
    int n = BIO_read(s->out, buf, part);

    return n > 0 ? (size_t)n : 0;
}

const char *tls_session_error(const struct tls_session *s)
{
    return s->error;
}

const char *tls_session_version(const struct tls_session *s)
{
    return SSL_get_version(s->ssl);
}

const char *tls_session_cipher(const struct tls_session *s)
{
    const SSL_CIPHER *cipher = SSL_get_current_cipher(s->ssl);

    return cipher != NULL ? SSL_CIPHER_get_name(cipher) : "none";
}

int tls_session_cipher_bits(const struct tls_session *s)
{
    const SSL_CIPHER *cipher = SSL_get_current_cipher(s->ssl);

    return cipher != NULL ? SSL_CIPHER_get_bits(cipher, NULL) : 0;
}

bool tls_session_reused(const struct tls_session *s)
{
    return SSL_session_reused(s->ssl) == 1;
}

const char *tls_session_server_name(const struct tls_session *s)
{
    return SSL_get_servername(s->ssl, TLSEXT_NAMETYPE_host_name);
}

const char *tls_session_peer_name(const struct tls_session *s, char *buf,
                                  size_t size)
{
    X509 *peer = SSL_get_peer_certificate(s->ssl);
    int len = -1;

    if (peer != NULL) {
        len = X509_NAME_get_text_by_NID(X509_get_subject_name(peer),
                                        NID_commonName, buf, (int)size);
        X509_free(peer);
    }
    ERR_clear_error();
    return len >= 0 ? buf : NULL;
}

int tls_session_verify_peer(const struct tls_session *s, char *err,
                            size_t err_size)
{
    const char *host = s->expected_host;
    X509 *peer;
    long result;

    if (!s->established) {
        snprintf(err, err_size, "the TLS handshake is not complete");
        return -1;
    }
    if (!s->ctx->has_ca) {
        snprintf(err, err_size, "no CA certificates were loaded to "
                 "verify the server certificate (is outbound_tls_ca_file "
                 "readable PEM?)");
        return -1;
    }
    if (host == NULL) {
        snprintf(err, err_size, "no expected server name was given, so "
                 "the certificate name cannot be checked");
        return -1;
    }
    peer = SSL_get_peer_certificate(s->ssl);
    if (peer == NULL) {
        snprintf(err, err_size, "server %s sent no certificate", host);
        return -1;
    }
    X509_free(peer);
    result = SSL_get_verify_result(s->ssl);
    if (result != X509_V_OK) {
        snprintf(err, err_size, "certificate of %s failed verification: "
                 "%s", host, X509_verify_cert_error_string(result));
        return -1;
    }
    return 0;
}

SSL *tls_session_ssl(const struct tls_session *s)
{
    return s->ssl;
}

const char *tls_session_expected_host(const struct tls_session *s)
{
    return s->expected_host;
}
